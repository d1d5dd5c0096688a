"""Generated rows for the scale benchmark (bench_scale.py), made by SQL (generate_series), not the
pipeline: `rows` listings, inbox messages, orders and outbox rows, and `events` events.

The shape follows what the pipeline writes (wheel/services/*.py): 10 channels; listings are
rows/10 SKUs on every channel, 10% of the SKUs dirty on each (a backlog waiting to go out); the
inbox, the events, the orders and their outbox rows spread evenly over the last SPAN_DAYS days,
oldest first by id, so a retention purge (90 days for events and orders, 30 for the inbox by
default) finds its share past the cut. Events come in groups of five: an `oms` event for a
message (its inbox row) and four `domain` pushes under it (parent_id), one push in 50 failed
with a marketplace code. Bodies are about 800 bytes: a ten-item OMS message.
"""

from __future__ import annotations

import time

from sqlalchemy import text

SPAN_DAYS = 120
CHANNELS = 10

TRUNCATE = text("TRUNCATE health_alerts, heartbeats, events, submissions, listings, inbox, outbox, cancellations, "
                "orders, job_runs, schedules, channels, operations_daily, report_rollups RESTART IDENTITY CASCADE")

CHANNEL_ROWS = text("""
INSERT INTO channels (id, marketplace, base_url, credentials_ref)
SELECT 'C' || c, (ARRAY['amazon', 'flipkart', 'tatacliq'])[c % 3 + 1], 'http://127.0.0.1:9/' || c, 'bench-c' || c
  FROM generate_series(0, :channels - 1) c
""")

# Row i is SKU i/10 on channel i%10; the SKUs with (i/10) % 10 = 0 are dirty on every channel,
# since a random time in the last hour; one dirty SKU in 20 ((i/10) % 200 = 0) waits for a retry
# (next_attempt_at in the future) on every channel. (Counted by i % 20 before, which put every dirty
# listing of channel C0, the one the claim is timed on, in retry for the first 5 minutes.)
LISTINGS = text("""
INSERT INTO listings (channel_id, sku, ean, ranged, ranged_version, ranged_settled, quantity, quantity_version,
                      quantity_settled, mrp, selling_price, price_version, price_settled, pushed_ranged,
                      pushed_quantity, pushed_mrp, pushed_selling_price, dirty, dirty_since, next_attempt_at,
                      updated_at)
SELECT 'C' || (i % 10), 'SKU-' || lpad((i / 10)::text, 7, '0'), 'EAN' || (i / 10), true, 1, 1,
       q, CASE WHEN d THEN 3 ELSE 2 END, 2, 5000, 4000 + i % 900, 3, 3, true,
       CASE WHEN d THEN q + 1 ELSE q END, 5000, 4000 + i % 900, d,
       CASE WHEN d THEN now() - make_interval(secs => 60 + (i * 7919) % 3600) END,
       CASE WHEN d AND (i / 10) % 200 = 0 THEN now() + interval '5 minutes'
            WHEN d THEN now() - make_interval(secs => 60 + (i * 7919) % 3600) ELSE now() - interval '1 day' END,
       now() - make_interval(secs => (i * 7919) % 86400)
  FROM generate_series(0::bigint, :rows - 1) i, LATERAL (SELECT (i / 10) % 10 = 0 AS d, (i * 7) % 100 AS q) x
""")

BODY = "<EXTNInventoryList><EXTNInventoryItemList>" + "".join(
    f'<EXTNInventoryItem ChannelID="C{n}" EAN="E-SKU-{n:07d}" ItemID="SKU-{n:07d}" Quantity="{n * 3}"/>'
    for n in range(8)) + "</EXTNInventoryItemList></EXTNInventoryList>"

# Message i's `oms` event is event 5(i-1)+1 (when there are that many events).
INBOX = text("""
INSERT INTO inbox (id, queue, transport_message_id, body, body_sha256, size, status, event_id, received_at,
                   acked_at, enqueued_at, processed_at)
OVERRIDING SYSTEM VALUE
SELECT i, (ARRAY['OMS.RANGING', 'OMS.DERANGING', 'OMS.INVENTORY', 'OMS.PRICING'])[i % 4 + 1], 'msg-' || i,
       convert_to(:body, 'UTF8'), md5(i::text), length(:body),
       CASE WHEN i > :rows - 100 THEN 'received' WHEN i % 1000 = 0 THEN 'failed' ELSE 'processed' END,
       CASE WHEN 5 * (i - 1) + 1 <= :events THEN 5 * (i - 1) + 1 END, t, t, t, t + interval '1 second'
  FROM generate_series(1::bigint, :rows) i,
       LATERAL (SELECT now() - make_interval(days => :span) * (1 - i::float8 / :rows) AS t) x
""")

