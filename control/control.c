/*
 * control.c - the control socket: accept, peer credentials, framing, and
 * bounded non-blocking output to each controller.
 *
 * Why the caps: a controller that stops reading must never delay POP3
 * clients or other controllers.  Its backlog is capped (max_output) and it
 * must make progress at least every stall_seconds while it has a backlog;
 * otherwise it is dropped with a logged reason.  A lossy controller instead
 * has events dropped while its backlog is over CONTROL_LOSSY_HIGH; replies
 * are never dropped.  Input lines are capped before their newline arrives.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "../src/log.h"
#include "controller.h"
#include "pop3d.h"

static void control_read_cb(struct bufferevent *, void *);
static void control_write_cb(struct bufferevent *, void *);
static void control_event_cb(struct bufferevent *, short, void *);
static void control_outbuf_cb(struct evbuffer *, const struct evbuffer_cb_info *, void *);

static time_t
control_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void
control_options_init(struct control_options *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = 0600;
	o->max_controllers = CONTROL_MAX_CONTROLLERS;
	o->max_line = CONTROL_MAX_LINE;
	o->max_output = CONTROL_MAX_OUTPUT;
	o->stall_seconds = CONTROL_STALL_SECONDS;
}

int
control_options_allow(struct control_options *o, uid_t uid)
{
	uid_t *n = realloc(o->allow, (o->nallow + 1) * sizeof(*n));

	if (n == NULL)
		return -1;
	n[o->nallow++] = uid;
	o->allow = n;
	return 0;
}

void
control_options_clear(struct control_options *o)
{
	free(o->allow);
	o->allow = NULL;
	o->nallow = 0;
}

/*
 * Append one line; a controller past the output cap is dropped.  Why
 * deferred: control_write runs inside hook dispatch, hook timeouts and
 * event delivery, whose callers still hold the hook or the dispatch it
 * would free; the controller stops receiving at once and goes from its
 * defer event, the one path by which a controller is dropped late.
 */
void
control_write(struct controller *c, const char *line, size_t len)
{
	struct evbuffer *out;

	if (c->dead || c->drop_reason != NULL || line == NULL)
		return;
	out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) == 0)
		c->last_progress = control_now();
	evbuffer_add(out, line, len);
	if (evbuffer_get_length(out) > c->ctl->opts.max_output)
		control_drop(c, "output backlog over the cap");
}

/* Mark c to be dropped from its defer event: nothing more is read from it
 * or written to it meanwhile, and no hook is sent to it. */
void
control_drop(struct controller *c, const char *reason)
{
	if (c->dead || c->drop_reason != NULL)
		return;
	c->drop_reason = reason;
	bufferevent_disable(c->bev, EV_READ);
	event_active(c->ev_defer, EV_TIMEOUT, 1);
}

void
control_reply_ok(struct controller *c, json_t *id, json_t *result)
{
	size_t len;
	char *s = codec_reply_ok(id, result, &len);

	control_write(c, s, len);
	free(s);
}

void
control_reply_error(struct controller *c, json_t *id, const char *code, const char *fmt, ...)
{
	char msg[512];
	size_t len;
	va_list ap;
	char *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_debug("controller=%llu event=error code=%s message=\"%s\"",
	    (unsigned long long)c->id, code, msg);
	s = codec_reply_error(id, code, msg, &len);
	control_write(c, s, len);
	free(s);
}

/* Write an event outside the pipeline to one controller. */
void
control_write_event(struct controller *c, const char *name, struct pop3d_arg *argv, int argc)
{
	struct pop3d_event ev;
	size_t len;
	char *s;

	memset(&ev, 0, sizeof(ev));
	ev.name = name;
	ev.seq = pop3d_next_seq(c->ctl->srv);
	ev.argc = argc;
	ev.argv = argv;
	if ((s = codec_event(&ev, &len)) != NULL)
		control_write(c, s, len);
	free(s);
}

