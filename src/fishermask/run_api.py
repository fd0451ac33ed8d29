"""``fishermask.run``: a whole experiment (strategies x seeds x rounds) on data held in memory.

The data (arrays, tensors or a map-style torch ``Dataset``: ``fishermask.data.memory``) are
converted once to uint8 ``[N, Ch, H, W]`` and written into the run directory as
``data/<name>.npz``; the configuration records that path and the content hash
(``data.sha256``). Worker processes, Ray tasks and a later resume load those bytes and check
the hash; a resume with other data is refused before anything is written
(docs/decisions.md, "Data in memory").
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fishermask.data.base import ImageDataset
from fishermask.data.memory import dataset_sha256, from_memory
from fishermask.errors import ConfigError, DataError
from fishermask.experiments.config import (
    DataConfig,
    ExperimentConfig,
    deep_merge,
    loop_of_last_layer,
)
from fishermask.experiments.experiment import Experiment
from fishermask.experiments.lock import hold_run_dir
from fishermask.experiments.parallel import check_ray_address, check_workers_can_import
from fishermask.experiments.progress import NullProgress, RichProgress
from fishermask.experiments.runner import check_run_dir, run_experiment, start_notes
from fishermask.experiments.store import check_out_dir, write_atomic
from fishermask.reporting.outputs import write_run_outputs

DATA_DIR = "data"  # inside the run directory


def run(
    config: ExperimentConfig | Mapping[str, Any] | None = None,
    *,
    train: Any,
    test: Any,
    out: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    name: str = "memory",
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    progress: bool = True,
    allow_env_change: bool = False,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Run every (strategy, seed) trial on in-memory data into ``out`` (resuming what is there).

    Args:
        config: an ``ExperimentConfig`` or a mapping in its layout (``{"model": "mlp",
            "loop": {...}, "strategies": [...], "seeds": 2}``), without ``data.dataset``.
        train, test: ``(x, y)`` (NumPy arrays or torch tensors; x ``[N, H, W]``,
            ``[N, H, W, C]`` or ``[N, C, H, W]``, uint8 / uint16 / float in [0, 1]; y integer
            class indices) or a map-style torch ``Dataset`` whose items are ``(image,
            label)`` (image: PIL L/RGB, or an array/tensor of those layouts and dtypes).
        out: the run directory; the same ``out`` with the same data resumes (more rounds,
            seeds or strategies extend it).
        classes: one name per class (default: a Dataset's ``classes``, else "0".."K-1").
        name: the data set's name in ``config.json``, summaries and reports; the file is
            ``out/data/<name>.npz``.
        workers, executor, address: as ``run_experiment`` (results do not depend on them).
        progress: progress bars on stderr (reading a large Dataset, rounds). Whatever it is,
            a run continued in ``out`` says so on stderr first, as ``fishermask run`` does
            (``extending … by 1 seed (1): 6 of 12 rounds were done earlier``, ``resuming …``).
        **settings: top-level configuration keys, applied over ``config``
            (``seeds=3, strategies=["random", "entropy"], model="mlp"``); not ``train``,
            which is the data here: the training recipe goes in ``config``. A ``loop``
            keyword's ``rounds`` or ``budget`` replaces the config's other one; both in one
            mapping are refused, as in a config file.

    Returns:
        One dict per committed round, as ``run_experiment`` (also in ``out/results.csv``,
        with ``summary.md`` and ``learning_curves.png``).

    Raises:
        DataError: unusable data (one line naming the split, the item and the fix), or
            ``out`` holding a run on other data.
        ConfigError: an invalid configuration, ``data.dataset`` given, bad ``out``.
    """
    if getattr(mp.current_process(), "_inheriting", False):  # spawn is importing __main__
        raise ConfigError(
            "fishermask.run was called while a worker process imported your script; put the "
            'call under `if __name__ == "__main__":` (worker processes import the script), '
            "or use workers=1."
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
        raise ConfigError(
            f"name={name!r}: use letters, digits, '.', '_' and '-' (it names the data file)."
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"`workers`={workers!r}, must be an integer >= 1.")
    if isinstance(train, Mapping):  # every other top-level key may be a keyword, not train
        given = repr(dict(train))
        given = given if len(given) <= 60 and "\n" not in given else "{...}"
        raise ConfigError(
            f"train= is the training data; the training recipe goes in the config: "
            f"fishermask.run({{..., 'train': {given}}}, train=(x, y), ...)."
        )
    raw = _raw_config(config, settings)
    out_dir = Path(out).expanduser().resolve()
    check_out_dir(out_dir)
    # held until the outputs are written; a run in use is refused before the data are read
    with hold_run_dir(out_dir, create=False, option="out") as lock:
        ds = from_memory(train, test, classes, name=name, progress=progress)
        sha = dataset_sha256(ds)
        path = out_dir / DATA_DIR / f"{name}.npz"
        _check_same_data(out_dir, sha, path)
        raw = deep_merge(raw, {"data": {"dataset": str(path), "sha256": sha}})
        cfg = ExperimentConfig.from_dict(raw)
        exp = Experiment.prepare(cfg, progress=progress, allow_env_change=allow_env_change, data=ds)
        check_workers_can_import(exp, workers, executor)
        if executor == "ray":
            check_ray_address(address)
        extension = check_run_dir(exp, out_dir)  # another run in out is refused, writing nothing
        # as `fishermask run` says it: extending, resuming, or complete
        for line in start_notes(exp, out_dir, extension, complete="returning its records"):
            print(line, file=sys.stderr)
        lock.take(create=True)  # a new out is made here, locked before the data file is written
        if not (path.is_file() and (out_dir / "config.json").is_file()):
            _write_npz(path, ds)  # (config.json names this hash: a file there holds these data)
        bar = RichProgress() if progress else NullProgress()
        with bar:
            records = run_experiment(
                exp, out_dir, progress=bar, workers=workers, executor=executor, address=address
            )
        write_run_outputs(out_dir, [s.key for s in cfg.strategies])  # titled as `report` does
        return records


def _raw_config(
    config: ExperimentConfig | Mapping[str, Any] | None, settings: dict[str, Any]
) -> dict[str, Any]:
    """The configuration as a mapping, ``settings`` on top; refuse a data set named in it."""
    if isinstance(config, ExperimentConfig):
        raw = config.to_dict()
        data = raw["data"]
        default = DataConfig().dataset
        if data["dataset"] != default and data.get("sha256") is None:
            raise ConfigError(
                f"config names data.dataset={data['dataset']!r} and train/test are given in "
                "memory; use one: drop the dataset from the config, or call run_experiment."
            )
        raw["data"] = {k: v for k, v in data.items() if k not in ("dataset", "sha256")}
    elif isinstance(config, Mapping) or config is None:
        raw = dict(config or {})
    elif isinstance(config, str | os.PathLike):  # a config file's path
        raise ConfigError(
            f"config is the {type(config).__name__} {str(config)!r}; give an ExperimentConfig "
            "or a mapping ({'model': 'mlp', 'loop': {...}, ...}); for a config file, "
            f"read_config_file({str(config)!r}, profile=None) (fishermask.experiments.config) "
            "gives that mapping."
        )
    else:
        raise ConfigError(
            f"config is {type(config).__name__}; give an ExperimentConfig or a mapping "
            "({'model': 'mlp', 'loop': {...}, ...})."
        )
    # `loop` as a keyword replaces the config's rounds or budget, as a profile does a file's
    raw = loop_of_last_layer(deep_merge(raw, settings), [("config", raw), ("settings", settings)])
    data = raw.get("data") or {}
    if isinstance(data, Mapping) and ("dataset" in data or "sha256" in data):
        raise ConfigError(
            f"data.dataset={data.get('dataset')!r} is set and train/test are given in "
            "memory; use one: drop data.dataset (fishermask.run records where it writes "
            "the data), or run a file with `fishermask run --dataset`."
        )
    return raw


def _check_same_data(out_dir: Path, sha: str, path: Path) -> None:
    """Refuse ``out_dir`` if it holds a run on other data, or on these data kept in another
    file than ``path`` (before anything is written)."""
    meta = out_dir / "config.json"
    if not meta.is_file():
        return
    try:
        data = json.loads(meta.read_text())["config"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a run's config.json: open_run_dir reports it
    old = data.get("sha256")
    if old is None:
        raise DataError(
            f"{out_dir} holds a run on data set {data.get('dataset')!r}, not on data given in "
            f"memory; use a new out, or delete {out_dir} to start over."
        )
    if old != sha:
        raise DataError(
            f"data sha256 mismatch: {out_dir} holds a run on data with sha256 {old[:16]}…, "
            f"these train/test data hash to {sha[:16]}…; pass the run's data, use a new out, "
            f"or delete {out_dir} to start over."
        )
    old_path = str(data.get("dataset"))
    if old_path != str(path):
        raise ConfigError(
            f"{out_dir} holds a run on these data whose config.json names the data file "
            f"{old_path}, not {path} (another name=, or a moved directory); pass "
            f"name={Path(old_path).stem!r} in the directory the run started in, or use a new out."
        )


def _write_npz(path: Path, ds: ImageDataset) -> None:
    """Store ``ds`` as an uncompressed ``.npz`` the npz loader reads back unchanged."""
    arrays = {k: getattr(ds, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")}
    arrays["classes"] = np.array(ds.classes, dtype=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: np.savez(f, **arrays))
