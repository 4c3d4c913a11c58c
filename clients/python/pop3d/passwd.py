"""Users file of the Maildir controller, and ``python3 -m pop3d.passwd``.

One user a line::

    user:scheme$params$salt$hash[:apop=SECRET_BASE64]

* ``scrypt$n=16384,r=8,p=1$SALT$HASH`` (hashlib.scrypt; the default), or
  ``pbkdf2-sha256$i=600000$SALT$HASH`` (hashlib.pbkdf2_hmac), SALT and HASH
  in base64 without padding.
* ``apop=...``: optional APOP shared secret, base64.  APOP (RFC 1939)
  needs the server to know the secret itself (it checks
  MD5(timestamp + secret)), so it cannot be a hash: only users whose line
  has one can use APOP, and the file must stay private (mode 0600).

Lines starting with ``#`` and blank lines are ignored.

* A hash starting with ``!`` or ``*`` is a disabled entry (the account
  cannot log in; ``!`` followed by the old hash keeps it for re-enabling).
* Parameters outside sane bounds (scrypt: n a power of 2 up to 2**20,
  r 1-64, p 1-16, 128*n*r up to 1 GiB; PBKDF2: 1000-10**7 iterations),
  unknown schemes and undecodable fields make an entry malformed: it
  cannot log in either.

Login timing (:class:`PasswordChecker`): every check, whatever its
outcome (unknown user, malformed or disabled entry, wrong or right
password), derives exactly one hash with each distinct (scheme,
parameters) set that valid entries of the file use, in the same order:
the user's own hash for its set, a dummy of the same cost for the others.
So the set and cost of the computations do not depend on the user name.
Keep one parameter set (rehash old entries with ``python3 -m
pop3d.passwd``): each extra set adds one hash to every login.

Usage::

    python3 -m pop3d.passwd FILE USER [PASSWORD] [--apop-secret S] [--scheme S]
    python3 -m pop3d.passwd FILE USER --delete

Without PASSWORD it is asked for (twice) on a terminal, or read as one
line from standard input.
"""
from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

__all__ = ["UserEntry", "hash_password", "verify_password", "load_users", "parse_line",
           "write_users", "set_user", "delete_user", "dummy_hash", "parse_hash",
           "PasswordChecker", "main"]

DEFAULT_SCHEME = "scrypt"
SCRYPT_PARAMS = {"n": 16384, "r": 8, "p": 1}
PBKDF2_ITERATIONS = 600000
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
SCRYPT_MAX_MEM = 1 << 30
PBKDF2_MIN_ITERATIONS = 1000
PBKDF2_MAX_ITERATIONS = 10 ** 7
_PARAM_NAMES = {"scrypt": ("n", "r", "p"), "pbkdf2-sha256": ("i",)}


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii").rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


@dataclass
class UserEntry:
    """One users-file entry."""
    user: str
    hash: str
    apop: Optional[bytes] = None

    def line(self) -> str:
        s = "%s:%s" % (self.user, self.hash)
        if self.apop is not None:
            s += ":apop=" + base64.b64encode(self.apop).decode("ascii")
        return s


def _params(text: str) -> Dict[str, int]:
    out = {}
    for kv in text.split(","):
        k, _, v = kv.partition("=")
        if k in out or not v.isdigit() or not v.isascii() or len(v) > 12:
            raise ValueError("bad hash parameters")
        out[k] = int(v)
    return out


def _check_params(scheme: str, params: Dict[str, int]) -> None:
    names = _PARAM_NAMES.get(scheme)
    if names is None:
        raise ValueError("unknown password scheme %r" % scheme)
    if sorted(params) != sorted(names):
        raise ValueError("%s needs parameters %s" % (scheme, ",".join(names)))
    if scheme == "scrypt":
        n, r, p = params["n"], params["r"], params["p"]
        if (n < 2 or n & (n - 1) or n > 1 << 20 or not 1 <= r <= 64 or not 1 <= p <= 16
                or 128 * n * r > SCRYPT_MAX_MEM):
            raise ValueError("scrypt parameters out of bounds")
    elif not PBKDF2_MIN_ITERATIONS <= params["i"] <= PBKDF2_MAX_ITERATIONS:
        raise ValueError("pbkdf2 iterations out of bounds")


