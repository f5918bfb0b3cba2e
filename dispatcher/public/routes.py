"""Routes under /public/ (no sign-in): the alert page, alerts.json, banner.js and its demo.

Every response comes from memory (the snapshot, or files read at import), carries a strong
ETag and answers `If-None-Match` with 304, so a campus's worth of pollers costs no query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from dispatcher.edge import SERVICE, service_of
from dispatcher.public.feed import PUBLIC_FEED, PublicFeed
from dispatcher.public.page import choose_language
from dispatcher.public.snapshot import Representation

routes = web.RouteTableDef()

STATIC = Path(__file__).resolve().parent / "static"
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
DEMO_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"
# Static assets change only with a new release; an hour keeps them off the wire.
ASSET_MAX_AGE_S = 3600


def _asset(name: str, content_type: str) -> Representation:
    return Representation.of((STATIC / name).read_bytes(), content_type)


ASSETS = {
    "banner.js": _asset("banner.js", "text/javascript"),
    "page.css": _asset("page.css", "text/css"),
    "demo.css": _asset("demo.css", "text/css"),
    "demo.html": _asset("demo.html", "text/html"),
}


def feed_of(request: web.Request) -> PublicFeed:
    """The running service's public feed."""
    return request.app[PUBLIC_FEED]


def not_modified(request: web.Request, etag: str) -> bool:
    """True when the request's If-None-Match names this ETag (or `*`)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip().removeprefix("W/")
        if tag == "*" or tag == etag:
            return True
    return False


def conditional(
    request: web.Request, rep: Representation, headers: dict[str, str]
) -> web.Response:
    """The representation, or 304 when the client already has it; the same headers on both."""
    headers = {"ETag": rep.etag, "X-Content-Type-Options": "nosniff", **headers}
    if not_modified(request, rep.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=rep.body, content_type=rep.content_type, charset="utf-8",
                        headers=headers)


def _fresh(request: web.Request) -> PublicFeed:
    feed = feed_of(request)
    feed.rebuild_if_expired()
    return feed


def _cors(request: web.Request) -> dict[str, str]:
    """CORS for the campus's own sites only: other origins get no grant at all."""
    origin = request.headers.get("Origin")
    allowed = service_of(request).settings.public.allowed_origins
    headers = {"Vary": "Origin"}
    if origin is not None and origin in allowed:
        headers["Access-Control-Allow-Origin"] = origin
    return headers


def _cache(request: web.Request) -> str:
    max_age = service_of(request).settings.public.max_age_s
    return f"public, max-age={max_age}" if max_age else "no-cache"


@routes.get("/public")
async def public_root(request: web.Request) -> web.Response:
    """The page lives at /public/."""
    raise web.HTTPPermanentRedirect("/public/")


@routes.get("/public/")
async def public_page(request: web.Request) -> web.Response:
    """The public alert page, in English or Spanish (`?lang=`, then Accept-Language)."""
    feed = _fresh(request)
    language = choose_language(request.query.get("lang"), request.headers.get("Accept-Language"))
    return conditional(request, feed.snapshot.pages[language], {
        "Cache-Control": _cache(request),
        "Vary": "Accept-Language",
        "Content-Language": language,
        "Content-Security-Policy": PAGE_CSP,
        "Referrer-Policy": "no-referrer",
    })


@routes.get("/public/alerts.json")
async def public_feed(request: web.Request) -> web.Response:
    """The active alerts and the latest all clear as JSON, for banners, apps and sites."""
    feed = _fresh(request)
    return conditional(request, feed.snapshot.feed, {
        "Cache-Control": _cache(request),
        "Content-Security-Policy": DATA_CSP,
        **_cors(request),
    })


@routes.options("/public/alerts.json")
async def public_feed_preflight(request: web.Request) -> web.Response:
    """CORS preflight: GET (and HEAD) from the configured origins."""
    headers = _cors(request)
    if "Access-Control-Allow-Origin" in headers:
        headers.update({
            "Access-Control-Allow-Methods": "GET, HEAD",
            "Access-Control-Allow-Headers": "If-None-Match",
            "Access-Control-Max-Age": "600",
        })
    return web.Response(status=204, headers=headers)


