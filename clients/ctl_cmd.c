/* ctl_cmd.c - pop3ctl subcommands: one request each, and the listen and raw streams. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "pop3ctl.h"

/* Run a command whose result is printed by show (NULL: nothing on success). */
int
ctlcmd_simple(struct pop3ctl_ctx *x, const char *name, json_t *args, void (*show)(json_t *))
{
	json_t *r, *res;
	int status;

	if ((r = ctlconn_call(&x->conn, x->socket, name, args, &status)) == NULL)
		return status;
	res = json_object_get(r, "result");
	if (!json_is_true(json_object_get(r, "ok")))
		status = ctlconn_reply_error(r);
	else if (x->json)
		ctlprint_json(res != NULL ? res : json_null());
	else if (show != NULL)
		show(res);
	json_decref(r);
	return status;
}

/* Parse the CLIENT argument; 0, or -1 with a usage message. */
static int
ctlcmd_client_arg(const char *s, long long *client)
{
	if (ctlutil_number(s, 1, 0x7fffffffffffffffLL, client) == -1) {
		ctlutil_usage_error("CLIENT must be a positive integer, not \"%s\"", s);
		return -1;
	}
	return 0;
}

/* {"client":N} plus "tag" when --tag was given; NULL when out of memory. */
static json_t *
ctlcmd_client_obj(struct pop3ctl_ctx *x, long long client)
{
	json_t *o = json_object();

	if (o == NULL || json_object_set_new(o, "client", json_integer(client)) == -1 ||
	    (x->tag > 0 && json_object_set_new(o, "tag", json_integer(x->tag)) == -1)) {
		json_decref(o);
		ctlutil_warn("out of memory");
		return NULL;
	}
	return o;
}

/* send CLIENT TEXT: one line, completing the command. */
int
ctlcmd_send(struct pop3ctl_ctx *x)
{
	long long client;
	json_t *o;

	if (ctlcmd_client_arg(x->args[0], &client) == -1)
		return POP3CTL_USAGE;
	if ((o = ctlcmd_client_obj(x, client)) == NULL)
		return POP3CTL_ERR;
	if (ctlutil_set_bytes(o, "text", "text_b64", x->args[1], strlen(x->args[1])) == -1) {
		json_decref(o);
		return POP3CTL_ERR;
	}
	return ctlcmd_simple(x, "send_to_client", o, NULL);
}

/* Read all of stdin, at most max octets; the malloc'd bytes, or NULL. */
static char *
ctlcmd_read_stdin(size_t max, size_t *len)
{
	size_t cap = 0;
	char *buf = NULL, *nb;
	ssize_t n;

	*len = 0;
	for (;;) {
		if (*len == cap) {
			cap = cap == 0 ? POP3CTL_READ_CHUNK : cap * 2;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				ctlutil_warn("out of memory");
				free(buf);
				return NULL;
			}
			buf = nb;
		}
		n = read(STDIN_FILENO, buf + *len, cap - *len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			ctlutil_warn("read from stdin: %s", strerror(errno));
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
		if (*len > max) {
			ctlutil_warn("more than %zu octets on stdin", max);
			free(buf);
			return NULL;
		}
	}
	buf[*len] = '\0';
	return buf;
}

/* send-lines CLIENT: stdin as one multi-line response (first line: status). */
int
ctlcmd_send_lines(struct pop3ctl_ctx *x)
{
	long long client;
	char **lines, *text;
	size_t *lens, n, len;
	json_t *o;
	int rv;

	if (ctlcmd_client_arg(x->args[0], &client) == -1)
		return POP3CTL_USAGE;
	if ((text = ctlcmd_read_stdin(POP3CTL_MAX_INPUT, &len)) == NULL)
		return POP3CTL_ERR;
	rv = ctlutil_split_lines(text, len, &lines, &lens, &n);
	free(text);
	if (rv == -1)
		return POP3CTL_ERR;
	if (n == 0) {
		ctlutil_free_lines(lines, lens, n);
		return ctlutil_usage_error("send-lines: no status line on stdin");
	}
	if ((o = ctlcmd_client_obj(x, client)) == NULL ||
	    ctlutil_set_lines(o, lines, lens, n) == -1) {
		ctlutil_free_lines(lines, lens, n);
		json_decref(o);
		ctlutil_warn("out of memory");
		return POP3CTL_ERR;
	}
	ctlutil_free_lines(lines, lens, n);
	return ctlcmd_simple(x, "send_to_client", o, NULL);
}

