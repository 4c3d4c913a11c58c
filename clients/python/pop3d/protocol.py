"""The pop3d control protocol, without any I/O.

This module is shared by the synchronous :class:`pop3d.Client` and the
asyncio :class:`pop3d.AsyncClient`.  It knows the wire format described in
pop3d-control(7):

* newline-delimited JSON in both directions;
* a ``greeting`` object first, from the server;
* commands ``{"cmd": NAME, "id": ID, ...}``, each answered by exactly one
  ``reply`` (``ok`` true with ``result``, or ``ok`` false with ``error``),
  in the order the commands were sent;
* ``event`` objects (``seq``, ``client``, ``tag``, ``state``, ``tls``,
  ``origin``, ``args`` and, when a client line was not UTF-8, ``args_b64``);
* ``hook`` objects for controller plugins, answered with ``verdict``.

:class:`Protocol` turns bytes into messages (:meth:`Protocol.feed`) and
commands into bytes (:meth:`Protocol.encode`), matches replies to the
commands awaiting them, and keeps the event bookkeeping (last ``seq``, each
client's command in flight, dropped-event counts).  It never blocks.
"""
from __future__ import annotations

import base64
import collections
import json
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple, Union

__all__ = [
    "Pop3dError", "Event", "Hook", "Protocol", "Pending", "EAT_VALUES",
    "DEFAULT_MAX_LINE", "event_name", "b64", "unb64",
]

#: Longest line accepted from the server (events and replies).  The server
#: caps its own lines far below this; it only bounds memory.
DEFAULT_MAX_LINE = 64 << 20

#: Verdicts a plugin hook may return ("tempfail": answer the client
#: -ERR [SYS/TEMP] and stop the event; see pop3d-control(7)).
EAT_VALUES = ("none", "client", "plugin", "all")
VERDICTS = EAT_VALUES + ("tempfail",)

# Events whose text arguments are secrets (never put them in repr()).
_SECRET_EVENTS = {"pop3d_cmd_pass", "pop3d_cmd_apop", "pop3d_cmd_auth", "pop3d_auth_data"}


class Pop3dError(Exception):
    """An error reply from pop3d, or a local protocol error.

    ``code`` is the protocol's error code (``unknown_client``, ``stale``,
    ``invalid_argument``, ``unknown_command``, ...).  Local errors use
    ``connection_closed``, ``timeout`` and ``protocol_error``.
    """

    def __init__(self, code: str, message: str = "", reply: Optional[dict] = None):
        super().__init__("%s: %s" % (code, message) if message else code)
        self.code: str = code
        self.message: str = message
        self.reply: Optional[dict] = reply


def event_name(name: str) -> str:
    """The full event name: ``"cmd_user"`` -> ``"pop3d_cmd_user"``."""
    return name if name.startswith("pop3d_") or name == "all" else "pop3d_" + name


def b64(data: bytes) -> str:
    """Standard base64 with padding, as the protocol uses it."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Decode the protocol's base64 (strict)."""
    return base64.b64decode(text.encode("ascii"), validate=True)


