/*
 * The HTTP server's connections: a limit per client address, deadlines
 * that do not depend on the client sending bytes (a request must arrive
 * within the read timeout of its request line; an idle keep-alive
 * connection is closed after the idle timeout), and lingering close for
 * answers sent before the body was read (the client can read a 413
 * instead of a reset). One timer thread does all three and the server's
 * tick (the keepalive comments of event streams).
 */
#include "http_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "http_response.h"
#include "log.h"

#define MAX_LINGERING 64
#define LINGER_MS 5000
#define LINGER_MAX_BYTES (64 * 1024 * 1024)
#define TICK_MS 200

enum phase { PH_IDLE, PH_READING, PH_BUSY, PH_STREAM, PH_CUT };

typedef struct conn_ctx {
    struct MHD_Connection *conn;
    int fd;
    char peer[48];
    int exempt;
    atomic_int phase;
    _Atomic long long since_ms;
    atomic_int linger;
    int uri_flags; /* of the request line being read (I/O thread only) */
    struct conn_ctx *prev, *next;
} conn_ctx;

typedef struct lingerer {
    int fd;
    long long until_ms;
    size_t dropped;
} lingerer;

struct tk_http_guard {
    tk_http_server *srv;
    tk_guard_options o;
    pthread_mutex_t lock; /* the list of connections and of lingering sockets */
    conn_ctx *head;
    lingerer lingering[MAX_LINGERING];
    int nlinger;
    pthread_t thread;
    int running;
    atomic_int stop;
};

tk_http_guard *tk_guard_new(tk_http_server *srv, const tk_guard_options *o)
{
    tk_http_guard *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->srv = srv;
    g->o = *o;
    pthread_mutex_init(&g->lock, NULL);
    return g;
}

/* Reads and drops what lingering clients still send; closes them at EOF or their deadline. */
static void linger_round(tk_http_guard *g, int wait_ms)
{
    struct pollfd fds[MAX_LINGERING];
    pthread_mutex_lock(&g->lock);
    int n = g->nlinger;
    for (int i = 0; i < n; i++)
        fds[i] = (struct pollfd){.fd = g->lingering[i].fd, .events = POLLIN};
    pthread_mutex_unlock(&g->lock);
    if (n <= 0) {
        tk_sleep_ms(wait_ms);
        return;
    }
    poll(fds, (nfds_t)n, wait_ms);
    long long now = tk_now_ms();
    pthread_mutex_lock(&g->lock);
    /* only this thread removes entries, so the first n are the ones polled */
    for (int i = n - 1; i >= 0; i--) {
        lingerer *l = &g->lingering[i];
        int done = now >= l->until_ms || l->dropped > LINGER_MAX_BYTES;
        if (!done && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
            char buf[16384];
            ssize_t r = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0)
                l->dropped += (size_t)r;
            else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                done = 1;
        }
        if (done) {
            close(l->fd);
            *l = g->lingering[--g->nlinger];
        }
    }
    pthread_mutex_unlock(&g->lock);
}

/* Cuts connections past their deadline: libmicrohttpd then sees the end and closes them. */
static void deadline_round(tk_http_guard *g)
{
    long long now = tk_now_ms();
    pthread_mutex_lock(&g->lock);
    for (conn_ctx *c = g->head; c; c = c->next) {
        int ph = atomic_load(&c->phase);
        long long limit = ph == PH_READING ? g->o.read_timeout_ms
                          : ph == PH_IDLE  ? g->o.idle_timeout_ms
                                           : -1;
        if (limit >= 0 && now - atomic_load(&c->since_ms) > limit &&
            atomic_compare_exchange_strong(&c->phase, &ph, PH_CUT)) {
            shutdown(c->fd, SHUT_RDWR); /* the socket stays open until MHD's CLOSED notice */
            tk_http_count_refused(g->srv, ph == PH_READING ? "read_timeout" : "idle_timeout");
        }
    }
    pthread_mutex_unlock(&g->lock);
}

static void *guard_main(void *arg)
{
    tk_http_guard *g = arg;
    long long last_tick = tk_now_ms();
    while (!atomic_load(&g->stop)) {
        linger_round(g, TICK_MS);
        if (tk_now_ms() - last_tick >= TICK_MS) {
            last_tick = tk_now_ms();
            deadline_round(g);
            if (g->o.tick)
                g->o.tick(g->o.tick_ud);
        }
    }
    return NULL;
}

