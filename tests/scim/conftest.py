"""Fixtures of the SCIM tests: a service that knows an identity provider's `scim` token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from dispatcher.access.auth import token_sha256
from tests.conftest import SettingsFactory
from tests.support import Running, start_service

# The plain token the identity provider is given; the service keeps its hash.
SCIM_TOKEN = "entra-provisioning-token-0001"
SCIM_AUTH = {"Authorization": f"Bearer {SCIM_TOKEN}"}
# A dispatcher's token: a role that may not provision.
DISPATCHER_TOKEN = "dispatcher-token-0000000002"


def scim_tokens() -> list[dict[str, Any]]:
    """`[[auth.tokens]]`: the identity provider's and a dispatcher's."""
    return [
        {"name": "entra", "role": "scim", "sha256": token_sha256(SCIM_TOKEN),
         "rate_per_second": 1000, "rate_burst": 5000},
        {"name": "dana", "role": "dispatcher", "sha256": token_sha256(DISPATCHER_TOKEN)},
    ]


@pytest_asyncio.fixture
async def scim(make_settings: SettingsFactory) -> AsyncIterator[Running]:
    """The service (e-mail only, the example campus) with the SCIM token."""
    run = await start_service(make_settings(auth={"tokens": scim_tokens()}))
    yield run
    await run.client.close()
