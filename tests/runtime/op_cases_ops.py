"""The differential op cases, written once against `torch` (op_cases.py explains the machinery).

Each case names the inventory entries it covers (op_inventory.json: functions by their torch name,
Tensor methods by their bare name) and calls them the way the converted Megatron-LM / MindSpeed /
MindSpeed-LLM call them: the positional counts and keywords of the inventory's call sites.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from mindtorch_compat_cases import dtype_name
from op_cases import Recorder, op

# --- joining and splitting ----------------------------------------------------------------------------


@op("torch.cat", "torch.concat", "torch.concatenate")
def cat(c: Recorder):
    a, b = c.f(2, 3), c.f(4, 3)
    c.check("cat([a, b])", lambda a, b: torch.cat([a, b]), a, b)
    c.check("cat((a, a), dim=1)", lambda a: torch.cat((a, a), dim=1), a)
    c.check("cat([a, b], dim=-2)", lambda a, b: torch.cat([a, b], dim=-2), a, b)
    c.check("concat([a, b], dim=0)", lambda a, b: torch.concat([a, b], dim=0), a, b)
    c.check("concatenate([a, b], axis=0)", lambda a, b: torch.concatenate([a, b], axis=0), a, b)
    c.check("cat(int64)", lambda a, b: torch.cat([a, b], dim=0), c.i(0, 9, 2, 3), c.i(0, 9, 1, 3))
    c.check("cat([a, b], dim=0, out=buf)",
            lambda a, b: _with_out(lambda buf: torch.cat([a, b], dim=0, out=buf), torch.empty(6, 3, dtype=a.dtype)),
            a, b, grad=False)


def _with_out(call, *buffers):
    """call(*buffers)'s result and the buffers after it: an out= must be written (and returned), not only
    the result right."""
    return [call(*buffers), *buffers]


@op("torch.stack")
def stack(c: Recorder):
    a, b = c.f(2, 3), c.f(2, 3)
    c.check("stack([a, b])", lambda a, b: torch.stack([a, b]), a, b)
    c.check("stack([a, b], dim=1)", lambda a, b: torch.stack([a, b], dim=1), a, b)
    c.check("stack([a, b], dim=-1)", lambda a, b: torch.stack([a, b], dim=-1), a, b)


@op("torch.chunk", "chunk")
def chunk(c: Recorder):
    x = c.f(6, 4)
    c.check("chunk(x, 3, dim=0)", lambda x: torch.chunk(x, 3, dim=0), x)
    c.check("chunk(x, 2, dim=-1)", lambda x: torch.chunk(x, 2, dim=-1), x)
    c.check("chunk(x, 4, axis=0) uneven", lambda x: torch.chunk(x, 4, axis=0), x)
    c.check("x.chunk(2, dim=1)", lambda x: x.chunk(2, dim=1), x)
    c.check("chunk(x, 3, 1)", lambda x: torch.chunk(x, 3, 1), c.f(2, 7))


@op("torch.split", "split")
def split(c: Recorder):
    x = c.f(7, 4)
    c.check("split(x, 3, dim=0)", lambda x: torch.split(x, 3, dim=0), x)
    c.check("split(x, [2, 5])", lambda x: torch.split(x, [2, 5]), x)
    c.check("split(x, split_size_or_sections=2, dim=1)",
            lambda x: torch.split(x, split_size_or_sections=2, dim=1), x)
    c.check("x.split(2)", lambda x: x.split(2), x)
    c.check("x.split([1, 3], dim=1)", lambda x: x.split([1, 3], dim=1), x)


@op("torch.unbind")
def unbind(c: Recorder):
    x = c.f(3, 4)
    c.check("unbind(x)", lambda x: torch.unbind(x), x)
    c.check("unbind(x, dim=1)", lambda x: torch.unbind(x, dim=1), x)


# --- shapes and views --------------------------------------------------------------------------------

@op("view", "view_as")
def view(c: Recorder):
    x = c.f(2, 3, 4)
    c.check("x.view(6, 4)", lambda x: x.view(6, 4), x)
    c.check("x.view(-1)", lambda x: x.view(-1), x)
    c.check("x.view(*shape)", lambda x: x.view(*[4, 6]), x)
    c.check("x.view((2, 12))", lambda x: x.view((2, 12)), x)
    c.check("x.view(torch.Size)", lambda x: x.view(torch.Size([3, 8])), x)
    c.check("x.view(dtype) int32->float32", lambda x: x.view(torch.float32),
            np.arange(6, dtype=np.int32) * 1065353216 // 6, grad=False)
    c.check("x.view_as(y)", lambda x, y: x.view_as(y), x, c.f(4, 6), grad=(0,))
    c.aliasing("aliasing x.view(-1)", lambda b: b.view(-1), c.f(3, 4))


@op("reshape", "torch.reshape", "ravel", "flatten", "torch.flatten")
def reshape(c: Recorder):
    x = c.f(2, 3, 4)
    c.check("x.reshape(6, 4)", lambda x: x.reshape(6, 4), x)
    c.check("x.reshape(-1, 2)", lambda x: x.reshape(-1, 2), x)
    c.check("x.reshape((4, 6))", lambda x: x.reshape((4, 6)), x)
    c.check("torch.reshape(x, (3, 8))", lambda x: torch.reshape(x, (3, 8)), x)
    c.check("x.t().reshape(-1) non-contiguous", lambda x: x.t().reshape(-1), c.f(3, 4))
    c.check("x.ravel()", lambda x: x.ravel(), x)
    c.check("x.flatten()", lambda x: x.flatten(), x)
    c.check("x.flatten(1)", lambda x: x.flatten(1), x)
    c.check("x.flatten(0, 1)", lambda x: x.flatten(0, 1), x)
    c.check("x.flatten(start_dim=1, end_dim=-1)", lambda x: x.flatten(start_dim=1, end_dim=-1), x)
    c.check("torch.flatten(x, 1)", lambda x: torch.flatten(x, 1), x)
    c.aliasing("aliasing x.reshape(4, 3)", lambda b: b.reshape(4, 3), c.f(3, 4))


@op("transpose", "torch.transpose", "t", "permute", "torch.permute")
def transpose(c: Recorder):
    x = c.f(2, 3, 4)
    c.check("x.transpose(0, 1)", lambda x: x.transpose(0, 1), x)
    c.check("x.transpose(-1, -2)", lambda x: x.transpose(-1, -2), x)
    c.check("torch.transpose(x, 1, 2)", lambda x: torch.transpose(x, 1, 2), x)
    c.check("x.t()", lambda x: x.t(), c.f(3, 5))
    c.check("x.permute(2, 0, 1)", lambda x: x.permute(2, 0, 1), x)
    c.check("x.permute((1, 2, 0))", lambda x: x.permute((1, 2, 0)), x)
    c.check("torch.permute(x, (2, 1, 0))", lambda x: torch.permute(x, (2, 1, 0)), x)
    c.check("x.transpose(0, 1).contiguous()", lambda x: x.transpose(0, 1).contiguous(), x)
    c.aliasing("aliasing x.transpose(0, 1)", lambda b: b.transpose(0, 1), c.f(3, 4))


@op("unsqueeze", "torch.unsqueeze", "squeeze")
def unsqueeze(c: Recorder):
    x = c.f(3, 4)
    c.check("x.unsqueeze(0)", lambda x: x.unsqueeze(0), x)
    c.check("x.unsqueeze(-1)", lambda x: x.unsqueeze(-1), x)
    c.check("x.unsqueeze(dim=1)", lambda x: x.unsqueeze(dim=1), x)
    c.check("torch.unsqueeze(x, 1)", lambda x: torch.unsqueeze(x, 1), x)
    y = c.f(3, 1, 4, 1)
    c.check("y.squeeze()", lambda y: y.squeeze(), y)
    c.check("y.squeeze(1)", lambda y: y.squeeze(1), y)
    c.check("y.squeeze(-1)", lambda y: y.squeeze(-1), y)
    c.check("y.squeeze(0) (not 1)", lambda y: y.squeeze(0), y)
    c.check("y.squeeze(dim=1)", lambda y: y.squeeze(dim=1), y)
    c.check("y.squeeze(axis=3)", lambda y: y.squeeze(axis=3), y)


@op("expand", "expand_as", "repeat", "repeat_interleave", "torch.repeat_interleave")
def expand(c: Recorder):
    x = c.f(3, 1)
    c.check("x.expand(3, 4)", lambda x: x.expand(3, 4), x)
    c.check("x.expand(-1, 4)", lambda x: x.expand(-1, 4), x)
    c.check("x.expand(2, 3, 4)", lambda x: x.expand(2, 3, 4), x)
    c.check("x.expand_as(y)", lambda x, y: x.expand_as(y), x, c.f(3, 5), grad=(0,))
    c.check("x.repeat(2, 3)", lambda x: x.repeat(2, 3), c.f(2, 3))
    c.check("x.repeat(2, 1, 1)", lambda x: x.repeat(2, 1, 1), c.f(2, 3))
    y = c.f(3, 2)
    c.check("y.repeat_interleave(2, dim=0)", lambda y: y.repeat_interleave(2, dim=0), y)
    c.check("y.repeat_interleave(3, dim=1)", lambda y: y.repeat_interleave(3, dim=1), y)
    c.check("torch.repeat_interleave(y, 2)", lambda y: torch.repeat_interleave(y, 2), y)
    c.check("torch.repeat_interleave(y, tensor, dim=0)",
            lambda y, r: torch.repeat_interleave(y, r, dim=0), y, np.array([1, 0, 2]))
    c.check("torch.repeat_interleave(counts)", lambda r: torch.repeat_interleave(r), np.array([2, 0, 3]))


@op("contiguous", "clone", "torch.clone", "detach", "is_contiguous", "detach_")
def contiguous(c: Recorder):
    x = c.f(3, 4)
    c.check("x.contiguous()", lambda x: x.contiguous(), x)
    c.check("x.t().contiguous()", lambda x: x.t().contiguous(), x)
    c.value("x.is_contiguous()", lambda: torch.tensor(x).is_contiguous())
    c.value("x.t().is_contiguous()", lambda: torch.tensor(x).t().is_contiguous())
    c.check("x.clone()", lambda x: x.clone(), x)
    c.check("torch.clone(x)", lambda x: torch.clone(x), x)
    c.check("x.detach()", lambda x: x.detach(), x, grad=False)
    c.aliasing("aliasing x.clone() (no sharing)", lambda b: b.clone(), c.f(3, 4))
    c.aliasing("aliasing x.detach()", lambda b: b.detach(), c.f(3, 4))
    c.inplace("x.detach_()", lambda x: x.detach_(), x)


@op("select", "narrow", "index", "masked_select")
def select(c: Recorder):
    x = c.f(3, 4, 2)
    c.check("x.select(1, 2)", lambda x: x.select(1, 2), x)
    c.check("x.select(0, -1)", lambda x: x.select(0, -1), x)
    c.check("x.narrow(1, 1, 2)", lambda x: x.narrow(1, 1, 2), x)
    c.check("x[1:3]", lambda x: x[1:3], x)
    c.check("x[:, ::2]", lambda x: x[:, ::2], x)
    c.check("x[..., 0]", lambda x: x[..., 0], x)
    c.check("x[None, :, 1]", lambda x: x[None, :, 1], x)
    c.check("x[index tensor]", lambda x, i: x[i], x, np.array([2, 0, 2]))
    c.check("x[bool mask]", lambda x, m: x[m], x, c.b(3, 4, 2))
    c.check("x[:, idx, :]", lambda x, i: x[:, i, :], x, np.array([3, 1]))
    c.check("x.masked_select(mask)", lambda x, m: x.masked_select(m), x, c.b(3, 4, 2))
    c.aliasing("aliasing x[1:3]", lambda b: b[1:3], c.f(3, 4))
    c.aliasing("aliasing x[1]", lambda b: b[1], c.f(3, 4))
    c.aliasing("aliasing x.narrow(1, 1, 2)", lambda b: b.narrow(1, 1, 2), c.f(3, 4))


@op("size", "numel", "dim", "nelement", "element_size", "stride", "torch.numel", "torch.Size", "is_floating_point",
    "torch.is_floating_point", "torch.is_tensor", "storage_offset")
def metadata(c: Recorder):
    x = torch.tensor(c.f(2, 3, 4))
    c.value("x.size()", lambda: x.size())
    c.value("x.size(1)", lambda: x.size(1))
    c.value("x.size(-1)", lambda: x.size(-1))
    c.value("x.size(dim=0)", lambda: x.size(dim=0))
    c.value("x.numel()", lambda: x.numel())
    c.value("torch.numel(x)", lambda: torch.numel(x))
    c.value("x.nelement()", lambda: x.nelement())
    c.value("x.dim()", lambda: x.dim())
    c.value("x.element_size() float64/float32/bf16/int64/bool",
            lambda: [x.to(d).element_size() for d in (torch.float64, torch.float32, torch.bfloat16, torch.int64,
                                                      torch.bool)])
    c.value("x.stride()", lambda: x.stride())
    c.value("x.t().stride() 2-d", lambda: x[0].t().stride())
    c.value("x[1:].storage_offset()", lambda: x[1:].storage_offset())
    c.value("torch.Size([2, 3])", lambda: torch.Size([2, 3]))
    c.value("is_floating_point", lambda: [x.is_floating_point(), torch.is_floating_point(x.long())])
    c.value("is_tensor", lambda: [torch.is_tensor(x), torch.is_tensor(np.zeros(2)), torch.is_tensor(1.0)])


# --- factories -------------------------------------------------------------------------------------------

@op("torch.tensor", "torch.LongTensor", "torch.IntTensor", "torch.FloatTensor", "torch.Tensor", "torch.from_numpy",
    "tolist", "item", "numpy")
def tensor(c: Recorder):
    c.value("tensor([1, 2, 3])", lambda: torch.tensor([1, 2, 3]))
    c.value("tensor([1.5, 2])", lambda: torch.tensor([1.5, 2]))
    c.value("tensor(True)", lambda: torch.tensor(True))
    c.value("tensor(3, dtype=float32)", lambda: torch.tensor(3, dtype=torch.float32))
    c.value("tensor([..], dtype=int64, device='cpu')", lambda: torch.tensor([4, 5], dtype=torch.int64, device="cpu"))
    c.value("tensor(list of floats, dtype=bfloat16)", lambda: torch.tensor([0.1, 1e3], dtype=torch.bfloat16))
    c.value("tensor(np.float64 array)", lambda: torch.tensor(np.array([0.1, 0.2])))
    c.value("LongTensor([1, 2])", lambda: torch.LongTensor([1, 2]))
    c.value("IntTensor([1, 2])", lambda: torch.IntTensor([1, 2]))
    c.value("FloatTensor([1, 2])", lambda: torch.FloatTensor([1, 2]))
    c.value("Tensor([1, 2])", lambda: torch.Tensor([1, 2]))
    c.value("from_numpy(int32)", lambda: torch.from_numpy(np.arange(4, dtype=np.int32)))
    c.value("from_numpy shares memory", lambda: _from_numpy_shares())
    x = torch.tensor(c.f(2, 3))
    c.value("x.tolist()", lambda: x.tolist())
    c.value("x.sum().item()", lambda: x.sum().item())
    c.value("int tensor.item()", lambda: torch.tensor([7]).item())
    c.value("x.numpy()", lambda: x.numpy().tolist())
    c.value("float(x.sum())", lambda: float(x.sum()))
    c.value("int(x.sum() * 100), bool(x.sum() > 0)", lambda: [int(x.sum() * 100), bool(x.sum() > 0)])


def _from_numpy_shares():
    a = np.arange(3, dtype=np.float32)
    t = torch.from_numpy(a)
    a[0] = 9
    return t


@op("torch.empty", "torch.empty_like", "new_empty", "torch.zeros", "torch.zeros_like", "torch.ones",
    "torch.ones_like", "torch.full", "torch.full_like", "new_zeros", "new_ones", "new")
def factories(c: Recorder):
    c.check("empty(4, 3, dtype=, device=)", lambda: torch.empty(4, 3, dtype=torch.float32, device="cpu"), values=False)
    c.check("empty((2, 3), dtype=bf16, requires_grad=True)",
            lambda: torch.empty((2, 3), dtype=torch.bfloat16, requires_grad=True).requires_grad, values=True)
    c.check("empty(0)", lambda: torch.empty(0))
    c.check("empty(2, layout=torch.strided)", lambda: torch.empty(2, layout=torch.strided), values=False)
    c.check("zeros(2, layout=torch.strided)", lambda: torch.zeros(2, layout=torch.strided))
    x = c.f(2, 3)
    c.check("empty_like(x)", lambda x: torch.empty_like(x), x, values=False, grad=False)
    c.check("empty_like(x, dtype=int32)", lambda x: torch.empty_like(x, dtype=torch.int32), x, values=False)
    c.check("x.new_empty((3,))", lambda x: x.new_empty((3,)), x, values=False, grad=False)
    c.check("x.new_empty(size=(2,), dtype=int64)", lambda x: x.new_empty(size=(2,), dtype=torch.int64), x,
            values=False)
    c.check("zeros(2, 3)", lambda: torch.zeros(2, 3))
    c.check("zeros((2,), dtype=int64, device='cpu')", lambda: torch.zeros((2,), dtype=torch.int64, device="cpu"))
    c.check("zeros(size=(2, 2))", lambda: torch.zeros(size=(2, 2)))
    c.check("zeros(3, requires_grad=True).requires_grad", lambda: torch.zeros(3, requires_grad=True).requires_grad)
    c.check("zeros_like(x)", lambda x: torch.zeros_like(x), x, grad=False)
    c.check("zeros_like(x, memory_format=preserve)", lambda x: torch.zeros_like(x, memory_format=torch.preserve_format),
            x, grad=False)
    c.check("zeros_like(x, dtype=int64)", lambda x: torch.zeros_like(x, dtype=torch.int64), x)
    c.check("ones(2, 3, dtype=bool)", lambda: torch.ones(2, 3, dtype=torch.bool))
    c.check("ones((3,))", lambda: torch.ones((3,)))
    c.check("ones_like(x)", lambda x: torch.ones_like(x), x, grad=False)
    c.check("ones_like(x, dtype=int32)", lambda x: torch.ones_like(x, dtype=torch.int32), x)
    c.check("full((2, 3), 1.5)", lambda: torch.full((2, 3), 1.5))
    c.check("full((2,), 7, dtype=int64)", lambda: torch.full((2,), 7, dtype=torch.int64))
    c.check("full((2,), -inf, dtype=float32)", lambda: torch.full((2,), float("-inf"), dtype=torch.float32))
    c.check("full([2], True)", lambda: torch.full([2], True))
    c.check("full((2,), fill_value=3.0, dtype=float32)", lambda: torch.full((2,), fill_value=3.0, dtype=torch.float32))
    c.check("full_like(x, 2)", lambda x: torch.full_like(x, 2), x, grad=False)
    c.check("x.new_zeros(2)", lambda x: x.new_zeros(2), x, grad=False)
    c.check("x.new_ones((2, 1))", lambda x: x.new_ones((2, 1)), x, grad=False)
    c.check("x.new([1, 2])", lambda x: x.new([1, 2]), x, grad=False)


@op("torch.arange", "torch.linspace")
def arange(c: Recorder):
    c.value("arange(5)", lambda: torch.arange(5))
    c.value("arange(2, 9, 3)", lambda: torch.arange(2, 9, 3))
    c.value("arange(0, 1, 0.25)", lambda: torch.arange(0, 1, 0.25))
    c.value("arange(4, dtype=float32, device='cpu')", lambda: torch.arange(4, dtype=torch.float32, device="cpu"))
    c.value("arange(start=1, end=7, step=2)", lambda: torch.arange(start=1, end=7, step=2))
    c.value("arange(0, 6, dtype=int32)", lambda: torch.arange(0, 6, dtype=torch.int32))
    c.value("arange(tensor(3))", lambda: torch.arange(torch.tensor(3)))
    c.value("linspace(0, 1, 5)", lambda: torch.linspace(0, 1, 5))
    c.value("linspace(-1, 1, steps=4, device='cpu')", lambda: torch.linspace(-1, 1, steps=4, device="cpu"))


# --- casts ----------------------------------------------------------------------------------------------

@op("to", "float", "long", "bool", "int", "byte", "half", "bfloat16", "double", "type", "type_as", "cpu")
def casts(c: Recorder):
    x = c.f(2, 3, scale=3.0)
    c.check("x.to(float32)", lambda x: x.to(torch.float32), x)
    c.check("x.to(dtype=bfloat16)", lambda x: x.to(dtype=torch.bfloat16), x)
    c.check("x.to('cpu')", lambda x: x.to("cpu"), x)
    c.check("x.to(device='cpu', dtype=float16)", lambda x: x.to(device="cpu", dtype=torch.float16), x)
    c.check("x.to(y) (y int32)", lambda x, y: x.to(y), x, np.zeros(2, np.int32))
    c.check("x.to('cpu', non_blocking=True)", lambda x: x.to("cpu", non_blocking=True), x)
    c.check("x.float()", lambda x: x.float(), x)
    c.check("x.double()", lambda x: x.double(), x)
    c.check("x.half()", lambda x: x.half(), x)
    c.check("x.bfloat16()", lambda x: x.bfloat16(), x)
    c.check("x.long() truncates", lambda x: x.long(), x)
    c.check("x.int()", lambda x: x.int(), x)
    c.check("x.bool()", lambda x: x.bool(), x)
    c.check("x.byte() of non-negative", lambda x: x.byte(), np.abs(x) * 10)
    c.check("int x.float()", lambda x: x.float(), c.i(-5, 5, 4))
    c.check("bool x.long()", lambda x: x.long(), c.b(4))
    c.check("x.type(torch.float32)", lambda x: x.type(torch.float32), x)
    c.value("x.type() name", lambda: torch.tensor(x).float().type())
    c.check("x.type_as(int tensor)", lambda x, y: x.type_as(y), x, c.i(0, 3, 2))
    c.check("x.cpu()", lambda x: x.cpu(), x)


# --- elementwise arithmetic ----------------------------------------------------------------------------

@op("add", "torch.add", "sub", "mul", "torch.mul", "div", "torch.div", "divide", "pow", "torch.pow", "torch.square",
    "square", "reciprocal", "torch.reciprocal")
def arithmetic(c: Recorder):
    x, y = c.f(3, 4), c.f(3, 4, positive=True)
    c.check("x.add(y)", lambda x, y: x.add(y), x, y)
    c.check("x.add(y, alpha=2)", lambda x, y: x.add(y, alpha=2), x, y)
    c.check("x.add(1.5)", lambda x: x.add(1.5), x)
    c.check("torch.add(x, y)", lambda x, y: torch.add(x, y), x, y)
    c.check("torch.add(x, row)", lambda x, r: torch.add(x, r), x, c.f(4))
    c.check("x.sub(y)", lambda x, y: x.sub(y), x, y)
    c.check("x.sub(y, alpha=0.5)", lambda x, y: x.sub(y, alpha=0.5), x, y)
    c.check("x.mul(y)", lambda x, y: x.mul(y), x, y)
    c.check("torch.mul(x, 3)", lambda x: torch.mul(x, 3), x)
    c.check("x.div(y)", lambda x, y: x.div(y), x, y)
    c.check("torch.div(x, 2)", lambda x: torch.div(x, 2), x)
    c.check("torch.div(int, int) true division", lambda a, b: torch.div(a, b), c.i(-9, 9, 5), c.i(1, 4, 5))
    c.check("torch.div(int, int, rounding_mode='floor')", lambda a, b: torch.div(a, b, rounding_mode="floor"),
            c.i(-9, 9, 5), c.i(1, 4, 5))
    c.check("torch.div(x, y, rounding_mode='trunc')", lambda a, b: torch.div(a, b, rounding_mode="trunc"),
            x * 5, y, grad=False)
    c.check("x.divide(y)", lambda x, y: x.divide(y), x, y)
    c.check("x.pow(2)", lambda x: x.pow(2), x)
    c.check("y.pow(0.5)", lambda y: y.pow(0.5), y)
    c.check("torch.pow(y, x)", lambda y, x: torch.pow(y, x), y, x)
    c.check("torch.pow(2, x)", lambda x: torch.pow(2, x), x)
    c.check("torch.square(x)", lambda x: torch.square(x), x)
    c.check("x.square()", lambda x: x.square(), x)
    c.check("y.reciprocal()", lambda y: y.reciprocal(), y)
    c.check("torch.reciprocal(y)", lambda y: torch.reciprocal(y), y)
    c.check("torch.reciprocal(y, out=buf)",
            lambda y: _with_out(lambda buf: torch.reciprocal(y, out=buf), torch.empty(3, 4, dtype=y.dtype)), y, grad=False)
    c.check("x + y, x - y, x * y, x / y", lambda x, y: [x + y, x - y, x * y, x / y], x, y)
    c.check("2 - x, 1 / y, -x, x ** 2", lambda x, y: [2 - x, 1 / y, -x, x ** 2], x, y)
    c.check("int + float promotes", lambda a, x: a + x, c.i(0, 5, 3, 4), x)
    c.check("int * 0.5 promotes", lambda a: a * 0.5, c.i(0, 5, 4))
    c.check("float32 + float64 scalar tensor", lambda a: a.float() + torch.tensor(1.5, dtype=torch.float64), x)


@op("torch.exp", "exp", "torch.log", "log", "torch.sqrt", "sqrt", "torch.rsqrt", "torch.abs", "abs", "absolute",
    "torch.sign", "torch.sin", "sin", "torch.cos", "cos", "torch.tanh", "torch.erf", "torch.acos", "torch.ceil",
    "ceil", "floor", "trunc", "round", "log2")
def unary(c: Recorder):
    x, p = c.f(3, 4), c.f(3, 4, positive=True)
    for name in ("exp", "sin", "cos", "tanh", "erf", "abs", "sign", "ceil", "floor", "trunc", "round"):
        c.check(f"torch.{name}(x)", lambda x, n=name: getattr(torch, n)(x), x * 2)
    for name in ("log", "sqrt", "rsqrt", "log2"):
        c.check(f"torch.{name}(p)", lambda p, n=name: getattr(torch, n)(p), p)
    c.check("torch.acos(x/4)", lambda x: torch.acos(x), np.clip(x / 4, -0.9, 0.9))
    for name in ("exp", "log", "sqrt", "abs", "absolute", "sin", "cos", "ceil", "floor", "trunc", "round", "log2"):
        c.check(f"p.{name}()", lambda p, n=name: getattr(p, n)(), p * 3)
    c.check("torch.exp(x, out=buf)",
            lambda x: _with_out(lambda buf: torch.exp(x, out=buf), torch.empty(3, 4, dtype=x.dtype)), x, grad=False)
    c.check("torch.abs(int)", lambda a: torch.abs(a), c.i(-5, 5, 6))
    c.check("torch.sign(0, int)", lambda a: torch.sign(a), np.array([-3, 0, 2]))


@op("torch.clamp", "clamp", "clip", "clamp_", "torch.maximum", "torch.minimum")
def clamp(c: Recorder):
    x = c.f(3, 4) * 2
    c.check("torch.clamp(x, min=-0.5)", lambda x: torch.clamp(x, min=-0.5), x)
    c.check("torch.clamp(x, min=-1, max=1)", lambda x: torch.clamp(x, min=-1, max=1), x)
    c.check("torch.clamp(x, -1, 1)", lambda x: torch.clamp(x, -1, 1), x)
    c.check("torch.clamp(x, max=0.3)", lambda x: torch.clamp(x, max=0.3), x)
    c.check("x.clamp(min=0)", lambda x: x.clamp(min=0), x)
    c.check("x.clamp(lo_tensor, hi_tensor)", lambda x, lo: x.clamp(lo, lo + 1), x, c.f(3, 4))
    c.check("x.clip(-0.2, 0.2)", lambda x: x.clip(-0.2, 0.2), x)
    c.check("int clamp(min=1)", lambda a: torch.clamp(a, min=1), c.i(-3, 4, 6))
    c.inplace("x.clamp_(min=0)", lambda x: x.clamp_(min=0), x)
    c.check("torch.maximum(x, y)", lambda x, y: torch.maximum(x, y), x, c.f(3, 4))
    c.check("torch.minimum(x, y)", lambda x, y: torch.minimum(x, y), x, c.f(3, 4))


# --- reductions -------------------------------------------------------------------------------------------

@op("sum", "torch.sum", "mean", "torch.mean", "prod", "nanmean")
def sums(c: Recorder):
    x = c.f(3, 4, 2)
    c.check("x.sum()", lambda x: x.sum(), x)
    c.check("x.sum(dim=-1)", lambda x: x.sum(dim=-1), x)
    c.check("x.sum(1)", lambda x: x.sum(1), x)
    c.check("x.sum(dim=[0, 2])", lambda x: x.sum(dim=[0, 2]), x)
    c.check("x.sum(dim=1, keepdim=True)", lambda x: x.sum(dim=1, keepdim=True), x)
    c.check("x.sum(axis=0)", lambda x: x.sum(axis=0), x)
    c.check("x.sum(axis=-1, keepdims=True)", lambda x: x.sum(axis=-1, keepdims=True), x)
    c.check("x.sum(dtype=float32)", lambda x: x.sum(dtype=torch.float32), x)
    c.check("torch.sum(x)", lambda x: torch.sum(x), x)
    c.check("torch.sum(x, dim=0)", lambda x: torch.sum(x, dim=0), x)
    c.check("torch.sum(x, (1, 2), keepdim=True)", lambda x: torch.sum(x, (1, 2), keepdim=True), x)
    c.check("bool.sum() is int64", lambda m: m.sum(), c.b(3, 4))
    c.check("int32.sum() is int64", lambda a: a.int().sum(), c.i(0, 9, 5))
    c.check("x.mean()", lambda x: x.mean(), x)
    c.check("x.mean(dim=-1, keepdim=True)", lambda x: x.mean(dim=-1, keepdim=True), x)
    c.check("x.mean(1)", lambda x: x.mean(1), x)
    c.check("torch.mean(x, dim=0)", lambda x: torch.mean(x, dim=0), x)
    c.check("x.mean(dtype=float32)", lambda x: x.mean(dtype=torch.float32), x)
    c.check("x.prod()", lambda x: x.prod(), c.f(2, 3, positive=True))
    c.check("x.prod(1)", lambda x: x.prod(1), c.f(2, 3))
    c.check("x.nanmean()", lambda x: x.nanmean(), np.where(c.b(3, 4), np.nan, c.f(3, 4)), grad=False)


@op("max", "torch.max", "min", "torch.min", "argmax", "torch.argmax", "argmin", "torch.all", "all", "torch.any",
    "any", "torch.count_nonzero", "torch.logsumexp")
def extrema(c: Recorder):
    x = c.f(3, 5)
    c.check("x.max()", lambda x: x.max(), x)
    c.check("x.max(dim=1)", lambda x: tuple(x.max(dim=1)), x)
    c.check("x.max(dim=-1, keepdim=True)", lambda x: tuple(x.max(dim=-1, keepdim=True)), x)
    c.check("x.max(dim=0).values / .indices", lambda x: [x.max(dim=0).values, x.max(dim=0).indices], x)
    c.check("torch.max(x)", lambda x: torch.max(x), x)
    c.check("torch.max(x, 1)", lambda x: tuple(torch.max(x, 1)), x)
    c.check("torch.max(x, dim=0)[0]", lambda x: torch.max(x, dim=0)[0], x)
    c.check("torch.max(x, y) elementwise", lambda x, y: torch.max(x, y), x, c.f(3, 5))
    c.check("x.min()", lambda x: x.min(), x)
    c.check("torch.min(x, 0)", lambda x: tuple(torch.min(x, 0)), x)
    c.check("torch.min(x, y)", lambda x, y: torch.min(x, y), x, c.f(3, 5))
    c.check("x.argmax()", lambda x: x.argmax(), x)
    c.check("x.argmax(dim=-1)", lambda x: x.argmax(dim=-1), x)
    c.check("x.argmax(dim=1, keepdim=True)", lambda x: x.argmax(dim=1, keepdim=True), x)
    c.check("torch.argmax(x, dim=0)", lambda x: torch.argmax(x, dim=0), x)
    c.check("torch.argmax(x, 1)", lambda x: torch.argmax(x, 1), x)
    c.check("x.argmin(0)", lambda x: x.argmin(0), x)
    m = c.b(3, 4)
    c.check("torch.all(m)", lambda m: torch.all(m), m)
    c.check("torch.all(ones)", lambda m: torch.all(m), np.ones(3, bool))
    c.check("m.all()", lambda m: m.all(), m)
    c.check("torch.any(m, dim=1)", lambda m: torch.any(m, dim=1), m)
    c.check("m.any()", lambda m: m.any(), m)
    c.check("torch.any(float x > 0)", lambda x: torch.any(x > 3), x)
    c.check("torch.count_nonzero(m)", lambda m: torch.count_nonzero(m), m)
    c.check("torch.count_nonzero(int)", lambda a: torch.count_nonzero(a), c.i(0, 3, 8))
    c.check("torch.logsumexp(x, dim=-1)", lambda x: torch.logsumexp(x, dim=-1), x * 3)
    c.check("torch.logsumexp(x, dim=1, keepdim=True)", lambda x: torch.logsumexp(x, dim=1, keepdim=True), x)


@op("norm", "torch.norm", "torch.linalg.vector_norm", "std", "torch.nn.functional.normalize", dtype="float32")
def norms(c: Recorder):
    """float32: MindSpore's CPU LpNorm kernel has no float64 (the first label shows it)."""
    x = c.f(3, 4)
    c.check("x.norm() float64", lambda x: x.norm(), x.astype(np.float64))
    c.check("x.norm()", lambda x: x.norm(), x)
    c.check("x.norm(2)", lambda x: x.norm(2), x)
    c.check("x.norm(p=1)", lambda x: x.norm(p=1), x)
    c.check("x.norm(2, dim=-1)", lambda x: x.norm(2, dim=-1), x)
    c.check("x.norm(dim=1, keepdim=True)", lambda x: x.norm(dim=1, keepdim=True), x)
    c.check("x.norm(float('inf'))", lambda x: x.norm(float("inf")), x)
    c.check("torch.norm(x)", lambda x: torch.norm(x), x)
    c.check("torch.norm(x, 2)", lambda x: torch.norm(x, 2), x)
    c.check("torch.linalg.vector_norm(x)", lambda x: torch.linalg.vector_norm(x), x)
    c.check("vector_norm(x, ord=2, dim=-1)", lambda x: torch.linalg.vector_norm(x, ord=2, dim=-1), x)
    c.check("vector_norm(x, dtype=float32)", lambda x: torch.linalg.vector_norm(x, dtype=torch.float32), x)
    c.check("x.std()", lambda x: x.std(), x)
    c.check("x.std(dim=0)", lambda x: x.std(dim=0), x)
    c.check("F.normalize(x, dim=-1)", lambda x: F.normalize(x, dim=-1), x)
    c.check("F.normalize(x, p=1, dim=0)", lambda x: F.normalize(x, p=1, dim=0), x)


