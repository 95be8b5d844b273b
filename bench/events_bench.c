/* Benchmarks of the event path, run by hand; prints figures, asserts nothing.
 *   1. consumer pipeline (taskorad + a no-op plugin) vs a raw librdkafka consumer, same topic,
 *      same Kafka-protocol broker, in one run: messages/s and the ratio;
 *   2. outbox relay throughput (committed rows to delivery reports) and end-to-end latency
 *      (commit to handler) at a steady rate.
 * Usage (from a build folder, with a PostgreSQL URL for part 2):
 *   DATABASE_URL=postgresql://... bench/events_bench [messages=50000] [rate/s=1000] [seconds=10] */
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

#include "event.h"
#include "outbox.h"
#include "broker.h"
#include "testhelp.h"

static char bootstrap[256];
static char tmp[] = "/tmp/taskora-bench-XXXXXX";

static void produce(const char *topic, long n)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "10", err, sizeof(err));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    json_t *payload = json_pack("{s:i}", "seq", 1);
    for (long i = 0; i < n; i++) {
        char user[16], id[37];
        snprintf(user, sizeof(user), "u%ld", i % 64);
        char *v = tk_event_encode("bench", "bench.event", user, NULL, payload, id);
        while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(user, strlen(user)),
                                 RD_KAFKA_V_VALUE(v, strlen(v)),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 10);
        free(v);
    }
    json_decref(payload);
    rd_kafka_flush(p, 60000);
    rd_kafka_destroy(p);
}

/*
 * A raw librdkafka consumer that does the one thing any consumer of these events must do,
 * parse the JSON value: messages/s from its first message to its n-th.
 */
static double raw_rate(const char *topic, long n)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "bench-raw", err, sizeof(err));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
    rd_kafka_conf_set(conf, "session.timeout.ms", "6000", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    long got = 0;
    double first = 0, end = th_now_s() + 120;
    while (got < n && th_now_s() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err) {
            if (got++ == 0)
                first = th_now_s();
            json_decref(json_loadb(m->payload, m->len, 0, NULL));
        }
        if (m)
            rd_kafka_message_destroy(m);
    }
    double rate = got > 1 ? (got - 1) / (th_now_s() - first) : 0;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rate;
}

/* GET url, returning the body (static buffer). */
static const char *get(const char *url)
{
    static char body[65536];
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

static pid_t start_taskorad(const char *config, char *url, size_t urllen)
{
    th_daemon d;
    char log[512];
    snprintf(log, sizeof(log), "%s/taskorad.log", tmp);
    if (th_daemon_start(&d, config, log, 30000)) {
        fprintf(stderr, "taskorad did not start; see %s\n", log);
        exit(1);
    }
    snprintf(url, urllen, "%s", d.url);
    free(d.log_path);
    return d.pid;
}

static void stop(pid_t pid)
{
    kill(pid, SIGINT); /* no drain delay */
    waitpid(pid, NULL, 0);
}

static char *config(const char *pg, const char *topic)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"log\": {\"level\": \"${BENCH_LOG_LEVEL:-info}\", \"format\": \"text\"}, %s%s%s"
             " \"kafka\": {\"brokers\": \"%s\", \"consumer\": {\"session.timeout.ms\": \"6000\", "
             "\"fetch.wait.max.ms\": \"10\","
             "  \"heartbeat.interval.ms\": \"500\"}},"
             " \"outbox\": {\"relay\": %s, \"poll_ms\": 1000},"
             " \"http\": {\"listen\": \"127.0.0.1:0\"}, \"plugin_dir\": \"%s/bench/.libs\","
             " \"plugins\": [{\"name\": \"noop\", \"load\": \"bench_sink\","
             "  \"consume\": {\"topics\": [\"%s\"], \"group\": \"bench-%s\", \"workers\": 4,"
             "   \"queue_max\": 10000}}]}",
             pg ? "\"postgres\": {\"url\": \"" : "", pg ? pg : "", pg ? "\"}," : "", bootstrap,
             pg ? "true" : "false", th_builddir(), topic, topic);
    return th_write(tmp, "bench.json", text);
}

