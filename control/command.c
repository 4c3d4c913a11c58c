/* command.c - the control commands: a table of {name, keys, handler} rows. */
/*
 * Every command gets exactly one reply, in order.  A key that a command
 * does not know is invalid_argument, and the command has no effect.
 * Handlers read their arguments through the typed accessors of
 * codec_cmd.c (strings without NUL: codec_decode() saw to that), build
 * results with its constructors and reply through peer.c; no JSON is
 * parsed or built here.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/log.h"
#include "line.h"
#include "controller.h"
#include "pop3d.h"

/* Most strings one command may carry in events/lines arrays. */
#define COMMAND_MAX_ITEMS 100000

typedef void (*command_fn)(struct controller *, const struct codec_cmd *);

struct command_def {
	const char *name;
	const char *keys[8]; /* allowed besides "cmd" and "id" */
	int while_stopping;  /* still allowed during shutdown */
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

/* Reply to a core call's result: ok with no result, or its error. */
static void
command_result(struct controller *c, const struct codec_cmd *cmd, int rv)
{
	if (rv == 0)
		peer_reply_ok(c, cmd->id, NULL);
	else
		peer_reply_error(c, cmd->id, command_code(rv), "%s", pop3d_strerror(rv));
}

/* The reply listing this controller's event patterns. */
static void
command_patterns(struct controller *c, const struct codec_cmd *cmd)
{
	const char **p;
	size_t n = pop3d_consumer_patterns(c->ctl->srv, c->consumer, &p);

	peer_reply_ok(c, cmd->id, codec_cmd_result_events(p, n));
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

/* register: receive events matching "events"; the seed follows. */
static void
command_register(struct controller *c, const struct codec_cmd *cmd)
{
	const char **names;
	size_t n, bad = 0;
	int rv;

	if (codec_cmd_count(cmd, "events") > 512) {
		peer_reply_error(c, cmd->id, "limit_exceeded", "at most 512 event names");
		return;
	}
	if ((names = codec_cmd_strings(cmd, "events", COMMAND_MAX_ITEMS, &n)) == NULL) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "\"events\" must be an array of "
		    "strings");
		return;
	}
	rv = pop3d_consumer_register(c->ctl->srv, c->consumer, names, n, &bad);
	if (rv == -POP3D_ERR_UNKNOWN_EVENT)
		peer_reply_error(c, cmd->id, "unknown_event", "no such event: %s", names[bad]);
	else if (rv != 0)
		command_result(c, cmd, rv);
	else {
		command_patterns(c, cmd);
		command_registered(c);
	}
	free(names);
}

/* unregister: stop receiving events matching "events". */
static void
command_unregister(struct controller *c, const struct codec_cmd *cmd)
{
	const char **names;
	size_t n;
	int rv;

	if ((names = codec_cmd_strings(cmd, "events", COMMAND_MAX_ITEMS, &n)) == NULL) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "\"events\" must be an array of "
		    "strings");
		return;
	}
	rv = pop3d_consumer_unregister(c->ctl->srv, c->consumer, names, n);
	free(names);
	if (rv != 0)
		command_result(c, cmd, rv);
	else
		command_patterns(c, cmd);
}

/* send_to_client with "lines" or "lines_b64": the n decoded lines. */
static int
command_send_lines(struct controller *c, uint64_t client, uint64_t tag, int more, struct iovec *iov,
    size_t n)
{
	struct pop3d *srv = c->ctl->srv;
	size_t i;
	int rv = 0;

	if (more) {
		/* Lines of a response that continues: data lines, dot-stuffed, in
		 * a response already open; else written as given. */
		int flags = POP3D_SEND_MORE;

		if (pop3d_response_open(srv, client, tag))
			flags |= POP3D_SEND_DATA;
		for (i = 0; i < n && rv == 0; i++)
			if (!line_clean(iov[i].iov_base, iov[i].iov_len))
				rv = -POP3D_ERR_INVALID;
		/* Every element with the tag: tag 0 would mean the command in
		 * front, not one dispatched ahead (--pipeline-depth). */
		for (i = 0; i < n && rv == 0; i++)
			rv = pop3d_send_to_client(srv, client, tag, iov[i].iov_base, iov[i].iov_len,
			    flags);
		return rv;
	}
	if (!line_clean(iov[0].iov_base, iov[0].iov_len))
		return -POP3D_ERR_INVALID; /* the status line goes as a C string */
	return pop3d_send_lines(srv, client, tag, iov[0].iov_base, iov + 1, n - 1);
}

