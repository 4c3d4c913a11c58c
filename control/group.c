/* group.c - controller groups: members, client bindings, picking a member. */
/*
 * One concern: which member of a group handles a client.  A client is
 * bound to the member picked when the group first needs it (normally at
 * pop3d_connection): the eligible member with the fewest bound clients,
 * ties broken round robin from the member after the last one picked.
 * Bindings are (client id -> controller id) in a chained hash per group;
 * they go when the client disconnects or its member leaves.  The callers
 * say who is eligible (live, registered for the event, in the plugin), so
 * this file makes no I/O and calls nothing else of the tree.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

/* 1-63 characters of [A-Za-z0-9_.-]. */
int
group_name_valid(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0' || strlen(name) > GROUP_NAME_MAX)
		return 0;
	for (i = 0; name[i] != '\0'; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
			(name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '.' ||
			name[i] == '-'))
			return 0;
	return 1;
}

/* The group of that name, or NULL. */
struct group_entry *
group_find(struct group_set *gs, const char *name)
{
	size_t i;

	for (i = 0; i < gs->ngroups; i++)
		if (strcmp(gs->groups[i]->name, name) == 0)
			return gs->groups[i];
	return NULL;
}

/* The member entry of controller in g, or NULL. */
struct group_member *
group_member_find(struct group_entry *g, uint64_t controller)
{
	size_t i;

	for (i = 0; i < g->nmembers; i++)
		if (g->members[i].controller == controller)
			return &g->members[i];
	return NULL;
}

/* The group controller belongs to, or NULL. */
struct group_entry *
group_of(struct group_set *gs, uint64_t controller)
{
	size_t i;

	for (i = 0; i < gs->ngroups; i++)
		if (group_member_find(gs->groups[i], controller) != NULL)
			return gs->groups[i];
	return NULL;
}

/* Join (creating the group on first use). */
int
group_join(struct group_set *gs, const char *name, uint64_t controller, const char *cname)
{
	struct group_entry *g, **ng;
	struct group_member *nm;

	if (!group_name_valid(name))
		return -1;
	if ((g = group_of(gs, controller)) != NULL)
		return strcmp(g->name, name) == 0 ? 0 : -1;
	if ((g = group_find(gs, name)) == NULL) {
		if ((g = calloc(1, sizeof(*g))) == NULL)
			return -1;
		if ((ng = realloc(gs->groups, (gs->ngroups + 1) * sizeof(*ng))) == NULL) {
			free(g);
			return -1;
		}
		gs->groups = ng;
		snprintf(g->name, sizeof(g->name), "%s", name);
		gs->groups[gs->ngroups++] = g;
	}
	if ((nm = realloc(g->members, (g->nmembers + 1) * sizeof(*nm))) == NULL)
		return -1; /* an empty new group stays; the next join fills it */
	g->members = nm;
	memset(&nm[g->nmembers], 0, sizeof(*nm));
	nm[g->nmembers].controller = controller;
	snprintf(nm[g->nmembers].name, sizeof(nm->name), "%s", cname != NULL ? cname : "");
	g->nmembers++;
	return 0;
}

/* A member's new name. */
void
group_rename(struct group_set *gs, uint64_t controller, const char *cname)
{
	struct group_entry *g = group_of(gs, controller);
	struct group_member *m;

	if (g != NULL && (m = group_member_find(g, controller)) != NULL)
		snprintf(m->name, sizeof(m->name), "%s", cname);
}

/* Least bound (or plain round robin), starting after the last pick. */
uint64_t
group_pick(struct group_entry *g, int least, group_eligible_fn eligible, void *arg)
{
	size_t i, k, best = (size_t)-1;

	for (k = 0; k < g->nmembers; k++) {
		i = (g->next + k) % g->nmembers;
		if (eligible != NULL && !eligible(g->members[i].controller, arg))
			continue;
		if (best == (size_t)-1 || (least && g->members[i].nbound < g->members[best].nbound))
			best = i;
		if (!least)
			break;
	}
	if (best == (size_t)-1)
		return 0;
	g->next = (best + 1) % g->nmembers;
	return g->members[best].controller;
}

/* Bucket of a client id. */
static size_t
group_bucket(uint64_t client)
{
	return (size_t)((client * 0x9E3779B97F4A7C15ull) >> 32) % GROUP_BUCKETS;
}

/* The member client is bound to, or 0. */
uint64_t
group_bound(struct group_entry *g, uint64_t client)
{
	struct group_binding *b;

	for (b = g->buckets[group_bucket(client)]; b != NULL; b = b->next)
		if (b->client == client)
			return b->member;
	return 0;
}

