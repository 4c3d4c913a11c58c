#!/usr/bin/env python3
"""Controller groups (issue 15): clients spread over the members of a
group, each client's events and hooks reach its bound member only and in
order, a member that goes (socket closed, process killed with SIGKILL)
takes its clients with it (-ERR [SYS/TEMP], closed) and leaves the
others alone, observers outside the group see everything, and
list_clients, list_groups, pop3ctl clients and pop3ctl groups show it.

Controllers are raw JSON connections driven from the test; every wait is
bounded."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

from harness import WAIT, Client, Controller, Daemon, main

POP3CTL = os.path.join(os.getcwd(), "pop3ctl")
EVENTS = ["connection", "cmd_*", "disconnected"]
GONE = "-ERR [SYS/TEMP] server unavailable, try again later"


def member(sock, name, group="g", events=EVENTS):
    c = Controller(sock)
    r = c.ok("hello", name=name, group=group)
    assert r["group"] == group, r
    if events:
        c.ok("register", events=list(events))
    return c


def quiet(c, client, wait=0.3):
    """Events about client that c received (after a ping barrier)."""
    time.sleep(wait)
    c.ok("ping")
    return [e for e in c.events if e.get("client") == client]


class GroupsTest(unittest.TestCase):
    args = ()

    def setUp(self):
        self.d = Daemon(args=self.args)
        self.ctls = []
        self.clients = []

    def tearDown(self):
        for p in self.clients:
            p.close()
        for c in self.ctls:
            c.close()
        self.d.stop()

    def ctl(self, c):
        self.ctls.append(c)
        return c

    def client(self):
        p = Client(self.d.port)
        self.clients.append(p)
        return p

    def assert_closed(self, p):
        """p's connection ends, with nothing more on it."""
        self.assertTrue(p.closed(), "connection still open")
        self.assertEqual(p.buf, b"", "data before the close")

    def connect(self, members, n):
        """n clients; returns [(client, member index)], in connection order."""
        out = []
        for _ in range(n):
            p = self.client()
            got = None
            deadline = time.monotonic() + WAIT
            while got is None and time.monotonic() < deadline:
                for i, m in enumerate(members):
                    try:
                        e = m.event("pop3d_connection", timeout=0.05)
                    except TimeoutError:
                        continue
                    got = (p, i, e["client"])
            self.assertIsNotNone(got, "no member saw the connection")
            out.append(got)
        return out


