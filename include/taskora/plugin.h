/* The Taskora plugin ABI: the only header a plugin includes. */
#ifndef TASKORA_PLUGIN_H
#define TASKORA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ABI versions. A plugin records the version it was built against in its
 * descriptor. The host refuses a plugin whose major differs from its own, or
 * whose minor is newer than its own (the plugin may call host functions this
 * host does not have). Additions at the end of a struct bump the minor;
 * anything else bumps the major.
 *
 * Changelog (dated, newest last):
 *   2026-11-29  1.0  descriptor; host: log, config, metrics, HTTP; tk_event.
 *   2026-11-29  1.1  host: pg_acquire, pg_release, pg_conn, pg_tx, pg_once.
 *   2026-11-29  1.2  tk_event: the decoded event (id, type, source, time,
 *                    subject, user_id, payload, data, traceparent, attempt,
 *                    group); host table: outbox_append.
 *   2026-11-29  1.3  AI providers and resiliency: tk_failure, tk_ai_provider
 *                    (descriptor field `ai`, capability TK_PLUGIN_CAP_AI);
 *                    host table: resilient_call, ai_chat.
 *   2026-11-29  1.4  descriptor: consume_batch; host table: users
 *                    (http_set_authenticator, http_authenticate) and
 *                    server-sent events (sse_open, sse_send, sse_comment,
 *                    sse_close, sse_release).
 *   2026-12-02  1.5  host table: http_client_addr.
 *   2026-12-02  1.6  tk_config_field: has_range, min, max (the host reads
 *                    the schema of a plugin built for 1.5 or older with the
 *                    old layout); return code TK_EPERM; host table:
 *                    http_set_authenticator2 and http_authenticate2 (TK_OK
 *                    or a negative code, as every other function; the 1.4
 *                    pair keeps answering 1/0), outbox_append_event (hands
 *                    back the encoded event), pg_mark_processed (the
 *                    batch form of pg_once's record).
 *   2026-12-02  1.7  host table: sse_send_id (Last-Event-ID resume),
 *                    consume_rewind (a broadcast consumer's last N ms).
 *   2026-12-02  1.8  host table: http_openapi (an instance describes the
 *                    routes it registered in OpenAPI 3.1; the host serves
 *                    the whole document at /openapi.json).
 *   2026-12-02  1.9  descriptor: check, instance_migrations, reload (for
 *                    scripts); host table: config_file, consume_reason.
 */
#define TK_PLUGIN_ABI_MAJOR 1
#define TK_PLUGIN_ABI_MINOR 9

/* The one symbol a plugin exports. */
#define TK_PLUGIN_ENTRY_SYMBOL "taskora_plugin_entry"

#if defined(__GNUC__)
#define TK_PLUGIN_EXPORT __attribute__((visibility("default")))
#define TK_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TK_PLUGIN_EXPORT
#define TK_PRINTF(fmt, args)
#endif

/*
 * Return codes. 0 is success, failures are negative. Consumer handlers
 * answer with tk_consume_result instead, which has a distinct RETRY.
 */
enum {
    TK_OK = 0,
    TK_ERR = -1,          /* failure with no more specific code */
    TK_ENOMEM = -2,       /* out of memory */
    TK_EINVAL = -3,       /* invalid argument or input */
    TK_ENOTFOUND = -4,    /* no such object */
    TK_EEXIST = -5,       /* already exists (e.g. a route registered twice) */
    TK_ETIMEDOUT = -6,    /* gave up waiting */
    TK_EUNAVAILABLE = -7, /* a dependency (database, broker, provider) is down */
    TK_ESTATE = -8,       /* called at the wrong time (e.g. a route after init) */
    TK_EPERM = -9,        /* not allowed (1.6): e.g. no or a bad credential */
};

/* (tk_strerror and the other inline helpers are in plugin_helpers.h, included at the end.) */

/* What a consumer handler answers for one event. */
typedef enum tk_consume_result {
    TK_CONSUME_OK = 0,    /* done: the offset may be stored */
    TK_CONSUME_RETRY = 1, /* transient failure: retry with backoff, then DLQ */
    TK_CONSUME_FAIL = 2,  /* permanent failure: straight to the DLQ */
} tk_consume_result;

typedef enum tk_log_level {
    TK_LOG_DEBUG = 0,
    TK_LOG_INFO = 1,
    TK_LOG_WARN = 2,
    TK_LOG_ERROR = 3,
} tk_log_level;

/* Opaque handles owned by the host. */
typedef struct tk_instance tk_instance;           /* one configured plugin instance */
typedef struct tk_metric tk_metric;               /* a metric family, bound to an instance */
typedef struct tk_http_request tk_http_request;   /* valid only during a handler call */
typedef struct tk_http_response tk_http_response; /* valid only during a handler call */
typedef struct tk_pg tk_pg;                       /* a borrowed PostgreSQL connection */

/*
 * Work run inside a transaction by pg_tx / pg_once. `conn` is the libpq
 * PGconn *; return >= 0 to commit, a negative code to roll back.
 */
typedef int (*tk_pg_fn)(void *conn, void *ud);

/*
 * Configuration schema. A plugin declares the keys its instance config may
 * hold; the host validates the instance's "config" object against it before
 * init (unknown keys, wrong types, missing required keys and values outside
 * `choices` or the range are refused, naming the JSON path), fills in
 * defaults, and converts strings such as "${PORT:-8}" to the declared type.
 */
typedef enum tk_config_type {
    TK_CFG_STRING = 1,
    TK_CFG_INT = 2, /* 64-bit integer */
    TK_CFG_BOOL = 3,
    TK_CFG_DOUBLE = 4,
    TK_CFG_STRING_LIST = 5, /* array of strings */
    TK_CFG_OBJECT = 6,      /* nested object validated against `children` */
    TK_CFG_JSON = 7,        /* any JSON value, not validated */
} tk_config_type;

/* One key of a schema. Arrays of fields end with an entry whose name is NULL. */
typedef struct tk_config_field {
    const char *name;
    tk_config_type type;
    int required;                           /* non-zero: the key must be present */
    const char *default_json;               /* default as JSON text ("8", "\"x\"", "[]"), or NULL */
    const char *choices;                    /* TK_CFG_STRING: allowed values "a|b|c", or NULL */
    const char *description;                /* one line, shown by `taskorad plugins` */
    const struct tk_config_field *children; /* TK_CFG_OBJECT: its fields */
    /* 1.6: TK_CFG_INT, TK_CFG_DOUBLE: with has_range, values outside [min, max]
     * are refused (defaults too). Write TK_CFG_RANGE(lo, hi) after `children`. */
    int has_range;
    double min;
    double max;
} tk_config_field;

/* The last three members of a tk_config_field: the value must lie in [lo, hi]; or none. */
#define TK_CFG_RANGE(lo, hi) 1, (double)(lo), (double)(hi)
#define TK_CFG_NO_RANGE 0, 0.0, 0.0

/* One Kafka header of a consumed event. Borrowed: valid during consume(). */
typedef struct tk_event_header {
    const char *name;
    const void *value; /* may be NULL */
    size_t value_len;
} tk_event_header;

/*
 * A consumed Kafka message. Borrowed: everything it points to is valid only
 * during the consume() call. Fields are only ever appended; check
 * struct_size before reading a field added after 1.0.
 */
typedef struct tk_event {
    uint32_t struct_size;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const tk_event_header *headers;
    size_t header_count;

    /* 1.2: the decoded event, from a CloudEvent or a bare event object. Strings are
     * NUL-terminated; NULL when the event does not carry the field. */
    const char *id;          /* CloudEvents id = data.event_id: the deduplication key */
    const char *type;        /* e.g. "task.created" */
    const char *source;      /* the producing app id */
    const char *time;        /* ISO 8601 */
    const char *subject;     /* task or conversation id, where there is one */
    const char *user_id;     /* data.user_id */
    const char *payload;     /* data.payload as compact JSON ("{}" when absent) */
    const char *data;        /* the whole data object as compact JSON */
    const char *traceparent; /* W3C trace context from the Kafka headers */
    uint32_t attempt;        /* 1 on the first call for this message, 2 on the first retry... */
    const char *group;       /* the consumer group, for pg_once */
} tk_event;

/*
 * How a call to something remote failed (ABI 1.3): filled by the code that
 * made the attempt, read by the host's retry policy and circuit breaker
 * (resilient_call, ai_chat) and by the caller.
 */
typedef enum tk_failure_kind {
    TK_FAIL_NONE = 0,
    TK_FAIL_AUTH = 1,         /* bad or missing credentials (401, 403, invalid key) */
    TK_FAIL_RATE_LIMITED = 2, /* 429 / quota; see retry_after_ms and fail_fast */
    TK_FAIL_UNAVAILABLE = 3,  /* 408, 5xx, connection refused/reset, circuit open */
    TK_FAIL_BAD_REQUEST = 4,  /* 400, 404, 422: the request itself (or the model name) */
    TK_FAIL_BLOCKED = 5,      /* the provider refused the content (safety) */
    TK_FAIL_TIMEOUT = 6,      /* no complete answer within the attempt's time */
} tk_failure_kind;

typedef struct tk_failure {
    tk_failure_kind kind;
    int http_status;        /* the answer's status, 0 when there was none */
    int64_t retry_after_ms; /* what the server asked for (Retry-After, retryDelay), or -1 */
    int fail_fast;          /* 1: retrying cannot help (e.g. a daily quota is used up) */
    char message[512];      /* for logs and errors; never a key or token */
} tk_failure;

/*
 * One attempt of a remote call, for resilient_call. Return TK_OK on
 * success; on failure return a negative code and fill *f (kind at least).
 * Only TK_FAIL_RATE_LIMITED (without fail_fast), TK_FAIL_UNAVAILABLE and
 * TK_FAIL_TIMEOUT are retried, and only those count towards opening the
 * circuit: a provider that answers "bad request" is up.
 */
typedef int (*tk_attempt_fn)(void *ud, tk_failure *f);

/*
 * AI chat, normalised (ABI 1.3). Requests and responses are JSON text so
 * the ABI stays small; providers translate to and from their wire format.
 *
 * Request:
 *   {"system": "instructions",
 *    "messages": [
 *      {"role": "user", "content": "text"},
 *      {"role": "assistant", "content": "text" | null,
 *       "tool_calls": [{"id": "c1", "name": "add_task", "arguments": {...},
 *                       "provider_data": <as the provider returned it, optional>}]},
 *      {"role": "tool", "tool_call_id": "c1", "name": "add_task",
 *       "content": {...}}             <- the tool's result, a JSON object
 *    ],
 *    "tools": [{"name": "...", "description": "...", "parameters": {JSON Schema}}],
 *    "temperature": 0.2, "max_tokens": 1024}   <- optional; else the provider's config
 *
 * Response:
 *   {"text": "answer text (\"\" when the turn is only tool calls)",
 *    "tool_calls": [{"id": "...", "name": "...", "arguments": {...} | null,
 *                    "arguments_error": "why they are not a JSON object" (only when null),
 *                    "provider_data": <opaque, echoed back in the next request>}],
 *    "finish_reason": "stop" | "tool_calls" | "max_tokens" | "<provider's own>",
 *    "usage": {"input_tokens": 12, "output_tokens": 34},
 *    "provider": "gemini", "model": "gemini-2.0-flash"}
 * A call id the provider did not give is generated. Failures that come with
 * HTTP 200 (Cohere's ERROR/TIMEOUT finish reasons, Gemini's blocked prompt)
 * are failures, not responses.
 */
typedef struct tk_ai_provider {
    uint32_t struct_size; /* sizeof(tk_ai_provider) at build time */
    /*
     * One attempt, no retries (the host retries and keeps the circuit
     * breaker). Any thread, concurrently. On TK_OK *response_json is a
     * malloc'd NUL-terminated string the host frees with free(); otherwise
     * fill *f and return a negative code.
     */
    int (*chat)(void *state, const char *request_json, char **response_json, tk_failure *f);
} tk_ai_provider;

/*
 * Who is calling (ABI 1.4). The plugin that owns accounts (http_api)
 * registers the process's authenticator; any plugin's route asks it through
 * http_authenticate. Returns 1 with the user id (a decimal string) in
 * `user` (size `len`), or 0 after answering the request itself (401 with
 * WWW-Authenticate). With `allow_query_token` the token may also come as
 * the `token` query argument (for EventSource, which cannot set headers).
 */
typedef int (*tk_http_auth_fn)(void *ud, const tk_http_request *req, tk_http_response *resp,
                               char *user, size_t len, int allow_query_token);

/*
 * The authenticator's successor (ABI 1.6), with the ABI's own convention:
 * TK_OK with the user id in `user`, or a negative code after answering the
 * request itself (TK_EPERM with 401 and WWW-Authenticate; TK_EUNAVAILABLE
 * with 503 when the accounts cannot be read). Same arguments as above.
 */
typedef int (*tk_http_auth2_fn)(void *ud, const tk_http_request *req, tk_http_response *resp,
                                char *user, size_t len, int allow_query_token);

/* A server-sent event stream (ABI 1.4): see sse_open. */
typedef struct tk_sse tk_sse;

/*
 * An HTTP handler. Called on one of the HTTP server's threads, possibly
 * concurrently with itself; `ud` is the pointer given at registration.
 * Fill `resp` through the host functions. Return TK_OK, or a negative code
 * with no status set to answer 500 {"detail":"Internal server error"}.
 */
typedef int (*tk_http_handler)(void *ud, const tk_http_request *req, tk_http_response *resp);

/*
 * The host's function table, given to init(). It stays valid and unchanged
 * until the process exits. Functions are only appended (bumping the minor);
 * a plugin that needs a function added after 1.0 checks struct_size.
 * Every function may be called from any thread unless it says otherwise.
 */
typedef struct tk_host {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;

    /* --- identity ---------------------------------------------------- */

    /* The instance's configured name. Owned by the host. */
    const char *(*instance_name)(const tk_instance *inst);
    /* The process's app id (config `app_id`), used as CloudEvents source. Owned by the host. */
    const char *(*app_id)(const tk_instance *inst);

    /* --- logging ----------------------------------------------------- */

    /* Logs a formatted message tagged with the instance name. */
    void (*log)(const tk_instance *inst, tk_log_level level, const char *fmt, ...) TK_PRINTF(3, 4);
    /*
     * Logs `msg` with extra fields: NULL-terminated pairs of key and value
     * strings, e.g. log_kv(inst, TK_LOG_INFO, "sent", "to", addr, NULL).
     * Values of keys that look secret (password, token, secret, api_key,
     * authorization, cookie) are printed as "[redacted]".
     */
    void (*log_kv)(const tk_instance *inst, tk_log_level level, const char *msg, ...);
    /* Non-zero when `level` would be printed; lets a plugin skip costly formatting. */
    int (*log_enabled)(const tk_instance *inst, tk_log_level level);

    /* --- configuration ----------------------------------------------- */
    /*
     * Values of the instance's validated config. `path` is a key of the
     * schema, dotted for nested objects ("smtp.host"). An absent key without
     * default reads as NULL / 0 / 0.0; a key of another type logs an error
     * and reads the same. Strings are owned by the host and live as long as
     * the instance.
     */
    const char *(*config_string)(const tk_instance *inst, const char *path);
    int64_t (*config_int)(const tk_instance *inst, const char *path);
    int (*config_bool)(const tk_instance *inst, const char *path);
    double (*config_double)(const tk_instance *inst, const char *path);
    /* TK_CFG_STRING_LIST: number of items, and item i (NULL past the end). */
    size_t (*config_list_size)(const tk_instance *inst, const char *path);
    const char *(*config_list_get)(const tk_instance *inst, const char *path, size_t i);
    /* Any value as compact JSON text (NULL when absent). Caller frees with host->free. */
    char *(*config_json)(const tk_instance *inst, const char *path);
    /* Frees memory the host handed over (config_json). */
    void (*free)(void *ptr);

    /* --- metrics ----------------------------------------------------- */
    /*
     * Registers (or finds) a metric family. `labels` is a NULL-terminated
     * list of label names, or NULL; the host adds a first label
     * `plugin="<instance name>"`. Returns a handle owned by the host and
     * valid until exit, or NULL on a bad name or a clash with an existing
     * family of another kind or labels (logged). Call from init().
     */
    tk_metric *(*metric_counter)(tk_instance *inst, const char *name, const char *help,
                                 const char *const *labels);
    tk_metric *(*metric_gauge)(tk_instance *inst, const char *name, const char *help,
                               const char *const *labels);
    /* `buckets`: ascending upper bounds; NULL uses the default latency buckets (seconds). */
    tk_metric *(*metric_histogram)(tk_instance *inst, const char *name, const char *help,
                                   const char *const *labels, const double *buckets,
                                   size_t nbuckets);
    /*
     * Updates a series. `values` holds one value per label given at
     * registration (not counting `plugin`), or NULL when there were none.
     * add: counters (v >= 0) and gauges; set: gauges; observe: histograms.
     */
    void (*metric_add)(tk_metric *m, const char *const *values, double v);
    void (*metric_set)(tk_metric *m, const char *const *values, double v);
    void (*metric_observe)(tk_metric *m, const char *const *values, double v);

    /* --- HTTP server ------------------------------------------------- */
    /*
     * Registers a route: `method` ("GET", "POST", ...) and a path pattern
     * whose segments may be parameters, e.g. "/api/tasks/{id}". Literal
     * segments win over parameters. Only from init(); later calls return
     * TK_ESTATE. TK_EEXIST when the same method and pattern is taken.
     */
    int (*http_route)(tk_instance *inst, const char *method, const char *pattern,
                      tk_http_handler handler, void *ud);

    /* Request accessors. Strings are owned by the host, valid during the handler. */
    const char *(*http_method)(const tk_http_request *req);
    const char *(*http_path)(const tk_http_request *req);
    /* A `{name}` parameter of the matched pattern, or NULL. */
    const char *(*http_param)(const tk_http_request *req, const char *name);
    /* A decoded query-string argument, or NULL. */
    const char *(*http_query)(const tk_http_request *req, const char *name);
    /* A request header (case-insensitive name), or NULL. */
    const char *(*http_header)(const tk_http_request *req, const char *name);
    /* The request body (NUL-terminated for convenience) and its length; "" when none. */
    const char *(*http_body)(const tk_http_request *req, size_t *len);
    /* The request's id (from X-Request-ID or generated), echoed in the response. */
    const char *(*http_request_id)(const tk_http_request *req);

    /* Response setters. Data is copied. The default status is 200. */
    void (*http_status)(tk_http_response *resp, int status);
    int (*http_set_header)(tk_http_response *resp, const char *name, const char *value);
    int (*http_set_body)(tk_http_response *resp, const char *content_type, const void *body,
                         size_t len);
    /* Sets `status` and the body {"detail": detail}. */
    int (*http_error)(tk_http_response *resp, int status, const char *detail);

    /* --- PostgreSQL (ABI 1.1) -------------------------------------------
     * One pool per process (config "postgres"). Plugins run their queries
     * with libpq on the PGconn these hand out, so they link -lpq. Without a
     * configured database every call answers TK_EUNAVAILABLE.
     */

    /*
     * Borrows a connection, waiting up to timeout_ms for one to come free
     * (< 0: postgres.acquire_timeout_ms). TK_OK with *out set; TK_ETIMEDOUT
     * when none came free in time; TK_EUNAVAILABLE when the database cannot
     * be reached. A connection the server closed is replaced before it is
     * handed out. Any thread. Give it back with pg_release.
     */
    int (*pg_acquire)(tk_instance *inst, int timeout_ms, tk_pg **out);
    /* Gives a connection back (any thread). An open or failed transaction is rolled back. */
    void (*pg_release)(tk_pg *conn);
    /* The libpq connection (PGconn *) of a borrowed connection; valid until pg_release. */
    void *(*pg_conn)(tk_pg *conn);
    /*
     * Runs fn in a transaction on a borrowed connection: COMMIT when fn
     * returns >= 0 (a failed COMMIT turns into a negative result), else
     * ROLLBACK. Returns fn's result or the pool's error code.
     */
    int (*pg_tx)(tk_instance *inst, tk_pg_fn fn, void *ud);
    /*
     * For idempotent consumers: like pg_tx, but first records (group,
     * event_id) in the same transaction. If that pair was recorded before,
     * fn does not run, nothing changes, *duplicate is set to 1 and TK_OK is
     * returned; otherwise *duplicate is 0.
     */
    int (*pg_once)(tk_instance *inst, const char *group, const char *event_id, tk_pg_fn fn,
                   void *ud, int *duplicate);

    /* --- events (ABI 1.2) ---------------------------------------------- */
    /*
     * Appends an event to the outbox on `conn` (a PGconn * inside the
     * caller's transaction, e.g. in a pg_tx function): it is published to
     * `topic`, keyed by user_id, only if that transaction commits. The value
     * is a CloudEvents 1.0 document whose data is {event_id, event_type,
     * timestamp, user_id, payload}; `payload_json` must be a JSON object.
     * `subject` may be NULL; a NULL `traceparent` takes the one of the HTTP
     * request or consumed event being handled on this thread. The event id goes to
     * event_id_out (37 bytes) unless NULL. TK_EINVAL on bad arguments.
     */
    int (*outbox_append)(tk_instance *inst, void *conn, const char *topic, const char *type,
                         const char *user_id, const char *subject, const char *payload_json,
                         const char *traceparent, char *event_id_out);

    /* --- resiliency and AI providers (ABI 1.3) -------------------------- */
    /*
     * Calls fn with the retry policy and circuit breaker of `target` (config
     * "resiliency", per-target overrides under "targets"; one breaker per
     * target name per process). Retries retryable failures with exponential
     * backoff, waiting at least the server's retry_after_ms (a wait longer
     * than retry.max_delay_ms, or past the policy's timeout_ms, is not
     * made: the failure is returned). While the circuit is open fn is not
     * called: TK_EUNAVAILABLE with f->kind = TK_FAIL_UNAVAILABLE and
     * f->retry_after_ms = the time until it half-opens (and only then:
     * a failed attempt returns TK_ETIMEDOUT for a timeout, else TK_ERR, with
     * *f filled). Returns fn's result on success. f may not be NULL.
     */
    int (*resilient_call)(tk_instance *inst, const char *target, tk_attempt_fn fn, void *ud,
                          tk_failure *f);
    /*
     * Chats with the AI provider instance named `provider` (its configured
     * instance name), through resilient_call with target "ai.<provider>".
     * TK_ENOTFOUND when no loaded instance of that name is a provider. The
     * host counts requests, failures by kind, latency and tokens per
     * provider and model. On TK_OK *response_json is malloc'd; the caller
     * frees it with this table's `free`.
     */
    int (*ai_chat)(tk_instance *inst, const char *provider, const char *request_json,
                   char **response_json, tk_failure *f);

    /* --- users (ABI 1.4) -------------------------------------------------- */
    /* Registers the process's authenticator (from init). TK_EEXIST when another is set. */
    int (*http_set_authenticator)(tk_instance *inst, tk_http_auth_fn fn, void *ud);
    /*
     * Asks the authenticator (see tk_http_auth_fn). Without one it answers
     * 503 {"detail":"No authenticator is loaded"} and returns 0.
     */
    int (*http_authenticate)(const tk_http_request *req, tk_http_response *resp, char *user,
                             size_t len, int allow_query_token);

    /* --- server-sent events (ABI 1.4) ---------------------------------------
     * A route handler turns its response into an event stream that stays
     * open after the handler returns: status 200, text/event-stream, no
     * buffering. The host writes ": keepalive" every 30 s while nothing else
     * is sent, and ends every stream when the server stops.
     *
     * Lifetime: the handle has two owners, the connection and the plugin.
     * When the connection ends (client gone, server stopping, sse_close),
     * on_close(ud) is called once, on any thread; the plugin then stops
     * sending and calls sse_release (it may do so inside on_close). Sending
     * on a closed stream is harmless (TK_ESTATE) until the plugin released it.
     */
    /*
     * NULL when the stream cannot be opened; when a limit refused it
     * (`http.max_streams_per_client`, the server stopping) `resp` already
     * holds the answer (429 or 503 with Retry-After): return a negative code
     * and it is sent as is.
     */
    tk_sse *(*sse_open)(const tk_http_request *req, tk_http_response *resp,
                        void (*on_close)(void *ud), void *ud);
    /*
     * Queues "event: <event>\ndata: <data>\n\n" (event may be NULL: no event
     * line; data must not contain a newline, e.g. compact JSON). Any thread;
     * never blocks: a client that does not read fast enough (256 KiB queued)
     * is disconnected. TK_ESTATE once closed, TK_EINVAL on a newline.
     */
    int (*sse_send)(tk_sse *s, const char *event, const char *data);
    /* Queues a comment line ": text". */
    int (*sse_comment)(tk_sse *s, const char *text);
    /* Ends the stream from the server side (on_close follows). */
    void (*sse_close)(tk_sse *s);
    /* The plugin gives up its handle (after on_close, or instead of waiting for it). */
    void (*sse_release)(tk_sse *s);

    /* --- client address (ABI 1.5) ----------------------------------------- */
    /*
     * The address of the client that sent the request ("203.0.113.7",
     * "2001:db8::1"): the peer's, or, when the peer is one of the configured
     * `http.trusted_proxies`, the nearest untrusted hop of X-Forwarded-For.
     * The key for per-client limits. Owned by the host, valid during the handler.
     */
    const char *(*http_client_addr)(const tk_http_request *req);

    /* --- users and events, with the ABI's return codes (ABI 1.6) ---------- */
    /*
     * Registers the process's authenticator (from init); either this or
     * http_set_authenticator, once per process: TK_EEXIST when one is set.
     */
    int (*http_set_authenticator2)(tk_instance *inst, tk_http_auth2_fn fn, void *ud);
    /*
     * Asks the authenticator, whichever way it was registered: TK_OK with
     * the user id in `user`, or a negative code with the answer already in
     * `resp` (return it from the handler). Without an authenticator: 503
     * {"detail":"No authenticator is loaded"} and TK_EUNAVAILABLE.
     */
    int (*http_authenticate2)(const tk_http_request *req, tk_http_response *resp, char *user,
                              size_t len, int allow_query_token);
    /*
     * outbox_append that also hands back the encoded event: on TK_OK, when
     * event_json_out is not NULL, *event_json_out is the CloudEvent exactly
     * as it will be published (malloc'd; free with this table's `free`), so
     * nobody needs to read the outbox back.
     */
    int (*outbox_append_event)(tk_instance *inst, void *conn, const char *topic, const char *type,
                               const char *user_id, const char *subject, const char *payload_json,
                               const char *traceparent, char *event_id_out, char **event_json_out);
    /*
     * pg_once's record for a batch, inside the caller's transaction on `conn`
     * (a PGconn *, e.g. in a pg_tx function): records (group, event_ids[i])
     * for each of the n ids and sets fresh[i] to 1 for an id recorded now for
     * the first time (a repeat inside the batch counts once), 0 for one
     * recorded before. The records commit or roll back with the caller's
     * work, so an event is applied exactly once per group. TK_OK, TK_EINVAL,
     * TK_ENOMEM, or TK_ERR when the statement failed (the transaction is
     * then aborted: return a negative code to roll it back).
     */
    int (*pg_mark_processed)(tk_instance *inst, void *conn, const char *group,
                             const char *const *event_ids, size_t n, int *fresh);

    /* --- resumable event streams (ABI 1.7) -------------------------------- */
    /*
     * sse_send with an "id: <id>" line (id may be NULL: none): the client's
     * EventSource sends the last id it saw back as Last-Event-ID when it
     * reconnects. The id must not contain a newline, a carriage return or
     * NUL (TK_EINVAL).
     */
    int (*sse_send_id)(tk_sse *s, const char *id, const char *event, const char *data);
    /*
     * From init: this instance's broadcast consumer starts at the events of
     * the last `ms` milliseconds (per partition, by the messages' timestamps)
     * instead of at the end, and /ready waits until it has read up to the end
     * as it was at start-up. For a plugin that keeps a window of recent events
     * (realtime's Last-Event-ID resume): a fresh process rebuilds the window.
     * TK_EINVAL when the instance has no broadcast consume section or ms < 0,
     * TK_ESTATE after init.
     */
    int (*consume_rewind)(tk_instance *inst, int64_t ms);

    /* --- API description (ABI 1.8) ---------------------------------------- */
    /*
     * Describes routes this instance registered, in OpenAPI 3.1: `fragment`
     * is JSON text {"paths": {...}, "components": {"schemas": {...}}} whose
     * path templates and methods are those given to http_route. The host
     * merges every instance's fragment into the document it serves at
     * /openapi.json; a registered route nobody describes is listed there as
     * undescribed (and logged). Call from init(), after the routes. TK_EINVAL
     * for text that is not such a fragment or that describes a route this
     * instance did not register (logged with the reason), TK_EEXIST for a
     * component schema another instance defined differently, TK_ESTATE after
     * init.
     */
    int (*http_openapi)(tk_instance *inst, const char *fragment);

    /* --- ABI 1.9 ------------------------------------------------------ */
    /* The config file the instance was read from ("" when none): relative paths are relative
     * to its folder. Owned by the host. */
    const char *(*config_file)(const tk_instance *inst);
    /* From a consume handler: one line saying why this thread's event failed; a dead letter of
     * it carries the reason in x-taskora-error. Each attempt starts without one. */
    void (*consume_reason)(tk_instance *inst, const char *reason);
} tk_host;

/* Capabilities a plugin declares in its descriptor's `capabilities`. */
#define TK_PLUGIN_CAP_HTTP 0x1u /* registers HTTP routes in init() */
#define TK_PLUGIN_CAP_AI 0x2u   /* an AI provider: `ai` is set (ABI 1.3) */

/*
 * The plugin descriptor: a const object the entry function returns. The host
 * reads abi_major, abi_minor and struct_size before anything else.
 */
typedef struct tk_plugin {
    uint32_t abi_major;   /* TK_PLUGIN_ABI_MAJOR at build time */
    uint32_t abi_minor;   /* TK_PLUGIN_ABI_MINOR at build time */
    uint32_t struct_size; /* sizeof(tk_plugin) at build time */

    const char *name;        /* the plugin type, e.g. "http_api" */
    const char *version;     /* the plugin's own version, e.g. "1.2.0" */
    const char *description; /* one line */
    uint32_t capabilities;   /* TK_PLUGIN_CAP_* */

    /* Keys of the instance config (name == NULL ends it); NULL: no config allowed. */
    const tk_config_field *config;
    /*
     * SQL migrations this plugin owns, in order, NULL-terminated (or NULL).
     * `taskorad migrate` applies each once per database, in its own
     * transaction, and records it under the plugin's name. Never edit a
     * shipped step: append a new one.
     */
    const char *const *migrations;

    /*
     * Creates an instance. `host` and `inst` stay valid until exit; store
     * them. Put the instance's state in *state. Register routes and metrics
     * here. Called on the main thread, instances in config order. A failure
     * (negative return) stops start-up: instances already created are
     * destroyed, this one is not (it must clean up after itself).
     */
    int (*init)(const tk_host *host, tk_instance *inst, void **state);
    /* Starts background work (threads, timers). Main thread. NULL: nothing to start. */
    int (*start)(void *state);
    /*
     * Stops background work and drains it; called in reverse start order at
     * shutdown, after the HTTP server stopped taking requests. Main thread.
     */
    void (*stop)(void *state);
    /* Frees the state. Called once, in reverse init order. Main thread. */
    void (*destroy)(void *state);

    /*
     * Optional: handles one consumed event (instances with a `consume`
     * section). Called on a worker thread; events of one partition are
     * handled one at a time, in order. `ev` is borrowed.
     */
    tk_consume_result (*consume)(void *state, const tk_event *ev);

    /* ABI 1.3: an AI provider's functions (with TK_PLUGIN_CAP_AI), or NULL. */
    const tk_ai_provider *ai;

    /*
     * ABI 1.4, optional: handles up to 64 consumed events of one partition
     * at once (e.g. one database transaction for all), in their order, and
     * sets results[i] for each. Events whose result is not OK are then
     * handled one by one with the retry policy (through `consume` when set,
     * else consume_batch with n = 1), after the others of the batch. Takes
     * the place of `consume` for instances with a `consume` section.
     */
    void (*consume_batch)(void *state, const tk_event *const *events, size_t n,
                          tk_consume_result *results);

    /* ABI 1.9, optional, for instances defined by files (e.g. scripts). `check`: what the
     * schema cannot (the script loads); run by check-config and before init, with config_*
     * and log only; TK_OK or a negative code with one line in err ("file.lua:3: ..."). */
    int (*check)(const tk_host *host, tk_instance *inst, char *err, size_t errlen);
    /* Steps owned by the instance, applied by `taskorad migrate` after the types' and
     * recorded under its name: *steps = a NULL-terminated malloc'd array of malloc'd SQL
     * (freed by the host with free()), or NULL. Same host functions as check. */
    int (*instance_migrations)(const tk_host *host, tk_instance *inst, char ***steps, char *err,
                               size_t errlen);
    /* SIGHUP, on the signal thread, while started: return quickly (flag it for the workers). */
    void (*reload)(void *state);
} tk_plugin;

/* The smallest descriptor the 1.0 host accepts (through `consume`). */
#define TK_PLUGIN_MIN_STRUCT_SIZE (offsetof(tk_plugin, consume) + sizeof(void (*)(void)))

/* Fills the three version fields; use as the first line of a descriptor. */
#define TK_PLUGIN_HEADER                                                                           \
    .abi_major = TK_PLUGIN_ABI_MAJOR, .abi_minor = TK_PLUGIN_ABI_MINOR,                            \
    .struct_size = (uint32_t)sizeof(tk_plugin)

/* The entry point's type: returns the plugin's static descriptor. */
typedef const tk_plugin *(*tk_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#include "plugin_helpers.h" /* tk_strerror, tk_secret_equal, tk_bool_word, tk_failure_kind_name */

#endif /* TASKORA_PLUGIN_H */
