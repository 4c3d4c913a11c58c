/* subscribe.c - the public consumer, plugin and hook API; plugin loading. */
/* Who receives which events: pop3d_consumer_*, pop3d_plugin_*, pop3d_hook_*. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server.h"

static int subscribe_remove(struct pop3d *, struct pipeline_entry *);

/* Remove every plugin that has an unregister entry point. */
void
subscribe_free_plugins(struct pop3d *srv)
{
	const char **order;
	size_t n, i;

	n = pipeline_plugin_order(srv->pipeline, NULL, 0);
	if ((order = calloc(n + 1, sizeof(*order))) == NULL)
		return;
	pipeline_plugin_order(srv->pipeline, order, n);
	/* Removal frees names: look every entry up before removing any. */
	for (i = 0; i < n; i++)
		order[i] = (const char *)pipeline_find_plugin(srv->pipeline, order[i]);
	for (i = 0; i < n; i++) {
		struct pipeline_entry *e = (struct pipeline_entry *)(uintptr_t)order[i];

		if (e->unregister_cb != NULL)
			subscribe_remove(srv, e);
	}
	free(order);
}

/* A consumer (a controller) receiving what it registers for; its id. */
uint64_t
pop3d_consumer_add(struct pop3d *srv, const char *name, pop3d_consumer_cb cb, void *arg)
{
	if (cb == NULL)
		return 0;
	return pipeline_consumer_add(srv->pipeline, name, cb, arg);
}

/* A consumer went: commands waiting on it alone are answered. */
void
pop3d_consumer_del(struct pop3d *srv, uint64_t id)
{
	struct pipeline_entry *e = pipeline_find(srv->pipeline, id);
	struct client *c, *next;

	if (e == NULL || e->is_plugin)
		return;
	pipeline_remove(srv->pipeline, e);
	for (c = TAILQ_FIRST(&srv->clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		reply_consumer_gone(c, id);
	}
}

/* Normalise and validate names; on success *out holds malloc'd patterns. */
static int
subscribe_names(struct pop3d *srv, const char *const *names, size_t n, char ***out, size_t *bad)
{
	char **v;
	size_t i;

	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -POP3D_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		if (names[i] == NULL || !pop3d_event_known(srv, names[i]) ||
		    (v[i] = pipeline_normalise(names[i])) == NULL) {
			if (bad != NULL)
				*bad = i;
			while (i > 0)
				free(v[--i]);
			free(v);
			return -POP3D_ERR_UNKNOWN_EVENT;
		}
	}
	*out = v;
	return 0;
}

/* Free n names from subscribe_names. */
static void
subscribe_names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Register entry e for names of plugin type; the POP3C type has one
 * event, "response". */
static int
subscribe_register(struct pop3d *srv, struct pipeline_entry *e, int type, const char *const *names,
    size_t n, size_t *bad)
{
	char **v;
	size_t i;
	int rv;

	if (e == NULL)
		return -POP3D_ERR_INVALID;
	if (n > PIPELINE_MAX_PATTERNS)
		return -POP3D_ERR_LIMIT;
	if (type == POP3D_PLUGIN_POP3C) {
		/* One event: "response" ("all" means the same). */
		for (i = 0; i < n; i++)
			if (names[i] == NULL ||
			    (strcmp(names[i], "response") != 0 && strcmp(names[i], "all") != 0)) {
				if (bad != NULL)
					*bad = i;
				return -POP3D_ERR_UNKNOWN_EVENT;
			}
		return pipeline_register(e, type,
			   n > 0 ? (const char *const[]){ "response" } : NULL,
			   n > 0 ? 1 : 0) == -1 ?
		    -POP3D_ERR_LIMIT :
		    0;
	}
	if ((rv = subscribe_names(srv, names, n, &v, bad)) != 0)
		return rv;
	rv = pipeline_register(e, type, (const char *const *)v, n) == -1 ? -POP3D_ERR_LIMIT : 0;
	subscribe_names_free(v, n);
	return rv;
}

