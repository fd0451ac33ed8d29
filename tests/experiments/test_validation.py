"""Every configuration value is checked against its type, from a file, the CLI or Python."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fishermask import strategies
from fishermask.cli import app
from fishermask.errors import ConfigError
from fishermask.experiments.config import DataConfig, ExperimentConfig, LoopConfig, ModelConfig
from fishermask.strategies.base import Strategy
from fishermask.training.config import TrainConfig
from fishermask.validation import coerce_field

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "loop": LoopConfig}
TOP_LEVEL = ("device", "threads")  # seeds and strategies have their own readers (test_config.py)

# The cases the issue lists: (config, the field named, the value named)
BAD = [
    ({"train": {"lr": "fast"}}, "train.lr", "'fast'"),
    ({"model": {"width": "wide"}}, "model.width", "'wide'"),
    ({"threads": "two"}, "threads", "'two'"),
    ({"train": {"reinit": "maybe"}}, "train.reinit", "'maybe'"),
    ({"model": {"width": -1}}, "model.width", "-1"),
    ({"train": {"lr": True}}, "train.lr", "True"),
    ({"data": {"image_size": "16xa"}}, "data.image_size", "'16xa'"),
    ({"train": {"milestones": [160, 0]}}, "milestones", "0"),
    ({"train": {"weight_decay": -0.1}}, "weight_decay", "-0.1"),
]


@pytest.mark.parametrize(("raw", "field", "value"), BAD)
def test_bad_values_name_field_and_value(raw: dict[str, Any], field: str, value: str) -> None:
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict(raw)
    msg = str(e.value)
    assert f"`{field}`={value}" in msg and "must be" in msg and "\n" not in msg, msg


@pytest.mark.parametrize("size", ["16", "16x", "16x16x3", 16, [16], [16, "a"]])
def test_an_image_size_of_other_than_two_numbers_says_hxw(size: Any) -> None:
    # `--image-size 16` said "`data.image_size`=(16,), Field required." (pydantic's word for
    # the missing width), naming neither the value given nor the form wanted
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict({"data": {"image_size": size}})
    msg = str(e.value)
    assert msg == f"`data.image_size`={size!r}, must be 2 integers, e.g. 32x32 (HxW) or [32, 32]."


def test_a_boolean_in_an_image_size_is_refused_not_read_as_1() -> None:
    # pydantic's lax mode read [True, 3] as (1, 3): a 1-pixel-high image, said nowhere
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict({"data": {"image_size": [True, 3]}})
    assert str(e.value) == (
        "`data.image_size`=[True, 3]: True (item 1) is a boolean, not an integer; write the "
        "number, e.g. [1, 3]."
    )
    with pytest.raises(ConfigError, match=r"`data.image_size`=\[16, False\]: False \(item 2\)"):
        ExperimentConfig.from_dict(yaml.safe_load("data: {image_size: [16, no]}"))  # YAML 1.1


def _int_tuple_fields() -> list[tuple[str, str, int | None]]:
    """``(section, field, length)`` of every field of integers (None: any length)."""
    out = []
    for sec, cls in SECTIONS.items():
        for name, hint in typing.get_type_hints(cls).items():
            union = typing.get_origin(hint) in (typing.Union, type(int | None))
            for part in typing.get_args(hint) if union else (hint,):
                args = typing.get_args(part)
                if typing.get_origin(part) is tuple and args and args[0] is int:
                    out.append((sec, name, None if args[-1] is Ellipsis else len(args)))
    return out


@pytest.mark.parametrize(("section", "name", "length"), _int_tuple_fields())
def test_every_field_of_integers_refuses_a_boolean_item(
    section: str, name: str, length: int | None
) -> None:
    value = [7] * (length or 2)
    value[-1] = True
    with pytest.raises(ConfigError, match=f"`{section}.{name}`=.*True .* is a boolean"):
        ExperimentConfig.from_dict({section: {name: value}})


def test_int_tuple_fields_are_found() -> None:
    found = {(sec, name) for sec, name, _ in _int_tuple_fields()}
    assert {("data", "image_size"), ("data", "class_counts"), ("train", "milestones")} <= found
    # a list of names is no list of numbers: no "write the number" for it
    with pytest.raises(ConfigError, match=r"`imports`=\[True\], must be a valid string"):
        ExperimentConfig.from_dict({"imports": [True]})


def test_reinit_no_is_false_not_a_truthy_string() -> None:
    for text, want in (("no", False), ("false", False), ("yes", True), ("on", True)):
        assert ExperimentConfig.from_dict({"train": {"reinit": text}}).train.reinit is want


def test_strings_are_read_as_their_type() -> None:
    cfg = ExperimentConfig.from_dict(
        {
            "train": {"lr": "1e-3", "batch_size": "32", "milestones": "160,240"},
            "data": {"image_size": "16x16", "class_counts": [5, 0, 5]},
            "loop": {"rounds": "none", "budget": 60},
            "threads": "2",
        }
    )
    assert cfg.train.lr == 0.001 and cfg.train.batch_size == 32
    assert cfg.train.milestones == (160, 240) and cfg.data.image_size == (16, 16)
    assert cfg.data.class_counts == (5, 0, 5) and cfg.loop.rounds is None and cfg.threads == 2


def test_python_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="`train.lr`='fast'"):
        TrainConfig(lr="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="`threads`=1.5"):
        ExperimentConfig(threads=1.5)  # type: ignore[arg-type]
    assert ModelConfig(width=1).width == 1.0 and isinstance(ModelConfig(width=1).width, float)


def _fields() -> list[tuple[str, str]]:
    out = [(sec, f.name) for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
    return out + [("", name) for name in TOP_LEVEL]


@pytest.mark.parametrize(("section", "name"), _fields())
def test_every_field_is_validated(section: str, name: str) -> None:
    """A value no field type accepts is refused with the field's name (new fields included)."""
    raw: dict[str, Any] = {name: {"nested": [1]}}
    if section:
        raw = {section: raw}
    where = f"{section}.{name}" if section else name
    with pytest.raises(ConfigError, match=f"`{where}`="):
        ExperimentConfig.from_dict(raw)


