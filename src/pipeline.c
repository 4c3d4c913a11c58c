/* pipeline.c - ordered plugins and consumers, event dispatch, suspended jobs. */
#include "config.h"

#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pipeline.h"

static void pipeline_pattern_free(char *);

/* A dispatch suspended on a plugin's pending verdict. */
struct pipeline_job {
	struct pipeline_job *next;
	struct pop3d_event ev; /* deep copy; ev.hook is the pending hook */
	char *name;
	char *command;
	int at_priority; /* position of the pending plugin */
	uint64_t at_order;
	uint64_t entry; /* ... and its entry id */
	int flags;
	int to_consumers;
};

struct pipeline {
	struct pipeline_entry **plugins; /* sorted by priority, order */
	size_t nplugins;
	struct pipeline_entry **consumers; /* by order of addition */
	size_t nconsumers;
	uint64_t next_id;
	uint64_t next_order;
	uint64_t next_hook;
	int depth;   /* nested dispatches running */
	int garbage; /* dead entries to sweep */
	struct pipeline_job *jobs;
	pipeline_seen_cb seen;
	pipeline_done_cb done;
};

struct pipeline *
pipeline_new(pipeline_seen_cb seen, pipeline_done_cb done)
{
	struct pipeline *pl = calloc(1, sizeof(*pl));

	if (pl != NULL) {
		pl->next_id = 1;
		pl->seen = seen;
		pl->done = done;
	}
	return pl;
}

static void
pipeline_entry_free(struct pipeline_entry *e)
{
	size_t i;
	int t;

	for (t = 0; t < 2; t++) {
		for (i = 0; i < e->npatterns[t]; i++)
			pipeline_pattern_free(e->patterns[t][i]);
		free(e->patterns[t]);
	}
	free(e->name);
	free(e);
}

struct pop3d_arg *
pipeline_args_copy(const struct pop3d_arg *argv, int argc)
{
	struct pop3d_arg *v = calloc((size_t)argc + 1, sizeof(*v));
	int i;

	if (v == NULL)
		return NULL;
	for (i = 0; i < argc; i++) {
		v[i] = argv[i];
		v[i].s = NULL;
		if (argv[i].type == POP3D_ARG_INT || argv[i].s == NULL)
			continue;
		if ((v[i].s = malloc(argv[i].len + 1)) == NULL) {
			pipeline_args_free(v, i);
			return NULL;
		}
		memcpy(v[i].s, argv[i].s, argv[i].len);
		v[i].s[argv[i].len] = '\0';
	}
	return v;
}

void
pipeline_args_free(struct pop3d_arg *v, int argc)
{
	int i;

	if (v == NULL)
		return;
	for (i = 0; i < argc; i++)
		free(v[i].s);
	free(v);
}

static void
pipeline_job_free(struct pipeline_job *j)
{
	pipeline_args_free(j->ev.argv, j->ev.argc);
	free(j->name);
	free(j->command);
	free(j);
}

void
pipeline_free(struct pipeline *pl)
{
	struct pipeline_job *j;
	size_t i;

	if (pl == NULL)
		return;
	while ((j = pl->jobs) != NULL) {
		pl->jobs = j->next;
		pipeline_job_free(j);
	}
	for (i = 0; i < pl->nplugins; i++)
		pipeline_entry_free(pl->plugins[i]);
	for (i = 0; i < pl->nconsumers; i++)
		pipeline_entry_free(pl->consumers[i]);
	free(pl->plugins);
	free(pl->consumers);
	free(pl);
}

/* "all" and "*" match everything; a name without the prefix gets it. */
char *
pipeline_normalise(const char *name)
{
	size_t n;
	char *s;

	if (strcmp(name, "all") == 0 || strcmp(name, "*") == 0)
		return strdup("*");
	if (strncmp(name, "pop3d_", 6) == 0 || strcmp(name, "response") == 0)
		return strdup(name);
	n = strlen(name);
	if ((s = malloc(n + 7)) == NULL)
		return NULL;
	memcpy(s, "pop3d_", 6);
	memcpy(s + 6, name, n + 1);
	return s;
}

