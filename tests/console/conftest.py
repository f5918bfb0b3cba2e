"""Browser fixtures: the whole sandbox and a service on free ports, Debian's Chromium driven by
Playwright, console users of every role, and screenshots into $CLARION_SCREENSHOTS.

One service and one browser serve the whole console run (session scope) so that it stays
short; each test opens its own browser context, so cookies never leak between tests.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from channels.sandbox import cli as sandbox_cli
from channels.sandbox.broker import free_port
from channels.sandbox.server import Sandbox
from dispatcher.access.auth import Role
from dispatcher.settings import Settings, config_dir
from tests.pg import pg_cluster, pg_url
from tests.support import TOKEN, Running, own_config, push_at, start_service

# The throwaway PostgreSQL server, for the accounts tests on that dialect.
__all__ = ["pg_cluster", "pg_url"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
# axe-core, vendored once for every browser test (see tests/assets/README.md).
AXE = Path(__file__).resolve().parent.parent / "assets" / "axe.min.js"
PEOPLE = 400
APPROVAL_AT = 300  # live alerts to this many or more wait for a second person
APPROVERS = "approvers@example.edu"  # told by e-mail when an alert waits
ALL_CHANNELS = ("email.smtp", "sms.twilio", "push.apprise", "siren.mqtt", "signage.mqtt", "pa.mqtt")


@dataclass(frozen=True, slots=True)
class Account:
    """A console user the tests sign in as."""

    name: str
    password: str
    role: Role


ACCOUNTS = {
    "admin": Account("admin", "admin-password-0001", Role.ADMIN),
    "dana": Account("dana", "dispatcher-password-0002", Role.DISPATCHER),
    "drew": Account("drew", "drill-password-0003", Role.DRILL),
    "vic": Account("vic", "viewer-password-0004", Role.VIEWER),
}


@dataclass
class Console:
    """The running service, its sandbox and the console's address."""

    run: Running
    sandbox: Sandbox
    url: str

    async def stats(self) -> dict[str, Any]:
        """The sandbox's GET /stats."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.sandbox.url}/stats") as r:
            body: dict[str, Any] = await r.json()
            return body


def _small_campus(folder: Path, push_port: int) -> Path:
    """The first rows of the example campus, their push targets at this sandbox."""
    source = config_dir() / "campus" / "people.csv"
    with source.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    path = folder / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(rows[0])
        for row in rows[1 : PEOPLE + 1]:
            writer.writerow([push_at(c, f"http://127.0.0.1:{push_port}") for c in row])
    return path


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """Every channel against the whole sandbox, the console's users, all on free ports."""
    folder = tmp_path_factory.mktemp("console")
    parser = argparse.ArgumentParser()
    sandbox_cli.register(parser.add_subparsers())
    args = parser.parse_args(["sandbox", "--port", "0", "--smtp-port", "0",
                              "--mqtt-port", str(free_port()), "--sms-callback-delay", "0.01"])
    box = Sandbox(port=0, smtp_port=0)
    for name in sandbox_cli.PLUGINS:
        await import_module(name).attach(box, args)
    await box.start()
    port = free_port()
    raw = own_config(folder, port=port)
    raw["auth"] = {
        "token": TOKEN, "override_roles": ["admin"], "tokens": [],
        "approval": {"enabled": True, "min_audience": APPROVAL_AT,
                     "approver_roles": ["admin", "dispatcher"], "notify": [APPROVERS]},
    }
    raw["directory"]["people"] = str(_small_campus(folder, box.port))
    raw["channels"]["email.smtp"].update({"port": box.smtp.port, "security": "none"})
    raw["channels"]["sms.twilio"].update({
        "api_base_url": box.url,
        "senders": [{"number": "22395", "type": "short_code", "rate_per_second": 5000}],
    })
    for name in ("siren.mqtt", "signage.mqtt", "pa.mqtt"):
        raw["channels"][name].update({"port": args.mqtt_port, "ack_timeout_s": 5.0})
    raw["channels"] = {k: v for k, v in raw["channels"].items() if k in ALL_CHANNELS}
    raw["drills"]["schedule"]["monthly-siren-test"]["enabled"] = True
    raw["base_dir"] = config_dir()
    os.environ["CLARION_CONSOLE_PASSWORD"] = ACCOUNTS["admin"].password
    try:
        run = await start_service(Settings.model_validate(raw), port=port)
    finally:
        os.environ.pop("CLARION_CONSOLE_PASSWORD", None)
    from dispatcher.console.web import CONSOLE

    accounts = run.client.server.app[CONSOLE].accounts
    for account in ACCOUNTS.values():
        if account.name != "admin":
            await accounts.add_user(account.name, account.password, role=account.role,
                                    full_name=account.name.capitalize(), actor="tests")
    try:
        yield Console(run, box, f"http://127.0.0.1:{port}/console/")
    finally:
        await run.client.close()
        await box.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless."""
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $CLARION_SCREENSHOTS, or a temporary folder."""
    chosen = os.environ.get("CLARION_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies) at laptop size."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    await ctx.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext) -> Page:
    """A page in the fresh profile."""
    return await context.new_page()


async def sign_in(page: Page, console: Console, who: str) -> None:
    """Sign in through the form as one of ACCOUNTS."""
    account = ACCOUNTS[who]
    await page.goto(console.url)
    await page.get_by_label("User name").fill(account.name)
    await page.get_by_label("Password").fill(account.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(console.url)


async def shot(page: Page, folder: Path, name: str, *, full: bool = True) -> Path:
    """Save a screenshot of the page."""
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full)
    return path


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A and AA violations on the page as it stands."""
    await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate(
        """async () => await axe.run(document, {runOnly: {type: 'tag',
             values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"""
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]
