"""Per-channel rendering of an alert: what each channel says, in each language.

Every rendering of a drill or a test says so where a person looks first (the SMS prefix, the
email subject and a banner, the title and text of a push, a broadcast post or a webhook, the
sign's headline and banner, the first and last words of a PA announcement or a voice call), so
that no one can take it for a real alert.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from dispatcher.alerting.request import AlertRequest, ChannelTexts
from dispatcher.domain import ANSWER_LINK, ChannelKind, Message, Mode
from dispatcher.policy.actionable import instruction_strength
from dispatcher.policy.gsm import Encoding, count, encoding_of, normalize_punctuation, to_gsm
from dispatcher.policy.settings import PolicySettings, RenderingSettings
from dispatcher.policy.text import sentences, words
from dispatcher.templating import environment

Rendered = dict[ChannelKind, dict[str, Message]]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.IGNORECASE)
# The HTML e-mail; its template sits in dispatcher/email_templates/.
_EMAIL = environment("dispatcher", "email_templates").get_template("alert.html")


def languages(request: AlertRequest) -> list[str]:
    """The alert's languages, its own first."""
    return [request.language, *(code for code in request.translations if code != request.language)]


def render_alert(
    request: AlertRequest,
    channels: list[ChannelKind],
    settings: RenderingSettings,
    *,
    limits: PolicySettings | None = None,
) -> Rendered:
    """Every channel's rendering in every language of the alert.

    `limits` gives the title lengths derived headlines are fitted to (the policy's defaults
    when not given); a headline the dispatcher wrote is never cut in a live alert.
    """
    limits = limits or PolicySettings()
    return {
        channel: {
            lang: render(request, channel, lang, settings, limits=limits)
            for lang in languages(request)
        }
        for channel in channels
    }


@dataclass(frozen=True, slots=True)
class Parts:
    """The words of an alert in one language, before any channel dresses them."""

    text: str
    headline: str
    headline_given: bool
    instruction: str
    description: str
    web: str


def parts(request: AlertRequest, language: str, settings: RenderingSettings) -> Parts:
    """The alert's text, headline, instruction and description in one language."""
    if language != request.language and language in request.translations:
        tr = request.translations[language]
        text, headline = tr.text, tr.headline
        instruction, description = tr.instruction or "", tr.description or ""
    else:
        text, headline = request.text or "", request.headline
        instruction, description = request.instruction or "", request.description or ""
    web = request.web or settings.web
    return Parts(
        text=text.strip(),
        headline=(headline or derive_headline(text)).strip(),
        headline_given=headline is not None,
        instruction=instruction.strip(),
        description=description.strip(),
        web=web.strip(),
    )


def derive_headline(text: str) -> str:
    """The first sentence of the short text, without its closing period."""
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0] if text.strip() else ""
    return first.rstrip(".")


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary so the result, with an ellipsis, fits in limit characters."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-.") + "…"


def _long(text: str, limits: PolicySettings) -> bool:
    """True when a text is over the word budget of the short channels."""
    return len(words(text)) > limits.word_budget


def _segments(sms: str) -> int:
    return count(sms).segments


# A salutation line opens many e-mailed alerts: "Dear Students, Faculty and Staff:",
# "Loyola Community,". It is no lead.
_SALUTATION = re.compile(r"^(?:dear\b.*|[^.!?]{1,60},)$", re.IGNORECASE)
_BULLET = " \t-\u2013\u2014\u2022*"


def _lead(text: str) -> tuple[str, list[str]]:
    """The lead sentence of a text (a short header such as "TIMELY WARNING:" joined to the
    sentence after it, a salutation skipped) and the sentences that follow."""
    found = [s.text.strip(_BULLET) for s in sentences(text)]
    found = [s for s in found if s]
    while len(found) > 1 and _SALUTATION.match(found[0]) and len(words(found[0])) <= 8:
        found = found[1:]
    if not found:
        return "", []
    lead, rest = found[0], found[1:]
    if rest and lead.endswith(":") and len(words(lead)) <= 4:
        lead, rest = f"{lead} {rest[0]}", rest[1:]
    return lead, rest


