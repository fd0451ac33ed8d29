"""`label scan` follows an image that was moved or renamed inside the image folder (found by its
content): it keeps its id, label and decoded pixels, instead of going missing while its copy
is added as a new, unlabeled image (and `--forget-missing` then dropping the label)."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from fishermask.label import images as imgs
from fishermask.label.project import Project
from tests.label.conftest import label_truth
from tests.label.test_forget import _aligned
from tests.label.test_label_cli import _run


def test_moved_and_renamed_images_keep_their_labels(project, monkeypatch):
    label_truth(project, 2)
    ids = project.store.image_ids_by_path()
    project.images()  # decoded and cached under the old paths
    n_before = project.store.num_images()
    (project.root / "moved").mkdir()
    shutil.move(project.root / "red/000.png", project.root / "moved/r0.png")  # labeled
    shutil.move(project.root / "green/005.png", project.root / "green/renamed.png")  # unlabeled
    (project.root / "blue/007.png").unlink()  # deleted: stays missing, then forgotten
    project.close()

    # the user's likely first move: forget what is missing at once; the moved images are
    # followed first, so only the deleted one is forgotten
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert (
        "moved: red/000.png -> moved/r0.png (the same content; labeled 'red', its label "
        "follows it)" in lines
    )
    assert "moved: green/005.png -> green/renamed.png (the same content)" in lines
    assert "forgot: blue/007.png (unlabeled)" in lines
    assert lines[-1] == (
        "0 new images (23 in all); 0 not added, 0 missing, 0 changed, 2 moved, 1 forgotten."
    )

    p = Project(project.dir)
    now = p.store.image_ids_by_path()
    assert now["moved/r0.png"] == ids["red/000.png"] and "red/000.png" not in now
    assert now["green/renamed.png"] == ids["green/005.png"]
    assert p.store.num_images() == n_before - 1
    assert p.classes[p.store.current_labels()[ids["red/000.png"]]] == "red"
    assert ("moved/r0.png", "red") in [(path, c) for path, c in p.csv_rows()]
    # the cached pixels are keyed by content, not path: loading decodes nothing
    decoded = []
    real = imgs.read_one
    monkeypatch.setattr(imgs, "read_one", lambda *a, **k: decoded.append(a[1]) or real(*a, **k))
    p.images()
    assert decoded == []
    monkeypatch.undo()
    _aligned(p)
    p.close()


def test_an_ambiguous_copy_is_not_taken_for_a_move(project):
    """Two missing images with the same content and one new copy of it: which one moved is
    unknown (their labels may differ), so both stay missing and the copy is a new image."""
    shutil.copy(project.root / "red/000.png", project.root / "red/dup.png")
    assert project.scan()[0] == 1
    label_truth(project, 1)
    shutil.copy(project.root / "red/000.png", project.root / "copy.png")
    (project.root / "red/000.png").unlink()
    (project.root / "red/dup.png").unlink()
    project.close()

    r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "moved:" not in r.output
    lines = r.output.splitlines()
    assert lines[-2] == "1 new image (26 in all); 0 not added, 2 missing, 0 changed."
    # the copy has the bytes of the two missing images: said, and never queued as new work
    assert lines[-1].startswith("2 image files are byte-for-byte copies of others")


def test_a_folder_renamed_whole_is_one_line(project):
    """Renaming a folder (`Ship/` to `ship/`, as `label init --labels-from-folders` advises
    for a near miss) printed one `moved:` line per image: thousands for a large folder. More
    than three images of one folder moved alike are one line, with how many were labeled; a
    few moved images are still named one by one."""
    label_truth(project, 2)
    labeled = project.store.current_labels()
    ids = project.store.image_ids_by_path()
    n_red = sum(1 for path in ids if path.startswith("red/"))
    n_lab = sum(1 for path, i in ids.items() if path.startswith("red/") and i in labeled)
    project.close()
    (project.root / "red").rename(project.root / "crimson")
    (project.root / "misc").mkdir()
    shutil.move(project.root / "green/005.png", project.root / "misc/005.png")
    r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("moved: ")]
    assert sorted(lines) == [
        "moved: green/005.png -> misc/005.png (the same content"
        + ("; labeled 'green', its label follows it)" if ids["green/005.png"] in labeled else ")"),
        f"moved: red/ -> crimson/ ({n_red} images, the same content; {n_lab} of them labeled: "
        "their labels follow them)",
    ], r.output
    assert r.output.splitlines()[-1].endswith(f"{n_red + 1} moved.")
    p = Project(project.dir)
    assert p.store.image_ids_by_path()["crimson/000.png"] == ids["red/000.png"]
    p.close()


def test_many_files_moved_from_one_folder_to_another_are_one_line(project):
    """Loose files moved into another folder (not a whole folder: others stay) were one
    `moved:` line each, and more than three moved alike from one folder were said as the
    folder moved whole (`moved: red/ -> pets/`). More than three moved from one folder (or
    from the top of the image folder) to one other are one line naming the first of them;
    `--verbose` lists each."""
    label_truth(project, 2)
    labeled = project.store.current_labels()
    ids = project.store.image_ids_by_path()
    project.close()
    root = project.root
    (root / "pets").mkdir()
    for i in range(5):  # 5 of red/'s 8: red/ stays
        shutil.move(root / f"red/{i:03d}.png", root / f"pets/{i:03d}.png")
    n_lab = sum(ids[f"red/{i:03d}.png"] in labeled for i in range(5))
    assert n_lab == 2
    r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("moved: ")]
    assert lines == [
        "moved: 5 images from red/ to pets/ (the same content; 2 of them labeled: their "
        "labels follow them): 000.png, 001.png, 002.png and 2 more"
    ], r.output
    assert r.output.splitlines()[-1].endswith(", 5 moved.")

    # files of the top of the image folder, scanned there, then sorted into a folder
    rng = np.random.default_rng(5)
    for i in range(4):
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"loose{i}.png")
    r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 0 and r.output.splitlines()[-1].startswith("4 new images"), r.output
    (root / "sorted").mkdir()
    for i in range(4):
        shutil.move(root / f"loose{i}.png", root / f"sorted/loose{i}.png")
    r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("moved: ")]
    assert lines == [
        "moved: 4 images from the top of the image folder to sorted/ (the same content; none "
        "labeled): loose0.png, loose1.png, loose2.png and 1 more"
    ], r.output

    # --verbose: each its own line
    for i in range(4):
        shutil.move(root / f"sorted/loose{i}.png", root / f"pets/loose{i}.png")
    r = _run("scan", project.dir, "--no-progress", "--verbose")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("moved: ")]
    assert sorted(lines) == [
        f"moved: sorted/loose{i}.png -> pets/loose{i}.png (the same content)" for i in range(4)
    ], r.output
    p = Project(project.dir)
    now = p.store.image_ids_by_path()
    assert [now[f"pets/{i:03d}.png"] for i in range(5)] == [
        ids[f"red/{i:03d}.png"] for i in range(5)
    ]
    p.close()
