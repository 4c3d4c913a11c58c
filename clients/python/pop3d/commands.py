"""One method per control command, shared by Client and AsyncClient.

Each method builds the command's keys and hands them to ``self.call``.
With :class:`pop3d.Client` that returns the reply's ``result`` (a dict,
typed by the :mod:`pop3d.results` TypedDict named in the annotation) or
raises :class:`pop3d.Pop3dError`; with :class:`pop3d.AsyncClient` it
returns an awaitable of the same.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence, Union

from .protocol import (PluginSpec, Protocol, register_names, send_to_client_args,
                       verdict_args)
from .results import (EmptyResult, EventsResult, GetsocknameResult, HelloResult,
                      ListClientsResult, ListGroupsResult, PingResult, PluginCountResult, PluginInfo,
                      PluginListResult, PluginOrderResult, SessionIdResult)

Text = Union[str, bytes]


class Commands:
    """Mixin: needs ``self._proto`` (a Protocol) and ``self.call(cmd, **keys)``."""

    _proto: Protocol

    def call(self, _cmd: str, **keys: Any) -> Any:  # pragma: no cover - overridden
        """Send command ``_cmd`` with ``keys``; the reply's result."""
        raise NotImplementedError

    # -- session -----------------------------------------------------------
    def hello(self, name: Optional[str] = None, lossy: Optional[bool] = None,
              group: Optional[str] = None) -> HelloResult:
        """Name this controller in the server's logs; set lossy mode; join
        ``group`` (once, for the connection's life: pop3d then binds each
        new client to one member of the group, see pop3d-control(7)).

        Result: ``{"controller": ID, "name": NAME, "lossy": BOOL}``, with
        ``"group"`` when the controller is a member.
        """
        return self.call("hello", name=name, lossy=lossy, group=group)

    def ping(self) -> PingResult:
        """A barrier: every earlier event is already received.  ``{"seq": N}``."""
        return self.call("ping")

    def session_id(self) -> SessionIdResult:
        """``{"session_id": ID}``, random and fixed for the server's life."""
        return self.call("session_id")

    def getsockname(self) -> GetsocknameResult:
        """``{"listeners": [{"address", "port", "tls", "proxy"}, ...]}``."""
        return self.call("getsockname")

    def list_clients(self) -> ListClientsResult:
        """``{"clients": [{"client", "peer", "peer_port", "local", "local_port",
        "state", "tls", "connected", "idle", "tag", "groups"}, ...]}``;
        ``groups`` maps each controller group the client is bound in to its
        member's controller id."""
        return self.call("list_clients")

    def list_groups(self) -> ListGroupsResult:
        """``{"groups": [{"name", "members": [{"controller", "name",
        "clients"}, ...], "plugins": [alias, ...]}, ...]}``: every controller
        group that has members."""
        return self.call("list_groups")

    def shutdown(self) -> EmptyResult:
        """Stop the server (every controller then receives pop3d_shutdown)."""
        return self.call("shutdown")

    # -- events ------------------------------------------------------------
    def register(self, events: Union[str, Sequence[str]]) -> EventsResult:
        """Register for event names (``cmd_user``, ``pop3d_cmd_user``, ``all``,
        ``cmd_*``).  Atomic: all or none.  ``{"events": [patterns]}``."""
        return self.call("register", events=register_names(events))

    def unregister(self, events: Union[str, Sequence[str]]) -> EventsResult:
        """Unregister names; ``{"events": [remaining patterns]}``."""
        return self.call("unregister", events=register_names(events))

    def send_event(self, event: str, args: Optional[Sequence[Any]] = None) -> EmptyResult:
        """Inject an event (custom ones are named ``x_*``)."""
        return self.call("send_event", event=event, args=None if args is None else list(args))

    # -- answering clients -------------------------------------------------
    def send_to_client(self, client: int, text: Optional[Text] = None,
                       lines: Optional[Iterable[Text]] = None, tag: Optional[int] = None,
                       more: bool = False) -> EmptyResult:
        """Send one line (``text``) or a whole multi-line response (``lines``,
        the status line first; the core dot-stuffs and terminates it).

        Bytes that are not UTF-8 go as ``text_b64``/``lines_b64``.  ``tag``
        makes the server refuse the send (``stale``) unless that command is
        the one awaiting an answer.  ``more`` leaves the command open.  Once a
        response is open (a line was sent with ``more``), every element of
        ``lines`` is a data line, dot-stuffed by the core, then terminated
        (not terminated with ``more``); ``text`` is always written as given.
        """
        keys = send_to_client_args(client, text=text, lines=lines, tag=tag, more=more)
        first = text if text is not None else None
        continuation = isinstance(first, (str, bytes)) and (
            first[:2] in ("+ ", b"+ ") or first in ("+", b"+"))
        if not more and not continuation:
            self._proto.answered(client, tag)
        return self.call("send_to_client", **keys)

    def send_file(self, client: int, path: str, status: str, top_lines: Optional[int] = None,
                  tag: Optional[int] = None) -> EmptyResult:
        """Stream a file as a multi-line response after ``status`` (CRLF
        normalised, dot-stuffed, terminated).  ``top_lines`` limits the body
        to that many lines after the headers (TOP).  pop3d refuses
        (``invalid_argument``) anything but a regular file, a symlink as the
        last path component, and, under ``--send-file-root``, any path
        outside that tree; the command then stays open for another answer."""
        self._proto.answered(client, tag)
        return self.call("send_file", client=client, path=path, status=status,
                         top_lines=top_lines, tag=tag or None)

    def disconnect(self, client: int, text: Optional[str] = None) -> EmptyResult:
        """Close a client after its pending output; ``text`` is sent last."""
        return self.call("disconnect", client=client, text=text)

    # -- plugins -------------------------------------------------------------
    def plugin_add(self, alias: str, priority: Optional[int] = None) -> PluginCountResult:
        """Add a controller plugin named ``alias`` to the pipeline (lower
        ``priority`` runs first; the server's default is 0).
        ``{"plugins": N}``."""
        return self.call("plugin_add", alias=alias, priority=priority)

    def plugin_del(self, alias: str) -> PluginCountResult:
        """Remove one of this controller's plugins.  ``{"plugins": N}``."""
        return self.call("plugin_del", alias=alias)

    def plugin_register(self, alias: str, events: Union[str, Sequence[str]],
                        type: str = "POP3D", timeout_ms: Optional[int] = None,
                        on_timeout: Optional[str] = None) -> PluginInfo:
        """Register plugin ``alias`` for events; ``type`` is ``"POP3D"``
        (events) or ``"POP3C"`` (responses sent to clients).  A hook not
        answered within ``timeout_ms`` resolves with ``on_timeout`` (none,
        client, plugin, all or tempfail).  Result: the plugin's info."""
        return self.call("plugin_register", alias=alias, type=type,
                         events=register_names(events), timeout_ms=timeout_ms,
                         on_timeout=on_timeout)

    def plugin_unregister(self, alias: str, events: Union[str, Sequence[str]],
                          type: str = "POP3D") -> PluginInfo:
        """Unregister plugin ``alias`` from events."""
        return self.call("plugin_unregister", alias=alias, type=type,
                         events=register_names(events))

    def plugin_get(self, alias: str) -> PluginInfo:
        """``{"alias", "priority", "events": {"POP3D": [...], "POP3C": [...]},
        "controller", "timeout_ms"}`` of one plugin."""
        return self.call("plugin_get", alias=alias)

    def plugin_list(self) -> PluginListResult:
        """``{"plugins": [info, ...]}`` in pipeline order."""
        return self.call("plugin_list")

    def plugin_order(self) -> PluginOrderResult:
        """``{"plugins": [alias, ...]}`` in pipeline order."""
        return self.call("plugin_order")

    def verdict(self, hook: Any, eat: str = "none", args: Optional[Sequence[Any]] = None) -> EmptyResult:
        """Answer hook ``hook``: ``eat`` is none/client/plugin/all; ``args``
        replaces the event's arguments for everyone after this plugin."""
        return self.call("verdict", **verdict_args(hook, eat, args))

    def _plugin_spec(self, alias: str, events: Union[str, Sequence[str]],
                     handler: Callable[..., Any], priority: Optional[int], type: str,
                     timeout_ms: Optional[int] = None,
                     on_timeout: Optional[str] = None) -> PluginSpec:
        spec = PluginSpec(alias=alias, events=register_names(events), handler=handler,
                          priority=priority, type=type, timeout_ms=timeout_ms,
                          on_timeout=on_timeout)
        self._proto.plugins[alias] = spec
        return spec
