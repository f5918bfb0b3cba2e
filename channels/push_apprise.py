"""`push.apprise`: any Apprise URL per person or group, one receipt per target.

Two routes, chosen by the address:

- **A push gateway**: `json://host[:port]/path` or `jsons://...` (https), optionally with
  `user:password@` (sent as HTTP Basic auth), `+Name=value` arguments (extra request headers)
  and `-name=value` arguments (the gateway URL's query), the parts of Apprise's JSON webhook
  syntax that only say where and how to post. Clarion posts its own JSON body there with
  aiohttp, over one keep-alive session:

      POST <gateway URL>
      Content-Type: application/json
      X-Clarion-Alert: <alert id>            (unless alert_header is off)

      {"version": "1.0", "title": "...", "message": "...", "type": "info",
       "attachments": [], "alert_id": "...", "drill": false}

  `version`, `title`, `message`, `type` and `attachments` are the fields of Apprise's JSON
  webhook, so a receiver written for Apprise reads it unchanged; `alert_id` and `drill` are
  Clarion's. A 2xx answer accepts the message; 408, 425, 429 and 5xx are retried (after the
  answer's Retry-After), other answers fail it.
- **Everything else** (ntfy://, gotify://, fcm://, form://, xml://, a json:// URL with any other
  Apprise option...): Apprise itself sends it, `Apprise.notify` in a bounded pool of worker
  threads, and the receipt is read from the `AppriseResult` it returns.

Why our own body for the gateway rather than Apprise for every target: a campus-wide push is
thousands of posts to one gateway, which one aiohttp session with kept connections sends in a
few seconds; Apprise sends each target with a fresh `requests` call from a thread and hides the
answer's status and Retry-After, which the receipts and the backoff need. A target URL never
reaches a log or a receipt: it can carry tokens.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import structlog
from apprise import Apprise, AppriseAsset, NotifyType
from apprise.result import AppriseResult, AppriseResultStatus
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import Field
from yarl import URL

from channels.base import GAVE_WAY, Channel, ChannelSettings, ReceiptSink
from channels.errors import is_transient_http
from channels.pacing import GiveWay, UrgentSlots
from dispatcher.domain import AlertContext, Batch, ChannelKind, Delivery, Outcome, Receipt

log = structlog.get_logger("clarion.channel.push")

ALERT_HEADER: Final = "X-Clarion-Alert"
# The schemes Apprise gives the `+Name=value` header arguments the alert header rides in.
HEADER_SCHEMES: Final = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
# Push gateway schemes, and whether each is https.
GATEWAY_SCHEMES: Final[Mapping[str, bool]] = {"json": False, "jsons": True}
BODY_VERSION: Final = "1.0"
GATEWAY: Final = "push gateway"
_T = TypeVar("_T")


class AppriseSettings(ChannelSettings):
    """`[channels."push.apprise"]`: batches, connections, threads, and time per target."""

    concurrency: int = Field(default=32, ge=1, le=256, description="batches in flight")
    batch_size: int = Field(default=200, ge=1, le=1000)
    timeout_s: float = Field(default=10.0, gt=0, description="connect and read timeout per target")
    http_connections: int = Field(
        default=64, ge=1, le=1024, description="push gateway posts in flight, one pool"
    )
    threads: int = Field(default=16, ge=1, le=256, description="Apprise threads, other schemes")
    url_cache: int = Field(default=4096, ge=1, description="distinct gateway addresses kept parsed")
    alert_header: bool = Field(
        default=True,
        description=f"add {ALERT_HEADER} to gateway posts and Apprise's json://, form:// and "
        "xml:// targets",
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One target's fate, before it becomes a receipt."""

    outcome: Outcome
    detail: str = ""
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Gateway:
    """Where and how a push gateway address is posted to."""

    url: URL
    headers: CIMultiDictProxy[str]


def gateway(address: str) -> Gateway | None:
    """The push gateway an address names; None when Apprise itself is to send it.

    Query arguments are read as Apprise writes them (a literal `+` or `-` first, then
    percent-encoding), so `+` is not a space here.
    """
    scheme, sep, rest = address.partition("://")
    secure = GATEWAY_SCHEMES.get(scheme.lower())
    if secure is None or not sep or "#" in rest:
        return None
    location, _, query = rest.partition("?")
    headers: dict[str, str] = {}
    params: list[tuple[str, str]] = []
    for argument in filter(None, query.split("&")):
        name, _, value = argument.partition("=")
        if name[:1] == "+" and len(name) > 1:
            headers[unquote(name[1:])] = unquote(value)
        elif name[:1] == "-" and len(name) > 1:
            params.append((unquote(name[1:]), unquote(value)))
        else:
            return None  # an option of Apprise's own
    try:
        url = URL(f"{'https' if secure else 'http'}://{location}")
    except ValueError:
        return None
    if not url.host or not all(_header_ok(n, v) for n, v in headers.items()):
        return None
    sent = CIMultiDict({"Content-Type": "application/json", "User-Agent": "Clarion"})
    if url.user is not None:
        sent["Authorization"] = _basic(url.user, url.password or "")
    for name, value in headers.items():
        sent[name] = value  # the address's own headers win, whatever their case
    return Gateway(url.with_user(None).with_query(params or None), CIMultiDictProxy(sent))


