"""The layering of ``src/`` and its map, read from the sources with ``ast`` (nothing is imported: no model, no display).

The rules (docs/architecture.md, "Layers and the direction of dependency"):

1. ``sam2_model`` imports neither ``napari_sam2`` nor a GUI package (napari, qtpy, PyQt*, PySide*, magicgui,
   superqt, vispy), anywhere in a file, inside functions too;
2. no module of ``sam2_model`` outside ``sam2_model/train/`` imports ``sam2_model.train`` (training -> core, never
   back); when this test was written no module did, so there is no list of exceptions;
3. ``sam2_model/modeling/`` imports nothing of ``sam2_model`` but ``modeling/`` and ``config.py`` (the model knows no
   sessions);
4. ``napari_sam2``'s Qt-free modules load no GUI package when imported: their module-level imports, followed through
   the modules under ``src/``, reach none (the command line and the console API start without Qt);
5. docs/architecture.md has a table row for every ``.py`` file under ``src/`` (its path under ``src/``), once, and every
   module path the page names exists.

Each checker takes the source root (and the page) as arguments; the last tests run each on a small tree holding one
violation of its rule.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Dict, List, Optional, Set

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

GUI_PACKAGES = ("napari", "qtpy", "magicgui", "superqt", "vispy")  # and every PyQt* / PySide*
# napari_sam2's Qt-free modules are those without a leading underscore (none of them imports Qt or napari at module
# level: every module that does is a widget, panel or mixin with a leading underscore), and these private ones, whose
# docstrings say "no Qt" or which are the command line's parts.
QT_FREE_PRIVATE = frozenset({"_cli_auto", "_cli_axes", "_cli_batch", "_cli_outputs", "_model_choice", "_run_folders",
                             "_track_ids"})
TABLE_ROW = re.compile(r"^\|\s*`([^`\s]+\.py)`\s*\|")  # a module's row: its path in the first cell
MODULE_PATH = re.compile(r"`((?:sam2_model|napari_sam2)/[\w/]*\w\.py)`")  # a module named anywhere on the page


@dataclass(frozen=True)
class Import:
    """One module an import statement (or ``importlib.import_module`` / ``__import__`` of a literal name) brings in."""

    target: str  # absolute dotted name, relative imports resolved
    line: int
    at_import: bool  # runs when its module is imported: module or class body, not a function, not TYPE_CHECKING


def modules(src: Path) -> Dict[str, Path]:
    """Dotted module name -> file for every ``.py`` under ``src`` (a package is its ``__init__.py``)."""
    found = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _relative(anchor: str, name: str) -> str:
    """``name`` with ``level`` leading dots resolved against the package ``anchor``, as Python resolves it."""
    level = len(name) - len(name.lstrip("."))
    parts = anchor.split(".")
    if level > len(parts):
        raise ValueError(f"relative import {name!r} goes above the top-level package of {anchor!r}")
    rest = name[level:]
    return ".".join(parts[: len(parts) - level + 1] + ([rest] if rest else []))


def _dynamic_import(call: ast.Call, name: str, package: str) -> Optional[str]:
    """The module ``importlib.import_module("...")`` or ``__import__("...")`` names, when it is a literal (a relative
    one anchored on ``__name__`` or ``__package__``); None for any other call."""
    func = call.func
    called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if called not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    if not first.value.startswith("."):
        return first.value
    anchor = call.args[1] if len(call.args) > 1 else None
    anchors = {"__name__": name, "__package__": package}
    return _relative(anchors[anchor.id], first.value) if isinstance(anchor, ast.Name) and anchor.id in anchors else None


def _type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` tests ``TYPE_CHECKING`` (or ``typing.TYPE_CHECKING``): its body never runs."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, name: str, known: Collection[str]) -> List[Import]:
    """Every import in the module ``name`` (file ``path``), at any depth. ``from X import y`` counts as importing
    ``X.y`` where that is one of the ``known`` modules, else ``X``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: List[Import] = []

    def visit(node: ast.AST, at_import: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, at_import) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _relative(package, "." * node.level + (node.module or "")) if node.level else node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(sub if sub in known else base, node.lineno, at_import))
        elif isinstance(node, ast.Call):
            target = _dynamic_import(node, name, package)
            if target:
                found.append(Import(target, node.lineno, at_import))
        if isinstance(node, ast.If) and _type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_import)
            return
        inside = at_import and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), True)
    return found


@functools.lru_cache(maxsize=8)
def all_imports(src: Path) -> Dict[str, List[Import]]:
    """Module name -> its imports, for every module under ``src`` (parsed once per root in a session)."""
    found = modules(src)
    return {name: imports(path, name, found) for name, path in found.items()}


