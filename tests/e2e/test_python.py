#!/usr/bin/env python3
"""End-to-end tests of the Python library (clients/python) against the real
pop3d: the synchronous and asyncio clients, errors, events, tags, controller
plugins, and the pop3d.mailbox helper (RFC 1939/2449/5034 details)."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import poplib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))

from harness import POP3D, WAIT, Client, Daemon, main  # noqa: E402

import pop3d  # noqa: E402
from pop3d import mailbox  # noqa: E402
from pop3d.mailbox import Backend, MailboxServer, Message  # noqa: E402
from pop3d.protocol import Protocol  # noqa: E402


class Base(unittest.TestCase):
    args = ()

    def setUp(self):
        self.d = Daemon(POP3D, args=list(self.args))
        self.addCleanup(self.d.stop)

    def ctl(self, **kw):
        c = pop3d.Client(self.d.sock, timeout=WAIT, **kw)
        self.addCleanup(c.close)
        return c

    def pop(self, greet=True):
        p = Client(self.d.port, greet=greet)
        self.addCleanup(p.close)
        return p


# --------------------------------------------------------------------------
class ProtocolUnit(unittest.TestCase):
    def test_framing_split_anywhere(self):
        p = Protocol()
        data = (b'{"type":"greeting","protocol":1}\n'
                b'{"type":"event","event":"pop3d_cmd_user","seq":4,"client":7,"tag":3,'
                b'"state":"authorization","tls":false,"args":[7,"bob"]}\n\n')
        msgs = []
        for i in range(len(data)):
            msgs += p.feed(data[i:i + 1])
        self.assertEqual([m["type"] for m in msgs], ["greeting", "event"])
        self.assertEqual(p.greeting["protocol"], 1)
        self.assertEqual(p.last_seq, 4)
        self.assertEqual(p.inflight, {7: 3})

    def test_several_tags_in_flight(self):
        # pop3d --pipeline-depth: several commands of a client in flight.
        p = Protocol()
        for seq, tag in ((1, 3), (2, 4), (3, 5)):
            p.feed(b'{"type":"event","event":"pop3d_cmd_noop","seq":%d,"client":7,'
                   b'"tag":%d,"state":"transaction","tls":false,"args":[7]}\n' % (seq, tag))
        self.assertEqual(p.inflight_tags, {7: [3, 4, 5]})
        self.assertEqual(p.inflight, {7: 3})
        p.answered(7, 4)
        self.assertEqual((p.inflight_tags, p.inflight), ({7: [3, 5]}, {7: 3}))
        p.answered(7, 9)                    # not ours: nothing changes
        self.assertEqual(p.inflight_tags, {7: [3, 5]})
        p.answered(7, None)                 # a send without a tag: the oldest
        self.assertEqual((p.inflight_tags, p.inflight), ({7: [5]}, {7: 5}))
        p.answered(7, 5)
        self.assertEqual((p.inflight_tags, p.inflight), ({}, {}))

    def test_reply_matching_in_order(self):
        p = Protocol()
        a, _ = p.encode("ping")
        b, _ = p.encode("ping")
        self.assertIs(p.match_reply({"type": "reply", "id": a.id, "ok": True}), a)
        with self.assertRaises(pop3d.Pop3dError) as cm:
            p.match_reply({"type": "reply", "id": 999, "ok": True})
        self.assertEqual(cm.exception.code, "protocol_error")

    def test_error_carries_code_and_message(self):
        with self.assertRaises(pop3d.Pop3dError) as cm:
            Protocol.result({"ok": False, "error": {"code": "stale", "message": "stale tag"}})
        self.assertEqual((cm.exception.code, cm.exception.message), ("stale", "stale tag"))

    def test_event_exact_args(self):
        raw = {"type": "event", "event": "pop3d_cmd_pass", "client": 1, "tag": 2,
               "args": [1, "caf\ufffd"], "args_b64": [None, base64.b64encode(b"caf\xe9")
                                                      .decode()]}
        ev = pop3d.Event(raw)
        self.assertEqual(ev.arg_bytes(1), b"caf\xe9")
        self.assertEqual(ev.arg(1).encode("utf-8", "surrogateescape"), b"caf\xe9")
        self.assertEqual(ev.verb, "pass")
        self.assertNotIn("caf", repr(ev))      # secrets are masked in repr

    def test_octets(self):
        with tempfile.TemporaryDirectory() as t:
            cases = [b"", b"a", b"a\n", b"a\r\n", b"a\r", b"a\rb", b"a\n\nb", b"\r\n\r\n",
                     b".\n..\n", b"x" * 5 + b"\r", b"\xff\xfe\r\n\xe9"]
            for data in cases:
                path = os.path.join(t, "m")
                with open(path, "wb") as f:
                    f.write(data)
                want = len(mailbox.normalize(data))
                self.assertEqual(mailbox.octets(path), want, data)
                self.assertEqual(mailbox.octets_of(data), want, data)
            # A CRLF split across the 1 MiB read boundary counts once.
            data = b"y" * ((1 << 20) - 1) + b"\r\n" + b"z"
            with open(path, "wb") as f:
                f.write(data)
            self.assertEqual(mailbox.octets(path), (1 << 20) - 1 + 2 + 1 + 2)

    def test_octet_counter_any_chunking(self):
        # One rule (mailbox.OctetCounter) behind octets_of/octets_fd/octets:
        # the count does not depend on how the bytes are split.
        for data in (b"a\r\nb\rc\n", b"x\r", b"\r\r\n\n", b".\r\n..\r\n", b"end"):
            want = len(mailbox.normalize(data))
            for size in (1, 2, 3, len(data)):
                c = mailbox.OctetCounter()
                for i in range(0, len(data), size):
                    c.feed(data[i:i + size])
                self.assertEqual(c.total(), want, (data, size))
            self.assertEqual(mailbox.octets_of(data), want, data)
        # Dot-stuffing is not counted (RFC 1939): ".." stays 2 octets.
        self.assertEqual(mailbox.octets_of(b"..\n"), 4)

    def test_normalize_top(self):
        msg = b"A: 1\nB: 2\n\nl1\nl2\nl3"
        self.assertEqual(mailbox.normalize(msg, 0), b"A: 1\r\nB: 2\r\n\r\n")
        self.assertEqual(mailbox.normalize(msg, 2), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n")
        self.assertEqual(mailbox.normalize(b"A: 1\nB: 2", 0), b"A: 1\r\nB: 2\r\n")


# --------------------------------------------------------------------------
class _CountingSocket:
    """A socket whose sendall calls are recorded (one entry per call)."""

    def __init__(self, sock):
        self.sock = sock
        self.sends = []

    def sendall(self, data):
        self.sends.append(bytes(data))
        return self.sock.sendall(data)

    def send(self, data):               # a second write path would be counted too
        self.sends.append(bytes(data))
        return self.sock.send(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


class Batching(unittest.TestCase):
    """The sync Client writes the answers to a batch of events with one
    send; MailboxServer posts its answers; the wire bytes are those of the
    generic encoder."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pop3d-batch-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        a, self.server = socket.socketpair()
        self.addCleanup(self.server.close)
        self.c = pop3d.Client("unused.sock", connect=False, timeout=WAIT)
        self.addCleanup(self.c.close)
        self.sock = _CountingSocket(a)
        self.c._sock = self.sock
        self.c._proto.greeting = self.c.greeting = {"type": "greeting"}
        self.server.settimeout(WAIT)

    def events(self, n, verb="user", first_tag=10):
        return b"".join(
            b'{"type":"event","event":"pop3d_cmd_%s","seq":%d,"client":%d,"tag":%d,'
            b'"state":"authorization","tls":false,"args":[%d%s]}\n'
            % (verb.encode(), i + 1, i % 3 + 1, first_tag + i, i % 3 + 1,
               b',"bob"' if verb == "user" else b"") for i in range(n))

    def read_lines(self, count):
        data = b""
        while data.count(b"\n") < count:
            chunk = self.server.recv(1 << 20)
            self.assertTrue(chunk)
            data += chunk
        return [json.loads(x) for x in data.split(b"\n")[:-1]]

    def test_one_send_per_batch_in_order(self):
        srv = MailboxServer(MemoryBackend(self.tmp), self.c, hostname="t")
        n = 20
        self.server.sendall(self.events(n))
        for _ in range(n):
            srv.handle(self.c.next_event(WAIT))
        self.assertEqual(self.sock.sends, [])        # posted, not yet written
        self.assertIsNone(self.c.next_event(0.05))  # reads again: flushed first
        self.assertEqual(len(self.sock.sends), 1, self.sock.sends)
        msgs = self.read_lines(n)
        self.assertEqual([(m["cmd"], m["client"], m["tag"], m["text"]) for m in msgs],
                         [("send_to_client", i % 3 + 1, 10 + i, "+OK send PASS")
                          for i in range(n)])
        self.assertEqual([m["id"] for m in msgs], list(range(1, n + 1)))
        # Their replies (one an error: a gone client) are matched, not raised.
        self.server.sendall(b"".join(
            b'{"type":"reply","id":%d,"ok":true,"result":{}}\n' % i for i in range(1, n))
            + b'{"type":"reply","id":%d,"ok":false,"error":{"code":"unknown_client",'
              b'"message":"gone"}}\n' % n)
        self.assertIsNone(self.c.next_event(0.2))
        self.assertEqual(len(self.c._proto.pending), 0)
        self.assertEqual(len(self.sock.sends), 1)
        # The next batch: one more send.
        self.server.sendall(self.events(5, "capa", first_tag=40))
        for _ in range(5):
            srv.handle(self.c.next_event(WAIT))
        self.assertIsNone(self.c.next_event(0.05))
        self.assertEqual(len(self.sock.sends), 2)
        msgs = self.read_lines(5)
        self.assertEqual([m["tag"] for m in msgs], list(range(40, 45)))
        self.assertEqual(msgs[0]["lines"][0], "+OK capability list follows")

    def test_call_writes_posted_commands_first(self):
        p1 = self.c.post_to_client(3, text="+OK a", tag=7)
        p2 = self.c.post("disconnect", client=3)
        self.assertEqual(self.sock.sends, [])
        self.c.flush()
        self.assertEqual(len(self.sock.sends), 1)
        self.assertEqual([(m["cmd"], m["id"]) for m in self.read_lines(2)],
                         [("send_to_client", p1.id), ("disconnect", p2.id)])
        got = []
        self.c.post_to_client(4, text="+OK b", tag=8, on_reply=got.append)
        t = threading.Thread(target=lambda: got.append(self.c.ping()))
        t.start()
        msgs = self.read_lines(2)
        self.assertEqual([m["cmd"] for m in msgs], ["send_to_client", "ping"])
        self.assertEqual(len(self.sock.sends), 2)   # the posted line went with ping
        self.server.sendall(b"".join(b'{"type":"reply","id":%d,"ok":true,"result":%s}\n'
                                     % (m["id"], b'{"seq":5}' if m["cmd"] == "ping"
                                        else b"{}") for m in [{"id": p1.id, "cmd": ""},
                                                              {"id": p2.id, "cmd": ""}] + msgs))
        t.join(WAIT)
        self.assertEqual(got[0].reply["ok"], True)
        self.assertEqual(got[1], {"seq": 5})

    def test_text_template_is_the_generic_encoding(self):
        texts = ["+OK", "-ERR [IN-USE] x", 'q"uote\\back\nline\ttab\x00\x1f\x7f',
                 "\u00e9\u2028\u2029\U0001f600 </script>", "+ ", "", "x" * 500]
        for text in texts:
            for tag in (None, 0, 9, 123456789):
                fast, slow = Protocol(), Protocol()
                got = fast.encode_text(42, tag, text)
                want = slow.encode("send_to_client", pop3d.protocol.send_to_client_args(
                    42, text=text, tag=tag))[1]
                self.assertEqual(got[1], want, (text, tag))
        # Not UTF-8 (surrogate escapes), bytes, odd ids: the generic path.
        self.assertIsNone(Protocol().encode_text(1, 2, "\udcff"))
        self.assertIsNone(Protocol().encode_text(1, 2, b"+OK"))
        self.assertIsNone(Protocol().encode_text(True, 2, "+OK"))
        self.c.post_to_client(1, text="\udcff", tag=2)
        self.c.post_to_client(1, text=b"+OK \xff", tag=3)
        self.c.flush()
        msgs = self.read_lines(2)
        self.assertEqual(msgs[0]["text_b64"], base64.b64encode(b"\xff").decode())
        self.assertEqual(msgs[1]["text_b64"], base64.b64encode(b"+OK \xff").decode())

    def test_fixed_ok_reply_decodes_as_json(self):
        lines = [b'{"type":"reply","id":%s,"ok":true,"result":{}}' % x
                 for x in (b"1", b"0", b"987654321", b"-3", b'"s"', b"null")]
        lines.append(b'{"type":"reply","id":5,"ok":true,"result":{"seq":3}}')
        p = Protocol()
        self.assertEqual(p.feed(b"\n".join(lines) + b"\n"), [json.loads(x) for x in lines])

    def test_event_fields_lazy_and_exact(self):
        raw = {"type": "event", "event": "pop3d_cmd_user", "seq": 4, "client": 7, "tag": 3,
               "state": "authorization", "tls": True, "origin": 2, "args": [7, "b\ufffd"],
               "args_b64": [None, base64.b64encode(b"b\xff").decode()]}
        ev = pop3d.Event(raw)
        self.assertEqual((ev.seq, ev.client, ev.tag, ev.state, ev.tls, ev.origin),
                         (4, 7, 3, "authorization", True, 2))
        self.assertIs(ev.args, raw["args"])             # no copy
        self.assertEqual(ev.arg(1), "b\udcff")
        self.assertEqual(ev.arg_bytes(1), b"b\xff")
        ev2 = pop3d.Event({"type": "event", "event": "pop3d_cmd_noop", "client": 1})
        self.assertEqual((ev2.args, ev2.arg(1), ev2.seq, ev2.tls), ([], None, 0, False))