/* The seed's pop3d_registered: ARG0 describes the server. */
void
control_send_registered(struct controller *c)
{
	const struct pop3d_options *o = pop3d_get_options(c->ctl->srv);
	struct pop3d_arg a;
	json_t *d;
	char *s;

	d = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "server", "pop3d", "alias", o->alias,
	    "hostname", o->hostname, "session_id", pop3d_session_id(c->ctl->srv), "pid",
	    (json_int_t)getpid(), "listeners", control_listeners(c->ctl));
	s = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	memset(&a, 0, sizeof(a));
	a.type = POP3D_ARG_JSON;
	a.s = s;
	a.len = s != NULL ? strlen(s) : 0;
	control_write_event(c, "pop3d_registered", &a, 1);
	free(s);
}

/* Every controller receives pop3d_shutdown, registered or not. */
void
control_broadcast_shutdown(struct control *ctl)
{
	struct controller *c;

	if (ctl->shutting_down)
		return;
	ctl->shutting_down = 1;
	if (ctl->evl != NULL)
		evconnlistener_disable(ctl->evl);
	TAILQ_FOREACH(c, &ctl->controllers, entry)
		control_write_event(c, "pop3d_shutdown", NULL, 0);
}

void
control_shutdown(struct control *ctl)
{
	if (ctl != NULL)
		control_broadcast_shutdown(ctl);
}

void
control_set_shutdown_cb(struct control *ctl, void (*cb)(void *), void *arg)
{
	ctl->shutdown_cb = cb;
	ctl->shutdown_arg = arg;
}

json_t *
control_listeners(struct control *ctl)
{
	struct pop3d_sockname names[32];
	size_t n, i;
	json_t *a = json_array();

	n = pop3d_getsockname(ctl->srv, names, 32);
	for (i = 0; i < n && i < 32; i++)
		json_array_append_new(a, json_pack("{s:s, s:i, s:b, s:b}", "address",
		    names[i].address, "port", names[i].port, "tls", names[i].tls, "proxy",
		    names[i].proxy));
	return a;
}

/* The consumer callback: one JSON line per event, encoded once. */
static void
control_event(struct pop3d *srv, const struct pop3d_event *ev, void *arg)
{
	struct controller *c = arg;
	struct control *ctl = c->ctl;
	size_t len;
	char *s;

	(void)srv;
	if (c->dead || c->closing || c->drop_reason != NULL)
		return;
	if (c->lossy && c->behind) {
		c->dropped++;
		return;
	}
	if (ctl->cache == NULL || ctl->cache_seq != ev->seq) {
		if ((s = codec_event(ev, &len)) == NULL)
			return;
		free(ctl->cache);
		ctl->cache = s;
		ctl->cache_len = len;
		ctl->cache_seq = ev->seq;
	}
	control_write(c, ctl->cache, ctl->cache_len);
	if (c->lossy && !c->dead &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > CONTROL_LOSSY_HIGH)
		c->behind = 1;
}

/* Free a controller that is on no list but, when dead, ctl->dead. */
static void
control_free_controller(struct controller *c)
{
	if (c->dead)
		TAILQ_REMOVE(&c->ctl->dead, c, entry);
	if (c->flush_queued)
		TAILQ_REMOVE(&c->ctl->flushq, c, fentry);
	bufferevent_free(c->bev);
	event_free(c->ev_defer);
	free(c);
}

/* The defer event: drop a controller marked by control_drop (its kill
 * queues this event again), then free a dead one. */
static void
control_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct controller *c = arg;

	(void)fd;
	(void)what;
	if (!c->dead && c->drop_reason != NULL) {
		control_kill(c, c->drop_reason);
		return;
	}
	if (c->dead)
		control_free_controller(c);
}

/* The one path by which a controller goes: its registrations go with it. */
void
control_kill(struct controller *c, const char *reason)
{
	struct control *ctl = c->ctl;

	if (c->dead)
		return;
	c->dead = 1;
	log_info("controller=%llu event=disconnect reason=\"%s\" name=\"%s\"",
	    (unsigned long long)c->id, reason, c->name);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	hook_controller_gone(c);
	TAILQ_REMOVE(&ctl->controllers, c, entry);
	TAILQ_INSERT_TAIL(&ctl->dead, c, entry);	/* freed from ev_defer */
	ctl->ncontrollers--;
	if (c->consumer != 0)
		pop3d_consumer_del(ctl->srv, c->consumer);
	event_active(c->ev_defer, EV_TIMEOUT, 1);
}

