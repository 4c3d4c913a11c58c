/* pop3d.c - the server's lifecycle: new, free, shutdown, options, listeners. */
/*
 * The top of src/ (with TLS and listener set-up): it wires the lower files
 * together (the upcalls of struct pop3d, the pipeline's callbacks) and
 * installs the greeting plugin.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "greeting.h"
#include "log.h"
#include "server.h"

/* The defaults of every option. */
void
pop3d_options_init(struct pop3d_options *o)
{
	memset(o, 0, sizeof(*o));
	o->alias = "pop3d";
	o->hostname = "localhost";
	o->version = PACKAGE_NAME "-" PACKAGE_VERSION;
	o->handle_connects = 1;
	o->timeout = 600;
	o->response_timeout = 30;
	o->max_line = 255;
	o->max_bad_lines = 3;
	o->max_clients = 1024;
	o->max_per_address = 64;
	o->output_high = 256 * 1024;
	o->input_high = 16 * 1024;
	o->max_auth_line = 8192;
	o->tls_handshake_timeout = 30;
	o->proxy_timeout = 3;
	o->auth_fail_delay_ms = 1000;
	o->max_auth_failures = 3;
	o->pipeline_depth = 1;
}

/* Whether s is set and fits on one POP3 line. */
static int
pop3d_text_ok(const char *s)
{
	return s != NULL && line_clean(s, strlen(s));
}

/* Shutdown: the grace period is over (cut the rest), or every client
 * is gone (the stopped callback). */
static void
pop3d_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pop3d *srv = arg;
	struct client *c, *next;

	(void)fd;
	(void)what;
	if (srv->nclients > 0) {
		/* Grace period over: cut whoever is still draining. */
		for (c = TAILQ_FIRST(&srv->clients); c != NULL; c = next) {
			next = TAILQ_NEXT(c, entry);
			conn_kill(c, "shutdown");
		}
		return;
	}
	if (srv->stopped_cb != NULL)
		srv->stopped_cb(srv, srv->stopped_arg);
}

/* Accept again after EMFILE. */
static void
pop3d_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	listener_resume(arg);
}

/* Pipeline callbacks: events refer to clients by id, never by pointer. */
static void
pop3d_seen(struct pop3d *srv, const struct pop3d_event *ev, uint64_t consumer)
{
	struct client *c;

	if (ev->client != 0 && (c = table_find(srv, ev->client)) != NULL)
		reply_seen(c, ev, consumer);
}

/* A suspended dispatch ended: the client it is about goes on. */
static void
pop3d_done(struct pop3d *srv, struct pop3d_event *ev, int flags)
{
	struct client *c;

	if (ev->client != 0 && (c = table_find(srv, ev->client)) != NULL)
		session_job_done(c, ev, flags);
}

