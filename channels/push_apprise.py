"""`push.apprise`: any Apprise URL per person or group, one receipt per target.

Webhook targets (json://, form://, xml:// and their https forms) are posted from the event loop
over one keep-alive aiohttp session, each request as Apprise's own plugin would send it: the
plugin parses the URL, and its payload rules are mirrored here (tests compare the two on the
wire). Every other scheme goes through Apprise in worker threads. Each distinct URL is parsed
once (a bounded LRU). A target URL never reaches a log or a receipt: it can carry tokens.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import requests
import structlog
from apprise import Apprise, AppriseAsset, NotifyBase, NotifyType, OverflowMode
from apprise.exception import AppriseException
from apprise.manager_plugins import NotificationManager
from apprise.plugins.custom_form import NotifyForm
from apprise.plugins.custom_json import NotifyJSON
from apprise.plugins.custom_xml import NotifyXML
from apprise.result import AppriseResultStatus, NotifyResult
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import Field
from yarl import URL

from channels.base import GAVE_WAY, Channel, ChannelSettings, ReceiptSink
from channels.errors import is_transient_http
from channels.pacing import GiveWay, UrgentSlots
from dispatcher.domain import AlertContext, Batch, ChannelKind, Delivery, Outcome, Receipt

log = structlog.get_logger("clarion.channel.push")

ALERT_HEADER = "X-Clarion-Alert"
# Apprise's webhook plugins: posted by us, and they take `+Name=value` URL args as headers.
WEBHOOK_PLUGINS: Mapping[str, type[NotifyBase]] = {
    "json": NotifyJSON,
    "jsons": NotifyJSON,
    "form": NotifyForm,
    "forms": NotifyForm,
    "xml": NotifyXML,
    "xmls": NotifyXML,
}
HEADER_SCHEMES = frozenset(WEBHOOK_PLUGINS)
# Apprise's HTTP plugins log failures as "...error=<status>."; the result keeps those logs.
_HTTP_STATUS = re.compile(r"error=(\d{3})\b")
# The one notification type Clarion sends.
_INFO = NotifyType.INFO.value
_T = TypeVar("_T")


class AppriseSettings(ChannelSettings):
    """`[channels."push.apprise"]`: batches, connections, threads, and time per target."""

    concurrency: int = Field(default=32, ge=1, le=256, description="batches in flight")
    batch_size: int = Field(default=200, ge=1, le=1000)
    timeout_s: float = Field(default=10.0, gt=0, description="connect and read timeout per target")
    http_connections: int = Field(
        default=64, ge=1, le=1024, description="json/form/xml targets in flight, one pool"
    )
    threads: int = Field(default=16, ge=1, le=256, description="Apprise threads, other schemes")
    url_cache: int = Field(default=4096, ge=1, description="distinct target URLs kept parsed")
    alert_header: bool = Field(
        default=True, description=f"add {ALERT_HEADER} to json://, form:// and xml:// targets"
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One target's fate, before it becomes a receipt."""

    outcome: Outcome
    detail: str = ""
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class _Post:
    """A webhook target's request as its Apprise plugin would make it, less the message."""

    service: str
    method: str
    url: URL
    headers: CIMultiDictProxy[str]
    skip_auto_headers: tuple[str, ...]
    render: Callable[[str, str], bytes]  # (title, text) -> request body
    verify: bool
    redirects: bool
    proxy: str | None
    timeout: aiohttp.ClientTimeout


@dataclass(frozen=True, slots=True)
class _Relay:
    """A target Apprise sends itself, in a worker thread.

    `notifier` is None for a webhook URL with options `_Post` does not mirror: Apprise then
    parses it per alert, since the URL carries the alert header.
    """

    notifier: Apprise | None


_Route = _Post | _Relay | None  # None: not a usable Apprise URL


