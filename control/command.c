/*
 * command.c - the control commands, as a table of {name, keys, handler}
 * rows.  Every command gets exactly one reply, in order.  A key that a
 * command does not know is invalid_argument, and the command has no effect.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>

#include "../src/log.h"
#include "base64.h"
#include "line.h"
#include "controller.h"
#include "pop3d.h"

/* Most strings one command may carry in events/lines arrays. */
#define COMMAND_MAX_ITEMS 100000

typedef void (*command_fn)(struct controller *, json_t *id, json_t *root);

struct command_def {
	const char *name;
	const char *keys[8];	/* allowed besides "cmd" and "id" */
	int while_stopping;	/* still allowed during shutdown */
	command_fn run;
};

/* Map a negated pop3d error to a protocol error code. */
static const char *
command_code(int err)
{
	switch (-err) {
	case POP3D_ERR_UNKNOWN_CLIENT:
		return "unknown_client";
	case POP3D_ERR_STALE:
		return "stale";
	case POP3D_ERR_INVALID:
	case POP3D_ERR_IO:
		return "invalid_argument";
	case POP3D_ERR_SHUTTING_DOWN:
		return "shutting_down";
	case POP3D_ERR_UNKNOWN_EVENT:
		return "unknown_event";
	case POP3D_ERR_LIMIT:
		return "limit_exceeded";
	default:
		return "internal_error";
	}
}

static void
command_result(struct controller *c, json_t *id, int rv, json_t *result)
{
	if (rv == 0)
		peer_reply_ok(c, id, result);
	else {
		json_decref(result);
		peer_reply_error(c, id, command_code(rv), "%s", pop3d_strerror(rv));
	}
}

/* A positive integer key; 0 when absent (if optional), -1 when invalid. */
static long long
command_uint(json_t *root, const char *key, int required)
{
	json_t *v = json_object_get(root, key);

	if (v == NULL)
		return required ? -1 : 0;
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return -1;
	return json_integer_value(v);
}

/* An array of strings -> a malloc'd vector of borrowed pointers. */
static const char **
command_strings(json_t *arr, size_t *n)
{
	const char **v;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) > COMMAND_MAX_ITEMS)
		return NULL;
	*n = json_array_size(arr);
	if ((v = calloc(*n + 1, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < *n; i++) {
		json_t *s = json_array_get(arr, i);

		if (!json_is_string(s)) {
			free(v);
			return NULL;
		}
		v[i] = json_string_value(s);
	}
	return v;
}

static json_t *
command_patterns(struct controller *c)
{
	const char **p;
	size_t n, i;
	json_t *a = json_array();

	n = pop3d_consumer_patterns(c->ctl->srv, c->consumer, &p);
	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(strcmp(p[i], "*") == 0 ? "all" : p[i]));
	return a;
}

/* The seed's pop3d_registered: ARG0 describes the server. */
static void
command_registered(struct controller *c)
{
	struct pop3d_arg a;
	char *s = codec_registered(c->ctl->srv);

	memset(&a, 0, sizeof(a));
	a.type = POP3D_ARG_JSON;
	a.s = s;
	a.len = s != NULL ? strlen(s) : 0;
	peer_write_event(c, "pop3d_registered", &a, 1);
	free(s);
}

static void
command_register(struct controller *c, json_t *id, json_t *root)
{
	const char **names;
	size_t n, bad = 0;
	int rv;

	if (json_is_array(json_object_get(root, "events")) &&
	    json_array_size(json_object_get(root, "events")) > 512) {
		peer_reply_error(c, id, "limit_exceeded", "at most 512 event names");
		return;
	}
	if ((names = command_strings(json_object_get(root, "events"), &n)) == NULL) {
		peer_reply_error(c, id, "invalid_argument", "\"events\" must be an array of "
		    "strings");
		return;
	}
	rv = pop3d_consumer_register(c->ctl->srv, c->consumer, names, n, &bad);
	if (rv == -POP3D_ERR_UNKNOWN_EVENT)
		peer_reply_error(c, id, "unknown_event", "no such event: %s", names[bad]);
	else if (rv != 0)
		command_result(c, id, rv, NULL);
	else {
		peer_reply_ok(c, id, json_pack("{s:o}", "events", command_patterns(c)));
		command_registered(c);
	}
	free(names);
}

