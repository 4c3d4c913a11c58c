/*
 * check_command.c - the control command decoder, table-driven: each line is
 * sent over a real control socket to an in-process server, and the reply's
 * ok flag and error code are checked.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/event.h>
#include <jansson.h>

#include "control.h"
#include "pop3d.h"
#include "suite.h"

static struct event_base *base;
static struct pop3d *srv;
static struct control *ctl;
static int fd = -1;
static char path[108];
static char rbuf[1 << 16];
static size_t rlen;

/* Read one line from the control socket, running the loop meanwhile. */
static json_t *
read_line(void)
{
	int tries;

	for (tries = 0; tries < 2000; tries++) {
		char *nl = memchr(rbuf, '\n', rlen);
		ssize_t n;

		if (nl != NULL) {
			json_t *j = json_loadb(rbuf, (size_t)(nl - rbuf), JSON_ALLOW_NUL, NULL);
			size_t used = (size_t)(nl - rbuf) + 1;

			memmove(rbuf, rbuf + used, rlen - used);
			rlen -= used;
			ck_assert_ptr_nonnull(j);
			return j;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		n = recv(fd, rbuf + rlen, sizeof(rbuf) - rlen, MSG_DONTWAIT);
		if (n > 0)
			rlen += (size_t)n;
		else
			usleep(1000);
	}
	ck_abort_msg("no line from the control socket");
	return NULL;
}

static void
send_line(const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0)
			off += (size_t)n;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
}

/* The next reply, skipping events. */
static json_t *
reply(void)
{
	for (;;) {
		json_t *j = read_line();

		if (strcmp(json_string_value(json_object_get(j, "type")), "reply") == 0)
			return j;
		json_decref(j);
	}
}

static void
setup(void)
{
	struct pop3d_options o;
	struct control_options co;
	json_t *g;

	pop3d_options_init(&o);
	base = event_base_new();
	srv = pop3d_new(base, &o);
	ck_assert_ptr_nonnull(srv);
	ck_assert_int_eq(pop3d_listen(srv, "127.0.0.1", 0), 0);
	snprintf(path, sizeof(path), "/tmp/check_command.%ld.sock", (long)getpid());
	control_options_init(&co);
	co.path = path;
	co.max_line = 4096;
	ctl = control_new(srv, &co);
	ck_assert_ptr_nonnull(ctl);
	fd = suite_connect_unix(path);
	rlen = 0;
	g = read_line();
	ck_assert_str_eq(json_string_value(json_object_get(g, "type")), "greeting");
	ck_assert_int_eq(json_integer_value(json_object_get(g, "protocol")), 1);
	json_decref(g);
}

static void
teardown(void)
{
	close(fd);
	control_free(ctl);
	pop3d_free(srv);
	event_base_free(base);
	ck_assert_int_ne(access(path, F_OK), 0); /* socket file removed */
}

struct cmd_case {
	const char *line;
	const char *code; /* NULL: ok */
};