def _static(request: web.Request, name: str, csp: str = DATA_CSP) -> web.Response:
    return conditional(request, ASSETS[name], {
        "Cache-Control": f"public, max-age={ASSET_MAX_AGE_S}",
        "Content-Security-Policy": csp,
    })


@routes.get("/public/banner.js")
async def banner_script(request: web.Request) -> web.Response:
    """The website banner: one `<script src=".../public/banner.js" defer>` tag."""
    return _static(request, "banner.js")


@routes.get("/public/page.css")
async def page_style(request: web.Request) -> web.Response:
    """The public page's stylesheet (a file, so the page's CSP can forbid inline styles)."""
    return _static(request, "page.css")


@routes.get("/public/demo.css")
async def demo_style(request: web.Request) -> web.Response:
    """The demo host page's own stylesheet."""
    return _static(request, "demo.css")


@routes.get("/public/demo")
async def demo_page(request: web.Request) -> web.Response:
    """A stand-in campus home page with the banner, to see it work."""
    return _static(request, "demo.html", DEMO_CSP)


def setup(app: web.Application) -> None:
    """Keep the public snapshot in memory for as long as the service runs."""
    feed = app[SERVICE].public_feed
    app[PUBLIC_FEED] = feed

    async def lifecycle(_app: web.Application) -> object:
        await feed.start()
        yield
        await feed.stop()

    app.cleanup_ctx.append(lifecycle)  # type: ignore[arg-type]



def _served(description: str, media_type: str) -> dict[str, Any]:
    return {
        "200": {"description": description,
                "content": {media_type: {"schema": {"type": "string"}}}},
        "304": {"description": "not modified: the client's ETag (If-None-Match) is current"},
    }


_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                  "schema": {"type": "string"}}
_FEED_SCHEMA = {
    "type": "object",
    "required": ["institution", "page", "status", "alerts", "all_clear"],
    "properties": {
        "institution": {"type": "string"},
        "page": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "all_clear", "none"]},
        "alerts": {"type": "array", "items": {"type": "object"}},
        "all_clear": {"type": ["object", "null"]},
    },
}

# The public routes describe themselves in /openapi.json: no security, conditional GETs.
OPENAPI_PATHS: dict[str, Any] = {
    "/public": {"get": {"summary": "Redirects to /public/", "security": [],
                        "responses": {"308": {"description": "to /public/"}}}},
    "/public/": {"get": {
        "summary": "The public alert page (HTML, English or Spanish), no sign-in",
        "security": [],
        "parameters": [{"name": "lang", "in": "query", "required": False,
                        "schema": {"type": "string"}}, _IF_NONE_MATCH],
        "responses": _served("the page", "text/html"),
    }},
    "/public/alerts.json": {
        "get": {
            "summary": "Active alerts and the latest all clear, public words only (ETag, CORS)",
            "security": [],
            "parameters": [_IF_NONE_MATCH],
            "responses": {
                "200": {"description": "the feed",
                        "content": {"application/json": {"schema": _FEED_SCHEMA}}},
                "304": {"description": "not modified: the client's ETag is current"},
            },
        },
        "options": {"summary": "CORS preflight for the configured origins", "security": [],
                    "responses": {"204": {"description": "allowed methods, when allowed"}}},
    },
    "/public/banner.js": {"get": {"summary": "The website banner script", "security": [],
                                  "parameters": [_IF_NONE_MATCH],
                                  "responses": _served("JavaScript", "text/javascript")}},
    "/public/page.css": {"get": {"summary": "The public page's stylesheet", "security": [],
                                 "parameters": [_IF_NONE_MATCH],
                                 "responses": _served("CSS", "text/css")}},
    "/public/demo.css": {"get": {"summary": "The demo page's stylesheet", "security": [],
                                 "parameters": [_IF_NONE_MATCH],
                                 "responses": _served("CSS", "text/css")}},
    "/public/demo": {"get": {"summary": "A campus page carrying the banner", "security": [],
                             "parameters": [_IF_NONE_MATCH],
                             "responses": _served("HTML", "text/html")}},
}
