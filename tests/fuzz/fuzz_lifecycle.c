/*
 * fuzz_lifecycle.c - libFuzzer target for the lifecycles of clients,
 * controllers and hooks interleaved: controller verdicts, departures and
 * output caps while POP3 clients send, wait on hooks and go away
 * (src/client.c, src/output.c, src/pipeline.c, control/control.c,
 * control/hook.c, control/command.c).
 *
 * Each input runs one in-process server: a fresh event_base, pop3d_new(),
 * the real control socket (control_new() on a socket in a temporary
 * directory, a tiny max_output when the header says so), an in-process
 * observer consumer of pop3d_connection/pop3d_disconnected, and a cast
 * driven by the input: up to 3 controllers connected to the control socket
 * on real non-blocking Unix sockets, and up to 3 POP3 clients made with
 * admit_new()/admit_begin() on socketpairs.  The loop runs with
 * EVLOOP_NONBLOCK one turn at a time; timers are fired by activating them
 * (hook deadlines: the pending hook's timer from control/controller.h;
 * client deadlines: session_timer_fire()), so that a run is reproducible,
 * unless the real-time option asks for 1-4 ms hook deadlines and sleeps.
 *
 * Input layout (see README.md):
 *   byte 0      options: 0x01 trace logging (-vv), 0x02 --pipeline-depth 2,
 *               0x04 a tiny kernel send buffer (SO_SNDBUF) on the server
 *               side of every controller, so that one that does not read
 *               backs up into its output buffer soon, 0x08 real time:
 *               timeout_ms 1-4 and the sleep operation sleeps, 0x10
 *               pop3d_shutdown() and control_shutdown() before the end,
 *               0x20 failed-authentication delay on (else 0), 0x40 small
 *               limits (max_line 32, max_auth_line 48), 0x80 no
 *               failed-authentication limit
 *   byte 1      bits 0-1: control max_output 1024, 4096, 16384 or the
 *               default (8 MiB); 0x04: the observer is also a consumer of
 *               every command (it never answers)
 *   bytes 2..9  answer tape, cyclic: one byte per decision of a
 *               controller answering by itself (auto_verdict(),
 *               auto_answer())
 *   bytes 10..  operations, one byte each, some followed by argument
 *               bytes.  Op byte o: kind o & 0x0F, actor/argument a =
 *               (o >> 4) & 7, and 0x80 runs one loop turn after it:
 *      0, 15    turn the loop a + 1 times
 *      1        controller a % 3 connects (if it is not connected)
 *      2, 12, 13 controller a % 3 sends a command; bytes s, x, y (cmd_line())
 *      3        controller a % 3 mode byte m: 0x01 reads its output, 0x02
 *               answers hooks by itself, 0x04 answers commands by itself
 *      4        controller a % 3 departs: a / 3 == 0 close, 1 half-close
 *               (shutdown SHUT_WR), 2 shutdown SHUT_RDWR then close
 *      5        client a % 3 connects (if its slot is free)
 *      6, 14    client a % 3 sends canned line(s) number byte s (lines[])
 *      7        client a % 3 sends n = byte octets that follow
 *      8        client a % 3 goes: a / 3 == 0 close, 1 half-close, 2
 *               shutdown SHUT_RDWR then close
 *      9        a hook deadline passes: byte i, the i-th pending hook
 *               (a & 1: every pending hook)
 *      10       a client deadline passes: client a % 3, byte w (0 failed-
 *               authentication delay, 1 response, 2 phase, 3 idle)
 *      11       time passes: sleep 1-2.5 ms (real time only), then a turn
 *
 * At the end every client and controller socket is closed and the loop
 * runs (firing the clients' deadlines) until things settle.
 *
 * Checked: no crash, leak or sanitizer report; every line a controller
 * receives is a JSON object; at the end no client is left in the server
 * (not even a dead one awaiting its free), no controller is left, no hook
 * is pending in the control socket or in the pipeline; an observer plugin first in the pipeline (priority
 * -2000000000: what the core emits, before any controller plugin can eat
 * it) saw pop3d_connection at most once per client, pop3d_disconnected
 * only after it and exactly once for each; the observer consumer saw each
 * at most once (a controller plugin may eat either before it).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "log.h"
#include "pop3d.h"
#include "server.h"
#include "controller.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define HDR 10
#define TAPE 2
#define TAPE_LEN 8
#define NCTL 3
#define NCLI 3
#define NREC 16
#define MAX_OPS 1500
#define MAX_TURNS 3000
#define MAX_IDS 256
#define CTL_IN_CAP (256 * 1024)
#define CTL_OUT_CAP (64 * 1024)

static FILE *errf;
static char sock_dir[64], sock_path[128];
static int trace_ops;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(errf, "fuzz_lifecycle: check failed at %s:%d: %s\n", __FILE__, \
			    __LINE__, #cond); \
			fflush(errf); \
			abort(); \
		} \
	} while (0)

#define TRACE(...) \
	do { \
		if (trace_ops) { \
			fprintf(errf, __VA_ARGS__); \
			fflush(errf); \
		} \
	} while (0)

/* A hook or a command a controller received, for a later answer. */
struct rec {
	uint64_t id; /* hook id (hooks) */
	uint64_t client;
	uint64_t tag;
};

