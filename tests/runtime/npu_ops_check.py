"""Run inside a converted workspace (``source set_env.sh``): every torch_npu operator of mindtorch.npu
that has a reference off Ascend, on random inputs, against a float64 NumPy reference: values, and
gradients (mindtorch.autograd.value_and_grad against central differences of the NumPy reference).

Prints one line ``NPU_OPS_REPORT {json}``: per case, the device target, the largest error of the
values and of the gradients (relative to the largest reference magnitude, at least 1), and whether the
reference gradients are non-zero.
"""
from __future__ import annotations

import json
import traceback

import numpy as np

import mindspore
import mindtorch
import mindtorch.npu as torch_npu   # what `import torch_npu` becomes in a converted workspace

RNG = np.random.default_rng(1234)


def rand(*shape):
    return RNG.standard_normal(shape)


# --- float64 NumPy references ---------------------------------------------------------------------

def np_rms_norm(x, g, eps=1e-6):
    rstd = 1.0 / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps)
    return [x * rstd * g, rstd]


def np_silu(a):
    return a / (1 + np.exp(-a))


def np_swiglu(x, dim=-1):
    a, b = np.split(x, 2, axis=dim)
    return [np_silu(a) * b]


def np_rope(x, cos, sin, mode):
    if mode == 0:
        x1, x2 = np.split(x, 2, axis=-1)
        rot = np.concatenate([-x2, x1], -1)
    else:
        rot = np.empty_like(x)
        rot[..., 0::2] = -x[..., 1::2]
        rot[..., 1::2] = x[..., 0::2]
    return [x * cos + rot * sin]


def np_attention_bnsd(q, k, v, scale, masked):
    """q [B,N,Sq,D], k/v [B,N,Sk,*]; masked: bool [.., Sq, Sk], True = not attended."""
    s = np.einsum('bnqd,bnkd->bnqk', q, k) * scale
    s = np.where(masked, -np.inf, s)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - m)
    z = e.sum(-1, keepdims=True)
    return [np.einsum('bnqk,bnkd->bnqd', e / z, v), np.repeat(m, 8, -1), np.repeat(z, 8, -1)]


def causal(sq, sk, shift=0):
    return np.arange(sk)[None, :] > np.arange(sq)[:, None] + shift


def np_permute_routing(tokens, probs, routing_map):
    t, e = routing_map.shape
    token_of_row = np.concatenate([np.nonzero(routing_map[:, j])[0] for j in range(e)])
    probs_rows = np.concatenate([probs[routing_map[:, j], j] for j in range(e)])
    sorted_indices = np.argsort(token_of_row, kind='stable')
    return token_of_row, probs_rows, sorted_indices


# --- the harness ----------------------------------------------------------------------------------

def to_ms(a, dtype=None):
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
        return mindtorch.tensor(a)
    return mindtorch.nn.Parameter(mindtorch.tensor(a.astype(np.float32)))


def numeric_grads(np_fn, arrays, grad_idx, cts, loss_outs, h=1e-6):
    def loss(arrs):
        outs = np_fn(*arrs)
        return sum(float((outs[i] * cts[n]).sum()) for n, i in enumerate(loss_outs))
    grads = []
    for gi in grad_idx:
        base = [a.copy() for a in arrays]
        g = np.zeros_like(arrays[gi])
        flat = base[gi].reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + h
            up = loss(base)
            flat[j] = old - h
            down = loss(base)
            flat[j] = old
            g.reshape(-1)[j] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


def check(name, ms_fn, np_fn, arrays, grad_idx=(), loss_outs=(0,)):
    """ms_fn/np_fn take the inputs (mindtorch tensors / float64 arrays) and return a list of outputs."""
    ref = np_fn(*arrays)
    tensors = [to_ms(a) for a in arrays]
    outs = ms_fn(*tensors)
    value_err = max(rel_err(o.float().numpy() if o.dtype != mindtorch.bool else o.numpy(), r)
                    for o, r in zip(outs, ref))
    result = {"value_err": value_err, "outputs": len(ref)}
    if grad_idx:
        cts = [rand(*ref[i].shape) for i in loss_outs]
        ct_ms = [mindtorch.tensor(c.astype(np.float32)) for c in cts]
        params = [tensors[i] for i in grad_idx]

        def loss(*ps):
            args = list(tensors)
            for i, p in zip(grad_idx, ps):
                args[i] = p
            res = ms_fn(*args)
            return sum((res[i].float() * c).sum() for i, c in zip(loss_outs, ct_ms))

        mindtorch.autograd.value_and_grad(loss, params)(*params)
        ref_grads = numeric_grads(np_fn, arrays, grad_idx, cts, loss_outs)
        result["grad_err"] = max(rel_err(p.grad.numpy(), g) for p, g in zip(params, ref_grads))
        result["grads_nonzero"] = all(float(np.abs(g).max()) > 1e-3 for g in ref_grads)
    REPORT[name] = result


