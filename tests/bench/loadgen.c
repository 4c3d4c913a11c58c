/*
 * loadgen.c - POP3 load generator for the benchmarks (libevent, one thread).
 *
 *   loadgen session --port N [--conns C] [--duration S]
 *   loadgen noop    --port N [--conns C] [--pipeline K] [--duration S]
 *   loadgen retr    --port N [--conns C] [--duration S]
 *   loadgen idle    --port N --conns C [--hold | --duration S]
 *   loadgen write-messages DIR
 *
 * Every response is checked: the status (+OK expected everywhere), the
 * multi-line terminator, LIST sizes and UIDL numbering against the
 * mailboxes of benchmsg.h, and the unstuffed octet count of each RETR
 * against the message size.  Errors are counted and the first few are
 * printed on stderr; the connection is then closed and started again.
 *
 * session: C connections each loop connect, greeting, USER, PASS, STAT,
 *   LIST, UIDL, RETR 1 (about 2 KB), QUIT, server close.  Users benchN.
 * noop:    C logged-in connections send NOOP with K in flight each.
 * retr:    C logged-in connections (users bigN) loop RETR 1 of 10 MB.
 * idle:    C logged-in connections that do nothing.  When all are logged
 *   in, {"event":"ready"} is printed; then (--hold) a line on standard
 *   input or (otherwise) --duration seconds, then every connection sends
 *   NOOP and the ones answering are counted as alive.
 *
 * A run warms up for --warmup seconds, prints {"event":"measure-start"},
 * measures for --duration seconds and prints one JSON line of results.
 * --linger: then keep the connections until a line (or EOF) on standard
 * input, so that whoever samples the servers finds them as they were.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "benchmsg.h"

enum mode { M_SESSION, M_NOOP, M_RETR, M_IDLE };
static const char *const mode_names[] = { "session", "noop", "retr", "idle" };

enum state {
	S_CONNECT,
	S_GREET,
	S_USER,
	S_PASS,
	S_STAT,
	S_LIST,
	S_UIDL,
	S_RETR,
	S_QUIT,
	S_EOF,
	S_NOOP,
	S_IDLE,
	S_VERIFY,
	S_DONE
};
static const char *const state_names[] = { "connect", "greeting", "USER", "PASS", "STAT", "LIST",
	"UIDL", "RETR", "QUIT", "close", "NOOP", "idle", "verify-NOOP", "done" };

/* What the bytes that arrive are. */
enum expect { X_LINE, X_MULTI, X_BODY, X_EOF };

#define MAX_PIPELINE 32
#define LINE_MAX_LEN 1024

struct conn {
	struct event ev;
	int fd;
	int idx;
	enum state st;
	enum expect x;
	int evflags;		     /* current event flags */
	int status_seen;	     /* multi-line: the status line was read */
	int mlines;		     /* multi-line: lines read */
	int bol, dots;		     /* body scanner: at line start; ".", ".\r" seen */
	int lastcr;		     /* body scanner: the previous octet was CR */
	unsigned gen;		     /* bumped by each connect */
	size_t octets;		     /* body scanner: unstuffed octets */
	uint64_t t0;		     /* session or command start */
	uint64_t last;		     /* last progress (stall detection) */
	uint64_t sent[MAX_PIPELINE]; /* NOOP send times, a ring */
	int shead, stail, inflight;
	size_t llen;
	size_t olen, ooff;
	char out[256];
	char line[LINE_MAX_LEN];
};

static struct {
	enum mode mode;
	const char *host;
	int port;
	int conns;
	int pipeline;
	double duration, warmup, timeout;
	const char *prefix;
	int user_base;
	int hold;
	int linger;
	int connect_batch;
	const char *label;
} opt = { M_SESSION, "127.0.0.1", 110, 16, 1, 5.0, 0.5, 10.0, NULL, 0, 0, 0, 256, "" };

static struct event_base *base;
static struct sockaddr_in server;
static struct conn *conns;
static struct bench_mailbox small, big;
static char rbuf[256 * 1024];

/* Measurement. */
static int measuring, finished;
static uint64_t t_measure0, t_measure1;
static struct rusage ru0;
static uint64_t wait0;
static uint64_t ops, bytes, errors, reconnects;
static char first_error[512];
static uint64_t *lat; /* nanoseconds */
static size_t nlat, caplat;

