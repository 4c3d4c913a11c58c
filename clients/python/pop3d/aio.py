"""asyncio control-socket client over the same protocol code."""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, AsyncIterator, Callable, Optional, Sequence, Union

from .client import default_path
from .commands import Commands
from .protocol import Event, Hook, PluginSpec, Pop3dError, Protocol, normalize_verdict

__all__ = ["AsyncClient"]

_EOF = object()
log = logging.getLogger("pop3d")


class AsyncClient(Commands):
    """An asyncio connection to the pop3d control socket.

    >>> async def main():                                   # doctest: +SKIP
    ...     c = await AsyncClient.connect(name="demo")
    ...     await c.register(["cmd_noop"])
    ...     async for ev in c.events():
    ...         await ev.reply("+OK")

    Command methods are coroutines returning the reply's ``result`` or
    raising :class:`Pop3dError`; many may be awaited concurrently (replies
    are matched in order).  A background task reads the socket: replies
    resolve their commands, events go to a queue read by :meth:`events`,
    and hooks of plugins declared with :meth:`plugin` run as tasks.
    """

    def __init__(self, path: Optional[str] = None, *, timeout: float = 30.0):
        self.path = default_path(path)
        self.timeout = timeout
        self._proto = Protocol()
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._queue: "asyncio.Queue[Any]" = asyncio.Queue()
        self._task: Optional[asyncio.Task] = None
        self._greeting: Optional[asyncio.Future] = None
        self._hook_tasks: "set[asyncio.Task]" = set()
        self.greeting: Optional[dict] = None
        self.closed = False
        self.error: Optional[BaseException] = None

    @classmethod
    async def connect(cls, path: Optional[str] = None, *, name: Optional[str] = None,
                      lossy: Optional[bool] = None, timeout: float = 30.0) -> "AsyncClient":
        """Connect, wait for the greeting, send ``hello`` if name/lossy given."""
        self = cls(path, timeout=timeout)
        await self.open(name=name, lossy=lossy)
        return self

    async def open(self, name: Optional[str] = None, lossy: Optional[bool] = None) -> dict:
        loop = asyncio.get_running_loop()
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_unix_connection(self.path), self.timeout)
        self._greeting = loop.create_future()
        self._task = loop.create_task(self._read_loop())
        try:
            self.greeting = await asyncio.wait_for(asyncio.shield(self._greeting), self.timeout)
        except BaseException:
            await self.close()
            raise
        if name is not None or lossy is not None:
            await self.hello(name=name, lossy=lossy)
        return self.greeting

    async def close(self) -> None:
        """Close the connection and stop the reader task."""
        self.closed = True
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (OSError, ConnectionError):
                pass
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for t in list(self._hook_tasks):
            t.cancel()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- reading -----------------------------------------------------------
    async def _read_loop(self) -> None:
        assert self._reader is not None
        err: BaseException = Pop3dError("connection_closed", "pop3d closed the control "
                                        "connection")
        try:
            while True:
                data = await self._reader.read(1 << 20)
                if not data:
                    break
                for msg in self._proto.feed(data):
                    self._dispatch(msg)
        except asyncio.CancelledError:
            err = Pop3dError("connection_closed", "client closed")
            raise
        except Pop3dError as e:
            err = e
        except (OSError, ConnectionError) as e:
            err = Pop3dError("connection_closed", str(e))
        finally:
            self.closed = True
            self.error = err
            if self._greeting is not None and not self._greeting.done():
                self._greeting.set_exception(err)
            while self._proto.pending:
                p = self._proto.pending.popleft()
                if p.waiter is not None and not p.waiter.done():
                    p.waiter.set_exception(err)
            self._queue.put_nowait(_EOF)

    def _dispatch(self, msg: dict) -> None:
        t = msg.get("type")
        if t == "greeting":
            if self._greeting is not None and not self._greeting.done():
                self._greeting.set_result(msg)
        elif t == "reply":
            if self._greeting is not None and not self._greeting.done():
                try:
                    Protocol.result(msg)
                    self._greeting.set_exception(Pop3dError("protocol_error", "reply before "
                                                            "greeting"))
                except Pop3dError as e:
                    self._greeting.set_exception(e)
                return
            p = self._proto.match_reply(msg)
            if p.waiter is not None and not p.waiter.done():
                p.waiter.set_result(msg)
        elif t == "event":
            self._queue.put_nowait(Event(msg, self))
        elif t == "hook":
            hook = Hook(msg, self)
            spec = self._proto.plugins.get(hook.plugin)
            if spec is None:
                self._queue.put_nowait(hook)
            else:
                task = asyncio.get_running_loop().create_task(self._run_hook(spec, hook))
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_tasks.discard)

    async def _run_hook(self, spec: PluginSpec, hook: Hook) -> None:
        try:
            value = spec.handler(hook)
            if inspect.isawaitable(value):
                value = await value
        except Exception:
            log.exception("plugin %s: hook handler failed", spec.alias)
            if not hook.answered:
                await hook.verdict("none")
            return
        if not hook.answered:
            eat, args = normalize_verdict(value)
            try:
                await hook.verdict(eat, args)
            except Pop3dError as e:
                # Too late: the hook already resolved with its on_timeout.
                if e.code != "stale":
                    raise

    # -- commands ----------------------------------------------------------
    async def call(self, _cmd: str, **keys: Any) -> Any:
        """Send one command; return its result or raise Pop3dError."""
        if self._writer is None or self.closed:
            raise self.error or Pop3dError("connection_closed", "not connected")
        fut = asyncio.get_running_loop().create_future()
        # encode + write with no await between: the pending order is the
        # write order, which is the reply order.
        _, line = self._proto.encode(_cmd, keys, waiter=fut)
        self._writer.write(line)
        await self._writer.drain()
        msg = await asyncio.wait_for(fut, self.timeout)
        return Protocol.result(msg)

    # -- events --------------------------------------------------------------
    async def next_event(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event (or unhandled hook); None after ``timeout`` seconds
        or once the connection is closed."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if item is _EOF:
            self._queue.put_nowait(_EOF)
            return None
        return item

    async def events(self, timeout: Optional[float] = None) -> AsyncIterator[Event]:
        """Async-iterate over events until the connection closes (or, with
        ``timeout``, until that many idle seconds pass)."""
        await self.install_plugins()
        while True:
            ev = await self.next_event(timeout)
            if ev is None:
                return
            yield ev

    async def wait_event(self, name: str, timeout: float = 10.0,
                         client: Optional[int] = None) -> Event:
        """Skip events until one named ``name``; Pop3dError("timeout") after
        ``timeout`` seconds."""
        full = name if name.startswith("pop3d_") else "pop3d_" + name
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ev = await self.next_event(max(0.0, deadline - loop.time()))
            if ev is None:
                raise Pop3dError("timeout", "no event %s" % full)
            if ev.name == full and (client is None or ev.client == client):
                return ev

    @property
    def last_seq(self) -> int:
        return self._proto.last_seq

    @property
    def dropped(self) -> int:
        return self._proto.dropped

    # -- plugins -------------------------------------------------------------
    def plugin(self, alias: str, events: Union[str, Sequence[str]],
               priority: Optional[int] = None, type: str = "POP3D",
               timeout_ms: Optional[int] = None, on_timeout: Optional[str] = None
               ) -> Callable[[Callable[[Hook], Any]], Callable[[Hook], Any]]:
        """Decorator: declare a controller plugin (handler may be async).

        The plugin is added and registered by :meth:`install_plugins`, which
        :meth:`events` calls first; call it yourself to see errors early.
        """
        def deco(fn: Callable[[Hook], Any]) -> Callable[[Hook], Any]:
            self._plugin_spec(alias, events, fn, priority, type, timeout_ms,
                                     on_timeout)
            return fn
        return deco

    async def install_plugins(self) -> None:
        """Send plugin_add/plugin_register for every declared plugin not yet
        installed; raises Pop3dError (e.g. unknown_command) on failure."""
        for spec in list(self._proto.plugins.values()):
            if spec.installed:
                continue
            try:
                await self.plugin_add(spec.alias, spec.priority)
                await self.plugin_register(spec.alias, spec.events, spec.type,
                                           spec.timeout_ms, spec.on_timeout)
            except Pop3dError:
                self._proto.plugins.pop(spec.alias, None)
                raise
            spec.installed = True
