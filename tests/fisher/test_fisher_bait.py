"""bait_embeddings equals masked_grads restricted to the final linear layer's weight."""

from __future__ import annotations

import pytest
import torch

from fishermask.errors import ConfigError
from fishermask.fisher import bait_embeddings, masked_grads
from tests.fisher.fisher_models import make_inputs, make_model

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


@pytest.mark.parametrize("scale", ["sqrt_prob", "none"])
def test_equals_masked_grads_of_last_weight(scale: str) -> None:
    model, x = make_model("tiny_cnn"), make_inputs(6)
    seen = []
    handle = model.fc.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1)
    handle.remove()
    emb = seen[0]  # [N, D]
    mask = {"fc.weight": torch.ones_like(model.fc.weight, dtype=torch.bool)}
    expected = masked_grads(model, x, mask, scale=scale)
    got = bait_embeddings(emb, probs, scale=scale)
    assert got.shape == (6, 4, 4 * 5)
    assert got.is_contiguous()  # the selection reshapes it to [N C, d] without a copy
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_shape_errors() -> None:
    with pytest.raises(ConfigError, match="same N"):
        bait_embeddings(torch.ones(3, 2), torch.ones(4, 2) / 2)
    with pytest.raises(ConfigError, match="scale"):
        bait_embeddings(torch.ones(3, 2), torch.ones(3, 2) / 2, scale="p")


def test_no_samples_give_an_empty_v() -> None:
    """BAIT on an empty labeled set (a cold start, or fishermask.query with labeled=[])
    stopped with torch's "cannot reshape tensor of 0 elements ... -1 ... is ambiguous"."""
    v = bait_embeddings(torch.empty(0, 5), torch.empty(0, 3))
    assert v.shape == (0, 3, 15)
