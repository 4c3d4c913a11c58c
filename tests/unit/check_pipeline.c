/* check_pipeline.c - registration, names, EAT verdicts, removal in dispatch. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pipeline.h"
#include "pop3d.h"
#include "suite.h"

static struct event_base *base;
static struct pop3d *srv;
static char seen[1024];

static void
setup(void)
{
	struct pop3d_options o;

	pop3d_options_init(&o);
	o.handle_connects = 0;
	base = event_base_new();
	srv = pop3d_new(base, &o);
	ck_assert_ptr_nonnull(srv);
	seen[0] = '\0';
}

static void
teardown(void)
{
	pop3d_free(srv);
	event_base_free(base);
}

static void
note(const char *who, const struct pop3d_event *ev)
{
	size_t o = strlen(seen);

	snprintf(seen + o, sizeof(seen) - o, "%s:%s:%s|", who, ev->name,
	    ev->argc > 1 && ev->argv[1].type == POP3D_ARG_STR ? ev->argv[1].s : "-");
}

static void
consumer_cb(struct pop3d *s, const struct pop3d_event *ev, void *arg)
{
	(void)s;
	note(arg, ev);
}

static uint64_t
consumer(const char *name, const char *const *names, size_t n)
{
	uint64_t id = pop3d_consumer_add(srv, name, consumer_cb, (void *)name);

	ck_assert_uint_gt(id, 0);
	ck_assert_int_eq(pop3d_consumer_register(srv, id, names, n, NULL), 0);
	return id;
}

static void
emit(const char *name, const char *arg1)
{
	struct pop3d_arg a[2];

	memset(a, 0, sizeof(a));
	a[0].type = POP3D_ARG_INT;
	a[0].i = 1;
	a[1].type = POP3D_ARG_STR;
	a[1].s = (char *)arg1;
	a[1].len = strlen(arg1);
	ck_assert_int_eq(pop3d_send_event(srv, name, a, 2, 0), 0);
}

struct name_case {
	const char *pattern;
	int known;
	const char *event; /* an event to emit */
	int receives;
};

static const struct name_case name_cases[] = {
	{ "pop3d_cmd_user", 1, "pop3d_cmd_user", 1 },
	{ "cmd_user", 1, "pop3d_cmd_user", 1 },
	{ "cmd_user", 1, "cmd_user", 1 },
	{ "cmd_user", 1, "pop3d_cmd_pass", 0 },
	{ "all", 1, "pop3d_cmd_quit", 1 },
	{ "all", 1, "pop3d_connection", 1 },
	{ "cmd_*", 1, "pop3d_cmd_stat", 1 },
	{ "cmd_*", 1, "pop3d_connection", 0 },
	{ "pop3d_cmd_?ass", 1, "cmd_pass", 1 },
	{ "connection", 1, "pop3d_connection", 1 },
	{ "disconnected", 1, "pop3d_disconnected", 1 },
	{ "listener_failed", 1, "pop3d_listener_failed", 1 },
	{ "cmd_helo", 0, NULL, 0 },
	{ "nonsense", 0, NULL, 0 },
	{ "zz*", 0, NULL, 0 },
	{ "", 0, NULL, 0 },
	{ "x_custom", 1, "x_custom", 1 },
};

START_TEST(test_names)
{
	const struct name_case *nc = &name_cases[_i];
	const char *names[1] = { nc->pattern };
	uint64_t id = pop3d_consumer_add(srv, "c", consumer_cb, (void *)"c");
	size_t bad = 99;
	int rv = pop3d_consumer_register(srv, id, names, 1, &bad);

	ck_assert_int_eq(pop3d_event_known(srv, nc->pattern), nc->known);
	if (!nc->known) {
		ck_assert_int_eq(rv, -POP3D_ERR_UNKNOWN_EVENT);
		ck_assert_uint_eq(bad, 0);
		return;
	}
	ck_assert_int_eq(rv, 0);
	emit(nc->event, "x");
	ck_assert_int_eq(seen[0] != '\0', nc->receives);
	ck_assert_int_eq(pop3d_has_handler(srv, nc->event), nc->receives);
}
END_TEST

START_TEST(test_register_atomic)
{
	const char *names[3] = { "cmd_user", "bogus", "cmd_pass" };
	uint64_t id = pop3d_consumer_add(srv, "c", consumer_cb, (void *)"c");
	const char **pats;
	size_t bad = 0;

	ck_assert_int_eq(pop3d_consumer_register(srv, id, names, 3, &bad),
	    -POP3D_ERR_UNKNOWN_EVENT);
	ck_assert_uint_eq(bad, 1);
	ck_assert_uint_eq(pop3d_consumer_patterns(srv, id, &pats), 0);
	ck_assert(!pop3d_has_handler(srv, "cmd_user"));
	names[1] = "cmd_user";
	ck_assert_int_eq(pop3d_consumer_register(srv, id, names, 3, &bad), 0);
	ck_assert_uint_eq(pop3d_consumer_patterns(srv, id, &pats), 2); /* deduplicated */
	ck_assert_int_eq(
	    pop3d_consumer_unregister(srv, id, (const char *[]){ "pop3d_cmd_user", "cmd_stat" }, 2),
	    0);
	ck_assert_uint_eq(pop3d_consumer_patterns(srv, id, &pats), 1);
	ck_assert_str_eq(pats[0], "pop3d_cmd_pass");
}
END_TEST

START_TEST(test_two_consumers_order)
{
	const char *all[1] = { "all" };

	consumer("A", all, 1);
	consumer("B", all, 1);
	emit("cmd_user", "bob");
	ck_assert_str_eq(seen, "A:pop3d_cmd_user:bob|B:pop3d_cmd_user:bob|");
}
END_TEST

