/* ctl_print.c - pop3ctl printing: results, events as text or JSON, masked and escaped. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base64.h"
#include "mask.h"
#include "pop3ctl.h"

/* Print a JSON value as one compact line on stdout. */
void
ctlprint_json(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s == NULL) {
		ctlutil_warn("cannot encode the result");
		return;
	}
	puts(s);
	free(s);
}

/* "address:port", with brackets around an IPv6 address. */
static void
ctlprint_hostport(char *out, size_t len, const char *addr, json_int_t port)
{
	snprintf(out, len,
	    strchr(addr, ':') != NULL ? "[%s]:%" JSON_INTEGER_FORMAT : "%s:%" JSON_INTEGER_FORMAT,
	    addr, port);
}

/* A client's groups as "GROUP=CONTROLLER,..." in out ("-" when none);
 * whether it is bound in any group. */
static int
ctlprint_client_groups(json_t *groups, char *out, size_t len)
{
	const char *key;
	size_t used = 0;
	json_t *v;
	int any = 0;

	snprintf(out, len, "-");
	json_object_foreach(groups, key, v)
	{
		int n = snprintf(out + used, len - used, "%s%s=%" JSON_INTEGER_FORMAT,
		    any ? "," : "", key, json_integer_value(v));

		any = 1;
		if (n < 0 || (size_t)n >= len - used)
			break; /* cut, never overflowed */
		used += (size_t)n;
	}
	return any;
}

/* Print the list_clients result as a table; a GROUPS column (member per
 * group) is added when some client is bound in a controller group. */
void
ctlprint_clients(json_t *res)
{
	static const char *const head[7] = { "ID", "PEER", "LOCAL", "STATE", "TLS", "IDLE",
		"GROUPS" };
	json_t *rows = json_object_get(res, "clients"), *r;
	size_t n = json_array_size(rows), i, k, w[7], ncol = 6;
	/* 96: an IPv6 address in brackets with its port (at most 53) fits with
	 * room; a longer cell is cut, never overflowed. */
	char(*cells)[7][96];

	if ((cells = calloc(n + 1, sizeof(*cells))) == NULL) {
		ctlutil_warn("out of memory");
		return;
	}
	for (k = 0; k < 7; k++)
		snprintf(cells[0][k], sizeof(cells[0][k]), "%s", head[k]);
	json_array_foreach(rows, i, r)
	{
		const char *peer = json_string_value(json_object_get(r, "peer"));
		const char *local = json_string_value(json_object_get(r, "local"));
		const char *state = json_string_value(json_object_get(r, "state"));

		snprintf(cells[i + 1][0], sizeof(cells[0][0]), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(json_object_get(r, "client")));
		ctlprint_hostport(cells[i + 1][1], sizeof(cells[0][1]), peer ? peer : "?",
		    json_integer_value(json_object_get(r, "peer_port")));
		ctlprint_hostport(cells[i + 1][2], sizeof(cells[0][2]), local ? local : "?",
		    json_integer_value(json_object_get(r, "local_port")));
		snprintf(cells[i + 1][3], sizeof(cells[0][3]), "%s", state ? state : "?");
		snprintf(cells[i + 1][4], sizeof(cells[0][4]), "%s",
		    json_is_true(json_object_get(r, "tls")) ? "yes" : "no");
		snprintf(cells[i + 1][5], sizeof(cells[0][5]), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(json_object_get(r, "idle")));
		if (ctlprint_client_groups(json_object_get(r, "groups"), cells[i + 1][6],
			sizeof(cells[0][6])))
			ncol = 7;
	}
	for (k = 0; k < ncol; k++)
		for (i = 0, w[k] = 0; i <= n; i++)
			if (strlen(cells[i][k]) > w[k])
				w[k] = strlen(cells[i][k]);
	for (i = 0; i <= n; i++) {
		for (k = 0; k + 1 < ncol; k++)
			printf("%-*s  ", (int)w[k], cells[i][k]);
		printf("%s\n", cells[i][ncol - 1]);
	}
	free(cells);
}

/* Print the list_groups result: per group a line "GROUP plugins: A B", then
 * one line per member "  CONTROLLER NAME CLIENTS". */
void
ctlprint_groups(json_t *res)
{
	json_t *g, *m, *p;
	size_t i, k;

	json_array_foreach(json_object_get(res, "groups"), i, g)
	{
		const char *name = json_string_value(json_object_get(g, "name"));

		printf("%s plugins:", name != NULL ? name : "?");
		json_array_foreach(json_object_get(g, "plugins"), k, p)
		    printf(" %s", json_string_value(p) != NULL ? json_string_value(p) : "?");
		putchar('\n');
		json_array_foreach(json_object_get(g, "members"), k, m)
		{
			const char *mn = json_string_value(json_object_get(m, "name"));

			printf("  %" JSON_INTEGER_FORMAT " %s clients=%" JSON_INTEGER_FORMAT "\n",
			    json_integer_value(json_object_get(m, "controller")),
			    mn != NULL ? mn : "?",
			    json_integer_value(json_object_get(m, "clients")));
		}
	}
}

/* Print the getsockname result: "ADDRESS PORT" per listener, then the name
 * of each flag that is true ("tls", "proxy"). */
void
ctlprint_sockname(json_t *res)
{
	const char *key;
	json_t *l, *v;
	size_t i;

	json_array_foreach(json_object_get(res, "listeners"), i, l)
	{
		const char *addr = json_string_value(json_object_get(l, "address"));

		printf("%s %" JSON_INTEGER_FORMAT, addr != NULL ? addr : "?",
		    json_integer_value(json_object_get(l, "port")));
		json_object_foreach(l, key, v) if (json_is_true(v)) printf(" %s", key);
		putchar('\n');
	}
}

