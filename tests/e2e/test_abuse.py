#!/usr/bin/env python3
"""Fault and abuse tests: the real daemon (tests/testd or pop3d) on 127.0.0.1
with --port 0, attacked by misbehaving POP3 clients and controllers.

Each test states the bound it checks in its docstring and in its assertion
messages, and prints the figures it measured ("abuse: ...") to stdout so they
land in the test log.  Every loop is bounded in count and in time; every
process started here is stopped in a cleanup.  Under sanitizers
(harness.SANITIZED) only the numeric memory assertions are skipped.
"""
import hashlib
import json
import os
import random
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import POP3D, SANITIZED, TESTD, WAIT, Client, Controller, Daemon, main

KIB = 1024
MIB = 1024 * 1024


def say(fmt, *args):
    """A measured figure, for the test log."""
    print("abuse: " + (fmt % args if args else fmt), flush=True)


def cpu_seconds(pid):
    """User plus system CPU time of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SockClient(Client):
    """A harness Client whose socket is set up before connect: a small
    SO_RCVBUF makes a slow reader, linger 0 makes close() send a RST."""

    def __init__(self, port, rcvbuf=None, greet=True):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(WAIT)
        s.connect(("127.0.0.1", port))
        self.s = s
        self.buf = b""
        self.greeting = self.line() if greet else None

    def reset(self):
        """Close with a RST instead of a FIN."""
        try:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


class Sender(threading.Thread):
    """sendall() in the background (the peer may stop reading meanwhile)."""

    def __init__(self, sock, data, chunk=1 << 16):
        super().__init__(daemon=True)
        self.sock, self.data, self.chunk = sock, data, chunk
        self.error = None
        self.done = threading.Event()
        self.start()

    def run(self):
        try:
            view = memoryview(self.data)
            for i in range(0, len(view), self.chunk):
                self.sock.sendall(view[i:i + self.chunk])
        except OSError as e:
            self.error = e
        finally:
            self.done.set()


def read_lines(c, n, timeout):
    """Up to n CRLF lines (bytes) from client c, fewer on EOF or timeout."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        parts = c.buf.split(b"\r\n")
        c.buf = parts.pop()
        out.extend(parts)
        if len(out) >= n:
            extra = out[n:]
            del out[n:]
            if extra:
                c.buf = b"\r\n".join(extra) + b"\r\n" + c.buf
            return out
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        c.s.settimeout(left)
        try:
            chunk = c.s.recv(1 << 20)
        except (socket.timeout, ConnectionResetError):
            return out
        if not chunk:
            return out
        c.buf += chunk


def read_stream(c, expected_len, timeout, hasher=None, limit_rate=None):
    """Raw bytes from c until expected_len octets, EOF or timeout; returns
    (count, eof).  Fed to hasher; nothing is kept."""
    got = len(c.buf)
    if hasher is not None:
        hasher.update(c.buf)
    c.buf = b""
    deadline = time.monotonic() + timeout
    while got < expected_len:
        left = deadline - time.monotonic()
        if left <= 0:
            return got, False
        c.s.settimeout(left)
        try:
            chunk = c.s.recv(min(1 << 20, expected_len - got))
        except socket.timeout:
            return got, False
        except ConnectionResetError:
            return got, True
        if not chunk:
            return got, True
        if hasher is not None:
            hasher.update(chunk)
        got += len(chunk)
    return got, False


def greeted_within(clients, timeout):
    """Wait (epoll) until each client has a first line; return the greeted."""
    sel = selectors.DefaultSelector()
    waiting = 0
    for c in clients:
        if c.greeting is None:
            sel.register(c.s, selectors.EVENT_READ, c)
            waiting += 1
    deadline = time.monotonic() + timeout
    try:
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(min(left, 0.5)):
                c = key.data
                try:
                    chunk = c.s.recv(4096)
                except OSError:
                    chunk = b""
                if chunk:
                    c.buf += chunk
                if not chunk or b"\r\n" in c.buf:
                    if chunk:
                        c.greeting = c.line()
                    sel.unregister(c.s)
                    waiting -= 1
    finally:
        sel.close()
    return [c for c in clients if c.greeting is not None]


def proc_line(p, timeout=WAIT):
    """One line from a child's unbuffered stdout, or '' after timeout/EOF."""
    out = b""
    deadline = time.monotonic() + timeout
    fd = p.stdout.fileno()
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        ch = os.read(fd, 1)
        if not ch:
            break
        out += ch
    return out.decode().strip()


def stuffed(lines):
    """The wire form of a body: CRLF line ends, dot-stuffed."""
    return b"".join((b"." + x if x.startswith(b".") else x) + b"\r\n" for x in lines)


def text_block(seed, approx):
    """Text lines (some starting with '.') of about approx octets: (file
    bytes, list of lines)."""
    rnd = random.Random(seed)
    lines = []
    size = 0
    i = 0
    while size < approx:
        k = rnd.randrange(10)
        if k == 0:
            line = b"." + b"dot line %d" % i
        elif k == 1:
            line = b".."
        elif k == 2:
            line = b""
        else:
            word = bytes(rnd.choice(b"abcdefghij ") for _ in range(rnd.randrange(70)))
            line = b"line %d " % i + word
        lines.append(line)
        size += len(line) + 1
        i += 1
    return b"".join(x + b"\n" for x in lines), lines


