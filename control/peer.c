/* peer.c - one controller's connection: framing, bounded output, replies, teardown. */
/*
 * Why the caps: a controller that stops reading must never delay POP3
 * clients or other controllers.  Its backlog is capped (max_output) and it
 * must make progress at least every stall_seconds while it has a backlog;
 * otherwise it is dropped with a logged reason.  A lossy controller instead
 * has events dropped while its backlog is over CONTROL_LOSSY_HIGH; replies
 * are never dropped.  Input lines are capped before their newline arrives.
 *
 * Teardown: peer_kill() and peer_drop() only mark a controller and queue
 * its defer event; peer_destroy() is the one place it is freed, from that
 * event (or, at control_free(), for those whose event did not run).
 *
 * This file sits below command.c and hook.c: a complete line goes up
 * through ctl->on_command and a departure through ctl->on_gone, callbacks
 * set by control.c.
 */
#include "config.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../src/log.h"
#include "controller.h"
#include "pop3d.h"

static void peer_flush_cb(evutil_socket_t, short, void *);

/* Monotonic seconds. */
static time_t
peer_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/*
 * Append one line; a controller past the output cap is dropped.  Why
 * deferred: peer_write runs inside hook dispatch, hook timeouts and
 * event delivery, whose callers still hold the hook or the dispatch it
 * would free; the controller stops receiving at once and goes from its
 * defer event, the one path by which a controller is dropped late.
 */
void
peer_write(struct controller *c, const char *line, size_t len)
{
	struct evbuffer *out;

	if (c->dead || c->drop_reason != NULL || line == NULL)
		return;
	out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) == 0)
		c->last_progress = peer_now();
	evbuffer_add(out, line, len);
	if (evbuffer_get_length(out) > c->ctl->opts.max_output)
		peer_drop(c, "output backlog over the cap");
}

/* Mark c to be dropped from its defer event: nothing more is read from it
 * or written to it meanwhile, and no hook is sent to it. */
void
peer_drop(struct controller *c, const char *reason)
{
	if (c->dead || c->drop_reason != NULL)
		return;
	c->drop_reason = reason;
	bufferevent_disable(c->bev, EV_READ);
	event_active(c->ev_defer, EV_TIMEOUT, 1);
}

/* The ok reply to the command of that id; steals result. */
void
peer_reply_ok(struct controller *c, json_t *id, json_t *result)
{
	size_t len;
	char *s = codec_reply_ok(id, result, &len);

	peer_write(c, s, len);
	free(s);
}

/* An error reply (logged at debug level); fmt is the message. */
void
peer_reply_error(struct controller *c, json_t *id, const char *code, const char *fmt, ...)
{
	char msg[512];
	size_t len;
	va_list ap;
	char *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_debug("controller=%llu event=error code=%s message=\"%s\"", (unsigned long long)c->id,
	    code, msg);
	s = codec_reply_error(id, code, msg, &len);
	peer_write(c, s, len);
	free(s);
}

/* Write an event outside the pipeline to one controller. */
void
peer_write_event(struct controller *c, const char *name, struct pop3d_arg *argv, int argc)
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
		peer_write(c, s, len);
	free(s);
}

/* Whether c takes new work: not dead, closing or to be dropped. */
int
peer_live(struct controller *c)
{
	return c != NULL && !c->dead && !c->closing && c->drop_reason == NULL;
}

/* What peer_eligible asks about: the controllers and the event's name. */
struct peer_pick {
	struct control *ctl;
	const char *event;
};

/* A group_eligible_fn: a live member registered for the event. */
static int
peer_eligible(uint64_t id, void *arg)
{
	struct peer_pick *pk = arg;
	struct controller *c = peer_find(pk->ctl, id);
	const char **pat;
	size_t n, i;

	if (!peer_live(c))
		return 0;
	n = pop3d_consumer_patterns(pk->ctl->srv, c->consumer, &pat);
	for (i = 0; i < n; i++)
		if (fnmatch(pat[i], pk->event, 0) == 0)
			return 1;
	return 0;
}

/* A member's share of an event about a client: whether c is the member
 * the client is bound to (binding it now, but never at its departure). */
static int
peer_mine(struct controller *c, const struct pop3d_event *ev)
{
	struct group_entry *g = group_find(&c->ctl->groups, c->group);
	struct peer_pick pk = { c->ctl, ev->name };

	if (g == NULL)
		return 1;
	return group_route(g, ev->client, strcmp(ev->name, "pop3d_disconnected") != 0,
		   peer_eligible, &pk) == c->id;
}

/* The consumer callback: one JSON line per event, encoded once.  A group
 * member gets an event about a client only when the client is bound to it. */
