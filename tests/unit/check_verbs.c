/* check_verbs.c - the verb table (src/verbs.c): lookups, flags, masks. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "line.h"
#include "mask.h"
#include "suite.h"
#include "verbs.h"

/* What each verb is, as the framer, read-ahead, the masks and the hook
 * timeouts rely on. */
static const struct verb_case {
	const char *verb; /* as a client may type it */
	int known;
	int flags;
	int mask;
} verb_cases[] = {
	{ "USER", 1, 0, MASK_NONE },
	{ "pass", 1, VERB_AUTH, MASK_ALL },
	{ "PaSs", 1, VERB_AUTH, MASK_ALL },
	{ "apop", 1, VERB_AUTH, MASK_WORD },
	{ "auth", 1, VERB_AUTH | VERB_SASL, MASK_WORD },
	{ "stat", 1, VERB_AHEAD, MASK_NONE },
	{ "list", 1, VERB_AHEAD, MASK_NONE },
	{ "retr", 1, VERB_AHEAD, MASK_NONE },
	{ "dele", 1, VERB_AHEAD, MASK_NONE },
	{ "noop", 1, VERB_AHEAD, MASK_NONE },
	{ "rset", 1, VERB_AHEAD, MASK_NONE },
	{ "TOP", 1, VERB_AHEAD, MASK_NONE },
	{ "uidl", 1, VERB_AHEAD, MASK_NONE },
	{ "QUIT", 1, VERB_AHEAD | VERB_QUIT, MASK_NONE },
	{ "capa", 1, 0, MASK_NONE },
	{ "stls", 1, VERB_STLS, MASK_NONE },
	{ "utf8", 1, 0, MASK_NONE },
	{ "lang", 1, 0, MASK_NONE },
	/* Not built in: prefixes, extensions, other protocols' verbs. */
	{ "xtnd", 0, 0, MASK_NONE },
	{ "qui", 0, 0, MASK_NONE },
	{ "quitt", 0, 0, MASK_NONE },
	{ "pas", 0, 0, MASK_NONE },
	{ "helo", 0, 0, MASK_NONE },
	{ "", 0, 0, MASK_NONE },
	{ "pass\xc4\xb1", 0, 0, MASK_NONE },
};

START_TEST(test_verb)
{
	const struct verb_case *vc = &verb_cases[_i];
	const struct verb *v = verbs_find(vc->verb, strlen(vc->verb));

	ck_assert_msg((v != NULL) == vc->known, "%s: known", vc->verb);
	ck_assert_int_eq(verbs_flags(vc->verb, strlen(vc->verb)), vc->flags);
	ck_assert_int_eq(mask_verb_secret(vc->verb, strlen(vc->verb)), vc->mask);
	if (v != NULL)
		ck_assert_int_eq(v->mask, vc->mask);
}
END_TEST

/* A verb is matched on its length: no prefix of a longer input matches. */
START_TEST(test_length)
{
	ck_assert_ptr_nonnull(verbs_find("quit now", 4));
	ck_assert_ptr_null(verbs_find("quit now", 5));
	ck_assert_ptr_null(verbs_find(NULL, 4));
	ck_assert_ptr_null(verbs_find("aaaaaaaaaaaaaaaaaaaaaaaa", 24));
}
END_TEST

/* Every row is lower case, fits the framer, and appears once. */
START_TEST(test_table)
{
	const struct verb *v, *w;
	size_t n = 0, i;

	for (v = verbs_table; v->name != NULL; v++, n++) {
		ck_assert_uint_le(strlen(v->name), LINE_VERB_MAX);
		for (i = 0; v->name[i] != '\0'; i++)
			ck_assert((v->name[i] >= 'a' && v->name[i] <= 'z') ||
			    (v->name[i] >= '0' && v->name[i] <= '9'));
		for (w = verbs_table; w != v; w++)
			ck_assert_str_ne(w->name, v->name);
		ck_assert_ptr_eq(verbs_find(v->name, strlen(v->name)), v);
		ck_assert(line_verb_known(v->name, NULL));
	}
	/* RFC 1939's twelve, CAPA, STLS, AUTH, UTF8 and LANG. */
	ck_assert_uint_eq(n, 17);
}
END_TEST

static const struct event_case {
	const char *name;
	const char *verb; /* NULL: not a command event */
} event_cases[] = {
	{ "pop3d_cmd_pass", "pass" },
	{ "pop3d_cmd_xtnd", "xtnd" },
	{ "pop3d_cmd_", "" },
	{ "pop3d_auth_data", NULL },
	{ "pop3d_connection", NULL },
	{ "pop3d_cmd", NULL },
	{ NULL, NULL },
};

START_TEST(test_event)
{
	const struct event_case *ec = &event_cases[_i];
	const char *v = verbs_of_event(ec->name);

	if (ec->verb == NULL)
		ck_assert_ptr_null(v);
	else
		ck_assert_str_eq(v, ec->verb);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("verbs");
	TCase *tc = tcase_create("verbs");

	tcase_add_loop_test(tc, test_verb, 0, sizeof(verb_cases) / sizeof(verb_cases[0]));
	tcase_add_test(tc, test_length);
	tcase_add_test(tc, test_table);
	tcase_add_loop_test(tc, test_event, 0, sizeof(event_cases) / sizeof(event_cases[0]));
	suite_add_tcase(s, tc);
	return suite_run(s);
}
