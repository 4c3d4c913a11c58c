"""A helper for writing POP3 mailbox services on top of pop3d.

The mailbox author subclasses :class:`Backend` and writes only:

* :meth:`Backend.authenticate` - check a user name and password;
* :meth:`Backend.apop_secret` - the shared secret for APOP (optional);
* :meth:`Backend.list_messages` - the messages of a maildrop (unique id and
  the path of the file holding the message);
* :meth:`Backend.message_path` - open a message (its current path);
* :meth:`Backend.delete_messages` - remove messages (called at QUIT).

:class:`MailboxServer` does the rest of RFC 1939, 2449 and 5034 for every
client: per-client state (AUTHORIZATION, TRANSACTION, UPDATE), USER/PASS,
APOP with a greeting timestamp, AUTH PLAIN (initial response and "+ "
continuation), CAPA per state (STLS when the core has TLS: the core does
STLS itself), STAT, LIST, UIDL, RETR and TOP (streamed by the core with
send_file), DELE/RSET, NOOP, QUIT (deletions applied only by a
QUIT in TRANSACTION; a dropped connection applies nothing), one session per
maildrop ([IN-USE]), response codes [AUTH], [IN-USE] and [SYS/TEMP], and
octet counts equal to what the client receives.

Sizes: :class:`OctetCounter` holds the one rule (each line end 2 octets,
a missing final line end 2 more, dot-stuffing and terminator not counted:
the bytes a client keeps after unstuffing what the core streams).
"""
from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import logging
import os
import re
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .client import Client
from .protocol import Event, Pending, Pop3dError

__all__ = ["Backend", "Message", "MailboxServer", "Session", "OctetCounter", "octets",
           "octets_of", "octets_fd", "open_message_file", "normalize", "safe_uid",
           "AUTHORIZATION", "TRANSACTION", "UPDATE"]

log = logging.getLogger("pop3d.mailbox")

AUTHORIZATION = "authorization"
TRANSACTION = "transaction"
UPDATE = "update"

_CHUNK = 1 << 20
_LINE_END = re.compile(rb"\r\n|\r|\n")
_UID_OK = re.compile(r"^[\x21-\x7e]{1,70}$")


# -- sizes ----------------------------------------------------------------------

class OctetCounter:
    """The size of a message as a client receives it: THE octet-count rule
    of this module (:func:`octets_of`, :func:`octets_fd`, :func:`octets`
    and the sizes of LIST, STAT and RETR all come from here).

    The core's streamer (send_file) turns every line end - CRLF, a lone CR,
    a lone LF - into CRLF and adds a CRLF after a last line that has none;
    then it dot-stuffs and terminates.  RFC 1939 sizes are what the client
    keeps after unstuffing, so the stuffing and the terminator are not
    counted: each line end is 2 octets, a missing final line end 2 more,
    every other octet 1.  An empty file is 0.  Bytes may be fed in chunks
    of any size (a CRLF split between two chunks counts once).
    :func:`normalize` produces exactly those octets.
    """

    __slots__ = ("_n", "_carry", "_last")

    def __init__(self) -> None:
        self._n = 0
        self._carry = b""       # a trailing CR held back: maybe half a CRLF
        self._last = b""        # the last octet fed

    def feed(self, chunk: bytes) -> None:
        """Count the next bytes of the message."""
        if not chunk:
            return
        self._last = chunk[-1:]
        data = self._carry + chunk
        if data.endswith(b"\r"):
            self._carry, data = b"\r", data[:-1]
        else:
            self._carry = b""
        crlf = data.count(b"\r\n")
        cr = data.count(b"\r")
        lf = data.count(b"\n")
        # Line ends: each CRLF once, each lone CR or LF; all become 2 octets.
        self._n += len(data) - cr - lf + 2 * (cr + lf - crlf)

    def total(self) -> int:
        """Octets of everything fed, with the final line end."""
        if self._carry:
            return self._n + 2                  # a final lone CR: a line end
        if self._last and self._last not in (b"\r", b"\n"):
            return self._n + 2                  # the CRLF the core adds
        return self._n


def octets_of(data: bytes) -> int:
    """Octets a client receives for ``data`` (see :class:`OctetCounter`)."""
    c = OctetCounter()
    c.feed(data)
    return c.total()