/* Close once the replies it is owed are written. */
static void
control_close(struct controller *c, const char *reason)
{
	if (c->dead || c->closing)
		return;
	c->closing = 1;
	c->reason = reason;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		control_kill(c, reason);
}

/* Run one complete line. */
static void
control_line(struct controller *c, const char *line, size_t len)
{
	struct codec_cmd cmd;
	const char *code;
	char msg[256];

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return;		/* blank lines are ignored (handy with socat) */
	if ((code = codec_decode(line, len, &cmd, msg, sizeof(msg))) != NULL) {
		control_reply_error(c, strcmp(code, "parse_error") == 0 ? NULL : cmd.id, code,
		    "%s", msg);
		codec_cmd_clear(&cmd);
		return;
	}
	command_run(c, &cmd);
	codec_cmd_clear(&cmd);
}

/* Frame input into lines, capping a line before its newline arrives. */
static void
control_process(struct controller *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t max = c->ctl->opts.max_line;

	while (!c->dead && !c->closing && c->drop_reason == NULL) {
		size_t avail = evbuffer_get_length(in);
		struct evbuffer_ptr start, p;
		unsigned char *data;

		if (avail == 0)
			break;
		if (c->scanned > avail)
			c->scanned = 0;
		evbuffer_ptr_set(in, &start, c->scanned, EVBUFFER_PTR_SET);
		p = evbuffer_search(in, "\n", 1, &start);
		if (p.pos < 0) {
			c->scanned = avail;
			if (c->discarding) {
				evbuffer_drain(in, avail);
				c->scanned = 0;
			} else if (avail > max) {
				control_reply_error(c, NULL, "limit_exceeded",
				    "line longer than %zu octets; discarded", max);
				c->discarding = 1;
				evbuffer_drain(in, avail);
				c->scanned = 0;
			}
			break;
		}
		c->scanned = 0;
		if (c->discarding || (size_t)p.pos > max) {
			if (!c->discarding)
				control_reply_error(c, NULL, "limit_exceeded",
				    "line longer than %zu octets; discarded", max);
			c->discarding = 0;
			evbuffer_drain(in, (size_t)p.pos + 1);
			continue;
		}
		data = evbuffer_pullup(in, p.pos + 1);
		control_line(c, (const char *)data, (size_t)p.pos);
		if (!c->dead)
			evbuffer_drain(in, (size_t)p.pos + 1);
	}
	if (!c->dead && !c->closing && c->eof)
		control_close(c, "controller closed its side");
}

static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	control_process(arg);
}

/* Output progress: catch a lossy controller up, finish a close. */
static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	struct controller *c = arg;
	size_t out = evbuffer_get_length(bufferevent_get_output(bev));

	if (c->dead)
		return;
	/* All written: back to direct writes (see control_flush). */
	if (out == 0)
		bufferevent_disable(bev, EV_WRITE);
	c->last_progress = control_now();
	if (out == 0 && c->behind) {
		c->behind = 0;
		if (c->dropped > 0) {
			struct pop3d_arg a;

			memset(&a, 0, sizeof(a));
			a.type = POP3D_ARG_INT;
			a.i = (long long)c->dropped;
			log_info("controller=%llu event=events-dropped count=%llu",
			    (unsigned long long)c->id, (unsigned long long)c->dropped);
			c->dropped = 0;
			control_write_event(c, "pop3d_events_dropped", &a, 1);
			return;
		}
	}
	if (out == 0 && c->closing)
		control_kill(c, c->reason);
}

/*
 * Direct writes, as for POP3 clients (client_flush in src/client.c): a
 * controller's EV_WRITE stays disabled while its output is empty.  Lines
 * appended during a loop iteration queue it on ctl->flushq, and one
 * active event writes each queued controller's output before the loop
 * polls again, saving the arm/disarm system calls and a loop iteration
 * per batch of events.  A short write arms EV_WRITE until all is out.
 */
static void
control_outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct controller *c = arg;
	struct control *ctl = c->ctl;

	(void)buf;
	if (info->n_added == 0 || c->flush_queued || c->dead ||
	    (bufferevent_get_enabled(c->bev) & EV_WRITE))
		return;
	c->flush_queued = 1;
	TAILQ_INSERT_TAIL(&ctl->flushq, c, fentry);
	event_active(ctl->ev_flush, EV_TIMEOUT, 1);
}

/* Write one controller's output now; arm EV_WRITE for the rest. */
static void
control_flush(struct controller *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int n;

	if (c->dead || evbuffer_get_length(out) == 0)
		return;
	/* Socket bufferevents keep their output's front frozen. */
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, bufferevent_getfd(c->bev));
	evbuffer_freeze(out, 1);
	if (n > 0)
		control_write_cb(c->bev, c);	/* progress, as the bufferevent's would */
	if (!c->dead && evbuffer_get_length(out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
}

/* The active event of ctl->flushq. */
static void
control_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;
	struct controller *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&ctl->flushq)) != NULL) {
		TAILQ_REMOVE(&ctl->flushq, c, fentry);
		control_flush(c);	/* still marked: it writes its own appends */
		c->flush_queued = 0;
	}
}

static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct controller *c = arg;

	(void)bev;
	if (c->dead)
		return;
	if (what & BEV_EVENT_EOF) {
		c->eof = 1;
		control_process(c);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		control_kill(c, (what & BEV_EVENT_WRITING) ? "write error" : "read error");
}

/*
 * Accept failed.  Out of descriptors the pending connection stays in the
 * backlog and the socket stays readable: stop accepting (the tick below
 * resumes it a second later) instead of spinning.
 */
static void
control_accept_error(struct evconnlistener *evl, void *arg)
{
	struct control *ctl = arg;
	int err = EVUTIL_SOCKET_ERROR();

	log_warnx("event=control-accept-error error=\"%s\"", strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(evl);
		ctl->accept_paused = 1;
	}
}

/* Once a second: drop controllers whose backlog made no progress; accept
 * again after running out of descriptors. */
static void
control_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;
	struct controller *c, *next;
	time_t now = control_now();

	(void)fd;
	(void)what;
	if (ctl->accept_paused && !ctl->shutting_down) {
		ctl->accept_paused = 0;
		evconnlistener_enable(ctl->evl);
	}
	for (c = TAILQ_FIRST(&ctl->controllers); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 &&
		    now - c->last_progress >= (time_t)ctl->opts.stall_seconds)
			control_kill(c, "no output progress (stalled)");
	}
}

static void
control_greeting(struct controller *c)
{
	const struct pop3d_options *o = pop3d_get_options(c->ctl->srv);
	struct control *ctl = c->ctl;
	json_t *g;
	size_t len;
	char *s;

	g = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:b, s:o, s:{s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:I, s:I, s:I}}",
	    "type", "greeting", "protocol", 1, "server", "pop3d", "version", PACKAGE_VERSION,
	    "alias", o->alias, "hostname", o->hostname, "pid", (json_int_t)getpid(),
	    "session_id", pop3d_session_id(ctl->srv), "controller", (json_int_t)c->id,
	    "stls", pop3d_tls_available(ctl->srv),
	    "listeners", control_listeners(ctl), "limits",
	    "max_line", (json_int_t)o->max_line,
	    "timeout", (json_int_t)o->timeout,
	    "response_timeout", (json_int_t)o->response_timeout,
	    "max_clients", (json_int_t)o->max_clients,
	    "max_per_address", (json_int_t)o->max_per_address,
	    "control_max_line", (json_int_t)ctl->opts.max_line,
	    "control_max_output", (json_int_t)ctl->opts.max_output,
	    "control_stall_seconds", (json_int_t)ctl->opts.stall_seconds,
	    "max_controllers", (json_int_t)ctl->opts.max_controllers);
	if ((s = codec_dump(g, &len)) != NULL)
		control_write(c, s, len);
	free(s);
}

