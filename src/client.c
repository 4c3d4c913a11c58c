/*
 * client.c - one POP3 client connection: framing, the one-command-in-flight
 * rule, responses, file streaming, back-pressure, timeouts and closing.
 *
 * A client is only ever freed from the server's defer queue, never inside a
 * libevent or pipeline callback, so every handler may close or kill the
 * client it is running for.  Callers across async boundaries look clients up
 * by id (server_client_find) and get NULL once a client is dead.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "mask.h"
#include "server.h"

static void client_read_cb(struct bufferevent *, void *);
static void client_write_cb(struct bufferevent *, void *);
static void client_event_cb(struct bufferevent *, short, void *);
static void client_io_cb(evutil_socket_t, short, void *);
static void client_process(struct client *);
static void client_proxy_read(struct client *);
static void client_touch(struct client *);
static void client_touch_at(struct client *, int64_t);
static void client_idle_start(struct client *);
static void client_idle_stop(struct client *);
static void client_resp_arm(struct client *);
static void client_resp_disarm(struct client *);
static void client_phase_arm(struct client *, const struct timeval *);
static void client_phase_disarm(struct client *);
static void client_phase_cb(evutil_socket_t, short, void *);
static void client_tls_start(struct client *);
static void client_drained(struct client *);
static void client_flush(struct client *);

/* Numeric host and port of a socket address; IPv4-mapped IPv6 as IPv4. */
static void
client_addr(const struct sockaddr *sa, socklen_t len, char *host, size_t hlen, int *port)
{
	char serv[16];
	const char *h = host;

	if (getnameinfo(sa, len, host, (socklen_t)hlen, serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, hlen, "unknown");
		*port = 0;
		return;
	}
	if (strncmp(h, "::ffff:", 7) == 0 && strchr(h + 7, '.') != NULL)
		memmove(host, h + 7, strlen(h + 7) + 1);
	*port = atoi(serv);
}

/* verb == lit, deciding on the first letter for most verbs: several
 * such tests run for every command. */
static inline int
client_verb_is(const char *verb, const char *lit)
{
	return verb[0] == lit[0] && strcmp(verb, lit) == 0;
}

/* Set the client's numeric addresses, both in addrbuf (IPv4 always fits)
 * or in one allocation: an idle client should not carry two 64-octet
 * arrays for "127.0.0.1".  0 or -1. */
static int
client_set_addrs(struct client *c, const char *peer, const char *local)
{
	size_t pl = strlen(peer), ll = strlen(local);
	char *p = c->addrbuf;

	if (pl + ll + 2 > sizeof(c->addrbuf) && (p = malloc(pl + ll + 2)) == NULL)
		return -1;
	memmove(p, peer, pl + 1);
	memmove(p + pl + 1, local, ll + 1);
	if (c->peer != NULL && c->peer != c->addrbuf && c->peer != p)
		free(c->peer);
	c->peer = p;
	c->local = p + pl + 1;
	return 0;
}

/*
 * Client structures come from slabs of CLIENT_SLAB, kept for reuse: an
 * idle client then lies among other clients, not among the short-lived
 * buffers of the commands around the time it connected (which left a
 * fifth of the heap as holes).  The slabs are freed with the server.
 * Under AddressSanitizer every client is a malloc of its own, so that a
 * use after free is still caught.
 */
#define CLIENT_SLAB 32
#if defined(__SANITIZE_ADDRESS__)
#define CLIENT_NO_POOL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CLIENT_NO_POOL 1
#endif
#endif

struct client_slab {
	struct client_slab *next;
	struct client c[CLIENT_SLAB];
};

static struct client *
client_alloc(struct pop3d *srv)
{
#ifdef CLIENT_NO_POOL
	return calloc(1, sizeof(struct client));
#else
	struct client *c;
	size_t i;

	if (srv->cfree == NULL) {
		struct client_slab *sl = malloc(sizeof(*sl));

		if (sl == NULL)
			return NULL;
		sl->next = srv->slabs;
		srv->slabs = sl;
		for (i = 0; i < CLIENT_SLAB; i++) {
			sl->c[i].hnext = srv->cfree;
			srv->cfree = &sl->c[i];
		}
	}
	c = srv->cfree;
	srv->cfree = c->hnext;
	memset(c, 0, sizeof(*c));
	return c;
#endif
}

static void
client_release(struct pop3d *srv, struct client *c)
{
#ifdef CLIENT_NO_POOL
	(void)srv;
	free(c);
#else
	c->hnext = srv->cfree;
	srv->cfree = c;
#endif
}

/* The server is going: every client is released by now. */
void
client_slabs_free(struct pop3d *srv)
{
	struct client_slab *sl;

	while ((sl = srv->slabs) != NULL) {
		srv->slabs = sl->next;
		free(sl);
	}
	srv->cfree = NULL;
	while (srv->nevpool > 0)
		evbuffer_free(srv->evpool[--srv->nevpool]);
}

/*
 * Raw clients hold an input or output buffer only while it has data, so a
 * buffer is taken and given back for nearly every command; empty ones are
 * kept for the next client instead of freed and made again.
 */
static struct evbuffer *
client_evbuffer_get(struct pop3d *srv)
{
#ifndef CLIENT_NO_POOL
	if (srv->nevpool > 0)
		return srv->evpool[--srv->nevpool];
#else
	(void)srv;
#endif
	return evbuffer_new();
}

static void
client_evbuffer_put(struct pop3d *srv, struct evbuffer *b)
{
#ifndef CLIENT_NO_POOL
	if (srv->nevpool < SERVER_EVPOOL && evbuffer_get_length(b) == 0) {
		srv->evpool[srv->nevpool++] = b;
		return;
	}
#else
	(void)srv;
#endif
	evbuffer_free(b);
}

/* Refuse a connection over a limit without making it a client. */
static void
client_refuse(int fd, const char *why)
{
	static const char msg[] = "-ERR [SYS/TEMP] too many connections, try again later\r\n";

	(void)send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	log_info("event=refused reason=\"%s\"", why);
	close(fd);
}

/* Make a client from an accepted socket, or refuse it at a limit. */
struct client *
client_new(struct pop3d *srv, int fd, struct sockaddr *peer, socklen_t plen, int lflags,
    const struct pop3d_sockname *fixed)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	struct client *c = NULL;
	char host[64], local[64] = "";
	int port, local_port = 0;

	client_addr(peer, plen, host, sizeof(host), &port);
	if (srv->shutting_down) {
		close(fd);
		return NULL;
	}
	if (srv->opts.max_clients > 0 && srv->nclients >= srv->opts.max_clients) {
		client_refuse(fd, "max-clients");
		return NULL;
	}
	if (lflags & POP3D_LISTEN_PROXY) {
		/* Only trusted peers may speak for others; no greeting otherwise. */
		if (!proxy_cidr_match(srv->trusted, srv->ntrusted, peer)) {
			log_warnx("event=refused reason=\"untrusted proxy\" peer=%s", host);
			close(fd);
			return NULL;
		}
	} else if (server_addr_acquire(srv, host) == -1) {
		client_refuse(fd, "max-per-address");
		return NULL;
	}
	if ((c = client_alloc(srv)) == NULL)
		goto fail;
	c->lflags = lflags;
	c->fd = fd;
	c->implicit_tls = (lflags & POP3D_LISTEN_TLS) != 0;
	c->addr_counted = !(lflags & POP3D_LISTEN_PROXY);
	c->phase = (lflags & POP3D_LISTEN_PROXY) ? CLIENT_PROXY :
	    c->implicit_tls ? CLIENT_HANDSHAKE : CLIENT_READY;
	c->srv = srv;
	c->id = ++srv->next_client;
	c->stream_fd = -1;
	TAILQ_INIT(&c->outq);
	TAILQ_INIT(&c->ahead);
	if (fixed != NULL) {
		snprintf(local, sizeof(local), "%s", fixed->address);
		local_port = fixed->port;
	} else if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0)
		client_addr((struct sockaddr *)&ss, slen, local, sizeof(local), &local_port);
	if (client_set_addrs(c, host, local) == -1)
		goto fail;
	c->peer_port = port;
	c->local_port = local_port;
	/*
	 * No Nagle: output is already coalesced per loop iteration, and
	 * Nagle would hold the short tail of a long response (the last
	 * segment and its terminator) until the client's delayed ACK, 40 ms
	 * later on Linux - a stall at the end of every RETR.
	 */
	if (peer->sa_family == AF_INET || peer->sa_family == AF_INET6) {
		int one = 1;

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	c->connected = time(NULL);
	c->last_active = server_now();
	line_init(&c->lf);
	if (c->implicit_tls) {
		/* The OpenSSL filter needs a bufferevent under it from the start. */
		if ((c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL)
			goto fail;
		bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
		bufferevent_setwatermark(c->bev, EV_READ, 0, srv->opts.input_high);
		bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_WRITE_LOW, 0);
		bufferevent_set_max_single_write(c->bev, CLIENT_MAX_WRITE);
	} else
		event_assign(&c->ev_io, srv->base, fd, 0, client_io_cb, c);
	server_client_link(srv, c);
	return c;
fail:
	if (!(lflags & POP3D_LISTEN_PROXY))
		server_addr_release(srv, host);
	if (c != NULL) {
		if (c->peer != c->addrbuf)
			free(c->peer);
		client_release(srv, c);
	}
	close(fd);
	return NULL;
}