/* Idle mode. */
static int logged_in, connecting, next_conn, alive, verifying, ready_sent, verify_started;
static uint64_t t_start;
static struct event *ev_stdin, *ev_verify_to;

static void conn_cb(evutil_socket_t, short, void *);
static void conn_start(struct conn *);
static void idle_check(void);
static void idle_report(void);

static void
lat_add(uint64_t ns)
{
	if (nlat == caplat) {
		size_t cap = caplat ? caplat * 2 : 65536;
		uint64_t *n = realloc(lat, cap * sizeof(*n));

		if (n == NULL)
			return;
		lat = n;
		caplat = cap;
	}
	lat[nlat++] = ns;
}

static void err_at(struct conn *, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (!finished && c->st == S_DONE && c->fd < 0)
		conn_start(c);
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		event_del(&c->ev);
		close(c->fd);
		c->fd = -1;
	}
}

/* Count an error, close, and start over (not while verifying idlers). */
static void
err_at(struct conn *c, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!finished) {
		errors++;
		if (errors <= 5)
			fprintf(stderr, "loadgen: conn %d, %s: %s\n", c->idx, state_names[c->st],
			    msg);
		if (first_error[0] == '\0')
			snprintf(first_error, sizeof(first_error), "conn %d, %s: %s", c->idx,
			    state_names[c->st], msg);
	}
	conn_close(c);
	if (opt.mode == M_IDLE) {
		if (c->st == S_VERIFY)
			verifying--;
		else if (c->st == S_IDLE)
			logged_in--;
		else if (c->st < S_NOOP)
			connecting--;
		if (ready_sent) {
			/* A lost idler is not replaced: it is not alive. */
			c->st = S_DONE;
			idle_check();
			return;
		}
	}
	if (!finished) {
		reconnects++;
		if (c->st <= S_GREET) {
			/* Refused or closed at once: do not spin, retry in 10 ms. */
			struct timeval tv = { 0, 10000 };

			c->st = S_DONE;
			event_base_once(base, -1, EV_TIMEOUT, restart_cb, c, &tv);
			return;
		}
		c->st = S_DONE;
		conn_start(c);
	} else
		c->st = S_DONE;
}

static void
conn_events(struct conn *c, int flags)
{
	if (c->evflags == flags)
		return;
	event_del(&c->ev);
	event_assign(&c->ev, base, c->fd, flags | EV_PERSIST, conn_cb, c);
	event_add(&c->ev, NULL);
	c->evflags = flags;
}

static void
conn_flush(struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t w = write(c->fd, c->out + c->ooff, c->olen - c->ooff);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			err_at(c, "write: %s", strerror(errno));
			return;
		}
		c->ooff += (size_t)w;
	}
	if (c->ooff == c->olen) {
		c->ooff = c->olen = 0;
		conn_events(c, EV_READ);
	} else
		conn_events(c, EV_READ | EV_WRITE);
}

static void send_cmd(struct conn *, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
send_cmd(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->out + c->olen, sizeof(c->out) - c->olen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(c->out) - c->olen) {
		err_at(c, "command too long");
		return;
	}
	c->olen += (size_t)n;
	conn_flush(c);
}

static void
conn_start(struct conn *c)
{
	int fd, one = 1;

	c->st = S_CONNECT;
	c->gen++;
	c->x = X_LINE;
	c->llen = c->olen = c->ooff = 0;
	c->inflight = c->shead = c->stail = 0;
	c->t0 = c->last = bench_now_ns();
	if (opt.mode == M_IDLE)
		connecting++;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		c->fd = -1;
		err_at(c, "socket: %s", strerror(errno));
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->evflags = EV_WRITE;
	event_assign(&c->ev, base, fd, EV_WRITE | EV_PERSIST, conn_cb, c);
	event_add(&c->ev, NULL);
	if (connect(fd, (struct sockaddr *)&server, sizeof(server)) == -1 && errno != EINPROGRESS)
		err_at(c, "connect: %s", strerror(errno));
}

