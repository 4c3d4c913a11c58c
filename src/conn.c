/* conn.c - one client socket's bytes: raw I/O or TLS, output, back-pressure. */
/*
 * Raw I/O for plain TCP, a bufferevent under TLS, the output queue,
 * back-pressure, and cutting a connection (conn_kill).  What happens on the socket is reported to the connection's owner
 * through one callback (srv->conn_cb: readable, drained, EOF, TLS up,
 * failed before READY); conn.c calls nothing above it.

 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "server.h"

static void conn_read_cb(struct bufferevent *, void *);
static void conn_write_cb(struct bufferevent *, void *);
static void conn_event_cb(struct bufferevent *, short, void *);
static void conn_io_cb(evutil_socket_t, short, void *);
static void conn_flush(struct client *);

/* Set up the server's flush queue (raw clients' output is written from it). */
static void conn_flush_run(struct timers_entry *, void *);
int
conn_init(struct pop3d *srv)
{
	return timers_deferq_init(&srv->flushq, srv->base, 1, conn_flush_run, srv);
}

/* Set a bufferevent's callbacks and limits (implicit TLS, STLS). */
static void
conn_bev_setup(struct client *c, struct bufferevent *b)
{
	bufferevent_setcb(b, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(b, EV_READ, 0, c->srv->opts.input_high);
	bufferevent_setwatermark(b, EV_WRITE, CLIENT_WRITE_LOW, 0);
	bufferevent_set_max_single_write(b, CLIENT_MAX_WRITE);
}

/* Attach I/O to a new client's socket: raw, or a bufferevent for the
 * OpenSSL filter of an implicit-TLS listener.  -1 when out of memory. */
int
conn_open(struct client *c)
{
	if (c->implicit_tls) {
		/* The OpenSSL filter needs a bufferevent under it from the start. */
		if ((c->bev = bufferevent_socket_new(c->srv->base, c->fd, BEV_OPT_CLOSE_ON_FREE)) ==
		    NULL)
			return -1;
		conn_bev_setup(c, c->bev);
	} else
		event_assign(&c->ev_io, c->srv->base, c->fd, 0, conn_io_cb, c);
	return 0;
}

/* What a raw client's ev_io waits for: reading while wanted and the input
 * is under its cap, writing while the kernel refused output. */
static void
conn_io_update(struct client *c)
{
	short want = 0;

	if (c->bev != NULL)
		return;
	if (!c->dead) {
		if (c->rd_on &&
		    (c->in == NULL || evbuffer_get_length(c->in) < c->srv->opts.input_high))
			want |= EV_READ;
		if (c->wr_on)
			want |= EV_WRITE;
	}
	if (want == c->io_have)
		return;
	if (c->io_have != 0)
		event_del(&c->ev_io);
	c->io_have = want;
	if (want != 0) {
		event_assign(&c->ev_io, c->srv->base, c->fd, want | EV_PERSIST, conn_io_cb, c);
		event_add(&c->ev_io, NULL);
	}
}

/* Start or stop reading (what bufferevent_enable/disable(EV_READ) do). */
void
conn_read_set(struct client *c, int on)
{
	if (c->bev != NULL) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->rd_on = on ? 1 : 0;
	conn_io_update(c);
}

/* Whether reading is on. */
static int
conn_reading(struct client *c)
{
	if (c->bev != NULL)
		return (bufferevent_get_enabled(c->bev) & EV_READ) != 0;
	return c->rd_on;
}

/* Buffered input, or NULL when a raw client has none. */
struct evbuffer *
conn_peek_input(struct client *c)
{
	return c->bev != NULL ? bufferevent_get_input(c->bev) : c->in;
}

/* The input buffer, made when first needed. */
struct evbuffer *
conn_input(struct client *c)
{
	if (c->bev != NULL)
		return bufferevent_get_input(c->bev);
	if (c->in == NULL && (c->in = pool_evbuffer_get(c->srv)) == NULL) {
		conn_kill(c, "out of memory");
		evbuffer_drain(c->srv->sink, evbuffer_get_length(c->srv->sink));
		return c->srv->sink;
	}
	return c->in;
}

/*
 * The output buffer, made when first needed.  Every append goes through
 * here, so this is where a raw client is queued for a direct write.
 * Direct writes: a socket bufferevent never writes at once (appending
 * arms EPOLLOUT, the next loop iteration writes, and the emptied buffer
 * disarms it - two epoll_ctl calls and a loop iteration per response).
 * A raw client's output appended during a loop iteration queues it on
 * srv->flushq instead, and one active event writes every queued client's
 * output before the loop polls again (several pipelined answers in one
 * write).  Only a short write arms EV_WRITE, until all is written.
 */
struct evbuffer *
conn_output(struct client *c)
{
	struct pop3d *srv = c->srv;

	if (c->bev != NULL)
		return bufferevent_get_output(c->bev);
	if (c->out == NULL && (c->out = pool_evbuffer_get(srv)) == NULL) {
		conn_kill(c, "out of memory");
		evbuffer_drain(srv->sink, evbuffer_get_length(srv->sink));
		return srv->sink;
	}
	if (!c->wr_on && !c->dead)
		timers_defer(&srv->flushq, &c->tflush);
	return c->out;
}

/* Octets in our output buffer. */
static size_t
conn_outlen(struct client *c)
{
	if (c->bev != NULL)
		return evbuffer_get_length(bufferevent_get_output(c->bev));
	return c->out != NULL ? evbuffer_get_length(c->out) : 0;
}

/* A raw client keeps no empty buffers: an idle client costs no more than
 * its struct; then reading resumes if the input was at its cap. */
void
conn_trim(struct client *c)
{
	if (c->bev != NULL)
		return;
	if (c->in != NULL && evbuffer_get_length(c->in) == 0) {
		pool_evbuffer_put(c->srv, c->in);
		c->in = NULL;
	}
	conn_io_update(c);
}

/* A raw client is readable: one read(2) into the shared buffer (no FIONREAD
 * round trip), then the PROXY header or the command lines. */
static void
conn_raw_read(struct client *c)
{
	struct pop3d *srv = c->srv;
	size_t have = c->in != NULL ? evbuffer_get_length(c->in) : 0;
	ssize_t n;

	if (have >= srv->opts.input_high) {
		conn_io_update(c);
		return;
	}
	n = read(c->fd, srv->rbuf, srv->opts.input_high - have);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_kill(c, "read error");
		return;
	}
	if (n == 0) {
		c->eof = 1;
		c->rd_on = 0;
		conn_io_update(c);
		srv->conn_cb(c, CONN_EOF, NULL);
		conn_trim(c);
		return;
	}
	if (have == 0 && c->phase != CLIENT_PROXY && !c->processing && srv->span_owner == NULL) {
		/*
		 * Nothing buffered: the lines are parsed where they were read,
		 * and only what is left (an incomplete line, or the lines
		 * behind a command in flight) is copied into the client's
		 * buffer.  rbuf is not read into again before this returns:
		 * reads happen only in this event callback.
		 */
		srv->span_owner = c;
		srv->span = srv->rbuf;
		srv->spanlen = (size_t)n;
		srv->conn_cb(c, CONN_READ, NULL);
		srv->span_owner = NULL;
		if (srv->spanlen > 0 && !c->dead &&
		    evbuffer_add(conn_input(c), srv->span, srv->spanlen) == -1)
			conn_kill(c, "out of memory");
		srv->spanlen = 0;
	} else {
		if (evbuffer_add(conn_input(c), srv->rbuf, (size_t)n) == -1) {
			conn_kill(c, "out of memory");
			return;
		}
		srv->conn_cb(c, CONN_READ, NULL);
	}
	conn_trim(c);
}

