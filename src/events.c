/* events.c - dispatch and emit (sequence, -vv trace, pipeline); event names. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mask.h"
#include "server.h"
#include "verbs.h"

/* Trace one event at -vv; secrets masked by the rule of mask.c. */
static void
events_trace(const struct pop3d_event *ev)
{
	char buf[512];
	size_t o = 0;
	int i, rule;

	if (log_verbose() < 2)
		return;
	buf[0] = '\0';
	for (i = 0; i < ev->argc && o < sizeof(buf) - 1; i++) {
		const struct pop3d_arg *a = &ev->argv[i];
		int n;

		if (a->type == POP3D_ARG_INT)
			n = snprintf(buf + o, sizeof(buf) - o, " arg%d=%lld", i, a->i);
		else {
			/* Strings are cut at 80 octets (escaped, at most 4 each);
			 * a masked one is masked whole, its marker never cut. */
			char safe[4 * 80 + sizeof(" " MASK_HIDDEN)];

			rule = mask_event_arg(ev->name, i);
			mask_arg(safe, sizeof(safe), rule, a->s,
			    rule == MASK_NONE && a->len > 80 ? 80 : a->len, MASK_LOG);
			n = snprintf(buf + o, sizeof(buf) - o, " arg%d=\"%s\"", i, safe);
		}
		if (n < 0)
			break;
		o += (size_t)n;
	}
	if (o >= sizeof(buf))
		buf[sizeof(buf) - 1] = '\0';
	log_trace("client=%llu event=%s seq=%llu%s", (unsigned long long)ev->client, ev->name,
	    (unsigned long long)ev->seq, buf);
}

/* Every event passes here: sequence number, trace, pipeline.  Returns the
 * PIPELINE_* flags; a suspended event about a client holds that client. */
int
events_dispatch(struct pop3d *srv, struct pop3d_event *ev)
{
	struct client *c;
	int flags;

	if (ev->type == POP3D_PLUGIN_POP3D)
		ev->seq = ++srv->next_seq;
	events_trace(ev);
	flags = pipeline_dispatch(srv->pipeline, srv, ev);
	if ((flags & PIPELINE_PENDING) && ev->client != 0 &&
	    (c = table_find(srv, ev->client)) != NULL)
		c->jobs++;
	return flags;
}

/* Emit a core event about c (or NULL) with copies of argv. */
void
events_emit(struct pop3d *srv, const char *name, struct client *c, struct pop3d_arg *argv, int argc)
{
	struct pop3d_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.name = name;
	if (c != NULL) {
		ev.client = c->id;
		ev.state = c->state;
		ev.tls = c->tls;
	}
	/* Plugins may replace (and free) string arguments: give them copies. */
	ev.argc = argc;
	if ((ev.argv = pipeline_args_copy(argv, argc)) == NULL)
		return;
	events_dispatch(srv, &ev);
	pipeline_args_free(ev.argv, ev.argc);
}

/* Of a departed client's cancelled events, consumers still get
 * pop3d_connection: every pop3d_disconnected they see has its connection. */
static int
events_cancel_deliver(const struct pop3d_event *ev)
{
	return ev->type == POP3D_PLUGIN_POP3D && strcmp(ev->name, "pop3d_connection") == 0;
}

/* A client went away: cancel every event of it that waits on a verdict. */
void
events_cancel_client(struct pop3d *srv, uint64_t client)
{
	int n = pipeline_cancel_client(srv->pipeline, srv, client, events_cancel_deliver);

	if (n > 0)
		log_info("client=%llu event=hooks-cancelled count=%d", (unsigned long long)client,
		    n);
}

/* pop3d_disconnected, once, after every suspended event of the client. */
void
events_disconnected(struct client *c)
{
	struct pop3d_arg a;

	if (c->disconnected_sent || c->jobs > 0 || !c->announced)
		return;
	memset(&a, 0, sizeof(a));
	a.type = POP3D_ARG_INT;
	a.i = (long long)c->id;
	c->disconnected_sent = 1;
	events_emit(c->srv, "pop3d_disconnected", c, &a, 1);
}

/* "pop3d_cmd_" + verb (at most LINE_VERB_MAX) into name
 * (EVENTS_CMD_MAX octets): no printf per command. */
void
events_cmd_name(char *name, const char *verb)
{
	memcpy(name, "pop3d_cmd_", 10);
	memcpy(name + 10, verb, strlen(verb) + 1);
}

/* The next event sequence number (the control channel numbers its own). */
uint64_t
pop3d_next_seq(struct pop3d *srv)
{
	return ++srv->next_seq;
}

/* Whether a POP3D handler would receive event name. */
int
pop3d_has_handler(struct pop3d *srv, const char *name)
{
	char *full = pipeline_normalise(name);
	int rv;

	if (full == NULL)
		return 0;
	rv = pipeline_has_handler(srv->pipeline, POP3D_PLUGIN_POP3D, full);
	free(full);
	return rv;
}

/* The events the core can emit (client verbs are added from the table). */
static const char *const events_core[] = { "pop3d_connection", "pop3d_disconnected",
	"pop3d_listener_failed", "pop3d_registered", "pop3d_shutdown", "pop3d_events_dropped",
	"pop3d_auth_data", "pop3d_tls", "pop3d_hook_timeout", "pop3d_hook_cancelled", NULL };

/* Whether pattern p (normalised) matches at least one possible event. */
static int
events_possible(struct pop3d *srv, const char *p)
{
	const char *const *v;
	const struct verb *vb;
	char name[LINE_VERB_MAX + 16];
	size_t i;

	for (v = events_core; *v != NULL; v++)
		if (pipeline_match(p, *v))
			return 1;
	for (vb = verbs_table; vb->name != NULL; vb++) {
		snprintf(name, sizeof(name), "pop3d_cmd_%s", vb->name);
		if (pipeline_match(p, name))
			return 1;
	}
	for (i = 0; srv->extra_verbs[i] != NULL; i++) {
		char lower[LINE_VERB_MAX + 1];
		size_t k;

		for (k = 0; k < LINE_VERB_MAX && srv->extra_verbs[i][k]; k++)
			lower[k] = (char)(srv->extra_verbs[i][k] | 0x20);
		lower[k] = '\0';
		snprintf(name, sizeof(name), "pop3d_cmd_%s", lower);
		if (pipeline_match(p, name))
			return 1;
	}
	/* Custom events injected with send_event live under pop3d_x_. */
	return strncmp(p, "pop3d_x_", 8) == 0 && p[8] != '\0';
}

/* Whether name (normalised here) names an event that can happen. */
int
pop3d_event_known(struct pop3d *srv, const char *name)
{
	char *full;
	int rv;

	if (name == NULL || *name == '\0' || strlen(name) > 128)
		return 0;
	if ((full = pipeline_normalise(name)) == NULL)
		return 0;
	rv = events_possible(srv, full);
	free(full);
	return rv;
}
