/*
 * verbs.h - the POP3 verb table: what each built-in verb is.
 *
 * The one place that says which verbs pop3d forwards, which carry a
 * secret and how much of their argument a log may show, which may be
 * dispatched ahead of the answer in flight, which are on the way to
 * authentication, which start SASL or TLS and which end the session.
 * The framer, the dispatcher, read-ahead, the masks, the hook timeouts,
 * the plugins and pop3ctl all ask here; adding a verb is one row.
 *
 * Pure C with no library dependency, like mask.c: compiled into the core,
 * the plugins and pop3ctl.
 */
#ifndef POP3D_VERBS_H
#define POP3D_VERBS_H

#include <stddef.h>

/* What a verb is (flags of a row). */
#define VERB_AHEAD 0x01 /* may be dispatched before the answer in flight */
#define VERB_AUTH 0x02	/* on the way to authentication (hook timeouts) */
#define VERB_SASL 0x04	/* starts a SASL exchange (AUTH) */
#define VERB_STLS 0x08	/* starts TLS (STLS) */
#define VERB_QUIT 0x10	/* ends the session */

/* Longest verb the framer accepts, built-in or extra (RFC 2449: four
 * characters today; room for the extensions a controller may add). */
#define VERBS_MAX 16

struct verb {
	const char *name; /* lower case */
	int flags;	  /* VERB_* */
	int mask;	  /* enum mask_rule of its argument */
};

/* The built-in verbs, in RFC order, ended by a row with a NULL name. */
extern const struct verb verbs_table[];

/* The row of verb (len octets, any ASCII case), or NULL when it is not
 * built in. */
const struct verb *verbs_find(const char *verb, size_t len);
/* The flags of verb (len octets, any case); 0 when not built in. */
int verbs_flags(const char *verb, size_t len);
/* The verb of event name "pop3d_cmd_VERB", or NULL for any other name. */
const char *verbs_of_event(const char *name);

#endif