REPORT: dict = {}


def cases():
    # RMSNorm, as MindSpeed's fused_rms_norm: npu_rms_norm(x, weight, epsilon=eps)[0]
    check("npu_rms_norm", lambda x, g: list(torch_npu.npu_rms_norm(x, g, epsilon=1e-6)),
          np_rms_norm, [rand(2, 3, 16), rand(16)], grad_idx=(0, 1))
    check("npu_add_rms_norm",
          lambda a, b, g: list(torch_npu.npu_add_rms_norm(a, b, g, 1e-6)),
          lambda a, b, g: np_rms_norm(a + b, g) + [a + b], [rand(3, 16), rand(3, 16), rand(16)],
          grad_idx=(0, 1, 2), loss_outs=(0, 2))
    check("npu_swiglu", lambda x: [torch_npu.npu_swiglu(x, dim=-1)], np_swiglu, [rand(4, 3, 10)], grad_idx=(0,))
    check("npu_swiglu[dim=0]", lambda x: [torch_npu.npu_swiglu(x, dim=0)], lambda x: np_swiglu(x, 0),
          [rand(6, 5)], grad_idx=(0,))
    go = rand(4, 5)
    check("npu_swiglu_backward", lambda x: [torch_npu.npu_swiglu_backward(mindtorch.tensor(go.astype(np.float32)), x, -1)],
          lambda x: numeric_grads(np_swiglu, [x], (0,), [go], (0,)), [rand(4, 10)])
    # rotary: MindSpeed-LLM's npu_rotary_mul(t, cos, sin), t [S, B, N, D], cos/sin [S, 1, 1, D]
    for mode_name, mode in (("half", 0), ("interleave", 1)):
        check(f"npu_rotary_mul[{mode_name}]", lambda x, c, s, m=mode_name: [torch_npu.npu_rotary_mul(x, c, s, m)]
              if m != "half" else [torch_npu.npu_rotary_mul(x, c, s)],
              lambda x, c, s, m=mode: np_rope(x, c, s, m), [rand(5, 2, 3, 8), rand(5, 1, 1, 8), rand(5, 1, 1, 8)],
              grad_idx=(0, 1, 2))
        check(f"npu_rotary_position_embedding[mode={mode}]",
              lambda x, c, s, m=mode: [torch_npu.npu_rotary_position_embedding(x, c, s, m)],
              lambda x, c, s, m=mode: np_rope(x, c, s, m), [rand(2, 3, 5, 8), rand(1, 1, 5, 8), rand(1, 1, 5, 8)],
              grad_idx=(0, 1, 2))
    check("npu_scaled_masked_softmax",
          lambda x, m: [torch_npu.npu_scaled_masked_softmax(x, m, 0.5, False)],
          lambda x, m: [np.exp(np.where(m, -10000.0, 0.5 * x) - np.where(m, -10000.0, 0.5 * x).max(-1, keepdims=True))
                        / np.exp(np.where(m, -10000.0, 0.5 * x) - np.where(m, -10000.0, 0.5 * x).max(-1, keepdims=True)).sum(-1, keepdims=True)],
          [rand(2, 2, 4, 6), RNG.random((2, 1, 4, 6)) < 0.3], grad_idx=(0,))
    attention_cases()
    grouped_matmul_cases()
    permute_cases()


