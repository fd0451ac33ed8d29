"""Class names that differ only in case (``Cat``, ``cat``) or in how their accents are
composed (``é`` as one character, Unicode NFC, or ``e`` and an accent, NFD): refused as two
classes wherever a class is named (``label init --classes``, ``label config --add-class /
--rename-class``), and a label that differs from a class only so is named with the class."""

from __future__ import annotations

import unicodedata

import pytest

from fishermask.errors import ConfigError
from fishermask.label.project import Project, parse_class_changes, parse_classes
from tests.label.conftest import TINY, stored_config
from tests.label.test_label_cli import TINY_ARGS, _run

NFC, NFD = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))


@pytest.mark.parametrize(
    ("names", "first", "second"),
    [
        ("Cat,dog,cat", "Cat", "cat"),
        ("dog,CAT,Cat", "CAT", "Cat"),
        (f"{NFC},dog,{NFD}", NFC, NFD),  # the same letters: they look the same
        ("Straße,STRASSE,x", "Straße", "STRASSE"),  # equal under case folding
    ],
)
def test_a_class_list_with_two_names_equal_but_for_case_is_refused(names, first, second):
    with pytest.raises(ConfigError) as err:
        parse_classes(names)
    said = str(err.value)
    assert f"{first!r} and {second!r}" in said, said
    assert "\n" not in said and "give" in said  # one line, with the fix


def test_init_refuses_classes_equal_but_for_case_and_makes_no_project(tmp_path, folder):
    r = _run("init", tmp_path / "p", "--images", folder, "--classes", "red,Red,blue", *TINY_ARGS)
    assert r.exit_code == 2, r.output
    assert "'red' and 'Red'" in r.output and "differ only in case" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--add-class", "Red"], "'Red' and the class 'red' differ only in case"),
        (["--add-class", "bird,BIRD"], "'BIRD' and the class 'bird' differ only in case"),
        (["--rename-class", "green=RED"], "'RED' and the class 'red' differ only in case"),
        (["--add-class", "GREEN"], "--rename-class green=GREEN"),  # how to change the case
    ],
)
def test_config_refuses_a_class_name_equal_to_another_but_for_case(project, change, message):
    before = stored_config(project)
    r = _run("config", project.dir, *change)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.stderr.split()), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert stored_config(project) == before


def test_a_class_may_change_its_own_case_and_a_removed_one_still_counts():
    assert parse_class_changes([], ["red=Red"], ["red", "green"], {}) == ["Red", "green"]
    with pytest.raises(ConfigError, match="'RED' and the removed class 'red' differ only in"):
        parse_class_changes(["RED"], [], ["red", "green", "blue"], {}, removed=["red"])
    with pytest.raises(ConfigError, match="the same letters composed two ways"):
        parse_class_changes([NFD], [], [NFC, "green"], {})


def test_a_label_that_differs_from_a_class_only_in_case_names_the_class(project, tmp_path):
    """Labels are matched exactly (a class list never holds two names equal but for case,
    so no label is taken for another class); one that differs only in case is refused with
    the class it most likely meant, also where difflib sees no likeness ('RED', 'Ox')."""
    csv = tmp_path / "l.csv"
    csv.write_text("path,label\nred/000.png,RED\nblue/000.png,Blue\n", encoding="utf-8")
    r = _run("add", project.dir, csv)
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert "line 2: label 'RED' is not one of red, green, blue (did you mean 'red'?" in out, out
    assert "line 3: label 'Blue' is not one of red, green, blue (did you mean 'blue'?" in out
    assert "labels are case-sensitive" in out and "nothing was written" in out
    assert project.store.current_labels() == {}
    with pytest.raises(ConfigError, match="did you mean 'green'"):
        project.class_id("GREEN")


def test_labelstudio_import_names_the_class_a_choice_differs_from_only_in_case(tmp_path):
    import json

    from tests.label.conftest import make_folder

    folder = make_folder(tmp_path / "images", per_class=2)
    p = Project.init(tmp_path / "p", folder, "red,green,blue", **TINY)
    tasks = [
        {
            "id": 7,
            "data": {"path": "red/000.png"},
            "annotations": [
                {"result": [{"type": "choices", "value": {"choices": ["RED"]}}]},
            ],
        }
    ]
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")
    p.close()
    r = _run("import", p.dir, "--labelstudio", export)
    assert r.exit_code == 2, r.output
    assert "task 7: label 'RED' is not one of red, green, blue (did you mean 'red'?" in " ".join(
        r.output.split()
    ), r.output
