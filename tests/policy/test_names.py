"""Name detection: precision and recall on a labelled set, and the traps the issue names."""

from __future__ import annotations

import pytest

from dispatcher.policy import finder_for
from dispatcher.policy.names import Role
from tests.policy.helpers import HERE, load_cases, rules


def _people(text: str, places: tuple[str, ...] = ()) -> list[str]:
    return [h.text for h in finder_for(places).find(text) if h.role is Role.PERSON]


class TestLabelled:
    """The labelled sentences of names.jsonl."""

    def test_precision_and_recall(self) -> None:
        """Every expected name is found and nothing else is."""
        tp = fp = fn = 0
        for case in load_cases(HERE / "names.jsonl"):
            got = _people(case["text"])
            expected = case["names"]
            tp += sum(1 for g in got if g in expected)
            fp += sum(1 for g in got if g not in expected)
            fn += sum(1 for e in expected if e not in got)
        assert tp >= 25
        assert fp == 0 and fn == 0, (tp, fp, fn)

    def test_spans_point_at_the_name(self) -> None:
        """The span of a hit is exactly the name in the text."""
        text = "Timely Warning: Michael Torres, a freshman, was robbed."
        [hit] = finder_for(()).find(text)
        assert text[hit.start : hit.end] == "Michael Torres"


class TestPeople:
    """Full, partial and titled names of victims, complainants and witnesses."""

    @pytest.mark.parametrize(
        ("text", "name"),
        [
            ("Michael Torres, a freshman, was robbed near the bookstore.", "Michael Torres"),
            ("Emily R. was approached near the gym.", "Emily R."),
            ("Ms. Garcia reported a theft.", "Garcia"),
            ("Professor Alan Greene was robbed in Lot C.", "Alan Greene"),
            ("Her roommate Jessica found the door open.", "Jessica"),
            ("The witness, Tyler Jackson, saw a man run.", "Tyler Jackson"),
            ("La estudiante María López fue asaltada.", "María López"),
            ("La Sra. García fue asaltada.", "García"),
            ("Student Quinvena Lomi was injured.", "Quinvena Lomi"),
            ("Ms. Ford reported a burglary.", "Ford"),
            ("Her boyfriend, Marcus Hill, called police.", "Marcus Hill"),
            ("A student, E.R., was attacked.", "E.R."),
        ],
    )
    def test_found(self, text: str, name: str) -> None:
        """The name is found with its exact text."""
        assert name in _people(text)

    def test_rule_in_verdict(self) -> None:
        """A name gives confidentiality.name with the span of the name."""
        assert "confidentiality.name" in rules("Anna Kim, a junior, was robbed. Walk with others.")


class TestNotPeople:
    """Places, offices, suspects and officials are not victims' names."""

    @pytest.mark.parametrize(
        "text",
        [
            "Evacuate Johnson Hall and gather at Lincoln Park.",
            "Avoid Martin Luther King Jr. Blvd near Smith Library.",
            "Avoid Dr. Martin Luther King Jr. Drive and Adams Street.",
            "Police activity near Adams Street and Lee Hall.",
            "Fire at Carver Hall; use the Washington Hall exit.",
            "Report information to Campus Police or the Dean of Students Office.",
            "Robbery near the Wells Fargo on College Avenue.",
            "Walk with a friend near Jefferson and 5th.",
            "The suspect fled in a silver Ford Focus on Lincoln Avenue.",
            "Tornado warning for Jackson County until 5 PM.",
            "May 5 is the rain date for the safety fair.",
            "Evite la Calle Adams y el Parque Lincoln.",
            "Garcia Hall and Lopez Hall are without power.",
            "Lockdown at Hughes Hall. Use the Grant Street exit.",
        ],
    )
    def test_not_found(self, text: str) -> None:
        """No person's name is reported."""
        assert _people(text) == []

    def test_suspect_named(self) -> None:
        """A named suspect may be published."""
        hits = finder_for(()).find("Police arrested John Smith, 34, after the robbery.")
        assert [h.role for h in hits] == [Role.SUSPECT]

    def test_official_named(self) -> None:
        """An officer named in their role is not a victim."""
        hits = finder_for(()).find("Contact Officer Dana Brooks with information.")
        assert [h.role for h in hits] == [Role.OFFICIAL]

    def test_campus_gazetteer(self) -> None:
        """A configured place named after a person, written without a place word, is a place."""
        text = "Evelyn Hooker, a new residence, is closed. Use the side door."
        assert _people(text) == ["Evelyn Hooker"]
        assert _people(text, ("Evelyn Hooker",)) == []

    def test_directory_buildings(self) -> None:
        """The directory's building names are places (read from the embedded campus)."""
        from dispatcher.places import campus_places
        from tests.policy.helpers import settings

        places = campus_places(settings())
        assert "Carver Hall" in places and "Student Union" in places
