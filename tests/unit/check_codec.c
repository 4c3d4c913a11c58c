/* check_codec.c - JSON codec: event shapes, lossless bytes, base64, decode. */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "codec.h"
#include "suite.h"

static json_t *
event_json(const struct pop3d_event *ev)
{
	size_t len;
	char *s = codec_event(ev, &len);
	json_t *j;

	ck_assert_ptr_nonnull(s);
	ck_assert(len > 0 && s[len - 1] == '\n');
	ck_assert_ptr_null(memchr(s, '\n', len - 1));
	j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
	ck_assert_ptr_nonnull(j);
	free(s);
	return j;
}

static struct pop3d_arg
arg_int(long long v)
{
	struct pop3d_arg a = { POP3D_ARG_INT, v, NULL, 0 };
	return a;
}

static struct pop3d_arg
arg_str(const char *s, size_t len)
{
	struct pop3d_arg a = { POP3D_ARG_STR, 0, (char *)s, len };
	return a;
}

/* Every event shape the core emits, with the seed's argument positions. */
START_TEST(test_event_shapes)
{
	struct pop3d_arg conn[5] = { arg_int(7), arg_str("127.0.0.1", 9), arg_int(40000),
		arg_str("127.0.0.1", 9), arg_int(110) };
	struct pop3d_arg cmd[2] = { arg_int(7), arg_str("bob", 3) };
	struct pop3d_arg fail[3] = { arg_str("accept", 6), arg_int(24),
		arg_str("Too many open files", 19) };
	struct pop3d_event ev;
	json_t *j;

	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_connection";
	ev.seq = 1;
	ev.client = 7;
	ev.argc = 5;
	ev.argv = conn;
	j = event_json(&ev);
	ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "event");
	ck_assert_str_eq(json_string_value(json_object_get(j, "event")), "pop3d_connection");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "client")), 7);
	ck_assert_int_eq(json_array_size(json_object_get(j, "args")), 5);
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(j, "args"), 2)), 40000);
	ck_assert(json_is_false(json_object_get(j, "tls")));
	ck_assert_ptr_null(json_object_get(j, "tag"));
	ck_assert_ptr_null(json_object_get(j, "args_b64"));
	json_decref(j);

	ev.name = "pop3d_cmd_user";
	ev.seq = 2;
	ev.tag = 3;
	ev.state = POP3D_STATE_TRANSACTION;
	ev.argc = 2;
	ev.argv = cmd;
	j = event_json(&ev);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "tag")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "transaction");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "args"), 1)), "bob");
	json_decref(j);

	ev.name = "pop3d_cmd_stat";
	ev.argc = 1;
	j = event_json(&ev);
	ck_assert_int_eq(json_array_size(json_object_get(j, "args")), 1);
	json_decref(j);

	ev.name = "pop3d_disconnected";
	ev.tag = 0;
	ev.argc = 1;
	j = event_json(&ev);
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(j, "args"), 0)), 7);
	json_decref(j);

	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_listener_failed";
	ev.argc = 3;
	ev.argv = fail;
	j = event_json(&ev);
	ck_assert_ptr_null(json_object_get(j, "client"));
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "args"), 0)),
	    "accept");
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(j, "args"), 1)), 24);
	json_decref(j);

	ev.name = "pop3d_x_custom";
	ev.origin = 4;
	ev.argc = 0;
	j = event_json(&ev);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "origin")), 4);
	json_decref(j);
}
END_TEST

/* Invalid UTF-8 becomes a readable string plus exact bytes in args_b64. */
START_TEST(test_invalid_utf8)
{
	static const char raw[] = "p\xe4ss\xff w\xc3\xb6rd";
	struct pop3d_arg cmd[2] = { arg_int(1), arg_str(raw, sizeof(raw) - 1) };
	struct pop3d_event ev;
	json_t *j, *b;
	char *bytes;
	long n;

	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_cmd_pass";
	ev.client = 1;
	ev.argc = 2;
	ev.argv = cmd;
	j = event_json(&ev);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "args"), 1)),
	    "p\xef\xbf\xbdss\xef\xbf\xbd w\xc3\xb6rd");
	b = json_object_get(j, "args_b64");
	ck_assert(json_is_array(b) && json_array_size(b) == 2);
	ck_assert(json_is_null(json_array_get(b, 0)));
	n = base64_decode(json_string_value(json_array_get(b, 1)),
	    json_string_length(json_array_get(b, 1)), &bytes);
	ck_assert_int_eq(n, (long)sizeof(raw) - 1);
	ck_assert(memcmp(bytes, raw, (size_t)n) == 0);
	free(bytes);
	json_decref(j);
}
END_TEST

