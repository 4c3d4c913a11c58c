/*
 * check_output.c - src/output.c: output leaves in the order it was made.
 * A response line held by a pending POP3C verdict holds every later line
 * (and the parsing of later commands) until the verdict, which releases
 * them in order; a failed login's -ERR is held for auth_fail_delay_ms with
 * everything after it.  An in-process server on a loopback socket, a
 * POP3C plugin and a consumer driven from here.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "pop3d.h"
#include "suite.h"

static struct event_base *base;
static struct pop3d *srv;
static int pop = -1;
static char buf[1 << 14];
static size_t blen;
static uint64_t held_hook; /* the pending verdict, 0: none */
static unsigned nhooked;   /* response lines the plugin saw */

/* The POP3C plugin: holds "+OK hold" (pending), lets the rest through. */
static int
hold_plugin(struct pop3d *s, struct pop3d_event *ev, void *arg)
{
	(void)s;
	(void)arg;
	nhooked++;
	if (ev->argc > 1 && strcmp(ev->argv[1].s, "+OK hold") == 0) {
		held_hook = ev->hook;
		return POP3D_EAT_PENDING;
	}
	return POP3D_EAT_NONE;
}

/* The consumer: USER is answered with the held line and two unsolicited
 * lines after it; PASS fails, with a line after it; NOOP is answered. */
static void
consumer(struct pop3d *s, const struct pop3d_event *ev, void *arg)
{
	(void)arg;
	if (strcmp(ev->name, "pop3d_cmd_user") == 0) {
		ck_assert_int_eq(pop3d_send_to_client(s, ev->client, ev->tag, "+OK hold", 8, 0), 0);
		ck_assert_int_eq(pop3d_send_to_client(s, ev->client, 0, "* one", 5, 0), 0);
		ck_assert_int_eq(pop3d_send_to_client(s, ev->client, 0, "* two", 5, 0), 0);
	} else if (strcmp(ev->name, "pop3d_cmd_pass") == 0) {
		ck_assert_int_eq(pop3d_send_to_client(s, ev->client, ev->tag, "-ERR bad", 8, 0), 0);
		ck_assert_int_eq(pop3d_send_to_client(s, ev->client, 0, "* later", 7, 0), 0);
	} else if (strcmp(ev->name, "pop3d_cmd_noop") == 0)
		ck_assert_int_eq(pop3d_send_to_client(s, ev->client, ev->tag, "+OK noop", 8, 0), 0);
}

/* Run the loop for about ms milliseconds, reading what comes. */
static void
spin(int ms)
{
	int i;

	for (i = 0; i < ms; i++) {
		ssize_t r;

		event_base_loop(base, EVLOOP_NONBLOCK);
		if ((r = recv(pop, buf + blen, sizeof(buf) - blen - 1, MSG_DONTWAIT)) > 0)
			blen += (size_t)r;
		else
			usleep(1000);
	}
	buf[blen] = '\0';
}

/* Spin until buf holds n CRLFs (bounded). */
static void
read_lines(int n)
{
	int i, k = 0;
	size_t j;

	for (i = 0; i < 3000; i++) {
		for (k = 0, j = 0; j + 1 < blen; j++)
			if (buf[j] == '\r' && buf[j + 1] == '\n')
				k++;
		if (k >= n)
			return;
		spin(1);
	}
	ck_abort_msg("%d lines wanted, got: %s", n, buf);
}

/* A server with auth_fail_delay_ms delay and, when hold, the plugin; a
 * client connected and greeted. */
static void
start(unsigned delay, int hold)
{
	struct pop3d_options o;
	struct pop3d_sockname sn;
	const char *all[] = { "all" }, *resp[] = { "response" };
	uint64_t id;

	pop3d_options_init(&o);
	o.auth_fail_delay_ms = delay;
	base = event_base_new();
	ck_assert_ptr_nonnull(srv = pop3d_new(base, &o));
	ck_assert_int_eq(pop3d_listen(srv, "127.0.0.1", 0), 0);
	ck_assert_uint_eq(pop3d_getsockname(srv, &sn, 1), 1);
	id = pop3d_consumer_add(srv, "answers", consumer, NULL);
	ck_assert_int_eq(pop3d_consumer_register(srv, id, all, 1, NULL), 0);
	if (hold) {
		ck_assert_int_ge(pop3d_plugin_add(srv, "hold", 10, hold_plugin, NULL), 0);
		ck_assert_int_eq(
		    pop3d_plugin_register_type(srv, "hold", POP3D_PLUGIN_POP3C, resp, 1, NULL), 0);
	}
	pop = suite_connect_tcp(sn.port);
	blen = 0;
	held_hook = 0;
	read_lines(1); /* greeting */
	blen = 0;
	nhooked = 0;
}

static void
teardown(void)
{
	if (pop >= 0)
		close(pop);
	pop = -1;
	pop3d_free(srv);
	srv = NULL;
	event_base_free(base);
}

/* The verdicts a held line may get, and what then goes out, in order. */
static const struct hold_case {
	int verdict;
	const char *expect;
} hold_cases[] = {
	{ POP3D_EAT_NONE, "+OK hold\r\n* one\r\n* two\r\n+OK noop\r\n" },
	{ POP3D_EAT_ALL, "* one\r\n* two\r\n+OK noop\r\n" }, /* swallowed */
};

/* A pending verdict holds the later lines, and the next command, in order. */
START_TEST(test_hold_in_order)
{
	const struct hold_case *hc = &hold_cases[_i];
	unsigned seen;

	start(0, 1);
	ck_assert_int_eq(send(pop, "USER a\r\nNOOP\r\n", 14, 0), 14);
	spin(100);
	ck_assert_uint_ne(held_hook, 0);
	/* Nothing passes the held line; NOOP is not parsed meanwhile. */
	ck_assert_uint_eq(blen, 0);
	seen = nhooked;
	ck_assert_uint_eq(seen, 1);
	ck_assert_int_eq(pop3d_hook_resolve(srv, held_hook, hc->verdict, NULL, 0), 0);
	read_lines(hc->verdict == POP3D_EAT_NONE ? 4 : 3);
	spin(20);
	ck_assert_str_eq(buf, hc->expect);
	/* Each released line went through the plugin, once. */
	ck_assert_uint_eq(nhooked, 4);
}
END_TEST

/* A failed login's -ERR waits auth_fail_delay_ms, and what follows it
 * (an unsolicited line, the answer to the next command) waits behind it. */
START_TEST(test_login_delay)
{
	struct timespec t0, t1;
	long ms;

	start(300, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(send(pop, "PASS x\r\nNOOP\r\n", 14, 0), 14);
	spin(100);
	ck_assert_uint_eq(blen, 0); /* held */
	read_lines(3);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_ge(ms, 250);
	spin(20);
	ck_assert_str_eq(buf, "-ERR bad\r\n* later\r\n+OK noop\r\n");
}
END_TEST

/* Without a delay the same answers go out at once, in the same order. */
START_TEST(test_no_delay)
{
	start(0, 0);
	ck_assert_int_eq(send(pop, "PASS x\r\nNOOP\r\n", 14, 0), 14);
	spin(100);
	ck_assert_str_eq(buf, "-ERR bad\r\n* later\r\n+OK noop\r\n");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("output");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, test_hold_in_order, 0,
	    (int)(sizeof(hold_cases) / sizeof(hold_cases[0])));
	tcase_add_test(tc, test_login_delay);
	tcase_add_test(tc, test_no_delay);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
