/* control.h - the control socket, the API daemon.c uses. */
/*
 * The control socket: pop3d_* events as newline-delimited JSON
 * over a Unix-domain socket, commands back.  The normative description is
 * pop3d-control(7).  JSON stays inside control/: the core speaks C structs.
 */
#ifndef POP3D_CONTROL_H
#define POP3D_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

struct pop3d;
struct control;

/* A controller's output backlog cap (bytes) and the stall limit (s):
 * past either the controller is dropped, so a controller that stops
 * reading never delays clients or other controllers. */
#define CONTROL_MAX_OUTPUT (8u * 1024 * 1024)
#define CONTROL_STALL_SECONDS 10
/* Longest line a controller may send. */
#define CONTROL_MAX_LINE (1024u * 1024)
#define CONTROL_MAX_CONTROLLERS 64
/* A lossy controller is "behind" past this backlog; events are dropped. */
#define CONTROL_LOSSY_HIGH (256u * 1024)

struct control_options {
	const char *path;
	mode_t mode;	   /* 0600 */
	const char *group; /* NULL: pop3d's group */
	uid_t *allow;	   /* allowed uids; none given: root and euid */
	size_t nallow;
	unsigned max_controllers;
	size_t max_line;
	size_t max_output;
	unsigned stall_seconds;
};

void control_options_init(struct control_options *);
int control_options_allow(struct control_options *, uid_t);
void control_options_clear(struct control_options *);

/* Bind the socket (refusing a live server's socket or a non-socket path,
 * replacing a stale one) and start accepting.  NULL on failure, logged. */
struct control *control_new(struct pop3d *, const struct control_options *);
/* Tell every controller pop3d_shutdown and stop accepting controllers. */
void control_shutdown(struct control *);
/* Close every controller and remove the socket file. */
void control_free(struct control *);

#endif
