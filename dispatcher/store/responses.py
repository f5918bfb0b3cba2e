"""The hearing-back tables: alert questions, answers with their history, used answer tokens,
SMS opt-outs and the answer-link signing key. Every SQL statement
`dispatcher.answers.responses` runs."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, Row, Session

# People a tally or escalation statement reads at once.
PAGE = 1000
# The channels a person is asked on (devices reach places, not people).
PERSON_CHANNELS = ("sms", "push", "email", "voice")
_PERSON_IN = "('sms', 'push', 'email', 'voice')"
# An answer stops the person's deliveries still queued for the alert. The rows are found by the
# (alert, channel, recipient) key, a handful of lookups: filtering the alert's queued rows by
# recipient instead would read every one of them, per answer, while a large alert is sending.
SUPPRESS_ANSWERED_SQL = (
    "UPDATE deliveries SET state = 'suppressed', detail = 'answered', updated_at = ?"
    " WHERE id IN (SELECT id FROM deliveries WHERE alert_id = ? AND recipient = ?"
    " AND channel IN " + _PERSON_IN + ") AND state = 'queued'"
)


@dataclass(frozen=True, slots=True)
class Question:
    """The question an alert asks: texts by language, the options, the escalation rhythm."""

    alert_id: str
    texts: dict[str, str]
    options: tuple[str, ...]
    escalate_after_s: int
    max_rounds: int
    asked_at: int
    closes_at: int
    rounds: int = 0

    def text(self, language: str) -> str:
        """The question in a language, falling back to English, then to any."""
        return self.texts.get(language) or self.texts.get("en") or next(iter(self.texts.values()))

    def is_open(self, now_ms: int) -> bool:
        """True while an answer is still asked for."""
        return now_ms < self.closes_at


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The answer that counts for one person, and whether this write changed it."""

    alert_id: str
    person_id: str
    option: str
    channel: str
    first_at: int
    answered_at: int
    changes: int
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class NewAnswer:
    """One answer to write; with `token` (id, expiry) the answer-page token it uses up."""

    alert_id: str
    person_id: str
    option: str
    channel: str
    at_ms: int
    token: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class AnswerEvent:
    """One answer as it came, in the history."""

    option: str
    channel: str
    at: int


@dataclass(frozen=True, slots=True)
class Asked:
    """A person asked by an alert, with what a tally groups by and their answer if any."""

    person_id: str
    building: str
    option: str | None
    answered_at: int | None