static void
command_unregister(struct controller *c, json_t *id, json_t *root)
{
	const char **names;
	size_t n;
	int rv;

	if ((names = command_strings(json_object_get(root, "events"), &n)) == NULL) {
		peer_reply_error(c, id, "invalid_argument", "\"events\" must be an array of "
		    "strings");
		return;
	}
	rv = pop3d_consumer_unregister(c->ctl->srv, c->consumer, names, n);
	free(names);
	if (rv != 0)
		command_result(c, id, rv, NULL);
	else
		peer_reply_ok(c, id, json_pack("{s:o}", "events", command_patterns(c)));
}

/* Decode one line given as text or base64 text; NULL on error. */
static char *
command_line(json_t *v, int b64, size_t *len)
{
	char *out;
	long n;

	if (!json_is_string(v))
		return NULL;
	if (!b64) {
		*len = json_string_length(v);
		if ((out = malloc(*len + 1)) != NULL) {
			memcpy(out, json_string_value(v), *len);
			out[*len] = '\0';
		}
		return out;
	}
	if ((n = base64_decode(json_string_value(v), json_string_length(v), &out)) < 0)
		return NULL;
	*len = (size_t)n;
	return out;
}

static void
command_send_to_client(struct controller *c, json_t *id, json_t *root)
{
	static const char *const forms[] = { "text", "text_b64", "lines", "lines_b64" };
	struct pop3d *srv = c->ctl->srv;
	long long client = command_uint(root, "client", 1);
	long long tag = command_uint(root, "tag", 0);
	json_t *more = json_object_get(root, "more"), *v = NULL;
	struct iovec *iov = NULL;
	size_t i, n = 0, len;
	int form = -1, k, rv = 0, b64;
	char *line;

	for (k = 0; k < 4; k++)
		if (json_object_get(root, forms[k]) != NULL) {
			if (form != -1) {
				peer_reply_error(c, id, "invalid_argument",
				    "give one of text, text_b64, lines, lines_b64");
				return;
			}
			form = k;
			v = json_object_get(root, forms[k]);
		}
	if (client < 0 || tag < 0 || form == -1 || (more != NULL && !json_is_boolean(more))) {
		peer_reply_error(c, id, "invalid_argument", "need \"client\" (positive "
		    "integer), one of text/text_b64/lines/lines_b64, optional \"tag\" and "
		    "boolean \"more\"");
		return;
	}
	b64 = form == 1 || form == 3;
	if (form < 2) {
		if ((line = command_line(v, b64, &len)) == NULL) {
			peer_reply_error(c, id, "invalid_argument", "bad %s", forms[form]);
			return;
		}
		rv = pop3d_send_to_client(srv, (uint64_t)client, (uint64_t)tag, line, len,
		    json_is_true(more) ? POP3D_SEND_MORE : 0);
		free(line);
		command_result(c, id, rv, NULL);
		return;
	}
	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > COMMAND_MAX_ITEMS) {
		peer_reply_error(c, id, "invalid_argument", "%s must be a non-empty array",
		    forms[form]);
		return;
	}
	n = json_array_size(v);
	if ((iov = calloc(n, sizeof(*iov))) == NULL) {
		peer_reply_error(c, id, "internal_error", "out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		if ((iov[i].iov_base = command_line(json_array_get(v, i), b64, &len)) == NULL) {
			peer_reply_error(c, id, "invalid_argument", "bad %s item %zu",
			    forms[form], i);
			goto done;
		}
		iov[i].iov_len = len;
	}
	if (json_is_true(more)) {
		/* Lines of a response that continues: data lines, dot-stuffed, in
		 * a response already open; else written as given. */
		int flags = POP3D_SEND_MORE;

		if (pop3d_response_open(srv, (uint64_t)client, (uint64_t)tag))
			flags |= POP3D_SEND_DATA;
		for (i = 0; i < n && rv == 0; i++)
			if (!line_clean(iov[i].iov_base, iov[i].iov_len))
				rv = -POP3D_ERR_INVALID;
		/* Every element with the tag: tag 0 would mean the command in
		 * front, not one dispatched ahead (--pipeline-depth). */
		for (i = 0; i < n && rv == 0; i++)
			rv = pop3d_send_to_client(srv, (uint64_t)client, (uint64_t)tag,
			    iov[i].iov_base, iov[i].iov_len, flags);
	} else if (!line_clean(iov[0].iov_base, iov[0].iov_len))
		rv = -POP3D_ERR_INVALID;	/* the status line goes as a C string */
	else
		rv = pop3d_send_lines(srv, (uint64_t)client, (uint64_t)tag, iov[0].iov_base,
		    iov + 1, n - 1);
	command_result(c, id, rv, NULL);