static const struct cmd_case cmd_cases[] = {
	{ "{\"cmd\":\"ping\",\"id\":1}\n", NULL },
	{ "{\"cmd\":\"ping\",\"extra\":1}\n", "invalid_argument" },
	{ "{\"cmd\":\"frobnicate\"}\n", "unknown_command" },
	{ "{\"cmd\":\"ping\"\n", "parse_error" },
	{ "{\"cmd\":\"ping\",\"cmd\":\"ping\"}\n", "parse_error" },
	{ "[\"ping\"]\n", "invalid_request" },
	{ "{\"id\":1}\n", "invalid_request" },
	{ "{\"cmd\":\"register\",\"events\":[\"cmd_user\",\"all\",\"cmd_*\"]}\n", NULL },
	{ "{\"cmd\":\"register\",\"events\":[\"cmd_user\",\"nope\"]}\n", "unknown_event" },
	{ "{\"cmd\":\"register\",\"events\":\"cmd_user\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"register\",\"events\":[1]}\n", "invalid_argument" },
	{ "{\"cmd\":\"register\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"unregister\",\"events\":[\"cmd_user\"]}\n", NULL },
	{ "{\"cmd\":\"send_to_client\",\"client\":99,\"text\":\"+OK\"}\n", "unknown_client" },
	{ "{\"cmd\":\"send_to_client\",\"client\":-1,\"text\":\"+OK\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_to_client\",\"client\":1}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_to_client\",\"client\":1,\"text\":\"a\",\"lines\":[\"b\"]}\n",
	    "invalid_argument" },
	{ "{\"cmd\":\"send_to_client\",\"client\":1,\"text_b64\":\"!!\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_to_client\",\"client\":1,\"lines\":[]}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_to_client\",\"client\":1,\"text\":\"a\",\"more\":1}\n",
	    "invalid_argument" },
	{ "{\"cmd\":\"send_to_client\",\"client\":1e30,\"text\":\"a\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_file\",\"client\":5,\"path\":\"/etc/hostname\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_file\",\"client\":5,\"path\":\"/x\",\"status\":\"+OK\"}\n",
	    "unknown_client" },
	{ "{\"cmd\":\"send_file\",\"client\":5,\"path\":\"/x\",\"status\":\"+OK\","
	  "\"top_lines\":-2}\n",
	    "invalid_argument" },
	{ "{\"cmd\":\"disconnect\",\"client\":123}\n", "unknown_client" },
	{ "{\"cmd\":\"disconnect\",\"client\":\"1\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_event\",\"event\":\"x_hello\",\"args\":[1,\"a\",{\"b\":[]}]}\n", NULL },
	{ "{\"cmd\":\"send_event\",\"event\":\"bogus\"}\n", "unknown_event" },
	{ "{\"cmd\":\"send_event\",\"event\":\"cmd_*\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_event\",\"args\":[]}\n", "invalid_argument" },
	{ "{\"cmd\":\"getsockname\"}\n", NULL },
	{ "{\"cmd\":\"session_id\"}\n", NULL },
	{ "{\"cmd\":\"list_clients\"}\n", NULL },
	{ "{\"cmd\":\"hello\",\"name\":\"t\",\"lossy\":true}\n", NULL },
	{ "{\"cmd\":\"hello\",\"lossy\":\"yes\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"hello\",\"name\":\"\"}\n", "invalid_argument" },
	/* A NUL in any string is refused at decode (one rule, codec.c). */
	{ "{\"cmd\":\"ping\\u0000\"}\n", "invalid_request" },
	{ "{\"cmd\":\"send_to_client\",\"client\":1,\"text\":\"+OK \\u0000\"}\n",
	    "invalid_argument" },
	{ "{\"cmd\":\"send_to_client\",\"client\":1,\"lines\":[\"+OK\",\"a\\u0000\"]}\n",
	    "invalid_argument" },
	{ "{\"cmd\":\"send_file\",\"client\":5,\"path\":\"/x\\u0000\",\"status\":\"+OK\"}\n",
	    "invalid_argument" },
	{ "{\"cmd\":\"disconnect\",\"client\":1,\"text\":\"\\u0000\"}\n", "invalid_argument" },
	{ "{\"cmd\":\"send_event\",\"event\":\"x_a\",\"args\":[\"\\u0000\"]}\n",
	    "invalid_argument" },
	{ "{\"cmd\":\"register\",\"events\":[\"cmd_user\\u0000\"]}\n", "invalid_argument" },
	{ "{\"cmd\":\"ping\",\"id\":\"\\u0000\"}\n", NULL },
	/* Octets with NUL go as base64; a status line still may not hold one. */
	{ "{\"cmd\":\"send_to_client\",\"client\":1,\"lines_b64\":[\"K09LAA==\",\"YQ==\"]}\n",
	    "invalid_argument" },
};

START_TEST(test_commands)
{
	const struct cmd_case *cc = &cmd_cases[_i];
	json_t *r;

	send_line(cc->line);
	r = reply();
	if (cc->code == NULL)
		ck_assert_msg(json_is_true(json_object_get(r, "ok")), "%s", cc->line);
	else {
		ck_assert_msg(json_is_false(json_object_get(r, "ok")), "%s", cc->line);
		ck_assert_str_eq(
		    json_string_value(json_object_get(json_object_get(r, "error"), "code")),
		    cc->code);
	}
	json_decref(r);
	/* The connection stays usable after every error. */
	send_line("{\"cmd\":\"ping\",\"id\":\"after\"}\n");
	r = reply();
	ck_assert(json_is_true(json_object_get(r, "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "after");
	json_decref(r);
}
END_TEST

START_TEST(test_long_line)
{
	char *big = malloc(10000);
	json_t *r;

	memset(big, 'x', 9998);
	big[9998] = '\n';
	big[9999] = '\0';
	send_line(big);
	r = reply();
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "error"), "code")),
	    "limit_exceeded");
	ck_assert(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	send_line("{\"cmd\":\"ping\",\"id\":2}\n");
	r = reply();
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 2);
	json_decref(r);
	free(big);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("command");
	TCase *tc = tcase_create("command");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_commands, 0, sizeof(cmd_cases) / sizeof(cmd_cases[0]));
	tcase_add_test(tc, test_long_line);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
