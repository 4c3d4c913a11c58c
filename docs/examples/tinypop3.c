/*
 * tinypop3.c - a complete (tiny) POP3 server on libpop3d, in one file.
 *
 * One user, "demo" with password "demo", and two messages held in memory.
 * Like the synopsis of POE::Component::Server::POP3: create the server on
 * your own event loop, register for the command events, answer each client
 * with the seed's methods.  Deletions are applied on QUIT.
 *
 *   cc -o tinypop3 tinypop3.c $(pkg-config --cflags --libs pop3d libevent_core)
 *   ./tinypop3 1110        # port 0 picks a free one; it is printed
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <pop3d.h>

static const char *const messages[] = {
	"From: alice@example.org\r\nSubject: hello\r\n\r\nHi there.\r\n.signature\r\n",
	"From: bob@example.org\r\nSubject: again\r\n\r\nSecond message.\r\n",
};
#define NMSG 2

/* Per-client session state, by client id (a small table keeps it short). */
struct session {
	unsigned long long id;
	int user_ok, logged_in;
	int deleted[NMSG];
};
static struct session sessions[64];

static struct session *
session_get(unsigned long long id)
{
	int i;

	for (i = 0; i < 64; i++)
		if (sessions[i].id == id)
			return &sessions[i];
	for (i = 0; i < 64; i++)
		if (sessions[i].id == 0) {
			memset(&sessions[i], 0, sizeof(sessions[i]));
			sessions[i].id = id;
			return &sessions[i];
		}
	return NULL;
}

static void
reply(struct pop3d *srv, const struct pop3d_event *ev, const char *text)
{
	pop3d_send_to_client(srv, ev->client, ev->tag, text, strlen(text), 0);
}

/* Message number from ARG1, or -1. */
static int
msgno(const struct pop3d_event *ev, struct session *s)
{
	int n;

	if (ev->argc < 2 || (n = atoi(ev->argv[1].s)) < 1 || n > NMSG || s->deleted[n - 1])
		return -1;
	return n - 1;
}

static void
on_event(struct pop3d *srv, const struct pop3d_event *ev, void *arg)
{
	struct session *s = session_get(ev->client);
	const char *verb = ev->name + strlen("pop3d_cmd_");
	char buf[128];
	int i, n, count = 0, octets = 0;

	(void)arg;
	if (strcmp(ev->name, "pop3d_disconnected") == 0) {
		if (s != NULL)
			s->id = 0;
		return;
	}
	if (s == NULL) {
		reply(srv, ev, "-ERR [SYS/TEMP] too busy");
		return;
	}
	if (strcmp(verb, "user") == 0) {
		s->user_ok = ev->argc > 1 && strcmp(ev->argv[1].s, "demo") == 0;
		reply(srv, ev, "+OK send your password");
	} else if (strcmp(verb, "pass") == 0) {
		s->logged_in = s->user_ok && ev->argc > 1 && strcmp(ev->argv[1].s, "demo") == 0;
		reply(srv, ev, s->logged_in ? "+OK welcome" : "-ERR [AUTH] invalid login");
	} else if (strcmp(verb, "quit") == 0) {
		reply(srv, ev, "+OK bye"); /* a real server applies deletions here */
	} else if (!s->logged_in) {
		reply(srv, ev, "-ERR log in first");
	} else if (strcmp(verb, "stat") == 0) {
		for (i = 0; i < NMSG; i++)
			if (!s->deleted[i])
				count++, octets += (int)strlen(messages[i]);
		snprintf(buf, sizeof(buf), "+OK %d %d", count, octets);
		reply(srv, ev, buf);
	} else if (strcmp(verb, "list") == 0) {
		struct iovec v[NMSG];
		char lines[NMSG][32];

		for (i = n = 0; i < NMSG; i++)
			if (!s->deleted[i]) {
				snprintf(lines[n], sizeof(lines[n]), "%d %zu", i + 1,
				    strlen(messages[i]));
				v[n].iov_base = lines[n];
				v[n].iov_len = strlen(lines[n]);
				n++;
			}
		pop3d_send_lines(srv, ev->client, ev->tag, "+OK scan listing follows", v,
		    (size_t)n);
	} else if (strcmp(verb, "retr") == 0) {
		struct iovec v[16];
		const char *p, *e;

		if ((i = msgno(ev, s)) < 0) {
			reply(srv, ev, "-ERR no such message");
			return;
		}
		/* Split the message into lines; the core dot-stuffs them. */
		for (n = 0, p = messages[i]; *p != '\0' && n < 16; p = e + 2, n++) {
			e = strstr(p, "\r\n");
			v[n].iov_base = (void *)(size_t)p;
			v[n].iov_len = (size_t)(e - p);
		}
		pop3d_send_lines(srv, ev->client, ev->tag, "+OK message follows", v, (size_t)n);
	} else if (strcmp(verb, "dele") == 0) {
		if ((i = msgno(ev, s)) < 0)
			reply(srv, ev, "-ERR no such message");
		else {
			s->deleted[i] = 1;
			reply(srv, ev, "+OK deleted");
		}
	} else if (strcmp(verb, "noop") == 0 || strcmp(verb, "rset") == 0) {
		if (verb[0] == 'r')
			memset(s->deleted, 0, sizeof(s->deleted));
		reply(srv, ev, "+OK");
	} else
		reply(srv, ev, "-ERR not implemented");
}

int
main(int argc, char **argv)
{
	static const char *const events[] = { "cmd_*", "disconnected" };
	struct pop3d_options opts;
	struct pop3d_sockname name;
	struct event_base *base = event_base_new();
	struct pop3d *srv;
	uint64_t me;

	signal(SIGPIPE, SIG_IGN); /* a peer closing mid-write must not kill us */
	pop3d_options_init(&opts);
	opts.hostname = "tinypop3.example";
	if (base == NULL || (srv = pop3d_new(base, &opts)) == NULL ||
	    pop3d_listen(srv, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 1110) == -1) {
		perror("tinypop3");
		return 1;
	}
	me = pop3d_consumer_add(srv, "tinypop3", on_event, NULL);
	pop3d_consumer_register(srv, me, events, 2, NULL);
	pop3d_getsockname(srv, &name, 1);
	printf("tinypop3 listening on %s port %d\n", name.address, name.port);
	fflush(stdout);
	event_base_dispatch(base);
	pop3d_free(srv);
	event_base_free(base);
	return 0;
}
