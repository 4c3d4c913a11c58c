/*
 * check_hook.c - controllers as plugins (control/hook.c) and the
 * lifecycle around them: a controller dropped by the write of a hook or of
 * its timeout, and a client that goes away while its command waits on a
 * hook.  An in-process server with the real control socket; the plugin
 * controller and the POP3 client are real sockets driven from here, and an
 * in-process consumer answers commands and counts connections.
 *
 * The output cap is lowered at a chosen moment (struct control is visible
 * through controller.h), so the write that crosses it is exactly the one
 * each test is about.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/event.h>
#include <jansson.h>

#include "control.h"
#include "controller.h"
#include "pop3d.h"
#include "server.h"
#include "suite.h"

static struct event_base *base;
static struct pop3d *srv;
static struct control *ctl;
static char path[108];
static int port;

/* What the in-process consumer saw. */
static unsigned nconnections, ndisconnected;
static uint64_t last_disconnected;

/* A peer socket with its own read buffer. */
struct peer {
	int fd;
	char buf[1 << 16];
	size_t len;
};

static struct peer ctlpeer, pop;

/* Clients in the server's table, dead ones not yet freed included. */
static size_t
clients_held(void)
{
	struct client *c;
	size_t n = 0;

	TAILQ_FOREACH (c, &srv->clients, entry)
		n++;
	return n;
}

/* Run the loop a little. */
static void
spin(void)
{
	event_base_loop(base, EVLOOP_NONBLOCK);
	usleep(1000);
}

/* Read what is there into the peer's buffer; 0 at EOF, -1 nothing new. */
static int
peer_fill(struct peer *p)
{
	ssize_t n = recv(p->fd, p->buf + p->len, sizeof(p->buf) - p->len - 1, MSG_DONTWAIT);

	if (n > 0) {
		p->len += (size_t)n;
		return 1;
	}
	return n == 0 ? 0 : -1;
}

/* The next LF-terminated line of p (without CR LF) into out, running the
 * loop for at most about ms milliseconds; 0 when none came. */
static int
peer_line(struct peer *p, char *out, size_t size, int ms)
{
	int i;

	for (i = 0; i < ms; i++) {
		char *nl = memchr(p->buf, '\n', p->len);

		if (nl != NULL) {
			size_t n = (size_t)(nl - p->buf), used = n + 1;

			if (n > 0 && p->buf[n - 1] == '\r')
				n--;
			ck_assert_uint_lt(n, size);
			memcpy(out, p->buf, n);
			out[n] = '\0';
			memmove(p->buf, p->buf + used, p->len - used);
			p->len -= used;
			return 1;
		}
		spin();
		(void)peer_fill(p);
	}
	return 0;
}

static void
peer_send(struct peer *p, const char *s)
{
	size_t len = strlen(s), off = 0;
	int i;

	for (i = 0; off < len && i < 5000; i++) {
		ssize_t n = send(p->fd, s + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0)
			off += (size_t)n;
		spin();
	}
	ck_assert_uint_eq(off, len);
}

/* The next control message whose "type" is type (others are skipped). */
static json_t *
ctl_next(const char *type, int ms)
{
	char line[1 << 15];

	while (peer_line(&ctlpeer, line, sizeof(line), ms)) {
		json_t *j = json_loads(line, 0, NULL);

		ck_assert_ptr_nonnull(j);
		if (strcmp(json_string_value(json_object_get(j, "type")), type) == 0)
			return j;
		json_decref(j);
	}
	return NULL;
}

/* Send a command and return its reply. */
static json_t *
ctl_call(const char *cmd)
{
	json_t *r;

	peer_send(&ctlpeer, cmd);
	r = ctl_next("reply", 2000);
	ck_assert_msg(r != NULL, "no reply to %s", cmd);
	return r;
}

static void
ctl_ok(const char *cmd)
{
	json_t *r = ctl_call(cmd);

	ck_assert_msg(json_is_true(json_object_get(r, "ok")), "%s failed", cmd);
	json_decref(r);
}

/* The consumer: count connections, answer NOOP. */
static void
consumer(struct pop3d *s, const struct pop3d_event *ev, void *arg)
{
	(void)arg;
	if (strcmp(ev->name, "pop3d_connection") == 0)
		nconnections++;
	else if (strcmp(ev->name, "pop3d_disconnected") == 0) {
		ndisconnected++;
		last_disconnected = ev->client;
	} else if (strcmp(ev->name, "pop3d_cmd_noop") == 0)
		pop3d_send_to_client(s, ev->client, ev->tag, "+OK noop", 8, 0);
}

