"""The chaos run's auditor: the promises of docs/contracts.md, checked from Postgres, the sandbox's
call log and state, the OMS queues and the workers' logs, each as a count of violations."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from lxml import etree
from sqlalchemy import text

from tests.chaos.load import OmsMessage
from tests.e2e.test_latest_value_wins import pushed_values
from wheel.oms.orders import validate_document

# An outcome that ends an item of a message on a channel (docs/runbook.md, "Pushes to the
# marketplaces"). `<operation>/waiting-for-quantity` is not one: the SKU is listed, with a
# `ranging/succeeded`, when its first stock arrives.
TERMINAL = ("succeeded", "superseded", "failed", "shadowed")
OPERATIONS = ("ranging", "deranging", "inventory", "pricing")
# LogAlerter's line (wheel/notifications.py, alert_text): "... event 123 (parent 45): ...".
ALERT_EVENT = re.compile(r"^event (\d+) \(parent", re.MULTILINE)


def _examples(items, n: int = 5) -> list:
    return [str(item) for item in list(items)[:n]]


def inbox_rows(connection, messages: list[OmsMessage]) -> dict[str, list[Any]]:
    rows = defaultdict(list)
    ids = [m.message_id for m in messages]
    for row in connection.execute(text("SELECT id, transport_message_id, status, version FROM inbox "
                                       "WHERE transport_message_id = ANY(:ids)"), {"ids": ids}):
        rows[row.transport_message_id].append(row)
    return rows


def messages_stored_once(connection, messages: list[OmsMessage], rows: dict[str, list[Any]]) -> dict:
    """Contract 1: each message stored once and processed once (one `oms` event)."""
    oms_events = Counter(connection.execute(text("SELECT inbox_id FROM events WHERE type = 'oms'")).scalars())
    missing = [m.message_id for m in messages if not rows.get(m.message_id)]
    twice = [m.message_id for m in messages if len(rows.get(m.message_id, [])) > 1]
    unprocessed = [r.id for m in messages for r in rows.get(m.message_id, []) if r.status != "processed"]
    not_once = [r.id for m in messages for r in rows.get(m.message_id, []) if oms_events.get(r.id, 0) != 1]
    return {"violations": len(missing) + len(twice) + len(unprocessed) + len(not_once), "messages": len(messages),
            "missing": len(missing), "stored_twice": len(twice), "not_processed": len(unprocessed),
            "oms_event_not_once": len(not_once), "examples": _examples(missing + twice + unprocessed + not_once)}


def one_outcome_per_item(connection, messages: list[OmsMessage], rows: dict[str, list[Any]]) -> dict:
    """Every item (channel, SKU) of every message has exactly one terminal outcome event."""
    outcomes: dict[tuple, list[str]] = defaultdict(list)
    waiting: set = set()
    names = {f"{op}/{end}" for op in OPERATIONS for end in TERMINAL} | {"system/processing-failed"}
    query = text("SELECT id, name, inbox_id, channel_id, payload -> 'items' AS items FROM events "
                 "WHERE inbox_id IS NOT NULL AND channel_id IS NOT NULL AND (type = 'domain' OR name = 'system/processing-failed')")
    for event in connection.execute(query):
        for item in event.items or []:
            key = (event.inbox_id, event.channel_id, item.get("sku"))
            if event.name in names:
                outcomes[key].append(f"{event.id} {event.name}")
            elif event.name.endswith("/waiting-for-quantity"):
                waiting.add(key)
    items = none = many = 0
    examples = []
    for message in messages:
        for row in rows.get(message.message_id, [])[:1]:
            for channel, sku, _ in message.items:
                items += 1
                found = outcomes.get((row.id, channel, sku), [])
                if not found and (row.id, channel, sku) not in waiting:
                    none += 1
                    examples.append(f"none: {message.message_id} ({message.kind}) inbox {row.id} {channel} {sku}")
                elif len(found) > 1:
                    many += 1
                    examples.append(f"{len(found)}: {message.message_id} ({message.kind}) inbox {row.id} {channel} {sku}: "
                                    f"events {found}")
    return {"violations": none + many, "items": items, "no_outcome": none, "more_than_one": many,
            "examples": examples[:8]}


def expected_state(messages: list[OmsMessage], rows: dict[str, list[Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The OMS's last value per (channel, SKU, field): last in the order Wheel received the messages
    (a message's version is its inbox id: docs/contracts.md, contract 2)."""
    latest: dict[tuple[str, str, str], tuple[int, Any]] = {}
    for message in messages:
        for row in rows.get(message.message_id, [])[:1]:
            version = row.version or row.id
            for channel, sku, value in message.items:
                key = (channel, sku, message.field)
                if key not in latest or latest[key][0] < version:
                    latest[key] = (version, value)
    state: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for (channel, sku, name), (_, value) in latest.items():
        state[(channel, sku)][name] = value
    return state


def held(listing: dict[str, Any]) -> dict[str, Any]:
    """What the sandbox's marketplace holds, in the same terms on every marketplace."""
    out = {"ranged": listing.get("ranged"), "quantity": listing.get("quantity")}
    if listing.get("selling_price") is not None:
        out["price"] = Decimal(str(listing["selling_price"]))
    return out


