/* Shared by the AI provider plugins: one libcurl POST, failure mapping, ids, request checks. */
#include "aihttp.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>

/* An answer larger than this is refused rather than buffered. */
#define MAX_BODY ((size_t)16 << 20)
/* The connect timeout never exceeds this, whatever the total timeout. */
#define MAX_CONNECT_MS 10000L

/* --- libcurl's global state ------------------------------------------------ */

/*
 * curl_global_init is refcounted, but before libcurl 7.84 it is not
 * thread-safe; init()/destroy() run on the main thread, the lock is only a
 * guard for hosts that do otherwise. A pthread_once would not pair with one
 * cleanup per destroy() when several instances are configured.
 */
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;

int aihttp_global_init(void)
{
    pthread_mutex_lock(&global_lock);
    CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_unlock(&global_lock);
    return c == CURLE_OK ? TK_OK : TK_ERR;
}

void aihttp_global_cleanup(void)
{
    pthread_mutex_lock(&global_lock);
    curl_global_cleanup();
    pthread_mutex_unlock(&global_lock);
}

/* --- one POST -------------------------------------------------------------- */

typedef struct body_buf {
    char *data;
    size_t len, cap;
    int too_big;
} body_buf;

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    body_buf *b = ud;
    size_t add = size * n;
    if (b->len + add > MAX_BODY) {
        b->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* Keeps the Retry-After value of the last response's headers. */
static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
    char *retry_after = ud; /* 64 bytes */
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        retry_after[0] = '\0'; /* a new response (after a 100 Continue, say) */
    } else if (len > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
        const char *v = ptr + sizeof(name) - 1, *end = ptr + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && isspace((unsigned char)end[-1]))
            end--;
        size_t m = (size_t)(end - v) < 63 ? (size_t)(end - v) : 63;
        memcpy(retry_after, v, m);
        retry_after[m] = '\0';
    }
    return len;
}

int aihttp_post(const aihttp_request *req, aihttp_response *r)
{
    memset(r, 0, sizeof(*r));
    r->retry_after_ms = -1;
    body_buf b = {0};
    char retry_after[64] = "";
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char *key_line = NULL;
    CURLcode rc = CURLE_OUT_OF_MEMORY;

    CURL *c = curl_easy_init();
    if (!c)
        goto done;
    if (req->key_header && req->key) {
        size_t n = strlen(req->key_header) + strlen(req->key) + 1;
        if (!(key_line = malloc(n)))
            goto done;
        snprintf(key_line, n, "%s%s", req->key_header, req->key);
    }
    /* "Expect:" stops libcurl's 100-continue wait on large bodies */
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:", key_line};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (!fixed[i])
            continue;
        struct curl_slist *h = curl_slist_append(headers, fixed[i]);
        if (!h)
            goto done;
        headers = h;
    }
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : 30000;
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "taskora-ai/1.0");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* many threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < MAX_CONNECT_MS ? timeout : MAX_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* whatever libcurl can decode */
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, retry_after);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
done:
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    if (key_line) {
        memset(key_line, 0, strlen(key_line));
        free(key_line);
    }
    r->curl_code = (int)rc;
    if (rc != CURLE_OK)
        snprintf(r->curl_error, sizeof(r->curl_error), "%s",
                 b.too_big   ? "answer larger than 16 MiB"
                 : errbuf[0] ? errbuf
                             : curl_easy_strerror(rc));
    r->body = b.data ? b.data : calloc(1, 1);
    r->body_len = b.len;
    r->retry_after_ms = aihttp_parse_retry_after(retry_after, (int64_t)time(NULL));
    if (!r->body && rc == CURLE_OK) {
        r->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf(r->curl_error, sizeof(r->curl_error), "out of memory");
    }
    return r->curl_code == CURLE_OK ? TK_OK : TK_EUNAVAILABLE;
}

