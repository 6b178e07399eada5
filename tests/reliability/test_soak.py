"""A small, bounded run of ``bench/soak.py``: several tenants' files ingested at once by
concurrent worker processes through the real handlers against a moto server on
127.0.0.1; no invocation fails, no row is lost or counted twice, every tenant's summary
equals the engine CLI's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import FIGURES

BENCH = Path(__file__).parents[2] / "bench"


@pytest.mark.budget(150)
def test_a_bounded_soak_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("flask", reason="the moto server needs moto[server] (make reliability)")
    monkeypatch.syspath_prepend(str(BENCH))  # spawned workers import the module by name
    import soak

    figures = soak.soak(tenants=4, files=3, rows=40, workers=2, deadline=120, metered=None)
    FIGURES["soak (test): files ingested"] += figures.files
    FIGURES["soak (test): rows ingested"] += figures.rows + figures.rejected_rows
    assert figures.files == 12 and figures.rows == 4 * 3 * 40
    assert figures.rejected_rows == 12
    assert figures.failed_invocations == 0 and figures.errors == []
    assert figures.rows_lost == 0 and figures.rows_counted_twice == 0
    assert figures.tenants_metered == 4 and figures.summaries_differing_from_engine == 0
