"""The compose form: what the dispatcher typed, the alert request it makes, and its preview."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape
from pydantic import ValidationError

from dispatcher.access.auth import Caller
from dispatcher.alerting.intake import Change
from dispatcher.alerting.rendering import Rendered, question_text
from dispatcher.alerting.request import AlertRequest, problems
from dispatcher.alerting.templates import Template, list_templates
from dispatcher.cap.format import render_cap
from dispatcher.console import actions
from dispatcher.domain import AlertKind, ChannelKind, Mode
from dispatcher.policy.gsm import count as sms_count
from dispatcher.refusals import Problem
from dispatcher.service import Service
from dispatcher.store.alerts import AlertRecord

KIND_LABELS = {
    AlertKind.EMERGENCY.value: "Emergency notification",
    AlertKind.TIMELY_WARNING.value: "Timely warning",
    AlertKind.ADVISORY.value: "Advisory",
    AlertKind.ALL_CLEAR.value: "All clear",
}
MODE_LABELS = {
    Mode.LIVE.value: "A real alert",
    Mode.DRILL.value: "A drill (an exercise people take part in)",
    Mode.TEST.value: "A test (of the equipment)",
}
CHANNEL_LABELS = {
    ChannelKind.SMS.value: "Text message (SMS)",
    ChannelKind.EMAIL.value: "E-mail",
    ChannelKind.PUSH.value: "Push notification",
    ChannelKind.VOICE.value: "Voice call",
    ChannelKind.SIREN.value: "Outdoor sirens",
    ChannelKind.SIGNAGE.value: "Digital signs",
    ChannelKind.PA.value: "Public address speakers",
    ChannelKind.BROADCAST.value: "Campus accounts (Teams, Slack, social media)",
    ChannelKind.WEBHOOK.value: "Campus systems (signed webhooks)",
}
# The parts a follow-up inherits, as the confirmation names them when it changes one.
CHANGE_LABELS = {
    "audience": "Audience",
    "zones": "Zones",
    "exclude_zones": "Zones left out",
    "channels": "Channels",
    "language": "Language",
    "confirmed_by": "Confirmed by",
}
CUSTOM = "custom"
EVERYONE = "all"

# The template an all clear starts from, and where its fields come from in the alert it ends.
ALL_CLEAR_TEMPLATE = "all_clear"
_CLEARED_FROM = {
    "event": ("event", "hazard", "threat", "material", "warning", "utility"),
    "location": ("location", "building", "area"),
}


def _cleared(fields: Mapping[str, str]) -> dict[str, str]:
    """The all clear's fields (what is over, and where) from the alert's own."""
    out: dict[str, str] = {}
    for name, sources in _CLEARED_FROM.items():
        for suffix in ("", "_es"):
            found = next((fields[f"{s}{suffix}"] for s in sources if f"{s}{suffix}" in fields),
                         None)
            if found:
                out[f"{name}{suffix}"] = found
    return out


# Where each request field is on the form, so the error summary links to it.
_FIELD_IDS = {
    "kind": "kind-emergency",
    "mode": "mode-live",
    "text": "text",
    "translations": "text-es",
    "template": "template",
    "audience": "expression",
    "zones": "zones",
    "channels": "channels",
    "confirmed_by": "confirmed-name",
    "override": "override-reason",
    "references": "text",
    "widen": "widen",
    "incident": "text",
    "drill": "drill-description",
    "ask": "ask-question",
}
# A drill's Clery record when the dispatcher gives no description: the message it sent.
DRILL_DESCRIPTION_CHARS = 2000


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing to fix: the form field's id and a plain message."""

    field_id: str
    message: str


