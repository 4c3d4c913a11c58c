#!/usr/bin/env python3
"""make_corpus.py - write the seed corpora of the fuzz targets.

The seeds are checked in under tests/fuzz/corpus/<target>/; this script is
how they were made (run it from anywhere; it rewrites the seed files it
names and leaves other files alone).  The input layouts are described at
the top of each tests/fuzz/fuzz_*.c and in README.md.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# fuzz_line: byte 0 = limit - 1 (0xFF: 8192), 4 chunk-size bytes, stream.
def line(maxsel, tape, stream):
    assert len(tape) == 4
    return bytes([maxsel]) + bytes(tape) + stream


put("fuzz_line", "session", line(0xFE, [0x0F, 0x03, 0x40, 0xEF],
    b"USER bob\r\nPASS secret\r\nSTAT\r\nLIST 1\r\nRETR 1\r\nTOP 1 10\r\n"
    b"UIDL\r\nDELE 1\r\nRSET\r\nNOOP\r\nQUIT\r\n"))
put("fuzz_line", "small-limit", line(0x0F, [0, 0, 0, 0],
    b"  NoOp   \t arg with  spaces \t \r\nAAAAAAAAAAAAAAAAAAAAAAAAAQUIT\r\n"
    b"TOP 1 10\nabcdefghijklmno\r\n"))
put("fuzz_line", "nul-empty-longverb", line(0xFE, [0x02, 0x07, 0x00, 0x30],
    b"US\0ER x\r\n\r\n \r\n\t\r\nVERYLONGVERBNAMEXYZ a\r\nAPOP bob "
    b"c4c9334bac560ecc979e58001b3e22fb\r\n"))
put("fuzz_line", "cr-sasl", line(0xFE, [0x01, 0x01, 0x05, 0x00],
    b"a\rb\r\r\nCAPA\nAUTH PLAIN\r\nAGJvYgBzZWNyZXQ=\r\n*\r\nSTLS\r\nUTF8\r\nLANG fr\r\n"))
put("fuzz_line", "over-long", line(0xFE, [0xFF, 0xF0, 0x10, 0x80],
    b"A" * 300 + b"\r\nNOOP\r\n" + b"B" * 254 + b"\r\n" + b"C" * 253 + b"\r\nQUIT"))


# fuzz_stuff: byte 0 = TOP (0x80: none), 4 chunk-size bytes, message.
def stuff(top, tape, msg):
    assert len(tape) == 4
    return bytes([top]) + bytes(tape) + msg


put("fuzz_stuff", "dots", stuff(0x80, [0x10, 0x03, 0x00, 0xFF],
    b"From: a@example.org\r\nSubject: b\r\n\r\nbody\r\n.\r\n..two\r\n.x\r\n"))
put("fuzz_stuff", "top2-bare-lf", stuff(2, [0x00, 0x01, 0x02, 0x03],
    b"H: 1\n\nl1\nl2\nl3\n.\n"))
put("fuzz_stuff", "top0", stuff(0, [0x04, 0x04, 0x04, 0x04], b"H: 1\r\n\r\nbody\r\n"))
put("fuzz_stuff", "bare-cr-no-end", stuff(0x80, [0x00, 0x00, 0x01, 0x00],
    b"H\rX\r\r\n\r.line\rno end"))
put("fuzz_stuff", "empty", stuff(0x80, [0, 0, 0, 0], b""))
put("fuzz_stuff", "top1-no-final", stuff(1, [0xF1, 0, 0, 0],
    b"\r\n.\r\nno final newline"))
put("fuzz_stuff", "no-header-end", stuff(3, [0x07, 0x0B, 0x01, 0x02],
    b"Subject: x\r\nFrom: y\r\n.dot header\r\n"))

# fuzz_control: lines of JSON (and not).
put("fuzz_control", "hello-register",
    b'{"cmd":"hello","id":1,"name":"fuzz","lossy":false}\n'
    b'{"cmd":"register","id":2,"events":["cmd_user","all"]}\n'
    b'{"cmd":"unregister","id":3,"events":["cmd_*"]}\n')
put("fuzz_control", "send-to-client",
    b'{"cmd":"send_to_client","id":"x","client":1,"tag":3,"text_b64":"K09LIGhp"}\n'
    b'{"cmd":"send_to_client","client":1,"lines":["+OK","a",".b"],"more":true}\r\n'
    b'{"cmd":"send_to_client","client":1,"text":"+OK caf\\u00e9"}\n')
put("fuzz_control", "send-event",
    b'{"cmd":"send_event","id":null,"event":"x_test","client":9,"tag":4,"origin":2,'
    b'"args":[1,"two",{"three":3},[4],null,true,1.5,"nul\\u0000in",-7]}\n')
put("fuzz_control", "invalid",
    b'{"cmd":1}\n[1,2]\n{bad json\n{"cmd":"a","cmd":"b"}\n{"cmd":"\xff\xfe"}\n'
    b'"str"\r\n{"id":5}\n{"cmd":"a\\u0000b","id":[1]}\n')
put("fuzz_control", "ids-unicode",
    b'{"cmd":"send_file","id":{"nested":[1,2]},"client":7,"path":"/tmp/m",'
    b'"status":"+OK","top_lines":0}\n{"cmd":"ping","id":-5}\n'
    b'{"cmd":"x\\u00e9\\ud83d\\ude00","id":1e3}\n{"cmd":"list_clients","id":0.5}\n')
put("fuzz_control", "base64-utf8",
    b'AGJvYgBzZWNyZXQ=\nQQ==\nQUI=\nQR==\n====\nA===\n\n'
    b'\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80\xe2\x82\n'
    b'{"cmd":"x","text_b64":"/w=="}\n')


# fuzz_session: 3 option bytes, 6 chunk-size bytes, 8 answer bytes, stream.
def session(o0, o1, chunks, answers, stream, o2=0):
    assert len(chunks) == 6 and len(answers) == 8
    return bytes([o0, o1, o2]) + bytes(chunks) + bytes(answers) + stream


WHOLE = [0xFF] * 6
put("fuzz_session", "plain", session(0, 0, WHOLE, [0] * 8,
    b"USER bob\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 1\r\nQUIT\r\n"))
put("fuzz_session", "pipelined-multiline", session(0, 0, [0x05, 0x00, 0x20, 0x03, 0xFF, 0x01],
    [0x03, 0x02, 0x04, 0x44, 0x14, 0x01, 0x23, 0x00],
    b"CAPA\r\nUSER bob\r\nPASS x\r\nLIST\r\nRETR 1\r\nTOP 1 2\r\nUIDL\r\nQUIT\r\n"))
# --pipeline-depth 8 (0xC0) and 2 (0x40): a deferred answer to STAT keeps
# it in flight while the pipelined LIST, RETR, NOOP and QUIT go ahead.
for o1, name in ((0xC0, "pipeline-ahead-8"), (0x40, "pipeline-ahead-2")):
    put("fuzz_session", name, session(0, o1, WHOLE,
        [0x00, 0x00, 0x05, 0x00, 0x03, 0x04, 0x05, 0x02],
        b"USER bob\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 1\r\nNOOP\r\nDELE 1\r\n"
        b"CAPA\r\nNOOP\r\nQUIT\r\n"))
put("fuzz_session", "sasl", session(0, 0, WHOLE,
    [0x08, 0x01, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00],
    b"AUTH PLAIN\r\nAGJvYgBzZWNyZXQ=\r\nAUTH LOGIN\r\nYm9i\r\nc2VjcmV0\r\nSTAT\r\nQUIT\r\n"))
put("fuzz_session", "sasl-deferred-cancel-long", session(0x04, 0, [0x03, 0x00, 0x10, 0x01, 0x40, 0x00],
    [0x18, 0x03, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00],
    b"AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n" + b"A" * 60 + b"\r\nNOOP\r\nQUIT\r\n"))
put("fuzz_session", "bad-lines-halfclose", session(0x12, 0, [0x00, 0x07, 0xF2, 0x01, 0x00, 0x30],
    [0] * 8,
    b"FOO\r\n" + b"X" * 300 + b"\r\nNO\0OP\r\nXTND\r\nNOOP\r\nNOOP"))
put("fuzz_session", "deferred-disconnect", session(0, 0, [0x02, 0x00, 0x01, 0x00, 0x03, 0x00],
    [0x05, 0x00, 0x05, 0x02, 0x07, 0x00, 0x00, 0x00],
    b"STAT\r\nLIST\r\nRETR 1\r\nNOOP\r\nQUIT\r\n"))
put("fuzz_session", "plugin-shutdown", session(0x40, 0x01, WHOLE,
    [0x02, 0x01, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00],
    b"NOOP hello\r\nRSET\r\nUIDL 1\r\nUSER a\r\nDELE 1\r\nQUIT\r\n"))
put("fuzz_session", "subset-no-auth-data", session(0x80, 0x04, WHOLE,
    [0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    b"USER a\r\nSTAT\r\nAUTH PLAIN\r\nAAAA\r\nXTND\r\nQUIT\r\n"))
put("fuzz_session", "files-backpressure", session(0x08, 0x08, [0x10, 0xFF, 0x00, 0x00, 0x00, 0x00],
    [0x44, 0x54, 0x04, 0x24, 0x00, 0x00, 0x00, 0x00],
    b"RETR 1\r\nTOP 1 0\r\nRETR 2\r\nTOP 2 1\r\nQUIT\r\n"))
put("fuzz_session", "misuse-verbose", session(0x01, 0x00, WHOLE,
    [0x06, 0x0E, 0x1F, 0x00, 0x06, 0x00, 0x00, 0x00],
    b"USER bob\r\nPASS x\r\nLIST\r\nSTAT\r\nQUIT\r\n"))
put("fuzz_session", "proxy-v1", session(0, 0x10, [0x07, 0xFF, 0x02, 0xFF, 0xFF, 0xFF], [0] * 8,
    b"PROXY TCP4 203.0.113.7 192.0.2.10 40001 110\r\nUSER bob\r\nPASS x\r\nQUIT\r\n"))
put("fuzz_session", "proxy-v2-mapped", session(0, 0x18, [0x03, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF],
    [0x03, 0] * 4,
    bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
           0x21, 0x21, 0x00, 0x24]) + bytes(15) + b"\x01" + bytes(10) + b"\xff\xff\xc0\x00\x02\x0a"
    + b"\x9c\x41\x00\x6e" + b"CAPA\r\nLIST\r\nQUIT\r\n"))
put("fuzz_session", "proxy-untrusted", session(0, 0x30, WHOLE, [0] * 8,
    b"PROXY TCP4 203.0.113.7 192.0.2.10 40001 110\r\nQUIT\r\n"))
put("fuzz_session", "proxy-bad-header", session(0, 0x10, [0x00] * 6, [0] * 8,
    b"PROXY TCP4 203.0.113.7 192.0.2.10 040001 110\r\nQUIT\r\n"))

# fuzz_proxy: a connection's first octets (v1 line or v2 block, then POP3);
# the first line is also tried as a CIDR.
V2SIG = bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
put("fuzz_proxy", "v1-tcp4", b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 110\r\nUSER bob\r\n")
put("fuzz_proxy", "v1-tcp6", b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.7 65535 995\r\nCAPA\r\n")
put("fuzz_proxy", "v1-unknown", b"PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n")
put("fuzz_proxy", "v1-bad-port", b"PROXY TCP4 192.0.2.1 198.51.100.2 0110 65536\r\n")
put("fuzz_proxy", "v2-tcp4", V2SIG + bytes([0x21, 0x11, 0x00, 0x0C, 192, 0, 2, 1, 198, 51, 100, 2,
                                            0xDC, 0x04, 0x00, 0x6E]) + b"QUIT\r\n")
put("fuzz_proxy", "v2-tcp6-tlv", V2SIG + bytes([0x21, 0x21, 0x00, 0x2B]) + bytes(15) + b"\x01"
    + bytes(15) + b"\x02" + b"\x9c\x41\x00\x6e" + b"\x03\x00\x04\x12\x34\x56\x78")
put("fuzz_proxy", "v2-local", V2SIG + bytes([0x20, 0x00, 0x00, 0x00]) + b"NOOP\r\n")
put("fuzz_proxy", "v2-unspec-udp", V2SIG + bytes([0x21, 0x00, 0x00, 0x00]) + V2SIG
    + bytes([0x21, 0x12, 0x00, 0x0C]) + bytes(12))
put("fuzz_proxy", "cidr-v4", b"10.0.0.0/8\n" + bytes(range(32)))
put("fuzz_proxy", "cidr-v6", b"2001:db8::/33\n" + bytes(range(200, 232)))
put("fuzz_proxy", "cidr-mapped", b"::ffff:192.0.2.0/120\n" + b"\x00" * 10 + b"\xff\xff\xc0\x00\x02\x05")
put("fuzz_session", "hooks-held", session(0, 0x01, WHOLE,
    [0x04, 0x01, 0x00, 0x04, 0x10, 0x00, 0x04, 0x0F],
    b"NOOP\r\nRSET\r\nUIDL\r\nAUTH PLAIN\r\nAGJvYgBzZWNyZXQ=\r\nQUIT\r\n", o2=0x10))
put("fuzz_session", "pop3c-rewrite-swallow-hold", session(0, 0, [0x05, 0xFF, 0x01, 0xFF, 0xFF, 0xFF],
    [0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x05, 0x04],
    b"USER bob\r\nPASS x\r\nSTAT\r\nLIST\r\nRETR 1\r\nQUIT\r\n", o2=0x01))
put("fuzz_session", "timers-auth-delay", session(0, 0, WHOLE,
    [0x08, 0x02, 0x01, 0x0A, 0x00, 0x00, 0x00, 0x00],
    b"USER bob\r\nPASS wrong\r\nAUTH PLAIN\r\nAAAA\r\nSTAT\r\n", o2=0x06))
put("fuzz_session", "timers-no-answer", session(0, 0, WHOLE,
    [0x17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    b"STAT\r\nLIST\r\n", o2=0x02))
put("fuzz_session", "timers-proxy-header", session(0, 0x10, WHOLE, [0] * 8,
    b"PROXY TCP4 203.0.113.7 192.0.2.10 40001", o2=0x02))

put("fuzz_session", "consumer-greets-late", session(0x20, 0, [0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    [0x01, 0x00, 0x00, 0x00, 0, 0, 0, 0], b"USER a\r\nSTAT\r\nQUIT\r\n"))
put("fuzz_session", "no-greeting-handler", session(0xA0, 0, WHOLE, [0] * 8, b"USER a\r\n"))
# Regression inputs: the core bugs fuzz_session found (README.md).
put("fuzz_session", "regress-consumer-del-in-dispatch",
    session(0, 0, WHOLE, [0xFF, 0x00] * 4, b"NOOP\r\n"))
put("fuzz_session", "regress-plugin-rewrites-connection-arg",
    session(0, 0x01, WHOLE, [0x01] + [0] * 7, b"QUIT\r\n", o2=0x10))


# fuzz_lifecycle: 2 option bytes, 8 answer bytes, then operations (see the
# top of fuzz_lifecycle.c).  The helpers below encode one operation each;
# turn=True sets 0x80 (a loop turn after it).
def lc(o0, o1, tape, *ops):
    assert len(tape) == 8
    return bytes([o0, o1]) + bytes(tape) + b"".join(ops)


def lc_op(kind, a, args=b"", turn=False):
    return bytes([kind | (a << 4) | (0x80 if turn else 0)]) + bytes(args)


def T(n=1):                 # n loop turns (1-8)
    return lc_op(0, n - 1)


def K_CONN(k):              # controller k connects
    return lc_op(1, k, turn=True)


# Controller commands (cmd_line()): s, x, y.
HELLO, REGISTER, UNREGISTER, PLUGIN_ADD, PLUGIN_REG, PLUGIN_REG_POP3C, PLUGIN_DEL, \
    PLUGIN_UNREG, VERDICT, VERDICT_STALE, VERDICT_OTHER, ANSWER, DISCONNECT, QUERY, RAW, \
    SEND_EVENT = range(16)
ON_NONE, ON_CLIENT, ON_PLUGIN, ON_ALL, ON_TEMPFAIL, ON_DEFAULT = range(6)


def K_CMD(k, s, x=0, y=0, turn=False):
    return lc_op(2, k, [s, x, y], turn)


def K_PLUGIN(k, alias, events, on_timeout, pop3c=False):
    # plugin_add then plugin_register; events: 0 all, 1 cmd_*, 2 auth path,
    # 3 transaction commands (POP3D only).
    return (K_CMD(k, PLUGIN_ADD, alias, 2) +
            K_CMD(k, PLUGIN_REG_POP3C if pop3c else PLUGIN_REG, alias | (events << 2),
                  on_timeout << 2))


def K_MODE(k, read=True, hooks=False, cmds=False):
    return lc_op(3, k, [(1 if read else 0) | (2 if hooks else 0) | (4 if cmds else 0)])


def K_GO(k, how=0):         # 0 close, 1 half-close, 2 shutdown + close (k < 2)
    return lc_op(4, k + 3 * how, turn=True)


def C_CONN(i):
    return lc_op(5, i, turn=True)


# Canned client lines (lines[] in fuzz_lifecycle.c).
USER, PASS, AUTH, AUTH_DATA, AUTH_CANCEL, NOOP, STAT_LIST_UIDL, QUIT, RETR, CAPA, APOP, \
    RSET_NOOP_DELE, TOP, BAD, LOGIN_STAT_QUIT, PARTIAL = range(16)


def C_LINE(i, s, turn=True):
    return lc_op(6, i, [s], turn)


def C_RAW(i, data, turn=True):
    return lc_op(7, i, bytes([len(data)]) + data, turn)


def C_GO(i, how=0):         # 0 close, 1 half-close, 2 shutdown + close (i < 2)
    return lc_op(8, i + 3 * how, turn=True)


def HOOK_DEADLINE(i=0, every=False):
    return lc_op(9, 1 if every else 0, [i], turn=True)


def CLIENT_DEADLINE(i, which):  # 0 auth delay, 1 response, 2 phase, 3 idle
    return lc_op(10, i, [which], turn=True)


def SLEEP():
    return lc_op(11, 0)


put("fuzz_lifecycle", "consumer-answers", lc(0, 3, [0] * 8,
    K_CONN(0), K_CMD(0, HELLO), K_CMD(0, REGISTER, 0), K_MODE(0, cmds=True), T(2),
    C_CONN(0), T(2), C_LINE(0, LOGIN_STAT_QUIT), T(8), C_GO(0), T(2)))
put("fuzz_lifecycle", "plugin-verdicts", lc(0, 3, [0x00, 0x02, 0x05, 0x10, 0x01, 0x00, 0x03, 0x0B],
    K_CONN(0), K_CONN(1), K_PLUGIN(0, 0, 0, ON_NONE), K_MODE(0, hooks=True),
    K_CMD(1, REGISTER, 0), K_MODE(1, cmds=True), T(3),
    C_CONN(0), C_CONN(1), T(3), C_LINE(0, LOGIN_STAT_QUIT), C_LINE(1, USER),
    C_LINE(1, PASS), T(8), C_LINE(1, STAT_LIST_UIDL), T(8), C_GO(0), C_GO(1, 1), T(8)))
put("fuzz_lifecycle", "pop3c-hooks", lc(0x02, 3, [0x00, 0x01, 0x03, 0x02, 0x00, 0x04, 0x00, 0x00],
    K_CONN(0), K_CONN(1), K_PLUGIN(0, 1, 0, ON_PLUGIN, pop3c=True), K_MODE(0, hooks=True),
    K_CMD(1, REGISTER, 0), K_MODE(1, cmds=True), T(3),
    C_CONN(0), T(3), C_LINE(0, LOGIN_STAT_QUIT), T(8), T(8), C_GO(0), T(4)))
# A controller departs while its hooks are pending (hook_controller_gone).
put("fuzz_lifecycle", "depart-with-hooks-pending", lc(0, 3, [0] * 8,
    K_CONN(0), K_CONN(1), K_PLUGIN(0, 0, 1, ON_TEMPFAIL), K_MODE(0),
    K_CMD(1, REGISTER, 0), K_MODE(1, cmds=True), T(3),
    C_CONN(0), C_CONN(1), T(2), C_LINE(0, USER), C_LINE(1, AUTH), T(4),
    K_GO(0), T(4), C_LINE(0, NOOP), T(4), C_GO(0), C_GO(1), T(4)))
# A client goes while its command (and its connection) wait on hooks; the
# late verdicts are stale.
put("fuzz_lifecycle", "client-gone-while-hooked", lc(0, 3, [0] * 8,
    K_CONN(0), K_CMD(0, REGISTER, 0), K_PLUGIN(0, 2, 0, ON_DEFAULT), K_MODE(0), T(3),
    C_CONN(0), T(2), K_CMD(0, VERDICT, 0, 0), T(2), C_LINE(0, USER), T(2),
    C_GO(0), T(3), K_CMD(0, VERDICT, 0, 0), K_CMD(0, VERDICT_STALE, 0, 3), T(3),
    HOOK_DEADLINE(0, True), T(2)))
# A client that half-closes with a command waiting for an answer; the
# response deadline, then the idle one.
put("fuzz_lifecycle", "halfclose-deadlines", lc(0x20, 3, [0x0B] * 8,
    K_CONN(0), K_CMD(0, REGISTER, 0), K_MODE(0, cmds=True), T(2),
    C_CONN(0), C_CONN(1), T(2), C_LINE(0, LOGIN_STAT_QUIT), C_LINE(1, PASS), C_GO(0, 1), T(4),
    CLIENT_DEADLINE(0, 1), CLIENT_DEADLINE(1, 0), CLIENT_DEADLINE(1, 3), T(4)))
# Shutdown from a controller while hooks are pending, a controller half-closed.
put("fuzz_lifecycle", "shutdown-hooks-halfclose", lc(0x10, 3, [0xC0, 0x00] * 4,
    K_CONN(0), K_CONN(1), K_PLUGIN(0, 0, 0, ON_ALL), K_MODE(0, hooks=True),
    K_CMD(1, REGISTER, 2), K_MODE(1, cmds=True), T(3),
    C_CONN(0), C_CONN(1), C_CONN(2), T(3), C_LINE(0, USER), C_LINE(1, AUTH), C_LINE(2, NOOP),
    T(2), K_GO(1, 1), T(2), K_CMD(0, SEND_EVENT, 0x5A), T(4), C_CONN(0), T(4)))


# Regression inputs for fuzz_lifecycle (README.md): controller 0, a plugin
# on cmd_* (on_timeout tempfail), stops reading; a tiny SO_SNDBUF and a
# 1024-octet max_output; pings fill its output to just under the cap.
# How many pings that takes depends on the kernel's socket accounting
# (23 for the first case, 22-24 for the second on Debian 12's kernel), so
# each seed tries every count from 14 to 34 with a fresh controller and
# client each time.
def lc_over_cap(deadline_first, counts=range(14, 35)):
    ops = []
    for pings in counts:
        head = [K_CONN(0), K_PLUGIN(0, 0, 1, ON_TEMPFAIL), T(2), K_MODE(0, read=False),
                C_CONN(0), T(2)]
        fill = [K_CMD(0, QUERY, 0, turn=True) for _ in range(pings)]
        if deadline_first:
            # The hook is out; writing pop3d_hook_timeout goes over the cap.
            ops += head + [C_LINE(0, USER), T(2)] + fill + [HOOK_DEADLINE(0), T(3)]
        else:
            # Writing the hook itself goes over the cap (in hook_dispatch).
            ops += head + fill + [C_LINE(0, USER), T(3)]
        ops += [K_GO(0), C_GO(0), T(4)]
    return lc(0x04, 0, [0] * 8, *ops)


put("fuzz_lifecycle", "regress-hook-timeout-over-cap", lc_over_cap(True))
put("fuzz_lifecycle", "regress-hook-write-drops-controller", lc_over_cap(False))
