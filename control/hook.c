/* hook.c - controllers as plugins: hooks sent, verdicts and deadlines. */
/*
 * A controller adds a plugin to the one
 * pipeline; for each matching event it receives a hook message and answers
 * with a verdict.  The event (and its client) waits meanwhile.
 *
 * Why the deadline: a hook not answered within timeout_ms (default 2 s)
 * resolves with its on_timeout verdict, so a slow or dead controller can
 * never hold a client forever.  Unless told otherwise, a hook on the way to
 * authentication (cmd_pass/cmd_apop/cmd_auth/auth_data, or a POP3C hook on
 * the answer to PASS/APOP/AUTH) resolves with tempfail, so a timeout never
 * lets a client past authentication.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../src/log.h"
#include "controller.h"
#include "pop3d.h"
#include "verbs.h"

static const char *const hook_verdicts[] = { "tempfail", "none", "client", "plugin", "all" };

/* "none".."all" -> POP3D_EAT_*, "tempfail" -> POP3D_HOOK_TEMPFAIL; 0 if bad. */
int
hook_verdict_parse(const char *s, int allow_tempfail)
{
	int i;

	if (s == NULL)
		return 0;
	for (i = 1; i <= 4; i++)
		if (strcmp(s, hook_verdicts[i]) == 0)
			return i;
	if (allow_tempfail && strcmp(s, "tempfail") == 0)
		return POP3D_HOOK_TEMPFAIL;
	return 0;
}

/* The name of a verdict, for logs. */
static const char *
hook_verdict_name(int v)
{
	if (v == POP3D_HOOK_TEMPFAIL)
		return "tempfail";
	if (v >= 1 && v <= 4)
		return hook_verdicts[v];
	return "default";
}

/* The controller plugin of that alias, or NULL. */
struct hook_plugin *
hook_plugin_find(struct control *ctl, const char *alias)
{
	struct hook_plugin *p;

	TAILQ_FOREACH (p, &ctl->plugins, entry)
		if (strcmp(p->alias, alias) == 0)
			return p;
	return NULL;
}

/* Whether an event is on the way to authentication. */
static int
hook_is_auth(const struct pop3d_event *ev)
{
	const char *verb;

	if (ev->type == POP3D_PLUGIN_POP3C)
		verb = ev->command;
	else if (strcmp(ev->name, "pop3d_auth_data") == 0)
		return 1;
	else
		verb = verbs_of_event(ev->name);
	return verb != NULL && (verbs_flags(verb, strlen(verb)) & VERB_AUTH);
}

/* Forget a pending hook and its deadline. */
static void
hook_pending_free(struct hook_pending *hp)
{
	TAILQ_REMOVE(&hp->ctl->pending, hp, entry);
	event_free(hp->timer);
	free(hp);
}

/* Tell the hook's owner (if still there) that it ended without its
 * verdict: name is pop3d_hook_timeout or pop3d_hook_cancelled.  The write
 * may mark the owner for dropping; it never frees hp or the owner. */
static void
hook_tell(struct hook_pending *hp, const char *name)
{
	struct controller *c = peer_find(hp->ctl, hp->controller);
	struct pop3d_arg a[4];

	if (c == NULL)
		return;
	memset(a, 0, sizeof(a));
	a[0].type = POP3D_ARG_INT;
	a[0].i = (long long)hp->hook;
	a[1].type = POP3D_ARG_STR;
	a[1].s = hp->alias;
	a[1].len = strlen(hp->alias);
	a[2].type = POP3D_ARG_STR;
	a[2].s = hp->event;
	a[2].len = strlen(hp->event);
	a[3].type = POP3D_ARG_INT;
	a[3].i = (long long)hp->client;
	peer_write_event(c, name, a, 4);
}

/* The pending hook of that id, or NULL. */
static struct hook_pending *
hook_pending_find(struct control *ctl, uint64_t hook)
{
	struct hook_pending *hp;

	TAILQ_FOREACH (hp, &ctl->pending, entry)
		if (hp->hook == hook)
			return hp;
	return NULL;
}

