"""The plumbing behind :func:`diag_fisher` and :func:`masked_grads`.

Index convention: N samples (one chunk: n), C classes, E requested entries of one parameter.

Per chunk of samples: one forward pass with forward hooks on the modules that own the
requested parameters (recording each call's input and output); then, for each class c,
one backward pass of ``log p(c|x)`` taken *only* w.r.t. those recorded outputs (no weight
gradient is ever formed), with the cotangent ``d log p_c / d logits = onehot_c - p``
(times ``sqrt(p_c)`` for ``scale="sqrt_prob"``) so that all classes share the forward;
the closed forms of :mod:`.closed_form` then give the per-sample entries. Parameters whose
owner is not handled in closed form (other layer types, shared parameters, modules never
called as modules) go through an exact ``torch.func`` fallback over just those parameters.

Limitation: a parameter used *both* through its module's forward and directly elsewhere in
the model (e.g. ``F.linear(h, self.fc.weight)`` next to ``self.fc(x)``) is only seen through
the module call; register such uses as modules (or share the module) to stay exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from fishermask.errors import ConfigError, check_choice, check_positive
from fishermask.fisher.closed_form import _BATCHNORMS, Wanted, closed_form_kind, make_form

SCALES = ("sqrt_prob", "none")

# Callbacks: closed-form results arrive per class, fallback results for all classes at once.
OnClass = Callable[[slice, int, dict[str, Tensor]], None]  # name -> [n, E] / [n, *shape] / [*shape]
OnFallback = Callable[[slice, dict[str, Tensor]], None]  # name -> [n, C, E] or [n, C, *shape]


def check_model(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Raise unless ``model`` is usable per sample; return its device and dtype."""
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


@dataclass
class _Owner:
    module: nn.Module
    wanted: Wanted = field(default_factory=dict)  # local name -> flat idx or None
    names: dict[str, str] = field(default_factory=dict)  # local name -> full name


