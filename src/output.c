/*
 * output.c - the response path of a client: every response line passes
 * the POP3C plugins ("response" events), which may rewrite or swallow it.
 *
 * Invariant: output leaves in the order it was produced.  While a response
 * line waits for a pending POP3C verdict, everything after it (lines, raw
 * multi-line bodies, the start of a file stream) is queued behind it, and
 * the client parses no further command (it has a suspended job).
 * Closing (output_close) is the end of that path: the last line goes
 * out, then the connection is cut once everything owed is written.
 */
#include "config.h"

#include <stdlib.h>
#include <time.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "server.h"

static void output_flush(struct client *);

enum { OUTPUT_LINE, OUTPUT_RAW, OUTPUT_STREAM };

struct output_item {
	TAILQ_ENTRY(output_item) entry;
	int kind;
	int flags; /* OUTPUT_AUTH, OUTPUT_CONT */
	size_t len;
	char data[];
};

static void output_delay_cb(evutil_socket_t, short, void *);

/* Whether output is held back (a pending verdict, the login delay). */
int
output_busy(struct client *c)
{
	return c->hooking || c->delayed != NULL || !TAILQ_EMPTY(&c->outq);
}

/* Queue output behind what is held. */
static void
output_enqueue(struct client *c, int kind, const char *data, size_t len, int flags)
{
	struct output_item *it = malloc(sizeof(*it) + len + 1);

	if (it == NULL) {
		conn_kill(c, "out of memory");
		return;
	}
	it->kind = kind;
	it->flags = flags;
	it->len = len;
	if (len > 0)
		memcpy(it->data, data, len);
	it->data[len] = '\0';
	TAILQ_INSERT_TAIL(&c->outq, it, entry);
}

/* Drop held output (a line awaiting a POP3C verdict, what queued behind
 * it); 1 when there was some. */
int
output_clear(struct client *c)
{
	struct output_item *it;
	int held = c->hooking || !TAILQ_EMPTY(&c->outq);

	/* A line held by a pending POP3C verdict is dropped for good: the
	 * verdict, when it comes, writes nothing (output_hook_done). */
	if (c->hooking)
		c->hook_dropped = 1;
	free(c->hook_line);
	c->hook_line = NULL;
	while ((it = TAILQ_FIRST(&c->outq)) != NULL) {
		TAILQ_REMOVE(&c->outq, it, entry);
		free(it);
	}
	return held;
}

/* A failed authentication: -ERR to PASS/APOP/AUTH, except for the
 * temporary ([SYS/TEMP]) and lock ([IN-USE]) kinds that are no guess. */
static int
output_auth_failed(const char *line, size_t len)
{
	return len >= 4 && memcmp(line, "-ERR", 4) == 0 &&
	    !(len >= 15 && memcmp(line + 4, " [SYS/TEMP]", 11) == 0) &&
	    !(len >= 14 && memcmp(line + 4, " [IN-USE]", 9) == 0);
}

/* After the last allowed failure the client goes, with its answer. */
static void
output_auth_limit(struct client *c)
{
	unsigned max = c->srv->opts.max_auth_failures;

	if (max > 0 && c->auth_failures >= max) {
		log_info("client=%llu event=auth-failures count=%u", (unsigned long long)c->id,
		    c->auth_failures);
		output_clear(c);
		output_close(c, "too many authentication failures", NULL);
	}
}

/*
 * Put a final line on the wire; track AUTHORIZATION -> TRANSACTION.
 * Why the delay: a failed authentication answer waits auth_fail_delay_ms
 * (a timer, never a blocking sleep; output after it queues behind), so
 * guessing is slow for that client and free for everybody else.
 */
static void
output_emit(struct client *c, const char *line, size_t len, int auth)
{
	if (auth && len >= 3 && memcmp(line, "+OK", 3) == 0)
		c->state = POP3D_STATE_TRANSACTION;
	if (auth && c->state == POP3D_STATE_AUTHORIZATION && output_auth_failed(line, len)) {
		c->auth_failures++;
		if (c->srv->opts.auth_fail_delay_ms > 0 && c->ev_delay == NULL)
			c->ev_delay = evtimer_new(c->srv->base, output_delay_cb, c);
		if (c->srv->opts.auth_fail_delay_ms > 0 && c->ev_delay != NULL &&
		    (c->delayed = malloc(len)) != NULL) {
			struct timeval tv = { (time_t)(c->srv->opts.auth_fail_delay_ms / 1000),
				(suseconds_t)(c->srv->opts.auth_fail_delay_ms % 1000) * 1000 };

			memcpy(c->delayed, line, len);
			c->delayed_len = len;
			evtimer_add(c->ev_delay, &tv);
			return;
		}
		conn_write(c, line, len);
		output_auth_limit(c);
		return;
	}
	conn_write(c, line, len);
}

