"""The store is the one place that speaks SQL: no module of the packages outside
`dispatcher/store/` has an SQL statement in a string literal."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dispatcher", "channels", "segments")
STORE = ROOT / "dispatcher" / "store"

# Upper-case SQL keywords only, as the store writes them, so English prose does not match.
SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|ANALYZE|CREATE|DROP|ALTER|PRAGMA|VACUUM|BEGIN"
    r"|COMMIT|ROLLBACK)\b"
    r"|\bSELECT\b.+\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\bON\s+CONFLICT\b|\bSKIP\s+LOCKED\b|\bGROUP\s+BY\b|\bORDER\s+BY\b",
    re.DOTALL,
)

# (file, start of the literal) that may hold SQL outside the store, each with its reason.
ALLOWED = {
    # The throwaway PostgreSQL server for tests and the bench creates its databases over an
    # admin connection: server administration, not the application's store.
    ("channels/sandbox/postgres.py", "CREATE DATABASE"),
}


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def sql_literals(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal (f-string parts too) that reads as SQL;
    docstrings, which may describe a query, are not code."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and SQL.search(node.value)
        ):
            yield node.lineno, node.value


def _modules() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if STORE not in path.parents:
                yield path


class TestStoreOwnsSQL:
    """SQL outside `dispatcher/store/` fails the build."""

    def test_no_sql_outside_the_store(self) -> None:
        """Every module of the packages outside the store is free of SQL statements."""
        found = []
        for path in _modules():
            name = path.relative_to(ROOT).as_posix()
            for line, text in sql_literals(path.read_text(encoding="utf-8")):
                if not any(name == f and text.lstrip().startswith(s) for f, s in ALLOWED):
                    found.append(f"{name}:{line}: {text.strip()[:60]!r}")
        assert found == [], "SQL belongs in dispatcher/store/:\n" + "\n".join(found)

    def test_the_allowed_literals_are_still_there(self) -> None:
        """An exception that no longer matches anything is removed, not left to hide SQL."""
        for name, start in ALLOWED:
            texts = [t for _, t in sql_literals((ROOT / name).read_text(encoding="utf-8"))]
            assert any(t.lstrip().startswith(start) for t in texts), (name, start)

    def test_the_scan_sees_queries_and_not_prose(self) -> None:
        """Statements in plain and f-strings are caught; docstrings and prose are not."""
        caught = '''
def read(db, where):
    """Runs SELECT id FROM people: described, not code."""
    db.fetchall("SELECT id FROM people WHERE role = ?")
    db.fetchall(f"SELECT id FROM people p WHERE {where}")
    db.execute("UPDATE drill_runs SET detail = ? WHERE id = ?")
    db.execute("INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO NOTHING")
    db.execute("DELETE FROM devices")
    db.fetchval("SELECT 1")
    print("select the people from the list, then update the order by hand")
'''
        lines = [line for line, _ in sql_literals(caught)]
        assert sorted(set(lines)) == [4, 5, 6, 7, 8, 9]
