"""Names are caught without cues; places, officials in role and sought suspects are not names
of victims; requests are instructions; small-group details identify; each finding has a
neutral rewrite."""

from __future__ import annotations

import pytest

from dispatcher.policy.rewrites import rewrite
from tests.policy.helpers import families, lint

CUELESS = [
    "Fire in the room of Kevin Miller, West Hall 1104. Evacuate now.",
    "Evacuate West Hall now. Fire reported in room 1104, occupied by Kevin Miller.",
]


class TestNamesWithoutCues:
    """A full name is flagged wherever it stands."""

    @pytest.mark.parametrize("text", CUELESS)
    def test_quoted_messages(self, text: str) -> None:
        """The two messages of the report are confidentiality violations, nothing else."""
        verdict = lint(text, "emergency")
        spans = {text[v["start"] : v["end"]] for v in verdict["violations"]
                 if v["rule"] == "confidentiality.name"}
        assert spans == {"Kevin Miller"}
        assert families(text, "emergency") == {"confidentiality"}
        units = {text[v["start"] : v["end"]] for v in verdict["violations"]
                 if v["rule"] == "confidentiality.residence_unit"}
        assert units in ({"1104"}, {"room 1104"})

    @pytest.mark.parametrize(
        ("text", "name"),
        [
            ("Flooding in Omar Haddad's office. Avoid the basement.", "Omar Haddad"),
            ("Smoke near the desk of T. Nakamura. Leave the building.", "T. Nakamura"),
            ("Wallets of Ryan Fox and Emma Stone were taken. Lock your locker.", "Emma Stone"),
            ("Someone broke into Jenna Park's car. Lock your car.", "Jenna Park"),
            ("Incendio en el cuarto de Ana María Torres Díaz. Salga ahora.",
             "Ana María Torres Díaz"),
            ("Luis and Maria Gonzalez were robbed near Lot C. Walk in groups.", "Luis"),
            ("Fire in the room of Ella Wright and Zoe Hill. Evacuate now.", "Zoe Hill"),
            ("Megan's laptop was stolen in the library. Lock your room.", "Megan"),
        ],
    )
    def test_found(self, text: str, name: str) -> None:
        """The name is a confidentiality.name violation with its exact span."""
        verdict = lint(text, "emergency")
        spans = {text[v["start"] : v["end"]] for v in verdict["violations"]
                 if v["rule"] == "confidentiality.name"}
        assert name in spans

    def test_title_is_part_of_the_span(self) -> None:
        """ "Ms. Garcia" is rewritten whole, so the span starts at the title."""
        text = "Timely Warning: Ms. Garcia reported a theft. Lock your door."
        [v] = [v for v in lint(text)["violations"] if v["rule"] == "confidentiality.name"]
        assert text[v["start"] : v["end"]] == "Ms. Garcia" and v["suggestion"] == "A student"


class TestNotVictims:
    """Places, officials in role and suspects the police seek stay clean."""

    @pytest.mark.parametrize(
        ("kind", "text"),
        [
            ("emergency", "Evacuate Franklin Hall and Jefferson Library now. Gather on the "
             "Lincoln Lawn."),
            ("emergency", "Crash on Dr. Martin Luther King Jr. Drive near Washington Park. "
             "Avoid the area."),
            ("timely_warning", "Timely Warning: Robbery near the Frederick Douglass statue. "
             "Call 911."),
            ("emergency", "Director of Public Safety James Howard asks everyone to avoid the "
             "Stadium."),
            ("emergency", "Vice President for Student Affairs Karen Liu asks students to stay "
             "away from the Student Union."),
            ("emergency", "El director de seguridad Jorge Paredes pide a todos evitar el área."),
            ("timely_warning", "Timely Warning: Police are looking for Dylan Shaw, 27. Do not "
             "approach him; call 911."),
            ("timely_warning", "Timely Warning: Jason Reed, 30, is wanted for the assault. "
             "Call 911."),
            ("emergency", "Hurricane Milton reaches campus tonight. Move to the lowest floor."),
            ("emergency", "Stay indoors and close windows, per Dr. Sarah Cole, the county "
             "health officer."),
            ("emergency", "The president of the Student Government Association, Jane Doe, asks "
             "everyone to avoid the Student Union."),
            ("timely_warning", "Timely Warning: Thefts at Trader Joe's and Harris Teeter. Lock "
             "your car."),
            ("timely_warning", "Timely Warning: Scam calls claim to be from the Social Security "
             "Administration. Hang up and report them to Campus Police."),
            # The push title (65 characters) cuts this before "Recreation Center".
            ("emergency", "Shelter in place: armed person reported near the Omar Haddad "
             "Recreation Center. Lock doors now."),
        ],
    )
    def test_clean(self, kind: str, text: str) -> None:
        """No family at all."""
        assert families(text, kind) == set()

    def test_victim_of_a_suspect_is_still_named(self) -> None:
        """A suspect cue governs only its own object: the person harmed stays a victim."""
        text = "Timely Warning: Police arrested a man for robbing Kevin Miller. Lock your door."
        assert families(text) == {"confidentiality"}