struct kctl {
	int fd; /* -1: not connected */
	int reading, auto_hooks, auto_cmds, wr_shut;
	char *in; /* a partial line */
	size_t inlen;
	char *out; /* commands not written yet */
	size_t outlen;
	struct rec hooks[NREC]; /* ring */
	size_t nhooks;
	uint64_t stale[NREC]; /* hooks answered, timed out or cancelled */
	size_t nstale;
	struct rec cmds[NREC]; /* ring */
	size_t ncmds;
	unsigned nid; /* command ids */
};

struct kcli {
	int fd; /* -1: free slot */
	uint64_t id;
};

struct lf {
	struct event_base *base;
	struct pop3d *srv;
	struct control *ctl;
	uint64_t observer;
	const uint8_t *tape;
	size_t tp;
	const uint8_t *p, *end; /* the operations */
	int realtime, sndbuf_small;
	uint64_t sndbuf_done; /* controllers up to this id have it */
	unsigned turns;
	struct kctl k[NCTL];
	struct kcli c[NCLI];
	unsigned nclients;			      /* clients made */
	uint64_t max_hook;			      /* highest hook id a controller was sent */
	unsigned char conn[MAX_IDS], disc[MAX_IDS];   /* the observer consumer saw */
	unsigned char pconn[MAX_IDS], pdisc[MAX_IDS]; /* the first plugin saw */
};

/* Remove the socket directory at exit. */
static void
cleanup(void)
{
	if (sock_path[0] != '\0')
		unlink(sock_path);
	if (sock_dir[0] != '\0')
		rmdir(sock_dir);
}

/* Once: stderr to /dev/null (unless FUZZ_LIFECYCLE_LOG), the socket dir. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	errf = stderr;
	if (getenv("FUZZ_LIFECYCLE_LOG") == NULL) {
		FILE *null = fopen("/dev/null", "w");

		if (null != NULL)
			stderr = null;
	}
	trace_ops = getenv("FUZZ_LIFECYCLE_TRACE") != NULL;
	signal(SIGPIPE, SIG_IGN);
	snprintf(sock_dir, sizeof(sock_dir), "%s/fzlc.XXXXXX",
	    tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
	if (mkdtemp(sock_dir) == NULL) {
		fprintf(errf, "fuzz_lifecycle: mkdtemp: %s\n", strerror(errno));
		abort();
	}
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", sock_dir);
	atexit(cleanup);
	return 0;
}

/* The next byte of the operations, 0 past the end. */
static unsigned char
next(struct lf *f)
{
	return f->p < f->end ? *f->p++ : 0;
}

/* The next byte of the answer tape (cyclic). */
static unsigned char
tape_next(struct lf *f)
{
	return f->tape[f->tp++ % TAPE_LEN];
}

/* The observer consumer: pop3d_connection and pop3d_disconnected, each at
 * most once per client (a controller plugin may eat either before it). */
static void
observer_cb(struct pop3d *srv, const struct pop3d_event *ev, void *arg)
{
	struct lf *f = arg;

	(void)srv;
	if (ev->client == 0 || ev->client >= MAX_IDS)
		return;
	if (strcmp(ev->name, "pop3d_connection") == 0) {
		CHECK(f->conn[ev->client] == 0);
		f->conn[ev->client] = 1;
	} else if (strcmp(ev->name, "pop3d_disconnected") == 0) {
		CHECK(f->disc[ev->client] == 0);
		f->disc[ev->client] = 1;
	}
}

/* The observer plugin, first in the pipeline: what the core emits, before
 * any controller plugin can eat it.  pop3d_disconnected at most once, and
 * only after pop3d_connection. */
static int
first_cb(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	struct lf *f = arg;

	(void)srv;
	if (ev->type != POP3D_PLUGIN_POP3D || ev->client == 0 || ev->client >= MAX_IDS)
		return POP3D_EAT_NONE;
	if (strcmp(ev->name, "pop3d_connection") == 0) {
		CHECK(f->pconn[ev->client] == 0);
		f->pconn[ev->client] = 1;
	} else if (strcmp(ev->name, "pop3d_disconnected") == 0) {
		CHECK(f->pdisc[ev->client] == 0);
		CHECK(f->pconn[ev->client] == 1);
		f->pdisc[ev->client] = 1;
	}
	return POP3D_EAT_NONE;
}

