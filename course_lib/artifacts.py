"""Lessons 01-03, 05-13, 15-16: `load_or_train`, so a later lesson reuses an earlier lesson's model without
re-training it.

Each artifact is two files in the cache: NAME-HASH.pt (the state dict) and NAME-HASH.json (its
sha256, the config and whatever metrics training reported). HASH is taken from the config, so
changing a hyperparameter trains a new model instead of loading a stale one. Both files are
written atomically, the JSON last: a run interrupted mid-save leaves no artifact, and a file
that does not match its checksum is retrained, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_lib.device import SEED_ENV, seed_offset
from course_lib.paths import atomic_path, atomic_write_bytes, cache_dir, sha256_file


def _stable_text(value: Any) -> str:
    """A value JSON cannot write, as its text, if that text is the same in every run (a path, a device)."""
    text = str(value)
    if text.startswith("<") or " at 0x" in text:
        raise TypeError(f"{type(value).__name__} {text} has no stable text to hash (a function or an object?)")
    return text


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable config (paths, devices and the like as their text)."""
    try:
        text = json.dumps(config, sort_keys=True, default=_stable_text)
    except TypeError as err:
        raise TypeError(f"config must be JSON-serialisable (numbers, strings, lists, dicts): {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def artifact_paths(
    name: str, config: dict[str, Any], cache: Path | None = None, *, with_seed_offset: bool = True
) -> tuple[Path, Path]:
    """Paths of the weights and metadata files for (name, config); a nonzero $COURSE_SEED is part of the key."""
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"artifact name must be a non-empty word without slashes or spaces, got {name!r}")
    folder = (cache or cache_dir()) / "artifacts"
    offset = seed_offset() if with_seed_offset else 0
    stem = f"{name}-{config_hash(config if offset == 0 else {**config, SEED_ENV: offset})}"
    return folder / f"{stem}.pt", folder / f"{stem}.json"


def read_metadata(
    name: str, config: dict[str, Any], cache: Path | None = None, shipped: Path | None = None
) -> dict[str, Any] | None:
    """The metadata of a saved artifact (in the cache, else in the `shipped` folder), or None if there is no
    complete, valid one."""
    weights, meta_path = artifact_paths(name, config, cache)
    meta = _valid_metadata(weights, meta_path)
    if meta is None and shipped is not None:  # shipped checkpoints are the committed run's, whatever $COURSE_SEED
        weights, meta_path = artifact_paths(name, config, cache, with_seed_offset=False)
        meta = _valid_metadata(shipped / weights.name, shipped / meta_path.name)
    return meta


