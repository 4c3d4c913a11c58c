/* reply.c - the answer in flight: sending it, its deadline, completion. */
/*
 * A handler's lines, bodies and files for the command at the head (or
 * recorded for one dispatched ahead, ahead.c); completion brings the next.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "log.h"
#include "server.h"
#include "verbs.h"

/* What ahead_replay sends through. */
static int reply_fd(struct client *, uint64_t tag, const char *status, int fd, long top);

static const struct ahead_ops reply_ops = { reply_line, reply_lines, reply_fd };

/* Whether the command in flight is verb kind (VERB_*). */
static int
reply_verb(struct client *c, int kind)
{
	return (verbs_flags(c->verb, strlen(c->verb)) & kind) != 0;
}

/* A handler's answer is due --response-timeout from now.  Why one queue:
 * every deadline is now + the same timeout, so arming appends. */
void
reply_arm(struct client *c)
{
	struct pop3d *srv = c->srv;

	if (srv->opts.response_timeout == 0)
		return;
	timers_add(&srv->respq, &c->tresp,
	    timers_now() + (int64_t)srv->opts.response_timeout * 1000);
}

/*
 * Commands dispatched ahead take their turn: the first becomes the head
 * and what its handlers sent meanwhile is replayed, which may complete it
 * and bring the next one.  One loop at a time (replaying completes).
 */
static void
reply_promote(struct client *c)
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
		reply_arm(c);
		ahead_replay(c, a, &reply_ops);
		if (c->inflight == a->tag && !c->dead && !c->closing && !c->responded &&
		    c->nreceivers == 0 && !c->plugin_saw) {
			/* Every handler that received it went away meanwhile. */
			log_warnx("client=%llu event=handler-gone tag=%llu",
			    (unsigned long long)c->id, (unsigned long long)c->inflight);
			output_close(c, "handler went away",
			    "-ERR [SYS/TEMP] server unavailable, try again later");
		}
		ahead_free(a);
	}
	c->promoting = 0;
}

/* The current command's response is complete: move to the next line. */
void
reply_complete(struct client *c)
{
	int quit = reply_verb(c, VERB_QUIT);

	c->inflight = 0;
	c->sasl = 0;
	c->open = 0;
	c->verb[0] = '\0';
	/* Freed, not kept: an idle client holds no receivers array. */
	free(c->receivers);
	c->receivers = NULL;
	c->nreceivers = c->receivers_cap = 0;
	timers_del(&c->srv->respq, &c->tresp);
	if (quit)
		output_close(c, "quit", NULL);
	else {
		reply_promote(c);
		/* Answered while its lines are being parsed (a plugin answering
		 * during the dispatch): that loop goes on with the next line. */
		if (c->processing)
			c->process_again = 1;
		else
			timers_defer(&c->srv->deferq, &c->tdefer);
	}
}

/* Mark the first line of a response; 1 when it answers PASS, APOP or AUTH
 * (a +OK there, as finally sent, moves the client to TRANSACTION). */
int
reply_first_line(struct client *c)
{
	if (c->inflight == 0 || c->responded)
		return 0;
	c->responded = 1;
	return reply_verb(c, VERB_AUTH);
}

/* Common checks of every send: alive, tag current or dispatched ahead
 * (*ahead is then set: the send is recorded, not written). */
static int
reply_check(struct client *c, uint64_t tag, struct client_ahead **ahead)
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
reply_stuff_line(struct evbuffer *body, const void *line, size_t len)
{
	if (len > 0 && *(const char *)line == '.')
		evbuffer_add(body, ".", 1);
	evbuffer_add(body, line, len);
	evbuffer_add(body, "\r\n", 2);
}

/* Data lines (first, when not NULL, then lines), and the terminator when
 * last is set, in a new buffer (NULL when out of memory). */
static struct evbuffer *
reply_stuff_lines(const char *first, const struct iovec *lines, size_t n, int last)
{
	struct evbuffer *body;
	size_t i;

	if ((body = evbuffer_new()) == NULL)
		return NULL;
	if (first != NULL)
		reply_stuff_line(body, first, strlen(first));
	for (i = 0; i < n; i++)
		reply_stuff_line(body, lines[i].iov_base, lines[i].iov_len);
	if (last)
		evbuffer_add(body, ".\r\n", 3);
	return body;
}

/* Append data lines of an open response (and the terminator when last is
 * set): formatted bytes, never seen by POP3C plugins. */
static int
reply_data_lines(struct client *c, const char *first, const struct iovec *lines, size_t n, int last)
{
	struct evbuffer *body;

	if ((body = reply_stuff_lines(first, lines, n, last)) == NULL)
		return -POP3D_ERR_NOMEM;
	output_raw(c, (const char *)evbuffer_pullup(body, -1), evbuffer_get_length(body));
	evbuffer_free(body);
	return 0;
}

