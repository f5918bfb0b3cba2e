"""A real SCIM client (scim2-client over httpx2) makes the calls Microsoft Entra ID and Okta make
when they provision a campus, and the directory, the audiences and the audit follow."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from httpx2 import AsyncClient
from scim2_client.engines.httpx2 import AsyncSCIMClient
from scim2_models import (
    Email,
    EnterpriseUser,
    Error,
    Group,
    GroupMember,
    ListResponse,
    Name,
    PatchOp,
    PatchOperation,
    PhoneNumber,
    SearchRequest,
    User,
)

from tests.scim.conftest import SCIM_AUTH
from tests.support import AUTH, Running

Staff = User[EnterpriseUser]
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest_asyncio.fixture
async def idp(scim: Running) -> AsyncIterator[AsyncSCIMClient]:
    """A SCIM client that has discovered the service, as a provider does when connected."""
    base = f"{scim.service.settings.service.public_url}/scim/v2"
    async with AsyncClient(base_url=base, headers=SCIM_AUTH, timeout=30) as http:
        client = AsyncSCIMClient(http)
        await client.discover()
        yield client


def _person(user_name: str, **extra: Any) -> Any:
    return Staff(
        user_name=user_name,
        external_id=extra.pop("external_id", f"ext-{user_name}"),
        name=Name(given_name="Ana", family_name="Lima"),
        display_name="Ana Lima",
        emails=[Email(value=user_name, type="work", primary=True)],
        phone_numbers=[PhoneNumber(value="(201) 555-0188", type="mobile"),
                       PhoneNumber(value="+1 201 555 0199", type="work")],
        preferred_language="es-MX",
        user_type="Faculty",
        active=True,
        **extra,
    )


async def _row(run: Running, person_id: str) -> dict[str, Any] | None:
    row = await run.service.db.fetchone(
        "SELECT email, phone, role, language, first_name, groups FROM people WHERE id = ?",
        (person_id,),
    )
    return dict(zip(("email", "phone", "role", "language", "first_name", "groups"),
                    tuple(row), strict=True)) if row is not None else None


async def _attributes(run: Running, person_id: str) -> set[tuple[str, str]]:
    rows = await run.service.db.fetchall(
        "SELECT name, value FROM person_attributes WHERE person_id = ?", (person_id,)
    )
    return {(r["name"], r["value"]) for r in rows}


async def _entra_user(idp: AsyncSCIMClient, user_name: str, **extra: Any) -> Any:
    """Entra ID looks a user up by its matching attribute, then creates it."""
    found = await idp.query(Staff, query_parameters=SearchRequest(
        filter=f'userName eq "{user_name}"', start_index=1, count=1))
    assert isinstance(found, ListResponse)
    assert found.total_results == 0
    department = extra.pop("department", "Biology")
    user = _person(user_name, **extra)
    user[EnterpriseUser] = EnterpriseUser(department=department, employee_number="E-7731")
    return await idp.create(user)


class TestEntraId:
    """The calls of Entra ID's provisioning service."""

    async def test_a_created_user_is_a_directory_person(
        self, scim: Running, idp: AsyncSCIMClient
    ) -> None:
        """Mobile number, address, language, role, department and employee number land in the
        person's row and segment attributes; the work number does not."""
        created = await _entra_user(idp, "ana.lima@example.edu")
        assert created.id and created.meta.location.endswith(f"/Users/{created.id}")
        assert await _row(scim, created.id) == {
            "email": "ana.lima@example.edu", "phone": "+12015550188", "role": "faculty",
            "language": "es", "first_name": "Ana", "groups": "",
        }
        assert await _attributes(scim, created.id) == {
            ("department", "biology"), ("employee_number", "e-7731"),
        }

    async def test_filters_find_by_each_matching_attribute(self, idp: AsyncSCIMClient) -> None:
        """userName (any case), externalId, emails.value and displayName, with and/or."""
        ana = await _entra_user(idp, "ana.lima@example.edu")
        await _entra_user(idp, "bo.chen@example.edu")
        for text in (
            'userName eq "ANA.LIMA@example.edu"',
            'externalId eq "ext-ana.lima@example.edu"',
            'emails.value eq "ana.lima@example.edu"',
            'emails[type eq "work" and value eq "ana.lima@example.edu"]',
            'displayName eq "Ana Lima" and userName eq "ana.lima@example.edu"',
            'userName eq "ana.lima@example.edu" or userName eq "nobody@example.edu"',
            'userName sw "ana."',
        ):
            found = await idp.query(Staff, query_parameters=SearchRequest(filter=text))
            assert isinstance(found, ListResponse), text
            assert [r.id for r in found.resources or []] == [ana.id], text
        both = await idp.query(Staff, query_parameters=SearchRequest(
            filter='displayName eq "Ana Lima"'))
        assert isinstance(both, ListResponse)
        assert both.total_results == 2

    async def test_patch_as_entra_sends_it(self, scim: Running, idp: AsyncSCIMClient) -> None:
        """Capitalised ops, a filtered path, the extension's URN path and a string "False"."""
        user = await _entra_user(idp, "ana.lima@example.edu")
        raw = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value',
                 "value": "+1 215 555 0144"},
                {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Chemistry"},
                {"op": "Add", "path": "preferredLanguage", "value": "fr-CA"},
            ],
        }
        patched = await idp.modify(Staff, user.id, raw)
        assert not isinstance(patched, Error)
        row = await _row(scim, user.id)
        assert row is not None
        assert (row["phone"], row["language"]) == ("+12155550144", "fr")
        assert ("department", "chemistry") in await _attributes(scim, user.id)
        off = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
        disabled = await idp.modify(Staff, user.id, off)
        assert not isinstance(disabled, Error)
        assert disabled.active is False
        assert await _row(scim, user.id) is None
        on = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "Replace", "value": {"active": True}}]}
        await idp.modify(Staff, user.id, on)
        assert await _row(scim, user.id) is not None

    async def test_groups_become_segment_terms(self, scim: Running, idp: AsyncSCIMClient
                                               ) -> None:
        """A group pushed with members, then changed member by member, is the `group:` term
        of those people, and an alert to it reaches them."""
        ana = await _entra_user(idp, "ana.lima@example.edu")
        bo = await _entra_user(idp, "bo.chen@example.edu")
        group = await idp.create(Group(display_name="CHEM-101", external_id="g-1",
                                       members=[GroupMember(value=ana.id)]))
        assert ("group", "chem-101") in await _attributes(scim, ana.id)
        add = PatchOp[Group](operations=[PatchOperation[Group](
            op=PatchOperation.Op.add, path="members", value=[{"value": bo.id}])])
        await idp.modify(Group, group.id, add)
        remove = PatchOp[Group](operations=[PatchOperation[Group](
            op=PatchOperation.Op.remove, path=f'members[value eq "{ana.id}"]')])
        await idp.modify(Group, group.id, remove)
        assert ("group", "chem-101") not in await _attributes(scim, ana.id)
        assert ("group", "chem-101") in await _attributes(scim, bo.id)
        fetched = await idp.query(Staff, bo.id)
        assert [g.display for g in fetched.groups or []] == ["CHEM-101"]

        response = await scim.post_alert({
            "kind": "advisory", "audience": "group:chem-101", "channels": ["email"],
            "text": "Lab 2 in Carver Hall is closed today. Go to Lab 4 for CHEM-101 instead.",
        })
        assert response.status == 202, await response.text()
        alert = await response.json()
        await scim.wait_state(alert["id"])
        rows = await scim.service.db.fetchall(
            "SELECT recipient FROM deliveries WHERE alert_id = ?", (alert["id"],))
        assert [r["recipient"] for r in rows] == [bo.id]

    async def test_entra_departures_from_the_rfc(self, scim: Running, idp: AsyncSCIMClient
                                                 ) -> None:
        """Entra removes members by naming them in `value`, and replaces a work address
        that the user does not have yet; both are taken as Entra means them."""
        ana = await _entra_user(idp, "ana.lima@example.edu")
        bo = await _entra_user(idp, "bo.chen@example.edu")
        group = await idp.create(Group(display_name="Night Staff", members=[
            GroupMember(value=ana.id), GroupMember(value=bo.id)]))
        remove = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                  "Operations": [{"op": "Remove", "path": "members",
                                  "value": [{"value": ana.id}]}]}
        response = await scim.client.patch(f"/scim/v2/Groups/{group.id}", json=remove,
                                           headers=SCIM_AUTH)
        assert response.status == 200, await response.text()
        assert [m["value"] for m in (await response.json())["members"]] == [bo.id]
        assert ("group", "night staff") not in await _attributes(scim, ana.id)
        plain = await idp.create(Staff(user_name="cy.park@example.edu"))
        add_mail = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "Replace", "path": 'emails[type eq "work"].value',
                                    "value": "cy.park@example.edu"}]}
        response = await scim.client.patch(f"/scim/v2/Users/{plain.id}", json=add_mail,
                                           headers=SCIM_AUTH)
        assert response.status == 200, await response.text()
        row = await _row(scim, plain.id)
        assert row is not None and row["email"] == "cy.park@example.edu"

    async def test_delete_removes_the_person(self, scim: Running, idp: AsyncSCIMClient) -> None:
        """DELETE answers 204, the person is gone, and the resource is a 404 after."""
        user = await _entra_user(idp, "ana.lima@example.edu")
        await idp.delete(Staff, user.id)
        assert await _row(scim, user.id) is None
        response = await scim.client.get(f"/scim/v2/Users/{user.id}", headers=SCIM_AUTH)
        assert response.status == 404
        body = await response.json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


