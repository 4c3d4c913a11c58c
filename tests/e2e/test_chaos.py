#!/usr/bin/env python3
"""Seeded, bounded chaos test (issue 13): misbehaving controllers while
misbehaving clients, against the real daemon.

A run is a series of rounds; each round has its own seed and its own daemon
(pipeline depth, max line, bad-line and auth-failure limits, auth-fail delay,
response timeout and stall timeout chosen by the seed, a small
--control-max-output, a TLS certificate for STLS) and runs, for
CHAOS_ROUND_SECONDS of client arrivals:

  * an observer controller, a plugin ahead of every other one, registered for
    pop3d_connection and pop3d_disconnected, that answers every hook at once;
  * (for most seeds) a well-behaved answering controller;
  * several chaos controllers (tests/e2e/chaos_ctl.py), separate processes
    that answer slowly or never, act as plugins with random verdicts and
    timeouts, plugin_del during dispatch, stop reading, send garbage,
    register and unregister, fill their output cap, half-close, exit in the
    middle of a command or hook; this test also SIGSTOPs, SIGCONTs and kills
    them and starts new ones; about 2 in 5 are members of one controller
    group ("chaos"), so clients are bound to them and closed when their
    member departs (an early end is accepted only for a client the daemon
    logged as event=group-orphan);
  * POP3 clients that pipeline bursts, send over-long lines, NULs, unknown
    verbs, failed logins, STLS, AUTH continuations, read long responses
    slowly, and end with QUIT, a FIN (reading every answer), or a RST.

Every answering controller answers a command the same way
(chaos_ctl.answer_for), so each client checks that it gets exactly one answer
per command, in command order: that answer, or an answer pop3d itself may
give there (pop3d(8), pop3d-control(7)), and a close only where one is
allowed.  At the end of each round: the daemon is alive; every client's
connection had exactly one pop3d_connection and one pop3d_disconnected, the
latter at most CHAOS_DISC_BOUND seconds (default 2) after the client saw the
connection end or reset it; the daemon's file descriptors return to their
baseline; RSS stays bounded (not under sanitizers); no sanitizer report.

Environment:
  CHAOS_SEED=N            seed of the first round (default 1); round k uses N+k
  CHAOS_SECONDS=S         run rounds until S seconds have passed (default 30;
                          at least one round); CHAOS_SECONDS=1800 for a long run
  CHAOS_ROUND_SECONDS=S   client arrivals per round (default 8)
  CHAOS_DISC_BOUND=S      see above (default 2)

A failure prints the round's seed and the command that reproduces it, in the
build directory (timing is real, so a reproduction may take a few tries):
  CHAOS_SEED=N CHAOS_SECONDS=1 make check TESTS=tests/e2e/test_chaos.py
or directly: CHAOS_SEED=N CHAOS_SECONDS=1 PYTHONPATH=tests/e2e python3 tests/e2e/test_chaos.py
A long run: CHAOS_SEED=$RANDOM CHAOS_SECONDS=1800 make check TESTS=tests/e2e/test_chaos.py
"""
import collections
import json
import re
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import POP3D, SANITIZED, Daemon, main
import chaos_ctl
from chaos_ctl import answer_for

HERE = os.path.dirname(os.path.abspath(__file__))
CHAOS_CTL = os.path.join(HERE, "chaos_ctl.py")
SEED0 = int(os.environ.get("CHAOS_SEED", "1"))
SECONDS = float(os.environ.get("CHAOS_SECONDS", "30"))
ROUND_SECONDS = float(os.environ.get("CHAOS_ROUND_SECONDS", "8"))
DISC_BOUND = float(os.environ.get("CHAOS_DISC_BOUND", "2"))
CAP = 65536
ANSWER_WAIT = 45.0     # per answer line: hooks of several plugins + response timeout
SYS_NA = "-ERR [SYS/TEMP] command not available, try again later"
SYS_GONE = "-ERR [SYS/TEMP] server unavailable, try again later"
# How a client sees its connection end early: accepted only for a client the
# daemon logged as orphaned by a departed group member.
ORPHAN_EOF = ("EOF instead of", "EOF after a partial line", "TLS handshake after STLS failed")
SYS_TO = "-ERR [SYS/TEMP] no response from server, try again later"
SYS_AUTH_NA = "-ERR [SYS/TEMP] authentication not available, try again later"
TOO_MANY_BAD = "-ERR too many bad commands, closing connection"
CORE_QUIT = "+OK localhost POP3 server signing off"
FORWARDED = [v for v in chaos_ctl.VERBS if v != "top"]   # the good answerer's verbs

