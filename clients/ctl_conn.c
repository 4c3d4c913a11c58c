/* ctl_conn.c - pop3ctl connection: control socket, line framing, requests and replies. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <jansson.h>

#include "pop3ctl.h"

/* Write all of buf to the socket; 0, or -1 with a message printed. */
int
ctlconn_write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			ctlutil_warn("write to the control socket: %s", strerror(errno));
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send one JSON object as a line; 0, or -1 with a message printed. */
static int
ctlconn_send_json(struct pop3ctl_conn *c, json_t *obj)
{
	char *s, *t;
	size_t n;
	int rv;

	if ((s = json_dumps(obj, JSON_COMPACT)) == NULL) {
		ctlutil_warn("cannot encode the command");
		return -1;
	}
	n = strlen(s);
	if ((t = realloc(s, n + 2)) == NULL) {
		free(s);
		ctlutil_warn("out of memory");
		return -1;
	}
	t[n] = '\n'; /* one write: the line and its end together */
	rv = ctlconn_write_all(c->fd, t, n + 1);
	free(t);
	return rv;
}

/* Send {"cmd":name,"id":N} plus the keys of args (stolen; may be NULL);
 * returns the id, or -1 with a message printed. */
json_int_t
ctlconn_send_cmd(struct pop3ctl_conn *c, const char *name, json_t *args)
{
	json_t *o = json_object();
	json_int_t id = ++c->next_id;
	int rv = -1;

	if (o != NULL && json_object_set_new(o, "cmd", json_string(name)) == 0 &&
	    json_object_set_new(o, "id", json_integer(id)) == 0 &&
	    (args == NULL || json_object_update(o, args) == 0))
		rv = ctlconn_send_json(c, o);
	else
		ctlutil_warn("out of memory");
	json_decref(o);
	json_decref(args);
	return rv == 0 ? id : -1;
}

/* The next line from pop3d, NUL-terminated in place and valid until the
 * next call: 1, 0 at end of file, -1 on error (message printed). */
