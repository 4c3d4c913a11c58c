/*
 * ctlbench.c - a minimal pop3d controller for the benchmarks: answers every
 * POP3 command from memory over the control socket (benchmsg.h mailboxes).
 *
 *   ctlbench --socket PATH [--name NAME]
 *
 * One non-blocking connection, jansson to parse each event, replies built
 * with snprintf.  Replies to all the events of one read are appended to
 * the output buffer and leave in one write when the loop comes round
 * (batched writes).  RETR goes out as send_file of a temporary file that
 * holds the message (written at start, removed at exit); LIST and UIDL as
 * send_to_client "lines".  Prints "ready" on standard output once it is
 * registered.  Exits when pop3d closes the socket, or on SIGTERM/SIGINT.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
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

#include "benchmsg.h"

static struct event_base *base;
static struct bufferevent *bev;
static struct bench_table table;
static struct bench_mailbox boxes[3];
static char tmpdir[64];
static char *path[3][BENCH_SMALL_MSGS + 1];
static char *stat_text[3], *list_lines[3], *uidl_lines[3];
static int registered;
static uint64_t nevents, nreplies, nerrors;

/* A JSON string body for our own ASCII texts (no escaping needed). */
static void
add_text(struct evbuffer *out, uint64_t client, uint64_t tag, const char *text)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
	    "{\"cmd\":\"send_to_client\",\"client\":%" PRIu64 ",\"tag\":%" PRIu64
	    ",\"text\":\"%s\"}\n",
	    client, tag, text);

	evbuffer_add(out, buf, (size_t)n);
}

static void
add_lines(struct evbuffer *out, uint64_t client, uint64_t tag, const char *lines)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf),
	    "{\"cmd\":\"send_to_client\",\"client\":%" PRIu64 ",\"tag\":%" PRIu64
	    ",\"lines\":%s}\n",
	    client, tag, lines);

	evbuffer_add(out, buf, (size_t)n);
}

static void
add_file(struct evbuffer *out, uint64_t client, uint64_t tag, const char *status, const char *file)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf),
	    "{\"cmd\":\"send_file\",\"client\":%" PRIu64 ",\"tag\":%" PRIu64
	    ",\"path\":\"%s\",\"status\":\"%s\"}\n",
	    client, tag, file, status);

	evbuffer_add(out, buf, (size_t)n);
}

static void
on_event(struct evbuffer *out, const char *name, uint64_t client, uint64_t tag, const char *arg,
    size_t arglen)
{
	struct bench_client *bc;
	const char *verb;
	char buf[128];
	int n;

	nevents++;
	if (strcmp(name, "pop3d_disconnected") == 0) {
		bench_table_del(&table, client);
		return;
	}
	if (strncmp(name, "pop3d_cmd_", 10) != 0 || tag == 0)
		return;
	verb = name + 10;
	bc = bench_table_get(&table, client, 1);
	if (bc == NULL) {
		add_text(out, client, tag, "-ERR [SYS/TEMP] out of memory");
		return;
	}
	if (strcmp(verb, "noop") == 0) {
		add_text(out, client, tag, bc->logged_in ? "+OK" : "-ERR log in first");
	} else if (strcmp(verb, "quit") == 0) {
		add_text(out, client, tag, "+OK bye");
	} else if (strcmp(verb, "user") == 0) {
		if (bc->logged_in)
			add_text(out, client, tag, "-ERR already logged in");
		else {
			bc->box = arg != NULL ? (int)bench_user_box(arg, arglen) : 0;
			add_text(out, client, tag, "+OK send PASS");
		}
	} else if (strcmp(verb, "pass") == 0) {
		if (bc->logged_in)
			add_text(out, client, tag, "-ERR already logged in");
		else if (!bc->box)
			add_text(out, client, tag, "-ERR USER first");
		else if (arg == NULL || strcmp(arg, BENCH_PASSWORD) != 0)
			add_text(out, client, tag, "-ERR [AUTH] invalid login");
		else {
			bc->logged_in = 1;
			add_text(out, client, tag, "+OK logged in");
		}
	} else if (strcmp(verb, "stat") != 0 && strcmp(verb, "list") != 0 &&
	    strcmp(verb, "uidl") != 0 && strcmp(verb, "retr") != 0 && strcmp(verb, "rset") != 0) {
		add_text(out, client, tag, "-ERR unknown command");
	} else if (!bc->logged_in) {
		add_text(out, client, tag, "-ERR log in first");
	} else if (strcmp(verb, "stat") == 0) {
		add_text(out, client, tag, stat_text[bc->box]);
	} else if (strcmp(verb, "rset") == 0) {
		add_text(out, client, tag, "+OK");
	} else if (arg == NULL && strcmp(verb, "list") == 0) {
		add_lines(out, client, tag, list_lines[bc->box]);
	} else if (arg == NULL && strcmp(verb, "uidl") == 0) {
		add_lines(out, client, tag, uidl_lines[bc->box]);
	} else if ((n = bench_msgno(arg, boxes[bc->box].n)) < 0) {
		add_text(out, client, tag, "-ERR no such message");
	} else if (strcmp(verb, "list") == 0) {
		snprintf(buf, sizeof(buf), "+OK %d %zu", n, boxes[bc->box].msg[n - 1].octets);
		add_text(out, client, tag, buf);
	} else if (strcmp(verb, "uidl") == 0) {
		snprintf(buf, sizeof(buf), "+OK %d %s", n, boxes[bc->box].msg[n - 1].uid);
		add_text(out, client, tag, buf);
	} else {
		snprintf(buf, sizeof(buf), "+OK %zu octets", boxes[bc->box].msg[n - 1].octets);
		add_file(out, client, tag, buf, path[bc->box][n]);
	}
}