/* send_to_client: one line, or a status line and data lines. */
static void
command_send_to_client(struct controller *c, const struct codec_cmd *cmd)
{
	static const char *const forms[] = { "text", "text_b64", "lines", "lines_b64" };
	long long client = codec_cmd_uint(cmd, "client", 1);
	long long tag = codec_cmd_uint(cmd, "tag", 0);
	struct iovec *iov = NULL;
	size_t i, n = 0, len;
	int form = -1, k, rv, b64, more = 0;
	char *line;

	for (k = 0; k < 4; k++)
		if (codec_cmd_has(cmd, forms[k])) {
			if (form != -1) {
				peer_reply_error(c, cmd->id, "invalid_argument",
				    "give one of text, text_b64, lines, lines_b64");
				return;
			}
			form = k;
		}
	if (client < 0 || tag < 0 || form == -1 || codec_cmd_bool(cmd, "more", &more) < 0) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "need \"client\" (positive "
		    "integer), one of text/text_b64/lines/lines_b64, optional \"tag\" and "
		    "boolean \"more\"");
		return;
	}
	b64 = form == 1 || form == 3;
	if (form < 2) {
		if ((line = codec_cmd_line(cmd, forms[form], b64, &len)) == NULL) {
			peer_reply_error(c, cmd->id, "invalid_argument", "bad %s", forms[form]);
			return;
		}
		rv = pop3d_send_to_client(c->ctl->srv, (uint64_t)client, (uint64_t)tag, line, len,
		    more ? POP3D_SEND_MORE : 0);
		free(line);
		command_result(c, cmd, rv);
		return;
	}
	if (codec_cmd_count(cmd, forms[form]) <= 0 ||
	    codec_cmd_count(cmd, forms[form]) > COMMAND_MAX_ITEMS) {
		peer_reply_error(c, cmd->id, "invalid_argument", "%s must be a non-empty array",
		    forms[form]);
		return;
	}
	n = (size_t)codec_cmd_count(cmd, forms[form]);
	if ((iov = calloc(n, sizeof(*iov))) == NULL) {
		peer_reply_error(c, cmd->id, "internal_error", "out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		if ((iov[i].iov_base = codec_cmd_line_at(cmd, forms[form], i, b64, &len)) == NULL) {
			peer_reply_error(c, cmd->id, "invalid_argument", "bad %s item %zu",
			    forms[form], i);
			goto done;
		}
		iov[i].iov_len = len;
	}
	command_result(c, cmd,
	    command_send_lines(c, (uint64_t)client, (uint64_t)tag, more, iov, n));
done:
	for (i = 0; i < n; i++)
		free(iov[i].iov_base);
	free(iov);
}

/* send_file: a file as a multi-line response. */
static void
command_send_file(struct controller *c, const struct codec_cmd *cmd)
{
	long long client = codec_cmd_uint(cmd, "client", 1);
	long long tag = codec_cmd_uint(cmd, "tag", 0);
	long long top = -1;
	const char *path, *status;
	int rv;

	if (client < 0 || tag < 0 || codec_cmd_str(cmd, "path", &path, NULL) != 1 ||
	    codec_cmd_str(cmd, "status", &status, NULL) != 1 ||
	    codec_cmd_int(cmd, "top_lines", 0, 1000000000, &top) < 0) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "need \"client\", \"path\", "
		    "\"status\"; optional \"top_lines\" (>= 0) and \"tag\"");
		return;
	}
	rv = pop3d_send_file(c->ctl->srv, (uint64_t)client, (uint64_t)tag, status, path, (long)top);
	if (rv == -POP3D_ERR_IO)
		peer_reply_error(c, cmd->id, "invalid_argument", "cannot read %s", path);
	else
		command_result(c, cmd, rv);
}

