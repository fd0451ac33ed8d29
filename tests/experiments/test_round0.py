"""One round-0 model per seed, shared by the trials that train no auxiliary module."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from fishermask.errors import ConfigError, DataError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.lock import TRIAL_LOCK_NAME
from fishermask.experiments.runner import Experiment, run_experiment
from fishermask.experiments.store import SharedRound0, TrialStore
from fishermask.experiments.trial import run_trial

BASE = {
    "data": {"dataset": "digits"},
    "model": {"name": "cnn", "width": 0.25},
    "train": {"max_epochs": 2, "batch_size": 32},
    "loop": {"initial": 20, "query_size": 10, "rounds": 2},
    "seeds": [0],
    "device": "cpu",
}


def _run(out: Path, strategies: list, seeds: list[int] | None = None, **kw) -> None:
    raw = {**BASE, "strategies": strategies, "seeds": seeds or [0]}
    run_experiment(Experiment.prepare(ExperimentConfig.from_dict(raw), **kw), out)


def _rows(out: Path, strategy: str) -> list[list[str]]:
    """results.csv rows of one strategy without the timing columns."""
    rows = list(csv.DictReader(open(out / "results.csv")))
    keep = ("seed", "round", "n_labeled", "accuracy", "balanced_accuracy", "train_epochs")
    return [[r[k] for k in keep] for r in rows if r["strategy"] == strategy]


def _round(out: Path, strategy: str, seed: int, r: int) -> dict:
    return json.loads((out / f"trials/{strategy}__seed{seed}/round_{r:03d}.json").read_text())


def test_plain_trials_share_round0_with_the_same_results_as_training_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    _run(shared, ["random", "entropy", "kcenter"], seeds=[0, 1])
    assert sorted(p.name for p in (shared / "round0").iterdir()) == ["seed0.pt", "seed1.pt"]
    for seed in (0, 1):
        assert "round0_from" not in _round(shared, "random", seed, 0)  # trained it
        for s in ("entropy", "kcenter"):
            rec = _round(shared, s, seed, 0)
            assert rec["round0_from"] == "random" and rec["strategy"] == s
    # the same trials, each alone in its own run (nothing shared): bit-identical results
    for s in ("entropy", "kcenter"):
        _run(tmp_path / s, [s], seeds=[0, 1])
        assert "round0_from" not in _round(tmp_path / s, s, 0, 0)
        assert _rows(tmp_path / s, s) == _rows(shared, s)
        q = lambda out: (out / "queries.jsonl").read_text().replace('"', "")  # noqa: E731
        lines = [ln for ln in q(shared).splitlines() if f"strategy: {s}," in ln]
        assert q(tmp_path / s).splitlines() == lines


def test_a_trial_starts_from_the_shared_model_not_its_own(tmp_path: Path) -> None:
    _run(tmp_path / "a", ["random"])
    src = tmp_path / "a/round0/seed0.pt"
    _run(tmp_path / "alone", ["entropy"])
    # untouched shared model: the trial's results are those of training round 0 itself
    (tmp_path / "same/round0").mkdir(parents=True)
    shutil.copy(src, tmp_path / "same/round0/seed0.pt")
    _run(tmp_path / "same", ["entropy"])
    assert _rows(tmp_path / "same", "entropy") == _rows(tmp_path / "alone", "entropy")
    # a different shared model (as if trained on another machine): the trial follows it
    got = torch.load(src)
    rec = json.loads(got["record"])
    rec["accuracy"] = 0.123
    state = {  # weights changed; BatchNorm's running statistics kept (a negative running
        # variance gave NaN predictions, which entropy then ranked by position)
        k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() and "running" not in k else v
        for k, v in got["state"]["model"].items()
    }
    (tmp_path / "other/round0").mkdir(parents=True)
    torch.save(
        {"record": json.dumps(rec), "state": {**got["state"], "model": state}},
        tmp_path / "other/round0/seed0.pt",
    )
    _run(tmp_path / "other", ["entropy"])
    r0 = _round(tmp_path / "other", "entropy", 0, 0)
    assert r0["accuracy"] == 0.123 and r0["round0_from"] == "random"
    assert r0["queried"] == _round(tmp_path / "alone", "entropy", 0, 0)["queried"]
    q1 = _round(tmp_path / "other", "entropy", 0, 1)["queried"]
    assert q1 != _round(tmp_path / "alone", "entropy", 0, 1)["queried"]


def test_strategies_with_an_auxiliary_module_neither_read_nor_write_it(tmp_path: Path) -> None:
    _run(tmp_path / "lpl", ["lpl"])
    assert not (tmp_path / "lpl/round0").exists()
    assert "round0_from" not in _round(tmp_path / "lpl", "lpl", 0, 0)
    _run(tmp_path / "a", ["random"])
    shutil.copytree(tmp_path / "a/round0", tmp_path / "both/round0")
    _run(tmp_path / "both", ["lpl"])
    assert _rows(tmp_path / "both", "lpl") == _rows(tmp_path / "lpl", "lpl")


def test_a_shared_model_from_another_run_or_environment_is_refused(tmp_path: Path) -> None:
    _run(tmp_path / "a", ["random"])
    src = tmp_path / "a/round0/seed0.pt"
    got = torch.load(src)

    def place(out: Path, edit) -> None:
        rec = json.loads(got["record"])
        edit(rec)
        (out / "round0").mkdir(parents=True)
        torch.save({"record": json.dumps(rec), "state": got["state"]}, out / "round0/seed0.pt")

    place(tmp_path / "b", lambda r: r.update(queried=r["queried"][::-1]))
    with pytest.raises(DataError, match=r"not seed 0's round 0 of this run .*Delete it"):
        _run(tmp_path / "b", ["entropy"])
    assert not (tmp_path / "b/trials/entropy__seed0/round_000.json").exists()

    place(tmp_path / "c", lambda r: r["environment"].update(torch="1.0.0"))
    with pytest.raises(ConfigError, match=r"another environment \(torch '1.0.0' -> .*--allow-env"):
        _run(tmp_path / "c", ["entropy"])
    _run(tmp_path / "c", ["entropy"], allow_env_change=True)
    assert _round(tmp_path / "c", "entropy", 0, 0)["environment"]["torch"] == "1.0.0"
    assert _round(tmp_path / "c", "entropy", 0, 1)["environment"]["torch"] != "1.0.0"

    (tmp_path / "d/round0").mkdir(parents=True)
    (tmp_path / "d/round0/seed0.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"seed0.pt cannot be read .*delete it and rerun"):
        _run(tmp_path / "d", ["entropy"])


def test_written_once_and_backfilled_by_a_trial_that_committed_round_0_before(
    tmp_path: Path,
) -> None:
    store = SharedRound0(tmp_path, 3)
    assert store.load() is None
    state = {"model": {"w": torch.ones(2)}, "aux": None}
    rec = {"strategy": "random", "seed": 3, "round": 0, "queried": [1], "labels": [0]}
    assert store.save({**rec, "v": 1}, state)
    assert not store.save({**rec, "v": 2}, {"model": {"w": torch.zeros(2)}, "aux": None})
    got = store.load()
    assert got is not None and got["record"]["v"] == 1 and got["state"]["model"]["w"][0] == 1
    assert [p.name for p in (tmp_path / "round0").iterdir()] == ["seed3.pt"]  # no temporaries

    out = tmp_path / "run"
    _run(out, ["random"])
    trial = out / "trials/random__seed0"
    # as if round 0 had been committed by a version that did not share it, then killed
    (out / "round0/seed0.pt").unlink()
    for r in (1, 2):
        (trial / f"round_{r:03d}.json").unlink()
    (trial / "model_002.pt").rename(trial / "model_000.pt")
    _run(out, ["random"])
    got = SharedRound0(out, 0).load()
    assert got is not None and got["record"] == _round(out, "random", 0, 0)


# -- audit: warm start, races, crashes, foreign files ------------------------------------

WARM = {
    **BASE,
    "model": {"name": "cnn", "width": 0.25, "dropout": 0.3},  # bald/batchbald need dropout
    "train": {"optimizer": "sgd", "lr": 0.05, "stop": "epochs", "epochs": 1, "reinit": False},
    "loop": {"initial": 20, "query_size": 10, "rounds": 1},
}
# every strategy without an auxiliary module whose query uses more than the probabilities:
# embeddings, features, MC dropout, gradients, Fisher information
PLAIN = ["bald", "batchbald", "typiclust", "probcover", "kcenter", "badge", "bait", "fishermask"]
TIMINGS = ("query_seconds", "train_seconds")


def _warm(out: Path, strategies: list, **kw) -> None:
    run_experiment(
        Experiment.prepare(ExperimentConfig.from_dict({**WARM, **kw, "strategies": strategies})),
        out,
    )


def _comparable(out: Path, strategy: str, r: int) -> dict:
    """A round record without what may differ between two runs of it: timings, the trial that
    trained round 0, the strategy's own timings (stage_seconds)."""
    rec = _round(out, strategy, 0, r)
    for k in (*TIMINGS, "round0_from"):
        rec.pop(k, None)
    rec["info"].pop("stage_seconds", None)
    return rec


