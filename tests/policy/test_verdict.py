"""The verdict: contract JSON, severities, overrides, per-rendering findings."""

from __future__ import annotations

from dispatcher.alerting.rendering import render_alert
from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind
from dispatcher.policy import Severity, Verdict, Violation, evaluate
from tests.policy.helpers import judge, lint, settings

NAMED = "Timely Warning: Michael Torres, a freshman, was robbed. Walk with others."


def test_contract_shape() -> None:
    """`{"ok", "violations": [{"rule","message","start","end"}...], "segments": {"sms"}}`."""
    verdict = lint(NAMED)
    assert verdict["ok"] is False
    assert isinstance(verdict["segments"]["sms"], int)
    for v in verdict["violations"]:
        assert {"rule", "message", "start", "end", "severity", "channel"} <= set(v)
        assert "." in v["rule"] and v["message"]


def test_span_is_in_the_request_text() -> None:
    """The name's span indexes the request's text."""
    [v] = lint(NAMED)["violations"]
    assert NAMED[v["start"] : v["end"]] == "Michael Torres" and v["channel"] is None


def test_ok_and_clean() -> None:
    """ok means no error; warnings leave ok true."""
    warn = Violation("tone.victim_blaming", "x", severity=Severity.WARNING)
    assert Verdict((warn,)).ok and not Verdict((warn,)).clean
    assert not Verdict((Violation("confidentiality.name", "x"),)).ok


def test_override_downgrades_and_marks() -> None:
    """An overridden rule or family becomes a marked warning."""
    request = AlertRequest(kind="timely_warning", text=NAMED)
    for token in ("confidentiality.name", "confidentiality"):
        verdict = judge(request, overridden=frozenset({token}))
        assert verdict.ok
        [v] = verdict.violations
        assert v.overridden and v.severity is Severity.WARNING
    assert not judge(request, overridden=frozenset({"brevity"})).ok


def test_problem_only_in_a_rendering() -> None:
    """A name only in a channel override is reported on that channel's rendering."""
    request = AlertRequest(
        kind="timely_warning",
        text="Timely Warning: Robbery near Lot C. Walk with others.",
        texts={"sms": "Robbery near Lot C: Jessica Moore, a junior, was hurt. Walk with others."},
    )
    verdict = judge(request)
    names = [v for v in verdict.violations if v.rule == "confidentiality.name"]
    assert names and names[0].field == "texts.sms"


def test_problem_only_in_the_voice_override() -> None:
    """What a call says instead of the text is judged like any override."""
    request = AlertRequest(
        kind="timely_warning",
        text="Timely Warning: Robbery near Lot C. Walk with others.",
        texts={"voice": "Robbery near Lot C: Jessica Moore, a junior, was hurt. Walk with others."},
    )
    names = [v for v in judge(request).violations if v.rule == "confidentiality.name"]
    assert names and names[0].field == "texts.voice"


def test_rendering_only_judged() -> None:
    """Without renderings, the request's words are still judged."""
    s = settings()
    request = AlertRequest(kind="emergency", text="Gas odor at Davis Hall.")
    verdict = evaluate(request, {}, s.policy)
    assert [v.rule for v in verdict.violations] == ["actionable.no_instruction"]
    rendered = render_alert(request, [ChannelKind.SMS], s.rendering)
    assert evaluate(request, rendered, s.policy).segments == {"sms": 1}


def test_cautions_are_warnings() -> None:
    """Race-and-sex-only descriptions, victim blaming and unlinked all-clears only warn."""
    found = lint("Robbery near Lot C. Suspect: Black male. Walk with others.")
    assert [v["rule"] for v in found["violations"]] == ["description.race_sex_only"]
    assert found["ok"]
    blame = lint("Assault near Lot B. The victim had been drinking. Walk with friends.")
    assert [v["rule"] for v in blame["violations"]] == ["tone.victim_blaming"]
    clear = lint("ALL CLEAR: Resume normal activities.", kind="all_clear")
    assert [v["rule"] for v in clear["violations"]] == ["reference.all_clear_unlinked"]
    assert lint("ALL CLEAR: Resume normal activities.", kind="all_clear",
                references="a1")["violations"] == []
