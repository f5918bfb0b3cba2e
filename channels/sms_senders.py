"""What the SMS providers' channels share: one delivery's result, a batch sent over a pool of
senders (each worker takes the next delivery; after the provider refuses the credentials the
rest are not tried), and the whole-batch failures that a shared cause makes of the results."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from channels.errors import PermanentChannelError, TransientChannelError
from dispatcher.domain import Delivery, Outcome, Receipt

AUTH = "auth"
UNREACHABLE = "unreachable"

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class SmsResult:
    """One delivery's fate before it becomes a receipt; `cause` groups whole-batch failures."""

    outcome: Outcome
    detail: str = ""
    provider_ref: str = ""
    retry_after_s: float | None = None
    cause: str = ""
    opted_out: bool = False
    provider_fault: bool = False
    """The provider certainly sent nothing, for a reason of its own: another may send it."""

    def receipt(self, delivery: Delivery) -> Receipt:
        """The receipt this result makes for its delivery."""
        return Receipt(
            delivery.id, self.outcome, self.detail, self.provider_ref, self.retry_after_s,
            opted_out=self.opted_out, provider_fault=self.provider_fault,
        )


async def over_senders(
    deliveries: Sequence[Delivery],
    workers: Sequence[tuple[S, int]],
    send_one: Callable[[S, Delivery], Awaitable[SmsResult]],
    auth_failed: SmsResult,
) -> list[SmsResult]:
    """Each delivery's result, in delivery order, sent by `workers` (a sender and how many
    requests it makes at once). Once one result's cause is `AUTH`, the rest are not sent and
    get `auth_failed`: they would fail alike (spare the API and the account's reputation)."""
    results: list[SmsResult | None] = [None] * len(deliveries)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(deliveries)):
        queue.put_nowait(index)
    refused = asyncio.Event()

    async def work(sender: S) -> None:
        while True:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if refused.is_set():
                results[index] = auth_failed
                continue
            result = await send_one(sender, deliveries[index])
            results[index] = result
            if result.cause == AUTH:
                refused.set()

    async with asyncio.TaskGroup() as tasks:
        for sender, count in workers:
            for _ in range(count):
                tasks.create_task(work(sender))
    done = [r for r in results if r is not None]
    assert len(done) == len(results)
    return done


def raise_when_all_failed_alike(
    results: Sequence[SmsResult], *, provider: str, auth_detail: str
) -> None:
    """A batch whose every delivery failed for one shared cause is a whole-batch failure."""
    causes = {r.cause for r in results}
    if len(causes) != 1:
        return
    cause = causes.pop()
    if cause == AUTH:
        raise PermanentChannelError(auth_detail)
    if cause == UNREACHABLE:
        raise TransientChannelError(f"{provider} API unreachable")