def target_url(address: str, alert_id: str, *, alert_header: bool = True) -> str:
    """The Apprise URL to notify: the address, carrying the alert id where the scheme allows."""
    if not alert_header or _scheme(address) not in HEADER_SCHEMES:
        return address
    sep = "&" if urlsplit(address).query else "?"
    return f"{address}{sep}+{ALERT_HEADER}={quote(alert_id, safe='')}"


def classify(result: NotifyResult) -> _Outcome:
    """Accepted, retry (timeouts, connection errors, 429/5xx) or failed (other 4xx)."""
    if result.status is AppriseResultStatus.SUCCESS:
        return _Outcome(Outcome.ACCEPTED, result.name)
    if result.status is AppriseResultStatus.TIMEOUT:
        return _Outcome(Outcome.RETRY, f"{result.name}: timed out")
    statuses = [int(m.group(1)) for e in result.logs() for m in _HTTP_STATUS.finditer(e.message)]
    if statuses:
        return _answered(result.name, statuses[-1])
    # No status: connection errors and the like, which a later attempt may get through.
    return _Outcome(Outcome.RETRY, f"{result.name}: not sent")


def _answered(service: str, status: int, retry_after: str | None = None) -> _Outcome:
    """Accepted on 2xx, retry on 408/425/429/5xx (after Retry-After if given), else failed."""
    if 200 <= status < 300:
        return _Outcome(Outcome.ACCEPTED, service)
    if is_transient_http(status):
        return _Outcome(Outcome.RETRY, f"{service}: HTTP {status}", _seconds(retry_after))
    return _Outcome(Outcome.FAILED, f"{service}: HTTP {status}")


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
    """Push through Apprise: webhooks on the event loop, other schemes in worker threads."""

    name: ClassVar[str] = "push.apprise"
    kind: ClassVar[ChannelKind] = ChannelKind.PUSH
    settings_model: ClassVar[type[ChannelSettings]] = AppriseSettings

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        assert isinstance(settings, AppriseSettings)
        self.settings: AppriseSettings = settings
        self._asset = AppriseAsset(
            async_mode=False,  # each target already has a thread of ours
            storage_mode="memory",
            secure_logging=True,
            # A service deadline makes Apprise hand the call to its own small shared pool;
            # without one it runs in our thread, bounded by the socket timeouts set per target.
            service_timeout=0,
            result_log_disk_size=0,
        )
        self._pool: ThreadPoolExecutor | None = None
        self._session: aiohttp.ClientSession | None = None
        # Bounds the webhook targets holding or awaiting a connection, so that one which
        # cannot start within timeout_s is handed back unsent.
        self._slots = UrgentSlots(settings.http_connections, self.right_of_way)
        self._routes: OrderedDict[str, _Route] = OrderedDict()

    async def start(self, receipts: ReceiptSink, /) -> None:
        """Open the webhook session; load Apprise's plugins off the loop for the first alert."""
        self._http()
        await self._in_thread(NotificationManager().load_modules)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Close the webhook session and stop the worker threads once their sends finish."""
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
        # socket timeouts this keeps the batch within the engine's limit (3 x timeout_s),
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
        """One target, by the route its URL takes."""
        # An alert with a question carries the person's own answer link.
        message = alert.message(delivery.language).with_link(delivery.link)
        route = await self._route(delivery.address)
        if route is None:
            return _Outcome(Outcome.FAILED, "not a usable Apprise URL")
        if isinstance(route, _Post):
            alert_id = alert.alert_id if self.settings.alert_header else None
            return await self._post(
                route, alert_id, message.title, message.text, start_by, alert.rank
            )
        url = target_url(delivery.address, alert.alert_id, alert_header=self.settings.alert_header)
        return await self._in_thread(
            self._notify, route, url, message.title, message.text, start_by
        )

    async def _route(self, address: str) -> _Route:
        """How to send to this address, parsed once while it stays among the recent ones."""
        if address in self._routes:
            self._routes.move_to_end(address)
            return self._routes[address]
        route: _Route
        if _scheme(address) in HEADER_SCHEMES:
            route = self._webhook(address)
        else:
            route = await self._in_thread(self._relay, address)
        self._routes[address] = route
        if len(self._routes) > self.settings.url_cache:
            self._routes.popitem(last=False)
        return route

    async def _in_thread(self, call: Callable[..., _T], *args: Any) -> _T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.settings.threads, thread_name_prefix="clarion-push"
            )
        return await asyncio.get_running_loop().run_in_executor(self._pool, call, *args)

    # -- webhooks, on the event loop -----------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.settings.http_connections, ssl=_requests_tls()
                ),
                # Apprise makes each request afresh: no cookies kept between targets. Proxies
                # and .netrc are looked up per origin when a route is made (trust_env would
                # look for .netrc in a thread on every request); answers are read as sent.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._session

    def _webhook(self, address: str) -> _Route:
        """Parse a webhook URL with its Apprise plugin: posted by us if `_post` mirrors it."""
        plugin = _webhook_plugin(address, self._asset)
        if plugin is None:
            return None
        if not _mirrored(plugin):
            return _Relay(None)
        try:
            return _prepare(plugin, self.settings.timeout_s)
        except (requests.RequestException, ValueError):
            # requests refuses the URL or a header, so Apprise could never send it either.
            return None

    async def _post(
        self, route: _Post, alert_id: str | None, title: str, text: str, start_by: float,
        rank: int = 0,
    ) -> _Outcome:
        """One webhook request; its answer or failure becomes an outcome."""
        if not text:
            return _Outcome(Outcome.FAILED, f"{route.service}: empty message")
        headers = CIMultiDict(route.headers)
        if alert_id is not None:
            headers[ALERT_HEADER] = alert_id
        # Apprise trims the title, and the body's end, before the plugin renders them.
        body = route.render(title.strip(), text.rstrip())
        try:
            await self._slots.acquire(rank)
        except GiveWay:
            return _Outcome(Outcome.DEFERRED, GAVE_WAY)
        try:
            if time.monotonic() > start_by:
                return _Outcome(Outcome.RETRY, "not started: push connections busy")
            try:
                async with self._http().request(
                    route.method,
                    route.url,
                    data=body,
                    headers=headers,
                    skip_auto_headers=route.skip_auto_headers,
                    allow_redirects=route.redirects,
                    ssl=route.verify,
                    proxy=route.proxy,
                    timeout=route.timeout,
                ) as response:
                    await response.read()  # all of it, so the connection can be reused
            except TimeoutError:
                return _Outcome(Outcome.RETRY, f"{route.service}: timed out")
            except (aiohttp.ClientError, OSError) as exc:
                # The exception's text can hold the URL; its type is enough.
                return _Outcome(Outcome.RETRY, f"{route.service}: not sent ({type(exc).__name__})")
        finally:
            self._slots.release()
        return _answered(route.service, response.status, response.headers.get("Retry-After"))

    # -- everything else, in worker threads ----------------------------------------------------

    def _relay(self, address: str) -> _Relay | None:
        """In a worker thread: Apprise with the address's plugin; None if it is unusable."""
        notifier = self._notifier(address)
        return None if notifier is None else _Relay(notifier)

    def _notify(self, route: _Relay, url: str, title: str, body: str, start_by: float) -> _Outcome:
        """One target, in a worker thread: Apprise's calls block."""
        if time.monotonic() > start_by:
            return _Outcome(Outcome.RETRY, "not started: push workers busy")
        notifier = route.notifier or self._notifier(url)
        if notifier is None:
            return _Outcome(Outcome.FAILED, "not a usable Apprise URL")
        with notifier.notify(body=body, title=title) as result:
            found = result.results
            if not found:
                return _Outcome(Outcome.FAILED, f"not sent ({result.status.name.lower()})")
            return classify(found[0])

    def _notifier(self, url: str) -> Apprise | None:
        """Apprise holding the URL's plugin, paced and timed by us; None if unusable."""
        plugin = Apprise.instantiate(url, asset=self._asset)
        if plugin is None:
            return None
        # Our limiter governs pace; Apprise's per-instance wait would serialize a burst.
        plugin.request_rate_per_sec = 0
        plugin.socket_connect_timeout = _connect_s(plugin, self.settings.timeout_s)
        plugin.socket_read_timeout = self.settings.timeout_s
        return Apprise(plugin, asset=self._asset)


