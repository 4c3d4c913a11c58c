/*
 * pop3d.c - the server object and the public libpop3d API: options,
 * client table, per-address counts, event emission, the seed's methods.
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
#include "mask.h"
#include "server.h"

/* Clients per peer address: a small chained hash of address strings. */
struct addrcount_entry {
	struct addrcount_entry *next;
	unsigned count;
	char addr[64];
};
struct addrcount {
	struct addrcount_entry *b[1024];
};

static const char *const pop3d_errors[] = {
	"ok", "unknown client", "stale tag", "invalid argument", "i/o error",
	"shutting down", "unknown event", "limit exceeded", "out of memory"
};

const char *
pop3d_strerror(int err)
{
	if (err < 0)
		err = -err;
	if ((size_t)err >= sizeof(pop3d_errors) / sizeof(pop3d_errors[0]))
		return "unknown error";
	return pop3d_errors[err];
}

const char *
pop3d_state_name(enum pop3d_state st)
{
	return st == POP3D_STATE_TRANSACTION ? "transaction" : "authorization";
}

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

/* Monotonic milliseconds, for idle and response deadlines (seconds):
 * the coarse clock (a few ms resolution) costs a fraction of the precise
 * one, and is read for every command. */
int64_t
server_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether s is set and fits on one POP3 line. */
static int
pop3d_text_ok(const char *s)
{
	return s != NULL && line_clean(s, strlen(s));
}

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
			client_kill(c, "shutdown");
		}
		return;
	}
	if (srv->stopped_cb != NULL)
		srv->stopped_cb(srv, srv->stopped_arg);
}

static void
pop3d_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	listener_resume(arg);
}

/* Pipeline callbacks: events refer to clients by id, never by pointer. */
static void
server_seen(struct pop3d *srv, const struct pop3d_event *ev, uint64_t consumer)
{
	struct client *c;

	if (ev->client != 0 && (c = server_client_find(srv, ev->client)) != NULL)
		client_seen(c, ev, consumer);
}