struct utf8_case {
	const char *s;
	int valid;
};

static const struct utf8_case utf8_cases[] = {
	{ "plain", 1 },
	{ "w\xc3\xb6rd", 1 },
	{ "\xe2\x82\xac", 1 },
	{ "\xf0\x9f\x98\x80", 1 },
	{ "\xff", 0 },
	{ "\xc3", 0 },
	{ "\xc0\xaf", 0 },
	{ "\xed\xa0\x80", 0 },
	{ "\xf4\x90\x80\x80", 0 },
	{ "\xe0\x80\xaf", 0 },
};

START_TEST(test_utf8)
{
	ck_assert_int_eq(codec_utf8_valid(utf8_cases[_i].s, strlen(utf8_cases[_i].s)),
	    utf8_cases[_i].valid);
}
END_TEST

START_TEST(test_b64)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v",
		"Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	size_t i;
	char *s;

	for (i = 0; i < 7; i++) {
		s = base64_encode(plain[i], strlen(plain[i]));
		ck_assert_str_eq(s, enc[i]);
		free(s);
		ck_assert_int_eq(base64_decode(enc[i], strlen(enc[i]), &s), (long)strlen(plain[i]));
		ck_assert_str_eq(s, plain[i]);
		free(s);
	}
	ck_assert_int_eq(base64_decode("Zm9", 3, &s), -1);
	ck_assert_int_eq(base64_decode("Zm!v", 4, &s), -1);
	ck_assert_int_eq(base64_decode("Zh==", 4, &s), -1);
}
END_TEST

struct decode_case {
	const char *line;
	const char *code; /* NULL: decodes */
	const char *name;
	const char *id; /* expected id, JSON text; NULL: absent */
};

static const struct decode_case decode_cases[] = {
	{ "{\"cmd\":\"ping\"}", NULL, "ping", NULL },
	{ "{\"cmd\":\"ping\",\"id\":5}\r", NULL, "ping", "5" },
	{ "{\"cmd\":\"ping\",\"id\":\"a\"}", NULL, "ping", "\"a\"" },
	{ "{\"cmd\":\"ping\",\"id\":{\"x\":[1]}}", NULL, "ping", "{\"x\":[1]}" },
	{ "{\"cmd\":\"ping\",\"id\":null}", NULL, "ping", "null" },
	{ "{\"cmd\":\"ping\"", "parse_error", NULL, NULL },
	{ "nonsense", "parse_error", NULL, NULL },
	{ "{\"cmd\":\"a\",\"cmd\":\"b\"}", "parse_error", NULL, NULL },
	{ "[1,2]", "invalid_request", NULL, NULL },
	{ "42", "invalid_request", NULL, NULL },
	{ "{\"id\":3}", "invalid_request", NULL, "3" },
	{ "{\"cmd\":5,\"id\":3}", "invalid_request", NULL, "3" },
	{ "{\"cmd\":\"ping\"} {}", "parse_error", NULL, NULL },
	{ "{\"cmd\":\"\xff\"}", "parse_error", NULL, NULL },
	/* The NUL rule, decided here only: a NUL in "cmd" is invalid_request,
	 * anywhere else (at any depth) invalid_argument, both with the id;
	 * the id itself is copied back as is; a key with NUL is not JSON
	 * jansson accepts. */
	{ "{\"cmd\":\"pi\\u0000ng\",\"id\":3}", "invalid_request", NULL, "3" },
	{ "{\"cmd\":\"x\",\"text\":\"a\\u0000b\",\"id\":4}", "invalid_argument", NULL, "4" },
	{ "{\"cmd\":\"x\",\"l\":[\"a\",{\"k\":[\"\\u0000\"]}],\"id\":5}", "invalid_argument", NULL,
	    "5" },
	{ "{\"cmd\":\"ping\",\"id\":\"a\\u0000b\"}", NULL, "ping", "\"a\\u0000b\"" },
	{ "{\"cmd\":\"ping\",\"a\\u0000\":1}", "parse_error", NULL, NULL },
};

