/*
 * testd.c - a test build of the daemon: pop3d's own start-up plus an
 * in-process consumer that answers commands, for the end-to-end tests.
 *
 *   USER x      +OK at once          PASS secret  +OK / -ERR [AUTH]
 *   STAT        +OK 2 320            LIST         multi-line (send_lines)
 *   RETR /path  send_file            RETR other   lines starting with "."
 *   TOP /path n send_file, n lines   NOOP         +OK
 *   UIDL        answered after 200 ms (async)
 *   CAPA        sends with POP3D_SEND_MORE, "." last
 *   RSET        never answered (response timeout)
 *   QUIT        +OK bye, unless TESTD_NO_QUIT is set (core answers then)
 *   AUTH PLAIN  "+ " continuation; the data line "AGJvYgBzZWNyZXQ=" (bob/secret)
 *               gets +OK, "*" gets -ERR cancelled, anything else -ERR [AUTH]
 *   AUTH PLAIN x  (initial response) +OK when x is the line above
 *   DELE, APOP  no handler registered
 *
 * TESTD_CPLUGIN="PRIORITY:VERDICT" adds an in-process plugin "cplug" for
 * cmd_user that appends "+c" to ARG1 and returns VERDICT (1-4).
 * TESTD_NO_CONSUMER=1 leaves the in-process consumer out.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "daemon.h"
#include "pop3d.h"

struct testd_later {
	struct pop3d *srv;
	uint64_t client, tag;
	struct event *ev;
};

static void
testd_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct testd_later *l = arg;

	(void)fd;
	(void)what;
	pop3d_send_to_client(l->srv, l->client, l->tag, "+OK 1 uid-one", 13, 0);
	event_free(l->ev);
	free(l);
}

static void
testd_send(struct pop3d *srv, const struct pop3d_event *ev, const char *s)
{
	pop3d_send_to_client(srv, ev->client, ev->tag, s, strlen(s), 0);
}

static void
testd_event(struct pop3d *srv, const struct pop3d_event *ev, void *arg)
{
	const char *cmd = ev->name + strlen("pop3d_cmd_");
	const char *a1 = ev->argc > 1 ? ev->argv[1].s : NULL;
	char buf[600];

	(void)arg;
	if (strcmp(ev->name, "pop3d_auth_data") == 0) {
		if (strcmp(a1, "*") == 0)
			testd_send(srv, ev, "-ERR cancelled");
		else if (strcmp(a1, "AGJvYgBzZWNyZXQ=") == 0)
			testd_send(srv, ev, "+OK authenticated");
		else
			testd_send(srv, ev, "-ERR [AUTH] authentication failed");
		return;
	}
	if (strncmp(ev->name, "pop3d_cmd_", 10) != 0)
		return;
	if (strcmp(cmd, "user") == 0) {
		snprintf(buf, sizeof(buf), "+OK user %s", a1 ? a1 : "");
		testd_send(srv, ev, buf);
	} else if (strcmp(cmd, "pass") == 0)
		testd_send(srv, ev,
		    a1 && strcmp(a1, "secret") == 0 ? "+OK logged in" :
						      "-ERR [AUTH] invalid password");
	else if (strcmp(cmd, "stat") == 0)
		testd_send(srv, ev, "+OK 2 320");
	else if (strcmp(cmd, "noop") == 0)
		testd_send(srv, ev, "+OK");
	else if (strcmp(cmd, "quit") == 0)
		testd_send(srv, ev, "+OK bye");
	else if (strcmp(cmd, "list") == 0) {
		static char l1[] = "1 120", l2[] = "2 200";
		struct iovec v[2] = { { l1, 5 }, { l2, 5 } };

		pop3d_send_lines(srv, ev->client, ev->tag, "+OK 2 messages", v, 2);
	} else if (strcmp(cmd, "retr") == 0 && a1 != NULL && a1[0] == '/') {
		if (pop3d_send_file(srv, ev->client, ev->tag, "+OK message follows", a1, -1) != 0)
			testd_send(srv, ev, "-ERR no such message");
	} else if (strcmp(cmd, "retr") == 0) {
		static char l1[] = ".hidden", l2[] = "..two", l3[] = "plain";
		struct iovec v[3] = { { l1, 7 }, { l2, 5 }, { l3, 5 } };

		pop3d_send_lines(srv, ev->client, ev->tag, "+OK message follows", v, 3);
	} else if (strcmp(cmd, "top") == 0 && a1 != NULL) {
		char path[512];
		long n = 0;

		if (sscanf(a1, "%511s %ld", path, &n) == 2)
			pop3d_send_file(srv, ev->client, ev->tag, "+OK top follows", path, n);
		else
			testd_send(srv, ev, "-ERR usage");
	} else if (strcmp(cmd, "auth") == 0) {
		if (a1 == NULL)
			testd_send(srv, ev, "-ERR mechanism required");
		else if (strcmp(a1, "PLAIN") == 0)
			pop3d_send_to_client(srv, ev->client, ev->tag, "+ ", 2, 0);
		else if (strcmp(a1, "PLAIN AGJvYgBzZWNyZXQ=") == 0)
			testd_send(srv, ev, "+OK authenticated");
		else
			testd_send(srv, ev, "-ERR [AUTH] authentication failed");
	} else if (strcmp(cmd, "capa") == 0) {
		pop3d_send_to_client(srv, ev->client, ev->tag, "+OK capabilities", 16,
		    POP3D_SEND_MORE);
		pop3d_send_to_client(srv, ev->client, ev->tag, "USER", 4, POP3D_SEND_MORE);
		pop3d_send_to_client(srv, ev->client, ev->tag, "SASL PLAIN", 10, POP3D_SEND_MORE);
		if (pop3d_tls_available(srv) && !ev->tls)
			pop3d_send_to_client(srv, ev->client, ev->tag, "STLS", 4, POP3D_SEND_MORE);
		pop3d_send_to_client(srv, ev->client, ev->tag, ".", 1, 0);
	} else if (strcmp(cmd, "uidl") == 0) {
		struct testd_later *l = calloc(1, sizeof(*l));
		struct timeval tv = { 0, 200000 };

		if (l == NULL)
			return;
		l->srv = srv;
		l->client = ev->client;
		l->tag = ev->tag;
		l->ev = evtimer_new(pop3d_get_base(srv), testd_later_cb, l);
		evtimer_add(l->ev, &tv);
	}
	/* rset: deliberately never answered */
}

