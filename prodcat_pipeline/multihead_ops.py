"""Stacked heads for batched trials: T heads of one shape as tensors with a leading trial dimension, their
forward and hand-written backward pass on one shared batch, the loss, and AdamW with a rate per trial.

Activations are feature-major, (trials, features, rows), so every product is one `mm` or `bmm` on
contiguous operands. The v2 block folds each trial's LayerNorm affine into its first Linear: the
normalised input is shared by all trials, the first layer of all T trials is one (T*hidden, dim) @
(dim, rows) product, and its input gradient is never computed (the input is data), so a step runs 5 of
the 6 large products a per-head autograd pass would. With a bf16 compute dtype the products and the
activations are bf16 (as under autocast); parameters, gradients and optimizer state stay float32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

KEYS = {
    "linear": ("classifier.weight", "classifier.bias"),
    "v2": (
        "block.0.weight", "block.0.bias", "block.1.weight", "block.1.bias", "block.4.weight", "block.4.bias",
        "classifier.weight", "classifier.bias",
    ),
}  # fmt: skip


class StackedHeads:
    """T heads of one kind ("linear" or "v2"): `params[key]` is the heads' state_dict entry `key` stacked on a
    leading trial dimension; the input transform (and its buffers) is shared. `forward` keeps what
    `backward` needs; `backward` writes the gradients into `grads` (same keys and shapes)."""

    def __init__(self, kind: str, params: dict, residual: bool = True, compute_dtype=None):
        if kind not in KEYS:
            raise NotImplementedError(f"stacked training supports the linear and v2 heads, not {kind}")
        self.kind, self.residual = kind, residual
        self.dtype = compute_dtype or torch.float32  # of the products and the activations; parameters: float32
        self.params = {k: params[k].contiguous() for k in KEYS[kind]}
        self.grads = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.device = self.params["classifier.weight"].device
        self._saved: tuple = ()
        self._work: dict[str, torch.Tensor] = {}

    @classmethod
    def from_states(cls, kind: str, states: list[dict], device="cpu", **kw) -> StackedHeads:
        """Stack the heads' state_dicts (the entries of KEYS[kind]) on `device`."""
        return cls(kind, {k: torch.stack([s[k].float() for s in states]).to(device) for k in KEYS[kind]}, **kw)

    @property
    def n_trials(self) -> int:
        return self.params["classifier.weight"].shape[0]

    def state(self, t: int) -> dict:
        """Trial `t`'s parameters as a head's state_dict entries (copies)."""
        return {k: v[t].detach().clone() for k, v in self.params.items()}

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the trials at positions `keep` (dropped trials stop costing compute)."""
        self.params = {k: v.index_select(0, keep) for k, v in self.params.items()}
        self.grads = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self._work.clear()

    def _buffer(self, name: str, *shape: int, dtype=None) -> torch.Tensor:
        """A work tensor reused from step to step (default dtype: the compute dtype). Tensors of several MB
        allocated afresh in every step are mapped from the kernel and page-faulted in every time: as
        temporaries they made elementwise ops 3-5x slower."""
        buf = self._work.get(name)
        dtype = dtype or self.dtype
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._work[name] = torch.empty(shape, device=self.device, dtype=dtype)
        return buf

    def _grad(self, key: str, a: torch.Tensor, b: torch.Tensor) -> None:
        """grads[key] = a @ b (batched), written in place (float32 products) or cast from the product."""
        out = self.grads[key].view(a.shape[0], a.shape[1], b.shape[2])
        if self.dtype == torch.float32:
            torch.bmm(a, b, out=out)
        else:
            out.copy_(torch.bmm(a, b, out=self._buffer(f"{key}.product", *out.shape)))

    def _sum(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """grads[key] = x summed over rows (its last dimension)."""
        if x.dtype == torch.float32:
            return torch.sum(x, 2, out=self.grads[key])
        return self.grads[key].copy_(x.sum(2))

    # ---------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, dropout: np.ndarray | None = None, train: bool = True) -> torch.Tensor:
        """Float32 logits (T, classes, rows) of every trial for transformed inputs `x` (rows, dim). In training
        (`train`) the v2 block drops hidden units with each trial's probability `dropout` (T,) and keeps
        what `backward` needs; otherwise it runs as in eval mode. The logits are valid until the next call."""
        p, cd = self.params, self.dtype
        T, C, d = p["classifier.weight"].shape
        n = x.shape[0]

        buffer = self._buffer
        xt = x.t().to(cd, memory_format=torch.contiguous_format)  # (d, rows)
        wc = p["classifier.weight"].to(cd)
        if self.kind == "linear":
            z = torch.mm(wc.view(T * C, d), xt, out=buffer("z", T * C, n)).view(T, C, n)
            self._saved = (xt, wc) if train else ()
            return z.float().add_(p["classifier.bias"].unsqueeze(2))
        w1, lnw, lnb = p["block.1.weight"], p["block.0.weight"], p["block.0.bias"]
        H = w1.shape[1]
        xh = F.layer_norm(x, (d,)).to(cd)  # the LayerNorm without its affine, shared by all trials
        # the LayerNorm's affine folded into Linear 1 (no elementwise op mixes dtypes: those are 5x slower)
        tmp = buffer("w1-sized", T, H, d, dtype=torch.float32)
        bias1 = torch.mul(w1, lnb.unsqueeze(1), out=tmp).sum(2, keepdim=True).add_(p["block.1.bias"].unsqueeze(2))
        a = torch.mul(w1, lnw.unsqueeze(1), out=tmp)
        if cd != torch.float32:
            a, bias1 = buffer("a", T, H, d).copy_(a), bias1.to(cd)
        hpre = torch.mm(a.view(T * H, d), xh.t(), out=buffer("hpre", T * H, n)).view(T, H, n).add_(bias1)
        act = torch.ops.aten.gelu.out(hpre, out=buffer("act", T, H, n))
        mask = _dropout_mask(dropout, self._buffer("mask", T, H, n)) if train and dropout is not None else None
        if mask is not None:
            act.mul_(mask)
        w2 = p["block.4.weight"] if cd == torch.float32 else buffer("w2", T, d, H).copy_(p["block.4.weight"])
        f = torch.bmm(w2, act, out=buffer("f", T, d, n)).add_(p["block.4.bias"].unsqueeze(2).to(cd))  # (T, d, rows)
        if self.residual:
            f.add_(xt)
        z = torch.bmm(wc, f).float().add_(p["classifier.bias"].unsqueeze(2))
        self._saved = (xh, hpre, act, mask, f, w2, wc) if train else ()
        return z

    # ---------------------------------------------------------------- backward

    def backward(self, dz: torch.Tensor) -> dict:
        """Gradients of every trial's parameters given dLoss/dlogits `dz` (T, classes, rows)."""
        p, g, cd = self.params, self.grads, self.dtype
        T, C, d = p["classifier.weight"].shape
        n = dz.shape[2]
        torch.sum(dz, 2, out=g["classifier.bias"])
        dz = dz.to(cd)
        if self.kind == "linear":
            xt, _ = self._saved
            self._grad("classifier.weight", dz.view(1, T * C, n), xt.t().unsqueeze(0))
            return g
        xh, hpre, act, mask, f, w2, wc = self._saved
        self._saved = ()
        w1, lnw, lnb = p["block.1.weight"], p["block.0.weight"], p["block.0.bias"]
        H = w1.shape[1]
        self._grad("classifier.weight", dz, f.transpose(1, 2))
        df = torch.bmm(wc.transpose(1, 2), dz, out=self._buffer("df", T, d, n))  # the residual passes it on
        self._sum("block.4.bias", df)
        self._grad("block.4.weight", df, act.transpose(1, 2))
        dact = torch.bmm(w2.transpose(1, 2), df, out=self._buffer("dact", T, H, n))
        if mask is not None:
            dact.mul_(mask)
        dh = torch.ops.aten.gelu_backward.grad_input(dact, hpre, grad_input=dact)  # in place
        da = torch.mm(dh.view(T * H, n), xh, out=self._buffer("da", T * H, d)).view(T, H, d)  # d(folded weight)
        if cd != torch.float32:
            da = self._buffer("w1-sized", T, H, d, dtype=torch.float32).copy_(da)
        gb1 = self._sum("block.1.bias", dh)
        # a = w1 * lnw, bias1 = w1 @ lnb + b1  ->  chain rule back to w1, lnw, lnb
        torch.mul(da, lnw.unsqueeze(1), out=g["block.1.weight"]).baddbmm_(gb1.unsqueeze(2), lnb.unsqueeze(1))
        torch.sum(da.mul_(w1), 1, out=g["block.0.weight"])
        torch.bmm(gb1.unsqueeze(1), w1, out=g["block.0.bias"].unsqueeze(1))
        return g


