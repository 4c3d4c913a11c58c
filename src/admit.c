/* admit.c - accepted socket to READY client: limits, PROXY and TLS phases. */
/*
 * The TLS handshake phase is implicit TLS's, and STLS's too (its end is
 * reported here).  admit.c owns every connection's events (srv->conn_cb):
 * what is not about a phase goes on to session.c.
 */
#include "config.h"

#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/ssl.h>

#include "log.h"
#include "server.h"

static void admit_phase_expired(struct timers_entry *, void *);

/* Set up the server's phase deadlines (PROXY header, handshake). */
int
admit_init(struct pop3d *srv)
{
	return timers_queue_init(&srv->phaseq, srv->base, admit_phase_expired, srv);
}

/* Numeric host and port of a socket address; IPv4-mapped IPv6 as IPv4. */
static void
admit_addr(const struct sockaddr *sa, socklen_t len, char *host, size_t hlen, int *port)
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

/* Set the client's numeric addresses, both in addrbuf (IPv4 always fits)
 * or in one allocation: an idle client should not carry two 64-octet
 * arrays for "127.0.0.1".  0 or -1. */
static int
admit_set_addrs(struct client *c, const char *peer, const char *local)
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

/* Refuse a connection over a limit without making it a client. */
static void
admit_refuse(int fd, const char *why)
{
	static const char msg[] = "-ERR [SYS/TEMP] too many connections, try again later\r\n";

	(void)send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	log_info("event=refused reason=\"%s\"", why);
	close(fd);
}

/* Make a client from an accepted socket, or refuse it at a limit. */
struct client *
admit_new(struct pop3d *srv, int fd, struct sockaddr *peer, socklen_t plen, int lflags,
    const struct pop3d_sockname *fixed)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	struct client *c = NULL;
	char host[64], local[64] = "";
	int port, local_port = 0;

	admit_addr(peer, plen, host, sizeof(host), &port);
	if (srv->shutting_down) {
		close(fd);
		return NULL;
	}
	if (srv->opts.max_clients > 0 && srv->nclients >= srv->opts.max_clients) {
		admit_refuse(fd, "max-clients");
		return NULL;
	}
	if (lflags & POP3D_LISTEN_PROXY) {
		/* Only trusted peers may speak for others; no greeting otherwise. */
		if (!proxy_cidr_match(srv->trusted, srv->ntrusted, peer)) {
			log_warnx("event=refused reason=\"untrusted proxy\" peer=%s", host);
			close(fd);
			return NULL;
		}
	} else if (table_addr_acquire(srv, host) == -1) {
		admit_refuse(fd, "max-per-address");
		return NULL;
	}
	if ((c = pool_client_get(srv)) == NULL)
		goto fail;
	c->lflags = lflags;
	c->fd = fd;
	c->implicit_tls = (lflags & POP3D_LISTEN_TLS) != 0;
	c->addr_counted = !(lflags & POP3D_LISTEN_PROXY);
	if (lflags & POP3D_LISTEN_PROXY)
		c->phase = CLIENT_PROXY;
	else
		c->phase = c->implicit_tls ? CLIENT_HANDSHAKE : CLIENT_READY;
	c->srv = srv;
	c->id = ++srv->next_client;
	c->stream_fd = -1;
	TAILQ_INIT(&c->outq);
	TAILQ_INIT(&c->ahead);
	if (fixed != NULL) {
		snprintf(local, sizeof(local), "%s", fixed->address);
		local_port = fixed->port;
	} else if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0)
		admit_addr((struct sockaddr *)&ss, slen, local, sizeof(local), &local_port);
	if (admit_set_addrs(c, host, local) == -1)
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
	c->last_active = timers_now();
	line_init(&c->lf);
	if (conn_open(c) == -1)
		goto fail;
	table_link(srv, c);
	return c;
fail:
	if (!(lflags & POP3D_LISTEN_PROXY))
		table_addr_release(srv, host);
	if (c != NULL) {
		if (c->peer != c->addrbuf)
			free(c->peer);
		pool_client_put(srv, c);
	}
	close(fd);
	return NULL;
}

/* A new connection: the PROXY header, the TLS handshake, or the greeting. */
void
admit_begin(struct client *c)
{
	log_info("client=%llu event=connect peer=%s:%d local=%s:%d", (unsigned long long)c->id,
	    c->peer, c->peer_port, c->local, c->local_port);
	if (c->phase == CLIENT_PROXY) {
		timers_add(&c->srv->phaseq, &c->tphase,
		    timers_now() + (int64_t)c->srv->opts.proxy_timeout * 1000);
		conn_read_set(c, 1);
	} else if (c->phase == CLIENT_HANDSHAKE)
		conn_tls_start(c);
	else
		session_start(c);
}