def open_message_file(path: str) -> int:
    """Open a message file for reading: never through a symlink as the last
    path component (O_NOFOLLOW, as the core's send_file), never blocking
    (O_NONBLOCK: a FIFO), and only a regular file (fstat).  Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY |
                 os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def octets_fd(fd: int) -> int:
    """Octets a client receives for the open file ``fd`` (read from offset
    0 with pread; see :class:`OctetCounter`)."""
    c = OctetCounter()
    off = 0
    while True:
        chunk = os.pread(fd, _CHUNK, off)
        if not chunk:
            return c.total()
        off += len(chunk)
        c.feed(chunk)


def octets(path: str) -> int:
    """Octets a client receives for the file at ``path`` (RETR size; see
    :class:`OctetCounter`).  The file is opened with
    :func:`open_message_file` (no symlink, no FIFO)."""
    fd = open_message_file(path)
    try:
        return octets_fd(fd)
    finally:
        os.close(fd)


def normalize(data: bytes, top_lines: Optional[int] = None) -> bytes:
    """What a client holds after unstuffing RETR (or TOP n) of ``data``:
    every line end CRLF, a final CRLF (so ``len(normalize(data)) ==
    octets_of(data)``, see :class:`OctetCounter`); with ``top_lines`` the
    header block, its empty line and that many body lines."""
    if not data:
        return b""
    out = _LINE_END.sub(b"\r\n", data)
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    if top_lines is None:
        return out
    lines = out.split(b"\r\n")[:-1]
    kept: List[bytes] = []
    i = 0
    while i < len(lines):
        kept.append(lines[i])
        i += 1
        if kept[-1] == b"":
            break
    if i < len(lines) or (kept and kept[-1] == b""):
        kept.extend(lines[i:i + top_lines])
    return b"".join(x + b"\r\n" for x in kept)


class _SizeCache:
    """Octet counts keyed by file identity (device, inode, size, mtime)."""

    def __init__(self, limit: int = 100000):
        self._d: Dict[Tuple[int, int, int, int], int] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, path: str) -> int:
        """Octets of the file at ``path`` (opened with open_message_file)."""
        fd = open_message_file(path)
        try:
            return self.get_fd(fd)
        finally:
            os.close(fd)

    def get_fd(self, fd: int) -> int:
        """Octets of the open regular file ``fd``."""
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            v = self._d.get(key)
        if v is None:
            v = octets_fd(fd)
            with self._lock:
                if len(self._d) >= self._limit:
                    self._d.clear()
                self._d[key] = v
        return v


# -- what the mailbox author writes ------------------------------------------------

@dataclass
class Message:
    """One message of a maildrop.

    ``uid``: the unique id (UIDL): 1-70 characters 0x21-0x7E, stable across
    sessions.  ``path``: the file holding the message as stored (any line
    ends).  ``size``: filled in by the server (octets a client receives).
    ``key``: free for the backend.
    """
    uid: str
    path: str
    size: int = -1
    key: Any = None


class Backend:
    """Subclass this; see the module docstring."""

    def __init__(self) -> None:
        self._locks: Set[str] = set()
        self._lock_guard = threading.Lock()

    def authenticate(self, user: str, password: bytes) -> bool:
        """True when ``password`` is right for ``user``.

        Must cost the same for unknown users (check against a dummy hash)
        so that timing does not reveal which users exist.
        """
        raise NotImplementedError

    def apop_secret(self, user: str) -> Optional[bytes]:
        """The APOP shared secret of ``user``, or None (APOP refused)."""
        return None

    def list_messages(self, user: str) -> List[Message]:
        """The maildrop's messages in a stable order (called once at login)."""
        raise NotImplementedError

    def open_message(self, user: str, msg: Message) -> int:
        """An fd of the message for reading its size (closed by the caller).
        The default opens ``msg.path`` with :func:`open_message_file`: no
        symlink as the last component, no FIFO or device, no blocking.
        Raise OSError for a message that cannot be read safely."""
        return open_message_file(msg.path)

    def message_path(self, user: str, msg: Message) -> str:
        """The path to stream for RETR/TOP (default ``msg.path``); raise
        OSError when the message is gone.  The core's send_file opens it
        with O_NOFOLLOW and refuses anything but a regular file."""
        return msg.path

    def delete_messages(self, user: str, msgs: List[Message]) -> None:
        """Remove exactly these messages (QUIT in TRANSACTION).  Raise OSError
        when some could not be removed."""
        raise NotImplementedError

    def lock(self, user: str) -> bool:
        """Take the maildrop lock; False when another session holds it.
        Raise OSError when the lock cannot be taken safely (the client gets
        ``-ERR [SYS/TEMP]``).  The default is a lock inside this process."""
        with self._lock_guard:
            if user in self._locks:
                return False
            self._locks.add(user)
            return True

    def unlock(self, user: str) -> None:
        """Release the maildrop lock."""
        with self._lock_guard:
            self._locks.discard(user)


