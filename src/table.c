/* table.c - the client table: ids, the client list, per-address counts. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* Clients per peer address: a small chained hash of address strings. */
struct addrcount_entry {
	struct addrcount_entry *next;
	unsigned count;
	char addr[64];
};
/* Why 1024: a fixed table (4 KiB per limit-checking server) keeps the
 * chains short for the addresses of max-clients (1024 by default). */
#define TABLE_ADDR_BUCKETS 1024
struct addrcount {
	struct addrcount_entry *b[TABLE_ADDR_BUCKETS];
};

/* An empty table; -1 when out of memory. */
int
table_init(struct pop3d *srv)
{
	TAILQ_INIT(&srv->clients);
	srv->hash_size = 256; /* doubled at half full (table_link) */
	srv->hash = calloc(srv->hash_size, sizeof(*srv->hash));
	srv->addrs = calloc(1, sizeof(*srv->addrs));
	return srv->hash != NULL && srv->addrs != NULL ? 0 : -1;
}

/* Free the table (its clients are gone by now). */
void
table_free(struct pop3d *srv)
{
	size_t i;

	if (srv->addrs != NULL) {
		for (i = 0; i < TABLE_ADDR_BUCKETS; i++) {
			struct addrcount_entry *e, *n;

			for (e = srv->addrs->b[i]; e != NULL; e = n) {
				n = e->next;
				free(e);
			}
		}
		free(srv->addrs);
		srv->addrs = NULL;
	}
	free(srv->hash);
	srv->hash = NULL;
}

/* Client table: ids are never reused, so a stale id simply finds nothing. */
static size_t
table_hash(struct pop3d *srv, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 20) & (srv->hash_size - 1);
}

/* The client of id, dead or alive, or NULL. */
struct client *
table_find(struct pop3d *srv, uint64_t id)
{
	struct client *c;

	for (c = srv->hash[table_hash(srv, id)]; c != NULL; c = c->hnext)
		if (c->id == id)
			return c;
	return NULL;
}

/* Twice the buckets: at most two clients a bucket on average. */
static void
table_rehash(struct pop3d *srv)
{
	struct client **nh, *c;
	size_t oldsize = srv->hash_size;

	if ((nh = calloc(oldsize * 2, sizeof(*nh))) == NULL)
		return;
	free(srv->hash);
	srv->hash = nh;
	srv->hash_size = oldsize * 2;
	TAILQ_FOREACH (c, &srv->clients, entry) {
		size_t h = table_hash(srv, c->id);

		c->hnext = srv->hash[h];
		srv->hash[h] = c;
	}
}

/* A new client: listed, and found by id. */
void
table_link(struct pop3d *srv, struct client *c)
{
	size_t h;

	TAILQ_INSERT_TAIL(&srv->clients, c, entry);
	srv->nclients++;
	if (srv->nclients * 2 > srv->hash_size)
		table_rehash(srv);
	else {
		h = table_hash(srv, c->id);
		c->hnext = srv->hash[h];
		srv->hash[h] = c;
	}
}

/* A client died: it no longer counts against the limits.  It stays in the
 * table (found by id, marked dead) until it is freed. */
void
table_retire(struct pop3d *srv, struct client *c)
{
	srv->nclients--;
	if (c->addr_counted)
		table_addr_release(srv, c->peer);
}

/* The client is freed: forget it. */
void
table_unlink(struct pop3d *srv, struct client *c)
{
	struct client **pp;

	for (pp = &srv->hash[table_hash(srv, c->id)]; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	TAILQ_REMOVE(&srv->clients, c, entry);
}

/* FNV-1a of an address string. */
static unsigned
table_addr_hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h & (TABLE_ADDR_BUCKETS - 1);
}

/* Count one more client of addr; -1 at --max-per-address (or out of
 * memory). */
int
table_addr_acquire(struct pop3d *srv, const char *addr)
{
	unsigned h = table_addr_hash(addr);
	struct addrcount_entry *e;

	for (e = srv->addrs->b[h]; e != NULL; e = e->next)
		if (strcmp(e->addr, addr) == 0)
			break;
	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		snprintf(e->addr, sizeof(e->addr), "%s", addr);
		e->next = srv->addrs->b[h];
		srv->addrs->b[h] = e;
	}
	if (srv->opts.max_per_address > 0 && e->count >= srv->opts.max_per_address)
		return -1;
	e->count++;
	return 0;
}

/* One client of addr fewer. */
void
table_addr_release(struct pop3d *srv, const char *addr)
{
	struct addrcount_entry **pp, *e;

	for (pp = &srv->addrs->b[table_addr_hash(addr)]; (e = *pp) != NULL; pp = &e->next)
		if (strcmp(e->addr, addr) == 0) {
			if (--e->count == 0) {
				*pp = e->next;
				free(e);
			}
			return;
		}
}
