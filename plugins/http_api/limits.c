/*
 * Abuse limits (see limits.h).
 *
 * Token buckets live in fixed-size, set-associative tables: a key (an
 * address, an email, a user id) is reduced to a keyed 128-bit hash (HMAC-
 * SHA256 under a random per-process key, so nobody can aim keys at one set),
 * whose first half picks a set of WAYS slots. A key that is not in its set
 * takes an empty slot, else the slot whose bucket is fullest after refilling
 * (a full bucket is the same as no bucket, so evicting it forgets nothing),
 * the least recently used on a tie. Memory is fixed at start-up whatever the
 * number of distinct clients, and a flood of new keys evicts fresh buckets
 * before the drained buckets of the clients being limited.
 *
 * IPv6 clients are keyed by their /64: one host usually holds a whole /64.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"

#define WAYS 8
/* password hashes at once, at most */
#define MAX_HASHES 1024
/* failures of an email that saw no attempt for this long are forgotten */
#define FAILURE_MEMORY_S (24 * 3600.0)

#define BUCKET_FIELDS(var, per_minute, burst)                                                      \
    static const tk_config_field var[] = {                                                         \
        {"per_minute", TK_CFG_INT, 0, #per_minute, NULL, "tokens added per minute (0: no limit)",  \
         NULL, TK_CFG_RANGE(0, 1000000)},                                                          \
        {"burst", TK_CFG_INT, 0, #burst, NULL,                                                     \
         "the bucket's size: requests allowed at once (at least 1 with a limit)", NULL,            \
         TK_CFG_RANGE(0, 1000000)},                                                                \
        {0},                                                                                       \
    }

BUCKET_FIELDS(login_address_fields, 10, 20);
BUCKET_FIELDS(login_account_fields, 10, 10);
BUCKET_FIELDS(register_address_fields, 5, 10);
BUCKET_FIELDS(chat_address_fields, 60, 60);
BUCKET_FIELDS(chat_user_fields, 20, 10);

const tk_config_field api_limits_config[] = {
    {"login_per_address", TK_CFG_OBJECT, 0, NULL, NULL, "POST /api/auth/login per client address",
     login_address_fields, TK_CFG_NO_RANGE},
    {"login_per_account", TK_CFG_OBJECT, 0, NULL, NULL,
     "POST /api/auth/login per email (lower-cased)", login_account_fields, TK_CFG_NO_RANGE},
    {"register_per_address", TK_CFG_OBJECT, 0, NULL, NULL,
     "POST /api/auth/register per client address", register_address_fields, TK_CFG_NO_RANGE},
    {"chat_per_address", TK_CFG_OBJECT, 0, NULL, NULL,
     "POST /api/{user_id}/chat per client address", chat_address_fields, TK_CFG_NO_RANGE},
    {"chat_per_user", TK_CFG_OBJECT, 0, NULL, NULL, "POST /api/{user_id}/chat per user",
     chat_user_fields, TK_CFG_NO_RANGE},
    {"buckets", TK_CFG_INT, 0, "8192", NULL,
     "slots of each limit's table (and of the login failure table); fixed memory", NULL,
     TK_CFG_RANGE(WAYS, 1 << 24)},
    {"login_failures_before_delay", TK_CFG_INT, 0, "5", NULL,
     "wrong passwords for one email before attempts are delayed (0: never)", NULL,
     TK_CFG_RANGE(0, INT64_MAX)},
    {"login_failure_delay_max_s", TK_CFG_INT, 0, "900", NULL,
     "the longest delay (1 s, doubled at each further failure)", NULL, TK_CFG_RANGE(1, INT64_MAX)},
    {"password_hashes", TK_CFG_INT, 0, "0", NULL,
     "password hashes computed at once (0: the number of CPUs, at most 1024)", NULL,
     TK_CFG_RANGE(0, MAX_HASHES)},
    {"password_hash_queue", TK_CFG_INT, 0, "-1", NULL,
     "requests that may wait for a hash slot (-1: twice password_hashes)", NULL,
     TK_CFG_RANGE(-1, 100000)},
    {"password_hash_wait_ms", TK_CFG_INT, 0, "2000", NULL, "the longest wait for a hash slot", NULL,
     TK_CFG_RANGE(0, 60000)},
    {"chat_daily_quota", TK_CFG_INT, 0, "200", NULL,
     "chat messages per user per UTC day, across replicas (0: no quota)", NULL,
     TK_CFG_RANGE(0, INT64_MAX)},
    {0},
};

