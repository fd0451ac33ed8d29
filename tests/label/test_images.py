"""Scanning and decoding: formats, modes (16-bit scaled, not clipped), hidden files, links."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from fishermask.label import images as imgs
from fishermask.label.project import Project
from tests.label.conftest import CLASSES, TINY, make_folder


def _decode(path, channels=3, size=(4, 4)):
    arr, _, _ = imgs.decode(path.read_bytes(), size, channels)
    return arr


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    a = np.full((4, 4), 32768, dtype=np.uint16)
    a[0, 0] = 65535
    a[0, 1] = 0
    Image.fromarray(a).save(tmp_path / "deep.png")  # a 16-bit greyscale PNG
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    out = _decode(tmp_path / "deep.png", channels=1)
    assert out.shape == (1, 4, 4)
    assert out[0, 1, 1] == 128 and out[0, 0, 0] == 255 and out[0, 0, 1] == 0


def test_alpha_is_composited_on_white(tmp_path):
    a = np.zeros((4, 4, 4), dtype=np.uint8)
    a[..., 0] = 255  # red
    a[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    out = _decode(tmp_path / "a.png")
    assert tuple(out[:, 0, 0]) == (255, 0, 0)
    assert tuple(out[:, 3, 0]) == (255, 255, 255)


def test_palette_cmyk_grey_and_formats(tmp_path):
    rgb = Image.new("RGB", (4, 4), (10, 200, 30))
    rgb.quantize(colors=4).save(tmp_path / "p.png")
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.JPG")  # red in CMYK
    Image.new("L", (4, 4), 77).save(tmp_path / "g.bmp")
    rgb.save(tmp_path / "w.WebP")
    assert tuple(_decode(tmp_path / "p.png")[:, 0, 0]) == (10, 200, 30)
    r, g, b = (int(v) for v in _decode(tmp_path / "c.JPG")[:, 1, 1])
    assert r > 200 and g < 40 and b < 40
    assert tuple(_decode(tmp_path / "g.bmp")[:, 0, 0]) == (77, 77, 77)  # grey -> 3 channels
    assert _decode(tmp_path / "g.bmp", channels=1).shape == (1, 4, 4)
    w = _decode(tmp_path / "w.WebP").astype(int)
    assert abs(w[1, 0, 0] - 200) < 8


def test_scan_finds_recursively_ignores_hidden_and_lists_unreadable(tmp_path):
    root = make_folder(tmp_path / "img", per_class=2)
    (root / "red" / "deeper").mkdir()
    Image.new("RGB", (5, 5)).save(root / "red" / "deeper" / "x.JPEG")
    Image.new("RGB", (5, 5)).save(root / ".hidden.png")
    (root / ".cache").mkdir()
    Image.new("RGB", (5, 5)).save(root / ".cache" / "y.png")
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    res = imgs.scan_folder(root, (8, 8), 3, fit="stretch")
    paths = sorted(f.path for f in res.found)
    assert "red/deeper/x.JPEG" in paths and len(paths) == 7
    assert not any(p.startswith(".") or "/." in p for p in paths)
    assert [u[0] for u in res.unreadable] == ["broken.jpg"]
    assert all(f.pixels.shape == (3, 8, 8) for f in res.found)


def test_symlinks_outside_the_root_are_refused(tmp_path):
    root = make_folder(tmp_path / "img", per_class=1)
    outside = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(outside)
    os.symlink(outside, root / "red" / "link.png")
    os.symlink(root / "red" / "000.png", root / "green" / "inside.png")
    files, refused = imgs.candidate_files(root)
    assert "red/link.png" not in files and "red/000.png" in files
    # a link to another image of the folder would make a duplicate: skipped, with the reason
    assert "green/inside.png" not in files
    assert dict(refused)["red/link.png"].endswith("outside the image folder")
    assert "same file as red/000.png" in dict(refused)["green/inside.png"]


def test_a_symbolic_link_to_a_folder_is_listed_not_passed_over_in_silence(tmp_path):
    """A folder assembled from links to folders elsewhere (`ln -s /data/cats cats`): the
    links were not followed, without a word, and a folder of nothing else was 'no images
    under ...', though every image was right there. Each such link is now listed, with the
    fix, and `label init` of a folder of nothing else names them."""
    from fishermask.errors import ConfigError

    elsewhere = make_folder(tmp_path / "data", per_class=1)
    root = tmp_path / "img"
    root.mkdir()
    for name in ("red", "green"):
        os.symlink(elsewhere / name, root / f"{name}-link")
    with pytest.raises(ConfigError) as e:
        Project.init(tmp_path / "p", root, "a,b", **TINY)
    assert str(e.value) == (
        f"no images under {root} (looked for {', '.join(imgs.EXTENSIONS)} in any case, "
        "recursively, hidden files ignored); found 2 symbolic links to folders, which are not "
        "followed (e.g. green-link): move or copy those folders into the image folder, or give "
        "--images a folder that holds them."
    )
    Image.new("RGB", (4, 4)).save(root / "own.png")
    os.symlink(root, root / "loop")  # a link to a folder inside: its images are added anyway
    files, refused = imgs.candidate_files(root)
    assert files == ["own.png"]
    outside = (
        "a symbolic link to a folder, which is not followed: its images are not added (move or "
        "copy the folder into the image folder to label them)"
    )
    assert refused == [
        ("green-link", outside),
        ("loop", "a symbolic link to a folder of the image folder, which is not followed: its "
         "images are added under their own paths"),
        ("red-link", outside),
    ]  # fmt: skip


def test_scan_adds_new_images_and_keeps_labels(tmp_path):
    root = make_folder(tmp_path / "img", per_class=3)
    p = Project.init(tmp_path / "proj", root, ",".join(CLASSES), **TINY)
    p.add_label_rows([("red/000.png", "red")], source="human", what="t")
    x0, ids0 = p.images()
    make_folder(tmp_path / "more", per_class=2, seed=5)
    for c in CLASSES:
        for f in (tmp_path / "more" / c).iterdir():
            f.rename(root / c / f"new-{f.name}")
    (root / "bad.png").write_bytes(b"\x89PNG broken")
    added, unreadable = p.scan()
    assert added == 6 and [u[0] for u in unreadable] == ["bad.png"]
    x1, ids1 = p.images()
    assert len(ids1) == len(ids0) + 6 and ids1[: len(ids0)] == ids0
    assert bool((x1[: len(ids0)] == x0).all())
    assert p.store.current_labels() == {p.store.image_ids_by_path()["red/000.png"]: 0}
    assert p.scan() == (0, [("bad.png", "not a readable image (unknown or broken format)")])
    p.close()


def test_decoded_images_come_from_the_cache(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "img", per_class=2)
    p = Project.init(tmp_path / "proj", root, ",".join(CLASSES), **TINY)
    p.close()

    def no_decode(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(imgs, "read_one", no_decode)
    q = Project(tmp_path / "proj")
    x, ids = q.images()
    assert x.shape == (6, 3, 8, 8) and len(ids) == 6
    assert list((tmp_path / "cache").glob("*.pt"))
    q.close()


def test_init_needs_readable_images(tmp_path):
    from fishermask.errors import ConfigError

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        Project.init(tmp_path / "p", tmp_path / "empty", "a,b", **TINY)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    with pytest.raises(ConfigError, match="could be read"):
        Project.init(tmp_path / "p", tmp_path / "bad", "a,b", **TINY)
    assert not (tmp_path / "p").exists()  # nothing half-made is left


def test_gif_and_tiff_are_images_their_first_frame_decoded(tmp_path):
    """A folder's .gif and .tif/.tiff files were skipped without a word (init and scan said
    nothing; `label add` then called them 'not an image of this project'), though the
    exported model's loader reads them. They are images now: the first frame of an animated
    GIF or a multi-page TIFF."""
    root = tmp_path / "img"
    root.mkdir()
    red, blue = Image.new("RGB", (4, 4), (250, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 250))
    red.save(root / "anim.gif", save_all=True, append_images=[blue], duration=100)
    red.save(root / "pages.tif", save_all=True, append_images=[blue])
    a16 = np.full((4, 4), 65535, dtype=np.uint16)
    Image.fromarray(a16).save(root / "deep.TIFF")  # 16-bit grey, scaled as for a PNG
    res = imgs.scan_folder(root, (4, 4), 3, fit="stretch")
    assert res.unreadable == []
    px = {f.path: f.pixels for f in res.found}
    assert sorted(px) == ["anim.gif", "deep.TIFF", "pages.tif"]
    for name in ("anim.gif", "pages.tif"):
        r, g, b = (int(v) for v in px[name][:, 1, 1])
        assert r > 200 and g < 30 and b < 30, name
    assert int(px["deep.TIFF"].min()) == 255


def test_image_formats_not_read_are_listed_with_the_fix_not_ignored(tmp_path):
    """An iPhone's .HEIC photos (and other image formats Pillow does not read here) were
    ignored as silently as a .txt: now each is listed, saying what is read and the fix."""
    root = make_folder(tmp_path / "img", per_class=1)
    (root / "IMG_1234.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    (root / "notes.txt").write_text("not an image")
    (root / "raw").mkdir()
    (root / "raw" / "shot.CR2").write_bytes(b"II*\0")
    files, refused = imgs.candidate_files(root)
    why = dict(refused)
    assert sorted(why) == ["IMG_1234.HEIC", "raw/shot.CR2"]  # the .txt stays ignored
    assert why["IMG_1234.HEIC"].startswith("a .heic file, which fishermask label does not read")
    assert ".jpg" in why["IMG_1234.HEIC"] and "convert it" in why["IMG_1234.HEIC"]
    assert len(files) == 3
    # `label init` says so, one line per file, and `label scan` does not count them as new
    p = Project.init(tmp_path / "p", root, ",".join(CLASSES), **TINY)
    try:
        assert p.new_files() == 0
        added, unreadable = p.scan()
        assert added == 0 and [u[0] for u in unreadable] == ["IMG_1234.HEIC", "raw/shot.CR2"]
    finally:
        p.close()


def test_init_of_a_folder_of_formats_not_read_says_which_and_the_fix(tmp_path):
    from fishermask.errors import ConfigError

    (tmp_path / "phone").mkdir()
    for i in range(3):
        (tmp_path / "phone" / f"IMG_{i}.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    with pytest.raises(ConfigError) as e:
        Project.init(tmp_path / "p", tmp_path / "phone", "a,b", **TINY)
    line = str(e.value)
    assert line.startswith("no images under ") and "\n" not in line
    assert "3 files of image formats it does not read (.heic: 3, e.g. IMG_0.HEIC)" in line
    assert "convert them (e.g. to JPEG or PNG)" in line
    assert not (tmp_path / "p").exists()


def test_a_folder_whose_first_500_images_are_grey_is_not_made_grey(tmp_path):
    """The channels were guessed from the first 500 files: a folder whose scans/ (sorted
    first) held 500 grey images made a grey project, and its colour photos were decoded grey
    for good, without a word. Every file is looked at now (its header)."""
    root = tmp_path / "img"
    (root / "a_scans").mkdir(parents=True)
    (root / "b_photos").mkdir()
    for i in range(501):
        Image.new("L", (2, 2), i % 256).save(root / "a_scans" / f"{i:03d}.png")
    Image.new("RGB", (2, 2), (255, 0, 0)).save(root / "b_photos" / "red.png")
    files, _ = imgs.candidate_files(root)
    assert imgs.guess_channels(root, files) == 3
    assert imgs.guess_channels(root, files[:501]) == 1


def test_init_says_when_the_project_is_grey(tmp_path):
    from typer.testing import CliRunner

    from fishermask.cli import app

    root = tmp_path / "img"
    root.mkdir()
    for i in range(4):
        Image.new("L", (4, 4), 60 * i).save(root / f"{i}.png")
    args = ["--images", str(root), "--classes", "a,b", "--image-size", "4x4", "--batch", "2"]
    r = CliRunner().invoke(app, ["label", "init", str(tmp_path / "p"), *args, "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "4 images (greyscale: every one is grey, so the project is 1 channel), 2 classes" in (
        " ".join(r.stdout.split())
    )


def test_scan_says_when_colour_images_join_a_grey_project(tmp_path):
    """Colour photos added to a project made of grey images were decoded grey in silence
    (a project's channels are fixed): `label scan` says so, with the way to keep colour."""
    from typer.testing import CliRunner

    from fishermask.cli import app

    root = tmp_path / "img"
    root.mkdir()
    for i in range(4):
        Image.new("L", (4, 4), 60 * i).save(root / f"{i}.png")
    p = Project.init(tmp_path / "p", root, "a,b", image_size=(4, 4), batch=2)
    assert p.channels == 1
    p.close()
    Image.new("RGB", (4, 4), (250, 0, 0)).save(root / "red.png")
    Image.new("L", (4, 4), 9).save(root / "grey.png")
    r = CliRunner().invoke(app, ["label", "scan", str(tmp_path / "p"), "--no-progress"])
    assert r.exit_code == 0, r.output
    line = " ".join(r.stderr.split())
    assert "1 of the 2 new images is in colour (red.png), but this project is greyscale" in line
    assert "they are read as grey" in line and "--labels" in line


def test_an_empty_file_is_said_to_be_empty(tmp_path):
    """A zero-byte .jpg (a copy cut short, a failed download) was 'not a readable image
    (unknown or broken format)', as if its bytes were of some other format."""
    root = make_folder(tmp_path / "img", per_class=1)
    (root / "empty.jpg").write_bytes(b"")
    res = imgs.scan_folder(root, (8, 8), 3, fit="stretch")
    assert res.unreadable == [("empty.jpg", "an empty file (0 bytes)")]


def test_a_file_cut_short_is_said_to_be_cut_short(tmp_path):
    """A JPEG cut short (a copy or download stopped part way) was listed with Pillow's bare
    'Truncated File Read' or 'image file is truncated (...)', which says neither what is wrong
    with the file nor what to do: it is said to be cut short, with the fix."""
    root = make_folder(tmp_path / "img", per_class=1)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(
        buf, "JPEG"
    )
    for n in (500, len(buf.getvalue()) - 10):
        (root / f"cut-{n}.jpg").write_bytes(buf.getvalue()[:n])
    res = imgs.scan_folder(root, (8, 8), 3, fit="stretch")
    assert len(res.unreadable) == 2, res.unreadable  # both cut files, nothing else
    for _, why in res.unreadable:
        assert why.startswith("a file cut short: its image data ends early (Pillow: "), why
        assert why.endswith("); copy it again from its source"), why


def test_many_files_refused_for_one_reason_are_one_line(tmp_path):
    """A phone's folder of 500 .HEIC photos (now listed, not ignored) would print 500 lines,
    one per file, at every init and scan: files refused for the same reason beyond three are
    one line naming the first three and the count."""
    refused = [(f"IMG_{i}.HEIC", imgs.not_read(f"IMG_{i}.HEIC")) for i in range(500)]
    refused += [("a.jpg", "an empty file (0 bytes)"), ("b.jpg", "an empty file (0 bytes)")]
    lines = imgs.refused_lines(sorted(refused), "not added")
    assert lines == [  # in the place of the first (sorted: upper case first)
        "not added 500 files, each a .heic file, which fishermask label does not read (it reads "
        ".jpg, .jpeg, .png, .webp, .bmp, .gif, .tif, .tiff); convert it (e.g. to JPEG or PNG) "
        "to label it: IMG_0.HEIC, IMG_1.HEIC, IMG_10.HEIC and 497 more",
        "not added a.jpg: an empty file (0 bytes)",
        "not added b.jpg: an empty file (0 bytes)",
    ]


def test_a_photo_turned_by_exif_has_the_size_it_is_shown_at(tmp_path):
    """A phone's portrait photo is stored landscape with an EXIF orientation that turns it a
    quarter; its width and height were recorded as stored (40 x 20 for a photo shown 20 wide,
    40 high), so the page's corner said the wrong size and scaled "actual size" by the wrong
    side. They are now the size it is shown at (and decoded at): EXIF orientation applied."""
    root = tmp_path / "img"
    root.mkdir()
    for orientation, name in ((6, "quarter.jpg"), (8, "other-quarter.jpg"), (3, "half.jpg")):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.new("RGB", (40, 20), (200, 30, 30)).save(root / name, exif=exif.tobytes())
    found = {
        f.path: (f.width, f.height) for f in imgs.scan_folder(root, (4, 4), 3, fit="stretch").found
    }
    assert found == {"quarter.jpg": (20, 40), "other-quarter.jpg": (20, 40), "half.jpg": (40, 20)}
