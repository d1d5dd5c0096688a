"""Unit tests of the IBM MQ transport's own logic, against `ibmmq_standin`: a stand-in for IBM's
MQ library, which cannot be installed here. No network; each test takes well under a second."""

from __future__ import annotations

import hashlib
import importlib
import sys
import threading
import time
import traceback

import pytest

import bridge.transports
from bridge.transports.ibmmq import (
    IbmMqConnectionBroken,
    IbmMqError,
    IbmMqQueueMissing,
    IbmMqTransport,
    mq_message_id,
    parse_url,
)
from tests.unit import ibmmq_standin as standin

PASSWORD = "s3cr3t-Pa55"
URL = f"ibmmq://app:{PASSWORD}@mq.example:1414/QM1?channel=DEV.APP.SVRCONN"
IN_A, IN_B, BACKOUT, OUT = "OMS.RANGING", "OMS.PRICING", "WHEEL.BACKOUT", "OMS.ORDERS"
C = standin.CMQC


@pytest.fixture
def server():
    qm = standin.QueueManagerServer("QM1", [IN_A, IN_B, BACKOUT, OUT], users={"app": PASSWORD})
    yield standin.listen(qm, "mq.example(1414)")
    standin.reset()


@pytest.fixture
def transport(server):
    transport = IbmMqTransport(URL, mq=standin)
    transport.connect()
    yield transport
    transport.close()


def fetch_now(transport, *queues, max_messages=10):
    return transport.fetch(list(queues), max_messages=max_messages, wait_s=0)


# -- the URL and the password -------------------------------------------------------------------


def test_url_defaults():
    a = parse_url("ibmmq://mq.example/QM1")
    assert (a.host, a.port, a.queue_manager, a.channel, a.user, a.password) == (
        "mq.example", 1414, "QM1", "DEV.APP.SVRCONN", None, None,
    )
    assert a.conn_info == "mq.example(1414)"


def test_url_with_everything_set():
    a = parse_url("ibmmq://app:p%40ss%2Fw0rd@mq.example:1415/QM2?channel=WHEEL.SVRCONN")
    assert (a.host, a.port, a.queue_manager, a.channel, a.user, a.password) == (
        "mq.example", 1415, "QM2", "WHEEL.SVRCONN", "app", "p@ss/w0rd",
    )


@pytest.mark.parametrize(
    "url",
    [
        f"amqp://app:{PASSWORD}@mq.example/QM1",
        f"ibmmq://app:{PASSWORD}@/QM1",
        f"ibmmq://app:{PASSWORD}@mq.example:port/QM1",
        f"ibmmq://app:{PASSWORD}@mq.example/QM1/more",
        f"ibmmq://app:{PASSWORD}@mq.example/QM1?chanel=DEV.APP.SVRCONN",
        f"ibmmq://:{PASSWORD}@mq.example/QM1",
        "ibmmq://app@mq.example/QM1",
    ],
)
def test_bad_urls_are_refused_without_quoting_the_password(url):
    with pytest.raises(ValueError) as exc:
        parse_url(url)
    assert PASSWORD not in str(exc.value)


def test_connect_passes_queue_manager_channel_and_credentials(server, transport):
    (connection,) = server.connections
    assert (connection.user, connection.password, connection.channel) == ("app", PASSWORD, "DEV.APP.SVRCONN")


def test_the_password_is_in_no_repr_and_no_error(server):
    transport = IbmMqTransport(URL, mq=standin)
    assert repr(transport) == str(transport) == (
        "IbmMqTransport(ibmmq://app@mq.example:1414/QM1?channel=DEV.APP.SVRCONN)"
    )
    assert PASSWORD not in repr(transport.address)
    server.refuse_connections()
    with pytest.raises(IbmMqConnectionBroken) as exc:
        transport.connect()
    assert "MQRC_Q_MGR_NOT_AVAILABLE (2059)" in str(exc.value)
    assert PASSWORD not in "".join(traceback.format_exception(exc.value))  # with its cause
    assert PASSWORD not in repr(exc.value)