/* disconnect: close a client, with an optional last line. */
static void
command_disconnect(struct controller *c, const struct codec_cmd *cmd)
{
	long long client = codec_cmd_uint(cmd, "client", 1);
	const char *text = NULL;

	if (client < 0 || codec_cmd_str(cmd, "text", &text, NULL) < 0) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "need \"client\" and optional "
		    "string \"text\"");
		return;
	}
	command_result(c, cmd, pop3d_disconnect(c->ctl->srv, (uint64_t)client, text));
}

/* shutdown: stop pop3d (after this reply). */
static void
command_shutdown(struct controller *c, const struct codec_cmd *cmd)
{
	struct control *ctl = c->ctl;

	log_info("controller=%llu event=shutdown-requested", (unsigned long long)c->id);
	peer_reply_ok(c, cmd->id, NULL);
	ctl->on_stop(ctl);
	pop3d_shutdown(ctl->srv);
}

/* send_event: a custom (x_*) or core event into the pipeline. */
static void
command_send_event(struct controller *c, const struct codec_cmd *cmd)
{
	struct pop3d_arg *av;
	const char *name;
	int n, bad, rv;

	av = codec_cmd_args(cmd, "args", &n, &bad);
	if (codec_cmd_str(cmd, "event", &name, NULL) != 1 || bad) {
		codec_cmd_args_free(av, n);
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "need string \"event\" and "
		    "optional array \"args\" (at most 64)");
		return;
	}
	rv = pop3d_send_event(c->ctl->srv, name, av, n, c->id);
	codec_cmd_args_free(av, n);
	if (rv == -POP3D_ERR_UNKNOWN_EVENT)
		peer_reply_error(c, cmd->id, "unknown_event",
		    "no such event: %s (custom events "
		    "are named x_*)",
		    name);
	else
		command_result(c, cmd, rv);
}

/* getsockname: the listeners. */
static void
command_getsockname(struct controller *c, const struct codec_cmd *cmd)
{
	peer_reply_ok(c, cmd->id, codec_cmd_result_listeners(c->ctl->srv));
}

/* session_id: this run's id. */
static void
command_session_id(struct controller *c, const struct codec_cmd *cmd)
{
	peer_reply_ok(c, cmd->id,
	    codec_cmd_result_str("session_id", pop3d_session_id(c->ctl->srv)));
}

/* A barrier: every earlier event is already in this controller's stream,
 * because events and replies share one ordered output buffer. */
static void
command_ping(struct controller *c, const struct codec_cmd *cmd)
{
	peer_reply_ok(c, cmd->id,
	    codec_cmd_result_int("seq", (long long)pop3d_next_seq(c->ctl->srv)));
}

/* list_clients: every client. */
static void
command_list_clients(struct controller *c, const struct codec_cmd *cmd)
{
	peer_reply_ok(c, cmd->id, codec_cmd_result_clients(c->ctl->srv, &c->ctl->groups));
}

/* hello: this controller's name in logs, lossy mode, and its group. */
static void
command_hello(struct controller *c, const struct codec_cmd *cmd)
{
	const char *name = NULL, *group = NULL, *err;
	size_t len = 0;
	int has, lossy = c->lossy, hl, hg;

	has = codec_cmd_str(cmd, "name", &name, &len);
	hl = codec_cmd_bool(cmd, "lossy", &lossy);
	hg = codec_cmd_str(cmd, "group", &group, NULL);
	if (has < 0 ||
	    (has == 1 &&
		(len == 0 || len >= sizeof(c->name) || !codec_utf8_valid(name, len) ||
		    strpbrk(name, "\"\r\n") != NULL)) ||
	    hl < 0 || hg < 0) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "\"name\": 1-63 characters "
		    "without quotes or line ends; \"lossy\": boolean; \"group\": string");
		return;
	}
	if (hg == 1 && (err = command_group_join(c, group)) != NULL) {
		peer_reply_error(c, cmd->id, "invalid_argument", "%s", err);
		return;
	}
	if (has == 1) {
		memcpy(c->name, name, len + 1);
		group_rename(&c->ctl->groups, c->id, c->name);
	}
	c->lossy = lossy;
	log_info("controller=%llu event=hello name=\"%s\" lossy=%d group=%s",
	    (unsigned long long)c->id, c->name, c->lossy, c->group[0] ? c->group : "-");
	peer_reply_ok(c, cmd->id,
	    codec_cmd_result_hello(c->id, c->name, c->lossy, c->group[0] ? c->group : NULL));
}