/* The held failure answer goes out; then what queued behind it (a
 * closing client's last line included), and parsing resumes. */
static void
output_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	if (c->delayed == NULL) /* a dead client's timer is off */
		return;
	conn_write(c, c->delayed, c->delayed_len);
	free(c->delayed);
	c->delayed = NULL;
	output_auth_limit(c);
	output_flush(c);
	if (c->dead)
		return;
	if (c->closing) {
		if (conn_flushed(c))
			conn_kill(c, c->reason);
	} else
		timers_defer(&c->srv->deferq, &c->tdefer);
}

/* The line as the plugins left it (ARG1), or the original if they broke it. */
static void
output_emit_result(struct client *c, const struct pop3d_event *ev, const char *orig, size_t olen,
    int auth)
{
	if (ev->argc > 1 && ev->argv[1].type == POP3D_ARG_STR &&
	    line_clean(ev->argv[1].s, ev->argv[1].len))
		output_emit(c, ev->argv[1].s, ev->argv[1].len, auth);
	else {
		log_warnx("client=%llu event=bad-rewrite", (unsigned long long)c->id);
		if (orig != NULL)
			output_emit(c, orig, olen, auth);
	}
}

/* Run one line through the POP3C plugins; 1 when it is now pending. */
static int
output_hook(struct client *c, const char *line, size_t len, int flags)
{
	struct pop3d_event ev;
	struct pop3d_arg *a;
	int pflags;

	if ((a = calloc(2, sizeof(*a))) == NULL || (a[1].s = malloc(len + 1)) == NULL) {
		free(a);
		conn_kill(c, "out of memory");
		return 0;
	}
	a[0].type = POP3D_ARG_INT;
	a[0].i = (long long)c->id;
	a[1].type = POP3D_ARG_STR;
	memcpy(a[1].s, line, len);
	a[1].s[len] = '\0';
	a[1].len = len;
	memset(&ev, 0, sizeof(ev));
	ev.name = "response";
	ev.type = POP3D_PLUGIN_POP3C;
	ev.client = c->id;
	ev.tag = c->inflight;
	ev.command = c->verb[0] != '\0' ? c->verb : NULL;
	ev.state = c->state;
	ev.tls = c->tls;
	ev.argc = 2;
	ev.argv = a;
	pflags = events_dispatch(c->srv, &ev);
	if (pflags & PIPELINE_PENDING) {
		c->hooking = 1;
		c->hook_dropped = 0;
		c->hook_auth = (flags & OUTPUT_AUTH) != 0;
		c->hook_cont = (flags & OUTPUT_CONT) != 0;
		free(c->hook_line);
		if ((c->hook_line = malloc(len + 1)) != NULL) {
			memcpy(c->hook_line, line, len);
			c->hook_len = len;
		}
	} else if (pflags & PIPELINE_TEMPFAIL)
		output_tempfail(c, TEMPFAIL_LINE | ((flags & OUTPUT_CONT) ? TEMPFAIL_CUT : 0));
	else if (!(pflags & PIPELINE_SWALLOWED))
		output_emit_result(c, &ev, line, len, flags & OUTPUT_AUTH);
	pipeline_args_free(ev.argv, ev.argc);
	return (pflags & PIPELINE_PENDING) != 0;
}

/* A response line: through the POP3C plugins, or behind a pending one.
 * flags: OUTPUT_AUTH, OUTPUT_CONT (see server.h). */
void
output_line(struct client *c, const char *line, size_t len, int flags)
{
	if (c->dead)
		return;
	if (output_busy(c))
		output_enqueue(c, OUTPUT_LINE, line, len, flags);
	else if (pipeline_has_handler(c->srv->pipeline, POP3D_PLUGIN_POP3C, "response"))
		output_hook(c, line, len, flags);
	else
		output_emit(c, line, len, flags & OUTPUT_AUTH);
}