static void
server_done(struct pop3d *srv, struct pop3d_event *ev, int flags)
{
	struct client *c;

	if (ev->client != 0 && (c = server_client_find(srv, ev->client)) != NULL)
		client_job_done(c, ev, flags);
}

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
	if ((size_t)snprintf(greet, sizeof(greet), GREETING_FORMAT, opts->hostname,
	    opts->version) + 2 > GREETING_MAX) {
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
	TAILQ_INIT(&srv->clients);
	srv->hash_size = 256;
	srv->hash = calloc(srv->hash_size, sizeof(*srv->hash));
	srv->addrs = calloc(1, sizeof(*srv->addrs));
	srv->pipeline = pipeline_new(server_seen, server_done);
	srv->linebuf = malloc(srv->opts.max_auth_line);
	srv->ev_stop = evtimer_new(base, pop3d_stop_cb, srv);
	srv->ev_resume = evtimer_new(base, pop3d_resume_cb, srv);
	srv->ev_flush = event_new(base, -1, 0, client_flush_cb, srv);
	srv->ev_defer = event_new(base, -1, 0, client_defer_run, srv);
	srv->ev_idle = evtimer_new(base, client_idle_run, srv);
	srv->ev_resp = evtimer_new(base, client_resp_run, srv);
	srv->rbuf = malloc(srv->opts.input_high);
	srv->sink = evbuffer_new();
	TAILQ_INIT(&srv->flushq);
	TAILQ_INIT(&srv->deferq);
	TAILQ_INIT(&srv->idleq);
	TAILQ_INIT(&srv->respq);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(srv->session_id + 2 * i, 3, "%02x", rnd[i]);
	if (srv->alias == NULL || srv->hostname == NULL || srv->version == NULL ||
	    srv->extra_verbs == NULL || srv->hash == NULL || srv->addrs == NULL ||
	    srv->pipeline == NULL || srv->linebuf == NULL || srv->ev_stop == NULL ||
	    srv->ev_resume == NULL || srv->ev_flush == NULL || srv->ev_defer == NULL ||
	    srv->ev_idle == NULL || srv->ev_resp == NULL || srv->rbuf == NULL ||
	    srv->sink == NULL) {
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

static int pop3d_plugin_remove(struct pop3d *, struct pipeline_entry *);

/* Remove every plugin that has an unregister entry point. */
static void
pop3d_free_plugins(struct pop3d *srv)
{
	const char **order;
	size_t n, i;

	n = pipeline_plugin_order(srv->pipeline, NULL, 0);
	if ((order = calloc(n + 1, sizeof(*order))) == NULL)
		return;
	pipeline_plugin_order(srv->pipeline, order, n);
	/* Removal frees names: look every entry up before removing any. */
	for (i = 0; i < n; i++)
		order[i] = (const char *)pipeline_find_plugin(srv->pipeline, order[i]);
	for (i = 0; i < n; i++) {
		struct pipeline_entry *e = (struct pipeline_entry *)(uintptr_t)order[i];

		if (e->unregister_cb != NULL)
			pop3d_plugin_remove(srv, e);
	}
	free(order);
}

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
		pop3d_free_plugins(srv);
	listener_free_all(srv);
	/* Live clients go without events; dead ones await their ev_defer. */
	while ((c = TAILQ_FIRST(&srv->clients)) != NULL) {
		TAILQ_REMOVE(&srv->clients, c, entry);
		c->dead = 1;
		client_destroy(c);
	}
	linger_free_all(&srv->lingerq);
	client_slabs_free(srv);
	if (srv->addrs != NULL) {
		for (i = 0; i < 1024; i++) {
			struct addrcount_entry *e, *n;

			for (e = srv->addrs->b[i]; e != NULL; e = n) {
				n = e->next;
				free(e);
			}
		}
		free(srv->addrs);
	}
	pipeline_free(srv->pipeline);
	tls_clear(&srv->tls);
	fileopen_root_clear(&srv->file_root);
	free(srv->trusted);
	if (srv->ev_stop)
		event_free(srv->ev_stop);
	if (srv->ev_resume)
		event_free(srv->ev_resume);
	if (srv->ev_flush)
		event_free(srv->ev_flush);
	if (srv->ev_defer)
		event_free(srv->ev_defer);
	if (srv->ev_idle)
		event_free(srv->ev_idle);
	if (srv->ev_resp)
		event_free(srv->ev_resp);
	free(srv->rbuf);
	if (srv->sink)
		evbuffer_free(srv->sink);
	for (i = 0; srv->extra_verbs != NULL && srv->extra_verbs[i] != NULL; i++)
		free(srv->extra_verbs[i]);
	free(srv->extra_verbs);
	free(srv->hash);
	free(srv->linebuf);
	free(srv->alias);
	free(srv->hostname);
	free(srv->version);
	free(srv);
}

int
pop3d_listen(struct pop3d *srv, const char *addr, int port)
{
	return pop3d_listen_flags(srv, addr, port, 0);
}

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

int
pop3d_tls_available(struct pop3d *srv)
{
	return srv->tls.ctx != NULL;
}

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

size_t
pop3d_getsockname(struct pop3d *srv, struct pop3d_sockname *out, size_t n)
{
	struct listener *l;
	size_t k = 0;

	TAILQ_FOREACH(l, &srv->listeners, entry) {
		if (k < n)
			out[k] = l->name;
		k++;
	}
	return k;
}

const char *
pop3d_session_id(struct pop3d *srv)
{
	return srv->session_id;
}

const struct pop3d_options *
pop3d_get_options(struct pop3d *srv)
{
	return &srv->opts;
}

struct event_base *
pop3d_get_base(struct pop3d *srv)
{
	return srv->base;
}

/* Client table: ids are never reused, so a stale id simply finds nothing. */
static size_t
server_hash(struct pop3d *srv, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 20) & (srv->hash_size - 1);
}

struct client *
server_client_find(struct pop3d *srv, uint64_t id)
{
	struct client *c;

	for (c = srv->hash[server_hash(srv, id)]; c != NULL; c = c->hnext)
		if (c->id == id)
			return c;
	return NULL;
}

