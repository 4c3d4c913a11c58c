#!/usr/bin/env python3
"""End-to-end tests of the core: tests/testd (pop3d's start-up plus an
in-process handler, see tests/testd.c) on 127.0.0.1 with --port 0, driven
with raw sockets and Python's poplib."""
import os
import poplib
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import POP3D, SANITIZED, TESTD, Client, Daemon, main


class CoreTest(unittest.TestCase):
    args = ()
    env = None

    def setUp(self):
        self.d = Daemon(TESTD, args=self.args, control=False, env=self.env)

    def tearDown(self):
        self.d.stop()

    def client(self, greet=True):
        c = Client(self.d.port, greet=greet)
        self.addCleanup(c.close)
        return c


class Greeting(CoreTest):
    args = ("--hostname", "mail.example.org", "--server-version", "Test-1.0")

    def test_greeting_text(self):
        c = self.client()
        self.assertEqual(c.greeting, "+OK POP3 mail.example.org Test-1.0 server ready")

    def test_connection_logged_with_client_id(self):
        self.client()
        self.d.wait_log(r"client=1 event=connect peer=127\.0\.0\.1:\d+ local=127\.0\.0\.1:%d"
                        % self.d.port)


class DefaultGreeting(CoreTest):
    def test_default_greeting(self):
        c = self.client()
        self.assertRegex(c.greeting, r"^\+OK POP3 localhost pop3d-\d+\.\d+\.\d+ server ready$")

    def test_greeting_over_512_refused_at_start(self):
        p = subprocess.run([TESTD, "-f", "--address", "127.0.0.1", "--port", "0",
                            "--hostname", "h" * 600], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 1)


class NoGreeting(CoreTest):
    args = ("--no-greeting",)

    def test_no_handler_for_connection(self):
        # Nobody greets: the client is told at once instead of waiting.
        c = self.client(greet=False)
        self.assertEqual(c.line(), "-ERR [SYS/TEMP] server not ready, try again later")
        self.assertTrue(c.closed())


class ControllerGreeting(unittest.TestCase):
    """--no-greeting: a controller greets; input waits for the greeting."""

    def test_late_greeting_never_answers_a_command(self):
        from harness import Controller
        with Daemon(POP3D, args=("--no-greeting",)) as d:
            ctl = Controller(d.sock)
            ctl.ok("register", events=["connection", "cmd_noop"])
            c = Client(d.port, greet=False)
            c.send("NOOP\r\n")  # before any greeting
            e = ctl.event("pop3d_connection")
            time.sleep(0.2)
            ctl.ok("send_to_client", client=e["client"], text="+OK hello from controller")
            n = ctl.event("pop3d_cmd_noop")
            self.assertEqual(n["tag"], 1)
            ctl.ok("send_to_client", client=e["client"], tag=n["tag"], text="+OK noop")
            self.assertEqual(c.line(), "+OK hello from controller")
            self.assertEqual(c.line(), "+OK noop")
            c.close()
            ctl.close()


