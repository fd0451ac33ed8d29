"""Experiment configuration: typed frozen dataclasses, loaded from YAML/TOML and CLI overrides.

A config file mirrors :class:`ExperimentConfig`::

    data: {dataset: ../shared/datasets/cifar10-jpeg.tar.gz, preset: setting1}
    model: {name: resnet18, width: 0.25}
    train: {max_epochs: 30}
    loop: {initial: 250, query_size: 250, budget: 5750}
    strategies: [random, entropy, {name: fishermask, sparsity: 0.002}]
    seeds: [0, 1, 2]
    profiles:            # optional named overrides, chosen with --profile
      cpu: {model: {width: 0.25}}

Unknown keys are errors. Later layers override earlier ones: defaults, file,
profile, command-line options.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from fishermask.errors import ConfigError, check_positive
from fishermask.text import did_you_mean
from fishermask.training.config import TrainConfig
from fishermask.validation import Section, coerce_field, validate_fields


@dataclass(frozen=True)
class DataConfig(Section):
    """Which data set, and which classes/images of it, form the pool and the test split."""

    section: ClassVar[str] = "data"

    dataset: str = "mnist5k"
    preset: str | None = None
    class_counts: tuple[int, ...] | None = None
    preset_seed: int = 0
    image_size: tuple[int, int] | None = None
    cache_dir: str | None = None
    features: str | None = None  # .npy [N_train + N_test, D] aligned with the data set's images
    backbone: str | None = None  # TorchScript / torch.save'd module computing the features
    # content hash of the .npz `dataset` (fishermask.data.memory.dataset_sha256); set by
    # fishermask.run for data given in memory: a file with other content is refused
    sha256: str | None = None

    def check(self) -> None:
        if self.sha256 is not None and not str(self.dataset).lower().endswith(".npz"):
            raise ConfigError(
                f"`data.sha256` pins the content of an .npz data set, but `dataset` is "
                f"{self.dataset!r}; drop sha256 or point dataset at the .npz."
            )
        for n in self.class_counts or ():
            check_positive("class_counts", n, allow_zero=True)
        for n in self.image_size or ():
            check_positive("image_size", n)
        if self.features is not None and self.backbone is not None:
            raise ConfigError(
                "Give `features` (a .npy file) or `backbone` (a module that computes them), "
                "not both."
            )


@dataclass(frozen=True)
class ModelConfig(Section):
    """The classifier: registry name, width multiplier (channels scale with it), dropout.

    ``dropout`` acts before the final layer, ``hidden_dropout`` between the hidden stages
    of ``cnn`` and ``mlp``; both are active at query time for the MC-dropout strategies
    (``bald``, ``batchbald``). 0 (the default) adds no dropout at all.
    """

    section: ClassVar[str] = "model"

    name: str = "cnn"
    width: float = 1.0
    dropout: float = 0.0
    hidden_dropout: float = 0.0

    def check(self) -> None:
        from fishermask.models import check_width
        from fishermask.models.dropout import check_rate

        if not self.width > 0:
            raise ConfigError(f"`model.width`={self.width}, must be > 0.")
        check_width(self.name, self.width)
        check_rate("model.dropout", self.dropout)
        check_rate("model.hidden_dropout", self.hidden_dropout)

    @staticmethod
    def parse(text: str) -> dict[str, Any]:
        """``"cnn"`` or ``"cnn:dropout=0.3,width=0.5"`` -> the [model] mapping it stands for."""
        name, _, rest = str(text).partition(":")
        out: dict[str, Any] = {"name": name.strip()}
        for part in filter(None, rest.split(",")):
            k, eq, v = part.partition("=")
            if not eq:
                raise ConfigError(
                    f"Model option {part!r} in {text!r} must look like key=value "
                    "(e.g. --model cnn:dropout=0.3)."
                )
            out[k.strip()] = yaml.safe_load(v)
        return out


@dataclass(frozen=True)
class LoopConfig(Section):
    """The active-learning loop: start size, batch size, and when to stop.

    Give either ``rounds`` (number of queries) or ``budget`` (total labels to
    reach, the last query shrinking to land on it exactly). Here ``budget`` wins over
    ``rounds`` (whose default is 5), which it sets to ``None``; a mapping giving both
    (:meth:`ExperimentConfig.from_dict`, a config file) is refused.
    """

    section: ClassVar[str] = "loop"

    initial: int = 50
    query_size: int = 50
    rounds: int | None = 5
    budget: int | None = None

    def __post_init__(self) -> None:
        validate_fields(self, self.section)  # "none" is None here
        if self.budget is not None and self.rounds is not None:
            object.__setattr__(self, "rounds", None)  # the budget decides the rounds
        self.check()

    def check(self) -> None:
        check_positive("initial", self.initial)
        check_positive("query_size", self.query_size)
        if self.rounds is not None:
            check_positive("rounds", self.rounds, allow_zero=True)
        if self.budget is not None and self.budget < self.initial:
            raise ConfigError(
                f"`budget`={self.budget} is smaller than the initial labeled set "
                f"({self.initial}); use a budget >= initial."
            )
        if self.rounds is None and self.budget is None:
            raise ConfigError("Give the loop either `rounds` or `budget`.")

    def query_sizes(self, pool_size: int) -> list[int]:
        """Sizes of the successive queries, validated against the pool size."""
        if self.initial > pool_size:
            raise ConfigError(
                f"The initial labeled set ({self.initial}) is larger than the pool "
                f"({pool_size} items); use --initial <= {pool_size}."
            )
        if self.budget is not None:
            if self.budget > pool_size:
                raise ConfigError(
                    f"Budget {self.budget} is larger than the pool ({pool_size} items); "
                    f"use --budget <= {pool_size}."
                )
            n = math.ceil((self.budget - self.initial) / self.query_size)
            sizes = [self.query_size] * n
            if n:
                sizes[-1] = self.budget - self.initial - self.query_size * (n - 1)
            return sizes
        total = self.initial + self.query_size * (self.rounds or 0)
        if total > pool_size:
            raise ConfigError(
                f"{self.rounds} rounds of {self.query_size} after {self.initial} initial labels "
                f"need {total} labels, more than the pool ({pool_size} items); "
                "use fewer --rounds or a smaller --query-size."
            )
        return [self.query_size] * (self.rounds or 0)


@dataclass(frozen=True)
class StrategySpec:
    """A strategy by registry name, with options; ``label`` names it in results."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def key(self) -> str:
        return self.label or self.name

    @classmethod
    def parse(cls, item: str | dict[str, Any]) -> StrategySpec:
        """Parse ``"entropy"``, ``"fishermask:sparsity=0.01,lam=1"`` or a mapping.

        A mapping is ``{name: ..., label: ..., **options}``.
        """
        if isinstance(item, StrategySpec):
            return item
        if isinstance(item, str):
            name, _, rest = item.partition(":")
            opts: dict[str, Any] = {}
            for part in filter(None, rest.split(",")):
                k, eq, v = part.partition("=")
                if not eq:
                    raise ConfigError(
                        f"Strategy option {part!r} in {item!r} must look like key=value."
                    )
                opts[k.strip()] = yaml.safe_load(v)
            label = opts.pop("label", "")
            return cls(name.strip(), opts, str(label))
        if isinstance(item, dict):
            item = dict(item)
            if "name" not in item:
                only = next(iter(item)) if len(item) == 1 else None
                opts = item[only] if only is not None else None
                if isinstance(opts, dict) or (only is not None and opts is None):
                    # YAML's `- fishermask: {sparsity: 0.01}`: the name is the key
                    pairs = [f"{k}: {v}" for k, v in (opts or {}).items()]
                    spec = ",".join(f"{k}={v}" for k, v in (opts or {}).items())
                    raise ConfigError(
                        f"Strategy entry {item} has no `name`; write it as "
                        f"{{{', '.join([f'name: {only}', *pairs])}}} or as "
                        f"'{only}{':' + spec if spec else ''}'."
                    )
                raise ConfigError(f"Strategy entry {item} has no `name`.")
            name = item.pop("name")
            label = item.pop("label", "")
            opts = dict(item.pop("options", {}) or {})
            opts.update(item)
            return cls(str(name), opts, str(label))
        raise ConfigError(f"Cannot read strategy entry {item!r}.")


