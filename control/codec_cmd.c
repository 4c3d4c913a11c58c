/* codec_cmd.c - the JSON of one command: its typed arguments, and the results it replies with. */
/*
 * command.c reads a decoded command only through these accessors and
 * builds its results only through these constructors, so no jansson call
 * is made outside the codec.  Strings are C strings: codec_decode()
 * refused any with an embedded NUL.  A json_t handed back (an id, a
 * result) is opaque to the caller, passed on to peer_reply_ok().
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "codec.h"

/* Whether the command has that key. */
int
codec_cmd_has(const struct codec_cmd *cmd, const char *key)
{
	return json_object_get(cmd->root, key) != NULL;
}

/* The first key neither "cmd", "id" nor one of keys[0..n) (stopping at a
 * NULL), or NULL when there is none. */
const char *
codec_cmd_unknown_key(const struct codec_cmd *cmd, const char *const *keys, size_t n)
{
	const char *key;
	json_t *v;
	size_t k;

	json_object_foreach(cmd->root, key, v)
	{
		if (strcmp(key, "cmd") == 0 || strcmp(key, "id") == 0)
			continue;
		for (k = 0; k < n && keys[k] != NULL; k++)
			if (strcmp(keys[k], key) == 0)
				break;
		if (k == n || keys[k] == NULL)
			return key;
	}
	return NULL;
}

/* A positive integer key; 0 when absent (if optional), -1 when invalid. */
long long
codec_cmd_uint(const struct codec_cmd *cmd, const char *key, int required)
{
	json_t *v = json_object_get(cmd->root, key);

	if (v == NULL)
		return required ? -1 : 0;
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return -1;
	return json_integer_value(v);
}

/* An integer key in [min, max] into *out: 1, 0 when absent, -1 when not
 * an integer or out of range. */
