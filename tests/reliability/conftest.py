"""The reliability suite: a time budget on every test, and the figures (faults injected,
fuzz inputs tried) printed at the end. The moto ``pipeline`` fixture is tests/conftest.py's."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from tests.reliability.harness import ACTIVE, FIGURES, OverBudget

DEFAULT_BUDGET_SECONDS = 60


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "budget(seconds): wall-clock bound of one test")


@pytest.fixture(autouse=True)
def time_budget(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test (never hang) once it runs past its budget: an alarm raises OverBudget,
    a BaseException, so no ``except Exception`` in the code under test can swallow it."""
    marker = request.node.get_closest_marker("budget")
    seconds = marker.args[0] if marker else DEFAULT_BUDGET_SECONDS

    def expire(signum: int, frame: FrameType | None) -> None:
        raise OverBudget(f"{request.node.nodeid} ran past its {seconds} s budget")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """File the faults a test injected: survived (the test passed) or shown by a bug test
    (strict xfail, failing as expected)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "setup":
        ACTIVE.clear()
    if report.when != "call":
        return
    if report.passed and not hasattr(report, "wasxfail"):
        kind = "faults injected and survived"
    elif report.skipped and hasattr(report, "wasxfail"):
        kind = "faults injected in strict-xfail bug tests"
    else:
        kind = "faults injected in failing tests"
    for faults in ACTIVE:
        for name, count in faults.injected.items():
            FIGURES[f"{kind}: {name}"] += count
            FIGURES[f"{kind}: total calls"] += count
        FIGURES[f"{kind}: HTTP error responses"] += faults.http_errors
    ACTIVE.clear()


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the figures to the controller
        workeroutput["reliability_figures"] = dict(FIGURES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    FIGURES.update(getattr(node, "workeroutput", {}).get("reliability_figures", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, count in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {count}")
