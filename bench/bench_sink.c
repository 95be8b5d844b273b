/* A consumer plugin for the benchmarks: does nothing per event but note its latency. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskora/plugin.h>

#define MAX_SAMPLES 1000000

typedef struct bench {
    const tk_host *host;
    pthread_mutex_t lock;
    long count;
    double *lat; /* seconds from the event's time to its handling */
    long nlat;
} bench;

/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS.ffffff+00:00", or 0. */
static double parse_time(const char *s)
{
    struct tm tm = {0};
    double frac = 0;
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    const char *dot = strchr(s, '.');
    if (dot)
        frac = strtod(dot, NULL);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + frac;
}

static tk_consume_result consume(void *state, const tk_event *ev)
{
    bench *b = state;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double t = parse_time(ev->time);
    pthread_mutex_lock(&b->lock);
    b->count++;
    if (t > 0 && b->nlat < MAX_SAMPLES)
        b->lat[b->nlat++] = (double)now.tv_sec + now.tv_nsec / 1e9 - t;
    pthread_mutex_unlock(&b->lock);
    return TK_CONSUME_OK;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* GET /bench: {"count": N, "p50_ms": .., "p99_ms": ..}; ?reset=1 starts over. */
static int route(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    bench *b = ud;
    pthread_mutex_lock(&b->lock);
    long n = b->nlat;
    double p50 = 0, p99 = 0, max = 0;
    if (n > 0) {
        double *copy = malloc(sizeof(double) * (size_t)n);
        memcpy(copy, b->lat, sizeof(double) * (size_t)n);
        qsort(copy, (size_t)n, sizeof(double), cmp);
        p50 = copy[n / 2] * 1000;
        p99 = copy[(long)(n * 0.99)] * 1000;
        max = copy[n - 1] * 1000;
        free(copy);
    }
    char body[256];
    snprintf(body, sizeof(body), "{\"count\":%ld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}",
             b->count, p50, p99, max);
    const char *reset = b->host->http_query(req, "reset");
    if (reset && strcmp(reset, "1") == 0)
        b->count = b->nlat = 0;
    pthread_mutex_unlock(&b->lock);
    return b->host->http_set_body(resp, "application/json", body, strlen(body));
}

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    bench *b = calloc(1, sizeof(*b));
    if (!b || !(b->lat = malloc(sizeof(double) * MAX_SAMPLES))) {
        free(b);
        return TK_ENOMEM;
    }
    b->host = host;
    pthread_mutex_init(&b->lock, NULL);
    if (host->http_route(inst, "GET", "/bench", route, b) < 0) {
        free(b->lat);
        free(b);
        return TK_ERR;
    }
    *state = b;
    return TK_OK;
}

static void destroy(void *state)
{
    bench *b = state;
    pthread_mutex_destroy(&b->lock);
    free(b->lat);
    free(b);
}

static const tk_plugin desc = {
    TK_PLUGIN_HEADER,
    .name = "bench_sink",
    .version = "1.0.0",
    .description = "no-op consumer that measures event latency",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .init = init,
    .destroy = destroy,
    .consume = consume,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &desc; }