def test_warm_start_adopted_round0_gives_bit_identical_later_rounds(tmp_path: Path) -> None:
    """``reinit: false`` keeps the round-0 model: an adopted one (loaded from round0/) must
    continue exactly as the one a trial trained itself (in memory), for every strategy whose
    query reads embeddings, features, dropout masks or gradients."""
    _warm(tmp_path / "shared", ["random", *PLAIN])
    for s in PLAIN:
        assert _round(tmp_path / "shared", s, 0, 0)["round0_from"] == "random", s
        _warm(tmp_path / s, [s])  # alone: trains its own round 0
        assert "round0_from" not in _round(tmp_path / s, s, 0, 0)
        for r in (0, 1):
            assert _comparable(tmp_path / "shared", s, r) == _comparable(tmp_path / s, s, r), s
        a = TrialStore(tmp_path / "shared", s, 0).checkpoint(1)["model"]
        b = TrialStore(tmp_path / s, s, 0).checkpoint(1)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), s


def _edited_copy(src: Path, dest: Path, edit_record=None, edit_file=None) -> None:
    """``dest`` = the shared round-0 file ``src`` with its record (and the file's dict) edited."""
    got = torch.load(src)
    rec = json.loads(got["record"])
    if edit_record is not None:
        edit_record(rec)
    got["record"] = json.dumps(rec)
    if edit_file is not None:
        edit_file(got)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(got, dest)