/* The NUL rule's message names the member. */
START_TEST(test_decode_nul_message)
{
	struct codec_cmd cmd;
	const char *line = "{\"cmd\":\"send_file\",\"status\":\"+OK\\u0000\"}";
	char msg[256];

	ck_assert_str_eq(codec_decode(line, strlen(line), &cmd, msg, sizeof(msg)),
	    "invalid_argument");
	ck_assert_ptr_nonnull(strstr(msg, "\"status\""));
	ck_assert_ptr_nonnull(strstr(msg, "NUL"));
	codec_cmd_clear(&cmd);
}
END_TEST

START_TEST(test_decode)
{
	const struct decode_case *dc = &decode_cases[_i];
	struct codec_cmd cmd;
	char msg[256];
	const char *code = codec_decode(dc->line, strlen(dc->line), &cmd, msg, sizeof(msg));

	if (dc->code == NULL) {
		ck_assert_msg(code == NULL, "%s: %s", dc->line, msg);
		ck_assert_str_eq(cmd.name, dc->name);
	} else {
		ck_assert_ptr_nonnull(code);
		ck_assert_str_eq(code, dc->code);
		ck_assert(msg[0] != '\0');
	}
	if (dc->id == NULL)
		ck_assert_ptr_null(cmd.id);
	else {
		char *s = json_dumps(cmd.id, JSON_COMPACT | JSON_ENCODE_ANY);

		ck_assert_str_eq(s, dc->id);
		free(s);
	}
	codec_cmd_clear(&cmd);
}
END_TEST

/* codec_reply_ok() writes the common replies directly: the same bytes as
 * jansson makes of the reply object, for every kind of id. */
START_TEST(test_reply_bytes)
{
	json_t *ids[] = {
		NULL,
		json_null(),
		json_integer(0),
		json_integer(-1),
		json_integer(LLONG_MAX),
		json_integer(LLONG_MIN),
		json_string(""),
		json_string("abc"),
		json_string("q\"b\\s/\n\t\x01\x1f\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
		json_stringn("a\0b", 3),
		json_real(1.5),
		json_true(),
		json_false(),
		json_pack("[i,s]", 1, "x"),
		json_pack("{s:i}", "k", 1),
	};
	size_t i, len;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		json_t *o = json_object();
		char *want, *got;

		json_object_set_new(o, "type", json_string("reply"));
		json_object_set(o, "id", ids[i] != NULL ? ids[i] : json_null());
		json_object_set_new(o, "ok", json_true());
		json_object_set_new(o, "result", json_object());
		want = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(o);
		got = codec_reply_ok(ids[i], NULL, &len);
		ck_assert_ptr_nonnull(want);
		ck_assert_ptr_nonnull(got);
		ck_assert_uint_eq(len, strlen(want) + 1);
		ck_assert_msg(strncmp(got, want, len - 1) == 0 && got[len - 1] == '\n' &&
			got[len] == '\0',
		    "id %zu: got %s want %s", i, got, want);
		free(want);
		free(got);
		json_decref(ids[i]);
	}
}
END_TEST