static void
server_rehash(struct pop3d *srv)
{
	struct client **nh, *c;
	size_t oldsize = srv->hash_size;

	if ((nh = calloc(oldsize * 2, sizeof(*nh))) == NULL)
		return;
	free(srv->hash);
	srv->hash = nh;
	srv->hash_size = oldsize * 2;
	TAILQ_FOREACH(c, &srv->clients, entry) {
		size_t h = server_hash(srv, c->id);

		c->hnext = srv->hash[h];
		srv->hash[h] = c;
	}
}

void
server_client_link(struct pop3d *srv, struct client *c)
{
	size_t h;

	TAILQ_INSERT_TAIL(&srv->clients, c, entry);
	srv->nclients++;
	if (srv->nclients * 2 > srv->hash_size)
		server_rehash(srv);
	else {
		h = server_hash(srv, c->id);
		c->hnext = srv->hash[h];
		srv->hash[h] = c;
	}
}

/* A client died: it no longer counts against the limits.  It stays in the
 * table (found by id, marked dead) until it is freed. */
void
server_client_retire(struct pop3d *srv, struct client *c)
{
	srv->nclients--;
	if (c->addr_counted)
		server_addr_release(srv, c->peer);
}

void
server_client_unlink(struct pop3d *srv, struct client *c)
{
	struct client **pp;

	for (pp = &srv->hash[server_hash(srv, c->id)]; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	TAILQ_REMOVE(&srv->clients, c, entry);
}

/* A client was freed: finish a shutdown, or accept again after EMFILE. */
void
server_client_gone(struct pop3d *srv)
{
	struct timeval tv = { 0, 0 };

	if (srv->shutting_down && srv->nclients == 0)
		evtimer_add(srv->ev_stop, &tv);
	listener_resume(srv);
}

static unsigned
server_addr_hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h & 1023;
}

int
server_addr_acquire(struct pop3d *srv, const char *addr)
{
	unsigned h = server_addr_hash(addr);
	struct addrcount_entry *e;

	for (e = srv->addrs->b[h]; e != NULL; e = e->next)
		if (strcmp(e->addr, addr) == 0)
			break;
	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		snprintf(e->addr, sizeof(e->addr), "%s", addr);
		e->next = srv->addrs->b[h];
		srv->addrs->b[h] = e;
	}
	if (srv->opts.max_per_address > 0 && e->count >= srv->opts.max_per_address)
		return -1;
	e->count++;
	return 0;
}

void
server_addr_release(struct pop3d *srv, const char *addr)
{
	struct addrcount_entry **pp, *e;

	for (pp = &srv->addrs->b[server_addr_hash(addr)]; (e = *pp) != NULL; pp = &e->next)
		if (strcmp(e->addr, addr) == 0) {
			if (--e->count == 0) {
				*pp = e->next;
				free(e);
			}
			return;
		}
}

/* Trace one event at -vv; secrets masked by the rule of mask.c. */
static void
server_trace(const struct pop3d_event *ev)
{
	char buf[512];
	size_t o = 0;
	int i, rule;

	if (log_verbose() < 2)
		return;
	buf[0] = '\0';
	for (i = 0; i < ev->argc && o < sizeof(buf) - 1; i++) {
		const struct pop3d_arg *a = &ev->argv[i];
		int n;

		if (a->type == POP3D_ARG_INT)
			n = snprintf(buf + o, sizeof(buf) - o, " arg%d=%lld", i, a->i);
		else {
			/* Strings are cut at 80 octets (escaped, at most 4 each);
			 * a masked one is masked whole, its marker never cut. */
			char safe[4 * 80 + sizeof(" " MASK_HIDDEN)];

			rule = mask_event_arg(ev->name, i);
			mask_arg(safe, sizeof(safe), rule, a->s, rule == MASK_NONE && a->len > 80 ?
			    80 : a->len, MASK_LOG);
			n = snprintf(buf + o, sizeof(buf) - o, " arg%d=\"%s\"", i, safe);
		}
		if (n < 0)
			break;
		o += (size_t)n;
	}
	if (o >= sizeof(buf))
		buf[sizeof(buf) - 1] = '\0';
	log_trace("client=%llu event=%s seq=%llu%s", (unsigned long long)ev->client, ev->name,
	    (unsigned long long)ev->seq, buf);
}

