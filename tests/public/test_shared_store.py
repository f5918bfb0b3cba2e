"""Two nodes on one PostgreSQL store: each node's snapshot follows alerts the other changed."""

from __future__ import annotations

from tests.conftest import SettingsFactory
from tests.pg import pg_cluster, pg_url
from tests.public.test_public_http import GAS_LEAK, ids, send, until
from tests.support import AUTH, start_service

__all__ = ["pg_cluster", "pg_url"]


class TestSharedStore:
    """An alert sent and cancelled on node A shows and goes on node B's public feed."""

    async def test_other_nodes_changes_reach_the_snapshot(
        self, make_settings: SettingsFactory, pg_url: str
    ) -> None:
        settings = make_settings(store={"url": pg_url}, public={"refresh_s": 0.2})
        node_a = await start_service(settings)
        node_b = await start_service(settings)
        try:
            alert_id = await send(node_a, {"kind": "emergency", "mode": "drill",
                                           "text": GAS_LEAK})
            await until(node_b, lambda d: ids(d) == [alert_id])
            resp = await node_a.client.post(f"/v1/alerts/{alert_id}/cancel", headers=AUTH,
                                            json={"reason": "exercise over"})
            assert resp.status == 200
            await until(node_b, lambda d: ids(d) == [])
        finally:
            await node_b.client.close()
            await node_a.client.close()
