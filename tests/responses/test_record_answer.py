"""Recording answers: one counts per person, later ones replace it and stay in the history."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from dispatcher.answers.responses import ANSWER_GROUP
from dispatcher.refusals import Conflict, Invalid, NotFound
from dispatcher.store.responses import NewAnswer, StoredAnswer
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

    async def test_answers_arriving_together_share_commits(
        self, make_settings: SettingsFactory
    ) -> None:
        """Hundreds at once are written in groups, each caller answered with its own result: a
        person answering twice ends on the later, a link tapped twice counts once."""
        run = await start_service(make_settings())
        try:
            service = run.service
            resp = await run.post_alert({"kind": "advisory", "text": "Test: water main break on "
                                         "Elm Street. Avoid the area.", "audience": "id:P000001"})
            alert_id = (await resp.json())["id"]
            await run.wait_state(alert_id)
            responses = service.responses
            now = service.clock.now_ms()
            await responses.ask(alert_id=alert_id, texts={"en": "Are you safe?"},
                                options=["safe", "need_help"], escalate_after_s=0, max_rounds=0,
                                asked_at_ms=now, closes_at_ms=now + 60_000)
            groups: list[int] = []
            write = service.responses.store.record_many

            async def counted(answers: Sequence[NewAnswer]) -> list[StoredAnswer | None]:
                groups.append(len(answers))
                return await write(answers)

            # Observe the groups the writer makes (the store itself is real).
            service.responses._writer._write = counted
            token = await responses.token_for(alert_id, "P900000", now + 60_000)
            results = await asyncio.gather(
                *(responses.record_answer(alert_id=alert_id, person_id=f"Q{i:05d}",
                                          option="safe", channel="sms") for i in range(400)),
                responses.record_answer(alert_id=alert_id, person_id="Q00007",
                                        option="need_help", channel="push"),
                responses.answer_with_token(alert_id, token, "safe"),
                responses.answer_with_token(alert_id, token, "need_help"),
                return_exceptions=True,
            )
            refused = [r for r in results if isinstance(r, Exception)]
            assert len(refused) == 1 and isinstance(refused[0], Conflict), refused
            assert await responses.store.answer_count(alert_id) == 401
            assert sum(groups) == 403 and len(groups) < 403 and max(groups) <= ANSWER_GROUP
            counted_answer = await responses.store.answer(alert_id, "Q00007")
            assert counted_answer is not None and counted_answer.option == "need_help"
            history = await responses.store.history(alert_id, "Q00007")
            assert [h.option for h in history] == ["safe", "need_help"]
        finally:
            await run.client.close()

    async def test_recent_tally_is_counted_once_for_its_age(
        self, make_settings: SettingsFactory
    ) -> None:
        """Live views share one count while it is young enough; an older one is counted anew."""
        run = await start_service(make_settings())
        try:
            service = run.service
            resp = await run.post_alert({"kind": "advisory", "text": "Test: water main break on "
                                         "Elm Street. Avoid the area.", "audience": "id:P000001"})
            alert_id = (await resp.json())["id"]
            await run.wait_state(alert_id)
            responses = service.responses
            now = service.clock.now_ms()
            await responses.ask(alert_id=alert_id, texts={"en": "Are you safe?"},
                                options=["safe", "need_help"], escalate_after_s=0, max_rounds=0,
                                asked_at_ms=now, closes_at_ms=now + 60_000)
            await responses.record_answer(alert_id=alert_id, person_id="P000001",
                                          option="need_help", channel="sms")
            first = await responses.recent_tally(alert_id, 60)
            assert first.total.need_help == 1
            await responses.record_answer(alert_id=alert_id, person_id="P000001",
                                          option="safe", channel="sms")
            assert await responses.recent_tally(alert_id, 60) is first
            fresh = await responses.recent_tally(alert_id, 0)
            assert (fresh.total.safe, fresh.total.need_help) == (1, 0)
        finally:
            await run.client.close()
