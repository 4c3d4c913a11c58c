/*
 * check_control.c - the control socket (control/control.c) and one
 * controller's connection (control/peer.c): framing of input lines (the
 * input cap before the newline arrives), the output cap dropping a slow
 * consumer with its reason, the deferred drop and the one teardown, lossy
 * mode counting dropped events, the stall limit.  A real in-process server
 * with a real control socket; the test reaches the connection's internals
 * through controller.h.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "controller.h"
#include "pop3d.h"
#include "suite.h"

#define MAX_LINE 4096
#define MAX_OUTPUT (1024u * 1024)

static struct event_base *base;
static struct pop3d *srv;
static struct control *ctl;
static int fd = -1;
static char path[108];
static char rbuf[1 << 20];
static size_t rlen;
static int peer_eof;

/* Turn the loop once and read what the socket has. */
static void
pump(void)
{
	ssize_t n;

	event_base_loop(base, EVLOOP_NONBLOCK);
	if (rlen == sizeof(rbuf))
		return;
	n = recv(fd, rbuf + rlen, sizeof(rbuf) - rlen, MSG_DONTWAIT);
	if (n > 0)
		rlen += (size_t)n;
	else if (n == 0)
		peer_eof = 1;
}

/* The next line from the server as JSON, or NULL after ms milliseconds. */
static json_t *
next_line(int ms)
{
	int tries;

	for (tries = 0; tries < ms; tries++) {
		char *nl = memchr(rbuf, '\n', rlen);

		if (nl != NULL) {
			json_t *j = json_loadb(rbuf, (size_t)(nl - rbuf), 0, NULL);
			size_t used = (size_t)(nl - rbuf) + 1;

			memmove(rbuf, rbuf + used, rlen - used);
			rlen -= used;
			ck_assert_ptr_nonnull(j);
			return j;
		}
		if (peer_eof)
			return NULL;
		pump();
		usleep(1000);
	}
	return NULL;
}

/* The next line of that type, skipping others; NULL on timeout. */
static json_t *
next_of(const char *type, int ms)
{
	json_t *j;

	while ((j = next_line(ms)) != NULL) {
		if (strcmp(json_string_value(json_object_get(j, "type")), type) == 0)
			return j;
		json_decref(j);
	}
	return NULL;
}

/* Send all of s, turning the loop meanwhile. */
static void
send_all(const char *s, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0)
			off += (size_t)n;
		pump();
	}
}

/* Send a C string. */
static void
send_str(const char *s)
{
	send_all(s, strlen(s));
}

/* The error code of a reply. */
static const char *
code_of(json_t *r)
{
	return json_string_value(json_object_get(json_object_get(r, "error"), "code"));
}

/* The one controller the server has. */
static struct controller *
the_controller(void)
{
	struct controller *c = TAILQ_FIRST(&ctl->controllers);

	ck_assert_ptr_nonnull(c);
	return c;
}

/* Run the loop until the server has no controller (or give up). */
static void
until_gone(void)
{
	int i;

	for (i = 0; i < 2000 && ctl->ncontrollers > 0; i++) {
		pump();
		usleep(500);
	}
	ck_assert_uint_eq(ctl->ncontrollers, 0);
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
	snprintf(path, sizeof(path), "/tmp/check_control.%ld.sock", (long)getpid());
	control_options_init(&co);
	co.path = path;
	co.max_line = MAX_LINE;
	co.max_output = MAX_OUTPUT;
	ctl = control_new(srv, &co);
	ck_assert_ptr_nonnull(ctl);
	fd = suite_connect_unix(path);
	rlen = 0;
	peer_eof = 0;
	g = next_line(2000);
	ck_assert_ptr_nonnull(g);
	ck_assert_str_eq(json_string_value(json_object_get(g, "type")), "greeting");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(json_object_get(g, "limits"), "control_max_line")),
	    MAX_LINE);
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

/* Several lines in one write, a CR before the LF, trailing blanks, a
 * blank line (no reply), and a line split across writes: one reply per
 * command, in order. */
START_TEST(test_framing)
{
	const char *batch = "{\"cmd\":\"ping\",\"id\":1}\r\n\n   \n{\"cmd\":\"ping\",\"id\":2} \t\n"
			    "{\"cmd\":\"ping\",";
	json_t *r;
	int i;

	send_all(batch, strlen(batch));
	for (i = 1; i <= 2; i++) {
		r = next_of("reply", 2000);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), i);
		ck_assert(json_is_true(json_object_get(r, "ok")));
		json_decref(r);
	}
	ck_assert_ptr_null(next_line(50)); /* half a line: nothing yet */
	send_str("\"id\":3}\n");
	r = next_of("reply", 2000);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 3);
	json_decref(r);
}
END_TEST

