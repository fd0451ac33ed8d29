"""Run an experiment: every (strategy, seed) trial into one run directory, resumable.

Trials run one after another here, or in parallel processes or Ray tasks
(:mod:`fishermask.experiments.parallel`); results do not depend on which. A run
stopped by Ctrl-C or by a failing trial keeps every committed round, writes the
partial ``results.csv``, and continues when started again with the same ``--out``.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fishermask.errors import ConfigError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.experiment import (  # noqa: F401 - the public API lives here too
    Experiment,
    derive_seed,
    generator,
    load_experiment_data,
    resolve_device,
)
from fishermask.experiments.lock import hold_run_dir, trials_in_use
from fishermask.experiments.parallel import (
    check_ray_address,
    check_workers_can_import,
    run_parallel,
    trial_failed,
)
from fishermask.experiments.progress import NullProgress
from fishermask.experiments.store import TrialStore, aggregate, write_json_atomic
from fishermask.experiments.trial import run_trial


def _comparable(meta: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the run in its directory.

    The configuration is read back through :class:`ExperimentConfig`, so a field added
    to it since (whose default keeps the old behaviour) does not stop a resume.
    """
    cfg = meta["config"]
    try:
        cfg = ExperimentConfig.from_dict(cfg).to_dict()
    except ConfigError:
        pass  # compared as written: it differs from any valid configuration
    cfg = dict(cfg)
    cfg.pop("device", None)
    return {"config": cfg, "dataset": meta["dataset"]}


#: The configuration keys an existing run may change: they only lengthen its schedule.
_SCHEDULE_KEYS = {"config.loop.rounds", "config.loop.budget"}
#: ... or add trials: seeds and strategies beside the recorded ones.
_TRIAL_KEYS = {"config.seeds", "config.strategies"}


@dataclass(frozen=True)
class Extension:
    """What a run started again in an existing run directory adds to it (:func:`check_run_dir`).

    ``rounds``: ``(rounds before, rounds after)`` (round 0 counted) when the schedule grows;
    ``seeds`` and ``strategies`` (keys): the trials' seeds and strategies that are new.
    """

    rounds: tuple[int, int] | None = None
    seeds: tuple[int, ...] = ()
    strategies: tuple[str, ...] = ()

    def describe(self) -> str:
        """``from 3 to 5 queries per trial, by 2 seeds (3, 4) and 1 strategy (margin)``."""
        parts = []
        if self.rounds is not None:
            parts.append(f"from {self.rounds[0] - 1} to {self.rounds[1] - 1} queries per trial")
        added = [
            f"{len(items)} {one if len(items) == 1 else many} ({', '.join(map(str, items))})"
            for items, one, many in (
                (self.seeds, "seed", "seeds"),
                (self.strategies, "strategy", "strategies"),
            )
            if items
        ]
        if added:
            parts.append("by " + " and ".join(added))
        return ", ".join(parts)


def check_run_dir(
    exp: Experiment, out_dir: Path, meta: dict[str, Any] | None = None
) -> Extension | None:
    """Refuse an ``out_dir`` whose ``config.json`` records another experiment (writes nothing).

    Three changes are accepted, alone or together, and return the :class:`Extension`:

    - more rounds (``loop.rounds``, or a ``loop.budget`` whose queries begin with all of the
      recorded run's): the rounds already committed are then the first rounds of the longer
      run, exactly (every draw is seeded by ``(seed, round, purpose)`` and no setting depends
      on the number of rounds), and the trials continue from them;
    - more seeds (every recorded seed still there, new ones anywhere in the list);
    - more strategies (every recorded entry still there unchanged: name, options, label;
      an entry written another way is the same: ``fishermask:sparsity=0.002`` for a recorded
      ``fishermask`` whose default that is, or ``entropy:label=entropy`` for ``entropy``).

    A trial's draws depend on its seed, round and purpose alone, its directory and the shared
    round-0 model of its seed are named by its strategy and seed, and results are sorted by
    them: the finished trials are those of the larger run, and the new ones run as in it.
    Returns ``None`` for the same run (also given another way: ``rounds`` for ``budget``, the
    lists in another order, or a strategy's options at their defaults).
    """
    path = Path(out_dir) / "config.json"
    if not path.exists():
        return None
    meta = exp.metadata() if meta is None else meta
    old = json.loads(path.read_text())
    before, after = _comparable(old), _comparable(meta)
    if before == after:
        return None
    diff = _diff_keys(before, after)
    if set(diff) <= _SCHEDULE_KEYS | _TRIAL_KEYS:
        seeds = _added_seeds(out_dir, before["config"], after["config"])
        strategies = _added_strategies(
            out_dir, before["config"], after["config"], _options(old), _options(meta)
        )
        rounds = None
        if set(diff) & _SCHEDULE_KEYS:
            rounds = _longer_schedule(out_dir, old, meta, diff)
        if rounds is None and not seeds and not strategies:
            return None  # the same run, given another way (rounds / budget, list order)
        return Extension(rounds, seeds, strategies)
    raise _other_configuration(out_dir, diff)


