/* api.c - the public calls about clients and events: send, list, inject. */
/* Above the session layer it calls into; greeting.c uses it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

/* pop3d_strerror() texts, by POP3D_ERR_* code. */
static const char *const api_errors[] = { "ok", "unknown client", "stale tag", "invalid argument",
	"i/o error", "shutting down", "unknown event", "limit exceeded", "out of memory" };

/* The text of a POP3D_ERR_* code (either sign). */
const char *
pop3d_strerror(int err)
{
	if (err < 0)
		err = -err;
	if ((size_t)err >= sizeof(api_errors) / sizeof(api_errors[0]))
		return "unknown error";
	return api_errors[err];
}

/* "authorization" or "transaction". */
const char *
pop3d_state_name(enum pop3d_state st)
{
	return st == POP3D_STATE_TRANSACTION ? "transaction" : "authorization";
}

/* The options in force (normalised by pop3d_new). */
const struct pop3d_options *
pop3d_get_options(struct pop3d *srv)
{
	return &srv->opts;
}

/* The seed's methods. */
/* A live client of id, or NULL. */
static struct client *
api_client(struct pop3d *srv, uint64_t id)
{
	struct client *c = table_find(srv, id);

	return c != NULL && !c->dead ? c : NULL;
}

/* One line to client id: the answer to tag, or unsolicited (tag 0). */
int
pop3d_send_to_client(struct pop3d *srv, uint64_t id, uint64_t tag, const char *line, size_t len,
    int flags)
{
	struct client *c = api_client(srv, id);

	if (c == NULL)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (line == NULL)
		return -POP3D_ERR_INVALID;
	return reply_line(c, tag, line, len, flags);
}

/* A whole multi-line answer to client id. */
int
pop3d_send_lines(struct pop3d *srv, uint64_t id, uint64_t tag, const char *status,
    const struct iovec *lines, size_t n)
{
	struct client *c = api_client(srv, id);

	if (c == NULL)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (status == NULL || (n > 0 && lines == NULL))
		return -POP3D_ERR_INVALID;
	return reply_lines(c, tag, status, lines, n);
}

/* Whether the answer to tag is open (POP3D_SEND_MORE). */
int
pop3d_response_open(struct pop3d *srv, uint64_t id, uint64_t tag)
{
	struct client *c = api_client(srv, id);

	return c != NULL && reply_open(c, tag);
}

/* A file as a multi-line answer (top_lines -1: all of it). */
int
pop3d_send_file(struct pop3d *srv, uint64_t id, uint64_t tag, const char *status, const char *path,
    long top_lines)
{
	struct client *c = api_client(srv, id);

	if (c == NULL)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (status == NULL || path == NULL || top_lines < -1)
		return -POP3D_ERR_INVALID;
	return reply_file(c, tag, status, path, top_lines);
}

/* Close client id after its output, text (may be NULL) last. */
int
pop3d_disconnect(struct pop3d *srv, uint64_t id, const char *text)
{
	struct client *c = api_client(srv, id);

	if (c == NULL || c->closing)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	if (text != NULL && !line_clean(text, strlen(text)))
		return -POP3D_ERR_INVALID;
	output_close(c, "disconnect requested", text);
	return 0;
}

/* Inject an event (a private copy of argv goes through the pipeline). */
int
pop3d_send_event(struct pop3d *srv, const char *name, const struct pop3d_arg *argv, int argc,
    uint64_t origin)
{
	struct pop3d_event ev;
	struct pop3d_arg *copy;
	struct client *c;
	char *full;
	int i;

	if (name == NULL || strpbrk(name, "*?[") != NULL || strcmp(name, "all") == 0 || argc < 0 ||
	    (argc > 0 && argv == NULL))
		return -POP3D_ERR_INVALID;
	if (!pop3d_event_known(srv, name))
		return -POP3D_ERR_UNKNOWN_EVENT;
	if ((full = pipeline_normalise(name)) == NULL)
		return -POP3D_ERR_NOMEM;
	/* Handlers may rewrite arguments: give them a private copy. */
	if ((copy = calloc((size_t)argc + 1, sizeof(*copy))) == NULL) {
		free(full);
		return -POP3D_ERR_NOMEM;
	}
	for (i = 0; i < argc; i++) {
		copy[i] = argv[i];
		if (argv[i].type != POP3D_ARG_INT && argv[i].s != NULL &&
		    (copy[i].s = malloc(argv[i].len + 1)) != NULL) {
			memcpy(copy[i].s, argv[i].s, argv[i].len);
			copy[i].s[argv[i].len] = '\0';
		}
	}
	memset(&ev, 0, sizeof(ev));
	ev.name = full;
	ev.origin = origin;
	ev.argc = argc;
	ev.argv = copy;
	if (argc > 0 && argv[0].type == POP3D_ARG_INT && argv[0].i > 0 &&
	    (c = api_client(srv, (uint64_t)argv[0].i)) != NULL) {
		ev.client = c->id;
		ev.state = c->state;
		ev.tls = c->tls;
	}
	events_dispatch(srv, &ev);
	for (i = 0; i < ev.argc; i++)
		if (ev.argv[i].type != POP3D_ARG_INT)
			free(ev.argv[i].s);
	free(copy);
	free(full);
	return 0;
}

/* What pop3d_clients() tells of c. */
static void
api_info(struct client *c, struct pop3d_client_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	ci->id = c->id;
	snprintf(ci->peer, sizeof(ci->peer), "%s", c->peer);
	ci->peer_port = c->peer_port;
	snprintf(ci->local, sizeof(ci->local), "%s", c->local);
	ci->local_port = c->local_port;
	ci->state = c->state;
	ci->tls = c->tls;
	ci->connected = c->connected;
	ci->idle = (timers_now() - c->last_active) / 1000;
	ci->tag = c->inflight;
}

/* cb for each live client until it returns non-zero. */
void
pop3d_clients(struct pop3d *srv, int (*cb)(const struct pop3d_client_info *, void *), void *arg)
{
	struct pop3d_client_info ci;
	struct client *c;

	TAILQ_FOREACH (c, &srv->clients, entry) {
		if (c->dead)
			continue;
		api_info(c, &ci);
		if (cb(&ci, arg) != 0)
			break;
	}
}

/* What is known of client id. */
int
pop3d_client_info(struct pop3d *srv, uint64_t id, struct pop3d_client_info *out)
{
	struct client *c = api_client(srv, id);

	if (c == NULL)
		return -POP3D_ERR_UNKNOWN_CLIENT;
	api_info(c, out);
	return 0;
}

/* Octets pop3d_send_file would send for path (-1 on error). */
long long
pop3d_file_octets(const char *path, long top_lines)
{
	char in[16384], out[STUFF_MAX_OUT(16384)];
	struct stuff st;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	stuff_init(&st, top_lines);
	while (stuff_wants_more(&st) && (n = read(fd, in, sizeof(in))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		stuff_run(&st, in, (size_t)n, out);
	}
	close(fd);
	if (stuff_wants_more(&st)) {
		if (st.cr || !st.bol)
			st.octets += 2;
	}
	return (long long)st.octets;
}
