"""The state machine on the host, against the mainline backend it supports.

The host kernel has PAGEMAP_SCAN (and no soft-dirty, no touched_sweep):
the machine drives the pagemap_scan backend, which watches the target
process from inside it.
"""

from __future__ import annotations

import pytest

import pysweep
from sweep_machine import run_machine

_available = pysweep.available_backends()


@pytest.mark.skipif(_available.get("pagemap_scan", True) is not None, reason=f"pagemap_scan: {_available.get('pagemap_scan')}")
def test_pagemap_scan_agrees_with_model() -> None:
    run_machine("pagemap_scan", examples=100, steps=40)
