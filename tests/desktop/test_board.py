"""What the desktop client decides to show, from the payloads the device bus publishes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from channels.devices import AckState
from dispatcher.desktop import AlertBoard, Window
from dispatcher.desktop.board import pop_up_from
from dispatcher.desktop.options import OptionsError, load_options


def now_ms() -> int:
    """The wall clock in milliseconds, as the client reads it."""
    return int(time.time() * 1000)


def active(alert_id: str = "A1", **fields: Any) -> bytes:
    """An active-alert payload as `desktop.mqtt` publishes it."""
    data: dict[str, Any] = {
        "identifier": alert_id, "kind": "emergency", "drill": False, "status": "Actual",
        "headline": "Gas leak", "text": "Evacuate North Hall now.",
        "expires_ms": now_ms() + 600_000,
        "desktop": {"title": "Gas leak", "text": "Evacuate North Hall now.", "banner": "",
                    "window": "full_screen"},
    }
    data.update(fields)
    return json.dumps(data).encode()


class TestPopUp:
    """A payload becomes a pop-up; a drill is never shown as real."""

    def test_live_alert_is_full_screen(self) -> None:
        """A live emergency opens full screen with its section's title and text."""
        popup = pop_up_from(active(), now_ms())
        assert popup is not None
        assert (popup.window, popup.title, popup.text) == (
            Window.FULL_SCREEN, "Gas leak", "Evacuate North Hall now.")

    def test_status_alone_makes_a_drill(self) -> None:
        """CAP Exercise without the flag or a banner still opens the marked drill window."""
        popup = pop_up_from(active(status="Exercise", desktop={}), now_ms())
        assert popup is not None and popup.drill
        assert popup.window is Window.MARKED
        assert popup.banner == "DRILL - THIS IS A TEST"

    def test_all_clear_is_a_notice(self) -> None:
        """An all clear opens the small notice, not a full-screen alarm."""
        popup = pop_up_from(active(kind="all_clear"), now_ms())
        assert popup is not None and popup.window is Window.NOTICE

    @pytest.mark.parametrize("payload", [b"{", b"[]", b'{"text": "x"}', b"null"])
    def test_malformed_is_ignored(self, payload: bytes) -> None:
        """Not an alert: nothing to show."""
        assert pop_up_from(payload, now_ms()) is None

    def test_expired_is_ignored(self) -> None:
        """An alert past its expiry is not shown."""
        assert pop_up_from(active(expires_ms=now_ms() - 1), now_ms()) is None


class TestBoard:
    """Shown once, acked as it goes, cleared by a withdrawal, a cancel or the button."""

    def test_new_alert_shows_and_acks_received(self) -> None:
        """The first sight of an alert shows it and acks received."""
        board = AlertBoard("a")
        change = board.on_active(active(), now_ms())
        assert change.show is not None and change.show.alert_id == "A1"
        assert change.acks == (("A1", AckState.RECEIVED),)

    def test_seen_again_repeats_acks_without_showing(self) -> None:
        """After a reconnect the retained copy only repeats the acks sent."""
        board = AlertBoard("a")
        board.on_active(active(), now_ms())
        board.displayed("A1")
        board.acknowledged("A1")
        again = board.on_active(active(), now_ms())
        assert again.show is None and not again.clear
        assert [s for _, s in again.acks] == [
            AckState.RECEIVED, AckState.DISPLAYED, AckState.ACKNOWLEDGED]

    def test_back_after_a_withdrawal_unacknowledged_shows_again(self) -> None:
        """Cleared while unacknowledged and back on the zone: shown again, acks repeated."""
        board = AlertBoard("a")
        board.on_active(active(), now_ms())
        board.on_active(b"", now_ms())
        back = board.on_active(active(), now_ms())
        assert back.show is not None and back.acks == (("A1", AckState.RECEIVED),)

    def test_empty_retained_clears(self) -> None:
        """The zone's retained alert deleted: the pop-up goes."""
        board = AlertBoard("a")
        board.on_active(active(), now_ms())
        assert board.on_active(b"", now_ms()).clear
        assert board.showing is None

    def test_cancel_event_clears_only_its_alert(self) -> None:
        """A cancel of another alert, or for another zone, leaves the pop-up."""
        board = AlertBoard("a")
        board.on_active(active(), now_ms())
        other = {"msgType": "Cancel", "identifier": "B9", "references": "B9", "zones": ["a"]}
        elsewhere = {"msgType": "Cancel", "identifier": "A1", "references": "A1", "zones": ["c"]}
        mine = {"msgType": "Cancel", "identifier": "A1", "references": "A1", "zones": ["a"]}
        assert board.on_event(json.dumps(other).encode()).nothing
        assert board.on_event(json.dumps(elsewhere).encode()).nothing
        assert board.on_event(json.dumps(mine).encode()).clear

    def test_button_acks_acknowledged(self) -> None:
        """Pressing the button clears the window and acks acknowledged."""
        board = AlertBoard("a")
        board.on_active(active(), now_ms())
        change = board.acknowledged("A1")
        assert change.clear and change.acks == (("A1", AckState.ACKNOWLEDGED),)

    def test_update_replaces_the_shown_alert(self) -> None:
        """An update (a new id that references the shown one) is shown in its place."""
        board = AlertBoard("a")
        board.on_active(active(), now_ms())
        change = board.on_active(active("A2", references="A1"), now_ms())
        assert change.show is not None and change.show.alert_id == "A2"


class TestOptions:
    """Options over the config's `desktop.mqtt` section."""

    def test_config_then_options(self, tmp_path: Path) -> None:
        """The config gives host and port; an option wins; the zone is a topic level."""
        config = tmp_path / "clarion.toml"
        config.write_text('[channels."desktop.mqtt"]\nhost = "broker.example"\nport = 1884\n'
                          'prefix = "campus/v1"\n', encoding="utf-8")
        options = load_options(config, port=1999, zone="B", device_id="desk/1")
        assert (options.host, options.port, options.prefix) == ("broker.example", 1999,
                                                                 "campus/v1")
        assert (options.zone, options.device_id) == ("b", "desk_1")
        ack = options.topics.ack("desktop", options.device_id)
        assert ack == "campus/v1/device/desktop/desk_1/ack"

    def test_bad_config_is_named(self, tmp_path: Path) -> None:
        """An unknown key in the section is refused with its name."""
        config = tmp_path / "clarion.toml"
        config.write_text('[channels."desktop.mqtt"]\nhots = "x"\n', encoding="utf-8")
        with pytest.raises(OptionsError, match="hots"):
            load_options(config)

    def test_default_device_id_is_the_host_name(self) -> None:
        """Without --device-id the host name is used."""
        assert load_options(None).device_id
