"""A stand-in for the part of IBM's `ibmmq` Python library that bridge/transports/ibmmq.py uses.

IBM's library (and `pymqi`, its predecessor with the same API) needs IBM's MQ client library, the
MQ redistributable client, which cannot be installed here: neither imports on this machine. This
module stands in for it at that one port, in unit tests only, passed as
`IbmMqTransport(url, mq=ibmmq_standin)`. It is not IBM MQ and proves nothing about a real queue
manager; it models the behaviour the transport relies on, as IBM documents it:

- `CMQC` constants with IBM's numeric values; `MD`, `GMO`, `PMO`, `CD`, `SCO`, `CSP` as attribute
  bags with IBM's defaults (setting a field the real structure lacks is an error here, so a typo
  in the transport fails a test instead of being silently ignored); `MQMIError(comp, reason)`.
- `connect(qmgr, channel, "host(port)", user, password)`, `QueueManager` (commit, backout,
  disconnect) and `Queue` (get, put, close), backed by a `QueueManagerServer` that keeps its
  queues in memory, where tests can inspect them.
- Syncpoint: a message got under syncpoint is invisible to others until commit (then gone) or
  backout (then back at the front of its queue, BackoutCount + 1); a put under syncpoint is
  invisible until commit and discarded on backout. A normal disconnect commits, as MQDISC does on
  distributed platforms; a lost connection backs out.
- A get that finds nothing (after WaitInterval, with MQGMO_WAIT) raises MQMIError(2, 2033).
  Unknown queue names raise 2085. A server can break its connections (2009), refuse new ones
  (2059) until `accept_connections()`, break on the next call of a named operation, or quiesce.
- Input opens conflict as IBM documents for MQRC_OBJECT_IN_USE (2042): an open for exclusive
  input fails while the queue is open for input of any sort, and an open for shared input fails
  while it is open for exclusive input, by this or another connection, until that handle is
  closed or its connection ends
  (https://www.ibm.com/docs/en/SSFKSJ_9.2.0/com.ibm.mq.tro.doc/q041130_.html).
  MQOO_INPUT_AS_Q_DEF counts as shared (a local queue's default, DEFSOPT(SHARED)).
- `inhibit_get(queue)` is `ALTER QLOCAL(queue) GET(DISABLED)`: every MQGET on it fails with
  MQRC_GET_INHIBITED (2016) until `inhibit_get(queue, False)`
  (https://www.ibm.com/docs/en/SSFKSJ_9.2.0/com.ibm.mq.tro.doc/q040890_.html).
- `set_max_depth(queue, n)` is `ALTER QLOCAL(queue) MAXDEPTH(n)`: an MQPUT that finds n messages
  on the queue fails with MQRC_Q_FULL (2053)
  (https://www.ibm.com/docs/en/SSFKSJ_latest/reference/q041240_.html). UNCONFIRMED: the depth
  counted here includes messages in units of work; IBM says unit-of-work processing can take a
  queue's physical depth past MaxQDepth
  (https://www.ibm.com/support/knowledgecenter/SSFKSJ_9.1.0/com.ibm.mq.ref.dev.doc/q103290_.html),
  so the queue manager's own count may differ. Tests use a depth of 0, where it does not matter.

Tests start a server with `listen(QueueManagerServer(...), "host(port)")` and clear with `reset()`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class CMQC:
    """MQI constants used by the transport and this stand-in, with IBM's values (cmqc.h)."""

    MQCC_OK = 0
    MQCC_WARNING = 1
    MQCC_FAILED = 2

    MQRC_NONE = 0
    MQRC_CONNECTION_BROKEN = 2009
    MQRC_GET_INHIBITED = 2016
    MQRC_HCONN_ERROR = 2018
    MQRC_NO_MSG_AVAILABLE = 2033
    MQRC_NOT_AUTHORIZED = 2035
    MQRC_NOT_OPEN_FOR_INPUT = 2037
    MQRC_NOT_OPEN_FOR_OUTPUT = 2039
    MQRC_OBJECT_IN_USE = 2042
    MQRC_Q_FULL = 2053
    MQRC_Q_MGR_NAME_ERROR = 2058
    MQRC_Q_MGR_NOT_AVAILABLE = 2059
    MQRC_UNKNOWN_OBJECT_NAME = 2085
    MQRC_Q_MGR_QUIESCING = 2161
    MQRC_Q_MGR_STOPPING = 2162
    MQRC_CONNECTION_QUIESCING = 2202
    MQRC_CONNECTION_STOPPING = 2203
    MQRC_CONNECTION_ERROR = 2273
    MQRC_HOST_NOT_AVAILABLE = 2538
    MQRC_UNKNOWN_CHANNEL_NAME = 2540
    MQRC_RECONNECT_FAILED = 2548

    MQOO_INPUT_AS_Q_DEF = 0x00000001
    MQOO_INPUT_SHARED = 0x00000002
    MQOO_INPUT_EXCLUSIVE = 0x00000004
    MQOO_BROWSE = 0x00000008
    MQOO_OUTPUT = 0x00000010
    MQOO_INQUIRE = 0x00000020
    MQOO_FAIL_IF_QUIESCING = 0x00002000
    MQIA_CURRENT_Q_DEPTH = 3
    MQCO_NONE = 0x00000000

    MQGMO_NO_WAIT = 0x00000000
    MQGMO_WAIT = 0x00000001
    MQGMO_SYNCPOINT = 0x00000002
    MQGMO_NO_SYNCPOINT = 0x00000004
    MQGMO_FAIL_IF_QUIESCING = 0x00002000
    MQGMO_CONVERT = 0x00004000
    MQGMO_NO_PROPERTIES = 0x04000000
    MQGMO_VERSION_1 = 1
    MQGMO_VERSION_4 = 4
    MQWI_UNLIMITED = -1
    MQMO_MATCH_MSG_ID = 0x00000001
    MQMO_MATCH_CORREL_ID = 0x00000002

    MQPMO_NONE = 0x00000000
    MQPMO_SYNCPOINT = 0x00000002
    MQPMO_NO_SYNCPOINT = 0x00000004
    MQPMO_NEW_MSG_ID = 0x00000040
    MQPMO_FAIL_IF_QUIESCING = 0x00002000
    MQPMO_VERSION_3 = 3

    MQMD_VERSION_2 = 2
    MQRO_NONE = 0
    MQMT_DATAGRAM = 8
    MQEI_UNLIMITED = -1
    MQFB_NONE = 0
    MQENC_NATIVE = 0x00000222  # Linux on x86-64
    MQCCSI_Q_MGR = 0
    MQPRI_PRIORITY_AS_Q_DEF = -1
    MQPER_NOT_PERSISTENT = 0
    MQPER_PERSISTENT = 1
    MQPER_PERSISTENCE_AS_Q_DEF = 2
    MQMI_NONE = b"\x00" * 24
    MQCI_NONE = b"\x00" * 24
    MQFMT_NONE = b"        "
    MQFMT_STRING = b"MQSTR   "

    MQCSP_AUTH_NONE = 0
    MQCSP_AUTH_USER_ID_AND_PWD = 1


