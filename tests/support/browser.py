"""A real browser for tests: headless Chromium (Debian's `chromium` package; .ci/run installs it)
loads a page, runs its scripts and prints the DOM they leave (--dump-dom:
https://developer.chrome.com/docs/chromium/headless). --virtual-time-budget lets the page's timers
and AJAX calls run before the DOM is printed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is needed to load pages in a browser: apt-get install -y chromium (.ci/run does)")
    return found


def dump_dom(url: str, profile_dir: Path, budget_ms: int = 10_000, timeout_s: float = 90) -> str:
    """The page's DOM after its scripts have run for `budget_ms` of virtual time (its AJAX calls
    answered). Credentials in the URL (http://user:password@host/) answer HTTP basic auth."""
    argv = [chromium(), "--headless", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}", f"--virtual-time-budget={budget_ms}",
            "--dump-dom", url]
    if os.geteuid() == 0:
        # Chromium's sandbox refuses to run as root (CI containers); the pages loaded are our own.
        argv.insert(1, "--no-sandbox")
    done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    return done.stdout.decode(errors="replace")
