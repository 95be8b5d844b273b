/* Benchmarks of the event path, run by hand; prints figures, asserts nothing.
 *   1. consumer pipeline vs a raw librdkafka consumer, same topic, same Kafka-protocol broker,
 *      in one run: taskorad with the no-op C plugin, with a no-op Lua script and with a Lua
 *      script that reads the payload; messages/s and the ratios (consume_bench.c);
 *   2. outbox relay throughput (committed rows to delivery reports) and end-to-end latency
 *      (commit to handler) at a steady rate.
 * Usage (from a build folder, with a PostgreSQL URL for part 2):
 *   DATABASE_URL=postgresql://... bench/events_bench [messages=500000] [rate/s=1000] [seconds=10]
 *     [rounds=3]
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "broker.h"
#include "outbox.h"
#include "testhelp.h"

char bench_bootstrap[256];
char bench_tmp[] = "/tmp/taskora-bench-XXXXXX";

/* GET url, returning the body (static buffer). */
const char *bench_get(const char *url)
{
    static char body[1 << 20]; /* /metrics fits */
    th_response r;
    body[0] = '\0';
    if (th_http("GET", url, NULL, 0, NULL, &r) == 0)
        snprintf(body, sizeof(body), "%s", r.body);
    th_response_free(&r);
    return body;
}

static long json_long(const char *json, const char *key)
{
    json_t *o = json_loads(json, 0, NULL);
    long v = (long)json_number_value(json_object_get(o, key));
    json_decref(o);
    return v;
}

pid_t bench_start(const char *config, char *url, size_t urllen)
{
    th_daemon d;
    char log[512];
    snprintf(log, sizeof(log), "%s/taskorad.log", bench_tmp);
    if (th_daemon_start(&d, config, log, 30000)) {
        fprintf(stderr, "taskorad did not start; see %s\n", log);
        exit(1);
    }
    snprintf(url, urllen, "%s", d.url);
    free(d.log_path);
    return d.pid;
}

void bench_stop(pid_t pid)
{
    kill(pid, SIGINT); /* no drain delay */
    waitpid(pid, NULL, 0);
}

char *bench_config(const char *pg, const char *topic, const char *group, const char *plugin)
{
    char text[4096], name[64];
    snprintf(text, sizeof(text),
             "{\"log\": {\"level\": \"${BENCH_LOG_LEVEL:-info}\", \"format\": \"text\"}, %s%s%s"
             " \"kafka\": {\"brokers\": \"%s\", \"consumer\": {\"session.timeout.ms\": \"6000\", "
             "\"fetch.wait.max.ms\": \"10\","
             "  \"heartbeat.interval.ms\": \"500\"}},"
             " \"outbox\": {\"relay\": %s, \"poll_ms\": 1000},"
             " \"http\": {\"listen\": \"127.0.0.1:0\"},"
             " \"plugin_dir\": \"%s/bench/.libs:%s/plugins/lua/.libs\","
             " \"plugins\": [{%s,"
             "  \"consume\": {\"topics\": [\"%s\"], \"group\": \"bench-%s\", \"workers\": 4,"
             "   \"queue_max\": 10000}}]}",
             pg ? "\"postgres\": {\"url\": \"" : "", pg ? pg : "", pg ? "\"}," : "",
             bench_bootstrap, pg ? "true" : "false", th_builddir(), th_builddir(), plugin, topic,
             group);
    snprintf(name, sizeof(name), "bench-%s.json", group);
    return th_write(bench_tmp, name, text);
}

/* Waits until the /bench count reaches n (or timeout seconds pass). */
static void wait_count(const char *bench_url, long n, double timeout)
{
    double end = th_now_s() + timeout;
    while (json_long(bench_get(bench_url), "count") < n && th_now_s() < end)
        usleep(10000);
}

/* The relay's share, insert -> delivery report, from its histogram on /metrics. */
static void print_relay_histogram(const char *url)
{
    char murl[300];
    snprintf(murl, sizeof(murl), "%s/metrics", url);
    char *m = strdup(bench_get(murl)), *save = NULL;
    printf("relay, insert -> delivery report (cumulative):");
    for (char *line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, "taskora_outbox_delivery_seconds_bucket", 38) == 0) {
            const char *le = strstr(line, "le=\"");
            const char *v = strrchr(line, ' ');
            if (le && v)
                printf(" <=%.*s:%s", (int)(strchr(le + 4, '"') - le - 4), le + 4, v + 1);
        }
    printf("\n");
    free(m);
}

static void append(PGconn *c, long i)
{
    char user[16];
    snprintf(user, sizeof(user), "u%ld", i % 64);
    tk_outbox_append(c, "bench", "task-events", "bench.event", user, NULL, "{\"n\":1}", NULL, NULL,
                     NULL);
}

