"""docs/methods.md, docs/decisions.md and the README's strategy table say what the code does.

Each check states a sentence of a document with its numbers taken from the code (strategy
defaults, the training defaults, the experiment files' profiles, the models' sizes), so a
default or profile changed in the code without its document, or a number edited in the
document alone, fails here. Phrases are compared with whitespace collapsed and the thousands
separators of the prose ("5 750") removed.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from fishermask.experiments.config import read_config_file
from fishermask.models import build_model
from fishermask.reporting.report import METHODS, compared_strategies
from fishermask.strategies import registry
from fishermask.strategies.bait import BaitStrategy
from fishermask.strategies.fishermask import FisherMaskStrategy
from fishermask.strategies.lpl import LPLStrategy
from fishermask.strategies.lplgrad import LPLGradStrategy
from fishermask.strategies.typiclust import typiclust_select
from fishermask.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FM, BAIT, LPL, LPLGRAD, TRAIN = (
    FisherMaskStrategy(),
    BaitStrategy(),
    LPLStrategy(),
    LPLGradStrategy(),
    TrainConfig(),
)


def normalised(text: str) -> str:
    text = " ".join(text.split())
    return re.sub(r"(?<=\d) (?=\d{3}\b)", "", text)


@cache
def doc(name: str) -> str:
    return normalised((ROOT / name).read_text())


def num(x: float) -> str:
    """A number as the documents write it (1.0 -> 1, 0.005 -> 0.005)."""
    return f"{x:g}"


def profile(name: str, which: str = "cpu") -> dict[str, Any]:
    return read_config_file(ROOT / "experiments" / f"{name}.yaml", which)


def option(cfg: dict[str, Any], strategy: str, key: str) -> Any:
    """An option of a strategy in a profile's list, else the strategy's default."""
    for s in cfg["strategies"]:
        if isinstance(s, dict) and s["name"] == strategy and key in s:
            return s[key]
    return getattr(registry.get(strategy), key)


def cpu_mask(preset_classes: int, sparsity: float) -> tuple[int, int, int]:
    """(k at ``sparsity``, final-layer weights, standard mode's floor) of the cpu network."""
    model = build_model("resnet18", preset_classes, (3, 32, 32), width=0.125)
    p = sum(t.numel() for t in model.parameters())
    final = model.classifier.weight.numel()
    return round(sparsity * p), final, final + math.ceil(final / 20)


def facts() -> list[tuple[str, str]]:
    """(document, sentence) pairs: what each document says, with the code's numbers."""
    low, high, s2 = (profile(f"cifar10_{s}") for s in ("setting1_low", "setting1_high", "setting2"))
    paper = profile("cifar10_setting1_low", "paper")
    lplgrad = profile("cifar10_lplgrad")
    cpu_sparsity = option(low, "fishermask", "sparsity")
    k1, final1, _ = cpu_mask(4, cpu_sparsity)
    k2, final2, _ = cpu_mask(10, cpu_sparsity)
    p1, _, _ = cpu_mask(4, FM.sparsity)
    p2, _, floor2 = cpu_mask(10, FM.sparsity)

    def steps(cfg: dict[str, Any]) -> str:
        loop = cfg["loop"]
        return f"{loop['initial']} → {loop['budget']} by {loop['query_size']}"

    def params(width: float) -> int:
        return sum(t.numel() for t in build_model("resnet18", 10, (3, 32, 32), width).parameters())

    epochs = lplgrad["train"]["epochs"]
    detach = LPL.make_auxiliary(build_model("cnn", 10, (1, 8, 8))).detach_epoch(epochs)
    m = "docs/methods.md"
    d = "docs/decisions.md"
    return [
        # §1.3 training defaults
        (m, f"at most `max_epochs` epochs (default {TRAIN.max_epochs}; the paper profiles use "
            f"{paper['train']['max_epochs']})"),
        (m, f"batch {TRAIN.batch_size} (`train.optimizer`"),
        (m, f"multiplies the rate by `lr_gamma` ({num(TRAIN.lr_gamma)})"),
        (m, f"reaches {num(100 * TRAIN.target_accuracy)} % (`target_accuracy`)"),
        (m, f"(`crop_padding`, {TRAIN.crop_padding})"),
        # §2 FisherMask and §3 BAIT
        (m, f"`fisher_samples` images (default {FM.fisher_samples}"),
        (m, f"found **{num(FM.sparsity)}** best"),
        (m, f"λ = {num(FM.lam)} for FisherMask"),
        (m, f"λ = {num(BAIT.lam)} for BAIT"),
        (m, f"`backward_steps` = {FM.backward_steps} for FisherMask"),
        (m, f"and {BAIT.backward_steps} for BAIT (BAIT's 2× oversampling"),
        (m, f"`lam` (λ, default {num(BAIT.lam)},"),
        (m, f"`backward_steps` (default {BAIT.backward_steps}: pick 2B greedily"),
        (m, f"(P ≈ {params(1.0) / 1e6:.1f} M, so k ≈ {round(FM.sparsity * params(1.0), -3):.0f})"),
        # §6.4 model sizes, §6.5 the cpu network
        (m, f"Width 1 has {params(1.0) / 1e6:.2f} M parameters for 10 classes"),
        (m, f"width 1/4 ≈ {params(0.25) / 1e6:.2f} M parameters, "
            f"1/8 ≈ {params(0.125) / 1e6:.2f} M"),
        (m, f"a 1/8-width ResNet-18 (P ≈ {round(params(0.125), -3):.0f})"),
        # §5 LPL and LPLgrad
        (m, f"W = module_width ({LPL.module_width})"),
        (m, f"w = weight (default {num(LPL.weight)})"),
        (m, f"ξ = margin ({num(LPL.margin)})"),
        (m, f"(`ties: {LPL.ties}`, default)"),
        (m, f"The default {num(LPL.detach_fraction)} is the references' point"),
        (m, f"(`subset` default {LPLGRAD.subset}, as in the LPLgrad code"),
        (m, f"(norm: {LPLGRAD.norm}, default"),
        (m, f"(`parameters: {LPLGRAD.parameters}`, the reference"),
        # §5.7 the LPLgrad protocol's cpu profile
        (m, f"{steps(lplgrad).replace(' by', ' labels by')}, {epochs} epochs with the milestone "
            f"at {lplgrad['train']['milestones'][0]} and the detach after epoch {detach}"),
        # §6.5 profiles
        (m, f"at most {paper['train']['max_epochs']} epochs per round, the steps of §6.2–§6.3, "
            f"FisherMask at sparsity {num(option(paper, 'fishermask', 'sparsity'))} with "
            f"`fisher_samples` {option(paper, 'fishermask', 'fisher_samples')} and "
            f"`backward_steps` {option(paper, 'fishermask', 'backward_steps')}"),
        (m, f"({low['train']['max_epochs']} epochs in Setting 1 low, "
            f"{high['train']['max_epochs']} in Setting 1 high and Setting 2)"),
        (m, f"Setting 1 low {steps(low)}; Setting 1 high {steps(high)}; Setting 2 {steps(s2)};"),
        (m, f"FisherMask at sparsity {num(cpu_sparsity)} (k = {k1} in Setting 1, {k2} in "
            f"Setting 2: the paper's {num(FM.sparsity)} would give k = {p1}"),
        (m, f"beside the {final1} final-layer weights"),
        (m, f"in Setting 2 {p2}, fewer than the {final2} final-layer weights, so standard mode "
            f"would raise it to its floor of {floor2}"),
        (m, f"LPL and LPLgrad at w = {num(option(low, 'lpl', 'weight'))}"),
        # decisions.md
        (d, f"Setting 1 low regime: ResNet-18 at width 1/8, at most "
            f"{low['train']['max_epochs']} epochs, {steps(low)}."),
        (d, f"Setting 1 high regime: width 1/8, at most {high['train']['max_epochs']} epochs, "
            f"{steps(high)}"),
        (d, f"Setting 2: width 1/8, at most {s2['train']['max_epochs']} epochs, {steps(s2)}"),
        (d, f"FisherMask sparsity {num(cpu_sparsity)} at width 1/8"),
        (d, f"k = {k1} / {k2}): the paper's {num(FM.sparsity)} gives k = {p1} / {p2}"),
        (d, f"in Setting 1 ({final1}) and is fewer than them in Setting 2 ({final2};"),
        (d, f"would raise it to {floor2})"),
        (d, f"`max_epochs` caps it (default {TRAIN.max_epochs})"),
        (d, f"`detach_fraction` (default {num(LPL.detach_fraction)})"),
        (d, f"BAIT uses **{num(BAIT.lam)}**"),
        (d, f"FisherMask keeps **λ = {num(FM.lam)}**"),
        (d, f"{epochs} epochs (milestone {lplgrad['train']['milestones'][0]}, detach after "
            f"{detach})"),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "sentence"), facts(), ids=lambda x: x[:60])