def push_body(alert: AlertContext, title: str, text: str) -> bytes:
    """The JSON body posted to a push gateway (see the module's docstring)."""
    return json.dumps(
        {
            "version": BODY_VERSION,
            "title": title,
            "message": text,
            "type": NotifyType.INFO.value,
            "attachments": [],
            "alert_id": alert.alert_id,
            "drill": alert.drill,
        },
        ensure_ascii=False,
    ).encode()


def target_url(address: str, alert_id: str, *, alert_header: bool = True) -> str:
    """The Apprise URL to notify: the address, carrying the alert id where the scheme allows."""
    if not alert_header or _scheme(address) not in HEADER_SCHEMES:
        return address
    sep = "&" if urlsplit(address).query else "?"
    return f"{address}{sep}+{ALERT_HEADER}={quote(alert_id, safe='')}"


def classify(result: AppriseResult) -> _Outcome:
    """A target Apprise sent, by what its result says: accepted, or retried.

    Apprise reports success, a timeout or a failure, not why it failed; a failure is retried,
    and the engine's bound on attempts ends one that never gets through.
    """
    found = result.results
    if not found:
        # Apprise did not dispatch it: a message or URL it cannot use.
        return _Outcome(Outcome.FAILED, f"not sent ({result.status.name.lower()})")
    service = found[0]
    if service.status is AppriseResultStatus.SUCCESS:
        return _Outcome(Outcome.ACCEPTED, service.name)
    if service.status is AppriseResultStatus.TIMEOUT:
        return _Outcome(Outcome.RETRY, f"{service.name}: timed out")
    return _Outcome(Outcome.RETRY, f"{service.name}: not sent")


