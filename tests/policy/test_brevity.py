"""brevity.* and encoding.*: exact SMS segments, title limits, word budget, UCS-2 warnings."""

from __future__ import annotations

import pytest

from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind, Message
from dispatcher.policy.brevity import sms
from dispatcher.policy.gsm import Encoding, count, to_gsm
from dispatcher.policy.settings import PolicySettings
from tests.policy.helpers import judge, lint, rules


class TestSegments:
    """GSM-7 and UCS-2 counted as carriers do."""

    @pytest.mark.parametrize(
        ("length", "segments"), [(0, 0), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3)]
    )
    def test_gsm(self, length: int, segments: int) -> None:
        """160 in one segment, 153 per segment when split."""
        measured = count("a" * length)
        assert measured.encoding is Encoding.GSM7 and measured.segments == segments

    def test_extension_characters_count_twice(self) -> None:
        """`{`, `€`, `^`... cost two septets each."""
        assert count("{" * 80).segments == 1
        assert count("{" * 80 + "a").segments == 2
        assert count("€" * 80).units == 160

    def test_escape_pair_never_split(self) -> None:
        """An extension character that would straddle a boundary moves to the next segment."""
        measured = count("a" * 152 + "[" + "a" * 10)
        assert measured.starts == (0, 152)

    @pytest.mark.parametrize(
        ("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)]
    )
    def test_ucs2(self, length: int, segments: int) -> None:
        """70 in one segment, 67 per segment when split."""
        measured = count("ж" * length)
        assert measured.encoding is Encoding.UCS2 and measured.segments == segments

    def test_surrogate_pairs(self) -> None:
        """An emoji is two UCS-2 units and is not split."""
        measured = count("🚨" * 35)
        assert (measured.units, measured.segments) == (70, 1)
        assert count("🚨" * 36).segments == 2

    def test_normalization(self) -> None:
        """Curly quotes, dashes and Spanish accents fold into GSM-7; emoji stay."""
        assert to_gsm("\u201cEvac\u00fae\u201d \u2013 ahora\u2026") == '"Evacue" - ahora...'
        assert count(to_gsm("Niño, ñandú, é")).encoding is Encoding.GSM7
        assert count(to_gsm("Gas leak 🚨")).encoding is Encoding.UCS2


class TestRules:
    """The brevity rules in a verdict."""

    def test_own_sms_over_segments(self) -> None:
        """An SMS text the dispatcher wrote (texts.sms) over two segments is an error on the
        SMS rendering, its span the overflow."""
        own = "Gas leak at the Chemistry Building. " + "Stay away from the building. " * 12
        verdict = lint("Gas leak. Call 911 with information.", kind="timely_warning",
                       texts={"sms": own})
        [v] = [v for v in verdict["violations"] if v["rule"] == "brevity.sms_segments"]
        assert v["channel"] == "sms" and v["severity"] == "error"
        assert v["start"] == 2 * 153 and v["end"] > v["start"]
        assert verdict["segments"]["sms"] >= 3 and not verdict["ok"]

    def test_long_text_derives_short_channels(self) -> None:
        """A text too long for SMS (changed: it used to be refused) is sent whole by e-mail;
        the SMS carries its lead sentence, its instruction and a link to the public page,
        within the segment limit, and a warning says so."""
        text = ("Gas leak at the Chemistry Building. " + "Crews are on scene working. " * 12
                + "Stay away from the building.")
        verdict = lint(text, kind="timely_warning")
        assert verdict["ok"] and verdict["segments"]["sms"] <= 2
        [v] = [v for v in verdict["violations"] if v["rule"] == "brevity.derived"]
        assert v["severity"] == "warning"
        sms = verdict["derived"]["sms"]
        assert sms.startswith("UNIV ALERT: Gas leak at the Chemistry Building.")
        assert "Stay away from the building." in sms and "/public/" in sms
        assert not [r for r in verdict["violations"] if r["rule"] == "brevity.sms_segments"]

    def test_configured_limit(self) -> None:
        """sms_max_segments is read from the config."""
        message = Message(text="a" * 200)
        assert sms(message, "en", PolicySettings(sms_max_segments=1))
        assert not [v for v in sms(message, "en", PolicySettings()) if v.severity == "error"]

    def test_word_budget_derives(self) -> None:
        """More words than the budget (changed: it used to be refused) shapes the short
        channels from the text; the e-mail carries it whole."""
        text = "Evacuate now. " + " ".join(["word"] * 70) + "."
        verdict = judge(AlertRequest(kind="timely_warning", text=text))
        assert verdict.ok
        assert {v.rule for v in verdict.violations} >= {"brevity.derived"}

    def test_explicit_headline_too_long(self) -> None:
        """A headline the dispatcher wrote is never cut; the policy says it is too long."""
        headline = "Gas leak at the Chemistry Building: everyone evacuate now please " * 2
        found = rules("Gas leak. Evacuate now.", kind="emergency", headline=headline.strip())
        assert {"brevity.push_title", "brevity.signage_headline"} <= found

    def test_derived_headline_fits(self) -> None:
        """A headline derived from a long first sentence is shortened to fit."""
        text = (
            "Timely Warning: Laptop thefts reported in the Business School library and the "
            "Graduate Reading Room this week. Never leave belongings unattended."
        )
        assert not {"brevity.push_title", "brevity.signage_headline"} & rules(text)

    def test_curly_quotes_warn_with_normalized_text(self) -> None:
        """Typographic characters warn (encoding.*, not brevity) and offer the plain text."""
        verdict = lint("Fire at \u201cCarver Hall\u201d \u2013 evacuate now.", kind="emergency")
        [v] = [v for v in verdict["violations"] if v["rule"] == "encoding.normalized"]
        assert v["severity"] == "warning" and '"Carver Hall" - evacuate' in v["message"]
        assert verdict["encoding"]["sms"] == "GSM-7" and verdict["ok"]

    def test_emoji_warns_ucs2(self) -> None:
        """A character with no GSM-7 form warns and reports UCS-2."""
        verdict = lint("Gas leak 🚨 at Davis Hall. Evacuate now.", kind="emergency")
        assert verdict["encoding"]["sms"] == "UCS-2"
        [v] = [v for v in verdict["violations"] if v["rule"] == "encoding.ucs2"]
        assert v["severity"] == "warning" and v["channel"] == "sms"

    def test_spanish_stays_gsm(self) -> None:
        """A Spanish alert is sent in GSM-7 and counted that way."""
        request = AlertRequest(
            kind="emergency", language="es",
            text="EMERGENCIA: Fuga de gas en el Edificio de Química. Evacúe ahora y no use los "
                 "ascensores. Reúnase en el jardín oeste y espere instrucciones del personal.",
        )
        verdict = judge(request)
        assert verdict.encoding["sms"] == "GSM-7" and verdict.segments["sms"] == 2
        assert verdict.clean

    def test_segments_per_language(self) -> None:
        """Each translation's SMS is measured."""
        request = AlertRequest(
            kind="emergency", text="Gas leak. Evacuate now.",
            translations={"es": {"text": "Fuga de gas. Evacúe ahora."}},
        )
        verdict = judge(request, places=())
        assert verdict.languages["es"]["segments"] == {"sms": 1}
        assert ChannelKind.SMS.value in verdict.segments