@op("torch.cumsum", "cumsum", "torch.cumprod", "torch.diff")
def cumulative(c: Recorder):
    x = c.f(3, 4)
    c.check("torch.cumsum(x, dim=0)", lambda x: torch.cumsum(x, dim=0), x)
    c.check("torch.cumsum(x, dim=-1)", lambda x: torch.cumsum(x, dim=-1), x)
    c.check("x.cumsum(dim=1)", lambda x: x.cumsum(dim=1), x)
    c.check("torch.cumsum(int, dim=0)", lambda a: torch.cumsum(a, dim=0), c.i(0, 5, 6))
    c.check("torch.cumsum(bool, 0)", lambda m: torch.cumsum(m, 0), c.b(6))
    c.check("torch.cumsum(int32, dim=0) dtype", lambda a: torch.cumsum(a.int(), dim=0), c.i(0, 5, 6))
    c.check("torch.cumprod(x, dim=1)", lambda x: torch.cumprod(x, dim=1), x)
    c.check("torch.diff(x)", lambda x: torch.diff(x), x)
    c.check("torch.diff(int, dim=0)", lambda a: torch.diff(a, dim=0), c.i(0, 9, 5))


# --- sorting and selecting --------------------------------------------------------------------------------

@op("torch.topk", "topk", "torch.sort", "sort", "argsort", "torch.nonzero", "nonzero", "unique")
def sorting(c: Recorder):
    x = c.f(3, 6)
    c.check("torch.topk(x, 2)", lambda x: tuple(torch.topk(x, 2)), x)
    c.check("torch.topk(x, k=3, dim=-1)", lambda x: tuple(torch.topk(x, k=3, dim=-1)), x)
    c.check("torch.topk(x, k=2, dim=0, sorted=False) as sorted",
            lambda x: torch.sort(torch.topk(x, k=2, dim=0, sorted=False)[0], dim=0)[0], x)
    c.check("torch.topk(x, k=3, dim=1, sorted=True)", lambda x: tuple(torch.topk(x, k=3, dim=1, sorted=True)), x)
    c.check("x.topk(2, largest=False)", lambda x: tuple(x.topk(2, largest=False)), x)
    c.check("torch.topk(x, k=2, dim=1, out=(v, i))",
            lambda x: _with_out(lambda v, i: tuple(torch.topk(x, k=2, dim=1, out=(v, i))),
                                torch.empty(3, 2, dtype=x.dtype), torch.empty(3, 2).long()), x, grad=False)
    c.check("torch.sort(x)", lambda x: tuple(torch.sort(x)), x)
    c.check("torch.sort(x, descending=True)", lambda x: tuple(torch.sort(x, descending=True)), x)
    c.check("torch.sort(x, dim=0)", lambda x: tuple(torch.sort(x, dim=0)), x)
    c.check("torch.sort(ties, stable=True)", lambda a: tuple(torch.sort(a, stable=True)), c.i(0, 3, 10))
    c.check("x.sort(dim=-1)", lambda x: tuple(x.sort(dim=-1)), x)
    c.check("x.argsort(dim=-1)", lambda x: x.argsort(dim=-1), x)
    c.check("x.argsort(descending=True)", lambda x: x.argsort(descending=True), x)
    m = c.b(3, 4)
    c.check("torch.nonzero(m)", lambda m: torch.nonzero(m), m)
    c.check("torch.nonzero(m, as_tuple=True)", lambda m: torch.nonzero(m, as_tuple=True), m)
    c.check("m.nonzero()", lambda m: m.nonzero(), m)
    c.check("x.nonzero(as_tuple=False) empty", lambda x: x.nonzero(as_tuple=False), np.zeros((2, 3)))
    c.check("a.unique()", lambda a: a.unique(), c.i(0, 5, 10))
    c.check("a.unique(return_counts=True)", lambda a: a.unique(return_counts=True), c.i(0, 5, 10))


