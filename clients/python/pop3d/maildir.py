"""Reference controller: serve each user's Maildir over pop3d.

    python3 -m pop3d.maildir --socket PATH --users FILE --root DIR
                             [--greeting] [--trash] [--hostname NAME]
                             [--responder-lock PATH] [--name NAME] [-v]

* Users: FILE as written by ``python3 -m pop3d.passwd`` (scrypt or
  PBKDF2 hashes).  The file is re-read when it changes.  Every login
  check, failed or not, derives one hash per distinct parameter set of the
  file (see ``pop3d.passwd``): unknown users, disabled and malformed
  entries cost the same as a wrong password.
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
* Symlinks, FIFOs (the maildrop's owner controls its contents; pop3d and
  this controller read with their own privileges): ``DIR/USER``, ``new/``,
  ``cur/``, ``.Trash`` and its subdirectories must be real directories
  (opened O_DIRECTORY|O_NOFOLLOW); message files are opened relative to
  their directory's fd with O_NOFOLLOW|O_NONBLOCK and must be regular
  files (fstat).  A symlink, FIFO, device or socket in ``new/`` or
  ``cur/`` is not listed; one that replaces a message during a session
  makes RETR/TOP of it ``-ERR`` (the session goes on); a symlinked
  ``new/`` or ``cur/`` is skipped, a symlinked ``DIR/USER`` or lock file
  refuses the login (``-ERR [SYS/TEMP]``), a symlinked ``.Trash`` refuses
  the ``--trash`` QUIT (nothing moves).  Each refusal is logged.  The lock
  file is created O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, and must have one
  link.  ``--trash`` renames between directory fds.  pop3d opens the path
  again itself (O_NOFOLLOW, regular files only): run it with
  ``--send-file-root DIR`` so that no symlink anywhere below DIR is
  followed between this controller's check and pop3d's open.
* APOP: only with ``--greeting`` (pop3d must run with ``--no-greeting``;
  this controller sends ``+OK POP3 server ready <pid.time.client@host>``),
  and only for users whose line stores an APOP secret.
* Several instances may run side by side on one socket: each first takes
  ``--responder-lock`` (default: the socket path + ``.responder.lock``)
  and only the holder registers for the POP3 commands; the others wait on
  standby and take over when it exits.  Keep the socket (and so this lock)
  in a private directory such as ``/run/pop3d/``, never ``/tmp``: the lock
  file is opened O_NOFOLLOW and must be a regular file owned by this
  user.  For a read-only view of every
  event, use ``python3 -m pop3d.watch``.
* Pipelining: every answer is sent by the tag of the command it answers,
  so pop3d may run with ``--pipeline-depth N`` (up to 64; 8 is a good
  value): a client's pipelined commands then reach this controller at
  once, and their answers leave together, in command order.  Answers to
  the events read from one batch are written with one send.
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
import stat
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from .client import Client
from .mailbox import Backend, MailboxServer, Message, safe_uid
from .passwd import USER_RE, PasswordChecker, UserEntry, load_users, parse_hash
from .protocol import Pop3dError

__all__ = ["MaildirBackend", "main"]

log = logging.getLogger("pop3d.maildir")

_LEADING = re.compile(r"^(\d+)")


def _order(name: str) -> Tuple[int, str]:
    m = _LEADING.match(name)
    return (int(m.group(1)) if m else 0, name)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_LOCK_NAME = ".pop3d.lock"


def open_dir(name: str, dir_fd: Optional[int] = None) -> int:
    """Open a real directory (not a symlink to one): O_DIRECTORY|O_NOFOLLOW."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _make_dir(name: str, dir_fd: int) -> int:
    """Create directory ``name`` (mode 0700) if missing; open it, no symlink."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass
    return open_dir(name, dir_fd)


def open_regular(name: str, dir_fd: Optional[int] = None) -> int:
    """Open a regular file for reading without following a symlink and
    without blocking (a FIFO), then check it with fstat.  Raises OSError
    (ELOOP for a symlink, EINVAL for a FIFO, device, socket, directory)."""
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
    except BaseException:
        os.close(fd)
        raise
    return fd


class _Fds:
    """Directory fds opened along a walk, closed together."""

    def __init__(self) -> None:
        self.fds: List[int] = []

    def add(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def __enter__(self) -> "_Fds":
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in reversed(self.fds):
            os.close(fd)


class MaildirBackend(Backend):
    """A :class:`pop3d.mailbox.Backend` over ``root/USER`` Maildirs.

    Nothing inside a maildrop is trusted: every directory below ``root``
    is opened with O_DIRECTORY|O_NOFOLLOW and every file relative to its
    directory's fd, with O_NOFOLLOW|O_NONBLOCK and an fstat check for a
    regular file.  A symlink, FIFO, device or socket in ``new/`` or
    ``cur/`` is skipped (logged); ``USER/``, ``new/``, ``cur/``, ``.Trash``
    and its subdirectories that are symlinks are refused.  ``derive``: the
    hash function of :class:`pop3d.passwd.PasswordChecker` (for tests).
    """

    def __init__(self, users_file: str, root: str, trash: bool = False,
                 derive: Optional[Callable[[str, Dict[str, int], bytes, bytes], bytes]] = None):
        super().__init__()
        self.users_file = users_file
        self.root = os.path.abspath(root)
        self.trash = trash
        self._derive = derive
        self._users: Dict[str, UserEntry] = {}
        self._users_key: Optional[Tuple[int, int, int]] = None
        self.checker = PasswordChecker([], derive)
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
        for e in users.values():
            if parse_hash(e.hash) is None and e.hash[:1] not in ("!", "*"):
                log.warning("users file %s: user %s has a malformed hash (cannot log in)",
                            self.users_file, e.user)
        checker = PasswordChecker((e.hash for e in users.values()), self._derive)
        if len(checker.costs) > 1:
            log.warning("users file %s: %d hash parameter sets; every login computes %d "
                        "hashes (rehash with python3 -m pop3d.passwd)", self.users_file,
                        len(checker.costs), len(checker.costs))
        self._users = users
        self.checker = checker
        self._users_key = key
        log.info("loaded %d users from %s", len(users), self.users_file)

    def _entry(self, user: str) -> Optional[UserEntry]:
        self._reload()
        if not USER_RE.match(user):
            return None
        return self._users.get(user)

    def authenticate(self, user: str, password: bytes) -> bool:
        """True when ``password`` matches the users file's hash of ``user``
        (the file is re-read first when it changed).  Same hash work for
        unknown users, disabled and malformed entries."""
        e = self._entry(user)
        # Unknown users, disabled and malformed entries cost the same as a
        # wrong password (see pop3d.passwd.PasswordChecker).
        return self.checker.verify(e.hash if e is not None else None, password)

    def apop_secret(self, user: str) -> Optional[bytes]:
        """The ``apop=`` secret of ``user`` in the users file, or None."""
        e = self._entry(user)
        return e.apop if e is not None else None

    # -- maildrops ---------------------------------------------------------------
    def maildir(self, user: str) -> str:
        """The path ``root/USER``; OSError(EINVAL) for a bad user name."""
        if not USER_RE.match(user):
            raise OSError(errno.EINVAL, "bad user name")
        return os.path.join(self.root, user)

    def _open_user(self, fds: _Fds, user: str, create: bool = False) -> int:
        """fd of ``root/USER`` (a real directory; created with ``create``)."""
        self.maildir(user)          # checks the name
        root = fds.add(os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        try:
            return fds.add(_make_dir(user, root) if create else open_dir(user, root))
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                log.warning("user=%s refused: %s is not a directory (symlink?)", user,
                            self.maildir(user))
            raise

    def _open_sub(self, fds: _Fds, user: str, ufd: int, sub: str) -> Optional[int]:
        """fd of ``USER/sub``; None when missing or not a real directory."""
        try:
            return fds.add(open_dir(sub, ufd))
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("user=%s skipped %s/: %s", user, sub,
                        "not a directory (symlink?)" if e.errno in (errno.ELOOP,
                                                                    errno.ENOTDIR) else e)
            return None

    def _scan(self, user: str, fds: _Fds, ufd: int,
              log_skipped: bool = False) -> List[Tuple[str, str, int]]:
        """(subdir, file name, subdir fd) of every regular file in new/, cur/."""
        out = []
        for sub in ("new", "cur"):
            sfd = self._open_sub(fds, user, ufd, sub)
            if sfd is None:
                continue
            with os.scandir(sfd) as it:
                for ent in it:
                    n = ent.name
                    if n.startswith("."):
                        continue
                    try:
                        regular = ent.is_file(follow_symlinks=False)
                    except OSError:
                        regular = False
                    if not regular:
                        if log_skipped:
                            log.warning("user=%s skipped %s/%s: not a regular file", user,
                                        sub, safe_uid(n))
                        continue
                    out.append((sub, n, sfd))
        return out

    def list_messages(self, user: str) -> List[Message]:
        """The regular files of ``USER/new`` and ``USER/cur`` in delivery
        order (leading timestamp, then name), one per unique name, with the
        unique name as UIDL (``safe_uid``).  Creates ``root/USER`` if
        missing; OSError when it is not a real directory."""
        base = self.maildir(user)
        msgs = []
        seen = set()
        with _Fds() as fds:
            ufd = self._open_user(fds, user, create=True)
            for sub, name, _ in sorted(self._scan(user, fds, ufd, log_skipped=True),
                                       key=lambda x: _order(x[1])):
                uid = safe_uid(name.split(":", 1)[0])
                if uid in seen:         # the same message in new/ and cur/ (a race)
                    continue
                seen.add(uid)
                msgs.append(Message(uid=uid, path=os.path.join(base, sub, name),
                                    key=name.split(":", 1)[0]))
        return msgs

    def _locate(self, user: str, msg: Message, fds: _Fds,
                ufd: int) -> Optional[Tuple[str, str, int]]:
        """(subdir, name, subdir fd) where the message is now (another
        agent may have renamed it), or None."""
        sub = os.path.basename(os.path.dirname(msg.path))
        name = os.path.basename(msg.path)
        if sub in ("new", "cur"):
            sfd = self._open_sub(fds, user, ufd, sub)
            if sfd is not None:
                try:
                    os.stat(name, dir_fd=sfd, follow_symlinks=False)
                    return sub, name, sfd
                except FileNotFoundError:
                    pass
        for sub, name, sfd in self._scan(user, fds, ufd):
            if name.split(":", 1)[0] == msg.key:
                return sub, name, sfd
        return None

    def open_message(self, user: str, msg: Message) -> int:
        """An fd of the message, found again by its unique name if another
        agent renamed it (``msg.path`` updated), opened relative to its
        directory with O_NOFOLLOW|O_NONBLOCK; OSError when it is gone or
        not a regular file."""
        with _Fds() as fds:
            ufd = self._open_user(fds, user)
            loc = self._locate(user, msg, fds, ufd)
            if loc is None:
                raise FileNotFoundError(errno.ENOENT, "message gone", msg.path)
            sub, name, sfd = loc
            try:
                fd = open_regular(name, sfd)
            except OSError as e:
                log.warning("user=%s refused %s/%s: %s", user, sub, safe_uid(name),
                            "symlink" if e.errno == errno.ELOOP else e.strerror)
                raise
            msg.path = os.path.join(self.maildir(user), sub, name)
            return fd

    def message_path(self, user: str, msg: Message) -> str:
        """The message's current path for send_file, after checking (with
        :meth:`open_message`) that it is a regular file; OSError if not."""
        # Checked now (a regular file, no symlink); pop3d opens it again
        # with O_NOFOLLOW (and, with --send-file-root, no symlink anywhere).
        os.close(self.open_message(user, msg))
        return msg.path

    def delete_messages(self, user: str, msgs: List[Message]) -> None:
        """Unlink the messages (``trash``: rename them into
        ``USER/.Trash/cur``), between directory fds.  Messages already gone
        are skipped; OSError when some could not be removed or the trash
        folder is unusable (then nothing moves)."""
        failed = []
        with _Fds() as fds:
            ufd = self._open_user(fds, user)
            tcur = None
            if self.trash:
                try:
                    tfd = fds.add(_make_dir(".Trash", ufd))
                    for sub in ("new", "tmp"):
                        os.close(_make_dir(sub, tfd))
                    tcur = fds.add(_make_dir("cur", tfd))
                except OSError as e:
                    log.error("user=%s trash %s/.Trash refused (%s): nothing removed", user,
                              self.maildir(user), "symlink or not a directory"
                              if e.errno in (errno.ELOOP, errno.ENOTDIR) else e.strerror)
                    raise OSError(errno.EIO, "trash folder unusable")
            for m in msgs:
                loc = self._locate(user, m, fds, ufd)
                if loc is None:
                    continue        # already gone: removed by someone else
                sub, name, sfd = loc
                try:
                    if tcur is not None:
                        # Directory fds: a path component swapped for a
                        # symlink meanwhile cannot redirect the move.
                        os.rename(name, name, src_dir_fd=sfd, dst_dir_fd=tcur)
                    else:
                        os.unlink(name, dir_fd=sfd)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    log.error("user=%s cannot remove %s/%s: %s", user, sub, safe_uid(name),
                              e.strerror)
                    failed.append(m)
        if failed:
            raise OSError(errno.EIO, "%d messages not removed" % len(failed))

    # -- locking -------------------------------------------------------------------
    def _open_lock(self, user: str) -> int:
        """fd of ``USER/.pop3d.lock``: a regular file with one link, never
        a symlink (O_NOFOLLOW; created O_CREAT|O_EXCL, mode 0600)."""
        with _Fds() as fds:
            ufd = self._open_user(fds, user, create=True)
            for _ in range(5):
                try:
                    fd = os.open(_LOCK_NAME, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK |
                                 os.O_NOCTTY | os.O_CLOEXEC, dir_fd=ufd)
                except FileNotFoundError:
                    try:
                        fd = os.open(_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL |
                                     os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=ufd)
                    except FileExistsError:
                        continue        # created meanwhile: open that one
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    os.close(fd)
                    raise OSError(errno.EINVAL, "not a regular file with one link")
                return fd
            raise OSError(errno.EAGAIN, "lock file keeps changing")

    def lock(self, user: str) -> bool:
        """flock ``USER/.pop3d.lock`` (shared across processes); False when
        another session holds it, OSError when the lock file is unsafe."""
        try:
            fd = self._open_lock(user)
        except OSError as e:
            log.error("user=%s cannot open lock %s: %s", user,
                      os.path.join(self.maildir(user), _LOCK_NAME),
                      "a symlink" if e.errno == errno.ELOOP else e.strerror or e)
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        with self._guard:
            self._lock_fds[user] = fd
        return True

    def unlock(self, user: str) -> None:
        """Release the maildrop lock taken by :meth:`lock` (closes its fd)."""
        with self._guard:
            fd = self._lock_fds.pop(user, None)
        if fd is not None:
            os.close(fd)


def open_lock_file(path: str) -> int:
    """Open (or create, mode 0600) a lock file that is ours: never through a
    symlink (O_NOFOLLOW), never a FIFO (O_NONBLOCK), a regular file owned
    by this user (a file another user created first - squatting - is
    refused).  Raises OSError."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK |
                 os.O_NOCTTY | os.O_CLOEXEC, 0o600)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise OSError(errno.EPERM, "not a regular file of user %d" % os.geteuid(), path)
    return fd


