"""fishermask.query on a researcher's own model: the model comes back exactly as it was
(every submodule's mode, weights, BatchNorm statistics, .grad, requires_grad)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fishermask

# uint8 images without normalizer= warn (test_uint8_images_normalised_by_their_own_statistics_warn)
pytestmark = pytest.mark.filterwarnings("ignore:fishermask.query normalises these uint8")


class _Net(nn.Module):
    """BatchNorm and dropout, the head not named `classifier`."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(64, 8),
            nn.ReLU(),
        )
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


def _snapshot(net: nn.Module) -> tuple:
    return (
        [m.training for m in net.modules()],
        {k: v.clone() for k, v in net.state_dict().items()},
        [None if p.grad is None else p.grad.clone() for p in net.parameters()],
        [p.requires_grad for p in net.parameters()],
    )


def _same(a: tuple, b: tuple) -> None:
    assert a[0] == b[0], "a submodule's train/eval mode changed"
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1]), "weights or buffers changed"
    for ga, gb in zip(a[2], b[2], strict=True):
        assert (ga is None) == (gb is None) and (ga is None or torch.equal(ga, gb)), ".grad"
    assert a[3] == b[3], "requires_grad changed"


@pytest.mark.parametrize("strategy", ["entropy", "fishermask", "bait", "badge"])
@pytest.mark.parametrize("mode", ["eval", "train", "frozen_bn"])
def test_query_leaves_the_model_as_it_was(strategy, mode):
    """A plain module in eval mode came back in training mode (the wrapper's own flag, True,
    was "restored" onto every submodule), and a frozen BatchNorm (eval inside a model in
    training mode) came back in training mode, so its next forward would update its
    running statistics."""
    torch.manual_seed(0)
    net = _Net()
    x = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8)
    net(torch.randn(8, 1, 4, 4)).sum().backward()  # a .grad the query must not touch
    net.body[0].weight.requires_grad_(False)  # a frozen layer stays frozen
    if mode == "eval":
        net.eval()
    elif mode == "frozen_bn":
        net.train()
        net.body[1].eval()
    before = _snapshot(net)
    res = fishermask.query(net, x, labeled=[0, 1, 2], labels=[0, 1, 2], budget=4, strategy=strategy)
    _same(before, _snapshot(net))
    assert len(set(res.indices.tolist()) - {0, 1, 2}) == 4


@pytest.mark.parametrize("strategy", ["bait", "fishermask", "badge", "kcenter"])
def test_no_labeled_images_yet(strategy):
    """BAIT stopped with a reshape RuntimeError when nothing was labeled yet."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    res = fishermask.query(net, x, budget=5, strategy=strategy)
    assert len(set(res.indices.tolist())) == 5


@pytest.mark.parametrize("strategy", ["entropy", "kcenter", "badge", "bait", "fishermask"])
def test_float64_model(strategy):
    """Inputs went to the model as float32 whatever its dtype: a float64 model stopped with
    torch's "mat1 and mat2 must have the same dtype"."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0, 1, 2], labels=[0, 1, 2], budget=4, strategy=strategy)
    got = fishermask.query(net.double(), x, **args).indices
    assert len(set(got.tolist()) - {0, 1, 2}) == 4
    if strategy in ("entropy", "kcenter"):  # the same choice as the float32 model
        assert torch.equal(got, fishermask.query(net.float(), x, **args).indices)


def test_arguments_a_researcher_passes():
    """A NumPy integer budget is an integer (it was refused as "`budget`=np.int64(3), must
    be an integer"); integer images other than uint8 went to the model unscaled (0..255 as
    if normalised); seed=None and batch_size=0 stopped deep in torch or range()."""
    import numpy as np

    from fishermask.errors import ConfigError

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0, 1], labels=[0, 1], strategy="entropy")
    assert len(fishermask.query(net, x, budget=np.int64(3), **args).indices) == 3
    for bad in (x.long(), x.numpy().astype(np.int32)):
        with pytest.raises(ConfigError, match=r"`images` are torch.int(64|32); pass uint8"):
            fishermask.query(net, bad, budget=2, **args)
    with pytest.raises(ConfigError, match=r"`seed`=None, must be an integer or a torch.Gen"):
        fishermask.query(net, x, budget=2, seed=None, **args)
    with pytest.raises(ConfigError, match=r"`batch_size`=0, must be an integer >= 1"):
        fishermask.query(net, x, budget=2, batch_size=0, **args)