/* ev_io of a raw client. */
static void
conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	if (c->dead)
		return;
	if (what & EV_WRITE) {
		conn_flush(c);
		if (c->dead)
			return;
	}
	if (what & EV_READ)
		conn_raw_read(c);
}

/* Stop reading while the client's backlog is over the high-water mark. */
void
conn_backpressure(struct client *c)
{
	size_t out = conn_outlen(c);

	if (c->dead || c->closing || c->eof)
		return;
	if (out > c->srv->opts.output_high)
		conn_read_set(c, 0);
	else if (!conn_reading(c))
		conn_read_set(c, 1);
}

/* Append one line and its CRLF to the output: the wire, no hooks. */
void
conn_write(struct client *c, const char *line, size_t len)
{
	struct evbuffer *out = conn_output(c);
	char tmp[256];

	/* One append for a short line and its CRLF. */
	if (len <= sizeof(tmp) - 2) {
		memcpy(tmp, line, len);
		memcpy(tmp + len, "\r\n", 2);
		evbuffer_add(out, tmp, len + 2);
	} else {
		evbuffer_add(out, line, len);
		evbuffer_add(out, "\r\n", 2);
	}
	if (c->ungreeted) {
		c->ungreeted = 0;
		timers_defer(&c->srv->deferq, &c->tdefer);
	}
}

