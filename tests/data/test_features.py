"""Features you bring: a .npy aligned with the images, or a backbone run once and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fishermask.data import apply_preset, load_dataset
from fishermask.data.features import attach_features, backbone_features
from fishermask.errors import DataError


def _digit_features(tmp_path: Path) -> tuple[Path, np.ndarray]:
    ds = load_dataset("digits")
    flat = torch.cat([ds.x_train, ds.x_test]).flatten(1).numpy().astype(np.float32)
    arr = np.concatenate([flat, np.arange(len(flat), dtype=np.float32)[:, None]], axis=1)
    path = tmp_path / "f.npy"
    np.save(path, arr)
    return path, arr


def test_features_replace_the_images_row_for_row_through_a_preset(tmp_path: Path) -> None:
    path, arr = _digit_features(tmp_path)
    ds = load_dataset("digits")
    feat = attach_features(ds, path)
    assert feat.x_train.dtype == torch.float32 and feat.image_shape == (65, 1, 1)
    assert torch.equal(feat.y_train, ds.y_train) and torch.equal(feat.y_test, ds.y_test)
    # the preset picks the same rows of the features as of the images
    pre_img = apply_preset(ds, class_counts=[20, 30, 0, 10])
    pre_feat = apply_preset(feat, class_counts=[20, 30, 0, 10])
    assert torch.equal(pre_feat.x_train[:, :64, 0, 0], pre_img.x_train.flatten(1).float())
    assert torch.equal(pre_feat.x_test[:, :64, 0, 0], pre_img.x_test.flatten(1).float())
    assert torch.equal(pre_feat.y_train, pre_img.y_train)


def test_features_file_errors(tmp_path: Path) -> None:
    ds = load_dataset("digits")
    with pytest.raises(DataError, match="does not exist"):
        attach_features(ds, tmp_path / "none.npy")
    np.save(tmp_path / "short.npy", np.zeros((10, 4), np.float32))
    with pytest.raises(DataError, match=r"10 rows of features, but digits has 1437 train \+ 360"):
        attach_features(ds, tmp_path / "short.npy")
    bad = np.zeros((1797, 4), np.float32)
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="NaN or infinite"):
        attach_features(ds, tmp_path / "nan.npy")
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(DataError, match="Cannot read features file"):
        attach_features(ds, tmp_path / "text.npy")


class _Pool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script/save in 2.10+
@pytest.mark.parametrize("kind", ["torchscript", "pickle"])
def test_backbone_features_are_computed_once_and_cached(tmp_path: Path, kind: str) -> None:
    ds = load_dataset("digits")
    path = tmp_path / "backbone.pt"
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(_Pool()), str(path))
    else:
        torch.save(_Pool(), path)
    cache = tmp_path / "cache"
    feat = backbone_features(ds, path, cache_dir=cache)
    x = torch.cat([ds.x_train, ds.x_test]).float() / 255.0
    want = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
    got = torch.cat([feat.x_train, feat.x_test])[:, :, 0, 0]
    assert torch.allclose(got, want)
    entries = list(cache.glob("features-backbone-*.npy"))
    assert len(entries) == 1
    # the second call reads the cache: poison the entry and see it come back
    np.save(entries[0], np.ones((len(x), 2), np.float32))
    again = backbone_features(ds, path, cache_dir=cache)
    assert torch.equal(again.x_train, torch.ones(len(ds.y_train), 2, 1, 1))


def test_backbone_errors(tmp_path: Path) -> None:
    ds = load_dataset("digits")
    with pytest.raises(DataError, match="does not exist"):
        backbone_features(ds, tmp_path / "nope.pt", cache_dir=tmp_path)
    torch.save({"w": torch.ones(2)}, tmp_path / "sd.pt")
    with pytest.raises(DataError, match="holds a dict, not a module"):
        backbone_features(ds, tmp_path / "sd.pt", cache_dir=tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="Cannot load backbone"):
        backbone_features(ds, tmp_path / "junk.pt", cache_dir=tmp_path)
