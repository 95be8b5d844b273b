/* Part 1 of events_bench: the consumer pipeline against a raw librdkafka consumer, all reading
 * the same topic on the same broker in one run:
 *   - raw librdkafka (poll + parse the JSON value),
 *   - taskorad with the no-op C plugin bench_sink,
 *   - taskorad with a lua instance running `function handle(event) end`,
 *   - taskorad with a lua instance that reads event.type and event.payload (decodes it).
 * Every taskorad run has the same consume settings (4 workers, queue_max 10000) and is timed
 * the same way, by taskora_consumer_succeeded_total on /metrics. */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "event.h"
#include "testhelp.h"

/* Produces n events of type bench.event (keys u0..u63) round-robin over the topic's partitions:
 * how many the broker kept. */
static long produce(const char *topic, long n)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bench_bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "10", err, sizeof(err));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    json_t *payload = json_pack("{s:i}", "seq", 1);
    for (long i = 0; i < n; i++) {
        char user[16], id[37];
        snprintf(user, sizeof(user), "u%ld", i % 64);
        char *v = tk_event_encode("bench", "bench.event", user, NULL, payload, id);
        while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic),
                                 RD_KAFKA_V_PARTITION((int32_t)(i % BENCH_PARTITIONS)),
                                 RD_KAFKA_V_KEY(user, strlen(user)), RD_KAFKA_V_VALUE(v, strlen(v)),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(p, 10);
        free(v);
    }
    json_decref(payload);
    rd_kafka_flush(p, 60000);
    long kept = 0;
    for (int i = 0; i < BENCH_PARTITIONS; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(p, topic, i, &lo, &hi, 10000) == 0)
            kept += hi - lo;
    }
    rd_kafka_destroy(p);
    return kept;
}

/*
 * A raw librdkafka consumer that does the one thing any consumer of these events must do,
 * parse the JSON value: messages/s from its first message to its n-th.
 */
static double raw_rate(const char *topic, const char *group, long n)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bench_bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
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

/* Events the instance `name` finished, from taskorad's /metrics (-1 when unreadable). */
static long succeeded(const char *url, const char *name)
{
    char murl[300], key[160];
    snprintf(murl, sizeof(murl), "%s/metrics", url);
    snprintf(key, sizeof(key), "taskora_consumer_succeeded_total{plugin=\"%s\"}", name);
    const char *body = bench_get(murl);
    const char *line = strstr(body, key);
    return line ? atol(line + strlen(key)) : -1;
}

/* CPU seconds (user + system) the process has used so far, from /proc. */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t len = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')'); /* the command may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct run {
    double rate;   /* events/s */
    double cpu_us; /* taskorad's CPU time per event, start-up included */
} run;

/*
 * taskorad consuming n events with the instance described by plugin (named "noop"), as group
 * bench-<group>. The consumer publishes its counts once a second, so the rate is taken between
 * two publications inside the run: the first and the last one before the n-th event (the
 * run must last at least two seconds; more messages make it longer).
 */
static run pipeline_run(const char *topic, const char *group, const char *plugin, long n)
{
    char url[256];
    char *cfg = bench_config(NULL, topic, group, plugin);
    pid_t pid = bench_start(cfg, url, sizeof(url));
    double t_first = 0, t_last = 0, end = th_now_s() + 300;
    long seen = 0, c_first = 0, c_last = 0;
    while (seen < n && th_now_s() < end) {
        long now = succeeded(url, "noop");
        if (now > seen && now < n) {
            if (t_first == 0) {
                t_first = th_now_s();
                c_first = now;
            } else {
                t_last = th_now_s();
                c_last = now;
            }
        }
        seen = now > seen ? now : seen;
        usleep(20000); /* /metrics is not free: 50 looks a second */
    }
    run r = {0, seen > 0 ? cpu_seconds(pid) * 1e6 / (double)seen : 0};
    bench_stop(pid);
    free(cfg);
    if (seen < n)
        fprintf(stderr, "%s: only %ld of %ld events were handled\n", group, seen, n);
    if (t_last == 0)
        fprintf(stderr, "%s: the run was too short to measure; pass more messages\n", group);
    else
        r.rate = (c_last - c_first) / (t_last - t_first);
    return r;
}

