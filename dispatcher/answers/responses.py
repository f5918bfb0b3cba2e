"""Hearing back: an alert's question, each person's answer on any channel, answer-page tokens,
SMS reply words and opt-outs, escalation of people who have not answered, and the tallies.

At most one answer per person counts; a later one replaces it and both stay in the history. An
answer on any channel stops the rest: deliveries still queued for that person on the alert are
suppressed, and escalation only ever asks people without an answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

from dispatcher.batching import GroupCommit
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind, recipient_hash
from dispatcher.refusals import Conflict, Forbidden, Invalid, NotFound
from dispatcher.store.responses import (
    NeedsHelp,
    NewAnswer,
    Question,
    ResponseStore,
    StoredAnswer,
)
from segments.preferences import parse_channels

log = structlog.get_logger("clarion.responses")

# Answers written in one transaction at most: thousands arrive in the minute after an alert.
ANSWER_GROUP = 200


class AnswerOption(StrEnum):
    """What a person can answer."""

    SAFE = "safe"
    NEED_HELP = "need_help"


OPTIONS = tuple(o.value for o in AnswerOption)
# The order escalation walks when a person has stated none: voice last, it is the loudest.
ESCALATION_ORDER = (ChannelKind.SMS, ChannelKind.PUSH, ChannelKind.EMAIL, "voice")


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """An answer as recorded: the one that counts now, and what it replaced."""

    alert_id: str
    person_id: str
    option: str
    channel: str
    at: datetime
    first: bool
    """True when this is the person's first answer to the alert."""
    previous: str | None = None
    """The option it replaced, when the person had answered before."""


# -- SMS reply words ---------------------------------------------------------------------------


class Keyword(StrEnum):
    """What an inbound SMS means."""

    SAFE = "safe"
    NEED_HELP = "need_help"
    STOP = "stop"
    START = "start"
    INFO = "info"
    UNKNOWN = "unknown"


# Carrier keywords (CTIA; Twilio's defaults) and answers in English and Spanish. HELP is both
# the carrier's help keyword and an answer: with an open question it answers "need help".
_STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE", "PARAR",
         "ALTO"}
_START = {"START", "UNSTOP", "SUBSCRIBE", "OPTIN", "INICIAR"}
_INFO = {"INFO"}
_SAFE = {"1", "SAFE", "IM SAFE", "I AM SAFE", "OK", "FINE", "SI", "BIEN", "ESTOY BIEN",
         "A SALVO", "SEGURO", "SEGURA", "ESTOY A SALVO", "1 SAFE"}
_HELP = {"2", "HELP", "NEED HELP", "I NEED HELP", "AYUDA", "NECESITO AYUDA", "SOS", "2 HELP",
         "2 AYUDA"}


def _normal(body: str) -> str:
    text = unicodedata.normalize("NFKD", body)
    text = "".join(c for c in text if not unicodedata.combining(c)).upper()
    text = re.sub(r"[^A-Z0-9 ]+", " ", text)
    return " ".join(text.split())


def parse_reply(body: str) -> Keyword:
    """What an SMS reply says: an answer, a carrier keyword, or nothing we know."""
    text = _normal(body)
    if not text:
        return Keyword.UNKNOWN
    first = text.split(" ", 1)[0]
    if text in _STOP or first in _STOP:
        return Keyword.STOP
    if text in _START or first in _START:
        return Keyword.START
    if text in _INFO:
        return Keyword.INFO
    if text in _SAFE or first in {"1", "SAFE", "SI"}:
        return Keyword.SAFE
    if text in _HELP or first in {"2", "HELP", "AYUDA", "SOS"}:
        return Keyword.NEED_HELP
    return Keyword.UNKNOWN