# -- per-client state -----------------------------------------------------------

@dataclass
class Session:
    """The POP3 state of one client as the server tracks it."""
    client: int
    state: str = AUTHORIZATION
    user: Optional[str] = None          # from USER, awaiting PASS
    login: Optional[str] = None         # the authenticated maildrop owner
    timestamp: Optional[str] = None     # APOP greeting timestamp
    messages: List[Message] = field(default_factory=list)
    deleted: Set[int] = field(default_factory=set)   # 0-based indexes
    sasl: Optional[str] = None          # mechanism awaiting auth data
    lost: bool = False                  # seen first in TRANSACTION (no state)

    def visible(self) -> List[Tuple[int, Message]]:
        """(number, message) for every message not marked deleted."""
        return [(i + 1, m) for i, m in enumerate(self.messages) if i not in self.deleted]


def _uid_ok(uid: str) -> bool:
    return bool(_UID_OK.match(uid))


def safe_uid(name: str) -> str:
    """``name`` if it is a valid UIDL (RFC 1939: 1-70 chars 0x21-0x7E),
    else a stable hex digest of it."""
    if _uid_ok(name):
        return name
    return hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()


_AUTH_FAILED = "-ERR [AUTH] invalid user name or password"
# send_file errors that are not about the file.
_NOT_A_REFUSAL = {"unknown_client", "stale", "connection_closed", "timeout", "protocol_error"}


def _log_reply_error(p: Pending, ev: Event) -> None:
    """Log the error reply of an answer posted for ``ev``, as
    :meth:`MailboxServer.handle` logs errors (a gone client: debug)."""
    r = p.reply or {}
    if r.get("ok"):
        return
    err = r.get("error") or {}
    if err.get("code") in ("unknown_client", "stale"):
        log.debug("client=%s gone or answered: %s: %s", ev.client, err.get("code"),
                  err.get("message", ""))
    else:
        log.error("client=%s %s: %s: %s", ev.client, ev.name, err.get("code"),
                  err.get("message", ""))