def test_a_trial_that_loses_the_race_for_round0_starts_from_the_winners_model(
    tmp_path: Path,
) -> None:
    """Two trials of a seed running at once (--workers, Ray tasks on several machines) both
    find no round0/ file and both train round 0; the one whose file lands second must start
    from the first one's model, else a run spread over machines is not paired after all."""
    _run(tmp_path / "a", ["random"])
    other = tmp_path / "other.pt"  # the winner's model, recognisable (as if from another CPU)

    def moved(got: dict) -> None:
        model = got["state"]["model"]
        g = torch.Generator().manual_seed(0)
        for k, v in model.items():
            if v.is_floating_point() and "running" not in k:  # not BatchNorm's statistics:
                model[k] = v + 0.5 * torch.randn(v.shape, generator=g)  # (NaN predictions)

    _edited_copy(tmp_path / "a/round0/seed0.pt", other, lambda r: r.update(accuracy=0.123), moved)
    out = tmp_path / "race"
    raw = {**BASE, "strategies": ["entropy"], "seeds": [0]}
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    run_experiment(exp, out)  # the run directory; then entropy's trial again, from scratch
    own = _round(out, "entropy", 0, 1)["queried"]  # round 1 after its own round 0
    shutil.rmtree(out / "trials")
    (out / "round0/seed0.pt").unlink()

    def stop() -> bool:  # polled once the trial found no shared model: the winner lands now
        if not (out / "round0/seed0.pt").exists():
            shutil.copy(other, out / "round0/seed0.pt")
        return False

    records = run_trial(exp, exp.config.strategies[0], 0, out, stop=stop)
    assert records[0]["accuracy"] == 0.123 and records[0]["round0_from"] == "random"
    assert _round(out, "entropy", 0, 0) == records[0]
    assert records[1]["queried"] != own  # queried with the winner's model, not its own
    assert (out / "round0/seed0.pt").read_bytes() == other.read_bytes()  # not replaced


