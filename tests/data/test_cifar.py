"""CIFAR-10 python pickle batches."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from fishermask.data import load_dataset
from fishermask.data.cifar import CIFAR10_CLASSES
from fishermask.errors import DataError


def test_batches_in_order(tmp_path, write_cifar):
    folder = write_cifar(tmp_path / "cifar", per_batch=2)
    ds = load_dataset(folder)
    assert ds.image_shape == (3, 32, 32) and ds.x_train.dtype == torch.uint8
    assert len(ds.x_train) == 10 and len(ds.x_test) == 2
    assert ds.x_train[:, 0, 0, 0].tolist() == [10, 11, 20, 21, 30, 31, 40, 41, 50, 51]
    assert ds.y_train.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert ds.x_test[:, 2, 31, 31].tolist() == [200, 201] and ds.y_test.tolist() == [0, 1]
    assert ds.classes == tuple(f"c{i}" for i in range(10))  # from batches.meta


def test_pixel_layout_is_rgb_planes(tmp_path, write_cifar):
    folder = write_cifar(tmp_path / "cifar", per_batch=1)
    batch = pickle.loads((folder / "test_batch").read_bytes())
    row = np.arange(3072) % 251
    batch[b"data"] = row[None].astype(np.uint8)
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    ds = load_dataset(folder)
    assert torch.equal(ds.x_test[0].flatten(), torch.from_numpy(row.astype(np.uint8)))


def test_subfolder_and_standard_names(tmp_path, write_cifar):
    write_cifar(tmp_path / "dl" / "cifar-10-batches-py", meta=False)
    ds = load_dataset(tmp_path / "dl")
    assert ds.classes == CIFAR10_CLASSES and ds.classes[1] == "automobile"


def test_resize_with_image_size(tmp_path, write_cifar):
    ds = load_dataset(write_cifar(tmp_path / "c"), image_size=(8, 8), cache_dir=tmp_path / "k")
    assert ds.image_shape == (3, 8, 8) and int(ds.x_train[0].float().mean()) == 10


def test_missing_batch(tmp_path, write_cifar):
    folder = write_cifar(tmp_path / "cifar")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing CIFAR-10 batch .*data_batch_3"):
        load_dataset(folder)


def test_labels_out_of_range(tmp_path, write_cifar):
    folder = write_cifar(tmp_path / "cifar")
    batch = pickle.loads((folder / "data_batch_2").read_bytes())
    batch[b"labels"] = [3, 12]
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch))
    with pytest.raises(
        DataError, match=r"data_batch_2: labels range over \[3, 12\] but there are 10"
    ):
        load_dataset(folder)


def test_corrupt_batch(tmp_path, write_cifar):
    folder = write_cifar(tmp_path / "cifar")
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="cannot read CIFAR-10 batch .*test_batch"):
        load_dataset(folder)


def test_code_in_pickle_is_refused(tmp_path, write_cifar):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = write_cifar(tmp_path / "cifar")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_dataset(folder)


def test_wrong_shape(tmp_path, write_cifar):
    folder = write_cifar(tmp_path / "cifar")
    d = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(d))
    with pytest.raises(DataError, match=r"must be uint8 \[N, 3072\], got uint8 \(2, 100\)"):
        load_dataset(folder)
