/* codec.h - the control codec: all JSON of the protocol (codec.c, codec_cmd.c). */
/*
 * JSON encoding of events and replies, decoding of commands.  No file of
 * control/ but these two calls jansson.  Pure functions (the Check suites
 * and the fuzz target call them directly), but for those that describe the
 * server (greeting, listeners, clients), which read it through pop3d.h.
 *
 * Raw POP3 bytes need not be UTF-8 and json_string() rejects invalid UTF-8,
 * so strings are encoded losslessly: valid UTF-8 as is; otherwise a readable
 * form (each invalid byte as U+FFFD) plus the exact bytes in base64.
 */
#ifndef POP3D_CODEC_H
#define POP3D_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "control.h"
#include "group.h"
#include "pop3d.h"

/* Decoding a command line. */
struct codec_cmd {
	json_t *root;	  /* the whole object (owned) */
	json_t *id;	  /* borrowed from root; NULL when absent */
	const char *name; /* value of "cmd" */
};

/* Parse one line, strictly.  Returns NULL on success, or an error code
 * ("parse_error", "invalid_request", "invalid_argument") with a message in
 * msg; cmd->id is set except on parse_error when the object had an id.
 * The NUL rule lives here and only here: a string with an embedded NUL
 * anywhere in a command (but "id") is refused - invalid_request in "cmd",
 * invalid_argument elsewhere - so commands read C strings; octets that may
 * hold NUL travel as base64 (*_b64). */
const char *
codec_decode(const char *line, size_t len, struct codec_cmd *cmd, char *msg, size_t msglen);
void codec_cmd_clear(struct codec_cmd *);

/* Encoding.  All return malloc'd text ending in "\n", or NULL. */
char *codec_event(const struct pop3d_event *ev, size_t *len);
/* A hook message for a controller plugin: the event with type "hook",
 * "hook" (the id to answer with a verdict), "plugin" and "plugin_type". */
char *codec_hook(const struct pop3d_event *ev, const char *plugin, size_t *len);
/* The reference encoders, for the tests and the fuzzer: the same text made
 * through a jansson tree (codec_event() and codec_hook() write it directly
 * and must give the same bytes). */
char *codec_event_ref(const struct pop3d_event *ev, size_t *len);
char *codec_hook_ref(const struct pop3d_event *ev, const char *plugin, size_t *len);
char *codec_reply_ok(json_t *id, json_t *result, size_t *len); /* steals result */
char *codec_reply_error(json_t *id, const char *code, const char *message, size_t *len);

/* A string from raw bytes: valid UTF-8 as is, else U+FFFD for bad bytes;
 * *exact set to 0 in the second case. */
json_t *codec_bytes(const char *s, size_t len, int *exact);
int codec_utf8_valid(const char *s, size_t len);

/* What a controller is told about the server. */
json_t *codec_listeners(struct pop3d *);
char *codec_greeting(struct pop3d *, const struct control_options *, struct group_set *,
    uint64_t controller, size_t *len);
char *codec_registered(struct pop3d *);

/* codec_cmd.c: a decoded command's typed arguments (the only way
 * command.c reads one) and the results it replies with. */
int codec_cmd_has(const struct codec_cmd *, const char *key);
const char *codec_cmd_unknown_key(const struct codec_cmd *, const char *const *keys, size_t n);
long long codec_cmd_uint(const struct codec_cmd *, const char *key, int required);
int codec_cmd_int(const struct codec_cmd *, const char *key, long long min, long long max,
    long long *out);
int codec_cmd_str(const struct codec_cmd *, const char *key, const char **s, size_t *len);
int codec_cmd_bool(const struct codec_cmd *, const char *key, int *b);
long codec_cmd_count(const struct codec_cmd *, const char *key);
const char **codec_cmd_strings(const struct codec_cmd *, const char *key, size_t max, size_t *n);
char *codec_cmd_line(const struct codec_cmd *, const char *key, int b64, size_t *len);
char *codec_cmd_line_at(const struct codec_cmd *, const char *key, size_t i, int b64, size_t *len);
struct pop3d_arg *codec_cmd_args(const struct codec_cmd *, const char *key, int *argc, int *bad);
void codec_cmd_args_free(struct pop3d_arg *, int argc);

/* What plugin_get and friends show of one plugin. */
struct codec_plugin {
	const char *alias;
	int priority;
	const char **patterns[2]; /* by pop3d_plugin_type */
	size_t npatterns[2];
	int has_controller; /* a controller plugin: the next two */
	uint64_t controller;
	unsigned timeout_ms[2];
	const char *group; /* a group plugin's group, or NULL */
};

json_t *codec_cmd_result_int(const char *key, long long);
json_t *codec_cmd_result_str(const char *key, const char *);
json_t *codec_cmd_result_events(const char *const *patterns, size_t n);
json_t *codec_cmd_result_listeners(struct pop3d *);
json_t *codec_cmd_result_clients(struct pop3d *, struct group_set *);
json_t *codec_cmd_result_groups(struct group_set *, const char *const *palias,
    const char *const *pgroup, size_t np);
json_t *codec_cmd_result_hello(uint64_t controller, const char *name, int lossy, const char *group);
json_t *codec_cmd_result_plugin_add(int n, int joined);
json_t *codec_cmd_plugin(const struct codec_plugin *);
json_t *codec_cmd_result_plugins(json_t **items, size_t n);
json_t *codec_cmd_result_aliases(const char *const *aliases, size_t n);

#endif