static void
peer_event(struct pop3d *srv, const struct pop3d_event *ev, void *arg)
{
	struct controller *c = arg;
	struct control *ctl = c->ctl;
	size_t len;
	char *s;

	(void)srv;
	if (c->dead || c->closing || c->drop_reason != NULL)
		return;
	if (c->group[0] != '\0' && ev->client != 0 && !peer_mine(c, ev))
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
	peer_write(c, ctl->cache, ctl->cache_len);
	if (c->lossy && !c->dead &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > CONTROL_LOSSY_HIGH)
		c->behind = 1;
}

/* The one place a controller is freed: one on no list but, when dead,
 * ctl->dead (also a half-built one from peer_new()). */
static void
peer_destroy(struct controller *c)
{
	if (c->dead)
		TAILQ_REMOVE(&c->ctl->dead, c, entry);
	if (c->flush_queued)
		TAILQ_REMOVE(&c->ctl->flushq, c, fentry);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->ev_defer != NULL)
		event_free(c->ev_defer);
	free(c);
}

/* The defer event: drop a controller marked by peer_drop (its kill
 * queues this event again), then free a dead one. */
static void
peer_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct controller *c = arg;

	(void)fd;
	(void)what;
	if (!c->dead && c->drop_reason != NULL) {
		peer_kill(c, c->drop_reason);
		return;
	}
	if (c->dead)
		peer_destroy(c);
}

/* The one path by which a controller goes: its registrations go with it. */
void
peer_kill(struct controller *c, const char *reason)
{
	struct control *ctl = c->ctl;

	if (c->dead)
		return;
	c->dead = 1;
	log_info("controller=%llu event=disconnect reason=\"%s\" name=\"%s\"",
	    (unsigned long long)c->id, reason, c->name);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (ctl->on_gone != NULL)
		ctl->on_gone(c); /* its plugins and hooks (hook.c) */
	TAILQ_REMOVE(&ctl->controllers, c, entry);
	TAILQ_INSERT_TAIL(&ctl->dead, c, entry); /* freed from ev_defer */
	ctl->ncontrollers--;
	if (c->consumer != 0)
		pop3d_consumer_del(ctl->srv, c->consumer);
	event_active(c->ev_defer, EV_TIMEOUT, 1);
}

/* Close once the replies it is owed are written. */
static void
peer_close(struct controller *c, const char *reason)
{
	if (c->dead || c->closing)
		return;
	c->closing = 1;
	c->reason = reason;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		peer_kill(c, reason);
}

/* Run one complete line. */
static void
peer_line(struct controller *c, const char *line, size_t len)
{
	struct codec_cmd cmd;
	const char *code;
	char msg[256];

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return; /* blank lines are ignored (handy with socat) */
	if ((code = codec_decode(line, len, &cmd, msg, sizeof(msg))) != NULL) {
		peer_reply_error(c, strcmp(code, "parse_error") == 0 ? NULL : cmd.id, code, "%s",
		    msg);
		codec_cmd_clear(&cmd);
		return;
	}
	if (c->ctl->on_command != NULL)
		c->ctl->on_command(c, &cmd); /* the command table (command.c) */
	codec_cmd_clear(&cmd);
}

/* Frame input into lines, capping a line before its newline arrives. */
static void
peer_process(struct controller *c)
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
				peer_reply_error(c, NULL, "limit_exceeded",
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
				peer_reply_error(c, NULL, "limit_exceeded",
				    "line longer than %zu octets; discarded", max);
			c->discarding = 0;
			evbuffer_drain(in, (size_t)p.pos + 1);
			continue;
		}
		data = evbuffer_pullup(in, p.pos + 1);
		peer_line(c, (const char *)data, (size_t)p.pos);
		if (!c->dead)
			evbuffer_drain(in, (size_t)p.pos + 1);
	}
	if (!c->dead && !c->closing && c->eof)
		peer_close(c, "controller closed its side");
}

/* Input arrived. */
static void
peer_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	peer_process(arg);
}

/* Output progress: catch a lossy controller up, finish a close. */
static void
peer_write_cb(struct bufferevent *bev, void *arg)
{
	struct controller *c = arg;
	size_t out = evbuffer_get_length(bufferevent_get_output(bev));

	if (c->dead)
		return;
	/* All written: back to direct writes (see peer_flush). */
	if (out == 0)
		bufferevent_disable(bev, EV_WRITE);
	c->last_progress = peer_now();
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
			peer_write_event(c, "pop3d_events_dropped", &a, 1);
			return;
		}
	}
	if (out == 0 && c->closing)
		peer_kill(c, c->reason);
}

/*
 * Direct writes, as for POP3 clients (conn_flush in src/conn.c): a
 * controller's EV_WRITE stays disabled while its output is empty.  Lines
 * appended during a loop iteration queue it on ctl->flushq, and one
 * active event writes each queued controller's output before the loop
 * polls again, saving the arm/disarm system calls and a loop iteration
 * per batch of events.  A short write arms EV_WRITE until all is out.
 */
