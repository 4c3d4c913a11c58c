/*
 * base64.h - Base64 (RFC 4648, section 4, with padding): the one copy,
 * shared by the control codec and pop3ctl.  Pure C, no dependencies.
 */
#ifndef POP3D_BASE64_H
#define POP3D_BASE64_H

#include <stddef.h>

/* Octets of the encoding of len octets (no terminating NUL). */
#define BASE64_LEN(len) (4 * (((len) + 2) / 3))

/* Encode len octets of in at o, which holds BASE64_LEN(len) octets; returns
 * the end of the text (not NUL-terminated). */
char *base64_put(char *o, const char *in, size_t len);
/* The encoding of in as a malloc'd NUL-terminated string; NULL without memory. */
char *base64_encode(const char *in, size_t len);
/* Decode padded base64: the decoded length, *out malloc'd and NUL-terminated;
 * -1 (and *out NULL) on a bad length, a bad character, non-zero pad bits or
 * no memory. */
long base64_decode(const char *in, size_t len, char **out);

#endif