/* An alias: 1-63 printable characters; NULL when absent or invalid. */
static const char *
command_alias(const struct codec_cmd *cmd)
{
	const char *s;
	size_t len, i;

	if (codec_cmd_str(cmd, "alias", &s, &len) != 1 || len == 0 || len > 63)
		return NULL;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == '"' || (unsigned char)s[i] >= 0x7f)
			return NULL;
	return s;
}

/* An own controller plugin by alias, or an error reply. */
static struct hook_plugin *
command_own_plugin(struct controller *c, const struct codec_cmd *cmd)
{
	const char *alias = command_alias(cmd);
	struct hook_plugin *p;

	if (alias == NULL) {
		peer_reply_error(c, cmd->id, "invalid_argument", "need \"alias\"");
		return NULL;
	}
	if ((p = hook_plugin_find(c->ctl, alias)) == NULL) {
		if (pop3d_plugin_get(c->ctl->srv, alias, NULL, NULL) == 0)
			peer_reply_error(c, cmd->id, "permission_denied", "plugin %s is not yours",
			    alias);
		else
			peer_reply_error(c, cmd->id, "invalid_argument", "no plugin %s", alias);
		return NULL;
	}
	if (p->group[0] != '\0' ? !hook_plugin_is_member(p, c->id) : p->controller != c->id) {
		peer_reply_error(c, cmd->id, "permission_denied", "plugin %s is not yours", alias);
		return NULL;
	}
	return p;
}

/* "POP3D" (default) or "POP3C"; -1 when invalid. */
static int
command_plugin_type(const struct codec_cmd *cmd)
{
	const char *t;
	int has = codec_cmd_str(cmd, "type", &t, NULL);

	if (has == 0)
		return POP3D_PLUGIN_POP3D;
	if (has < 0)
		return -1;
	if (strcmp(t, "POP3D") == 0)
		return POP3D_PLUGIN_POP3D;
	if (strcmp(t, "POP3C") == 0)
		return POP3D_PLUGIN_POP3C;
	return -1;
}

/* plugin_add: this controller becomes a plugin. */
static void
command_plugin_add(struct controller *c, const struct codec_cmd *cmd)
{
	const char *alias = command_alias(cmd);
	long long prio = 0;
	int n, joined;

	if (alias == NULL || codec_cmd_int(cmd, "priority", -1000000, 1000000, &prio) < 0) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "need \"alias\" (1-63 printable "
		    "characters) and optional integer \"priority\"");
		return;
	}
	if ((n = hook_plugin_add(c, alias, (int)prio, &joined)) < 0) {
		peer_reply_error(c, cmd->id, "invalid_argument", "alias %s is in use", alias);
		return;
	}
	peer_reply_ok(c, cmd->id,
	    codec_cmd_result_plugin_add(n, c->group[0] != '\0' ? joined : -1));
}

/* What plugin_get shows of the plugin of that alias. */
static json_t *
command_plugin_info(struct control *ctl, const char *alias)
{
	struct hook_plugin *p = hook_plugin_find(ctl, alias);
	struct codec_plugin info;
	int t;

	memset(&info, 0, sizeof(info));
	info.alias = alias;
	pop3d_plugin_get(ctl->srv, alias, &info.priority, NULL);
	for (t = 0; t < 2; t++)
		info.npatterns[t] = pop3d_plugin_patterns(ctl->srv, alias,
		    (enum pop3d_plugin_type)t, &info.patterns[t]);
	if (p != NULL) {
		info.has_controller = 1;
		info.controller = p->controller;
		info.timeout_ms[0] = p->timeout_ms[0];
		info.timeout_ms[1] = p->timeout_ms[1];
		info.group = p->group[0] != '\0' ? p->group : NULL;
	}
	return codec_cmd_plugin(&info);
}

