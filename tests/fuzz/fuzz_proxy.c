/*
 * fuzz_proxy.c - libFuzzer target for the PROXY protocol v1/v2 header
 * parser and the trusted-peer CIDR list (src/proxy.c).
 *
 * The whole input is a connection's first octets.  proxy_parse() is called
 * on every prefix of it, as a client's input arrives octet by octet: the
 * answers must be "need more" (0) for a while and then settle for good,
 * either on one header length n (with the same result for every longer
 * prefix) or on -1 (not a header).  A parsed header must be sane (family,
 * printable addresses that inet_pton() takes back, ports in range) and must
 * survive re-encoding: as a v1 line and as a v2 block it parses to the same
 * addresses and ports.
 *
 * The input's first line (up to LF or NUL, at most 99 octets) is also tried
 * as a CIDR; when proxy_cidr_parse() takes it, proxy_cidr_match() is checked
 * against a reference prefix match on the network address, its neighbours
 * and addresses made from the input, as IPv4, IPv6 and IPv4-mapped IPv6.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_proxy: check failed at %s:%d: %s\n", __FILE__, \
			    __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* Beyond this the parser must have decided anyway. */
#define MAX_INPUT 1024

static const unsigned char v2sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
	0x54, 0x0A };

static int
same_result(const struct proxy_result *a, const struct proxy_result *b)
{
	if (a->local != b->local)
		return 0;
	if (a->local)
		return 1;
	return a->family == b->family && strcmp(a->src, b->src) == 0 &&
	    strcmp(a->dst, b->dst) == 0 && a->src_port == b->src_port && a->dst_port == b->dst_port;
}

/* The same address, whatever its spelling ("::FFFF:1.2.3.4", "::1"). */
static void
check_same_addr(int family, const char *a, const char *b)
{
	unsigned char x[16], y[16];

	CHECK(inet_pton(family, a, x) == 1);
	CHECK(inet_pton(family, b, y) == 1);
	CHECK(memcmp(x, y, family == AF_INET ? 4 : 16) == 0);
}

static void
check_sane(const struct proxy_result *r)
{
	unsigned char bin[16];

	if (r->local)
		return;
	CHECK(r->family == AF_INET || r->family == AF_INET6);
	CHECK(memchr(r->src, '\0', sizeof(r->src)) != NULL);
	CHECK(memchr(r->dst, '\0', sizeof(r->dst)) != NULL);
	CHECK(inet_pton(r->family, r->src, bin) == 1);
	CHECK(inet_pton(r->family, r->dst, bin) == 1);
	CHECK(r->src_port >= 0 && r->src_port <= 65535);
	CHECK(r->dst_port >= 0 && r->dst_port <= 65535);
}

/* Re-encode r as v1 and as v2 and parse both back. */
static void
check_reencode(const struct proxy_result *r)
{
	unsigned char buf[128], s[16], d[16];
	struct proxy_result q;
	size_t alen;
	int n, len;

	if (r->local)
		return;
	len = snprintf((char *)buf, sizeof(buf), "PROXY %s %s %s %d %d\r\n",
	    r->family == AF_INET ? "TCP4" : "TCP6", r->src, r->dst, r->src_port, r->dst_port);
	CHECK(len > 0 && len <= 107);
	n = proxy_parse(buf, (size_t)len, &q);
	CHECK(n == len);
	CHECK(same_result(r, &q));

	alen = r->family == AF_INET ? 4 : 16;
	CHECK(inet_pton(r->family, r->src, s) == 1);
	CHECK(inet_pton(r->family, r->dst, d) == 1);
	memcpy(buf, v2sig, 12);
	buf[12] = 0x21;
	buf[13] = r->family == AF_INET ? 0x11 : 0x21;
	buf[14] = 0;
	buf[15] = (unsigned char)(2 * alen + 4);
	memcpy(buf + 16, s, alen);
	memcpy(buf + 16 + alen, d, alen);
	buf[16 + 2 * alen] = (unsigned char)(r->src_port >> 8);
	buf[17 + 2 * alen] = (unsigned char)r->src_port;
	buf[18 + 2 * alen] = (unsigned char)(r->dst_port >> 8);
	buf[19 + 2 * alen] = (unsigned char)r->dst_port;
	len = (int)(20 + 2 * alen);
	n = proxy_parse(buf, (size_t)len, &q);
	CHECK(n == len);
	CHECK(!q.local && q.family == r->family);
	check_same_addr(r->family, r->src, q.src);
	check_same_addr(r->family, r->dst, q.dst);
	CHECK(q.src_port == r->src_port && q.dst_port == r->dst_port);
}

