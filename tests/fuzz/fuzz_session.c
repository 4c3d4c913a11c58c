/*
 * fuzz_session.c - libFuzzer target for a whole POP3 client session:
 * framing, pipelining, the one-command-in-flight rule, SASL continuations,
 * multi-line responses and file streaming (src/client.c and friends).
 *
 * Each input runs an in-process server: a fresh event_base, pop3d_new(),
 * a consumer that answers commands as the input says, and one client made
 * with admit_new()/admit_begin() on one end of a socketpair, with a fake
 * peer address.  The client stream is written to the other end in chunks,
 * the loop runs with EVLOOP_NONBLOCK a bounded number of times, and the
 * output is drained after each turn.  Everything is freed at the end.
 *
 * Input layout (see README.md):
 *   byte 0      options: 0x01 trace logging (-vv), 0x02 half-close after the
 *               stream, 0x04 small limits (max_line 16, max_auth_line 40),
 *               0x08 tiny output_high (back-pressure), 0x10 extra verb XTND,
 *               0x20 no greeting plugin (the consumer greets, late, or
 *               never), 0x40 pop3d_shutdown() at the end, 0x80 register
 *               some commands only instead of "all"
 *   byte 1      options: 0x01 a plugin on NOOP/RSET/UIDL, 0x02 unlimited bad
 *               lines, 0x04 no pop3d_auth_data handler, 0x08 IPv4-mapped
 *               IPv6 peer, 0x10 a PROXY listener (the stream starts with
 *               the PROXY header; the peer 192.0.2.1 is trusted), 0x30 a
 *               PROXY listener that does not trust the peer (refused),
 *               0x40 --pipeline-depth 2 (0xC0: 8): pipelined commands of a
 *               logged-in client dispatched ahead, answers replayed in order
 *   byte 2      options: 0x01 a POP3C plugin on "response" (passes,
 *               rewrites, swallows or holds lines), 0x02 fire the client's
 *               armed timers at the end (failed-auth delay, response
 *               deadline, PROXY deadline, idle), 0x04 failed-auth delay on
 *               (else 0), 0x08 no limit on failed authentications, 0x10
 *               the plugin also on connection, AUTH, PASS and auth data,
 *               0x20 a TLS context (the core answers STLS itself; the
 *               harness then speaks TLS), 0x40 an implicit-TLS listener
 *   bytes 3..8  chunk-size tape, cyclic: t < 0xF0 gives t + 1 octets, else
 *               256 * (t - 0xEF) octets
 *   bytes 9..16 answer tape, cyclic: one byte per decision of the consumer
 *               and the plugins (see answer_cmd(), plugin_cb(), pop3c_cb())
 *   bytes 17..  the client stream
 *
 * Plugins may hold events (POP3D_EAT_PENDING); the held hooks are resolved
 * a few turns later with a verdict from the tape, or never.
 *
 * Checked: no crash, leak or sanitizer report; the output is CRLF lines
 * only; outside multi-line bodies every line is a status line (+ or -);
 * multi-line bodies are dot-stuffed; and the number of responses never
 * exceeds the number of lines sent plus the greeting (plus one for an idle
 * autologout or a connection refused by a plugin, which answer no line).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "log.h"
#include "pop3d.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define HDR 17
#define CHUNK_TAPE 3
#define CHUNK_TAPE_LEN 6
#define ANSWER_TAPE 9
#define ANSWER_TAPE_LEN 8
#define MAX_HOOKS 8
#define MAX_STREAM (64 * 1024)
#define MAX_PUMPS 512
#define SETTLE_PUMPS 8

/* Our own messages: stderr itself is pointed at /dev/null (see below). */
static FILE *errf;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(errf, "fuzz_session: check failed at %s:%d: %s\n", __FILE__, \
			    __LINE__, #cond); \
			fflush(errf); \
			abort(); \
		} \
	} while (0)

/* Files for pop3d_send_file(), in file_dir (made at start-up). */
static char file_dir[32];
static char small_path[64], big_path[64];
static int have_files;
/* A throw-away certificate and key (files) and the harness's TLS client. */
static char cert_path[64], key_path[64];
static SSL_CTX *client_ctx;
static void make_tls(void);
/* POP3D_FUZZ_SKIP_KNOWN_BUGS set: steer clear of the open core bugs listed
 * in README.md, so that a long run can look for others. */
static int skip_known;
/* FUZZ_SESSION_DUMP set: print every session's output (for reading seeds). */
static int dump_all;

enum answer { A_OK, A_ERR, A_MORE, A_LINES, A_FILE, A_CONT, A_DISC, A_DISC_NULL, A_NONE };