def test_the_document_says_what_the_code_does(name: str, sentence: str) -> None:
    assert normalised(sentence) in doc(name)


def test_default_cnn_mask_numbers_in_decisions() -> None:
    model = build_model("cnn", 10, (1, 28, 28))
    p = sum(t.numel() for t in model.parameters())
    final = model.classifier.weight.numel()
    said = f"(P = {p}, final layer {final}) it gives {round(FM.sparsity * p)}"
    assert normalised(said) in doc("docs/decisions.md")


def test_fishermask_options_table() -> None:
    """methods.md §2.7's table gives FisherMaskStrategy's options and defaults."""
    text = (ROOT / "docs/methods.md").read_text()
    section = text.split("### 2.7 Options")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.M)
    fields = {f.name: f.default for f in dataclasses.fields(FisherMaskStrategy)}
    assert [name for name, _ in rows] == list(fields)
    for name, shown in rows:
        default = fields[name]
        want = default if isinstance(default, str) else "none" if default is None else num(default)
        assert shown.strip() == want, name


def _readme_strategy_rows() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Strategies")[1].split("\n## ")[0]
    return re.findall(r"^\| `(\w+)` \|[^|]*\|\s*([^|]*?)\s*\|$", section, flags=re.M)


def test_readme_strategy_table_lists_every_strategy() -> None:
    assert sorted(name for name, _ in _readme_strategy_rows()) == sorted(registry.available())


