/* check_mask.c - the masking rule and the escaper, table-driven. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "mask.h"
#include "suite.h"

/* A raw command line and how mask_line shows it (MASK_LOG). */
struct line_case {
	const char *name;
	const char *line;
	size_t len;  /* 0: strlen */
	size_t size; /* the buffer given; 0: 256 */
	const char *expect;
};

static const struct line_case line_cases[] = {
	{ "pass sp", "PASS s3cret", 0, 0, "PASS ****" },
	{ "pass tab", "PASS\ts3cret", 0, 0, "PASS ****" },
	{ "pass spaces", "PASS    s3cret", 0, 0, "PASS ****" },
	{ "pass vt ff", "PASS\v\fs3cret", 0, 0, "PASS ****" },
	{ "pass leading blanks", "  \t pass s3cret", 0, 0, "pass ****" },
	{ "pass mixed case", "pAsS\ts3cret", 0, 0, "pAsS ****" },
	{ "pass with spaces inside", "PASS my s3cret pw", 0, 0, "PASS ****" },
	{ "pass crlf", "PASS s3cret\r\n", 0, 0, "PASS ****" },
	{ "pass no argument", "PASS", 0, 0, "PASS" },
	{ "pass trailing blanks only", "PASS \t ", 0, 0, "PASS" },
	{ "apop sp", "APOP bob 0123456789abcdef", 0, 0, "APOP bob ****" },
	{ "apop tab", "APOP bob\t0123456789abcdef", 0, 0, "APOP bob ****" },
	{ "apop tab before user", "apop\tbob\t\tdigest", 0, 0, "apop bob ****" },
	{ "apop user only", "APOP bob", 0, 0, "APOP bob" },
	{ "auth mechanism only", "AUTH PLAIN", 0, 0, "AUTH PLAIN" },
	{ "auth mechanism tab", "AUTH\tPLAIN", 0, 0, "AUTH PLAIN" },
	{ "auth initial response sp", "AUTH PLAIN AGJvYgBzZWNyZXQ=", 0, 0, "AUTH PLAIN ****" },
	{ "auth initial response tab", "AUTH PLAIN\tAGJvYgBzZWNyZXQ=", 0, 0, "AUTH PLAIN ****" },
	{ "auth mixed case", "aUtH plain  =", 0, 0, "aUtH plain ****" },
	{ "auth no argument", "AUTH", 0, 0, "AUTH" },
	{ "user untouched", "USER bob", 0, 0, "USER bob" },
	{ "user tab", "USER\tbob", 0, 0, "USER bob" },
	{ "retr untouched", "RETR 1", 0, 0, "RETR 1" },
	{ "top two args kept", "TOP 1\t10", 0, 0, "TOP 1\\x0910" },
	{ "passx is not pass", "PASSX s3cret", 0, 0, "PASSX s3cret" },
	{ "pas is not pass", "PAS s3cret", 0, 0, "PAS s3cret" },
	{ "empty", "", 0, 0, "" },
	{ "blank", " \t ", 0, 0, "" },
	{ "quotes escaped", "USER \"a\\b\"", 0, 0, "USER \\x22a\\x5cb\\x22" },
	{ "escape in user", "USER \x1b[31mred", 0, 0, "USER \\x1b[31mred" },
	{ "escape in apop user", "APOP \x1b[2J s3cret", 0, 0, "APOP \\x1b[2J ****" },
	{ "8-bit escaped",
	    "USER b\xf6"
	    "b",
	    0, 0, "USER b\\xf6b" },
	{ "nul in user", "USER a\0b", 8, 0, "USER a\\x00b" },
	{ "long user cut", "USER abcdefghijklmnopqrstuvwxyz", 0, 16, "USER abcdefg..." },
	{ "long apop user cut, marker kept", "APOP abcdefghijklmnopqrstuvwxyz s3cret", 0, 20,
	    "APOP abcdef... ****" },
	{ "long pass, marker kept", "PASS abcdefghijklmnopqrstuvwxyz", 0, 10, "PASS ****" },
	{ "no room for the marker", "PASS abcdefghijklmnopqrstuvwxyz", 0, 8, "PASS " },
	{ "long verb cut, argument dropped", "PASSWORDPASSWORD s3cret", 0, 10, "PASSWO..." },
	{ "escape not split", "USER \x01\x02\x03\x04", 0, 16, "USER \\x01..." },
	{ "size one", "PASS s3cret", 0, 1, "" },
};