struct fz {
	struct event_base *base;
	struct pop3d *srv;
	uint64_t consumer;
	uint64_t client;
	int fd; /* our end of the socketpair */
	const uint8_t *tape;
	size_t tp;
	/* One deferred answer: at most one command is in flight. */
	int pending;
	enum answer pkind;
	uint64_t ptag;
	unsigned pdelay;
	unsigned char pbyte;
	int del_pending; /* remove the consumer at the next turn */
	int greeter;	 /* no core greeting: the consumer greets */
	int greet_later; /* ... at the next turn */
	/* Held plugin verdicts, resolved at a later turn. */
	struct {
		uint64_t hook;
		unsigned delay;
		unsigned char v;
		int safe; /* POP3C: a line that may be swallowed */
		int conn; /* pop3d_connection: TEMPFAIL answers no line */
	} hooks[MAX_HOOKS];
	size_t nhooks;
	int unsolicited; /* responses that answer no line */
	/* The client side of TLS: 0 plain, 1 handshaking, 2 up, -1 failed. */
	SSL *ssl;
	int tls;
	unsigned stls_wait; /* turns to wait for the STLS answer */
	size_t stls_seen;   /* output already searched for it */
	/* Output from the server. */
	char *out;
	size_t outlen, outcap;
};

static unsigned char
tape_next(struct fz *f)
{
	return f->tape[f->tp++ % ANSWER_TAPE_LEN];
}

/* Remove the files' directory at exit. */
static void
remove_files(void)
{
	const char *const names[] = { "fuzz_small", "fuzz_big", "fuzz_cert", "fuzz_key" };
	char p[96];
	size_t i;

	if (file_dir[0] == '\0')
		return;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", file_dir, names[i]);
		unlink(p);
	}
	rmdir(file_dir);
}

/* Write a regular file in a private directory (pop3d_send_file() follows
 * no symlink, so not a memfd's /proc/self/fd/N); path gets its name. */
static void
make_file(const char *name, const char *data, size_t len, char *path, size_t plen)
{
	int fd;

	if (file_dir[0] == '\0') {
		snprintf(file_dir, sizeof(file_dir), "/tmp/fzss.XXXXXX");
		if (mkdtemp(file_dir) == NULL) {
			file_dir[0] = '\0';
			return;
		}
		atexit(remove_files);
	}
	snprintf(path, plen, "%s/%s", file_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || write(fd, data, len) != (ssize_t)len) {
		if (fd != -1)
			close(fd);
		path[0] = '\0';
		return;
	}
	close(fd);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char small[] =
	    "From: a@example.org\r\nSubject: dots\r\n\r\n.\r\n..\n.x\rbare CR\nbare LF\r\n"
	    "\r\n.\r\nlast line without end";
	char *big;
	size_t i, o = 0;

	(void)argc;
	(void)argv;
	errf = stderr;
	/* The core logs every connection to stderr; libFuzzer and the
	 * sanitizers keep the real stderr (they hold their own handle or write
	 * to fd 2 directly).  FUZZ_SESSION_LOG=1 keeps the log. */
	if (getenv("FUZZ_SESSION_LOG") == NULL) {
		FILE *null = fopen("/dev/null", "w");

		if (null != NULL)
			stderr = null;
	}
	signal(SIGPIPE, SIG_IGN);
	dump_all = getenv("FUZZ_SESSION_DUMP") != NULL;
	skip_known = getenv("POP3D_FUZZ_SKIP_KNOWN_BUGS") != NULL &&
	    *getenv("POP3D_FUZZ_SKIP_KNOWN_BUGS") != '\0';
	make_file("fuzz_small", small, sizeof(small) - 1, small_path, sizeof(small_path));
	/* Big enough for several CLIENT_STREAM_CHUNK reads and refills. */
	big = malloc(100 * 1024);
	if (big != NULL) {
		o += (size_t)snprintf(big, 100 * 1024, "Subject: big\n\n");
		for (i = 0; o + 64 < 100 * 1024; i++)
			o += (size_t)snprintf(big + o, 100 * 1024 - o, "%s%zu body line\r\n",
			    i % 7 == 0 ? "." : "", i);
		make_file("fuzz_big", big, o, big_path, sizeof(big_path));
		free(big);
	}
	have_files = small_path[0] != '\0' && big_path[0] != '\0';
	make_tls();
	if (!have_files)
		fprintf(errf, "fuzz_session: no files: pop3d_send_file() is not used\n");
	return 0;
}

/* Write a PEM object into a file; path gets its name. */
static void
pem_file(const char *name, X509 *x, EVP_PKEY *k, char *path, size_t plen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	if (b == NULL)
		return;
	if ((x != NULL ? PEM_write_bio_X509(b, x) :
			 PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) == 1 &&
	    (n = BIO_get_mem_data(b, &p)) > 0)
		make_file(name, p, (size_t)n, path, plen);
	BIO_free(b);
}

/* A self-signed P-256 certificate for "localhost", made once. */
static void
make_tls(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *nm;

	if (k != NULL && x != NULL && X509_set_version(x, 2) == 1 &&
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1 &&
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 3650) != NULL &&
	    X509_set_pubkey(x, k) == 1 && (nm = X509_get_subject_name(x)) != NULL &&
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
		-1, -1, 0) == 1 &&
	    X509_set_issuer_name(x, nm) == 1 && X509_sign(x, k, EVP_sha256()) > 0) {
		pem_file("fuzz_cert", x, NULL, cert_path, sizeof(cert_path));
		pem_file("fuzz_key", NULL, k, key_path, sizeof(key_path));
	}
	X509_free(x);
	EVP_PKEY_free(k);
	if ((client_ctx = SSL_CTX_new(TLS_client_method())) != NULL) {
		SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(client_ctx,
		    SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	}
	if (cert_path[0] == '\0' || key_path[0] == '\0' || client_ctx == NULL) {
		cert_path[0] = '\0';
		fprintf(errf, "fuzz_session: no TLS material: TLS is not used\n");
	}
	ERR_clear_error();
}