done:
	for (i = 0; i < n; i++)
		free(iov[i].iov_base);
	free(iov);
}

static void
command_send_file(struct controller *c, json_t *id, json_t *root)
{
	long long client = command_uint(root, "client", 1);
	long long tag = command_uint(root, "tag", 0);
	json_t *path = json_object_get(root, "path"), *status = json_object_get(root, "status");
	json_t *top = json_object_get(root, "top_lines");
	long top_lines = -1;
	int rv;

	if (client < 0 || tag < 0 || !json_is_string(path) || !json_is_string(status) ||
	    (top != NULL && (!json_is_integer(top) || json_integer_value(top) < 0 ||
	    json_integer_value(top) > 1000000000))) {
		peer_reply_error(c, id, "invalid_argument", "need \"client\", \"path\", "
		    "\"status\"; optional \"top_lines\" (>= 0) and \"tag\"");
		return;
	}
	if (top != NULL)
		top_lines = (long)json_integer_value(top);
	rv = pop3d_send_file(c->ctl->srv, (uint64_t)client, (uint64_t)tag,
	    json_string_value(status), json_string_value(path), top_lines);
	if (rv == -POP3D_ERR_IO)
		peer_reply_error(c, id, "invalid_argument", "cannot read %s",
		    json_string_value(path));
	else
		command_result(c, id, rv, NULL);
}

static void
command_disconnect(struct controller *c, json_t *id, json_t *root)
{
	long long client = command_uint(root, "client", 1);
	json_t *text = json_object_get(root, "text");

	if (client < 0 || (text != NULL && !json_is_string(text))) {
		peer_reply_error(c, id, "invalid_argument", "need \"client\" and optional "
		    "string \"text\"");
		return;
	}
	command_result(c, id, pop3d_disconnect(c->ctl->srv, (uint64_t)client,
	    text != NULL ? json_string_value(text) : NULL), NULL);
}

static void
command_shutdown(struct controller *c, json_t *id, json_t *root)
{
	struct control *ctl = c->ctl;

	(void)root;
	log_info("controller=%llu event=shutdown-requested", (unsigned long long)c->id);
	peer_reply_ok(c, id, NULL);
	ctl->on_stop(ctl);
	pop3d_shutdown(ctl->srv);
}

static void
command_send_event(struct controller *c, json_t *id, json_t *root)
{
	json_t *name = json_object_get(root, "event"), *args = json_object_get(root, "args");
	struct pop3d_arg *av = NULL;
	int n = 0, rv;

	if (!json_is_string(name) ||
	    (args != NULL && (av = codec_args(args, &n)) == NULL)) {
		peer_reply_error(c, id, "invalid_argument", "need string \"event\" and "
		    "optional array \"args\" (at most 64)");
		return;
	}
	rv = pop3d_send_event(c->ctl->srv, json_string_value(name), av, n, c->id);
	codec_args_free(av, n);
	if (rv == -POP3D_ERR_UNKNOWN_EVENT)
		peer_reply_error(c, id, "unknown_event", "no such event: %s (custom events "
		    "are named x_*)", json_string_value(name));
	else
		command_result(c, id, rv, NULL);
}

