"""What the SMS providers' channels share: one delivery's result, a batch sent over a pool of
senders (each worker takes the next delivery; after the provider refuses the credentials the
rest are not tried), and the whole-batch failures that a shared cause makes of the results."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from channels.errors import PermanentChannelError, TransientChannelError
from channels.pacing import RightOfWay, UrgentLimiter
from dispatcher.domain import Delivery, Outcome, Receipt

AUTH = "auth"
UNREACHABLE = "unreachable"


@dataclass(slots=True)
class Sender:
    """A number with its own pace, or the provider's own pool of numbers (`pool`: a Twilio
    Messaging Service, a Telnyx messaging profile), which the provider paces itself."""

    from_: str
    pool: str
    limiter: UrgentLimiter | None
    workers: int


def paced_senders(
    pool: str, numbers: Sequence[tuple[str, float]], concurrency: int, way: RightOfWay
) -> list[Sender]:
    """The senders of a channel: its provider-side pool when it has one, else each number
    (and its rate) at its own pace. A slow number holds at most ~1 s of work, so fast ones
    take the rest."""
    if pool:
        return [Sender("", pool, None, concurrency)]
    return [
        Sender(number, "", UrgentLimiter(rate, 1.0, way), max(1, min(concurrency, math.ceil(rate))))
        for number, rate in numbers
    ]


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
    senders: Sequence[Sender],
    send_one: Callable[[Sender, Delivery], Awaitable[SmsResult]],
    auth_failed: SmsResult,
) -> list[SmsResult]:
    """Each delivery's result, in delivery order, sent by `senders` (each making `workers`
    requests at once). Once one result's cause is `AUTH`, the rest are not sent and
    get `auth_failed`: they would fail alike (spare the API and the account's reputation)."""
    results: list[SmsResult | None] = [None] * len(deliveries)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(deliveries)):
        queue.put_nowait(index)
    refused = asyncio.Event()

    async def work(sender: Sender) -> None:
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
        for sender in senders:
            for _ in range(sender.workers):
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
