"""A plain ``nn.Module`` (``x -> logits``, an ``nn.Linear`` head) as a fishermask ``Classifier``.

Used by ``fishermask.query`` for a model you trained yourself, and by ``build_model`` for a
model builder of your own (``register_model``). Index convention: N images, C classes,
D embedding size (the head's input features).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from fishermask.errors import ConfigError
from fishermask.models.base import Classifier, ModelOutput, eval_mode


class ModuleClassifier(Classifier):
    """Adapts a plain ``nn.Module`` (``x -> logits``) whose head is an ``nn.Linear``.

    The head is the ``nn.Linear`` that runs last in a forward pass of ``example`` (a few
    inputs, as the model receives them), so a head registered before the layers it follows
    is found; without ``example``, the last ``nn.Linear`` in registration order. The
    embedding is the input of the head (captured by a forward hook), which is what k-center,
    BADGE and BAIT use; ``forward`` returns the module's logits: its output, the first
    element of a tuple or list it returns, or the ``"logits"`` of a dict (a Hugging Face
    ``ModelOutput``). Any other output, or probabilities (rows summing to 1), is refused:
    the strategies need logits.
    """

    def __init__(self, module: nn.Module, example: torch.Tensor | None = None) -> None:
        super().__init__()
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ConfigError(
                "fishermask needs a model ending in an nn.Linear layer (its head), or a "
                "fishermask Classifier; this model has no nn.Linear."
            )
        self.module = module
        self.classifier = linears[-1] if example is None else _head_of(module, linears, example)
        if self.classifier.out_features < 2:
            # softmax of one logit is 1 for every image: every score ties, picks by position
            raise ConfigError(
                f"the model's head (the nn.Linear that runs last) has "
                f"{self.classifier.out_features} output; the strategies need one logit per "
                "class (C >= 2). For a binary classifier with one logit z = fc(e), use a head "
                "nn.Linear(D, 2) with weight [0; fc.weight] and bias [0, fc.bias]: softmax of "
                "[0, z] is sigmoid(z), the same probabilities."
            )
        self._feature_channels = (self.classifier.in_features,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _logits(self.module(x))

    def mc_logits(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        """Logits ``[T, N, C]`` of T = ``samples`` whole forward passes (inside ``mc_dropout``
        its ``SeededDropout`` layers draw a new mask each pass)."""
        return torch.stack([self.forward(x) for _ in range(samples)])

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        seen: list[torch.Tensor] = []
        handle = self.classifier.register_forward_hook(
            lambda _m, inp, _out: seen.append(inp[0].flatten(1))
        )
        try:
            logits = _logits(self.module(x))
        finally:
            handle.remove()
        if logits.shape[1] != self.classifier.out_features or not seen:
            raise ConfigError(
                f"the model's head (the nn.Linear that runs last) has "
                f"{self.classifier.out_features} outputs but the model returns {logits.shape[1]} "
                "logits; the classification head must be an nn.Linear."
            )
        return ModelOutput(logits, seen[-1], [seen[-1][:, :, None, None]])


def _logits(out: object) -> torch.Tensor:
    """The logits ``[B, C]`` of the module's output: the tensor itself, the first element of a
    tuple or list (``(logits, features)``), or a dict's ``"logits"`` (Hugging Face's
    ``ModelOutput`` convention); else one line saying what to return."""
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    elif isinstance(out, Mapping) and isinstance(out.get("logits"), torch.Tensor):
        out = out["logits"]
    if not isinstance(out, torch.Tensor):
        if isinstance(out, Mapping):
            what = f"a {type(out).__name__} with keys {sorted(map(str, out))[:5]}"
        elif isinstance(out, tuple | list):
            first = type(out[0]).__name__ if out else "nothing"
            what = f"a {type(out).__name__} whose first element is {first}"
        else:
            what = f"a {type(out).__name__}"
        raise ConfigError(
            f"the model returns {what}, not logits [B, C]; fishermask takes a tensor of "
            "logits, a tuple or list with the logits first, or a dict with a 'logits' key: "
            "return one of those (e.g. a wrapper whose forward returns model(x)['scores'])."
        )
    if out.dim() != 2:
        raise ConfigError(
            f"the model returns shape {tuple(out.shape)}; fishermask needs logits [B, C]."
        )
    return out


def _head_of(module: nn.Module, linears: list[nn.Module], example: torch.Tensor) -> nn.Linear:
    """The ``nn.Linear`` of ``linears`` that runs last on ``example`` (eval mode, no grad)."""
    called: list[nn.Module] = []
    outputs: list[object] = []  # what each of them returned, in the same order

    def seen(m: nn.Module, _i: object, o: object) -> None:
        called.append(m)
        outputs.append(o)

    handles = [m.register_forward_hook(seen) for m in linears]
    try:
        with torch.no_grad(), eval_mode(module):
            raw = module(example)
            out = _logits(raw)
    finally:
        for h in handles:
            h.remove()
    head_out = getattr(called[-1], "out_features", None) if called else None
    if isinstance(raw, tuple | list) and head_out is not None and out.shape[1] != head_out:
        # the first element made by an nn.Linear that ran before the last: logits first, and
        # another nn.Linear (a projection) after the head, which is then taken for it
        earlier = any(o is out for o in outputs[:-1])
        raise ConfigError(
            f"the model returns a {type(raw).__name__} whose first element, taken as the "
            f"logits, has {out.shape[1]} values per image, but the nn.Linear that runs last "
            f"({head_out} outputs) is taken as the head (its input is the embedding); run the "
            "head last (compute the other outputs before it), or return the logits alone."
            if earlier
            else f"the model returns a {type(raw).__name__} whose first element has "
            f"{out.shape[1]} values per image, but its head (the nn.Linear that runs last) "
            f"{head_out} outputs; fishermask takes the first element as the logits: put them "
            "first."
        )
    if not called:
        raise ConfigError(
            "no nn.Linear of the model runs in its forward pass; fishermask needs the "
            "classification head to be an nn.Linear."
        )
    if (
        len(out)
        and bool((out >= 0).all())
        and torch.allclose(
            out.sum(dim=1), torch.ones(len(out), dtype=out.dtype, device=out.device), atol=1e-4
        )
    ):
        raise ConfigError(
            "the model returns probabilities (every row sums to 1); fishermask needs "
            "logits: drop the final softmax (log-probabilities are fine)."
        )
    head = called[-1]
    assert isinstance(head, nn.Linear)
    return head
