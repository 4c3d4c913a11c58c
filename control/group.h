/* group.h - controller groups: members, client bindings, picking a member (group.c). */
/*
 * A group is a named set of controllers (members) that share the work:
 * each client is bound to one member of each group, and the events and
 * hooks about it go to that member only.  Everything here is by id: a
 * member is a controller id, a binding maps a client id to a member id.
 * No I/O and no pop3d calls: the callers (peer.c, hook.c, command.c,
 * control.c) decide who is eligible and what a departure means.
 */
#ifndef POP3D_GROUP_H
#define POP3D_GROUP_H

#include <stddef.h>
#include <stdint.h>

/* Longest group name, without the NUL; names are [A-Za-z0-9_.-]. */
#define GROUP_NAME_MAX 63
/* Buckets of a group's binding table (chained): why a fixed size - a
 * group holds at most max_clients bindings, a few per bucket. */
#define GROUP_BUCKETS 1024

struct group_member {
	uint64_t controller;
	char name[64]; /* the controller's name, for list_groups */
	size_t nbound; /* clients bound to it */
};

struct group_binding {
	uint64_t client;
	uint64_t member;
	struct group_binding *next;
};

struct group_entry {
	char name[GROUP_NAME_MAX + 1];
	struct group_member *members; /* in order of joining */
	size_t nmembers;
	size_t next; /* round robin: where the next tie-break starts */
	struct group_binding *buckets[GROUP_BUCKETS];
	size_t nbindings;
};

struct group_set {
	struct group_entry **groups; /* in order of creation */
	size_t ngroups;
};

/* Whether controller id may be picked; arg is the caller's. */
typedef int (*group_eligible_fn)(uint64_t controller, void *arg);

int group_name_valid(const char *name);
struct group_entry *group_find(struct group_set *, const char *name);
/* The group controller is a member of, or NULL. */
struct group_entry *group_of(struct group_set *, uint64_t controller);
/* Add controller to group name (created on first use); 0, or -1 (out of
 * memory, bad name, or already a member of another group). */
int group_join(struct group_set *, const char *name, uint64_t controller, const char *cname);
/* Update a member's name (hello again). */
void group_rename(struct group_set *, uint64_t controller, const char *cname);
/* Pick an eligible member: least bound first, ties round robin (least
 * != 0), or plain round robin (least == 0).  0 when none is eligible. */
uint64_t group_pick(struct group_entry *, int least, group_eligible_fn, void *arg);
/* The member client is bound to, or 0. */
uint64_t group_bound(struct group_entry *, uint64_t client);
/* The member client is bound to; unbound and may_bind, bind it to a
 * picked member first.  0 when unbound and nobody is eligible. */
uint64_t
group_route(struct group_entry *, uint64_t client, int may_bind, group_eligible_fn, void *arg);
/* Bind client to member (a member of g); 0 or -1. */
int group_bind(struct group_entry *, uint64_t client, uint64_t member);
/* Drop every binding of client, in every group (it disconnected). */
void group_unbind_client(struct group_set *, uint64_t client);
/*
 * Controller leaves its group: the member and its bindings go, and the
 * group too when it was the last member.  *clients (malloc'd, may be
 * NULL when *n is 0) gets the clients that were bound to it; *group the
 * group's name (a buffer of GROUP_NAME_MAX + 1).  Returns 1 if it was a
 * member, 0 if not, -1 out of memory (bindings dropped all the same).
 */
int
group_leave(struct group_set *, uint64_t controller, char *group, uint64_t **clients, size_t *n);
/* A member of g, or NULL. */
struct group_member *group_member_find(struct group_entry *, uint64_t controller);
void group_free_all(struct group_set *);

#endif
