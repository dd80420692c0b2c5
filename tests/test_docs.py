"""The docs stay true to the tree: the module map in docs/architecture.md, links, the README's size.

These tests read files only (no torch, no training), so they run in a fraction of a second.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "minitx"
README_MAX_LINES = 250

#: A name at the start of a tree line: a module, a package ("views/"), or a data file beside them.
TREE_NAME = re.compile(r"^(?:[A-Za-z_]\w*\.py|[A-Za-z_]\w*/|[\w.-]+\.(?:lark|j2))$")


def architecture_tree(doc: str) -> set[str]:
    """Paths under src/minitx named in the tree drawing of architecture.md ("commands/train.py", "model/").

    The drawing nests by two spaces per level; each line opens with one or more names, then a
    description. Continuation lines of a description open with a word, not a name, and name nothing.
    """
    drawing = doc.split("## The tree", 1)[1].split("```", 2)[1]
    lines = drawing.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "src/minitx/")
    named: set[str] = set()
    parents: list[str] = []  # the packages enclosing the current line, one per level
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:  # tests/ bench/ docs/: outside the package
            break
        depth = indent // 2 - 1
        names = []
        for token in line.split():
            if not TREE_NAME.match(token):
                break
            names.append(token)
        if not names:
            continue
        parents = parents[:depth]
        if len(parents) < depth:
            raise AssertionError(f"architecture.md: {line.strip()!r} is indented deeper than its package")
        prefix = "".join(parents)
        named.update(prefix + name for name in names)
        if len(names) == 1 and names[0].endswith("/"):
            parents.append(names[0])
    return named


def package_tree() -> tuple[set[str], set[str]]:
    """(what the tree must name: every package and .py module but __init__.py; every file that exists)."""
    required, existing = set(), set()
    for path in PACKAGE.rglob("*"):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(PACKAGE).as_posix()
        if path.is_dir():
            existing.add(rel + "/")
            if (path / "__init__.py").exists():
                required.add(rel + "/")
        else:
            existing.add(rel)
            if path.suffix == ".py" and path.name != "__init__.py":
                required.add(rel)
    return required, existing


def test_the_tree_parser_reads_nesting_and_several_names_per_line():
    doc = "## The tree\n```\nsrc/minitx/\n  cli.py    declares\n  model/    the model\n    gpt.py  x.py  two\n" \
          "                    a continuation line.py\n    views/  drawn\n      a.py\n  errors.py  one\ntests/\n```\n"
    assert architecture_tree(doc) == {"cli.py", "model/", "model/gpt.py", "model/x.py", "model/views/",
                                      "model/views/a.py", "errors.py"}


def test_architecture_md_names_every_module_and_package_and_nothing_else():
    named = architecture_tree((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"))
    required, existing = package_tree()
    missing = sorted(required - named)
    assert not missing, f"docs/architecture.md's tree does not name: {missing}; add a line for each"
    invented = sorted(named - existing)
    assert not invented, f"docs/architecture.md's tree names what src/minitx does not hold: {invented}"


def test_readme_is_a_front_door_of_at_most_250_lines():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it ≤ {README_MAX_LINES} and move details to docs/commands.md")


def test_readme_package_table_names_every_package():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    missing = [name for name in packages if f"`{name}/`" not in table]
    assert packages and not missing, f"README.md's package table (How it is built) lacks: {missing}"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, each space a hyphen.

    >>> github_anchor("`minitx eval` — loss, bits per byte")
    'minitx-eval--loss-bits-per-byte'
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def strip_fences(markdown: str) -> str:
    """The text outside fenced code blocks (console output may hold anything)."""
    return re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)


def strip_code(markdown: str) -> str:
    """The text outside fenced code blocks and inline code, where a link is a link."""
    return re.sub(r"`[^`\n]*`", "", strip_fences(markdown))


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    for line in strip_fences(markdown).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            anchor, n = github_anchor(m[1]), 1
            while anchor in found:  # GitHub numbers a repeated heading: x, x-1, x-2
                anchor, n = f"{github_anchor(m[1])}-{n}", n + 1
            found.add(anchor)
    return found


DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_points_to_a_file_and_heading_that_exist(document: Path):
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(strip_code(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if not path.exists():
            broken.append(f"{target} (no file {path_part})")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading #{anchor} in {path.name})")
    assert not broken, f"{document.relative_to(REPO)}: broken links: {broken}"


def test_the_link_checker_sees_a_broken_anchor_and_ignores_code(tmp_path: Path):
    doc = "# Top\n## `minitx eval` — loss\n[a](#minitx-eval--loss) `[b](nowhere.md)`\n```\n[c](gone.md)\n```\n"
    assert anchors(doc) == {"top", "minitx-eval--loss"}
    assert LINK.findall(strip_code(doc)) == ["#minitx-eval--loss"]
    assert "minitx-eval-loss" not in anchors(doc)


def test_commands_md_has_a_section_for_every_command():
    """Every command `minitx --help` lists is told about in docs/commands.md (`minitx NAME`)."""
    import typer.main

    from minitx.cli import app

    names = sorted(typer.main.get_command(app).commands)
    text = (REPO / "docs" / "commands.md").read_text(encoding="utf-8")
    missing = [name for name in names if name != "version" and f"minitx {name}" not in text]
    assert names and not missing, f"docs/commands.md does not describe: {missing}"