class Event:
    """One event from pop3d.

    Attributes mirror the JSON object: ``name`` (full, ``pop3d_cmd_user``),
    ``seq``, ``client`` (0 when not about a client), ``tag`` (0 when none),
    ``state`` (``"authorization"``/``"transaction"`` or None), ``tls``,
    ``origin`` and ``raw`` (the decoded JSON object).

    Arguments: ``args`` is the list as the server sent it (strings may be
    lossy when the client line was not UTF-8); :meth:`arg_bytes` gives the
    exact bytes of a string argument (from ``args_b64`` when present) and
    :meth:`arg` the exact text (undecodable bytes kept as surrogate escapes,
    so ``arg(i).encode("utf-8", "surrogateescape") == arg_bytes(i)``).

    The ``reply*`` methods answer the command this event is about, passing
    ``client`` and ``tag`` automatically.  With an :class:`AsyncClient` they
    return awaitables.
    """

    __slots__ = ("raw", "_f", "name", "client", "tag", "_conn")

    def __init__(self, raw: dict, conn: Any = None):
        # Only what every handler looks at is read here; the rest are
        # properties reading ``raw`` when asked (no per-event copies).
        self.raw: dict = raw
        self._f = raw            # the fields (a Hook: its event's, merged)
        self.name: str = raw.get("event", "")
        self.client: int = raw.get("client", 0)
        self.tag: int = raw.get("tag", 0)
        self._conn = conn

    @property
    def seq(self) -> int:
        return self._f.get("seq", 0)

    @property
    def state(self) -> Optional[str]:
        return self._f.get("state")

    @property
    def tls(self) -> bool:
        return bool(self._f.get("tls", False))

    @property
    def origin(self) -> int:
        return self._f.get("origin", 0)

    @property
    def args(self) -> List[Any]:
        """The arguments as sent (the list in ``raw``, not a copy)."""
        a = self._f.get("args")
        if a is None:
            a = self._f["args"] = []
        return a

    @args.setter
    def args(self, value: List[Any]) -> None:
        self._f["args"] = value

    @property
    def args_b64(self) -> Optional[List[Optional[str]]]:
        return self._f.get("args_b64")

    # -- arguments ---------------------------------------------------------
    @property
    def short_name(self) -> str:
        """The name without the ``pop3d_`` prefix (``cmd_user``)."""
        return self.name[6:] if self.name.startswith("pop3d_") else self.name

    @property
    def verb(self) -> Optional[str]:
        """For ``pop3d_cmd_*`` events the POP3 verb (``user``), else None."""
        return self.name[10:] if self.name.startswith("pop3d_cmd_") else None

    def arg_bytes(self, i: int, default: Optional[bytes] = None) -> Optional[bytes]:
        """The exact bytes of string argument ``i`` (``default`` if absent)."""
        raw = self._f
        args = raw.get("args") or ()
        if i >= len(args):
            return default
        b = raw.get("args_b64")
        if b is not None and i < len(b) and b[i] is not None:
            return unb64(b[i])
        v = args[i]
        if isinstance(v, str):
            return v.encode("utf-8")
        if v is None:
            return default
        return str(v).encode("utf-8")

    def arg(self, i: int, default: Optional[str] = None) -> Optional[str]:
        """String argument ``i``, exact (surrogate escapes for non-UTF-8)."""
        raw = self._f
        if "args_b64" not in raw:
            # The usual case: the line was UTF-8, the string is exact.
            args = raw.get("args") or ()
            if i < len(args) and isinstance(args[i], str):
                return args[i]
        b = self.arg_bytes(i)
        if b is None:
            return default
        return b.decode("utf-8", "surrogateescape")

    @property
    def exact_args(self) -> List[Any]:
        """All arguments; strings exact (see :meth:`arg`)."""
        out = []
        for i, v in enumerate(self.args):
            out.append(self.arg(i) if isinstance(v, str) else v)
        return out

    # -- answering ---------------------------------------------------------
    def _need_conn(self) -> Any:
        if self._conn is None:
            raise Pop3dError("protocol_error", "this event is not bound to a connection")
        if not self.client:
            raise Pop3dError("protocol_error", "event %s is not about a client" % self.name)
        return self._conn

    def reply(self, text: Union[str, bytes], more: bool = False) -> Any:
        """Answer with one line (completes the command unless ``more``)."""
        return self._need_conn().send_to_client(self.client, text=text, tag=self.tag or None,
                                                more=more)

    def reply_lines(self, lines: Sequence[Union[str, bytes]],
                    status: Optional[Union[str, bytes]] = None) -> Any:
        """Answer with a whole multi-line response (status line first).

        With ``status`` given, ``lines`` is the body; otherwise ``lines[0]`` is
        the status line.  The core dot-stuffs and adds the terminator.
        """
        body = list(lines) if status is None else [status] + list(lines)
        return self._need_conn().send_to_client(self.client, lines=body, tag=self.tag or None)

    def reply_file(self, path: str, status: str, top_lines: Optional[int] = None) -> Any:
        """Answer with a file streamed by the core (RETR, or TOP with top_lines)."""
        return self._need_conn().send_file(self.client, path, status, top_lines=top_lines,
                                           tag=self.tag or None)

    def disconnect(self, text: Optional[str] = None) -> Any:
        """Close this event's client after its pending output (text last)."""
        return self._need_conn().disconnect(self.client, text)

    def __repr__(self) -> str:
        args = self.args
        if self.name in _SECRET_EVENTS and len(args) > 1:
            args = args[:1] + ["****"] * (len(args) - 1)
        return "Event(%s seq=%s client=%s tag=%s state=%s args=%r)" % (
            self.name, self.seq, self.client, self.tag, self.state, args)


