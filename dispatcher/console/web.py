"""The operator console at /console/: server-rendered pages, enhanced by htmx where it helps.

Signed-in people only (a session cookie, not the API's bearer tokens); every state change
carries the session's CSRF token; every page is served with a strict Content-Security-Policy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from multidict import MultiDict

from dispatcher.access.auth import Role
from dispatcher.access.client_address import client_address
from dispatcher.alerting.request import DrillRecord
from dispatcher.console import actions
from dispatcher.console.accounts import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    SESSION_S,
    Accounts,
    Person,
    SignedIn,
    SignInRefusal,
    csrf_ok,
    name_problem,
)
from dispatcher.console.compose import (
    CHANNEL_LABELS,
    CUSTOM,
    KIND_LABELS,
    MODE_LABELS,
    ComposeForm,
    FieldProblem,
    Preview,
    build_preview,
    default_channels,
    field_for,
    templates_for,
)
from dispatcher.console.oidc import OidcClient, SsoError, SsoFailure
from dispatcher.console.zonemap import draw
from dispatcher.domain import AlertKind, ChannelKind, Mode
from dispatcher.edge import SERVICE, EventWriter, read_form
from dispatcher.incidents.statistics import section_html
from dispatcher.places import campus_places
from dispatcher.public.snapshot import in_force
from dispatcher.records import render_html, report_csv
from dispatcher.service import Service
from dispatcher.store.alerts import AlertRecord
from dispatcher.store.approvals import ApprovalState
from dispatcher.store.users import ConsoleReads
from dispatcher.views.progress import Progress

log = structlog.get_logger("clarion.console")

PREFIX = "/console/"
FIRST_PASSWORD_ENV = "CLARION_CONSOLE_PASSWORD"  # noqa: S105 - a variable name
HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# How often a viewer looks at its alert's shared progress (in memory: the alert's progress
# stream reads the store once per change for every viewer).
LOOK_EVERY_S = 0.5
# Where signing in again leads after a session expired while composing.
DRAFT_RESTORE = "/console/compose?draft=restore"
# Posted fields a draft does not keep: the session's token and the button pressed.
NOT_DRAFTED = frozenset({CSRF_FIELD, "action", "rewrite"})
# The compose form's addresses: what they post is a draft worth carrying through sign-in.
DRAFTED_PATHS = frozenset({"/console/compose", "/console/compose/preview", "/console/send"})
# A draft carried through the sign-in form is at most this long (its JSON).
DRAFT_MAX_CHARS = 64_000
SESSION_EXPIRED = "Your session expired: sign in again (your draft is kept)"
# Runs of each drill its page lists.
RECENT_RUNS = 5
PROGRESS_STATES = ("queued", "accepted", "delivered", "failed", "suppressed")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Console:
    """What the console keeps beside the service."""

    accounts: Accounts
    reads: ConsoleReads
    places: frozenset[str]
    secure_cookies: bool
    zone: ZoneInfo
    sso: OidcClient | None = None


CONSOLE: web.AppKey[Console] = web.AppKey("console")
PERSON: web.RequestKey[Person] = web.RequestKey("person")


def _client_address(request: web.Request) -> str:
    """The client's address: X-Forwarded-For only from a proxy the config trusts."""
    return client_address(request.remote, request.headers.get("X-Forwarded-For"),
                          _service(request).settings.service.trusted_proxies)


def install(app: web.Application, service: Service) -> None:
    """Add the console's routes, templates, static files and headers to the application."""
    public_url = service.settings.service.public_url or ""
    app[CONSOLE] = Console(
        accounts=service.accounts,
        reads=service.console_reads,
        places=campus_places(service.settings),
        secure_cookies=public_url.startswith("https://"),
        zone=ZoneInfo(service.settings.drills.timezone),
        sso=service.sso,
    )
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = lambda ms: _when(app[CONSOLE].zone, ms)
    env.filters["number"] = lambda n: f"{int(n or 0):,}"
    env.filters["zone_names"] = lambda ids: ", ".join(
        service.audience.zones[z].name if z in service.audience.zones else z for z in ids
    )
    env.globals.update(
        KIND_LABELS=KIND_LABELS, MODE_LABELS=MODE_LABELS, CHANNEL_LABELS=CHANNEL_LABELS,
        CSRF_FIELD=CSRF_FIELD, CSRF_HEADER=CSRF_HEADER, CUSTOM=CUSTOM,
        institution=service.settings.service.institution, role_label=role_label,
        static=lambda name: str(
            app.router["console-static"].url_for(filename=name)
        ),
    )
    app.router.add_static("/console/static/", HERE / "static", append_version=True,
                          name="console-static")
    app.add_routes(routes)
    app.on_response_prepare.append(_headers)
    app.on_startup.append(_first_admin)


async def _first_admin(app: web.Application) -> None:
    """With no users yet, create the admin user and print its password once."""
    password = await app[CONSOLE].accounts.ensure_first_admin(os.environ.get(FIRST_PASSWORD_ENV))
    if password is not None:
        print(f"Console user (created, shown once): admin / {password}", flush=True)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    if not request.path.startswith(PREFIX) and request.path != "/console":
        return
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if not request.path.startswith("/console/static/"):
        response.headers["Cache-Control"] = "no-store"


def _when(zone: ZoneInfo, ms: int | None) -> str:
    if ms is None:
        return "not yet"
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S %Z")


routes = web.RouteTableDef()