def _responder_lock(path: str, client: Client) -> int:
    """Take the responder lock, waiting on standby while another holds it."""
    fd = open_lock_file(path)
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
    """``python3 -m pop3d.maildir``: parse ``argv``; then serve as one
    process (taking the responder lock unless a group member), or
    supervise ``--workers`` member processes; the exit status."""
    ap = argparse.ArgumentParser(
        prog="python3 -m pop3d.maildir",
        description="Serve Maildirs over a pop3d control socket.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Nothing inside a maildrop is followed: USER/, new/, cur/ and .Trash must\n"
        "be real directories; message files are opened O_NOFOLLOW|O_NONBLOCK and\n"
        "must be regular files (symlinks, FIFOs, devices are skipped or refused\n"
        "with -ERR, and logged); USER/.pop3d.lock is never a symlink (created\n"
        "O_EXCL|O_NOFOLLOW, 0600).  Run pop3d with --send-file-root DIR.  Keep\n"
        "the socket and --responder-lock in a private directory (/run/pop3d/),\n"
        "not /tmp.  Failed logins all cost the same hash work.  Answers go by\n"
        "tag, so pop3d may run with --pipeline-depth N (pipelined commands of a\n"
        "client are then answered together, in order).\n"
        "With --workers N, N processes join one controller group: pop3d binds\n"
        "each new client to one of them (the least busy), the maildrop lock\n"
        "(USER/.pop3d.lock, flock) holds across them, and a worker that dies\n"
        "takes only its own clients down ([SYS/TEMP]) and is started again.\n"
        "Example:\n"
        "  pop3d --control /run/pop3d/control.sock --send-file-root /srv/mail \\\n"
        "        --no-greeting --pipeline-depth 8\n"
        "  python3 -m pop3d.maildir --socket /run/pop3d/control.sock \\\n"
        "        --users /etc/pop3d/users --root /srv/mail --greeting")
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
    ap.add_argument("--workers", type=int, default=1, metavar="N",
                    help="run N member processes of one controller group (default 1: "
                    "one process, no group); pop3d spreads its clients over them")
    ap.add_argument("--group", help="join this controller group (default with --workers: "
                    "the --name); members share the work, so none takes the responder lock")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    a = ap.parse_args(argv)
    if not a.socket:
        ap.error("--socket is required (or set POP3D_CONTROL)")
    if not 1 <= a.workers <= WORKERS_MAX:
        ap.error("--workers must be 1 to %d" % WORKERS_MAX)
    if a.group is not None and not GROUP_RE.match(a.group):
        ap.error("--group: 1 to 63 characters of A-Z a-z 0-9 _ . -")
    logging.basicConfig(level=logging.DEBUG if a.verbose > 1 else
                        logging.INFO if a.verbose else logging.WARNING,
                        format="pop3d.maildir[%(process)d]: %(message)s", stream=sys.stderr)
    if a.workers > 1:
        return _supervise(a, list(sys.argv[1:] if argv is None else argv))
    return _serve(a)


