/* verbs.c - the POP3 verb table (RFC 1939, 2449, 2595, 5034, 6856). */
#include "config.h"

#include <string.h>

#include "mask.h"
#include "verbs.h"

/* Every verb the core forwards without --extra-verbs. */
const struct verb verbs_table[] = {
	{ "user", 0, MASK_NONE },
	{ "pass", VERB_AUTH, MASK_ALL },
	{ "apop", VERB_AUTH, MASK_WORD },
	{ "stat", VERB_AHEAD, MASK_NONE },
	{ "list", VERB_AHEAD, MASK_NONE },
	{ "retr", VERB_AHEAD, MASK_NONE },
	{ "dele", VERB_AHEAD, MASK_NONE },
	{ "noop", VERB_AHEAD, MASK_NONE },
	{ "rset", VERB_AHEAD, MASK_NONE },
	{ "top", VERB_AHEAD, MASK_NONE },
	{ "uidl", VERB_AHEAD, MASK_NONE },
	{ "quit", VERB_AHEAD | VERB_QUIT, MASK_NONE },
	{ "capa", 0, MASK_NONE },
	{ "stls", VERB_STLS, MASK_NONE },
	{ "auth", VERB_AUTH | VERB_SASL, MASK_WORD },
	{ "utf8", 0, MASK_NONE },
	{ "lang", 0, MASK_NONE },
	{ NULL, 0, MASK_NONE },
};

/* The row of verb, matched without regard to ASCII case. */
const struct verb *
verbs_find(const char *verb, size_t len)
{
	const struct verb *v;
	size_t i;
	char c;

	if (verb == NULL || len == 0 || len > VERBS_MAX)
		return NULL;
	for (v = verbs_table; v->name != NULL; v++) {
		for (i = 0; i < len; i++) {
			c = verb[i];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c + ('a' - 'A'));
			if (v->name[i] != c)
				break;
		}
		if (i == len && v->name[len] == '\0')
			return v;
	}
	return NULL;
}

/* The flags of verb; 0 when it is not built in. */
int
verbs_flags(const char *verb, size_t len)
{
	const struct verb *v = verbs_find(verb, len);

	return v != NULL ? v->flags : 0;
}

/* The verb part of a "pop3d_cmd_VERB" event name. */
const char *
verbs_of_event(const char *name)
{
	static const char cmd[] = "pop3d_cmd_";

	if (name == NULL || strncmp(name, cmd, sizeof(cmd) - 1) != 0)
		return NULL;
	return name + sizeof(cmd) - 1;
}
