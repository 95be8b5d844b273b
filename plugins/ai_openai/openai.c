/*
 * ai_openai: an AI provider for OpenAI-compatible chat servers
 * (POST {base_url}/v1/chat/completions), meant for local servers: llama.cpp's
 * llama-server (default http://127.0.0.1:8080), Ollama (http://127.0.0.1:11434),
 * vLLM (http://127.0.0.1:8000). Translates the normalised chat of plugin.h to
 * the Chat Completions wire format and back; see docs/AI_PROVIDERS.md.
 *
 * The key is optional: with an empty api_key no Authorization header is sent
 * (local servers need none); a server that wants one answers 401, an auth
 * failure. Tool calls carry no provider_data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <taskora/plugin.h>

#include "../ai_common/aihttp.h"

#define WHO "ai_openai"
#define PROVIDER "openai"

/* The settings every provider has (aihttp.h); nothing of its own. */
typedef aihttp_provider openai;

/* --- request ------------------------------------------------------------------ */

static json_t *message(const char *role, json_t *content)
{
    json_t *m = json_object();
    json_object_set_new(m, "role", json_string(role));
    json_object_set_new(m, "content", content ? content : json_null());
    return m;
}

/*
 * An assistant turn: its text as content (null when there is none beside tool
 * calls) and the calls with their arguments as a JSON string. NULL with *why
 * set on bad input.
 */
static json_t *assistant(json_t *msg, const char **why)
{
    json_t *text = aihttp_content_text(json_object_get(msg, "content"));
    json_t *calls = json_object_get(msg, "tool_calls");
    if (json_array_size(calls) == 0)
        return message("assistant", text);
    json_t *wire = aihttp_function_calls(calls, why);
    if (!wire) {
        json_decref(text);
        return NULL;
    }
    json_t *m = message("assistant", NULL);
    if (json_string_length(text) > 0)
        json_object_set_new(m, "content", text);
    else
        json_decref(text);
    json_object_set_new(m, "tool_calls", wire);
    return m;
}

/* The /v1/chat/completions body of a checked normalised request, or NULL with *why set. */
static json_t *request_wire(const openai *o, json_t *req, double temperature, int64_t max_tokens,
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
            if (!m)
                goto fail;
            json_array_append_new(messages, m);
        } else if (strcmp(role, "tool") == 0) {
            json_t *id = json_object_get(msg, "tool_call_id");
            if (!json_is_string(id)) {
                *why = "a tool message has no string \"tool_call_id\"";
                goto fail;
            }
            /* the result object as a JSON string */
            json_t *m = message("tool", aihttp_json_text(content));
            json_object_set(m, "tool_call_id", id);
            json_array_append_new(messages, m);
        } else {
            *why = "a message has an unknown role (system, user, assistant or tool)";
            goto fail;
        }
    }
    json_t *body = json_object();
    json_object_set_new(body, "model", json_string(o->model));
    json_object_set_new(body, "messages", messages);
    json_t *tools = json_object_get(req, "tools");
    if (json_array_size(tools) > 0) {
        json_object_set_new(body, "tools", aihttp_function_tools(tools));
        json_object_set_new(body, "tool_choice", json_string("auto"));
    }
    json_object_set_new(body, "temperature", json_real(temperature));
    json_object_set_new(body, "max_tokens", json_integer(max_tokens));
    json_object_set_new(body, "stream", json_false());
    return body;
fail:
    json_decref(messages);
    return NULL;
}

/* --- response ------------------------------------------------------------------- */

/*
 * The error of a body, in the shapes servers use: OpenAI and llama.cpp
 * {"error":{"message","type","code"}} (code a string or a number), Ollama
 * {"error":"text"}, vLLM {"object":"error","message","type","code"}, a proxy's
 * {"detail":"text"}. Borrowed from root; NULLs when absent.
 */
static void error_of(json_t *root, const char **message, const char **type, const char **code)
{
    *message = *type = *code = NULL;
    json_t *err = json_object_get(root, "error");
    if (json_is_string(err)) {
        *message = json_string_value(err);
        return;
    }
    json_t *o = json_is_object(err) ? err : root;
    *message = json_string_value(json_object_get(o, "message"));
    *type = json_string_value(json_object_get(o, "type"));
    *code = json_string_value(json_object_get(o, "code"));
    if (!*message && !json_is_object(err))
        *message = json_string_value(json_object_get(root, "detail"));
}