def derive_short(
    p: Parts,
    language: str,
    settings: RenderingSettings,
    fits: Callable[[str], bool] = lambda _: True,
    *,
    link: bool = True,
) -> str:
    """A short channel's text derived from a long one: the lead sentence, the instruction
    (the request's own, else the sentence that says most plainly what to do), and a link to
    the full text on the public page. The lead is cut first when it does not fit."""
    lead, rest = _lead(p.text)
    instruction = p.instruction
    if not instruction and instruction_strength(lead) < 3:
        # The sentence that tells people what to do most plainly, the first of equals, unless
        # the lead says it as plainly.
        ranked = [(instruction_strength(s), -i, s) for i, s in enumerate(rest)]
        best = max(ranked, default=(0, 0, ""))
        instruction = best[2] if best[0] > max(0, instruction_strength(lead) - 1) else ""
    url = p.web or settings.full_text_link
    tail = f"{settings.word(language, 'full_text')}: {url}" if url and link else ""
    candidate = _join(lead, instruction, tail)
    room = len(lead)
    while not fits(candidate) and room > 20:
        room -= 10
        candidate = _join(shorten(lead, room), instruction, tail)
    if not fits(candidate):
        candidate = _join(instruction or shorten(lead, 60), tail)
    room = len(candidate)
    while not fits(candidate) and room > 20:
        room -= 10
        candidate = _join(shorten(instruction or lead, room), tail)
    return candidate


def marker(request: AlertRequest, language: str, settings: RenderingSettings) -> str:
    """The words that mark a drill or a test ("[DRILL] THIS IS A TEST"), empty when live."""
    if request.mode is Mode.DRILL:
        return settings.word(language, "drill_prefix")
    if request.mode is Mode.TEST:
        return settings.word(language, "test_prefix")
    return ""


def _join(*pieces: str, sep: str = " ") -> str:
    return sep.join(p for p in pieces if p)


def _title(given: bool, mark: str, headline: str, limit: int) -> str:
    """A title line with the drill mark; derived headlines (and marked ones) fit the limit."""
    full = _join(mark, headline)
    if given and not mark:
        return full
    if len(full) <= limit:
        return full
    room = max(limit - len(mark) - 1, 10) if mark else limit
    return _join(mark, shorten(headline, room))


def render(
    request: AlertRequest,
    channel: ChannelKind,
    language: str,
    settings: RenderingSettings,
    *,
    limits: PolicySettings | None = None,
) -> Message:
    """One channel's rendering in one language."""
    limits = limits or PolicySettings()
    p = parts(request, language, settings)
    mark = marker(request, language, settings)
    primary = language == request.language
    texts = request.texts if primary else None
    ask = question_text(request, language, settings)
    if channel is ChannelKind.SMS:
        own = texts.sms if texts and texts.sms else None
        reply = _join(ask, settings.word(language, "sms_reply_options")) if ask else ""

        def sms(body: str) -> str:
            return sms_text(_join(settings.word(language, "sms_prefix"), mark, body, reply),
                            settings)

        if own is None and (_long(p.text, limits) or _segments(sms(p.text)) >
                            limits.sms_max_segments):
            short = derive_short(p, language, settings,
                                 lambda b: _segments(sms(b)) <= limits.sms_max_segments)
            return Message(text=sms(short), derived=True)
        return Message(text=sms(own or p.text))
    if channel is ChannelKind.EMAIL:
        return _email(request, p, mark, language, settings, texts)
    if channel is ChannelKind.PUSH:
        own = texts.push if texts and texts.push else None
        derived = own is None and _long(p.text, limits)
        body = own or (derive_short(p, language, settings) if derived else p.text)
        title = _title(p.headline_given, mark, p.headline, limits.push_title_max)
        text = _join(mark, body)
        if ask:
            label = settings.word(language, "answer_link_label")
            text = f"{text}\n{ask} {label}: {ANSWER_LINK}"
        return Message(text=text, title=title, body=text, derived=derived)
    if channel.is_institutional:
        # A post to the campus's accounts or systems: the push rendering without a person's
        # answer link, which no account or system could use.
        own = texts.push if texts and texts.push else None
        derived = own is None and _long(p.text, limits)
        body = own or (derive_short(p, language, settings) if derived else p.text)
        title = _title(p.headline_given, mark, p.headline, limits.push_title_max)
        text = _join(mark, body)
        return Message(text=text, title=title, body=text, derived=derived)
    if channel is ChannelKind.SIGNAGE:
        return _signage(request, p, language, settings, limits, texts)
    if channel is ChannelKind.PA:
        return _pa(request, p, language, settings, texts, limits)
    if channel is ChannelKind.DESKTOP:
        return _desktop(request, p, language, settings, limits)
    if channel is ChannelKind.VOICE:
        return _voice(request, p, language, settings, texts)
    # Sirens show nothing; their message is the headline for logs and the device payload.
    title = _title(p.headline_given, mark, p.headline, limits.signage_headline_max)
    return Message(text=title, title=title)