class Binding(GroupsTest):
    def test_hello_group_rules(self):
        c = self.ctl(Controller(self.d.sock))
        self.assertEqual(c.greeting["groups"], [])
        c.ok("register", events=["connection"])
        self.client()
        c.event("pop3d_connection")
        # No group yet: the client is bound in none.
        self.assertEqual(c.ok("list_clients")["clients"][0]["groups"], {})
        self.assertEqual(c.ok("list_groups"), {"groups": []})
        for bad in ("", "a b", "x" * 64, "é", 3):
            r = c.call("hello", group=bad)
            self.assertEqual(r["error"]["code"], "invalid_argument", bad)
        self.assertEqual(c.ok("hello", group="w.1-x_Y")["group"], "w.1-x_Y")
        self.assertEqual(c.ok("hello", group="w.1-x_Y", name="n")["group"], "w.1-x_Y")
        r = c.call("hello", group="other")
        self.assertEqual(r["error"]["code"], "invalid_argument")
        # Outside any group: no "group" in the reply, as before.
        self.assertNotIn("group", self.ctl(Controller(self.d.sock)).ok("hello", name="x"))
        self.assertEqual(self.ctl(Controller(self.d.sock)).greeting["groups"], ["w.1-x_Y"])

    def test_spread_even_and_observer_sees_all(self):
        obs = self.ctl(Controller(self.d.sock))
        obs.ok("register", events=["all"])
        a = self.ctl(member(self.d.sock, "a"))
        b = self.ctl(member(self.d.sock, "b"))
        got = self.connect([a, b], 8)
        by = [sum(1 for _, i, _ in got if i == k) for k in (0, 1)]
        self.assertEqual(by, [4, 4])
        # Round robin on ties: members alternate.
        self.assertEqual([i for _, i, _ in got], [0, 1] * 4)
        seen = {obs.event("pop3d_connection")["client"] for _ in range(8)}
        self.assertEqual(seen, {cid for _, _, cid in got})
        rows = {r["client"]: r for r in obs.ok("list_clients")["clients"]}
        ids = [a.greeting["controller"], b.greeting["controller"]]
        for _, i, cid in got:
            self.assertEqual(rows[cid]["groups"], {"g": ids[i]})
        # Each command goes to the bound member only; the observer sees it too.
        for p, i, cid in got:
            p.send("USER u%d\r\n" % cid)
            e = [a, b][i].event("pop3d_cmd_user")
            self.assertEqual(e["client"], cid)
            [a, b][i].ok("send_to_client", client=cid, tag=e["tag"], text="+OK")
            self.assertTrue(p.line().startswith("+OK"))
            self.assertEqual(obs.event("pop3d_cmd_user")["client"], cid)
        for _, i, cid in got:
            self.assertEqual(quiet([b, a][i], cid, 0), [])
        g = obs.ok("list_groups")["groups"]
        self.assertEqual(g, [{"name": "g", "plugins": [], "members": [
            {"controller": ids[0], "name": "a", "clients": 4},
            {"controller": ids[1], "name": "b", "clients": 4}]}])
        # Disconnected clients are unbound (and their member told).
        for p, i, cid in got[:3]:
            p.close()
            self.assertEqual([a, b][i].event("pop3d_disconnected")["client"], cid)
        time.sleep(0.2)
        counts = [m["clients"] for m in obs.ok("list_groups")["groups"][0]["members"]]
        self.assertEqual(counts, [2, 3])
        # The next client goes to the least bound member.
        self.assertEqual(self.connect([a, b], 1)[0][1], 0)

    def test_late_member_binds_old_clients_at_next_event(self):
        obs = self.ctl(Controller(self.d.sock))
        obs.ok("register", events=["all"])
        p = self.client()
        cid = obs.event("pop3d_connection")["client"]
        a = self.ctl(member(self.d.sock, "a"))
        self.assertEqual(obs.ok("list_clients")["clients"][0]["groups"], {})
        p.send("NOOP\r\n")
        e = a.event("pop3d_cmd_noop")
        self.assertEqual(e["client"], cid)
        self.assertEqual(obs.ok("list_clients")["clients"][0]["groups"],
                         {"g": a.greeting["controller"]})

    def test_per_client_order(self):
        a = self.ctl(member(self.d.sock, "a"))
        b = self.ctl(member(self.d.sock, "b"))
        got = self.connect([a, b], 2)
        n = 30
        for p, _, _ in got:
            p.send("".join("NOOP %d\r\n" % k for k in range(n)))
        for p, i, cid in got:
            m = [a, b][i]
            args = []
            deadline = time.monotonic() + WAIT
            for k in range(n):
                e = m.event("pop3d_cmd_noop")
                self.assertEqual(e["client"], cid)  # the other's went to the other
                self.assertLess(time.monotonic(), deadline)
                args.append(e["args"][1])
                m.ok("send_to_client", client=cid, tag=e["tag"], text="+OK %d" % k)
            self.assertEqual(args, [str(k) for k in range(n)])
            self.assertEqual([p.line() for _ in range(n)], ["+OK %d" % k for k in range(n)])


