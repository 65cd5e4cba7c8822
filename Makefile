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

.PHONY: install data lab lint format test test-fast exercises grade-demo doctor bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

install: $(INSTALLED)

data: install
	$(PY) -m course_lib.data prepare

lab: data
	$(PY) -m jupyter lab notebooks/

doctor: install
	$(PY) -m course_lib.doctor

# ruff: lint and format check (configured in pyproject.toml); `make format` rewrites the code.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Lint, exercise sync check, unit tests, grader self-tests, then every lesson and solution notebook.
test: data lint
	$(PY) -m course_lib.assign --check
	$(PY) -m pytest --nbval-lax --nbval-cell-timeout=900 tests notebooks solutions $(PYTEST_ARGS)

# Library and grader tests only (no notebooks): a quick loop while editing course_lib.
test-fast: data
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Regenerate exercises/ from solutions/ (never edit exercises/ by hand).
exercises: install
	$(PY) -m course_lib.assign

# The grader on three sample students (correct, partial, broken) of lesson 00: see it work before a workshop.
grade-demo: install
	$(PY) -m course_lib.grading.demo build/grade-demo

bench: data
	$(PY) bench/run_all.py

clean:
	rm -rf build .pytest_cache
