"""The policy package stands alone: it takes its settings and place names, passed in."""

from __future__ import annotations

import ast
from pathlib import Path

import dispatcher.policy

POLICY = Path(dispatcher.policy.__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_policy_imports_nothing_from_the_service_settings() -> None:
    """No module of dispatcher/policy imports dispatcher.settings, even for type checking."""
    offenders = {
        path.name
        for path in POLICY.glob("*.py")
        if any(m == "dispatcher.settings" or m.startswith("dispatcher.settings.")
               for m in _imported_modules(path))
    }
    assert offenders == set()


def test_the_scan_sees_an_import_of_the_settings(tmp_path: Path) -> None:
    """The import scan itself catches a guarded import (so the test above can fail)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from dispatcher.settings import Settings\n",
        encoding="utf-8",
    )
    assert "dispatcher.settings" in _imported_modules(sample)