class TestOkta:
    """The calls of Okta's SCIM 2.0 provisioning: PUT to update, PATCH to deactivate."""

    async def test_put_replaces_and_patch_deactivates(
        self, scim: Running, idp: AsyncSCIMClient
    ) -> None:
        """A PUT without a mobile number clears the phone; `active: false` by PATCH removes
        the person but keeps the SCIM resource readable."""
        user = await _entra_user(idp, "cy.park@example.edu", department="History")
        replacement = _person("cy.park@example.edu")
        replacement.id = user.id
        replacement.phone_numbers = None
        replaced = await idp.replace(replacement)
        assert not isinstance(replaced, Error)
        row = await _row(scim, user.id)
        assert row is not None and row["phone"] == ""
        assert ("department", "history") not in await _attributes(scim, user.id)
        off = PatchOp[Staff](operations=[PatchOperation[Staff](
            op=PatchOperation.Op.replace_, value={"active": False})])
        await idp.modify(Staff, user.id, off)
        assert await _row(scim, user.id) is None
        kept = await idp.query(Staff, user.id)
        assert kept.active is False and kept.user_name == "cy.park@example.edu"

    async def test_pages_of_users(self, idp: AsyncSCIMClient) -> None:
        """startIndex and count page through the users in creation order."""
        ids = [(await _entra_user(idp, f"p{i}@example.edu")).id for i in range(5)]
        seen: list[str] = []
        for start in (1, 3, 5):
            page = await idp.query(Staff, query_parameters=SearchRequest(
                start_index=start, count=2))
            assert isinstance(page, ListResponse)
            assert page.total_results == 5 and page.start_index == start
            seen += [r.id for r in page.resources or []]
        assert seen == ids