class Hook(Event):
    """A hook message for a controller plugin (see :meth:`Client.plugin`).

    Besides the :class:`Event` attributes it has ``hook`` (the id to name in
    the verdict), ``plugin`` (the alias) and ``kind`` (``"POP3D"`` or
    ``"POP3C"``).  For POP3C plugins ``args`` holds the response line.
    """

    __slots__ = ("hook", "plugin", "kind", "answered")

    def __init__(self, raw: dict, conn: Any = None):
        ev = raw.get("event")
        if isinstance(ev, dict):
            merged = dict(ev)
            merged.setdefault("args", raw.get("args", ev.get("args")))
        else:
            merged = dict(raw)
            merged["event"] = ev or ""
        super().__init__(merged, conn)
        self.raw = raw
        self.hook: Any = raw.get("hook")
        self.plugin: str = raw.get("plugin", "")
        self.kind: Optional[str] = raw.get("plugin_type") or raw.get("kind")
        self.answered: bool = False

    def verdict(self, eat: str = "none", args: Optional[Sequence[Any]] = None) -> Any:
        """Send the verdict for this hook (once)."""
        self.answered = True
        return self._conn.verdict(self.hook, eat, args)

    def __repr__(self) -> str:
        return "Hook(%s plugin=%s hook=%s client=%s)" % (self.name, self.plugin, self.hook,
                                                         self.client)


def normalize_verdict(value: Any) -> Tuple[str, Optional[List[Any]]]:
    """Turn a plugin handler's return value into (eat, args).

    ``None`` -> ``"none"``; a string -> that verdict; a tuple
    ``(eat, args)`` -> both; an ``int`` 1..4 -> the POE exit codes.
    """
    if value is None:
        return "none", None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4:
        return EAT_VALUES[value - 1], None
    if isinstance(value, str):
        if value not in VERDICTS:
            raise ValueError("verdict must be one of %s" % (VERDICTS,))
        return value, None
    if isinstance(value, tuple) and len(value) == 2:
        eat, args = value
        eat = normalize_verdict(eat)[0]
        return eat, None if args is None else list(args)
    raise ValueError("bad verdict %r" % (value,))


@dataclass
class Pending:
    """A command sent and awaiting its reply."""
    id: Any
    cmd: str
    waiter: Any = None          # a Future for the asyncio client
    reply: Optional[dict] = None
    #: For a command posted without waiting (:meth:`Client.post`): called
    #: with this Pending when its reply arrives.
    on_reply: Optional[Callable[["Pending"], None]] = None


@dataclass
class PluginSpec:
    """A plugin registered through the decorator API."""
    alias: str
    events: List[str]
    handler: Callable[..., Any]
    priority: Optional[int] = None
    type: str = "POP3D"
    timeout_ms: Optional[int] = None
    on_timeout: Optional[str] = None
    installed: bool = False


_decode = json.JSONDecoder().decode
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: text -> its JSON form (UTF-8), for :meth:`Protocol.encode_text`.
_ESCAPED: Dict[str, bytes] = {}
_OK_HEAD = b'{"type":"reply","id":'
_OK_TAIL = b',"ok":true,"result":{}}'
_OK_HEAD_LEN = len(_OK_HEAD)
_OK_TAIL_LEN = len(_OK_TAIL)
_TEXT_TAG = b'{"cmd":"send_to_client","id":%d,"client":%d,"tag":%d,"text":%s}\n'
_TEXT_NOTAG = b'{"cmd":"send_to_client","id":%d,"client":%d,"text":%s}\n'


