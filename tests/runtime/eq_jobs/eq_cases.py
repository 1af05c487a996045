"""Tensor == / != with operands that are not tensors or numbers: prints one JSON object,
{case: answer}, where an answer is a Python bool, a list (an elementwise tensor's values) or
"error: <type>". Run as is on PyTorch, and converted (torch -> mindtorch) on MindSpore."""
import json

import torch

t = torch.tensor([71, 16, 1])
OTHERS = {
    "None": None,
    "str": "x",
    "list": [71, 16, 1],
    "list1": [1],
    "tuple": (71, 16, 1),
    "empty Size": torch.Size([]),
    "Size": torch.Size([3]),
    "int": 71,
    "tensor": torch.tensor([71, 0, 1]),
}


def answer(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


results = {}
for name, other in OTHERS.items():
    for op in ("==", "!="):
        try:
            results[f"t {op} {name}"] = answer(t == other if op == "==" else t != other)
        except Exception as exc:  # noqa: BLE001 - the answer is the exception's type
            results[f"t {op} {name}"] = f"error: {type(exc).__name__}"
print("EQ_CASES " + json.dumps(results))