/*
 * A stored pattern carries how to match it in a header just before its
 * text (the text stays a plain C string for pop3d_plugin_get and
 * friends): exact, "prefix*" with the prefix length, or fnmatch, and the
 * text's length.  Matching runs for every plugin and consumer on every
 * event, so no pattern is rescanned there (fnmatch and strpbrk were 7% of
 * a pipelined NOOP through a plugin), and the name's length, taken once
 * per event, rejects most exact patterns without comparing a byte.
 */
#define PATTERN_EXACT 0xFFFFFFFFu
#define PATTERN_GLOB 0xFFFFFFFEu

struct pipeline_pattern_head {
	uint32_t kind;
	uint32_t len;
};

static char *
pipeline_pattern_new(const char *text)
{
	size_t len = strlen(text);
	const char *meta = strpbrk(text, "*?[\\");
	struct pipeline_pattern_head h = { PATTERN_GLOB, (uint32_t)len };
	char *p;

	if (len >= PATTERN_GLOB || (p = malloc(sizeof(h) + len + 1)) == NULL)
		return NULL;
	if (meta == NULL)
		h.kind = PATTERN_EXACT;
	else if (meta[0] == '*' && meta[1] == '\0')
		h.kind = (uint32_t)(meta - text);
	memcpy(p, &h, sizeof(h));
	memcpy(p + sizeof(h), text, len + 1);
	return p + sizeof(h);
}

static void
pipeline_pattern_free(char *pattern)
{
	if (pattern != NULL)
		free(pattern - sizeof(struct pipeline_pattern_head));
}

/* Whether a plain pattern string matches name (validation paths). */
int
pipeline_match(const char *pattern, const char *name)
{
	return fnmatch(pattern, name, 0) == 0;
}

/* The same for a stored pattern (pipeline_pattern_new); namelen is
 * strlen(name). */
static int
pipeline_match_stored(const char *pattern, const char *name, size_t namelen)
{
	struct pipeline_pattern_head h;

	memcpy(&h, pattern - sizeof(h), sizeof(h));
	if (h.kind == PATTERN_EXACT)
		return h.len == namelen && memcmp(pattern, name, namelen) == 0;
	if (h.kind != PATTERN_GLOB)
		return namelen >= h.kind && memcmp(pattern, name, h.kind) == 0;
	return fnmatch(pattern, name, 0) == 0;
}

static struct pipeline_entry *
pipeline_entry_new(struct pipeline *pl, const char *name)
{
	struct pipeline_entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	if ((e->name = strdup(name != NULL ? name : "")) == NULL) {
		free(e);
		return NULL;
	}
	e->id = pl->next_id++;
	e->order = pl->next_order++;
	return e;
}

static int
pipeline_append(struct pipeline_entry ***arr, size_t *n, struct pipeline_entry *e)
{
	struct pipeline_entry **na = realloc(*arr, (*n + 1) * sizeof(*na));

	if (na == NULL)
		return -1;
	na[(*n)++] = e;
	*arr = na;
	return 0;
}

uint64_t
pipeline_consumer_add(struct pipeline *pl, const char *name, pop3d_consumer_cb cb, void *arg)
{
	struct pipeline_entry *e = pipeline_entry_new(pl, name);

	if (e == NULL)
		return 0;
	e->ccb = cb;
	e->arg = arg;
	if (pipeline_append(&pl->consumers, &pl->nconsumers, e) == -1) {
		pipeline_entry_free(e);
		return 0;
	}
	return e->id;
}

/* Insert a plugin after every plugin of lower or equal priority. */
int
pipeline_plugin_add(struct pipeline *pl, const char *alias, int priority, pop3d_plugin_cb cb,
    void *arg)
{
	struct pipeline_entry *e;
	size_t i, pos;

	if (alias == NULL || *alias == '\0' || pipeline_find_plugin(pl, alias) != NULL)
		return -1;
	if ((e = pipeline_entry_new(pl, alias)) == NULL)
		return -1;
	e->is_plugin = 1;
	e->priority = priority;
	e->pcb = cb;
	e->arg = arg;
	if (pipeline_append(&pl->plugins, &pl->nplugins, e) == -1) {
		pipeline_entry_free(e);
		return -1;
	}
	for (pos = 0; pos < pl->nplugins - 1; pos++)
		if (pl->plugins[pos]->priority > priority)
			break;
	for (i = pl->nplugins - 1; i > pos; i--)
		pl->plugins[i] = pl->plugins[i - 1];
	pl->plugins[pos] = e;
	return 0;
}