/* One line from pop3d. */
static void
on_line(struct evbuffer *out, const char *line, size_t len)
{
	json_t *root, *v, *args;
	json_error_t err;
	const char *type, *arg = NULL;
	size_t arglen = 0;

	/* Fast path for the reply to each of our commands. */
	if (len > 16 && memcmp(line, "{\"type\":\"reply\",", 16) == 0 &&
	    memmem(line, len, "\"ok\":true", 9) != NULL) {
		nreplies++;
		/* hello, then register: ready after the second. */
		if (registered <= 0 && ++registered == 1) {
			printf("ready\n");
			fflush(stdout);
		}
		return;
	}
	if ((root = json_loadb(line, len, 0, &err)) == NULL) {
		fprintf(stderr, "ctlbench: bad JSON from pop3d: %s\n", err.text);
		nerrors++;
		return;
	}
	type = json_string_value(json_object_get(root, "type"));
	if (type != NULL && strcmp(type, "event") == 0) {
		v = json_object_get(root, "event");
		args = json_object_get(root, "args");
		if (json_is_array(args) && json_array_size(args) > 1 &&
		    json_is_string(json_array_get(args, 1))) {
			arg = json_string_value(json_array_get(args, 1));
			arglen = json_string_length(json_array_get(args, 1));
		}
		if (json_is_string(v))
			on_event(out, json_string_value(v),
			    (uint64_t)json_integer_value(json_object_get(root, "client")),
			    (uint64_t)json_integer_value(json_object_get(root, "tag")), arg,
			    arglen);
	} else if (type != NULL && strcmp(type, "reply") == 0) {
		nerrors++;
		if (nerrors <= 10)
			fprintf(stderr, "ctlbench: error reply: %.*s\n", (int)len, line);
	}
	json_decref(root);
}

static void
read_cb(struct bufferevent *b, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(b), *out = bufferevent_get_output(b);
	size_t avail = evbuffer_get_length(in), off = 0;
	const char *data, *nl;

	(void)arg;
	if (avail == 0)
		return;
	data = (const char *)evbuffer_pullup(in, -1);
	while (off < avail && (nl = memchr(data + off, '\n', avail - off)) != NULL) {
		size_t len = (size_t)(nl - (data + off));

		if (len > 0)
			on_line(out, data + off, len);
		off += len + 1;
	}
	evbuffer_drain(in, off);
}

static void
event_cb(struct bufferevent *b, short what, void *arg)
{
	(void)b;
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		fprintf(stderr, "ctlbench: pop3d closed the control connection\n");
		event_base_loopexit(base, NULL);
	}
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopexit(base, NULL);
}