def _plan(model: nn.Module, wanted: Wanted) -> tuple[list[_Owner], list[str]]:
    """Split the requested parameters into closed-form owners and fallback names."""
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for local, p in module._parameters.items():
            if p is not None:
                owners.setdefault(id(p), []).append((module, local))
    by_module: dict[int, _Owner] = {}
    fallback = []
    for name, p in model.named_parameters():
        if name not in wanted:
            continue
        own = owners.get(id(p), [])
        # a parameter shared by two modules, or held by an unhandled layer, takes the fallback
        if len(own) == 1 and closed_form_kind(own[0][0]) is not None:
            module, local = own[0]
            entry = by_module.setdefault(id(module), _Owner(module))
            entry.wanted[local] = wanted[name]
            entry.names[local] = name
        else:
            fallback.append(name)
    return list(by_module.values()), fallback


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
    """Forward hooks recording (input, output) of every call of the hooked modules.

    Every eval BatchNorm of the model (handled in closed form) has its output recomputed as
    the identical affine map (:func:`_batchnorm_as_affine`), whose backward is cheaper.
    A module whose output (or input) is later modified in place (e.g. ``ReLU(inplace=True)``)
    would corrupt the record; such modules are detected by tensor version counters and the
    chunk is re-run with the hook returning a copy of the output (or storing a copy of the
    input) for them.
    """

    def __init__(self, modules: list[nn.Module], model: nn.Module) -> None:
        self.modules = modules
        self.recorded = {id(m) for m in modules}
        self.affine = [m for m in model.modules() if closed_form_kind(m) == "batchnorm"]
        self.clone_in: set[int] = set()
        self.clone_out: set[int] = set()
        self.calls: dict[int, list[tuple[Tensor, Tensor]]] = {}
        self._versions: list[tuple[int, Tensor, int, Tensor, int]] = []

    def _hook(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        key = id(module)
        inp = args[0]
        replaced = closed_form_kind(module) == "batchnorm"
        if replaced:
            output = _batchnorm_as_affine(module, inp)
        if key in self.recorded:
            saved = inp.detach().clone() if key in self.clone_in else inp.detach()
            self.calls.setdefault(key, []).append((saved, output))
            self._versions.append((key, inp, inp._version, output, output._version))
            if key in self.clone_out:
                return output.clone()
        return output if replaced else None

    def forward(self, model: nn.Module, x: Tensor) -> Tensor:
        hooked = self.modules + [m for m in self.affine if id(m) not in self.recorded]
        for _ in range(3):
            self.calls, self._versions = {}, []
            handles = [m.register_forward_hook(self._hook) for m in hooked]
            try:
                logits = model(x)
            finally:
                for h in handles:
                    h.remove()
            dirty = False
            for key, inp, v_in, out, v_out in self._versions:
                if inp._version != v_in and key not in self.clone_in:
                    self.clone_in.add(key)
                    dirty = True
                if out._version != v_out and key not in self.clone_out:
                    self.clone_out.add(key)
                    dirty = True
            self._versions = []
            if not dirty:
                return logits
        raise RuntimeError("in-place modifications of recorded tensors persist")  # pragma: no cover


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


def _fallback(
    model: nn.Module, x: Tensor, names: list[str], probs: Tensor, scale: str
) -> dict[str, Tensor]:
    """Exact per-sample, per-class gradients of ``names`` by torch.func: name -> [n, C, *shape]."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def log_probs(sub: dict[str, Tensor], xi: Tensor) -> Tensor:
        out = functional_call(model, {**params, **buffers, **sub}, (xi.unsqueeze(0),))
        return torch.log_softmax(out, dim=-1).squeeze(0)  # [C]

    jac = vmap(jacrev(log_probs), in_dims=(None, 0))({k: params[k] for k in names}, x)
    if scale == "sqrt_prob":
        w = probs.sqrt()  # [n, C]
        jac = {k: v * w.view(*w.shape, *([1] * (v.dim() - 2))) for k, v in jac.items()}
    return jac


def _assemble(
    called: list[_Owner], forms: list[list], gos: list[Tensor], reduce: bool
) -> dict[str, Tensor]:
    """One class's per-sample results by full name (``sum_n g**2`` with ``reduce``).

    ``gos`` holds the output gradients of every recorded call, owners in order.
    """
    out: dict[str, Tensor] = {}
    pos = 0
    for owner, call_forms in zip(called, forms, strict=True):
        if reduce and len(call_forms) == 1:
            for local, g in call_forms[0].sq_sum(gos[pos]).items():
                out[owner.names[local]] = g
            pos += 1
            continue
        per: dict[str, Tensor] = {}
        for form in call_forms:  # a module called several times: contributions add up
            for local, g in form.per_sample(gos[pos]).items():
                per[local] = per[local] + g if local in per else g
            pos += 1
        for local, g in per.items():
            out[owner.names[local]] = g.square().sum(0) if reduce else g
    return out


def run(
    model: nn.Module,
    inputs: Tensor,
    wanted: Wanted,
    *,
    scale: str,
    batch_size: int,
    reduce: bool = False,
    on_start: Callable[[int], None],
    on_class: OnClass,
    on_fallback: OnFallback,
) -> int:
    """Stream per-sample, per-class gradients of the ``wanted`` parameters; return C.

    ``wanted`` maps full parameter names to flat indices (masked entries, row-major) or
    ``None`` (whole tensor). ``on_start(C)`` is called once, after the first forward pass.
    With ``reduce=True`` (all ``None``) ``on_class(slice, -1, totals)`` is called once per chunk
    with ``sum_c sum_n g**2`` per parameter instead.
    Results are already scaled by ``sqrt(p_c)`` when ``scale="sqrt_prob"``.
    """
    check_choice("scale", scale, SCALES)
    check_positive("batch_size", batch_size)
    device, dtype = check_model(model)
    if inputs.dim() < 1 or inputs.shape[0] < 1:
        raise ConfigError(f"`inputs` has shape {tuple(inputs.shape)}; need [N, ...] with N >= 1.")
    owners, fallback = _plan(model, wanted)
    recorder = _Recorder([o.module for o in owners], model)
    closed_params = [getattr(o.module, local) for o in owners for local in o.wanted]
    num_classes = 0
    for start in range(0, inputs.shape[0], batch_size):
        sl = slice(start, min(start + batch_size, inputs.shape[0]))
        x = inputs[sl].to(device=device, dtype=dtype)
        n = x.shape[0]
        with torch.enable_grad(), _requires_grad(closed_params):
            logits = recorder.forward(model, x)
            if not num_classes:
                num_classes = _check_logits(logits, n)
                on_start(num_classes)
            elif _check_logits(logits, n) != num_classes:  # pragma: no cover
                raise ConfigError("The number of logits changed between chunks.")
            probs = torch.softmax(logits.detach(), dim=1)  # [n, C]
            # owners never called as modules this chunk go through the fallback
            called = [o for o in owners if recorder.calls.get(id(o.module))]
            extra = [nm for o in owners if o not in called for nm in o.names.values()]
            forms = [
                [make_form(o.module, inp, o.wanted) for inp, _ in recorder.calls[id(o.module)]]
                for o in called
            ]
            outs = [out for o in called for _, out in recorder.calls[id(o.module)]]
            totals: dict[str, Tensor] = {}  # reduce: name -> sum_c sum_n g**2
            for c in range(num_classes if outs else 0):
                cot = -probs.clone()  # [n, C]: d log p_c / d logits = onehot_c - p
                cot[:, c] += 1
                if scale == "sqrt_prob":
                    cot *= probs[:, c : c + 1].sqrt()
                gos = torch.autograd.grad(
                    logits, outs, cot, retain_graph=c < num_classes - 1, allow_unused=True
                )
                gos = [
                    torch.zeros_like(o) if g is None else g for g, o in zip(gos, outs, strict=True)
                ]
                results = _assemble(called, forms, gos, reduce)
                if not reduce:
                    on_class(sl, c, results)
                for name, g in results.items() if reduce else ():
                    totals[name] = totals[name] + g if name in totals else g
            if reduce and outs:
                on_class(sl, -1, totals)
            del logits, outs, forms
        names = fallback + extra
        if names:
            jac = _fallback(model, x, names, probs, scale)
            for name in names:
                idx = wanted[name]
                jac[name] = jac[name] if idx is None else jac[name].flatten(2)[:, :, idx]
            on_fallback(sl, jac)
    return num_classes
