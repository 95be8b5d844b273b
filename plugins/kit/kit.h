/*
 * The plugins' toolkit, compiled into every plugin (not part of any ABI): what each of them
 * would otherwise write again, the same way everywhere.
 *   - ISO 8601 times: parsed into microseconds, formatted for the API or PostgreSQL;
 *   - request arguments (query and path) read the way FastAPI reads them, with the API's
 *     422 answer {"detail": [{"loc": [...], "msg": ..., "type": ...}]};
 *   - JSON answers, the 503 of an unreachable database, authentication through the host;
 *   - Retry-After values;
 *   - KIT_SQL_ISO_UTC, the API's form of a stored time, for a plugin's SQL.
 * libcurl's safe set-up for outgoing calls is in kit_curl.h (for plugins that link libcurl).
 * It needs only <taskora/plugin.h> and jansson, keeps no state, and every function may be
 * called from any thread.
 */
#ifndef TASKORA_KIT_H
#define TASKORA_KIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <taskora/plugin.h>

/* ---- ISO 8601 times ------------------------------------------------------------------- */

/* kit_time_parse's flags. */
#define KIT_TIME_DATETIME 0x1u /* a time of day with seconds is required (no date alone) */

/*
 * Parses an ISO 8601 / RFC 3339 time into microseconds since 1970-01-01T00:00:00Z: a date
 * (midnight), or a date, 'T' (or 't', or a space), HH:MM[:SS[.fraction]] and an optional zone
 * ('Z', or +HH, +HHMM, +HH:MM); no zone means UTC. The fraction has 1 to 9 digits (kept to the
 * microsecond); the date must exist (no February 30th), seconds are 0..59, and the time in UTC
 * must lie in the years 1 to 9999. TK_OK, or TK_EINVAL (nothing written) when s is not such a
 * time.
 */
int kit_time_parse(const char *s, unsigned flags, int64_t *us);

typedef enum kit_time_style {
    KIT_TIME_ISO, /* "2026-02-04T12:00:00.123456+00:00": the API's form (taskora_iso_utc) */
    KIT_TIME_SQL, /* "2026-02-04 12:00:00.123456": for a PostgreSQL timestamp (UTC) */
    KIT_TIME_DAY, /* "2026-02-04": the UTC day */
} kit_time_style;

/* Room for any style, NUL included. */
#define KIT_TIME_LEN 40

/* Writes a time (microseconds since the epoch, taken within the years 1 to 9999) into out. */
void kit_time_format(int64_t us, kit_time_style style, char *out, size_t len);

/* The current time in microseconds since the epoch. */
int64_t kit_time_now_us(void);
/* A monotonic clock in milliseconds, for durations. */
int64_t kit_monotonic_ms(void);

/* ---- the API's 422 answer -------------------------------------------------------------- */

/* Validation errors being collected for one answer. */
typedef struct kit_errors {
    json_t *list; /* [{"loc", "msg", "type"}]; NULL when out of memory */
} kit_errors;

void kit_errors_init(kit_errors *e);
/* Adds one error; `where` is "body", "query" or "path"; field NULL: loc is [where] alone. */
void kit_errors_add(kit_errors *e, const char *where, const char *field, const char *msg,
                    const char *type);
int kit_errors_any(const kit_errors *e);
/* Sends 422 {"detail": [the errors]} and frees them. */
int kit_errors_send(const tk_host *h, tk_http_response *resp, kit_errors *e);
void kit_errors_free(kit_errors *e);

/* ---- answers ---------------------------------------------------------------------------- */

#define KIT_JSON_TYPE "application/json; charset=utf-8"

/* Sends JSON text (len bytes) with status. */
int kit_send_text(const tk_host *h, tk_http_response *resp, int status, const char *json,
                  size_t len);
/* Sends a JSON value (stolen; NULL is TK_ENOMEM) with status. */
int kit_send_json(const tk_host *h, tk_http_response *resp, int status, json_t *body);
/* Sends 422 with one error (a query or path value), as kit_errors_send would. */
int kit_invalid(const tk_host *h, tk_http_response *resp, const char *where, const char *field,
                const char *msg, const char *type);