static const char *const limit_names[API_LIMIT_COUNT] = {
    "login_address", "login_account", "register_address", "chat_address", "chat_user",
};
static const char *const limit_keys[API_LIMIT_COUNT] = {
    "login_per_address", "login_per_account", "register_per_address",
    "chat_per_address",  "chat_per_user",
};
static const char *const limit_details[API_LIMIT_COUNT] = {
    "Too many login attempts; please try again later",
    "Too many login attempts for this account; please try again later",
    "Too many registration attempts; please try again later",
    "Too many chat messages; please slow down",
    "Too many chat messages; please slow down",
};

/* ---- keyed hashes ---------------------------------------------------------- */

typedef struct hkey {
    uint64_t a, b; /* a == b == 0: an empty slot */
} hkey;

static unsigned char hash_secret[32];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_secret_init(void)
{
    if (RAND_bytes(hash_secret, sizeof(hash_secret)) != 1) {
        /* no entropy from OpenSSL: still a per-process key, only a weaker one */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        uint64_t seed[3] = {(uint64_t)t.tv_sec, (uint64_t)t.tv_nsec, (uint64_t)getpid()};
        memcpy(hash_secret, seed, sizeof(seed));
    }
}

static hkey key_hash(const char *key, size_t len)
{
    unsigned char mac[32];
    unsigned int n = sizeof(mac);
    HMAC(EVP_sha256(), hash_secret, sizeof(hash_secret), (const unsigned char *)key, len, mac, &n);
    hkey k;
    memcpy(&k.a, mac, 8);
    memcpy(&k.b, mac + 8, 8);
    if (!k.a && !k.b)
        k.b = 1;
    return k;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Whole seconds to announce in Retry-After: at least 1. */
static long long retry_secs(double s)
{
    long long n = (long long)ceil(s - 1e-9);
    return n < 1 ? 1 : n;
}

/* ---- token buckets ------------------------------------------------------------ */

typedef struct bucket {
    hkey key;
    double tokens; /* as of `at` */
    double at;     /* monotonic seconds of the last use */
} bucket;

typedef struct bucket_table {
    double rate;  /* tokens per second; 0: no limit */
    double burst; /* the bucket's size */
    size_t nsets;
    size_t used;
    bucket *slots; /* nsets * WAYS */
    pthread_mutex_t mu;
} bucket_table;

/* ---- login failures ----------------------------------------------------------- */

typedef struct failure {
    hkey key;
    uint32_t failures;
    double until; /* attempts refused before this (monotonic seconds) */
    double at;    /* the last failure */
} failure;

typedef struct api_limits {
    bucket_table tables[API_LIMIT_COUNT];

    failure *failures; /* nfsets * WAYS */
    size_t nfsets;
    pthread_mutex_t fmu;
    int64_t failures_free;
    double delay_max;

    /* the password hash pool */
    pthread_mutex_t hmu;
    pthread_cond_t hcv;
    int running, waiting, max_running, max_waiting, wait_ms;

    int64_t chat_quota;

    tk_metric *m_limited;    /* {limit} */
    tk_metric *m_buckets;    /* {limit} */
    tk_metric *m_hashing;    /* in progress */
    tk_metric *m_hwaiting;   /* waiting for a slot */
    tk_metric *m_hashes;     /* total computed */
    tk_metric *m_hrefused;   /* refused: pool busy */
    tk_metric *m_hash_slots; /* the pool's size */
} api_limits;

static void limited(api *a, const char *limit)
{
    const char *v[] = {limit};
    a->host->metric_add(a->limits->m_limited, v, 1);
}

/* Answers status with Retry-After and {"detail": detail}; returns rc (the refusal's code). */
static int refuse(api *a, tk_http_response *resp, int status, long long secs, const char *detail,
                  int rc)
{
    char ra[24];
    snprintf(ra, sizeof(ra), "%lld", secs);
    a->host->http_set_header(resp, "Retry-After", ra);
    api_error(a, resp, status, detail);
    return rc;
}

/*
 * Takes a token for k at now. 0 allowed; otherwise the seconds until a token
 * is there. *grew is set when a new slot was taken.
 */
static double bucket_take(bucket_table *t, hkey k, double now, int *grew)
{
    bucket *set = t->slots + (k.a % t->nsets) * WAYS;
    bucket *b = NULL, *victim = NULL;
    double victim_fill = -1;
    *grew = 0;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < WAYS; i++) {
        bucket *s = set + i;
        if (s->key.a == k.a && s->key.b == k.b) {
            b = s;
            break;
        }
        double fill;
        if (!s->key.a && !s->key.b)
            fill = 2; /* an empty slot beats any bucket */
        else
            fill = fmin(t->burst, s->tokens + (now - s->at) * t->rate) / t->burst;
        if (fill > victim_fill || (fill == victim_fill && s->at < victim->at)) {
            victim = s;
            victim_fill = fill;
        }
    }
    if (!b) {
        if (!victim->key.a && !victim->key.b) {
            t->used++;
            *grew = 1;
        }
        b = victim;
        b->key = k;
        b->tokens = t->burst;
        b->at = now;
    }
    double tokens = fmin(t->burst, b->tokens + (now - b->at) * t->rate);
    double wait = 0;
    if (tokens >= 1) {
        tokens -= 1;
    } else {
        wait = (1 - tokens) / t->rate;
        if (wait <= 0)
            wait = 1e-3;
    }
    b->tokens = tokens;
    b->at = now;
    pthread_mutex_unlock(&t->mu);
    return wait;
}