class MailboxServer:
    """Serve POP3 mailboxes of a :class:`Backend` through a pop3d Client.

    ``greeting``: send the greeting ourselves on pop3d_connection, with an
    APOP timestamp (run pop3d with ``--no-greeting``).  Without it APOP is
    not offered.  ``sasl``: offer AUTH PLAIN, with an initial response or
    a ``+ `` continuation (the core's ``pop3d_auth_data``).  ``hostname``: for the APOP
    timestamp and texts.  ``expire``: the EXPIRE capability argument.
    """

    def __init__(self, backend: Backend, client: Client, *, greeting: bool = False,
                 hostname: Optional[str] = None, sasl: bool = True,
                 implementation: str = "pop3d", expire: Optional[str] = "NEVER"):
        self.backend = backend
        self.client = client
        self.greeting = greeting
        self.hostname = hostname or socket.gethostname() or "localhost"
        self.sasl = sasl
        self.implementation = implementation
        self.expire = expire
        #: The core does STLS itself when it has a certificate; its control
        #: greeting says so ("stls": true).  Then CAPA offers STLS.
        self.stls = bool((client.greeting or {}).get("stls"))
        #: Answers are posted and written in batches (a pop3d.Client); a
        #: client without post_to_client gets each answer sent and waited for.
        self._posting = hasattr(client, "post_to_client")
        self.sessions: Dict[int, Session] = {}
        self.sizes = _SizeCache()
        self._dummy_apop = os.urandom(16)
        self._handlers: Dict[str, Callable[[Session, Event], None]] = {
            "user": self._user, "pass": self._pass, "apop": self._apop, "auth": self._auth,
            "capa": self._capa, "stat": self._stat, "list": self._list, "uidl": self._uidl,
            "retr": self._retr, "top": self._top, "dele": self._dele, "rset": self._rset,
            "noop": self._noop, "quit": self._quit,
        }

    # -- set-up and loop -----------------------------------------------------
    def register(self) -> List[str]:
        """Register for the events the server needs (``pop3d_auth_data``
        too with ``sasl``: the core's SASL continuation); returns the
        patterns.  Raises Pop3dError when pop3d refuses one of them."""
        names = ["cmd_*", "disconnected"]
        if self.greeting:
            names.append("connection")
        if self.sasl:
            names.append("auth_data")
        return self.client.register(names)["events"]

    def serve(self, idle: Optional[float] = None) -> None:
        """Register, then handle events until the connection closes (or,
        with ``idle``, until that many seconds pass without an event)."""
        self.register()
        for ev in self.client.events(timeout=idle):
            self.handle(ev)

    def handle(self, ev: Event) -> None:
        """Handle one event; send errors for gone clients are ignored."""
        try:
            self._handle(ev)
        except Pop3dError as e:
            if e.code in ("unknown_client", "stale"):
                log.debug("client=%s gone or answered: %s", ev.client, e)
            else:
                log.error("client=%s %s: %s", ev.client, ev.name, e)

    def _handle(self, ev: Event) -> None:
        if ev.name == "pop3d_connection":
            self._connection(ev)
            return
        if ev.name == "pop3d_disconnected":
            self._disconnected(ev)
            return
        if ev.name == "pop3d_shutdown":
            for s in list(self.sessions.values()):
                self._release(s)
            self.sessions.clear()
            return
        if not ev.client or not ev.tag:
            return
        s = self.sessions.get(ev.client)
        if s is None:
            s = Session(ev.client)
            if ev.state == TRANSACTION:
                s.state = TRANSACTION
                s.lost = True       # another instance logged it in; we have no maildrop
            self.sessions[ev.client] = s
        if ev.name == "pop3d_auth_data":
            self._auth_data(s, ev)
            return
        verb = ev.verb
        if verb is None:
            return
        if s.sasl is not None:
            s.sasl = None
        if s.lost and verb != "capa":
            if verb == "quit":
                self._say(ev, "-ERR [SYS/TEMP] session state lost; nothing deleted")
            else:
                self._say(ev, "-ERR [SYS/TEMP] session state lost, please reconnect")
                if self._posting:
                    self.client.post("disconnect", lambda p: _log_reply_error(p, ev),
                                     client=ev.client)
                else:
                    ev.disconnect()
            return
        h = self._handlers.get(verb)
        if h is None:
            self._say(ev, "-ERR command not supported")
            return
        h(s, ev)

    # -- connection events -------------------------------------------------------
    def _connection(self, ev: Event) -> None:
        s = Session(ev.client)
        self.sessions[ev.client] = s
        if self.greeting:
            s.timestamp = "<%d.%d.%d@%s>" % (os.getpid(), time.time_ns(), ev.client,
                                             self.hostname)
            text = "+OK POP3 server ready " + s.timestamp
            if self._posting:
                self.client.post_to_client(ev.client, text=text)
            else:
                self.client.send_to_client(ev.client, text=text)

    def _disconnected(self, ev: Event) -> None:
        s = self.sessions.pop(ev.client, None)
        if s is not None:
            # A dropped connection enters no UPDATE state: nothing is deleted.
            self._release(s)

    def _release(self, s: Session) -> None:
        if s.login is not None:
            try:
                self.backend.unlock(s.login)
            finally:
                s.login = None

    # -- answering -----------------------------------------------------------------
    # Answers are posted (Client.post_to_client): written with the other
    # answers of the batch of events being handled, in one send, and not
    # waited for; an error reply is logged (a gone client at debug level).
    def _say(self, ev: Event, text: str,
             on_reply: Optional[Callable[[Pending], None]] = None) -> None:
        """Answer ``ev``'s command (by its tag) with one line."""
        if self._posting:
            self.client.post_to_client(ev.client, text=text, tag=ev.tag or None,
                                       on_reply=on_reply or (lambda p: _log_reply_error(p, ev)))
            return
        try:
            ev.reply(text)
        except Pop3dError as e:
            if on_reply is None:
                raise
            on_reply(Pending(0, "send_to_client", reply=e.reply or {"ok": False, "error": {
                "code": e.code, "message": e.message}}))

    def _say_lines(self, ev: Event, lines: List[str], status: Optional[str] = None) -> None:
        """Answer ``ev``'s command with a multi-line response."""
        if self._posting:
            body = lines if status is None else [status] + lines
            self.client.post_to_client(ev.client, lines=body, tag=ev.tag or None,
                                       on_reply=lambda p: _log_reply_error(p, ev))
        else:
            ev.reply_lines(lines, status=status)

    # -- helpers -------------------------------------------------------------------
    def _wrong_state(self, ev: Event, state: str) -> None:
        self._say(ev, "-ERR command not valid in %s state" % state.upper())

    def _need(self, s: Session, ev: Event, state: str) -> bool:
        if s.state != state:
            self._wrong_state(ev, s.state)
            return False
        return True

    def _msg(self, s: Session, ev: Event, arg: Optional[str]) -> Optional[int]:
        """Index of message number ``arg``, or None after answering -ERR."""
        if arg is None or not arg.isdigit() or not arg.isascii():
            self._say(ev, "-ERR invalid message number")
            return None
        n = int(arg)
        if n < 1 or n > len(s.messages):
            self._say(ev, "-ERR no such message, only %d messages in maildrop" % len(s.messages))
            return None
        if n - 1 in s.deleted:
            self._say(ev, "-ERR message %d already deleted" % n)
            return None
        return n - 1

    @staticmethod
    def _args(ev: Event) -> List[str]:
        a = ev.arg(1)
        return a.split() if a else []

    def _totals(self, s: Session) -> Tuple[int, int]:
        vis = s.visible()
        return len(vis), sum(m.size for _, m in vis)

    # -- AUTHORIZATION -----------------------------------------------------------
    def _user(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, AUTHORIZATION):
            return
        name = ev.arg(1)
        if not name:
            self._say(ev, "-ERR USER needs a mailbox name")
            return
        s.user = name
        self._say(ev, "+OK send PASS")

    def _pass(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, AUTHORIZATION):
            return
        if s.user is None:
            self._say(ev, "-ERR send USER first")
            return
        user, s.user = s.user, None
        password = ev.arg_bytes(1, b"")
        ok = self.backend.authenticate(user, password)
        self._login(s, ev, user, ok)

    def _apop(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, AUTHORIZATION):
            return
        s.user = None
        if s.timestamp is None:
            self._say(ev, "-ERR APOP not available")
            return
        a = self._args(ev)
        if len(a) != 2:
            self._say(ev, "-ERR usage: APOP name digest")
            return
        user, digest = a
        secret = self.backend.apop_secret(user)
        expect = hashlib.md5(s.timestamp.encode("ascii") + (
            secret if secret is not None else self._dummy_apop)).hexdigest()
        ok = hmac.compare_digest(expect.encode(), digest.lower().encode("utf-8",
                                                                        "surrogateescape"))
        self._login(s, ev, user, ok and secret is not None)

    def _login(self, s: Session, ev: Event, user: str, ok: bool) -> None:
        if not ok:
            self._say(ev, _AUTH_FAILED)
            return
        try:
            locked = self.backend.lock(user)
        except OSError as e:
            log.error("user=%s cannot lock maildrop: %s", user, e)
            self._say(ev, "-ERR [SYS/TEMP] cannot lock maildrop, try again later")
            return
        if not locked:
            self._say(ev, "-ERR [IN-USE] maildrop already locked by another session")
            return
        try:
            msgs = []
            for m in self.backend.list_messages(user):
                if not _uid_ok(m.uid):
                    m.uid = safe_uid(m.uid)
                try:
                    fd = self.backend.open_message(user, m)
                    try:
                        m.size = self.sizes.get_fd(fd)
                    finally:
                        os.close(fd)
                except OSError as e:
                    # Gone, or replaced by a symlink, FIFO...: not listed.
                    log.warning("user=%s message %s skipped: %s", user, m.uid, e)
                    continue
                msgs.append(m)
        except Exception as e:          # the maildrop cannot be read now
            log.error("user=%s cannot open maildrop: %s", user, e)
            self.backend.unlock(user)
            self._say(ev, "-ERR [SYS/TEMP] cannot open maildrop, try again later")
            return
        s.login = user
        s.messages = msgs
        s.deleted = set()
        s.state = TRANSACTION
        n, size = self._totals(s)

        def gone(p: Pending) -> None:
            if not (p.reply or {}).get("ok"):
                # The client is gone: no session, no lock (unless its
                # pop3d_disconnected came first and did that already).
                _log_reply_error(p, ev)
                if self.sessions.get(s.client) is s:
                    self.sessions.pop(s.client, None)
                    self._release(s)
        self._say(ev, "+OK maildrop has %d messages (%d octets)" % (n, size), gone)

    def _auth(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, AUTHORIZATION):
            return
        s.user = None
        a = self._args(ev)
        if not self.sasl:
            self._say(ev, "-ERR AUTH not available")
            return
        if not a:
            self._say_lines(ev, ["+OK SASL mechanisms follow", "PLAIN"])
            return
        if a[0].upper() != "PLAIN":
            self._say(ev, "-ERR unsupported authentication mechanism")
            return
        if len(a) > 2:
            self._say(ev, "-ERR usage: AUTH PLAIN [initial-response]")
            return
        if len(a) == 2:
            self._plain(s, ev, "" if a[1] == "=" else a[1])
            return
        s.sasl = "PLAIN"
        self._say(ev, "+ ")

    def _auth_data(self, s: Session, ev: Event) -> None:
        mech, s.sasl = s.sasl, None
        line = ev.arg(1, "")
        if mech is None:
            self._say(ev, "-ERR no authentication in progress")
            return
        if line.strip() == "*":
            self._say(ev, "-ERR authentication cancelled")
            return
        self._plain(s, ev, line.strip())

    def _plain(self, s: Session, ev: Event, data: str) -> None:
        try:
            raw = base64.b64decode(data.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            self._say(ev, "-ERR invalid base64 data")
            return
        parts = raw.split(b"\0")
        if len(parts) != 3 or not parts[1]:
            self._say(ev, "-ERR [AUTH] malformed PLAIN response")
            return
        authz, authc, password = parts
        try:
            user = authc.decode("utf-8")
            authz_s = authz.decode("utf-8")
        except UnicodeDecodeError:
            self._say(ev, _AUTH_FAILED)
            return
        ok = self.backend.authenticate(user, password)
        if authz_s and authz_s != user:
            ok = False          # no proxy authorisation
        self._login(s, ev, user, ok)

    # -- both states ---------------------------------------------------------------
    def capabilities(self, state: str, tls: bool = False) -> List[str]:
        """The CAPA lines for a state (RFC 2449); ``tls``: the connection is
        already under TLS (no STLS then)."""
        caps = ["TOP", "UIDL"]
        if state == AUTHORIZATION:
            if self.stls and not tls:
                caps.append("STLS")
            caps.append("USER")
            if self.sasl:
                caps.append("SASL PLAIN")
        caps += ["RESP-CODES", "PIPELINING"]
        if state == AUTHORIZATION:
            caps.append("AUTH-RESP-CODE")
        if self.expire:
            caps.append("EXPIRE " + self.expire)
        caps.append("IMPLEMENTATION " + self.implementation)
        return caps

    def _capa(self, s: Session, ev: Event) -> None:
        if ev.arg(1):
            self._say(ev, "-ERR CAPA takes no argument")
            return
        self._say_lines(ev, self.capabilities(s.state, ev.tls), status="+OK capability list follows")

    # -- TRANSACTION ----------------------------------------------------------------
    def _stat(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, TRANSACTION):
            return
        if ev.arg(1):
            self._say(ev, "-ERR STAT takes no argument")
            return
        n, size = self._totals(s)
        self._say(ev, "+OK %d %d" % (n, size))

    def _listing(self, s: Session, ev: Event, what: Callable[[Message], Any]) -> None:
        if not self._need(s, ev, TRANSACTION):
            return
        a = self._args(ev)
        if len(a) > 1:
            self._say(ev, "-ERR too many arguments")
            return
        if a:
            i = self._msg(s, ev, a[0])
            if i is not None:
                self._say(ev, "+OK %d %s" % (i + 1, what(s.messages[i])))
            return
        n, size = self._totals(s)
        self._say_lines(ev, ["%d %s" % (k, what(m)) for k, m in s.visible()],
                       status="+OK %d messages (%d octets)" % (n, size))

    def _list(self, s: Session, ev: Event) -> None:
        self._listing(s, ev, lambda m: m.size)

    def _uidl(self, s: Session, ev: Event) -> None:
        self._listing(s, ev, lambda m: m.uid)

    def _send(self, s: Session, ev: Event, i: int, status: str, top: Optional[int]) -> None:
        assert s.login is not None
        m = s.messages[i]
        # send_file is sent and waited for (the posted answers before it
        # are written first): whether pop3d refused the file decides the
        # answer, and Client.send_file is the one hook for that.
        try:
            path = self.backend.message_path(s.login, m)
            ev.reply_file(path, status, top_lines=top)
        except OSError:
            self._say(ev, "-ERR [SYS/TEMP] message %d is not available now" % (i + 1))
        except Pop3dError as e:
            # pop3d refused the file (not regular, a symlink, outside
            # --send-file-root, unreadable...): -ERR, the session goes on.
            # Only a gone client or a broken control connection propagate.
            if e.code in _NOT_A_REFUSAL:
                raise
            log.warning("user=%s message %d refused by pop3d: %s", s.login, i + 1, e)
            self._say(ev, "-ERR [SYS/TEMP] message %d is not available now" % (i + 1))

    def _retr(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, TRANSACTION):
            return
        a = self._args(ev)
        if len(a) != 1:
            self._say(ev, "-ERR usage: RETR msg")
            return
        i = self._msg(s, ev, a[0])
        if i is not None:
            self._send(s, ev, i, "+OK %d octets" % s.messages[i].size, None)

    def _top(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, TRANSACTION):
            return
        a = self._args(ev)
        if len(a) != 2 or not a[1].isdigit() or not a[1].isascii():
            self._say(ev, "-ERR usage: TOP msg lines")
            return
        i = self._msg(s, ev, a[0])
        if i is not None:
            self._send(s, ev, i, "+OK top of message follows", min(int(a[1]), 1000000000))

    def _dele(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, TRANSACTION):
            return
        a = self._args(ev)
        if len(a) != 1:
            self._say(ev, "-ERR usage: DELE msg")
            return
        i = self._msg(s, ev, a[0])
        if i is not None:
            s.deleted.add(i)
            self._say(ev, "+OK message %d deleted" % (i + 1))

    def _rset(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, TRANSACTION):
            return
        s.deleted.clear()
        n, size = self._totals(s)
        self._say(ev, "+OK maildrop has %d messages (%d octets)" % (n, size))

    def _noop(self, s: Session, ev: Event) -> None:
        if not self._need(s, ev, TRANSACTION):
            return
        self._say(ev, "+OK")

    def _quit(self, s: Session, ev: Event) -> None:
        if s.state == AUTHORIZATION:
            self.sessions.pop(s.client, None)
            self._say(ev, "+OK POP3 server signing off")
            return
        # UPDATE state: remove exactly the messages marked deleted.
        s.state = UPDATE
        assert s.login is not None
        gone = [s.messages[i] for i in sorted(s.deleted)]
        text = None
        try:
            if gone:
                self.backend.delete_messages(s.login, gone)
        except OSError as e:
            log.error("user=%s deleting messages: %s", s.login, e)
            text = "-ERR [SYS/TEMP] some deleted messages not removed"
        left = len(s.messages) - len(gone)
        self.sessions.pop(s.client, None)
        self._release(s)
        self._say(ev, text or "+OK POP3 server signing off (%d messages left)" % left)
