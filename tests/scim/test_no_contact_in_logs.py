"""A provisioning run logs no name, address or number, not even in its refusals."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from dispatcher.observability import configure_logging
from tests.scim.conftest import SCIM_AUTH
from tests.support import Running

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SECRETS = ("quinn.vale@example.edu", "Quinn", "Vale", "+12015550166", "201-555-0166")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line written during the test."""
    stream = io.StringIO()
    configure_logging("debug")
    handler = logging.getLogger().handlers[0]
    handler.stream = stream  # type: ignore[attr-defined]
    yield stream
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)


async def test_no_contact_data_in_logs(scim: Running, logs: io.StringIO) -> None:
    """Create, conflict, bad filter, patch and delete: the log shows none of the values."""
    body = {"schemas": [USER], "userName": SECRETS[0],
            "name": {"givenName": SECRETS[1], "familyName": SECRETS[2]},
            "emails": [{"value": SECRETS[0]}],
            "phoneNumbers": [{"value": SECRETS[4], "type": "mobile"}]}
    created = await scim.client.post("/scim/v2/Users", json=body, headers=SCIM_AUTH)
    assert created.status == 201
    user = (await created.json())["id"]
    again = await scim.client.post("/scim/v2/Users", json=body, headers=SCIM_AUTH)
    assert again.status == 409
    bad = await scim.client.get("/scim/v2/Users", headers=SCIM_AUTH,
                                params={"filter": f'userName eq "{SECRETS[0]}" and'})
    assert bad.status == 400
    patched = await scim.client.patch(f"/scim/v2/Users/{user}", headers=SCIM_AUTH, json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "phoneNumbers", "value": "not a list"}]})
    assert patched.status == 400
    gone = await scim.client.delete(f"/scim/v2/Users/{user}", headers=SCIM_AUTH)
    assert gone.status == 204
    text = logs.getvalue()
    assert "/scim/v2/Users" in text
    for value in SECRETS:
        assert value not in text
