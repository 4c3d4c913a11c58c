/*
 * pop3d.h - public API of libpop3d, the POP3 front end of pop3d.
 *
 * A struct pop3d owns listeners and POP3 client connections on an event_base
 * supplied by the caller.  Everything a client does becomes an event
 * (struct pop3d_event) that runs through one pipeline: first the ordered
 * plugins, each returning an EAT verdict, then every registered consumer.
 * Consumers and plugins answer clients with pop3d_send_*(), always naming the
 * client by its integer id, never by pointer: a client may be gone by the time
 * an asynchronous answer arrives, and the call then fails with
 * POP3D_ERR_UNKNOWN_CLIENT.
 *
 * SASL (RFC 5034): while AUTH is in flight, an answer line "+" or "+ ..."
 * is a continuation, not a completion: the client's next line is delivered
 * as pop3d_auth_data (ARG0 client, ARG1 the line, "*" as is) with the AUTH
 * command's tag, until a +OK or -ERR answer completes the command.
 *
 * Exactly one command per client is in flight.  The next pipelined line is
 * not parsed until the current command's response is complete:
 *   - a single line sent without POP3D_SEND_MORE completes it;
 *   - pop3d_send_lines() and pop3d_send_file() complete it at the terminator;
 *   - lines sent with POP3D_SEND_MORE are written verbatim and leave it open,
 *     so the handler says "more to come" explicitly.
 */
#ifndef POP3D_H
#define POP3D_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct pop3d;

/* Bumped on every incompatible change of this header. */
#define POP3D_ABI_VERSION 1

/* Plugin exit codes, with the values of POE::Component::Server::POP3. */
enum pop3d_eat {
	POP3D_EAT_NONE = 1,   /* later plugins and consumers see the event */
	POP3D_EAT_CLIENT = 2, /* later plugins see it, consumers do not */
	POP3D_EAT_PLUGIN = 3, /* consumers see it, later plugins do not */
	POP3D_EAT_ALL = 4     /* nobody else sees it */
};
/* A plugin handler may return this and resolve later with
 * pop3d_hook_resolve(srv, ev->hook, verdict, ...).  Until then the event
 * waits, and so does its client: no further line of that client is parsed
 * and no later response line of it is written. */
#define POP3D_EAT_PENDING 0
/* A resolution (not a return value): stop the event; its client gets
 * -ERR [SYS/TEMP] and is disconnected. */
#define POP3D_HOOK_TEMPFAIL (-1)

/* Plugin types: POP3D plugins see pop3d_* events; POP3C plugins see each
 * response line about to be sent to a client, as the event "response"
 * (ARG0 client, ARG1 the line), and may rewrite ARG1 or swallow the line
 * (POP3D_EAT_CLIENT or POP3D_EAT_ALL: nothing goes on the wire). */
enum pop3d_plugin_type { POP3D_PLUGIN_POP3D = 0, POP3D_PLUGIN_POP3C = 1 };

/* Errors returned (negated) by the pop3d_* methods. */
enum pop3d_error {
	POP3D_OK = 0,
	POP3D_ERR_UNKNOWN_CLIENT = 1, /* no such client (or gone) */
	POP3D_ERR_STALE = 2,	      /* tag is not the command awaiting a response */
	POP3D_ERR_INVALID = 3,	      /* CR, LF or NUL inside a line; bad argument */
	POP3D_ERR_IO = 4,	      /* file cannot be read */
	POP3D_ERR_SHUTTING_DOWN = 5,  /* the server is stopping */
	POP3D_ERR_UNKNOWN_EVENT = 6,  /* event name that can never occur */
	POP3D_ERR_LIMIT = 7,	      /* a configured limit was hit */
	POP3D_ERR_NOMEM = 8
};
const char *pop3d_strerror(int err);

/* A client's protocol state, as tracked from the answers it received. */
enum pop3d_state { POP3D_STATE_AUTHORIZATION = 0, POP3D_STATE_TRANSACTION = 1 };
const char *pop3d_state_name(enum pop3d_state);

