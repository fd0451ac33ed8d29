"""MNIST / FashionMNIST IDX files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from fishermask.data import load_dataset
from fishermask.data.idx import FASHION_CLASSES
from fishermask.errors import DataError


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files(tmp_path, write_idx, gz):
    ds = load_dataset(write_idx(tmp_path / "mnist", n_train=12, n_test=4, gz=gz))
    assert ds.image_shape == (1, 5, 3) and ds.x_train.dtype == torch.uint8
    assert ds.x_train[:, 0, 4, 2].tolist() == list(range(12))
    assert ds.y_train.tolist() == [i % 10 for i in range(12)] and ds.y_test.tolist() == [0, 1, 2, 3]
    assert ds.classes == tuple("0123456789") and ds.name == "mnist"


def test_fashion_names_and_torchvision_layout(tmp_path, write_idx):
    write_idx(tmp_path / "FashionMNIST" / "raw")
    ds = load_dataset(tmp_path / "FashionMNIST")
    assert ds.classes == FASHION_CLASSES and ds.classes[0] == "T-shirt/top"
    assert ds.name == "FashionMNIST"


def test_missing_file(tmp_path, write_idx):
    folder = write_idx(tmp_path / "mnist")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing IDX file .*t10k-labels-idx1-ubyte"):
        load_dataset(folder)


def test_magic_mismatch(tmp_path, write_idx, encode_idx):
    folder = write_idx(tmp_path / "mnist", gz=False)
    (folder / "train-images-idx3-ubyte").write_bytes(encode_idx(np.zeros(6, np.uint8)))
    with pytest.raises(DataError, match="IDX magic 0x00000801 but an image file needs 0x00000803"):
        load_dataset(folder)


def test_size_mismatch(tmp_path, write_idx, encode_idx):
    folder = write_idx(tmp_path / "mnist")
    data = encode_idx(np.zeros((6, 5, 3), np.uint8))[:-7]
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data))
    with pytest.raises(
        DataError, match=r"99 bytes but its IDX header \(dims \[6, 5, 3\]\) implies 106"
    ):
        load_dataset(folder)


def test_labels_out_of_range(tmp_path, write_idx, encode_idx):
    folder = write_idx(tmp_path / "mnist", gz=False)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(np.array([0, 1, 2, 11], np.uint8)))
    with pytest.raises(DataError, match=r"labels range over \[0, 11\] but there are 10 classes"):
        load_dataset(folder)


def test_count_mismatch(tmp_path, write_idx, encode_idx):
    folder = write_idx(tmp_path / "mnist", gz=False)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(np.array([0, 1], np.uint8)))
    with pytest.raises(DataError, match="holds 4 images but .* holds 2 labels"):
        load_dataset(folder)


def test_corrupt_gzip(tmp_path, write_idx):
    folder = write_idx(tmp_path / "mnist")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="cannot read IDX file"):
        load_dataset(folder)
