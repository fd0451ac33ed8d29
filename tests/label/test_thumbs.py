"""Thumbnails of the Labeled grid (GET /api/images/{id}?size=thumb): small, cached under the
project by content hash, refused like the full image when the file changed."""

from __future__ import annotations

import contextlib
import io
import os
import threading

import numpy as np
import pytest
from PIL import Image

from fishermask.label import thumbs
from tests.label.conftest import AUTH, api_client


@pytest.fixture
def big(project):
    """The ``project`` with three large files scanned in: a JPEG photo 640x480, a JPEG
    turned by EXIF (480 wide, 320 high, shown 320 wide), a transparent PNG 600x400; their ids
    by name."""
    rng = np.random.default_rng(3)
    root = project.root / "big"
    root.mkdir()
    photo = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    Image.fromarray(photo).save(root / "photo.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(photo[:320, :480]).save(root / "turned.jpg", exif=exif.tobytes())
    rgba = rng.integers(0, 256, size=(400, 600, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(root / "clear.png")
    added, unreadable = project.scan()
    assert added == 3 and not unreadable
    ids = project.store.image_ids_by_path()
    return {n: ids[f"big/{n}"] for n in ("photo.jpg", "turned.jpg", "clear.png")}


def _thumb(c, image_id):
    return c.get(f"/api/images/{image_id}", params={"size": "thumb"}, headers=AUTH)


def test_a_thumbnail_is_at_most_160_pixels_and_much_smaller_than_the_file(project, big):
    with api_client(project.dir) as c:
        for name, want, media in (
            ("photo.jpg", (160, 120), "image/jpeg"),
            ("turned.jpg", (107, 160), "image/jpeg"),  # shown upright, as the browser shows it
            ("clear.png", (160, 107), "image/png"),
        ):
            r = _thumb(c, big[name])
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == media
            with Image.open(io.BytesIO(r.content)) as im:
                assert im.size == want, name
                assert (im.mode == "RGBA") == (name == "clear.png")
            full = c.get(f"/api/images/{big[name]}", headers=AUTH)
            assert full.status_code == 200 and len(r.content) < len(full.content) / 4
        small = c.get("/api/images/1", params={"size": "thumb"}, headers=AUTH)  # 8x8: not enlarged
        with Image.open(io.BytesIO(small.content)) as im:
            assert im.size == (8, 8)
        r = c.get("/api/images/1", params={"size": "huge"}, headers=AUTH)
        assert r.status_code == 400 and "use full" in r.json()["error"]


def test_a_thumbnail_is_made_once_and_then_read_from_the_cache(project, big, monkeypatch):
    with api_client(project.dir) as c:
        first = _thumb(c, big["photo.jpg"])
        sha = c.project.store.image(big["photo.jpg"]).sha256
        cached = project.dir / "thumbs" / f"{sha}-160-jpg"
        assert cached.read_bytes() == first.content

        def fail(*args, **kwargs):
            raise AssertionError("made again")

        monkeypatch.setattr(thumbs, "make", fail)
        again = _thumb(c, big["photo.jpg"])
        assert again.status_code == 200 and again.content == first.content
        assert [p.name for p in (project.dir / "thumbs").iterdir()] == [cached.name]


def test_a_changed_file_is_409_not_its_old_thumbnail(project, big):
    with api_client(project.dir) as c:
        assert _thumb(c, big["photo.jpg"]).status_code == 200  # cached
        path = project.root / "big" / "photo.jpg"
        Image.fromarray(np.zeros((480, 640, 3), dtype=np.uint8)).save(path)
        r = _thumb(c, big["photo.jpg"])
        full = c.get(f"/api/images/{big['photo.jpg']}", headers=AUTH)
        assert r.status_code == full.status_code == 409
        assert r.json()["error"] == full.json()["error"]
        assert "big/photo.jpg changed since it was scanned" in r.json()["error"]


def test_the_batch_view_gets_a_photo_at_most_1024_pixels_and_a_small_file_as_it_is(project):
    """`size=view` (what the batch view shows, in a frame about 310 pixels tall): a photo of
    2000 x 1500 was sent whole; now at most 1024 a side (upright, cached by content), while
    a file that fits is sent as it is, byte for byte."""
    rng = np.random.default_rng(4)
    root = project.root / "photos"
    root.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    big = rng.integers(0, 256, size=(1500, 2000, 3), dtype=np.uint8)
    Image.fromarray(big).save(root / "big.jpg", quality=95, exif=exif.tobytes())
    Image.fromarray(big[:480, :640]).save(root / "fits.jpg", quality=95)
    assert project.scan()[0] == 2
    ids = project.store.image_ids_by_path()
    sha = {r.path: r.sha256 for r in project.store.images()}
    with api_client(project.dir) as c:
        r = c.get(f"/api/images/{ids['photos/big.jpg']}", params={"size": "view"}, headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(r.content)) as im:
            assert im.size == (768, 1024)  # upright, as the browser shows the file
        full = c.get(f"/api/images/{ids['photos/big.jpg']}", headers=AUTH).content
        assert len(r.content) < len(full) / 4
        assert (project.dir / thumbs.FOLDER / f"{sha['photos/big.jpg']}-1024-jpg").is_file()
        r = c.get(f"/api/images/{ids['photos/fits.jpg']}", params={"size": "view"}, headers=AUTH)
        assert r.content == (root / "fits.jpg").read_bytes()
        batch = c.get("/api/batch", headers=AUTH).json()["items"]
        assert all(it["view"] == f"/api/images/{it['image_id']}?size=view" for it in batch)
        r = c.get("/api/images/1", params={"size": "huge"}, headers=AUTH)
        assert r.status_code == 400 and "view (the page's)" in r.json()["error"]


def test_the_server_removes_cached_previews_of_images_no_longer_in_the_project(project, big):
    """The thumbnails and batch views of forgotten or replaced content stayed on disk for
    ever; a server now removes them when it starts (and writes a kill left unfinished)."""
    sha = project.store.image(big["photo.jpg"]).sha256
    folder = project.dir / thumbs.FOLDER
    folder.mkdir()
    kept = [folder / f"{sha}-160-jpg", folder / f"{sha}-1024-jpg"]
    gone = [folder / f"{'0' * 64}-160-jpg", folder / f"{'f' * 64}-1024-png", folder / ".a.tmp"]
    for path in kept + gone:
        path.write_bytes(b"x" * 10)
    with api_client(project.dir):
        assert sorted(folder.iterdir()) == sorted(kept)


def test_the_cache_removes_the_least_recently_used_beyond_its_size(tmp_path):
    """Every batch view (a few hundred kilobytes) was kept: a cache that only grew. Beyond
    ``max_bytes`` the least recently used entries go (a read counts as a use) until it holds
    at most KEEP of it; one removed is made again when asked for."""
    rng = np.random.default_rng(5)
    files = []
    for _ in range(4):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(out, "PNG")
        files.append(out.getvalue())
    shas = [f"{i:064x}" for i in range(4)]
    cache = thumbs.Cache(tmp_path, max_bytes=10**9)
    sizes = [len(cache.get(f, s)[0]) for f, s in zip(files, shas, strict=True)]
    folder = tmp_path / thumbs.FOLDER
    for i, s in enumerate(shas):  # used in order 0, 1, 2, 3, a minute apart
        os.utime(folder / f"{s}-160-png", (1_000_000 + 60 * i,) * 2)
    assert cache.get(files[0], shas[0])[0]  # a read: 0 is now the most recently used
    small = thumbs.Cache(tmp_path, max_bytes=sum(sizes) - 1)
    removed, left = small.prune()
    assert left <= thumbs.KEEP * small.max_bytes and removed >= 1
    names = {p.name.split("-")[0] for p in folder.iterdir()}
    assert shas[0] in names and shas[1] not in names  # the least recently used went first
    assert left == sum(p.stat().st_size for p in folder.iterdir())
    body, media = small.get(files[1], shas[1])  # made again
    assert media == "image/png" and body
    assert sum(p.stat().st_size for p in folder.iterdir()) <= small.max_bytes


def test_a_server_keeps_no_more_previews_than_preview_cache_bytes(project, big):
    """``label serve --preview-cache-mb`` reaches the cache: with 0 nothing stays on disk,
    and every preview is still served."""
    with api_client(project.dir, preview_cache_bytes=0) as c:
        for image_id in big.values():
            assert _thumb(c, image_id).status_code == 200
        assert list((project.dir / thumbs.FOLDER).iterdir()) == []
    from typer.testing import CliRunner

    from fishermask.cli import app

    r = CliRunner().invoke(app, ["label", "serve", str(project.dir), "--preview-cache-mb", "-1"])
    assert r.exit_code == 2, r.output
    # what 0 does, as the server does it (it said "no preview on disk beyond the last one made")
    assert " ".join(r.output.split()) == (
        "error: --preview-cache-mb -1: must be >= 0 (0 keeps no preview on disk: each is made "
        "again when shown; default 2048)."
    ), r.output


def test_pruning_leaves_a_write_under_way_alone(tmp_path):
    """With a tiny cap, one thread's pruning removed another thread's ``.tmp`` file before it
    was renamed into place (its preview then went uncached). A young one is left; one a
    crash left long ago goes as any entry."""
    folder = tmp_path / thumbs.FOLDER
    folder.mkdir()
    young, old = folder / ".young.tmp", folder / ".old.tmp"
    young.write_bytes(b"x" * 100)
    old.write_bytes(b"x" * 100)
    os.utime(old, (1_000_000,) * 2)
    removed, left = thumbs.Cache(tmp_path, max_bytes=10).prune()
    assert young.exists() and not old.exists()
    assert removed == 1 and left == 0  # the write under way is its writer's to count


def test_a_write_under_way_during_a_prune_is_counted_once(tmp_path, monkeypatch):
    """A prune while another thread's preview was being written counted its young ``.tmp``
    file in the running size, and the writer counted it again once renamed into place: the
    size grew by twice each such preview and the cache was pruned early from then on. Here
    another thread's prune runs once the ``.tmp`` file is written and closed, before its
    writer takes the lock to rename it into place: the running size is the folder's."""
    cache = thumbs.Cache(tmp_path, max_bytes=10**9)
    out = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 0, 0)).save(out, "PNG")
    cache.prune()  # counted: the running size is kept from now on
    real, seen = os.fdopen, []

    @contextlib.contextmanager
    def fdopen(fd, mode):
        with real(fd, mode) as f:
            yield f
        seen.extend(p.name for p in (tmp_path / thumbs.FOLDER).iterdir())
        t = threading.Thread(target=cache.prune)  # another request's prune, at this moment
        t.start()
        t.join(10)
        assert not t.is_alive()

    monkeypatch.setattr(thumbs.os, "fdopen", fdopen)
    body, _ = cache.get(out.getvalue(), f"{7:064x}")
    folder = tmp_path / thumbs.FOLDER
    assert len(seen) == 1 and seen[0].startswith(".") and seen[0].endswith(".tmp")
    assert cache._total == len(body) == sum(p.stat().st_size for p in folder.iterdir())


def test_a_preview_written_twice_at_once_is_counted_once(tmp_path, monkeypatch):
    """Two requests for the same preview that both miss the cache (a team's pages fetch the
    same batch) both wrote it, and each added its size to the running size: one file on disk
    counted twice, and the cache pruned early from then on. Here the second request runs
    while the first is making its preview: the running size is the folder's."""
    cache = thumbs.Cache(tmp_path, max_bytes=10**9)
    out = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 0, 0)).save(out, "PNG")
    cache.prune()  # counted: the running size is kept from now on
    real, nested = thumbs.make, []

    def make(data, side=thumbs.SIDE):
        if not nested:
            nested.append(True)
            cache.get(data, f"{7:064x}")  # the other request, at the same time
        return real(data, side)

    monkeypatch.setattr(thumbs, "make", make)
    body, _ = cache.get(out.getvalue(), f"{7:064x}")
    folder = tmp_path / thumbs.FOLDER
    assert nested and len(list(folder.iterdir())) == 1
    assert cache._total == len(body) == sum(p.stat().st_size for p in folder.iterdir())


