"""The layer rules of ARCHITECTURE.md, checked on the source: a change that breaks one fails here.

Imports are read with :mod:`ast` from every module, function-level imports included; only imports under
``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_mldeploy"

#: The core: may not import a face or a notebook/Jupyter library.
CORE = {"workspace", "registry", "environment", "inference_config", "deploy", "docker", "runs", "names",
        "settings", "errors", "entry", "actions", "pipeline", "_version", "kubernetes", "batch", "monitoring"}
FACES = {"notebook", "cli", "jupyter_server"}
FACE_LIBRARIES = {"IPython", "ipywidgets", "tornado", "jupyter_server", "traitlets", "click"}

#: Cycles between top-level units that exist on purpose, each with its reason. Any other cycle fails.
ALLOWED_CYCLES: set[frozenset[str]] = set()
#: The comment that marks a v1 façade method's one-line late import (``Model.deploy`` -> deploy layer,
#: ``Model.package`` and ``Environment.build_local(useDocker=True)`` -> docker). The layer below imports the
#: façade's module, so these are the only imports allowed to point up; the cycle test leaves them out.
FORWARDER_MARK = "v1 façade forwarder"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (for "from x import y": x, and x.y when that is a module)
    names: tuple[str, ...]
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for inner in ast.walk(child):
                    if hasattr(inner, "lineno"):
                        lines.add(inner.lineno)
    return lines


def _imports() -> list[Import]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "labextension" in path.parts:
            continue
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_lines(tree)
        lines = path.read_text(encoding="utf-8").splitlines()
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skipped:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)) and FORWARDER_MARK in lines[node.lineno - 1]:
                found.append(Import(module, "<forwarder>", (), node.lineno))
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append(Import(module, alias.name, (), node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                found.append(Import(module, base, tuple(a.name for a in node.names), node.lineno))
    return found


def _unit(dotted: str) -> str | None:
    """The top-level unit of one of our modules (``jupyter_mldeploy.deploy.plan`` -> ``deploy``), or None."""
    parts = dotted.split(".")
    if parts[0] != "jupyter_mldeploy" or len(parts) < 2:
        return None
    return parts[1]


def test_core_imports_no_face_and_no_notebook_library() -> None:
    bad = []
    for imp in _imports():
        unit = _unit(imp.module)
        if unit not in CORE:
            continue
        if _unit(imp.target) in FACES or imp.target.split(".")[0] in FACE_LIBRARIES:
            bad.append(f"{imp.module}:{imp.line} imports {imp.target}")
    assert bad == [], "the core must not import a face or a notebook/Jupyter library:\n" + "\n".join(bad)


def test_scoring_server_imports_nothing_else_of_ours() -> None:
    bad = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in _imports()
        # _version is a leaf holding only __version__ (the host side stamps it on the copied server)
        if _unit(imp.module) == "server" and _unit(imp.target) not in (None, "server", "_version")
        and not (imp.target == "jupyter_mldeploy" and not imp.names)
    ]
    assert bad == [], "jupyter_mldeploy.server is installed alone into every environment:\n" + "\n".join(bad)


def test_no_module_imports_another_modules_private_names() -> None:
    bad = []
    for imp in _imports():
        if _unit(imp.target) is None or imp.target == imp.module:
            continue
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        if private:
            bad.append(f"{imp.module}:{imp.line} imports {', '.join(private)} from {imp.target}")
    assert bad == [], "import public names only:\n" + "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def test_no_new_import_cycle_between_top_level_units() -> None:
    edges: dict[str, set[str]] = {}
    for imp in _imports():
        source, target = _unit(imp.module), _unit(imp.target)
        if source and target and source != target:
            edges.setdefault(source, set()).add(target)
    cycles = set(_cycles(edges))
    unexpected = [sorted(c) for c in cycles if c not in ALLOWED_CYCLES]
    assert unexpected == [], f"new import cycles between top-level units: {unexpected}"


def test_the_rules_can_fail() -> None:
    """The checks see function-level imports and private names (so the tests above can fail)."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [frozenset({"a", "b", "c"})]
    imports = _imports()
    assert any(imp.module == "jupyter_mldeploy.deploy.webservice" and _unit(imp.target) == "registry" for imp in imports)
    assert sum(imp.target == "<forwarder>" for imp in imports) >= 3


@pytest.mark.parametrize("module", ["jupyter_mldeploy.deploy.targets.process", "jupyter_mldeploy.docker.target"])
def test_targets_reach_no_private_name_of_another_module(module: str) -> None:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jupyter_mldeploy")
        for alias in node.names
    }
    reaches = [
        f"{ast.unparse(node)}:{node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and isinstance(node.value, ast.Name) and node.value.id in modules
    ]
    assert reaches == []
