"""Every lesson's infrastructure: the device and seeds, the artifact cache and atomic writes, the training loop and
schedule, the plots and the doctor (course_lib.device, .artifacts, .paths, .train, .plots; course_tools.doctor)."""

import json
import math

import matplotlib

matplotlib.use("Agg")
import pytest
import torch
from torch import nn

from course_lib import pick_device, seed_everything
from course_lib.artifacts import artifact_paths, load_or_train
from course_lib.models.gpt import GPTConfig
from course_lib.paths import atomic_path
from course_lib.plots import heatmap, image_grid, loss_curve
from course_lib.train import TensorBatches, fit, train, warmup_cosine
from tests.conftest import PYPROJECT


def test_pick_device_respects_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="COURSE_DEVICE"):
        pick_device()
    monkeypatch.delenv("COURSE_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type in (expected, "mps")


def test_seed_everything_repeats_runs():
    seed_everything(7)
    a = torch.randn(5)
    seed_everything(7)
    assert torch.equal(a, torch.randn(5))
    with pytest.raises(ValueError):
        seed_everything(-1)


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def test_load_or_train_trains_once_then_loads(tmp_path):
    calls = []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(0.5)
        return {"loss": 0.1}

    first = load_or_train("tiny", _tiny_model, train, {"lr": 1}, cache=tmp_path)
    second = load_or_train("tiny", _tiny_model, train, {"lr": 1}, cache=tmp_path)
    assert len(calls) == 1
    assert torch.equal(first.weight, second.weight) and second.weight.eq(0.5).all()
    weights, meta = artifact_paths("tiny", {"lr": 1}, tmp_path)
    assert json.loads(meta.read_text())["metrics"] == {"loss": 0.1}
    load_or_train("tiny", _tiny_model, train, {"lr": 2}, cache=tmp_path)  # new config: new artifact
    assert len(calls) == 2


def test_load_or_train_retrains_a_corrupt_file_and_never_loads_it(tmp_path):
    calls = []
    train = lambda model: calls.append(1)
    load_or_train("tiny", _tiny_model, train, {}, cache=tmp_path)
    weights, _ = artifact_paths("tiny", {}, tmp_path)
    weights.write_bytes(weights.read_bytes()[:-10])  # a truncated file, as after a crash
    with pytest.warns(UserWarning, match="checksum"):
        load_or_train("tiny", _tiny_model, train, {}, cache=tmp_path)
    assert len(calls) == 2


def test_load_or_train_loads_a_shipped_artifact_only_if_it_checks_out(tmp_path):
    calls = []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(0.25)

    load_or_train("tiny", _tiny_model, train, {"lr": 3}, cache=tmp_path / "maker")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for path in artifact_paths("tiny", {"lr": 3}, tmp_path / "maker"):
        (shipped / path.name).write_bytes(path.read_bytes())
    model = load_or_train("tiny", _tiny_model, train, {"lr": 3}, cache=tmp_path / "user", shipped=shipped)
    assert len(calls) == 1 and model.weight.eq(0.25).all()  # loaded from the shipped folder, not trained
    assert load_or_train("tiny", _tiny_model, train, {"lr": 4}, cache=tmp_path / "user", shipped=shipped)
    assert len(calls) == 2  # another config: the shipped one does not fit
    weights = shipped / artifact_paths("tiny", {"lr": 3}, tmp_path)[0].name
    weights.write_bytes(weights.read_bytes()[:-10])
    load_or_train("tiny", _tiny_model, train, {"lr": 3}, cache=tmp_path / "other", shipped=shipped)
    assert len(calls) == 3  # a shipped file failing its checksum is not used


def test_interrupted_training_leaves_no_artifact(tmp_path):
    def train(model):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_or_train("tiny", _tiny_model, train, {}, cache=tmp_path)
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.json"))


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_fit_overfits_a_small_batch():
    torch.manual_seed(0)
    x, y = torch.randn(32, 10), torch.randint(0, 4, (32,))
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = fit(
        model,
        TensorBatches(x, y, batch_size=32),
        lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]),
        optimizer,
        epochs=200,
        progress=False,
        evaluate=lambda m: {"acc": (m(x).argmax(-1) == y).float().mean().item()},
    )
    assert history.step_loss[-1] < 0.05 < history.step_loss[0]
    assert history.last("acc") == 1.0


