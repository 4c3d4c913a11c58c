/* session.c - a READY client: the command loop, STLS, SASL, idle, teardown. */
/*
 * Teardown has one path: conn_kill() (any file) marks the client dead and
 * queues it; session_defer_run() frees it, here and nowhere else, once no
 * suspended job refers to it.  A client is never freed inside a libevent
 * or pipeline callback, so every handler may close or kill the client it
 * runs for; callers across async boundaries look clients up by id
 * (table_find) and find a dead one, or none.

 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "mask.h"
#include "server.h"
#include "verbs.h"

static void session_defer_run(struct timers_entry *, void *);
static void session_idle_expired(struct timers_entry *, void *);
static void session_resp_expired(struct timers_entry *, void *);
static void session_drained(struct client *);

/* Set up the server's defer queue and the idle and response deadlines. */
int
session_init(struct pop3d *srv)
{
	if (timers_deferq_init(&srv->deferq, srv->base, 0, session_defer_run, srv) == -1 ||
	    timers_queue_init(&srv->idleq, srv->base, session_idle_expired, srv) == -1 ||
	    timers_queue_init(&srv->respq, srv->base, session_resp_expired, srv) == -1)
		return -1;
	return 0;
}

/* Queue the client to run from the loop: parse its next line, or free it. */
static void
session_defer(struct client *c)
{
	timers_defer(&c->srv->deferq, &c->tdefer);
}

/* Activity at now (timers_now): the idle clock restarts. */
static void
session_touch_at(struct client *c, int64_t now)
{
	c->last_active = now;
	if (c->tidle.queued)
		timers_add(&c->srv->idleq, &c->tidle, now + (int64_t)c->srv->opts.timeout * 1000);
}

/* Activity: the idle clock restarts. */
static void
session_touch(struct client *c)
{
	session_touch_at(c, timers_now());
}

/* The client is READY: subject to the idle timeout from now on. */
static void
session_idle_start(struct client *c)
{
	struct pop3d *srv = c->srv;

	if (c->tidle.queued || srv->opts.timeout == 0)
		return;
	c->last_active = timers_now();
	timers_add(&srv->idleq, &c->tidle, c->last_active + (int64_t)srv->opts.timeout * 1000);
}

/* Back on the idle queue from its expiry, the idle clock restarted. */
static void
session_idle_rearm(struct client *c)
{
	c->last_active = timers_now();
	timers_add(&c->srv->idleq, &c->tidle,
	    c->last_active + (int64_t)c->srv->opts.timeout * 1000);
}

