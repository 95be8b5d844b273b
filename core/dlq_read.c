/* Reading a dead-letter topic for `taskorad dlq`: every partition up to its end, from a time on. */
#include "dlq_read.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "producer.h"

typedef struct dlq_part {
    int64_t start, end; /* the watermarks at opening: read up to end */
    int done;           /* nothing more to read here */
} dlq_part;

struct tk_dlq_reader {
    rd_kafka_t *rk;
    char *topic;
    dlq_part *parts;
    int nparts, left; /* partitions, and those not yet read to their end */
    long long since_ms, range;
    int timeout_ms;
};

static rd_kafka_t *new_consumer(const char *brokers, json_t *const *props, size_t nprops, char *err,
                                size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    if (tk_kafka_conf_apply(conf, props, nprops, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* after the config's own: this reader never joins a group and never commits */
    const char *mine[][2] = {{"bootstrap.servers", brokers},
                             {"group.id", "taskorad-dlq"},
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             {"enable.partition.eof", "false"},
                             /* messages removed by retention while reading: go on after them */
                             {"auto.offset.reset", "earliest"}};
    for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++) {
        if (rd_kafka_conf_set(conf, mine[i][0], mine[i][1], why, sizeof(why))) {
            snprintf(err, errlen, "kafka consumer: %s", why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_log_cb(conf, tk_kafka_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka consumer: %s", why);
    }
    return rk;
}

/* The topic's partition count, or -1 with the reason in err. */
static int partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
                           size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e =
        rkt ? rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms) : rd_kafka_last_error();
    int n = -1;
    if (e)
        snprintf(err, errlen, "%s: cannot read its metadata: %s", topic, rd_kafka_err2str(e));
    else if (md->topic_cnt < 1 || md->topics[0].err)
        snprintf(err, errlen, "%s: %s", topic,
                 md->topic_cnt < 1 || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                     ? "no such topic"
                     : rd_kafka_err2str(md->topics[0].err));
    else if (md->topics[0].partition_cnt < 1)
        snprintf(err, errlen, "%s: no such topic (no partitions)", topic);
    else
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

/*
 * Where each partition starts: the first offset at or after since_ms. A broker that cannot
 * look offsets up by time (librdkafka's embedded cluster answers -1) is read from the start,
 * the time filter in tk_dlq_next dropping what is older.
 */
static int start_offsets(tk_dlq_reader *r, rd_kafka_topic_partition_list_t *l, char *err,
                         size_t errlen)
{
    for (int i = 0; i < r->nparts; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(r->rk, r->topic, i, &lo, &hi, r->timeout_ms);
        if (e) {
            snprintf(err, errlen, "%s[%d]: cannot read its offsets: %s", r->topic, i,
                     rd_kafka_err2str(e));
            return -1;
        }
        r->parts[i].start = lo;
        r->parts[i].end = hi;
        rd_kafka_topic_partition_list_add(l, r->topic, i)->offset =
            r->since_ms >= 0 ? r->since_ms : lo;
    }
    if (r->since_ms >= 0) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(r->rk, l, r->timeout_ms);
        if (e) {
            snprintf(err, errlen, "%s: cannot look offsets up by time: %s", r->topic,
                     rd_kafka_err2str(e));
            return -1;
        }
    }
    for (int i = 0; i < r->nparts; i++) {
        if (l->elems[i].err || l->elems[i].offset < r->parts[i].start)
            l->elems[i].offset = r->parts[i].start;
        if (l->elems[i].offset >= r->parts[i].end) {
            r->parts[i].done = 1;
            r->left--;
        } else {
            r->range += r->parts[i].end - l->elems[i].offset;
        }
    }
    return 0;
}

tk_dlq_reader *tk_dlq_open(const char *brokers, json_t *const *props, size_t nprops,
                           const char *topic, long long since_ms, int timeout_ms, char *err,
                           size_t errlen)
{
    tk_dlq_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->topic = strdup(topic))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->since_ms = since_ms;
    r->timeout_ms = timeout_ms;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (!(r->rk = new_consumer(brokers, props, nprops, err, errlen)))
        goto fail;
    if ((r->nparts = partition_count(r->rk, topic, timeout_ms, err, errlen)) < 0)
        goto fail;
    r->left = r->nparts;
    r->parts = calloc((size_t)r->nparts, sizeof(*r->parts));
    l = rd_kafka_topic_partition_list_new(r->nparts);
    if (!r->parts || !l) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (start_offsets(r, l, err, errlen))
        goto fail;
    rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, l);
    if (e) {
        snprintf(err, errlen, "%s: cannot assign its partitions: %s", topic, rd_kafka_err2str(e));
        goto fail;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return r;
fail:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    tk_dlq_close(r);
    return NULL;
}

long long tk_dlq_range(const tk_dlq_reader *r) { return r->range; }

/* Notes that m came from its partition; 1 when m is in the range (offset before the end). */
static int account(tk_dlq_reader *r, const rd_kafka_message_t *m)
{
    if (m->partition < 0 || m->partition >= r->nparts)
        return 0;
    dlq_part *p = &r->parts[m->partition];
    if (p->done)
        return 0;
    if (m->offset + 1 >= p->end) {
        p->done = 1;
        r->left--;
    }
    return m->offset < p->end;
}

int tk_dlq_next(tk_dlq_reader *r, rd_kafka_message_t **out, char *err, size_t errlen)
{
    long long deadline = tk_now_ms() + r->timeout_ms;
    char last[512] = "no message came";
    while (r->left > 0) {
        if (tk_now_ms() > deadline) {
            snprintf(err, errlen, "%s: reading stopped after %d ms without progress: %s", r->topic,
                     r->timeout_ms, last);
            return -1;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 200);
        if (!m)
            continue;
        if (m->err) {
            snprintf(last, sizeof(last), "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        deadline = tk_now_ms() + r->timeout_ms;
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        if (!account(r, m) || (r->since_ms >= 0 && ts >= 0 && ts < r->since_ms)) {
            rd_kafka_message_destroy(m);
            continue;
        }
        *out = m;
        return 1;
    }
    return 0;
}

void tk_dlq_close(tk_dlq_reader *r)
{
    if (!r)
        return;
    if (r->rk) {
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    free(r->parts);
    free(r->topic);
    free(r);
}

int tk_dlq_header(const rd_kafka_message_t *m, const char *name, char *out, size_t outlen)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t sz = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &sz))
        return 0;
    snprintf(out, outlen, "%.*s", v ? (int)sz : 0, v ? (const char *)v : "");
    return 1;
}

/* "90s", "30m", "1h", "2d": 0 with the ms in *out. */
static int parse_age(const char *s, long long *out)
{
    char *end;
    long long n = strtoll(s, &end, 10);
    if (end == s || n < 0 || !end[0] || end[1])
        return -1;
    long long unit = *end == 's'   ? 1000LL
                     : *end == 'm' ? 60000LL
                     : *end == 'h' ? 3600000LL
                     : *end == 'd' ? 86400000LL
                                   : 0;
    if (!unit || n > 100LL * 365 * 86400000LL / unit)
        return -1;
    *out = n * unit;
    return 0;
}

/* The zone suffix: "", "Z", "+HH:MM", "+HHMM", "+HH" (and "-"); 0 with its offset in s. */
static int parse_zone(const char *z, long long *offset_s)
{
    int hh = 0, mm = 0, len = 0;
    *offset_s = 0;
    if (!*z || ((*z == 'Z' || *z == 'z') && !z[1]))
        return 0;
    if (*z != '+' && *z != '-')
        return -1;
    if (!((sscanf(z + 1, "%2d:%2d%n", &hh, &mm, &len) == 2 && len == 5) ||
          (sscanf(z + 1, "%2d%2d%n", &hh, &mm, &len) == 2 && len == 4) ||
          (sscanf(z + 1, "%2d%n", &hh, &len) == 1 && len == 2 && (mm = 0, 1))) ||
        z[1 + len] || hh > 23 || mm > 59)
        return -1;
    *offset_s = (*z == '-' ? -1 : 1) * (hh * 3600LL + mm * 60LL);
    return 0;
}

static int parse_iso(const char *s, long long *out)
{
    struct tm tm = {0};
    int len = 0, ms = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &len) != 3 || len != 10)
        return -1;
    const char *p = s + len;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        int n = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &n) != 2 || n != 5)
            return -1;
        p += 1 + n;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &tm.tm_sec, &n) != 1 || n != 2)
                return -1;
            p += 1 + n;
            if (*p == '.' || *p == ',') {
                int digits = 0;
                for (p++; isdigit((unsigned char)*p); p++, digits++)
                    if (digits < 3)
                        ms = ms * 10 + (*p - '0');
                for (; digits > 0 && digits < 3; digits++)
                    ms *= 10;
            }
        }
    }
    long long zone = 0;
    if (parse_zone(p, &zone) || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
        tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    *out = ((long long)t - zone) * 1000LL + ms;
    return 0;
}

int tk_dlq_parse_time(const char *s, long long now_ms, long long *out)
{
    long long age;
    if (parse_age(s, &age) == 0) {
        *out = now_ms - age;
        return 0;
    }
    return parse_iso(s, out);
}

void tk_dlq_format_time(long long ms, char *out, size_t outlen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", day, (int)(ms % 1000));
}
