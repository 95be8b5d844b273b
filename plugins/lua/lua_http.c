/*
 * taskora.http.request{method=, url=, headers=, body=, timeout_ms=}: one libcurl call
 * through the host's retry policy and circuit breaker (target config http_target), only
 * http and https, no redirects, the answer's body capped at 1 MiB.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "luap.h"

#define MAX_BODY (1024 * 1024)
#define MAX_HEADERS 32

typedef struct call {
    const char *method, *url, *body;
    size_t body_len;
    struct curl_slist *headers;
    long timeout_ms;
    /* the answer */
    long status;
    char *resp;
    size_t resp_len, resp_cap;
    int too_big;
    char hdr[MAX_HEADERS][2][256];
    int nhdr;
} call;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    call *c = ud;
    size_t len = size * n;
    if (c->resp_len + len > MAX_BODY) {
        c->too_big = 1;
        return 0;
    }
    if (c->resp_len + len + 1 > c->resp_cap) {
        size_t cap = (c->resp_len + len + 1) * 2;
        char *r = realloc(c->resp, cap);
        if (!r)
            return 0;
        c->resp = r;
        c->resp_cap = cap;
    }
    memcpy(c->resp + c->resp_len, p, len);
    c->resp_len += len;
    c->resp[c->resp_len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    call *c = ud;
    size_t len = size * n;
    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        c->nhdr = 0; /* a new answer (after 100 Continue) */
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || c->nhdr == MAX_HEADERS)
        return len;
    size_t kl = (size_t)(colon - p), vs = kl + 1;
    while (vs < len && (p[vs] == ' ' || p[vs] == '\t'))
        vs++;
    size_t ve = len;
    while (ve > vs && (p[ve - 1] == '\r' || p[ve - 1] == '\n' || p[ve - 1] == ' '))
        ve--;
    if (kl >= 256 || ve - vs >= 256)
        return len;
    for (size_t i = 0; i < kl; i++)
        c->hdr[c->nhdr][0][i] = (char)tolower((unsigned char)p[i]);
    c->hdr[c->nhdr][0][kl] = '\0';
    memcpy(c->hdr[c->nhdr][1], p + vs, ve - vs);
    c->hdr[c->nhdr][1][ve - vs] = '\0';
    c->nhdr++;
    return len;
}

/* One attempt; an answer of 408, 429 or 5xx is a failure the policy may retry. */
static int attempt(void *ud, tk_failure *f)
{
    call *c = ud;
    c->resp_len = 0;
    c->nhdr = 0;
    c->status = 0;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    if (!h) {
        f->kind = TK_FAIL_UNAVAILABLE;
        snprintf(f->message, sizeof(f->message), "out of memory");
        return TK_ENOMEM;
    }
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    if (strcmp(c->method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (c->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "taskorad-lua");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 10000 ? c->timeout_ms : 10000);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        f->kind = rc == CURLE_OPERATION_TIMEDOUT ? TK_FAIL_TIMEOUT : TK_FAIL_UNAVAILABLE;
        if (c->too_big)
            f->kind = TK_FAIL_BAD_REQUEST;
        snprintf(f->message, sizeof(f->message), "%s %s: %s", c->method, c->url,
                 c->too_big  ? "the answer is larger than 1 MiB"
                 : errbuf[0] ? errbuf
                             : curl_easy_strerror(rc));
        return rc == CURLE_OPERATION_TIMEDOUT ? TK_ETIMEDOUT : TK_EUNAVAILABLE;
    }
    if (c->status == 408 || c->status == 429 || c->status >= 500) {
        f->kind = c->status == 429 ? TK_FAIL_RATE_LIMITED : TK_FAIL_UNAVAILABLE;
        f->http_status = (int)c->status;
        snprintf(f->message, sizeof(f->message), "%s %s: HTTP %ld", c->method, c->url, c->status);
        return TK_EUNAVAILABLE;
    }
    return TK_OK;
}

/* Reads the request table at index 1 into c (headers appended to c->headers). */
static void read_request(lua_State *L, call *c)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "url");
    c->url = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "method");
    c->method = luaL_optstring(L, -1, "GET");
    lua_getfield(L, 1, "body");
    c->body = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &c->body_len);
    lua_getfield(L, 1, "timeout_ms");
    c->timeout_ms = (long)luaL_optnumber(L, -1, 5000);
    for (const char *m = c->method; *m; m++)
        if (!isupper((unsigned char)*m))
            luaL_error(L, "taskora.http.request: method \"%s\" is not a method name", c->method);
    if (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0)
        luaL_error(L, "taskora.http.request: only http:// and https:// URLs");
    lua_getfield(L, 1, "headers");
    if (lua_type(L, -1) != LUA_TTABLE)
        return;
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
        char line[1024];
        if (k && v && !strpbrk(k, "\r\n:") && !strpbrk(v, "\r\n") &&
            (size_t)snprintf(line, sizeof(line), "%s: %s", k, v) < sizeof(line)) {
            struct curl_slist *l = curl_slist_append(c->headers, line);
            if (l)
                c->headers = l;
        }
        lua_pop(L, 1);
    }
}

static void push_response(lua_State *L, call *c)
{
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, (lua_Number)c->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, c->resp ? c->resp : "", c->resp_len);
    lua_setfield(L, -2, "body");
    lua_createtable(L, 0, c->nhdr);
    for (int i = 0; i < c->nhdr; i++) {
        lua_pushstring(L, c->hdr[i][1]);
        lua_setfield(L, -2, c->hdr[i][0]);
    }
    lua_setfield(L, -2, "headers");
}

int lp_http_request(lua_State *L)
{
    lp_state *st = lua_touserdata(L, lua_upvalueindex(1));
    call *c = lua_newuserdata(L, sizeof(call)); /* freed by Lua's GC, even after an error */
    memset(c, 0, sizeof(*c));
    read_request(L, c);
    int64_t left_ms = (st->deadline_ns - lp_now_ns()) / 1000000;
    if (st->mode == LP_RUN && c->timeout_ms > left_ms)
        c->timeout_ms = left_ms > 1 ? (long)left_ms : 1;
    if (c->timeout_ms < 1)
        c->timeout_ms = 1;
    tk_failure f;
    memset(&f, 0, sizeof(f));
    int rc = st->li->host->resilient_call(st->li->inst, st->li->target, attempt, c, &f);
    curl_slist_free_all(c->headers);
    if (rc == TK_OK)
        push_response(L, c);
    free(c->resp);
    lp_check_abort(L, st);
    if (rc == TK_OK)
        return 1;
    lua_pushnil(L);
    lua_pushstring(L, f.message[0] ? f.message : tk_strerror(rc));
    lua_pushnumber(L, f.http_status);
    return 3;
}
