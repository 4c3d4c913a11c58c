/*
 * listener.c - listening sockets and accept, with pausing when file
 * descriptors run out.
 *
 * Why pause: after EMFILE the pending connection stays in the backlog and
 * the listening socket stays readable, so a level-triggered accept loop would
 * spin.  Accepting stops until a client is freed or a second has passed.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "log.h"
#include "server.h"

static void listener_pause(struct pop3d *, int err);

/* Backlog for listen(2). */
#define LISTENER_BACKLOG 511

/* Tell consumers a listener failed (pop3d_listener_failed). */
static void
listener_failed(struct pop3d *srv, const char *op, int err)
{
	struct pop3d_arg a[3];

	memset(a, 0, sizeof(a));
	a[0].type = POP3D_ARG_STR;
	a[0].s = (char *)op;
	a[0].len = strlen(op);
	a[1].type = POP3D_ARG_INT;
	a[1].i = err;
	a[2].type = POP3D_ARG_STR;
	a[2].s = strerror(err);
	a[2].len = strlen(a[2].s);
	events_emit(srv, "pop3d_listener_failed", NULL, a, 3);
}

/* A connection was accepted. */
static void
listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct listener *l = arg;

	(void)evl;
	/* The server's callback (admit.c) makes the client: no call up. */
	l->srv->accept_cb(l->srv, fd, sa, (socklen_t)salen, l->flags,
	    l->fixed_local ? &l->name : NULL);
}

/* accept() failed: pause when out of descriptors. */
static void
listener_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();

	(void)evl;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
		listener_pause(l->srv, err);
	else {
		log_warnx("event=accept-error error=\"%s\"", strerror(err));
		listener_failed(l->srv, "accept", err);
	}
}

/* Stop accepting on every listener; retry in a second. */
static void
listener_pause(struct pop3d *srv, int err)
{
	struct listener *l;
	struct timeval tv = { 1, 0 };
	int was = 0;

	TAILQ_FOREACH (l, &srv->listeners, entry) {
		was |= l->paused;
		l->paused = 1;
		evconnlistener_disable(l->evl);
	}
	if (!was) {
		log_warnx("event=accept-paused error=\"%s\" clients=%zu", strerror(err),
		    srv->nclients);
		listener_failed(srv, "accept", err);
	}
	evtimer_add(srv->ev_resume, &tv);
}

/* Accept again on every paused listener. */
void
listener_resume(struct pop3d *srv)
{
	struct listener *l;
	int was = 0;

	if (srv->shutting_down)
		return;
	TAILQ_FOREACH (l, &srv->listeners, entry) {
		if (!l->paused)
			continue;
		was = 1;
		l->paused = 0;
		evconnlistener_enable(l->evl);
	}
	if (was)
		log_info("event=accept-resumed clients=%zu", srv->nclients);
}

/* Open, bind and listen one socket; dual-stack for the wildcard address. */
static int
listener_socket(const char *addr, int port, const char **op)
{
	struct addrinfo hints, *res = NULL, *ai;
	char serv[16];
	int fd = -1, on = 1, off = 0, err = 0, rv;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
	hints.ai_family = addr == NULL ? AF_INET6 : AF_UNSPEC;
	snprintf(serv, sizeof(serv), "%d", port);
	*op = "getaddrinfo";
	if ((rv = getaddrinfo(addr, serv, &hints, &res)) != 0) {
		if (addr == NULL) {
			hints.ai_family = AF_INET;
			rv = getaddrinfo(NULL, serv, &hints, &res);
		}
		if (rv != 0) {
			errno = rv == EAI_SYSTEM ? errno : EADDRNOTAVAIL;
			return -1;
		}
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		*op = "socket";
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1 && addr == NULL && ai->ai_family == AF_INET6 &&
		    errno == EAFNOSUPPORT) {
			/* No IPv6 on this host: the wildcard falls back to IPv4. */
			freeaddrinfo(res);
			hints.ai_family = AF_INET;
			if (getaddrinfo(NULL, serv, &hints, &res) != 0)
				return -1;
			ai = res;
			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		}
		if (fd == -1) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, addr == NULL ? &off : &on,
			    sizeof(int));
		*op = "bind";
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
			err = errno;
			close(fd);
			fd = -1;
			continue;
		}
		*op = "listen";
		if (listen(fd, LISTENER_BACKLOG) == -1) {
			err = errno;
			close(fd);
			fd = -1;
			continue;
		}
		break;
	}
	freeaddrinfo(res);
	if (fd == -1)
		errno = err;
	return fd;
}

/* Listen on addr:port with POP3D_LISTEN_* flags; -1 on failure. */
int
listener_add(struct pop3d *srv, const char *addr, int port, int flags)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	struct listener *l;
	const char *op;
	char serv[16];
	int fd, err;

	if ((fd = listener_socket(addr, port, &op)) == -1) {
		err = errno;
		log_warn("event=listen-failed op=%s address=%s port=%d", op,
		    addr != NULL ? addr : "*", port);
		listener_failed(srv, op, err);
		errno = err;
		return -1;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		close(fd);
		return -1;
	}
	l->srv = srv;
	l->flags = flags;
	l->name.tls = (flags & POP3D_LISTEN_TLS) != 0;
	l->name.proxy = (flags & POP3D_LISTEN_PROXY) != 0;
	l->evl = evconnlistener_new(srv->base, listener_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l->evl == NULL) {
		err = errno;
		close(fd);
		free(l);
		listener_failed(srv, "listen", err);
		errno = err;
		return -1;
	}
	evconnlistener_set_error_cb(l->evl, listener_error_cb);
	if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, slen, l->name.address, sizeof(l->name.address),
		serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
		l->name.port = atoi(serv);
		/* Bound to one address: that is every client's local address
		 * (no getsockname per connection). */
		l->fixed_local = strcmp(l->name.address, "::") != 0 &&
		    strcmp(l->name.address, "0.0.0.0") != 0 &&
		    strncmp(l->name.address, "::ffff:", 7) != 0;
	}
	TAILQ_INSERT_TAIL(&srv->listeners, l, entry);
	log_info("event=listening address=%s port=%d tls=%d proxy=%d", l->name.address,
	    l->name.port, l->name.tls, l->name.proxy);
	return 0;
}

/* Close every listener. */
void
listener_free_all(struct pop3d *srv)
{
	struct listener *l;

	while ((l = TAILQ_FIRST(&srv->listeners)) != NULL) {
		TAILQ_REMOVE(&srv->listeners, l, entry);
		evconnlistener_free(l->evl);
		free(l);
	}
}
