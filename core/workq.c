/* A fixed pool of threads running queued jobs, with a bounded queue. */
#include "workq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct job {
    void (*fn)(void *arg);
    void *arg;
} job;

struct tk_workq {
    const char *name; /* for messages (static) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *ring;
    size_t cap, head, len;
    int stopping;
    int joined;
    pthread_t *threads;
    int nthreads;
};

static void *worker(void *arg)
{
    tk_workq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->len == 0 && !q->stopping)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->len == 0)
            break; /* stopping and drained */
        job j = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        pthread_mutex_unlock(&q->lock);
        j.fn(j.arg);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

tk_workq *tk_workq_new(const char *name, int threads, int max_queued)
{
    tk_workq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->name = name;
    q->cap = max_queued > 0 ? (size_t)max_queued : 1;
    q->ring = calloc(q->cap, sizeof(*q->ring));
    q->threads = calloc((size_t)(threads > 0 ? threads : 1), sizeof(*q->threads));
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    if (!q->ring || !q->threads) {
        tk_workq_free(q);
        return NULL;
    }
    for (int i = 0; i < (threads > 0 ? threads : 1); i++) {
        if (pthread_create(&q->threads[i], NULL, worker, q) != 0) {
            tk_logf(NULL, TK_LOG_ERROR, "%s: cannot start thread %d of %d", name, i + 1, threads);
            tk_workq_free(q);
            return NULL;
        }
        q->nthreads++;
    }
    return q;
}

int tk_workq_push(tk_workq *q, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&q->lock);
    if (q->stopping || q->len == q->cap) {
        pthread_mutex_unlock(&q->lock);
        return TK_EUNAVAILABLE;
    }
    q->ring[(q->head + q->len) % q->cap] = (job){fn, arg};
    q->len++;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return TK_OK;
}

void tk_workq_stop(tk_workq *q, void (*cancel)(void *arg))
{
    if (!q || q->joined)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    size_t n = cancel ? q->len : 0;
    job *left = n ? calloc(n, sizeof(*left)) : NULL;
    if (n && !left) /* the queued jobs are then run, not cancelled: slower, nothing lost */
        tk_logf(NULL, TK_LOG_ERROR, "%s: out of memory; running %zu queued job(s) at stop", q->name,
                n);
    for (size_t i = 0; left && i < n; i++)
        left[i] = q->ring[(q->head + i) % q->cap];
    if (left)
        q->len = 0;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (size_t i = 0; left && i < n; i++)
        cancel(left[i].arg);
    free(left);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    q->joined = 1;
}

void tk_workq_free(tk_workq *q)
{
    if (!q)
        return;
    tk_workq_stop(q, NULL);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q->ring);
    free(q->threads);
    free(q);
}