def test_a_refused_connection_is_a_connection_error_until_the_queue_manager_is_back(server):
    transport = IbmMqTransport(URL, mq=standin)
    server.refuse_connections()
    with pytest.raises(transport.connection_errors) as exc:
        transport.connect()
    assert exc.value.reason == C.MQRC_Q_MGR_NOT_AVAILABLE
    server.accept_connections()
    transport.connect()
    server.add_message(IN_A, b"one")
    assert [d.body for d in fetch_now(transport, IN_A)] == [b"one"]
    transport.close()


def test_other_mq_errors_are_not_connection_errors(server):
    transport = IbmMqTransport(URL.replace(PASSWORD, "Wr0ng-Pa55"), mq=standin)
    with pytest.raises(IbmMqError) as exc:
        transport.connect()
    assert exc.value.reason == C.MQRC_NOT_AUTHORIZED
    assert "MQRC_NOT_AUTHORIZED (2035)" in str(exc.value)
    assert not isinstance(exc.value, transport.connection_errors)
    assert "Wr0ng-Pa55" not in str(exc.value)


# -- fetch, commit, backout ---------------------------------------------------------------------


def test_fetch_returns_bodies_ids_and_headers(server, transport):
    first = server.add_message(
        IN_A, b"<ranging>1</ranging>", correl_id=b"K" * 24, format=b"MQSTR\x00\x00\x00",
        put_date=b"20250301", put_time=b"10151230",
    )
    second = server.add_message(IN_A, b"<ranging>2</ranging>")
    batch = fetch_now(transport, IN_A)
    # Two in one call: each MQGET needs a fresh MD, or it would match the first message's MsgId only.
    assert [d.body for d in batch] == [b"<ranging>1</ranging>", b"<ranging>2</ranging>"]
    assert [d.message_id for d in batch] == [first.msg_id.hex(), second.msg_id.hex()]
    assert len(batch[0].message_id) == 48
    assert batch[0].headers == {
        "correl_id": (b"K" * 24).hex(), "format": "MQSTR", "put_date": "20250301", "put_time": "10151230",
    }
    assert [(d.queue, d.redelivered, d.delivery_count) for d in batch] == [(IN_A, False, 0), (IN_A, False, 0)]


def test_fetch_takes_at_most_max_messages_across_its_queues(server, transport):
    for i in range(3):
        server.add_message(IN_A, b"a%d" % i)
        server.add_message(IN_B, b"b%d" % i)
    batch = fetch_now(transport, IN_A, IN_B, max_messages=4)
    assert len(batch) == 4
    transport.commit(batch)
    assert len(server.messages(IN_A) + server.messages(IN_B)) == 2


def test_fetch_waits_wait_s_then_returns_nothing(transport):
    started = time.monotonic()
    assert transport.fetch([IN_A, IN_B], max_messages=5, wait_s=0.5) == []
    assert 0.45 <= time.monotonic() - started < 2


def test_fetch_returns_a_message_that_arrives_while_it_waits(server, transport):
    later = threading.Timer(0.3, server.add_message, args=(IN_B, b"late"))
    later.start()
    started = time.monotonic()
    batch = transport.fetch([IN_A, IN_B], max_messages=5, wait_s=5)
    later.join()
    assert [d.body for d in batch] == [b"late"]
    assert time.monotonic() - started < 2


def test_fetched_messages_are_hidden_from_others_until_commit_removes_them(server, transport):
    server.add_message(IN_A, b"one")
    batch = fetch_now(transport, IN_A)
    other = IbmMqTransport(URL, mq=standin)
    other.connect()
    assert fetch_now(other, IN_A) == []
    other.close()
    transport.commit(batch)
    server.break_connections()  # would return anything not committed
    assert server.bodies(IN_A) == []


def test_backout_returns_messages_with_their_delivery_count_raised(server, transport):
    server.add_message(IN_A, b"one")
    server.add_message(IN_A, b"two")
    first = fetch_now(transport, IN_A)
    transport.backout(first)
    assert server.bodies(IN_A) == [b"one", b"two"]  # back in order
    second = fetch_now(transport, IN_A)
    assert [d.message_id for d in second] == [d.message_id for d in first]
    assert [(d.redelivered, d.delivery_count) for d in second] == [(True, 1), (True, 1)]
    transport.backout(second)
    assert [d.delivery_count for d in fetch_now(transport, IN_A)] == [2, 2]


