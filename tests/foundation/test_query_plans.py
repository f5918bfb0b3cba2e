"""Every statement the outbox runs per batch, per receipt or per sweep costs the batch, not the
alert: its query plan, for the very SQL the ledger runs (`DeliveryLedger.hot_statements`),
reads deliveries through an index, never a scan of the table nor a sort of its rows.
Checked on SQLite (`EXPLAIN QUERY PLAN`) and PostgreSQL (`EXPLAIN`), over a seeded and
analysed store, so a change that loses an index fails here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.domain import ChannelKind
from dispatcher.store.alerts import MARK_DONE_SQL
from dispatcher.store.database import Database, open_database
from dispatcher.store.ledger import DeliveryLedger, RetryPolicy
from dispatcher.store.responses import SUPPRESS_ANSWERED_SQL
from segments.audience import PlannedDelivery
from tests.pg import PostgresCluster, pg_cluster

__all__ = ["pg_cluster"]

PEOPLE = 3000


async def _seed(db: Database, alerts: int = 2, done: int = 4) -> DeliveryLedger:
    """`alerts` alerts of PEOPLE people on three channels, `done` tenths of the deliveries
    delivered, some sending, the rest queued: the shape of a store in mid fan-out."""
    ledger = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
    for alert_id in ("a1", "a2")[:alerts]:
        await db.execute(
            "INSERT INTO alerts (id, kind, mode, state, audience, zones, channels, created_by,"
            " created_at, expires_at, request_sha256) VALUES (?, 'emergency', 'live',"
            " 'dispatching', 'all', '{}', '[]', 't', 0, 10000000, 'x')",
            (alert_id,),
        )
        planned = [
            PlannedDelivery(kind, f"p{i}", f"addr{i}", "en", "student")
            for i in range(PEOPLE)
            for kind in (ChannelKind.SMS, ChannelKind.EMAIL, ChannelKind.PUSH)
        ]
        await ledger.enqueue(alert_id, planned, 1)
    await db.execute(
        "UPDATE deliveries SET state = 'delivered', provider_ref = 'SM' || id"
        " WHERE id % 10 >= ?",
        (10 - done,),
    )
    # In flight: a few batches, some of them with their lease run out.
    await db.execute(
        "UPDATE deliveries SET state = 'sending', lease_owner = 'o', lease_until = id % 20"
        " WHERE id % 10 = 0 AND id < 2000"
    )
    # On PostgreSQL, what autovacuum does on a live server (the indexes lose the rows that
    # left them) and the statistics the planner reads.
    await db.execute("VACUUM ANALYZE" if db.dialect == "postgres" else "ANALYZE")
    return ledger


def _statements(ledger: DeliveryLedger) -> list[tuple[str, str, tuple[Any, ...]]]:
    done = ("mark done", MARK_DONE_SQL, ("done", 10, "a1", "dispatching", "a1"))
    answered = ("answer suppresses", SUPPRESS_ANSWERED_SQL, (10, "a1", "p1"))
    return [*ledger.hot_statements(), done, answered]


# The (alert_id, channel, recipient) key: a person's few rows, not the alert's queued ones.
PERSON_KEY = ("sqlite_autoindex_deliveries_1", "deliveries_alert_id_channel_recipient_key")


# The partial indexes that hold only the rows in flight (claimed, not yet settled): at most the
# batches in flight, whatever the size of the alert, so walking it is O(batch).
IN_FLIGHT = ("USING INDEX deliveries_sending", "USING INDEX deliveries_sending_urgency")


def _sqlite_faults(details: list[str]) -> list[str]:
    """Plan lines that read the whole deliveries table or sort its rows."""
    return [
        d for d in details
        if (d.startswith(("SCAN d ", "SCAN deliveries")) and not d.endswith(IN_FLIGHT))
        or d == "SCAN d" or "TEMP B-TREE" in d
    ]


def _pg_faults(node: dict[str, Any], inside_sort: bool = False) -> list[str]:
    """Plan nodes that scan deliveries sequentially or sort rows read from it (except rows
    read through the index of rows in flight, see IN_FLIGHT)."""
    kind = node.get("Node Type", "")
    faults = []
    on_deliveries = node.get("Relation Name") == "deliveries"
    if kind == "Seq Scan" and on_deliveries:
        faults.append("Seq Scan on deliveries")
    in_flight = "deliveries_sending" in json.dumps(node)
    if inside_sort and on_deliveries and not in_flight:
        faults.append(f"Sort over {kind} on deliveries")
    for child in node.get("Plans", []):
        faults += _pg_faults(child, inside_sort or kind in ("Sort", "Incremental Sort"))
    return faults


class TestSQLite:
    """SQLite: no `SCAN` of deliveries, no temporary b-tree, fresh and after ANALYZE."""

    async def test_every_hot_statement_uses_an_index(self, tmp_path: Path) -> None:
        """Each plan reads deliveries by a SEARCH on an index."""
        db = await open_database(f"sqlite:///{tmp_path / 'plans.db'}")
        try:
            fresh = DeliveryLedger(db, RetryPolicy(1.0, 30.0))
            before = {
                name: [r["detail"] for r in await db.fetchall("EXPLAIN QUERY PLAN " + sql, p)]
                for name, sql, p in _statements(fresh)
            }
            ledger = await _seed(db)
            after = {
                name: [r["detail"] for r in await db.fetchall("EXPLAIN QUERY PLAN " + sql, p)]
                for name, sql, p in _statements(ledger)
            }
        finally:
            await db.close()
        assert len(after) == len(_statements(ledger)) > 10
        for plans in (before, after):
            faults = {name: _sqlite_faults(d) for name, d in plans.items() if _sqlite_faults(d)}
            assert not faults, faults
        assert any("deliveries_queued_urgency" in d for d in after["claim queued"])
        assert any("deliveries_queued_urgency" in d
                   for d in after["claim queued below an urgency"])
        assert any("deliveries_queued_urgency" in d for d in after["front queued"])
        assert any("deliveries_sending_urgency" in d for d in after["front in flight"])
        assert any("deliveries_accepted" in d for d in after["unsettled"])
        assert any("deliveries_sending" in d for d in after["claim expired leases"])
        assert all("deliveries" not in d for d in after["counts"])
        assert any(PERSON_KEY[0] in d for d in after["answer suppresses"])

    def test_the_check_sees_a_scan(self) -> None:
        """The fault finder flags the plan the claim had before migration 0007."""
        old = ["SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)", "LIST SUBQUERY 2",
               "SEARCH d USING INDEX deliveries_due (channel=?)", "USE TEMP B-TREE FOR ORDER BY"]
        assert _sqlite_faults(old) == ["USE TEMP B-TREE FOR ORDER BY"]
        assert _sqlite_faults(["SCAN d", "SCAN deliveries USING INDEX x"]) == [
            "SCAN d", "SCAN deliveries USING INDEX x"]
        assert _sqlite_faults(["SCAN deliveries USING INDEX deliveries_sending"]) == []


class TestPostgres:
    """PostgreSQL: no Seq Scan of deliveries and no Sort over it, after ANALYZE."""

    @pytest.mark.parametrize(("alerts", "done"), [(2, 4), (1, 7)])
    async def test_every_hot_statement_uses_an_index(
        self, pg_cluster: PostgresCluster, alerts: int, done: int
    ) -> None:
        """Each plan reads deliveries through an index (EXPLAIN plans, never runs, them), in
        a store of two alerts 40 % through and of one alert 70 % through."""
        db = await open_database(await pg_cluster.create_database())
        try:
            ledger = await _seed(db, alerts, done)
            plans = {}
            for name, sql, params in _statements(ledger):
                rows = await db.fetchall("EXPLAIN (FORMAT JSON) " + sql, params)
                raw = rows[0][0]
                plans[name] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        finally:
            await db.close()
        faults = {name: _pg_faults(p) for name, p in plans.items() if _pg_faults(p)}
        assert not faults, faults
        assert "deliveries_queued_urgency" in json.dumps(plans["claim queued"])
        assert "deliveries_queued_urgency" in json.dumps(plans["claim queued below an urgency"])
        assert "deliveries_queued_urgency" in json.dumps(plans["front queued"])
        assert "deliveries_sending" in json.dumps(plans["claim expired leases"])
        assert PERSON_KEY[1] in json.dumps(plans["answer suppresses"])

    def test_the_check_sees_a_sort(self) -> None:
        """The fault finder flags the plan the claim had before migration 0007."""
        old = {"Node Type": "Limit", "Plans": [{"Node Type": "Sort", "Plans": [
            {"Node Type": "Bitmap Heap Scan", "Relation Name": "deliveries"}]}]}
        assert _pg_faults(old) == ["Sort over Bitmap Heap Scan on deliveries"]
        assert _pg_faults({"Node Type": "Seq Scan", "Relation Name": "deliveries"}) == [
            "Seq Scan on deliveries"]