def _answered(status: int, retry_after: str | None) -> _Outcome:
    """Accepted on 2xx, retry on 408/425/429/5xx (after Retry-After if given), else failed."""
    if 200 <= status < 300:
        return _Outcome(Outcome.ACCEPTED, GATEWAY)
    if is_transient_http(status):
        return _Outcome(Outcome.RETRY, f"{GATEWAY}: HTTP {status}", _seconds(retry_after))
    return _Outcome(Outcome.FAILED, f"{GATEWAY}: HTTP {status}")


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After in seconds; the HTTP-date form is left to the backoff."""
    try:
        seconds = float(retry_after or "")
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _scheme(address: str) -> str:
    return address.partition("://")[0].lower()


class ApprisePush(Channel):
    """Push: our JSON body to push gateways on the event loop, other schemes through Apprise."""

    name: ClassVar[str] = "push.apprise"
    kind: ClassVar[ChannelKind] = ChannelKind.PUSH
    settings_model: ClassVar[type[ChannelSettings]] = AppriseSettings

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        assert isinstance(settings, AppriseSettings)
        self.settings: AppriseSettings = settings
        # `notify(timeout=timeout_s)` bounds each target: Apprise then runs it in its own
        # worker pool while one of our threads waits, so `threads` bounds the targets in
        # Apprise's hands and our slots choose, by urgency, which go next.
        self._asset = AppriseAsset(
            storage_mode="memory", secure_logging=True, result_log_disk_size=0
        )
        self._pool: ThreadPoolExecutor | None = None
        self._session: aiohttp.ClientSession | None = None
        # Posts holding or awaiting a connection, and Apprise targets holding or awaiting a
        # thread, in the order of urgency: one that cannot start within timeout_s is handed
        # back unsent.
        self._slots = UrgentSlots(settings.http_connections, self.right_of_way)
        self._threads = UrgentSlots(settings.threads, self.right_of_way)
        self._gateways: OrderedDict[str, Gateway | None] = OrderedDict()

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Open the gateway session; load Apprise's plugins off the loop for the first alert."""
        self._http()
        await self._in_thread(Apprise(asset=self._asset).details)

    async def close(self) -> None:
        """Close the gateway session and stop the worker threads once their sends finish."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def transmit(self, batch: Batch, /) -> Sequence[Receipt]:
        """Notify every target; a failed target is a receipt, never an exception."""
        alert = batch.alert
        # Targets still waiting after one timeout_s are not started: together with the
        # request's own timeout this keeps the batch within the engine's limit (3 x timeout_s),
        # past which it would count the accepted ones as unsent and send them again.
        start_by = time.monotonic() + self.settings.timeout_s
        # Cancelling the batch cancels the targets not yet started.
        outcomes = await asyncio.gather(
            *(self._deliver(alert, delivery, start_by) for delivery in batch.deliveries)
        )
        receipts = []
        for delivery, done in zip(batch.deliveries, outcomes, strict=True):
            if done.outcome not in (Outcome.ACCEPTED, Outcome.DEFERRED):
                log.info(
                    "push.send_failed",
                    channel=self.name,
                    alert_id=alert.alert_id,
                    delivery_id=delivery.id,
                    recipient=delivery.tag,
                    outcome=str(done.outcome),
                    detail=done.detail,
                )
            receipts.append(
                Receipt(delivery.id, done.outcome, done.detail, retry_after_s=done.retry_after_s)
            )
        return receipts

    async def _deliver(self, alert: AlertContext, delivery: Delivery, start_by: float) -> _Outcome:
        """One target, by the route its address takes."""
        # An alert with a question carries the person's own answer link.
        message = alert.message(delivery.language).with_link(delivery.link)
        if not message.text:
            return _Outcome(Outcome.FAILED, "empty message")
        found = self._gateway(delivery.address)
        if found is not None:
            return await self._post(found, alert, message.title, message.text, start_by)
        url = target_url(delivery.address, alert.alert_id, alert_header=self.settings.alert_header)
        try:
            await self._threads.acquire(alert.rank)
        except GiveWay:
            return _Outcome(Outcome.DEFERRED, GAVE_WAY)
        try:
            return await self._in_thread(self._notify, url, message.title, message.text, start_by)
        finally:
            self._threads.release()

    def _gateway(self, address: str) -> Gateway | None:
        """The address's gateway, parsed once while it stays among the recent ones."""
        if address in self._gateways:
            self._gateways.move_to_end(address)
            return self._gateways[address]
        found = self._gateways[address] = gateway(address)
        if len(self._gateways) > self.settings.url_cache:
            self._gateways.popitem(last=False)
        return found

    async def _in_thread(self, call: Callable[..., _T], *args: Any) -> _T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.settings.threads, thread_name_prefix="clarion-push"
            )
        return await asyncio.get_running_loop().run_in_executor(self._pool, call, *args)

    # -- push gateways, on the event loop ------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout_s = self.settings.timeout_s
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.http_connections),
                # Each post stands alone: no cookies kept between targets.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(
                    total=timeout_s * 1.5, sock_connect=timeout_s / 2, sock_read=timeout_s
                ),
            )
        return self._session

    async def _post(
        self, route: Gateway, alert: AlertContext, title: str, text: str, start_by: float
    ) -> _Outcome:
        """One post to a gateway; its answer or failure becomes an outcome."""
        headers = CIMultiDict(route.headers)
        if self.settings.alert_header:
            headers[ALERT_HEADER] = alert.alert_id
        body = push_body(alert, title, text)
        try:
            await self._slots.acquire(alert.rank)
        except GiveWay:
            return _Outcome(Outcome.DEFERRED, GAVE_WAY)
        try:
            if time.monotonic() > start_by:
                return _Outcome(Outcome.RETRY, "not started: push connections busy")
            try:
                async with self._http().post(
                    route.url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    proxy=_proxy(route.url.scheme, route.url.host or ""),
                ) as response:
                    await response.read()  # all of it, so the connection can be reused
            except TimeoutError:
                return _Outcome(Outcome.RETRY, f"{GATEWAY}: timed out")
            except (aiohttp.ClientError, OSError) as exc:
                # The exception's text can hold the URL; its type is enough.
                return _Outcome(Outcome.RETRY, f"{GATEWAY}: not sent ({type(exc).__name__})")
        finally:
            self._slots.release()
        return _answered(response.status, response.headers.get("Retry-After"))

    # -- everything else, through Apprise in worker threads ------------------------------------

    def _notify(self, url: str, title: str, body: str, start_by: float) -> _Outcome:
        """One target, in a worker thread: Apprise's calls block."""
        if time.monotonic() > start_by:
            return _Outcome(Outcome.RETRY, "not started: push workers busy")
        # A new Apprise object per notification: Apprise paces repeated sends of one object.
        notifier = Apprise(asset=self._asset)
        if not notifier.add(url):
            return _Outcome(Outcome.FAILED, "not a usable Apprise URL")
        with notifier.notify(body=body, title=title, timeout=self.settings.timeout_s) as result:
            return classify(result)


@functools.lru_cache(maxsize=256)
def _proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for an origin (`HTTPS_PROXY`, `NO_PROXY`...), read once
    per origin and process."""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


def _header_ok(name: str, value: str) -> bool:
    """A header a request may carry: a token name, and no line break or NUL in the value."""
    return bool(name) and name.isascii() and all(
        c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name
    ) and not any(c in value for c in "\r\n\0")


def _basic(user: str, password: str) -> str:
    """An HTTP Basic Authorization value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