def write_message(path, seed, size):
    """Write about size octets of text lines; return (file size, expected
    body on the wire without the status line, i.e. stuffed + '.\\r\\n', as a
    (block, repeat) pair so it need not be held in memory)."""
    data, lines = text_block(seed, 100 * KIB)
    reps = max(1, size // len(data))
    with open(path, "wb") as f:
        for _ in range(reps):
            f.write(data)
    return len(data) * reps, stuffed(lines), reps


def limited_binary(tmp, binary, nofile):
    """A wrapper script that sets RLIMIT_NOFILE, then execs binary (the
    daemon keeps the wrapper's pid, so rss_kb() still measures it)."""
    path = os.path.join(tmp, "nofile-%d.sh" % nofile)
    with open(path, "w") as f:
        f.write('#!/bin/sh\nulimit -n %d || exit 1\nexec "%s" "$@"\n' % (nofile, binary))
    os.chmod(path, 0o755)
    return path


class AbuseTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pop3d-abuse-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.t_start = time.monotonic()

    def tearDown(self):
        say("%s took %.1f s", self.id().rsplit(".", 1)[1], time.monotonic() - self.t_start)

    def daemon(self, binary=TESTD, args=(), control=False, env=None, nofile=None):
        if nofile is not None:
            binary = limited_binary(self.tmp, binary, nofile)
        d = Daemon(binary, args=args, control=control, env=env)
        self.addCleanup(d.stop)
        return d

    def client(self, d, **kw):
        c = SockClient(d.port, **kw)
        self.addCleanup(c.close)
        return c

    def ctl(self, d, **kw):
        c = Controller(d.sock, **kw)
        self.addCleanup(c.close)
        return c

    def proc(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
            p.wait(WAIT)
            for f in (p.stdout, p.stderr, p.stdin):
                if f is not None:
                    f.close()
        self.addCleanup(stop)
        return p

    def rtt(self, c):
        t0 = time.monotonic()
        self.assertEqual(c.cmd("NOOP"), "+OK")
        return time.monotonic() - t0

    def assert_no_crash(self, d):
        log = d.log()
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "Assertion"):
            self.assertNotIn(bad, log, "sanitizer or assertion report in the log")
        self.assertIsNone(d.proc.poll(), "the daemon died:\n" + log[-3000:])

    def stop_cleanly(self, d):
        d.signal(signal.SIGTERM)
        rc = d.wait(WAIT)
        self.assertEqual(rc, 0, "daemon must exit 0 on SIGTERM:\n" + d.log()[-3000:])


class Abuse(AbuseTest):
    def test_1_pipelined_noops_without_reading(self):
        """100,000 pipelined NOOPs (with a USER marker after every 10,000)
        from a client that does not read; meanwhile a second client pipelines
        300,000 LISTs (9.9 MB of replies: more than the kernel's socket
        buffers take, so the daemon's own output does reach output_high).

        Bound: RSS grows by < 1.5 MiB.  Why: a client's unread input is held
        to input_high (16 KiB) and it is not read while its output is over
        output_high (256 KiB); one full input buffer parsed at once adds at
        most 16 KiB / 6 * 33 < 90 KiB of LIST replies.  That is < 400 KiB per
        flooder, < 800 KiB for both; the rest is allocator slack.  Unbounded
        buffering would hold several MB of the LIST replies.
        Other clients: NOOP round trip < 1 s (max) while the flood lasts.
        Order: once the flooder reads, exactly 100,000 "+OK" arrive, the
        markers in place, then the LIST replies byte for byte."""
        d = self.daemon(TESTD)
        n, mark = 100000, 10000
        flood = bytearray()
        want = []
        for i in range(n // mark):
            flood += b"NOOP\r\n" * mark
            flood += b"USER mark%d\r\n" % i
            want += [b"+OK"] * mark + [b"+OK user mark%d" % i]
        nlist = 300000
        block = b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
        other = self.client(d)
        base = d.rss_kb()
        flooder = self.client(d, rcvbuf=4096)
        lister = self.client(d, rcvbuf=4096)
        s1 = Sender(flooder.s, bytes(flood))
        s2 = Sender(lister.s, b"LIST\r\n" * nlist)
        rtts, peak = [], 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0 and len(rtts) < 300:
            rtts.append(self.rtt(other))
            peak = max(peak, d.rss_kb() - base)
            time.sleep(0.02)
        say("pipelined flood: RSS growth %d KiB (peak while not reading), other client's "
            "NOOP round trip max %.1f ms, mean %.1f ms over %d", peak, max(rtts) * 1000,
            sum(rtts) / len(rtts) * 1000, len(rtts))
        if not SANITIZED:
            self.assertLess(peak, 1536, "RSS grew %d KiB for two clients that do not read; "
                            "bound 1.5 MiB (input_high + output_high per client)" % peak)
        self.assertLess(max(rtts), 1.0, "another client waited %.3f s for NOOP during the "
                        "flood; bound 1 s" % max(rtts))
        # Now read: every reply, in order.
        t1 = time.monotonic()
        got = read_lines(flooder, len(want), timeout=60)
        self.assertEqual(sum(1 for x in got if x == b"+OK"), n,
                         "expected exactly %d '+OK' replies" % n)
        self.assertEqual(got, want, "replies out of order or missing")
        h = hashlib.sha256()
        count, eof = read_stream(lister, len(block) * nlist, 60, h)
        self.assertEqual(count, len(block) * nlist, "LIST replies cut short (eof=%s)" % eof)
        self.assertEqual(h.hexdigest(), hashlib.sha256(block * nlist).hexdigest(),
                         "LIST replies garbled")
        say("pipelined flood: %d NOOP + %d LIST replies read in %.2f s", n, nlist,
            time.monotonic() - t1)
        s1.join(WAIT)
        s2.join(WAIT)
        self.assertIsNone(s1.error)
        self.assertIsNone(s2.error)
        self.assertEqual(flooder.cmd("NOOP"), "+OK")
        self.assertEqual(lister.cmd("NOOP"), "+OK")
        self.assert_no_crash(d)

    def test_2_slow_reader_of_50_mb(self):
        """RETR of a 50 MB message (text lines, some starting with '.') by a
        client reading about 1 KB/s (SO_RCVBUF 1 KiB) for 8 s with --timeout 3.

        Bounds: RSS grows by < 1 MiB (the stream keeps < 512 KiB + one 128 KiB chunk of file
        in the output buffer); the reader is never dropped as idle while it
        reads (over twice the idle timeout); another client's NOOP round trip
        stays < 1 s; then the rest is read fast and arrives complete, dot-
        stuffed, with one terminator (sha-256 of the whole response)."""
        d = self.daemon(TESTD, args=("--timeout", "3"))
        path = os.path.join(self.tmp, "big")
        fsize, body_block, reps = write_message(path, 2, 50 * 1000 * 1000)
        status = b"+OK message follows\r\n"
        total = len(status) + len(body_block) * reps + 3
        expect = hashlib.sha256(status)
        for _ in range(reps):
            expect.update(body_block)
        expect.update(b".\r\n")
        other = self.client(d)
        base = d.rss_kb()
        slow = self.client(d, rcvbuf=1024)
        slow_id = 2  # "other" is client 1
        d.wait_log(r"client=2 event=connect")
        slow.send("RETR %s\r\n" % path)
        h = hashlib.sha256()
        got, peak, rtts = 0, 0, []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8.0:
            slow.s.settimeout(5)
            data = slow.s.recv(100)
            self.assertTrue(data, "the slow reader's connection was closed after %d octets" % got)
            h.update(data)
            got += len(data)
            if len(rtts) < int(time.monotonic() - t0) + 1:
                rtts.append(self.rtt(other))
                peak = max(peak, d.rss_kb() - base)
            time.sleep(0.1)
        rate = got / (time.monotonic() - t0)
        say("slow reader: %d octets in 8 s (%.0f B/s) of a %d-octet message; RSS growth %d "
            "KiB; other client's NOOP max %.1f ms", got, rate, fsize, peak,
            max(rtts) * 1000)
        self.assertLess(rate, 4000, "the reader was meant to read about 1 KB/s")
        if not SANITIZED:
            self.assertLess(peak, 1024, "RSS grew %d KiB while streaming to a slow reader; "
                            "bound 1 MiB" % peak)
        self.assertLess(max(rtts), 1.0, "other client's NOOP took %.3f s; bound 1 s" % max(rtts))
        m = [x for x in d.log().splitlines()
             if "client=%d event=idle-timeout" % slow_id in x or
             "client=%d event=disconnect" % slow_id in x]
        self.assertEqual(m, [], "a client reading ~1 KB/s was dropped as idle with --timeout 3 "
                         "(progress of the kernel send queue is not counted as activity)")
        # The rest, fast.
        slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        t1 = time.monotonic()
        count, eof = read_stream(slow, total - got, 120, h)
        say("slow reader: rest (%d octets) read in %.2f s", count, time.monotonic() - t1)
        self.assertEqual(got + count, total, "response cut short (eof=%s)" % eof)
        self.assertEqual(h.hexdigest(), expect.hexdigest(), "response garbled")
        self.assertEqual(slow.cmd("NOOP"), "+OK")
        self.assert_no_crash(d)

    def test_3_malformed_input(self):
        """1 MiB with no line end (RSS growth < 512 KiB, one -ERR, session
        usable); 10,000 garbage lines (the default bad-line limit closes after
        3; with --max-bad-lines 0 exactly 10,000 '-ERR' lines, then NOOP
        works); NUL bytes (-ERR, session usable); a 300-octet (and other
        over-long) command followed by QUIT in the same line: QUIT never runs,
        the connection stays open and answers NOOP."""
        d = self.daemon(TESTD)
        rnd = random.Random(3)
        with self.subTest("1 MiB without a line end"):
            c = self.client(d)
            base = d.rss_kb()
            s = Sender(c.s, b"A" * MIB)
            s.join(30)
            self.assertIsNone(s.error)
            grown = d.rss_kb() - base
            c.send(b"\r\nNOOP\r\n")
            self.assertEqual(c.line(), "-ERR line too long")
            self.assertEqual(c.line(), "+OK")
            say("1 MiB without a line end: RSS growth %d KiB", grown)
            if not SANITIZED:
                self.assertLess(grown, 512, "1 MiB without a line end grew RSS %d KiB; bound "
                                "512 KiB" % grown)

        def garbage(k):
            out = []
            for i in range(k):
                n = rnd.choice((1, 5, 40, 200, 253, 300, 1000))
                b = bytes(rnd.choice(b"#%&*+-/:;<=>?@[]^_{|}~xyzXYZ\t \x01\x7f\xff\xe4")
                          for _ in range(n))
                out.append(b"Z" + b)
            return b"".join(x + b"\r\n" for x in out)

        lines = garbage(10000)
        with self.subTest("10,000 garbage lines, default bad-line limit"):
            c = self.client(d)
            s = Sender(c.s, lines)
            got = read_lines(c, 10, timeout=WAIT)
            self.assertTrue(all(x in (b"-ERR unknown command", b"-ERR line too long")
                                for x in got[:2]), got[:2])
            self.assertEqual(got[2:3], [b"-ERR too many bad commands, closing connection"])
            self.assertEqual(len(got), 3, "lines after the closing one: %r" % got[3:6])
            s.join(WAIT)
        with self.subTest("10,000 garbage lines, --max-bad-lines 0"):
            d0 = self.daemon(TESTD, args=("--max-bad-lines", "0"))
            c = self.client(d0)
            t0 = time.monotonic()
            s = Sender(c.s, lines + b"NOOP\r\n")
            got = read_lines(c, 10001, timeout=30)
            s.join(WAIT)
            self.assertEqual(len(got), 10001, "got %d lines" % len(got))
            errs = sum(1 for x in got[:10000] if x.startswith(b"-ERR "))
            self.assertEqual(errs, 10000, "expected exactly 10,000 -ERR lines")
            self.assertEqual(got[10000], b"+OK")
            say("10,000 garbage lines answered in %.2f s", time.monotonic() - t0)
            self.assertEqual(c.cmd("NOOP"), "+OK")
            self.assert_no_crash(d0)
        with self.subTest("NUL bytes"):
            c = self.client(d)
            for bad in (b"NO\x00OP", b"\x00", b"NOOP\x00", b"USER a\x00b", b"\x00" * 200,
                        b"\x00" * 300, b"QUIT\x00"):
                c.send(bad + b"\r\n")
                reply = c.line()
                self.assertTrue(reply in ("-ERR NUL byte in command", "-ERR line too long"),
                                (bad[:10], reply))
                self.assertEqual(c.cmd("NOOP"), "+OK")
        with self.subTest("over-long command followed by QUIT in the same line"):
            c = self.client(d)
            for pad in (250, 251, 252, 253, 254, 255, 256, 300, 509, 510, 511, 4096, 20000):
                for fill in (b"X", b"NOOP ", b" "):
                    line = (fill * pad)[:pad]
                    if len(line) + 6 <= 255:
                        continue  # not over-long: that would be a legal line
                    c.send(line + b"QUIT\r\n")
                    self.assertEqual(c.line(), "-ERR line too long", (pad, fill))
                    self.assertEqual(c.cmd("NOOP"), "+OK", (pad, fill))
            self.assertFalse(c.closed(0.2), "connection closed: QUIT must never run")
            self.assertNotIn('reason="quit"', d.log())
        self.assert_no_crash(d)

    def test_4_five_thousand_idle_connections(self):
        """5,000 idle connections at once (daemon under ulimit -n 12000,
        --max-clients 10000 --max-per-address 0): all greeted; bound < 8 KiB
        of RSS per connection (a client is a struct, a bufferevent with two
        empty evbuffers and four events: about 2 KiB); all closed cleanly: the
        log shows 5,000 disconnects and the daemon exits 0 on SIGTERM."""
        n = 5000
        need = n + 200
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < need:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
            except (ValueError, OSError):
                self.skipTest("cannot raise RLIMIT_NOFILE to %d (hard %d)" % (need, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        d = self.daemon(TESTD, args=("--max-clients", "10000", "--max-per-address", "0"),
                        nofile=12000)
        with open("/proc/%d/limits" % d.proc.pid) as f:
            self.assertIn("12000", [x for x in f if x.startswith("Max open files")][0])
        probe = self.client(d)
        base = d.rss_kb()
        clients = []
        t0 = time.monotonic()
        try:
            for _ in range(n):
                clients.append(SockClient(d.port, greet=False))
            greeted = greeted_within(clients, 30)
            t_conn = time.monotonic() - t0
            self.assertEqual(len(greeted), n, "only %d of %d greeted" % (len(greeted), n))
            self.assertTrue(all(c.greeting.startswith("+OK POP3 ") for c in clients))
            time.sleep(0.3)
            grown = d.rss_kb() - base
            per = grown * 1.0 / n
            say("%d idle connections: %.2f KiB/connection (RSS +%d KiB), connected and "
                "greeted in %.2f s", n, per, grown, t_conn)
            self.assertEqual(probe.cmd("NOOP"), "+OK")
            for c in clients[::500]:
                self.assertEqual(c.cmd("NOOP"), "+OK")
            if not SANITIZED:
                self.assertLess(per, 8.0, "%.2f KiB per idle connection; bound 8 KiB" % per)
        finally:
            t1 = time.monotonic()
            for c in clients:
                c.close()
        d.wait_log(r"event=disconnect", count=n, timeout=30)
        say("%d connections closed, all disconnects logged in %.2f s", n,
            time.monotonic() - t1)
        probe.close()
        d.wait_log(r"event=disconnect", count=n + 1, timeout=WAIT)
        self.assert_no_crash(d)
        self.stop_cleanly(d)
        log = d.log()
        self.assertEqual(log.count("event=disconnect reason="), n + 1)
        self.assertEqual(log.count("event=connect peer="), n + 1)
        self.assertNotIn('reason="shutdown"', log, "a client was still open at shutdown")

    def test_5_fd_limit_exhausted(self):
        """The daemon under ulimit -n 64, 80 connections: accepting pauses
        (log event=accept-paused) without spinning (< 20% of a CPU while
        paused), the accepted clients keep being served; after 30 of them
        close, accepting resumes (event=accept-resumed) and every waiting
        connection, and 5 new ones, are greeted within 3 s."""
        d = self.daemon(TESTD, args=("--max-per-address", "0"), nofile=64)
        clients = [SockClient(d.port, greet=False) for _ in range(80)]
        for c in clients:
            self.addCleanup(c.close)
        greeted = greeted_within(clients, 3)
        waiting = [c for c in clients if c.greeting is None]
        say("fd limit 64: %d of 80 connections greeted, %d waiting", len(greeted), len(waiting))
        self.assertGreater(len(greeted), 20)
        self.assertGreater(len(waiting), 0, "no connection waits: the fd limit was not reached")
        d.wait_log(r"event=accept-paused error=\"Too many open files\"")
        cpu0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
        for _ in range(3):
            for c in greeted:
                self.assertEqual(c.cmd("NOOP"), "+OK")
            time.sleep(0.5)
        cpu = (cpu_seconds(d.proc.pid) - cpu0) / (time.monotonic() - t0)
        say("fd limit 64: daemon CPU while accepting is paused: %.1f%%", cpu * 100)
        self.assertLess(cpu, 0.2, "the daemon spins while out of descriptors (%.0f%% CPU)"
                        % (cpu * 100))
        for c in greeted[:30]:
            c.close()
        t1 = time.monotonic()
        late = greeted_within(waiting, 3)
        say("fd limit 64: after closing 30, %d of %d waiting greeted in %.2f s", len(late),
            len(waiting), time.monotonic() - t1)
        self.assertEqual(len(late), len(waiting), "waiting connections not accepted after "
                         "descriptors were freed")
        # Resumed because clients were freed: fewer clients than at the limit
        # (the 1 s retry logs the full count).
        def resumed():
            return any(int(x) < len(greeted) for x in
                       re.findall(r"event=accept-resumed clients=(\d+)", d.log()))
        deadline = time.monotonic() + WAIT
        while not resumed() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(resumed(), "no event=accept-resumed after clients were freed")
        fresh = [SockClient(d.port, greet=False) for _ in range(5)]
        for c in fresh:
            self.addCleanup(c.close)
        self.assertEqual(len(greeted_within(fresh, 3)), 5, "new connections not greeted")
        for c in greeted[30:] + late + fresh:
            self.assertEqual(c.cmd("NOOP"), "+OK")
        self.assert_no_crash(d)
        for c in clients + fresh:
            c.close()
        self.stop_cleanly(d)


    def test_5b_fd_limit_exhausted_controller_connects(self):
        """As test 5 (ulimit -n 64), with a control socket: a controller that
        connects while descriptors are exhausted must not make the daemon
        spin or flood its log (bounds: < 20% of a CPU and < 100 log lines in
        the second after it connects); once descriptors are freed, it is
        accepted and greeted, and POP3 clients are served throughout."""
        d = self.daemon(TESTD, args=("--max-per-address", "0"), control=True, nofile=64)
        clients = [SockClient(d.port, greet=False) for _ in range(80)]
        for c in clients:
            self.addCleanup(c.close)
        greeted = greeted_within(clients, 3)
        self.assertLess(len(greeted), 80, "the fd limit was not reached")
        d.wait_log(r"event=accept-paused")
        u = socket.socket(socket.AF_UNIX)
        self.addCleanup(u.close)
        u.connect(d.sock)  # completes in the kernel: the daemon cannot accept it
        nlines = len(d.lines)
        cpu0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
        time.sleep(1.0)
        cpu = (cpu_seconds(d.proc.pid) - cpu0) / (time.monotonic() - t0)
        grew = len(d.lines) - nlines
        with d.lock:
            sample = d.lines[-1] if d.lines else ""
        say("fd limit 64, controller waiting: daemon CPU %.1f%%, %d log lines in 1 s "
            "(last: %s)", cpu * 100, grew, sample[:90])
        for c in greeted[:3]:
            self.assertEqual(c.cmd("NOOP"), "+OK")
        for c in greeted[:30]:
            c.close()
        u.settimeout(5)
        first = u.recv(65536).split(b"\n")[0]
        self.assertEqual(json.loads(first)["type"], "greeting",
                         "the controller was not greeted after descriptors were freed")
        self.assertLess(cpu, 0.2, "the daemon spins (%.0f%% CPU) while a controller waits to "
                        "be accepted and descriptors are exhausted" % (cpu * 100))
        self.assertLess(grew, 100, "%d log lines in 1 s while a controller waits to be accepted "
                        "(%s)" % (grew, sample))
        self.assert_no_crash(d)


# A controller in its own process, for SIGSTOP and kill -9.  It registers
# argv[2] (comma-separated), prints READY, and, when argv[3] is a path,
# answers every pop3d_cmd_xget with send_file of that path (prints SENT).
CONTROLLER_PY = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
json.loads(f.readline())
reg = {"cmd": "register", "id": 1, "events": sys.argv[2].split(",")}
s.sendall((json.dumps(reg) + "\n").encode())
while json.loads(f.readline()).get("type") != "reply":
    pass
print("READY", flush=True)
if len(sys.argv) < 4:
    time.sleep(120)
    sys.exit(0)
deadline = time.time() + 120
while time.time() < deadline:
    m = json.loads(f.readline())
    if m.get("event") == "pop3d_cmd_xget":
        s.sendall((json.dumps({"cmd": "send_file", "id": 2, "client": m["client"],
                               "tag": m["tag"], "path": sys.argv[3],
                               "status": "+OK sending"}) + "\n").encode())
    elif m.get("type") == "reply" and m.get("id") == 2:
        print("SENT %s" % m["ok"], flush=True)
"""


class Answerer(threading.Thread):
    """A controller (own connection) answering every pop3d_cmd_* it gets:
    QUIT with '+OK bye', anything else with '+OK'."""

    def __init__(self, path, events):
        super().__init__(daemon=True)
        self.c = Controller(path)
        self.c.ok("register", events=events)
        self.stop = threading.Event()
        self.answered = 0
        self.start()

    def run(self):
        s = self.c.s
        s.settimeout(0.1)
        buf = self.c.buf
        while not self.stop.is_set():
            try:
                chunk = s.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            out = []
            for line in lines:
                m = json.loads(line)
                if m.get("type") == "event" and m["event"].startswith("pop3d_cmd_"):
                    out.append(json.dumps({"cmd": "send_to_client", "client": m["client"],
                                           "tag": m["tag"], "text": "+OK bye" if
                                           m["event"] == "pop3d_cmd_quit" else "+OK"}) + "\n")
            if out:
                self.answered += len(out)
                try:
                    s.sendall("".join(out).encode())
                except OSError:
                    return

    def close(self):
        self.stop.set()
        self.join(WAIT)
        self.c.close()


class GarbageReader(threading.Thread):
    """Reads a raw controller connection: parses reply lines, counts codes."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.codes = {}
        self.ok_ids = []
        self.eof = False
        self.lines = 0
        self.start()

    def run(self):
        buf = b""
        self.sock.settimeout(60)
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                m = json.loads(line)
                self.lines += 1
                if m.get("type") != "reply":
                    continue
                if m["ok"]:
                    self.ok_ids.append(m["id"])
                else:
                    code = m["error"]["code"]
                    self.codes[code] = self.codes.get(code, 0) + 1


class Controllers(AbuseTest):
    def test_6_misbehaving_controllers(self):
        """Four bad controllers, one after another, against pop3d with an
        answering controller serving the POP3 clients.  After each: a POP3
        client's NOOP (round trip < 1 s), a fresh connection's greeting and
        another controller's ping all work.
        (a) SIGSTOPed controller registered to 'all' while 20 clients do
            NOOPs: their round trip stays < 1 s; the stopped one is dropped
            (stall 2 s or the 8 MiB cap) and RSS grows < 8 MiB + 4 MiB.
        (b) kill -9 of the controller whose send_file is streaming 20 MB to
            a client: the client gets the complete response or a closed
            connection, never a fake terminator (what it got is a prefix of
            the true response).
        (c) 10 MB of garbage (random lines, a 2 MiB line, binary with NULs):
            only error replies (parse_error, limit_exceeded among them); it
            stays connected (and answers ping) or is dropped with a reason.
        (d) valid JSON with absurd values (2**63 ids, negative clients,
            10,000-deep nesting, 100,000 register names, 900 KB strings):
            each gets an error reply with the expected code."""
        d = self.daemon(POP3D, control=True,
                        args=("--command", "XGET", "--control-stall-timeout", "2",
                              "--max-per-address", "0"))
        ans = Answerer(d.sock, ["cmd_noop", "cmd_quit", "cmd_user"])
        self.addCleanup(ans.close)
        probe = self.ctl(d, name="probe")
        hc = self.client(d)
        rtts = []

        def healthy(what):
            self.assert_no_crash(d)
            rtts.append(self.rtt(hc))
            self.assertLess(rtts[-1], 1.0, "NOOP round trip %.3f s after %s" % (rtts[-1], what))
            self.assertTrue(probe.ok("ping")["seq"] > 0, what)
            fresh = SockClient(d.port)
            self.assertTrue(fresh.greeting.startswith("+OK POP3 "), what)
            fresh.close()

        healthy("start")
        base = d.rss_kb()
        script = os.path.join(self.tmp, "controller.py")
        with open(script, "w") as f:
            f.write(CONTROLLER_PY)

        # (a) SIGSTOPed controller.
        stopped = self.proc([sys.executable, script, d.sock, "all"], stdout=subprocess.PIPE,
                            bufsize=0)
        self.assertEqual(proc_line(stopped), "READY")
        stopped.send_signal(signal.SIGSTOP)
        clients = [self.client(d) for _ in range(20)]
        t0 = time.monotonic()
        worst, rounds, peak = 0.0, 0, 0
        rx = r"controller=\d+ event=disconnect reason=\"(output backlog over the cap|" \
             r"no output progress \(stalled\))\""
        while time.monotonic() - t0 < 20 and (rounds < 50 or
                                              d.wait_log(rx, timeout=0, must=False) is None):
            t1 = time.monotonic()
            for c in clients:
                c.send("NOOP\r\n")
            for c in clients:
                self.assertEqual(c.line(), "+OK")
            worst = max(worst, time.monotonic() - t1)
            rounds += 1
            if rounds % 10 == 0:
                peak = max(peak, d.rss_kb() - base)
        m = d.wait_log(rx, timeout=WAIT)
        say("SIGSTOPed controller: dropped (%s) after %.1f s; 20 clients did %d NOOP rounds, "
            "worst round %.1f ms; RSS growth %d KiB", m.group(1), time.monotonic() - t0,
            rounds, worst * 1000, peak)
        self.assertLess(worst, 1.0, "a round of 20 NOOPs took %.3f s with a stopped "
                        "controller; bound 1 s" % worst)
        if not SANITIZED:
            self.assertLess(peak, 12 * 1024, "RSS grew %d KiB for a stopped controller; bound "
                            "8 MiB cap + 4 MiB" % peak)
        stopped.send_signal(signal.SIGCONT)
        stopped.kill()
        stopped.wait(WAIT)
        for c in clients:
            c.close()
        healthy("the SIGSTOPed controller")

        # (b) kill -9 in the middle of send_file.
        path = os.path.join(self.tmp, "big")
        fsize, body_block, reps = write_message(path, 6, 20 * 1000 * 1000)
        whole = b"+OK sending\r\n" + body_block * reps + b".\r\n"
        killer = self.proc([sys.executable, script, d.sock, "cmd_xget", path],
                           stdout=subprocess.PIPE, bufsize=0)
        self.assertEqual(proc_line(killer), "READY")
        p = self.client(d, rcvbuf=65536)
        p.send("XGET\r\n")
        self.assertEqual(proc_line(killer), "SENT True")
        first = b""
        deadline = time.monotonic() + WAIT
        while len(first) < MIB and time.monotonic() < deadline:
            p.s.settimeout(WAIT)
            chunk = p.s.recv(65536)
            if not chunk:
                break
            first += chunk
        self.assertGreaterEqual(len(first), MIB)
        killer.kill()
        killer.wait(WAIT)
        # Controllers: 1 answerer, 2 probe, 3 stopped, 4 killer, 5 garbage.
        d.wait_log(r"controller=4 event=disconnect reason=")
        rest = bytearray()
        deadline = time.monotonic() + 60
        while len(first) + len(rest) < len(whole) and time.monotonic() < deadline:
            p.s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = p.s.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            rest += chunk
        got = first + bytes(rest)
        complete = got == whole
        say("kill -9 during send_file: client got %d of %d octets, %s", len(got), len(whole),
            "complete" if complete else "then a closed connection")
        self.assertTrue(whole.startswith(got), "the client got something other than a prefix "
                        "of the true response (a fake terminator?) at octet %d" %
                        next((i for i in range(len(got)) if got[i] != whole[i]), len(got)))
        if complete:
            self.assertEqual(p.cmd("NOOP"), "+OK")
        else:
            self.assertTrue(p.closed(), "truncated response but the connection stays open")
        healthy("kill -9 during send_file")

        # (c) 10 MB of garbage.
        rnd = random.Random(6)
        parts = []
        size = 0
        while size < 4 * MIB:
            line = bytes(rnd.randrange(1, 256) for _ in range(rnd.randrange(1, 3000)))
            line = line.replace(b"\n", b" ") + b"\n"
            parts.append(line)
            size += len(line)
        parts.append(b"{" * (2 * MIB) + b"\n")
        parts.append(rnd.randbytes(4 * MIB - 1) + b"\n")
        garbage = b"".join(parts)
        self.assertGreaterEqual(len(garbage), 10 * 1000 * 1000)
        g = socket.socket(socket.AF_UNIX)
        self.addCleanup(g.close)
        g.connect(d.sock)
        reader = GarbageReader(g)
        t0 = time.monotonic()
        s = Sender(g, garbage + b'\n{"cmd":"ping","id":"after-garbage"}\n')
        s.join(60)
        deadline = time.monotonic() + 30
        while ("after-garbage" not in reader.ok_ids and not reader.eof and
               time.monotonic() < deadline):
            time.sleep(0.05)
        gid = 5
        d.wait_log(r"controller=5 event=connect")
        dropped = d.wait_log(r"controller=%s event=disconnect reason=\"([^\"]+)\"" % gid,
                             timeout=WAIT if reader.eof else 0, must=False)
        say("10 MB of garbage in %.2f s: replies %s; %s", time.monotonic() - t0,
            sorted(reader.codes.items()),
            "dropped (%s)" % dropped.group(1) if dropped else "still connected")
        self.assertEqual(set(reader.codes) - {"parse_error", "limit_exceeded", "invalid_request",
                                              "unknown_command"}, set())
        if dropped is None:
            self.assertIn("after-garbage", reader.ok_ids, "the garbage controller is neither "
                          "answered nor dropped")
            self.assertGreater(reader.codes.get("parse_error", 0), 100)
            self.assertGreaterEqual(reader.codes.get("limit_exceeded", 0), 1)
        healthy("10 MB of garbage")

        # (d) Absurd values.
        a = self.ctl(d, name="absurd")
        a.ok("plugin_add", alias="absurd")
        big = "a" * 900000
        nest = "[" * 10000 + "]" * 10000
        names = json.dumps(["x"] * 100000)
        cases = [
            ('{"cmd":"ping","id":%d}' % 2 ** 63, "parse_error"),
            ('{"cmd":"ping","id":%d}' % 2 ** 64, "parse_error"),
            ('{"cmd":"ping","id":1e999}', "parse_error"),
            ('{"cmd":"send_to_client","client":%d,"text":"+OK"}' % (2 ** 63 - 1),
             "unknown_client"),
            ('{"cmd":"send_to_client","client":%d,"text":"+OK"}' % 2 ** 63, "parse_error"),
            ('{"cmd":"send_to_client","client":-1,"text":"+OK"}', "invalid_argument"),
            ('{"cmd":"send_to_client","client":%d,"text":"+OK"}' % -(2 ** 63),
             "invalid_argument"),
            ('{"cmd":"send_to_client","client":0,"text":"+OK"}', "invalid_argument"),
            ('{"cmd":"send_to_client","client":1.5,"text":"+OK"}', "invalid_argument"),
            ('{"cmd":"send_to_client","client":"1","text":"+OK"}', "invalid_argument"),
            ('{"cmd":"send_to_client","client":1,"tag":-5,"text":"+OK"}', "invalid_argument"),
            ('{"cmd":"send_to_client","client":%d,"tag":%d,"text":"+OK"}' % (1, 2 ** 63 - 1),
             "stale"),
            ('{"cmd":"send_to_client","client":%d,"text":"+OK %s"}' % (2 ** 63 - 1, big),
             "unknown_client"),
            ('{"cmd":"send_to_client","client":%d,"lines":%s}' % (2 ** 63 - 1, names),
             "unknown_client"),
            ('{"cmd":"send_to_client","client":1,"lines":%s}' % json.dumps(["x"] * 100001),
             "invalid_argument"),
            ('{"cmd":"disconnect","client":%d}' % (2 ** 63 - 1), "unknown_client"),
            ('{"cmd":"disconnect","client":-7}', "invalid_argument"),
            ('{"cmd":"send_file","client":1,"path":"/etc/hostname","status":"+OK",'
             '"top_lines":%d}' % 2 ** 62, "invalid_argument"),
            ('{"cmd":"send_file","client":1,"path":"/etc/hostname","status":"+OK",'
             '"top_lines":-1}', "invalid_argument"),
            ('{"cmd":"send_file","client":%d,"path":"/%s","status":"+OK"}'
             % (2 ** 63 - 1, big), "unknown_client"),
            ('{"cmd":"verdict","hook":%d,"eat":"none"}' % (2 ** 63 - 1), "stale"),
            ('{"cmd":"verdict","hook":-1,"eat":"none"}', "invalid_argument"),
            ('{"cmd":"verdict","hook":1,"eat":"%s"}' % big, "invalid_argument"),
            ('{"cmd":"ping","id":%s}' % nest, "parse_error"),
            ('{"cmd":"ping","id":%s1%s}' % ('{"a":' * 10000, "}" * 10000), "parse_error"),
            ('{"cmd":"send_event","event":"x_deep","args":%s}' % nest, "parse_error"),
            ('{"cmd":"send_event","event":"x_many","args":%s}' % json.dumps(list(range(65))),
             "invalid_argument"),
            ('{"cmd":"send_event","event":"y%s"}' % big, "unknown_event"),
            ('{"cmd":"register","events":%s}' % names, "limit_exceeded"),
            ('{"cmd":"register","events":"all"}', "invalid_argument"),
            ('{"cmd":"plugin_register","alias":"absurd","events":%s}' % names,
             "limit_exceeded"),
            ('{"cmd":"plugin_register","alias":"absurd","events":%s}'
             % json.dumps(["x"] * 100001), "invalid_argument"),
            ('{"cmd":"plugin_register","alias":"absurd","events":["cmd_user"],'
             '"timeout_ms":%d}' % 2 ** 62, "invalid_argument"),
            ('{"cmd":"plugin_add","alias":"p","priority":%d}' % 2 ** 62, "invalid_argument"),
            ('{"cmd":"plugin_add","alias":"%s"}' % big, "invalid_argument"),
            ('{"cmd":"hello","name":"%s"}' % big, "invalid_argument"),
            ('{"cmd":"c%s"}' % big, "unknown_command"),
            ('{"cmd":"nope","id":"%s"}' % big, "unknown_command"),
            ('{"cmd":"ping","x":"\\u0000"}', "invalid_argument"),
            ('{"cmd":"ping\\u0000x"}', "invalid_request"),
        ]
        t0 = time.monotonic()
        for line, code in cases:
            self.assertLess(len(line), MIB, line[:60])
            a.send_raw(line + "\n")
            r = a.reply(timeout=30)
            self.assertFalse(r["ok"], line[:80])
            self.assertEqual(r["error"]["code"], code, line[:80])
            healthy(line[:60])
        say("absurd values: %d cases, each an error reply, in %.2f s", len(cases),
            time.monotonic() - t0)
        self.assertEqual(a.ok("ping")["seq"] > 0, True)
        say("controllers: POP3 NOOP round trip after each abuse: max %.1f ms over %d checks",
            max(rtts) * 1000, len(rtts))
        ans.close()
        self.stop_cleanly(d)


class Watcher(threading.Thread):
    """A controller registered to 'all', counting pop3d_connection and
    pop3d_disconnected per client id; replies are collected by id."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.c = Controller(path)
        self.c.ok("register", events=["all"])
        self.conn, self.disc = {}, {}
        self.reply_ids = set()
        self.lock = threading.Lock()
        self.eof = False
        self.start()

    def run(self):
        s = self.c.s
        buf = self.c.buf
        s.settimeout(1)
        while True:
            try:
                chunk = s.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            with self.lock:
                for line in lines:
                    m = json.loads(line)
                    if m.get("type") == "reply":
                        self.reply_ids.add(m["id"])
                    elif m.get("event") == "pop3d_connection":
                        self.conn[m["client"]] = self.conn.get(m["client"], 0) + 1
                    elif m.get("event") == "pop3d_disconnected":
                        cid = m["args"][0]
                        self.disc[cid] = self.disc.get(cid, 0) + 1

    def barrier(self, rid, timeout=WAIT):
        """A ping: every earlier event is in the stream before its reply."""
        self.c.send_raw(json.dumps({"cmd": "ping", "id": rid}) + "\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if rid in self.reply_ids:
                    return True
            time.sleep(0.02)
        return False


class Disconnects(AbuseTest):
    def test_7_disconnect_at_every_step(self):
        """Clients vanish (FIN and RST) at every step of a session: right
        after connect, mid-command line, after a command but before its
        answer (UIDL answered after 200 ms; RSET never answered), mid
        multi-line response of a 5 MB RETR, mid-pipeline, in a SASL exchange,
        and mid-hook: a controller plugin registered for cmd_stat never
        answers; clients close while the hook is pending, some hooks then
        get a late verdict, the rest resolve by timeout or because the
        plugin's controller goes away.  Bounds: no crash; every
        pop3d_connection seen by an 'all' watcher is matched by exactly one
        pop3d_disconnected (by client id), none without a connection; all
        clients are gone within 15 s; the daemon exits 0 on SIGTERM."""
        d = self.daemon(TESTD, control=True,
                        args=("--response-timeout", "2", "--max-per-address", "0"))
        w = Watcher(d.sock)
        self.addCleanup(w.c.close)
        probe = self.ctl(d, name="probe")
        plug = self.ctl(d, name="hang")
        plug.ok("plugin_add", alias="hang")
        plug.ok("plugin_register", alias="hang", events=["cmd_stat"], timeout_ms=1500)
        path = os.path.join(self.tmp, "big")
        write_message(path, 7, 5 * 1000 * 1000)
        reps = 6
        counts = {}

        def hook_of(ctl, timeout=WAIT):
            deadline = time.monotonic() + timeout
            while True:
                for i, m in enumerate(ctl.events):
                    if m.get("type") == "hook":
                        return ctl.events.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no hook")
                ctl.events.append(ctl.read(left))

        def vanish(c, rst):
            if rst:
                c.reset()
            else:
                c.close()

        steps = {}

        def step(name):
            def deco(fn):
                steps[name] = fn
                return fn
            return deco

        @step("right after connect")
        def _(rst):
            vanish(SockClient(d.port, greet=False), rst)

        @step("after the greeting")
        def _(rst):
            vanish(SockClient(d.port), rst)

        @step("mid-command line")
        def _(rst):
            c = SockClient(d.port)
            c.send("NOO")
            vanish(c, rst)

        @step("before the answer (UIDL, 200 ms)")
        def _(rst):
            c = SockClient(d.port)
            c.send("UIDL\r\n")
            vanish(c, rst)

        @step("before the answer (RSET, never)")
        def _(rst):
            c = SockClient(d.port)
            c.send("RSET\r\nNOOP\r\n")
            vanish(c, rst)

        @step("mid multi-line RETR")
        def _(rst):
            c = SockClient(d.port, rcvbuf=65536)
            c.send("RETR %s\r\n" % path)
            got, deadline = 0, time.monotonic() + WAIT
            while got < 200000 and time.monotonic() < deadline:
                chunk = c.s.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
            self.assertGreaterEqual(got, 200000, "RETR stopped early")
            vanish(c, rst)

        @step("mid-pipeline")
        def _(rst):
            c = SockClient(d.port)
            c.send(b"NOOP\r\nUIDL\r\nLIST\r\n" * 300)
            c.line()
            vanish(c, rst)

        @step("in a SASL exchange")
        def _(rst):
            c = SockClient(d.port)
            self.assertEqual(c.cmd("AUTH PLAIN"), "+ ")
            vanish(c, rst)

        late = []

        @step("mid-hook (pending)")
        def _(rst):
            c = SockClient(d.port)
            c.send("STAT\r\n")
            h = hook_of(plug)
            vanish(c, rst)
            late.append(h["hook"])

        t0 = time.monotonic()
        which = {}  # client id -> step: clients are numbered in connection order
        for i in range(reps):
            for name, fn in steps.items():
                which[len(which) + 1] = "%s (%s)" % (name, "RST" if i % 2 else "FIN")
                fn(i % 2 == 1)
                counts[name] = counts.get(name, 0) + 1
            # Late verdicts for some of the hooks of clients already gone.
            if late:
                r = plug.call("verdict", hook=late.pop(0), eat="none")
                self.assertTrue(r["ok"] or r["error"]["code"] == "stale", r)
        # Hooks still pending when their plugin's controller goes away.
        stuck = []
        for _ in range(5):
            which[len(which) + 1] = "mid-hook, plugin's controller gone"
            c = SockClient(d.port)
            c.send("STAT\r\n")
            hook_of(plug)
            stuck.append(c)
        for c in stuck[:3]:
            c.close()
        plug.close()
        for c in stuck[3:]:
            # The hook resolves with 'none': testd answers STAT.
            self.assertEqual(c.line(), "+OK 2 320")
            c.close()
        say("disconnects: %d sessions abandoned at %d steps (FIN and RST) in %.2f s",
            len(which), len(steps) + 1, time.monotonic() - t0)
        self.assert_no_crash(d)
        # Everybody gone within 15 s (response timeout 2 s, hook timeout 1.5 s).
        t1 = time.monotonic()
        deadline = t1 + 15
        while probe.ok("list_clients")["clients"] and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {x["client"]: x for x in probe.ok("list_clients")["clients"]}
        say("disconnects: all but %d clients gone after %.1f s", len(left),
            time.monotonic() - t1)
        self.assertTrue(w.barrier("final"), "watcher barrier not answered")
        with w.lock:
            conn, disc = dict(w.conn), dict(w.disc)
        say("disconnects: watcher saw %d pop3d_connection and %d pop3d_disconnected",
            sum(conn.values()), sum(disc.values()))
        self.assertEqual(sorted(conn), list(range(1, len(which) + 1)),
                         "pop3d_connection missing for some clients")
        self.assertEqual([k for k, v in conn.items() if v != 1], [], "connection seen twice")
        self.assertEqual(sorted(k for k in disc if k not in conn), [],
                         "pop3d_disconnected without pop3d_connection")
        self.assertEqual([k for k, v in disc.items() if v != 1], [],
                         "pop3d_disconnected more than once")
        self.assertEqual(sorted(k for k in conn if k not in left and disc.get(k) != 1), [],
                         "clients gone without a pop3d_disconnected")
        self.assertEqual(sorted(set(which[k] for k in left)), [],
                         "clients still connected 15 s after they vanished (the peer closed; "
                         "response timeout 2 s, hook timeout 1.5 s): %r" %
                         [(k, which[k], left[k]["idle"], left[k]["tag"]) for k in left][:6])
        self.assert_no_crash(d)
        self.stop_cleanly(d)



class SaslIdle(AbuseTest):
    def test_8_sasl_continuation_idles_out(self):
        """A client that starts AUTH PLAIN, gets the '+ ' continuation and
        then sends nothing is idle like any other: with --timeout 1 it gets
        the autologout within 4 s.  One that half-closes (FIN) there is
        closed within 4 s as well.  (Otherwise any client can hold a
        connection slot forever.)"""
        d = self.daemon(TESTD, args=("--timeout", "1"))
        quiet = self.client(d)
        self.assertEqual(quiet.cmd("AUTH PLAIN"), "+ ")
        gone = self.client(d)
        self.assertEqual(gone.cmd("AUTH PLAIN"), "+ ")
        gone.s.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        closed_quiet = quiet.closed(4)
        closed_gone = gone.closed(max(0.1, 4 - (time.monotonic() - t0)))
        say("SASL continuation with --timeout 1: silent client closed=%s, half-closed client "
            "closed=%s after %.1f s", closed_quiet, closed_gone, time.monotonic() - t0)
        self.assertTrue(closed_quiet, "a client silent after the SASL '+ ' continuation is "
                        "never timed out (--timeout 1, waited 4 s)")
        self.assertIn(b"-ERR autologout", quiet.buf)
        self.assertTrue(closed_gone, "a client that half-closed after the SASL '+ ' "
                        "continuation is never closed (waited 4 s)")
        self.assert_no_crash(d)

if __name__ == "__main__":
    main()
