"""The shape ARCHITECTURE.md promises: an import graph without cycles, and no hidden imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dispatcher", "channels", "segments")
# Modules that may import ours inside a function, and why.
NESTED_ALLOWED = {
    "dispatcher.desktop_cli": "the pop-up needs Tk, which every other command runs without",
}


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


def graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Each module's imports of our modules (types included), and imports made inside code."""
    edges: dict[str, set[str]] = {}
    nested: list[tuple[str, int, str]] = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
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
