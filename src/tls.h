/*
 * tls.h - the server's TLS context (OpenSSL): certificate chain and key,
 * TLS 1.2 minimum, cipher list; re-read on demand (SIGHUP) without
 * touching established sessions, which keep the context they started with.
 */
#ifndef POP3D_TLS_H
#define POP3D_TLS_H

#include <stddef.h>

struct pop3d;
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

struct tls {
	SSL_CTX *ctx;
	char *cert, *key, *ciphers;
};

/* Build a context from files; on failure keep the old one, fill err. */
int tls_load(struct tls *, const char *cert, const char *key, const char *ciphers, char *err,
    size_t errlen);
SSL *tls_session(struct tls *);
void tls_clear(struct tls *);

#endif