/* --- I/O: raw for plain TCP, a bufferevent under TLS ------------------- */

/* What a raw client's ev_io waits for: reading while wanted and the input
 * is under its cap, writing while the kernel refused output. */
static void
client_io_update(struct client *c)
{
	short want = 0;

	if (c->bev != NULL)
		return;
	if (!c->dead) {
		if (c->rd_on && (c->in == NULL ||
		    evbuffer_get_length(c->in) < c->srv->opts.input_high))
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
		event_assign(&c->ev_io, c->srv->base, c->fd, want | EV_PERSIST, client_io_cb, c);
		event_add(&c->ev_io, NULL);
	}
}

/* Start or stop reading (what bufferevent_enable/disable(EV_READ) do). */
static void
client_read_set(struct client *c, int on)
{
	if (c->bev != NULL) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->rd_on = on ? 1 : 0;
	client_io_update(c);
}

static int
client_reading(struct client *c)
{
	if (c->bev != NULL)
		return (bufferevent_get_enabled(c->bev) & EV_READ) != 0;
	return c->rd_on;
}

/* Buffered input, or NULL when a raw client has none. */
struct evbuffer *
client_peek_input(struct client *c)
{
	return c->bev != NULL ? bufferevent_get_input(c->bev) : c->in;
}

/* The input buffer, made when first needed. */
struct evbuffer *
client_input(struct client *c)
{
	if (c->bev != NULL)
		return bufferevent_get_input(c->bev);
	if (c->in == NULL && (c->in = client_evbuffer_get(c->srv)) == NULL) {
		client_kill(c, "out of memory");
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
client_output(struct client *c)
{
	struct pop3d *srv = c->srv;

	if (c->bev != NULL)
		return bufferevent_get_output(c->bev);
	if (c->out == NULL && (c->out = client_evbuffer_get(srv)) == NULL) {
		client_kill(c, "out of memory");
		evbuffer_drain(srv->sink, evbuffer_get_length(srv->sink));
		return srv->sink;
	}
	if (!c->flush_queued && !c->wr_on && !c->dead) {
		c->flush_queued = 1;
		TAILQ_INSERT_TAIL(&srv->flushq, c, fentry);
		event_active(srv->ev_flush, EV_TIMEOUT, 1);
	}
	return c->out;
}

/* Octets in our output buffer. */
size_t
client_outlen(struct client *c)
{
	if (c->bev != NULL)
		return evbuffer_get_length(bufferevent_get_output(c->bev));
	return c->out != NULL ? evbuffer_get_length(c->out) : 0;
}

/* A raw client keeps no empty buffers: an idle client costs no more than
 * its struct; then reading resumes if the input was at its cap. */
static void
client_io_trim(struct client *c)
{
	if (c->bev != NULL)
		return;
	if (c->in != NULL && evbuffer_get_length(c->in) == 0) {
		client_evbuffer_put(c->srv, c->in);
		c->in = NULL;
	}
	client_io_update(c);
}

/* New input is buffered: the PROXY header, or the command lines. */
static void
client_input_ready(struct client *c)
{
	if (c->phase == CLIENT_PROXY)
		client_proxy_read(c);
	else
		client_process(c);
}

/* A raw client is readable: one read(2) into the shared buffer (no FIONREAD
 * round trip), then the PROXY header or the command lines. */
static void
client_raw_read(struct client *c)
{
	struct pop3d *srv = c->srv;
	size_t have = c->in != NULL ? evbuffer_get_length(c->in) : 0;
	ssize_t n;

	if (have >= srv->opts.input_high) {
		client_io_update(c);
		return;
	}
	n = read(c->fd, srv->rbuf, srv->opts.input_high - have);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		client_kill(c, "read error");
		return;
	}
	if (n == 0) {
		c->eof = 1;
		c->rd_on = 0;
		client_io_update(c);
		if (c->phase == CLIENT_PROXY) {
			log_info("client=%llu event=proxy-failed error=\"closed\"",
			    (unsigned long long)c->id);
			client_kill(c, "closed before proxy header");
			return;
		}
		if (!c->closing)
			client_process(c);
		if (!c->dead)
			client_io_trim(c);
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
		client_process(c);
		srv->span_owner = NULL;
		if (srv->spanlen > 0 && !c->dead &&
		    evbuffer_add(client_input(c), srv->span, srv->spanlen) == -1)
			client_kill(c, "out of memory");
		srv->spanlen = 0;
	} else {
		if (evbuffer_add(client_input(c), srv->rbuf, (size_t)n) == -1) {
			client_kill(c, "out of memory");
			return;
		}
		if (c->dead)
			return;
		client_input_ready(c);
	}
	if (!c->dead)
		client_io_trim(c);
}

/* ev_io of a raw client. */
static void
client_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	if (c->dead)
		return;
	if (what & EV_WRITE) {
		client_flush(c);
		if (c->dead)
			return;
	}
	if (what & EV_READ)
		client_raw_read(c);
}

/* A new connection: the PROXY header, the TLS handshake, or the greeting. */
void
client_begin(struct client *c)
{
	struct timeval tv = { (time_t)c->srv->opts.proxy_timeout, 0 };

	log_info("client=%llu event=connect peer=%s:%d local=%s:%d",
	    (unsigned long long)c->id, c->peer, c->peer_port, c->local, c->local_port);
	if (c->phase == CLIENT_PROXY) {
		client_phase_arm(c, &tv);
		client_read_set(c, 1);
	} else if (c->phase == CLIENT_HANDSHAKE)
		client_tls_start(c);
	else
		client_start(c);
}

/* Announce the client (the greeting plugin answers), then start reading. */
void
client_start(struct client *c)
{
	struct pop3d_arg a[5];

	c->phase = CLIENT_READY;
	/*
	 * Without the core's greeting, a handler of pop3d_connection greets.
	 * Until some line has gone to the client its input is not parsed, so
	 * a greeting sent late can never be taken for a command's answer; with
	 * no such handler at all the client is told at once.
	 */
	if (!c->srv->opts.handle_connects) {
		if (!pipeline_has_handler(c->srv->pipeline, POP3D_PLUGIN_POP3D, "pop3d_connection")) {
			client_close(c, "no greeting handler",
			    "-ERR [SYS/TEMP] server not ready, try again later");
			return;
		}
		c->ungreeted = 1;
	}
	c->announced = 1;
	memset(a, 0, sizeof(a));
	a[0].type = POP3D_ARG_INT;
	a[0].i = (long long)c->id;
	a[1].type = POP3D_ARG_STR;
	a[1].s = c->peer;
	a[1].len = strlen(c->peer);
	a[2].type = POP3D_ARG_INT;
	a[2].i = c->peer_port;
	a[3].type = POP3D_ARG_STR;
	a[3].s = c->local;
	a[3].len = strlen(c->local);
	a[4].type = POP3D_ARG_INT;
	a[4].i = c->local_port;
	server_emit(c->srv, "pop3d_connection", c, a, 5);
	if (c->dead)
		return;
	client_idle_start(c);
	if (!c->closing)
		client_read_set(c, 1);
}