void aihttp_response_free(aihttp_response *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

int64_t aihttp_parse_retry_after(const char *value, int64_t now_s)
{
    if (!value)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    if (!*value)
        return -1;
    if (isdigit((unsigned char)*value)) { /* delay-seconds (a fraction is tolerated) */
        char *end;
        double s = strtod(value, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (*end || s < 0 || s > 1e9)
            return -1;
        return (int64_t)(s * 1000.0 + 0.5);
    }
    /* HTTP-date, IMF-fixdate form: "Wed, 21 Oct 2015 07:28:00 GMT" */
    struct tm tm = {0};
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return (int64_t)t > now_s ? ((int64_t)t - now_s) * 1000 : 0;
}

/* --- failures -------------------------------------------------------------- */

void aihttp_failure_reset(tk_failure *f)
{
    memset(f, 0, sizeof(*f));
    f->kind = TK_FAIL_NONE;
    f->retry_after_ms = -1;
}

tk_failure_kind aihttp_status_kind(long status)
{
    if (status >= 200 && status < 300)
        return TK_FAIL_NONE;
    switch (status) {
    case 401:
    case 403: return TK_FAIL_AUTH;
    case 408: return TK_FAIL_UNAVAILABLE;
    case 429: return TK_FAIL_RATE_LIMITED;
    default: break;
    }
    if (status >= 400 && status < 500)
        return TK_FAIL_BAD_REQUEST;
    return TK_FAIL_UNAVAILABLE; /* 5xx, and answers no client should get (1xx, 3xx) */
}

int aihttp_kind_rc(tk_failure_kind kind)
{
    switch (kind) {
    case TK_FAIL_TIMEOUT: return TK_ETIMEDOUT;
    case TK_FAIL_UNAVAILABLE:
    case TK_FAIL_RATE_LIMITED: return TK_EUNAVAILABLE;
    default: return TK_ERR;
    }
}

/* Replaces each occurrence of secret in buf (capacity cap <= 4096) by "[redacted]". */
static void scrub(char *buf, size_t cap, const char *secret)
{
    static const char mark[] = "[redacted]";
    size_t slen = secret ? strlen(secret) : 0;
    if (slen < 4 || !strstr(buf, secret)) /* shorter: cannot be told from ordinary text */
        return;
    char out[4096];
    size_t o = 0, lim = cap < sizeof(out) ? cap : sizeof(out);
    for (const char *p = buf; *p && o + 1 < lim;) {
        if (strncmp(p, secret, slen) == 0) {
            for (size_t k = 0; k < sizeof(mark) - 1 && o + 1 < lim; k++)
                out[o++] = mark[k];
            p += slen;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    memcpy(buf, out, o + 1);
}

int aihttp_fail(tk_failure *f, tk_failure_kind kind, long http_status, const char *secret,
                const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    scrub(buf, sizeof(buf), secret);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    size_t n = strlen(buf), cap = sizeof(f->message);
    if (n < cap) {
        memcpy(f->message, buf, n + 1);
    } else { /* cut on a UTF-8 boundary and say so */
        size_t keep = cap - 4;
        while (keep > 0 && ((unsigned char)buf[keep] & 0xC0) == 0x80)
            keep--;
        memcpy(f->message, buf, keep);
        memcpy(f->message + keep, "...", 4);
    }
    f->kind = kind;
    f->http_status = (int)http_status;
    return aihttp_kind_rc(kind);
}

int aihttp_fail_transport(const aihttp_request *req, const aihttp_response *r, const char *who,
                          tk_failure *f)
{
    CURLcode c = (CURLcode)r->curl_code;
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT:
        return aihttp_fail(f, TK_FAIL_TIMEOUT, r->status, req->key,
                           "%s: no complete answer within %ld ms (%s)", who, req->timeout_ms,
                           r->curl_error);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return aihttp_fail(f, TK_FAIL_BAD_REQUEST, r->status, req->key,
                           "%s: bad URL %s (check base_url): %s", who, req->url, r->curl_error);
    default:
        return aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, req->key, "%s: POST %s failed: %s",
                           who, req->url, r->curl_error);
    }
}

void aihttp_snippet(const char *body, char *out, size_t len)
{
    size_t n = body ? strlen(body) : 0;
    if (n == 0) {
        snprintf(out, len, "(empty body)");
        return;
    }
    snprintf(out, len, "%.*s%s", (int)(n < 200 ? n : 200), body, n > 200 ? "..." : "");
}

/* --- helpers ----------------------------------------------------------------- */

int64_t aihttp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void aihttp_call_id(char *out, size_t len)
{
    static atomic_uint_fast64_t counter;
    uint64_t v;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
            (atomic_fetch_add(&counter, 1) + 1) * 0x9E3779B97F4A7C15ull;
    }
    snprintf(out, len, "call_%016llx", (unsigned long long)v);
}

/* Non-zero when the host has a value for key. */
static int cfg_has(const tk_host *host, tk_instance *inst, const char *key)
{
    char *v = host->config_json(inst, key);
    int has = v && strcmp(v, "null") != 0;
    host->free(v);
    return has;
}

const char *aihttp_cfg_string(const tk_host *host, tk_instance *inst, const char *key,
                              const char *def)
{
    const char *v = host->config_string(inst, key);
    return v ? v : def;
}

int64_t aihttp_cfg_int(const tk_host *host, tk_instance *inst, const char *key, int64_t def)
{
    return cfg_has(host, inst, key) ? host->config_int(inst, key) : def;
}

double aihttp_cfg_double(const tk_host *host, tk_instance *inst, const char *key, double def)
{
    return cfg_has(host, inst, key) ? host->config_double(inst, key) : def;
}

char *aihttp_base_url(const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, base, n);
        out[n] = '\0';
    }
    return out;
}

