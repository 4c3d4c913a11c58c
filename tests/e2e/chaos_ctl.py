#!/usr/bin/env python3
"""A misbehaving pop3d controller for tests/e2e/test_chaos.py, and the
answers every answering controller of that test gives.

    chaos_ctl.py SOCKET SEED CONTROL_MAX_OUTPUT [more|more+auth]

Seeded (random.Random(SEED)) choices: answer commands (promptly, slowly,
never, with "lines", with "more", or "more" then "lines"), act as a plugin
with random events, verdicts, timeouts and on_timeout, plugin_del during a
hook, stop reading for a while, send garbage, register and unregister, fill
its output cap (up to the edge, then let hooks time out), half-close, or
exit in the middle of a command or hook.  It is also killed, stopped and
continued from outside.  Every answer it gives is answer_for(), so a POP3
client can predict it whoever answers.
"""
import json
import os
import random
import select
import socket
import sys
import time
import zlib

VERBS = ["user", "pass", "stat", "list", "retr", "dele", "noop", "rset", "top", "uidl",
         "quit", "capa", "auth", "utf8", "lang"]
MULTI_NOARG = ("list", "uidl", "capa")
MULTI_ARG = ("retr", "top")


def body_for(verb, arg):
    """The data lines of a multi-line answer, a function of verb and arg.
    Lines 0 and 1 never start with '.'; later ones often do."""
    key = "%s %s" % (verb, arg)
    rng = random.Random(zlib.crc32(key.encode()))
    big = arg is not None and arg.startswith("big")
    n = rng.randint(3000, 6000) if big else rng.randint(0, 12)
    out = ["hdr: %s" % key, "x-line"]
    specials = [".", "..", ".leading dot", "", " ", "...", ".\t", "-ERR not an answer",
                "+OK not an answer", "x" * rng.randint(100, 900)]
    for i in range(n):
        if rng.random() < 0.3:
            out.append(rng.choice(specials))
        else:
            out.append("%s line %d %s" % (key, i, "y" * rng.randint(0, 60)))
    return out


def answer_for(verb, arg):
    """("text", line) or ("lines", [status] + body): the one answer every
    answering controller gives to a command (or auth_data, verb "auth_data")."""
    if verb == "auth_data":
        if arg == "*":
            return "text", "-ERR [AUTH] cancelled"
        if arg is not None and arg.startswith("more"):
            return "text", "+ bW9yZQ=="
        if arg is not None and arg.startswith("good"):
            return "text", "+OK auth %s" % arg
        return "text", "-ERR [AUTH] auth failed"
    if verb == "auth":
        if arg is not None and arg.startswith("NOMECH"):
            return "text", "-ERR [AUTH] auth %s" % arg
        return "text", "+ Y2hhb3M="
    if verb == "pass":
        if arg is not None and arg.startswith("good"):
            return "text", "+OK pass %s" % arg
        return "text", "-ERR [AUTH] pass %s" % arg
    if verb in MULTI_NOARG and arg is None:
        return "lines", ["+OK %s" % verb] + body_for(verb, arg)
    if verb in MULTI_ARG and arg is not None:
        if arg.startswith("bad"):
            return "text", "-ERR %s %s" % (verb, arg)
        return "lines", ["+OK %s %s" % (verb, arg)] + body_for(verb, arg)
    return "text", ("+OK %s %s" % (verb, arg)) if arg is not None else "+OK %s" % verb


def stuff(line):
    return "." + line if line.startswith(".") else line