static void
login_done(struct conn *c)
{
	int i;

	switch (opt.mode) {
	case M_SESSION:
		c->st = S_STAT;
		send_cmd(c, "STAT\r\n");
		break;
	case M_NOOP:
		c->st = S_NOOP;
		for (i = 0; i < opt.pipeline; i++) {
			c->sent[c->stail] = bench_now_ns();
			c->stail = (c->stail + 1) % MAX_PIPELINE;
			c->inflight++;
		}
		for (i = 0; i < opt.pipeline; i++)
			memcpy(c->out + c->olen + 6 * (size_t)i, "NOOP\r\n", 6);
		c->olen += 6 * (size_t)opt.pipeline;
		conn_flush(c);
		break;
	case M_RETR:
		c->st = S_RETR;
		c->x = X_LINE;
		c->t0 = bench_now_ns();
		send_cmd(c, "RETR 1\r\n");
		break;
	case M_IDLE:
		c->st = S_IDLE;
		connecting--;
		logged_in++;
		idle_check();
		break;
	}
}

/* A multi-line response is complete. */
static int
multi_done(struct conn *c)
{
	uint64_t now = bench_now_ns();

	switch (c->st) {
	case S_LIST:
		if (c->mlines != small.n) {
			err_at(c, "LIST: %d lines, expected %d", c->mlines, small.n);
			return -1;
		}
		c->st = S_UIDL;
		send_cmd(c, "UIDL\r\n");
		return 0;
	case S_UIDL:
		if (c->mlines != small.n) {
			err_at(c, "UIDL: %d lines, expected %d", c->mlines, small.n);
			return -1;
		}
		c->st = S_RETR;
		send_cmd(c, "RETR 1\r\n");
		return 0;
	case S_RETR:
		if (opt.mode == M_SESSION) {
			if (c->octets != small.msg[0].octets) {
				err_at(c, "RETR 1: %zu octets, expected %zu", c->octets,
				    small.msg[0].octets);
				return -1;
			}
			c->st = S_QUIT;
			send_cmd(c, "QUIT\r\n");
			return 0;
		}
		if (c->octets != big.msg[0].octets) {
			err_at(c, "RETR 1: %zu octets, expected %zu", c->octets, big.msg[0].octets);
			return -1;
		}
		if (measuring) {
			ops++;
			bytes += c->octets;
			lat_add(now - c->t0);
		}
		c->t0 = now;
		send_cmd(c, "RETR 1\r\n");
		return 0;
	default:
		err_at(c, "unexpected multi-line response");
		return -1;
	}
}

/* One line of a multi-line response (after its status line). */
static int
multi_line(struct conn *c, const char *line, size_t len)
{
	unsigned long n;
	char *end;

	if (len == 1 && line[0] == '.') {
		c->x = X_LINE;
		return multi_done(c);
	}
	c->mlines++;
	n = strtoul(line, &end, 10);
	if (n != (unsigned long)c->mlines || *end != ' ') {
		err_at(c, "bad listing line \"%.*s\"", (int)len, line);
		return -1;
	}
	if (c->st == S_LIST &&
	    (c->mlines > small.n ||
		strtoul(end + 1, NULL, 10) != small.msg[c->mlines - 1].octets)) {
		err_at(c, "LIST line \"%.*s\": wrong size", (int)len, line);
		return -1;
	}
	return 0;
}

