/* codec.c - the JSON of the control protocol: commands decoded; events, hooks, replies encoded. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "codec.h"

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t
codec_utf8_seq(const unsigned char *s, size_t len)
{
	unsigned c = s[0];
	size_t n, i;
	unsigned cp;

	if (c < 0x80)
		return c == 0 ? 0 : 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* Whether len octets at s are valid UTF-8 (no NUL). */
int
codec_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if ((n = codec_utf8_seq(p + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* A JSON string of raw bytes: as is when UTF-8, else U+FFFD for bad bytes. */
json_t *
codec_bytes(const char *s, size_t len, int *exact)
{
	const unsigned char *p = (const unsigned char *)s;
	char *buf;
	size_t i = 0, o = 0, n;
	json_t *j;

	if (codec_utf8_valid(s, len)) {
		if (exact != NULL)
			*exact = 1;
		return json_stringn(s, len);
	}
	if (exact != NULL)
		*exact = 0;
	if ((buf = malloc(3 * len + 1)) == NULL)
		return NULL;
	while (i < len) {
		if ((n = codec_utf8_seq(p + i, len - i)) == 0) {
			memcpy(buf + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		} else {
			memcpy(buf + o, p + i, n);
			o += n;
			i += n;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j;
}

/* Whether v is or holds, at any depth, a string with an embedded NUL. */
static int
codec_has_nul(json_t *v)
{
	json_t *x;
	const char *k;
	size_t i;

	if (json_is_string(v))
		return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) if (codec_has_nul(x)) return 1;
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, x) if (codec_has_nul(x)) return 1;
	}
	return 0;
}

/*
 * Decode one command line, strictly, in one place: invalid JSON or UTF-8
 * and duplicate keys are parse_error; a string with an embedded NUL is
 * rejected here, before any command sees it - in "cmd" invalid_request, in
 * any other member (except "id", copied back as is) invalid_argument.
 * Octets that may include NUL travel as base64 (the *_b64 keys).  So every
 * string a command reads is a C string whose strlen() is its length.
 */
const char *
codec_decode(const char *line, size_t len, struct codec_cmd *cmd, char *msg, size_t msglen)
{
	json_error_t err;
	const char *key;
	json_t *v;

	memset(cmd, 0, sizeof(*cmd));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	/* JSON_ALLOW_NUL: so that a NUL is answered below with the error the
	 * protocol gives it, carrying the command's id, not as parse_error. */
	cmd->root =
	    json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (cmd->root == NULL) {
		snprintf(msg, msglen, "invalid JSON at column %d: %s", err.column, err.text);
		return "parse_error";
	}
	if (!json_is_object(cmd->root)) {
		snprintf(msg, msglen, "a command is a JSON object");
		return "invalid_request";
	}
	cmd->id = json_object_get(cmd->root, "id");
	v = json_object_get(cmd->root, "cmd");
	if (v == NULL || !json_is_string(v) || codec_has_nul(v)) {
		snprintf(msg, msglen, "\"cmd\" must be a string");
		return "invalid_request";
	}
	json_object_foreach(cmd->root, key, v) if (strcmp(key, "id") != 0 && codec_has_nul(v))
	{
		snprintf(msg, msglen,
		    "\"%.64s\": NUL in a string (octets that may "
		    "include NUL go in a *_b64 key)",
		    key);
		return "invalid_argument";
	}
	cmd->name = json_string_value(json_object_get(cmd->root, "cmd"));
	return NULL;
}

/* Free a decoded command. */
void
codec_cmd_clear(struct codec_cmd *cmd)
{
	json_decref(cmd->root);
	memset(cmd, 0, sizeof(*cmd));
}

/* Compact text of obj (stolen) with a newline; NULL on failure. */
static char *
codec_dump(json_t *obj, size_t *len)
{
	char *s, *t;
	size_t n;

	if (obj == NULL)
		return NULL;
	s = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(obj);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	if ((t = realloc(s, n + 2)) == NULL) {
		free(s);
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	if (len != NULL)
		*len = n + 1;
	return t;
}

/* One argument as JSON; *b64 gets the exact bytes when not UTF-8. */
static json_t *
codec_arg(const struct pop3d_arg *a, json_t **b64)
{
	json_t *j;
	char *enc;
	int exact = 1;

	*b64 = NULL;
	switch (a->type) {
	case POP3D_ARG_INT:
		return json_integer(a->i);
	case POP3D_ARG_JSON:
		if (a->s != NULL && (j = json_loadb(a->s, a->len, JSON_DECODE_ANY, NULL)) != NULL)
			return j;
		return json_null();
	case POP3D_ARG_STR:
	default:
		if (a->s == NULL)
			return json_null();
		j = codec_bytes(a->s, a->len, &exact);
		if (!exact && (enc = base64_encode(a->s, a->len)) != NULL) {
			*b64 = json_string(enc);
			free(enc);
		}
		return j;
	}
}

/* The JSON object of an event (type "event"). */
static json_t *
codec_event_object(const struct pop3d_event *ev)
{
	json_t *o, *args, *b64s = NULL, *b;
	int i, lossy = 0;

	o = json_object();
	args = json_array();
	if (o == NULL || args == NULL) {
		json_decref(o);
		json_decref(args);
		return NULL;
	}
	json_object_set_new(o, "type", json_string("event"));
	json_object_set_new(o, "event", json_string(ev->name));
	json_object_set_new(o, "seq", json_integer((json_int_t)ev->seq));
	if (ev->client != 0) {
		json_object_set_new(o, "client", json_integer((json_int_t)ev->client));
		json_object_set_new(o, "state", json_string(pop3d_state_name(ev->state)));
		json_object_set_new(o, "tls", json_boolean(ev->tls));
	}
	if (ev->tag != 0)
		json_object_set_new(o, "tag", json_integer((json_int_t)ev->tag));
	if (ev->origin != 0)
		json_object_set_new(o, "origin", json_integer((json_int_t)ev->origin));
	if (ev->command != NULL)
		json_object_set_new(o, "command", json_string(ev->command));
	for (i = 0; i < ev->argc; i++) {
		json_array_append_new(args, codec_arg(&ev->argv[i], &b));
		if (b != NULL) {
			if (b64s == NULL) {
				int k;

				b64s = json_array();
				for (k = 0; k < i; k++)
					json_array_append_new(b64s, json_null());
			}
			lossy = 1;
			json_array_append_new(b64s, b);
		} else if (b64s != NULL)
			json_array_append_new(b64s, json_null());
	}
	json_object_set_new(o, "args", args);
	if (lossy)
		json_object_set_new(o, "args_b64", b64s);
	return o;
}

/* The JSON object of a hook message: the event with type "hook" and the
 * hook, plugin and plugin_type fields. */
static json_t *
codec_hook_object(const struct pop3d_event *ev, const char *plugin)
{
	json_t *o = codec_event_object(ev);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "type", json_string("hook"));
	json_object_set_new(o, "hook", json_integer((json_int_t)ev->hook));
	json_object_set_new(o, "plugin", json_string(plugin));
	json_object_set_new(o, "plugin_type",
	    json_string(ev->type == POP3D_PLUGIN_POP3C ? "POP3C" : "POP3D"));
	return o;
}

/* codec_event() the old way, through a jansson tree: the reference. */
char *
codec_event_ref(const struct pop3d_event *ev, size_t *len)
{
	return codec_dump(codec_event_object(ev), len);
}

/* codec_hook() the old way, through a jansson tree: the reference. */
char *
codec_hook_ref(const struct pop3d_event *ev, const char *plugin, size_t *len)
{
	return codec_dump(codec_hook_object(ev, plugin), len);
}

/*
 * The direct encoder.  It writes the text json_dumps(JSON_COMPACT) gives
 * for the tree above, byte for byte, into one buffer: keys in insertion
 * order, a key whose json_string() would fail (NULL or not UTF-8) left out,
 * '"', '\\' and \b \f \n \r \t escaped, other controls as \u00XX (upper
 * case hex), everything else (0x7F, UTF-8) as is, integers as %lld.
 */

/* A growing output buffer; err is set once an allocation failed and makes
 * every later append a no-op. */
struct codec_buf {
	char *p;
	size_t len;
	size_t cap;
	int err;
};

/* Room for n more octets and a NUL; 0, or -1 (and err) when out of memory. */
static int
codec_buf_reserve(struct codec_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->err)
		return -1;
	if (n < b->cap - b->len)
		return 0;
	if ((cap = b->cap) == 0)
		cap = n < 64 ? 64 : n + 1;
	while (n >= cap - b->len) {
		if (cap > SIZE_MAX / 2) {
			b->err = 1;
			return -1;
		}
		cap *= 2;
	}
	if ((p = realloc(b->p, cap)) == NULL) {
		b->err = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Append n octets. */
static void
codec_buf_add(struct codec_buf *b, const void *s, size_t n)
{
	if (codec_buf_reserve(b, n) == 0) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

/* Append a string literal. */
#define codec_buf_lit(b, s) codec_buf_add((b), (s), sizeof(s) - 1)

/* The finished text, NUL-terminated, and its length; NULL (the buffer
 * freed) when an append failed. */
static char *
codec_buf_finish(struct codec_buf *b, size_t *len)
{
	if (b->err) {
		free(b->p);
		return NULL;
	}
	b->p[b->len] = '\0';
	if (len != NULL)
		*len = b->len;
	return b->p;
}

/* Append an integer as %lld would write it. */
static void
codec_buf_int(struct codec_buf *b, long long v)
{
	char tmp[24], *t = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;

	do {
		*--t = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--t = '-';
	codec_buf_add(b, t, (size_t)(tmp + sizeof(tmp) - t));
}

/* Append raw bytes as a JSON string: the text codec_bytes() makes of them,
 * escaped as json_dumps() does.  Returns 1 when exact (valid UTF-8 without
 * NUL), 0 when bad bytes became U+FFFD. */
static int
codec_buf_str(struct codec_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF", short_of[] = "\"\\\b\f\n\r\t";
	const char *e;
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, start, n;
	unsigned c;
	int exact = 1;
	char esc[6];

	codec_buf_lit(b, "\"");
	while (i < len) {
		start = i;
		while (i < len) {
			c = p[i];
			if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
				i++;
			else if (c >= 0x80 && (n = codec_utf8_seq(p + i, len - i)) != 0)
				i += n;
			else
				break;
		}
		if (i > start)
			codec_buf_add(b, p + start, i - start);
		if (i == len)
			break;
		c = p[i++];
		if (c != 0 && (e = strchr(short_of, (int)c)) != NULL) {
			esc[0] = '\\'; /* \" \\ \b \f \n \r \t */
			esc[1] = "\"\\bfnrt"[e - short_of];
			codec_buf_add(b, esc, 2);
		} else if (c == 0 || c >= 0x80) {
			codec_buf_lit(b, "\xEF\xBF\xBD");
			exact = 0;
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			codec_buf_add(b, esc, sizeof(esc));
		}
	}
	codec_buf_lit(b, "\"");
	return exact;
}

/* Append ,"key":"value" (key given with its punctuation) for a C string,
 * or nothing when json_string(s) would fail: NULL or not UTF-8. */
static void
codec_buf_member_n(struct codec_buf *b, const char *key, size_t keylen, const char *s)
{
	size_t mark = b->len;

	if (s == NULL)
		return;
	codec_buf_add(b, key, keylen);
	if (!codec_buf_str(b, s, strlen(s)))
		b->len = mark;
}

/* codec_buf_member_n() with a literal key. */
#define codec_buf_member(b, key, s) codec_buf_member_n((b), (key), sizeof(key) - 1, (s))

/* Append one argument as codec_arg() would have it dumped; *lossy set when
 * it is a string that needs args_b64. */
static void
codec_buf_arg(struct codec_buf *b, const struct pop3d_arg *a, int *lossy)
{
	json_t *j;
	char *t;

	switch (a->type) {
	case POP3D_ARG_INT:
		codec_buf_int(b, a->i);
		break;
	case POP3D_ARG_JSON:
		if (a->s == NULL || (j = json_loadb(a->s, a->len, JSON_DECODE_ANY, NULL)) == NULL) {
			codec_buf_lit(b, "null");
			break;
		}
		t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(j);
		if (t == NULL) {
			b->err = 1;
			break;
		}
		codec_buf_add(b, t, strlen(t));
		free(t);
		break;
	case POP3D_ARG_STR:
	default:
		if (a->s == NULL)
			codec_buf_lit(b, "null");
		else if (!codec_buf_str(b, a->s, a->len))
			*lossy = 1;
		break;
	}
}

/* Append the args_b64 array: the exact bytes of every lossy string, null
 * for the other arguments. */
static void
codec_buf_b64s(struct codec_buf *b, const struct pop3d_event *ev)
{
	const struct pop3d_arg *a;
	size_t n;
	int i;

	codec_buf_lit(b, ",\"args_b64\":[");
	for (i = 0; i < ev->argc; i++) {
		a = &ev->argv[i];
		if (i > 0)
			codec_buf_lit(b, ",");
		if (a->type == POP3D_ARG_INT || a->type == POP3D_ARG_JSON || a->s == NULL ||
		    codec_utf8_valid(a->s, a->len)) {
			codec_buf_lit(b, "null");
			continue;
		}
		n = 4 * ((a->len + 2) / 3);
		if (codec_buf_reserve(b, n + 2) == -1)
			return;
		b->p[b->len++] = '"';
		b->len = (size_t)(base64_put(b->p + b->len, a->s, a->len) - b->p);
		b->p[b->len++] = '"';
	}
	codec_buf_lit(b, "]");
}

/* A guess at the length of the text, so that one allocation is enough
 * unless strings need much escaping. */
static size_t
codec_estimate(const struct pop3d_event *ev, const char *plugin, int hook)
{
	size_t n = 192;
	int i;

	if (ev->name != NULL)
		n += strlen(ev->name);
	if (ev->command != NULL)
		n += strlen(ev->command);
	if (hook)
		n += 64 + (plugin != NULL ? strlen(plugin) : 0);
	for (i = 0; i < ev->argc; i++)
		n += ev->argv[i].type == POP3D_ARG_INT ? 21 : ev->argv[i].len + 8;
	return n;
}

/* An event (plugin NULL) or a hook message as text ending in "\n". */
static char *
codec_encode(const struct pop3d_event *ev, const char *plugin, int hook, size_t *len)
{
	struct codec_buf b = { NULL, 0, 0, 0 };
	int i, lossy = 0;

	if (codec_buf_reserve(&b, codec_estimate(ev, plugin, hook)) == -1)
		return NULL;
	if (hook)
		codec_buf_lit(&b, "{\"type\":\"hook\"");
	else
		codec_buf_lit(&b, "{\"type\":\"event\"");
	codec_buf_member(&b, ",\"event\":", ev->name);
	codec_buf_lit(&b, ",\"seq\":");
	codec_buf_int(&b, (long long)ev->seq);
	if (ev->client != 0) {
		codec_buf_lit(&b, ",\"client\":");
		codec_buf_int(&b, (long long)ev->client);
		codec_buf_member(&b, ",\"state\":", pop3d_state_name(ev->state));
		if (ev->tls)
			codec_buf_lit(&b, ",\"tls\":true");
		else
			codec_buf_lit(&b, ",\"tls\":false");
	}
	if (ev->tag != 0) {
		codec_buf_lit(&b, ",\"tag\":");
		codec_buf_int(&b, (long long)ev->tag);
	}
	if (ev->origin != 0) {
		codec_buf_lit(&b, ",\"origin\":");
		codec_buf_int(&b, (long long)ev->origin);
	}
	codec_buf_member(&b, ",\"command\":", ev->command);
	codec_buf_lit(&b, ",\"args\":[");
	for (i = 0; i < ev->argc; i++) {
		if (i > 0)
			codec_buf_lit(&b, ",");
		codec_buf_arg(&b, &ev->argv[i], &lossy);
	}
	codec_buf_lit(&b, "]");
	if (lossy)
		codec_buf_b64s(&b, ev);
	if (hook) {
		codec_buf_lit(&b, ",\"hook\":");
		codec_buf_int(&b, (long long)ev->hook);
		codec_buf_member(&b, ",\"plugin\":", plugin);
		if (ev->type == POP3D_PLUGIN_POP3C)
			codec_buf_lit(&b, ",\"plugin_type\":\"POP3C\"");
		else
			codec_buf_lit(&b, ",\"plugin_type\":\"POP3D\"");
	}
	codec_buf_lit(&b, "}\n");
	return codec_buf_finish(&b, len);
}

/* An event as one line of JSON. */
char *
codec_event(const struct pop3d_event *ev, size_t *len)
{
	return codec_encode(ev, NULL, 0, len);
}

/* A hook message for a controller plugin as one line of JSON. */
char *
codec_hook(const struct pop3d_event *ev, const char *plugin, size_t *len)
{
	return codec_encode(ev, plugin, 1, len);
}

/*
 * The reply to nearly every command - no result, an id that is absent,
 * null, an integer or a NUL-free string - written directly: building and
 * dumping a jansson object was a quarter of pop3d's user time per
 * controller command.  The bytes are those of the general path below
 * (check_codec compares them).
 */
static char *
codec_reply_ok_fast(json_t *id, size_t *len)
{
	struct codec_buf b = { NULL, 0, 0, 0 };

	codec_buf_lit(&b, "{\"type\":\"reply\",\"id\":");
	if (id == NULL || json_is_null(id))
		codec_buf_lit(&b, "null");
	else if (json_is_integer(id))
		codec_buf_int(&b, (long long)json_integer_value(id));
	else
		(void)codec_buf_str(&b, json_string_value(id), json_string_length(id));
	codec_buf_lit(&b, ",\"ok\":true,\"result\":{}}\n");
	return codec_buf_finish(&b, len);
}

/* The ok reply to the command of that id; steals result. */
char *
codec_reply_ok(json_t *id, json_t *result, size_t *len)
{
	json_t *o;

	if (result == NULL &&
	    (id == NULL || json_is_null(id) || json_is_integer(id) ||
		(json_is_string(id) && strlen(json_string_value(id)) == json_string_length(id))))
		return codec_reply_ok_fast(id, len);
	o = json_object();

	if (o == NULL) {
		json_decref(result);
		return NULL;
	}
	json_object_set_new(o, "type", json_string("reply"));
	json_object_set(o, "id", id != NULL ? id : json_null());
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "result", result != NULL ? result : json_object());
	return codec_dump(o, len);
}

/* The error reply to the command of that id. */
char *
codec_reply_error(json_t *id, const char *code, const char *message, size_t *len)
{
	json_t *o = json_object(), *e = json_object();

	if (o == NULL || e == NULL) {
		json_decref(o);
		json_decref(e);
		return NULL;
	}
	json_object_set_new(e, "code", json_string(code));
	json_object_set_new(e, "message", codec_bytes(message, strlen(message), NULL));
	json_object_set_new(o, "type", json_string("reply"));
	json_object_set(o, "id", id != NULL ? id : json_null());
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error", e);
	return codec_dump(o, len);
}

/* The server's listeners as a JSON array (greeting, pop3d_registered,
 * getsockname). */
json_t *
codec_listeners(struct pop3d *srv)
{
	struct pop3d_sockname names[32];
	size_t n, i;
	json_t *a = json_array();

	n = pop3d_getsockname(srv, names, 32);
	for (i = 0; i < n && i < 32; i++)
		json_array_append_new(a,
		    json_pack("{s:s, s:i, s:b, s:b}", "address", names[i].address, "port",
			names[i].port, "tls", names[i].tls, "proxy", names[i].proxy));
	return a;
}

/* The names of the controller groups that exist (greeting). */
static json_t *
codec_group_names(struct group_set *gs)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; gs != NULL && i < gs->ngroups; i++)
		json_array_append_new(a, json_string(gs->groups[i]->name));
	return a;
}

/* The greeting line a controller receives on connection. */
char *
codec_greeting(struct pop3d *srv, const struct control_options *co, struct group_set *gs,
    uint64_t controller, size_t *len)
{
	const struct pop3d_options *o = pop3d_get_options(srv);

	return codec_dump(
	    json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:b, s:o, s:o, "
		      "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
		"type", "greeting", "protocol", 1, "server", "pop3d", "version", PACKAGE_VERSION,
		"alias", o->alias, "hostname", o->hostname, "pid", (json_int_t)getpid(),
		"session_id", pop3d_session_id(srv), "controller", (json_int_t)controller, "stls",
		pop3d_tls_available(srv), "listeners", codec_listeners(srv), "groups",
		codec_group_names(gs), "limits", "max_line", (json_int_t)o->max_line, "timeout",
		(json_int_t)o->timeout, "response_timeout", (json_int_t)o->response_timeout,
		"max_clients", (json_int_t)o->max_clients, "max_per_address",
		(json_int_t)o->max_per_address, "control_max_line", (json_int_t)co->max_line,
		"control_max_output", (json_int_t)co->max_output, "control_stall_seconds",
		(json_int_t)co->stall_seconds, "max_controllers", (json_int_t)co->max_controllers),
	    len);
}

/* ARG0 of pop3d_registered, describing the server: compact JSON text
 * (malloc'd, no newline), or NULL. */
char *
codec_registered(struct pop3d *srv)
{
	const struct pop3d_options *o = pop3d_get_options(srv);
	json_t *d;
	char *s;

	d = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "server", "pop3d", "alias", o->alias,
	    "hostname", o->hostname, "session_id", pop3d_session_id(srv), "pid",
	    (json_int_t)getpid(), "listeners", codec_listeners(srv));
	if (d == NULL)
		return NULL;
	s = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	return s;
}
