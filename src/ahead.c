/*
 * ahead.c - commands dispatched ahead of their turn (--pipeline-depth).
 *
 * With a depth above 1, a logged-in client's pipelined commands go to the
 * handlers before the command in front of them is answered, so that a
 * controller sees a whole pipelined burst at once and its answers travel
 * together.  The wire order never changes: the command in front (the
 * head, kept in struct client as before) is answered first; what handlers
 * send for a command further back is recorded here, checked as if it were
 * sent for real, and replayed through the ordinary send functions when
 * that command becomes the head (reply_promote in reply.c).
 *
 * Only commands whose dispatch cannot change what the core does with the
 * next line go ahead: NOOP STAT LIST UIDL RETR TOP DELE RSET, and QUIT
 * last, in TRANSACTION state, each with a handler.  Anything else waits
 * until every command before it is answered, as with a depth of 1.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "server.h"

enum ahead_kind { AHEAD_LINE, AHEAD_LINES, AHEAD_FILE };

/* One send recorded for a command further back. */
struct client_send {
	TAILQ_ENTRY(client_send) entry;
	enum ahead_kind kind;
	int flags; /* AHEAD_LINE: POP3D_SEND_MORE */
	int fd;	   /* AHEAD_FILE: open, owned */
	long top;
	char *text; /* the line, or the status line */
	size_t len;
	struct iovec *iov; /* AHEAD_LINES: into blob */
	size_t n;
	char *blob;
};

/* Remember that consumer received the command of a receivers array. */
int
ahead_receiver_add(uint64_t **v, size_t *n, size_t *cap, uint64_t consumer)
{
	uint64_t *nv;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;

		if ((nv = realloc(*v, ncap * sizeof(*nv))) == NULL)
			return -1;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = consumer;
	return 0;
}

/* Forget consumer in a receivers array; 1 when it was there. */
int
ahead_receiver_del(uint64_t *v, size_t *n, uint64_t consumer)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (v[i] == consumer) {
			v[i] = v[--(*n)];
			return 1;
		}
	return 0;
}

/* Append a command dispatched ahead; NULL when out of memory. */
struct client_ahead *
ahead_new(struct client *c, uint64_t tag, const char *verb)
{
	struct client_ahead *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->tag = tag;
	snprintf(a->verb, sizeof(a->verb), "%s", verb);
	TAILQ_INIT(&a->sends);
	TAILQ_INSERT_TAIL(&c->ahead, a, entry);
	c->nahead++;
	return a;
}

/* The command dispatched ahead with this tag, or NULL. */
struct client_ahead *
ahead_find(struct client *c, uint64_t tag)
{
	struct client_ahead *a;

	TAILQ_FOREACH (a, &c->ahead, entry)
		if (a->tag == tag)
			return a;
	return NULL;
}

/* Free one recorded send (closing its file, if any). */
static void
ahead_send_free(struct client_send *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->text);
	free(s->iov);
	free(s->blob);
	free(s);
}

/* Free one command taken off the list. */
void
ahead_free(struct client_ahead *a)
{
	struct client_send *s;

	while ((s = TAILQ_FIRST(&a->sends)) != NULL) {
		TAILQ_REMOVE(&a->sends, s, entry);
		ahead_send_free(s);
	}
	free(a->receivers);
	free(a);
}

/* Take the first command off the list (it becomes the head). */
struct client_ahead *
ahead_pop(struct client *c)
{
	struct client_ahead *a;

	if ((a = TAILQ_FIRST(&c->ahead)) != NULL) {
		TAILQ_REMOVE(&c->ahead, a, entry);
		c->nahead--;
	}
	return a;
}

/* Drop every command dispatched ahead: the client is closing. */
void
ahead_clear(struct client *c)
{
	struct client_ahead *a;

	while ((a = ahead_pop(c)) != NULL)
		ahead_free(a);
}

/* A consumer went away: it no longer answers anything further back. */
void
ahead_consumer_gone(struct client *c, uint64_t consumer)
{
	struct client_ahead *a;

	TAILQ_FOREACH (a, &c->ahead, entry)
		ahead_receiver_del(a->receivers, &a->nreceivers, consumer);
}

/* A new recorded send of kind, appended to a. */
static struct client_send *
ahead_send_new(struct client_ahead *a, enum ahead_kind kind, const char *text, size_t len)
{
	struct client_send *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->kind = kind;
	s->fd = -1;
	if ((s->text = malloc(len + 1)) == NULL) {
		free(s);
		return NULL;
	}
	memcpy(s->text, text, len);
	s->text[len] = '\0';
	s->len = len;
	TAILQ_INSERT_TAIL(&a->sends, s, entry);
	return s;
}

/* Record one line (checked by the caller); the answer is complete unless
 * flags has POP3D_SEND_MORE. */