@pytest.mark.parametrize(("section", "name"), _fields())
def test_every_field_survives_the_round_trip(section: str, name: str) -> None:
    """The default of each field, written to config.json and read back, is unchanged."""
    default = ExperimentConfig()
    raw = default.to_dict()
    # the whole section: a section given in a file starts from its own defaults (the
    # default experiment's [model] is the CNN at width 0.5, a [model] section starts at 1)
    back = ExperimentConfig.from_dict({section: raw[section]} if section else {name: raw[name]})
    assert back == default


def _options() -> list[tuple[str, str]]:
    return [
        (name, f.name)
        for name in strategies.available()
        for f in dataclasses.fields(strategies.registry.strategy_class(name))
    ]


@pytest.mark.parametrize(("strategy", "option"), _options())
def test_every_strategy_option_is_validated(strategy: str, option: str) -> None:
    with pytest.raises(ConfigError, match=f"`{strategy}:{option}`="):
        strategies.get(strategy, **{option: {"nested": [1]}})


def test_strategy_option_ture_is_refused() -> None:
    """A boolean option spelled wrong is an error, not False."""

    @dataclass(frozen=True)
    class Flagged(Strategy):
        flag: bool = False

    assert coerce_field(Flagged, "flag", "true", "x:flag") is True
    assert coerce_field(Flagged, "flag", "no", "x:flag") is False
    with pytest.raises(ConfigError, match="`x:flag`='ture', must be a valid boolean"):
        coerce_field(Flagged, "flag", "ture", "x:flag")
    with pytest.raises(ConfigError, match="`badge:chunk`='ture', must be a valid integer"):
        strategies.get("badge", chunk="ture")


CLI_BAD = [
    ("train: {lr: fast}\n", [], "`train.lr`='fast'"),
    ("model: {width: wide}\n", [], "`model.width`='wide'"),
    ("threads: two\n", [], "`threads`='two'"),
    ("train: {reinit: maybe}\n", [], "`train.reinit`='maybe'"),
    ("", ["--width", "-1"], "`model.width`=-1.0"),
    ("", ["-s", "badge:chunk=ture"], "`badge:chunk`='ture'"),
    ("strategies: [{name: fishermask, sparsity: lots}]\n", [], "`fishermask:sparsity`='lots'"),
]


@pytest.mark.parametrize(("text", "args", "expected"), CLI_BAD)
def test_cli_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, text: str, args: list[str], expected: str
) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(text or yaml.safe_dump({"seeds": 1}))
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["run", "--config", str(cfg), *args, "--out", str(out), "--no-progress"]
    )
    assert res.exit_code == 2, res.output
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and expected in msg, msg
    assert not out.exists()


@pytest.mark.skipif(
    __import__("torch").backends.mps.is_available(), reason="this machine has an MPS device"
)
def test_a_device_this_torch_cannot_use_is_one_line():
    """device='mps' on a machine without it stopped with torch's RuntimeError from deep in the
    run ('PyTorch is not linked with support for mps devices')."""
    from fishermask.experiments.experiment import resolve_device

    with pytest.raises(
        ConfigError,
        match=r"^Device 'mps' is not available in this torch build on this machine; use cpu, "
        r"cuda, cuda:N or auto\.$",
    ):
        resolve_device("mps")
    assert resolve_device("cpu").type == "cpu"