/* No verdict in time: tell the controller, resolve with on_timeout. */
static void
hook_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hook_pending *hp = arg;
	struct control *ctl = hp->ctl;
	uint64_t hook = hp->hook;
	int verdict = hp->on_timeout;

	(void)fd;
	(void)what;
	if (!pop3d_hook_pending(ctl->srv, hook)) {
		/* Cancelled after its plugin was deleted: nobody to tell. */
		hook_pending_free(hp);
		return;
	}
	log_warnx("controller=%llu event=hook-timeout hook=%llu plugin=%s event_name=%s "
		  "client=%llu resolution=%s",
	    (unsigned long long)hp->controller, (unsigned long long)hook, hp->alias, hp->event,
	    (unsigned long long)hp->client, hook_verdict_name(verdict));
	hook_tell(hp, "pop3d_hook_timeout");
	hook_pending_free(hp);
	pop3d_hook_resolve(ctl->srv, hook, verdict, NULL, 0);
}

/* The core cancelled a hook (its client went away): tell the owner, forget
 * it; a later verdict for it is stale. */
static void
hook_cancel(struct pop3d *srv, uint64_t hook, void *arg)
{
	struct hook_plugin *p = arg;
	struct hook_pending *hp;

	(void)srv;
	if ((hp = hook_pending_find(p->ctl, hook)) == NULL)
		return;
	log_info("controller=%llu event=hook-cancelled hook=%llu plugin=%s event_name=%s "
		 "client=%llu",
	    (unsigned long long)hp->controller, (unsigned long long)hook, hp->alias, hp->event,
	    (unsigned long long)hp->client);
	hook_tell(hp, "pop3d_hook_cancelled");
	hook_pending_free(hp);
}

/* Whether controller is a member of group plugin p. */
int
hook_plugin_is_member(const struct hook_plugin *p, uint64_t controller)
{
	size_t i;

	for (i = 0; i < p->nmembers; i++)
		if (p->members[i] == controller)
			return 1;
	return 0;
}

/* A group_eligible_fn: a live member of the plugin. */
static int
hook_eligible(uint64_t id, void *arg)
{
	struct hook_plugin *p = arg;

	return hook_plugin_is_member(p, id) && peer_live(peer_find(p->ctl, id));
}

/* Who gets a hook of p: the owner; for a group plugin the member the
 * event's client is bound to (bound now if it was not), or for an event
 * about no client the next live member, round robin.  NULL: nobody. */
static struct controller *
hook_target(struct hook_plugin *p, const struct pop3d_event *ev)
{
	struct group_entry *g;
	uint64_t id;

	if (p->group[0] == '\0')
		return peer_find(p->ctl, p->controller);
	if ((g = group_find(&p->ctl->groups, p->group)) == NULL)
		return NULL;
	if (ev->client != 0)
		id = group_route(g, ev->client, strcmp(ev->name, "pop3d_disconnected") != 0,
		    hook_eligible, p);
	else
		id = group_pick(g, 0, hook_eligible, p);
	if (id == 0 || !hook_plugin_is_member(p, id))
		return NULL; /* its member did not join this plugin */
	return peer_find(p->ctl, id);
}

/* The pipeline calls this for each matching event: send a hook, suspend. */
static int
hook_dispatch(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	struct hook_plugin *p = arg;
	struct control *ctl = p->ctl;
	struct controller *c = hook_target(p, ev);
	struct hook_pending *hp;
	int type = ev->type == POP3D_PLUGIN_POP3C ? 1 : 0;
	struct timeval tv;
	size_t len;
	char *s;

	(void)srv;
	if (c == NULL || c->closing || c->drop_reason != NULL)
		return POP3D_EAT_NONE;
	if ((hp = calloc(1, sizeof(*hp))) == NULL)
		return POP3D_EAT_NONE;
	hp->ctl = ctl;
	hp->hook = ev->hook;
	hp->controller = c->id;
	hp->client = ev->client;
	snprintf(hp->alias, sizeof(hp->alias), "%s", p->alias);
	snprintf(hp->event, sizeof(hp->event), "%s", ev->name);
	/* Unset: tempfail on the way to authentication, else let it through. */
	if ((hp->on_timeout = p->on_timeout[type]) == 0)
		hp->on_timeout = hook_is_auth(ev) ? POP3D_HOOK_TEMPFAIL : POP3D_EAT_NONE;
	if ((hp->timer = evtimer_new(pop3d_get_base(ctl->srv), hook_timeout_cb, hp)) == NULL ||
	    (s = codec_hook(ev, p->alias, &len)) == NULL) {
		if (hp->timer != NULL)
			event_free(hp->timer);
		free(hp);
		return POP3D_EAT_NONE;
	}
	TAILQ_INSERT_TAIL(&ctl->pending, hp, entry);
	tv.tv_sec = p->timeout_ms[type] / 1000;
	tv.tv_usec = (suseconds_t)(p->timeout_ms[type] % 1000) * 1000;
	evtimer_add(hp->timer, &tv);
	peer_write(c, s, len);
	free(s);
	return POP3D_EAT_PENDING;
}