def test_a_commit_of_part_of_a_fetch_waits_for_the_rest(server, transport):
    server.add_message(IN_A, b"one")
    server.add_message(IN_A, b"two")
    one, two = fetch_now(transport, IN_A)
    transport.commit([one])  # IBM MQ would commit "two" too, before anyone stored it
    server.break_connections()
    assert server.bodies(IN_A) == [b"one", b"two"]


def test_committing_the_last_unsettled_delivery_commits_them_all(server, transport):
    server.add_message(IN_A, b"one")
    server.add_message(IN_A, b"two")
    one, two = fetch_now(transport, IN_A)
    transport.commit([one])
    transport.commit([two])
    server.break_connections()
    assert server.bodies(IN_A) == []


def test_backout_of_one_delivery_returns_the_whole_unit_of_work(server, transport):
    server.add_message(IN_A, b"one")
    server.add_message(IN_A, b"two")
    one, two = fetch_now(transport, IN_A)
    transport.backout([one])
    assert server.bodies(IN_A) == [b"one", b"two"]
    transport.commit([two])  # went back with the unit of work: nothing to commit
    assert [(m.body, m.backout_count) for m in server.messages(IN_A)] == [(b"one", 1), (b"two", 1)]


def test_a_failing_fetch_leaves_nothing_it_took_in_the_unit_of_work(server, transport):
    server.add_message(IN_A, b"one")
    with pytest.raises(IbmMqQueueMissing):
        transport.fetch([IN_A, "OMS.MISSING"], max_messages=10, wait_s=0)
    assert server.bodies(IN_A) == [b"one"]


# -- lost connections ---------------------------------------------------------------------------


def test_a_connection_lost_mid_unit_of_work_raises_and_the_messages_come_back_after_reconnect(server, transport):
    server.add_message(IN_A, b"one")
    batch = fetch_now(transport, IN_A)
    server.break_connections()
    with pytest.raises(IbmMqConnectionBroken) as exc:
        transport.commit(batch)
    assert isinstance(exc.value, transport.connection_errors)
    assert exc.value.reason == C.MQRC_CONNECTION_BROKEN
    assert "MQRC_CONNECTION_BROKEN (2009)" in str(exc.value)
    with pytest.raises(IbmMqConnectionBroken):
        fetch_now(transport, IN_A)

    transport.connect()  # the cached queue handles of the lost connection are gone with it
    (again,) = fetch_now(transport, IN_A)
    assert (again.body, again.message_id, again.redelivered, again.delivery_count) == (
        b"one", batch[0].message_id, True, 1,
    )
    with pytest.raises(IbmMqConnectionBroken):
        transport.commit(batch)  # taken on the lost connection: backed out, not committable
    transport.commit([again])
    server.break_connections()
    assert server.bodies(IN_A) == []


def test_a_quiescing_queue_manager_is_a_connection_error_and_nothing_taken_is_committed(server, transport):
    server.add_message(IN_A, b"one")
    fetch_now(transport, IN_A)
    server.quiesce()  # the connection still works, and MQDISC would commit its unit of work
    with pytest.raises(IbmMqConnectionBroken) as exc:
        fetch_now(transport, IN_A)
    assert exc.value.reason == C.MQRC_Q_MGR_QUIESCING
    assert [(m.body, m.backout_count) for m in server.messages(IN_A)] == [(b"one", 1)]


def test_close_backs_out_what_was_not_committed(server, transport):
    server.add_message(IN_A, b"one")
    fetch_now(transport, IN_A)
    transport.close()  # MQDISC alone would commit
    assert [(m.body, m.backout_count) for m in server.messages(IN_A)] == [(b"one", 1)]
    transport.close()


def test_close_never_raises(server, transport):
    server.add_message(IN_A, b"one")
    fetch_now(transport, IN_A)
    server.break_connections()
    transport.close()
    assert server.bodies(IN_A) == [b"one"]


# -- move -----------------------------------------------------------------------------------------


