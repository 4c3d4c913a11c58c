#!/usr/bin/env python3
"""End-to-end test of docs/deployment.md: a private HAProxy, configured from
docs/haproxy.cfg.example (the file the document shows), in front of two
pop3d instances (tests/testd) with PROXY listeners.  Checks round robin,
the real client address on each backend, TLS passed through to pop3d, STLS,
and that the health checks are clean POP3 sessions.  Everything listens on
127.0.0.1; every process started is stopped with bounded waits."""
import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import TESTD, WAIT, Controller, Daemon, main

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(SRCDIR, "docs", "haproxy.cfg.example")
DEPLOYMENT = os.path.join(SRCDIR, "docs", "deployment.md")


def find_haproxy():
    path = shutil.which("haproxy")
    for d in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        if path is None and os.access(os.path.join(d, "haproxy"), os.X_OK):
            path = os.path.join(d, "haproxy")
    return path


HAPROXY = find_haproxy()


def template():
    with open(TEMPLATE) as f:
        return f.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ports(d):
    """{(tls, proxy): port} from the daemon's listening lines."""
    out = {}
    for m in re.finditer(r"event=listening address=127\.0\.0\.1 port=(\d+) tls=(\d) proxy=(\d)",
                         d.log()):
        out.setdefault((m.group(2) == "1", m.group(3) == "1"), int(m.group(1)))
    return out


def listening():
    """TCP ports in LISTEN state on this host (Linux /proc/net/tcp)."""
    out = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                out.add(int(fields[1].split(":")[1], 16))
    return out


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Document(unittest.TestCase):
    def test_deployment_md_shows_the_tested_file(self):
        with open(DEPLOYMENT) as f:
            doc = f.read()
        self.assertIn(template().rstrip("\n"), doc,
                      "docs/deployment.md must show docs/haproxy.cfg.example verbatim")


class Haproxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if HAPROXY is None:
            raise unittest.SkipTest("haproxy not installed (apt-get install haproxy)")
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("openssl not installed")
        cls.tmp = tempfile.mkdtemp(prefix="pop3d-haproxy-")
        cls.cert = os.path.join(cls.tmp, "cert.pem")
        cls.key = os.path.join(cls.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        cls.key, "-out", cls.cert, "-days", "2", "-subj", "/CN=pop.example"],
                       check=True, capture_output=True, timeout=60)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.backends = {}
        for name in ("pop-a", "pop-b"):
            d = Daemon(TESTD, args=["--listen", "127.0.0.1:0,proxy",
                                    "--listen", "127.0.0.1:0,tls,proxy",
                                    "--tls-cert", self.cert, "--tls-key", self.key,
                                    "--proxy-trusted", "127.0.0.1/32", "--hostname", name])
            self.addCleanup(d.stop)
            c = Controller(d.sock, name="watch")
            self.addCleanup(c.close)
            c.ok("register", events=["connection"])
            self.backends[name] = (d, c, ports(d))
        self.pop3 = free_port()
        self.pop3s = free_port()
        a, b = self.backends["pop-a"][2], self.backends["pop-b"][2]
        values = {
            "@POP3_BIND@": "127.0.0.1:%d" % self.pop3,
            "@POP3S_BIND@": "127.0.0.1:%d" % self.pop3s,
            "@POP3D_A@": "127.0.0.1:%d" % a[(False, True)],
            "@POP3D_A_TLS@": "127.0.0.1:%d" % a[(True, True)],
            "@POP3D_B@": "127.0.0.1:%d" % b[(False, True)],
            "@POP3D_B_TLS@": "127.0.0.1:%d" % b[(True, True)],
        }
        text = template()
        for k, v in values.items():
            self.assertIn(k, text)
            text = text.replace(k, v)
        self.assertNotRegex(text, r"@[A-Z0-9_]+@", "a placeholder is left")
        self.cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(text)
        p = subprocess.run([HAPROXY, "-c", "-f", self.cfg], capture_output=True, text=True,
                           timeout=WAIT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.hlog = open(os.path.join(self.tmp, "haproxy.log"), "w+")
        self.addCleanup(self.hlog.close)
        self.proc = subprocess.Popen([HAPROXY, "-f", self.cfg, "-db"], stdin=subprocess.DEVNULL,
                                     stdout=self.hlog, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_haproxy)
        # Wait for the listening sockets without connecting: a probe would be
        # passed on to a backend as a client that hangs up.
        deadline = time.monotonic() + WAIT
        while not {self.pop3, self.pop3s} <= listening():
            self.assertIsNone(self.proc.poll(), "haproxy exited:\n" + self.haproxy_log())
            self.assertLess(time.monotonic(), deadline, "haproxy does not listen")
            time.sleep(0.05)

    def stop_haproxy(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)

    def haproxy_log(self):
        self.hlog.flush()
        with open(self.hlog.name) as f:
            return f.read()

    def backend_of(self, welcome):
        m = re.match(rb"\+OK POP3 (pop-[ab]) ", welcome)
        self.assertIsNotNone(m, welcome)
        return m.group(1).decode()

    def seen_by(self, name, sport, frontend, tls):
        """The backend's view of the client connected from sport."""
        d, c, _ = self.backends[name]
        deadline = time.monotonic() + WAIT
        while True:
            e = c.event("pop3d_connection", timeout=max(0.1, deadline - time.monotonic()))
            if e["args"][2] == sport:
                break
        # pop3d_connection: ARG1 peer, ARG2 peer port, ARG3 local, ARG4 local port,
        # all taken from the PROXY header.
        self.assertEqual(e["args"][1:], ["127.0.0.1", sport, "127.0.0.1", frontend])
        self.assertEqual(e["tls"], tls)
        rows = [r for r in c.ok("list_clients")["clients"] if r["peer_port"] == sport]
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual((rows[0]["peer"], rows[0]["local_port"]), ("127.0.0.1", frontend))
        return rows[0]

    def login(self, p):
        p.user("bob")
        p.pass_("secret")
        self.assertEqual(p.stat(), (2, 320))

    def test_round_robin_and_real_client_address(self):
        order = []
        for _ in range(4):
            p = poplib.POP3("127.0.0.1", self.pop3, timeout=WAIT)
            try:
                name = self.backend_of(p.getwelcome())
                sport = p.sock.getsockname()[1]
                row = self.seen_by(name, sport, self.pop3, False)
                self.assertFalse(row["tls"])
                self.login(p)
                self.assertEqual(p.quit(), b"+OK bye")
            finally:
                p.close()
            order.append(name)
        self.assertEqual(sorted(order[:2]), ["pop-a", "pop-b"], order)
        self.assertEqual(order[2:], order[:2], order)

    def test_tls_passed_through_to_pop3d(self):
        names = set()
        for _ in range(2):
            p = poplib.POP3_SSL("127.0.0.1", self.pop3s, context=client_ctx(), timeout=WAIT)
            try:
                name = self.backend_of(p.getwelcome())
                row = self.seen_by(name, p.sock.getsockname()[1], self.pop3s, True)
                self.assertTrue(row["tls"])
                self.login(p)
                p.quit()
            finally:
                p.close()
            names.add(name)
        self.assertEqual(names, {"pop-a", "pop-b"})
        d = self.backends[name][0]
        d.wait_log(r"event=tls version=TLSv1\.[23] cipher=")

    def test_stls_through_the_balancer(self):
        p = poplib.POP3("127.0.0.1", self.pop3, timeout=WAIT)
        try:
            name = self.backend_of(p.getwelcome())
            sport = p.sock.getsockname()[1]
            self.seen_by(name, sport, self.pop3, False)
            self.assertIn("STLS", p.capa())
            self.assertEqual(p.stls(client_ctx()), b"+OK Begin TLS negotiation")
            self.login(p)
            c = self.backends[name][1]
            row = [r for r in c.ok("list_clients")["clients"] if r["peer_port"] == sport][0]
            self.assertTrue(row["tls"])
            self.assertEqual(row["state"], "transaction")
            p.quit()
        finally:
            p.close()

    def test_health_checks_are_clean_sessions(self):
        # A check connects from HAProxy with a PROXY v2 LOCAL header, so pop3d
        # keeps the socket's own addresses: local is the backend listener.
        for name, (d, c, lp) in self.backends.items():
            for port in (lp[(False, True)], lp[(True, True)]):
                m = d.wait_log(r"client=(\d+) event=proxy peer=127\.0\.0\.1:\d+ "
                               r"local=127\.0\.0\.1:%d\b" % port, timeout=20)
                d.wait_log(r"client=%s event=disconnect reason=\"quit\"" % m.group(1))
        for name, (d, c, lp) in self.backends.items():
            self.assertNotRegex(d.log(), r"proxy-timeout|bad-proxy-header|untrusted proxy|"
                                         r"proxy-failed|tls-handshake-(failed|timeout)|"
                                         r"response-timeout")
        self.assertNotIn(" is DOWN", self.haproxy_log())


if __name__ == "__main__":
    main()