/* Queue a line (LF added) to controller k and write what the socket takes. */
static void
ctl_send(struct lf *f, int k, const char *line, size_t len)
{
	struct kctl *q = &f->k[k];
	ssize_t n;

	if (q->fd < 0 || q->wr_shut)
		return;
	TRACE("  ctl%d <- %.*s\n", k, (int)len, line);
	if (q->outlen + len + 1 <= CTL_OUT_CAP) {
		memcpy(q->out + q->outlen, line, len);
		q->out[q->outlen + len] = '\n';
		q->outlen += len + 1;
	}
	if (q->outlen == 0)
		return;
	n = write(q->fd, q->out, q->outlen);
	if (n > 0) {
		memmove(q->out, q->out + n, q->outlen - (size_t)n);
		q->outlen -= (size_t)n;
	}
}

/* printf into a line for controller k. */
static void __attribute__((format(printf, 3, 4)))
ctl_sendf(struct lf *f, int k, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(buf))
		ctl_send(f, k, buf, (size_t)n);
}

/* Remember a record in a ring of NREC. */
static void
rec_add(struct rec *r, size_t *n, uint64_t id, uint64_t client, uint64_t tag)
{
	struct rec *e = &r[*n % NREC];

	e->id = id;
	e->client = client;
	e->tag = tag;
	(*n)++;
}

/* Forget hook id of controller k (answered, timed out, cancelled). */
static void
hook_forget(struct kctl *q, uint64_t id)
{
	size_t i;

	for (i = 0; i < NREC && i < q->nhooks; i++)
		if (q->hooks[i].id == id)
			q->hooks[i].id = 0;
	q->stale[q->nstale++ % NREC] = id;
}

static const char *const eats[] = { "none", "client", "plugin", "all", "tempfail" };

/* A verdict on hook r from controller k by decision byte v. */
static void
verdict(struct lf *f, int k, const struct rec *r, unsigned char v)
{
	unsigned id = ++f->k[k].nid;

	switch (v % 8) {
	case 5:
		/* Rewrite the arguments for everyone after the plugin. */
		ctl_sendf(f, k,
		    "{\"id\":%u,\"cmd\":\"verdict\",\"hook\":%llu,\"eat\":\"none\","
		    "\"args\":[%llu,\"rewritten\"]}",
		    id, (unsigned long long)r->id, (unsigned long long)r->client);
		break;
	case 6:
		/* A bad verdict: invalid_argument, the hook stays pending. */
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"verdict\",\"hook\":%llu,\"eat\":\"maybe\"}",
		    id, (unsigned long long)r->id);
		return;
	default:
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"verdict\",\"hook\":%llu,\"eat\":\"%s\"}", id,
		    (unsigned long long)r->id, eats[(v % 8) % 5]);
		break;
	}
	hook_forget(&f->k[k], r->id);
}

/*
 * Answers a controller gives a command, by tape byte (v % 12): the JSON
 * after "client":N, with the tag (tagged: 1, or 2 for a stale tag + 1)
 * between; "then" is sent right after when set.  Rows past the table are
 * never answered.
 */
static const struct {
	const char *cmd;
	int tagged;
	const char *rest;
	const char *then;
} answers[] = {
	{ "send_to_client", 1, "\"text\":\"+OK fine\"", NULL },
	{ "send_to_client", 1, "\"text\":\"-ERR no\"", NULL },
	/* A SASL continuation (a single line for other commands). */
	{ "send_to_client", 1, "\"text\":\"+ \"", NULL },
	{ "send_to_client", 1, "\"lines\":[\"+OK multi\",\"1 120\",\".dot\",\"\"]", NULL },
	/* Left open: a later answer ends it, or the response deadline. */
	{ "send_to_client", 1, "\"text\":\"+OK more\",\"more\":true", NULL },
	{ "send_to_client", 0, "\"text\":\"+OK untagged\"", NULL },
	{ "send_to_client", 2, "\"text\":\"+OK stale\"", NULL },
	{ "send_to_client", 1, "\"text\":\"+OK bad\\r\\nline\"", NULL },
	{ "disconnect", 0, "\"text\":\"-ERR bye\"", NULL },
	{ "send_file", 1, "\"path\":\"/nonexistent/fuzz\",\"status\":\"+OK file\"", NULL },
	{ "send_to_client", 1, "\"lines\":[\"+OK more lines\",\"a\"],\"more\":true",
	    "\"text\":\".\"" },
};

/* An answer to command r (client, tag) from controller k by byte v. */
static void
answer(struct lf *f, int k, const struct rec *r, unsigned char v)
{
	unsigned long long cl = (unsigned long long)r->client, tag = (unsigned long long)r->tag;
	size_t i = (size_t)(v % 12);
	char tagbuf[48] = "";

	if (i >= sizeof(answers) / sizeof(answers[0]))
		return; /* never answered */
	if (answers[i].tagged)
		snprintf(tagbuf, sizeof(tagbuf), "\"tag\":%llu,",
		    answers[i].tagged == 2 ? tag + 1 : tag);
	ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"%s\",\"client\":%llu,%s%s}", ++f->k[k].nid,
	    answers[i].cmd, cl, tagbuf, answers[i].rest);
	if (answers[i].then != NULL)
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"%s\",\"client\":%llu,%s%s}", ++f->k[k].nid,
		    answers[i].cmd, cl, tagbuf, answers[i].then);
}

