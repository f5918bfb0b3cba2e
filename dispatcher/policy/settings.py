"""Config for the policy rules and the per-channel rendering."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from dispatcher.access.credentials import SettingsModel

# A letter (or "@") and eight digits ("A00123456", "@00123456": the shape of Banner IDs),
# and two letters with seven digits ("UA1234567").
DEFAULT_ID_FORMATS: tuple[str, ...] = (r"[A-Z@]\d{8}", r"[A-Z]{2}\d{7}")


class PolicySettings(SettingsModel):
    """Limits and allow lists the policy rules read."""

    sms_max_segments: int = Field(default=2, ge=1, le=10)
    word_budget: int = Field(
        default=60, ge=5,
        description="words past which SMS, push, signage, PA and desktop carry a text derived "
        "from the alert's (lead, instruction, link to the full text)",
    )
    push_title_max: int = Field(default=65, ge=10)
    signage_headline_max: int = Field(default=80, ge=10)
    allow: list[str] = Field(
        default_factory=list,
        description="phone numbers, addresses and URLs the institution publishes",
    )
    places: list[str] = Field(
        default_factory=list, description="campus place names that contain a person's name"
    )
    id_formats: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ID_FORMATS),
        description="regular expressions of the institution's own student and employee ID "
        "formats; a match is refused wherever it stands (a case number after 'case' is not)",
    )

    @field_validator("id_formats")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value



class LanguageRendering(SettingsModel):
    """The fixed words of the renderings in one language; unset ones fall back to English."""

    sms_prefix: str | None = None
    drill_prefix: str | None = None
    test_prefix: str | None = None
    pa_drill_preamble: str | None = None
    pa_test_preamble: str | None = None
    signage_drill_banner: str | None = None
    signage_test_banner: str | None = None
    what_to_do: str | None = None
    more_information: str | None = None
    voice_prompt: str | None = None
    voice_thanks: str | None = None
    voice_goodbye: str | None = None
    ask_question: str | None = None
    sms_reply_options: str | None = None
    answer_link_label: str | None = None
    full_text: str | None = None


def _spanish() -> dict[str, LanguageRendering]:
    return {
        "es": LanguageRendering(
            drill_prefix="[SIMULACRO] ESTO ES UNA PRUEBA",
            test_prefix="[PRUEBA]",
            pa_drill_preamble="Esto es un simulacro. Solo es un simulacro.",
            pa_test_preamble="Esto es una prueba del sistema. Solo es una prueba.",
            signage_drill_banner="SIMULACRO - ESTO ES UNA PRUEBA",
            signage_test_banner="PRUEBA DEL SISTEMA",
            what_to_do="Qué hacer",
            more_information="Más información",
            voice_prompt="Marque 1 si está a salvo. Marque 2 si necesita ayuda.",
            voice_thanks="Gracias. Su respuesta quedó registrada.",
            voice_goodbye="Adiós.",
            ask_question="¿Está a salvo?",
            sms_reply_options="Responda 1 A SALVO, 2 AYUDA",
            answer_link_label="Responda aquí",
            full_text="Texto completo",
        )
    }


class RenderingSettings(SettingsModel):
    """How an alert is dressed for each channel."""

    sms_prefix: str = "UNIV ALERT:"
    drill_prefix: str = "[DRILL] THIS IS A TEST"
    test_prefix: str = "[TEST]"
    pa_drill_preamble: str = "This is a drill. This is only a drill."
    signage_drill_banner: str = "DRILL - THIS IS A TEST"
    web: str = ""
    pa_test_preamble: str = "This is a test of the alert system. This is only a test."
    signage_test_banner: str = "TEST OF THE ALERT SYSTEM"
    ask_question: str = Field(
        default="Are you safe?", description="an alert's question when its request names none"
    )
    sms_reply_options: str = Field(
        default="Reply 1 SAFE, 2 HELP", description="how an SMS with a question asks for a reply"
    )
    answer_link_label: str = Field(
        default="Answer here", description="words before the answer-page link (push, e-mail)"
    )
    full_text: str = Field(
        default="Full text", description="words before the link to the full text in a short "
        "channel's derived text",
    )
    full_text_link: str = Field(
        default="", description="where a derived short text links for the full text; default: "
        "the public alert page ([public] page_url)",
    )
    sms_transliterate: bool = Field(
        default=True,
        description="spell accented letters without accents when that keeps an SMS in GSM-7",
    )
    by_language: dict[str, LanguageRendering] = Field(
        default_factory=_spanish, description="the fixed words in other languages"
    )

    def word(self, language: str, name: str) -> str:
        """A fixed word of the renderings in a language, English when not configured."""
        local = self.by_language.get(language)
        found = getattr(local, name, None) if local is not None else None
        if isinstance(found, str):
            return found
        default = getattr(self, name, None)
        if isinstance(default, str):
            return default
        return _ENGLISH[name]


_ENGLISH = {
    "what_to_do": "What to do",
    "more_information": "More information",
    "voice_prompt": "Press 1 if you are safe. Press 2 if you need help.",
    "voice_thanks": "Thank you. Your answer has been recorded.",
    "voice_goodbye": "Goodbye.",
}
