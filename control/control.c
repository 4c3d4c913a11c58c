/* control.c - the control socket: the socket file, accepting controllers, wiring the layers. */
/*
 * Layers, each calling only those below it: control.c, command.c (the
 * command table), hook.c (controllers as plugins), peer.c (one
 * controller's connection), codec.c (all JSON).  A lower file reaches a
 * higher one only through the callbacks control_new() sets in struct
 * control: on_command (peer.c -> command_run), on_gone (peer.c ->
 * hook_controller_gone) and on_stop (command.c -> control_shutdown).
 *
 * It also drops a departed client's group bindings (group.c): a consumer
 * of pop3d_disconnected queues the client, and ev_unbind drops its
 * bindings once the dispatch is over, so that the bound member, whatever
 * its place among the consumers, still receives pop3d_disconnected.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../src/log.h"
#include "controller.h"
#include "pop3d.h"

/* Defaults: mode 0600 and the CONTROL_* limits. */
void
control_options_init(struct control_options *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = 0600;
	o->max_controllers = CONTROL_MAX_CONTROLLERS;
	o->max_line = CONTROL_MAX_LINE;
	o->max_output = CONTROL_MAX_OUTPUT;
	o->stall_seconds = CONTROL_STALL_SECONDS;
}

/* Allow one more uid on the socket; 0 or -1. */
int
control_options_allow(struct control_options *o, uid_t uid)
{
	uid_t *n = realloc(o->allow, (o->nallow + 1) * sizeof(*n));

	if (n == NULL)
		return -1;
	n[o->nallow++] = uid;
	o->allow = n;
	return 0;
}

/* Free the allowed uids. */
void
control_options_clear(struct control_options *o)
{
	free(o->allow);
	o->allow = NULL;
	o->nallow = 0;
}

/* Stop accepting controllers and tell every one pop3d_shutdown, once. */
void
control_shutdown(struct control *ctl)
{
	struct controller *c;

	if (ctl == NULL || ctl->shutting_down)
		return;
	ctl->shutting_down = 1;
	if (ctl->evl != NULL)
		evconnlistener_disable(ctl->evl);
	TAILQ_FOREACH (c, &ctl->controllers, entry)
		peer_write_event(c, "pop3d_shutdown", NULL, 0);
}

/*
 * Accept failed.  Out of descriptors the pending connection stays in the
 * backlog and the socket stays readable: stop accepting (the tick below
 * resumes it a second later) instead of spinning.
 */
static void
control_accept_error(struct evconnlistener *evl, void *arg)
{
	struct control *ctl = arg;
	int err = EVUTIL_SOCKET_ERROR();

	log_warnx("event=control-accept-error error=\"%s\"", strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(evl);
		ctl->accept_paused = 1;
	}
}

/* Once a second: drop controllers whose backlog made no progress; accept
 * again after running out of descriptors. */
static void
control_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;

	(void)fd;
	(void)what;
	if (ctl->accept_paused && !ctl->shutting_down) {
		ctl->accept_paused = 0;
		evconnlistener_enable(ctl->evl);
	}
	peer_tick(ctl);
}

/* The consumer of pop3d_disconnected: queue the client's unbinding. */
static void
control_disconnected(struct pop3d *srv, const struct pop3d_event *ev, void *arg)
{
	struct control *ctl = arg;

	(void)srv;
	if (ctl->groups.ngroups == 0 || ev->client == 0)
		return;
	if (ctl->nunbind == ctl->unbind_cap) {
		size_t cap = ctl->unbind_cap ? ctl->unbind_cap * 2 : 64;
		uint64_t *n = realloc(ctl->unbind, cap * sizeof(*n));

		if (n == NULL) {
			group_unbind_client(&ctl->groups, ev->client); /* now, rather than never */
			return;
		}
		ctl->unbind = n;
		ctl->unbind_cap = cap;
	}
	ctl->unbind[ctl->nunbind++] = ev->client;
	event_active(ctl->ev_unbind, EV_TIMEOUT, 1);
}