int
ahead_defer_line(struct client_ahead *a, const char *line, size_t len, int flags)
{
	struct client_send *s;

	if ((s = ahead_send_new(a, AHEAD_LINE, line, len)) == NULL)
		return -POP3D_ERR_NOMEM;
	s->flags = flags & (POP3D_SEND_MORE | POP3D_SEND_DATA);
	if (!(flags & POP3D_SEND_MORE))
		a->complete = 1;
	else
		a->open = 1;
	return 0;
}

/* Record a multi-line answer (checked by the caller). */
int
ahead_defer_lines(struct client_ahead *a, const char *status, const struct iovec *lines, size_t n)
{
	struct client_send *s;
	size_t i, total = 0, off = 0;

	for (i = 0; i < n; i++)
		total += lines[i].iov_len;
	if ((s = ahead_send_new(a, AHEAD_LINES, status, strlen(status))) == NULL)
		return -POP3D_ERR_NOMEM;
	s->iov = calloc(n ? n : 1, sizeof(*s->iov));
	s->blob = malloc(total ? total : 1);
	if (s->iov == NULL || s->blob == NULL) {
		TAILQ_REMOVE(&a->sends, s, entry);
		ahead_send_free(s);
		return -POP3D_ERR_NOMEM;
	}
	for (i = 0; i < n; i++) {
		memcpy(s->blob + off, lines[i].iov_base, lines[i].iov_len);
		s->iov[i].iov_base = s->blob + off;
		s->iov[i].iov_len = lines[i].iov_len;
		off += lines[i].iov_len;
	}
	s->n = n;
	a->complete = 1;
	return 0;
}

/* Record a file answer: fd (open, checked) is ours from now on. */
int
ahead_defer_fd(struct client_ahead *a, const char *status, int fd, long top)
{
	struct client_send *s;

	if ((s = ahead_send_new(a, AHEAD_FILE, status, strlen(status))) == NULL) {
		close(fd);
		return -POP3D_ERR_NOMEM;
	}
	s->fd = fd;
	s->top = top;
	a->complete = 1;
	return 0;
}

/* The command became the head: send what was recorded for it, in order,
 * through ops (reply.c's senders: ahead.c is below them). */
void
ahead_replay(struct client *c, struct client_ahead *a, const struct ahead_ops *ops)
{
	struct client_send *s;

	while ((s = TAILQ_FIRST(&a->sends)) != NULL) {
		TAILQ_REMOVE(&a->sends, s, entry);
		/* A client dead or closing meanwhile: the senders refuse, and
		 * the file is closed by them all the same. */
		switch (s->kind) {
		case AHEAD_LINE:
			ops->line(c, a->tag, s->text, s->len, s->flags);
			break;
		case AHEAD_LINES:
			ops->lines(c, a->tag, s->text, s->iov, s->n);
			break;
		case AHEAD_FILE:
			/* The fd is ops->fd's now, even when it fails
			 * (it closes it then). */
			(void)ops->fd(c, a->tag, s->text, s->fd, s->top);
			s->fd = -1;
			break;
		}
		ahead_send_free(s);
	}
}

/* Whether the next buffered line may be dispatched now, ahead of the
 * answer to the command in flight. */
int
ahead_ok(struct client *c)
{
	struct pop3d *srv = c->srv;
	struct client_ahead *last;
	struct evbuffer *in;
	struct evbuffer_ptr p;
	struct line_cmd cmd;
	char name[EVENTS_CMD_MAX];
	const char *data, *verb;
	size_t len;

	if (srv->opts.pipeline_depth <= 1 || c->inflight == 0 || c->sasl || c->lf.discarding ||
	    c->state != POP3D_STATE_TRANSACTION || c->nahead + 1 >= srv->opts.pipeline_depth)
		return 0;
	last = TAILQ_LAST(&c->ahead, client_ahead_list);
	verb = last != NULL ? last->verb : c->verb;
	if (verbs_flags(verb, strlen(verb)) & VERB_QUIT)
		return 0;
	if (srv->span_owner == c && srv->spanlen > 0) {
		/* The lines are parsed from the read buffer (conn_raw_read). */
		const char *nl = memchr(srv->span, '\n',
		    srv->spanlen < srv->opts.max_line ? srv->spanlen : srv->opts.max_line);

		if (nl == NULL)
			return 0;
		data = srv->span;
		len = (size_t)(nl - data);
	} else {
		if ((in = conn_peek_input(c)) == NULL)
			return 0;
		p = evbuffer_search(in, "\n", 1, NULL);
		if (p.pos < 0 || (size_t)p.pos + 1 > srv->opts.max_line)
			return 0;
		if ((data = (const char *)evbuffer_pullup(in, p.pos + 1)) == NULL)
			return 0;
		len = (size_t)p.pos;
	}
	if (len > 0 && data[len - 1] == '\r')
		len--;
	if (memchr(data, '\0', len) != NULL || line_parse(data, len, &cmd) == -1)
		return 0;
	if (!(verbs_flags(cmd.verb, strlen(cmd.verb)) & VERB_AHEAD))
		return 0;
	events_cmd_name(name, cmd.verb);
	return pipeline_has_handler(srv->pipeline, POP3D_PLUGIN_POP3D, name);
}
