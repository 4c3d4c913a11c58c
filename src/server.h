/*
 * server.h - internals shared by the core's files.  Nothing outside src/
 * includes this (but the fuzz targets and tests/); the public API is pop3d.h.
 *
 * The files, lowest first; a file calls only files below it, and reaches
 * up only through a callback it was given (the fields marked "upcall"):
 *   timers  pool  table  events  listener  conn  ahead  stream  output
 *   reply  session  admit  api  subscribe  greeting  pop3d
 */
#ifndef POP3D_SERVER_H
#define POP3D_SERVER_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <stdint.h>
#include <time.h>

#include "fileopen.h"
#include "line.h"
#include "linger.h"
#include "pipeline.h"
#include "pop3d.h"
#include "stuff.h"
#include "proxy.h"
#include "timers.h"
#include "tls.h"

#include <event2/event.h>
#include <event2/event_struct.h>

struct bufferevent;
struct evconnlistener;

/* Write low-water mark: the streamer refills and the idle clock ticks each
 * time a client's backlog drains below it. */
#define CLIENT_WRITE_LOW (16 * 1024)
/* A streamed file is read in chunks of this size, and the output is kept
 * filled up to CLIENT_STREAM_FILL: large writes (libevent's default cap is
 * 16 KiB per write) move a big message with few system calls (RETR of 10
 * MB: 1.2 GB/s with these figures, 0.95 with half of them), and the bound
 * per streaming client stays about 0.6 MiB. */
#define CLIENT_STREAM_CHUNK (128 * 1024)
#define CLIENT_STREAM_FILL (512 * 1024)
#define CLIENT_MAX_WRITE (512 * 1024)
/* Seconds given to clients to drain at shutdown before they are cut. */
#define SERVER_SHUTDOWN_GRACE 10

struct listener {
	TAILQ_ENTRY(listener) entry;
	struct pop3d *srv;
	struct evconnlistener *evl;
	struct pop3d_sockname name;
	int flags; /* POP3D_LISTEN_* */
	int paused;
	int fixed_local; /* bound to one address, not a wildcard */
};
TAILQ_HEAD(listener_list, listener);

/*
 * A command dispatched ahead (--pipeline-depth above 1): its tag, what
 * the head command keeps in struct client, and its answer as sent so far,
 * replayed when every earlier command is answered.
 */
struct client_send;
struct client_ahead {
	TAILQ_ENTRY(client_ahead) entry;
	uint64_t tag;
	char verb[LINE_VERB_MAX + 1];
	int plugin_saw;
	int complete; /* answered in full: later sends are stale */
	int open;     /* a line with POP3D_SEND_MORE was recorded */
	uint64_t *receivers;
	size_t nreceivers, receivers_cap;
	TAILQ_HEAD(, client_send) sends;
};
TAILQ_HEAD(client_ahead_list, client_ahead);

/* Before a client is READY: the PROXY header, then the TLS handshake. */
enum client_phase { CLIENT_PROXY, CLIENT_HANDSHAKE, CLIENT_READY };

/*
 * A client connection.  Plain TCP clients do their own I/O ("raw": one
 * embedded event, input and output buffers that exist only while they
 * hold data), so that an idle logged-in client costs little more than
 * this structure; TLS clients, and clients of implicit-TLS listeners from
 * the start, go through a bufferevent (bev) with the OpenSSL filter.
 * Timers are shared: the idle, response and PROXY/handshake deadlines are
 * server-wide deadline queues (timers.c), and the rare failed-authentication
 * timer is allocated when first needed.
 *
 * Teardown: conn_kill() marks a client dead, stops its I/O and timers and
 * queues it; session.c frees it from the defer queue, the only place a
 * client is freed (pop3d_free aside), once no suspended job refers to it.
 */
