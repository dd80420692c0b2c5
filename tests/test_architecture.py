"""The shape of the code: imports flow one way without cycles, each shared thing is defined once, no machine paths."""

from __future__ import annotations

import re
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]

#: Import cycles tolerated for now: none (inspect/'s were removed when capture became a leaf module). The test
#: below fails as soon as a listed cycle is gone, so an entry added here cannot go stale.
TEMPORARY_ALLOWED_CYCLES: set[frozenset[str]] = set()


def import_cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """The strongly connected components of more than one module: every set of modules that import each other
    round in a circle (Tarjan's algorithm). Every import counts: at the top of a module, inside a function,
    or under `if TYPE_CHECKING:`."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[frozenset[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in on_stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(frozenset(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_import_cycle_finder_finds_a_cycle_through_three_modules():
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [frozenset({"p.a", "p.b", "p.c"})]


def test_no_module_of_minitx_imports_itself_round_a_circle():
    cycles = set(import_cycles(grimp.build_graph("minitx")))
    new = [" -> ".join(sorted(c)) for c in cycles - TEMPORARY_ALLOWED_CYCLES]
    assert not new, f"import cycles: {new}; import the shared thing from a module lower in the layers instead"
    gone = [" -> ".join(sorted(c)) for c in TEMPORARY_ALLOWED_CYCLES - cycles]
    assert not gone, f"these cycles are gone: remove them from TEMPORARY_ALLOWED_CYCLES: {gone}"


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py") if "_work" not in p.parts)


def test_doc_token_is_defined_once():
    definitions = [p.relative_to(REPO).as_posix() for p in python_files("src")
                   if re.search(r'^\s*DOC_TOKEN\s*=', p.read_text(encoding="utf-8"), re.MULTILINE)]
    assert definitions == ["src/minitx/text/special.py"]


def test_no_source_or_benchmark_file_names_a_path_of_one_machine():
    """Code runs from any clone: no /home/alice/..., no /work/..., no C:\\Users\\...."""
    machine_path = re.compile(r"""["'(\s=](/(home|root|work|Users|mnt|srv|opt|tmp)/|[A-Z]:\\\\)""")
    found = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in python_files("src", "bench")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if machine_path.search(line)]
    assert not found, "\n".join(found)


def test_the_layers_drawn_in_architecture_md_are_the_ones_import_linter_checks():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    checked = re.search(r"^layers = \[(.*?)^\]", pyproject, re.MULTILINE | re.DOTALL)[1]
    checked_layers = [" | ".join(name.strip().removeprefix("minitx.") for name in line.split("|"))
                      for line in re.findall(r'"([^"]+)"', checked)]
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawing = doc.split("## The layers", 1)[1].split("```", 2)[1]
    drawn_layers = [" | ".join(part.strip() for part in line.split("|")) for line in drawing.splitlines()
                    if line.strip() and line.strip() not in ("│", "▼")]
    assert drawn_layers == checked_layers


# -- architectures answer for themselves (model/architecture.py): nothing outside model/ compares their names --


def name_comparisons(line: str, names: tuple[str, ...]) -> list[str]:
    """The architecture names `line` compares with (==, !=, in a literal tuple/list/set) or keys a mapping by."""
    found = []
    for name in names:
        quoted = rf"""["']{re.escape(name)}["']"""
        patterns = (rf"(==|!=)\s*{quoted}", rf"{quoted}\s*(==|!=)", rf"\bin\s*[(\[{{][^)\]}}]*{quoted}",
                    rf"{quoted}\s*:(?!=)")
        if any(re.search(pattern, line) for pattern in patterns):
            found.append(name)
    return found


def test_the_name_comparison_finder_finds_every_form_and_nothing_else():
    names = ("gpt", "encoder-decoder")
    for line in ('if arch == "encoder-decoder":', "if 'gpt' != arch:", 'if arch in ("gpt", "rnn"):',
                 "x = {'gpt': 1}", 'if arch not in ["encoder-decoder"]:'):
        assert name_comparisons(line, names), line
    for line in ('flags = {"arch": "encoder-decoder"}', 'model_type == "gpt2"', 'default = "gpt"',
                 'f"{arch}: {x}"'):
        assert not name_comparisons(line, names), line


#: Files that still compare an architecture's name, each waiting for a change of its own (issue 26): the test
#: fails as soon as one is clean, so an entry cannot go stale.
TEMPORARY_NAME_COMPARISONS: set[str] = set()


def test_no_architecture_name_is_compared_outside_model_and_config():
    from minitx.config import ARCHITECTURES

    found: dict[str, list[str]] = {}
    for path in python_files("src/minitx"):
        where = path.relative_to(REPO).as_posix()
        if where.startswith("src/minitx/model/") or where == "src/minitx/config.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if name_comparisons(line, ARCHITECTURES):
                found.setdefault(where, []).append(f"{where}:{n}: {line.strip()}")
    new = [line for where, lines in found.items() if where not in TEMPORARY_NAME_COMPARISONS for line in lines]
    assert not new, ("ask the architecture (model/registry.architecture(name)) instead of comparing its name:\n"
                     + "\n".join(new))
    gone = TEMPORARY_NAME_COMPARISONS - set(found)
    assert not gone, (
        f"these files compare no architecture name now; remove them from TEMPORARY_NAME_COMPARISONS: {gone}")