@dataclass(frozen=True)
class ExperimentConfig(Section):
    """One experiment: one data set, one model and recipe, several strategies x seeds."""

    data: DataConfig = field(default_factory=DataConfig)
    # the default experiment (no [model] section): the CNN at half width, so that FisherMask's
    # greedy selection (cost linear in k >= the 640-weight final layer) keeps the whole run
    # under 5 minutes on 2 CPU cores; a [model] section or --model/--width starts from width 1
    model: ModelConfig = field(default_factory=lambda: ModelConfig(width=0.5))
    train: TrainConfig = field(default_factory=TrainConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    strategies: tuple[StrategySpec, ...] = tuple(
        StrategySpec(n) for n in ("random", "entropy", "margin", "kcenter", "fishermask")
    )
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"
    threads: int = 1  # torch CPU threads per trial; results depend on it, so it is fixed
    # modules or .py files imported (in every process) before the strategies are looked up:
    # where your own @register'ed strategies live (fishermask.plugins)
    imports: tuple[str, ...] = ()

    def check(self) -> None:
        if not self.strategies:
            raise ConfigError("No strategy given; pass at least one --strategy.")
        keys = [s.key for s in self.strategies]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ConfigError(
                f"Strategy label(s) {', '.join(dup)} appear twice; give each variant a `label`."
            )
        if not self.seeds:
            raise ConfigError("No seed given; pass --seeds N or --seeds 0,1,2.")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"Seeds {list(self.seeds)} repeat a value.")
        check_positive("threads", self.threads)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExperimentConfig:
        raw = dict(raw)
        _reject_unknown("experiment", raw, {f.name for f in dataclasses.fields(cls)})
        kwargs: dict[str, Any] = {}
        for name, sub in (
            ("data", DataConfig),
            ("model", ModelConfig),
            ("train", TrainConfig),
            ("loop", LoopConfig),
        ):
            if name in raw:
                section = raw[name] or {}
                if name == "model" and isinstance(section, str):
                    section = {"name": section}  # model: "cnn:dropout=0.3"
                if not isinstance(section, dict):
                    raise ConfigError(f"[{name}] must be a mapping, got {section!r}.")
                section = dict(section)
                model_name = section.get("name")
                if name == "model" and isinstance(model_name, str) and ":" in model_name:
                    section.update(ModelConfig.parse(section.pop("name")))  # cnn:dropout=0.3
                if name == "loop":
                    refuse_rounds_and_budget(section)
                kwargs[name] = _build(sub, section, name)
        if "strategies" in raw:
            items = raw["strategies"]
            if isinstance(items, str):
                items = [s for s in _split_top_level(items)]
            kwargs["strategies"] = tuple(StrategySpec.parse(s) for s in items)
        if "seeds" in raw:
            kwargs["seeds"] = parse_seeds(raw["seeds"])
        for name in ("device", "threads"):
            if name in raw:
                kwargs[name] = raw[name]
        if "imports" in raw:
            items = raw["imports"] or ()
            if isinstance(items, str):
                items = [s.strip() for s in items.split(",") if s.strip()]
            kwargs["imports"] = items
        return cls(**kwargs)