/* A status line (or the greeting). */
static int
status_line(struct conn *c, const char *line, size_t len)
{
	uint64_t now = bench_now_ns();

	if (len < 3 || memcmp(line, "+OK", 3) != 0 || (len > 3 && line[3] != ' ')) {
		err_at(c, "\"%.*s\"", (int)(len > 200 ? 200 : len), line);
		return -1;
	}
	switch (c->st) {
	case S_GREET:
		c->st = S_USER;
		send_cmd(c, "USER %s%d\r\n", opt.prefix, opt.user_base + c->idx);
		return 0;
	case S_USER:
		c->st = S_PASS;
		send_cmd(c, "PASS %s\r\n", BENCH_PASSWORD);
		return 0;
	case S_PASS:
		login_done(c);
		return 0;
	case S_STAT: {
		unsigned long n, total;

		if (sscanf(line, "+OK %lu %lu", &n, &total) != 2 || n != (unsigned long)small.n ||
		    total != small.total) {
			err_at(c, "STAT: \"%.*s\", expected %d %zu", (int)len, line, small.n,
			    small.total);
			return -1;
		}
		c->st = S_LIST;
		send_cmd(c, "LIST\r\n");
		return 0;
	}
	case S_LIST:
	case S_UIDL:
		c->x = X_MULTI;
		c->mlines = 0;
		return 0;
	case S_RETR:
		c->x = X_BODY;
		c->bol = 1;
		c->dots = 0;
		c->lastcr = 0;
		c->octets = 0;
		return 0;
	case S_QUIT:
		c->st = S_EOF;
		c->x = X_EOF;
		return 0;
	case S_NOOP:
		if (c->inflight == 0) {
			err_at(c, "response without a command");
			return -1;
		}
		if (measuring) {
			ops++;
			lat_add(now - c->sent[c->shead]);
		}
		c->shead = (c->shead + 1) % MAX_PIPELINE;
		c->inflight--;
		c->sent[c->stail] = now;
		c->stail = (c->stail + 1) % MAX_PIPELINE;
		c->inflight++;
		memcpy(c->out + c->olen, "NOOP\r\n", 6);
		c->olen += 6;
		/* Flushed once per read, after every line of it. */
		return 0;
	case S_VERIFY:
		alive++;
		c->st = S_DONE;
		verifying--;
		idle_check();
		return 0;
	default:
		err_at(c, "unexpected line \"%.*s\"", (int)(len > 200 ? 200 : len), line);
		return -1;
	}
}

/* Scan body bytes: unstuff, count, find the terminator.  Returns the
 * bytes used; c->x becomes X_LINE after the terminator. */
static size_t
body_scan(struct conn *c, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (c->bol) {
			if (c->dots == 0) {
				if (p[i] == '.') {
					c->dots = 1;
					i++;
					continue;
				}
				c->bol = 0;
			} else if (c->dots == 1) {
				c->lastcr = 0;
				if (p[i] == '\r') {
					c->dots = 2;
					i++;
					continue;
				}
				/* A stuffed line: the dot goes, the line stays. */
				c->dots = 0;
				c->bol = 0;
			} else {
				if (p[i] != '\n') {
					err_at(c, "\".\\r\" not followed by LF in the body");
					return n;
				}
				i++;
				c->x = X_LINE;
				c->dots = 0;
				if (multi_done(c) == -1)
					return n;
				return i;
			}
		} else {
			const char *e = memchr(p + i, '\n', n - i);

			if (e == NULL) {
				c->octets += n - i;
				c->lastcr = p[n - 1] == '\r';
				i = n;
			} else {
				size_t k = (size_t)(e - (p + i)) + 1;

				if (e > p + i ? e[-1] != '\r' : !c->lastcr) {
					err_at(c, "bare LF in the body");
					return n;
				}
				c->octets += k;
				i += k;
				c->bol = 1;
				c->lastcr = 0;
			}
		}
	}
	return i;
}

static void
feed(struct conn *c, const char *p, size_t n)
{
	unsigned gen = c->gen;

	while (n > 0 && c->gen == gen && c->fd >= 0) {
		const char *e;
		size_t take, len;

		if (c->x == X_BODY) {
			size_t used = body_scan(c, p, n);

			p += used;
			n -= used;
			continue;
		}
		if (c->x == X_EOF) {
			err_at(c, "data after the QUIT answer");
			return;
		}
		e = memchr(p, '\n', n);
		take = e != NULL ? (size_t)(e - p) + 1 : n;
		if (c->llen + take > sizeof(c->line)) {
			err_at(c, "line longer than %zu octets", sizeof(c->line));
			return;
		}
		memcpy(c->line + c->llen, p, take);
		c->llen += take;
		p += take;
		n -= take;
		if (e == NULL)
			break;
		len = c->llen;
		c->llen = 0;
		if (len < 2 || c->line[len - 2] != '\r') {
			err_at(c, "line without CRLF");
			return;
		}
		len -= 2;
		if (c->x == X_MULTI) {
			if (multi_line(c, c->line, len) == -1)
				return;
		} else if (status_line(c, c->line, len) == -1)
			return;
	}
	if (c->gen == gen && c->fd >= 0 && c->olen > c->ooff)
		conn_flush(c);
}