struct pipeline_entry *
pipeline_find(struct pipeline *pl, uint64_t id)
{
	size_t i;

	for (i = 0; i < pl->nconsumers; i++)
		if (pl->consumers[i]->id == id && !pl->consumers[i]->dead)
			return pl->consumers[i];
	for (i = 0; i < pl->nplugins; i++)
		if (pl->plugins[i]->id == id && !pl->plugins[i]->dead)
			return pl->plugins[i];
	return NULL;
}

struct pipeline_entry *
pipeline_find_plugin(struct pipeline *pl, const char *alias)
{
	size_t i;

	for (i = 0; i < pl->nplugins; i++)
		if (!pl->plugins[i]->dead && strcmp(pl->plugins[i]->name, alias) == 0)
			return pl->plugins[i];
	return NULL;
}

/* Drop dead entries from one array. */
static void
pipeline_sweep_array(struct pipeline_entry **arr, size_t *n)
{
	size_t i, j;

	for (i = j = 0; i < *n; i++) {
		if (arr[i]->dead)
			pipeline_entry_free(arr[i]);
		else
			arr[j++] = arr[i];
	}
	*n = j;
}

static void
pipeline_sweep(struct pipeline *pl)
{
	if (pl->depth > 0 || !pl->garbage)
		return;
	pipeline_sweep_array(pl->plugins, &pl->nplugins);
	pipeline_sweep_array(pl->consumers, &pl->nconsumers);
	pl->garbage = 0;
}

void
pipeline_remove(struct pipeline *pl, struct pipeline_entry *e)
{
	e->dead = 1;
	pl->garbage = 1;
	pipeline_sweep(pl);
}

int
pipeline_register(struct pipeline_entry *e, int type, const char *const *names, size_t n)
{
	size_t i, j, add = 0;
	char **np;

	for (i = 0; i < n; i++) {
		for (j = 0; j < e->npatterns[type]; j++)
			if (strcmp(e->patterns[type][j], names[i]) == 0)
				break;
		if (j == e->npatterns[type])
			add++;
	}
	if (e->npatterns[type] + add > PIPELINE_MAX_PATTERNS)
		return -1;
	np = realloc(e->patterns[type], (e->npatterns[type] + add + 1) * sizeof(*np));
	if (np == NULL)
		return -1;
	e->patterns[type] = np;
	for (i = 0; i < n; i++) {
		for (j = 0; j < e->npatterns[type]; j++)
			if (strcmp(np[j], names[i]) == 0)
				break;
		if (j < e->npatterns[type])
			continue;
		if ((np[e->npatterns[type]] = pipeline_pattern_new(names[i])) == NULL)
			return -1;
		e->npatterns[type]++;
	}
	return 0;
}

void
pipeline_unregister(struct pipeline_entry *e, int type, const char *const *names, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < e->npatterns[type]; j++)
			if (strcmp(e->patterns[type][j], names[i]) == 0) {
				pipeline_pattern_free(e->patterns[type][j]);
				e->patterns[type][j] = e->patterns[type][--e->npatterns[type]];
				break;
			}
}

static int
pipeline_entry_matches(const struct pipeline_entry *e, int type, const char *name, size_t namelen)
{
	size_t i;

	if (e->dead)
		return 0;
	for (i = 0; i < e->npatterns[type]; i++)
		if (pipeline_match_stored(e->patterns[type][i], name, namelen))
			return 1;
	return 0;
}

size_t
pipeline_plugin_order(struct pipeline *pl, const char **aliases, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < pl->nplugins; i++) {
		if (pl->plugins[i]->dead)
			continue;
		if (k < n)
			aliases[k] = pl->plugins[i]->name;
		k++;
	}
	return k;
}

