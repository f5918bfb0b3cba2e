"""`broadcast.apprise` posts to Slack, Teams and Discord as Apprise's plugins do, one receipt
per target, against local servers posing as the services' incoming webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import ValidationError

from channels.broadcast_apprise import AppriseBroadcast, BroadcastSettings
from dispatcher.domain import AlertKind, ChannelKind, Mode, Outcome
from tests.channels.conftest import RecordingSink
from tests.channels.contract.harness import Target, make_batch
from tests.channels.service_hooks import (
    DISCORD,
    DISCORD_URL,
    SLACK,
    SLACK_URL,
    TEAMS,
    TEAMS_URL,
    ServiceHooks,
)

# The proxy ends the tunnels' TLS with its own certificate, which the targets do not verify.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

TEXT = "Gas leak at North Hall. Evacuate the building now and stay clear of the area."


@pytest_asyncio.fixture
async def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ServiceHooks]:
    """The services behind the proxy, which every https request of this test goes through."""
    served = ServiceHooks(tmp_path)
    await served.start()
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, served.proxy_url)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield served
    await served.stop()


def settings(**extra: Any) -> BroadcastSettings:
    """The three targets, each taking emergencies and all clears."""
    raw: dict[str, Any] = {
        "timeout_s": 10.0,
        "targets": [
            {"name": "slack-alerts", "url": SLACK_URL, "kinds": ["emergency", "all_clear"]},
            {"name": "teams-ops", "url": TEAMS_URL, "kinds": ["emergency"]},
            {"name": "discord-campus", "url": DISCORD_URL, "kinds": ["emergency", "advisory"]},
        ],
        **extra,
    }
    return BroadcastSettings.model_validate(raw)


@pytest_asyncio.fixture
async def channel(hooks: ServiceHooks) -> AsyncIterator[AppriseBroadcast]:
    """The channel, started."""
    made = AppriseBroadcast(settings())
    await made.start(RecordingSink())
    yield made
    await made.close()


def targets(names: list[str]) -> list[Target]:
    """Deliveries as the resolver makes them: the target's name is recipient and address."""
    return [Target(name, name) for name in names]


class TestDestinations:
    """Each target takes the alert kinds its config names."""

    def test_by_kind(self) -> None:
        """An emergency goes to all three, an advisory to Discord only, a warning to none."""
        made = AppriseBroadcast(settings())
        assert made.destinations(AlertKind.EMERGENCY) == [
            "slack-alerts", "teams-ops", "discord-campus"
        ]
        assert made.destinations(AlertKind.ADVISORY) == ["discord-campus"]
        assert made.destinations(AlertKind.TIMELY_WARNING) == []

    def test_url_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A target's URL may come from the environment, like every credential."""
        monkeypatch.setenv("CLARION_SLACK_URL", SLACK_URL)
        made = BroadcastSettings.model_validate(
            {"targets": [{"name": "slack", "url_env": "CLARION_SLACK_URL"}]}
        )
        assert made.targets[0].url.get_secret_value() == SLACK_URL

    def test_names_unique(self) -> None:
        """Two targets of one name are refused: receipts are kept by name."""
        with pytest.raises(ValidationError, match="unique"):
            BroadcastSettings.model_validate(
                {"targets": [{"name": "a", "url": SLACK_URL}, {"name": "a", "url": DISCORD_URL}]}
            )

    def test_described_masked(self) -> None:
        """The settings as shown never carry a target's URL."""
        shown = repr(AppriseBroadcast(settings()).describe())
        assert "TIiajkdnlazkcOXrIdevi7FQ" not in shown and "slack-alerts" in shown


class TestWire:
    """What reaches each service is its plugin's own request, with the alert's text."""

    async def test_three_services_one_receipt_each(
        self, channel: AppriseBroadcast, hooks: ServiceHooks
    ) -> None:
        """Slack, Teams and Discord each get one post; each delivery one accepted receipt."""
        batch = make_batch(
            ChannelKind.BROADCAST, targets(["slack-alerts", "teams-ops", "discord-campus"]),
            text=TEXT,
        )
        receipts = await channel.send(batch)
        assert [r.outcome for r in receipts] == [Outcome.ACCEPTED] * 3
        assert [r.delivery_id for r in receipts] == [d.id for d in batch.deliveries]
        teams_plugin = "Power Automate / Workflows (for MSTeams)"
        assert {r.detail for r in receipts} == {"Slack", teams_plugin, "Discord"}
        assert sorted(hooks.tunnels) == sorted([
            "hooks.slack.com:443", "prod-00.westus.logic.azure.com:443", "discord.com:443"
        ])
        (slack,) = hooks.of(SLACK)
        assert slack.path == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
        assert TEXT in repr(slack.body)
        (discord,) = hooks.of(DISCORD)
        assert discord.path.startswith("/api/webhooks/417429632418316298/")
        assert TEXT in repr(discord.body)
        (teams,) = hooks.of(TEAMS)
        assert teams.host.startswith("prod-00.westus.logic.azure.com")
        assert teams.body["type"] == "message"
        assert TEXT in repr(teams.body["attachments"])

    async def test_drill_marked(self, channel: AppriseBroadcast, hooks: ServiceHooks) -> None:
        """A drill's post says so, on every service."""
        batch = make_batch(
            ChannelKind.BROADCAST, targets(["slack-alerts", "discord-campus"]), mode=Mode.DRILL,
        )
        receipts = await channel.send(batch)
        assert [r.outcome for r in receipts] == [Outcome.ACCEPTED] * 2
        for service in (SLACK, DISCORD):
            (posted,) = hooks.of(service)
            assert "[DRILL] THIS IS A TEST" in repr(posted.body), service

    async def test_live_not_marked(self, channel: AppriseBroadcast, hooks: ServiceHooks) -> None:
        """A live alert carries no drill words."""
        await channel.send(make_batch(ChannelKind.BROADCAST, targets(["slack-alerts"])))
        (posted,) = hooks.of(SLACK)
        assert "DRILL" not in repr(posted.body)


class TestFailures:
    """A service's failure is a receipt for its target only, and it is tried again."""

    async def test_one_service_down(self, channel: AppriseBroadcast, hooks: ServiceHooks) -> None:
        """Slack answering 503 makes its delivery a retry; Discord's is accepted."""
        hooks.fail(SLACK, 503)
        receipts = await channel.send(make_batch(
            ChannelKind.BROADCAST, targets(["slack-alerts", "discord-campus"])
        ))
        assert [r.outcome for r in receipts] == [Outcome.RETRY, Outcome.ACCEPTED]
        assert "TIiajkdnlazkcOXrIdevi7FQ" not in receipts[0].detail
        again = await channel.send(make_batch(
            ChannelKind.BROADCAST, targets(["slack-alerts"]), attempt=2
        ))
        assert [r.outcome for r in again] == [Outcome.ACCEPTED]
        assert len(hooks.of(SLACK)) == 2

    async def test_target_removed(self, channel: AppriseBroadcast, hooks: ServiceHooks) -> None:
        """A delivery queued for a target the config no longer has fails, and says why."""
        (receipt,) = await channel.send(make_batch(ChannelKind.BROADCAST, targets(["gone"])))
        assert receipt.outcome is Outcome.FAILED
        assert receipt.detail == "target no longer configured"
        assert hooks.posted == []
