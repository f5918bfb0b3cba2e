"""HTML comes from Jinja2 templates with autoescape on: hostile text comes out escaped on every
page and in the alert e-mail, and no module builds HTML in an f-string."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.alerting.rendering import render
from dispatcher.alerting.request import AlertRequest
from dispatcher.domain import ChannelKind
from dispatcher.settings import load_settings
from tests.conftest import SettingsFactory
from tests.support import AUTH, Running, start_service

HOSTILE = '<script>alert("x")</script> & \'q\''
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;q&#39;"
# A link that tries to leave its attribute.
BREAKOUT = 'https://alerts.example.edu/?q="><script>alert(1)</script>'
# An HTML element's tag, opening or closing (XML such as TwiML's <Response> is not HTML).
HTML_NAMES = re.compile(r"</?(?:!doctype|html|head|body|p|a|div|span|h[1-6]|table|tr|td|th|"
                        r"ul|ol|li|dl|dt|dd|section|article|form|button|strong|em|mark|svg|"
                        r"title|style|meta|link|script|br|time|nav|main|header|footer|small|"
                        r"i|b|text|line|rect|polyline|thead|tbody)(?:[\s/>]|$)",
                        re.IGNORECASE)
# Modules allowed to build HTML in an f-string, with the reason: none.
ALLOWED: frozenset[str] = frozenset()


def html_fstrings(path: Path) -> list[int]:
    """The lines of f-strings in a module whose literal text holds an HTML tag."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            literal = "".join(part.value for part in node.values
                              if isinstance(part, ast.Constant) and isinstance(part.value, str))
            if HTML_NAMES.search(literal):
                lines.append(node.lineno)
    return lines


def escaped_everywhere(name: str, page: str) -> None:
    """The hostile text is in the page, escaped, and no script tag is."""
    assert ESCAPED in page, name
    assert "<script" not in page.lower(), name


class TestNoHtmlInPython:
    """Markup lives in templates; a module that builds it in an f-string fails here."""

    def test_no_module_builds_html_in_an_fstring(self) -> None:
        """Every module of the service."""
        top = Path(__file__).resolve().parents[2]
        found = {
            f"{path.relative_to(top)}:{line}"
            for path in sorted((top / "dispatcher").rglob("*.py"))
            for line in html_fstrings(path)
            if str(path.relative_to(top)) not in ALLOWED
        }
        assert found == set()

    def test_the_check_sees_an_html_fstring(self, tmp_path: Path) -> None:
        """A module with `f"<p>{text}</p>"` is caught; TwiML's `<Response>` is not HTML."""
        module = tmp_path / "page.py"
        module.write_text('text = "x"\nA = f"<p>{text}</p>"\nB = f"<Response>{text}"\n'
                          'C = f"{text}</td>"\n', encoding="utf-8")
        assert html_fstrings(module) == [2, 4]


class TestEscaped:
    """Quotes and a script tag typed anywhere come out as text."""

    def test_the_alert_email(self) -> None:
        """Headline, text, instruction, description, link and question; in every mode."""
        settings = load_settings().rendering
        for mode in ("live", "drill", "test"):
            request = AlertRequest.model_validate({
                "kind": "emergency", "mode": mode, "audience": "all", "channels": ["email"],
                "headline": HOSTILE, "text": f"Gas leak {HOSTILE}.\n\nSecond {HOSTILE}",
                "instruction": f"Leave {HOSTILE}", "description": f"More {HOSTILE}",
                "web": BREAKOUT, "ask": {"question": f"Safe? {HOSTILE}"},
                "translations": {"es": {"text": f"Fuga {HOSTILE}"}},
            })
            for language in ("en", "es"):
                page = render(request, ChannelKind.EMAIL, language, settings).html
                escaped_everywhere(f"e-mail {mode} {language}", page)
                if language == "en":
                    assert page.count(ESCAPED) >= 6
                assert 'href="https://alerts.example.edu/?q=&#34;&gt;&lt;script&gt;' in page

    async def test_every_page(self, make_settings: SettingsFactory) -> None:
        """The alert page in both languages, the crime log, the Clery report with its crime
        statistics, and the answer page before and after the tap."""
        run = await start_service(make_settings(
            service={"institution": f"Example University {HOSTILE}"},
            incidents={"timezone": "America/New_York", "seed_example": False}))
        try:
            pages = await _pages(run)
        finally:
            await run.client.close()
        assert set(pages) == {"alerts en", "alerts es", "crime log", "report", "answer",
                              "answered", "answer refused"}
        assert not any("<script" in page.lower() for page in pages.values())
        # After the tap the page thanks the person or says why not, and quotes nothing typed.
        assert "You are marked safe" in pages.pop("answered")
        assert "already been used" in pages.pop("answer refused")
        for name, page in pages.items():
            escaped_everywhere(name, page)
        assert pages["report"].count(ESCAPED) >= 6