static void
command_getsockname(struct controller *c, json_t *id, json_t *root)
{
	(void)root;
	peer_reply_ok(c, id, json_pack("{s:o}", "listeners", codec_listeners(c->ctl->srv)));
}

static void
command_session_id(struct controller *c, json_t *id, json_t *root)
{
	(void)root;
	peer_reply_ok(c, id, json_pack("{s:s}", "session_id",
	    pop3d_session_id(c->ctl->srv)));
}

/* A barrier: every earlier event is already in this controller's stream,
 * because events and replies share one ordered output buffer. */
static void
command_ping(struct controller *c, json_t *id, json_t *root)
{
	(void)root;
	peer_reply_ok(c, id, json_pack("{s:I}", "seq",
	    (json_int_t)pop3d_next_seq(c->ctl->srv)));
}

static int
command_client_row(const struct pop3d_client_info *ci, void *arg)
{
	json_t *a = arg;

	json_array_append_new(a, json_pack("{s:I, s:s, s:i, s:s, s:i, s:s, s:b, s:I, s:I, s:I}",
	    "client", (json_int_t)ci->id, "peer", ci->peer, "peer_port", ci->peer_port,
	    "local", ci->local, "local_port", ci->local_port,
	    "state", pop3d_state_name(ci->state), "tls", ci->tls,
	    "connected", (json_int_t)ci->connected, "idle", (json_int_t)ci->idle,
	    "tag", (json_int_t)ci->tag));
	return 0;
}

static void
command_list_clients(struct controller *c, json_t *id, json_t *root)
{
	json_t *a = json_array();

	(void)root;
	pop3d_clients(c->ctl->srv, command_client_row, a);
	peer_reply_ok(c, id, json_pack("{s:o}", "clients", a));
}

static void
command_hello(struct controller *c, json_t *id, json_t *root)
{
	json_t *name = json_object_get(root, "name"), *lossy = json_object_get(root, "lossy");

	if ((name != NULL && (!json_is_string(name) || json_string_length(name) == 0 ||
	    json_string_length(name) >= sizeof(c->name) ||
	    !codec_utf8_valid(json_string_value(name), json_string_length(name)) ||
	    strpbrk(json_string_value(name), "\"\r\n") != NULL)) ||
	    (lossy != NULL && !json_is_boolean(lossy))) {
		peer_reply_error(c, id, "invalid_argument", "\"name\": 1-63 characters "
		    "without quotes or line ends; \"lossy\": boolean");
		return;
	}
	if (name != NULL)
		memcpy(c->name, json_string_value(name), json_string_length(name) + 1);
	if (lossy != NULL)
		c->lossy = json_is_true(lossy);
	log_info("controller=%llu event=hello name=\"%s\" lossy=%d", (unsigned long long)c->id,
	    c->name, c->lossy);
	peer_reply_ok(c, id, json_pack("{s:I, s:s, s:b}", "controller", (json_int_t)c->id,
	    "name", c->name, "lossy", c->lossy));
}

/* An alias: 1-63 printable characters. */
static const char *
command_alias(json_t *root)
{
	json_t *v = json_object_get(root, "alias");
	const char *s;
	size_t i;

	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 63)
		return NULL;
	s = json_string_value(v);
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == '"' || (unsigned char)s[i] >= 0x7f)
			return NULL;
	return s;
}

/* An own controller plugin by alias, or an error reply. */
static struct hook_plugin *
command_own_plugin(struct controller *c, json_t *id, json_t *root)
{
	const char *alias = command_alias(root);
	struct hook_plugin *p;

	if (alias == NULL) {
		peer_reply_error(c, id, "invalid_argument", "need \"alias\"");
		return NULL;
	}
	if ((p = hook_plugin_find(c->ctl, alias)) == NULL) {
		if (pop3d_plugin_get(c->ctl->srv, alias, NULL, NULL) == 0)
			peer_reply_error(c, id, "permission_denied", "plugin %s is not yours",
			    alias);
		else
			peer_reply_error(c, id, "invalid_argument", "no plugin %s", alias);
		return NULL;
	}
	if (p->controller != c->id) {
		peer_reply_error(c, id, "permission_denied", "plugin %s is not yours", alias);
		return NULL;
	}
	return p;
}

