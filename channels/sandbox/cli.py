"""`clarion sandbox`: the provider stand-ins in their own process."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from importlib import import_module
from typing import Any

from channels.sandbox.server import Sandbox
from dispatcher.observability import configure_logging

# Each plugin has `add_arguments(parser)` and `async attach(sandbox, args)`.
PLUGINS: tuple[str, ...] = (
    "channels.sandbox.twilio", "channels.sandbox.telnyx", "channels.sandbox.push",
    "channels.sandbox.devices", "channels.sandbox.oidc", "channels.sandbox.feeds",
)


def register(sub: Any) -> None:
    """Add `clarion sandbox`."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "sandbox", help="run the local provider sandbox (SMTP, Twilio, Telnyx, push, devices, OIDC)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8026, help="HTTP port (GET /stats)")
    parser.add_argument("--smtp-port", type=int, default=8027)
    parser.add_argument("--arrival-times", action="store_true",
                        help="GET /stats also gives each kind's first_at and last_at")
    for name in PLUGINS:
        import_module(name).add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    configure_logging("info")
    asyncio.run(serve(args))
    return 0


async def serve(args: argparse.Namespace) -> None:
    """Start the sandbox and its plugins, print the endpoints, wait for a signal."""
    sandbox = Sandbox(host=args.host, port=args.port, smtp_port=args.smtp_port,
                      arrival_times=args.arrival_times)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # A plugin may have started a child (the devices' mosquitto) before a later step
        # fails, a port in use say: stopping undoes whatever was started.
        for name in PLUGINS:
            await import_module(name).attach(sandbox, args)
        await sandbox.start()
        print(json.dumps({"sandbox": sandbox.endpoints}), flush=True)
        await stop.wait()
    finally:
        await sandbox.stop()
