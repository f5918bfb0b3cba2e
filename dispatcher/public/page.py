"""The public alert page: plain HTML in English and Spanish, readable on a phone, no script."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from dispatcher.domain import AlertKind, Mode
from dispatcher.public.snapshot import PublicAlert, PublicState

LANGUAGES = ("en", "es")


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


def _time(ms: int, zone: ZoneInfo) -> str:
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    local = moment.astimezone(zone)
    return (f'<time datetime="{moment.strftime("%Y-%m-%dT%H:%M:%SZ")}">'
            f'{escape(local.strftime("%Y-%m-%d %H:%M %Z"))}</time>')


def _alert(
    alert: PublicAlert, language: str, words: Words, zone: ZoneInfo, level: int = 2
) -> str:
    text = alert.text_in(language)
    tongue = language if language in alert.texts else alert.language
    severity = alert.severity.lower()
    classes = f"alert severity-{escape(severity)} kind-{alert.kind.value}"
    marker = ""
    if alert.drill:
        classes += " drill"
        label = words.test if alert.mode is Mode.TEST else words.drill
        marker = f'<p class="drill-label"><strong>{escape(label)}</strong></p>'
    kind = words.kinds[alert.kind]
    grade = words.severities.get(alert.severity, severity)
    update = f" · {escape(words.update)}" if alert.updates else ""
    instruction = (
        f'<p class="instruction"><strong>{escape(words.what_to_do)}:</strong> '
        f"{escape(text.instruction)}</p>"
        if text.instruction else ""
    )
    return (
        f'<article class="{classes}" lang="{escape(tongue)}" id="alert-{escape(alert.id)}">\n'
        f"{marker}"
        f'<p class="kind">{escape(kind)} · {escape(grade)}{update}</p>\n'
        f"<h{level}>{escape(text.headline)}</h{level}>\n"
        f'<p class="text">{escape(text.text)}</p>\n'
        f"{instruction}"
        f'<p class="times">{escape(words.sent)}: {_time(alert.sent_ms, zone)} · '
        f"{escape(words.expires)}: {_time(alert.expires_ms, zone)}</p>\n"
        "</article>\n"
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
    name = escape(institution)
    title = escape(words.title.format(institution=institution))
    parts: list[str] = []
    if state.active:
        parts.append(f'<section aria-labelledby="active-title">\n'
                     f'<h1 id="active-title">{escape(words.active)}</h1>\n')
        parts.extend(_alert(a, language, words, zone) for a in state.active)
        parts.append("</section>\n")
    else:
        parts.append(
            f'<section class="calm" aria-labelledby="none-title">\n'
            f'<h1 id="none-title">{escape(words.none_title)}</h1>\n'
            f"<p>{escape(words.none_text.format(institution=institution))}</p>\n</section>\n"
        )
    if state.all_clear is not None:
        parts.append(
            f'<section aria-labelledby="clear-title">\n'
            f'<h2 id="clear-title">{escape(words.all_clear)}</h2>\n'
            f"{_alert(state.all_clear, language, words, zone, 3)}</section>\n"
        )
    other = "es" if language == "en" else "en"
    body = "".join(parts)
    return (
        "<!doctype html>\n"
        f'<html lang="{language}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n"
        '<link rel="stylesheet" href="/public/page.css">\n'
        '<link rel="alternate" type="application/json" href="/public/alerts.json">\n'
        "</head>\n<body>\n"
        f'<header><p class="institution">{name}</p>\n'
        f'<nav><a href="?lang={other}" lang="{other}" hreflang="{other}">'
        f"{escape(words.other_language)}</a></nav></header>\n"
        f"<main>\n{body}</main>\n"
        f'<footer><p>{escape(words.refresh)}</p>\n'
        f'<p><a href="/public/alerts.json">{escape(words.feed)}</a></p></footer>\n'
        "</body>\n</html>\n"
    ).encode()
