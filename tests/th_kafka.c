/* Kafka for the Check suites: the mock cluster a test owns and producing to it. */
#include "th_kafka.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "event.h"

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

rd_kafka_t *th_producer(const char *bootstrap)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_msg(p != NULL, "producer: %s", errstr);
    return p;
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
