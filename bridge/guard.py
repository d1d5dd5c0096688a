"""Fail at start-up, clearly, when `import wheel` finds PyPA's `wheel` instead of ours."""

from __future__ import annotations

import sys


def ensure_wheel_is_ours() -> None:
    import wheel  # noqa: PLC0415 - the check is what this import finds, so it runs when called

    if getattr(wheel, "__wheel_middleware__", False) is not True:
        location = getattr(wheel, "__file__", None) or list(getattr(wheel, "__path__", []))
        sys.exit(
            "wheel: `import wheel` resolved to PyPA's 'wheel' package "
            f"({location}), which shadows the Wheel middleware's own `wheel` package.\n"
            "Remove it from this environment (`pip uninstall wheel`) and reinstall Wheel "
            "(`pip install -e .`); Wheel builds with hatchling and never needs it."
        )