/* Every event passes here: sequence number, trace, pipeline.  Returns the
 * PIPELINE_* flags; a suspended event about a client holds that client. */
int
server_dispatch(struct pop3d *srv, struct pop3d_event *ev)
{
	struct client *c;
	int flags;

	if (ev->type == POP3D_PLUGIN_POP3D)
		ev->seq = ++srv->next_seq;
	server_trace(ev);
	flags = pipeline_dispatch(srv->pipeline, srv, ev);
	if ((flags & PIPELINE_PENDING) && ev->client != 0 &&
	    (c = server_client_find(srv, ev->client)) != NULL)
		c->jobs++;
	return flags;
}

void
server_emit(struct pop3d *srv, const char *name, struct client *c, struct pop3d_arg *argv,
    int argc)
{
	struct pop3d_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.name = name;
	if (c != NULL) {
		ev.client = c->id;
		ev.state = c->state;
		ev.tls = c->tls;
	}
	/* Plugins may replace (and free) string arguments: give them copies. */
	ev.argc = argc;
	if ((ev.argv = pipeline_args_copy(argv, argc)) == NULL)
		return;
	server_dispatch(srv, &ev);
	pipeline_args_free(ev.argv, ev.argc);
}

/* Consumers. */
uint64_t
pop3d_consumer_add(struct pop3d *srv, const char *name, pop3d_consumer_cb cb, void *arg)
{
	if (cb == NULL)
		return 0;
	return pipeline_consumer_add(srv->pipeline, name, cb, arg);
}

void
pop3d_consumer_del(struct pop3d *srv, uint64_t id)
{
	struct pipeline_entry *e = pipeline_find(srv->pipeline, id);
	struct client *c, *next;

	if (e == NULL || e->is_plugin)
		return;
	pipeline_remove(srv->pipeline, e);
	for (c = TAILQ_FIRST(&srv->clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!c->dead)
			client_consumer_gone(c, id);
	}
}

/* Normalise and validate names; on success *out holds malloc'd patterns. */
static int
pop3d_names(struct pop3d *srv, const char *const *names, size_t n, char ***out, size_t *bad)
{
	char **v;
	size_t i;

	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -POP3D_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		if (names[i] == NULL || !pop3d_event_known(srv, names[i]) ||
		    (v[i] = pipeline_normalise(names[i])) == NULL) {
			if (bad != NULL)
				*bad = i;
			while (i > 0)
				free(v[--i]);
			free(v);
			return -POP3D_ERR_UNKNOWN_EVENT;
		}
	}
	*out = v;
	return 0;
}

static void
pop3d_names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
pop3d_entry_register(struct pop3d *srv, struct pipeline_entry *e, int type,
    const char *const *names, size_t n, size_t *bad)
{
	char **v;
	size_t i;
	int rv;

	if (e == NULL)
		return -POP3D_ERR_INVALID;
	if (n > PIPELINE_MAX_PATTERNS)
		return -POP3D_ERR_LIMIT;
	if (type == POP3D_PLUGIN_POP3C) {
		/* One event: "response" ("all" means the same). */
		for (i = 0; i < n; i++)
			if (names[i] == NULL || (strcmp(names[i], "response") != 0 &&
			    strcmp(names[i], "all") != 0)) {
				if (bad != NULL)
					*bad = i;
				return -POP3D_ERR_UNKNOWN_EVENT;
			}
		return pipeline_register(e, type, n > 0 ? (const char *const[]){ "response" } :
		    NULL, n > 0 ? 1 : 0) == -1 ? -POP3D_ERR_LIMIT : 0;
	}
	if ((rv = pop3d_names(srv, names, n, &v, bad)) != 0)
		return rv;
	rv = pipeline_register(e, type, (const char *const *)v, n) == -1 ? -POP3D_ERR_LIMIT : 0;
	pop3d_names_free(v, n);
	return rv;
}