def _connect_s(plugin: Any, timeout_s: float) -> float:
    return min(float(plugin.socket_connect_timeout), timeout_s / 2)


def _requests_tls() -> ssl.SSLContext:
    """Certificates checked against the CA bundle requests, hence Apprise, would use."""
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or requests.utils.DEFAULT_CA_BUNDLE_PATH
    )
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


# -- what the webhook plugins send, read from the plugin ------------------------------------------


def _webhook_plugin(address: str, asset: AppriseAsset) -> Any:
    """The address loaded by its plugin class, as `Apprise.instantiate` does; None if unusable.

    Called directly, the class skips instantiate's log-masking work (most of its time).
    """
    plugin_class: Any = WEBHOOK_PLUGINS[_scheme(address)]
    # As Apprise's url_to_dict: `/#` starts a path segment, not a fragment.
    results = plugin_class.parse_url(address.replace("/#", "/%23"))
    if not results:
        return None
    try:
        return plugin_class(**{**results, "asset": asset})
    except (AppriseException, TypeError, ValueError):
        return None


def _mirrored(plugin: Any) -> bool:
    """Whether the plugin sends the message as given, the case `_post` reproduces.

    Overflow splitting or truncation, emoji codes, Apprise's own retries, and `user@` with no
    password (requests would send the word "None" as the password) stay with Apprise.
    """
    return bool(
        plugin.overflow_mode == OverflowMode.UPSTREAM
        and not plugin.interpret_emojis
        and not plugin.service_retry
        and plugin.body_max_line_count <= 0
        and plugin.title_maxlen > 0
        and (not plugin.user or plugin.password is not None)
    )


