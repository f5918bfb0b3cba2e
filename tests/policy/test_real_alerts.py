"""The policy on alerts as campuses write them: life safety first, long texts, protective
actions, one normal form, names of many cultures, identifiers, fewer false flags, and the
corpus of published alerts (tests/policy/real/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import policy_corpus
from dispatcher.alerting.lint import lint_one
from dispatcher.policy.actionable import has_instruction
from dispatcher.policy.normal import normalize
from dispatcher.settings import Settings
from tests.conftest import SettingsFactory
from tests.policy.helpers import lint, settings
from tests.support import start_service

REAL = Path(__file__).resolve().parent / "real"


def errors(verdict: dict[str, Any]) -> set[str]:
    """The rule ids that block the send."""
    return {v["rule"] for v in verdict["violations"] if v["severity"] == "error"}


def names_found(text: str, kind: str = "timely_warning") -> list[str]:
    """The spans (as written) of every confidentiality.name error."""
    verdict = lint(text, kind)
    return [text[v["start"] : v["end"]] for v in verdict["violations"]
            if v["rule"] == "confidentiality.name" and v["channel"] is None]


class TestLifeSafetyFirst:
    """A live emergency is never held back for its wording; its confidentiality still is."""

    def test_no_instruction_warns(self) -> None:
        """An emergency that says nothing of what to do is sent, with a warning."""
        verdict = lint("EMERGENCY! There is a suspect with a firearm on the UNLV campus.",
                       kind="emergency")
        assert verdict["ok"]
        [v] = [v for v in verdict["violations"] if v["rule"] == "actionable.no_instruction"]
        assert v["severity"] == "warning" and "never held back" in v["message"]

    def test_drill_still_blocks(self) -> None:
        """A drill is not life safety: its missing instruction blocks as before."""
        verdict = lint("Gas odor reported at the Biology Building.", kind="emergency",
                       mode="drill")
        assert "actionable.no_instruction" in errors(verdict)

    def test_own_sms_too_long_warns(self) -> None:
        """An over-long SMS the dispatcher wrote warns in a live emergency."""
        verdict = lint("Gas leak. Evacuate the Chemistry Building now.", kind="emergency",
                       texts={"sms": "Evacuate the Chemistry Building now. " * 12})
        [v] = [v for v in verdict["violations"] if v["rule"] == "brevity.sms_segments"]
        assert v["severity"] == "warning" and verdict["ok"]

    def test_confidentiality_still_blocks(self) -> None:
        """A victim's name blocks a live emergency too."""
        verdict = lint("Shooting near the library. Jimin Park was injured. Shelter in place.",
                       kind="emergency")
        assert not verdict["ok"] and "confidentiality.name" in errors(verdict)

    def test_timely_warning_without_tip_blocks(self) -> None:
        """A timely warning with no safety tip or way to report stays an error."""
        verdict = lint("A robbery occurred near the Student Union on Tuesday night.")
        assert "actionable.no_safety_tip" in errors(verdict)


class TestDerivedShortTexts:
    """Long text is normal: the short channels carry its lead, instruction and a link."""

    TEXT = ("Shots have been fired near Berkey Hall and police are warning of an active "
            "shooter. " + "Officers are searching the buildings one by one. " * 6
            + "All persons on campus should immediately shelter in place and secure the room "
            "they are in. Classes are canceled for the next 48 hours.")

    def test_sms_is_lead_instruction_and_link(self) -> None:
        """The SMS is the lead sentence, the sentence telling what to do, and the link."""
        verdict = lint(self.TEXT, kind="emergency")
        assert verdict["ok"] and verdict["segments"]["sms"] <= 2
        sms = verdict["derived"]["sms"]
        assert sms.startswith("UNIV ALERT: Shots have been fired near Berkey Hall")
        assert "immediately shelter in place" in sms
        assert sms.endswith(f"Full text: {settings().service.base_url()}/public/")
        assert "Officers are searching" not in sms

    def test_instruction_field_preferred(self) -> None:
        """A request's own instruction is the one the derived text carries."""
        verdict = lint(self.TEXT, kind="emergency", instruction="Secure in place now.")
        assert "Secure in place now." in verdict["derived"]["push"]

    def test_pa_has_no_link(self) -> None:
        """A spoken text carries no link."""
        verdict = lint(self.TEXT, kind="emergency")
        assert "http" not in verdict["derived"]["pa"]

    def test_salutation_skipped_and_plainest_instruction_kept(self) -> None:
        """An e-mailed warning's salutation is no lead; the tip that says most plainly what to
        do is kept over a sentence that only happens to open with a verb."""
        text = ("Dear Students, Faculty and Staff:\n\nA robbery was reported near the Student "
                "Union tonight. " + "Officers searched the area and spoke with witnesses. " * 8
                + "We ask our community members, particularly those living nearby, to remain "
                "alert and report suspicious activity to police.")
        sms = lint(text)["derived"]["sms"]
        assert sms.startswith("UNIV ALERT: A robbery was reported near the Student Union")
        assert "We ask our community members" in sms and "Officers searched" not in sms

    def test_short_text_is_not_derived(self) -> None:
        """A text that fits is sent as written: no derived texts, no warning."""
        verdict = lint("Gas leak at Carver Hall. Evacuate now.", kind="emergency")
        assert verdict["derived"] == {} and verdict["violations"] == []