def _other_configuration(out_dir: Path, diff: list[str]) -> ConfigError:
    return ConfigError(
        f"{out_dir} holds a run with a different configuration (differs in: "
        f"{', '.join(diff[:6])}); use a new --out, or delete {out_dir} to start over."
    )


def _longer_schedule(
    out_dir: Path, old: dict[str, Any], meta: dict[str, Any], diff: list[str]
) -> tuple[int, int] | None:
    """``(rounds before, rounds after)`` for a schedule that begins with the recorded one,
    ``None`` for the same schedule given another way; refuse any other."""
    old_sizes, new_sizes = old.get("query_sizes"), meta["query_sizes"]
    if isinstance(old_sizes, list) and new_sizes[: len(old_sizes)] == old_sizes:
        if len(new_sizes) == len(old_sizes):
            return None  # the same schedule, given the other way (rounds / budget)
        return len(old_sizes) + 1, len(new_sizes) + 1
    if isinstance(old_sizes, list) and old_sizes[: len(new_sizes)] == new_sizes:
        raise ConfigError(
            f"{out_dir} holds a longer run ({len(old_sizes)} queries per trial) than this "
            f"command asks for ({len(new_sizes)}); its first {len(new_sizes)} are the "
            "shorter run's (rounds 0-"
            f"{len(new_sizes)} of its results.csv; `fishermask report {out_dir}` reports "
            f"it as it is): run the longer command again to print its summary, or use a "
            "new --out for a separate shorter run."
        )
    _refuse_cut_last_query(out_dir, old, old_sizes, new_sizes)
    raise _other_configuration(out_dir, diff)


def _added_seeds(out_dir: Path, old: dict[str, Any], new: dict[str, Any]) -> tuple[int, ...]:
    """The seeds of ``new`` that ``old`` lacks; refuse a ``new`` without all of ``old``'s."""
    before, after = old.get("seeds"), new["seeds"]
    if not isinstance(before, list):
        raise _other_configuration(out_dir, ["config.seeds"])
    dropped = [s for s in before if s not in after]
    if dropped:
        given = ",".join(map(str, before)) + ("," if len(before) == 1 else "")  # 5, not a count
        raise ConfigError(
            f"{out_dir} holds a run on {'seed' if len(before) == 1 else 'seeds'} "
            f"{_listed(before)}; this command leaves out {'seed' if len(dropped) == 1 else 'seeds'}"
            f" {_listed(dropped)} (a run takes more seeds, not fewer); pass every recorded seed "
            f"(e.g. --seeds {given}) with any new ones, or use a new --out."
        )
    return tuple(s for s in after if s not in before)


def _options(meta: dict[str, Any]) -> dict[str, Any]:
    """``strategy key -> its options, defaults filled in`` as ``config.json`` records them
    (read back through JSON, as written), or ``{}`` without them."""
    try:
        options = json.loads(json.dumps(meta.get("strategy_options") or {}))
    except (TypeError, ValueError):
        return {}
    return options if isinstance(options, dict) else {}


def _added_strategies(
    out_dir: Path,
    old: dict[str, Any],
    new: dict[str, Any],
    old_options: dict[str, Any] | None = None,
    new_options: dict[str, Any] | None = None,
) -> tuple[str, ...]:
    """The strategy keys of ``new`` that ``old`` lacks; refuse a ``new`` that leaves out or
    changes (name, options) a recorded strategy. An entry written another way is the same
    strategy: its options spelled out at their defaults, its name given as its label
    (``old_options`` / ``new_options``: ``strategy_options`` of the two, defaults filled)."""
    old_options, new_options = old_options or {}, new_options or {}
    try:
        before = {_key(s): s for s in old.get("strategies")}
    except (TypeError, AttributeError, KeyError):  # not a list of entries: compared as written
        raise _other_configuration(out_dir, ["config.strategies"]) from None
    after = {_key(s): s for s in new["strategies"]}
    for key, spec in before.items():
        if key not in after:
            raise ConfigError(
                f"{out_dir} holds a run with strategy {_spec_text(spec)}, which this command "
                "leaves out (a run takes more strategies, not fewer); pass every recorded "
                "strategy with any new ones, or use a new --out."
            )
        if after[key] != spec and not _same_strategy(
            spec, after[key], old_options.get(key), new_options.get(key)
        ):
            name = after[key]["name"]
            raise ConfigError(
                f"{out_dir} holds strategy {key} as {_spec_text(spec)}; this command gives "
                f"{_spec_text(after[key])}, and a recorded strategy cannot change; add the "
                f"variant beside it under a label of its own (e.g. -s '{name}:...,label="
                f"{name}-2'), or use a new --out."
            )
    return tuple(key for key in after if key not in before)