/* Refuse a controller at accept with one error line. */
static void
control_refuse(int fd, const char *code, const char *why)
{
	size_t len;
	char *s = codec_reply_error(NULL, code, why, &len);

	if (s != NULL)
		(void)send(fd, s, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	free(s);
	close(fd);
}

static int
control_uid_allowed(struct control *ctl, uid_t uid)
{
	size_t i;

	if (ctl->opts.nallow == 0)
		return uid == 0 || uid == geteuid();
	for (i = 0; i < ctl->opts.nallow; i++)
		if (ctl->opts.allow[i] == uid)
			return 1;
	return 0;
}

static void
control_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct control *ctl = arg;
	struct controller *c;
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	(void)evl;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == -1) {
		log_warn("event=controller-refused reason=\"no peer credentials\"");
		close(fd);
		return;
	}
	if (!control_uid_allowed(ctl, cred.uid)) {
		log_warnx("event=controller-refused reason=\"uid not allowed\" uid=%lu pid=%ld",
		    (unsigned long)cred.uid, (long)cred.pid);
		control_refuse(fd, "permission_denied", "uid not allowed on this socket");
		return;
	}
	if (ctl->ncontrollers >= ctl->opts.max_controllers) {
		log_warnx("event=controller-refused reason=\"max-controllers\" uid=%lu pid=%ld",
		    (unsigned long)cred.uid, (long)cred.pid);
		control_refuse(fd, "limit_exceeded", "too many controllers");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->id = ++ctl->next_id;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	c->connected = control_now();
	c->last_progress = c->connected;
	snprintf(c->name, sizeof(c->name), "controller-%llu", (unsigned long long)c->id);
	c->bev = bufferevent_socket_new(pop3d_get_base(ctl->srv), fd, BEV_OPT_CLOSE_ON_FREE);
	c->ev_defer = event_new(pop3d_get_base(ctl->srv), -1, 0, control_defer_cb, c);
	if (c->bev == NULL || c->ev_defer == NULL ||
	    (c->consumer = pop3d_consumer_add(ctl->srv, c->name, control_event, c)) == 0) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->ev_defer != NULL)
			event_free(c->ev_defer);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&ctl->controllers, c, entry);
	ctl->ncontrollers++;
	bufferevent_setcb(c->bev, control_read_cb, control_write_cb, control_event_cb, c);
	/* Write callback after every write: that is the progress signal. */
	bufferevent_setwatermark(c->bev, EV_WRITE, ctl->opts.max_output * 2, 0);
	log_info("controller=%llu event=connect uid=%lu gid=%lu pid=%ld",
	    (unsigned long long)c->id, (unsigned long)cred.uid, (unsigned long)cred.gid,
	    (long)cred.pid);
	bufferevent_disable(c->bev, EV_WRITE);
	evbuffer_add_cb(bufferevent_get_output(c->bev), control_outbuf_cb, c);
	control_greeting(c);
	bufferevent_enable(c->bev, EV_READ);
}

/* Probe path: is a live server answering there? */
static int
control_probe(const struct sockaddr_un *sun)
{
	int fd, rv;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rv = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	return rv == 0 ? 1 : 0;
}

/* Create the socket file safely; see pop3d-control(7), "Socket file". */
static int
control_bind(struct control *ctl)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, rv;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(ctl->path) >= sizeof(sun.sun_path)) {
		log_warnx("control socket %s: path too long", ctl->path);
		return -1;
	}
	memcpy(sun.sun_path, ctl->path, strlen(ctl->path));
	if (lstat(ctl->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("control socket %s: exists and is not a socket; not removing it",
			    ctl->path);
			return -1;
		}
		if ((rv = control_probe(&sun)) == 1) {
			log_warnx("control socket %s: a live server answers there; refusing to "
			    "start", ctl->path);
			return -1;
		}
		if (rv == -1 || unlink(ctl->path) == -1) {
			log_warn("control socket %s: cannot replace stale socket", ctl->path);
			return -1;
		}
		log_info("control socket %s: replaced a stale socket", ctl->path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("control socket: socket");
		return -1;
	}
	old = umask(0777 & ~ctl->opts.mode);
	rv = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rv == -1) {
		log_warn("control socket %s: bind", ctl->path);
		close(fd);
		return -1;
	}
	if (ctl->opts.group != NULL) {
		struct group *gr = getgrnam(ctl->opts.group);

		if (gr == NULL || lchown(ctl->path, (uid_t)-1, gr->gr_gid) == -1) {
			log_warnx("control socket %s: cannot set group %s", ctl->path,
			    ctl->opts.group);
			unlink(ctl->path);
			close(fd);
			return -1;
		}
	}
	if (listen(fd, 64) == -1 || lstat(ctl->path, &st) == -1) {
		log_warn("control socket %s: listen", ctl->path);
		unlink(ctl->path);
		close(fd);
		return -1;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	return fd;
}