/* Plugins: P1 returns verdict _i+1 and rewrites ARG1; P2 and consumer O note. */
static int verdict;

static int
plugin1(struct pop3d *s, struct pop3d_event *ev, void *arg)
{
	(void)s;
	note(arg, ev);
	free(ev->argv[1].s);
	ev->argv[1].s = strdup("rewritten");
	ev->argv[1].len = 9;
	return verdict;
}

static int
plugin2(struct pop3d *s, struct pop3d_event *ev, void *arg)
{
	(void)s;
	note(arg, ev);
	return POP3D_EAT_NONE;
}

static const char *const eat_expect[] = {
	/* NONE */ "A:pop3d_cmd_user:bob|B:pop3d_cmd_user:rewritten|O:pop3d_cmd_user:rewritten|",
	/* CLIENT */ "A:pop3d_cmd_user:bob|B:pop3d_cmd_user:rewritten|",
	/* PLUGIN */ "A:pop3d_cmd_user:bob|O:pop3d_cmd_user:rewritten|",
	/* ALL */ "A:pop3d_cmd_user:bob|",
};

START_TEST(test_eat_matrix)
{
	const char *all[1] = { "all" };

	verdict = _i + 1;
	ck_assert_int_eq(pop3d_plugin_add(srv, "B", 0, plugin2, (void *)"B"), 1);
	ck_assert_int_eq(pop3d_plugin_add(srv, "A", -1, plugin1, (void *)"A"), 2);
	ck_assert_int_eq(pop3d_plugin_register(srv, "A", all, 1, NULL), 0);
	ck_assert_int_eq(pop3d_plugin_register(srv, "B", all, 1, NULL), 0);
	consumer("O", all, 1);
	emit("cmd_user", "bob");
	ck_assert_str_eq(seen, eat_expect[_i]);
}
END_TEST

START_TEST(test_plugin_order)
{
	const char *order[8];

	ck_assert_int_eq(pop3d_plugin_add(srv, "p1", 5, plugin2, NULL), 1);
	ck_assert_int_eq(pop3d_plugin_add(srv, "p2", 0, plugin2, NULL), 2);
	ck_assert_int_eq(pop3d_plugin_add(srv, "p3", 5, plugin2, NULL), 3);
	ck_assert_int_eq(pop3d_plugin_add(srv, "p3", 1, plugin2, NULL), -1);
	ck_assert_uint_eq(pop3d_plugin_order(srv, order, 8), 3);
	ck_assert_str_eq(order[0], "p2");
	ck_assert_str_eq(order[1], "p1");
	ck_assert_str_eq(order[2], "p3");
	ck_assert_int_eq(pop3d_plugin_del(srv, "p1"), 0);
	ck_assert_int_eq(pop3d_plugin_del(srv, "p1"), -1);
	ck_assert_uint_eq(pop3d_plugin_order(srv, order, 8), 2);
}
END_TEST

/* A consumer that removes the next consumer and itself during dispatch. */
static uint64_t victim, self_id;

static void
remover_cb(struct pop3d *s, const struct pop3d_event *ev, void *arg)
{
	note(arg, ev);
	pop3d_consumer_del(s, victim);
	pop3d_consumer_del(s, self_id);
}

START_TEST(test_remove_during_dispatch)
{
	const char *all[1] = { "all" };

	self_id = pop3d_consumer_add(srv, "R", remover_cb, (void *)"R");
	pop3d_consumer_register(srv, self_id, all, 1, NULL);
	victim = consumer("V", all, 1);
	consumer("W", all, 1);
	emit("cmd_user", "bob");
	ck_assert_str_eq(seen, "R:pop3d_cmd_user:bob|W:pop3d_cmd_user:bob|");
	seen[0] = '\0';
	emit("cmd_user", "again");
	ck_assert_str_eq(seen, "W:pop3d_cmd_user:again|");
}
END_TEST

START_TEST(test_greeting_plugin_listed)
{
	struct pop3d_options o;
	struct pop3d *s2;
	const char *order[4];

	pop3d_options_init(&o);
	s2 = pop3d_new(base, &o);
	ck_assert_uint_eq(pop3d_plugin_order(s2, order, 4), 1);
	ck_assert_str_eq(order[0], "greeting");
	pop3d_free(s2);
	o.hostname = "bad\r\nhost";
	ck_assert_ptr_null(pop3d_new(base, &o));
}
END_TEST

START_TEST(test_pattern_cap)
{
	uint64_t id = pop3d_consumer_add(srv, "c", consumer_cb, (void *)"c");
	const char **names = calloc(PIPELINE_MAX_PATTERNS + 1, sizeof(*names));
	size_t i;

	for (i = 0; i <= PIPELINE_MAX_PATTERNS; i++)
		names[i] = "cmd_user";
	ck_assert_int_eq(pop3d_consumer_register(srv, id, names, PIPELINE_MAX_PATTERNS + 1, NULL),
	    -POP3D_ERR_LIMIT);
	free(names);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("pipeline");
	TCase *tc = tcase_create("pipeline");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_names, 0, sizeof(name_cases) / sizeof(name_cases[0]));
	tcase_add_test(tc, test_register_atomic);
	tcase_add_test(tc, test_two_consumers_order);
	tcase_add_loop_test(tc, test_eat_matrix, 0, 4);
	tcase_add_test(tc, test_plugin_order);
	tcase_add_test(tc, test_remove_during_dispatch);
	tcase_add_test(tc, test_greeting_plugin_listed);
	tcase_add_test(tc, test_pattern_cap);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