@op("torch.where", "torch.masked_fill", "masked_fill", "masked_fill_")
def where(c: Recorder):
    x, y, m = c.f(3, 4), c.f(3, 4), c.b(3, 4)
    c.check("torch.where(m, x, y)", lambda m, x, y: torch.where(m, x, y), m, x, y)
    c.check("torch.where(m, x, 0.0)", lambda m, x: torch.where(m, x, 0.0), m, x)
    c.check("torch.where(m, 1, 0) int", lambda m: torch.where(m, 1, 0), m)
    c.check("torch.where(m)", lambda m: torch.where(m), m)
    c.check("torch.where(m row, x, y) broadcast", lambda m, x, y: torch.where(m, x, y), c.b(4), x, y)
    c.check("torch.masked_fill(x, m, -10000.0)", lambda x, m: torch.masked_fill(x, m, -10000.0), x, m)
    c.check("x.masked_fill(m, 0.0)", lambda x, m: x.masked_fill(m, 0.0), x, m)
    c.check("x.masked_fill(m, -inf)", lambda x, m: x.masked_fill(m, float("-inf")), x, m, grad=False)
    c.check("x.masked_fill(m broadcast, 1.5)", lambda x, m: x.masked_fill(m, 1.5), x, c.b(1, 4))
    c.check("x.masked_fill(m, tensor value)", lambda x, m: x.masked_fill(m, torch.tensor(2.0, dtype=x.dtype)), x, m)
    c.inplace("x.masked_fill_(m, -10000.0)", lambda x, m: x.masked_fill_(m, -10000.0), x, m)
    c.inplace("x.masked_fill_(m, value=0)", lambda x, m: x.masked_fill_(m, value=0), x, m)


