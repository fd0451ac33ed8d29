"""The decoded-data cache: used on the second load, keyed by mtime, size and image_size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import fishermask.data.folder as folder
from fishermask.data import CACHE_ENV, load_dataset, resolve_cache_dir
from fishermask.errors import DataError


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Names of the images decoded by the folder loader (counts cache misses)."""
    seen: list[str] = []
    real = folder.decode_image

    def counting(source, name, image_size):
        seen.append(name)
        return real(source, name, image_size)

    monkeypatch.setattr(folder, "decode_image", counting)
    return seen


@pytest.fixture
def archive(tmp_path, write_tar, tree_members) -> Path:
    return write_tar(tmp_path / "tiny.tar.gz", tree_members(prefix="tiny/"))


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pt"))


def same(a, b) -> bool:
    return (
        a.classes == b.classes
        and a.name == b.name
        and all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "y_train", "x_test"))
        and torch.equal(a.y_test, b.y_test)
    )


def test_second_load_uses_the_cache(tmp_path, archive, decodes):
    cache = tmp_path / "cache"
    first = load_dataset(archive, cache_dir=cache)
    assert len(decodes) == 10 and len(entries(cache)) == 1
    second = load_dataset(archive, cache_dir=cache)
    assert len(decodes) == 10  # nothing decoded again
    assert same(first, second)
    assert second.x_train.dtype == torch.uint8 and second.y_train.dtype == torch.int64
    assert not [p for p in cache.iterdir() if p.suffix != ".pt"]  # no temporary files left


def test_cache_is_keyed_by_mtime(tmp_path, archive, decodes):
    cache = tmp_path / "cache"
    load_dataset(archive, cache_dir=cache)
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_dataset(archive, cache_dir=cache)
    assert len(decodes) == 20
    assert len(entries(cache)) == 1  # the stale entry of the same source was replaced


def test_cache_is_keyed_by_image_size(tmp_path, archive, decodes):
    cache = tmp_path / "cache"
    small = load_dataset(archive, cache_dir=cache, image_size=(2, 3))
    load_dataset(archive, cache_dir=cache, image_size=(2, 3))
    assert len(decodes) == 10 and small.image_shape == (1, 2, 3)
    assert load_dataset(archive, cache_dir=cache).image_shape == (1, 4, 6)
    assert len(decodes) == 20


def test_directory_tree_is_keyed_by_its_files(tmp_path, write_tree, encode, decodes):
    cache, root = tmp_path / "cache", write_tree(tmp_path / "tiny")
    load_dataset(root, cache_dir=cache)
    load_dataset(root, cache_dir=cache)
    assert len(decodes) == 10
    # change one image deep in the tree: the root folder's own mtime does not change
    (root / "train" / "cat" / "a.png").write_bytes(encode(77, size=(4, 6)))
    st = (root / "train" / "cat" / "a.png").stat()
    os.utime(root / "train" / "cat" / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds = load_dataset(root, cache_dir=cache)
    assert len(decodes) == 20 and int(ds.x_train[2, 0, 0, 0]) == 77


def test_cache_dir_from_environment(tmp_path, archive, monkeypatch, decodes):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env-cache"))
    assert resolve_cache_dir() == tmp_path / "env-cache"
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    load_dataset(archive)
    assert len(entries(tmp_path / "env-cache")) == 1


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_cache_dir() == tmp_path / ".cache" / "fishermask"


def test_corrupt_entry_is_rebuilt(tmp_path, archive, decodes):
    cache = tmp_path / "cache"
    first = load_dataset(archive, cache_dir=cache)
    (entry,) = entries(cache)
    entry.write_bytes(entry.read_bytes()[:100])
    with pytest.warns(UserWarning, match="ignoring unreadable cache entry"):
        again = load_dataset(archive, cache_dir=cache)
    assert len(decodes) == 20 and same(first, again)
    load_dataset(archive, cache_dir=cache)
    assert len(decodes) == 20  # rewritten


def test_unwritable_cache_only_warns(tmp_path, archive):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="could not write the data cache"):
        ds = load_dataset(archive, cache_dir=blocker / "cache")
    assert len(ds.x_train) == 6


def test_array_formats_cached_only_when_resized(tmp_path):
    cache = tmp_path / "cache"
    path = tmp_path / "a.npz"
    x = np.zeros((4, 5, 5), np.uint8)
    np.savez(path, x_train=x, y_train=np.arange(4), x_test=x[:2], y_test=np.arange(2))
    load_dataset(path, cache_dir=cache)
    assert not cache.exists()
    assert load_dataset(path, cache_dir=cache, image_size=(3, 3)).image_shape == (1, 3, 3)
    assert len(entries(cache)) == 1


def test_broken_link_in_tree(tmp_path, write_tree):
    root = write_tree(tmp_path / "tiny")
    (root / "train" / "cat" / "gone.png").symlink_to(tmp_path / "missing.png")
    with pytest.raises(DataError, match="cannot read .*gone.png"):
        load_dataset(root, cache_dir=tmp_path / "cache")


def test_tests_keep_the_data_cache_out_of_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    # tests/conftest.py: a test that loads data without a cache_dir used to write to
    # ~/.cache/fishermask; the session's cache is under pytest's temporary folder
    base = tmp_path_factory.getbasetemp().resolve()
    assert resolve_cache_dir().resolve().is_relative_to(base)
    assert not resolve_cache_dir().resolve().is_relative_to(Path.home().resolve() / ".cache")
