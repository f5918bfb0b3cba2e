"""The Tk side of `clarion desktop`: a small status window, and the pop-up of an alert."""

from __future__ import annotations

import queue
import shutil
import subprocess
import time
import tkinter as tk

import structlog

from dispatcher.desktop.board import AlertBoard, Change, PopUp, Window
from dispatcher.desktop.link import ActiveAlert, AlertEvent, AlertLink, Connected
from dispatcher.desktop.options import DesktopOptions

log = structlog.get_logger("clarion.desktop")

POLL_MS = 100
# A live alert rings again until someone acknowledges it; a drill rings once.
RING_EVERY_MS = 4000
RINGS = 3
MARKED_SIZE = (760, 440)
NOTICE_SIZE = (620, 300)

_LIVE_BG, _LIVE_FG = "#b3261e", "#ffffff"
_DRILL_BG, _DRILL_FG = "#ffd400", "#000000"
_CLEAR_BG, _CLEAR_FG = "#0f7b3c", "#ffffff"
_KIND_WORDS = {"emergency": "EMERGENCY ALERT", "timely_warning": "TIMELY WARNING",
               "advisory": "ADVISORY", "all_clear": "ALL CLEAR"}


def connection_word(up: bool) -> str:
    """How the window titles say whether the client hears the broker."""
    return "connected" if up else "not connected"


def kind_word(popup: PopUp) -> str:
    """What the window calls the alert: EMERGENCY ALERT, TIMELY WARNING, ALL CLEAR..."""
    if popup.window is Window.NOTICE:
        return "ALL CLEAR"
    return _KIND_WORDS.get(popup.kind, "ALERT")


