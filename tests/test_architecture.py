"""The shape ARCHITECTURE.md promises: an import graph without cycles, no hidden imports, and
the console beside the API, not on top of it."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dispatcher", "channels", "segments")
# Modules that may import ours inside a function, and why.
NESTED_ALLOWED = {
    "dispatcher.desktop.cli": "the pop-up needs Tk, which every other command runs without",
}
# Modules that import a module whose name is computed (hidden from the scan), and what they load.
COMPUTED_IMPORT_ALLOWED = {
    "channels.sandbox.cli": "the sandbox's stand-ins, by the names in PLUGINS",
    "dispatcher.policy.data.build_locales": "faker's name providers per locale (not ours)",
}
# The console and the API are two adapters over the same parts: the console imports no route
# module. `edge.py` is no route module: it is the one door for request bodies and the
# one event-stream writer, shared by every edge. These names are still imported from route
# modules, each (importer, module.name) listed until it moves to a read model of its own.
CONSOLE = "dispatcher.console"
CONSOLE_IMPORTS_FROM_API: set[tuple[str, str]] = set()
# Calls that import a module by a name given at run time.
IMPORT_CALLS = {"import_module", "importlib.import_module", "__import__", "importlib.__import__"}


def modules() -> dict[str, Path]:
    """Every module of the packages by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def _owner(name: str) -> str | None:
    """The module of ours a dotted name lives in, if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif node.module and node.level == 0:
        # `from pkg import submodule` depends on the submodule, not on pkg's __init__ alone.
        subs = [f"{node.module}.{alias.name}" for alias in node.names]
        ours = [s for s in subs if s in MODULES]
        yield from ours
        if len(ours) < len(subs):
            yield node.module


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of import nodes inside `if TYPE_CHECKING:` blocks (types only, never run)."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        guard = ast.unparse(node.test) if isinstance(node, ast.If) else ""
        if guard in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            hidden.update(
                id(n) for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)
            )
    return hidden


@cache
def _parsed() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def trees() -> Iterator[tuple[str, ast.Module]]:
    """Each module of the packages with its syntax tree (parsed once)."""
    yield from _parsed().items()


def import_calls(tree: ast.Module) -> Iterator[tuple[ast.Call, str | None]]:
    """Each call that imports a module by name, with the name when it is a literal."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in IMPORT_CALLS:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node, first.value
            else:
                yield node, None


def graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Each module's imports of our modules (types included), and imports made inside code."""
    edges: dict[str, set[str]] = {}
    nested: list[tuple[str, int, str]] = []
    for name, tree in trees():
        top = {id(n) for n in tree.body}
        typing_only = _type_checking_only(tree)
        deps: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(node):
                owner = _owner(target)
                if owner is None or owner == name:
                    continue
                deps.add(owner)
                if id(node) not in top and id(node) not in typing_only:
                    nested.append((name, node.lineno, owner))
        # `import_module("a.b")` with a literal name is an import like any other.
        for call, literal in import_calls(tree):
            owner = _owner(literal) if literal is not None else None
            if owner is not None and owner != name:
                deps.add(owner)
                nested.append((name, call.lineno, owner))
        edges[name] = deps
    return edges, nested


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


class TestImports:
    """Modules depend on each other in one direction only."""

    def test_the_scan_sees_the_packages(self) -> None:
        """The scan finds the composition root and its known dependencies."""
        edges, _ = graph()
        assert {"dispatcher.engine", "dispatcher.settings", "dispatcher.store.ledger"} <= set(
            edges["dispatcher.service"]
        )

    def test_no_import_cycle(self) -> None:
        """No group of modules imports itself, not even for type annotations."""
        assert cycles(graph()[0]) == []

    def test_a_cycle_would_be_found(self) -> None:
        """The cycle finder reports a loop of three."""
        assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

    def test_no_import_inside_code(self) -> None:
        """Our modules import each other at the top, never inside a function to dodge a loop."""
        nested = graph()[1]
        assert [n for n in nested if n[0] not in NESTED_ALLOWED] == []
        # Each exception is still needed, or it goes.
        assert {n[0] for n in nested} == set(NESTED_ALLOWED)


    def test_no_import_by_computed_name(self) -> None:
        """No module imports a module whose name is computed: the scan could not see it."""
        computed = {
            (name, call.lineno)
            for name, tree in trees()
            for call, literal in import_calls(tree)
            if literal is None
        }
        assert [c for c in computed if c[0] not in COMPUTED_IMPORT_ALLOWED] == []
        # Each exception is still needed, or it goes.
        assert {c[0] for c in computed} == set(COMPUTED_IMPORT_ALLOWED)

    def test_a_computed_import_would_be_found(self) -> None:
        """The rule sees `import_module(name)` and `__import__(f"...")`, not a literal name."""
        tree = ast.parse(
            "from importlib import import_module\n"
            "import importlib\n"
            "import_module(name)\n"
            "importlib.import_module('channels.base')\n"
            "__import__(f'channels.{kind}')\n"
        )
        assert [literal for _, literal in import_calls(tree)] == [None, "channels.base", None]