@dataclass(frozen=True, slots=True)
class ComposeForm:
    """What the compose page's form holds."""

    kind: str = AlertKind.EMERGENCY.value
    mode: str = Mode.LIVE.value
    template: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    text: str = ""
    text_es: str = ""
    segment: str = EVERYONE
    expression: str = ""
    zones: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    confirmed_name: str = ""
    confirmed_title: str = ""
    override: bool = False
    override_reason: str = ""
    references: str = ""
    widen: bool = False
    # The incident whose timely warning this is: linked in the alert's own transaction.
    incident: str = ""
    # The kind whose default channels the boxes were ticked with ("" once chosen by hand).
    defaults_of: str = ""
    # A drill's or test's Clery record: what it exercised, announced or not, and whether the
    # emergency procedures were publicized with it.
    drill_description: str = ""
    drill_announced: str = "yes"
    drill_publicized: str = "no"
    # Asking people whether they are safe, with the question in the form's words (or the
    # configured default).
    ask: bool = False
    question: str = ""
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @classmethod
    def from_post(
        cls, data: Mapping[str, Any], defaults: Callable[[str], tuple[str, ...]] | None = None
    ) -> ComposeForm:
        """Read the posted form (a MultiDict: zones and channels repeat).

        Boxes still as a kind's defaults left them follow the kind now chosen (`defaults`
        gives a kind's), so a timely warning started as an emergency sounds nothing.
        """
        form = cls._posted(data)
        if (defaults is None or not form.defaults_of or form.defaults_of == form.kind
                or form.kind not in KIND_LABELS or form.defaults_of not in KIND_LABELS):
            return form
        if set(form.channels) != set(defaults(form.defaults_of)):
            return replace(form, defaults_of="")
        return replace(form, channels=defaults(form.kind), defaults_of=form.kind)

    @classmethod
    def _posted(cls, data: Mapping[str, Any]) -> ComposeForm:

        def one(name: str, default: str = "") -> str:
            value = data.get(name, default)
            return value.strip() if isinstance(value, str) else default

        def many(name: str) -> tuple[str, ...]:
            getall = getattr(data, "getall", None)
            values = getall(name, []) if getall else data.get(name, [])
            return tuple(v for v in values if isinstance(v, str) and v)

        fields = {
            k.removeprefix("field."): v.strip()
            for k, v in data.items()
            if k.startswith("field.") and isinstance(v, str) and v.strip()
        }
        return cls(
            kind=one("kind", AlertKind.EMERGENCY.value),
            mode=one("mode", Mode.LIVE.value),
            template=one("template"),
            fields=fields,
            text=one("text"),
            text_es=one("text_es"),
            segment=one("segment", EVERYONE) or EVERYONE,
            expression=one("expression"),
            zones=many("zone"),
            channels=many("channel"),
            confirmed_name=one("confirmed_name"),
            confirmed_title=one("confirmed_title"),
            override=one("override") == "yes",
            override_reason=one("override_reason"),
            references=one("references"),
            widen=one("widen") == "yes",
            incident=one("incident"),
            defaults_of=one("defaults_of"),
            drill_description=one("drill_description"),
            drill_announced=one("drill_announced", "yes"),
            drill_publicized=one("drill_publicized", "no"),
            ask=one("ask") == "yes",
            question=one("question"),
            key=one("key") or secrets.token_urlsafe(16),
        )

    @classmethod
    def following(
        cls, record: AlertRecord, kind: str, mode: str, segments: Collection[str],
        templates: Collection[Template],
    ) -> ComposeForm:
        """An update (or all clear) of `record`, filled in from it: its audience, zones,
        channels and confirmation, and its template and words to start from."""
        earlier = record.request
        audience = record.audience
        if audience == EVERYONE or audience in segments:
            segment, expression = audience, ""
        else:
            segment, expression = CUSTOM, audience
        template, fields = earlier.template or "", dict(earlier.fields)
        text = earlier.text or ""
        text_es = next((t.text for code, t in earlier.translations.items() if code == "es"), "")
        if kind == AlertKind.ALL_CLEAR.value and record.kind is not AlertKind.ALL_CLEAR:
            template, fields, text, text_es = "", {}, "", ""
            clearing = next((t for t in templates if t.name == ALL_CLEAR_TEMPLATE
                             and AlertKind.ALL_CLEAR in t.kinds), None)
            # From a template's alert the all clear takes what and where; free text is typed.
            if clearing is not None and earlier.template:
                template, fields = clearing.name, _cleared(earlier.fields)
        confirmed = earlier.confirmed_by
        return cls(
            kind=kind, mode=mode, template=template, fields=fields,
            text="" if template else text, text_es="" if template else text_es,
            segment=segment, expression=expression, zones=record.zones,
            channels=tuple(c.value for c in record.channels),
            confirmed_name=confirmed.name if confirmed else "",
            confirmed_title=confirmed.title if confirmed else "",
            references=record.id,
        )

    @property
    def audience(self) -> str:
        """The audience expression the form means."""
        if self.segment == CUSTOM:
            return self.expression or EVERYONE
        return self.segment or EVERYONE

    @property
    def is_drill(self) -> bool:
        """A drill or a test: the page shows drill mode."""
        return self.mode in (Mode.DRILL.value, Mode.TEST.value)

    @property
    def default_drill_description(self) -> str:
        """What the Clery record says of a drill whose description was left empty."""
        what = "Test" if self.mode == Mode.TEST.value else "Drill"
        said = " ".join((self.text or ", ".join(self.fields.values())).split())
        return f"{what}: {said}"[:DRILL_DESCRIPTION_CHARS] if said else what

    def request_body(self, override_rules: list[str] | None = None) -> dict[str, Any]:
        """The alert request (API JSON shape) the form makes."""
        body: dict[str, Any] = {
            "kind": self.kind,
            "mode": self.mode,
            "audience": self.audience,
            "zones": list(self.zones),
        }
        if self.channels:
            body["channels"] = list(self.channels)
        if self.template:
            body["template"] = self.template
            body["fields"] = dict(self.fields)
        if self.text:
            body["text"] = self.text
        if self.text_es:
            body["translations"] = {"es": {"text": self.text_es}}
        if self.confirmed_name or self.confirmed_title:
            body["confirmed_by"] = {"name": self.confirmed_name, "title": self.confirmed_title}
        if self.references:
            body["references"] = self.references
            if self.widen:
                body["widen"] = True
        if self.incident:
            body["incident"] = self.incident
        if self.is_drill:
            body["drill"] = {
                "description": self.drill_description or self.default_drill_description,
                "announced": self.drill_announced != "no",
                "procedures_publicized": self.drill_publicized == "yes",
            }
        if self.ask:
            body["ask"] = {"question": self.question} if self.question else {}
        if self.override and override_rules:
            body["override"] = {"rules": override_rules, "reason": self.override_reason}
        return body