/* A server on base with opts (copied); NULL and errno on failure. */
struct pop3d *
pop3d_new(struct event_base *base, const struct pop3d_options *opts)
{
	struct pop3d *srv;
	unsigned char rnd[16];
	size_t i, n = 0;
	char greet[600];

	if (base == NULL || opts == NULL || !pop3d_text_ok(opts->hostname) ||
	    !pop3d_text_ok(opts->version) || opts->alias == NULL || opts->max_line < 8) {
		errno = EINVAL;
		return NULL;
	}
	if ((size_t)snprintf(greet, sizeof(greet), GREETING_FORMAT, opts->hostname, opts->version) +
		2 >
	    GREETING_MAX) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->base = base;
	srv->opts = *opts;
	srv->file_root.fd = -1;
	linger_init(&srv->lingerq, base);
	if (srv->opts.pipeline_depth == 0)
		srv->opts.pipeline_depth = 1;
	if (srv->opts.max_auth_line < srv->opts.max_line)
		srv->opts.max_auth_line = srv->opts.max_line;
	if (srv->opts.input_high < 2 * srv->opts.max_auth_line)
		srv->opts.input_high = 2 * srv->opts.max_auth_line;
	srv->alias = strdup(opts->alias);
	srv->hostname = strdup(opts->hostname);
	srv->version = strdup(opts->version);
	srv->opts.alias = srv->alias;
	srv->opts.hostname = srv->hostname;
	srv->opts.version = srv->version;
	if (opts->extra_verbs != NULL)
		while (opts->extra_verbs[n] != NULL)
			n++;
	srv->extra_verbs = calloc(n + 1, sizeof(char *));
	for (i = 0; srv->extra_verbs != NULL && i < n; i++)
		srv->extra_verbs[i] = strdup(opts->extra_verbs[i]);
	srv->opts.extra_verbs = (const char *const *)srv->extra_verbs;
	TAILQ_INIT(&srv->listeners);
	srv->conn_cb = admit_conn_event;
	srv->complete_cb = reply_complete;
	srv->accept_cb = admit_accept;
	srv->pipeline = pipeline_new(pop3d_seen, pop3d_done);
	srv->linebuf = malloc(srv->opts.max_auth_line);
	srv->ev_stop = evtimer_new(base, pop3d_stop_cb, srv);
	srv->ev_resume = evtimer_new(base, pop3d_resume_cb, srv);
	srv->rbuf = malloc(srv->opts.input_high);
	srv->sink = evbuffer_new();
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(srv->session_id + 2 * i, 3, "%02x", rnd[i]);
	if (table_init(srv) == -1 || conn_init(srv) == -1 || session_init(srv) == -1 ||
	    admit_init(srv) == -1 || srv->alias == NULL || srv->hostname == NULL ||
	    srv->version == NULL || srv->extra_verbs == NULL || srv->pipeline == NULL ||
	    srv->linebuf == NULL || srv->ev_stop == NULL || srv->ev_resume == NULL ||
	    srv->rbuf == NULL || srv->sink == NULL) {
		pop3d_free(srv);
		errno = ENOMEM;
		return NULL;
	}
	if (opts->handle_connects && greeting_install(srv) == -1) {
		pop3d_free(srv);
		errno = ENOMEM;
		return NULL;
	}
	return srv;
}

/* Free the server: plugins unregistered, clients cut without events. */
void
pop3d_free(struct pop3d *srv)
{
	struct client *c;
	size_t i;

	if (srv == NULL)
		return;
	srv->freeing = 1;
	/* Plugins' unregister entry points run while the server still works. */
	if (srv->pipeline != NULL)
		subscribe_free_plugins(srv);
	listener_free_all(srv);
	/* Live clients go without events; dead ones await the defer queue. */
	while ((c = TAILQ_FIRST(&srv->clients)) != NULL) {
		table_unlink(srv, c);
		c->dead = 1;
		session_destroy(c);
	}
	linger_free_all(&srv->lingerq);
	pool_free(srv);
	table_free(srv);
	pipeline_free(srv->pipeline);
	tls_clear(&srv->tls);
	fileopen_root_clear(&srv->file_root);
	free(srv->trusted);
	if (srv->ev_stop)
		event_free(srv->ev_stop);
	if (srv->ev_resume)
		event_free(srv->ev_resume);
	timers_deferq_free(&srv->flushq);
	timers_deferq_free(&srv->deferq);
	timers_queue_free(&srv->idleq);
	timers_queue_free(&srv->respq);
	timers_queue_free(&srv->phaseq);
	free(srv->rbuf);
	if (srv->sink)
		evbuffer_free(srv->sink);
	for (i = 0; srv->extra_verbs != NULL && srv->extra_verbs[i] != NULL; i++)
		free(srv->extra_verbs[i]);
	free(srv->extra_verbs);
	free(srv->linebuf);
	free(srv->alias);
	free(srv->hostname);
	free(srv->version);
	free(srv);
}

/* Listen on addr:port. */
int
pop3d_listen(struct pop3d *srv, const char *addr, int port)
{
	return pop3d_listen_flags(srv, addr, port, 0);
}

/* Listen on addr:port with POP3D_LISTEN_* flags. */
int
pop3d_listen_flags(struct pop3d *srv, const char *addr, int port, int flags)
{
	if (port < 0 || port > 65535 || (flags & ~(POP3D_LISTEN_TLS | POP3D_LISTEN_PROXY)) ||
	    ((flags & POP3D_LISTEN_TLS) && srv->tls.ctx == NULL)) {
		errno = EINVAL;
		return -1;
	}
	return listener_add(srv, addr, port, flags);
}