struct client {
	TAILQ_ENTRY(client) entry; /* srv->clients */
	struct client *hnext;	   /* id hash chain */
	struct pop3d *srv;
	uint64_t id;
	struct timers_entry tdefer; /* srv->deferq: parse, or free */
	struct timers_entry tflush; /* srv->flushq: raw output to write */
	struct timers_entry tidle;  /* srv->idleq: READY clients */
	struct timers_entry tresp;  /* srv->respq: command awaiting its answer */
	struct timers_entry tphase; /* srv->phaseq: PROXY/handshake, TLS close */
	/* I/O (conn.c): raw (bev NULL) or through a bufferevent. */
	struct bufferevent *bev;
	struct evbuffer *in, *out; /* raw: NULL while empty */
	struct event ev_io;	   /* raw: EV_READ and/or EV_WRITE on fd */
	int fd;
	short io_have;	  /* raw: events ev_io is added with */
	unsigned rd_on:1; /* reading wanted (as bufferevent_enable) */
	unsigned wr_on:1; /* raw: output the kernel refused waits */
	/* State. */
	unsigned implicit_tls:1; /* handshake before the greeting */
	unsigned announced:1;	 /* pop3d_connection was sent */
	unsigned ungreeted:1;	 /* --no-greeting: no line written yet */
	unsigned addr_counted:1; /* counted against max-per-address */
	unsigned tls:1;
	unsigned tls_closed:1;	  /* close_notify sent */
	unsigned responded:1;	  /* a first response line was sent */
	unsigned open:1;	  /* ... with POP3D_SEND_MORE: data may follow */
	unsigned sasl:1;	  /* next line is SASL data, not a command */
	unsigned processing:1;	  /* session_process() is running */
	unsigned process_again:1; /* ...and was asked again meanwhile */
	unsigned plugin_saw:1;	  /* a plugin received it */
	unsigned promoting:1;	  /* reply_promote() is running */
	unsigned stream_ready:1;  /* its status line is out: stream now */
	unsigned hooking:1;	  /* see output.c */
	unsigned hook_auth:1;	  /* ... it is the first answer to PASS etc. */
	unsigned hook_cont:1;	  /* ... it continues a response begun */
	unsigned hook_dropped:1;  /* ... it was dropped meanwhile */
	unsigned eof:1;		  /* client closed its side */
	unsigned closing:1;	  /* close once output is flushed */
	unsigned dead:1;	  /* killed; freed from the defer queue */
	unsigned disconnected_sent:1;
	enum client_phase phase;
	enum pop3d_state state;
	int lflags;	  /* flags of the listener it came from */
	char *peer;	  /* numeric addresses, both in addrbuf */
	char *local;	  /* ... or in one allocation if longer */
	char addrbuf[40]; /* "255.255.255.255\0255.255.255.255\0" */
	int peer_port;
	int local_port;
	time_t connected;
	int64_t last_active; /* monotonic ms: the idle clock */
	size_t last_outlen;  /* backlog at the last idle check */
	struct line_framer lf;
	unsigned bad_lines;	      /* bad lines in a row */
	uint64_t ncmds;		      /* command counter: the next tag - 1 */
	uint64_t inflight;	      /* tag awaiting a response, 0 if none */
	char verb[LINE_VERB_MAX + 1]; /* its verb */
	uint64_t *receivers;	      /* consumers that received it */
	size_t nreceivers, receivers_cap;
	struct client_ahead_list ahead; /* dispatched after it, in order */
	unsigned nahead;
	/* File streaming (pop3d_send_file, stream.c). */
	int stream_fd;
	struct stuff *stream; /* while streaming */
	/* POP3C hooks (output.c): a response line awaiting plugin verdicts
	 * holds every later output of this client, in order. */
	char *hook_line; /* ... as the handler sent it */
	size_t hook_len;
	TAILQ_HEAD(, output_item) outq;
	unsigned jobs; /* suspended dispatches about this client */
	/* A failed authentication answer is held back (anti guessing). */
	unsigned auth_failures;
	char *delayed; /* the held -ERR line, or NULL */
	size_t delayed_len;
	struct event *ev_delay; /* or NULL until first needed */
	const char *reason;	/* why it is closing (static string) */
};
TAILQ_HEAD(client_list, client);

struct addrcount;
struct output_item;

/* What conn.c reports to the owner of a connection (srv->conn_cb). */
enum conn_what {
	CONN_READ,    /* input is buffered (or spans srv->rbuf) */
	CONN_DRAINED, /* output drained below CLIENT_WRITE_LOW */
	CONN_EOF,     /* the peer closed its side */
	CONN_TLS_UP,  /* the TLS handshake is done */
	CONN_FAILED   /* EOF or error before READY; detail says what */
};