def _service(request: web.Request) -> Service:
    return request.app[SERVICE]


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def _safe_next(raw: str | None) -> str:
    """Only a path inside the console: never an open redirect."""
    if not raw:
        return PREFIX
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX):
        return PREFIX
    return raw


def signed_in(handler: Handler) -> Handler:
    """Pages for signed-in people; state changes also need the session's CSRF token."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        person = await _console(request).accounts.person(request.cookies.get(SESSION_COOKIE))
        if person is None:
            if request.headers.get("HX-Request"):
                # The live preview stays on the page (what was typed stays in the form); the
                # draft saved with the last preview comes back after signing in.
                return _render(request, "_expired.html", {"next": DRAFT_RESTORE})
            if request.method == "POST" and request.path in DRAFTED_PATHS:
                # A form sent after the session ended: signing in again keeps what it held.
                return _render_sign_in(request, {
                    "name": "", "next": DRAFT_RESTORE,
                    "draft": _draft_of(await read_form(request)),
                    "errors": [FieldProblem("name", SESSION_EXPIRED)],
                }, status=401)
            target = quote(request.path_qs, safe="")
            raise web.HTTPSeeOther(f"/console/sign-in?next={target}")
        request[PERSON] = person
        if request.method not in ("GET", "HEAD"):
            form = await read_form(request)
            presented = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
            if not csrf_ok(person, presented if isinstance(presented, str) else None):
                log.warning("console.csrf_refused", actor=person.user.name, path=request.path)
                return _render(request, "error.html", {
                    "title": "This form has expired",
                    "message": "Go back, reload the page and try again.",
                }, status=403)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _render(request, "error.html", {
                "title": "Page not found",
                "message": "There is nothing at this address. It may have been mistyped.",
            }, status=404)

    guarded.__doc__ = handler.__doc__
    return guarded


def _render(
    request: web.Request, name: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    person = request.get(PERSON)
    base: dict[str, Any] = {
        "person": person,
        "csrf": person.session.csrf if person else "",
        "path": request.path,
        "drill_mode": False,
        "errors": [],
        "sso_label": "",
        "sso_error": "",
        "may_manage_tokens": person is not None
        and _service(request).permissions.may_manage_tokens(person.caller),
    }
    return aiohttp_jinja2.render_template(name, request, {**base, **context}, status=status)


# -- signing in and out -------------------------------------------------------------------------


@routes.get("/console")
async def bare(request: web.Request) -> web.StreamResponse:
    """The console's address without its slash."""
    raise web.HTTPPermanentRedirect(PREFIX)


@routes.get("/console/sign-in")
async def sign_in_page(request: web.Request) -> web.Response:
    """The sign-in form (with the campus SSO button when it is enabled)."""
    return _render_sign_in(request, {"name": "", "next": _safe_next(request.query.get("next"))})