static void
setup(void)
{
	struct pop3d_options o;
	struct control_options co;
	struct pop3d_sockname sn;
	const char *all[] = { "all" };
	uint64_t id;
	json_t *g;

	pop3d_options_init(&o);
	base = event_base_new();
	srv = pop3d_new(base, &o);
	ck_assert_ptr_nonnull(srv);
	ck_assert_int_eq(pop3d_listen(srv, "127.0.0.1", 0), 0);
	ck_assert_uint_eq(pop3d_getsockname(srv, &sn, 1), 1);
	port = sn.port;
	nconnections = ndisconnected = 0;
	last_disconnected = 0;
	id = pop3d_consumer_add(srv, "observer", consumer, NULL);
	ck_assert_int_eq(pop3d_consumer_register(srv, id, all, 1, NULL), 0);
	snprintf(path, sizeof(path), "/tmp/check_hook.%ld.sock", (long)getpid());
	control_options_init(&co);
	co.path = path;
	ctl = control_new(srv, &co);
	ck_assert_ptr_nonnull(ctl);

	memset(&ctlpeer, 0, sizeof(ctlpeer));
	ctlpeer.fd = suite_connect_unix(path);
	g = ctl_next("greeting", 2000);
	ck_assert_ptr_nonnull(g);
	json_decref(g);
	ctl_ok("{\"cmd\":\"plugin_add\",\"alias\":\"P\",\"priority\":1}\n");
	memset(&pop, 0, sizeof(pop));
	pop.fd = -1;
}

/* Connect the POP3 client (after the plugin's registrations). */
static void
pop_connect(void)
{
	pop.fd = suite_connect_tcp(port);
}

static void
teardown(void)
{
	if (pop.fd >= 0)
		close(pop.fd);
	if (ctlpeer.fd >= 0)
		close(ctlpeer.fd);
	control_free(ctl);
	pop3d_free(srv);
	event_base_free(base);
}

/* The greeting, then the consumer has seen the connection. */
static void
greeted(void)
{
	char line[512];

	pop_connect();
	ck_assert_msg(peer_line(&pop, line, sizeof(line), 2000), "no greeting");
	ck_assert_msg(strncmp(line, "+OK", 3) == 0, "greeting %s", line);
	ck_assert_uint_eq(nconnections, 1);
}