/* Add member id to group plugin p; 0 or -1. */
static int
hook_member_add(struct hook_plugin *p, uint64_t id)
{
	uint64_t *m = realloc(p->members, (p->nmembers + 1) * sizeof(*m));

	if (m == NULL)
		return -1;
	p->members = m;
	p->members[p->nmembers++] = id;
	return 0;
}

/*
 * Add a plugin owned by controller c; the plugin count, or -1 (alias in
 * use).  A group member joins its group's plugin of that alias (*joined
 * set, the priority given is ignored) or creates it.
 */
int
hook_plugin_add(struct controller *c, const char *alias, int priority, int *joined)
{
	struct control *ctl = c->ctl;
	struct hook_plugin *p;
	int n;

	*joined = 0;
	if (c->group[0] != '\0' && (p = hook_plugin_find(ctl, alias)) != NULL) {
		if (strcmp(p->group, c->group) != 0 || hook_plugin_is_member(p, c->id) ||
		    hook_member_add(p, c->id) != 0)
			return -1;
		*joined = 1;
		log_info("controller=%llu event=plugin-join plugin=%s group=%s",
		    (unsigned long long)c->id, alias, c->group);
		return (int)pop3d_plugin_order(ctl->srv, NULL, 0);
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	p->ctl = ctl;
	p->controller = c->id;
	p->priority = priority;
	p->timeout_ms[0] = p->timeout_ms[1] = HOOK_TIMEOUT_MS;
	snprintf(p->alias, sizeof(p->alias), "%s", alias);
	snprintf(p->group, sizeof(p->group), "%s", c->group);
	if ((c->group[0] != '\0' && hook_member_add(p, c->id) != 0) ||
	    (n = pop3d_plugin_add(ctl->srv, alias, priority, hook_dispatch, p)) < 0) {
		free(p->members);
		free(p);
		return -1;
	}
	pop3d_plugin_set_cancel(ctl->srv, alias, hook_cancel);
	TAILQ_INSERT_TAIL(&ctl->plugins, p, entry);
	log_info("controller=%llu event=plugin-add plugin=%s priority=%d",
	    (unsigned long long)c->id, alias, priority);
	return n;
}

/* Delete a controller plugin from the pipeline. */
static int
hook_plugin_del(struct control *ctl, struct hook_plugin *p)
{
	TAILQ_REMOVE(&ctl->plugins, p, entry);
	pop3d_plugin_del(ctl->srv, p->alias);
	log_info("controller=%llu event=plugin-del plugin=%s", (unsigned long long)p->controller,
	    p->alias);
	free(p->members);
	free(p);
	return 0;
}

/* Controller leaves plugin p: a group plugin goes with its last member,
 * any other with its owner.  1 when the plugin went, else 0. */
int
hook_plugin_leave(struct control *ctl, struct hook_plugin *p, uint64_t controller)
{
	size_t i;

	if (p->group[0] == '\0') {
		hook_plugin_del(ctl, p);
		return 1;
	}
	for (i = 0; i < p->nmembers; i++)
		if (p->members[i] == controller) {
			p->members[i] = p->members[--p->nmembers];
			break;
		}
	if (p->nmembers == 0) {
		hook_plugin_del(ctl, p);
		return 1;
	}
	if (p->controller == controller)
		p->controller = p->members[0];
	log_info("controller=%llu event=plugin-leave plugin=%s", (unsigned long long)controller,
	    p->alias);
	return 0;
}

/* A verdict from controller c; *code is the error code on failure. */
int
hook_verdict(struct controller *c, uint64_t hook, int verdict, struct pop3d_arg *argv, int argc,
    const char **code)
{
	struct control *ctl = c->ctl;
	struct hook_pending *hp;

	if ((hp = hook_pending_find(ctl, hook)) == NULL) {
		*code = "stale";
		return -1;
	}
	if (hp->controller != c->id) {
		*code = "invalid_argument";
		return -1;
	}
	hook_pending_free(hp);
	if (pop3d_hook_resolve(ctl->srv, hook, verdict, argv, argv != NULL ? argc : 0) != 0) {
		*code = "stale";
		return -1;
	}
	return 0;
}

/* Whether client is in the list. */
static int
hook_in(const uint64_t *list, size_t n, uint64_t client)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i] == client)
			return 1;
	return 0;
}