class TestRefusals:
    """Tokens, bodies and conflicts answer in SCIM's error format."""

    async def test_tokens(self, scim: Running) -> None:
        """No token: 401; a dispatcher's token: 403 here; the scim token: 403 on /v1/."""
        none = await scim.client.get("/scim/v2/Users")
        assert none.status == 401
        assert (await none.json())["status"] == "401"
        other = await scim.client.get("/scim/v2/Users", headers=AUTH)
        assert other.status == 403
        assert "urn:ietf:params:scim:api:messages:2.0:Error" in (await other.json())["schemas"]
        api = await scim.client.get("/v1/devices", headers=SCIM_AUTH)
        assert api.status == 403

    @pytest.mark.parametrize(("body", "status", "scim_type"), [
        ("{not json", 400, "invalidSyntax"),
        (json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}), 400, None),
        (json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                     "userName": "dup@example.edu"}), 409, "uniqueness"),
    ])
    async def test_bad_bodies(
        self, scim: Running, body: str, status: int, scim_type: str | None
    ) -> None:
        """Bad JSON, a missing userName and a userName taken already."""
        first = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                 "userName": "DUP@example.edu"}
        assert (await scim.client.post("/scim/v2/Users", json=first,
                                       headers=SCIM_AUTH)).status == 201
        response = await scim.client.post(
            "/scim/v2/Users", data=body,
            headers={**SCIM_AUTH, "Content-Type": "application/scim+json"})
        assert response.status == status
        assert response.content_type == "application/scim+json"
        error = await response.json()
        assert error["status"] == str(status)
        if scim_type:
            assert error["scimType"] == scim_type

    async def test_bad_filter(self, scim: Running) -> None:
        """A filter that does not parse is invalidFilter."""
        response = await scim.client.get("/scim/v2/Users", params={"filter": "userName eq"},
                                         headers=SCIM_AUTH)
        assert response.status == 400
        assert (await response.json())["scimType"] == "invalidFilter"
