/*
 * check_timers.c - src/timers.c: the deadline queue (order, re-arm,
 * removal during a run, firing by hand) and the defer queue (once per
 * request, in order, sticky entries), driven by a real event loop.
 */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "suite.h"
#include "timers.h"

#define NENT 8

static struct event_base *base;
static struct timers_queue tq;
static struct timers_deferq dq;
static struct timers_entry ent[NENT];
static int order[64]; /* indexes of entries as they expired or ran */
static size_t norder;
static int remove_on_expire = -1; /* expiring entry 0 removes this one */
static int rearm_once = -1;	  /* this entry re-arms itself once */
static int defer_on_run = -1;	  /* running entry 0 defers this one */

/* Which of ent[] e is. */
static int
idx(struct timers_entry *e)
{
	return (int)(e - ent);
}

/* The deadline queue's expire callback: record, and the test's extras. */
static void
expire(struct timers_entry *e, void *arg)
{
	ck_assert_ptr_eq(arg, &tq);
	ck_assert_int_eq(e->queued, 0); /* off the queue while it runs */
	order[norder++] = idx(e);
	if (idx(e) == 0 && remove_on_expire >= 0)
		timers_del(&tq, &ent[remove_on_expire]);
	if (idx(e) == rearm_once) {
		rearm_once = -1;
		timers_add(&tq, e, timers_now() + 5);
	}
}

/* The defer queue's run callback: record, and the test's extras. */
static void
run(struct timers_entry *e, void *arg)
{
	ck_assert_ptr_eq(arg, &dq);
	order[norder++] = idx(e);
	if (idx(e) == 0 && defer_on_run >= 0)
		timers_defer(&dq, &ent[defer_on_run]);
	/* Asked again while it runs: a sticky entry ignores it. */
	if (dq.sticky)
		timers_defer(&dq, e);
}

