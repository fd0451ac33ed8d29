"""fishermask.query: the runner's choices on the same model and pool; plain nn.Modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fishermask
from fishermask.errors import ConfigError
from fishermask.strategies import entropy_scores, top_k

# uint8 images without normalizer= warn (test_uint8_images_normalised_by_their_own_statistics_warn)
pytestmark = pytest.mark.filterwarnings("ignore:fishermask.query normalises these uint8")

SPECS = {
    "fishermask": {"sparsity": 0.1},
    "entropy": {},
    "margin": {},
    "kcenter": {},
    "badge": {},
    "bait": {},
}


@pytest.fixture(scope="module")
def runner_run(tmp_path_factory):
    from fishermask.experiments.config import ExperimentConfig
    from fishermask.experiments.runner import Experiment, open_run_dir, run_trial
    from fishermask.experiments.store import TrialStore

    out = tmp_path_factory.mktemp("run")
    cfg = ExperimentConfig.from_dict(
        {
            "data": {"dataset": "digits", "cache_dir": str(out / "cache")},
            "model": {"name": "cnn", "width": 0.25},
            "loop": {"initial": 20, "query_size": 10, "rounds": 1},
            "train": {"max_epochs": 2},
            "strategies": [
                f"{k}:" + ",".join(f"{o}={v}" for o, v in opts.items()) if opts else k
                for k, opts in SPECS.items()
            ],
            "seeds": [0],
        }
    )
    exp = Experiment.prepare(cfg)
    open_run_dir(exp, out)
    round0 = {}  # the runner keeps only the latest checkpoint: catch round 0's as committed
    for spec in cfg.strategies:

        def keep(record, key=spec.key):
            if record["round"] == 0:
                round0[key] = TrialStore(out, key, 0).checkpoint(0)["model"]

        run_trial(exp, spec, 0, out, on_commit=keep)
    return exp, out, round0


@pytest.mark.parametrize("name", list(SPECS))
def test_query_makes_the_runners_choice(runner_run, name):
    from fishermask.experiments.runner import generator
    from fishermask.experiments.store import TrialStore

    exp, out, round0 = runner_run
    records = TrialStore(out, name, 0).records()
    model = exp.new_model(0, 0)
    model.load_state_dict(round0[name])
    model.train()  # query() must switch to eval and back
    res = fishermask.query(
        model,
        exp.data.x_train,
        labeled=records[0]["queried"],
        labels=records[0]["labels"],
        budget=10,
        strategy=name,
        seed=generator(0, 1, "query"),
        batch_size=exp.config.train.eval_batch_size,
        **SPECS[name],
    )
    assert res.indices.tolist() == records[1]["queried"]
    assert model.training
    if name in ("entropy", "margin", "kcenter"):
        assert res.scores is not None and len(res.scores) == 10


def test_plain_module_and_candidates():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(30, 3, 2, 2)
    res = fishermask.query(
        net, x, labeled=[0, 1, 2], labels=[0, 1, 2], budget=4, strategy="entropy"
    )
    with torch.no_grad():
        ent = entropy_scores(net(x).softmax(1))
    ent[[0, 1, 2]] = -1
    assert res.indices.tolist() == top_k(ent, 4).tolist()
    cand = [5, 6, 7, 8, 9]
    res = fishermask.query(
        net, x, labeled=[0], labels=[1], budget=2, candidates=cand, strategy="entropy"
    )
    assert set(res.indices.tolist()) <= set(cand)
    for name in ("kcenter", "badge", "bait"):
        got = fishermask.query(net, x, labeled=[0, 1], labels=[0, 1], budget=3, strategy=name)
        assert len(set(got.indices.tolist()) - {0, 1}) == 3
    got = fishermask.query(
        net, x, labeled=[0, 1], labels=[0, 1], budget=3, strategy="fishermask", k=40
    )
    assert len(set(got.indices.tolist()) - {0, 1}) == 3


def test_bad_arguments_are_config_errors():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x = torch.randn(5, 1, 2, 2)
    with pytest.raises(ConfigError, match="outside"):
        fishermask.query(net, x, labeled=[7], labels=[0], budget=1, strategy="entropy")
    with pytest.raises(ConfigError, match="labels"):
        fishermask.query(net, x, labeled=[0, 1], labels=[0], budget=1, strategy="entropy")
    with pytest.raises(ConfigError, match="larger"):
        fishermask.query(net, x, labeled=[0], labels=[0], budget=5, strategy="entropy")
    with pytest.raises(ConfigError, match="nn.Linear"):
        fishermask.query(nn.Flatten(), x, budget=1, strategy="entropy")
    with pytest.raises(ConfigError, match="Unknown strategy"):
        fishermask.query(net, x, budget=1, strategy="nope")


class _HeadFirst(nn.Module):
    """An MLP whose head is registered before its body (whose last Linear also has C outputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 3)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class _HeadLast(_HeadFirst):
    """The same layers registered in execution order."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.ReLU())
        self.head = nn.Linear(3, 3)


@pytest.mark.parametrize("name", ["kcenter", "badge", "bait"])
def test_head_is_the_linear_that_runs_last(name):
    """The embedding is the head's input even when the head is registered first (it used to
    be the input of the body's last Linear: the raw pixels, silently, as it also has C
    outputs)."""
    torch.manual_seed(0)
    first, last = _HeadFirst(), _HeadLast()
    last.load_state_dict(first.state_dict())
    x = torch.randint(0, 256, (40, 3, 2, 2), dtype=torch.uint8)
    args = dict(labeled=[0, 1, 2], labels=[0, 1, 2], budget=5, strategy=name)
    got = fishermask.query(first, x, **args).indices
    assert torch.equal(got, fishermask.query(last, x, **args).indices)


def test_models_that_return_probabilities_are_refused_tuples_taken():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(6, 1, 2, 2)

    class Probs(nn.Module):
        def forward(self, x):
            return net(x).softmax(1)

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return net(x), x

    probs = Probs()
    probs.net = net
    with pytest.raises(ConfigError, match="returns probabilities.*drop the final softmax"):
        fishermask.query(probs, x, budget=1, strategy="entropy")
    # a tuple with the logits first is taken (Hugging Face style); its other elements unread
    got = fishermask.query(Pair(), x, budget=2, strategy="entropy").indices
    assert torch.equal(got, fishermask.query(net, x, budget=2, strategy="entropy").indices)
    log_probs = nn.Sequential(net, nn.LogSoftmax(dim=1))  # log-probabilities are logits
    assert len(fishermask.query(log_probs, x, budget=2, strategy="entropy").indices) == 2


def test_mc_dropout_strategies_on_a_plain_module():
    """BALD and BatchBALD on a plain nn.Module with SeededDropout layers (they used to stop
    with a bare NotImplementedError); torch's nn.Dropout gets one line saying what to use."""
    from fishermask.models.dropout import SeededDropout, mc_dropout, seeded_dropout
    from fishermask.query_api import ModuleClassifier
    from fishermask.strategies import bald_scores

    torch.manual_seed(0)
    x = torch.randn(40, 1, 4, 4)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), SeededDropout(0.3))
    net.append(nn.Linear(8, 3))
    args = dict(labeled=[0, 1], labels=[0, 1], budget=4, seed=3)
    got = fishermask.query(net, x, strategy="bald", mc_samples=8, **args)
    clf = ModuleClassifier(net, example=x[:4]).eval()
    with torch.no_grad(), mc_dropout(clf, torch.Generator().manual_seed(3)):
        probs = clf.mc_logits(x[2:], 8).softmax(-1)  # [T, U, C]: the unlabeled, as queried
    assert got.indices.tolist() == (top_k(bald_scores(probs), 4) + 2).tolist()
    assert bool((got.scores > 0).all())
    batch = fishermask.query(net, x, strategy="batchbald", mc_samples=8, **args)
    assert len(set(batch.indices.tolist()) - {0, 1}) == 4
    torch_dropout = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.3), nn.Linear(8, 3))
    with pytest.raises(ConfigError, match=r"nn.Dropout; pass .*seeded_dropout\(model\)"):
        fishermask.query(torch_dropout, x, strategy="bald", **args)
    seeded = seeded_dropout(torch_dropout)  # a copy: same weights, SeededDropout layers
    assert isinstance(seeded[2], SeededDropout) and isinstance(torch_dropout[2], nn.Dropout)
    pairs = zip(seeded.parameters(), torch_dropout.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert len(fishermask.query(seeded, x, strategy="bald", **args).indices) == 4
    with pytest.raises(ConfigError, match="nn.Dropout only; this model also has Dropout2d"):
        seeded_dropout(nn.Sequential(nn.Dropout2d(0.2), nn.Flatten(), nn.Linear(16, 3)))


def test_layouts_that_used_to_pass_silently_are_refused():
    """Channel-last images (normalised per row, silently), boolean masks for `labeled` (read
    as indices 0 and 1: 'repeats an index') and fractional labels (truncated, silently)."""
    import numpy as np

    net = nn.Sequential(nn.Flatten(), nn.Linear(192, 3))
    x = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"shape \(20, 8, 8, 3\) look channel-last.*permute"):
        fishermask.query(net, x.permute(0, 2, 3, 1), budget=2, strategy="entropy")
    mask = np.zeros(20, dtype=bool)
    mask[[3, 7]] = True
    for given in (mask, torch.from_numpy(mask)):
        with pytest.raises(ConfigError, match=r"`labeled` is a boolean mask.*flatnonzero"):
            fishermask.query(net, x, labeled=given, labels=[0, 1], budget=2, strategy="entropy")
    with pytest.raises(ConfigError, match=r"`labels` must hold integer class indices"):
        fishermask.query(net, x, labeled=[3, 7], labels=[0.0, 1.7], budget=2, strategy="entropy")
    with pytest.raises(ConfigError, match=r"`candidates` is a boolean mask"):
        fishermask.query(net, x, candidates=mask, budget=2, strategy="entropy")
    same = [
        fishermask.query(net, x, labeled=lab, labels=y, budget=2, strategy="entropy").indices
        for lab, y in (
            ([3, 7], [0, 1]),
            (np.flatnonzero(mask), np.array([0.0, 1.0])),  # whole floats are fine
            (torch.tensor([3, 7], dtype=torch.int32), np.array([0, 1], dtype=np.int8)),
        )
    ]
    assert all(torch.equal(same[0], s) for s in same)
    # booleans as the labels of a 3-class model: refused (tests/test_query_api.py has the line)
    with pytest.raises(ConfigError, match=r"`labels` are booleans, read as classes 0 and 1"):
        fishermask.query(net, x, labeled=[3, 7], labels=np.array([False, True]), budget=2)
    # features [N, D, 1, 1] (the runner's --features layout) are not mistaken for channel-last
    feats = torch.randn(20, 16, 1, 1)
    probe = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    assert len(fishermask.query(probe, feats, budget=2, strategy="entropy").indices) == 2