/* A controller answering hooks by itself: verdict now, or leave it. */
static void
auto_verdict(struct lf *f, int k, const struct rec *r)
{
	unsigned char v = tape_next(f);

	if ((v & 0xC0) == 0xC0)
		return; /* left pending: a deadline or a departure ends it */
	verdict(f, k, r, v);
}

/* A controller answering commands by itself. */
static void
auto_answer(struct lf *f, int k, const struct rec *r)
{
	answer(f, k, r, tape_next(f));
}

/* One line from the server to controller k. */
static void
ctl_line(struct lf *f, int k, const char *line, size_t len)
{
	struct kctl *q = &f->k[k];
	json_error_t jerr;
	json_t *root, *v;
	const char *type, *ev;
	uint64_t client, tag, hook;

	TRACE("  ctl%d -> %.*s\n", k, (int)(len > 300 ? 300 : len), line);
	root = json_loadb(line, len, 0, &jerr);
	if (root == NULL)
		fprintf(errf, "fuzz_lifecycle: controller %d: not JSON (%s): %.*s\n", k, jerr.text,
		    (int)(len > 300 ? 300 : len), line);
	CHECK(root != NULL && json_is_object(root));
	type = json_string_value(json_object_get(root, "type"));
	CHECK(type != NULL);
	ev = json_string_value(json_object_get(root, "event"));
	client = (uint64_t)json_integer_value(json_object_get(root, "client"));
	tag = (uint64_t)json_integer_value(json_object_get(root, "tag"));
	if (strcmp(type, "hook") == 0) {
		hook = (uint64_t)json_integer_value(json_object_get(root, "hook"));
		CHECK(hook > 0);
		if (hook > f->max_hook)
			f->max_hook = hook;
		rec_add(q->hooks, &q->nhooks, hook, client, tag);
		if (q->auto_hooks)
			auto_verdict(f, k, &q->hooks[(q->nhooks - 1) % NREC]);
	} else if (strcmp(type, "event") == 0 && ev != NULL) {
		if (strncmp(ev, "pop3d_cmd_", 10) == 0 || strcmp(ev, "pop3d_auth_data") == 0) {
			rec_add(q->cmds, &q->ncmds, 0, client, tag);
			if (q->auto_cmds)
				auto_answer(f, k, &q->cmds[(q->ncmds - 1) % NREC]);
		} else if (strcmp(ev, "pop3d_hook_timeout") == 0 ||
		    strcmp(ev, "pop3d_hook_cancelled") == 0) {
			v = json_array_get(json_object_get(root, "args"), 0);
			if (json_is_integer(v))
				hook_forget(q, (uint64_t)json_integer_value(v));
		}
	}
	json_decref(root);
}

/* Read what controller k was sent (if it reads); lines to ctl_line(). */
static void
ctl_read(struct lf *f, int k)
{
	struct kctl *q = &f->k[k];
	char buf[16384];
	ssize_t n;
	int rounds;

	if (q->fd < 0 || !q->reading)
		return;
	for (rounds = 0; rounds < 16; rounds++) {
		char *lf;
		size_t start = 0;

		n = read(q->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (q->inlen + (size_t)n > CTL_IN_CAP)
			q->inlen = 0; /* a line longer than we keep: drop it */
		memcpy(q->in + q->inlen, buf, (size_t)n);
		q->inlen += (size_t)n;
		while ((lf = memchr(q->in + start, '\n', q->inlen - start)) != NULL) {
			ctl_line(f, k, q->in + start, (size_t)(lf - (q->in + start)));
			start = (size_t)(lf - q->in) + 1;
		}
		memmove(q->in, q->in + start, q->inlen - start);
		q->inlen -= start;
	}
	/* Write what the socket refused before. */
	if (q->outlen > 0 && !q->wr_shut && (n = write(q->fd, q->out, q->outlen)) > 0) {
		memmove(q->out, q->out + n, q->outlen - (size_t)n);
		q->outlen -= (size_t)n;
	}
}

/* Read and discard what the clients were sent. */
static void
cli_read(struct lf *f)
{
	char buf[16384];
	int i, rounds;

	for (i = 0; i < NCLI; i++)
		for (rounds = 0; rounds < 8 && f->c[i].fd >= 0; rounds++)
			if (read(f->c[i].fd, buf, sizeof(buf)) <= 0)
				break;
}

/* A tiny kernel send buffer on the server side of new controllers. */
static void
sndbuf_shrink(struct lf *f)
{
	struct controller *c;
	int one = 1;

	if (!f->sndbuf_small || f->ctl == NULL)
		return;
	TAILQ_FOREACH (c, &f->ctl->controllers, entry)
		if (c->id > f->sndbuf_done && !c->dead) {
			(void)setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_SNDBUF, &one,
			    sizeof(one));
			f->sndbuf_done = c->id;
		}
}

