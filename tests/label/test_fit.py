"""How an image of another aspect is fitted to the project's H x W: stretch, pad, crop.

The expected pixels are computed by hand. The 2:1 image (4 wide, 2 high, grey) is

    A = [[  0,  40,  80, 120],
         [200, 160, 120,  80]]

PIL's bilinear resize from 2 rows to 4 samples at the output rows' centres, (i + 0.5) / 2 in
input pixels: row 0 is A's row 0, row 1 is 0.75 A0 + 0.25 A1, row 2 is 0.25 A0 + 0.75 A1,
row 3 is A1 (the neighbours outside the image get no weight). A's mean is 800 / 8 = 100.
"""

from __future__ import annotations

import io
import json
import sqlite3

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.errors import ConfigError
from fishermask.label import images as imgs
from fishermask.label.project import Project
from fishermask.label.store import DB_NAME
from tests.label.conftest import CLASSES, TINY, label_truth, make_folder

A = np.array([[0, 40, 80, 120], [200, 160, 120, 80]], dtype=np.uint8)  # [H=2, W=4]

#: (fit, size (H, W), the expected [H, W] grey pixels of A)
CASES = [
    (
        "stretch",
        (4, 4),  # squeezed: each column stretched to twice its height
        [[0, 40, 80, 120], [50, 70, 90, 110], [150, 130, 110, 90], [200, 160, 120, 80]],
    ),
    (
        "pad",
        (4, 4),  # already 4 wide: not resized; one row of the mean (100) above and below
        [[100] * 4, [0, 40, 80, 120], [200, 160, 120, 80], [100] * 4],
    ),
    (
        "crop",
        (2, 2),  # the centred 2 x 2 box (columns 1 and 2), already at the size
        [[40, 80], [160, 120]],
    ),
]
runner = CliRunner()


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("fit", "size", "want"), CASES, ids=[c[0] for c in CASES])
def test_a_2_to_1_image_is_fitted_as_computed_by_hand(fit, size, want):
    arr, width, height = imgs.decode(_png(A), size, 1, fit)
    assert (width, height) == (4, 2)  # the original size, whatever the fit
    assert arr.shape == (1, *size)
    assert arr[0].tolist() == want


@pytest.mark.parametrize(("fit", "size", "want"), CASES, ids=[c[0] for c in CASES])
def test_a_1_to_2_image_is_fitted_as_its_transpose(fit, size, want):
    """A tall image: padded left and right, cropped top and bottom."""
    arr, _, _ = imgs.decode(_png(np.ascontiguousarray(A.T)), size[::-1], 1, fit)
    assert arr[0].tolist() == np.array(want).T.tolist()


def test_pad_fills_each_channel_with_its_own_mean():
    rgb = np.stack([A, 255 - A, np.full_like(A, 7)], axis=-1)  # means 100, 155, 7
    arr, _, _ = imgs.decode(_png(rgb), (4, 4), 3, "pad")
    assert arr[:, 0].tolist() == [[100] * 4, [155] * 4, [7] * 4]
    assert arr[:, 3].tolist() == [[100] * 4, [155] * 4, [7] * 4]
    assert (arr[:, 1:3] == rgb.transpose(2, 0, 1)).all()


def test_a_square_image_is_the_same_under_every_fit():
    a = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    out = {fit: imgs.decode(_png(a), (2, 2), 1, fit)[0] for fit in imgs.FITS}
    assert (out["pad"] == out["stretch"]).all() and (out["crop"] == out["stretch"]).all()


def test_an_unknown_fit_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError, match=r"--fit 'letterbox'.*stretch, pad, crop"):
        imgs.decode(_png(A), (4, 4), 1, "letterbox")


def test_the_cache_is_not_shared_between_fits(tmp_path):
    """Pixels cached under one fit (here a marker: all 7) are never read under another."""
    root = tmp_path / "img"
    root.mkdir()
    (root / "wide.png").write_bytes(_png(A))

    def load(fit, pixels=None):
        rows = [imgs.read_one(root, "wide.png", (4, 4), 1)]  # path, size, time, SHA-256
        x = imgs.segment_images(tmp_path / "cache", root, "p1", 0, rows, (4, 4), 1, pixels, fit=fit)
        return x[0, 0].numpy()

    marker = np.full((1, 1, 4, 4), 7, dtype=np.uint8)
    assert (load("stretch", marker) == 7).all()
    assert (load("stretch") == 7).all()  # read from the cache
    assert load("pad").tolist() == CASES[1][2]  # decoded, not the stretch entry
    # (writing the pad entry replaced the stale stretch one: decoded again, stretched)
    assert load("stretch").tolist() == CASES[0][2]
    crop = imgs.decode(_png(A), (4, 4), 1, "crop")[0][0]
    assert load("crop").tolist() == crop.tolist() != CASES[0][2]
    assert load("pad").tolist() == CASES[1][2]


def test_a_stretch_entry_written_before_fits_existed_is_still_read(tmp_path):
    """A project made before the setting keeps its decoded pixels: its cache key is unchanged."""
    from fishermask.data.cache import cached

    root = tmp_path / "img"
    root.mkdir()
    (root / "wide.png").write_bytes(_png(A))
    source = root / ".fishermask-label-p1-segment-0"
    marker = np.full((1, 1, 4, 4), 7, dtype=np.uint8)
    # the entry as the version before fits wrote it (format "label-c1")
    cached(
        tmp_path / "cache",
        "label-c1",
        source,
        [root / "wide.png"],
        (4, 4),
        lambda: imgs.segment_dataset(marker, source.name),
    )
    rows = [imgs.read_one(root, "wide.png", (4, 4), 1)]
    x = imgs.segment_images(tmp_path / "cache", root, "p1", 0, rows, (4, 4), 1, fit="stretch")
    assert (x.numpy() == 7).all()