/* Stop reading while the client's backlog is over the high-water mark. */
static void
client_backpressure(struct client *c)
{
	size_t out = client_outlen(c);

	if (c->dead || c->closing || c->eof)
		return;
	if (out > c->srv->opts.output_high)
		client_read_set(c, 0);
	else if (!client_reading(c))
		client_read_set(c, 1);
}

/* A core response line (NUL-terminated) through the response path. */
static void
client_puts(struct client *c, const char *s)
{
	output_line(c, s, strlen(s), 0);
}

/* Append one line and its CRLF to the output: the wire, no hooks. */
void
client_write(struct client *c, const char *line, size_t len)
{
	struct evbuffer *out = client_output(c);
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
		client_defer(c);
	}
}

static void
client_free(struct client *c)
{
	server_client_unlink(c->srv, c);
	client_destroy(c);
}

/* Release a client's resources; no events, no table bookkeeping. */
void
client_destroy(struct client *c)
{
	struct pop3d *srv = c->srv;
	int linger;

	output_clear(c);
	if (c->flush_queued)
		TAILQ_REMOVE(&srv->flushq, c, fentry);
	if (c->defer_queued)
		TAILQ_REMOVE(&srv->deferq, c, dentry);
	client_idle_stop(c);
	client_resp_disarm(c);
	if (c->stream_fd >= 0)
		close(c->stream_fd);
	ahead_clear(c);
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
			client_evbuffer_put(srv, c->in);
		if (c->out != NULL)
			client_evbuffer_put(srv, c->out);
	}
	if (c->ev_phase != NULL)
		event_free(c->ev_phase);
	if (c->ev_delay != NULL)
		event_free(c->ev_delay);
	free(c->delayed);
	free(c->receivers);
	if (c->peer != c->addrbuf)
		free(c->peer);
	free(c->stream);
	client_release(srv, c);
}

/* pop3d_disconnected, once, after every suspended event of the client. */
static void
client_disconnected(struct client *c)
{
	struct pop3d_arg a;

	if (c->disconnected_sent || c->jobs > 0 || !c->announced)
		return;
	memset(&a, 0, sizeof(a));
	a.type = POP3D_ARG_INT;
	a.i = (long long)c->id;
	c->disconnected_sent = 1;
	server_emit(c->srv, "pop3d_disconnected", c, &a, 1);
}

/* The one place a client dies: emit pop3d_disconnected, free it later. */
void
client_kill(struct client *c, const char *reason)
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
		client_io_update(c);	/* dead: off */
	}
	client_idle_stop(c);
	client_resp_disarm(c);
	client_phase_disarm(c);
	if (c->ev_delay != NULL)
		evtimer_del(c->ev_delay);
	output_clear(c);
	ahead_clear(c);
	server_client_retire(srv, c);
	log_info("client=%llu event=disconnect reason=\"%s\" duration=%llds commands=%llu",
	    (unsigned long long)c->id, c->reason, (long long)(time(NULL) - c->connected),
	    (unsigned long long)c->ncmds);
	/* Its events waiting on verdicts end now, so pop3d_disconnected does
	 * not wait for a plugin (the last job's end sends it). */
	if (c->jobs > 0)
		server_client_cancel(srv, c->id);
	client_disconnected(c);
	client_defer(c);
}

/* Everything owed is on the wire (or in the kernel). */
int
client_flushed(struct client *c)
{
	struct bufferevent *u;

	if (c->stream_fd >= 0 || output_busy(c) || client_outlen(c) > 0)
		return 0;
	/* Under TLS the records wait in the underlying bufferevent, and a
	 * closing client gets close_notify last (strict clients want it). */
	if (c->tls && (u = bufferevent_get_underlying(c->bev)) != NULL) {
		struct timeval tv = { 0, 20000 };

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
		client_phase_arm(c, &tv);
		return 0;
	}
	return 1;
}

/* A hook said tempfail: held output is dropped; the client gets
 * -ERR [SYS/TEMP] and is closed, or, when part of a response is out
 * (TEMPFAIL_CUT, a stream, an open response), is closed after what is
 * written with no line inside that body.  A client closing already gets
 * the -ERR only if its last line was among the output dropped: one answer
 * per command. */
void
client_tempfail(struct client *c, int how)
{
	static const char msg[] = "-ERR [SYS/TEMP] server unavailable, try again later";
	int held;

	if (c->dead)
		return;
	held = output_clear(c) || (how & TEMPFAIL_LINE);
	c->hooking = 0;
	if ((how & TEMPFAIL_CUT) || c->stream_fd >= 0 || (c->inflight != 0 && c->open)) {
		if (c->stream_fd >= 0) {
			close(c->stream_fd);
			c->stream_fd = -1;
			c->stream_ready = 0;
		}
	} else if (!c->closing || held)
		client_write(c, msg, sizeof(msg) - 1);
	if (!c->closing)
		client_close(c, "hook tempfail", NULL);
	else if (client_flushed(c))
		client_kill(c, c->reason);
}

/* A suspended dispatch about this client finished. */
void
client_job_done(struct client *c, struct pop3d_event *ev, int flags)
{
	if (c->jobs > 0)
		c->jobs--;
	if (ev->type == POP3D_PLUGIN_POP3C)
		output_hook_done(c, ev, flags);
	else if ((flags & PIPELINE_TEMPFAIL) && !c->dead)
		client_tempfail(c, 0);
	if (c->dead) {
		client_disconnected(c);
		if (c->jobs == 0)
			client_defer(c);
		return;
	}
	if (c->closing && client_flushed(c)) {
		client_kill(c, c->reason);
		return;
	}
	client_backpressure(c);
	if (c->jobs == 0)
		client_defer(c);
}

/* Close after pending output is flushed; lastline (may be NULL) goes last. */
void
client_close(struct client *c, const char *reason, const char *lastline)
{
	if (c->dead || c->closing)
		return;
	c->closing = 1;
	c->reason = reason;
	client_resp_disarm(c);
	ahead_clear(c);		/* nothing further back is answered now */
	client_read_set(c, 0);
	if (lastline != NULL)
		output_line(c, lastline, strlen(lastline), 0);
	if (!c->dead && client_flushed(c))
		client_kill(c, reason);
}

/*
 * Commands dispatched ahead take their turn: the first becomes the head
 * and what its handlers sent meanwhile is replayed, which may complete it
 * and bring the next one.  One loop at a time (replaying completes).
 */
static void
client_promote(struct client *c)
{
	struct client_ahead *a;

	if (c->promoting)
		return;
	c->promoting = 1;
	while (!c->dead && !c->closing && c->inflight == 0 && (a = ahead_pop(c)) != NULL) {
		c->inflight = a->tag;
		memcpy(c->verb, a->verb, sizeof(c->verb));
		c->responded = 0;
		c->open = 0;
		c->plugin_saw = a->plugin_saw;
		free(c->receivers);
		c->receivers = a->receivers;
		c->nreceivers = a->nreceivers;
		c->receivers_cap = a->receivers_cap;
		a->receivers = NULL;
		client_resp_arm(c);
		ahead_replay(c, a);
		if (c->inflight == a->tag && !c->dead && !c->closing && !c->responded &&
		    c->nreceivers == 0 && !c->plugin_saw) {
			/* Every handler that received it went away meanwhile. */
			log_warnx("client=%llu event=handler-gone tag=%llu",
			    (unsigned long long)c->id, (unsigned long long)c->inflight);
			client_close(c, "handler went away",
			    "-ERR [SYS/TEMP] server unavailable, try again later");
		}
		ahead_free(a);
	}
	c->promoting = 0;
}