def _prepare(plugin: Any, timeout_s: float) -> _Post:
    """The parts of the plugin's request that do not depend on the message.

    Headers in the order requests applies them: its defaults, the plugin's User-Agent and
    Content-Type, the URL's `+` headers, requests' form Content-Type, then Basic auth (from the
    URL, else from .netrc). The URL, with the `-` params, is prepared by requests itself.
    """
    scheme = "https" if plugin.secure else "http"
    port = f":{plugin.port}" if isinstance(plugin.port, int) else ""
    prepared = requests.models.PreparedRequest()
    # None rather than {}: the same URL, without requests' cost of encoding no params.
    prepared.prepare_url(f"{scheme}://{plugin.host}{port}{plugin.fullpath}", plugin.params or None)
    url = URL(str(prepared.url), encoded=True)
    proxy, netrc_auth = _environment(str(url.origin()))
    render, content_type = _RENDERERS[type(plugin)]
    headers: CIMultiDict[str] = CIMultiDict(requests.utils.default_headers())
    headers["User-Agent"] = plugin.app_id
    if content_type:
        headers["Content-Type"] = content_type
    for name, value in plugin.headers.items():
        headers[name] = value
    if render is _form and "Content-Type" not in headers and _form_fields(plugin, "", ""):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if plugin.user:
        headers["Authorization"] = _basic(plugin.user, plugin.password)
    elif netrc_auth:
        headers["Authorization"] = netrc_auth
    for name, value in headers.items():
        requests.utils.check_header_validity((name, value))
    connect_s = _connect_s(plugin, timeout_s)
    return _Post(
        service=str(plugin.service_name),
        method=str(plugin.method),
        url=url,
        headers=CIMultiDictProxy(headers),
        skip_auto_headers=() if "Content-Type" in headers else ("Content-Type",),
        render=functools.partial(render, plugin),
        verify=bool(plugin.verify_certificate),
        redirects=bool(plugin.redirects),
        proxy=proxy,
        timeout=aiohttp.ClientTimeout(
            total=connect_s + timeout_s, sock_connect=connect_s, sock_read=timeout_s
        ),
    )