/* Run the loop until the queue is empty (bounded, about 2 s). */
static void
drain(void)
{
	int i;

	for (i = 0; i < 2000 && (!TAILQ_EMPTY(&tq.q) || !TAILQ_EMPTY(&dq.q)); i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	ck_assert(TAILQ_EMPTY(&tq.q));
	ck_assert(TAILQ_EMPTY(&dq.q));
}

static void
setup(void)
{
	base = event_base_new();
	ck_assert_int_eq(timers_queue_init(&tq, base, expire, &tq), 0);
	ck_assert_int_eq(timers_deferq_init(&dq, base, 0, run, &dq), 0);
	memset(ent, 0, sizeof(ent));
	norder = 0;
	remove_on_expire = rearm_once = defer_on_run = -1;
}

static void
teardown(void)
{
	timers_queue_free(&tq);
	timers_deferq_free(&dq);
	event_base_free(base);
}

/* Deadlines (ms from now) added in this order expire in deadline order. */
static const struct order_case {
	int ms[NENT];	  /* -1 ends */
	int expect[NENT]; /* entry indexes, -1 ends */
} order_cases[] = {
	{ { 10, 20, 30, -1 }, { 0, 1, 2, -1 } },	/* appended */
	{ { 30, 20, 10, -1 }, { 2, 1, 0, -1 } },	/* each a new head */
	{ { 20, 40, 10, 30, -1 }, { 2, 0, 3, 1, -1 } }, /* into the middle */
	{ { 15, 15, 5, 15, -1 }, { 2, 0, 1, 3, -1 } },	/* ties keep their order */
};

START_TEST(test_order)
{
	const struct order_case *oc = &order_cases[_i];
	int64_t now = timers_now();
	struct timers_entry *e;
	int i, prev = -1;

	for (i = 0; oc->ms[i] >= 0; i++)
		timers_add(&tq, &ent[i], now + oc->ms[i]);
	/* The list is in deadline order at once... */
	TAILQ_FOREACH (e, &tq.q, entry) {
		ck_assert_int_ge(e->deadline, prev);
		prev = (int)e->deadline;
	}
	/* ...and the entries expire in it, each once. */
	drain();
	for (i = 0; oc->expect[i] >= 0; i++) {
		ck_assert_uint_gt(norder, (size_t)i);
		ck_assert_int_eq(order[i], oc->expect[i]);
	}
	ck_assert_uint_eq(norder, (size_t)i);
}
END_TEST

/* Re-arming moves an entry (no duplicate), a re-armed nearest deadline
 * moves the event, and del takes an entry off for good. */
START_TEST(test_rearm_and_del)
{
	int64_t now = timers_now();

	timers_add(&tq, &ent[0], now + 10);
	timers_add(&tq, &ent[1], now + 20);
	timers_add(&tq, &ent[2], now + 30);
	timers_add(&tq, &ent[0], now + 40); /* 0 now last */
	timers_del(&tq, &ent[2]);
	timers_del(&tq, &ent[2]); /* twice: harmless */
	ck_assert_int_eq(ent[2].queued, 0);
	ck_assert_ptr_eq(TAILQ_FIRST(&tq.q), &ent[1]);
	drain();
	ck_assert_uint_eq(norder, 2);
	ck_assert_int_eq(order[0], 1);
	ck_assert_int_eq(order[1], 0);
	/* A long deadline, then a short one added as the new head: the event
	 * follows the head, the short one does not wait for the long one. */
	norder = 0;
	now = timers_now();
	timers_add(&tq, &ent[3], now + 5000);
	timers_add(&tq, &ent[4], now + 5);
	event_base_loop(base, EVLOOP_ONCE);
	ck_assert_uint_eq(norder, 1);
	ck_assert_int_eq(order[0], 4);
	ck_assert_int_eq(ent[3].queued, 1);
	timers_del(&tq, &ent[3]);
}
END_TEST

/* An expire callback may remove another due entry (it does not expire)
 * and re-arm its own (it expires again later). */
START_TEST(test_remove_during_run)
{
	int64_t now = timers_now();

	remove_on_expire = 1;
	rearm_once = 2;
	timers_add(&tq, &ent[0], now + 5);
	timers_add(&tq, &ent[1], now + 5);
	timers_add(&tq, &ent[2], now + 5);
	drain();
	ck_assert_uint_eq(norder, 3);
	ck_assert_int_eq(order[0], 0);
	ck_assert_int_eq(order[1], 2);
	ck_assert_int_eq(order[2], 2);
}
END_TEST

/* timers_fire expires an armed entry now, and nothing that is not armed. */
START_TEST(test_fire)
{
	timers_add(&tq, &ent[0], timers_now() + 60000);
	ck_assert_int_eq(timers_fire(&tq, &ent[1]), 0);
	ck_assert_int_eq(timers_fire(&tq, &ent[0]), 1);
	ck_assert_uint_eq(norder, 1);
	ck_assert_int_eq(timers_fire(&tq, &ent[0]), 0);
	ck_assert(TAILQ_EMPTY(&tq.q));
}
END_TEST

/* The defer queue runs each entry once however often it was asked, in
 * order; what is deferred while it runs runs in the same turn; an entry
 * taken off does not run. */
START_TEST(test_defer)
{
	timers_defer(&dq, &ent[0]);
	timers_defer(&dq, &ent[1]);
	timers_defer(&dq, &ent[0]);
	timers_defer(&dq, &ent[2]);
	timers_undefer(&dq, &ent[2]);
	timers_undefer(&dq, &ent[2]);
	defer_on_run = 3;
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_uint_eq(norder, 3);
	ck_assert_int_eq(order[0], 0);
	ck_assert_int_eq(order[1], 1);
	ck_assert_int_eq(order[2], 3);
	ck_assert_int_eq(ent[0].queued, 0);
	/* Deferred again after its run: it runs again. */
	timers_defer(&dq, &ent[0]);
	defer_on_run = -1;
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_uint_eq(norder, 4);
}
END_TEST

/* A sticky queue: an entry asked again while it runs does not run twice. */
START_TEST(test_defer_sticky)
{
	timers_deferq_free(&dq);
	ck_assert_int_eq(timers_deferq_init(&dq, base, 1, run, &dq), 0);
	timers_defer(&dq, &ent[0]);
	timers_defer(&dq, &ent[1]);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_uint_eq(norder, 2);
	ck_assert_int_eq(ent[0].queued, 0);
	ck_assert_int_eq(ent[1].queued, 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("timers");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_order, 0, (int)(sizeof(order_cases) / sizeof(order_cases[0])));
	tcase_add_test(tc, test_rearm_and_del);
	tcase_add_test(tc, test_remove_during_run);
	tcase_add_test(tc, test_fire);
	tcase_add_test(tc, test_defer);
	tcase_add_test(tc, test_defer_sticky);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