def test_a_one_logit_head_is_refused():
    """A binary classifier with one logit: softmax gave 1 for every image, so entropy, BADGE,
    FisherMask and least confidence tied everywhere and picked the first images by position
    (margin failed deep in torch). Refused, saying how to give the head two outputs."""
    from fishermask.errors import ConfigError

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    for strategy in ("entropy", "margin", "fishermask"):
        with pytest.raises(ConfigError, match=r"has 1 output; .*C >= 2.*softmax of \[0, z\]"):
            fishermask.query(net, x, labeled=[0], labels=[0], budget=4, strategy=strategy)
    # the two-output head the message describes: the same probabilities, and it works
    fc = net[3]
    two = nn.Linear(8, 2)
    with torch.no_grad():
        two.weight.copy_(torch.cat([torch.zeros_like(fc.weight), fc.weight]))
        two.bias.copy_(torch.cat([torch.zeros_like(fc.bias), fc.bias]))
    net2 = nn.Sequential(*net[:3], two)
    with torch.no_grad():
        xs = torch.randn(5, 1, 4, 4)
        assert torch.allclose(net2(xs).softmax(1)[:, 1], torch.sigmoid(net(xs)[:, 0]))
    res = fishermask.query(net2, x, labeled=[0], labels=[0], budget=4, strategy="entropy")
    assert res.scores is not None and bool((res.scores > 0).all())


def test_float_raw_pixels_are_refused():
    """Float images holding 0..255 whole numbers (torch.tensor(uint8_array).float()) were
    taken as already normalised and reached the model unscaled, silently."""
    from fishermask.errors import ConfigError
    from fishermask.training.augment import Normalizer

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0, 1], labels=[0, 1], budget=2, strategy="entropy")
    raw_pixels = r"float\d\d but hold whole numbers in \[\d+, \d+\]: raw pixels"
    for raw in (x.float(), x.double().numpy()):
        with pytest.raises(ConfigError, match=raw_pixels):
            fishermask.query(net, raw, **args)
    as_is = Normalizer((0.0,), (1.0,))  # the escape the message names
    assert len(fishermask.query(net, x.float(), normalizer=as_is, **args).indices) == 2
    # normalised or [0, 1] floats, binary masks, features: fine
    for ok in (
        x.float() / 255,
        (x.float() - 120) / 70,
        (x > 128).float(),
        torch.randn(20, 16, 1, 1),
    ):
        model = net if ok.shape[1] == 1 else nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        assert len(fishermask.query(model, ok, **args).indices) == 2


def test_images_in_a_list_or_a_dataset_are_one_clear_line():
    """A list of image tensors or a torch Dataset (which fishermask.run takes) stopped with
    torch's "only integer tensors of a single element can be converted to an index"."""
    from fishermask.errors import ConfigError

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0], labels=[0], budget=2, strategy="entropy")
    with pytest.raises(ConfigError, match=r"`images` is a list; .*torch.stack"):
        fishermask.query(net, list(x), **args)
    assert len(fishermask.query(net, torch.stack(list(x)), **args).indices) == 2


class _Images(torch.utils.data.Dataset):
    """(image, label) items: PIL images, or tensors as a transform gives them."""

    def __init__(self, x: torch.Tensor, pil: bool, transform=None) -> None:
        self.x, self.pil, self.transform = x, pil, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.x[i, 0].numpy()) if self.pil else self.x[i]
        return (self.transform(img) if self.transform else img), 0