class MailboxPipelined(Base):
    """MailboxServer under pop3d --pipeline-depth 8: a pipelined burst is
    answered by tag, in order, byte for byte as at depth 1."""
    args = ("--pipeline-depth", "8", "--auth-fail-delay", "100")

    def burst(self, daemon):
        tmp = tempfile.mkdtemp(prefix="pop3d-mbx-")
        self.addCleanup(shutil.rmtree, tmp, True)
        c = pop3d.Client(daemon.sock, name="mailbox", timeout=WAIT)
        self.addCleanup(c.close)
        srv = MailboxServer(MemoryBackend(tmp), c, hostname="test.example")
        srv.register()
        errors = []
        self.depths = []

        def serve():
            try:
                for ev in c.events():
                    if ev.client:
                        self.depths.append(len(c.inflight_tags(ev.client)))
                    srv.handle(ev)
            except Exception as e:
                if not c.closed:
                    errors.append(e)
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        cmds = ["USER alice", "PASS wonderland"]
        body = ["STAT", "LIST", "UIDL", "RETR 1", "NOOP", "LIST 2", "UIDL 3", "RETR 2",
                "DELE 1", "STAT", "RETR 1", "RSET", "TOP 3 1", "NOOP", "RETR 9", "NOOP"]
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=WAIT)
        self.addCleanup(s.close)
        f = s.makefile("rb")
        f.readline()                                    # the core's greeting
        s.sendall(("\r\n".join(cmds) + "\r\n").encode())
        f.readline(), f.readline()
        s.sendall(("\r\n".join(body * 4 + ["QUIT"]) + "\r\n").encode())
        data = f.read()
        c.close()
        t.join(WAIT)
        self.assertEqual(errors, [])
        return data, max(self.depths)

    def test_burst_same_bytes_as_depth_1(self):
        d1 = Daemon(POP3D, args=["--auth-fail-delay", "100"])
        self.addCleanup(d1.stop)
        (deep, most), (flat, one) = self.burst(self.d), self.burst(d1)
        # The depth is in effect: the service had several commands of the
        # client in flight at once (answered by tag); at depth 1, one.
        self.assertGreater(most, 1)
        self.assertEqual(one, 1)
        self.assertEqual(deep, flat)
        self.assertTrue(deep.endswith(b"+OK POP3 server signing off (3 messages left)\r\n"),
                        deep[-200:])
        self.assertEqual(deep.count(b"\r\n+OK\r\n"), 12)     # the NOOPs, in place
        self.assertEqual(deep.count(b"-ERR no such message"), 4)
        self.assertIn(b"+OK 3 ", deep)