static int
ok_or_gone(int rv)
{
	return rv == 0 || rv == -POP3D_ERR_UNKNOWN_CLIENT;
}

/* Send answer k for command tag of our client.  auth: AUTH or its data. */
static void
answer(struct fz *f, uint64_t tag, enum answer k, unsigned char b)
{
	static const char *const bodies[] = { "1 120", ".", "..", ".x", "", "plain line" };
	struct iovec iov[6];
	size_t i, n;
	int rv = 0;

	switch (k) {
	case A_OK:
		rv = pop3d_send_to_client(f->srv, f->client, tag, "+OK fine", 8, 0);
		break;
	case A_ERR:
		rv = pop3d_send_to_client(f->srv, f->client, tag, "-ERR no", 7, 0);
		break;
	case A_CONT:
		if (b & 0x40)
			rv = pop3d_send_to_client(f->srv, f->client, tag, "+", 1, 0);
		else
			rv = pop3d_send_to_client(f->srv, f->client, tag, "+ Y29udA==", 10, 0);
		break;
	case A_MORE:
		/* A handler writing a multi-line response line by line: it
		 * stuffs the body itself. */
		rv = pop3d_send_to_client(f->srv, f->client, tag, "+OK multi more", 14,
		    POP3D_SEND_MORE);
		if (rv == 0)
			rv = pop3d_send_to_client(f->srv, f->client, tag, "1 120", 5,
			    POP3D_SEND_MORE);
		if (rv == 0 && (b & 0x40))
			rv = pop3d_send_to_client(f->srv, f->client, tag, "", 0, POP3D_SEND_MORE);
		if (rv == 0)
			rv =
			    pop3d_send_to_client(f->srv, f->client, tag, "..x", 3, POP3D_SEND_MORE);
		if (rv == 0)
			rv = pop3d_send_to_client(f->srv, f->client, tag, ".", 1, 0);
		break;
	case A_LINES:
		n = (size_t)(b >> 4) % 7;
		for (i = 0; i < n && i < 6; i++) {
			iov[i].iov_base = (void *)bodies[(i + b) % 6];
			iov[i].iov_len = strlen(bodies[(i + b) % 6]);
		}
		rv = pop3d_send_lines(f->srv, f->client, tag, "+OK multi lines", n > 0 ? iov : NULL,
		    n > 6 ? 6 : n);
		break;
	case A_FILE:
		if (!have_files) {
			rv = pop3d_send_to_client(f->srv, f->client, tag, "+OK fine", 8, 0);
			break;
		}
		rv = pop3d_send_file(f->srv, f->client, tag, "+OK multi file",
		    (b & 0x40) ? big_path : small_path, (long)((b >> 4) & 3) - 1);
		break;
	case A_DISC:
	case A_DISC_NULL:
		/* Only as the answer to the command in flight. */
		{
			struct pop3d_client_info ci;

			if (pop3d_client_info(f->srv, f->client, &ci) != 0 || ci.tag != tag)
				return;
			rv = pop3d_disconnect(f->srv, f->client, k == A_DISC ? "-ERR bye" : NULL);
		}
		break;
	case A_NONE:
		return;
	}
	CHECK(ok_or_gone(rv) || rv == -POP3D_ERR_STALE);
}

/* Try a few wrong calls, which must change nothing. */
static void
misuse(struct fz *f, uint64_t tag)
{
	struct iovec bad = { (void *)"a\rb", 3 };
	int rv;

	rv = pop3d_send_to_client(f->srv, f->client, tag, "+OK\r\nX", 6, 0);
	CHECK(rv == -POP3D_ERR_INVALID || rv == -POP3D_ERR_UNKNOWN_CLIENT);
	rv = pop3d_send_to_client(f->srv, f->client, tag, "+OK\0X", 5, 0);
	CHECK(rv == -POP3D_ERR_INVALID || rv == -POP3D_ERR_UNKNOWN_CLIENT);
	rv = pop3d_send_to_client(f->srv, f->client, tag + 1, "+OK", 3, 0);
	CHECK(rv == -POP3D_ERR_STALE || rv == -POP3D_ERR_UNKNOWN_CLIENT);
	rv = pop3d_send_lines(f->srv, f->client, tag, "+OK multi lines", &bad, 1);
	CHECK(rv == -POP3D_ERR_INVALID || rv == -POP3D_ERR_UNKNOWN_CLIENT);
	rv = pop3d_send_file(f->srv, f->client, tag, "+OK multi file", "/nonexistent/fuzz", -1);
	CHECK(rv == -POP3D_ERR_IO || rv == -POP3D_ERR_UNKNOWN_CLIENT);
	rv = pop3d_send_to_client(f->srv, f->client + 1, tag, "+OK", 3, 0);
	CHECK(rv == -POP3D_ERR_UNKNOWN_CLIENT);
	rv = pop3d_disconnect(f->srv, f->client, "a\nb");
	CHECK(rv == -POP3D_ERR_INVALID || rv == -POP3D_ERR_UNKNOWN_CLIENT);
}

