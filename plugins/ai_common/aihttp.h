/*
 * Code the AI provider plugins share (compiled into each of them): one libcurl
 * POST of a JSON body, the mapping of HTTP statuses and transport errors to
 * tk_failure kinds, safe failure messages, call ids, config defaults, and the
 * parts of the normalised request/response (plugin.h) that are not provider
 * specific. Nothing here keeps mutable state: every function may be called
 * from any thread.
 */
#ifndef TK_AIHTTP_H
#define TK_AIHTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <taskora/plugin.h>

/* --- one POST -------------------------------------------------------------- */

typedef struct aihttp_request {
    const char *url;        /* never holds the key */
    const char *body;       /* JSON text, sent as application/json */
    long timeout_ms;        /* total; the connect timeout is min(timeout_ms, 10000) */
    const char *key_header; /* e.g. "x-goog-api-key: " or "Authorization: Bearer " */
    const char *key;        /* appended to key_header; never logged nor copied into messages */
} aihttp_request;

typedef struct aihttp_response {
    long status;            /* HTTP status, 0 when no answer arrived */
    char *body;             /* malloc'd, NUL-terminated ("" when none); aihttp_response_free */
    size_t body_len;        /* bytes in body */
    int64_t retry_after_ms; /* from the Retry-After header (seconds or HTTP-date), or -1 */
    int curl_code;          /* CURLcode; 0 when the exchange completed */
    char curl_error[256];   /* libcurl's description when curl_code != 0 */
} aihttp_response;

/*
 * POSTs req->body to req->url and waits for the whole answer, with the toolkit's
 * safe set-up (kit_curl.h: no redirects are followed, so the key header never goes to
 * another host). r->retry_after_ms is read with kit_parse_retry_after. Returns TK_OK
 * when an HTTP answer arrived, whatever its status; otherwise a negative
 * code with r->curl_code and r->curl_error set (see aihttp_fail_transport).
 * Always call aihttp_response_free afterwards.
 */
int aihttp_post(const aihttp_request *req, aihttp_response *r);
void aihttp_response_free(aihttp_response *r);

/* --- failures -------------------------------------------------------------- */

/* kind NONE, no status, retry_after_ms -1, fail_fast 0, empty message. */
void aihttp_failure_reset(tk_failure *f);

/*
 * The kind an HTTP status means: 2xx NONE; 401/403 AUTH; 408 UNAVAILABLE;
 * 429 RATE_LIMITED; other 4xx (400, 404, 422...) BAD_REQUEST; 5xx and
 * anything else UNAVAILABLE. Providers adjust the few statuses they use
 * differently.
 */
tk_failure_kind aihttp_status_kind(long status);

/* The return code a failure kind is reported with (TK_ETIMEDOUT, TK_EUNAVAILABLE, TK_ERR). */
int aihttp_kind_rc(tk_failure_kind kind);

/*
 * Fills *f (kind, status, message) and returns aihttp_kind_rc(kind);
 * retry_after_ms and fail_fast are left as they are. The formatted message
 * has every occurrence of `secret` (may be NULL) replaced by "[redacted]",
 * control characters turned into spaces, and is cut to fit (on a UTF-8
 * boundary, ending with "...").
 */
int aihttp_fail(tk_failure *f, tk_failure_kind kind, long http_status, const char *secret,
                const char *fmt, ...) TK_PRINTF(5, 6);

/*
 * For aihttp_post's failures: curl timeouts are TIMEOUT, a malformed URL or
 * unsupported scheme (bad base_url) BAD_REQUEST, everything else
 * (connection refused/reset, DNS, TLS, an answer cut short) UNAVAILABLE.
 * `who` prefixes the message ("ai_gemini").
 */
int aihttp_fail_transport(const aihttp_request *req, const aihttp_response *r, const char *who,
                          tk_failure *f);

/* The first bytes of a body, for a message about an answer that is not what we expected. */
void aihttp_snippet(const char *body, char *out, size_t len);

/* --- helpers ----------------------------------------------------------------- */

/* A fresh tool call id, "call_" and 16 hex digits (random), into out (>= 22 bytes). */
void aihttp_call_id(char *out, size_t len);

/*
 * Config values with a fallback for a key the host has no value for (the
 * real host fills schema defaults; a test's fake host may not).
 */
const char *aihttp_cfg_string(const tk_host *host, tk_instance *inst, const char *key,
                              const char *def);
int64_t aihttp_cfg_int(const tk_host *host, tk_instance *inst, const char *key, int64_t def);
double aihttp_cfg_double(const tk_host *host, tk_instance *inst, const char *key, double def);

/* A malloc'd copy of a base URL without its trailing slashes. */
char *aihttp_base_url(const char *base);

/* One debug line per call; a warning with the message when f is not NULL. */
void aihttp_log_call(const tk_host *host, const tk_instance *inst, const char *provider,
                     const char *model, long status, int64_t latency_ms, const tk_failure *f);

/* --- the normalised request and response (plugin.h) --------------------------- */

/*
 * Parses request_json and checks its shape: an object whose "messages" is a
 * non-empty array of objects with a string "role"; "tools", when present, an
 * array of objects with a string "name"; "temperature" / "max_tokens", when
 * present, numbers. On success *out is a new reference and temperature and
 * max_tokens hold the request's values or the given defaults. Otherwise a
 * BAD_REQUEST failure (TK_EINVAL).
 */
int aihttp_parse_request(const char *request_json, const char *who, json_t **out,
                         double *temperature, int64_t *max_tokens, tk_failure *f);

/* Message content as text: a string as is, null/absent "", anything else its JSON. New ref. */
json_t *aihttp_content_text(json_t *content);

