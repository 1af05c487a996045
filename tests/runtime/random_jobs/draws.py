"""torch's random draws and the distributions built on them: what must hold on any backend (seeded
draws repeat, consecutive draws differ, the moments are right, gradients flow through
torch.normal's mean and std) and the deterministic parts, which must equal PyTorch's. Prints one
RESULT line of JSON; tests/runtime/test_random_draws.py runs it on PyTorch and, converted, on
MindSpore."""
import json

import torch
from torch.distributions import LogisticNormal

out = {}

# Tensor.uniform_ (nn.Linear's default init, LoRA's A matrices): after a seed the draws repeat, and
# two draws in a row differ
torch.manual_seed(0)
a, b = torch.empty(64).uniform_(-2, 3), torch.empty(64).uniform_(-2, 3)
torch.manual_seed(0)
a2 = torch.empty(64).uniform_(-2, 3)
out["uniform"] = {"repeats": bool(torch.equal(a, a2)), "fresh": not bool(torch.equal(a, b)),
                  "in_range": bool(((a >= -2) & (a < 3)).all())}

# torch.randint / randint_like: seeded, in range, torch's dtypes; randn_like is a standard normal
torch.manual_seed(3)
i, j = torch.randint(-5, 7, (4000,)), torch.randint(-5, 7, (4000,))
torch.manual_seed(3)
i2 = torch.randint(-5, 7, (4000,))
like = torch.randint_like(torch.zeros(4000), 2, 9)
out["randint"] = {"repeats": bool(torch.equal(i, i2)), "fresh": not bool(torch.equal(i, j)),
                  "range": [int(i.min()), int(i.max())], "dtype": str(i.dtype).split(".")[-1],
                  "like_range": [float(like.min()), float(like.max())], "like_dtype": str(like.dtype).split(".")[-1]}
n = torch.randn_like(torch.zeros(20000, dtype=torch.float64))
out["randn_like"] = {"mean": float(n.mean()), "std": float(n.std()), "dtype": str(n.dtype).split(".")[-1]}

# torch.normal, every form (not reparameterised: PyTorch's gradients for mean and std are zeros)
torch.manual_seed(1)
x = torch.normal(0.5, 2.0, size=(20000,))
torch.manual_seed(1)
x2 = torch.normal(0.5, 2.0, size=(20000,))
y = torch.normal(0.5, 2.0, size=(20000,))
out["normal_float"] = {"repeats": bool(torch.equal(x, x2)), "fresh": not bool(torch.equal(x, y)),
                       "mean": float(x.mean()), "std": float(x.std()), "shape": list(x.shape)}
mean = torch.zeros(2, 3, requires_grad=True)
std = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
z = torch.normal(mean, std)
z.sum().backward()
out["normal_tensors"] = {"shape": list(z.shape), "dtype": str(z.dtype).split(".")[-1],
                         "requires_grad": z.requires_grad, "mean_grad": mean.grad.tolist(), "std_grad": std.grad.tolist()}
wide = torch.normal(torch.full((20000,), 3.0), 0.5)
narrow = torch.normal(-1.0, torch.full((20000,), 0.25))
out["normal_tensor_float"] = {"mean": float(wide.mean()), "std": float(wide.std())}
out["normal_float_tensor"] = {"mean": float(narrow.mean()), "std": float(narrow.std())}

# LogisticNormal (MindSpeed-MM's rectified-flow timesteps): deterministic parts equal PyTorch's
d = LogisticNormal(torch.tensor([0.0]), torch.tensor([1.0]))
d2 = LogisticNormal(torch.tensor([0.5, -0.5]), torch.tensor([1.0, 2.0]))
out["logistic_normal"] = {
    "batch": list(d.batch_shape), "event": list(d.event_shape), "loc": d.loc.tolist(), "scale": d.scale.tolist(),
    "log_prob": d.log_prob(torch.tensor([[0.3, 0.7], [0.9, 0.1]])).tolist(),
    "log_prob3": float(d2.log_prob(torch.tensor([0.2, 0.3, 0.5]))),
}
torch.manual_seed(2)
s = d2.sample((20000,))
# the base Normal's draws, up to constant offsets: logit of each stick's share of what was left
logits = torch.stack([torch.log(s[:, 0] / (s[:, 1] + s[:, 2])), torch.log(s[:, 1] / s[:, 2])], -1)
out["logistic_normal"].update(shape=list(s.shape), simplex=bool(torch.allclose(s.sum(-1), torch.ones(20000), atol=1e-5)),
                              positive=bool((s > 0).all()), logit_std=logits.std(0).tolist())

# Tensor.cumprod (StickBreakingTransform): values and gradient
c = torch.tensor([[1.5, -2.0, 0.5, 3.0]], requires_grad=True)
p = c.cumprod(-1)
p.sum().backward()
out["cumprod"] = {"values": p[0].tolist(), "grad": c.grad[0].tolist(), "dtype": str(p.dtype).split(".")[-1]}
print("RESULT " + json.dumps(out))