/* One turn: the loop once, then the cast reads. */
static void
turn(struct lf *f)
{
	int k;

	f->turns++;
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	sndbuf_shrink(f);
	for (k = 0; k < NCTL; k++)
		ctl_read(f, k);
	cli_read(f);
}

/* Controller k connects to the control socket. */
static void
ctl_connect(struct lf *f, int k)
{
	struct kctl *q = &f->k[k];
	struct sockaddr_un sun;
	int fd;

	if (q->fd >= 0 || f->ctl == NULL)
		return;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, sock_path, strlen(sock_path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return;
	}
	q->fd = fd;
	q->reading = 1;
	q->wr_shut = 0;
	q->inlen = q->outlen = 0;
	q->nhooks = q->ncmds = 0;
}

/* Controller k departs: how 0 close, 1 half-close, 2 shutdown and close. */
static void
ctl_depart(struct lf *f, int k, int how)
{
	struct kctl *q = &f->k[k];

	if (q->fd < 0)
		return;
	if (how == 1 && !q->wr_shut) {
		shutdown(q->fd, SHUT_WR);
		q->wr_shut = 1;
		return;
	}
	if (how == 2)
		shutdown(q->fd, SHUT_RDWR);
	close(q->fd);
	q->fd = -1;
}

/* A hook of controller k picked by byte i (0 when it has none). */
static const struct rec *
pick_hook(struct kctl *q, unsigned char i)
{
	size_t n = q->nhooks < NREC ? q->nhooks : NREC, j;

	for (j = 0; j < n; j++) {
		const struct rec *r = &q->hooks[(i + j) % n];

		if (r->id != 0)
			return r;
	}
	return NULL;
}

static const char *const reg_events[] = {
	"[\"all\"]",
	"[\"cmd_*\",\"auth_data\"]",
	("[\"connection\",\"disconnected\",\"cmd_user\",\"cmd_pass\",\"cmd_auth\",\"auth_data\","
	 "\"cmd_quit\"]"),
	"[\"disconnected\",\"cmd_noop\",\"cmd_stat\",\"cmd_list\",\"cmd_uidl\",\"cmd_retr\"]",
};
static const char *const plug_events[] = {
	"[\"all\"]",
	"[\"cmd_*\"]",
	"[\"connection\",\"cmd_user\",\"cmd_pass\",\"cmd_auth\",\"auth_data\"]",
	"[\"cmd_noop\",\"cmd_stat\",\"cmd_list\",\"cmd_quit\",\"disconnected\"]",
};

