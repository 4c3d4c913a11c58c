#!/usr/bin/env python3
"""End-to-end tests of the reference Maildir controller (python3 -m
pop3d.maildir) behind the real pop3d, downloaded with real POP3 clients:
curl, Python poplib (and a pipelined burst on a raw socket), Perl Net::POP3,
fetchmail, getmail6 and mpop (pipelining on and off).

Every client's messages must equal the fixture after the RFC's CRLF
normalisation; LIST/STAT sizes must equal the octets received; DELE+QUIT
removes exactly the deleted messages and a dropped connection none.

Debian packages: curl fetchmail getmail6 mpop perl (Net::POP3 is in perl's
core).  A client whose program is missing is skipped with the reason.
"""
import base64
import json
import os
import poplib
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYLIB = os.path.abspath(os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, PYLIB)

from harness import POP3D, WAIT, Client, Daemon, main  # noqa: E402

import pop3d  # noqa: E402
from pop3d.mailbox import normalize  # noqa: E402
from pop3d.passwd import set_user  # noqa: E402

RUN_TIMEOUT = 90  # seconds for one external client run
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


def big_message():
    """A 5 MB message: numbered lines, some starting with dots."""
    out = [b"From: big@example.org\n", b"To: alice@example.org\n",
           b"Subject: five megabytes\n", b"Message-ID: <big@fixture>\n", b"\n"]
    size = sum(len(x) for x in out)
    i = 0
    filler = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
    while size < 5 * 1024 * 1024:
        if i % 997 == 0:
            line = b"." + b"%08d" % i + b"\n"
        elif i % 1009 == 0:
            line = b"..\n"
        else:
            line = b"%08d " % i + filler[i % 13:] + b"\n"
        out.append(line)
        size += len(line)
        i += 1
    return b"".join(out)


# Maildir file name (in new/ or cur/), contents.  Delivery order = list order.
ALICE = [
    ("new/1700000001.M1P1.fixture",
     b"From: dots@example.org\nTo: alice@example.org\nSubject: dots\n"
     b"Message-ID: <dots@fixture>\n\n.\n..\n...\n.foo\n..bar\n. space\nend\n"),
    ("cur/1700000002.M2P1.fixture:2,S",
     b"From: crlf@example.org\r\nTo: alice@example.org\r\nSubject: crlf and cr\r\n"
     b"Message-ID: <crlf@fixture>\r\n\r\nline one\r\nline two\rline three\n.\r\nlast\r\n"),
    ("new/1700000003.M3P1.fixture",
     b"From: latin1@example.org\nTo: alice@example.org\nSubject: 8bit\n"
     b"Message-ID: <latin1@fixture>\nMIME-Version: 1.0\n"
     b"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n"
     b"D\xe9j\xe0 vu \xff\xfe\x80\n\xc3\x28 not UTF-8 \xe9t\xe9\n"),
    ("new/1700000004.M4P1.fixture",
     b"From: nonl@example.org\nTo: alice@example.org\nSubject: no final newline\n"
     b"Message-ID: <nonl@fixture>\n\nthe last line has no end"),
    ("cur/1700000005.M5P1.fixture:2,",
     None),  # the 5 MB message, made at start-up
    ("new/1700000006.M6P1.fixture",
     b"From: empty@example.org\nTo: alice@example.org\nSubject: empty body\n"
     b"Message-ID: <empty@fixture>\n\n"),
]
BOB = [("new/1700000100.M9P1.fixture",
        b"From: wendy@example.org\nTo: bob@example.org\nSubject: bob\n\nCan we fix it?\n.\n")]
BIG = big_message()
ALICE = [(n, BIG if d is None else d) for n, d in ALICE]


def uid_of(name):
    return os.path.basename(name).split(":", 1)[0]


def which(prog):
    return shutil.which(prog, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")


_USERS = None


def users_file_text():
    """The users file (scrypt hashes), made once."""
    global _USERS
    if _USERS is None:
        with tempfile.TemporaryDirectory() as t:
            p = os.path.join(t, "users")
            for u, pw in PASSWORDS.items():
                set_user(p, u, pw, apop_secret=pw)
            with open(p) as f:
                _USERS = f.read()
    return _USERS


class Proc:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, args, env=None, cwd=None):
        penv = dict(os.environ)
        penv["PYTHONPATH"] = PYLIB + (":" + penv["PYTHONPATH"] if penv.get("PYTHONPATH")
                                      else "")
        penv.update(env or {})
        self.lines = []
        self.lock = threading.Lock()
        # A test run from a background job inherits SIGINT ignored, and a
        # shell cannot trap a signal ignored on entry: give the child the
        # default disposition, as an interactive Ctrl-C would find it.
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=penv, cwd=cwd,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                   signal.SIG_DFL))
        self.err = []
        self.t1 = threading.Thread(target=self._read, args=(self.p.stdout, self.lines),
                                   daemon=True)
        self.t2 = threading.Thread(target=self._read, args=(self.p.stderr, self.err),
                                   daemon=True)
        self.t1.start()
        self.t2.start()

    def _read(self, f, out):
        for raw in f:
            with self.lock:
                out.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_line(self, pattern, timeout=WAIT, start=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
            if self.p.poll() is not None and not self.t1.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError("no line %r from %s; stderr:\n%s" % (
            pattern, self.p.args[:3], "\n".join(self.err)))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(WAIT)
        self.t1.join(WAIT)
        self.t2.join(WAIT)
        return self.p.returncode


class MaildirBase(unittest.TestCase):
    controller_args = ()
    daemon_args = ()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pop3d-maildir-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        os.chmod(self.tmp, 0o755)
        self.root = os.path.join(self.tmp, "mail")
        self.fixture = {}       # uid -> original bytes, alice
        self.order = []         # uids of alice in delivery order
        for user, msgs in (("alice", ALICE), ("bob", BOB)):
            for sub in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(self.root, user, sub))
            for name, data in msgs:
                with open(os.path.join(self.root, user, name), "wb") as f:
                    f.write(data)
                if user == "alice":
                    self.fixture[uid_of(name)] = data
                    self.order.append(uid_of(name))
        self.users = os.path.join(self.tmp, "users")
        with open(self.users, "w") as f:
            f.write(users_file_text())
        os.chmod(self.users, 0o600)
        self.d = Daemon(POP3D, args=["--no-greeting"] + list(self.daemon_args))
        self.addCleanup(self.d.stop)
        self.ctl = self.start_controller()

    def start_controller(self, extra=(), wait=True):
        c = Proc([sys.executable, "-m", "pop3d.maildir", "--socket", self.d.sock,
                  "--users", self.users, "--root", self.root, "--greeting",
                  "--hostname", "fixture.example",
                  "--responder-lock", os.path.join(self.tmp, "responder.lock"), "-v"]
                 + list(self.controller_args) + list(extra))
        self.addCleanup(c.stop)
        if wait:
            c.wait_line(r"^pop3d\.maildir: serving")
        return c

    # -- expectations ------------------------------------------------------
    def expected(self, i):
        """Normalised bytes of alice's message number i (1-based)."""
        return normalize(self.fixture[self.order[i - 1]])

    def expected_all(self):
        return sorted(normalize(d) for d in self.fixture.values())

    def files(self, user="alice"):
        """uid -> bytes of every message now in the Maildir."""
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(self.root, user, sub)
            for n in os.listdir(d):
                with open(os.path.join(d, n), "rb") as f:
                    out[uid_of(n)] = f.read()
        return out

    def assert_untouched(self):
        self.assertEqual(self.files(), self.fixture)

    def run_client(self, args, env=None, cwd=None, ok=(0,)):
        if args[0] == "curl":
            args = ["curl", "-m", "60"] + list(args[1:])
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=RUN_TIMEOUT, env=env, cwd=cwd)
        self.assertIn(r.returncode, ok, "%s failed (%d):\n%s\n%s" % (
            args[0], r.returncode, r.stdout.decode("utf-8", "replace")[-3000:],
            r.stderr.decode("utf-8", "replace")[-3000:]))
        return r

    def url(self, user="alice", path=""):
        return "pop3://%s:%s@127.0.0.1:%d/%s" % (user, PASSWORDS[user], self.d.port, path)

    def need(self, prog, package):
        if which(prog) is None:
            self.skipTest("%s not installed (Debian package %s)" % (prog, package))

    def poplib_login(self, user="alice"):
        m = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(m.close)
        m.user(user)
        m.pass_(PASSWORDS[user])
        return m

    def sizes_via_list(self):
        m = self.poplib_login()
        resp, lines, _ = m.list()
        m.quit()
        return {int(a): int(b) for a, b in (x.split() for x in lines)}


