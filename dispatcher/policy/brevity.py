"""brevity.*: SMS segments, title lengths and derived short texts; encoding.* warnings."""

from __future__ import annotations

from dispatcher.domain import ChannelKind, Message
from dispatcher.policy.gsm import Encoding, count, forcing_ucs2, normalize_punctuation, to_gsm
from dispatcher.policy.settings import PolicySettings
from dispatcher.policy.verdict import Severity, Violation

TYPOGRAPHIC_NAMES = {
    "\u2018": "curly quote", "\u2019": "curly apostrophe", "\u201c": "curly quote",
    "\u201d": "curly quote", "\u2013": "en dash", "\u2014": "em dash", "\u2026": "ellipsis",
    "\u00a0": "non-breaking space",
}  # fmt: skip


def sms(message: Message, language: str, settings: PolicySettings) -> list[Violation]:
    """The SMS fits the configured segments; characters that force UCS-2 are pointed out."""
    out: list[Violation] = []
    measured = count(message.text)
    limit = settings.sms_max_segments
    if measured.segments > limit:
        cut = measured.starts[limit]
        over = measured.units - measured.capacity(limit)
        unit = "characters" if measured.encoding is Encoding.GSM7 else "UCS-2 characters"
        out.append(Violation(
            "brevity.sms_segments",
            f"The SMS is {measured.segments} segments ({measured.encoding.value}, "
            f"{measured.units} {unit}); the limit is {limit}. Cut about {over} {unit} "
            "(the part from here on would go in an extra segment).",
            cut, len(message.text), channel=ChannelKind.SMS.value, language=language,
            field="text"))
    bad = forcing_ucs2(message.text)
    if bad:
        index = bad[0][0]
        chars = "".join(dict.fromkeys(c for _, c in bad))
        plain = "".join(c for c in to_gsm(message.text) if not forcing_ucs2(c))
        gsm = count(plain)
        out.append(Violation(
            "encoding.ucs2",
            f"{chars!r} has no GSM-7 form, so the whole SMS goes out in UCS-2 (70 characters "
            f"a segment): {measured.segments} segment(s) instead of {gsm.segments}. Without "
            f"it the SMS would read: {plain}",
            index, index + 1, Severity.WARNING, channel=ChannelKind.SMS.value,
            language=language, field="text"))
    return out


def typographic(text: str, field: str | None, language: str | None) -> list[Violation]:
    """Curly quotes and dashes force UCS-2; say so and offer the plain text that is sent."""
    found = [(i, c) for i, c in enumerate(text) if c in TYPOGRAPHIC_NAMES]
    if not found:
        return []
    index = found[0][0]
    kinds = ", ".join(dict.fromkeys(TYPOGRAPHIC_NAMES[c] for _, c in found))
    return [Violation(
        "encoding.normalized",
        f"Typographic characters ({kinds}) would force UCS-2 in an SMS; the SMS uses plain "
        f"ones: {normalize_punctuation(text)}",
        index, index + 1, Severity.WARNING, field=field, language=language)]


def title(message: Message, channel: ChannelKind, limit: int, language: str) -> list[Violation]:
    """A push title or sign headline over its limit."""
    if len(message.title) <= limit:
        return []
    what = "push title" if channel is ChannelKind.PUSH else "sign headline"
    rule = "brevity.push_title" if channel is ChannelKind.PUSH else "brevity.signage_headline"
    return [Violation(
        rule,
        f"The {what} is {len(message.title)} characters; the limit is {limit}. Shorten the "
        "headline.",
        limit, len(message.title), channel=channel.value, language=language, field="title")]


def derived(channels: list[str], sample: str, language: str, primary: str) -> Violation:
    """A warning that the short channels carry a text derived from a longer one."""
    names = ", ".join(channels)
    return Violation(
        "brevity.derived",
        f"The text is longer than {names} allow, so they carry a short text derived from it "
        "(its lead sentence, the instruction and a link to the full text on the public "
        f"page): {sample}",
        severity=Severity.WARNING,
        language=None if language == primary else language,
    )