def test_a_prune_just_after_a_write_is_renamed_counts_it_once(tmp_path, monkeypatch):
    """A prune between a preview's rename into place and its writer counting it counted the
    file, and the writer then counted it again."""
    cache = thumbs.Cache(tmp_path, max_bytes=10**9)
    out = io.BytesIO()
    Image.new("RGB", (50, 40), (0, 0, 200)).save(out, "PNG")
    cache.prune()
    real = os.replace
    done = []

    def replace(src, dst):
        real(src, dst)
        # another thread's prune, the moment the preview is in place (it waits for the lock
        # where the writer holds it while renaming and counting)
        t = threading.Thread(target=cache.prune)
        t.start()
        t.join(0.5)  # done by now unless it waits for the lock
        done.append(t)

    monkeypatch.setattr(thumbs.os, "replace", replace)
    body, _ = cache.get(out.getvalue(), f"{8:064x}")
    for t in done:
        t.join(10)
    folder = tmp_path / thumbs.FOLDER
    assert cache._total == len(body) == sum(p.stat().st_size for p in folder.iterdir())


def test_a_thumbs_folder_that_is_a_link_is_never_pruned(project, big, tmp_path):
    """PROJECT/thumbs a symbolic link to a folder shared by several projects: the server's
    start removed every entry of the other projects (not images of this one), and the size cap
    removed theirs too. Nothing is removed there, and serve says so in one line."""
    shared = tmp_path / "shared-thumbs"
    shared.mkdir()
    theirs = [shared / f"{'0' * 64}-160-jpg", shared / f"{'f' * 64}-1024-png"]
    for path in theirs:
        path.write_bytes(b"x" * 10_000)
    (project.dir / thumbs.FOLDER).symlink_to(shared)
    with api_client(project.dir, preview_cache_bytes=0) as c:
        for image_id in big.values():
            assert _thumb(c, image_id).status_code == 200
    assert all(p.exists() for p in theirs)
    assert len(list(shared.iterdir())) == len(theirs) + len(big)  # this project's added
    cache = thumbs.Cache(project.dir, max_bytes=0)
    assert cache.prune(keep=set()) == (0, 0) and all(p.exists() for p in theirs)
    assert cache.shared == (
        f"{project.dir / thumbs.FOLDER} is a link to {shared}, which other projects may share: "
        "its previews are not pruned (neither those of images no longer in this project nor "
        "beyond --preview-cache-mb), so as to leave theirs; make it a folder of this "
        "project's own to bound it."
    )
    assert thumbs.Cache(tmp_path / "elsewhere").shared is None


