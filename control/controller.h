/*
 * controller.h - internals shared by control.c (socket, framing, buffers)
 * and command.c (the command table).
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
	uint64_t consumer;	/* its consumer in the pipeline */
	int lossy;
	int behind;		/* lossy and over CONTROL_LOSSY_HIGH */
	uint64_t dropped;	/* events dropped while behind */
	int eof;		/* it half-closed: reply, then close */
	int closing;		/* close once output is flushed */
	int dead;
	int discarding;		/* over-long line being discarded */
	size_t scanned;		/* input already searched for LF */
	time_t last_progress;	/* monotonic, last write progress */
	time_t connected;
	const char *reason;
	struct event *ev_defer;
};
TAILQ_HEAD(controller_list, controller);

struct control {
	struct pop3d *srv;
	struct control_options opts;
	char *path;
	dev_t dev;
	ino_t ino;
	struct evconnlistener *evl;
	struct controller_list controllers;
	size_t ncontrollers;
	uint64_t next_id;
	struct event *ev_tick;
	int shutting_down;
	uint64_t cache_seq;	/* the event encoded in cache */
	char *cache;
	size_t cache_len;
	void (*shutdown_cb)(void *);
	void *shutdown_arg;
};

/* control.c */
void control_write(struct controller *, const char *line, size_t len);
void control_reply_ok(struct controller *, json_t *id, json_t *result);
void control_reply_error(struct controller *, json_t *id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void control_kill(struct controller *, const char *reason);
void control_send_registered(struct controller *);
void control_broadcast_shutdown(struct control *);
json_t *control_listeners(struct control *);

/* command.c */
void command_run(struct controller *, struct codec_cmd *);

#endif
