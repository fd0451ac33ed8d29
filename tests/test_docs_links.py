"""Every relative link in the README and docs/ leads somewhere: the file exists and, for a
`#section`, the section does (a heading's GitHub anchor or an explicit `<a id>`). The guides
link into each other by section, and a renamed heading would otherwise break them silently."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"``.*?``|`[^`\n]*`", "", text)


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    title = re.sub(r"<[^>]+>", "", title).strip().lower()
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text()
    seen: dict[str, int] = {}
    out = set(re.findall(r'<a id="([^"]+)"', text))
    outside_code = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for title in re.findall(r"^#{1,6} (.+)$", outside_code, flags=re.M):
        s = slug(title)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def test_slug_is_githubs() -> None:
    assert slug("Finding wrong labels: `label check`") == "finding-wrong-labels-label-check"
    assert slug("What an annotator's token can read") == "what-an-annotators-token-can-read"
    assert slug('How long "next batch" takes, and what it does') == (
        "how-long-next-batch-takes-and-what-it-does"
    )
    assert slug("Data in memory: `fishermask.run`") == "data-in-memory-fishermaskrun"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for m in LINK.finditer(_prose(doc.read_text())):
        target = m[2] or m[3]
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no section #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    """The check itself: a link to a missing section is reported (the test can fail)."""
    (tmp_path / "a.md").write_text("# Top\n\n## Real part\n\nSee [x](#real-part), [y](#gone).\n")
    found = [m[2] for m in LINK.finditer(_prose((tmp_path / "a.md").read_text()))]
    assert found == ["#real-part", "#gone"]
    assert "real-part" in anchors(tmp_path / "a.md")
    assert "gone" not in anchors(tmp_path / "a.md")
