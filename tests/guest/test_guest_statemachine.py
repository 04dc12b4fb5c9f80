"""The state machine in the patched kernel: every backend against the model.

touched_sweep gets the most examples: it is checked against every rule.
The mainline backends run fewer, restricted to what their guarantees
cover (see sweep_machine).
"""

from __future__ import annotations

import pytest

from sweep_machine import run_machine


def test_touched_sweep_agrees_with_model() -> None:
    run_machine("touched_sweep", examples=20, steps=30)


@pytest.mark.parametrize("backend", ["pagemap_scan", "soft_dirty"])
def test_mainline_backend_agrees_with_model(backend: str) -> None:
    run_machine(backend, examples=5, steps=20)