static void
peer_outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
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
peer_flush(struct controller *c)
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
		peer_write_cb(c->bev, c); /* progress, as the bufferevent's would */
	if (!c->dead && evbuffer_get_length(out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
}

/* The active event of ctl->flushq. */
static void
peer_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;
	struct controller *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&ctl->flushq)) != NULL) {
		TAILQ_REMOVE(&ctl->flushq, c, fentry);
		peer_flush(c); /* still marked: it writes its own appends */
		c->flush_queued = 0;
	}
}

/* End of file (reply to what was read, then close) or a socket error. */
static void
peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct controller *c = arg;

	(void)bev;
	if (c->dead)
		return;
	if (what & BEV_EVENT_EOF) {
		c->eof = 1;
		peer_process(c);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		peer_kill(c, (what & BEV_EVENT_WRITING) ? "write error" : "read error");
}

/* The live controller of that id, or NULL. */
struct controller *
peer_find(struct control *ctl, uint64_t id)
{
	struct controller *c;

	TAILQ_FOREACH (c, &ctl->controllers, entry)
		if (c->id == id && !c->dead)
			return c;
	return NULL;
}

/* Once a second (control.c's tick): drop controllers whose backlog made
 * no progress for stall_seconds. */
void
peer_tick(struct control *ctl)
{
	struct controller *c, *next;
	time_t now = peer_now();

	for (c = TAILQ_FIRST(&ctl->controllers); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 &&
		    now - c->last_progress >= (time_t)ctl->opts.stall_seconds)
			peer_kill(c, "no output progress (stalled)");
	}
}

/* A controller on accepted socket fd with its peer's credentials: greeted
 * and reading.  NULL (fd closed) on failure. */
struct controller *
peer_new(struct control *ctl, int fd, uid_t uid, gid_t gid, pid_t pid)
{
	struct event_base *base = pop3d_get_base(ctl->srv);
	struct controller *c;
	size_t len;
	char *s;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return NULL;
	}
	c->ctl = ctl;
	c->id = ++ctl->next_id;
	c->uid = uid;
	c->gid = gid;
	c->pid = pid;
	c->connected = peer_now();
	c->last_progress = c->connected;
	snprintf(c->name, sizeof(c->name), "controller-%llu", (unsigned long long)c->id);
	if ((c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		close(fd);
	c->ev_defer = event_new(base, -1, 0, peer_defer_cb, c);
	if (c->bev == NULL || c->ev_defer == NULL ||
	    (c->consumer = pop3d_consumer_add(ctl->srv, c->name, peer_event, c)) == 0) {
		peer_destroy(c);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&ctl->controllers, c, entry);
	ctl->ncontrollers++;
	bufferevent_setcb(c->bev, peer_read_cb, peer_write_cb, peer_event_cb, c);
	/* Write callback after every write: that is the progress signal. */
	bufferevent_setwatermark(c->bev, EV_WRITE, ctl->opts.max_output * 2, 0);
	log_info("controller=%llu event=connect uid=%lu gid=%lu pid=%ld", (unsigned long long)c->id,
	    (unsigned long)uid, (unsigned long)gid, (long)pid);
	bufferevent_disable(c->bev, EV_WRITE);
	evbuffer_add_cb(bufferevent_get_output(c->bev), peer_outbuf_cb, c);
	if ((s = codec_greeting(ctl->srv, &ctl->opts, &ctl->groups, c->id, &len)) != NULL)
		peer_write(c, s, len);
	free(s);
	bufferevent_enable(c->bev, EV_READ);
	return c;
}

/* The event that writes the output of ctl->flushq; 0 or -1. */
int
peer_init(struct control *ctl)
{
	TAILQ_INIT(&ctl->controllers);
	TAILQ_INIT(&ctl->dead);
	TAILQ_INIT(&ctl->flushq);
	ctl->ev_flush = event_new(pop3d_get_base(ctl->srv), -1, 0, peer_flush_cb, ctl);
	return ctl->ev_flush != NULL ? 0 : -1;
}

/* Every controller goes (after a best-effort write of what it is owed)
 * by peer_kill(), and every dead one is freed now: the loop may not turn
 * again to run their defer events. */
void
peer_free_all(struct control *ctl)
{
	struct controller *c;

	while ((c = TAILQ_FIRST(&ctl->controllers)) != NULL) {
		evbuffer_unfreeze(bufferevent_get_output(c->bev), 1);
		evbuffer_write(bufferevent_get_output(c->bev), bufferevent_getfd(c->bev));
		peer_kill(c, "control socket closed");
	}
	while ((c = TAILQ_FIRST(&ctl->dead)) != NULL) {
		event_del(c->ev_defer);
		peer_destroy(c);
	}
	if (ctl->ev_flush != NULL)
		event_free(ctl->ev_flush);
	ctl->ev_flush = NULL;
	free(ctl->cache);
	ctl->cache = NULL;
}
