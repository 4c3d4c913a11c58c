/* benchmsg.c - see benchmsg.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchmsg.h"

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t
bench_rand(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

struct bench_buf {
	char *p;
	size_t len, cap;
};

static int
bench_put(struct bench_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *np;

		while (b->len + n + 1 > cap)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Deterministic text: headers, then lines of 0-75 characters; about one
 * line in eight starts with ".", a few are "." or ".." alone. */
static char *
bench_text(unsigned which, size_t target, size_t *len, size_t *lines)
{
	static const char alpha[] =
	    "abcdefghijklmnopqrstuvwxyz etaoin shrdlu ETAOIN,;:-!?0123456789";
	struct bench_buf b = { NULL, 0, 0 };
	uint32_t seed = 0x9e3779b9u * (which + 1);
	char line[128];
	size_t nl = 0;
	int n;

	n = snprintf(line, sizeof(line),
	    "Return-Path: <bench@example.org>\n"
	    "From: Bench <bench@example.org>\n");
	if (bench_put(&b, line, (size_t)n) == -1)
		goto fail;
	nl += 2;
	n = snprintf(line, sizeof(line), "To: user@example.org\nSubject: benchmark message %u\n",
	    which);
	if (bench_put(&b, line, (size_t)n) == -1)
		goto fail;
	nl += 2;
	n = snprintf(line, sizeof(line),
	    "Message-ID: <bench-%u@example.org>\n"
	    "Date: Thu, 26 Nov 2026 12:00:00 +0000\n\n",
	    which);
	if (bench_put(&b, line, (size_t)n) == -1)
		goto fail;
	nl += 3;
	while (b.len + nl < target) {
		uint32_t r = bench_rand(&seed);
		size_t k, ll = 0;

		switch (r % 16) {
		case 0:
			line[ll++] = '.';
			break;
		case 1:
			if ((r >> 8) % 4 == 0) {
				line[ll++] = '.';
				line[ll++] = '\n';
				goto done;
			}
			break;
		case 2:
			if ((r >> 8) % 4 == 0) {
				line[ll++] = '.';
				line[ll++] = '.';
				line[ll++] = '\n';
				goto done;
			}
			break;
		case 3:
			line[ll++] = '\n'; /* empty line */
			goto done;
		default:
			break;
		}
		k = 10 + (r >> 4) % 66;
		while (ll < k)
			line[ll++] = alpha[bench_rand(&seed) % (sizeof(alpha) - 1)];
		line[ll++] = '\n';
done:
		if (bench_put(&b, line, ll) == -1)
			goto fail;
		nl++;
	}
	*len = b.len;
	*lines = nl;
	return b.p;
fail:
	free(b.p);
	return NULL;
}

int
bench_msg_make(struct bench_msg *m, unsigned which, int with_wire, int with_iov)
{
	static const size_t targets[] = { 0, 2048, 1024, 4096, BENCH_BIG_OCTETS };
	size_t i, off;

	memset(m, 0, sizeof(*m));
	if (which < 1 || which > 4)
		return -1;
	if ((m->text = bench_text(which, targets[which], &m->len, &m->lines)) == NULL)
		return -1;
	m->octets = m->len + m->lines;
	snprintf(m->uid, sizeof(m->uid), "bench-%u", which);
	if (with_iov) {
		if ((m->iov = calloc(m->lines, sizeof(*m->iov))) == NULL)
			goto fail;
		for (i = 0, off = 0; i < m->lines; i++) {
			const char *e = memchr(m->text + off, '\n', m->len - off);

			m->iov[i].iov_base = m->text + off;
			m->iov[i].iov_len = (size_t)(e - (m->text + off));
			off = (size_t)(e - m->text) + 1;
		}
	}
	if (with_wire) {
		struct bench_buf b = { NULL, 0, 0 };
		char st[64];
		int n = snprintf(st, sizeof(st), "+OK %zu octets\r\n", m->octets);
		const char *p = m->text, *end = m->text + m->len;

		if (bench_put(&b, st, (size_t)n) == -1)
			goto fail;
		while (p < end) {
			const char *e = memchr(p, '\n', (size_t)(end - p));

			if ((*p == '.' && bench_put(&b, ".", 1) == -1) ||
			    bench_put(&b, p, (size_t)(e - p)) == -1 ||
			    bench_put(&b, "\r\n", 2) == -1) {
				free(b.p);
				goto fail;
			}
			p = e + 1;
		}
		if (bench_put(&b, ".\r\n", 3) == -1) {
			free(b.p);
			goto fail;
		}
		m->wire = b.p;
		m->wirelen = b.len;
	}
	return 0;
fail:
	bench_msg_free(m);
	return -1;
}