static int
pop3d_entry_unregister(struct pop3d *srv, struct pipeline_entry *e, int type,
    const char *const *names, size_t n)
{
	char **v;
	size_t i;

	(void)srv;
	if (e == NULL)
		return -POP3D_ERR_INVALID;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -POP3D_ERR_NOMEM;
	for (i = 0; i < n; i++)
		if (names[i] == NULL || (v[i] = pipeline_normalise(names[i])) == NULL) {
			pop3d_names_free(v, i);
			return -POP3D_ERR_INVALID;
		}
	if (type == POP3D_PLUGIN_POP3C)
		for (i = 0; i < n; i++)
			if (strcmp(v[i], "*") == 0) {
				free(v[i]);
				v[i] = strdup("response");
			}
	pipeline_unregister(e, type, (const char *const *)v, n);
	pop3d_names_free(v, n);
	return 0;
}

int
pop3d_consumer_register(struct pop3d *srv, uint64_t id, const char *const *names, size_t n,
    size_t *bad)
{
	struct pipeline_entry *e = pipeline_find(srv->pipeline, id);

	return pop3d_entry_register(srv, e != NULL && !e->is_plugin ? e : NULL,
	    POP3D_PLUGIN_POP3D, names, n, bad);
}

int
pop3d_consumer_unregister(struct pop3d *srv, uint64_t id, const char *const *names, size_t n)
{
	struct pipeline_entry *e = pipeline_find(srv->pipeline, id);

	return pop3d_entry_unregister(srv, e != NULL && !e->is_plugin ? e : NULL,
	    POP3D_PLUGIN_POP3D, names, n);
}

size_t
pop3d_consumer_patterns(struct pop3d *srv, uint64_t id, const char ***out)
{
	struct pipeline_entry *e = pipeline_find(srv->pipeline, id);

	if (e == NULL) {
		*out = NULL;
		return 0;
	}
	*out = (const char **)e->patterns[POP3D_PLUGIN_POP3D];
	return e->npatterns[POP3D_PLUGIN_POP3D];
}

/* Plugins. */
int
pop3d_plugin_add(struct pop3d *srv, const char *alias, int priority, pop3d_plugin_cb cb,
    void *arg)
{
	if (cb == NULL || pipeline_plugin_add(srv->pipeline, alias, priority, cb, arg) == -1)
		return -1;
	return (int)pipeline_plugin_order(srv->pipeline, NULL, 0);
}

/* Remove a plugin entry; its unregister entry point runs first. */
static int
pop3d_plugin_remove(struct pop3d *srv, struct pipeline_entry *e)
{
	if (e == NULL)
		return -1;
	if (e->unregister_cb != NULL) {
		void (*cb)(struct pop3d *, const char *, void *) = e->unregister_cb;

		e->unregister_cb = NULL;
		cb(srv, e->name, e->arg);
	}
	pipeline_remove(srv->pipeline, e);
	return 0;
}

int
pop3d_plugin_del(struct pop3d *srv, const char *alias)
{
	return pop3d_plugin_remove(srv, alias != NULL ? pipeline_find_plugin(srv->pipeline,
	    alias) : NULL);
}

int
pop3d_plugin_del_arg(struct pop3d *srv, void *arg)
{
	const char *order[256];
	size_t n, i;
	struct pipeline_entry *e;

	n = pipeline_plugin_order(srv->pipeline, order, 256);
	for (i = 0; i < n && i < 256; i++)
		if ((e = pipeline_find_plugin(srv->pipeline, order[i])) != NULL && e->arg == arg)
			return pop3d_plugin_remove(srv, e);
	return -1;
}

int
pop3d_plugin_load(struct pop3d *srv, const struct pop3d_plugin_def *def, const char *alias,
    const char *arg)
{
	struct pipeline_entry *e;
	void *state = NULL;

	if (def == NULL || def->abi != POP3D_ABI_VERSION) {
		errno = EPROTO;
		return -1;
	}
	if (alias == NULL)
		alias = def->name;
	if (def->handler == NULL || alias == NULL ||
	    pipeline_plugin_add(srv->pipeline, alias, def->priority, def->handler, NULL) == -1) {
		errno = EEXIST;
		return -1;
	}
	e = pipeline_find_plugin(srv->pipeline, alias);
	if (def->register_cb != NULL && def->register_cb(srv, alias, arg, &state) != 0) {
		pipeline_remove(srv->pipeline, e);
		errno = EINVAL;
		return -1;
	}
	e->arg = state;
	e->unregister_cb = def->unregister_cb;
	return (int)pipeline_plugin_order(srv->pipeline, NULL, 0);
}