def _derive(scheme: str, params: Dict[str, int], salt: bytes, password: bytes) -> bytes:
    if scheme == "scrypt":
        n, r, p = params["n"], params["r"], params["p"]
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32,
                              maxmem=max(64 << 20, 256 * n * r))
    if scheme == "pbkdf2-sha256":
        return hashlib.pbkdf2_hmac("sha256", password, salt, params["i"], dklen=32)
    raise ValueError("unknown password scheme %r" % scheme)


def hash_password(password: bytes, scheme: str = DEFAULT_SCHEME,
                  params: Optional[Dict[str, int]] = None, salt: Optional[bytes] = None) -> str:
    """Hash a password: ``scheme$params$salt$hash``."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    if params is None:
        params = dict(SCRYPT_PARAMS) if scheme == "scrypt" else {"i": PBKDF2_ITERATIONS}
    salt = salt if salt is not None else os.urandom(16)
    dk = _derive(scheme, params, salt, password)
    ptext = ",".join("%s=%d" % kv for kv in params.items())
    return "%s$%s$%s$%s" % (scheme, ptext, _b64(salt), _b64(dk))


def _split(h: str) -> Tuple[str, Dict[str, int], bytes, bytes]:
    scheme, ptext, salt, dk = h.split("$")
    params = _params(ptext)
    _check_params(scheme, params)
    return scheme, params, _unb64(salt), _unb64(dk)


def parse_hash(h: Optional[str]) -> Optional[Tuple[str, Dict[str, int], bytes, bytes]]:
    """(scheme, params, salt, hash) of a usable hash; None for a missing,
    disabled (``!...``, ``*...``) or malformed one."""
    if not h or h[0] in "!*":
        return None
    try:
        scheme, params, salt, dk = _split(h)
    except (ValueError, KeyError, TypeError):
        return None
    if not salt or not dk:
        return None
    return scheme, params, salt, dk


_Cost = Tuple[str, Tuple[Tuple[str, int], ...]]


def _cost(scheme: str, params: Dict[str, int]) -> _Cost:
    return scheme, tuple(sorted(params.items()))


class PasswordChecker:
    """Verify passwords of a users file at a cost independent of the user.

    ``hashes``: every hash of the file (valid or not).  Each :meth:`verify`
    derives one hash with each distinct (scheme, parameters) set of the
    valid ones, in a fixed order (the default scrypt set when there is
    none): the user's own for its set, a dummy for the rest.  ``derive``:
    the function computing a hash, ``derive(scheme, params, salt,
    password) -> bytes`` (tests inject a recorder).
    """

    def __init__(self, hashes: Iterable[Optional[str]],
                 derive: Optional[Callable[[str, Dict[str, int], bytes, bytes], bytes]] = None):
        self.derive = derive or _derive
        costs = set()
        for h in hashes:
            p = parse_hash(h)
            if p is not None:
                costs.add(_cost(p[0], p[1]))
        if not costs:
            costs.add(_cost(DEFAULT_SCHEME, SCRYPT_PARAMS))
        #: The parameter sets every verification computes, in order.
        self.costs: List[_Cost] = sorted(costs)
        self._dummies = {c: (os.urandom(16), os.urandom(32)) for c in self.costs}

    def verify(self, h: Optional[str], password: bytes) -> bool:
        """True when ``password`` matches hash ``h`` (None: unknown user)."""
        if isinstance(password, str):
            password = password.encode("utf-8")
        p = parse_hash(h)
        own = _cost(p[0], p[1]) if p is not None else None
        ok = False
        matched = False
        for c in self.costs:
            if c == own:
                assert p is not None
                got = self.derive(p[0], p[1], p[2], password)
                ok = hmac.compare_digest(got, p[3])
                matched = True
            else:
                salt, dk = self._dummies[c]
                got = self.derive(c[0], dict(c[1]), salt, password)
                hmac.compare_digest(got, dk)
        if p is not None and not matched:
            # A hash that is not from the file this checker was made for.
            ok = hmac.compare_digest(self.derive(p[0], p[1], p[2], password), p[3])
        # HMAC pads keys with zero octets: "pw" and "pw\0" derive the same.
        return ok and p is not None and b"\0" not in password


def dummy_hash(like: Optional[str] = None) -> str:
    """A hash nobody's password matches, costing the same as ``like``."""
    if like:
        try:
            scheme, params, _, _ = _split(like)
            return hash_password(os.urandom(16), scheme, params)
        except (ValueError, KeyError):
            pass
    return hash_password(os.urandom(16))


