/*
 * fuzz_control.c - libFuzzer target for the control protocol's JSON codec
 * (control/codec.c).
 *
 * The input is split into lines at LF, as the control socket frames it.
 * Each line is
 *   - decoded with codec_decode(); the error or the command is encoded back
 *     with codec_reply_error() / codec_reply_ok(), and for a command an
 *     event is built from its fields ("args" as command.c maps them, plus
 *     the raw line bytes as a string argument and as a JSON argument) and
 *     encoded with codec_event(), which must give the same bytes as the
 *     jansson-tree reference codec_event_ref() (and codec_hook() as
 *     codec_hook_ref(), with the raw line also as event name, command and
 *     plugin name);
 *   - used as raw bytes for codec_bytes(), codec_utf8_valid() and a base64
 *     round trip, and fed to base64_decode() as if it were base64.
 * Every encoder output must be exactly one line of valid JSON whose fields
 * round-trip: the id, the result, the strings (exact when valid UTF-8,
 * U+FFFD per bad byte otherwise) and args_b64 back to the exact bytes.
 * UTF-8 validity and base64 are checked against independent references.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base64.h"
#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_control: check failed at %s:%d: %s\n", __FILE__, \
			    __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

#define MAXARGS 70

/* Length of the well-formed UTF-8 sequence at s (Unicode table 3-7), 0 if
 * none.  NUL counts as invalid, as in the codec. */
static size_t
ref_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (c == 0)
		return 0;
	if (c <= 0x7F)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c == 0xE0)
		len = 3, lo = 0xA0;
	else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
		len = 3;
	else if (c == 0xED)
		len = 3, hi = 0x9F;
	else if (c == 0xF0)
		len = 4, lo = 0x90;
	else if (c >= 0xF1 && c <= 0xF3)
		len = 4;
	else if (c == 0xF4)
		len = 4, hi = 0x8F;
	else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

