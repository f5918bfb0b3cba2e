"""Templates in every language: a value chosen in English reads in Spanish as Spanish, and an
English free-text value sits in the Spanish sentence without its English article."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dispatcher.alerting.request import AlertRequest
from dispatcher.alerting.templates import (
    Template,
    TemplateError,
    expand,
    list_templates,
    load_template,
)
from dispatcher.domain import AlertKind

TEMPLATES = {t.name: t for t in list_templates()}
FREE_TEXT = "the 300 block of Walnut Street"


def english_only(template: Template) -> dict[str, str]:
    """The template's sample values as an English-speaking dispatcher types them."""
    languages = set(template.languages)
    return {k: v for k, v in template.sample.items()
            if k.rpartition("_")[2] not in languages or "_" not in k}


def words(text: str) -> set[str]:
    return {w.casefold() for w in re.findall(r"[^\W\d_]+", text)}


def english_words(template: Template, language: str, values: dict[str, str]) -> set[str]:
    """Words of the English labels of every choice, less those the other language shares and
    those of the free-text values given."""
    english = set()
    local = set()
    for options in (o for t in TEMPLATES.values() for o in t.choices.values()):
        for labels in options.values():
            english |= words(labels["en"])
            local |= words(labels.get(language, ""))
    for parts in template.languages[language].values():
        local |= words(parts)
    free = set()
    for name, value in values.items():
        if name not in template.choices:
            free |= words(value)
    return english - local - free


def filled(template: Template, values: dict[str, str], language: str) -> str:
    return "\n".join(template.fill(values, language, written_in="en").values())


CASES = [
    (name, language, field, option)
    for name, template in sorted(TEMPLATES.items())
    for language in sorted(template.languages) if language != "en"
    for field, options in sorted(template.choices.items())
    for option in sorted(options)
]


class TestChoices:
    """Every option of every choice field, typed in English, in every other language."""

    def test_every_template_offers_choices(self) -> None:
        """Each template's event, hazard or date has options with a label per language."""
        assert all(t.choices for t in TEMPLATES.values())
        assert len(CASES) > 200

    @pytest.mark.parametrize(("name", "language", "field", "option"), CASES)
    def test_no_english_value_in_another_language(
        self, name: str, language: str, field: str, option: str
    ) -> None:
        """The option's label in the language is used, and no English word of any value list
        is left in the text."""
        template = TEMPLATES[name]
        labels = template.choices[field][option]
        values = {**english_only(template), field: labels["en"]}
        text = filled(template, values, language)
        if field in "".join(template.languages[language].values()):
            assert labels[language] in text, text
        leftover = words(text) & english_words(template, language, values)
        assert not leftover, (leftover, text)

    def test_choice_by_id_and_in_any_case(self) -> None:
        """A choice is known by its id and by any label, whatever the case."""
        template = TEMPLATES["all_clear"]
        for typed in ("police_activity", "Police Activity", "actividad policial"):
            values = {"event": typed, "location": "North Hall"}
            assert "actividad policial" in template.fill(values, "es", written_in="en")["text"]
            assert "police activity" in template.fill(values, "en", written_in="en")["text"]


class TestFreeText:
    """A free-text value typed in English is placed without its English article."""

    @pytest.mark.parametrize("name", sorted(TEMPLATES))
    def test_no_english_article_in_spanish(self, name: str) -> None:
        """Every free-text field given with a leading 'the': no 'the' in the Spanish text."""
        template = TEMPLATES[name]
        values = english_only(template)
        for field in [f for f in template.fields if f not in template.choices]:
            text = filled(template, {**values, field: FREE_TEXT}, "es")
            assert "the" not in words(text), (field, text)
            if "{" + field + "}" in "".join(template.languages["es"].values()):
                assert "300 block of Walnut Street" in text

    def test_the_reported_alert(self) -> None:
        """An all clear typed in English only reads in Spanish as Spanish around the place."""
        request = expand(AlertRequest(
            kind=AlertKind.ALL_CLEAR, template="all_clear", references="alert-1",
            fields={"event": "police activity", "location": FREE_TEXT}))
        spanish = request.translations["es"].text
        assert "emergencia por actividad policial en 300 block of Walnut Street" in spanish
        assert request.text is not None and f"at {FREE_TEXT}" in request.text

    def test_a_spanish_request_keeps_its_articles(self) -> None:
        """Values written in Spanish keep their articles in Spanish."""
        request = expand(AlertRequest(
            kind=AlertKind.ALL_CLEAR, template="all_clear", references="alert-1",
            language="es", fields={"event": "fuga de gas", "location": "el Edificio Norte"}))
        assert request.text is not None and "fuga de gas en el Edificio Norte" in request.text
        english = request.translations["en"].text
        assert "The gas leak at Edificio Norte is over" in english


class TestMalformed:
    """A choice without a label in one of the template's languages is refused at load."""

    def test_missing_label(self, tmp_path: Path) -> None:
        """The error names the field, the option and the language."""
        (tmp_path / "leak.toml").write_text(
            'kind = "emergency"\n[fields]\nwhat = "what"\n'
            '[choices.what]\ngas = { en = "Gas leak" }\n'
            '[en]\ntext = "EMERGENCY: {what}. Leave now."\n'
            '[es]\ntext = "EMERGENCIA: {what}. Salga ahora."\n', encoding="utf-8")
        with pytest.raises(TemplateError, match=r"\[choices.what\] gas: no label in es"):
            load_template("leak", tmp_path)