@pytest.mark.parametrize("strategy", ["entropy", "kcenter", "fishermask"])
def test_images_as_a_torch_dataset(strategy):
    """A torch Dataset of (image, label) items, which fishermask.run takes, was refused, and
    the stack it suggested failed on PIL images. Its images are stacked: PIL images as uint8
    (normalised here, as a uint8 tensor is), tensors as they are (a transform's output, as
    the model takes it)."""
    from fishermask.errors import ConfigError

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0, 1], labels=[0, 1], budget=4, strategy=strategy)
    want = fishermask.query(net, x, **args).indices
    for ds in (_Images(x, pil=True), _Images(x, pil=False), torch.utils.data.TensorDataset(x)):
        assert torch.equal(fishermask.query(net, ds, **args).indices, want)
    normalised = (x.float() - 100) / 50
    got = fishermask.query(net, _Images(x, True, lambda im: (_t(im) - 100) / 50), **args)
    assert torch.equal(got.indices, fishermask.query(net, normalised, **args).indices)
    ragged = [(x[i] if i != 3 else x[i, :, :2, :2], 0) for i in range(len(x))]  # a list
    ragged_ds = torch.utils.data.Subset(ragged, range(len(ragged)))  # as a Dataset
    with pytest.raises(ConfigError, match=r"`images` Dataset item 3 has shape \(1, 2, 2\)"):
        fishermask.query(net, ragged_ds, **args)


def _t(image) -> torch.Tensor:
    import numpy as np

    return torch.tensor(np.array(image), dtype=torch.float32)[None]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_model_with_bait(dtype):
    """BAIT on a bfloat16 or float16 model stopped with "`factors` do not reproduce
    V_unlabeled": its V, rounded to the model's dtype, was compared with the exact product of
    its factors to 1e-4, finer than that dtype holds."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3)).to(dtype)
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    got = fishermask.query(net, x, labeled=[0, 1, 2], labels=[0, 1, 2], budget=4, strategy="bait")
    assert len(set(got.indices.tolist()) - {0, 1, 2}) == 4


def test_strategy_as_an_instance_or_a_spec_string():
    """A Strategy instance (your own, or strategies.get('margin')) stopped with
    "TypeError: 'MarginStrategy' object is not iterable"; 'bait:lam=0.1', the spelling of
    the runner and the command line, was an unknown strategy."""
    from fishermask import strategies
    from fishermask.errors import ConfigError

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0, 1, 2], labels=[0, 1, 2], budget=4)
    by_name = fishermask.query(net, x, strategy="fishermask", sparsity=0.5, lam=0.1, **args)
    for same in (
        fishermask.query(
            net, x, strategy=strategies.get("fishermask", sparsity=0.5, lam=0.1), **args
        ),
        fishermask.query(net, x, strategy="fishermask:sparsity=0.5,lam=0.1", **args),
        fishermask.query(net, x, strategy="fishermask:sparsity=0.5", lam=0.1, **args),
    ):
        assert torch.equal(same.indices, by_name.indices)
    with pytest.raises(ConfigError, match=r"options .*lam.* go to the Strategy instance"):
        fishermask.query(net, x, strategy=strategies.get("bait"), lam=0.1, **args)
    with pytest.raises(ConfigError, match=r"`lam` is given twice"):
        fishermask.query(net, x, strategy="bait:lam=0.1", lam=0.2, **args)
    with pytest.raises(ConfigError, match=r"`strategy` is the class MarginStrategy; pass an "):
        fishermask.query(net, x, strategy=type(strategies.get("margin")), **args)
    with pytest.raises(ConfigError, match=r"`strategy`=3: give a registered strategy's name"):
        fishermask.query(net, x, strategy=3, **args)
    with pytest.raises(ConfigError, match=r"Unknown strategy 'entropie'.*did you mean 'entropy'"):
        fishermask.query(net, x, strategy="entropie:beta=1", **args)


def test_the_api_shows_in_dir_and_help():
    """dir(fishermask), which a notebook's tab completion lists, held only `Any`: query, run
    and QueryResult, imported on first use, were not listed."""
    import pydoc

    names = dir(fishermask)
    assert {"query", "run", "QueryResult", "__version__"} <= set(names)
    assert "Any" not in names
    assert "Choose ``budget`` images" in pydoc.render_doc(fishermask.query)


class _TokenHead(nn.Module):
    """A head applied to every token ([B, T, D] -> [B, T, C]), then the mean over tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.embed(x[:, 0]))).mean(dim=1)  # rows as tokens


