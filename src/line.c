/* line.c - POP3 line framer and tokenizer. */
#include "config.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "line.h"

const char *const line_verbs[] = {
	"user", "pass", "apop", "stat", "list", "retr", "dele", "noop", "rset",
	"top", "uidl", "quit", "capa", "stls", "auth", "utf8", "lang", NULL
};

void
line_init(struct line_framer *lf)
{
	lf->discarding = 0;
}

/* Extract one line, enforcing the limit before the line end has arrived. */
enum line_status
line_extract(struct line_framer *lf, struct evbuffer *in, size_t max, char *buf, size_t *len)
{
	size_t avail, limit, n;
	unsigned char *data, *nl;
	struct evbuffer_ptr p;

	for (;;) {
		avail = evbuffer_get_length(in);
		if (avail == 0)
			return LINE_AGAIN;
		if (lf->discarding) {
			p = evbuffer_search(in, "\n", 1, NULL);
			if (p.pos < 0) {
				evbuffer_drain(in, avail);
				return LINE_AGAIN;
			}
			evbuffer_drain(in, (size_t)p.pos + 1);
			lf->discarding = 0;
			continue;
		}
		limit = avail < max ? avail : max;
		data = evbuffer_pullup(in, (ev_ssize_t)limit);
		if (data == NULL)
			return LINE_AGAIN;
		nl = memchr(data, '\n', limit);
		if (nl == NULL) {
			if (avail < max)
				return LINE_AGAIN;
			/* Over the limit with no line end: cut here. */
			evbuffer_drain(in, max);
			lf->discarding = 1;
			return LINE_TOOLONG;
		}
		n = (size_t)(nl - data);
		memcpy(buf, data, n);
		evbuffer_drain(in, n + 1);
		if (n > 0 && buf[n - 1] == '\r')
			n--;
		*len = n;
		if (memchr(buf, '\0', n) != NULL)
			return LINE_NUL;
		return LINE_OK;
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
		cmd->verb[v] = (char)tolower((unsigned char)line[i]);
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

/* Look verb up in the built-in table and in extra. */
int
line_verb_known(const char *verb, const char *const *extra)
{
	const char *const *v;

	for (v = line_verbs; *v != NULL; v++)
		if ((*v)[0] == verb[0] && strcmp(*v, verb) == 0)
			return 1;
	if (extra != NULL)
		for (v = extra; *v != NULL; v++)
			if (strcasecmp(*v, verb) == 0)
				return 1;
	return 0;
}