def test_two_workers_racing_for_round0_match_the_serial_run(tmp_path: Path) -> None:
    raw = {**WARM, "model": BASE["model"], "strategies": ["random", "entropy"]}
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    run_experiment(exp, tmp_path / "serial")
    run_experiment(exp, tmp_path / "par", workers=2)  # both trials of seed 0 start at once
    for s in ("random", "entropy"):
        assert _rows(tmp_path / "par", s) == _rows(tmp_path / "serial", s)
    q = (tmp_path / "par/queries.jsonl").read_text()
    assert q == (tmp_path / "serial/queries.jsonl").read_text()
    # one trained round 0 and wrote it, the other started from it (whichever came first)
    from_ = {s: _round(tmp_path / "par", s, 0, 0).get("round0_from") for s in ("random", "entropy")}
    trained = [s for s, f in from_.items() if f is None]
    assert len(trained) == 1 and set(from_.values()) == {None, trained[0]}, from_
    assert [p.name for p in (tmp_path / "par/round0").iterdir()] == ["seed0.pt"]


def test_killed_between_writing_round0_and_committing_it(tmp_path: Path) -> None:
    """The trial that trains round 0 writes round0/ first, then commits its own record; killed
    in between, it resumes from its own shared model, without naming itself in round0_from."""
    _run(tmp_path / "full", ["random", "entropy"])
    out = tmp_path / "cut"
    _run(out, ["random", "entropy"])
    shutil.rmtree(out / "trials")  # nothing committed, round0/seed0.pt written
    (out / "round0/.seed0.pt.x1y2.tmp").write_bytes(b"half")  # and another's write cut short
    _run(out, ["random", "entropy"])
    assert "round0_from" not in _round(out, "random", 0, 0)
    assert _round(out, "entropy", 0, 0)["round0_from"] == "random"
    assert [p.name for p in (out / "round0").iterdir()] == ["seed0.pt"]  # .tmp removed
    for s in ("random", "entropy"):
        assert _rows(out, s) == _rows(tmp_path / "full", s)
    # killed right after committing an adopted round 0: resumes from its own checkpoint
    trial = out / "trials/entropy__seed0"
    for r in (1, 2):
        (trial / f"round_{r:03d}.json").unlink()
    torch.save(torch.load(out / "round0/seed0.pt")["state"], trial / "model_000.pt")
    (trial / "model_002.pt").unlink()
    _run(out, ["random", "entropy"])
    assert _rows(out, "entropy") == _rows(tmp_path / "full", "entropy")


def test_a_foreign_round0_file_is_refused_before_anything_is_committed(tmp_path: Path) -> None:
    _run(tmp_path / "a", ["random"])
    src = tmp_path / "a/round0/seed0.pt"

    def refused(name: str, match: str, **over) -> None:
        out = tmp_path / name
        raw = {**BASE, "strategies": ["entropy"], "seeds": [0], **over}
        with pytest.raises(DataError, match=match):
            run_experiment(Experiment.prepare(ExperimentConfig.from_dict(raw)), out)
        assert {f.name for f in (out / "trials/entropy__seed0").iterdir()} <= {
            TRIAL_LOCK_NAME  # the lock of the trial's process, held while it ran
        }, "nothing of the foreign model may be committed"
        shutil.rmtree(out / "round0")  # the advice: delete it and rerun
        run_experiment(Experiment.prepare(ExperimentConfig.from_dict(raw)), out)

    wide = {"model": {"name": "cnn", "width": 0.5}}
    shutil.copytree(tmp_path / "a/round0", tmp_path / "wide/round0")
    refused(
        "wide",
        r"seed0.pt comes from a run with other settings \(differs in: model.width\)\. Delete",
        **wide,
    )
    longer = {"train": {"max_epochs": 3, "batch_size": 32}}
    shutil.copytree(tmp_path / "a/round0", tmp_path / "epochs/round0")
    refused("epochs", r"other settings \(differs in: train.max_epochs\)", **longer)
    # a file written before round0/ files said which run they belong to: the weights are checked
    _edited_copy(src, tmp_path / "old/round0/seed0.pt", edit_file=lambda g: g.pop("run", None))
    refused("old", r"seed0.pt does not fit this run's model \(.*\); .*Delete it", **wide)
    # readable, but not a round-0 file
    _edited_copy(src, tmp_path / "nostate/round0/seed0.pt", edit_file=lambda g: g.update(state={}))
    for name, obj in [
        ("norecord", {"record": json.dumps({"seed": 0}), "state": {}}),
        ("list", [1]),
    ]:
        (tmp_path / name / "round0").mkdir(parents=True)
        torch.save(obj, tmp_path / name / "round0/seed0.pt")
    for name in ("nostate", "norecord", "list"):
        refused(name, r"seed0.pt cannot be read \(not a round-0 file\); delete it and rerun")