void
bench_msg_free(struct bench_msg *m)
{
	free(m->text);
	free(m->iov);
	free(m->wire);
	memset(m, 0, sizeof(*m));
}

int
bench_mailbox_make(struct bench_mailbox *mb, enum bench_box box, int with_wire, int with_iov)
{
	int i;

	memset(mb, 0, sizeof(*mb));
	mb->n = box == BENCH_BOX_BIG ? 1 : BENCH_SMALL_MSGS;
	for (i = 0; i < mb->n; i++) {
		if (bench_msg_make(&mb->msg[i], box == BENCH_BOX_BIG ? 4u : (unsigned)i + 1,
			with_wire, with_iov) == -1) {
			bench_mailbox_free(mb);
			return -1;
		}
		mb->total += mb->msg[i].octets;
	}
	return 0;
}

void
bench_mailbox_free(struct bench_mailbox *mb)
{
	int i;

	for (i = 0; i < BENCH_SMALL_MSGS; i++)
		bench_msg_free(&mb->msg[i]);
	mb->n = 0;
}

int
bench_msgno(const char *arg, int nmsg)
{
	int n = 0;

	if (arg == NULL || *arg < '1' || *arg > '9')
		return -1;
	while (*arg >= '0' && *arg <= '9' && n < 1000)
		n = n * 10 + (*arg++ - '0');
	if (*arg != '\0' || n > nmsg)
		return -1;
	return n;
}

enum bench_box
bench_user_box(const char *user, size_t len)
{
	size_t skip, i;
	enum bench_box box;

	if (len > 5 && memcmp(user, "bench", 5) == 0) {
		skip = 5;
		box = BENCH_BOX_SMALL;
	} else if (len > 3 && memcmp(user, "big", 3) == 0) {
		skip = 3;
		box = BENCH_BOX_BIG;
	} else
		return BENCH_BOX_NONE;
	for (i = skip; i < len; i++)
		if (user[i] < '0' || user[i] > '9')
			return BENCH_BOX_NONE;
	return box;
}

static size_t
bench_hash(uint64_t id, size_t cap)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static int
bench_table_grow(struct bench_table *t)
{
	struct bench_client *old = t->slot;
	size_t oldcap = t->cap, i, cap = t->cap ? t->cap * 2 : 1024;

	if ((t->slot = calloc(cap, sizeof(*t->slot))) == NULL) {
		t->slot = old;
		return -1;
	}
	t->cap = cap;
	for (i = 0; i < oldcap; i++)
		if (old[i].id != 0) {
			size_t h = bench_hash(old[i].id, cap);

			while (t->slot[h].id != 0)
				h = (h + 1) & (cap - 1);
			t->slot[h] = old[i];
		}
	free(old);
	return 0;
}

struct bench_client *
bench_table_get(struct bench_table *t, uint64_t id, int create)
{
	size_t h;

	if (t->cap == 0 && (!create || bench_table_grow(t) == -1))
		return NULL;
	for (h = bench_hash(id, t->cap); t->slot[h].id != 0; h = (h + 1) & (t->cap - 1))
		if (t->slot[h].id == id)
			return &t->slot[h];
	if (!create)
		return NULL;
	if ((t->n + 1) * 2 > t->cap) {
		if (bench_table_grow(t) == -1)
			return NULL;
		for (h = bench_hash(id, t->cap); t->slot[h].id != 0; h = (h + 1) & (t->cap - 1))
			;
	}
	memset(&t->slot[h], 0, sizeof(t->slot[h]));
	t->slot[h].id = id;
	t->n++;
	return &t->slot[h];
}

/* Linear probing with backward-shift deletion: no tombstones. */
void
bench_table_del(struct bench_table *t, uint64_t id)
{
	size_t h, j, k;

	if (t->cap == 0)
		return;
	for (h = bench_hash(id, t->cap); t->slot[h].id != id; h = (h + 1) & (t->cap - 1))
		if (t->slot[h].id == 0)
			return;
	t->slot[h].id = 0;
	t->n--;
	for (j = (h + 1) & (t->cap - 1); t->slot[j].id != 0; j = (j + 1) & (t->cap - 1)) {
		k = bench_hash(t->slot[j].id, t->cap);
		/* Move j back to h unless its home k lies cyclically in (h, j]. */
		if ((j > h && (k <= h || k > j)) || (j < h && (k <= h && k > j))) {
			t->slot[h] = t->slot[j];
			t->slot[j].id = 0;
			h = j;
		}
	}
}

void
bench_table_free(struct bench_table *t)
{
	free(t->slot);
	memset(t, 0, sizeof(*t));
}
