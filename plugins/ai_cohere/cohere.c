/*
 * ai_cohere: an AI provider for Cohere's Chat API v2 (POST /v2/chat).
 * Translates the normalised chat of plugin.h to Cohere's wire format and
 * back; see docs/AI_PROVIDERS.md. Tool calls carry no provider_data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <taskora/plugin.h>

#include "../ai_common/aihttp.h"

#define WHO "ai_cohere"
#define PROVIDER "cohere"

/* The settings every provider has (aihttp.h); nothing of its own. */
typedef aihttp_provider cohere;

/* --- request ------------------------------------------------------------------ */

static json_t *message(const char *role, json_t *content)
{
    json_t *m = json_object();
    json_object_set_new(m, "role", json_string(role));
    if (content)
        json_object_set_new(m, "content", content);
    return m;
}

/*
 * An assistant turn. With tool calls its text goes into tool_plan (Cohere's
 * "what I am about to do"), and the arguments travel as a JSON string.
 * NULL when there is nothing to send (no text, no calls); *why on bad input.
 */
static json_t *assistant(json_t *msg, const char **why)
{
    json_t *text = aihttp_content_text(json_object_get(msg, "content"));
    json_t *calls = json_object_get(msg, "tool_calls");
    if (json_array_size(calls) == 0) {
        if (json_string_length(text) == 0) { /* Cohere refuses an empty content */
            json_decref(text);
            return NULL;
        }
        return message("assistant", text);
    }
    json_t *wire = aihttp_function_calls(calls, why);
    if (!wire) {
        json_decref(text);
        return NULL;
    }
    json_t *m = message("assistant", NULL);
    json_object_set_new(m, "tool_calls", wire);
    if (json_string_length(text) > 0)
        json_object_set_new(m, "tool_plan", text);
    else
        json_decref(text);
    return m;
}

/* The /v2/chat body of a checked normalised request, or NULL with *why set. */
static json_t *request_wire(const cohere *c, json_t *req, double temperature, int64_t max_tokens,
                            const char **why)
{
    json_t *messages = json_array();
    json_t *system = json_object_get(req, "system");
    if (json_is_string(system) && json_string_length(system) > 0)
        json_array_append_new(messages, message("system", json_incref(system)));
    size_t i;
    json_t *msg;
    json_array_foreach(json_object_get(req, "messages"), i, msg)
    {
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *content = json_object_get(msg, "content");
        if (strcmp(role, "system") == 0 || strcmp(role, "user") == 0) {
            json_array_append_new(messages, message(role, aihttp_content_text(content)));
        } else if (strcmp(role, "assistant") == 0) {
            json_t *m = assistant(msg, why);
            if (!m && *why)
                goto fail;
            if (m)
                json_array_append_new(messages, m);
        } else if (strcmp(role, "tool") == 0) {
            json_t *id = json_object_get(msg, "tool_call_id");
            if (!json_is_string(id)) {
                *why = "a tool message has no string \"tool_call_id\"";
                goto fail;
            }
            /* the result object as a JSON string (Cohere also takes a list of documents) */
            json_t *m = message("tool", aihttp_json_text(content));
            json_object_set(m, "tool_call_id", id);
            json_array_append_new(messages, m);
        } else {
            *why = "a message has an unknown role (system, user, assistant or tool)";
            goto fail;
        }
    }
    json_t *body = json_object();
    json_object_set_new(body, "model", json_string(c->model));
    json_object_set_new(body, "messages", messages);
    json_t *tools = json_object_get(req, "tools");
    if (json_array_size(tools) > 0)
        json_object_set_new(body, "tools", aihttp_function_tools(tools));
    json_object_set_new(body, "temperature", json_real(temperature));
    json_object_set_new(body, "max_tokens", json_integer(max_tokens));
    return body;
fail:
    json_decref(messages);
    return NULL;
}

/* --- response ------------------------------------------------------------------- */

/*
 * HTTP errors, body {"id", "message"}. Cohere's own statuses: 402 (payment
 * required) and 498 (invalid token) are auth failures, 499 (request
 * cancelled) is unavailable. A 429 about a monthly trial limit fails fast.
 */
static int fail_http(const cohere *c, const aihttp_response *r, tk_failure *f)
{
    tk_failure_kind kind = aihttp_status_kind(r->status);
    if (r->status == 402 || r->status == 498)
        kind = TK_FAIL_AUTH;
    else if (r->status == 499)
        kind = TK_FAIL_UNAVAILABLE;
    json_t *root = json_loads(r->body, 0, NULL);
    const char *message = json_string_value(json_object_get(root, "message"));
    char snippet[256];
    if (!message)
        aihttp_snippet(r->body, snippet, sizeof(snippet));
    f->retry_after_ms = r->retry_after_ms;
    if (kind == TK_FAIL_RATE_LIMITED && message && strstr(message, "month"))
        f->fail_fast = 1;
    int rc = aihttp_fail(f, kind, r->status, c->api_key, WHO ": HTTP %ld: %s", r->status,
                         message ? message : snippet);
    json_decref(root);
    return rc;
}