/* "POP3D" (default) or "POP3C"; -1 when invalid. */
static int
command_plugin_type(json_t *root)
{
	json_t *t = json_object_get(root, "type");

	if (t == NULL)
		return POP3D_PLUGIN_POP3D;
	if (!json_is_string(t))
		return -1;
	if (strcmp(json_string_value(t), "POP3D") == 0)
		return POP3D_PLUGIN_POP3D;
	if (strcmp(json_string_value(t), "POP3C") == 0)
		return POP3D_PLUGIN_POP3C;
	return -1;
}

static void
command_plugin_add(struct controller *c, json_t *id, json_t *root)
{
	const char *alias = command_alias(root);
	json_t *prio = json_object_get(root, "priority");
	int n;

	if (alias == NULL || (prio != NULL && (!json_is_integer(prio) ||
	    json_integer_value(prio) < -1000000 || json_integer_value(prio) > 1000000))) {
		peer_reply_error(c, id, "invalid_argument", "need \"alias\" (1-63 printable "
		    "characters) and optional integer \"priority\"");
		return;
	}
	if ((n = hook_plugin_add(c, alias, prio != NULL ? (int)json_integer_value(prio) : 0)) < 0) {
		peer_reply_error(c, id, "invalid_argument", "alias %s is in use", alias);
		return;
	}
	peer_reply_ok(c, id, json_pack("{s:i}", "plugins", n));
}

static json_t *
command_plugin_info(struct control *ctl, const char *alias)
{
	struct hook_plugin *p = hook_plugin_find(ctl, alias);
	const char **pat;
	json_t *o, *types = json_object();
	size_t n, i;
	int prio = 0, t;

	pop3d_plugin_get(ctl->srv, alias, &prio, NULL);
	for (t = 0; t < 2; t++) {
		json_t *a = json_array();

		n = pop3d_plugin_patterns(ctl->srv, alias, (enum pop3d_plugin_type)t, &pat);
		for (i = 0; i < n; i++)
			json_array_append_new(a, json_string(strcmp(pat[i], "*") == 0 ? "all" :
			    pat[i]));
		json_object_set_new(types, t == 0 ? "POP3D" : "POP3C", a);
	}
	o = json_pack("{s:s, s:i, s:o}", "alias", alias, "priority", prio, "events", types);
	if (p != NULL) {
		json_object_set_new(o, "controller", json_integer((json_int_t)p->controller));
		json_object_set_new(o, "timeout_ms", json_pack("{s:I, s:I}", "POP3D",
		    (json_int_t)p->timeout_ms[0], "POP3C", (json_int_t)p->timeout_ms[1]));
	} else
		json_object_set_new(o, "controller", json_null());
	return o;
}

static void
command_plugin_register(struct controller *c, json_t *id, json_t *root)
{
	struct hook_plugin *p;
	json_t *tmo = json_object_get(root, "timeout_ms"), *ont = json_object_get(root,
	    "on_timeout");
	const char **names;
	size_t n, bad = 0;
	int type = command_plugin_type(root), v = 0, rv;

	if ((p = command_own_plugin(c, id, root)) == NULL)
		return;
	if (type < 0 || (tmo != NULL && (!json_is_integer(tmo) || json_integer_value(tmo) < 1 ||
	    json_integer_value(tmo) > 600000)) || (ont != NULL && (!json_is_string(ont) ||
	    (v = hook_verdict_parse(json_string_value(ont), 1)) == 0))) {
		peer_reply_error(c, id, "invalid_argument", "\"type\": POP3D or POP3C; "
		    "\"timeout_ms\": 1-600000; \"on_timeout\": none, client, plugin, all or "
		    "tempfail");
		return;
	}
	if ((names = command_strings(json_object_get(root, "events"), &n)) == NULL) {
		peer_reply_error(c, id, "invalid_argument", "\"events\" must be an array of "
		    "strings");
		return;
	}
	rv = pop3d_plugin_register_type(c->ctl->srv, p->alias, (enum pop3d_plugin_type)type,
	    names, n, &bad);
	if (rv == -POP3D_ERR_UNKNOWN_EVENT)
		peer_reply_error(c, id, "unknown_event", "no such event: %s", names[bad]);
	else if (rv != 0)
		command_result(c, id, rv, NULL);
	else {
		if (tmo != NULL)
			p->timeout_ms[type] = (unsigned)json_integer_value(tmo);
		if (ont != NULL)
			p->on_timeout[type] = v;
		peer_reply_ok(c, id, command_plugin_info(c->ctl, p->alias));
	}
	free(names);
}

