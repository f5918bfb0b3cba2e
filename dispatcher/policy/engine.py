"""evaluate(): every rule over the request's own words and over each channel's rendering."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from functools import lru_cache

from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import AlertKind, ChannelKind, Message, Mode
from dispatcher.policy import actionable, brevity, cautions, confidentiality
from dispatcher.policy.gsm import count
from dispatcher.policy.lexicon import Gazetteer, lexicon
from dispatcher.policy.names import NameFinder
from dispatcher.policy.normal import normalize
from dispatcher.policy.settings import PolicySettings
from dispatcher.policy.text import fold, sentences
from dispatcher.policy.verdict import Severity, Verdict, Violation

Rendered = dict[ChannelKind, dict[str, Message]]

# The fields of a rendering the confidentiality rules read, main text first.
_MESSAGE_FIELDS = ("text", "title", "subject", "body", "speech")


@lru_cache(maxsize=32)
def finder_for(places: tuple[str, ...]) -> NameFinder:
    """A name finder knowing these place names (cached: building it folds every name)."""
    return NameFinder(lexicon(), Gazetteer.of(places))


def _inputs(request: AlertRequest) -> Iterator[tuple[str | None, str, str]]:
    """(field, language, text) for every piece of text the dispatcher wrote."""
    lang = request.language
    if request.text:
        yield None, lang, request.text
    for name in ("headline", "instruction", "description"):
        value = getattr(request, name)
        if value:
            yield name, lang, value
    for code, tr in request.translations.items():
        for name in ("text", "headline", "instruction", "description"):
            value = getattr(tr, name)
            if value:
                yield f"translations.{code}.{name}", code, value
    if request.texts is not None:
        for name in ("sms", "push", "signage", "pa", "voice"):
            value = getattr(request.texts, name)
            if value:
                yield f"texts.{name}", lang, value
        if request.texts.email is not None:
            yield "texts.email.subject", lang, request.texts.email.subject
            yield "texts.email.body", lang, request.texts.email.body
    if request.ask is not None:
        if request.ask.question:
            yield "ask.question", lang, request.ask.question
        for code, text in request.ask.translations.items():
            yield f"ask.translations.{code}", code, text


def evaluate(
    request: AlertRequest,
    rendered: Rendered,
    settings: PolicySettings,
    *,
    overridden: frozenset[str] = frozenset(),
    places: Collection[str] = (),
) -> Verdict:
    """Judge the request's text and every rendering; overridden rules become warnings.

    `overridden` holds rule ids or families ("confidentiality.name", "brevity"). `places` adds
    campus place names (the directory's buildings) to `settings.places`.
    """
    finder = finder_for(tuple(sorted({*settings.places, *places})))
    allowed = confidentiality.Allowed.of(settings.allow)
    id_formats = tuple(settings.id_formats)
    primary = request.language
    found: list[Violation] = []

    # Confidentiality: every finding in the dispatcher's own words; then what a rendering adds
    # (a channel override, a template's words), each finding reported once.
    seen: set[tuple[str, str]] = set()
    checked: dict[tuple[str, str], list[Violation]] = {}

    def confidential(text: str, lang: str) -> list[Violation]:
        # Every rule reads the normal form; spans are moved back to the words as written.
        if (text, lang) not in checked:
            normal = normalize(text)
            checked[text, lang] = [
                v if v.start is None or v.end is None or not normal.changed
                else v.at(start=normal.start(v.start), end=normal.end(v.end))
                for v in confidentiality.check(
                    normal.text, request.kind, finder, allowed, language=lang,
                    id_formats=id_formats,
                )
            ]
        return checked[text, lang]

    def key(v: Violation, text: str) -> tuple[str, str]:
        return v.rule, fold(text[v.start : v.end]) if v.start is not None else ""

    own = list(_inputs(request))
    for field, lang, text in own:
        for v in confidential(text, lang):
            seen.add(key(v, text))
            found.append(v.at(field=field, language=None if lang == primary else lang))
    own_words = [text for _, _, text in own]

    def judged(v: Violation, value: str) -> bool:
        # A rendering cut short ("...the Robert Wood Johnson" of a title limited to 65
        # characters) loses the place word that made a name a place: words the request itself
        # holds were judged there, in full.
        span = value[v.start : v.end] if v.start is not None else ""
        return bool(span) and any(span in text for text in own_words)

    def added(value: str, lang: str) -> Iterator[Violation]:
        # Every confidentiality rule reads one sentence at a time, so a rendering is judged
        # only in the sentences it adds to the request's own words (a prefix, an override,
        # a cut), spans moved back into the rendering.
        for sentence in sentences(value):
            if any(sentence.text in text for text in own_words):
                continue
            for v in confidential(sentence.text, lang):
                if v.start is None or v.end is None:
                    yield v
                else:
                    yield v.at(start=v.start + sentence.start, end=v.end + sentence.start)

    for channel, by_lang in rendered.items():
        for lang, message in by_lang.items():
            for name in _MESSAGE_FIELDS:
                value = getattr(message, name)
                for v in added(value, lang) if value else []:
                    if key(v, value) not in seen and not judged(v, value):
                        seen.add(key(v, value))
                        found.append(v.at(channel=channel.value, language=lang, field=name))

    wording = _actionable(request, rendered) + _brevity(request, rendered, settings)
    if life_safety(request):
        wording = [_never_block(v) for v in wording]
    found += wording
    found += _cautions(request)
    found = [_apply_override(v, overridden) for v in found]
    segments, encoding, by_language = _measure(rendered, primary)
    derived = {
        channel.value: by_lang[primary].text
        for channel, by_lang in rendered.items()
        if primary in by_lang and by_lang[primary].derived
    }
    return Verdict(tuple(found), segments, encoding, by_language, derived)


def life_safety(request: AlertRequest) -> bool:
    """True for a live emergency (and its updates): its wording never holds it back."""
    return request.kind is AlertKind.EMERGENCY and request.mode is Mode.LIVE


_NEVER_BLOCK = (
    " A live emergency is never held back for its wording: this is a warning, and the "
    "short channels are shaped from the text."
)


def _never_block(v: Violation) -> Violation:
    """An actionable or brevity error of a live emergency, as a warning."""
    if v.severity is Severity.ERROR and v.family in ("actionable", "brevity"):
        return v.at(severity=Severity.WARNING, message=v.message + _NEVER_BLOCK)
    return v


def _actionable(request: AlertRequest, rendered: Rendered) -> list[Violation]:
    out: list[Violation] = []
    texts = {request.language: " ".join(
        x for x in (request.text, request.instruction, request.headline) if x)}
    for code, tr in request.translations.items():
        texts[code] = " ".join(x for x in (tr.text, tr.instruction, tr.headline) if x)
    for lang, text in texts.items():
        for v in actionable.check(request.kind, normalize(text).text):
            field = None if lang == request.language else f"translations.{lang}.text"
            out.append(v.at(field=field, language=None if field is None else lang))
    if out:
        return out
    # A channel whose short text the dispatcher overrode must carry the instruction too.
    overrides = request.texts
    if overrides is not None:
        for channel in (ChannelKind.SMS, ChannelKind.PUSH, ChannelKind.SIGNAGE, ChannelKind.PA,
                        ChannelKind.VOICE):
            if getattr(overrides, channel.value) and channel in rendered:
                message = rendered[channel].get(request.language)
                if message is None:
                    continue
                for v in actionable.check(request.kind, normalize(message.text).text):
                    out.append(v.at(channel=channel.value, language=request.language,
                                    field="text"))
    return out


def _brevity(
    request: AlertRequest, rendered: Rendered, settings: PolicySettings
) -> list[Violation]:
    out: list[Violation] = []
    if request.text:
        out += brevity.typographic(request.text, None, None)
    limits = {
        ChannelKind.PUSH: settings.push_title_max,
        ChannelKind.SIGNAGE: settings.signage_headline_max,
    }
    # A text longer than a short channel allows is normal: the channel carries a text derived
    # from it, shaped to fit, so only a text the dispatcher wrote for one channel
    # (texts.sms...) or a headline is ever over a channel's limit.
    derived: dict[str, list[str]] = {}
    for channel, by_lang in rendered.items():
        for lang, message in by_lang.items():
            if message.derived:
                derived.setdefault(lang, []).append(channel.value)
            if channel is ChannelKind.SMS:
                out += brevity.sms(message, lang, settings)
            elif channel in limits:
                out += brevity.title(message, channel, limits[channel], lang)
    for lang, channels in derived.items():
        message = rendered[ChannelKind(channels[0])][lang]
        out.append(brevity.derived(channels, message.text, lang, request.language))
    return out


def _cautions(request: AlertRequest) -> list[Violation]:
    out: list[Violation] = []
    for field, lang, text in _inputs(request):
        if field not in (None, "description") and not (field or "").endswith(".text"):
            continue
        where = {"field": field, "language": None if lang == request.language else lang}
        out += [v.at(**where) for v in cautions.race_sex_only(text)]
        out += [v.at(**where) for v in cautions.victim_blaming(text)]
    out += cautions.all_clear_unlinked(request.kind, request.text or "", request.references)
    return out


def _apply_override(v: Violation, overridden: frozenset[str]) -> Violation:
    if v.severity is Severity.ERROR and any(v.matches(o) for o in overridden):
        return v.at(severity=Severity.WARNING, overridden=True)
    return v


def _measure(
    rendered: Rendered, primary: str
) -> tuple[dict[str, int], dict[str, str], dict[str, dict[str, object]]]:
    segments: dict[str, int] = {}
    encoding: dict[str, str] = {}
    by_language: dict[str, dict[str, object]] = {}
    for lang, message in rendered.get(ChannelKind.SMS, {}).items():
        measured = count(message.text)
        if lang == primary:
            segments["sms"] = measured.segments
            encoding["sms"] = measured.encoding.value
        else:
            by_language[lang] = {
                "segments": {"sms": measured.segments},
                "encoding": {"sms": measured.encoding.value},
            }
    return segments, encoding, by_language