@dataclass(frozen=True, slots=True)
class NeedsHelp:
    """A person who answered that they need help, with how to reach them (store only)."""

    person_id: str
    first_name: str
    last_name: str
    building: str
    phone: str
    email: str
    channel: str
    answered_at: int


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A person still without an answer, with their channels and those already used."""

    person_id: str
    language: str
    role: str
    order: str
    opt_out: str
    addresses: dict[str, str]
    used: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Opening:
    """Where an SMS reply from a number belongs: the person and their latest open question."""

    person_id: str
    alert_id: str
    language: str


def _question(row: Row) -> Question:
    return Question(
        alert_id=row["alert_id"],
        texts=json.loads(row["question"]),
        options=tuple(json.loads(row["options"])),
        escalate_after_s=int(row["escalate_after_s"]),
        max_rounds=int(row["max_rounds"]),
        asked_at=int(row["asked_at"]),
        closes_at=int(row["closes_at"]),
        rounds=int(row["rounds"]),
    )


_QUESTION_COLUMNS = (
    "alert_id, question, options, escalate_after_s, max_rounds, asked_at, closes_at, rounds"
)


class ResponseStore:
    """Questions, answers, tokens and opt-outs over either database."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    # -- questions ----------------------------------------------------------------------------

    async def ask(self, question: Question) -> None:
        """Store an alert's question; asking again for the same alert changes nothing."""
        q = question
        await self.db.execute(
            "INSERT INTO alert_questions (" + _QUESTION_COLUMNS + ")"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO NOTHING",
            (q.alert_id, json.dumps(q.texts, ensure_ascii=False), json.dumps(list(q.options)),
             q.escalate_after_s, q.max_rounds, q.asked_at, q.closes_at, q.rounds),
        )

    async def question(self, alert_id: str) -> Question | None:
        """The question an alert asks, if it asks one."""
        row = await self.db.fetchone(
            "SELECT " + _QUESTION_COLUMNS + " FROM alert_questions WHERE alert_id = ?",
            (alert_id,),
        )
        return None if row is None else _question(row)

    async def open_questions(self, now_ms: int) -> list[Question]:
        """Questions still open, oldest first."""
        rows = await self.db.fetchall(
            "SELECT " + _QUESTION_COLUMNS + " FROM alert_questions q WHERE closes_at > ?"
            " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = q.alert_id"
            " AND a.state = 'cancelled') ORDER BY asked_at",
            (now_ms,),
        )
        return [_question(r) for r in rows]

    async def take_round(self, alert_id: str, rounds: int) -> bool:
        """Claim escalation round `rounds + 1`; exactly one node wins it."""
        changed = await self.db.execute(
            "UPDATE alert_questions SET rounds = rounds + 1 WHERE alert_id = ? AND rounds = ?",
            (alert_id, rounds),
        )
        return changed == 1

    # -- answers ------------------------------------------------------------------------------

    async def record(
        self, *, alert_id: str, person_id: str, option: str, channel: str, at_ms: int,
        token: tuple[str, int] | None = None,
    ) -> StoredAnswer | None:
        """Write one answer (see `record_many`)."""
        [stored] = await self.record_many(
            [NewAnswer(alert_id, person_id, option, channel, at_ms, token)])
        return stored

    async def record_many(self, answers: Sequence[NewAnswer]) -> list[StoredAnswer | None]:
        """Keep each answer in the history and make it the one that counts; queued deliveries
        still waiting for the person on this alert are suppressed (the answer stops them). All
        in one transaction, in order (a person answering twice in one group ends on the later).

        An answer with a token uses the answer-page token up in the same transaction; its
        result is None (and nothing recorded for it) when the token was used before."""
        async with self.db.transaction() as tx:
            return [await self._record(tx, answer) for answer in answers]

    @staticmethod
    async def _record(tx: Session, answer: NewAnswer) -> StoredAnswer | None:
        alert_id, person_id, option, channel, at_ms = (
            answer.alert_id, answer.person_id, answer.option, answer.channel, answer.at_ms)
        token = answer.token
        if token is not None:
            fresh = await tx.execute(
                "INSERT INTO answer_tokens (token_id, alert_id, person_id, used_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (token_id) DO NOTHING",
                (token[0], alert_id, person_id, at_ms, token[1]),
            )
            if fresh != 1:
                return None
        before = await tx.fetchone(
            "SELECT option, first_at, changes FROM answers"
            " WHERE alert_id = ? AND person_id = ?",
            (alert_id, person_id),
        )
        await tx.execute(
            "INSERT INTO answer_history (alert_id, person_id, option, channel, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (alert_id, person_id, option, channel, at_ms),
        )
        if before is None:
            # Two replies racing for a first answer: the later insert updates instead.
            await tx.execute(
                "INSERT INTO answers (alert_id, person_id, option, channel, first_at,"
                " answered_at, changes) VALUES (?, ?, ?, ?, ?, ?, 0)"
                " ON CONFLICT (alert_id, person_id) DO UPDATE SET option = excluded.option,"
                " channel = excluded.channel, answered_at = excluded.answered_at,"
                " changes = answers.changes + 1",
                (alert_id, person_id, option, channel, at_ms, at_ms),
            )
            first_at, changes, previous = at_ms, 0, None
        else:
            await tx.execute(
                "UPDATE answers SET option = ?, channel = ?, answered_at = ?,"
                " changes = changes + 1 WHERE alert_id = ? AND person_id = ?",
                (option, channel, at_ms, alert_id, person_id),
            )
            first_at = int(before["first_at"])
            changes = int(before["changes"]) + 1
            previous = str(before["option"])
        await tx.execute(SUPPRESS_ANSWERED_SQL, (at_ms, alert_id, person_id))
        return StoredAnswer(alert_id, person_id, option, channel, first_at, at_ms, changes,
                            previous)

    async def answer(self, alert_id: str, person_id: str) -> StoredAnswer | None:
        """The answer that counts for a person, if any."""
        row = await self.db.fetchone(
            "SELECT option, channel, first_at, answered_at, changes FROM answers"
            " WHERE alert_id = ? AND person_id = ?",
            (alert_id, person_id),
        )
        if row is None:
            return None
        return StoredAnswer(alert_id, person_id, row["option"], row["channel"],
                            int(row["first_at"]), int(row["answered_at"]), int(row["changes"]))

    async def history(self, alert_id: str, person_id: str) -> list[AnswerEvent]:
        """Every answer a person gave to an alert, in order."""
        rows = await self.db.fetchall(
            "SELECT option, channel, at FROM answer_history WHERE alert_id = ? AND person_id = ?"
            " ORDER BY at, id",
            (alert_id, person_id),
        )
        return [AnswerEvent(r["option"], r["channel"], int(r["at"])) for r in rows]

    async def answer_count(self, alert_id: str) -> int:
        """How many people have an answer that counts."""
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM answers WHERE alert_id = ?", (alert_id,)
        ) or 0)

    async def history_count(self, alert_id: str) -> int:
        """How many answers arrived in all (changes included)."""
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM answer_history WHERE alert_id = ?", (alert_id,)
        ) or 0)

    async def live_counts(self, alert_id: str) -> dict[str, int]:
        """Safe, need help and no answer in two queries (the answers bench reads it; live views
        read `Responses.recent_tally`)."""
        rows = await self.db.fetchall(
            "SELECT option, COUNT(*) AS n FROM answers WHERE alert_id = ? GROUP BY option",
            (alert_id,),
        )
        by_option = {str(r["option"]): int(r["n"]) for r in rows}
        asked = int(await self.db.fetchval(
            "SELECT COUNT(DISTINCT recipient) FROM deliveries WHERE alert_id = ?"
            " AND channel IN " + _PERSON_IN,
            (alert_id,),
        ) or 0)
        safe, need = by_option.get("safe", 0), by_option.get("need_help", 0)
        return {"safe": safe, "need_help": need, "no_answer": max(asked - safe - need, 0),
                "total": asked}

    async def first_answer_times(self, alert_id: str) -> list[int]:
        """Each answering person's first answer time, in order (for time to 50 / 90 %)."""
        rows = await self.db.fetchall(
            "SELECT first_at FROM answers WHERE alert_id = ? ORDER BY first_at", (alert_id,)
        )
        return [int(r["first_at"]) for r in rows]

    async def asked(self, alert_id: str, *, after: str = "", limit: int = PAGE) -> list[Asked]:
        """People the alert reached or tried to reach on a person channel, by id after a
        cursor, with their building and their answer."""
        rows = await self.db.fetchall(
            "SELECT p.id AS person_id, p.building, a.option, a.answered_at FROM people p"
            " LEFT JOIN answers a ON a.alert_id = ? AND a.person_id = p.id"
            " WHERE p.id > ? AND p.id IN (SELECT d.recipient FROM deliveries d WHERE"
            " d.alert_id = ? AND d.channel IN " + _PERSON_IN + ")"
            " ORDER BY p.id LIMIT ?",
            (alert_id, after, alert_id, limit),
        )
        return [Asked(r["person_id"], r["building"], r["option"],
                      None if r["answered_at"] is None else int(r["answered_at"])) for r in rows]

    async def needing_help(self, alert_id: str, option: str) -> list[NeedsHelp]:
        """People whose answer that counts is `option`, with their contact details."""
        rows = await self.db.fetchall(
            "SELECT a.person_id, a.channel, a.answered_at, p.first_name, p.last_name,"
            " p.building, p.phone, p.email FROM answers a LEFT JOIN people p"
            " ON p.id = a.person_id WHERE a.alert_id = ? AND a.option = ?"
            " ORDER BY a.answered_at",
            (alert_id, option),
        )
        return [
            NeedsHelp(r["person_id"], r["first_name"] or "", r["last_name"] or "",
                      r["building"] or "", r["phone"] or "", r["email"] or "", r["channel"],
                      int(r["answered_at"]))
            for r in rows
        ]

    async def unanswered(
        self, alert_id: str, *, after: str = "", limit: int = PAGE
    ) -> list[Unanswered]:
        """People asked and not answered (id order after a cursor), with the channels the
        alert already used for them, so escalation can pick the next one."""
        rows = await self.db.fetchall(
            "SELECT p.id, p.language, p.role, p.channels, p.opt_out, p.phone, p.email, p.push"
            " FROM people p WHERE p.id > ? AND p.id IN (SELECT d.recipient FROM deliveries d"
            " WHERE d.alert_id = ? AND d.channel IN " + _PERSON_IN + ")"
            " AND NOT EXISTS (SELECT 1 FROM answers a WHERE a.alert_id = ? AND a.person_id = p.id)"
            " ORDER BY p.id LIMIT ?",
            (after, alert_id, alert_id, limit),
        )
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        marks = ",".join("?" for _ in ids)
        used_rows = await self.db.fetchall(
            "SELECT recipient, channel FROM deliveries WHERE alert_id = ?"
            f" AND recipient IN ({marks})",
            (alert_id, *ids),
        )
        used: dict[str, set[str]] = {}
        for u in used_rows:
            used.setdefault(u["recipient"], set()).add(u["channel"])
        return [
            Unanswered(
                r["id"], r["language"], r["role"], r["channels"], r["opt_out"],
                {"sms": r["phone"], "voice": r["phone"], "email": r["email"], "push": r["push"]},
                frozenset(used.get(r["id"], set())),
            )
            for r in rows
        ]

    async def delivery_language(self, alert_id: str, person_id: str) -> str:
        """The language an alert was rendered in for a person (English when unknown)."""
        value = await self.db.fetchval(
            "SELECT language FROM deliveries WHERE alert_id = ? AND recipient = ? LIMIT 1",
            (alert_id, person_id),
        )
        return str(value) if value else "en"

    async def escalate(
        self, alert_id: str, planned: Sequence[tuple[str, str, str, str, str]], *, now_ms: int
    ) -> int:
        """Queue escalation deliveries `(person_id, channel, address, language, role)` for
        people still without an answer; one already queued or answered is left alone."""
        added = 0
        async with self.db.transaction() as tx:
            for person_id, channel, address, language, role in planned:
                added += await tx.execute(
                    "INSERT INTO deliveries (alert_id, channel, recipient, address, language, role,"
                    " state, detail, updated_at, urgency) SELECT ?, ?, ?, ?, ?, ?, 'queued', ?, ?,"
                    " COALESCE((SELECT a.urgency FROM alerts a WHERE a.id = ?), 0)"
                    " WHERE NOT EXISTS (SELECT 1 FROM answers WHERE alert_id = ? AND person_id = ?)"
                    " ON CONFLICT (alert_id, channel, recipient) DO NOTHING",
                    (alert_id, channel, person_id, address, language, role,
                     "escalated: no answer yet", now_ms, alert_id, alert_id, person_id),
                )
            if added:
                # New work on an alert that had finished sending: it is dispatching again.
                await tx.execute(
                    "UPDATE alerts SET state = 'dispatching', done_at = NULL"
                    " WHERE id = ? AND state = 'done'",
                    (alert_id,),
                )
        return added

    # -- where a delivery or an SMS reply belongs ---------------------------------------------

    async def delivery_owner(self, delivery_id: int) -> tuple[str, str] | None:
        """`(alert_id, person_id)` of a delivery, if it exists."""
        row = await self.db.fetchone(
            "SELECT alert_id, recipient FROM deliveries WHERE id = ?", (delivery_id,)
        )
        return None if row is None else (str(row["alert_id"]), str(row["recipient"]))

    async def latest_open_for_phone(self, phone: str, now_ms: int) -> Opening | None:
        """The person with this number and the newest open question they were sent on SMS."""
        row = await self.db.fetchone(
            "SELECT d.recipient, d.alert_id, d.language FROM deliveries d JOIN alert_questions q"
            " ON q.alert_id = d.alert_id JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.address = ? AND d.channel IN ('sms', 'voice') AND q.closes_at > ?"
            " AND a.state != 'cancelled' ORDER BY q.asked_at DESC, d.id DESC LIMIT 1",
            (phone, now_ms),
        )
        if row is None:
            return None
        return Opening(str(row["recipient"]), str(row["alert_id"]), str(row["language"]))

    async def language_for_phone(self, phone: str) -> str:
        """The language of the person with this number (English when unknown)."""
        value = await self.db.fetchval(
            "SELECT language FROM people WHERE phone = ? LIMIT 1", (phone,)
        )
        return str(value) if value else "en"

    # -- tokens -------------------------------------------------------------------------------

    async def forget_expired_tokens(self, now_ms: int) -> int:
        """Drop used tokens past their expiry (they are refused as expired anyway)."""
        return await self.db.execute("DELETE FROM answer_tokens WHERE expires_at < ?", (now_ms,))

    async def token_used(self, token_id: str) -> bool:
        """True when the token has already recorded an answer."""
        return bool(await self.db.fetchval(
            "SELECT COUNT(*) FROM answer_tokens WHERE token_id = ?", (token_id,)
        ))

    async def signing_key(self, now_ms: int) -> str:
        """The answer-link key kept in the store (made once, shared by every node)."""
        await self.db.execute(
            "INSERT INTO answer_keys (id, secret, created_at) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (secrets.token_urlsafe(32), now_ms),
        )
        return str(await self.db.fetchval("SELECT secret FROM answer_keys WHERE id = 1"))

    # -- SMS opt-outs -------------------------------------------------------------------------

    async def set_opt_out(self, phone: str, *, opted_out: bool, reason: str, now_ms: int) -> None:
        """Record STOP (or carrier error 21610) or START for a number."""
        await self.db.execute(
            "INSERT INTO sms_opt_outs (phone, opted_out, reason, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (phone) DO UPDATE SET opted_out = excluded.opted_out,"
            " reason = excluded.reason, at = excluded.at",
            (phone, 1 if opted_out else 0, reason, now_ms),
        )

    async def opted_out(self, phones: Sequence[str]) -> set[str]:
        """Which of these numbers have opted out of SMS."""
        wanted = sorted(set(phones))
        out: set[str] = set()
        for start in range(0, len(wanted), PAGE):
            chunk = wanted[start : start + PAGE]
            marks = ",".join("?" for _ in chunk)
            rows = await self.db.fetchall(
                f"SELECT phone FROM sms_opt_outs WHERE opted_out = 1 AND phone IN ({marks})",
                chunk,
            )
            out.update(r["phone"] for r in rows)
        return out

    async def audit_read(self, *, actor: str, alert_id: str, detail: dict[str, Any],
                         now_ms: int) -> None:
        """Audit one read of the need-help list."""
        async with self.db.transaction() as tx:
            await self.audit.append(tx, at=now_ms, actor=actor, action="responses.need_help_read",
                                    alert_id=alert_id, detail=detail)