int main(int argc, char **argv)
{
    /* the mock broker keeps a few MB per partition: more messages would be dropped */
    long n = argc > 1 ? atol(argv[1]) : 50000;
    int rate = argc > 2 ? atoi(argv[2]) : 1000;
    int seconds = argc > 3 ? atoi(argv[3]) : 10;
    const char *pg = getenv("DATABASE_URL");
    if (!getenv("TK_BUILDDIR"))
        setenv("TK_BUILDDIR", ".", 1);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!mkdtemp(tmp))
        return 1;
    char err[256];
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(owner, 1);
    rd_kafka_mock_topic_create(mc, "bench-consume", 6, 1);
    rd_kafka_mock_topic_create(mc, "task-events", 6, 1);
    snprintf(bootstrap, sizeof(bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(mc));
    tk_mock_nodelay(bootstrap); /* as a real broker: no Nagle (see broker.h) */

    /* 1. consumer pipeline vs raw */
    printf("== consumer: %ld messages, 6 partitions, one Kafka-protocol broker on loopback\n", n);
    produce("bench-consume", n);
    double raw = raw_rate("bench-consume", n);
    printf("raw librdkafka consumer:        %9.0f msg/s\n", raw);
    char url[256], bench_url[300];
    char *cfg = config(NULL, "bench-consume");
    pid_t pid = start_taskorad(cfg, url, sizeof(url));
    snprintf(bench_url, sizeof(bench_url), "%s/bench", url);
    double first = 0, end = th_now_s() + 300;
    long seen = 0;
    while (seen < n && th_now_s() < end) {
        seen = json_long(get(bench_url), "count");
        if (seen > 0 && first == 0)
            first = th_now_s();
        usleep(5000);
    }
    double piped = seen > 1 ? seen / (th_now_s() - first) : 0;
    printf("taskorad + no-op plugin:        %9.0f msg/s  (%.2fx raw)\n", piped, piped / raw);
    stop(pid);
    free(cfg);

    if (!pg) {
        printf("== outbox: skipped (set DATABASE_URL to a PostgreSQL database)\n");
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(owner);
        return 0;
    }
    /* 2. outbox relay: steady rate, then a burst */
    cfg = config(pg, "task-events");
    const char *margs[] = {"migrate", "-c", cfg, NULL};
    char *merr = NULL;
    if (th_taskorad(margs, NULL, &merr, 60000) != 0) {
        fprintf(stderr, "migrate failed: %s\n", merr);
        return 1;
    }
    free(merr);
    pid = start_taskorad(cfg, url, sizeof(url));
    snprintf(bench_url, sizeof(bench_url), "%s/bench", url);
    PGconn *c = PQconnectdb(pg);
    while (json_long(get(bench_url), "count") == 0) { /* wait for the consumer to join */
        tk_outbox_append(c, "bench", "task-events", "bench.warmup", "w", NULL, "{}", NULL, NULL);
        sleep(1);
    }
    sleep(2);
    get(strcat(bench_url, "?reset=1"));
    snprintf(bench_url, sizeof(bench_url), "%s/bench", url);
    long total = (long)rate * seconds;
    printf("== outbox: %d events/s for %d s, one transaction each\n", rate, seconds);
    double start = th_now_s();
    for (long i = 0; i < total; i++) {
        double due = start + (double)i / rate;
        double wait = due - th_now_s();
        if (wait > 0)
            usleep((useconds_t)(wait * 1e6));
        char user[16];
        snprintf(user, sizeof(user), "u%ld", i % 64);
        /* one statement, so one transaction of its own */
        tk_outbox_append(c, "bench", "task-events", "bench.event", user, NULL, "{\"n\":1}", NULL,
                         NULL);
    }
    end = th_now_s() + 60;
    while (json_long(get(bench_url), "count") < total && th_now_s() < end)
        usleep(10000);
    printf("commit -> handler latency:      %s\n", get(bench_url));
    {
        /* the relay's share: insert -> delivery report, from its histogram */
        char murl[300];
        snprintf(murl, sizeof(murl), "%s/metrics", url);
        char *m = strdup(get(murl)), *save = NULL;
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

    long burst = 20000;
    printf("== outbox: a burst of %ld events committed at once\n", burst);
    get(strcat(bench_url, "?reset=1"));
    snprintf(bench_url, sizeof(bench_url), "%s/bench", url);
    PQclear(PQexec(c, "BEGIN"));
    for (long i = 0; i < burst; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%ld", i % 64);
        tk_outbox_append(c, "bench", "task-events", "bench.event", user, NULL, "{\"n\":1}", NULL,
                         NULL);
    }
    PQclear(PQexec(c, "COMMIT"));
    start = th_now_s();
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
    end = th_now_s() + 120;
    while (json_long(get(bench_url), "count") < burst && th_now_s() < end)
        usleep(10000);
    printf("end to end (commit -> handled): %9.0f events/s\n", burst / (th_now_s() - start));
    PQfinish(c);
    stop(pid);
    free(cfg);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(owner);
    return 0;
}
