/*
 * Fuzzes the router and the API's query and path helpers. Input: lines. "+METHOD PATTERN"
 * adds a route (beside the http_api and core routes already there); "METHOD PATH?QUERY"
 * matches PATH with tk_routes_match, checks the match, and feeds every query value (and
 * every matched path parameter) to the toolkit's argument readers (kit_int_arg, kit_path_int)
 * and times (kit_time_parse, kit_time_format) and to api_parse_time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/http_api/api.h"
#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int handler(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    (void)ud, (void)req, (void)resp;
    return 0;
}

/* The routes taskorad serves with the http_api plugin loaded. */
static const char *const real_routes[][2] = {
    {"GET", "/health"},
    {"GET", "/ready"},
    {"GET", "/metrics"},
    {"GET", "/dapr/subscribe"},
    {"POST", "/dapr/events/{instance}"},
    {"GET", "/"},
    {"POST", "/api/auth/register"},
    {"POST", "/api/auth/login"},
    {"POST", "/api/auth/logout"},
    {"DELETE", "/api/auth/delete-account"},
    {"GET", "/api/auth/me"},
    {"GET", "/api/tags"},
    {"POST", "/api/tags"},
    {"GET", "/api/tags/{tag_id}"},
    {"PUT", "/api/tags/{tag_id}"},
    {"DELETE", "/api/tags/{tag_id}"},
    {"GET", "/api/tasks"},
    {"POST", "/api/tasks"},
    {"GET", "/api/tasks/reminders"},
    {"GET", "/api/tasks/{task_id}"},
    {"PUT", "/api/tasks/{task_id}"},
    {"DELETE", "/api/tasks/{task_id}"},
    {"PATCH", "/api/tasks/{task_id}/complete"},
    {"PATCH", "/api/tasks/{task_id}/reminder"},
    {"POST", "/api/tasks/{task_id}/reminder/sent"},
    {"GET", "/api/{user_id}/conversations"},
    {"GET", "/api/{user_id}/conversations/{conversation_id}/messages"},
    {"DELETE", "/api/{user_id}/conversations/{conversation_id}"},
    {"POST", "/api/{user_id}/chat"},
};

static void check_value(const char *v)
{
    kit_errors e;
    kit_errors_init(&e);
    int64_t n = 500;
    char t[32], again[32];
    if (kit_int_arg(&e, "query", "limit", v, 1, 1000, &n) == TK_OK && (n < 1 || n > 1000))
        abort();
    if (kit_int_arg(&e, "query", "offset", v, 0, 2147483647, &n) == TK_OK &&
        (n < 0 || n > 2147483647))
        abort();
    int64_t id = kit_path_int(&e, v, "task_id", INT32_MIN, INT32_MAX);
    if (id < INT32_MIN || id > INT32_MAX)
        abort();
    if (api_parse_time(v, t) == 0) {
        /* the result is always "YYYY-MM-DD HH:MM:SS.ffffff" and reads back as itself */
        if (strlen(t) != 26 || api_parse_time(t, again) != 0 || strcmp(t, again) != 0)
            abort();
    }
    int64_t us, back;
    if (kit_time_parse(v, 0, &us) == TK_OK) {
        /* the API's form reads back as the same time */
        char iso[KIT_TIME_LEN];
        kit_time_format(us, KIT_TIME_ISO, iso, sizeof(iso));
        if (strlen(iso) != 32 || kit_time_parse(iso, KIT_TIME_DATETIME, &back) != TK_OK ||
            back != us)
            abort();
    }
    kit_errors_free(&e);
}

static void query(char *q)
{
    char *save = NULL;
    for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        check_value(eq ? eq + 1 : kv);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    tk_routes *r = tk_routes_new();
    if (!text || !r)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    for (size_t i = 0; i < sizeof(real_routes) / sizeof(real_routes[0]); i++)
        if (tk_routes_add(r, real_routes[i][0], real_routes[i][1], handler, NULL, "fuzz") != 0)
            abort();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int add = line[0] == '+';
        char *method = line + add, *sp = strchr(method, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        char *path = sp + 1;
        if (add) {
            tk_routes_add(r, method, path, handler, NULL, "fuzz");
            continue;
        }
        char *q = strchr(path, '?');
        if (q)
            *q++ = '\0';
        tk_route_match m;
        int rc = tk_routes_match(r, method, path, &m);
        if (rc == 0) {
            if (!m.route || m.nparams > m.route->nsegs)
                abort();
            for (size_t i = 0; i < m.nparams; i++) {
                if (!m.names[i] || m.names[i][0] != '{' || !m.values[i] || !*m.values[i])
                    abort();
                check_value(m.values[i]);
            }
        } else if (rc == TK_ESTATE && strlen(m.allow) >= sizeof(m.allow)) {
            abort();
        }
        tk_route_match_clear(&m);
        if (q)
            query(q);
    }
    tk_routes_free(r);
    free(text);
    return 0;
}