/*
 * One event argument.  Client lines never contain NUL (such a line is an
 * error, not a command), so strings are NUL-terminated; len is their length.
 * Strings carry raw client bytes and need not be valid UTF-8.  POP3D_ARG_JSON
 * is a JSON text passed through verbatim (arguments of injected events).
 */
enum pop3d_arg_type { POP3D_ARG_INT, POP3D_ARG_STR, POP3D_ARG_JSON };
struct pop3d_arg {
	enum pop3d_arg_type type;
	long long i;
	char *s;
	size_t len;
};

struct pop3d_event {
	const char *name;	/* full name: "pop3d_cmd_user" */
	uint64_t seq;		/* strictly increasing over all events */
	uint64_t client;	/* client id, 0 when not about a client */
	uint64_t tag;		/* command number of the client (cmd events) */
	enum pop3d_state state; /* client state when the event was made */
	int tls;		/* client connection is under TLS */
	uint64_t origin;	/* 0: the core; else who injected it */
	int argc;
	struct pop3d_arg *argv; /* ARG0..ARGn of the seed */
	uint64_t hook;		/* for plugins: the id to resolve a pending verdict */
	const char *command;	/* "response" events: verb being answered, or NULL */
	enum pop3d_plugin_type type;
};

/* Spawn options; pop3d_options_init() fills the defaults. */
struct pop3d_options {
	const char *alias;		/* instance name in logs */
	const char *hostname;		/* greeting host name ("localhost") */
	const char *version;		/* greeting version ("pop3d-X.Y.Z") */
	int handle_connects;		/* core greeting plugin on (1) */
	unsigned timeout;		/* idle autologout, seconds (600) */
	unsigned response_timeout;	/* handler answer deadline, s (30) */
	size_t max_line;		/* command line incl. CRLF (255) */
	unsigned max_bad_lines;		/* bad lines in a row before close (3) */
	unsigned max_clients;		/* global connection cap (1024) */
	unsigned max_per_address;	/* per peer address, 0: no cap (64) */
	size_t output_high;		/* stop reading a client past this (256 KiB) */
	size_t input_high;		/* unread pipelined input kept (16 KiB) */
	const char *const *extra_verbs; /* NULL-terminated, or NULL */
	size_t max_auth_line;		/* SASL continuation line (8 KiB) */
	unsigned tls_handshake_timeout; /* seconds (30) */
	unsigned proxy_timeout;		/* PROXY header deadline, seconds (3) */
	unsigned auth_fail_delay_ms;	/* delay of a failed PASS/APOP/AUTH answer (1000) */
	unsigned max_auth_failures;	/* close after this many, 0: never (3) */
	/* Commands of one client dispatched before the first is answered
	 * (1: one at a time).  Above 1, a logged-in client's pipelined
	 * NOOP STAT LIST UIDL RETR TOP DELE RSET QUIT go out ahead, each
	 * with its own tag; answers are written in command order. */
	unsigned pipeline_depth;
};
void pop3d_options_init(struct pop3d_options *);

/*
 * Create a server on base; copies everything from opts.  Returns NULL with
 * errno set on failure.  The core's greeting plugin is added when
 * opts->handle_connects is set.
 */
struct pop3d *pop3d_new(struct event_base *base, const struct pop3d_options *opts);
/* Free a server: closes every client and listener immediately, no events. */
void pop3d_free(struct pop3d *);
/* Add a listener; addr NULL means all addresses (IPv6 and IPv4). port 0
 * picks a free port.  Returns 0, or -1 with errno set. */
int pop3d_listen(struct pop3d *, const char *addr, int port);

/* Listener flags. */
#define POP3D_LISTEN_TLS 0x01	/* implicit TLS: handshake before the greeting */
#define POP3D_LISTEN_PROXY 0x02 /* a PROXY v1/v2 header from a trusted peer first */
/* pop3d_listen() with flags; TLS needs pop3d_tls_set() first. */
int pop3d_listen_flags(struct pop3d *, const char *addr, int port, int flags);
/*
 * TLS: load the PEM certificate chain and key (TLS 1.2 minimum; ciphers
 * NULL for the default list).  Calling it again, or pop3d_tls_reload(),
 * replaces the context without touching established sessions.  With a
 * context the core handles STLS itself (RFC 2595) and sends pop3d_tls
 * (ARG0 client, ARG1 protocol version, ARG2 cipher) after each handshake.
 * Returns 0, or -1 with the reason logged.
 */
