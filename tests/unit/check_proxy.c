/* check_proxy.c - PROXY v1/v2 header parser and CIDR matching, table-driven. */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy.h"
#include "suite.h"

struct v1_case {
	const char *in;
	int rv; /* -2: header length = strlen(in) */
	const char *src;
	int sport;
};

static const struct v1_case v1_cases[] = {
	{ "PROXY TCP4 192.0.2.1 198.51.100.1 12345 110\r\n", -2, "192.0.2.1", 12345 },
	{ "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", -2, "2001:db8::1", 1 },
	{ "PROXY UNKNOWN\r\n", -2, NULL, 0 },
	{ "PROXY UNKNOWN whatever follows\r\n", -2, NULL, 0 },
	{ "PROXY TCP4 192.0.2.1 198.51.100.1 12345 110\r\nUSER x\r\n", 45, "192.0.2.1", 12345 },
	{ "PROXY TCP4 192.0.2.1 198.51.100.1 12345", 0, NULL, 0 },
	{ "PROX", 0, NULL, 0 },
	{ "", 0, NULL, 0 },
	{ "PROXY TCP4 192.0.2.1 198.51.100.1 65536 110\r\n", -1, NULL, 0 },
	{ "PROXY TCP4 192.0.2.1 198.51.100.1 012 110\r\n", -1, NULL, 0 },
	{ "PROXY TCP4 2001:db8::1 198.51.100.1 1 1\r\n", -1, NULL, 0 },
	{ "PROXY TCP4 192.0.2.1 198.51.100.1 1\r\n", -1, NULL, 0 },
	{ "PROXY UDP4 192.0.2.1 198.51.100.1 1 1\r\n", -1, NULL, 0 },
	{ "USER bob\r\n", -1, NULL, 0 },
	{ "PROXY TCP4 1.1.1.1 1.1.1.1 1 1\n", 0, NULL, 0 },
};

START_TEST(test_v1)
{
	const struct v1_case *vc = &v1_cases[_i];
	struct proxy_result r;
	int want = vc->rv == -2 ? (int)strlen(vc->in) : vc->rv;
	int rv = proxy_parse((const unsigned char *)vc->in, strlen(vc->in), &r);

	ck_assert_msg(rv == want, "%s: got %d want %d", vc->in, rv, want);
	if (rv > 0 && vc->src != NULL) {
		ck_assert(!r.local);
		ck_assert_str_eq(r.src, vc->src);
		ck_assert_int_eq(r.src_port, vc->sport);
	} else if (rv > 0)
		ck_assert(r.local);
}
END_TEST

static size_t
v2(unsigned char *b, int cmd, int fam, const unsigned char *addrs, size_t alen)
{
	static const unsigned char sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55,
		0x49, 0x54, 0x0A };

	memcpy(b, sig, 12);
	b[12] = (unsigned char)(0x20 | cmd);
	b[13] = (unsigned char)fam;
	b[14] = (unsigned char)(alen >> 8);
	b[15] = (unsigned char)alen;
	memcpy(b + 16, addrs, alen);
	return 16 + alen;
}