class DesktopApp:
    """The client's windows, driven by the link's news on Tk's own loop."""

    def __init__(self, root: tk.Tk, link: AlertLink, options: DesktopOptions) -> None:
        self.root = root
        self.link = link
        self.options = options
        self.board = AlertBoard(options.zone)
        self.connected = False
        self.popup: tk.Toplevel | None = None
        self.shown: PopUp | None = None
        self._ring_job: str | None = None
        self._stopped = False
        root.geometry("420x110")
        root.configure(padx=12, pady=12)
        self.status = tk.Label(root, justify="left", anchor="w", font=("TkDefaultFont", 11))
        self.status.pack(fill="both", expand=True)
        root.protocol("WM_DELETE_WINDOW", self.stop)
        self._retitle()

    def run(self) -> None:
        """Poll the link and run Tk until stopped."""
        self.root.after(POLL_MS, self._poll)
        self.root.mainloop()

    def stop(self) -> None:
        """Close the windows (the link says offline after)."""
        if not self._stopped:
            self._stopped = True
            self.root.quit()

    # --- news ---------------------------------------------------------------------------------

    def _poll(self) -> None:
        while True:
            try:
                news = self.link.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(news, Connected):
                if news.up != self.connected:
                    self.connected = news.up
                    self._retitle()
            elif isinstance(news, ActiveAlert):
                self._apply(self.board.on_active(news.payload, int(time.time() * 1000)))
            elif isinstance(news, AlertEvent):
                self._apply(self.board.on_event(news.payload))
        if self.shown is not None and self.shown.expires_ms and (
                self.shown.expires_ms <= time.time() * 1000):
            log.info("desktop.alert_expired", alert_id=self.shown.alert_id)
            self._close_popup()
        if not self._stopped:
            self.root.after(POLL_MS, self._poll)

    def _apply(self, change: Change) -> None:
        for alert_id, state in change.acks:
            self.link.send_ack(alert_id, state)
        if change.clear and self.shown is not None:
            log.info("desktop.alert_cleared", alert_id=self.shown.alert_id)
            self._close_popup()
        if change.show is not None:
            self._open_popup(change.show)

    # --- the pop-up ---------------------------------------------------------------------------

    def _open_popup(self, popup: PopUp) -> None:
        self._close_popup()
        self.shown = popup
        win = tk.Toplevel(self.root)
        self.popup = win
        colours = {
            Window.FULL_SCREEN: (_LIVE_BG, _LIVE_FG),
            Window.MARKED: (_DRILL_BG, _DRILL_FG),
            Window.NOTICE: (_CLEAR_BG, _CLEAR_FG),
        }[popup.window]
        bg, fg = colours
        win.configure(bg=bg, padx=24, pady=24)
        win.attributes("-topmost", True)
        if popup.window is Window.FULL_SCREEN:
            width, height = win.winfo_screenwidth(), win.winfo_screenheight()
            win.geometry(f"{width}x{height}+0+0")
            # Without a window manager (a kiosk, a test display) the geometry alone fills it.
            win.attributes("-fullscreen", True)
            big, normal = 44, 24
        else:
            width, height = MARKED_SIZE if popup.window is Window.MARKED else NOTICE_SIZE
            x = max((win.winfo_screenwidth() - width) // 2, 0)
            y = max((win.winfo_screenheight() - height) // 3, 0)
            win.geometry(f"{width}x{height}+{x}+{y}")
            big, normal = 22, 13
        win.protocol("WM_DELETE_WINDOW", lambda: None)  # only the button closes it
        wrap = max(width - 80, 200)
        if popup.banner:
            tk.Label(win, text=popup.banner, bg="#000000", fg=_DRILL_BG,
                     font=("TkDefaultFont", normal, "bold"), pady=6).pack(fill="x")
        else:
            tk.Label(win, text=kind_word(popup), bg=fg, fg=bg,
                     font=("TkDefaultFont", normal, "bold"), pady=6).pack(fill="x")
        heading = popup.title or ("ALL CLEAR" if popup.window is Window.NOTICE else "ALERT")
        tk.Label(win, text=heading, bg=bg, fg=fg, wraplength=wrap, justify="center",
                 font=("TkDefaultFont", big, "bold")).pack(pady=(12, 8))
        for part in (popup.text, popup.instruction, popup.description):
            if part and part != heading:
                tk.Label(win, text=part, bg=bg, fg=fg, wraplength=wrap, justify="center",
                         font=("TkDefaultFont", normal)).pack(pady=4)
        if popup.banner:
            tk.Label(win, text=popup.banner, bg="#000000", fg=_DRILL_BG,
                     font=("TkDefaultFont", normal, "bold"), pady=6).pack(fill="x", side="bottom")
        button = tk.Button(win, text="Acknowledge", font=("TkDefaultFont", normal, "bold"),
                           command=lambda: self._acknowledge(popup.alert_id), padx=20, pady=8)
        button.pack(pady=16, side="bottom")
        button.focus_set()
        # Keyboard users acknowledge with Return, as with the button's own space.
        win.bind("<Return>", lambda _event: self._acknowledge(popup.alert_id))
        self._retitle()
        win.lift()
        win.update_idletasks()
        win.after_idle(lambda: self._displayed(win, popup))
        self._ring(popup, RINGS if popup.window is Window.FULL_SCREEN else 1)
        self._speak(popup)

    def _displayed(self, win: tk.Toplevel, popup: PopUp) -> None:
        if self.popup is not win:
            return
        win.update()
        self._apply(self.board.displayed(popup.alert_id))
        log.info("desktop.alert_shown", alert_id=popup.alert_id, window=popup.window.value,
                 drill=popup.drill, width=win.winfo_width(), height=win.winfo_height())

    def _acknowledge(self, alert_id: str) -> None:
        log.info("desktop.alert_acknowledged", alert_id=alert_id)
        self._apply(self.board.acknowledged(alert_id))

    def _close_popup(self) -> None:
        if self._ring_job is not None:
            self.root.after_cancel(self._ring_job)
            self._ring_job = None
        if self.popup is not None:
            self.popup.destroy()
            self.popup = None
        self.shown = None
        self._retitle()

    def _ring(self, popup: PopUp, times: int) -> None:
        for i in range(times):
            self.root.after(i * 350, self.root.bell)
        if popup.window is Window.FULL_SCREEN:
            self._ring_job = self.root.after(RING_EVERY_MS, lambda: self._ring(popup, times))

    def _speak(self, popup: PopUp) -> None:
        if not self.options.speak:
            return
        espeak = shutil.which("espeak-ng")
        if espeak is None:
            log.warning("desktop.speech_unavailable", reason="espeak-ng is not installed")
            return
        words = " ".join(p for p in (popup.banner, popup.title, popup.text, popup.instruction)
                         if p)
        # Not waited for: the window must not freeze while it speaks.
        subprocess.Popen([espeak, "--", words],  # noqa: S603
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # --- titles -------------------------------------------------------------------------------

    def _retitle(self) -> None:
        word = connection_word(self.connected)
        self.root.title(f"Clarion desktop alerts - {word}")
        self.status.configure(text=(
            f"Clarion desktop alerts ({word})\n"
            f"zone {self.options.zone} - device {self.options.device_id}\n"
            f"broker {self.options.host}:{self.options.port}"
        ))
        if self.popup is not None and self.shown is not None:
            shown = self.shown
            what = shown.banner if shown.drill else kind_word(shown)
            self.popup.title(f"{what}: {shown.title} - Clarion ({word})")
