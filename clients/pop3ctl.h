/*
 * pop3ctl.h - what the files of pop3ctl share: limits, exit statuses, the
 * connection and the parsed command line, and the functions one file
 * offers to the files above it.
 *
 * The files call one way only (see pop3ctl(1) for the behaviour):
 *
 *	pop3ctl.c	command line: options, subcommand table, main
 *	ctl_cmd.c	the subcommands, listen and raw
 *	ctl_exec.c	listen --exec: a program per event, its environment
 *	ctl_print.c	printing: results, events (text, json), masking
 *	ctl_conn.c	the connection: socket, framing, request and reply
 *	ctl_util.c	diagnostics, memory, numbers, JSON members, line lists
 *
 * A file calls only files below it in this list; nothing calls back up
 * except through a callback it is handed (ctlcmd_simple's show).
 */
#ifndef POP3CTL_H
#define POP3CTL_H

#include <stddef.h>

#include <jansson.h>

#define POP3CTL_DEFAULT_SOCKET "/run/pop3d/control.sock"
/* Longest line taken from pop3d: bounds the memory a runaway or hostile
 * peer can make pop3ctl hold; real replies and events are far shorter. */
#define POP3CTL_MAX_LINE (16UL << 20)
/* Most output kept of one --exec CMD: it is sent as one request, and a
 * runaway command must not eat all memory. */
#define POP3CTL_MAX_OUTPUT (16UL << 20)
/* Most stdin taken by send-lines: the lines are sent as one request. */
#define POP3CTL_MAX_INPUT (1UL << 30)
/* One read() at a time: large enough for a typical reply in one call. */
#define POP3CTL_READ_CHUNK 65536

enum {
	POP3CTL_OK = 0,		/* success */
	POP3CTL_ERR = 1,	/* pop3d answered with an error; other failures */
	POP3CTL_USAGE = 2,	/* bad command line */
	POP3CTL_UNREACHABLE = 3 /* no connection, or it was lost */
};

/* One connection to the control socket with its bounded line buffer. */
struct pop3ctl_conn {
	int fd;
	char *buf; /* buf[start, end) is read but not yet returned */
	size_t start, end, cap;
	size_t scanned; /* bytes after start known to hold no LF */
	json_int_t next_id;
};

/* The parsed command line. */
struct pop3ctl_ctx {
	const char *socket;
	int json;	    /* --json: print the raw result object */
	long long tag;	    /* --tag N, 0 when absent */
	long long top;	    /* --top N, -1 when absent */
	const char *format; /* listen --format */
	const char *exec;   /* listen --exec */
	int show_secrets;   /* listen --show-secrets: arguments unmasked */
	int raw_args;	    /* listen --raw-args: --exec gets exact bytes */
	char **args;	    /* positional arguments after the subcommand */
	int nargs;
	struct pop3ctl_conn conn;
};

/* ctl_util.c: diagnostics, memory, numbers, JSON members, line lists. */
void ctlutil_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ctlutil_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *ctlutil_alloc(size_t n);
int ctlutil_number(const char *s, long long min, long long max, long long *out);
int ctlutil_canonical_int(const char *s, long long *out);
int ctlutil_set_bytes(json_t *obj, const char *key, const char *b64key, const char *s, size_t len);
int ctlutil_set_utf8(json_t *obj, const char *key, const char *s, const char *what);
int ctlutil_set_lines(json_t *obj, char **lines, const size_t *lens, size_t n);
void ctlutil_free_lines(char **lines, size_t *lens, size_t n);
int ctlutil_split_lines(const char *text, size_t len, char ***lines, size_t **lens, size_t *n);

/* ctl_conn.c: the connection to pop3d's control socket. */
int ctlconn_write_all(int fd, const char *buf, size_t len);
json_int_t ctlconn_send_cmd(struct pop3ctl_conn *c, const char *name, json_t *args);
int ctlconn_read_msg(struct pop3ctl_conn *c, json_t **msg, char **raw);
const char *ctlconn_type(json_t *msg);
int ctlconn_reply_error(json_t *reply);
int ctlconn_open(struct pop3ctl_conn *c, const char *socket_path);
void ctlconn_close(struct pop3ctl_conn *c);
json_t *ctlconn_call(struct pop3ctl_conn *c, const char *socket_path, const char *name,
    json_t *args, int *status);

/* ctl_print.c: results and events on stdout. */
void ctlprint_json(json_t *v);
void ctlprint_clients(json_t *res);
void ctlprint_groups(json_t *res);
void ctlprint_sockname(json_t *res);
void ctlprint_session(json_t *res);
void ctlprint_ping(json_t *res);
void ctlprint_plugins(json_t *res);
char *ctlprint_escaped(char *s, size_t *len);
char *ctlprint_arg_text(json_t *ev, size_t i, size_t *len);
json_t *ctlprint_mask_event(const struct pop3ctl_ctx *x, json_t *ev, int *err);
int ctlprint_event(json_t *ev, json_t *masked, const char *raw, int text);

/* ctl_exec.c: listen --exec. */
void ctlexec_event(struct pop3ctl_ctx *x, json_t *ev);

/* ctl_cmd.c: the subcommands; each returns an exit status. */
/* Run control command name with args (stolen; NULL: none), its result
 * printed by show (NULL: nothing on success); the exit status. */
int ctlcmd_simple(struct pop3ctl_ctx *x, const char *name, json_t *args, void (*show)(json_t *));
int ctlcmd_send(struct pop3ctl_ctx *x);
int ctlcmd_send_lines(struct pop3ctl_ctx *x);
int ctlcmd_send_file(struct pop3ctl_ctx *x);
int ctlcmd_disconnect(struct pop3ctl_ctx *x);
int ctlcmd_event(struct pop3ctl_ctx *x);
int ctlcmd_plugins(struct pop3ctl_ctx *x);
int ctlcmd_listen(struct pop3ctl_ctx *x);
int ctlcmd_raw(struct pop3ctl_ctx *x);

#endif