class MemberLoss(GroupsTest):
    def test_socket_closed_mid_command(self):
        a = self.ctl(member(self.d.sock, "a"))
        b = self.ctl(member(self.d.sock, "b"))
        got = self.connect([a, b], 4)
        (pa1, _, ca1), (pb1, _, cb1), (pa2, _, ca2), (pb2, _, cb2) = got
        pa1.send("USER x\r\n")
        a.event("pop3d_cmd_user")
        pb1.send("USER y\r\n")
        eb = b.event("pop3d_cmd_user")
        a.s.close()                             # abruptly, a command in flight
        self.assertEqual(pa1.line(), GONE)
        self.assert_closed(pa1)
        self.assert_closed(pa2)                 # idle, bound to a: closed too
        # b's clients are untouched: the command in flight is still b's.
        b.ok("send_to_client", client=cb1, tag=eb["tag"], text="+OK y")
        self.assertEqual(pb1.line(), "+OK y")
        pb2.send("NOOP\r\n")
        e = b.event("pop3d_cmd_noop")
        b.ok("send_to_client", client=cb2, tag=e["tag"], text="+OK")
        self.assertEqual(pb2.line(), "+OK")
        # New clients go to the survivor.
        p = self.client()
        self.assertNotEqual(b.event("pop3d_connection")["client"], 0)
        g = b.ok("list_groups")["groups"][0]
        self.assertEqual([m["name"] for m in g["members"]], ["b"])
        self.assertEqual(g["members"][0]["clients"], 3)
        # With no member left the group's events are unhandled, as without it
        # (and b's clients, p among them, are closed).
        b.close()
        self.assert_closed(p)
        p = self.client()
        p.send("NOOP\r\n")
        self.assertTrue(p.line().startswith("-ERR [SYS/TEMP]"))
        obs = self.ctl(Controller(self.d.sock))
        self.assertEqual(obs.greeting["groups"], [])

    def test_process_killed_with_sigkill(self):
        code = textwrap.dedent("""
            import json, socket, sys, time
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            f = s.makefile("rwb")
            f.readline()
            for m in ({"cmd": "hello", "name": "victim", "group": "g", "id": 1},
                      {"cmd": "register", "events": %r, "id": 2}):
                f.write((json.dumps(m) + "\\n").encode()); f.flush()
            while True:                         # never answers a client
                line = f.readline()
                if not line:
                    break
                if b'"id": 2' in line or b'"id":2' in line:
                    print("ready", flush=True)
        """ % EVENTS)
        proc = subprocess.Popen([sys.executable, "-c", code, self.d.sock],
                                stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(proc.stdout.readline().strip(), "ready")
            b = self.ctl(member(self.d.sock, "b"))
            obs = self.ctl(Controller(self.d.sock))
            obs.ok("register", events=["all"])
            ids = {}
            for _ in range(4):
                p = self.client()
                cid = obs.event("pop3d_connection")["client"]
                ids[cid] = p
            time.sleep(0.2)
            rows = obs.ok("list_clients")["clients"]
            victim = [r["client"] for r in rows if r["groups"]["g"] != b.greeting["controller"]]
            mine = [r["client"] for r in rows if r["groups"]["g"] == b.greeting["controller"]]
            self.assertEqual((len(victim), len(mine)), (2, 2))
            ids[victim[0]].send("USER v\r\n")
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                r = {x["client"]: x for x in obs.ok("list_clients")["clients"]}
                if r[victim[0]]["tag"] == 1:
                    break
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(WAIT)
            self.assertEqual(ids[victim[0]].line(), GONE)
            for v in victim:
                self.assert_closed(ids[v])
            for cid in mine:
                ids[cid].send("NOOP\r\n")
                e = b.event("pop3d_cmd_noop")
                self.assertEqual(e["client"], cid)
                b.ok("send_to_client", client=cid, tag=e["tag"], text="+OK")
                self.assertEqual(ids[cid].line(), "+OK")
            self.client()
            self.assertNotEqual(b.event("pop3d_connection")["client"], 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class MemberLossAhead(GroupsTest):
    """--pipeline-depth 8: a command dispatched ahead of the one in flight
    and already answered by a controller outside the group is not
    answered after the -ERR that ends the session."""
    args = ("--pipeline-depth", "8")

    def test_no_answer_after_the_gone_line(self):
        a = self.ctl(member(self.d.sock, "a"))
        o = self.ctl(Controller(self.d.sock))
        o.ok("register", events=["cmd_noop"])
        (p, _, cid), = self.connect([a], 1)
        for line, text in (("USER u", "+OK"), ("PASS p", "+OK logged in")):
            p.send(line + "\r\n")
            e = a.event("pop3d_cmd_" + line.split()[0].lower())
            a.ok("send_to_client", client=cid, tag=e["tag"], text=text)
            self.assertEqual(p.line(), text)
        p.send("STAT\r\nNOOP\r\n")
        head = a.event("pop3d_cmd_stat")
        ahead = o.event("pop3d_cmd_noop")       # dispatched ahead of STAT
        self.assertEqual(ahead["tag"], head["tag"] + 1)
        o.ok("send_to_client", client=cid, tag=ahead["tag"], text="+OK noop")
        a.s.close()                             # STAT's member goes
        self.assertEqual(p.line(), GONE)
        self.assert_closed(p)                   # and nothing after it


class GroupPlugin(GroupsTest):
    def test_hooks_reach_bound_member(self):
        a = self.ctl(member(self.d.sock, "a", events=["connection"]))
        b = self.ctl(member(self.d.sock, "b", events=["connection"]))
        ra = a.ok("plugin_add", alias="auth", priority=5)
        rb = b.ok("plugin_add", alias="auth", priority=99)
        self.assertEqual((ra["joined"], rb["joined"]), (False, True))
        a.ok("plugin_register", alias="auth", events=["cmd_user"])
        info = b.ok("plugin_get", alias="auth")
        self.assertEqual((info["priority"], info["group"]), (5, "g"))
        outsider = self.ctl(Controller(self.d.sock))
        r = outsider.call("plugin_add", alias="auth")
        self.assertEqual(r["error"]["code"], "invalid_argument")
        r = outsider.call("plugin_register", alias="auth", events=["cmd_pass"])
        self.assertEqual(r["error"]["code"], "permission_denied")
        obs = self.ctl(Controller(self.d.sock))
        obs.ok("register", events=["cmd_user"])
        got = self.connect([a, b], 4)
        for p, i, cid in got:
            p.send("USER z\r\n")
            h = [a, b][i].read()
            self.assertEqual((h["type"], h["client"], h["plugin"]), ("hook", cid, "auth"))
            [a, b][i].ok("verdict", hook=h["hook"], eat="none")
            e = obs.event("pop3d_cmd_user")
            obs.ok("send_to_client", client=cid, tag=e["tag"], text="+OK")
            self.assertEqual(p.line(), "+OK")
        for _, i, cid in got:
            self.assertEqual(quiet([b, a][i], cid, 0), [])
        g = obs.ok("list_groups")["groups"][0]
        self.assertEqual(g["plugins"], ["auth"])
        # The entry stays while a member is in it, goes with the last.
        a.ok("plugin_del", alias="auth")
        self.assertEqual(obs.ok("plugin_get", alias="auth")["controller"],
                         b.greeting["controller"])
        b.ok("plugin_del", alias="auth")
        self.assertEqual(obs.call("plugin_get", alias="auth")["error"]["code"],
                         "invalid_argument")


class Pop3ctl(GroupsTest):
    def run_ctl(self, *args):
        r = subprocess.run([POP3CTL, "-s", self.d.sock] + list(args), capture_output=True,
                           text=True, timeout=WAIT)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_clients_and_groups(self):
        self.assertEqual(self.run_ctl("groups"), "")
        self.assertEqual(self.run_ctl("clients").split(),
                         ["ID", "PEER", "LOCAL", "STATE", "TLS", "IDLE"])
        a = self.ctl(member(self.d.sock, "alpha"))
        a.ok("plugin_add", alias="gp")
        got = self.connect([a], 1)
        cid, aid = got[0][2], a.greeting["controller"]
        lines = self.run_ctl("clients").splitlines()
        self.assertEqual(lines[0].split()[-1], "GROUPS")
        self.assertEqual(lines[1].split()[-1], "g=%d" % aid)
        self.assertEqual(lines[1].split()[0], str(cid))
        self.assertEqual(self.run_ctl("groups"),
                         "g plugins: gp\n  %d alpha clients=1\n" % aid)
        js = json.loads(self.run_ctl("-j", "groups"))
        self.assertEqual(js["groups"][0]["members"][0]["clients"], 1)


if __name__ == "__main__":
    main()
