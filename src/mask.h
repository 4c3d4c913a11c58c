/*
 * mask.h - the one rule for showing POP3 commands without their secrets,
 * and the one escaper for showing untrusted octets in a log or terminal.
 *
 * The rule goes by verb, whatever separates the verb from its argument
 * (any run of SP, TAB, CR, LF, VT or FF, as line_parse splits it):
 *
 *	PASS	the whole argument is hidden:		PASS ****
 *	APOP	the user name is shown, the digest is hidden:	APOP bob ****
 *	AUTH	the mechanism is shown, an initial response is hidden:
 *							AUTH PLAIN ****
 *
 * Verbs are matched without regard to ASCII case.  Among events,
 * pop3d_cmd_pass, pop3d_cmd_apop and pop3d_cmd_auth follow their verb
 * for argument 1 (the command's argument) and hide any further string;
 * every string of pop3d_auth_data but the first (the client id) is hidden.
 *
 * Pure C with no library dependency: compiled into the core, into the
 * plugins and into pop3ctl.
 */
#ifndef POP3D_MASK_H
#define POP3D_MASK_H

#include <stddef.h>

/* What a secret-bearing argument shows. */
enum mask_rule {
	MASK_NONE = 0, /* nothing secret: shown whole */
	MASK_ALL,      /* hidden whole (PASS, SASL data) */
	MASK_WORD      /* first word shown, the rest hidden (APOP, AUTH) */
};

/* How mask_escape writes what is not shown as it is. */
enum mask_style {
	/* key="value" logs: printable ASCII but " and \ kept, every other
	 * octet \xNN, so a client can neither forge a field nor reach a
	 * terminal. */
	MASK_LOG = 0,
	/* "..." strings (eventlog): \" and \\, C0 controls and DEL \xNN,
	 * octets 0x80 and above kept but the UTF-8 forms of the C1 controls
	 * (c2 80 to c2 9f), written \xc2\xNN. */
	MASK_QUOTED = 1,
	/* TAB-separated text (pop3ctl --format text): \\ \t \n \r \0, other
	 * C0 controls and DEL \xNN, octets 0x80 and above as MASK_QUOTED. */
	MASK_TEXT = 2
};
#define MASK_STYLE 0x0f /* the mask_style bits of a style argument */
#define MASK_CUT 0x10	/* mask_escape: end a cut result with "..." */

/* What stands for hidden octets. */
#define MASK_HIDDEN "****"

/* The rule of a verb of len octets (any case). */
int mask_verb_secret(const char *verb, size_t len);
/* The rule of the command argument (argument 1) of event name. */
int mask_event_secret(const char *name);
/* The rule of argument i of event name: argument 0 (the client id) is
 * shown, 1 follows mask_event_secret, later ones of a secret event are
 * hidden. */
int mask_event_arg(const char *name, int i);
/* How many leading octets of arg may be shown under rule: len when
 * nothing is hidden. */
size_t mask_visible(int rule, const char *arg, size_t len);
/* The masked argument, unescaped: the visible octets, then " ****" (or
 * "****" when nothing is visible) if anything was hidden.  Writes at most
 * size octets with the NUL, never cutting the marker; returns the length. */
size_t mask_plain(char *dst, size_t size, int rule, const char *arg, size_t len);
/* The same, escaped in style (a mask_style, with MASK_CUT implied): the
 * visible part is cut with "..." to leave room for the marker. */
size_t mask_arg(char *dst, size_t size, int rule, const char *arg, size_t len, int style);
/* A raw command line as it may be shown: leading and trailing white space
 * dropped, the verb as typed, one space, the argument under the verb's
 * rule; escaped in style and cut with "..." to fit size.  Returns the
 * length written. */
size_t mask_line(char *dst, size_t size, const char *line, size_t len, int style);
/* Escape len octets of s into dst (size octets with the NUL, which is
 * always written when size > 0) in style, never splitting an escape.
 * Returns how many octets of s were used; with MASK_CUT in style a result
 * that does not take all of s ends with "...". */
size_t mask_escape(char *dst, size_t size, const char *s, size_t len, int style);

#endif