def _split_top_level(text: str) -> list[str]:
    """Split ``"a,b:x=1,c"``-style lists on commas that start a new strategy name."""
    out: list[str] = []
    for part in text.split(","):
        if out and "=" in part and ":" not in part:
            out[-1] += "," + part  # an option of the previous strategy
        elif part.strip():
            out.append(part.strip())
    return out


_SEEDS_HELP = "give a count (3 -> seeds 0, 1, 2), a list (0,5,7), or one seed as `5,` or `[5]`"


def parse_seeds(value: Any) -> tuple[int, ...]:
    """``3`` -> (0, 1, 2); ``"0,5,7"`` or ``[0, 5, 7]`` -> those seeds; ``"5,"``/``"[5]"`` -> (5,).

    A bare number is a count; a comma or brackets make it a list, so one seed alone is
    ``5,`` or ``[5]`` (YAML: ``seeds: [5]``).
    """
    if isinstance(value, bool):
        raise ConfigError(f"Seeds {value!r}: {_SEEDS_HELP}.")
    if isinstance(value, int):
        if value < 1:  # `--seeds 0` means seed 0 to a reader: say how to write that
            one = value if value >= 0 else 5
            raise ConfigError(
                f"Seeds {value}: a bare number is a count of seeds (3 -> seeds 0, 1, 2), so it "
                f"must be >= 1; one seed alone is written with a comma or brackets, `{one},` or "
                f"`[{one}]` (seeds: [{one}] in a file or in Python)."
            )
        return tuple(range(value))
    if isinstance(value, str):
        text = value.replace(" ", "")
        bracketed = text.startswith("[") and text.endswith("]")
        text = text[1:-1] if bracketed else text
        try:
            nums = [int(p) for p in text.split(",") if p]
        except ValueError:
            raise ConfigError(f"Seeds {value!r}: {_SEEDS_HELP}.") from None
        if len(nums) == 1 and not bracketed and "," not in text:
            return parse_seeds(nums[0])
        return parse_seeds(nums)
    if isinstance(value, (list, tuple)):
        # int() read True as seed 1 and 1.5 as seed 1
        odd = [v for v in value if isinstance(v, bool) or (isinstance(v, float) and v % 1)]
        if odd:
            kind = "a boolean" if isinstance(odd[0], bool) else "not a whole number"
            raise ConfigError(f"Seeds {list(value)!r}: {odd[0]!r} is {kind}; {_SEEDS_HELP}.")
        try:
            seeds = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"Seeds {value!r} must be integers.") from None
        if any(v < 0 for v in seeds):
            raise ConfigError(f"Seeds {list(seeds)}: seeds must be >= 0.")
        return seeds
    raise ConfigError(f"Seeds {value!r}: {_SEEDS_HELP}.")