/* The current command's response is complete: move to the next line. */
static void
client_complete(struct client *c)
{
	int quit = client_verb_is(c->verb, "quit");

	c->inflight = 0;
	c->sasl = 0;
	c->open = 0;
	c->verb[0] = '\0';
	/* Freed, not kept: an idle client holds no receivers array. */
	free(c->receivers);
	c->receivers = NULL;
	c->nreceivers = c->receivers_cap = 0;
	client_resp_disarm(c);
	if (quit)
		client_close(c, "quit", NULL);
	else if (!c->dead) {
		client_promote(c);
		/* Answered while its lines are being parsed (a plugin answering
		 * during the dispatch): that loop goes on with the next line. */
		if (c->processing)
			c->process_again = 1;
		else
			client_defer(c);
	}
}

/* Mark the first line of a response; 1 when it answers PASS, APOP or AUTH
 * (a +OK there, as finally sent, moves the client to TRANSACTION). */
static int
client_first_line(struct client *c)
{
	if (c->inflight == 0 || c->responded)
		return 0;
	c->responded = 1;
	return client_verb_is(c->verb, "pass") || client_verb_is(c->verb, "apop") ||
	    client_verb_is(c->verb, "auth");
}

/* Common checks of every send: alive, tag current or dispatched ahead
 * (*ahead is then set: the send is recorded, not written). */
static int
client_check(struct client *c, uint64_t tag, struct client_ahead **ahead)
{
	*ahead = NULL;
	if (c->dead || c->closing)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (tag == 0 || tag == c->inflight)
		return 0;
	if ((*ahead = ahead_find(c, tag)) != NULL && !(*ahead)->complete)
		return 0;
	return -POP3D_ERR_STALE;
}

/* One data line, dot-stuffed, CRLF added. */
static void
client_stuff_line(struct evbuffer *body, const void *line, size_t len)
{
	if (len > 0 && *(const char *)line == '.')
		evbuffer_add(body, ".", 1);
	evbuffer_add(body, line, len);
	evbuffer_add(body, "\r\n", 2);
}

/* Data lines (first, when not NULL, then lines), and the terminator when
 * last is set, in a new buffer (NULL when out of memory). */
static struct evbuffer *
client_stuff_lines(const char *first, const struct iovec *lines, size_t n, int last)
{
	struct evbuffer *body;
	size_t i;

	if ((body = evbuffer_new()) == NULL)
		return NULL;
	if (first != NULL)
		client_stuff_line(body, first, strlen(first));
	for (i = 0; i < n; i++)
		client_stuff_line(body, lines[i].iov_base, lines[i].iov_len);
	if (last)
		evbuffer_add(body, ".\r\n", 3);
	return body;
}

/* Append data lines of an open response (and the terminator when last is
 * set): formatted bytes, never seen by POP3C plugins. */
static int
client_data_lines(struct client *c, const char *first, const struct iovec *lines, size_t n,
    int last)
{
	struct evbuffer *body;

	if ((body = client_stuff_lines(first, lines, n, last)) == NULL)
		return -POP3D_ERR_NOMEM;
	output_raw(c, (const char *)evbuffer_pullup(body, -1), evbuffer_get_length(body));
	evbuffer_free(body);
	return 0;
}

/* Whether the response to command tag (0: the head) is open. */
int
client_response_open(struct client *c, uint64_t tag)
{
	struct client_ahead *a;

	if (c->dead || c->closing)
		return 0;
	if (tag == 0 || tag == c->inflight)
		return c->inflight != 0 && c->open;
	return (a = ahead_find(c, tag)) != NULL && a->open && !a->complete;
}

int
client_send_line(struct client *c, uint64_t tag, const char *line, size_t len, int flags)
{
	struct client_ahead *ahead;
	int rv;

	if ((rv = client_check(c, tag, &ahead)) != 0)
		return rv;
	if (!line_clean(line, len))
		return -POP3D_ERR_INVALID;
	if (ahead != NULL)
		return ahead_defer_line(ahead, line, len, flags);
	if (c->inflight && client_verb_is(c->verb, "auth") && len >= 1 && line[0] == '+' &&
	    (len == 1 || line[1] == ' ')) {
		/* SASL continuation: the client answers next, then the handler. */
		output_line(c, line, len, 0);
		c->sasl = 1;
		client_resp_disarm(c);
		client_defer(c);
	} else if (c->inflight) {
		if ((flags & POP3D_SEND_DATA) && c->open) {
			struct iovec v = { (void *)(uintptr_t)line, len };

			if ((rv = client_data_lines(c, NULL, &v, 1, !(flags & POP3D_SEND_MORE))) != 0)
				return rv;
		} else
			output_line(c, line, len, c->open ? OUTPUT_CONT : client_first_line(c));
		if (flags & POP3D_SEND_MORE) {
			c->open = 1;
			client_resp_arm(c);
		} else
			client_complete(c);
	} else
		output_line(c, line, len, 0);
	client_backpressure(c);
	return 0;
}

int
client_send_lines(struct client *c, uint64_t tag, const char *status, const struct iovec *lines,
    size_t n)
{
	struct client_ahead *ahead;
	struct evbuffer *body;
	size_t i;
	int rv;

	if ((rv = client_check(c, tag, &ahead)) != 0)
		return rv;
	if (!line_clean(status, strlen(status)))
		return -POP3D_ERR_INVALID;
	for (i = 0; i < n; i++)
		if (!line_clean(lines[i].iov_base, lines[i].iov_len))
			return -POP3D_ERR_INVALID;
	if (ahead != NULL)
		return ahead_defer_lines(ahead, status, lines, n);
	if (c->inflight && c->open) {
		/* The status line is out already: all of these are data. */
		if ((rv = client_data_lines(c, status, lines, n, 1)) != 0)
			return rv;
		client_complete(c);
		client_backpressure(c);
		return 0;
	}
	if ((body = client_stuff_lines(NULL, lines, n, 1)) == NULL)
		return -POP3D_ERR_NOMEM;
	output_line(c, status, strlen(status), client_first_line(c));
	output_raw(c, (const char *)evbuffer_pullup(body, -1), evbuffer_get_length(body));
	evbuffer_free(body);
	if (c->inflight)
		client_complete(c);
	client_backpressure(c);
	return 0;
}