def bnsd_from(t, layout, n):
    if layout == "BNSD":
        return t
    if layout == "BSND":
        return t.transpose(0, 2, 1, 3)
    if layout == "BSH":
        b, s, h = t.shape
        return t.reshape(b, s, n, h // n).transpose(0, 2, 1, 3)
    s, b, h = t.shape  # SBH
    return t.reshape(s, b, n, h // n).transpose(1, 2, 0, 3)


def bnsd_to(t, layout):
    b, n, s, d = t.shape
    if layout == "BNSD":
        return t
    if layout == "BSND":
        return t.transpose(0, 2, 1, 3)
    if layout == "BSH":
        return t.transpose(0, 2, 1, 3).reshape(b, s, n * d)
    return t.transpose(2, 0, 1, 3).reshape(s, b, n * d)


def attention_cases():
    scale = 0.3

    def np_fa(layout, n, nkv, masked_fn):
        def fn(q, k, v):
            qb, kb, vb = bnsd_from(q, layout, n), bnsd_from(k, layout, nkv), bnsd_from(v, layout, nkv)
            kb, vb = np.repeat(kb, n // nkv, 1), np.repeat(vb, n // nkv, 1)
            out, m, z = np_attention_bnsd(qb, kb, vb, scale, masked_fn(qb.shape[2], kb.shape[2]))
            return [bnsd_to(out, layout), m, z]
        return fn

    tri = np.triu(np.ones((2048, 2048), dtype=np.bool_), 1)   # the compressed causal template
    # MindSpeed's flash attention: BSH/SBH, sparse_mode 2 with the 2048x2048 template (causal)
    for layout, shapes in (("SBH", ((6, 2, 12), (6, 2, 12), (6, 2, 12))),
                           ("BSH", ((2, 6, 12), (2, 6, 12), (2, 6, 12)))):
        check(f"npu_fusion_attention[{layout},sparse_mode=2]",
              lambda q, k, v, l=layout: list(torch_npu.npu_fusion_attention(
                  q, k, v, 3, l, atten_mask=mindtorch.tensor(tri), scale=scale, sparse_mode=2)),
              np_fa(layout, 3, 3, lambda sq, sk: causal(sq, sk)), [rand(*s) for s in shapes],
              grad_idx=(0, 1, 2))
    # explicit causal mask, sparse_mode 0 (atten_mask [S, S], next_tockens=0 as Megatron-style callers)
    check("npu_fusion_attention[BNSD,sparse_mode=0,atten_mask]",
          lambda q, k, v: list(torch_npu.npu_fusion_attention(
              q, k, v, 2, "BNSD", atten_mask=mindtorch.tensor(causal(5, 5)), scale=scale, pre_tockens=65536,
              next_tockens=0)),
          np_fa("BNSD", 2, 2, lambda sq, sk: causal(sq, sk)), [rand(2, 2, 5, 4), rand(2, 2, 5, 4), rand(2, 2, 5, 4)],
          grad_idx=(0, 1, 2))
    # band from pre/next tokens only (sparse_mode 0, no mask)
    check("npu_fusion_attention[BSND,sparse_mode=0,band]",
          lambda q, k, v: list(torch_npu.npu_fusion_attention(
              q, k, v, 2, "BSND", scale=scale, pre_tockens=1, next_tockens=1)),
          np_fa("BSND", 2, 2, lambda sq, sk: (np.arange(sk)[None] > np.arange(sq)[:, None] + 1)
                | (np.arange(sk)[None] < np.arange(sq)[:, None] - 1)),
          [rand(1, 6, 2, 4), rand(1, 6, 2, 4), rand(1, 6, 2, 4)], grad_idx=(0, 1, 2))
    # MLA without padding: the value head dim differs from the query/key head dim; Sq < Sk, bottom-right causal
    check("npu_fusion_attention[BSND,MLA Dv!=Dqk,sparse_mode=3,Sq<Sk]",
          lambda q, k, v: list(torch_npu.npu_fusion_attention(
              q, k, v, 2, "BSND", atten_mask=mindtorch.tensor(tri), scale=scale, sparse_mode=3)),
          np_fa("BSND", 2, 2, lambda sq, sk: causal(sq, sk, sk - sq)),
          [rand(1, 3, 2, 6), rand(1, 5, 2, 6), rand(1, 5, 2, 4)], grad_idx=(0, 1, 2))
    # grouped-query attention: 4 query heads, 2 kv heads
    check("npu_fusion_attention[SBH,GQA 4q/2kv,sparse_mode=2]",
          lambda q, k, v: list(torch_npu.npu_fusion_attention(
              q, k, v, 4, "SBH", atten_mask=mindtorch.tensor(tri), scale=scale, sparse_mode=2)),
          np_fa("SBH", 4, 2, lambda sq, sk: causal(sq, sk)), [rand(4, 1, 12), rand(4, 1, 6), rand(4, 1, 6)],
          grad_idx=(0, 1, 2))

    # TND (packed sequences, --reset-position-ids): sequences of 3 and 4 tokens, causal in each
    def np_tnd(q, k, v):
        outs, ms, zs = [], [], []
        for s, e in ((0, 3), (3, 7)):
            qb, kb, vb = (a[s:e].transpose(1, 0, 2)[None] for a in (q, k, v))
            o, m, z = np_attention_bnsd(qb, kb, vb, scale, causal(e - s, e - s))
            outs.append(o[0].transpose(1, 0, 2))
            ms.append(m[0].transpose(1, 0, 2))
            zs.append(z[0].transpose(1, 0, 2))
        return [np.concatenate(outs), np.concatenate(ms), np.concatenate(zs)]
    check("npu_fusion_attention[TND,actual_seq_len,sparse_mode=3]",
          lambda q, k, v: list(torch_npu.npu_fusion_attention(
              q, k, v, 2, "TND", atten_mask=mindtorch.tensor(tri), scale=scale, sparse_mode=3,
              actual_seq_qlen=[3, 7], actual_seq_kvlen=[3, 7])),
          np_tnd, [rand(7, 2, 4), rand(7, 2, 4), rand(7, 2, 4)], grad_idx=(0, 1, 2))


def grouped_matmul_cases():
    sizes = [3, 0, 4, 2]   # an expert with no tokens
    ends = list(np.cumsum(sizes))

    def np_gmm_m(x, w):
        outs, s = [], 0
        for e, n in enumerate(sizes):
            outs.append(x[s:s + n] @ w[e])
            s += n
        return [np.concatenate(outs)]

    for glt, gl in ((0, ends), (1, sizes)):
        check(f"npu_grouped_matmul[group_type=0,split_item=2,group_list_type={glt}]",
              lambda x, w, gl=gl, glt=glt: torch_npu.npu_grouped_matmul(
                  [x], list(mindtorch.unbind(w, 0)), bias=None, group_list=mindtorch.tensor(np.array(gl, np.int64)),
                  split_item=2, group_type=0, group_list_type=glt),
              np_gmm_m, [rand(9, 5), rand(4, 5, 3)], grad_idx=(0, 1))

    def np_gmm_k(xt, g):
        outs, s = [], 0
        for n in sizes:
            outs.append(xt[:, s:s + n] @ g[s:s + n])
            s += n
        return [np.stack(outs)]
    # the weight gradient of MindSpeed's grouped linear: [inp.T] x [grad_output], K split, split_item=3
    check("npu_grouped_matmul[group_type=2,split_item=3]",
          lambda xt, g: torch_npu.npu_grouped_matmul([xt], [g], bias=None, group_list=mindtorch.tensor(
              np.array(sizes, np.int64)), split_item=3, group_type=2, group_list_type=1),
          np_gmm_k, [rand(5, 9), rand(9, 3)], grad_idx=(0, 1))
    check("npu_grouped_matmul[group_type=-1,bias]",
          lambda a, b, wa, wb, ba, bb: torch_npu.npu_grouped_matmul([a, b], [wa, wb], bias=[ba, bb], group_type=-1),
          lambda a, b, wa, wb, ba, bb: [a @ wa + ba, b @ wb + bb],
          [rand(2, 4), rand(3, 5), rand(4, 3), rand(5, 2), rand(3), rand(2)], grad_idx=(0, 1, 2, 3, 4, 5),
          loss_outs=(0, 1))
    # gradient accumulation fusion: main_grad += grad_output^T @ total_input, in place
    go, inp, acc = rand(7, 4), rand(7, 3), rand(4, 3)
    c = mindtorch.tensor(acc.astype(np.float32))
    torch_npu.npu_matmul_add_fp32(mindtorch.tensor(go.astype(np.float32)), mindtorch.tensor(inp.astype(np.float32)), c)
    REPORT["npu_matmul_add_fp32"] = {"value_err": rel_err(c.numpy(), acc + go.T @ inp), "outputs": 1}


def permute_cases():
    tokens_n, experts, topk, hidden = 6, 4, 2, 5
    idx = np.stack([RNG.permutation(experts)[:topk] for _ in range(tokens_n)]).astype(np.int64)
    routing_map = np.zeros((tokens_n, experts), np.bool_)
    np.put_along_axis(routing_map, idx, True, 1)
    full_probs = RNG.random((tokens_n, experts)) * routing_map

    # npu_moe_token_permute / unpermute (indices [T, topk], Megatron's older permute)
    order = np.argsort(idx.reshape(-1), kind='stable')
    check("npu_moe_token_permute",
          lambda t: list(torch_npu.npu_moe_token_permute(t, mindtorch.tensor(idx))),
          lambda t: [t[order // topk], order.astype(np.float64)], [rand(tokens_n, hidden)], grad_idx=(0,))

    def np_unpermute(p, probs):
        slots = np.zeros((tokens_n * topk, hidden))
        slots[order] = p
        return [(slots.reshape(tokens_n, topk, hidden) * probs[..., None]).sum(1)]
    check("npu_moe_token_unpermute",
          lambda p, probs: [torch_npu.npu_moe_token_unpermute(p, mindtorch.tensor(order.astype(np.int32)), probs)],
          np_unpermute, [rand(tokens_n * topk, hidden), RNG.random((tokens_n, topk))], grad_idx=(0, 1))

    # the routing-map kernels on the DeepSeek-V3 path (--moe-permute-fusion)
    token_of_row, _, sorted_idx = np_permute_routing(np.zeros((tokens_n, 1)), full_probs, routing_map)
    rm = mindtorch.tensor(routing_map)

    def np_perm(t, probs):
        tor, probs_rows, si = np_permute_routing(t, probs, routing_map)
        return [t[tor], probs_rows, si.astype(np.float64)]
    check("npu_moe_token_permute_with_routing_map",
          lambda t, probs: list(torch_npu.npu_moe_token_permute_with_routing_map(
              t, rm, probs=probs, num_out_tokens=tokens_n * topk, drop_and_pad=False)),
          np_perm, [rand(tokens_n, hidden), full_probs], grad_idx=(0, 1), loss_outs=(0, 1))
    # the kernel's sorted_indices: permuted row of the k-th copy of token t is sorted_indices[t * topk + k]
    REPORT["npu_moe_token_permute_with_routing_map[sorted_indices]"] = {
        "value_err": float(np.abs(token_of_row[sorted_idx] - np.repeat(np.arange(tokens_n), topk)).max()),
        "outputs": 1}

    gp, gprob = rand(tokens_n * topk, hidden), rand(tokens_n * topk)
    check("npu_moe_token_permute_with_routing_map_grad",
          lambda: list(torch_npu.npu_moe_token_permute_with_routing_map_grad(
              mindtorch.tensor(gp.astype(np.float32)), mindtorch.tensor(gprob.astype(np.float32)),
              mindtorch.tensor(sorted_idx.astype(np.int32)), rm, experts, tokens_n, False)),
          lambda: numeric_grads(lambda t, probs: np_perm(t, probs)[:2], [rand(tokens_n, hidden), full_probs],
                                (0, 1), [gp, gprob], (0, 1)), [])

    def np_unperm(p, probs):
        _, probs_rows, _ = np_permute_routing(p, probs, routing_map)
        out = np.zeros((tokens_n, hidden))
        np.add.at(out, token_of_row, p * probs_rows[:, None])
        return [out]
    check("_npu_moe_token_unpermute_with_routing_map",
          lambda p, probs: [torch_npu._npu_moe_token_unpermute_with_routing_map(
              p, mindtorch.tensor(sorted_idx.astype(np.int32)), (tokens_n, hidden), probs=probs, routing_map=rm,
              drop_and_pad=False)[0]],
          np_unperm, [rand(tokens_n * topk, hidden), full_probs], grad_idx=(0, 1))
    gu, perm_tokens = rand(tokens_n, hidden), rand(tokens_n * topk, hidden)
    check("npu_moe_token_unpermute_with_routing_map_grad",
          lambda: list(torch_npu.npu_moe_token_unpermute_with_routing_map_grad(
              mindtorch.tensor(gu.astype(np.float32)), mindtorch.tensor(sorted_idx.astype(np.int32)),
              mindtorch.tensor(sorted_idx.astype(np.int32)), routing_map=rm,
              permuted_tokens=mindtorch.tensor(perm_tokens.astype(np.float32)),
              probs=mindtorch.tensor(full_probs.astype(np.float32)), drop_and_pad=False,
              restore_shape=(tokens_n, hidden))),
          lambda: numeric_grads(np_unperm, [perm_tokens, full_probs], (0, 1), [gu], (0,)), [])


def main():
    try:
        cases()
        error = None
    except Exception:   # reported, so the test shows which case broke
        error = traceback.format_exc()
    print("NPU_OPS_REPORT " + json.dumps({
        "device_target": mindspore.get_context("device_target"),
        "cases": REPORT, "error": error}))


if __name__ == "__main__":
    main()
