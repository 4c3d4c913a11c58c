/*
 * pop3ctl.c - the command-line controller of pop3d.
 *
 * One connection per run: connect to the control socket, read the greeting
 * line, send one command (or, for listen and raw, a stream of them), skip
 * the events that are not asked for, and print the result.  See pop3ctl(1).
 *
 * Exit status: 0 success, 1 pop3d answered with an error (or another
 * failure at run time), 2 usage error, 3 the socket cannot be reached or the
 * connection was lost before the answer.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <jansson.h>

#include "base64.h"
#include "mask.h"

#define POP3CTL_DEFAULT_SOCKET	"/run/pop3d/control.sock"
#define POP3CTL_MAX_LINE	(16UL << 20)	/* longest line taken from pop3d */
#define POP3CTL_MAX_OUTPUT	(16UL << 20)	/* most output kept of one --exec CMD */
#define POP3CTL_MAX_INPUT	(1UL << 30)	/* most stdin taken by send-lines */
#define POP3CTL_READ_CHUNK	65536

enum {
	POP3CTL_OK = 0,		/* success */
	POP3CTL_ERR = 1,	/* pop3d answered with an error; other failures */
	POP3CTL_USAGE = 2,	/* bad command line */
	POP3CTL_UNREACHABLE = 3	/* no connection, or it was lost */
};

/* Options a subcommand may take after its name. */
#define POP3CTL_OPT_TAG		0x01
#define POP3CTL_OPT_TOP		0x02
#define POP3CTL_OPT_FORMAT	0x04
#define POP3CTL_OPT_EXEC	0x08
#define POP3CTL_OPT_SECRETS	0x10
#define POP3CTL_OPT_RAWARGS	0x20

extern char **environ;

/* One connection to the control socket with its bounded line buffer. */
struct pop3ctl_conn {
	int fd;
	char *buf;		/* buf[start, end) is read but not yet returned */
	size_t start, end, cap;
	size_t scanned;		/* bytes after start known to hold no LF */
	json_int_t next_id;
};

/* The parsed command line. */
struct pop3ctl_ctx {
	const char *socket;
	int json;		/* --json: print the raw result object */
	long long tag;		/* --tag N, 0 when absent */
	long long top;		/* --top N, -1 when absent */
	const char *format;	/* listen --format */
	const char *exec;	/* listen --exec */
	int show_secrets;	/* listen --show-secrets: arguments unmasked */
	int raw_args;		/* listen --raw-args: --exec gets exact bytes */
	char **args;		/* positional arguments after the subcommand */
	int nargs;
	struct pop3ctl_conn conn;
};

/* A subcommand: its name, argument counts, options and handler. */
struct pop3ctl_sub {
	const char *name;
	int min, max;		/* positional arguments; max -1: any number */
	unsigned opts;		/* POP3CTL_OPT_* it accepts */
	int (*run)(struct pop3ctl_ctx *);
	const char *synopsis;
};

/* Print "pop3ctl: MESSAGE" on stderr. */
static void __attribute__((format(printf, 1, 2)))
pop3ctl_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("pop3ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Print the synopsis of every subcommand on f (defined with the table). */
static void pop3ctl_synopsis(FILE *f);

/* Print a usage error and the synopsis; returns POP3CTL_USAGE. */
static int __attribute__((format(printf, 1, 2)))
pop3ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("pop3ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'pop3ctl -h' for help.\n", stderr);
	return POP3CTL_USAGE;
}

/* malloc that reports failure. */
static void *
pop3ctl_alloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		pop3ctl_warn("out of memory");
	return p;
}

