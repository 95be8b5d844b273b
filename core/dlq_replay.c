/* `taskorad dlq replay`: dead letters back to the topics they came from, for their consumers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "dlq.h"
#include "dlq_read.h"
#include "producer.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1 };

/* The selected dead letters, kept until sent (freed before their reader). */
typedef struct selection {
    rd_kafka_message_t **m;
    size_t n, cap;
    size_t skipped;
} selection;

static int keep(selection *s, rd_kafka_message_t *m)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        rd_kafka_message_t **p = realloc(s->m, cap * sizeof(*p));
        if (!p)
            return -1;
        s->m = p;
        s->cap = cap;
    }
    s->m[s->n++] = m;
    return 0;
}

static void selection_free(selection *s)
{
    for (size_t i = 0; i < s->n; i++)
        rd_kafka_message_destroy(s->m[i]);
    free(s->m);
}

/* Reads the dead letters the command selects into s; 0, or -1 with the reason in err. */
static int select_dead(const tk_dlq_cmd *c, tk_dlq_reader *r, selection *s, char *err,
                       size_t errlen)
{
    rd_kafka_message_t *m;
    int rc = 0;
    while ((c->limit == 0 || (long)s->n < c->limit) && (rc = tk_dlq_next(r, &m, err, errlen)) > 0) {
        tk_dead_letter d;
        tk_dead_letter_describe(m, &d);
        if (c->event_id && strcmp(d.id, c->event_id) != 0) {
            rd_kafka_message_destroy(m);
        } else if (strcmp(d.topic, "-") == 0) {
            fprintf(stderr,
                    "taskorad: dlq replay: skipped %s[%d]@%lld: no x-taskora-original-topic"
                    " header, so not a dead letter of a Taskora consumer\n",
                    c->topic, (int)m->partition, (long long)m->offset);
            s->skipped++;
            rd_kafka_message_destroy(m);
        } else if (keep(s, m)) {
            rd_kafka_message_destroy(m);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return c->limit && (long)s->n >= c->limit ? 0 : rc;
}

typedef struct progress {
    size_t ok, failed, total;
    char first_error[512];
    long long printed_at;
    size_t printed;
    int shown; /* a line was printed */
} progress;

static void failed(progress *p, const char *topic, const char *why)
{
    if (p->failed++ == 0)
        snprintf(p->first_error, sizeof(p->first_error), "%s: %s", topic, why);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    progress *p = opaque;
    if (m->err)
        failed(p, rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    else
        p->ok++;
}

static rd_kafka_t *new_producer(const tk_dlq_cmd *c, progress *p, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512], timeout[32];
    snprintf(timeout, sizeof(timeout), "%d", c->timeout_ms);
    if (tk_kafka_conf_apply(conf, c->producer_props, c->nprops, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* after the config's own: a send that cannot be delivered fails, it does not wait forever */
    const char *mine[][2] = {{"bootstrap.servers", c->brokers},
                             {"enable.idempotence", "true"},
                             {"message.timeout.ms", timeout},
                             {"linger.ms", "5"}};
    for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++) {
        if (rd_kafka_conf_set(conf, mine[i][0], mine[i][1], why, sizeof(why))) {
            snprintf(err, errlen, "kafka producer: %s", why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, tk_kafka_log);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka producer: %s", why);
    }
    return rk;
}

/* The dead-letter headers a replay renames, so a later failure's own are not mistaken. */
static int dead_letter_header(const char *name)
{
    static const char *const names[] = {"error",          "consumer",           "attempts",
                                        "original-topic", "original-partition", "original-offset"};
    if (strncmp(name, "x-taskora-", 10) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name + 10, names[i]) == 0)
            return 1;
    return 0;
}

/* m's headers for its replay: its own, x-taskora-X renamed x-taskora-replayed-X, plus
 * x-taskora-replayed-from (the dead letter) and x-taskora-replayed-at. */
static rd_kafka_headers_t *replay_headers(const rd_kafka_message_t *m, const char *at)
{
    rd_kafka_headers_t *orig = NULL;
    if (rd_kafka_message_headers(m, &orig))
        orig = NULL;
    size_t n = orig ? rd_kafka_header_cnt(orig) : 0;
    rd_kafka_headers_t *h = rd_kafka_headers_new(n + 2);
    const char *name;
    const void *v;
    size_t sz;
    for (size_t i = 0; i < n && !rd_kafka_header_get_all(orig, i, &name, &v, &sz); i++) {
        char renamed[256];
        if (dead_letter_header(name)) {
            snprintf(renamed, sizeof(renamed), "x-taskora-replayed-%s", name + 10);
            name = renamed;
        }
        rd_kafka_header_add(h, name, -1, v, v ? (ssize_t)sz : 0);
    }
    char from[512];
    snprintf(from, sizeof(from), "%s[%d]@%lld", rd_kafka_topic_name(m->rkt), (int)m->partition,
             (long long)m->offset);
    rd_kafka_header_add(h, "x-taskora-replayed-from", -1, from, -1);
    rd_kafka_header_add(h, "x-taskora-replayed-at", -1, at, -1);
    return h;
}

/* "replayed N of M" every 1000 messages or every second (always when final). */
static void report(progress *p, int final)
{
    long long now = tk_now_ms();
    if (p->shown && p->ok == p->printed)
        return;
    if (!final && p->ok / 1000 == p->printed / 1000 && now - p->printed_at < 1000)
        return;
    printf("replayed %zu of %zu\n", p->ok, p->total);
    fflush(stdout);
    p->printed = p->ok;
    p->printed_at = now;
    p->shown = 1;
}

static void send_one(rd_kafka_t *rk, const rd_kafka_message_t *m, const char *at, progress *p)
{
    char topic[256];
    tk_dlq_header(m, "x-taskora-original-topic", topic, sizeof(topic));
    rd_kafka_headers_t *h = replay_headers(m, at);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(m->key, m->key_len),
                                  RD_KAFKA_V_VALUE(m->payload, m->len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                  RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, 50);
        report(p, 0);
    }
    if (e) {
        rd_kafka_headers_destroy(h);
        failed(p, topic, rd_kafka_err2str(e));
    }
    rd_kafka_poll(rk, 0);
    report(p, 0);
}

/* Sends every selected dead letter and waits for every delivery report. */
static void send_all(rd_kafka_t *rk, const selection *s, progress *p)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char at[40];
    tk_dlq_format_time((long long)tv.tv_sec * 1000LL + tv.tv_usec / 1000, at, sizeof(at));
    p->total = s->n;
    p->printed_at = tk_now_ms();
    for (size_t i = 0; i < s->n; i++)
        send_one(rk, s->m[i], at, p);
    /* message.timeout.ms bounds this: every message gets its report */
    while (p->ok + p->failed < p->total) {
        rd_kafka_poll(rk, 100);
        report(p, 0);
    }
    report(p, 1);
}

static void dry_run(const selection *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const rd_kafka_message_t *m = s->m[i];
        tk_dead_letter d;
        tk_dead_letter_describe(m, &d);
        printf("would replay %s (%s) to %s, key %.*s, from %s[%d]@%lld\n", d.id, d.type, d.topic,
               m->key ? (int)m->key_len : 1, m->key ? (const char *)m->key : "-",
               rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset);
    }
    printf("dry run: %zu dead letter%s would be replayed; nothing was sent\n", s->n,
           s->n == 1 ? "" : "s");
}

