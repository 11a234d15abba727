"""The arrows of the layout, checked on the source with `ast` (nothing is imported or run):

- only `bot/store/` talks to the ORM (`tortoise`, `bot.store.models`);
- connectors reach the core through the services, never `bot.store` nor `bot.app`;
- nothing imports `bot.app` (the composition root) but `bot/cli.py`;
- no import cycle among the modules of `bot/` and `connectors/` (imports under `if TYPE_CHECKING:`
  exist only for the type checker and do not count);
- every third-party package the code imports is declared in pyproject.toml.

Each failure names the module, the line and the import, and says why it is refused."""

from __future__ import annotations

import ast
import importlib.metadata
import itertools
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "connectors")


@dataclass(frozen=True)
class Import:
    """One imported module, as written in one module (`target` resolved to a module name)."""

    module: str  # the importing module, e.g. "connectors.slack.connector"
    path: str  # its file, relative to the root
    line: int
    target: str  # the imported module, e.g. "bot.store.repo"
    type_checking: bool  # under `if TYPE_CHECKING:`: for the type checker only

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.target}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Module name → file, for every module of the packages."""
    return {
        module_name(root, path): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_checking: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, with whether it sits in the body of an `if TYPE_CHECKING:` (not its else)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield child, type_checking
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, type_checking
                yield from _walk(stmt, type_checking)
        else:
            yield child, type_checking
            yield from _walk(child, type_checking)


def imports_of(root: Path, module: str, path: Path, known: set[str]) -> list[Import]:
    """The modules `module` imports, at any depth (a function-level import is an import too).

    `from a.b import c` imports the module `a.b.c` when there is one, else the name `c` of `a.b`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    rel = str(path.relative_to(root))
    found: list[Import] = []
    for node, type_checking in _walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = module.split(".") if is_package else module.split(".")[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        else:
            continue
        for target in dict.fromkeys(targets):  # `from x import a, b` of one module is one import
            found.append(Import(module, rel, node.lineno, target, type_checking))
    return found


def all_imports(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[Import]:
    modules = source_modules(root, packages)
    known = set(modules)
    return [imp for module, path in modules.items() for imp in imports_of(root, module, path, known)]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# --- the rules --------------------------------------------------------------------------------------


def orm_outside_the_store(imports: list[Import]) -> list[str]:
    return [
        f"{imp} — only bot/store/ may use the ORM; ask a store function for a domain record instead"
        for imp in imports
        if (_within(imp.target, "tortoise") or _within(imp.target, "bot.store.models"))
        and not _within(imp.module, "bot.store")
    ]


def connectors_reaching_past_the_services(imports: list[Import]) -> list[str]:
    return [
        f"{imp} — a connector goes through the services (bot.services), never the store or the app"
        for imp in imports
        if _within(imp.module, "connectors") and (_within(imp.target, "bot.store") or _within(imp.target, "bot.app"))
    ]


def app_imported_outside_the_cli(imports: list[Import]) -> list[str]:
    return [
        f"{imp} — bot.app is the composition root: only bot/cli.py starts it (pass what is needed in instead)"
        for imp in imports
        if _within(imp.target, "bot.app") and imp.module not in ("bot.app", "bot.cli")
    ]


def import_cycles(imports: list[Import], packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """One line per cycle (a strongly connected set of modules), with the imports that close it."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        internal = any(_within(imp.target, p) for p in packages)
        if internal and not imp.type_checking and imp.target != imp.module:
            edges.setdefault(imp.module, {}).setdefault(imp.target, imp)
    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})

    # Tarjan's strongly connected components, iteratively (no recursion limit to meet)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    lines = []
    for component in sorted(components):
        members = set(component)
        path = _cycle_through(component[0], members, edges)
        steps = "; ".join(str(edges[a][b]) for a, b in itertools.pairwise(path))
        lines.append(f"cycle {' → '.join(path)}: {steps}")
    return lines


def _cycle_through(start: str, members: set[str], edges: dict[str, dict[str, Import]]) -> list[str]:
    """The shortest path start → … → start inside one strongly connected set (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges.get(node, {})):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")  # pragma: no cover - Tarjan said it is


def report(problems: list[str]) -> str:
    return "\n".join(["", *problems])


# --- the tests on this repository -------------------------------------------------------------------

IMPORTS = all_imports()


def test_the_sources_are_found() -> None:
    modules = {imp.module for imp in IMPORTS}
    assert {"bot.cli", "bot.app", "bot.store.db", "connectors.webhook.connector"} <= modules


def test_only_the_store_uses_the_orm() -> None:
    problems = orm_outside_the_store(IMPORTS)
    assert not problems, report(problems)


def test_connectors_do_not_import_the_store_or_the_app() -> None:
    problems = connectors_reaching_past_the_services(IMPORTS)
    assert not problems, report(problems)


def test_only_the_cli_imports_the_app() -> None:
    problems = app_imported_outside_the_cli(IMPORTS)
    assert not problems, report(problems)


def test_no_import_cycles() -> None:
    problems = import_cycles(IMPORTS)
    assert not problems, report(problems)


def test_every_imported_package_is_declared() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    own = set(PACKAGES) | {"migrations"}
    problems = []
    for imp in IMPORTS:
        top = imp.target.split(".")[0]
        if not top or top in own or top in sys.stdlib_module_names:
            continue
        names = {canonicalize_name(d) for d in distributions.get(top, [top])}
        if not names & declared:
            problems.append(f"{imp} — declare {' or '.join(sorted(names))} in pyproject.toml [project] dependencies")
    assert not problems, report(problems)


# --- the checker itself, on a small made-up tree ----------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    files = {
        "bot/__init__.py": "",
        "bot/app.py": "from connectors.chat import connector\n",
        "bot/cli.py": "from bot import app\n",
        "bot/store/__init__.py": "",
        "bot/store/models.py": "from tortoise import fields\n",
        "bot/store/repo.py": "from . import models\nfrom .models import fields\n",
        "bot/services.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from connectors.chat.connector import Chat\n"
            "else:\n    import bot.helpers\n"
        ),
        "bot/helpers.py": "def f():\n    from bot.services import x\n",
        "bot/leaky.py": "import tortoise.exceptions\nfrom bot.store.models import Row\n",
        "connectors/__init__.py": "",
        "connectors/chat/__init__.py": "",
        "connectors/chat/connector.py": "from bot.services import go\nfrom ..chat import normalize\nimport bot.app\n",
        "connectors/chat/normalize.py": "from bot.store import repo\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_the_checker_reports_each_kind_of_violation(tree: Path) -> None:
    imports = all_imports(tree)
    assert {(i.module, i.target) for i in imports if i.module == "bot.store.repo"} == {
        ("bot.store.repo", "bot.store.models")
    }
    assert [p.split(" — ")[0] for p in orm_outside_the_store(imports)] == [
        "bot/leaky.py:1: bot.leaky imports tortoise.exceptions",
        "bot/leaky.py:2: bot.leaky imports bot.store.models",
    ]
    assert [p.split(" — ")[0] for p in connectors_reaching_past_the_services(imports)] == [
        "connectors/chat/connector.py:3: connectors.chat.connector imports bot.app",
        "connectors/chat/normalize.py:1: connectors.chat.normalize imports bot.store.repo",
    ]
    assert [p.split(" — ")[0] for p in app_imported_outside_the_cli(imports)] == [
        "connectors/chat/connector.py:3: connectors.chat.connector imports bot.app"
    ]
    # bot.app → connector → bot.app is a cycle; services → connector is under TYPE_CHECKING (not one),
    # but its else branch and the function-level import in helpers are
    assert import_cycles(imports) == [
        "cycle bot.app → connectors.chat.connector → bot.app: "
        "bot/app.py:1: bot.app imports connectors.chat.connector; "
        "connectors/chat/connector.py:3: connectors.chat.connector imports bot.app",
        "cycle bot.helpers → bot.services → bot.helpers: "
        "bot/helpers.py:2: bot.helpers imports bot.services; "
        "bot/services.py:5: bot.services imports bot.helpers",
    ]
