/*
 * benchmsg.h - the mailboxes every benchmark set-up serves, made by one
 * deterministic generator so that the load generator knows the expected
 * answers without asking, and a small client-state table.
 *
 * Users: "benchN" (any N) own the small mailbox: three messages of about
 * 2 KB, 1 KB and 4 KB.  "bigN" own the big mailbox: one message of about
 * 10 MB.  Every password is BENCH_PASSWORD.  Messages are text lines (LF
 * line ends as stored in a Maildir); some lines begin with ".", some are
 * just "." or "..", so dot-stuffing is exercised.  Octet counts are those a
 * POP3 client sees: CRLF line ends, no stuffing.
 */
#ifndef BENCHMSG_H
#define BENCHMSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define BENCH_PASSWORD "pw"
#define BENCH_SMALL_MSGS 3
#define BENCH_BIG_OCTETS (10u * 1024 * 1024)

enum bench_box { BENCH_BOX_NONE = 0, BENCH_BOX_SMALL = 1, BENCH_BOX_BIG = 2 };

struct bench_msg {
	char *text;	   /* LF line ends, as stored */
	size_t len;	   /* octets of text */
	size_t lines;	   /* number of lines (each ends with LF) */
	size_t octets;	   /* POP3 size: len + lines */
	char uid[32];	   /* UIDL */
	struct iovec *iov; /* the lines without line ends (for send_lines) */
	char *wire;	   /* "+OK ..." CRLF, stuffed body, ".\r\n" */
	size_t wirelen;
};

struct bench_mailbox {
	int n;
	struct bench_msg msg[BENCH_SMALL_MSGS];
	size_t total; /* sum of octets */
};

/* Make message `which` (1-3 small, 4 big).  with_wire/with_iov: also the
 * ready-to-send response and the line vector.  0, or -1 out of memory. */
int bench_msg_make(struct bench_msg *, unsigned which, int with_wire, int with_iov);
void bench_msg_free(struct bench_msg *);
/* Both mailboxes. */
int bench_mailbox_make(struct bench_mailbox *, enum bench_box, int with_wire, int with_iov);
void bench_mailbox_free(struct bench_mailbox *);
/* A message number argument ("1".."nmsg", decimal, nothing else), or -1. */
int bench_msgno(const char *arg, int nmsg);
/* The mailbox of a user name, BENCH_BOX_NONE when unknown. */
enum bench_box bench_user_box(const char *user, size_t len);

/* Client id -> state, open addressing (ids are never 0). */
struct bench_client {
	uint64_t id;
	int box;       /* from USER */
	int logged_in; /* after a good PASS: the mailbox is box */
};
struct bench_table {
	struct bench_client *slot;
	size_t cap, n;
};
struct bench_client *bench_table_get(struct bench_table *, uint64_t id, int create);
void bench_table_del(struct bench_table *, uint64_t id);
void bench_table_free(struct bench_table *);

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);

#endif
