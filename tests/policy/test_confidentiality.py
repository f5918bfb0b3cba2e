"""confidentiality.*: each rule with true positives and the false positives the issue names."""

from __future__ import annotations

import pytest

from tests.policy.helpers import families, lint, rules

TIP = " Walk with others and report information to Campus Police."


def _span(text: str, rule: str, **extra: str) -> str:
    verdict = lint(text, **extra)
    found = [v for v in verdict["violations"] if v["rule"] == rule]
    assert found, verdict["violations"]
    return text[found[0]["start"] : found[0]["end"]]


class TestNumbers:
    """Phones, e-mail addresses, IDs, SSNs and dates of birth."""

    def test_private_phone(self) -> None:
        """A number tied to the victim is an error, with its span."""
        text = "Assault near Lot G. Witnesses may text the victim at (555) 201-3344." + TIP
        assert _span(text, "confidentiality.phone") == "(555) 201-3344"

    def test_institution_phone_is_a_warning(self) -> None:
        """A number given as an office's line is not a confidentiality problem."""
        text = "Theft at the library." + TIP + " Call Campus Police at 555-201-1000."
        assert families(text) == set()
        assert "contact.unlisted" in rules(text)

    def test_allow_list(self) -> None:
        """Numbers on policy.allow and 911 pass without any violation."""
        from dispatcher.alerting.lint import lint_one
        from tests.policy.helpers import settings

        s = settings()
        policy = s.policy.model_copy(update={"allow": ["(555) 201-1000"]})
        allowed = s.model_copy(update={"policy": policy})
        text = "Theft at the library. Call 911 or Campus Police at 555-201-1000."
        assert lint_one({"kind": "timely_warning", "text": text}, allowed)["violations"] == []

    def test_personal_email(self) -> None:
        """A person's address is an error; an office's address is only a warning."""
        text = "Theft at Pine Hall. Email the victim at jmoore22@example.edu." + TIP
        assert "confidentiality.email" in rules(text)
        office = "Theft at Pine Hall." + TIP + " Tips: police@example.edu."
        assert families(office) == set()

    def test_student_id(self) -> None:
        """A student ID number is an error; a case number is not."""
        assert "confidentiality.id_number" in rules("Student ID 900123456 found." + TIP)
        assert families("Case number 2024-001234: theft at the gym." + TIP) == set()

    def test_ssn(self) -> None:
        """A Social Security number is an error."""
        assert "confidentiality.ssn" in rules("SSN 123-45-6789 was stolen." + TIP)

    def test_date_of_birth(self) -> None:
        """A date of birth is an error; an age range for a suspect is fine."""
        text = "The victim, DOB 04/12/2004, was hurt." + TIP
        assert "confidentiality.date_of_birth" in rules(text)
        assert families("Suspect: male, 20s, born in the 2000s style hoodie." + TIP) == set()


class TestPlaces:
    """Rooms, floors and addresses of residences."""

    def test_room_tied_to_person(self) -> None:
        """A resident's room number is an error."""
        text = "A resident of Hill Hall room 418 reported a sexual assault." + TIP
        assert _span(text, "confidentiality.residence_unit") == "room 418"

    def test_floor_tied_to_person(self) -> None:
        """The floor a victim lives on is an error."""
        assert "confidentiality.residence_unit" in rules(
            "The victim, who lives on the third floor of Grant Hall, was not hurt." + TIP
        )

    def test_room_of_hazard_is_fine(self) -> None:
        """An emergency may name the room or floor of a hazard."""
        text = "Chemical spill at the Chemistry Building, room 210. Evacuate the building."
        assert families(text, kind="emergency") == set()
        text = "Fire on the 2nd floor of Morgan Hall. Evacuate now."
        assert families(text, kind="emergency") == set()

    def test_exact_address(self) -> None:
        """An address with a unit is an error; a block is fine."""
        text = "Burglary at 1412 Maple Street Apt 3B on Sunday." + TIP
        assert _span(text, "confidentiality.street_address") == "1412 Maple Street Apt 3B"
        assert families("Burglary in the 1400 block of Maple Street." + TIP) == set()

    def test_address_of_a_crime_against_property(self) -> None:
        """A timely warning may say where vehicles were stolen; not where a person was hurt."""
        where = (
            "occurred at 150 Stadium Place, 614 South Crouse Avenue and 919 East Genesee Street."
        )
        assert families("Three vehicle thefts " + where + TIP) == set()
        text = "Two sexual assaults " + where + TIP
        assert _span(text, "confidentiality.street_address") == "614 South Crouse Avenue"

    def test_spanish_room(self) -> None:
        """Spanish room numbers are caught too."""
        text = "Robo en la habitación 305 de Hill Hall. Reporte actividad sospechosa a la policía."
        assert "confidentiality.residence_unit" in rules(text, language="es")