START_TEST(test_line)
{
	const struct line_case *lc = &line_cases[_i];
	char buf[256];
	size_t size = lc->size != 0 ? lc->size : sizeof(buf), len, n;

	memset(buf, 'Z', sizeof(buf));
	len = lc->len != 0 ? lc->len : strlen(lc->line);
	n = mask_line(buf, size, lc->line, len, MASK_LOG);
	ck_assert_msg(strcmp(buf, lc->expect) == 0, "%s: got \"%s\" want \"%s\"", lc->name, buf,
	    lc->expect);
	ck_assert_uint_eq(n, strlen(buf));
	ck_assert_uint_lt(n, size);
	/* Nothing written past the buffer given. */
	if (size < sizeof(buf))
		ck_assert_int_eq(buf[size], 'Z');
}
END_TEST

/* An event argument and how it is shown unescaped (mask_plain). */
struct event_case {
	const char *event;
	int index;
	const char *arg;
	const char *expect;
};

static const struct event_case event_cases[] = {
	{ "pop3d_cmd_pass", 1, "s3cret", "****" },
	{ "pop3d_cmd_pass", 1, "my s3cret", "****" },
	{ "pop3d_cmd_pass", 1, "", "" },
	{ "pop3d_cmd_apop", 1, "bob\t0123456789abcdef", "bob ****" },
	{ "pop3d_cmd_apop", 1, "bob 0123456789abcdef", "bob ****" },
	{ "pop3d_cmd_apop", 1, "bob", "bob" },
	{ "pop3d_cmd_auth", 1, "PLAIN\tAGJvYgBzZWNyZXQ=", "PLAIN ****" },
	{ "pop3d_cmd_auth", 1, "PLAIN  AGJvYgBzZWNyZXQ=", "PLAIN ****" },
	{ "pop3d_cmd_auth", 1, "PLAIN", "PLAIN" },
	{ "pop3d_cmd_auth", 2, "more", "****" },
	{ "pop3d_cmd_auth", 0, "client", "client" },
	{ "pop3d_auth_data", 1, "AGJvYgBzZWNyZXQ=", "****" },
	{ "pop3d_auth_data", 1, "*", "****" },
	{ "pop3d_cmd_user", 1, "bob s3cret", "bob s3cret" },
	{ "pop3d_cmd_password", 1, "s3cret", "s3cret" },
	{ "pop3d_x_pass", 1, "s3cret", "s3cret" },
	{ "pop3d_connection", 1, "127.0.0.1", "127.0.0.1" },
};

START_TEST(test_event)
{
	const struct event_case *ec = &event_cases[_i];
	char buf[64];
	int rule = mask_event_arg(ec->event, ec->index);

	mask_plain(buf, sizeof(buf), rule, ec->arg, strlen(ec->arg));
	ck_assert_msg(strcmp(buf, ec->expect) == 0, "%s[%d] \"%s\": got \"%s\" want \"%s\"",
	    ec->event, ec->index, ec->arg, buf, ec->expect);
}
END_TEST

