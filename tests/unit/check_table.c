/*
 * check_table.c - src/table.c: client ids (found, not found once gone,
 * through rehashing) and per-address counts (acquire/release, the
 * --max-per-address limit, retire).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "suite.h"

static struct pop3d srv;
static char addr1[] = "192.0.2.1";

static void
setup(void)
{
	memset(&srv, 0, sizeof(srv));
	pop3d_options_init(&srv.opts);
	ck_assert_int_eq(table_init(&srv), 0);
}

static void
teardown(void)
{
	table_free(&srv);
}

/* A sequence of acquire (+) and release (-) of addresses, and what each
 * acquire returns under a limit. */
static const struct addr_case {
	unsigned max;	    /* --max-per-address, 0: none */
	const char *ops;    /* "+a" acquire a, "-a" release a, ... */
	const char *expect; /* per acquire: '0' ok, 'x' refused */
} addr_cases[] = {
	{ 2, "+a+a+a", "00x" },	      /* the limit */
	{ 2, "+a+a-a+a+a", "000x" },  /* a release makes room */
	{ 1, "+a+b+a+b", "00xx" },    /* per address */
	{ 0, "+a+a+a+a+a", "00000" }, /* no limit */
	{ 1, "+a-a-a+a+a", "00x" },   /* extra release: no credit */
	{ 1, "-z+z+z", "0x" },	      /* release of unknown: nothing */
};

START_TEST(test_addr_counts)
{
	const struct addr_case *ac = &addr_cases[_i];
	const char *op, *want = ac->expect;
	char addr[32];

	srv.opts.max_per_address = ac->max;
	for (op = ac->ops; *op != '\0'; op += 2) {
		snprintf(addr, sizeof(addr), "192.0.2.%d", op[1]);
		if (op[0] == '+') {
			int rv = table_addr_acquire(&srv, addr);

			ck_assert_msg(*want != '\0', "%s: more acquires than expected", ac->ops);
			ck_assert_msg(rv == (*want == '0' ? 0 : -1), "%s: acquire %td gave %d",
			    ac->ops, want - ac->expect, rv);
			want++;
		} else
			table_addr_release(&srv, addr);
	}
	ck_assert_msg(*want == '\0', "%s: fewer acquires than expected", ac->ops);
}
END_TEST

/* Many clients: each found by id through the rehashes, an unknown id not;
 * an unlinked client is not found again, the others still are. */
START_TEST(test_ids)
{
	enum { N = 1000 };
	struct client *c = calloc(N, sizeof(*c));
	size_t i;

	ck_assert_ptr_nonnull(c);
	for (i = 0; i < N; i++) {
		c[i].id = 1000 + i * 7;
		table_link(&srv, &c[i]);
	}
	ck_assert_uint_eq(srv.nclients, N);
	ck_assert_uint_ge(srv.hash_size, 2 * N);
	for (i = 0; i < N; i++)
		ck_assert_ptr_eq(table_find(&srv, c[i].id), &c[i]);
	ck_assert_ptr_null(table_find(&srv, 1001));
	ck_assert_ptr_null(table_find(&srv, 0));
	for (i = 0; i < N; i += 2)
		table_unlink(&srv, &c[i]);
	for (i = 0; i < N; i++)
		ck_assert_ptr_eq(table_find(&srv, c[i].id), i % 2 ? &c[i] : NULL);
	for (i = 1; i < N; i += 2)
		table_unlink(&srv, &c[i]);
	ck_assert(TAILQ_EMPTY(&srv.clients));
	free(c);
}
END_TEST

/* Retiring a client frees its place in the limits (its address only when
 * it was counted), and it is still found until it is unlinked. */
START_TEST(test_retire)
{
	struct client a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	srv.opts.max_per_address = 1;
	a.id = 1;
	a.peer = addr1;
	ck_assert_int_eq(table_addr_acquire(&srv, a.peer), 0);
	a.addr_counted = 1;
	table_link(&srv, &a);
	b.id = 2;
	b.peer = addr1; /* a PROXY client not yet counted */
	table_link(&srv, &b);
	ck_assert_uint_eq(srv.nclients, 2);
	ck_assert_int_eq(table_addr_acquire(&srv, "192.0.2.1"), -1);
	table_retire(&srv, &b);
	ck_assert_uint_eq(srv.nclients, 1);
	ck_assert_int_eq(table_addr_acquire(&srv, "192.0.2.1"), -1);
	table_retire(&srv, &a);
	ck_assert_uint_eq(srv.nclients, 0);
	ck_assert_ptr_eq(table_find(&srv, 1), &a);
	ck_assert_int_eq(table_addr_acquire(&srv, "192.0.2.1"), 0);
	table_addr_release(&srv, "192.0.2.1");
	table_unlink(&srv, &a);
	table_unlink(&srv, &b);
	ck_assert_ptr_null(table_find(&srv, 1));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("table");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_addr_counts, 0,
	    (int)(sizeof(addr_cases) / sizeof(addr_cases[0])));
	tcase_add_test(tc, test_ids);
	tcase_add_test(tc, test_retire);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