static void
conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t r;

	(void)fd;
	if (c->st == S_CONNECT) {
		int e = 0;
		socklen_t el = sizeof(e);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) == -1 || e != 0) {
			err_at(c, "connect: %s", strerror(e ? e : errno));
			return;
		}
		c->st = S_GREET;
		conn_events(c, EV_READ);
		return;
	}
	if (what & EV_WRITE) {
		conn_flush(c);
		if (c->fd < 0 || !(what & EV_READ))
			return;
	}
	r = read(c->fd, rbuf, sizeof(rbuf));
	if (r == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		err_at(c, "read: %s", strerror(errno));
		return;
	}
	c->last = bench_now_ns();
	if (r == 0) {
		if (c->st == S_EOF) {
			/* A whole session. */
			if (measuring) {
				ops++;
				lat_add(c->last - c->t0);
			}
			conn_close(c);
			conn_start(c);
			return;
		}
		err_at(c, "connection closed by the server");
		return;
	}
	feed(c, rbuf, (size_t)r);
}

/* Connections that make no progress for --timeout seconds are errors. */
static void
stall_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = bench_now_ns(), lim = (uint64_t)(opt.timeout * 1e9);
	int i;

	(void)fd;
	(void)what;
	(void)arg;
	if (opt.mode == M_IDLE && !ready_sent && now - t_start > (uint64_t)120 * 1000000000u) {
		/* The set-up never completed: report what there is. */
		fprintf(stderr, "loadgen: only %d of %d connections logged in after 120 s\n",
		    logged_in, opt.conns);
		finished = 1;
		t_measure0 = now;
		idle_report();
		event_base_loopbreak(base);
		return;
	}
	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || c->st == S_IDLE || c->st == S_DONE)
			continue;
		if (now - c->last > lim && now - c->t0 > lim)
			err_at(c, "no progress for %.0f s", opt.timeout);
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	size_t i;

	if (nlat == 0)
		return 0;
	i = (size_t)(p * (double)(nlat - 1) + 0.5);
	return (double)lat[i] / 1000.0;
}

/* Nanoseconds this process waited runnable for a CPU (Linux schedstat). */
static uint64_t
sched_wait(void)
{
	unsigned long long run, wait = 0;
	FILE *f = fopen("/proc/self/schedstat", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu", &run, &wait) != 2)
		wait = 0;
	fclose(f);
	return wait;
}

static double
tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void
report(void)
{
	struct rusage ru1;
	double secs = (double)(t_measure1 - t_measure0) / 1e9, cpu, sys, wait;

	getrusage(RUSAGE_SELF, &ru1);
	wait = (double)(sched_wait() - wait0) / 1e9;
	sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
	cpu = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime) + sys;
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("{\"mode\":\"%s\",\"label\":", mode_names[opt.mode]);
	json_str(stdout, opt.label);
	printf(",\"conns\":%d,\"pipeline\":%d,\"duration_s\":%.3f,\"ops\":%" PRIu64
	       ",\"rate\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"bytes\":%" PRIu64
	       ",\"mb_s\":%.2f,\"errors\":%" PRIu64 ",\"reconnects\":%" PRIu64
	       ",\"loadgen_cpu_s\":%.3f,\"loadgen_sys_s\":%.3f,\"loadgen_util\":%.3f"
	       ",\"loadgen_wait\":%.3f,\"first_error\":",
	    opt.conns, opt.pipeline, secs, ops, secs > 0 ? (double)ops / secs : 0.0, pct(0.50),
	    pct(0.99), bytes, secs > 0 ? (double)bytes / secs / 1e6 : 0.0, errors, reconnects, cpu,
	    sys, secs > 0 ? cpu / secs : 0.0, secs > 0 ? wait / secs : 0.0);
	json_str(stdout, first_error);
	printf("}\n");
	fflush(stdout);
}

static void
measure_start_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	measuring = 1;
	t_measure0 = bench_now_ns();
	getrusage(RUSAGE_SELF, &ru0);
	wait0 = sched_wait();
	printf("{\"event\":\"measure-start\"}\n");
	fflush(stdout);
}

static void
measure_end_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	measuring = 0;
	t_measure1 = bench_now_ns();
	finished = 1;
	report();
	event_base_loopbreak(base);
}

