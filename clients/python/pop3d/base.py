"""What :class:`pop3d.Client` and :class:`pop3d.AsyncClient` share.

:class:`ClientCore` holds everything that does not depend on how the socket
is read: the :class:`~pop3d.protocol.Protocol` state, ``last_seq``,
``dropped``, the in-flight tags, turning messages into events and hooks,
and the plugin decorator.  The logic that needs I/O in the middle
(``wait_event``, running a plugin hook and sending its verdict, installing
a plugin) is written once as a *step generator*: it yields ``(function,
args)`` pairs and receives each call's result (or has its exception thrown
in).  The sync client runs the steps with :func:`run_steps`; the asyncio
client with its own runner that awaits results that are awaitable.

Behaviour common to both clients (and tested for both):

* End of the connection: :meth:`next_event` hands out the events already
  received, then raises ``Pop3dError("connection_closed")`` (or the error
  that ended the connection, e.g. ``protocol_error``), on every later call
  too.  :meth:`events` ends quietly at ``connection_closed``;
  :meth:`wait_event` raises it.  ``next_event`` returns None only on its
  timeout.
* A plugin handler that raises (or returns a value that is not a verdict):
  the error is logged (logger ``pop3d``), the hook is answered ``"none"``
  unless the handler already answered it, and the exception propagates
  out of :meth:`next_event` (so out of :meth:`events`/:meth:`wait_event`).
  The sync client runs hooks inside ``next_event``, so the exception comes
  from the call that ran the hook; the asyncio client runs hooks as
  tasks, so it comes from the next ``next_event`` call, in order with the
  events.  The connection stays usable: call ``next_event`` again to go
  on.  A verdict that arrives after the hook timed out (``stale``) is
  ignored.
"""
from __future__ import annotations

import logging
import os
import time
from typing import (Any, Callable, Generator, List, Optional, Sequence, Tuple, TypeVar,
                    Union)

from .commands import Commands
from .protocol import (Event, Hook, PluginSpec, Pop3dError, Protocol, event_name,
                       normalize_verdict)

__all__ = ["ClientCore", "default_path", "run_steps", "Steps"]

log = logging.getLogger("pop3d")

T = TypeVar("T")
#: A step generator: yields (function, args); gets each call's result.
Steps = Generator[Tuple[Callable[..., Any], Tuple[Any, ...]], Any, T]
Handler = Callable[[Hook], Any]


def default_path(path: Optional[str] = None) -> str:
    """``path``, else $POP3D_CONTROL; raise ValueError when neither is set."""
    p = path or os.environ.get("POP3D_CONTROL")
    if not p:
        raise ValueError("no control socket path given and POP3D_CONTROL is not set")
    return p


def run_steps(steps: "Steps[T]") -> T:
    """Run a step generator with plain (blocking) calls; its return value."""
    try:
        fn, args = next(steps)
        while True:
            try:
                res = fn(*args)
            except BaseException as e:
                fn, args = steps.throw(e)
            else:
                fn, args = steps.send(res)
    except StopIteration as stop:
        return stop.value


class ClientCore(Commands):
    """Transport-independent part of a control connection (see the module
    docstring).  Subclasses provide ``call``, ``next_event`` and the I/O."""

    def __init__(self, path: Optional[str], timeout: float):
        self.path = default_path(path)
        self.timeout = timeout
        self._proto = Protocol()
        self.greeting: Optional[dict] = None
        self.closed = False

    # -- bookkeeping -------------------------------------------------------
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

    # -- incoming messages ---------------------------------------------------
    def _event_of(self, msg: dict) -> Optional[Event]:
        """An ``event`` or ``hook`` message as an Event/Hook bound to us;
        None for any other message."""
        t = msg.get("type")
        if t == "event":
            return Event(msg, self)
        if t == "hook":
            return Hook(msg, self)
        return None

    def _plugin_of(self, ev: Event) -> Optional[PluginSpec]:
        """The decorator plugin that handles ``ev`` (a hook for one of ours)."""
        if isinstance(ev, Hook):
            return self._proto.plugins.get(ev.plugin)
        return None

    # -- step generators (the logic between I/O calls) ---------------------------
    def _wait_event_steps(self, name: str, timeout: float,
                          client: Optional[int]) -> "Steps[Event]":
        full = event_name(name)
        deadline = time.monotonic() + timeout
        while True:
            ev = yield (self.next_event, (max(0.0, deadline - time.monotonic()),))
            if ev is None:
                raise Pop3dError("timeout", "no event %s" % full)
            if ev.name == full and (client is None or ev.client == client):
                return ev

    def _verdict_steps(self, hook: Hook, eat: str,
                       args: Optional[List[Any]]) -> "Steps[None]":
        try:
            yield (hook.verdict, (eat, args))
        except Pop3dError as e:
            # Too late: the hook already resolved with its on_timeout.
            if e.code != "stale":
                raise

    def _hook_steps(self, spec: PluginSpec, hook: Hook) -> "Steps[None]":
        try:
            value = yield (spec.handler, (hook,))
            verdict = None if hook.answered else normalize_verdict(value)
        except Exception:
            log.exception("plugin %s: hook handler failed on %s", spec.alias, hook.name)
            if not hook.answered:
                yield from self._verdict_steps(hook, "none", None)
            raise
        if verdict is not None:
            yield from self._verdict_steps(hook, verdict[0], verdict[1])

    def _install_steps(self, spec: PluginSpec) -> "Steps[None]":
        """plugin_add + plugin_register; on failure the plugin is deleted
        again and forgotten, and the error raised."""
        try:
            yield (self.plugin_add, (spec.alias, spec.priority))
        except Pop3dError:
            self._proto.plugins.pop(spec.alias, None)
            raise
        try:
            yield (self.plugin_register, (spec.alias, spec.events, spec.type,
                                          spec.timeout_ms, spec.on_timeout))
        except Pop3dError:
            self._proto.plugins.pop(spec.alias, None)
            try:
                yield (self.plugin_del, (spec.alias,))
            except Pop3dError:
                pass
            raise
        spec.installed = True

    # -- plugins -----------------------------------------------------------
    def _declared(self, spec: PluginSpec) -> None:
        """Called when the decorator declares a plugin (the sync client
        installs it at once; the asyncio one later)."""

    def plugin(self, alias: str, events: Union[str, Sequence[str]],
               priority: Optional[int] = None, type: str = "POP3D",
               timeout_ms: Optional[int] = None, on_timeout: Optional[str] = None
               ) -> Callable[[Handler], Handler]:
        """Decorator: a controller plugin whose hooks the function answers.

        The function gets a :class:`Hook` and returns the verdict: None or
        ``"none"``, ``"client"``, ``"plugin"``, ``"all"``, ``"tempfail"``,
        or ``(eat, new_args)``.  It may answer the client itself first
        (``hook.reply("-ERR ...")``) and return ``"all"``.  Hooks run inside
        :meth:`next_event` (sync) or as tasks (asyncio, where the function
        may be a coroutine).  If it raises, see the module docstring of
        :mod:`pop3d.base`: logged, answered ``"none"``, raised again from
        ``next_event``.  When the plugin is installed (``plugin_add`` +
        ``plugin_register``) depends on the client: :meth:`Client.plugin`
        at once, :meth:`AsyncClient.install_plugins` for asyncio.
        """
        def deco(fn: Handler) -> Handler:
            self._declared(self._plugin_spec(alias, events, fn, priority, type,
                                             timeout_ms, on_timeout))
            return fn
        return deco
