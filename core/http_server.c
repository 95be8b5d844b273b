/*
 * The core HTTP server (libmicrohttpd): its life from creation to stop. How
 * threads are used is described in http_internal.h; a request's way through
 * it is in http_dispatch.c, answers in http_response.c, connection limits
 * and deadlines in http_guard.c, event streams in http_sse.c.
 */
#include "http_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "http_core_routes.h"
#include "http_dispatch.h"
#include "http_docs.h"
#include "http_guard.h"
#include "http_internal.h"
#include "http_listen.h"
#include "http_openapi.h"
#include "http_sse.h"
#include "log.h"

#define MHD_MEMORY (128 * 1024) /* per connection: request line, headers, buffers */
#define ACCEPT_GRACE_MS 200     /* the accept queue stays empty this long before accepting ends */
#define ACCEPT_WAIT_MAX_MS 2000 /* longest wait for the accept queue to empty */

static void register_metrics(tk_http_server *srv, tk_metrics *metrics)
{
    static const char *const req_labels[] = {"method", "route", "status", NULL};
    static const char *const dur_labels[] = {"method", "route", NULL};
    static const char *const why_labels[] = {"reason", NULL};
    char merr[256];
    srv->requests = tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_http_requests_total",
                                      "HTTP requests answered, by method, route and status",
                                      req_labels, NULL, 0, merr, sizeof(merr));
    srv->duration =
        tk_metrics_family(metrics, TK_METRIC_HISTOGRAM, "taskora_http_request_duration_seconds",
                          "Time from request to response, by method and route", dur_labels, NULL, 0,
                          merr, sizeof(merr));
    srv->inflight =
        tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_http_requests_in_flight",
                          "HTTP requests being handled", NULL, NULL, 0, merr, sizeof(merr));
    srv->refused =
        tk_metrics_family(metrics, TK_METRIC_COUNTER, "taskora_http_refused_total",
                          "Connections and requests refused or cut by a limit, by reason",
                          why_labels, NULL, 0, merr, sizeof(merr));
    srv->ready_gauge =
        tk_metrics_family(metrics, TK_METRIC_GAUGE, "taskora_ready",
                          "1 when /ready would answer 200 (started, not draining, every probe up), "
                          "else 0; evaluated at each scrape",
                          NULL, NULL, 0, merr, sizeof(merr));
    if (srv->ready_gauge)
        tk_metric_set(srv->ready_gauge, NULL, 0);
}

tk_http_server *tk_http_new(const tk_http_options *opt, tk_metrics *metrics, char *err,
                            size_t errlen)
{
    tk_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->listeners[0] = (tk_http_listener){srv, 0};
    srv->listeners[1] = (tk_http_listener){srv, 1};
    srv->quiesced_fd = -1;
    srv->opt = *opt;
    srv->opt.admin_listen = NULL;
    srv->listen = strdup(opt->listen ? opt->listen : "0.0.0.0:8000");
    srv->admin_listen = opt->admin_listen && *opt->admin_listen ? strdup(opt->admin_listen) : NULL;
    srv->app_id = strdup(opt->app_id ? opt->app_id : "taskora-backend");
    srv->metrics = metrics;
    srv->routes = tk_routes_new();
    srv->admin_routes = tk_routes_new();
    srv->openapi = tk_openapi_new();
    pthread_mutex_init(&srv->active_lock, NULL);
    tk_cond_init_monotonic(&srv->active_cond);
    pthread_mutex_init(&srv->sse_lock, NULL);
    srv->sse_keepalive_ms = opt->sse_keepalive_ms > 0 ? opt->sse_keepalive_ms : 30000;
    atomic_store(&srv->not_ready_reason, "starting");
    size_t nprox = json_array_size(opt->trusted_proxies);
    srv->trusted = calloc(nprox ? nprox : 1, sizeof(*srv->trusted));
    for (size_t i = 0; srv->trusted && i < nprox; i++)
        if (tk_cidr_parse(json_string_value(json_array_get(opt->trusted_proxies, i)),
                          &srv->trusted[srv->ntrusted]) == 0)
            srv->ntrusted++;
    if (!srv->trusted || !srv->listen || !srv->app_id || !srv->routes || !srv->admin_routes ||
        !srv->openapi || (opt->admin_listen && *opt->admin_listen && !srv->admin_listen)) {
        snprintf(err, errlen, "out of memory");
        tk_http_free(srv);
        return NULL;
    }
    register_metrics(srv, metrics);
    if (tk_http_core_routes(srv, err, errlen)) {
        tk_http_free(srv);
        return NULL;
    }
    return srv;
}

