"""The package's imports, read with ``ast``: a DAG of layers that depend only downward.

See ARCHITECTURE.rst. A new module must be given a layer in LAYERS; an import
inside a function is allowed only where Django's conventions or an optional
dependency ask for it (ALLOWED_IN_FUNCTIONS).
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass
from pathlib import Path

import pytest

import django_memdb

PACKAGE = Path(django_memdb.__file__).parent
NAME = "django_memdb"

# Lowest first; a module may import its own layer and the ones before it.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "base",
        [
            "django_memdb", "django_memdb.conf", "django_memdb.settings", "django_memdb.exceptions",
            "django_memdb.mixins", "django_memdb.tags", "django_memdb.signals", "django_memdb.registry",
            "django_memdb.transactions",
            "django_memdb.models", "django_memdb.migrations", "django_memdb.migrations.*", "django_memdb.reconnect",
            # The identity map: the tags (mixins) install its managers when a model class is prepared,
            # and the engine tells it of statements, commits and rollbacks.
            "django_memdb.identity", "django_memdb.identity_install", "django_memdb.identity_manager",
            "django_memdb.identity_sqlite",
            # Expiring and bounded models: the router and the identity map purge, the engine evicts.
            "django_memdb.expiry", "django_memdb.bounds", "django_memdb.pacing",
        ],
    ),
    (
        "engine",
        [
            "django_memdb.backend", "django_memdb.backend.*", "django_memdb.capture",
            "django_memdb.cluster", "django_memdb.cluster.engines", "django_memdb.cluster.dialect",
            "django_memdb.cluster.state", "django_memdb.cluster.server", "django_memdb.cluster.checks",
        ],
    ),
    (
        "persistence",
        [
            "django_memdb.rows", "django_memdb.processors", "django_memdb.decode_errors", "django_memdb.sharing",
            "django_memdb.storage", "django_memdb.server_lease", "django_memdb.lease",
            "django_memdb.group_commit", "django_memdb.compaction", "django_memdb.spool",
            "django_memdb.restore",
            "django_memdb.cluster.spool", "django_memdb.cluster.lifecycle",
        ],
    ),
    ("modes", ["django_memdb.modes", "django_memdb.modes.*"]),
    ("services", ["django_memdb.services", "django_memdb.lifecycle"]),
    (
        "operations",
        [
            "django_memdb.router", "django_memdb.dbrouter", "django_memdb.receivers", "django_memdb.identity_receivers",
            "django_memdb.checks", "django_memdb.limit_checks",
            "django_memdb.admin", "django_memdb.inspection", "django_memdb.inspection.*", "django_memdb.rewrite",
            "django_memdb.tools", "django_memdb.tools.*", "django_memdb.management", "django_memdb.management.*",
            "django_memdb.apps", "django_memdb.demo", "django_memdb.demo.*",
            "django_memdb.cache", "django_memdb.cache.*",
        ],
    ),
]

# (module, function): why an import there is right.
ALLOWED_IN_FUNCTIONS = {
    # Django's convention: checks and receivers register when AppConfig.ready() imports them.
    ("django_memdb.apps", "ready"),
}


@dataclass(frozen=True)
class Import:
    module: str
    target: str
    function: str | None
    line: int


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module.split(".") if is_package else module.split(".")[:-1]
        if node.level:
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # ``from . import x`` imports the module x; ``from .m import name`` the module m.
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
    return [name for name in names if name == NAME or name.startswith(NAME + ".")]


def _imports() -> list[Import]:
    modules = _modules()
    known = set(modules)
    found: list[Import] = []

    def visit(module: str, is_package: bool, node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(module, is_package, child, child.name)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                targets = _targets(module, is_package, child, known)
                if function is not None and not targets:
                    targets = [ast.unparse(child)]  # a third-party import inside a function
                found.extend(Import(module, target, function, child.lineno) for target in targets)
            else:
                visit(module, is_package, child, function)

    for module, path in modules.items():
        visit(module, path.name == "__init__.py", ast.parse(path.read_text()), None)
    return found


def _layer(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns):
            return index
    raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__} (see ARCHITECTURE.rst)")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


IMPORTS = _imports()


def _packages(module: str) -> list[str]:
    """The packages that importing ``module`` initialises first (the root's __init__ imports nothing)."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(2, len(parts))]


def test_the_import_graph_has_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for each in IMPORTS:
        if not each.target.startswith(NAME) or each.target == each.module:
            continue
        own = set(_packages(each.module)) | {each.module}
        for target in [*_packages(each.target), each.target]:
            if target not in own:  # a package's own modules import each other while it initialises
                edges.setdefault(each.module, set()).add(target)
    assert _cycles(edges) == []


def test_no_import_inside_a_function_but_the_allowed_ones() -> None:
    inside = sorted(
        f"{each.module}:{each.line} in {each.function}() imports {each.target}"
        for each in IMPORTS
        if each.function is not None and (each.module, each.function) not in ALLOWED_IN_FUNCTIONS
    )
    assert inside == []


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_a_layer_imports_no_higher_one(layer: str) -> None:
    names = [name for name, _ in LAYERS]
    upward = sorted(
        f"{each.module} ({names[_layer(each.module)]}) imports {each.target} ({names[_layer(each.target)]})"
        for each in IMPORTS
        if each.target.startswith(NAME)
        and names[_layer(each.module)] == layer
        and _layer(each.target) > _layer(each.module)
    )
    assert upward == []


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("django_memdb.backend.base") < _layer("django_memdb.spool") < _layer("django_memdb.modes.host")


def test_only_the_modes_know_which_mode_is_set() -> None:
    """The rest of the code asks the mode (modes.current()); it never compares MEMDB_MODE."""
    branching = []
    for module, path in _modules().items():
        if module.startswith(f"{NAME}.modes") or module == f"{NAME}.conf":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id in ("MODE_PROCESS", "MODE_HOST", "MODE_CLUSTER"):
                branching.append(f"{module}:{node.lineno} uses {node.id}")
            if isinstance(node, ast.Compare) and "MEMDB_MODE" in ast.unparse(node):
                branching.append(f"{module}:{node.lineno} compares MEMDB_MODE")
    assert branching == []