/* Bind client to member (replacing nothing: an existing binding stays). */
int
group_bind(struct group_entry *g, uint64_t client, uint64_t member)
{
	struct group_member *m = group_member_find(g, member);
	struct group_binding *b;
	size_t k = group_bucket(client);

	if (m == NULL || group_bound(g, client) != 0 || (b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	b->client = client;
	b->member = member;
	b->next = g->buckets[k];
	g->buckets[k] = b;
	g->nbindings++;
	m->nbound++;
	return 0;
}

/* Bound member, binding a picked one first when allowed. */
uint64_t
group_route(struct group_entry *g, uint64_t client, int may_bind, group_eligible_fn eligible,
    void *arg)
{
	uint64_t m = group_bound(g, client);

	if (m != 0 || !may_bind)
		return m;
	if ((m = group_pick(g, 1, eligible, arg)) == 0 || group_bind(g, client, m) != 0)
		return 0;
	return m;
}

/* Remove client's binding from g, if any. */
static void
group_unbind(struct group_entry *g, uint64_t client)
{
	struct group_binding **pp, *b;
	struct group_member *m;

	for (pp = &g->buckets[group_bucket(client)]; (b = *pp) != NULL; pp = &b->next)
		if (b->client == client) {
			*pp = b->next;
			if ((m = group_member_find(g, b->member)) != NULL && m->nbound > 0)
				m->nbound--;
			g->nbindings--;
			free(b);
			return;
		}
}

/* A client disconnected: its bindings go. */
void
group_unbind_client(struct group_set *gs, uint64_t client)
{
	size_t i;

	for (i = 0; i < gs->ngroups; i++)
		group_unbind(gs->groups[i], client);
}

/* Free g and its bindings. */
static void
group_free(struct group_entry *g)
{
	struct group_binding *b;
	size_t k;

	for (k = 0; k < GROUP_BUCKETS; k++)
		while ((b = g->buckets[k]) != NULL) {
			g->buckets[k] = b->next;
			free(b);
		}
	free(g->members);
	free(g);
}

/* Collect and drop the bindings to member; -1 if the list ran out of memory. */
static int
group_drop_member_bindings(struct group_entry *g, uint64_t member, uint64_t **clients, size_t *n)
{
	struct group_binding **pp, *b;
	size_t k, cap = 0;
	int rv = 0;

	for (k = 0; k < GROUP_BUCKETS; k++)
		for (pp = &g->buckets[k]; (b = *pp) != NULL;) {
			if (b->member != member) {
				pp = &b->next;
				continue;
			}
			if (*n == cap) {
				uint64_t *nc =
				    realloc(*clients, (cap ? cap * 2 : 16) * sizeof(*nc));

				if (nc == NULL)
					rv = -1;
				else {
					*clients = nc;
					cap = cap ? cap * 2 : 16;
				}
			}
			if (*n < cap)
				(*clients)[(*n)++] = b->client;
			*pp = b->next;
			g->nbindings--;
			free(b);
		}
	return rv;
}

/* controller leaves its group; see group.h. */
int
group_leave(struct group_set *gs, uint64_t controller, char *group, uint64_t **clients, size_t *n)
{
	struct group_entry *g = group_of(gs, controller);
	size_t i, j;
	int rv;

	*clients = NULL;
	*n = 0;
	if (g == NULL)
		return 0;
	snprintf(group, GROUP_NAME_MAX + 1, "%s", g->name);
	rv = group_drop_member_bindings(g, controller, clients, n) == 0 ? 1 : -1;
	for (i = 0; i < g->nmembers; i++)
		if (g->members[i].controller == controller) {
			memmove(&g->members[i], &g->members[i + 1],
			    (g->nmembers - i - 1) * sizeof(g->members[0]));
			g->nmembers--;
			if (g->next > i)
				g->next--;
			break;
		}
	if (g->nmembers > 0) {
		g->next %= g->nmembers;
		return rv;
	}
	for (j = 0; j < gs->ngroups; j++)
		if (gs->groups[j] == g) {
			memmove(&gs->groups[j], &gs->groups[j + 1],
			    (gs->ngroups - j - 1) * sizeof(gs->groups[0]));
			gs->ngroups--;
			break;
		}
	group_free(g);
	return rv;
}

/* Free every group (control_free). */
void
group_free_all(struct group_set *gs)
{
	size_t i;

	for (i = 0; i < gs->ngroups; i++)
		group_free(gs->groups[i]);
	free(gs->groups);
	gs->groups = NULL;
	gs->ngroups = 0;
}