/* Formatted bytes (multi-line bodies): never hooked, but kept in order. */
void
output_raw(struct client *c, const char *data, size_t len)
{
	if (c->dead)
		return;
	if (output_busy(c))
		output_enqueue(c, OUTPUT_RAW, data, len, 0);
	else
		evbuffer_add(conn_output(c), data, len);
}

/* Start streaming the client's open file once everything before is out. */
void
output_stream(struct client *c)
{
	if (c->dead)
		return;
	if (output_busy(c))
		output_enqueue(c, OUTPUT_STREAM, NULL, 0, 0);
	else {
		c->stream_ready = 1;
		stream_fill(c);
	}
}

/* Release queued output until the next pending hook. */
static void
output_flush(struct client *c)
{
	struct output_item *it;

	while (
	    !c->dead && !c->hooking && c->delayed == NULL && (it = TAILQ_FIRST(&c->outq)) != NULL) {
		TAILQ_REMOVE(&c->outq, it, entry);
		switch (it->kind) {
		case OUTPUT_LINE:
			if (pipeline_has_handler(c->srv->pipeline, POP3D_PLUGIN_POP3C, "response"))
				output_hook(c, it->data, it->len, it->flags);
			else
				output_emit(c, it->data, it->len, it->flags & OUTPUT_AUTH);
			break;
		case OUTPUT_RAW:
			evbuffer_add(conn_output(c), it->data, it->len);
			break;
		case OUTPUT_STREAM:
			c->stream_ready = 1;
			stream_fill(c);
			break;
		}
		free(it);
	}
}

/* The pending POP3C verdicts for the held line are in. */
void
output_hook_done(struct client *c, struct pop3d_event *ev, int flags)
{
	int auth = c->hook_auth, dropped = c->hook_dropped;
	char *orig = c->hook_line;

	c->hooking = 0;
	c->hook_dropped = 0;
	c->hook_line = NULL;
	if (c->dead) {
		free(orig);
		return;
	}
	if (flags & PIPELINE_TEMPFAIL) {
		/* A line dropped earlier (by a tempfail, which answered) is not
		 * this tempfail's to answer. */
		output_tempfail(c,
		    (!dropped ? TEMPFAIL_LINE : 0) | (c->hook_cont ? TEMPFAIL_CUT : 0));
		free(orig);
		return;
	}
	if (!dropped && !(flags & PIPELINE_SWALLOWED))
		output_emit_result(c, ev, orig, orig != NULL ? c->hook_len : 0, auth);
	free(orig);
	output_flush(c);
}

/* Close after pending output is flushed; lastline (may be NULL) goes last. */
void
output_close(struct client *c, const char *reason, const char *lastline)
{
	if (c->dead || c->closing)
		return;
	c->closing = 1;
	c->reason = reason;
	timers_del(&c->srv->respq, &c->tresp);
	ahead_clear(c); /* nothing further back is answered now */
	conn_read_set(c, 0);
	if (lastline != NULL)
		output_line(c, lastline, strlen(lastline), 0);
	if (!c->dead && conn_flushed(c))
		conn_kill(c, reason);
}

/* A hook said tempfail: held output is dropped; the client gets
 * -ERR [SYS/TEMP] and is closed, or, when part of a response is out
 * (TEMPFAIL_CUT, a stream, an open response), is closed after what is
 * written with no line inside that body.  A client closing already gets
 * the -ERR only if its last line was among the output dropped: one answer
 * per command. */
void
output_tempfail(struct client *c, int how)
{
	static const char msg[] = "-ERR [SYS/TEMP] server unavailable, try again later";
	int held;

	if (c->dead)
		return;
	held = output_clear(c) || (how & TEMPFAIL_LINE);
	c->hooking = 0;
	if ((how & TEMPFAIL_CUT) || c->stream_fd >= 0 || (c->inflight != 0 && c->open))
		stream_stop(c);
	else if (!c->closing || held)
		conn_write(c, msg, sizeof(msg) - 1);
	if (!c->closing)
		output_close(c, "hook tempfail", NULL);
	else if (conn_flushed(c))
		conn_kill(c, c->reason);
}