class Protocol(CoreTest):
    def test_session_poplib(self):
        p = poplib.POP3("127.0.0.1", self.d.port, timeout=10)
        self.assertTrue(p.getwelcome().startswith(b"+OK POP3 "))
        p.user("bob")
        p.pass_("secret")
        self.assertEqual(p.stat(), (2, 320))
        resp, lines, octets = p.list()
        self.assertEqual(lines, [b"1 120", b"2 200"])
        resp, lines, octets = p.retr(1)
        self.assertEqual(lines, [b".hidden", b"..two", b"plain"])
        self.assertEqual(p.quit(), b"+OK bye")

    def test_verbs_case_insensitive_and_arguments(self):
        c = self.client()
        self.assertEqual(c.cmd("uSeR  bob  "), "+OK user bob")
        self.assertEqual(c.cmd("user a b"), "+OK user a b")
        self.assertEqual(c.cmd("PASS  x y "), "-ERR [AUTH] invalid password")

    def test_bare_lf_accepted(self):
        c = self.client()
        c.send("USER lf\n")
        self.assertEqual(c.line(), "+OK user lf")

    def test_unknown_verb(self):
        c = self.client()
        self.assertEqual(c.cmd("HELO x"), "-ERR unknown command")
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_no_handler_sys_temp(self):
        c = self.client()
        self.assertTrue(c.cmd("DELE 1").startswith("-ERR [SYS/TEMP] "))
        self.assertTrue(c.cmd("APOP a b").startswith("-ERR [SYS/TEMP] "))
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_over_long_line_one_error_then_usable(self):
        c = self.client()
        # 300 octets and QUIT in the same line: one -ERR, QUIT never runs.
        c.send("X" * 300 + "QUIT\r\n")
        self.assertEqual(c.line(), "-ERR line too long")
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_limit_is_255_with_crlf(self):
        c = self.client()
        ok = "USER " + "a" * (255 - 2 - 5)
        self.assertEqual(c.cmd(ok), "+OK user " + "a" * 248)
        self.assertEqual(c.cmd(ok + "a"), "-ERR line too long")

    def test_no_line_end_cut_at_limit_memory_flat(self):
        c = self.client()
        before = self.d.rss_kb()
        chunk = b"A" * 65536
        for _ in range(16):  # 1 MiB without a line end
            c.send(chunk)
        c.send(b"\r\nNOOP\r\n")
        self.assertEqual(c.line(), "-ERR line too long")
        self.assertEqual(c.line(), "+OK")
        # Stated bound: 1 MiB of input grows the daemon by far less than 1 MiB.
        if not SANITIZED:
            self.assertLess(self.d.rss_kb() - before, 512)

    def test_nul_is_error(self):
        c = self.client()
        c.send(b"NO\x00OP\r\n")
        self.assertEqual(c.line(), "-ERR NUL byte in command")
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_bad_line_limit_closes(self):
        c = self.client()
        self.assertEqual(c.cmd("BAD1"), "-ERR unknown command")
        self.assertEqual(c.cmd("BAD2"), "-ERR unknown command")
        self.assertEqual(c.cmd("BAD3"), "-ERR too many bad commands, closing connection")
        self.assertTrue(c.closed())

    def test_bad_lines_counted_in_a_row_only(self):
        c = self.client()
        for _ in range(5):
            self.assertEqual(c.cmd("BAD"), "-ERR unknown command")
            self.assertEqual(c.cmd("BAD"), "-ERR unknown command")
            self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_pipelined_in_order(self):
        c = self.client()
        # UIDL is answered 200 ms later by the handler; NOOP right after must wait.
        c.send("USER bob\r\nUIDL\r\nNOOP\r\nSTAT\r\nLIST\r\nCAPA\r\nRETR 1\r\nQUIT\r\n")
        self.assertEqual(c.line(), "+OK user bob")
        self.assertEqual(c.line(), "+OK 1 uid-one")
        self.assertEqual(c.line(), "+OK")
        self.assertEqual(c.line(), "+OK 2 320")
        self.assertEqual(c.line(), "+OK 2 messages")
        self.assertEqual(c.multiline(), ["1 120", "2 200"])
        self.assertEqual(c.line(), "+OK capabilities")
        self.assertEqual(c.multiline(), ["USER", "SASL PLAIN"])
        self.assertEqual(c.line(), "+OK message follows")
        self.assertEqual(c.multiline(), [".hidden", "..two", "plain"])
        self.assertEqual(c.line(), "+OK bye")
        self.assertTrue(c.closed())

    def test_quit_closes_after_reply(self):
        c = self.client()
        c.send("QUIT\r\nNOOP\r\n")
        self.assertEqual(c.line(), "+OK bye")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"")
        self.d.wait_log(r"client=1 event=disconnect reason=\"quit\"")

    def test_send_file_stuffing_and_top(self):
        path = os.path.join(self.d.tmp, "msg")
        with open(path, "wb") as f:
            f.write(b"Subject: x\n\n.dot\r\n..two\rplain\n.")
        c = self.client()
        c.send("RETR %s\r\n" % path)
        self.assertEqual(c.line(), "+OK message follows")
        raw = []
        while True:
            line = c.line()
            raw.append(line)
            if line == ".":
                break
        self.assertEqual(raw, ["Subject: x", "", "..dot", "...two", "plain", "..", "."])
        c.send("TOP %s 1\r\n" % path)
        self.assertEqual(c.line(), "+OK top follows")
        self.assertEqual(c.multiline(), ["Subject: x", "", ".dot"])
        self.assertEqual(c.cmd("RETR /nonexistent/file"), "-ERR no such message")

    def test_large_file_streamed(self):
        path = os.path.join(self.d.tmp, "big")
        body = b"".join(b".line %d of the message\n" % i for i in range(200000))
        with open(path, "wb") as f:
            f.write(body)
        c = self.client()
        c.send("RETR %s\r\n" % path)
        self.assertEqual(c.line(), "+OK message follows")
        lines = c.multiline()
        self.assertEqual(len(lines), 200000)
        self.assertEqual(lines[-1], ".line 199999 of the message")
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_slow_reader_backpressure(self):
        path = os.path.join(self.d.tmp, "big")
        with open(path, "wb") as f:
            f.write((b"y" * 70 + b"\n") * 100000)  # 7 MB
        c = self.client()
        before = self.d.rss_kb()
        c.send("RETR %s\r\n" % path)
        time.sleep(1.0)
        # The client reads nothing: the daemon holds a bounded buffer.
        grown = self.d.rss_kb() - before
        if not SANITIZED:
            self.assertLess(grown, 2048, "daemon grew %d KiB for a stalled reader" % grown)
        other = self.client()
        self.assertEqual(other.cmd("NOOP"), "+OK")
        self.assertEqual(c.line(), "+OK message follows")
        self.assertEqual(len(c.multiline()), 100000)