def _folder_with_wide(tmp_path):
    folder = make_folder(tmp_path / "images", per_class=3)
    Image.fromarray(np.stack([A, 255 - A, A], axis=-1)).save(folder / "red" / "wide.png")
    return folder


def _wide(p):
    x, ids = p.images()
    by_path = {r.id: r.path for r in p.store.images()}
    return x[ids.index(next(i for i in ids if by_path[i] == "red/wide.png"))].numpy()


@pytest.mark.parametrize("fit", imgs.FITS)
def test_a_project_decodes_with_its_fit_and_records_it(tmp_path, fit):
    folder = _folder_with_wide(tmp_path)
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **{**TINY, "fit": fit})
    try:
        assert p.fit == fit and p.store.meta()["fit"] == fit
        want = imgs.decode((folder / "red" / "wide.png").read_bytes(), (8, 8), 3, fit)[0]
        assert (_wide(p) == want).all()
    finally:
        p.close()


def test_a_new_project_pads_by_default(tmp_path):
    folder = _folder_with_wide(tmp_path)
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **TINY)
    try:
        assert p.fit == "pad" == imgs.DEFAULT_FIT
    finally:
        p.close()
    r = runner.invoke(app, ["label", "init", str(tmp_path / "p2"), "--images", str(folder),
                            "--classes", ",".join(CLASSES), "--image-size", "8x8",
                            "--max-epochs", "1", "--no-progress"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["label", "config", str(tmp_path / "p2")])
    assert "fit: pad (fixed)" in r.stdout.splitlines()


def test_a_project_without_the_setting_reads_as_stretch(tmp_path):
    """A project made before the setting existed (no ``fit`` in meta) keeps decoding as it did:
    stretched, not from the pixels cached under another fit."""
    folder = _folder_with_wide(tmp_path)
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **{**TINY, "fit": "pad"})
    padded = _wide(p)
    p.close()
    with sqlite3.connect(tmp_path / "proj" / DB_NAME) as c:
        c.execute("DELETE FROM meta WHERE key = 'fit'")
    p = Project(tmp_path / "proj")
    try:
        assert p.fit == "stretch"
        want = imgs.decode((folder / "red" / "wide.png").read_bytes(), (8, 8), 3, "stretch")[0]
        assert (_wide(p) == want).all() and not (want == padded).all()
    finally:
        p.close()
    r = runner.invoke(app, ["label", "config", str(tmp_path / "proj")])
    assert "fit: stretch (fixed)" in r.stdout.splitlines()


def test_a_project_written_before_fits_existed_is_stretch(tmp_path):
    """The dump of a project that main's code wrote before schema 4 (no fit recorded)."""
    from tests.label.test_team import _v3_project

    proj = _v3_project(tmp_path)
    p = Project(proj)
    try:
        assert "fit" not in p.store.meta() and p.fit == "stretch"
        x, _ = p.images()  # its images decode (stretched)
        assert x.shape == (6, 3, 8, 8)
    finally:
        p.close()
    r = runner.invoke(app, ["label", "config", str(proj)])
    assert "fit: stretch (fixed)" in r.stdout.splitlines()


def test_init_refuses_an_unknown_fit_and_config_cannot_change_it(tmp_path):
    folder = _folder_with_wide(tmp_path)
    r = runner.invoke(app, ["label", "init", str(tmp_path / "proj"), "--images", str(folder),
                            "--classes", ",".join(CLASSES), "--fit", "squash"])  # fmt: skip
    assert r.exit_code == 2 and "--fit 'squash'" in r.output and "stretch, pad, crop" in r.output
    assert not (tmp_path / "proj").exists()
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **TINY)
    p.close()
    with sqlite3.connect(tmp_path / "proj" / DB_NAME) as c:
        before = c.execute("SELECT * FROM meta ORDER BY key").fetchall()
    r = runner.invoke(app, ["label", "config", str(tmp_path / "proj"), "--fit", "crop"])
    assert r.exit_code == 2
    assert "--fit cannot change" in r.output and "--labels labels.csv" in r.output
    with sqlite3.connect(tmp_path / "proj" / DB_NAME) as c:
        assert c.execute("SELECT * FROM meta ORDER BY key").fetchall() == before
        assert c.execute("SELECT * FROM settings_history").fetchall() == []


def test_an_exported_model_fits_images_as_its_project(tmp_path):
    """model.json records the fit (format 2, so an older fishermask, which would stretch,
    refuses it); the loaded model decodes a file exactly as the project did."""
    from fishermask.label import load_model
    from fishermask.label.predict import export_model

    folder = _folder_with_wide(tmp_path)
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **{**TINY, "fit": "crop"})
    try:
        label_truth(p, 2)
        p.run_round(train_model=True)
        info = export_model(p, tmp_path / "m")
        assert info["fit"] == "crop" and info["format_version"] == 2
        assert "centred box" in info["decoding"]
        model = load_model(tmp_path / "m")
        assert model.fit == "crop"
        assert (model.pixels(folder / "red" / "wide.png") == _wide(p)).all()
        assert (model.pixels(Image.open(folder / "red" / "wide.png")) == _wide(p)).all()
    finally:
        p.close()
    saved = json.loads((tmp_path / "m" / "model.json").read_text())
    assert saved["fit"] == "crop"