def last_value_wins(expected: dict, states: dict[str, dict[str, Any]]) -> dict:
    """Contract 2: every SKU ends, on every channel, with the OMS's last value (stock is the
    effective quantity: 0 while deranged)."""
    wrong = []
    checked = 0
    for (channel, sku), want in sorted(expected.items()):
        have = held(states.get(channel, {}).get(sku, {}))
        ranged = want.get("ranged")
        if "ranged" in want:
            checked += 1
            if have["ranged"] != ranged:
                wrong.append((channel, sku, "ranged", ranged, have["ranged"]))
        if "quantity" in want:
            checked += 1
            quantity = 0 if ranged is False else want["quantity"]
            if have["quantity"] != quantity:
                wrong.append((channel, sku, "quantity", quantity, have["quantity"]))
        if "price" in want:
            checked += 1
            if have.get("price") != Decimal(want["price"]):
                wrong.append((channel, sku, "price", want["price"], have.get("price")))
    return {"violations": len(wrong), "values": checked, "examples": _examples(wrong)}


def no_older_push(messages: list[OmsMessage], rows: dict[str, list[Any]], calls: list[dict]) -> dict:
    """Contract 2: in the order the marketplace received them, no push carried a value older than
    one already pushed for that SKU. Values are unique (tests/chaos/load.py), so each names its
    message and that message's version. A quantity of 0 is the effective quantity of a deranged
    SKU, which no message carried."""
    version_of: dict[tuple[str, str, Decimal], int] = {}
    for message in messages:
        if message.field == "ranged":
            continue
        for row in rows.get(message.message_id, [])[:1]:
            for channel, sku, value in message.items:
                version_of[(channel, message.field, Decimal(value))] = row.version or row.id
    newest: dict[tuple[str, str, str], int] = {}
    older, unknown, pushes = [], [], 0
    for call in sorted((c for c in calls if c["accepted"]), key=lambda c: c["id"]):
        for sku, field, value in pushed_values(call):
            if field == "quantity" and value == 0:
                continue
            pushes += 1
            version = version_of.get((call["channel"], field, value))
            if version is None:
                unknown.append((call["id"], call["channel"], sku, field, str(value)))
                continue
            key = (call["channel"], sku, field)
            if version < newest.get(key, 0):
                older.append((call["id"], call["channel"], sku, field, str(value), version, newest[key]))
            newest[key] = max(newest.get(key, 0), version)
    return {"violations": len(older) + len(unknown), "pushes": pushes, "older": len(older), "unknown_value": len(unknown),
            "examples": _examples(older + unknown)}


def reached_oms_once(kind: str, deliveries: list, expected: dict[tuple[str, str], Any]) -> dict:
    """Contract 4: each order (or cancellation) on the OMS queue, once; a duplicate only as the same
    message put again (the same message id), counted, never as a second message for it."""
    ids = Counter(d.message_id for d in deliveries)
    by_order: dict[tuple[str, str], set[str]] = defaultdict(set)
    bodies = {}
    invalid = []
    for delivery in deliveries:
        try:
            if validate_document(delivery.body) != ("order" if kind == "orders" else "cancellation"):
                invalid.append((delivery.message_id, f"not a document for {kind}"))
        except ValueError as exc:  # OmsMessageError: not valid against its XSD, said why
            invalid.append((delivery.message_id, str(exc)[:200]))
        root = etree.fromstring(delivery.body)
        by_order[(root.get("EntryType"), root.get("OrderNo"))].add(delivery.message_id)
        bodies[delivery.message_id] = root
    missing = sorted(set(expected) - set(by_order))
    extra = sorted(set(by_order) - set(expected))
    two_ids = sorted(k for k, v in by_order.items() if len(v) > 1)
    wrong = []
    if kind == "cancellations":
        for key, spec in expected.items():
            if key not in by_order:
                continue
            root = bodies[next(iter(by_order[key]))]
            action = "CANCEL" if spec["skus"] is None else "MODIFY"
            skus = {line.find("Item").get("ItemID") for line in root.iter("OrderLine")}
            if root.get("Action") != action or (spec["skus"] is not None and skus != spec["skus"]):
                wrong.append((key, root.get("Action"), sorted(skus)))
    return {"violations": len(missing) + len(extra) + len(two_ids) + len(invalid) + len(wrong),
            "expected": len(expected), "messages": len(deliveries), "distinct_ids": len(ids),
            "duplicates_same_id": sum(n - 1 for n in ids.values()), "missing": len(missing), "extra": len(extra),
            "under_two_ids": len(two_ids), "invalid": len(invalid), "wrong_content": len(wrong),
            "examples": _examples(missing + extra + two_ids + invalid + wrong)}


def has_alerts_table(connection) -> bool:
    return connection.execute(text("SELECT to_regclass('public.alerts') IS NOT NULL")).scalar()


def errors_alerted(connection, worker_logs: str, up_to_event: int) -> dict:
    """Every error event (up to `up_to_event`: pulls go on failing while the audit runs) produced an
    alert: a sent row of the alerts outbox where there is one, else the alert's line in a worker's
    log (LogAlerter, wheel/notifications.py)."""
    errors = dict(connection.execute(text("SELECT id, name FROM events WHERE level = 'error' AND id <= :last"),
                                     {"last": up_to_event}).all())
    if has_alerts_table(connection):
        alerted = set(connection.execute(text("SELECT event_id FROM alerts WHERE sent_at IS NOT NULL")).scalars())
        source = "alerts table"
    else:
        alerted = {int(m) for m in ALERT_EVENT.findall(worker_logs)}
        source = "worker logs"
    silent = sorted(set(errors) - alerted)
    return {"violations": len(silent), "error_events": len(errors), "by_name": dict(Counter(errors.values())),
            "source": source, "examples": [f"event {i} {errors[i]}" for i in silent[:8]]}