def test_serve_says_that_a_linked_thumbs_folder_is_not_pruned(project, tmp_path):
    """The one line, printed by `label serve` before its URL."""
    from tests.label.test_kill import start_server, stop_server

    (tmp_path / "shared").mkdir()
    (project.dir / thumbs.FOLDER).symlink_to(tmp_path / "shared")
    project.close()
    proc, _, before = start_server(project.dir)
    stop_server(proc)
    assert f"note: {project.dir / thumbs.FOLDER} is a link to {tmp_path / 'shared'}" in before


def test_the_batch_view_of_a_tiff_is_a_copy_a_browser_shows(project):
    """A browser shows no TIFF: the batch view sends a PNG or JPEG copy of one, however
    small, where it sends other files that fit as they are."""
    root = project.root / "scans"
    root.mkdir()
    Image.new("RGB", (40, 30), (0, 200, 0)).save(root / "leaf.tif")
    assert project.scan()[0] == 1
    image_id = project.store.image_ids_by_path()["scans/leaf.tif"]
    with api_client(project.dir) as c:
        r = c.get(f"/api/images/{image_id}", params={"size": "view"}, headers=AUTH)
        assert r.status_code == 200
        assert r.headers["content-type"] in ("image/png", "image/jpeg")
        with Image.open(io.BytesIO(r.content)) as im:
            assert im.size == (40, 30) and im.format in ("PNG", "JPEG")
        r = c.get(f"/api/images/{image_id}", headers=AUTH)  # the file itself, named as such
        assert r.headers["content-type"] == "image/tiff"