/* --- idle mode ----------------------------------------------------------- */

static void
idle_report(void)
{
	printf("{\"mode\":\"idle\",\"label\":");
	json_str(stdout, opt.label);
	printf(",\"conns\":%d,\"logged_in\":%d,\"alive\":%d,\"setup_s\":%.3f,\"errors\":%" PRIu64
	       ",\"reconnects\":%" PRIu64 ",\"first_error\":",
	    opt.conns, logged_in, alive, (double)(t_measure0 - t_start) / 1e9, errors, reconnects);
	json_str(stdout, first_error);
	printf("}\n");
	fflush(stdout);
}

static void
verify_done(void)
{
	finished = 1;
	idle_report();
	event_base_loopbreak(base);
}

static void
verify_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	verify_done();
}

/* Every idler sends NOOP; the ones answering +OK are alive. */
static void
verify_start(void)
{
	struct timeval tv = { 30, 0 };
	int i;

	if (verify_started || finished)
		return;
	verify_started = 1;
	if (ev_stdin != NULL)
		event_del(ev_stdin);
	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || c->st != S_IDLE)
			continue;
		c->st = S_VERIFY;
		c->t0 = c->last = bench_now_ns();
		verifying++;
		send_cmd(c, "NOOP\r\n");
	}
	if (verifying == 0) {
		verify_done();
		return;
	}
	ev_verify_to = evtimer_new(base, verify_timeout_cb, NULL);
	evtimer_add(ev_verify_to, &tv);
}

static void
hold_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];

	(void)what;
	(void)arg;
	if (fd >= 0 && read(fd, buf, sizeof(buf)) < 0 && errno == EAGAIN)
		return;
	verify_start();
}

/* Progress of the idle set-up: more connects, or ready. */
static void
idle_check(void)
{
	if (opt.mode != M_IDLE || finished)
		return;
	if (ready_sent) {
		if (verify_started && verifying == 0)
			verify_done();
		return;
	}
	while (next_conn < opt.conns && connecting < opt.connect_batch)
		conn_start(&conns[next_conn++]);
	if (logged_in == opt.conns) {
		ready_sent = 1;
		t_measure0 = bench_now_ns();
		printf("{\"event\":\"ready\",\"conns\":%d,\"setup_s\":%.3f}\n", logged_in,
		    (double)(t_measure0 - t_start) / 1e9);
		fflush(stdout);
		if (opt.hold) {
			fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
			ev_stdin = event_new(base, 0, EV_READ, hold_cb, NULL);
			event_add(ev_stdin, NULL);
		} else {
			struct timeval tv;

			tv.tv_sec = (time_t)opt.duration;
			tv.tv_usec = (suseconds_t)((opt.duration - (double)tv.tv_sec) * 1e6);
			event_base_once(base, -1, EV_TIMEOUT, hold_cb, NULL, &tv);
		}
	}
}

/* --- messages for the Maildir set-ups --------------------------------------- */

static int
write_file(const char *dir, const char *name, const struct bench_msg *m)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL || fwrite(m->text, 1, m->len, f) != m->len ||
	    fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

