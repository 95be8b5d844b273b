/* The HTTP API plugin: Taskora's REST contract (API.md) and the domain tables it owns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "limits.h"
#include "reminders_consumer.h"
#include "schema.h"

/* The plugin's routes in OpenAPI: openapi.json, compiled in (scripts/embed). */
extern const unsigned char api_openapi_json[];

/* 1 when the request comes from a browser navigating to a page: its Accept names text/html
 * (fetch, curl and the front end's API client ask for JSON or anything). */
static int wants_html(const tk_host *host, const tk_http_request *req)
{
    const char *accept = host->http_header(req, "Accept");
    return accept && strstr(accept, "text/html") != NULL;
}

/* GET / : the service's greeting, as the existing front end expects; a browser is sent on to
 * the web app (browser_home) when one is configured. */
static int route_root(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    static const char body[] = "{\"message\":\"Welcome to Taskora API\"}";
    /* the answer depends on Accept: a cache must not hand the redirect to an API client */
    int rc = a->host->http_set_header(resp, "Vary", "Accept");
    if (rc < 0)
        return rc;
    if (a->browser_home[0] && wants_html(a->host, req)) {
        a->host->http_status(resp, 302);
        return a->host->http_set_header(resp, "Location", a->browser_home);
    }
    return kit_send_text(a->host, resp, 200, body, sizeof(body) - 1);
}

/* The process's authenticator: other plugins' routes (notifications, analytics, realtime)
 * learn who is calling through host->http_authenticate2. TK_OK, or a negative code after the
 * answer (401, 503). */
static int authenticate(void *ud, const tk_http_request *req, tk_http_response *resp, char *user,
                        size_t len, int allow_query_token)
{
    char id[24];
    int rc = api_authenticate(ud, req, resp, id, allow_query_token);
    if (rc == TK_OK)
        snprintf(user, len, "%s", id);
    return rc;
}

static const tk_config_field config[] = {
    {"jwt_secret", TK_CFG_STRING, 0, "\"\"", NULL,
     "HS256 key of the access tokens (BETTER_AUTH_SECRET); required", NULL, TK_CFG_NO_RANGE},
    {"jwt_secret_previous", TK_CFG_STRING, 0, "\"\"", NULL,
     "the key being rotated out (BETTER_AUTH_SECRET_PREVIOUS): tokens it signed are still "
     "accepted, new ones are signed with jwt_secret. Empty: none",
     NULL, TK_CFG_NO_RANGE},
    {"token_ttl_s", TK_CFG_INT, 0, "604800", NULL, "lifetime of an access token (7 days)", NULL,
     TK_CFG_RANGE(60, INT64_MAX)},
    {"bcrypt_cost", TK_CFG_INT, 0, "12", NULL, "bcrypt cost of new password hashes (4..16)", NULL,
     TK_CFG_RANGE(4, 16)},
    {"task_topic", TK_CFG_STRING, 0, "\"task-events\"", NULL, "topic of task events", NULL,
     TK_CFG_NO_RANGE},
    {"user_topic", TK_CFG_STRING, 0, "\"user-events\"", NULL, "topic of user events", NULL,
     TK_CFG_NO_RANGE},
    {"chat_topic", TK_CFG_STRING, 0, "\"chat-events\"", NULL, "topic of chat events", NULL,
     TK_CFG_NO_RANGE},
    {"max_description", TK_CFG_INT, 0, "10000", NULL,
     "characters a task's description may hold (422 above); bounds a task list's memory", NULL,
     TK_CFG_RANGE(1, 1000000)},
    {"ai_provider", TK_CFG_STRING, 0, "\"\"", NULL,
     "the AI provider instance the chat uses (TASKORA_AI_PROVIDER)", NULL, TK_CFG_NO_RANGE},
    {"ai_fallback", TK_CFG_STRING_LIST, 0, "[]", NULL,
     "provider instances tried in order while the first one's circuit is open", NULL,
     TK_CFG_NO_RANGE},
    {"chat_history", TK_CFG_INT, 0, "20", NULL, "messages of context sent with a chat message",
     NULL, TK_CFG_RANGE(1, 200)},
    {"chat_max_rounds", TK_CFG_INT, 0, "5", NULL, "model <-> tool rounds per chat message", NULL,
     TK_CFG_RANGE(1, 20)},
    {"chat_system_prompt", TK_CFG_STRING, 0,
     "\"You are Taskora's assistant. You manage the user's tasks with the tools you have: add, "
     "list, complete, delete and update tasks. Use a tool whenever the user asks for a change or "
     "about their tasks; never claim a change you did not make with a tool. Dates are ISO 8601 "
     "in UTC. Answer briefly.\"",
     NULL, "the assistant's instructions", NULL, TK_CFG_NO_RANGE},
    {"browser_home", TK_CFG_STRING, 0, "\"\"", NULL,
     "a path on this server (e.g. /app/, the web app) where GET / sends a browser; API clients "
     "keep the JSON greeting. Empty: nobody is redirected",
     NULL, TK_CFG_NO_RANGE},
    API_LIMITS_CONFIG_FIELD,
    {0},
};

/*
 * jwt_secret (required) and jwt_secret_previous (optional, a rotation: see deploy/README.md),
 * held to the same rules: not empty, and a warning under 32 bytes; the previous one must differ
 * from the current one. Registers the counter of tokens the previous one verifies. TK_OK, or
 * TK_EINVAL / TK_ERR logged.
 */
