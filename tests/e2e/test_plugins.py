#!/usr/bin/env python3
"""End-to-end tests of the plugin pipeline with controllers as plugins: the
EAT matrix, ordering, rewriting, POP3C hooks, hook timeouts, controllers
dying with hooks pending, and a chain that mixes an in-process C plugin
(tests/testd's "cplug") with controller plugins."""
import os
import signal
import subprocess
import time
import unittest

from harness import POP3D, TESTD, WAIT, Client, Controller, Daemon, main

VERDICTS = ["none", "client", "plugin", "all"]


class PluginTest(unittest.TestCase):
    binary = POP3D
    env = None

    def setUp(self):
        self.d = Daemon(self.binary, env=self.env)

    def tearDown(self):
        self.d.stop()

    def ctl(self, **kw):
        c = Controller(self.d.sock, **kw)
        self.addCleanup(c.close)
        return c

    def client(self):
        c = Client(self.d.port)
        self.addCleanup(c.close)
        return c

    def hook(self, c, timeout=WAIT):
        """The next hook message on controller c."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(c.events):
                if m.get("type") == "hook":
                    return c.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no hook")
            m = c.read(left)
            if m.get("type") == "reply":
                raise AssertionError("unexpected reply %r" % m)
            c.events.append(m)

    def no_message(self, c, secs=0.3):
        """Assert controller c receives nothing (events/hooks) for secs."""
        c.ok("ping")  # a barrier: everything sent before is in the stream
        self.assertEqual([m for m in c.events if m.get("event") != "pop3d_registered"], [])
        c.s.settimeout(secs)
        try:
            data = c.s.recv(65536)
        except OSError:
            data = b""
        self.assertEqual(data, b"")


class EatMatrix(PluginTest):
    def run_matrix(self, verdict):
        pa, pb, o = self.ctl(name="A"), self.ctl(name="B"), self.ctl(name="O")
        pa.ok("plugin_add", alias="A", priority=1)
        pb.ok("plugin_add", alias="B", priority=2)
        pa.ok("plugin_register", alias="A", events=["cmd_user"])
        pb.ok("plugin_register", alias="B", events=["cmd_user"])
        o.ok("register", events=["cmd_user"])
        p = self.client()
        p.send("USER bob\r\n")
        h = self.hook(pa)
        self.assertEqual(h["plugin"], "A")
        self.assertEqual(h["event"], "pop3d_cmd_user")
        self.assertEqual(h["args"], [1, "bob"])
        self.assertEqual(h["tag"], 1)
        pa.ok("verdict", hook=h["hook"], eat=verdict, args=[1, "bob+A"])
        if verdict in ("none", "client"):
            hb = self.hook(pb)
            self.assertEqual(hb["args"], [1, "bob+A"])
            pb.ok("verdict", hook=hb["hook"], eat="none")
        else:
            self.no_message(pb)
        if verdict in ("none", "plugin"):
            e = o.event("pop3d_cmd_user")
            self.assertEqual(e["args"], [1, "bob+A"])
            o.ok("send_to_client", client=1, tag=e["tag"], text="+OK from O")
            self.assertEqual(p.line(), "+OK from O")
        else:
            self.no_message(o)
            # The plugin that ate it answers the client itself.
            pa.ok("send_to_client", client=1, tag=1, text="+OK from A")
            self.assertEqual(p.line(), "+OK from A")

    def test_none(self):
        self.run_matrix("none")

    def test_client(self):
        self.run_matrix("client")

    def test_plugin(self):
        self.run_matrix("plugin")

    def test_all(self):
        self.run_matrix("all")


class Ordering(PluginTest):
    def test_priority_then_addition(self):
        c = self.ctl()
        c.ok("plugin_add", alias="late", priority=5)
        c.ok("plugin_add", alias="early", priority=-5)
        c.ok("plugin_add", alias="mid1")
        self.assertEqual(c.ok("plugin_add", alias="mid2")["plugins"], 5)
        self.assertEqual(c.ok("plugin_order")["plugins"],
                         ["early", "greeting", "mid1", "mid2", "late"])
        r = c.call("plugin_add", alias="mid1")
        self.assertEqual(r["error"]["code"], "invalid_argument")
        info = c.ok("plugin_get", alias="greeting")
        self.assertIsNone(info["controller"])
        self.assertEqual(info["events"]["POP3D"], ["pop3d_connection"])
        lst = c.ok("plugin_list")["plugins"]
        self.assertEqual([x["alias"] for x in lst], ["early", "greeting", "mid1", "mid2", "late"])
        r = c.call("plugin_del", alias="greeting")
        self.assertEqual(r["error"]["code"], "permission_denied")
        other = self.ctl()
        r = other.call("plugin_del", alias="mid1")
        self.assertEqual(r["error"]["code"], "permission_denied")
        self.assertEqual(c.ok("plugin_del", alias="mid1")["plugins"], 4)

    def test_chain_order_seen_by_client(self):
        c = self.ctl()
        for alias, prio in (("p2", 2), ("p1", 1), ("p3", 3)):
            c.ok("plugin_add", alias=alias, priority=prio)
            c.ok("plugin_register", alias=alias, events=["cmd_noop"])
        c.ok("register", events=["cmd_noop"])
        p = self.client()
        p.send("NOOP\r\n")
        seen = []
        for _ in range(3):
            h = self.hook(c)
            seen.append(h["plugin"])
            c.ok("verdict", hook=h["hook"], eat="none")
        self.assertEqual(seen, ["p1", "p2", "p3"])
        e = c.event("pop3d_cmd_noop")
        c.ok("send_to_client", client=1, tag=e["tag"], text="+OK")
        self.assertEqual(p.line(), "+OK")

    def test_plugin_del_during_dispatch(self):
        a, b, o = self.ctl(), self.ctl(), self.ctl()
        a.ok("plugin_add", alias="A", priority=1)
        b.ok("plugin_add", alias="B", priority=2)
        a.ok("plugin_register", alias="A", events=["cmd_user"])
        b.ok("plugin_register", alias="B", events=["cmd_user"])
        o.ok("register", events=["cmd_user"])
        p = self.client()
        p.send("USER x\r\n")
        h = self.hook(a)
        b.ok("plugin_del", alias="B")  # while A's hook is pending
        a.ok("verdict", hook=h["hook"], eat="none")
        self.no_message(b)
        e = o.event("pop3d_cmd_user")
        o.ok("send_to_client", client=1, tag=e["tag"], text="+OK")
        self.assertEqual(p.line(), "+OK")


class Verdicts(PluginTest):
    def test_stale_and_foreign_verdicts(self):
        a, b = self.ctl(), self.ctl()
        a.ok("plugin_add", alias="A")
        a.ok("plugin_register", alias="A", events=["cmd_user"])
        b.ok("register", events=["cmd_user"])
        p = self.client()
        p.send("USER x\r\n")
        h = self.hook(a)
        r = b.call("verdict", hook=h["hook"], eat="none")
        self.assertEqual(r["error"]["code"], "invalid_argument")
        r = a.call("verdict", hook=h["hook"], eat="bogus")
        self.assertEqual(r["error"]["code"], "invalid_argument")
        a.ok("verdict", hook=h["hook"], eat="none")
        r = a.call("verdict", hook=h["hook"], eat="none")
        self.assertEqual(r["error"]["code"], "stale")
        r = a.call("verdict", hook=999999, eat="none")
        self.assertEqual(r["error"]["code"], "stale")
        e = b.event("pop3d_cmd_user")
        b.ok("send_to_client", client=1, tag=e["tag"], text="+OK")
        self.assertEqual(p.line(), "+OK")

    def test_pipelined_commands_held_behind_hook(self):
        a, o = self.ctl(), self.ctl()
        a.ok("plugin_add", alias="A")
        a.ok("plugin_register", alias="A", events=["cmd_user"])
        o.ok("register", events=["cmd_*"])
        p = self.client()
        p.send("USER x\r\nNOOP\r\nSTAT\r\n")
        h = self.hook(a)
        time.sleep(0.3)
        # Nothing after USER reached anybody while the hook is pending.
        o.ok("ping")
        self.assertEqual([m for m in o.events if m.get("type") == "event"
                          and m["event"] != "pop3d_registered"], [])
        a.ok("verdict", hook=h["hook"], eat="none")
        for text in ("+OK user", "+OK noop", "+OK stat"):
            e = o.event()
            o.ok("send_to_client", client=1, tag=e["tag"], text=text)
        self.assertEqual([p.line(), p.line(), p.line()], ["+OK user", "+OK noop", "+OK stat"])


class Pop3c(PluginTest):
    def test_rewrite_and_swallow(self):
        a, o = self.ctl(), self.ctl()
        a.ok("plugin_add", alias="R")
        a.ok("plugin_register", alias="R", type="POP3C", events=["response"])
        o.ok("register", events=["cmd_*"])
        p = Client(self.d.port, greet=False)
        self.addCleanup(p.close)
        # The greeting passes through the hook too.
        h = self.hook(a)
        self.assertEqual(h["event"], "response")
        self.assertEqual(h["plugin_type"], "POP3C")
        self.assertTrue(h["args"][1].startswith("+OK POP3 "))
        a.ok("verdict", hook=h["hook"], eat="none", args=[h["args"][0], "+OK hello there"])
        self.assertEqual(p.line(), "+OK hello there")
        p.send("NOOP\r\n")
        e = o.event("pop3d_cmd_noop")
        o.ok("send_to_client", client=1, tag=e["tag"], text="+OK noop")
        h = self.hook(a)
        self.assertEqual(h["args"], [1, "+OK noop"])
        self.assertEqual(h["command"], "noop")
        a.ok("verdict", hook=h["hook"], eat="all")  # swallowed: nothing on the wire
        p.send("STAT\r\n")
        e = o.event("pop3d_cmd_stat")
        o.ok("send_to_client", client=1, tag=e["tag"], lines=["+OK 1 5", "body"])
        h = self.hook(a)
        a.ok("verdict", hook=h["hook"], eat="none")
        self.assertEqual(p.line(), "+OK 1 5")
        self.assertEqual(p.multiline(), ["body"])

    def test_output_order_kept_behind_pending_hook(self):
        a, o = self.ctl(), self.ctl()
        a.ok("plugin_add", alias="R")
        p = self.client()
        a.ok("plugin_register", alias="R", type="POP3C", events=["all"])
        o.ok("register", events=["cmd_*"])
        p.send("NOOP\r\nLIST\r\n")
        e = o.event("pop3d_cmd_noop")
        o.ok("send_to_client", client=1, tag=e["tag"], text="+OK first")
        h1 = self.hook(a)
        time.sleep(0.2)
        self.no_message(o)  # LIST is held: the client has a suspended job
        a.ok("verdict", hook=h1["hook"], eat="none")
        e = o.event("pop3d_cmd_list")
        o.ok("send_to_client", client=1, tag=e["tag"], lines=["+OK 0 messages"])
        h2 = self.hook(a)
        a.ok("verdict", hook=h2["hook"], eat="none", args=[1, "+OK none"])
        self.assertEqual(p.line(), "+OK first")
        self.assertEqual(p.line(), "+OK none")
        self.assertEqual(p.multiline(), [])


class Timeouts(PluginTest):
    def setup_one(self, on_timeout=None, events=("cmd_user",), type_="POP3D"):
        a, o = self.ctl(), self.ctl()
        a.ok("plugin_add", alias="T")
        kw = {"alias": "T", "events": list(events), "timeout_ms": 300, "type": type_}
        if on_timeout:
            kw["on_timeout"] = on_timeout
        a.ok("plugin_register", **kw)
        o.ok("register", events=["cmd_*"])
        return a, o

    def test_each_on_timeout(self):
        for on_timeout in ("none", "client", "plugin", "all", "tempfail"):
            with self.subTest(on_timeout=on_timeout):
                self.d.stop()
                self.d = Daemon(self.binary, env=self.env)
                a, o = self.setup_one(on_timeout)
                p = self.client()
                p.send("USER x\r\n")
                h = self.hook(a)
                e = a.event("pop3d_hook_timeout", timeout=5)
                self.assertEqual(e["args"], [h["hook"], "T", "pop3d_cmd_user", 1])
                r = a.call("verdict", hook=h["hook"], eat="none")
                self.assertEqual(r["error"]["code"], "stale")
                if on_timeout == "tempfail":
                    self.assertEqual(p.line(), "-ERR [SYS/TEMP] server unavailable, "
                                               "try again later")
                    self.assertTrue(p.closed())
                elif on_timeout in ("none", "plugin"):
                    e = o.event("pop3d_cmd_user")
                    o.ok("send_to_client", client=1, tag=e["tag"], text="+OK")
                    self.assertEqual(p.line(), "+OK")
                else:
                    self.no_message(o)
                p.close()

    def test_default_on_timeout_for_pass_is_tempfail(self):
        a, o = self.setup_one(events=("cmd_user", "cmd_pass"))
        p = self.client()
        p.send("USER x\r\n")
        h = self.hook(a)
        e = a.event("pop3d_hook_timeout", timeout=5)  # user: default none
        e = o.event("pop3d_cmd_user")
        o.ok("send_to_client", client=1, tag=e["tag"], text="+OK")
        self.assertEqual(p.line(), "+OK")
        p.send("PASS secret\r\n")
        self.hook(a)
        self.assertEqual(p.line(timeout=5),
                         "-ERR [SYS/TEMP] server unavailable, try again later")
        self.assertTrue(p.closed())
        self.no_message(o)

    def test_default_pop3c_on_pass_answer_is_tempfail(self):
        a, o = self.setup_one(events=("response",), type_="POP3C")
        # The greeting hook times out with the default (none): greeting goes out.
        p = self.client()
        p.send("PASS secret\r\n")
        e = o.event("pop3d_cmd_pass")
        o.ok("send_to_client", client=1, tag=e["tag"], text="+OK logged in")
        h = self.hook(a)
        while h.get("command") != "pass":  # skip the greeting's (timed out: none)
            h = self.hook(a)
        # Not answered: the +OK never reaches the client.
        self.assertEqual(p.line(timeout=5),
                         "-ERR [SYS/TEMP] server unavailable, try again later")
        self.assertTrue(p.closed())


class ControllerDeath(PluginTest):
    def test_kill9_with_hook_pending(self):
        o = self.ctl()
        o.ok("register", events=["cmd_*"])
        proc = subprocess.Popen(
            ["python3", "-c",
             "import socket,sys,time\n"
             "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n"
             "s.sendall(b'{\"cmd\":\"plugin_add\",\"alias\":\"K\"}\\n"
             "{\"cmd\":\"plugin_register\",\"alias\":\"K\",\"events\":[\"cmd_user\"],"
             "\"timeout_ms\":600000}\\n')\n"
             "time.sleep(60)\n", self.d.sock])
        self.addCleanup(proc.wait)
        deadline = time.monotonic() + WAIT
        while "K" not in o.ok("plugin_order")["plugins"]:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        p = self.client()
        p.send("USER x\r\n")
        self.d.wait_log(r"client=1 event=command tag=1 verb=user")
        time.sleep(0.2)
        t0 = time.monotonic()
        proc.kill()
        e = o.event("pop3d_cmd_user")  # resolved at once with on_timeout none
        self.assertLess(time.monotonic() - t0, 5)
        o.ok("send_to_client", client=1, tag=e["tag"], text="+OK")
        self.assertEqual(p.line(), "+OK")
        self.assertNotIn("K", o.ok("plugin_order")["plugins"])


class MixedChain(PluginTest):
    """In-process C plugin 'cplug' (priority 0, rewrites ARG1 += '+c') between
    controller plugins at priorities -1 and 1; testd's own consumer is off."""
    binary = TESTD

    def run_chain(self, cverdict):
        self.d.stop()
        self.d = Daemon(TESTD, env={"TESTD_CPLUGIN": "0:%d" % cverdict,
                                    "TESTD_NO_CONSUMER": "1"})
        a, b, o = self.ctl(), self.ctl(), self.ctl()
        a.ok("plugin_add", alias="before", priority=-1)
        b.ok("plugin_add", alias="after", priority=1)
        a.ok("plugin_register", alias="before", events=["cmd_user"])
        b.ok("plugin_register", alias="after", events=["cmd_user"])
        o.ok("register", events=["cmd_user"])
        self.assertEqual(o.ok("plugin_order")["plugins"], ["before", "greeting", "cplug",
                                                           "after"])
        p = self.client()
        p.send("USER bob\r\n")
        h = self.hook(a)
        a.ok("verdict", hook=h["hook"], eat="none", args=[1, "bob+a"])
        verdict = VERDICTS[cverdict - 1]
        if verdict in ("none", "client"):
            hb = self.hook(b)
            self.assertEqual(hb["args"], [1, "bob+a+c"])
            b.ok("verdict", hook=hb["hook"], eat="none")
        else:
            self.no_message(b)
        if verdict in ("none", "plugin"):
            e = o.event("pop3d_cmd_user")
            self.assertEqual(e["args"], [1, "bob+a+c"])
        else:
            self.no_message(o)
        b.ok("send_to_client", client=1, tag=1, text="+OK done")
        self.assertEqual(p.line(), "+OK done")

    def test_mixed_none(self):
        self.run_chain(1)

    def test_mixed_client(self):
        self.run_chain(2)

    def test_mixed_plugin(self):
        self.run_chain(3)

    def test_mixed_all(self):
        self.run_chain(4)

    def test_sync_tempfail_from_c_plugin(self):
        """An in-process plugin returning POP3D_HOOK_TEMPFAIL at once."""
        self.d.stop()
        self.d = Daemon(TESTD, env={"TESTD_CPLUGIN": "0:-1"})
        p = self.client()
        self.assertEqual(p.cmd("USER bob"), "-ERR [SYS/TEMP] server unavailable, "
                                            "try again later")
        self.assertTrue(p.closed())