/* Whether the response to command tag (0: the head) is open. */
int
reply_open(struct client *c, uint64_t tag)
{
	struct client_ahead *a;

	if (c->dead || c->closing)
		return 0;
	if (tag == 0 || tag == c->inflight)
		return c->inflight != 0 && c->open;
	return (a = ahead_find(c, tag)) != NULL && a->open && !a->complete;
}

/* One line of the answer to command tag (0: the head). */
int
reply_line(struct client *c, uint64_t tag, const char *line, size_t len, int flags)
{
	struct client_ahead *ahead;
	int rv;

	if ((rv = reply_check(c, tag, &ahead)) != 0)
		return rv;
	if (!line_clean(line, len))
		return -POP3D_ERR_INVALID;
	if (ahead != NULL)
		return ahead_defer_line(ahead, line, len, flags);
	if (c->inflight && reply_verb(c, VERB_SASL) && len >= 1 && line[0] == '+' &&
	    (len == 1 || line[1] == ' ')) {
		/* SASL continuation: the client answers next, then the handler. */
		output_line(c, line, len, 0);
		c->sasl = 1;
		timers_del(&c->srv->respq, &c->tresp);
		timers_defer(&c->srv->deferq, &c->tdefer);
	} else if (c->inflight) {
		if ((flags & POP3D_SEND_DATA) && c->open) {
			struct iovec v = { (void *)(uintptr_t)line, len };

			if ((rv = reply_data_lines(c, NULL, &v, 1, !(flags & POP3D_SEND_MORE))) !=
			    0)
				return rv;
		} else
			output_line(c, line, len, c->open ? OUTPUT_CONT : reply_first_line(c));
		if (flags & POP3D_SEND_MORE) {
			c->open = 1;
			reply_arm(c);
		} else
			reply_complete(c);
	} else
		output_line(c, line, len, 0);
	conn_backpressure(c);
	return 0;
}

/* A whole multi-line answer: status, data lines, terminator. */
int
reply_lines(struct client *c, uint64_t tag, const char *status, const struct iovec *lines, size_t n)
{
	struct client_ahead *ahead;
	struct evbuffer *body;
	size_t i;
	int rv;

	if ((rv = reply_check(c, tag, &ahead)) != 0)
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
		if ((rv = reply_data_lines(c, status, lines, n, 1)) != 0)
			return rv;
		reply_complete(c);
		conn_backpressure(c);
		return 0;
	}
	if ((body = reply_stuff_lines(NULL, lines, n, 1)) == NULL)
		return -POP3D_ERR_NOMEM;
	output_line(c, status, strlen(status), reply_first_line(c));
	output_raw(c, (const char *)evbuffer_pullup(body, -1), evbuffer_get_length(body));
	evbuffer_free(body);
	if (c->inflight)
		reply_complete(c);
	conn_backpressure(c);
	return 0;
}

/* A file (under --send-file-root) as a multi-line answer. */
int
reply_file(struct client *c, uint64_t tag, const char *status, const char *path, long top)
{
	struct client_ahead *ahead;
	int fd, rv;

	if ((rv = reply_check(c, tag, &ahead)) != 0)
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
	return reply_fd(c, tag, status, fd, top);
}

/* Stream an open regular file (ours from now on) as a multi-line answer. */
static int
reply_fd(struct client *c, uint64_t tag, const char *status, int fd, long top)
{
	if (c->dead || c->closing || (tag != 0 && tag != c->inflight) || c->stream_fd >= 0) {
		close(fd);
		return -POP3D_ERR_INVALID;
	}
	output_line(c, status, strlen(status), reply_first_line(c));
	if (c->inflight)
		timers_del(&c->srv->respq, &c->tresp); /* the core completes it now */
	if (stream_open(c, fd, top) == -1) {
		conn_kill(c, "out of memory");
		return -POP3D_ERR_NOMEM;
	}
	output_stream(c);
	conn_backpressure(c);
	return 0;
}

/* Consumer `consumer` received ev: remember it if ev is the command in
 * flight, so its departure can be noticed. */
void
reply_seen(struct client *c, const struct pop3d_event *ev, uint64_t consumer)
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

/* A consumer went away: the in-flight command may have no handler left. */
void
reply_consumer_gone(struct client *c, uint64_t consumer)
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
		output_close(c, "handler went away",
		    "-ERR [SYS/TEMP] server unavailable, try again later");
	} else
		conn_kill(c, "handler went away");
}