/* Translates a 2xx /v2/chat answer into the normalised response. */
static int parse_answer(const cohere *c, const aihttp_response *r, char **out, tk_failure *f)
{
    json_error_t jerr;
    json_t *root = json_loads(r->body, 0, &jerr);
    json_t *msg = json_object_get(root, "message");
    if (!json_is_object(root) || !json_is_object(msg)) {
        char snippet[256];
        aihttp_snippet(r->body, snippet, sizeof(snippet));
        json_decref(root);
        return aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, c->api_key,
                           WHO ": answer is not a chat response (%s): %s",
                           root ? "no \"message\" object" : jerr.text, snippet);
    }

    /* text: the "text" items of message.content (tool_plan is not the answer) */
    size_t textlen = 0, i;
    json_t *item;
    json_t *content = json_object_get(msg, "content");
    json_array_foreach(content, i, item)
    {
        const char *type = json_string_value(json_object_get(item, "type"));
        if (type && strcmp(type, "text") == 0)
            textlen += json_string_length(json_object_get(item, "text"));
    }
    char *text = malloc(textlen + 1);
    if (!text) {
        json_decref(root);
        aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, NULL, WHO ": out of memory");
        return TK_ENOMEM;
    }
    size_t n = 0;
    json_array_foreach(content, i, item)
    {
        const char *type = json_string_value(json_object_get(item, "type"));
        json_t *t = json_object_get(item, "text");
        if (type && strcmp(type, "text") == 0 && json_is_string(t)) {
            memcpy(text + n, json_string_value(t), json_string_length(t));
            n += json_string_length(t);
        }
    }
    if (json_is_string(content)) { /* tolerated: content as a plain string */
        free(text);
        text = strdup(json_string_value(content));
        if (!text) {
            json_decref(root);
            aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, NULL, WHO ": out of memory");
            return TK_ENOMEM;
        }
        n = strlen(text);
    }

    /* ERROR and TIMEOUT come with HTTP 200 but are failures */
    const char *reason = json_string_value(json_object_get(root, "finish_reason"));
    if (reason && (strcmp(reason, "ERROR") == 0 || strcmp(reason, "TIMEOUT") == 0)) {
        int timeout = strcmp(reason, "TIMEOUT") == 0;
        int rc = aihttp_fail(f, timeout ? TK_FAIL_TIMEOUT : TK_FAIL_UNAVAILABLE, r->status,
                             c->api_key, WHO ": generation ended with finish_reason %s%s%.*s",
                             reason, n ? ": " : "", (int)(n < 300 ? n : 300), text ? text : "");
        free(text);
        json_decref(root);
        return rc;
    }

    json_t *resp = aihttp_response_new(PROVIDER, c->model);
    json_object_set_new(resp, "text", json_stringn(text ? text : "", text ? n : 0));
    free(text);
    json_t *calls = json_object_get(resp, "tool_calls");
    json_t *taken = json_object();
    json_t *wire;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, wire)
        json_array_append_new(calls, aihttp_function_call_parse(wire, taken));
    json_decref(taken);

    const char *finish;
    if (!reason || strcmp(reason, "COMPLETE") == 0 || strcmp(reason, "STOP_SEQUENCE") == 0)
        finish = json_array_size(calls) > 0 ? "tool_calls" : "stop";
    else if (strcmp(reason, "MAX_TOKENS") == 0)
        finish = "max_tokens";
    else if (strcmp(reason, "TOOL_CALL") == 0)
        finish = "tool_calls";
    else
        finish = reason; /* Cohere's own */
    json_object_set_new(resp, "finish_reason", json_string(finish));

    /* billed_units is what is paid for; tokens (all tokens) when it is absent */
    json_t *usage = json_object_get(root, "usage");
    json_t *units = json_object_get(usage, "billed_units");
    if (!json_is_object(units))
        units = json_object_get(usage, "tokens");
    aihttp_response_usage(resp, aihttp_token_count(json_object_get(units, "input_tokens")),
                          aihttp_token_count(json_object_get(units, "output_tokens")));
    json_decref(root);
    return aihttp_response_dump(resp, out, WHO, f);
}

/* --- chat ------------------------------------------------------------------------ */

static const aihttp_wire wire = {.who = WHO,
                                 .provider = PROVIDER,
                                 .key_header = "Authorization: Bearer ",
                                 .key_env = "COHERE_API_KEY",
                                 .request = request_wire,
                                 .fail_http = fail_http,
                                 .parse_answer = parse_answer};

static int chat(void *state, const char *request_json, char **response_json, tk_failure *f)
{
    return aihttp_chat(state, &wire, request_json, response_json, f);
}

/* --- the plugin -------------------------------------------------------------------- */

static void destroy(void *state) { aihttp_provider_free(state); }

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    aihttp_provider *p;
    char *base;
    int rc = aihttp_provider_new(host, inst, NULL, "/v2/chat", &p, &base);
    if (rc < 0)
        return rc;
    if (!p->api_key[0])
        host->log(inst, TK_LOG_WARN,
                  "config.api_key is empty (set COHERE_API_KEY): every chat will fail");
    host->log(inst, TK_LOG_INFO, "Cohere model %s at %s", p->model, base);
    free(base);
    *state = p;
    return TK_OK;
}

static const tk_config_field config[] = {
    {"api_key", TK_CFG_STRING, 0, "\"\"", NULL,
     "Cohere API key (COHERE_API_KEY); empty: every chat fails with auth", NULL, TK_CFG_NO_RANGE},
    {"model", TK_CFG_STRING, 0, "\"command-r-plus-08-2024\"", NULL, "model name", NULL,
     TK_CFG_NO_RANGE},
    {"base_url", TK_CFG_STRING, 0, "\"https://api.cohere.com\"", NULL, "API root, without /v2",
     NULL, TK_CFG_NO_RANGE},
    AIHTTP_CONFIG_TUNING("when the request sets none"),
    {0},
};

static const tk_ai_provider vtable = {.struct_size = sizeof(tk_ai_provider), .chat = chat};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "ai_cohere",
    .version = "0.1.0",
    .description = "AI provider: Cohere (Chat API v2)",
    .capabilities = TK_PLUGIN_CAP_AI,
    .config = config,
    .init = init,
    .destroy = destroy,
    .ai = &vtable,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }
