"""The paper's class-imbalance presets and general class counts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fishermask.data import PRESETS, apply_preset
from fishermask.errors import ConfigError, DataError


def test_class_counts_subsample_and_relabel(synthetic):
    ds = synthetic(per_class=(6, 8, 5, 7), n_test=3)
    out = apply_preset(ds, class_counts=[2, 0, 5], seed=3)
    assert out.classes == ("class0", "class2")
    assert out.class_counts() == [2, 5]
    # every kept image is an original one of the right class, in original order
    values = out.x_train[:, 0, 0, 0].long()
    assert values.tolist() == sorted(values.tolist())
    assert torch.equal(ds.y_train[values], torch.tensor([0, 2])[out.y_train])
    assert values.unique().numel() == 7
    # test split: all test images of the kept classes, relabelled
    assert out.y_test.tolist() == [0, 0, 0, 1, 1, 1]
    assert out.x_test[:, 0, 0, 0].tolist() == [100, 101, 102, 106, 107, 108]
    assert out.x_train.dtype == torch.uint8 and out.y_train.dtype == torch.int64


def test_deterministic_under_seed(synthetic):
    ds = synthetic()
    a = apply_preset(ds, class_counts=[3, 3, 3, 3], seed=5)
    b = apply_preset(ds, class_counts=[3, 3, 3, 3], seed=5)
    c = apply_preset(ds, class_counts=[3, 3, 3, 3], seed=6)
    assert torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_train, c.x_train)


def test_class_draw_does_not_depend_on_other_counts(synthetic):
    ds = synthetic()
    a = apply_preset(ds, class_counts=[1, 4], seed=0)
    b = apply_preset(ds, class_counts=[5, 4], seed=0)
    assert torch.equal(a.x_train[a.y_train == 1], b.x_train[b.y_train == 1])


def test_full_count_keeps_the_class(synthetic):
    ds = synthetic()
    out = apply_preset(ds, class_counts=[6, 8, 5, 7])
    assert out.class_counts() == ds.class_counts() and torch.equal(out.x_train, ds.x_train)


def test_setting1_and_setting2(synthetic):
    ds = synthetic(per_class=(300, 5000, 300, 300, 260, 260, 260, 260, 260, 5000), n_test=2)
    s1 = apply_preset(ds, "setting1")
    assert s1.class_counts() == [250, 5000, 250, 250] and len(s1.x_train) == 5750
    assert s1.classes == ds.classes[:4] and s1.class_counts("test") == [2, 2, 2, 2]
    s2 = apply_preset(ds, "setting2")
    assert s2.class_counts() == [250] * 9 + [5000] and len(s2.x_train) == 7250
    assert s2.classes == ds.classes and len(s2.x_test) == 20
    assert PRESETS["setting1"] == (250, 5000, 250, 250)


def test_no_preset_returns_the_data_set(synthetic):
    ds = synthetic()
    assert apply_preset(ds) is ds


def test_too_many_images(synthetic):
    ds = synthetic(per_class=(300, 4000, 300, 300))
    ds = replace(ds, classes=("airplane", "automobile", "bird", "cat"))
    with pytest.raises(DataError) as err:
        apply_preset(ds, "setting1")
    assert str(err.value).startswith(
        "preset setting1 asks for 5000 images of class 1 'automobile' but the train split has "
        "only 4000"
    )
    with pytest.raises(DataError, match="class_counts asks for 301 images of class 0 'airplane'"):
        apply_preset(ds, class_counts=[301])


def test_errors(synthetic):
    ds = synthetic()
    with pytest.raises(
        ConfigError, match="Unknown preset 'setting3'; supported: setting1, setting2"
    ):
        apply_preset(ds, "setting3")
    with pytest.raises(ConfigError, match=r"setting2; did you mean 'setting1' or 'setting2'\?$"):
        apply_preset(ds, "setting3")
    with pytest.raises(ConfigError, match="both preset 'setting1' and class_counts"):
        apply_preset(ds, "setting1", class_counts=[1])
    with pytest.raises(DataError, match="preset setting2 needs 10 classes but synthetic has 4"):
        apply_preset(ds, "setting2")
    with pytest.raises(ConfigError, match="must hold integers >= 0"):
        apply_preset(ds, class_counts=[1, -2])
    with pytest.raises(ConfigError, match="keeps no class"):
        apply_preset(ds, class_counts=[0, 0])
