/*
 * The window of recent events a reconnecting stream resumes from (Last-Event-ID). Events are
 * kept in the order this process consumed them, for `retention_ms` (by the event's time) and
 * within `max_bytes`; each partition's coverage starts at `base`: every event of that partition
 * from `base` on is in the window (or went to no stream). Not thread-safe: the caller locks.
 */
#ifndef TK_REALTIME_WINDOW_H
#define TK_REALTIME_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* An event's place: the SSE id is "<topic>:<partition>:<offset>:<time in ms>". */
typedef struct win_pos {
    int part; /* index into the window's partitions; -1: none */
    int64_t offset;
    int64_t time_ms;
} win_pos;

typedef struct win_event {
    struct win_event *next;
    uint64_t seq; /* 1, 2, ... in arrival order */
    win_pos pos;
    int64_t time_ms;
    char *user, *type, *data;
    size_t bytes;
} win_event;

typedef struct win_part {
    char *topic;
    int32_t partition;
    int64_t base; /* the first offset the window covers */
} win_part;

typedef struct window {
    int64_t retention_ms;
    int64_t since_ms; /* events from here on were read (start-up time less the retention) */
    size_t max_bytes, bytes;
    win_event *head, *tail;
    uint64_t seq; /* the last event's */
    win_part *parts;
    int nparts, cap;
    size_t count;
} window;

/* now_ms: the start-up time; the consumer rewinds by the retention from it. */
void win_init(window *w, int64_t retention_ms, size_t max_bytes, int64_t now_ms);
void win_free(window *w);

/*
 * Records a consumed event (user, type, data may be NULL: an event for no stream, which only
 * moves coverage on); drops what is older than the retention or beyond max_bytes. The event
 * is returned (NULL when out of memory, or not kept); *pos gets its place (part -1 when even
 * that could not be recorded).
 */
const win_event *win_add(window *w, const char *topic, int32_t partition, int64_t offset,
                         int64_t time_ms, int64_t now_ms, const char *user, const char *type,
                         const char *data, win_pos *pos);

/* Writes the SSE id of a place ("task-events:3:1234:1764662400123"). */
void win_id(const window *w, win_pos pos, char *out, size_t len);

/*
 * The place an SSE id names (part -1: a partition this window has read nothing of). 0, or -1
 * when the id is not of this form.
 */
int win_parse_id(const window *w, const char *id, win_pos *pos);

/*
 * Whether every event after pos is in the window (for a partition read nothing of: whether
 * pos's event is not older than since_ms, so the consumer's rewind went past it).
 */
int win_covers(const window *w, win_pos pos);

#endif