/* Announce the client (the greeting plugin answers), then start reading. */
void
session_start(struct client *c)
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
		if (!pipeline_has_handler(c->srv->pipeline, POP3D_PLUGIN_POP3D,
			"pop3d_connection")) {
			output_close(c, "no greeting handler",
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
	events_emit(c->srv, "pop3d_connection", c, a, 5);
	if (c->dead)
		return;
	session_idle_start(c);
	if (!c->closing)
		conn_read_set(c, 1);
}

/* A core response line (NUL-terminated) through the response path. */
static void
session_puts(struct client *c, const char *s)
{
	output_line(c, s, strlen(s), 0);
}

/* A line that is not a command: one -ERR, and close after too many. */
static void
session_bad_line(struct client *c, const char *msg)
{
	unsigned max = c->srv->opts.max_bad_lines;

	c->bad_lines++;
	log_debug("client=%llu event=bad-line error=\"%s\" count=%u", (unsigned long long)c->id,
	    msg + 5, c->bad_lines);
	if (max > 0 && c->bad_lines >= max) {
		output_close(c, "too many bad commands",
		    "-ERR too many bad commands, closing connection");
		return;
	}
	session_puts(c, msg);
	conn_backpressure(c);
}

/*
 * STLS (RFC 2595), handled by the core when it has a certificate.  Bytes
 * the client sent after STLS are discarded, never read as protected input
 * (the CVE-2011-0411 class): everything after the +OK goes through TLS.
 */
static void
session_stls(struct client *c)
{
	static const char ok[] = "+OK Begin TLS negotiation";
	struct evbuffer *in = conn_peek_input(c);
	size_t n;

	if (c->tls) {
		session_puts(c, "-ERR TLS is already active");
		return;
	}
	if (c->state != POP3D_STATE_AUTHORIZATION) {
		session_puts(c, "-ERR STLS is only allowed before authentication");
		return;
	}
	conn_write(c, ok, sizeof(ok) - 1);
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
	conn_tls_start(c);
}

/* The answer to a command nobody handles (try later: a controller may
 * attach). */
static const char session_not_available[] =
    "-ERR [SYS/TEMP] command not available, try again later";

/* Make the command event; the core answers itself when nobody listens. */
static void
session_command(struct client *c, const struct line_cmd *cmd)
{
	struct pop3d *srv = c->srv;
	struct pop3d_event ev;
	struct pop3d_arg a[2];
	char name[EVENTS_CMD_MAX];
	char *arg = NULL;
	struct client_ahead *ahead;
	int saw;

	c->ncmds++;
	if ((verbs_flags(cmd->verb, strlen(cmd->verb)) & VERB_STLS) && srv->tls.ctx != NULL) {
		session_stls(c);
		return;
	}
	events_cmd_name(name, cmd->verb);
	if (log_verbose() >= 1) {
		char safe[128];

		/* The one masking rule (mask.c): secrets never reach the log. */
		mask_arg(safe, sizeof(safe), mask_verb_secret(cmd->verb, strlen(cmd->verb)),
		    cmd->arg, cmd->arglen, MASK_LOG);
		log_debug("client=%llu event=command tag=%llu verb=%s arg=\"%s\"",
		    (unsigned long long)c->id, (unsigned long long)c->ncmds, cmd->verb, safe);
	}
	if (!pipeline_has_handler(srv->pipeline, POP3D_PLUGIN_POP3D, name)) {
		if (verbs_flags(cmd->verb, strlen(cmd->verb)) & VERB_QUIT) {
			char bye[600];

			snprintf(bye, sizeof(bye), "+OK %s POP3 server signing off", srv->hostname);
			output_close(c, "quit", bye);
		} else {
			session_puts(c, session_not_available);
			conn_backpressure(c);
		}
		return;
	}
	if (c->inflight != 0) {
		/* Dispatched ahead (ahead_ok said so): recorded behind the head. */
		if (ahead_new(c, c->ncmds, cmd->verb) == NULL) {
			conn_kill(c, "out of memory");
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
			conn_kill(c, "out of memory");
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
	saw = events_dispatch(srv, &ev);
	/* The response deadline, unless the answer came during the dispatch
	 * (a plugin), is under way (more lines arm it, a streamed file is the
	 * core's to finish) or awaits the client (SASL). */
	if (c->inflight == ev.tag && !c->dead && !c->closing && !c->responded && !c->sasl &&
	    !c->tresp.queued)
		reply_arm(c);
	if (c->inflight == ev.tag)
		c->plugin_saw = (saw & PIPELINE_SAW) != 0;
	else if ((ahead = ahead_find(c, ev.tag)) != NULL) {
		ahead->plugin_saw = (saw & PIPELINE_SAW) != 0;
		if (!ahead->plugin_saw && ahead->nreceivers == 0 && TAILQ_EMPTY(&ahead->sends)) {
			/* Every handler went away during the dispatch. */
			(void)ahead_defer_line(ahead, session_not_available,
			    sizeof(session_not_available) - 1, 0);
		}
	}
	if ((saw & PIPELINE_TEMPFAIL) && !(saw & PIPELINE_PENDING))
		output_tempfail(c, 0);
	/* A plugin may have replaced ARG1 (freeing the old one, see pop3d.h):
	 * free whatever is there now. */
	if (ev.argc > 1 && ev.argv[1].type != POP3D_ARG_INT)
		free(ev.argv[1].s);
	if (c->inflight == c->ncmds && !c->dead && !c->closing && !c->responded &&
	    c->nreceivers == 0 && !c->plugin_saw) {
		/* Every handler went away during the dispatch. */
		session_puts(c, session_not_available);
		reply_complete(c);
	}
}

/* The core's own final answer to AUTH: like a handler's, it is the first
 * answer to AUTH (a failure is delayed and counted, see output.c). */
static void
session_auth_answer(struct client *c, const char *s)
{
	output_line(c, s, strlen(s), reply_first_line(c));
}

/* Deliver one SASL continuation line as pop3d_auth_data.  Its payload is
 * never logged. */
static void
session_auth_data(struct client *c, const char *line, size_t len)
{
	struct pop3d *srv = c->srv;
	struct pop3d_event ev;
	struct pop3d_arg a[2];
	int saw;

	c->sasl = 0;
	if (!pipeline_has_handler(srv->pipeline, POP3D_PLUGIN_POP3D, "pop3d_auth_data")) {
		session_auth_answer(c,
		    "-ERR [SYS/TEMP] authentication not available, try again later");
		reply_complete(c);
		return;
	}
	memset(a, 0, sizeof(a));
	a[0].type = POP3D_ARG_INT;
	a[0].i = (long long)c->id;
	a[1].type = POP3D_ARG_STR;
	if ((a[1].s = malloc(len + 1)) == NULL) {
		conn_kill(c, "out of memory");
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
	reply_arm(c);
	log_debug("client=%llu event=auth-data tag=%llu octets=%zu", (unsigned long long)c->id,
	    (unsigned long long)c->inflight, len);
	saw = events_dispatch(srv, &ev);
	if (c->inflight == ev.tag)
		c->plugin_saw = (saw & PIPELINE_SAW) != 0;
	if (ev.argc > 1 && ev.argv[1].type != POP3D_ARG_INT)
		free(ev.argv[1].s);
}

/* Parse and run buffered lines while no command is in flight. */
static void
session_lines(struct client *c)
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
			st = line_extract_mem(&c->lf, &srv->span, &srv->spanlen, max, srv->linebuf,
			    &len);
		else if ((in = conn_peek_input(c)) != NULL) /* STLS replaces it */
			st = line_extract(&c->lf, in, max, srv->linebuf, &len);
		else
			break;

		if (st == LINE_AGAIN)
			break;
		/* The clock is read once per call: its resolution is a
		 * millisecond and one call runs for microseconds per line. */
		if (now == 0)
			now = timers_now();
		session_touch_at(c, now);
		if (c->sasl) {
			if (st == LINE_OK) {
				session_auth_data(c, srv->linebuf, len);
				continue;
			}
			/* Over-long or NUL: the exchange fails, nothing is forwarded. */
			session_auth_answer(c, "-ERR [AUTH] invalid authentication data");
			reply_complete(c);
			continue;
		}
		if (st == LINE_TOOLONG) {
			session_bad_line(c, "-ERR line too long");
			continue;
		}
		if (st == LINE_NUL) {
			session_bad_line(c, "-ERR NUL byte in command");
			continue;
		}
		if (line_parse(srv->linebuf, len, &cmd) == -1 ||
		    !line_verb_known(cmd.verb, (const char *const *)srv->extra_verbs)) {
			session_bad_line(c, "-ERR unknown command");
			continue;
		}
		c->bad_lines = 0;
		session_command(c, &cmd);
	}
	if (!c->dead && !c->closing && c->eof && (c->inflight == 0 || c->sasl) && c->jobs == 0 &&
	    !output_busy(c) && c->phase == CLIENT_READY && c->stream_fd < 0)
		output_close(c, "client closed connection", NULL);
}

/*
 * Invariant: one session_process() at a time per client.  Draining input
 * can run a bufferevent callback at once (the OpenSSL filter has no
 * deferred callbacks), which would re-enter and parse a second command
 * while the first is in flight; such a call is turned into another turn
 * of the outer one.
 */
void
session_process(struct client *c)
{
	if (c->processing) {
		c->process_again = 1;
		return;
	}
	c->processing = 1;
	do {
		c->process_again = 0;
		session_lines(c);
	} while (c->process_again && !c->dead);
	c->processing = 0;
}

/* A suspended dispatch about this client finished. */
void
session_job_done(struct client *c, struct pop3d_event *ev, int flags)
{
	if (c->jobs > 0)
		c->jobs--;
	if (ev->type == POP3D_PLUGIN_POP3C)
		output_hook_done(c, ev, flags);
	else if (flags & PIPELINE_TEMPFAIL)
		output_tempfail(c, 0);
	if (c->dead) {
		/* Its last job: pop3d_disconnected now, then the reaper. */
		events_disconnected(c);
		if (c->jobs == 0)
			session_defer(c);
		return;
	}
	if (c->closing && conn_flushed(c)) {
		conn_kill(c, c->reason);
		return;
	}
	conn_backpressure(c);
	if (c->jobs == 0)
		session_defer(c);
}

/* Output drained below the low-water mark: progress. */
static void
session_drained(struct client *c)
{
	session_touch(c);
	if (c->stream_fd >= 0)
		stream_fill(c);
	if (c->dead)
		return;
	if (c->closing && conn_flushed(c)) {
		conn_kill(c, c->reason);
		return;
	}
	conn_backpressure(c);
}

/* What conn.c reports of a READY client (admit.c passes it on). */
void
session_conn_event(struct client *c, enum conn_what what)
{
	switch (what) {
	case CONN_READ:
		session_process(c);
		break;
	case CONN_DRAINED:
		session_drained(c);
		break;
	case CONN_EOF:
		if (!c->closing)
			session_process(c);
		break;
	default:
		break;
	}
}

/* Release a client's resources (it is off the table); no events. */
void
session_destroy(struct client *c)
{
	struct pop3d *srv = c->srv;

	output_clear(c);
	timers_undefer(&srv->flushq, &c->tflush);
	timers_undefer(&srv->deferq, &c->tdefer);
	timers_del(&srv->idleq, &c->tidle);
	timers_del(&srv->respq, &c->tresp);
	timers_del(&srv->phaseq, &c->tphase);
	stream_stop(c);
	ahead_clear(c);
	conn_free(c);
	if (c->ev_delay != NULL)
		event_free(c->ev_delay);
	free(c->delayed);
	free(c->receivers);
	if (c->peer != c->addrbuf)
		free(c->peer);
	free(c->stream);
	pool_client_put(srv, c);
}

/*
 * A client of the defer queue (always outside other callbacks): parse its
 * next lines, or, dead, free it - the one place a client is freed.  A
 * freed client finishes a shutdown, or lets the listeners accept again
 * after EMFILE.
 */
static void
session_defer_run(struct timers_entry *e, void *arg)
{
	struct client *c = TIMERS_OWNER(e, struct client, tdefer);
	struct pop3d *srv = arg;
	struct timeval tv = { 0, 0 };

	if (!c->dead) {
		session_process(c);
		conn_trim(c);
		return;
	}
	if (c->jobs > 0)
		return; /* freed when its last job finishes */
	events_disconnected(c);
	table_unlink(srv, c);
	session_destroy(c);
	if (srv->shutting_down && srv->nclients == 0)
		evtimer_add(srv->ev_stop, &tv);
	listener_resume(srv);
}

/*
 * Idle autologout of a client whose deadline has passed.  Any command, and
 * any progress in draining output (a client slowly reading a long
 * response), counts as activity.  The client leaves the front of the
 * queue either way: killed, or touched.
 */
static void
session_idle_check(struct client *c)
{
	size_t out = conn_backlog(c);

	/*
	 * Any change of the backlog is progress: it only grows when the client
	 * sent a command or drained enough for the streamer to refill, and it
	 * shrinks as the client reads.  Waiting for a handler is not idleness;
	 * waiting for SASL data is.
	 */
	if (out != c->last_outlen || (c->inflight && !c->responded && !c->sasl)) {
		c->last_outlen = out;
		session_idle_rearm(c);
		return;
	}
	log_info("client=%llu event=idle-timeout", (unsigned long long)c->id);
	if (out > 0 || c->closing)
		conn_kill(c, "idle timeout");
	else
		output_close(c, "idle timeout", "-ERR autologout; idle for too long");
	if (!c->dead)
		session_idle_rearm(c); /* another timeout to flush, then killed */
}

/* The idle queue's expiry: idle_check (the entry is off the queue). */
static void
session_idle_expired(struct timers_entry *e, void *arg)
{
	(void)arg;
	session_idle_check(TIMERS_OWNER(e, struct client, tidle));
}

/* No answer within --response-timeout: never a fake response. */
static void
session_resp_expired(struct timers_entry *e, void *arg)
{
	struct client *c = TIMERS_OWNER(e, struct client, tresp);

	(void)arg;
	if (c->inflight == 0)
		return;
	log_warnx("client=%llu event=response-timeout tag=%llu verb=%s", (unsigned long long)c->id,
	    (unsigned long long)c->inflight, c->verb);
	if (c->responded)
		conn_kill(c, "response timeout");
	else
		output_close(c, "response timeout",
		    "-ERR [SYS/TEMP] no response from server, try again later");
}

/* Fire one timer of the client now, as if its time had come (fuzzing). */
int
session_timer_fire(struct client *c, int which)
{
	struct event *ev;

	/* A dead client has no timer armed (conn_kill): 0 for each. */
	switch (which) {
	case 0:
		ev = c->ev_delay;
		break;
	case 1:
		return timers_fire(&c->srv->respq, &c->tresp);
	case 2:
		return timers_fire(&c->srv->phaseq, &c->tphase);
	default:
		if (!c->tidle.queued)
			return 0;
		c->last_active -= (int64_t)c->srv->opts.timeout * 1000 + 1000;
		return timers_fire(&c->srv->idleq, &c->tidle);
	}
	if (ev == NULL || !event_pending(ev, EV_TIMEOUT, NULL))
		return 0;
	event_del(ev);
	event_active(ev, EV_TIMEOUT, 1);
	return 1;
}
