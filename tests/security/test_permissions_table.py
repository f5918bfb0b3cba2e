"""Every authorization decision in `dispatcher/access/permissions.py`, by every role and scope, as
one table: what the default settings allow (approval's approver roles, override, need-help,
incident roles as shipped)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dispatcher.access.auth import Caller, Role
from dispatcher.access.permissions import Permissions
from dispatcher.domain import Mode
from dispatcher.incidents.settings import IncidentSettings
from dispatcher.refusals import Forbidden
from dispatcher.settings import AuthSettings

SEGMENTS = {"residents-north": "role:student and building:north-hall",
            "responders": "group:police"}
ALL = "all"
NORTH = "residents-north"
OTHER = "someone-else"  # the person who composed a held request

PERMISSIONS = Permissions(
    AuthSettings.model_validate({"approval": {"bypass_roles": ["admin"]}}),
    SEGMENTS, IncidentSettings(),
)

Check = Callable[[Caller], None]


def _may(decide: Callable[[Caller], bool]) -> Check:
    def check(caller: Caller) -> None:
        if not decide(caller):
            raise Forbidden("no")
    return check


ACTIONS: dict[str, Check] = {
    "send live": lambda c: PERMISSIONS.check_send(c, Mode.LIVE),
    "send drill": lambda c: PERMISSIONS.check_send(c, Mode.DRILL),
    "target all": lambda c: PERMISSIONS.check_audience(c, ALL),
    "target north": lambda c: PERMISSIONS.check_audience(c, NORTH),
    "override policy": PERMISSIONS.check_override,
    "bypass approval": _may(PERMISSIONS.may_bypass_approval),
    "approve all": lambda c: PERMISSIONS.check_approve(c, Caller(OTHER, Role.DISPATCHER), ALL),
    "approve north": lambda c: PERMISSIONS.check_approve(
        c, Caller(OTHER, Role.DISPATCHER), NORTH),
    "approve own": lambda c: PERMISSIONS.check_approve(c, c, NORTH),
    "reject all": lambda c: PERMISSIONS.check_reject(c, Caller(OTHER, Role.DISPATCHER), ALL),
    "reject north": lambda c: PERMISSIONS.check_reject(c, Caller(OTHER, Role.DISPATCHER), NORTH),
    "withdraw own": lambda c: PERMISSIONS.check_reject(c, c, ALL),
    "cancel live all": lambda c: PERMISSIONS.check_cancel(c, Mode.LIVE, ALL),
    "cancel drill north": lambda c: PERMISSIONS.check_cancel(c, Mode.DRILL, NORTH),
    "note live": lambda c: PERMISSIONS.check_note(c, Mode.LIVE),
    "note drill": lambda c: PERMISSIONS.check_note(c, Mode.DRILL),
    "see need-help all": _may(lambda c: PERMISSIONS.may_see_need_help(c, ALL)),
    "write": PERMISSIONS.check_write,
    "feed proposal all": lambda c: PERMISSIONS.check_feed_proposal(c, Mode.LIVE, ALL),
    "feed proposal north": lambda c: PERMISSIONS.check_feed_proposal(c, Mode.LIVE, NORTH),
    "incident write": PERMISSIONS.check_incident_write,
    "incident private": PERMISSIONS.check_read_incident_private,
    "incident decide": PERMISSIONS.check_decide_incident,
    "incident link": PERMISSIONS.check_link_incident,
    "manage tokens": PERMISSIONS.check_manage_tokens,
    "use the api": PERMISSIONS.check_api,
    "provision": PERMISSIONS.check_provision,
    "manage directory": PERMISSIONS.check_manage_directory,
}

CALLERS = {
    "admin": Caller("a", Role.ADMIN),
    "dispatcher": Caller("d", Role.DISPATCHER),
    "dispatcher@north": Caller("n", Role.DISPATCHER, ("residents-north",)),
    "drill": Caller("r", Role.DRILL),
    "drill@north": Caller("rn", Role.DRILL, ("residents-north",)),
    "viewer": Caller("v", Role.VIEWER),
    "scim": Caller("s", Role.SCIM),
}

# Y: allowed, .: refused. Columns in CALLERS' order.
TABLE = """
                      admin dispatcher dispatcher@north drill drill@north viewer scim
