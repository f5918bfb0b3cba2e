"""Alert templates: a named message with fields, in English and Spanish at least.

A template is a TOML file in the templates folder (`config/templates/` by default):

    kind = "emergency"               # or a list of the kinds it may be sent as
    title = "Evacuate a building"
    [fields]                         # each field and what to put in it
    building = "the building to leave"
    [defaults]                       # fields that may be left out
    assembly = "the designated assembly area"
    [sample]                         # values the tests and the docs use
    building = "Carver Hall"
    [en]
    headline = "Evacuate {building} now"
    text = "EMERGENCY: ... gather at {assembly}.[[ Suspect: {suspect}.]]"
    [es]
    text = "..."
    [es.defaults]
    assembly = "el punto de reunión designado"

`{name}` is replaced by the field; in language `xx` a field `name_xx` wins over `name`.
A part between `[[` and `]]` is left out when a field in it has no value.

A field may offer choices with a label in every language of the template, so that a value
chosen in one language reads in each other one in that language:

    [choices.hazard]                 # or: [choices] hazard = "hazards", a set of _choices.toml
    fire = { en = "Fire alarm and smoke", es = "Alarma de incendio y humo" }

A value given as a choice's id or as any of its labels is put in each language as that
language's label. Any other value is free text, written in the request's language: another
language's text gets it as typed, less a leading article of the language it was written in
("cerca de 300 block of Walnut Street", not "cerca de the 300 block ..."). `_choices.toml` in
the templates folder holds choice sets that several templates share.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dispatcher.alerting.request import AlertRequest, Translation, problems
from dispatcher.domain import AlertKind
from dispatcher.settings import config_dir

PARTS = ("text", "headline", "instruction", "description")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
SHARED_CHOICES = "_choices.toml"
# The articles a free-text value loses when it is put, untranslated, into another language.
ARTICLES = {
    "en": frozenset({"the", "a", "an"}),
    "es": frozenset({"el", "la", "los", "las", "un", "una", "unos", "unas"}),
}

# A field's choices: choice id to its label in each language.
Choices = dict[str, dict[str, str]]


class TemplateError(ValueError):
    """A template is unknown or malformed, or a field it needs is missing."""


@dataclass(frozen=True, slots=True)
class Template:
    """One template file, parsed."""

    name: str
    kinds: tuple[AlertKind, ...]
    title: str
    fields: dict[str, str]
    defaults: dict[str, str]
    languages: dict[str, dict[str, str]]
    language_defaults: dict[str, dict[str, str]]
    sample: dict[str, str]
    choices: dict[str, Choices] = field(default_factory=dict)

    @property
    def kind(self) -> AlertKind:
        """The kind the template is written for first."""
        return self.kinds[0]

    def required(self) -> list[str]:
        """Fields that must be given: used outside an optional part and with no default."""
        needed: set[str] = set()
        for parts in self.languages.values():
            for pattern in parts.values():
                needed |= set(_PLACEHOLDER.findall(_OPTIONAL.sub("", pattern)))
        return sorted(
            n for n in needed
            if n not in self.defaults
            and not all(n in d for d in self.language_defaults.values() if d)
        )

    def optional(self) -> list[str]:
        """Fields that may be left out."""
        required = set(self.required())
        return sorted(n for n in self.fields if n not in required)

    def place(self, name: str, value: str, language: str, written_in: str) -> str:
        """A field's value as `language`'s text shows it: a choice as that language's label;
        free text written in another language as typed, less its leading article."""
        wanted = _key(value)
        for option, labels in self.choices.get(name, {}).items():
            if wanted in (_key(option), _key(option.replace("_", " "))) or any(
                wanted == _key(label) for label in labels.values()
            ):
                return labels.get(language, value)
        if language == written_in:
            return value
        first, _, rest = value.partition(" ")
        if rest and first.casefold() in ARTICLES.get(written_in, ()):
            return rest
        return value

    def fill(
        self, values: dict[str, str], language: str, written_in: str | None = None
    ) -> dict[str, str]:
        """The template's parts in one language with the fields filled in; the values are
        written in `written_in` (by default the same language)."""
        source = written_in or language
        if language not in self.languages:
            raise TemplateError(
                f"template {self.name!r} has no {language!r} version "
                f"(it has {', '.join(sorted(self.languages))})"
            )
        local = self.language_defaults.get(language, {})

        def lookup(name: str) -> str | None:
            own = values.get(f"{name}_{language}")
            if own is not None and own.strip():
                return own.strip()
            given = values.get(name)
            if given is not None and given.strip():
                return self.place(name, given.strip(), language, source)
            fallback = local.get(name)
            if fallback is not None and fallback.strip():
                return fallback.strip()
            default = self.defaults.get(name)
            if default is not None and default.strip():
                # The template's own defaults are written in English.
                return self.place(name, default.strip(), language, "en")
            return None

        missing: list[str] = []

        def optional(match: re.Match[str]) -> str:
            inner = match.group(1)
            if any(lookup(n) is None for n in _PLACEHOLDER.findall(inner)):
                return ""
            return inner

        def substitute(match: re.Match[str]) -> str:
            value = lookup(match.group(1))
            if value is None:
                missing.append(match.group(1))
                return ""
            return value

        out = {}
        for part, pattern in self.languages[language].items():
            text = _PLACEHOLDER.sub(substitute, _OPTIONAL.sub(optional, pattern))
            out[part] = _tidy(text)
        if missing:
            names = ", ".join(
                f"{n!r} ({self.fields[n]})" if n in self.fields else repr(n)
                for n in dict.fromkeys(missing)
            )
            raise TemplateError(f"template {self.name!r} needs field {names}")
        return out


def _key(value: str) -> str:
    """A value as choices compare it: case, spacing and a final full stop aside."""
    return " ".join(value.casefold().split()).rstrip(".")


def _tidy(text: str) -> str:
    """Spaces and punctuation left right after a field was filled in."""
    text = re.sub(r"[ \t]+", " ", text).strip()
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\.\.(?!\.)", ".", text)


def default_folder() -> Path:
    """The templates shipped with Clarion's embedded config."""
    return config_dir() / "templates"


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TemplateError(f"{where} must be a table of strings")
    return dict(value)