/* A line over the input cap is answered limit_exceeded (id null) as soon
 * as the excess is seen, before its LF; the rest of it, however long, is
 * discarded up to its LF and the connection stays usable. */
START_TEST(test_line_over_cap_before_newline)
{
	char *big = malloc(3 * MAX_LINE);
	json_t *r;

	memset(big, 'x', 3 * MAX_LINE);
	send_all(big, MAX_LINE + 100); /* no LF yet */
	r = next_of("reply", 2000);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(code_of(r), "limit_exceeded");
	ck_assert(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	send_all(big, 2 * MAX_LINE); /* more of the same line */
	send_str("x\n{\"cmd\":\"ping\",\"id\":7}\n");
	r = next_of("reply", 2000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 7); /* one error only */
	json_decref(r);
	/* Exactly max_line octets is fine: a JSON string padded with blanks. */
	memset(big, ' ', MAX_LINE);
	memcpy(big, "{\"cmd\":\"ping\",\"id\":8}", 21);
	big[MAX_LINE] = '\n';
	send_all(big, MAX_LINE + 1);
	r = next_of("reply", 2000);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 8);
	json_decref(r);
	free(big);
}
END_TEST

/* The deferred drop: peer_drop() only marks; the controller reads and
 * receives nothing more, and goes (its socket closed) from its defer
 * event, through the one teardown. */
START_TEST(test_deferred_drop)
{
	struct controller *c = the_controller();
	json_t *r;

	peer_drop(c, "test drop");
	ck_assert_str_eq(c->drop_reason, "test drop");
	ck_assert(!c->dead);
	ck_assert_ptr_eq(TAILQ_FIRST(&ctl->controllers), c); /* still listed */
	ck_assert_uint_eq(ctl->ncontrollers, 1);
	peer_write(c, "{}\n", 3); /* a no-op now */
	ck_assert_uint_eq(evbuffer_get_length(bufferevent_get_output(c->bev)), 0);
	peer_drop(c, "second reason"); /* the first one stays */
	ck_assert_str_eq(c->drop_reason, "test drop");
	send_str("{\"cmd\":\"ping\",\"id\":1}\n");
	until_gone();
	ck_assert(TAILQ_EMPTY(&ctl->controllers));
	r = next_line(500);
	ck_assert_ptr_null(r); /* no reply: closed */
	ck_assert(peer_eof);
}
END_TEST

/* A consumer that does not keep up is dropped once its backlog passes
 * max_output, with that reason, and not at once: from its defer event. */
START_TEST(test_output_cap_drops_slow_consumer)
{
	struct controller *c = the_controller();
	size_t chunk = MAX_OUTPUT / 4;
	char *line = malloc(chunk);
	int i;

	memset(line, 'x', chunk - 1);
	line[chunk - 1] = '\n';
	/* Within one loop iteration nothing is flushed: the backlog grows. */
	for (i = 0; i < 4; i++)
		peer_write(c, line, chunk);
	ck_assert_ptr_null(c->drop_reason); /* at the cap: kept */
	peer_write(c, "y\n", 2);
	ck_assert_ptr_nonnull(c->drop_reason);
	ck_assert_str_eq(c->drop_reason, "output backlog over the cap");
	ck_assert(!c->dead);
	until_gone();
	free(line);
}
END_TEST

/* A lossy controller is "behind" past CONTROL_LOSSY_HIGH: events are
 * dropped and counted, never replies; once its output drains it gets
 * pop3d_events_dropped with the count, and events flow again. */
