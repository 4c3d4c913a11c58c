/* check_group.c - controller groups (control/group.c): picking, binding, unbinding, member loss. */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../control/group.h"
#include "suite.h"

static struct group_set gs;

static void
setup(void)
{
	memset(&gs, 0, sizeof(gs));
}

static void
teardown(void)
{
	group_free_all(&gs);
}

/* Eligible: the controller's bit is set in *(unsigned *)arg. */
static int
eligible_mask(uint64_t id, void *arg)
{
	return (*(unsigned *)arg >> id) & 1;
}

/* The table of picks: members 1..nmembers joined in order, each with
 * bound[i] clients bound beforehand, some not eligible; the members
 * picked for the next four unbound clients. */
static const struct {
	const char *what;
	size_t nmembers;
	size_t bound[4];
	unsigned eligible; /* bit i: member i may be picked */
	uint64_t picks[4];
} pick_cases[] = {
	{ "one member takes all", 1, { 0 }, 0x2, { 1, 1, 1, 1 } },
	{ "ties round robin", 3, { 0, 0, 0 }, 0xe, { 1, 2, 3, 1 } },
	{ "least bound first", 3, { 2, 0, 1 }, 0xe, { 2, 3, 2, 3 } },
	{ "least bound, then even", 2, { 3, 0 }, 0x6, { 2, 2, 2, 1 } },
	{ "not eligible is skipped", 3, { 0, 0, 0 }, 0xa, { 1, 3, 1, 3 } },
	{ "nobody eligible", 2, { 0, 0 }, 0x0, { 0, 0, 0, 0 } },
};

START_TEST(test_pick)
{
	struct group_entry *g;
	uint64_t client = 1000;
	size_t m, k;
	unsigned el = pick_cases[_i].eligible;

	for (m = 1; m <= pick_cases[_i].nmembers; m++)
		ck_assert_int_eq(group_join(&gs, "g", m, "m"), 0);
	ck_assert_ptr_nonnull(g = group_find(&gs, "g"));
	for (m = 1; m <= pick_cases[_i].nmembers; m++)
		for (k = 0; k < pick_cases[_i].bound[m - 1]; k++)
			ck_assert_int_eq(group_bind(g, client++, m), 0);
	g->next = 0;
	for (k = 0; k < 4; k++)
		ck_assert_msg(group_route(g, client + k, 1, eligible_mask, &el) ==
			pick_cases[_i].picks[k],
		    "%s: pick %zu", pick_cases[_i].what, k);
}
END_TEST

/* Binding is sticky, a departure event never binds, unbinding frees it. */
START_TEST(test_bind_unbind)
{
	unsigned all = ~0u;
	struct group_entry *g, *h;

	ck_assert_int_eq(group_join(&gs, "g", 1, "a"), 0);
	ck_assert_int_eq(group_join(&gs, "g", 2, "b"), 0);
	ck_assert_int_eq(group_join(&gs, "h", 3, "c"), 0);
	g = group_find(&gs, "g");
	h = group_find(&gs, "h");
	ck_assert_uint_eq(group_route(g, 10, 0, eligible_mask, &all), 0); /* no bind */
	ck_assert_uint_eq(group_bound(g, 10), 0);
	ck_assert_uint_eq(group_route(g, 10, 1, eligible_mask, &all), 1);
	ck_assert_uint_eq(group_route(g, 10, 1, eligible_mask, &all), 1); /* sticky */
	ck_assert_uint_eq(group_route(g, 11, 1, eligible_mask, &all), 2);
	ck_assert_uint_eq(group_route(h, 10, 1, eligible_mask, &all), 3); /* one per group */
	ck_assert_int_eq(group_bind(g, 10, 2), -1);			  /* already bound */
	ck_assert_int_eq(group_bind(g, 12, 3), -1);			  /* not a member */
	ck_assert_uint_eq(group_member_find(g, 1)->nbound, 1);
	group_unbind_client(&gs, 10);
	ck_assert_uint_eq(group_bound(g, 10), 0);
	ck_assert_uint_eq(group_bound(h, 10), 0);
	ck_assert_uint_eq(group_member_find(g, 1)->nbound, 0);
	ck_assert_uint_eq(g->nbindings, 1);
	group_unbind_client(&gs, 10); /* twice: harmless */
	ck_assert_uint_eq(group_member_find(g, 2)->nbound, 1);
}
END_TEST

