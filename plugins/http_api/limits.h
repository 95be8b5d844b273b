/*
 * Abuse limits of the HTTP API: token buckets per client address and per
 * account (login, register, chat), growing delays after repeated wrong
 * passwords for one email, the bounded pool that runs password hashes, and
 * the per-user daily chat quota (in PostgreSQL). Everything but the quota
 * lives in fixed-size tables in this process.
 */
#ifndef HTTP_API_LIMITS_H
#define HTTP_API_LIMITS_H

#include "api.h"

/* The plugin config's "limits" object (see README). */
extern const tk_config_field api_limits_config[];
#define API_LIMITS_CONFIG_FIELD                                                                    \
    {                                                                                              \
        "limits", TK_CFG_OBJECT, 0, NULL, NULL,                                                    \
            "rate limits, login failure delays, password hash pool, chat quota",                   \
            api_limits_config, TK_CFG_NO_RANGE                                                     \
    }

typedef enum api_limit {
    API_LIMIT_LOGIN_ADDRESS,
    API_LIMIT_LOGIN_ACCOUNT,
    API_LIMIT_REGISTER_ADDRESS,
    API_LIMIT_CHAT_ADDRESS,
    API_LIMIT_CHAT_USER,
    API_LIMIT_COUNT
} api_limit;

/* Reads the config, allocates the tables, registers the metrics (from init). */
int api_limits_init(api *a);
void api_limits_destroy(api *a);

/*
 * Takes one token of the bucket of `limit` for `key` (NULL: the request's
 * client address). TK_OK when the request may go on; TK_EPERM after
 * answering 429 with Retry-After and {"detail": ...}.
 */
int api_limit_take(api *a, api_limit limit, const tk_http_request *req, const char *key,
                   tk_http_response *resp);

/*
 * Before a login's password check: the email's failure delay, then its
 * bucket (keyed by the lower-cased email). TK_OK go on; TK_EPERM after
 * answering 429.
 */
int api_login_admit(api *a, const char *email, tk_http_response *resp);
/* After the check: a failure grows the email's delay, a success forgets it. */
void api_login_outcome(api *a, const char *email, int ok);

/*
 * A slot of the password hash pool, waited for briefly. TK_OK with the slot
 * (give it back with api_hash_end); TK_EUNAVAILABLE after answering 503 with
 * Retry-After.
 */
int api_hash_begin(api *a, tk_http_response *resp);
void api_hash_end(api *a);

/*
 * Counts one chat message against the user's daily quota, on conn (inside
 * the caller's transaction). TK_OK counted; TK_EPERM over the quota
 * (*retry_after_s: seconds until the quota renews); another negative code:
 * the database failed.
 */
int api_chat_quota_take(api *a, PGconn *conn, const char *user, long long *retry_after_s);
/* Answers 429 for a used-up quota. */
int api_chat_quota_refuse(api *a, tk_http_response *resp, long long retry_after_s);

#endif