def _dropout_mask(p: np.ndarray, out: torch.Tensor) -> torch.Tensor | None:
    """Inverted-dropout masks (T, hidden, rows) in `out` (float32 or bf16) for per-trial drop probabilities
    `p`, keep-scale folded in. As in heads.FastDropout, CPU masks come from NumPy's PCG64 raw bits (seeded
    from torch's RNG, so `torch.manual_seed` makes them reproducible), probabilities quantised to 1/65536;
    NumPy writes the scaled mask straight into `out` (torch's bool-to-float copy is several times slower)."""
    if not np.any(p > 0):
        return None
    threshold = np.round(np.asarray(p) * 65536).astype(np.int64).reshape(-1, 1, 1)
    scale = torch.from_numpy((65536.0 / (65536 - threshold)).astype(np.float32)).to(out.dtype)
    if out.device.type != "cpu":
        keep = torch.rand(out.shape, device=out.device) >= torch.as_tensor(p, device=out.device).view(-1, 1, 1)
        return out.copy_(keep).mul_(scale.to(out.device))
    seed = int(torch.randint(0, 2**62, (1,)).item())
    bits = np.random.PCG64(seed).random_raw(-(-out.numel() // 4)).view(np.uint16)[: out.numel()]
    keep = bits.reshape(out.shape) >= threshold.astype(np.uint16)
    if out.dtype == torch.bfloat16:  # the bf16 bit patterns of the scales, times 0 or 1
        np.multiply(keep, scale.view(torch.uint16).numpy(), out=out.view(torch.uint16).numpy())
    else:
        np.multiply(keep, scale.numpy(), out=out.numpy())
    return out


def smoothed_ce(z: torch.Tensor, y: torch.Tensor, smoothing: torch.Tensor, weight: torch.Tensor | None = None):
    """Label-smoothed cross-entropy of every trial's logits `z` (T, classes, rows) against labels `y`, as
    losses.classification_loss computes it (mean, or weighted mean with per-row `weight`). Returns the
    per-trial losses (T,) and the gradient of their sum with respect to `z`."""
    T, C, n = z.shape
    logp = torch.log_softmax(z, dim=1)
    eps = smoothing.view(T, 1)
    index = y.view(1, 1, n).expand(T, 1, n)
    ce = (1.0 - eps) * -logp.gather(1, index).squeeze(1) - eps * logp.mean(1)  # (T, rows)
    w = weight / weight.sum().clamp_min(1e-12) if weight is not None else torch.full((n,), 1.0 / n, device=z.device)
    loss = ce @ w
    dz = logp.exp_().sub_((eps / C).unsqueeze(2))
    dz.scatter_add_(1, index, (eps - 1.0).unsqueeze(2).expand(T, 1, n))
    return loss, dz.mul_(w)


class StackedAdamW:
    """AdamW over stacked parameters with a learning rate and weight decay per trial (torch.optim.AdamW's
    update, defaults betas=(0.9, 0.999), eps=1e-8). Each trial's slices go through torch's fused AdamW
    kernel (one pass over the trial's tensors); the per-trial loop is T small calls per step."""

    def __init__(self, params: dict, betas=(0.9, 0.999), eps: float = 1e-8):
        self.betas, self.eps = betas, eps
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}
        # the step counts live with the parameters: the fused kernel reads them on the parameters' device
        self.steps = [torch.zeros((), dtype=torch.float32, device=v.device) for v in params.values()]
        self._views: tuple = (None, None, [])

    def select(self, keep: torch.Tensor) -> None:
        self.m = {k: v.index_select(0, keep) for k, v in self.m.items()}
        self.v = {k: v.index_select(0, keep) for k, v in self.v.items()}
        self._views = (None, None, [])

    def step(self, params: dict, grads: dict, lr: list[float], weight_decay: list[float]) -> None:
        if self._views[0] is not params or self._views[1] is not grads:  # per-trial views, made once
            tensors = (params, grads, self.m, self.v)
            per_trial = [[[d[k][t] for k in params] for d in tensors] for t in range(len(lr))]
            self._views = (params, grads, per_trial)
        torch._foreach_add_(self.steps, 1.0)
        for (p, g, m, v), rate, decay in zip(self._views[2], lr, weight_decay, strict=True):
            torch._fused_adamw_(
                p, g, m, v, [], self.steps, lr=rate, beta1=self.betas[0], beta2=self.betas[1], weight_decay=decay,
                eps=self.eps, amsgrad=False, maximize=False,
            )  # fmt: skip