static void
defer(struct fz *f, uint64_t tag, enum answer k, unsigned char b)
{
	f->pending = 1;
	f->ptag = tag;
	f->pkind = k;
	f->pbyte = b;
	f->pdelay = (b >> 2) & 3;
}

/*
 * A command.  Decision byte d:
 *   d & 7: 0 +OK, 1 -ERR, 2 SEND_MORE lines, 3 send_lines, 4 send_file,
 *   5 deferred (kind from the next byte), 6 wrong calls then +OK with tag 0,
 *   7 by (d >> 3) & 3: disconnect with text, without text, no answer at
 *   all, or (d >> 5 == 7) remove the consumer (now, or at the next turn
 *   when the next byte is odd), else "+ " (not AUTH: a plain single line).
 * AUTH with d & 0x08: a continuation ("+ " or "+"), deferred when d & 0x10.
 */
static void
answer_cmd(struct fz *f, const struct pop3d_event *ev, const char *verb)
{
	unsigned char d = tape_next(f), e;

	if (strcmp(verb, "auth") == 0 && (d & 0x08)) {
		if (d & 0x10)
			defer(f, ev->tag, A_CONT, d);
		else
			answer(f, ev->tag, A_CONT, d);
		return;
	}
	switch (d & 7) {
	case 0:
		answer(f, ev->tag, A_OK, d);
		break;
	case 1:
		answer(f, ev->tag, A_ERR, d);
		break;
	case 2:
		answer(f, ev->tag, A_MORE, d);
		break;
	case 3:
		answer(f, ev->tag, A_LINES, d);
		break;
	case 4:
		answer(f, ev->tag, A_FILE, d);
		break;
	case 5:
		e = tape_next(f);
		defer(f, ev->tag, (enum answer)(e % (A_DISC_NULL + 1)), e);
		break;
	case 6:
		misuse(f, ev->tag);
		answer(f, 0, A_OK, d);
		break;
	default:
		switch ((d >> 3) & 3) {
		case 0:
			answer(f, ev->tag, A_DISC, d);
			break;
		case 1:
			answer(f, ev->tag, A_DISC_NULL, d);
			break;
		case 2:
			break; /* never answered */
		default:
			if ((d >> 5) == 7 && f->consumer != 0) {
				uint64_t id = f->consumer;

				/* During the dispatch (allowed by pop3d.h, and
				 * what control.c does to a controller over its
				 * output cap), or at the next turn. */
				if (tape_next(f) & 1)
					f->del_pending = 1;
				else {
					f->consumer = 0;
					pop3d_consumer_del(f->srv, id);
				}
			} else
				answer(f, ev->tag, A_CONT, d);
			break;
		}
		break;
	}
}

/* A SASL continuation line: again "+ ", +OK, -ERR, deferred or any. */
static void
answer_auth(struct fz *f, const struct pop3d_event *ev)
{
	unsigned char d = tape_next(f);

	CHECK(ev->argc == 2 && ev->argv[1].type == POP3D_ARG_STR);
	CHECK(strlen(ev->argv[1].s) == ev->argv[1].len);
	CHECK(memchr(ev->argv[1].s, '\n', ev->argv[1].len) == NULL);
	switch (d % 5) {
	case 0:
		answer(f, ev->tag, A_CONT, d);
		break;
	case 1:
		answer(f, ev->tag, A_OK, d);
		break;
	case 2:
		answer(f, ev->tag, A_ERR, d);
		break;
	case 3:
		defer(f, ev->tag, (d & 0x20) ? A_CONT : (d & 0x40) ? A_OK : A_ERR, d);
		break;
	default:
		answer_cmd(f, ev, "x");
		break;
	}
}

/*
 * Without the core's greeting a pop3d_connection handler greets, and the
 * client's input waits for it: d & 3: 0 greet now, 1 at the next turn,
 * 2 never, 3 refuse with a last line.
 */
static void
greet(struct fz *f, unsigned char d)
{
	int rv;

	switch (d & 3) {
	case 0:
		rv = pop3d_send_to_client(f->srv, f->client, 0, "+OK POP3 fuzz ready", 19, 0);
		CHECK(ok_or_gone(rv));
		break;
	case 1:
		f->greet_later = 1;
		break;
	case 2:
		break;
	default:
		rv = pop3d_disconnect(f->srv, f->client, "-ERR [SYS/TEMP] not now");
		CHECK(ok_or_gone(rv));
		break;
	}
}