@pytest.mark.parametrize("strategy", ["badge", "bait"])
def test_a_head_that_sees_more_than_one_vector_per_image_is_refused(strategy):
    """A head run on [B, T, D] tokens gave an "embedding" of T * D values per image (the
    flattened tokens): BAIT and BADGE built their last-layer gradients (onehot - p) x e from
    it, which are not the head's gradients (those use the mean of the tokens), silently."""
    from fishermask.errors import ConfigError

    torch.manual_seed(0)
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0, 1], labels=[0, 1], budget=3)
    with pytest.raises(ConfigError, match=r"head .* gets 24 values per image for its 6 inputs"):
        fishermask.query(_TokenHead(), x, strategy=strategy, **args)
    # the others still run: the flattened tokens are an embedding k-center may use
    for other in ("entropy", "kcenter", "fishermask"):
        assert len(fishermask.query(_TokenHead(), x, strategy=other, **args).indices) == 3


def test_labeled_as_a_set_and_one_hot_labels_are_one_clear_line():
    """A set of labeled indices (whose order `labels` cannot follow) was refused as "got
    object values"; one-hot labels [n, C] as "`labels` has 20 entries for 2 `labeled`
    indices"."""
    import numpy as np

    from fishermask.errors import ConfigError

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"`labeled` is a set.*labeled = sorted\(labeled\)"):
        fishermask.query(net, x, labeled={1, 2}, labels=[0, 1], budget=2)
    with pytest.raises(ConfigError, match=r"`labels` of shape \(2, 3\).*labels.argmax\(1\)"):
        fishermask.query(net, x, labeled=[1, 2], labels=np.eye(3)[[0, 1]], budget=2)
    # a column of indices (torch.nonzero(mask)) is still fine
    picked = fishermask.query(net, x, labeled=torch.tensor([[1], [2]]), labels=[0, 1], budget=2)
    assert not {1, 2} & set(picked.indices.tolist())


def test_lpl_without_its_module_names_the_aux_argument():
    """lpl without its loss-prediction module said to put it "in `ctx.aux`", which a caller of
    fishermask.query never sees; the argument is aux=."""
    from fishermask.errors import ConfigError

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"fishermask.query\(\.\.\., aux=module\)"):
        fishermask.query(net, x, labeled=[0], labels=[0], budget=2, strategy="lpl")


def _compiled(net: nn.Module) -> nn.Module:
    """``torch.compile(net)`` (inductor), or a skip where this machine cannot compile."""
    compiled = torch.compile(net)
    try:
        compiled(torch.zeros(2, 1, 4, 4))
    except Exception as e:  # no C compiler, an unsupported platform
        pytest.skip(f"torch.compile does not work here: {type(e).__name__}")
    return compiled


def test_a_compiled_model_gives_the_choice_of_the_model_itself():
    """A torch.compile'd model's compiled graph hid its layers' outputs from the per-sample
    gradients, which came out 0: FisherMask then picked the first unlabeled images by
    position and LPLgrad scored every image 0, silently. fishermask.query queries the
    module inside (the same weights); the fisher functions refuse it, saying so."""
    from fishermask.errors import ConfigError
    from fishermask.fisher import entropy_gradnorm_scores

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    compiled = _compiled(net)
    args = dict(labeled=[0, 1], labels=[0, 1], budget=4)
    for strategy in ("fishermask", "lplgrad"):
        want = fishermask.query(net, x, strategy=strategy, **args)
        got = fishermask.query(compiled, x, strategy=strategy, **args)
        assert torch.equal(got.indices, want.indices), strategy
    with pytest.raises(ConfigError, match=r"torch.compile.*pass the module before compiling"):
        entropy_gradnorm_scores(compiled, torch.randn(5, 1, 4, 4))