int
pipeline_has_handler(struct pipeline *pl, int type, const char *name)
{
	size_t i, namelen = strlen(name);

	for (i = 0; i < pl->nplugins; i++)
		if (pipeline_entry_matches(pl->plugins[i], type, name, namelen))
			return 1;
	if (type == POP3D_PLUGIN_POP3C)
		return 0;
	for (i = 0; i < pl->nconsumers; i++)
		if (pipeline_entry_matches(pl->consumers[i], type, name, namelen))
			return 1;
	return 0;
}

/* Suspend: copy the event (as rewritten so far) into a job. */
static int
pipeline_suspend(struct pipeline *pl, struct pop3d_event *ev, struct pipeline_entry *e, int flags,
    int to_consumers)
{
	struct pipeline_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return -1;
	j->ev = *ev;
	j->name = strdup(ev->name);
	j->command = ev->command != NULL ? strdup(ev->command) : NULL;
	j->ev.argv = pipeline_args_copy(ev->argv, ev->argc);
	if (j->name == NULL || j->ev.argv == NULL || (ev->command != NULL && j->command == NULL)) {
		j->ev.argc = ev->argv != NULL && j->ev.argv != NULL ? ev->argc : 0;
		pipeline_job_free(j);
		return -1;
	}
	j->ev.name = j->name;
	j->ev.command = j->command;
	j->at_priority = e->priority;
	j->at_order = e->order;
	j->entry = e->id;
	j->flags = flags;
	j->to_consumers = to_consumers;
	j->next = pl->jobs;
	pl->jobs = j;
	return 0;
}

/*
 * Run ev through the plugins after position (prio, order), then the
 * consumers.  Arrays may grow while a handler runs (realloc), so entries
 * are re-read by index on every step.  Returns flags; PIPELINE_PENDING when
 * a plugin suspended the event (then *pending is that plugin).
 */
static int
pipeline_run(struct pipeline *pl, struct pop3d *srv, struct pop3d_event *ev, int started, int prio,
    uint64_t order, int flags, int to_consumers)
{
	size_t i, nc = pl->nconsumers, namelen = strlen(ev->name);
	const char *name = ev->name;
	int verdict, type = ev->type;

	pl->depth++;
	for (i = 0; i < pl->nplugins; i++) {
		struct pipeline_entry *e = pl->plugins[i];

		if (started && (e->priority < prio || (e->priority == prio && e->order <= order)))
			continue;
		if (ev->name != name) /* a plugin renamed it */
			namelen = strlen(name = ev->name);
		if (!pipeline_entry_matches(e, type, name, namelen))
			continue;
		flags |= PIPELINE_SAW;
		ev->hook = ++pl->next_hook;
		verdict = e->pcb(srv, ev, e->arg);
		if (verdict == POP3D_EAT_PENDING) {
			if (pipeline_suspend(pl, ev, e, flags, to_consumers) == 0) {
				pl->depth--;
				pipeline_sweep(pl);
				return flags | PIPELINE_PENDING;
			}
			log_warnx("event=hook-suspend-failed plugin=%s", e->name);
			verdict = POP3D_EAT_NONE;
		}
		if (verdict == POP3D_HOOK_TEMPFAIL) {
			flags |= PIPELINE_TEMPFAIL | PIPELINE_SWALLOWED;
			to_consumers = 0;
			break;
		}
		if (verdict == POP3D_EAT_CLIENT || verdict == POP3D_EAT_ALL) {
			to_consumers = 0;
			flags |= PIPELINE_SWALLOWED;
		}
		if (verdict == POP3D_EAT_PLUGIN || verdict == POP3D_EAT_ALL)
			break;
	}
	ev->hook = 0;
	if (to_consumers && type == POP3D_PLUGIN_POP3D) {
		for (i = 0; i < nc && i < pl->nconsumers; i++) {
			struct pipeline_entry *e = pl->consumers[i];

			if (ev->name != name)
				namelen = strlen(name = ev->name);
			if (!pipeline_entry_matches(e, type, name, namelen))
				continue;
			if (pl->seen != NULL)
				pl->seen(srv, ev, e->id);
			e->ccb(srv, ev, e->arg);
		}
	}
	pl->depth--;
	pipeline_sweep(pl);
	return flags;
}

int
pipeline_dispatch(struct pipeline *pl, struct pop3d *srv, struct pop3d_event *ev)
{
	return pipeline_run(pl, srv, ev, 0, 0, 0, 0, 1);
}

