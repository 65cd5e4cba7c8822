"""Every lesson: what crosses between the grader and a job, as JSON that holds only plain data.

Cases go in and results come back in this form: numbers, strings, None, lists, tuples, dicts with string keys,
and tensors as their raw bytes (base64) with dtype and shape, so values are exact. Parsing is linear in the size
of the text, which the grader caps; no pickle, nothing that runs code, and a decoder that refuses what it does
not expect (an unknown dtype, a byte count that disagrees with the shape, an object with too many keys, nesting
too deep, or a parse that outlives its deadline).
"""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

import torch

DTYPES = {
    str(d).removeprefix("torch."): d for d in (torch.float32, torch.float64, torch.int64, torch.int32, torch.bool)
}
MAX_KEYS = 4096  # per JSON object
MAX_DEPTH = 64  # lists, tuples and dicts within each other
MAX_CONTAINERS = 100_000  # "{" and "[" in one record, counted before parsing (a result holds a few per case)


class WireError(ValueError):
    """The text is not plain data in the grader's format."""


def encode(value: Any) -> Any:
    """Plain data -> JSON-ready data (tensors and tuples tagged); TypeError for anything else."""
    kind = type(value)
    if kind is torch.Tensor:
        t = value.detach().to("cpu").contiguous()
        name = str(t.dtype).removeprefix("torch.")
        if name not in DTYPES:
            raise TypeError(f"tensors of dtype {t.dtype} do not cross to the grader; use one of {', '.join(DTYPES)}")
        raw = t.numpy().tobytes() if t.numel() else b""
        return {"$tensor": name, "shape": list(t.shape), "data": base64.b64encode(raw).decode("ascii")}
    if kind is float:
        return {"$float": repr(value)} if not math.isfinite(value) else value
    if kind in (int, bool, str, type(None)):
        return value
    if kind is list:
        return [encode(v) for v in value]
    if kind is tuple:
        return {"$tuple": [encode(v) for v in value]}
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise TypeError("only dicts with string keys cross to the grader")
        if any(k.startswith("$") for k in value):
            raise TypeError("dict keys may not start with '$' (the grader's tags)")
        return {k: encode(v) for k, v in value.items()}
    raise TypeError(f"a {kind.__name__} does not cross to the grader: plain tensors, numbers, strings, lists only")


def dumps(value: Any) -> bytes:
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=False).encode()


def _tensor(obj: dict) -> torch.Tensor:
    if set(obj) != {"$tensor", "shape", "data"}:
        raise WireError("a tensor record has unexpected fields")
    dtype = DTYPES.get(obj["$tensor"]) if isinstance(obj["$tensor"], str) else None
    shape = obj["shape"]
    if dtype is None:
        raise WireError(f"unknown dtype {str(obj['$tensor'])[:20]!r}")
    if not (isinstance(shape, list) and len(shape) <= 16 and all(type(s) is int and 0 <= s < 2**31 for s in shape)):
        raise WireError("a tensor's shape must be a short list of sizes")
    if not isinstance(obj["data"], str):
        raise WireError("a tensor's data must be base64 text")
    raw = base64.b64decode(obj["data"], validate=True)
    numel = math.prod(shape)
    if numel > 2**31 or len(raw) != numel * torch.empty((), dtype=dtype).element_size():
        raise WireError("a tensor's byte count disagrees with its shape")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape).clone()


def _decode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, list):
        return [_decode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if "$tensor" in value:
            return _tensor(value)
        if "$tuple" in value:
            if set(value) != {"$tuple"} or not isinstance(value["$tuple"], list):
                raise WireError("a tuple record has unexpected fields")
            return tuple(_decode(v, depth + 1) for v in value["$tuple"])
        if "$float" in value:
            if set(value) != {"$float"} or value["$float"] not in ("nan", "inf", "-inf"):
                raise WireError("a float record must be nan, inf or -inf")
            return float(value["$float"])
        if any(k.startswith("$") for k in value):
            raise WireError("unknown tag")
        return {k: _decode(v, depth + 1) for k, v in value.items()}
    return value


def loads(data: bytes, *, max_bytes: int, deadline: float | None = None) -> Any:
    """Parse what `dumps` wrote; WireError for anything else (too large, malformed, past `deadline`)."""
    if len(data) > max_bytes:
        raise WireError(f"more than {max_bytes} bytes")
    if data.count(b"{") + data.count(b"[") > MAX_CONTAINERS:  # millions of tiny objects: seconds and gigabytes
        raise WireError(f"more than {MAX_CONTAINERS} objects and lists")

    def pairs(items: list[tuple[str, Any]]) -> dict:
        if len(items) > MAX_KEYS:
            raise WireError(f"an object with more than {MAX_KEYS} keys")
        if deadline is not None and time.monotonic() > deadline:
            raise WireError("parsing took too long")
        out = dict(items)
        if len(out) != len(items):
            raise WireError("an object repeats a key")
        return out

    def constant(name: str) -> Any:
        raise WireError(f"bare {name} is not allowed")

    try:
        text = data.decode("utf-8")
        parsed = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
        return _decode(parsed, 0)
    except WireError:
        raise
    except (ValueError, RecursionError, MemoryError, TypeError, RuntimeError, OverflowError) as err:
        raise WireError(f"not the grader's format ({type(err).__name__})") from None