class _Outputs(nn.Module):
    """The same network returning its logits in another container."""

    def __init__(self, net: nn.Module, kind: str) -> None:
        super().__init__()
        self.net, self.kind = net, kind

    def forward(self, x: torch.Tensor):
        z = self.net(x)
        return {
            "tuple": lambda: (z, x.flatten(1)),
            "list": lambda: [z],
            "dict": lambda: {"hidden": x.flatten(1), "logits": z},
            "no_logits": lambda: {"scores": z},
            "features_first": lambda: ("features", z),
            "logits_second": lambda: (x.flatten(1), z),
            "empty": lambda: (),
        }[self.kind]()


@pytest.mark.parametrize("strategy", ["entropy", "fishermask", "badge"])
def test_models_returning_a_tuple_or_a_dict_of_logits(strategy):
    """A model returning (logits, ...) or {"logits": ...} (a Hugging Face ModelOutput) was
    refused; it gets the choice of the model returning the logits alone."""
    from fishermask.errors import ConfigError

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0, 1], labels=[0, 1], budget=4, strategy=strategy)
    want = fishermask.query(net, x, **args)
    for kind in ("tuple", "list", "dict"):
        got = fishermask.query(_Outputs(net, kind), x, **args)
        assert torch.equal(got.indices, want.indices), kind
    refused = {
        "no_logits": r"returns a dict with keys \['scores'\], not logits",
        "features_first": "returns a tuple whose first element is str, not logits",
        "empty": "returns a tuple whose first element is nothing, not logits",
    }
    with pytest.raises(ConfigError, match=r"first element has 16 values per image, but its "):
        fishermask.query(_Outputs(net, "logits_second"), x, **args)
    for kind, message in refused.items():
        with pytest.raises(ConfigError, match=message + r".*a dict with a 'logits' key"):
            fishermask.query(_Outputs(net, kind), x, **args)


def test_a_tuple_whose_logits_are_first_but_a_linear_runs_after_the_head_is_told_so():
    """A model returning (logits, projection), the projection an nn.Linear run after the
    head, was told to put the logits first, which they were: the nn.Linear that runs last is
    taken as the head, so the message names that (one with the logits second is still told
    to put them first: test_models_returning_a_tuple_or_a_dict_of_logits)."""
    from fishermask.errors import ConfigError

    class Projected(nn.Module):
        def __init__(self, logits_first: bool) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU())
            self.fc, self.proj, self.logits_first = nn.Linear(6, 3), nn.Linear(6, 5), logits_first

        def forward(self, x):
            e = self.body(x)
            logits, proj = self.fc(e), self.proj(e)
            return (logits, proj) if self.logits_first else (proj, logits)

    x = torch.rand(30, 1, 4, 4)
    args = dict(labeled=[0, 1], labels=[0, 1], budget=4, strategy="entropy")
    with pytest.raises(ConfigError) as err:
        fishermask.query(Projected(True), x, **args)
    said = str(err.value)
    assert "put them first" not in said, said
    assert "the nn.Linear that runs last (5 outputs) is taken as the head" in said, said
    assert "run the head last" in said, said


def test_budget_zero_is_an_empty_choice():
    """budget=0 (a loop's last round) was refused ("must be an integer >= 1"); it is an
    empty choice of the same type, after the same checks of the other arguments."""
    from fishermask.errors import ConfigError
    from fishermask.query_api import QueryResult

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    args = dict(labeled=[0, 1], labels=[0, 1], strategy="entropy")
    got = fishermask.query(net, x, budget=0, **args)
    assert isinstance(got, QueryResult) and got.scores is None
    assert got.indices.dtype == torch.int64 and got.indices.shape == (0,)
    with pytest.raises(ConfigError, match=r"`budget`=-1, must be an integer >= 0"):
        fishermask.query(net, x, budget=-1, **args)
    with pytest.raises(ConfigError, match=r"`labels` must be class indices in \[0, 3\)"):
        fishermask.query(net, x, budget=0, labeled=[0], labels=[5], strategy="entropy")