/* The outbox at a steady rate, one transaction per event: commit -> handler latency. */
static void outbox_steady(PGconn *c, const char *url, int rate, int seconds)
{
    char bench_url[300];
    snprintf(bench_url, sizeof(bench_url), "%s/bench?reset=1", url);
    bench_get(bench_url);
    snprintf(bench_url, sizeof(bench_url), "%s/bench", url);
    long total = (long)rate * seconds;
    printf("== outbox: %d events/s for %d s, one transaction each\n", rate, seconds);
    double start = th_now_s();
    for (long i = 0; i < total; i++) {
        double due = start + (double)i / rate;
        double wait = due - th_now_s();
        if (wait > 0)
            usleep((useconds_t)(wait * 1e6));
        append(c, i); /* one statement, so one transaction of its own */
    }
    wait_count(bench_url, total, 60);
    printf("commit -> handler latency:      %s\n", bench_get(bench_url));
    print_relay_histogram(url);
}

/* A burst committed at once: relay throughput and end-to-end throughput. */
static void outbox_burst(PGconn *c, const char *url)
{
    char bench_url[300];
    long burst = 20000;
    printf("== outbox: a burst of %ld events committed at once\n", burst);
    snprintf(bench_url, sizeof(bench_url), "%s/bench?reset=1", url);
    bench_get(bench_url);
    snprintf(bench_url, sizeof(bench_url), "%s/bench", url);
    PQclear(PQexec(c, "BEGIN"));
    for (long i = 0; i < burst; i++)
        append(c, i);
    PQclear(PQexec(c, "COMMIT"));
    double start = th_now_s();
    while (1) {
        PGresult *r = PQexec(c, "SELECT count(*) FROM taskora_outbox WHERE sent_at IS NULL");
        long left = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (left == 0 || th_now_s() - start > 120)
            break;
        usleep(2000);
    }
    double relay_s = th_now_s() - start;
    printf("relay (commit -> all delivered): %9.0f events/s (%.2f s)\n", burst / relay_s, relay_s);
    wait_count(bench_url, burst, 120);
    printf("end to end (commit -> handled): %9.0f events/s\n", burst / (th_now_s() - start));
}

/* Part 2: migrate, start taskorad with the relay on, then the steady rate and the burst. */
static int bench_outbox(const char *pg, int rate, int seconds)
{
    char url[256], bench_url[300];
    char *cfg = bench_config(pg, "task-events", "task-events",
                             "\"name\": \"noop\", \"load\": \"bench_sink\"");
    const char *margs[] = {"migrate", "-c", cfg, NULL};
    char *merr = NULL;
    if (th_taskorad(margs, NULL, &merr, 60000) != 0) {
        fprintf(stderr, "migrate failed: %s\n", merr);
        return 1;
    }
    free(merr);
    pid_t pid = bench_start(cfg, url, sizeof(url));
    snprintf(bench_url, sizeof(bench_url), "%s/bench", url);
    PGconn *c = PQconnectdb(pg);
    while (json_long(bench_get(bench_url), "count") == 0) { /* wait for the consumer to join */
        tk_outbox_append(c, "bench", "task-events", "bench.warmup", "w", NULL, "{}", NULL, NULL,
                         NULL);
        sleep(1);
    }
    sleep(2);
    outbox_steady(c, url, rate, seconds);
    outbox_burst(c, url);
    PQfinish(c);
    bench_stop(pid);
    free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 500000;
    int rate = argc > 2 ? atoi(argv[2]) : 1000;
    int seconds = argc > 3 ? atoi(argv[3]) : 10;
    int rounds = argc > 4 ? atoi(argv[4]) : 3;
    const char *pg = getenv("DATABASE_URL");
    char cwd[4096];
    if (!getenv("TK_BUILDDIR") && getcwd(cwd, sizeof(cwd)))
        setenv("TK_BUILDDIR", cwd, 1); /* absolute: config paths are relative to their file */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!mkdtemp(bench_tmp))
        return 1;
    char err[256];
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(owner, 1);
    /* the mock broker keeps 5 MB per partition (about 13,000 of these events) */
    rd_kafka_mock_topic_create(mc, "bench-consume", BENCH_PARTITIONS, 1);
    rd_kafka_mock_topic_create(mc, "task-events", 6, 1);
    snprintf(bench_bootstrap, sizeof(bench_bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(mc));
    tk_mock_nodelay(bench_bootstrap); /* as a real broker: no Nagle (see broker.h) */

    bench_consumers(n, rounds > 0 ? rounds : 1);
    int rc = 0;
    if (pg)
        rc = bench_outbox(pg, rate, seconds);
    else
        printf("== outbox: skipped (set DATABASE_URL to a PostgreSQL database)\n");
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(owner);
    return rc;
}
