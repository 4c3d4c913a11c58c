/* pipeline.c - ordered plugins and consumers, and event dispatch. */
#include "config.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pipeline.h"

struct pipeline {
	struct pipeline_entry **plugins;	/* sorted by priority, order */
	size_t nplugins;
	struct pipeline_entry **consumers;	/* by order of addition */
	size_t nconsumers;
	uint64_t next_id;
	uint64_t next_order;
	int depth;				/* nested dispatches running */
	int garbage;				/* dead entries to sweep */
};

struct pipeline *
pipeline_new(void)
{
	struct pipeline *pl = calloc(1, sizeof(*pl));

	if (pl != NULL)
		pl->next_id = 1;
	return pl;
}

static void
pipeline_entry_free(struct pipeline_entry *e)
{
	size_t i;

	for (i = 0; i < e->npatterns; i++)
		free(e->patterns[i]);
	free(e->patterns);
	free(e->name);
	free(e);
}

void
pipeline_free(struct pipeline *pl)
{
	size_t i;

	if (pl == NULL)
		return;
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
	if (strncmp(name, "pop3d_", 6) == 0)
		return strdup(name);
	n = strlen(name);
	if ((s = malloc(n + 7)) == NULL)
		return NULL;
	memcpy(s, "pop3d_", 6);
	memcpy(s + 6, name, n + 1);
	return s;
}

int
pipeline_match(const char *pattern, const char *name)
{
	if (pattern[0] == '*' && pattern[1] == '\0')
		return 1;
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

	if (alias == NULL || pipeline_find_plugin(pl, alias) != NULL)
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
pipeline_register(struct pipeline_entry *e, const char *const *names, size_t n)
{
	size_t i, j, add = 0;
	char **np;

	for (i = 0; i < n; i++) {
		for (j = 0; j < e->npatterns; j++)
			if (strcmp(e->patterns[j], names[i]) == 0)
				break;
		if (j == e->npatterns)
			add++;
	}
	if (e->npatterns + add > PIPELINE_MAX_PATTERNS)
		return -1;
	if ((np = realloc(e->patterns, (e->npatterns + add + 1) * sizeof(*np))) == NULL)
		return -1;
	e->patterns = np;
	for (i = 0; i < n; i++) {
		for (j = 0; j < e->npatterns; j++)
			if (strcmp(e->patterns[j], names[i]) == 0)
				break;
		if (j < e->npatterns)
			continue;
		if ((e->patterns[e->npatterns] = strdup(names[i])) == NULL)
			return -1;
		e->npatterns++;
	}
	return 0;
}

void
pipeline_unregister(struct pipeline_entry *e, const char *const *names, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < e->npatterns; j++)
			if (strcmp(e->patterns[j], names[i]) == 0) {
				free(e->patterns[j]);
				e->patterns[j] = e->patterns[--e->npatterns];
				break;
			}
}

static int
pipeline_entry_matches(const struct pipeline_entry *e, const char *name)
{
	size_t i;

	if (e->dead)
		return 0;
	for (i = 0; i < e->npatterns; i++)
		if (pipeline_match(e->patterns[i], name))
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
pipeline_has_handler(struct pipeline *pl, const char *name)
{
	size_t i;

	for (i = 0; i < pl->nplugins; i++)
		if (pipeline_entry_matches(pl->plugins[i], name))
			return 1;
	for (i = 0; i < pl->nconsumers; i++)
		if (pipeline_entry_matches(pl->consumers[i], name))
			return 1;
	return 0;
}

/*
 * Run ev through the plugins, then the consumers.  Arrays may grow while a
 * handler runs (realloc), so entries are re-read by index on every step and
 * the counts captured first: entries added during a dispatch do not see it.
 */
int
pipeline_dispatch(struct pipeline *pl, struct pop3d *srv, struct pop3d_event *ev,
    pipeline_seen_cb seen, void *ctx)
{
	size_t i, np = pl->nplugins, nc = pl->nconsumers;
	int verdict, to_consumers = 1, plugin_saw = 0;

	pl->depth++;
	for (i = 0; i < np && i < pl->nplugins; i++) {
		struct pipeline_entry *e = pl->plugins[i];

		if (!pipeline_entry_matches(e, ev->name))
			continue;
		plugin_saw = 1;
		verdict = e->pcb(srv, ev, e->arg);
		if (verdict == POP3D_EAT_CLIENT || verdict == POP3D_EAT_ALL)
			to_consumers = 0;
		if (verdict == POP3D_EAT_PLUGIN || verdict == POP3D_EAT_ALL)
			break;
	}
	if (to_consumers) {
		for (i = 0; i < nc && i < pl->nconsumers; i++) {
			struct pipeline_entry *e = pl->consumers[i];

			if (!pipeline_entry_matches(e, ev->name))
				continue;
			if (seen != NULL)
				seen(e->id, ctx);
			e->ccb(srv, ev, e->arg);
		}
	}
	pl->depth--;
	pipeline_sweep(pl);
	return plugin_saw;
}