int
pop3d_plugin_register(struct pop3d *srv, const char *alias, const char *const *names, size_t n,
    size_t *bad)
{
	return pop3d_plugin_register_type(srv, alias, POP3D_PLUGIN_POP3D, names, n, bad);
}

int
pop3d_plugin_unregister(struct pop3d *srv, const char *alias, const char *const *names,
    size_t n)
{
	return pop3d_plugin_unregister_type(srv, alias, POP3D_PLUGIN_POP3D, names, n);
}

int
pop3d_plugin_register_type(struct pop3d *srv, const char *alias, enum pop3d_plugin_type type,
    const char *const *names, size_t n, size_t *bad)
{
	if (type != POP3D_PLUGIN_POP3D && type != POP3D_PLUGIN_POP3C)
		return -POP3D_ERR_INVALID;
	return pop3d_entry_register(srv, alias != NULL ? pipeline_find_plugin(srv->pipeline,
	    alias) : NULL, (int)type, names, n, bad);
}

int
pop3d_plugin_unregister_type(struct pop3d *srv, const char *alias, enum pop3d_plugin_type type,
    const char *const *names, size_t n)
{
	if (type != POP3D_PLUGIN_POP3D && type != POP3D_PLUGIN_POP3C)
		return -POP3D_ERR_INVALID;
	return pop3d_entry_unregister(srv, alias != NULL ? pipeline_find_plugin(srv->pipeline,
	    alias) : NULL, (int)type, names, n);
}

size_t
pop3d_plugin_patterns(struct pop3d *srv, const char *alias, enum pop3d_plugin_type type,
    const char ***out)
{
	struct pipeline_entry *e = alias != NULL ? pipeline_find_plugin(srv->pipeline, alias) :
	    NULL;

	if (e == NULL || (type != POP3D_PLUGIN_POP3D && type != POP3D_PLUGIN_POP3C)) {
		*out = NULL;
		return 0;
	}
	*out = (const char **)e->patterns[type];
	return e->npatterns[type];
}

int
pop3d_plugin_get(struct pop3d *srv, const char *alias, int *priority, void **arg)
{
	struct pipeline_entry *e = alias != NULL ? pipeline_find_plugin(srv->pipeline, alias) :
	    NULL;

	if (e == NULL)
		return -1;
	if (priority != NULL)
		*priority = e->priority;
	if (arg != NULL)
		*arg = e->arg;
	return 0;
}

int
pop3d_hook_resolve(struct pop3d *srv, uint64_t hook, int verdict, const struct pop3d_arg *argv,
    int argc)
{
	if (argc < 0 || (argc > 0 && argv == NULL))
		return -POP3D_ERR_INVALID;
	return pipeline_resolve(srv->pipeline, srv, hook, verdict, argv, argc);
}

int
pop3d_hook_pending(struct pop3d *srv, uint64_t hook)
{
	return pipeline_pending(srv->pipeline, hook);
}

int
pop3d_plugin_set_cancel(struct pop3d *srv, const char *alias, pop3d_cancel_cb cb)
{
	struct pipeline_entry *e;

	if (alias == NULL || (e = pipeline_find_plugin(srv->pipeline, alias)) == NULL)
		return -1;
	e->cancel_cb = cb;
	return 0;
}

/* Of a departed client's cancelled events, consumers still get
 * pop3d_connection: every pop3d_disconnected they see has its connection. */
static int
server_cancel_deliver(const struct pop3d_event *ev)
{
	return ev->type == POP3D_PLUGIN_POP3D && strcmp(ev->name, "pop3d_connection") == 0;
}

/* A client went away: cancel every event of it that waits on a verdict. */
void
server_client_cancel(struct pop3d *srv, uint64_t client)
{
	int n = pipeline_cancel_client(srv->pipeline, srv, client, server_cancel_deliver);

	if (n > 0)
		log_info("client=%llu event=hooks-cancelled count=%d", (unsigned long long)client,
		    n);
}

