"""Who may do what: every authorization decision of the service, in one place.

Intake, approvals and the HTTP routes ask `Permissions` before they act; each check either
returns or raises `Forbidden` with the sentence the caller sees. Authentication (who the
caller is) stays in `dispatcher/access/auth.py`.
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.access.auth import Caller, Role, scope_permits
from dispatcher.domain import Mode
from dispatcher.incidents.settings import IncidentSettings
from dispatcher.refusals import Forbidden
from dispatcher.settings import AuthSettings


class Permissions:
    """The rules of roles and scopes, from the `[auth]` settings and the named segments."""

    def __init__(
        self, auth: AuthSettings, segments: Mapping[str, str], incidents: IncidentSettings
    ) -> None:
        self._segments = dict(segments)
        self._private_incident = frozenset(Role(r) for r in incidents.private_roles)
        self._decide_incident = frozenset(Role(r) for r in incidents.decide_roles)
        self._override = frozenset(Role(r) for r in auth.override_roles)
        self._approvers = frozenset(Role(r) for r in auth.approval.approver_roles)
        self._bypass = frozenset(Role(r) for r in auth.approval.bypass_roles)
        self._need_help = frozenset(Role(r) for r in auth.need_help_roles)

    def in_scope(self, caller: Caller, audience: str) -> bool:
        """Whether an audience stays inside the caller's segment scopes."""
        return scope_permits(audience, caller.scopes, self._segments)

    def check_send(self, caller: Caller, mode: Mode) -> None:
        """May the caller create an alert of this mode at all?"""
        if not caller.can_send:
            raise Forbidden(f"role {caller.role} may not send alerts", field="mode")
        if mode is Mode.LIVE and not caller.can_send_live:
            raise Forbidden(f"role {caller.role} may send drills and tests only", field="mode")

    def may_send(self, caller: Caller, mode: Mode) -> bool:
        """Whether `check_send` would let the caller send this mode (for offering the form)."""
        try:
            self.check_send(caller, mode)
        except Forbidden:
            return False
        return True

    def check_audience(self, caller: Caller, audience: str) -> None:
        """May the caller target this audience (department tokens are scoped)?"""
        if not self.in_scope(caller, audience):
            raise Forbidden(
                f"You may only send to: {', '.join(caller.scopes)} "
                "(by name, or joined to other terms with 'and')",
                counted_as="scope", field="audience",
            )

    def may_override(self, caller: Caller) -> bool:
        """Whether the caller may send despite policy errors."""
        return caller.role in self._override

    def check_override(self, caller: Caller) -> None:
        """May the caller override message policy rules?"""
        if not self.may_override(caller):
            raise Forbidden(f"role {caller.role} may not override the message policy",
                            field="override")

    def may_bypass_approval(self, caller: Caller) -> bool:
        """Whether the caller may send at once what would need a second person."""
        return caller.role in self._bypass

    def check_approve(self, approver: Caller, requester: Caller, audience: str) -> None:
        """May this person approve a request composed by `requester`?

        The two-person rule compares people, not credential names: one person's API token
        and console account are the same person.
        """
        if approver.role not in self._approvers:
            raise Forbidden(f"role {approver.role} may not approve alerts")
        if approver.person == requester.person:
            raise Forbidden("a second person must approve: the composer cannot")
        if not self.in_scope(approver, audience):
            raise Forbidden(
                f"this token may only approve for: {', '.join(approver.scopes)}",
                counted_as="scope",
            )

    def may_approve(self, approver: Caller, requester: Caller, audience: str) -> bool:
        """Whether `check_approve` would let this person approve (for offering the button)."""
        try:
            self.check_approve(approver, requester, audience)
        except Forbidden:
            return False
        return True

    def check_reject(self, caller: Caller, requester: Caller, audience: str) -> None:
        """May this person refuse (an approver in scope) or withdraw (its composer) a held
        request? A veto is as strong as an approval, so it has the same scope rule."""
        if caller.person == requester.person:
            return
        if caller.role not in self._approvers:
            raise Forbidden(f"role {caller.role} may not reject approval requests")
        if not self.in_scope(caller, audience):
            raise Forbidden(
                f"this token may only reject for: {', '.join(caller.scopes)}",
                counted_as="scope",
            )

    def check_feed_proposal(self, caller: Caller, mode: Mode, audience: str) -> None:
        """May the caller send or dismiss a feed's proposal of this mode and audience?"""
        self.check_write(caller)
        self.check_send(caller, mode)
        if not self.in_scope(caller, audience):
            raise Forbidden("this proposal's audience is outside the caller's scope",
                            counted_as="scope")

    def check_cancel(self, caller: Caller, mode: Mode, audience: str) -> None:
        """May the caller cancel an alert of this mode and audience?"""
        if not caller.can_send or (mode is Mode.LIVE and not caller.can_send_live):
            raise Forbidden(f"role {caller.role} may not cancel this alert")
        if not self.in_scope(caller, audience):
            raise Forbidden(
                f"this token may only cancel alerts for: {', '.join(caller.scopes)}",
                counted_as="scope",
            )

    def check_note(self, caller: Caller, mode: Mode) -> None:
        """May the caller add a follow-up note to the record of an alert of this mode?"""
        if caller.role is Role.SCIM:
            raise Forbidden("role scim may only provision people")
        if mode is Mode.LIVE and not caller.can_send_live:
            raise Forbidden(f"role {caller.role} may add notes to drills and tests only")

    def may_see_need_help(self, caller: Caller, audience: str) -> bool:
        """Whether the caller may read who needs help, with their building and contacts."""
        return caller.role in self._need_help and self.in_scope(caller, audience)

    def check_write(self, caller: Caller) -> None:
        """May the caller change anything (viewers only read)?"""
        if caller.role is Role.VIEWER:
            raise Forbidden("role viewer may only read")
        if caller.role is Role.SCIM:
            raise Forbidden("role scim may only provision people")

    def check_api(self, caller: Caller) -> None:
        """May the caller use the alerting API (`/v1/`)? Provisioning tokens may not."""
        if caller.role is Role.SCIM:
            raise Forbidden("role scim may only use the SCIM endpoints (/scim/v2/)")

    def check_provision(self, caller: Caller) -> None:
        """May the caller create, change and remove people and groups over SCIM?"""
        if caller.role is not Role.SCIM:
            raise Forbidden(f"role {caller.role.value} may not use the SCIM endpoints")

    def may_write_incidents(self, caller: Caller) -> bool:
        """Whether `check_incident_write` would let the caller in (for offering the forms)."""
        return caller.can_send_live

    def check_incident_write(self, caller: Caller) -> None:
        """May the caller record or change incidents and the crime log?"""
        if not self.may_write_incidents(caller):
            raise Forbidden(f"role {caller.role.value} may not record or change incidents")

    def check_link_incident(self, caller: Caller) -> None:
        """May the caller link an alert to an incident (it writes to the incident's record)?"""
        if not caller.can_send_live:
            raise Forbidden(
                f"role {caller.role.value} may not link an alert to an incident",
                field="incident",
            )

    def check_manage_tokens(self, caller: Caller) -> None:
        """May the caller list, issue and revoke API tokens?"""
        if caller.role is not Role.ADMIN:
            raise Forbidden(f"role {caller.role.value} may not manage API tokens")

    def check_manage_directory(self, caller: Caller) -> None:
        """May the caller read directory imports and confirm or discard a held one?"""
        if caller.role is not Role.ADMIN:
            raise Forbidden(f"role {caller.role.value} may not manage directory imports")

    def may_manage_tokens(self, caller: Caller) -> bool:
        """Whether `check_manage_tokens` would let the caller in (for offering the page)."""
        return caller.role is Role.ADMIN

    def may_read_incident_private(self, caller: Caller) -> bool:
        """Whether the caller may read an incident's victim and reporter details."""
        return caller.role in self._private_incident

    def check_read_incident_private(self, caller: Caller) -> None:
        """May the caller read victim and reporter details (the attempt is audited apart)?"""
        if not self.may_read_incident_private(caller):
            raise Forbidden(
                f"role {caller.role.value} may not read victim and reporter details",
                counted_as="private_fields",
            )

    def may_decide_incident(self, caller: Caller) -> bool:
        """Whether `check_decide_incident` would let the caller decide (for offering it)."""
        return caller.role in self._decide_incident

    def check_decide_incident(self, caller: Caller) -> None:
        """May the caller close a timely-warning decision?"""
        if not self.may_decide_incident(caller):
            raise Forbidden(f"role {caller.role.value} may not decide on timely warnings")