def _choices(
    raw: Any, shared: dict[str, Choices], languages: list[str], where: str
) -> dict[str, Choices]:
    """The `[choices]` table: each field's options, or the name of a shared set; every option
    has a label in every language of the template."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TemplateError(f"{where} [choices] must be a table")
    out: dict[str, Choices] = {}
    for name, options in raw.items():
        if isinstance(options, str):
            if options not in shared:
                known = ", ".join(sorted(shared)) or "none"
                raise TemplateError(
                    f"{where} [choices] {name}: no shared set {options!r} (sets: {known})")
            options = shared[options]
        if not isinstance(options, dict) or not options:
            raise TemplateError(f"{where} [choices.{name}] must be a table of options")
        table: Choices = {}
        for option, labels in options.items():
            labels = _strings(labels, f"{where} [choices.{name}] {option}")
            missing = [lang for lang in languages if not labels.get(lang, "").strip()]
            if missing:
                raise TemplateError(f"{where} [choices.{name}] {option}: no label in "
                                    f"{', '.join(missing)}")
            table[option] = labels
        out[name] = table
    return out


def shared_choices(folder: Path) -> dict[str, Choices]:
    """The choice sets of `_choices.toml` in the templates folder, by name."""
    path = folder / SHARED_CHOICES
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{SHARED_CHOICES}: not valid TOML: {exc}") from None
    sets: dict[str, Choices] = {}
    for name, options in raw.items():
        if not isinstance(options, dict):
            raise TemplateError(f"{SHARED_CHOICES}: [{name}] must be a table of options")
        sets[name] = {
            option: _strings(labels, f"{SHARED_CHOICES} [{name}] {option}")
            for option, labels in options.items()
        }
    return sets


def parse_template(
    name: str, raw: dict[str, Any], shared: dict[str, Choices] | None = None
) -> Template:
    """A template from its decoded TOML; raises TemplateError naming what is wrong."""
    where = f"template {name!r}"
    kinds_raw = raw.get("kind")
    kinds_list = kinds_raw if isinstance(kinds_raw, list) else [kinds_raw]
    try:
        kinds = tuple(AlertKind(str(k)) for k in kinds_list)
    except ValueError:
        raise TemplateError(f"{where}: kind {kinds_raw!r} is not an alert kind") from None
    if not kinds:
        raise TemplateError(f"{where}: kind is missing")
    languages: dict[str, dict[str, str]] = {}
    language_defaults: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        if re.fullmatch(r"[a-z]{2}", key) and isinstance(value, dict):
            table = dict(value)
            language_defaults[key] = _strings(table.pop("defaults", None), f"{where} [{key}]")
            parts = _strings(table, f"{where} [{key}]")
            unknown = sorted(set(parts) - set(PARTS))
            if unknown:
                raise TemplateError(f"{where} [{key}]: unknown part {', '.join(unknown)}")
            if "text" not in parts:
                raise TemplateError(f"{where} [{key}]: text is missing")
            languages[key] = parts
    if not languages:
        raise TemplateError(f"{where}: no language table such as [en]")
    return Template(
        name=name,
        kinds=kinds,
        title=str(raw.get("title", name)),
        fields=_strings(raw.get("fields"), f"{where} [fields]"),
        defaults=_strings(raw.get("defaults"), f"{where} [defaults]"),
        languages=languages,
        language_defaults=language_defaults,
        sample=_strings(raw.get("sample"), f"{where} [sample]"),
        choices=_choices(raw.get("choices"), shared or {}, sorted(languages), where),
    )


def load_template(name: str, folder: Path | None = None) -> Template:
    """The named template from the folder; raises TemplateError when unknown or malformed."""
    folder = folder or default_folder()
    if not _NAME.match(name):
        raise TemplateError(f"{name!r} is not a template name")
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(t.name for t in list_templates(folder)) or "none"
        raise TemplateError(f"unknown template {name!r} (templates: {known})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"template {name!r}: not valid TOML: {exc}") from None
    return parse_template(name, raw, shared_choices(folder))


def list_templates(folder: Path | None = None) -> list[Template]:
    """Every template in the folder, by name."""
    folder = folder or default_folder()
    if not folder.is_dir():
        return []
    return [
        load_template(p.stem, folder)
        for p in sorted(folder.glob("*.toml")) if not p.name.startswith("_")
    ]


def expand(request: AlertRequest, folder: Path | None = None) -> AlertRequest:
    """The request with text, headline, instruction, description and translations filled in
    from its template and fields; parts the request gives itself are kept."""
    if request.template is None:
        return request
    template = load_template(request.template, folder)
    if request.kind not in template.kinds:
        kinds = " or ".join(k.value for k in template.kinds)
        raise TemplateError(
            f"template {template.name!r} is for {kinds} alerts, not {request.kind.value}"
        )
    known = set(template.fields) | set(template.defaults)
    for values in template.language_defaults.values():
        known |= set(values)
    for key in request.fields:
        base, _, lang = key.rpartition("_")
        if key in known or (base in known and lang in template.languages):
            continue
        raise TemplateError(
            f"template {template.name!r} has no field {key!r} "
            f"(fields: {', '.join(sorted(known))})"
        )
    primary = template.fill(request.fields, request.language)
    data = request.model_dump(exclude_none=True)
    for part in PARTS:
        if getattr(request, part) is None and part in primary:
            data[part] = primary[part]
    translations = dict(data.get("translations", {}))
    try:
        for lang in template.languages:
            if lang == request.language or lang in translations:
                continue
            filled = template.fill(request.fields, lang, written_in=request.language)
            translations[lang] = Translation.model_validate(filled).model_dump(exclude_none=True)
        data["translations"] = translations
        return AlertRequest.model_validate(data)
    except ValidationError as exc:
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems(exc))
        raise TemplateError(
            f"template {template.name!r} filled in is not valid: {detail}"
        ) from None