def _reject_unknown(section: str, raw: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        message = did_you_mean(
            f"Unknown key(s) {', '.join(unknown)} in [{section}]; "
            f"known: {', '.join(sorted(known))}.",
            unknown,
            sorted(known),
        )
        top = {f.name for f in dataclasses.fields(ExperimentConfig)} | {"profiles"}
        misplaced = [k for k in unknown if k in top] if section != "experiment" else []
        if misplaced:  # TOML: a key written below a [table] header belongs to that table
            message = (
                f"{message.removesuffix('.')}; `{misplaced[0]}` is a top-level key, not one of "
                f"[{section}]: in TOML write it above the first [table] header (a key below one "
                "belongs to that table); in YAML, unindent it."
            )
        raise ConfigError(message)


def _build(cls: type, raw: dict[str, Any], section: str) -> Any:
    """Section ``cls`` from a mapping; its fields are validated on construction."""
    if not isinstance(raw, dict):
        raise ConfigError(f"[{section}] must be a mapping, got {raw!r}.")
    _reject_unknown(section, raw, {f.name for f in dataclasses.fields(cls)})
    return cls(**raw)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _parse_error(e: Exception) -> str:
    """A parser's complaint in one line, where it is, and the fix: PyYAML's first line was
    its context alone (``while parsing a flow mapping``), without the problem or a line."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if mark is not None and problem:  # PyYAML: 0-based marks
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and start is not None and start.line != mark.line:
            context += f" that starts on line {start.line + 1}"
        if "'\\t'" in problem:
            return f"{where}: a tab, which YAML does not take for indentation; indent with spaces."
        after = f" ({context})" if context else ""
        return f"{where}: {problem}{after}; fix the YAML there."
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text + ("; fix the TOML there." if "line" in text else "")


def read_config_file(path: str | Path, profile: str | None = None) -> dict[str, Any]:
    """Read a YAML or TOML experiment file, applying ``profile`` from its ``profiles`` table."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file {p} does not exist.")
    text = p.read_text()
    try:
        if p.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        else:
            raw = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - parser errors vary by library
        raise ConfigError(f"Cannot parse config file {p}: {_parse_error(e)}") from None
    if raw is None or raw == {}:
        raise ConfigError(
            f"Config file {p} is empty; write the settings to change, e.g. "
            "`data: {dataset: digits}` (docs/experiments.md, Config files), or drop --config "
            "for the defaults."
        )
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {p} must hold a mapping at the top level.")
    profiles = raw.pop("profiles", {}) or {}
    raw.pop("description", None)
    layers = [(str(p), raw)]
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(profiles) or "none"
            raise ConfigError(
                did_you_mean(
                    f"Profile {profile!r} is not in {p}; its profiles: {known}.", profile, profiles
                )
            )
        layers.append((f"{p} (profile {profile})", profiles[profile]))
        raw = deep_merge(raw, profiles[profile])
    check_stop_keys(layers)
    return loop_of_last_layer(raw, layers)