/* Parse a decimal integer in [min, max]; 0 on success, -1 otherwise. */
static int
pop3ctl_number(const char *s, long long min, long long max, long long *out)
{
	long long v;
	char *end;

	if (!((s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Whether s is an integer in canonical decimal form ("-?(0|[1-9][0-9]*)"). */
static int
pop3ctl_canonical_int(const char *s, long long *out)
{
	const char *p = s[0] == '-' ? s + 1 : s;

	if (*p == '\0' || (p[0] == '0' && p[1] != '\0') || p[strspn(p, "0123456789")] != '\0')
		return 0;
	return pop3ctl_number(s, -0x7fffffffffffffffLL - 1, 0x7fffffffffffffffLL, out) == 0;
}

/* Set obj[key] to the bytes as a JSON string, or obj[b64key] to their
 * base64 when they are not UTF-8.  0, or -1 when out of memory. */
static int
pop3ctl_set_bytes(json_t *obj, const char *key, const char *b64key, const char *s,
    size_t len)
{
	json_t *j = json_stringn(s, len);
	char *enc;

	if (j != NULL)
		return json_object_set_new(obj, key, j);
	if (b64key == NULL || (enc = base64_encode(s, len)) == NULL)
		return -1;
	j = json_string(enc);
	free(enc);
	return json_object_set_new(obj, b64key, j);
}

/* Set obj[key] to a string argument that must be UTF-8; -1 if it is not. */
static int
pop3ctl_set_utf8(json_t *obj, const char *key, const char *s, const char *what)
{
	json_t *j = json_string(s);

	if (j == NULL) {
		pop3ctl_warn("%s is not valid UTF-8", what);
		return -1;
	}
	return json_object_set_new(obj, key, j);
}

/* Lines as {"lines":[...]} or, when one is not UTF-8, {"lines_b64":[...]}. */
static int
pop3ctl_set_lines(json_t *obj, char **lines, const size_t *lens, size_t n)
{
	json_t *a = json_array(), *j;
	size_t i;
	int b64 = 0;
	char *enc;

	if (a == NULL)
		return -1;
	for (i = 0; i < n && !b64; i++) {
		if ((j = json_stringn(lines[i], lens[i])) == NULL)
			b64 = 1;
		else if (json_array_append_new(a, j) == -1)
			goto fail;
	}
	if (b64) {
		json_array_clear(a);
		for (i = 0; i < n; i++) {
			if ((enc = base64_encode(lines[i], lens[i])) == NULL)
				goto fail;
			j = json_string(enc);
			free(enc);
			if (json_array_append_new(a, j) == -1)
				goto fail;
		}
	}
	return json_object_set_new(obj, b64 ? "lines_b64" : "lines", a);
fail:
	json_decref(a);
	return -1;
}

/* Write all of buf to the socket; 0, or -1 with a message printed. */
static int
pop3ctl_write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = send(fd, buf, len, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			pop3ctl_warn("write to the control socket: %s", strerror(errno));
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send one JSON object as a line; 0, or -1 with a message printed. */
static int
pop3ctl_send_json(struct pop3ctl_conn *c, json_t *obj)
{
	char *s, *t;
	size_t n;
	int rv;

	if ((s = json_dumps(obj, JSON_COMPACT)) == NULL) {
		pop3ctl_warn("cannot encode the command");
		return -1;
	}
	n = strlen(s);
	if ((t = realloc(s, n + 2)) == NULL) {
		free(s);
		pop3ctl_warn("out of memory");
		return -1;
	}
	t[n] = '\n';	/* one write: the line and its end together */
	rv = pop3ctl_write_all(c->fd, t, n + 1);
	free(t);
	return rv;
}

/* Send {"cmd":name,"id":N} plus the keys of args (stolen; may be NULL);
 * returns the id, or -1 with a message printed. */
static json_int_t
pop3ctl_send_cmd(struct pop3ctl_conn *c, const char *name, json_t *args)
{
	json_t *o = json_object();
	json_int_t id = ++c->next_id;
	int rv = -1;

	if (o != NULL && json_object_set_new(o, "cmd", json_string(name)) == 0 &&
	    json_object_set_new(o, "id", json_integer(id)) == 0 &&
	    (args == NULL || json_object_update(o, args) == 0))
		rv = pop3ctl_send_json(c, o);
	else
		pop3ctl_warn("out of memory");
	json_decref(o);
	json_decref(args);
	return rv == 0 ? id : -1;
}

/* The next line from pop3d, NUL-terminated in place and valid until the
 * next call: 1, 0 at end of file, -1 on error (message printed). */
static int
pop3ctl_read_line(struct pop3ctl_conn *c, char **line, size_t *len)
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
			pop3ctl_warn("a line from pop3d is longer than %lu octets",
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
				pop3ctl_warn("out of memory");
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
			pop3ctl_warn("read from the control socket: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		c->end += (size_t)n;
	}
}

/* The next JSON object from pop3d (blank lines skipped); *raw is its text,
 * valid until the next read.  1, 0 at end of file, -1 on error. */
static int
pop3ctl_read_msg(struct pop3ctl_conn *c, json_t **msg, char **raw)
{
	json_error_t err;
	size_t len;
	char *line;
	int rv;

	*msg = NULL;
	do {
		if ((rv = pop3ctl_read_line(c, &line, &len)) != 1)
			return rv;
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
	} while (len == 0);
	*msg = json_loadb(line, len, JSON_ALLOW_NUL, &err);
	if (*msg == NULL || !json_is_object(*msg)) {
		pop3ctl_warn("pop3d sent a line that is not a JSON object: %s",
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
static const char *
pop3ctl_type(json_t *msg)
{
	const char *t = json_string_value(json_object_get(msg, "type"));

	return t != NULL ? t : "";
}

/* Print "pop3ctl: CODE: message" for an error reply; returns POP3CTL_ERR. */
static int
pop3ctl_reply_error(json_t *reply)
{
	json_t *e = json_object_get(reply, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	pop3ctl_warn("%s: %s", code != NULL ? code : "error", msg != NULL ? msg : "(no message)");
	return POP3CTL_ERR;
}

/* Connect to the socket and read the greeting; POP3CTL_OK or an exit status. */
static int
pop3ctl_open(struct pop3ctl_ctx *x)
{
	struct pop3ctl_conn *c = &x->conn;
	struct sockaddr_un sun;
	json_t *g;
	int rv;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(x->socket) >= sizeof(sun.sun_path)) {
		pop3ctl_warn("%s: socket path too long", x->socket);
		return POP3CTL_UNREACHABLE;
	}
	memcpy(sun.sun_path, x->socket, strlen(x->socket));
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		pop3ctl_warn("socket: %s", strerror(errno));
		return POP3CTL_UNREACHABLE;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		pop3ctl_warn("%s: %s", x->socket, strerror(errno));
		return POP3CTL_UNREACHABLE;
	}
	if ((rv = pop3ctl_read_msg(c, &g, NULL)) != 1) {
		if (rv == 0)
			pop3ctl_warn("%s: closed before the greeting", x->socket);
		return POP3CTL_UNREACHABLE;
	}
	if (strcmp(pop3ctl_type(g), "reply") == 0 &&
	    json_is_false(json_object_get(g, "ok")))
		rv = pop3ctl_reply_error(g);	/* refused: uid, too many controllers */
	else if (strcmp(pop3ctl_type(g), "greeting") != 0) {
		pop3ctl_warn("%s: no pop3d greeting", x->socket);
		rv = POP3CTL_UNREACHABLE;
	} else
		rv = POP3CTL_OK;
	json_decref(g);
	return rv;
}

/* Close the connection and free its buffer. */
static void
pop3ctl_close(struct pop3ctl_conn *c)
{
	if (c->fd != -1 && close(c->fd) == -1)
		pop3ctl_warn("close: %s", strerror(errno));
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->start = c->end = c->cap = c->scanned = 0;
}

/* Read until the next reply, skipping events; NULL (and *status set) when
 * the connection ends or fails first. */
static json_t *
pop3ctl_wait_reply(struct pop3ctl_conn *c, int *status)
{
	json_t *m;
	int rv;

	for (;;) {
		if ((rv = pop3ctl_read_msg(c, &m, NULL)) != 1) {
			if (rv == 0) {
				pop3ctl_warn("pop3d closed the connection before answering");
				*status = POP3CTL_UNREACHABLE;
			} else
				*status = POP3CTL_ERR;
			return NULL;
		}
		if (strcmp(pop3ctl_type(m), "reply") == 0)
			return m;
		json_decref(m);
	}
}

/* Connect, run one command (args stolen) and return its reply; NULL with
 * *status set on failure. */
static json_t *
pop3ctl_call(struct pop3ctl_ctx *x, const char *name, json_t *args, int *status)
{
	if ((*status = pop3ctl_open(x)) != POP3CTL_OK) {
		json_decref(args);
		return NULL;
	}
	if (pop3ctl_send_cmd(&x->conn, name, args) == -1) {
		*status = POP3CTL_UNREACHABLE;
		return NULL;
	}
	return pop3ctl_wait_reply(&x->conn, status);
}

/* Print a JSON value as one compact line on stdout. */
static void
pop3ctl_print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s == NULL) {
		pop3ctl_warn("cannot encode the result");
		return;
	}
	puts(s);
	free(s);
}

/* Run a command whose result is printed by show (NULL: nothing on success). */
static int
pop3ctl_simple(struct pop3ctl_ctx *x, const char *name, json_t *args,
    void (*show)(json_t *))
{
	json_t *r, *res;
	int status;

	if ((r = pop3ctl_call(x, name, args, &status)) == NULL)
		return status;
	res = json_object_get(r, "result");
	if (!json_is_true(json_object_get(r, "ok")))
		status = pop3ctl_reply_error(r);
	else if (x->json)
		pop3ctl_print_json(res != NULL ? res : json_null());
	else if (show != NULL)
		show(res);
	json_decref(r);
	return status;
}

/* Parse the CLIENT argument; 0, or -1 with a usage message. */
static int
pop3ctl_client_arg(const char *s, long long *client)
{
	if (pop3ctl_number(s, 1, 0x7fffffffffffffffLL, client) == -1) {
		pop3ctl_usage_error("CLIENT must be a positive integer, not \"%s\"", s);
		return -1;
	}
	return 0;
}

/* {"client":N} plus "tag" when --tag was given; NULL when out of memory. */
static json_t *
pop3ctl_client_obj(struct pop3ctl_ctx *x, long long client)
{
	json_t *o = json_object();

	if (o == NULL || json_object_set_new(o, "client", json_integer(client)) == -1 ||
	    (x->tag > 0 && json_object_set_new(o, "tag", json_integer(x->tag)) == -1)) {
		json_decref(o);
		pop3ctl_warn("out of memory");
		return NULL;
	}
	return o;
}

/* send CLIENT TEXT: one line, completing the command. */
static int
pop3ctl_cmd_send(struct pop3ctl_ctx *x)
{
	long long client;
	json_t *o;

	if (pop3ctl_client_arg(x->args[0], &client) == -1)
		return POP3CTL_USAGE;
	if ((o = pop3ctl_client_obj(x, client)) == NULL)
		return POP3CTL_ERR;
	if (pop3ctl_set_bytes(o, "text", "text_b64", x->args[1], strlen(x->args[1])) == -1) {
		json_decref(o);
		return POP3CTL_ERR;
	}
	return pop3ctl_simple(x, "send_to_client", o, NULL);
}

/* Free a vector of n lines and their lengths. */
static void
pop3ctl_free_lines(char **lines, size_t *lens, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(lens);
}

/* Append one line to a growing vector; 0, or -1 when out of memory. */
static int
pop3ctl_push_line(char ***lines, size_t **lens, size_t *n, size_t *cap, const char *s,
    size_t len)
{
	char *copy;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (*n == *cap) {
		size_t ncap = *cap == 0 ? 16 : *cap * 2;
		char **nl = realloc(*lines, ncap * sizeof(**lines));
		size_t *nn;

		if (nl == NULL) {
			pop3ctl_warn("out of memory");
			return -1;
		}
		*lines = nl;
		if ((nn = realloc(*lens, ncap * sizeof(**lens))) == NULL) {
			pop3ctl_warn("out of memory");
			return -1;
		}
		*lens = nn;
		*cap = ncap;
	}
	if ((copy = pop3ctl_alloc(len + 1)) == NULL)
		return -1;
	memcpy(copy, s, len);
	copy[len] = '\0';
	(*lines)[*n] = copy;
	(*lens)[(*n)++] = len;
	return 0;
}

/* Split text into lines at LF (a final LF ends the last line; CR before LF
 * dropped); 0, or -1 when out of memory. */
static int
pop3ctl_split_lines(const char *text, size_t len, char ***lines, size_t **lens, size_t *n)
{
	size_t cap = 0, pos = 0;
	const char *nl;

	*lines = NULL;
	*lens = NULL;
	*n = 0;
	while (pos < len) {
		size_t l;

		nl = memchr(text + pos, '\n', len - pos);
		l = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		if (pop3ctl_push_line(lines, lens, n, &cap, text + pos, l) == -1) {
			pop3ctl_free_lines(*lines, *lens, *n);
			*lines = NULL;
			*lens = NULL;
			*n = 0;
			return -1;
		}
		pos += l + 1;
	}
	return 0;
}

/* Read all of stdin, at most max octets; the malloc'd bytes, or NULL. */
static char *
pop3ctl_read_stdin(size_t max, size_t *len)
{
	size_t cap = 0;
	char *buf = NULL, *nb;
	ssize_t n;

	*len = 0;
	for (;;) {
		if (*len == cap) {
			cap = cap == 0 ? POP3CTL_READ_CHUNK : cap * 2;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				pop3ctl_warn("out of memory");
				free(buf);
				return NULL;
			}
			buf = nb;
		}
		n = read(STDIN_FILENO, buf + *len, cap - *len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			pop3ctl_warn("read from stdin: %s", strerror(errno));
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
		if (*len > max) {
			pop3ctl_warn("more than %zu octets on stdin", max);
			free(buf);
			return NULL;
		}
	}
	buf[*len] = '\0';
	return buf;
}

/* send-lines CLIENT: stdin as one multi-line response (first line: status). */
static int
pop3ctl_cmd_send_lines(struct pop3ctl_ctx *x)
{
	long long client;
	char **lines, *text;
	size_t *lens, n, len;
	json_t *o;
	int rv;

	if (pop3ctl_client_arg(x->args[0], &client) == -1)
		return POP3CTL_USAGE;
	if ((text = pop3ctl_read_stdin(POP3CTL_MAX_INPUT, &len)) == NULL)
		return POP3CTL_ERR;
	rv = pop3ctl_split_lines(text, len, &lines, &lens, &n);
	free(text);
	if (rv == -1)
		return POP3CTL_ERR;
	if (n == 0) {
		pop3ctl_free_lines(lines, lens, n);
		return pop3ctl_usage_error("send-lines: no status line on stdin");
	}
	if ((o = pop3ctl_client_obj(x, client)) == NULL ||
	    pop3ctl_set_lines(o, lines, lens, n) == -1) {
		pop3ctl_free_lines(lines, lens, n);
		json_decref(o);
		pop3ctl_warn("out of memory");
		return POP3CTL_ERR;
	}
	pop3ctl_free_lines(lines, lens, n);
	return pop3ctl_simple(x, "send_to_client", o, NULL);
}

/* path made absolute against the current directory; malloc'd or NULL. */
static char *
pop3ctl_abspath(const char *path)
{
	char *cwd, *out;
	size_t n;

	if (path[0] == '/')
		return strdup(path);
	if ((cwd = getcwd(NULL, 0)) == NULL) {
		pop3ctl_warn("getcwd: %s", strerror(errno));
		return NULL;
	}
	n = strlen(cwd) + strlen(path) + 2;
	if ((out = pop3ctl_alloc(n)) != NULL)
		snprintf(out, n, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path);
	free(cwd);
	return out;
}

/* send-file CLIENT PATH STATUS: stream a file as a multi-line response. */
static int
pop3ctl_cmd_send_file(struct pop3ctl_ctx *x)
{
	long long client;
	char *path;
	json_t *o;
	int rv;

	if (pop3ctl_client_arg(x->args[0], &client) == -1)
		return POP3CTL_USAGE;
	if ((o = pop3ctl_client_obj(x, client)) == NULL)
		return POP3CTL_ERR;
	if ((path = pop3ctl_abspath(x->args[1])) == NULL) {
		json_decref(o);
		return POP3CTL_ERR;
	}
	rv = pop3ctl_set_utf8(o, "path", path, "PATH");
	free(path);
	if (rv == -1 || pop3ctl_set_utf8(o, "status", x->args[2], "STATUS") == -1 ||
	    (x->top >= 0 && json_object_set_new(o, "top_lines", json_integer(x->top)) == -1)) {
		json_decref(o);
		return POP3CTL_USAGE;
	}
	return pop3ctl_simple(x, "send_file", o, NULL);
}

/* disconnect CLIENT [TEXT]: close a client, TEXT sent last. */
static int
pop3ctl_cmd_disconnect(struct pop3ctl_ctx *x)
{
	long long client;
	json_t *o;

	if (pop3ctl_client_arg(x->args[0], &client) == -1)
		return POP3CTL_USAGE;
	if ((o = pop3ctl_client_obj(x, client)) == NULL)
		return POP3CTL_ERR;
	if (x->nargs > 1 && pop3ctl_set_utf8(o, "text", x->args[1], "TEXT") == -1) {
		json_decref(o);
		return POP3CTL_USAGE;
	}
	return pop3ctl_simple(x, "disconnect", o, NULL);
}

/* shutdown: stop pop3d. */
static int
pop3ctl_cmd_shutdown(struct pop3ctl_ctx *x)
{
	return pop3ctl_simple(x, "shutdown", NULL, NULL);
}

/* "address:port", with brackets around an IPv6 address. */
static void
pop3ctl_hostport(char *out, size_t len, const char *addr, json_int_t port)
{
	snprintf(out, len, strchr(addr, ':') != NULL ? "[%s]:%" JSON_INTEGER_FORMAT :
	    "%s:%" JSON_INTEGER_FORMAT, addr, port);
}

/* Print the list_clients result as a table. */
static void
pop3ctl_show_clients(json_t *res)
{
	static const char *const head[6] = { "ID", "PEER", "LOCAL", "STATE", "TLS", "IDLE" };
	json_t *rows = json_object_get(res, "clients"), *r;
	size_t n = json_array_size(rows), i, k, w[6];
	char (*cells)[6][96];

	if ((cells = calloc(n + 1, sizeof(*cells))) == NULL) {
		pop3ctl_warn("out of memory");
		return;
	}
	for (k = 0; k < 6; k++)
		snprintf(cells[0][k], sizeof(cells[0][k]), "%s", head[k]);
	json_array_foreach(rows, i, r) {
		const char *peer = json_string_value(json_object_get(r, "peer"));
		const char *local = json_string_value(json_object_get(r, "local"));
		const char *state = json_string_value(json_object_get(r, "state"));

		snprintf(cells[i + 1][0], sizeof(cells[0][0]), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(json_object_get(r, "client")));
		pop3ctl_hostport(cells[i + 1][1], sizeof(cells[0][1]), peer ? peer : "?",
		    json_integer_value(json_object_get(r, "peer_port")));
		pop3ctl_hostport(cells[i + 1][2], sizeof(cells[0][2]), local ? local : "?",
		    json_integer_value(json_object_get(r, "local_port")));
		snprintf(cells[i + 1][3], sizeof(cells[0][3]), "%s", state ? state : "?");
		snprintf(cells[i + 1][4], sizeof(cells[0][4]), "%s",
		    json_is_true(json_object_get(r, "tls")) ? "yes" : "no");
		snprintf(cells[i + 1][5], sizeof(cells[0][5]), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(json_object_get(r, "idle")));
	}
	for (k = 0; k < 6; k++)
		for (i = 0, w[k] = 0; i <= n; i++)
			if (strlen(cells[i][k]) > w[k])
				w[k] = strlen(cells[i][k]);
	for (i = 0; i <= n; i++)
		printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], cells[i][0],
		    (int)w[1], cells[i][1], (int)w[2], cells[i][2], (int)w[3], cells[i][3],
		    (int)w[4], cells[i][4], cells[i][5]);
	free(cells);
}

/* clients: the connected POP3 clients. */
static int
pop3ctl_cmd_clients(struct pop3ctl_ctx *x)
{
	return pop3ctl_simple(x, "list_clients", NULL, pop3ctl_show_clients);
}

/* Convert one event argument word: canonical integers become integers. */
static json_t *
pop3ctl_event_arg(const char *s)
{
	long long v;

	if (pop3ctl_canonical_int(s, &v))
		return json_integer(v);
	return json_string(s);
}

/* event NAME [ARG...]: inject an event (send_event). */
static int
pop3ctl_cmd_event(struct pop3ctl_ctx *x)
{
	json_t *o = json_object(), *a = json_array(), *j;
	int i;

	if (o == NULL || a == NULL || json_object_set_new(o, "args", a) == -1) {
		json_decref(o);
		pop3ctl_warn("out of memory");
		return POP3CTL_ERR;
	}
	if (pop3ctl_set_utf8(o, "event", x->args[0], "NAME") == -1) {
		json_decref(o);
		return POP3CTL_USAGE;
	}
	for (i = 1; i < x->nargs; i++) {
		if ((j = pop3ctl_event_arg(x->args[i])) == NULL) {
			pop3ctl_warn("ARG %d is not valid UTF-8", i);
			json_decref(o);
			return POP3CTL_USAGE;
		}
		json_array_append_new(a, j);
	}
	return pop3ctl_simple(x, "send_event", o, NULL);
}

/* Print the getsockname result: "ADDRESS PORT" per listener, then the name
 * of each flag that is true ("tls", "proxy"). */
static void
pop3ctl_show_sockname(json_t *res)
{
	const char *key;
	json_t *l, *v;
	size_t i;

	json_array_foreach(json_object_get(res, "listeners"), i, l) {
		const char *addr = json_string_value(json_object_get(l, "address"));

		printf("%s %" JSON_INTEGER_FORMAT, addr != NULL ? addr : "?",
		    json_integer_value(json_object_get(l, "port")));
		json_object_foreach(l, key, v)
			if (json_is_true(v))
				printf(" %s", key);
		putchar('\n');
	}
}

/* sockname: the POP3 listening addresses. */
static int
pop3ctl_cmd_sockname(struct pop3ctl_ctx *x)
{
	return pop3ctl_simple(x, "getsockname", NULL, pop3ctl_show_sockname);
}

/* Print the session_id result. */
static void
pop3ctl_show_session(json_t *res)
{
	const char *s = json_string_value(json_object_get(res, "session_id"));

	puts(s != NULL ? s : "");
}

/* session-id: the server instance's session id. */
static int
pop3ctl_cmd_session_id(struct pop3ctl_ctx *x)
{
	return pop3ctl_simple(x, "session_id", NULL, pop3ctl_show_session);
}

/* Print the ping result. */
static void
pop3ctl_show_ping(json_t *res)
{
	printf("pong seq=%" JSON_INTEGER_FORMAT "\n",
	    json_integer_value(json_object_get(res, "seq")));
}

/* ping: a round trip (and event barrier). */
static int
pop3ctl_cmd_ping(struct pop3ctl_ctx *x)
{
	return pop3ctl_simple(x, "ping", NULL, pop3ctl_show_ping);
}

/* Print one plugin entry: a string, or an object's alias and priority. */
static void
pop3ctl_show_plugin(json_t *p)
{
	const char *alias = json_string_value(json_object_get(p, "alias"));
	json_t *prio = json_object_get(p, "priority");

	if (json_is_string(p))
		puts(json_string_value(p));
	else if (alias != NULL && json_is_integer(prio))
		printf("%s %" JSON_INTEGER_FORMAT "\n", alias, json_integer_value(prio));
	else if (alias != NULL)
		puts(alias);
	else
		pop3ctl_print_json(p);
}

/* Print the plugin_order result: one plugin per line, pipeline order. */
static void
pop3ctl_show_plugins(json_t *res)
{
	json_t *list = json_object_get(res, "plugins"), *v, *p;
	const char *key;
	size_t i;

	if (!json_is_array(list))
		json_object_foreach(res, key, v)
			if (json_is_array(v) && list == NULL)
				list = v;
	if (!json_is_array(list)) {
		pop3ctl_print_json(res);
		return;
	}
	json_array_foreach(list, i, p)
		pop3ctl_show_plugin(p);
}

/* plugins: the in-process plugins in pipeline order (plugin_order). */
static int
pop3ctl_cmd_plugins(struct pop3ctl_ctx *x)
{
	json_t *r, *res;
	const char *code;
	int status;

	if ((r = pop3ctl_call(x, "plugin_order", NULL, &status)) == NULL)
		return status;
	res = json_object_get(r, "result");
	code = json_string_value(json_object_get(json_object_get(r, "error"), "code"));
	if (!json_is_true(json_object_get(r, "ok"))) {
		if (code != NULL && strcmp(code, "unknown_command") == 0) {
			pop3ctl_warn("unknown_command: this pop3d cannot list plugins (it has "
			    "no plugin_order command)");
			status = POP3CTL_ERR;
		} else
			status = pop3ctl_reply_error(r);
	} else if (x->json)
		pop3ctl_print_json(res != NULL ? res : json_null());
	else
		pop3ctl_show_plugins(res);
	json_decref(r);
	return status;
}

/* Write len bytes to stdout as mask_escape's MASK_TEXT: \\ \t \n \r \0,
 * \xNN for other control octets, so a client cannot reach the terminal. */
static void
pop3ctl_put_escaped(const char *s, size_t len)
{
	/* In chunks: a unit is at most 8 octets, so each one uses some of s. */
	char buf[1024];
	size_t off, used;

	for (off = 0; off < len; off += used) {
		used = mask_escape(buf, sizeof(buf), s + off, len - off, MASK_TEXT);
		fputs(buf, stdout);
	}
}

/* s escaped as by pop3ctl_put_escaped, malloc'd (NUL-ended, *len without
 * it); s is freed.  NULL when out of memory. */
static char *
pop3ctl_escaped(char *s, size_t *len)
{
	/* At most 4 octets for each one of s (\xNN). */
	size_t size = 4 * *len + 1;
	char *e;

	if ((e = pop3ctl_alloc(size)) != NULL) {
		mask_escape(e, size, s, *len, MASK_TEXT);
		*len = strlen(e);
	}
	free(s);
	return e;
}

/* The exact bytes of event argument i: args_b64[i] decoded when present,
 * else the string.  *out is malloc'd when the bytes came from base64. */
static const char *
pop3ctl_arg_bytes(json_t *ev, size_t i, size_t *len, char **out)
{
	json_t *b = json_array_get(json_object_get(ev, "args_b64"), i);
	json_t *a = json_array_get(json_object_get(ev, "args"), i);
	long n;

	*out = NULL;
	if (json_is_string(b) &&
	    (n = base64_decode(json_string_value(b), json_string_length(b), out)) >= 0) {
		*len = (size_t)n;
		return *out;
	}
	*len = json_string_length(a);
	return json_string_value(a);
}

/* Argument i of an event as text: exact string bytes, decimal integers,
 * compact JSON otherwise.  malloc'd (NUL-ended, *len without it) or NULL. */
static char *
pop3ctl_arg_text(json_t *ev, size_t i, size_t *len)
{
	json_t *a = json_array_get(json_object_get(ev, "args"), i);
	const char *s;
	char *copy, *tmp;
	size_t n;

	if (json_is_string(a)) {
		s = pop3ctl_arg_bytes(ev, i, &n, &tmp);
		if ((copy = pop3ctl_alloc(n + 1)) != NULL) {
			memcpy(copy, s, n);
			copy[n] = '\0';
			*len = n;
		}
		free(tmp);
		return copy;
	}
	if (json_is_integer(a)) {
		if ((copy = pop3ctl_alloc(32)) != NULL)
			*len = (size_t)snprintf(copy, 32, "%" JSON_INTEGER_FORMAT,
			    json_integer_value(a));
		return copy;
	}
	if ((copy = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL)
		*len = strlen(copy);
	else
		pop3ctl_warn("out of memory");
	return copy;
}

/* A copy of ev whose secret arguments (mask.h) are masked, or NULL when
 * nothing is hidden (or --show-secrets).  A masked value whose visible
 * part is not UTF-8 is hidden whole; its args_b64 entry is null.  Sets
 * *err when out of memory. */
static json_t *
pop3ctl_mask_event(struct pop3ctl_ctx *x, json_t *ev, int *err)
{
	const char *name = json_string_value(json_object_get(ev, "event")), *s;
	json_t *args = json_object_get(ev, "args"), *copy = NULL, *a, *v, *b64;
	size_t i, n = json_array_size(args), len, size;
	char *tmp, *buf;
	int rule;

	*err = 0;
	if (x->show_secrets)
		return NULL;
	for (i = 0; i < n; i++) {
		a = json_array_get(args, i);
		if ((rule = mask_event_arg(name, (int)i)) == MASK_NONE || json_is_null(a))
			continue;
		v = NULL;
		if (json_is_string(a)) {
			if ((s = pop3ctl_arg_bytes(ev, i, &len, &tmp)) == NULL)
				s = "";
			if (mask_visible(rule, s, len) == len) {
				free(tmp);
				continue;
			}
			size = len + sizeof(" " MASK_HIDDEN);
			if ((buf = pop3ctl_alloc(size)) != NULL) {
				v = json_stringn(buf, mask_plain(buf, size, rule, s, len));
				free(buf);
			}
			free(tmp);
		}
		if (v == NULL)
			v = json_string(MASK_HIDDEN);
		if (copy == NULL && (copy = json_deep_copy(ev)) == NULL) {
			json_decref(v);
			*err = 1;
			return NULL;
		}
		b64 = json_object_get(copy, "args_b64");
		if (v == NULL || json_array_set_new(json_object_get(copy, "args"), i, v) == -1 ||
		    (json_is_array(b64) && i < json_array_size(b64) &&
		    json_array_set_new(b64, i, json_null()) == -1)) {
			json_decref(copy);
			*err = 1;
			return NULL;
		}
	}
	return copy;
}

/* Print an event as event<TAB>client<TAB>args... (escaped). */
static void
pop3ctl_print_text(json_t *ev)
{
	json_t *name = json_object_get(ev, "event"), *client = json_object_get(ev, "client");
	size_t i, n = json_array_size(json_object_get(ev, "args")), len;
	char *t;

	pop3ctl_put_escaped(json_string_value(name) ? json_string_value(name) : "",
	    json_string_length(name));
	if (json_is_integer(client))
		printf("\t%" JSON_INTEGER_FORMAT, json_integer_value(client));
	else
		fputs("\t-", stdout);
	for (i = 0; i < n; i++) {
		putchar('\t');
		if ((t = pop3ctl_arg_text(ev, i, &len)) != NULL)
			pop3ctl_put_escaped(t, len);
		free(t);
	}
	putchar('\n');
}

/* Whether an environment entry is one that --exec sets itself. */
static int
pop3ctl_env_ours(const char *e)
{
	static const char *const names[] = { "POP3D_EVENT=", "POP3D_CLIENT=", "POP3D_TAG=",
	    "POP3D_STATE=", "POP3D_SEQ=", "POP3D_ARGC=", "POP3D_ARGS_JSON=", "POP3D_TLS=",
	    "POP3D_ORIGIN=", "POP3D_CONTROL=", NULL };
	size_t i, d;

	for (i = 0; names[i] != NULL; i++)
		if (strncmp(e, names[i], strlen(names[i])) == 0)
			return 1;
	if (strncmp(e, "POP3D_ARG", 9) != 0)
		return 0;
	d = strspn(e + 9, "0123456789");
	return d > 0 && e[9 + d] == '=';
}

/* Append "name=value" (value cut at a NUL) to env; 0, or -1. */
static int
pop3ctl_env_add(char **env, size_t *n, const char *name, const char *value, size_t len)
{
	size_t vlen = strnlen(value, len), size = strlen(name) + vlen + 2;
	char *e;

	if ((e = pop3ctl_alloc(size)) == NULL)
		return -1;
	snprintf(e, size, "%s=%.*s", name, (int)vlen, value);
	env[(*n)++] = e;
	return 0;
}

/* Append an integer member of ev as name=decimal ("" when absent). */
static int
pop3ctl_env_int(char **env, size_t *n, const char *name, json_t *v)
{
	char num[32] = "";

	if (json_is_integer(v))
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return pop3ctl_env_add(env, n, name, num, strlen(num));
}

/* Free an environment vector built by pop3ctl_env_build. */
static void
pop3ctl_env_free(char **env, size_t keep)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = keep; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/* The environment for --exec: ours minus stale POP3D_* plus the event's
 * fields.  The first *keep entries are borrowed from environ. */
static char **
pop3ctl_env_build(struct pop3ctl_ctx *x, json_t *ev, size_t *keep)
{
	json_t *args = json_object_get(ev, "args"), *tls = json_object_get(ev, "tls");
	const char *state = json_string_value(json_object_get(ev, "state"));
	const char *name = json_string_value(json_object_get(ev, "event"));
	size_t nenv = 0, nargs = json_array_size(args), n = 0, i, len;
	char **env, key[32], *t;
	int rv = 0;

	while (environ[nenv] != NULL)
		nenv++;
	if ((env = calloc(nenv + nargs + 16, sizeof(*env))) == NULL) {
		pop3ctl_warn("out of memory");
		return NULL;
	}
	for (i = 0; i < nenv; i++)
		if (!pop3ctl_env_ours(environ[i]))
			env[n++] = environ[i];
	*keep = n;
	rv |= pop3ctl_env_add(env, &n, "POP3D_CONTROL", x->socket, strlen(x->socket));
	rv |= pop3ctl_env_add(env, &n, "POP3D_EVENT", name ? name : "", name ? strlen(name) : 0);
	rv |= pop3ctl_env_int(env, &n, "POP3D_CLIENT", json_object_get(ev, "client"));
	rv |= pop3ctl_env_int(env, &n, "POP3D_TAG", json_object_get(ev, "tag"));
	rv |= pop3ctl_env_add(env, &n, "POP3D_STATE", state ? state : "", state ? strlen(state) : 0);
	rv |= pop3ctl_env_int(env, &n, "POP3D_SEQ", json_object_get(ev, "seq"));
	rv |= pop3ctl_env_add(env, &n, "POP3D_TLS", json_is_true(tls) ? "1" : tls ? "0" : "", 1);
	rv |= pop3ctl_env_int(env, &n, "POP3D_ORIGIN", json_object_get(ev, "origin"));
	snprintf(key, sizeof(key), "%zu", nargs);
	rv |= pop3ctl_env_add(env, &n, "POP3D_ARGC", key, strlen(key));
	if ((t = args != NULL ? json_dumps(args, JSON_COMPACT) : strdup("[]")) == NULL)
		rv = -1;
	else
		rv |= pop3ctl_env_add(env, &n, "POP3D_ARGS_JSON", t, strlen(t));
	free(t);
	for (i = 0; i < nargs && rv == 0; i++) {
		snprintf(key, sizeof(key), "POP3D_ARG%zu", i);
		if ((t = pop3ctl_arg_text(ev, i, &len)) != NULL && !x->raw_args)
			t = pop3ctl_escaped(t, &len);
		if (t == NULL)
			rv = -1;
		else
			rv |= pop3ctl_env_add(env, &n, key, t, len);
		free(t);
	}
	if (rv != 0) {
		pop3ctl_env_free(env, *keep);
		return NULL;
	}
	return env;
}

/* Run cmd via /bin/sh -c with env, stdin /dev/null; its stdout (at most
 * POP3CTL_MAX_OUTPUT octets) is returned malloc'd, NULL on failure. */
static char *
pop3ctl_run(const char *cmd, char **env, size_t *len)
{
	static const char fail[] = "pop3ctl: cannot run /bin/sh\n";
	char *argv[4] = { (char *)"sh", (char *)"-c", (char *)cmd, NULL };
	char *buf = NULL, *nb, chunk[POP3CTL_READ_CHUNK];
	size_t cap = 0;
	int pfd[2], st, over = 0, nul;
	ssize_t n;
	pid_t pid;

	*len = 0;
	if (pipe2(pfd, O_CLOEXEC) == -1) {
		pop3ctl_warn("pipe: %s", strerror(errno));
		return NULL;
	}
	fflush(stdout);
	if ((pid = fork()) == -1) {
		pop3ctl_warn("fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return NULL;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here. */
		if (dup2(pfd[1], STDOUT_FILENO) == -1 ||
		    (nul = open("/dev/null", O_RDONLY)) == -1 || dup2(nul, STDIN_FILENO) == -1)
			_exit(127);
		execve("/bin/sh", argv, env);
		if (write(STDERR_FILENO, fail, sizeof(fail) - 1) == -1)
			_exit(127);
		_exit(127);
	}
	if (close(pfd[1]) == -1)
		pop3ctl_warn("close: %s", strerror(errno));
	for (;;) {
		n = read(pfd[0], chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			pop3ctl_warn("read from the command: %s", strerror(errno));
			over = 1;
			break;
		}
		if (n == 0)
			break;
		if (over)
			continue;	/* drain, so that the command can finish */
		if (*len + (size_t)n > POP3CTL_MAX_OUTPUT) {
			pop3ctl_warn("the command printed more than %lu octets; nothing sent",
			    POP3CTL_MAX_OUTPUT);
			over = 1;
			continue;
		}
		if (*len + (size_t)n + 1 > cap) {
			cap = (*len + (size_t)n + 1) * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				pop3ctl_warn("out of memory");
				over = 1;
				continue;
			}
			buf = nb;
		}
		memcpy(buf + *len, chunk, (size_t)n);
		*len += (size_t)n;
	}
	if (close(pfd[0]) == -1)
		pop3ctl_warn("close: %s", strerror(errno));
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR) {
			pop3ctl_warn("waitpid: %s", strerror(errno));
			st = 0;
			break;
		}
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		pop3ctl_warn("--exec command exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		pop3ctl_warn("--exec command killed by signal %d", WTERMSIG(st));
	if (over) {
		free(buf);
		*len = 0;
		return NULL;
	}
	if (buf == NULL && (buf = pop3ctl_alloc(1)) == NULL)
		return NULL;
	buf[*len] = '\0';
	return buf;
}

/* --exec for one event: run CMD, send its stdout lines to the event's client. */
static void
pop3ctl_exec_event(struct pop3ctl_ctx *x, json_t *ev)
{
	json_t *client = json_object_get(ev, "client"), *tag = json_object_get(ev, "tag"), *o;
	size_t keep, len, n, nsend, *lens;
	char **env, *out, **lines;
	int multi;

	if ((env = pop3ctl_env_build(x, ev, &keep)) == NULL)
		return;
	out = pop3ctl_run(x->exec, env, &len);
	pop3ctl_env_free(env, keep);
	if (out == NULL)
		return;
	if (pop3ctl_split_lines(out, len, &lines, &lens, &n) == -1) {
		free(out);
		return;
	}
	free(out);
	/* A last line "." ends a multi-line response explicitly, as on the
	 * wire: it is not sent (pop3d adds the terminator), and it allows a
	 * response with no body. */
	nsend = n;
	multi = n > 1;
	if (n > 1 && lens[n - 1] == 1 && lines[n - 1][0] == '.')
		nsend--;
	if (n > 0 && !json_is_integer(client))
		pop3ctl_warn("event %s has no client: the command's output is dropped",
		    json_string_value(json_object_get(ev, "event")));
	else if (n > 0) {
		if ((o = json_object()) == NULL ||
		    json_object_set(o, "client", client) == -1 ||
		    (json_is_integer(tag) && json_object_set(o, "tag", tag) == -1) ||
		    (!multi ? pop3ctl_set_bytes(o, "text", "text_b64", lines[0], lens[0]) :
		    pop3ctl_set_lines(o, lines, lens, nsend)) == -1) {
			pop3ctl_warn("out of memory");
			json_decref(o);
		} else
			(void)pop3ctl_send_cmd(&x->conn, "send_to_client", o);
	}
	pop3ctl_free_lines(lines, lens, n);
}

/* listen [EVENT...]: register and print (or --exec) each event until EOF. */
static int
pop3ctl_cmd_listen(struct pop3ctl_ctx *x)
{
	json_t *names = json_array(), *o, *m, *masked, *ev;
	json_int_t reg;
	int i, rv, registered = 0, text, err;
	char *raw, *dump;

	if (x->format != NULL && strcmp(x->format, "json") != 0 && strcmp(x->format, "text") != 0) {
		json_decref(names);
		return pop3ctl_usage_error("--format must be json or text");
	}
	if (x->raw_args && x->exec == NULL) {
		json_decref(names);
		return pop3ctl_usage_error("--raw-args goes with --exec");
	}
	text = x->format != NULL && strcmp(x->format, "text") == 0;
	if (names == NULL || (o = json_object()) == NULL) {
		json_decref(names);
		pop3ctl_warn("out of memory");
		return POP3CTL_ERR;
	}
	for (i = 0; i < x->nargs; i++)
		if (json_array_append_new(names, json_string(x->args[i])) == -1) {
			json_decref(names);
			json_decref(o);
			pop3ctl_warn("EVENT %s is not valid UTF-8", x->args[i]);
			return POP3CTL_USAGE;
		}
	if (x->nargs == 0)
		json_array_append_new(names, json_string("all"));
	json_object_set_new(o, "events", names);
	if ((rv = pop3ctl_open(x)) != POP3CTL_OK) {
		json_decref(o);
		return rv;
	}
	if ((reg = pop3ctl_send_cmd(&x->conn, "register", o)) == -1)
		return POP3CTL_UNREACHABLE;
	for (;;) {
		if ((rv = pop3ctl_read_msg(&x->conn, &m, &raw)) != 1) {
			if (rv == 0 && registered)
				return POP3CTL_OK;	/* pop3d went away */
			if (rv == 0)
				pop3ctl_warn("pop3d closed the connection before answering");
			return rv == 0 ? POP3CTL_UNREACHABLE : POP3CTL_ERR;
		}
		if (strcmp(pop3ctl_type(m), "reply") == 0) {
			if (json_integer_value(json_object_get(m, "id")) == reg) {
				if (!json_is_true(json_object_get(m, "ok"))) {
					rv = pop3ctl_reply_error(m);
					json_decref(m);
					return rv;
				}
				registered = 1;
			} else if (!json_is_true(json_object_get(m, "ok")))
				(void)pop3ctl_reply_error(m);	/* a send for --exec */
		} else if (strcmp(pop3ctl_type(m), "event") == 0) {
			if ((masked = pop3ctl_mask_event(x, m, &err)) == NULL && err) {
				/* Never shown unmasked, not even for want of memory. */
				pop3ctl_warn("out of memory: event %s not handled",
				    json_string_value(json_object_get(m, "event")));
				json_decref(m);
				continue;
			}
			ev = masked != NULL ? masked : m;
			if (x->exec != NULL)
				pop3ctl_exec_event(x, ev);
			else {
				if (text)
					pop3ctl_print_text(ev);
				else if (masked == NULL)
					puts(raw);
				else if ((dump = json_dumps(masked, JSON_COMPACT)) != NULL) {
					puts(dump);
					free(dump);
				} else
					pop3ctl_warn("out of memory: event %s not printed",
					    json_string_value(json_object_get(m, "event")));
				if (fflush(stdout) == EOF || ferror(stdout)) {
					pop3ctl_warn("write to stdout: %s", strerror(errno));
					json_decref(masked);
					json_decref(m);
					return POP3CTL_ERR;
				}
			}
			json_decref(masked);
		}
		json_decref(m);
	}
}

/* Whether a raw input line is blank to pop3d (only spaces, tabs, CR). */
static int
pop3ctl_blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* raw: JSON lines from stdin sent verbatim, each reply printed as a line. */
static int
pop3ctl_cmd_raw(struct pop3ctl_ctx *x)
{
	char *line = NULL, *raw;
	size_t cap = 0;
	ssize_t n;
	json_t *m;
	int rv, status = POP3CTL_OK;

	if ((rv = pop3ctl_open(x)) != POP3CTL_OK)
		return rv;
	for (;;) {
		errno = 0;
		if ((n = getline(&line, &cap, stdin)) == -1) {
			if (errno != 0 && errno != EINTR) {
				pop3ctl_warn("read from stdin: %s", strerror(errno));
				status = POP3CTL_ERR;
			}
			break;
		}
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (pop3ctl_blank(line, (size_t)n))
			continue;	/* pop3d would not answer it */
		if (pop3ctl_write_all(x->conn.fd, line, (size_t)n) == -1 ||
		    pop3ctl_write_all(x->conn.fd, "\n", 1) == -1) {
			status = POP3CTL_UNREACHABLE;
			break;
		}
		for (;;) {
			if ((rv = pop3ctl_read_msg(&x->conn, &m, &raw)) != 1) {
				if (rv == 0)
					pop3ctl_warn("pop3d closed the connection before "
					    "answering");
				status = rv == 0 ? POP3CTL_UNREACHABLE : POP3CTL_ERR;
				goto out;
			}
			if (strcmp(pop3ctl_type(m), "reply") == 0)
				break;
			json_decref(m);
		}
		puts(raw);
		if (fflush(stdout) == EOF)
			pop3ctl_warn("write to stdout: %s", strerror(errno));
		if (!json_is_true(json_object_get(m, "ok")))
			status = POP3CTL_ERR;
		json_decref(m);
	}
out:
	free(line);
	return status;
}

static const struct pop3ctl_sub pop3ctl_subs[] = {
	{ "send", 2, 2, POP3CTL_OPT_TAG, pop3ctl_cmd_send, "send [--tag N] CLIENT TEXT" },
	{ "send-lines", 1, 1, POP3CTL_OPT_TAG, pop3ctl_cmd_send_lines,
	    "send-lines [--tag N] CLIENT < LINES" },
	{ "send-file", 3, 3, POP3CTL_OPT_TAG | POP3CTL_OPT_TOP, pop3ctl_cmd_send_file,
	    "send-file [--tag N] [--top N] CLIENT PATH STATUS" },
	{ "disconnect", 1, 2, 0, pop3ctl_cmd_disconnect, "disconnect CLIENT [TEXT]" },
	{ "shutdown", 0, 0, 0, pop3ctl_cmd_shutdown, "shutdown" },
	{ "clients", 0, 0, 0, pop3ctl_cmd_clients, "clients" },
	{ "event", 1, -1, 0, pop3ctl_cmd_event, "event NAME [ARG ...]" },
	{ "sockname", 0, 0, 0, pop3ctl_cmd_sockname, "sockname" },
	{ "session-id", 0, 0, 0, pop3ctl_cmd_session_id, "session-id" },
	{ "ping", 0, 0, 0, pop3ctl_cmd_ping, "ping" },
	{ "plugins", 0, 0, 0, pop3ctl_cmd_plugins, "plugins" },
	{ "listen", 0, -1, POP3CTL_OPT_FORMAT | POP3CTL_OPT_EXEC | POP3CTL_OPT_SECRETS |
	    POP3CTL_OPT_RAWARGS, pop3ctl_cmd_listen,
	    "listen [--format json|text] [--exec CMD [--raw-args]] [--show-secrets] [EVENT ...]" },
	{ "raw", 0, 0, 0, pop3ctl_cmd_raw, "raw < JSON-LINES" },
	{ NULL, 0, 0, 0, NULL, NULL }
};

/* Print the synopsis of every subcommand on f. */
static void
pop3ctl_synopsis(FILE *f)
{
	const struct pop3ctl_sub *s;

	fputs("usage: pop3ctl [-j] [-s SOCKET] COMMAND [ARG ...]\n", f);
	for (s = pop3ctl_subs; s->name != NULL; s++)
		fprintf(f, "       pop3ctl [-j] [-s SOCKET] %s\n", s->synopsis);
}

/* Print the full help on stdout. */
static void
pop3ctl_help(void)
{
	pop3ctl_synopsis(stdout);
	printf("\n"
"  -s, --socket SOCKET  control socket (default: $POP3D_CONTROL, else\n"
"                       %s)\n"
"  -j, --json           print the raw result object of the command\n"
"  -h, --help           this help\n"
"  -V, --version        the version\n"
"Exit status: 0 ok, 1 pop3d answered with an error, 2 usage, 3 socket\n"
"unreachable.  See pop3ctl(1).\n", POP3CTL_DEFAULT_SOCKET);
}

/* Parse the subcommand's options (anywhere before "--") and positional
 * arguments into x; POP3CTL_OK or POP3CTL_USAGE. */
static int
pop3ctl_parse_sub(struct pop3ctl_ctx *x, const struct pop3ctl_sub *sub, int argc, char **argv)
{
	static const struct {
		const char *name;
		unsigned flag;	/* 0: --json, allowed everywhere */
		int value;	/* takes a value */
	} opts[] = {
		{ "json", 0, 0 }, { "tag", POP3CTL_OPT_TAG, 1 }, { "top", POP3CTL_OPT_TOP, 1 },
		{ "format", POP3CTL_OPT_FORMAT, 1 }, { "exec", POP3CTL_OPT_EXEC, 1 },
		{ "show-secrets", POP3CTL_OPT_SECRETS, 0 },
		{ "raw-args", POP3CTL_OPT_RAWARGS, 0 }, { NULL, 0, 0 }
	};
	int i, k, dashdash = 0;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val, *eq;
		size_t nlen;

		if (dashdash || a[0] != '-' || a[1] != '-') {
			x->args[x->nargs++] = argv[i];
			continue;
		}
		if (a[2] == '\0') {
			dashdash = 1;
			continue;
		}
		eq = strchr(a + 2, '=');
		nlen = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);
		for (k = 0; opts[k].name != NULL; k++)
			if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, a + 2, nlen) == 0)
				break;
		if (opts[k].name == NULL || (opts[k].flag != 0 && !(sub->opts & opts[k].flag)))
			return pop3ctl_usage_error("%s: unknown option %.*s (use -- before an "
			    "argument that starts with --)", sub->name, (int)nlen + 2, a);
		if (!opts[k].value) {
			if (eq != NULL)
				return pop3ctl_usage_error("--%s takes no value", opts[k].name);
			if (opts[k].flag == 0)
				x->json = 1;
			else if (opts[k].flag == POP3CTL_OPT_SECRETS)
				x->show_secrets = 1;
			else
				x->raw_args = 1;
			continue;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return pop3ctl_usage_error("%s needs a value", a);
		if (opts[k].flag == POP3CTL_OPT_TAG &&
		    pop3ctl_number(val, 1, 0x7fffffffffffffffLL, &x->tag) == -1)
			return pop3ctl_usage_error("--tag must be a positive integer");
		if (opts[k].flag == POP3CTL_OPT_TOP &&
		    pop3ctl_number(val, 0, 1000000000, &x->top) == -1)
			return pop3ctl_usage_error("--top must be an integer from 0 to 1000000000");
		if (opts[k].flag == POP3CTL_OPT_FORMAT)
			x->format = val;
		if (opts[k].flag == POP3CTL_OPT_EXEC)
			x->exec = val;
	}
	if (x->nargs < sub->min || (sub->max >= 0 && x->nargs > sub->max))
		return pop3ctl_usage_error("wrong number of arguments; usage: pop3ctl %s",
		    sub->synopsis);
	return POP3CTL_OK;
}

/* Parse the global options, then run the subcommand; returns the exit status. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const struct pop3ctl_sub *sub;
	struct pop3ctl_ctx x;
	int ch, rv;

	memset(&x, 0, sizeof(x));
	x.conn.fd = -1;
	x.top = -1;
	x.socket = getenv("POP3D_CONTROL");
	if (x.socket == NULL || x.socket[0] == '\0')
		x.socket = POP3CTL_DEFAULT_SOCKET;
	while ((ch = getopt_long(argc, argv, "+s:jhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			x.socket = optarg;
			break;
		case 'j':
			x.json = 1;
			break;
		case 'h':
			pop3ctl_help();
			return POP3CTL_OK;
		case 'V':
			printf("pop3ctl %s\n", PACKAGE_VERSION);
			return POP3CTL_OK;
		default:
			pop3ctl_synopsis(stderr);
			return POP3CTL_USAGE;
		}
	}
	if (optind >= argc)
		return pop3ctl_usage_error("no command given");
	if (strcmp(argv[optind], "help") == 0) {
		pop3ctl_help();
		return POP3CTL_OK;
	}
	for (sub = pop3ctl_subs; sub->name != NULL; sub++)
		if (strcmp(sub->name, argv[optind]) == 0)
			break;
	if (sub->name == NULL)
		return pop3ctl_usage_error("unknown command \"%s\"", argv[optind]);
	if (x.socket[0] == '\0')
		return pop3ctl_usage_error("empty socket path");
	if ((x.args = calloc((size_t)argc, sizeof(*x.args))) == NULL) {
		pop3ctl_warn("out of memory");
		return POP3CTL_ERR;
	}
	rv = pop3ctl_parse_sub(&x, sub, argc - optind - 1, argv + optind + 1);
	if (rv == POP3CTL_OK)
		rv = sub->run(&x);
	pop3ctl_close(&x.conn);
	free(x.args);
	if (fflush(stdout) == EOF && rv == POP3CTL_OK) {
		pop3ctl_warn("write to stdout: %s", strerror(errno));
		rv = POP3CTL_ERR;
	}
	return rv;
}
