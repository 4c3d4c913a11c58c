"""asyncio control-socket client over the same protocol code."""
from __future__ import annotations

import asyncio
import inspect
from typing import (TYPE_CHECKING, Any, AsyncIterator, Iterable, Optional, Sequence, TypeVar,
                    Union)

from .base import ClientCore, Steps
from .protocol import Event, Hook, PluginSpec, Pop3dError, Protocol

if TYPE_CHECKING:
    from .results import (EmptyResult, EventsResult, GetsocknameResult, HelloResult,
                          ListClientsResult, ListGroupsResult, PingResult,
                          PluginCountResult, PluginInfo, PluginListResult, PluginOrderResult,
                          SessionIdResult)

__all__ = ["AsyncClient"]

T = TypeVar("T")
_EOF = object()


class _Raise:
    """Queued in place of an event: raise ``exc`` from next_event."""
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


async def _run_steps(steps: "Steps[T]") -> T:
    """Run a step generator, awaiting every result that is awaitable."""
    try:
        fn, args = next(steps)
        while True:
            try:
                res = fn(*args)
                if inspect.isawaitable(res):
                    res = await res
            except BaseException as e:
                fn, args = steps.throw(e)
            else:
                fn, args = steps.send(res)
    except StopIteration as stop:
        return stop.value


