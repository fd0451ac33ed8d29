"""Format detection, unknown sources and the real CIFAR-10 archive."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fishermask.data import detect_format, load_dataset
from fishermask.data.folder import list_archive, resolve_layout
from fishermask.errors import ConfigError, DataError

CIFAR_TAR = (
    Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
)


def test_detection(tmp_path, write_tree, write_tar, tree_members, write_cifar, write_idx):
    np.savez(tmp_path / "a.npz", x=np.zeros(1))
    cases = {
        tmp_path / "a.npz": "npz",
        write_tree(tmp_path / "tree"): "folder",
        write_tar(tmp_path / "t.tgz", tree_members()): "folder",
        write_cifar(tmp_path / "cifar"): "cifar",
        write_idx(tmp_path / "mnist"): "idx",
    }
    for path, name in cases.items():
        assert detect_format(path).name == name, path


def test_unknown_name():
    with pytest.raises(DataError) as err:
        load_dataset("cifar10")
    msg = str(err.value)
    assert "no data set 'cifar10'" in msg and "mnist5k, digits" in msg
    assert ".tar.gz" in msg and "CIFAR-10" in msg and "IDX" in msg and ".npz" in msg
    assert "did you mean" not in msg  # nothing close
    with pytest.raises(DataError, match=r"\.\.\.\); did you mean 'mnist5k'\?$"):
        load_dataset("mnst5k")
    with pytest.raises(DataError, match=r"\.\.\.\)\.$"):  # a path is no misspelt name
        load_dataset("data/mnst5k")


def test_a_relative_path_not_found_says_where_it_was_looked_for(tmp_path, monkeypatch):
    # a config file's `dataset: ../shared/x.tar.gz`, run from another folder: the path is
    # taken from the current directory, not from the file's, which the message did not say
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset("../shared/x.tar.gz")
    assert (
        f"no data set '../shared/x.tar.gz': not an embedded name nor an existing path (relative "
        f"paths are taken from the current directory, {tmp_path}, not from a config file's); "
    ) in str(err.value)
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / "absent")
    assert "current directory" not in str(err.value)


def test_an_embedded_name_that_is_also_a_folder_here_warns(tmp_path, monkeypatch):
    # one's own folder named `digits` was passed over for the embedded set without a word
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()
    with pytest.warns(UserWarning) as caught:
        ds = load_dataset("digits")
    assert ds.num_classes == 10 and len(caught) == 1
    assert str(caught[0].message) == (
        "'digits' is the embedded data set, not the folder digits here; to read that, "
        "write ./digits."
    )


def test_unrecognised_path(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "notes.txt", tmp_path / "empty"):
        with pytest.raises(DataError, match="cannot recognise the data set format of .*accepted"):
            load_dataset(path)


def test_bad_image_size():
    with pytest.raises(ConfigError, match=r"`image_size`=\(0, 3\), must be two positive"):
        load_dataset("digits", image_size=(0, 3))


def test_messages_are_single_lines(tmp_path):
    for source in ("nope", tmp_path):
        with pytest.raises(DataError) as err:
            load_dataset(source)
        assert "\n" not in str(err.value)


@pytest.mark.skipif(not CIFAR_TAR.is_file(), reason="real CIFAR-10 archive not present")
def test_real_cifar_archive_listing():
    assert detect_format(CIFAR_TAR).name == "folder"
    layout = resolve_layout(list_archive(CIFAR_TAR), str(CIFAR_TAR), str)
    assert len(layout.files["train"]) == 50_000 and len(layout.files["test"]) == 10_000
    assert (
        layout.classes[:3] == ("airplane", "automobile", "bird") and layout.classes[-1] == "truck"
    )


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR_TAR.is_file(), reason="real CIFAR-10 archive not present")
@pytest.mark.skipif(
    os.environ.get("FISHERMASK_TEST_FULL_CIFAR") != "1",
    reason="decodes 60 000 JPEGs (10-30 s); set FISHERMASK_TEST_FULL_CIFAR=1 to run",
)
def test_real_cifar_full_decode(tmp_path):
    ds = load_dataset(CIFAR_TAR, cache_dir=tmp_path)
    assert ds.image_shape == (3, 32, 32) and ds.class_counts("test") == [1000] * 10
    means = (ds.x_train.float().mean(dim=(0, 2, 3)) / 255).tolist()
    assert means == pytest.approx([0.491, 0.482, 0.447], abs=0.005)
