"""The compose form: what the dispatcher typed, the alert request it makes, and its preview."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape
from pydantic import ValidationError

from dispatcher.auth import Caller, scope_permits
from dispatcher.cap import render_cap
from dispatcher.console import actions
from dispatcher.domain import AlertKind, ChannelKind, Mode
from dispatcher.policy import evaluate
from dispatcher.policy.gsm import count as sms_count
from dispatcher.rendering import Rendered, render_alert
from dispatcher.request import AlertRequest, problems
from dispatcher.service import Service
from dispatcher.templates import Template, TemplateError, expand, list_templates
from segments.expression import AudienceError

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
}
CUSTOM = "custom"
EVERYONE = "all"

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
}


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
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @classmethod
    def from_post(cls, data: Mapping[str, Any]) -> ComposeForm:
        """Read the posted form (a MultiDict: zones and channels repeat)."""

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
            key=one("key") or secrets.token_urlsafe(16),
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
        if self.is_drill:
            body["drill"] = {"description": "Console drill" if self.mode == "drill"
                             else "Console test", "announced": True}
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

    @property
    def blocking(self) -> tuple[dict[str, Any], ...]:
        """Policy errors not overridden."""
        return tuple(v for v in self.violations if v["severity"] == "error")

    @property
    def sendable(self) -> bool:
        """Nothing stops it being sent."""
        return self.request is not None and not self.problems and not self.blocking

    @property
    def people(self) -> int:
        """The distinct recipients it would reach."""
        return int((self.counts or {}).get("total", 0))


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


async def build_preview(
    service: Service,
    form: ComposeForm,
    caller: Caller,
    *,
    may_override: bool,
    places: frozenset[str],
) -> Preview:
    """Validate the form, run the policy, render every channel and count the audience."""
    settings = service.settings
    found: list[FieldProblem] = []
    if form.confirmed_name and not form.confirmed_title:
        found.append(FieldProblem("confirmed-title", "Enter the title of the person who confirmed"))
    if form.confirmed_title and not form.confirmed_name:
        found.append(FieldProblem("confirmed-name", "Enter the name of the person who confirmed"))
    if not form.text and not form.template:
        found.append(FieldProblem("text", "Enter the message, or choose a template"))
        return Preview(form, None, tuple(found))
    try:
        request = AlertRequest.model_validate(form.request_body())
    except ValidationError as exc:
        for p in problems(exc):
            if not any(f.field_id == field_id(p["field"]) for f in found):
                found.append(FieldProblem(field_id(p["field"]), p["message"]))
        return Preview(form, None, tuple(found))
    try:
        request = expand(request, settings.templates_dir())
    except TemplateError as exc:
        found.append(FieldProblem("template", str(exc)))
        return Preview(form, None, tuple(found))
    segments = settings.directory.segments
    if not scope_permits(request.audience, caller.scopes, segments):
        found.append(FieldProblem(
            "segment", f"You may only send to: {', '.join(caller.scopes)} "
            "(by name, or joined to other terms with 'and')"))
        return Preview(form, None, tuple(found))
    channels = actions.channels_for(service, request)
    if isinstance(channels, actions.Refused):
        found.extend(FieldProblem("channels", p["message"]) for p in channels.problems)
        return Preview(form, None, tuple(found))
    if not channels:
        found.append(FieldProblem("channels", "Choose at least one channel"))
        return Preview(form, None, tuple(found))
    rendered = render_alert(request, channels, settings.rendering, limits=settings.policy)
    verdict = evaluate(request, rendered, settings.policy, places=places)
    rules = sorted({v.rule for v in verdict.errors})
    if form.override and rules:
        if not may_override:
            found.append(FieldProblem("text", "Your role may not send despite the policy"))
        else:
            try:
                request = AlertRequest.model_validate(
                    {**request.model_dump(mode="json", exclude_none=True),
                     "override": {"rules": rules, "reason": form.override_reason}}
                )
            except ValidationError:
                found.append(FieldProblem(
                    "override-reason", "Give the reason for sending despite the policy "
                    "(at least 5 characters)"))
            else:
                verdict = evaluate(request, rendered, settings.policy,
                                   overridden=frozenset(rules), places=places)
    violations = [v.to_json() for v in verdict.violations]
    marked = {"en": mark(request.text or "", [
        v if v["channel"] is None and v["field"] is None else {**v, "start": None}
        for v in violations
    ])}
    es = request.translations.get("es")
    if es is not None:
        marked["es"] = mark(es.text, [
            v if v["channel"] is None and v["field"] == "translations.es.text"
            else {**v, "start": None}
            for v in violations
        ])
    counts: dict[str, Any] | None = None
    suppressed: dict[str, int] = {}
    try:
        counts = await service.audience.count(
            request.audience, request.zones, request.kind, channels,
            exclude_zones=request.exclude_zones,
        )
    except AudienceError as exc:
        where = f" (at character {exc.position + 1})" if exc.position is not None else ""
        target = "zones" if "zone" in str(exc) and form.zones else (
            "expression" if form.segment == CUSTOM else "segment")
        found.append(FieldProblem(target, f"{exc}{where}"))
    if counts is not None:
        people = sum(n for role, n in counts["by_role"].items() if role != "device")
        for kind in channels:
            if not kind.is_device:
                suppressed[kind.value] = max(0, people - int(counts["by_channel"][kind.value]))
    # CAP carries the full text: a push text shaped from a longer one is not it.
    texts = {lang: m.text for lang, m in rendered.get(ChannelKind.PUSH, {}).items()
             if not m.derived}
    cap = render_cap(
        request, identifier="preview", sender=settings.service.sender,
        sent=datetime.now(UTC).replace(microsecond=0), texts=texts or None,
        sender_name=settings.service.institution,
    ).decode()
    return Preview(
        form=form,
        request=request,
        problems=tuple(found),
        violations=tuple(violations),
        marked=marked,
        channels=tuple(c.value for c in channels),
        renderings=tuple(_renderings(rendered, request.language)),
        counts=counts,
        suppressed=suppressed,
        cap_xml=cap,
        override_rules=tuple(rules),
    )