def _valid_metadata(weights: Path, meta_path: Path) -> dict[str, Any] | None:
    if not (weights.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("sha256") != sha256_file(weights):
        return None
    return {**meta, "path": str(weights)}


def load_or_train(
    name: str,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], dict[str, Any] | None],
    config: dict[str, Any],
    *,
    cache: Path | None = None,
    retrain: bool = False,
    shipped: Path | None = None,
) -> nn.Module:
    """Return `build()` with saved weights if a valid artifact exists, else train it, save it, return it.

    `train(model)` trains in place and may return a dict of metrics that is saved alongside. `shipped` is a
    folder of artifacts that come with the repository (a model too slow to train on a laptop): one there with
    the same name, config hash and a matching checksum is loaded when the cache has none.
    """
    weights, meta_path = artifact_paths(name, config, cache)
    model = build()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build() must return an nn.Module, got {type(model).__name__}")
    meta = None if retrain else read_metadata(name, config, cache, shipped)
    if meta is None and weights.exists() and not retrain:
        warnings.warn(f"artifact {weights.name} is incomplete or fails its checksum; retraining", stacklevel=2)
    if meta is not None:
        state = torch.load(meta["path"], map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model
    metrics = train(model) or {}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    meta = {
        "name": name,
        "config": config,
        "metrics": metrics,
        "sha256": sha256_file(weights),
        "torch": torch.__version__,
    }
    atomic_write_bytes(meta_path, json.dumps(meta, indent=1, sort_keys=True, default=str).encode())
    return model


SHIPPED = Path(__file__).parent / "checkpoints"  # models the repository ships: too slow to train on a laptop


def weights_digest(model: nn.Module) -> str:
    """A short hash of a model's weights (names, shapes and bytes): a model trained on another model's outputs
    puts it in its config, so that it is never loaded next to weights it was not trained with."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(f"{key}{tuple(value.shape)}{value.dtype}".encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def ship_artifact(
    name: str, config: dict[str, Any], model: nn.Module, metrics: dict[str, Any], made_on: str, *, half: bool = False
) -> Path:
    """Write a trained model to the folder of shipped checkpoints, named and checksummed as `load_or_train`
    expects (the key without $COURSE_SEED); `half`: in float16, half the bytes. -> the weights' path.
    A maintainer's step, run in a checkout: it writes into the package's own folder and records the commit."""
    cached, _ = artifact_paths(name, config, with_seed_offset=False)
    weights, meta_path = SHIPPED / cached.name, SHIPPED / cached.with_suffix(".json").name
    SHIPPED.mkdir(exist_ok=True)
    with atomic_path(weights) as tmp:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save({k: v.half() if half and v.is_floating_point() else v for k, v in state.items()}, tmp)
    meta = {
        "name": name,
        "config": config,
        "sha256": sha256_file(weights),
        "torch": torch.__version__,
        "made_on": made_on,
        "commit": _git_commit(),
        "metrics": {k: _rounded(v) if isinstance(v, list) else v for k, v in metrics.items()},
    }
    atomic_write_bytes(meta_path, json.dumps(meta, indent=1, sort_keys=True, default=str).encode())
    return weights


def _rounded(value: Any) -> Any:
    """Floats inside lists and dicts to 5 decimals (a shipped record's curves, a tenth of the bytes)."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _git_commit() -> str:
    """The checkout's commit (with "+changes" if the tree differs from it), or "" outside a git checkout."""
    import subprocess

    root = Path(__file__).parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def pretrained(
    name: str,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], dict[str, Any]],
    config: dict[str, Any],
    *,
    device: torch.device | str = "cpu",
    retrain: bool = False,
    shipped: Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """A lesson's trained model: `load_or_train` with the training on `device` and the weights cached from the CPU.

    -> (the model on `device`, in eval mode; the metrics `train` returned when it was trained, possibly on an
    earlier run).
    """

    def train_on_device(model: nn.Module) -> dict[str, Any]:
        model.to(device)
        metrics = train(model)
        model.cpu()
        return metrics

    model = load_or_train(name, build, train_on_device, config, retrain=retrain, shipped=shipped)
    metrics = (read_metadata(name, config, shipped=shipped) or {}).get("metrics", {})
    return model.to(device).eval(), metrics


def load_or_make_tensors(
    name: str, make: Callable[[], dict[str, torch.Tensor]], config: dict[str, Any], *, cache: Path | None = None
) -> dict[str, torch.Tensor]:
    """A dict of tensors (a generated data set) from the cache, or `make()` now and saved, with the same
    config hash, checksum and atomic writes as `load_or_train`."""
    weights, meta_path = artifact_paths(name, config, cache)
    meta = read_metadata(name, config, cache)
    if meta is not None:
        return torch.load(meta["path"], map_location="cpu", weights_only=True)
    tensors = make()
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise TypeError("make() must return a dict of tensors")
    with atomic_path(weights) as tmp:
        torch.save({k: v.detach().cpu() for k, v in tensors.items()}, tmp)
    meta = {"name": name, "config": config, "sha256": sha256_file(weights), "torch": torch.__version__}
    atomic_write_bytes(meta_path, json.dumps(meta, indent=1, sort_keys=True, default=str).encode())
    return tensors
