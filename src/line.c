/* line.c - POP3 line framer and tokenizer. */
#include "config.h"

#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "line.h"
#include "verbs.h"

void
line_init(struct line_framer *lf)
{
	lf->discarding = 0;
}

/*
 * Extract one line from the *avail octets at *data, advancing both past
 * what was used.  The limit is enforced before the line end has arrived:
 * max octets without a line end are a LINE_TOOLONG, and the rest of that
 * line is discarded as it comes (lf->discarding).  LINE_AGAIN leaves the
 * octets of an incomplete line unused, for the caller to keep.
 */
enum line_status
line_extract_mem(struct line_framer *lf, const char **data, size_t *avail, size_t max, char *buf,
    size_t *len)
{
	const char *p, *nl;
	size_t n;

	for (;;) {
		p = *data;
		if (*avail == 0)
			return LINE_AGAIN;
		if (lf->discarding) {
			if ((nl = memchr(p, '\n', *avail)) == NULL) {
				*data += *avail;
				*avail = 0;
				return LINE_AGAIN;
			}
			n = (size_t)(nl - p) + 1;
			*data += n;
			*avail -= n;
			lf->discarding = 0;
			continue;
		}
		if ((nl = memchr(p, '\n', *avail < max ? *avail : max)) == NULL) {
			if (*avail < max)
				return LINE_AGAIN;
			/* Over the limit with no line end: cut here. */
			*data += max;
			*avail -= max;
			lf->discarding = 1;
			return LINE_TOOLONG;
		}
		n = (size_t)(nl - p);
		memcpy(buf, p, n);
		*data += n + 1;
		*avail -= n + 1;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
		*len = n;
		if (memchr(buf, '\0', n) != NULL)
			return LINE_NUL;
		return LINE_OK;
	}
}

/* The same from an evbuffer, drained of what was used. */
enum line_status
line_extract(struct line_framer *lf, struct evbuffer *in, size_t max, char *buf, size_t *len)
{
	size_t avail, limit;
	const char *data, *p;
	struct evbuffer_ptr pos;
	enum line_status st;

	for (;;) {
		avail = evbuffer_get_length(in);
		if (avail == 0)
			return LINE_AGAIN;
		if (lf->discarding) {
			/* Searched in place: the buffer may hold more than max. */
			pos = evbuffer_search(in, "\n", 1, NULL);
			if (pos.pos < 0) {
				evbuffer_drain(in, avail);
				return LINE_AGAIN;
			}
			evbuffer_drain(in, (size_t)pos.pos + 1);
			lf->discarding = 0;
			continue;
		}
		/* At most max octets are looked at, so that many are enough
		 * contiguous (and as many as there are decide LINE_AGAIN). */
		limit = avail < max ? avail : max;
		if ((p = data = (const char *)evbuffer_pullup(in, (ev_ssize_t)limit)) == NULL)
			return LINE_AGAIN;
		st = line_extract_mem(lf, &p, &limit, max, buf, len);
		evbuffer_drain(in, (size_t)(p - data));
		return st;
	}
}

static int
line_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trim, then split once on the first run of white space. */
int
line_parse(const char *line, size_t len, struct line_cmd *cmd)
{
	size_t i = 0, v;

	while (len > 0 && line_isspace(line[len - 1]))
		len--;
	while (i < len && line_isspace(line[i]))
		i++;
	if (i == len)
		return -1;
	for (v = 0; i < len && !line_isspace(line[i]); i++, v++) {
		if (v == LINE_VERB_MAX)
			return -1;
		/* ASCII only: verbs are ASCII, and tolower() follows the locale. */
		cmd->verb[v] =
		    line[i] >= 'A' && line[i] <= 'Z' ? (char)(line[i] + ('a' - 'A')) : line[i];
	}
	cmd->verb[v] = '\0';
	while (i < len && line_isspace(line[i]))
		i++;
	if (i < len) {
		cmd->arg = line + i;
		cmd->arglen = len - i;
	} else {
		cmd->arg = NULL;
		cmd->arglen = 0;
	}
	return 0;
}

/* Whether s holds no CR, LF or NUL. */
int
line_clean(const char *s, size_t len)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 0;
	return 1;
}

/* Look verb up in the verb table and in extra. */
int
line_verb_known(const char *verb, const char *const *extra)
{
	const char *const *v;

	if (verbs_find(verb, strlen(verb)) != NULL)
		return 1;
	if (extra != NULL)
		for (v = extra; *v != NULL; v++)
			if (strcasecmp(*v, verb) == 0)
				return 1;
	return 0;
}