static void
consumer_cb(struct pop3d *srv, const struct pop3d_event *ev, void *arg)
{
	struct fz *f = arg;

	(void)srv;
	if (ev->client != f->client)
		return;
	if (strncmp(ev->name, "pop3d_cmd_", 10) == 0) {
		const char *verb = ev->name + 10;

		CHECK(ev->tag != 0);
		CHECK(ev->argc == 1 || ev->argc == 2);
		CHECK(ev->argv[0].type == POP3D_ARG_INT && (uint64_t)ev->argv[0].i == f->client);
		if (ev->argc == 2) {
			CHECK(ev->argv[1].type == POP3D_ARG_STR);
			CHECK(ev->argv[1].len > 0);
			CHECK(strlen(ev->argv[1].s) == ev->argv[1].len);
		}
		answer_cmd(f, ev, verb);
	} else if (strcmp(ev->name, "pop3d_auth_data") == 0)
		answer_auth(f, ev);
	else if (f->greeter && strcmp(ev->name, "pop3d_connection") == 0)
		greet(f, tape_next(f));
}

/* Hold an event: resolve hook at a later turn with the verdict byte v. */
static int
hold(struct fz *f, const struct pop3d_event *ev, unsigned char v, int safe)
{
	if (ev->hook == 0 || f->nhooks == MAX_HOOKS)
		return POP3D_EAT_NONE;
	f->hooks[f->nhooks].hook = ev->hook;
	f->hooks[f->nhooks].delay = v & 3;
	f->hooks[f->nhooks].v = v;
	f->hooks[f->nhooks].safe = safe;
	f->hooks[f->nhooks].conn = strcmp(ev->name, "pop3d_connection") == 0;
	f->nhooks++;
	return POP3D_EAT_PENDING;
}

/*
 * The plugin: pass, rewrite ARG1, answer itself, swallow the command
 * (consumers never see it), or hold it (resolved later).  Decision d & 7:
 * 1 rewrite, 2 answer + EAT_ALL, 3 EAT_CLIENT or EAT_PLUGIN, 4 hold, else
 * pass.
 */
static int
plugin_cb(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	struct fz *f = arg;
	unsigned char d = tape_next(f);

	(void)srv;
	if (ev->client != f->client)
		return POP3D_EAT_NONE;
	switch (d & 7) {
	case 1:
		if (ev->argc > 1 && ev->argv[1].type == POP3D_ARG_STR) {
			char *s = strdup("rewritten by plugin");

			if (s != NULL) {
				free(ev->argv[1].s);
				ev->argv[1].s = s;
				ev->argv[1].len = strlen(s);
			}
		}
		return POP3D_EAT_NONE;
	case 2:
		if (ev->tag != 0) {
			answer(f, ev->tag, A_OK, d);
			return POP3D_EAT_ALL;
		}
		return POP3D_EAT_NONE;
	case 3:
		return (d & 8) ? POP3D_EAT_CLIENT : POP3D_EAT_PLUGIN;
	case 4:
		return hold(f, ev, tape_next(f), 1);
	default:
		return POP3D_EAT_NONE;
	}
}

/* Lines the consumer sends as whole single-line answers: rewriting or
 * swallowing them keeps the output checkable. */
static int
plain_answer(const struct pop3d_event *ev)
{
	return ev->argc > 1 && ev->argv[1].type == POP3D_ARG_STR && ev->argv[1].s != NULL &&
	    (strcmp(ev->argv[1].s, "+OK fine") == 0 || strcmp(ev->argv[1].s, "-ERR no") == 0);
}

/*
 * The POP3C plugin, on every response line.  For the consumer's plain
 * answers, d & 7: 1 rewrite, 2 swallow, 3 hold, 4 an invalid rewrite (the
 * core keeps the original); other lines may only be held.  Else pass.
 */
static int
pop3c_cb(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	struct fz *f = arg;
	unsigned char d = tape_next(f);
	int plain = plain_answer(ev);
	char *s;

	(void)srv;
	if (ev->client != f->client || ev->argc < 2)
		return POP3D_EAT_NONE;
	switch (d & 7) {
	case 1:
	case 4:
		if (plain && (s = strdup((d & 7) == 1 ? "+OK rewritten" : "+OK\rbad")) != NULL) {
			free(ev->argv[1].s);
			ev->argv[1].s = s;
			ev->argv[1].len = strlen(s);
		}
		return POP3D_EAT_NONE;
	case 2:
		return plain ? POP3D_EAT_CLIENT : POP3D_EAT_NONE;
	case 3:
		return hold(f, ev, tape_next(f), plain);
	default:
		return POP3D_EAT_NONE;
	}
}

/* Resolve the held verdicts whose time has come. */
static void
resolve_hooks(struct fz *f, int all)
{
	static const int verdicts[] = { POP3D_EAT_NONE, POP3D_EAT_CLIENT, POP3D_EAT_PLUGIN,
		POP3D_EAT_ALL, POP3D_HOOK_TEMPFAIL };
	size_t i = 0;
	int rv, v;

	while (i < f->nhooks) {
		if (!all && f->hooks[i].delay-- > 0) {
			i++;
			continue;
		}
		if (f->hooks[i].safe)
			v = verdicts[(f->hooks[i].v >> 2) % 5];
		else
			v = (f->hooks[i].v & 0x10) ? POP3D_HOOK_TEMPFAIL : POP3D_EAT_NONE;
		if (v == POP3D_HOOK_TEMPFAIL && f->hooks[i].conn)
			f->unsolicited++;
		rv = pop3d_hook_resolve(f->srv, f->hooks[i].hook, v, NULL, 0);
		CHECK(rv == 0 || rv == -POP3D_ERR_STALE);
		CHECK(pop3d_hook_pending(f->srv, f->hooks[i].hook) == 0);
		CHECK(pop3d_hook_resolve(f->srv, f->hooks[i].hook, v, NULL, 0) == -POP3D_ERR_STALE);
		f->hooks[i] = f->hooks[--f->nhooks];
	}
}