def gui_package(module: str) -> bool:
    """Whether ``module`` belongs to a GUI package (napari, Qt bindings and Qt widget libraries)."""
    root = module.split(".")[0]
    return root in GUI_PACKAGES or root.startswith(("PyQt", "PySide"))


def _in(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or inside it."""
    return module == package or module.startswith(package + ".")


def _where(src: Path, name: str, found: Import) -> str:
    """'path:line imports X' of one import of the module ``name``."""
    return f"{modules(src)[name].relative_to(src).as_posix()}:{found.line} imports {found.target}"


def model_imports_of_gui_or_plugin(src: Path) -> List[str]:
    """Rule 1: 'path:line imports X' for each import of ``napari_sam2`` or a GUI package in ``sam2_model``."""
    return [_where(src, name, found) for name, found_all in all_imports(src).items() if _in(name, "sam2_model")
            for found in found_all if gui_package(found.target) or _in(found.target, "napari_sam2")]


def core_imports_of_training(src: Path) -> List[str]:
    """Rule 2: 'path:line imports X' for each import of ``sam2_model.train`` by ``sam2_model`` outside ``train/``."""
    return [_where(src, name, found) for name, found_all in all_imports(src).items()
            if _in(name, "sam2_model") and not _in(name, "sam2_model.train")
            for found in found_all if _in(found.target, "sam2_model.train")]


def modeling_imports_outside(src: Path) -> List[str]:
    """Rule 3: 'path:line imports X' for each import of ``sam2_model`` by ``modeling/`` other than ``modeling/`` and
    ``config.py``."""
    return [_where(src, name, found) for name, found_all in all_imports(src).items()
            if _in(name, "sam2_model.modeling") for found in found_all
            if _in(found.target, "sam2_model") and not _in(found.target, "sam2_model.modeling")
            and found.target != "sam2_model.config"]


def qt_free_modules(src: Path, private: Collection[str] = QT_FREE_PRIVATE) -> List[str]:
    """napari_sam2's modules that must import without Qt: every one without a leading underscore, and ``private``."""
    names = [name for name in modules(src) if _in(name, "napari_sam2")]
    return [name for name in names if not name.rpartition(".")[2].startswith("_") or name.rpartition(".")[2] in private]


def gui_at_import(src: Path, private: Collection[str] = QT_FREE_PRIVATE) -> List[str]:
    """Rule 4: for each Qt-free module whose module-level imports reach a GUI package, followed through the modules
    under ``src`` (importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``), the chain: 'A -> B:line imports napari'.
    A name in ``private`` that is no module of napari_sam2 is reported too (the list cannot go stale)."""
    graph = all_imports(src)
    problems = [f"napari_sam2.{name}: in QT_FREE_PRIVATE but no such module" for name in sorted(private)
                if f"napari_sam2.{name}" not in graph]
    for start in qt_free_modules(src, private):
        came_from: Dict[str, Optional[str]] = {start: None}
        queue = [start]
        while queue:
            name = queue.pop(0)
            loaded = [found for found in graph[name] if found.at_import]
            bad = next((found for found in loaded if gui_package(found.target)), None)
            if bad is not None:
                chain = [name]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])
                problems.append(" -> ".join(reversed(chain)) + f":{bad.line} imports {bad.target}")
                break
            for found in loaded:
                parts = found.target.split(".")
                for run in (".".join(parts[:end]) for end in range(1, len(parts) + 1)):
                    if run in graph and run not in came_from:
                        came_from[run] = name
                        queue.append(run)
    return problems


def map_problems(src: Path, page: Path) -> List[str]:
    """Rule 5: modules under ``src`` without a row on ``page``, rows listed twice, and module paths the page names
    that are not under ``src``."""
    on_disk = {path.relative_to(src).as_posix() for path in src.rglob("*.py")}
    text = page.read_text(encoding="utf-8")
    rows = Counter(match.group(1) for line in text.splitlines() for match in [TABLE_ROW.match(line)] if match)
    named: Set[str] = set(MODULE_PATH.findall(text)) | set(rows)
    return ([f"{path}: no row in {page.name}" for path in sorted(on_disk - set(rows))]
            + [f"{path}: {count} rows in {page.name}" for path, count in sorted(rows.items()) if count > 1]
            + [f"{path}: named in {page.name}, not under src/" for path in sorted(named - on_disk)])


def test_sam2_model_imports_neither_napari_nor_qt_nor_the_plugin():
    assert model_imports_of_gui_or_plugin(SRC) == []


def test_only_the_training_package_imports_it():
    assert core_imports_of_training(SRC) == []


def test_the_model_parts_import_only_each_other_and_the_config():
    assert modeling_imports_outside(SRC) == []