# ------------------------------------------------------------------------------
class Curl(MaildirBase):
    def setUp(self):
        self.need("curl", "curl")
        super().setUp()

    def test_list_retr_top(self):
        r = self.run_client(["curl", "-sS", self.url()])
        listing = [x.split() for x in r.stdout.decode().splitlines()]
        self.assertEqual(listing, [[str(i), str(len(self.expected(i)))]
                                   for i in range(1, len(self.order) + 1)])
        for i in range(1, len(self.order) + 1):
            r = self.run_client(["curl", "-sS", self.url(path=str(i))])
            self.assertEqual(r.stdout, self.expected(i), "message %d" % i)
        r = self.run_client(["curl", "-sS", "-X", "TOP 1 0", self.url()])
        self.assertEqual(r.stdout, normalize(self.fixture[self.order[0]], 0))
        r = self.run_client(["curl", "-sS", "-X", "TOP 2 2", self.url()])
        self.assertEqual(r.stdout, normalize(self.fixture[self.order[1]], 2))
        r = self.run_client(["curl", "-sS", "-X", "UIDL", self.url()])
        self.assertEqual([x.split()[1] for x in r.stdout.decode().splitlines()], self.order)
        self.assert_untouched()

    def test_auth_plain_with_initial_response(self):
        r = self.run_client(["curl", "-sS", "-v", "--sasl-ir", "--login-options",
                             "AUTH=PLAIN", self.url(path="1")])
        self.assertEqual(r.stdout, self.expected(1))
        tok = base64.b64encode(b"\0alice\0wonderland").decode()
        self.assertIn("> AUTH PLAIN %s" % tok, r.stderr.decode())

    def test_auth_plain_with_continuation(self):
        r = self.run_client(["curl", "-sS", "-v", "--login-options", "AUTH=PLAIN",
                             self.url(path="4")])
        self.assertEqual(r.stdout, self.expected(4))
        err = r.stderr.decode()
        self.assertRegex(err, r"> AUTH PLAIN\s*\n")
        self.assertRegex(err, r"< \+ ?\s*\n")
        # A wrong password: curl fails with a login error.
        r = self.run_client(["curl", "-sS", "--login-options", "AUTH=PLAIN",
                             "pop3://alice:nope@127.0.0.1:%d/1" % self.d.port], ok=(67,))

    def test_dele_via_curl(self):
        self.run_client(["curl", "-sS", "-X", "DELE", "-I", self.url(path="3")])
        files = self.files()
        self.assertNotIn(self.order[2], files)
        self.assertEqual(len(files), len(self.order) - 1)


class CurlTls(MaildirBase):
    """STLS (done by the core, offered by the controller) with curl."""

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="pop3d-cert-")
        cert, key = os.path.join(cls.certdir, "cert.pem"), os.path.join(cls.certdir, "key.pem")
        ok = which("openssl") and subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"], capture_output=True,
            timeout=60).returncode == 0
        cls.daemon_args = ("--tls-cert", cert, "--tls-key", key) if ok else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, True)

    def setUp(self):
        self.need("curl", "curl")
        if self.daemon_args is None:
            self.skipTest("openssl (Debian package openssl) cannot make a certificate")
        super().setUp()

    def test_stls_list_and_big_retr(self):
        r = self.run_client(["curl", "-sS", "-v", "--ssl-reqd", "-k", self.url()])
        self.assertIn("> STLS", r.stderr.decode())
        self.assertEqual(len(r.stdout.decode().splitlines()), len(self.order))
        r = self.run_client(["curl", "-sS", "--ssl-reqd", "-k", self.url(path="5")])
        self.assertEqual(r.stdout, self.expected(5))
        self.assert_untouched()