/* Feed the streamed file into the output until it holds enough. */
void
client_stream_fill(struct client *c)
{
	struct evbuffer *out = client_output(c);
	static char buf[CLIENT_STREAM_CHUNK];	/* one event loop: never reentered */
	ssize_t n;

	while (c->stream_fd >= 0 && c->stream_ready && !c->dead &&
	    evbuffer_get_length(out) < CLIENT_STREAM_FILL) {
		if (!stuff_wants_more(c->stream))
			n = 0;
		else if ((n = read(c->stream_fd, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			/* Part of the response is out: no fake terminator. */
			log_warn("client=%llu event=stream-error", (unsigned long long)c->id);
			client_kill(c, "file read error");
			return;
		}
		if (n == 0) {
			stuff_finish(c->stream, out);
			close(c->stream_fd);
			c->stream_fd = -1;
			free(c->stream);
			c->stream = NULL;
			c->stream_ready = 0;
			if (c->closing) {
				/* disconnect arrived mid-stream; flush then close */
				break;
			}
			if (c->inflight)
				client_complete(c);
			break;
		}
		stuff_chunk(c->stream, buf, (size_t)n, out);
	}
}

int
client_send_file(struct client *c, uint64_t tag, const char *status, const char *path, long top)
{
	struct client_ahead *ahead;
	int fd, rv;

	if ((rv = client_check(c, tag, &ahead)) != 0)
		return rv;
	if (!line_clean(status, strlen(status)))
		return -POP3D_ERR_INVALID;
	if (ahead == NULL && c->stream_fd >= 0)
		return -POP3D_ERR_INVALID;
	if ((fd = fileopen_read(&c->srv->file_root, path)) == -1) {
		log_info("client=%llu event=send-file-refused error=\"%s\"",
		    (unsigned long long)c->id, strerror(errno));
		return -POP3D_ERR_IO;
	}
	/* Opened now: a file removed before its turn is still sent. */
	if (ahead != NULL)
		return ahead_defer_fd(ahead, status, fd, top);
	return client_send_fd(c, tag, status, fd, top);
}

/* Stream an open regular file (ours from now on) as a multi-line answer. */
int
client_send_fd(struct client *c, uint64_t tag, const char *status, int fd, long top)
{
	if (c->dead || c->closing || (tag != 0 && tag != c->inflight) || c->stream_fd >= 0) {
		close(fd);
		return -POP3D_ERR_INVALID;
	}
	output_line(c, status, strlen(status), client_first_line(c));
	if (c->inflight)
		client_resp_disarm(c);	/* the core completes it now */
	if (c->stream == NULL && (c->stream = malloc(sizeof(*c->stream))) == NULL) {
		close(fd);
		client_kill(c, "out of memory");
		return -POP3D_ERR_NOMEM;
	}
	stuff_init(c->stream, top);
	c->stream_fd = fd;
	c->stream_ready = 0;
	output_stream(c);
	client_backpressure(c);
	return 0;
}

/* A line that is not a command: one -ERR, and close after too many. */
static void
client_bad_line(struct client *c, const char *msg)
{
	unsigned max = c->srv->opts.max_bad_lines;

	c->bad_lines++;
	log_debug("client=%llu event=bad-line error=\"%s\" count=%u", (unsigned long long)c->id,
	    msg + 5, c->bad_lines);
	if (max > 0 && c->bad_lines >= max) {
		client_close(c, "too many bad commands",
		    "-ERR too many bad commands, closing connection");
		return;
	}
	client_puts(c, msg);
	client_backpressure(c);
}

/* Consumer `consumer` received ev: remember it if ev is the command in
 * flight, so its departure can be noticed. */
void
client_seen(struct client *c, const struct pop3d_event *ev, uint64_t consumer)
{
	struct client_ahead *a;

	if (c->dead || c->inflight == 0 || ev->type != POP3D_PLUGIN_POP3D || ev->origin != 0)
		return;
	if (ev->tag == c->inflight)
		(void)ahead_receiver_add(&c->receivers, &c->nreceivers, &c->receivers_cap,
		    consumer);
	else if ((a = ahead_find(c, ev->tag)) != NULL)
		(void)ahead_receiver_add(&a->receivers, &a->nreceivers, &a->receivers_cap,
		    consumer);
}

/*
 * STLS (RFC 2595), handled by the core when it has a certificate.  Bytes
 * the client sent after STLS are discarded, never read as protected input
 * (the CVE-2011-0411 class): everything after the +OK goes through TLS.
 */
static void
client_stls(struct client *c)
{
	static const char ok[] = "+OK Begin TLS negotiation";
	struct evbuffer *in = client_peek_input(c);
	size_t n;

	if (c->tls) {
		client_puts(c, "-ERR TLS is already active");
		return;
	}
	if (c->state != POP3D_STATE_AUTHORIZATION) {
		client_puts(c, "-ERR STLS is only allowed before authentication");
		return;
	}
	client_write(c, ok, sizeof(ok) - 1);
	n = in != NULL ? evbuffer_get_length(in) : 0;
	if (c->srv->span_owner == c) {
		n += c->srv->spanlen;
		c->srv->spanlen = 0;
	}
	if (n > 0) {
		log_info("client=%llu event=stls-discard octets=%zu", (unsigned long long)c->id, n);
		if (in != NULL)
			evbuffer_drain(in, evbuffer_get_length(in));
	}
	client_tls_start(c);
}

/* The answer to a command nobody handles (try later: a controller may
 * attach). */
static const char client_not_available[] =
    "-ERR [SYS/TEMP] command not available, try again later";

/* "pop3d_cmd_" + verb (at most LINE_VERB_MAX) into name
 * (CLIENT_CMD_EVENT_MAX octets): no printf per command. */
void
client_cmd_event(char *name, const char *verb)
{
	memcpy(name, "pop3d_cmd_", 10);
	memcpy(name + 10, verb, strlen(verb) + 1);
}

/* Make the command event; the core answers itself when nobody listens. */
static void
client_command(struct client *c, const struct line_cmd *cmd)
{
	struct pop3d *srv = c->srv;
	struct pop3d_event ev;
	struct pop3d_arg a[2];
	char name[CLIENT_CMD_EVENT_MAX];
	char *arg = NULL;
	struct client_ahead *ahead;
	int saw;

	c->ncmds++;
	if (client_verb_is(cmd->verb, "stls") && srv->tls.ctx != NULL) {
		client_stls(c);
		return;
	}
	client_cmd_event(name, cmd->verb);
	if (log_verbose() >= 1) {
		char safe[128];

		/* The one masking rule (mask.c): secrets never reach the log. */
		mask_arg(safe, sizeof(safe), mask_verb_secret(cmd->verb, strlen(cmd->verb)),
		    cmd->arg, cmd->arglen, MASK_LOG);
		log_debug("client=%llu event=command tag=%llu verb=%s arg=\"%s\"",
		    (unsigned long long)c->id, (unsigned long long)c->ncmds, cmd->verb, safe);
	}
	if (!pipeline_has_handler(srv->pipeline, POP3D_PLUGIN_POP3D, name)) {
		if (client_verb_is(cmd->verb, "quit")) {
			char bye[600];

			snprintf(bye, sizeof(bye), "+OK %s POP3 server signing off", srv->hostname);
			client_close(c, "quit", bye);
		} else {
			client_puts(c, client_not_available);
			client_backpressure(c);
		}
		return;
	}
	if (c->inflight != 0) {
		/* Dispatched ahead (ahead_ok said so): recorded behind the head. */
		if (ahead_new(c, c->ncmds, cmd->verb) == NULL) {
			client_kill(c, "out of memory");
			return;
		}
	} else {
		c->inflight = c->ncmds;
		memcpy(c->verb, cmd->verb, sizeof(c->verb));
		c->responded = 0;
		c->open = 0;
		c->plugin_saw = 0;
		c->nreceivers = 0;
	}

	memset(a, 0, sizeof(a));
	a[0].type = POP3D_ARG_INT;
	a[0].i = (long long)c->id;
	if (cmd->arg != NULL) {
		if ((arg = malloc(cmd->arglen + 1)) == NULL) {
			client_kill(c, "out of memory");
			return;
		}
		memcpy(arg, cmd->arg, cmd->arglen);
		arg[cmd->arglen] = '\0';
		a[1].type = POP3D_ARG_STR;
		a[1].s = arg;
		a[1].len = cmd->arglen;
	}
	memset(&ev, 0, sizeof(ev));
	ev.name = name;
	ev.client = c->id;
	ev.tag = c->ncmds;
	ev.state = c->state;
	ev.tls = c->tls;
	ev.argc = cmd->arg != NULL ? 2 : 1;
	ev.argv = a;
	saw = server_dispatch(srv, &ev);
	/* The response deadline, unless the answer came during the dispatch
	 * (a plugin), is under way (more lines arm it, a streamed file is the
	 * core's to finish) or awaits the client (SASL). */
	if (c->inflight == ev.tag && !c->dead && !c->closing && !c->responded && !c->sasl &&
	    !c->resp_queued)
		client_resp_arm(c);
	if (c->inflight == ev.tag)
		c->plugin_saw = (saw & PIPELINE_SAW) != 0;
	else if ((ahead = ahead_find(c, ev.tag)) != NULL) {
		ahead->plugin_saw = (saw & PIPELINE_SAW) != 0;
		if (!ahead->plugin_saw && ahead->nreceivers == 0 && TAILQ_EMPTY(&ahead->sends)) {
			/* Every handler went away during the dispatch. */
			(void)ahead_defer_line(ahead, client_not_available,
			    sizeof(client_not_available) - 1, 0);
		}
	}
	if ((saw & PIPELINE_TEMPFAIL) && !(saw & PIPELINE_PENDING))
		client_tempfail(c, 0);
	/* A plugin may have replaced ARG1 (freeing the old one, see pop3d.h):
	 * free whatever is there now. */
	if (ev.argc > 1 && ev.argv[1].type != POP3D_ARG_INT)
		free(ev.argv[1].s);
	if (c->inflight == c->ncmds && !c->dead && !c->closing && !c->responded &&
	    c->nreceivers == 0 && !c->plugin_saw) {
		/* Every handler went away during the dispatch. */
		client_puts(c, client_not_available);
		client_complete(c);
	}
}

/* The core's own final answer to AUTH: like a handler's, it is the first
 * answer to AUTH (a failure is delayed and counted, see output.c). */
static void
client_auth_answer(struct client *c, const char *s)
{
	output_line(c, s, strlen(s), client_first_line(c));
}

/* Deliver one SASL continuation line as pop3d_auth_data.  Its payload is
 * never logged. */
static void
client_auth_data(struct client *c, const char *line, size_t len)
{
	struct pop3d *srv = c->srv;
	struct pop3d_event ev;
	struct pop3d_arg a[2];
	int saw;

	c->sasl = 0;
	if (!pipeline_has_handler(srv->pipeline, POP3D_PLUGIN_POP3D, "pop3d_auth_data")) {
		client_auth_answer(c, "-ERR [SYS/TEMP] authentication not available, try again later");
		client_complete(c);
		return;
	}
	memset(a, 0, sizeof(a));
	a[0].type = POP3D_ARG_INT;
	a[0].i = (long long)c->id;
	a[1].type = POP3D_ARG_STR;
	if ((a[1].s = malloc(len + 1)) == NULL) {
		client_kill(c, "out of memory");
		return;
	}
	memcpy(a[1].s, line, len);
	a[1].s[len] = '\0';
	a[1].len = len;
	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_auth_data";
	ev.client = c->id;
	ev.tag = c->inflight;
	ev.state = c->state;
	ev.tls = c->tls;
	ev.argc = 2;
	ev.argv = a;
	c->nreceivers = 0;
	c->plugin_saw = 0;
	client_resp_arm(c);
	log_debug("client=%llu event=auth-data tag=%llu octets=%zu", (unsigned long long)c->id,
	    (unsigned long long)c->inflight, len);
	saw = server_dispatch(srv, &ev);
	if (c->inflight == ev.tag)
		c->plugin_saw = (saw & PIPELINE_SAW) != 0;
	if (ev.argc > 1 && ev.argv[1].type != POP3D_ARG_INT)
		free(ev.argv[1].s);
}

/* Parse and run buffered lines while no command is in flight. */
static void
client_process_lines(struct client *c)
{
	struct pop3d *srv = c->srv;
	struct evbuffer *in;
	struct line_cmd cmd;
	size_t len, max;
	int64_t now = 0;

	/* Why output_busy: while an answer is held (the failed-login delay, a
	 * pending POP3C verdict) no further line is parsed, so pipelined
	 * guesses cost the back end nothing, STLS and QUIT are answered after
	 * every earlier answer, and the input, capped, is the only backlog. */
	while (!c->dead && !c->closing && c->jobs == 0 && c->phase == CLIENT_READY &&
	    !c->ungreeted && !output_busy(c) && (c->inflight == 0 || c->sasl || ahead_ok(c))) {
		enum line_status st;

		max = c->sasl ? srv->opts.max_auth_line : srv->opts.max_line;
		if (srv->span_owner == c && srv->spanlen > 0)
			st = line_extract_mem(&c->lf, &srv->span, &srv->spanlen, max,
			    srv->linebuf, &len);
		else if ((in = client_peek_input(c)) != NULL)	/* STLS replaces it */
			st = line_extract(&c->lf, in, max, srv->linebuf, &len);
		else
			break;

		if (st == LINE_AGAIN)
			break;
		/* The clock is read once per call: its resolution is a
		 * millisecond and one call runs for microseconds per line. */
		if (now == 0)
			now = server_now();
		client_touch_at(c, now);
		if (c->sasl) {
			if (st == LINE_OK) {
				client_auth_data(c, srv->linebuf, len);
				continue;
			}
			/* Over-long or NUL: the exchange fails, nothing is forwarded. */
			client_auth_answer(c, "-ERR [AUTH] invalid authentication data");
			client_complete(c);
			continue;
		}
		if (st == LINE_TOOLONG) {
			client_bad_line(c, "-ERR line too long");
			continue;
		}
		if (st == LINE_NUL) {
			client_bad_line(c, "-ERR NUL byte in command");
			continue;
		}
		if (line_parse(srv->linebuf, len, &cmd) == -1 ||
		    !line_verb_known(cmd.verb, (const char *const *)srv->extra_verbs)) {
			client_bad_line(c, "-ERR unknown command");
			continue;
		}
		c->bad_lines = 0;
		client_command(c, &cmd);
	}
	if (!c->dead && !c->closing && c->eof && (c->inflight == 0 || c->sasl) &&
	    c->jobs == 0 && !output_busy(c) && c->phase == CLIENT_READY && c->stream_fd < 0)
		client_close(c, "client closed connection", NULL);
}

/*
 * Invariant: one client_process() at a time per client.  Draining input
 * can run a bufferevent callback at once (the OpenSSL filter has no
 * deferred callbacks), which would re-enter and parse a second command
 * while the first is in flight; such a call is turned into another turn
 * of the outer one.
 */
static void
client_process(struct client *c)
{
	if (c->processing) {
		c->process_again = 1;
		return;
	}
	c->processing = 1;
	do {
		c->process_again = 0;
		client_process_lines(c);
	} while (c->process_again && !c->dead);
	c->processing = 0;
}

/* Read the PROXY header: its addresses become the client's. */
static void
client_proxy_read(struct client *c)
{
	struct evbuffer *in = client_input(c);
	size_t len = evbuffer_get_length(in);
	struct proxy_result r;
	unsigned char *data;
	int n;

	if (len > PROXY_MAX_HEADER)
		len = PROXY_MAX_HEADER;
	data = evbuffer_pullup(in, (ev_ssize_t)len);
	if ((n = proxy_parse(data, len, &r)) == 0 && len < PROXY_MAX_HEADER)
		return;
	if (n <= 0) {
		log_warnx("client=%llu event=bad-proxy-header peer=%s", (unsigned long long)c->id,
		    c->peer);
		client_kill(c, "bad proxy header");
		return;
	}
	evbuffer_drain(in, (size_t)n);
	client_phase_disarm(c);
	if (!r.local) {
		if (client_set_addrs(c, r.src, r.dst) == -1) {
			client_kill(c, "out of memory");
			return;
		}
		c->peer_port = r.src_port;
		c->local_port = r.dst_port;
	}
	if (server_addr_acquire(c->srv, c->peer) == -1) {
		client_puts(c, "-ERR [SYS/TEMP] too many connections, try again later");
		client_close(c, "max-per-address", NULL);
		return;
	}
	c->addr_counted = 1;
	log_info("client=%llu event=proxy peer=%s:%d local=%s:%d", (unsigned long long)c->id,
	    c->peer, c->peer_port, c->local, c->local_port);
	if (c->implicit_tls)
		client_tls_start(c);
	else {
		client_start(c);
		if (!c->dead)
			client_process(c);
	}
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (c->dead)
		return;
	client_input_ready(c);
}

/* Wrap the connection in TLS (implicit TLS, or after STLS). */
static void
client_tls_start(struct client *c)
{
	struct pop3d *srv = c->srv;
	struct timeval tv = { (time_t)srv->opts.tls_handshake_timeout, 0 };
	struct bufferevent *f;
	SSL *ssl;

	if ((ssl = tls_session(&srv->tls)) == NULL) {
		client_kill(c, "no tls context");
		return;
	}
	if (c->bev == NULL) {
		/*
		 * STLS on a raw client: a socket bufferevent takes the socket
		 * for the filter to sit on, and the +OK still queued goes out
		 * first.  Input left over was discarded by client_stls.
		 */
		struct bufferevent *b;

		if ((b = bufferevent_socket_new(srv->base, c->fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
			SSL_free(ssl);
			client_kill(c, "tls setup failed");
			return;
		}
		c->rd_on = c->wr_on = 0;
		client_io_update(c);
		if (c->flush_queued) {
			TAILQ_REMOVE(&srv->flushq, c, fentry);
			c->flush_queued = 0;
		}
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
		client_kill(c, "tls setup failed");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	c->bev = f;
	c->phase = CLIENT_HANDSHAKE;
	bufferevent_setcb(f, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setwatermark(f, EV_READ, 0, srv->opts.input_high);
	bufferevent_setwatermark(f, EV_WRITE, CLIENT_WRITE_LOW, 0);
	bufferevent_set_max_single_write(f, CLIENT_MAX_WRITE);
	client_phase_arm(c, &tv);
	bufferevent_enable(f, EV_READ | EV_WRITE);
}

/* The handshake is done: pop3d_tls, and the greeting for implicit TLS. */
static void
client_tls_done(struct client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	const char *version = ssl != NULL ? SSL_get_version(ssl) : "?";
	const char *cipher = ssl != NULL ? SSL_get_cipher_name(ssl) : "?";
	struct pop3d_arg a[3];

	client_phase_disarm(c);
	c->tls = 1;
	log_info("client=%llu event=tls version=%s cipher=%s", (unsigned long long)c->id,
	    version, cipher);
	if (!c->announced)
		client_start(c);
	else
		c->phase = CLIENT_READY;
	if (c->dead)
		return;
	memset(a, 0, sizeof(a));
	a[0].type = POP3D_ARG_INT;
	a[0].i = (long long)c->id;
	a[1].type = POP3D_ARG_STR;
	a[1].s = (char *)(uintptr_t)version;
	a[1].len = strlen(version);
	a[2].type = POP3D_ARG_STR;
	a[2].s = (char *)(uintptr_t)cipher;
	a[2].len = strlen(cipher);
	server_emit(c->srv, "pop3d_tls", c, a, 3);
	if (!c->dead)
		client_defer(c);
}

/* The PROXY header or the handshake did not arrive in time. */
static void
client_phase_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	if (c->dead)
		return;
	if (c->phase == CLIENT_READY) {
		/* A TLS client closing: its last records are on the way out. */
		if (c->closing && client_flushed(c))
			client_kill(c, c->reason);
		return;
	}
	log_warnx("client=%llu event=%s-timeout peer=%s", (unsigned long long)c->id,
	    c->phase == CLIENT_PROXY ? "proxy" : "tls-handshake", c->peer);
	client_kill(c, c->phase == CLIENT_PROXY ? "proxy header timeout" :
	    "tls handshake timeout");
}

/* Output drained below the low-water mark: progress. */
static void
client_drained(struct client *c)
{
	client_touch(c);
	if (c->stream_fd >= 0)
		client_stream_fill(c);
	if (c->dead)
		return;
	if (c->closing && client_flushed(c)) {
		client_kill(c, c->reason);
		return;
	}
	client_backpressure(c);
}

/* The bufferevent wrote below the low-water mark. */
static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (c->dead)
		return;
	client_drained(c);
}

/* Write a raw client's output now; EV_WRITE for what the kernel refused.
 * The output buffer is freed once empty. */
static void
client_flush(struct client *c)
{
	int rounds;

	if (c->bev != NULL)
		return;
	/* A streamed file refills as it drains: a few rounds at most, then
	 * the socket is full or the loop gets its turn. */
	for (rounds = 0; rounds < 8 && !c->dead && c->out != NULL &&
	    evbuffer_get_length(c->out) > 0; rounds++) {
		int n = evbuffer_write_atmost(c->out, c->fd, -1);

		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			client_kill(c, "write error");
			return;
		}
		if (n == 0 || evbuffer_get_length(c->out) >= CLIENT_WRITE_LOW)
			break;
		client_drained(c);
	}
	if (c->dead)
		return;
	c->wr_on = client_outlen(c) > 0;
	if (!c->wr_on && c->out != NULL) {
		client_evbuffer_put(c->srv, c->out);
		c->out = NULL;
	}
	client_io_update(c);
}

/* The active event of srv->flushq. */
void
client_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pop3d *srv = arg;
	struct client *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&srv->flushq)) != NULL) {
		TAILQ_REMOVE(&srv->flushq, c, fentry);
		/* Stays marked: what client_flush appends it writes itself. */
		client_flush(c);
		c->flush_queued = 0;
	}
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (c->dead)
		return;
	if ((what & BEV_EVENT_CONNECTED) && c->phase == CLIENT_HANDSHAKE) {
		client_tls_done(c);
		return;
	}
	if (c->phase != CLIENT_READY && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		unsigned long e = bufferevent_get_openssl_error(c->bev);
		char buf[256] = "";

		if (e != 0)
			ERR_error_string_n(e, buf, sizeof(buf));
		log_info("client=%llu event=%s-failed error=\"%s\"", (unsigned long long)c->id,
		    c->phase == CLIENT_PROXY ? "proxy" : "tls-handshake",
		    e != 0 ? buf : (what & BEV_EVENT_EOF) ? "closed" : "error");
		client_kill(c, c->phase == CLIENT_PROXY ? "closed before proxy header" :
		    "tls handshake failed");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->eof = 1;
		if (c->closing)
			return;
		client_process(c);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		client_kill(c, (what & BEV_EVENT_WRITING) ? "write error" : "read error");
}

