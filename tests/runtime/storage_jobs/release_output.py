"""Megatron's pipeline pattern on a tensor whose memory was released: a stage's output, once sent,
has its storage resized to 0 bytes (MindSpeed-LLM's deallocate_output_tensor on MindSpore) and the
backward then runs from it with the gradient the next stage sent (custom_backward). Prints one JSON
line: the storage's bytes before and after, the shape kept, and the parameters' gradients, the
same with and without the release; and MindSpeed's norm recomputation (--recompute-norm,
CheckpointWithoutOutput): the output released after the forward, refilled before the backward with
resize_ back and copy_ of the recomputed output's storage. Written for PyTorch; converted to mindtorch
by the test."""
from __future__ import annotations

import json

import torch
from torch.autograd.variable import Variable


def model() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    first, second = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)
    with torch.no_grad():
        for i, p in enumerate([first.weight, first.bias, second.weight, second.bias]):
            p.copy_(torch.linspace(-1.0, 1.0, p.numel()).reshape(p.shape) * (0.5 + 0.25 * i))
    x = torch.linspace(-2.0, 2.0, 20).reshape(5, 4)
    grad = torch.linspace(0.1, 1.5, 15).reshape(5, 3)
    return torch.nn.Sequential(first, torch.nn.GELU(), second), x, grad


def step(release: bool) -> dict:
    net, x, grad = model()
    out = net(x)
    before = out.untyped_storage().nbytes()
    if release:
        assert out._base is None
        out.untyped_storage().resize_(0)
    after = out.untyped_storage().nbytes()
    Variable._execution_engine.run_backward(tensors=(out,), grad_tensors=(grad,), keep_graph=False,
                                            create_graph=False, inputs=tuple(), allow_unreachable=True,
                                            accumulate_grad=True)
    return {"bytes": [before, after], "shape": list(out.shape),
            "grads": [p.grad.reshape(-1).tolist() for p in net.parameters()]}


def refill() -> dict:
    net, x, grad = model()
    out = net(x)
    out.untyped_storage().resize_(0)
    with torch.no_grad():
        recomputed = net(x) + 1.0            # what the recomputation writes back (+1: seen in the values)
    out.untyped_storage().resize_(recomputed.untyped_storage().size())
    out.untyped_storage().copy_(recomputed.untyped_storage())
    values = out.detach().reshape(-1).tolist()
    (out * grad).sum().backward()
    return {"bytes": out.untyped_storage().nbytes(), "values": values,
            "grads": [p.grad.reshape(-1).tolist() for p in net.parameters()]}


if __name__ == "__main__":
    print("RESULT " + json.dumps({"kept": step(False), "released": step(True), "refilled": refill()}))