# ------------------------------------------------------------------------------
class Python(MaildirBase):
    def test_poplib_uidl_top_capa_sizes(self):
        m = self.poplib_login()
        caps = m.capa()
        for c in ("TOP", "UIDL", "RESP-CODES", "PIPELINING", "EXPIRE", "IMPLEMENTATION"):
            self.assertIn(c, caps)
        self.assertNotIn("USER", caps)        # TRANSACTION state list
        count, total = m.stat()
        self.assertEqual(count, len(self.order))
        resp, lines, _ = m.uidl()
        self.assertEqual([x.split()[1].decode() for x in lines], self.order)
        self.assertEqual(m.uidl(2).split()[2].decode(), self.order[1])
        received = 0
        for i in range(1, count + 1):
            resp, lines, _ = m.retr(i)
            got = b"".join(x + b"\r\n" for x in lines)
            self.assertEqual(got, self.expected(i), "message %d" % i)
            self.assertEqual(resp, b"+OK %d octets" % len(got))
            self.assertEqual(int(m.list(i).split()[2]), len(got))
            received += len(got)
        self.assertEqual(total, received)
        resp, lines, _ = m.top(3, 0)
        self.assertEqual(b"".join(x + b"\r\n" for x in lines),
                         normalize(self.fixture[self.order[2]], 0))
        resp, lines, _ = m.top(5, 3)
        self.assertEqual(b"".join(x + b"\r\n" for x in lines),
                         normalize(BIG, 3))
        m.quit()
        self.assert_untouched()

    def test_capa_before_login(self):
        m = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(m.close)
        self.assertRegex(m.getwelcome(), rb"<\d+\.\d+\.\d+@fixture\.example>$")
        caps = m.capa()
        self.assertIn("USER", caps)
        self.assertIn("AUTH-RESP-CODE", caps)
        self.assertEqual(caps["SASL"], ["PLAIN"])     # continuation: pop3d_auth_data
        self.assertEqual(caps["IMPLEMENTATION"], ["pop3d"])
        m.apop("alice", "wonderland")
        self.assertEqual(m.stat()[0], len(self.order))
        m.quit()

    def test_pipelined_burst_raw_socket(self):
        n = len(self.order)
        cmds = ["USER alice", "PASS wonderland", "STAT", "LIST", "UIDL"]
        cmds += ["RETR %d" % i for i in range(1, n + 1)]
        cmds += ["TOP 1 0", "DELE 2", "STAT", "RETR 2", "RSET", "LIST 2", "NOOP", "QUIT"]
        multi = {"LIST", "UIDL", "RETR", "TOP"}
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=WAIT)
        self.addCleanup(s.close)
        # The burst follows the greeting (RFC 1939: the server speaks first).
        data = bytearray()
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            self.assertTrue(chunk)
            data += chunk
        s.sendall("".join(c + "\r\n" for c in cmds).encode())
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        pos = 0

        def line():
            nonlocal pos
            end = data.index(b"\r\n", pos)
            out = bytes(data[pos:end])
            pos = end + 2
            return out
        self.assertTrue(line().startswith(b"+OK POP3 server ready <"))
        answers = []
        for c in cmds:
            status = line()
            body = None
            if status.startswith(b"+OK") and c.split()[0] in multi and len(c.split()) != (
                    2 if c.split()[0] in ("LIST", "UIDL") else 0):
                body = bytearray()
                while True:
                    x = line()
                    if x == b".":
                        break
                    body += (x[1:] if x.startswith(b".") else x) + b"\r\n"
                body = bytes(body)
            answers.append((c, status, body))
        self.assertEqual(pos, len(data))
        a = {}
        for c, st, b in answers:
            a.setdefault(c, (st, b))            # the first answer of each command
        sizes = [len(self.expected(i)) for i in range(1, n + 1)]
        self.assertEqual(a["STAT"][0], b"+OK %d %d" % (n, sum(sizes)))
        self.assertEqual(a["LIST"][1], b"".join(b"%d %d\r\n" % (i + 1, sz)
                                                for i, sz in enumerate(sizes)))
        self.assertEqual(a["UIDL"][1], "".join("%d %s\r\n" % (i + 1, u) for i, u in
                                               enumerate(self.order)).encode())
        for i in range(1, n + 1):
            st, body = [x for x in answers if x[0] == "RETR %d" % i][0][1:]
            self.assertEqual(st, b"+OK %d octets" % sizes[i - 1])
            self.assertEqual(body, self.expected(i))
        tail = answers[-8:]
        self.assertEqual([c for c, _, _ in tail], cmds[-8:])
        top, dele, stat, retr, rset, list2, noop, quit = [(st, b) for _, st, b in tail]
        self.assertEqual(top[1], normalize(self.fixture[self.order[0]], 0))
        self.assertEqual(dele[0], b"+OK message 2 deleted")
        self.assertEqual(stat[0], b"+OK %d %d" % (n - 1, sum(sizes) - sizes[1]))
        self.assertEqual(retr, (b"-ERR message 2 already deleted", None))
        self.assertEqual(rset[0], b"+OK maildrop has %d messages (%d octets)"
                         % (n, sum(sizes)))
        self.assertEqual(list2[0], b"+OK 2 %d" % sizes[1])
        self.assertEqual(noop[0], b"+OK")
        self.assertEqual(quit[0], b"+OK POP3 server signing off (%d messages left)" % n)
        self.assert_untouched()          # RSET undid the DELE

    def test_dele_quit_removes_exactly_the_deleted(self):
        m = self.poplib_login()
        m.dele(2)
        m.dele(5)
        self.assertEqual(self.files(), self.fixture)     # nothing before QUIT
        m.quit()
        left = self.files()
        want = {u: d for u, d in self.fixture.items() if u not in (self.order[1],
                                                                   self.order[4])}
        self.assertEqual(left, want)
        self.assertEqual(self.files("bob"), {uid_of(BOB[0][0]): BOB[0][1]})
        m = self.poplib_login()
        self.assertEqual([x.split()[1].decode() for x in m.uidl()[1]],
                         [u for u in self.order if u in want])
        m.quit()

    def test_dropped_connection_removes_none(self):
        p = Client(self.d.port)
        self.addCleanup(p.close)
        p.cmd("USER alice")
        self.assertTrue(p.cmd("PASS wonderland").startswith("+OK"))
        self.assertEqual(p.cmd("DELE 1"), "+OK message 1 deleted")
        self.assertEqual(p.cmd("DELE 3"), "+OK message 3 deleted")
        p.close()                               # no QUIT: no UPDATE state
        # The maildrop lock is released once the drop is seen.
        deadline = time.monotonic() + WAIT
        while True:
            q = Client(self.d.port)
            self.addCleanup(q.close)
            q.cmd("USER alice")
            r = q.cmd("PASS wonderland")
            if r.startswith("+OK"):
                break
            self.assertTrue(r.startswith("-ERR [IN-USE]"), r)
            self.assertLess(time.monotonic(), deadline)
            q.close()
            time.sleep(0.05)
        self.assertEqual(q.cmd("STAT").split()[1], str(len(self.order)))
        self.assertTrue(q.cmd("QUIT").startswith("+OK"))
        self.assert_untouched()

    def test_in_use_and_auth_codes(self):
        m = self.poplib_login()
        m2 = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(m2.close)
        m2.user("alice")
        with self.assertRaises(poplib.error_proto) as cm:
            m2.pass_("wonderland")
        self.assertTrue(cm.exception.args[0].startswith(b"-ERR [IN-USE]"))
        m2.user("alice")
        with self.assertRaises(poplib.error_proto) as cm:
            m2.pass_("wrong")
        wrong = cm.exception.args[0]
        m2.user("mallory")
        with self.assertRaises(poplib.error_proto) as cm:
            m2.pass_("wonderland")
        self.assertEqual(cm.exception.args[0], wrong)
        self.assertTrue(wrong.startswith(b"-ERR [AUTH]"))
        m.quit()
        m2.user("alice")
        m2.pass_("wonderland")
        m2.quit()

    def test_new_user_from_passwd_cli(self):
        r = subprocess.run([sys.executable, "-m", "pop3d.passwd", self.users, "carol",
                            "s3cret"], env=dict(os.environ, PYTHONPATH=PYLIB),
                           capture_output=True, timeout=RUN_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.users) as f:
            line = [x for x in f if x.startswith("carol:")][0]
        self.assertRegex(line, r"^carol:scrypt\$n=16384,r=8,p=1\$[A-Za-z0-9+/]+\$"
                               r"[A-Za-z0-9+/]+$")
        m = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(m.close)
        m.user("carol")
        self.assertTrue(m.pass_("s3cret").startswith(b"+OK maildrop has 0 messages"))
        m.quit()


