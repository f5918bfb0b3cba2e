from __future__ import annotations
import pytest
from tests.console.conftest import sign_in, shot

pytestmark = pytest.mark.asyncio(loop_scope="session")

async def test_smoke(console, page, shots):
    errors = []
    page.on("console", lambda m: errors.append(m.text))
    await page.goto(console.url)
    await shot(page, shots, "tmp-signin")
    await sign_in(page, console, "admin")
    await shot(page, shots, "tmp-home")
    await page.goto(console.url + "compose")
    await page.get_by_label("Message in English").fill("Police activity near Smith Hall. John Smith was arrested. Avoid the area.")
    await page.wait_for_timeout(1500)
    await shot(page, shots, "tmp-compose")
    print(errors)
    assert not errors