/*
 * Cut a client now: no more I/O, no timers, out of the limits, logged,
 * pop3d_disconnected sent (or when its last suspended job ends), and
 * queued: session.c frees it from the defer queue, the only place.  Any
 * file may kill the client it works for and then touch it until it
 * returns to the loop.
 */
void
conn_kill(struct client *c, const char *reason)
{
	struct pop3d *srv = c->srv;

	if (c->dead)
		return;
	c->dead = 1;
	if (c->reason == NULL || !c->closing)
		c->reason = reason;
	if (c->stream_fd >= 0) {
		close(c->stream_fd);
		c->stream_fd = -1;
	}
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	else {
		c->rd_on = c->wr_on = 0;
		conn_io_update(c); /* dead: off */
	}
	timers_del(&srv->idleq, &c->tidle);
	timers_del(&srv->respq, &c->tresp);
	timers_del(&srv->phaseq, &c->tphase);
	if (c->ev_delay != NULL)
		evtimer_del(c->ev_delay);
	table_retire(srv, c);
	log_info("client=%llu event=disconnect reason=\"%s\" duration=%llds commands=%llu",
	    (unsigned long long)c->id, c->reason, (long long)(time(NULL) - c->connected),
	    (unsigned long long)c->ncmds);
	/* Its events waiting on verdicts end now, so pop3d_disconnected does
	 * not wait for a plugin (the last job's end sends it). */
	if (c->jobs > 0)
		events_cancel_client(srv, c->id);
	events_disconnected(c);
	timers_defer(&srv->deferq, &c->tdefer);
}

/* Everything owed is on the wire (or in the kernel). */
int
conn_flushed(struct client *c)
{
	struct bufferevent *u;

	/* What output.c holds back (output_busy) is owed too. */
	if (c->stream_fd >= 0 || c->hooking || c->delayed != NULL || !TAILQ_EMPTY(&c->outq) ||
	    conn_outlen(c) > 0)
		return 0;
	/* Under TLS the records wait in the underlying bufferevent, and a
	 * closing client gets close_notify last (strict clients want it). */
	if (c->tls && (u = bufferevent_get_underlying(c->bev)) != NULL) {
		if (evbuffer_get_length(bufferevent_get_output(u)) == 0) {
			SSL *ssl;

			if (!c->closing || c->tls_closed || c->eof ||
			    (ssl = bufferevent_openssl_get_ssl(c->bev)) == NULL)
				return 1;
			c->tls_closed = 1;
			if (SSL_shutdown(ssl) < 0)
				ERR_clear_error();
			if (evbuffer_get_length(bufferevent_get_output(u)) == 0)
				return 1;
		}
		/* Nobody tells us when it drains: look again shortly. */
		timers_add(&c->srv->phaseq, &c->tphase, timers_now() + 20);
		return 0;
	}
	return 1;
}

/* The bufferevent has input. */
static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	(void)bev;
	c->srv->conn_cb(c, CONN_READ, NULL);
}

