"""Operator commands: `serve`, `run`, `send`, `status`, `audit verify`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiohttp import web

from dispatcher.api.app import build_app, server_options
from dispatcher.console.accounts import generate_password
from dispatcher.console.web import FIRST_PASSWORD_ENV
from dispatcher.observability import configure_logging
from dispatcher.service import Service
from dispatcher.settings import TOKEN_ENV, Settings, settings_or_exit
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database

DEFAULT_URL = "http://127.0.0.1:8025"
# Where `clarion run` keeps the API token it prints, beside the store of the embedded config.
RUN_TOKEN_FILE = Path("var") / "api-token"


def register(sub: Any) -> None:
    """Add the service and operator commands."""
    serve = sub.add_parser("serve", help="run the dispatch service")
    serve.add_argument("--config", type=Path, help="TOML config (default: the embedded example)")
    serve.add_argument("--host", help="listen address (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default from config: 8025)")
    serve.set_defaults(func=cmd_serve)

    run = sub.add_parser("run", help="run the sandbox and the service together (make run)")
    run.add_argument("--config", type=Path)
    run.set_defaults(func=cmd_run)

    send = sub.add_parser("send", help="send an alert to a running service and follow it")
    send.add_argument("text", nargs="?", help="the message (or --file)")
    send.add_argument("--file", type=Path, help="a JSON alert request ('-' for stdin)")
    send.add_argument(
        "--kind",
        default="emergency",
        choices=["emergency", "timely_warning", "advisory", "all_clear"],
    )
    send.add_argument("--mode", default="live", choices=["live", "drill", "test"])
    send.add_argument("--audience", default=None,
                      help="a segment expression (default: everyone; a follow-up: its alert's)")
    send.add_argument("--channels", help="comma-separated: sms,email,push,siren,signage,pa,desktop"
                      " (default: the kind's, [dispatch] default_channels)")
    send.add_argument("--references", metavar="ID",
                      help="the alert this one follows (an update or all clear): its audience, "
                      "zones, channels and confirmation are inherited")
    send.add_argument("--widen", action="store_true",
                      help="let a follow-up reach people the alert it follows did not")
    send.add_argument("--allow-empty-audience", action="store_true",
                      help="send even when the audience resolves to no one")
    send.add_argument("--no-wait", action="store_true", help="return after the 202")
    _client_args(send)
    send.set_defaults(func=cmd_send)

    status = sub.add_parser("status", help="show an alert's state and delivery counts")
    status.add_argument("id")
    _client_args(status)
    status.set_defaults(func=cmd_status)

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the audit log's hash chain")
    verify.add_argument("--config", type=Path)
    verify.set_defaults(func=cmd_audit_verify)


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("CLARION_URL", DEFAULT_URL))
    parser.add_argument("--token", default=None, help=f"API token (default ${TOKEN_ENV})")




def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API and the engine until SIGINT or SIGTERM."""
    settings = settings_or_exit(args.config)
    configure_logging(settings.logging.level, json_lines=settings.logging.json_lines)
    host = args.host or settings.service.host
    port = args.port if args.port is not None else settings.service.port
    try:
        if settings.service.uvloop:
            # The same asyncio API on libuv: less CPU per request and per socket event.
            uvloop.run(_serve(settings, host, port))
        else:
            asyncio.run(_serve(settings, host, port))
    except OSError as exc:
        print(f"clarion: cannot serve on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


async def _serve(settings: Settings, host: str, port: int) -> None:
    service = await Service.open(settings)
    app = build_app(service)
    # Open event streams must not hold a SIGTERM past the engine's own drain time.
    shutdown_s = min(5.0, settings.dispatch.shutdown_grace_s)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=shutdown_s, **server_options(service))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    if service.auth.generated:
        print(f"API token (generated, shown once): {service.auth.generated}", flush=True)
    print(json.dumps({"clarion": f"http://{host}:{port}"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def cmd_run(args: argparse.Namespace) -> int:
    """Start `clarion sandbox` and `clarion serve`, print how to send a first alert."""
    # SIGTERM (from a supervisor or `timeout`) must stop the children too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    token = run_token()
    # The console's first admin, if the store has no users yet, gets this password.
    first_password = os.environ.get(FIRST_PASSWORD_ENV) or generate_password()
    env = {**os.environ, TOKEN_ENV: token, FIRST_PASSWORD_ENV: first_password}
    exe = [sys.executable, "-m", "dispatcher.cli"]
    serve_cmd = [*exe, "serve", *(["--config", str(args.config)] if args.config else [])]
    # Both children are this interpreter running Clarion itself.
    # The sandbox's upstream feeds carry a tornado warning and a flood watch to relay, and
    # simulated people answer an alert's question: 80 % by SMS and half of those with push by
    # tapping its link, within 20 s, 5 % needing help.
    sandbox_cmd = [*exe, "sandbox", "--feed-demo", "--answer-rate", "0.8", "--answer-delay", "20",
                   "--push-click-rate", "0.5", "--push-click-delay", "20"]
    procs: list[subprocess.Popen[Any]] = [subprocess.Popen(sandbox_cmd, env=env)]  # noqa: S603
    try:
        if not _wait_http("http://127.0.0.1:8026/stats", 30):
            print("clarion: the sandbox did not start (is port 8026 free?)", file=sys.stderr)
            return 1
        serve = subprocess.Popen(  # noqa: S603
            serve_cmd, env=env, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        procs.append(serve)
        listening = threading.Event()
        created: list[bool] = []
        threading.Thread(
            target=_relay, args=(serve, listening, created), daemon=True
        ).start()
        if not _wait_http(f"{DEFAULT_URL}/healthz", 60):
            print("clarion: the service did not start (is port 8025 free?)", file=sys.stderr)
            return 1
        listening.wait(5)
        if created:
            console_user = f"admin / {first_password}   (created now; shown once)"
        else:
            console_user = "your console users (`clarion user add NAME` to add one)"
        body = json.dumps(
            {
                "kind": "emergency",
                "text": "Gas leak at the Chemistry Building. Evacuate now and avoid the area.",
                "audience": "all",
            }
        )
        print(
            "\nClarion is running.\n"
            f"  console  {DEFAULT_URL}/console/\n"
            f"  sign in  {console_user}\n"
            f"  API      {DEFAULT_URL}   (OpenAPI: {DEFAULT_URL}/openapi.json)\n"
            f"  public   {DEFAULT_URL}/public/   (the public alert page, no sign-in)\n"
            f"  feed     {DEFAULT_URL}/public/alerts.json\n"
            f"  banner   {DEFAULT_URL}/public/demo   (a campus page with the website banner)\n"
            "  sandbox  http://127.0.0.1:8026/stats\n"
            f"  feeds    {DEFAULT_URL}/console/feeds   (the sandbox NWS tornado warning is sent,\n"
            "           its county flood watch waits there as a proposal)\n"
            f"  token    {token}   (kept in {RUN_TOKEN_FILE}: the same at every start)\n\n"
            "Send a first alert:\n"
            f"  curl -s -X POST {DEFAULT_URL}/v1/alerts -H 'Authorization: Bearer {token}' \\\n"
            f"       -H 'Content-Type: application/json' -d '{body}'\n\n"
            "Start a desktop pop-up client (the example campus's desktop in zone a):\n"
            f"  {sys.executable} -m dispatcher.cli desktop --zone a --device-id desk-north-hall\n"
            "  (or `.venv/bin/clarion desktop ...`; it needs a display and Tkinter)\n\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def run_token(path: Path = RUN_TOKEN_FILE) -> str:
    """The API token `clarion run` serves with: $CLARION_API_TOKEN when set, else the one kept in
    `path`, made the first time. A token exported after one start works after the next."""
    given = os.environ.get(TOKEN_ENV)
    if given:
        return given
    kept = _read_token(path)
    if kept:
        return kept
    path.parent.mkdir(parents=True, exist_ok=True)
    token = f"demo-{secrets.token_hex(16)}"
    try:
        # Only the owner reads it; O_EXCL: of two starts at once, the first one's token wins.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path) or token
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def _relay(proc: subprocess.Popen[str], listening: threading.Event, created: list[bool]) -> None:
    """Pass the service's output through; note its first console user and its address."""
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("Console user (created"):
            created.append(True)
        if line.startswith('{"clarion"'):
            listening.set()
    listening.set()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _wait_http(url: str, seconds: float) -> bool:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own http:// URLs
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


def _token(args: argparse.Namespace) -> str:
    token: str | None = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        print(f"clarion: give --token or set {TOKEN_ENV}", file=sys.stderr)
        raise SystemExit(2)
    return token


def cmd_send(args: argparse.Namespace) -> int:
    """POST the alert, then show a live progress bar per channel until it is done."""
    if args.file is not None:
        raw = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            print(f"clarion: {args.file} is not valid JSON: {exc}", file=sys.stderr)
            return 2
    elif args.text:
        body = {"kind": args.kind, "mode": args.mode, "text": args.text}
        if args.audience is not None:
            body["audience"] = args.audience
        if args.channels:
            body["channels"] = [c.strip() for c in args.channels.split(",") if c.strip()]
        if args.references:
            body["references"] = args.references
        for flag in ("widen", "allow_empty_audience"):
            if getattr(args, flag):
                body[flag] = True
    else:
        print("clarion: give the message text or --file", file=sys.stderr)
        return 2
    return asyncio.run(_send(args.url, _token(args), body, wait=not args.no_wait))


async def _accepted(
    http: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """POST to the service; the 202's reply, or None once the refusal or the network error is
    printed on stderr."""
    try:
        async with http.post(f"{url}{path}", json=body) as resp:
            reply: dict[str, Any] = await resp.json(content_type=None)
            if resp.status != 202:
                print(json.dumps(reply, indent=2), file=sys.stderr)
                return None
            return reply
    except aiohttp.ClientError as exc:
        print(f"clarion: cannot reach {url}: {exc}", file=sys.stderr)
        return None


async def _send(url: str, token: str, body: dict[str, Any], *, wait: bool) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        reply = await _accepted(http, url, "/v1/alerts", body)
        if reply is None:
            return 1
        if reply.get("approval_required"):
            print(f"held for approval: {reply['status_url']} (a second person must approve it)",
                  flush=True)
            return 0
        alert_id = reply["id"]
        print(f"alert {alert_id} accepted", flush=True)
        if not wait:
            return 0
        return await _follow(http, url, alert_id)


async def _follow(http: aiohttp.ClientSession, url: str, alert_id: str) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bars: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    ) as progress:
        while True:
            async with http.get(f"{url}/v1/alerts/{alert_id}") as resp:
                status = await resp.json()
            for kind, counts in sorted(status.get("channels", {}).items()):
                done, total, detail = channel_progress(counts)
                if kind not in bars:
                    bars[kind] = progress.add_task(kind, total=total, detail=detail)
                progress.update(bars[kind], total=total, completed=done, detail=detail)
            if status["state"] != "dispatching":
                break
            await asyncio.sleep(0.5)
    print(f"alert {alert_id} {status['state']}")
    return 0


def channel_progress(counts: dict[str, int]) -> tuple[int, int, str]:
    """One channel's bar from its status counts: deliveries handed over (accepted, delivered
    or failed) of `total`, the deliveries to make. Both leave suppressed ones out (people
    whose preferences or missing address keep the channel from them); the detail names them."""
    done = sum(counts.get(k, 0) for k in ("accepted", "delivered", "failed"))
    detail = f"delivered {counts.get('delivered', 0)}  failed {counts.get('failed', 0)}"
    if counts.get("suppressed", 0):
        detail += f"  not reached {counts['suppressed']}"
    return done, counts.get("total", 0), detail


def cmd_status(args: argparse.Namespace) -> int:
    """Print an alert's status document."""

    async def fetch() -> int:
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {_token(args)}"}) as http,
            http.get(f"{args.url}/v1/alerts/{args.id}") as resp,
        ):
            print(json.dumps(await resp.json(content_type=None), indent=2))
            return 0 if resp.status == 200 else 1

    return asyncio.run(fetch())


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the audit chain; exit 1 at the first entry that was changed."""
    settings = settings_or_exit(args.config)
    configure_logging("warning", json_lines=settings.logging.json_lines)

    async def verify() -> int:
        db = await open_database(settings.store.url)
        try:
            check = await AuditLog(db).verify()
        finally:
            await db.close()
        if check.ok:
            print(f"audit chain intact: {check.entries} entries")
            return 0
        print(f"audit chain broken at entry {check.broken_at}: {check.reason}")
        return 1

    return asyncio.run(verify())
