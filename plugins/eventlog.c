/*
 * eventlog.c - pop3d plugin: one line per event, passwords masked.
 *
 *   pop3d --plugin eventlog.so=/var/log/pop3d-events.log
 *
 * Without an argument lines go to stderr.  Lines look like
 *   2026-11-26T14:12:28Z seq=12 event=pop3d_cmd_pass client=3 tag=2 args=[3,"****"]
 * The secret of PASS, APOP (the digest), AUTH (the initial response) and
 * every pop3d_auth_data line is replaced by **** before it is written,
 * whatever separates it (src/mask.c, the rule the core and pop3ctl use).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mask.h"
#include "pop3d.h"

struct eventlog {
	FILE *f;
	int own;
};

/* Write s as a JSON-ish quoted string (mask_escape's MASK_QUOTED) with
 * the rule of mask.h applied: hidden octets are written as ****. */
static void
eventlog_quote(FILE *f, int rule, const char *s, size_t len)
{
	/* Escaped in chunks: a unit is at most 8 octets, so each step uses
	 * some of s and the line has no length limit of its own. */
	char buf[256];
	size_t vis = mask_visible(rule, s, len), off, used;

	fputc('"', f);
	for (off = 0; off < vis; off += used) {
		used = mask_escape(buf, sizeof(buf), s + off, vis - off, MASK_QUOTED);
		fputs(buf, f);
	}
	if (vis < len)
		fputs(vis > 0 ? " " MASK_HIDDEN : MASK_HIDDEN, f);
	fputc('"', f);
}

/* Write one line for the event, secrets masked (mask_event_arg). */
static int
eventlog_handler(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	struct eventlog *el = arg;
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	int i;

	(void)srv;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(el->f, "%s seq=%llu event=%s", ts, (unsigned long long)ev->seq, ev->name);
	if (ev->client != 0)
		fprintf(el->f, " client=%llu", (unsigned long long)ev->client);
	if (ev->tag != 0)
		fprintf(el->f, " tag=%llu", (unsigned long long)ev->tag);
	fputs(" args=[", el->f);
	for (i = 0; i < ev->argc; i++) {
		const struct pop3d_arg *a = &ev->argv[i];

		if (i > 0)
			fputc(',', el->f);
		if (a->type == POP3D_ARG_INT)
			fprintf(el->f, "%lld", a->i);
		else if (a->s == NULL)
			fputs("null", el->f);
		else
			eventlog_quote(el->f, mask_event_arg(ev->name, i), a->s, a->len);
	}
	fputs("]\n", el->f);
	fflush(el->f);
	return POP3D_EAT_NONE;
}

/* Plugin start: open the log (stderr without an argument), register. */
static int
eventlog_register(struct pop3d *srv, const char *alias, const char *arg, void **state)
{
	static const char *const all[] = { "all" };
	struct eventlog *el = calloc(1, sizeof(*el));

	if (el == NULL)
		return -1;
	if (arg != NULL && *arg != '\0') {
		if ((el->f = fopen(arg, "a")) == NULL) {
			perror(arg);
			free(el);
			return -1;
		}
		el->own = 1;
	} else
		el->f = stderr;
	if (pop3d_plugin_register_type(srv, alias, POP3D_PLUGIN_POP3D, all, 1, NULL) != 0) {
		if (el->own)
			fclose(el->f);
		free(el);
		return -1;
	}
	*state = el;
	return 0;
}

/* Plugin stop: close a log file we opened. */
static void
eventlog_unregister(struct pop3d *srv, const char *alias, void *state)
{
	struct eventlog *el = state;

	(void)srv;
	(void)alias;
	if (el->own)
		fclose(el->f);
	free(el);
}

static const struct pop3d_plugin_def eventlog_def = { POP3D_ABI_VERSION, "eventlog", 1000,
	eventlog_register, eventlog_unregister, eventlog_handler };

const struct pop3d_plugin_def *pop3d_plugin_entry(void);

/* The entry point pop3d looks up in the shared object. */
const struct pop3d_plugin_def *
pop3d_plugin_entry(void)
{
	return &eventlog_def;
}