int tk_dlq_replay(const tk_dlq_cmd *c)
{
    char err[1024];
    tk_dlq_reader *r = tk_dlq_open(c->brokers, c->consumer_props, c->nprops, c->topic, c->since_ms,
                                   c->timeout_ms, err, sizeof(err));
    if (!r) {
        fprintf(stderr, "taskorad: dlq replay: %s\n", err);
        return EXIT_RUNTIME;
    }
    selection s = {0};
    int code = EXIT_OK;
    if (select_dead(c, r, &s, err, sizeof(err))) {
        fprintf(stderr, "taskorad: dlq replay: %s; nothing was sent\n", err);
        code = EXIT_RUNTIME;
    } else if (s.n == 0 && c->event_id) {
        fprintf(stderr, "taskorad: dlq replay: no dead letter of event %s in %s\n", c->event_id,
                c->topic);
        code = EXIT_RUNTIME;
    } else if (s.n == 0) {
        printf("no dead letters to replay in %s\n", c->topic);
    } else if (c->dry_run) {
        dry_run(&s);
    } else {
        progress p = {0};
        rd_kafka_t *rk = new_producer(c, &p, err, sizeof(err));
        if (!rk) {
            fprintf(stderr, "taskorad: dlq replay: %s\n", err);
            code = EXIT_RUNTIME;
        } else {
            send_all(rk, &s, &p);
            rd_kafka_destroy(rk);
            if (p.failed) {
                fprintf(stderr, "taskorad: dlq replay: %zu of %zu could not be sent (first: %s)\n",
                        p.failed, p.total, p.first_error);
                code = EXIT_RUNTIME;
            }
        }
    }
    selection_free(&s);
    tk_dlq_close(r);
    return code;
}