/* The client's address as a limit's key: IPv6 by its /64. */
static void address_key(const char *addr, char *out, size_t len)
{
    unsigned char a6[16];
    if (addr && strchr(addr, ':') && inet_pton(AF_INET6, addr, a6) == 1) {
        memset(a6 + 8, 0, 8);
        char text[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, a6, text, sizeof(text));
        snprintf(out, len, "%s/64", text);
        return;
    }
    snprintf(out, len, "%s", addr && *addr ? addr : "unknown");
}

int api_limit_take(api *a, api_limit limit, const tk_http_request *req, const char *key,
                   tk_http_response *resp)
{
    api_limits *l = a->limits;
    bucket_table *t = &l->tables[limit];
    if (t->rate <= 0)
        return TK_OK;
    char addr[INET6_ADDRSTRLEN + 8];
    if (!key) {
        address_key(a->host->http_client_addr(req), addr, sizeof(addr));
        key = addr;
    }
    int grew;
    double wait = bucket_take(t, key_hash(key, strlen(key)), now_s(), &grew);
    if (grew) {
        const char *v[] = {limit_names[limit]};
        a->host->metric_add(l->m_buckets, v, 1);
    }
    if (wait <= 0)
        return TK_OK;
    limited(a, limit_names[limit]);
    return refuse(a, resp, 429, retry_secs(wait), limit_details[limit], TK_EPERM);
}

/* ---- login failures ------------------------------------------------------------ */

static hkey email_key(const char *email)
{
    char buf[320];
    size_t n = 0;
    for (; email[n] && n < sizeof(buf); n++)
        buf[n] = (char)tolower((unsigned char)email[n]);
    return key_hash(buf, n);
}

/* The email's slot, or NULL (with the lock held). */
static failure *failure_find(api_limits *l, hkey k, double now)
{
    failure *set = l->failures + (k.a % l->nfsets) * WAYS;
    for (int i = 0; i < WAYS; i++)
        if (set[i].key.a == k.a && set[i].key.b == k.b) {
            if (now - set[i].at > FAILURE_MEMORY_S && now >= set[i].until) {
                memset(&set[i], 0, sizeof(set[i])); /* long forgotten */
                return NULL;
            }
            return &set[i];
        }
    return NULL;
}