void aihttp_log_call(const tk_host *host, const tk_instance *inst, const char *provider,
                     const char *model, long status, int64_t latency_ms, const tk_failure *f)
{
    host->log(inst, TK_LOG_DEBUG, "provider=%s model=%s status=%ld latency_ms=%lld result=%s",
              provider, model, status, (long long)latency_ms,
              f ? tk_failure_kind_name(f->kind) : "ok");
    if (f)
        host->log(inst, TK_LOG_WARN, "provider=%s model=%s chat failed (%s): %s", provider, model,
                  tk_failure_kind_name(f->kind), f->message);
}

/* --- the normalised request and response ------------------------------------- */

int aihttp_parse_request(const char *request_json, const char *who, json_t **out,
                         double *temperature, int64_t *max_tokens, tk_failure *f)
{
    json_error_t err;
    *out = NULL;
    json_t *req = request_json ? json_loads(request_json, 0, &err) : NULL;
    if (!req)
        return aihttp_fail(f, TK_FAIL_BAD_REQUEST, 0, NULL, "%s: request is not a JSON object: %s",
                           who, request_json ? err.text : "NULL");
    json_t *messages = json_object_get(req, "messages");
    const char *why = NULL;
    if (!json_is_object(req))
        why = "request is not a JSON object";
    else if (!json_is_array(messages) || json_array_size(messages) == 0)
        why = "request has no \"messages\" (a non-empty array)";
    size_t i;
    json_t *v;
    json_array_foreach(messages, i, v)
    {
        if (!why && !json_is_string(json_object_get(v, "role")))
            why = "a message has no string \"role\"";
    }
    json_t *tools = json_object_get(req, "tools");
    if (!why && tools && !json_is_null(tools) && !json_is_array(tools))
        why = "\"tools\" is not an array";
    json_array_foreach(tools, i, v)
    {
        if (!why && !json_is_string(json_object_get(v, "name")))
            why = "a tool has no string \"name\"";
    }
    json_t *t = json_object_get(req, "temperature"), *m = json_object_get(req, "max_tokens");
    if (!why && t && !json_is_null(t) && !json_is_number(t))
        why = "\"temperature\" is not a number";
    if (!why && m && !json_is_null(m) && !json_is_integer(m))
        why = "\"max_tokens\" is not an integer";
    if (why) {
        json_decref(req);
        return aihttp_fail(f, TK_FAIL_BAD_REQUEST, 0, NULL, "%s: %s", who, why);
    }
    if (json_is_number(t))
        *temperature = json_number_value(t);
    if (json_is_integer(m))
        *max_tokens = json_integer_value(m);
    *out = req;
    return TK_OK;
}