def test_the_command_line_and_the_console_api_import_without_qt():
    names = qt_free_modules(SRC)
    assert {"napari_sam2", "napari_sam2.cli", "napari_sam2.api", "napari_sam2.batch"} <= set(names)
    assert gui_at_import(SRC) == []


def test_the_architecture_page_lists_every_module_and_only_those():
    assert map_problems(SRC, ARCHITECTURE) == []


def write_tree(root: Path, files: Dict[str, str]) -> Path:
    """Write ``files`` (path under ``root`` -> text) and return ``root``."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


CLEAN = {
    "sam2_model/__init__.py": "from .core import f\n",
    "sam2_model/core.py": "def f():\n    return 1\n",
    "sam2_model/config.py": "",
    "sam2_model/video_session.py": "from .modeling import part\n",
    "sam2_model/modeling/__init__.py": "",
    "sam2_model/modeling/part.py": "from ..config import X\nfrom . import other\n",
    "sam2_model/modeling/other.py": "",
    "sam2_model/train/__init__.py": "from .loop import run\n",
    "sam2_model/train/loop.py": "from ..core import f\nfrom sam2_model.video_session import S\n",
    "napari_sam2/__init__.py": "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    import napari\n",
    "napari_sam2/cli.py": "from . import _cli_x\nfrom sam2_model.train import loop\n",
    "napari_sam2/_cli_x.py": "def run():\n    import qtpy\n",
    "napari_sam2/api.py": "import importlib\n\ndef get_widget():\n    return importlib.import_module('napari')\n",
    "napari_sam2/_widget.py": "from qtpy.QtWidgets import QWidget\nfrom .api import get_widget\n",
    "napari_sam2/_colors.py": "import napari\n",
}


def test_the_checkers_pass_a_tree_that_keeps_the_rules(tmp_path):
    src = write_tree(tmp_path / "src", CLEAN)
    assert model_imports_of_gui_or_plugin(src) == []
    assert core_imports_of_training(src) == []
    assert modeling_imports_outside(src) == []
    assert gui_at_import(src, private={"_cli_x"}) == []


def test_each_checker_finds_a_violation_of_its_rule(tmp_path):
    src = write_tree(tmp_path / "src", {
        **CLEAN,
        "sam2_model/core.py": "def f():\n    import PyQt5.QtCore\n    from napari_sam2 import api\n    return 1\n",
        "sam2_model/tracking/__init__.py": "from ..train import loop\n",
        "sam2_model/seeding.py": "import importlib\nTRAIN = importlib.import_module('sam2_model.train.loop')\n",
        "sam2_model/modeling/part.py": "from ..config import X\nfrom .. import video_session\n",
        "napari_sam2/_cli_x.py": "from . import _colors\n",
        "napari_sam2/export.py": "class Table:\n    from superqt import QCollapsible\n",
    })
    assert model_imports_of_gui_or_plugin(src) == ["sam2_model/core.py:2 imports PyQt5.QtCore",
                                                   "sam2_model/core.py:3 imports napari_sam2.api"]
    assert sorted(core_imports_of_training(src)) == ["sam2_model/seeding.py:2 imports sam2_model.train.loop",
                                                     "sam2_model/tracking/__init__.py:1 imports sam2_model.train.loop"]
    assert modeling_imports_outside(src) == ["sam2_model/modeling/part.py:2 imports sam2_model.video_session"]
    assert sorted(gui_at_import(src, private={"_cli_x", "_gone"})) == [
        "napari_sam2._cli_x -> napari_sam2._colors:1 imports napari",
        "napari_sam2._gone: in QT_FREE_PRIVATE but no such module",
        "napari_sam2.cli -> napari_sam2._cli_x -> napari_sam2._colors:1 imports napari",
        "napari_sam2.export:2 imports superqt"]


def test_the_map_check_finds_a_missing_a_doubled_and_a_stale_module(tmp_path):
    src = write_tree(tmp_path / "src", {"sam2_model/__init__.py": "", "sam2_model/tracking/detection.py": "",
                                        "napari_sam2/cli.py": ""})
    page = tmp_path / "architecture.md"
    page.write_text("| module | job |\n|---|---|\n| `sam2_model/__init__.py` | API |\n| `napari_sam2/cli.py` | CLI |\n"
                    "| `napari_sam2/cli.py` | again |\n| `sam2_model/gone.py` | moved away |\n\n"
                    "New parts go beside `sam2_model/modeling/sam2.py`.\n")
    assert map_problems(src, page) == ["sam2_model/tracking/detection.py: no row in architecture.md",
                                       "napari_sam2/cli.py: 2 rows in architecture.md",
                                       "sam2_model/gone.py: named in architecture.md, not under src/",
                                       "sam2_model/modeling/sam2.py: named in architecture.md, not under src/"]
