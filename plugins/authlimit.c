/*
 * authlimit.c - pop3d plugin: auth-failure limiter.
 *
 * After FAILURES "-ERR" answers to PASS, APOP or AUTH for one peer address
 * within WINDOW seconds, further PASS/APOP/AUTH attempts from that address
 * are answered by this plugin, after DELAY milliseconds (a timer, never a
 * blocking sleep), with "-ERR [AUTH] too many authentication failures, try
 * again later"; they never reach the controllers (POP3D_EAT_ALL).
 *
 *   pop3d --plugin authlimit.so=failures=3,window=300,delay=2000
 *
 * Which verbs it counts and answers is the verb table's VERB_AUTH
 * (src/verbs.c: PASS, APOP and AUTH today); it keeps no list of its own.
 *
 * It logs nothing about the commands it counts or answers, so it never
 * shows their arguments.
 *
 * Why per address and not per user: a guessing client rotates user names.
 * Memory is bounded: at most AUTHLIMIT_MAX_ADDRS addresses are tracked; the
 * least recently failing one is forgotten first.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "pop3d.h"
#include "verbs.h"

/* Addresses tracked: bounds memory (about 0.6 KiB each, 2.4 MiB in all)
 * under a scan from many addresses; the least recently failing is dropped. */
#define AUTHLIMIT_MAX_ADDRS 4096
/* Largest failures=N: the ring of failure times is this long. */
#define AUTHLIMIT_MAX_FAILURES 64
/* Most VERB_AUTH verbs registered for: a stack array; the table has fewer
 * than 20 rows, and a table that outgrew this fails registration loudly. */
#define AUTHLIMIT_MAX_VERBS 32
static const char authlimit_msg[] = "-ERR [AUTH] too many authentication failures, try again later";

struct authlimit_addr {
	struct authlimit_addr *next;
	char addr[64];
	time_t fails[AUTHLIMIT_MAX_FAILURES]; /* ring of failure times */
	unsigned nfails, head;
	time_t last;
};

struct authlimit_reply {
	struct authlimit_reply *next, **prevp;
	struct authlimit *al;
	uint64_t client, tag;
	struct event *ev;
};

struct authlimit {
	struct pop3d *srv;
	unsigned failures, window, delay_ms;
	struct authlimit_addr *addrs;
	unsigned naddrs;
	struct authlimit_reply *replies;
};

/* Parse "failures=N,window=S,delay=MS"; -1 on an unknown key. */
static int
authlimit_args(struct authlimit *al, const char *arg)
{
	char buf[256], *p, *tok, *save = NULL;

	if (arg == NULL)
		return 0;
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		unsigned long v;

		char *end;

		if ((p = strchr(tok, '=')) == NULL)
			return -1;
		*p++ = '\0';
		v = strtoul(p, &end, 10);
		if (*p == '\0' || *end != '\0' || *p == '-')
			return -1;
		if (strcmp(tok, "failures") == 0 && v >= 1 && v <= AUTHLIMIT_MAX_FAILURES)
			al->failures = (unsigned)v;
		else if (strcmp(tok, "window") == 0 && v >= 1)
			al->window = (unsigned)v;
		else if (strcmp(tok, "delay") == 0 && v <= 60000)
			al->delay_ms = (unsigned)v;
		else
			return -1;
	}
	return 0;
}

/* The entry of addr, created (dropping the oldest when full) if create;
 * NULL when absent or out of memory. */