#: Most member processes --workers starts (each holds a control connection).
WORKERS_MAX = 64
#: A group name as pop3d-control(7) allows it.
GROUP_RE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
#: A worker that exits is started again after this many seconds; one that
#: exits RESTART_BURST times within RESTART_WINDOW seconds is given up on
#: (a broken installation must not fork in a loop).
RESTART_DELAY = 1.0
RESTART_BURST = 5
RESTART_WINDOW = 60.0


def _serve(a: argparse.Namespace) -> int:
    """Serve as one controller process until pop3d goes away: a group
    member when ``a.group`` is set, else the (responder-locked) instance."""
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)

    backend = MaildirBackend(a.users, a.root, trash=a.trash)
    try:
        client = Client(a.socket, name=a.name, group=a.group)
    except (OSError, Pop3dError) as e:
        log.error("cannot connect to %s: %s", a.socket, e)
        return 1
    lock_fd = -1
    try:
        if a.group is None and (lock_fd := _take_responder_lock(a, client)) < 0:
            return 1
        server = MailboxServer(backend, client, greeting=a.greeting, hostname=a.hostname,
                               sasl=not a.no_sasl)
        server.register()
        log.info("serving %s for %s%s", a.root, a.socket,
                 " in group %s" % a.group if a.group else "")
        # One write(2): --workers' processes share this stdout, and an
        # unbuffered print (PYTHONUNBUFFERED) writes the text and its
        # newline separately, so two workers' lines could interleave.
        os.write(sys.stdout.fileno(), b"pop3d.maildir: serving\n")
        for ev in client.events():
            server.handle(ev)
    except Pop3dError as e:
        if e.code != "connection_closed":
            log.error("%s", e)
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
        client.close()
    return 0


