"""The peer: the same alert sent the way a team without Clarion would script it with Apprise.

One `Apprise` object holds every target (push as `json://`, email as `mailto://` to the
sandbox's relay, SMS as a `form://` POST in the Twilio Messages API's shape) and one
`async_notify` sends them all, with Apprise's defaults. No store, no receipts, no retries.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import apprise

from bench.ceiling import ALERT_HEADER, Targets


@dataclass(frozen=True, slots=True)
class PeerResult:
    """How long one `async_notify` over every target took, and how it ended."""

    targets: int
    seconds: float
    build_seconds: float
    succeeded: int
    failed: int
    failures: dict[str, int]
    """Failed targets by plugin and the last thing Apprise logged about them (a sample)."""

    @property
    def per_second(self) -> float:
        """Targets notified successfully per second, building the object included."""
        total = self.seconds + self.build_seconds
        return self.succeeded / total if total else 0.0


def apprise_urls(t: Targets, alert_id: str) -> Iterator[str]:
    """One Apprise URL per person and channel, pointing at the sandbox."""
    http = t.sandbox_url.removeprefix("http://")
    header = f"+{ALERT_HEADER}={quote(alert_id, safe='')}"
    sms_path = f"/2010-04-01/Accounts/{t.account_sid}/Messages.json"
    for phone in t.phones:
        # Twilio's own form fields; Apprise's (title, version, type) are dropped.
        yield (
            f"form://{t.account_sid}:{t.auth_token}@{http}{sms_path}?:message=Body"
            f"&:To={quote(phone, safe='')}&:MessagingServiceSid={t.messaging_service_sid}"
            "&:title=&:version=&:type="
        )
    for address in t.emails:
        yield (
            f"mailto://{t.smtp_host}:{t.smtp_port}?to={quote(address, safe='@')}"
            f"&from={quote(t.sender, safe='@')}&mode=insecure&{header}"
        )
    for push_id in t.push_ids:
        yield f"json://{http}/push/{push_id}?{header}"


async def fan_out(
    t: Targets, *, text: str, title: str, alert_id: str, timeout_s: float = 1800.0
) -> PeerResult:
    """Build the Apprise object and notify everyone once (devices are not Apprise targets)."""
    started = time.perf_counter()
    peer = apprise.Apprise()
    count = 0
    for url in apprise_urls(t, alert_id):
        peer.add(url)
        count += 1
    built = time.perf_counter()
    failures: Counter[str] = Counter()
    with await peer.async_notify(body=text, title=title, timeout=timeout_s) as result:
        outcomes = list(result.results)
        for r in outcomes:
            if not bool(r):
                said = [e.message for e in r.logs()]
                failures[f"{r.name}: {said[-1][:120] if said else r.status.name}"] += 1
    done = time.perf_counter()
    succeeded = sum(1 for r in outcomes if bool(r))
    return PeerResult(count, done - built, built - started, succeeded, count - succeeded,
                      dict(failures.most_common(5)))
