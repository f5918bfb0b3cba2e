"""Per-channel rendering of an alert: what each channel says, in each language."""

from __future__ import annotations

from dispatcher.domain import ChannelKind, Message, Mode
from dispatcher.policy.settings import RenderingSettings
from dispatcher.request import AlertRequest

Rendered = dict[ChannelKind, dict[str, Message]]


def languages(request: AlertRequest) -> list[str]:
    """The alert's languages, its own first."""
    return [request.language, *(code for code in request.translations if code != request.language)]


def render_alert(
    request: AlertRequest, channels: list[ChannelKind], settings: RenderingSettings
) -> Rendered:
    """Every channel's rendering in every language of the alert."""
    return {
        channel: {lang: render(request, channel, lang, settings) for lang in languages(request)}
        for channel in channels
    }


def render(
    request: AlertRequest, channel: ChannelKind, language: str, settings: RenderingSettings
) -> Message:
    """One channel's rendering in one language."""
    text = request.text or ""
    headline = request.headline or text.split(". ")[0][:80]
    if language != request.language and language in request.translations:
        tr = request.translations[language]
        text, headline = tr.text, tr.headline or tr.text.split(". ")[0][:80]
    marker = {Mode.DRILL: settings.drill_prefix, Mode.TEST: settings.test_prefix}.get(request.mode)
    short = f"{marker} {text}" if marker else text
    if channel is ChannelKind.SMS:
        return Message(text=f"{settings.sms_prefix} {short}".strip())
    if channel is ChannelKind.EMAIL:
        subject = f"{marker} {headline}" if marker else headline
        return Message(text=short, subject=subject, body=short)
    return Message(text=short, title=headline)