static void
append(struct fz *f, const char *buf, size_t n)
{
	if (f->outlen + n > f->outcap) {
		size_t cap = f->outcap ? f->outcap : 65536;
		char *p;

		while (cap < f->outlen + n)
			cap *= 2;
		CHECK((p = realloc(f->out, cap)) != NULL);
		f->out = p;
		f->outcap = cap;
	}
	memcpy(f->out + f->outlen, buf, n);
	f->outlen += n;
}

/* Start TLS as the client. */
static void
tls_start(struct fz *f)
{
	if (client_ctx == NULL || (f->ssl = SSL_new(client_ctx)) == NULL ||
	    SSL_set_fd(f->ssl, f->fd) != 1) {
		f->tls = -1;
		return;
	}
	SSL_set_connect_state(f->ssl);
	f->tls = 1;
}

/* Read what the server sent: plain, decrypted, or (after a failed
 * handshake) thrown away. */
static void
drain(struct fz *f)
{
	char buf[16384];
	ssize_t n;
	int r;

	if (f->tls == 1) {
		if ((r = SSL_do_handshake(f->ssl)) == 1)
			f->tls = 2;
		else if (SSL_get_error(f->ssl, r) != SSL_ERROR_WANT_READ &&
		    SSL_get_error(f->ssl, r) != SSL_ERROR_WANT_WRITE) {
			f->tls = -1;
			ERR_clear_error();
		}
	}
	if (f->tls == 2) {
		while ((r = SSL_read(f->ssl, buf, sizeof(buf))) > 0)
			append(f, buf, (size_t)r);
		if (SSL_get_error(f->ssl, r) != SSL_ERROR_WANT_READ)
			ERR_clear_error();
		return;
	}
	if (f->tls == 1)
		return;
	for (;;) {
		n = recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			break;
		if (f->tls == 0)
			append(f, buf, (size_t)n);
	}
	/* The core's answer to STLS: the next octets are TLS. */
	if (f->tls == 0 && f->stls_wait > 0 && f->outlen > f->stls_seen) {
		static const char ok[] = "+OK Begin TLS negotiation\r\n";
		size_t from = f->stls_seen > 64 ? f->stls_seen - 64 : 0;

		if (f->outlen - from >= sizeof(ok) - 1 &&
		    memmem(f->out + from, f->outlen - from, ok, sizeof(ok) - 1) != NULL) {
			f->stls_wait = 0;
			tls_start(f);
		}
		f->stls_seen = f->outlen;
	}
}

/* Send stream octets, through TLS once it is up. */
static ssize_t
put(struct fz *f, const uint8_t *p, size_t n)
{
	int r;

	if (f->tls == 0)
		return send(f->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (f->tls != 2)
		return 0; /* handshaking: later; failed: never */
	if ((r = SSL_write(f->ssl, p, (int)n)) > 0)
		return r;
	if (SSL_get_error(f->ssl, r) == SSL_ERROR_WANT_WRITE ||
	    SSL_get_error(f->ssl, r) == SSL_ERROR_WANT_READ)
		return 0;
	ERR_clear_error();
	f->tls = -1;
	return -1;
}

/* Whether a chunk holds an STLS command (any case). */
static int
has_stls(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 4 <= n; i++)
		if ((p[i] | 0x20) == 's' && (p[i + 1] | 0x20) == 't' && (p[i + 2] | 0x20) == 'l' &&
		    (p[i + 3] | 0x20) == 's' && (i == 0 || p[i - 1] == '\n'))
			return 1;
	return 0;
}

static void
pump(struct fz *f)
{
	if (f->del_pending && f->consumer != 0) {
		uint64_t id = f->consumer;

		f->consumer = 0;
		pop3d_consumer_del(f->srv, id);
	}
	f->del_pending = 0;
	if (f->greet_later) {
		f->greet_later = 0;
		greet(f, 0);
	}
	resolve_hooks(f, 0);
	if (f->pending && f->pdelay-- == 0) {
		f->pending = 0;
		answer(f, f->ptag, f->pkind, f->pbyte);
	}
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	drain(f);
}

/* Show the output (on failure), escaped, one response line a line. */
static void
dump(const char *o, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < 8192; i++) {
		unsigned char ch = (unsigned char)o[i];

		if (ch == '\n')
			fputs("\\n\n", errf);
		else if (ch == '\r')
			fputs("\\r", errf);
		else if (ch < 0x20 || ch >= 0x7F)
			fprintf(errf, "\\x%02x", ch);
		else
			fputc(ch, errf);
	}
	if (i < len)
		fprintf(errf, "... (%zu octets)\n", len);
	fflush(errf);
}

