"""torch.save on one framework, torch.load on the other: the tensors and Python values a checkpoint holds.

Plain PyTorch code, run on PyTorch and (converted) on MindSpore::

    python tensor_cases.py --save D              # D/weights.pt, D/full.pt, and D/expected.{npz,json}
    python tensor_cases.py --load D --out R.json  # (both in one run: save first)

``weights.pt`` holds only what PyTorch's ``weights_only=True`` loader accepts (tensors of every dtype a
checkpoint uses, a parameter, views sharing one storage, non-contiguous views, a 0-d and an empty
tensor, dtypes, a device, a Size, nested dicts, lists and an OrderedDict); ``full.pt`` adds what
Megatron's checkpoints hold beside (an argparse.Namespace, Python's, NumPy's and torch's RNG states,
an io.BytesIO extra state). ``--load`` reads both with ``weights_only=True`` and ``False`` and reports,
per tensor, dtype, shape and values against what the saving side wrote to ``expected.npz``, and which
tensors share a storage.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import io
import json
import os
import random

import numpy as np
import torch

# tensors that view one storage when saved; PyTorch keeps such a storage once in the file
SHARED = ("base", "rows", "strided", "transposed", "detached")


def weights() -> dict:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    return {
        "base": base,
        "rows": base[1:3],                      # offset into the storage
        "strided": base[1:, ::2],               # non-contiguous view
        "transposed": base.t(),
        "detached": base.detach(),
        "bf16": torch.tensor([1.5, -2.25, 3.0e38, 1e-3], dtype=torch.bfloat16),
        "f16": torch.tensor([1.5, -2.25, 6.0e4], dtype=torch.float16),
        "f64": torch.tensor([1.0 / 3.0, -1e300], dtype=torch.float64),
        "i64": torch.tensor([2 ** 40, -7], dtype=torch.int64),
        "i32": torch.tensor([5, -6], dtype=torch.int32),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.ones(2, 2)),
        "nested": {"list": [torch.tensor([1.0]), 3, "text", None, 2.5, True],
                   "ordered": collections.OrderedDict(a=torch.tensor([2, 3]), b=(1, 2))},
        "dtype": torch.bfloat16,
        "device": torch.device("cpu"),
        "size": torch.Size([2, 3]),
    }


def full() -> dict:
    state = weights()
    state.update({
        # a set, as Megatron's args.noop_layers: pickled by dill's saver before patch 0014 had its own
        "args": argparse.Namespace(params_dtype=torch.float32, lr=0.5, layers=[1, 2], noop_layers={3}),
        "random_rng_state": random.getstate(),
        "np_rng_state": np.random.get_state(),
        "torch_rng_state": torch.get_rng_state(),
        "extra_state": io.BytesIO(b"extra bytes"),
    })
    return state


def leaves(obj, path: str = ""):
    """``(path, value)`` of every leaf under the dicts, lists, tuples and Namespaces of a checkpoint's
    state (the paths join keys and indices with ``/``), depth first."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaves(value, f"{path}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from leaves(value, f"{path}/{i}")
    elif isinstance(obj, argparse.Namespace):
        yield from leaves(vars(obj), path)
    else:
        yield path, obj


def tensors(obj) -> dict:
    return {path: value for path, value in leaves(obj) if isinstance(value, torch.Tensor)}


def describe(tensor) -> dict:
    return {"dtype": str(tensor.dtype).split(".")[-1], "shape": list(tensor.shape),
            "parameter": isinstance(tensor, torch.nn.Parameter)}


