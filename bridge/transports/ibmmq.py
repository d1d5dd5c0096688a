"""The IBM MQ transport, through IBM's `ibmmq` Python library (or `pymqi`, its predecessor).

Messages are got under syncpoint. IBM MQ has one unit of work per connection, covering every get
and put since the last commit or backout, and backs it out when the connection is lost.

The bridge's transport opens the OMS queues for exclusive input (`exclusive_input`), so that a
second bridge is a standby: its open fails with MQRC_OBJECT_IN_USE until the first closes the
queue or its connection ends, and it keeps trying (ConsumerStandby).
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from bridge.transports.base import ConsumerStandby, Delivery, Outgoing

log = logging.getLogger(__name__)

DEFAULT_PORT = 1414
DEFAULT_CHANNEL = "DEV.APP.SVRCONN"

# Reason codes that mean the connection is gone or going: reconnect and carry on.
CONNECTION_BROKEN_REASONS = (
    "MQRC_CONNECTION_BROKEN",  # 2009
    "MQRC_Q_MGR_NOT_AVAILABLE",  # 2059
    "MQRC_Q_MGR_QUIESCING",  # 2161
    "MQRC_Q_MGR_STOPPING",  # 2162
    "MQRC_CONNECTION_QUIESCING",  # 2202
    "MQRC_CONNECTION_STOPPING",  # 2203
    "MQRC_CONNECTION_ERROR",  # 2273
    "MQRC_HOST_NOT_AVAILABLE",  # 2538
    "MQRC_RECONNECT_FAILED",  # 2548
)

# MQGET waits on one queue at a time, so with several queues fetch waits on each in turn for
# this long: a message on any of them is seen within about (queues - 1) x this.
POLL_SLICE_S = 0.2


class IbmMqConnectionBroken(ConnectionError):
    """The connection to the queue manager is lost: call connect() again."""

    def __init__(self, message: str, *, reason: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class IbmMqError(RuntimeError):
    """An MQI call failed for a reason other than a lost connection."""

    def __init__(self, message: str, *, reason: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class IbmMqQueueMissing(IbmMqError):
    """The queue is not defined on the queue manager (MQRC_UNKNOWN_OBJECT_NAME)."""


class IbmMqQueueInUse(IbmMqError, ConsumerStandby):
    """Another application has the queue open for input in a way that excludes this open
    (MQRC_OBJECT_IN_USE, 2042: "the request is for exclusive input, but the object is already open
    for input (of any sort)", https://www.ibm.com/docs/en/SSFKSJ_9.2.0/com.ibm.mq.tro.doc/q041130_.html)."""


@dataclass(frozen=True)
class IbmMqAddress:
    host: str
    port: int
    queue_manager: str  # "" lets the listener's own queue manager answer
    channel: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def conn_info(self) -> str:
        return f"{self.host}({self.port})"

    @property
    def redacted_url(self) -> str:
        """The URL without its password, for logs and messages."""
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ibmmq://{user}{host}:{self.port}/{quote(self.queue_manager)}?channel={quote(self.channel)}"


def parse_url(url: str) -> IbmMqAddress:
    """Read `ibmmq://[user:password@]host[:port]/QMGR[?channel=NAME]`. Errors never quote the URL,
    which may hold a password."""
    parts = urlsplit(url)
    if parts.scheme != "ibmmq":
        raise ValueError(f"an IBM MQ URL starts with ibmmq://, not {parts.scheme or '(none)'}://")
    if not parts.hostname:
        raise ValueError("the IBM MQ URL names no host: ibmmq://[user:password@]host[:port]/QMGR[?channel=NAME]")
    port = parts.port or DEFAULT_PORT  # .port raises ValueError for a bad port, naming only the port
    queue_manager = unquote(parts.path.lstrip("/"))
    if "/" in queue_manager:
        raise ValueError(f"the IBM MQ URL's path must be just the queue manager's name, not {queue_manager!r}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - {"channel"})
    if unknown:
        raise ValueError(f"unknown IBM MQ URL option(s) {', '.join(unknown)}; the only one is channel")
    channel = options.get("channel", DEFAULT_CHANNEL)
    if not channel:
        raise ValueError("the IBM MQ URL's channel option is empty")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if user and password is None:
        raise ValueError(f"the IBM MQ URL names user {user!r} but no password")
    if password and not user:
        raise ValueError("the IBM MQ URL has a password but no user")
    return IbmMqAddress(parts.hostname, port, queue_manager, channel, user, password)


def mq_message_id(message_id: str) -> bytes:
    """The 24-byte MQMD MsgId for a message id: the id itself when it is 48 hex digits (as this
    transport reports IBM MQ ids), else the first 24 bytes of its SHA-256."""
    if len(message_id) == 48:
        try:
            return bytes.fromhex(message_id)
        except ValueError:
            pass
    return hashlib.sha256(message_id.encode()).digest()[:24]


def _import_mq() -> Any:
    failures = []
    for name in ("ibmmq", "pymqi"):
        try:
            return importlib.import_module(name)
        except ImportError as exc:  # also raised when the package is there but IBM's C client is not
            failures.append(f"import {name}: {exc}")
    raise RuntimeError(
        "the IBM MQ transport needs IBM's MQ Python library: run pip install '.[ibmmq]' "
        "(its predecessor pymqi also works), and install IBM's MQ client library (the MQ "
        f"redistributable client) on this host ({'; '.join(failures)})"
    )


def _reason_name(mq: Any, reason: int) -> str:
    for name, value in vars(mq.CMQC).items():
        if name.startswith("MQRC_") and value == reason:
            return name
    return "unknown reason"


def _text(value: Any) -> str:
    """An MQMD character field as a string, without its NUL or blank padding."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", "replace")
    return str(value or "").strip("\x00 ")


@dataclass(frozen=True)
class _Handle:
    """Where a delivery came from: which connection and which of its units of work."""

    session: object
    unit_of_work: int
    serial: int
    md: Any  # the MQMD the message was got with


class IbmMqTransport:
    """The OMS transport over an IBM MQ client connection.

    IBM MQ commits or backs out a connection's whole unit of work, never one message of it, while
    the bridge may settle the deliveries of one fetch one at a time. So that a commit never takes
    a message the caller has not yet settled off its queue, `commit` and `move` commit once every
    delivery taken in the unit of work has been committed or moved; until then the messages stay
    in the unit of work, and a crash redelivers them. `backout` backs out at once, returning every
    unsettled delivery to its queue (redelivered later, their delivery counts raised); committing
    such a delivery afterwards does nothing.
    """

    connection_errors: tuple[type[BaseException], ...] = (IbmMqConnectionBroken,)

    def __init__(self, url: str, *, mq: Any = None, exclusive_input: bool = False) -> None:
        """`exclusive_input`: open queues for input with MQOO_INPUT_EXCLUSIVE (the bridge), so that
        no other application gets from them while this one has them open."""
        self.address = parse_url(url)
        self._exclusive_input = exclusive_input
        self._mq = mq if mq is not None else _import_mq()
        constants = self._mq.CMQC
        self._broken_reasons = frozenset(
            getattr(constants, name) for name in CONNECTION_BROKEN_REASONS if hasattr(constants, name)
        )
        self._qmgr: Any = None
        self._queues: dict[tuple[str, bool], Any] = {}  # (name, for output) -> open Queue
        self._session: object | None = None  # a new token for each connection
        self._unit_of_work = 0
        self._unsettled: set[int] = set()  # serials of deliveries taken in this unit of work
        self._serials = itertools.count()
        self._rotation = 0

    def __repr__(self) -> str:
        return f"IbmMqTransport({self.address.redacted_url})"

    @property
    def _where(self) -> str:
        a = self.address
        return f"queue manager {a.queue_manager or '(any)'} at {a.conn_info}, channel {a.channel}"

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        self.close()
        a = self.address
        with self._mq_errors("connect to"):
            self._qmgr = self._mq.connect(a.queue_manager, a.channel, a.conn_info, a.user, a.password)
        self._session = object()
        self._end_unit_of_work()
        log.info("connected to IBM MQ %s", a.redacted_url)

    def close(self) -> None:
        """Back out the unit of work, close the queues and disconnect; never raises."""
        qmgr, self._qmgr = self._qmgr, None
        queues, self._queues = list(self._queues.values()), {}
        self._session = None
        self._end_unit_of_work()
        if qmgr is None:
            return
        # Back out first: a normal MQDISC commits the unit of work. This matters after a
        # quiescing error too, where the connection still works.
        self._quietly(qmgr.backout)
        for queue in queues:
            self._quietly(queue.close)
        self._quietly(qmgr.disconnect)

    def _quietly(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - the connection may well be gone already
            log.debug("ignored while closing the IBM MQ connection to %s: %s", self._where, exc)

    @contextmanager
    def _mq_errors(self, action: str) -> Iterator[None]:
        """Translate the library's MQMIError: a lost connection into IbmMqConnectionBroken (after
        dropping the connection, so that connect() starts afresh), anything else into IbmMqError."""
        try:
            yield
        except self._mq.MQMIError as exc:
            reason = exc.reason
            message = f"IBM MQ: {action} {self._where} failed: {_reason_name(self._mq, reason)} ({reason})"
            if reason in self._broken_reasons:
                self.close()
                raise IbmMqConnectionBroken(message, reason=reason) from exc
            if reason == getattr(self._mq.CMQC, "MQRC_OBJECT_IN_USE", None):
                # Another bridge has a queue: let go of the ones this one opened, so that it can
                # have them all rather than the two splitting the queues between them.
                self._close_inputs()
                raise IbmMqQueueInUse(message + ": another application has it open for input "
                                      "(another bridge?); this one stands by", reason=reason) from exc
            raise IbmMqError(message, reason=reason) from exc

    def _connected(self) -> Any:
        if self._qmgr is None:
            raise IbmMqConnectionBroken(f"IBM MQ: not connected to {self._where}; call connect()")
        return self._qmgr

    def _end_unit_of_work(self) -> None:
        self._unit_of_work += 1
        self._unsettled.clear()

    def _commit_now(self) -> None:
        self._connected().commit()
        self._end_unit_of_work()

    # -- queues -------------------------------------------------------------------------------

    def declare(self, queues: Sequence[str]) -> None:
        """Check that the queues exist: on IBM MQ the administrator defines them."""
        constants = self._mq.CMQC
        for name in queues:
            with self._mq_errors(f"open {name} on"):
                self._open_queue(name, constants.MQOO_INQUIRE | constants.MQOO_FAIL_IF_QUIESCING).close()

    def depth(self, queue: str) -> int:
        """MQINQ of the queue's CURDEPTH (MQIA_CURRENT_Q_DEPTH), on a handle opened for inquire only
        (https://www.ibm.com/docs/en/ibm-mq/9.4?topic=calls-mqinq-inquire-object-attributes)."""
        constants = self._mq.CMQC
        with self._mq_errors(f"inquire the depth of {queue} on"):
            handle = self._open_queue(queue, constants.MQOO_INQUIRE | constants.MQOO_FAIL_IF_QUIESCING)
            try:
                return int(handle.inquire(constants.MQIA_CURRENT_Q_DEPTH))
            finally:
                handle.close()

    def exists(self, queue: str) -> bool:
        """Open the queue for inquire only, then close it: MQRC_UNKNOWN_OBJECT_NAME means it is not
        defined. Any other refusal (MQRC_NOT_AUTHORIZED, ...) is raised as an IbmMqError naming it."""
        constants = self._mq.CMQC
        try:
            with self._mq_errors(f"open {queue} on"):
                self._open_queue(queue, constants.MQOO_INQUIRE | constants.MQOO_FAIL_IF_QUIESCING).close()
        except IbmMqQueueMissing:
            return False
        return True

    def _open_queue(self, name: str, options: int) -> Any:
        try:
            return self._mq.Queue(self._connected(), name, options)
        except self._mq.MQMIError as exc:
            if exc.reason == self._mq.CMQC.MQRC_UNKNOWN_OBJECT_NAME:
                raise IbmMqQueueMissing(
                    f"IBM MQ queue {name!r} is not defined on {self._where}: the MQ administrator "
                    "must define it (Wheel does not create IBM MQ queues)",
                    reason=exc.reason,
                ) from exc
            raise

    def _queue(self, name: str, *, output: bool) -> Any:
        queue = self._queues.get((name, output))
        if queue is None:
            constants = self._mq.CMQC
            if output:
                mode = constants.MQOO_OUTPUT
            else:
                mode = constants.MQOO_INPUT_EXCLUSIVE if self._exclusive_input else constants.MQOO_INPUT_SHARED
            queue = self._open_queue(name, mode | constants.MQOO_FAIL_IF_QUIESCING)
            self._queues[(name, output)] = queue
        return queue

    def _close_inputs(self) -> None:
        """Close the queues open for input (only when no delivery of the unit of work is unsettled:
        the caller backed it out)."""
        for key in [key for key in self._queues if not key[1]]:
            self._quietly(self._queues.pop(key).close)

    # -- getting ------------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], *, max_messages: int, wait_s: float) -> list[Delivery]:
        if not queues or max_messages < 1:
            return []
        # Start at the next queue each time, so that a busy queue cannot starve the others.
        start = self._rotation % len(queues)
        self._rotation += 1
        order = [*queues[start:], *queues[:start]]
        taken: list[Delivery] = []
        with self._mq_errors(f"get from {', '.join(order)} on"):
            try:
                self._take_available(order, max_messages, taken)
                if not taken:
                    first = self._wait_for_first(order, wait_s)
                    if first is not None:
                        taken.append(first)
                        self._take_available(order, max_messages, taken)
            except Exception as exc:
                lost = isinstance(exc, self._mq.MQMIError) and exc.reason in self._broken_reasons
                if taken and not lost and self._qmgr is not None:
                    # Leave no message that nobody was handed in the unit of work, where a
                    # later commit would take it off its queue unread.
                    self._quietly(self._qmgr.backout)
                    self._end_unit_of_work()
                raise
        return taken

    def _take_available(self, order: Sequence[str], limit: int, taken: list[Delivery]) -> None:
        for name in order:
            while len(taken) < limit:
                delivery = self._get(name, wait_s=0)
                if delivery is None:
                    break
                taken.append(delivery)

    def _wait_for_first(self, order: Sequence[str], wait_s: float) -> Delivery | None:
        deadline = time.monotonic() + wait_s
        while True:
            for name in order:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                delivery = self._get(name, wait_s=remaining if len(order) == 1 else min(remaining, POLL_SLICE_S))
                if delivery is not None:
                    return delivery

    def _get(self, name: str, *, wait_s: float, syncpoint: bool = True, msg_id: bytes | None = None) -> Delivery | None:
        """One MQGET; None when the queue has no message (MQRC_NO_MSG_AVAILABLE)."""
        constants = self._mq.CMQC
        # A fresh MD for every get: MQGET fills in MsgId and CorrelId, and a reused MD would then
        # match only the message it last received.
        md = self._mq.MD()
        if msg_id is not None:
            md.MsgId = msg_id
        gmo = self._mq.GMO()
        # Raw bodies: no MQGMO_CONVERT; message properties (say, a JMS sender's) are left out
        # rather than handed over as an MQRFH2 header in front of the body.
        gmo.Options = constants.MQGMO_FAIL_IF_QUIESCING | constants.MQGMO_NO_PROPERTIES
        gmo.Options |= constants.MQGMO_SYNCPOINT if syncpoint else constants.MQGMO_NO_SYNCPOINT
        wait_ms = math.ceil(wait_s * 1000)
        if wait_ms > 0:
            gmo.Options |= constants.MQGMO_WAIT
            gmo.WaitInterval = wait_ms
        try:
            body = self._queue(name, output=False).get(None, md, gmo)
        except self._mq.MQMIError as exc:
            if exc.reason == constants.MQRC_NO_MSG_AVAILABLE:
                return None
            raise
        handle = _Handle(self._session, self._unit_of_work, next(self._serials), md)
        if syncpoint:
            self._unsettled.add(handle.serial)
        backouts = int(md.BackoutCount)
        return Delivery(
            queue=name,
            body=bytes(body),
            message_id=bytes(md.MsgId).ljust(24, b"\x00").hex(),
            redelivered=backouts > 0,
            delivery_count=backouts,
            headers={
                "correl_id": bytes(md.CorrelId).ljust(24, b"\x00").hex(),
                "format": _text(md.Format),
                "put_date": _text(md.PutDate),
                "put_time": _text(md.PutTime),
            },
            handle=handle,
        )

    def get_one(self, queue: str, *, wait_s: float) -> Delivery | None:
        if self._qmgr is None:
            self.connect()
        # Under syncpoint, then committed: unless deliveries of a fetch are still unsettled, whose
        # gets the commit would take too; then the get is made outside syncpoint.
        syncpoint = not self._unsettled
        with self._mq_errors(f"get from {queue} on"):
            delivery = self._get(queue, wait_s=wait_s, syncpoint=syncpoint)
            if delivery is not None and syncpoint:
                self._commit_now()
        return delivery

    def keepalive(self) -> None:
        """Nothing to do here: the MQI has no call to keep a client connection alive, and
        heartbeats and keepalives are set on the channel (HBINT, KAINT, and DISCINT for idle
        connections). Were the connection lost while the bridge holds a unit of work, it is backed
        out and its messages delivered again, as with any lost connection."""

    # -- settling -----------------------------------------------------------------------------

    def _current(self, deliveries: Sequence[Delivery]) -> list[_Handle]:
        """The deliveries' handles; refused when taken on a connection since lost or closed (the
        queue manager backed their gets out and will deliver them again)."""
        self._connected()
        handles = []
        for delivery in deliveries:
            handle = delivery.handle
            if not isinstance(handle, _Handle):
                raise ValueError(f"delivery from {delivery.queue} was not taken by an IBM MQ transport")
            if handle.session is not self._session:
                raise IbmMqConnectionBroken(
                    f"IBM MQ: message from {delivery.queue} was taken on an earlier connection to "
                    f"{self._where}, since lost or closed; the queue manager backed it out"
                )
            handles.append(handle)
        return handles

    def commit(self, deliveries: Sequence[Delivery]) -> None:
        for handle in self._current(deliveries):
            if handle.unit_of_work == self._unit_of_work:
                self._unsettled.discard(handle.serial)
            # else: backed out since it was taken (see backout): it will come back.
        if self._unsettled:
            log.debug("IBM MQ commit deferred: %d message(s) of the unit of work not settled yet", len(self._unsettled))
            return
        with self._mq_errors("commit on"):
            self._commit_now()

    def backout(self, deliveries: Sequence[Delivery]) -> None:
        if self._qmgr is None:
            return  # the lost connection took its unit of work with it: backed out already
        others = len(self._unsettled - {d.handle.serial for d in deliveries if isinstance(d.handle, _Handle)})
        if others:
            log.info("IBM MQ backs out a connection's whole unit of work: %d other message(s) go back too", others)
        with self._mq_errors("backout on"):
            self._connected().backout()
            self._end_unit_of_work()

    # -- putting ------------------------------------------------------------------------------

    def _md(self, msg_id: bytes, *, like: Any = None) -> Any:
        constants = self._mq.CMQC
        md = self._mq.MD()
        md.MsgId = msg_id
        md.Persistence = constants.MQPER_PERSISTENT
        if like is None:
            # What Wheel puts is UTF-8 XML: MQSTR lets a receiver get it with MQGMO_CONVERT.
            md.Format = constants.MQFMT_STRING
            md.CodedCharSetId = 1208
        else:
            md.CorrelId = bytes(like.CorrelId)
            md.Format = bytes(like.Format)
            md.CodedCharSetId = like.CodedCharSetId
            md.Encoding = like.Encoding
        return md

    def _pmo(self, *, syncpoint: bool) -> Any:
        constants = self._mq.CMQC
        pmo = self._mq.PMO()
        # No MQPMO_NEW_MSG_ID: the queue manager keeps the MsgId set in the MD.
        pmo.Options = constants.MQPMO_FAIL_IF_QUIESCING
        pmo.Options |= constants.MQPMO_SYNCPOINT if syncpoint else constants.MQPMO_NO_SYNCPOINT
        return pmo

    def put(self, queue: str, body: bytes, *, message_id: str, headers: dict[str, Any] | None = None) -> None:
        """Put a persistent message, committed before returning. Its MsgId comes from message_id
        (see mq_message_id). Of the headers, `correl_id` (48 hex digits) and `format` go in the
        MQMD; IBM MQ messages have no other headers, so the rest are not sent."""
        if self._qmgr is None:
            self.connect()
        md = self._md(mq_message_id(message_id))
        headers = headers or {}
        if headers.get("correl_id"):
            md.CorrelId = bytes.fromhex(headers["correl_id"])
        if headers.get("format"):
            md.Format = str(headers["format"]).encode("ascii")[:8].ljust(8)
        # Under syncpoint, then committed; but while deliveries of a fetch are unsettled a commit
        # would take their gets too, so then put outside syncpoint: a persistent message put so
        # is on disk when MQPUT returns.
        syncpoint = not self._unsettled
        with self._mq_errors(f"put to {queue} on"):
            self._queue(queue, output=True).put(body, md, self._pmo(syncpoint=syncpoint))
            if syncpoint:
                self._commit_now()

    def put_many(self, messages: Sequence[Outgoing]) -> None:
        """Each message as `put` puts it (each committed before the next)."""
        for m in messages:
            self.put(m.queue, m.body, message_id=m.message_id, headers=m.headers)

    def move(self, delivery: Delivery, to_queue: str, *, reason: str) -> None:
        """Put the message on to_queue (same body, MsgId, CorrelId and format; persistent) in the
        unit of work of its get, so that both are committed together, as `commit` commits. The
        reason is the caller's to record: the message goes as it came."""
        (handle,) = self._current([delivery])
        msg_id = bytes(handle.md.MsgId)
        with self._mq_errors(f"move a message from {delivery.queue} to {to_queue} on"):
            if handle.unit_of_work != self._unit_of_work:
                # Backed out since it was taken, so back on its queue: take it again, by its
                # MsgId, so that the get and the put still commit together.
                again = self._get(delivery.queue, wait_s=0, msg_id=msg_id)
                if again is None:
                    log.warning("IBM MQ message %s is no longer on %s: not moved to %s",
                                msg_id.hex(), delivery.queue, to_queue)
                    return
                handle = again.handle
            self._queue(to_queue, output=True).put(delivery.body, self._md(msg_id, like=handle.md),
                                                   self._pmo(syncpoint=True))
            self._unsettled.discard(handle.serial)
            if not self._unsettled:
                self._commit_now()
        log.info("IBM MQ message %s moved from %s to %s: %s", msg_id.hex(), delivery.queue, to_queue, reason)