class CMQXC:
    MQCHT_CLNTCONN = 6
    MQXPT_TCP = 2


def _reason_name(reason: int) -> str:
    for name, value in vars(CMQC).items():
        if name.startswith("MQRC_") and value == reason:
            return name
    return f"Error code {reason} not defined"


class Error(Exception):
    """Base class of the library's exceptions."""


class MQMIError(Error):
    """An MQI call failed: completion code `comp`, reason code `reason` (as the real one)."""

    def __init__(self, comp: int, reason: int, **kw: Any) -> None:
        super().__init__(comp, reason)
        self.comp, self.reason = comp, reason
        for key, value in kw.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        prefix = {CMQC.MQCC_WARNING: "WARNING: ", CMQC.MQCC_FAILED: "FAILED: "}.get(self.comp, "")
        return f"MQI Error. Comp {self.comp}, Reason {self.reason}: {prefix}{_reason_name(self.reason)}"


class PYIFError(Error):
    """An error found by the library itself (not by the queue manager)."""

    def __init__(self, e: str) -> None:
        super().__init__(e)
        self.error = e

    def __str__(self) -> str:
        return f"PYIBMMQ Error: {self.error}"


def _failed(reason: int) -> MQMIError:
    return MQMIError(CMQC.MQCC_FAILED, reason)


# -- MQI structures ----------------------------------------------------------------------------


