"""Synchronous control-socket client (blocking socket, one thread)."""
from __future__ import annotations

import collections
import socket
import time
from typing import Any, Deque, Iterator, List, Optional

from .base import ClientCore, default_path, run_steps
from .protocol import Event, Pending, PluginSpec, Pop3dError, Protocol

__all__ = ["Client", "default_path"]


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
                 lossy: Optional[bool] = None, timeout: float = 30.0, connect: bool = True):
        super().__init__(path, timeout)
        self._sock: Optional[socket.socket] = None
        self._queue: Deque[Event] = collections.deque()
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

    def _dispatch(self, msg: dict) -> None:
        if msg.get("type") == "reply":
            self._proto.match_reply(msg)
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