/* Load a certificate and key (STLS, implicit-TLS listeners). */
int
pop3d_tls_set(struct pop3d *srv, const char *cert, const char *key, const char *ciphers)
{
	char err[512];

	if (cert == NULL || key == NULL)
		return -1;
	if (tls_load(&srv->tls, cert, key, ciphers, err, sizeof(err)) == -1) {
		log_warnx("event=tls-load-failed error=\"%s\"", err);
		return -1;
	}
	log_info("event=tls-loaded cert=%s", cert);
	return 0;
}

/* Confine pop3d_send_file to dir (NULL: no confinement). */
int
pop3d_send_file_root(struct pop3d *srv, const char *dir)
{
	if (dir == NULL) {
		fileopen_root_clear(&srv->file_root);
		return 0;
	}
	if (fileopen_root_set(&srv->file_root, dir) == -1) {
		log_warn("event=send-file-root-failed dir=%s", dir);
		return -1;
	}
	log_info("event=send-file-root dir=%s", srv->file_root.path);
	return 0;
}

/* Load the certificate and key again from their files. */
int
pop3d_tls_reload(struct pop3d *srv)
{
	char *cert, *key, *ciphers;
	int rv;

	if (srv->tls.ctx == NULL)
		return 0;
	cert = strdup(srv->tls.cert);
	key = strdup(srv->tls.key);
	ciphers = srv->tls.ciphers != NULL ? strdup(srv->tls.ciphers) : NULL;
	rv = cert != NULL && key != NULL ? pop3d_tls_set(srv, cert, key, ciphers) : -1;
	free(cert);
	free(key);
	free(ciphers);
	return rv;
}

/* Whether TLS is configured. */
int
pop3d_tls_available(struct pop3d *srv)
{
	return srv->tls.ctx != NULL;
}

/* Trust PROXY headers from cidr. */
int
pop3d_proxy_trust(struct pop3d *srv, const char *cidr)
{
	struct proxy_cidr c, *n;

	if (cidr == NULL || proxy_cidr_parse(cidr, &c) == -1)
		return -1;
	if ((n = realloc(srv->trusted, (srv->ntrusted + 1) * sizeof(*n))) == NULL)
		return -1;
	n[srv->ntrusted++] = c;
	srv->trusted = n;
	return 0;
}

/* The listening addresses (up to n of them); how many there are. */
size_t
pop3d_getsockname(struct pop3d *srv, struct pop3d_sockname *out, size_t n)
{
	struct listener *l;
	size_t k = 0;

	TAILQ_FOREACH (l, &srv->listeners, entry) {
		if (k < n)
			out[k] = l->name;
		k++;
	}
	return k;
}

/* This server instance's random id. */
const char *
pop3d_session_id(struct pop3d *srv)
{
	return srv->session_id;
}

/* The event base the server runs on. */
struct event_base *
pop3d_get_base(struct pop3d *srv)
{
	return srv->base;
}

/* What pop3d_shutdown calls when every client is gone. */
void
pop3d_set_stopped_cb(struct pop3d *srv, void (*cb)(struct pop3d *, void *), void *arg)
{
	srv->stopped_cb = cb;
	srv->stopped_arg = arg;
}

/* Whether pop3d_shutdown was called. */
int
pop3d_is_shutting_down(struct pop3d *srv)
{
	return srv->shutting_down;
}

/* Stop accepting; close every client after its output (a grace period). */
void
pop3d_shutdown(struct pop3d *srv)
{
	struct client *c, *next;
	struct timeval tv = { SERVER_SHUTDOWN_GRACE, 0 };

	if (srv->shutting_down)
		return;
	srv->shutting_down = 1;
	log_info("event=shutdown clients=%zu", srv->nclients);
	listener_free_all(srv);
	evtimer_del(srv->ev_resume);
	for (c = TAILQ_FIRST(&srv->clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		output_close(c, "shutdown", NULL);
	}
	if (srv->nclients == 0)
		tv.tv_sec = 0;
	evtimer_add(srv->ev_stop, &tv);
}