async def _pages(run: Running) -> dict[str, str]:
    """Every HTML page, after an alert, a drill, a crime and a request typed with HOSTILE."""
    client, service = run.client, run.service
    ids = []
    for body in (
        {"kind": "emergency", "audience": "group:dining", "channels": ["email"],
         "headline": HOSTILE, "text": f"Gas leak {HOSTILE}. Evacuate now.",
         "instruction": f"Leave {HOSTILE}",
         "confirmed_by": {"name": f"Dana {HOSTILE}", "title": HOSTILE},
         "delay_reason": f"Held {HOSTILE}"},
        {"kind": "emergency", "mode": "drill", "audience": "group:dining", "channels": ["email"],
         "text": f"Evacuation drill {HOSTILE}: leave by the nearest exit now.",
         "drill": {"description": f"Exercise {HOSTILE}", "announced": True,
                   "procedures_publicized": True},
         "ask": {"question": f"Are you safe? {HOSTILE}"}},
    ):
        resp = await run.post_alert(body)
        assert resp.status == 202, await resp.text()
        ids.append((await resp.json())["id"])
        await run.wait_state(ids[-1])
    noted = await client.post(f"/v1/alerts/{ids[1]}/notes", json={"text": f"Note {HOSTILE}"},
                              headers=AUTH)
    assert noted.status == 201, await noted.text()
    year = datetime.now(tz=UTC).year
    crime = await client.post("/v1/incidents", headers=AUTH, json={
        "reported_at": datetime.now(tz=UTC).isoformat(), "location": f"Lot C {HOSTILE}",
        "geography": "on_campus", "category": "burglary", "nature": f"Burglary {HOSTILE}"})
    assert crime.status == 201, await crime.text()
    asked = await client.post("/v1/crime-statistics/requests", headers=AUTH, json={
        "year": year, "requested_on": f"{year}-01-15", "agency": f"City police {HOSTILE}",
        "response": HOSTILE})
    assert asked.status == 201, await asked.text()
    expires = await service.db.fetchval("SELECT expires_at FROM alerts WHERE id = ?", (ids[1],))
    link = await service.responses.link_for("", ids[1], "P000001", int(expires))

    async def text(path: str, **kwargs: object) -> str:
        resp = await client.get(path, **kwargs)  # type: ignore[arg-type]
        assert resp.status == 200, path
        return await resp.text()

    pages = {
        "alerts en": await text("/public/?lang=en"),
        "alerts es": await text("/public/?lang=es"),
        "crime log": await text("/public/crime-log"),
        "report": await text(f"/v1/reports/clery?year={year}&format=html", headers=AUTH),
        "answer": await text(link),
    }
    tapped = await client.post(link, data={"option": "safe"})
    assert tapped.status == 200
    pages["answered"] = await tapped.text()
    again = await client.post(link, data={"option": "safe"}, headers={"Accept": "text/html"})
    assert again.status == 409
    pages["answer refused"] = await again.text()
    return pages