def test_round0_taken_by_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run/round0").write_text("not a directory")
    with pytest.raises(DataError, match=r"round0 is not a directory.*move it away"):
        _run(tmp_path / "run", ["entropy"])
    assert not (tmp_path / "run/trials/entropy__seed0/round_000.json").exists()


def test_a_file_system_without_hard_links_still_shares_round0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    _run(tmp_path, ["random", "entropy"])
    assert _round(tmp_path, "entropy", 0, 0)["round0_from"] == "random"
    assert [p.name for p in (tmp_path / "round0").iterdir()] == ["seed0.pt"]
    assert not SharedRound0(tmp_path, 0).save({"seed": 0}, {"model": {}})  # still written once


def test_the_cli_names_a_bad_round0_file_and_the_fix_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fishermask.cli import app

    cli = CliRunner()
    args = "--dataset digits --model cnn --width 0.25 --max-epochs 1 --seeds 1 --initial 20"
    args += " --query-size 10 --rounds 1 --no-progress --device cpu --strategy"

    def run(out: Path, *extra: str) -> object:
        return cli.invoke(app, ["run", *args.split(), *extra, "--out", str(out)])

    assert run(tmp_path / "a", "random").exit_code == 0
    (tmp_path / "junk/round0").mkdir(parents=True)
    (tmp_path / "junk/round0/seed0.pt").write_bytes(b"not a checkpoint")
    shutil.copytree(tmp_path / "a/round0", tmp_path / "wide/round0")
    (tmp_path / "file").mkdir()
    (tmp_path / "file/round0").write_text("")
    for name, extra, expect in [
        ("junk", [], "round0/seed0.pt cannot be read (not a round-0 file); delete it and rerun"),
        (
            "wide",
            ["--width", "0.5"],
            "seed0.pt comes from a run with other settings (differs in: model.width). Delete",
        ),
        ("file", [], "round0 is not a directory: the run directory keeps"),
    ]:
        res = run(tmp_path / name, "entropy", *extra)
        *_, msg = res.stderr.strip().splitlines()  # after the run's header line: one line
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert msg.startswith("error: Trial entropy seed 0: "), msg
        assert f"{tmp_path / name}/round0" in msg, msg
        assert expect in msg, msg
    shutil.rmtree(tmp_path / "wide/round0")  # as the message says
    assert run(tmp_path / "wide", "entropy", "--width", "0.5").exit_code == 0


def test_round0_settings_written_before_a_config_field_existed_still_match() -> None:
    from fishermask.experiments.trial import round0_differences, round0_inputs

    exp = Experiment.prepare(ExperimentConfig.from_dict({**BASE, "strategies": ["random"]}))
    run = round0_inputs(exp.config)
    assert round0_differences(run, exp) == [] and round0_differences(None, exp) == []
    del run["train"]["max_steps"]  # as written before `max_steps` existed: its default
    assert round0_differences(run, exp) == []
    run["train"]["max_steps"] = 3
    run["threads"] = 2
    assert round0_differences(run, exp) == ["train.max_steps", "threads"]
    assert round0_differences({"data": 1}, exp) == ["data", "model", "train", "loop", "threads"]