static int
write_messages(const char *dir)
{
	char name[32];
	int i;

	mkdir(dir, 0755);
	for (i = 0; i < small.n; i++) {
		snprintf(name, sizeof(name), "small%d.eml", i + 1);
		if (write_file(dir, name, &small.msg[i]) == -1)
			return 1;
	}
	if (write_file(dir, "big1.eml", &big.msg[0]) == -1)
		return 1;
	printf("{\"small\":[%zu,%zu,%zu],\"small_total\":%zu,\"big\":[%zu]}\n", small.msg[0].octets,
	    small.msg[1].octets, small.msg[2].octets, small.total, big.msg[0].octets);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen session|noop|retr|idle [--host A] [--port N] [--conns C]\n"
	    "               [--pipeline K] [--duration S] [--warmup S] [--timeout S]\n"
	    "               [--user-prefix P] [--user-base N] [--hold] [--linger]\n"
	    "               [--connect-batch N]\n"
	    "               [--label TEXT]\n"
	    "       loadgen write-messages DIR\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "conns", required_argument, NULL, 'c' },
		{ "pipeline", required_argument, NULL, 'k' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "user-prefix", required_argument, NULL, 'u' },
		{ "user-base", required_argument, NULL, 'b' },
		{ "hold", no_argument, NULL, 'H' },
		{ "linger", no_argument, NULL, 'L' },
		{ "connect-batch", required_argument, NULL, 'B' },
		{ "label", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct rlimit rl;
	struct event *ev_stall;
	struct timeval tv;
	int ch, i;

	if (argc < 2)
		usage();
	if (bench_mailbox_make(&small, BENCH_BOX_SMALL, 0, 0) == -1 ||
	    bench_mailbox_make(&big, BENCH_BOX_BIG, 0, 0) == -1) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	if (strcmp(argv[1], "write-messages") == 0) {
		if (argc != 3)
			usage();
		return write_messages(argv[2]);
	}
	for (i = 0; i < 4; i++)
		if (strcmp(argv[1], mode_names[i]) == 0)
			opt.mode = (enum mode)i;
	if (i == 4 && strcmp(argv[1], mode_names[opt.mode]) != 0)
		usage();
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			opt.host = optarg;
			break;
		case 'p':
			opt.port = atoi(optarg);
			break;
		case 'c':
			opt.conns = atoi(optarg);
			break;
		case 'k':
			opt.pipeline = atoi(optarg);
			break;
		case 'd':
			opt.duration = atof(optarg);
			break;
		case 'w':
			opt.warmup = atof(optarg);
			break;
		case 't':
			opt.timeout = atof(optarg);
			break;
		case 'u':
			opt.prefix = optarg;
			break;
		case 'b':
			opt.user_base = atoi(optarg);
			break;
		case 'H':
			opt.hold = 1;
			break;
		case 'L':
			opt.linger = 1;
			break;
		case 'B':
			opt.connect_batch = atoi(optarg);
			break;
		case 'l':
			opt.label = optarg;
			break;
		default:
			usage();
		}
	}
	if (opt.conns < 1 || opt.pipeline < 1 || opt.pipeline > MAX_PIPELINE || opt.duration <= 0 ||
	    opt.connect_batch < 1)
		usage();
	if (opt.prefix == NULL)
		opt.prefix = opt.mode == M_RETR ? "big" : "bench";
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&server, 0, sizeof(server));
	server.sin_family = AF_INET;
	server.sin_port = htons((uint16_t)opt.port);
	if (inet_pton(AF_INET, opt.host, &server.sin_addr) != 1) {
		fprintf(stderr, "loadgen: %s: not an IPv4 address\n", opt.host);
		return 2;
	}
	if ((base = event_base_new()) == NULL ||
	    (conns = calloc((size_t)opt.conns, sizeof(*conns))) == NULL)
		return 1;
	for (i = 0; i < opt.conns; i++) {
		conns[i].idx = i;
		conns[i].fd = -1;
		conns[i].st = S_DONE;
	}
	t_start = bench_now_ns();
	tv.tv_sec = 1;
	tv.tv_usec = 0;
	ev_stall = event_new(base, -1, EV_PERSIST, stall_cb, NULL);
	event_add(ev_stall, &tv);
	if (opt.mode == M_IDLE) {
		idle_check();
	} else {
		for (i = 0; i < opt.conns; i++)
			conn_start(&conns[i]);
		tv.tv_sec = (time_t)opt.warmup;
		tv.tv_usec = (suseconds_t)((opt.warmup - (double)tv.tv_sec) * 1e6);
		event_base_once(base, -1, EV_TIMEOUT, measure_start_cb, NULL, &tv);
		tv.tv_sec = (time_t)(opt.warmup + opt.duration);
		tv.tv_usec = (suseconds_t)((opt.warmup + opt.duration - (double)tv.tv_sec) * 1e6);
		event_base_once(base, -1, EV_TIMEOUT, measure_end_cb, NULL, &tv);
	}
	event_base_dispatch(base);
	if (opt.linger) {
		/* Keep the connections until told: the harness samples the
		 * servers' CPU after the report, while they still exist. */
		char buf[64];

		fcntl(0, F_SETFL, fcntl(0, F_GETFL) & ~O_NONBLOCK);
		if (fgets(buf, sizeof(buf), stdin) == NULL)
			buf[0] = '\0';
	}
	return 0;
}
