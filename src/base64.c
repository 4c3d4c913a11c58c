/* base64.c - Base64 encoding and strict decoding (RFC 4648, padded). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "base64.h"

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode len octets of in at o; returns the end of the text. */
char *
base64_put(char *o, const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		*o++ = base64_alphabet[p[i] >> 2];
		*o++ = base64_alphabet[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = base64_alphabet[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = base64_alphabet[p[i + 2] & 63];
	}
	if (i < len) {
		*o++ = base64_alphabet[p[i] >> 2];
		if (i + 1 < len) {
			*o++ = base64_alphabet[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
			*o++ = base64_alphabet[(p[i + 1] & 15) << 2];
		} else {
			*o++ = base64_alphabet[(p[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	return o;
}

/* The encoding of in as a malloc'd string. */
char *
base64_encode(const char *in, size_t len)
{
	char *out;

	if ((out = malloc(BASE64_LEN(len) + 1)) == NULL)
		return NULL;
	*base64_put(out, in, len) = '\0';
	return out;
}

/* Value of one base64 character, or -1. */
static int
base64_val(char c)
{
	const char *p;

	if (c == '\0' || (p = strchr(base64_alphabet, c)) == NULL)
		return -1;
	return (int)(p - base64_alphabet);
}

/* Decode padded base64 strictly; the length or -1. */
long
base64_decode(const char *in, size_t len, char **out)
{
	unsigned char *o;
	size_t i, k = 0, pad = 0;
	unsigned acc = 0;
	int v;

	*out = NULL;
	if (len % 4 != 0)
		return -1;
	if (len > 0 && in[len - 1] == '=')
		pad++;
	if (len > 1 && in[len - 2] == '=')
		pad++;
	if ((o = malloc(len / 4 * 3 + 1)) == NULL)
		return -1;
	for (i = 0; i < len - pad; i++) {
		if ((v = base64_val(in[i])) < 0)
			goto bad;
		acc = (acc << 6) | (unsigned)v;
		if (i % 4 == 3) {
			o[k++] = (unsigned char)(acc >> 16);
			o[k++] = (unsigned char)(acc >> 8);
			o[k++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if (pad == 1) {
		o[k++] = (unsigned char)(acc >> 10);
		o[k++] = (unsigned char)(acc >> 2);
		if (acc & 3)
			goto bad;
	} else if (pad == 2) {
		o[k++] = (unsigned char)(acc >> 4);
		if (acc & 15)
			goto bad;
	}
	o[k] = '\0';
	*out = (char *)o;
	return (long)k;
bad:
	free(o);
	return -1;
}