# -- answer-page tokens ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerToken:
    """What a valid answer-page token says."""

    alert_id: str
    person_id: str
    expires_ms: int
    token_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and checks answer-page tokens: `payload.signature`, HMAC-SHA256 over the payload."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, *, alert_id: str, person_id: str, expires_ms: int, nonce: str) -> str:
        """A token for one person's answer to one alert."""
        payload = json.dumps({"a": alert_id, "p": person_id, "e": expires_ms, "n": nonce},
                             separators=(",", ":")).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(mac)}"

    def check(self, token: str) -> AnswerToken | None:
        """The token's claims when its signature holds (expiry is the caller's to check)."""
        try:
            head, _, sig = token.partition(".")
            payload = _unb64(head)
            given = _unb64(sig)
        except (ValueError, TypeError):
            return None
        want = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(want, given):
            return None
        try:
            claims = json.loads(payload)
            return AnswerToken(str(claims["a"]), str(claims["p"]), int(claims["e"]),
                               hashlib.sha256(payload).hexdigest()[:32])
        except (ValueError, KeyError, TypeError):
            return None


# -- tallies -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    """Safe, need help and no answer."""

    safe: int = 0
    need_help: int = 0
    no_answer: int = 0

    def as_json(self) -> dict[str, int]:
        """The counts as the API shows them."""
        return {"safe": self.safe, "need_help": self.need_help, "no_answer": self.no_answer,
                "total": self.safe + self.need_help + self.no_answer}


@dataclass(frozen=True, slots=True)
class Tally:
    """An alert's answers, in all and per zone and building."""

    alert_id: str
    asked: bool
    total: Counts
    by_building: dict[str, Counts] = field(default_factory=dict)
    by_zone: dict[str, Counts] = field(default_factory=dict)
    answered_50_s: float | None = None
    answered_90_s: float | None = None
    escalation_rounds: int = 0

    def as_json(self) -> dict[str, Any]:
        """The tally as `GET /v1/alerts/{id}/responses` and the event stream show it."""
        return {
            "alert_id": self.alert_id,
            "asked": self.asked,
            **self.total.as_json(),
            "by_zone": {k: v.as_json() for k, v in sorted(self.by_zone.items())},
            "by_building": {k: v.as_json() for k, v in sorted(self.by_building.items())},
            "time_to_50_percent_s": self.answered_50_s,
            "time_to_90_percent_s": self.answered_90_s,
            "escalation_rounds": self.escalation_rounds,
        }


