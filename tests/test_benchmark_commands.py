"""Every benchmark command line the README and docs/ show is one the script accepts today.

The docs quote many ``benchmarks/*.py`` command lines, in fenced code blocks and in inline
code, next to the numbers they produced; an option renamed in the script would leave them
wrong without anyone noticing. This test finds each one and, without running the benchmark,
checks that the script exists and that its argument parser (``build_parser()``, which the
script's ``main`` parses ``sys.argv`` with) accepts the options and values given. Documented
``benchmarks/*.sh`` scripts must exist and be executable, and get no more or fewer
positional arguments than their ``usage:`` line allows (and one of its listed values where it
lists them, as ``a|b|all``).

What the docs write that is not literal shell:

- ``[--threads 1]``: optional, checked as if given;
- ``fp32|bf16`` (one word): alternatives, each checked;
- ``METHOD``, ``OLD/src``, ``RUN_DIR...``, ``$1``: placeholders, filled with a value the
  parser accepts at that place (a value of the option before it, or of the positional);
- ``...`` (alone): "and the rest"; the command is checked leniently (the options shown must
  exist and take the values shown; arguments that are required but not shown are not
  missed). Commands in inline code are checked the same way, since prose often quotes just
  the part that matters.

Options must be spelled in full: argparse would accept a unique prefix, but a prefix is
broken by the next option that shares it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import importlib.util
import io
import itertools
import os
import re
import shlex
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# a script named with its folder, or by its bare name when benchmarks/ has it
SCRIPT = re.compile(r"(?<![\w/.-])(benchmarks/)?(\w+\.(?:py|sh))\b")
# where a command line ends inside a longer shell line (outside quotes)
END = re.compile(r"\s#|;|&&|\|\||\s\|\s|[`()<>]|\s(?:do|done)\b")
PLACEHOLDER = re.compile(r"\$\w+|\$\{\w+\}|[A-Z][A-Z0-9_]*(?:/\w+)?(?:\.\.\.)?")


@dataclass(frozen=True)
class Command:
    doc: str  # path relative to the repository root
    line: int  # 1-based line of the script's name
    script: str  # file name under benchmarks/
    args: str  # the text after the script's name, up to the end of the command
    fenced: bool  # in a fenced code block (else inline code)

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: benchmarks/{self.script} {self.args}".rstrip()


def _logical_lines(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Shell lines of a fenced block with backslash continuations joined (first line's number)."""
    out: list[tuple[int, str]] = []
    cont = False
    for n, text in block:
        if cont:
            out[-1] = (out[-1][0], out[-1][1] + " " + text.strip())
        else:
            out.append((n, text))
        cont = out[-1][1].rstrip().endswith("\\")
        if cont:
            out[-1] = (out[-1][0], out[-1][1].rstrip()[:-1])
    return out


def _until_end(rest: str) -> str:
    """The start of ``rest`` up to a shell operator, a comment or an unmatched quote (the end
    of an ``sh -c '...'`` around the command)."""
    i = 0
    while i < len(rest):
        c = rest[i]
        if c in "'\"":
            close = rest.find(c, i + 1)
            if close < 0:
                break
            i = close + 1
            continue
        if END.match(rest, i):
            break
        i += 1
    return rest[:i]


def _commands_in(text: str, n: int, doc: str, fenced: bool) -> list[Command]:
    found = []
    for m in SCRIPT.finditer(text):
        if not m[1] and not (BENCH / m[2]).is_file():
            continue  # some other file's name
        args = " ".join(_until_end(text[m.end() :]).split())
        if not fenced:  # prose around an inline span: keep the command-like part only
            args = args.rstrip(".,:")
        found.append(Command(doc, n + text[: m.start()].count("\n"), m[2], args, fenced))
    return found


def find_commands(path: Path) -> list[Command]:
    """The benchmark command lines of one Markdown file, fenced or inline, in order."""
    doc = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    lines = path.read_text().split("\n")
    found: list[Command] = []
    prose: list[tuple[int, str]] = []
    block: list[tuple[int, str]] | None = None
    for n, text in enumerate(lines, 1):
        if text.lstrip().startswith("```"):
            if block is None:
                block = []
            else:
                for ln, logical in _logical_lines(block):
                    found += _commands_in(logical.split(" #")[0], ln, doc, fenced=True)
                block = None
        elif block is not None:
            block.append((n, text))
        else:
            prose.append((n, text))
    # inline code may wrap over lines: search the prose as one text, keeping line numbers
    text = "\n".join(t for _, t in prose)
    starts = [n for n, _ in prose]
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        span = m[1]
        first = starts[text[: m.start(1)].count("\n")]
        found += _commands_in(span, first, doc, fenced=False)
    return sorted(found, key=lambda c: c.line)