/*
 * A member's clients after it left: their session state lived in it, so
 * each is closed, with -ERR [SYS/TEMP] for the command in flight (unless
 * an answer to it is already open: then the connection is cut short).
 */
static void
hook_orphans(struct control *ctl, uint64_t controller, const char *group, const uint64_t *clients,
    size_t n)
{
	static const char msg[] = "-ERR [SYS/TEMP] server unavailable, try again later";
	struct pop3d_client_info ci;
	size_t i;

	for (i = 0; i < n; i++) {
		if (pop3d_client_info(ctl->srv, clients[i], &ci) != 0)
			continue;
		log_info("controller=%llu event=group-orphan group=%s client=%llu tag=%llu",
		    (unsigned long long)controller, group, (unsigned long long)clients[i],
		    (unsigned long long)ci.tag);
		/* The -ERR as the disconnect's last line, not a send: a send
		 * would complete the head, and answers recorded for commands
		 * dispatched after it (--pipeline-depth) would follow it out;
		 * the close drops those first. */
		if (ci.tag != 0 && !pop3d_response_open(ctl->srv, clients[i], ci.tag))
			pop3d_disconnect(ctl->srv, clients[i], msg);
		else
			pop3d_disconnect(ctl->srv, clients[i], NULL);
	}
}

/* A controller left: its plugins go first (a group plugin loses a
 * member), then its pending hooks resolve at once with their on_timeout
 * (the pipeline moves past them), or with tempfail for a client bound to
 * it in its group; then its other bound clients are closed. */
void
hook_controller_gone(struct controller *c)
{
	struct control *ctl = c->ctl;
	struct hook_plugin *p, *pn;
	struct hook_pending *hp, *hn;
	char group[GROUP_NAME_MAX + 1] = "";
	uint64_t *bound = NULL;
	size_t nbound = 0;

	if (c->group[0] != '\0' && group_leave(&ctl->groups, c->id, group, &bound, &nbound) < 0)
		log_warnx("controller=%llu event=group-leave error=\"out of memory\"",
		    (unsigned long long)c->id);
	for (p = TAILQ_FIRST(&ctl->plugins); p != NULL; p = pn) {
		pn = TAILQ_NEXT(p, entry);
		if (p->group[0] != '\0' ? hook_plugin_is_member(p, c->id) : p->controller == c->id)
			hook_plugin_leave(ctl, p, c->id);
	}
	for (hp = TAILQ_FIRST(&ctl->pending); hp != NULL; hp = hn) {
		hn = TAILQ_NEXT(hp, entry);
		if (hp->controller == c->id) {
			uint64_t hook = hp->hook;
			int verdict = hp->on_timeout;

			if (hook_in(bound, nbound, hp->client))
				verdict = POP3D_HOOK_TEMPFAIL;

			log_info("controller=%llu event=hook-abandoned hook=%llu resolution=%s",
			    (unsigned long long)c->id, (unsigned long long)hook,
			    hook_verdict_name(verdict));
			hook_pending_free(hp);
			pop3d_hook_resolve(ctl->srv, hook, verdict, NULL, 0);
			hn = TAILQ_FIRST(&ctl->pending); /* resolution may change the list */
		}
	}
	hook_orphans(ctl, c->id, group, bound, nbound);
	free(bound);
}

/* At control_free(): forget every pending hook and plugin. */
void
hook_free_all(struct control *ctl)
{
	struct hook_plugin *p;

	while (!TAILQ_EMPTY(&ctl->pending))
		hook_pending_free(TAILQ_FIRST(&ctl->pending));
	while ((p = TAILQ_FIRST(&ctl->plugins)) != NULL)
		hook_plugin_del(ctl, p);
}