/* --- Deferred work and shared timers ------------------------------------ */

/* Run the client from the defer queue: parse the next line, or free it. */
void
client_defer(struct client *c)
{
	struct pop3d *srv = c->srv;

	if (c->defer_queued)
		return;
	c->defer_queued = 1;
	TAILQ_INSERT_TAIL(&srv->deferq, c, dentry);
	event_active(srv->ev_defer, EV_TIMEOUT, 1);
}

/* The defer queue's active event: always outside other callbacks. */
void
client_defer_run(evutil_socket_t fd, short what, void *arg)
{
	struct pop3d *srv = arg;
	struct client *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&srv->deferq)) != NULL) {
		TAILQ_REMOVE(&srv->deferq, c, dentry);
		c->defer_queued = 0;
		if (c->dead) {
			if (c->jobs > 0)
				continue;	/* freed when its last job finishes */
			client_disconnected(c);
			client_free(c);
			server_client_gone(srv);
			continue;
		}
		client_process(c);
		if (!c->dead)
			client_io_trim(c);
	}
}

/*
 * Octets owed to the client: our buffers plus the kernel's send queue.  A
 * slow reader drains the kernel queue long before the socket turns
 * writable again, so the queue is what shows its progress.
 */
static size_t
client_backlog(struct client *c)
{
	size_t out = client_outlen(c);
	struct bufferevent *u = c->bev != NULL ? bufferevent_get_underlying(c->bev) : NULL;
	int queued = 0;

	if (u != NULL)
		out += evbuffer_get_length(bufferevent_get_output(u));
	if (ioctl(c->fd, TIOCOUTQ, &queued) == 0 && queued > 0)
		out += (size_t)queued;
	return out;
}