START_TEST(test_verbs)
{
	ck_assert_int_eq(mask_verb_secret("pass", 4), MASK_ALL);
	ck_assert_int_eq(mask_verb_secret("PaSs", 4), MASK_ALL);
	ck_assert_int_eq(mask_verb_secret("APOP", 4), MASK_WORD);
	ck_assert_int_eq(mask_verb_secret("auth", 4), MASK_WORD);
	ck_assert_int_eq(mask_verb_secret("passx", 4), MASK_ALL); /* len decides */
	ck_assert_int_eq(mask_verb_secret("passx", 5), MASK_NONE);
	ck_assert_int_eq(mask_verb_secret("user", 4), MASK_NONE);
	ck_assert_int_eq(mask_verb_secret("", 0), MASK_NONE);
	ck_assert_int_eq(mask_verb_secret(NULL, 4), MASK_NONE);
	ck_assert_int_eq(mask_event_secret("pop3d_cmd_pass"), MASK_ALL);
	ck_assert_int_eq(mask_event_secret("pop3d_cmd_auth"), MASK_WORD);
	ck_assert_int_eq(mask_event_secret("pop3d_auth_data"), MASK_ALL);
	ck_assert_int_eq(mask_event_secret("pop3d_cmd_"), MASK_NONE);
	ck_assert_int_eq(mask_event_secret(NULL), MASK_NONE);
}
END_TEST

/* Octets escaped in a style. */
struct escape_case {
	const char *name;
	int style;
	const char *in;
	size_t len; /* 0: strlen */
	const char *expect;
};

static const struct escape_case escape_cases[] = {
	{ "log plain", MASK_LOG, "abc XYZ ~", 0, "abc XYZ ~" },
	{ "log quote backslash", MASK_LOG, "a\"b\\c", 0, "a\\x22b\\x5cc" },
	{ "log controls", MASK_LOG, "\x1b[1m\t\r\n\x7f", 0, "\\x1b[1m\\x09\\x0d\\x0a\\x7f" },
	{ "log 8-bit", MASK_LOG, "\xc3\xa9\xff", 0, "\\xc3\\xa9\\xff" },
	{ "log nul", MASK_LOG, "a\0b", 3, "a\\x00b" },
	{ "quoted", MASK_QUOTED, "a\"b\\c\x1b", 0, "a\\\"b\\\\c\\x1b" },
	{ "quoted utf-8 kept", MASK_QUOTED, "b\xc3\xa9", 0, "b\xc3\xa9" },
	{ "quoted latin-1 kept", MASK_QUOTED,
	    "b\xf6"
	    "b",
	    0,
	    "b\xf6"
	    "b" },
	{ "quoted c1 csi", MASK_QUOTED,
	    "\xc2\x9b"
	    "2J",
	    0, "\\xc2\\x9b2J" },
	{ "quoted nbsp kept", MASK_QUOTED, "\xc2\xa0", 0, "\xc2\xa0" },
	{ "quoted c2 at end", MASK_QUOTED, "a\xc2", 0, "a\xc2" },
	{ "text short forms", MASK_TEXT, "a\tb\nc\\d\re", 0, "a\\tb\\nc\\\\d\\re" },
	{ "text nul", MASK_TEXT, "a\0b", 3, "a\\0b" },
	{ "text esc", MASK_TEXT, "\x1b[31mred\x1b[0m", 0, "\\x1b[31mred\\x1b[0m" },
	{ "text bel del", MASK_TEXT, "\a\x7f", 0, "\\x07\\x7f" },
	{ "text quote kept", MASK_TEXT, "\"q\"", 0, "\"q\"" },
	{ "text 8-bit kept", MASK_TEXT,
	    "b\xf6"
	    "b",
	    0,
	    "b\xf6"
	    "b" },
	{ "text c1 escaped", MASK_TEXT, "x\xc2\x85y", 0, "x\\xc2\\x85y" },
};

START_TEST(test_escape)
{
	const struct escape_case *xc = &escape_cases[_i];
	char buf[128];
	size_t len = xc->len != 0 ? xc->len : strlen(xc->in);

	ck_assert_uint_eq(mask_escape(buf, sizeof(buf), xc->in, len, xc->style), len);
	ck_assert_msg(strcmp(buf, xc->expect) == 0, "%s: got \"%s\" want \"%s\"", xc->name, buf,
	    xc->expect);
}
END_TEST