def question_text(request: AlertRequest, language: str, settings: RenderingSettings) -> str:
    """The alert's question in a language (the request's, else the default), empty if none."""
    if request.ask is None:
        return ""
    if language == request.language and request.ask.question:
        return request.ask.question
    return request.ask.translations.get(language) or settings.word(language, "ask_question")


def sms_text(text: str, settings: RenderingSettings) -> str:
    """The SMS body in GSM-7 when it can be (plain quotes and dashes, accents dropped, no
    invisible format characters such as soft hyphens)."""
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = re.sub(r"\s+", " ", text).strip()
    if settings.sms_transliterate:
        folded = to_gsm(text)
        if encoding_of(folded) is Encoding.GSM7:
            return folded
    return normalize_punctuation(text)


def _email(
    request: AlertRequest,
    p: Parts,
    mark: str,
    language: str,
    settings: RenderingSettings,
    texts: ChannelTexts | None,
) -> Message:
    override = texts.email if texts is not None else None
    subject_base = override.subject if override is not None else p.headline
    body_text = override.body if override is not None else p.text
    banner = ""
    if request.mode is Mode.DRILL:
        banner = settings.word(language, "signage_drill_banner")
    elif request.mode is Mode.TEST:
        banner = settings.word(language, "signage_test_banner")
    what = settings.word(language, "what_to_do")
    more = settings.word(language, "more_information")
    ask = question_text(request, language, settings)
    label = settings.word(language, "answer_link_label")
    instruction = p.instruction if p.instruction and p.instruction not in body_text else ""
    blocks = [
        banner,
        p.headline,
        body_text,
        f"{what}: {instruction}" if instruction else "",
        p.description if p.description and p.description not in body_text else "",
        f"{more}: {p.web}" if p.web else "",
        f"{ask}\n{label}: {ANSWER_LINK}" if ask else "",
        banner,
    ]
    plain = "\n\n".join(b for b in blocks if b)
    page = _EMAIL.render(
        language=language,
        subject=subject_base,
        banner=banner,
        headline=p.headline,
        paragraphs=[par for par in body_text.split("\n\n") if par.strip()],
        what=what,
        instruction=instruction,
        description=p.description if p.description not in body_text else "",
        more=more,
        web=p.web,
        href=p.web if p.web.startswith(("http://", "https://")) else "",
        ask=ask,
        label=label,
        answer_link=ANSWER_LINK,
    ).removesuffix("\n")
    subject = _join(mark, subject_base)
    return Message(text=plain, title=p.headline, subject=subject, body=plain, html=page)


def _signage(
    request: AlertRequest,
    p: Parts,
    language: str,
    settings: RenderingSettings,
    limits: PolicySettings,
    texts: ChannelTexts | None,
) -> Message:
    banner = ""
    if request.mode is Mode.DRILL:
        banner = settings.word(language, "signage_drill_banner")
    elif request.mode is Mode.TEST:
        banner = settings.word(language, "signage_test_banner")
    override = texts.signage if texts is not None else None
    headline = _title(p.headline_given, banner, p.headline, limits.signage_headline_max)
    derived = not override and not p.instruction and _long(p.text, limits)
    action = override or p.instruction or (
        derive_short(p, language, settings) if derived else p.text)
    longer = p.description or p.text
    lines = [headline, action]
    if banner:
        lines.append(banner)
    return Message(text="\n".join(lines), title=headline, body=longer, derived=derived)