def docstring_commands(script: Path) -> list[Command]:
    """The command lines a benchmark's own docstring shows (its usage examples)."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    found = []
    lines = [(n, t) for n, t in enumerate(doc.split("\n"), 1) if t.startswith("    ")]
    for n, text in _logical_lines(lines):
        found += _commands_in(text.split(" #")[0], n, f"benchmarks/{script.name}", fenced=True)
    return found


ALL = [c for doc in DOCS for c in find_commands(doc)]
OWN = [c for p in sorted(BENCH.glob("*.py")) for c in docstring_commands(p)]


@cache
def _load(script: str) -> argparse.ArgumentParser:
    """The script's parser, from its ``build_parser()`` (the script is imported, not run)."""
    path = BENCH / script
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    build = getattr(module, "build_parser", None)
    assert callable(build), f"benchmarks/{script} has no build_parser(); give it one"
    parser = build()
    parser.prog = f"benchmarks/{script}"
    return parser


def _sample(action: argparse.Action) -> str:
    """A value the parser accepts for this action, for a placeholder in the docs."""
    if action.choices:
        return str(next(iter(action.choices)))
    if action.default is not None and not isinstance(action.default, bool | list):
        return str(action.default)
    return "1" if action.type in (int, float) else "x"


def _variants(tokens: list[str]) -> list[list[str]]:
    """The argument lists a documented line stands for: [optional] kept, a|b expanded."""
    words = []
    for t in tokens:
        t = t.strip("[]")
        if not t or t == "...":
            continue
        alts = t.split("|") if "|" in t and not t.startswith("-") else [t]
        words.append(alts)
    return [list(v) for v in itertools.product(*words)][:16]