def test_labels_as_strings_are_refused():
    """labels=["3", "1"] were read as the indices 3 and 1, silently: a class name that looks
    like a number is no index (folder classes "0".."10" sorted put "10" at index 2)."""
    import numpy as np

    from fishermask.errors import ConfigError

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8)
    for labels in (["2", "1"], np.array(["2", "1"]), [2, "1"], ["cat", "dog"]):
        with pytest.raises(ConfigError, match=r"`labels` holds strings \('(2|1|cat)'\).*int\(c\)"):
            fishermask.query(net, x, labeled=[0, 1], labels=labels, budget=2)
    with pytest.raises(ConfigError, match=r"`labeled` holds strings \('0'\); pass integer"):
        fishermask.query(net, x, labeled=["0", "1"], labels=[0, 1], budget=2)
    # integers in an object array (a pandas column) are still integers
    got = fishermask.query(net, x, labeled=[0, 1], labels=np.array([2, 1], dtype=object), budget=2)
    assert len(got.indices) == 2


def test_uint8_images_normalised_by_their_own_statistics_warn():
    """uint8 images were normalised with their own per-channel statistics without a word; a
    model trained on other statistics was queried on inputs it never saw. It warns, with the
    values and normalizer=; an explicit normalizer (fit or given) does not warn."""
    import warnings

    from fishermask.training.augment import Normalizer

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.full((20, 1, 4, 4), 51, dtype=torch.uint8)
    x[::2] = 153  # mean 0.4, std ~0.2 in [0, 1] units
    args = dict(labeled=[0, 1], labels=[0, 1], budget=2, strategy="entropy")
    with pytest.warns(UserWarning, match=r"own per-channel statistics \(mean \(0\.400\), std"):
        want = fishermask.query(net, x, **args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fishermask.query(net, x, normalizer=Normalizer.fit(x), **args)
        assert torch.equal(got.indices, want.indices)
        fishermask.query(net, x, normalizer=Normalizer((0.5,), (0.25,)), **args)
        fishermask.query(net, x.float() / 255, **args)  # float: taken as it is


def test_the_readme_loop_draws_new_subsets_every_round(monkeypatch):
    """The loop of your own in docs/api.md passes the round as seed=: with one seed every round
    drew the same random subsets (FisherMask's Fisher sample, random's picks)."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    code = next(b for b in blocks if "for r in range(" in b and "fishermask.query(" in b)
    torch.manual_seed(0)
    seeds, picks = [], []
    real = fishermask.query

    def query(*a, **kw):
        seeds.append(kw["seed"])
        res = real(*a, **kw, strategy="random")
        picks.append(res.indices.tolist())
        return res

    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    space = {
        "model": net,
        "images": torch.randint(0, 256, (200, 3, 4, 4), dtype=torch.uint8),
        "rounds": 3,
        "budget_left": 100,
        "train": lambda *a: None,
        "ask_annotator": lambda i: i % 3,
    }
    monkeypatch.setattr(fishermask, "query", query)
    exec(compile(code, "README.md", "exec"), space)
    assert seeds == [1, 2, 3]
    assert len(space["labeled"]) == 3 + 100 and len(set(space["labeled"])) == 103
    assert picks[0] != picks[1]


def test_bad_indices_labels_model_and_images_are_named():
    """Out-of-range labels and indices said only the allowed range, not which value was
    wrong; a function for `model` stopped with "AttributeError: 'function' object has no
    attribute 'parameters'"; NaN images were blamed on the model's predictions."""
    from fishermask.errors import ConfigError

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(20, 1, 4, 4)
    args = dict(budget=2, strategy="entropy")
    with pytest.raises(
        ConfigError,
        match=r"`labels` must be class indices in \[0, 3\) \(the model's 3 outputs\); "
        r"it holds 7 \(for labeled image 4\)",
    ):
        fishermask.query(net, x, labeled=[0, 1, 4], labels=[0, 2, 7], **args)
    with pytest.raises(ConfigError, match=r"it holds -1 \(for labeled image 1\)"):
        fishermask.query(net, x, labeled=[0, 1], labels=[0, -1], **args)
    with pytest.raises(ConfigError, match=r"outside \[0, 20\) of `images`: 20, 31"):
        fishermask.query(net, x, labeled=[0, 20, 31], labels=[0, 1, 1], **args)
    with pytest.raises(ConfigError, match=r"`labeled` repeats an index: 3"):
        fishermask.query(net, x, labeled=[3, 5, 3], labels=[0, 1, 1], **args)
    with pytest.raises(ConfigError, match=r"`model` is a function; .* nn.Module"):
        fishermask.query(lambda t: net(t), x, labeled=[0], labels=[0], **args)
    bad = x.clone()
    bad[6, 0, 1, 1] = float("nan")
    with pytest.raises(ConfigError, match=r"`images` hold 1 NaN or infinite value \(image 6\)"):
        fishermask.query(net, bad, labeled=[0], labels=[0], **args)


def test_an_error_of_the_models_own_forward_says_what_it_was_given():
    """A grey image batch given to an RGB model stopped with torch's "expected input[16, 1,
    16, 16] to have 3 channels", with nothing saying it came from the model on `images`."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    x = torch.rand(20, 1, 16, 16)
    with pytest.raises(RuntimeError) as err:
        fishermask.query(net, x, labeled=[0], labels=[0], budget=2, strategy="entropy")
    notes = getattr(err.value, "__notes__", [])
    assert notes == [
        "fishermask.query: raised by the model on images[:16], shape [16, 1, 16, 16] "
        "(torch.float32): give `images` as the model takes them (channels, size)."
    ]


class _Raises(nn.Module):
    """A model whose forward raises ``exc`` (after a head the query can find)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.head, self.exc = nn.Linear(16, 3), exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (16x16 and 8x3)"),
        RuntimeError("expected scalar type Float but found Double"),
        ValueError("expected 4D input (got 3D input)"),
        TypeError("conv2d() received an invalid combination of arguments"),
    ],
)
def test_the_models_input_errors_get_the_note(exc: BaseException) -> None:
    with pytest.raises(type(exc)) as err:
        fishermask.query(_Raises(exc), torch.rand(20, 1, 4, 4), labeled=[0], labels=[0], budget=2)
    assert err.value is exc and len(exc.__notes__) == 1
    assert exc.__notes__[0].startswith("fishermask.query: raised by the model on images[:16]")


