/*
 * proxy.h - PROXY protocol v1 and v2 headers (as HAProxy sends them) and
 * the trusted-peer CIDR list.  Pure functions: unit suites and the fuzz
 * target call them directly.
 */
#ifndef POP3D_PROXY_H
#define POP3D_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest header accepted: v1 is at most 107 octets; v2 is 16 + length,
 * and pop3d takes at most this much (addresses plus some TLVs). */
#define PROXY_MAX_HEADER 536

struct proxy_result {
	int local;  /* LOCAL/UNKNOWN: keep the connection's own addresses */
	int family; /* AF_INET or AF_INET6 when !local */
	char src[64];
	int src_port;
	char dst[64];
	int dst_port;
};

/* Parse a header at the start of buf.  Returns the header length (> 0),
 * 0 when more input is needed, -1 when this is not a valid header. */
int proxy_parse(const unsigned char *buf, size_t len, struct proxy_result *);

struct proxy_cidr {
	int family;
	unsigned char addr[16];
	unsigned bits;
};
/* "10.0.0.0/8", "::1", "2001:db8::/32"; 0 or -1. */
int proxy_cidr_parse(const char *, struct proxy_cidr *);
int proxy_cidr_match(const struct proxy_cidr *, size_t n, const struct sockaddr *);

#endif