@dataclass(frozen=True, slots=True)
class ChannelPreview:
    """One channel's rendering as the preview shows it."""

    kind: str
    label: str
    title: str
    text: str
    body: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Preview:
    """Everything the compose page shows about the form as it stands."""

    form: ComposeForm
    request: AlertRequest | None
    problems: tuple[FieldProblem, ...]
    violations: tuple[dict[str, Any], ...] = ()
    marked: dict[str, Markup] = field(default_factory=dict)
    channels: tuple[str, ...] = ()
    renderings: tuple[ChannelPreview, ...] = ()
    counts: dict[str, Any] | None = None
    suppressed: dict[str, int] = field(default_factory=dict)
    cap_xml: str = ""
    override_rules: tuple[str, ...] = ()
    # Intake would hold it for a second person's approval.
    held: bool = False
    # The message as intake checked it (a template's text filled in).
    message: str = ""
    # What a follow-up changes of the alert it follows, and how many it newly reaches.
    changes: tuple[Change, ...] = ()
    widened: int = 0
    # The question the alert asks ("" when it asks none), as people will read it.
    question: str = ""
    message_es: str = ""

    @property
    def blocking(self) -> tuple[dict[str, Any], ...]:
        """Policy errors not overridden."""
        return tuple(v for v in self.violations if v["severity"] == "error")

    @property
    def sendable(self) -> bool:
        """Nothing stops it being sent."""
        return self.request is not None and not self.problems and not self.blocking

    @property
    def changed(self) -> tuple[tuple[str, str, str], ...]:
        """A follow-up's changes as the confirmation lists them: what, before, after."""
        return tuple((CHANGE_LABELS.get(c.field, c.field), c.before, c.after)
                     for c in self.changes)

    def rewrite_of(self, violation: dict[str, Any]) -> str:
        """The button value that applies a violation's suggestion to the form's own text, or
        "" when it has none there (a template's words, a channel's derived text)."""
        if (violation.get("suggestion") is None or violation.get("start") is None
                or violation.get("channel") is not None):
            return ""
        if violation.get("field") is None and self.message == self.form.text:
            language = "en"
        elif (violation.get("field") == "translations.es.text"
              and self.message_es == self.form.text_es):
            language = "es"
        else:
            return ""
        return f"{language}:{violation['start']}:{violation['end']}:{violation['rule']}"

    def rewritten(self, choice: str) -> ComposeForm | None:
        """The form with the chosen suggestion put in place of its span, or None when the
        choice no longer matches what the preview found in the text."""
        found = next((v for v in self.violations if self.rewrite_of(v) == choice), None)
        if found is None:
            return None
        words = str(found["suggestion"])
        start, end = int(found["start"]), int(found["end"])
        source = self.form.text_es if choice.startswith("es:") else self.form.text
        head, tail = source[:start], source[end:]
        if not words:
            # Deleting a span leaves no doubled space or space before a full stop.
            head = head.rstrip(" ") if tail[:1] in (" ", ",", ".", ";", ":", "") else head
        changed = f"{head}{words}{tail}"
        if choice.startswith("es:"):
            return replace(self.form, text_es=changed)
        return replace(self.form, text=changed)

    @property
    def people(self) -> int:
        """The distinct recipients it would reach."""
        return int((self.counts or {}).get("total", 0))


