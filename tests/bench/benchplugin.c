/*
 * benchplugin.c - in-process pop3d plugin for the benchmarks (set-up c):
 * answers every POP3 command from memory, with the mailboxes of
 * benchmsg.h, and eats the event (POP3D_EAT_ALL).
 *
 *   pop3d --plugin tests/bench/.libs/benchplugin.so
 *
 * Single lines go out with pop3d_send_to_client, LIST, UIDL and RETR of
 * the small messages with pop3d_send_lines (the core dot-stuffs), RETR of
 * the 10 MB message with pop3d_send_file of a temporary file written at
 * registration (the core streams it as the client drains).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchmsg.h"
#include "pop3d.h"

struct benchplugin {
	struct bench_table table;
	struct bench_mailbox box[3];
	char *stat[3];
	char *list_status[3];
	struct iovec *list[3], *uidl[3];
	char tmpdir[64];
	char big_path[128];
	char big_status[64];
};

static void
reply(struct pop3d *srv, const struct pop3d_event *ev, const char *text)
{
	pop3d_send_to_client(srv, ev->client, ev->tag, text, strlen(text), 0);
}

static int
benchplugin_handler(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	struct benchplugin *bp = arg;
	struct bench_client *bc;
	const char *verb, *a1 = NULL;
	char buf[128];
	int n;

	if (strcmp(ev->name, "pop3d_disconnected") == 0) {
		bench_table_del(&bp->table, ev->client);
		return POP3D_EAT_NONE;
	}
	if (strncmp(ev->name, "pop3d_cmd_", 10) != 0)
		return POP3D_EAT_NONE;
	verb = ev->name + 10;
	if (ev->argc > 1 && ev->argv[1].type == POP3D_ARG_STR)
		a1 = ev->argv[1].s;
	if ((bc = bench_table_get(&bp->table, ev->client, 1)) == NULL) {
		reply(srv, ev, "-ERR [SYS/TEMP] out of memory");
		return POP3D_EAT_ALL;
	}
	if (strcmp(verb, "noop") == 0) {
		reply(srv, ev, bc->logged_in ? "+OK" : "-ERR log in first");
	} else if (strcmp(verb, "quit") == 0) {
		reply(srv, ev, "+OK bye");
	} else if (strcmp(verb, "user") == 0) {
		if (bc->logged_in)
			reply(srv, ev, "-ERR already logged in");
		else {
			bc->box = a1 != NULL ? (int)bench_user_box(a1, ev->argv[1].len) : 0;
			reply(srv, ev, "+OK send PASS");
		}
	} else if (strcmp(verb, "pass") == 0) {
		if (bc->logged_in)
			reply(srv, ev, "-ERR already logged in");
		else if (!bc->box)
			reply(srv, ev, "-ERR USER first");
		else if (a1 == NULL || strcmp(a1, BENCH_PASSWORD) != 0)
			reply(srv, ev, "-ERR [AUTH] invalid login");
		else {
			bc->logged_in = 1;
			reply(srv, ev, "+OK logged in");
		}
	} else if (strcmp(verb, "stat") != 0 && strcmp(verb, "list") != 0 &&
	    strcmp(verb, "uidl") != 0 && strcmp(verb, "retr") != 0 && strcmp(verb, "rset") != 0) {
		reply(srv, ev, "-ERR unknown command");
	} else if (!bc->logged_in) {
		reply(srv, ev, "-ERR log in first");
	} else if (strcmp(verb, "stat") == 0) {
		reply(srv, ev, bp->stat[bc->box]);
	} else if (strcmp(verb, "rset") == 0) {
		reply(srv, ev, "+OK");
	} else if (a1 == NULL && strcmp(verb, "list") == 0) {
		pop3d_send_lines(srv, ev->client, ev->tag, bp->list_status[bc->box],
		    bp->list[bc->box], (size_t)bp->box[bc->box].n);
	} else if (a1 == NULL && strcmp(verb, "uidl") == 0) {
		pop3d_send_lines(srv, ev->client, ev->tag, "+OK", bp->uidl[bc->box],
		    (size_t)bp->box[bc->box].n);
	} else if (a1 == NULL || (n = bench_msgno(a1, bp->box[bc->box].n)) < 0) {
		reply(srv, ev, "-ERR no such message");
	} else if (strcmp(verb, "list") == 0) {
		snprintf(buf, sizeof(buf), "+OK %d %zu", n, bp->box[bc->box].msg[n - 1].octets);
		reply(srv, ev, buf);
	} else if (strcmp(verb, "uidl") == 0) {
		snprintf(buf, sizeof(buf), "+OK %d %s", n, bp->box[bc->box].msg[n - 1].uid);
		reply(srv, ev, buf);
	} else if (bc->box == BENCH_BOX_BIG) {
		pop3d_send_file(srv, ev->client, ev->tag, bp->big_status, bp->big_path, -1);
	} else {
		const struct bench_msg *m = &bp->box[bc->box].msg[n - 1];

		snprintf(buf, sizeof(buf), "+OK %zu octets", m->octets);
		pop3d_send_lines(srv, ev->client, ev->tag, buf, m->iov, m->lines);
	}
	return POP3D_EAT_ALL;
}

static void
benchplugin_free(struct benchplugin *bp)
{
	int b, i;

	if (bp->big_path[0] != '\0')
		unlink(bp->big_path);
	if (bp->tmpdir[0] != '\0')
		rmdir(bp->tmpdir);
	for (b = 1; b <= 2; b++) {
		free(bp->stat[b]);
		free(bp->list_status[b]);
		if (bp->list[b] != NULL)
			for (i = 0; i < bp->box[b].n; i++)
				free(bp->list[b][i].iov_base);
		if (bp->uidl[b] != NULL)
			for (i = 0; i < bp->box[b].n; i++)
				free(bp->uidl[b][i].iov_base);
		free(bp->list[b]);
		free(bp->uidl[b]);
		bench_mailbox_free(&bp->box[b]);
	}
	bench_table_free(&bp->table);
	free(bp);
}

static int
benchplugin_prepare(struct benchplugin *bp, enum bench_box b)
{
	struct bench_mailbox *mb = &bp->box[b];
	char buf[128];
	int i;

	if (bench_mailbox_make(mb, b, 0, 1) == -1)
		return -1;
	snprintf(buf, sizeof(buf), "+OK %d %zu", mb->n, mb->total);
	bp->stat[b] = strdup(buf);
	snprintf(buf, sizeof(buf), "+OK %d messages (%zu octets)", mb->n, mb->total);
	bp->list_status[b] = strdup(buf);
	bp->list[b] = calloc((size_t)mb->n, sizeof(struct iovec));
	bp->uidl[b] = calloc((size_t)mb->n, sizeof(struct iovec));
	if (bp->stat[b] == NULL || bp->list_status[b] == NULL || bp->list[b] == NULL ||
	    bp->uidl[b] == NULL)
		return -1;
	for (i = 0; i < mb->n; i++) {
		snprintf(buf, sizeof(buf), "%d %zu", i + 1, mb->msg[i].octets);
		if ((bp->list[b][i].iov_base = strdup(buf)) == NULL)
			return -1;
		bp->list[b][i].iov_len = strlen(buf);
		snprintf(buf, sizeof(buf), "%d %s", i + 1, mb->msg[i].uid);
		if ((bp->uidl[b][i].iov_base = strdup(buf)) == NULL)
			return -1;
		bp->uidl[b][i].iov_len = strlen(buf);
	}
	return 0;
}

static int
benchplugin_register(struct pop3d *srv, const char *alias, const char *arg, void **state)
{
	static const char *const names[] = { "cmd_*", "disconnected" };
	struct benchplugin *bp = calloc(1, sizeof(*bp));
	const struct bench_msg *m;
	FILE *f;

	(void)arg;
	if (bp == NULL)
		return -1;
	if (benchplugin_prepare(bp, BENCH_BOX_SMALL) == -1 ||
	    benchplugin_prepare(bp, BENCH_BOX_BIG) == -1)
		goto fail;
	snprintf(bp->tmpdir, sizeof(bp->tmpdir), "/tmp/benchplugin-XXXXXX");
	if (mkdtemp(bp->tmpdir) == NULL) {
		bp->tmpdir[0] = '\0';
		goto fail;
	}
	m = &bp->box[BENCH_BOX_BIG].msg[0];
	snprintf(bp->big_path, sizeof(bp->big_path), "%s/big1.eml", bp->tmpdir);
	snprintf(bp->big_status, sizeof(bp->big_status), "+OK %zu octets", m->octets);
	if ((f = fopen(bp->big_path, "w")) == NULL)
		goto fail;
	if (fwrite(m->text, 1, m->len, f) != m->len) {
		fclose(f);
		goto fail;
	}
	if (fclose(f) != 0)
		goto fail;
	if (pop3d_plugin_register_type(srv, alias, POP3D_PLUGIN_POP3D, names, 2, NULL) != 0)
		goto fail;
	*state = bp;
	return 0;
fail:
	perror("benchplugin");
	benchplugin_free(bp);
	return -1;
}

static void
benchplugin_unregister(struct pop3d *srv, const char *alias, void *state)
{
	(void)srv;
	(void)alias;
	benchplugin_free(state);
}

static const struct pop3d_plugin_def benchplugin_def = { POP3D_ABI_VERSION, "benchplugin", 500,
	benchplugin_register, benchplugin_unregister, benchplugin_handler };

const struct pop3d_plugin_def *pop3d_plugin_entry(void);

const struct pop3d_plugin_def *
pop3d_plugin_entry(void)
{
	return &benchplugin_def;
}