def test_a_tiff_that_cannot_be_converted_is_one_clear_error_not_a_blank_frame(project, monkeypatch):
    """A TIFF Pillow cannot shrink (a compression it has no decoder for) was sent as it is,
    which no browser shows: the page stayed blank without a word. It is a 415 with one line
    (what the page shows: 'cannot show PATH: ...'); the file itself is still served."""
    root = project.root / "scans"
    root.mkdir()
    Image.new("RGB", (40, 30), (0, 200, 0)).save(root / "leaf.tif")
    assert project.scan()[0] == 1
    image_id = project.store.image_ids_by_path()["scans/leaf.tif"]

    def cannot(*args, **kwargs):
        raise OSError("decoder jpeg2k not available")

    with api_client(project.dir) as c:
        monkeypatch.setattr(c.app.state.previews, "get", cannot)
        for size in ("view", "thumb"):
            r = c.get(f"/api/images/{image_id}", params={"size": size}, headers=AUTH)
            assert r.status_code == 415, (size, r.status_code)
            assert r.json()["error"] == (
                "scans/leaf.tif is a TIFF that cannot be converted for the browser (OSError: "
                "decoder jpeg2k not available), and browsers do not show TIFF: open the file "
                "itself to label it, or save it as PNG and `label scan`"
            )
        r = c.get(f"/api/images/{image_id}", headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"] == "image/tiff"


def test_a_tiff_at_actual_size_is_a_lossless_png_of_its_own_size(project):
    """The page's "actual size" asked for the file itself, which a browser does not draw when
    it is a TIFF. ``size=actual`` (a batch item's ``actual``) sends a TIFF as a PNG of its own
    size, pixel for pixel, and any other file as it is."""
    import numpy as np

    root = project.root / "scans"
    root.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "leaf.tif")
    assert project.scan()[0] == 1
    ids = project.store.image_ids_by_path()
    with api_client(project.dir) as c:
        items = c.get("/api/batch", headers=AUTH).json()["items"]
        assert all(it["actual"] == f"/api/images/{it['image_id']}?size=actual" for it in items)
        r = c.get(f"/api/images/{ids['scans/leaf.tif']}", params={"size": "actual"}, headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(r.content)) as im:
            assert im.format == "PNG" and (np.asarray(im) == pixels).all()
        r = c.get(f"/api/images/{ids['red/000.png']}", params={"size": "actual"}, headers=AUTH)
        assert r.content == (project.root / "red/000.png").read_bytes()