def default_channels(service: Service, kind: str) -> tuple[str, ...]:
    """The boxes a kind starts with: `[dispatch] default_channels`, as configured here."""
    wanted = service.settings.dispatch.default_channels.get(AlertKind(kind), [])
    return tuple(c.value for c in wanted if c in service.engine.channels)


def field_id(name: str) -> str:
    """The form field a request field's problem belongs to."""
    head = name.split(".", 1)[0]
    if head == "fields" and "." in name:
        return f"field-{name.split('.', 1)[1]}"
    return _FIELD_IDS.get(head, "text")


def templates_for(service: Service) -> list[Template]:
    """The templates the compose page offers."""
    return list_templates(service.settings.templates_dir())


# Markup.format escapes every value it is given.
_MARK = Markup(
    '<mark class="violation" id="mark-{index}" data-rule="{rule}">{words}'
    '<span class="visually-hidden"> (problem {number})</span></mark>'
)


def mark(text: str, violations: list[dict[str, Any]]) -> Markup:
    """The text with each violation's span in a <mark> that names the violation."""
    spans = sorted(
        (v["start"], v["end"], i)
        for i, v in enumerate(violations)
        if v.get("start") is not None and v.get("end") is not None
        and 0 <= v["start"] < v["end"] <= len(text)
    )
    out: list[str] = []
    at = 0
    for start, end, index in spans:
        if start < at:
            continue  # overlapping spans: the first one marks the words
        out.append(str(escape(text[at:start])))
        out.append(_MARK.format(index=index, rule=violations[index]["rule"],
                                words=text[start:end], number=index + 1))
        at = end
    out.append(str(escape(text[at:])))
    return Markup("".join(out))  # noqa: S704 - every piece was escaped above


# Said beside a channel whose text is derived from a longer one.
DERIVED_NOTE = "shortened from the full text, which the public page carries"


def _renderings(rendered: Rendered, language: str) -> list[ChannelPreview]:
    out = []
    for kind, by_language in rendered.items():
        message = by_language.get(language) or next(iter(by_language.values()))
        label = CHANNEL_LABELS.get(kind.value, kind.value)
        derived = DERIVED_NOTE if message.derived else ""
        if kind is ChannelKind.SMS:
            measured = sms_count(message.text)
            plural = "s" if measured.segments != 1 else ""
            note = (f"{measured.segments} segment{plural}, {measured.encoding.value}, "
                    f"{measured.units} characters")
            note = f"{note}; {derived}" if derived else note
            out.append(ChannelPreview(kind.value, label, "", message.text, note=note))
        elif kind is ChannelKind.EMAIL:
            out.append(ChannelPreview(kind.value, label, message.subject or message.title,
                                      message.text, body=message.body))
        elif kind is ChannelKind.PA:
            out.append(ChannelPreview(kind.value, label, "", message.speech or message.text,
                                      note=derived))
        else:
            out.append(ChannelPreview(kind.value, label, message.title, message.text,
                                      note=derived))
    return out


def field_for(form: ComposeForm, name: str) -> str:
    """The form field a request field's problem belongs to, as this form is filled in."""
    head = name.split(".", 1)[0]
    if name.startswith("ask.question"):
        return "ask-question"
    if head == "audience":
        return "expression" if form.segment == CUSTOM else "segment"
    if head in ("zones", "exclude_zones"):
        return "zones"
    return field_id(name)


def _in_form_words(problem: Problem) -> str:
    """Intake's message, with the request field it names said as the form's own choice."""
    if problem.field == "widen":
        reach = problem.message.split(":", 1)[0]
        return (f"{reach[:1].upper()}{reach[1:]}: tick “Also send to people the first alert "
                "did not reach” to send to them too, or keep its zones and audience")
    return problem.message