def _route_modules() -> set[str]:
    """The modules that define an aiohttp route table (`routes = web.RouteTableDef()`)."""
    found = set()
    for name, tree in trees():
        for node in tree.body:
            if (isinstance(node, ast.Assign) and ast.unparse(node.value).endswith("RouteTableDef()")
                    and [ast.unparse(t) for t in node.targets] == ["routes"]):
                found.add(name)
    return found


class TestListedStatically:
    """Route modules and channels are listed as imports, so the scan sees each of them."""

    def test_every_route_module_is_imported_by_the_app(self) -> None:
        """The application imports every module that has routes (the console mounts its own)."""
        edges = graph()[0]
        listed = _route_modules() - {m for m in _route_modules() if m.startswith(CONSOLE)}
        assert "dispatcher.api.alerts" in listed
        assert listed - edges["dispatcher.api.app"] == set()

    def test_the_modules_other_packages_import_load_first(self) -> None:
        """Each module that code outside the API imports loads in a fresh interpreter: listing
        the route modules did not close a loop through a package's `__init__`."""
        entry_points = ("dispatcher.edge", "dispatcher.public.routes",
                        "dispatcher.public.answer", "dispatcher.console.web")
        runs = [subprocess.Popen([sys.executable, "-c", f"import {name}"], cwd=ROOT,  # noqa: S603
                                 stderr=subprocess.PIPE, text=True) for name in entry_points]
        errors = {name: run.communicate(timeout=120)[1] for name, run in zip(
            entry_points, runs, strict=True)}
        failed = {name: errors[name].strip().splitlines()[-1:]
                  for name, run in zip(entry_points, runs, strict=True) if run.returncode}
        assert failed == {}

    def test_every_channel_module_is_imported_by_the_registry(self) -> None:
        """The registry imports each channel's module."""
        channel_modules = {
            "channels.email_smtp", "channels.sms_twilio", "channels.voice_twilio",
            "channels.push_apprise", "channels.devices",
        }
        assert channel_modules <= graph()[0]["channels.registry"]


class TestConsoleBesideApi:
    """The console is an adapter of its own: it does not import the API's route modules."""

    def test_console_imports_no_route_module(self) -> None:
        """Every name the console imports from `dispatcher.api` is listed (until it moves)."""
        found = set()
        for name, tree in trees():
            if not name.startswith(CONSOLE):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update((name, a.name) for a in node.names
                                 if a.name.startswith("dispatcher.api"))
                elif (isinstance(node, ast.ImportFrom) and node.module
                      and (node.module == "dispatcher.api"
                           or node.module.startswith("dispatcher.api."))):
                    found.update((name, f"{node.module}.{a.name}") for a in node.names)
        assert found - CONSOLE_IMPORTS_FROM_API == set(), "the console imports the API"
        # Each exception is still needed, or it goes.
        assert CONSOLE_IMPORTS_FROM_API - found == set()


# Channel modules the engine may import: the contract and its shared parts, no provider.
CHANNEL_CONTRACT = {"channels", "channels.base", "channels.breaker", "channels.errors",
                    "channels.pacing"}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


class TestEngineAndChannels:
    """Channels and the engine meet at the channel contract only."""

    def test_no_channel_imports_the_engine(self) -> None:
        """No module under `channels/` imports `dispatcher.engine` or one of its parts."""
        edges = graph()[0]
        found = {
            (name, dep) for name, deps in edges.items() if _in(name, "channels")
            for dep in deps if _in(dep, "dispatcher.engine")
        }
        assert found == set()

    def test_the_engine_imports_no_provider(self) -> None:
        """The engine's parts import the channel contract, never a provider's module."""
        edges = graph()[0]
        parts = [name for name in edges if _in(name, "dispatcher.engine")]
        assert {"dispatcher.engine", "dispatcher.engine.loop"} <= set(parts)
        found = {
            (name, dep) for name in parts for dep in edges[name]
            if _in(dep, "channels") and dep not in CHANNEL_CONTRACT
        }
        assert found == set()

    def test_the_rules_would_see_a_breach(self) -> None:
        """The scan reads a provider's module in the engine's imports as a breach."""
        assert "channels.sms_twilio" in MODULES and "channels.sms_twilio" not in CHANNEL_CONTRACT
        assert _in("dispatcher.engine.loop", "dispatcher.engine")
        assert not _in("dispatcher.engines", "dispatcher.engine")

    def test_the_engine_names_no_provider(self) -> None:
        """No part of the engine, nor the status callback route, names a provider's error
        code: the channel module reads its own and says it as a typed receipt field."""
        texts = {
            name: path.read_text(encoding="utf-8").lower() for name, path in MODULES.items()
            if _in(name, "dispatcher.engine")
        }
        assert texts
        assert [n for n, text in texts.items() if "twilio" in text or "21610" in text] == []
        callbacks = MODULES["dispatcher.api.callbacks"].read_text(encoding="utf-8")
        assert "21610" not in callbacks