class AsyncClient(ClientCore):
    """An asyncio connection to the pop3d control socket.

    >>> async def main():                                   # doctest: +SKIP
    ...     c = await AsyncClient.connect(name="demo")
    ...     await c.register(["cmd_noop"])
    ...     async for ev in c.events():
    ...         await ev.reply("+OK")

    Command methods are coroutines returning the reply's ``result`` (typed
    in :mod:`pop3d.results`) or raising :class:`Pop3dError`; many may be
    awaited concurrently (replies are matched in order).  A background task
    reads the socket: replies resolve their commands, events go to a queue
    read by :meth:`next_event`/:meth:`events`, and hooks of plugins
    declared with :meth:`plugin` run as tasks.  End of connection and
    plugin handler errors behave as described in :mod:`pop3d.base`, as for
    :class:`Client`.
    """

    def __init__(self, path: Optional[str] = None, *, timeout: float = 30.0):
        super().__init__(path, timeout)
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._queue: "asyncio.Queue[Any]" = asyncio.Queue()
        self._task: Optional[asyncio.Task] = None
        self._greeting: Optional[asyncio.Future] = None
        self._hook_tasks: "set[asyncio.Task]" = set()
        #: Why the connection ended (a Pop3dError), once it has.
        self.error: Optional[BaseException] = None

    @classmethod
    async def connect(cls, path: Optional[str] = None, *, name: Optional[str] = None,
                      lossy: Optional[bool] = None, timeout: float = 30.0,
                      group: Optional[str] = None) -> "AsyncClient":
        """Connect, wait for the greeting, send ``hello`` if name, lossy or
        group is given."""
        self = cls(path, timeout=timeout)
        await self.open(name=name, lossy=lossy, group=group)
        return self

    async def open(self, name: Optional[str] = None, lossy: Optional[bool] = None,
                   group: Optional[str] = None) -> dict:
        """Connect, start the reader task, wait for the greeting (returned)
        and send ``hello`` if name, lossy or group is given."""
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
        if name is not None or lossy is not None or group is not None:
            await self.hello(name=name, lossy=lossy, group=group)
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
        if self._task is not None:
            if self._task is not asyncio.current_task():
                self._task.cancel()
                try:
                    await self._task
                except (asyncio.CancelledError, Exception):
                    pass
        else:
            # Never opened: next_event ends as after a closed connection.
            self.error = self.error or Pop3dError("connection_closed", "client closed")
            self._queue.put_nowait(_EOF)
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
        else:
            ev = self._event_of(msg)
            if ev is None:
                return
            spec = self._plugin_of(ev)
            if spec is None:
                self._queue.put_nowait(ev)
            else:
                task = asyncio.get_running_loop().create_task(self._run_hook(spec, ev))
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_tasks.discard)

    async def _run_hook(self, spec: PluginSpec, hook: Event) -> None:
        assert isinstance(hook, Hook)
        try:
            await _run_steps(self._hook_steps(spec, hook))
        except Exception as e:
            # Raised by the next next_event(), in order with the events.
            self._queue.put_nowait(_Raise(e))

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
        """The next event (or a hook of no plugin of ours); None after
        ``timeout`` seconds without one.

        A plugin handler's exception (its hook answered ``"none"``) is
        raised here, in order with the events.  At the end of the
        connection, once the events received are handed out, raises
        Pop3dError("connection_closed") (or the error that ended it).
        """
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if item is _EOF:
            self._queue.put_nowait(_EOF)
            raise self.error or Pop3dError("connection_closed", "not connected")
        if isinstance(item, _Raise):
            raise item.exc
        return item

    async def events(self, timeout: Optional[float] = None) -> AsyncIterator[Event]:
        """Async-iterate over events until the connection closes (quietly),
        or, with ``timeout``, until that many idle seconds pass.  Installs
        the declared plugins first.  A plugin handler's exception
        propagates (see :meth:`next_event`)."""
        await self.install_plugins()
        while True:
            try:
                ev = await self.next_event(timeout)
            except Pop3dError as e:
                if e.code == "connection_closed":
                    return
                raise
            if ev is None:
                return
            yield ev

    async def wait_event(self, name: str, timeout: float = 10.0,
                         client: Optional[int] = None) -> Event:
        """Skip events until one named ``name`` (full or short; of
        ``client`` when given); raise Pop3dError("timeout") after
        ``timeout`` seconds, Pop3dError("connection_closed") at the end of
        the connection."""
        return await _run_steps(self._wait_event_steps(name, timeout, client))

    # -- plugins -------------------------------------------------------------
    async def install_plugins(self) -> None:
        """Send plugin_add/plugin_register for every plugin declared with
        :meth:`plugin` and not yet installed; raises Pop3dError (e.g.
        unknown_command) on failure, after removing that plugin again."""
        for spec in list(self._proto.plugins.values()):
            if not spec.installed:
                await _run_steps(self._install_steps(spec))

    if TYPE_CHECKING:
        # The command methods of pop3d.commands, as coroutines.
        async def hello(self, name: Optional[str] = None, lossy: Optional[bool] = None,
                        group: Optional[str] = None) -> HelloResult: ...
        async def ping(self) -> PingResult: ...
        async def session_id(self) -> SessionIdResult: ...
        async def getsockname(self) -> GetsocknameResult: ...
        async def list_clients(self) -> ListClientsResult: ...
        async def list_groups(self) -> ListGroupsResult: ...
        async def shutdown(self) -> EmptyResult: ...
        async def register(self, events: Union[str, Sequence[str]]) -> EventsResult: ...
        async def unregister(self, events: Union[str, Sequence[str]]) -> EventsResult: ...
        async def send_event(self, event: str,
                             args: Optional[Sequence[Any]] = None) -> EmptyResult: ...
        async def send_to_client(self, client: int, text: Optional[Union[str, bytes]] = None,
                                 lines: Optional[Iterable[Union[str, bytes]]] = None,
                                 tag: Optional[int] = None,
                                 more: bool = False) -> EmptyResult: ...
        async def send_file(self, client: int, path: str, status: str,
                            top_lines: Optional[int] = None,
                            tag: Optional[int] = None) -> EmptyResult: ...
        async def disconnect(self, client: int, text: Optional[str] = None) -> EmptyResult: ...
        async def plugin_add(self, alias: str,
                             priority: Optional[int] = None) -> PluginCountResult: ...
        async def plugin_del(self, alias: str) -> PluginCountResult: ...
        async def plugin_register(self, alias: str, events: Union[str, Sequence[str]],
                                  type: str = "POP3D", timeout_ms: Optional[int] = None,
                                  on_timeout: Optional[str] = None) -> PluginInfo: ...
        async def plugin_unregister(self, alias: str, events: Union[str, Sequence[str]],
                                    type: str = "POP3D") -> PluginInfo: ...
        async def plugin_get(self, alias: str) -> PluginInfo: ...
        async def plugin_list(self) -> PluginListResult: ...
        async def plugin_order(self) -> PluginOrderResult: ...
        async def verdict(self, hook: Any, eat: str = "none",
                          args: Optional[Sequence[Any]] = None) -> EmptyResult: ...