void tk_http_free(tk_http_server *srv)
{
    if (!srv)
        return;
    tk_http_stop(srv, 0);
    tk_routes_free(srv->routes);
    tk_routes_free(srv->admin_routes);
    tk_http_docs_free(srv);
    pthread_mutex_destroy(&srv->active_lock);
    pthread_mutex_destroy(&srv->sse_lock);
    pthread_cond_destroy(&srv->active_cond);
    free(srv->trusted);
    free(srv->listen);
    free(srv->admin_listen);
    free(srv->app_id);
    free(srv);
}

int tk_http_route(tk_http_server *srv, const char *method, const char *pattern,
                  tk_http_handler handler, void *ud, const char *owner)
{
    if (atomic_load(&srv->started))
        return TK_ESTATE;
    return tk_routes_add(srv->routes, method, pattern, handler, ud, owner);
}

int tk_http_describe(tk_http_server *srv, const char *owner, const char *fragment, char *err,
                     size_t errlen)
{
    if (atomic_load(&srv->started)) {
        snprintf(err, errlen, "routes are described before the server starts (in init)");
        return TK_ESTATE;
    }
    return tk_openapi_add(srv->openapi, srv->routes, owner, fragment, err, errlen);
}

int tk_http_tag(tk_http_server *srv, const char *name, const char *description)
{
    if (atomic_load(&srv->started))
        return TK_ESTATE;
    return tk_openapi_tag(srv->openapi, name, description);
}

void tk_http_set_ready(tk_http_server *srv, int ready, const char *reason)
{
    atomic_store(&srv->not_ready_reason, reason);
    atomic_store(&srv->ready, ready);
}

const char *tk_http_url(const tk_http_server *srv) { return srv->url; }

int tk_http_add_probe_named(tk_http_server *srv, const char *name, int (*probe)(void *ud), void *ud,
                            const char *yes, const char *no)
{
    if (atomic_load(&srv->started) || srv->nprobes == 4)
        return TK_ESTATE;
    srv->probes[srv->nprobes++] = (struct probe){name, probe, ud, yes, no};
    return 0;
}

int tk_http_add_probe(tk_http_server *srv, const char *name, int (*probe)(void *ud), void *ud)
{
    return tk_http_add_probe_named(srv, name, probe, ud, "connected", "unreachable");
}

/* The guard's timer: keepalives on idle event streams. */
static void tick_streams(void *srv) { tk_sse_tick(srv); }

int tk_http_start(tk_http_server *srv, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (tk_http_parse_listen("http.listen", srv->listen, &ss, &sslen, err, errlen))
        return TK_EINVAL;
    tk_guard_options go = {.max_per_client = srv->opt.max_connections_per_client,
                           .read_timeout_ms = srv->opt.read_timeout_s * 1000,
                           .idle_timeout_ms = srv->opt.timeout_s * 1000,
                           .tick = tick_streams,
                           .tick_ud = srv};
    int workers = srv->opt.workers > 0 ? srv->opt.workers : 16;
    srv->guard = tk_guard_new(srv, &go);
    srv->work = tk_workq_new("http workers", workers,
                             srv->opt.queue_limit > 0 ? srv->opt.queue_limit : 1024);
    if (!srv->guard || !srv->work || tk_guard_start(srv->guard)) {
        snprintf(err, errlen, "http: cannot start its threads");
        return TK_ERR;
    }
    /* MHD_USE_ITC: tk_http_drain stops accepting with MHD_quiesce_daemon, which needs it */
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned io = srv->opt.io_threads > 0 ? (unsigned)srv->opt.io_threads : 2u;
    atomic_store(&srv->started, 1); /* the route table is read-only from now on */
    if (tk_http_docs_build(srv)) {
        snprintf(err, errlen, "http: out of memory building the API description");
        return TK_ERR;
    }
    srv->mhd = MHD_start_daemon(
        flags, tk_http_port_of(&ss), tk_guard_accept, srv->guard, &tk_http_on_request,
        &srv->listeners[0], MHD_OPTION_EXTERNAL_LOGGER, tk_http_mhd_log, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, io, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)srv->opt.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->opt.timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, tk_http_on_completed, &srv->listeners[0],
        MHD_OPTION_NOTIFY_CONNECTION, tk_guard_notify, srv->guard, MHD_OPTION_URI_LOG_CALLBACK,
        tk_http_uri_log, srv, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!srv->mhd) {
        snprintf(err, errlen, "http: cannot listen on %s (address in use or not permitted?)",
                 srv->listen);
        return TK_ERR;
    }
    tk_http_listen_url(srv->mhd, &ss, srv->url, sizeof(srv->url));
    const char *kv[] = {"listen", srv->listen, "url", srv->url};
    tk_log_write(NULL, TK_LOG_INFO, "http server listening", kv, 2);
    if (srv->admin_listen && tk_http_start_admin(srv, err, errlen) != 0) {
        tk_http_stop(srv, 0); /* nothing may be served once start-up fails */
        return TK_ERR;
    }
    return 0;
}