static int
ctlconn_read_line(struct pop3ctl_conn *c, char **line, size_t *len)
{
	ssize_t n;

	for (;;) {
		size_t avail = c->end - c->start;
		char *nl = NULL;

		if (avail > c->scanned)
			nl = memchr(c->buf + c->start + c->scanned, '\n', avail - c->scanned);
		if (nl != NULL) {
			*nl = '\0';
			*line = c->buf + c->start;
			*len = (size_t)(nl - *line);
			c->start += *len + 1;
			c->scanned = 0;
			return 1;
		}
		c->scanned = avail;
		if (avail > POP3CTL_MAX_LINE) {
			ctlutil_warn("a line from pop3d is longer than %lu octets",
			    POP3CTL_MAX_LINE);
			return -1;
		}
		if (c->start > 0) {
			memmove(c->buf, c->buf + c->start, avail);
			c->start = 0;
			c->end = avail;
		}
		if (c->end == c->cap) {
			size_t ncap = c->cap == 0 ? POP3CTL_READ_CHUNK : c->cap * 2;
			char *nb;

			if (ncap > POP3CTL_MAX_LINE + 1)
				ncap = POP3CTL_MAX_LINE + 1;
			if ((nb = realloc(c->buf, ncap)) == NULL) {
				ctlutil_warn("out of memory");
				return -1;
			}
			c->buf = nb;
			c->cap = ncap;
		}
		n = read(c->fd, c->buf + c->end, c->cap - c->end);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == ECONNRESET)
			n = 0;
		if (n == -1) {
			ctlutil_warn("read from the control socket: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		c->end += (size_t)n;
	}
}

/* The next JSON object from pop3d (blank lines skipped); *raw is its text,
 * valid until the next read.  1, 0 at end of file, -1 on error. */
int
ctlconn_read_msg(struct pop3ctl_conn *c, json_t **msg, char **raw)
{
	json_error_t err;
	size_t len;
	char *line;
	int rv;

	*msg = NULL;
	do {
		if ((rv = ctlconn_read_line(c, &line, &len)) != 1)
			return rv;
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
	} while (len == 0);
	*msg = json_loadb(line, len, JSON_ALLOW_NUL, &err);
	if (*msg == NULL || !json_is_object(*msg)) {
		ctlutil_warn("pop3d sent a line that is not a JSON object: %s",
		    *msg == NULL ? err.text : "not an object");
		json_decref(*msg);
		*msg = NULL;
		return -1;
	}
	if (raw != NULL)
		*raw = line;
	return 1;
}

/* The "type" member of a message, or "". */
const char *
ctlconn_type(json_t *msg)
{
	const char *t = json_string_value(json_object_get(msg, "type"));

	return t != NULL ? t : "";
}

/* Print "pop3ctl: CODE: message" for an error reply; returns POP3CTL_ERR. */
int
ctlconn_reply_error(json_t *reply)
{
	json_t *e = json_object_get(reply, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	ctlutil_warn("%s: %s", code != NULL ? code : "error", msg != NULL ? msg : "(no message)");
	return POP3CTL_ERR;
}

/* Connect to the socket and read the greeting; POP3CTL_OK or an exit status. */
int
ctlconn_open(struct pop3ctl_conn *c, const char *socket_path)
{
	struct sockaddr_un sun;
	json_t *g;
	int rv;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(socket_path) >= sizeof(sun.sun_path)) {
		ctlutil_warn("%s: socket path too long", socket_path);
		return POP3CTL_UNREACHABLE;
	}
	memcpy(sun.sun_path, socket_path, strlen(socket_path));
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		ctlutil_warn("socket: %s", strerror(errno));
		return POP3CTL_UNREACHABLE;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		ctlutil_warn("%s: %s", socket_path, strerror(errno));
		return POP3CTL_UNREACHABLE;
	}
	if ((rv = ctlconn_read_msg(c, &g, NULL)) != 1) {
		if (rv == 0)
			ctlutil_warn("%s: closed before the greeting", socket_path);
		return POP3CTL_UNREACHABLE;
	}
	if (strcmp(ctlconn_type(g), "reply") == 0 && json_is_false(json_object_get(g, "ok")))
		rv = ctlconn_reply_error(g); /* refused: uid, too many controllers */
	else if (strcmp(ctlconn_type(g), "greeting") != 0) {
		ctlutil_warn("%s: no pop3d greeting", socket_path);
		rv = POP3CTL_UNREACHABLE;
	} else
		rv = POP3CTL_OK;
	json_decref(g);
	return rv;
}

/* Close the connection and free its buffer. */
void
ctlconn_close(struct pop3ctl_conn *c)
{
	if (c->fd != -1 && close(c->fd) == -1)
		ctlutil_warn("close: %s", strerror(errno));
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->start = c->end = c->cap = c->scanned = 0;
}

/* Read until the next reply, skipping events; NULL (and *status set) when
 * the connection ends or fails first. */
static json_t *
ctlconn_wait_reply(struct pop3ctl_conn *c, int *status)
{
	json_t *m;
	int rv;

	for (;;) {
		if ((rv = ctlconn_read_msg(c, &m, NULL)) != 1) {
			if (rv == 0) {
				ctlutil_warn("pop3d closed the connection before answering");
				*status = POP3CTL_UNREACHABLE;
			} else
				*status = POP3CTL_ERR;
			return NULL;
		}
		if (strcmp(ctlconn_type(m), "reply") == 0)
			return m;
		json_decref(m);
	}
}

/* Connect, run one command (args stolen) and return its reply; NULL with
 * *status set on failure. */
json_t *
ctlconn_call(struct pop3ctl_conn *c, const char *socket_path, const char *name, json_t *args,
    int *status)
{
	if ((*status = ctlconn_open(c, socket_path)) != POP3CTL_OK) {
		json_decref(args);
		return NULL;
	}
	if (ctlconn_send_cmd(c, name, args) == -1) {
		*status = POP3CTL_UNREACHABLE;
		return NULL;
	}
	return ctlconn_wait_reply(c, status);
}