size_t
pop3d_plugin_order(struct pop3d *srv, const char **aliases, size_t n)
{
	return pipeline_plugin_order(srv->pipeline, aliases, n);
}

/* The seed's methods. */
static struct client *
pop3d_client(struct pop3d *srv, uint64_t id)
{
	struct client *c = server_client_find(srv, id);

	return c != NULL && !c->dead ? c : NULL;
}

int
pop3d_send_to_client(struct pop3d *srv, uint64_t id, uint64_t tag, const char *line, size_t len,
    int flags)
{
	struct client *c = pop3d_client(srv, id);

	if (c == NULL)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (line == NULL)
		return -POP3D_ERR_INVALID;
	return client_send_line(c, tag, line, len, flags);
}

int
pop3d_send_lines(struct pop3d *srv, uint64_t id, uint64_t tag, const char *status,
    const struct iovec *lines, size_t n)
{
	struct client *c = pop3d_client(srv, id);

	if (c == NULL)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (status == NULL || (n > 0 && lines == NULL))
		return -POP3D_ERR_INVALID;
	return client_send_lines(c, tag, status, lines, n);
}

int
pop3d_response_open(struct pop3d *srv, uint64_t id, uint64_t tag)
{
	struct client *c = pop3d_client(srv, id);

	return c != NULL && client_response_open(c, tag);
}

int
pop3d_send_file(struct pop3d *srv, uint64_t id, uint64_t tag, const char *status,
    const char *path, long top_lines)
{
	struct client *c = pop3d_client(srv, id);

	if (c == NULL)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (status == NULL || path == NULL || top_lines < -1)
		return -POP3D_ERR_INVALID;
	return client_send_file(c, tag, status, path, top_lines);
}

int
pop3d_disconnect(struct pop3d *srv, uint64_t id, const char *text)
{
	struct client *c = pop3d_client(srv, id);

	if (c == NULL || c->closing)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (text != NULL && !line_clean(text, strlen(text)))
		return -POP3D_ERR_INVALID;
	client_close(c, "disconnect requested", text);
	return 0;
}

int
pop3d_send_event(struct pop3d *srv, const char *name, const struct pop3d_arg *argv, int argc,
    uint64_t origin)
{
	struct pop3d_event ev;
	struct pop3d_arg *copy;
	struct client *c;
	char *full;
	int i;

	if (name == NULL || strpbrk(name, "*?[") != NULL || strcmp(name, "all") == 0 ||
	    argc < 0 || (argc > 0 && argv == NULL))
		return -POP3D_ERR_INVALID;
	if (!pop3d_event_known(srv, name))
		return -POP3D_ERR_UNKNOWN_EVENT;
	if ((full = pipeline_normalise(name)) == NULL)
		return -POP3D_ERR_NOMEM;
	/* Handlers may rewrite arguments: give them a private copy. */
	if ((copy = calloc((size_t)argc + 1, sizeof(*copy))) == NULL) {
		free(full);
		return -POP3D_ERR_NOMEM;
	}
	for (i = 0; i < argc; i++) {
		copy[i] = argv[i];
		if (argv[i].type != POP3D_ARG_INT && argv[i].s != NULL &&
		    (copy[i].s = malloc(argv[i].len + 1)) != NULL) {
			memcpy(copy[i].s, argv[i].s, argv[i].len);
			copy[i].s[argv[i].len] = '\0';
		}
	}
	memset(&ev, 0, sizeof(ev));
	ev.name = full;
	ev.origin = origin;
	ev.argc = argc;
	ev.argv = copy;
	if (argc > 0 && argv[0].type == POP3D_ARG_INT && argv[0].i > 0 &&
	    (c = pop3d_client(srv, (uint64_t)argv[0].i)) != NULL) {
		ev.client = c->id;
		ev.state = c->state;
		ev.tls = c->tls;
	}
	server_dispatch(srv, &ev);
	for (i = 0; i < ev.argc; i++)
		if (ev.argv[i].type != POP3D_ARG_INT)
			free(ev.argv[i].s);
	free(copy);
	free(full);
	return 0;
}