struct control *
control_new(struct pop3d *srv, const struct control_options *opts)
{
	struct control *ctl;
	struct timeval tv = { 1, 0 };
	int fd;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		return NULL;
	ctl->srv = srv;
	ctl->opts = *opts;
	ctl->opts.allow = NULL;
	ctl->opts.nallow = 0;
	TAILQ_INIT(&ctl->controllers);
	TAILQ_INIT(&ctl->dead);
	TAILQ_INIT(&ctl->plugins);
	TAILQ_INIT(&ctl->pending);
	TAILQ_INIT(&ctl->flushq);
	if ((ctl->path = strdup(opts->path)) == NULL)
		goto fail;
	if (opts->nallow > 0) {
		if ((ctl->opts.allow = calloc(opts->nallow, sizeof(uid_t))) == NULL)
			goto fail;
		memcpy(ctl->opts.allow, opts->allow, opts->nallow * sizeof(uid_t));
		ctl->opts.nallow = opts->nallow;
	}
	if ((fd = control_bind(ctl)) == -1)
		goto fail;
	ctl->evl = evconnlistener_new(pop3d_get_base(srv), control_accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	ctl->ev_tick = event_new(pop3d_get_base(srv), -1, EV_PERSIST, control_tick_cb, ctl);
	ctl->ev_flush = event_new(pop3d_get_base(srv), -1, 0, control_flush_cb, ctl);
	if (ctl->evl == NULL || ctl->ev_tick == NULL || ctl->ev_flush == NULL) {
		if (ctl->evl == NULL)
			close(fd);
		unlink(ctl->path);
		goto fail;
	}
	evconnlistener_set_error_cb(ctl->evl, control_accept_error);
	evtimer_add(ctl->ev_tick, &tv);
	log_info("event=control-listening path=%s mode=%03o", ctl->path,
	    (unsigned)ctl->opts.mode);
	return ctl;
fail:
	if (ctl->evl != NULL)
		evconnlistener_free(ctl->evl);
	if (ctl->ev_tick != NULL)
		event_free(ctl->ev_tick);
	if (ctl->ev_flush != NULL)
		event_free(ctl->ev_flush);
	free(ctl->opts.allow);
	free(ctl->path);
	free(ctl);
	return NULL;
}

void
control_free(struct control *ctl)
{
	struct controller *c;
	struct stat st;

	if (ctl == NULL)
		return;
	hook_free_all(ctl);
	while ((c = TAILQ_FIRST(&ctl->controllers)) != NULL) {
		/* Best effort: hand over what is owed before closing. */
		evbuffer_unfreeze(bufferevent_get_output(c->bev), 1);
		evbuffer_write(bufferevent_get_output(c->bev), bufferevent_getfd(c->bev));
		TAILQ_REMOVE(&ctl->controllers, c, entry);
		if (c->consumer != 0)
			pop3d_consumer_del(ctl->srv, c->consumer);
		event_del(c->ev_defer);
		control_free_controller(c);
	}
	/* Killed ones whose defer event did not run before the loop ended. */
	while ((c = TAILQ_FIRST(&ctl->dead)) != NULL) {
		event_del(c->ev_defer);
		control_free_controller(c);
	}
	if (ctl->evl != NULL)
		evconnlistener_free(ctl->evl);
	if (ctl->ev_tick != NULL)
		event_free(ctl->ev_tick);
	if (ctl->ev_flush != NULL)
		event_free(ctl->ev_flush);
	/* Remove the socket file only if it is still ours, never a symlink. */
	if (lstat(ctl->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ctl->ino &&
	    st.st_dev == ctl->dev)
		unlink(ctl->path);
	free(ctl->cache);
	free(ctl->opts.allow);
	free(ctl->path);
	free(ctl);
}