/* Set a server timer to a monotonic deadline (ms), or clear it (-1). */
static void
client_timer_at(struct event *ev, int64_t deadline)
{
	int64_t left;
	struct timeval tv;

	if (deadline < 0) {
		evtimer_del(ev);
		return;
	}
	if ((left = deadline - server_now()) < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/*
 * The idle queue.  Every READY client is on it, ordered by last_active:
 * the timeout is the same for all, so the first client has the nearest
 * deadline and one server timer serves them all.  Activity moves a client
 * to the end (client_touch); the timer may then fire early, finds nothing
 * due and is set again for the new first client.
 */
static void
client_idle_schedule(struct pop3d *srv)
{
	struct client *c = TAILQ_FIRST(&srv->idleq);

	client_timer_at(srv->ev_idle,
	    c != NULL ? c->last_active + (int64_t)srv->opts.timeout * 1000 : -1);
}

/* Activity: the idle clock restarts. */
static void
client_touch(struct client *c)
{
	client_touch_at(c, server_now());
}

/* The same with the time already read (server_now). */
static void
client_touch_at(struct client *c, int64_t now)
{
	struct pop3d *srv = c->srv;

	c->last_active = now;
	if (c->idle_queued && TAILQ_NEXT(c, ientry) != NULL) {
		TAILQ_REMOVE(&srv->idleq, c, ientry);
		TAILQ_INSERT_TAIL(&srv->idleq, c, ientry);
	}
}

/* The client is READY: subject to the idle timeout from now on. */
static void
client_idle_start(struct client *c)
{
	struct pop3d *srv = c->srv;

	if (c->idle_queued || srv->opts.timeout == 0)
		return;
	c->last_active = server_now();
	c->idle_queued = 1;
	TAILQ_INSERT_TAIL(&srv->idleq, c, ientry);
	if (!evtimer_pending(srv->ev_idle, NULL))
		client_idle_schedule(srv);
}

static void
client_idle_stop(struct client *c)
{
	if (!c->idle_queued)
		return;
	TAILQ_REMOVE(&c->srv->idleq, c, ientry);
	c->idle_queued = 0;
}

/*
 * Idle autologout of a client whose deadline has passed.  Any command, and
 * any progress in draining output (a client slowly reading a long
 * response), counts as activity.  The client leaves the front of the
 * queue either way: killed, or touched.
 */
static void
client_idle_check(struct client *c)
{
	size_t out = client_backlog(c);

	/*
	 * Any change of the backlog is progress: it only grows when the client
	 * sent a command or drained enough for the streamer to refill, and it
	 * shrinks as the client reads.  Waiting for a handler is not idleness;
	 * waiting for SASL data is.
	 */
	if (out != c->last_outlen || (c->inflight && !c->responded && !c->sasl)) {
		c->last_outlen = out;
		client_touch(c);
		return;
	}
	log_info("client=%llu event=idle-timeout", (unsigned long long)c->id);
	if (out > 0 || c->closing)
		client_kill(c, "idle timeout");
	else
		client_close(c, "idle timeout", "-ERR autologout; idle for too long");
	if (!c->dead)
		client_touch(c);	/* another timeout to flush, then killed */
}

/* The idle queue's timer. */
void
client_idle_run(evutil_socket_t fd, short what, void *arg)
{
	struct pop3d *srv = arg;
	int64_t now = server_now(), timeout = (int64_t)srv->opts.timeout * 1000;
	struct client *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&srv->idleq)) != NULL && c->last_active + timeout <= now)
		client_idle_check(c);
	client_idle_schedule(srv);
}

