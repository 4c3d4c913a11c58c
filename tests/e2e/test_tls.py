#!/usr/bin/env python3
"""End-to-end tests of TLS (STLS and implicit), the PROXY protocol (v1, v2)
and several listeners.  Certificates are generated at test time with the
openssl CLI; every address is loopback."""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest
import poplib

from harness import POP3D, TESTD, WAIT, Client, Controller, Daemon, main

TMP = tempfile.mkdtemp(prefix="pop3d-tls-")


def make_cert(name, cn):
    cert, key = os.path.join(TMP, name + ".pem"), os.path.join(TMP, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=" + cn],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def ports(d):
    """{(tls, proxy): port} from the daemon's listening lines."""
    out = {}
    for m in re.finditer(r"event=listening address=(\S+) port=(\d+) tls=(\d) proxy=(\d)",
                         d.log()):
        out.setdefault((m.group(1), m.group(3) == "1", m.group(4) == "1"), int(m.group(2)))
    return out


class TlsTest(unittest.TestCase):
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.cert, cls.key = make_cert("server", "pop3d-test-one")

    def setUp(self):
        args = ["--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0,tls",
                "--listen", "127.0.0.1:0,proxy", "--listen", "127.0.0.1:0,tls,proxy",
                "--tls-cert", self.cert, "--tls-key", self.key,
                "--tls-handshake-timeout", "1", "--proxy-timeout", "1",
                "--proxy-trusted", "127.0.0.1/32"] + list(self.extra)
        self.d = Daemon(TESTD, args=args)
        p = ports(self.d)
        self.plain = p[("127.0.0.1", False, False)]
        self.tlsport = p[("127.0.0.1", True, False)]
        self.proxy = p[("127.0.0.1", False, True)]
        self.tlsproxy = p[("127.0.0.1", True, True)]

    def tearDown(self):
        self.d.stop()

    def ctl(self):
        c = Controller(self.d.sock)
        self.addCleanup(c.close)
        return c


class Stls(TlsTest):
    def test_curl_ssl_reqd_and_pop3s(self):
        if shutil.which("curl") is None:
            self.skipTest("curl not installed")
        for url, extra in (("pop3://bob:secret@127.0.0.1:%d/" % self.plain, ["--ssl-reqd"]),
                           ("pop3s://bob:secret@127.0.0.1:%d/" % self.tlsport, [])):
            p = subprocess.run(["curl", "-sk", "--max-time", "10"] + extra + [url],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 0, (url, p.stderr))
            self.assertEqual(p.stdout.split(), ["1", "120", "2", "200"])

    def test_poplib_stls_and_pop3_ssl(self):
        p = poplib.POP3("127.0.0.1", self.plain, timeout=WAIT)
        self.assertIn("STLS", p.capa())
        self.assertEqual(p.stls(client_ctx()), b"+OK Begin TLS negotiation")
        p.user("bob")
        p.pass_("secret")
        self.assertEqual(p.stat(), (2, 320))
        self.assertEqual(p.quit(), b"+OK bye")
        p = poplib.POP3_SSL("127.0.0.1", self.tlsport, context=client_ctx(), timeout=WAIT)
        self.assertTrue(p.getwelcome().startswith(b"+OK POP3 "))
        self.assertNotIn("STLS", p.capa())
        p.user("bob")
        p.pass_("secret")
        self.assertEqual(p.stat(), (2, 320))
        self.assertEqual(p.quit(), b"+OK bye")

    def test_openssl_s_client_starttls(self):
        p = subprocess.run(["openssl", "s_client", "-quiet", "-crlf", "-starttls", "pop3",
                            "-connect", "127.0.0.1:%d" % self.plain],
                           input="NOOP\r\nQUIT\r\n", capture_output=True, text=True,
                           timeout=WAIT)
        self.assertIn("+OK\n", p.stdout.replace("\r", ""))
        self.assertIn("+OK bye", p.stdout)
        self.d.wait_log(r"event=tls version=TLSv1\.[23] cipher=")

    def test_pipelined_after_stls_discarded(self):
        s = socket.create_connection(("127.0.0.1", self.plain), timeout=WAIT)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"+OK POP3"))
        s.sendall(b"STLS\r\nCAPA\r\n")
        self.assertEqual(f.readline(), b"+OK Begin TLS negotiation\r\n")
        # Nothing else in clear: the CAPA was discarded, not answered.
        s.settimeout(0.3)
        try:
            extra = s.recv(100, socket.MSG_PEEK)
        except socket.timeout:
            extra = b""
        self.assertEqual(extra[:1], b"\x16" if extra else b"")  # at most TLS records
        s.settimeout(WAIT)
        t = client_ctx().wrap_socket(s)
        tf = t.makefile("rb")
        t.sendall(b"NOOP\r\n")
        # ...and not in TLS either: the first answer is NOOP's.
        self.assertEqual(tf.readline(), b"+OK\r\n")
        self.d.wait_log(r"client=1 event=stls-discard octets=6")
        t.close()

    def test_stls_twice_and_after_login(self):
        s = socket.create_connection(("127.0.0.1", self.plain), timeout=WAIT)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"STLS\r\n")
        self.assertEqual(f.readline(), b"+OK Begin TLS negotiation\r\n")
        t = client_ctx().wrap_socket(s)
        tf = t.makefile("rb")
        t.sendall(b"STLS\r\n")
        self.assertEqual(tf.readline(), b"-ERR TLS is already active\r\n")
        t.close()
        c = Client(self.plain)
        self.assertEqual(c.cmd("USER bob"), "+OK user bob")
        self.assertEqual(c.cmd("PASS secret"), "+OK logged in")
        self.assertEqual(c.cmd("STLS"), "-ERR STLS is only allowed before authentication")
        self.assertEqual(c.cmd("NOOP"), "+OK")
        c.close()

    def test_handshake_timeout(self):
        s = socket.create_connection(("127.0.0.1", self.tlsport), timeout=WAIT)
        t0 = time.monotonic()
        self.assertEqual(s.recv(100), b"")  # no greeting, closed
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)
        self.d.wait_log(r"event=tls-handshake-timeout")
        s.close()

    def test_tls_state_in_events(self):
        c = self.ctl()
        self.assertTrue(c.greeting["stls"])
        self.assertIn({"address": "127.0.0.1", "port": self.tlsport, "tls": True,
                       "proxy": False}, c.greeting["listeners"])
        c.ok("register", events=["connection", "tls", "cmd_noop"])
        p = poplib.POP3_SSL("127.0.0.1", self.tlsport, context=client_ctx(), timeout=WAIT)
        e = c.event("pop3d_connection")
        self.assertTrue(e["tls"])
        e = c.event("pop3d_tls")
        self.assertEqual(e["args"][0], e["client"])
        self.assertRegex(e["args"][1], r"^TLSv1\.[23]$")
        self.assertTrue(e["args"][2])
        p.noop()
        self.assertTrue(c.event("pop3d_cmd_noop")["tls"])
        p.quit()
        q = poplib.POP3("127.0.0.1", self.plain, timeout=WAIT)
        self.assertFalse(c.event("pop3d_connection")["tls"])
        q.noop()
        self.assertFalse(c.event("pop3d_cmd_noop")["tls"])
        q.stls(client_ctx())
        c.event("pop3d_tls")
        q.noop()
        self.assertTrue(c.event("pop3d_cmd_noop")["tls"])
        q.quit()

    def test_sighup_reloads_certificate(self):
        old = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", self.tlsport)))
        old_der = old.getpeercert(binary_form=True)
        of = old.makefile("rb")
        self.assertTrue(of.readline().startswith(b"+OK POP3"))
        cert2, key2 = make_cert("second", "pop3d-test-two")
        shutil.copy(cert2, self.cert)
        shutil.copy(key2, self.key)
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"event=tls-loaded", count=2)
        new = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", self.tlsport)))
        self.assertNotEqual(new.getpeercert(binary_form=True), old_der)
        new.close()
        old.sendall(b"NOOP\r\n")  # the client connected before still works
        self.assertEqual(of.readline(), b"+OK\r\n")
        old.close()
        # A broken file keeps the working context.
        with open(self.cert, "w") as f:
            f.write("garbage")
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"event=tls-reload-failed")
        third = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", self.tlsport)))
        self.assertTrue(third.makefile("rb").readline().startswith(b"+OK POP3"))
        third.close()
        shutil.copy(cert2, self.cert)