/* plugin_register: the events one of its plugins hooks, with deadlines. */
static void
command_plugin_register(struct controller *c, const struct codec_cmd *cmd)
{
	struct hook_plugin *p;
	const char **names, *ont = NULL;
	long long tmo = 0;
	size_t n, bad = 0;
	int type = command_plugin_type(cmd), v = 0, has_tmo, has_ont, rv;

	if ((p = command_own_plugin(c, cmd)) == NULL)
		return;
	has_tmo = codec_cmd_int(cmd, "timeout_ms", 1, 600000, &tmo);
	has_ont = codec_cmd_str(cmd, "on_timeout", &ont, NULL);
	if (type < 0 || has_tmo < 0 || has_ont < 0 ||
	    (has_ont == 1 && (v = hook_verdict_parse(ont, 1)) == 0)) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "\"type\": POP3D or POP3C; "
		    "\"timeout_ms\": 1-600000; \"on_timeout\": none, client, plugin, all or "
		    "tempfail");
		return;
	}
	if ((names = codec_cmd_strings(cmd, "events", COMMAND_MAX_ITEMS, &n)) == NULL) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "\"events\" must be an array of "
		    "strings");
		return;
	}
	rv = pop3d_plugin_register_type(c->ctl->srv, p->alias, (enum pop3d_plugin_type)type, names,
	    n, &bad);
	if (rv == -POP3D_ERR_UNKNOWN_EVENT)
		peer_reply_error(c, cmd->id, "unknown_event", "no such event: %s", names[bad]);
	else if (rv != 0)
		command_result(c, cmd, rv);
	else {
		if (has_tmo == 1)
			p->timeout_ms[type] = (unsigned)tmo;
		if (has_ont == 1)
			p->on_timeout[type] = v;
		peer_reply_ok(c, cmd->id, command_plugin_info(c->ctl, p->alias));
	}
	free(names);
}

/* plugin_unregister: events one of its plugins no longer hooks. */
static void
command_plugin_unregister(struct controller *c, const struct codec_cmd *cmd)
{
	struct hook_plugin *p;
	const char **names;
	size_t n;
	int type = command_plugin_type(cmd), rv;

	if ((p = command_own_plugin(c, cmd)) == NULL)
		return;
	if (type < 0 || (names = codec_cmd_strings(cmd, "events", COMMAND_MAX_ITEMS, &n)) == NULL) {
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "need \"events\" and optional "
		    "\"type\"");
		return;
	}
	rv = pop3d_plugin_unregister_type(c->ctl->srv, p->alias, (enum pop3d_plugin_type)type,
	    names, n);
	free(names);
	if (rv != 0)
		command_result(c, cmd, rv);
	else
		peer_reply_ok(c, cmd->id, command_plugin_info(c->ctl, p->alias));
}

/* plugin_del: remove one of its plugins. */
static void
command_plugin_del(struct controller *c, const struct codec_cmd *cmd)
{
	struct hook_plugin *p;

	if ((p = command_own_plugin(c, cmd)) == NULL)
		return;
	hook_plugin_leave(c->ctl, p, c->id);
	peer_reply_ok(c, cmd->id,
	    codec_cmd_result_int("plugins", (long long)pop3d_plugin_order(c->ctl->srv, NULL, 0)));
}

/* plugin_get: any plugin by alias. */
static void
command_plugin_get(struct controller *c, const struct codec_cmd *cmd)
{
	const char *alias = command_alias(cmd);

	if (alias == NULL || pop3d_plugin_get(c->ctl->srv, alias, NULL, NULL) != 0) {
		peer_reply_error(c, cmd->id, "invalid_argument", "no such plugin");
		return;
	}
	peer_reply_ok(c, cmd->id, command_plugin_info(c->ctl, alias));
}

/* Plugin aliases in pipeline order (malloc'd vector, borrowed strings). */
static const char **
command_plugin_aliases(struct controller *c, const struct codec_cmd *cmd, size_t *n)
{
	const char **order;

	*n = pop3d_plugin_order(c->ctl->srv, NULL, 0);
	if ((order = calloc(*n + 1, sizeof(*order))) == NULL) {
		peer_reply_error(c, cmd->id, "internal_error", "out of memory");
		return NULL;
	}
	pop3d_plugin_order(c->ctl->srv, order, *n);
	return order;
}