@op("torch.gather", "gather", "torch.index_select", "index_select", "scatter", "scatter_", "scatter_add_",
    "scatter_add", "index_add_", "index_put_", "index_put", "index_copy", "index_copy_")
def indexing(c: Recorder):
    x = c.f(4, 5)
    idx = c.i(0, 5, 4, 3)
    c.check("torch.gather(x, 1, idx)", lambda x, i: torch.gather(x, 1, i), x, idx)
    c.check("torch.gather(x, dim=1, index=idx)", lambda x, i: torch.gather(x, dim=1, index=i), x, idx)
    c.check("x.gather(0, idx)", lambda x, i: x.gather(0, i), x, c.i(0, 4, 2, 5))
    c.check("x.gather(-1, idx)", lambda x, i: x.gather(-1, i), x, idx)
    sel = np.array([3, 0, 3])
    c.check("torch.index_select(x, 0, idx)", lambda x, i: torch.index_select(x, 0, i), x, sel)
    c.check("torch.index_select(x, dim=1, index=idx)", lambda x, i: torch.index_select(x, dim=1, index=i), x, sel)
    c.check("x.index_select(1, idx)", lambda x, i: x.index_select(1, i), x, sel)
    src = c.f(4, 3)
    c.check("x.scatter(1, idx, src)", lambda x, i, s: x.scatter(1, i, s), x, np.array([[0, 1, 2]] * 4), src)
    c.check("x.scatter(1, idx, 1.0)", lambda x, i: x.scatter(1, i, 1.0), x, np.array([[4, 1, 2]] * 4))
    c.check("x.scatter(dim=0, index=, value=)", lambda x, i: x.scatter(dim=0, index=i, value=-1.0), x,
            np.array([[1, 0, 3, 2, 1]]))
    c.inplace("x.scatter_(1, idx, src)", lambda x, i, s: x.scatter_(1, i, s), x, np.array([[3, 1, 0]] * 4), src)
    c.inplace("zeros.scatter_add_(0, idx, src) repeated", lambda x, i, s: x.scatter_add_(0, i, s),
              np.zeros((3, 3)), c.i(0, 3, 4, 3), src)
    c.inplace("x.scatter_add_(dim=1, index=, src=)", lambda x, i, s: x.scatter_add_(dim=1, index=i, src=s),
              x, c.i(0, 5, 4, 3), src)
    c.check("x.scatter_add(0, idx, src)", lambda x, i, s: x.scatter_add(0, i, s), np.zeros((3, 3)),
            c.i(0, 3, 4, 3), src)
    c.inplace("x.index_add_(0, idx, src)", lambda x, i, s: x.index_add_(0, i, s), x, np.array([1, 1, 3]),
              c.f(3, 5))
    # out of place: the result, and the input as it is afterwards (MindSpore's IndexAdd adds into its operand)
    c.check("torch.index_add(x, 0, idx, src), x after", lambda x, i, s: (torch.index_add(x, 0, i, s), x.clone()),
            x, np.array([1, 1, 3]), c.f(3, 5))
    c.inplace("x.index_put_((rows,), v)", lambda x, i, v: x.index_put_((i,), v), x, np.array([0, 2]), c.f(2, 5))
    c.inplace("x.index_put_((r, c), v, accumulate=True)",
              lambda x, r, k, v: x.index_put_((r, k), v, accumulate=True), x, np.array([0, 0, 2]),
              np.array([1, 1, 4]), c.f(3))
    c.check("x.index_put((rows,), v)", lambda x, i, v: x.index_put((i,), v), x, np.array([1, 3]), c.f(2, 5))
    c.check("x.index_copy(0, idx, src)", lambda x, i, s: x.index_copy(0, i, s), x, np.array([3, 0]), c.f(2, 5))
    c.inplace("x.index_copy_(1, idx, src)", lambda x, i, s: x.index_copy_(1, i, s), x, np.array([4, 2]),
              c.f(4, 2))


