"""Synchronous control-socket client (blocking socket, one thread)."""
from __future__ import annotations

import collections
import logging
import socket
import time
from typing import Any, Callable, Deque, Iterable, Iterator, List, Optional, Union

from .base import ClientCore, default_path, run_steps
from .protocol import (Event, Pending, PluginSpec, Pop3dError, Protocol,
                       send_to_client_args)

Text = Union[str, bytes]

__all__ = ["Client", "default_path"]

log = logging.getLogger("pop3d")


def _log_error(p: Pending) -> None:
    """The default for a posted command's reply: log an error."""
    r = p.reply or {}
    if not r.get("ok"):
        err = r.get("error") or {}
        level = logging.DEBUG if err.get("code") in ("unknown_client", "stale") \
            else logging.ERROR
        log.log(level, "%s: %s: %s", p.cmd, err.get("code"), err.get("message", ""))


class Client(ClientCore):
    """A blocking connection to the pop3d control socket.

    >>> with Client("/run/pop3d/control.sock", name="demo") as c:   # doctest: +SKIP
    ...     c.register(["cmd_noop"])
    ...     for ev in c.events():
    ...         ev.reply("+OK")

    Every command method returns the reply's ``result`` dict (typed in
    :mod:`pop3d.results`) or raises :class:`Pop3dError`.  Events that
    arrive while a command waits for its reply are queued and handed out by
    :meth:`events`/:meth:`next_event`.  Not thread-safe: use one Client per
    thread (:meth:`close` excepted).  End of connection and plugin handler
    errors behave as described in :mod:`pop3d.base`, as for
    :class:`AsyncClient`.

    ``timeout`` bounds each wait for a reply (seconds).
    """

    def __init__(self, path: Optional[str] = None, *, name: Optional[str] = None,
                 lossy: Optional[bool] = None, timeout: float = 30.0, connect: bool = True,
                 group: Optional[str] = None):
        super().__init__(path, timeout)
        self._sock: Optional[socket.socket] = None
        self._queue: Deque[Event] = collections.deque()
        #: Commands posted (:meth:`post`) and not yet written: sent with
        #: one write before the next read, or by :meth:`flush`.
        self._out: List[bytes] = []
        self._sock_timeout: Any = ()        # the timeout last set on the socket
        if connect:
            self.connect(name=name, lossy=lossy, group=group)

    # -- connection ----------------------------------------------------------
    def connect(self, name: Optional[str] = None, lossy: Optional[bool] = None,
                group: Optional[str] = None) -> dict:
        """Connect, read the greeting, and send ``hello`` when name, lossy or
        group is given."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self.path)
        except OSError:
            s.close()
            raise
        self._sock = s
        self._sock_timeout = self.timeout
        deadline = time.monotonic() + self.timeout
        while self._proto.greeting is None:
            for msg in self._read(deadline):
                if msg.get("type") == "reply":
                    # Refused at accept (permission_denied, limit_exceeded).
                    self.close()
                    Protocol.result(msg)
                    raise Pop3dError("protocol_error", "unexpected reply before greeting")
                if msg.get("type") != "greeting":
                    self._dispatch(msg)
        self.greeting = self._proto.greeting
        if name is not None or lossy is not None or group is not None:
            self.hello(name=name, lossy=lossy, group=group)
        return self.greeting  # type: ignore[return-value]

    def close(self) -> None:
        """Close the connection (the server drops our registrations).

        May be called from another thread to stop a blocked :meth:`events`.
        """
        if self._out and self._sock is not None:
            try:
                self.flush()
            except Pop3dError:
                pass
        s, self._sock = self._sock, None
        self.closed = True
        self._out = []
        if s is not None:
            try:
                # shutdown() also wakes a recv() blocked in another thread.
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        """The socket's descriptor, for select()."""
        if self._sock is None:
            raise Pop3dError("connection_closed", "not connected")
        return self._sock.fileno()

    # -- low level -------------------------------------------------------------
    def _read(self, deadline: Optional[float]) -> List[dict]:
        """One recv (bounded by deadline); the messages it completed."""
        s = self._sock
        if s is None:
            raise Pop3dError("connection_closed", "not connected")
        if self._out:
            self.flush()
        try:
            if deadline is None:
                if self._sock_timeout is not None:
                    s.settimeout(None)
                    self._sock_timeout = None
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Pop3dError("timeout", "no answer from pop3d in time")
                s.settimeout(left)
                self._sock_timeout = left
            # Everything the socket has (up to 1 MiB): every complete line
            # of it is decoded and dispatched before the next read.
            data = s.recv(1 << 20)
        except socket.timeout:
            raise Pop3dError("timeout", "no answer from pop3d in time")
        except OSError as e:
            self.close()
            raise Pop3dError("connection_closed", str(e))
        if not data:
            self.close()
            raise Pop3dError("connection_closed", "pop3d closed the control connection")
        return self._proto.feed(data)

    def _dispatch(self, msg: dict) -> None:
        if msg.get("type") == "reply":
            p = self._proto.match_reply(msg)
            if p.on_reply is not None:
                p.on_reply(p)
            return
        ev = self._event_of(msg)
        if ev is not None:
            self._queue.append(ev)

    def send_nowait(self, _cmd: str, **keys: Any) -> Pending:
        """Send a command without waiting; collect it later with :meth:`wait`.

        Commands may be pipelined this way; replies still come in order.
        """
        if self._sock is None:
            raise Pop3dError("connection_closed", "not connected")
        p, line = self._proto.encode(_cmd, keys)
        self._out.append(line)
        self.flush()
        return p

    # -- posting: commands written in batches -------------------------------------
    def flush(self) -> None:
        """Write every posted command not yet written, with one send."""
        out = self._out
        if not out:
            return
        if self._sock is None:
            raise Pop3dError("connection_closed", "not connected")
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        try:
            self._sock.sendall(data)
        except OSError as e:
            self.close()
            raise Pop3dError("connection_closed", str(e))

    def post(self, _cmd: str, _on_reply: Optional[Callable[[Pending], None]] = None,
             **keys: Any) -> Pending:
        """Queue a command without writing it or waiting for its reply.

        Posted commands are written together, with one send, before the
        client next reads from the socket (so before :meth:`next_event`
        blocks, and before any :meth:`call`), or by :meth:`flush`; their
        order with every other command is kept.  When the reply arrives,
        ``_on_reply(pending)`` is called with its Pending (``pending.reply``
        holds it; :meth:`Protocol.result` raises its error); without
        ``_on_reply`` an error reply is logged (logger ``pop3d``).
        """
        if self._sock is None:
            raise Pop3dError("connection_closed", "not connected")
        p, line = self._proto.encode(_cmd, keys)
        p.on_reply = _on_reply or _log_error
        self._out.append(line)
        return p

    def post_to_client(self, client: int, text: Optional[Text] = None,
                       lines: Optional[Iterable[Text]] = None, tag: Optional[int] = None,
                       more: bool = False,
                       on_reply: Optional[Callable[[Pending], None]] = None) -> Pending:
        """:meth:`send_to_client`, posted (see :meth:`post`): the same line
        on the wire; a one-line text is encoded from a fixed template."""
        if self._sock is None:
            raise Pop3dError("connection_closed", "not connected")
        proto = self._proto
        if text is not None and lines is None and not more:
            r = proto.encode_text(client, tag, text, on_reply or _log_error)  # type: ignore
            if r is not None:
                if text[:2] != "+ " and text != "+":
                    proto.answered(client, tag)
                self._out.append(r[1])
                return r[0]
        keys = send_to_client_args(client, text=text, lines=lines, tag=tag, more=more)
        continuation = isinstance(text, (str, bytes)) and (
            text[:2] in ("+ ", b"+ ") or text in ("+", b"+"))
        if not more and not continuation:
            proto.answered(client, tag)
        return self.post("send_to_client", on_reply, **keys)

    def post_file(self, client: int, path: str, status: str, top_lines: Optional[int] = None,
                  tag: Optional[int] = None,
                  on_reply: Optional[Callable[[Pending], None]] = None) -> Pending:
        """:meth:`send_file`, posted (see :meth:`post`)."""
        self._proto.answered(client, tag)
        return self.post("send_file", on_reply, client=client, path=path, status=status,
                         top_lines=top_lines, tag=tag or None)

    def wait(self, pending: Pending, timeout: Optional[float] = None) -> Any:
        """The result of a command sent with :meth:`send_nowait`."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while pending.reply is None:
            for msg in self._read(deadline):
                self._dispatch(msg)
        return Protocol.result(pending.reply)

    def call(self, _cmd: str, **keys: Any) -> Any:
        """Send one command and return its result (or raise Pop3dError)."""
        return self.wait(self.send_nowait(_cmd, **keys))

    # -- events ----------------------------------------------------------------
    def next_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event (or a hook of no plugin of ours); None after
        ``timeout`` seconds without one.

        Hooks of plugins added with :meth:`plugin` are run here and answered
        with their verdict; a handler's exception propagates from here
        (after the hook was answered ``"none"``).  At the end of the
        connection, once the events received are handed out, raises
        Pop3dError("connection_closed").
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._queue:
                ev = self._queue.popleft()
                spec = self._plugin_of(ev)
                if spec is None:
                    return ev
                run_steps(self._hook_steps(spec, ev))  # type: ignore[arg-type]
            try:
                for msg in self._read(deadline):
                    self._dispatch(msg)
            except Pop3dError as e:
                if e.code == "timeout":
                    return None
                raise

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Iterate over events until the connection closes (quietly).

        With ``timeout``, iteration also ends after that many idle seconds.
        A plugin handler's exception propagates (see :meth:`next_event`).
        """
        while True:
            try:
                ev = self.next_event(timeout)
            except Pop3dError as e:
                if e.code == "connection_closed":
                    return
                raise
            if ev is None:
                return
            yield ev

    def wait_event(self, name: str, timeout: float = 10.0,
                   client: Optional[int] = None) -> Event:
        """Skip events until one named ``name`` (full or short; of
        ``client`` when given); raise Pop3dError("timeout") after
        ``timeout`` seconds, Pop3dError("connection_closed") at the end of
        the connection."""
        return run_steps(self._wait_event_steps(name, timeout, client))

    # -- plugins ---------------------------------------------------------------
    def _declared(self, spec: PluginSpec) -> None:
        """Install the plugin at once (plugin_add, plugin_register); on
        failure it is removed again and the Pop3dError raised."""
        run_steps(self._install_steps(spec))