class TestProtectiveActions:
    """The standard protective actions, however they are written."""

    @pytest.mark.parametrize("text", [
        "Active threat on campus. RUN HIDE FIGHT",
        "Active threat on campus. Run Hide Fight",
        "Shooter reported. Run/Hide/Fight.",
        "Police activity near the library. secure-in-place until further notice.",
        "Armed person reported. If you are near the stadium shelter immediately.",
        "Police responding in the area...Seek shelter",
        "Gunshots reported \U0001F6A8Lockdown in effect",
        "Person with a gun near Lot C\u2014do not approach\u2014call 911",
        "Tornado warning for campus. TAKE COVER",
        "Fuga de gas en el laboratorio. Evac\u00faen el edificio.",
        "Tirador activo en el campus. Corra, esc\u00f3ndase, luche.",
    ])
    def test_recognised(self, text: str) -> None:
        """Each tells people what to do."""
        assert has_instruction(normalize(text).text)

    @pytest.mark.parametrize("text", [
        "The building was evacuated yesterday.",
        "Gas leak at Smith Hall.",
        "Police are investigating an overrun of the parking lot.",
    ])
    def test_news_is_no_instruction(self, text: str) -> None:
        """A report of what happened is not an instruction."""
        assert not has_instruction(text)


class TestNormalForm:
    """NFKC, format characters removed, spans mapped back to the text as written."""

    def test_soft_hyphen_name_found_with_original_span(self) -> None:
        """A soft hyphen inside a name does not hide it; the span covers the name as typed."""
        text = "Jen\u00adnifer Smi\u00adth was assaulted near the library. Call police."
        assert names_found(text) == ["Jen\u00adnifer Smi\u00adth"]

    def test_full_width_letters(self) -> None:
        """Full-width letters read as their ASCII forms."""
        assert has_instruction(normalize("Active threat. \uff32\uff35\uff2e \uff28\uff29\uff24"
                                         "\uff25 \uff26\uff29\uff27\uff28\uff34").text)

    def test_map_back(self) -> None:
        """Offsets in the normal form map back to the original ones."""
        normal = normalize("a\u200bb\u00adc \ufb01ne")
        assert normal.text == "abc fine"
        assert (normal.start(1), normal.end(3)) == (2, 5)
        assert normal.end(len(normal.text)) == len("a\u200bb\u00adc \ufb01ne")

    async def test_api_refuses_soft_hyphen_name(self, make_settings: SettingsFactory) -> None:
        """POST /v1/alerts with a name split by soft hyphens is refused (422), not 202."""
        running = await start_service(make_settings())
        try:
            response = await running.post_alert({
                "kind": "timely_warning",
                "text": "Jen\u00adnifer Smi\u00adth was assaulted near the library on Tuesday. "
                        "Walk with others and report anything suspicious to police.",
            })
            body = await response.json()
        finally:
            await running.client.close()
        assert response.status == 422, body
        assert "confidentiality.name" in json.dumps(body)