static struct authlimit_addr *
authlimit_find(struct authlimit *al, const char *addr, int create)
{
	struct authlimit_addr *a, **pp, **oldest = NULL;

	for (pp = &al->addrs; (a = *pp) != NULL; pp = &a->next) {
		if (strcmp(a->addr, addr) == 0)
			return a;
		if (oldest == NULL || a->last < (*oldest)->last)
			oldest = pp;
	}
	if (!create)
		return NULL;
	if (al->naddrs >= AUTHLIMIT_MAX_ADDRS && oldest != NULL) {
		a = *oldest;
		*oldest = a->next;
		free(a);
		al->naddrs--;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	snprintf(a->addr, sizeof(a->addr), "%s", addr);
	a->next = al->addrs;
	al->addrs = a;
	al->naddrs++;
	return a;
}

/* Failures of addr within the window. */
static unsigned
authlimit_count(struct authlimit *al, struct authlimit_addr *a, time_t now)
{
	unsigned i, n = 0;

	for (i = 0; i < a->nfails; i++)
		if (now - a->fails[i] < (time_t)al->window)
			n++;
	return n;
}

/* The delay is over: answer the locked-out attempt and forget it. */
static void
authlimit_reply_cb(evutil_socket_t fd, short what, void *arg)
{
	struct authlimit_reply *r = arg;

	(void)fd;
	(void)what;
	pop3d_send_to_client(r->al->srv, r->client, r->tag, authlimit_msg,
	    sizeof(authlimit_msg) - 1, 0);
	*r->prevp = r->next;
	if (r->next != NULL)
		r->next->prevp = r->prevp;
	event_free(r->ev);
	free(r);
}

/* Whether verb is on the way to authentication (VERB_AUTH, src/verbs.c). */
static int
authlimit_is_auth(const char *verb)
{
	return verb != NULL && (verbs_flags(verb, strlen(verb)) & VERB_AUTH) != 0;
}

/* Count failed authentication answers per address; answer (after the
 * delay) and eat the attempts of an address over the limit. */
static int
authlimit_handler(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	struct authlimit *al = arg;
	struct pop3d_client_info ci;
	struct authlimit_addr *a;
	time_t now = time(NULL);

	if (ev->type != POP3D_PLUGIN_POP3C && !authlimit_is_auth(verbs_of_event(ev->name)))
		return POP3D_EAT_NONE; /* only what authlimit_events registered */
	if (pop3d_client_info(srv, ev->client, &ci) != 0)
		return POP3D_EAT_NONE;
	if (ev->type == POP3D_PLUGIN_POP3C) {
		/* Count -ERR answers to PASS/APOP/AUTH, not our own. */
		if (!authlimit_is_auth(ev->command) || ev->argc < 2 || ev->argv[1].s == NULL ||
		    ev->state != POP3D_STATE_AUTHORIZATION ||
		    strncmp(ev->argv[1].s, "-ERR", 4) != 0 ||
		    strncmp(ev->argv[1].s, "-ERR [SYS/TEMP]", 15) == 0 ||
		    strncmp(ev->argv[1].s, "-ERR [IN-USE]", 13) == 0 ||
		    strcmp(ev->argv[1].s, authlimit_msg) == 0)
			return POP3D_EAT_NONE;
		if ((a = authlimit_find(al, ci.peer, 1)) == NULL)
			return POP3D_EAT_NONE;
		a->fails[a->head] = now;
		a->head = (a->head + 1) % al->failures;
		if (a->nfails < al->failures)
			a->nfails++;
		a->last = now;
		return POP3D_EAT_NONE;
	}
	if ((a = authlimit_find(al, ci.peer, 0)) == NULL ||
	    authlimit_count(al, a, now) < al->failures)
		return POP3D_EAT_NONE;
	/* Locked out: answer later ourselves; nobody else sees the attempt. */
	{
		struct authlimit_reply *r = calloc(1, sizeof(*r));
		struct timeval tv = { (time_t)(al->delay_ms / 1000),
			(suseconds_t)(al->delay_ms % 1000) * 1000 };

		if (r == NULL)
			return POP3D_EAT_ALL;
		r->al = al;
		r->client = ev->client;
		r->tag = ev->tag;
		if ((r->ev = evtimer_new(pop3d_get_base(srv), authlimit_reply_cb, r)) == NULL) {
			free(r);
			return POP3D_EAT_ALL;
		}
		r->next = al->replies;
		if (r->next != NULL)
			r->next->prevp = &r->next;
		r->prevp = &al->replies;
		al->replies = r;
		evtimer_add(r->ev, &tv);
	}
	return POP3D_EAT_ALL;
}

/* Register for the cmd events of every VERB_AUTH verb of the table and for
 * the answers (POP3C "response"); 0, or -1. */
static int
authlimit_events(struct pop3d *srv, const char *alias)
{
	static const char *const resp[] = { "response" };
	char buf[AUTHLIMIT_MAX_VERBS][sizeof("cmd_") + VERBS_MAX];
	const char *names[AUTHLIMIT_MAX_VERBS];
	const struct verb *v;
	size_t n = 0;

	for (v = verbs_table; v->name != NULL; v++) {
		if (!(v->flags & VERB_AUTH))
			continue;
		if (n == AUTHLIMIT_MAX_VERBS) {
			fprintf(stderr, "authlimit: more than %d authentication verbs\n",
			    AUTHLIMIT_MAX_VERBS);
			return -1;
		}
		snprintf(buf[n], sizeof(buf[n]), "cmd_%s", v->name);
		names[n] = buf[n];
		n++;
	}
	if (pop3d_plugin_register_type(srv, alias, POP3D_PLUGIN_POP3D, names, n, NULL) != 0 ||
	    pop3d_plugin_register_type(srv, alias, POP3D_PLUGIN_POP3C, resp, 1, NULL) != 0)
		return -1;
	return 0;
}

/* Plugin start: parse the argument, register, make the state. */
static int
authlimit_register(struct pop3d *srv, const char *alias, const char *arg, void **state)
{
	struct authlimit *al = calloc(1, sizeof(*al));

	if (al == NULL)
		return -1;
	al->srv = srv;
	al->failures = 3;
	al->window = 300;
	al->delay_ms = 2000;
	if (authlimit_args(al, arg) != 0) {
		fprintf(stderr,
		    "authlimit: bad argument \"%s\" (want "
		    "failures=N,window=S,delay=MS)\n",
		    arg);
		free(al);
		return -1;
	}
	if (authlimit_events(srv, alias) != 0) {
		free(al);
		return -1;
	}
	*state = al;
	return 0;
}

/* Plugin stop: free the addresses and cancel the pending answers. */
static void
authlimit_unregister(struct pop3d *srv, const char *alias, void *state)
{
	struct authlimit *al = state;
	struct authlimit_addr *a;
	struct authlimit_reply *r;

	(void)srv;
	(void)alias;
	while ((a = al->addrs) != NULL) {
		al->addrs = a->next;
		free(a);
	}
	while ((r = al->replies) != NULL) {
		al->replies = r->next;
		event_free(r->ev);
		free(r);
	}
	free(al);
}

static const struct pop3d_plugin_def authlimit_def = { POP3D_ABI_VERSION, "authlimit", -100,
	authlimit_register, authlimit_unregister, authlimit_handler };

const struct pop3d_plugin_def *pop3d_plugin_entry(void);

/* The entry point pop3d looks up in the shared object. */
const struct pop3d_plugin_def *
pop3d_plugin_entry(void)
{
	return &authlimit_def;
}