int pop3d_tls_set(struct pop3d *, const char *cert, const char *key, const char *ciphers);
int pop3d_tls_reload(struct pop3d *);
int pop3d_tls_available(struct pop3d *);
/* Trust PROXY headers from peers in cidr ("10.0.0.0/8", "::1"). 0 or -1. */
int pop3d_proxy_trust(struct pop3d *, const char *cidr);

struct pop3d_sockname {
	char address[64];
	int port;
	int tls;
	int proxy;
};
/* Fill up to n listener addresses; returns how many listeners there are. */
size_t pop3d_getsockname(struct pop3d *, struct pop3d_sockname *out, size_t n);
/* A string identifying this server instance (random, fixed for its life). */
const char *pop3d_session_id(struct pop3d *);
const struct pop3d_options *pop3d_get_options(struct pop3d *);
struct event_base *pop3d_get_base(struct pop3d *);

/*
 * Consumers: the seed's registered sessions.  A consumer registers for event
 * names: "pop3d_cmd_user" or "cmd_user", "all", or shell globs ("cmd_*").
 * Its callback sees every matching event after the plugins.  Removing a
 * consumer during dispatch is allowed.
 */
typedef void (*pop3d_consumer_cb)(struct pop3d *, const struct pop3d_event *, void *arg);
/* Returns a consumer id (> 0), or 0 on failure. */
uint64_t pop3d_consumer_add(struct pop3d *, const char *name, pop3d_consumer_cb cb, void *arg);
/* Remove a consumer and its registrations.  Clients whose in-flight command
 * now has no handler left get -ERR [SYS/TEMP] and are disconnected. */
void pop3d_consumer_del(struct pop3d *, uint64_t consumer);
/* Register for names (atomic: all or none).  Returns 0, or
 * -POP3D_ERR_UNKNOWN_EVENT (bad names in *bad, index) */
int pop3d_consumer_register(struct pop3d *, uint64_t consumer, const char *const *names, size_t n,
    size_t *bad);
/* Unregister names; names not registered are ignored. */
int
pop3d_consumer_unregister(struct pop3d *, uint64_t consumer, const char *const *names, size_t n);
/* Number of patterns and the i-th pattern (normalised) of a consumer. */
size_t pop3d_consumer_patterns(struct pop3d *, uint64_t consumer, const char ***out);

/*
 * In-process plugins.  The handler sees each matching event before any
 * consumer and may rewrite ev->argv (replace strings it frees/allocates with
 * malloc) for everyone after it.  It returns a pop3d_eat verdict.
 */
typedef int (*pop3d_plugin_cb)(struct pop3d *, struct pop3d_event *, void *arg);
/* Add plugin alias at priority (lower runs first; ties by order of addition).
 * Returns the number of plugins, or -1 (alias in use). */
int
pop3d_plugin_add(struct pop3d *, const char *alias, int priority, pop3d_plugin_cb cb, void *arg);
/* Remove a plugin by alias, calling its unregister entry point if it has
 * one; returns 0 or -1 when no such plugin. */
int pop3d_plugin_del(struct pop3d *, const char *alias);
/* Remove the plugin whose handler argument is arg (the seed's
 * plugin_del(plugin object)). */
int pop3d_plugin_del_arg(struct pop3d *, void *arg);

/*
 * A plugin with entry points, as the seed's PCSI_register/PCSI_unregister.
 * pop3d_plugin_load() adds it and calls register_cb, which registers for
 * events (pop3d_plugin_register_type) and may set *state; the handler gets
 * that state as its arg; unregister_cb runs when it is removed.
 *
 * A loadable plugin (pop3d --plugin PATH.so[=ARG]) exports
 *     const struct pop3d_plugin_def *pop3d_plugin_entry(void);
 * returning a definition whose abi is POP3D_ABI_VERSION; any other value is
 * refused.  A loadable plugin does not link libpop3d: the daemon exports
 * the API.
 */