def _desktop(
    request: AlertRequest,
    p: Parts,
    language: str,
    settings: RenderingSettings,
    limits: PolicySettings,
) -> Message:
    # A pop-up shows what a glance takes in: a long text is cut to its lead, instruction and
    # link, like the other short channels. The banner leads the title, as on a sign.
    banner = ""
    if request.mode is Mode.DRILL:
        banner = settings.word(language, "signage_drill_banner")
    elif request.mode is Mode.TEST:
        banner = settings.word(language, "signage_test_banner")
    headline = _title(p.headline_given, banner, p.headline, limits.signage_headline_max)
    derived = _long(p.text, limits)
    text = derive_short(p, language, settings) if derived else p.text
    return Message(text=text, title=headline, body=p.description, derived=derived)


_SPOKEN = (
    (re.compile(r"\b911\b"), "9 1 1"),
    (re.compile(r"\b988\b"), "9 8 8"),
    (re.compile(r"\bSt\.(?=\s|$)"), "Street"),
    (re.compile(r"\bAve\.?(?=\s|$|,)"), "Avenue"),
    (re.compile(r"\bBlvd\.?(?=\s|$|,)"), "Boulevard"),
    (re.compile(r"\bRd\.(?=\s|$|,)"), "Road"),
    (re.compile(r"\bJr\.(?=\s|$|,)"), "Junior"),
    (re.compile(r"\bapprox\.", re.IGNORECASE), "approximately"),
    (re.compile(r"\bw/"), "with "),
    (re.compile(r"&"), " and "),
    (re.compile(r"[\[\]*#_~|<>]"), " "),
)


def spoken(text: str) -> str:
    """Text for text-to-speech: no links, no symbols, abbreviations spelled out."""
    out = _URL.sub("", normalize_punctuation(text))
    for pattern, replacement in _SPOKEN:
        out = pattern.sub(replacement, out)
    return re.sub(r"\s+", " ", out).strip()


def _pa(
    request: AlertRequest,
    p: Parts,
    language: str,
    settings: RenderingSettings,
    texts: ChannelTexts | None,
    limits: PolicySettings,
) -> Message:
    override = texts.pa if texts is not None else None
    # A long text is cut to its lead and instruction; a link means nothing spoken.
    derived = not override and _long(p.text, limits)
    body = override or (derive_short(p, language, settings, link=False) if derived else p.text)
    if p.instruction and p.instruction not in body:
        body = _join(body, p.instruction)
    preamble = ""
    if request.mode is Mode.DRILL:
        preamble = settings.word(language, "pa_drill_preamble")
    elif request.mode is Mode.TEST:
        preamble = settings.word(language, "pa_test_preamble")
    speech = _join(preamble, spoken(body), preamble)
    return Message(text=speech, speech=speech, title=p.headline, derived=derived)


def _voice(
    request: AlertRequest,
    p: Parts,
    language: str,
    settings: RenderingSettings,
    texts: ChannelTexts | None,
) -> Message:
    # A phone call says what the PA would (its own override first, then the PA's), with the
    # drill preamble first and last; `body` is the keypad question the call ends with.
    override = texts.voice or texts.pa if texts is not None else None
    body = override or p.text
    if p.instruction and p.instruction not in body:
        body = _join(body, p.instruction)
    preamble = ""
    if request.mode is Mode.DRILL:
        preamble = settings.word(language, "pa_drill_preamble")
    elif request.mode is Mode.TEST:
        preamble = settings.word(language, "pa_test_preamble")
    speech = _join(preamble, spoken(body), preamble)
    prompt = settings.word(language, "voice_prompt")
    return Message(text=speech, speech=speech, title=p.headline, body=prompt)
