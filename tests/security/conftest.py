from __future__ import annotations

import sys
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How much fuzzing actually ran (recorded in docs/reliability.md)."""
    module = sys.modules.get("tests.security.test_schemathesis")
    count = module.REQUESTS["count"] if module else 0
    if count:
        terminalreporter.write_line(
            f"schemathesis: {count} fuzzed requests (at most {module.MAX_EXAMPLES} examples per operation)"
        )