struct pop3d {
	struct event_base *base;
	struct pop3d_options opts;
	char *alias, *hostname, *version;
	char **extra_verbs;
	char session_id[33];
	struct pipeline *pipeline;
	struct listener_list listeners;
	struct client_list clients;
	struct client **hash; /* id -> client */
	size_t hash_size;
	size_t nclients;
	struct addrcount *addrs; /* clients per peer address */
	uint64_t next_client;
	uint64_t next_seq;
	char *linebuf; /* max_line octets, shared */
	int shutting_down;
	struct event *ev_stop; /* stopped callback / grace timer */
	void (*stopped_cb)(struct pop3d *, void *);
	void *stopped_arg;
	struct event *ev_resume;     /* re-enable paused listeners */
	struct timers_deferq flushq; /* raw clients with output to write */
	struct timers_deferq deferq; /* clients to run (parse, or free) */
	struct timers_queue idleq;   /* READY clients, by idle deadline */
	struct timers_queue respq;   /* commands awaiting answers */
	struct timers_queue phaseq;  /* PROXY/handshake deadlines, TLS close */
	/* Upcalls, set by pop3d_new: how lower files reach higher ones. */
	void (*conn_cb)(struct client *, enum conn_what, const char *detail);
	void (*complete_cb)(struct client *); /* a streamed answer ended */
	void (*accept_cb)(struct pop3d *, int fd, struct sockaddr *, socklen_t, int lflags,
	    const struct pop3d_sockname *);
	char *rbuf; /* raw reads, input_high octets, shared */
	/* A raw client with no buffered input parses its lines straight from
	 * rbuf: the rest of that read (see conn_raw_read). */
	struct client *span_owner;
	const char *span;
	size_t spanlen;
	struct evbuffer *sink;	   /* written to when a buffer cannot be made */
	struct client_slab *slabs; /* client structures, see pool.c */
	struct client *cfree;	   /* free ones, linked through hnext */
#define SERVER_EVPOOL 64
	struct evbuffer *evpool[SERVER_EVPOOL]; /* empty buffers for raw clients */
	size_t nevpool;
	struct tls tls;
	struct fileopen_root file_root; /* --send-file-root, or fd -1 */
	struct lingerq lingerq;		/* sockets closing gracefully */
	int freeing;			/* pop3d_free(): no lingering */
	struct proxy_cidr *trusted;
	size_t ntrusted;
};

/* pool.c */
struct client *pool_client_get(struct pop3d *);
void pool_client_put(struct pop3d *, struct client *);
struct evbuffer *pool_evbuffer_get(struct pop3d *);
void pool_evbuffer_put(struct pop3d *, struct evbuffer *);
void pool_free(struct pop3d *);

/* table.c */
int table_init(struct pop3d *);
void table_free(struct pop3d *);
struct client *table_find(struct pop3d *, uint64_t id);
void table_link(struct pop3d *, struct client *);
void table_retire(struct pop3d *, struct client *);
void table_unlink(struct pop3d *, struct client *);
int table_addr_acquire(struct pop3d *, const char *addr);
void table_addr_release(struct pop3d *, const char *addr);

/* events.c */
int events_dispatch(struct pop3d *, struct pop3d_event *);
void events_emit(struct pop3d *, const char *name, struct client *, struct pop3d_arg *, int);
void events_cancel_client(struct pop3d *, uint64_t client);
void events_disconnected(struct client *);
/* "pop3d_cmd_<verb>" into a buffer of EVENTS_CMD_MAX octets. */
#define EVENTS_CMD_MAX (LINE_VERB_MAX + 16)
void events_cmd_name(char *name, const char *verb);

/* listener.c */
int listener_add(struct pop3d *, const char *addr, int port, int flags);
void listener_free_all(struct pop3d *);
void listener_resume(struct pop3d *);

/* conn.c */
int conn_init(struct pop3d *);
int conn_open(struct client *);
void conn_read_set(struct client *, int on);
struct evbuffer *conn_input(struct client *);
struct evbuffer *conn_peek_input(struct client *);
struct evbuffer *conn_output(struct client *);
size_t conn_backlog(struct client *);
void conn_trim(struct client *);
void conn_write(struct client *, const char *, size_t);
int conn_flushed(struct client *);
void conn_backpressure(struct client *);
void conn_tls_start(struct client *);
void conn_kill(struct client *, const char *reason);
void conn_free(struct client *);