class PipelineDepth(Base):
    """pop3d --pipeline-depth 4: Event.reply answers each of a client's
    pipelined commands by its tag, in any order; the client reads the
    answers in command order."""
    args = ("--pipeline-depth", "4")

    def test_answers_out_of_order(self):
        c = self.ctl()
        c.register(["cmd_user", "cmd_pass", "cmd_noop"])
        p = self.pop()
        p.send("USER a\r\n")
        c.wait_event("cmd_user", timeout=WAIT).reply("+OK")
        p.send("PASS b\r\n")
        c.wait_event("cmd_pass", timeout=WAIT).reply("+OK in")
        self.assertEqual((p.line(), p.line()), ("+OK", "+OK in"))
        p.send("NOOP\r\nNOOP\r\nNOOP\r\n")
        evs = [c.wait_event("cmd_noop", timeout=WAIT) for _ in range(3)]
        tags = [e.tag for e in evs]
        self.assertEqual(c.inflight_tags(evs[0].client), tags)
        self.assertEqual(c.inflight_tag(evs[0].client), tags[0])
        for e in reversed(evs):
            e.reply("+OK %d" % e.tag)
        self.assertEqual([p.line() for _ in range(3)], ["+OK %d" % t for t in tags])
        self.assertEqual(c.inflight_tags(evs[0].client), [])


class SyncClient(Base):
    def test_greeting_and_session_commands(self):
        c = self.ctl(name="pytest")
        self.assertEqual(c.greeting["type"], "greeting")
        self.assertEqual(c.greeting["listeners"][0]["port"], self.d.port)
        self.assertEqual(c.hello(name="renamed")["name"], "renamed")
        self.assertIn("seq", c.ping())
        sid = c.session_id()["session_id"]
        self.assertEqual(sid, c.greeting["session_id"])
        self.assertEqual(c.getsockname()["listeners"][0]["port"], self.d.port)
        self.assertEqual(c.list_clients()["clients"], [])
        p = self.pop()
        clients = c.list_clients()["clients"]
        self.assertEqual(len(clients), 1)
        self.assertEqual(clients[0]["state"], "authorization")
        self.assertEqual(sorted(c.register(["cmd_user", "pop3d_cmd_pass"])["events"]),
                         ["pop3d_cmd_pass", "pop3d_cmd_user"])
        self.assertEqual(c.unregister("cmd_user")["events"], ["pop3d_cmd_pass"])
        p.close()

    def test_errors_raise_with_codes(self):
        c = self.ctl()
        cases = [
            (lambda: c.call("no_such_command"), "unknown_command"),
            (lambda: c.register(["cmd_bogus"]), "unknown_event"),
            (lambda: c.send_to_client(999, text="+OK"), "unknown_client"),
            (lambda: c.disconnect(999), "unknown_client"),
            (lambda: c.call("ping", bogus=1), "invalid_argument"),
            (lambda: c.send_event("not_custom"), "unknown_event"),
        ]
        for fn, code in cases:
            with self.assertRaises(pop3d.Pop3dError) as cm:
                fn()
            self.assertEqual(cm.exception.code, code)
            self.assertTrue(cm.exception.message)
        # After errors the connection still works.
        self.assertIn("seq", c.ping())

    def test_events_iteration_and_tags(self):
        c = self.ctl()
        c.register(["cmd_noop", "cmd_user"])
        p = self.pop()
        p.send("NOOP\r\nUSER bob\r\nNOOP\r\n")
        seen = []
        for ev in c.events(timeout=WAIT):
            if ev.name == "pop3d_registered":
                continue
            seen.append((ev.name, ev.tag))
            self.assertEqual(c.inflight_tag(ev.client), ev.tag)
            if ev.name == "pop3d_cmd_user":
                self.assertEqual(ev.args, [ev.client, "bob"])
                self.assertEqual(ev.state, "authorization")
            ev.reply("+OK %d" % ev.tag)
            # (the next command may already be in flight)
            self.assertNotEqual(c.inflight_tag(ev.client), ev.tag)
            # Answering the same command twice: its tag is stale now.
            with self.assertRaises(pop3d.Pop3dError) as cm:
                ev.reply("+OK again")
            self.assertEqual(cm.exception.code, "stale")
            if len(seen) == 3:
                break
        self.assertEqual(seen, [("pop3d_cmd_noop", 1), ("pop3d_cmd_user", 2),
                                ("pop3d_cmd_noop", 3)])
        self.assertEqual([p.line() for _ in range(3)], ["+OK 1", "+OK 2", "+OK 3"])
        self.assertGreaterEqual(c.last_seq, 3)

    def test_one_command_in_flight(self):
        c = self.ctl()
        c.register(["cmd_noop"])
        p = self.pop()
        p.send("NOOP\r\nNOOP\r\n")
        ev = c.wait_event("cmd_noop")
        # The second NOOP is not parsed until the first is answered.
        self.assertIsNone(c.next_event(timeout=0.3))
        ev.reply("+OK first")
        ev2 = c.wait_event("cmd_noop")
        self.assertEqual(ev2.tag, ev.tag + 1)
        ev2.reply("+OK second")
        self.assertEqual([p.line(), p.line()], ["+OK first", "+OK second"])

    def test_non_utf8_line_uses_args_b64(self):
        c = self.ctl()
        c.register(["cmd_user"])
        p = self.pop()
        p.send(b"USER caf\xe9 \xff\r\n")
        ev = c.wait_event("cmd_user")
        self.assertIsNotNone(ev.args_b64)
        self.assertEqual(ev.arg_bytes(1), b"caf\xe9 \xff")
        self.assertIn("\ufffd", ev.args[1])
        ev.reply(b"+OK caf\xe9")          # bytes that are not UTF-8 go as text_b64
        self.assertEqual(p.s.recv(100), b"+OK caf\xe9\r\n")

    def test_reply_lines_and_file(self):
        c = self.ctl()
        c.register(["cmd_list", "cmd_retr", "cmd_top"])
        p = self.pop()
        p.send("LIST\r\n")
        c.wait_event("cmd_list").reply_lines(["1 10", ".dot", "\xe9"], status="+OK 2")
        self.assertEqual(p.line(), "+OK 2")
        self.assertEqual(p.multiline(), ["1 10", ".dot", "\xc3\xa9"])
        p.send("LIST\r\n")
        c.wait_event("cmd_list").reply_lines([b"+OK raw", b"\xff"])   # lines_b64
        self.assertEqual(p.line(), "+OK raw")
        self.assertEqual(p.multiline(), ["\xff"])
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(b"H: 1\n\n.body\nline2\nline3")
        self.addCleanup(os.unlink, f.name)
        p.send("RETR 1\r\n")
        ev = c.wait_event("cmd_retr")
        ev.reply_file(f.name, "+OK %d octets" % mailbox.octets(f.name))
        self.assertEqual(p.line(), "+OK %d octets" % len(b"H: 1\r\n\r\n.body\r\nline2\r\n"
                                                        b"line3\r\n"))
        self.assertEqual(p.multiline(), ["H: 1", "", ".body", "line2", "line3"])
        p.send("TOP 1 1\r\n")
        c.wait_event("cmd_top").reply_file(f.name, "+OK top", top_lines=1)
        self.assertEqual(p.line(), "+OK top")
        self.assertEqual(p.multiline(), ["H: 1", "", ".body"])
        p.send("RETR 2\r\n")
        ev = c.wait_event("cmd_retr")
        with self.assertRaises(pop3d.Pop3dError) as cm:
            ev.reply_file("/nonexistent/file", "+OK")
        self.assertEqual(cm.exception.code, "invalid_argument")
        ev.reply("-ERR no such message")
        self.assertEqual(p.line(), "-ERR no such message")

    def test_pipelined_commands(self):
        c = self.ctl()
        pend = [c.send_nowait("ping") for _ in range(20)]
        bad = c.send_nowait("register", events=["cmd_bogus"])
        last = c.send_nowait("session_id")
        seqs = [c.wait(p)["seq"] for p in pend]
        self.assertEqual(seqs, sorted(seqs))
        with self.assertRaises(pop3d.Pop3dError) as cm:
            c.wait(bad)
        self.assertEqual(cm.exception.code, "unknown_event")
        self.assertIn("session_id", c.wait(last))

    def test_default_path_from_environment(self):
        old = os.environ.get("POP3D_CONTROL")
        os.environ["POP3D_CONTROL"] = self.d.sock
        try:
            c = pop3d.Client()
            self.addCleanup(c.close)
            self.assertEqual(c.path, self.d.sock)
            self.assertIn("seq", c.ping())
            del os.environ["POP3D_CONTROL"]
            with self.assertRaises(ValueError):
                pop3d.Client()
        finally:
            if old is not None:
                os.environ["POP3D_CONTROL"] = old
            else:
                os.environ.pop("POP3D_CONTROL", None)

    def test_shutdown_ends_iteration(self):
        c = self.ctl()
        w = self.ctl()
        w.register("all")
        c.shutdown()
        names = [ev.name for ev in w.events(timeout=WAIT)]
        self.assertIn("pop3d_shutdown", names)
        self.assertTrue(w.closed)
        with self.assertRaises(pop3d.Pop3dError) as cm:
            w.ping()
        self.assertEqual(cm.exception.code, "connection_closed")
        self.assertEqual(self.d.wait(WAIT), 0)

    def test_hello_lossy_and_name(self):
        c = self.ctl(name="watcher", lossy=True)
        r = c.hello()
        self.assertEqual(r["name"], "watcher")
        self.assertTrue(r["lossy"])
        self.d.wait_log(r'event=hello name="watcher" lossy=1')

    def test_sasl_continuation_keeps_tag(self):
        # The core's SASL continuation: pop3d_auth_data must exist.
        c = self.ctl()
        c.register(["cmd_auth", "auth_data"])
        p = self.pop()
        p.send("AUTH PLAIN\r\n")
        ev = c.wait_event("cmd_auth")
        ev.reply("+ ")
        self.assertEqual(c.inflight_tag(ev.client), ev.tag)
        self.assertEqual(p.line(), "+ ")
        p.send("AGJvYgBzZWNyZXQ=\r\n")
        data = c.wait_event("auth_data")
        self.assertEqual((data.tag, data.args[1]), (ev.tag, "AGJvYgBzZWNyZXQ="))
        data.reply("+OK welcome")
        self.assertEqual(p.line(), "+OK welcome")
        self.assertEqual(c.list_clients()["clients"][0]["state"], "transaction")


