"""Project-wide pytest configuration.

Registers the markers used across the suite. Integration tests (tests/integration/) run the
real proxy (`python -m mesh ...`) against real third-party peers (Debian nginx, curl, wrk);
select or deselect them with `-m integration` / `-m "not integration"`.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: runs the real proxy against real peers (nginx, curl, wrk); "
        "deselect with -m 'not integration'",
    )
