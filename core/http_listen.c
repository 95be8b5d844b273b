/*
 * The HTTP server's listening sockets: listen addresses, the URLs they
 * answer on, libmicrohttpd's (rationed) messages, the admin listener for
 * metrics and probes, and what a drain needs of the kernel (holding new
 * connections back, the accept queue's length).
 */
#include "http_listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#ifdef __linux__
#include <linux/filter.h>
#endif

#include "http_dispatch.h"
#include "log.h"

/*
 * libmicrohttpd's own messages (a client that vanished mid-request, a refused
 * connection...). Clients cause them at will, so at most 10 are logged in any
 * 10 s; the next one logged says how many were dropped.
 */
void tk_http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static struct timespec window;
    static int in_window, dropped;
    (void)cls;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&lock);
    if (window.tv_sec == 0 || now.tv_sec - window.tv_sec >= 10) {
        window = now;
        in_window = 0;
    }
    int log_it = in_window < 10;
    in_window += log_it;
    int was_dropped = log_it ? dropped : 0;
    if (log_it)
        dropped = 0;
    else
        dropped++;
    pthread_mutex_unlock(&lock);
    if (!log_it)
        return;
    char msg[512], n[16];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t len = strlen(msg);
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        msg[--len] = '\0';
    snprintf(n, sizeof(n), "%d", was_dropped);
    const char *kv[] = {"source", "libmicrohttpd", "dropped_before", n};
    tk_log_write(NULL, TK_LOG_WARN, msg, kv, was_dropped ? 2 : 1);
}

/* Parses "host:port" / "[v6]:port" into a socket address. */
int tk_http_parse_listen(const char *key, const char *listen, struct sockaddr_storage *ss,
                         socklen_t *sslen, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    if (colon && listen[0] == '[' && hlen >= 2 && listen[hlen - 1] == ']') {
        h = listen + 1;
        hlen -= 2;
    }
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || hlen == 0 || hlen >= sizeof(host) || !end || *end || end == colon + 1 ||
        port < 0 || port > 65535) {
        snprintf(err, errlen, "%s: \"%s\" is not HOST:PORT (e.g. 0.0.0.0:8000)", key, listen);
        return TK_EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%ld", port);
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "%s: cannot resolve \"%s\": %s", key, host, gai_strerror(gai));
        return TK_EINVAL;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* The URL a listener answers on, for logs and tests. */
void tk_http_listen_url(struct MHD_Daemon *d, const struct sockaddr_storage *ss, char *url,
                        size_t len)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : 0;
    char addr[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (ss->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, addr, sizeof(addr));
        if (strcmp(addr, "::") == 0)
            snprintf(addr, sizeof(addr), "::1");
        snprintf(url, len, "http://[%s]:%u", addr, bound);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, addr, sizeof(addr));
        if (strcmp(addr, "0.0.0.0") == 0)
            snprintf(addr, sizeof(addr), "127.0.0.1");
        snprintf(url, len, "http://%s:%u", addr, bound);
    }
}

uint16_t tk_http_port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

/* The admin listener: metrics and probes, a thread per connection, few connections. */
int tk_http_start_admin(tk_http_server *srv, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (tk_http_parse_listen("http.admin_listen", srv->admin_listen, &ss, &sslen, err, errlen))
        return TK_EINVAL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->admin_mhd = MHD_start_daemon(
        flags, tk_http_port_of(&ss), NULL, NULL, &tk_http_on_request, &srv->listeners[1],
        MHD_OPTION_EXTERNAL_LOGGER, tk_http_mhd_log, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT,
        10u, MHD_OPTION_NOTIFY_COMPLETED, tk_http_on_completed, &srv->listeners[1],
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!srv->admin_mhd) {
        snprintf(err, errlen, "http: cannot listen on %s (http.admin_listen)", srv->admin_listen);
        return TK_ERR;
    }
    tk_http_listen_url(srv->admin_mhd, &ss, srv->admin_url, sizeof(srv->admin_url));
    const char *kv[] = {"listen", srv->admin_listen, "url", srv->admin_url};
    tk_log_write(NULL, TK_LOG_INFO, "http admin listener (metrics, probes)", kv, 2);
    return 0;
}

/*
 * A socket filter on the listening socket that drops the packets opening a
 * connection (SYN without ACK) and lets everything else through. Linux runs
 * a listener's filter on each segment it receives before TCP handles it,
 * with the data at the TCP header, whose flags are byte 13: handshakes
 * under way complete and are queued for accept, new ones are not answered
 * (their clients send the SYN again later, by then to a closed port).
 */
int tk_http_listen_hold_new(int fd)
{
#if defined(__linux__) && defined(SO_ATTACH_FILTER)
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),          /* A = TCP flags */
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),       /* A &= SYN|ACK */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1), /* SYN alone? */
        BPF_STMT(BPF_RET | BPF_K, 0),                    /* drop it */
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),          /* keep the rest */
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0 ? 0 : -1;
#else
    (void)fd;
    errno = ENOSYS;
    return -1;
#endif
}

/* Connections the kernel completed on a listening socket and nobody accepted yet, or -1. */
int tk_http_listen_backlog(int fd)
{
#if defined(__linux__) && defined(TCP_INFO)
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.tcpi_state != TCP_LISTEN)
        return -1;
    return (int)ti.tcpi_unacked; /* of a listener: its accept queue */
#else
    (void)fd;
    return -1;
#endif
}