send live             Y     Y          Y                .     .           .     .
send drill            Y     Y          Y                Y     Y           .     .
target all            Y     Y          .                Y     .           Y     Y
target north          Y     Y          Y                Y     Y           Y     Y
override policy       Y     .          .                .     .           .     .
bypass approval       Y     .          .                .     .           .     .
approve all           Y     Y          .                .     .           .     .
approve north         Y     Y          Y                .     .           .     .
approve own           .     .          .                .     .           .     .
reject all            Y     Y          .                .     .           .     .
reject north          Y     Y          Y                .     .           .     .
withdraw own          Y     Y          Y                Y     Y           Y     Y
cancel live all       Y     Y          .                .     .           .     .
cancel drill north    Y     Y          Y                Y     Y           .     .
note live             Y     Y          Y                .     .           .     .
note drill            Y     Y          Y                Y     Y           Y     .
see need-help all     Y     Y          .                .     .           .     .
write                 Y     Y          Y                Y     Y           .     .
feed proposal all     Y     Y          .                .     .           .     .
feed proposal north   Y     Y          Y                .     .           .     .
incident write        Y     Y          Y                .     .           .     .
incident private      Y     .          .                .     .           .     .
incident decide       Y     Y          Y                .     .           .     .
incident link         Y     Y          Y                .     .           .     .
manage tokens         Y     .          .                .     .           .     .
use the api           Y     Y          Y                Y     Y           Y     .
provision             .     .          .                .     .           .     Y
manage directory      Y     .          .                .     .           .     .
"""


def _table() -> list[tuple[str, str, bool]]:
    lines = [line for line in TABLE.strip().splitlines()]
    columns = lines[0].split()
    assert columns == list(CALLERS)
    cases = []
    for line in lines[1:]:
        marks = line.split()[-len(columns):]
        action = line[:22].strip()
        assert action in ACTIONS, action
        cases += [(action, who, mark == "Y") for who, mark in zip(columns, marks, strict=True)]
    return cases


def test_every_action_is_in_the_table() -> None:
    """The table has a row for every action and nothing else."""
    assert {a for a, _, _ in _table()} == set(ACTIONS)


@pytest.mark.parametrize(("action", "who", "allowed"), _table())
def test_decision(action: str, who: str, allowed: bool) -> None:
    """One cell: the check passes when allowed, and raises Forbidden when not."""
    check = ACTIONS[action]
    if allowed:
        check(CALLERS[who])
    else:
        with pytest.raises(Forbidden):
            check(CALLERS[who])


def test_every_public_decision_is_covered() -> None:
    """Every check_/may_ method of Permissions is used by a row of the table."""
    methods = {m for m in dir(Permissions) if m.startswith(("check_", "may_"))}
    used = {"check_send", "check_audience", "check_override", "may_bypass_approval",
            "check_approve", "check_reject", "check_cancel", "check_note",
            "may_see_need_help", "check_write", "check_feed_proposal", "check_incident_write",
            "check_read_incident_private", "check_decide_incident", "check_manage_tokens",
            "check_link_incident", "check_api", "check_provision",
            "check_manage_directory"}
    # may_* twins of a covered check_* answer the same question without raising.
    twins = {"may_approve", "may_override", "may_read_incident_private", "may_manage_tokens",
             "may_send", "may_write_incidents", "may_decide_incident"}
    assert methods == used | twins


@pytest.mark.parametrize("who", list(CALLERS))
def test_twins_agree(who: str) -> None:
    """Each may_* answers what its check_* decides."""
    caller = CALLERS[who]
    other = Caller(OTHER, Role.DISPATCHER)
    pairs: list[tuple[bool, Check]] = [
        (PERMISSIONS.may_approve(caller, other, ALL),
         lambda c: PERMISSIONS.check_approve(c, other, ALL)),
        (PERMISSIONS.may_override(caller), PERMISSIONS.check_override),
        (PERMISSIONS.may_read_incident_private(caller), PERMISSIONS.check_read_incident_private),
        (PERMISSIONS.may_manage_tokens(caller), PERMISSIONS.check_manage_tokens),
        (PERMISSIONS.may_send(caller, Mode.LIVE), lambda c: PERMISSIONS.check_send(c, Mode.LIVE)),
        (PERMISSIONS.may_send(caller, Mode.DRILL),
         lambda c: PERMISSIONS.check_send(c, Mode.DRILL)),
        (PERMISSIONS.may_write_incidents(caller), PERMISSIONS.check_incident_write),
        (PERMISSIONS.may_decide_incident(caller), PERMISSIONS.check_decide_incident),
    ]
    for allowed, check in pairs:
        try:
            check(caller)
        except Forbidden:
            assert not allowed
        else:
            assert allowed