int api_login_admit(api *a, const char *email, tk_http_response *resp)
{
    api_limits *l = a->limits;
    if (l->failures_free > 0) {
        hkey k = email_key(email);
        double now = now_s(), wait = 0;
        pthread_mutex_lock(&l->fmu);
        failure *f = failure_find(l, k, now);
        if (f && f->until > now)
            wait = f->until - now;
        pthread_mutex_unlock(&l->fmu);
        if (wait > 0) {
            limited(a, "login_failures");
            return refuse(a, resp, 429, retry_secs(wait),
                          "Too many failed login attempts for this account; please try again "
                          "later",
                          TK_EPERM);
        }
    }
    char lower[320];
    size_t n = 0;
    for (; email[n] && n < sizeof(lower) - 1; n++)
        lower[n] = (char)tolower((unsigned char)email[n]);
    lower[n] = '\0';
    return api_limit_take(a, API_LIMIT_LOGIN_ACCOUNT, NULL, lower, resp);
}

void api_login_outcome(api *a, const char *email, int ok)
{
    api_limits *l = a->limits;
    if (l->failures_free <= 0)
        return;
    hkey k = email_key(email);
    double now = now_s();
    pthread_mutex_lock(&l->fmu);
    failure *f = failure_find(l, k, now);
    if (ok) {
        if (f)
            memset(f, 0, sizeof(*f));
        pthread_mutex_unlock(&l->fmu);
        return;
    }
    if (!f) {
        /* an empty or forgotten slot, else the one with the fewest failures (the oldest on a
         * tie) whose delay is over: a flood of single failures cannot push out an email that
         * is being guessed at */
        failure *set = l->failures + (k.a % l->nfsets) * WAYS;
        for (int i = 0; i < WAYS; i++) {
            failure *s = set + i;
            int empty =
                (!s->key.a && !s->key.b) || (now - s->at > FAILURE_MEMORY_S && now >= s->until);
            if (empty) {
                f = s;
                break;
            }
            if (!f || s->failures < f->failures || (s->failures == f->failures && s->at < f->at))
                f = s;
        }
        memset(f, 0, sizeof(*f));
        f->key = k;
    }
    f->failures++;
    f->at = now;
    if ((int64_t)f->failures >= l->failures_free) {
        int64_t over = (int64_t)f->failures - l->failures_free;
        double delay = over >= 30 ? l->delay_max : fmin(l->delay_max, (double)(1LL << over));
        f->until = now + delay;
    }
    pthread_mutex_unlock(&l->fmu);
}

/* ---- the password hash pool -------------------------------------------------------- */

static void hash_gauges(api *a)
{
    api_limits *l = a->limits;
    a->host->metric_set(l->m_hashing, NULL, l->running);
    a->host->metric_set(l->m_hwaiting, NULL, l->waiting);
}

int api_hash_begin(api *a, tk_http_response *resp)
{
    api_limits *l = a->limits;
    pthread_mutex_lock(&l->hmu);
    int ok = 0;
    if (l->running < l->max_running) {
        ok = 1;
    } else if (l->waiting < l->max_waiting) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += l->wait_ms / 1000;
        until.tv_nsec += (long)(l->wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        l->waiting++;
        hash_gauges(a);
        int rc = 0;
        while (l->running >= l->max_running && rc == 0)
            rc = pthread_cond_timedwait(&l->hcv, &l->hmu, &until);
        l->waiting--;
        ok = l->running < l->max_running;
    }
    if (ok)
        l->running++;
    hash_gauges(a);
    pthread_mutex_unlock(&l->hmu);
    if (ok) {
        a->host->metric_add(l->m_hashes, NULL, 1);
        return TK_OK;
    }
    a->host->metric_add(l->m_hrefused, NULL, 1);
    return refuse(a, resp, 503, 2, "The server is busy; please try again shortly", TK_EUNAVAILABLE);
}

