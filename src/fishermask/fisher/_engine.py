"""The one per-sample gradient engine behind :func:`diag_fisher`, :func:`masked_grads` and
:func:`entropy_gradnorm_scores`.

Index convention: N samples (one chunk: n), C classes (logits), K cotangents per sample,
E requested entries of one parameter.

The caller gives a *cotangent on the logits*: ``cotangents(logits [n, C]) -> [K, n, C]``,
row k being ``d loss_k / d logits`` of some per-sample loss (for the Fisher:
``d log p_c / d logits = onehot_c - p``, times ``sqrt(p_c)``, K = C; for LPLgrad the
gradient of the entropy, K = 1), and a *reduction* of the per-sample gradients
``g[n, k] = d loss_k(x_n) / d theta``:

- ``"entries"``: the requested entries, ``name -> [n, K, E]`` (masked gradients);
- ``"sq_sum"``: ``sum_n sum_k g**2``, ``name -> [*shape]`` (diagonal Fisher);
- ``"sq_norms"``: per-sample squared norms, ``name -> [n, K]`` (gradient norms per tensor;
  a global norm is their sum).

Per chunk of samples: one forward pass with forward hooks on the modules that own the
requested parameters (recording each call's arguments and output; every eval BatchNorm runs
as the identical affine map, whose backward is cheaper); then, for each k, one backward
pass taken *only* w.r.t. those recorded outputs (no weight gradient is formed);
the per-layer forms of :mod:`.closed_form` turn each output gradient into the reduction
(closed forms for Linear, Conv2d and eval BatchNorm; an exact per-call ``torch.func``
vector-Jacobian product for any other module). Parameters shared by several modules, owned
by a module never called as a module, or owned by a module whose output is not a tensor go
through an exact whole-model ``torch.func`` fallback (``method="func"``: every parameter).

Limitation: a parameter used *both* through its module's forward and directly elsewhere in
the model (e.g. ``F.linear(h, self.fc.weight)`` next to ``self.fc(x)``) is only seen through
the module call; register such uses as modules (or share the module) to stay exact.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp, vmap
from torch.utils import _pytree as pytree

from fishermask.errors import ConfigError, check_choice, check_positive
from fishermask.fisher.closed_form import _BATCHNORMS, Wanted, closed_form_kind, make_form

Scale = Literal["sqrt_prob", "none"]
Reduction = Literal["entries", "sq_sum", "sq_norms"]
Method = Literal["auto", "hooks", "func"]
SCALES: tuple[str, ...] = get_args(Scale)
REDUCTIONS: tuple[str, ...] = get_args(Reduction)
METHODS: tuple[str, ...] = get_args(Method)

Cotangents = Callable[[Tensor], Tensor]  # logits [n, C] (detached) -> [K, n, C]


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` is the wrapper ``torch.compile`` returns (``OptimizedModule``, the
    module it compiled in ``_orig_mod``)."""
    return type(module).__name__ == "OptimizedModule" and isinstance(
        getattr(module, "_orig_mod", None), nn.Module
    )


