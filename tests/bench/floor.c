/*
 * floor.c - the "floor" of the benchmarks: the fastest single-threaded
 * libevent POP3 responder we can write, answering from memory with the
 * same answers as the other set-ups (benchmsg.h) and no controller.
 *
 *   floor --port N [--address A] [--max-clients N]
 *
 * Every response is precomputed at start-up (RETR of the 10 MB message
 * included, dot-stuffed), so a command costs a parse and a writev of
 * static memory.  Responses to the complete lines of one read go out in
 * one writev.  A connection owns a 256-octet input buffer (RFC 1939 lines
 * are at most 255 octets with CRLF), a raw event and its state; a partial
 * write allocates a small vector of what is left.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "benchmsg.h"

#define FLOOR_LINE 256
#define FLOOR_BATCH 16

struct resp {
	const char *p;
	size_t len;
};

/* Every answer, as static text. */
static struct {
	struct resp stat[3], list[3], uidl[3], retr[3][BENCH_SMALL_MSGS + 1];
	struct resp listn[3][BENCH_SMALL_MSGS + 1], uidln[3][BENCH_SMALL_MSGS + 1];
} R;
static struct bench_mailbox boxes[3];

#define S(s) \
	{ \
		s, sizeof(s) - 1 \
	}
static const struct resp r_greeting = S("+OK floor POP3 server ready\r\n");
static const struct resp r_ok = S("+OK\r\n");
static const struct resp r_user = S("+OK send PASS\r\n");
static const struct resp r_pass = S("+OK logged in\r\n");
static const struct resp r_badlogin = S("-ERR [AUTH] invalid login\r\n");
static const struct resp r_nouser = S("-ERR USER first\r\n");
static const struct resp r_first = S("-ERR log in first\r\n");
static const struct resp r_already = S("-ERR already logged in\r\n");
static const struct resp r_nomsg = S("-ERR no such message\r\n");
static const struct resp r_unknown = S("-ERR unknown command\r\n");
static const struct resp r_bye = S("+OK bye\r\n");
static const struct resp r_toolong = S("-ERR line too long\r\n");

struct conn {
	struct event ev;
	int fd;
	unsigned char userbox, box, closing, writing;
	unsigned short inlen;
	struct iovec *pend; /* what a partial write left */
	int npend, ipend;
	char in[FLOOR_LINE];
};

static struct event_base *base;
static unsigned nclients, max_clients = 100000;

static void conn_cb(evutil_socket_t, short, void *);

static void
conn_free(struct conn *c)
{
	event_del(&c->ev);
	close(c->fd);
	free(c->pend);
	free(c);
	nclients--;
}

static void
conn_want(struct conn *c, int writing)
{
	if (c->writing == writing)
		return;
	event_del(&c->ev);
	event_assign(&c->ev, base, c->fd, (writing ? EV_WRITE : EV_READ) | EV_PERSIST, conn_cb, c);
	event_add(&c->ev, NULL);
	c->writing = (unsigned char)writing;
}

/* Write iov[0..n) as far as the socket takes it.  Returns the index of
 * the first entry not fully written (n: all), adjusting that entry, or -1
 * on error. */