def _form_problems(form: ComposeForm) -> list[FieldProblem]:
    """What the form itself lacks, before there is a request to check."""
    found: list[FieldProblem] = []
    if form.is_drill:
        if form.drill_announced not in ("yes", "no"):
            found.append(FieldProblem("drill-announced",
                                      "Select whether the drill was announced beforehand"))
        if form.drill_publicized not in ("yes", "no"):
            found.append(FieldProblem(
                "drill-publicized",
                "Select whether the emergency procedures were publicized with the drill"))
        if len(form.drill_description) > DRILL_DESCRIPTION_CHARS:
            found.append(FieldProblem(
                "drill-description",
                f"The drill's description must be {DRILL_DESCRIPTION_CHARS:,} characters "
                "or fewer"))
    if form.ask and len(form.question) > 300:
        found.append(FieldProblem("ask-question", "The question must be 300 characters or fewer"))
    if form.confirmed_name and not form.confirmed_title:
        found.append(FieldProblem("confirmed-title", "Enter the title of the person who confirmed"))
    if form.confirmed_title and not form.confirmed_name:
        found.append(FieldProblem("confirmed-name", "Enter the name of the person who confirmed"))
    if not form.text and not form.template:
        found.append(FieldProblem("text", "Enter the message, or choose a template"))
    return found


def _request_of(
    form: ComposeForm, found: list[FieldProblem], override_rules: list[str] | None = None
) -> AlertRequest | None:
    """The alert request the form means, or None with its problems added to `found`."""
    try:
        return AlertRequest.model_validate(form.request_body(override_rules))
    except ValidationError as exc:
        for p in problems(exc):
            if override_rules and p["field"].startswith("override"):
                message = ("Give the reason for sending despite the policy "
                           "(at least 5 characters)")
                found.append(FieldProblem("override-reason", message))
            elif not any(f.field_id == field_for(form, p["field"]) for f in found):
                found.append(FieldProblem(field_for(form, p["field"]), p["message"]))
        return None


async def build_preview(service: Service, form: ComposeForm, caller: Caller) -> Preview:
    """Map the form to an alert request and show what intake would do with it (its own
    checks, renderings, verdict and count), each problem under its field."""
    found = _form_problems(form)
    if not form.text and not form.template:
        return Preview(form, None, tuple(found))
    request = _request_of(form, found)
    if request is None:
        return Preview(form, None, tuple(found))
    outcome = await actions.preview(service, request, caller)
    rules = sorted({v.rule for v in outcome.verdict.errors}) if outcome.verdict else []
    if form.override and rules:
        overriding = _request_of(form, found, rules)
        if overriding is not None:
            request = overriding
            outcome = await actions.preview(service, request, caller)
    found.extend(FieldProblem(field_for(form, p.field), _in_form_words(p))
                 for p in outcome.problems)
    if outcome.rendered is None or outcome.verdict is None:
        return Preview(form, None, tuple(found))
    checked = outcome.request
    violations = [v.to_json() for v in outcome.verdict.violations]
    marked = {"en": mark(checked.text or "", [
        v if v["channel"] is None and v["field"] is None else {**v, "start": None}
        for v in violations
    ])}
    es = checked.translations.get("es")
    if es is not None:
        marked["es"] = mark(es.text, [
            v if v["channel"] is None and v["field"] == "translations.es.text"
            else {**v, "start": None}
            for v in violations
        ])
    counts = outcome.counts
    suppressed: dict[str, int] = {}
    if counts is not None:
        people = sum(n for role, n in counts["by_role"].items() if role != "device")
        for kind in outcome.channels:
            if not kind.is_device:
                suppressed[kind.value] = max(0, people - int(counts["by_channel"][kind.value]))
    # CAP carries the full text: a push text shaped from a longer one is not it.
    texts = {lang: m.text for lang, m in outcome.rendered.get(ChannelKind.PUSH, {}).items()
             if not m.derived}
    settings = service.settings
    cap = render_cap(
        checked, identifier="preview", sender=settings.service.sender,
        sent=datetime.now(UTC).replace(microsecond=0), texts=texts or None,
        sender_name=settings.service.institution,
    ).decode()
    return Preview(
        form=form,
        request=request,
        problems=tuple(found),
        violations=tuple(violations),
        marked=marked,
        channels=tuple(c.value for c in outcome.channels),
        renderings=tuple(_renderings(outcome.rendered, checked.language)),
        counts=counts,
        suppressed=suppressed,
        cap_xml=cap,
        override_rules=tuple(rules),
        held=outcome.held,
        message=checked.text or "",
        changes=outcome.changes,
        widened=outcome.widened,
        message_es=es.text if es is not None else "",
        question=question_text(checked, checked.language, settings.rendering)
        if checked.ask is not None else "",
    )