@op("torch.tril", "tril", "torch.triu", "tril_", "torch.diag", "diag", "torch.outer", "torch.roll", "roll",
    "torch.flip", "torch.meshgrid")
def structure(c: Recorder):
    x = c.f(4, 4)
    c.check("torch.tril(x)", lambda x: torch.tril(x), x)
    c.check("torch.tril(x, diagonal=-1)", lambda x: torch.tril(x, diagonal=-1), x)
    c.check("torch.triu(x, diagonal=1)", lambda x: torch.triu(x, diagonal=1), x)
    c.check("torch.triu(x, 1) bool", lambda m: torch.triu(m, 1), np.ones((4, 4), bool))
    c.check("torch.tril(ones(3, 5))", lambda: torch.tril(torch.ones(3, 5)))
    c.check("x.tril(1)", lambda x: x.tril(1), x)
    c.inplace("x.tril_()", lambda x: x.tril_(), x)
    c.check("torch.diag(v)", lambda v: torch.diag(v), c.f(3))
    c.check("torch.diag(x)", lambda x: torch.diag(x), x)
    c.check("x.diag()", lambda x: x.diag(), x)
    c.check("torch.outer(a, b)", lambda a, b: torch.outer(a, b), c.f(3), c.f(4))
    c.check("torch.roll(x, shifts=-1, dims=-1)", lambda x: torch.roll(x, shifts=-1, dims=-1), x)
    c.check("torch.roll(x, shifts=1, dims=0)", lambda x: torch.roll(x, shifts=1, dims=0), x)
    c.check("x.roll(2, 1)", lambda x: x.roll(2, 1), x)
    c.check("torch.flip(x, dims=[0])", lambda x: torch.flip(x, dims=[0]), x)
    c.check("torch.flip(x, [0, 1])", lambda x: torch.flip(x, [0, 1]), x)
    c.check("torch.meshgrid(a, b, indexing='ij')", lambda a, b: torch.meshgrid(a, b, indexing="ij"), c.f(2), c.f(3))