static int
write_some(int fd, struct iovec *iov, int n)
{
	ssize_t w;
	int i = 0;

	while (i < n) {
		w = writev(fd, iov + i, n - i > 64 ? 64 : n - i);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return i;
			return -1;
		}
		while (i < n && (size_t)w >= iov[i].iov_len) {
			w -= (ssize_t)iov[i].iov_len;
			i++;
		}
		if (i < n && w > 0) {
			iov[i].iov_base = (char *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	return n;
}

/* The answer to one command line (NUL-terminated, no CRLF). */
static struct resp
answer(struct conn *c, char *line)
{
	char *arg = strchr(line, ' ');
	size_t vlen;
	int n;

	if (arg != NULL)
		*arg++ = '\0';
	vlen = strlen(line);
	if (vlen != 4)
		return r_unknown;
#define IS(v) (strncasecmp(line, v, 4) == 0)
	if (IS("NOOP"))
		return c->box ? r_ok : r_first;
	if (IS("QUIT")) {
		c->closing = 1;
		return r_bye;
	}
	if (IS("USER")) {
		if (c->box)
			return r_already;
		c->userbox = arg != NULL ? (unsigned char)bench_user_box(arg, strlen(arg)) : 0;
		return r_user;
	}
	if (IS("PASS")) {
		if (c->box)
			return r_already;
		if (!c->userbox)
			return r_nouser;
		if (arg == NULL || strcmp(arg, BENCH_PASSWORD) != 0)
			return r_badlogin;
		c->box = c->userbox;
		return r_pass;
	}
	if (!IS("STAT") && !IS("LIST") && !IS("UIDL") && !IS("RETR") && !IS("RSET"))
		return r_unknown;
	if (!c->box)
		return r_first;
	if (IS("STAT"))
		return R.stat[c->box];
	if (IS("RSET"))
		return r_ok;
	if (IS("LIST") || IS("UIDL")) {
		if (arg == NULL)
			return IS("LIST") ? R.list[c->box] : R.uidl[c->box];
		if ((n = bench_msgno(arg, boxes[c->box].n)) < 0)
			return r_nomsg;
		return IS("LIST") ? R.listn[c->box][n] : R.uidln[c->box][n];
	}
	if ((n = bench_msgno(arg, boxes[c->box].n)) < 0)
		return r_nomsg;
	return R.retr[c->box][n];
#undef IS
}

/* Answer the complete lines in the input, FLOOR_BATCH at a time, while
 * nothing is pending. */
static int
conn_process(struct conn *c)
{
	struct iovec iov[FLOOR_BATCH];
	int n, k;

	while (c->pend == NULL && !c->closing) {
		size_t start = 0, i;

		n = 0;
		for (i = 0; i < c->inlen && n < FLOOR_BATCH && !c->closing; i++) {
			if (c->in[i] != '\n')
				continue;
			{
				size_t e = i;
				struct resp r;

				if (e > start && c->in[e - 1] == '\r')
					e--;
				c->in[e] = '\0';
				r = answer(c, c->in + start);
				iov[n].iov_base = (void *)(uintptr_t)r.p;
				iov[n].iov_len = r.len;
				n++;
				start = i + 1;
			}
		}
		if (start > 0) {
			memmove(c->in, c->in + start, c->inlen - start);
			c->inlen = (unsigned short)(c->inlen - start);
		} else if (c->inlen == sizeof(c->in)) {
			iov[0].iov_base = (void *)(uintptr_t)r_toolong.p;
			iov[0].iov_len = r_toolong.len;
			n = 1;
			c->closing = 1;
		}
		if (n == 0)
			break;
		if ((k = write_some(c->fd, iov, n)) < 0)
			return -1;
		if (k < n) {
			if ((c->pend = malloc((size_t)(n - k) * sizeof(*c->pend))) == NULL)
				return -1;
			memcpy(c->pend, iov + k, (size_t)(n - k) * sizeof(*c->pend));
			c->npend = n - k;
			c->ipend = 0;
		}
	}
	if (c->pend != NULL) {
		conn_want(c, 1);
		return 0;
	}
	if (c->closing)
		return -1; /* everything is out: close */
	conn_want(c, 0);
	return 0;
}

static void
conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t r;

	(void)fd;
	if (what & EV_WRITE) {
		int k = write_some(c->fd, c->pend + c->ipend, c->npend - c->ipend);

		if (k < 0) {
			conn_free(c);
			return;
		}
		c->ipend += k;
		if (c->ipend < c->npend)
			return;
		free(c->pend);
		c->pend = NULL;
		if (conn_process(c) == -1)
			conn_free(c);
		return;
	}
	r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
		conn_free(c);
		return;
	}
	if (r < 0)
		return;
	c->inlen = (unsigned short)(c->inlen + r);
	if (conn_process(c) == -1)
		conn_free(c);
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	int i;

	(void)what;
	(void)arg;
	for (i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd == -1)
			return;
		if (nclients >= max_clients || (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		nclients++;
		c->fd = fd;
		event_assign(&c->ev, base, fd, EV_READ | EV_PERSIST, conn_cb, c);
		event_add(&c->ev, NULL);
		if (write(fd, r_greeting.p, r_greeting.len) != (ssize_t)r_greeting.len)
			conn_free(c);
	}
}

/* Precompute every answer of a mailbox. */
static void
prepare(enum bench_box box)
{
	struct bench_mailbox *mb = &boxes[box];
	char buf[256];
	int i, n;

	if (bench_mailbox_make(mb, box, 1, 0) == -1) {
		fprintf(stderr, "floor: out of memory\n");
		exit(1);
	}
	n = snprintf(buf, sizeof(buf), "+OK %d %zu\r\n", mb->n, mb->total);
	R.stat[box].p = strdup(buf);
	R.stat[box].len = (size_t)n;
	n = snprintf(buf, sizeof(buf), "+OK %d messages (%zu octets)\r\n", mb->n, mb->total);
	for (i = 0; i < mb->n; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%d %zu\r\n", i + 1,
		    mb->msg[i].octets);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".\r\n");
	R.list[box].p = strdup(buf);
	R.list[box].len = (size_t)n;
	n = snprintf(buf, sizeof(buf), "+OK\r\n");
	for (i = 0; i < mb->n; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%d %s\r\n", i + 1, mb->msg[i].uid);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".\r\n");
	R.uidl[box].p = strdup(buf);
	R.uidl[box].len = (size_t)n;
	for (i = 0; i < mb->n; i++) {
		n = snprintf(buf, sizeof(buf), "+OK %d %zu\r\n", i + 1, mb->msg[i].octets);
		R.listn[box][i + 1].p = strdup(buf);
		R.listn[box][i + 1].len = (size_t)n;
		n = snprintf(buf, sizeof(buf), "+OK %d %s\r\n", i + 1, mb->msg[i].uid);
		R.uidln[box][i + 1].p = strdup(buf);
		R.uidln[box][i + 1].len = (size_t)n;
		R.retr[box][i + 1].p = mb->msg[i].wire;
		R.retr[box][i + 1].len = mb->msg[i].wirelen;
	}
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopexit(base, NULL);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "address", required_argument, NULL, 'a' },
		{ "max-clients", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *address = "127.0.0.1";
	struct sockaddr_in sin;
	struct event *lev, *sigs[2];
	int port = 1110, ch, fd, one = 1;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'a':
			address = optarg;
			break;
		case 'm':
			max_clients = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr,
			    "usage: floor [--port N] [--address A] [--max-clients N]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	prepare(BENCH_BOX_SMALL);
	prepare(BENCH_BOX_BIG);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, address, &sin.sin_addr) != 1) {
		fprintf(stderr, "floor: %s: not an IPv4 address\n", address);
		return 2;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(fd, 4096) == -1) {
		perror("floor: listen");
		return 1;
	}
	if ((base = event_base_new()) == NULL)
		return 1;
	lev = event_new(base, fd, EV_READ | EV_PERSIST, accept_cb, NULL);
	event_add(lev, NULL);
	sigs[0] = evsignal_new(base, SIGTERM, stop_cb, NULL);
	sigs[1] = evsignal_new(base, SIGINT, stop_cb, NULL);
	event_add(sigs[0], NULL);
	event_add(sigs[1], NULL);
	fprintf(stderr, "floor: listening on %s:%d pid %ld\n", address, port, (long)getpid());
	event_base_dispatch(base);
	event_free(lev);
	event_free(sigs[0]);
	event_free(sigs[1]);
	event_base_free(base);
	close(fd);
	return 0;
}
