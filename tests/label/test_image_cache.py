"""The decoded images' cache is keyed by what the images hold, not by where they lie: a
project copied or moved with its images (another machine, another folder) decodes nothing
again, and never takes pixels of other content."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fishermask.errors import DataError
from fishermask.label import images as imgs
from fishermask.label.project import Project
from tests.label.conftest import CLASSES, TINY, make_folder


def _tree(tmp_path: Path, fit: str = imgs.DEFAULT_FIT) -> tuple[Path, Path]:
    """A project beside its images (``tree/proj``, ``tree/images``), its images decoded."""
    images = make_folder(tmp_path / "tree" / "images")
    p = Project.init(tmp_path / "tree" / "proj", images, ",".join(CLASSES), fit=fit, **TINY)
    p.close()
    return tmp_path / "tree" / "proj", images


def _counting(monkeypatch) -> list[str]:
    """The relative paths :func:`imgs.read_one` decodes from now on."""
    decoded: list[str] = []
    read_one = imgs.read_one

    def counting(root, rel, *args):
        decoded.append(rel)
        return read_one(root, rel, *args)

    monkeypatch.setattr(imgs, "read_one", counting)
    return decoded


def _pixels(root: Path, p: Project) -> dict[str, np.ndarray]:
    """Each image of ``p`` decoded from ``root`` now, by relative path."""
    return {
        r.path: imgs.read_one(root, r.path, p.image_size, p.channels).pixels
        for r in p.store.images()
    }


@pytest.mark.parametrize("times", ["kept", "new"])
def test_a_copy_on_another_machine_decodes_nothing_again(tmp_path, monkeypatch, times):
    """The cache keys held the images' absolute paths: a project copied with its images to
    another machine or folder decoded every image again (an hour for a large folder)."""
    proj, images = _tree(tmp_path)
    copy = tmp_path / "machine2" / "work"
    # `cp -a` (times kept) or a plain `cp -r` (every file gets a new modification time)
    shutil.copytree(
        tmp_path / "tree", copy, copy_function=shutil.copy2 if times == "kept" else shutil.copy
    )
    # the original is not there (another machine): the copy finds its images beside it
    shutil.move(tmp_path / "tree", tmp_path / "away")
    expected = _pixels(tmp_path / "away" / "images", Project(tmp_path / "away" / "proj"))

    decoded = _counting(monkeypatch)
    p = Project(copy / "proj")
    assert p.root == copy / "images" and p.root_note is not None
    x, ids = p.images()
    assert decoded == []  # the pixels came from the cache
    by_id = {r.id: r.path for r in p.store.images()}
    for k, i in enumerate(ids):
        assert (x[k].numpy() == expected[by_id[i]]).all(), by_id[i]
    p.close()


def test_a_copy_whose_image_changed_is_refused_not_given_the_cached_pixels(tmp_path):
    """Copies of a project share its cache entries; one whose image now holds other content
    is refused as changed, as in place, never given the pixels cached for the original."""
    proj, images = _tree(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "tree", copy)
    shutil.move(tmp_path / "tree", tmp_path / "away")
    target = copy / "images" / "red" / "000.png"
    st = target.stat()
    a = np.asarray(Image.open(target)).copy()
    a[0, 0] = 255 - a[0, 0]
    Image.fromarray(a).save(target)
    assert target.stat().st_size == st.st_size  # the same size: only the content tells
    p = Project(copy / "proj")
    with pytest.raises(DataError, match=r"red/000.png changed since it was scanned"):
        p.images()
    p.close()
    q = Project(tmp_path / "away" / "proj")  # the original is served as before
    x, _ = q.images()
    assert len(x) == 24
    q.close()


def _earlier_version(proj: Path, images: Path) -> tuple[Path, np.ndarray]:
    """The project's cache as an earlier version wrote it (keyed by the files' absolute paths,
    sizes and times), and the pixels in it."""
    from fishermask.data import cache

    p = Project(proj)
    pid, size, ch = p.settings["project_id"], p.image_size, p.channels
    rows = p.store.images()
    x_new, _ = p.images()
    for f in p.cache_dir.glob("*.pt"):
        f.unlink()  # no entry of this version: only the earlier one below
    legacy = images / f".fishermask-label-{pid}-segment-0"
    files = [images / r.path for r in rows]
    built = imgs.segment_dataset(x_new.numpy(), legacy.name)
    cache.cached(p.cache_dir, f"label-c{ch}", legacy, files, size, lambda: built)
    [old] = p.cache_dir.glob("*.pt")
    p.close()
    return old, x_new


def test_a_cache_entry_of_an_earlier_version_is_read_not_decoded_again(tmp_path, monkeypatch):
    """Entries written before the cache keyed content (keyed by the files' absolute paths,
    sizes and times) are read once and kept under the new key, not decoded again. (Earlier
    versions stretched every image: their projects read as ``stretch``.)"""
    proj, images = _tree(tmp_path, fit="stretch")
    old, x_new = _earlier_version(proj, images)

    decoded = _counting(monkeypatch)
    p = Project(proj)
    x, _ = p.images()
    assert decoded == [] and (x == x_new).all()
    assert not old.exists()  # taken over by the entry of this version
    p._decoded = None
    assert (p.images()[0] == x_new).all() and decoded == []
    p.close()


def test_repointing_takes_over_an_entry_of_an_earlier_version(tmp_path, monkeypatch):
    """`label config --images NEW` re-keyed an earlier version's entries to the new paths;
    it now takes them over under the content key (the old folder gone: the old entry too)."""
    from tests.label.test_label_cli import _run

    proj, images = _tree(tmp_path, fit="stretch")
    old, x_new = _earlier_version(proj, images)
    new = tmp_path / "disk2" / "photos"
    shutil.copytree(images, new)
    shutil.rmtree(images)
    r = _run("config", proj, "--images", new, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "the decoded images of 1 of 1 scans were kept" in r.stderr.replace("\n", " ")
    assert not old.exists()
    decoded = _counting(monkeypatch)
    p = Project(proj)
    x, _ = p.images()
    assert decoded == [] and (x == x_new).all()
    p.close()


def test_an_entry_is_never_shared_by_images_of_other_content(tmp_path):
    """The same relative paths, sizes and modification times in two folders, other
    content: two keys (a project and its copy whose folder was swapped for other images
    are told apart by content, not by place)."""
    a = make_folder(tmp_path / "a", per_class=1)
    b = make_folder(tmp_path / "b", per_class=1, seed=3)
    rows_a, rows_b = [], []
    for rel in sorted(str(f.relative_to(a).as_posix()) for f in a.rglob("*.png")):
        st = (a / rel).stat()
        os.utime(b / rel, ns=(st.st_atime_ns, st.st_mtime_ns))
        for root, rows in ((a, rows_a), (b, rows_b)):
            f = imgs.read_one(root, rel, (8, 8), 3)
            rows.append(f)
    assert [f.bytes for f in rows_a] == [f.bytes for f in rows_b]
    cache_dir = tmp_path / "cache"
    xa = imgs.segment_images(cache_dir, a, "p", 0, rows_a, (8, 8), 3, fit="stretch")
    xb = imgs.segment_images(cache_dir, b, "p", 0, rows_b, (8, 8), 3, fit="stretch")
    assert (xa.numpy() == np.stack([f.pixels for f in rows_a])).all()
    assert (xb.numpy() == np.stack([f.pixels for f in rows_b])).all()
    assert not (xa == xb).all()


def test_an_earlier_stretched_entry_is_not_taken_for_a_padded_project(tmp_path, monkeypatch):
    """An earlier version's entry holds stretched pixels (the only fit it had): a project that
    pads never takes it over, it decodes its own."""
    proj, images = _tree(tmp_path, fit="pad")
    old, x_pad = _earlier_version(proj, images)
    decoded = _counting(monkeypatch)
    p = Project(proj)
    x, _ = p.images()
    assert len(decoded) == len(p.store.images()) and (x == x_pad).all()
    p.close()