START_TEST(test_v2)
{
	unsigned char b[600], a[36];
	struct proxy_result r;
	size_t n, k;

	memset(a, 0, sizeof(a));
	inet_pton(AF_INET, "203.0.113.9", a);
	inet_pton(AF_INET, "198.51.100.2", a + 4);
	a[8] = 0x15, a[9] = 0xB3, a[10] = 0, a[11] = 110;
	n = v2(b, 1, 0x11, a, 12);
	ck_assert_int_eq(proxy_parse(b, n, &r), (int)n);
	ck_assert_str_eq(r.src, "203.0.113.9");
	ck_assert_int_eq(r.src_port, 5555);
	ck_assert_str_eq(r.dst, "198.51.100.2");
	/* Every prefix is "need more". */
	for (k = 0; k < n; k++)
		ck_assert_int_eq(proxy_parse(b, k, &r), 0);
	/* LOCAL, UNSPEC: keep own addresses. */
	n = v2(b, 0, 0x00, a, 0);
	ck_assert_int_eq(proxy_parse(b, n, &r), 16);
	ck_assert(r.local);
	/* IPv6. */
	inet_pton(AF_INET6, "2001:db8::7", a);
	inet_pton(AF_INET6, "2001:db8::1", a + 16);
	a[32] = 0, a[33] = 1, a[34] = 0, a[35] = 2;
	n = v2(b, 1, 0x21, a, 36);
	ck_assert_int_eq(proxy_parse(b, n, &r), (int)n);
	ck_assert_str_eq(r.src, "2001:db8::7");
	/* Too short for the family, bad version, bad command, UDP, too long. */
	n = v2(b, 1, 0x11, a, 8);
	ck_assert_int_eq(proxy_parse(b, n, &r), -1);
	n = v2(b, 1, 0x11, a, 12);
	b[12] = 0x11;
	ck_assert_int_eq(proxy_parse(b, n, &r), -1);
	n = v2(b, 5, 0x11, a, 12);
	ck_assert_int_eq(proxy_parse(b, n, &r), -1);
	n = v2(b, 1, 0x12, a, 12);
	ck_assert_int_eq(proxy_parse(b, n, &r), -1);
	n = v2(b, 1, 0x11, a, 12);
	b[14] = 0x02; /* length 512 + 12 > PROXY_MAX_HEADER - 16 */
	ck_assert_int_eq(proxy_parse(b, n, &r), -1);
}
END_TEST

struct cidr_case {
	const char *cidr;
	int ok;
	const char *addr;
	int match;
};

static const struct cidr_case cidr_cases[] = {
	{ "127.0.0.1", 1, "127.0.0.1", 1 },
	{ "127.0.0.1", 1, "127.0.0.2", 0 },
	{ "10.0.0.0/8", 1, "10.200.1.1", 1 },
	{ "10.0.0.0/8", 1, "11.0.0.1", 0 },
	{ "192.168.4.0/22", 1, "192.168.7.255", 1 },
	{ "192.168.4.0/22", 1, "192.168.8.0", 0 },
	{ "0.0.0.0/0", 1, "203.0.113.1", 1 },
	{ "10.0.0.0/8", 1, "::ffff:10.1.2.3", 1 },
	{ "::1", 1, "::1", 1 },
	{ "2001:db8::/32", 1, "2001:db8:ffff::1", 1 },
	{ "2001:db8::/32", 1, "2001:db9::1", 0 },
	{ "10.0.0.0/33", 0, NULL, 0 },
	{ "nonsense", 0, NULL, 0 },
	{ "10.0.0.0/", 0, NULL, 0 },
	{ "::/129", 0, NULL, 0 },
};

START_TEST(test_cidr)
{
	const struct cidr_case *cc = &cidr_cases[_i];
	struct proxy_cidr c;
	struct sockaddr_storage ss;

	ck_assert_int_eq(proxy_cidr_parse(cc->cidr, &c) == 0, cc->ok);
	if (!cc->ok)
		return;
	memset(&ss, 0, sizeof(ss));
	if (strchr(cc->addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, cc->addr, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		inet_pton(AF_INET, cc->addr, &s4->sin_addr);
	}
	ck_assert_int_eq(proxy_cidr_match(&c, 1, (struct sockaddr *)&ss), cc->match);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("proxy");

	tcase_add_loop_test(tc, test_v1, 0, sizeof(v1_cases) / sizeof(v1_cases[0]));
	tcase_add_test(tc, test_v2);
	tcase_add_loop_test(tc, test_cidr, 0, sizeof(cidr_cases) / sizeof(cidr_cases[0]));
	suite_add_tcase(s, tc);
	return suite_run(s);
}
