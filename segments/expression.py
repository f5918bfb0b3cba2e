"""Segment expressions: `all`, `key:value` terms, `and`, `or`, `not`, parentheses, named segments.

Precedence, from tightest: `not`, then `and`, then `or`; parentheses group. Keywords are
case-insensitive. Values compare case-insensitively except `id:`; a value with spaces or
parentheses is quoted (`building:"North Hall"`). A bare name refers to a named segment from
the config, expanded in place. Positions in errors count characters from 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

KEYWORDS = frozenset({"and", "or", "not", "all"})
MAX_DEPTH = 64

_WORD = re.compile(r"[\w.@+/-]+")
_KEY = re.compile(r"^[a-z0-9_][a-z0-9_-]*$")
_SEGMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class AudienceError(ValueError):
    """The audience expression or zones cannot be resolved; the message says where and why."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True, slots=True)
class Everyone:
    """`all`: every person and device."""


@dataclass(frozen=True, slots=True)
class Term:
    """`key:value`; `segment` names the named segment it came from ("" for the expression)."""

    key: str
    value: str
    position: int
    segment: str = ""

    def where(self) -> str:
        """Where the term was written, for error messages."""
        place = f"at position {self.position}"
        return f"{place} of segment {self.segment!r}" if self.segment else place


@dataclass(frozen=True, slots=True)
class Not:
    """Everyone the inner expression does not select."""

    inner: Node


