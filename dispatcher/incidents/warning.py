"""The timely-warning draft for an incident: the crime, when, where and the template's tips."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.alerting.templates import TemplateError, load_template
from dispatcher.incidents.model import CRIMINAL, Category, Incident

# The config/templates/*.toml template whose safety tips fit each crime.
TEMPLATE_FOR: dict[Category, str] = {
    Category.ROBBERY: "robbery",
    Category.AGGRAVATED_ASSAULT: "assault",
    Category.BURGLARY: "burglary",
    Category.MOTOR_VEHICLE_THEFT: "motor_vehicle_theft",
    Category.ARSON: "arson",
    Category.RAPE: "sexual_assault",
    Category.FONDLING: "sexual_assault",
    Category.INCEST: "sexual_assault",
    Category.STATUTORY_RAPE: "sexual_assault",
}
HATE_TEMPLATE = "hate_crime"

_CRIME_WORDS: dict[Category, str] = {
    Category.MURDER: "Homicide",
    Category.NEGLIGENT_MANSLAUGHTER: "Homicide",
    Category.DOMESTIC_VIOLENCE: "Domestic violence",
    Category.DATING_VIOLENCE: "Dating violence",
    Category.STALKING: "Stalking",
}


def day_words(moment: datetime) -> str:
    """"Monday, Oct. 6": how a warning names the day."""
    month = moment.strftime("%b")
    month = month if month == "May" else f"{month}."
    return f"{moment.strftime('%A')}, {month} {moment.day}"


def time_words(moment: datetime) -> str:
    """"9 PM", "9:30 PM": how a warning names the time."""
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{hour} {suffix}" if moment.minute == 0 else f"{hour}:{moment.minute:02d} {suffix}"


def template_name(incident: Incident) -> str | None:
    """The template for this incident's crime, if one fits."""
    if incident.bias is not None:
        return HATE_TEMPLATE
    if incident.category is None:
        return None
    return TEMPLATE_FOR.get(incident.category)


def draft_request(incident: Incident, zone: ZoneInfo, templates: Path) -> dict[str, Any]:
    """An alert request body for `POST /v1/alerts`, prefilled from the incident."""
    when = datetime.fromtimestamp((incident.occurred_from or incident.reported_at) / 1000, tz=zone)
    values = {
        "date": day_words(when),
        "time": time_words(when),
        "location": incident.location,
        "incident": incident.nature[:1].lower() + incident.nature[1:],
    }
    body: dict[str, Any] = {"kind": "timely_warning", "audience": "all", "incident": incident.id}
    name = template_name(incident)
    if name is not None:
        try:
            template = load_template(name, templates)
        except TemplateError:
            template = None
        if template is not None and set(template.required()) <= set(values):
            body["template"] = name
            body["fields"] = {k: v for k, v in values.items() if k in template.fields}
            return body
    crime = _CRIME_WORDS.get(incident.category) if incident.category is not None else None
    if crime is None:
        crime = "A crime" if incident.category not in CRIMINAL else str(incident.category)
        crime = crime.replace("_", " ").capitalize()
    body["text"] = (
        f"Timely Warning: {crime} reported {values['date']} at {values['time']} near "
        f"{values['location']}. Call 911 in an emergency and report information to Campus Police."
    )
    return body