void api_hash_end(api *a)
{
    api_limits *l = a->limits;
    pthread_mutex_lock(&l->hmu);
    l->running--;
    hash_gauges(a);
    pthread_cond_signal(&l->hcv);
    pthread_mutex_unlock(&l->hmu);
}

/* ---- the chat quota ------------------------------------------------------------------- */

int api_chat_quota_take(api *a, PGconn *conn, const char *user, long long *retry_after_s)
{
    api_limits *l = a->limits;
    if (l->chat_quota <= 0)
        return TK_OK;
    char quota[24];
    snprintf(quota, sizeof(quota), "%lld", (long long)l->chat_quota);
    const char *p[] = {user, quota};
    /* one row per user: today's count, or a new day's first message; the row lock serialises
     * concurrent messages of one user across replicas, so the quota is exact */
    PGresult *res =
        api_exec(a, conn,
                 "INSERT INTO taskora_chat_usage AS u (user_id, day, messages)"
                 " VALUES ($1, (now() AT TIME ZONE 'utc')::date, 1)"
                 " ON CONFLICT (user_id) DO UPDATE SET"
                 "  messages = CASE WHEN u.day = EXCLUDED.day THEN u.messages + 1 ELSE 1 END,"
                 "  day = EXCLUDED.day"
                 " WHERE u.day <> EXCLUDED.day OR u.messages < $2::int"
                 " RETURNING messages",
                 2, p);
    int rc;
    if (!api_ok(res)) {
        rc = TK_ERR;
    } else if (PQntuples(res) == 1) {
        rc = TK_OK;
    } else {
        /* over: the quota renews at the next UTC midnight */
        time_t t = time(NULL);
        *retry_after_s = 86400 - (long long)(t % 86400);
        if (*retry_after_s < 1)
            *retry_after_s = 1;
        rc = TK_EPERM;
    }
    PQclear(res);
    return rc;
}

int api_chat_quota_refuse(api *a, tk_http_response *resp, long long retry_after_s)
{
    limited(a, "chat_quota");
    return refuse(a, resp, 429, retry_after_s,
                  "Daily chat message limit reached; please try again tomorrow", TK_OK);
}

/* ---- set-up ------------------------------------------------------------------------------ */

/* The token bucket tables, nsets sets each. */
static int init_buckets(api *a, api_limits *l, size_t nsets)
{
    const tk_host *h = a->host;
    tk_instance *inst = a->inst;
    for (int i = 0; i < API_LIMIT_COUNT; i++) {
        bucket_table *t = &l->tables[i];
        char path[96];
        snprintf(path, sizeof(path), "limits.%s.per_minute", limit_keys[i]);
        int64_t per_min = h->config_int(inst, path);
        snprintf(path, sizeof(path), "limits.%s.burst", limit_keys[i]);
        int64_t burst = h->config_int(inst, path);
        /* the ranges are the schema's; a limit needs room for one request */
        if (per_min > 0 && burst < 1) {
            h->log(inst, TK_LOG_ERROR,
                   "config.limits.%s.burst must be at least 1 when per_minute is set",
                   limit_keys[i]);
            return TK_EINVAL;
        }
        pthread_mutex_init(&t->mu, NULL);
        t->rate = (double)per_min / 60.0;
        t->burst = (double)burst;
        t->nsets = nsets;
        if (per_min > 0 && !(t->slots = calloc(nsets * WAYS, sizeof(bucket))))
            return TK_ENOMEM;
    }
    return TK_OK;
}

/* The login failure table, nsets sets. */
static int init_failures(api *a, api_limits *l, size_t nsets)
{
    const tk_host *h = a->host;
    tk_instance *inst = a->inst;
    pthread_mutex_init(&l->fmu, NULL);
    l->failures_free = h->config_int(inst, "limits.login_failures_before_delay");
    l->delay_max = (double)h->config_int(inst, "limits.login_failure_delay_max_s");
    l->nfsets = nsets;
    if (l->failures_free > 0 && !(l->failures = calloc(nsets * WAYS, sizeof(failure))))
        return TK_ENOMEM;
    return TK_OK;
}