def _same_strategy(old: dict[str, Any], new: dict[str, Any], old_all: Any, new_all: Any) -> bool:
    """Whether two entries of one key name the same strategy with the same options, defaults
    filled in (``old_all`` / ``new_all``, as the strategies report them): every option either
    entry gives must be among them, so a strategy that reports fewer is compared as written."""
    if old["name"] != new["name"] or not isinstance(old_all, dict) or old_all != new_all:
        return False
    given = set(old.get("options") or {}) | set(new.get("options") or {})
    return given <= set(old_all)


def _key(spec: dict[str, Any]) -> str:
    return spec.get("label") or spec["name"]


def _spec_text(spec: dict[str, Any]) -> str:
    """A strategy entry as ``--strategy`` takes it: ``fishermask:sparsity=0.01,label=fm``."""
    opts = {**spec.get("options", {}), **({"label": spec["label"]} if spec.get("label") else {})}
    text = ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in opts.items())
    return spec["name"] + (f":{text}" if text else "")


def _listed(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))


def _refuse_cut_last_query(out_dir: Path, old: dict[str, Any], old_sizes: Any, new: list) -> None:
    """Refuse, saying why, a longer schedule that a run cut short to land on its budget
    cannot be extended to exactly: its last query was smaller than the longer run's."""
    if not isinstance(old_sizes, list) or not old_sizes or len(new) < len(old_sizes):
        return
    i = len(old_sizes) - 1
    if new[:i] != old_sizes[:i] or old_sizes[i] >= new[i]:
        return
    budget = old.get("config", {}).get("loop", {}).get("budget")
    raise ConfigError(
        f"{out_dir} holds a run whose last query (round {i + 1}) labeled {old_sizes[i]} images "
        f"to land on its budget {budget}; asked for the longer schedule from the start it "
        f"would label {new[i]} there, so every later round would differ and it cannot be "
        f"extended exactly; use a new --out, or delete {out_dir} to start over."
    )


