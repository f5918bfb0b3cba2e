"""The SCIM endpoints pass scim2-tester, a third-party checker of RFC 7643/7644, run against
the service served on a free port: discovery, then create, read, query, replace, patch and
delete of Users and Groups with the values it makes up."""

from __future__ import annotations

import asyncio

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.scim.conftest import SCIM_AUTH
from tests.support import Running


def _check(base_url: str) -> list[tuple[str, str, str]]:
    with Client(base_url=base_url, headers=SCIM_AUTH, timeout=30) as http:
        results = check_server(SyncSCIMClient(http))
    return [(r.title, str(r.status), r.reason or "") for r in results]


async def test_scim2_tester_finds_no_error(scim: Running) -> None:
    """Every check of the compliance checker passes (none errs or fails)."""
    base = f"{scim.service.settings.service.public_url}/scim/v2"
    results = await asyncio.to_thread(_check, base)
    assert len(results) > 40
    failed = [r for r in results if r[1] not in (str(Status.SUCCESS), str(Status.SKIPPED))]
    assert failed == [], "\n".join(map(str, failed))