/* Read the PROXY header: its addresses become the client's. */
static void
admit_proxy_read(struct client *c)
{
	struct evbuffer *in = conn_input(c);
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
		conn_kill(c, "bad proxy header");
		return;
	}
	evbuffer_drain(in, (size_t)n);
	timers_del(&c->srv->phaseq, &c->tphase);
	if (!r.local) {
		if (admit_set_addrs(c, r.src, r.dst) == -1) {
			conn_kill(c, "out of memory");
			return;
		}
		c->peer_port = r.src_port;
		c->local_port = r.dst_port;
	}
	if (table_addr_acquire(c->srv, c->peer) == -1) {
		output_line(c, "-ERR [SYS/TEMP] too many connections, try again later",
		    sizeof("-ERR [SYS/TEMP] too many connections, try again later") - 1, 0);
		output_close(c, "max-per-address", NULL);
		return;
	}
	c->addr_counted = 1;
	log_info("client=%llu event=proxy peer=%s:%d local=%s:%d", (unsigned long long)c->id,
	    c->peer, c->peer_port, c->local, c->local_port);
	if (c->implicit_tls)
		conn_tls_start(c);
	else {
		session_start(c);
		if (!c->dead)
			session_process(c);
	}
}

/* The handshake is done: pop3d_tls, and the greeting for implicit TLS. */
static void
admit_tls_done(struct client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	const char *version = ssl != NULL ? SSL_get_version(ssl) : "?";
	const char *cipher = ssl != NULL ? SSL_get_cipher_name(ssl) : "?";
	struct pop3d_arg a[3];

	timers_del(&c->srv->phaseq, &c->tphase);
	c->tls = 1;
	log_info("client=%llu event=tls version=%s cipher=%s", (unsigned long long)c->id, version,
	    cipher);
	if (!c->announced)
		session_start(c);
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
	events_emit(c->srv, "pop3d_tls", c, a, 3);
	timers_defer(&c->srv->deferq, &c->tdefer);
}

/* The PROXY header or the handshake did not arrive in time (or a TLS
 * client closing polls whether its last records are out). */
static void
admit_phase_expired(struct timers_entry *e, void *arg)
{
	struct client *c = TIMERS_OWNER(e, struct client, tphase);

	(void)arg;
	if (c->phase == CLIENT_READY) {
		/* A TLS client closing: its last records are on the way out. */
		if (c->closing && conn_flushed(c))
			conn_kill(c, c->reason);
		return;
	}
	log_warnx("client=%llu event=%s-timeout peer=%s", (unsigned long long)c->id,
	    c->phase == CLIENT_PROXY ? "proxy" : "tls-handshake", c->peer);
	conn_kill(c, c->phase == CLIENT_PROXY ? "proxy header timeout" : "tls handshake timeout");
}

/* The listeners' callback: a client from an accepted socket, begun. */
void
admit_accept(struct pop3d *srv, int fd, struct sockaddr *sa, socklen_t len, int lflags,
    const struct pop3d_sockname *fixed)
{
	struct client *c;

	if ((c = admit_new(srv, fd, sa, len, lflags, fixed)) != NULL)
		admit_begin(c);
}

/* srv->conn_cb: what conn.c reports of any client.  Before READY it is
 * about a phase; after, session.c's. */
void
admit_conn_event(struct client *c, enum conn_what what, const char *detail)
{
	/* The one guard for every report: a client killed meanwhile (in the
	 * same callback, or earlier in this loop turn) is done. */
	if (c->dead)
		return;
	switch (what) {
	case CONN_TLS_UP:
		admit_tls_done(c);
		return;
	case CONN_FAILED:
		log_info("client=%llu event=%s-failed error=\"%s\"", (unsigned long long)c->id,
		    c->phase == CLIENT_PROXY ? "proxy" : "tls-handshake", detail);
		conn_kill(c,
		    c->phase == CLIENT_PROXY ? "closed before proxy header" :
					       "tls handshake failed");
		return;
	default:
		break;
	}
	if (c->phase == CLIENT_PROXY) {
		if (what == CONN_READ)
			admit_proxy_read(c);
		else if (what == CONN_EOF) {
			log_info("client=%llu event=proxy-failed error=\"closed\"",
			    (unsigned long long)c->id);
			conn_kill(c, "closed before proxy header");
		}
		return;
	}
	session_conn_event(c, what);
}
