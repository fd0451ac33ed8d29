"""`label scan` follows an image that was moved or renamed inside the image folder (found by its
content): it keeps its id, label and decoded pixels, instead of going missing while its copy
is added as a new, unlabeled image (and `--forget-missing` then dropping the label)."""

from __future__ import annotations

import shutil

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
    # the cached pixels were re-keyed to the new paths: loading decodes nothing
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
