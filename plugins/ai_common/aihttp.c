/* Shared by the AI provider plugins: one libcurl POST, failures, ids, the provider skeleton. */
#include "aihttp.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>

#include "../kit/kit.h"
#include "../kit/kit_curl.h"

/* An answer larger than this is refused rather than buffered. */
#define MAX_BODY ((size_t)16 << 20)
/* A Retry-After further away than this is no answer to wait for. */
#define MAX_RETRY_AFTER_S 1000000000

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

int aihttp_post(const aihttp_request *req, aihttp_response *r)
{
    memset(r, 0, sizeof(*r));
    r->retry_after_ms = -1;
    body_buf b = {0};
    char retry_after[KIT_RETRY_AFTER_LEN] = "";
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char *key_line = NULL;
    CURL *c = NULL;
    CURLcode rc = CURLE_OUT_OF_MEMORY;

    if (req->key_header && req->key) {
        size_t n = strlen(req->key_header) + strlen(req->key) + 1;
        if (!(key_line = malloc(n)))
            goto done;
        snprintf(key_line, n, "%s%s", req->key_header, req->key);
    }
    /* "Expect:" stops libcurl's 100-continue wait on large bodies */
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:", key_line};
    if (!(headers = kit_curl_headers(fixed, sizeof(fixed) / sizeof(fixed[0]))))
        goto done;
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : 30000;
    c = kit_curl_post(req->url, req->body, strlen(req->body), headers, "taskora-ai/1.0", timeout,
                      errbuf);
    if (!c)
        goto done;
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* whatever libcurl can decode */
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, kit_curl_retry_after);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, retry_after);
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
    r->retry_after_ms = kit_parse_retry_after(retry_after, (int64_t)time(NULL), MAX_RETRY_AFTER_S);
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

/* --- the provider skeleton -------------------------------------------------------- */

void aihttp_provider_free(aihttp_provider *p)
{
    if (!p)
        return;
    free(p->url);
    free(p);
    kit_curl_global_cleanup();
}

int aihttp_provider_new(const tk_host *host, tk_instance *inst, const char *strip_prefix,
                        const char *path_fmt, aihttp_provider **out, char **base_out)
{
    *out = NULL;
    if (base_out)
        *base_out = NULL;
    if (kit_curl_global_init() < 0) {
        host->log(inst, TK_LOG_ERROR, "curl_global_init failed");
        return TK_ERR;
    }
    aihttp_provider *p = calloc(1, sizeof(*p));
    if (!p) {
        kit_curl_global_cleanup();
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
    int64_t t0 = kit_monotonic_ms();
    int rc = attempt(p, w, request_json, response_json, f, &status);
    aihttp_log_call(p->host, p->inst, w->provider, p->model, status, kit_monotonic_ms() - t0,
                    rc == TK_OK ? NULL : f);
    return rc;
}