# --------------------------------------------------------------------------
class AsyncClientTest(Base):
    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 3 * WAIT))

    def test_basics_and_errors(self):
        async def go():
            c = await pop3d.AsyncClient.connect(self.d.sock, name="aio")
            try:
                self.assertEqual(c.greeting["type"], "greeting")
                self.assertIn("seq", await c.ping())
                with self.assertRaises(pop3d.Pop3dError) as cm:
                    await c.register(["cmd_nope"])
                self.assertEqual(cm.exception.code, "unknown_event")
                with self.assertRaises(pop3d.Pop3dError) as cm:
                    await c.call("nope")
                self.assertEqual(cm.exception.code, "unknown_command")
                # Many concurrent commands: replies are matched in order.
                res = await asyncio.gather(*[c.ping() for _ in range(50)])
                self.assertEqual([r["seq"] for r in res], sorted(r["seq"] for r in res))
            finally:
                await c.close()
        self.run_async(go())

    def test_events_and_replies(self):
        async def go():
            async with await pop3d.AsyncClient.connect(self.d.sock) as c:
                await c.register(["cmd_user", "cmd_noop", "cmd_quit"])
                loop = asyncio.get_running_loop()

                def pop_session():
                    p = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
                    out = [p.user("amy"), p.noop(), p.quit()]
                    return out
                fut = loop.run_in_executor(None, pop_session)
                got = []
                async for ev in c.events(timeout=WAIT):
                    if ev.verb is None:
                        continue            # pop3d_registered
                    got.append(ev.verb)
                    if ev.verb == "user":
                        self.assertEqual(ev.arg(1), "amy")
                        await ev.reply("+OK amy")
                    elif ev.verb == "noop":
                        with self.assertRaises(pop3d.Pop3dError) as cm:
                            await c.send_to_client(ev.client, text="+OK", tag=ev.tag + 5)
                        self.assertEqual(cm.exception.code, "stale")
                        await ev.reply("+OK")
                    elif ev.verb == "quit":
                        await ev.reply("+OK bye")
                        break
                self.assertEqual(await fut, [b"+OK amy", b"+OK", b"+OK bye"])
                self.assertEqual(got, ["user", "noop", "quit"])
        self.run_async(go())

    def test_closed_connection(self):
        async def go():
            c = await pop3d.AsyncClient.connect(self.d.sock)
            await c.register("all")
            other = pop3d.Client(self.d.sock)
            other.shutdown()
            other.close()
            names = [ev.name async for ev in c.events(timeout=WAIT)]
            self.assertIn("pop3d_shutdown", names)
            with self.assertRaises(pop3d.Pop3dError) as cm:
                await c.ping()
            self.assertEqual(cm.exception.code, "connection_closed")
            await c.close()
        self.run_async(go())