class TestRequests:
    """An instruction given as a request makes an emergency actionable."""

    @pytest.mark.parametrize(
        "text",
        [
            "Campus Police ask everyone to avoid the area near East Hall.",
            "Public Safety is urging people to stay away from the labs.",
            "Facilities requests that everyone keep clear of the loading dock.",
            "La Policía pide a todos permanecer en el interior del edificio.",
            "Fire captain Joe Lopez says to evacuate North Hall now.",
        ],
    )
    def test_actionable(self, text: str) -> None:
        """No actionable violation."""
        assert "actionable" not in families(text, "emergency")

    def test_news_is_not_a_request(self) -> None:
        """A request with no action in it is still news."""
        assert families("Police asked witnesses about the fire.", "emergency") == {"actionable"}


class TestSmallGroups:
    """A place on a team or in a club, or a jersey number, points to one person."""

    @pytest.mark.parametrize(
        ("text", "span"),
        [
            ("Timely Warning: The captain of the women's soccer team was assaulted. Walk with "
             "others.", "The captain of the women's soccer team"),
            ("Timely Warning: A volleyball player, jersey number 7, was followed. Walk with "
             "others.", "jersey number 7"),
            ("Aviso oportuno: El portero del equipo de fútbol fue asaltado. Camine acompañado.",
             "El portero del equipo"),
        ],
    )
    def test_identifying(self, text: str, span: str) -> None:
        """An identifying_details violation over the group detail."""
        found = [text[v["start"] : v["end"]] for v in lint(text)["violations"]
                 if v["rule"] == "confidentiality.identifying_details"]
        assert found == [span]

    def test_the_doer_is_no_victim(self) -> None:
        """A team named for the one who did it describes the suspect."""
        text = ("Timely Warning: A student reported being followed by a football player near "
                "Lot C. Call 911.")
        assert families(text) == set()

    def test_suspect_jersey_is_a_description(self) -> None:
        """A suspect's jersey is part of a description, which may be published."""
        text = "Timely Warning: Suspect wore a #23 basketball jersey. Call 911."
        assert families(text) == set()


class TestRewrites:
    """The neutral words for each kind of span, in English and Spanish."""

    @pytest.mark.parametrize(
        ("rule", "span", "language", "words"),
        [
            ("confidentiality.name", "Kevin Miller", "en", "a student"),
            ("confidentiality.name", "Dr. Huang", "en", "a faculty member"),
            ("confidentiality.name", "Lucía Ortega", "es", "una persona"),
            ("confidentiality.residence_unit", "room 418", "en", "a residence hall room"),
            ("confidentiality.residence_unit", "Apt. 3B", "en", "an apartment"),
            ("confidentiality.residence_unit", "third floor", "en", "upper floor"),
            ("confidentiality.residence_unit", "1104", "en", ""),
            ("confidentiality.residence_unit", "apartamento 5C", "es", "un apartamento"),
            ("confidentiality.street_address", "412 Oak Street, Apt 3", "en",
             "the 400 block of Oak Street"),
            ("confidentiality.id_number", "ID 800112233", "en", ""),
            ("confidentiality.identifying_details", "jersey number 7", "en", ""),
        ],
    )
    def test_rewrite(self, rule: str, span: str, language: str, words: str) -> None:
        """The rewrite of the span."""
        assert rewrite(rule, span, language) == words

    @pytest.mark.parametrize(
        ("text", "span", "rewritten"),
        [
            ("Timely Warning: student Maria Lopez reported a robbery near Lot C. Call 911.",
             "student Maria Lopez",
             "Timely Warning: A student reported a robbery near Lot C. Call 911."),
            ("A student, Maria Lopez, reported a robbery at the library. Lock your doors.",
             "A student, Maria Lopez,",
             "A student reported a robbery at the library. Lock your doors."),
            ("Timely Warning: the employee Ann Lee reported a theft near Lot C. Call 911.",
             "the employee Ann Lee",
             "Timely Warning: A staff member reported a theft near Lot C. Call 911."),
        ],
    )
    def test_role_word_before_a_name_is_in_the_span(
        self, text: str, span: str, rewritten: str
    ) -> None:
        """The span takes the role word before the name, so the suggestion replaces the whole
        phrase (never "student a student")."""
        [v] = [v for v in lint(text)["violations"] if v["rule"] == "confidentiality.name"]
        assert text[v["start"] : v["end"]] == span
        assert text[: v["start"]] + v["suggestion"] + text[v["end"] :] == rewritten

    def test_spanish_message_gets_spanish_words(self) -> None:
        """The suggestion is in the language of the text it rewrites."""
        text = "Aviso oportuno: Robaron el carro de Diego Salazar. Cierre su carro."
        [v] = lint(text, language="es")["violations"]
        assert v["suggestion"] == "una persona"


class TestMoreRequests:
    """Requests whose people come with a place, and Spanish negative imperatives."""

    @pytest.mark.parametrize(
        ("text", "language"),
        [
            ("Housing is asking all residents of North Hall and South Hall to leave now.", "en"),
            ("The Fire Marshal asks everyone in the Student Union to exit by the east doors.",
             "en"),
            ("Robo de autos en el Lote B. No dejen llaves dentro del carro.", "es"),
            ("La policía pide a la comunidad que se mantenga alejada del Lote C.", "es"),
        ],
    )
    def test_actionable(self, text: str, language: str) -> None:
        """No actionable violation."""
        assert "actionable" not in families(text, "emergency", language=language)