/* Close the POP3 client and wait (bounded) for its pop3d_disconnected. */
static void
client_gone(int reset, int ms)
{
	int i;

	if (reset) {
		struct linger l = { 1, 0 };

		setsockopt(pop.fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(pop.fd);
	pop.fd = -1;
	for (i = 0; i < ms && ndisconnected == 0; i++)
		spin();
	ck_assert_msg(ndisconnected == 1, "no pop3d_disconnected within %d ms", ms);
	for (i = 0; i < 200 && clients_held() > 0; i++)
		spin();
	ck_assert_uint_eq(clients_held(), 0);
}

/* Wait until the plugin's controller is gone. */
static void
controller_gone(void)
{
	int i;

	for (i = 0; i < 2000 && ctl->ncontrollers > 0; i++)
		spin();
	ck_assert_uint_eq(ctl->ncontrollers, 0);
}

/*
 * Defect 1: the hook times out, and writing pop3d_hook_timeout pushes its
 * controller over the output cap.  The drop used to free the pending hook
 * inside that write, and the timeout callback freed it again.
 */
START_TEST(test_timeout_write_over_cap)
{
	char line[512];
	json_t *h;

	ctl_ok("{\"cmd\":\"plugin_register\",\"alias\":\"P\",\"events\":[\"cmd_noop\"],"
	       "\"timeout_ms\":100,\"on_timeout\":\"none\"}\n");
	greeted();
	peer_send(&pop, "NOOP\r\n");
	h = ctl_next("hook", 2000);
	ck_assert_ptr_nonnull(h);
	json_decref(h);
	ctl->opts.max_output = 1; /* the timeout event is the write over it */
	ck_assert_msg(peer_line(&pop, line, sizeof(line), 3000), "NOOP not answered");
	ck_assert_str_eq(line, "+OK noop");
	controller_gone();
	peer_send(&pop, "NOOP\r\n");
	ck_assert(peer_line(&pop, line, sizeof(line), 2000));
	ck_assert_str_eq(line, "+OK noop");
	client_gone(0, 2000);
}
END_TEST

/*
 * Defect 2: the hook's own write pushes its controller over the cap.  The
 * hook used to be resolved before its job was suspended, orphaning the
 * job: the command was never answered and the client never released.
 */
START_TEST(test_hook_write_over_cap)
{
	char line[512];

	ctl_ok("{\"cmd\":\"plugin_register\",\"alias\":\"P\",\"events\":[\"cmd_noop\"],"
	       "\"timeout_ms\":60000,\"on_timeout\":\"none\"}\n");
	greeted();
	ctl->opts.max_output = 1; /* the hook is the write over it */
	peer_send(&pop, "NOOP\r\n");
	ck_assert_msg(peer_line(&pop, line, sizeof(line), 3000), "NOOP not answered");
	ck_assert_str_eq(line, "+OK noop");
	controller_gone();
	client_gone(1, 1000);
}
END_TEST

/* The same on the way to authentication: the hook's default on_timeout is
 * tempfail, so the client is told to try later, never let through. */
START_TEST(test_hook_write_over_cap_auth)
{
	char line[512];

	ctl_ok("{\"cmd\":\"plugin_register\",\"alias\":\"P\",\"events\":[\"cmd_pass\"],"
	       "\"timeout_ms\":60000}\n");
	greeted();
	ctl->opts.max_output = 1;
	peer_send(&pop, "PASS secret\r\n");
	ck_assert_msg(peer_line(&pop, line, sizeof(line), 3000), "PASS not answered");
	ck_assert_str_eq(line, "-ERR [SYS/TEMP] server unavailable, try again later");
	controller_gone();
	client_gone(0, 2000);
}
END_TEST

/*
 * Defect 3: the client resets while its command waits on a 60 s hook.
 * pop3d_disconnected follows at once, the plugin's owner is told with
 * pop3d_hook_cancelled, and its late verdict is stale.
 */
START_TEST(test_client_gone_during_hook)
{
	char cmd[256];
	json_t *h, *e, *r, *args;
	json_int_t hook;

	ctl_ok("{\"cmd\":\"plugin_register\",\"alias\":\"P\",\"events\":[\"cmd_noop\"],"
	       "\"timeout_ms\":60000,\"on_timeout\":\"none\"}\n");
	greeted();
	peer_send(&pop, "NOOP\r\n");
	h = ctl_next("hook", 2000);
	ck_assert_ptr_nonnull(h);
	hook = json_integer_value(json_object_get(h, "hook"));
	ck_assert_int_gt(hook, 0);
	json_decref(h);
	client_gone(1, 1000);
	e = ctl_next("event", 1000);
	ck_assert_msg(e != NULL, "no pop3d_hook_cancelled");
	ck_assert_str_eq(json_string_value(json_object_get(e, "event")), "pop3d_hook_cancelled");
	args = json_object_get(e, "args");
	ck_assert_int_eq(json_integer_value(json_array_get(args, 0)), hook);
	ck_assert_str_eq(json_string_value(json_array_get(args, 1)), "P");
	ck_assert_str_eq(json_string_value(json_array_get(args, 2)), "pop3d_cmd_noop");
	ck_assert_int_eq(json_integer_value(json_array_get(args, 3)),
	    (json_int_t)last_disconnected);
	json_decref(e);
	snprintf(cmd, sizeof(cmd), "{\"cmd\":\"verdict\",\"hook\":%lld,\"eat\":\"none\"}\n",
	    (long long)hook);
	r = ctl_call(cmd);
	ck_assert(json_is_false(json_object_get(r, "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "error"), "code")),
	    "stale");
	json_decref(r);
}
END_TEST

/* A hook held on pop3d_connection of a client that resets: consumers still
 * get the connection, then its disconnection, one each. */
START_TEST(test_client_gone_during_connection_hook)
{
	json_t *h;

	ctl_ok("{\"cmd\":\"plugin_register\",\"alias\":\"P\",\"events\":[\"connection\"],"
	       "\"timeout_ms\":60000,\"on_timeout\":\"none\"}\n");
	pop_connect();
	h = ctl_next("hook", 2000);
	ck_assert_ptr_nonnull(h);
	json_decref(h);
	ck_assert_uint_eq(nconnections, 0);
	client_gone(1, 1000);
	ck_assert_uint_eq(nconnections, 1);
	h = ctl_next("event", 1000);
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(json_string_value(json_object_get(h, "event")), "pop3d_hook_cancelled");
	json_decref(h);
}
END_TEST

/* A controller killed just before the server stops: control_free frees it
 * even though its defer event never ran (valgrind's leak check in CI). */
START_TEST(test_killed_controller_freed_at_exit)
{
	struct controller *c = TAILQ_FIRST(&ctl->controllers);

	ck_assert_ptr_nonnull(c);
	peer_kill(c, "test");
	ck_assert_uint_eq(ctl->ncontrollers, 0);
	ck_assert_ptr_eq(TAILQ_FIRST(&ctl->dead), c);
	/* teardown's control_free runs before the loop turns again */
}
END_TEST

static Suite *
hook_suite(void)
{
	Suite *s = suite_create("hook");
	TCase *tc = tcase_create("lifecycle");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_timeout_write_over_cap);
	tcase_add_test(tc, test_hook_write_over_cap);
	tcase_add_test(tc, test_hook_write_over_cap_auth);
	tcase_add_test(tc, test_client_gone_during_hook);
	tcase_add_test(tc, test_client_gone_during_connection_hook);
	tcase_add_test(tc, test_killed_controller_freed_at_exit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return suite_run(hook_suite());
}