/* path made absolute against the current directory; malloc'd or NULL. */
static char *
ctlcmd_abspath(const char *path)
{
	char *cwd, *out;
	size_t n;

	if (path[0] == '/')
		return strdup(path);
	if ((cwd = getcwd(NULL, 0)) == NULL) {
		ctlutil_warn("getcwd: %s", strerror(errno));
		return NULL;
	}
	n = strlen(cwd) + strlen(path) + 2;
	if ((out = ctlutil_alloc(n)) != NULL)
		snprintf(out, n, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path);
	free(cwd);
	return out;
}

/* send-file CLIENT PATH STATUS: stream a file as a multi-line response. */
int
ctlcmd_send_file(struct pop3ctl_ctx *x)
{
	long long client;
	char *path;
	json_t *o;
	int rv;

	if (ctlcmd_client_arg(x->args[0], &client) == -1)
		return POP3CTL_USAGE;
	if ((o = ctlcmd_client_obj(x, client)) == NULL)
		return POP3CTL_ERR;
	if ((path = ctlcmd_abspath(x->args[1])) == NULL) {
		json_decref(o);
		return POP3CTL_ERR;
	}
	rv = ctlutil_set_utf8(o, "path", path, "PATH");
	free(path);
	if (rv == -1 || ctlutil_set_utf8(o, "status", x->args[2], "STATUS") == -1 ||
	    (x->top >= 0 && json_object_set_new(o, "top_lines", json_integer(x->top)) == -1)) {
		json_decref(o);
		return POP3CTL_USAGE;
	}
	return ctlcmd_simple(x, "send_file", o, NULL);
}

/* disconnect CLIENT [TEXT]: close a client, TEXT sent last. */
int
ctlcmd_disconnect(struct pop3ctl_ctx *x)
{
	long long client;
	json_t *o;

	if (ctlcmd_client_arg(x->args[0], &client) == -1)
		return POP3CTL_USAGE;
	if ((o = ctlcmd_client_obj(x, client)) == NULL)
		return POP3CTL_ERR;
	if (x->nargs > 1 && ctlutil_set_utf8(o, "text", x->args[1], "TEXT") == -1) {
		json_decref(o);
		return POP3CTL_USAGE;
	}
	return ctlcmd_simple(x, "disconnect", o, NULL);
}

/* Convert one event argument word: canonical integers become integers. */
static json_t *
ctlcmd_event_arg(const char *s)
{
	long long v;

	if (ctlutil_canonical_int(s, &v))
		return json_integer(v);
	return json_string(s);
}

/* event NAME [ARG...]: inject an event (send_event). */
int
ctlcmd_event(struct pop3ctl_ctx *x)
{
	json_t *o = json_object(), *a = json_array(), *j;
	int i;

	if (o == NULL || a == NULL || json_object_set_new(o, "args", a) == -1) {
		json_decref(o);
		ctlutil_warn("out of memory");
		return POP3CTL_ERR;
	}
	if (ctlutil_set_utf8(o, "event", x->args[0], "NAME") == -1) {
		json_decref(o);
		return POP3CTL_USAGE;
	}
	for (i = 1; i < x->nargs; i++) {
		if ((j = ctlcmd_event_arg(x->args[i])) == NULL) {
			ctlutil_warn("ARG %d is not valid UTF-8", i);
			json_decref(o);
			return POP3CTL_USAGE;
		}
		json_array_append_new(a, j);
	}
	return ctlcmd_simple(x, "send_event", o, NULL);
}

/* plugins: the in-process plugins in pipeline order (plugin_order). */
int
ctlcmd_plugins(struct pop3ctl_ctx *x)
{
	json_t *r, *res;
	const char *code;
	int status;

	if ((r = ctlconn_call(&x->conn, x->socket, "plugin_order", NULL, &status)) == NULL)
		return status;
	res = json_object_get(r, "result");
	code = json_string_value(json_object_get(json_object_get(r, "error"), "code"));
	if (!json_is_true(json_object_get(r, "ok"))) {
		if (code != NULL && strcmp(code, "unknown_command") == 0) {
			ctlutil_warn("unknown_command: this pop3d cannot list plugins (it has "
				     "no plugin_order command)");
			status = POP3CTL_ERR;
		} else
			status = ctlconn_reply_error(r);
	} else if (x->json)
		ctlprint_json(res != NULL ? res : json_null());
	else
		ctlprint_plugins(res);
	json_decref(r);
	return status;
}