/* ev_unbind: drop the bindings of the clients that disconnected. */
static void
control_unbind_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < ctl->nunbind; i++)
		group_unbind_client(&ctl->groups, ctl->unbind[i]);
	ctl->nunbind = 0;
}

/* The consumer and event that unbind departed clients; 0 or -1. */
static int
control_unbind_init(struct control *ctl)
{
	static const char *const names[] = { "pop3d_disconnected" };

	ctl->ev_unbind = event_new(pop3d_get_base(ctl->srv), -1, 0, control_unbind_cb, ctl);
	ctl->unbind_consumer =
	    pop3d_consumer_add(ctl->srv, "control-groups", control_disconnected, ctl);
	if (ctl->ev_unbind == NULL || ctl->unbind_consumer == 0 ||
	    pop3d_consumer_register(ctl->srv, ctl->unbind_consumer, names, 1, NULL) != 0)
		return -1;
	return 0;
}

/* Undo control_unbind_init and forget every group. */
static void
control_unbind_free(struct control *ctl)
{
	if (ctl->unbind_consumer != 0)
		pop3d_consumer_del(ctl->srv, ctl->unbind_consumer);
	if (ctl->ev_unbind != NULL)
		event_free(ctl->ev_unbind);
	free(ctl->unbind);
	group_free_all(&ctl->groups);
}

/* Refuse a controller at accept with one error line. */
static void
control_refuse(int fd, const char *code, const char *why)
{
	size_t len;
	char *s = codec_reply_error(NULL, code, why, &len);

	if (s != NULL)
		(void)send(fd, s, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	free(s);
	close(fd);
}

/* Whether uid may use the socket: listed, or root and our euid. */
static int
control_uid_allowed(struct control *ctl, uid_t uid)
{
	size_t i;

	if (ctl->opts.nallow == 0)
		return uid == 0 || uid == geteuid();
	for (i = 0; i < ctl->opts.nallow; i++)
		if (ctl->opts.allow[i] == uid)
			return 1;
	return 0;
}

/* A new controller: check its credentials and the cap, then peer_new(). */
static void
control_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct control *ctl = arg;
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	(void)evl;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == -1) {
		log_warn("event=controller-refused reason=\"no peer credentials\"");
		close(fd);
		return;
	}
	if (!control_uid_allowed(ctl, cred.uid)) {
		log_warnx("event=controller-refused reason=\"uid not allowed\" uid=%lu pid=%ld",
		    (unsigned long)cred.uid, (long)cred.pid);
		control_refuse(fd, "permission_denied", "uid not allowed on this socket");
		return;
	}
	if (ctl->ncontrollers >= ctl->opts.max_controllers) {
		log_warnx("event=controller-refused reason=\"max-controllers\" uid=%lu pid=%ld",
		    (unsigned long)cred.uid, (long)cred.pid);
		control_refuse(fd, "limit_exceeded", "too many controllers");
		return;
	}
	(void)peer_new(ctl, fd, cred.uid, cred.gid, cred.pid);
}

/* Probe path: is a live server answering there? */
static int
control_probe(const struct sockaddr_un *sun)
{
	int fd, rv;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rv = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	return rv == 0 ? 1 : 0;
}