def test_readme_strategy_table_options_and_defaults() -> None:
    """Every option the README's table names exists, and a default it gives is the code's."""
    wrong = []
    for name, cell in _readme_strategy_rows():
        fields = {f.name: f.default for f in dataclasses.fields(registry.strategy_class(name))}
        for opt, shown in re.findall(r"`(\w+)`(?: \(([^)]*)\))?", cell):
            if opt in registry.available():
                continue  # "as `lpl`, plus ..."
            if opt not in fields:
                wrong.append(f"{name}: no option {opt!r}")
                continue
            first = re.split(r",|/| or ", shown)[0].strip().strip("`")
            default = fields[opt]
            if not first or first.startswith("="):
                continue  # no default given, or one given in words
            if isinstance(default, bool):
                ok = first == str(default).lower()
            elif isinstance(default, int | float) and re.fullmatch(r"[\d.]+", first):
                ok = float(first) == default
            elif isinstance(default, str):
                ok = first == default
            else:
                ok = True  # a form the table writes in words (2²⁴)
            if not ok:
                wrong.append(f"{name}: {opt} shown as {first!r}, default {default!r}")
    assert wrong == []


def test_labelled_variants_compared_as_methods_md_says() -> None:
    """§6.6: a variant of a compared method is a label starting with its name and a hyphen,
    or any label of that strategy in the run's config.json (not any label starting with it)."""
    labels = ["fishermask", "fishermaskx", "fm-dispersed", "lplgrad-joint", "lplgradish", "random"]
    names = {"fm-dispersed": "fishermask"}
    got = compared_strategies(labels, METHODS, names)
    assert got == ["fishermask", "fm-dispersed", "lplgrad-joint"]
    assert "a label that starts with the name and a hyphen, such as `lplgrad-joint`" in doc(
        "docs/methods.md"
    )


def test_typiclust_fills_the_batch_in_pool_order_as_methods_md_says() -> None:
    """§9.5: with no cluster of at least min_cluster_size items left, the rest of the batch is
    the remaining unlabeled items in pool order."""
    emb = torch.arange(12, dtype=torch.float64).reshape(6, 2)
    labeled = torch.tensor([False, True, False, False, True, False])
    clusters = np.array([0, 0, 1, 1, 2, 2])  # three clusters of 2 < min_cluster_size
    pick = typiclust_select(emb, labeled, clusters, 3, min_cluster_size=5)
    assert pick.tolist() == [0, 2, 3]
    assert "the rest of the batch is the remaining unlabeled items in pool order" in doc(
        "docs/methods.md"
    )


def test_the_code_methods_md_points_to_exists() -> None:
    """Every ``Code: `fisher.x`, `strategies.y` `` of methods.md names a public object."""
    text = (ROOT / "docs/methods.md").read_text()
    names = [
        n
        for line in re.findall(r"^Code: (.*)$", text, flags=re.M)
        for n in re.findall(r"`((?:fisher|strategies)\.\w+)`", line)
    ]
    assert len(names) >= 10
    missing = []
    for name in names:
        package, attr = name.split(".")
        if not hasattr(importlib.import_module(f"fishermask.{package}"), attr):
            missing.append(name)
    assert missing == []


def test_lplgrad_protocol_recipe_is_the_experiment_files() -> None:
    """§5.7's `train: {...}` is cifar10_lplgrad.yaml's paper recipe, key for key."""
    text = normalised((ROOT / "docs/methods.md").read_text())
    said = re.search(r"`train: \{([^}]*)\}`", text)
    assert said is not None
    shown = yaml.safe_load("{" + said[1] + "}")
    for k, v in shown.items():  # YAML 1.1 reads 5e-4 as a string
        if isinstance(v, str) and re.fullmatch(r"[\d.]+e-?\d+", v):
            shown[k] = float(v)
    assert shown == profile("cifar10_lplgrad", "paper")["train"]


def test_rounds_and_budget_together_as_methods_md_says(tmp_path: Path) -> None:
    """§1's loop: both in one mapping of a file are refused (it said the budget wins, which
    only the command line still does); `--budget` wins over `--rounds`."""
    from fishermask.cli import _cli_overrides
    from fishermask.errors import ConfigError
    from fishermask.experiments.config import ExperimentConfig

    assert normalised(
        "a config file or a Python mapping giving both in one mapping is refused; `--budget` wins "
        "over `--rounds` on the command line, and either replaces the other from a file or its "
        "profile"
    ) in doc("docs/methods.md")
    both = tmp_path / "both.yaml"
    both.write_text("loop: {rounds: 5, budget: 100}\n")
    with pytest.raises(ConfigError, match="both say when to stop"):
        read_config_file(both)
    loop = ExperimentConfig.from_dict(_cli_overrides(rounds=5, budget=100)).loop
    assert loop.query_sizes(1000) == [50]  # 50 -> 100 by 50: the budget's, not 5 rounds