/* Unregister entry e from names. */
static int
subscribe_unregister(struct pop3d *srv, struct pipeline_entry *e, int type,
    const char *const *names, size_t n)
{
	char **v;
	size_t i;

	(void)srv;
	if (e == NULL)
		return -POP3D_ERR_INVALID;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -POP3D_ERR_NOMEM;
	for (i = 0; i < n; i++)
		if (names[i] == NULL || (v[i] = pipeline_normalise(names[i])) == NULL) {
			subscribe_names_free(v, i);
			return -POP3D_ERR_INVALID;
		}
	if (type == POP3D_PLUGIN_POP3C)
		for (i = 0; i < n; i++)
			if (strcmp(v[i], "*") == 0) {
				free(v[i]);
				v[i] = strdup("response");
			}
	pipeline_unregister(e, type, (const char *const *)v, n);
	subscribe_names_free(v, n);
	return 0;
}

/* A consumer subscribes to event names (patterns). */
int
pop3d_consumer_register(struct pop3d *srv, uint64_t id, const char *const *names, size_t n,
    size_t *bad)
{
	struct pipeline_entry *e = pipeline_find(srv->pipeline, id);

	return subscribe_register(srv, e != NULL && !e->is_plugin ? e : NULL, POP3D_PLUGIN_POP3D,
	    names, n, bad);
}

/* A consumer unsubscribes. */
int
pop3d_consumer_unregister(struct pop3d *srv, uint64_t id, const char *const *names, size_t n)
{
	struct pipeline_entry *e = pipeline_find(srv->pipeline, id);

	return subscribe_unregister(srv, e != NULL && !e->is_plugin ? e : NULL, POP3D_PLUGIN_POP3D,
	    names, n);
}

/* A consumer's patterns (owned by the pipeline). */
size_t
pop3d_consumer_patterns(struct pop3d *srv, uint64_t id, const char ***out)
{
	struct pipeline_entry *e = pipeline_find(srv->pipeline, id);

	if (e == NULL) {
		*out = NULL;
		return 0;
	}
	*out = (const char **)e->patterns[POP3D_PLUGIN_POP3D];
	return e->npatterns[POP3D_PLUGIN_POP3D];
}

/* A plugin by alias and priority; the number of plugins, or -1. */
int
pop3d_plugin_add(struct pop3d *srv, const char *alias, int priority, pop3d_plugin_cb cb, void *arg)
{
	if (cb == NULL || pipeline_plugin_add(srv->pipeline, alias, priority, cb, arg) == -1)
		return -1;
	return (int)pipeline_plugin_order(srv->pipeline, NULL, 0);
}

/* Remove a plugin entry; its unregister entry point runs first. */
static int
subscribe_remove(struct pop3d *srv, struct pipeline_entry *e)
{
	if (e == NULL)
		return -1;
	if (e->unregister_cb != NULL) {
		void (*cb)(struct pop3d *, const char *, void *) = e->unregister_cb;

		e->unregister_cb = NULL;
		cb(srv, e->name, e->arg);
	}
	pipeline_remove(srv->pipeline, e);
	return 0;
}

/* Remove plugin alias. */
int
pop3d_plugin_del(struct pop3d *srv, const char *alias)
{
	return subscribe_remove(srv,
	    alias != NULL ? pipeline_find_plugin(srv->pipeline, alias) : NULL);
}

/* Remove the plugin whose arg is arg. */
int
pop3d_plugin_del_arg(struct pop3d *srv, void *arg)
{
	const char *order[256];
	size_t n, i;
	struct pipeline_entry *e;

	n = pipeline_plugin_order(srv->pipeline, order, 256);
	for (i = 0; i < n && i < 256; i++)
		if ((e = pipeline_find_plugin(srv->pipeline, order[i])) != NULL && e->arg == arg)
			return subscribe_remove(srv, e);
	return -1;
}

/* Add a plugin from its definition (a loaded module's entry point). */
int
pop3d_plugin_load(struct pop3d *srv, const struct pop3d_plugin_def *def, const char *alias,
    const char *arg)
{
	struct pipeline_entry *e;
	void *state = NULL;

	if (def == NULL || def->abi != POP3D_ABI_VERSION) {
		errno = EPROTO;
		return -1;
	}
	if (alias == NULL)
		alias = def->name;
	if (def->handler == NULL || alias == NULL ||
	    pipeline_plugin_add(srv->pipeline, alias, def->priority, def->handler, NULL) == -1) {
		errno = EEXIST;
		return -1;
	}
	e = pipeline_find_plugin(srv->pipeline, alias);
	if (def->register_cb != NULL && def->register_cb(srv, alias, arg, &state) != 0) {
		pipeline_remove(srv->pipeline, e);
		errno = EINVAL;
		return -1;
	}
	e->arg = state;
	e->unregister_cb = def->unregister_cb;
	return (int)pipeline_plugin_order(srv->pipeline, NULL, 0);
}

