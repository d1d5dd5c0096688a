"""The chaos run's report: one table on the terminal, and build/chaos/report.json."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def write(report: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def violations(report: dict) -> int:
    return sum(v["violations"] for v in report["invariants"].values())


def table(report: dict) -> Table:
    load, faults = report["load"], report["faults"]
    t = Table(title="Wheel chaos run", show_lines=False)
    t.add_column("what")
    t.add_column("count", justify="right")
    t.add_column("detail")
    t.add_row("[b]load[/b]", "", f"{load['seconds']:.0f} s of load, {len(load['channels'])} channels, {load['skus']} SKUs")
    t.add_row("OMS messages", str(load["oms_messages"]), ", ".join(f"{k} {v}" for k, v in sorted(load["by_kind"].items()))
              + f"; {load['items']} items")
    t.add_row("orders", str(load["orders"]), "created in the sandbox, pulled by beat's schedules")
    t.add_row("cancellations", str(load["cancellations"]), f"{load['partial_cancellations']} in part")
    t.add_row("sandbox calls", str(load["sandbox_calls"]),
              f"{load['sandbox_chaos_refused']} refused by chaos; by status {load['sandbox_by_status']}")
    t.add_row("[b]faults[/b]", str(len(faults)), "")
    kinds: dict[str, list[dict]] = {}
    for fault in faults:
        kinds.setdefault(f"{fault['kind']} {fault['target'] if fault['kind'] != 'sigkill' else ''}".strip(), []).append(fault)
    for name, entries in kinds.items():
        if name == "sigkill":
            targets: dict[str, int] = {}
            for e in entries:
                targets[e["target"]] = targets.get(e["target"], 0) + 1
            t.add_row("SIGKILL + restart", str(len(entries)), ", ".join(f"{k} {v}" for k, v in sorted(targets.items())))
        else:
            t.add_row(name, str(len(entries)), ", ".join(f"at {e['at_s']:.0f}s for {e.get('down_s', 0):.0f}s" for e in entries)
                      + (f" ({entries[0]['detail']})" if entries[0].get("detail") else ""))
    exits = report.get("exits_on_their_own", [])
    if exits:
        reasons: dict[str, int] = {}
        for e in exits:
            reasons[f"{e['process']}: {e['last_error'][-120:]}"] = reasons.get(f"{e['process']}: {e['last_error'][-120:]}", 0) + 1
        t.add_row("[yellow]exited on their own[/yellow]", str(len(exits)),
                  "; ".join(f"{k} (x{v})" for k, v in reasons.items())[:600] + " - started again, as `restart: unless-stopped` would")
    t.add_row("[b]invariants[/b]", "violations", "")
    for name, result in report["invariants"].items():
        detail = ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("violations", "examples", "by_name"))
        colour = "green" if result["violations"] == 0 else "red"
        t.add_row(name, f"[{colour}]{result['violations']}[/{colour}]", detail)
    drain = report.get("drain_s")
    t.add_row("[b]drain[/b]", "" if drain is None else f"{drain:.0f} s",
              "from the last fault until every message, push, order and cancellation was through"
              if drain is not None else "did not drain in time")
    for error in report.get("errors", []):
        t.add_row("[red]harness[/red]", "", error)
    return t


def show(report: dict) -> None:
    Console(width=200).print(table(report))
    for name, result in report["invariants"].items():
        if result["violations"]:
            print(f"{name}: {result.get('examples')}")