def open_run_dir(exp: Experiment, out_dir: Path) -> Extension | None:
    """Create ``out_dir`` with ``config.json``, or check that it holds this same experiment.

    An existing ``config.json`` is never rewritten (it records the run as first started;
    each round records the environment it ran in), except when this run extends it
    (:func:`check_run_dir`, whose answer is returned): then its configuration and
    ``query_sizes`` become this run's, ``strategy_options`` gains the new strategies', and
    ``extended`` lists, per extension, what it changed as it was before: ``loop`` and
    ``query_sizes`` (more rounds), ``seeds``, ``strategies``.
    """
    out_dir = Path(out_dir)
    meta = exp.metadata()
    path = out_dir / "config.json"
    extension = check_run_dir(exp, out_dir, meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.rglob(".*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    if not path.exists():
        write_json_atomic(path, meta)
    elif extension is not None:
        old = json.loads(path.read_text())
        earlier: dict[str, Any] = {}
        if old["config"]["loop"] != meta["config"]["loop"]:
            earlier |= {"loop": old["config"]["loop"], "query_sizes": old["query_sizes"]}
        if extension.seeds:
            earlier["seeds"] = old["config"]["seeds"]
        if extension.strategies:
            earlier["strategies"] = old["config"]["strategies"]
        options = old.get("strategy_options", {})
        write_json_atomic(
            path,
            {
                **old,
                "config": meta["config"],
                "strategy_options": {**meta["strategy_options"], **options},
                "query_sizes": meta["query_sizes"],
                "extended": [*old.get("extended", []), earlier],
            },
        )
    return extension


def rounds_done(exp: Experiment, out_dir: Path) -> tuple[int, int, int]:
    """Committed rounds already in ``out_dir`` for this experiment, the total to run, and how
    many of the committed ones have no confusion matrix (made before it was recorded)."""
    cfg = exp.config
    n_rounds = len(exp.query_sizes) + 1
    total = n_rounds * len(cfg.strategies) * len(cfg.seeds)
    if not (Path(out_dir) / "config.json").exists():
        return 0, total, 0
    records = [
        rec
        for spec in cfg.strategies
        for seed in cfg.seeds
        for rec in TrialStore(out_dir, spec.key, seed).records(n_rounds)
    ]
    return len(records), total, sum("confusion" not in rec for rec in records)


def start_notes(
    exp: Experiment, out_dir: Path, extension: Extension | None, complete: str
) -> list[str]:
    """What a run says before it starts in ``out_dir``, one line each; none for a new run.

    That it extends the run there (``extension``, from :func:`check_run_dir`: ``extending
    runs/x from 3 to 5 queries per trial: 24 of 36 rounds were done earlier``), resumes it,
    or finds it complete (then ``complete`` says what it does instead); and how many of the
    rounds done earlier have no confusion matrix. ``fishermask run`` and
    :func:`fishermask.run` say the same.
    """
    done, total, without_confusion = rounds_done(exp, out_dir)
    lines = []
    if done:
        lines.append(
            f"extending {out_dir} {extension.describe()}: {done} of {total} rounds were done "
            "earlier"
            if extension is not None
            else f"resuming {out_dir}: {done} of {total} rounds were done earlier"
            if done < total
            else f"{out_dir} is complete ({total} rounds); {complete}"
        )
    if without_confusion:
        lines.append(
            f"note: {without_confusion} of those rounds were committed before confusion "
            "matrices were recorded and have none; "
            + (
                "confusion.jsonl holds the others."
                if without_confusion < done
                else "rounds run from now on have one (in confusion.jsonl)."
                if done < total
                else "`fishermask report` draws none for this run."
            )
        )
    return lines


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def trial_order(config: ExperimentConfig) -> list[tuple[str, int]]:
    """The (strategy key, seed) trials of ``config`` in the order they run: seed-major.

    Every strategy on the first seed, then every strategy on the next, so that a run stopped
    part-way (the long CPU runs span sessions) already holds paired comparisons of all
    strategies on the seeds it finished. Results do not depend on the order: each trial draws
    only from its own seeded generators.
    """
    return [(spec.key, seed) for seed in config.seeds for spec in config.strategies]


def run_experiment(
    exp: Experiment,
    out_dir: Path,
    *,
    progress: NullProgress | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Run every (strategy, seed) trial of ``exp`` into ``out_dir`` (resuming what is there).

    ``workers > 1`` runs trials in that many processes (``executor="local"``); with
    ``executor="ray"`` they run as Ray tasks on the cluster at ``address`` (``None``: Ray's
    choice, ``$RAY_ADDRESS``, else a cluster ``ray start`` started on this machine, else a new
    local instance; on several machines ``out_dir`` must be on a file system all nodes share).
    Results do not depend on either: each trial draws only from its own seeded generators
    and runs with ``config.threads`` torch threads wherever it runs.

    On Ctrl-C (``KeyboardInterrupt``) or a failing trial, the queued trials are cancelled,
    running ones stop at their next safe point, ``results.csv`` is written from the rounds
    committed so far, and the exception propagates.

    This process holds ``out_dir``'s lock meanwhile (:mod:`fishermask.experiments.lock`):
    while another run holds it, :class:`~fishermask.experiments.lock.RunDirInUse` is raised
    before anything is written. Each trial holds its folder's lock while it runs
    (:func:`~fishermask.experiments.lock.hold_trial`): a trial that a job of an earlier, killed
    run still runs (a Ray task outlives its driver by seconds) is warned about and waited for.
    """
    out_dir = Path(out_dir)
    check_workers_can_import(exp, workers, executor)
    if executor == "ray":
        check_ray_address(address)
    with hold_run_dir(out_dir):
        return _run_locked(exp, out_dir, progress, workers, executor, address)


def _run_locked(
    exp: Experiment,
    out_dir: Path,
    progress: NullProgress | None,
    workers: int,
    executor: str,
    address: str | None,
) -> list[dict[str, Any]]:
    open_run_dir(exp, out_dir)
    order = [s.key for s in exp.config.strategies]
    classes = list(exp.data.classes)
    trials = trial_order(exp.config)
    for line in trials_in_use(out_dir, trials):  # their jobs wait for it
        warnings.warn(line, stacklevel=2)
    try:
        if executor == "local" and workers <= 1:
            specs = {s.key: s for s in exp.config.strategies}

            def on_commit(_: dict[str, Any]) -> None:
                aggregate(out_dir, order, classes)

            for key, seed in trials:
                try:
                    run_trial(
                        exp, specs[key], seed, out_dir, progress=progress, on_commit=on_commit
                    )
                except Exception as e:
                    raise trial_failed(key, seed, e) from e
        else:
            run_parallel(
                exp,
                out_dir,
                trials,
                workers=workers,
                executor=executor,
                address=address,
                progress=progress,
            )
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            aggregate(out_dir, order, classes)  # Ctrl-C or a failure: the partial results
        raise
    return aggregate(out_dir, order, classes)
