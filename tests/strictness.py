"""Two rules that keep a green run honest; conftest.py imports the hooks from here.

**No skips in CI.** A test skips when a tool it needs is missing (Xvfb, xdotool,
ffmpeg, Chromium). On a developer's machine that is a convenience; in CI, which
runs ``scripts/test`` as root and installs every tool first, a skip means a test
that did not run, and "6 passed, 4 skipped" must not read as success. So when
the ``CI`` environment variable is set (to anything but ``""``, ``0`` or
``false``; ``.ci/run`` sets it, as GitHub Actions and GitLab do) every skip is
reported as a failure, naming the reason. ``CI`` and not "running as root" is the
switch because root says nothing about the tools: containers and fresh VMs run
everything as root with nothing installed. ``xfail`` is not a skip and is left alone.

**No unexpected ERROR logs.** An ERROR record from one of camstream's own loggers
(``camstream.*``) is a bug surfacing somewhere — an ``ENOTCONN`` traceback in a
transport, a crashed session task — even when the test's own assertions pass.
Every test fails on such a record unless it declares it::

    @pytest.mark.expect_error_log(r"source .* raised an unexpected error")
    def test_a_raising_iterable_is_retried(...): ...

Each pattern is a regular expression searched in the record's message; a
declared pattern that no record matched fails the test too, so stale
declarations do not pile up.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator

import pytest

__all__ = ["no_unexpected_error_logs", "pytest_collectreport", "pytest_runtest_makereport"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr
    if isinstance(reason, tuple):  # (file, line, "Skipped: why")
        reason = reason[2]
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI, where every tool is installed and every test must run: {reason}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and _in_ci():
        _as_failure(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A whole module skipped at import (``pytest.importorskip``) fails in CI too."""
    if report.skipped and _in_ci():
        _as_failure(report)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_unexpected_error_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test on an ERROR record from ``camstream.*`` it did not declare."""
    marker = request.node.get_closest_marker("expect_error_log")
    patterns = [re.compile(p) for p in (marker.args if marker else ())]
    handler = _Records()
    logger = logging.getLogger("camstream")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in handler.records]
    unexpected = [m for m in messages if not any(p.search(m) for p in patterns)]
    unmatched = [p.pattern for p in patterns if not any(p.search(m) for m in messages)]
    if unexpected:
        pytest.fail(
            "unexpected ERROR log record(s) from camstream (declare expected ones with "
            f"@pytest.mark.expect_error_log): {unexpected}",
            pytrace=False,
        )
    if unmatched:
        pytest.fail(f"expected ERROR log record(s) did not appear: {unmatched}", pytrace=False)