/*
 * HTTP errors. aihttp_status_kind's mapping (401/403 auth, 408 and 5xx
 * unavailable, 429 rate limited, other 4xx bad request); a 429 for an
 * exhausted quota (code insufficient_quota: billing, not speed) fails fast.
 * OpenAI quotes a masked key back on invalid_api_key: that message is not kept.
 */
static int fail_http(const openai *o, const aihttp_response *r, tk_failure *f)
{
    tk_failure_kind kind = aihttp_status_kind(r->status);
    json_t *root = json_loads(r->body, 0, NULL);
    const char *message, *type, *code;
    error_of(root, &message, &type, &code);
    char snippet[256];
    if (!message)
        aihttp_snippet(r->body, snippet, sizeof(snippet));
    if (code && strcmp(code, "invalid_api_key") == 0)
        message = "incorrect API key provided";
    f->retry_after_ms = r->retry_after_ms;
    if (kind == TK_FAIL_RATE_LIMITED && ((code && strcmp(code, "insufficient_quota") == 0) ||
                                         (type && strcmp(type, "insufficient_quota") == 0)))
        f->fail_fast = 1;
    const char *hint = kind == TK_FAIL_AUTH && !o->api_key[0]
                           ? " (config.api_key is empty: this server wants one)"
                           : "";
    int rc = aihttp_fail(f, kind, r->status, o->api_key, WHO ": HTTP %ld: %s%s%s%s", r->status,
                         message ? message : snippet, code || type ? " [" : "",
                         code   ? code
                         : type ? type
                                : "",
                         code || type ? "]" : "");
    if (hint[0]) { /* appended after the message so it is not cut first */
        size_t n = strlen(f->message);
        snprintf(f->message + n, sizeof(f->message) - n, "%s", hint);
    }
    json_decref(root);
    return rc;
}

/* message.content as text: a string, null, or (some servers) [{type:"text",text}]. New ref. */
static json_t *answer_text(json_t *content)
{
    if (json_is_string(content))
        return json_incref(content);
    size_t len = 0, i;
    json_t *item;
    json_array_foreach(content, i, item)
    {
        const char *type = json_string_value(json_object_get(item, "type"));
        if (!type || strcmp(type, "text") == 0)
            len += json_string_length(json_object_get(item, "text"));
    }
    char *buf = malloc(len + 1);
    if (!buf)
        return NULL;
    size_t n = 0;
    json_array_foreach(content, i, item)
    {
        const char *type = json_string_value(json_object_get(item, "type"));
        json_t *t = json_object_get(item, "text");
        if ((!type || strcmp(type, "text") == 0) && json_is_string(t)) {
            memcpy(buf + n, json_string_value(t), json_string_length(t));
            n += json_string_length(t);
        }
    }
    json_t *out = json_stringn(buf, n);
    free(buf);
    return out;
}

