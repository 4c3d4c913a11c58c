/* mask.c - show POP3 commands without their secrets; escape untrusted octets. */
#include "config.h"

#include <string.h>

#include "mask.h"
#include "verbs.h"

/* The white space line_parse splits on: the same set, or a verb could be
 * told apart from its argument differently here than in the core. */
static int
mask_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* The rule of a verb of len octets (any case). */
int
mask_verb_secret(const char *verb, size_t len)
{
	const struct verb *v = verbs_find(verb, len);

	return v != NULL ? v->mask : MASK_NONE;
}

/* The rule of the command argument (argument 1) of event name. */
int
mask_event_secret(const char *name)
{
	const char *verb;

	if (name == NULL)
		return MASK_NONE;
	if (strcmp(name, "pop3d_auth_data") == 0)
		return MASK_ALL;
	if ((verb = verbs_of_event(name)) == NULL)
		return MASK_NONE;
	return mask_verb_secret(verb, strlen(verb));
}

/* The rule of argument i of event name. */
int
mask_event_arg(const char *name, int i)
{
	int rule;

	if (i <= 0 || (rule = mask_event_secret(name)) == MASK_NONE)
		return MASK_NONE;
	return i == 1 ? rule : MASK_ALL;
}

/* How many leading octets of arg may be shown under rule. */
size_t
mask_visible(int rule, const char *arg, size_t len)
{
	size_t i = 0, vis;

	if (arg == NULL || len == 0 || rule == MASK_NONE)
		return len;
	if (rule == MASK_WORD) {
		while (i < len && mask_isspace(arg[i]))
			i++;
		while (i < len && !mask_isspace(arg[i]))
			i++;
		vis = i;
		/* White space alone after the word hides nothing. */
		while (i < len && mask_isspace(arg[i]))
			i++;
		return i == len ? len : vis;
	}
	return 0;
}

/* The marker that follows vis shown octets of an argument of len octets;
 * *tail is its length.  0 when dst (size octets) cannot hold it: dst is
 * then emptied (a cut marker would look like a shown secret). */
static const char *
mask_marker(char *dst, size_t size, size_t vis, size_t len, size_t *tail)
{
	const char *marker = vis == len ? "" : vis > 0 ? " " MASK_HIDDEN : MASK_HIDDEN;

	*tail = strlen(marker);
	if (size <= *tail) {
		if (size > 0)
			dst[0] = '\0';
		return NULL;
	}
	return marker;
}

/* The masked argument, unescaped, in at most size octets. */
size_t
mask_plain(char *dst, size_t size, int rule, const char *arg, size_t len)
{
	size_t vis = mask_visible(rule, arg, len), tail, n;
	const char *marker = mask_marker(dst, size, vis, len, &tail);

	if (marker == NULL)
		return 0;
	n = vis < size - 1 - tail ? vis : size - 1 - tail;
	if (n > 0)
		memcpy(dst, arg, n);
	memcpy(dst + n, marker, tail + 1);
	return n + tail;
}

/*
 * One unit of s at i escaped in style into out (at least 9 octets): its
 * length is returned in *olen, the number of octets of s it takes (1, or 2
 * for the UTF-8 form of a C1 control) is the result.
 */
static size_t
mask_escape_one(const char *s, size_t i, size_t len, int style, char *out, size_t *olen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c = (unsigned char)s[i], c2;
	char sh = 0;

	if (style == MASK_TEXT)
		sh = c == '\\' ? '\\' :
		    c == '\t'  ? 't' :
		    c == '\n'  ? 'n' :
		    c == '\r'  ? 'r' :
		    c == '\0'  ? '0' :
				 0;
	else if (style == MASK_QUOTED)
		sh = c == '\\' || c == '"' ? (char)c : 0;
	if (sh != 0) {
		out[0] = '\\';
		out[1] = sh;
		*olen = 2;
		return 1;
	}
	if (c >= 0x20 && c < 0x7f && (style != MASK_LOG || (c != '"' && c != '\\'))) {
		out[0] = (char)c;
		*olen = 1;
		return 1;
	}
	if (c >= 0x80 && style != MASK_LOG) {
		c2 = i + 1 < len ? (unsigned char)s[i + 1] : 0;
		if (c != 0xc2 || c2 < 0x80 || c2 > 0x9f) {
			out[0] = (char)c;
			*olen = 1;
			return 1;
		}
		memcpy(out, "\\xc2\\x", 6);
		out[6] = hex[c2 >> 4];
		out[7] = hex[c2 & 0xf];
		*olen = 8;
		return 2;
	}
	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[c >> 4];
	out[3] = hex[c & 0xf];
	*olen = 4;
	return 1;
}

/* Escape len octets of s into dst in style; returns the octets of s used. */
size_t
mask_escape(char *dst, size_t size, const char *s, size_t len, int style)
{
	char unit[9];
	size_t i = 0, o = 0, icut = 0, ocut = 0, ulen, used;
	int cut = (style & MASK_CUT) != 0;

	style &= MASK_STYLE;
	if (size == 0)
		return 0;
	while (s != NULL && i < len) {
		used = mask_escape_one(s, i, len, style, unit, &ulen);
		if (o + ulen > size - 1)
			break;
		memcpy(dst + o, unit, ulen);
		o += ulen;
		i += used;
		/* The last place that still leaves room for "...". */
		if (o + 3 <= size - 1) {
			icut = i;
			ocut = o;
		}
	}
	if (s != NULL && i < len && cut) {
		i = icut;
		o = ocut;
		if (o + 3 <= size - 1) {
			memcpy(dst + o, "...", 3);
			o += 3;
		}
	}
	dst[o] = '\0';
	return i;
}

/* The masked argument escaped in style, the marker never cut. */
size_t
mask_arg(char *dst, size_t size, int rule, const char *arg, size_t len, int style)
{
	size_t vis = mask_visible(rule, arg, len), tail, n;
	const char *marker = mask_marker(dst, size, vis, len, &tail);

	if (marker == NULL)
		return 0;
	mask_escape(dst, size - tail, arg, vis, (style & MASK_STYLE) | MASK_CUT);
	n = strlen(dst);
	memcpy(dst + n, marker, tail + 1);
	return n + tail;
}

/* A raw command line as it may be shown, in at most size octets. */
size_t
mask_line(char *dst, size_t size, const char *line, size_t len, int style)
{
	size_t i = 0, v, vlen, o;

	if (size == 0)
		return 0;
	dst[0] = '\0';
	if (line == NULL)
		return 0;
	while (len > 0 && mask_isspace(line[len - 1]))
		len--;
	while (i < len && mask_isspace(line[i]))
		i++;
	for (v = i; i < len && !mask_isspace(line[i]); i++)
		;
	vlen = i - v;
	while (i < len && mask_isspace(line[i]))
		i++;
	style = (style & MASK_STYLE) | MASK_CUT;
	/* The verb is shown whole or cut: it is never secret. */
	if (mask_escape(dst, size, line + v, vlen, style) < vlen || i == len)
		return strlen(dst);
	o = strlen(dst);
	if (o + 2 > size - 1)
		return o;
	dst[o++] = ' ';
	return o +
	    mask_arg(dst + o, size - o, mask_verb_secret(line + v, vlen), line + i, len - i, style);
}