class Trash(MaildirBase):
    controller_args = ("--trash",)

    def test_deleted_messages_move_to_trash(self):
        m = self.poplib_login()
        m.dele(1)
        m.quit()
        trash = os.path.join(self.root, "alice", ".Trash", "cur")
        self.assertEqual(os.listdir(trash), [os.path.basename(ALICE[0][0])])
        self.assertNotIn(self.order[0], self.files())
        m = self.poplib_login()
        self.assertEqual(m.stat()[0], len(self.order) - 1)   # .Trash is not listed
        m.quit()


# ------------------------------------------------------------------------------
SECRET = b"root:x:0:0:secret outside the maildrop:/root:/bin/sh\n"


def unblock_fifo(path):
    """Open a FIFO for writing without blocking, then close it: a reader
    stuck in open() (an old pop3d) gets EOF and the test can end."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


class Hostile(MaildirBase):
    """A maildrop owner swaps messages, directories and the lock file for
    FIFOs and symlinks: nothing outside is served, nothing blocks."""

    def setUp(self):
        super().setUp()
        self.outside = os.path.join(self.tmp, "outside")
        os.mkdir(self.outside)
        self.secret = os.path.join(self.outside, "passwd")
        with open(self.secret, "wb") as f:
            f.write(SECRET)
        self.alice = os.path.join(self.root, "alice")

    def mkfifo(self, path):
        os.mkfifo(path)
        self.addCleanup(unblock_fifo, path)

    def login(self, user="alice", timeout=WAIT):
        m = poplib.POP3("127.0.0.1", self.d.port, timeout=timeout)
        self.addCleanup(m.close)
        m.user(user)
        m.pass_(PASSWORDS[user])
        return m

    def wait_err(self, text):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with self.ctl.lock:
                if any(text in x for x in self.ctl.err):
                    return
            time.sleep(0.02)
        self.fail("no log line %r from the controller:\n%s" % (text, "\n".join(self.ctl.err)))

    def retr(self, m, i):
        resp, lines, _ = m.retr(i)
        return b"".join(x + b"\r\n" for x in lines)

    def test_fifo_and_symlink_entries_are_not_listed(self):
        self.mkfifo(os.path.join(self.alice, "new", "1700000007.M7P1.fifo"))
        os.symlink(self.secret, os.path.join(self.alice, "cur", "1700000008.M8P1.link:2,S"))
        os.symlink(os.path.join(self.outside, "missing"),
                   os.path.join(self.alice, "new", "1700000009.M9P1.dangling"))
        os.mkdir(os.path.join(self.alice, "new", "1700000010.M10P1.dir"))
        m = self.login()
        self.assertEqual(m.stat()[0], len(self.order))
        resp, lines, _ = m.uidl()
        self.assertEqual([x.split()[1].decode() for x in lines], self.order)
        for i in range(1, len(self.order) + 1):
            self.assertNotIn(b"secret outside", self.retr(m, i))
        m.quit()
        self.wait_err("skipped new/1700000007.M7P1.fifo: not a regular file")

    def test_messages_swapped_after_login(self):
        m = self.login(timeout=WAIT)
        n = len(self.order)
        self.assertEqual(m.stat()[0], n)
        # Message 1 becomes a FIFO, message 2 a symlink to a file outside.
        first = os.path.join(self.root, "alice", ALICE[0][0])
        second = os.path.join(self.root, "alice", ALICE[1][0])
        os.unlink(first)
        self.mkfifo(first)
        os.unlink(second)
        os.symlink(self.secret, second)
        t0 = time.monotonic()
        for cmd in ("RETR 1", "TOP 1 0", "RETR 2", "TOP 2 5"):
            with self.assertRaises(poplib.error_proto, msg=cmd) as cm:
                m._longcmd(cmd)
            self.assertTrue(str(cm.exception).startswith("b'-ERR"), (cmd, cm.exception))
            self.assertNotIn("secret", str(cm.exception))
        self.assertLess(time.monotonic() - t0, WAIT)
        # The session goes on, and so does everybody else's.
        self.assertEqual(m.noop(), b"+OK")
        self.assertEqual(self.retr(m, 3), self.expected(3))
        b = self.login("bob")
        self.assertEqual(self.retr(b, 1), normalize(BOB[0][1]))
        b.quit()
        m.dele(2)
        self.assertTrue(m.quit().startswith(b"+OK"))
        # The symlink itself was removed, never its target.
        self.assertFalse(os.path.lexists(second))
        with open(self.secret, "rb") as f:
            self.assertEqual(f.read(), SECRET)
        self.wait_err("refused cur/1700000002.M2P1.fixture:2,S: symlink")

    def test_directory_symlinks_are_refused(self):
        # cur/ becomes a symlink to a directory holding a "message" outside.
        os.makedirs(os.path.join(self.outside, "cur"))
        with open(os.path.join(self.outside, "cur", "1700000050.M50P1.x"), "wb") as f:
            f.write(SECRET)
        cur = os.path.join(self.alice, "cur")
        shutil.rmtree(cur)
        os.symlink(os.path.join(self.outside, "cur"), cur)
        m = self.login()
        uids = [x.split()[1].decode() for x in m.uidl()[1]]
        self.assertEqual(uids, [u for u, (name, _) in zip(self.order, ALICE)
                                if name.startswith("new/")])
        m.quit()
        # bob's whole maildrop a symlink (to alice's): login refused.
        bob = os.path.join(self.root, "bob")
        shutil.rmtree(bob)
        os.symlink(self.alice, bob)
        c = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(c.close)
        c.user("bob")
        with self.assertRaises(poplib.error_proto) as cm:
            c.pass_(PASSWORDS["bob"])
        self.assertIn(b"[SYS/TEMP]", cm.exception.args[0])
        self.assertEqual(os.listdir(os.path.join(self.outside, "cur")), ["1700000050.M50P1.x"])

    def test_lock_file_symlink_is_not_followed(self):
        lock = os.path.join(self.alice, ".pop3d.lock")
        victim = os.path.join(self.outside, "created-through-symlink")
        for target in (victim, self.secret):    # dangling, then an existing file
            os.symlink(target, lock)
            c = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
            self.addCleanup(c.close)
            c.user("alice")
            with self.assertRaises(poplib.error_proto) as cm:
                c.pass_(PASSWORDS["alice"])
            self.assertIn(b"[SYS/TEMP]", cm.exception.args[0])
            self.assertFalse(os.path.lexists(victim))
            self.assertTrue(os.path.islink(lock))
            c.quit()
            os.unlink(lock)
        # A FIFO there does not block either.
        self.mkfifo(lock)
        c = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(c.close)
        c.user("alice")
        with self.assertRaises(poplib.error_proto):
            c.pass_(PASSWORDS["alice"])
        # Once the owner cleans up, the maildrop works again (0600, created).
        os.unlink(lock)
        m = self.login()
        self.assertEqual(m.stat()[0], len(self.order))
        st = os.lstat(lock)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        m.quit()
        with open(self.secret, "rb") as f:
            self.assertEqual(f.read(), SECRET)


    def test_responder_lock_symlink_is_refused(self):
        victim = os.path.join(self.outside, "victim")
        link = os.path.join(self.tmp, "evil.lock")
        os.symlink(victim, link)
        c = self.start_controller(["--responder-lock", link, "--name", "second"], wait=False)
        self.assertEqual(c.p.wait(WAIT), 1)
        c.stop()
        self.assertIn("responder lock %s: a symlink" % link, "\n".join(c.err))
        self.assertFalse(os.path.lexists(victim))

    def test_responder_lock_squatted_is_refused(self):
        # A lock file another user created first (squatting) is refused.
        if os.geteuid() != 0:
            self.skipTest("needs root to make a file of another user")
        squat = os.path.join(self.tmp, "squat.lock")
        with open(squat, "w"):
            pass
        os.chown(squat, 65534, 65534)
        c = self.start_controller(["--responder-lock", squat, "--name", "third"], wait=False)
        self.assertEqual(c.p.wait(WAIT), 1)
        c.stop()
        self.assertIn("responder lock %s: not a regular file of user" % squat,
                      "\n".join(c.err))


class HostileTrash(Hostile):
    controller_args = ("--trash",)

    def dele_first(self):
        m = self.login()
        m.dele(1)
        with self.assertRaises(poplib.error_proto) as cm:
            m.quit()
        self.assertIn(b"[SYS/TEMP]", cm.exception.args[0])

    def test_trash_symlink_is_refused(self):
        for sub in ("cur", "new", "tmp"):
            os.mkdir(os.path.join(self.outside, sub))
        os.symlink(self.outside, os.path.join(self.alice, ".Trash"))
        self.dele_first()
        self.assert_untouched()
        self.assertEqual(os.listdir(os.path.join(self.outside, "cur")), [])

    def test_trash_cur_symlink_is_refused(self):
        trash = os.path.join(self.alice, ".Trash")
        os.makedirs(os.path.join(trash, "new"))
        os.makedirs(os.path.join(trash, "tmp"))
        os.symlink(self.outside, os.path.join(trash, "cur"))
        self.dele_first()
        self.assert_untouched()
        self.assertEqual(sorted(os.listdir(self.outside)), ["passwd"])


class HostileSendFileRoot(Hostile):
    """The same, with pop3d confined to the Maildir root (the deployment
    docs/deployment.md recommends)."""

    @property
    def daemon_args(self):
        return ("--send-file-root", self.root)

    def test_messages_are_served_from_the_root(self):
        m = self.login()
        for i in range(1, len(self.order) + 1):
            self.assertEqual(self.retr(m, i), self.expected(i))
        m.quit()


# ------------------------------------------------------------------------------
class LoginCost(unittest.TestCase):
    """Every failed login derives the same hashes as a wrong password
    (counted through the injectable derive hook, not by the clock)."""

    def setUp(self):
        from pop3d import passwd
        self.passwd = passwd
        self.tmp = tempfile.mkdtemp(prefix="pop3d-cost-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        os.mkdir(os.path.join(self.tmp, "mail"))
        cheap_first = passwd.hash_password(b"first", "pbkdf2-sha256", {"i": 1000})
        scrypt_a = passwd.hash_password(b"wonderland", "scrypt", {"n": 1024, "r": 8, "p": 1})
        pbkdf2_b = passwd.hash_password(b"builder", "pbkdf2-sha256", {"i": 3000})
        lines = [
            "first:" + cheap_first,                 # the first line: the cheapest
            "alice:" + scrypt_a,
            "bob:" + pbkdf2_b,
            "disabled:!" + scrypt_a,
            "star:*",
            "malformed:scrypt$n=abc$AAAA$AAAA",
            "fields:scrypt$n=1024,r=8,p=1$AAAA",
            "badb64:scrypt$n=1024,r=8,p=1$!!$AAAA",
            "scheme:md5$i=1000$AAAA$AAAA",
            "extra:pbkdf2-sha256$i=1000,x=1$AAAA$AAAA",
            "huge:scrypt$n=1073741824,r=8,p=1$AAAA$AAAA",
            "tiny:pbkdf2-sha256$i=1$AAAA$AAAA",
            "empty:",
        ]
        self.users = os.path.join(self.tmp, "users")
        with open(self.users, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.calls = []

        def derive(scheme, params, salt, password):
            self.calls.append((scheme, tuple(sorted(params.items()))))
            return passwd._derive(scheme, params, salt, password)
        from pop3d.maildir import MaildirBackend
        with self.assertLogs("pop3d.maildir", "WARNING") as logs:
            self.b = MaildirBackend(self.users, os.path.join(self.tmp, "mail"), derive=derive)
        bad = sorted(re.search(r"user (\w+) has a malformed hash", x).group(1)
                     for x in logs.output if "malformed" in x)
        self.assertEqual(bad, sorted(["malformed", "fields", "badb64", "scheme", "extra",
                                      "huge", "tiny", "empty"]))
        self.assertIn("3 hash parameter sets", "\n".join(logs.output))

    def attempt(self, user, password):
        del self.calls[:]
        ok = self.b.authenticate(user, password)
        return ok, list(self.calls)

    def test_every_outcome_costs_the_same(self):
        ok, ref = self.attempt("alice", b"wrong")
        self.assertFalse(ok)
        want = [("pbkdf2-sha256", (("i", 1000),)), ("pbkdf2-sha256", (("i", 3000),)),
                ("scrypt", (("n", 1024), ("p", 1), ("r", 8)))]
        self.assertEqual(ref, want)
        for user, pw in (("bob", b"wrong"), ("first", b"wrong"), ("nobody", b"wonderland"),
                         ("../etc", b"x"), ("", b""), ("disabled", b"wonderland"),
                         ("star", b"x"), ("malformed", b"x"), ("fields", b"x"),
                         ("badb64", b"x"), ("scheme", b"x"), ("extra", b"x"),
                         ("huge", b"x"), ("tiny", b"x"), ("empty", b""),
                         ("alice", b"wonderland\0"), ("alice", b"x" * 4096)):
            ok, calls = self.attempt(user, pw)
            self.assertFalse(ok, user)
            self.assertEqual(calls, want, user)
        for user, pw in (("alice", b"wonderland"), ("bob", b"builder"), ("first", b"first")):
            ok, calls = self.attempt(user, pw)
            self.assertTrue(ok, user)
            self.assertEqual(calls, want, user)

    def test_reload_follows_the_file(self):
        with open(self.users, "w") as f:
            f.write("solo:%s\n" % self.passwd.hash_password(b"pw", "scrypt",
                                                             {"n": 2048, "r": 4, "p": 1}))
        os.utime(self.users, ns=(1, 1))
        with self.assertLogs("pop3d.maildir", "INFO"):
            self.b.authenticate("solo", b"reload")
        ok, calls = self.attempt("nobody", b"pw")
        self.assertFalse(ok)
        self.assertEqual(calls, [("scrypt", (("n", 2048), ("p", 1), ("r", 4)))])
        ok, calls = self.attempt("solo", b"pw")
        self.assertTrue(ok)
        self.assertEqual(calls, [("scrypt", (("n", 2048), ("p", 1), ("r", 4)))])


# ------------------------------------------------------------------------------
PERL_SCRIPT = r'''
use strict;
use warnings;
use Net::POP3;
my ($port, $user, $pw, $dir, $mode) = @ARGV;
my $p = Net::POP3->new("127.0.0.1", Port => $port, Timeout => 60)
    or die "connect: $@";
my $n = $mode eq "apop" ? $p->apop($user, $pw) : $p->login($user, $pw);
defined $n or die "login failed: " . $p->message;
my $list = $p->list or die "list";
my $uidl = $p->uidl or die "uidl";
my ($count, $size) = $p->popstat;
open my $idx, '>', "$dir/index" or die;
print $idx "stat $count $size\n";
for my $i (sort { $a <=> $b } keys %$list) {
    open my $fh, '>:raw', "$dir/$i" or die;
    $p->get($i, $fh) or die "get $i";
    close $fh or die;
    print $idx "$i $list->{$i} $uidl->{$i}\n";
}
$p->quit or die "quit";
'''


class Perl(MaildirBase):
    def setUp(self):
        self.need("perl", "perl")
        if subprocess.run(["perl", "-MNet::POP3", "-e1"], capture_output=True).returncode:
            self.skipTest("Net::POP3 missing (Debian package perl / libnet-perl)")
        super().setUp()

    def fetch(self, mode):
        out = os.path.join(self.tmp, "perl-" + mode)
        os.mkdir(out)
        script = os.path.join(self.tmp, "get.pl")
        with open(script, "w") as f:
            f.write(PERL_SCRIPT)
        self.run_client(["perl", script, str(self.d.port), "alice", "wonderland", out, mode])
        with open(os.path.join(out, "index")) as f:
            idx = [x.split() for x in f]
        n = len(self.order)
        sizes = [len(self.expected(i)) for i in range(1, n + 1)]
        self.assertEqual(idx[0], ["stat", str(n), str(sum(sizes))])
        for i in range(1, n + 1):
            self.assertEqual(idx[i], [str(i), str(sizes[i - 1]), self.order[i - 1]])
            with open(os.path.join(out, str(i)), "rb") as f:
                self.assertEqual(normalize(f.read()), self.expected(i), "message %d" % i)
        self.assert_untouched()

    def test_net_pop3_login(self):
        self.fetch("login")

    def test_net_pop3_apop(self):
        self.fetch("apop")


class Fetchmail(MaildirBase):
    def setUp(self):
        self.need("fetchmail", "fetchmail")
        super().setUp()

    def test_fetchmail(self):
        out = os.path.join(self.tmp, "fetchmail")
        home = os.path.join(self.tmp, "fmhome")
        os.mkdir(out)
        os.mkdir(home)
        mda = os.path.join(self.tmp, "mda.sh")
        with open(mda, "w") as f:
            f.write('#!/bin/sh\nexec cat > "%s/$(date +%%s%%N).$$"\n' % out)
        os.chmod(mda, 0o755)
        rc = os.path.join(home, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('set no bouncemail\n'
                    'poll 127.0.0.1 port %d proto pop3 auth password\n'
                    '  user "alice" there password "wonderland" is root here\n'
                    '  sslproto "" keep fetchall no rewrite\n'
                    '  mda "%s"\n' % (self.d.port, mda))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=home)
        self.run_client(["fetchmail", "-f", rc, "--invisible", "--nosyslog", "-N",
                         "--pidfile", os.path.join(home, "pid"), "-v"], env=env, cwd=home)
        got = []
        for n in os.listdir(out):
            with open(os.path.join(out, n), "rb") as f:
                got.append(normalize(f.read()))
        self.assertEqual(sorted(got), self.expected_all())
        self.assert_untouched()


class Getmail(MaildirBase):
    def setUp(self):
        self.need("getmail", "getmail6")
        super().setUp()

    def test_getmail(self):
        gdir = os.path.join(self.tmp, "getmail")
        dest = os.path.join(gdir, "Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(dest, sub))
        os.chmod(gdir, 0o755)
        user_line = ""
        if os.geteuid() == 0:
            # getmail6 refuses to deliver to a Maildir as root: its docs
            # require "user" on the destination, so deliver as nobody.
            user_line = "user = nobody\n"
            import pwd
            nobody = pwd.getpwnam("nobody")
            for d, _, files in os.walk(dest):
                os.chown(d, nobody.pw_uid, nobody.pw_gid)
        rc = os.path.join(gdir, "getmailrc")
        with open(rc, "w") as f:
            f.write("[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\n"
                    "port = %d\nusername = alice\npassword = wonderland\n\n"
                    "[destination]\ntype = Maildir\npath = %s/\n%s\n"
                    "[options]\nread_all = true\ndelete = false\ndelivered_to = false\n"
                    "received = false\nverbose = 1\n" % (self.d.port, dest, user_line))
        self.run_client(["getmail", "--getmaildir=" + gdir, "--rcfile=" + rc])
        got = []
        for n in os.listdir(os.path.join(dest, "new")):
            with open(os.path.join(dest, "new", n), "rb") as f:
                data = f.read()
            # The Maildir destination always records the envelope sender
            # (unknown for POP3) in a Return-Path line of its own.
            self.assertTrue(data.startswith(b"Return-Path: <unknown>\n"), data[:80])
            got.append(normalize(data[len(b"Return-Path: <unknown>\n"):]))
        self.assertEqual(sorted(got), self.expected_all())
        self.assert_untouched()


class Mpop(MaildirBase):
    def setUp(self):
        self.need("mpop", "mpop")
        super().setUp()

    def fetch(self, pipelining):
        work = os.path.join(self.tmp, "mpop-" + pipelining)
        dest = os.path.join(work, "Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(dest, sub))
        self.run_client(["mpop", "--host=127.0.0.1", "--port=%d" % self.d.port,
                         "--tls=off", "--auth=user", "--user=alice",
                         "--passwordeval=echo wonderland",
                         "--delivery=maildir," + dest, "--keep=on", "--only-new=off",
                         "--pipelining=" + pipelining, "--received-header=off",
                         "--uidls-file=" + os.path.join(work, "uidls")],
                        env=dict(os.environ, HOME=work), cwd=work)
        got = []
        for n in os.listdir(os.path.join(dest, "new")):
            with open(os.path.join(dest, "new", n), "rb") as f:
                got.append(normalize(f.read()))
        self.assertEqual(sorted(got), self.expected_all())
        with open(os.path.join(work, "uidls")) as f:
            uids = [x.strip() for x in f if x.strip() and not x.startswith(("#", " "))]
        self.assertEqual(sorted(uids), sorted(self.order))
        self.assert_untouched()

    def test_mpop_pipelining_on(self):
        self.fetch("on")

    def test_mpop_pipelining_off(self):
        self.fetch("off")

    def test_mpop_deletes_exactly_what_it_fetched(self):
        work = os.path.join(self.tmp, "mpop-del")
        dest = os.path.join(work, "Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(dest, sub))
        self.run_client(["mpop", "--host=127.0.0.1", "--port=%d" % self.d.port,
                         "--tls=off", "--auth=user", "--user=bob",
                         "--passwordeval=echo builder", "--delivery=maildir," + dest,
                         "--keep=off", "--only-new=off", "--received-header=off",
                         "--uidls-file=" + os.path.join(work, "uidls")],
                        env=dict(os.environ, HOME=work), cwd=work)
        self.assertEqual(self.files("bob"), {})
        self.assertEqual(len(os.listdir(os.path.join(dest, "new"))), 1)
        self.assert_untouched()            # alice's maildrop is not affected


# ------------------------------------------------------------------------------
class SideBySide(MaildirBase):
    def test_watch_sees_every_event_while_first_serves(self):
        w = Proc([sys.executable, "-m", "pop3d.watch", "--socket", self.d.sock])
        self.addCleanup(w.stop)
        w.wait_line(r'"type": "watching"')
        m = self.poplib_login()
        m.stat()
        m.list()
        m.retr(1)
        m.quit()
        w.wait_line(r'"event": "pop3d_disconnected"')
        events = [json.loads(x) for x in w.lines[1:]]
        events = [e for e in events if e.get("client")]
        names = [e["event"] for e in events]
        self.assertEqual(names, ["pop3d_connection", "pop3d_cmd_user", "pop3d_cmd_pass",
                                 "pop3d_cmd_stat", "pop3d_cmd_list", "pop3d_cmd_retr",
                                 "pop3d_cmd_quit", "pop3d_disconnected"])
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual([e.get("tag") for e in events[1:-1]], list(range(1, 7)))
        self.assertEqual(events[2]["args"][1], "****")     # the password is masked
        self.assertEqual(events[-2]["state"], "transaction")
        self.assert_untouched()

    def test_standby_instance_takes_over(self):
        second = self.start_controller(wait=False)
        time.sleep(0.3)
        self.assertFalse(any("serving" in x for x in second.lines))
        m = self.poplib_login()
        self.assertEqual(m.stat()[0], len(self.order))
        m.quit()
        old = Client(self.d.port)             # logged in by the first instance
        self.addCleanup(old.close)
        old.cmd("USER bob")
        self.assertTrue(old.cmd("PASS builder").startswith("+OK"))
        self.assertEqual(self.ctl.stop(), 0)
        second.wait_line(r"^pop3d\.maildir: serving")
        # The new responder has no state for that session: it says so.
        self.assertEqual(old.cmd("STAT"), "-ERR [SYS/TEMP] session state lost, please "
                                          "reconnect")
        self.assertTrue(old.closed())
        self.assertEqual(self.files("bob"), {uid_of(BOB[0][0]): BOB[0][1]})
        m = self.poplib_login()
        self.assertEqual(m.stat()[0], len(self.order))
        resp, lines, _ = m.retr(4)
        self.assertEqual(b"".join(x + b"\r\n" for x in lines), self.expected(4))
        m.quit()


class PipelineDepth8(MaildirBase):
    """The service under pop3d --pipeline-depth 8: the same answers."""
    daemon_args = ("--pipeline-depth", "8")
    test_pipelined_burst_raw_socket = Python.test_pipelined_burst_raw_socket
    test_dele_quit_removes_exactly_the_deleted = \
        Python.test_dele_quit_removes_exactly_the_deleted


class MpopDepth8(Mpop):
    daemon_args = ("--pipeline-depth", "8")


class TwoServices(MaildirBase):
    """Two pop3d, each with its own maildir service process, over one root:
    the maildrop lock (flock on USER/.pop3d.lock) holds across the
    processes, is released at QUIT, and by the kernel when a service dies."""

    def second(self):
        d2 = Daemon(POP3D, args=["--no-greeting"] + list(self.daemon_args))
        self.addCleanup(d2.stop)
        c = Proc([sys.executable, "-m", "pop3d.maildir", "--socket", d2.sock,
                  "--users", self.users, "--root", self.root, "--greeting",
                  "--responder-lock", os.path.join(self.tmp, "responder2.lock"), "-v"])
        self.addCleanup(c.stop)
        c.wait_line(r"^pop3d\.maildir: serving")
        return d2

    def login(self, port, user="alice"):
        p = Client(port)
        self.addCleanup(p.close)
        self.assertEqual(p.cmd("USER " + user), "+OK send PASS")
        return p, p.cmd("PASS " + PASSWORDS[user])

    def test_lock_across_processes_quit_and_kill(self):
        d2 = self.second()
        a, r = self.login(self.d.port)
        self.assertTrue(r.startswith("+OK maildrop has"), r)
        b, r = self.login(d2.port)
        self.assertEqual(r, "-ERR [IN-USE] maildrop already locked by another session")
        _, r = self.login(d2.port, "bob")           # another maildrop: free
        self.assertTrue(r.startswith("+OK"), r)
        self.assertTrue(a.cmd("QUIT").startswith("+OK POP3 server signing off"))
        self.assertEqual(b.cmd("USER alice"), "+OK send PASS")
        r = b.cmd("PASS " + PASSWORDS["alice"])
        self.assertTrue(r.startswith("+OK maildrop has"), r)   # released at QUIT
        _, r = self.login(self.d.port)
        self.assertTrue(r.startswith("-ERR [IN-USE]"), r)      # the other way round
        self.assertTrue(b.cmd("QUIT").startswith("+OK"))
        # A service killed with a session open: the kernel drops its lock.
        a, r = self.login(self.d.port)
        self.assertTrue(r.startswith("+OK maildrop has"), r)
        _, r = self.login(d2.port)
        self.assertTrue(r.startswith("-ERR [IN-USE]"), r)
        self.ctl.p.kill()
        self.ctl.p.wait(WAIT)
        c, r = self.login(d2.port)
        self.assertTrue(r.startswith("+OK maildrop has"), r)
        self.assertEqual(c.cmd("STAT").split()[1], str(len(self.order)))
        self.assertTrue(c.cmd("QUIT").startswith("+OK"))
        self.assert_untouched()


# ------------------------------------------------------------------------------
class WorkersMixin:
    """The service as --workers 2: two member processes of one controller
    group under a supervisor, every client bound to one of them."""
    controller_args = ("--workers", "2")

    def start_controller(self, extra=(), wait=True):
        c = MaildirBase.start_controller(self, extra, wait=False)
        if wait:
            # Three interpreters start one after another (the supervisor,
            # then its workers).
            deadline = time.monotonic() + 3 * WAIT
            while True:
                with c.lock:
                    n = sum(x.count("pop3d.maildir: serving") for x in c.lines)
                if n >= 2:
                    break
                self.assertLess(time.monotonic(), deadline, "workers not serving:\n%s"
                                % "\n".join(c.err))
                time.sleep(0.02)
        return c

    def control(self):
        k = pop3d.Client(self.d.sock)
        self.addCleanup(k.close)
        return k

    def members(self):
        """controller id -> name of every member of group maildir."""
        groups = {g["name"]: g for g in self.control().list_groups()["groups"]}
        return {m["controller"]: m["name"] for m in groups["maildir"]["members"]}

    def bound(self):
        """client id -> the member of group maildir it is bound to."""
        return {r["client"]: r.get("groups", {}).get("maildir")
                for r in self.control().list_clients()["clients"]}


class WorkersPython(WorkersMixin, Python):
    """Every poplib test of the service, through --workers 2."""


class WorkersCurl(WorkersMixin, Curl):
    """Every curl test of the service, through --workers 2."""


class WorkersMpop(WorkersMixin, Mpop):
    """Every mpop test of the service, through --workers 2."""


class Workers(WorkersMixin, MaildirBase):
    """What only --workers shows: the spread, the lock across the workers,
    a worker killed mid-session and started again."""

    def raw(self):
        p = Client(self.d.port)
        self.addCleanup(p.close)
        self.assertTrue(p.greeting.startswith("+OK"), p.greeting)
        return p

    def test_clients_spread_evenly(self):
        members = self.members()
        self.assertEqual(len(members), 2, members)
        self.assertEqual(sorted(members.values()), ["maildir.1", "maildir.2"])
        clients = [self.raw() for _ in range(6)]
        for p in clients:
            self.assertEqual(p.cmd("USER bob"), "+OK send PASS")   # by its member
        split = {}
        for cid, member in self.bound().items():
            split[member] = split.get(member, 0) + 1
        self.assertEqual(sorted(split), sorted(members))
        self.assertEqual(sorted(split.values()), [3, 3])

    def test_one_maildrop_one_session_across_workers(self):
        a, b = self.raw(), self.raw()
        bound = self.bound()
        self.assertEqual(len(set(bound.values())), 2, bound)   # one on each worker
        self.assertEqual(a.cmd("USER alice"), "+OK send PASS")
        self.assertTrue(a.cmd("PASS " + PASSWORDS["alice"]).startswith("+OK maildrop has"))
        self.assertEqual(b.cmd("USER alice"), "+OK send PASS")
        self.assertEqual(b.cmd("PASS " + PASSWORDS["alice"]),
                         "-ERR [IN-USE] maildrop already locked by another session")
        self.assertTrue(a.cmd("QUIT").startswith("+OK"))
        c = self.raw()
        self.assertEqual(c.cmd("USER alice"), "+OK send PASS")
        self.assertTrue(c.cmd("PASS " + PASSWORDS["alice"]).startswith("+OK maildrop has"))
        self.assertTrue(c.cmd("QUIT").startswith("+OK"))
        self.assert_untouched()

    def test_worker_killed_mid_session(self):
        members = self.members()
        a, b = self.raw(), self.raw()
        bound = self.bound()
        ids = sorted(bound)
        self.assertEqual(len(set(bound.values())), 2, bound)
        self.assertEqual(a.cmd("USER alice"), "+OK send PASS")
        self.assertTrue(a.cmd("PASS " + PASSWORDS["alice"]).startswith("+OK maildrop has"))
        self.assertEqual(b.cmd("USER bob"), "+OK send PASS")
        self.assertTrue(b.cmd("PASS " + PASSWORDS["bob"]).startswith("+OK maildrop has"))
        # Kill the worker that holds alice's session (and her lock).
        victim = bound[ids[0]]
        os.kill(self.worker_pid(members[victim]), signal.SIGKILL)
        # Its client is closed: at once when nothing was in flight, or after
        # -ERR [SYS/TEMP] for a command that reached the gone member.
        try:
            r = a.cmd("STAT")
        except (EOFError, OSError):
            r = ""
        self.assertTrue(r == "" or r.startswith("-ERR [SYS/TEMP]"), r)
        with self.assertRaises((EOFError, OSError)):
            a.line(timeout=WAIT)
        # The other worker's session goes on untouched.
        self.assertTrue(b.cmd("STAT").startswith("+OK"))
        # New clients are served, alice's lock died with the worker, and the
        # supervisor starts the worker again.
        c = self.raw()
        self.assertEqual(c.cmd("USER alice"), "+OK send PASS")
        self.assertTrue(c.cmd("PASS " + PASSWORDS["alice"]).startswith("+OK maildrop has"))
        self.assertTrue(c.cmd("QUIT").startswith("+OK"))
        self.assertTrue(b.cmd("QUIT").startswith("+OK"))
        deadline = time.monotonic() + WAIT
        while len(self.members()) < 2:
            self.assertLess(time.monotonic(), deadline, "worker not started again")
            time.sleep(0.1)
        self.assert_untouched()

    def worker_pid(self, name):
        """The pid of the worker process named name (from its command line)."""
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"pop3d.maildir" in argv and name.encode() in argv and \
                    self.d.sock.encode() in argv:
                return int(d)
        self.fail("no worker process %s" % name)


# ------------------------------------------------------------------------------
class Demo(unittest.TestCase):
    """demo/run.sh serves a copy of demo/ and stops everything on Ctrl-C."""

    def test_run_sh(self):
        if which("curl") is None:
            self.skipTest("curl not installed (Debian package curl)")
        demo = os.path.abspath(os.path.join(HERE, "..", "..", "demo"))
        before = {}
        for d, _, files in os.walk(demo):
            for n in files:
                with open(os.path.join(d, n), "rb") as f:
                    before[os.path.join(d, n)] = f.read()
        tmp = tempfile.mkdtemp(prefix="pop3d-demo-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        sock = os.path.join(tmp, "pop3d.sock")
        p = Proc(["sh", os.path.join(demo, "run.sh")], cwd=tmp,
                 env={"POP3D": POP3D, "POP3D_PORT": str(port), "POP3D_SOCK": sock,
                      "PYTHON": sys.executable})
        self.addCleanup(p.stop)
        p.wait_line(r"curl pop3://alice:wonderland@127\.0\.0\.1:%d/1" % port)
        # run.sh prints this once the controller serves: no retry needed.
        r = subprocess.run(["curl", "-sS", "-m", "20",
                            "pop3://alice:wonderland@127.0.0.1:%d/1" % port],
                           capture_output=True, timeout=RUN_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        first = sorted(os.listdir(os.path.join(demo, "maildir", "alice", "new")))[0]
        with open(os.path.join(demo, "maildir", "alice", "new", first), "rb") as f:
            self.assertEqual(r.stdout, normalize(f.read()))
        r = subprocess.run(["curl", "-sS", "-m", "20", "-X", "DELE", "-I",
                            "pop3://bob:builder@127.0.0.1:%d/1" % port],
                           capture_output=True, timeout=RUN_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        p.p.send_signal(signal.SIGINT)               # Ctrl-C
        self.assertIsNotNone(p.p.wait(WAIT))
        p.wait_line(r"^demo stopped")
        self.assertFalse(os.path.exists(sock))
        after = {}
        for d, _, files in os.walk(demo):
            for n in files:
                with open(os.path.join(d, n), "rb") as f:
                    after[os.path.join(d, n)] = f.read()
        self.assertEqual(after, before)             # the demo tree is never modified
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True).stdout.decode()
        self.assertNotIn(sock, ps)                   # pop3d and the controller are gone


if __name__ == "__main__":
    main()