def proxy_v2(src, dst, sport, dport, family=socket.AF_INET, command=1):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if command == 0:
        return sig + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    if family == socket.AF_INET:
        body = socket.inet_pton(family, src) + socket.inet_pton(family, dst) + \
            struct.pack("!HH", sport, dport)
        fam = 0x11
    else:
        body = socket.inet_pton(family, src) + socket.inet_pton(family, dst) + \
            struct.pack("!HH", sport, dport)
        fam = 0x21
    return sig + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


class Proxy(TlsTest):
    def connect_proxy(self, header, port=None):
        s = socket.create_connection(("127.0.0.1", port or self.proxy), timeout=WAIT)
        s.sendall(header)
        return s

    def test_v1_addresses_become_the_client(self):
        c = self.ctl()
        c.ok("register", events=["connection"])
        s = self.connect_proxy(b"PROXY TCP4 192.0.2.7 198.51.100.1 40001 110\r\n")
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"+OK POP3"))
        e = c.event("pop3d_connection")
        self.assertEqual(e["args"][1:], ["192.0.2.7", 40001, "198.51.100.1", 110])
        rows = c.ok("list_clients")["clients"]
        self.assertEqual(rows[0]["peer"], "192.0.2.7")
        self.d.wait_log(r"event=proxy peer=192\.0\.2\.7:40001")
        s.sendall(b"NOOP\r\n")
        self.assertEqual(f.readline(), b"+OK\r\n")
        s.close()

    def test_v2_ipv4_ipv6_and_local(self):
        c = self.ctl()
        c.ok("register", events=["connection"])
        for hdr, peer in ((proxy_v2("203.0.113.9", "198.51.100.2", 5555, 995), "203.0.113.9"),
                          (proxy_v2("2001:db8::7", "2001:db8::1", 6666, 110, socket.AF_INET6),
                           "2001:db8::7"),
                          (proxy_v2(None, None, 0, 0, command=0), "127.0.0.1")):
            s = self.connect_proxy(hdr)
            self.assertTrue(s.makefile("rb").readline().startswith(b"+OK POP3"))
            self.assertEqual(c.event("pop3d_connection")["args"][1], peer)
            s.close()

    def test_proxy_then_tls(self):
        s = self.connect_proxy(b"PROXY TCP4 192.0.2.8 198.51.100.1 40002 995\r\n",
                               self.tlsproxy)
        t = client_ctx().wrap_socket(s)
        tf = t.makefile("rb")
        self.assertTrue(tf.readline().startswith(b"+OK POP3"))
        t.sendall(b"NOOP\r\n")
        self.assertEqual(tf.readline(), b"+OK\r\n")
        t.close()

    def test_bad_missing_and_late_headers_close_without_greeting(self):
        for data in (b"USER bob\r\n", b"PROXY TCP4 300.1.1.1 1.1.1.1 1 1\r\n",
                     b"PROXY TCP9 1.1.1.1 1.1.1.1 1 1\r\n",
                     b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x0c" + b"x" * 12,
                     b"x" * 600):
            s = self.connect_proxy(data)
            try:
                got = s.recv(100)
            except ConnectionResetError:
                got = b""
            self.assertEqual(got, b"", data)
            s.close()
        s = socket.create_connection(("127.0.0.1", self.proxy), timeout=WAIT)
        t0 = time.monotonic()
        self.assertEqual(s.recv(100), b"")  # nothing sent: deadline
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)
        s.close()
        self.d.wait_log(r"event=proxy-timeout")

    def test_untrusted_peer(self):
        with Daemon(TESTD, args=["--listen", "127.0.0.1:0,proxy",
                                 "--proxy-trusted", "10.0.0.0/8"], control=False) as d:
            port = ports(d)[("127.0.0.1", False, True)]
            s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            try:
                s.sendall(b"PROXY TCP4 192.0.2.7 198.51.100.1 40001 110\r\n")
                got = s.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                got = b""  # closed at once, before or after our write
            self.assertEqual(got, b"")
            s.close()
            d.wait_log(r"reason=\"untrusted proxy\" peer=127\.0\.0\.1")


class Listeners(unittest.TestCase):
    def test_ipv6_listener(self):
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        with Daemon(TESTD, args=["--listen", "[::1]:0"], control=False) as d:
            port = ports(d)[("::1", False, False)]
            s = socket.create_connection(("::1", port), timeout=WAIT)
            self.assertTrue(s.makefile("rb").readline().startswith(b"+OK POP3"))
            s.close()
            d.wait_log(r"client=1 event=connect peer=::1:\d+")

    def test_bad_listen_specs(self):
        for spec in ("127.0.0.1", "127.0.0.1:0,bogus", "[::1:0", "127.0.0.1:0,tls"):
            p = subprocess.run([POP3D, "-f", "--listen", spec], capture_output=True,
                               text=True, timeout=WAIT)
            self.assertEqual(p.returncode, 1, spec)
            self.assertIn("--listen", p.stderr)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
