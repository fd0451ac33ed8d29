"""One trial: a strategy and a seed, round after round, resumable at any kill.

Each round labels a batch (round 0: a random initial set; later rounds: the
strategy's query), trains the classifier on every label so far, evaluates it on
the test split, and commits a record and a checkpoint atomically. A trial resumes
from its last committed round: the pool is rebuilt from the records, the model
from the checkpoint, and every random draw comes from a generator seeded by
``(seed, round, purpose)``, so the rounds that follow are the uninterrupted ones.

Trials that train no auxiliary module share one round-0 model per seed
(:class:`~fishermask.experiments.store.SharedRound0`): the first to finish round 0
writes it (before committing it), the others start from it, also those that trained
round 0 at the same time, so every such strategy of a seed starts from the same model
even when the trials run on different machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fishermask.al.pool import Pool, SimulatedOracle
from fishermask.errors import ConfigError, DataError
from fishermask.experiments.config import ExperimentConfig, StrategySpec
from fishermask.experiments.experiment import Experiment, environment, generator, uses_features
from fishermask.experiments.lock import hold_trial
from fishermask.experiments.progress import NullProgress
from fishermask.experiments.store import SharedRound0, TrialStore
from fishermask.models.base import Classifier
from fishermask.plugins import PACKAGE, same_source
from fishermask.strategies.base import QueryContext, Selection
from fishermask.training import evaluate, make_augmenter, train
from fishermask.training.trainer import AuxiliaryModule, TrainResult

StopCheck = Callable[[], bool]


class StopRequested(Exception):
    """Raised at a safe point (between rounds or epochs) when the run is asked to stop."""


class Trial:
    """The state of one (strategy, seed) trial between rounds: pool, model, auxiliary module."""

    def __init__(self, exp: Experiment, spec: StrategySpec, seed: int) -> None:
        self.exp = exp
        self.spec = spec
        self.seed = seed
        self.strategy = exp.strategies[spec.key]
        self.oracle = SimulatedOracle(exp.data.y_train)
        self.augmenter = make_augmenter(
            exp.config.train,
            exp.normalizer,
            exp.data.image_shape[0],
            features=uses_features(exp.config),
        )
        self.pool = Pool(len(exp.data.y_train))
        self.model: Classifier | None = None
        self.aux: AuxiliaryModule | None = None

    def restore(self, records: list[dict[str, Any]], store: TrialStore) -> None:
        """Relabel the pool from ``records`` and load the last committed model."""
        for rec in records:
            self.pool.add(rec["queried"], torch.tensor(rec["labels"], dtype=torch.int64))
        if records:
            last = records[-1]["round"]
            state = store.checkpoint(last)
            self._new_model(last)
            assert self.model is not None
            self.model.load_state_dict(state["model"])
            if self.aux is not None and state.get("aux") is not None:
                self.aux.load_state_dict(state["aux"])
            self.model.eval()

    def trains_auxiliary(self) -> bool:
        """Whether the strategy trains a module beside the classifier (then round 0 is its own)."""
        return self.strategy.make_auxiliary(self._initial_model()) is not None

    def _initial_model(self) -> Classifier:
        with torch.random.fork_rng(devices=[]):  # building a model seeds the global generator
            return self.exp.new_model(self.seed, 0)

    def adopt_round0(self, shared: SharedRound0, store: TrialStore) -> list[dict[str, Any]]:
        """Commit the seed's shared round 0 as this trial's own; ``[]`` when there is none yet.

        The record is the training trial's, with this trial's strategy and ``round0_from``
        naming the trial that trained the model (none when that was this trial, killed
        between writing the shared model and committing its own round 0). A model that was
        not trained for this run is refused before anything is committed.
        """
        got = shared.load()
        if got is None:
            return []
        rec, state = got["record"], got["state"]
        fix = "Delete it and rerun: round 0 is trained again."
        initial = self.query(0)[0].tolist()
        if rec.get("seed") != self.seed or rec.get("round") != 0 or rec.get("queried") != initial:
            raise DataError(
                f"The shared round-0 model {shared.path} is not seed {self.seed}'s round 0 of this "
                f"run (its initial labeled set differs); it was copied from another run. {fix}"
            )
        differs = round0_differences(got.get("run"), self.exp)
        if differs:
            raise DataError(
                f"The shared round-0 model {shared.path} comes from a run with other settings "
                f"(differs in: {', '.join(differs[:6])}). {fix}"
            )
        want = self._initial_model().state_dict()
        have = state["model"]
        if set(have) != set(want) or any(
            not isinstance(have[k], torch.Tensor) or have[k].shape != want[k].shape for k in want
        ):
            bad = sorted(set(have) ^ set(want)) or [
                k for k in want if getattr(have[k], "shape", None) != want[k].shape
            ]
            raise DataError(
                f"The shared round-0 model {shared.path} does not fit this run's model "
                f"({len(bad)} weights differ, e.g. {bad[0]}); it comes from a run with another "
                f"model. {fix}"
            )
        changed = environment_changes(rec, self.exp)
        if changed and not self.exp.allow_env_change:
            raise ConfigError(
                f"The shared round-0 model {shared.path} was trained on another environment "
                f"({'; '.join(changed)}); the trials of seed {self.seed} would start from models "
                "made two ways. Continue where it ran, use a new --out, or pass "
                "--allow-env-change to start from it anyway."
            )
        own = {**rec, "strategy": self.spec.key, "name": self.spec.name}
        trained_by = rec.get("round0_from", rec["strategy"])
        if trained_by != self.spec.key:
            own["round0_from"] = trained_by
        store.commit(own, state)
        return [own]

    def query(self, r: int) -> tuple[torch.Tensor, Selection | None, float]:
        """Pool indices to label in round ``r``, the strategy's selection, and its seconds."""
        if r == 0:
            initial = torch.randperm(self.pool.size, generator=generator(self.seed, 0, "initial"))
            return initial[: self.exp.config.loop.initial], None, 0.0
        assert self.model is not None  # restored or trained in an earlier round
        ctx = QueryContext(
            model=self.model,
            pool=self.pool,
            images=self.exp.data.x_train,
            normalizer=self.exp.normalizer,
            generator=generator(self.seed, r, "query"),
            aux=self.aux,
            batch_size=self.exp.config.train.eval_batch_size,
        )
        t0 = time.perf_counter()
        sel = self.strategy.select(ctx, self.exp.query_sizes[r - 1])
        if self.exp.device.type == "cuda":
            torch.cuda.synchronize(self.exp.device)
        return sel.indices, sel, time.perf_counter() - t0

    def label(self, queried: torch.Tensor) -> torch.Tensor:
        """Ask the oracle for the labels of ``queried`` and add them to the pool."""
        labels = self.oracle.label(queried.tolist())
        self.pool.add(queried.tolist(), labels)
        return labels

    def train(self, r: int, on_epoch: Callable[[int, int, float], None]) -> TrainResult:
        """Train on every label so far (a fresh model each round when ``reinit``)."""
        if self.model is None or self.exp.config.train.reinit:
            self._new_model(r)
        assert self.model is not None
        labeled = self.pool.labeled
        return train(
            self.model,
            self.exp.data.x_train[labeled],
            self.pool.labels_of(labeled),
            self.exp.config.train,
            self.augmenter,
            generator=generator(self.seed, r, "train"),
            aux=self.aux,
            on_epoch=on_epoch,
        )

    def record(
        self,
        r: int,
        queried: torch.Tensor,
        labels: torch.Tensor,
        sel: Selection | None,
        query_seconds: float,
        result: TrainResult,
    ) -> dict[str, Any]:
        """Evaluate on the test split; the round's record as committed to the run directory."""
        assert self.model is not None
        exp = self.exp
        metrics = evaluate(
            self.model,
            exp.data.x_test,
            exp.data.y_test,
            exp.normalizer,
            batch_size=exp.config.train.eval_batch_size,
        )
        scores = None if sel is None or sel.scores is None else sel.scores
        return {
            "strategy": self.spec.key,
            "name": self.spec.name,
            "seed": self.seed,
            "round": r,
            "n_labeled": self.pool.num_labeled,
            "accuracy": metrics.accuracy,
            "balanced_accuracy": metrics.balanced_accuracy,
            "per_class_accuracy": [_clean(a) for a in metrics.per_class_accuracy],
            "confusion": [list(row) for row in metrics.confusion],  # [C_true, C_pred] counts
            "query_seconds": round(query_seconds, 4),
            "train_seconds": round(result.seconds, 4),
            "train_epochs": result.epochs,
            "train_steps": result.steps,
            "train_accuracy": result.train_accuracy,
            "queried": queried.tolist(),
            **exp.data.sources(queried.tolist()),  # dataset_index (+ files): where they are
            "labels": labels.tolist(),
            "scores": None if scores is None else [_clean(float(s)) for s in scores.tolist()],
            "info": {} if sel is None else sel.info,
            "environment": environment(exp.device),
            "import_sha256": exp.import_sha256,  # the code of the user's own entries
        }

    def state(self, r: int) -> dict[str, Any]:
        """Model (and auxiliary) weights after round ``r``, on the CPU."""
        assert self.model is not None
        aux = self.aux
        return {
            "round": r,
            "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
            "aux": {k: v.cpu() for k, v in aux.state_dict().items()} if aux is not None else None,
        }

    def _new_model(self, r: int) -> None:
        self.model = self.exp.new_model(self.seed, r)
        aux = self.strategy.make_auxiliary(self.model)
        self.aux = aux.to(self.exp.device) if aux is not None else None


