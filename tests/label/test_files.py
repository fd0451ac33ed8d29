"""The image folder changing under a project: links that duplicate an image, images edited or
replaced after the scan, images that went missing; and path spellings in label files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fishermask.label.project import Project
from tests.label.conftest import CLASSES, TINY
from tests.label.test_label_cli import _run


def test_a_link_to_another_image_of_the_folder_is_not_a_second_image(tmp_path, folder):
    os.symlink(folder / "green" / "000.png", folder / "red" / "link_in.png")
    os.link(folder / "blue" / "000.png", folder / "blue" / "hard.png")
    p = Project.init(tmp_path / "p", folder, ",".join(CLASSES), **TINY)
    paths = set(p.store.image_ids_by_path())
    assert len(paths) == 3 * 8  # one entry per file
    assert "green/000.png" in paths and "red/link_in.png" not in paths
    assert ("blue/000.png" in paths) != ("blue/hard.png" in paths)
    p.close()
    r = _run("scan", tmp_path / "p")
    assert r.exit_code == 0, r.output
    assert "skipped red/link_in.png: the same file as green/000.png" in r.output
    assert "0 new images" in r.output


def test_a_link_already_in_an_older_project_stays_and_is_not_reported(tmp_path, folder):
    # a project scanned before links were deduplicated holds both paths: neither is dropped
    os.symlink(folder / "green" / "000.png", folder / "red" / "link_in.png")
    p = Project.init(tmp_path / "p", folder, ",".join(CLASSES), **TINY)
    p.store.add_images(
        [
            {
                "path": "red/link_in.png",
                "sha256": "x",
                "bytes": 1,
                "width": 8,
                "height": 8,
                "mtime_ns": 0,
            }
        ],
        segment=p.store.next_segment(),
    )
    added, skipped = p.scan()
    assert added == 0 and skipped == []
    p.close()