/*
 * The response queue: commands awaiting an answer, by deadline.  Every
 * deadline is now + --response-timeout when armed, so arming appends and
 * the queue stays in order; one server timer serves it.
 */
static void
client_resp_schedule(struct pop3d *srv)
{
	struct client *c = TAILQ_FIRST(&srv->respq);

	client_timer_at(srv->ev_resp, c != NULL ? c->resp_deadline : -1);
}

/* A handler's answer is due --response-timeout from now. */
static void
client_resp_arm(struct client *c)
{
	struct pop3d *srv = c->srv;

	if (srv->opts.response_timeout == 0)
		return;
	if (c->resp_queued)
		TAILQ_REMOVE(&srv->respq, c, rentry);
	c->resp_queued = 1;
	c->resp_deadline = server_now() + (int64_t)srv->opts.response_timeout * 1000;
	TAILQ_INSERT_TAIL(&srv->respq, c, rentry);
	if (!evtimer_pending(srv->ev_resp, NULL))
		client_resp_schedule(srv);
}

static void
client_resp_disarm(struct client *c)
{
	if (!c->resp_queued)
		return;
	TAILQ_REMOVE(&c->srv->respq, c, rentry);
	c->resp_queued = 0;
}

/* No answer within --response-timeout: never a fake response. */
static void
client_resp_expired(struct client *c)
{
	if (c->dead || c->inflight == 0)
		return;
	log_warnx("client=%llu event=response-timeout tag=%llu verb=%s",
	    (unsigned long long)c->id, (unsigned long long)c->inflight, c->verb);
	if (c->responded)
		client_kill(c, "response timeout");
	else
		client_close(c, "response timeout",
		    "-ERR [SYS/TEMP] no response from server, try again later");
}

/* The response queue's timer. */
void
client_resp_run(evutil_socket_t fd, short what, void *arg)
{
	struct pop3d *srv = arg;
	int64_t now = server_now();
	struct client *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&srv->respq)) != NULL && c->resp_deadline <= now) {
		client_resp_disarm(c);
		client_resp_expired(c);
	}
	client_resp_schedule(srv);
}

/* The PROXY header / TLS handshake deadline, or a TLS close poll; the
 * timer is made when first needed (most clients never need it). */
static void
client_phase_arm(struct client *c, const struct timeval *tv)
{
	if (c->ev_phase == NULL &&
	    (c->ev_phase = evtimer_new(c->srv->base, client_phase_cb, c)) == NULL) {
		client_kill(c, "out of memory");
		return;
	}
	evtimer_add(c->ev_phase, tv);
}

static void
client_phase_disarm(struct client *c)
{
	if (c->ev_phase != NULL)
		evtimer_del(c->ev_phase);
}

/* Fire one timer of the client now, as if its time had come (fuzzing). */
int
client_timer_fire(struct client *c, int which)
{
	struct event *ev;

	if (c->dead)
		return 0;
	switch (which) {
	case 0:
		ev = c->ev_delay;
		break;
	case 1:
		if (!c->resp_queued)
			return 0;
		client_resp_disarm(c);
		client_resp_expired(c);
		return 1;
	case 2:
		ev = c->ev_phase;
		break;
	default:
		if (!c->idle_queued)
			return 0;
		c->last_active -= (int64_t)c->srv->opts.timeout * 1000 + 1000;
		client_idle_check(c);
		return 1;
	}
	if (ev == NULL || !event_pending(ev, EV_TIMEOUT, NULL))
		return 0;
	event_del(ev);
	event_active(ev, EV_TIMEOUT, 1);
	return 1;
}

/* A consumer went away: the in-flight command may have no handler left. */
void
client_consumer_gone(struct client *c, uint64_t consumer)
{
	int found;

	if (c->dead || c->inflight == 0)
		return;
	ahead_consumer_gone(c, consumer);
	found = ahead_receiver_del(c->receivers, &c->nreceivers, consumer);
	/* A file being streamed is the core's to finish, handler or not. */
	if (!found || c->nreceivers > 0 || c->plugin_saw || c->stream_fd >= 0)
		return;
	if (!c->responded) {
		log_warnx("client=%llu event=handler-gone tag=%llu", (unsigned long long)c->id,
		    (unsigned long long)c->inflight);
		client_close(c, "handler went away",
		    "-ERR [SYS/TEMP] server unavailable, try again later");
	} else if (c->responded)
		client_kill(c, "handler went away");
}

void
client_info(struct client *c, struct pop3d_client_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	ci->id = c->id;
	snprintf(ci->peer, sizeof(ci->peer), "%s", c->peer);
	ci->peer_port = c->peer_port;
	snprintf(ci->local, sizeof(ci->local), "%s", c->local);
	ci->local_port = c->local_port;
	ci->state = c->state;
	ci->tls = c->tls;
	ci->connected = c->connected;
	ci->idle = (server_now() - c->last_active) / 1000;
	ci->tag = c->inflight;
}
