"""What a new user hits (issue 12): refusals before anything is written, one-line errors,
bracketed text kept in messages, and the small things a first run shows."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fishermask import __version__
from fishermask.cli import app

runner = CliRunner()
TINY = ["--model", "mlp", "--width", "0.25", "--max-epochs", "1", "--initial", "10"]
TINY += ["--query-size", "5", "--rounds", "1", "--no-progress", "--device", "cpu"]
TINY += ["--workers", "1"]


def _npz(path: Path, y_train, y_test, classes: list[str] | None = None) -> Path:
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    rng = np.random.default_rng(0)
    extra = {"classes": np.array(classes)} if classes else {}
    np.savez(
        path,
        x_train=rng.integers(0, 256, (len(y_train), 8, 8), dtype=np.uint8),
        y_train=y_train,
        x_test=rng.integers(0, 256, (len(y_test), 8, 8), dtype=np.uint8),
        y_test=y_test,
        **extra,
    )
    return path


def _fails(args: list[str], tmp_path: Path, *expected: str, out: Path | None = None) -> str:
    out = out or tmp_path / "run"
    existed = out.exists()
    res = runner.invoke(app, ["run", *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and msg.startswith("error:"), msg
    assert "Traceback" not in res.output
    for e in expected:
        assert e in msg, msg
    if not existed:
        assert not out.exists(), "a refused run must not leave a run directory behind"
    return msg


# -- item 5: runs that must be refused before anything is written ---------------------------


def test_empty_test_split_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", np.arange(20) % 2, np.zeros(0, np.int64))
    _fails(["--dataset", str(path), *TINY], tmp_path, "no test images")


def test_one_class_data_set_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", np.zeros(20, np.int64), np.zeros(5, np.int64))
    _fails(["--dataset", str(path), *TINY], tmp_path, "only one class", "at least two")


def test_one_class_left_by_class_counts_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", np.arange(20) % 2, np.arange(6) % 2)
    _fails(["--dataset", str(path), "--class-counts", "0,10", *TINY], tmp_path, "only one class")


def test_labels_one_to_k_are_refused(tmp_path: Path) -> None:
    # without `classes`, labels 1..3 mean 4 classes with an empty class 0
    path = _npz(tmp_path / "d.npz", 1 + np.arange(21) % 3, 1 + np.arange(6) % 3)
    _fails(["--dataset", str(path), *TINY], tmp_path, "class 0", "1..3", "subtract 1")


def test_class_only_in_test_split_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", np.arange(20) % 2, np.arange(6) % 3, ["a", "b", "c"])
    _fails(["--dataset", str(path), *TINY], tmp_path, "'c'", "no training images")


def test_class_in_neither_split_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", np.arange(20) % 2, np.arange(6) % 2, ["a", "b", "c"])
    _fails(["--dataset", str(path), *TINY], tmp_path, "'c'", "no images in either split")


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "{}\n"])
def test_empty_config_file_is_refused(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(text)
    _fails(["--config", str(cfg)], tmp_path, "is empty")


# -- item 7: one line instead of a traceback ------------------------------------------------


def test_out_naming_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    _fails(["--dataset", "nope"], tmp_path, "is a file", out=tmp_path / "f")
    _fails(["--dataset", "nope"], tmp_path, "is a file", out=tmp_path / "f" / "sub")
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_out_in_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _fails(["--dataset", "nope"], tmp_path, "cannot be written", out=ro / "run")
    finally:
        ro.chmod(0o755)


def test_out_that_cannot_be_written_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as root a chmod 0555 directory is still writable, so make the probe fail instead;
    # "--dataset nope" shows the check runs before the data set is looked at
    import tempfile

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", denied)
    _fails(["--dataset", "nope"], tmp_path, "cannot be written", "Permission denied")


def test_image_size_that_is_not_a_size(tmp_path: Path) -> None:
    _fails(["--dataset", "digits", "--image-size", "abc", *TINY], tmp_path, "image_size", "abc")


def test_unknown_executor_before_anything_is_written(tmp_path: Path) -> None:
    _fails(["--dataset", "nope", "--executor", "foo"], tmp_path, "executor", "'foo'", "ray")


def test_negative_workers_are_refused(tmp_path: Path) -> None:
    _fails(["--dataset", "digits", "--workers", "-3"], tmp_path, "--workers", "-3", ">= 0")


# -- item 8: bracketed text survives in messages --------------------------------------------


def test_error_messages_keep_bracketed_text(tmp_path: Path) -> None:
    msg = _fails(["--dataset", str(tmp_path / "[mydata]")], tmp_path, "[mydata]")
    assert f"{tmp_path}/[mydata]" in msg
    _fails(["--strategy", "[loop]", "--dataset", "digits"], tmp_path, "'[loop]'")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("seeds: [nan, nan]\n")
    _fails(["--config", str(cfg)], tmp_path, "['nan', 'nan']")


# -- item 9 ---------------------------------------------------------------------------------


def test_class_columns_are_unique_and_readable() -> None:
    from fishermask.experiments.store import class_columns

    assert class_columns(["cat", "dog"]) == ["acc_cat", "acc_dog"]
    assert class_columns(["日本", "中文"]) == ["acc_日本", "acc_中文"]
    assert class_columns(["a b", "a-b", "!!", "??"]) == [
        "acc_a_b",
        "acc_a_b_1",
        "acc_class",
        "acc_class_3",
    ]
    assert class_columns(["Ankle boot", "T-shirt/top"]) == ["acc_Ankle_boot", "acc_T_shirt_top"]


def test_small_run_columns_permissions_single_seed_and_resume(tmp_path: Path) -> None:
    data = _npz(tmp_path / "d.npz", np.arange(30) % 2, np.arange(8) % 2, ["日本", "中文"])
    out = tmp_path / "run"
    args = ["run", "--dataset", str(data), *TINY, "-s", "random", "--out", str(out)]
    old = os.umask(0o022)
    try:
        res = runner.invoke(app, [*args, "--seeds", "5,"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert "resuming" not in res.stderr
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["seed"] for r in rows} == {"5"}  # "5," is seed 5 alone, not seeds 0..4
    assert "acc_日本" in rows[0] and "acc_中文" in rows[0]
    files = ("results.csv", "queries.jsonl", "config.json", "summary.md", "learning_curves.png")
    for name in files:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    # the same command again: says it is complete; "[5]" is the same seed list
    res = runner.invoke(app, [*args, "--seeds", "[5]"])
    assert res.exit_code == 0, res.output
    assert f"{out} is complete (2 rounds)" in res.stderr


def test_resume_says_how_far_the_run_got(tmp_path: Path) -> None:
    data = _npz(tmp_path / "d.npz", np.arange(30) % 2, np.arange(8) % 2)
    out = tmp_path / "run"
    args = ["run", "--dataset", str(data), *TINY, "-s", "random", "--seeds", "2", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    for f in (out / "trials" / "random__seed1").iterdir():
        f.unlink()  # as if killed before seed 1 committed a round
    for f in (out / "trials" / "random__seed0").glob("model_*.pt"):
        f.unlink()  # a finished trial published without its checkpoint is still done
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"resuming {out}: 2 of 4 rounds were done earlier" in res.stderr


def test_a_changed_configuration_is_refused_without_saying_resuming(tmp_path: Path) -> None:
    """A different --lr in an existing --out used to print "resuming run: 2 of 4 rounds were
    done earlier" and then refuse the run."""
    data = _npz(tmp_path / "d.npz", np.arange(30) % 2, np.arange(8) % 2)
    out = tmp_path / "run"
    args = ["run", "--dataset", str(data), *TINY, "-s", "random", "--seeds", "1", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, [*args, "--lr", "0.002"])
    assert res.exit_code == 2, res.output
    assert "different configuration (differs in: config.train.lr)" in res.stderr
    assert "resuming" not in res.stderr and "is complete" not in res.stderr