/* Create the socket file safely; see pop3d-control(7), "Socket file". */
static int
control_bind(struct control *ctl)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, rv;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(ctl->path) >= sizeof(sun.sun_path)) {
		log_warnx("control socket %s: path too long", ctl->path);
		return -1;
	}
	memcpy(sun.sun_path, ctl->path, strlen(ctl->path));
	if (lstat(ctl->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("control socket %s: exists and is not a socket; not removing it",
			    ctl->path);
			return -1;
		}
		if ((rv = control_probe(&sun)) == 1) {
			log_warnx("control socket %s: a live server answers there; refusing to "
				  "start",
			    ctl->path);
			return -1;
		}
		if (rv == -1 || unlink(ctl->path) == -1) {
			log_warn("control socket %s: cannot replace stale socket", ctl->path);
			return -1;
		}
		log_info("control socket %s: replaced a stale socket", ctl->path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("control socket: socket");
		return -1;
	}
	old = umask(0777 & ~ctl->opts.mode);
	rv = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rv == -1) {
		log_warn("control socket %s: bind", ctl->path);
		close(fd);
		return -1;
	}
	if (ctl->opts.group != NULL) {
		struct group *gr = getgrnam(ctl->opts.group);

		if (gr == NULL || lchown(ctl->path, (uid_t)-1, gr->gr_gid) == -1) {
			log_warnx("control socket %s: cannot set group %s", ctl->path,
			    ctl->opts.group);
			unlink(ctl->path);
			close(fd);
			return -1;
		}
	}
	if (listen(fd, 64) == -1 || lstat(ctl->path, &st) == -1) {
		log_warn("control socket %s: listen", ctl->path);
		unlink(ctl->path);
		close(fd);
		return -1;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	return fd;
}

/* Bind the socket and start accepting; see control.h. */
struct control *
control_new(struct pop3d *srv, const struct control_options *opts)
{
	struct control *ctl;
	struct timeval tv = { 1, 0 };
	int fd;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		return NULL;
	ctl->srv = srv;
	ctl->opts = *opts;
	ctl->opts.allow = NULL;
	ctl->opts.nallow = 0;
	TAILQ_INIT(&ctl->plugins);
	TAILQ_INIT(&ctl->pending);
	ctl->on_command = command_run;
	ctl->on_gone = hook_controller_gone;
	ctl->on_stop = control_shutdown;
	if (peer_init(ctl) == -1 || control_unbind_init(ctl) == -1)
		goto fail;
	if ((ctl->path = strdup(opts->path)) == NULL)
		goto fail;
	if (opts->nallow > 0) {
		if ((ctl->opts.allow = calloc(opts->nallow, sizeof(uid_t))) == NULL)
			goto fail;
		memcpy(ctl->opts.allow, opts->allow, opts->nallow * sizeof(uid_t));
		ctl->opts.nallow = opts->nallow;
	}
	if ((fd = control_bind(ctl)) == -1)
		goto fail;
	ctl->evl = evconnlistener_new(pop3d_get_base(srv), control_accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	ctl->ev_tick = event_new(pop3d_get_base(srv), -1, EV_PERSIST, control_tick_cb, ctl);
	if (ctl->evl == NULL || ctl->ev_tick == NULL) {
		if (ctl->evl == NULL)
			close(fd);
		unlink(ctl->path);
		goto fail;
	}
	evconnlistener_set_error_cb(ctl->evl, control_accept_error);
	evtimer_add(ctl->ev_tick, &tv);
	log_info("event=control-listening path=%s mode=%03o", ctl->path, (unsigned)ctl->opts.mode);
	return ctl;
fail:
	if (ctl->evl != NULL)
		evconnlistener_free(ctl->evl);
	if (ctl->ev_tick != NULL)
		event_free(ctl->ev_tick);
	peer_free_all(ctl);
	control_unbind_free(ctl);
	free(ctl->opts.allow);
	free(ctl->path);
	free(ctl);
	return NULL;
}

/* Close every controller and remove the socket file (if still ours). */
void
control_free(struct control *ctl)
{
	struct stat st;

	if (ctl == NULL)
		return;
	hook_free_all(ctl);
	peer_free_all(ctl);
	control_unbind_free(ctl);
	if (ctl->evl != NULL)
		evconnlistener_free(ctl->evl);
	if (ctl->ev_tick != NULL)
		event_free(ctl->ev_tick);
	/* Remove the socket file only if it is still ours, never a symlink. */
	if (lstat(ctl->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ctl->ino &&
	    st.st_dev == ctl->dev)
		unlink(ctl->path);
	free(ctl->opts.allow);
	free(ctl->path);
	free(ctl);
}