def as_numpy(tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:     # NumPy has no bfloat16; bfloat16 -> float32 is exact
        tensor = tensor.float()
    return tensor.numpy().copy()


def others(obj) -> object:
    """The non-tensor values, comparable across frameworks."""
    if isinstance(obj, dict):
        return {str(k): others(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [others(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return {"set": sorted(others(v) for v in obj)}
    if isinstance(obj, torch.Tensor):
        return "<tensor>"
    if isinstance(obj, np.ndarray):
        return {"ndarray": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, argparse.Namespace):
        return {"Namespace": others(vars(obj))}
    if isinstance(obj, io.BytesIO):
        return {"BytesIO": obj.getvalue().decode()}
    if isinstance(obj, torch.dtype):
        return {"dtype": str(obj).split(".")[-1]}
    if isinstance(obj, torch.device):
        return {"device": [obj.type, obj.index]}   # str() differs: mindtorch's is "device(type=cpu)"
    return obj


def save(directory: str) -> None:
    state = full()
    torch.save(weights(), os.path.join(directory, "weights.pt"))
    torch.save(state, os.path.join(directory, "full.pt"))
    found = tensors(state)
    np.savez(os.path.join(directory, "expected.npz"), **{k: as_numpy(t) for k, t in found.items()})
    with open(os.path.join(directory, "expected.json"), "w") as fh:
        json.dump({"tensors": {k: describe(t) for k, t in found.items()}, "others": others(state)}, fh)


def storage_groups(found: dict) -> list:
    """Keys of the tensors that share a storage, where the framework can tell (PyTorch)."""
    groups = collections.defaultdict(list)
    for key, tensor in found.items():
        if hasattr(tensor, "untyped_storage"):
            try:
                groups[tensor.untyped_storage().data_ptr()].append(key)
            except NotImplementedError:
                return []
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def load(directory: str, out: str, legacy: str | None = None) -> None:
    report = {"mindspore_importable": importlib.util.find_spec("mindspore") is not None}
    if report["mindspore_importable"]:
        report["mindspore_object"] = refuse_mindspore_object()
    with open(os.path.join(directory, "expected.json")) as fh:
        expected = json.load(fh)
    with np.load(os.path.join(directory, "expected.npz")) as z:
        values = {k: z[k] for k in z.files}
    for name in ("weights", "full"):
        for weights_only in (True, False):
            entry = report[f"{name}/weights_only={weights_only}"] = {}
            try:
                state = torch.load(os.path.join(directory, f"{name}.pt"), weights_only=weights_only)
            except Exception as exc:   # noqa: BLE001 - the report says what failed
                entry["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                continue
            found = tensors(state)
            entry["tensors"] = {k: describe(t) for k, t in found.items()}
            entry["differ"] = sorted(k for k, t in found.items()
                                     if k not in values or not np.array_equal(as_numpy(t), values[k]))
            entry["missing"] = sorted(k for k in expected["tensors"] if k.split("/")[1] in state and k not in found)
            entry["shared"] = storage_groups(found)
            entry["others"] = others(state)
    if legacy:   # saved by mindnlp 0.5.1's mindtorch: {"w": arange(6).reshape(2, 3) / 4, "i": [7, -8], "args"}
        state = torch.load(legacy, weights_only=False)
        report["legacy"] = {"w": as_numpy(state["w"]).tolist(), "i": as_numpy(state["i"]).tolist(),
                            "args": others(state["args"])}
    try:   # the unsafe globals PyTorch's weights_only loader names, for comparison with PyTorch's own files
        report["unsafe_globals"] = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(
            os.path.join(directory, "full.pt")))
    except AttributeError:
        pass
    with open(out, "w") as fh:
        json.dump(report, fh, indent=1)


def refuse_mindspore_object() -> str:
    """On MindSpore: what torch.save says of a MindSpore object PyTorch could not load."""
    import mindspore   # noqa: PLC0415 - only where it exists
    try:
        torch.save({"op": mindspore.ops.Add()}, io.BytesIO())
    except Exception as exc:   # noqa: BLE001 - the message is the result
        return f"{type(exc).__name__}: {exc}"
    return "saved"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", metavar="DIR", help="write the checkpoints and what they hold here")
    ap.add_argument("--load", metavar="DIR", help="load the checkpoints another run saved here")
    ap.add_argument("--out", help="--load's report (JSON)")
    ap.add_argument("--legacy", metavar="FILE", help="also report what FILE, in mindtorch's format before "
                                                     "patch 0014 (legacy_mindtorch_format.pt), loads as")
    args = ap.parse_args()
    if args.save:
        save(args.save)
    if args.load:
        load(args.load, args.out, args.legacy)


if __name__ == "__main__":
    main()