# --- comparison and logic ---------------------------------------------------------------------------------

@op("ne", "torch.eq", "torch.lt", "torch.logical_or", "torch.logical_and", "torch.logical_not", "torch.isnan",
    "isnan", "isinf", "torch.equal", "allclose", "isclose", "bitwise_not_")
def compare(c: Recorder):
    x, y = c.f(3, 4), c.f(3, 4)
    y[0] = x[0]
    c.check("x == y, x != y, x < y, x <= y, x > 0, x >= y",
            lambda x, y: [x == y, x != y, x < y, x <= y, x > 0, x >= y], x, y)
    c.check("x.ne(y)", lambda x, y: x.ne(y), x, y)
    c.check("torch.eq(x, y)", lambda x, y: torch.eq(x, y), x, y)
    c.check("torch.lt(x, 0.5)", lambda x: torch.lt(x, 0.5), x)
    a, b = c.b(5), c.b(5)
    c.check("torch.logical_or(a, b)", lambda a, b: torch.logical_or(a, b), a, b)
    c.check("torch.logical_and(a, b)", lambda a, b: torch.logical_and(a, b), a, b)
    c.check("torch.logical_not(a)", lambda a: torch.logical_not(a), a)
    c.check("a | b, a & b, ~a, a ^ b", lambda a, b: [a | b, a & b, ~a, a ^ b], a, b)
    z = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    c.check("torch.isnan(z)", lambda z: torch.isnan(z), z)
    c.check("z.isnan()", lambda z: z.isnan(), z)
    c.check("z.isinf()", lambda z: z.isinf(), z)
    c.value("torch.equal(x, x), torch.equal(x, y)",
            lambda: [torch.equal(torch.tensor(x), torch.tensor(x)), torch.equal(torch.tensor(x), torch.tensor(y))])
    c.value("x.allclose(x + 1e-9), x.allclose(y)",
            lambda: [torch.tensor(x).allclose(torch.tensor(x + 1e-9)), torch.tensor(x).allclose(torch.tensor(y))])
    c.check("x.isclose(y)", lambda x, y: x.isclose(y), x, y)
    c.inplace("a.bitwise_not_()", lambda a: a.bitwise_not_(), a)


def _router_aux_loss(logits):
    """Megatron's topk_softmax_with_capacity + switch_load_balancing_loss_func, reduced to the ops: the
    routing map is a bool tensor of the graph, used by .sum(dim=0) (tokens per expert) and as a mask."""
    probs, top_indices = torch.topk(logits, k=2, dim=1)
    gates = torch.zeros_like(logits).scatter(1, top_indices, probs)
    topk_map = torch.zeros_like(logits).int().scatter(1, top_indices, 1).bool()
    tokens_per_expert = topk_map.sum(dim=0)
    aux_loss = torch.sum(torch.softmax(logits, dim=-1).sum(dim=0) * tokens_per_expert)
    return (gates * topk_map).sum() + aux_loss


@op("torch.topk", "scatter", "bool")
def bool_in_graph(c: Recorder):
    """A bool tensor computed from a differentiable one and used twice: its (never needed) gradients
    were added as Bool on mindtorch (issue 10: --moe-router-load-balancing-type aux_loss failed with
    'For primitive[Add] ... but got Tensor[Bool]')."""
    x = c.f(6, 4)
    c.check("m = x > 0 used twice: (x * m).sum() + (x.sum(0) * m.sum(0)).sum()",
            lambda x: (lambda m: (x * m).sum() + (x.sum(0) * m.sum(0)).sum())(x > 0), x)
    c.check("router aux loss: topk map .bool() by .sum(dim=0) and as a mask", _router_aux_loss, x)


# --- in place -----------------------------------------------------------------------------------------

@op("add_", "sub_", "mul_", "div_", "copy_", "zero_", "fill_", "abs_", "floor_", "requires_grad_")
def inplace(c: Recorder):
    x, y = c.f(3, 4), c.f(3, 4, positive=True)
    c.inplace("x.add_(y)", lambda x, y: x.add_(y), x, y)
    c.inplace("x.add_(y, alpha=-0.5)", lambda x, y: x.add_(y, alpha=-0.5), x, y)
    c.inplace("x.add_(1.0)", lambda x: x.add_(1.0), x)
    c.inplace("x.add_(row) broadcast", lambda x, r: x.add_(r), x, c.f(4))
    c.inplace("x.sub_(y)", lambda x, y: x.sub_(y), x, y)
    c.inplace("x.mul_(y)", lambda x, y: x.mul_(y), x, y)
    c.inplace("x.mul_(0.5)", lambda x: x.mul_(0.5), x)
    c.inplace("x.div_(y)", lambda x, y: x.div_(y), x, y)
    c.inplace("x.div_(4)", lambda x: x.div_(4), x)
    c.inplace("x /= 2 (Megatron's loss scaling)", lambda x: _idiv(x, 2), x)
    c.inplace("x.copy_(y)", lambda x, y: x.copy_(y), x, y)
    c.inplace("x.copy_(int y) casts", lambda x, y: x.copy_(y), x, c.i(0, 9, 3, 4))
    c.inplace("x.copy_(row) broadcast", lambda x, r: x.copy_(r), x, c.f(4))
    c.inplace("x.copy_(y, non_blocking=True)", lambda x, y: x.copy_(y, non_blocking=True), x, y)
    c.inplace("x.zero_()", lambda x: x.zero_(), x)
    c.inplace("x.fill_(2.5)", lambda x: x.fill_(2.5), x)
    c.inplace("int x.fill_(7)", lambda x: x.fill_(7), c.i(0, 3, 4))
    c.inplace("x.abs_()", lambda x: x.abs_(), x)
    c.inplace("x.floor_()", lambda x: x.floor_(), x * 3)
    c.inplace("x[0] = 0.0", lambda x: _setitem(x, 0, 0.0), x)
    c.inplace("x[:, 1:3] = y", lambda x, v: _setitem(x, (slice(None), slice(1, 3)), v), x, c.f(3, 2))
    c.inplace("x[mask] = 1.0", lambda x, m: _setitem(x, m, 1.0), x, c.b(3, 4))
    c.value("requires_grad_()", lambda: torch.tensor(x).requires_grad_().requires_grad)
    c.value("requires_grad_(False)", lambda: torch.tensor(x).requires_grad_(False).requires_grad)
    c.aliasing("aliasing x.add_ through x.view(-1)", lambda b: b.view(-1), c.f(3, 4))


@op("masked_fill_", "add_", "mul_", "copy_", "div_", "zero_")
def inplace_gradients(c: Recorder):
    """In-place ops on a non-leaf inside the differentiated function (Megatron: masked_fill_ on attention
    scores, mul_/add_ on activations, copy_ into buffers): the gradient must flow through them."""
    x, y, m = c.f(3, 4), c.f(3, 4), c.b(3, 4)
    c.check("(x * 1).masked_fill_(m, 0.0)", lambda x, m: (x * 1).masked_fill_(m, 0.0), x, m)
    c.check("(x * 1).add_(y)", lambda x, y: (x * 1).add_(y), x, y)
    c.check("(x * 1).mul_(y)", lambda x, y: (x * 1).mul_(y), x, y)
    c.check("(x * 1).div_(2.0)", lambda x: (x * 1).div_(2.0), x)
    c.check("buf.copy_(x) into a fresh buffer", lambda x: torch.zeros(3, 4, dtype=x.dtype).copy_(x * 2), x)
    c.check("(x * 1)[0] = 0 (setitem)", lambda x: _setitem(x * 1, 0, 0.0), x)
    c.check("(x * 1).zero_() + y", lambda x, y: (x * 1).zero_() + y, x, y)


def _idiv(x, v):
    x /= v
    return x


def _setitem(x, key, v):
    x[key] = v
    return x


# --- matmul family --------------------------------------------------------------------------------------