# --------------------------------------------------------------------------
class BothClients(Base):
    """Client and AsyncClient are built on one pop3d.base.ClientCore: the
    same behaviour at the end of the connection, when a plugin handler
    raises, and the same bookkeeping (inflight_tag, last_seq, dropped)."""

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 3 * WAIT))

    def shutdown_server(self):
        other = pop3d.Client(self.d.sock, timeout=WAIT)
        other.shutdown()
        other.close()

    def test_eof_sync(self):
        c = self.ctl()
        c.register("all")
        self.shutdown_server()
        names = []
        with self.assertRaises(pop3d.Pop3dError) as cm:
            while True:
                ev = c.next_event(timeout=WAIT)
                self.assertIsNotNone(ev, "next_event timed out instead of raising at EOF")
                names.append(ev.name)
        self.assertEqual(cm.exception.code, "connection_closed")
        self.assertIn("pop3d_shutdown", names)          # handed out before the error
        with self.assertRaises(pop3d.Pop3dError) as cm:  # and on every later call
            c.next_event(timeout=0.1)
        self.assertEqual(cm.exception.code, "connection_closed")
        with self.assertRaises(pop3d.Pop3dError) as cm:
            c.wait_event("cmd_noop", timeout=0.1)
        self.assertEqual(cm.exception.code, "connection_closed")
        self.assertEqual(list(c.events(timeout=0.1)), [])
        self.assertTrue(c.closed)

    def test_eof_async(self):
        async def go():
            c = await pop3d.AsyncClient.connect(self.d.sock)
            await c.register("all")
            self.shutdown_server()
            names = []
            with self.assertRaises(pop3d.Pop3dError) as cm:
                while True:
                    ev = await c.next_event(timeout=WAIT)
                    self.assertIsNotNone(ev, "next_event timed out instead of raising at EOF")
                    names.append(ev.name)
            self.assertEqual(cm.exception.code, "connection_closed")
            self.assertIn("pop3d_shutdown", names)
            with self.assertRaises(pop3d.Pop3dError) as cm:
                await c.next_event(timeout=0.1)
            self.assertEqual(cm.exception.code, "connection_closed")
            with self.assertRaises(pop3d.Pop3dError) as cm:
                await c.wait_event("cmd_noop", timeout=0.1)
            self.assertEqual(cm.exception.code, "connection_closed")
            self.assertEqual([ev async for ev in c.events(timeout=0.1)], [])
            self.assertTrue(c.closed)
            await c.close()
        self.run_async(go())

    # A plugin whose handler fails: first by raising, then by returning
    # something that is no verdict.  timeout_ms is long: only the "none"
    # verdict the client sends can let the consumer see the command in time.
    def test_hook_exception_sync(self):
        c = self.ctl()
        consumer = self.ctl()
        consumer.register(["cmd_noop"])
        calls = []

        @c.plugin("boom", events=["cmd_noop"], timeout_ms=600000)
        def boom(hook):
            calls.append(hook.name)
            if len(calls) == 1:
                raise RuntimeError("handler bug")
            return "maybe"
        p = self.pop()
        for exc in (RuntimeError, ValueError):
            p.send("NOOP\r\n")
            with self.assertLogs("pop3d", "ERROR"):
                with self.assertRaises(exc):
                    c.next_event(timeout=WAIT)
            consumer.wait_event("cmd_noop", timeout=WAIT).reply("+OK")
            self.assertEqual(p.line(), "+OK")
        self.assertEqual(len(calls), 2)
        self.assertIn("seq", c.ping())                  # still usable
        self.assertIsNone(c.next_event(timeout=0.1))

    def test_hook_exception_async(self):
        async def go():
            loop = asyncio.get_running_loop()
            async with await pop3d.AsyncClient.connect(self.d.sock) as c, \
                    await pop3d.AsyncClient.connect(self.d.sock) as consumer:
                await consumer.register(["cmd_noop"])
                calls = []

                @c.plugin("boom", events=["cmd_noop"], timeout_ms=600000)
                async def boom(hook):
                    calls.append(hook.name)
                    if len(calls) == 1:
                        raise RuntimeError("handler bug")
                    return "maybe"
                await c.install_plugins()
                p = self.pop()
                for exc in (RuntimeError, ValueError):
                    p.send("NOOP\r\n")
                    with self.assertLogs("pop3d", "ERROR"):
                        with self.assertRaises(exc):
                            await c.next_event(timeout=WAIT)
                    ev = await consumer.wait_event("cmd_noop", timeout=WAIT)
                    await ev.reply("+OK")
                    self.assertEqual(await loop.run_in_executor(None, p.line), "+OK")
                self.assertEqual(len(calls), 2)
                self.assertIn("seq", await c.ping())
                self.assertIsNone(await c.next_event(timeout=0.1))
        self.run_async(go())

    def test_bookkeeping_async(self):
        async def go():
            async with await pop3d.AsyncClient.connect(self.d.sock) as c:
                await c.register(["cmd_noop"])
                p = self.pop()
                p.send("NOOP\r\n")
                ev = await c.wait_event("cmd_noop")
                self.assertEqual(c.inflight_tag(ev.client), ev.tag)
                self.assertEqual(c.inflight_tags(ev.client), [ev.tag])
                self.assertGreaterEqual(c.last_seq, ev.seq)
                self.assertEqual(c.dropped, 0)
                await ev.reply("+OK")
                self.assertIsNone(c.inflight_tag(ev.client))
        self.run_async(go())

    def test_results_have_their_typed_keys(self):
        from pop3d import results

        def keys(td):
            return set(td.__required_keys__)
        c = self.ctl()
        p = self.pop()
        p.send("NOOP\r\n")          # the client exists for list_clients
        self.assertEqual(set(c.hello(name="typed")), keys(results.HelloResult))
        m = self.ctl()
        self.assertEqual(set(m.hello(name="member", group="typed")),
                         keys(results.HelloResult) | results.HelloResult.__optional_keys__)
        groups = c.list_groups()
        self.assertEqual(set(groups), keys(results.ListGroupsResult))
        self.assertEqual(set(groups["groups"][0]), keys(results.GroupInfo))
        self.assertEqual(set(groups["groups"][0]["members"][0]), keys(results.GroupMember))
        self.assertEqual(set(c.ping()), keys(results.PingResult))
        self.assertEqual(set(c.session_id()), keys(results.SessionIdResult))
        listeners = c.getsockname()
        self.assertEqual(set(listeners), keys(results.GetsocknameResult))
        self.assertEqual(set(listeners["listeners"][0]), keys(results.Listener))
        clients = c.list_clients()
        self.assertEqual(set(clients), keys(results.ListClientsResult))
        self.assertEqual(set(clients["clients"][0]), keys(results.ClientInfo))
        self.assertEqual(set(c.register("cmd_noop")), keys(results.EventsResult))
        self.assertEqual(set(c.plugin_add("typed")), keys(results.PluginCountResult))
        info = c.plugin_register("typed", ["cmd_user"])
        self.assertEqual(set(info), keys(results.PluginInfo))
        self.assertEqual(set(c.plugin_get("typed")), keys(results.PluginInfo))
        listed = c.plugin_list()
        self.assertEqual(set(listed), keys(results.PluginListResult))
        for x in listed["plugins"]:        # built-in ones have no timeout_ms
            self.assertLessEqual(set(x), keys(results.PluginInfo))
        self.assertEqual(set(c.plugin_order()), keys(results.PluginOrderResult))
        self.assertEqual(set(c.plugin_del("typed")), keys(results.PluginCountResult))
        self.assertEqual(c.send_event("x_typed"), {})


