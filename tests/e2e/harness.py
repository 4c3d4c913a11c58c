"""End-to-end test harness: start the real daemon on loopback, talk POP3 and
the control protocol to it, and clean up every process.

Every wait is bounded; every daemon started is stopped in tearDown (or by
the context manager), killed if it does not exit in time.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

POP3D = os.environ.get("POP3D", os.path.join(os.getcwd(), "pop3d"))
TESTD = os.environ.get("TESTD", os.path.join(os.getcwd(), "tests", "testd"))
WAIT = 10.0  # seconds: upper bound of any single wait
# Set by .ci/run for the ASan+UBSan pass: resident-memory bounds are not
# meaningful there (shadow memory, quarantine), so tests skip those checks.
SANITIZED = os.environ.get("POP3D_SANITIZED") == "1"


class Daemon:
    """A pop3d (or tests/testd) process on 127.0.0.1 with --port 0."""

    def __init__(self, binary=None, args=(), control=True, env=None, sock=None, cwd=None):
        self.tmp = tempfile.mkdtemp(prefix="pop3d-e2e-")
        self.sock = sock or (os.path.join(self.tmp, "control.sock") if control else None)
        cmd = [binary or POP3D, "-f", "-v", "--address", "127.0.0.1", "--port", "0"]
        if self.sock and control:
            cmd += ["--control", self.sock]
        cmd += list(args)
        penv = dict(os.environ)
        penv.update(env or {})
        self.lines = []
        self.sanitizer_reported = False
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=penv, cwd=cwd or self.tmp)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = None
        m = self.wait_log(r"event=listening address=\S+ port=(\d+)", must=False)
        if m is None:
            self.stop()
            raise RuntimeError("daemon did not start: %s" % self.log())
        self.port = int(m.group(1))
        if self.sock and control:
            self.wait_log(r"event=control-listening")

    def _read(self):
        for raw in self.proc.stderr:
            with self.lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def log(self):
        with self.lock:
            return "\n".join(self.lines)

    def wait_log(self, pattern, timeout=WAIT, must=True, count=1):
        """Wait until pattern has matched `count` log lines; return the last match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [m for m in (rx.search(line) for line in self.lines) if m]
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline or (self.proc.poll() is not None and not
                                               self.reader.is_alive()):
                if must:
                    raise AssertionError("log never matched %r:\n%s" % (pattern, self.log()))
                return None
            time.sleep(0.02)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=WAIT):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(WAIT) is None:
                self.proc.kill()
                self.proc.wait(WAIT)
        self.reader.join(WAIT)
        shutil.rmtree(self.tmp, ignore_errors=True)
        # Sanitizer reports (leaks at exit, UB, memory errors) fail the test.
        bad = [line for line in self.lines if "ERROR: AddressSanitizer" in line or
               "ERROR: LeakSanitizer" in line or "runtime error:" in line]
        if bad and not self.sanitizer_reported:
            self.sanitizer_reported = True
            raise AssertionError("sanitizer report from the daemon:\n" +
                                 "\n".join(self.lines[-60:]))
        return self.proc.returncode

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Client:
    """A raw POP3 connection with bounded reads."""

    def __init__(self, port, host="127.0.0.1", greet=True):
        self.s = socket.create_connection((host, port), timeout=WAIT)
        self.buf = b""
        self.greeting = self.line() if greet else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def line(self, timeout=WAIT):
        """One line without its CRLF; b'' decoded as '' means EOF."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line; have %r" % self.buf[:200])
            self.s.settimeout(left)
            chunk = self.s.recv(65536)
            if not chunk:
                if self.buf:
                    out, self.buf = self.buf, b""
                    return out.decode("latin-1")
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out.decode("latin-1")

    def multiline(self):
        """Lines of a multi-line body up to the terminator, unstuffed."""
        out = []
        while True:
            line = self.line()
            if line == ".":
                return out
            out.append(line[1:] if line.startswith(".") else line)

    def closed(self, timeout=WAIT):
        """True when the server closes the connection (after any pending data)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Controller:
    """A control-socket connection: commands with ids, events queued."""

    def __init__(self, path, name=None, lossy=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(WAIT)
        self.s.connect(path)
        self.buf = b""
        self.events = []
        self.next_id = 0
        self.greeting = self.read()
        if name is not None or lossy is not None:
            kw = {}
            if name is not None:
                kw["name"] = name
            if lossy is not None:
                kw["lossy"] = lossy
            self.ok("hello", **kw)

    def read(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from control socket")
            self.s.settimeout(left)
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError("control socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def send(self, _cmd, **kw):
        self.next_id += 1
        msg = {"cmd": _cmd, "id": self.next_id}
        msg.update(kw)
        self.send_raw(json.dumps(msg) + "\n")
        return self.next_id

    def reply(self, timeout=WAIT):
        """The next reply; events seen meanwhile are queued."""
        while True:
            m = self.read(timeout)
            if m.get("type") == "reply":
                return m
            self.events.append(m)

    def call(self, _cmd, **kw):
        rid = self.send(_cmd, **kw)
        r = self.reply()
        assert r["id"] == rid, (r, rid)
        return r

    def ok(self, _cmd, **kw):
        r = self.call(_cmd, **kw)
        assert r["ok"], r
        return r["result"]

    def event(self, name=None, timeout=WAIT):
        """The next event of that name (others are dropped); with no name,
        the next event other than pop3d_registered."""
        deadline = time.monotonic() + timeout
        while True:
            while self.events:
                e = self.events.pop(0)
                if e.get("event") == name or (name is None and
                                              e.get("event") != "pop3d_registered"):
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event %s" % name)
            m = self.read(left)
            if m.get("type") == "reply":
                raise AssertionError("unexpected reply %r" % m)
            self.events.append(m)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Summary(unittest.TextTestResult):
    pass


def main():
    """Run the module's tests; print the plain 'N passed, N failed' line."""
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(sys.modules["__main__"])
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors)
    skipped = len(res.skipped)
    passed = res.testsRun - failed - skipped
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(0 if failed == 0 and res.testsRun > 0 else 1)
