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
# Conv2d ``sq_sum`` routes (diagonal Fisher; Conv2dForm.sq_sum): stack the cotangents below
# this many output channels (GEMMs with M = 16 or 32 rows ran at 25-40 % of the rate of
# stacked ones) while the kept output gradients take at most _STACK_MAX_FLOATS; the
# position-pair route while its [N, P(P+1)/2, J] factor takes at most _KR_MAX_FLOATS.
# _SQ_SUM_MODE forces one route (tests).
_STACK_MAX_CHANNELS = 128
_STACK_MAX_FLOATS = 1 << 24
_KR_MAX_FLOATS = 1 << 25
_SQ_SUM_MODE: str | None = None


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

    def sq_sum(self, go: Tensor, k: int = 0, k_count: int = 1) -> dict[str, Tensor]:
        """``sum_n g_n**2`` of the whole per-sample gradients (wanted must be all ``None``)
        for cotangent ``k`` of ``k_count``; the caller adds up the cotangents' results. A
        form may hold its part back and return the sum over all cotangents with the last."""
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

    def sq_sum(self, go: Tensor, k: int = 0, k_count: int = 1) -> dict[str, Tensor]:
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
        self.acc: Tensor | None = None  # sq_sum's running part across cotangents
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
            self._unfolded = self._im2col(slice(None))
            self.a = None
        return self._unfolded

    def _im2col(self, samples: slice) -> Tensor:
        """``F.unfold`` of the padded input of ``samples``, ``[n, groups * J, P]`` (same
        values, same order), as one copy of a strided view ``[n, Cin, kh, kw, Hout, Wout]``
        of the padded input: 3-4x faster than ``F.unfold`` on CPU for 32 x 32 inputs (and
        faster than kh * kw slice copies)."""
        if self._unfolded is not None:
            return self._unfolded[samples]
        m = self.module
        a = self.a[samples]  # [n, Cin, Hp, Wp]
        (kh, kw), (sh, sw), (dh, dw) = m.kernel_size, m.stride, m.dilation
        ho, wo = self.h_out, self.w_out
        sn, sc, sy, sx = a.stride()
        view = a.as_strided(
            (a.shape[0], a.shape[1], kh, kw, ho, wo),
            (sn, sc, sy * dh, sx * dw, sy * sh, sx * sw),
            a.storage_offset(),
        )
        return view.contiguous().view(a.shape[0], -1, ho * wo)

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

    def sq_sum(self, go: Tensor, k: int = 0, k_count: int = 1) -> dict[str, Tensor]:
        """See :meth:`_Form.sq_sum`. The weight's part takes one of three routes
        (:meth:`sq_sum_mode`), all exact:

        - ``"class"``: each cotangent's per-sample gradients ``[n, O, J]`` in cache-sized
          sample blocks (one GEMM per sample, ``g [O, P] x u^T [P, J]``), squared, summed;
        - ``"stack"`` (few output channels, where that GEMM is thin): the cotangents' output
          gradients are kept and, with the last, stacked into one GEMM per sample
          ``[K O, P] x [P, J]``;
        - ``"kr"`` (few positions, P (P+1)/2 <= K P): ``sum_n sum_k (g u^T)^2 =
          sum_n sum_{p<=q} (c_pq sum_k g_p g_q) (u_p u_q)`` (c = 1 on the diagonal, 2 off
          it): the products of position pairs of g are summed over the cotangents as they
          come, and with the last one GEMM ``[O, n P(P+1)/2] x [n P(P+1)/2, J]`` finishes.
          Per-sample GEMMs with P = 16 inner products run far below the GEMM rate.
        """
        out = {}
        o = self.module.out_channels
        g = go.reshape(self.n, o, -1)  # [N, O, P]
        if "bias" in self.wanted:
            out["bias"] = g.sum(-1).square().sum(0)  # [O]
        if "weight" not in self.wanted:
            return out
        mode = self.sq_sum_mode(k_count)
        last = k == k_count - 1
        if mode == "kr":
            gt = g.permute(2, 0, 1).contiguous()  # [P, N, O]
            if k == 0:
                self.acc = g.new_zeros(_pair_count(gt.shape[0]), self.n, o)  # [pairs, N, O]
            _add_pairs(self.acc, gt)
            if last:
                out["weight"] = self._kr_finish().view(self.module.weight.shape)
            return out
        if mode == "stack":
            if k == 0:
                self.acc = g.new_empty(self.n, k_count, o, g.shape[2])  # [N, K, O, P]
            self.acc[:, k] = g
            if last:
                stacked = self.acc.view(self.n, k_count * o, -1)  # [N, K O, P]
                out["weight"] = self._sq_blocks(stacked, k_count)
                self.acc = None
            return out
        if self.module.groups == 1:
            out["weight"] = self._sq_blocks(g, 1)
            return out
        acc = g.new_zeros(o, self.rows)  # [O, J]
        block = max(1, _BLOCK_FLOATS // (o * self.rows))
        for start in range(0, self.n, block):
            acc += self._full_weight(g, slice(start, start + block)).square_().sum(0)
        out["weight"] = acc.view(self.module.weight.shape)
        return out

    def sq_sum_mode(self, k_count: int) -> str:
        """Route of :meth:`sq_sum` for ``k_count`` cotangents (see there)."""
        if _SQ_SUM_MODE is not None and self.module.groups == 1:
            return _SQ_SUM_MODE
        if self.module.groups != 1 or k_count == 1:
            return "class"
        o, p, j = self.module.out_channels, self.h_out * self.w_out, self.rows
        pairs = p * (p + 1) // 2
        if pairs <= k_count * p and self.n * pairs * j <= _KR_MAX_FLOATS:
            return "kr"
        if o < _STACK_MAX_CHANNELS and self.n * k_count * o * p <= _STACK_MAX_FLOATS:
            return "stack"
        return "class"

    def _sq_blocks(self, g: Tensor, stack: int) -> Tensor:
        """``sum_n sum_s (g_ns u_n^T)^2`` for ``g [N, stack O, P]`` (groups == 1), in
        cache-sized sample blocks: ``[O, J]`` in the weight's shape. Stacked cotangents use
        the unfolded input once, so it is then built block by block (in cache) instead of
        whole. Each block's products come out as ``[n stack, O J]`` rows, squared and summed
        over the leading dimension (a reduction over dimensions 0 and 2 of ``[n, J, stack,
        O]`` was up to 2x the GEMM's own time)."""
        o, j = self.module.out_channels, self.rows
        acc = g.new_zeros(o * j)  # [O J]
        block = max(1, _BLOCK_FLOATS // (stack * o * j))
        for start in range(0, self.n, block):
            sl = slice(start, start + block)
            u = self._im2col(sl) if stack > 1 else self.unfolded[sl]  # [n, J, P]
            part = torch.bmm(g[sl], u.transpose(1, 2))  # [n, stack O, J]
            acc += part.view(-1, o * j).square_().sum(0)
        return acc.view(self.module.weight.shape)

    def _kr_finish(self) -> Tensor:
        """The ``"kr"`` route's GEMM over position pairs and samples: ``[O, J]``."""
        ut = self.unfolded.permute(2, 0, 1).contiguous()  # [P, N, J]
        uu = ut.new_zeros(_pair_count(ut.shape[0]), self.n, self.rows)  # [pairs, N, J]
        _add_pairs(uu, ut, off_diagonal=2.0)
        gg, self.acc = self.acc, None  # [pairs, N, O]
        return gg.view(-1, gg.shape[2]).T @ uu.view(-1, self.rows)  # [O, J]

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


def _pair_count(p: int) -> int:
    return p * (p + 1) // 2


def _add_pairs(acc: Tensor, x: Tensor, off_diagonal: float = 1.0) -> None:
    """``acc[(p, q)] += c_pq x[p] x[q]`` for the pairs p <= q in row-major order (c_pp = 1,
    c_pq = ``off_diagonal``), one contiguous slice per p: ``x [P, ...]``,
    ``acc [P(P+1)/2, ...]``."""
    start = 0
    for p in range(x.shape[0]):
        span = x.shape[0] - p
        acc[start].addcmul_(x[p], x[p])
        acc[start + 1 : start + span].addcmul_(x[p : p + 1], x[p + 1 :], value=off_diagonal)
        start += span


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