/* Walk the output: CRLF lines; status lines outside bodies.  Returns the
 * number of responses. */
static size_t
check_output(const char *o, size_t len, int greeting)
{
	size_t i = 0, start, responses = 0;
	int body = 0;

	if (greeting && len > 0)
		CHECK(len >= 9 && memcmp(o, "+OK POP3 ", 9) == 0);
	while (i < len) {
		start = i;
		while (i < len && o[i] != '\r' && o[i] != '\n')
			i++;
		if (i == len)
			break; /* a last partial line (cut by pop3d_free) */
		if (i + 1 == len && o[i] == '\r')
			break;
		CHECK(o[i] == '\r' && o[i + 1] == '\n');
		if (body) {
			if (i - start == 1 && o[start] == '.')
				body = 0;
			else if (i > start && o[start] == '.')
				CHECK(i - start >= 2 && o[start + 1] == '.');
		} else {
			CHECK(i > start && (o[start] == '+' || o[start] == '-'));
			responses++;
			if (i - start >= 9 && memcmp(o + start, "+OK multi", 9) == 0)
				body = 1;
		}
		i += 2;
	}
	return responses;
}

/* Fire one timer of the client now, if it is armed (time passing). */
static int
fire(struct fz *f, int which)
{
	struct client *c = table_find(f->srv, f->client);
	int k;

	if (c == NULL || !session_timer_fire(c, which))
		return 0;
	for (k = 0; k < 3; k++)
		pump(f);
	return 1;
}

