"""Recording answers: one counts per person, later ones replace it and stay in the history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatcher.refusals import Invalid, NotFound
from tests.conftest import SettingsFactory
from tests.support import start_service


class TestRecordAnswer:
    """`service.responses.record_answer` from any channel."""

    async def test_latest_answer_counts_and_history_keeps_all(
        self, make_settings: SettingsFactory
    ) -> None:
        """A second answer replaces the first in the tally; both stay in the history."""
        run = await start_service(make_settings())
        try:
            service = run.service
            resp = await run.post_alert({"kind": "advisory", "text": "Test: water main break on "
                                         "Elm Street. Avoid the area.", "audience": "id:P000001"})
            assert resp.status == 202, await resp.text()
            alert_id = (await resp.json())["id"]
            await run.wait_state(alert_id)
            responses = service.responses
            with pytest.raises(NotFound):
                await responses.record_answer(alert_id=alert_id, person_id="P000001",
                                              option="safe", channel="sms")
            await responses.ask(alert_id=alert_id, texts={"en": "Are you safe?"},
                                options=["safe", "need_help"], escalate_after_s=0, max_rounds=0,
                                asked_at_ms=service.clock.now_ms(),
                                closes_at_ms=service.clock.now_ms() + 60_000)
            with pytest.raises(Invalid):
                await responses.record_answer(alert_id=alert_id, person_id="P000001",
                                              option="maybe", channel="sms")
            first = await responses.record_answer(alert_id=alert_id, person_id="P000001",
                                                  option="need_help", channel="sms")
            assert first.first and first.previous is None
            later = datetime.now(UTC)
            second = await responses.record_answer(alert_id=alert_id, person_id="P000001",
                                                   option="safe", channel="voice", at=later)
            assert not second.first and second.previous == "need_help"
            assert second.at == datetime.fromtimestamp(int(later.timestamp() * 1000) / 1000, UTC)
            counted = await responses.store.answer(alert_id, "P000001")
            assert counted is not None and (counted.option, counted.channel) == ("safe", "voice")
            history = await responses.store.history(alert_id, "P000001")
            assert [(h.option, h.channel) for h in history] == [
                ("need_help", "sms"), ("safe", "voice")
            ]
            assert await responses.store.answer_count(alert_id) == 1
            tally = await responses.tally(alert_id)
            assert (tally.total.safe, tally.total.need_help, tally.total.no_answer) == (1, 0, 0)
        finally:
            await run.client.close()
