"""NumPy .npz data sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fishermask.data import load_dataset
from fishermask.errors import DataError


def save(path, x_train, x_test=None, y_train=None, y_test=None, **extra):
    x_test = x_train[:2] if x_test is None else x_test
    y_train = np.arange(len(x_train)) % 3 if y_train is None else y_train
    y_test = np.arange(len(x_test)) % 3 if y_test is None else y_test
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return path


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((5, 6, 7), (1, 6, 7)), ((5, 6, 7, 3), (3, 6, 7)), ((5, 6, 7, 1), (1, 6, 7)),
     ((5, 3, 6, 7), (3, 6, 7)), ((5, 1, 6, 7), (1, 6, 7))],
)  # fmt: skip
def test_layouts(tmp_path, shape, expected):
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    ds = load_dataset(save(tmp_path / "d.npz", x))
    assert ds.image_shape == expected and ds.x_train.dtype == torch.uint8
    assert ds.y_train.dtype == torch.int64 and ds.classes == ("0", "1", "2")
    if len(shape) == 4 and shape[-1] == 3:
        assert torch.equal(ds.x_train, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert ds.name == "d"


def test_float_images_are_scaled_and_classes_read(tmp_path):
    x = np.full((3, 4, 4), 0.5, np.float32)
    ds = load_dataset(save(tmp_path / "d.npz", x, classes=np.array(["a", "b", "c", "d"])))
    assert ds.classes == ("a", "b", "c", "d") and int(ds.x_train.max()) == 128


@pytest.mark.parametrize(
    ("x", "match"),
    [(np.full((3, 4, 4), 2.0), r"float images must lie in \[0, 1\], found \[2, 2\]"),
     (np.full((3, 4, 4), np.nan), "float images must lie in"),
     (np.zeros((3, 4, 4), np.int64), "images have dtype int64; use uint8"),
     (np.zeros((3, 4, 4, 5), np.uint8), "no channel axis of size 1 or 3"),
     (np.zeros((3, 3, 4, 3), np.uint8), "ambiguous"),
     (np.zeros((3, 16), np.uint8), "images must be")],
)  # fmt: skip
def test_bad_images(tmp_path, x, match):
    with pytest.raises(DataError, match=match):
        load_dataset(save(tmp_path / "d.npz", x))


def test_labels_out_of_range(tmp_path):
    path = save(tmp_path / "d.npz", np.zeros((3, 4, 4), np.uint8), classes=np.array(["a", "b"]))
    with pytest.raises(
        DataError, match=r"y_train: labels range over \[0, 2\] but there are 2 classes"
    ):
        load_dataset(path)


def test_negative_and_float_labels(tmp_path):
    x = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(DataError, match=r"labels range over \[-1, 1\]"):
        load_dataset(save(tmp_path / "a.npz", x, y_train=np.array([0, -1, 1])))
    with pytest.raises(DataError, match="labels must be a 1-D integer array, got float64"):
        load_dataset(save(tmp_path / "b.npz", x, y_train=np.array([0.0, 1.0, 1.0])))


def test_missing_split(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.arange(2))
    with pytest.raises(DataError, match="lacks x_test, y_test"):
        load_dataset(tmp_path / "d.npz")


def test_object_classes_are_refused(tmp_path):
    path = save(
        tmp_path / "d.npz", np.zeros((3, 4, 4), np.uint8), classes=np.array([1, "b"], object)
    )
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(path)


def test_corrupt_file(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="cannot read .*d.npz"):
        load_dataset(tmp_path / "d.npz")


def test_uint16_images_are_scaled_to_eight_bits(tmp_path):
    x = np.array([0, 257, 30000, 65535], np.uint16)[None, None, :].repeat(3, 0)  # [3, 1, 4]
    x = np.broadcast_to(x, (3, 4, 4)).copy()  # [N=3, H=4, W=4]
    ds = load_dataset(save(tmp_path / "d.npz", x))
    assert ds.x_train[0, 0, 0].tolist() == [0, 1, 117, 255]