/* Translates a 2xx /v1/chat/completions answer into the normalised response. */
static int parse_answer(const openai *o, const aihttp_response *r, char **out, tk_failure *f)
{
    json_error_t jerr;
    json_t *root = json_loads(r->body, 0, &jerr);
    json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    int rc;
    if (!json_is_object(root) || !json_is_object(msg)) {
        const char *message, *type, *code;
        error_of(root, &message, &type, &code);
        if (json_is_object(root) && message && json_object_get(root, "error")) {
            /* an error with HTTP 200 (a proxy, a server failing mid-answer) */
            rc = aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, o->api_key,
                             WHO ": error with HTTP %ld: %s", r->status, message);
        } else {
            char snippet[256];
            aihttp_snippet(r->body, snippet, sizeof(snippet));
            rc = aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, o->api_key,
                             WHO ": answer is not a chat completion (%s): %s",
                             root ? "no choices[0].message object" : jerr.text, snippet);
        }
        json_decref(root);
        return rc;
    }

    /* the answer's text; reasoning_content (thinking models) is not the answer */
    json_t *text = answer_text(json_object_get(msg, "content"));
    if (!text) {
        json_decref(root);
        aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, NULL, WHO ": out of memory");
        return TK_ENOMEM;
    }
    json_t *resp = aihttp_response_new(PROVIDER, o->model);
    json_object_set_new(resp, "text", text);
    json_t *calls = json_object_get(resp, "tool_calls");
    json_t *taken = json_object();
    size_t i;
    json_t *wire;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, wire)
        json_array_append_new(calls, aihttp_function_call_parse(wire, taken));
    json_t *legacy = json_object_get(msg, "function_call"); /* the pre-tools form */
    if (json_array_size(calls) == 0 && json_is_object(legacy)) {
        json_t *w = json_pack("{s:O}", "function", legacy);
        json_array_append_new(calls, aihttp_function_call_parse(w, taken));
        json_decref(w);
    }
    json_decref(taken);

    /* calls are detected by tool_calls: some servers say "stop" beside them */
    const char *reason = json_string_value(json_object_get(choice, "finish_reason"));
    size_t ncalls = json_array_size(calls);
    if (reason && strcmp(reason, "content_filter") == 0 && ncalls == 0 &&
        json_string_length(text) == 0) {
        json_decref(resp);
        json_decref(root);
        return aihttp_fail(f, TK_FAIL_BLOCKED, r->status, o->api_key,
                           WHO ": answer blocked (finish_reason content_filter)");
    }
    const char *finish;
    if (!reason || strcmp(reason, "stop") == 0 || strcmp(reason, "eos") == 0)
        finish = ncalls > 0 ? "tool_calls" : "stop";
    else if (strcmp(reason, "length") == 0)
        finish = "max_tokens";
    else if (strcmp(reason, "tool_calls") == 0 || strcmp(reason, "function_call") == 0)
        finish = ncalls > 0 ? "tool_calls" : "stop";
    else
        finish = reason; /* the server's own (content_filter, ...) */
    json_object_set_new(resp, "finish_reason", json_string(finish));

    json_t *usage = json_object_get(root, "usage");
    aihttp_response_usage(resp, aihttp_token_count(json_object_get(usage, "prompt_tokens")),
                          aihttp_token_count(json_object_get(usage, "completion_tokens")));
    json_decref(root);
    return aihttp_response_dump(resp, out, WHO, f);
}

/* --- chat ------------------------------------------------------------------------ */

static const aihttp_wire wire = {.who = WHO,
                                 .provider = PROVIDER,
                                 .key_header = "Authorization: Bearer ",
                                 .key_env = NULL,
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
    int rc = aihttp_provider_new(host, inst, NULL, "/v1/chat/completions", &p, &base);
    if (rc < 0)
        return rc;
    host->log(inst, TK_LOG_INFO, "OpenAI-compatible model %s at %s (%s)", p->model, base,
              p->api_key[0] ? "with an API key" : "no API key");
    free(base);
    *state = p;
    return TK_OK;
}

static const tk_config_field config[] = {
    {"api_key", TK_CFG_STRING, 0, "\"\"", NULL,
     "Bearer key (OPENAI_API_KEY); empty: no Authorization header (local servers need none)", NULL,
     TK_CFG_NO_RANGE},
    {"model", TK_CFG_STRING, 0, "\"llama3.1\"", NULL,
     "model name as the server knows it (llama.cpp serves its one model whatever the name)", NULL,
     TK_CFG_NO_RANGE},
    {"base_url", TK_CFG_STRING, 0, "\"http://127.0.0.1:8080\"", NULL,
     "server root, without /v1: llama.cpp http://127.0.0.1:8080, Ollama "
     "http://127.0.0.1:11434, vLLM http://127.0.0.1:8000",
     NULL, TK_CFG_NO_RANGE},
    AIHTTP_CONFIG_TUNING("when the request sets none"),
    {0},
};

static const tk_ai_provider vtable = {.struct_size = sizeof(tk_ai_provider), .chat = chat};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "ai_openai",
    .version = "0.1.0",
    .description = "AI provider: OpenAI-compatible chat completions (llama.cpp, Ollama, vLLM)",
    .capabilities = TK_PLUGIN_CAP_AI,
    .config = config,
    .init = init,
    .destroy = destroy,
    .ai = &vtable,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }
