from __future__ import annotations
import pytest
from tests.conftest import SettingsFactory
from tests.foundation.test_webhook import TestEndToEnd as _E2E

@pytest.fixture
def make_settings(make_settings: SettingsFactory, pg_url: str) -> SettingsFactory:
    def make(*a, **kw):
        s = make_settings(*a, **kw)
        return s.model_copy(update={"store": s.store.model_copy(update={"url": pg_url})})
    return make

class TestPg(_E2E):
    pass

async def test_dialect(running) -> None:
    assert running.service.db.dialect == "postgres"
