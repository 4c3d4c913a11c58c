"""Typed results of the control commands (pop3d-control(7), COMMANDS).

Each is a :class:`typing.TypedDict`: at run time the reply's ``result``
object as decoded (a plain dict, so ``r["seq"]`` works), for type checkers
the keys and types the protocol documents.
"""
from __future__ import annotations

from typing import Dict, List, Optional, TypedDict

__all__ = [
    "EmptyResult", "HelloResult", "PingResult", "SessionIdResult", "Listener",
    "GetsocknameResult", "ClientInfo", "ListClientsResult", "EventsResult",
    "PluginCountResult", "PluginInfo", "PluginListResult", "PluginOrderResult",
    "GroupMember", "GroupInfo", "ListGroupsResult",
]


class EmptyResult(TypedDict):
    """``{}``: send_to_client, send_file, disconnect, send_event, shutdown,
    verdict."""


class _HelloRequired(TypedDict):
    controller: int
    name: str
    lossy: bool


class HelloResult(_HelloRequired, total=False):
    """hello: this controller's id, name and lossy mode; its group, for a
    member of one (the only key that may be missing)."""
    group: str


class PingResult(TypedDict):
    """ping: a new sequence number (a barrier for earlier events)."""
    seq: int


class SessionIdResult(TypedDict):
    """session_id: random hex, fixed for the server's life."""
    session_id: str


class Listener(TypedDict):
    """One listening socket (greeting, getsockname): ``tls`` for implicit
    TLS, ``proxy`` for a listener expecting a PROXY protocol header."""
    address: str
    port: int
    tls: bool
    proxy: bool


class GetsocknameResult(TypedDict):
    """getsockname: the listeners (empty once shutdown began)."""
    listeners: List[Listener]


class ClientInfo(TypedDict):
    """One connection in list_clients."""
    client: int
    peer: str
    peer_port: int
    local: str
    local_port: int
    state: Optional[str]
    tls: bool
    connected: int
    idle: int
    tag: int
    groups: Dict[str, int]


class ListClientsResult(TypedDict):
    """list_clients: every connection."""
    clients: List[ClientInfo]


class EventsResult(TypedDict):
    """register, unregister: every pattern now registered (full form)."""
    events: List[str]


class PluginCountResult(TypedDict):
    """plugin_add, plugin_del: the number of plugins in the pipeline."""
    plugins: int


class PluginInfo(TypedDict):
    """plugin_get, plugin_register, plugin_unregister: one plugin.
    ``controller`` and ``timeout_ms`` are None/absent for built-in and
    in-process plugins."""
    alias: str
    priority: int
    events: Dict[str, List[str]]
    controller: Optional[int]
    timeout_ms: Dict[str, int]


class PluginListResult(TypedDict):
    """plugin_list: every plugin, in pipeline order."""
    plugins: List[PluginInfo]


class PluginOrderResult(TypedDict):
    """plugin_order: the aliases, in pipeline order."""
    plugins: List[str]


class GroupMember(TypedDict):
    """One member of a controller group in list_groups."""
    controller: int
    name: str
    clients: int


class GroupInfo(TypedDict):
    """One controller group in list_groups: members in order of joining,
    the group's plugins in order of creation."""
    name: str
    members: List[GroupMember]
    plugins: List[str]


class ListGroupsResult(TypedDict):
    """list_groups: every group that has members, in order of creation."""
    groups: List[GroupInfo]