@pytest.mark.parametrize(
    "exc",
    [  # the images are not the cause: a note to give them otherwise would mislead
        MemoryError(),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
            "you tried to allocate 4294967296 bytes."
        ),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"),
        KeyboardInterrupt(),
        NotImplementedError('Module [_Raises] is missing the required "forward" function'),
    ],
)
def test_out_of_memory_and_interrupts_in_the_model_get_no_note(exc: BaseException) -> None:
    with pytest.raises(type(exc)) as err:
        fishermask.query(_Raises(exc), torch.rand(20, 1, 4, 4), labeled=[0], labels=[0], budget=2)
    assert err.value is exc and not getattr(exc, "__notes__", [])


def test_a_budget_over_what_may_be_chosen_says_why_so_few():
    """The refusal "`budget`=5 is larger than the 0 images that may be chosen" did not say if
    the images were empty, all labeled, or left out by `candidates`."""
    from fishermask.errors import ConfigError

    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(6, 1, 4, 4)
    with pytest.raises(ConfigError) as e:
        fishermask.query(net, x, labeled=[0, 1], labels=[0, 1], budget=5, strategy="entropy")
    assert str(e.value) == (
        "`budget`=5 is larger than the 4 images that may be chosen (6 images, 2 of them "
        "labeled); ask for at most 4."
    )
    with pytest.raises(ConfigError) as e:
        fishermask.query(
            net, x, labeled=[0], labels=[0], budget=2, candidates=[0, 3], strategy="entropy"
        )
    assert str(e.value) == (
        "`budget`=2 is larger than the 1 image that may be chosen (6 images, 1 of them "
        "labeled, 2 candidates, 1 of them labeled); ask for at most 1."
    )
    with pytest.raises(ConfigError, match=r"than the 0 images that may be chosen \(0 images\)"):
        fishermask.query(net, x[:0], budget=1, strategy="entropy")
    # none left: the refusal ended there, without what to do
    with pytest.raises(ConfigError) as e:
        fishermask.query(net, x[:2], labeled=[0, 1], labels=[0, 1], budget=1, strategy="entropy")
    assert str(e.value) == (
        "`budget`=1 is larger than the 0 images that may be chosen (2 images, 2 of them "
        "labeled); none is left: add unlabeled images (or candidates), or stop querying."
    )