json_t *aihttp_content_text(json_t *content)
{
    if (json_is_string(content))
        return json_incref(content);
    if (!content || json_is_null(content))
        return json_string("");
    char *s = json_dumps(content, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *out = json_string(s ? s : "");
    free(s);
    return out;
}

json_t *aihttp_arguments_object(json_t *arguments)
{
    if (json_is_object(arguments))
        return json_incref(arguments);
    if (json_is_string(arguments)) {
        json_t *v = json_loads(json_string_value(arguments), 0, NULL);
        if (json_is_object(v))
            return v;
        json_decref(v);
    }
    return json_object();
}

json_t *aihttp_find_call(json_t *messages, size_t before, const char *id)
{
    if (!id)
        return NULL;
    for (size_t i = before; i-- > 0;) {
        json_t *m = json_array_get(messages, i);
        json_t *calls = json_object_get(m, "tool_calls");
        size_t j;
        json_t *c;
        json_array_foreach(calls, j, c)
        {
            const char *cid = json_string_value(json_object_get(c, "id"));
            if (cid && strcmp(cid, id) == 0)
                return c;
        }
    }
    return NULL;
}

json_t *aihttp_response_new(const char *provider, const char *model)
{
    json_t *usage = json_object();
    json_object_set_new(usage, "input_tokens", json_integer(0));
    json_object_set_new(usage, "output_tokens", json_integer(0));
    json_t *r = json_object();
    json_object_set_new(r, "text", json_string(""));
    json_object_set_new(r, "tool_calls", json_array());
    json_object_set_new(r, "finish_reason", json_string("stop"));
    json_object_set_new(r, "usage", usage);
    json_object_set_new(r, "provider", json_string(provider));
    json_object_set_new(r, "model", json_string(model));
    return r;
}

int64_t aihttp_token_count(json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    double d = json_real_value(v); /* 0 when not a real */
    /* [-2^63, 2^63): what truncates into an int64_t */
    return d >= -9223372036854775808.0 && d < 9223372036854775808.0 ? (int64_t)d : 0;
}

void aihttp_response_usage(json_t *resp, int64_t input_tokens, int64_t output_tokens)
{
    json_t *usage = json_object_get(resp, "usage");
    json_object_set_new(usage, "input_tokens", json_integer(input_tokens));
    json_object_set_new(usage, "output_tokens", json_integer(output_tokens));
}

int aihttp_response_dump(json_t *resp, char **out, const char *who, tk_failure *f)
{
    *out = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    json_decref(resp);
    if (!*out) {
        aihttp_fail(f, TK_FAIL_UNAVAILABLE, 0, NULL, "%s: out of memory", who);
        return TK_ENOMEM;
    }
    return TK_OK;
}

/* --- the function-calling wire (Cohere v2, OpenAI chat) ------------------------------ */

json_t *aihttp_json_text(json_t *v)
{
    if (json_is_string(v))
        return json_incref(v);
    char *s = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *out = json_string(s ? s : "null");
    free(s);
    return out;
}

json_t *aihttp_function_calls(json_t *calls, const char **why)
{
    json_t *wire = json_array();
    size_t i;
    json_t *call;
    json_array_foreach(calls, i, call)
    {
        json_t *id = json_object_get(call, "id"), *name = json_object_get(call, "name");
        if (!json_is_string(id) || !json_is_string(name)) {
            *why = "a tool call has no string \"id\" or \"name\"";
            json_decref(wire);
            return NULL;
        }
        json_t *args = aihttp_arguments_object(json_object_get(call, "arguments"));
        json_t *fn = json_object();
        json_object_set(fn, "name", name);
        json_object_set_new(fn, "arguments", aihttp_json_text(args));
        json_decref(args);
        json_t *c = json_object();
        json_object_set(c, "id", id);
        json_object_set_new(c, "type", json_string("function"));
        json_object_set_new(c, "function", fn);
        json_array_append_new(wire, c);
    }
    return wire;
}

json_t *aihttp_function_call_parse(json_t *wire, json_t *taken)
{
    json_t *call = json_object();
    json_t *id = json_object_get(wire, "id");
    if (json_is_string(id) && json_string_length(id) > 0 &&
        !json_object_get(taken, json_string_value(id))) {
        json_object_set(call, "id", id);
    } else {
        char buf[32];
        aihttp_call_id(buf, sizeof(buf));
        json_object_set_new(call, "id", json_string(buf));
    }
    json_object_set_new(taken, json_string_value(json_object_get(call, "id")), json_true());
    json_t *fn = json_object_get(wire, "function");
    if (!json_is_object(fn))
        fn = wire; /* tolerated: {name, arguments} without the function wrapper */
    json_t *name = json_object_get(fn, "name");
    json_object_set_new(call, "name", json_is_string(name) ? json_incref(name) : json_string(""));
    json_t *args = json_object_get(fn, "arguments");
    json_t *parsed = NULL;
    char why[300] = "";
    if (json_is_object(args)) {
        parsed = json_incref(args);
    } else if (!args || json_is_null(args) ||
               (json_is_string(args) &&
                strspn(json_string_value(args), " \t\r\n") == json_string_length(args))) {
        parsed = json_object(); /* a call without arguments */
    } else if (json_is_string(args)) {
        json_error_t err;
        parsed = json_loadb(json_string_value(args), json_string_length(args), 0, &err);
        if (!parsed)
            snprintf(why, sizeof(why), "invalid JSON arguments: %s", err.text);
        else if (!json_is_object(parsed))
            snprintf(why, sizeof(why), "arguments are not a JSON object");
    } else {
        snprintf(why, sizeof(why), "arguments are not a JSON object");
    }
    if (why[0]) {
        json_decref(parsed);
        json_object_set_new(call, "arguments", json_null());
        json_object_set_new(call, "arguments_error", json_string(why));
    } else {
        json_object_set_new(call, "arguments", parsed);
    }
    return call;
}

json_t *aihttp_function_tools(json_t *tools)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        json_t *fn = json_object();
        json_object_set(fn, "name", json_object_get(t, "name"));
        json_t *desc = json_object_get(t, "description");
        if (json_is_string(desc))
            json_object_set(fn, "description", desc);
        json_t *params = json_object_get(t, "parameters");
        if (json_is_object(params)) {
            json_object_set(fn, "parameters", params);
        } else { /* a function without parameters */
            params = json_object();
            json_object_set_new(params, "type", json_string("object"));
            json_object_set_new(params, "properties", json_object());
            json_object_set_new(fn, "parameters", params);
        }
        json_t *tool = json_object();
        json_object_set_new(tool, "type", json_string("function"));
        json_object_set_new(tool, "function", fn);
        json_array_append_new(out, tool);
    }
    return out;
}