/* Bounded output: what is used is reported, an escape is never split, and
 * chunks written one after the other give the whole. */
START_TEST(test_escape_bounds)
{
	static const char in[] = "ab\x1b\x1b"
				 "cd";
	char buf[16], whole[64] = "";
	size_t used, off;

	ck_assert_uint_eq(mask_escape(buf, 0, in, 6, MASK_LOG), 0);
	ck_assert_uint_eq(mask_escape(buf, 1, in, 6, MASK_LOG), 0);
	ck_assert_str_eq(buf, "");
	ck_assert_uint_eq(mask_escape(buf, 6, in, 6, MASK_LOG), 2);
	ck_assert_str_eq(buf, "ab");
	ck_assert_uint_eq(mask_escape(buf, 7, in, 6, MASK_LOG), 3);
	ck_assert_str_eq(buf, "ab\\x1b");
	ck_assert_uint_eq(mask_escape(buf, 5, in, 6, MASK_LOG | MASK_CUT), 1);
	ck_assert_str_eq(buf, "a...");
	ck_assert_uint_eq(mask_escape(buf, 7, in, 6, MASK_LOG | MASK_CUT), 2);
	ck_assert_str_eq(buf, "ab...");
	ck_assert_uint_eq(mask_escape(buf, 10, in, 6, MASK_LOG | MASK_CUT), 3);
	ck_assert_str_eq(buf, "ab\\x1b...");
	/* The UTF-8 C1 pair is one unit. */
	ck_assert_uint_eq(mask_escape(buf, 8, "\xc2\x9b", 2, MASK_TEXT), 0);
	ck_assert_uint_eq(mask_escape(buf, 9, "\xc2\x9b", 2, MASK_TEXT), 2);
	for (off = 0; off < 6; off += used) {
		used = mask_escape(buf, 6, in + off, 6 - off, MASK_TEXT);
		ck_assert_uint_gt(used, 0);
		strcat(whole, buf);
	}
	ck_assert_str_eq(whole, "ab\\x1b\\x1bcd");
}
END_TEST

/* mask_arg and mask_plain keep the marker whatever the size. */
START_TEST(test_arg_bounds)
{
	char buf[32];
	size_t size;

	for (size = 0; size <= sizeof(buf); size++) {
		memset(buf, 'Z', sizeof(buf));
		mask_arg(buf, size, MASK_WORD, "mechanism-name\ts3cret", 21, MASK_LOG);
		if (size > 0) {
			ck_assert_uint_lt(strlen(buf), size);
			ck_assert_ptr_null(strstr(buf, "s3cret"));
			if (size > 5)
				ck_assert_ptr_nonnull(strstr(buf, " ****"));
		}
		if (size < sizeof(buf))
			ck_assert_int_eq(buf[size], 'Z');
		memset(buf, 'Z', sizeof(buf));
		mask_plain(buf, size, MASK_ALL, "s3cret", 6);
		if (size > 4)
			ck_assert_str_eq(buf, "****");
		if (size < sizeof(buf))
			ck_assert_int_eq(buf[size], 'Z');
	}
	mask_arg(buf, sizeof(buf), MASK_NONE, "a\tb", 3, MASK_TEXT);
	ck_assert_str_eq(buf, "a\\tb");
	mask_plain(buf, sizeof(buf), MASK_WORD, "bob\tdigest", 10);
	ck_assert_str_eq(buf, "bob ****");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("mask");
	TCase *tc = tcase_create("mask");

	tcase_add_loop_test(tc, test_line, 0, sizeof(line_cases) / sizeof(line_cases[0]));
	tcase_add_loop_test(tc, test_event, 0, sizeof(event_cases) / sizeof(event_cases[0]));
	tcase_add_test(tc, test_verbs);
	tcase_add_loop_test(tc, test_escape, 0, sizeof(escape_cases) / sizeof(escape_cases[0]));
	tcase_add_test(tc, test_escape_bounds);
	tcase_add_test(tc, test_arg_bounds);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