/* The password hash pool. */
static int init_hash_pool(api *a, api_limits *l)
{
    const tk_host *h = a->host;
    tk_instance *inst = a->inst;
    pthread_mutex_init(&l->hmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->hcv, &ca);
    pthread_condattr_destroy(&ca);
    int64_t n = h->config_int(inst, "limits.password_hashes");
    int64_t q = h->config_int(inst, "limits.password_hash_queue");
    int64_t w = h->config_int(inst, "limits.password_hash_wait_ms");
    if (n == 0) { /* the ranges are the schema's */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus < 1 ? 1 : cpus > MAX_HASHES ? MAX_HASHES : cpus;
    }
    if (q < 0)
        q = 2 * n;
    l->max_running = (int)n;
    l->max_waiting = (int)q;
    l->wait_ms = (int)w;
    return TK_OK;
}

static int init_metrics(api *a, api_limits *l)
{
    const tk_host *h = a->host;
    tk_instance *inst = a->inst;
    static const char *const limit_label[] = {"limit", NULL};
    l->m_limited = h->metric_counter(inst, "taskora_http_api_rate_limited_total",
                                     "requests refused with 429 by a limit", limit_label);
    l->m_buckets = h->metric_gauge(inst, "taskora_http_api_rate_limit_buckets",
                                   "slots in use in a limit's fixed-size table", limit_label);
    l->m_hashing = h->metric_gauge(inst, "taskora_http_api_password_hashes_in_progress",
                                   "password hashes being computed now", NULL);
    l->m_hwaiting = h->metric_gauge(inst, "taskora_http_api_password_hashes_waiting",
                                    "requests waiting for a password hash slot", NULL);
    l->m_hash_slots = h->metric_gauge(inst, "taskora_http_api_password_hash_slots",
                                      "password hashes that may run at once", NULL);
    l->m_hashes = h->metric_counter(inst, "taskora_http_api_password_hashes_total",
                                    "password hashes started (login checks and new hashes)", NULL);
    l->m_hrefused = h->metric_counter(inst, "taskora_http_api_password_hashes_refused_total",
                                      "requests answered 503 because the hash pool was busy", NULL);
    if (!l->m_limited || !l->m_buckets || !l->m_hashing || !l->m_hwaiting || !l->m_hash_slots ||
        !l->m_hashes || !l->m_hrefused)
        return TK_ERR;
    return TK_OK;
}

int api_limits_init(api *a)
{
    const tk_host *h = a->host;
    tk_instance *inst = a->inst;
    pthread_once(&hash_once, hash_secret_init);
    api_limits *l = calloc(1, sizeof(*l));
    if (!l)
        return TK_ENOMEM;
    a->limits = l;
    size_t nsets = (size_t)h->config_int(inst, "limits.buckets") / WAYS; /* 1..2^21 (schema) */
    int rc;
    if ((rc = init_buckets(a, l, nsets)) < 0 || (rc = init_failures(a, l, nsets)) < 0 ||
        (rc = init_hash_pool(a, l)) < 0)
        return rc;
    l->chat_quota = h->config_int(inst, "limits.chat_daily_quota");
    if ((rc = init_metrics(a, l)) < 0)
        return rc;
    h->metric_set(l->m_hash_slots, NULL, l->max_running);
    hash_gauges(a);
    h->log(inst, TK_LOG_INFO,
           "limits: %d password hashes at once (%d may wait %d ms), chat quota %lld a day",
           l->max_running, l->max_waiting, l->wait_ms, (long long)l->chat_quota);
    return TK_OK;
}

void api_limits_destroy(api *a)
{
    api_limits *l = a->limits;
    if (!l)
        return;
    for (int i = 0; i < API_LIMIT_COUNT; i++)
        free(l->tables[i].slots);
    free(l->failures);
    free(l);
    a->limits = NULL;
}