def test_tensor_batches_are_seeded_and_cover_everything():
    x = torch.arange(10)
    a = [b[0].tolist() for b in TensorBatches(x, batch_size=4, seed=3)]
    b = [b[0].tolist() for b in TensorBatches(x, batch_size=4, seed=3)]
    assert a == b and sorted(sum(a, [])) == list(range(10)) and len(a) == 3
    with pytest.raises(ValueError, match="first dimension"):
        TensorBatches(x, torch.arange(3), batch_size=2)


def test_warmup_cosine_shape():
    lrs = [warmup_cosine(s, warmup=10, total=100, peak=1.0, floor=0.1) for s in range(101)]
    assert lrs[9] == pytest.approx(1.0) and lrs[0] == pytest.approx(0.1)
    assert lrs[100] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_plots_draw_and_reject_bad_shapes():
    assert len(image_grid(torch.rand(10, 8, 8), ncols=5).axes) == 10
    rgb = image_grid(torch.rand(4, 3, 8, 8))
    assert rgb.axes[0].images[0].get_array().shape == (8, 8, 3)  # channels moved last, drawn in colour
    assert loss_curve({"train": [3, 2, 1], "val": [3, 2.5, 2]}).axes[0].get_legend() is not None
    heat = heatmap(torch.rand(2, 3), xlabels=["a", "b", "c"], ylabels=["x", "y"])
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="expected"):
        image_grid(torch.rand(8, 8))
    with pytest.raises(ValueError, match="xlabels"):
        heatmap(torch.rand(2, 3), xlabels=["a"])