/* Controller k sends command s with argument bytes x, y. */
static void
cmd_line(struct lf *f, int k, unsigned char s, unsigned char x, unsigned char y)
{
	struct kctl *q = &f->k[k];
	unsigned id = ++q->nid;
	const struct rec *r;
	char ont[40] = "";
	unsigned tmo;
	int o, n;

	switch (s % 16) {
	case 0:
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"hello\",\"name\":\"k%d\",\"lossy\":%s}", id,
		    k, (x & 1) ? "true" : "false");
		break;
	case 1:
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"register\",\"events\":%s}", id,
		    reg_events[x % 4]);
		break;
	case 2:
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"unregister\",\"events\":%s}", id,
		    reg_events[x % 4]);
		break;
	case 3:
		ctl_sendf(f, k,
		    "{\"id\":%u,\"cmd\":\"plugin_add\",\"alias\":\"p%d_%d\","
		    "\"priority\":%d}",
		    id, k, (x & 3) % 3, (int)(y % 5) - 2);
		break;
	case 4:
	case 5:
		/* timeout_ms: 60 s unless real time (1-4 ms); hooks time out
		 * when op 9 fires them. */
		tmo = f->realtime ? 1 + y % 4 : 60000;
		o = (y >> 2) % 7;
		if (o < 5)
			snprintf(ont, sizeof(ont), ",\"on_timeout\":\"%s\"", eats[o]);
		ctl_sendf(f, k,
		    "{\"id\":%u,\"cmd\":\"plugin_register\",\"alias\":\"p%d_%d\","
		    "\"type\":\"%s\",\"events\":%s,\"timeout_ms\":%u%s}",
		    id, k, (x & 3) % 3, s % 16 == 4 ? "POP3D" : "POP3C",
		    s % 16 == 4 ? plug_events[(x >> 2) % 4] : "[\"response\"]", tmo, ont);
		break;
	case 6:
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"plugin_del\",\"alias\":\"p%d_%d\"}", id,
		    (x & 0x80) ? (k + 1) % NCTL : k, (x & 3) % 3);
		break;
	case 7:
		ctl_sendf(f, k,
		    "{\"id\":%u,\"cmd\":\"plugin_unregister\",\"alias\":\"p%d_%d\","
		    "\"type\":\"%s\",\"events\":%s}",
		    id, k, (x & 3) % 3, (y & 1) ? "POP3C" : "POP3D",
		    (y & 1) ? "[\"response\"]" : plug_events[(x >> 2) % 4]);
		break;
	case 8:
		if ((r = pick_hook(q, x)) != NULL)
			verdict(f, k, r, y);
		break;
	case 9:
		/* Stale: answered, timed out or cancelled before, or never. */
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"verdict\",\"hook\":%llu,\"eat\":\"%s\"}", id,
		    q->nstale > 0 ?
			(unsigned long long)q->stale[x % (q->nstale < NREC ? q->nstale : NREC)] :
			999999ULL,
		    eats[y % 5]);
		break;
	case 10:
		/* Another controller's hook: invalid_argument. */
		if ((r = pick_hook(&f->k[(k + 1 + (x & 1)) % NCTL], y)) != NULL)
			ctl_sendf(f, k,
			    "{\"id\":%u,\"cmd\":\"verdict\",\"hook\":%llu,"
			    "\"eat\":\"all\"}",
			    id, (unsigned long long)r->id);
		break;
	case 11:
		n = q->ncmds < NREC ? (int)q->ncmds : NREC;
		if (n > 0)
			answer(f, k, &q->cmds[x % n], y);
		break;
	case 12:
		/* Any client by number, ours or not. */
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"disconnect\",\"client\":%u%s}", id, 1 + x % 8,
		    (y & 1) ? ",\"text\":\"-ERR go\"" : "");
		break;
	case 13:
		ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"%s\"}", id,
		    (const char *const[]){ "ping", "list_clients", "plugin_list",
			"plugin_order" }[x % 4]);
		break;
	case 14:
		/* A raw line: x octets of the input (may be anything). */
		{
			char raw[256];
			size_t i;

			for (i = 0; i < x && i < sizeof(raw) && f->p < f->end; i++)
				raw[i] = (char)(next(f) == '\n' ? ' ' : f->p[-1]);
			ctl_send(f, k, raw, i);
		}
		break;
	default:
		if (x == 0x5A) /* rarely: stop the server */
			ctl_sendf(f, k, "{\"id\":%u,\"cmd\":\"shutdown\"}", id);
		else
			ctl_sendf(f, k,
			    "{\"id\":%u,\"cmd\":\"send_event\",\"event\":\"x_fuzz\","
			    "\"args\":[%u]}",
			    id, y);
		break;
	}
}

/* Canned client input: lines, pipelined runs, a partial line. */
static const char *const lines[] = {
	"USER alice\r\n",
	"PASS secret\r\n",
	"AUTH PLAIN\r\n",
	"AGFsaWNlAHNlY3JldA==\r\n",
	"*\r\n",
	"NOOP\r\n",
	("STAT\r\nLIST\r\nUIDL\r\n"),
	"QUIT\r\n",
	"RETR 1\r\n",
	"CAPA\r\n",
	"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n",
	("RSET\r\nNOOP\r\nDELE 1\r\n"),
	"TOP 1 0\r\n",
	"XYZZY\r\n",
	("USER a\r\nPASS b\r\nSTAT\r\nQUIT\r\n"),
	"NOO",
};

/* Client i connects (a socketpair and admit_new/admit_begin). */
static void
cli_connect(struct lf *f, int i)
{
	struct sockaddr_in sin;
	struct client *c;
	int fds[2];

	if (f->c[i].fd >= 0 || f->nclients >= MAX_IDS - 8)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == -1)
		return;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)(40000 + i));
	sin.sin_addr.s_addr = htonl(0xC0000201); /* 192.0.2.1 */
	if ((c = admit_new(f->srv, fds[0], (struct sockaddr *)&sin, sizeof(sin), 0, NULL)) ==
	    NULL) {
		/* Refused (shutting down): admit_new closed its end. */
		close(fds[1]);
		return;
	}
	f->nclients++;
	CHECK(c->id < MAX_IDS);
	f->c[i].fd = fds[1];
	f->c[i].id = c->id;
	TRACE("  client slot %d is client %llu\n", i, (unsigned long long)c->id);
	admit_begin(c);
}

/* Client i writes n octets. */
static void
cli_write(struct lf *f, int i, const void *p, size_t n)
{
	if (f->c[i].fd >= 0 && n > 0)
		(void)write(f->c[i].fd, p, n);
}

/* Client i goes: how 0 close, 1 half-close, 2 shutdown and close. */
static void
cli_close(struct lf *f, int i, int how)
{
	if (f->c[i].fd < 0)
		return;
	if (how == 1) {
		shutdown(f->c[i].fd, SHUT_WR);
		return;
	}
	if (how == 2)
		shutdown(f->c[i].fd, SHUT_RDWR);
	close(f->c[i].fd);
	f->c[i].fd = -1;
}

