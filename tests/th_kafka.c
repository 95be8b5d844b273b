/* Kafka for the Check suites: the mock cluster a test owns, producing to it, reading a DLQ. */
#include "th_kafka.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "event.h"
#include "testhelp.h"

struct th_mock {
    rd_kafka_t *owner;
    rd_kafka_mock_cluster_t *cluster;
    char bootstrap[256];
};

th_mock *th_mock_start(const th_topic *topics)
{
    th_mock *m = calloc(1, sizeof(*m));
    ck_assert_ptr_nonnull(m);
    char errstr[256];
    m->owner = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), errstr, sizeof(errstr));
    ck_assert_msg(m->owner != NULL, "mock cluster owner: %s", errstr);
    m->cluster = rd_kafka_mock_cluster_new(m->owner, 1);
    ck_assert_ptr_nonnull(m->cluster);
    for (const th_topic *t = topics; t->name; t++)
        ck_assert_int_eq(rd_kafka_mock_topic_create(m->cluster, t->name, t->partitions, 1), 0);
    snprintf(m->bootstrap, sizeof(m->bootstrap), "%s",
             rd_kafka_mock_cluster_bootstraps(m->cluster));
    tk_mock_nodelay(m->bootstrap);
    return m;
}

const char *th_mock_bootstrap(const th_mock *m) { return m->bootstrap; }

rd_kafka_mock_cluster_t *th_mock_cluster(const th_mock *m) { return m->cluster; }

void th_mock_stop(th_mock *m)
{
    if (!m)
        return;
    if (m->cluster)
        rd_kafka_mock_cluster_destroy(m->cluster);
    if (m->owner)
        rd_kafka_destroy(m->owner);
    free(m);
}

/* A client of `type` for bootstrap with one more setting; a failure aborts the test. */
static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap, const char *name,
                          const char *value)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "Kafka client for %s: %s", bootstrap, errstr);
    return rk;
}

rd_kafka_t *th_producer(const char *bootstrap)
{
    return client(RD_KAFKA_PRODUCER, bootstrap, "linger.ms", "5");
}

void th_send(rd_kafka_t *p, const char *topic, const char *key, const char *value)
{
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_PARTITION(key ? RD_KAFKA_PARTITION_UA : 0),
                                  RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                  RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(p, 10);
    ck_assert_msg(e == 0, "produce to %s: %s", topic, rd_kafka_err2str(e));
}

void th_flush(rd_kafka_t *p) { ck_assert_int_eq(rd_kafka_flush(p, 30000), 0); }

void th_producer_close(rd_kafka_t *p)
{
    th_flush(p);
    rd_kafka_destroy(p);
}

void th_produce(const char *bootstrap, const char *topic, const char *key, const char *value)
{
    rd_kafka_t *p = th_producer(bootstrap);
    th_send(p, topic, key, value);
    th_producer_close(p);
}

void th_produce_events(const char *bootstrap, const char *topic, int n, int users, const char *type,
                       th_payload_fn payload, void *ud)
{
    rd_kafka_t *p = th_producer(bootstrap);
    for (int i = 0; i < n; i++) {
        char user[16], id[37];
        snprintf(user, sizeof(user), "u%d", i % users);
        json_t *data = payload(i / users, ud);
        char *value = tk_event_encode("test", type, user, NULL, data, id);
        json_decref(data);
        ck_assert_ptr_nonnull(value);
        th_send(p, topic, user, value);
        free(value);
    }
    th_producer_close(p);
}

static void copy_header(rd_kafka_message_t *m, const char *name, char *out, size_t outlen)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t sz;
    out[0] = '\0';
    if (!rd_kafka_message_headers(m, &h) && !rd_kafka_header_get_last(h, name, &v, &sz))
        snprintf(out, outlen, "%.*s", (int)sz, (const char *)v);
}

int th_dlq_read(const char *bootstrap, const char *topic, th_dlq_msg *out, int n, int timeout_s,
                th_dlq_filter keep, void *ud)
{
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, bootstrap, "group.id", "dlq-reader");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int got = 0;
    double end = th_now_s() + timeout_s;
    while (got < n && th_now_s() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m && !m->err) {
            /* copied: a message must be freed before its consumer is destroyed */
            th_dlq_msg *d = &out[got];
            d->len = m->len;
            copy_header(m, "x-taskora-error", d->error, sizeof(d->error));
            copy_header(m, "x-taskora-attempts", d->attempts, sizeof(d->attempts));
            copy_header(m, "x-taskora-consumer", d->consumer, sizeof(d->consumer));
            copy_header(m, "x-taskora-original-topic", d->topic, sizeof(d->topic));
            copy_header(m, "x-taskora-original-partition", d->partition, sizeof(d->partition));
            copy_header(m, "x-taskora-original-offset", d->offset, sizeof(d->offset));
            if (!keep || keep(d, ud))
                got++;
        }
        if (m)
            rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got;
}
