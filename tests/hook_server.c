/* A webhook receiver for the suites: records requests, answers a status the test sets. */
#include "hook_server.h"

#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "testhelp.h"

typedef struct upload {
    char *data;
    size_t len;
} upload;

static void copy_header(struct MHD_Connection *conn, const char *name, char *out, size_t outlen)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    snprintf(out, outlen, "%s", v ? v : "");
}

/* Records the request whose body is u's and returns the status to answer. */
static unsigned record(hook_server *h, struct MHD_Connection *conn, const upload *u)
{
    pthread_mutex_lock(&h->lock);
    unsigned status = h->status;
    if (h->fail_first > 0) {
        h->fail_first--;
        status = 503;
    }
    if (h->n < (int)(sizeof(h->reqs) / sizeof(h->reqs[0]))) {
        hook_req *r = &h->reqs[h->n++];
        r->body = strdup(u->data ? u->data : "");
        copy_header(conn, "X-Taskora-Signature", r->signature, sizeof(r->signature));
        copy_header(conn, "X-Taskora-Event-Id", r->event_id, sizeof(r->event_id));
        copy_header(conn, "Content-Type", r->content_type, sizeof(r->content_type));
        r->status = status;
    }
    pthread_mutex_unlock(&h->lock);
    return status;
}

static enum MHD_Result hook_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)url, (void)method, (void)version;
    upload *u = *con_cls;
    if (!u) {
        if (!(u = calloc(1, sizeof(*u))))
            return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*upload_size) {
        char *nd = realloc(u->data, u->len + *upload_size + 1);
        if (!nd)
            return MHD_NO;
        u->data = nd;
        memcpy(u->data + u->len, upload_data, *upload_size);
        u->len += *upload_size;
        u->data[u->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    unsigned status = record(cls, conn, u);
    static const char ok[] = "{\"ok\":true}", busy[] = "{\"error\":\"busy\"}",
                      broken[] = "{\"error\":\"internal\"}";
    const char *body = status == 200 ? ok : status == 503 ? busy : broken;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void hook_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    upload *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
        *con_cls = NULL;
    }
}

void hook_start(hook_server *h)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->status = 200;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                MHD_USE_POLL | MHD_USE_ITC,
                            0, NULL, NULL, hook_request, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, hook_completed,
                            NULL, MHD_OPTION_END);
    ck_assert_ptr_nonnull(h->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    ck_assert(info && info->port);
    snprintf(h->url, sizeof(h->url), "http://127.0.0.1:%u/hooks/taskora", (unsigned)info->port);
}

void hook_stop(hook_server *h)
{
    if (h->d)
        MHD_stop_daemon(h->d);
    for (int i = 0; i < h->n; i++)
        free(h->reqs[i].body);
    pthread_mutex_destroy(&h->lock);
    memset(h, 0, sizeof(*h));
}

void hook_set_status(hook_server *h, unsigned status)
{
    pthread_mutex_lock(&h->lock);
    h->status = status;
    pthread_mutex_unlock(&h->lock);
}

void hook_fail_first(hook_server *h, int n)
{
    pthread_mutex_lock(&h->lock);
    h->fail_first = n;
    pthread_mutex_unlock(&h->lock);
}

int hook_count(hook_server *h)
{
    pthread_mutex_lock(&h->lock);
    int n = h->n;
    pthread_mutex_unlock(&h->lock);
    return n;
}

int hook_wait(hook_server *h, int n, int timeout_s)
{
    double end = th_now_s() + timeout_s;
    while (hook_count(h) < n && th_now_s() < end) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return hook_count(h);
}
