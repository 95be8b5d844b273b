/* The HTTP API plugin's shared state and helpers (not part of any ABI). */
#ifndef HTTP_API_API_H
#define HTTP_API_API_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include <taskora/plugin.h>

#include "../kit/kit.h"

typedef struct api {
    const tk_host *host;
    tk_instance *inst;
    const char *jwt_secret;
    size_t jwt_secret_len;
    const char *jwt_secret_previous; /* also verifies tokens, during a rotation ("" none) */
    size_t jwt_secret_previous_len;
    tk_metric *m_previous_secret; /* tokens the previous secret verified */
    int64_t token_ttl_s;
    int bcrypt_cost;
    const char *task_topic;
    const char *user_topic;
    const char *chat_topic;
    char *dummy_hash;               /* checked when an email is unknown, so login takes as long */
    const char *ai_provider;        /* the chat's provider instance ("" none) */
    const char *chat_system_prompt; /* the assistant's instructions */
    const char *browser_home;       /* where GET / sends a browser ("" nowhere) */
    int chat_history;               /* messages of context */
    int chat_max_rounds;            /* model <-> tool rounds per message */
    struct api_limits *limits;      /* rate limits, hash pool, chat quota (limits.c) */
    size_t max_description;         /* characters of a task's description */
} api;

/* Tags a task may carry: with max_description this bounds a task's JSON, and so a page's. */
#define API_MAX_TASK_TAGS 100

/* ---- responses (util.c; JSON answers in general: the toolkit, kit.h) ---- */

/* {"detail": detail} with status. */
int api_error(api *a, tk_http_response *resp, int status, const char *detail);
/* {"detail": {"code": code, "message": message}} with status. */
int api_error_code(api *a, tk_http_response *resp, int status, const char *code,
                   const char *message);
/* {"message": message}, 200. */
int api_message(api *a, tk_http_response *resp, const char *message);

/* ---- validation errors, the existing service's 422 shape (kit.h) ---- */

typedef kit_errors api_errors;

/*
 * Parses the request body as a JSON object. On malformed JSON or a non-object
 * it sends 422 and returns NULL (*sent = 1).
 */
json_t *api_body_object(api *a, const tk_http_request *req, tk_http_response *resp, int *sent);

/* Field readers for a body object: each records a 422 entry on a wrong type or range. */
/* A string field: NULL when absent (or JSON null with *is_null = 1). */
const char *api_field_string(api_errors *e, json_t *obj, const char *field, int required,
                             size_t min_len, size_t max_len, int *present, int *is_null);
/* A boolean field; returns 0/1, *present set. */
int api_field_bool(api_errors *e, json_t *obj, const char *field, int required, int *present);

/*
 * An integer query argument in [min, max] (absent: dflt) as text, into out; a 422 entry when it
 * is not one (kit_query_int). Query arguments are read with the toolkit (kit_query...).
 */
void api_query_int(api *a, const tk_http_request *req, api_errors *e, const char *name, long min,
                   long max, long dflt, char out[16]);

/*
 * A date-time query argument (kit_query_time) as a PostgreSQL UTC timestamp into out: TK_OK,
 * TK_ENOTFOUND when absent, TK_EINVAL with a 422 entry.
 */
int api_query_time(api *a, const tk_http_request *req, api_errors *e, const char *name,
                   char out[32]);

/* Parses an integer path parameter (an int4 id); records int_parsing under ("path", name). */
int64_t api_path_id(api_errors *e, const char *value, const char *name);

/* ---- time (util.c) ---- */

/*
 * Parses ISO 8601 (kit_time_parse: date, date-time with optional fraction, Z/offset, naive =
 * UTC) into a UTC timestamp string for PostgreSQL ("YYYY-MM-DD HH:MM:SS.ffffff").
 * 0 ok, -1 invalid.
 */
int api_parse_time(const char *in, char out[32]);
/* The SQL expression that renders a timestamp column (UTC) as the API's ISO form
 * (function from migration step 3). */
#define API_TS(col) "taskora_iso_utc(" col ")"

/* One tag row (alias t) as the API's JSON. */
#define API_TAG_JSON(t)                                                                            \
    "json_build_object('id', " t ".id, 'name', " t ".name, 'color', " t ".color, 'user_id', " t    \
    ".user_id, 'created_at', " API_TS(t ".created_at") ")"

/* ---- PostgreSQL (util.c) ---- */

/*
 * Runs a parameterised statement (text parameters and results). Always
 * returns its result (NULL only without memory) for the caller to PQclear;
 * a failure other than a unique violation is logged. Test with api_ok.
 */
