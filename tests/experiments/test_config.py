"""Experiment configuration: parsing, layering, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from fishermask.errors import ConfigError
from fishermask.experiments.config import (
    ExperimentConfig,
    LoopConfig,
    StrategySpec,
    deep_merge,
    parse_seeds,
    read_config_file,
)


def test_strategy_spec_parsing() -> None:
    s = StrategySpec.parse("fishermask:sparsity=0.01,mode=dispersed,label=fm1")
    assert s == StrategySpec("fishermask", {"sparsity": 0.01, "mode": "dispersed"}, "fm1")
    assert s.key == "fm1"
    d = StrategySpec.parse({"name": "bait", "lam": 2, "label": "b"})
    assert d == StrategySpec("bait", {"lam": 2}, "b")
    with pytest.raises(ConfigError, match="key=value"):
        StrategySpec.parse("bait:oops")


def test_comma_lists_keep_options_with_their_strategy() -> None:
    cfg = ExperimentConfig.from_dict({"strategies": "random,fishermask:sparsity=0.01,lam=2,margin"})
    assert [s.name for s in cfg.strategies] == ["random", "fishermask", "margin"]
    assert cfg.strategies[1].options == {"sparsity": 0.01, "lam": 2}


def test_seeds() -> None:
    assert parse_seeds(3) == (0, 1, 2)
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("0,5,7") == (0, 5, 7)
    assert parse_seeds([2, 4]) == (2, 4)
    with pytest.raises(ConfigError, match="Seeds"):
        parse_seeds("a,b")
    with pytest.raises(ConfigError, match="repeat"):
        ExperimentConfig.from_dict({"seeds": [1, 1]})


@pytest.mark.parametrize(
    ("seeds", "said"), [([True, 2], "True is a boolean"), ([0, 1.5], "1.5 is not a whole number")]
)
def test_seeds_refuse_a_boolean_or_a_fraction(seeds: list, said: str) -> None:
    # int() read True as seed 1 and 1.5 as seed 1
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict({"seeds": seeds})
    assert str(e.value).startswith(f"Seeds {seeds!r}: {said}; give a count") and "\n" not in str(
        e.value
    )
    assert parse_seeds([0, 2.0]) == (0, 2)


@pytest.mark.parametrize(("value", "said"), [(0, 0), ("0", 0), (-2, -2), (" -2", -2)])
def test_seeds_zero_says_how_to_give_seed_zero_alone(value: object, said: int) -> None:
    one = said if said >= 0 else 5
    # `--seeds 0` (seed 0, a reader means) said only "`seeds`=0, must be an integer >= 1"
    with pytest.raises(ConfigError) as e:
        parse_seeds(value)
    assert str(e.value) == (
        f"Seeds {said}: a bare number is a count of seeds (3 -> seeds 0, 1, 2), so it must "
        f"be >= 1; one seed alone is written with a comma or brackets, `{one},` or `[{one}]` "
        f"(seeds: [{one}] in a file or in Python)."
    )
    # the way it says works: `{one},` is that one seed, not a count (it said "written 0, or
    # [0]", the comma read as the sentence's, and `--seeds 0` refused again)
    assert parse_seeds(f"{one},") == parse_seeds(f"[{one}]") == (one,)


def test_loop_sizes() -> None:
    assert LoopConfig(initial=250, query_size=250, budget=5750).query_sizes(5750) == [250] * 22
    assert LoopConfig(initial=10, query_size=7, budget=30).query_sizes(100) == [7, 7, 6]
    assert LoopConfig(initial=10, query_size=5, rounds=2).query_sizes(100) == [5, 5]
    with pytest.raises(ConfigError, match="Budget 200 is larger than the pool \\(100"):
        LoopConfig(initial=10, query_size=5, budget=200).query_sizes(100)
    with pytest.raises(ConfigError, match="smaller than the initial"):
        LoopConfig(initial=10, query_size=5, budget=5)


def test_a_top_level_key_inside_a_section_says_where_it_belongs(tmp_path: Path) -> None:
    # TOML puts every key below `[train]` in that table, so `seeds = 1` written last is
    # train.seeds: the message listed train's keys, not that seeds is a top-level key
    path = tmp_path / "exp.toml"
    path.write_text('[data]\ndataset = "digits"\n[train]\nmax_epochs = 1\nseeds = 1\n')
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict(read_config_file(path))
    assert str(e.value).endswith(
        "; `seeds` is a top-level key, not one of [train]: in TOML write it above the first "
        "[table] header (a key below one belongs to that table); in YAML, unindent it."
    ), str(e.value)
    with pytest.raises(ConfigError) as e:  # a misspelt key gets no such note
        ExperimentConfig.from_dict({"model": {"widht": 1}})
    assert "top-level" not in str(e.value)


def test_a_strategy_entry_keyed_by_its_name_says_how_to_write_it() -> None:
    # YAML's `strategies: [fishermask: {sparsity: 0.01}]` said only "has no `name`"
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict({"strategies": [{"fishermask": {"sparsity": 0.01}}]})
    assert str(e.value) == (
        "Strategy entry {'fishermask': {'sparsity': 0.01}} has no `name`; write it as "
        "{name: fishermask, sparsity: 0.01} or as 'fishermask:sparsity=0.01'."
    )
    with pytest.raises(ConfigError, match=r"has no `name`\.$"):
        ExperimentConfig.from_dict({"strategies": [{"sparsity": 0.01, "lam": 1}]})


def test_rounds_and_budget_in_one_file_are_refused_and_a_profile_swaps_one_for_the_other(
    tmp_path: Path,
) -> None:
    # `loop: {rounds: 1, budget: 100}` ran the budget's 4 queries without a word; a profile
    # giving `rounds: 2` over the file's `budget: 100` was ignored the same way
    path = tmp_path / "both.yaml"
    path.write_text("loop: {initial: 20, query_size: 20, rounds: 1, budget: 100}\n")
    with pytest.raises(ConfigError) as e:
        read_config_file(path)
    assert str(e.value) == (
        f"{path}: `loop.rounds`=1 and `loop.budget`=100 both say when to stop (the budget "
        "would win); keep one."
    )
    path = tmp_path / "swap.yaml"
    path.write_text(
        "loop: {initial: 20, query_size: 20, budget: 100}\n"
        "profiles:\n  short: {loop: {rounds: 2}}\n  long: {loop: {budget: 200}}\n"
    )
    for profile, sizes in ((None, [20] * 4), ("short", [20] * 2), ("long", [20] * 9)):
        loop = ExperimentConfig.from_dict(read_config_file(path, profile)).loop
        assert loop.query_sizes(1000) == sizes, profile


def test_rounds_and_budget_in_one_python_mapping_are_refused_as_in_a_file() -> None:
    # ExperimentConfig.from_dict({"loop": {"rounds": 1, "budget": 100}}) ran the budget's
    # 4 queries without a word, where the same mapping in a file is refused
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict({"loop": {"initial": 20, "rounds": 1, "budget": 100}})
    assert str(e.value) == (
        "`loop.rounds`=1 and `loop.budget`=100 both say when to stop (the budget would win); "
        "keep one."
    )
    for loop in (
        {"rounds": 1, "budget": None},
        {"rounds": None, "budget": 100},
        {"rounds": "none", "budget": 100},  # a string read as None
        {"rounds": 1, "budget": "null"},
    ):
        ExperimentConfig.from_dict({"loop": {"initial": 20, **loop}})  # one of them is fine
    assert LoopConfig(budget="none").rounds == 5  # the default rounds, not refused as neither
    # a dataclass's budget wins over the default rounds (5), and its mapping says only the budget
    cfg = ExperimentConfig(loop=LoopConfig(initial=20, query_size=20, budget=100))
    assert cfg.to_dict()["loop"]["rounds"] is None
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.loop.query_sizes(1000) == [20] * 4


def test_unknown_keys_and_duplicates() -> None:
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) widht in \[model\]"):
        ExperimentConfig.from_dict({"model": {"widht": 1}})
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) foo in \[experiment\]"):
        ExperimentConfig.from_dict({"foo": 1})
    with pytest.raises(ConfigError, match=r"known: .*; did you mean 'width' for 'widht'\?$"):
        ExperimentConfig.from_dict({"model": {"widht": 1, "zzz": 2}})
    with pytest.raises(ConfigError, match="appear twice"):
        ExperimentConfig.from_dict({"strategies": ["random", "random"]})


def test_round_trip_through_dict() -> None:
    cfg = ExperimentConfig.from_dict(
        {
            "data": {"dataset": "digits", "class_counts": [5, 0, 5], "image_size": "16x16"},
            "strategies": ["random", {"name": "kcenter", "label": "kc"}],
            "seeds": 2,
        }
    )
    assert cfg.data.image_size == (16, 16) and cfg.data.class_counts == (5, 0, 5)
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


def test_deep_merge() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 3}}) == {
        "a": {"b": 3, "c": 2},
        "d": 1,
    }


@pytest.mark.parametrize(
    ("text", "profile", "expected"),
    [
        # stop: epochs trained exactly `epochs` (200), ignoring max_epochs: 3
        ("train: {stop: epochs, max_epochs: 3}\n", None, "`train.max_epochs`=3"),
        # the default stop rule (accuracy) trained to the target, ignoring epochs: 2
        ("train: {epochs: 2}\n", None, "`train.epochs`=2"),
        ("train: {stop: accuracy, epochs: 2}\n", None, "`train.epochs`=2"),
        # a profile's key under the file's rule, or a profile's rule over its own key
        ("train: {stop: epochs}\nprofiles: {cpu: {train: {max_epochs: 3}}}\n", "cpu", "max_e"),
        ("profiles: {cpu: {train: {stop: epochs, max_epochs: 3}}}\n", "cpu", "profile cpu"),
    ],
)
def test_a_config_key_the_stop_rule_would_ignore_is_refused(
    tmp_path, text: str, profile: str | None, expected: str
) -> None:
    from fishermask.experiments.config import read_config_file

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="would be ignored by the stop rule") as e:
        read_config_file(path, profile)
    assert expected in str(e.value) and str(path) in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "profile"),
    [
        ("train: {stop: epochs, epochs: 3}\n", None),
        ("train: {stop: accuracy, max_epochs: 3}\n", None),
        # a profile that changes the rule overrides the file's key for the old rule
        ("train: {max_epochs: 3}\nprofiles: {cpu: {train: {stop: epochs, epochs: 2}}}\n", "cpu"),
    ],
)
def test_config_keys_of_the_stop_rule_in_use_are_fine(
    tmp_path, text: str, profile: str | None
) -> None:
    from fishermask.experiments.config import read_config_file

    path = tmp_path / "c.yaml"
    path.write_text(text)
    ExperimentConfig.from_dict(read_config_file(path, profile))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "data: {dataset: digits\nmodel: mlp\n",
            "line 2, column 6: expected ',' or '}', but got ':' (while parsing a flow mapping "
            "that starts on line 1); fix the YAML there.",
        ),
        ("a: 1\n b: 2\n", "line 2, column 3: mapping values are not allowed here; fix the YAML"),
        ("data:\n\tdataset: digits\n", "line 2, column 1: a tab, which YAML does not take"),
    ],
)
def test_a_yaml_syntax_error_says_where_and_what(tmp_path, text: str, expected: str) -> None:
    # the message was PyYAML's first line alone, its context: "Cannot parse config file
    # x.yaml: while parsing a flow mapping", with neither the problem nor its line
    from fishermask.experiments.config import read_config_file

    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_config_file(path)
    assert str(e.value).startswith(f"Cannot parse config file {path}: {expected}"), str(e.value)
    assert "\n" not in str(e.value)


def test_a_misspelt_profile_is_suggested(tmp_path) -> None:
    from fishermask.experiments.config import read_config_file

    path = tmp_path / "c.yaml"
    path.write_text("profiles: {fast: {rounds: 1}, cpu: {rounds: 2}}\n")
    with pytest.raises(ConfigError, match=r"its profiles: fast, cpu; did you mean 'fast'\?$"):
        read_config_file(path, "fsat")
    with pytest.raises(ConfigError, match=r"its profiles: fast, cpu\.$"):  # nothing close
        read_config_file(path, "gpu4")