/*
 * The arguments of a tool call in a request as an object (new reference):
 * an object as is, a string holding a JSON object parsed, anything else {}.
 */
json_t *aihttp_arguments_object(json_t *arguments);

/*
 * The tool call with `id` among the assistant messages before messages[before],
 * or NULL. Borrowed.
 */
json_t *aihttp_find_call(json_t *messages, size_t before, const char *id);

/* A value as a JSON string: a string as is, anything else (null too) serialised. New ref. */
json_t *aihttp_json_text(json_t *v);

/*
 * The function-calling wire Cohere v2 and OpenAI chat share. Calls:
 * [{id, type "function", function {name, arguments: a JSON object in a
 * string}}] from normalised tool calls (arguments the model got wrong go back
 * as "{}"; the tool result says why); NULL with *why on a call without a
 * string id or name.
 */
json_t *aihttp_function_calls(json_t *calls, const char **why);
/*
 * One tool call of a response, normalised: {id, name, arguments}. function.arguments is a
 * JSON string that may not parse (then arguments is null and arguments_error says why) or,
 * from some servers, already an object; {name, arguments} without the function wrapper is
 * tolerated. `taken` holds the ids of the calls before it: a missing or repeated id is
 * replaced by a new one.
 */
json_t *aihttp_function_call_parse(json_t *wire, json_t *taken);
/* Tools: [{type "function", function {name, description?, parameters}}]; a function
 * without parameters gets an empty object schema. */
json_t *aihttp_function_tools(json_t *tools);

/* A new response: text "", tool_calls [], finish_reason "stop", usage 0/0, provider, model. */
json_t *aihttp_response_new(const char *provider, const char *model);

/*
 * A token count of an answer as an int64_t: an integer as is, a real truncated, 0 for
 * anything else and for a real no int64_t holds.
 */
int64_t aihttp_token_count(json_t *v);

/* Sets usage.input_tokens / output_tokens. */
void aihttp_response_usage(json_t *resp, int64_t input_tokens, int64_t output_tokens);

/*
 * Serialises resp into *out (malloc'd, for free()) and drops the reference.
 * TK_OK, or an UNAVAILABLE failure when out of memory.
 */
int aihttp_response_dump(json_t *resp, char **out, const char *who, tk_failure *f);

/* --- the provider skeleton every plugin shares ----------------------------------- */

/*
 * The config keys every provider has beside api_key, model and base_url, for its
 * tk_config_field table: timeout_ms, temperature and max_tokens (described as max_tokens_doc).
 * The host enforces their ranges.
 */
// clang-format off
#define AIHTTP_CONFIG_TUNING(max_tokens_doc)                                                       \
    {"timeout_ms", TK_CFG_INT, 0, "30000", NULL,                                                   \
     "total time of one attempt (connect: at most 10 s)", NULL, TK_CFG_RANGE(1, 3600000)},         \
    {"temperature", TK_CFG_DOUBLE, 0, "0.7", NULL, "when the request sets none", NULL,             \
     TK_CFG_NO_RANGE},                                                                             \
    {"max_tokens", TK_CFG_INT, 0, "1024", NULL, max_tokens_doc, NULL, TK_CFG_RANGE(1, INT64_MAX)}
// clang-format on

/* The settings every provider reads (config keys of the same names). */
typedef struct aihttp_provider {
    const tk_host *host;
    tk_instance *inst;
    const char *api_key; /* owned by the host; "" when none */
    const char *model;   /* owned by the host (a strip_prefix skipped) */
    char *url;           /* base_url + the provider's path */
    long timeout_ms;
    double temperature;
    int64_t max_tokens;
} aihttp_provider;

/*
 * From init(): initialises libcurl, reads api_key, model, base_url,
 * timeout_ms, temperature and max_tokens (their defaults are the plugin's
 * config table's, which the host fills in), strips strip_prefix (or NULL)
 * from the model, and builds url from base_url and path_fmt, whose one %s
 * (if any) is the model. Refuses (logged, TK_EINVAL) an empty base_url or
 * model (the host refuses a timeout or max_tokens out of range:
 * AIHTTP_CONFIG_TUNING). TK_OK with *out, else the
 * code and *out NULL. *base_out (may be NULL) gets the base URL for the
 * plugin's log line; free it.
 */
int aihttp_provider_new(const tk_host *host, tk_instance *inst, const char *strip_prefix,
                        const char *path_fmt, aihttp_provider **out, char **base_out);
/* From destroy() (NULL is fine). */
void aihttp_provider_free(aihttp_provider *p);

/* What makes one provider: its names, its key header, its wire format. */
typedef struct aihttp_wire {
    const char *who;        /* "ai_gemini": message prefix */
    const char *provider;   /* "gemini": for logs */
    const char *key_header; /* "x-goog-api-key: ", "Authorization: Bearer " */
    const char *key_env;    /* the key is required (named in the error), or NULL: optional */
    /* the provider's request body from the normalised request, or NULL with *why */
    json_t *(*request)(const aihttp_provider *p, json_t *req, double temperature,
                       int64_t max_tokens, const char **why);
    /* a non-2xx answer as a failure (returns its code) */
    int (*fail_http)(const aihttp_provider *p, const aihttp_response *r, tk_failure *f);
    /* a 2xx answer as the normalised response in *out, or a failure */
    int (*parse_answer)(const aihttp_provider *p, const aihttp_response *r, char **out,
                        tk_failure *f);
} aihttp_wire;

/*
 * The whole of a provider's chat(): one attempt (no retries), timed and
 * logged, with the contract of tk_ai_provider.chat.
 */
int aihttp_chat(const aihttp_provider *p, const aihttp_wire *w, const char *request_json,
                char **response_json, tk_failure *f);

#endif