static void
command_plugin_unregister(struct controller *c, json_t *id, json_t *root)
{
	struct hook_plugin *p;
	const char **names;
	size_t n;
	int type = command_plugin_type(root), rv;

	if ((p = command_own_plugin(c, id, root)) == NULL)
		return;
	if (type < 0 || (names = command_strings(json_object_get(root, "events"), &n)) == NULL) {
		peer_reply_error(c, id, "invalid_argument", "need \"events\" and optional "
		    "\"type\"");
		return;
	}
	rv = pop3d_plugin_unregister_type(c->ctl->srv, p->alias, (enum pop3d_plugin_type)type,
	    names, n);
	free(names);
	if (rv != 0)
		command_result(c, id, rv, NULL);
	else
		peer_reply_ok(c, id, command_plugin_info(c->ctl, p->alias));
}

static void
command_plugin_del(struct controller *c, json_t *id, json_t *root)
{
	struct hook_plugin *p;

	if ((p = command_own_plugin(c, id, root)) == NULL)
		return;
	hook_plugin_del(c->ctl, p);
	peer_reply_ok(c, id, json_pack("{s:i}", "plugins",
	    (int)pop3d_plugin_order(c->ctl->srv, NULL, 0)));
}

static void
command_plugin_get(struct controller *c, json_t *id, json_t *root)
{
	const char *alias = command_alias(root);

	if (alias == NULL || pop3d_plugin_get(c->ctl->srv, alias, NULL, NULL) != 0) {
		peer_reply_error(c, id, "invalid_argument", "no such plugin");
		return;
	}
	peer_reply_ok(c, id, command_plugin_info(c->ctl, alias));
}

/* Plugin aliases in pipeline order (malloc'd vector, borrowed strings). */
static const char **
command_plugin_aliases(struct controller *c, json_t *id, size_t *n)
{
	const char **order;

	*n = pop3d_plugin_order(c->ctl->srv, NULL, 0);
	if ((order = calloc(*n + 1, sizeof(*order))) == NULL) {
		peer_reply_error(c, id, "internal_error", "out of memory");
		return NULL;
	}
	pop3d_plugin_order(c->ctl->srv, order, *n);
	return order;
}

/* A reply listing every plugin in pipeline order, each formatted by fmt. */
static void
command_plugin_reply(struct controller *c, json_t *id, json_t *(*fmt)(struct control *,
    const char *))
{
	const char **order;
	size_t n, i;
	json_t *a;

	if ((order = command_plugin_aliases(c, id, &n)) == NULL)
		return;
	a = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(a, fmt(c->ctl, order[i]));
	free(order);
	peer_reply_ok(c, id, json_pack("{s:o}", "plugins", a));
}

static json_t *
command_plugin_alias(struct control *ctl, const char *alias)
{
	(void)ctl;
	return json_string(alias);
}

static void
command_plugin_list(struct controller *c, json_t *id, json_t *root)
{
	(void)root;
	command_plugin_reply(c, id, command_plugin_info);
}

static void
command_plugin_order(struct controller *c, json_t *id, json_t *root)
{
	(void)root;
	command_plugin_reply(c, id, command_plugin_alias);
}

