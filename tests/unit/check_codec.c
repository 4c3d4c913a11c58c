/* check_codec.c - JSON codec: event shapes, lossless bytes, base64, decode. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

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
	n = codec_b64_decode(json_string_value(json_array_get(b, 1)),
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
	{ "plain", 1 }, { "w\xc3\xb6rd", 1 }, { "\xe2\x82\xac", 1 }, { "\xf0\x9f\x98\x80", 1 },
	{ "\xff", 0 }, { "\xc3", 0 }, { "\xc0\xaf", 0 }, { "\xed\xa0\x80", 0 },
	{ "\xf4\x90\x80\x80", 0 }, { "\xe0\x80\xaf", 0 },
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
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
	    "Zm9vYmFy" };
	size_t i;
	char *s;

	for (i = 0; i < 7; i++) {
		s = codec_b64_encode(plain[i], strlen(plain[i]));
		ck_assert_str_eq(s, enc[i]);
		free(s);
		ck_assert_int_eq(codec_b64_decode(enc[i], strlen(enc[i]), &s), (long)strlen(plain[i]));
		ck_assert_str_eq(s, plain[i]);
		free(s);
	}
	ck_assert_int_eq(codec_b64_decode("Zm9", 3, &s), -1);
	ck_assert_int_eq(codec_b64_decode("Zm!v", 4, &s), -1);
	ck_assert_int_eq(codec_b64_decode("Zh==", 4, &s), -1);
}
END_TEST

struct decode_case {
	const char *line;
	const char *code;	/* NULL: decodes */
	const char *name;
	const char *id;		/* expected id, JSON text; NULL: absent */
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
};

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

int
main(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, test_event_shapes);
	tcase_add_test(tc, test_invalid_utf8);
	tcase_add_loop_test(tc, test_utf8, 0, sizeof(utf8_cases) / sizeof(utf8_cases[0]));
	tcase_add_test(tc, test_b64);
	tcase_add_loop_test(tc, test_decode, 0, sizeof(decode_cases) / sizeof(decode_cases[0]));
	tcase_add_test(tc, test_replies);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