/* Waits until the accept queue of `fd` has stayed empty for ACCEPT_GRACE_MS (the server
 * accepts meanwhile, and the last connections accepted send their requests). */
static void wait_accept_queue_empty(int fd)
{
    long long start = tk_now_ms(), quiet_since = start;
    for (;;) {
        int queued = tk_http_listen_backlog(fd); /* -1, unknown: only the grace is waited */
        long long now = tk_now_ms();
        if (queued > 0)
            quiet_since = now;
        if (now - quiet_since >= ACCEPT_GRACE_MS)
            return;
        if (now - start >= ACCEPT_WAIT_MAX_MS) {
            tk_logf(NULL, TK_LOG_WARN,
                    "http: %d connection(s) still queued after %d ms (connection limit?)", queued,
                    ACCEPT_WAIT_MAX_MS);
            return;
        }
        tk_sleep_ms(10);
    }
}

void tk_http_drain(tk_http_server *srv, int delay_ms)
{
    if (!srv || !srv->mhd)
        return;
    atomic_store(&srv->draining, 1);
    tk_sleep_ms(delay_ms);
    /* new connections are held back by the kernel; those it completed are still accepted */
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_LISTEN_FD);
    int fd = info ? info->listen_fd : -1;
    if (fd < 0 || tk_http_listen_hold_new(fd) != 0) {
        tk_logf(NULL, TK_LOG_WARN,
                "http: cannot hold new connections back (%s); connections still queued when "
                "accepting stops are reset",
                fd < 0 ? "no listening socket" : strerror(errno));
        return;
    }
    wait_accept_queue_empty(fd);
    MHD_socket q = MHD_quiesce_daemon(srv->mhd);
    if (q == MHD_INVALID_SOCKET) {
        tk_logf(NULL, TK_LOG_WARN, "http: cannot stop accepting on its own; refusing instead");
        return;
    }
    /* closes the port (the socket stays open until MHD has stopped): clients held back get
     * "connection refused" when they try again, and go elsewhere at once */
    shutdown(q, SHUT_RDWR);
    srv->quiesced_fd = q;
    tk_logf(NULL, TK_LOG_INFO, "http: no longer accepting connections");
}

/* Waits up to ms for the requests in progress, and those that have begun to arrive, to be
 * answered; returns how many are left. */
static int wait_requests_done(tk_http_server *srv, int ms)
{
    long long end = tk_now_ms() + ms;
    for (;;) {
        pthread_mutex_lock(&srv->active_lock);
        int left = srv->active;
        pthread_mutex_unlock(&srv->active_lock);
        left += tk_guard_count_reading(srv->guard);
        long long now = tk_now_ms();
        if (left == 0 || now >= end)
            return left;
        /* the condition says when the last request ends; one still arriving is polled */
        int step_ms = end - now < 20 ? (int)(end - now) : 20;
        struct timespec step = tk_deadline_ms(step_ms);
        pthread_mutex_lock(&srv->active_lock);
        int waited = srv->active > 0;
        if (waited)
            pthread_cond_timedwait(&srv->active_cond, &srv->active_lock, &step);
        pthread_mutex_unlock(&srv->active_lock);
        if (!waited)
            tk_sleep_ms(step_ms);
    }
}

void tk_http_stop(tk_http_server *srv, int drain_ms)
{
    if (!srv)
        return;
    if (srv->mhd) {
        /* new connections are refused (tk_guard_accept), event streams end, and the requests
         * in progress may finish; answers from now on close their connections */
        atomic_store(&srv->stopping, 1);
        tk_sse_close_all(srv);
        int left = wait_requests_done(srv, drain_ms);
        if (left > 0)
            tk_logf(NULL, TK_LOG_WARN,
                    "http: %d request(s) still in progress after %d ms; closing them", left,
                    drain_ms);
        /* handlers still running hold suspended connections: they finish (and resume them)
         * before the daemon may stop; requests not started get 503. The pool stays
         * allocated until the I/O threads are gone (a late push is refused, not a crash). */
        tk_workq_stop(srv->work, tk_http_cancel_job);
        tk_sse_close_all(srv);
        MHD_stop_daemon(srv->mhd);
        srv->mhd = NULL;
        if (srv->quiesced_fd >= 0)
            close(srv->quiesced_fd);
        srv->quiesced_fd = -1;
    }
    tk_workq_free(srv->work);
    srv->work = NULL;
    tk_guard_free(srv->guard);
    srv->guard = NULL;
    if (srv->admin_mhd) {
        MHD_stop_daemon(srv->admin_mhd);
        srv->admin_mhd = NULL;
    }
}