class Chaos:
    def __init__(self, path, seed):
        self.rng = random.Random(seed)
        self.seed = seed
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.ids = 0
        self.alias = None
        self.plugin_events = []
        self.pending = []   # (due time, function)
        self.held_hooks = []
        self.wr_closed = False
        # One controller of a round answers TOP (in parts) and, unless the
        # test's own answerer does, AUTH: see answer().
        self.more_owner = len(sys.argv) > 4 and sys.argv[4].startswith("more")
        self.auth_owner = len(sys.argv) > 4 and sys.argv[4] == "more+auth"
        r = self.rng
        # Roles.
        self.answerer = r.random() < 0.6
        self.plugin = r.random() < 0.6
        self.cap_edge = r.random() < 0.15 and not self.more_owner
        if os.environ.get("CHAOS_FORCE") == "cap_edge":
            self.cap_edge, self.answerer = True, False
        if self.more_owner:
            self.answerer = True
        # A member of controller group "chaos" (pop3d-control(7)): it sees
        # only the clients bound to it, and its departure closes them.  Not
        # the TOP/AUTH owner, whose answers must reach every client.  Drawn
        # from its own generator, so the other roles of a seed stay as
        # they were before groups.
        self.member = not self.more_owner and random.Random(seed * 7919 + 1).random() < 0.4
        # Per-event tendencies.
        self.p_slow = r.choice([0.0, 0.05, 0.3])
        self.p_silent = r.choice([0.0, 0.02, 0.1])
        self.p_exit_cmd = r.choice([0.0, 0.0, 0.01, 0.05])
        self.mode_weights = [r.random() for _ in range(3)]  # lines, more, more+lines

    # -- output -------------------------------------------------------------
    def send(self, cmd, **kw):
        if self.wr_closed:
            return
        self.ids += 1
        kw.update(cmd=cmd, id=self.ids)
        self.raw((json.dumps(kw) + "\n").encode())

    def raw(self, data):
        try:
            self.s.sendall(data)
        except OSError:
            sys.exit(0)

    def later(self, delay, fn):
        self.pending.append((time.monotonic() + delay, fn))

    # -- set-up -------------------------------------------------------------
    def setup(self):
        r = self.rng
        hello = {"name": "chaos-%d" % (self.seed % 100000), "lossy": r.random() < 0.2}
        if self.member:
            hello["group"] = "chaos"
        self.send("hello", **hello)
        if self.answerer:
            self.send("register", events=["cmd_*", "auth_data"])
        if self.plugin or self.cap_edge:
            self.add_plugin()

    def add_plugin(self):
        r = self.rng
        self.alias = "chaos%d-%d" % (self.seed % 100000, r.randint(0, 1 << 30))
        self.send("plugin_add", alias=self.alias, priority=r.randint(-50, 50))
        if self.cap_edge:
            pop3d = ["cmd_*", "auth_data"]
            pop3c = ["response"]
            tmo, tmc = r.randint(20, 200), r.randint(20, 200)
        else:
            pop3d = r.sample(["cmd_*", "cmd_noop", "cmd_pass", "cmd_user", "cmd_retr", "cmd_quit",
                              "cmd_auth", "auth_data", "connection", "disconnected", "cmd_list"],
                             r.randint(0, 4))
            pop3c = ["response"] if r.random() < 0.4 else []
            tmo, tmc = r.randint(50, 2500), r.randint(50, 1000)
        self.plugin_events = pop3d
        kw = {}
        if "connection" in pop3d:
            choices = ["none", "tempfail", None]
        else:
            choices = ["none", "plugin", "client", "all", "tempfail", None]
        ot = r.choice(choices)
        if ot is not None:
            kw["on_timeout"] = ot
        self.send("plugin_register", alias=self.alias, events=pop3d, timeout_ms=tmo, **kw)
        kw = {}
        ot = r.choice(["none", "plugin", "tempfail", None])
        if ot is not None:
            kw["on_timeout"] = ot
        self.send("plugin_register", alias=self.alias, type="POP3C", events=pop3c,
                  timeout_ms=tmc, **kw)

    # -- answers ------------------------------------------------------------
    def answer(self, client, tag, verb, arg, atomic=False):
        kind, what = answer_for(verb, arg)
        if kind == "text":
            self.send("send_to_client", client=client, tag=tag, text=what)
            return
        # Only the one controller of a round started with "more" answers
        # TOP, and only TOP is answered in several parts: two controllers
        # writing parts of one open response would mix them legitimately.
        mode = self.rng.choices(["lines", "more", "more+lines", "more+lines"],
                                self.mode_weights + [self.mode_weights[2]])[0]
        if self.rng.random() < 0.5 and mode == "more+lines":
            mode = "more+lines-more"
        if atomic or not self.more_owner or verb != "top" or mode == "lines" or len(what) < 3:
            self.send("send_to_client", client=client, tag=tag, lines=what)
        elif mode == "more":
            # "text" with "more": written verbatim, so stuffed here.
            self.send("send_to_client", client=client, tag=tag, text=what[0], more=True)
            for x in what[1:]:
                self.send("send_to_client", client=client, tag=tag, text=stuff(x), more=True)
            self.send("send_to_client", client=client, tag=tag, text=".")
        elif mode == "more+lines":
            # Status and first data line with "more", the rest with "lines"
            # and no "more": data lines in an open response, dot-stuffed by
            # pop3d, then the terminator.
            self.send("send_to_client", client=client, tag=tag,
                      lines=[what[0], stuff(what[1])], more=True)
            self.send("send_to_client", client=client, tag=tag, lines=what[2:])
        else:
            # Status with "more", then "lines" with "more" (data lines of an
            # open response, dot-stuffed by pop3d), then the terminator.
            self.send("send_to_client", client=client, tag=tag, text=what[0], more=True)
            body = what[1:]
            step = self.rng.randint(1, 8)
            for i in range(0, len(body), step):
                self.send("send_to_client", client=client, tag=tag, lines=body[i:i + step],
                          more=True)
            self.send("send_to_client", client=client, tag=tag, text=".")

    def on_command(self, ev):
        r = self.rng
        verb = ev["event"][len("pop3d_cmd_"):] if ev["event"] != "pop3d_auth_data" else "auth_data"
        arg = ev["args"][1] if len(ev["args"]) > 1 else None
        if verb in ("top", "auth", "auth_data") and not self.more_owner:
            return
        if verb in ("auth", "auth_data") and not self.auth_owner:
            return
        if r.random() < self.p_exit_cmd:
            os._exit(0)          # mid-command
        if r.random() < self.p_silent:
            return
        if r.random() < self.p_slow:
            self.later(r.uniform(0.05, 4.0),
                       lambda: self.answer(ev["client"], ev["tag"], verb, arg))
        else:
            self.answer(ev["client"], ev["tag"], verb, arg)

    def on_hook(self, h):
        r = self.rng
        if self.cap_edge:
            return               # never answered: they time out
        if r.random() < self.p_exit_cmd:
            os._exit(0)          # mid-hook
        ev = h["event"]
        if ev == "pop3d_connection" or h["plugin_type"] == "POP3C":
            verdicts = ["none"] * 8 + ["tempfail"]
            if h["plugin_type"] == "POP3C":
                verdicts += ["plugin"] * 2
        elif ev == "pop3d_disconnected":
            verdicts = ["none", "plugin", "client", "all", "tempfail"]
        else:
            verdicts = ["none"] * 10 + ["plugin"] * 2 + ["tempfail", "all-silent"]
            if ev not in ("pop3d_cmd_auth", "pop3d_auth_data"):
                # A continuation does not complete AUTH: two plugins
                # answering it would both be written.
                verdicts += ["client", "all"]
        v = r.choice(verdicts)
        act = r.random()
        if act < 0.05:
            return               # time out
        if act < 0.12 and self.alias:
            self.send("plugin_del", alias=self.alias)   # during its dispatch
            self.alias = None
        delay = r.choice([0, 0, 0, r.uniform(0.01, 1.5)])

        def give():
            silent = v == "all-silent"
            self.send("verdict", hook=h["hook"], eat="all" if silent else v)
            if v in ("client", "all") and "tag" in h:
                verb = ev[len("pop3d_cmd_"):] if ev != "pop3d_auth_data" else "auth_data"
                arg = h["args"][1] if len(h["args"]) > 1 else None
                self.answer(h["client"], h["tag"], verb, arg, atomic=True)
        if delay:
            self.later(delay, give)
        else:
            give()

    # -- misbehaviour -------------------------------------------------------
    def tick(self):
        r = self.rng
        x = r.random()
        if x < 0.02:
            time.sleep(r.uniform(0.2, 3.0))                   # stop reading
        elif x < 0.03:
            self.garbage()
        elif x < 0.045:
            ev = r.sample(["cmd_noop", "cmd_*", "auth_data", "all", "cmd_retr", "disconnected",
                           "cmd_quit", "x_chaos"], 2)
            self.send(r.choice(["register", "unregister"]), events=ev)
        elif x < 0.05 and self.plugin:
            if self.alias:
                self.send("plugin_del", alias=self.alias)
                self.alias = None
            else:
                self.add_plugin()
        elif x < 0.053:
            self.flood(r.randint(2000, 30000))                 # fill the output cap
        elif x < 0.055:
            self.send("send_event", event="x_chaos", args=[r.randint(0, 50), "chaos"])
        elif x < 0.056:
            os._exit(0)
        elif x < 0.057:
            try:
                self.s.shutdown(socket.SHUT_WR)                # half-close
            except OSError:
                pass
            self.wr_closed = True

    def garbage(self):
        r = self.rng
        g = r.choice([b"{not json\n", b"[1,2,3]\n", b'{"cmd":"nope","id":1}\n',
                      b'{"cmd":"send_to_client","client":-1,"text":"x"}\n',
                      b'{"cmd":"verdict","hook":999999999,"eat":"none"}\n',
                      b'{"cmd":"send_to_client","client":1,"tag":1,"text":"a\\r\\nb"}\n',
                      b"\xff\xfe\x00garbage\n", b"\n\n\n",
                      b'{"cmd":"ping","id":1,"id":2}\n',
                      b"x" * (1 << 20) + b"y" * r.randint(1, 70000) + b"\n"])
        self.raw(g)

    def flood(self, n):
        data = b"".join(b'{"cmd":"ping","id":%d}\n' % i for i in range(n))
        self.raw(data)

    def edge(self):
        """Fill the output backlog to just under --control-max-output (given
        as argv[3]) without reading, then read nothing: the next hook or
        hook-timeout write pushes it over the cap.  Replies of a fixed size
        (string ids of one width) make the backlog computable: what was
        generated minus what the kernel holds for this socket."""
        cap = int(sys.argv[3]) if len(sys.argv) > 3 else 65536
        import fcntl
        import termios
        self.s.setblocking(True)
        # Learn the reply size; skip anything queued before it.
        self.raw(b'{"cmd":"session_id","id":"e0000000"}\n')
        size = None
        while size is None:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                return
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if b'"id":"e0000000"' in line:
                    size = len(line) + 1
        n = [0]

        def batch(k):
            out = []
            for _ in range(k):
                n[0] += 1
                out.append(b'{"cmd":"session_id","id":"e%07d"}\n' % n[0])
            self.raw(b"".join(out))

        def inq():
            return int.from_bytes(fcntl.ioctl(self.s, termios.FIONREAD, b"\0\0\0\0"),
                                  sys.byteorder)
        last, same = -1, 0
        for _ in range(2000):
            batch(20)
            time.sleep(0.01)
            x = inq()
            if x == last:
                same += 1
                if same >= 3:
                    break
            else:
                same = 0
            last = x
        time.sleep(0.05)
        queued = n[0] * size - (inq() - len(self.buf))
        slack = self.rng.randint(1, 700)
        batch(max(0, (cap - queued - slack) // size))
        time.sleep(60)

    # -- main loop ----------------------------------------------------------
    def run(self):
        self.setup()
        if self.cap_edge:
            time.sleep(self.rng.uniform(0, 1.0))
            self.edge()
            return
        while True:
            now = time.monotonic()
            due = [p for p in self.pending if p[0] <= now]
            self.pending = [p for p in self.pending if p[0] > now]
            for _, fn in due:
                fn()
            self.tick()
            try:
                rd = select.select([self.s], [], [], 0.02)[0]
            except OSError:
                return
            if not rd:
                continue
            try:
                chunk = self.s.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                try:
                    m = json.loads(line)
                except ValueError:
                    continue
                t = m.get("type")
                if t == "event" and "tag" in m and "client" in m and \
                        (m["event"].startswith("pop3d_cmd_") or m["event"] == "pop3d_auth_data"):
                    self.on_command(m)
                elif t == "hook":
                    self.on_hook(m)


if __name__ == "__main__":
    Chaos(sys.argv[1], int(sys.argv[2])).run()
