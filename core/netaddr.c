/* Client addresses: CIDR lists and X-Forwarded-For behind trusted proxies. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskora/plugin.h"

/* "1.2.3.4" or "::1" into 16 bytes (IPv4 as ::ffff:a.b.c.d); 1 for IPv4, 2 for IPv6, 0 bad. */
static int addr16(const char *s, unsigned char out[16])
{
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return 1;
    }
    return inet_pton(AF_INET6, s, out) == 1 ? 2 : 0;
}

/* The canonical text of 16 address bytes (IPv4-mapped as plain IPv4). */
static void addr_text(const unsigned char a[16], char *out, size_t len)
{
    char buf[INET6_ADDRSTRLEN];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0)
        inet_ntop(AF_INET, a + 12, buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, a, buf, sizeof(buf));
    snprintf(out, len, "%s", buf);
}

int tk_cidr_parse(const char *s, tk_cidr *out)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return TK_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    int fam = addr16(buf, out->addr);
    if (!fam)
        return TK_EINVAL;
    int max = fam == 1 ? 32 : 128;
    int bits = max;
    if (slash) {
        char *end = NULL;
        long b = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || b < 0 || b > max)
            return TK_EINVAL;
        bits = (int)b;
    }
    out->bits = fam == 1 ? 96 + bits : bits;
    return 0;
}

static int in_net(const tk_cidr *net, const unsigned char a[16])
{
    int full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, a, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net->addr[full] & mask) == (a[full] & mask);
}

int tk_cidr_match(const tk_cidr *nets, size_t n, const char *ip)
{
    unsigned char a[16];
    if (!ip || !addr16(ip, a))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (in_net(&nets[i], a))
            return 1;
    return 0;
}

void tk_sockaddr_text(const struct sockaddr *sa, char *out, size_t len)
{
    char buf[INET6_ADDRSTRLEN] = "";
    if (sa && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, sizeof(buf));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], buf, sizeof(buf));
        else
            inet_ntop(AF_INET6, a6, buf, sizeof(buf));
    }
    snprintf(out, len, "%s", buf[0] ? buf : "unknown");
}

void tk_client_addr(const char *peer, const char *xff, const tk_cidr *trusted, size_t ntrusted,
                    char *out, size_t len)
{
    snprintf(out, len, "%s", peer);
    if (!xff || !ntrusted || !tk_cidr_match(trusted, ntrusted, peer))
        return;
    /* walk X-Forwarded-For from the right: each hop was added by the one after it */
    size_t end = strlen(xff);
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (xff[a] == ' ' || xff[a] == '\t'))
            a++;
        while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t'))
            b--;
        char hop[INET6_ADDRSTRLEN + 1];
        unsigned char tmp[16];
        if (b - a == 0 || b - a >= sizeof(hop))
            return;
        memcpy(hop, xff + a, b - a);
        hop[b - a] = '\0';
        if (!addr16(hop, tmp))
            return; /* not an address: trust nothing further left */
        addr_text(tmp, out, len);
        if (!tk_cidr_match(trusted, ntrusted, hop))
            return;
        end = start > 0 ? start - 1 : 0;
    }
}
