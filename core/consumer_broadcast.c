/*
 * Broadcast consumers: every process sees every event (real-time push). There is no group to
 * join: the poll thread assigns every partition of the topics directly, at the end as it is at
 * start-up (or, with a rewind, at the events of the last N ms), so the process is positioned as
 * soon as the assignment is made, with no rebalance and no join delay. "Positioned" is reported
 * once every partition has been read up to the end it had at start-up: from then on nothing
 * produced is missed, whatever later happens to the brokers.
 */
#include "consumer_broadcast.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer_work.h"
#include "log.h"

typedef struct bc_target {
    char *topic;
    int32_t partition;
    int64_t end; /* the end offset at start-up: read up to here, the process is positioned */
    int reached;
} bc_target;

/* Adds every partition of one topic to the list. 0, or -1 (logged when `tell`). */
static int add_partitions(tk_consumer *c, const char *topic, rd_kafka_topic_partition_list_t *l,
                          int tell)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
    if (!rkt)
        return -1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, rkt, &md, 2000);
    rd_kafka_topic_destroy(rkt);
    if (!e && (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0))
        e = md->topic_cnt == 1 && md->topics[0].err ? md->topics[0].err
                                                    : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (e) {
        if (tell)
            tk_logf(c->instance, TK_LOG_WARN, "broadcast: partitions of %s: %s (retrying)", topic,
                    rd_kafka_err2str(e));
        if (md)
            rd_kafka_metadata_destroy(md);
        return -1;
    }
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(l, topic, md->topics[0].partitions[i].id);
    rd_kafka_metadata_destroy(md);
    return 0;
}

/*
 * Where each partition starts: its end, or with a rewind the first message of the last
 * rewind_ms (offsets_for_times; a broker that cannot look up by time answers "none", and then at
 * most rewind_max messages back), never more than rewind_max messages back. Fills
 * c->targets with the ends. 0, or -1 (logged when `tell`).
 */
static int start_offsets(tk_consumer *c, rd_kafka_topic_partition_list_t *l, int tell)
{
    rd_kafka_topic_partition_list_t *times = NULL;
    int64_t *lo = calloc((size_t)l->cnt, sizeof(*lo));
    c->targets = calloc((size_t)l->cnt, sizeof(bc_target));
    if (!lo || !c->targets)
        goto fail;
    for (int i = 0; i < l->cnt; i++) {
        int64_t hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            c->rk, l->elems[i].topic, l->elems[i].partition, &lo[i], &hi, 2000);
        if (e) {
            if (tell)
                tk_logf(c->instance, TK_LOG_WARN, "broadcast: end of %s[%d]: %s (retrying)",
                        l->elems[i].topic, (int)l->elems[i].partition, rd_kafka_err2str(e));
            goto fail;
        }
        bc_target *t = &c->targets[c->ntargets];
        if (!(t->topic = strdup(l->elems[i].topic)))
            goto fail;
        c->ntargets++;
        t->partition = l->elems[i].partition;
        t->end = hi;
        l->elems[i].offset = hi;
    }
    if (c->rewind_ms > 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t since = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - c->rewind_ms;
        if (!(times = rd_kafka_topic_partition_list_copy(l)))
            goto fail;
        for (int i = 0; i < times->cnt; i++)
            times->elems[i].offset = since;
        if (rd_kafka_offsets_for_times(c->rk, times, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            goto fail;
        for (int i = 0; i < l->cnt; i++) {
            int64_t hi = c->targets[i].end, start = hi - c->rewind_max;
            int64_t at = times->elems[i].err ? -1 : times->elems[i].offset;
            if (at >= 0 && at > start)
                start = at;
            l->elems[i].offset = start < lo[i] ? lo[i] : start > hi ? hi : start;
        }
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].offset >= c->targets[i].end)
            c->targets[i].reached = 1;
        else
            c->nbehind++;
    rd_kafka_topic_partition_list_destroy(times);
    free(lo);
    return 0;
fail:
    if (times)
        rd_kafka_topic_partition_list_destroy(times);
    free(lo);
    tk_broadcast_free(c);
    return -1;
}

int tk_broadcast_assign(tk_consumer *c, int tell)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    int rc = -1;
    for (size_t i = 0; i < json_array_size(c->topics); i++)
        if (add_partitions(c, json_string_value(json_array_get(c->topics, i)), l, tell))
            goto done;
    if (start_offsets(c, l, tell))
        goto done;
    tk_consumer_assign(c, l);
    rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, l);
    if (e) {
        tk_logf(c->instance, TK_LOG_ERROR, "broadcast: assigning: %s", rd_kafka_err2str(e));
        tk_consumer_revoke(c, l);
        tk_broadcast_free(c);
        goto done;
    }
    atomic_store(&c->joined, 1);
    long long behind = 0;
    for (int i = 0; i < l->cnt; i++)
        behind += c->targets[i].end - l->elems[i].offset;
    tk_logf(c->instance, TK_LOG_INFO,
            "broadcast: %d partition(s) assigned, %lld message(s) to read up to the end", l->cnt,
            behind);
    if (c->nbehind == 0)
        atomic_store(&c->positioned, 1);
    rc = 0;
done:
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

void tk_broadcast_progress(tk_consumer *c, const char *topic, int32_t partition, int64_t next)
{
    if (c->nbehind == 0)
        return;
    for (size_t i = 0; i < c->ntargets; i++) {
        bc_target *t = &c->targets[i];
        if (t->reached || t->partition != partition || next < t->end || strcmp(t->topic, topic))
            continue;
        t->reached = 1;
        if (--c->nbehind == 0) {
            tk_logf(c->instance, TK_LOG_INFO, "broadcast: read up to the end of every partition");
            atomic_store(&c->positioned, 1);
        }
    }
}

void tk_broadcast_free(tk_consumer *c)
{
    for (size_t i = 0; i < c->ntargets; i++)
        free(c->targets[i].topic);
    free(c->targets);
    c->targets = NULL;
    c->ntargets = c->nbehind = 0;
}