class _Struct:
    """An MQI structure as an attribute bag: IBM's fields and defaults, nothing else."""

    _defaults: dict[str, Any] = {}

    def __init__(self, **kw: Any) -> None:
        for name, value in self._defaults.items():
            object.__setattr__(self, name, value)
        for name, value in kw.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._defaults:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        object.__setattr__(self, name, value)

    __getitem__ = object.__getattribute__
    __setitem__ = __setattr__

    def get(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._defaults}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get()!r})"


class MD(_Struct):
    _defaults = {
        "Version": CMQC.MQMD_VERSION_2,
        "Report": CMQC.MQRO_NONE,
        "MsgType": CMQC.MQMT_DATAGRAM,
        "Expiry": CMQC.MQEI_UNLIMITED,
        "Feedback": CMQC.MQFB_NONE,
        "Encoding": CMQC.MQENC_NATIVE,
        "CodedCharSetId": CMQC.MQCCSI_Q_MGR,
        "Format": b"",
        "Priority": CMQC.MQPRI_PRIORITY_AS_Q_DEF,
        "Persistence": CMQC.MQPER_PERSISTENCE_AS_Q_DEF,
        "MsgId": b"",
        "CorrelId": b"",
        "BackoutCount": 0,
        "ReplyToQ": b"",
        "ReplyToQMgr": b"",
        "UserIdentifier": b"",
        "PutApplName": b"",
        "PutDate": b"",
        "PutTime": b"",
    }


class GMO(_Struct):
    _defaults = {
        "Version": CMQC.MQGMO_VERSION_4,
        "Options": CMQC.MQGMO_NO_WAIT,
        "WaitInterval": 0,
        "ResolvedQName": b"",
        "MatchOptions": CMQC.MQMO_MATCH_MSG_ID | CMQC.MQMO_MATCH_CORREL_ID,
    }


class PMO(_Struct):
    _defaults = {
        "Version": CMQC.MQPMO_VERSION_3,
        "Options": CMQC.MQPMO_NONE,
        "Timeout": -1,
        "ResolvedQName": b"",
        "ResolvedQMgrName": b"",
    }


class CD(_Struct):
    _defaults = {
        "ChannelName": b"",
        "ConnectionName": b"",
        "ChannelType": CMQXC.MQCHT_CLNTCONN,
        "TransportType": CMQXC.MQXPT_TCP,
        "SSLCipherSpec": b"",
    }


class SCO(_Struct):
    _defaults = {"KeyRepository": b"", "CertificateLabel": b""}


class CSP(_Struct):
    _defaults = {"AuthenticationType": CMQC.MQCSP_AUTH_NONE, "CSPUserId": None, "CSPPassword": None}


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii")
    return (value or "").strip("\x00 ")


# -- the queue manager behind the API ----------------------------------------------------------


@dataclass
class StoredMessage:
    body: bytes
    msg_id: bytes
    correl_id: bytes = CMQC.MQCI_NONE
    format: bytes = CMQC.MQFMT_NONE
    persistence: int = CMQC.MQPER_NOT_PERSISTENT
    ccsid: int = 1208
    encoding: int = CMQC.MQENC_NATIVE
    backout_count: int = 0
    put_date: bytes = b""
    put_time: bytes = b""


@dataclass
class Connection:
    """One client connection (hconn) as the queue manager sees it."""

    user: str | None
    password: str | None
    channel: str
    alive: bool = True
    # The reason calls on a dead connection fail with.
    dead_reason: int = CMQC.MQRC_CONNECTION_BROKEN
    # This connection's unit of work: messages got and put under syncpoint, not yet committed.
    gets: list[tuple[str, StoredMessage]] = field(default_factory=list)
    puts: list[tuple[str, StoredMessage]] = field(default_factory=list)