BUILD = os.path.dirname(POP3D)
EVENTLOG = os.path.join(BUILD, "plugins", ".libs", "eventlog.so")
AUTHLIMIT = os.path.join(BUILD, "plugins", ".libs", "authlimit.so")
BADABI = os.path.join(BUILD, "tests", ".libs", "badabi.so")
TINYPOP3 = os.path.join(BUILD, "docs", "examples", "tinypop3")


class LoadablePlugins(unittest.TestCase):
    def test_eventlog_masks_passwords(self):
        with Daemon(TESTD, control=False) as tmp:
            log = os.path.join(tmp.tmp, "events.log")
            with Daemon(TESTD, args=("--plugin", EVENTLOG + "=" + log)) as d:
                c = Controller(d.sock)
                self.assertIn("eventlog", c.ok("plugin_order")["plugins"])
                c.close()
                p = Client(d.port)
                self.assertEqual(p.cmd("USER bob"), "+OK user bob")
                self.assertEqual(p.cmd("PASS s3cr3t-pw"), "-ERR [AUTH] invalid password")
                self.assertEqual(p.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ="), "+OK authenticated")
                self.assertEqual(p.cmd("QUIT"), "+OK bye")
                self.assertTrue(p.closed())
                d.wait_log(r"client=1 event=disconnect")
            with open(log) as f:
                text = f.read()
        self.assertRegex(text, r"seq=\d+ event=pop3d_connection client=1 args=\[1,"
                               r"\"127\.0\.0\.1\",\d+,\"127\.0\.0\.1\",\d+\]")
        self.assertIn('event=pop3d_cmd_user client=1 tag=1 args=[1,"bob"]', text)
        self.assertIn('event=pop3d_cmd_pass client=1 tag=2 args=[1,"****"]', text)
        self.assertIn('event=pop3d_cmd_auth client=1 tag=3 args=[1,"PLAIN ****"]', text)
        self.assertIn("event=pop3d_disconnected client=1 args=[1]", text)
        self.assertNotIn("s3cr3t", text)
        self.assertNotIn("AGJvYgBzZWNyZXQ", text)

    def test_eventlog_masks_whatever_the_separator(self):
        """The core splits verb and argument on any white space: a TAB
        before the secret, mixed case or leading blanks must not show it."""
        with Daemon(TESTD, control=False) as tmp:
            log = os.path.join(tmp.tmp, "events.log")
            with Daemon(TESTD, args=("-v", "--auth-fail-delay", "0", "--plugin",
                                     EVENTLOG + "=" + log)) as d:
                p = Client(d.port)
                self.assertEqual(p.cmd("AUTH PLAIN\tQUJDdGFiLWlyLXNlY3JldA=="),
                                 "-ERR [AUTH] authentication failed")
                self.assertEqual(p.cmd("PASS\ts3cr3t-tab"), "-ERR [AUTH] invalid password")
                self.assertEqual(p.cmd(" \tpAsS \t s3cr3t-mixed"),
                                 "-ERR [AUTH] invalid password")
                p.close()
                d.wait_log(r"client=1 event=disconnect")
                p = Client(d.port)
                self.assertEqual(p.cmd("AUTH\tPLAIN"), "+ ")
                self.assertEqual(p.cmd("AGJvYgBzZWNyZXQ="), "+OK authenticated")
                self.assertEqual(p.cmd("QUIT"), "+OK bye")
                self.assertTrue(p.closed())
                d.wait_log(r"client=2 event=disconnect")
                # The core's own log and trace (-vv) follow the same rule.
                core = d.log()
            with open(log) as f:
                text = f.read()
        self.assertIn('event=pop3d_cmd_auth seq=2 arg0=1 arg1="PLAIN ****"', core)
        for secret in ("QUJDdGFi", "s3cr3t", "AGJvYgBz"):
            self.assertNotIn(secret, core)
        self.assertIn('event=pop3d_cmd_auth client=1 tag=1 args=[1,"PLAIN ****"]', text)
        self.assertIn('event=pop3d_cmd_pass client=1 tag=2 args=[1,"****"]', text)
        self.assertIn('event=pop3d_cmd_pass client=1 tag=3 args=[1,"****"]', text)
        self.assertIn('event=pop3d_cmd_auth client=2 tag=1 args=[2,"PLAIN"]', text)
        self.assertRegex(text, r'event=pop3d_auth_data client=2 tag=1 args=\[2,"\*\*\*\*"\]')
        for secret in ("QUJDdGFi", "s3cr3t", "AGJvYgBz"):
            self.assertNotIn(secret, text)

    def test_authlimit(self):
        with Daemon(TESTD, args=("--plugin", AUTHLIMIT + "=failures=2,window=60,delay=400")) \
                as d:
            a = Client(d.port)
            self.assertEqual(a.cmd("PASS wrong1"), "-ERR [AUTH] invalid password")
            self.assertEqual(a.cmd("PASS wrong2"), "-ERR [AUTH] invalid password")
            # Locked out now, even with the right password, and from a second
            # connection of the same address; the answer is delayed by a timer.
            t0 = time.monotonic()
            a.send("PASS secret\r\n")
            b = Client(d.port)
            self.assertEqual(b.cmd("NOOP"), "+OK")  # others do not wait
            self.assertLess(time.monotonic() - t0, 0.35)
            self.assertEqual(a.line(), "-ERR [AUTH] too many authentication failures, "
                                       "try again later")
            self.assertGreaterEqual(time.monotonic() - t0, 0.38)
            self.assertEqual(b.cmd("PASS secret"), "-ERR [AUTH] too many authentication "
                                                   "failures, try again later")
            self.assertEqual(b.cmd("USER bob"), "+OK user bob")
            self.assertIn("authlimit", Controller(d.sock).ok("plugin_order")["plugins"])
            a.close()
            b.close()

    def test_authlimit_counts_every_auth_verb(self):
        """The verbs counted and locked out are the verb table's VERB_AUTH
        (PASS, APOP, AUTH), a SASL exchange included; -ERR answers to other
        verbs are not counted, and other verbs are never locked out."""
        with Daemon(TESTD, args=("--auth-fail-delay", "0", "--plugin",
                                 AUTHLIMIT + "=failures=2,window=60,delay=0")) as d:
            a = Client(d.port)
            for _ in range(3):
                self.assertEqual(a.cmd("TOP x"), "-ERR usage")
            self.assertEqual(a.cmd("AUTH PLAIN bm90LXRoaXM="),
                             "-ERR [AUTH] authentication failed")
            self.assertEqual(a.cmd("AUTH PLAIN"), "+ ")
            self.assertEqual(a.cmd("bm9yLXRoaXM="), "-ERR [AUTH] authentication failed")
            a.close()
            locked = "-ERR [AUTH] too many authentication failures, try again later"
            # A connection each: the core closes one after three -ERR [AUTH].
            for line in ("APOP bob c4c9334bac560ecc979e58001b3e22fb",
                         "auth PLAIN AGJvYgBzZWNyZXQ=", "Pass secret"):
                b = Client(d.port)
                self.assertEqual(b.cmd("USER bob"), "+OK user bob")
                self.assertEqual(b.cmd("TOP x"), "-ERR usage")
                self.assertEqual(b.cmd(line), locked)
                b.close()

    def test_eventlog_escapes_what_it_shows(self):
        """Quotes, backslashes and control octets of a shown argument are
        escaped (mask_escape's MASK_QUOTED), so a client cannot forge a
        field or a line of the log; the shown word of AUTH too."""
        with Daemon(TESTD, control=False) as tmp:
            log = os.path.join(tmp.tmp, "events.log")
            with Daemon(TESTD, args=("--plugin", EVENTLOG + "=" + log)) as d:
                p = Client(d.port)
                self.assertEqual(p.cmd('USER a"b\\c\x01d\x7f'), '+OK user a"b\\c\x01d\x7f')
                self.assertEqual(p.cmd('AUTH b"o\x01b s3cr3t-response'),
                                 "-ERR [AUTH] authentication failed")
                p.close()
                d.wait_log(r"client=1 event=disconnect")
            with open(log) as f:
                text = f.read()
        self.assertIn(r'event=pop3d_cmd_user client=1 tag=1 args=[1,"a\"b\\c\x01d\x7f"]',
                      text)
        self.assertIn(r'event=pop3d_cmd_auth client=1 tag=2 args=[1,"b\"o\x01b ****"]', text)
        self.assertNotIn("s3cr3t", text)
        self.assertNotIn("\x01", text)
        self.assertNotIn("\x7f", text)

    def test_bad_abi_refused(self):
        p = subprocess.run([POP3D, "-f", "--address", "127.0.0.1", "--port", "0",
                            "--plugin", BADABI], capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(p.returncode, 1)
        self.assertIn("built for plugin ABI 999, this pop3d has ABI 1", p.stderr)

    def test_missing_plugin_refused(self):
        p = subprocess.run([POP3D, "-f", "--address", "127.0.0.1", "--port", "0",
                            "--plugin", "/nonexistent/x.so"], capture_output=True, text=True,
                           timeout=WAIT)
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/x.so", p.stderr)

    def test_bad_plugin_argument_refused(self):
        p = subprocess.run([POP3D, "-f", "--address", "127.0.0.1", "--port", "0",
                            "--plugin", AUTHLIMIT + "=bogus=1"], capture_output=True,
                           text=True, timeout=WAIT)
        self.assertEqual(p.returncode, 1)
        self.assertIn("authlimit: bad argument", p.stderr)


class ExampleProgram(unittest.TestCase):
    """docs/examples/tinypop3.c, built by the suite, served to poplib."""

    def test_tinypop3_with_poplib(self):
        import poplib
        proc = subprocess.Popen([TINYPOP3, "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline()
            port = int(line.split()[-1])
            p = poplib.POP3("127.0.0.1", port, timeout=WAIT)
            self.assertIn(b"tinypop3.example", p.getwelcome())
            p.user("demo")
            p.pass_("demo")
            self.assertEqual(p.stat()[0], 2)
            resp, lines, octets = p.retr(1)
            self.assertEqual(lines, [b"From: alice@example.org", b"Subject: hello", b"",
                                     b"Hi there.", b".signature"])
            self.assertEqual(len(p.list()[1]), 2)
            p.dele(2)
            self.assertEqual(p.stat()[0], 1)
            self.assertEqual(p.quit(), b"+OK bye")
        finally:
            proc.terminate()
            proc.wait(WAIT)


if __name__ == "__main__":
    main()
