"""POST /v1/lint: the policy's verdict on one alert request or a list of them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field, RootModel

from dispatcher.alerting.lint import LintInputError, lint_one
from dispatcher.alerting.request import AlertRequest
from dispatcher.api.openapi import Body, Reply, Route, refused
from dispatcher.edge import (
    ViolationBody,
    error,
    read_json,
    reply,
    service_of,
    unless_none,
)
from dispatcher.places import campus_places
from dispatcher.settings import Settings

routes = web.RouteTableDef()

MAX_ITEMS = 500


class LintInput(RootModel[AlertRequest | Annotated[
        list[AlertRequest], Field(min_length=1, max_length=MAX_ITEMS)]]):
    """One alert request, or a list of them judged in order."""


class LintVerdict(BaseModel):
    """The policy's verdict on one alert request."""

    ok: bool = Field(description="true when nothing blocks the send (warnings may remain)")
    violations: list[ViolationBody]
    segments: dict[str, int]
    encoding: dict[str, str]
    derived: dict[str, str] = Field(
        description="the short channels whose text was derived from a longer one, with that text")
    languages: dict[str, dict[str, Any]] | None = unless_none()


class LintVerdicts(RootModel[LintVerdict | list[LintVerdict]]):
    """The verdict, or one per request in the order given."""


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
        return reply(LintVerdicts(verdicts))
    try:
        verdict = await asyncio.to_thread(lint_one, body, settings)
    except LintInputError as exc:
        return error(422, str(exc), problems=[{"field": "(body)", "message": str(exc)}])
    return reply(LintVerdicts(LintVerdict.model_validate(verdict)))


class _ItemError(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def _lint_all(items: list[Any], settings: Settings) -> list[LintVerdict]:
    out = []
    places = campus_places(settings)
    for index, item in enumerate(items):
        try:
            out.append(LintVerdict.model_validate(lint_one(item, settings, places=places)))
        except LintInputError as exc:
            raise _ItemError(index, str(exc)) from None
    return out


ROUTES = (
    Route("post", "/v1/lint",
          "The policy's verdict on an alert request (or a list), sending nothing",
          body=Body(LintInput),
          replies={200: Reply("the verdict, or one per request in order", LintVerdicts),
                   422: refused("not an alert request, or an empty or too long list")}),
)
