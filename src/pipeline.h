/*
 * pipeline.h - the one dispatcher every event goes through.
 *
 * Order: plugins by (priority, order of addition), each returning an EAT
 * verdict; then consumers in order of addition.  POP3D_EAT_CLIENT and
 * POP3D_EAT_ALL keep the event from consumers; POP3D_EAT_PLUGIN and
 * POP3D_EAT_ALL keep it from later plugins.
 *
 * Invariant: entries removed while a dispatch is running are only marked
 * dead and are freed when the outermost dispatch returns, so a handler may
 * remove itself or any other entry (tmux's events.c does the same).
 */
#ifndef POP3D_PIPELINE_H
#define POP3D_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "pop3d.h"

/* Cap on patterns per plugin or consumer: a controller registering 100,000
 * names gets limit_exceeded instead of slowing every dispatch. */
#define PIPELINE_MAX_PATTERNS 512

struct pipeline;

struct pipeline_entry {
	uint64_t id;
	char *name;
	int is_plugin;
	int priority;
	uint64_t order;
	int dead;
	pop3d_plugin_cb pcb;
	pop3d_consumer_cb ccb;
	void *arg;
	char **patterns;
	size_t npatterns;
};

/* Called for each consumer that receives an event. */
typedef void (*pipeline_seen_cb)(uint64_t consumer, void *ctx);

struct pipeline *pipeline_new(void);
void pipeline_free(struct pipeline *);
/* Normalise a name: "cmd_user" -> "pop3d_cmd_user"; "all" -> "*". Returns a
 * malloc'd string. */
char *pipeline_normalise(const char *name);
int pipeline_match(const char *pattern, const char *name);

uint64_t pipeline_consumer_add(struct pipeline *, const char *name, pop3d_consumer_cb, void *);
int pipeline_plugin_add(struct pipeline *, const char *alias, int priority, pop3d_plugin_cb,
    void *);
struct pipeline_entry *pipeline_find(struct pipeline *, uint64_t id);
struct pipeline_entry *pipeline_find_plugin(struct pipeline *, const char *alias);
void pipeline_remove(struct pipeline *, struct pipeline_entry *);
/* Add normalised patterns (already validated); -1 over the cap. */
int pipeline_register(struct pipeline_entry *, const char *const *names, size_t n);
void pipeline_unregister(struct pipeline_entry *, const char *const *names, size_t n);
size_t pipeline_plugin_order(struct pipeline *, const char **aliases, size_t n);
/* Whether some live entry would receive name. */
int pipeline_has_handler(struct pipeline *, const char *name);
/* Dispatch ev.  Returns 1 when any plugin saw it; seen() is called for every
 * consumer that did. */
int pipeline_dispatch(struct pipeline *, struct pop3d *, struct pop3d_event *,
    pipeline_seen_cb seen, void *ctx);

#endif
