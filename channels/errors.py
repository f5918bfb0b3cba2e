"""Whole-batch failures, classified once at the boundary: retry later, or fix something first."""

from __future__ import annotations


class ChannelError(Exception):
    """A failure of a whole batch; per-recipient failures are receipts, not exceptions."""

    def __init__(self, detail: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


class TransientChannelError(ChannelError, ConnectionError):
    """The provider may succeed later: timeouts, 429, 5xx, SMTP 4xx, a broker away."""


class PermanentChannelError(ChannelError):
    """Retrying will not help: bad credentials, a rejected request, SMTP 5xx."""


def is_transient_http(status: int) -> bool:
    """HTTP statuses worth retrying: 408, 425, 429 and every 5xx."""
    return status in (408, 425, 429) or status >= 500


def is_transient_smtp(code: int) -> bool:
    """SMTP replies worth retrying: the 4xx family (and -1, a dropped connection)."""
    return code < 0 or 400 <= code < 500