EVENTS = text("""
INSERT INTO events (id, parent_id, type, name, level, channel_id, marketplace, inbox_id, dedupe_key, payload,
                    created_at)
OVERRIDING SYSTEM VALUE
SELECT i, CASE WHEN p > 0 THEN 5 * k + 1 END,
       CASE WHEN p = 0 THEN 'oms' ELSE 'domain' END,
       CASE WHEN p = 0 THEN (ARRAY['oms/items-ranged', 'oms/items-deranged', 'oms/inventory-updated',
                                   'oms/prices-updated'])[k % 4 + 1]
            ELSE op || CASE WHEN failed THEN '/failed' ELSE '/succeeded' END END,
       CASE WHEN failed THEN 'error' ELSE 'info' END,
       CASE WHEN p > 0 THEN 'C' || c END,
       CASE WHEN p > 0 THEN (ARRAY['amazon', 'flipkart', 'tatacliq'])[c % 3 + 1] END,
       CASE WHEN p = 0 THEN k + 1 END,
       'bench-' || i,
       CASE WHEN p = 0 THEN jsonb_build_object('queue', 'OMS.INVENTORY', 'items', 8, 'excerpt', left(:body, 300))
            ELSE jsonb_build_object('items', jsonb_build_array(
                     jsonb_build_object('sku', 'SKU-' || lpad(((i * 31) % 100000)::text, 7, '0'), 'quantity', i % 50)
                     || CASE WHEN failed THEN jsonb_build_object('code', 'E' || (i % 7), 'error', 'refused: bad value')
                             ELSE '{}'::jsonb END,
                     jsonb_build_object('sku', 'SKU-' || lpad(((i * 37) % 100000)::text, 7, '0'), 'quantity', i % 40)),
                     'calls', 1) END,
       now() - make_interval(days => :span) * (1 - i::float8 / :events)
  FROM generate_series(1::bigint, :events) i,
       LATERAL (SELECT (i - 1) / 5 AS k, (i - 1) % 5 AS p) g,
       LATERAL (SELECT (g.k + g.p) % 10 AS c,
                       (ARRAY['ranging', 'deranging', 'inventory', 'pricing'])[g.k % 4 + 1] AS op,
                       g.p > 0 AND i % 50 = 7 AS failed) x
""")

ORDERS = text("""
INSERT INTO orders (id, channel_id, order_id, status, document, raw, lines, total, event_id, received_at, sent_at)
OVERRIDING SYSTEM VALUE
SELECT i, 'C' || (i % 10), 'ORD-' || i,
       CASE WHEN i > :rows - 50 THEN 'ready' WHEN i % 2000 = 0 THEN 'failed' ELSE 'sent' END,
       jsonb_build_object('order_id', 'ORD-' || i, 'lines', jsonb_build_array(
                              jsonb_build_object('line_id', '1', 'sku', 'SKU-' || (i % 100000), 'quantity', 1,
                                                 'price', '499.00')),
                          'bill_to', jsonb_build_object('name', 'Customer ' || i, 'line1', '12 MG Road',
                                                        'city', 'Bengaluru', 'pin', '560001', 'phone', '9800000000'),
                          'ship_to', jsonb_build_object('name', 'Customer ' || i, 'line1', '12 MG Road',
                                                        'city', 'Bengaluru', 'pin', '560001', 'phone', '9800000000')),
       jsonb_build_object('orderId', 'ORD-' || i, 'buyer', jsonb_build_object('name', 'Customer ' || i),
                          'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i % 100000), 'qty', 1))),
       1 + i % 3, 499 * (1 + i % 3),
       CASE WHEN 5 * ((i - 1) % greatest(:events / 5, 1)) + 2 <= :events THEN 5 * ((i - 1) % greatest(:events / 5, 1)) + 2 END,
       t, CASE WHEN i > :rows - 50 OR i % 2000 = 0 THEN NULL ELSE t + interval '5 seconds' END
  FROM generate_series(1::bigint, :rows) i,
       LATERAL (SELECT now() - make_interval(days => :span) * (1 - i::float8 / :rows) AS t) x
""")