static void
command_verdict(struct controller *c, json_t *id, json_t *root)
{
	json_t *hook = json_object_get(root, "hook"), *eat = json_object_get(root, "eat");
	json_t *args = json_object_get(root, "args");
	struct pop3d_arg *av = NULL;
	const char *code = NULL;
	int verdict, n = 0;

	if (!json_is_integer(hook) || json_integer_value(hook) <= 0 || !json_is_string(eat) ||
	    (verdict = hook_verdict_parse(json_string_value(eat), 1)) == 0 ||
	    (args != NULL && (av = codec_args(args, &n)) == NULL)) {
		peer_reply_error(c, id, "invalid_argument", "need \"hook\", \"eat\" (none, "
		    "client, plugin, all or tempfail) and optional array \"args\"");
		return;
	}
	if (hook_verdict(c, (uint64_t)json_integer_value(hook), verdict, av, n, &code) != 0)
		peer_reply_error(c, id, code, strcmp(code, "stale") == 0 ?
		    "hook %lld is not pending (late or answered)" :
		    "hook %lld went to another controller", (long long)json_integer_value(hook));
	else
		peer_reply_ok(c, id, NULL);
	codec_args_free(av, n);
}

static const struct command_def commands[] = {
	{ "register", { "events" }, 0, command_register },
	{ "unregister", { "events" }, 1, command_unregister },
	{ "send_to_client", { "client", "text", "text_b64", "lines", "lines_b64", "more",
	    "tag" }, 1, command_send_to_client },
	{ "send_file", { "client", "path", "status", "top_lines", "tag" }, 1,
	    command_send_file },
	{ "disconnect", { "client", "text" }, 1, command_disconnect },
	{ "shutdown", { NULL }, 0, command_shutdown },
	{ "send_event", { "event", "args" }, 0, command_send_event },
	{ "getsockname", { NULL }, 1, command_getsockname },
	{ "session_id", { NULL }, 1, command_session_id },
	{ "ping", { NULL }, 1, command_ping },
	{ "list_clients", { NULL }, 1, command_list_clients },
	{ "hello", { "name", "lossy" }, 1, command_hello },
	{ "plugin_add", { "alias", "priority" }, 0, command_plugin_add },
	{ "plugin_register", { "alias", "type", "events", "timeout_ms", "on_timeout" }, 0,
	    command_plugin_register },
	{ "plugin_unregister", { "alias", "type", "events" }, 1, command_plugin_unregister },
	{ "plugin_del", { "alias" }, 1, command_plugin_del },
	{ "plugin_get", { "alias" }, 1, command_plugin_get },
	{ "plugin_list", { NULL }, 1, command_plugin_list },
	{ "plugin_order", { NULL }, 1, command_plugin_order },
	{ "verdict", { "hook", "eat", "args" }, 1, command_verdict },
};

void
command_run(struct controller *c, struct codec_cmd *cmd)
{
	const struct command_def *d = NULL;
	const char *key;
	json_t *v;
	size_t i, k;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, cmd->name) == 0)
			d = &commands[i];
	if (d == NULL) {
		peer_reply_error(c, cmd->id, "unknown_command", "no such command: %.64s",
		    cmd->name);
		return;
	}
	json_object_foreach(cmd->root, key, v) {
		if (strcmp(key, "cmd") == 0 || strcmp(key, "id") == 0)
			continue;
		for (k = 0; k < 8 && d->keys[k] != NULL; k++)
			if (strcmp(d->keys[k], key) == 0)
				break;
		if (k == 8 || d->keys[k] == NULL) {
			peer_reply_error(c, cmd->id, "invalid_argument",
			    "%s: unknown key \"%.64s\"", d->name, key);
			return;
		}
	}
	if (c->ctl->shutting_down && !d->while_stopping) {
		peer_reply_error(c, cmd->id, "shutting_down", "pop3d is shutting down");
		return;
	}
	d->run(c, cmd->id, cmd->root);
}
