/* timers.c - the clock, the deadline queue and the defer queue. */
#include "config.h"

#include <stddef.h>
#include <time.h>

#include <event2/event.h>

#include "timers.h"

/* Monotonic milliseconds, for idle and response deadlines (seconds):
 * the coarse clock (a few ms resolution) costs a fraction of the precise
 * one, and is read for every command. */
int64_t
timers_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set the queue's event for its first deadline, or clear it. */
static void
timers_schedule(struct timers_queue *tq)
{
	struct timers_entry *e = TAILQ_FIRST(&tq->q);
	struct timeval tv;
	int64_t left;

	if (e == NULL) {
		evtimer_del(tq->ev);
		tq->armed_at = -1;
		return;
	}
	if ((left = e->deadline - timers_now()) < 0)
		left = 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	tq->armed_at = e->deadline;
	evtimer_add(tq->ev, &tv);
}

/* The queue's event: expire every entry that is due, then set it again. */
static void
timers_run(evutil_socket_t fd, short what, void *arg)
{
	struct timers_queue *tq = arg;
	int64_t now = timers_now();
	struct timers_entry *e;

	(void)fd;
	(void)what;
	tq->armed_at = -1;
	while ((e = TAILQ_FIRST(&tq->q)) != NULL && e->deadline <= now) {
		timers_del(tq, e);
		tq->expire(e, tq->arg);
	}
	if (tq->armed_at < 0)
		timers_schedule(tq);
}

/* An empty deadline queue calling expire(entry, arg) for each due entry. */
int
timers_queue_init(struct timers_queue *tq, struct event_base *base,
    void (*expire)(struct timers_entry *, void *), void *arg)
{
	TAILQ_INIT(&tq->q);
	tq->expire = expire;
	tq->arg = arg;
	tq->armed_at = -1;
	tq->ev = evtimer_new(base, timers_run, tq);
	return tq->ev != NULL ? 0 : -1;
}

/* Free the queue's event (its entries belong to their owners). */
void
timers_queue_free(struct timers_queue *tq)
{
	if (tq->ev != NULL)
		event_free(tq->ev);
	tq->ev = NULL;
}

/*
 * (Re-)arm e for deadline.  Why from the tail: deadlines mostly come in
 * order (now + the same timeout), so the walk is one step.  The event is
 * moved only when e becomes the nearest deadline; a removed first entry
 * leaves it early, and the run finds nothing due and sets it again.
 */
void
timers_add(struct timers_queue *tq, struct timers_entry *e, int64_t deadline)
{
	struct timers_entry *p;

	if (e->queued)
		TAILQ_REMOVE(&tq->q, e, entry);
	e->queued = 1;
	e->deadline = deadline;
	for (p = TAILQ_LAST(&tq->q, timers_list); p != NULL && p->deadline > deadline;
	     p = TAILQ_PREV(p, timers_list, entry))
		;
	if (p == NULL)
		TAILQ_INSERT_HEAD(&tq->q, e, entry);
	else
		TAILQ_INSERT_AFTER(&tq->q, p, e, entry);
	if (TAILQ_FIRST(&tq->q) == e && (tq->armed_at < 0 || deadline < tq->armed_at))
		timers_schedule(tq);
}

/* Disarm e (nothing when it is not armed). */
void
timers_del(struct timers_queue *tq, struct timers_entry *e)
{
	if (!e->queued)
		return;
	TAILQ_REMOVE(&tq->q, e, entry);
	e->queued = 0;
}

/* Expire e now, as if its time had come (fuzzing); 1 when it was armed. */
int
timers_fire(struct timers_queue *tq, struct timers_entry *e)
{
	if (!e->queued)
		return 0;
	timers_del(tq, e);
	tq->expire(e, tq->arg);
	return 1;
}

/* The defer queue's active event: run each queued entry once. */
static void
timers_defer_run(evutil_socket_t fd, short what, void *arg)
{
	struct timers_deferq *dq = arg;
	struct timers_entry *e;

	(void)fd;
	(void)what;
	while ((e = TAILQ_FIRST(&dq->q)) != NULL) {
		TAILQ_REMOVE(&dq->q, e, entry);
		e->queued = dq->sticky ? 2 : 0; /* 2: running, off the list */
		dq->run(e, dq->arg);
		if (dq->sticky)
			e->queued = 0;
	}
}

/* An empty defer queue calling run(entry, arg). */
int
timers_deferq_init(struct timers_deferq *dq, struct event_base *base, int sticky,
    void (*run)(struct timers_entry *, void *), void *arg)
{
	TAILQ_INIT(&dq->q);
	dq->sticky = sticky;
	dq->run = run;
	dq->arg = arg;
	dq->ev = event_new(base, -1, 0, timers_defer_run, dq);
	return dq->ev != NULL ? 0 : -1;
}

/* Free the defer queue's event. */
void
timers_deferq_free(struct timers_deferq *dq)
{
	if (dq->ev != NULL)
		event_free(dq->ev);
	dq->ev = NULL;
}

/* Queue e to run from the loop, once however often it is asked. */
void
timers_defer(struct timers_deferq *dq, struct timers_entry *e)
{
	if (e->queued)
		return;
	e->queued = 1;
	TAILQ_INSERT_TAIL(&dq->q, e, entry);
	event_active(dq->ev, EV_TIMEOUT, 1);
}

/* Take e off the queue (a sticky entry that is running is not on it). */
void
timers_undefer(struct timers_deferq *dq, struct timers_entry *e)
{
	if (e->queued == 1)
		TAILQ_REMOVE(&dq->q, e, entry);
	e->queued = 0;
}
