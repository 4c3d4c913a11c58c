/* ctl_util.c - pop3ctl helpers for every layer: messages, memory, numbers, JSON, lines. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base64.h"
#include "pop3ctl.h"

/* Print "pop3ctl: MESSAGE" on stderr. */
void __attribute__((format(printf, 1, 2))) ctlutil_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("pop3ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Print a usage error and the synopsis; returns POP3CTL_USAGE. */
int __attribute__((format(printf, 1, 2))) ctlutil_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("pop3ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'pop3ctl -h' for help.\n", stderr);
	return POP3CTL_USAGE;
}

/* malloc that reports failure. */
void *
ctlutil_alloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		ctlutil_warn("out of memory");
	return p;
}

/* Parse a decimal integer in [min, max]; 0 on success, -1 otherwise. */
int
ctlutil_number(const char *s, long long min, long long max, long long *out)
{
	long long v;
	char *end;

	if (!((s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Whether s is an integer in canonical decimal form ("-?(0|[1-9][0-9]*)"). */
int
ctlutil_canonical_int(const char *s, long long *out)
{
	const char *p = s[0] == '-' ? s + 1 : s;

	if (*p == '\0' || (p[0] == '0' && p[1] != '\0') || p[strspn(p, "0123456789")] != '\0')
		return 0;
	return ctlutil_number(s, -0x7fffffffffffffffLL - 1, 0x7fffffffffffffffLL, out) == 0;
}

/* Set obj[key] to the bytes as a JSON string, or obj[b64key] to their
 * base64 when they are not UTF-8.  0, or -1 when out of memory. */
int
ctlutil_set_bytes(json_t *obj, const char *key, const char *b64key, const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	char *enc;

	if (j != NULL)
		return json_object_set_new(obj, key, j);
	if (b64key == NULL || (enc = base64_encode(s, len)) == NULL)
		return -1;
	j = json_string(enc);
	free(enc);
	return json_object_set_new(obj, b64key, j);
}

/* Set obj[key] to a string argument that must be UTF-8; -1 if it is not. */
int
ctlutil_set_utf8(json_t *obj, const char *key, const char *s, const char *what)
{
	json_t *j = json_string(s);

	if (j == NULL) {
		ctlutil_warn("%s is not valid UTF-8", what);
		return -1;
	}
	return json_object_set_new(obj, key, j);
}

/* Lines as {"lines":[...]} or, when one is not UTF-8, {"lines_b64":[...]}. */
int
ctlutil_set_lines(json_t *obj, char **lines, const size_t *lens, size_t n)
{
	json_t *a = json_array(), *j;
	size_t i;
	int b64 = 0;
	char *enc;

	if (a == NULL)
		return -1;
	for (i = 0; i < n && !b64; i++) {
		if ((j = json_stringn(lines[i], lens[i])) == NULL)
			b64 = 1;
		else if (json_array_append_new(a, j) == -1)
			goto fail;
	}
	if (b64) {
		json_array_clear(a);
		for (i = 0; i < n; i++) {
			if ((enc = base64_encode(lines[i], lens[i])) == NULL)
				goto fail;
			j = json_string(enc);
			free(enc);
			if (json_array_append_new(a, j) == -1)
				goto fail;
		}
	}
	return json_object_set_new(obj, b64 ? "lines_b64" : "lines", a);
fail:
	json_decref(a);
	return -1;
}

/* Free a vector of n lines and their lengths. */
void
ctlutil_free_lines(char **lines, size_t *lens, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(lens);
}

/* Append one line to a growing vector; 0, or -1 when out of memory. */
static int
ctlutil_push_line(char ***lines, size_t **lens, size_t *n, size_t *cap, const char *s, size_t len)
{
	char *copy;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (*n == *cap) {
		/* Doubling: appending n lines costs O(n) copies in all. */
		size_t ncap = *cap == 0 ? 16 : *cap * 2;
		char **nl = realloc(*lines, ncap * sizeof(**lines));
		size_t *nn;

		if (nl == NULL) {
			ctlutil_warn("out of memory");
			return -1;
		}
		*lines = nl;
		if ((nn = realloc(*lens, ncap * sizeof(**lens))) == NULL) {
			ctlutil_warn("out of memory");
			return -1;
		}
		*lens = nn;
		*cap = ncap;
	}
	if ((copy = ctlutil_alloc(len + 1)) == NULL)
		return -1;
	memcpy(copy, s, len);
	copy[len] = '\0';
	(*lines)[*n] = copy;
	(*lens)[(*n)++] = len;
	return 0;
}

/* Split text into lines at LF (a final LF ends the last line; CR before LF
 * dropped); 0, or -1 when out of memory. */
int
ctlutil_split_lines(const char *text, size_t len, char ***lines, size_t **lens, size_t *n)
{
	size_t cap = 0, pos = 0;
	const char *nl;

	*lines = NULL;
	*lens = NULL;
	*n = 0;
	while (pos < len) {
		size_t l;

		nl = memchr(text + pos, '\n', len - pos);
		l = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		if (ctlutil_push_line(lines, lens, n, &cap, text + pos, l) == -1) {
			ctlutil_free_lines(*lines, *lens, *n);
			*lines = NULL;
			*lens = NULL;
			*n = 0;
			return -1;
		}
		pos += l + 1;
	}
	return 0;
}
