/*
 * linger.c - lingering close of client sockets: the FIN after the output,
 * input dropped, the close once the peer has everything (see linger.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "linger.h"

struct lingering {
	TAILQ_ENTRY(lingering) entry;
	struct lingerq *q;
	int fd;
	struct event *ev;
	time_t deadline; /* monotonic seconds */
};

/* How often a lingering socket is looked at when it sends nothing. */
#define LINGER_POLL_MS 100

static time_t
linger_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void
linger_init(struct lingerq *q, struct event_base *base)
{
	q->base = base;
	TAILQ_INIT(&q->list);
	q->n = 0;
}

/* Read and drop what the peer sent; 1 when it closed or failed. */
static int
linger_drain(int fd)
{
	char buf[16384];
	int i;

	for (i = 0; i < 64; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		return 1;
	}
	return 0;
}

/* 1 when the peer has acknowledged everything we sent. */
static int
linger_sent(int fd)
{
	int queued = 0;

	return ioctl(fd, TIOCOUTQ, &queued) == -1 || queued == 0;
}

static void
linger_done(struct lingering *l)
{
	TAILQ_REMOVE(&l->q->list, l, entry);
	l->q->n--;
	event_free(l->ev);
	close(l->fd);
	free(l);
}

/* Readable, or the poll interval passed. */
static void
linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lingering *l = arg;

	(void)what;
	if (linger_drain(fd) || linger_sent(fd) || linger_now() >= l->deadline)
		linger_done(l);
}

void
linger_close(struct lingerq *q, int fd)
{
	struct timeval tv = { 0, LINGER_POLL_MS * 1000 };
	struct lingering *l;

	(void)shutdown(fd, SHUT_WR);
	if (linger_drain(fd) || linger_sent(fd) || q->n >= LINGER_MAX ||
	    (l = calloc(1, sizeof(*l))) == NULL) {
		close(fd);
		return;
	}
	l->q = q;
	l->fd = fd;
	l->deadline = linger_now() + LINGER_SECONDS;
	if ((l->ev = event_new(q->base, fd, EV_READ | EV_PERSIST, linger_cb, l)) == NULL ||
	    event_add(l->ev, &tv) == -1) {
		if (l->ev != NULL)
			event_free(l->ev);
		free(l);
		close(fd);
		return;
	}
	TAILQ_INSERT_TAIL(&q->list, l, entry);
	q->n++;
}

void
linger_free_all(struct lingerq *q)
{
	struct lingering *l;

	while ((l = TAILQ_FIRST(&q->list)) != NULL)
		linger_done(l);
}