static int read_secrets(api *a)
{
    const tk_host *host = a->host;
    tk_instance *inst = a->inst;
    a->jwt_secret = host->config_string(inst, "jwt_secret");
    a->jwt_secret_len = a->jwt_secret ? strlen(a->jwt_secret) : 0;
    a->jwt_secret_previous = host->config_string(inst, "jwt_secret_previous");
    a->jwt_secret_previous_len = a->jwt_secret_previous ? strlen(a->jwt_secret_previous) : 0;
    if (a->jwt_secret_len == 0) {
        host->log(inst, TK_LOG_ERROR,
                  "config.jwt_secret is empty: set BETTER_AUTH_SECRET (the key that signs access "
                  "tokens); the API does not start without it");
        return TK_EINVAL;
    }
    if (a->jwt_secret_len < 32)
        host->log(inst, TK_LOG_WARN,
                  "config.jwt_secret is shorter than 32 bytes; use a long random secret");
    if (a->jwt_secret_previous_len > 0) {
        if (a->jwt_secret_previous_len == a->jwt_secret_len &&
            memcmp(a->jwt_secret_previous, a->jwt_secret, a->jwt_secret_len) == 0) {
            host->log(inst, TK_LOG_ERROR,
                      "config.jwt_secret_previous (BETTER_AUTH_SECRET_PREVIOUS) equals "
                      "config.jwt_secret: set it to the secret being replaced, or leave it empty");
            return TK_EINVAL;
        }
        if (a->jwt_secret_previous_len < 32)
            host->log(inst, TK_LOG_WARN,
                      "config.jwt_secret_previous is shorter than 32 bytes; remove it once the "
                      "tokens it signed have expired");
        host->log(inst, TK_LOG_INFO,
                  "config.jwt_secret_previous is set: tokens signed with it are accepted until "
                  "it is removed");
    }
    a->m_previous_secret =
        host->metric_counter(inst, "taskora_auth_tokens_previous_secret_total",
                             "requests whose token was verified by jwt_secret_previous", NULL);
    if (!a->m_previous_secret)
        return TK_ERR;
    host->metric_add(a->m_previous_secret, NULL, 0); /* exported from the start, at 0 */
    return TK_OK;
}

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    api *a = calloc(1, sizeof(*a));
    if (!a)
        return TK_ENOMEM;
    a->host = host;
    a->inst = inst;
    a->token_ttl_s = host->config_int(inst, "token_ttl_s");
    a->bcrypt_cost = (int)host->config_int(inst, "bcrypt_cost");
    a->task_topic = host->config_string(inst, "task_topic");
    a->user_topic = host->config_string(inst, "user_topic");
    a->chat_topic = host->config_string(inst, "chat_topic");
    a->ai_provider = host->config_string(inst, "ai_provider");
    a->chat_system_prompt = host->config_string(inst, "chat_system_prompt");
    a->chat_history = (int)host->config_int(inst, "chat_history");
    a->chat_max_rounds = (int)host->config_int(inst, "chat_max_rounds");
    a->max_description = (size_t)host->config_int(inst, "max_description");
    int rc = read_secrets(a);
    if (rc < 0)
        goto fail;
    rc = TK_EINVAL;
    a->browser_home = host->config_string(inst, "browser_home");
    if (!a->browser_home)
        a->browser_home = "";
    /* a path of this server only: "//host" or "https://..." would make / an open redirect */
    if (a->browser_home[0] && (a->browser_home[0] != '/' || a->browser_home[1] == '/' ||
                               strpbrk(a->browser_home, "\\\r\n"))) {
        host->log(inst, TK_LOG_ERROR,
                  "config.browser_home \"%s\": must be a path on this server starting with one /",
                  a->browser_home);
        goto fail;
    }
    if ((rc = api_limits_init(a)) < 0)
        goto fail;
    rc = TK_ENOMEM;
    /* at the cost of the existing service's hashes (and the default), so an unknown email
     * takes as long as a stored user even where bcrypt_cost is set lower */
    if (!(a->dummy_hash =
              api_password_hash(a->bcrypt_cost > 12 ? a->bcrypt_cost : 12, "taskora-unknown-user")))
        goto fail;
    rc = host->http_set_authenticator2(inst, authenticate, a);
    if (rc < 0 && rc != TK_EUNAVAILABLE) /* (no HTTP server in this process: nothing to do) */
        goto fail;
    if ((rc = host->http_route(inst, "GET", "/", route_root, a)) < 0 ||
        (rc = api_auth_routes(a)) < 0 || (rc = api_tag_routes(a)) < 0 ||
        (rc = api_task_routes(a)) < 0 || (rc = api_conversation_routes(a)) < 0 ||
        (rc = api_chat_routes(a)) < 0)
        goto fail;
    if ((rc = host->http_openapi(inst, (const char *)api_openapi_json)) < 0) {
        host->log(inst, TK_LOG_ERROR, "the host refused the description of the routes (%s)",
                  tk_strerror(rc));
        goto fail;
    }
    *state = a;
    return TK_OK;
fail:
    api_limits_destroy(a);
    free(a->dummy_hash);
    free(a);
    return rc;
}

static void destroy(void *state)
{
    api *a = state;
    if (a) {
        api_limits_destroy(a);
        free(a->dummy_hash);
    }
    free(a);
}

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "http_api",
    .version = "0.2.0",
    .description =
        "Taskora's REST API (auth, tags, tasks, reminders, conversations) and its tables",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .migrations = http_api_migrations,
    .init = init,
    .destroy = destroy,
    .consume = api_reminders_consume, /* with a consume section: reminder_sent */
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }
