"""`clarion desktop`: the pop-up alert client (Tkinter), a device of class `desktop` over MQTT."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

from dispatcher.desktop.options import OptionsError, load_options
from dispatcher.observability import configure_logging

log = structlog.get_logger("clarion.desktop")


def register(sub: Any) -> None:
    """Add `clarion desktop`."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "desktop",
        help="the desktop pop-up client: shows the zone's alerts, acks them over MQTT",
        description=(
            "Connects to the broker as a device of class desktop, shows its zone's active "
            "alert full screen (a drill in a smaller marked window), rings, and sends "
            "received, displayed and acknowledged acks."
        ),
    )
    parser.add_argument("--config", type=Path,
                        help='Clarion TOML; broker settings from [channels."desktop.mqtt"]')
    parser.add_argument("--host", help="broker host (default 127.0.0.1 or the config's)")
    parser.add_argument("--port", type=int, help="broker port (default 8028 or the config's)")
    parser.add_argument("--prefix", help="topic prefix (default clarion/v1 or the config's)")
    parser.add_argument("--zone", help="the zone whose alerts it shows (default campus)")
    parser.add_argument("--device-id", help="its device id (default: the host name)")
    parser.add_argument("--speak", action="store_true",
                        help="also read the alert aloud with espeak-ng, when installed")
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(func=cmd_desktop)


def cmd_desktop(args: argparse.Namespace) -> int:
    """Run the client until its window is closed or it is signalled; 2 on bad options."""
    configure_logging(args.log_level)
    try:
        options = load_options(
            args.config, host=args.host, port=args.port, prefix=args.prefix, zone=args.zone,
            device_id=args.device_id, speak=args.speak,
        )
    except OptionsError as exc:
        print(f"clarion desktop: {exc}", file=sys.stderr)
        return 2
    # Imported here: `clarion` runs without Tk everywhere else.
    try:
        import tkinter as tk
    except ImportError:
        print("clarion desktop: Tkinter is not installed (Debian: python3-tk)", file=sys.stderr)
        return 2
    from dispatcher.desktop.link import AlertLink
    from dispatcher.desktop.window import DesktopApp

    try:
        root = tk.Tk(className="clarion-desktop")
    except tk.TclError as exc:
        print(f"clarion desktop: no display ({exc})", file=sys.stderr)
        return 2
    link = AlertLink(options)
    app = DesktopApp(root, link, options)
    # SIGTERM (a logout, a supervisor) closes it cleanly, saying offline first.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: app.stop())
    link.start()
    log.info("desktop.started", zone=options.zone, device_id=options.device_id,
             host=options.host, port=options.port)
    try:
        app.run()
    except KeyboardInterrupt:
        # Ctrl-C in the terminal that started it: close as a SIGTERM does.
        log.info("desktop.interrupted")
    finally:
        link.stop()
        root.destroy()
        log.info("desktop.stopped", device_id=options.device_id)
    return 0