class Protocol:
    """Sans-I/O protocol state of one control connection.

    Feed received bytes to :meth:`feed`; it returns the decoded messages in
    order and updates the bookkeeping.  :meth:`encode` builds a command line
    and remembers that a reply is owed; :meth:`match_reply` pairs a reply
    with the oldest command awaiting one (replies come in command order).
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE):
        self.max_line = max_line
        self._buf = bytearray()
        self._next_id = 0
        self.pending: Deque[Pending] = collections.deque()
        self.greeting: Optional[dict] = None
        #: Highest event seq seen so far.
        self.last_seq: int = 0
        #: Total events the server said it dropped for us (lossy mode).
        self.dropped: int = 0
        #: client id -> tags of its commands seen and not yet answered by
        #: us, oldest first: one, or several under pop3d --pipeline-depth.
        self.inflight_tags: Dict[int, List[int]] = {}
        #: client id -> the oldest of those, the command a send without a
        #: tag answers (cleared when none is left).
        self.inflight: Dict[int, int] = {}
        #: client id -> state as last reported by an event.
        self.states: Dict[int, str] = {}
        self.plugins: Dict[str, PluginSpec] = {}
        self.closed = False

    # -- outgoing ----------------------------------------------------------
    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def encode(self, cmd: str, args: Optional[Dict[str, Any]] = None,
               waiter: Any = None) -> Tuple[Pending, bytes]:
        """Build one command line; the returned Pending awaits its reply."""
        msg: Dict[str, Any] = {"cmd": cmd, "id": self.next_id()}
        if args:
            for k, v in args.items():
                if v is not None:
                    msg[k] = v
        p = Pending(msg["id"], cmd, waiter)
        self.pending.append(p)
        line = json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return p, line + b"\n"

    def encode_text(self, client: int, tag: Optional[int], text: str,
                    on_reply: Optional[Callable[[Pending], None]] = None
                    ) -> Optional[Tuple[Pending, bytes]]:
        """The common answer, ``send_to_client`` with one ``text`` line, from
        a fixed template: the same bytes as :meth:`encode` builds, without
        the dict and the generic encoder (the text is JSON-escaped once per
        distinct text).  None when the fixed form does not fit (a text that
        is not UTF-8, ids that are not plain ints): use :meth:`encode`."""
        if type(client) is not int or (tag and type(tag) is not int) \
                or type(text) is not str:
            return None
        esc = _ESCAPED.get(text)
        if esc is None:
            try:
                esc = _dumps(text).encode("utf-8")
            except UnicodeEncodeError:
                return None                 # lone surrogates: text_b64
            if len(text) <= 200 and len(_ESCAPED) < 4096:
                _ESCAPED[text] = esc
        self._next_id += 1
        pid = self._next_id
        p = Pending(pid, "send_to_client", None, None, on_reply)
        self.pending.append(p)
        if tag:
            return p, _TEXT_TAG % (pid, client, tag, esc)
        return p, _TEXT_NOTAG % (pid, client, esc)

    # -- incoming ----------------------------------------------------------
    def feed(self, data: bytes) -> List[dict]:
        """Add received bytes; return every complete message, in order."""
        if not data:
            return []
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            del self._buf[:]
        lines = data.split(b"\n")
        rest = lines.pop()
        out = []
        observe = self._observe
        for line in lines:
            if line[:_OK_HEAD_LEN] == _OK_HEAD and line[-_OK_TAIL_LEN:] == _OK_TAIL:
                # The reply to nearly every command, in the one form pop3d
                # writes it (control/codec.c): no JSON decoder needed.
                mid = line[_OK_HEAD_LEN:-_OK_TAIL_LEN]
                if mid.isdigit() and mid[:1] != b"0":
                    out.append({"type": "reply", "id": int(mid), "ok": True, "result": {}})
                    continue
            try:
                msg = _decode(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                if not line.strip():
                    continue
                raise Pop3dError("protocol_error", "bad JSON from server: %s" % e)
            if type(msg) is not dict:
                raise Pop3dError("protocol_error", "server sent a non-object")
            observe(msg)
            out.append(msg)
        if rest:
            self._buf += rest
            if len(self._buf) > self.max_line:
                raise Pop3dError("protocol_error", "line from server over %d octets"
                                 % self.max_line)
        return out

    def _observe(self, msg: dict) -> None:
        t = msg.get("type")
        if t == "event":
            get = msg.get
            seq = get("seq")
            if type(seq) is int and seq > self.last_seq:
                self.last_seq = seq
            name = get("event")
            client = get("client")
            if name == "pop3d_events_dropped":
                args = get("args") or [0]
                if isinstance(args[0], int):
                    self.dropped += args[0]
            if client:
                state = get("state")
                if state:
                    self.states[client] = state
                if name == "pop3d_disconnected":
                    self.inflight.pop(client, None)
                    self.inflight_tags.pop(client, None)
                    self.states.pop(client, None)
                else:
                    tag = get("tag")
                    if tag:
                        tags = self.inflight_tags.get(client)
                        if tags is None:
                            tags = self.inflight_tags[client] = [tag]
                            self.inflight[client] = tag
                        elif tag not in tags:       # pop3d_auth_data repeats AUTH's
                            tags.append(tag)
                            self.inflight[client] = tags[0]
        elif t == "greeting" and self.greeting is None:
            self.greeting = msg

    def match_reply(self, msg: dict) -> Pending:
        """Pair a reply with the oldest command awaiting one."""
        if not self.pending:
            raise Pop3dError("protocol_error", "reply with no command awaiting one: %r" % msg,
                             msg)
        p = self.pending.popleft()
        # A reply with a null id answers a line the server could not parse;
        # our lines always parse, so any other id mismatch is a bug.
        if msg.get("id") != p.id and msg.get("id") is not None:
            raise Pop3dError("protocol_error", "reply id %r does not match command id %r"
                             % (msg.get("id"), p.id), msg)
        p.reply = msg
        return p

    def answered(self, client: int, tag: Optional[int]) -> None:
        """Forget an in-flight tag of a client once it has been answered
        (no tag: the oldest, as the server does)."""
        tags = self.inflight_tags.get(client)
        if not tags or (tag is not None and tag not in tags):
            return
        tags.remove(tags[0] if tag is None else tag)
        if tags:
            self.inflight[client] = tags[0]
        else:
            self.inflight.pop(client, None)
            self.inflight_tags.pop(client, None)

    @staticmethod
    def result(msg: dict) -> Any:
        """The result of a reply, or raise its error as Pop3dError."""
        if msg.get("ok"):
            return msg.get("result", {})
        err = msg.get("error") or {}
        raise Pop3dError(err.get("code", "unknown"), err.get("message", ""), msg)


# -- command argument builders (shared by both clients) ---------------------

def _line_arg(text: Union[str, bytes]) -> Tuple[str, str]:
    """("text", s) for text, ("text_b64", b64) for bytes that are not UTF-8."""
    if isinstance(text, bytes):
        try:
            return "text", text.decode("utf-8")
        except UnicodeDecodeError:
            return "text_b64", b64(text)
    return "text", text


def _to_bytes(s: Union[str, bytes]) -> bytes:
    return s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape")


def send_to_client_args(client: int, text: Optional[Union[str, bytes]] = None,
                        lines: Optional[Iterable[Union[str, bytes]]] = None,
                        tag: Optional[int] = None, more: bool = False) -> Dict[str, Any]:
    """Keys of a send_to_client command (bytes become the *_b64 forms)."""
    if (text is None) == (lines is None):
        raise ValueError("give exactly one of text and lines")
    args: Dict[str, Any] = {"client": client}
    if tag:
        args["tag"] = tag
    if more:
        args["more"] = True
    if text is not None:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
                args["text"] = text
            except UnicodeEncodeError:
                args["text_b64"] = b64(_to_bytes(text))
        else:
            k, v = _line_arg(text)
            args[k] = v
    else:
        items = list(lines or [])
        if not items:
            raise ValueError("lines must not be empty")
        raw = [_to_bytes(x) for x in items]
        try:
            args["lines"] = [x.decode("utf-8") for x in raw]
        except UnicodeDecodeError:
            args["lines_b64"] = [b64(x) for x in raw]
    return args


def register_names(events: Sequence[str]) -> List[str]:
    """Accept a single name or a list; names are passed through as given."""
    if isinstance(events, str):
        return [events]
    return list(events)


def verdict_args(hook: Any, eat: str, args: Optional[Sequence[Any]]) -> Dict[str, Any]:
    if eat not in VERDICTS:
        raise ValueError("eat must be one of %s" % (VERDICTS,))
    out: Dict[str, Any] = {"hook": hook, "eat": eat}
    if args is not None:
        out["args"] = list(args)
    return out