/* The in-process plugin of a mixed chain: rewrite ARG1, return a verdict. */
static int
testd_cplugin(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	size_t n;
	char *s;

	(void)srv;
	if (ev->argc > 1 && ev->argv[1].type == POP3D_ARG_STR) {
		n = ev->argv[1].len;
		if ((s = malloc(n + 3)) != NULL) {
			memcpy(s, ev->argv[1].s, n);
			memcpy(s + n, "+c", 3);
			free(ev->argv[1].s);
			ev->argv[1].s = s;
			ev->argv[1].len = n + 2;
		}
	}
	return (int)(intptr_t)arg;
}

static void
testd_setup(struct pop3d *srv)
{
	const char *cp = getenv("TESTD_CPLUGIN");

	if (cp != NULL) {
		static const char *const ev[] = { "cmd_user" };
		int prio = 0, verdict = 1;

		if (sscanf(cp, "%d:%d", &prio, &verdict) != 2 ||
		    pop3d_plugin_add(srv, "cplug", prio, testd_cplugin, (void *)(intptr_t)verdict) <
			0 ||
		    pop3d_plugin_register(srv, "cplug", ev, 1, NULL) != 0) {
			fprintf(stderr, "testd: bad TESTD_CPLUGIN\n");
			exit(1);
		}
	}
	if (getenv("TESTD_NO_CONSUMER") != NULL)
		return;
	static const char *names[] = { "cmd_user", "cmd_pass", "cmd_stat", "cmd_noop", "cmd_list",
		"cmd_retr", "cmd_top", "cmd_capa", "cmd_uidl", "cmd_rset", "cmd_auth", "auth_data",
		"cmd_quit" };
	uint64_t id = pop3d_consumer_add(srv, "testd", testd_event, NULL);
	size_t n = sizeof(names) / sizeof(names[0]);

	if (getenv("TESTD_NO_QUIT") != NULL)
		n--;
	if (id == 0 || pop3d_consumer_register(srv, id, names, n, NULL) != 0) {
		fprintf(stderr, "testd: cannot register\n");
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, testd_setup);
}