static void
check_parse(const uint8_t *data, size_t size)
{
	struct proxy_result r, first;
	size_t l;
	int n, settled = 0; /* 0 need more, else the final answer */

	memset(&first, 0, sizeof(first));
	for (l = 0; l <= size; l++) {
		memset(&r, 0xA5, sizeof(r));
		n = proxy_parse(data, l, &r);
		CHECK(n >= -1 && (n <= 0 || (size_t)n <= l));
		CHECK(n <= PROXY_MAX_HEADER);
		if (settled == 0) {
			if (n == 0) {
				/* Undecided is only allowed while a header may
				 * still fit. */
				CHECK(l < PROXY_MAX_HEADER);
				continue;
			}
			settled = n;
			if (n > 0) {
				check_sane(&r);
				check_reencode(&r);
				first = r;
			}
			continue;
		}
		/* Decided: more input changes nothing. */
		CHECK(n == settled);
		if (n > 0)
			CHECK(same_result(&r, &first));
	}
}

/* Reference: the first bits of a and b agree. */
static int
ref_prefix(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned i;

	for (i = 0; i < bits; i++) {
		unsigned m = 0x80u >> (i % 8);

		if ((a[i / 8] & m) != (b[i / 8] & m))
			return 0;
	}
	return 1;
}

static int
match_addr(const struct proxy_cidr *c, int family, const unsigned char *a)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (family == AF_INET) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, a, 4);
		return proxy_cidr_match(c, 1, (struct sockaddr *)&sin);
	}
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	memcpy(&sin6.sin6_addr, a, 16);
	return proxy_cidr_match(c, 1, (struct sockaddr *)&sin6);
}

static void
check_addr(const struct proxy_cidr *c, const unsigned char *a16)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };
	unsigned char m[16];

	if (c->family == AF_INET) {
		CHECK(match_addr(c, AF_INET, a16) == ref_prefix(c->addr, a16, c->bits));
		/* The same address, IPv4-mapped: the same answer. */
		memcpy(m, mapped, 12);
		memcpy(m + 12, a16, 4);
		CHECK(match_addr(c, AF_INET6, m) == ref_prefix(c->addr, a16, c->bits));
		/* An IPv6 address that is not mapped never matches IPv4. */
		if (memcmp(a16, mapped, 12) != 0)
			CHECK(match_addr(c, AF_INET6, a16) == 0);
	} else {
		CHECK(match_addr(c, AF_INET6, a16) == ref_prefix(c->addr, a16, c->bits));
		CHECK(match_addr(c, AF_INET, a16) == 0);
	}
}

static void
check_cidr(const uint8_t *data, size_t size)
{
	struct proxy_cidr c, two[2];
	struct fake_un {
		sa_family_t f;
		char p[108];
	} un;
	char s[100];
	unsigned char a[16];
	size_t n = 0, i;
	unsigned max;

	while (n < size && n < sizeof(s) - 1 && data[n] != '\n' && data[n] != '\0') {
		s[n] = (char)data[n];
		n++;
	}
	s[n] = '\0';
	memset(&c, 0xA5, sizeof(c));
	if (proxy_cidr_parse(s, &c) != 0)
		return;
	CHECK(c.family == AF_INET || c.family == AF_INET6);
	max = c.family == AF_INET ? 32 : 128;
	CHECK(c.bits <= max);
	if (strchr(s, '/') == NULL)
		CHECK(c.bits == max);

	/* The network address itself; with its first host bit flipped (still
	 * inside); with its last network bit flipped (outside). */
	memcpy(a, c.addr, 16);
	check_addr(&c, a);
	CHECK(match_addr(&c, c.family, a) == 1);
	if (c.bits < max) {
		a[c.bits / 8] ^= (unsigned char)(0x80u >> (c.bits % 8));
		check_addr(&c, a);
		CHECK(match_addr(&c, c.family, a) == 1);
	}
	if (c.bits > 0) {
		memcpy(a, c.addr, 16);
		a[(c.bits - 1) / 8] ^= (unsigned char)(0x80u >> ((c.bits - 1) % 8));
		check_addr(&c, a);
		CHECK(match_addr(&c, c.family, a) == 0);
	}
	/* Addresses made of the input's last octets. */
	for (i = 0; i + 16 <= size && i < 64; i += 16) {
		memcpy(a, data + size - 16 - i, 16);
		check_addr(&c, a);
	}
	/* A list of two: either entry may match. */
	two[0] = c;
	CHECK(proxy_cidr_parse(c.family == AF_INET ? "::/0" : "0.0.0.0/0", &two[1]) == 0);
	{
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		CHECK(
		    proxy_cidr_match(two, 2, (struct sockaddr *)&sin) == 1 || c.family == AF_INET);
	}
	/* A Unix-domain peer matches nothing. */
	memset(&un, 0, sizeof(un));
	un.f = AF_UNIX;
	CHECK(proxy_cidr_match(two, 2, (struct sockaddr *)&un) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_INPUT)
		size = MAX_INPUT;
	check_parse(data, size);
	check_cidr(data, size);
	return 0;
}
