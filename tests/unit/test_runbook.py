"""docs/runbook.md says what every event Wheel records means and what to do: each event name in
the code (wheel/, workers/, bridge/) has its row there, and the runbook names no event the code
does not record."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = (ROOT / "docs/runbook.md").read_text()
KINDS = r"(?:oms|order|cancellation|feed|push|system|system\.cron)"


def recorded_names() -> set[str]:
    names = set()
    for path in [*ROOT.glob("wheel/**/*.py"), *ROOT.glob("workers/**/*.py"), *ROOT.glob("bridge/**/*.py")]:
        if "sandbox" in path.parts:
            continue
        source = path.read_text()
        names.update(re.findall(rf"\"({KINDS}/[a-z-]+)\"", source))
        # Scheduled runs: record_cron(session, run, "started") is system.cron/started.
        names.update(f"system.cron/{n}" for n in re.findall(r"record_cron\(session, run, \"([a-z-]+)\"", source))
        # Per operation: f"{op}/retrying" is <operation>/retrying in the runbook.
        names.update(f"<operation>/{n}" for n in re.findall(r"f\"\{(?:op|group\.operation)\}/([a-z-]+)\"", source))
        # The outbox's kinds: f"{row.kind}/sent-to-oms".
        names.update(f"{kind}/{n}" for n in re.findall(r"f\"\{row\.kind\}/([a-z-]+)\"", source) for kind in ("order", "cancellation"))
    return names


def test_every_event_the_code_records_is_in_the_runbook():
    names = recorded_names()
    assert {"system/bridge-stalled", "system.cron/started", "<operation>/retrying", "order/sent-to-oms"} <= names
    missing = sorted(name for name in names if f"`{name}`" not in RUNBOOK)
    assert not missing, f"add these events to docs/runbook.md: {missing}"


def test_the_runbook_names_no_event_the_code_does_not_record():
    names = recorded_names()
    documented = set(re.findall(rf"`((?:{KINDS}|<operation>)/[a-z-]+)`", RUNBOOK))
    assert documented and not documented - names, sorted(documented - names)


def test_the_runbook_cites_the_repository_and_vendors_only():
    assert "../shared" not in RUNBOOK and "DESIGN.md" not in RUNBOOK and "brief" not in RUNBOOK.lower()
    for path in re.findall(r"`((?:docs|deploy|tests|wheel|workers|bridge)/[\w./-]+)`", RUNBOOK):
        assert (ROOT / path).exists(), path
