/*
 * timers.h - the clock, ONE deadline queue (written once, used for the idle,
 * response and PROXY/handshake deadlines), and the defer queue.
 */
#ifndef POP3D_TIMERS_H
#define POP3D_TIMERS_H

#include <sys/queue.h>
#include <stdint.h>

struct event;
struct event_base;

/* A member of one queue: embedded in what it times (a client). */
struct timers_entry {
	TAILQ_ENTRY(timers_entry) entry;
	int64_t deadline; /* monotonic ms (deadline queues) */
	int queued;
};
TAILQ_HEAD(timers_list, timers_entry);

/*
 * A deadline queue: entries by deadline, one event for the nearest.
 * Why one event: the idle and response timeouts are the same for every
 * client, so arming appends, and one timer serves thousands of clients.
 * An entry is removed before its expire callback runs, which may re-arm it
 * or remove others.
 */
struct timers_queue {
	struct timers_list q;
	struct event *ev;
	int64_t armed_at; /* deadline ev is set for, -1: none */
	void (*expire)(struct timers_entry *, void *);
	void *arg;
};

/*
 * A defer queue: entries run once each from an active event, outside every
 * other callback.  sticky: an entry stays marked queued while it runs
 * (what it queues meanwhile it handles itself).
 */
struct timers_deferq {
	struct timers_list q;
	struct event *ev;
	int sticky;
	void (*run)(struct timers_entry *, void *);
	void *arg;
};

/* The member whose field f is entry e (type t). */
#define TIMERS_OWNER(e, t, f) ((t *)(void *)((char *)(e)-offsetof(t, f)))

int64_t timers_now(void);
int timers_queue_init(struct timers_queue *, struct event_base *,
    void (*)(struct timers_entry *, void *), void *);
void timers_queue_free(struct timers_queue *);
void timers_add(struct timers_queue *, struct timers_entry *, int64_t deadline);
void timers_del(struct timers_queue *, struct timers_entry *);
int timers_fire(struct timers_queue *, struct timers_entry *);
int timers_deferq_init(struct timers_deferq *, struct event_base *, int sticky,
    void (*)(struct timers_entry *, void *), void *);
void timers_deferq_free(struct timers_deferq *);
void timers_defer(struct timers_deferq *, struct timers_entry *);
void timers_undefer(struct timers_deferq *, struct timers_entry *);

#endif
