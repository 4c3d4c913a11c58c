/* pop3ctl.c - pop3ctl's command line: global options, the subcommand table, main. */
/*
 * One connection per run: connect to the control socket, read the greeting
 * line, send one command (or, for listen and raw, a stream of them), skip
 * the events that are not asked for, and print the result.  See pop3ctl(1)
 * and, for how the files of pop3ctl call each other, pop3ctl.h.
 *
 * Exit status: 0 success, 1 pop3d answered with an error (or another
 * failure at run time), 2 usage error, 3 the socket cannot be reached or the
 * connection was lost before the answer.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3ctl.h"

/* Options a subcommand may take after its name. */
#define POP3CTL_OPT_TAG 0x01
#define POP3CTL_OPT_TOP 0x02
#define POP3CTL_OPT_FORMAT 0x04
#define POP3CTL_OPT_EXEC 0x08
#define POP3CTL_OPT_SECRETS 0x10
#define POP3CTL_OPT_RAWARGS 0x20

/* A subcommand: its name, argument counts, options and handler; or, for
 * a request with no arguments, the control command and how to print its
 * result (run NULL). */
struct pop3ctl_sub {
	const char *name;
	int min, max;  /* positional arguments; max -1: any number */
	unsigned opts; /* POP3CTL_OPT_* it accepts */
	int (*run)(struct pop3ctl_ctx *);
	const char *synopsis;
	const char *request;	   /* with run NULL: the control command */
	void (*show)(json_t *res); /* ... and its result's printer, or NULL */
};

/* The subcommands, in the order of the synopsis. */
static const struct pop3ctl_sub pop3ctl_subs[] = {
	{ "send", 2, 2, POP3CTL_OPT_TAG, ctlcmd_send, "send [--tag N] CLIENT TEXT", NULL, NULL },
	{ "send-lines", 1, 1, POP3CTL_OPT_TAG, ctlcmd_send_lines,
	    "send-lines [--tag N] CLIENT < LINES", NULL, NULL },
	{ "send-file", 3, 3, POP3CTL_OPT_TAG | POP3CTL_OPT_TOP, ctlcmd_send_file,
	    "send-file [--tag N] [--top N] CLIENT PATH STATUS", NULL, NULL },
	{ "disconnect", 1, 2, 0, ctlcmd_disconnect, "disconnect CLIENT [TEXT]", NULL, NULL },
	{ "shutdown", 0, 0, 0, NULL, "shutdown", "shutdown", NULL },
	{ "clients", 0, 0, 0, NULL, "clients", "list_clients", ctlprint_clients },
	{ "groups", 0, 0, 0, NULL, "groups", "list_groups", ctlprint_groups },
	{ "event", 1, -1, 0, ctlcmd_event, "event NAME [ARG ...]", NULL, NULL },
	{ "sockname", 0, 0, 0, NULL, "sockname", "getsockname", ctlprint_sockname },
	{ "session-id", 0, 0, 0, NULL, "session-id", "session_id", ctlprint_session },
	{ "ping", 0, 0, 0, NULL, "ping", "ping", ctlprint_ping },
	{ "plugins", 0, 0, 0, ctlcmd_plugins, "plugins", NULL, NULL },
	{ "listen", 0, -1,
	    POP3CTL_OPT_FORMAT | POP3CTL_OPT_EXEC | POP3CTL_OPT_SECRETS | POP3CTL_OPT_RAWARGS,
	    ctlcmd_listen,
	    "listen [--format json|text] [--exec CMD [--raw-args]] [--show-secrets] [EVENT ...]",
	    NULL, NULL },
	{ "raw", 0, 0, 0, ctlcmd_raw, "raw < JSON-LINES", NULL, NULL },
	{ NULL, 0, 0, 0, NULL, NULL, NULL, NULL },
};

/* Print the synopsis of every subcommand on f. */
static void
pop3ctl_synopsis(FILE *f)
{
	const struct pop3ctl_sub *s;

	fputs("usage: pop3ctl [-j] [-s SOCKET] COMMAND [ARG ...]\n", f);
	for (s = pop3ctl_subs; s->name != NULL; s++)
		fprintf(f, "       pop3ctl [-j] [-s SOCKET] %s\n", s->synopsis);
}

/* Print the full help on stdout. */
static void
pop3ctl_help(void)
{
	pop3ctl_synopsis(stdout);
	printf("\n"
	       "  -s, --socket SOCKET  control socket (default: $POP3D_CONTROL, else\n"
	       "                       %s)\n"
	       "  -j, --json           print the raw result object of the command\n"
	       "  -h, --help           this help\n"
	       "  -V, --version        the version\n"
	       "Exit status: 0 ok, 1 pop3d answered with an error, 2 usage, 3 socket\n"
	       "unreachable.  See pop3ctl(1).\n",
	    POP3CTL_DEFAULT_SOCKET);
}

/* Parse the subcommand's options (anywhere before "--") and positional
 * arguments into x; POP3CTL_OK or POP3CTL_USAGE. */