class TestNamesOfManyCultures:
    """Given names and surnames of the cultures a campus has."""

    @pytest.mark.parametrize(("text", "name"), [
        ("Jimin Park reported the theft to police. Lock your doors.", "Jimin Park"),
        ("Oluwaseun Adebayo was assaulted near East Hall. Report information to UPD.",
         "Oluwaseun Adebayo"),
        ("Wei Zhang, a sophomore, was robbed. Call police with tips.", "Wei Zhang"),
        ("Priya Sharma told police she was followed. Walk in groups.", "Priya Sharma"),
        ("Minh Young was pushed near the gym. Report information to UPD.", "Minh Young"),
        ("A robbery was reported by Minh near the Student Union. Report it to police.", "Minh"),
        ("The victim was walking with Aisha when approached. Call police with tips.", "Aisha"),
        ("It was reported by victim jennifer smith on Tuesday. Call UPD with tips.",
         "jennifer smith"),
        ("Emily Ford was robbed near the library. Call police.", "Emily Ford"),
        ("Grace King was robbed near the library. Call police.", "Grace King"),
    ])
    def test_found(self, text: str, name: str) -> None:
        """Each name is refused, its span the name."""
        assert names_found(text) == [name]

    def test_madison_park_is_a_park(self) -> None:
        """A name the census lists before a place word stays a place; a car is a car."""
        assert names_found("A robbery occurred near Madison Park. Call police.") == []
        assert names_found("The suspect drove a silver Ford Focus. Call police.") == []


class TestIdentifiersAndCombinations:
    """The institution's ID formats, class year with a team, a small program with an injury."""

    def test_default_id_format(self) -> None:
        """A letter and eight digits is an ID without any cue."""
        text = "A student (A00123456) reported a theft. Lock your doors."
        verdict = lint(text)
        [v] = [v for v in verdict["violations"] if v["rule"] == "confidentiality.id_number"]
        assert text[v["start"] : v["end"]] == "A00123456"

    def test_configured_id_format(self) -> None:
        """[policy] id_formats replaces the defaults."""
        own = settings().model_copy(update={"policy": settings().policy.model_copy(
            update={"id_formats": [r"U\d{7}"]})})
        text = "A student, U1234567, reported a theft. Lock your doors."
        assert "confidentiality.id_number" in errors(lint_one(
            {"kind": "timely_warning", "text": text}, own))
        assert "confidentiality.id_number" not in errors(lint_one(
            {"kind": "timely_warning", "text": "Case A00123456 is open. Lock your doors."}, own))

    def test_bad_id_format_refused(self) -> None:
        """A pattern that does not compile is a config error."""
        with pytest.raises(ValueError, match="not a regular expression"):
            Settings.model_validate({"policy": {"id_formats": ["[A-Z"]}})

    def test_case_number_is_no_id(self) -> None:
        """A case number of the same shape is not a person's ID."""
        assert "confidentiality.id_number" not in errors(
            lint("Case A00123456 is under investigation. Lock your doors."))

    def test_class_year_with_team(self) -> None:
        """"A sophomore on the soccer team" points to a few people."""
        assert "confidentiality.identifying_details" in errors(
            lint("The victim is a sophomore on the soccer team. Report information to UPD."))

    def test_program_with_injury(self) -> None:
        """A member of a small program with an injury points to one person."""
        assert "confidentiality.identifying_details" in errors(lint(
            "A student in the Nursing program was injured in the attack. Call police."))

    def test_program_without_injury_or_date(self) -> None:
        """A program named on its own is no identifying detail."""
        assert not errors(lint("Students in the Nursing program may use the escort service. "
                               "Report anything suspicious to police."))