def test_move_puts_on_the_backout_queue_and_removes_from_the_source_as_one(server, transport):
    original = server.add_message(IN_A, b"<bad/>", correl_id=b"K" * 24, format=C.MQFMT_STRING)
    (delivery,) = fetch_now(transport, IN_A)
    transport.move(delivery, BACKOUT, reason="could not be stored")
    server.break_connections()  # would return anything not committed
    assert server.bodies(IN_A) == []
    (moved,) = server.messages(BACKOUT)
    assert (moved.body, moved.msg_id, moved.correl_id, moved.format, moved.persistence) == (
        b"<bad/>", original.msg_id, b"K" * 24, C.MQFMT_STRING, C.MQPER_PERSISTENT,
    )


def test_a_break_before_the_move_commits_leaves_the_message_on_its_source_only(server, transport):
    server.add_message(IN_A, b"<bad/>")
    (delivery,) = fetch_now(transport, IN_A)
    server.break_on("commit")
    with pytest.raises(IbmMqConnectionBroken):
        transport.move(delivery, BACKOUT, reason="could not be stored")
    assert server.bodies(IN_A) == [b"<bad/>"]
    assert server.bodies(BACKOUT) == []


def test_a_move_within_a_batch_is_committed_with_the_rest_of_the_batch(server, transport):
    server.add_message(IN_A, b"good")
    server.add_message(IN_A, b"bad")
    good, bad = fetch_now(transport, IN_A)
    transport.move(bad, BACKOUT, reason="x")
    assert server.bodies(BACKOUT) == []  # "good" is not settled yet
    transport.commit([good])
    server.break_connections()
    assert (server.bodies(IN_A), server.bodies(BACKOUT)) == ([], [b"bad"])


def test_moving_a_delivery_backed_out_since_takes_it_again_first(server, transport):
    server.add_message(IN_A, b"other")
    server.add_message(IN_A, b"bad")
    other, bad = fetch_now(transport, IN_A)
    transport.backout([other])  # "bad" goes back to IN_A too
    transport.move(bad, BACKOUT, reason="x")
    server.break_connections()
    assert (server.bodies(IN_A), server.bodies(BACKOUT)) == ([b"other"], [b"bad"])
    assert server.messages(BACKOUT)[0].msg_id.hex() == bad.message_id


# -- one consumer at a time ------------------------------------------------------------------------


def exclusive(server):
    transport = IbmMqTransport(URL, mq=standin, exclusive_input=True)
    transport.connect()
    return transport


def test_an_exclusive_consumer_makes_another_stand_by_until_its_connection_ends(server):
    from bridge.transports.base import ConsumerStandby

    server.add_message(IN_A, b"one")
    active, standby = exclusive(server), exclusive(server)
    [taken] = fetch_now(active, IN_A)
    with pytest.raises(ConsumerStandby) as exc:
        fetch_now(standby, IN_A)
    assert isinstance(exc.value, IbmMqError) and exc.value.reason == C.MQRC_OBJECT_IN_USE
    assert not isinstance(exc.value, standby.connection_errors)  # no reconnecting: it waits
    assert "MQRC_OBJECT_IN_USE (2042)" in str(exc.value)
    server.break_connections()  # the active bridge dies: its unit of work is backed out
    active.close()
    standby.connect()
    [again] = fetch_now(standby, IN_A)
    assert (again.body, again.message_id, again.redelivered) == (b"one", taken.message_id, True)
    standby.close()


def test_a_shared_reader_is_refused_while_a_consumer_holds_the_queue(server, transport):
    active = exclusive(server)
    fetch_now(active, IN_A)
    with pytest.raises(IbmMqError) as exc:
        fetch_now(transport, IN_A)  # `transport` opens for shared input, as tools do
    assert exc.value.reason == C.MQRC_OBJECT_IN_USE
    active.close()
    assert fetch_now(transport, IN_A) == []


def test_a_standby_lets_go_of_the_queues_it_had_opened(server):
    from bridge.transports.base import ConsumerStandby

    active, standby = exclusive(server), exclusive(server)
    fetch_now(active, IN_B)
    with pytest.raises(ConsumerStandby):
        fetch_now(standby, IN_A, IN_B)  # opens IN_A, then finds IN_B held
    third = exclusive(server)
    assert fetch_now(third, IN_A) == []  # IN_A is free: the standby did not keep it
    for t in (active, standby, third):
        t.close()


