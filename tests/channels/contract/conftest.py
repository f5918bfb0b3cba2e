"""The contract suite's parametrization: every test over every harness (and fault row)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.channels.conftest import RecordingSink
from tests.channels.contract.harness import BY_NAME, HARNESSES, ChannelHarness, Expect


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`harness_name` runs a test once per channel; with `fault`, once per row of its table
    (with `transient_fault`, once per transient row)."""
    if "harness_name" not in metafunc.fixturenames:
        return
    for argument, expect in (("fault", None), ("transient_fault", Expect.TRANSIENT)):
        if argument in metafunc.fixturenames:
            cases = [
                (h.name, f)
                for h in HARNESSES
                for f in h.faults
                if expect is None or f.expect is expect
            ]
            metafunc.parametrize(
                ("harness_name", argument),
                cases,
                ids=[f"{name}-{fault.name}" for name, fault in cases],
                indirect=["harness_name"],
            )
            return
    metafunc.parametrize("harness_name", [h.name for h in HARNESSES], indirect=True)


@pytest.fixture
def harness_name(request: pytest.FixtureRequest) -> str:
    """The channel a test runs against."""
    name: str = request.param
    return name


@pytest.fixture
def harness_fixtures(request: pytest.FixtureRequest, harness_name: str) -> dict[str, Any]:
    """The shared fixtures the harness asks for (mosquitto for the device channels).

    Asked for by name, so a channel whose server is missing skips only its own cases.
    """
    return {name: request.getfixturevalue(name) for name in BY_NAME[harness_name].fixtures}


@pytest_asyncio.fixture
async def harness(
    harness_name: str, harness_fixtures: dict[str, Any], receipts: RecordingSink
) -> AsyncIterator[ChannelHarness]:
    """The channel started against its real local server, stopped after the test."""
    started = BY_NAME[harness_name](receipts, **harness_fixtures)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
