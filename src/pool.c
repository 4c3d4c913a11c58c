/* pool.c - memory kept for reuse: client structures in slabs, empty buffers. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "server.h"

/*
 * Client structures come from slabs of POOL_SLAB, kept for reuse: an
 * idle client then lies among other clients, not among the short-lived
 * buffers of the commands around the time it connected (which left a
 * fifth of the heap as holes).  The slabs are freed with the server.
 * Under AddressSanitizer every client is a malloc of its own, so that a
 * use after free is still caught.
 */
#define POOL_SLAB 32
#if defined(__SANITIZE_ADDRESS__)
#define POOL_NONE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_NONE 1
#endif
#endif

struct client_slab {
	struct client_slab *next;
	struct client c[POOL_SLAB];
};

/* A zeroed client structure, or NULL. */
struct client *
pool_client_get(struct pop3d *srv)
{
#ifdef POOL_NONE
	return calloc(1, sizeof(struct client));
#else
	struct client *c;
	size_t i;

	if (srv->cfree == NULL) {
		struct client_slab *sl = malloc(sizeof(*sl));

		if (sl == NULL)
			return NULL;
		sl->next = srv->slabs;
		srv->slabs = sl;
		for (i = 0; i < POOL_SLAB; i++) {
			sl->c[i].hnext = srv->cfree;
			srv->cfree = &sl->c[i];
		}
	}
	c = srv->cfree;
	srv->cfree = c->hnext;
	memset(c, 0, sizeof(*c));
	return c;
#endif
}

/* Give a client structure back. */
void
pool_client_put(struct pop3d *srv, struct client *c)
{
#ifdef POOL_NONE
	(void)srv;
	free(c);
#else
	c->hnext = srv->cfree;
	srv->cfree = c;
#endif
}

/* The server is going: every client is released by now. */
void
pool_free(struct pop3d *srv)
{
	struct client_slab *sl;

	while ((sl = srv->slabs) != NULL) {
		srv->slabs = sl->next;
		free(sl);
	}
	srv->cfree = NULL;
	while (srv->nevpool > 0)
		evbuffer_free(srv->evpool[--srv->nevpool]);
}

/*
 * Raw clients hold an input or output buffer only while it has data, so a
 * buffer is taken and given back for nearly every command; empty ones are
 * kept for the next client instead of freed and made again.
 */
struct evbuffer *
pool_evbuffer_get(struct pop3d *srv)
{
#ifndef POOL_NONE
	if (srv->nevpool > 0)
		return srv->evpool[--srv->nevpool];
#else
	(void)srv;
#endif
	return evbuffer_new();
}

/* Keep an empty buffer for the next client, or free it. */
void
pool_evbuffer_put(struct pop3d *srv, struct evbuffer *b)
{
#ifndef POOL_NONE
	if (srv->nevpool < SERVER_EVPOOL && evbuffer_get_length(b) == 0) {
		srv->evpool[srv->nevpool++] = b;
		return;
	}
#else
	(void)srv;
#endif
	evbuffer_free(b);
}