class TestFewerFalseFlags:
    """Signatures, program names and the campus's own addresses."""

    @pytest.mark.parametrize("text", [
        "A robbery occurred near the library. Report information to UPD.\n\nSincerely,\n\n"
        "Ed Mirabelli\nDeputy Chief",
        "A robbery occurred near the library. Report information to UPD.\nMaria Delgado\n"
        "Chief of Police",
        "A robbery occurred near the library. Report information to UPD.\n"
        "- Maria Delgado, Director of Public Safety",
    ])
    def test_signature(self, text: str) -> None:
        """An official's signature block is the sender, not a victim."""
        assert names_found(text) == []

    def test_victim_on_last_line_still_found(self) -> None:
        """A name on the last line that is no signature is still a name."""
        assert names_found("Report information to UPD.\nMaria Delgado was the victim.") == [
            "Maria Delgado"]

    @pytest.mark.parametrize("program", ["SafeWalk", "NightRide", "RaveGuardian", "LiveSafe"])
    def test_camel_case_program(self, program: str) -> None:
        """A program or app written in CamelCase is a service, not a person."""
        assert names_found(f"Use {program} after dark. A robbery occurred near the library. "
                           "Call police.") == []

    @pytest.mark.parametrize("name", ["LaToya Jackson", "JoAnn Smith", "MaryBeth Carter",
                                      "JaMarcus Brown", "DeShawn Lee", "McKenzie Ford"])
    def test_camel_case_names(self, name: str) -> None:
        """Names with a capital inside are still names."""
        assert names_found(f"{name} was robbed near the library. Call police.") == [name]

    def test_campus_address(self) -> None:
        """An address of the campus's own buildings (buildings.csv) is no residence."""
        text = "A robbery occurred at 1200 College Avenue. Report information to UPD."
        assert "confidentiality.street_address" not in errors(lint(text))
        other = "A burglary occurred at 42 Maple Street. Report information to UPD."
        assert "confidentiality.street_address" in errors(lint(other))

    def test_law_named_after_person(self) -> None:
        """"The Jeanne Clery Act" names a law."""
        assert names_found("This notice is issued in compliance with the Jeanne Clery Act. "
                           "Report crimes to police.") == []


TIP = " Call Campus Police at 555-0100 with any information."


class TestPersonCues:
    """A name is found by where it stands, whatever its culture and whether or not the
    lexicon knows it."""

    @pytest.mark.parametrize(("sentence", "name"), [
        ("The leak was reported by Maricel Dela Cruz, a staff member.", "Maricel Dela Cruz"),
        ("The victim was identified by the family as Taini Redcloud.", "Taini Redcloud"),
        ("The second victim, whose name is Thandiwe, was walking home.", "Thandiwe"),
        ("Kaur's roommate heard the shots.", "Kaur"),
        ("Mendoza-Quispe's truck was broken into twice.", "Mendoza-Quispe"),
        ("One of the students whose room was entered, Siosaia Tupou, lost a laptop.",
         "Siosaia Tupou"),
        ("The burglary was reported by chidinma, who lives in the house.", "chidinma"),
        ("The student who called police, ms. nwachukwu, is safe.", "ms. nwachukwu"),
        ("One of the stolen cars belongs to Wiremu Tane.", "Wiremu Tane"),
        ("Police were called by Bayarmaa after the man followed her.", "Bayarmaa"),
        ("One of the rooms belongs to Ana Paula dos Santos.", "Ana Paula dos Santos"),
        ("Oluwadamilare Adeyinka was grazed by a bullet.", "Oluwadamilare Adeyinka"),
        ("He was walking with Kalani when the man approached.", "Kalani"),
        ("The student who was hurt, Kalani, is at the hospital.", "Kalani"),
        ("The victim was named by friends as kwesi mensah.", "kwesi mensah"),
    ])
    def test_found(self, sentence: str, name: str) -> None:
        """The span is the name, as written."""
        assert name in names_found(sentence + TIP)

    @pytest.mark.parametrize("text", [
        "Dear Loyola Community, Campus Safety is writing about a robbery." + TIP,
        "Take the CENTRO and Caz Limo bus services after dark." + TIP,
        "The suspect was identified by police as Jared Flynn." + TIP,
        "The event with Mayor Ben Walsh was moved." + TIP,
        "Flooding in the South Student Neighborhood. Avoid the area." + TIP,
        "The suspect fled in a car with Washington plate BXY9231." + TIP,
        "Sincerely,\n\nGretchen Ritter\nVice Chancellor and Provost\n\nAndrew R. Gordon\n"
        "Senior Vice President",
    ])
    def test_not_a_victim(self, text: str) -> None:
        """Greetings, businesses, suspects, officials, places and signatures are not."""
        assert names_found(text) == []