@functools.lru_cache(maxsize=256)
def _environment(origin: str) -> tuple[str | None, str | None]:
    """The proxy requests would use for an origin, and the Authorization its .netrc gives.

    Read once per origin and process: requests reads them per request, but they seldom change.
    """
    proxy = requests.utils.select_proxy(origin, requests.utils.get_environ_proxies(origin, None))
    login = requests.utils.get_netrc_auth(origin)
    return proxy, None if login is None else _basic(*login)


def _basic(user: str, password: str) -> str:
    """A Basic Authorization value, encoded as requests encodes it."""
    return aiohttp.BasicAuth(user, password, encoding="latin1").encode()


def _json(plugin: Any, title: str, text: str) -> bytes:
    """NotifyJSON's payload: a `:key=value` renames a field (drops it if empty) or adds one."""
    payload: dict[str, Any] = {
        "version": plugin.json_version,
        "title": title,
        "message": text,
        "attachments": [],
        "type": _INFO,
    }
    for key, value in plugin.payload_extras.items():
        if key in payload:
            if value:
                payload[value] = payload[key]
            del payload[key]
        else:
            payload[key] = value
    return json.dumps(payload).encode()


def _form_fields(plugin: Any, title: str, text: str) -> list[tuple[str, str]]:
    """NotifyForm's fields: the core ones renamed or dropped by `:key=value`, then extras."""
    core = {"version": plugin.form_version, "title": title, "message": text, "type": _INFO}
    fields = {plugin.payload_map[k]: v for k, v in core.items() if plugin.payload_map[k]}
    fields.update(plugin.payload_extras)
    return list(fields.items())


def _form(plugin: Any, title: str, text: str) -> bytes:
    """NotifyForm's payload, url-encoded as requests encodes a dict."""
    return urlencode(_form_fields(plugin, title, text)).encode()


def _xml(plugin: Any, title: str, text: str) -> bytes:
    """NotifyXML's SOAP envelope: its elements (named as the plugin cleaned them), escaped."""

    def escape(value: str) -> str:
        return str(NotifyXML.escape_html(value, whitespace=False))  # type: ignore[no-untyped-call]

    core = {"Version": plugin.xsd_ver, "Subject": title, "Message": text, "MessageType": _INFO}
    fields = {
        plugin.payload_map[k]: v if k == "Version" else escape(v)
        for k, v in core.items()
        if plugin.payload_map[k]
    }
    fields.update({k: escape(v) for k, v in plugin.payload_extras.items()})
    filled = {
        "{{XSD_URL}}": f' xmlns:xsi="{plugin.xsd_url}"' if plugin.xsd_url else "",
        "{{ATTACHMENTS}}": "",
        "{{CORE}}": "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()),
    }
    # One pass, as in the plugin: text filled in is not searched again.
    body = _XML_SLOTS.sub(lambda m: filled[m[0]], plugin.payload)
    return body.encode()


_XML_SLOTS = re.compile(r"\{\{(?:XSD_URL|ATTACHMENTS|CORE)\}\}")
# Each webhook plugin's body, and the Content-Type its `send` sets (form: requests sets it).
_RENDERERS: Mapping[type[NotifyBase], tuple[Callable[[Any, str, str], bytes], str]] = {
    NotifyJSON: (_json, "application/json"),
    NotifyForm: (_form, ""),
    NotifyXML: (_xml, "application/xml"),
}
