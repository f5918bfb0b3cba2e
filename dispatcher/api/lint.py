"""POST /v1/lint: the policy's verdict on one alert request or a list of them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from dispatcher.api.common import error, read_json, service_of
from dispatcher.lint import LintInputError, lint_one
from dispatcher.places import campus_places
from dispatcher.settings import Settings

routes = web.RouteTableDef()

MAX_ITEMS = 500


@routes.post("/v1/lint")
async def lint(request: web.Request) -> web.Response:
    """Judge a request object (or a list of them) without sending anything."""
    body = await read_json(request)
    settings = service_of(request).settings
    if isinstance(body, list):
        if not body:
            return error(422, "the list of alert requests is empty")
        if len(body) > MAX_ITEMS:
            return error(422, f"at most {MAX_ITEMS} alert requests at a time")
        try:
            verdicts = await asyncio.to_thread(_lint_all, body, settings)
        except _ItemError as exc:
            return error(
                422,
                f"item {exc.index}: {exc.message}",
                index=exc.index,
                problems=[{"field": f"[{exc.index}]", "message": exc.message}],
            )
        return web.json_response(verdicts)
    try:
        verdict = await asyncio.to_thread(lint_one, body, settings)
    except LintInputError as exc:
        return error(422, str(exc), problems=[{"field": "(body)", "message": str(exc)}])
    return web.json_response(verdict)


class _ItemError(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def _lint_all(items: list[Any], settings: Settings) -> list[dict[str, Any]]:
    out = []
    places = campus_places(settings)
    for index, item in enumerate(items):
        try:
            out.append(lint_one(item, settings, places=places))
        except LintInputError as exc:
            raise _ItemError(index, str(exc)) from None
    return out
