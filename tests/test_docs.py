"""The README and docs/ pages: every relative link and image resolves (file and, for ``#anchor`` links, a heading of
that page, as GitHub makes anchors), so pages moved out of the README keep working from docs/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def pages() -> List[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def prose(path: Path) -> List[str]:
    """The page's lines outside fenced code blocks."""
    lines, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            inside = not inside
        elif not inside:
            lines.append(line)
    return lines


def anchors(path: Path) -> Set[str]:
    """GitHub's anchors of ``path``'s headings: lower case, inline code marks and punctuation dropped, spaces to
    hyphens; a repeated heading gets -1, -2, ..."""
    seen: Dict[str, int] = {}
    out = set()
    for line in prose(path):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def broken_links(path: Path) -> List[Tuple[str, str]]:
    """(link, why) for each relative link or image of ``path`` whose file or heading is not there."""
    broken = []
    for line in prose(path):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked here
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append((target, f"no file {linked}"))
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append((target, f"no heading #{anchor} in {linked.name}"))
    return broken


def test_every_relative_link_of_the_readme_and_docs_resolves():
    problems = {str(page.relative_to(ROOT)): broken_links(page) for page in pages()}
    assert {page: links for page, links in problems.items() if links} == {}


def test_the_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# A title: `code`\n\n[ok](#a-title-code) [gone](nope.md) [bad](#no-such) [up](../x.md)\n"
                    "```\n[in code](ignored.md)\n```\n")
    (tmp_path / "x.md").write_text("# X\n")
    assert [link for link, _ in broken_links(page)] == ["nope.md", "#no-such"]