struct pop3d_plugin_def {
	int abi;	  /* POP3D_ABI_VERSION */
	const char *name; /* default alias */
	int priority;
	int (*register_cb)(struct pop3d *, const char *alias, const char *arg, void **state);
	void (*unregister_cb)(struct pop3d *, const char *alias, void *state);
	pop3d_plugin_cb handler;
};
#define POP3D_PLUGIN_ENTRY "pop3d_plugin_entry"
typedef const struct pop3d_plugin_def *(*pop3d_plugin_entry_fn)(void);
/* Returns the number of plugins, or -1 (ABI mismatch, alias in use, or
 * register_cb failed; errno EPROTO for the ABI). alias NULL: def->name. */
int pop3d_plugin_load(struct pop3d *, const struct pop3d_plugin_def *, const char *alias,
    const char *arg);
/* Register/unregister a plugin for event names (same syntax as consumers)
 * of type POP3D. */
int pop3d_plugin_register(struct pop3d *, const char *alias, const char *const *names, size_t n,
    size_t *bad);
int pop3d_plugin_unregister(struct pop3d *, const char *alias, const char *const *names, size_t n);
/* The same for either type; POP3C takes the name "response" (or "all"). */
int pop3d_plugin_register_type(struct pop3d *, const char *alias, enum pop3d_plugin_type,
    const char *const *names, size_t n, size_t *bad);
int pop3d_plugin_unregister_type(struct pop3d *, const char *alias, enum pop3d_plugin_type,
    const char *const *names, size_t n);
/* A plugin's registrations of one type. */
size_t
pop3d_plugin_patterns(struct pop3d *, const char *alias, enum pop3d_plugin_type, const char ***out);
/* Priority of a plugin, 0 when found; -1 when there is no such plugin. */
int pop3d_plugin_get(struct pop3d *, const char *alias, int *priority, void **arg);
/*
 * Resolve a pending verdict.  verdict is a pop3d_eat value or
 * POP3D_HOOK_TEMPFAIL; argv (may be NULL: keep) replaces the arguments for
 * everyone after the plugin.  Returns 0, or -POP3D_ERR_STALE when hook is not
 * pending (resolved already, or never existed).
 */
int pop3d_hook_resolve(struct pop3d *, uint64_t hook, int verdict, const struct pop3d_arg *argv,
    int argc);
/* Whether hook is pending. */
int pop3d_hook_pending(struct pop3d *, uint64_t hook);
/*
 * A client that goes away (reset, error, timeout, disconnect) while one of
 * its events waits on a plugin's verdict does not wait for the verdict:
 * the hook is cancelled at once, the plugin's cancel callback (if set) is
 * called with the hook and the plugin's arg, and a later
 * pop3d_hook_resolve() for it returns -POP3D_ERR_STALE.
 */
typedef void (*pop3d_cancel_cb)(struct pop3d *, uint64_t hook, void *arg);
/* Set (or clear, with NULL) plugin alias's cancel callback; 0, or -1 when
 * there is no such plugin. */
int pop3d_plugin_set_cancel(struct pop3d *, const char *alias, pop3d_cancel_cb cb);
/* Aliases in pipeline order; returns the count, fills up to n. */
size_t pop3d_plugin_order(struct pop3d *, const char **aliases, size_t n);

/* Flags for pop3d_send_to_client(). */
#define POP3D_SEND_MORE 0x01 /* the response continues after this line */
/* In a response already open (a line was sent with POP3D_SEND_MORE), the
 * line is a data line: dot-stuffed, never seen by POP3C plugins.  Ignored
 * when no response is open. */
#define POP3D_SEND_DATA 0x02

/*
 * Send one line (CRLF added).  tag 0: no check; otherwise the call fails
 * with -POP3D_ERR_STALE unless command number `tag` of that client is the
 * one awaiting a response.  A line containing CR, LF or NUL is refused with
 * -POP3D_ERR_INVALID and nothing is sent.  Returns 0 or a negated error.
 */