static int
ref_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if ((k = ref_utf8_seq(s + i, n - i)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* The readable form: U+FFFD for each byte that starts no valid sequence. */
static char *
ref_lossy(const unsigned char *s, size_t n, size_t *olen)
{
	char *o = malloc(3 * n + 1);
	size_t i = 0, k, l = 0;

	CHECK(o != NULL);
	while (i < n) {
		if ((k = ref_utf8_seq(s + i, n - i)) == 0) {
			memcpy(o + l, "\xEF\xBF\xBD", 3);
			l += 3;
			i++;
		} else {
			memcpy(o + l, s + i, k);
			l += k;
			i += k;
		}
	}
	*olen = l;
	return o;
}

static const char b64abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
ref_b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict RFC 4648 decoding: padded, no stray bits.  -1 when invalid. */
static long
ref_b64_decode(const unsigned char *s, size_t n, unsigned char *out)
{
	size_t i, q, o = 0, pad = 0;

	if (n % 4 != 0)
		return -1;
	while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
		pad++;
	for (q = 0; q < n; q += 4) {
		int v[4];
		size_t real = q + 4 == n ? 4 - pad : 4;

		for (i = 0; i < 4; i++) {
			v[i] = i < real ? ref_b64_val(s[q + i]) : 0;
			if (v[i] < 0)
				return -1;
		}
		out[o++] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
		if (real == 2 && (v[1] & 15) != 0)
			return -1;
		if (real >= 3)
			out[o++] = (unsigned char)(((v[1] & 15) << 4) | (v[2] >> 2));
		if (real == 3 && (v[2] & 3) != 0)
			return -1;
		if (real == 4)
			out[o++] = (unsigned char)(((v[2] & 3) << 6) | v[3]);
	}
	return (long)o;
}

/* Parse one encoder output: exactly one line of JSON. */
static json_t *
parse_line(const char *s, size_t len)
{
	json_error_t err;
	json_t *j;

	CHECK(s != NULL);
	CHECK(len > 0 && strlen(s) == len && s[len - 1] == '\n');
	CHECK(memchr(s, '\n', len - 1) == NULL);
	CHECK(memchr(s, '\r', len) == NULL);
	j = json_loadb(s, len - 1, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
	if (j == NULL)
		fprintf(stderr, "fuzz_control: bad JSON out (%s): %s", err.text, s);
	CHECK(j != NULL);
	return j;
}

/* A string field must hold exactly these bytes. */
static void
check_str(json_t *v, const char *s, size_t n)
{
	CHECK(json_is_string(v));
	CHECK(json_string_length(v) == n);
	CHECK(n == 0 || memcmp(json_string_value(v), s, n) == 0);
}

/* A string from raw bytes: exact, or the readable form. */
static void
check_bytes_str(json_t *v, const unsigned char *s, size_t n)
{
	if (ref_utf8_valid(s, n))
		check_str(v, (const char *)s, n);
	else {
		size_t ll;
		char *l = ref_lossy(s, n, &ll);

		check_str(v, l, ll);
		free(l);
	}
}

static void
check_b64_bytes(json_t *v, const unsigned char *s, size_t n)
{
	char *dec;
	unsigned char *ref;
	long k;

	CHECK(json_is_string(v));
	k = base64_decode(json_string_value(v), json_string_length(v), &dec);
	CHECK(k >= 0 && (size_t)k == n);
	CHECK(n == 0 || memcmp(dec, s, n) == 0);
	free(dec);
	ref = malloc(json_string_length(v) + 1);
	CHECK(ref != NULL);
	k = ref_b64_decode((const unsigned char *)json_string_value(v), json_string_length(v), ref);
	CHECK(k >= 0 && (size_t)k == n && (n == 0 || memcmp(ref, s, n) == 0));
	free(ref);
}

/* Raw bytes: UTF-8 validity, codec_bytes(), base64 both ways. */
static void
check_raw(const unsigned char *s, size_t n)
{
	char *enc, *dec, *nul;
	unsigned char *ref;
	json_t *j;
	int exact = -1, valid = ref_utf8_valid(s, n);
	long k, rk;
	size_t i;

	CHECK(codec_utf8_valid((const char *)s, n) == valid);
	j = codec_bytes((const char *)s, n, &exact);
	CHECK(j != NULL);
	CHECK(exact == valid);
	check_bytes_str(j, s, n);
	json_decref(j);

	/* Encode, decode: the same bytes; canonical alphabet and padding. */
	enc = base64_encode((const char *)s, n);
	CHECK(enc != NULL);
	CHECK(strlen(enc) == 4 * ((n + 2) / 3));
	for (i = 0; enc[i] != '\0'; i++)
		CHECK(strchr(b64abc, enc[i]) != NULL || (enc[i] == '=' && i + 2 >= strlen(enc)));
	k = base64_decode(enc, strlen(enc), &dec);
	CHECK(k >= 0 && (size_t)k == n);
	CHECK(n == 0 || memcmp(dec, s, n) == 0);
	CHECK(dec[k] == '\0');
	free(dec);
	free(enc);

	/* The bytes as base64 input: valid exactly when the strict reference
	 * says so, and then canonical (re-encoding gives the input back). */
	ref = malloc(n + 1);
	CHECK(ref != NULL);
	rk = ref_b64_decode(s, n, ref);
	k = base64_decode((const char *)s, n, &dec);
	CHECK(k == rk);
	if (k >= 0) {
		CHECK(dec != NULL && dec[k] == '\0');
		CHECK(k == 0 || memcmp(dec, ref, (size_t)k) == 0);
		enc = base64_encode(dec, (size_t)k);
		CHECK(enc != NULL && strlen(enc) == n && memcmp(enc, s, n) == 0);
		free(enc);
		free(dec);
	} else
		CHECK(dec == NULL);
	free(ref);

	/* The bytes as an error message (a C string: up to the first NUL). */
	nul = malloc(n + 1);
	CHECK(nul != NULL);
	memcpy(nul, s, n);
	nul[n] = '\0';
	{
		size_t len;
		char *out = codec_reply_error(NULL, "invalid_argument", nul, &len);
		json_t *r = parse_line(out, len), *e = json_object_get(r, "error");

		CHECK(json_is_null(json_object_get(r, "id")));
		CHECK(json_is_false(json_object_get(r, "ok")));
		check_str(json_object_get(e, "code"), "invalid_argument", 16);
		check_bytes_str(json_object_get(e, "message"), (const unsigned char *)nul,
		    strlen(nul));
		json_decref(r);
		free(out);
	}
	free(nul);
}

/* An id must come back as given (null when absent). */
static void
check_id(json_t *r, json_t *id)
{
	json_t *v = json_object_get(r, "id");

	CHECK(v != NULL);
	if (id == NULL)
		CHECK(json_is_null(v));
	else
		CHECK(json_equal(v, id));
}

/* One direct encoding against its reference: the same bytes. */
static void
check_same_text(const char *what, char *s, size_t len, char *ref, size_t reflen)
{
	CHECK(ref != NULL);
	CHECK(s != NULL);
	if (len != reflen || memcmp(s, ref, len) != 0) {
		fprintf(stderr,
		    "fuzz_control: %s differs from its reference\n"
		    "  direct    (%zu) %.*s\n  reference (%zu) %.*s\n",
		    what, len, (int)len, s, reflen, (int)reflen, ref);
		abort();
	}
	CHECK(s[len] == '\0');
	free(s);
	free(ref);
}

/* codec_event() and codec_hook() (both plugin types) must give byte for
 * byte what the jansson-tree reference encoders give. */
static void
check_same(const struct pop3d_event *ev, const char *plugin)
{
	struct pop3d_event e = *ev;
	size_t len = 0, reflen = 0;
	char *s, *ref;

	s = codec_event(&e, &len);
	ref = codec_event_ref(&e, &reflen);
	check_same_text("codec_event", s, len, ref, reflen);
	e.type = POP3D_PLUGIN_POP3D;
	s = codec_hook(&e, plugin, &len);
	ref = codec_hook_ref(&e, plugin, &reflen);
	check_same_text("codec_hook", s, len, ref, reflen);
	e.type = POP3D_PLUGIN_POP3C;
	s = codec_hook(&e, plugin, &len);
	ref = codec_hook_ref(&e, plugin, &reflen);
	check_same_text("codec_hook", s, len, ref, reflen);
}

/* What codec_event() must give for a POP3D_ARG_JSON argument. */
static json_t *
expect_json_arg(const char *s, size_t n)
{
	json_t *j = s != NULL ? json_loadb(s, n, JSON_DECODE_ANY, NULL) : NULL;

	return j != NULL ? j : json_null();
}

struct argdesc {
	struct pop3d_arg a;
	json_t *expect; /* ARG_JSON: the value expected back */
	int owned;	/* a.s is malloc'd */
};

static void
check_event(struct codec_cmd *cmd, const unsigned char *line, size_t linelen, uint64_t seq)
{
	struct argdesc ad[MAXARGS];
	struct pop3d_event ev;
	struct pop3d_arg av[MAXARGS];
	json_t *args = json_object_get(cmd->root, "args"), *v, *out, *oargs, *ob64, *x;
	json_t *b64 = json_object_get(cmd->root, "text_b64");
	size_t i, n = 0, len;
	int lossy = 0;
	char *s;

	memset(ad, 0, sizeof(ad));
	/* "args" as command_send_event() maps them. */
	if (json_is_array(args))
		json_array_foreach(args, i, v)
		{
			if (n == 64)
				break;
			if (json_is_integer(v)) {
				ad[n].a.type = POP3D_ARG_INT;
				ad[n].a.i = json_integer_value(v);
			} else if (json_is_string(v) &&
			    strlen(json_string_value(v)) == json_string_length(v)) {
				ad[n].a.type = POP3D_ARG_STR;
				ad[n].a.s = (char *)json_string_value(v);
				ad[n].a.len = json_string_length(v);
			} else {
				ad[n].a.type = POP3D_ARG_JSON;
				ad[n].a.s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
				ad[n].a.len = ad[n].a.s != NULL ? strlen(ad[n].a.s) : 0;
				ad[n].owned = 1;
				ad[n].expect = expect_json_arg(ad[n].a.s, ad[n].a.len);
				/* What survives the trip is the value itself, unless it
				 * holds a NUL (codec_arg() does not allow those). */
				CHECK(json_is_null(ad[n].expect) || json_equal(ad[n].expect, v));
			}
			n++;
		}
	/* The raw line: as a string (any bytes) and as JSON text. */
	ad[n].a.type = POP3D_ARG_STR;
	ad[n].a.s = (char *)line;
	ad[n].a.len = linelen;
	n++;
	ad[n].a.type = POP3D_ARG_JSON;
	ad[n].a.s = (char *)line;
	ad[n].a.len = linelen;
	ad[n].expect = expect_json_arg((const char *)line, linelen);
	n++;
	/* Decoded text_b64, as send_to_client takes it: any bytes. */
	if (json_is_string(b64)) {
		long k = base64_decode(json_string_value(b64), json_string_length(b64), &s);

		if (k >= 0) {
			ad[n].a.type = POP3D_ARG_STR;
			ad[n].a.s = s;
			ad[n].a.len = (size_t)k;
			ad[n].owned = 1;
			n++;
		}
	}
	ad[n].a.type = POP3D_ARG_STR; /* NULL string: null */
	ad[n].a.s = NULL;
	n++;
	CHECK(n <= MAXARGS);
	for (i = 0; i < n; i++)
		av[i] = ad[i].a;

	memset(&ev, 0, sizeof(ev));
	ev.name = cmd->name;
	ev.seq = seq;
	if (json_is_integer(json_object_get(cmd->root, "client")))
		ev.client = (uint64_t)json_integer_value(json_object_get(cmd->root, "client"));
	if (json_is_integer(json_object_get(cmd->root, "tag")))
		ev.tag = (uint64_t)json_integer_value(json_object_get(cmd->root, "tag"));
	if (json_is_integer(json_object_get(cmd->root, "origin")))
		ev.origin = (uint64_t)json_integer_value(json_object_get(cmd->root, "origin"));
	ev.state = (linelen & 1) ? POP3D_STATE_TRANSACTION : POP3D_STATE_AUTHORIZATION;
	ev.tls = (linelen & 2) != 0;
	ev.argc = (int)n;
	ev.argv = av;

	s = codec_event(&ev, &len);
	out = parse_line(s, len);
	free(s);
	check_str(json_object_get(out, "type"), "event", 5);
	check_str(json_object_get(out, "event"), cmd->name, strlen(cmd->name));
	CHECK(json_integer_value(json_object_get(out, "seq")) == (json_int_t)seq);
	if (ev.client != 0) {
		CHECK(json_integer_value(json_object_get(out, "client")) == (json_int_t)ev.client);
		check_str(json_object_get(out, "state"), pop3d_state_name(ev.state),
		    strlen(pop3d_state_name(ev.state)));
		CHECK(json_is_boolean(json_object_get(out, "tls")));
		CHECK(json_is_true(json_object_get(out, "tls")) == ev.tls);
	} else
		CHECK(json_object_get(out, "client") == NULL);
	if (ev.tag != 0)
		CHECK(json_integer_value(json_object_get(out, "tag")) == (json_int_t)ev.tag);
	else
		CHECK(json_object_get(out, "tag") == NULL);
	if (ev.origin != 0)
		CHECK(json_integer_value(json_object_get(out, "origin")) == (json_int_t)ev.origin);
	oargs = json_object_get(out, "args");
	ob64 = json_object_get(out, "args_b64");
	CHECK(json_is_array(oargs) && json_array_size(oargs) == n);
	for (i = 0; i < n; i++)
		if (ad[i].a.type == POP3D_ARG_STR && ad[i].a.s != NULL &&
		    !ref_utf8_valid((const unsigned char *)ad[i].a.s, ad[i].a.len))
			lossy = 1;
	if (lossy)
		CHECK(json_is_array(ob64) && json_array_size(ob64) == n);
	else
		CHECK(ob64 == NULL);
	for (i = 0; i < n; i++) {
		x = json_array_get(oargs, i);
		switch (ad[i].a.type) {
		case POP3D_ARG_INT:
			CHECK(json_is_integer(x) && json_integer_value(x) == ad[i].a.i);
			break;
		case POP3D_ARG_JSON:
			CHECK(json_equal(x, ad[i].expect));
			break;
		case POP3D_ARG_STR:
			if (ad[i].a.s == NULL) {
				CHECK(json_is_null(x));
				break;
			}
			check_bytes_str(x, (const unsigned char *)ad[i].a.s, ad[i].a.len);
			if (ref_utf8_valid((const unsigned char *)ad[i].a.s, ad[i].a.len)) {
				if (lossy)
					CHECK(json_is_null(json_array_get(ob64, i)));
			} else
				check_b64_bytes(json_array_get(ob64, i),
				    (const unsigned char *)ad[i].a.s, ad[i].a.len);
			break;
		}
		if (lossy && ad[i].a.type != POP3D_ARG_STR)
			CHECK(json_is_null(json_array_get(ob64, i)));
	}
	json_decref(out);

	/* The direct encoders against the references: this event, with a
	 * command and a hook id from the input, fewer arguments, and the raw
	 * line (any bytes) as event name, command and plugin name. */
	v = json_object_get(cmd->root, "command");
	if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
		ev.command = json_string_value(v);
	v = json_object_get(cmd->root, "hook");
	ev.hook = json_is_integer(v) ? (uint64_t)json_integer_value(v) : seq * 7;
	check_same(&ev, cmd->name);
	ev.argc = (int)(linelen % (n + 1));
	check_same(&ev, NULL);
	if (memchr(line, '\0', linelen) == NULL) {
		char *raw = malloc(linelen + 1);

		CHECK(raw != NULL);
		memcpy(raw, line, linelen);
		raw[linelen] = '\0';
		ev.name = raw;
		ev.command = raw;
		ev.argc = (int)n;
		check_same(&ev, raw);
		free(raw);
	}

	for (i = 0; i < n; i++) {
		if (ad[i].owned)
			free(ad[i].a.s);
		json_decref(ad[i].expect);
	}
}

static void
check_line(const unsigned char *line, size_t len, uint64_t seq)
{
	struct codec_cmd cmd;
	char msg[256], *out;
	const char *code;
	size_t olen;
	json_t *r;

	memset(msg, 0, sizeof(msg));
	code = codec_decode((const char *)line, len, &cmd, msg, sizeof(msg));
	if (code != NULL) {
		json_t *e;

		/* invalid_argument: a string with a NUL (the decoder's one NUL rule). */
		CHECK(strcmp(code, "parse_error") == 0 || strcmp(code, "invalid_request") == 0 ||
		    strcmp(code, "invalid_argument") == 0);
		CHECK(strcmp(code, "parse_error") != 0 || cmd.root == NULL);
		CHECK(strcmp(code, "parse_error") == 0 || cmd.root != NULL);
		CHECK(cmd.name == NULL);
		CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
		out = codec_reply_error(cmd.id, code, msg, &olen);
		r = parse_line(out, olen);
		free(out);
		check_id(r, cmd.id);
		CHECK(json_is_false(json_object_get(r, "ok")));
		e = json_object_get(r, "error");
		check_str(json_object_get(e, "code"), code, strlen(code));
		check_bytes_str(json_object_get(e, "message"), (const unsigned char *)msg,
		    strlen(msg));
		json_decref(r);
		codec_cmd_clear(&cmd);
		CHECK(cmd.root == NULL);
		return;
	}
	CHECK(json_is_object(cmd.root));
	CHECK(cmd.name != NULL);
	CHECK(strcmp(json_string_value(json_object_get(cmd.root, "cmd")), cmd.name) == 0);
	CHECK(cmd.id == json_object_get(cmd.root, "id"));
	CHECK(strlen(cmd.name) == json_string_length(json_object_get(cmd.root, "cmd")));

	/* The reply carries the id and a result given by the handler. */
	out = codec_reply_ok(cmd.id, json_deep_copy(cmd.root), &olen);
	r = parse_line(out, olen);
	free(out);
	check_id(r, cmd.id);
	CHECK(json_is_true(json_object_get(r, "ok")));
	CHECK(json_equal(json_object_get(r, "result"), cmd.root));
	check_str(json_object_get(r, "type"), "reply", 5);
	json_decref(r);
	out = codec_reply_ok(cmd.id, NULL, &olen);
	r = parse_line(out, olen);
	free(out);
	CHECK(json_is_object(json_object_get(r, "result")));
	json_decref(r);

	/* An error reply about it. */
	out = codec_reply_error(cmd.id, "unknown_command", cmd.name, &olen);
	r = parse_line(out, olen);
	free(out);
	check_id(r, cmd.id);
	check_str(json_object_get(json_object_get(r, "error"), "message"), cmd.name,
	    strlen(cmd.name));
	json_decref(r);

	check_event(&cmd, line, len, seq);
	codec_cmd_clear(&cmd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	uint64_t seq = 1;

	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - (data + off)) : size - off;

		check_line(data + off, len, seq++);
		check_raw(data + off, len);
		off += len + 1;
	}
	if (size == 0)
		check_raw(data, 0);
	return 0;
}