# --------------------------------------------------------------------------
class Plugins(Base):
    def pump(self, c, done):
        """Run hooks (inside next_event) until done() or WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while not done():
            self.assertLess(time.monotonic(), deadline, "hook never ran")
            ev = c.next_event(timeout=0.05)
            self.assertIsNone(ev)

    def test_sync_plugin_eats_command(self):
        c = self.ctl()
        consumer = self.ctl()
        consumer.register(["cmd_noop", "cmd_user"])
        seen = []

        @c.plugin("nouser", events=["cmd_user"], priority=10)
        def deny(hook):
            seen.append((hook.name, hook.plugin, hook.client, hook.tag))
            hook.reply("-ERR users are not welcome")
            return "all"
        p = self.pop()
        p.send("USER eve\r\n")
        self.pump(c, lambda: seen)                  # hooks run inside next_event
        self.assertEqual(p.line(), "-ERR users are not welcome")
        self.assertEqual(seen[0][:2], ("pop3d_cmd_user", "nouser"))
        p.send("NOOP\r\n")
        ev = consumer.wait_event("cmd_noop")   # the consumer never saw USER
        ev.reply("+OK")
        self.assertEqual(p.line(), "+OK")

    def test_pop3c_plugin_rewrites_response(self):
        c = self.ctl()
        consumer = self.ctl()
        consumer.register(["cmd_noop"])
        seen = []

        @c.plugin("rewrite", events=["response"], type="POP3C")
        def rewrite(hook):
            seen.append((hook.name, hook.kind, hook.arg(1)))
            return "none", [hook.client, hook.arg(1) + " (rewritten)"]
        # Every response line waits for the hook, the greeting too: this
        # thread runs the hooks (in next_event) before reading the client.
        p = self.pop(greet=False)
        self.pump(c, lambda: len(seen) == 1)
        self.assertEqual(p.line(), "+OK POP3 localhost pop3d-0.1.0 server ready (rewritten)")
        p.send("NOOP\r\n")
        consumer.wait_event("cmd_noop").reply("+OK fine")
        self.pump(c, lambda: len(seen) == 2)
        self.assertEqual(p.line(), "+OK fine (rewritten)")
        self.assertEqual([x[:2] for x in seen], [("response", "POP3C")] * 2)
        self.assertEqual(seen[1][2], "+OK fine")
        info = c.plugin_get("rewrite")
        self.assertEqual(info["events"]["POP3C"], ["response"])
        self.assertIn("rewrite", c.plugin_order()["plugins"])
        c.plugin_del("rewrite")
        self.assertNotIn("rewrite", c.plugin_order()["plugins"])

    def test_async_plugin_passes_through(self):
        async def go():
            async with await pop3d.AsyncClient.connect(self.d.sock) as c:
                hooks = []

                @c.plugin("counter", events=["cmd_noop"])
                async def count(hook):
                    hooks.append(hook.name)
                    return None                      # "none": consumers still see it
                await c.install_plugins()
                await c.register(["cmd_noop"])
                loop = asyncio.get_running_loop()

                def session():
                    p = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
                    return p.noop()
                fut = loop.run_in_executor(None, session)
                ev = await c.wait_event("cmd_noop")
                await ev.reply("+OK counted")
                self.assertEqual(await fut, b"+OK counted")
                self.assertEqual(hooks, ["pop3d_cmd_noop"])
        asyncio.run(asyncio.wait_for(go(), 3 * WAIT))


# --------------------------------------------------------------------------
MESSAGES = {
    "alice": [
        ("uid-a1", b"Subject: one\nFrom: a@example.org\n\nHello\n.\n..\n.x\n"),
        ("uid-a2", b"Subject: two\r\n\r\nbody line 1\r\nbody line 2\r\nbody line 3"),
        ("uid-a3", b"Subject: three\n\n\xe9t\xe9 \xff\xfe binary\rcr only\n"),
    ],
    "bob": [("uid-b1", b"Subject: bob\n\nhi bob\n")],
    "carol": [],
}
PASSWORDS = {"alice": b"wonderland", "bob": b"builder", "carol": b"c p\xe4ss"}


class MemoryBackend(Backend):
    """Messages in files under a temp dir; passwords in memory."""

    def __init__(self, root):
        super().__init__()
        self.root = root
        self.deleted = []
        self.calls = []
        self.store = {}
        for user, msgs in MESSAGES.items():
            self.store[user] = []
            for uid, data in msgs:
                path = os.path.join(root, "%s-%s" % (user, uid))
                with open(path, "wb") as f:
                    f.write(data)
                self.store[user].append(Message(uid, path))

    def authenticate(self, user, password):
        self.calls.append(("auth", user))
        want = PASSWORDS.get(user, b"\0dummy-password-never-matches")
        return hmac.compare_digest(hashlib.sha256(password).digest(),
                                   hashlib.sha256(want).digest()) and user in PASSWORDS

    def apop_secret(self, user):
        return PASSWORDS.get(user)

    def list_messages(self, user):
        return [Message(m.uid, m.path) for m in self.store.get(user, [])]

    def delete_messages(self, user, msgs):
        for m in msgs:
            self.deleted.append((user, m.uid))
            os.unlink(m.path)
        uids = {m.uid for m in msgs}
        self.store[user] = [m for m in self.store[user] if m.uid not in uids]


class MailboxBase(Base):
    greeting = False
    # A short failed-login delay keeps the suite fast (the default is 1 s).
    args = ("--auth-fail-delay", "100")

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="pop3d-mbx-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.backend = MemoryBackend(self.tmp)
        self.errors = []
        self.ctlc = pop3d.Client(self.d.sock, name="mailbox", timeout=WAIT)
        self.server = MailboxServer(self.backend, self.ctlc, greeting=self.greeting,
                                    hostname="test.example")
        self.server.register()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.addCleanup(self._stop)

    def _serve(self):
        try:
            for ev in self.ctlc.events():
                self.server.handle(ev)
        except Exception as e:           # reported by _stop
            if not self.ctlc.closed:
                self.errors.append(e)

    def _stop(self):
        self.ctlc.close()
        self.thread.join(WAIT)
        self.assertFalse(self.thread.is_alive())
        self.assertEqual(self.errors, [])

    def login(self, user="alice"):
        p = self.pop()
        self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
        r = p.cmd("PASS " + PASSWORDS[user].decode("latin-1"))
        self.assertTrue(r.startswith("+OK"), r)
        return p

    def poplib_login(self, user="alice"):
        m = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(m.close)
        m.user(user)
        m.pass_(PASSWORDS[user].decode("latin-1"))
        return m


class MailboxHelper(MailboxBase):
    def size(self, user, i):
        return len(mailbox.normalize(MESSAGES[user][i][1]))

    def test_capa_per_state(self):
        p = self.pop()
        self.assertEqual(p.cmd("CAPA"), "+OK capability list follows")
        caps = p.multiline()
        self.assertEqual(caps, ["TOP", "UIDL", "USER", "SASL PLAIN",
            "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "EXPIRE NEVER",
            "IMPLEMENTATION pop3d"])
        self.assertNotIn("STLS", caps)
        p.cmd("USER alice")
        p.cmd("PASS wonderland")
        p.cmd("CAPA")
        self.assertEqual(p.multiline(), ["TOP", "UIDL", "RESP-CODES", "PIPELINING",
                                         "EXPIRE NEVER", "IMPLEMENTATION pop3d"])

    def test_stat_list_uidl(self):
        p = self.login()
        sizes = [self.size("alice", i) for i in range(3)]
        self.assertEqual(p.cmd("STAT"), "+OK 3 %d" % sum(sizes))
        self.assertEqual(p.cmd("LIST"), "+OK 3 messages (%d octets)" % sum(sizes))
        self.assertEqual(p.multiline(), ["%d %d" % (i + 1, s) for i, s in enumerate(sizes)])
        self.assertEqual(p.cmd("LIST 2"), "+OK 2 %d" % sizes[1])
        self.assertEqual(p.cmd("UIDL"), "+OK 3 messages (%d octets)" % sum(sizes))
        self.assertEqual(p.multiline(), ["1 uid-a1", "2 uid-a2", "3 uid-a3"])
        self.assertEqual(p.cmd("UIDL 3"), "+OK 3 uid-a3")
        for bad in ("LIST 0", "LIST 4", "LIST x", "UIDL 9", "RETR 4", "TOP 1", "TOP 1 x",
                    "DELE", "LIST 1 2"):
            self.assertTrue(p.cmd(bad).startswith("-ERR"), bad)
        self.assertEqual(p.cmd("NOOP"), "+OK")

    def test_retr_and_top_sizes_match(self):
        m = self.poplib_login()
        for i, (uid, data) in enumerate(MESSAGES["alice"]):
            resp, lines, octets = m.retr(i + 1)
            got = b"".join(x + b"\r\n" for x in lines)
            self.assertEqual(got, mailbox.normalize(data))
            self.assertEqual(resp, b"+OK %d octets" % len(got))
            self.assertEqual(int(m.list(i + 1).split()[2]), len(got))
        resp, lines, _ = m.top(1, 0)
        self.assertEqual(lines, [b"Subject: one", b"From: a@example.org", b""])
        resp, lines, _ = m.top(2, 2)
        self.assertEqual(lines, [b"Subject: two", b"", b"body line 1", b"body line 2"])
        m.quit()

    def test_dele_rset_quit(self):
        p = self.login()
        self.assertEqual(p.cmd("DELE 2"), "+OK message 2 deleted")
        self.assertTrue(p.cmd("DELE 2").startswith("-ERR"))
        self.assertTrue(p.cmd("RETR 2").startswith("-ERR"))
        self.assertTrue(p.cmd("LIST 2").startswith("-ERR"))
        s1, s3 = self.size("alice", 0), self.size("alice", 2)
        self.assertEqual(p.cmd("STAT"), "+OK 2 %d" % (s1 + s3))
        self.assertEqual(p.cmd("LIST"), "+OK 2 messages (%d octets)" % (s1 + s3))
        self.assertEqual(p.multiline(), ["1 %d" % s1, "3 %d" % s3])   # numbers kept
        self.assertTrue(p.cmd("RSET").startswith("+OK maildrop has 3 messages"))
        self.assertEqual(p.cmd("STAT").split()[1], "3")
        p.cmd("DELE 1")
        p.cmd("DELE 3")
        self.assertEqual(self.backend.deleted, [])
        self.assertEqual(p.cmd("QUIT"), "+OK POP3 server signing off (1 messages left)")
        self.assertTrue(p.closed())
        self.assertEqual(self.backend.deleted, [("alice", "uid-a1"), ("alice", "uid-a3")])
        # The lock is free again and only message 2 is left.
        p2 = self.login()
        self.assertEqual(p2.cmd("UIDL"), "+OK 1 messages (%d octets)"
                         % self.size("alice", 1))
        self.assertEqual(p2.multiline(), ["1 uid-a2"])

    def test_dropped_connection_applies_nothing(self):
        p = self.login()
        p.cmd("DELE 1")
        p.close()
        # Once the drop is handled the lock is free; nothing was deleted.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and self.server.sessions:
            time.sleep(0.02)
        p2 = self.login()
        self.assertEqual(p2.cmd("STAT").split()[1], "3")
        self.assertEqual(self.backend.deleted, [])
        self.assertEqual(p2.cmd("QUIT"), "+OK POP3 server signing off (3 messages left)")

    def test_quit_in_authorization(self):
        p = self.pop()
        p.cmd("USER alice")
        self.assertEqual(p.cmd("QUIT"), "+OK POP3 server signing off")
        self.assertTrue(p.closed())
        self.assertEqual(self.backend.deleted, [])

    def test_in_use(self):
        p = self.login()
        q = self.pop()
        q.cmd("USER alice")
        self.assertEqual(q.cmd("PASS wonderland"),
                         "-ERR [IN-USE] maildrop already locked by another session")
        # bob is not locked by alice's session
        self.login("bob")
        p.cmd("QUIT")
        self.assertTrue(p.closed())
        q.cmd("USER alice")
        self.assertTrue(q.cmd("PASS wonderland").startswith("+OK"))

    def test_wrong_state(self):
        p = self.pop()
        for cmd in ("STAT", "LIST", "UIDL", "RETR 1", "TOP 1 0", "DELE 1", "RSET", "NOOP"):
            self.assertEqual(p.cmd(cmd), "-ERR command not valid in AUTHORIZATION state",
                             cmd)
        self.assertEqual(p.cmd("PASS x"), "-ERR send USER first")
        # pop3d counts -ERR answers to PASS/APOP/AUTH as failed logins (even
        # in TRANSACTION) and closes after three: a fresh connection.
        p = self.login()
        for cmd in ("USER alice", "PASS x", "APOP alice 0123"):
            self.assertEqual(p.cmd(cmd), "-ERR command not valid in TRANSACTION state", cmd)
        self.assertEqual(p.cmd("UTF8"), "-ERR command not supported")
        q = self.login("bob")
        self.assertEqual(q.cmd("AUTH PLAIN"), "-ERR command not valid in TRANSACTION state")

    @staticmethod
    def unblock(fifo):
        """A reader stuck opening the FIFO (old code) gets EOF."""
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    def test_send_file_refused_by_pop3d_answers_err(self):
        # pop3d refuses a file (a symlink, a FIFO, outside --send-file-root,
        # whatever its error code): that command gets -ERR, the session
        # and the service go on.
        real = self.ctlc.send_file
        codes = iter(["invalid_argument", "permission_denied", "not_regular_file",
                      "io_error"])

        def refusing(client, path, status, **kw):
            if path.endswith("alice-uid-a2"):
                raise pop3d.Pop3dError(next(codes), "refused %s" % path)
            return real(client, path, status, **kw)
        self.ctlc.send_file = refusing
        p = self.login()
        for cmd in ("RETR 2", "TOP 2 0", "RETR 2", "TOP 2 1"):
            self.assertEqual(p.cmd(cmd), "-ERR [SYS/TEMP] message 2 is not available now",
                             cmd)
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
        self.assertEqual(p.multiline(), ["Subject: one", "From: a@example.org", "", "Hello",
                                         ".", "..", ".x"])
        q = self.login("bob")
        self.assertEqual(q.cmd("STAT").split()[1], "1")
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))

    def test_send_file_refused_by_the_real_core(self):
        # A backend that hands pop3d a FIFO and a symlink (what a Maildir
        # owner could swap in after the controller's check): pop3d refuses
        # both without blocking, the client gets -ERR, the session goes on.
        fifo = os.path.join(self.tmp, "fifo")
        os.mkfifo(fifo)
        self.addCleanup(self.unblock, fifo)
        link = os.path.join(self.tmp, "link")
        os.symlink(self.backend.store["bob"][0].path, link)
        swapped = {"uid-a1": fifo, "uid-a2": link}
        self.backend.message_path = lambda user, m: swapped.get(m.uid, m.path)
        p = self.login()
        for cmd in ("RETR 1", "TOP 1 0", "RETR 2", "TOP 2 0"):
            self.assertTrue(p.cmd(cmd).startswith("-ERR [SYS/TEMP]"), cmd)
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertTrue(p.cmd("RETR 3").startswith("+OK"))
        self.assertEqual(p.multiline()[0], "Subject: three")
        q = self.login("bob")
        self.assertEqual(q.cmd("STAT").split()[1], "1")

    def test_message_file_symlink_or_fifo_is_not_listed(self):
        # The default Backend.open_message: no symlink, no FIFO, no blocking.
        a1, a3 = self.backend.store["alice"][0].path, self.backend.store["alice"][2].path
        os.unlink(a1)
        os.symlink(self.backend.store["bob"][0].path, a1)
        os.unlink(a3)
        os.mkfifo(a3)
        self.addCleanup(self.unblock, a3)
        p = self.login()
        self.assertEqual(p.cmd("UIDL"), "+OK 1 messages (%d octets)" % self.size("alice", 1))
        self.assertEqual(p.multiline(), ["1 uid-a2"])

    def test_unknown_user_looks_like_wrong_password(self):
        p = self.pop()
        self.assertEqual(p.cmd("USER nobody-here"), "+OK send PASS")
        unknown = p.cmd("PASS wonderland")
        p.cmd("USER alice")
        wrong = p.cmd("PASS wrong")
        self.assertEqual(unknown, wrong)
        self.assertEqual(wrong, "-ERR [AUTH] invalid user name or password")
        # The backend was asked both times (same-cost check for unknown users).
        self.assertEqual(self.backend.calls, [("auth", "nobody-here"), ("auth", "alice")])

    def test_password_is_exact_bytes(self):
        p = self.pop()
        p.cmd("USER carol")
        # Client.cmd sends UTF-8 (c p\xc3\xa4ss): not the password's bytes.
        self.assertTrue(p.cmd("PASS c p\xe4ss").startswith("-ERR [AUTH]"))
        p.send(b"USER carol\r\nPASS c p\xe4ss\r\n")
        self.assertEqual(p.line(), "+OK send PASS")
        self.assertEqual(p.line(), "+OK maildrop has 0 messages (0 octets)")
        self.assertEqual(p.cmd("LIST"), "+OK 0 messages (0 octets)")
        self.assertEqual(p.multiline(), [])

    def test_auth_plain_initial_response(self):
        p = self.pop()
        tok = base64.b64encode(b"\0alice\0wonderland").decode()
        self.assertEqual(p.cmd("AUTH PLAIN " + tok), "+OK maildrop has 3 messages (%d octets)"
                         % sum(self.size("alice", i) for i in range(3)))
        # pop3d closes a connection after --max-auth-failures (default 3)
        # failed PASS/APOP/AUTH answers: at most two failures per connection.
        q = self.pop()
        self.assertEqual(q.cmd("AUTH PLAIN " + base64.b64encode(b"\0bob\0nope").decode()),
                         "-ERR [AUTH] invalid user name or password")
        self.assertEqual(q.cmd("AUTH PLAIN !!!"), "-ERR invalid base64 data")
        q = self.pop()
        self.assertEqual(q.cmd("AUTH PLAIN " + base64.b64encode(b"eve\0bob\0builder")
                               .decode()), "-ERR [AUTH] invalid user name or password")
        self.assertEqual(q.cmd("AUTH CRAM-MD5"), "-ERR unsupported authentication mechanism")
        q = self.pop()
        self.assertEqual(q.cmd("AUTH"), "+OK SASL mechanisms follow")
        self.assertEqual(q.multiline(), ["PLAIN"])
        self.assertTrue(q.cmd("AUTH PLAIN " + base64.b64encode(b"bob\0bob\0builder")
                              .decode()).startswith("+OK"))

    def test_auth_plain_continuation(self):
        p = self.pop()
        self.assertEqual(p.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(p.cmd("*"), "-ERR authentication cancelled")
        self.assertEqual(p.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(p.cmd("not base64!"), "-ERR invalid base64 data")
        self.assertEqual(p.cmd("AUTH plain"), "+ ")
        r = p.cmd(base64.b64encode(b"\0alice\0wonderland").decode())
        self.assertTrue(r.startswith("+OK maildrop has 3 messages"), r)
        self.assertEqual(p.cmd("STAT").split()[1], "3")

    def test_pipelined_session(self):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=WAIT)
        self.addCleanup(s.close)
        s.sendall(b"USER alice\r\nPASS wonderland\r\nSTAT\r\nLIST 1\r\nDELE 1\r\n"
                  b"LIST 1\r\nRSET\r\nUIDL 1\r\nTOP 1 0\r\nQUIT\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        lines = data.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"+OK POP3"))
        self.assertEqual(lines[1:5], [b"+OK send PASS", lines[2], lines[3], b"+OK 1 %d"
                                      % self.size("alice", 0)])
        self.assertTrue(lines[2].startswith(b"+OK maildrop has 3"))
        self.assertEqual(lines[5], b"+OK message 1 deleted")
        self.assertEqual(lines[6], b"-ERR message 1 already deleted")
        self.assertTrue(lines[7].startswith(b"+OK maildrop has 3"))
        self.assertEqual(lines[8], b"+OK 1 uid-a1")
        self.assertEqual(lines[9:14], [b"+OK top of message follows", b"Subject: one",
                                       b"From: a@example.org", b"", b"."])
        self.assertTrue(lines[14].startswith(b"+OK POP3 server signing off (3"))
        self.assertEqual(self.backend.deleted, [])


class MailboxApop(MailboxBase):
    args = ("--no-greeting", "--auth-fail-delay", "100")
    greeting = True

    def test_apop(self):
        m = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(m.close)
        welcome = m.getwelcome()
        self.assertRegex(welcome, rb"^\+OK POP3 server ready <\d+\.\d+\.\d+@test\.example>$")
        self.assertTrue(m.apop("bob", "builder").startswith(b"+OK maildrop has 1"))
        self.assertEqual(m.stat()[0], 1)
        m.quit()
        p = self.pop()
        ts = p.greeting[p.greeting.index("<"):]
        bad = hashlib.md5((ts + "wrong").encode()).hexdigest()
        self.assertEqual(p.cmd("APOP bob " + bad), "-ERR [AUTH] invalid user name or password")
        unknown = hashlib.md5((ts + "x").encode()).hexdigest()
        self.assertEqual(p.cmd("APOP zed " + unknown),
                         "-ERR [AUTH] invalid user name or password")
        good = hashlib.md5((ts + "builder").encode()).hexdigest()
        self.assertTrue(p.cmd("APOP bob " + good.upper()).startswith("+OK"))
        q = self.pop()
        self.assertEqual(q.cmd("APOP bob"), "-ERR usage: APOP name digest")



class MailboxNoApop(MailboxBase):
    """The core's greeting carries no timestamp: APOP is not offered."""
    args = ("--auth-fail-delay", "100")
    greeting = False

    def test_apop_not_offered_without_timestamp(self):
        p = self.pop()
        self.assertNotIn("<", p.greeting)
        self.assertEqual(p.cmd("APOP bob 0123456789abcdef0123456789abcdef"),
                         "-ERR APOP not available")


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1 (openssl CLI); None if absent."""
    if shutil.which("openssl") is None:
        return None
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"],
                       capture_output=True, timeout=60)
    return (cert, key) if r.returncode == 0 else None


class MailboxTls(MailboxBase):
    """With a certificate the core does STLS; the helper then offers it."""

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="pop3d-cert-")
        cls.pair = make_cert(cls.certdir)
        if cls.pair:
            cls.args = ("--auth-fail-delay", "100", "--tls-cert", cls.pair[0],
                        "--tls-key", cls.pair[1])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, True)

    def setUp(self):
        if not self.pair:
            self.skipTest("openssl (Debian package openssl) cannot make a certificate")
        super().setUp()

    def test_capa_offers_stls_until_tls(self):
        self.assertTrue(self.server.stls)
        m = poplib.POP3("127.0.0.1", self.d.port, timeout=WAIT)
        self.addCleanup(m.close)
        self.assertIn("STLS", m.capa())
        import ssl
        ctx = ssl.create_default_context(cafile=self.pair[0])
        ctx.check_hostname = False
        m.stls(ctx)
        self.assertNotIn("STLS", m.capa())
        m.user("alice")
        m.pass_("wonderland")
        self.assertNotIn("STLS", m.capa())
        resp, lines, _ = m.retr(1)
        self.assertEqual(b"".join(x + b"\r\n" for x in lines),
                         mailbox.normalize(MESSAGES["alice"][0][1]))
        m.quit()


# --------------------------------------------------------------------------
class Packaging(unittest.TestCase):
    def test_pip_install_offline(self):
        """pip installs ./clients/python offline into a venv (Debian 12:
        python3-venv, python3-setuptools, python3-wheel)."""
        py = "/usr/bin/python3"
        if not os.path.exists(py):
            self.skipTest("no /usr/bin/python3")
        probe = subprocess.run([py, "-c", "import venv, setuptools, wheel, ensurepip"],
                               capture_output=True)
        if probe.returncode != 0:
            self.skipTest("needs Debian packages python3-venv python3-setuptools "
                          "python3-wheel")
        src = os.path.join(HERE, "..", "..", "clients", "python")
        with tempfile.TemporaryDirectory() as t:
            work = os.path.join(t, "src")
            shutil.copytree(src, work, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", "build"))
            venv = os.path.join(t, "venv")
            subprocess.run([py, "-m", "venv", "--system-site-packages", venv], check=True,
                           capture_output=True, timeout=120)
            r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--no-index",
                                "--no-build-isolation", work], capture_output=True,
                               timeout=120, cwd=t, env=dict(os.environ,
                                                            PIP_NO_INDEX="1"))
            self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
            r = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                                "import pop3d, pop3d.mailbox, pop3d.maildir; "
                                "print(pop3d.__file__)"], capture_output=True, cwd=t,
                               env={"PATH": "/usr/bin:/bin"})
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.decode().startswith(venv))
            self.assertTrue(os.path.exists(os.path.join(venv, "bin", "pop3d-maildir")))


if __name__ == "__main__":
    main()
