"""Segment expressions: every operator, precedence, named segments and syntax errors."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import ValidationError

from segments.expression import (
    MAX_DEPTH,
    AudienceError,
    Everyone,
    Term,
    check_named_segments,
    parse,
    render,
)
from segments.settings import DirectorySettings


class TestOperators:
    """Each operator parses into the tree it names."""

    def test_all(self) -> None:
        assert parse("all") == Everyone()
        assert parse("  ALL ") == Everyone()

    def test_term_lowercases_values_but_not_ids(self) -> None:
        assert parse("Role:Student") == Term("role", "student", 1)
        assert parse("id:P00017") == Term("id", "P00017", 1)

    def test_quoted_values_keep_spaces(self) -> None:
        assert render(parse('building:"North Hall"')) == 'building:"north hall"'
        assert render(parse("building:'North Hall'")) == 'building:"north hall"'

    def test_space_around_the_colon_is_allowed(self) -> None:
        assert parse("role : student") == Term("role", "student", 1)

    @pytest.mark.parametrize(
        ("text", "grouped"),
        [
            ("a:1 and b:2", "(a:1 and b:2)"),
            ("a:1 or b:2", "(a:1 or b:2)"),
            ("not a:1", "not a:1"),
            ("(a:1)", "a:1"),
            ("a:1 and b:2 and c:3", "(a:1 and b:2 and c:3)"),
            ("a:1 OR b:2 Or c:3", "(a:1 or b:2 or c:3)"),
            ("not not a:1", "not not a:1"),
        ],
    )
    def test_operator(self, text: str, grouped: str) -> None:
        assert render(parse(text)) == grouped


class TestPrecedence:
    """`not` binds tighter than `and`, which binds tighter than `or`; parentheses override."""

    @pytest.mark.parametrize(
        ("text", "grouped"),
        [
            ("a:1 or b:2 and c:3", "(a:1 or (b:2 and c:3))"),
            ("a:1 and b:2 or c:3", "((a:1 and b:2) or c:3)"),
            ("not a:1 and b:2", "(not a:1 and b:2)"),
            ("not a:1 or b:2", "(not a:1 or b:2)"),
            ("a:1 and not b:2 or c:3 and d:4", "((a:1 and not b:2) or (c:3 and d:4))"),
            ("(a:1 or b:2) and c:3", "((a:1 or b:2) and c:3)"),
            ("not (a:1 or b:2)", "not (a:1 or b:2)"),
            ("all and not (a:1 and (b:2 or c:3))", "(all and not (a:1 and (b:2 or c:3)))"),
        ],
    )
    def test_grouping(self, text: str, grouped: str) -> None:
        assert render(parse(text)) == grouped


class TestSyntaxErrors:
    """A syntax error names the position (from 1) and what was expected there."""

    @pytest.mark.parametrize(
        ("text", "position", "expected"),
        [
            ("", 1, "expected a term (key:value), 'all', 'not', '(' or a segment name"),
            ("role:", 6, "expected a value after 'role:'"),
            ("role:student building:x", 14, "expected 'and', 'or' or the end"),
            ("(role:student", 14, "expected 'and', 'or' or ')' at position 14 (to close the '('"),
            ("role:student)", 13, "expected 'and', 'or' or the end of the expression"),
            ("role:student and", 17, "expected a term (key:value)"),
            ("role:student or or x:1", 17, "found 'or'"),
            ("not", 4, "found the end of the expression"),
            ("a:1 & b:2", 5, "unexpected character '&'"),
            ('building:"north', 10, "unterminated quoted value"),
            ("()", 2, "expected a term"),
            ("bad key!:x", 8, "unexpected character '!'"),
        ],
    )
    def test_position_and_expectation(self, text: str, position: int, expected: str) -> None:
        with pytest.raises(AudienceError) as caught:
            parse(text)
        assert caught.value.position == position
        assert expected in str(caught.value)
        assert f"position {position}" in str(caught.value)

    def test_deep_nesting_is_refused_not_crashed(self) -> None:
        with pytest.raises(AudienceError, match="nested too deeply"):
            parse("not " * (MAX_DEPTH + 5) + "a:1")
        with pytest.raises(AudienceError, match="nested too deeply"):
            parse("(" * 600 + "a:1" + ")" * 600)

    def test_error_is_a_value_error(self) -> None:
        assert issubclass(AudienceError, ValueError)


class TestNamedSegments:
    """Named segments expand in place, nest, and are checked when the config loads."""

    SEGMENTS: ClassVar = {
        "residents-north": "role:student and building:north-hall",
        "athletes": "group:athletics",
        "north-athletes": "residents-north and athletes",
    }

    def test_a_name_expands_to_its_expression(self) -> None:
        assert render(parse("residents-north", self.SEGMENTS)) == (
            "(role:student and building:north-hall)"
        )

    def test_names_nest_and_combine(self) -> None:
        assert render(parse("north-athletes or not athletes", self.SEGMENTS)) == (
            "(((role:student and building:north-hall) and group:athletics) or not group:athletics)"
        )

    def test_terms_remember_their_segment(self) -> None:
        node = parse("athletes", self.SEGMENTS)
        assert node == Term("group", "athletics", 1, "athletes")

    def test_unknown_name_lists_the_known_ones(self) -> None:
        with pytest.raises(AudienceError) as caught:
            parse("role:staff or atheletes", self.SEGMENTS)
        assert caught.value.position == 15
        assert "unknown segment 'atheletes' at position 15" in str(caught.value)
        assert "athletes, north-athletes, residents-north" in str(caught.value)

    def test_error_inside_a_segment_names_it(self) -> None:
        with pytest.raises(AudienceError) as caught:
            parse("x:1 or broken", {"broken": "role:student and"})
        assert str(caught.value).startswith("segment 'broken': expected a term")
        assert caught.value.position == 8

    def test_cycles_are_refused(self) -> None:
        with pytest.raises(AudienceError, match="refers to itself: a -> b -> a"):
            check_named_segments({"a": "b or x:1", "b": "role:staff and a"})

    def test_settings_refuse_a_bad_segment(self) -> None:
        with pytest.raises(ValidationError, match="segment 'north': expected a value after"):
            DirectorySettings(segments={"north": "building:"})
        with pytest.raises(ValidationError, match="segment name 'and'"):
            DirectorySettings(segments={"and": "role:staff"})
        with pytest.raises(ValidationError, match="unknown segment 'nobody'"):
            DirectorySettings(segments={"everyone": "nobody"})

    def test_settings_accept_good_segments(self) -> None:
        settings = DirectorySettings(segments=self.SEGMENTS)
        assert settings.segments == self.SEGMENTS
