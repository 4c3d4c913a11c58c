/* controller.h - the internals the files of control/ share, and their layering. */
/*
 * The files of control/, top to bottom:
 * control.c (the socket, accept), command.c (the command table), hook.c
 * (controllers as plugins), peer.c (one controller's connection), codec.c
 * and codec_cmd.c (all JSON).  Each calls only the files below it; upward
 * only through the callbacks in struct control.
 */
#ifndef POP3D_CONTROLLER_H
#define POP3D_CONTROLLER_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "codec.h"
#include "control.h"
#include "group.h"

struct bufferevent;
struct event;
struct evconnlistener;

struct controller {
	TAILQ_ENTRY(controller) entry;
	uint64_t id;
	struct control *ctl;
	struct bufferevent *bev;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char name[64];
	char group[GROUP_NAME_MAX + 1]; /* its group (hello), "" when none */
	uint64_t consumer;		/* its consumer in the pipeline */
	int lossy;
	int behind;	  /* lossy and over CONTROL_LOSSY_HIGH */
	uint64_t dropped; /* events dropped while behind */
	int eof;	  /* it half-closed: reply, then close */
	int closing;	  /* close once output is flushed */
	int dead;
	int discarding;	      /* over-long line being discarded */
	size_t scanned;	      /* input already searched for LF */
	time_t last_progress; /* monotonic, last write progress */
	time_t connected;
	const char *reason;
	const char *drop_reason; /* to be dropped from ev_defer (peer_drop) */
	struct event *ev_defer;
	int flush_queued; /* on ctl->flushq: see peer_flush() */
	TAILQ_ENTRY(controller) fentry;
};
TAILQ_HEAD(controller_list, controller);

/* A controller acting as a plugin (hook.c). */
struct hook_plugin {
	TAILQ_ENTRY(hook_plugin) entry;
	struct control *ctl;
	char alias[64];
	uint64_t controller;		/* owner, by id (a group plugin: its first member) */
	char group[GROUP_NAME_MAX + 1]; /* a group plugin: its group, else "" */
	uint64_t *members;		/* a group plugin: its members, by id */
	size_t nmembers;
	int priority;
	unsigned timeout_ms[2]; /* by pop3d_plugin_type */
	int on_timeout[2];	/* verdict, or 0: the default rule */
};
TAILQ_HEAD(hook_plugin_list, hook_plugin);

/* A hook sent to a controller and not answered yet. */
struct hook_pending {
	TAILQ_ENTRY(hook_pending) entry;
	struct control *ctl;
	uint64_t hook;
	uint64_t controller;
	uint64_t client;
	char alias[64];
	char event[64];
	int on_timeout; /* resolution when it times out */
	struct event *timer;
};
TAILQ_HEAD(hook_pending_list, hook_pending);

struct control {
	struct pop3d *srv;
	struct control_options opts;
	char *path;
	dev_t dev;
	ino_t ino;
	struct evconnlistener *evl;
	struct controller_list controllers;
	struct controller_list dead; /* killed, freed from their ev_defer */
	size_t ncontrollers;
	uint64_t next_id;
	struct event *ev_tick;
	struct event *ev_flush; /* write the output of flushq's controllers */
	struct controller_list flushq;
	int accept_paused; /* out of descriptors: retry next tick */
	int shutting_down;
	uint64_t cache_seq; /* the event encoded in cache */
	char *cache;
	size_t cache_len;
	struct hook_plugin_list plugins;
	struct hook_pending_list pending;
	struct group_set groups;
	uint64_t unbind_consumer; /* pop3d_disconnected: drop the bindings */
	uint64_t *unbind;	  /* clients whose bindings go (ev_unbind) */
	size_t nunbind;
	size_t unbind_cap;
	struct event *ev_unbind;
	/* Set by control_new(): how a lower file reaches a higher one. */
	void (*on_command)(struct controller *, struct codec_cmd *); /* command_run */
	void (*on_gone)(struct controller *);			     /* hook_controller_gone */
	void (*on_stop)(struct control *);			     /* control_shutdown */
};

/* command.c */
void command_run(struct controller *, struct codec_cmd *);

/* command_group.c */
const char *command_group_join(struct controller *, const char *group);
void command_list_groups(struct controller *, const struct codec_cmd *);

/* hook.c */
#define HOOK_TIMEOUT_MS 2000
int hook_plugin_add(struct controller *, const char *alias, int priority, int *joined);
int hook_plugin_is_member(const struct hook_plugin *, uint64_t controller);
int hook_plugin_leave(struct control *, struct hook_plugin *, uint64_t controller);
struct hook_plugin *hook_plugin_find(struct control *, const char *alias);
int hook_verdict(struct controller *, uint64_t hook, int verdict, struct pop3d_arg *, int argc,
    const char **code);
void hook_controller_gone(struct controller *);
void hook_free_all(struct control *);
int hook_verdict_parse(const char *, int allow_tempfail);

/* peer.c */
int peer_init(struct control *);
struct controller *peer_new(struct control *, int fd, uid_t, gid_t, pid_t);
void peer_free_all(struct control *);
void peer_tick(struct control *);
struct controller *peer_find(struct control *, uint64_t id);
void peer_write(struct controller *, const char *line, size_t len);
void peer_reply_ok(struct controller *, json_t *id, json_t *result);
void peer_reply_error(struct controller *, json_t *id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void peer_write_event(struct controller *, const char *name, struct pop3d_arg *, int argc);
void peer_kill(struct controller *, const char *reason);
void peer_drop(struct controller *, const char *reason);
int peer_live(struct controller *);

#endif