/* --- the provider skeleton -------------------------------------------------------- */

void aihttp_provider_free(aihttp_provider *p)
{
    if (!p)
        return;
    free(p->url);
    free(p);
    aihttp_global_cleanup();
}

int aihttp_provider_new(const tk_host *host, tk_instance *inst, const char *strip_prefix,
                        const char *path_fmt, aihttp_provider **out, char **base_out)
{
    *out = NULL;
    if (base_out)
        *base_out = NULL;
    if (aihttp_global_init() < 0) {
        host->log(inst, TK_LOG_ERROR, "curl_global_init failed");
        return TK_ERR;
    }
    aihttp_provider *p = calloc(1, sizeof(*p));
    if (!p) {
        aihttp_global_cleanup();
        return TK_ENOMEM;
    }
    p->host = host;
    p->inst = inst;
    p->api_key = aihttp_cfg_string(host, inst, "api_key", "");
    p->model = aihttp_cfg_string(host, inst, "model", "");
    if (strip_prefix && strncmp(p->model, strip_prefix, strlen(strip_prefix)) == 0)
        p->model += strlen(strip_prefix);
    char *base = aihttp_base_url(aihttp_cfg_string(host, inst, "base_url", ""));
    int64_t timeout = aihttp_cfg_int(host, inst, "timeout_ms", 30000);
    p->temperature = aihttp_cfg_double(host, inst, "temperature", 0.7);
    p->max_tokens = aihttp_cfg_int(host, inst, "max_tokens", 1024);
    int rc = TK_ENOMEM;
    if (!base)
        goto fail;
    size_t n = strlen(base) + strlen(path_fmt) + strlen(p->model) + 1;
    if (!(p->url = malloc(n)))
        goto fail;
    snprintf(p->url, n, "%s", base);
    snprintf(p->url + strlen(base), n - strlen(base), path_fmt, p->model);
    rc = TK_EINVAL;
    if (!base[0] || !p->model[0]) {
        host->log(inst, TK_LOG_ERROR, "config.base_url and config.model must not be empty");
        goto fail;
    }
    if (timeout <= 0 || timeout > 3600000 || p->max_tokens <= 0) {
        host->log(inst, TK_LOG_ERROR,
                  "config.timeout_ms (1..3600000) and config.max_tokens (> 0) must be positive");
        goto fail;
    }
    p->timeout_ms = (long)timeout;
    if (base_out)
        *base_out = base;
    else
        free(base);
    *out = p;
    return TK_OK;
fail:
    free(base);
    aihttp_provider_free(p);
    return rc;
}

