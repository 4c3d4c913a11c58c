"""Synchronous control-socket client (blocking socket, one thread)."""
from __future__ import annotations

import collections
import os
import socket
import time
from typing import Any, Callable, Deque, Iterator, List, Optional, Sequence, Union

from .commands import Commands
from .protocol import Event, Hook, Pending, Pop3dError, Protocol, normalize_verdict

__all__ = ["Client", "default_path"]


def default_path(path: Optional[str] = None) -> str:
    """``path``, else $POP3D_CONTROL; raise ValueError when neither is set."""
    p = path or os.environ.get("POP3D_CONTROL")
    if not p:
        raise ValueError("no control socket path given and POP3D_CONTROL is not set")
    return p


class Client(Commands):
    """A blocking connection to the pop3d control socket.

    >>> with Client("/run/pop3d/control.sock", name="demo") as c:   # doctest: +SKIP
    ...     c.register(["cmd_noop"])
    ...     for ev in c.events():
    ...         ev.reply("+OK")

    Every command method returns the reply's ``result`` dict or raises
    :class:`Pop3dError`.  Events that arrive while a command waits for its
    reply are queued and handed out by :meth:`events`/:meth:`next_event`.
    Not thread-safe: use one Client per thread.

    ``timeout`` bounds each wait for a reply (seconds).
    """

    def __init__(self, path: Optional[str] = None, *, name: Optional[str] = None,
                 lossy: Optional[bool] = None, timeout: float = 30.0, connect: bool = True):
        self.path = default_path(path)
        self.timeout = timeout
        self._proto = Protocol()
        self._sock: Optional[socket.socket] = None
        self._queue: Deque[Event] = collections.deque()
        self.greeting: Optional[dict] = None
        self.closed = False
        if connect:
            self.connect(name=name, lossy=lossy)

    # -- connection ----------------------------------------------------------
    def connect(self, name: Optional[str] = None, lossy: Optional[bool] = None) -> dict:
        """Connect, read the greeting, and send ``hello`` when name/lossy given."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self.path)
        except OSError:
            s.close()
            raise
        self._sock = s
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
        if name is not None or lossy is not None:
            self.hello(name=name, lossy=lossy)
        return self.greeting  # type: ignore[return-value]

    def close(self) -> None:
        """Close the connection (the server drops our registrations).

        May be called from another thread to stop a blocked :meth:`events`.
        """
        s, self._sock = self._sock, None
        self.closed = True
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
        try:
            if deadline is None:
                s.settimeout(None)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Pop3dError("timeout", "no answer from pop3d in time")
                s.settimeout(left)
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

    def _dispatch(self, msg: dict) -> Optional[Pending]:
        t = msg.get("type")
        if t == "reply":
            return self._proto.match_reply(msg)
        if t == "event":
            self._queue.append(Event(msg, self))
        elif t == "hook":
            self._queue.append(Hook(msg, self))
        return None

    def send_nowait(self, _cmd: str, **keys: Any) -> Pending:
        """Send a command without waiting; collect it later with :meth:`wait`.

        Commands may be pipelined this way; replies still come in order.
        """
        if self._sock is None:
            raise Pop3dError("connection_closed", "not connected")
        p, line = self._proto.encode(_cmd, keys)
        try:
            self._sock.sendall(line)
        except OSError as e:
            self.close()
            raise Pop3dError("connection_closed", str(e))
        return p

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
        """The next event (or unhandled hook); None after ``timeout`` seconds.

        Hooks of plugins added with :meth:`plugin` are run here and answered
        with their verdict.  Raises Pop3dError("connection_closed") at EOF.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._queue:
                ev = self._queue.popleft()
                if isinstance(ev, Hook) and ev.plugin in self._proto.plugins:
                    self._run_hook(ev)
                    continue
                return ev
            try:
                for msg in self._read(deadline):
                    self._dispatch(msg)
            except Pop3dError as e:
                if e.code == "timeout":
                    return None
                raise

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Iterate over events until the connection closes.

        With ``timeout``, iteration also ends after that many idle seconds.
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
        """Skip events until one named ``name`` (full or short); raise
        Pop3dError("timeout") after ``timeout`` seconds."""
        full = name if name.startswith("pop3d_") else "pop3d_" + name
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next_event(max(0.0, deadline - time.monotonic()))
            if ev is None:
                raise Pop3dError("timeout", "no event %s" % full)
            if ev.name == full and (client is None or ev.client == client):
                return ev

    @property
    def last_seq(self) -> int:
        """Highest event seq received so far."""
        return self._proto.last_seq

    @property
    def dropped(self) -> int:
        """Events the server dropped for this (lossy) controller."""
        return self._proto.dropped

    def inflight_tag(self, client: int) -> Optional[int]:
        """Tag of the command of ``client`` seen and not yet answered by us;
        under pop3d --pipeline-depth, the oldest of them (see
        :meth:`inflight_tags`)."""
        return self._proto.inflight.get(client)

    def inflight_tags(self, client: int) -> List[int]:
        """Tags of the commands of ``client`` seen and not yet answered by
        us, oldest first: several only when pop3d runs with
        --pipeline-depth above 1, and then each may be answered (by its
        tag, as :meth:`Event.reply` does) in any order."""
        return list(self._proto.inflight_tags.get(client, ()))

    # -- plugins ---------------------------------------------------------------
    def plugin(self, alias: str, events: Union[str, Sequence[str]],
               priority: Optional[int] = None, type: str = "POP3D",
               timeout_ms: Optional[int] = None, on_timeout: Optional[str] = None
               ) -> Callable[[Callable[[Hook], Any]], Callable[[Hook], Any]]:
        """Decorator: add a controller plugin and run the function for its hooks.

        The function gets a :class:`Hook` and returns the verdict: None or
        ``"none"``, ``"client"``, ``"plugin"``, ``"all"``, or
        ``(eat, new_args)``.  It may answer the client itself first
        (``hook.reply("-ERR ...")``) and return ``"all"``.  The plugin is
        added (``plugin_add``) and registered (``plugin_register``) right
        away; hooks run inside :meth:`events`/:meth:`next_event`.
        """
        def deco(fn: Callable[[Hook], Any]) -> Callable[[Hook], Any]:
            spec = self._plugin_spec(alias, events, fn, priority, type, timeout_ms,
                                     on_timeout)
            self.plugin_add(alias, priority)
            try:
                self.plugin_register(alias, spec.events, type, timeout_ms, on_timeout)
            except Pop3dError:
                try:
                    self.plugin_del(alias)
                except Pop3dError:
                    pass
                self._proto.plugins.pop(alias, None)
                raise
            spec.installed = True
            return fn
        return deco

    def _run_hook(self, hook: Hook) -> None:
        spec = self._proto.plugins[hook.plugin]
        try:
            value = spec.handler(hook)
        except BaseException:
            if not hook.answered:
                hook.verdict("none")
            raise
        if not hook.answered:
            eat, args = normalize_verdict(value)
            try:
                hook.verdict(eat, args)
            except Pop3dError as e:
                # Too late: the hook already resolved with its on_timeout.
                if e.code != "stale":
                    raise