/* A plugin subscribes to POP3D events. */
int
pop3d_plugin_register(struct pop3d *srv, const char *alias, const char *const *names, size_t n,
    size_t *bad)
{
	return pop3d_plugin_register_type(srv, alias, POP3D_PLUGIN_POP3D, names, n, bad);
}

/* A plugin unsubscribes from POP3D events. */
int
pop3d_plugin_unregister(struct pop3d *srv, const char *alias, const char *const *names, size_t n)
{
	return pop3d_plugin_unregister_type(srv, alias, POP3D_PLUGIN_POP3D, names, n);
}

/* A plugin subscribes to events of a type. */
int
pop3d_plugin_register_type(struct pop3d *srv, const char *alias, enum pop3d_plugin_type type,
    const char *const *names, size_t n, size_t *bad)
{
	if (type != POP3D_PLUGIN_POP3D && type != POP3D_PLUGIN_POP3C)
		return -POP3D_ERR_INVALID;
	return subscribe_register(srv,
	    alias != NULL ? pipeline_find_plugin(srv->pipeline, alias) : NULL, (int)type, names, n,
	    bad);
}

/* A plugin unsubscribes from events of a type. */
int
pop3d_plugin_unregister_type(struct pop3d *srv, const char *alias, enum pop3d_plugin_type type,
    const char *const *names, size_t n)
{
	if (type != POP3D_PLUGIN_POP3D && type != POP3D_PLUGIN_POP3C)
		return -POP3D_ERR_INVALID;
	return subscribe_unregister(srv,
	    alias != NULL ? pipeline_find_plugin(srv->pipeline, alias) : NULL, (int)type, names, n);
}

/* A plugin's patterns of a type. */
size_t
pop3d_plugin_patterns(struct pop3d *srv, const char *alias, enum pop3d_plugin_type type,
    const char ***out)
{
	struct pipeline_entry *e =
	    alias != NULL ? pipeline_find_plugin(srv->pipeline, alias) : NULL;

	if (e == NULL || (type != POP3D_PLUGIN_POP3D && type != POP3D_PLUGIN_POP3C)) {
		*out = NULL;
		return 0;
	}
	*out = (const char **)e->patterns[type];
	return e->npatterns[type];
}

/* A plugin's priority and arg. */
int
pop3d_plugin_get(struct pop3d *srv, const char *alias, int *priority, void **arg)
{
	struct pipeline_entry *e =
	    alias != NULL ? pipeline_find_plugin(srv->pipeline, alias) : NULL;

	if (e == NULL)
		return -1;
	if (priority != NULL)
		*priority = e->priority;
	if (arg != NULL)
		*arg = e->arg;
	return 0;
}

/* The verdict of a pending hook. */
int
pop3d_hook_resolve(struct pop3d *srv, uint64_t hook, int verdict, const struct pop3d_arg *argv,
    int argc)
{
	if (argc < 0 || (argc > 0 && argv == NULL))
		return -POP3D_ERR_INVALID;
	return pipeline_resolve(srv->pipeline, srv, hook, verdict, argv, argc);
}

/* Whether hook is still pending. */
int
pop3d_hook_pending(struct pop3d *srv, uint64_t hook)
{
	return pipeline_pending(srv->pipeline, hook);
}

/* What a plugin is told of its cancelled hooks. */
int
pop3d_plugin_set_cancel(struct pop3d *srv, const char *alias, pop3d_cancel_cb cb)
{
	struct pipeline_entry *e;

	if (alias == NULL || (e = pipeline_find_plugin(srv->pipeline, alias)) == NULL)
		return -1;
	e->cancel_cb = cb;
	return 0;
}

/* The plugins' aliases in order. */
size_t
pop3d_plugin_order(struct pop3d *srv, const char **aliases, size_t n)
{
	return pipeline_plugin_order(srv->pipeline, aliases, n);
}