class QueueManagerServer:
    """An in-memory queue manager. Its methods without a leading underscore are for tests."""

    def __init__(
        self,
        name: str = "QM1",
        queues: tuple[str, ...] | list[str] = (),
        *,
        channels: tuple[str, ...] = ("DEV.APP.SVRCONN",),
        users: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.channels = set(channels)
        self.users = users  # None: any client is let in, as with channel authentication off
        self.queues: dict[str, deque[StoredMessage]] = {q: deque() for q in queues}
        self.connections: list[Connection] = []
        self._cond = threading.Condition()
        self._refusing: int | None = None
        self._quiescing = False
        self._break_on: str | None = None
        self._ids = itertools.count(1)
        # Queue -> handles open for input: (connection, exclusive, the Queue object).
        self._inputs: dict[str, list[tuple[Connection, bool, object]]] = {}
        self._get_inhibited: set[str] = set()
        self._max_depth: dict[str, int] = {}

    # -- for tests ---------------------------------------------------------------------------

    def add_message(self, queue: str, body: bytes, *, msg_id: bytes | None = None, **fields: Any) -> StoredMessage:
        """Put a committed message on a queue, as another application would."""
        with self._cond:
            message = StoredMessage(body=body, msg_id=msg_id or self._new_msg_id(), **fields)
            self.queues[queue].append(message)
            self._cond.notify_all()
            return message

    def messages(self, queue: str) -> list[StoredMessage]:
        """The committed messages on a queue, in order (not those in anyone's unit of work)."""
        with self._cond:
            return list(self.queues[queue])

    def bodies(self, queue: str) -> list[bytes]:
        return [m.body for m in self.messages(queue)]

    def all_bodies(self, queue: str) -> list[bytes]:
        """The queue's messages whether committed or got in a unit of work not yet committed (that
        a backout would return): what the queue holds, none lost."""
        with self._cond:
            held = [m.body for c in self.connections if c.alive for q, m in c.gets if q == queue]
            return held + [m.body for m in self.queues[queue]]

    def break_connections(self, reason: int = CMQC.MQRC_CONNECTION_BROKEN) -> None:
        """Drop every client connection, as a network failure would: their units of work are
        backed out, and every later call on them fails with `reason`."""
        with self._cond:
            for connection in self.connections:
                if connection.alive:
                    self._rollback(connection)
                    connection.alive = False
                    connection.dead_reason = reason
            self._cond.notify_all()

    def break_on(self, operation: str) -> None:
        """Break every connection when any client next calls `operation` (get, put, open, commit,
        backout), before the call takes effect."""
        self._break_on = operation

    def refuse_connections(self, reason: int = CMQC.MQRC_Q_MGR_NOT_AVAILABLE) -> None:
        self._refusing = reason

    def accept_connections(self) -> None:
        self._refusing = None

    def inhibit_get(self, queue: str, inhibited: bool = True) -> None:
        """ALTER QLOCAL(queue) GET(DISABLED), or GET(ENABLED) with inhibited=False."""
        with self._cond:
            if inhibited:
                self._get_inhibited.add(queue)
            else:
                self._get_inhibited.discard(queue)
            self._cond.notify_all()

    def set_max_depth(self, queue: str, depth: int | None) -> None:
        """ALTER QLOCAL(queue) MAXDEPTH(depth); None: no limit (the stand-in's default)."""
        with self._cond:
            if depth is None:
                self._max_depth.pop(queue, None)
            else:
                self._max_depth[queue] = depth

    def quiesce(self) -> None:
        """Start an orderly shutdown: connections stay up (commit, backout and disconnect work),
        but calls made with a FAIL_IF_QUIESCING option, and new connections, fail with 2161."""
        with self._cond:
            self._quiescing = True
            self._cond.notify_all()

    # -- called by QueueManager and Queue ------------------------------------------------------

    def _connect(self, name: str, channel: str, user: str | None, password: str | None) -> Connection:
        with self._cond:
            if self._refusing is not None:
                raise _failed(self._refusing)
            if self._quiescing:
                raise _failed(CMQC.MQRC_Q_MGR_QUIESCING)
            if name and name != self.name:
                raise _failed(CMQC.MQRC_Q_MGR_NAME_ERROR)
            if channel not in self.channels:
                raise _failed(CMQC.MQRC_UNKNOWN_CHANNEL_NAME)
            if self.users is not None and (user is None or self.users.get(user) != password):
                raise _failed(CMQC.MQRC_NOT_AUTHORIZED)
            connection = Connection(user=user, password=password, channel=channel)
            self.connections.append(connection)
            return connection

    def _check(self, connection: Connection, operation: str, fail_if_quiescing: bool = False) -> None:
        if not connection.alive:
            raise _failed(connection.dead_reason)
        if self._break_on == operation:
            self._break_on = None
            self.break_connections()
            raise _failed(CMQC.MQRC_CONNECTION_BROKEN)
        if self._quiescing and fail_if_quiescing:
            raise _failed(CMQC.MQRC_Q_MGR_QUIESCING)

    def _open(self, connection: Connection, queue: str, options: int, handle: object = None) -> None:
        with self._cond:
            self._check(connection, "open", bool(options & CMQC.MQOO_FAIL_IF_QUIESCING))
            if queue not in self.queues:
                raise _failed(CMQC.MQRC_UNKNOWN_OBJECT_NAME)
            if options & (CMQC.MQOO_INPUT_AS_Q_DEF | CMQC.MQOO_INPUT_SHARED | CMQC.MQOO_INPUT_EXCLUSIVE):
                exclusive = bool(options & CMQC.MQOO_INPUT_EXCLUSIVE)
                holders = [held for c, held, _ in self._inputs.get(queue, []) if c.alive]
                if holders and (exclusive or any(holders)):
                    raise _failed(CMQC.MQRC_OBJECT_IN_USE)
                self._inputs.setdefault(queue, []).append((connection, exclusive, handle))

    def _get(self, connection: Connection, queue: str, md: MD, gmo: GMO) -> bytes:
        options = gmo.Options
        wait = bool(options & CMQC.MQGMO_WAIT)
        deadline = None if gmo.WaitInterval == CMQC.MQWI_UNLIMITED else time.monotonic() + gmo.WaitInterval / 1000
        # MQGET takes only a message whose ids match the MD's, where these are set: an MD reused
        # from an earlier get would match that message only.
        matching = gmo.Version < 2 or gmo.MatchOptions
        want_msg_id = _id_or_none(md.MsgId) if matching & CMQC.MQMO_MATCH_MSG_ID else None
        want_correl_id = _id_or_none(md.CorrelId) if matching & CMQC.MQMO_MATCH_CORREL_ID else None
        with self._cond:
            while True:
                self._check(connection, "get", bool(options & CMQC.MQGMO_FAIL_IF_QUIESCING))
                if queue in self._get_inhibited:
                    raise _failed(CMQC.MQRC_GET_INHIBITED)
                message = self._take(queue, want_msg_id, want_correl_id)
                if message is not None:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if not wait or (remaining is not None and remaining <= 0):
                    raise _failed(CMQC.MQRC_NO_MSG_AVAILABLE)
                self._cond.wait(remaining)
            if options & CMQC.MQGMO_SYNCPOINT:
                connection.gets.append((queue, message))
        md.MsgId = message.msg_id
        md.CorrelId = message.correl_id
        md.Format = message.format
        md.Persistence = message.persistence
        md.CodedCharSetId = message.ccsid
        md.Encoding = message.encoding
        md.BackoutCount = message.backout_count
        md.PutDate = message.put_date
        md.PutTime = message.put_time
        return message.body

    def _take(self, queue: str, msg_id: bytes | None, correl_id: bytes | None) -> StoredMessage | None:
        messages = self.queues[queue]
        for message in messages:
            if (msg_id is None or message.msg_id == msg_id) and (correl_id is None or message.correl_id == correl_id):
                messages.remove(message)
                return message
        return None

    def _put(self, connection: Connection, queue: str, body: bytes, md: MD, pmo: PMO) -> None:
        # The real library packs these into fixed-size byte fields and refuses anything else.
        if not isinstance(body, bytes):
            raise TypeError(f"Message type is {type(body)}. Convert to bytes.")
        for name in ("MsgId", "CorrelId", "Format"):
            if not isinstance(getattr(md, name), bytes):
                raise TypeError(f"{name} must be a byte array")
        now = datetime.now(UTC)
        with self._cond:
            self._check(connection, "put", bool(pmo.Options & CMQC.MQPMO_FAIL_IF_QUIESCING))
            if queue in self._max_depth and self._depth(queue) >= self._max_depth[queue]:
                raise _failed(CMQC.MQRC_Q_FULL)
            msg_id = md.MsgId.ljust(24, b"\x00")[:24]
            if pmo.Options & CMQC.MQPMO_NEW_MSG_ID or msg_id == CMQC.MQMI_NONE:
                msg_id = self._new_msg_id()
            persistence = md.Persistence
            if persistence == CMQC.MQPER_PERSISTENCE_AS_Q_DEF:
                persistence = CMQC.MQPER_NOT_PERSISTENT  # DEFPSIST(NO), the default for a local queue
            message = StoredMessage(
                body=body,
                msg_id=msg_id,
                correl_id=md.CorrelId.ljust(24, b"\x00")[:24],
                format=md.Format.ljust(8, b"\x00")[:8],
                persistence=persistence,
                ccsid=md.CodedCharSetId,
                encoding=md.Encoding,
                put_date=now.strftime("%Y%m%d").encode(),
                put_time=(now.strftime("%H%M%S") + f"{now.microsecond // 10000:02d}").encode(),
            )
            if pmo.Options & CMQC.MQPMO_SYNCPOINT:
                connection.puts.append((queue, message))
            else:
                self.queues[queue].append(message)
                self._cond.notify_all()
        md.MsgId = message.msg_id
        md.PutDate = message.put_date
        md.PutTime = message.put_time

    def _depth(self, queue: str) -> int:
        """Messages on the queue, counting those in units of work (got or put, not committed)."""
        in_units = sum(1 for c in self.connections if c.alive for q, _ in (*c.gets, *c.puts) if q == queue)
        return len(self.queues[queue]) + in_units

    def _close_queue(self, connection: Connection, handle: object = None) -> None:
        with self._cond:
            self._check(connection, "close")
            for queue, handles in self._inputs.items():
                self._inputs[queue] = [entry for entry in handles if entry[2] is not handle]

    def _commit(self, connection: Connection) -> None:
        with self._cond:
            self._check(connection, "commit")
            connection.gets.clear()
            for queue, message in connection.puts:
                self.queues[queue].append(message)
            connection.puts.clear()
            self._cond.notify_all()

    def _backout(self, connection: Connection) -> None:
        with self._cond:
            self._check(connection, "backout")
            self._rollback(connection)

    def _disconnect(self, connection: Connection) -> None:
        with self._cond:
            self._check(connection, "disconnect")
            # MQDISC on a distributed queue manager commits an open unit of work.
            self._commit(connection)
            connection.alive = False
            connection.dead_reason = CMQC.MQRC_HCONN_ERROR

    def _rollback(self, connection: Connection) -> None:
        # Back to the front of their queues in the order they were taken, counted as backed out.
        for queue, message in reversed(connection.gets):
            message.backout_count += 1
            self.queues[queue].appendleft(message)
        connection.gets.clear()
        connection.puts.clear()
        self._cond.notify_all()

    def _new_msg_id(self) -> bytes:
        # Like a queue manager's own ids: "AMQ ", the queue manager's name, a unique counter.
        return b"AMQ " + self.name.encode().ljust(12)[:12] + next(self._ids).to_bytes(8, "big")


def _id_or_none(value: bytes) -> bytes | None:
    value = value.ljust(24, b"\x00")[:24]
    return None if value == CMQC.MQMI_NONE else value


_listeners: dict[str, QueueManagerServer] = {}


def listen(server: QueueManagerServer, conn_info: str = "localhost(1414)") -> QueueManagerServer:
    """Make `server` answer client connections to `conn_info` ("host(port)")."""
    _listeners[conn_info] = server
    return server


def reset() -> None:
    _listeners.clear()


# -- the API -----------------------------------------------------------------------------------


class QueueManager:
    def __init__(self, name: str | bytes | None = "", disconnect_on_exit: bool = True, **_: Any) -> None:
        self._connection: Connection | None = None
        self._server: QueueManagerServer | None = None
        if name is not None:
            raise NotImplementedError("the stand-in has no local (bindings mode) queue managers: use connect()")

    def connect_tcp_client(self, name, cd, channel, conn_name, user=None, password=None, cno=None, csp=None,
                           sco=None, bno=None) -> None:
        cd.ChannelName = channel.encode() if isinstance(channel, str) else channel
        cd.ConnectionName = conn_name.encode() if isinstance(conn_name, str) else conn_name
        cd.ChannelType = CMQXC.MQCHT_CLNTCONN
        cd.TransportType = CMQXC.MQXPT_TCP
        self.connect_with_options(name, cd=cd, user=user, password=password, csp=csp, sco=sco)

    def connect_with_options(self, name, *args, user=None, password=None, cd=None, csp=None, sco=None,
                             **_: Any) -> None:
        if args:
            cd = args[0]
        if csp is not None:
            user, password = csp.CSPUserId, csp.CSPPassword
        if user and password is None:
            raise ValueError("Password must not be None if user is provided")
        if cd is None:
            raise NotImplementedError("the stand-in connects only as a client, with a CD")
        server = _listeners.get(_text(cd.ConnectionName))
        if server is None:
            raise _failed(CMQC.MQRC_HOST_NOT_AVAILABLE)
        self._connection = server._connect(_text(name), _text(cd.ChannelName), user, password)
        self._server = server

    def _live(self) -> tuple[QueueManagerServer, Connection]:
        if self._connection is None or self._server is None:
            raise PYIFError("not connected")
        return self._server, self._connection

    def commit(self) -> None:
        server, connection = self._live()
        server._commit(connection)

    def backout(self) -> None:
        server, connection = self._live()
        server._backout(connection)

    def disconnect(self) -> None:
        server, connection = self._live()
        server._disconnect(connection)
        self._connection = None


def connect(queue_manager, channel=None, conn_info=None, user=None, password=None, disconnect_on_exit=True,
            cd=None, cno=None, csp=None, sco=None, bno=None, **_: Any) -> QueueManager:
    """Connect as a client (given channel and conn_info); the stand-in has no other kind."""
    qmgr = QueueManager(None, disconnect_on_exit)
    if not (channel and conn_info):
        raise NotImplementedError("the stand-in connects only as a client: give channel and conn_info")
    qmgr.connect_tcp_client(queue_manager or "", cd or CD(), channel, conn_info, user, password, csp=csp, sco=sco)
    return qmgr


class Queue:
    def __init__(self, qmgr: QueueManager, *opts: Any) -> None:
        if len(opts) > 2:
            raise TypeError("Too many args")
        self._qmgr = qmgr
        self._name = _text(opts[0]) if opts else None
        self._options: int | None = None
        self._opened = False
        if len(opts) == 2:
            self._options = opts[1]
            self._real_open()

    def _real_open(self) -> None:
        if self._name is None:
            raise PYIFError("The Queue Descriptor has not been set.")
        server, connection = self._qmgr._live()
        server._open(connection, self._name, self._options, handle=self)
        self._opened = True

    def open(self, q_desc: str | bytes, *opts: Any) -> None:
        if self._opened:
            raise PYIFError("The Queue is already open")
        self._name = _text(q_desc)
        if opts:
            self._options = opts[0]
            self._real_open()

    def get(self, maxLength: int | None = None, *opts: Any) -> bytes:  # noqa: N803 - the real name
        md = opts[0] if len(opts) > 0 and opts[0] is not None else MD()
        gmo = opts[1] if len(opts) > 1 and opts[1] is not None else GMO()
        if not self._opened:
            self._options = CMQC.MQOO_INPUT_AS_Q_DEF
            self._real_open()
        input_options = CMQC.MQOO_INPUT_AS_Q_DEF | CMQC.MQOO_INPUT_SHARED | CMQC.MQOO_INPUT_EXCLUSIVE
        if not self._options & input_options:
            raise _failed(CMQC.MQRC_NOT_OPEN_FOR_INPUT)
        server, connection = self._qmgr._live()
        return server._get(connection, self._name, md, gmo)

    def put(self, msg: bytes, *opts: Any) -> None:
        md = opts[0] if len(opts) > 0 and opts[0] is not None else MD()
        pmo = opts[1] if len(opts) > 1 and opts[1] is not None else PMO()
        if not self._opened:
            self._options = CMQC.MQOO_OUTPUT
            self._real_open()
        if not self._options & CMQC.MQOO_OUTPUT:
            raise _failed(CMQC.MQRC_NOT_OPEN_FOR_OUTPUT)
        server, connection = self._qmgr._live()
        server._put(connection, self._name, msg, md, pmo)

    def inquire(self, selector: int) -> int:
        """Only CURDEPTH, on a handle opened with MQOO_INQUIRE (else MQRC_NOT_OPEN_FOR_INQUIRE)."""
        if not self._opened or not self._options & CMQC.MQOO_INQUIRE:
            raise _failed(2038)  # MQRC_NOT_OPEN_FOR_INQUIRE
        if selector != CMQC.MQIA_CURRENT_Q_DEPTH:
            raise NotImplementedError(f"the stand-in inquires only MQIA_CURRENT_Q_DEPTH, not {selector}")
        server, connection = self._qmgr._live()
        with server._cond:
            return server._depth(self._name)

    def close(self, options: int = CMQC.MQCO_NONE) -> None:
        if not self._opened:
            raise PYIFError("not open")
        server, connection = self._qmgr._live()
        server._close_queue(connection, handle=self)
        self._opened = False
