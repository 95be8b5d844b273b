/* Client addresses: CIDR lists and X-Forwarded-For behind trusted proxies. */
#ifndef TK_CORE_NETADDR_H
#define TK_CORE_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* An address or network, IPv4 kept as IPv4-mapped IPv6. */
typedef struct tk_cidr {
    unsigned char addr[16];
    int bits; /* prefix length over the 128 bits */
} tk_cidr;

/*
 * Parses "1.2.3.4", "10.0.0.0/8", "::1" or "fd00::/8". IPv4 forms match
 * IPv4 peers and their IPv4-mapped IPv6 forms. 0, or TK_EINVAL.
 */
int tk_cidr_parse(const char *s, tk_cidr *out);
/* Non-zero when the address text `ip` lies in one of n networks. */
int tk_cidr_match(const tk_cidr *nets, size_t n, const char *ip);

/* The numeric text of a socket address ("127.0.0.1", "::1"; mapped IPv4 as IPv4). */
void tk_sockaddr_text(const struct sockaddr *sa, char *out, size_t len);

/*
 * The client's address: `peer` itself unless `peer` is a trusted proxy; then
 * X-Forwarded-For is read from the right, skipping trusted proxies, and the
 * first other address is the client (a malformed entry stops the walk at the
 * last trusted hop). Writes the address text to out.
 */
void tk_client_addr(const char *peer, const char *xff, const tk_cidr *trusted, size_t ntrusted,
                    char *out, size_t len);

#endif