/* One attempt: the request in the provider's format, the POST, the answer or the failure. */
static int attempt(const aihttp_provider *p, const aihttp_wire *w, const char *request_json,
                   char **out, tk_failure *f, long *status)
{
    if (w->key_env && !p->api_key[0])
        return aihttp_fail(f, TK_FAIL_AUTH, 0, NULL, "%s: api_key is empty (set %s)", w->who,
                           w->key_env);
    json_t *req;
    double temperature = p->temperature;
    int64_t max_tokens = p->max_tokens;
    if (aihttp_parse_request(request_json, w->who, &req, &temperature, &max_tokens, f) < 0)
        return TK_EINVAL;
    const char *why = NULL;
    json_t *body = w->request(p, req, temperature, max_tokens, &why);
    json_decref(req);
    if (!body) {
        aihttp_fail(f, TK_FAIL_BAD_REQUEST, 0, NULL, "%s: %s", w->who, why ? why : "out of memory");
        return TK_EINVAL;
    }
    /* 15 digits: a temperature of 0.7 goes out as 0.7, not 0.69999999999999996 */
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(body);
    if (!text) {
        aihttp_fail(f, TK_FAIL_UNAVAILABLE, 0, NULL, "%s: out of memory", w->who);
        return TK_ENOMEM;
    }
    int keyed = p->api_key[0] != '\0'; /* an optional key that is not set is not sent */
    aihttp_request hreq = {.url = p->url,
                           .body = text,
                           .timeout_ms = p->timeout_ms,
                           .key_header = keyed ? w->key_header : NULL,
                           .key = keyed ? p->api_key : NULL};
    aihttp_response hresp;
    int rc = aihttp_post(&hreq, &hresp);
    free(text);
    *status = hresp.status;
    if (rc < 0)
        rc = aihttp_fail_transport(&hreq, &hresp, w->who, f);
    else if (hresp.status < 200 || hresp.status >= 300)
        rc = w->fail_http(p, &hresp, f);
    else
        rc = w->parse_answer(p, &hresp, out, f);
    aihttp_response_free(&hresp);
    return rc;
}

int aihttp_chat(const aihttp_provider *p, const aihttp_wire *w, const char *request_json,
                char **response_json, tk_failure *f)
{
    tk_failure local;
    if (!f)
        f = &local;
    aihttp_failure_reset(f);
    *response_json = NULL;
    long status = 0;
    int64_t t0 = aihttp_now_ms();
    int rc = attempt(p, w, request_json, response_json, f, &status);
    aihttp_log_call(p->host, p->inst, w->provider, p->model, status, aihttp_now_ms() - t0,
                    rc == TK_OK ? NULL : f);
    return rc;
}