/* ahead.c */
/* How ahead_replay sends what was recorded (reply.c gives them). */
struct ahead_ops {
	int (*line)(struct client *, uint64_t tag, const char *, size_t, int flags);
	int (*lines)(struct client *, uint64_t tag, const char *status, const struct iovec *,
	    size_t);
	int (*fd)(struct client *, uint64_t tag, const char *status, int fd, long top);
};
int ahead_receiver_add(uint64_t **, size_t *, size_t *, uint64_t consumer);
int ahead_receiver_del(uint64_t *, size_t *, uint64_t consumer);
struct client_ahead *ahead_new(struct client *, uint64_t tag, const char *verb);
struct client_ahead *ahead_find(struct client *, uint64_t tag);
struct client_ahead *ahead_pop(struct client *);
void ahead_free(struct client_ahead *);
void ahead_clear(struct client *);
void ahead_consumer_gone(struct client *, uint64_t consumer);
int ahead_defer_line(struct client_ahead *, const char *, size_t, int flags);
int ahead_defer_lines(struct client_ahead *, const char *status, const struct iovec *, size_t);
int ahead_defer_fd(struct client_ahead *, const char *status, int fd, long top);
void ahead_replay(struct client *, struct client_ahead *, const struct ahead_ops *);
int ahead_ok(struct client *);

/* stream.c */
int stream_open(struct client *, int fd, long top);
void stream_fill(struct client *);
void stream_stop(struct client *);

/* output.c */
/* output_line() flags: the first answer to PASS/APOP/AUTH (1, as
 * reply_first_line returns it); a later line of a response already begun. */
#define OUTPUT_AUTH 0x01
#define OUTPUT_CONT 0x02
void output_line(struct client *, const char *, size_t, int flags);
void output_raw(struct client *, const char *, size_t);
void output_stream(struct client *);
void output_hook_done(struct client *, struct pop3d_event *, int flags);
int output_clear(struct client *);
int output_busy(struct client *);
void output_close(struct client *, const char *reason, const char *lastline);
/* A hook said tempfail (output_tempfail has the rule).  TEMPFAIL_CUT: the
 * line it is about continues a response already begun; TEMPFAIL_LINE: it
 * is about a response line, which is dropped. */
#define TEMPFAIL_CUT 0x01
#define TEMPFAIL_LINE 0x02
void output_tempfail(struct client *, int how);

/* reply.c */
void reply_arm(struct client *);
void reply_complete(struct client *);
int reply_first_line(struct client *);
int reply_line(struct client *, uint64_t tag, const char *, size_t, int flags);
int reply_lines(struct client *, uint64_t tag, const char *status, const struct iovec *, size_t);
int reply_open(struct client *, uint64_t tag);
int reply_file(struct client *, uint64_t tag, const char *status, const char *path, long top);
void reply_seen(struct client *, const struct pop3d_event *, uint64_t consumer);
void reply_consumer_gone(struct client *, uint64_t consumer);

/* session.c */
int session_init(struct pop3d *);
void session_start(struct client *);
void session_process(struct client *);
void session_conn_event(struct client *, enum conn_what);
void session_job_done(struct client *, struct pop3d_event *, int flags);
void session_destroy(struct client *);
/* For the fuzz target: fire a client's timer now (0 auth delay, 1
 * response, 2 phase, 3 idle); 1 when it was armed. */
int session_timer_fire(struct client *, int which);

/* admit.c */
int admit_init(struct pop3d *);
struct client *admit_new(struct pop3d *, int fd, struct sockaddr *peer, socklen_t, int lflags,
    const struct pop3d_sockname *local);
void admit_begin(struct client *);
void admit_accept(struct pop3d *, int fd, struct sockaddr *, socklen_t, int lflags,
    const struct pop3d_sockname *);
void admit_conn_event(struct client *, enum conn_what, const char *detail);

/* subscribe.c */
void subscribe_free_plugins(struct pop3d *);

#endif
