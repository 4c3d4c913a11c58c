"""Python client library for the pop3d control socket.

* :class:`Client` - blocking client; :class:`AsyncClient` - asyncio client;
  both built on :class:`pop3d.base.ClientCore` (same behaviour at EOF and
  on plugin handler errors).  Command results: :mod:`pop3d.results`.
* :class:`Event` / :class:`Hook` - what the server sends; ``ev.reply(...)``
  answers with the event's client and tag filled in.
* :class:`Pop3dError` - every error reply, with ``.code`` and ``.message``.
* :mod:`pop3d.mailbox` - a POP3 mailbox service helper (RFC 1939/2449/5034).
* ``python3 -m pop3d.maildir`` - the reference Maildir controller;
  ``python3 -m pop3d.passwd`` - its users-file tool;
  ``python3 -m pop3d.watch`` - a read-only event watcher.
"""
from .protocol import Event, Hook, Pop3dError, Protocol
from .client import Client
from .aio import AsyncClient

__version__ = "0.1.0"
__all__ = ["Client", "AsyncClient", "Event", "Hook", "Pop3dError", "Protocol", "__version__"]