int tk_guard_start(tk_http_guard *g)
{
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0)
        return TK_ERR;
    g->running = 1;
    return TK_OK;
}

void tk_guard_free(tk_http_guard *g)
{
    if (!g)
        return;
    if (g->running) {
        atomic_store(&g->stop, 1);
        pthread_join(g->thread, NULL);
    }
    for (int i = 0; i < g->nlinger; i++)
        close(g->lingering[i].fd);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

enum MHD_Result tk_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    tk_http_guard *g = cls;
    (void)addrlen;
    char peer[48];
    tk_sockaddr_text(addr, peer, sizeof(peer));
    if (atomic_load(&g->srv->stopping))
        return MHD_NO; /* draining: new connections go to another replica */
    if (g->o.max_per_client <= 0 || tk_cidr_match(g->srv->trusted, g->srv->ntrusted, peer))
        return MHD_YES;
    int n = 0;
    pthread_mutex_lock(&g->lock);
    for (conn_ctx *c = g->head; c; c = c->next)
        n += strcmp(c->peer, peer) == 0;
    pthread_mutex_unlock(&g->lock);
    if (n < g->o.max_per_client)
        return MHD_YES;
    tk_http_count_refused(g->srv, "connections_per_client");
    return MHD_NO;
}

void tk_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    tk_http_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_ctx *c = calloc(1, sizeof(*c));
        *socket_context = c;
        if (!c) {
            /* untracked, it would escape the limits and deadlines: cut it */
            const union MHD_ConnectionInfo *fd =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (fd)
                shutdown(fd->connect_fd, SHUT_RDWR);
            tk_logf(NULL, TK_LOG_ERROR, "http: out of memory for a connection; cutting it");
            return;
        }
        c->conn = conn;
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        c->fd = fd ? fd->connect_fd : -1;
        tk_sockaddr_text(ad ? ad->client_addr : NULL, c->peer, sizeof(c->peer));
        atomic_store(&c->phase, PH_IDLE);
        atomic_store(&c->since_ms, tk_now_ms());
        pthread_mutex_lock(&g->lock);
        c->next = g->head;
        if (g->head)
            g->head->prev = c;
        g->head = c;
        pthread_mutex_unlock(&g->lock);
        return;
    }
    conn_ctx *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* MHD closes its descriptor right after this notice: a duplicate keeps the socket
     * readable, so what the client still sends is read and dropped instead of reset */
    if (atomic_load(&c->linger) && c->fd >= 0 && g->nlinger < MAX_LINGERING) {
        int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) {
            shutdown(fd, SHUT_WR);
            g->lingering[g->nlinger++] = (lingerer){fd, tk_now_ms() + LINGER_MS, 0};
        }
    }
    pthread_mutex_unlock(&g->lock);
    free(c);
    *socket_context = NULL;
}

static conn_ctx *ctx_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void set_phase(struct MHD_Connection *conn, int phase)
{
    conn_ctx *c = ctx_of(conn);
    if (!c)
        return;
    int cur = atomic_load(&c->phase);
    do {
        if (cur == PH_CUT)
            return; /* cut by the timer: stays cut */
    } while (!atomic_compare_exchange_weak(&c->phase, &cur, phase));
    atomic_store(&c->since_ms, tk_now_ms());
}

void tk_guard_reading(struct MHD_Connection *conn, int uri_flags)
{
    conn_ctx *c = ctx_of(conn);
    if (c)
        c->uri_flags = uri_flags;
    set_phase(conn, PH_READING);
}

int tk_guard_uri_flags(struct MHD_Connection *conn)
{
    conn_ctx *c = ctx_of(conn);
    return c ? c->uri_flags : 0;
}
void tk_guard_busy(struct MHD_Connection *conn) { set_phase(conn, PH_BUSY); }
void tk_guard_idle(struct MHD_Connection *conn) { set_phase(conn, PH_IDLE); }
void tk_guard_stream(struct MHD_Connection *conn) { set_phase(conn, PH_STREAM); }

void tk_guard_linger(struct MHD_Connection *conn)
{
    conn_ctx *c = ctx_of(conn);
    if (c)
        atomic_store(&c->linger, 1);
}

int tk_guard_count_reading(tk_http_guard *g)
{
    if (!g)
        return 0;
    int n = 0;
    pthread_mutex_lock(&g->lock);
    for (conn_ctx *c = g->head; c; c = c->next)
        n += atomic_load(&c->phase) == PH_READING;
    pthread_mutex_unlock(&g->lock);
    return n;
}