/* Wrap the connection in TLS (implicit TLS, or after STLS). */
void
conn_tls_start(struct client *c)
{
	struct pop3d *srv = c->srv;
	struct bufferevent *f;
	SSL *ssl;

	if ((ssl = tls_session(&srv->tls)) == NULL) {
		conn_kill(c, "no tls context");
		return;
	}
	if (c->bev == NULL) {
		/*
		 * STLS on a raw client: a socket bufferevent takes the socket
		 * for the filter to sit on, and the +OK still queued goes out
		 * first.  Input left over was discarded by session_stls.
		 */
		struct bufferevent *b;

		if ((b = bufferevent_socket_new(srv->base, c->fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
			SSL_free(ssl);
			conn_kill(c, "tls setup failed");
			return;
		}
		c->rd_on = c->wr_on = 0;
		conn_io_update(c);
		timers_undefer(&srv->flushq, &c->tflush);
		if (c->out != NULL) {
			evbuffer_add_buffer(bufferevent_get_output(b), c->out);
			evbuffer_free(c->out);
			c->out = NULL;
		}
		if (c->in != NULL) {
			evbuffer_free(c->in);
			c->in = NULL;
		}
		c->bev = b;
	}
	f = bufferevent_openssl_filter_new(srv->base, c->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL) {
		SSL_free(ssl);
		conn_kill(c, "tls setup failed");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	c->bev = f;
	c->phase = CLIENT_HANDSHAKE;
	conn_bev_setup(c, f);
	timers_add(&srv->phaseq, &c->tphase,
	    timers_now() + (int64_t)srv->opts.tls_handshake_timeout * 1000);
	bufferevent_enable(f, EV_READ | EV_WRITE);
}

/* The bufferevent wrote below the low-water mark. */
static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	(void)bev;
	c->srv->conn_cb(c, CONN_DRAINED, NULL);
}

/* Write a raw client's output now; EV_WRITE for what the kernel refused.
 * The output buffer is freed once empty. */
static void
conn_flush(struct client *c)
{
	int rounds;

	if (c->bev != NULL)
		return;
	/* A streamed file refills as it drains: a few rounds at most, then
	 * the socket is full or the loop gets its turn. */
	for (rounds = 0;
	     rounds < 8 && !c->dead && c->out != NULL && evbuffer_get_length(c->out) > 0;
	     rounds++) {
		int n = evbuffer_write_atmost(c->out, c->fd, -1);

		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			conn_kill(c, "write error");
			return;
		}
		if (n == 0 || evbuffer_get_length(c->out) >= CLIENT_WRITE_LOW)
			break;
		c->srv->conn_cb(c, CONN_DRAINED, NULL);
	}
	if (c->dead)
		return;
	c->wr_on = conn_outlen(c) > 0;
	if (!c->wr_on && c->out != NULL) {
		pool_evbuffer_put(c->srv, c->out);
		c->out = NULL;
	}
	conn_io_update(c);
}

/* A client of srv->flushq: its output is written.  The queue is sticky:
 * the client stays marked, what conn_flush appends it writes itself. */
static void
conn_flush_run(struct timers_entry *e, void *arg)
{
	(void)arg;
	conn_flush(TIMERS_OWNER(e, struct client, tflush));
}

/* The bufferevent's events: handshake done, EOF, errors. */
static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (c->dead)
		return;
	if ((what & BEV_EVENT_CONNECTED) && c->phase == CLIENT_HANDSHAKE) {
		c->srv->conn_cb(c, CONN_TLS_UP, NULL);
		return;
	}
	if (c->phase != CLIENT_READY && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		unsigned long e = bufferevent_get_openssl_error(c->bev);
		char buf[256] = "";

		if (e != 0)
			ERR_error_string_n(e, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "%s",
			    (what & BEV_EVENT_EOF) ? "closed" : "error");
		c->srv->conn_cb(c, CONN_FAILED, buf);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->eof = 1;
		c->srv->conn_cb(c, CONN_EOF, NULL);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		conn_kill(c, (what & BEV_EVENT_WRITING) ? "write error" : "read error");
}

/*
 * Octets owed to the client: our buffers plus the kernel's send queue.  A
 * slow reader drains the kernel queue long before the socket turns
 * writable again, so the queue is what shows its progress.
 */
size_t
conn_backlog(struct client *c)
{
	size_t out = conn_outlen(c);
	struct bufferevent *u = c->bev != NULL ? bufferevent_get_underlying(c->bev) : NULL;
	int queued = 0;

	if (u != NULL)
		out += evbuffer_get_length(bufferevent_get_output(u));
	if (ioctl(c->fd, TIOCOUTQ, &queued) == 0 && queued > 0)
		out += (size_t)queued;
	return out;
}

/* Close the client's socket and free its buffers (session_destroy). */
void
conn_free(struct client *c)
{
	struct pop3d *srv = c->srv;
	int linger;

	/* A close of ours while the peer may still send: its socket lingers
	 * so that what it is owed is not lost to a reset (linger.h). */
	linger = c->closing && !c->eof && !srv->freeing;
	if (c->bev != NULL) {
		int fd = linger ? fcntl(c->fd, F_DUPFD_CLOEXEC, 0) : -1;

		bufferevent_free(c->bev);
		if (fd >= 0)
			linger_close(&srv->lingerq, fd);
	} else {
		if (c->io_have != 0)
			event_del(&c->ev_io);
		if (linger)
			linger_close(&srv->lingerq, c->fd);
		else
			close(c->fd);
		if (c->in != NULL)
			pool_evbuffer_put(srv, c->in);
		if (c->out != NULL)
			pool_evbuffer_put(srv, c->out);
	}
}
