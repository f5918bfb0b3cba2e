"""Per-channel rendering: every channel, every language, and drills that cannot be mistaken."""

from __future__ import annotations

from dispatcher.alerting.rendering import Rendered, languages, render_alert, shorten, spoken
from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind, Mode
from dispatcher.policy.gsm import Encoding, encoding_of
from tests.policy.helpers import settings

TEXT = (
    "EMERGENCY: Fire at Carver Hall. Evacuate now & gather at the \u201cwest lawn\u201d "
    "\u2013 not Lot B."
)


def _render(**fields: object) -> Rendered:
    request = AlertRequest.model_validate({"kind": "emergency", "text": TEXT, **fields})
    s = settings()
    return render_alert(request, list(ChannelKind), s.rendering, limits=s.policy)


def test_every_channel_has_main_text() -> None:
    """Each channel's main words are in `text`."""
    rendered = _render()
    for channel in ChannelKind:
        assert rendered[channel]["en"].text


def test_sms_prefix_and_gsm() -> None:
    """The SMS starts with the prefix and is normalized to GSM-7."""
    sms = _render()[ChannelKind.SMS]["en"].text
    assert sms.startswith("UNIV ALERT: EMERGENCY")
    assert '"west lawn" - not' in sms and encoding_of(sms) is Encoding.GSM7


def test_email_parts_and_escaping() -> None:
    """Subject, plain body and HTML body, with the HTML escaped."""
    email = _render(web="https://alerts.example.edu")[ChannelKind.EMAIL]["en"]
    assert email.subject == "EMERGENCY: Fire at Carver Hall"
    assert "Evacuate now & gather" in email.body
    assert "Evacuate now &amp; gather" in email.html
    assert '<a href="https://alerts.example.edu">' in email.html
    assert email.text == email.body


def test_script_in_text_is_escaped() -> None:
    """Markup in a dispatcher's text never reaches the HTML as markup."""
    request = AlertRequest(kind="emergency", text="<script>x</script> Evacuate now.")
    s = settings()
    email = render_alert(request, [ChannelKind.EMAIL], s.rendering)[ChannelKind.EMAIL]["en"]
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html


def test_push_signage_pa() -> None:
    """Push has title and body, signage headline and instruction, PA speakable text."""
    rendered = _render(instruction="Leave by the nearest exit.", description="Crews respond.")
    push = rendered[ChannelKind.PUSH]["en"]
    assert push.title == "EMERGENCY: Fire at Carver Hall"
    sign = rendered[ChannelKind.SIGNAGE]["en"]
    assert sign.text.splitlines()[1] == "Leave by the nearest exit."
    assert sign.body == "Crews respond."
    pa = rendered[ChannelKind.PA]["en"]
    assert pa.speech == pa.text and "&" not in pa.speech
    assert spoken("Call 911 or see https://x.example.edu for Main St. now") == (
        "Call 9 1 1 or see for Main Street now"
    )


def test_drill_on_every_channel() -> None:
    """A drill says so on every channel, where a person looks first."""
    rendered = _render(mode=Mode.DRILL)
    r = settings().rendering
    sms = rendered[ChannelKind.SMS]["en"].text
    assert sms.startswith("UNIV ALERT: [DRILL] THIS IS A TEST")
    email = rendered[ChannelKind.EMAIL]["en"]
    assert email.subject.startswith(r.drill_prefix)
    assert email.body.startswith(r.signage_drill_banner)
    assert email.body.rstrip().endswith(r.signage_drill_banner)
    assert r.signage_drill_banner in email.html
    assert rendered[ChannelKind.PUSH]["en"].title.startswith(r.drill_prefix)
    assert rendered[ChannelKind.PUSH]["en"].text.startswith(r.drill_prefix)
    sign = rendered[ChannelKind.SIGNAGE]["en"]
    assert sign.title.startswith(r.signage_drill_banner)
    assert sign.text.endswith(r.signage_drill_banner)
    pa = rendered[ChannelKind.PA]["en"].speech
    assert pa.startswith(r.pa_drill_preamble) and pa.endswith(r.pa_drill_preamble)
    siren = rendered[ChannelKind.SIREN]["en"].text
    assert siren.startswith(r.drill_prefix)


def test_test_mode_marked() -> None:
    """A technical test is marked as a test."""
    rendered = _render(mode=Mode.TEST)
    assert "[TEST]" in rendered[ChannelKind.SMS]["en"].text
    assert rendered[ChannelKind.PA]["en"].speech.startswith("This is a test")


def test_languages_and_spanish_drill() -> None:
    """Every language is rendered, each with its own drill words."""
    request = AlertRequest(
        kind="emergency", mode=Mode.DRILL, text="Fire drill. Evacuate now.",
        translations={"es": {"text": "Simulacro de incendio. Evacúe ahora."}},
    )
    assert languages(request) == ["en", "es"]
    s = settings()
    rendered = render_alert(request, list(ChannelKind), s.rendering)
    sms = rendered[ChannelKind.SMS]["es"].text
    assert sms == "UNIV ALERT: [SIMULACRO] ESTO ES UNA PRUEBA Simulacro de incendio. Evacue ahora."
    assert rendered[ChannelKind.PA]["es"].speech.startswith("Esto es un simulacro")


def test_channel_overrides() -> None:
    """texts.* replaces a channel's words in the alert's own language."""
    request = AlertRequest(
        kind="emergency", text="Fire at Carver Hall. Evacuate now.",
        texts={"sms": "Fire: leave Carver Hall now.", "email": {"subject": "Fire", "body": "Go."}},
    )
    s = settings()
    rendered = render_alert(request, [ChannelKind.SMS, ChannelKind.EMAIL], s.rendering)
    assert rendered[ChannelKind.SMS]["en"].text == "UNIV ALERT: Fire: leave Carver Hall now."
    assert rendered[ChannelKind.EMAIL]["en"].subject == "Fire"


def test_shorten() -> None:
    """Shortening cuts at a word and adds an ellipsis within the limit."""
    out = shorten("Timely Warning: Laptop thefts reported in the Business School library", 40)
    assert len(out) <= 40 and out.endswith("…") and " " in out