@dataclass(frozen=True, slots=True)
class And:
    """Everyone every part selects."""

    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Everyone any part selects."""

    parts: tuple[Node, ...]


Node = Everyone | Term | Not | And | Or

TokenKind = Literal["word", "string", "colon", "open", "close", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    text: str
    position: int

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the expression"
        if self.kind == "string":
            return f'"{self.text}"'
        return repr(self.text)


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "():":
            kind: TokenKind = {"(": "open", ")": "close", ":": "colon"}[ch]  # type: ignore[assignment]
            out.append(_Token(kind, ch, i + 1))
            i += 1
        elif ch in "\"'":
            end = text.find(ch, i + 1)
            if end < 0:
                raise AudienceError(
                    f"unterminated quoted value starting at position {i + 1}", i + 1
                )
            out.append(_Token("string", text[i + 1 : end], i + 1))
            i = end + 1
        else:
            match = _WORD.match(text, i)
            if match is None:
                raise AudienceError(f"unexpected character {ch!r} at position {i + 1}", i + 1)
            out.append(_Token("word", match.group(), i + 1))
            i = match.end()
    out.append(_Token("end", "", len(text) + 1))
    return out


_PRIMARY = "a term (key:value), 'all', 'not', '(' or a segment name"


class _Parser:
    def __init__(
        self,
        text: str,
        segments: Mapping[str, str],
        origin: str,
        stack: tuple[str, ...],
    ) -> None:
        self._tokens = _tokens(text)
        self._i = 0
        self._segments = segments
        self._origin = origin
        self._stack = stack
        self._depth = 0

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token.kind == "word" and token.text.lower() == word:
            # A keyword followed by ':' is a term's key (`not:x` is odd but unambiguous).
            return self._tokens[self._i + 1].kind != "colon"
        return False

    def _fail(self, expected: str, note: str = "") -> AudienceError:
        token = self._peek()
        return AudienceError(
            f"expected {expected} at position {token.position}{note}, found {token.describe()}",
            token.position,
        )

    def parse(self) -> Node:
        node = self._or()
        if self._peek().kind != "end":
            raise self._fail("'and', 'or' or the end of the expression")
        return node

    def _or(self) -> Node:
        parts = [self._and()]
        while self._keyword("or"):
            self._next()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def _and(self) -> Node:
        parts = [self._unary()]
        while self._keyword("and"):
            self._next()
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _unary(self) -> Node:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            token = self._peek()
            raise AudienceError(
                f"expression nested too deeply at position {token.position} "
                f"(at most {MAX_DEPTH} levels)",
                token.position,
            )
        try:
            if self._keyword("not"):
                self._next()
                return Not(self._unary())
            return self._primary()
        finally:
            self._depth -= 1

    def _primary(self) -> Node:
        token = self._peek()
        if token.kind == "open":
            self._next()
            node = self._or()
            if self._peek().kind != "close":
                raise self._fail(
                    "'and', 'or' or ')'", f" (to close the '(' at position {token.position})"
                )
            self._next()
            return node
        if token.kind != "word" or self._keyword("and") or self._keyword("or"):
            raise self._fail(_PRIMARY)
        self._next()
        if self._peek().kind == "colon":
            return self._term(token)
        name = token.text.lower()
        if name == "all":
            return Everyone()
        return self._named(name, token)

    def _term(self, key_token: _Token) -> Term:
        key = key_token.text.lower()
        if not _KEY.match(key):
            raise AudienceError(
                f"{key_token.text!r} at position {key_token.position} is not an attribute name "
                "(letters, digits, '-' or '_')",
                key_token.position,
            )
        self._next()
        value_token = self._peek()
        if value_token.kind not in ("word", "string") or not value_token.text.strip():
            raise self._fail(f"a value after '{key_token.text}:'")
        self._next()
        value = value_token.text.strip()
        return Term(key, value if key == "id" else value.lower(), key_token.position, self._origin)

    def _named(self, name: str, token: _Token) -> Node:
        text = self._segments.get(name)
        if text is None:
            known = ", ".join(sorted(self._segments)) or "none are configured"
            raise AudienceError(
                f"unknown segment {token.text!r} at position {token.position} "
                f"(named segments: {known})",
                token.position,
            )
        if name in self._stack:
            cycle = " -> ".join((*self._stack[self._stack.index(name) :], name))
            raise AudienceError(f"segment {name!r} refers to itself: {cycle}", token.position)
        try:
            return _Parser(text, self._segments, name, (*self._stack, name)).parse()
        except AudienceError as exc:
            # The message names the segment whose text is wrong; the position is where this
            # level's text refers to it, so the caller can point at its own input.
            message = str(exc)
            if not message.startswith("segment "):
                message = f"segment {name!r}: {message}"
            raise AudienceError(message, token.position) from None


def parse(text: str, segments: Mapping[str, str] | None = None) -> Node:
    """Parse an expression, expanding named segments; raises AudienceError."""
    return _Parser(text, segments or {}, "", ()).parse()


def check_named_segments(segments: Mapping[str, str]) -> None:
    """Refuse a named segment that is misnamed, does not parse, or refers to itself."""
    for name, text in segments.items():
        if not _SEGMENT_NAME.match(name) or name in KEYWORDS:
            raise AudienceError(
                f"segment name {name!r}: use lowercase letters, digits, '-', '_' or '.', "
                "and not 'and', 'or', 'not' or 'all'"
            )
        try:
            _Parser(text, segments, name, (name,)).parse()
        except AudienceError as exc:
            message = str(exc)
            if not message.startswith("segment "):
                message = f"segment {name!r}: {message}"
            raise AudienceError(message, exc.position) from None


def render(node: Node) -> str:
    """The expression fully parenthesized: shows how it was grouped."""
    if isinstance(node, Everyone):
        return "all"
    if isinstance(node, Term):
        value = node.value
        return f"{node.key}:{value}" if _WORD.fullmatch(value) else f'{node.key}:"{value}"'
    if isinstance(node, Not):
        return f"not {render(node.inner)}"
    joiner = " and " if isinstance(node, And) else " or "
    return "(" + joiner.join(render(p) for p in node.parts) + ")"


def terms(node: Node) -> list[Term]:
    """Every term of the expression, in order."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return terms(node.inner)
    if isinstance(node, (And, Or)):
        return [t for p in node.parts for t in terms(p)]
    return []