/*
 * Answers a database failure: 503 {"detail": "Database unavailable"} with Retry-After: 1 for
 * TK_EUNAVAILABLE and TK_ETIMEDOUT (the client may retry), else 500 {"detail": "Internal
 * server error"}.
 */
int kit_db_error(const tk_host *h, tk_http_response *resp, int rc);

/* ---- request arguments ------------------------------------------------------------------ */

/* Is s well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF)? */
int kit_utf8_valid(const char *s);
/* The characters (code points) of a UTF-8 string: what the API's lengths count. */
size_t kit_utf8_len(const char *s);
/* The bytes of the first n characters of a UTF-8 string (all of it when it is shorter). */
size_t kit_utf8_prefix(const char *s, size_t n);

/*
 * A query argument, or NULL when absent. A value that is not UTF-8 records a 422 entry
 * (string_unicode) and reads as absent.
 */
const char *kit_query(const tk_host *h, const tk_http_request *req, kit_errors *e,
                      const char *name);
/*
 * A boolean query argument: tk_bool_word's words (true/false, 1/0, yes/no, on/off, t/f, y/n in
 * any case); dflt when absent. Another value records a 422 entry (bool_parsing) and reads dflt.
 */
int kit_query_bool(const tk_host *h, const tk_http_request *req, kit_errors *e, const char *name,
                   int dflt);
/*
 * Reads v (NULL: absent) as an integer in [min, max] into *out: TK_OK, TK_ENOTFOUND (absent,
 * *out untouched), or TK_EINVAL with a 422 entry under (where, name): int_parsing for what is
 * no integer, greater_than_equal / less_than_equal outside the range (an integer too large for
 * 64 bits counts as outside it, as FastAPI says of any integer).
 */
int kit_int_arg(kit_errors *e, const char *where, const char *name, const char *v, int64_t min,
                int64_t max, int64_t *out);
/* An integer query argument in [min, max] (kit_int_arg's errors); dflt when absent or invalid. */
int64_t kit_query_int(const tk_host *h, const tk_http_request *req, kit_errors *e, const char *name,
                      int64_t min, int64_t max, int64_t dflt);
/*
 * A date-time query argument (kit_time_parse with flags) into *us: TK_OK, TK_ENOTFOUND when
 * absent, or TK_EINVAL with a 422 entry (datetime_parsing).
 */
int kit_query_time(const tk_host *h, const tk_http_request *req, kit_errors *e, const char *name,
                   unsigned flags, int64_t *us);
/*
 * An integer path parameter in [min, max]. Anything else, out of range too, records int_parsing
 * under ("path", name) (a path names no object there) and reads -1.
 */
int64_t kit_path_int(kit_errors *e, const char *value, const char *name, int64_t min, int64_t max);

/* ---- authentication -------------------------------------------------------------------- */

/*
 * Who is calling, through the host's authenticator (http_authenticate2): TK_OK with the user id
 * in `user`, or a negative code with the answer already in resp (401, or 503 when no
 * authenticator is loaded): return it from the handler.
 */
int kit_authenticate(const tk_host *h, const tk_http_request *req, tk_http_response *resp,
                     char *user, size_t len, int allow_query_token);

/* ---- Retry-After ------------------------------------------------------------------------ */

/*
 * A Retry-After value: delay-seconds (a fraction is tolerated) or an HTTP-date (IMF-fixdate,
 * relative to now_s; a past date is 0), in milliseconds; -1 when unusable or further away
 * than max_s seconds.
 */
int64_t kit_parse_retry_after(const char *value, int64_t now_s, int64_t max_s);

/* ---- SQL -------------------------------------------------------------------------------- */

/*
 * A stored UTC time (a TIMESTAMP WITHOUT TIME ZONE column or expression, col a string literal)
 * as the API writes times, as SQL text: 2026-02-04T12:00:00.123456+00:00 (always six fraction
 * digits); NULL stays NULL. For the plugins that must not depend on http_api's SQL function
 * taskora_iso_utc (in a shipped migration step), which gives the same text: check_notifications
 * compares the two.
 */
#define KIT_SQL_ISO_UTC(col) "to_char(" col ", 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"

#endif