static int
pop3ctl_parse_sub(struct pop3ctl_ctx *x, const struct pop3ctl_sub *sub, int argc, char **argv)
{
	static const struct {
		const char *name;
		unsigned flag; /* 0: --json, allowed everywhere */
		int value;     /* takes a value */
	} opts[] = {
		{ "json", 0, 0 },
		{ "tag", POP3CTL_OPT_TAG, 1 },
		{ "top", POP3CTL_OPT_TOP, 1 },
		{ "format", POP3CTL_OPT_FORMAT, 1 },
		{ "exec", POP3CTL_OPT_EXEC, 1 },
		{ "show-secrets", POP3CTL_OPT_SECRETS, 0 },
		{ "raw-args", POP3CTL_OPT_RAWARGS, 0 },
		{ NULL, 0, 0 },
	};
	int i, k, dashdash = 0;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val, *eq;
		size_t nlen;

		if (dashdash || a[0] != '-' || a[1] != '-') {
			x->args[x->nargs++] = argv[i];
			continue;
		}
		if (a[2] == '\0') {
			dashdash = 1;
			continue;
		}
		eq = strchr(a + 2, '=');
		nlen = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);
		for (k = 0; opts[k].name != NULL; k++)
			if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, a + 2, nlen) == 0)
				break;
		if (opts[k].name == NULL || (opts[k].flag != 0 && !(sub->opts & opts[k].flag)))
			return ctlutil_usage_error("%s: unknown option %.*s (use -- before an "
						   "argument that starts with --)",
			    sub->name, (int)nlen + 2, a);
		if (!opts[k].value) {
			if (eq != NULL)
				return ctlutil_usage_error("--%s takes no value", opts[k].name);
			if (opts[k].flag == 0)
				x->json = 1;
			else if (opts[k].flag == POP3CTL_OPT_SECRETS)
				x->show_secrets = 1;
			else
				x->raw_args = 1;
			continue;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return ctlutil_usage_error("%s needs a value", a);
		if (opts[k].flag == POP3CTL_OPT_TAG &&
		    ctlutil_number(val, 1, 0x7fffffffffffffffLL, &x->tag) == -1)
			return ctlutil_usage_error("--tag must be a positive integer");
		/* The range pop3d's send_file accepts for top_lines. */
		if (opts[k].flag == POP3CTL_OPT_TOP &&
		    ctlutil_number(val, 0, 1000000000, &x->top) == -1)
			return ctlutil_usage_error("--top must be an integer from 0 to 1000000000");
		if (opts[k].flag == POP3CTL_OPT_FORMAT)
			x->format = val;
		if (opts[k].flag == POP3CTL_OPT_EXEC)
			x->exec = val;
	}
	if (x->nargs < sub->min || (sub->max >= 0 && x->nargs > sub->max))
		return ctlutil_usage_error("wrong number of arguments; usage: pop3ctl %s",
		    sub->synopsis);
	return POP3CTL_OK;
}

/* Parse the global options, then run the subcommand; returns the exit status. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const struct pop3ctl_sub *sub;
	struct pop3ctl_ctx x;
	int ch, rv;

	memset(&x, 0, sizeof(x));
	x.conn.fd = -1;
	x.top = -1;
	x.socket = getenv("POP3D_CONTROL");
	if (x.socket == NULL || x.socket[0] == '\0')
		x.socket = POP3CTL_DEFAULT_SOCKET;
	while ((ch = getopt_long(argc, argv, "+s:jhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			x.socket = optarg;
			break;
		case 'j':
			x.json = 1;
			break;
		case 'h':
			pop3ctl_help();
			return POP3CTL_OK;
		case 'V':
			printf("pop3ctl %s\n", PACKAGE_VERSION);
			return POP3CTL_OK;
		default:
			pop3ctl_synopsis(stderr);
			return POP3CTL_USAGE;
		}
	}
	if (optind >= argc)
		return ctlutil_usage_error("no command given");
	if (strcmp(argv[optind], "help") == 0) {
		pop3ctl_help();
		return POP3CTL_OK;
	}
	for (sub = pop3ctl_subs; sub->name != NULL; sub++)
		if (strcmp(sub->name, argv[optind]) == 0)
			break;
	if (sub->name == NULL)
		return ctlutil_usage_error("unknown command \"%s\"", argv[optind]);
	if (x.socket[0] == '\0')
		return ctlutil_usage_error("empty socket path");
	if ((x.args = calloc((size_t)argc, sizeof(*x.args))) == NULL) {
		ctlutil_warn("out of memory");
		return POP3CTL_ERR;
	}
	rv = pop3ctl_parse_sub(&x, sub, argc - optind - 1, argv + optind + 1);
	if (rv == POP3CTL_OK)
		rv = sub->run != NULL ? sub->run(&x) :
					ctlcmd_simple(&x, sub->request, NULL, sub->show);
	ctlconn_close(&x.conn);
	free(x.args);
	if (fflush(stdout) == EOF && rv == POP3CTL_OK) {
		ctlutil_warn("write to stdout: %s", strerror(errno));
		rv = POP3CTL_ERR;
	}
	return rv;
}
