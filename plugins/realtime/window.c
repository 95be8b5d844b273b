/* The window of recent events for Last-Event-ID resume (see window.h). */
#include "window.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void win_init(window *w, int64_t retention_ms, size_t max_bytes, int64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->retention_ms = retention_ms;
    w->max_bytes = max_bytes;
    w->since_ms = now_ms - retention_ms;
}

static void free_event(win_event *e)
{
    free(e->user);
    free(e->type);
    free(e->data);
    free(e);
}

void win_free(window *w)
{
    while (w->head) {
        win_event *e = w->head;
        w->head = e->next;
        free_event(e);
    }
    for (int i = 0; i < w->nparts; i++)
        free(w->parts[i].topic);
    free(w->parts);
    memset(w, 0, sizeof(*w));
}

/* The index of a partition, added (covered from `base`) when new. -1 when out of memory. */
static int part_of(window *w, const char *topic, int32_t partition, int64_t base)
{
    for (int i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition && strcmp(w->parts[i].topic, topic) == 0)
            return i;
    if (w->nparts == w->cap) {
        int cap = w->cap ? w->cap * 2 : 16;
        win_part *p = realloc(w->parts, (size_t)cap * sizeof(*p));
        if (!p)
            return -1;
        w->parts = p;
        w->cap = cap;
    }
    char *t = strdup(topic);
    if (!t)
        return -1;
    w->parts[w->nparts] = (win_part){t, partition, base};
    return w->nparts++;
}

/* Drops the oldest events while they are older than the retention or too many bytes. */
static void trim(window *w, int64_t now_ms)
{
    while (w->head && (w->bytes > w->max_bytes || w->head->time_ms < now_ms - w->retention_ms)) {
        win_event *e = w->head;
        w->head = e->next;
        if (!w->head)
            w->tail = NULL;
        win_part *p = &w->parts[e->pos.part];
        if (p->base <= e->pos.offset)
            p->base = e->pos.offset + 1; /* what comes before the next kept event is gone */
        w->bytes -= e->bytes;
        w->count--;
        free_event(e);
    }
}

const win_event *win_add(window *w, const char *topic, int32_t partition, int64_t offset,
                         int64_t time_ms, int64_t now_ms, const char *user, const char *type,
                         const char *data, win_pos *pos)
{
    *pos = (win_pos){part_of(w, topic, partition, offset), offset, time_ms};
    if (pos->part < 0)
        return NULL;
    win_part *p = &w->parts[pos->part];
    win_event *e = NULL;
    if (user && type && data && time_ms >= now_ms - w->retention_ms && w->retention_ms > 0)
        e = calloc(1, sizeof(*e));
    if (e) {
        e->user = strdup(user);
        e->type = strdup(type);
        e->data = strdup(data);
        if (!e->user || !e->type || !e->data) {
            free_event(e);
            e = NULL;
        }
    }
    if (!e) {
        /* not kept: a resume from before it has to resync */
        if (p->base <= offset)
            p->base = offset + 1;
        trim(w, now_ms);
        return NULL;
    }
    e->seq = ++w->seq;
    e->pos = *pos;
    e->time_ms = time_ms;
    e->bytes = sizeof(*e) + strlen(user) + strlen(type) + strlen(data) + 3;
    if (w->tail)
        w->tail->next = e;
    else
        w->head = e;
    w->tail = e;
    w->bytes += e->bytes;
    w->count++;
    trim(w, now_ms);
    /* trimming may have taken e itself (larger than the window) */
    return w->tail == e ? e : NULL;
}

void win_id(const window *w, win_pos pos, char *out, size_t len)
{
    if (pos.part < 0 || pos.part >= w->nparts) {
        snprintf(out, len, "-");
        return;
    }
    snprintf(out, len, "%s:%d:%" PRId64 ":%" PRId64, w->parts[pos.part].topic,
             (int)w->parts[pos.part].partition, pos.offset, pos.time_ms);
}

/* A decimal number of at most 19 digits, ending at `end`. 0, or -1. */
static int number(const char *s, const char *end, int64_t *out)
{
    if (s == end || end - s > 19)
        return -1;
    int64_t v = 0;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9' || v > (INT64_MAX - (*c - '0')) / 10)
            return -1;
        v = v * 10 + (*c - '0');
    }
    *out = v;
    return 0;
}

int win_parse_id(const window *w, const char *id, win_pos *pos)
{
    const char *c3 = id ? strrchr(id, ':') : NULL;
    if (!c3 || c3 == id)
        return -1;
    const char *c2 = c3 - 1;
    while (c2 > id && *c2 != ':')
        c2--;
    const char *c1 = c2 > id ? c2 - 1 : id;
    while (c1 > id && *c1 != ':')
        c1--;
    int64_t partition, offset, time_ms;
    size_t tlen = (size_t)(c1 - id);
    if (c1 == id || number(c1 + 1, c2, &partition) || partition > INT32_MAX ||
        number(c2 + 1, c3, &offset) || offset == INT64_MAX ||
        number(c3 + 1, id + strlen(id), &time_ms))
        return -1;
    *pos = (win_pos){-1, offset, time_ms};
    for (int i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition && strlen(w->parts[i].topic) == tlen &&
            memcmp(w->parts[i].topic, id, tlen) == 0)
            pos->part = i;
    return 0;
}

int win_covers(const window *w, win_pos pos)
{
    if (w->retention_ms <= 0)
        return 0;
    /* a partition read nothing of since start-up: the consumer rewound over since_ms and
     * found no event there, so nothing came after an event not older than that */
    if (pos.part < 0)
        return pos.time_ms >= w->since_ms;
    return pos.offset + 1 >= w->parts[pos.part].base;
}