int
codec_cmd_int(const struct codec_cmd *cmd, const char *key, long long min, long long max,
    long long *out)
{
	json_t *v = json_object_get(cmd->root, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return -1;
	*out = json_integer_value(v);
	return 1;
}

/* A string key into *s (borrowed) and *len: 1, 0 when absent, -1 when not
 * a string. */
int
codec_cmd_str(const struct codec_cmd *cmd, const char *key, const char **s, size_t *len)
{
	json_t *v = json_object_get(cmd->root, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -1;
	*s = json_string_value(v);
	if (len != NULL)
		*len = json_string_length(v);
	return 1;
}

/* A boolean key into *b: 1, 0 when absent, -1 when not a boolean. */
int
codec_cmd_bool(const struct codec_cmd *cmd, const char *key, int *b)
{
	json_t *v = json_object_get(cmd->root, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return -1;
	*b = json_is_true(v);
	return 1;
}

/* The size of an array key, or -1 when absent or not an array. */
long
codec_cmd_count(const struct codec_cmd *cmd, const char *key)
{
	json_t *v = json_object_get(cmd->root, key);

	return json_is_array(v) ? (long)json_array_size(v) : -1;
}

/* An array of at most max strings -> a malloc'd, NULL-terminated vector
 * of borrowed pointers and its size; NULL when absent or invalid. */
const char **
codec_cmd_strings(const struct codec_cmd *cmd, const char *key, size_t max, size_t *n)
{
	json_t *arr = json_object_get(cmd->root, key);
	const char **v;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) > max)
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

/* One line from a string given as text or base64 text: malloc'd,
 * NUL-terminated, its length in *len; NULL when not a string or bad
 * base64. */
static char *
codec_cmd_line_of(json_t *v, int b64, size_t *len)
{
	char *out;
	long n;

	if (!json_is_string(v))
		return NULL;
	if (!b64) {
		*len = json_string_length(v);
		if ((out = malloc(*len + 1)) != NULL)
			memcpy(out, json_string_value(v), *len + 1);
		return out;
	}
	if ((n = base64_decode(json_string_value(v), json_string_length(v), &out)) < 0)
		return NULL;
	*len = (size_t)n;
	return out;
}

/* The line a string key holds (b64: in base64); see codec_cmd_line_of(). */
char *
codec_cmd_line(const struct codec_cmd *cmd, const char *key, int b64, size_t *len)
{
	return codec_cmd_line_of(json_object_get(cmd->root, key), b64, len);
}

/* Item i of an array key of lines; see codec_cmd_line_of(). */
char *
codec_cmd_line_at(const struct codec_cmd *cmd, const char *key, size_t i, int b64, size_t *len)
{
	return codec_cmd_line_of(json_array_get(json_object_get(cmd->root, key), i), b64, len);
}

/* An array key of event arguments (at most 64): integers and strings as
 * such, any other value as its JSON text.  *argc gets the count; NULL
 * when absent (*bad 0) or invalid (*bad 1). */
struct pop3d_arg *
codec_cmd_args(const struct codec_cmd *cmd, const char *key, int *argc, int *bad)
{
	json_t *arr = json_object_get(cmd->root, key);
	struct pop3d_arg *av;
	size_t i, n;

	*argc = 0;
	*bad = arr != NULL;
	if (!json_is_array(arr) || (n = json_array_size(arr)) > 64)
		return NULL;
	if ((av = calloc(n + 1, sizeof(*av))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		json_t *a = json_array_get(arr, i);

		if (json_is_integer(a)) {
			av[i].type = POP3D_ARG_INT;
			av[i].i = json_integer_value(a);
			continue;
		}
		if (json_is_string(a)) {
			av[i].type = POP3D_ARG_STR;
			av[i].len = json_string_length(a);
			if ((av[i].s = malloc(av[i].len + 1)) != NULL)
				memcpy(av[i].s, json_string_value(a), av[i].len + 1);
		} else {
			av[i].type = POP3D_ARG_JSON;
			av[i].s = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
			av[i].len = av[i].s != NULL ? strlen(av[i].s) : 0;
		}
		if (av[i].s == NULL) {
			codec_cmd_args_free(av, (int)n);
			return NULL;
		}
	}
	*argc = (int)n;
	*bad = 0;
	return av;
}

/* Free what codec_cmd_args() made. */
void
codec_cmd_args_free(struct pop3d_arg *av, int argc)
{
	int i;

	if (av == NULL)
		return;
	for (i = 0; i < argc; i++)
		free(av[i].s);
	free(av);
}

/* A JSON array of event patterns, "*" shown as "all". */
static json_t *
codec_cmd_patterns(const char *const *pat, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(strcmp(pat[i], "*") == 0 ? "all" : pat[i]));
	return a;
}

/* {"key": v} for an integer. */
json_t *
codec_cmd_result_int(const char *key, long long v)
{
	return json_pack("{s:I}", key, (json_int_t)v);
}

/* {"key": s} for a string. */
json_t *
codec_cmd_result_str(const char *key, const char *s)
{
	return json_pack("{s:s}", key, s);
}

/* {"events": [...]}: a consumer's patterns. */
json_t *
codec_cmd_result_events(const char *const *pat, size_t n)
{
	return json_pack("{s:o}", "events", codec_cmd_patterns(pat, n));
}

/* {"listeners": [...]}. */
json_t *
codec_cmd_result_listeners(struct pop3d *srv)
{
	return json_pack("{s:o}", "listeners", codec_listeners(srv));
}

/* What codec_cmd_client_row needs. */
struct codec_cmd_rows {
	json_t *rows;
	struct group_set *gs;
};

/* One row of list_clients (a pop3d_clients() callback), with the member
 * the client is bound to in each group. */
static int
codec_cmd_client_row(const struct pop3d_client_info *ci, void *arg)
{
	struct codec_cmd_rows *r = arg;
	json_t *groups = json_object(), *row;
	uint64_t m;
	size_t i;

	for (i = 0; r->gs != NULL && i < r->gs->ngroups; i++)
		if ((m = group_bound(r->gs->groups[i], ci->id)) != 0)
			json_object_set_new(groups, r->gs->groups[i]->name,
			    json_integer((json_int_t)m));
	row = json_pack("{s:I, s:s, s:i, s:s, s:i, s:s, s:b, s:I, s:I, s:I}", "client",
	    (json_int_t)ci->id, "peer", ci->peer, "peer_port", ci->peer_port, "local", ci->local,
	    "local_port", ci->local_port, "state", pop3d_state_name(ci->state), "tls", ci->tls,
	    "connected", (json_int_t)ci->connected, "idle", (json_int_t)ci->idle, "tag",
	    (json_int_t)ci->tag);
	if (row != NULL)
		json_object_set(row, "groups", groups);
	json_decref(groups);
	json_array_append_new(r->rows, row);
	return 0;
}

/* {"clients": [...]}: every client of srv; gs may be NULL. */
json_t *
codec_cmd_result_clients(struct pop3d *srv, struct group_set *gs)
{
	struct codec_cmd_rows r = { json_array(), gs };

	pop3d_clients(srv, codec_cmd_client_row, &r);
	return json_pack("{s:o}", "clients", r.rows);
}

/* {"groups": [{"name", "members": [{controller, name, clients}], "plugins"}]};
 * palias[i] is a plugin of group pgroup[i]. */
json_t *
codec_cmd_result_groups(struct group_set *gs, const char *const *palias, const char *const *pgroup,
    size_t np)
{
	json_t *a = json_array(), *members, *plugins;
	struct group_entry *g;
	size_t i, k;

	for (i = 0; i < gs->ngroups; i++) {
		g = gs->groups[i];
		members = json_array();
		plugins = json_array();
		for (k = 0; k < g->nmembers; k++)
			json_array_append_new(members,
			    json_pack("{s:I, s:s, s:I}", "controller",
				(json_int_t)g->members[k].controller, "name", g->members[k].name,
				"clients", (json_int_t)g->members[k].nbound));
		for (k = 0; k < np; k++)
			if (strcmp(pgroup[k], g->name) == 0)
				json_array_append_new(plugins, json_string(palias[k]));
		json_array_append_new(a,
		    json_pack("{s:s, s:o, s:o}", "name", g->name, "members", members, "plugins",
			plugins));
	}
	return json_pack("{s:o}", "groups", a);
}

/* The result of hello; group NULL when it is in none. */
json_t *
codec_cmd_result_hello(uint64_t controller, const char *name, int lossy, const char *group)
{
	json_t *o = json_pack("{s:I, s:s, s:b}", "controller", (json_int_t)controller, "name", name,
	    "lossy", lossy);

	if (o != NULL && group != NULL)
		json_object_set_new(o, "group", json_string(group));
	return o;
}

/* The result of plugin_add: the plugin count, and for a group member
 * whether it joined an existing plugin (joined -1: not a member). */
json_t *
codec_cmd_result_plugin_add(int n, int joined)
{
	json_t *o = json_pack("{s:i}", "plugins", n);

	if (o != NULL && joined >= 0)
		json_object_set_new(o, "joined", json_boolean(joined));
	return o;
}

/* One plugin as plugin_get, plugin_list and plugin_register show it. */
json_t *
codec_cmd_plugin(const struct codec_plugin *p)
{
	json_t *o, *types;

	types =
	    json_pack("{s:o, s:o}", "POP3D", codec_cmd_patterns(p->patterns[0], p->npatterns[0]),
		"POP3C", codec_cmd_patterns(p->patterns[1], p->npatterns[1]));
	o = json_pack("{s:s, s:i, s:o}", "alias", p->alias, "priority", p->priority, "events",
	    types);
	if (o == NULL)
		return NULL;
	if (p->has_controller) {
		json_object_set_new(o, "controller", json_integer((json_int_t)p->controller));
		json_object_set_new(o, "timeout_ms",
		    json_pack("{s:I, s:I}", "POP3D", (json_int_t)p->timeout_ms[0], "POP3C",
			(json_int_t)p->timeout_ms[1]));
		if (p->group != NULL)
			json_object_set_new(o, "group", json_string(p->group));
	} else
		json_object_set_new(o, "controller", json_null());
	return o;
}

/* {"plugins": [...]} of n results made by codec_cmd_plugin() (stolen). */
json_t *
codec_cmd_result_plugins(json_t **items, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, items[i]);
	return json_pack("{s:o}", "plugins", a);
}

/* {"plugins": [alias, ...]}. */
json_t *
codec_cmd_result_aliases(const char *const *aliases, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(aliases[i]));
	return json_pack("{s:o}", "plugins", a);
}
