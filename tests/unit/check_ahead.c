/*
 * check_ahead.c - commands dispatched ahead (--pipeline-depth, src/ahead.c):
 * answers recorded for a command further back are replayed in command
 * order, and a recorded file is closed exactly once whatever happens to
 * its replay.
 *
 * Linked with -Wl,--wrap=malloc,--wrap=close: the core (a static
 * convenience library) then allocates and closes through the wrappers
 * below, which can fail one allocation of a chosen size and count every
 * close that finds its descriptor already closed.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "pop3d.h"
#include "stuff.h"
#include "suite.h"

void *__real_malloc(size_t);
int __real_close(int);

static size_t fail_size;    /* fail the next malloc of this size, 0: none */
static unsigned bad_closes; /* close() of a descriptor already closed */

void *__wrap_malloc(size_t n);
int __wrap_close(int fd);

void *
__wrap_malloc(size_t n)
{
	if (fail_size != 0 && n == fail_size) {
		fail_size = 0;
		return NULL;
	}
	return __real_malloc(n);
}

int
__wrap_close(int fd)
{
	int rv = __real_close(fd);

	if (rv == -1 && errno == EBADF)
		bad_closes++;
	return rv;
}

static struct event_base *base;
static struct pop3d *srv;
static int pop = -1;
static char buf[1 << 16];
static size_t blen;
static char path[64];
static uint64_t retr_tag[3]; /* tags of RETR 1 and RETR 2 */
static uint64_t client_id;

/* The consumer: log in anybody; RETR 2 is answered with a file at once
 * (recorded: RETR 1 is still in front), RETR 1 only when the test says. */
static void
consumer(struct pop3d *s, const struct pop3d_event *ev, void *arg)
{
	(void)arg;
	if (strcmp(ev->name, "pop3d_cmd_user") == 0 || strcmp(ev->name, "pop3d_cmd_pass") == 0)
		pop3d_send_to_client(s, ev->client, ev->tag, "+OK", 3, 0);
	else if (strcmp(ev->name, "pop3d_cmd_retr") == 0 && ev->argc > 1) {
		int n = atoi(ev->argv[1].s);

		client_id = ev->client;
		if (n == 1 || n == 2)
			retr_tag[n] = ev->tag;
		if (n == 2)
			ck_assert_int_eq(
			    pop3d_send_file(s, ev->client, ev->tag, "+OK file", path, -1), 0);
	}
}

/* Read lines into buf until it holds at least n CRLFs (bounded). */
static void
read_lines(int n)
{
	int i;

	for (i = 0; i < 3000; i++) {
		int k = 0;
		size_t j;
		ssize_t r;

		for (j = 0; j + 1 < blen; j++)
			if (buf[j] == '\r' && buf[j + 1] == '\n')
				k++;
		if (k >= n)
			return;
		event_base_loop(base, EVLOOP_NONBLOCK);
		if ((r = recv(pop, buf + blen, sizeof(buf) - blen - 1, MSG_DONTWAIT)) > 0)
			blen += (size_t)r;
		else
			usleep(1000);
	}
	ck_abort_msg("got %zu octets: %.*s", blen, (int)blen, buf);
}

static void
spin(int ms)
{
	int i;

	for (i = 0; i < ms; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void
setup(void)
{
	struct pop3d_options o;
	struct pop3d_sockname sn;
	const char *all[] = { "all" };
	uint64_t id;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/check_ahead.%ld.msg", (long)getpid());
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("Subject: x\n\nbody\n", f);
	fclose(f);
	pop3d_options_init(&o);
	o.pipeline_depth = 4;
	base = event_base_new();
	ck_assert_ptr_nonnull(srv = pop3d_new(base, &o));
	ck_assert_int_eq(pop3d_listen(srv, "127.0.0.1", 0), 0);
	ck_assert_uint_eq(pop3d_getsockname(srv, &sn, 1), 1);
	id = pop3d_consumer_add(srv, "answers", consumer, NULL);
	ck_assert_int_eq(pop3d_consumer_register(srv, id, all, 1, NULL), 0);
	pop = suite_connect_tcp(sn.port);
	blen = 0;
	memset(retr_tag, 0, sizeof(retr_tag));
	read_lines(1); /* greeting */
	ck_assert_int_eq(send(pop, "USER a\r\nPASS b\r\n", 16, 0), 16);
	read_lines(3);
	blen = 0;
	bad_closes = 0;
}

static void
teardown(void)
{
	if (pop >= 0)
		__real_close(pop);
	pop = -1;
	pop3d_free(srv);
	event_base_free(base);
	unlink(path);
}

/* The ordinary case: the recorded file follows the head's answer. */
START_TEST(test_replay_in_order)
{
	ck_assert_int_eq(send(pop, "RETR 1\r\nRETR 2\r\n", 16, 0), 16);
	spin(50);
	ck_assert_uint_ne(retr_tag[1], 0);
	ck_assert_uint_ne(retr_tag[2], 0);
	ck_assert_int_eq(pop3d_send_to_client(srv, client_id, retr_tag[1], "-ERR no", 7, 0), 0);
	read_lines(6);
	buf[blen] = '\0';
	ck_assert_str_eq(buf, "-ERR no\r\n+OK file\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
	ck_assert_uint_eq(bad_closes, 0);
}
END_TEST

/* Defect 10 of issue 13: the replayed file cannot be streamed (no memory
 * for its state).  client_send_fd closes it; ahead.c closed it again. */
START_TEST(test_replay_failure_closes_once)
{
	ck_assert_int_eq(send(pop, "RETR 1\r\nRETR 2\r\n", 16, 0), 16);
	spin(50);
	ck_assert_uint_ne(retr_tag[2], 0);
	fail_size = sizeof(struct stuff);
	ck_assert_int_eq(pop3d_send_to_client(srv, client_id, retr_tag[1], "-ERR no", 7, 0), 0);
	fail_size = 0;
	spin(50);
	ck_assert_uint_eq(bad_closes, 0);
}
END_TEST

static Suite *
ahead_suite(void)
{
	Suite *s = suite_create("ahead");
	TCase *tc = tcase_create("replay");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_replay_in_order);
	tcase_add_test(tc, test_replay_failure_closes_once);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return suite_run(ahead_suite());
}