PGresult *api_exec(api *a, PGconn *conn, const char *sql, int n, const char *const *params);
/*
 * Runs a parameterised statement whose rows are taken one at a time (libpq's single-row mode):
 * row(res, ud) sees each one-row result, so a large result is never held whole. TK_OK, TK_ERR
 * (the statement failed, logged as api_exec does), or what row returned first below 0.
 */
int api_exec_rows(api *a, PGconn *conn, const char *sql, int n, const char *const *params,
                  int (*row)(const PGresult *res, void *ud), void *ud);
/* The result of a statement that succeeded. */
int api_ok(const PGresult *res);
/* SQLSTATE of a failed result, or "". */
const char *api_sqlstate(const PGresult *res);

/*
 * One request's database work and its answer. The work function (a
 * tk_pg_fn whose ud is the api_call) sets status and body (or text); it
 * returns < 0 to roll back, with or without an answer set (none: 500, or
 * 503 when the database is unreachable).
 */
typedef struct api_call {
    api *a;
    char user[24];        /* the authenticated user id */
    int status;           /* 0: no answer yet */
    json_t *body;         /* the answer, or */
    char *text;           /* an answer already serialised (malloc'd) */
    long long total;      /* X-Total-Count when >= 0 */
    void *arg;            /* the route's own input */
    int www_authenticate; /* the answer is a 401 for the token */
} api_call;

void api_call_init(api_call *c, api *a, void *arg);
/* Sets the answer {"detail": detail} with status and returns TK_ERR (roll back). */
int api_fail(api_call *c, int status, const char *detail);
/* Sets the answer {"detail": {"code","message"}} and returns TK_ERR. */
int api_fail_code(api_call *c, int status, const char *code, const char *message);
/* Sets a JSON answer (stolen) and returns TK_OK (TK_ENOMEM for NULL). */
int api_answer(api_call *c, int status, json_t *body);
/*
 * Runs fn on a pooled connection, in a transaction when tx, then sends the
 * answer. Returns what a handler returns.
 */
int api_run(api_call *c, int tx, tk_pg_fn fn, tk_http_response *resp);
/* The two halves of api_run: the work (returns its code), then the answer. */
int api_call_run(api_call *c, int tx, tk_pg_fn fn);
int api_call_send(api_call *c, int rc, tk_http_response *resp);
/*
 * In a transaction that creates rows for the user: locks the user's row
 * (FOR KEY SHARE, so a concurrent delete-account waits for this transaction
 * and then deletes what it made). TK_OK; TK_ERR with a 401 answer when the
 * account no longer exists (a token outliving its account creates nothing).
 */
int api_lock_user(api_call *c, PGconn *conn);

/* ---- auth (auth.c) ---- */

/*
 * Authenticates the request from its Bearer token (or, with allow_query,
 * the `token` query argument): its signature and claims, then, in
 * PostgreSQL, that it was not revoked by a logout and that its user still
 * exists. On success copies the user id (decimal) into user and returns
 * TK_OK; otherwise sends the 401 and returns TK_EPERM (the database's code
 * after a 503 when it is unreachable, or a 500).
 */
int api_authenticate(api *a, const tk_http_request *req, tk_http_response *resp, char user[24],
                     int allow_query);
/* A new password hash (bcrypt of the SHA-256 hex digest); malloc'd or NULL. */
char *api_password_hash(int cost, const char *password);
/* Issues a signed token for user id; malloc'd. */
char *api_jwt_issue(api *a, const char *user_id);

/*
 * Runs one of the assistant's task tools (add_task, list_tasks,
 * complete_task, delete_task, update_task: task_tools.c's table) for user
 * through the REST routes' own validation, transactions and events. Returns
 * the result object; failures, an unknown tool too, are {"error": "..."} for
 * the model to read.
 */
json_t *api_task_tool(api *a, const char *user, const char *tool, json_t *args);
/* Those tools as the normalised request's "tools" (a JSON array, JSON Schema parameters). */
extern const char api_task_tools_json[];

/* ---- route registration ---- */
int api_auth_routes(api *a);
int api_tag_routes(api *a);
int api_task_routes(api *a);
int api_conversation_routes(api *a);
int api_chat_routes(api *a);

/* ---- events (util.c) ---- */

/* Appends an event with payload (stolen) to topic inside the caller's transaction. */
int api_event(api *a, PGconn *conn, const char *topic, const char *type, const char *user,
              const char *subject, json_t *payload);

#endif
