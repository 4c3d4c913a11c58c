#!/usr/bin/env python3
"""End-to-end tests of pop3ctl(1) and of the shell examples in clients/shell:
the real pop3d on 127.0.0.1 --port 0 with a temporary control socket, driven
by the pop3ctl binary built next to it.  Every wait is bounded and every
process started is stopped (its whole process group) in cleanup."""
import json
import os
import poplib
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import POP3D, WAIT, Client, Controller, Daemon, main

POP3CTL = os.path.join(os.path.dirname(os.path.abspath(POP3D)), "pop3ctl")
SHELL = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      "..", "..", "clients", "shell"))
DEFAULT_SOCKET = "/run/pop3d/control.sock"


class Proc:
    """A background process in its own session; stdout lines are queued."""

    def __init__(self, argv, env, cwd=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, cwd=cwd,
                                  start_new_session=True)
        self.q = queue.Queue()
        self.errs = []
        self.lock = threading.Lock()
        self.t_out = threading.Thread(target=self._out, daemon=True)
        self.t_err = threading.Thread(target=self._err, daemon=True)
        self.t_out.start()
        self.t_err.start()

    def _out(self):
        for raw in self.p.stdout:
            self.q.put(raw.rstrip(b"\n"))
        self.q.put(None)

    def _err(self):
        for raw in self.p.stderr:
            with self.lock:
                self.errs.append(raw.decode("utf-8", "replace"))

    def stderr(self):
        with self.lock:
            return "".join(self.errs)

    def line(self, timeout=WAIT):
        """The next stdout line (bytes, without LF); EOFError at its end."""
        try:
            out = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output line; stderr: %s" % self.stderr()) from None
        if out is None:
            self.q.put(None)
            raise EOFError("end of output; stderr: %s" % self.stderr())
        return out

    def json(self, timeout=WAIT):
        return json.loads(self.line(timeout))

    def wait(self, timeout=WAIT):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_stderr(self, pattern, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.stderr()):
            if time.monotonic() > deadline:
                raise AssertionError("stderr never matched %r: %s" % (pattern, self.stderr()))
            time.sleep(0.02)

    def stop(self):
        """SIGTERM to the whole group, then SIGKILL if it does not go."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            if self.wait(WAIT) is not None:
                break
        self.t_out.join(WAIT)
        self.t_err.join(WAIT)
        self.p.stdout.close()
        self.p.stderr.close()
        return self.p.returncode


class Base(unittest.TestCase):
    args = ()

    def setUp(self):
        self.d = Daemon(POP3D, args=self.args)
        self.addCleanup(self.d.stop)
        self.env = dict(os.environ, POP3D_CONTROL=self.d.sock, POP3CTL=POP3CTL)
        self.tmp = tempfile.mkdtemp(prefix="pop3ctl-e2e-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def ctl(self, *argv, input=None, env=None, cwd=None):
        """Run pop3ctl to completion: CompletedProcess with bytes."""
        return subprocess.run([POP3CTL] + list(argv), input=input if input is not None else b"",
                              capture_output=True, env=env or self.env, cwd=cwd,
                              timeout=WAIT)

    def ok(self, *argv, **kw):
        r = self.ctl(*argv, **kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode("utf-8", "replace")

    def fails(self, status, *argv, **kw):
        r = self.ctl(*argv, **kw)
        self.assertEqual(r.returncode, status, (argv, r.stdout, r.stderr))
        self.assertTrue(r.stderr.startswith(b"pop3ctl: "), r.stderr)
        return r.stderr.decode("utf-8", "replace")

    def proc(self, argv, env=None, cwd=None):
        p = Proc(argv, env or self.env, cwd=cwd)
        self.addCleanup(p.stop)
        return p

    def controller(self, events=None):
        c = Controller(self.d.sock)
        self.addCleanup(c.close)
        if events:
            c.ok("register", events=events)
        return c

    def client(self, greet=True):
        c = Client(self.d.port, greet=greet)
        self.addCleanup(c.close)
        return c

    def wait_for(self, pred, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s" % what)
            time.sleep(0.02)


class FakeServer:
    """A Unix socket that plays a scripted (broken) pop3d to one connection."""

    def __init__(self, path, script):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.bind(path)
        self.s.listen(1)
        self.s.settimeout(WAIT)
        self.script = script
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            conn, _ = self.s.accept()
        except OSError:
            return
        try:
            conn.settimeout(WAIT)
            self.script(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.t.join(WAIT)
        self.s.close()


class ExitStatus(Base):
    def test_0_success(self):
        self.assertRegex(self.ok("ping"), r"^pong seq=\d+\n$")

    def test_1_error_reply(self):
        err = self.fails(1, "send", "999", "+OK")
        self.assertRegex(err, r"^pop3ctl: unknown_client: .+\n$")
        err = self.fails(1, "disconnect", "5")
        self.assertIn("unknown_client", err)

    def test_2_usage(self):
        cases = [
            [], ["bogus"], ["send"], ["send", "1"], ["send", "x", "+OK"], ["send", "0", "+OK"],
            ["send", "1", "+OK", "extra"], ["send", "--tag", "0", "1", "+OK"],
            ["send", "--tag", "x", "1", "+OK"], ["send", "1", "+OK", "--tag"],
            ["send", "--bogus", "1", "+OK"], ["send", "--json=1", "1", "+OK"],
            ["send-file", "1", "/x", "+OK", "--top", "-1"], ["send-file", "1", "/x"],
            ["listen", "--format", "xml"], ["ping", "--tag", "1"], ["clients", "x"],
            ["disconnect"], ["disconnect", "1", "a", "b"], ["event"], ["-x", "ping"],
            ["send-lines"], ["raw", "x"], ["shutdown", "now"], ["listen", "--top", "1"],
        ]
        for argv in cases:
            r = self.ctl(*argv)
            self.assertEqual(r.returncode, 2, (argv, r.stderr))
            self.assertEqual(r.stdout, b"", argv)
            self.assertTrue(r.stderr.startswith(b"pop3ctl: ") or b"usage:" in r.stderr,
                            (argv, r.stderr))
        r = self.ctl("send-lines", "1", input=b"")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"no status line", r.stderr)
        r = self.ctl("send-file", "1", b"/tmp/\xff", "+OK")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"UTF-8", r.stderr)
        # Usage errors never reach the daemon.
        self.assertNotIn("event=connect", self.d.log())
        r = self.ctl("-h")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"send-file", r.stdout)
        r = self.ctl("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^pop3ctl \d+\.\d+")

    def test_3_unreachable(self):
        missing = os.path.join(self.tmp, "missing.sock")
        err = self.fails(3, "-s", missing, "ping")
        self.assertIn(missing, err)
        self.assertIn("No such file", err)
        stale = os.path.join(self.tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        self.assertIn("Connection refused", self.fails(3, "-s", stale, "ping"))
        plain = os.path.join(self.tmp, "file")
        open(plain, "w").close()
        self.fails(3, "-s", plain, "clients")
        self.assertIn("too long", self.fails(3, "-s", "/" + "x" * 200, "ping"))
        self.fails(3, "-s", missing, "listen")
        self.fails(3, "-s", missing, "raw", input=b'{"cmd":"ping"}\n')

    def test_3_not_pop3d_and_lost(self):
        def closes(conn):
            pass

        def not_greeting(conn):
            conn.sendall(b'{"hello":"world"}\n')
            conn.recv(100)

        def greets_then_closes(conn):
            conn.sendall(b'{"type":"greeting","protocol":1}\n')
            conn.recv(100)

        for script, text in ((closes, "before the greeting"), (not_greeting, "no pop3d greeting"),
                             (greets_then_closes, "before answering")):
            path = os.path.join(self.tmp, "fake.sock")
            f = FakeServer(path, script)
            try:
                self.assertIn(text, self.fails(3, "-s", path, "ping"))
            finally:
                f.close()
                os.unlink(path)

    def test_1_refused_and_bad_lines(self):
        def huge(conn):
            conn.sendall(b'{"type":"greeting"}\n')
            conn.recv(100)
            conn.sendall(b'{"type":"event","event":"x","pad":"' + b"y" * (17 << 20))

        def garbage(conn):
            conn.sendall(b'{"type":"greeting"}\n')
            conn.recv(100)
            conn.sendall(b"this is not json\n")

        def events_then_reply(conn):
            conn.sendall(b'{"type":"greeting"}\n')
            conn.recv(100)
            conn.sendall(b'{"type":"event","event":"pop3d_x"}\n\r\n{"type":"reply","id":1,'
                         b'"ok":true,"result":{"seq":77}}\n')

        for script, status, text in ((huge, 1, "longer than 16777216"),
                                     (garbage, 1, "not a JSON object"),
                                     (events_then_reply, 0, "pong seq=77")):
            path = os.path.join(self.tmp, "fake.sock")
            f = FakeServer(path, script)
            try:
                r = self.ctl("-s", path, "ping")
                self.assertEqual(r.returncode, status, r.stderr)
                self.assertIn(text, (r.stdout + r.stderr).decode())
            finally:
                f.close()
                os.unlink(path)

    def test_1_permission_denied(self):
        with Daemon(POP3D, args=("--control-allow-uid", "12345")) as d:
            err = self.fails(1, "-s", d.sock, "ping")
            self.assertIn("permission_denied", err)


class SocketChoice(Base):
    def test_option_beats_environment(self):
        env = dict(self.env, POP3D_CONTROL=os.path.join(self.tmp, "nope"))
        self.ok("-s", self.d.sock, "ping", env=env)
        self.ok("--socket=" + self.d.sock, "ping", env=env)
        self.ok("--socket", self.d.sock, "ping", env=env)
        self.fails(3, "ping", env=env)

    def test_environment(self):
        self.ok("ping")

    def test_default_path(self):
        if os.path.exists(DEFAULT_SOCKET):
            self.skipTest("%s exists here" % DEFAULT_SOCKET)
        env = dict(self.env)
        del env["POP3D_CONTROL"]
        self.assertIn(DEFAULT_SOCKET, self.fails(3, "ping", env=env))
        env["POP3D_CONTROL"] = ""
        self.assertIn(DEFAULT_SOCKET, self.fails(3, "ping", env=env))


class Queries(Base):
    def test_ping_json(self):
        out = json.loads(self.ok("ping", "--json"))
        self.assertIsInstance(out["seq"], int)
        self.assertEqual(set(json.loads(self.ok("-j", "ping"))), {"seq"})

    def test_sockname(self):
        self.assertEqual(self.ok("sockname"), "127.0.0.1 %d\n" % self.d.port)
        js = json.loads(self.ok("sockname", "--json"))
        self.assertEqual([(x["address"], x["port"], x["tls"]) for x in js["listeners"]],
                         [("127.0.0.1", self.d.port, False)])

    def test_session_id(self):
        c = self.controller()
        self.assertEqual(self.ok("session-id"), c.greeting["session_id"] + "\n")
        self.assertEqual(json.loads(self.ok("-j", "session-id")),
                         {"session_id": c.greeting["session_id"]})

    def test_clients_table(self):
        self.assertEqual(self.ok("clients").split(), ["ID", "PEER", "LOCAL", "STATE", "TLS",
                                                      "IDLE"])
        c = self.controller(["cmd_user"])
        p1, p2 = self.client(), self.client()
        p2.send("USER x\r\n")
        c.event("pop3d_cmd_user")
        lines = self.ok("clients").splitlines()
        self.assertEqual(len(lines), 3)
        rows = [ln.split() for ln in lines[1:]]
        for row, p, ident in zip(rows, (p1, p2), ("1", "2")):
            self.assertEqual(len(row), 6, row)
            self.assertEqual(row[0], ident)
            self.assertEqual(row[1], "127.0.0.1:%d" % p.s.getsockname()[1])
            self.assertEqual(row[2], "127.0.0.1:%d" % self.d.port)
            self.assertEqual(row[3], "authorization")
            self.assertEqual(row[4], "no")
            self.assertGreaterEqual(int(row[5]), 0)
        # Columns line up under the header.
        self.assertEqual(lines[0].index("PEER"), lines[1].index("127.0.0.1"))
        js = json.loads(self.ok("clients", "--json"))
        self.assertEqual([r["client"] for r in js["clients"]], [1, 2])
        self.assertEqual(js["clients"][1]["tag"], 1)

    def test_plugins(self):
        r = self.ctl("plugins")
        if r.returncode == 1:
            # This pop3d has no plugin_order command yet.
            self.assertEqual(r.stdout, b"")
            self.assertIn(b"unknown_command", r.stderr)
            self.assertIn(b"plugin_order", r.stderr)
        else:
            self.assertEqual(r.returncode, 0, r.stderr)
            js = json.loads(self.ok("plugins", "--json"))
            self.assertIsInstance(js, dict)


class Answers(Base):
    def setUp(self):
        super().setUp()
        self.c = self.controller(["cmd_*"])
        self.p = self.client()

    def command(self, line):
        self.p.send(line + "\r\n")
        return self.c.event()

    def test_send_with_tag_and_stale(self):
        e = self.command("USER bob")
        self.ok("send", "--tag", str(e["tag"]), str(e["client"]), "+OK hi")
        self.assertEqual(self.p.line(), "+OK hi")
        err = self.fails(1, "send", "--tag=%d" % e["tag"], "1", "+OK again")
        self.assertRegex(err, r"^pop3ctl: stale: ")
        e = self.command("PASS pw")
        self.assertEqual(self.ok("send", "1", "-ERR no way", "--json"), "{}\n")
        self.assertEqual(self.p.line(), "-ERR no way")

    def test_send_dashdash_bytes_and_bad_text(self):
        self.command("NOOP")
        self.ok("send", "1", "--", "--weird but fine")
        self.assertEqual(self.p.line(), "--weird but fine")
        self.command("NOOP")
        self.assertIn("invalid_argument", self.fails(1, "send", "1", "+OK a\nb"))
        self.ok("send", "1", b"+OK \xff\xfe latin")
        self.assertEqual(self.p.line(), "+OK \xff\xfe latin")

    def test_send_lines(self):
        e = self.command("RETR 1")
        self.ok("send-lines", "--tag=%d" % e["tag"], "1",
                input=b"+OK 3 lines\r\n.starts with dot\n\nend")
        self.assertEqual(self.p.line(), "+OK 3 lines")
        self.assertEqual([self.p.line() for _ in range(4)],
                         ["..starts with dot", "", "end", "."])
        self.command("TOP 1 0")
        self.ok("send-lines", "1", input=b"+OK\n\xe4\xf6\n")
        self.assertEqual(self.p.line(), "+OK")
        self.assertEqual(self.p.multiline(), ["\xe4\xf6"])
        self.command("UIDL")
        self.ok("send-lines", "1", input=b"+OK empty\n")
        self.assertEqual(self.p.line(), "+OK empty")
        self.assertEqual(self.p.multiline(), [])
        self.assertIn("unknown_client", self.fails(1, "send-lines", "7", input=b"+OK\n"))

    def test_send_file(self):
        with open(os.path.join(self.tmp, "m"), "wb") as f:
            f.write(b"Subject: x\n\n.\nline 2\nline 3\n")
        e = self.command("RETR 1")
        self.ok("send-file", "--tag", str(e["tag"]), "1", "m", "+OK 35 octets", cwd=self.tmp)
        self.assertEqual(self.p.line(), "+OK 35 octets")
        self.assertEqual(self.p.multiline(), ["Subject: x", "", ".", "line 2", "line 3"])
        self.command("TOP 1 1")
        self.ok("send-file", "1", os.path.join(self.tmp, "m"), "+OK", "--top", "1")
        self.assertEqual(self.p.line(), "+OK")
        self.assertEqual(self.p.multiline(), ["Subject: x", "", "."])
        self.command("RETR 2")
        err = self.fails(1, "send-file", "1", "missing", "+OK", cwd=self.tmp)
        self.assertRegex(err, r"^pop3ctl: invalid_argument: .*%s" % re.escape(
            os.path.join(self.tmp, "missing")))

    def test_disconnect(self):
        self.ok("disconnect", "1", "-ERR go away")
        self.assertEqual(self.p.line(), "-ERR go away")
        self.assertTrue(self.p.closed())
        self.assertIn("unknown_client", self.fails(1, "disconnect", "1"))
        q = self.client()
        self.ok("disconnect", "2")
        self.assertTrue(q.closed())


class Events(Base):
    def test_event_args(self):
        c = self.controller(["x_*"])
        self.ok("event", "x_note", "1", "two", "-3", "007", "", "a b", "99999999999999999999",
                "0", "-0", "1.5")
        e = c.event("pop3d_x_note")
        self.assertEqual(e["args"], [1, "two", -3, "007", "", "a b", "99999999999999999999",
                                     0, 0, "1.5"])
        self.assertIn("origin", e)
        self.ok("event", "pop3d_x_none")
        self.assertEqual(c.event("pop3d_x_none")["args"], [])

    def test_unknown_event(self):
        self.assertRegex(self.fails(1, "event", "bogus", "1"), r"^pop3ctl: unknown_event: ")


class Listen(Base):
    def test_json_until_daemon_exits(self):
        lp = self.proc([POP3CTL, "listen", "connection", "cmd_user"])
        first = lp.json()
        self.assertEqual(first["event"], "pop3d_registered")
        p = self.client()
        e = lp.json()
        self.assertEqual(e["event"], "pop3d_connection")
        self.assertEqual(e["args"][0], 1)
        p.send("USER bob\r\n")
        e = lp.json()
        self.assertEqual((e["event"], e["client"], e["tag"], e["args"]),
                         ("pop3d_cmd_user", 1, 1, [1, "bob"]))
        self.ok("send", "--tag", str(e["tag"]), "1", "+OK")
        self.assertEqual(p.line(), "+OK")
        self.assertEqual(self.d.stop(), 0)
        self.assertEqual(lp.json()["event"], "pop3d_shutdown")
        self.assertEqual(lp.wait(), 0)
        self.assertRaises(EOFError, lp.line)

    def test_json_is_verbatim_and_default_all(self):
        lp = self.proc([POP3CTL, "listen"])
        self.assertEqual(lp.json()["event"], "pop3d_registered")
        watcher = self.controller(["x_*"])
        self.ok("event", "x_a", "b\u00e9", "2")
        raw = lp.line()
        self.assertEqual(json.loads(raw), watcher.event("pop3d_x_a"))
        # Exactly as pop3d wrote it: compact, key order kept, UTF-8 as is.
        self.assertEqual(raw.decode(), json.dumps(json.loads(raw), separators=(",", ":"),
                                                  ensure_ascii=False))
        self.assertIn("b\u00e9".encode(), raw)

    def test_text(self):
        lp = self.proc([POP3CTL, "listen", "--format", "text", "x_*", "cmd_user",
                        "disconnected"])
        line = lp.line()
        self.assertTrue(line.startswith(b"pop3d_registered\t-\t{"), line)
        self.assertEqual(line.count(b"\t"), 2)
        self.ok("event", "x_t", "a\tb\nc\\d\re", "5", "", "-")
        self.assertEqual(lp.line(), b"pop3d_x_t\t-\ta\\tb\\nc\\\\d\\re\t5\t\t-")
        p = self.client()
        p.send(b"USER b\xf6b\r\n")
        self.assertEqual(lp.line(), b"pop3d_cmd_user\t1\t1\tb\xf6b")
        self.ok("send", "1", "+OK")
        p.line()
        p.close()
        self.assertEqual(lp.line(), b"pop3d_disconnected\t1\t1")
        # A read loop in sh gets the fields.
        out = subprocess.run(
            ["sh", "-c", 'printf "x_e\\t-\\t1\\ttwo\\n" | while IFS="$(printf "\\t")" '
             'read -r ev cl a0 a1; do echo "$ev|$cl|$a0|$a1"; done'],
            capture_output=True, timeout=WAIT)
        self.assertEqual(out.stdout, b"x_e|-|1|two\n")

    def test_unknown_event_is_error(self):
        err = self.fails(1, "listen", "cmd_user", "no_such_event")
        self.assertIn("unknown_event", err)


EXEC_CMD = r'''
env | grep '^POP3D_' | sort > "$OUT/$POP3D_SEQ.tmp" && mv "$OUT/$POP3D_SEQ.tmp" "$OUT/$POP3D_SEQ"
case $POP3D_EVENT in
pop3d_cmd_user) echo "+OK user $POP3D_ARG1" ;;
pop3d_cmd_list) printf '+OK 2 messages\r\n1 10\r\n.2 20\r\n' ;;
pop3d_cmd_uidl) printf '+OK none\n.\n' ;;
pop3d_cmd_top) printf '+OK\n.\n.\n' ;;
pop3d_cmd_retr) printf '+OK\n\344\366\n' ;;
pop3d_cmd_noop) "$POP3CTL" send --tag "$POP3D_TAG" "$POP3D_CLIENT" "+OK nested" ;;
pop3d_cmd_stat) echo "+OK 0 0"; exit 3 ;;
pop3d_disconnected) echo "+OK to a client that is gone" ;;
pop3d_cmd_quit) echo "+OK bye" ;;
pop3d_x_*) echo "+OK nobody to send this to" ;;
esac
'''


class Exec(Base):
    def start(self):
        self.out = os.path.join(self.tmp, "out")
        os.mkdir(self.out)
        env = dict(self.env, OUT=self.out, POP3D_ARG7="stale", POP3D_TAG="stale")
        lp = self.proc([POP3CTL, "listen", "--exec", EXEC_CMD, "cmd_*", "x_*",
                         "disconnected"], env=env)
        self.wait_for(lambda: any("POP3D_EVENT=pop3d_registered" in self.env_of(f)
                                  for f in os.listdir(self.out)), "registration")
        return lp

    def env_of(self, name):
        path = os.path.join(self.out, name)
        if not os.path.exists(path) or name.endswith(".tmp"):
            return ""
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def env_for(self, event):
        for name in sorted(os.listdir(self.out), key=lambda n: int(n.split(".")[0])):
            text = self.env_of(name)
            if "POP3D_EVENT=%s\n" % event in text:
                return dict(ln.split("=", 1) for ln in text.splitlines())
        return None

    def test_exec_answers(self):
        lp = self.start()
        p = self.client()
        self.assertEqual(p.cmd("USER bob"), "+OK user bob")
        env = self.env_for("pop3d_cmd_user")
        self.assertEqual(env["POP3D_CLIENT"], "1")
        self.assertEqual(env["POP3D_TAG"], "1")
        self.assertEqual(env["POP3D_STATE"], "authorization")
        self.assertEqual(env["POP3D_ARGC"], "2")
        self.assertEqual(env["POP3D_ARG0"], "1")
        self.assertEqual(env["POP3D_ARG1"], "bob")
        self.assertEqual(json.loads(env["POP3D_ARGS_JSON"]), [1, "bob"])
        self.assertEqual(env["POP3D_TLS"], "0")
        self.assertEqual(env["POP3D_ORIGIN"], "")
        self.assertEqual(env["POP3D_CONTROL"], self.d.sock)
        self.assertGreater(int(env["POP3D_SEQ"]), 0)
        self.assertNotIn("POP3D_ARG7", env)
        self.assertEqual(p.cmd("LIST"), "+OK 2 messages")
        self.assertEqual(p.multiline(), ["1 10", ".2 20"])
        self.assertEqual(p.cmd("UIDL"), "+OK none")
        self.assertEqual(p.multiline(), [])
        self.assertEqual(p.cmd("TOP 1 0"), "+OK")
        self.assertEqual(p.multiline(), ["."])
        self.assertEqual(p.cmd("RETR 1"), "+OK")
        self.assertEqual(p.multiline(), ["\xe4\xf6"])
        self.assertEqual(p.cmd("NOOP"), "+OK nested")
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        lp.wait_stderr(r"exited with status 3")
        self.assertEqual(p.cmd("QUIT"), "+OK bye")
        self.assertTrue(p.closed())
        env = self.env_for("pop3d_registered")
        self.assertEqual(env["POP3D_CLIENT"], "")
        self.assertEqual(json.loads(env["POP3D_ARG0"])["server"], "pop3d")

    def test_exec_errors_are_reported_and_survived(self):
        lp = self.start()
        self.ok("event", "x_ping", "1")
        lp.wait_stderr(r"event pop3d_x_ping has no client")
        p = self.client()
        p.close()
        lp.wait_stderr(r"pop3ctl: unknown_client: ")
        q = self.client()
        self.assertEqual(q.cmd("USER again"), "+OK user again")
        self.assertIsNone(lp.p.poll())


class Secrets(Base):
    """listen masks the secrets of PASS, APOP, AUTH and SASL lines whatever
    separates them, unless --show-secrets; text output and what --exec gets
    have their control octets escaped."""
    args = ("--auth-fail-delay", "0")

    SECRETS = (b"s3cr3t-tab", b"d1g3st", b"QUJDaW5pdGlhbA", b"U0FTTGxpbmU")

    def listen(self, *opts):
        lp = self.proc([POP3CTL, "listen"] + list(opts) + ["cmd_*", "auth_data"])
        first = lp.line()
        self.assertTrue(first.startswith(b"pop3d_registered\t") or
                        json.loads(first)["event"] == "pop3d_registered", first)
        return lp

    def session(self):
        """One client: a colourful USER, PASS<TAB>, APOP with a TAB, AUTH
        with an initial response after a TAB, AUTH then a SASL line; each
        answered by hand."""
        p = self.client()
        for line, answer in ((b"USER \x1b[31mred\x1b[0m\xc2\x9b2J", "+OK"),
                             (b"PASS\ts3cr3t-tab", "-ERR no"),
                             (b" aPoP  bob\td1g3st", "-ERR no"),
                             (b"AUTH PLAIN\tQUJDaW5pdGlhbA==", "+ "),
                             (b"U0FTTGxpbmU=", "-ERR no")):
            p.send(line + b"\r\n")
            self.wait_for(lambda: self.ctl("send", "1", answer).returncode == 0,
                          "the command %r" % line)
            self.assertEqual(p.line(), answer)
        return p

    def test_listen_masks_json_and_text(self):
        js = self.listen()
        text = self.listen("--format", "text")
        self.session()
        raw = [js.line() for _ in range(5)]
        events = [json.loads(x) for x in raw]
        self.assertEqual([e["args"][1] for e in events],
                         ["\x1b[31mred\x1b[0m\u009b2J", "****", "bob ****", "PLAIN ****",
                          "****"])
        self.assertEqual([e["event"] for e in events],
                         ["pop3d_cmd_user", "pop3d_cmd_pass", "pop3d_cmd_apop",
                          "pop3d_cmd_auth", "pop3d_auth_data"])
        # Only the masked argument differs from what pop3d sent.
        self.assertEqual((events[1]["client"], events[1]["tag"], events[1]["state"]),
                         (1, 2, "authorization"))
        lines = [text.line() for _ in range(5)]
        self.assertEqual(lines, [b"pop3d_cmd_user\t1\t1\t\\x1b[31mred\\x1b[0m\\xc2\\x9b2J",
                                 b"pop3d_cmd_pass\t1\t1\t****",
                                 b"pop3d_cmd_apop\t1\t1\tbob ****",
                                 b"pop3d_cmd_auth\t1\t1\tPLAIN ****",
                                 b"pop3d_auth_data\t1\t1\t****"])
        for out in raw + lines:
            for secret in self.SECRETS:
                self.assertNotIn(secret, out)
            self.assertNotIn(b"\x1b", out)
    def test_listen_show_secrets(self):
        shown = self.listen("--show-secrets")
        shown_text = self.listen("--format=text", "--show-secrets")
        self.session()
        # Everything as sent (text still escaped).
        self.assertEqual([shown.json()["args"][1] for _ in range(5)],
                         ["\x1b[31mred\x1b[0m\u009b2J", "s3cr3t-tab", "bob\td1g3st",
                          "PLAIN\tQUJDaW5pdGlhbA==", "U0FTTGxpbmU="])
        self.assertEqual([shown_text.line().split(b"\t", 3)[3] for _ in range(5)],
                         [b"\\x1b[31mred\\x1b[0m\\xc2\\x9b2J", b"s3cr3t-tab", b"bob\\td1g3st",
                          b"PLAIN\\tQUJDaW5pdGlhbA==", b"U0FTTGxpbmU="])

    def test_show_secrets_usage(self):
        self.fails(2, "listen", "--show-secrets=1")
        self.fails(2, "listen", "--raw-args")
        self.fails(2, "send", "--show-secrets", "1", "+OK")

    def exec_env(self, *opts):
        out = os.path.join(self.tmp, "out")
        os.mkdir(out)
        cmd = ('env | grep "^POP3D_" > "$OUT/$POP3D_SEQ.tmp" && '
               'mv "$OUT/$POP3D_SEQ.tmp" "$OUT/$POP3D_EVENT.$POP3D_TAG"; '
               'case $POP3D_EVENT in pop3d_cmd_auth) echo "+ " ;; pop3d_cmd_user) echo "+OK" ;; '
               'pop3d_*_*) echo "-ERR no" ;; esac')
        self.proc([POP3CTL, "listen", "--exec", cmd] + list(opts) + ["cmd_*", "auth_data"],
                  env=dict(self.env, OUT=out))
        p = self.client()
        self.wait_for(lambda: p.cmd("NOOP") == "-ERR no", "the --exec listener")
        for line, answer in ((b"USER \x1b[31mred\x1b[0m", "+OK"),
                             (b"PASS\ts3cr3t-tab", "-ERR no"),
                             (b" aPoP  bob\td1g3st", "-ERR no"),
                             (b"AUTH PLAIN\tQUJDaW5pdGlhbA==", "+ "),
                             (b"U0FTTGxpbmU=", "-ERR no")):
            p.send(line + b"\r\n")
            self.assertEqual(p.line(), answer)
        env = {}
        for name in os.listdir(out):
            with open(os.path.join(out, name), "rb") as f:
                env[name.split(".")[0]] = dict(ln.split(b"=", 1) for ln in
                                               f.read().splitlines() if b"=" in ln)
        return env

    def test_exec_env_masked_and_escaped(self):
        env = self.exec_env()
        self.assertEqual(env["pop3d_cmd_user"][b"POP3D_ARG1"], b"\\x1b[31mred\\x1b[0m")
        self.assertEqual(env["pop3d_cmd_pass"][b"POP3D_ARG1"], b"****")
        self.assertEqual(env["pop3d_cmd_apop"][b"POP3D_ARG1"], b"bob ****")
        self.assertEqual(env["pop3d_cmd_auth"][b"POP3D_ARG1"], b"PLAIN ****")
        self.assertEqual(env["pop3d_auth_data"][b"POP3D_ARG1"], b"****")
        self.assertEqual(json.loads(env["pop3d_cmd_pass"][b"POP3D_ARGS_JSON"]), [1, "****"])
        for values in env.values():
            for v in values.values():
                for secret in self.SECRETS:
                    self.assertNotIn(secret, v)
                self.assertNotIn(b"\x1b", v)

    def test_exec_env_show_secrets_raw_args(self):
        env = self.exec_env("--show-secrets", "--raw-args")
        self.assertEqual(env["pop3d_cmd_user"][b"POP3D_ARG1"], b"\x1b[31mred\x1b[0m")
        self.assertEqual(env["pop3d_cmd_pass"][b"POP3D_ARG1"], b"s3cr3t-tab")
        self.assertEqual(env["pop3d_cmd_apop"][b"POP3D_ARG1"], b"bob\td1g3st")
        self.assertEqual(env["pop3d_cmd_auth"][b"POP3D_ARG1"], b"PLAIN\tQUJDaW5pdGlhbA==")
        self.assertEqual(env["pop3d_auth_data"][b"POP3D_ARG1"], b"U0FTTGxpbmU=")
        self.assertEqual(json.loads(env["pop3d_cmd_pass"][b"POP3D_ARGS_JSON"]),
                         [1, "s3cr3t-tab"])


class Raw(Base):
    def test_raw_replies_only(self):
        lines = [b'{"cmd":"ping","id":"a"}', b"", b"  \t", b'{"cmd":"register","id":2,"events":["all"]}',
                 b'{"cmd":"send_event","id":3,"event":"x_y","args":[1]}\r', b'{"cmd":"ping","id":4}',
                 b"not json", b'{"cmd":"nope","id":5}']
        r = self.ctl("raw", input=b"\n".join(lines) + b"\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        out = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual([m["type"] for m in out], ["reply"] * 6)
        self.assertEqual([m["id"] for m in out], ["a", 2, 3, 4, None, 5])
        self.assertEqual([m["ok"] for m in out], [True, True, True, True, False, False])
        self.assertEqual(out[4]["error"]["code"], "parse_error")
        self.assertEqual(out[5]["error"]["code"], "unknown_command")

    def test_raw_all_ok_and_shutdown(self):
        r = self.ctl("raw", input=b'{"cmd":"session_id","id":1}\n{"cmd":"shutdown","id":2}')
        self.assertEqual(r.returncode, 0, r.stderr)
        out = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual(out[1], {"type": "reply", "id": 2, "ok": True, "result": {}})
        self.assertEqual(self.d.wait(), 0)


class Shutdown(Base):
    def test_shutdown(self):
        p = self.client()
        self.assertEqual(self.ok("shutdown"), "")
        self.assertTrue(p.closed())
        self.assertEqual(self.d.wait(), 0)
        self.fails(3, "ping")


TOY_MESSAGE_1 = [b"From: toy@example.org", b"To: alice@example.org", b"Subject: Welcome", b"",
                 b"Hello Alice, this message comes from a shell script.", b".",
                 b"The line above is a single dot; pop3d dot-stuffs it."]


class ShellExamples(Base):
    def shell_env(self):
        env = dict(self.env, TMPDIR=self.tmp)
        return env

    def start_toy(self):
        toy = self.proc(["sh", os.path.join(SHELL, "toy-responder.sh")], env=self.shell_env())
        p = self.client()
        # Before it has registered pop3d answers -ERR [SYS/TEMP] itself.
        self.wait_for(lambda: p.cmd("NOOP") == "+OK", "the toy responder")
        p.close()
        return toy

    def test_toy_responder_poplib(self):
        toy = self.start_toy()
        pp = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.assertRaises(poplib.error_proto, pp.user, "bob")
        pp.user("alice")
        self.assertRaises(poplib.error_proto, pp.pass_, "wrong")
        pp = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.assertEqual(pp.capa(), {"USER": []})
        pp.user("alice")
        pp.pass_("wonderland")
        count, size = pp.stat()
        self.assertEqual(count, 2)
        resp, listing, _ = pp.list()
        sizes = [int(x.split()[1]) for x in listing]
        self.assertEqual(sum(sizes), size)
        resp, lines, octets = pp.retr(1)
        self.assertEqual(lines, TOY_MESSAGE_1)
        self.assertEqual(resp, b"+OK %d octets" % sizes[0])
        self.assertEqual(sum(len(x) + 2 for x in lines), sizes[0])
        pp.dele(2)
        self.assertEqual(pp.stat(), (1, sizes[0]))
        self.assertRaises(poplib.error_proto, pp.retr, 2)
        pp.rset()
        self.assertEqual(pp.stat()[0], 2)
        self.assertRaises(poplib.error_proto, pp.uidl)
        self.assertEqual(pp.quit(), b"+OK toy POP3 server signing off")
        # The daemon stops: the toy exits 0 and removes its state.
        self.assertEqual(self.d.stop(), 0)
        self.assertEqual(toy.wait(), 0, toy.stderr())
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith("pop3d-toy")], [])

    def test_toy_responder_curl(self):
        if shutil.which("curl") is None:
            self.skipTest("no curl")
        toy = self.start_toy()
        base = "pop3://127.0.0.1:%d/" % self.d.port
        r = subprocess.run(["curl", "-sS", "--max-time", str(WAIT), "-u", "alice:wonderland",
                            base], capture_output=True, timeout=WAIT + 5)
        self.assertEqual(r.returncode, 0, r.stderr)
        listing = r.stdout.splitlines()
        self.assertEqual([x.split()[0] for x in listing], [b"1", b"2"])
        r = subprocess.run(["curl", "-sS", "--max-time", str(WAIT), "-u", "alice:wonderland",
                            base + "1"], capture_output=True, timeout=WAIT + 5)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"".join(x + b"\r\n" for x in TOY_MESSAGE_1))
        self.assertEqual(len(r.stdout), int(listing[0].split()[1]))
        r = subprocess.run(["curl", "-sS", "--max-time", str(WAIT), "-u", "alice:nope",
                            base + "1"], capture_output=True, timeout=WAIT + 5)
        self.assertNotEqual(r.returncode, 0)
        toy.stop()
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith("pop3d-toy")], [])

    def test_watch(self):
        w = self.proc(["sh", os.path.join(SHELL, "watch.sh")], env=self.shell_env())
        stamp = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d "
        self.assertRegex(w.line().decode(), stamp + r"registered client=- \{")
        p = self.client()
        self.assertRegex(w.line().decode(), stamp + r"connection client=1 1 127\.0\.0\.1 %d "
                         r"127\.0\.0\.1 %d$" % (p.s.getsockname()[1], self.d.port))
        p.send("USER bob smith\r\n")
        self.assertRegex(w.line().decode(), stamp + r"cmd_user client=1 1 bob smith$")
        self.ok("send", "1", "+OK")
        self.assertEqual(p.line(), "+OK")
        self.ok("event", "x_tab", "a\tb")
        self.assertRegex(w.line().decode(), stamp + r"x_tab client=- a\\tb$")
        self.ok("disconnect", "1")
        self.assertRegex(w.line().decode(), stamp + r"disconnected client=1 1$")
        self.assertEqual(self.d.stop(), 0)
        self.assertRegex(w.line().decode(), stamp + r"shutdown client=- $")
        self.assertEqual(w.wait(), 0)

    def test_watch_unreachable(self):
        env = dict(self.shell_env(), POP3D_CONTROL=os.path.join(self.tmp, "none"))
        r = subprocess.run(["sh", os.path.join(SHELL, "watch.sh")], env=env,
                           capture_output=True, timeout=WAIT)
        self.assertEqual(r.returncode, 3)

    def test_kick_idle(self):
        script = os.path.join(SHELL, "kick-idle.sh")
        idle = self.client()
        time.sleep(2.2)
        busy = self.client()
        self.assertTrue(busy.cmd("NOOP").startswith("-ERR"))  # activity, answered by the core
        r = subprocess.run(["sh", script, "1"], env=self.shell_env(), capture_output=True,
                           timeout=WAIT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"disconnected client 1\n")
        self.assertEqual(idle.line(), "-ERR [SYS/TEMP] idle for too long")
        self.assertTrue(idle.closed())
        rows = self.ok("clients").splitlines()[1:]
        self.assertEqual([x.split()[0] for x in rows], ["2"])
        r = subprocess.run(["sh", script, "1", "-ERR bye now"], env=self.shell_env(),
                           capture_output=True, timeout=WAIT)
        self.assertEqual((r.returncode, r.stdout), (0, b""))
        r = subprocess.run(["sh", script, "soon"], env=self.shell_env(), capture_output=True,
                           timeout=WAIT)
        self.assertEqual(r.returncode, 2)
        env = dict(self.shell_env(), POP3D_CONTROL=os.path.join(self.tmp, "none"))
        r = subprocess.run(["sh", script, "1"], env=env, capture_output=True, timeout=WAIT)
        self.assertEqual(r.returncode, 3)


if __name__ == "__main__":
    main()