/* plugin_list: every plugin in pipeline order, as plugin_get shows it. */
static void
command_plugin_list(struct controller *c, const struct codec_cmd *cmd)
{
	const char **order;
	json_t **items;
	size_t n, i;

	if ((order = command_plugin_aliases(c, cmd, &n)) == NULL)
		return;
	if ((items = calloc(n + 1, sizeof(*items))) == NULL) {
		free(order);
		peer_reply_error(c, cmd->id, "internal_error", "out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		items[i] = command_plugin_info(c->ctl, order[i]);
	peer_reply_ok(c, cmd->id, codec_cmd_result_plugins(items, n));
	free(items);
	free(order);
}

/* plugin_order: the aliases in pipeline order. */
static void
command_plugin_order(struct controller *c, const struct codec_cmd *cmd)
{
	const char **order;
	size_t n;

	if ((order = command_plugin_aliases(c, cmd, &n)) == NULL)
		return;
	peer_reply_ok(c, cmd->id, codec_cmd_result_aliases(order, n));
	free(order);
}

/* verdict: the answer to a hook this controller was sent. */
static void
command_verdict(struct controller *c, const struct codec_cmd *cmd)
{
	long long hook = codec_cmd_uint(cmd, "hook", 1);
	struct pop3d_arg *av;
	const char *eat, *code = NULL;
	int verdict = 0, n, bad;

	av = codec_cmd_args(cmd, "args", &n, &bad);
	if (hook < 0 || codec_cmd_str(cmd, "eat", &eat, NULL) != 1 ||
	    (verdict = hook_verdict_parse(eat, 1)) == 0 || bad) {
		codec_cmd_args_free(av, n);
		peer_reply_error(c, cmd->id, "invalid_argument",
		    "need \"hook\", \"eat\" (none, "
		    "client, plugin, all or tempfail) and optional array \"args\"");
		return;
	}
	if (hook_verdict(c, (uint64_t)hook, verdict, av, n, &code) != 0)
		peer_reply_error(c, cmd->id, code,
		    strcmp(code, "stale") == 0 ? "hook %lld is not pending (late or answered)" :
						 "hook %lld went to another controller",
		    hook);
	else
		peer_reply_ok(c, cmd->id, NULL);
	codec_cmd_args_free(av, n);
}

static const struct command_def commands[] = {
	{ "register", { "events" }, 0, command_register },
	{ "unregister", { "events" }, 1, command_unregister },
	{ "send_to_client", { "client", "text", "text_b64", "lines", "lines_b64", "more", "tag" },
	    1, command_send_to_client },
	{ "send_file", { "client", "path", "status", "top_lines", "tag" }, 1, command_send_file },
	{ "disconnect", { "client", "text" }, 1, command_disconnect },
	{ "shutdown", { NULL }, 0, command_shutdown },
	{ "send_event", { "event", "args" }, 0, command_send_event },
	{ "getsockname", { NULL }, 1, command_getsockname },
	{ "session_id", { NULL }, 1, command_session_id },
	{ "ping", { NULL }, 1, command_ping },
	{ "list_clients", { NULL }, 1, command_list_clients },
	{ "hello", { "name", "lossy", "group" }, 1, command_hello },
	{ "list_groups", { NULL }, 1, command_list_groups },
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

/* Run a decoded command (ctl->on_command): its row, its keys, then it. */
void
command_run(struct controller *c, struct codec_cmd *cmd)
{
	const struct command_def *d = NULL;
	const char *key;
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, cmd->name) == 0)
			d = &commands[i];
	if (d == NULL) {
		peer_reply_error(c, cmd->id, "unknown_command", "no such command: %.64s",
		    cmd->name);
		return;
	}
	if ((key = codec_cmd_unknown_key(cmd, d->keys, 8)) != NULL) {
		peer_reply_error(c, cmd->id, "invalid_argument", "%s: unknown key \"%.64s\"",
		    d->name, key);
		return;
	}
	if (c->ctl->shutting_down && !d->while_stopping) {
		peer_reply_error(c, cmd->id, "shutting_down", "pop3d is shutting down");
		return;
	}
	d->run(c, cmd);
}
