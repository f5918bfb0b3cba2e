"""The answer page: a person's own link (push, e-mail) opens it with no sign-in; one tap on a
big button records "I'm safe" or "I need help". The signed, single-use, expiring token in the
link is the secret, so the form needs no session or CSRF token; opening the page (a mail
scanner's prefetch too) uses nothing up, only the tap does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from dispatcher.edge import REFUSAL_STATUS, error, read_form, service_of
from dispatcher.refusals import Conflict, NotFound, Refused
from dispatcher.templating import environment

routes = web.RouteTableDef()

PATH = "/public/answer/{alert_id}/{token}"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

_WORDS = {
    "en": {"title": "Campus alert", "safe": "I'm safe", "need_help": "I need help",
           "done_safe": "Thank you. You are marked safe.",
           "done_need_help": "Help is on the way. If you can, call 911.",
           "used": "This link has already been used. Thank you for answering.",
           "invalid": "This link is not valid or has expired."},
    "es": {"title": "Alerta del campus", "safe": "Estoy a salvo", "need_help": "Necesito ayuda",
           "done_safe": "Gracias. Está marcado a salvo.",
           "done_need_help": "La ayuda va en camino. Si puede, llame al 911.",
           "used": "Este enlace ya se usó. Gracias por responder.",
           "invalid": "Este enlace no es válido o ha caducado."},
}
_PAGE = environment("dispatcher.public").get_template("answer.html")


def _page(
    language: str,
    status: int = 200,
    *,
    heading: str = "",
    message: str = "",
    options: Sequence[tuple[str, str]] = (),
) -> web.Response:
    words = _WORDS.get(language, _WORDS["en"])
    html = _PAGE.render(language=language, title=words["title"], heading=heading,
                        message=message, options=options)
    return web.Response(text=html, status=status, content_type="text/html", headers={
        "Content-Security-Policy": CSP, "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    })


def _refused(request: web.Request, exc: Refused) -> web.Response:
    """A person's browser gets a page; any other client the API's JSON error."""
    status = _status(exc)
    if "text/html" not in request.headers.get("Accept", ""):
        return error(status, exc.message)
    key = "used" if isinstance(exc, Conflict) else "invalid"
    return _page("en", status, message=_WORDS["en"][key])


def _status(exc: Refused) -> int:
    # Public HTML, not the JSON API, but the statuses of edge.py.
    return next((code for cls, code in REFUSAL_STATUS if isinstance(exc, cls)), 400)


@routes.get(PATH)
async def answer_page(request: web.Request) -> web.Response:
    """The question and two big buttons, in the person's language."""
    service = service_of(request)
    alert_id, token = request.match_info["alert_id"], request.match_info["token"]
    try:
        claims = await service.responses.read_token(alert_id, token)
    except Refused as exc:
        return _refused(request, exc)
    question = await service.responses.question(alert_id)
    if question is None:
        return _refused(request, NotFound(f"alert {alert_id} asks no question"))
    language = await service.responses.store.delivery_language(alert_id, claims.person_id)
    words = _WORDS.get(language, _WORDS["en"])
    return _page(language, heading=question.text(language),
                 options=[(o, words.get(o, o)) for o in question.options])


@routes.post(PATH)
async def answer_tap(request: web.Request) -> web.Response:
    """One tap: the token is checked and used up, and the answer recorded."""
    service = service_of(request)
    alert_id, token = request.match_info["alert_id"], request.match_info["token"]
    form = await read_form(request)
    option = str(form.get("option") or "")
    try:
        recorded = await service.responses.answer_with_token(alert_id, token, option)
    except Refused as exc:
        return _refused(request, exc)
    language = await service.responses.store.delivery_language(alert_id, recorded.person_id)
    words = _WORDS.get(language, _WORDS["en"])
    return _page(language, heading=words["done_" + recorded.option])


_PARAMETERS = [
    {"name": "alert_id", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
     "description": "the person's signed, single-use answer token"},
]
OPENAPI_PATHS: dict[str, Any] = {
    PATH: {
        "get": {
            "summary": "the answer page (HTML, no sign-in): the question and two big buttons",
            "security": [], "parameters": _PARAMETERS,
            "responses": {"200": {"description": "the page"},
                          "403": {"description": "forged, expired or another alert's link"},
                          "409": {"description": "the link was already used"}},
        },
        "post": {
            "summary": "one tap: records the answer and uses the token up",
            "security": [], "parameters": _PARAMETERS,
            "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "properties": {"option": {"enum": ["safe", "need_help"]}}}}}},
            "responses": {"200": {"description": "recorded"},
                          "403": {"description": "forged, expired or another alert's link"},
                          "409": {"description": "the link was already used"},
                          "422": {"description": "not an option of the question"}},
        },
    }
}