void
pop3d_set_stopped_cb(struct pop3d *srv, void (*cb)(struct pop3d *, void *), void *arg)
{
	srv->stopped_cb = cb;
	srv->stopped_arg = arg;
}

int
pop3d_is_shutting_down(struct pop3d *srv)
{
	return srv->shutting_down;
}

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
		client_close(c, "shutdown", NULL);
	}
	if (srv->nclients == 0)
		tv.tv_sec = 0;
	evtimer_add(srv->ev_stop, &tv);
}

uint64_t
pop3d_next_seq(struct pop3d *srv)
{
	return ++srv->next_seq;
}

int
pop3d_has_handler(struct pop3d *srv, const char *name)
{
	char *full = pipeline_normalise(name);
	int rv;

	if (full == NULL)
		return 0;
	rv = pipeline_has_handler(srv->pipeline, POP3D_PLUGIN_POP3D, full);
	free(full);
	return rv;
}

/* The events the core can emit (client verbs are added from the table). */
static const char *const pop3d_core_events[] = {
	"pop3d_connection", "pop3d_disconnected", "pop3d_listener_failed",
	"pop3d_registered", "pop3d_shutdown", "pop3d_events_dropped", "pop3d_auth_data",
	"pop3d_tls", "pop3d_hook_timeout", "pop3d_hook_cancelled",
	NULL
};

/* Whether pattern p (normalised) matches at least one possible event. */
static int
pop3d_pattern_possible(struct pop3d *srv, const char *p)
{
	const char *const *v;
	const struct verb *vb;
	char name[LINE_VERB_MAX + 16];
	size_t i;

	for (v = pop3d_core_events; *v != NULL; v++)
		if (pipeline_match(p, *v))
			return 1;
	for (vb = verbs_table; vb->name != NULL; vb++) {
		snprintf(name, sizeof(name), "pop3d_cmd_%s", vb->name);
		if (pipeline_match(p, name))
			return 1;
	}
	for (i = 0; srv->extra_verbs[i] != NULL; i++) {
		char lower[LINE_VERB_MAX + 1];
		size_t k;

		for (k = 0; k < LINE_VERB_MAX && srv->extra_verbs[i][k]; k++)
			lower[k] = (char)(srv->extra_verbs[i][k] | 0x20);
		lower[k] = '\0';
		snprintf(name, sizeof(name), "pop3d_cmd_%s", lower);
		if (pipeline_match(p, name))
			return 1;
	}
	/* Custom events injected with send_event live under pop3d_x_. */
	return strncmp(p, "pop3d_x_", 8) == 0 && p[8] != '\0';
}

int
pop3d_event_known(struct pop3d *srv, const char *name)
{
	char *full;
	int rv;

	if (name == NULL || *name == '\0' || strlen(name) > 128)
		return 0;
	if ((full = pipeline_normalise(name)) == NULL)
		return 0;
	rv = pop3d_pattern_possible(srv, full);
	free(full);
	return rv;
}

void
pop3d_clients(struct pop3d *srv, int (*cb)(const struct pop3d_client_info *, void *), void *arg)
{
	struct pop3d_client_info ci;
	struct client *c;

	TAILQ_FOREACH(c, &srv->clients, entry) {
		if (c->dead)
			continue;
		client_info(c, &ci);
		if (cb(&ci, arg) != 0)
			break;
	}
}

int
pop3d_client_info(struct pop3d *srv, uint64_t id, struct pop3d_client_info *out)
{
	struct client *c = pop3d_client(srv, id);

	if (c == NULL)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	client_info(c, out);
	return 0;
}

long long
pop3d_file_octets(const char *path, long top_lines)
{
	char in[16384], out[STUFF_MAX_OUT(16384)];
	struct stuff st;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	stuff_init(&st, top_lines);
	while (stuff_wants_more(&st) && (n = read(fd, in, sizeof(in))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		stuff_run(&st, in, (size_t)n, out);
	}
	close(fd);
	if (stuff_wants_more(&st)) {
		if (st.cr || !st.bol)
			st.octets += 2;
	}
	return (long long)st.octets;
}