class Sasl(CoreTest):
    """RFC 5034 continuation: the line after "+ " is data, not a command."""

    def test_continuation_success_sets_transaction(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(c.cmd("AGJvYgBzZWNyZXQ="), "+OK authenticated")
        self.assertEqual(c.cmd("NOOP"), "+OK")
        self.d.wait_log(r"client=1 event=auth-data tag=1 octets=16")
        self.assertNotIn("AGJvYgBzZWNyZXQ=", self.d.log())

    def test_cancel_with_star(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(c.cmd("*"), "-ERR cancelled")
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_data_line_is_not_a_command(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
        # QUIT here is SASL data: the handler rejects it, the session lives.
        self.assertEqual(c.cmd("QUIT"), "-ERR [AUTH] authentication failed")
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_initial_response(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ="), "+OK authenticated")

    def test_long_continuation_allowed_up_to_limit(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(c.cmd("A" * 4000), "-ERR [AUTH] authentication failed")
        self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(c.cmd("A" * 9000), "-ERR [AUTH] invalid authentication data")
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_curl_auth_plain(self):
        import shutil
        import subprocess
        if shutil.which("curl") is None:
            self.skipTest("curl not installed")
        for extra in (["--sasl-ir"], []):
            p = subprocess.run(["curl", "-s", "--max-time", "10", "--login-options",
                                "AUTH=PLAIN", "-u", "bob:secret"] + extra +
                               ["pop3://127.0.0.1:%d/" % self.d.port],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 0, (extra, p.stderr))
            self.assertEqual(p.stdout.split(), ["1", "120", "2", "200"])


class AuthFailures(CoreTest):
    """Failed PASS/APOP/AUTH answers are delayed by a timer in the core, and
    after --max-auth-failures the client is disconnected."""
    args = ("--auth-fail-delay", "500", "--max-auth-failures", "3")

    def test_delay_and_disconnect(self):
        c = self.client()
        other = self.client()
        t0 = time.monotonic()
        c.send("PASS bad1\r\n")
        # Another client is not held up meanwhile.
        self.assertEqual(other.cmd("NOOP"), "+OK")
        self.assertLess(time.monotonic() - t0, 0.3)
        self.assertEqual(c.line(), "-ERR [AUTH] invalid password")
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        # Pipelined commands after a failure wait behind it, in order.
        c.send("PASS bad2\r\nNOOP\r\n")
        self.assertEqual(c.line(), "-ERR [AUTH] invalid password")
        self.assertEqual(c.line(), "+OK")
        self.assertEqual(c.cmd("PASS bad3"), "-ERR [AUTH] invalid password")
        self.assertTrue(c.closed())
        self.d.wait_log(r"client=1 event=auth-failures count=3")
        self.d.wait_log(r'client=1 event=disconnect reason="too many authentication failures"')

    def test_not_counted_after_login(self):
        c = self.client()
        self.assertEqual(c.cmd("PASS secret"), "+OK logged in")
        # In TRANSACTION an -ERR to PASS is a protocol error, not a guess.
        t0 = time.monotonic()
        for _ in range(4):
            self.assertEqual(c.cmd("PASS x"), "-ERR [AUTH] invalid password")
        self.assertLess(time.monotonic() - t0, 0.4)
        self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_success_not_delayed(self):
        c = self.client()
        t0 = time.monotonic()
        self.assertEqual(c.cmd("PASS secret"), "+OK logged in")
        self.assertLess(time.monotonic() - t0, 0.3)


class Privileges(unittest.TestCase):
    def test_user_drop(self):
        import pwd
        if os.geteuid() != 0:
            self.skipTest("needs root")
        nobody = pwd.getpwnam("nobody")
        with Daemon(TESTD, args=("--user", "nobody")) as d:
            d.wait_log(r"event=privileges-dropped user=nobody uid=%d" % nobody.pw_uid)
            with open("/proc/%d/status" % d.proc.pid) as f:
                status = f.read()
            uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
            gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
            groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
            self.assertEqual(set(uids), {str(nobody.pw_uid)})
            self.assertEqual(set(gids), {str(nobody.pw_gid)})
            self.assertEqual(groups, [str(nobody.pw_gid)])
            c = Client(d.port)
            self.assertEqual(c.cmd("NOOP"), "+OK")
            c.close()
            from harness import Controller
            Controller(d.sock).close()  # root may still connect

    def test_root_warning_and_bad_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        with Daemon(TESTD, control=False) as d:
            d.wait_log(r"event=running-as-root")
        p = subprocess.run([POP3D, "-f", "--address", "127.0.0.1", "--port", "0", "--user",
                            "no-such-user-xyz"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no such user", p.stderr)


class NoQuitHandler(CoreTest):
    env = {"TESTD_NO_QUIT": "1"}

    def test_core_answers_quit(self):
        c = self.client()
        self.assertEqual(c.cmd("QUIT"), "+OK localhost POP3 server signing off")
        self.assertTrue(c.closed())


class Timeouts(CoreTest):
    args = ("--timeout", "1", "--response-timeout", "1")

    def test_idle_timeout(self):
        c = self.client()
        t0 = time.monotonic()
        self.assertEqual(c.line(timeout=5), "-ERR autologout; idle for too long")
        self.assertTrue(c.closed())
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)

    def test_command_resets_idle(self):
        c = self.client()
        for _ in range(4):
            time.sleep(0.5)
            self.assertEqual(c.cmd("NOOP"), "+OK")

    def test_response_timeout(self):
        c = self.client()
        c.send("RSET\r\nNOOP\r\n")
        self.assertEqual(c.line(timeout=5),
                         "-ERR [SYS/TEMP] no response from server, try again later")
        self.assertTrue(c.closed())
        self.d.wait_log(r"event=response-timeout tag=1 verb=rset")


class SaslIdle(CoreTest):
    args = ("--timeout", "1")

    def test_silent_after_continuation_times_out(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(c.line(timeout=5), "-ERR autologout; idle for too long")
        self.assertTrue(c.closed())

    def test_eof_after_continuation_closes(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
        c.s.shutdown(socket.SHUT_WR)
        self.assertTrue(c.closed(timeout=3))
        self.d.wait_log(r'client=1 event=disconnect reason="client closed connection"')


class SlowReaderNotIdle(CoreTest):
    args = ("--timeout", "2")

    def test_slow_reader_is_not_idle(self):
        path = os.path.join(self.d.tmp, "big")
        with open(path, "wb") as f:
            f.write((b"z" * 1000 + b"\n") * 8000)  # 8 MB
        c = self.client()
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send("RETR %s\r\n" % path)
        got = 0
        t0 = time.monotonic()
        # Read slowly for 5 s (over twice the idle timeout): about 400 KB/s.
        while time.monotonic() - t0 < 5:
            c.s.settimeout(5)
            data = c.s.recv(20000)
            self.assertTrue(data, "dropped while reading slowly")
            got += len(data)
            time.sleep(0.05)
        self.assertGreater(got, 100000)
        self.assertNotIn("idle-timeout", self.d.log())


class Limits(CoreTest):
    args = ("--max-clients", "3", "--max-per-address", "2")

    def test_per_address_limit(self):
        a, b = self.client(), self.client()
        c = Client(self.d.port, greet=False)
        self.addCleanup(c.close)
        self.assertTrue(c.line().startswith("-ERR [SYS/TEMP] "))
        self.assertTrue(c.closed())
        a.cmd("QUIT")
        self.assertTrue(a.closed())
        self.d.wait_log(r"client=1 event=disconnect")
        d = self.client()
        self.assertTrue(d.greeting.startswith("+OK"))
        self.assertEqual(b.cmd("NOOP"), "+OK")


class Shutdown(CoreTest):
    def test_sigterm(self):
        c = self.client()
        self.assertEqual(c.cmd("NOOP"), "+OK")
        self.d.signal(signal.SIGTERM)
        self.assertTrue(c.closed())
        self.assertEqual(self.d.wait(), 0)
        # The log reader may lag the exit by a moment: wait for the lines.
        self.d.wait_log(r"event=shutdown")
        self.d.wait_log(r"client=1 event=disconnect reason=\"shutdown\"")

    def test_sigterm_waits_for_pending_output(self):
        path = os.path.join(self.d.tmp, "big")
        with open(path, "wb") as f:
            f.write((b"w" * 99 + b"\n") * 30000)  # 3 MB
        c = self.client()
        c.send("RETR %s\r\n" % path)
        self.assertEqual(c.line(), "+OK message follows")
        self.d.signal(signal.SIGTERM)
        self.assertEqual(len(c.multiline()), 30000)
        self.assertTrue(c.closed())
        self.assertEqual(self.d.wait(), 0)


class Options(unittest.TestCase):
    def test_help_version_usage(self):
        self.assertEqual(subprocess.run([POP3D, "--help"], capture_output=True).returncode, 0)
        v = subprocess.run([POP3D, "--version"], capture_output=True, text=True)
        self.assertRegex(v.stdout, r"^pop3d \d+\.\d+\.\d+")
        self.assertEqual(subprocess.run([POP3D, "--port", "x"],
                                        capture_output=True).returncode, 2)
        self.assertEqual(subprocess.run([POP3D, "--bogus"], capture_output=True).returncode, 2)

    def test_extra_command(self):
        with Daemon(TESTD, args=("--command", "XTND"), control=False) as d:
            c = Client(d.port)
            self.assertTrue(c.cmd("XTND foo").startswith("-ERR [SYS/TEMP] "))
            c.close()

    def test_bind_failure_exits_nonzero(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = subprocess.run([POP3D, "-f", "--address", "127.0.0.1", "--port", str(port)],
                           capture_output=True, text=True, timeout=10)
        s.close()
        self.assertEqual(p.returncode, 1)
        self.assertIn("Address already in use", p.stderr)


if __name__ == "__main__":
    main()