/* Many clients: the hash chains hold them, counts stay exact. */
START_TEST(test_many)
{
	unsigned all = ~0u;
	struct group_entry *g;
	uint64_t c;

	ck_assert_int_eq(group_join(&gs, "g", 1, "a"), 0);
	ck_assert_int_eq(group_join(&gs, "g", 2, "b"), 0);
	g = group_find(&gs, "g");
	for (c = 1; c <= 5000; c++)
		ck_assert_uint_ne(group_route(g, c, 1, eligible_mask, &all), 0);
	ck_assert_uint_eq(group_member_find(g, 1)->nbound, 2500);
	ck_assert_uint_eq(group_member_find(g, 2)->nbound, 2500);
	for (c = 1; c <= 5000; c += 2)
		group_unbind_client(&gs, c);
	ck_assert_uint_eq(g->nbindings, 2500);
	ck_assert_uint_eq(group_member_find(g, 1)->nbound, 0); /* odd ids went to 1 */
}
END_TEST

/* A member leaves: its clients are returned and unbound, the others stay,
 * new clients go to the rest, the last member takes the group with it. */
START_TEST(test_member_loss)
{
	unsigned all = ~0u;
	struct group_entry *g;
	char name[GROUP_NAME_MAX + 1];
	uint64_t *cl, c;
	size_t n, i;

	ck_assert_int_eq(group_join(&gs, "g", 1, "a"), 0);
	ck_assert_int_eq(group_join(&gs, "g", 2, "b"), 0);
	ck_assert_int_eq(group_join(&gs, "g", 3, "c"), 0);
	g = group_find(&gs, "g");
	for (c = 1; c <= 9; c++)
		group_route(g, c, 1, eligible_mask, &all);
	ck_assert_int_eq(group_leave(&gs, 2, name, &cl, &n), 1);
	ck_assert_str_eq(name, "g");
	ck_assert_uint_eq(n, 3);
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(cl[i] % 3, 2); /* 2, 5, 8 went to member 2 */
		ck_assert_uint_eq(group_bound(g, cl[i]), 0);
	}
	free(cl);
	ck_assert_uint_eq(group_bound(g, 1), 1);
	ck_assert_uint_eq(group_bound(g, 3), 3);
	ck_assert_ptr_null(group_member_find(g, 2));
	ck_assert_ptr_null(group_of(&gs, 2));
	c = group_route(g, 100, 1, eligible_mask, &all);
	ck_assert(c == 1 || c == 3);
	ck_assert_int_eq(group_leave(&gs, 2, name, &cl, &n), 0); /* not a member */
	ck_assert_int_eq(group_leave(&gs, 1, name, &cl, &n), 1);
	free(cl);
	ck_assert_int_eq(group_leave(&gs, 3, name, &cl, &n), 1);
	free(cl);
	ck_assert_ptr_null(group_find(&gs, "g"));
	ck_assert_uint_eq(gs.ngroups, 0);
}
END_TEST

/* Joining: names, one group per controller, rejoining is a no-op. */
static const struct {
	const char *name;
	int valid;
} name_cases[] = {
	{ "maildir", 1 },
	{ "a.b-c_D9", 1 },
	{ "", 0 },
	{ "a b", 0 },
	{ "a/b", 0 },
	{ "\xc3\xa9", 0 },
	{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 1 },
	{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 0 },
};

START_TEST(test_names)
{
	ck_assert_int_eq(group_name_valid(name_cases[_i].name), name_cases[_i].valid);
	ck_assert_int_eq(group_join(&gs, name_cases[_i].name, 1, "x"),
	    name_cases[_i].valid ? 0 : -1);
}
END_TEST

START_TEST(test_join)
{
	ck_assert_int_eq(group_join(&gs, "g", 1, "a"), 0);
	ck_assert_int_eq(group_join(&gs, "g", 1, "a"), 0);
	ck_assert_uint_eq(group_find(&gs, "g")->nmembers, 1);
	ck_assert_int_eq(group_join(&gs, "h", 1, "a"), -1);
	group_rename(&gs, 1, "z");
	ck_assert_str_eq(group_member_find(group_find(&gs, "g"), 1)->name, "z");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("group");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_pick, 0, (int)(sizeof(pick_cases) / sizeof(pick_cases[0])));
	tcase_add_loop_test(tc, test_names, 0, (int)(sizeof(name_cases) / sizeof(name_cases[0])));
	tcase_add_test(tc, test_bind_unbind);
	tcase_add_test(tc, test_many);
	tcase_add_test(tc, test_member_loss);
	tcase_add_test(tc, test_join);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
