#!/usr/bin/env python3
"""Misbehaving peers (issue 13): answers in command order around STLS and
the failed-login delay, pipelined guesses throttled, QUIT after a delayed
-ERR, `lines` in an open response, send_file that never blocks.

Each test starts the real daemon on loopback with a private control socket
and a responder controller running in a thread; every wait is bounded."""
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import WAIT, Client, Controller, Daemon, main

TMP = tempfile.mkdtemp(prefix="pop3d-peers-")


def make_cert():
    cert, key = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=pop3d-peers"],
                       check=True, capture_output=True, timeout=60)
    return cert, key


class Responder(threading.Thread):
    """A controller answering commands in a thread.  answer(verb, arg, ev)
    returns a list of (cmd, kwargs) to send for the event (client and tag
    filled in), or None for the default: +OK <verb>."""

    def __init__(self, sock, events=("cmd_*",), answer=None):
        super().__init__(daemon=True)
        self.c = Controller(sock)
        self.c.ok("register", events=list(events))
        self.answer = answer or (lambda verb, arg, ev: None)
        self.seen = []          # (verb, arg) in order
        self.replies = {}       # id -> reply
        self.sent = []          # (cmd, id) in order
        self.lock = threading.Lock()
        self.wlock = threading.Lock()
        self.stopping = False
        self.start()

    def count(self, verb):
        with self.lock:
            return sum(1 for v, _ in self.seen if v == verb)

    def run(self):
        while not self.stopping:
            try:
                m = self.c.read(timeout=0.2)
            except TimeoutError:
                continue
            except (EOFError, OSError, ValueError):
                return
            if m.get("type") == "reply":
                with self.lock:
                    self.replies[m.get("id")] = m
                continue
            name = m.get("event", "")
            if not name.startswith("pop3d_cmd_"):
                continue
            verb = name[len("pop3d_cmd_"):]
            args = m.get("args", [])
            arg = args[1] if len(args) > 1 else None
            with self.lock:
                self.seen.append((verb, arg))
            todo = self.answer(verb, arg, m)
            if todo is None:
                todo = [("send_to_client", {"text": "+OK %s" % verb})]
            for i, (cmd, kw) in enumerate(todo):
                kw = dict(kw)
                kw.setdefault("client", m["client"])
                if i == 0 and cmd in ("send_to_client", "send_file"):
                    kw.setdefault("tag", m["tag"])
                self.send(cmd, **kw)

    def send(self, cmd, **kw):
        """Send a command from any thread; its reply lands in replies."""
        with self.wlock:
            rid = self.c.send(cmd, **kw)
        with self.lock:
            self.sent.append((cmd, rid))
        return rid

    def last_id(self, cmd):
        with self.lock:
            ids = [i for c, i in self.sent if c == cmd]
        return ids[-1] if ids else None

    def reply_for(self, rid, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if rid in self.replies:
                    return self.replies[rid]
            time.sleep(0.01)
        raise TimeoutError("no reply %d" % rid)

    def close(self):
        self.stopping = True
        self.join(2)
        self.c.close()


def auth_answer(verb, arg, ev):
    """PASS good logs in; any other password fails."""
    if verb == "pass":
        return [("send_to_client", {"text": "+OK logged in" if arg == "good" else
                                     "-ERR [AUTH] invalid credentials"})]
    return None


class PeersTest(unittest.TestCase):
    args = ()

    def setUp(self):
        self.d = Daemon(args=list(self.args))
        self.addCleanup(self.d.stop)

    def responder(self, **kw):
        r = Responder(self.d.sock, **kw)
        self.addCleanup(r.close)
        return r

    def client(self):
        c = Client(self.d.port)
        self.addCleanup(c.close)
        return c


class StlsOrder(PeersTest):
    """Defect 4: STLS is answered after every earlier answer, in order."""

    @classmethod
    def setUpClass(cls):
        cls.cert, cls.key = make_cert()

    def setUp(self):
        self.args = ("--tls-cert", self.cert, "--tls-key", self.key, "--auth-fail-delay", "1000")
        super().setUp()

    def test_stls_after_cleartext_login_is_refused_in_order(self):
        self.responder(answer=auth_answer)
        p = self.client()
        p.send("USER mallory\r\nPASS bad\r\nUSER mallory\r\nPASS good\r\nSTLS\r\n")
        got = [p.line(timeout=5) for _ in range(5)]
        self.assertEqual(got[0], "+OK user")
        self.assertEqual(got[1], "-ERR [AUTH] invalid credentials")
        self.assertEqual(got[2], "+OK user")
        self.assertEqual(got[3], "+OK logged in")
        self.assertTrue(got[4].startswith("-ERR"), got)
        self.assertEqual(p.cmd("NOOP"), "+OK noop")   # still cleartext

    def test_stls_after_delayed_error_then_tls(self):
        self.responder(answer=auth_answer)
        p = self.client()
        p.send("USER mallory\r\nPASS bad\r\nSTLS\r\n")
        self.assertEqual(p.line(timeout=5), "+OK user")
        t0 = time.monotonic()
        self.assertEqual(p.line(timeout=5), "-ERR [AUTH] invalid credentials")
        self.assertEqual(p.line(timeout=5), "+OK Begin TLS negotiation")
        self.assertGreater(time.monotonic() - t0, 0.5)
        self.assertEqual(p.buf, b"")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        p.s = ctx.wrap_socket(p.s)
        self.assertEqual(p.cmd("USER mallory"), "+OK user")
        self.assertEqual(p.cmd("PASS good"), "+OK logged in")


class AuthThrottle(PeersTest):
    """Defect 5: pipelined guesses are not parsed while an answer is held."""
    args = ("--auth-fail-delay", "200", "--max-auth-failures", "3")

    def test_pipelined_pass_lines_reach_the_back_end_three_times(self):
        r = self.responder(answer=auth_answer)
        p = self.client()
        self.assertEqual(p.cmd("USER x"), "+OK user")
        burst = b"PASS x\r\n" * 100000

        def blast():
            try:
                p.s.sendall(burst)
            except OSError:
                pass
        t = threading.Thread(target=blast, daemon=True)
        t.start()
        answers = []
        while True:
            try:
                answers.append(p.line(timeout=10))
            except EOFError:
                break
        t.join(10)
        # All three answers arrive, then the FIN: closing with our unread
        # lines in its buffer must not reset the connection before them.
        self.assertEqual(answers, ["-ERR [AUTH] invalid credentials"] * 3)
        time.sleep(0.3)
        self.assertEqual(r.count("pass"), 3)


class QuitAfterDelay(PeersTest):
    """Defect 6: QUIT behind a delayed -ERR is answered, then the close."""
    args = ("--auth-fail-delay", "500")

    def test_quit_answered_after_delayed_error(self):
        self.responder(answer=auth_answer, events=("cmd_user", "cmd_pass"))
        p = self.client()
        p.send("USER u\r\nPASS bad\r\nQUIT\r\n")
        self.assertEqual(p.line(timeout=5), "+OK user")
        self.assertEqual(p.line(timeout=5), "-ERR [AUTH] invalid credentials")
        self.assertTrue(p.line(timeout=5).startswith("+OK"))
        self.assertTrue(p.closed(timeout=5))

    def test_disconnect_text_after_delayed_error(self):
        """A controller's disconnect with a last line, while the -ERR is
        held: -ERR, the last line, then the close."""
        r = self.responder(answer=auth_answer, events=("cmd_user", "cmd_pass"))
        p = self.client()
        p.send("USER u\r\nPASS bad\r\n")
        self.assertEqual(p.line(timeout=5), "+OK user")
        deadline = time.monotonic() + 5
        while r.count("pass") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        ctl = Controller(self.d.sock)
        self.addCleanup(ctl.close)
        cid = ctl.ok("list_clients")["clients"][0]["client"]
        ctl.ok("disconnect", client=cid, text="-ERR [SYS/TEMP] bye")
        self.assertEqual(p.line(timeout=5), "-ERR [AUTH] invalid credentials")
        self.assertEqual(p.line(timeout=5), "-ERR [SYS/TEMP] bye")
        self.assertTrue(p.closed(timeout=5))


class CoreAuthAnswers(PeersTest):
    """The core's own final answer to AUTH (an over-long SASL line) is a
    failed authentication like a handler's: delayed and counted."""
    args = ("--auth-fail-delay", "300", "--max-auth-failures", "2", "--max-auth-line", "300")

    def test_overlong_sasl_line_is_a_counted_delayed_failure(self):
        def answer(verb, arg, ev):
            if verb == "auth":
                return [("send_to_client", {"text": "+ "})]
            return None
        self.responder(answer=answer)
        p = self.client()
        for i in range(2):
            p.send("AUTH PLAIN\r\n")
            self.assertEqual(p.line(timeout=5), "+ ")
            t0 = time.monotonic()
            p.send("x" * 600 + "\r\n")
            self.assertEqual(p.line(timeout=5), "-ERR [AUTH] invalid authentication data")
            self.assertGreater(time.monotonic() - t0, 0.25)
        self.assertTrue(p.closed(timeout=5))     # the second failure was the last


class TempfailInOpenResponse(PeersTest):
    """A tempfail verdict on a later line of an open response cuts the
    connection after what is already written: no -ERR inside the body,
    and earlier answers are not lost."""

    def test_pop3c_tempfail_mid_response(self):
        def answer(verb, arg, ev):
            if verb == "retr":
                return [("send_to_client", {"text": "+OK follows", "more": True}),
                        ("send_to_client", {"text": "poison", "more": True}),
                        ("send_to_client", {"text": "."})]
            return None
        self.responder(answer=answer)
        plug = Controller(self.d.sock)
        self.addCleanup(plug.close)
        plug.ok("plugin_add", alias="G", priority=1)
        plug.ok("plugin_register", alias="G", type="POP3C", events=["response"])
        stop = threading.Event()

        def judge():
            while not stop.is_set():
                try:
                    m = plug.read(timeout=0.2)
                except TimeoutError:
                    continue
                except (EOFError, OSError, ValueError):
                    return
                if m.get("type") == "hook":
                    eat = "tempfail" if m["args"][1] == "poison" else "none"
                    plug.send("verdict", hook=m["hook"], eat=eat)
        t = threading.Thread(target=judge, daemon=True)
        t.start()
        self.addCleanup(t.join, 2)
        self.addCleanup(stop.set)
        p = self.client()
        p.send("NOOP\r\nRETR 1\r\n")
        self.assertEqual(p.line(timeout=5), "+OK noop")
        self.assertEqual(p.line(timeout=5), "+OK follows")
        with self.assertRaises(EOFError, msg="no cut"):
            print("after the cut:", repr(p.line(timeout=5)))


class LingeringClose(PeersTest):
    """A client that reads slowly and is still sending when pop3d closes
    gets everything it is owed: the socket lingers instead of resetting
    with output still queued in the kernel."""
    args = ("--control-max-line", str(32 << 20))

    def test_slow_reader_sending_after_close_gets_everything(self):
        body = ["%06d %s" % (i, "x" * 93) for i in range(60000)]     # 6 MB

        def answer(verb, arg, ev):
            if verb == "retr":
                return [("send_to_client", {"lines": ["+OK big"] + body})]
            return None
        self.responder(answer=answer, events=("cmd_retr",))
        watch = Controller(self.d.sock)
        self.addCleanup(watch.close)
        watch.ok("register", events=["disconnected"])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(WAIT)
        s.connect(("127.0.0.1", self.d.port))
        got = bytearray()
        while b"\r\n" not in got:
            got += s.recv(4096)
        s.sendall(b"RETR 1\r\nQUIT\r\n")
        # Read slowly until pop3d has closed its side (its output all in
        # the kernel, most of it not sent yet), then send after the close.
        deadline = time.monotonic() + 60
        closed = False
        while not closed and time.monotonic() < deadline:
            got += s.recv(4096)
            watch.s.setblocking(False)
            try:
                watch.buf += watch.s.recv(65536)
            except BlockingIOError:
                pass
            watch.s.setblocking(True)
            closed = b"pop3d_disconnected" in watch.buf
        self.assertTrue(closed, "pop3d never closed")
        time.sleep(0.2)
        s.sendall(b"NOOP\r\n")
        time.sleep(0.2)
        while True:
            chunk = s.recv(1 << 20)     # a reset raises here
            if not chunk:
                break
            got += chunk
        lines = bytes(got).split(b"\r\n")
        self.assertEqual(lines[1], b"+OK big")
        self.assertEqual(len(lines), 1 + 1 + len(body) + 1 + 1 + 1)
        self.assertEqual(lines[-3], b".")
        self.assertTrue(lines[-2].startswith(b"+OK"), lines[-2])
        self.assertEqual(lines[-1], b"")


class HeldGreeting(PeersTest):
    """A client whose pop3d_connection is held by plugin D while its greeting
    is held by POP3C plugin C; both verdicts arrive in one write, so pop3d
    reads them in one turn."""

    def verdicts(self, d_eat, c_eat):
        """Connect, then answer D with d_eat and C with c_eat; the client."""
        pd = Controller(self.d.sock)
        self.addCleanup(pd.close)
        pd.ok("plugin_add", alias="D", priority=1)
        pd.ok("plugin_register", alias="D", events=["connection"])
        pd.ok("plugin_add", alias="C", priority=2)
        pd.ok("plugin_register", alias="C", type="POP3C", events=["response"])
        p = Client(self.d.port, greet=False)
        self.addCleanup(p.close)
        hooks = {}
        while len(hooks) < 2:
            m = pd.read()
            if m.get("type") == "hook":
                hooks[m["plugin"]] = m["hook"]
        pd.send_raw("".join(json.dumps({"cmd": "verdict", "hook": hooks[a], "eat": eat}) + "\n"
                            for a, eat in (("D", d_eat), ("C", c_eat))))
        return p

    def assert_tempfail_only(self, p):
        self.assertEqual(p.line(timeout=5), "-ERR [SYS/TEMP] server unavailable, try again later")
        with self.assertRaises(EOFError):
            print("after the tempfail:", repr(p.line(timeout=5)))

    def test_both_tempfail(self):
        """One -ERR [SYS/TEMP], then the close (chaos seed 2029 got two)."""
        self.assert_tempfail_only(self.verdicts("tempfail", "tempfail"))

    def test_dropped_greeting_stays_dropped(self):
        """The greeting, dropped by D's tempfail, is not written when C lets
        it pass (chaos seed 4104 got the greeting after the -ERR)."""
        self.assert_tempfail_only(self.verdicts("tempfail", "none"))


class TempfailOfClosingLine(PeersTest):
    """A client closing with its last line held by a POP3C hook that then
    says tempfail still gets one answer (chaos seed 3002 got none)."""

    def test_quit_answer_held_then_tempfail(self):
        pc = Controller(self.d.sock)
        self.addCleanup(pc.close)
        pc.ok("plugin_add", alias="C", priority=1)
        p = self.client()
        pc.ok("plugin_register", alias="C", type="POP3C", events=["response"])
        p.send("QUIT\r\n")        # no handler: the core answers and closes
        h = pc.read()
        self.assertEqual(h["type"], "hook")
        self.assertTrue(h["args"][1].startswith("+OK"), h)
        pc.ok("verdict", hook=h["hook"], eat="tempfail")
        self.assertEqual(p.line(timeout=5), "-ERR [SYS/TEMP] server unavailable, try again later")
        with self.assertRaises(EOFError):
            p.line(timeout=5)


class LinesInOpenResponse(PeersTest):
    """Defect 7: `lines` after an open `more` response are data lines."""

    def test_lines_after_more_are_stuffed(self):
        def answer(verb, arg, ev):
            if verb == "retr":
                return [("send_to_client", {"text": "+OK follows", "more": True}),
                        ("send_to_client", {"lines": [".first", "second"]})]
            if verb == "top":
                return [("send_to_client", {"text": "+OK top", "more": True}),
                        ("send_to_client", {"lines": [".a", "b"], "more": True}),
                        ("send_to_client", {"lines_b64": ["LmM="]}),
                        ]
            return None
        self.responder(answer=answer)
        p = self.client()
        p.send("RETR 1\r\n")
        raw = [p.line(timeout=5) for _ in range(4)]
        self.assertEqual(raw, ["+OK follows", "..first", "second", "."])
        self.assertEqual(p.cmd("NOOP"), "+OK noop")
        p.send("TOP 1 0\r\n")
        raw = [p.line(timeout=5) for _ in range(5)]
        self.assertEqual(raw, ["+OK top", "..a", "b", "..c", "."])
        self.assertEqual(p.cmd("NOOP"), "+OK noop")


class SendFileNeverBlocks(PeersTest):
    """Defect 8: send_file of a FIFO or a symlink is refused at once."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pop3d-sf-", dir=TMP)
        self.inside = os.path.join(self.dir, "mail")
        os.mkdir(self.inside)
        self.msg = os.path.join(self.inside, "msg")
        with open(self.msg, "wb") as f:
            f.write(b"Subject: hi\r\n\r\nbody\r\n")
        self.secret = os.path.join(self.dir, "secret")
        with open(self.secret, "wb") as f:
            f.write(b"not for clients\r\n")
        self.fifo = os.path.join(self.inside, "fifo")
        os.mkfifo(self.fifo)
        self.link = os.path.join(self.inside, "link")
        os.symlink(self.secret, self.link)
        self.dirlink = os.path.join(self.inside, "up")
        os.symlink(self.dir, self.dirlink)
        self.args = ("--send-file-root", self.inside)
        super().setUp()
        self.ids = []

    def answer(self, verb, arg, ev):
        if verb == "retr":
            path = {"1": self.msg, "2": self.fifo, "3": self.link,
                    "4": self.secret, "5": os.path.join(self.dirlink, "mail", "msg"),
                    "6": self.inside + "/../secret"}[arg]
            return [("send_file", {"path": path, "status": "+OK file"})]
        return None

    def retr(self, p, n):
        """RETR n, served: the unstuffed body."""
        p.send("RETR %s\r\n" % n)
        self.assertEqual(p.line(timeout=5), "+OK file")
        return p.multiline()

    def refused(self, r, p, n):
        """RETR n: send_file gets an error reply at once; the command stays
        open and the controller answers it."""
        before = r.last_id("send_file")
        p.send("RETR %s\r\n" % n)
        deadline = time.monotonic() + 5
        while r.last_id("send_file") == before and time.monotonic() < deadline:
            time.sleep(0.01)
        rep = r.reply_for(r.last_id("send_file"), timeout=5)
        self.assertFalse(rep["ok"], rep)
        self.assertEqual(rep["error"]["code"], "invalid_argument")
        # The command is still open: the controller answers it now.
        r.send("send_to_client", client=1, text="-ERR no such message")
        self.assertEqual(p.line(timeout=5), "-ERR no such message")

    def test_fifo_symlink_and_outside_paths_refused(self):
        r = self.responder(answer=self.answer)
        p = self.client()
        other = self.client()
        self.assertEqual(self.retr(p, 1), ["Subject: hi", "", "body"])
        for n in ("2", "3", "4", "5", "6"):
            with self.subTest(n=n):
                t0 = time.monotonic()
                self.refused(r, p, n)
                self.assertLess(time.monotonic() - t0, 3)
                self.assertEqual(other.cmd("NOOP"), "+OK noop")
        self.assertEqual(self.retr(p, 1), ["Subject: hi", "", "body"])


class SendFileFifoWithoutRoot(PeersTest):
    """Without --send-file-root a FIFO is still refused, never opened for
    reading in blocking mode (which froze every client)."""

    def test_fifo_refused(self):
        d = tempfile.mkdtemp(prefix="pop3d-fifo-", dir=TMP)
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        link = os.path.join(d, "link")
        os.symlink("/etc/hostname", link)

        def answer(verb, arg, ev):
            if verb == "retr":
                return [("send_file", {"path": fifo if arg == "1" else link,
                                       "status": "+OK file"}),
                        ("send_to_client", {"text": "-ERR refused"})]
            return None
        self.responder(answer=answer)
        p = self.client()
        other = self.client()
        p.send("RETR 1\r\n")
        self.assertEqual(p.line(timeout=5), "-ERR refused")
        self.assertEqual(other.cmd("NOOP"), "+OK noop")
        p.send("RETR 2\r\n")
        self.assertEqual(p.line(timeout=5), "-ERR refused")


if __name__ == "__main__":
    main()