class TestChoicesAndCombinations:
    """The victim's choices about reporting, and details that together identify."""

    @pytest.mark.parametrize(
        "sentence",
        [
            "The student who was assaulted decided not to report to police.",
            "The woman chose not to press charges.",
            "The complainant does not want to involve the police.",
            "The survivor has chosen not to file a police report.",
            "La víctima decidió no denunciar a la policía.",
        ],
    )
    def test_reporting_choice(self, sentence: str) -> None:
        """Any statement of the victim's choice about reporting is an error."""
        assert "confidentiality.reporting_choice" in rules(sentence + TIP)

    @pytest.mark.parametrize(
        "sentence",
        [
            "Do not hesitate to report suspicious activity to police.",
            "Anyone with information is asked to contact police.",
            "Witnesses are asked to contact police.",
            "You may choose to report anonymously to police.",
        ],
    )
    def test_reporting_advice_is_fine(self, sentence: str) -> None:
        """Advice to the community about reporting is not about the victim."""
        assert families("Theft at the gym. " + sentence) == set()

    def test_identifying_combination(self) -> None:
        """Age, year, major and hometown together point to one person."""
        text = "A 19-year-old sophomore biology major from Springfield was assaulted." + TIP
        assert "confidentiality.identifying_details" in rules(text)

    def test_suspect_description_is_fine(self) -> None:
        """A detailed suspect description is allowed."""
        text = (
            "Robbery near Lot F. Suspect: male, about 25, 5'10, gray sweatshirt, from out "
            "of town, described as a former student." + TIP
        )
        assert families(text) == set()


class TestNamesAfterCues:
    """Names no list holds, and names in lower case, where the words around say a person."""

    @pytest.mark.parametrize(
        ("text", "name"),
        [
            ("A student, who goes by Moana, lost her phone at the gym.", "Moana"),
            ("One of the rooms is shared by Yerlan Abenov and another student.", "Yerlan Abenov"),
            ("The fire started in the office of prof. kimura.", "prof. kimura"),
            ("One victim was reported by police as tamar levi.", "tamar"),
            ("Homes of Jovana Marković and Arben Hoxha were entered.", "Jovana Marković"),
            ("Call the owner, Ben, at 555-777-1234 if you find the bag.", "Ben"),
            ("The officer who was shot, Sgt. Nizhoni Begay, is in surgery.", "Nizhoni Begay"),
            ("Among the injured is Angalgaq Kanrilak of Watts Hall.", "Angalgaq Kanrilak"),
            ("A junior named arpi hakobyan lives in State Quad.", "arpi hakobyan"),
        ],
    )
    def test_person_after_a_cue(self, text: str, name: str) -> None:
        assert _span(text + TIP, "confidentiality.name").startswith(name)

    @pytest.mark.parametrize(
        "text",
        [
            "The bicycle was reported as stolen from the rack.",
            "The suspect left with Parkland Auto Licensing documents.",
            "Housing is run by Residence Life and Campus Police patrols the area.",
            "If you have questions, please contact Rick Roberts at extension 2507.",
            "I am grateful to David Potvin and Wayne Green who oversaw the repairs.",
            "At UW Tacoma, the active threat drill is on Feb. 19.",
            "The main break near the Bass-Rudd Tennis Center shut down the campus.",
            "Students received e-mails from a department called Disability Resources.",
        ],
    )
    def test_not_a_person(self, text: str) -> None:
        assert "confidentiality" not in families(text + TIP)


class TestMoreDetails:
    """Logins, rooms given by building and number, and the only one in a named field."""

    def test_login_without_digits(self) -> None:
        text = "The bike was registered to ONYEN mkapule, a graduate student."
        assert _span(text + TIP, "confidentiality.account") == "mkapule"
        assert "confidentiality" not in families("Log in with your NetID and password." + TIP)

    def test_building_and_room_where_someone_lives(self) -> None:
        text = "The student who called 911 lives in Pritchard 3042 and saw the flash."
        assert _span(text + TIP, "confidentiality.residence_unit") == "Pritchard 3042"

    def test_only_one_in_a_named_field(self) -> None:
        text = "The only Scandinavian Studies lecturer, who broke her hip, is recovering."
        assert "confidentiality.identifying_details" in rules(text + TIP)