static char *
json_lines(const struct bench_mailbox *mb, int uidl)
{
	char buf[1024];
	int i, n;

	if (uidl)
		n = snprintf(buf, sizeof(buf), "[\"+OK\"");
	else
		n = snprintf(buf, sizeof(buf), "[\"+OK %d messages (%zu octets)\"", mb->n,
		    mb->total);
	for (i = 0; i < mb->n; i++) {
		if (uidl)
			n += snprintf(buf + n, sizeof(buf) - (size_t)n, ",\"%d %s\"", i + 1,
			    mb->msg[i].uid);
		else
			n += snprintf(buf + n, sizeof(buf) - (size_t)n, ",\"%d %zu\"", i + 1,
			    mb->msg[i].octets);
	}
	snprintf(buf + n, sizeof(buf) - (size_t)n, "]");
	return strdup(buf);
}

static int
prepare(enum bench_box box)
{
	struct bench_mailbox *mb = &boxes[box];
	char buf[256];
	FILE *f;
	int i;

	if (bench_mailbox_make(mb, box, 0, 0) == -1)
		return -1;
	snprintf(buf, sizeof(buf), "+OK %d %zu", mb->n, mb->total);
	stat_text[box] = strdup(buf);
	list_lines[box] = json_lines(mb, 0);
	uidl_lines[box] = json_lines(mb, 1);
	for (i = 0; i < mb->n; i++) {
		snprintf(buf, sizeof(buf), "%s/%s%d.eml", tmpdir,
		    box == BENCH_BOX_BIG ? "big" : "small", i + 1);
		if ((path[box][i + 1] = strdup(buf)) == NULL || (f = fopen(buf, "w")) == NULL ||
		    fwrite(mb->msg[i].text, 1, mb->msg[i].len, f) != mb->msg[i].len ||
		    fclose(f) != 0) {
			perror(buf);
			return -1;
		}
	}
	return 0;
}

static void
cleanup(void)
{
	int b, i;

	for (b = 1; b <= 2; b++)
		for (i = 1; i <= BENCH_SMALL_MSGS; i++)
			if (path[b][i] != NULL)
				unlink(path[b][i]);
	if (tmpdir[0] != '\0')
		rmdir(tmpdir);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *name = "ctlbench";
	struct sockaddr_un sun;
	struct event *sigs[2];
	char hello[256];
	int ch, fd = -1, tries, rv = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		default:
			fprintf(stderr, "usage: ctlbench --socket PATH [--name NAME]\n");
			return 2;
		}
	}
	if (sock == NULL || strlen(sock) >= sizeof(sun.sun_path) || strlen(name) > 60 ||
	    strpbrk(name, "\"\\") != NULL) {
		fprintf(stderr, "usage: ctlbench --socket PATH [--name NAME]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ctlbench-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("ctlbench: mkdtemp");
		return 1;
	}
	if (prepare(BENCH_BOX_SMALL) == -1 || prepare(BENCH_BOX_BIG) == -1) {
		cleanup();
		return 1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, sock, strlen(sock) + 1);
	for (tries = 0; tries < 100; tries++) {
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
			break;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		close(fd);
		fd = -1;
		usleep(100000);
	}
	if (fd == -1) {
		fprintf(stderr, "ctlbench: cannot connect to %s: %s\n", sock, strerror(errno));
		cleanup();
		return 1;
	}
	evutil_make_socket_nonblocking(fd);
	if ((base = event_base_new()) == NULL ||
	    (bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		cleanup();
		return 1;
	}
	bufferevent_setcb(bev, read_cb, NULL, event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	snprintf(hello, sizeof(hello),
	    "{\"cmd\":\"hello\",\"name\":\"%s\"}\n"
	    "{\"cmd\":\"register\",\"events\":[\"cmd_*\",\"disconnected\"]}\n",
	    name);
	registered = -1; /* the hello reply is not the registration */
	bufferevent_write(bev, hello, strlen(hello));
	sigs[0] = evsignal_new(base, SIGTERM, stop_cb, NULL);
	sigs[1] = evsignal_new(base, SIGINT, stop_cb, NULL);
	event_add(sigs[0], NULL);
	event_add(sigs[1], NULL);
	event_base_dispatch(base);
	fprintf(stderr, "ctlbench: events=%" PRIu64 " ok-replies=%" PRIu64 " errors=%" PRIu64 "\n",
	    nevents, nreplies, nerrors);
	if (nerrors > 0)
		rv = 1;
	event_free(sigs[0]);
	event_free(sigs[1]);
	bufferevent_free(bev);
	event_base_free(base);
	cleanup();
	return rv;
}
