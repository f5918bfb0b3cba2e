"""The public alert page: plain HTML in English and Spanish, readable on a phone, no script."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dispatcher.domain import AlertKind, Mode
from dispatcher.public.snapshot import PublicAlert, PublicState
from dispatcher.templating import environment

LANGUAGES = ("en", "es")
_PAGE = environment("dispatcher.public").get_template("page.html")


@dataclass(frozen=True, slots=True)
class Words:
    """The page's fixed words in one language."""

    title: str
    active: str
    none_title: str
    none_text: str
    all_clear: str
    what_to_do: str
    sent: str
    expires: str
    update: str
    drill: str
    test: str
    refresh: str
    feed: str
    other_language: str
    kinds: dict[AlertKind, str]
    severities: dict[str, str]


WORDS = {
    "en": Words(
        title="{institution} alerts",
        active="Active alerts",
        none_title="No active alerts",
        none_text="There are no active emergency alerts for {institution} right now.",
        all_clear="Latest all clear",
        what_to_do="What to do",
        sent="Sent",
        expires="Expires",
        update="Update",
        drill="DRILL: this is an exercise, not a real emergency.",
        test="TEST of the alert system: not a real emergency.",
        refresh="Reload this page for the latest alerts.",
        feed="For web sites and apps: alerts.json",
        other_language="Español",
        kinds={
            AlertKind.EMERGENCY: "Emergency",
            AlertKind.TIMELY_WARNING: "Timely warning",
            AlertKind.ADVISORY: "Advisory",
            AlertKind.ALL_CLEAR: "All clear",
        },
        severities={"Extreme": "extreme", "Severe": "severe", "Moderate": "moderate",
                    "Minor": "minor"},
    ),
    "es": Words(
        title="Alertas de {institution}",
        active="Alertas activas",
        none_title="No hay alertas activas",
        none_text="En este momento no hay alertas de emergencia activas para {institution}.",
        all_clear="Último fin de alerta",
        what_to_do="Qué hacer",
        sent="Enviada",
        expires="Vence",
        update="Actualización",
        drill="SIMULACRO: es un ejercicio, no una emergencia real.",
        test="PRUEBA del sistema de alertas: no es una emergencia real.",
        refresh="Vuelva a cargar esta página para ver las últimas alertas.",
        feed="Para sitios web y aplicaciones: alerts.json",
        other_language="English",
        kinds={
            AlertKind.EMERGENCY: "Emergencia",
            AlertKind.TIMELY_WARNING: "Aviso oportuno",
            AlertKind.ADVISORY: "Aviso",
            AlertKind.ALL_CLEAR: "Fin de la alerta",
        },
        severities={"Extreme": "extrema", "Severe": "grave", "Moderate": "moderada",
                    "Minor": "menor"},
    ),
}


def choose_language(query: str | None, accept_language: str | None) -> str:
    """`?lang=` when it names a page language, else the best of Accept-Language, else English."""
    if query in LANGUAGES:
        return query
    best, best_q = "en", 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        # Earlier entries win ties, as listed.
        q -= position * 1e-6
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


@dataclass(frozen=True, slots=True)
class Moment:
    """A time as the page shows it: UTC for machines, the campus's local time for people."""

    utc: str
    local: str

    @classmethod
    def of(cls, ms: int, zone: ZoneInfo) -> Moment:
        """The moment `ms` (epoch milliseconds), read in `zone`."""
        moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
        return cls(moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"))


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert's words on the page, in the page's language where the alert has it."""

    id: str
    classes: str
    language: str
    drill_label: str
    kind: str
    grade: str
    update: bool
    headline: str
    text: str
    instruction: str
    sent: Moment
    expires: Moment


def _view(alert: PublicAlert, language: str, words: Words, zone: ZoneInfo) -> AlertView:
    text = alert.text_in(language)
    severity = alert.severity.lower()
    classes = f"alert severity-{severity} kind-{alert.kind.value}"
    label = ""
    if alert.drill:
        classes += " drill"
        label = words.test if alert.mode is Mode.TEST else words.drill
    return AlertView(
        id=alert.id,
        classes=classes,
        language=language if language in alert.texts else alert.language,
        drill_label=label,
        kind=words.kinds[alert.kind],
        grade=words.severities.get(alert.severity, severity),
        update=bool(alert.updates),
        headline=text.headline,
        text=text.text,
        instruction=text.instruction,
        sent=Moment.of(alert.sent_ms, zone),
        expires=Moment.of(alert.expires_ms, zone),
    )


def render_page(
    state: PublicState,
    language: str,
    *,
    institution: str,
    zone: ZoneInfo,
) -> bytes:
    """The whole page for one language; the same state always gives the same bytes."""
    words = WORDS[language]
    return _PAGE.render(
        language=language,
        other="es" if language == "en" else "en",
        words=words,
        institution=institution,
        title=words.title.format(institution=institution),
        none_text=words.none_text.format(institution=institution),
        active=[_view(a, language, words, zone) for a in state.active],
        all_clear=None if state.all_clear is None else _view(state.all_clear, language, words,
                                                             zone),
    ).encode()
