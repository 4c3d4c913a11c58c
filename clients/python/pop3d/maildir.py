"""Reference controller: serve each user's Maildir over pop3d.

    python3 -m pop3d.maildir --socket PATH --users FILE --root DIR
                             [--greeting] [--trash] [--hostname NAME]
                             [--responder-lock PATH] [--name NAME] [-v]

* Users: FILE as written by ``python3 -m pop3d.passwd`` (scrypt or
  PBKDF2 hashes).  The file is re-read when it changes.
* Maildrop of USER: ``DIR/USER/`` with ``new/`` and ``cur/`` (``tmp/`` and
  dot files are ignored).  Messages are listed in delivery order (the
  leading timestamp of the Maildir name, then the name) when a session
  logs in; that list is fixed for the session.
* UIDL: the Maildir unique name, the part before ``:`` (flags are not part
  of it, so a message keeps its UIDL when another agent moves it from
  ``new/`` to ``cur/`` or changes its flags).  Names that are not valid
  UIDLs become a SHA-1 of the name.
* RETR/TOP: streamed by pop3d (send_file).  A message that another agent
  renamed meanwhile is found again by its unique name.
* QUIT in TRANSACTION removes exactly the messages marked deleted: each is
  unlinked (``--trash``: renamed atomically into ``DIR/USER/.Trash/cur/``,
  a Maildir++ trash folder).  A dropped connection removes nothing.
* Locking: one session per maildrop, with flock() on ``DIR/USER/.pop3d.lock``
  (so it also holds across controller processes): a second login gets
  ``-ERR [IN-USE]``.
* APOP: only with ``--greeting`` (pop3d must run with ``--no-greeting``;
  this controller sends ``+OK POP3 server ready <pid.time.client@host>``),
  and only for users whose line stores an APOP secret.
* Several instances may run side by side on one socket: each first takes
  ``--responder-lock`` (default: the socket path + ``.responder.lock``)
  and only the holder registers for the POP3 commands; the others wait on
  standby and take over when it exits.  For a read-only view of every
  event, use ``python3 -m pop3d.watch``.
* Once it serves, it prints ``pop3d.maildir: serving`` on standard output
  (scripts wait for that line); logs go to standard error.
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import logging
import os
import re
import signal
import sys
import threading
from typing import Dict, List, Optional, Tuple

from .client import Client
from .mailbox import Backend, MailboxServer, Message, safe_uid
from .passwd import USER_RE, UserEntry, dummy_hash, load_users, verify_password
from .protocol import Pop3dError

__all__ = ["MaildirBackend", "main"]

log = logging.getLogger("pop3d.maildir")

_LEADING = re.compile(r"^(\d+)")


def _order(name: str) -> Tuple[int, str]:
    m = _LEADING.match(name)
    return (int(m.group(1)) if m else 0, name)


class MaildirBackend(Backend):
    """A :class:`pop3d.mailbox.Backend` over ``root/USER`` Maildirs."""

    def __init__(self, users_file: str, root: str, trash: bool = False):
        super().__init__()
        self.users_file = users_file
        self.root = os.path.abspath(root)
        self.trash = trash
        self._users: Dict[str, UserEntry] = {}
        self._users_key: Optional[Tuple[int, int, int]] = None
        self._dummy: Optional[str] = None
        self._lock_fds: Dict[str, int] = {}
        self._guard = threading.Lock()
        self._reload()

    # -- users -------------------------------------------------------------------
    def _reload(self) -> None:
        try:
            st = os.stat(self.users_file)
        except OSError as e:
            log.error("users file %s: %s", self.users_file, e)
            return
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._users_key:
            return
        try:
            users = load_users(self.users_file)
        except (OSError, ValueError) as e:
            log.error("users file %s: %s", self.users_file, e)
            return
        self._users = users
        self._users_key = key
        first = next(iter(users.values()), None)
        self._dummy = dummy_hash(first.hash if first else None)
        log.info("loaded %d users from %s", len(users), self.users_file)

    def _entry(self, user: str) -> Optional[UserEntry]:
        self._reload()
        if not USER_RE.match(user):
            return None
        return self._users.get(user)

    def authenticate(self, user: str, password: bytes) -> bool:
        e = self._entry(user)
        # Unknown users are checked against a dummy hash of the same cost.
        return verify_password(e.hash if e else None, password, self._dummy)

    def apop_secret(self, user: str) -> Optional[bytes]:
        e = self._entry(user)
        return e.apop if e is not None else None

    # -- maildrops ---------------------------------------------------------------
    def maildir(self, user: str) -> str:
        if not USER_RE.match(user):
            raise OSError(errno.EINVAL, "bad user name")
        return os.path.join(self.root, user)

    def _scan(self, user: str) -> List[Tuple[str, str]]:
        """(subdir, file name) of every message in new/ and cur/."""
        base = self.maildir(user)
        out = []
        for sub in ("new", "cur"):
            try:
                names = os.listdir(os.path.join(base, sub))
            except FileNotFoundError:
                continue
            for n in names:
                if n.startswith("."):
                    continue
                out.append((sub, n))
        return out

    def list_messages(self, user: str) -> List[Message]:
        base = self.maildir(user)
        if not os.path.isdir(base):
            os.makedirs(base, 0o700, exist_ok=True)
        msgs = []
        seen = set()
        for sub, name in sorted(self._scan(user), key=lambda x: _order(x[1])):
            path = os.path.join(base, sub, name)
            try:
                if not os.path.isfile(path):
                    continue
            except OSError:
                continue
            uid = safe_uid(name.split(":", 1)[0])
            if uid in seen:         # the same message in new/ and cur/ (a race)
                continue
            seen.add(uid)
            msgs.append(Message(uid=uid, path=path, key=name.split(":", 1)[0]))
        return msgs

    def _find(self, user: str, msg: Message) -> Optional[str]:
        """The message's current path (it may have been renamed)."""
        if os.path.exists(msg.path):
            return msg.path
        base = self.maildir(user)
        for sub, name in self._scan(user):
            if name.split(":", 1)[0] == msg.key:
                return os.path.join(base, sub, name)
        return None

    def message_path(self, user: str, msg: Message) -> str:
        p = self._find(user, msg)
        if p is None:
            raise FileNotFoundError(errno.ENOENT, "message gone", msg.path)
        msg.path = p
        return p

    def delete_messages(self, user: str, msgs: List[Message]) -> None:
        failed = []
        trash = None
        if self.trash:
            trash = os.path.join(self.maildir(user), ".Trash")
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(trash, sub), 0o700, exist_ok=True)
        for m in msgs:
            p = self._find(user, m)
            if p is None:
                continue        # already gone: removed by someone else
            try:
                if trash is not None:
                    os.rename(p, os.path.join(trash, "cur", os.path.basename(p)))
                else:
                    os.unlink(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.error("user=%s cannot remove %s: %s", user, p, e)
                failed.append(m)
        if failed:
            raise OSError(errno.EIO, "%d messages not removed" % len(failed))

    # -- locking -------------------------------------------------------------------
    def lock(self, user: str) -> bool:
        try:
            base = self.maildir(user)
            os.makedirs(base, 0o700, exist_ok=True)
            fd = os.open(os.path.join(base, ".pop3d.lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            log.error("user=%s cannot open lock: %s", user, e)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        with self._guard:
            self._lock_fds[user] = fd
        return True

    def unlock(self, user: str) -> None:
        with self._guard:
            fd = self._lock_fds.pop(user, None)
        if fd is not None:
            os.close(fd)


def _responder_lock(path: str, client: Client) -> int:
    """Take the responder lock, waiting on standby while another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if not announced:
                log.info("standby: another instance holds %s", path)
                announced = True
        # Wait, but notice the server going away meanwhile.
        client.next_event(timeout=0.2)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m pop3d.maildir",
                                 description="Serve Maildirs over a pop3d control socket.")
    ap.add_argument("--socket", default=os.environ.get("POP3D_CONTROL"),
                    help="control socket (default $POP3D_CONTROL)")
    ap.add_argument("--users", required=True, help="users file (python3 -m pop3d.passwd)")
    ap.add_argument("--root", required=True, help="directory holding USER/ Maildirs")
    ap.add_argument("--greeting", action="store_true",
                    help="send the greeting with an APOP timestamp (pop3d --no-greeting)")
    ap.add_argument("--trash", action="store_true",
                    help="move deleted messages to USER/.Trash/cur instead of unlinking")
    ap.add_argument("--no-sasl", action="store_true", help="do not offer AUTH PLAIN")
    ap.add_argument("--hostname", help="host name in the APOP timestamp")
    ap.add_argument("--responder-lock", help="lock file electing the responding instance "
                    "(default: SOCKET.responder.lock)")
    ap.add_argument("--name", default="maildir", help="controller name in pop3d's logs")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    a = ap.parse_args(argv)
    if not a.socket:
        ap.error("--socket is required (or set POP3D_CONTROL)")
    logging.basicConfig(level=logging.DEBUG if a.verbose > 1 else
                        logging.INFO if a.verbose else logging.WARNING,
                        format="pop3d.maildir[%(process)d]: %(message)s", stream=sys.stderr)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)

    backend = MaildirBackend(a.users, a.root, trash=a.trash)
    try:
        client = Client(a.socket, name=a.name)
    except (OSError, Pop3dError) as e:
        log.error("cannot connect to %s: %s", a.socket, e)
        return 1
    try:
        lock_fd = _responder_lock(a.responder_lock or a.socket + ".responder.lock", client)
        server = MailboxServer(backend, client, greeting=a.greeting, hostname=a.hostname,
                               sasl=not a.no_sasl)
        server.register()
        log.info("serving %s for %s", a.root, a.socket)
        print("pop3d.maildir: serving", flush=True)
        for ev in client.events():
            server.handle(ev)
        os.close(lock_fd)
    except Pop3dError as e:
        if e.code != "connection_closed":
            log.error("%s", e)
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