/* Fire pending hook deadlines: the i-th, or all. */
static void
fire_hooks(struct lf *f, unsigned char i, int all)
{
	struct hook_pending *hp;
	size_t n = 0, j = 0;

	if (f->ctl == NULL)
		return;
	TAILQ_FOREACH (hp, &f->ctl->pending, entry)
		n++;
	if (n == 0)
		return;
	TAILQ_FOREACH (hp, &f->ctl->pending, entry) {
		if (all || j == i % n) {
			TRACE("  hook %llu: deadline\n", (unsigned long long)hp->hook);
			event_active(hp->timer, EV_TIMEOUT, 1);
		}
		j++;
	}
}

/* Fire a client's deadline (0 auth delay, 1 response, 2 phase, 3 idle). */
static void
fire_client(struct lf *f, uint64_t id, int which)
{
	struct client *c = table_find(f->srv, id);

	if (c != NULL && !c->dead)
		session_timer_fire(c, which);
}

/* Run one operation. */
static void
op(struct lf *f)
{
	unsigned char o = next(f), x, y, s;
	int a = (o >> 4) & 7, k = a % 3, how = a / 3, t;

	switch (o & 0x0F) {
	case 0:
	case 15:
		for (t = 0; t <= a; t++)
			turn(f);
		break;
	case 1:
		TRACE("op: ctl%d connects\n", k);
		ctl_connect(f, k);
		break;
	case 2:
	case 12:
	case 13:
		s = next(f);
		x = next(f);
		y = next(f);
		TRACE("op: ctl%d command %u (%u, %u)\n", k, s % 16, x, y);
		cmd_line(f, k, s, x, y);
		break;
	case 3:
		x = next(f);
		TRACE("op: ctl%d mode 0x%x\n", k, x & 7);
		f->k[k].reading = (x & 1) != 0;
		f->k[k].auto_hooks = (x & 2) != 0;
		f->k[k].auto_cmds = (x & 4) != 0;
		break;
	case 4:
		TRACE("op: ctl%d departs (%d)\n", k, how);
		ctl_depart(f, k, how);
		break;
	case 5:
		TRACE("op: client slot %d connects\n", k);
		cli_connect(f, k);
		break;
	case 6:
	case 14:
		s = next(f);
		TRACE("op: client slot %d sends %u\n", k, s % 16);
		cli_write(f, k, lines[s % 16], strlen(lines[s % 16]));
		break;
	case 7:
		x = next(f);
		if ((size_t)(f->end - f->p) < x)
			x = (unsigned char)(f->end - f->p);
		TRACE("op: client slot %d sends %u octets\n", k, x);
		cli_write(f, k, f->p, x);
		f->p += x;
		break;
	case 8:
		TRACE("op: client slot %d goes (%d)\n", k, how);
		cli_close(f, k, how);
		break;
	case 9:
		x = next(f);
		TRACE("op: hook deadline %u%s\n", x, (a & 1) ? " (all)" : "");
		fire_hooks(f, x, a & 1);
		break;
	case 10:
		x = next(f);
		TRACE("op: client slot %d deadline %u\n", k, x % 4);
		if (f->c[k].id != 0)
			fire_client(f, f->c[k].id, x % 4);
		break;
	case 11:
		if (f->realtime)
			usleep(1000 + 500 * (unsigned)(a % 4));
		turn(f);
		break;
	}
	if (o & 0x80)
		turn(f);
}

/* Fire every armed deadline of every client still in the server. */
static void
fire_all_clients(struct lf *f)
{
	uint64_t ids[MAX_IDS];
	struct client *c;
	size_t n = 0, i;
	int w;

	TAILQ_FOREACH (c, &f->srv->clients, entry)
		if (!c->dead && n < MAX_IDS)
			ids[n++] = c->id;
	for (i = 0; i < n; i++)
		for (w = 0; w < 4; w++)
			fire_client(f, ids[i], w);
}

