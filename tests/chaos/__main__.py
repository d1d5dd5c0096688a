"""`python -m tests.chaos` (`make chaos`): the full chaos run; sizes from WHEEL_CHAOS_* (harness.Config).
Exits 1 when an invariant was violated or the run did not drain."""

from __future__ import annotations

import sys

from tests.chaos import report as reporting
from tests.chaos.harness import ChaosRun, Config


def main() -> int:
    config = Config.from_env()
    run = ChaosRun(config)
    failed = True
    try:
        report = run.run()
        path = reporting.write(report, config.out)
        reporting.show(report)
        print(f"report: {path}; logs: {config.out / 'logs'}")
        failed = reporting.violations(report) > 0 or report.get("drain_s") is None
    finally:
        run.teardown(keep_logs=config.out / "logs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