/* Print the session_id result. */
void
ctlprint_session(json_t *res)
{
	const char *s = json_string_value(json_object_get(res, "session_id"));

	puts(s != NULL ? s : "");
}

/* Print the ping result. */
void
ctlprint_ping(json_t *res)
{
	printf("pong seq=%" JSON_INTEGER_FORMAT "\n",
	    json_integer_value(json_object_get(res, "seq")));
}

/* Print one plugin entry: a string, or an object's alias and priority. */
static void
ctlprint_plugin(json_t *p)
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
		ctlprint_json(p);
}

/* Print the plugin_order result: one plugin per line, pipeline order. */
void
ctlprint_plugins(json_t *res)
{
	json_t *list = json_object_get(res, "plugins"), *v, *p;
	const char *key;
	size_t i;

	if (!json_is_array(list))
		json_object_foreach(res, key, v) if (json_is_array(v) && list == NULL) list = v;
	if (!json_is_array(list)) {
		ctlprint_json(res);
		return;
	}
	json_array_foreach(list, i, p) ctlprint_plugin(p);
}

/* Write len bytes to stdout as mask_escape's MASK_TEXT: \\ \t \n \r \0,
 * \xNN for other control octets, so a client cannot reach the terminal. */
static void
ctlprint_put_escaped(const char *s, size_t len)
{
	/* In chunks: a unit is at most 8 octets, so each one uses some of s. */
	char buf[1024];
	size_t off, used;

	for (off = 0; off < len; off += used) {
		used = mask_escape(buf, sizeof(buf), s + off, len - off, MASK_TEXT);
		fputs(buf, stdout);
	}
}

/* s escaped as by ctlprint_put_escaped, malloc'd (NUL-ended, *len without
 * it); s is freed.  NULL when out of memory. */
char *
ctlprint_escaped(char *s, size_t *len)
{
	/* At most 4 octets for each one of s (\xNN). */
	size_t size = 4 * *len + 1;
	char *e;

	if ((e = ctlutil_alloc(size)) != NULL) {
		mask_escape(e, size, s, *len, MASK_TEXT);
		*len = strlen(e);
	}
	free(s);
	return e;
}

/* The exact bytes of event argument i: args_b64[i] decoded when present,
 * else the string.  *out is malloc'd when the bytes came from base64. */
static const char *
ctlprint_arg_bytes(json_t *ev, size_t i, size_t *len, char **out)
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
char *
ctlprint_arg_text(json_t *ev, size_t i, size_t *len)
{
	json_t *a = json_array_get(json_object_get(ev, "args"), i);
	const char *s;
	char *copy, *tmp;
	size_t n;

	if (json_is_string(a)) {
		s = ctlprint_arg_bytes(ev, i, &n, &tmp);
		if ((copy = ctlutil_alloc(n + 1)) != NULL) {
			memcpy(copy, s, n);
			copy[n] = '\0';
			*len = n;
		}
		free(tmp);
		return copy;
	}
	if (json_is_integer(a)) {
		/* 32: a 64-bit integer is at most 20 digits and a sign. */
		if ((copy = ctlutil_alloc(32)) != NULL)
			*len = (size_t)snprintf(copy, 32, "%" JSON_INTEGER_FORMAT,
			    json_integer_value(a));
		return copy;
	}
	if ((copy = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL)
		*len = strlen(copy);
	else
		ctlutil_warn("out of memory");
	return copy;
}

/* A copy of ev whose secret arguments (mask.h) are masked, or NULL when
 * nothing is hidden (or --show-secrets).  A masked value whose visible
 * part is not UTF-8 is hidden whole; its args_b64 entry is null.  Sets
 * *err when out of memory. */
json_t *
ctlprint_mask_event(const struct pop3ctl_ctx *x, json_t *ev, int *err)
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
			if ((s = ctlprint_arg_bytes(ev, i, &len, &tmp)) == NULL)
				s = "";
			if (mask_visible(rule, s, len) == len) {
				free(tmp);
				continue;
			}
			size = len + sizeof(" " MASK_HIDDEN);
			if ((buf = ctlutil_alloc(size)) != NULL) {
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
ctlprint_text(json_t *ev)
{
	json_t *name = json_object_get(ev, "event"), *client = json_object_get(ev, "client");
	size_t i, n = json_array_size(json_object_get(ev, "args")), len;
	char *t;

	ctlprint_put_escaped(json_string_value(name) ? json_string_value(name) : "",
	    json_string_length(name));
	if (json_is_integer(client))
		printf("\t%" JSON_INTEGER_FORMAT, json_integer_value(client));
	else
		fputs("\t-", stdout);
	for (i = 0; i < n; i++) {
		putchar('\t');
		if ((t = ctlprint_arg_text(ev, i, &len)) != NULL)
			ctlprint_put_escaped(t, len);
		free(t);
	}
	putchar('\n');
}

/* Print one event for listen: as text, as pop3d sent it (raw) when nothing
 * was masked, else the masked copy as compact JSON; then flush, so that a
 * reader sees each event as it comes.  0, or -1 when stdout fails. */
int
ctlprint_event(json_t *ev, json_t *masked, const char *raw, int text)
{
	char *dump;

	if (text)
		ctlprint_text(ev);
	else if (masked == NULL)
		puts(raw);
	else if ((dump = json_dumps(masked, JSON_COMPACT)) != NULL) {
		puts(dump);
		free(dump);
	} else
		ctlutil_warn("out of memory: event %s not printed",
		    json_string_value(json_object_get(ev, "event")));
	if (fflush(stdout) == EOF || ferror(stdout)) {
		ctlutil_warn("write to stdout: %s", strerror(errno));
		return -1;
	}
	return 0;
}
