/*
 * pipeline.h - the one dispatcher every event goes through.
 *
 * Order: plugins of the event's type by (priority, order of addition), each
 * returning an EAT verdict; then, for POP3D events, consumers in order of
 * addition.  POP3D_EAT_CLIENT and POP3D_EAT_ALL keep the event from
 * consumers; POP3D_EAT_PLUGIN and POP3D_EAT_ALL keep it from later plugins.
 *
 * A plugin may return POP3D_EAT_PENDING: the event is copied into a job and
 * the dispatch suspends; pipeline_resolve() resumes it after that plugin,
 * and the done callback reports the end of every job.
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

/* pipeline_dispatch() result flags. */
#define PIPELINE_SAW 0x01	/* a plugin saw the event */
#define PIPELINE_PENDING 0x02	/* suspended: a job will finish it */
#define PIPELINE_TEMPFAIL 0x04	/* a hook resolved with tempfail */
#define PIPELINE_SWALLOWED 0x08 /* eaten before consumers (CLIENT/ALL) */
#define PIPELINE_CANCELLED 0x10 /* its client went away while it waited */

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
	char **patterns[2]; /* by pop3d_plugin_type */
	size_t npatterns[2];
	/* Entry points of a pop3d_plugin_def plugin. */
	void (*unregister_cb)(struct pop3d *, const char *alias, void *state);
	/* A hook this plugin holds was cancelled (pop3d_plugin_set_cancel). */
	pop3d_cancel_cb cancel_cb;
};

/* A consumer received ev. */
typedef void (*pipeline_seen_cb)(struct pop3d *, const struct pop3d_event *, uint64_t consumer);
/* A suspended dispatch finished (flags as above, without PENDING). */
typedef void (*pipeline_done_cb)(struct pop3d *, struct pop3d_event *, int flags);

struct pipeline *pipeline_new(pipeline_seen_cb, pipeline_done_cb);
void pipeline_free(struct pipeline *);
/* Normalise a name: "cmd_user" -> "pop3d_cmd_user"; "all" -> "*". Returns a
 * malloc'd string. */
char *pipeline_normalise(const char *name);
int pipeline_match(const char *pattern, const char *name);

uint64_t pipeline_consumer_add(struct pipeline *, const char *name, pop3d_consumer_cb, void *);
int
pipeline_plugin_add(struct pipeline *, const char *alias, int priority, pop3d_plugin_cb, void *);
struct pipeline_entry *pipeline_find(struct pipeline *, uint64_t id);
struct pipeline_entry *pipeline_find_plugin(struct pipeline *, const char *alias);
void pipeline_remove(struct pipeline *, struct pipeline_entry *);
/* Add normalised patterns (already validated); -1 over the cap. */
int pipeline_register(struct pipeline_entry *, int type, const char *const *names, size_t n);
void pipeline_unregister(struct pipeline_entry *, int type, const char *const *names, size_t n);
size_t pipeline_plugin_order(struct pipeline *, const char **aliases, size_t n);
/* Whether some live entry would receive an event of that type and name. */
int pipeline_has_handler(struct pipeline *, int type, const char *name);
/* Dispatch ev; returns PIPELINE_* flags. */
int pipeline_dispatch(struct pipeline *, struct pop3d *, struct pop3d_event *);
/* Resume a suspended dispatch; -POP3D_ERR_STALE when hook is not pending. */
int pipeline_resolve(struct pipeline *, struct pop3d *, uint64_t hook, int verdict,
    const struct pop3d_arg *argv, int argc);
int pipeline_pending(struct pipeline *, uint64_t hook);
/* Cancel the jobs about a client; consumers see those deliver() accepts. */
int pipeline_cancel_client(struct pipeline *, struct pop3d *, uint64_t client,
    int (*deliver)(const struct pop3d_event *));
/* Deep copy and free of event arguments. */
struct pop3d_arg *pipeline_args_copy(const struct pop3d_arg *, int argc);
void pipeline_args_free(struct pop3d_arg *, int argc);

#endif