class TestNewDetails:
    """Plates, jobs in a unit, one of a kind, rooms and IDs as campuses write them."""

    @pytest.mark.parametrize(("sentence", "rule"), [
        ("The victim's silver Honda Civic, New York plate KJL-4471, was damaged.",
         "confidentiality.license_plate"),
        ("One of the victims is a graduate assistant in the Physics department.",
         "confidentiality.identifying_details"),
        ("The person approached is the only woman on the Geology faculty.",
         "confidentiality.identifying_details"),
        ("One victim is the only female Ph.D. student in Mechanical Engineering.",
         "confidentiality.identifying_details"),
        ("The victim, a 19-year-old female student from Busan, was shot in the leg.",
         "confidentiality.identifying_details"),
        ("The victim is a junior guard on the women's basketball team.",
         "confidentiality.identifying_details"),
        ("The student, a member of the eight-person rowing crew, suffered a broken nose.",
         "confidentiality.identifying_details"),
        ("The victim's room number is 1204.", "confidentiality.residence_unit"),
        ("The student who reported it, NUID 002345678, is safe.", "confidentiality.id_number"),
        ("The student (PID: 730123456) was not hurt.", "confidentiality.id_number"),
        ("The victim's ID no. 1234567 was on the card.", "confidentiality.id_number"),
        ("The student's netid jdoe42 was used.", "confidentiality.account"),
        ("The victim's Instagram account, @ama_serwaa, was used to contact her.",
         "confidentiality.account"),
    ])
    def test_caught(self, sentence: str, rule: str) -> None:
        """Each is refused with its rule."""
        assert rule in errors(lint("A robbery occurred on campus. " + sentence + TIP))

    @pytest.mark.parametrize("sentence", [
        "The suspect vehicle, a black Nissan with Illinois plate ABC1234, fled north.",
        "A graduate assistant in the Physics department reported a suspicious package.",
        "The only entrance open is the north door of Watson Hall.",
        "A student was sexually abused near Simpson Residence Hall (6333 N. Winthrop Avenue).",
        "Contact Det. Lisa Moreno at 555-0101 or Campus Police.",
        "The suspect's Instagram handle is @badguy99.",
        "Log in with your NetID and password to update your alert settings.",
    ])
    def test_allowed(self, sentence: str) -> None:
        """A suspect's plate, a reporter's job, a door, a hall's address, an official's line."""
        verdict = lint("A robbery occurred on campus. " + sentence + TIP)
        assert not {r for r in errors(verdict) if r.startswith("confidentiality")}

    def test_all_clear_in_other_words(self) -> None:
        """An all clear may say the suspect is clear of campus or the police cleared the area."""
        for text in ("Campus Safety has confirmed the suspect is clear of campus.",
                     "PCSD cleared the area after concluding the suspect had fled."):
            assert "actionable.no_all_clear" not in errors(lint(text, kind="all_clear"))


class TestPublishedAlerts:
    """The corpus of published alerts meets the targets, on the tune and held-out splits."""

    @pytest.mark.parametrize("split", ["tune", "holdout"])
    def test_targets(self, split: str) -> None:
        """0 live emergencies blocked for wording; confidentiality recall >= 0.95 on the
        variants of the tune split; at most 1 in 20 clean alerts flagged on the tune split;
        every real timely warning's tip or way to report recognised (>= 0.95). The held-out
        set is never tuned on: its floors (recall >= 0.75, at most 1 in 10 flagged) sit just
        under what it measured when it was first scored (0.77 and 3 of 37), so they catch a
        change that makes the policy worse on unseen alerts; they are not the targets."""
        judged = policy_corpus.judge(settings(), split)
        real = [j for j in judged if j.real]
        live = [j for j in real if j.case["kind"] == "emergency"]
        assert live and not [j.case["id"] for j in live
                             if not j.verdict["ok"] and "confidentiality" not in j.blocking]
        variants = [j for j in judged if not j.real]
        caught = sum("confidentiality" in j.blocking for j in variants)
        assert caught / len(variants) >= (0.95 if split == "tune" else 0.75)
        clean = [j for j in real if not j.case["expect"]]
        assert sum(bool(j.blocking) for j in clean) / len(clean) <= (
            0.05 if split == "tune" else 0.10)
        warnings = [j for j in real if j.case["kind"] == "timely_warning"
                    and "actionable" not in j.case["expect"]]
        assert sum("actionable" not in j.blocking for j in warnings) / len(warnings) >= 0.95

    def test_every_alert_has_its_source(self) -> None:
        """At least 60 alerts, each with an http(s) source, a kind and a split."""
        alerts = policy_corpus.load("alerts.jsonl")
        assert len(alerts) >= 60
        for alert in alerts:
            assert alert["source"].startswith(("http://", "https://")), alert["id"]
            assert alert["split"] in {"tune", "holdout"} and alert["kind"]
        variants = policy_corpus.load("variants.jsonl")
        bases = {a["id"]: a["split"] for a in alerts}
        assert all(bases[v["base"]] == v["split"] for v in variants)
