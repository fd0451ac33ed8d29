"""Per-sample parameter gradients of common layers in closed form, from one layer's input and
the gradient w.r.t. its output (the BackPACK idea: no per-sample backward passes).

Index convention: N samples, O output features / channels, I input features, T extra
positions of a Linear input (``[N, T, I]``), P output positions of a convolution
(Hout * Wout), J = (Cin / groups) * kh * kw unfolded input rows per output channel,
L flattened positions of a BatchNorm input, E requested (masked) entries of one parameter.

Every form is built once per forward call (it caches what depends on the input only:
the needed rows of the unfolded input, the normalised BatchNorm input) and is then
applied to the output gradient ``go`` of each class in turn. ``wanted`` maps a local
parameter name ("weight", "bias") to the flat row-major indices requested, or to ``None``
for the whole per-sample gradient (used by the diagonal Fisher).

Closed forms (``go`` = d log p_c / d output, per sample):
- Linear:   dW[o, i] = sum_t go[t, o] a[t, i];           db[o] = sum_t go[t, o]
- Conv2d:   dW[o, j] = sum_p go[o, p] unfold(a)[j, p];   db[o] = sum_p go[o, p]
- BatchNorm (eval): dW[c] = sum_l go[c, l] xhat[c, l];   db[c] = sum_l go[c, l],
  xhat = (a - running_mean) / sqrt(running_var + eps).
- any other module (:class:`ModuleVJPForm`): an exact per-sample vector-Jacobian product of
  that one call w.r.t. its own parameters (``torch.func``), from its recorded arguments.

Each form offers the three reductions of :mod:`fishermask.fisher._engine`: ``per_sample``
(``[N, E]`` or ``[N, *shape]``), ``sq_sum`` (``sum_n g_n**2``) and ``sq_norms``
(``||g_n||**2`` per sample, ``[N]``); the last two never form a per-sample gradient where a
cheaper identity exists.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.utils import _pytree as pytree

Wanted = dict[str, Tensor | None]

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_BLOCK_FLOATS = 1 << 18  # per-sample gradient block kept cache-resident by ``sq_sum``
# A Conv2d with at least this fraction of its weights masked forms the whole per-sample
# weight gradient with one batched GEMM ([N, O, P] x [N, P, J]) and then picks the masked
# entries; below it, each masked entry is a dot product over P positions of gathered
# windows. The gather path is memory-bound (~75x the GEMM's cost per multiply-add here), so
# the GEMM wins from ~1.5 % (measured on a 2-core CPU: 44x faster for a ResNet stem with
# 59 % of its weights masked, as FisherMask masks typically are). _DENSE_MAX_FLOATS bounds
# the unfolded input [N, J, P] the GEMM needs; larger layers keep the gather path.
_DENSE_FRACTION = 0.02
_DENSE_MAX_FLOATS = 1 << 26


def closed_form_kind(module: nn.Module) -> str | None:
    """``"linear"``, ``"conv2d"`` or ``"batchnorm"`` if handled in closed form, else ``None``.

    Exact types only: a subclass may override ``forward``. Eval-mode BatchNorm needs running
    statistics; without them it normalises by batch statistics and is left to the caller.
    """
    kind = type(module)
    if kind is nn.Linear:
        return "linear"
    if kind is nn.Conv2d and module.padding_mode == "zeros":
        return "conv2d"
    if kind in _BATCHNORMS and not module.training and module.running_mean is not None:
        return "batchnorm"
    return None


class _Form:
    """Per-sample gradients of one module call; subclasses fill ``_weight``/``_bias``."""

    def __init__(self, module: nn.Module, wanted: Wanted) -> None:
        self.module = module
        self.wanted = wanted

    def per_sample(self, go: Tensor) -> dict[str, Tensor]:
        """Per-sample gradients for each wanted parameter: ``[N, E]`` or ``[N, *shape]``."""
        out = {}
        for name, idx in self.wanted.items():
            out[name] = self._weight(go, idx) if name == "weight" else self._bias(go, idx)
        return out

    def sq_sum(self, go: Tensor) -> dict[str, Tensor]:
        """``sum_n g_n**2`` of the whole per-sample gradients (wanted must be all ``None``)."""
        return {name: g.square().sum(0) for name, g in self.per_sample(go).items()}

    def sq_norms(self, go: Tensor) -> dict[str, Tensor]:
        """``||g_n||**2`` of the whole per-sample gradients, ``[N]`` (wanted all ``None``)."""
        return {name: g.flatten(1).square().sum(1) for name, g in self.per_sample(go).items()}

    def _weight(self, go: Tensor, idx: Tensor | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _bias(self, go: Tensor, idx: Tensor | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class LinearForm(_Form):
    def __init__(self, module: nn.Linear, inp: Tensor, wanted: Wanted) -> None:
        super().__init__(module, wanted)
        self.n = inp.shape[0]
        self.a = inp.reshape(self.n, -1, module.in_features)  # [N, T, I]
        idx = wanted.get("weight")
        if idx is not None:
            self.o_w = idx // module.in_features  # [E]
            self.a_sel = self.a[:, :, idx % module.in_features]  # [N, T, E]

    def _go(self, go: Tensor) -> Tensor:
        return go.reshape(self.n, -1, self.module.out_features)  # [N, T, O]

    def sq_sum(self, go: Tensor) -> dict[str, Tensor]:
        out = {}
        if "bias" in self.wanted:
            out["bias"] = self._bias(go, None).square().sum(0)  # [O]
        if "weight" in self.wanted:
            if self.a.shape[1] == 1:  # (go_n a_n^T)^2 = go_n^2 (a_n^2)^T
                if not hasattr(self, "a_sq"):
                    self.a_sq = self.a[:, 0].square()  # [N, I]
                out["weight"] = self._go(go)[:, 0].square().T @ self.a_sq  # [O, I]
            else:
                out["weight"] = self._weight(go, None).square().sum(0)
        return out

    def sq_norms(self, go: Tensor) -> dict[str, Tensor]:
        out = {}
        if "weight" in self.wanted:
            if self.a.shape[1] == 1:  # ||go_n a_n^T||^2 = ||go_n||^2 ||a_n||^2
                g = self._go(go)[:, 0]  # [N, O]
                out["weight"] = g.square().sum(1) * self.a[:, 0].square().sum(1)
            else:
                out["weight"] = self._weight(go, None).flatten(1).square().sum(1)
        if "bias" in self.wanted:
            out["bias"] = self._bias(go, None).square().sum(1)
        return out

    def _weight(self, go: Tensor, idx: Tensor | None) -> Tensor:
        g = self._go(go)  # [N, T, O]
        if idx is None:
            return torch.bmm(g.transpose(1, 2), self.a)  # [N, O, I]
        return torch.einsum("nte,nte->ne", g[:, :, self.o_w], self.a_sel)  # [N, E]

    def _bias(self, go: Tensor, idx: Tensor | None) -> Tensor:
        g = self._go(go).sum(1)  # [N, O]
        return g if idx is None else g[:, idx]


def _conv_pads(m: nn.Conv2d) -> tuple[int, int, int, int]:
    """Explicit (left, right, top, bottom) zero padding of a Conv2d, incl. 'same'/'valid'."""
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return (0, 0, 0, 0)
        pads = []
        for k, d in ((m.kernel_size[1], m.dilation[1]), (m.kernel_size[0], m.dilation[0])):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)  # type: ignore[return-value]
    ph, pw = m.padding
    return (pw, pw, ph, ph)


class Conv2dForm(_Form):
    def __init__(self, module: nn.Conv2d, inp: Tensor, wanted: Wanted) -> None:
        super().__init__(module, wanted)
        m = module
        self.n = inp.shape[0]
        a = F.pad(inp, _conv_pads(m)) if any(_conv_pads(m)) else inp  # [N, Cin, Hp, Wp]
        (kh, kw), (sh, sw), (dh, dw) = m.kernel_size, m.stride, m.dilation
        self.h_out = (a.shape[2] - dh * (kh - 1) - 1) // sh + 1
        self.w_out = (a.shape[3] - dw * (kw - 1) - 1) // sw + 1
        self.c_group = m.in_channels // m.groups
        self.o_group = m.out_channels // m.groups
        self.rows = self.c_group * kh * kw  # J
        idx = wanted.get("weight", False)
        self.dense = idx is not False and (
            idx is None
            or (
                idx.numel() >= _DENSE_FRACTION * m.weight.numel()
                and self.n * m.groups * self.rows * self.h_out * self.w_out <= _DENSE_MAX_FLOATS
            )
        )
        # padded input [N, Cin, Hp, Wp]: unfolded on first use (whole per-sample gradients),
        # or read one kernel offset at a time (squared norms); freed once no longer needed
        self.a: Tensor | None = a
        self._unfolded: Tensor | None = None
        if not self.dense and idx is not False:
            o = idx // self.rows  # [E] output channel of each entry
            j = idx % self.rows  # [E] row within the group's unfolded input
            cin = (o // self.o_group) * self.c_group + j // (kh * kw)  # [E] input channel
            ki, kj = (j % (kh * kw)) // kw, j % kw  # [E] kernel offsets
            dev = inp.device
            hs = torch.arange(self.h_out, device=dev) * sh  # [Hout]
            ws = torch.arange(self.w_out, device=dev) * sw  # [Wout]
            rows_h = (ki * dh)[:, None, None] + hs[None, :, None]  # [E, Hout, 1]
            rows_w = (kj * dw)[:, None, None] + ws[None, None, :]  # [E, 1, Wout]
            u_sel = a[:, cin[:, None, None], rows_h, rows_w]  # [N, E, Hout, Wout]
            self.u_sel = u_sel.reshape(self.n, idx.numel(), -1)  # [N, E, P]
            self.o_w = o
            self.a = None

    def _weight(self, go: Tensor, idx: Tensor | None) -> Tensor:
        g = go.reshape(self.n, self.module.out_channels, -1)  # [N, O, P]
        if idx is None:
            return self._full_weight(g, slice(None)).view(self.n, *self.module.weight.shape)
        if self.dense:  # one GEMM, then the masked entries (flat index o * J + j)
            return self._full_weight(g, slice(None)).reshape(self.n, -1).index_select(1, idx)
        return torch.linalg.vecdot(g.index_select(1, self.o_w), self.u_sel)  # [N, E]

    @property
    def unfolded(self) -> Tensor:
        """The whole unfolded (padded) input ``[N, groups * J, P]``, built once."""
        if self._unfolded is None:
            m = self.module
            a, self.a = self.a, None
            self._unfolded = F.unfold(a, m.kernel_size, dilation=m.dilation, stride=m.stride)
        return self._unfolded

    def _full_weight(self, g: Tensor, samples: slice) -> Tensor:
        """Whole per-sample weight gradients of ``samples``: ``[n, O, J]``."""
        u = self.unfolded[samples]  # [n, groups * J, P]
        if self.module.groups == 1:
            return torch.bmm(g[samples], u.transpose(1, 2))  # [n, O, J]
        out = g.new_empty(u.shape[0], self.module.out_channels, self.rows)  # [n, O, J]
        for grp in range(self.module.groups):
            o_sl = slice(grp * self.o_group, (grp + 1) * self.o_group)
            u_grp = u[:, grp * self.rows : (grp + 1) * self.rows]  # [n, J, P]
            torch.bmm(g[samples, o_sl], u_grp.transpose(1, 2), out=out[:, o_sl])  # [n, Og, J]
        return out

    def sq_sum(self, go: Tensor) -> dict[str, Tensor]:
        out = {}
        g = go.reshape(self.n, self.module.out_channels, -1)  # [N, O, P]
        if "bias" in self.wanted:
            out["bias"] = g.sum(-1).square().sum(0)  # [O]
        if "weight" in self.wanted:
            # per-sample gradients in cache-sized blocks of samples, squared and summed
            acc = g.new_zeros(self.module.out_channels, self.rows)  # [O, J]
            block = max(1, _BLOCK_FLOATS // (self.module.out_channels * self.rows))
            for start in range(0, self.n, block):
                acc += self._full_weight(g, slice(start, start + block)).square_().sum(0)
            out["weight"] = acc.view(self.module.weight.shape)
        return out

    def _bias(self, go: Tensor, idx: Tensor | None) -> Tensor:
        g = go.reshape(self.n, self.module.out_channels, -1)  # [N, O, P]
        return g.sum(-1) if idx is None else g[:, idx].sum(-1)  # [N, O] or [N, E]

    def sq_norms(self, go: Tensor) -> dict[str, Tensor]:
        out = {}
        if "weight" in self.wanted:
            out["weight"] = self._weight_sq_norms(go)
        if "bias" in self.wanted:
            out["bias"] = self._bias(go, None).square().sum(1)
        return out

    def _weight_sq_norms(self, go: Tensor) -> Tensor:
        """``||dW_n||**2`` ``[N]`` without storing any per-sample gradient.

        Few positions (deep layers, ``P (O + J) < O J``, one group): the Gram identity
        ``||sum_p g_p u_p^T||^2 = sum_pq (g^T g)_pq (u^T u)_pq``. Otherwise one kernel offset
        at a time: the slice ``[N, O, Cin/groups]`` of offset (i, j) is ``g [N, O, P]`` times
        the padded input seen from that offset; with stride 1 that view is a contiguous
        window of the flattened padded input once ``g`` is zero-padded to the padded width,
        so no copy is made per offset (cheaper on CPU than ``F.unfold``).
        """
        m, n, o = self.module, self.n, self.module.out_channels
        g3 = go.reshape(n, o, -1)  # [N, O, P]
        if m.groups == 1 and g3.shape[2] * (o + self.rows) < o * self.rows:
            if not hasattr(self, "uu"):
                u = self.unfolded  # [N, J, P]
                self.uu = torch.bmm(u.transpose(1, 2), u)  # [N, P, P]
            return (torch.bmm(g3.transpose(1, 2), g3) * self.uu).sum(dim=(1, 2))
        groups, (kh, kw), (sh, sw), (dh, dw) = m.groups, m.kernel_size, m.stride, m.dilation
        ho, wo, ig = self.h_out, self.w_out, self.c_group
        xp = self.a  # [N, Cin, Hp, Wp]
        hp, wp = xp.shape[2], xp.shape[3]
        if sh == sw == 1:
            # flat windows: position (h, w) of offset (i, j) is (i dh + h) Wp + j dw + w
            span = ho * wp
            flat = F.pad(xp.reshape(n * groups, ig, hp * wp), (0, (kw - 1) * dw))
            gb = F.pad(go.reshape(n, o, ho, wo), (0, wp - wo))  # [N, O, Ho, Wp]
            gb = gb.reshape(n * groups, o // groups, span)  # [N groups, O/groups, Ho Wp]

            def window(i: int, j: int) -> Tensor:
                start = i * dh * wp + j * dw
                return flat[:, :, start : start + span]  # [N groups, Cin/groups, Ho Wp]
        else:
            gb = g3.reshape(n * groups, o // groups, ho * wo)  # [N groups, O/groups, P]

            def window(i: int, j: int) -> Tensor:
                xs = xp[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw :: sw][..., :wo]
                return xs.reshape(n * groups, ig, ho * wo)  # [N groups, Cin/groups, P]

        total = g3.new_zeros(n)
        for i in range(kh):
            for j in range(kw):
                part = torch.bmm(gb, window(i, j).transpose(1, 2))  # [N groups, O/g, Cin/g]
                total += part.reshape(n, -1).square().sum(dim=1)
        return total


class BatchNormForm(_Form):
    def __init__(self, module: nn.modules.batchnorm._BatchNorm, inp: Tensor, wanted: Wanted):
        super().__init__(module, wanted)
        self.n, self.ch = inp.shape[0], inp.shape[1]
        if "weight" in wanted:
            x = inp.reshape(self.n, self.ch, -1)  # [N, ch, L]
            mean = module.running_mean.to(x.dtype)[None, :, None]
            std = (module.running_var.to(x.dtype) + module.eps).sqrt()[None, :, None]
            idx = wanted["weight"]
            if idx is None:
                self.xhat = (x - mean) / std  # [N, ch, L]
            else:
                self.xhat = (x[:, idx] - mean[:, idx]) / std[:, idx]  # [N, E, L]

    def _weight(self, go: Tensor, idx: Tensor | None) -> Tensor:
        g = go.reshape(self.n, self.ch, -1)  # [N, ch, L]
        g = g if idx is None else g[:, idx]
        return torch.linalg.vecdot(g, self.xhat)  # [N, ch] or [N, E]

    def _bias(self, go: Tensor, idx: Tensor | None) -> Tensor:
        g = go.reshape(self.n, self.ch, -1).sum(-1)  # [N, ch]
        return g if idx is None else g[:, idx]


class ModuleVJPForm(_Form):
    """Any module: exact per-sample VJPs of one recorded call w.r.t. its own parameters."""

    def __init__(self, module: nn.Module, args: tuple, kwargs: dict, wanted: Wanted) -> None:
        super().__init__(module, wanted)
        self.tree = (args, kwargs)
        n = args[0].shape[0] if args and isinstance(args[0], Tensor) else None
        self.in_dims = pytree.tree_map(
            lambda a: 0 if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n else None,
            self.tree,
        )

    def per_sample(self, go: Tensor) -> dict[str, Tensor]:
        m, in_dims = self.module, self.in_dims
        own = m.named_parameters(recurse=False)
        params = {ln: p.detach() for ln, p in own if ln in self.wanted}

        def vjp_one(pd: dict[str, Tensor], tree_i: Any, gi: Tensor) -> dict[str, Tensor]:
            def inner(pd2: dict[str, Tensor]) -> Tensor:
                # fresh copies: the module may modify its inputs in place, and the recorded
                # inputs serve every cotangent
                args_i, kwargs_i = _unsqueeze_batched(tree_i, in_dims)
                return (functional_call(m, pd2, args_i, kwargs_i) * gi.unsqueeze(0)).sum()

            return grad(inner)(pd)

        per = vmap(vjp_one, in_dims=(None, in_dims, 0))(params, self.tree, go)  # [N, *shape]
        return {
            ln: v if self.wanted[ln] is None else v.flatten(1)[:, self.wanted[ln]]
            for ln, v in per.items()
        }


def _unsqueeze_batched(tree_i: Any, in_dims: Any) -> Any:
    """Copies of the batched leaves of one sample's ``(args, kwargs)``, with a batch axis of 1."""
    leaves, spec = pytree.tree_flatten(tree_i)
    dims = pytree.tree_leaves(in_dims, is_leaf=lambda d: d is None)
    out = [a.unsqueeze(0).clone() if d == 0 else a for a, d in zip(leaves, dims, strict=True)]
    return pytree.tree_unflatten(out, spec)


_FORMS = {"linear": LinearForm, "conv2d": Conv2dForm, "batchnorm": BatchNormForm}


def make_form(module: nn.Module, args: tuple, kwargs: dict, wanted: Wanted) -> _Form:
    """The form for one call of ``module`` with ``args``/``kwargs`` (see module docstring)."""
    kind = closed_form_kind(module)
    if kind is None:
        return ModuleVJPForm(module, args, kwargs, wanted)
    return _FORMS[kind](module, args[0], wanted)
