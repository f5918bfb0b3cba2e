"""`clarion desktop`: a pop-up alert client for the desktops of a campus, over MQTT.

It is a device of class `desktop` (see `channels/devices`): a retained `online` on its
availability topic with a Last Will `offline`, its zone's retained active alert and the event
stream in, acks (`received`, `displayed`, `acknowledged`) out. The parts: `board` (what to
show, pure), `link` (the MQTT connection, on an asyncio loop in a thread of its own), `window`
(the Tk windows, on the main thread) and `options` (host, zone, device id and the config file).
"""

from __future__ import annotations

from dispatcher.desktop.board import AlertBoard, Change, PopUp, Window
from dispatcher.desktop.options import DesktopOptions

__all__ = ["AlertBoard", "Change", "DesktopOptions", "PopUp", "Window"]