def _take_responder_lock(a: argparse.Namespace, client: Client) -> int:
    """The responder lock's fd (waiting on standby), or -1 after logging why
    it cannot be taken."""
    rlock = a.responder_lock or a.socket + ".responder.lock"
    try:
        return _responder_lock(rlock, client)
    except OSError as e:
        log.error("responder lock %s: %s", rlock, "a symlink" if e.errno == errno.ELOOP
                  else e.strerror or e)
        return -1


def _worker_argv(argv: List[str], group: str, name: str) -> List[str]:
    """The command line of one member: ours, as one process of the group."""
    return [sys.executable, "-m", "pop3d.maildir"] + argv + [
        "--workers", "1", "--group", group, "--name", name]


def _supervise(a: argparse.Namespace, argv: List[str]) -> int:
    """Take the responder lock, run ``a.workers`` member processes of one
    group, start again one that exits, and stop them all when pop3d goes
    away or on SIGTERM/SIGINT; the exit status."""
    group = a.group or a.name
    stopping = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        client = Client(a.socket, name=a.name + ".supervisor")
    except (OSError, Pop3dError) as e:
        log.error("cannot connect to %s: %s", a.socket, e)
        return 1
    procs: Dict[int, subprocess.Popen] = {}
    exits: Dict[int, List[float]] = {}
    rc = 0
    try:
        try:
            if (lock_fd := _take_responder_lock(a, client)) < 0:
                return 1
        except Pop3dError:
            return 0
        # Children must not inherit the lock: it is the supervisor's.
        os.set_inheritable(lock_fd, False)
        log.info("supervising %d workers in group %s", a.workers, group)

        def start(i: int) -> None:
            procs[i] = subprocess.Popen(
                _worker_argv(argv, group, "%s.%d" % (a.name, i + 1)), close_fds=True)
        for i in range(a.workers):
            start(i)
        pending: Dict[int, float] = {}   # slot -> when to start it again
        while not stopping:
            try:
                client.next_event(timeout=0.2)   # pop3d going away ends us
            except Pop3dError:
                break
            now = time.monotonic()
            for i, p in list(procs.items()):
                if p.poll() is None:
                    continue
                del procs[i]
                recent = [t for t in exits.get(i, []) if now - t < RESTART_WINDOW] + [now]
                exits[i] = recent
                if len(recent) >= RESTART_BURST:
                    log.error("worker %d exited %d times in %.0f s (status %s): giving up",
                              i + 1, len(recent), RESTART_WINDOW, p.returncode)
                    rc = 1
                    stopping.append(0)
                    break
                log.warning("worker %d exited (status %s); starting it again in %.0f s",
                            i + 1, p.returncode, RESTART_DELAY)
                pending[i] = now + RESTART_DELAY
            for i, when in list(pending.items()):
                if now >= when and not stopping:
                    del pending[i]
                    start(i)
        os.close(lock_fd)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        client.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