/* The deadlines that a real session would reach by waiting. */
static void
fire_timers(struct fz *f)
{
	int k;

	for (k = 0; k < 4; k++)
		fire(f, k);
	/* An idle autologout answers no line. */
	f->unsolicited++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const xtnd[] = { "XTND", NULL };
	static const char *const some[] = { "cmd_user", "cmd_pass", "cmd_auth", "cmd_list",
		"cmd_retr", "cmd_top", "cmd_capa", "pop3d_auth_data" };
	static const char *const plug[] = { "cmd_noop", "cmd_rset", "cmd_uidl", "connection",
		"cmd_auth", "cmd_pass", "auth_data" };
	static const char *const resp[] = { "response" };
	static const char *const all[] = { "all" };
	struct pop3d_options o;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct client *c;
	struct fz f;
	const uint8_t *s;
	size_t n, off = 0, tp = 0, lines = 0, responses, nsome, i;
	unsigned pumps = 0;
	uint8_t o0, o1, o2;
	int fds[2], k, lflags = 0, refused = 0, tls_ctx = 0;

	if (size < HDR)
		return 0;
	o0 = data[0];
	o1 = data[1];
	o2 = data[2];
	s = data + HDR;
	n = size - HDR;
	if (n > MAX_STREAM)
		n = MAX_STREAM;

	memset(&f, 0, sizeof(f));
	f.tape = data + ANSWER_TAPE;
	f.greeter = (o0 & 0x20) != 0;
	log_set_verbose((o0 & 0x01) ? 2 : 0);

	CHECK((f.base = event_base_new()) != NULL);
	pop3d_options_init(&o);
	if (o0 & 0x04) {
		o.max_line = 16;
		o.max_auth_line = 40;
	}
	if (o0 & 0x08)
		o.output_high = 64;
	if (o0 & 0x10)
		o.extra_verbs = xtnd;
	if (o0 & 0x20)
		o.handle_connects = 0;
	if (o1 & 0x02)
		o.max_bad_lines = 0;
	if (o1 & 0x40)
		o.pipeline_depth = (o1 & 0x80) ? 8 : 2;
	if (!(o2 & 0x04))
		o.auth_fail_delay_ms = 0;
	if (o2 & 0x08)
		o.max_auth_failures = 0;
	CHECK((f.srv = pop3d_new(f.base, &o)) != NULL);

	CHECK((f.consumer = pop3d_consumer_add(f.srv, "fuzz", consumer_cb, &f)) != 0);
	if (o0 & 0x80) {
		nsome = sizeof(some) / sizeof(some[0]) - ((o1 & 0x04) ? 1 : 0);
		CHECK(pop3d_consumer_register(f.srv, f.consumer, some, nsome, NULL) == 0);
	} else
		CHECK(pop3d_consumer_register(f.srv, f.consumer, all, 1, NULL) == 0);
	if (o1 & 0x01) {
		CHECK(pop3d_plugin_add(f.srv, "fuzzplug", 5, plugin_cb, &f) > 0);
		CHECK(
		    pop3d_plugin_register(f.srv, "fuzzplug", plug, (o2 & 0x10) ? 7 : 3, NULL) == 0);
	}
	if (o2 & 0x01) {
		CHECK(pop3d_plugin_add(f.srv, "fuzzpop3c", 7, pop3c_cb, &f) > 0);
		CHECK(pop3d_plugin_register_type(f.srv, "fuzzpop3c", POP3D_PLUGIN_POP3C, resp, 1,
			  NULL) == 0);
	}

	if ((o2 & 0x20) && cert_path[0] != '\0') {
		CHECK(pop3d_tls_set(f.srv, cert_path, key_path, NULL) == 0);
		tls_ctx = 1;
	}
	if (o2 & 0x40)
		lflags |= POP3D_LISTEN_TLS; /* without a context: refused */
	/* A PROXY listener: the stream starts with the header. */
	if (o1 & 0x10) {
		CHECK(pop3d_proxy_trust(f.srv, (o1 & 0x20) ? "198.51.100.0/24" : "192.0.2.0/24") ==
		    0);
		lflags |= POP3D_LISTEN_PROXY;
		refused = (o1 & 0x20) != 0;
	}
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
	f.fd = fds[1];
	if (o1 & 0x08) {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(40000);
		inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6.sin6_addr);
		c = admit_new(f.srv, fds[0], (struct sockaddr *)&sin6, sizeof(sin6), lflags, NULL);
	} else {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(40000);
		sin.sin_addr.s_addr = htonl(0xC0000201); /* 192.0.2.1 */
		c = admit_new(f.srv, fds[0], (struct sockaddr *)&sin, sizeof(sin), lflags, NULL);
	}
	if (refused) {
		/* An untrusted peer on a PROXY listener: no client at all. */
		CHECK(c == NULL);
		pop3d_free(f.srv);
		event_base_free(f.base);
		close(f.fd);
		return 0;
	}
	CHECK(c != NULL);
	f.client = c->id;
	if ((lflags & POP3D_LISTEN_TLS) && tls_ctx && !(lflags & POP3D_LISTEN_PROXY))
		tls_start(&f);
	admit_begin(c);
	pump(&f);

	/* The stream, in chunks. */
	while (off < n) {
		unsigned t = data[CHUNK_TAPE + tp++ % CHUNK_TAPE_LEN];
		size_t chunk = t < 0xF0 ? t + 1 : 256 * (size_t)(t - 0xEF);
		ssize_t w;

		if (pumps >= MAX_PUMPS)
			chunk = n - off; /* bounded work per input */
		if (chunk > n - off)
			chunk = n - off;
		if (f.stls_wait > 0) {
			/* Nothing more in clear until the STLS answer is in. */
			f.stls_wait--;
			pump(&f);
			continue;
		}
		if (f.tls == 1 || f.tls == -1) {
			pump(&f);
			if (f.tls == -1)
				break;
			if (++pumps >= 2 * MAX_PUMPS)
				break;
			continue;
		}
		w = put(&f, s + off, chunk);
		if (w > 0) {
			if (f.tls == 0 && tls_ctx && has_stls(s + off, (size_t)w))
				f.stls_wait = 4;
			off += (size_t)w;
		} else if (w == -1 && errno != EAGAIN && errno != EINTR)
			break; /* the server closed the connection */
		pump(&f);
		if (++pumps >= 2 * MAX_PUMPS)
			break;
	}
	for (k = 0; k < SETTLE_PUMPS; k++)
		pump(&f);
	/* Known bug 3 (README.md): EOF on a TLS connection re-enters
	 * session_process(). */
	if ((o0 & 0x02) && !(skip_known && f.tls != 0)) {
		if (f.tls == 2)
			SSL_shutdown(f.ssl);
		shutdown(f.fd, SHUT_WR);
		for (k = 0; k < SETTLE_PUMPS; k++)
			pump(&f);
	}
	if (o2 & 0x02)
		fire_timers(&f);
	if (o0 & 0x40) {
		pop3d_shutdown(f.srv);
		for (k = 0; k < SETTLE_PUMPS; k++)
			pump(&f);
	}
	/* Held verdicts: resolved now (0x80 of the first answer byte: left
	 * pending, for pop3d_free() to clean up). */
	if (!(f.tape[0] & 0x80)) {
		resolve_hooks(&f, 1);
		pump(&f);
	}
	/* Let a client killed in the last turn be freed from its ev_defer. */
	f.pending = 0;
	pump(&f);
	pump(&f);
	pop3d_free(f.srv);
	drain(&f);
	event_base_free(f.base);
	if (f.ssl != NULL)
		SSL_free(f.ssl);
	ERR_clear_error();
	close(f.fd);

	/* Lines the server could have seen: complete ones, and a partial last
	 * one (it may be answered as too long). */
	for (i = 0; i < off; i++)
		if (s[i] == '\n')
			lines++;
	if (off > 0 && s[off - 1] != '\n')
		lines++;
	if (dump_all) {
		fprintf(errf, "--- %zu lines sent; output:\n", lines);
		dump(f.out, f.outlen);
	}
	/* A POP3C plugin may rewrite or fail the greeting. */
	responses = check_output(f.out, f.outlen, !(o0 & 0x20) && !(o2 & 0x01));
	/* One more for the greeting (the core's or the consumer's), or for
	 * "server not ready" when nobody greets. */
	lines += f.unsolicited + 1;
	if (responses > lines) {
		fprintf(errf, "fuzz_session: %zu responses to %zu lines; output:\n", responses,
		    lines);
		dump(f.out, f.outlen);
		CHECK(responses <= lines);
	}
	free(f.out);
	return 0;
}
