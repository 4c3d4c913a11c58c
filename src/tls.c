/* tls.c - TLS context loading and reloading. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

/* Default cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults):
 * forward secrecy and AEAD only. */
#define TLS_DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS"

static void
tls_error(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "",
	    e ? buf : "failed");
	ERR_clear_error();
}

int
tls_load(struct tls *t, const char *cert, const char *key, const char *ciphers, char *err,
    size_t errlen)
{
	SSL_CTX *ctx;
	char *c = NULL, *k = NULL, *ci = NULL;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error(err, errlen, "SSL_CTX_new", NULL);
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_cipher_list(ctx, ciphers != NULL ? ciphers : TLS_DEFAULT_CIPHERS) != 1) {
		tls_error(err, errlen, "cipher list", ciphers);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error(err, errlen, "certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errlen, "key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "key does not match certificate", NULL);
		goto fail;
	}
	if ((c = strdup(cert)) == NULL || (k = strdup(key)) == NULL ||
	    (ciphers != NULL && (ci = strdup(ciphers)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Sessions in progress hold their own reference to the old context. */
	SSL_CTX_free(t->ctx);
	free(t->cert);
	free(t->key);
	free(t->ciphers);
	t->ctx = ctx;
	t->cert = c;
	t->key = k;
	t->ciphers = ci;
	return 0;
fail:
	free(c);
	free(k);
	free(ci);
	SSL_CTX_free(ctx);
	return -1;
}

SSL *
tls_session(struct tls *t)
{
	return t->ctx != NULL ? SSL_new(t->ctx) : NULL;
}

void
tls_clear(struct tls *t)
{
	SSL_CTX_free(t->ctx);
	free(t->cert);
	free(t->key);
	free(t->ciphers);
	memset(t, 0, sizeof(*t));
}