OUTBOX = text("""
INSERT INTO outbox (kind, channel_id, order_id, queue, message_id, body, event_id, created_at, enqueued_at, sent_at)
SELECT 'order', channel_id, order_id, 'OMS.ORDERS', 'out-' || id, convert_to(:body, 'UTF8'), event_id,
       received_at, received_at, sent_at
  FROM orders WHERE status <> 'failed'
""")

CANCELLATIONS = text("""
INSERT INTO cancellations (channel_id, order_id, line_id, sku, quantity, status, received_at)
SELECT channel_id, order_id, '1', 'SKU-' || (id % 100000), 1,
       CASE WHEN id > :rows - 1000 AND id % 40 = 0 THEN 'held' ELSE 'sent' END, received_at + interval '1 hour'
  FROM orders WHERE id % 20 = 0
""")

SCHEDULES = text("""
INSERT INTO schedules (channel_id, job, cron, next_run_at, watermark, last_started_at, last_finished_at,
                       last_outcome)
SELECT c.id, j, '*/5 * * * *', now() + interval '5 minutes', now() - interval '10 minutes',
       now() - interval '5 minutes', now() - interval '4 minutes', 'succeeded'
  FROM channels c, unnest(ARRAY['orders', 'cancellations']) j
""")

# One run every 5 minutes per schedule, back as far as `rows`/100 runs in all.
JOB_RUNS = text("""
INSERT INTO job_runs (schedule_id, due_at, trigger, status, created_at, enqueued_at, started_at, finished_at,
                      orders, calls)
SELECT s.id, now() - make_interval(mins => 5 * n), 'cron', CASE WHEN n % 97 = 0 THEN 'failed' ELSE 'succeeded' END,
       now() - make_interval(mins => 5 * n), now() - make_interval(mins => 5 * n),
       now() - make_interval(mins => 5 * n), now() - make_interval(mins => 5 * n) + interval '3 seconds', 4, 2
  FROM schedules s, generate_series(1, greatest(:rows / 100 / 20, 1)) n
""")

HEARTBEAT = text("INSERT INTO heartbeats (name, at) VALUES ('beat', now())")

TRUNCATE_EVENTS = text("TRUNCATE events, alerts, operations_daily, report_rollups RESTART IDENTITY")

# Each table's identity moves past the ids given above, as the pipeline would have left it.
SEQUENCES = text("""
SELECT setval(pg_get_serial_sequence('inbox', 'id'), (SELECT coalesce(max(id), 1) FROM inbox)),
       setval(pg_get_serial_sequence('events', 'id'), (SELECT coalesce(max(id), 1) FROM events)),
       setval(pg_get_serial_sequence('orders', 'id'), (SELECT coalesce(max(id), 1) FROM orders))
""")

STEPS = (("channels", CHANNEL_ROWS), ("listings", LISTINGS), ("events", EVENTS), ("inbox", INBOX),
         ("orders", ORDERS), ("outbox", OUTBOX), ("cancellations", CANCELLATIONS), ("schedules", SCHEDULES),
         ("job_runs", JOB_RUNS), ("heartbeats", HEARTBEAT))


def fill(engine, rows: int, events: int, *, events_only: bool = False) -> dict[str, float]:
    """Empty every table and fill them (or only the events, the rest left as they are); seconds per
    table. Then VACUUM ANALYZE, as autovacuum would."""
    params = {"rows": rows, "events": events, "span": SPAN_DAYS, "body": BODY, "channels": CHANNELS}
    seconds = {}
    with engine.begin() as connection:
        connection.execute(TRUNCATE_EVENTS if events_only else TRUNCATE)
    for table, statement in STEPS:
        if events_only and table != "events":
            continue
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(statement, {k: v for k, v in params.items() if f":{k}" in statement.text})
        seconds[table] = round(time.perf_counter() - started, 2)
    with engine.begin() as connection:
        connection.execute(SEQUENCES)
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    seconds["vacuum_analyze"] = round(time.perf_counter() - started, 2)
    return seconds