# -- put, get_one, declare ----------------------------------------------------------------------


def test_put_is_persistent_committed_and_keeps_a_hex_message_id(server, transport):
    message_id = "ab" * 24
    transport.put(OUT, b"<order/>", message_id=message_id)
    server.break_connections()  # would discard it, had it not been committed
    (message,) = server.messages(OUT)
    assert (message.body, message.msg_id, message.persistence, message.format) == (
        b"<order/>", bytes.fromhex(message_id), C.MQPER_PERSISTENT, C.MQFMT_STRING,
    )


def test_put_derives_the_msg_id_of_any_other_id(server, transport):
    transport.put(OUT, b"<order/>", message_id="order-123")
    (message,) = server.messages(OUT)
    assert message.msg_id == hashlib.sha256(b"order-123").digest()[:24]
    (delivery,) = fetch_now(transport, OUT)
    assert mq_message_id(delivery.message_id) == message.msg_id


def test_put_is_made_under_syncpoint(server, transport):
    server.break_on("commit")
    with pytest.raises(IbmMqConnectionBroken):
        transport.put(OUT, b"<order/>", message_id="order-1")
    assert server.bodies(OUT) == []


def test_put_does_not_commit_deliveries_still_being_handled(server, transport):
    server.add_message(IN_A, b"one")
    fetch_now(transport, IN_A)
    transport.put(OUT, b"<order/>", message_id="order-2")
    server.break_connections()
    assert (server.bodies(IN_A), server.bodies(OUT)) == ([b"one"], [b"<order/>"])


def test_get_one_takes_and_commits_one_message(server, transport):
    server.add_message(IN_A, b"one")
    server.add_message(IN_A, b"two")
    delivery = transport.get_one(IN_A, wait_s=0)
    assert delivery is not None and delivery.body == b"one"
    server.break_connections()
    assert server.bodies(IN_A) == [b"two"]


def test_get_one_waits_then_returns_none(transport):
    started = time.monotonic()
    assert transport.get_one(IN_A, wait_s=0.3) is None
    assert time.monotonic() - started >= 0.25


def test_declare_checks_the_queues_and_names_a_missing_one(server, transport):
    transport.declare([IN_A, BACKOUT])
    with pytest.raises(IbmMqQueueMissing, match="'OMS.MISSING'") as exc:
        transport.declare([IN_A, "OMS.MISSING"])
    assert exc.value.reason == C.MQRC_UNKNOWN_OBJECT_NAME
    assert not isinstance(exc.value, transport.connection_errors)
    assert "OMS.MISSING" not in server.queues  # never created


# -- the optional library -----------------------------------------------------------------------


def test_without_ibmmq_or_pymqi_the_constructor_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ibmmq", None)  # makes `import ibmmq` fail
    monkeypatch.setitem(sys.modules, "pymqi", None)
    with pytest.raises(RuntimeError) as exc:
        IbmMqTransport(URL)
    message = str(exc.value)
    assert "pip install '.[ibmmq]'" in message
    assert "MQ redistributable client" in message
    assert PASSWORD not in message


def test_pymqi_is_used_when_ibmmq_is_missing(monkeypatch, server):
    monkeypatch.setitem(sys.modules, "ibmmq", None)
    monkeypatch.setitem(sys.modules, "pymqi", standin)
    transport = IbmMqTransport(URL)
    transport.connect()
    assert len(server.connections) == 1
    transport.close()


def test_the_module_imports_without_ibm_mq(monkeypatch):
    monkeypatch.setitem(sys.modules, "ibmmq", None)
    monkeypatch.setitem(sys.modules, "pymqi", None)
    monkeypatch.setattr(bridge.transports, "ibmmq", sys.modules["bridge.transports.ibmmq"], raising=False)
    monkeypatch.delitem(sys.modules, "bridge.transports.ibmmq")
    module = importlib.import_module("bridge.transports.ibmmq")
    assert module.IbmMqTransport.connection_errors == (module.IbmMqConnectionBroken,)
