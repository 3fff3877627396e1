from __future__ import annotations

import sys
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How much fuzzing actually ran (recorded in docs/reliability.md)."""
    module = sys.modules.get("tests.security.test_schemathesis")
    counts = module.REQUESTS if module else {}
    if counts:
        per_role = ", ".join(f"{role} {n}" for role, n in sorted(counts.items()))
        terminalreporter.write_line(
            f"schemathesis: {sum(counts.values())} fuzzed requests ({per_role}; at most {module.MAX_EXAMPLES} "
            f"examples per operation as administrator, {module.ROLE_EXAMPLES} as each other role)"
        )