def test_a_grid_of_indices_boolean_labels_and_a_normalizer_of_other_channels_are_refused():
    """A 2-D `labeled` was flattened without a word (pairs read as indices); boolean labels of
    a 3-class model were read as classes 0/1; a 1-channel Normalizer broadcast over RGB images
    and a 3-channel one over grey images (making them RGB), both silently."""
    import numpy as np

    from fishermask.errors import ConfigError
    from fishermask.training.augment import Normalizer

    rgb = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    x = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    norm = Normalizer((0.5,) * 3, (0.25,) * 3)
    args = dict(budget=2, strategy="entropy", normalizer=norm)
    with pytest.raises(
        ConfigError,
        match=r"^`labeled` of shape \(2, 2\): pass a 1-D list of indices into `images` "
        r"\(shape \[k\]; a column \[k, 1\] is read as one\)\.$",
    ):
        fishermask.query(rgb, x, labeled=torch.tensor([[1, 2], [3, 4]]), labels=[0] * 4, **args)
    with pytest.raises(ConfigError, match=r"^`candidates` of shape \(1, 3\): pass a 1-D list"):
        fishermask.query(rgb, x, labeled=[1], labels=[0], candidates=[[5, 6, 7]], **args)
    with pytest.raises(
        ConfigError,
        match=r"^`labels` are booleans, read as classes 0 and 1, but the model has 3 outputs; "
        r"pass each labeled image's class index, integers 0..2 ",
    ):
        fishermask.query(rgb, x, labeled=[1, 2], labels=np.array([True, False]), **args)
    two = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))  # a two-class model: True is class 1
    for labels in ([True, False], torch.tensor([True, False])):
        got = fishermask.query(two, x, labeled=[1, 2], labels=labels, **args)
        ref = fishermask.query(two, x, labeled=[1, 2], labels=[1, 0], **args)
        assert torch.equal(got.indices, ref.indices)

    with pytest.raises(
        ConfigError,
        match=r"^`normalizer` has 1 mean and 1 std entry for images of 3 channels "
        r"\(\[20, 3, 4, 4\]\); give one per channel, Normalizer\(\(0\.5,\) \* 3, \(0\.25,\) \* 3\) "
        r"if the same statistics are meant for every channel",
    ):
        one = {**args, "normalizer": Normalizer((0.5,), (0.25,))}
        fishermask.query(rgb, x, labeled=[1], labels=[0], **one)
    grey = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(
        ConfigError,
        match=r"^`normalizer` has 3 mean and 3 std entries for images of 1 channel "
        r"\(\[20, 1, 4, 4\]\); give 1 of each",
    ):
        fishermask.query(grey, x[:, :1], labeled=[1], labels=[0], **args)

    class Normalize:  # torchvision.transforms.Normalize's attributes
        mean, std = [0.5] * 3, [0.25] * 3

    with pytest.raises(ConfigError, match=r"`normalizer` is a Normalize; .*Normalizer\(tuple"):
        fishermask.query(rgb, x, labeled=[1], labels=[0], **{**args, "normalizer": Normalize()})