START_TEST(test_replies)
{
	json_t *id = json_string("x"), *j;
	size_t len;
	char *s;

	s = codec_reply_ok(id, json_pack("{s:i}", "n", 1), &len);
	j = json_loads(s, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "reply");
	ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "x");
	ck_assert(json_is_true(json_object_get(j, "ok")));
	json_decref(j);
	free(s);
	s = codec_reply_error(NULL, "stale", "old tag", &len);
	j = json_loads(s, 0, NULL);
	ck_assert(json_is_null(json_object_get(j, "id")));
	ck_assert(json_is_false(json_object_get(j, "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
	    "stale");
	json_decref(j);
	free(s);
	json_decref(id);
}
END_TEST

/*
 * codec_event() and codec_hook() write their text directly; the reference
 * encoders build a jansson tree and dump it.  Both must give the same bytes
 * for every event.
 */

/* One encoding compared with its reference: same bytes, same length. */
static void
same_text(const char *what, char *s, size_t len, char *ref, size_t reflen)
{
	ck_assert_msg(ref != NULL, "%s: reference failed", what);
	ck_assert_msg(s != NULL, "%s: encoder failed", what);
	ck_assert_msg(len == reflen && memcmp(s, ref, len) == 0,
	    "%s differs:\n  direct    %.*s\n  reference %.*s", what, (int)len, s, (int)reflen, ref);
	ck_assert(s[len] == '\0');
	ck_assert(len > 0 && s[len - 1] == '\n');
	free(s);
	free(ref);
}

/* ev (and ev as a hook of both plugin types) encoded both ways. */
static void
same_event(struct pop3d_event *ev, const char *plugin)
{
	size_t len = 0, reflen = 0;
	char *s, *ref;

	s = codec_event(ev, &len);
	ref = codec_event_ref(ev, &reflen);
	same_text("codec_event", s, len, ref, reflen);
	ev->type = POP3D_PLUGIN_POP3D;
	s = codec_hook(ev, plugin, &len);
	ref = codec_hook_ref(ev, plugin, &reflen);
	same_text("codec_hook POP3D", s, len, ref, reflen);
	ev->type = POP3D_PLUGIN_POP3C;
	s = codec_hook(ev, plugin, &len);
	ref = codec_hook_ref(ev, plugin, &reflen);
	same_text("codec_hook POP3C", s, len, ref, reflen);
}

struct bytes {
	const char *s;
	size_t len;
};

#define BYTES(lit) \
	{ \
		lit, sizeof(lit) - 1 \
	}

/* Strings: plain, escapes, UTF-8 of every length, and every kind of bad
 * UTF-8 (stray continuations, C0/C1 and other overlongs, surrogates, past
 * U+10FFFF, F5-FF, truncated sequences, NULs inside). */
static const struct bytes str_cases[] = {
	BYTES(""),
	BYTES("NOOP"),
	BYTES("1"),
	BYTES("say \"hi\""),
	BYTES("C:\\dir\\"),
	BYTES("\"\\\"\\"),
	BYTES("a/b</c>"),
	BYTES("\x7f"),
	BYTES("del\x7f"
	      "del"),
	BYTES("\b\f\n\r\t"),
	BYTES("line\r\n"),
	BYTES("\x01\x1f\x1b[0m"),
	BYTES("w\xc3\xb6rd"),
	BYTES("\xc2\x80\xdf\xbf"),
	BYTES("\xe2\x82\xac"),
	BYTES("\xe0\xa0\x80\xef\xbf\xbf"),
	BYTES("\xef\xbb\xbf"
	      "bom"),
	BYTES("\xef\xbf\xbd"),
	BYTES("\xf0\x9f\x98\x80"),
	BYTES("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"),
	BYTES("\xe2\x80\xa8\xe2\x80\xa9"),
	BYTES("\xc2\x85"),
	BYTES("\x80"),
	BYTES("\xbf"),
	BYTES("\x80\x80\x80"),
	BYTES("\xff"),
	BYTES("\xfe\xff"),
	BYTES("\xc0\x80"),
	BYTES("\xc0\xaf"),
	BYTES("\xc1\xbf"),
	BYTES("\xe0\x80\xaf"),
	BYTES("\xe0\x9f\xbf"),
	BYTES("\xf0\x80\x80\xaf"),
	BYTES("\xf0\x8f\xbf\xbf"),
	BYTES("\xed\xa0\x80"),
	BYTES("\xed\xbf\xbf"),
	BYTES("\xed\xa0\xbd\xed\xb8\x80"),
	BYTES("\xf4\x90\x80\x80"),
	BYTES("\xf5\x80\x80\x80"),
	BYTES("\xf8\x88\x80\x80\x80"),
	BYTES("\xfc\x84\x80\x80\x80\x80"),
	BYTES("\xc3"),
	BYTES("\xe2\x82"),
	BYTES("\xf0\x9f\x98"),
	BYTES("\xf0\x9f"),
	BYTES("ab\xe2\x82"),
	BYTES("\xe2\x82"
	      "ab"),
	BYTES("\xc3\x28"),
	BYTES("\xe2\x28\xa1"),
	BYTES("\xf0\x28\x8c\x28"),
	BYTES("p\xe4ss\xff w\xc3\xb6rd"),
	BYTES("\xff\"\\\n\x01"),
	BYTES("\0"),
	BYTES("a\0b"),
	BYTES("\0\0\xc3\xb6\0"),
	BYTES("\xe2\0\xac"),
	BYTES("tail\0"),
};

/* Every control character, each alone and in a string. */
START_TEST(test_encode_controls)
{
	struct pop3d_arg av[2];
	struct pop3d_event ev;
	char all[0x21], one[3];
	int c;

	for (c = 0; c < 0x20; c++)
		all[c] = (char)c;
	all[0x20] = 0x7f;
	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_cmd_x";
	ev.seq = 9;
	ev.client = 3;
	ev.argc = 2;
	ev.argv = av;
	av[0] = arg_str(all, sizeof(all));
	av[1] = arg_str(all + 1, sizeof(all) - 1);
	same_event(&ev, "p");
	for (c = 0; c < 0x80; c++) {
		one[0] = 'a';
		one[1] = (char)c;
		one[2] = '\0';
		av[0] = arg_str(one, 3);
		av[1] = arg_str(one + 1, 1);
		ev.command = c != 0 ? one : NULL;
		same_event(&ev, c != 0 ? one + 1 : "p");
	}
}
END_TEST

/* Each string as an argument (alone, among others, twice), as the event
 * name, the command and the plugin name when it has no NUL, and as JSON. */
START_TEST(test_encode_strings)
{
	const struct bytes *b = &str_cases[_i];
	struct pop3d_arg av[6];
	struct pop3d_event ev;
	char *cstr = NULL;

	if (memchr(b->s, '\0', b->len) == NULL)
		cstr = strndup(b->s, b->len);
	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_cmd_user";
	ev.seq = 12;
	ev.client = 5;
	ev.tag = 2;
	ev.argv = av;

	av[0] = arg_str(b->s, b->len);
	ev.argc = 1;
	same_event(&ev, "ctl");

	av[0] = arg_int(5);
	av[1] = arg_str(b->s, b->len);
	av[2] = arg_str("ok", 2);
	av[3] = arg_str(NULL, 0);
	av[4] = arg_str(b->s, b->len);
	av[5] = arg_int(-1);
	ev.argc = 6;
	same_event(&ev, "ctl");

	av[0].type = POP3D_ARG_JSON;
	av[0].s = (char *)b->s;
	av[0].len = b->len;
	ev.argc = 1;
	same_event(&ev, "ctl");

	if (cstr != NULL) {
		av[0] = arg_str("x", 1);
		ev.name = cstr;
		same_event(&ev, cstr);
		ev.name = "pop3d_response";
		ev.command = cstr;
		same_event(&ev, NULL);
		ev.client = 0;
		same_event(&ev, cstr);
	}
	free(cstr);
}
END_TEST

/* JSON arguments: dumped by jansson as before, null when not JSON. */
static const char *const json_cases[] = {
	"{}",
	"[]",
	"null",
	"true",
	"false",
	"0",
	"-0",
	"42",
	"-9223372036854775808",
	"9223372036854775807",
	"3.5",
	"-1.25e-7",
	"1e300",
	"1E+2",
	"2.0",
	"\"\"",
	"\"x\"",
	"  [1 , 2]  ",
	"{\"b\":1,\"a\":[true,null,{\"c\":\"d\"}]}",
	"[\"\\u0001\\u001f\\u007f\"]",
	"\"\\ud83d\\ude00\"",
	"\"\\u00e9\\/\\\"\\\\\"",
	"\"\xc3\xb6\"",
	"[[[[[[[[[[1]]]]]]]]]]",
	"",
	" ",
	"{",
	"[1,]",
	"{\"a\":1,\"a\":2}",
	"\"\\u0000\"",
	"\"\xff\"",
	"[1] [2]",
	"nul",
	"1e999",
	"99999999999999999999",
	"'x'",
	"\"\\ud800\"",
	"\"a\nb\"",
};

START_TEST(test_encode_json)
{
	struct pop3d_arg av[3];
	struct pop3d_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_x_json";
	ev.seq = 1;
	ev.origin = 2;
	ev.argc = 3;
	ev.argv = av;
	av[0].type = POP3D_ARG_JSON;
	av[0].i = 0;
	av[0].s = (char *)json_cases[_i];
	av[0].len = strlen(json_cases[_i]);
	av[1] = arg_str("\xff", 1);
	av[2] = av[0];
	same_event(&ev, "json");
	ev.argc = 1;
	same_event(&ev, "json");
}
END_TEST

/* The fields around the arguments, present and absent, with extreme
 * integers, unknown argument types, NULL strings and no arguments. */
START_TEST(test_encode_shapes)
{
	static const uint64_t ids[] = { 0, 1, 9, 10, 4096, (uint64_t)LLONG_MAX,
		(uint64_t)LLONG_MAX + 1, UINT64_MAX };
	static const long long ints[] = { 0, 1, -1, 9, 10, -10, 99, 100, LLONG_MAX, LLONG_MIN,
		LLONG_MIN + 1 };
	struct pop3d_arg av[16];
	struct pop3d_event ev;
	size_t i, k;
	int shape;

	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		av[i] = arg_int(ints[i]);
	av[i++] = arg_str(NULL, 0);
	av[i++] = arg_str(NULL, 5);
	av[i] = arg_str("weird type", 10);
	av[i++].type = (enum pop3d_arg_type)77;
	av[i].type = POP3D_ARG_JSON;
	av[i].s = NULL;
	av[i++].len = 0;
	av[i++] = arg_str("\xc3", 1);
	for (shape = 0; shape < 64; shape++)
		for (k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
			memset(&ev, 0, sizeof(ev));
			ev.name = (shape & 32) ? NULL : "pop3d_cmd_retr";
			ev.seq = ids[k];
			ev.client = (shape & 1) ? ids[(k + 1) % 8] : 0;
			ev.state =
			    (shape & 2) ? POP3D_STATE_TRANSACTION : POP3D_STATE_AUTHORIZATION;
			ev.tls = (shape & 4) ? 1 + (int)k : 0;
			ev.tag = (shape & 8) ? ids[(k + 2) % 8] : 0;
			ev.origin = (shape & 16) ? ids[(k + 3) % 8] : 0;
			ev.command = (shape & 2) ? "RETR" : NULL;
			ev.hook = ids[(k + 4) % 8];
			ev.argv = av;
			ev.argc = (int)((shape + k) % (i + 1));
			same_event(&ev, (shape & 4) ? "ctl" : NULL);
			ev.argc = (int)i;
			same_event(&ev, "ctl");
		}
}
END_TEST

/* Outputs past the first guess of the size: escapes, many arguments. */
START_TEST(test_encode_large)
{
	static struct pop3d_arg av[300];
	struct pop3d_event ev;
	char *big;
	size_t n = 100000, i;

	big = malloc(n);
	ck_assert_ptr_nonnull(big);
	for (i = 0; i < n; i++)
		big[i] = "\"\\\x01\xff\n\xc3\xb6"
			 "a"[i % 8];
	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_cmd_pass";
	ev.seq = 3;
	ev.argv = av;
	av[0] = arg_str(big, n);
	ev.argc = 1;
	same_event(&ev, "ctl");
	for (i = 0; i < 300; i++)
		av[i] = (i % 3 == 0) ? arg_int((long long)i * 1000003) :
				       arg_str(big + i, i % 3 == 1 ? 7 : 2);
	ev.argc = 300;
	same_event(&ev, "ctl");
	free(big);
}
END_TEST

/* The exact text of a few events, as controllers see it. */
START_TEST(test_encode_literal)
{
	struct pop3d_arg noop[1] = { arg_str("NOOP", 4) };
	struct pop3d_arg retr[2] = { arg_str("RETR", 4), arg_str("1", 1) };
	struct pop3d_arg odd[4] = { arg_int(-7), arg_str("a\"\\\x01\x1f\x7f\t", 7),
		arg_str("\xff\xc3\xb6", 3),
		{ POP3D_ARG_JSON, 0, (char *)"{\"k\": [1, 2.5]}", 15 } };
	struct pop3d_event ev;
	size_t len;
	char *s;

	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_cmd_noop";
	ev.seq = 1234;
	ev.client = 17;
	ev.state = POP3D_STATE_TRANSACTION;
	ev.tls = 1;
	ev.tag = 5;
	ev.command = "NOOP";
	ev.argc = 1;
	ev.argv = noop;
	s = codec_event(&ev, &len);
	ck_assert_str_eq(s,
	    "{\"type\":\"event\",\"event\":\"pop3d_cmd_noop\",\"seq\":1234,"
	    "\"client\":17,\"state\":\"transaction\",\"tls\":true,\"tag\":5,"
	    "\"command\":\"NOOP\",\"args\":[\"NOOP\"]}\n");
	ck_assert_uint_eq(len, strlen(s));
	free(s);

	ev.name = "pop3d_cmd_retr";
	ev.hook = 99;
	ev.command = NULL;
	ev.tls = 0;
	ev.argc = 2;
	ev.argv = retr;
	ev.type = POP3D_PLUGIN_POP3D;
	s = codec_hook(&ev, "filter", &len);
	ck_assert_str_eq(s,
	    "{\"type\":\"hook\",\"event\":\"pop3d_cmd_retr\",\"seq\":1234,"
	    "\"client\":17,\"state\":\"transaction\",\"tls\":false,\"tag\":5,"
	    "\"args\":[\"RETR\",\"1\"],\"hook\":99,\"plugin\":\"filter\","
	    "\"plugin_type\":\"POP3D\"}\n");
	ck_assert_uint_eq(len, strlen(s));
	free(s);

	memset(&ev, 0, sizeof(ev));
	ev.name = "pop3d_x";
	ev.seq = UINT64_MAX;
	ev.origin = 2;
	ev.argc = 4;
	ev.argv = odd;
	s = codec_event(&ev, &len);
	ck_assert_str_eq(s,
	    "{\"type\":\"event\",\"event\":\"pop3d_x\",\"seq\":-1,\"origin\":2,"
	    "\"args\":[-7,\"a\\\"\\\\\\u0001\\u001F\x7f\\t\",\"\xef\xbf\xbd\xc3\xb6\","
	    "{\"k\":[1,2.5]}],\"args_b64\":[null,null,\"/8O2\",null]}\n");
	ck_assert_uint_eq(len, strlen(s));
	free(s);

	ev.name = "bad\xff";
	ev.command = "\xc3";
	ev.argc = 0;
	ev.type = POP3D_PLUGIN_POP3C;
	s = codec_hook(&ev, "\xe2\x82", &len);
	ck_assert_str_eq(s,
	    "{\"type\":\"hook\",\"seq\":-1,\"origin\":2,\"args\":[],\"hook\":0,"
	    "\"plugin_type\":\"POP3C\"}\n");
	free(s);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, test_event_shapes);
	tcase_add_test(tc, test_invalid_utf8);
	tcase_add_loop_test(tc, test_utf8, 0, sizeof(utf8_cases) / sizeof(utf8_cases[0]));
	tcase_add_test(tc, test_b64);
	tcase_add_test(tc, test_decode_nul_message);
	tcase_add_loop_test(tc, test_decode, 0, sizeof(decode_cases) / sizeof(decode_cases[0]));
	tcase_add_test(tc, test_replies);
	tcase_add_test(tc, test_reply_bytes);
	tcase_add_test(tc, test_encode_controls);
	tcase_add_loop_test(tc, test_encode_strings, 0, sizeof(str_cases) / sizeof(str_cases[0]));
	tcase_add_loop_test(tc, test_encode_json, 0, sizeof(json_cases) / sizeof(json_cases[0]));
	tcase_add_test(tc, test_encode_shapes);
	tcase_add_test(tc, test_encode_large);
	tcase_add_test(tc, test_encode_literal);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
