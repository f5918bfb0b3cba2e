"""Templates: every one renders every channel within limits and passes the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.alerting.request import AlertRequest
from dispatcher.alerting.templates import TemplateError, default_folder, expand, list_templates
from dispatcher.domain import ChannelKind, Mode
from dispatcher.policy import FAMILIES
from dispatcher.policy.gsm import count
from tests.policy.helpers import judge, settings

EXPECTED = {
    "evacuate", "shelter_in_place", "lockdown", "severe_weather", "hazardous_materials",
    "utility_outage", "all_clear", "robbery", "burglary", "assault", "sexual_assault",
    "motor_vehicle_theft", "arson", "hate_crime",
}  # fmt: skip


def test_all_templates_present() -> None:
    """The common cases are all there, each in English and Spanish, with sample fields."""
    found = {t.name: t for t in list_templates(default_folder())}
    assert set(found) >= EXPECTED
    for template in found.values():
        assert {"en", "es"} <= set(template.languages)
        assert set(template.required()) <= set(template.sample)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.DRILL, Mode.TEST])
def test_renders_within_limits_and_passes(name: str, mode: Mode) -> None:
    """Filled with its sample fields, every channel and language fits and nothing is flagged."""
    template = next(t for t in list_templates() if t.name == name)
    request = expand(
        AlertRequest(
            kind=template.kind, mode=mode, template=name, fields=template.sample,
            references="alert-1" if template.kind == "all_clear" else None,
        )
    )
    assert request.text and request.headline and "es" in request.translations
    s = settings()
    verdict = judge(request)
    assert verdict.clean, [(v.rule, v.language, v.message) for v in verdict.violations]
    from dispatcher.alerting.rendering import render_alert

    rendered = render_alert(request, list(ChannelKind), s.rendering, limits=s.policy)
    for lang, message in rendered[ChannelKind.SMS].items():
        assert count(message.text).segments <= s.policy.sms_max_segments, lang
    for lang in ("en", "es"):
        assert len(rendered[ChannelKind.PUSH][lang].title) <= s.policy.push_title_max
        assert len(rendered[ChannelKind.SIGNAGE][lang].title) <= s.policy.signage_headline_max
        for channel in ChannelKind:
            assert rendered[channel][lang].text
    assert not {v.family for v in verdict.violations} & set(FAMILIES)


def test_explicit_parts_win() -> None:
    """Parts and translations the request gives itself are kept."""
    request = expand(
        AlertRequest(
            kind="emergency", template="evacuate", headline="Leave Carver now",
            fields={"hazard": "Smoke", "building": "Carver Hall"},
            translations={"es": {"text": "Salga de Carver Hall ahora."}},
        )
    )
    assert request.headline == "Leave Carver now"
    assert request.text is not None and request.text.startswith("EMERGENCY: Smoke at Carver Hall")
    assert request.translations["es"].text == "Salga de Carver Hall ahora."


def test_language_specific_fields_and_defaults() -> None:
    """`name_es` wins in Spanish; defaults fill what is left out; optional parts drop."""
    request = expand(
        AlertRequest(
            kind="timely_warning", template="robbery",
            fields={"date": "Monday", "date_es": "el lunes", "time": "9 PM",
                    "location": "Lot C"},
        )
    )
    assert "Suspect" not in (request.text or "")
    assert "Campus Police" in (request.text or "")
    spanish = request.translations["es"].text
    assert "el lunes" in spanish and "la Policía del Campus" in spanish


@pytest.mark.parametrize(
    ("request_data", "message"),
    [
        ({"kind": "emergency", "template": "evacuate", "fields": {"hazard": "Smoke"}},
         "building"),
        ({"kind": "emergency", "template": "nope", "fields": {}}, "unknown template 'nope'"),
        ({"kind": "timely_warning", "template": "evacuate",
          "fields": {"hazard": "x", "building": "y"}}, "for emergency alerts"),
        ({"kind": "emergency", "template": "evacuate",
          "fields": {"hazard": "x", "building": "y", "floor": "3"}}, "no field 'floor'"),
        ({"kind": "emergency", "template": "../clarion", "fields": {}}, "not a template name"),
        ({"kind": "emergency", "template": "evacuate", "language": "fr",
          "fields": {"hazard": "x", "building": "y"}}, "no 'fr' version"),
    ],
)
def test_errors_name_the_problem(request_data: dict[str, object], message: str) -> None:
    """TemplateError names the missing field, unknown template or wrong kind."""
    with pytest.raises(TemplateError, match=message):
        expand(AlertRequest.model_validate(request_data))


def test_no_template_is_unchanged() -> None:
    """A request without a template comes back as it is."""
    request = AlertRequest(kind="emergency", text="Evacuate now.")
    assert expand(request) is request


def test_malformed_template_file(tmp_path: Path) -> None:
    """A broken template file is reported by name, not with a stack trace."""
    (tmp_path / "bad.toml").write_text('kind = "emergency"\n[en]\nheadline = "x"\n')
    with pytest.raises(TemplateError, match="text is missing"):
        expand(AlertRequest(kind="emergency", template="bad"), tmp_path)
    (tmp_path / "bad.toml").write_text("kind = \n")
    with pytest.raises(TemplateError, match="not valid TOML"):
        expand(AlertRequest(kind="emergency", template="bad"), tmp_path)