def _fill(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Placeholders replaced by values the parser takes at their place."""
    opts = parser._option_string_actions
    positionals = [a for a in parser._actions if not a.option_strings]
    out: list[str] = []
    wants_value: argparse.Action | None = None
    n_pos = 0
    for t in args:
        if t.startswith("-") and t != "-":
            action = opts.get(t.split("=")[0])
            wants_value = action if action and action.nargs != 0 else None
            out.append(t)
            continue
        if PLACEHOLDER.fullmatch(t):
            if wants_value is not None:
                t = _sample(wants_value)
            elif n_pos < len(positionals):
                t = _sample(positionals[n_pos])
        if wants_value is None:
            n_pos += 1
        if wants_value is not None and wants_value.nargs in (None, 1, "?"):
            wants_value = None
        out.append(t)
    return out


def _lenient(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A copy that does not miss required arguments (for commands shown in part)."""
    p = copy.deepcopy(parser)
    for a in p._actions:
        a.required = False
        if not a.option_strings and a.nargs is None:
            a.nargs = "?"
    return p


def parse_error(parser: argparse.ArgumentParser, args: list[str], strict: bool) -> str | None:
    """What argparse says about these arguments (None when it accepts them)."""
    p = parser if strict else _lenient(parser)
    p.allow_abbrev = False
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            p.parse_args(args)
    except SystemExit as e:
        return err.getvalue().strip().splitlines()[-1] if e.code else None
    return None


def check_py(cmd: Command) -> list[str]:
    try:
        tokens = shlex.split(cmd.args)
    except ValueError as e:
        return [f"{cmd}: cannot split into words ({e})"]
    if not tokens:
        return []  # the script is named, not run
    parser = _load(cmd.script)
    strict = cmd.fenced and "..." not in tokens
    problems = []
    for args in _variants(tokens):
        why = parse_error(parser, _fill(parser, args), strict)
        if why:
            problems.append(f"{cmd}: {why}")
    return problems


def _usage(script: str) -> list[str] | None:
    text = (BENCH / script).read_text()
    m = re.search(rf"usage: benchmarks/{re.escape(script)}([^}}\"'(\n]*)", text)
    return m[1].split() if m else None


def check_sh(cmd: Command) -> list[str]:
    path = BENCH / cmd.script
    if not os.access(path, os.X_OK):
        return [f"{cmd}: benchmarks/{cmd.script} is not executable (chmod +x)"]
    usage = _usage(cmd.script)
    tokens = [t for t in shlex.split(cmd.args) if t != "..."]
    if usage is None or not tokens:
        return []
    required = [u for u in usage if not u.startswith("[")]
    many = any(u.rstrip("]").endswith("...") for u in usage)
    if len(tokens) < len(required) or (len(tokens) > len(usage) and not many):
        return [f"{cmd}: usage is {' '.join(usage)}"]
    problems = []
    for t, u in zip(tokens, usage, strict=False):
        u = u.strip("[]").rstrip(".")
        if "|" in u and not PLACEHOLDER.fullmatch(t) and t not in u.split("|"):
            problems.append(f"{cmd}: {t!r} is not one of {u}")
    return problems


def check(cmd: Command) -> list[str]:
    if not (BENCH / cmd.script).is_file():
        return [f"{cmd}: no such script benchmarks/{cmd.script}"]
    return check_py(cmd) if cmd.script.endswith(".py") else check_sh(cmd)


def test_the_docs_show_benchmark_commands() -> None:
    """The search finds what the docs hold (a broken pattern would make the test vacuous)."""
    with_args = [c for c in ALL if c.args]
    assert len({c.script for c in ALL}) >= 15
    assert len(with_args) >= 40
    assert any(c.fenced for c in with_args) and any(not c.fenced for c in with_args)


@pytest.mark.parametrize("cmd", ALL, ids=str)
def test_documented_benchmark_command_is_accepted(cmd: Command) -> None:
    assert check(cmd) == []


@pytest.mark.parametrize("cmd", OWN, ids=str)
def test_benchmark_docstring_command_is_accepted(cmd: Command) -> None:
    assert check(cmd) == []


def test_every_argparse_benchmark_has_build_parser() -> None:
    missing = [
        p.name
        for p in sorted(BENCH.glob("*.py"))
        if "argparse" in p.read_text() and "def build_parser(" not in p.read_text()
    ]
    assert missing == []


MD = """\
Timed with `benchmarks/selection_bench.py --problem bait --threads 2`.

```bash
python benchmarks/selection_bench.py --problem bait --compare-baseline \\
    --threads 2   # a comment --not-an-option
python benchmarks/pool_scale.py METHOD --data random [--batch B]
for n in 1 2; do python benchmarks/label_save.py --clients $n --requests 5; done
benchmarks/cpu_runs.sh all 2
```
"""


@pytest.mark.parametrize(
    ("before", "after", "why"),
    [
        ("--compare-baseline", "--compare-old", "unrecognized arguments: --compare-old"),
        ("--problem bait --compare", "--problem bate --compare", "invalid choice: 'bate'"),
        ("--threads 2`", "--thread 2`", "unrecognized arguments: --thread"),
        ("--data random", "--data", "expected one argument"),
        ("label_save.py", "label_saves.py", "no such script benchmarks/label_saves.py"),
        ("cpu_runs.sh all 2", "cpu_runs.sh every 2", "'every' is not one of a|b|all"),
        ("cpu_runs.sh all 2", "cpu_runs.sh all 2 3", "usage is a|b|all [WORKERS]"),
    ],
)
def test_a_wrong_documented_command_is_caught(
    tmp_path: Path, before: str, after: str, why: str
) -> None:
    good = tmp_path / "good.md"
    good.write_text(MD)
    commands = find_commands(good)
    assert [(c.script, c.line, c.fenced) for c in commands] == [
        ("selection_bench.py", 1, False),
        ("selection_bench.py", 4, True),
        ("pool_scale.py", 6, True),
        ("label_save.py", 7, True),
        ("cpu_runs.sh", 8, True),
    ]
    assert [p for c in commands for p in check(c)] == []
    bad = tmp_path / "bad.md"
    bad.write_text(MD.replace(before, after))
    problems = [p for c in find_commands(bad) for p in check(c)]
    assert len(problems) == 1 and why in problems[0], problems