@op("torch.matmul", "matmul", "torch.bmm", "mm", "torch.baddbmm", "torch.einsum", "torch.addcmul")
def matmul(c: Recorder):
    a, b = c.f(3, 4), c.f(4, 5)
    c.check("torch.matmul(a, b)", lambda a, b: torch.matmul(a, b), a, b)
    c.check("a.matmul(b)", lambda a, b: a.matmul(b), a, b)
    c.check("a @ b", lambda a, b: a @ b, a, b)
    c.check("torch.matmul(batch, b) broadcast", lambda x, b: torch.matmul(x, b), c.f(2, 3, 4), b)
    c.check("torch.matmul(x4d, y4d)", lambda x, y: torch.matmul(x, y), c.f(2, 2, 3, 4), c.f(2, 2, 4, 3))
    c.check("torch.matmul(v, b) vector", lambda v, b: torch.matmul(v, b), c.f(4), b)
    c.check("torch.matmul(a, b, out=buf)",
            lambda a, b: _with_out(lambda buf: torch.matmul(a, b, out=buf), torch.empty(3, 5, dtype=a.dtype)),
            a, b, grad=False)
    c.check("torch.bmm(x, y)", lambda x, y: torch.bmm(x, y), c.f(2, 3, 4), c.f(2, 4, 2))
    c.check("a.mm(b)", lambda a, b: a.mm(b), a, b)
    c.check("torch.baddbmm(empty, q, k^T, beta=0.0, alpha=0.5)",
            lambda q, k: torch.baddbmm(torch.empty(2, 3, 3, dtype=q.dtype), q, k.transpose(1, 2), beta=0.0,
                                       alpha=0.5), c.f(2, 3, 4), c.f(2, 3, 4))
    c.check("torch.baddbmm(x, a, b, beta=0.5, alpha=2.0)",
            lambda x, p, q: torch.baddbmm(x, p, q, beta=0.5, alpha=2.0), c.f(2, 3, 3), c.f(2, 3, 4), c.f(2, 4, 3))
    c.check("torch.einsum('ij,jk->ik')", lambda a, b: torch.einsum("ij,jk->ik", a, b), a, b)
    c.check("torch.einsum('bsh,hd->bsd')", lambda x, w: torch.einsum("bsh,hd->bsd", x, w), c.f(2, 3, 4), b)
    c.check("torch.einsum('i,j->ij')", lambda u, v: torch.einsum("i,j->ij", u, v), c.f(3), c.f(2))
    c.check("torch.einsum('bhqd,bhkd->bhqk')", lambda q, k: torch.einsum("bhqd,bhkd->bhqk", q, k),
            c.f(1, 2, 3, 4), c.f(1, 2, 5, 4))
    c.check("torch.addcmul(x, a, b, value=0.5)", lambda x, p, q: torch.addcmul(x, p, q, value=0.5),
            c.f(3), c.f(3), c.f(3))


# --- activations, softmax, losses -------------------------------------------------------------------------

@op("torch.softmax", "softmax", "torch.nn.functional.softmax", "torch.nn.functional.log_softmax", "log_softmax")
def softmax(c: Recorder):
    x = c.f(3, 5) * 3
    c.check("torch.softmax(x, dim=-1)", lambda x: torch.softmax(x, dim=-1), x)
    c.check("torch.softmax(x, dim=-1, dtype=float32)", lambda x: torch.softmax(x, dim=-1, dtype=torch.float32), x)
    c.check("x.softmax(dim=0)", lambda x: x.softmax(dim=0), x)
    c.check("x.softmax(-1)", lambda x: x.softmax(-1), x)
    c.check("F.softmax(x, dim=-1)", lambda x: F.softmax(x, dim=-1), x)
    c.check("F.softmax(x, 1)", lambda x: F.softmax(x, 1), x)
    c.check("F.softmax(masked -inf row part)", lambda x, m: F.softmax(x.masked_fill(m, float("-inf")), dim=-1), x,
            np.array([[False, True, True, False, False]] * 3))
    c.check("F.log_softmax(x, dim=-1)", lambda x: F.log_softmax(x, dim=-1), x)
    c.check("F.log_softmax(x, dim=0)", lambda x: F.log_softmax(x, dim=0), x)
    c.check("x.log_softmax(-1)", lambda x: x.log_softmax(-1), x)


@op("torch.sigmoid", "sigmoid", "torch.nn.functional.sigmoid", "torch.nn.functional.silu", "torch.nn.functional.relu",
    "torch.relu", "torch.nn.functional.softplus", "torch.nn.functional.logsigmoid", "torch.nn.functional.gelu")
def activations(c: Recorder):
    x = c.f(3, 5) * 2
    c.check("torch.sigmoid(x)", lambda x: torch.sigmoid(x), x)
    c.check("x.sigmoid()", lambda x: x.sigmoid(), x)
    c.check("F.sigmoid(x)", lambda x: F.sigmoid(x), x)
    c.check("F.silu(x)", lambda x: F.silu(x), x)
    c.check("F.relu(x)", lambda x: F.relu(x), x)
    c.check("torch.relu(x)", lambda x: torch.relu(x), x)
    c.inplace("F.relu(x, inplace=True)", lambda x: F.relu(x, inplace=True), x)
    c.check("F.softplus(x)", lambda x: F.softplus(x), x)
    c.check("F.logsigmoid(x)", lambda x: F.logsigmoid(x), x)
    c.check("F.gelu(x)", lambda x: F.gelu(x), x)
    c.check("F.gelu(x, approximate='tanh')", lambda x: F.gelu(x, approximate="tanh"), x)


@op("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss", "torch.nn.functional.mse_loss",
    "torch.nn.functional.kl_div", "torch.nn.functional.one_hot")
def losses(c: Recorder):
    logits, target = c.f(5, 4), c.i(0, 4, 5)
    c.check("F.cross_entropy(logits, target)", lambda x, y: F.cross_entropy(x, y), logits, target)
    c.check("F.cross_entropy(logits, target, ignore_index=-100) with ignored",
            lambda x, y: F.cross_entropy(x, y, ignore_index=-100), logits, np.array([1, -100, 3, 0, -100]))
    c.check("F.cross_entropy(reduction='none')", lambda x, y: F.cross_entropy(x, y, reduction="none"), logits, target)
    c.check("F.cross_entropy(weight=w)", lambda x, y, w: F.cross_entropy(x, y, weight=w), logits, target,
            c.f(4, positive=True), grad=(0,))
    c.check("F.nll_loss(log_softmax, target)", lambda x, y: F.nll_loss(F.log_softmax(x, dim=-1), y), logits, target)
    c.check("F.mse_loss(a, b)", lambda a, b: F.mse_loss(a, b), c.f(3, 4), c.f(3, 4))
    c.check("F.mse_loss(a, b, reduction='sum')", lambda a, b: F.mse_loss(a, b, reduction="sum"), c.f(3, 4), c.f(3, 4))
    p, q = c.f(3, 4), c.f(3, 4)
    c.check("F.kl_div(log p, q, reduction='batchmean')",
            lambda p, q: F.kl_div(F.log_softmax(p, -1), F.softmax(q, -1), reduction="batchmean"), p, q)
    c.check("F.kl_div(log p, log q, reduction='sum', log_target=True)",
            lambda p, q: F.kl_div(F.log_softmax(p, -1), F.log_softmax(q, -1), reduction="sum", log_target=True), p, q)
    c.check("F.one_hot(t, num_classes=6)", lambda y: F.one_hot(y, num_classes=6), target)


@op("torch.nn.functional.linear", "torch.nn.functional.layer_norm", "torch.nn.functional.embedding",
    "torch.nn.functional.pad")
def layers(c: Recorder):
    x, w, bias = c.f(2, 3, 4), c.f(5, 4), c.f(5)
    c.check("F.linear(x, w)", lambda x, w: F.linear(x, w), x, w)
    c.check("F.linear(x, w, b)", lambda x, w, b: F.linear(x, w, b), x, w, bias)
    c.check("F.linear(x, weight=w, bias=b)", lambda x, w, b: F.linear(x, weight=w, bias=b), x, w, bias)
    g, b2 = c.f(4), c.f(4)
    c.check("F.layer_norm(x, (4,), g, b, 1e-5)", lambda x, g, b: F.layer_norm(x, (4,), g, b, 1e-5), x, g, b2)
    c.check("F.layer_norm(x, [4], weight=, bias=, eps=)",
            lambda x, g, b: F.layer_norm(x, [4], weight=g, bias=b, eps=1e-6), x, g, b2)
    c.check("F.embedding(ids, table)", lambda i, t: F.embedding(i, t), c.i(0, 6, 2, 3), c.f(6, 4))
    c.check("F.pad(x, (1, 2))", lambda x: F.pad(x, (1, 2)), x)
    c.check("F.pad(x, (0, 0, 1, 0), value=-1.0)", lambda x: F.pad(x, (0, 0, 1, 0), value=-1.0), x)
    c.check("F.pad(x, [0, 1], mode='constant', value=0)", lambda x: F.pad(x, [0, 1], mode="constant", value=0), x)
    c.check("F.pad(int, (1, 0), value=7)", lambda a: F.pad(a, (1, 0), value=7), c.i(0, 5, 2, 3))
    c.check("F.pad(input=x, pad=(1, 1))", lambda x: F.pad(input=x, pad=(1, 1)), x)
    c.check("F.dropout(x, p=0.0, training=True)", lambda x: F.dropout(x, p=0.0, training=True), x)
    c.check("F.dropout(x, p=0.5, training=False)", lambda x: F.dropout(x, p=0.5, training=False), x)


