/* check_base64.c - Base64 (src/base64.c): RFC 4648 vectors, strict decoding. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "suite.h"

/* RFC 4648, section 10, and octets that are not text. */
static const struct pair {
	const char *plain;
	size_t len;
	const char *enc;
} pairs[] = {
	{ "", 0, "" },
	{ "f", 1, "Zg==" },
	{ "fo", 2, "Zm8=" },
	{ "foo", 3, "Zm9v" },
	{ "foob", 4, "Zm9vYg==" },
	{ "fooba", 5, "Zm9vYmE=" },
	{ "foobar", 6, "Zm9vYmFy" },
	{ "\0", 1, "AA==" },
	{ "a\0b", 3, "YQBi" },
	{ "\xff\xfe\xfd", 3, "//79" },
	{ "\xfb\xff", 2, "+/8=" },
};

START_TEST(test_pair)
{
	const struct pair *p = &pairs[_i];
	char *s, buf[16];
	long n;

	ck_assert_uint_eq(BASE64_LEN(p->len), strlen(p->enc));
	s = base64_encode(p->plain, p->len);
	ck_assert_str_eq(s, p->enc);
	free(s);
	ck_assert_ptr_eq(base64_put(buf, p->plain, p->len), buf + strlen(p->enc));
	ck_assert_int_eq(memcmp(buf, p->enc, strlen(p->enc)), 0);
	n = base64_decode(p->enc, strlen(p->enc), &s);
	ck_assert_int_eq(n, (long)p->len);
	ck_assert_int_eq(memcmp(s, p->plain, p->len), 0);
	ck_assert_int_eq(s[n], '\0');
	free(s);
}
END_TEST

/* What a strict decoder refuses: every one is -1 with *out NULL. */
static const struct bad {
	const char *in;
	size_t len;
} bads[] = {
	/* Not a multiple of four. */
	{ "Zm9", 3 },
	{ "Zm9vY", 5 },
	/* Outside the alphabet (the URL-safe one is another encoding). */
	{ "Zm!v", 4 },
	{ "Zm9v\n", 5 },
	{ "Zm 9", 4 },
	{ "-_8=", 4 },
	/* Pad bits not zero. */
	{ "Zh==", 4 },
	{ "Zm9=", 4 },
	/* Three pad characters; padding anywhere but the end. */
	{ "Z===", 4 },
	{ "Zg==Zm8=", 8 },
	{ "=Zm9", 4 },
	/* NUL inside. */
	{ "Zm\0v", 4 },
};

START_TEST(test_bad)
{
	char *s = (char *)1;

	ck_assert_int_eq(base64_decode(bads[_i].in, bads[_i].len, &s), -1);
	ck_assert_ptr_null(s);
}
END_TEST

/* Every length from 0 to 300 and every octet value survive a round trip. */
START_TEST(test_round_trip)
{
	char in[300], *enc, *out;
	size_t len, i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (char)(i * 7 + 3);
	for (len = 0; len <= sizeof(in); len++) {
		enc = base64_encode(in, len);
		ck_assert_uint_eq(strlen(enc), BASE64_LEN(len));
		ck_assert_int_eq(base64_decode(enc, strlen(enc), &out), (long)len);
		ck_assert_int_eq(memcmp(in, out, len), 0);
		free(enc);
		free(out);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("base64");
	TCase *tc = tcase_create("base64");

	tcase_add_loop_test(tc, test_pair, 0, sizeof(pairs) / sizeof(pairs[0]));
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bads) / sizeof(bads[0]));
	tcase_add_test(tc, test_round_trip);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