int
pipeline_pending(struct pipeline *pl, uint64_t hook)
{
	struct pipeline_job *j;

	for (j = pl->jobs; j != NULL; j = j->next)
		if (j->ev.hook == hook)
			return 1;
	return 0;
}

/*
 * Cancel every job about client: its plugin (if still there) is told
 * through its cancel callback, consumers get the event only when
 * deliver(ev) says so, and done() reports the job with PIPELINE_CANCELLED.
 * Callbacks may add or cancel jobs: the scan restarts after each one.
 * Returns the number cancelled.
 */
int
pipeline_cancel_client(struct pipeline *pl, struct pop3d *srv, uint64_t client,
    int (*deliver)(const struct pop3d_event *))
{
	struct pipeline_job **pp, *j;
	struct pipeline_entry *e;
	int n = 0, flags;

	if (client == 0)
		return 0;
	for (;;) {
		for (pp = &pl->jobs; (j = *pp) != NULL; pp = &j->next)
			if (j->ev.client == client)
				break;
		if (j == NULL)
			return n;
		*pp = j->next;
		n++;
		if ((e = pipeline_find(pl, j->entry)) != NULL && !e->dead && e->cancel_cb != NULL)
			e->cancel_cb(srv, j->ev.hook, e->arg);
		flags = j->flags | PIPELINE_CANCELLED;
		/* Consumers only: no plugin runs past the last one, so this
		 * cannot suspend again. */
		if (deliver != NULL && deliver(&j->ev) && j->to_consumers)
			flags = pipeline_run(pl, srv, &j->ev, 1, 0x7fffffff, UINT64_MAX, flags, 1);
		if (pl->done != NULL)
			pl->done(srv, &j->ev, flags);
		pipeline_job_free(j);
	}
}

int
pipeline_resolve(struct pipeline *pl, struct pop3d *srv, uint64_t hook, int verdict,
    const struct pop3d_arg *argv, int argc)
{
	struct pipeline_job **pp, *j;
	int flags, to_consumers, stop = 0;

	if (hook == 0)
		return -POP3D_ERR_STALE;
	for (pp = &pl->jobs; (j = *pp) != NULL; pp = &j->next)
		if (j->ev.hook == hook)
			break;
	if (j == NULL)
		return -POP3D_ERR_STALE;
	if (verdict != POP3D_HOOK_TEMPFAIL && (verdict < POP3D_EAT_NONE || verdict > POP3D_EAT_ALL))
		return -POP3D_ERR_INVALID;
	if (argv != NULL) {
		struct pop3d_arg *copy = pipeline_args_copy(argv, argc);

		if (copy == NULL)
			return -POP3D_ERR_NOMEM;
		pipeline_args_free(j->ev.argv, j->ev.argc);
		j->ev.argv = copy;
		j->ev.argc = argc;
	}
	*pp = j->next;
	flags = j->flags;
	to_consumers = j->to_consumers;
	if (verdict == POP3D_HOOK_TEMPFAIL) {
		flags |= PIPELINE_TEMPFAIL | PIPELINE_SWALLOWED;
		to_consumers = 0;
		stop = 1;
	} else {
		if (verdict == POP3D_EAT_CLIENT || verdict == POP3D_EAT_ALL) {
			to_consumers = 0;
			flags |= PIPELINE_SWALLOWED;
		}
		if (verdict == POP3D_EAT_PLUGIN || verdict == POP3D_EAT_ALL)
			stop = 1;
	}
	if (stop) {
		/* No later plugin: consumers only (priority beyond every plugin). */
		flags =
		    pipeline_run(pl, srv, &j->ev, 1, 0x7fffffff, UINT64_MAX, flags, to_consumers);
	} else
		flags = pipeline_run(pl, srv, &j->ev, 1, j->at_priority, j->at_order, flags,
		    to_consumers);
	if (flags & PIPELINE_PENDING) {
		/* Suspended again: a new job holds a fresh copy. */
		pipeline_job_free(j);
		return 0;
	}
	if (pl->done != NULL)
		pl->done(srv, &j->ev, flags);
	pipeline_job_free(j);
	return 0;
}