def test_summary_table_in_a_log_keeps_strategy_labels_whole(tmp_path: Path) -> None:
    """Piped to a log, the table was cut to 80 columns: "fisherma…" could be fishermask or
    any of its labelled variants, and each row took two lines."""
    data = _npz(tmp_path / "d.npz", np.arange(30) % 2, np.arange(8) % 2)
    label = "random-with-a-long-label"
    args = ["run", "--dataset", str(data), *TINY, "-s", f"random:label={label}", "-s", "random"]
    res = runner.invoke(app, [*args, "--seeds", "1", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert any("strategy" in ln and "final accuracy (%)" in ln for ln in lines), res.stdout
    # the whole row on one line: its 7 cells between 8 rules
    assert any(f"│ {label} │" in ln and ln.count("│") == 8 for ln in lines), res.stdout


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"fishermask {__version__}"


def test_strategies_listing_shows_label_option() -> None:
    res = runner.invoke(app, ["strategies"])
    assert res.exit_code == 0
    blocks = res.stdout.split("\n")
    options = [line for line in blocks if "options:" in line]
    assert options and all("label=" in line for line in options)
    assert len(options) == sum(1 for line in blocks if line and not line.startswith(" "))


def test_a_warning_is_one_line_and_a_folder_named_like_an_embedded_set_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One's own folder `digits` was passed over for the embedded set without a word; and a
    warning of the library showed as Python's `file.py:79: UserWarning: ...` plus a source
    line."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()
    args = ["run", "--dataset", "digits", *TINY, "-s", "random", "--seeds", "1,"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert (
        "warning: 'digits' is the embedded data set, not the folder digits here; to read "
        "that, write ./digits.\n"
    ) in res.stderr
    assert "UserWarning" not in res.stderr and ".py:" not in res.stderr, res.stderr


def test_a_run_ends_cleanly_where_sigterm_had_a_handler_not_set_from_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """signal.getsignal (and signal.signal) return None for a handler that was not set from
    Python (a host that embeds Python set it): putting that None back raised TypeError after
    the run had finished, a traceback in place of its summary."""
    import signal

    real, original = signal.signal, signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def from_c(signum: int, handler: object) -> object:
        seen.append(handler)
        before = real(signum, handler)
        return None if len(seen) == 1 else before  # the first: as for a handler set in C

    monkeypatch.setattr(signal, "signal", from_c)
    # the run reads the handler before installing its own: None, as for one set in C
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)
    try:
        args = ["run", "--dataset", "digits", *TINY, "-s", "random", "--seeds", "1,"]
        res = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    finally:
        monkeypatch.undo()
        real(signal.SIGTERM, original)  # the run could not put it back
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert res.exit_code == 0, res.output
    assert seen and None not in seen