/* Show what is left (on a failed end check). */
static void
report_left(struct lf *f)
{
	struct client *c;
	struct controller *k;
	struct hook_pending *hp;

	TAILQ_FOREACH (c, &f->srv->clients, entry)
		fprintf(errf,
		    "fuzz_lifecycle: left: client %llu dead=%d closing=%d jobs=%u "
		    "inflight=%llu announced=%d disconnected_sent=%d\n",
		    (unsigned long long)c->id, c->dead, c->closing, c->jobs,
		    (unsigned long long)c->inflight, c->announced, c->disconnected_sent);
	if (f->ctl != NULL) {
		TAILQ_FOREACH (k, &f->ctl->controllers, entry)
			fprintf(errf, "fuzz_lifecycle: left: controller %llu dead=%d closing=%d\n",
			    (unsigned long long)k->id, k->dead, k->closing);
		TAILQ_FOREACH (hp, &f->ctl->pending, entry)
			fprintf(errf, "fuzz_lifecycle: left: hook %llu client %llu\n",
			    (unsigned long long)hp->hook, (unsigned long long)hp->client);
	}
	fflush(errf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = { 1024, 4096, 16384, CONTROL_MAX_OUTPUT };
	static const char *const ev_observe[] = { "connection", "disconnected" };
	static const char *const ev_all[] = { "all" };
	struct control_options co;
	struct pop3d_options o;
	struct lf f;
	unsigned ops = 0;
	uint64_t h;
	int i, r, bad = 0;

	if (size < HDR)
		return 0;
	memset(&f, 0, sizeof(f));
	for (i = 0; i < NCTL; i++) {
		f.k[i].fd = -1;
		CHECK((f.k[i].in = malloc(CTL_IN_CAP)) != NULL);
		CHECK((f.k[i].out = malloc(CTL_OUT_CAP)) != NULL);
	}
	for (i = 0; i < NCLI; i++)
		f.c[i].fd = -1;
	f.tape = data + TAPE;
	f.p = data + HDR;
	f.end = data + size;
	f.realtime = (data[0] & 0x08) != 0;
	f.sndbuf_small = (data[0] & 0x04) != 0;
	log_set_verbose((data[0] & 0x01) ? 2 : 0);

	CHECK((f.base = event_base_new()) != NULL);
	pop3d_options_init(&o);
	if (data[0] & 0x02)
		o.pipeline_depth = 2;
	if (!(data[0] & 0x20))
		o.auth_fail_delay_ms = 0;
	if (data[0] & 0x40) {
		o.max_line = 32;
		o.max_auth_line = 48;
	}
	if (data[0] & 0x80)
		o.max_auth_failures = 0;
	CHECK((f.srv = pop3d_new(f.base, &o)) != NULL);
	CHECK((f.observer = pop3d_consumer_add(f.srv, "observer", observer_cb, &f)) != 0);
	CHECK(pop3d_consumer_register(f.srv, f.observer, (data[1] & 0x04) ? ev_all : ev_observe,
		  (data[1] & 0x04) ? 1 : 2, NULL) == 0);
	CHECK(pop3d_plugin_add(f.srv, "observer", -2000000000, first_cb, &f) > 0);
	CHECK(pop3d_plugin_register(f.srv, "observer", ev_observe, 2, NULL) == 0);
	control_options_init(&co);
	co.path = sock_path;
	co.max_output = caps[data[1] & 3];
	f.ctl = control_new(f.srv, &co);
	CHECK(f.ctl != NULL);

	while (f.p < f.end && ops++ < MAX_OPS && f.turns < MAX_TURNS)
		op(&f);
	for (r = 0; r < 4; r++)
		turn(&f);
	if (data[0] & 0x10) {
		control_shutdown(f.ctl);
		pop3d_shutdown(f.srv);
		for (r = 0; r < 4; r++)
			turn(&f);
	}

	/* Everybody goes; the loop runs, deadlines pass, until it settles. */
	TRACE("end: everybody goes\n");
	for (i = 0; i < NCLI; i++)
		cli_close(&f, i, 0);
	for (i = 0; i < NCTL; i++)
		ctl_depart(&f, i, 0);
	for (r = 0; r < 6; r++) {
		int t;

		for (t = 0; t < 4; t++)
			turn(&f);
		fire_all_clients(&f);
		fire_hooks(&f, 0, 1);
	}
	for (r = 0; r < 4; r++)
		turn(&f);

	if (!TAILQ_EMPTY(&f.srv->clients) || !TAILQ_EMPTY(&f.ctl->controllers) ||
	    !TAILQ_EMPTY(&f.ctl->pending)) {
		report_left(&f);
		bad = 1;
	}
	CHECK(TAILQ_EMPTY(&f.srv->clients));
	CHECK(TAILQ_EMPTY(&f.ctl->controllers));
	CHECK(TAILQ_EMPTY(&f.ctl->pending));
	/* No suspended job is left in the pipeline (hook ids are a counter
	 * of the pipeline: the last ones may never have reached a reader). */
	for (h = 1; h <= f.max_hook + 64; h++)
		if (pop3d_hook_pending(f.srv, h)) {
			fprintf(errf, "fuzz_lifecycle: hook %llu still pending\n",
			    (unsigned long long)h);
			CHECK(!pop3d_hook_pending(f.srv, h));
		}
	for (i = 1; i < MAX_IDS; i++) {
		/* What the core emitted: one pop3d_disconnected for each
		 * pop3d_connection (consumers may miss either: eaten). */
		if (f.pconn[i] && !f.pdisc[i]) {
			fprintf(errf,
			    "fuzz_lifecycle: client %d: pop3d_connection without "
			    "pop3d_disconnected\n",
			    i);
			bad = 1;
		}
	}
	CHECK(!bad);

	control_free(f.ctl);
	pop3d_free(f.srv);
	event_base_free(f.base);
	for (i = 0; i < NCTL; i++) {
		free(f.k[i].in);
		free(f.k[i].out);
	}
	return 0;
}