def time_to_share(
    first_times: Sequence[int], asked_at: int, asked: int, share: float
) -> float | None:
    """Seconds from the question until `share` of the people asked had answered, if reached."""
    if asked <= 0:
        return None
    needed = max(1, -(-int(asked * share * 1000) // 1000))
    if len(first_times) < needed:
        return None
    return round(max(first_times[needed - 1] - asked_at, 0) / 1000, 3)


# -- the service part --------------------------------------------------------------------------

EscalationSink = Callable[[str, int], None]
"""Told `(alert_id, deliveries_added)` after an escalation round queued deliveries."""


class Responses:
    """Records answers and runs everything built on them."""

    def __init__(
        self,
        store: ResponseStore,
        *,
        clock: Clock,
        secret: bytes | None = None,
        building_zones: Callable[[], Mapping[str, tuple[str, ...]]] | None = None,
        channels: Sequence[str] = (),
    ) -> None:
        self.store = store
        self._clock = clock
        self._secret = secret
        self._signer: TokenSigner | None = TokenSigner(secret) if secret else None
        self._building_zones = building_zones or dict
        self._channels = tuple(channels)
        self._questions: dict[str, Question] = {}
        self._tallies: dict[str, tuple[int, Tally]] = {}
        # Answers arriving together share one commit (the store has one writer).
        self._writer: GroupCommit[NewAnswer, StoredAnswer | None] = GroupCommit(
            store.record_many, max_items=ANSWER_GROUP)
        self._writing = False

    async def close(self) -> None:
        """Write the answers still queued, then stop taking them."""
        if self._writing:
            await self._writer.close()
            self._writing = False

    # -- answers ----------------------------------------------------------------------------

    async def record_answer(
        self,
        *,
        alert_id: str,
        person_id: str,
        option: str,
        channel: str,
        at: datetime | None = None,
    ) -> RecordedAnswer:
        """Record a person's answer to an alert's question from any channel.

        Raises NotFound when the alert asks nothing, Invalid for an option it does not offer.
        The latest answer counts; earlier ones stay in the history. Queued deliveries for the
        person on this alert are suppressed and escalation skips them from now on.
        """
        return await self._record(alert_id=alert_id, person_id=person_id, option=option,
                                  channel=channel, at=at)

    async def _record(
        self, *, alert_id: str, person_id: str, option: str, channel: str,
        at: datetime | None = None, token: AnswerToken | None = None,
    ) -> RecordedAnswer:
        question = await self.question(alert_id)
        if question is None:
            raise NotFound(f"alert {alert_id} asks no question")
        if option not in question.options:
            raise Invalid.one("option", f"must be one of {', '.join(question.options)}")
        at_ms = int(at.timestamp() * 1000) if at is not None else self._clock.now_ms()
        if not self._writing:
            self._writer.start()
            self._writing = True
        stored = await self._writer.submit(NewAnswer(
            alert_id, person_id, option, channel, at_ms,
            None if token is None else (token.token_id, token.expires_ms),
        ))
        if stored is None:
            raise Conflict("this answer link has already been used")
        log.info("answer.recorded", alert_id=alert_id, recipient=recipient_hash(person_id),
                 option=option, channel=channel, changed=stored.previous is not None)
        return _recorded(stored)

    async def question(self, alert_id: str) -> Question | None:
        """The question an alert asks, if any (its texts, options and times never change once
        asked, so the ones read are kept, bounded; `tally` reads escalation rounds afresh)."""
        found = self._questions.get(alert_id)
        if found is None:
            found = await self.store.question(alert_id)
            if found is not None:
                if len(self._questions) > 1000:
                    self._questions.clear()
                self._questions[alert_id] = found
        return found

    # -- questions --------------------------------------------------------------------------

    async def ask(
        self,
        *,
        alert_id: str,
        texts: dict[str, str],
        options: Sequence[str],
        escalate_after_s: int,
        max_rounds: int,
        asked_at_ms: int,
        closes_at_ms: int,
    ) -> Question:
        """Store the question an alert asks (once; asking again changes nothing)."""
        question = Question(alert_id, dict(texts), tuple(options), escalate_after_s, max_rounds,
                            asked_at_ms, closes_at_ms)
        await self.store.ask(question)
        return question

    # -- tokens -----------------------------------------------------------------------------

    async def signer(self) -> TokenSigner:
        """The answer-link signer: the configured secret, else the key kept in the store."""
        if self._signer is None:
            key = await self.store.signing_key(self._clock.now_ms())
            self._signer = TokenSigner(key.encode())
        return self._signer

    async def token_for(self, alert_id: str, person_id: str, expires_ms: int) -> str:
        """The answer-page token of one person for one alert (the same on every re-send)."""
        signer = await self.signer()
        nonce = hashlib.sha256(f"{alert_id}\0{person_id}".encode()).hexdigest()[:16]
        return signer.sign(alert_id=alert_id, person_id=person_id, expires_ms=expires_ms,
                           nonce=nonce)

    async def link_for(self, base_url: str, alert_id: str, person_id: str, expires_ms: int) -> str:
        """The person's answer-page URL for an alert."""
        token = await self.token_for(alert_id, person_id, expires_ms)
        return f"{base_url.rstrip('/')}/public/answer/{alert_id}/{token}"

    async def read_token(self, alert_id: str, token: str, *, check_used: bool = True
                         ) -> AnswerToken:
        """The claims of a token for this alert's page; Forbidden when forged, expired or for
        another alert, Conflict when used (unless `check_used` is off: the tap's own write
        finds that out, in its transaction)."""
        claims = (await self.signer()).check(token)
        if claims is None:
            raise Forbidden("this answer link is not valid", counted_as="answer_token")
        if claims.alert_id != alert_id:
            raise Forbidden("this answer link is for another alert", counted_as="answer_token")
        if self._clock.now_ms() >= claims.expires_ms:
            raise Forbidden("this answer link has expired", counted_as="answer_token")
        if check_used and await self.store.token_used(claims.token_id):
            raise Conflict("this answer link has already been used")
        return claims

    async def answer_with_token(self, alert_id: str, token: str, option: str) -> RecordedAnswer:
        """One tap on the answer page: check the token, record the answer and use the token
        up in one transaction (Conflict when it was used before)."""
        claims = await self.read_token(alert_id, token, check_used=False)
        channel = await self._link_channel(alert_id, claims.person_id)
        return await self._record(alert_id=alert_id, person_id=claims.person_id, option=option,
                                  channel=channel, token=claims)

    async def _link_channel(self, alert_id: str, person_id: str) -> str:
        # Links travel by push and e-mail; the answer names the link, the channel is unknown.
        del alert_id, person_id
        return "link"

    # -- SMS --------------------------------------------------------------------------------

    async def sms_reply(self, phone: str, body: str) -> SmsReply:
        """Handle one inbound SMS: an answer to the newest open question, or a keyword."""
        now = self._clock.now_ms()
        word = parse_reply(body)
        tag = recipient_hash(phone)
        if word is Keyword.STOP:
            await self.store.set_opt_out(phone, opted_out=True, reason="stop", now_ms=now)
            log.info("sms.opted_out", recipient=tag, reason="stop")
            return SmsReply(word, await self.store.language_for_phone(phone))
        if word is Keyword.START:
            await self.store.set_opt_out(phone, opted_out=False, reason="start", now_ms=now)
            log.info("sms.opted_in", recipient=tag)
            return SmsReply(word, await self.store.language_for_phone(phone))
        opening = await self.store.latest_open_for_phone(phone, now)
        if word in (Keyword.SAFE, Keyword.NEED_HELP) and opening is not None:
            recorded = await self.record_answer(
                alert_id=opening.alert_id, person_id=opening.person_id, option=word.value,
                channel=ChannelKind.SMS.value,
            )
            return SmsReply(word, opening.language, recorded)
        language = opening.language if opening else await self.store.language_for_phone(phone)
        if word is Keyword.NEED_HELP:
            # HELP with no open question is the carrier's help keyword.
            return SmsReply(Keyword.INFO, language)
        if opening is not None and word is Keyword.UNKNOWN:
            return SmsReply(Keyword.UNKNOWN, language, asked=True)
        return SmsReply(Keyword.INFO if word is Keyword.INFO else Keyword.UNKNOWN, language)

    async def carrier_refused(self, phones: Sequence[str]) -> None:
        """Twilio said 21610 (the number sent STOP to the carrier): no SMS to it from now on."""
        now = self._clock.now_ms()
        for phone in sorted(set(phones)):
            await self.store.set_opt_out(phone, opted_out=True, reason="twilio_21610", now_ms=now)
            log.info("sms.opted_out", recipient=recipient_hash(phone), reason="twilio_21610")

    async def opted_out(self, phones: Sequence[str]) -> set[str]:
        """Which of these numbers must get no SMS."""
        return await self.store.opted_out(phones)

    # -- escalation -------------------------------------------------------------------------

    async def escalate_due(self, sink: EscalationSink | None = None) -> int:
        """Ask people without an answer again on their next channel, for every open question
        whose next round is due; returns how many deliveries were queued."""
        now = self._clock.now_ms()
        await self.store.forget_expired_tokens(now)
        total = 0
        for question in await self.store.open_questions(now):
            if question.escalate_after_s <= 0 or question.rounds >= question.max_rounds:
                continue
            due = question.asked_at + (question.rounds + 1) * question.escalate_after_s * 1000
            if now < due:
                continue
            if not await self.store.take_round(question.alert_id, question.rounds):
                continue  # another node has this round
            added = await self._escalate(question, now)
            log.info("answers.escalated", alert_id=question.alert_id, round=question.rounds + 1,
                     deliveries=added)
            total += added
            if added and sink is not None:
                sink(question.alert_id, added)
        return total

    async def _escalate(self, question: Question, now: int) -> int:
        added = 0
        after = ""
        while True:
            page = await self.store.unanswered(question.alert_id, after=after)
            if not page:
                return added
            after = page[-1].person_id
            phones = [p.addresses["sms"] for p in page if p.addresses["sms"]]
            stopped = await self.store.opted_out(phones)
            planned = []
            for person in page:
                channel = self._next_channel(person.order, person.opt_out, person.used,
                                             person.addresses, stopped)
                if channel is None:
                    continue
                planned.append((person.person_id, channel, person.addresses[channel],
                                person.language, person.role))
            added += await self.store.escalate(question.alert_id, planned, now_ms=now)

    def _next_channel(
        self, order: str, opt_out: str, used: frozenset[str], addresses: dict[str, str],
        stopped: set[str],
    ) -> str | None:
        try:
            preferred = [c.value for c in parse_channels(order)]
        except ValueError:
            preferred = []
        try:
            refused = {c.value for c in parse_channels(opt_out, allow_all=True)}
        except ValueError:
            refused = set()
        ordered = preferred + [str(c) for c in ESCALATION_ORDER if str(c) not in preferred]
        for channel in ordered:
            if channel not in self._channels or channel in used or channel in refused:
                continue
            address = addresses.get(channel, "")
            if not address or (channel == ChannelKind.SMS.value and address in stopped):
                continue
            return channel
        return None

    # -- tallies ----------------------------------------------------------------------------

    async def recent_tally(self, alert_id: str, max_age_s: float) -> Tally:
        """`tally`, at most `max_age_s` old: what live views (event streams, the console's
        progress) read over and over, counted once for all of them."""
        now = self._clock.now_ms()
        cached = self._tallies.get(alert_id)
        if cached is not None and now - cached[0] < max_age_s * 1000:
            return cached[1]
        tally = await self.tally(alert_id)
        if len(self._tallies) > 1000:
            self._tallies.clear()
        self._tallies[alert_id] = (now, tally)
        return tally

    async def tally(self, alert_id: str) -> Tally:
        """Safe, need help and no answer, in all and per zone and building."""
        question = await self.store.question(alert_id)
        if question is None:
            return Tally(alert_id, False, Counts())
        by_building: dict[str, Counter[str]] = defaultdict(Counter)
        total: Counter[str] = Counter()
        after = ""
        while True:
            page = await self.store.asked(alert_id, after=after)
            if not page:
                break
            after = page[-1].person_id
            for person in page:
                key = person.option or "no_answer"
                total[key] += 1
                by_building[person.building or "(none)"][key] += 1
        by_zone: dict[str, Counter[str]] = defaultdict(Counter)
        zones_of = self._building_zones()
        for building, counts in by_building.items():
            for zone in zones_of.get(building, ()):
                by_zone[zone].update(counts)
        asked = sum(total.values())
        firsts = await self.store.first_answer_times(alert_id)
        return Tally(
            alert_id, True, _counts(total),
            by_building={b: _counts(c) for b, c in by_building.items()},
            by_zone={z: _counts(c) for z, c in by_zone.items()},
            answered_50_s=time_to_share(firsts, question.asked_at, asked, 0.5),
            answered_90_s=time_to_share(firsts, question.asked_at, asked, 0.9),
            escalation_rounds=question.rounds,
        )

    async def need_help(self, alert_id: str, *, actor: str) -> list[NeedsHelp]:
        """The people who need help, with contact details; every read is audited. The caller
        has already asked the permissions whether `actor` may see them."""
        people = await self.store.needing_help(alert_id, AnswerOption.NEED_HELP.value)
        await self.store.audit_read(actor=actor, alert_id=alert_id,
                                    detail={"people": len(people)}, now_ms=self._clock.now_ms())
        return people


@dataclass(frozen=True, slots=True)
class SmsReply:
    """What an inbound SMS did, for the TwiML answer."""

    keyword: Keyword
    language: str
    recorded: RecordedAnswer | None = None
    asked: bool = False


def _counts(c: Counter[str]) -> Counts:
    return Counts(c["safe"], c["need_help"], c["no_answer"])


def _recorded(stored: StoredAnswer) -> RecordedAnswer:
    at = datetime.fromtimestamp(stored.answered_at / 1000, tz=UTC)
    return RecordedAnswer(stored.alert_id, stored.person_id, stored.option, stored.channel,
                          at, stored.previous is None and stored.changes == 0, stored.previous)