/* The instance of each taskorad variant: the C no-op, the no-op script, the payload reader. */
#define VARIANTS 3
static const char *const variant_name[VARIANTS] = {"c", "lua", "lua-payload"};

static void variant_plugins(char plugins[VARIANTS][1024])
{
    char *noop = th_write(bench_tmp, "noop.lua", "function handle(event) end\n");
    char *touch = th_write(bench_tmp, "payload.lua",
                           "function handle(event)\n"
                           "  local t, p = event.type, event.payload\n"
                           "  if t == nil or p.seq == nil then return \"fail\" end\n"
                           "end\n");
    snprintf(plugins[0], 1024, "\"name\": \"noop\", \"load\": \"bench_sink\"");
    snprintf(plugins[1], 1024,
             "\"name\": \"noop\", \"load\": \"lua\", \"config\": {\"script\": \"%s\"}", noop);
    snprintf(plugins[2], 1024,
             "\"name\": \"noop\", \"load\": \"lua\", \"config\": {\"script\": \"%s\"}", touch);
    free(noop);
    free(touch);
}

/*
 * rounds rounds, each the raw consumer then the three taskorad variants (each with a group of
 * its own, so each reads the whole topic); the best of each is printed: other load on the
 * machine only ever slows a run down.
 */
void bench_consumers(long n, int rounds)
{
    const char *topic = "bench-consume";
    long kept = produce(topic, n);
    if (kept < n) {
        fprintf(stderr, "the broker kept %ld of the %ld messages; measuring those\n", kept, n);
        n = kept;
    }
    printf("== consumer: %ld messages, %d partitions, one Kafka-protocol broker on loopback;\n"
           "   taskorad: 4 workers, queue_max 10000; best of %d rounds\n",
           n, BENCH_PARTITIONS, rounds);
    char plugins[VARIANTS][1024], group[64];
    variant_plugins(plugins);
    double raw = 0;
    run best[VARIANTS] = {{0, 0}};
    for (int i = 0; i < rounds; i++) {
        snprintf(group, sizeof(group), "bench-raw-%d", i);
        double r = raw_rate(topic, group, n);
        raw = r > raw ? r : raw;
        printf("round %d: raw %.0f", i + 1, r);
        for (int v = 0; v < VARIANTS; v++) {
            snprintf(group, sizeof(group), "%s-%d", variant_name[v], i);
            run x = pipeline_run(topic, group, plugins[v], n);
            printf(", %s %.0f (%.1f us CPU/event)", variant_name[v], x.rate, x.cpu_us);
            if (x.rate > best[v].rate)
                best[v].rate = x.rate;
            if (best[v].cpu_us == 0 || x.cpu_us < best[v].cpu_us)
                best[v].cpu_us = x.cpu_us;
        }
        printf(" msg/s\n");
    }
    double c = best[0].rate, lua = best[1].rate, payload = best[2].rate;
    printf("raw librdkafka consumer:           %9.0f msg/s\n", raw);
    printf("taskorad + no-op C plugin:         %9.0f msg/s  %5.1f us CPU/event\n", c,
           best[0].cpu_us);
    printf("taskorad + no-op Lua script:       %9.0f msg/s  %5.1f us CPU/event\n", lua,
           best[1].cpu_us);
    printf("taskorad + Lua reading the payload:%9.0f msg/s  %5.1f us CPU/event\n", payload,
           best[2].cpu_us);
    printf("Lua/C %.2f (goal >= 0.70), Lua reading the payload/C %.2f, C/raw %.2f\n", lua / c,
           payload / c, c / raw);
}
