/*
 * linger.h - closing a client's socket without losing what it is owed.
 *
 * close(2) of a socket with unread input resets the connection at once,
 * and a reset that arrives later (the client still sending after the
 * close) makes the kernel discard what it has not yet sent: a slow reader
 * loses the end of its last answers.  So a connection that pop3d closes
 * on purpose lingers: its write side is shut (the FIN follows the output),
 * input is read and dropped, and the socket is closed once the peer has
 * everything (nothing unacknowledged), closes itself, or LINGER_SECONDS
 * pass.  At most LINGER_MAX sockets linger; past that they close at once.
 */
#ifndef POP3D_LINGER_H
#define POP3D_LINGER_H

#include <sys/queue.h>

struct event_base;

/* Why 5 s: long enough for a slow reader to take a few hundred KiB from
 * the kernel, short enough that an absent peer does not hold the fd. */
#define LINGER_SECONDS 5
#define LINGER_MAX 1024

struct lingering;
TAILQ_HEAD(linger_list, lingering);

struct lingerq {
	struct event_base *base;
	struct linger_list list;
	unsigned n;
};

void linger_init(struct lingerq *, struct event_base *);
/* Take fd (a connected stream socket) and close it when it is safe. */
void linger_close(struct lingerq *, int fd);
/* Close every lingering socket now (the server is being freed). */
void linger_free_all(struct lingerq *);

#endif