def verify_password(h: Optional[str], password: bytes, dummy: Optional[str] = None) -> bool:
    """Check ``password`` against hash ``h``.

    With ``h`` None (unknown user), disabled or malformed, the check runs
    against ``dummy`` (or a fresh dummy hash) and fails.  A users file
    with several parameter sets needs :class:`PasswordChecker` instead.
    """
    if isinstance(password, str):
        password = password.encode("utf-8")
    p = parse_hash(h)
    if p is None:
        # Unknown user, disabled or malformed entry: the same work, failed.
        p = parse_hash(dummy) or parse_hash(dummy_hash())
        assert p is not None
        _derive(p[0], p[1], p[2], password)
        return False
    scheme, params, salt, dk = p
    ok = hmac.compare_digest(_derive(scheme, params, salt, password), dk)
    # HMAC pads keys with zero octets: "pw" and "pw\0" derive the same.
    return ok and b"\0" not in password


def parse_line(line: str) -> Optional[UserEntry]:
    """One users-file line; None for blank and comment lines."""
    line = line.rstrip("\r\n")
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    fields = line.split(":")
    if len(fields) < 2 or not fields[0]:
        raise ValueError("bad users file line: %r" % line.split(":")[0])
    apop = None
    for extra in fields[2:]:
        if extra.startswith("apop="):
            apop = base64.b64decode(extra[5:], validate=True)
    return UserEntry(fields[0], fields[1], apop)


def load_users(path: str) -> Dict[str, UserEntry]:
    """Read a users file into {user: UserEntry}."""
    out: Dict[str, UserEntry] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            e = parse_line(line)
            if e is not None:
                out[e.user] = e
    return out


def write_users(path: str, entries: List[UserEntry]) -> None:
    """Write the file atomically (temp file + rename), mode 0600."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".users.", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for e in entries:
                f.write(e.line() + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_all(path: str) -> List[UserEntry]:
    if not os.path.exists(path):
        return []
    return list(load_users(path).values())


def set_user(path: str, user: str, password: str, apop_secret: Optional[str] = None,
             keep_apop: bool = True, scheme: str = DEFAULT_SCHEME) -> UserEntry:
    """Add or replace a user's entry."""
    if not USER_RE.match(user):
        raise ValueError("user names are 1-64 of A-Z a-z 0-9 . _ @ + - (not starting "
                         "with . or -)")
    entries = _read_all(path)
    old = {e.user: e for e in entries}.get(user)
    apop = apop_secret.encode("utf-8") if apop_secret is not None else (
        old.apop if old is not None and keep_apop else None)
    new = UserEntry(user, hash_password(password.encode("utf-8"), scheme), apop)
    entries = [e for e in entries if e.user != user] + [new]
    write_users(path, entries)
    return new


def delete_user(path: str, user: str) -> bool:
    entries = _read_all(path)
    kept = [e for e in entries if e.user != user]
    if len(kept) == len(entries):
        return False
    write_users(path, kept)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m pop3d.passwd",
                                 description="Add, change or delete a user of a pop3d "
                                 "Maildir users file.")
    ap.add_argument("file")
    ap.add_argument("user")
    ap.add_argument("password", nargs="?")
    ap.add_argument("--apop-secret", help="also store this APOP shared secret (cleartext)")
    ap.add_argument("--no-apop", action="store_true", help="drop the user's APOP secret")
    ap.add_argument("--scheme", choices=["scrypt", "pbkdf2-sha256"], default=DEFAULT_SCHEME)
    ap.add_argument("--delete", action="store_true", help="remove the user")
    a = ap.parse_args(argv)
    if a.delete:
        if not delete_user(a.file, a.user):
            print("%s: no user %s" % (a.file, a.user), file=sys.stderr)
            return 1
        return 0
    pw = a.password
    if pw is None:
        if sys.stdin.isatty():
            pw = getpass.getpass("Password for %s: " % a.user)
            if getpass.getpass("Again: ") != pw:
                print("passwords differ", file=sys.stderr)
                return 1
        else:
            pw = sys.stdin.readline().rstrip("\r\n")
    if not pw:
        print("empty password refused", file=sys.stderr)
        return 1
    try:
        set_user(a.file, a.user, pw, a.apop_secret, keep_apop=not a.no_apop, scheme=a.scheme)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