def _render_sign_in(
    request: web.Request, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    sso = _console(request).sso
    label = sso.settings.button_label if sso is not None else ""
    return _render(request, "sign_in.html",
                   {"title": "Sign in", "sso_label": label, "draft": "", **context},
                   status=status)


@routes.post("/console/sign-in")
async def sign_in(request: web.Request) -> web.StreamResponse:
    """Check the name and password, set the session cookie."""
    form = await read_form(request)
    name = str(form.get("name", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    errors: list[FieldProblem] = []
    if not name:
        errors.append(FieldProblem("name", "Enter your user name"))
    if not password:
        errors.append(FieldProblem("password", "Enter your password"))
    if not errors:
        address = _client_address(request)
        outcome = await _console(request).accounts.sign_in(name, password, address)
        if isinstance(outcome, SignedIn):
            carried = _carried_draft(form.get("draft"))
            if carried is not None:
                await _console(request).accounts.users.save_draft(
                    outcome.user.name, carried, _service(request).clock.now_ms())
                target = DRAFT_RESTORE
            response = web.HTTPSeeOther(target)
            response.set_cookie(
                SESSION_COOKIE, outcome.token, max_age=SESSION_S, path=PREFIX, httponly=True,
                samesite="Strict", secure=_console(request).secure_cookies,
            )
            log.info("console.signed_in", actor=outcome.user.name, role=outcome.user.role)
            raise response
        if outcome.refusal is SignInRefusal.THROTTLED:
            minutes = max(1, round(outcome.wait_s / 60))
            errors.append(FieldProblem(
                "name", f"Too many failed sign-ins. Try again in {minutes} minutes."))
        else:
            errors.append(FieldProblem("password", "The user name or password is not right"))
    return _render_sign_in(request, {"name": name, "next": target, "errors": errors,
                                      "draft": str(form.get("draft", ""))[:DRAFT_MAX_CHARS]},
                           status=429 if any("Too many" in e.message for e in errors) else 422)


# -- campus single sign-on (OpenID Connect) -----------------------------------------------------

SSO_COOKIE = "clarion_sso"
SSO_PATH = "/console/sso/"
SSO_MESSAGES = {
    SsoFailure.UNAVAILABLE: "Campus sign-in is not available right now. "
    "Sign in with your Clarion user name and password instead.",
    SsoFailure.EXPIRED: "That campus sign-in took too long or was already used. Try again.",
    SsoFailure.PROVIDER_REFUSED: "The campus sign-in did not complete. Try again, or sign in "
    "with your Clarion user name and password.",
    SsoFailure.INVALID_ID_TOKEN: "The campus sign-in could not be verified. Try again, or sign "
    "in with your Clarion user name and password.",
    SsoFailure.NO_NAME: "Your campus account did not give a user name or e-mail address.",
}


def _sso_failed(request: web.Request, failure: SsoFailure, detail: str) -> web.Response:
    log.warning("console.sso_failed", reason=failure.value, detail=detail)
    status = 503 if failure is SsoFailure.UNAVAILABLE else 400
    response = _render_sign_in(request, {
        "name": "", "next": PREFIX, "sso_error": SSO_MESSAGES[failure]}, status=status)
    response.del_cookie(SSO_COOKIE, path=SSO_PATH)
    return response


def _sso_refused(request: web.Request, message: str) -> web.Response:
    return _render(request, "error.html", {
        "title": "You cannot use Clarion with this account", "message": message,
    }, status=403)


@routes.get("/console/sso/start")
async def sso_start(request: web.Request) -> web.StreamResponse:
    """Send the browser to the campus identity provider."""
    sso = _console(request).sso
    if sso is None:
        raise web.HTTPNotFound()
    try:
        url, pending = await sso.begin(_safe_next(request.query.get("next")))
    except SsoError as exc:
        return _sso_failed(request, exc.failure, str(exc))
    response = web.HTTPSeeOther(url)
    # Lax, not Strict: the provider sends the browser back with a cross-site redirect. The
    # cookie ties the returning `state` to this browser (no signing in someone else's code).
    response.set_cookie(SSO_COOKIE, pending.state, max_age=int(sso.PENDING_S), path=SSO_PATH,
                        httponly=True, samesite="Lax", secure=_console(request).secure_cookies)
    raise response


@routes.get("/console/sso/callback")
async def sso_callback(request: web.Request) -> web.StreamResponse:
    """Back from the identity provider: check the code's ID token, open a session."""
    console = _console(request)
    sso = console.sso
    if sso is None:
        raise web.HTTPNotFound()
    state = request.query.get("state", "")
    try:
        if not state or request.cookies.get(SSO_COOKIE) != state:
            raise SsoError(SsoFailure.EXPIRED, "state does not match this browser's")
        pending = sso.claim_pending(state)
        if "error" in request.query:
            raise SsoError(SsoFailure.PROVIDER_REFUSED,
                           f"provider error {request.query['error'][:64]}")
        identity = await sso.finish(request.query.get("code", ""), pending)
    except SsoError as exc:
        return _sso_failed(request, exc.failure, str(exc))
    address = _client_address(request)
    if identity.role is None:
        log.warning("console.sso_refused", reason="no_role")
        await console.accounts.record(identity.name, "console.sign_in_failed", {
            "address": address, "method": "sso", "reason": "no_role"})
        return _sso_refused(request, (
            "Your campus account is not in any group that may use Clarion. If you should have "
            "access, ask a Clarion administrator to add your group."))
    problem = name_problem(identity.name, _service(request).auth.configured_names)
    if problem is None and await console.accounts.users.token_named(identity.name):
        problem = f"{identity.name!r} is an API token's name"
    if problem is not None:
        log.warning("console.sso_refused", reason="name")
        return _sso_refused(request,
                            f"Your campus user name cannot be used in Clarion: {problem}.")
    outcome = await console.accounts.sign_in_sso(identity.name, identity.full_name,
                                                 identity.role, address)
    if not isinstance(outcome, SignedIn):
        log.warning("console.sso_refused", reason=outcome.refusal.value)
        message = (
            "A Clarion account with a password already has this name, so it cannot also be "
            "used through campus sign-in. Sign in with its password, or ask an administrator."
            if outcome.refusal is SignInRefusal.LOCAL_ACCOUNT
            else "This account is disabled. Ask a Clarion administrator."
        )
        return _sso_refused(request, message)
    log.info("console.signed_in", actor=outcome.user.name, role=outcome.user.role, method="sso")
    # A page rather than a redirect: the browser arrived here from another site, and it keeps
    # the SameSite=Strict session cookie off a redirect chain that began there.
    response = _render(request, "signed_in.html", {
        "title": "Signed in", "next": pending.next_path})
    response.set_cookie(
        SESSION_COOKIE, outcome.token, max_age=SESSION_S, path=PREFIX, httponly=True,
        samesite="Strict", secure=console.secure_cookies,
    )
    response.del_cookie(SSO_COOKIE, path=SSO_PATH)
    return response


@routes.post("/console/sign-out")
@signed_in
async def sign_out(request: web.Request) -> web.StreamResponse:
    """End the session."""
    await _console(request).accounts.sign_out(request[PERSON])
    response = web.HTTPSeeOther("/console/sign-in")
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    raise response


# -- alerts: the front page, following one, cancelling ------------------------------------------


@routes.get("/console/")
@signed_in
async def home(request: web.Request) -> web.Response:
    """Active alerts, and what waits for approval."""
    service = _service(request)
    now = service.clock.now_ms()
    records = await service.alerts.active(now)
    oldest = min((r.created_at for r in records), default=now)
    # The public page's rule: neither an alert an update replaced nor one an all clear ended.
    state = in_force(records, await service.alerts.supersessions_since(oldest), now)
    shown = [*state.active, *([state.all_clear] if state.all_clear is not None else [])]
    rows = [(a, reached(await service.ledger.counts(a.id))) for a in shown]
    pending = await actions.pending_approvals(service, limit=20)
    caller = request[PERSON].caller
    waiting = [r for r in await actions.pending_approvals(service)
               if service.permissions.may_approve(caller, r.requester, r.request.audience)]
    return _render(request, "home.html", {
        "title": "Active alerts", "active": rows, "pending": pending, "waiting": len(waiting),
        "senders": await _full_names(
            request, [*(a.created_by for a in shown), *(r.requested_by for r in pending)]),
    })


def reached(counts: dict[str, dict[str, int]]) -> tuple[int, int]:
    """Deliveries that arrived (e-mail and push once accepted), of those to make."""
    done = sum(
        c.get("delivered", 0) + (c.get("accepted", 0) if kind in ("email", "push") else 0)
        for kind, c in counts.items()
    )
    return done, sum(c.get("total", 0) for c in counts.values())


async def _alert(service: Service, alert_id: str) -> AlertRecord:
    record = await service.alerts.get(alert_id)
    if record is None:
        raise web.HTTPNotFound(text="no such alert")
    return record


async def _read_progress(service: Service, alert_id: str) -> Progress:
    progress = await service.progress.read(alert_id)
    if progress is None:
        raise web.HTTPNotFound(text="no such alert")
    return progress


def _progress(request: web.Request, progress: Progress) -> dict[str, Any]:
    """What the progress table shows: the alert's shared progress, and what this viewer may
    open."""
    record = progress.record
    answers = progress.answers
    return {"doc": progress.status.to_json(), "timing": progress.timing.to_json(),
            "failures": [f.to_json() for f in progress.failures], "record": record,
            "states": PROGRESS_STATES,
            "answers": answers if answers is not None and answers.asked else None,
            "may_see_need_help": _service(request).permissions.may_see_need_help(
                request[PERSON].caller, record.request.audience)}


@routes.get("/console/alerts/{id}")
@signed_in
async def follow(request: web.Request) -> web.Response:
    """One alert: live progress per channel, failures, offline devices, and what to do next."""
    service = _service(request)
    progress = await _read_progress(service, request.match_info["id"])
    record = progress.record
    caller = request[PERSON].caller
    notes = await service.records.notes(record.id)
    trail = [
        {"seq": r["seq"], "at": r["at"], "actor": r["actor"], "action": r["action"],
         "detail": json.loads(r["detail"])}
        for r in await _console(request).reads.audit_trail(record.id)
    ]
    return _render(request, "alert.html", {
        "title": f"{KIND_LABELS[record.kind.value]} {record.id}",
        "record": record, **_progress(request, progress),
        "may_act": actions.may_act_on(service, record, caller),
        "notes": notes, "trail": trail,
        "drill_mode": record.mode is not Mode.LIVE,
        "text": _alert_text(record),
        "message": request.query.get("message", ""),
        "senders": await _full_names(request, [record.created_by]),
    })


@routes.get("/console/alerts/{id}/need-help")
@signed_in
async def need_help(request: web.Request) -> web.Response:
    """Who answered that they need help, with building and contacts (allowed roles; audited)."""
    service = _service(request)
    record = await _alert(service, request.match_info["id"])
    caller = request[PERSON].caller
    if not service.permissions.may_see_need_help(caller, record.request.audience):
        return _forbidden(request, "Your role may see the answer counts but not who needs help.")
    people = await service.responses.need_help(record.id, actor=caller.name)
    return _render(request, "need_help.html", {
        "title": f"Need help: alert {record.id}", "record": record, "people": people,
    })


# What the alert's page shows where each person's own answer link goes at delivery.
ANSWER_LINK_SHOWN = "[personal answer link]"


def _alert_text(record: AlertRecord) -> str:
    for kind in (ChannelKind.PUSH, ChannelKind.SIGNAGE, ChannelKind.EMAIL, ChannelKind.SMS):
        by_language = record.rendered.get(kind)
        if by_language:
            return next(iter(by_language.values())).with_link(ANSWER_LINK_SHOWN).text
    return record.request.text or ""


async def _full_names(request: web.Request, names: Iterable[str]) -> dict[str, str]:
    """Each sender's full name when they are a console user with one (else the name)."""
    wanted = set(names)
    users = await _console(request).accounts.users.all()
    return {u.name: u.full_name for u in users if u.name in wanted and u.full_name}


@routes.get("/console/alerts/{id}/cap")
@signed_in
async def alert_cap(request: web.Request) -> web.Response:
    """The alert's CAP 1.2 document, as the feed publishes it."""
    service = _service(request)
    record = await _alert(service, request.match_info["id"])
    return web.Response(body=await service.cap.document(record),
                        content_type="application/xml", charset="utf-8")


@routes.get("/console/alerts/{id}/progress")
@signed_in
async def progress_fragment(request: web.Request) -> web.Response:
    """The progress table alone (what the event stream and the refresh swap in)."""
    progress = await _read_progress(_service(request), request.match_info["id"])
    return _render(request, "_progress.html", _progress(request, progress))


@routes.get("/console/alerts/{id}/events")
@signed_in
async def progress_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the progress table as HTML whenever it changes, then `done`."""
    service = _service(request)
    record = await _alert(service, request.match_info["id"])
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    env = aiohttp_jinja2.get_env(request.app)
    template = env.get_template("_progress.html")
    stream = EventWriter(request, response)
    async with service.progress.watch(record.id) as watch:
        progress = await watch.first()
        shown: tuple[Progress | None, str] = (None, "")
        while progress is not None:
            if progress is not shown[0]:
                # Rendered once per progress read, not once per look.
                shown = (progress, template.render(
                    **_progress(request, progress), person=request[PERSON], csrf=""))
            await stream.changed("progress", shown[1])
            if progress.final:
                state = progress.record.state.value
                await stream.event(state, state)
                break
            await stream.wait(LOOK_EVERY_S)
            progress = watch.latest
    await response.write_eof()
    return response


@routes.get("/console/alerts/{id}/cancel")
@signed_in
async def cancel_page(request: web.Request) -> web.Response:
    """Ask once before cancelling."""
    service = _service(request)
    record = await _alert(service, request.match_info["id"])
    if not actions.may_act_on(service, record, request[PERSON].caller):
        return _forbidden(request, "Your role may not cancel this alert.")
    return _render(request, "cancel.html", {
        "title": "Cancel this alert?", "record": record,
        "drill_mode": record.mode is not Mode.LIVE, "text": _alert_text(record),
    })


@routes.post("/console/alerts/{id}/cancel")
@signed_in
async def cancel(request: web.Request) -> web.StreamResponse:
    """Cancel the alert: queued deliveries stop, devices take it down."""
    service = _service(request)
    record = await _alert(service, request.match_info["id"])
    form = await read_form(request)
    outcome = await actions.cancel(
        service, record, request[PERSON].caller, str(form.get("reason", "")).strip()
    )
    if isinstance(outcome, actions.Refused):
        return _forbidden(request, outcome.message)
    raise web.HTTPSeeOther(
        f"/console/alerts/{record.id}?message=" + quote(f"Cancelled: {outcome} deliveries stopped")
    )


@routes.post("/console/alerts/{id}/notes")
@signed_in
async def add_note(request: web.Request) -> web.StreamResponse:
    """Add a follow-up note to the alert's record."""
    service = _service(request)
    record = await _alert(service, request.match_info["id"])
    form = await read_form(request)
    refused = await actions.add_note(
        service, record, request[PERSON].caller, str(form.get("text", ""))
    )
    if refused is not None:
        if refused.forbidden:
            return _forbidden(request, refused.message)
        raise web.HTTPSeeOther(f"/console/alerts/{record.id}?message=" + quote(refused.message))
    raise web.HTTPSeeOther(f"/console/alerts/{record.id}?message=" + quote("Note added"))


def _forbidden(request: web.Request, message: str) -> web.Response:
    return _render(request, "error.html", {
        "title": "You cannot do this", "message": message,
    }, status=403)


# -- compose and send ---------------------------------------------------------------------------


def _may_override(service: Service, person: Person) -> bool:
    return service.permissions.may_override(person.caller)


async def _default_form(service: Service, query: Any) -> ComposeForm:
    kind = query.get("kind", AlertKind.EMERGENCY.value)
    if kind not in KIND_LABELS:
        kind = AlertKind.EMERGENCY.value
    mode = query.get("mode", Mode.LIVE.value)
    if mode not in MODE_LABELS:
        mode = Mode.LIVE.value
    references = query.get("references", "")
    follows = await service.alerts.get(references) if references else None
    if follows is not None:
        return ComposeForm.following(follows, kind, mode, service.settings.directory.segments,
                                     templates_for(service))
    # A draft handed over by another page (an incident's timely warning).
    fields = {k.removeprefix("field."): str(v) for k, v in query.items()
              if k.startswith("field.")}
    return ComposeForm(kind=kind, mode=mode, channels=default_channels(service, kind),
                       references=references, defaults_of=kind,
                       template=query.get("template", ""), fields=fields,
                       text=query.get("text", ""), incident=query.get("incident", ""))


def _posted_form(request: web.Request, posted: Any) -> ComposeForm:
    service = _service(request)
    return ComposeForm.from_post(posted, lambda kind: default_channels(service, kind))


async def _compose_context(
    request: web.Request, form: ComposeForm, preview: Preview | None
) -> dict[str, Any]:
    service = _service(request)
    person = request[PERSON]
    chosen_template = next(
        (t for t in templates_for(service) if t.name == form.template), None
    )
    template_fields: list[tuple[str, str]] = []
    if chosen_template is not None:
        for name, hint in chosen_template.fields.items():
            template_fields.append((name, hint))
            if f"{name}_es" in chosen_template.sample:
                template_fields.append((f"{name}_es", f"{name} in Spanish"))
    references = await service.alerts.get(form.references) if form.references else None
    return {
        "form": form,
        "preview": preview,
        "templates": templates_for(service),
        "template_fields": template_fields,
        # Values each language's text shows in its own words (the rest is typed freely).
        "template_choices": {
            name: [labels["en"] for labels in options.values() if "en" in labels]
            for name, options in (chosen_template.choices if chosen_template else {}).items()
        },
        "segments": sorted(service.settings.directory.segments),
        "zones": draw(service.audience.zones, form.zones),
        "zone_list": sorted(service.audience.zones.values(), key=lambda z: z.id),
        "configured": [c.value for c in ChannelKind if c in service.engine.channels],
        "may_override": _may_override(service, person),
        "may_send_live": service.permissions.may_send(person.caller, Mode.LIVE),
        "drill_mode": form.is_drill,
        "default_question": service.settings.rendering.ask_question,
        "restored": False,
        "draft": None,
        "references": references,
        "errors": list(preview.problems) if preview else [],
    }


@routes.get("/console/compose")
@signed_in
async def compose_page(request: web.Request) -> web.Response:
    """The compose form, empty (or set up to update or clear an alert)."""
    service = _service(request)
    person = request[PERSON]
    if not service.permissions.may_send(person.caller, Mode.DRILL):
        return _forbidden(request, "Your role (viewer) may look at alerts but not send them.")
    form = await _default_form(service, request.query)
    users = _console(request).accounts.users
    draft = await users.draft(person.user.name)
    restored = False
    if draft is not None and request.query.get("draft") == "restore":
        form, restored, draft = _posted_form(request, MultiDict(draft.fields)), True, None
    if form.mode == Mode.LIVE.value and not service.permissions.may_send(
            person.caller, Mode.LIVE):
        form = replace(form, mode=Mode.DRILL.value)
    preview = await _preview(request, form) if restored else None
    context = await _compose_context(request, form, preview)
    context["errors"] = []
    return _render(request, "compose.html", {"title": "Send an alert", **context,
                                             "restored": restored, "draft": draft})


def _draft_pairs(posted: Any) -> list[tuple[str, str]]:
    return [(k, v) for k, v in posted.items() if isinstance(v, str) and k not in NOT_DRAFTED]


def _draft_of(posted: Any) -> str:
    """The posted compose form as the sign-in page carries it."""
    return json.dumps(_draft_pairs(posted))[:DRAFT_MAX_CHARS]


def _carried_draft(raw: object) -> list[tuple[str, str]] | None:
    """The draft the sign-in form carried back, or None when there is none (or it is not one
    this console wrote)."""
    if not isinstance(raw, str) or not raw or len(raw) > DRAFT_MAX_CHARS:
        return None
    try:
        pairs = json.loads(raw)
    except ValueError:
        log.info("console.draft_unreadable")
        return None
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
        for p in pairs
    ):
        return None
    return [(k, v) for k, v in pairs if k not in NOT_DRAFTED]


async def _keep_draft(request: web.Request, posted: Any) -> None:
    """Save the compose form as the signed-in person's draft."""
    await _console(request).accounts.users.save_draft(
        request[PERSON].user.name, _draft_pairs(posted), _service(request).clock.now_ms())


@routes.post("/console/compose/draft/discard")
@signed_in
async def discard_draft(request: web.Request) -> web.StreamResponse:
    """Forget the kept draft and start an empty form."""
    await _console(request).accounts.users.drop_draft(request[PERSON].user.name)
    raise web.HTTPSeeOther("/console/compose")


async def _preview(request: web.Request, form: ComposeForm) -> Preview:
    service = _service(request)
    person = request[PERSON]
    return await build_preview(service, form, person.caller)


@routes.post("/console/compose/preview")
@signed_in
async def compose_preview(request: web.Request) -> web.Response:
    """The preview panel alone, for htmx as the dispatcher types (which also keeps the
    draft)."""
    posted = await read_form(request)
    await _keep_draft(request, posted)
    form = _posted_form(request, posted)
    preview = await _preview(request, form)
    context = await _compose_context(request, form, preview)
    return _render(request, "_preview.html", {**context, "oob": True})


@routes.post("/console/compose")
@signed_in
async def compose_check(request: web.Request) -> web.Response:
    """Check the form: back with errors, or on to the one confirmation."""
    person = request[PERSON]
    if not _service(request).permissions.may_send(person.caller, Mode.DRILL):
        return _forbidden(request, "Your role (viewer) may look at alerts but not send them.")
    posted = await read_form(request)
    await _keep_draft(request, posted)
    form = _posted_form(request, posted)
    preview = await _preview(request, form)
    choice = posted.get("rewrite")
    if isinstance(choice, str) and choice:
        rewritten = preview.rewritten(choice)
        if rewritten is not None:
            form = rewritten
            preview = await _preview(request, form)
    context = await _compose_context(request, form, preview)
    if posted.get("action") != "review":
        # "Use this template" or "Update the preview" without JavaScript: no errors yet.
        context["errors"] = []
        return _render(request, "compose.html", {"title": "Send an alert", **context})
    if not preview.sendable:
        context["errors"] = _errors_of(preview)
        return _render(request, "compose.html", {"title": "Send an alert", **context},
                       status=422)
    return _render(request, "confirm.html", {"title": "Check and send", **context})


def _errors_of(preview: Preview) -> list[FieldProblem]:
    """The error summary: form problems, then each policy error, linked to the message."""
    policy = [
        FieldProblem("text-es" if v.get("field") == "translations.es.text" else "text",
                     str(v["message"]))
        for v in preview.blocking
    ]
    return [*preview.problems, *policy]


@routes.post("/console/send")
@signed_in
async def send(request: web.Request) -> web.StreamResponse:
    """Send the confirmed alert as the signed-in person."""
    service = _service(request)
    person = request[PERSON]
    if not service.permissions.may_send(person.caller, Mode.DRILL):
        return _forbidden(request, "Your role (viewer) may look at alerts but not send them.")
    form = _posted_form(request, await read_form(request))
    preview = await _preview(request, form)
    if preview.request is None or not preview.sendable:
        context = await _compose_context(request, form, preview)
        context["errors"] = _errors_of(preview)
        return _render(request, "compose.html", {"title": "Send an alert", **context},
                       status=422)
    submitted = await actions.submit(
        service, preview.request, person.caller, key=f"console:{person.user.name}:{form.key}")
    if not isinstance(submitted, actions.Refused):
        await _console(request).accounts.users.drop_draft(person.user.name)
    outcome = _refusal_or_open(submitted)
    if outcome.forbidden:
        return _forbidden(request, outcome.message)
    problems = [FieldProblem("text", v["message"]) for v in outcome.violations] + [
        FieldProblem(field_for(form, str(p.get("field", "text"))), p.get("message", ""))
        for p in outcome.problems
    ] or [FieldProblem("text", outcome.message)]
    context = await _compose_context(request, form, preview)
    context["errors"] = problems
    return _render(request, "compose.html", {"title": "Send an alert", **context}, status=422)


# -- approvals ----------------------------------------------------------------------------------


@routes.get("/console/approvals")
@signed_in
async def approvals(request: web.Request) -> web.Response:
    """Alerts waiting for a second person."""
    service = _service(request)
    pending = await actions.pending_approvals(service)
    return _render(request, "approvals.html", {"title": "Waiting for approval",
                                               "pending": pending})


@routes.get("/console/approvals/{id}")
@signed_in
async def approval(request: web.Request) -> web.Response:
    """One held alert: what it says, who asked, approve or reject."""
    service = _service(request)
    record = await actions.approval(service, request.match_info["id"])
    if record is None:
        raise web.HTTPNotFound(text="no such approval request")
    person = request[PERSON]
    state = record.state_at(service.clock.now_ms())
    return _render(request, "approval.html", {
        "title": "Approve this alert?", "record": record, "state": state.value,
        "pending": state is ApprovalState.PENDING,
        "may_approve": service.permissions.may_approve(
            person.caller, record.requester, record.request.audience
        ),
        "is_requester": person.caller.person == record.requester.person,
        "drill_mode": record.request.mode is not Mode.LIVE,
        "message": request.query.get("message", ""),
        "channels": actions.held_channels(service, record.request),
    })


def _refusal_or_open(outcome: actions.Sent | actions.Held | actions.Refused) -> actions.Refused:
    """After an action: an alert that went out opens its page, a held one its approval; a
    refusal is handed back for the page to explain."""
    if isinstance(outcome, actions.Sent):
        raise web.HTTPSeeOther(f"/console/alerts/{outcome.alert_id}")
    if isinstance(outcome, actions.Held):
        raise web.HTTPSeeOther(f"/console/approvals/{outcome.approval_id}")
    return outcome


@routes.post("/console/approvals/{id}/approve")
@signed_in
async def approve(request: web.Request) -> web.StreamResponse:
    """Approve as the second person: the alert goes out."""
    outcome = await actions.approve(_service(request), request.match_info["id"],
                                    request[PERSON].caller)
    return _forbidden(request, _refusal_or_open(outcome).message)


@routes.post("/console/approvals/{id}/reject")
@signed_in
async def reject(request: web.Request) -> web.StreamResponse:
    """Refuse (or withdraw) a held alert."""
    form = await read_form(request)
    refused = await actions.reject(_service(request), request.match_info["id"],
                                   request[PERSON].caller, str(form.get("reason", "")).strip())
    if refused is not None:
        return _forbidden(request, refused.message)
    raise web.HTTPSeeOther(
        f"/console/approvals/{request.match_info['id']}?message=" + quote("Rejected")
    )


# -- upstream feed proposals -------------------------------------------------------------------


@routes.get("/console/feeds")
@signed_in
async def feeds(request: web.Request) -> web.Response:
    """Draft alerts from the upstream feeds, and the latest relay decisions."""
    service = _service(request)
    return _render(request, "feeds.html", {
        "title": "Upstream alerts",
        "proposals": await actions.feed_proposals(service),
        "decisions": await actions.feed_decisions(service),
        "message": request.query.get("message", ""),
    })


@routes.get("/console/feeds/{id}")
@signed_in
async def feed_proposal(request: web.Request) -> web.Response:
    """One proposal: the draft, the upstream document, send or dismiss."""
    proposal = await actions.feed_proposal(_service(request), request.match_info["id"])
    if proposal is None:
        raise web.HTTPNotFound(text="no such proposal")
    return _render(request, "feed_proposal.html", {
        "title": f"Send this {proposal.event}?", "proposal": proposal,
        "pending": proposal.state.value == "pending",
    })


@routes.post("/console/feeds/{id}/send")
@signed_in
async def send_feed_proposal(request: web.Request) -> web.StreamResponse:
    """One click: the proposal goes out as the signed-in person's alert."""
    outcome = await actions.send_feed_proposal(_service(request), request.match_info["id"],
                                               request[PERSON].caller)
    if isinstance(outcome, actions.Sent):
        raise web.HTTPSeeOther(f"/console/alerts/{outcome.alert_id}")
    if isinstance(outcome, actions.Held):
        raise web.HTTPSeeOther(f"/console/approvals/{outcome.approval_id}")
    return _forbidden(request, outcome.message)


@routes.post("/console/feeds/{id}/dismiss")
@signed_in
async def dismiss_feed_proposal(request: web.Request) -> web.StreamResponse:
    """Decide not to send a proposal."""
    refused = await actions.dismiss_feed_proposal(_service(request), request.match_info["id"],
                                                  request[PERSON].caller)
    if refused is not None:
        return _forbidden(request, refused.message)
    raise web.HTTPSeeOther("/console/feeds?message=" + quote("Dismissed"))


# -- devices, drills, history, reports ----------------------------------------------------------


@routes.get("/console/devices")
@signed_in
async def devices(request: web.Request) -> web.Response:
    """Sirens, signs and speakers, and whether they are online."""
    service = _service(request)
    items = [d.to_json() for d in await service.devices.devices()]
    return _render(request, "devices.html", {"title": "Devices", "devices": items,
                                             "connected": service.devices.configured})


@routes.get("/console/drills")
@signed_in
async def drills(request: web.Request) -> web.Response:
    """Scheduled drills with their next times."""
    return await _drills_page(request)


async def _drills_page(
    request: web.Request, *, errors: list[FieldProblem] | None = None,
    entered: dict[str, Any] | None = None, status: int = 200,
) -> web.Response:
    """The drills, each with its Clery record to run it with (as entered, after an error)."""
    schedule = await _service(request).drills.schedule(recent=RECENT_RUNS)
    listed = []
    for d in (d.to_json() for d in schedule.drills):
        if entered is not None and entered["name"] == d["name"]:
            d = {**d, "description": entered["description"],
                 "announced": entered["announced"] == "yes",
                 "procedures_publicized": entered["procedures_publicized"] == "yes"}
        listed.append(d)
    return _render(request, "drills.html", {
        "title": "Drills", "drills": listed,
        "may_run": _service(request).permissions.may_send(request[PERSON].caller, Mode.DRILL),
        "timezone": schedule.timezone, "errors": errors or [],
        "message": request.query.get("message", ""),
    }, status=status)


@routes.post("/console/drills/{name}/run")
@signed_in
async def run_drill(request: web.Request) -> web.StreamResponse:
    """Fire a drill now, with the Clery record the form gives (the configured one by default)."""
    service = _service(request)
    name = request.match_info["name"]
    form = await read_form(request)
    described = str(form.get("description", "")).strip()
    announced, publicized = form.get("announced"), form.get("procedures_publicized")
    errors: list[FieldProblem] = []
    if not described:
        errors.append(FieldProblem(f"{name}-description", "Enter what the drill exercises"))
    elif len(described) > 2000:
        errors.append(FieldProblem(f"{name}-description",
                                   "The description must be 2,000 characters or fewer"))
    if announced not in ("yes", "no"):
        errors.append(FieldProblem(f"{name}-announced",
                                   "Select whether the drill was announced beforehand"))
    if publicized not in ("yes", "no"):
        errors.append(FieldProblem(
            f"{name}-publicized",
            "Select whether the emergency procedures were publicized with the drill"))
    if errors:
        return await _drills_page(request, errors=errors, entered={
            "name": name, "description": described, "announced": announced,
            "procedures_publicized": publicized}, status=422)
    record = DrillRecord(description=described, announced=announced == "yes",
                         procedures_publicized=publicized == "yes")
    outcome = _refusal_or_open(await actions.run_drill(
        service, name, request[PERSON].caller, record))
    if outcome.forbidden:
        return _forbidden(request, outcome.message)
    raise web.HTTPSeeOther("/console/drills?message=" + quote(outcome.message))


@routes.get("/console/tokens")
@signed_in
async def tokens(request: web.Request) -> web.Response:
    """API tokens: whose, which role, until when; revoke one (administrators only)."""
    listed = await actions.api_tokens(_service(request), request[PERSON].caller)
    if isinstance(listed, actions.Refused):
        return _forbidden(request, listed.message)
    return _render(request, "tokens.html", {
        "title": "API tokens", "tokens": listed, "message": request.query.get("message", ""),
    })


@routes.post("/console/tokens/{name}/revoke")
@signed_in
async def revoke_token(request: web.Request) -> web.StreamResponse:
    """Revoke a token: every node refuses it from its next request."""
    name = request.match_info["name"]
    refused = await actions.revoke_token(_service(request), name, request[PERSON].caller)
    if refused is not None:
        if refused.forbidden:
            return _forbidden(request, refused.message)
        raise web.HTTPSeeOther("/console/tokens?message=" + quote(refused.message))
    raise web.HTTPSeeOther("/console/tokens?message=" + quote(f"Token {name} revoked"))


@routes.get("/console/history")
@signed_in
async def history(request: web.Request) -> web.Response:
    """Every alert, newest first."""
    service = _service(request)
    ids = await _console(request).reads.recent_alert_ids(200)
    records = [r for r in [await service.alerts.get(i) for i in ids] if r is not None]
    return _render(request, "history.html", {
        "title": "Alert history", "records": records,
        "senders": await _full_names(request, [r.created_by for r in records]),
    })


@routes.get("/console/reports")
@signed_in
async def reports(request: web.Request) -> web.Response:
    """The Clery report: pick a year, read it or download it."""
    service = _service(request)
    this_year = datetime.now(_console(request).zone).year
    try:
        year = int(request.query.get("year", this_year))
    except ValueError:
        year = this_year
    year = min(max(year, 1990), 9999)
    report = await service.records.report(year, now_ms=service.clock.now_ms())
    return _render(request, "reports.html", {
        "title": f"Clery report {year}", "year": year, "summary": report.summary(),
        "years": list(range(this_year, this_year - 8, -1)),
    })


@routes.get("/console/reports/clery-{year:\\d{4}}.{fmt:(csv|html)}")
@signed_in
async def report_download(request: web.Request) -> web.Response:
    """The year's Clery report as a CSV or HTML file."""
    service = _service(request)
    year = int(request.match_info["year"])
    report = await service.records.report(year, now_ms=service.clock.now_ms())
    # The crime part too (statistics, timely-warning decisions), as the API and CLI write it.
    crimes = await service.incidents.report_section(year)
    if request.match_info["fmt"] == "csv":
        return web.Response(
            text=report_csv(report, crimes), content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="clery-{year}.csv"'},
        )
    return web.Response(
        text=render_html(report).replace("</body>", section_html(crimes) + "</body>", 1),
        content_type="text/html",
        headers={"Content-Disposition": f'attachment; filename="clery-{year}.html"'},
    )


def role_label(role: str) -> str:
    """A role in plain words."""
    return {
        Role.ADMIN.value: "administrator",
        Role.DISPATCHER.value: "dispatcher",
        Role.DRILL.value: "drills and tests only",
        Role.VIEWER.value: "viewer, read only",
    }.get(role, role)