@op("torch.nn.init.constant_", "torch.nn.init.zeros_", "torch.nn.init.ones_")
def init(c: Recorder):
    x = c.f(3, 4)
    c.inplace("init.constant_(w, 0.5)", lambda w: torch.nn.init.constant_(w, 0.5), x)
    c.inplace("init.zeros_(w)", lambda w: torch.nn.init.zeros_(w), x)
    c.inplace("init.ones_(w)", lambda w: torch.nn.init.ones_(w), x)


# --- random: shapes, dtypes and ranges only (the two frameworks' streams differ) -------------------------

@op("torch.rand", "torch.randn", "torch.randint", "torch.rand_like", "torch.randn_like", "torch.randperm",
    "torch.multinomial", "normal_", "uniform_", "exponential_", "torch.nn.init.normal_",
    "torch.nn.init.trunc_normal_", "torch.nn.init.kaiming_uniform_", "torch.nn.functional.dropout")
def random(c: Recorder):
    x = c.f(50, 40)
    c.value("rand(3, 4, dtype=float32, device='cpu')",
            lambda: _stats(torch.rand(3, 4, dtype=torch.float32, device="cpu"), 0, 1))
    c.value("randn(2, 3)", lambda: _stats(torch.randn(2, 3)))
    c.value("randint(0, 10, (5,))", lambda: _stats(torch.randint(0, 10, (5,)), 0, 9))
    c.value("rand_like(x)", lambda: _stats(torch.rand_like(torch.tensor(x)), 0, 1))
    c.value("randn_like(x)", lambda: _stats(torch.randn_like(torch.tensor(x))))
    c.value("randperm(6) is a permutation", lambda: sorted(torch.randperm(6).tolist()))
    c.value("multinomial(p, num_samples=3)",
            lambda: _stats(torch.multinomial(torch.tensor([[0.0, 0.5, 0.5, 0.0]]), num_samples=2), 1, 2))
    c.value("x.normal_(0, 0.02)", lambda: _stats(torch.tensor(x).normal_(0, 0.02), -0.2, 0.2))
    c.value("x.uniform_(-1, 1)", lambda: _stats(torch.tensor(x).uniform_(-1, 1), -1, 1))
    c.value("x.exponential_()", lambda: _stats(torch.tensor(x).exponential_(), 0, None))
    c.value("init.normal_(w, mean=0, std=0.02)",
            lambda: _stats(torch.nn.init.normal_(torch.tensor(x), mean=0.0, std=0.02), -0.2, 0.2))
    c.value("init.trunc_normal_(w, std=0.5)",
            lambda: _stats(torch.nn.init.trunc_normal_(torch.tensor(x), std=0.5), -2, 2))
    c.value("init.kaiming_uniform_(w, a=sqrt(5))",
            lambda: _stats(torch.nn.init.kaiming_uniform_(torch.tensor(x), a=5 ** 0.5), -0.16, 0.16))
    c.value("F.dropout(ones, p=0.5, training=True): zeros or 2",
            lambda: sorted(set(F.dropout(torch.ones(400), p=0.5, training=True).tolist())))


def _stats(t, low=None, high=None):
    """What a random result must satisfy on both sides: dtype, shape, and its values within [low, high]."""
    a = t.float().numpy()
    return {"dtype": dtype_name(t.dtype), "shape": list(t.shape),
            "in range": bool((low is None or a.min() >= low) and (high is None or a.max() <= high))}


# --- the long tail of numeric functions -------------------------------------------------------------------

@op("torch.isinf", "torch.isfinite", "torch.less", "torch.squeeze", "torch.scatter", "torch.mm", "torch.expm1",
    "torch.log10", "torch.eye", "torch.linalg.norm", "torch.histc", "torch.unique_consecutive", "tile")
def tail(c: Recorder):
    z = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    c.check("torch.isinf(z)", lambda z: torch.isinf(z), z)
    c.check("torch.isfinite(z)", lambda z: torch.isfinite(z), z)
    x, y = c.f(3, 4), c.f(3, 4)
    c.check("torch.less(x, y)", lambda x, y: torch.less(x, y), x, y)
    c.check("torch.squeeze(x, 1)", lambda x: torch.squeeze(x, 1), c.f(3, 1, 2))
    c.check("torch.scatter(x, 1, idx, src)", lambda x, i, s: torch.scatter(x, 1, i, s), x,
            np.array([[2, 0]] * 3), c.f(3, 2))
    c.check("torch.mm(a, b)", lambda a, b: torch.mm(a, b), x, c.f(4, 2))
    c.check("torch.expm1(x)", lambda x: torch.expm1(x), x)
    c.check("torch.log10(p)", lambda p: torch.log10(p), c.f(3, positive=True))
    c.check("torch.eye(3)", lambda: torch.eye(3))
    c.check("torch.eye(2, dtype=int64, device='cpu')", lambda: torch.eye(2, dtype=torch.int64, device="cpu"))
    c.check("torch.squeeze(x, dim=0)", lambda x: torch.squeeze(x, dim=0), c.f(1, 3))
    c.check("torch.unique_consecutive(a, return_counts=True)",
            lambda a: torch.unique_consecutive(a, return_counts=True), np.array([1, 1, 2, 2, 2, 3, 1]))
    c.check("torch.linalg.norm(x)", lambda x: torch.linalg.norm(x), x)
    c.check("torch.histc(x, bins=4, min=-2, max=2)", lambda x: torch.histc(x, bins=4, min=-2, max=2), x, grad=False)
    c.check("torch.unique_consecutive(a)", lambda a: torch.unique_consecutive(a), np.array([1, 1, 2, 2, 2, 3, 1]))
    c.check("x.tile((2, 1))", lambda x: x.tile((2, 1)), x)


@op("torch.nn.functional.interpolate", "torch.nn.functional.conv1d", "torch.nn.functional.conv2d",
    "torch.nn.functional.cosine_embedding_loss", dtype="float32")
def vision(c: Recorder):
    """float32: MindSpore's CPU Conv2D kernel has no float64."""
    img = c.f(1, 2, 4, 4)
    c.check("F.interpolate(x, size=(6, 6), mode='bilinear', align_corners=False)",
            lambda x: F.interpolate(x, size=(6, 6), mode="bilinear", align_corners=False), img)
    c.check("F.interpolate(x, scale_factor=2, mode='nearest')",
            lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), img)
    c.check("F.conv2d(x, w, padding=1, groups=2)", lambda x, w: F.conv2d(x, w, padding=1, groups=2), img,
            c.f(4, 1, 3, 3))
    c.check("F.conv1d(x, w)", lambda x, w: F.conv1d(x, w), c.f(1, 2, 6), c.f(3, 2, 3))
    c.check("F.conv1d(x, w, stride=2, dilation=2)", lambda x, w: F.conv1d(x, w, stride=2, dilation=2), c.f(1, 2, 9),
            c.f(3, 2, 3))
    c.check("F.cosine_embedding_loss(a, b, y)", lambda a, b, y: F.cosine_embedding_loss(a, b, y), c.f(3, 4),
            c.f(3, 4), np.array([1.0, -1.0, 1.0]), grad=(0, 1))
    c.check("F.cosine_embedding_loss(a, b, y, reduction='none')",
            lambda a, b, y: F.cosine_embedding_loss(a, b, y, reduction="none"), c.f(3, 4), c.f(3, 4),
            np.array([1.0, -1.0, -1.0]), grad=(0, 1))


@op("torch.no_grad", "torch.enable_grad", "torch.is_grad_enabled", "torch.inference_mode", "torch.finfo",
    "torch.iinfo", "torch.get_default_dtype", "torch.device")
def state(c: Recorder):
    p = torch.nn.Parameter(torch.tensor(c.f(2)))

    def grad_modes():
        out = {"default": torch.is_grad_enabled()}
        with torch.no_grad():
            out["no_grad"] = [torch.is_grad_enabled(), (p * 2).requires_grad]
            with torch.enable_grad():
                out["enable_grad inside no_grad"] = [torch.is_grad_enabled(), (p * 2).requires_grad]
        with torch.inference_mode():
            out["inference_mode"] = torch.is_grad_enabled()
        out["after"] = [torch.is_grad_enabled(), (p * 2).requires_grad]
        return out
    c.value("no_grad / enable_grad / inference_mode", grad_modes)
    c.value("finfo(float32/bfloat16/float16)", lambda: [[float(torch.finfo(d).max), float(torch.finfo(d).eps),
                                                          float(torch.finfo(d).min), float(torch.finfo(d).tiny)]
                                                         for d in (torch.float32, torch.bfloat16, torch.float16)])
    c.value("iinfo(int32/int64)", lambda: [[int(torch.iinfo(d).max), int(torch.iinfo(d).min)]
                                           for d in (torch.int32, torch.int64)])
    c.value("get_default_dtype", lambda: torch.get_default_dtype())
    c.value("device('cpu'), device('cpu', 0).type", lambda: [str(torch.device("cpu")), torch.device("cpu", 0).type])