/* listen [EVENT...]: register and print (or --exec) each event until EOF. */
int
ctlcmd_listen(struct pop3ctl_ctx *x)
{
	json_t *names = json_array(), *o, *m, *masked, *ev;
	json_int_t reg;
	int i, rv, registered = 0, text, err;
	char *raw;

	if (x->format != NULL && strcmp(x->format, "json") != 0 && strcmp(x->format, "text") != 0) {
		json_decref(names);
		return ctlutil_usage_error("--format must be json or text");
	}
	if (x->raw_args && x->exec == NULL) {
		json_decref(names);
		return ctlutil_usage_error("--raw-args goes with --exec");
	}
	text = x->format != NULL && strcmp(x->format, "text") == 0;
	if (names == NULL || (o = json_object()) == NULL) {
		json_decref(names);
		ctlutil_warn("out of memory");
		return POP3CTL_ERR;
	}
	for (i = 0; i < x->nargs; i++)
		if (json_array_append_new(names, json_string(x->args[i])) == -1) {
			json_decref(names);
			json_decref(o);
			ctlutil_warn("EVENT %s is not valid UTF-8", x->args[i]);
			return POP3CTL_USAGE;
		}
	if (x->nargs == 0)
		json_array_append_new(names, json_string("all"));
	json_object_set_new(o, "events", names);
	if ((rv = ctlconn_open(&x->conn, x->socket)) != POP3CTL_OK) {
		json_decref(o);
		return rv;
	}
	if ((reg = ctlconn_send_cmd(&x->conn, "register", o)) == -1)
		return POP3CTL_UNREACHABLE;
	for (;;) {
		if ((rv = ctlconn_read_msg(&x->conn, &m, &raw)) != 1) {
			if (rv == 0 && registered)
				return POP3CTL_OK; /* pop3d went away */
			if (rv == 0)
				ctlutil_warn("pop3d closed the connection before answering");
			return rv == 0 ? POP3CTL_UNREACHABLE : POP3CTL_ERR;
		}
		if (strcmp(ctlconn_type(m), "reply") == 0) {
			if (json_integer_value(json_object_get(m, "id")) == reg) {
				if (!json_is_true(json_object_get(m, "ok"))) {
					rv = ctlconn_reply_error(m);
					json_decref(m);
					return rv;
				}
				registered = 1;
			} else if (!json_is_true(json_object_get(m, "ok")))
				(void)ctlconn_reply_error(m); /* a send for --exec */
		} else if (strcmp(ctlconn_type(m), "event") == 0) {
			if ((masked = ctlprint_mask_event(x, m, &err)) == NULL && err) {
				/* Never shown unmasked, not even for want of memory. */
				ctlutil_warn("out of memory: event %s not handled",
				    json_string_value(json_object_get(m, "event")));
				json_decref(m);
				continue;
			}
			ev = masked != NULL ? masked : m;
			if (x->exec != NULL)
				ctlexec_event(x, ev);
			else if (ctlprint_event(ev, masked, raw, text) == -1) {
				json_decref(masked);
				json_decref(m);
				return POP3CTL_ERR;
			}
			json_decref(masked);
		}
		json_decref(m);
	}
}

/* Whether a raw input line is blank to pop3d (only spaces, tabs, CR). */
static int
ctlcmd_blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* raw: JSON lines from stdin sent verbatim, each reply printed as a line. */
int
ctlcmd_raw(struct pop3ctl_ctx *x)
{
	char *line = NULL, *raw;
	size_t cap = 0;
	ssize_t n;
	json_t *m;
	int rv, status = POP3CTL_OK;

	if ((rv = ctlconn_open(&x->conn, x->socket)) != POP3CTL_OK)
		return rv;
	for (;;) {
		errno = 0;
		if ((n = getline(&line, &cap, stdin)) == -1) {
			if (errno != 0 && errno != EINTR) {
				ctlutil_warn("read from stdin: %s", strerror(errno));
				status = POP3CTL_ERR;
			}
			break;
		}
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (ctlcmd_blank(line, (size_t)n))
			continue; /* pop3d would not answer it */
		if (ctlconn_write_all(x->conn.fd, line, (size_t)n) == -1 ||
		    ctlconn_write_all(x->conn.fd, "\n", 1) == -1) {
			status = POP3CTL_UNREACHABLE;
			break;
		}
		for (;;) {
			if ((rv = ctlconn_read_msg(&x->conn, &m, &raw)) != 1) {
				if (rv == 0)
					ctlutil_warn("pop3d closed the connection before "
						     "answering");
				status = rv == 0 ? POP3CTL_UNREACHABLE : POP3CTL_ERR;
				goto out;
			}
			if (strcmp(ctlconn_type(m), "reply") == 0)
				break;
			json_decref(m);
		}
		puts(raw);
		if (fflush(stdout) == EOF)
			ctlutil_warn("write to stdout: %s", strerror(errno));
		if (!json_is_true(json_object_get(m, "ok")))
			status = POP3CTL_ERR;
		json_decref(m);
	}
out:
	free(line);
	return status;
}