TMP = tempfile.mkdtemp(prefix="pop3d-chaos-")


def make_cert():
    cert, key = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=pop3d-chaos"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def stuffed(line):
    return "." + line if line.startswith(".") else line


class Violation(Exception):
    pass


class Ctl:
    """A minimal control connection for the test's own controllers."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.ids = 0
        self.lock = threading.Lock()
        json.loads(self.f.readline())

    def send(self, cmd, **kw):
        with self.lock:
            self.ids += 1
            kw.update(cmd=cmd, id=self.ids)
            self.s.sendall((json.dumps(kw) + "\n").encode())

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()


class Observer(threading.Thread):
    """First plugin of all, for connection and disconnected: records them
    and lets them pass at once."""

    def __init__(self, path, errors):
        super().__init__(daemon=True)
        self.c = Ctl(path)
        self.errors = errors
        self.lock = threading.Lock()
        self.conn = {}        # server client id -> (time, peer port)
        self.disc = {}        # server client id -> [times]
        self.stopping = False
        self.c.send("hello", name="observer")
        self.c.send("plugin_add", alias="observer", priority=-1000000)
        self.c.send("plugin_register", alias="observer", events=["connection", "disconnected"],
                    timeout_ms=10000, on_timeout="none")
        self.c.s.settimeout(None)

    def run(self):
        try:
            for line in self.c.f:
                m = json.loads(line)
                now = time.monotonic()
                if m.get("type") == "hook":
                    self.c.send("verdict", hook=m["hook"], eat="none")
                    if "origin" in m:
                        continue
                    cid = m["args"][0]
                    with self.lock:
                        if m["event"] == "pop3d_connection":
                            if cid in self.conn:
                                self.errors.append("observer: second pop3d_connection for "
                                                   "client %d" % cid)
                            self.conn[cid] = (now, m["args"][2])
                        elif m["event"] == "pop3d_disconnected":
                            if cid not in self.conn:
                                self.errors.append("observer: pop3d_disconnected for client "
                                                   "%d without pop3d_connection" % cid)
                            self.disc.setdefault(cid, []).append(now)
                elif m.get("type") == "reply" and not m["ok"] and \
                        m["error"]["code"] != "stale":
                    # stale: the hook was cancelled, its client went away.
                    self.errors.append("observer: error reply %r" % m)
        except (OSError, ValueError) as e:
            if not self.stopping:
                self.errors.append("observer: control connection failed: %r" % e)
            return
        if not self.stopping:
            self.errors.append("observer: control connection closed by pop3d")


class Answerer(threading.Thread):
    """A well-behaved answering controller: answer_for(), at once, by tag."""

    def __init__(self, path, errors):
        super().__init__(daemon=True)
        self.c = Ctl(path)
        self.errors = errors
        self.stopping = False
        self.c.send("hello", name="answerer")
        self.c.send("register", events=["cmd_" + v for v in FORWARDED] + ["auth_data"])
        self.c.s.settimeout(None)

    def run(self):
        try:
            for line in self.c.f:
                m = json.loads(line)
                if m.get("type") == "event" and "tag" in m:
                    ev = m["event"]
                    verb = "auth_data" if ev == "pop3d_auth_data" else ev[len("pop3d_cmd_"):]
                    arg = m["args"][1] if len(m["args"]) > 1 else None
                    kind, what = answer_for(verb, arg)
                    self.c.send("send_to_client", client=m["client"], tag=m["tag"],
                                **({"text": what} if kind == "text" else {"lines": what}))
                elif m.get("type") == "reply" and not m["ok"] and \
                        m["error"]["code"] not in ("stale", "unknown_client"):
                    self.errors.append("answerer: error reply %r" % m)
        except (OSError, ValueError) as e:
            if not self.stopping:
                self.errors.append("answerer: control connection failed: %r" % e)
            return
        if not self.stopping:
            self.errors.append("answerer: control connection closed by pop3d")


class Manager(threading.Thread):
    """Keeps a few chaos controllers running; stops, continues and kills them."""

    def __init__(self, rnd):
        super().__init__(daemon=True)
        self.rnd = rnd
        self.rng = random.Random(rnd.seed * 7919 + 1)
        self.n = self.rng.randint(1, 4)
        self.procs = []       # [proc, more_owner, stopped_until]
        self.spawned = 0
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()

    def spawn(self, more):
        self.spawned += 1
        seed = self.rnd.seed * 1000 + self.spawned
        p = subprocess.Popen([sys.executable, CHAOS_CTL, self.rnd.d.sock, str(seed), str(CAP)] +
                             ([("more+auth" if not self.rnd.cfg["answerer"] else "more")]
                              if more else []),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append([p, more, None])

    def run(self):
        r = self.rng
        with self.lock:
            for i in range(self.n):
                self.spawn(i == 0)
        while not self.stop_ev.wait(r.uniform(0.05, 0.5)):
            with self.lock:
                now = time.monotonic()
                for e in self.procs:
                    if e[2] is not None and now >= e[2]:
                        e[0].send_signal(signal.SIGCONT)
                        e[2] = None
                for e in [e for e in self.procs if e[0].poll() is not None]:
                    self.procs.remove(e)
                    self.spawn(e[1])
                x = r.random()
                live = [e for e in self.procs if e[0].poll() is None]
                if not live:
                    continue
                e = r.choice(live)
                if x < 0.15 and e[2] is None:
                    e[0].send_signal(signal.SIGSTOP)
                    e[2] = now + r.uniform(0.1, 3.5)
                elif x < 0.19:
                    if e[2] is not None:
                        e[0].send_signal(signal.SIGCONT)
                    e[0].kill()
                    e[0].wait()

    def finish(self):
        self.stop_ev.set()
        self.join(10)
        with self.lock:
            for e in self.procs:
                if e[0].poll() is None:
                    e[0].send_signal(signal.SIGCONT)
                    e[0].kill()
                e[0].wait(10)
            self.procs = []


class Client:
    """One POP3 client with a seeded script; checks every answer."""

    def __init__(self, rnd, n):
        self.rnd = rnd
        self.cfg = rnd.cfg
        self.n = n
        self.rng = random.Random(rnd.seed * 1000003 + n)
        self.log = collections.deque(maxlen=80)
        self.s = None
        self.buf = b""
        self.state = "authorization"
        self.tls = False
        self.fails = 0
        self.bad = 0
        self.k = 0
        self.slow = False
        self.last = ""
        self.quiet = 0
        self.local_port = None
        self.t_connect = None
        self.t_closed = None
        self.error = None

    # -- wire -------------------------------------------------------------
    def note(self, who, text):
        self.log.append("%s %.3f %s" % (who, time.monotonic() - self.rnd.t0, text[:160]))

    def send(self, data):
        self.note("C:", repr(data[:200]) + ("...(%d)" % len(data) if len(data) > 200 else ""))
        try:
            self.s.sendall(data)
        except (OSError, ssl.SSLError):
            pass    # the server may have closed; the reads tell

    def line(self, timeout=ANSWER_WAIT, quiet=False):
        """A line without CRLF, or None at EOF (or reset)."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Violation("no answer within %.0f s; have %r" % (timeout, self.buf[:200]))
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(self.rng.choice([1, 7, 100, 4096]) if self.slow else 65536)
            except (socket.timeout, TimeoutError):
                continue
            except (OSError, ssl.SSLError):
                chunk = b""
            if self.slow:
                time.sleep(self.rng.choice([0, 0, 0.001, 0.005]))
            if not chunk:
                if self.buf:
                    raise Violation("EOF after a partial line %r" % self.buf[:200])
                self.note("S:", "<EOF>")
                if self.t_closed is None:
                    self.t_closed = time.monotonic()
                return None
            self.buf += chunk
        out, self.buf = self.buf.split(b"\r\n", 1)
        text = out.decode("latin-1")
        if quiet:
            self.quiet += 1
        else:
            self.note("S:", text)
        return text

    def rst(self):
        try:
            raw = self.s
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        except OSError:
            pass
        if self.t_closed is None:
            self.t_closed = time.monotonic()
        self.note("C:", "<RST>")

    def expect_eof(self, why):
        x = self.line(timeout=15)
        if x is not None:
            raise Violation("data %r after %s" % (x, why))
        self.s.close()

    # -- commands ---------------------------------------------------------
    def arg(self, prefix=""):
        self.k += 1
        return "%sc%d-%d" % (prefix, self.n, self.k)

    def command(self):
        """(line, kind, verb, arg)"""
        r = self.rng
        x = r.random()
        ml = self.cfg["max_line"]
        if x < 0.06:
            return ("NOOP " + "a" * (ml + r.randint(0, 300)), "bad", "-ERR line too long", None)
        if x < 0.10:
            return ("NOOP a\0b", "bad", "-ERR NUL byte in command", None)
        if x < 0.14:
            return (r.choice(["XYZZY", "", "ABCDEFGHIJKLMNOPQ", "   "]), "bad",
                    "-ERR unknown command", None)
        v = r.choice(["noop", "stat", "list", "list1", "uidl", "uidl1", "retr", "retr", "retrbig",
                      "retrbad", "top", "topbad", "dele", "rset", "capa", "user", "pass",
                      "passbad", "utf8", "lang"])
        if v in ("list", "uidl", "capa", "stat", "rset"):
            a = None if r.random() < 0.7 or v == "capa" else self.arg()
            return (v.upper() + ("" if a is None else " " + a), "cmd", v, a)
        if v in ("list1", "uidl1"):
            a = self.arg()
            return ("%s %s" % (v[:-1].upper(), a), "cmd", v[:-1], a)
        if v.startswith("retr"):
            a = self.arg({"retr": "", "retrbig": "big", "retrbad": "bad"}[v])
            return ("RETR " + a, "cmd", "retr", a)
        if v.startswith("top"):
            a = self.arg("bad" if v == "topbad" else "") + " %d" % r.randint(0, 5)
            return ("TOP " + a, "cmd", "top", a)
        if v == "pass":
            a = self.arg("good")
            return ("PASS " + a, "cmd", "pass", a)
        if v == "passbad":
            a = self.arg("bad")
            return ("PASS " + a, "cmd", "pass", a)
        a = self.arg()
        return ("%s %s" % (v.upper() if r.random() < 0.8 else v, a), "cmd", v, a)

    def check(self, c):
        """Read and check the answer to c; return "ok", "close" (a close
        must follow), "cut" (the server ended the connection mid-body),
        or "tls"."""
        line, kind, verb, arg = c[:4]
        got = self.last = self.line()
        if got is None:
            raise Violation("EOF instead of the answer to %r" % line)
        if got in (SYS_GONE, SYS_TO):
            return "close"
        if kind == "bad":
            self.bad += 1
            limit = self.cfg["max_bad"]
            if limit and self.bad >= limit:
                if got != TOO_MANY_BAD:
                    raise Violation("answer to bad line %d (limit %d) %r: %r" %
                                    (self.bad, limit, line[:40], got))
                return "close"
            if got != verb:
                raise Violation("answer to bad line %r: %r, expected %r" % (line[:40], got, verb))
            return "ok"
        self.bad = 0
        if kind == "stls":
            want = ("-ERR TLS is already active" if self.tls else
                    "-ERR STLS is only allowed before authentication"
                    if self.state == "transaction" else "+OK Begin TLS negotiation")
            if got != want:
                raise Violation("answer to STLS %r, expected %r" % (got, want))
            return "tls" if want.startswith("+OK") else "ok"
        if got == SYS_NA:
            return "ok"
        if verb == "quit":
            if got != CORE_QUIT and got != answer_for("quit", arg)[1]:
                raise Violation("answer to %r: %r" % (line, got))
            return "close"
        if verb == "auth_data" and got == SYS_AUTH_NA:
            return "ok"
        if verb == "auth_data" and c[4:] and c[4] == "invalid":
            want_kind, want = "text", "-ERR [AUTH] invalid authentication data"
        else:
            want_kind, want = answer_for(verb, arg)
        if want_kind == "text":
            if got != want:
                raise Violation("answer to %r: %r, expected %r" % (line[:60], got, want))
            if verb in ("pass", "auth", "auth_data") and self.state == "authorization":
                if got.startswith("+OK"):
                    self.state = "transaction"
                elif got.startswith("-ERR") and not got.startswith("-ERR [IN-USE]"):
                    self.fails += 1
                    limit = self.cfg["max_auth_fail"]
                    if limit and self.fails >= limit:
                        return "close"
            return "ok"
        if got != want[0]:
            raise Violation("answer to %r: %r, expected the status line %r" %
                            (line[:60], got, want[0]))
        self.quiet = 0
        for i, exp in enumerate(want[1:] + [None]):
            b = self.line(quiet=True)
            if b is not None and (exp is None or b == "." or b != stuffed(exp)):
                self.note("S:", "<%d data lines as expected>" % (self.quiet - 1))
                self.note("S:", b)
            if b is None:
                self.note("S:", "<%d data lines as expected, then EOF>" % self.quiet)
                return "cut"
            if exp is None:
                if b != ".":
                    raise Violation("answer to %r: %r instead of the terminator after %d "
                                    "lines" % (line[:60], b, i))
                break
            unstuffed = b[1:] if b.startswith(".") else b
            if b == "." or unstuffed != exp:
                raise Violation("answer to %r: data line %d is %r, expected %r" %
                                (line[:60], i, b, exp))
        return "ok"

    def after(self, outcome, what):
        """True when the connection ended as it had to."""
        if outcome == "close":
            self.expect_eof("the close-implying answer to %r" % what)
            return True
        if outcome == "cut":
            self.s.close()
            return True
        return False

    # -- the script -------------------------------------------------------
    def burst(self, fin=False):
        r = self.rng
        cmds = [self.command() for _ in range(r.randint(1, 6))]
        if r.random() < 0.1:
            a = self.arg()
            cmds.append(("QUIT " + a, "cmd", "quit", a))
        eol = b"\r\n" if r.random() < 0.8 else b"\n"
        data = b"".join(c[0].encode("latin-1") + eol for c in cmds)
        partial = fin and r.random() < 0.3
        if partial:
            data += b"NOOP unterminated"
        if r.random() < 0.3:
            cut = r.randint(0, len(data))
            self.send(data[:cut])
            time.sleep(r.uniform(0, 0.05))
            self.send(data[cut:])
        else:
            self.send(data)
        if fin:
            try:
                # The socket's, not SSLSocket.shutdown, which drops TLS.
                socket.socket.shutdown(self.s, socket.SHUT_WR)
            except OSError:
                pass
            self.note("C:", "<FIN>")
        self.slow = r.random() < 0.3
        for c in cmds:
            out = self.check(c)
            if self.after(out, c[0]):
                return True
            if c[2] == "quit":
                raise Violation("QUIT answered without a close")
        self.slow = False
        if fin:
            self.expect_eof("the answers to everything sent before FIN")
            return True
        return False

    def stls(self):
        self.send(b"STLS\r\n")
        out = self.check(("STLS", "stls", "stls", None))
        if out == "tls":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.s.settimeout(15)
            try:
                self.s = ctx.wrap_socket(self.s)
            except (OSError, ssl.SSLError) as e:
                raise Violation("TLS handshake after STLS failed: %r" % e)
            self.tls = True
            self.note("C:", "<TLS>")
            return False
        return self.after(out, "STLS")

    def auth(self):
        r = self.rng
        mech = r.choice(["PLAIN", "PLAIN", "NOMECH"]) + "-" + self.arg()
        self.send(("AUTH %s\r\n" % mech).encode())
        out = self.check(("AUTH " + mech, "cmd", "auth", mech))
        if self.after(out, "AUTH"):
            return True
        # A continuation must be answered (RFC 5034): what follows it is
        # SASL data, never a command.  After four lines the client cancels
        # with "*"; a handler that keeps asking gets "*" again, and after
        # 20 the client gives the connection up.
        for n in range(20):
            if not self.last.startswith("+ "):
                return False
            x = 0.55 if n >= 4 else r.random()
            invalid = False
            if x < 0.3:
                data = self.arg("good")
            elif x < 0.5:
                data = self.arg("more")
            elif x < 0.6:
                data = "*"
            elif x < 0.7:
                data = "a" * (self.cfg["max_auth_line"] + r.randint(0, 100))
                invalid = True
            elif x < 0.75:
                data = "bad\0nul"
                invalid = True
            else:
                data = self.arg("bad")
            self.send(data.encode("latin-1") + b"\r\n")
            c = ("<auth data %s>" % data[:20], "cmd", "auth_data", data,
                 "invalid" if invalid else "")
            out = self.check(c)
            if self.after(out, c[0]):
                return True
        self.rst()
        return True

    def run(self):
        r = self.rng
        try:
            self.s = socket.create_connection(("127.0.0.1", self.rnd.d.port), timeout=10)
            self.t_connect = time.monotonic()
            self.local_port = self.s.getsockname()[1]
            g = self.line()
            if g is None:
                raise Violation("EOF instead of a greeting")
            if g == SYS_GONE:
                self.expect_eof("a tempfail greeting")
                return
            if not g.startswith("+OK POP3 "):
                raise Violation("greeting %r" % g)
            for _ in range(r.randint(1, 10)):
                x = r.random()
                if x < 0.55:
                    if self.burst():
                        return
                elif x < 0.65:
                    if self.stls():
                        return
                elif x < 0.75:
                    if self.auth():
                        return
                elif x < 0.8:
                    time.sleep(r.uniform(0, 1.0))
                elif x < 0.85:
                    self.burst_then_rst()
                    return
                elif x < 0.88:
                    if self.burst(fin=True):
                        return
            x = r.random()
            if x < 0.5:
                a = self.arg()
                self.send(("QUIT %s\r\n" % a).encode())
                out = self.check(("QUIT " + a, "cmd", "quit", a))
                if not self.after(out, "QUIT"):
                    raise Violation("QUIT answered without a close")
            elif x < 0.8:
                self.rst()
            else:
                self.burst(fin=True)
        except Violation as e:
            self.error = str(e)
            self.rst()
        except Exception as e:   # a bug of the test itself must fail too
            self.error = "client raised %r" % e
            self.rst()
        finally:
            if self.t_closed is None:
                self.t_closed = time.monotonic()
            try:
                self.s.close()
            except Exception:
                pass

    def burst_then_rst(self):
        r = self.rng
        cmds = [self.command() for _ in range(r.randint(1, 6))]
        data = b"".join(c[0].encode("latin-1") + b"\r\n" for c in cmds)
        if r.random() < 0.5:
            data = data[:r.randint(0, len(data))]
        self.send(data)
        if r.random() < 0.5:
            time.sleep(r.uniform(0, 0.3))
        self.rst()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Round:
    def __init__(self, seed, cert, key):
        self.seed = seed
        r = random.Random(seed)
        self.cfg = cfg = {
            "depth": r.choice([1, 1, 2, 4, 8, 64]),
            "max_line": r.choice([64, 128, 255, 512]),
            "max_bad": r.choice([0, 3, 5]),
            "auth_fail_delay": r.choice([0, 50, 200, 500]),
            "max_auth_fail": r.choice([0, 2, 3]),
            "response_timeout": r.choice([2, 3]),
            "stall": r.choice([1, 2, 3]),
            "max_auth_line": r.choice([512, 8192]),
            "answerer": r.random() < 0.7,
            "concurrency": r.randint(3, 8),
        }
        self.args = ["--control-max-output", str(CAP), "--pipeline-depth", str(cfg["depth"]),
                     "--max-line", str(cfg["max_line"]), "--max-bad-lines", str(cfg["max_bad"]),
                     "--auth-fail-delay", str(cfg["auth_fail_delay"]),
                     "--max-auth-failures", str(cfg["max_auth_fail"]),
                     "--response-timeout", str(cfg["response_timeout"]),
                     "--control-stall-timeout", str(cfg["stall"]),
                     "--max-auth-line", str(cfg["max_auth_line"]),
                     "--timeout", "60", "--max-per-address", "0",
                     "--tls-cert", cert, "--tls-key", key, "--tls-handshake-timeout", "10"]
        self.cfg["max_auth_line"] = max(cfg["max_auth_line"], cfg["max_line"])
        self.errors = []
        self.orphaned = 0      # clients closed with their departed group member

    def reproduce(self):
        return "CHAOS_SEED=%d CHAOS_SECONDS=1 CHAOS_ROUND_SECONDS=%g" % (self.seed,
                                                                        ROUND_SECONDS)

    def run(self):
        """Returns a list of failure descriptions."""
        self.t0 = time.monotonic()
        self.d = Daemon(POP3D, args=self.args)
        stopped = []
        try:
            return self._run(stopped)
        finally:
            for x in stopped:
                try:
                    x()
                except Exception:
                    pass
            try:
                self.d.stop()
            except AssertionError as e:
                self.errors.append(str(e))

    def _run(self, cleanup):
        d = self.d
        obs = Observer(d.sock, self.errors)
        obs.start()
        cleanup.append(obs.c.close)
        ans = None
        if self.cfg["answerer"]:
            ans = Answerer(d.sock, self.errors)
            ans.start()
            cleanup.append(ans.c.close)
        time.sleep(0.3)
        base_fd = fd_count(d.proc.pid)
        base_rss = d.rss_kb()
        mgr = Manager(self)
        cleanup.append(mgr.finish)
        mgr.start()
        time.sleep(0.3)
        clients, threads = [], []
        r = random.Random(self.seed * 31 + 7)
        end = time.monotonic() + ROUND_SECONDS
        n = 0
        peak_rss = base_rss
        while time.monotonic() < end:
            threads = [t for t in threads if t.is_alive()]
            if len(threads) < self.cfg["concurrency"]:
                n += 1
                c = Client(self, n)
                clients.append(c)
                t = threading.Thread(target=c.run, daemon=True)
                t.start()
                threads.append(t)
            time.sleep(r.uniform(0, 0.05))
            if d.proc.poll() is not None:
                self.errors.append("the daemon died (status %s)" % d.proc.returncode)
                break
            peak_rss = max(peak_rss, d.rss_kb())
        deadline = time.monotonic() + 180
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                self.errors.append("a client thread is stuck after 180 s")
                break
        mgr.finish()
        if d.proc.poll() is not None:
            self.errors.append("the daemon died (status %s)" % d.proc.returncode)
        logs = d.log()
        orphans = set(re.findall(r"event=group-orphan group=\S+ client=(\d+) ", logs))
        for c in clients:
            if c.error:
                sid = None
                m = re.search(r"client=(\d+) event=connect peer=127\.0\.0\.1:%d " %
                              c.local_port, logs)
                if m:
                    sid = m.group(1)
                # A group member that departs takes its clients with it
                # (pop3d-control(7), CONTROLLER GROUPS): an orphaned
                # client's connection may end before its answer, and only
                # such a client's may.
                if sid in orphans and c.error.startswith(ORPHAN_EOF):
                    self.orphaned += 1
                    continue
                self.errors.append("client %d (port %s, server id %s): %s\n    %s\n  its "
                                   "daemon log:\n    %s" %
                                   (c.n, c.local_port, sid, c.error, "\n    ".join(c.log),
                                    "\n    ".join(re.findall(r".*client=%s .*" % sid, logs)
                                                  [-40:]) if sid else "?"))
        # pop3d_connection / pop3d_disconnected per client.
        wait_until = time.monotonic() + DISC_BOUND + 12
        while time.monotonic() < wait_until:
            with obs.lock:
                if all(cid in obs.disc for cid in obs.conn):
                    break
            time.sleep(0.05)
        with obs.lock:
            conn, disc = dict(obs.conn), {k: list(v) for k, v in obs.disc.items()}
        byport = {}
        for cid, (t, port) in sorted(conn.items(), key=lambda kv: kv[1][0]):
            byport.setdefault(port, []).append(cid)
        for c in sorted((c for c in clients if c.local_port), key=lambda c: c.t_connect):
            ids = byport.get(c.local_port)
            if not ids:
                self.errors.append("client %d (port %d): no pop3d_connection" %
                                   (c.n, c.local_port))
                continue
            cid = ids.pop(0)
            times = disc.get(cid, [])
            what = "client %d (port %d, server id %d, %s)" % (
                c.n, c.local_port, cid, c.log[-1] if c.log else "")
            if len(times) != 1:
                self.errors.append("%s: %d pop3d_disconnected" % (what, len(times)))
            elif times[0] - c.t_closed > DISC_BOUND:
                self.errors.append("%s: pop3d_disconnected %.2f s after the connection ended "
                                   "(bound %g s)" % (what, times[0] - c.t_closed, DISC_BOUND))
        for port, ids in byport.items():
            for cid in ids:
                self.errors.append("pop3d_connection of server client %d (port %d) that no "
                                   "client made" % (cid, port))
        # File descriptors back to the baseline, RSS bounded.
        fds = None
        for _ in range(200):
            if d.proc.poll() is not None:
                break
            fds = fd_count(d.proc.pid)
            if fds <= base_fd:
                break
            time.sleep(0.05)
        if fds is not None and fds > base_fd:
            self.errors.append("daemon fds %d > baseline %d after every client and chaos "
                               "controller is gone: %s" % (fds, base_fd, sorted(
                                   os.readlink("/proc/%d/fd/%s" % (d.proc.pid, f))
                                   for f in os.listdir("/proc/%d/fd" % d.proc.pid))))
        if not SANITIZED and peak_rss - base_rss > 48 * 1024:
            self.errors.append("RSS grew %d KiB (bound 48 MiB)" % (peak_rss - base_rss))
        obs.stopping = True
        if ans:
            ans.stopping = True
        self.stats = "%d clients (%d closed with their group member), %d chaos controllers, " \
            "cfg %s" % (n, self.orphaned, mgr.spawned, self.cfg)
        return self.errors


class Chaos(unittest.TestCase):
    def test_chaos(self):
        cert, key = make_cert()
        t_end = time.monotonic() + SECONDS
        seed = SEED0
        failures = []
        rounds = 0
        while True:
            rnd = Round(seed, cert, key)
            errors = rnd.run()
            rounds += 1
            print("round seed=%d: %s; %s" % (seed, "FAILED" if errors else "ok",
                                             getattr(rnd, "stats", "")), flush=True)
            if errors:
                text = "chaos round seed=%d failed (reproduce, in the build directory: " \
                       "%s make check TESTS=tests/e2e/test_chaos.py):\n  %s\n" \
                       "--- daemon log tail:\n%s" % (
                           seed, rnd.reproduce(), "\n  ".join(errors[:8]),
                           "\n".join(rnd.d.lines[-40:]))
                print(text, flush=True)
                failures.append(text)
            seed += 1
            if time.monotonic() >= t_end:
                break
        if failures:
            self.fail("%d of %d rounds failed, seeds %s; the first:\n%s" % (
                len(failures), rounds, " ".join(f.split()[2][5:] for f in failures),
                failures[0]))


if __name__ == "__main__":
    main()
