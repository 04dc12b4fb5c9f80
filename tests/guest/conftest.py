"""Guest tests run in the patched kernel, where touched_sweep must exist.

The guest runner sets PYSWEEP_GUEST=1.  Without it (on the host) every test
here is skipped; with it, a missing call fails every test instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pysweep

IN_GUEST = os.environ.get("PYSWEEP_GUEST") == "1"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_GUEST:
        return
    skip = pytest.mark.skip(reason="runs in the patched kernel only (PYSWEEP_GUEST=1)")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    # Fail in the test's own phase, so a missing call counts as failed tests.
    if IN_GUEST and HERE in item.path.parents:
        result = pysweep.probe()
        if not result.available:
            pytest.fail(f"touched_sweep is missing in the guest: {result.reason}", pytrace=False)


@pytest.fixture(scope="session")
def touched_sweep_present() -> pysweep.ProbeResult:
    return pysweep.probe()