START_TEST(test_lossy_counting)
{
	struct controller *c;
	struct pop3d_arg a;
	size_t big = 64 * 1024;
	char *s = malloc(big);
	json_t *r, *e;
	int i, sent = 0, seen = 0;

	send_str("{\"cmd\":\"hello\",\"lossy\":true,\"id\":1}\n");
	r = next_of("reply", 2000);
	ck_assert(json_is_true(json_object_get(json_object_get(r, "result"), "lossy")));
	json_decref(r);
	send_str("{\"cmd\":\"register\",\"events\":[\"x_big\"],\"id\":2}\n");
	r = next_of("reply", 2000);
	ck_assert(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	r = next_of("event", 2000); /* the seed */
	ck_assert_str_eq(json_string_value(json_object_get(r, "event")), "pop3d_registered");
	json_decref(r);
	c = the_controller();
	ck_assert(c->lossy);
	memset(s, 'a', big);
	memset(&a, 0, sizeof(a));
	a.type = POP3D_ARG_STR;
	a.s = s;
	a.len = big;
	/* No loop turn in between: nothing is flushed, the backlog grows. */
	for (i = 0; i < 10; i++) {
		ck_assert_int_eq(pop3d_send_event(srv, "x_big", &a, 1, 0), 0);
		sent++;
	}
	ck_assert(c->behind);
	ck_assert_uint_gt(c->dropped, 0);
	ck_assert_uint_lt(c->dropped, (uint64_t)sent);
	ck_assert_ptr_null(c->drop_reason); /* lossy: never dropped */
	/* Read everything: the delivered events, then the count. */
	while ((e = next_line(2000)) != NULL) {
		const char *ev = json_string_value(json_object_get(e, "event"));

		ck_assert_ptr_nonnull(ev);
		if (strcmp(ev, "pop3d_x_big") == 0) {
			seen++;
			json_decref(e);
			continue;
		}
		ck_assert_str_eq(ev, "pop3d_events_dropped");
		ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(e, "args"), 0)),
		    sent - seen);
		json_decref(e);
		break;
	}
	ck_assert_ptr_nonnull(e);
	ck_assert_int_gt(seen, 0);
	ck_assert(!c->behind);
	ck_assert_uint_eq(c->dropped, 0);
	ck_assert_int_eq(pop3d_send_event(srv, "x_big", &a, 1, 0), 0); /* flows again */
	e = next_of("event", 2000);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(json_string_value(json_object_get(e, "event")), "pop3d_x_big");
	json_decref(e);
	free(s);
}
END_TEST

/* A backlog that makes no progress for stall_seconds is dropped by the
 * tick; an empty backlog never is. */
START_TEST(test_stall)
{
	struct controller *c = the_controller();

	c->last_progress -= 3600;
	peer_tick(ctl);
	ck_assert(!c->dead); /* nothing owed */
	evbuffer_add(bufferevent_get_output(c->bev), "z\n", 2);
	peer_tick(ctl);
	ck_assert(c->dead);
	ck_assert_uint_eq(ctl->ncontrollers, 0);
	ck_assert_ptr_eq(TAILQ_FIRST(&ctl->dead), c); /* freed from its event */
	until_gone();
}
END_TEST

/* A controller that half-closes gets the replies it is owed, then goes. */
START_TEST(test_half_close)
{
	json_t *r;

	send_str("{\"cmd\":\"ping\",\"id\":1}\n{\"cmd\":\"ping\",\"id\":2}\n{\"cmd\":");
	shutdown(fd, SHUT_WR);
	r = next_of("reply", 2000);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 1);
	json_decref(r);
	r = next_of("reply", 2000);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 2);
	json_decref(r);
	ck_assert_ptr_null(next_line(500)); /* the partial line: dropped */
	until_gone();
}
END_TEST

/* control_free() with a live, a dropped and a dead controller: each is
 * freed once, through the one teardown (ASan/valgrind see the rest). */
START_TEST(test_free_with_every_state)
{
	struct controller *c;
	int fd2, fd3, i;

	fd2 = suite_connect_unix(path);
	fd3 = suite_connect_unix(path);
	for (i = 0; i < 2000 && ctl->ncontrollers < 3; i++)
		pump();
	ck_assert_uint_eq(ctl->ncontrollers, 3);
	c = TAILQ_FIRST(&ctl->controllers);
	peer_kill(TAILQ_NEXT(c, entry), "dead before free");
	peer_drop(c, "dropped before free");
	/* teardown's control_free runs before the loop turns again */
	close(fd2);
	close(fd3);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("control");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_framing);
	tcase_add_test(tc, test_line_over_cap_before_newline);
	tcase_add_test(tc, test_deferred_drop);
	tcase_add_test(tc, test_output_cap_drops_slow_consumer);
	tcase_add_test(tc, test_lossy_counting);
	tcase_add_test(tc, test_stall);
	tcase_add_test(tc, test_half_close);
	tcase_add_test(tc, test_free_with_every_state);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