def run_trial(
    exp: Experiment,
    spec: StrategySpec,
    seed: int,
    out_dir: Path,
    *,
    progress: NullProgress | None = None,
    on_commit: Callable[[dict[str, Any]], None] | None = None,
    stop: StopCheck | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) one (strategy, seed) trial; returns its round records.

    ``stop`` is polled between rounds and after every training epoch; when it returns
    True the trial raises :class:`StopRequested` (the rounds committed so far stay).

    The trial's folder is locked meanwhile (:func:`~fishermask.experiments.lock.hold_trial`):
    while another process runs the same trial (a left-over job of a killed run), this waits
    for it, polling ``stop``, and continues from the rounds it committed.
    """
    store = TrialStore(out_dir, spec.key, seed)
    # a job of an earlier run, killed, may still run this trial (a Ray task outlives its
    # driver by seconds): wait for it, then read what it committed
    with hold_trial(store.dir, lambda: _check_stop(stop)):
        return _run_trial(exp, spec, seed, out_dir, store, progress, on_commit, stop)


def _run_trial(
    exp: Experiment,
    spec: StrategySpec,
    seed: int,
    out_dir: Path,
    store: TrialStore,
    progress: NullProgress | None,
    on_commit: Callable[[dict[str, Any]], None] | None,
    stop: StopCheck | None,
) -> list[dict[str, Any]]:
    progress = progress or NullProgress()
    _set_torch_determinism(exp)
    n_rounds = len(exp.query_sizes) + 1
    records = store.records(n_rounds)
    if len(records) == n_rounds:
        return records  # finished earlier
    trial = Trial(exp, spec, seed)
    shared = None if trial.trains_auxiliary() else SharedRound0(out_dir, seed)
    if shared is not None and not records:
        records = trial.adopt_round0(shared, store)
        if records and on_commit is not None:
            on_commit(records[0])
    check_environment(records, exp)
    progress.start_trial(f"{spec.key} seed {seed}", n_rounds, len(records))

    def on_epoch(epoch: int, limit: int, accuracy: float) -> None:
        progress.epoch(epoch, limit, accuracy)
        _check_stop(stop)

    trial.restore(records, store)
    run = round0_inputs(exp.config)
    if shared is not None and len(records) == 1:  # round 0 committed before it was shared
        shared.save(records[0], store.checkpoint(0), run)
    for r in range(len(records), n_rounds):
        _check_stop(stop)
        queried, sel, query_seconds = trial.query(r)
        labels = trial.label(queried)
        result = trial.train(r, on_epoch)
        record = trial.record(r, queried, labels, sel, query_seconds, result)
        state = trial.state(r)
        # round 0 is shared before it is committed: a trial whose model lands second (trials of
        # the seed running at once, maybe on other machines) starts from the first one's
        if r == 0 and shared is not None and not shared.save(record, state, run):
            trial = Trial(exp, spec, seed)
            adopted = trial.adopt_round0(shared, store)
            if adopted:
                record = adopted[0]
                trial.restore(adopted, store)
            else:  # deleted meanwhile (a narrow race): keep this trial's own
                store.commit(record, state)
        else:
            store.commit(record, state)
        records.append(record)
        progress.round_done(f"{record['n_labeled']} labels, acc {record['accuracy']:.3f}")
        if on_commit is not None:
            on_commit(record)
    progress.end_trial()
    return records


def check_environment(records: list[dict[str, Any]], exp: Experiment) -> None:
    """Refuse to continue a trial on other software or hardware than its last round's.

    Results depend on the torch build, the device and the library version; a trial
    resumed on another one would mix rounds computed two ways. ``exp.allow_env_change``
    (``--allow-env-change``) lets it continue; each round records its own environment.
    """
    if not records or exp.allow_env_change:
        return
    changed = environment_changes(records[-1], exp)
    if changed:
        rec = records[-1]
        raise ConfigError(
            f"Trial {rec['strategy']} seed {rec['seed']} was run up to round {rec['round']} "
            f"on another environment or other --import code ({'; '.join(changed)}); its results "
            "would mix the two. Resume where it ran (with the same files), use a new --out, or "
            "pass --allow-env-change to continue anyway."
        )


def environment_changes(record: dict[str, Any], exp: Experiment) -> list[str]:
    """``"key 'before' -> 'now'"`` for each of :data:`ENVIRONMENT_KEYS` that ``record`` ran on
    differently from here, and for each ``imports`` entry whose source changed since (its
    SHA-256); empty for records made before environments were recorded."""
    before = record.get("environment")
    if before is None:
        return []
    now = environment(exp.device)
    changed = [
        f"{k} {before.get(k)!r} -> {now.get(k)!r}"
        for k in ENVIRONMENT_KEYS
        if before.get(k) != now.get(k)
    ]
    code = record.get("import_sha256")  # absent in records made before it was recorded
    if code is not None:
        now = exp.import_sha256
        changed += [
            f"--import {entry} sha256 {_short(code.get(entry))!r} -> {_short(now.get(entry))!r}"
            for entry in sorted(set(code) | set(now))
            if not same_source(entry, code.get(entry), now.get(entry))
        ]
    return changed


def _short(digest: str | None) -> str:
    """The first 12 hex digits of a digest, after its ``package:`` prefix if any."""
    text = str(digest)
    prefix = PACKAGE if text.startswith(PACKAGE) else ""
    return prefix + text[len(prefix) : len(prefix) + 12]


def round0_inputs(config: ExperimentConfig) -> dict[str, Any]:
    """What a seed's round-0 model depends on besides the seed and the environment: the data,
    model and training configuration, the initial set's size and the thread count (written
    into ``round0/seed<k>.pt``, so that a file copied from another run is recognised)."""
    cfg = config.to_dict()
    return {
        "data": {k: v for k, v in cfg["data"].items() if k != "cache_dir"},  # cache: any place
        "model": cfg["model"],
        "train": cfg["train"],
        "loop": {"initial": cfg["loop"]["initial"]},
        "threads": cfg["threads"],
    }


def round0_differences(run: Any, exp: Experiment) -> list[str]:
    """The settings in which the run a round-0 model was trained for (:func:`round0_inputs`)
    differs from ``exp``; empty when ``run`` is ``None`` (written before it was recorded)."""
    if run is None:
        return []
    now = round0_inputs(exp.config)
    if not isinstance(run, dict):
        return sorted(now)
    try:  # read back through the configuration: a field added since keeps its default
        run = round0_inputs(ExperimentConfig.from_dict(run))
    except (ConfigError, TypeError, ValueError):
        pass  # compared as written
    out = []
    for section, value in now.items():
        before = run.get(section)
        if isinstance(value, dict) and isinstance(before, dict):
            keys = sorted(set(value) | set(before), key=str)
            out += [f"{section}.{k}" for k in keys if value.get(k) != before.get(k)]
        elif value != before:
            out.append(section)
    return out


# What a resumed trial must share with its earlier rounds. The CPU model is recorded but not
# checked: it does change CPU results (kernels and their summation order depend on it), but
# runs made before it was recorded could not be continued, and a long CPU run that moves
# between machines of one pool would stop at every move. The round records say where each
# round ran; docs/results/README.md says what a change of machine does to paired comparisons.
ENVIRONMENT_KEYS = ("fishermask", "python", "torch", "numpy", "device")


def _check_stop(stop: StopCheck | None) -> None:
    if stop is not None and stop():
        raise StopRequested


def _set_torch_determinism(exp: Experiment) -> None:
    torch.set_num_threads(exp.config.threads)
    if exp.device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _clean(v: float) -> float | None:
    return None if v != v else v