def test_doctor_finds_nothing_wrong_on_a_prepared_machine(capsys):
    from importlib import metadata

    from course_tools.doctor import run

    try:
        pinned = next(d.split("==")[1] for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch=="))
        if metadata.version("torch").split("+")[0] != pinned:
            pytest.skip("not the pinned environment (e.g. `make test NO_INSTALL=1` on a GPU image)")
        metadata.version("course_lib")
    except metadata.PackageNotFoundError:
        pytest.skip("course_lib is not installed as a package here")

    assert run() == 0
    out = capsys.readouterr().out
    assert "OK    torch" in out and "data: shakespeare" in out and "FAIL" not in out


def test_library_code_that_seeds_leaves_the_global_generator_as_it_found_it():
    from course_lib.device import seeded
    from course_lib.models.bert import Classifier
    from course_lib.text import control
    from course_lib.text import language_model as lm
    from course_lib.text import masked_lm as mlm
    from course_tools.grading.execute import run_cases
    from course_tools.grading.lessons import lesson00

    torch.manual_seed(123)
    ids, labels = torch.randint(0, 10, (8, 6)), torch.arange(8) % 2
    sizes = GPTConfig(vocab_size=None, layers=1, heads=2, d_model=16, block_size=8)
    before = torch.get_rng_state()
    a, b = lm.build_gpt(11, sizes), lm.build_gpt(11, sizes)
    torch.testing.assert_close(a.state_dict(), b.state_dict())  # seeded: the same weights every time
    control.with_control_codes(a, 2)
    encoder = mlm.fresh_encoder(12, dropout=0.1)
    assert torch.equal(torch.get_rng_state(), before)
    classifier = Classifier(encoder, 2)  # a new head draws from the global generator, as any nn.Linear does
    before = torch.get_rng_state()
    training = mlm.FinetuneTraining(steps=2, batch=4, warmup=0)
    mlm.finetune(classifier, ids, ids != 11, labels, training)  # dropout: seeded
    exercise = lesson00.EXERCISES[0]
    run_cases(exercise, exercise.reference, exercise.cases(0))
    with seeded(5):
        torch.randn(3)
    assert torch.equal(torch.get_rng_state(), before)


def test_course_seed_shifts_training_seeds_but_not_data_or_shipped_models(monkeypatch, tmp_path):
    from course_lib.device import seeded, training_generator
    from course_lib.text.language_model import random_windows

    def draws():  # weights, batch order, the language models' windows, any other training draw
        with seeded(3):
            init = torch.randn(4)
        batch = next(iter(TensorBatches(torch.arange(20), batch_size=20, seed=3)))[0]
        windows = next(random_windows(torch.arange(500), batch=4, block=8, seed=3))[0]
        return init, batch, windows, torch.randint(1000, (4,), generator=training_generator(3))

    committed, path = draws(), artifact_paths("tiny", {"lr": 3}, tmp_path)[0]
    monkeypatch.setenv("COURSE_SEED", "1")
    shifted = draws()
    assert not any(torch.equal(a, b) for a, b in zip(committed, shifted))
    assert artifact_paths("tiny", {"lr": 3}, tmp_path)[0] != path  # its own cache entries
    assert artifact_paths("tiny", {"lr": 3}, tmp_path, with_seed_offset=False)[0] == path  # the shipped name
    monkeypatch.setenv("COURSE_SEED", "0")
    assert all(torch.equal(a, b) for a, b in zip(draws(), committed))
    monkeypatch.setenv("COURSE_SEED", "-1")
    with pytest.raises(ValueError, match="COURSE_SEED='-1': expected a non-negative integer"):
        seed_everything(0)


def test_on_step_sees_every_updated_model_and_can_keep_an_average():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from course_lib.train import train

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    seen, expected = [], model.weight.detach().clone()

    def on_step(m, step):
        nonlocal expected
        seen.append((step, m.weight.detach().clone()))
        # the EMA by hand: AveragedModel's first update copies the weights, later ones blend them in
        expected = m.weight.detach().clone() if step == 0 else 0.5 * expected + 0.5 * m.weight.detach()
        average.update_parameters(m)

    train(
        model,
        TensorBatches(torch.randn(8, 3), batch_size=4),
        lambda m, b: m(b[0]).pow(2).mean(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        steps=5,
        on_step=on_step,
        progress=False,
    )
    assert [s for s, _ in seen] == list(range(5))
    assert not torch.equal(seen[0][1], seen[-1][1]) and torch.equal(seen[-1][1], model.weight.detach())
    torch.testing.assert_close(average.module.weight, expected)


def test_train_stops_at_its_time_budget_with_a_record_of_the_last_step(monkeypatch):
    """On a fake clock: a step takes 1/8 s, an evaluation 1 s. With a budget of 1/2 s, four steps are trained; had
    the evaluations counted, the one after step 2 would have ended it there."""
    import course_lib.train as training

    clock = [0.0]
    monkeypatch.setattr(training.time, "perf_counter", lambda: clock[0])
    model = torch.nn.Linear(2, 1)

    def loss_fn(m, batch):
        clock[0] += 1 / 8
        return m(batch[0]).pow(2).mean()

    def evaluate(m):
        clock[0] += 1.0
        return {}

    batches = TensorBatches(torch.randn(64, 2), batch_size=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = train(
        model, batches, loss_fn, optimizer, steps=1000, evaluate=evaluate, eval_every=2, time_budget=0.5, progress=False
    )
    assert len(history.step_loss) == 4
    assert [(r["step"], r["seconds"]) for r in history.evals] == [(2, 0.25), (4, 0.5)]
    with pytest.raises(ValueError, match="time_budget is in seconds"):
        train(model, batches, loss_fn, optimizer, steps=1, time_budget=0)


def test_doctor_notes_a_cuda_build_of_torch_on_a_machine_without_a_gpu(tmp_path):
    from course_tools.doctor import cuda_without_gpu

    for folder, size in (("torch", 3 * 2**20), ("nvidia_cublas", 2**30), ("triton", 2**20), ("numpy", 5 * 2**30)):
        (tmp_path / folder / "lib").mkdir(parents=True)
        with open(tmp_path / folder / "lib" / "blob.so", "wb") as f:
            f.truncate(size)  # sparse: the size is what is counted
    note = cuda_without_gpu("13.0", False, tmp_path)
    assert note and "CUDA 13.0 build" in note and "1.0 GiB" in note  # numpy is not counted
    assert cuda_without_gpu("13.0", True, tmp_path) is None  # a GPU uses it
    assert cuda_without_gpu(None, False, tmp_path) is None  # a CPU build


def test_optimise_is_adamw_with_the_spec_schedule_and_clipping():
    """`optimise` must equal the loop written out by hand: torch's AdamW (decoupled decay on matrices only when
    decay_vectors is off), the warm-up + cosine rate set before each step, the gradient clipped to its norm; and
    `train`'s options (evaluate, on_step) must reach the loop."""
    from course_lib.train import Optimisation, optimise

    spec = Optimisation(
        steps=7, batch=4, lr=0.05, warmup=3, min_lr_ratio=0.2, weight_decay=0.3, decay_vectors=False,
        betas=(0.8, 0.9), grad_clip=0.05,
    )  # fmt: skip
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    ours, theirs = nn.Linear(3, 2), nn.Linear(3, 2)
    theirs.load_state_dict(ours.state_dict())

    def loss(m, batch):
        return ((m(batch[0]) - batch[1]) ** 2).mean()

    seen = []
    history = optimise(
        ours, [(x[:4], y[:4]), (x[4:], y[4:])], loss, spec, progress=False,
        on_step=lambda m, step: seen.append(step), evaluate=lambda m: {"bias": m.bias.sum().item()}, eval_every=7,
    )  # fmt: skip
    assert seen == list(range(7)) and history.evals[-1]["step"] == 7 and "bias" in history.evals[-1]
    optimizer = torch.optim.AdamW(
        [{"params": [theirs.weight], "weight_decay": 0.3}, {"params": [theirs.bias], "weight_decay": 0.0}],
        betas=(0.8, 0.9),
    )
    for step in range(7):
        rate = 0.05 * (step + 1) / 3 if step < 3 else 0.01 + 0.5 * 0.04 * (1 + math.cos(math.pi * (step - 3) / 4))
        assert spec.learning_rate(step) == pytest.approx(rate)
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.zero_grad()
        loss(theirs, (x[:4], y[:4]) if step % 2 == 0 else (x[4:], y[4:])).backward()
        assert nn.utils.clip_grad_norm_(theirs.parameters(), 0.05) > 0.05  # the clipping acts at every step
        optimizer.step()
    torch.testing.assert_close(ours.state_dict(), theirs.state_dict())

    constant = Optimisation(steps=5, batch=1, lr=0.02, warmup=0, min_lr_ratio=1.0)  # no clipping, no decay
    assert [constant.learning_rate(step) for step in range(5)] == [0.02] * 5
    ours, theirs = nn.Linear(3, 2), nn.Linear(3, 2)
    theirs.load_state_dict(ours.state_dict())
    optimise(ours, [(x * 100, y)], loss, constant, progress=False)  # large gradients: clipping would show
    optimizer = torch.optim.AdamW(theirs.parameters(), lr=0.02, weight_decay=0.0)
    for _ in range(5):
        optimizer.zero_grad()
        loss(theirs, (x * 100, y)).backward()
        optimizer.step()
    torch.testing.assert_close(ours.state_dict(), theirs.state_dict())


def test_optimisation_rejects_what_cannot_be_a_schedule():
    from course_lib.train import Optimisation, optimise

    good = {"steps": 5, "batch": 2, "lr": 1e-3, "warmup": 1, "min_lr_ratio": 0.1}
    for bad, message in (
        ({"steps": 0}, "steps and batch must be >= 1"),
        ({"batch": 0}, "steps and batch must be >= 1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"warmup": -1}, "warmup >= 0"),
        ({"min_lr_ratio": 2.0}, "min_lr_ratio is a fraction of lr"),
        ({"grad_clip": 0.0}, "grad_clip must be > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            Optimisation(**{**good, **bad})
    with pytest.raises(TypeError, match="positional"):
        Optimisation(5, 2, 1e-3, 1, 0.1)  # keyword-only: a lesson's config can set its own defaults
    with pytest.raises(TypeError, match="warmup"):
        Optimisation(steps=5, batch=2, lr=1e-3)  # every config states its schedule
    with pytest.raises(TypeError, match="spec must be an Optimisation"):
        optimise(nn.Linear(1, 1), [(torch.zeros(1, 1),)], lambda m, b: m(b[0]).sum(), good)


def test_each_lesson_trains_with_the_schedule_it_was_measured_with():
    """The optimisation of every lesson's model, pinned: the numbers in the lessons and docs/experiments.md were
    measured with these (warm-up, final fraction of lr, weight decay, decayed vectors, betas, clipping)."""
    from course_lib.alignment import dpo, reward_training
    from course_lib.multimodal import clip_training, reader_training, text_to_image
    from course_lib.text import control, masked_lm
    from course_lib.text import language_model as lm
    from course_lib.vision import diffusion, vae_training, vit_training

    default = (0.9, 0.999)
    expected = {
        "GPT (05)": (lm.RECIPE.train, 1600, 24, 5e-3, 100, 0.1, 0.1, False, (0.9, 0.99), 1.0),
        "control codes (06)": (control.FINETUNE, 600, 24, 2e-3, 20, 0.1, 0.1, False, (0.9, 0.99), 1.0),
        "masked LM (07)": (masked_lm.PRETRAIN.train, 5000, 256, 2e-3, 50, 0.1, 0.01, True, default, 1.0),
        "fine-tuning (07)": (masked_lm.FINETUNE, 120, 16, 3e-4, 12, 0.1, 0.01, True, default, None),
        "VAE (08)": (vae_training.RECIPES["plain"].train, 4000, 128, 2e-3, 100, 0.1, 0.0, True, default, None),
        "diffusion (10)": (diffusion.RECIPE.train, 4000, 128, 2e-3, 200, 0.01, 0.0, True, default, 1.0),
        "ViT (11)": (vit_training.ClassifierTraining(), 3000, 64, 1e-3, 100, 0.01, 0.05, True, default, None),
        "CLIP (12)": (clip_training.RECIPES["plain"].train, 3500, 64, 2e-3, 100, 0.02, 0.1, True, default, 1.0),
        "readers (13)": (reader_training.RECIPE, 1500, 128, 2e-3, 100, 0.0, 0.01, True, default, None),
        "prior (13)": (text_to_image.PRIOR.train, 3000, 256, 1e-3, 100, 0.02, 0.0, True, default, None),
        "decoder (13)": (text_to_image.DECODER.train, 4000, 64, 2e-3, 200, 0.01, 0.0, True, default, 1.0),
        "reward model (15)": (reward_training.RewardTraining(), 1200, 32, 1e-3, 20, 0.1, 0.1, False, default, 1.0),
        "DPO (16)": (dpo.DPOTraining(), 150, 64, 1e-4, 10, 1.0, 0.0, True, default, 1.0),
    }
    fields = ("steps", "batch", "lr", "warmup", "min_lr_ratio", "weight_decay", "decay_vectors", "betas", "grad_clip")
    for name, (config, *values) in expected.items():
        assert tuple(getattr(config, f) for f in fields) == tuple(values), name


def test_every_training_config_is_an_optimisation_and_no_task_builds_its_own_optimizer():
    """One way to train: the task code calls `optimise`, never the loop, AdamW or the schedule itself; the
    exceptions are the ones the README names (the GANs' two optimizers, PPO's rollouts, the epoch-counted
    translators and judge), each in its one function."""
    import ast
    import dataclasses
    import importlib
    from pathlib import Path

    from course_lib.train import Optimisation

    root = Path(__file__).parent.parent / "course_lib"
    allowed = {  # file -> the functions that may build an optimizer or call the loop themselves
        "vision/gan_training.py": {"train_gan", "train_growing"},
        "text/translation.py": {"train_translator"},
        "vision/judge_training.py": {"_train"},
        "alignment/ppo.py": {"train_ppo"},
    }
    offenders, configs = [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "train.py":
            continue
        tree = ast.parse(path.read_text())
        from_train = {  # names this module took from course_lib.train (a parameter called `train` is not the loop)
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "course_lib.train"
            for alias in node.names
            if alias.name in {"train", "fit", "adamw", "warmup_cosine"}
        }
        for top in tree.body:  # each call is charged to the top-level function it is written in
            owner = top.name if isinstance(top, (ast.FunctionDef, ast.ClassDef)) else "<module>"
            for node in ast.walk(top):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                ours = isinstance(func, ast.Name) and func.id in from_train
                torch_optim = isinstance(func, ast.Attribute) and ast.unparse(func.value) in {"optim", "torch.optim"}
                if (ours or torch_optim) and owner not in allowed.get(rel, set()):
                    offenders.append(f"{rel}:{node.lineno} {ast.unparse(func)} in {owner}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Training"):
                module = importlib.import_module("course_lib." + rel.removesuffix(".py").replace("/", "."))
                configs.append(getattr(module, node.name))
        for node in ast.walk(tree):  # AdamW imported by name would slip past the calls above
            if isinstance(node, ast.ImportFrom) and node.module in {"torch.optim", "torch.optim.adamw"}:
                offenders.append(f"{rel}:{node.lineno} from {node.module} import ...")  # swa_utils averages, fine
    for path in sorted((root.parent / "bench").glob("*.py")):  # benches count FLOPs by hand, but train with `train`
        for node in ast.walk(ast.parse(path.read_text())):
            is_step = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "step"
            if is_step and "optim" in ast.unparse(node.func.value):
                offenders.append(f"bench/{path.name}:{node.lineno} {ast.unparse(node.func)}: a loop by hand")
    assert not offenders, sorted(set(offenders))
    not_optimised = {  # train_gan, train_growing, the translators' and the judge's `fit`, PPO's rollouts
        "GANTraining",
        "GrowingTraining",
        "TranslatorTraining",
        "JudgeTraining",
        "PPOTraining",
    }
    assert len(configs) >= 11, configs
    for config in configs:
        assert dataclasses.is_dataclass(config)
        assert issubclass(config, Optimisation) or config.__name__ in not_optimised, config


def test_usable_cores_follows_the_affinity_and_a_cgroup_quota(tmp_path, monkeypatch):
    """A container limited to 2 CPUs on a big host must not start a thread per host core."""
    from course_lib import cores as device

    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(device, "CGROUP_CPU_MAX", str(quota))
    quota.write_text("200000 100000\n")
    assert device.usable_cores() == 2
    quota.write_text("150000 100000\n")  # 1.5 CPUs: two threads, the second one half used
    assert device.usable_cores() == 2
    quota.write_text("max 100000\n")
    assert device.usable_cores() == 64
    monkeypatch.setattr(device, "CGROUP_CPU_MAX", str(tmp_path / "absent"))
    assert device.usable_cores() == 64


def test_a_generator_that_runs_out_says_so_and_an_empty_one_too():
    model = nn.Linear(2, 1)

    def loss(m, batch):
        return m(batch).pow(2).mean()

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    once = (torch.randn(4, 2) for _ in range(3))
    with pytest.raises(ValueError, match="ran out after 3: a generator is read once"):
        train(model, once, loss, optimizer, steps=5, progress=False)
    with pytest.raises(ValueError, match="the batches are empty"):
        train(model, [], loss, optimizer, steps=5, progress=False)
    assert len(train(model, [torch.randn(4, 2)] * 2, loss, optimizer, steps=5, progress=False).step_loss) == 5


def test_a_config_hash_refuses_values_with_no_stable_text():
    from pathlib import Path

    from course_lib.artifacts import config_hash

    assert config_hash({"a": Path("x/y")}) == config_hash({"a": "x/y"})  # text that is the same in every run
    with pytest.raises(TypeError, match="no stable text"):
        config_hash({"loss": lambda x: x})
    with pytest.raises(TypeError, match="no stable text"):
        config_hash({"thing": object()})


def test_atomic_files_are_readable_as_the_umask_allows(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "weights.pt") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "weights.pt").stat().st_mode & 0o777 == 0o644


def test_a_shipped_checkpoint_names_the_machine_type_it_was_made_on():
    from course_lib.device import device_name

    assert device_name("cpu") == device_name(torch.device("cpu")) == "cpu"
    assert device_name("meta") == "meta"  # any non-CUDA device by its type