int pop3d_send_to_client(struct pop3d *, uint64_t client, uint64_t tag, const char *line,
    size_t len, int flags);
/* Send a whole multi-line response: status, the lines (dot-stuffed, CRLF
 * added) and the "." terminator.  Completes the command.  In a response
 * already open (see POP3D_SEND_MORE), status is one more data line:
 * every line is dot-stuffed, then the terminator. */
int pop3d_send_lines(struct pop3d *, uint64_t client, uint64_t tag, const char *status,
    const struct iovec *lines, size_t n);
/*
 * Stream the file at path as a multi-line response after status: line ends
 * normalised to CRLF, dot-stuffed, a final CRLF added when missing, then the
 * terminator.  top_lines >= 0 limits the body to that many lines after the
 * header block (TOP); -1 sends everything.  The file is read in chunks as the
 * client drains its output.  An unreadable file fails with -POP3D_ERR_IO and
 * sends nothing.  Completes the command at the terminator.
 */
int pop3d_send_file(struct pop3d *, uint64_t client, uint64_t tag, const char *status,
    const char *path, long top_lines);
/*
 * pop3d_send_file() opens files with pop3d's privileges, non-blocking, and
 * refuses anything but a regular file and a symlink as the last path
 * component.  With a root directory (absolute; NULL removes it) every path
 * must lie beneath it, relative to it or absolute under it, with no
 * symlink and no ".." on the way.  0, or -1 with errno set.
 */
int pop3d_send_file_root(struct pop3d *, const char *dir);
/* 1 when the response to command `tag` (0: the one awaiting a response)
 * of that client is open: a line was sent with POP3D_SEND_MORE and the
 * response is not complete; else 0. */
int pop3d_response_open(struct pop3d *, uint64_t client, uint64_t tag);
/* Close a client after its pending output; text (may be NULL) is sent last. */
int pop3d_disconnect(struct pop3d *, uint64_t client, const char *text);
/* Dispatch an event through the pipeline as if the core made it.  origin
 * identifies the injector (0: the embedding program). */
int pop3d_send_event(struct pop3d *, const char *name, const struct pop3d_arg *argv, int argc,
    uint64_t origin);
/* Stop: close listeners, close every client after its pending output (each
 * produces pop3d_disconnected), then call the stopped callback. */
void pop3d_shutdown(struct pop3d *);
void pop3d_set_stopped_cb(struct pop3d *, void (*cb)(struct pop3d *, void *), void *arg);
int pop3d_is_shutting_down(struct pop3d *);

/* Reserve the next event sequence number, for an event that one consumer
 * receives outside the pipeline (pop3d_registered, pop3d_shutdown). */
uint64_t pop3d_next_seq(struct pop3d *);

/* Whether any plugin or consumer would receive an event of this name. */
int pop3d_has_handler(struct pop3d *, const char *name);
/* Whether name (with or without "pop3d_" prefix, or a glob) can occur. */
int pop3d_event_known(struct pop3d *, const char *name);

struct pop3d_client_info {
	uint64_t id;
	char peer[64];
	int peer_port;
	char local[64];
	int local_port;
	enum pop3d_state state;
	int tls;
	int64_t connected; /* unix time */
	int64_t idle;	   /* seconds since last activity */
	uint64_t tag;	   /* command awaiting a response, 0 if none */
};
/* Call cb for every client; stops early when cb returns non-zero. */
void pop3d_clients(struct pop3d *, int (*cb)(const struct pop3d_client_info *, void *), void *arg);
int pop3d_client_info(struct pop3d *, uint64_t client, struct pop3d_client_info *out);

/* Octet count a client sees for a file (CRLF line ends, final CRLF, no
 * dot-stuffing, no terminator); top_lines as pop3d_send_file.  -1 on error. */
long long pop3d_file_octets(const char *path, long top_lines);

#ifdef __cplusplus
}
#endif
#endif /* POP3D_H */