def _gives(loop: Mapping[str, Any], key: str) -> bool:
    """Whether ``loop`` sets ``key`` (``rounds`` or ``budget``) to a value: not None, nor a
    string read as None (``"none"``)."""
    value = loop.get(key)
    return value is not None and coerce_field(LoopConfig, key, value, f"loop.{key}") is not None


def refuse_rounds_and_budget(loop: Mapping[str, Any], where: str = "") -> None:
    """Refuse a ``loop`` mapping that gives both ``rounds`` and ``budget`` (the budget would
    win, silently); ``where`` (a file, a profile) starts the message."""
    if _gives(loop, "rounds") and _gives(loop, "budget"):
        raise ConfigError(
            f"{where + ': ' if where else ''}`loop.rounds`={loop['rounds']} and "
            f"`loop.budget`={loop['budget']} both say when to stop (the budget would win); "
            "keep one."
        )


def loop_of_last_layer(raw: dict[str, Any], layers: list[tuple[str, Any]]) -> dict[str, Any]:
    """``raw`` (the ``layers`` merged) with the last layer's stop key: refuse ``rounds`` and
    ``budget`` together in one layer (the budget would win, silently); a later layer's
    ``rounds`` or ``budget`` replaces an earlier one's other key, as ``--rounds`` replaces a
    file's ``budget``."""
    loops = [(where, layer.get("loop")) for where, layer in layers if isinstance(layer, Mapping)]
    loops = [(where, loop) for where, loop in loops if isinstance(loop, Mapping)]
    for where, loop in loops:
        refuse_rounds_and_budget(loop, where)
    if len(loops) > 1 and isinstance(raw.get("loop"), dict):
        last = loops[-1][1]
        for key, other in (("rounds", "budget"), ("budget", "rounds")):
            if _gives(last, key) and other not in last:
                raw = {**raw, "loop": {**raw["loop"], other: None}}
    return raw


def check_stop_keys(layers: list[tuple[str, Any]]) -> None:
    """Refuse a ``train`` key the stop rule would ignore, as the command line refuses its flags.

    ``layers`` are ``(where, mapping)`` from first to last (a file, then its profile). The
    stop rule is the last layer's ``train.stop`` (default accuracy); ``max_epochs`` under
    ``stop: epochs``, or ``epochs`` under ``stop: accuracy``, is an error when given in the
    layer that sets the rule or a later one (an earlier layer's key is overridden along with
    its rule, as ``--stop`` overrides a file's).
    """
    trains = [
        (where, layer.get("train")) if isinstance(layer, dict) else (where, None)
        for where, layer in layers
    ]
    trains = [(where, t if isinstance(t, dict) else {}) for where, t in trains]
    stop, since = TrainConfig.stop, 0
    for i, (_, t) in enumerate(trains):
        if "stop" in t:
            stop, since = t["stop"], i
    ignored, fix = {
        "epochs": ("max_epochs", "use `epochs: N` for a fixed number, or `stop: accuracy`"),
        "accuracy": (
            "epochs",
            "use `max_epochs: N` to cap training to the accuracy target, or `stop: epochs`",
        ),
    }.get(stop, (None, ""))
    for where, t in trains[since:]:
        if ignored in t:
            raise ConfigError(
                f"{where}: `train.{ignored}`={t[ignored]} would be ignored by the stop rule "
                f"{stop}; {fix}."
            )