def check_model(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Raise unless ``model`` is usable per sample; return its device and dtype."""
    compiled = [name or "<model>" for name, m in model.named_modules() if is_compiled(m)]
    if compiled:  # inductor's graph hides the layer outputs: every gradient came out 0
        raise ConfigError(
            f"{compiled[0]!r} is a torch.compile'd module, whose compiled graph hides its "
            "layers' outputs from the per-sample gradients (they came out 0); pass the module "
            "before compiling (compiled._orig_mod: the same weights)."
        )
    params = list(model.parameters())
    if not params:
        raise ConfigError("The model has no parameters; there is no Fisher information to compute.")
    training = [name or "<model>" for name, m in model.named_modules() if m.training]
    if training:
        raise ConfigError(
            f"Modules {training[:3]}{' ...' if len(training) > 3 else ''} are in training mode; "
            "per-sample Fisher quantities need eval mode (frozen BatchNorm statistics, no "
            "dropout). Call model.eval() first."
        )
    for name, m in model.named_modules():
        if isinstance(m, _BATCHNORMS) and m.running_mean is None:
            raise ConfigError(
                f"BatchNorm {name!r} has no running statistics (track_running_stats=False), so "
                "its output couples the samples of a batch and per-sample gradients are "
                "undefined; use a model with running statistics."
            )
    return params[0].device, params[0].dtype


def log_prob_cotangents(probs: Tensor, scale: str) -> Tensor:
    """``[C, n, C]``: row c is ``d log p_c / d logits = onehot_c - p``, times ``sqrt(p_c)``
    when ``scale="sqrt_prob"`` (the Fisher's ``V_x``; BAIT's last-layer coefficients)."""
    check_choice("scale", scale, SCALES)
    c = probs.shape[1]
    cot = probs.neg().unsqueeze(0).repeat(c, 1, 1)  # [C, n, C]
    cot.diagonal(dim1=0, dim2=2).add_(1)  # cot[c, :, c] += 1
    if scale == "sqrt_prob":
        cot *= probs.T.sqrt()[:, :, None]
    return cot


def loss_cotangents(losses: Callable[[Tensor], Tensor]) -> Cotangents:
    """Cotangents of per-sample losses ``losses(logits [n, C]) -> [n, K]`` (by autograd)."""

    def cotangents(logits: Tensor) -> Tensor:
        with torch.enable_grad():
            z = logits.detach().requires_grad_(True)
            per = losses(z)  # [n, K]
            k_count = per.shape[1]
            return torch.stack(
                [
                    torch.autograd.grad(per[:, k].sum(), z, retain_graph=k + 1 < k_count)[0]
                    for k in range(k_count)
                ]
            )  # [K, n, C]

    return cotangents


@dataclass
class _Owner:
    module: nn.Module
    wanted: Wanted = field(default_factory=dict)  # local name -> flat idx or None
    names: dict[str, str] = field(default_factory=dict)  # local name -> full name


def _owners_of(model: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for local, p in module._parameters.items():
            if p is not None:
                owners.setdefault(id(p), []).append((module, local))
    return owners


def _group(
    model: nn.Module, wanted: Wanted, names: list[str], generic: bool
) -> tuple[list[_Owner], list[str]]:
    """Owners (closed-form modules, or any single owner if ``generic``) and the rest."""
    owners = _owners_of(model)
    params = dict(model.named_parameters())
    by_module: dict[int, _Owner] = {}
    rest = []
    for name in names:
        own = owners.get(id(params[name]), [])
        # a parameter shared by two modules, or held by an unhandled layer, goes to the rest
        if len(own) == 1 and (generic or closed_form_kind(own[0][0]) is not None):
            module, local = own[0]
            entry = by_module.setdefault(id(module), _Owner(module))
            entry.wanted[local] = wanted[name]
            entry.names[local] = name
        else:
            rest.append(name)
    return list(by_module.values()), rest


def _plan(model: nn.Module, wanted: Wanted) -> tuple[list[_Owner], list[str]]:
    """Split the requested parameters into closed-form owners and the rest (per-call VJPs or
    the whole-model fallback)."""
    names = [n for n, _ in model.named_parameters() if n in wanted]
    return _group(model, wanted, names, generic=False)


def _batchnorm_as_affine(module: nn.Module, x: Tensor) -> Tensor:
    """Eval BatchNorm as the per-channel affine map it is: ``x * a + b`` (same function).

    Its backward is one multiplication, several times cheaper on CPU than
    ``native_batch_norm_backward``; ``a``, ``b`` stay attached to the BN parameters so the
    output joins the graph whenever they require grad.
    """
    a = (module.running_var.to(x.dtype) + module.eps).rsqrt()  # [ch]
    if module.weight is not None:
        a = a * module.weight
    b = -module.running_mean.to(x.dtype) * a  # [ch]
    if module.bias is not None:
        b = b + module.bias
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return x * a.view(shape) + b.view(shape)


class _Recorder:
    """Forward hooks recording ``((args, kwargs), output)`` of every call of the hooked modules.

    Closed-form modules keep only their first argument; other modules keep all their
    arguments, taken before the call (they may modify them in place). Every eval BatchNorm of
    the model runs as the identical affine map. A recorded tensor later
    modified in place (e.g. by ``ReLU(inplace=True)``) would corrupt the record; such modules
    are detected by tensor version counters and the chunk is re-run with copies for them.
    A module whose output is not a tensor is listed in ``unsupported``.
    """

    def __init__(self, modules: list[nn.Module], model: nn.Module) -> None:
        self.modules = modules
        self.recorded = {id(m) for m in modules}
        self.generic = {id(m) for m in modules if closed_form_kind(m) is None}
        self.affine = [m for m in model.modules() if closed_form_kind(m) == "batchnorm"]
        self.clone_in: set[int] = set()
        self.clone_out: set[int] = set()
        self.calls: dict[int, list[tuple[tuple[tuple, dict], Tensor]]] = {}
        self.unsupported: dict[int, str] = {}
        self._pending: dict[int, list[tuple[tuple[tuple, dict], list]]] = {}
        self._versions: list[tuple[int, bool, Tensor, int]] = []  # key, is_input, t, version

    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        key = id(module)
        clone = key in self.clone_in

        def keep(a: Any) -> Any:
            if not isinstance(a, Tensor):
                return a
            return a.detach().clone() if clone else a.detach()

        saved = pytree.tree_map(keep, (args, kwargs))
        leaves = [t for t in pytree.tree_leaves(saved) if isinstance(t, Tensor)]
        versions = [(key, True, t, t._version) for t in leaves]
        self._pending.setdefault(key, []).append((saved, versions))

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        key = id(module)
        if key in self.recorded:
            if key in self.generic:
                saved, versions = self._pending[key].pop()
                if not isinstance(output, Tensor):
                    kinds = type(module).__name__, type(output).__name__
                    self.unsupported[key] = "{} returns {}".format(*kinds)
                    return None
                self._versions += versions
            else:
                inp = args[0]
                saved = ((inp.detach().clone() if key in self.clone_in else inp.detach(),), {})
                self._versions.append((key, True, inp, inp._version))
            self.calls.setdefault(key, []).append((saved, output))
            self._versions.append((key, False, output, output._version))
            if key in self.clone_out:
                return output.clone()
        return None

    def forward(self, model: nn.Module, x: Tensor) -> Tensor:
        for _ in range(3):
            self.calls, self.unsupported, self._pending, self._versions = {}, {}, {}, []
            handles = [m.register_forward_hook(self._hook, with_kwargs=True) for m in self.modules]
            handles += [
                m.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
                for m in self.modules
                if id(m) in self.generic
            ]
            try:
                with _as_affine(self.affine):
                    logits = model(x)
            finally:
                for h in handles:
                    h.remove()
            dirty = False
            for key, is_input, t, version in self._versions:
                flags = self.clone_in if is_input else self.clone_out
                if t._version != version and key not in flags:
                    flags.add(key)
                    dirty = True
            self._versions = []
            if not dirty:
                return logits
        raise RuntimeError("in-place modifications of recorded tensors persist")  # pragma: no cover


@contextmanager
def _as_affine(batchnorms: list[nn.Module]) -> Iterator[None]:
    """Run each eval BatchNorm as :func:`_batchnorm_as_affine` (instance ``forward``), restored
    afterwards; its hooks still run."""
    own = [m.__dict__.get("forward") for m in batchnorms]
    try:
        for m in batchnorms:
            m.forward = functools.partial(_batchnorm_as_affine, m)
        yield
    finally:
        for m, f in zip(batchnorms, own, strict=True):
            if f is None:
                del m.forward
            else:
                m.forward = f


@contextmanager
def _requires_grad(params: list[nn.Parameter]) -> Iterator[None]:
    """Temporarily let ``params`` require grad so that the hooked outputs join the graph."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _check_logits(logits: Tensor, n: int) -> int:
    if logits.dim() != 2 or logits.shape[0] != n:
        raise ConfigError(
            f"The model returned shape {tuple(logits.shape)} for {n} inputs; fishermask.fisher "
            "needs logits of shape [N, C]."
        )
    return logits.shape[1]


def _func_grads(model: nn.Module, x: Tensor, names: list[str], cot: Tensor) -> dict[str, Tensor]:
    """Exact per-sample gradients by torch.func: ``name -> [n, K, *shape]``, the vector-Jacobian
    products of each sample's logits with its K cotangents ``cot [K, n, C]``."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def one(sub: dict[str, Tensor], xi: Tensor, ci: Tensor) -> dict[str, Tensor]:
        def logits(s: dict[str, Tensor]) -> Tensor:
            out = functional_call(model, {**params, **buffers, **s}, (xi.unsqueeze(0),))
            return out.squeeze(0)  # [C]

        _, pull = vjp(logits, sub)
        return vmap(pull)(ci)[0]  # name -> [K, *shape]

    return vmap(one, in_dims=(None, 0, 1))({k: params[k] for k in names}, x, cot)


def _reduce(g: Tensor, reduction: str, lead: int = 1, idx: Tensor | None = None) -> Tensor:
    """Per-sample gradients ``[n, *shape]`` (``lead=2``: ``[n, K, *shape]``), reduced; ``idx``
    picks the requested entries (``"entries"``)."""
    if reduction == "entries":
        flat = g.flatten(lead)  # [n(, K), E]
        return flat if idx is None else flat[..., idx]
    if reduction == "sq_sum":
        return g.square().sum(tuple(range(lead)))  # [*shape]
    return g.flatten(lead).square().sum(lead)  # [n(, K)]


def _assemble(
    called: list[_Owner],
    calls: list[list],
    forms: list[list | None],
    gos: list[Tensor],
    reduction: str,
    k: int,
    k_count: int,
) -> dict[str, Tensor]:
    """One cotangent's results by full name; ``gos`` holds the output gradients of every
    recorded call (``calls``), owners in order.

    Forms are built on first use and dropped after the ``last`` cotangent, so that only the
    layers in use hold their cached inputs (padded, normalised, unfolded).
    """
    out: dict[str, Tensor] = {}
    pos = 0
    last = k == k_count - 1
    for i, owner in enumerate(called):
        call_forms = forms[i]
        if call_forms is None:
            call_forms = [make_form(owner.module, *saved, owner.wanted) for saved, _ in calls[i]]
        forms[i] = None if last else call_forms
        if reduction != "entries" and len(call_forms) == 1:
            form = call_forms[0]
            if reduction == "sq_sum":  # may hold its part back until the last cotangent
                part = form.sq_sum(gos[pos], k, k_count)
            else:
                part = form.sq_norms(gos[pos])
            for local, g in part.items():
                out[owner.names[local]] = g
            pos += 1
            continue
        per: dict[str, Tensor] = {}
        for form in call_forms:  # a module called several times: contributions add up
            for local, g in form.per_sample(gos[pos]).items():
                per[local] = per[local] + g if local in per else g
            pos += 1
        for local, g in per.items():
            out[owner.names[local]] = _reduce(g, reduction)
    return out


def _merge(
    results: dict[str, Tensor], part: dict[str, Tensor], reduction: str, k: int, k_count: int
) -> None:
    """Put cotangent k's ``part`` into ``results`` (``sq_sum``: add; else column k)."""
    for name, g in part.items():
        if reduction == "sq_sum":
            results[name] = results[name] + g if name in results else g
        else:
            if name not in results:
                results[name] = g.new_empty(g.shape[0], k_count, *g.shape[1:])  # [n, K(, E)]
            results[name][:, k] = g


def per_sample_grads(
    model: nn.Module,
    inputs: Tensor,
    wanted: Wanted,
    *,
    cotangents: Cotangents,
    reduction: Reduction,
    batch_size: int,
    method: Method = "auto",
) -> Iterator[tuple[slice, Tensor, dict[str, Tensor]]]:
    """Per chunk of ``inputs``, the reduced per-sample gradients of the ``wanted`` parameters.

    Args:
        model: maps ``[n, ...]`` to logits ``[n, C]``; eval mode; not modified.
        inputs: ``[N, ...]`` (moved chunk by chunk to the model's device and dtype).
        wanted: full parameter names -> flat row-major indices of the requested entries
            (``"entries"`` only) or ``None`` (the whole tensor).
        cotangents: logits ``[n, C]`` -> ``[K, n, C]`` (see the module docstring).
        reduction: ``"entries"`` (``name -> [n, K, E]``), ``"sq_sum"`` (``name -> [*shape]``,
            summed over the chunk and K) or ``"sq_norms"`` (``name -> [n, K]``).
        batch_size: samples per chunk (bounds memory).
        method: ``"auto"`` (hooks, with the whole-model fallback where they cannot see a
            layer's output as a tensor), ``"hooks"`` (refuse such models) or ``"func"``
            (whole-model ``torch.func`` for every parameter; simpler, slower on CPU).

    Yields:
        ``(slice of inputs, probabilities [n, C], {name: result})`` per chunk, the names in
        ``model.named_parameters()`` order.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    check_choice("gradient method", method, METHODS)
    check_positive("batch_size", batch_size)
    device, dtype = check_model(model)
    if inputs.dim() < 1 or inputs.shape[0] < 1:
        raise ConfigError(f"`inputs` has shape {tuple(inputs.shape)}; need [N, ...] with N >= 1.")
    names = [n for n, _ in model.named_parameters() if n in wanted]
    owners: list[_Owner] = []
    fallback = names
    if method != "func":  # closed forms, then per-call VJPs, then the whole-model fallback
        owners, fallback = _plan(model, wanted)
        generic, fallback = _group(model, wanted, fallback, generic=True)
        owners += generic
    recorder = _Recorder([o.module for o in owners], model)
    owned_params = [getattr(o.module, local) for o in owners for local in o.wanted]
    num_classes = 0
    for start in range(0, inputs.shape[0], batch_size):
        sl = slice(start, min(start + batch_size, inputs.shape[0]))
        x = inputs[sl].to(device=device, dtype=dtype)
        results: dict[str, Tensor] = {}
        with torch.enable_grad(), _requires_grad(owned_params):
            if owners:
                logits = recorder.forward(model, x)
            else:
                with torch.no_grad():
                    logits = model(x)
            if not num_classes:
                num_classes = _check_logits(logits, x.shape[0])
            elif _check_logits(logits, x.shape[0]) != num_classes:  # pragma: no cover
                raise ConfigError("The number of logits changed between chunks.")
            probs = torch.softmax(logits.detach(), dim=1)  # [n, C]
            cot = cotangents(logits.detach())  # [K, n, C]
            k_count = cot.shape[0]
            if recorder.unsupported and method == "hooks":
                reason = next(iter(recorder.unsupported.values()))
                raise ConfigError(
                    f"method='hooks' cannot follow this model ({reason}); use method='auto' "
                    "or 'func'."
                )
            # owners never called as modules (or unsupported) this chunk: the fallback
            called = [
                o
                for o in owners
                if recorder.calls.get(id(o.module)) and id(o.module) not in recorder.unsupported
            ]
            extra = [nm for o in owners if o not in called for nm in o.names.values()]
            calls = [recorder.calls[id(o.module)] for o in called]
            forms: list[list | None] = [None] * len(called)
            outs = [out for owner_calls in calls for _, out in owner_calls]
            for k in range(k_count if outs else 0):
                gos = torch.autograd.grad(
                    logits, outs, cot[k], retain_graph=k < k_count - 1, allow_unused=True
                )
                gos = [
                    torch.zeros_like(o) if g is None else g for g, o in zip(gos, outs, strict=True)
                ]
                part = _assemble(called, calls, forms, gos, reduction, k, k_count)
                _merge(results, part, reduction, k, k_count)
            del logits, outs, forms, calls
        rest = set(fallback + extra)
        if rest:
            rest_names = [nm for nm in names if nm in rest]
            jac = _func_grads(model, x, rest_names, cot)  # name -> [n, K, *shape]
            for name in rest_names:
                results[name] = _reduce(jac[name], reduction, lead=2, idx=wanted[name])
        yield sl, probs, {name: results[name] for name in names}
