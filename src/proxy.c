/* proxy.c - PROXY protocol header parser and CIDR matching. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

static const unsigned char proxy_v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
	0x55, 0x49, 0x54, 0x0A };

/* A decimal port 0-65535 without sign or leading zeros (v1 grammar). */
static int
proxy_port(const char *s)
{
	long v = 0;
	size_t i;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0') || strlen(s) > 5)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v > 65535 ? -1 : (int)v;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n" or "PROXY UNKNOWN ...\r\n". */
static int
proxy_parse_v1(const unsigned char *buf, size_t len, struct proxy_result *r)
{
	char line[108], *f[7], *save = NULL, *tok;
	const unsigned char *crlf;
	size_t n, max = len < 107 ? len : 107;
	unsigned char tmp[16];
	int nf = 0;

	crlf = NULL;
	for (n = 0; n + 1 < max; n++)
		if (buf[n] == '\r' && buf[n + 1] == '\n') {
			crlf = buf + n;
			break;
		}
	if (crlf == NULL)
		return len >= 107 ? -1 : 0;
	n = (size_t)(crlf - buf);
	memcpy(line, buf, n);
	line[n] = '\0';
	if (memchr(line, '\0', n) != NULL)
		return -1;
	for (tok = strtok_r(line, " ", &save); tok != NULL && nf < 7;
	     tok = strtok_r(NULL, " ", &save))
		f[nf++] = tok;
	if (nf < 2 || strcmp(f[0], "PROXY") != 0)
		return -1;
	memset(r, 0, sizeof(*r));
	if (strcmp(f[1], "UNKNOWN") == 0) {
		r->local = 1;
		return (int)n + 2;
	}
	if (nf != 6)
		return -1;
	if (strcmp(f[1], "TCP4") == 0)
		r->family = AF_INET;
	else if (strcmp(f[1], "TCP6") == 0)
		r->family = AF_INET6;
	else
		return -1;
	if (inet_pton(r->family, f[2], tmp) != 1 || inet_pton(r->family, f[3], tmp) != 1 ||
	    (r->src_port = proxy_port(f[4])) < 0 || (r->dst_port = proxy_port(f[5])) < 0)
		return -1;
	snprintf(r->src, sizeof(r->src), "%s", f[2]);
	snprintf(r->dst, sizeof(r->dst), "%s", f[3]);
	return (int)n + 2;
}

static int
proxy_parse_v2(const unsigned char *buf, size_t len, struct proxy_result *r)
{
	size_t hlen;
	unsigned char ver_cmd, fam;

	if (len < 16)
		return 0;
	ver_cmd = buf[12];
	fam = buf[13];
	hlen = ((size_t)buf[14] << 8) | buf[15];
	if ((ver_cmd & 0xF0) != 0x20 || 16 + hlen > PROXY_MAX_HEADER)
		return -1;
	if (len < 16 + hlen)
		return 0;
	memset(r, 0, sizeof(*r));
	switch (ver_cmd & 0x0F) {
	case 0x0: /* LOCAL: health checks; keep our addresses */
		r->local = 1;
		return (int)(16 + hlen);
	case 0x1: /* PROXY */
		break;
	default:
		return -1;
	}
	switch (fam) {
	case 0x11: /* TCP over IPv4 */
		if (hlen < 12)
			return -1;
		r->family = AF_INET;
		inet_ntop(AF_INET, buf + 16, r->src, sizeof(r->src));
		inet_ntop(AF_INET, buf + 20, r->dst, sizeof(r->dst));
		r->src_port = (buf[24] << 8) | buf[25];
		r->dst_port = (buf[26] << 8) | buf[27];
		break;
	case 0x21: /* TCP over IPv6 */
		if (hlen < 36)
			return -1;
		r->family = AF_INET6;
		inet_ntop(AF_INET6, buf + 16, r->src, sizeof(r->src));
		inet_ntop(AF_INET6, buf + 32, r->dst, sizeof(r->dst));
		r->src_port = (buf[48] << 8) | buf[49];
		r->dst_port = (buf[50] << 8) | buf[51];
		break;
	case 0x00: /* UNSPEC */
		r->local = 1;
		break;
	default:
		return -1; /* UDP, unix sockets: not for POP3 */
	}
	return (int)(16 + hlen);
}

int
proxy_parse(const unsigned char *buf, size_t len, struct proxy_result *r)
{
	size_t k = len < 12 ? len : 12;

	if (len == 0)
		return 0;
	if (memcmp(buf, proxy_v2_sig, k) == 0)
		return len < 12 ? 0 : proxy_parse_v2(buf, len, r);
	k = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", k) != 0)
		return -1;
	return len < 6 ? 0 : proxy_parse_v1(buf, len, r);
}

int
proxy_cidr_parse(const char *s, struct proxy_cidr *c)
{
	char buf[80], *slash;
	unsigned long bits;
	char *end;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	memset(c, 0, sizeof(*c));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		c->bits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		c->bits = 128;
	} else
		return -1;
	if (slash != NULL) {
		bits = strtoul(slash, &end, 10);
		if (*slash == '\0' || *end != '\0' || bits > c->bits)
			return -1;
		c->bits = (unsigned)bits;
	}
	return 0;
}

/* Compare the first bits of a and b. */
static int
proxy_prefix(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xFF << (8 - rest))) == 0;
}

int
proxy_cidr_match(const struct proxy_cidr *list, size_t n, const struct sockaddr *sa)
{
	unsigned char a4[4], a6[16];
	int is4 = 0, is6 = 0;
	size_t i;

	if (sa->sa_family == AF_INET) {
		memcpy(a4, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		is4 = 1;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(a6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		is6 = 1;
		/* IPv4-mapped: also match IPv4 entries. */
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)a6)) {
			memcpy(a4, a6 + 12, 4);
			is4 = 1;
		}
	}
	for (i = 0; i < n; i++) {
		if (list[i].family == AF_INET && is4 &&
		    proxy_prefix(list[i].addr, a4, list[i].bits))
			return 1;
		if (list[i].family == AF_INET6 && is6 &&
		    proxy_prefix(list[i].addr, a6, list[i].bits))
			return 1;
	}
	return 0;
}
