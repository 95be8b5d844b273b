/*
 * ai_gemini: an AI provider for Google's Gemini API (Generative Language
 * API v1beta, generateContent). Translates the normalised chat of plugin.h
 * to Gemini's wire format and back; see docs/AI_PROVIDERS.md.
 *
 * provider_data of a tool call (opaque to the host, echoed back by it):
 *   {"thoughtSignature": "<as Gemini sent it>", "id": "<functionCall.id>"}
 * each key only when Gemini sent it; no provider_data when neither was sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <taskora/plugin.h>

#include "../ai_common/aihttp.h"
#include "gemini.h"

#define WHO "ai_gemini"
#define PROVIDER "gemini"

/* The settings every provider has (aihttp.h); nothing of its own. */
typedef aihttp_provider gemini;

/* --- request ------------------------------------------------------------------ */

/* {"text": content} */
static json_t *text_part(json_t *content)
{
    json_t *p = json_object();
    json_object_set_new(p, "text", aihttp_content_text(content));
    return p;
}

/* The model turn of an assistant message: its text, then one functionCall part per call. */
static json_t *model_parts(json_t *msg, const char **why)
{
    json_t *parts = json_array();
    json_t *content = json_object_get(msg, "content");
    json_t *text = aihttp_content_text(content);
    if (json_string_length(text) > 0) {
        json_t *p = json_object();
        json_object_set_new(p, "text", text);
        json_array_append_new(parts, p);
    } else {
        json_decref(text);
    }
    size_t i;
    json_t *call;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, call)
    {
        json_t *name = json_object_get(call, "name");
        if (!json_is_string(name)) {
            *why = "a tool call has no string \"name\"";
            json_decref(parts);
            return NULL;
        }
        json_t *fc = json_object();
        json_t *pd = json_object_get(call, "provider_data");
        json_t *gid = json_object_get(pd, "id");
        if (json_is_string(gid)) /* only ids Gemini gave are sent back */
            json_object_set(fc, "id", gid);
        json_object_set(fc, "name", name);
        json_object_set_new(fc, "args",
                            aihttp_arguments_object(json_object_get(call, "arguments")));
        json_t *p = json_object();
        json_object_set_new(p, "functionCall", fc);
        /* must come back unchanged, in the same part as its call */
        json_t *sig = json_object_get(pd, "thoughtSignature");
        if (json_is_string(sig))
            json_object_set(p, "thoughtSignature", sig);
        json_array_append_new(parts, p);
    }
    return parts;
}

/* {"functionResponse": {id?, name, response{}}} for the tool message messages[i]. */
static json_t *function_response(json_t *messages, size_t i, const char **why)
{
    json_t *msg = json_array_get(messages, i);
    const char *id = json_string_value(json_object_get(msg, "tool_call_id"));
    json_t *call = aihttp_find_call(messages, i, id);
    json_t *name = json_object_get(msg, "name");
    if (!json_is_string(name))
        name = json_object_get(call, "name");
    if (!json_is_string(name)) {
        *why = "a tool message has no \"name\" and no matching tool call";
        return NULL;
    }
    json_t *fr = json_object();
    json_t *gid = json_object_get(json_object_get(call, "provider_data"), "id");
    if (json_is_string(gid))
        json_object_set(fr, "id", gid);
    json_object_set(fr, "name", name);
    json_t *content = json_object_get(msg, "content");
    if (json_is_object(content)) {
        json_object_set(fr, "response", content);
    } else { /* Gemini wants an object */
        json_t *wrap = json_object();
        json_object_set_new(wrap, "result", content ? json_incref(content) : json_null());
        json_object_set_new(fr, "response", wrap);
    }
    json_t *p = json_object();
    json_object_set_new(p, "functionResponse", fr);
    return p;
}

/* A {"role", "parts"} turn. Steals parts. */
static json_t *turn(const char *role, json_t *parts)
{
    json_t *t = json_object();
    json_object_set_new(t, "role", json_string(role));
    json_object_set_new(t, "parts", parts);
    return t;
}

/* The generateContent body of a checked normalised request, or NULL with *why set. */
static json_t *request_wire(const gemini *g, json_t *req, double temperature, int64_t max_tokens,
                            const char **why)
{
    json_t *body = json_object();
    json_t *contents = json_array();
    json_t *sys_parts = json_array();
    json_t *tool_turn = NULL; /* the open "user" turn of consecutive tool results */
    json_t *system = json_object_get(req, "system");
    if (json_is_string(system) && json_string_length(system) > 0)
        json_array_append_new(sys_parts, text_part(system));

    json_t *messages = json_object_get(req, "messages");
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        const char *role = json_string_value(json_object_get(msg, "role"));
        json_t *content = json_object_get(msg, "content");
        if (strcmp(role, "tool") != 0)
            tool_turn = NULL;
        if (strcmp(role, "system") == 0) {
            json_array_append_new(sys_parts, text_part(content));
        } else if (strcmp(role, "user") == 0) {
            json_t *parts = json_array();
            json_array_append_new(parts, text_part(content));
            json_array_append_new(contents, turn("user", parts));
        } else if (strcmp(role, "assistant") == 0) {
            json_t *parts = model_parts(msg, why);
            if (!parts)
                goto fail;
            if (json_array_size(parts) == 0) /* Gemini refuses a turn without parts */
                json_decref(parts);
            else
                json_array_append_new(contents, turn("model", parts));
        } else if (strcmp(role, "tool") == 0) {
            /* all results of one round go in ONE user turn, a part each */
            json_t *p = function_response(messages, i, why);
            if (!p)
                goto fail;
            if (!tool_turn) {
                tool_turn = turn("user", json_array());
                json_array_append_new(contents, tool_turn);
            }
            json_array_append_new(json_object_get(tool_turn, "parts"), p);
        } else {
            *why = "a message has an unknown role (system, user, assistant or tool)";
            goto fail;
        }
    }
    if (json_array_size(contents) == 0) {
        *why = "no user, assistant or tool message";
        goto fail;
    }
    json_object_set_new(body, "contents", contents);
    if (json_array_size(sys_parts) > 0) {
        json_t *si = json_object();
        json_object_set_new(si, "parts", sys_parts);
        json_object_set_new(body, "systemInstruction", si);
    } else {
        json_decref(sys_parts);
    }
    json_t *tools = json_object_get(req, "tools");
    if (json_array_size(tools) > 0) {
        json_object_set_new(body, "tools", gemini_tools_wire(tools));
        json_t *fcc = json_object();
        json_object_set_new(fcc, "mode", json_string("AUTO"));
        json_t *tc = json_object();
        json_object_set_new(tc, "functionCallingConfig", fcc);
        json_object_set_new(body, "toolConfig", tc);
    }
    json_t *gen = json_object();
    json_object_set_new(gen, "temperature", json_real(temperature));
    json_object_set_new(gen, "maxOutputTokens", json_integer(max_tokens));
    json_object_set_new(body, "generationConfig", gen);
    return body;
fail:
    json_decref(contents);
    json_decref(sys_parts);
    json_decref(body);
    return NULL;
}

/* --- response ------------------------------------------------------------------- */

/* A duration as protobuf's JSON writes it ("19s", "3.7s") in ms, or -1 (also for one past
 * 10^9 s, "infs" or "nans", which no int64_t holds). */
static int64_t parse_duration(const char *s)
{
    if (!s)
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || strcmp(end, "s") != 0 || !(v >= 0 && v <= 1e9))
        return -1;
    return (int64_t)(v * 1000.0 + 0.5);
}

/* Fills *f from an HTTP error answer: {"error": {code, message, status, details}}, maybe in [ ]. */
static int fail_http(const gemini *g, const aihttp_response *r, tk_failure *f)
{
    tk_failure_kind kind = aihttp_status_kind(r->status);
    json_t *root = json_loads(r->body, 0, NULL);
    json_t *err = json_object_get(json_is_array(root) ? json_array_get(root, 0) : root, "error");
    const char *message = json_string_value(json_object_get(err, "message"));
    const char *status = json_string_value(json_object_get(err, "status"));
    f->retry_after_ms = r->retry_after_ms;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(err, "details"), i, d)
    {
        /* ErrorInfo: a bad key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID */
        const char *reason = json_string_value(json_object_get(d, "reason"));
        if (reason && strncmp(reason, "API_KEY_", 8) == 0)
            kind = TK_FAIL_AUTH;
        /* RetryInfo: how long the quota needs */
        int64_t delay = parse_duration(json_string_value(json_object_get(d, "retryDelay")));
        if (delay >= 0)
            f->retry_after_ms = delay;
        /* QuotaFailure: a per-day quota will not come back by retrying */
        size_t j;
        json_t *v;
        json_array_foreach(json_object_get(d, "violations"), j, v)
        {
            const char *quota = json_string_value(json_object_get(v, "quotaId"));
            if (quota && strstr(quota, "PerDay"))
                f->fail_fast = 1;
        }
    }
    char snippet[256];
    if (!message)
        aihttp_snippet(r->body, snippet, sizeof(snippet));
    int rc = aihttp_fail(f, kind, r->status, g->api_key, WHO ": HTTP %ld%s%s: %s", r->status,
                         status ? " " : "", status ? status : "", message ? message : snippet);
    json_decref(root);
    return rc;
}

/* finishReasons meaning the provider refused the content. */
static int blocked_reason(const char *r)
{
    static const char *const blocked[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", NULL};
    for (size_t i = 0; blocked[i]; i++)
        if (strcmp(r, blocked[i]) == 0)
            return 1;
    return 0;
}

/* One tool call of the response from a functionCall part. */
static json_t *tool_call(json_t *part)
{
    json_t *fc = json_object_get(part, "functionCall");
    json_t *call = json_object();
    json_t *id = json_object_get(fc, "id");
    json_t *pd = json_object();
    if (json_is_string(id) && json_string_length(id) > 0) {
        json_object_set(call, "id", id);
        json_object_set(pd, "id", id);
    } else {
        char buf[32];
        aihttp_call_id(buf, sizeof(buf));
        json_object_set_new(call, "id", json_string(buf));
    }
    json_t *name = json_object_get(fc, "name");
    json_object_set_new(call, "name", json_is_string(name) ? json_incref(name) : json_string(""));
    json_t *args = json_object_get(fc, "args");
    if (!args || json_is_object(args)) {
        json_object_set_new(call, "arguments", args ? json_incref(args) : json_object());
    } else {
        json_object_set_new(call, "arguments", json_null());
        json_object_set_new(call, "arguments_error",
                            json_string("functionCall.args is not a JSON object"));
    }
    json_t *sig = json_object_get(part, "thoughtSignature");
    if (json_is_string(sig))
        json_object_set(pd, "thoughtSignature", sig);
    if (json_object_size(pd) > 0)
        json_object_set_new(call, "provider_data", pd);
    else
        json_decref(pd);
    return call;
}

/*
 * A 2xx answer that is a failure: no candidate (a blocked prompt), a blocked answer, a call the
 * model wrote that does not parse. Its code with *f filled; TK_OK when cand holds an answer.
 */
static int answer_failure(const gemini *g, const aihttp_response *r, json_t *root, json_t *cand,
                          tk_failure *f)
{
    if (!json_is_object(cand)) {
        /* a blocked prompt: 200, no candidates, promptFeedback.blockReason */
        json_t *fb = json_object_get(root, "promptFeedback");
        const char *block = json_string_value(json_object_get(fb, "blockReason"));
        const char *bmsg = json_string_value(json_object_get(fb, "blockReasonMessage"));
        if (block)
            return aihttp_fail(f, TK_FAIL_BLOCKED, r->status, g->api_key,
                               WHO ": prompt blocked (%s)%s%s", block, bmsg ? ": " : "",
                               bmsg ? bmsg : "");
        return aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, g->api_key,
                           WHO ": answer has no candidates");
    }
    const char *reason = json_string_value(json_object_get(cand, "finishReason"));
    const char *fmsg = json_string_value(json_object_get(cand, "finishMessage"));
    if (reason && blocked_reason(reason))
        return aihttp_fail(f, TK_FAIL_BLOCKED, r->status, g->api_key,
                           WHO ": answer blocked (%s)%s%s", reason, fmsg ? ": " : "",
                           fmsg ? fmsg : "");
    if (reason && strcmp(reason, "MALFORMED_FUNCTION_CALL") == 0)
        /* the model wrote a call that does not parse: a retry of the same request won't help */
        return aihttp_fail(f, TK_FAIL_BAD_REQUEST, r->status, g->api_key,
                           WHO ": MALFORMED_FUNCTION_CALL%s%s", fmsg ? ": " : "", fmsg ? fmsg : "");
    return TK_OK;
}

/* The answer's parts into resp: their text joined (thoughts left out) and their tool calls. */
static int answer_parts(json_t *parts, json_t *resp)
{
    json_t *calls = json_object_get(resp, "tool_calls");
    size_t textlen = 0, i;
    json_t *part;
    json_array_foreach(parts, i, part)
    {
        if (json_is_true(json_object_get(part, "thought")))
            continue; /* the model's reasoning, not the answer */
        json_t *text = json_object_get(part, "text");
        if (json_is_string(text))
            textlen += json_string_length(text);
        if (json_is_object(json_object_get(part, "functionCall")))
            json_array_append_new(calls, tool_call(part));
    }
    char *text = malloc(textlen + 1);
    if (!text)
        return TK_ENOMEM;
    size_t n = 0;
    json_array_foreach(parts, i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t) && !json_is_true(json_object_get(part, "thought"))) {
            memcpy(text + n, json_string_value(t), json_string_length(t));
            n += json_string_length(t);
        }
    }
    json_object_set_new(resp, "text", json_stringn(text, n));
    free(text);
    return TK_OK;
}

/* finish_reason from Gemini's finishReason (and the parts), and usage from usageMetadata. */
static void answer_finish(json_t *resp, json_t *root, const char *reason)
{
    /* finishReason is STOP even for tool calls: the parts tell */
    const char *finish = "stop";
    if (reason && strcmp(reason, "MAX_TOKENS") == 0)
        finish = "max_tokens";
    else if (json_array_size(json_object_get(resp, "tool_calls")) > 0)
        finish = "tool_calls";
    else if (reason && strcmp(reason, "STOP") != 0)
        finish = reason; /* FINISH_REASON_UNSPECIFIED, OTHER, ...: Gemini's own */
    json_object_set_new(resp, "finish_reason", json_string(finish));

    /* output = candidates + thoughts: what is billed as output (saturated, not wrapped) */
    json_t *um = json_object_get(root, "usageMetadata");
    int64_t cands = json_integer_value(json_object_get(um, "candidatesTokenCount"));
    int64_t thoughts = json_integer_value(json_object_get(um, "thoughtsTokenCount"));
    int64_t output;
    if (__builtin_add_overflow(cands, thoughts, &output))
        output = thoughts > 0 ? INT64_MAX : INT64_MIN;
    aihttp_response_usage(resp, json_integer_value(json_object_get(um, "promptTokenCount")),
                          output);
}

/* Translates a 2xx generateContent answer into the normalised response. */
static int parse_answer(const gemini *g, const aihttp_response *r, char **out, tk_failure *f)
{
    json_error_t jerr;
    json_t *root = json_loads(r->body, 0, &jerr);
    if (json_is_array(root) && json_array_size(root) == 1) { /* the streaming shape */
        json_t *only = json_incref(json_array_get(root, 0));
        json_decref(root);
        root = only;
    }
    if (!json_is_object(root)) {
        char snippet[256];
        aihttp_snippet(r->body, snippet, sizeof(snippet));
        json_decref(root);
        return aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, g->api_key,
                           WHO ": answer is not a JSON object (%s): %s",
                           root ? "unexpected type" : jerr.text, snippet);
    }
    json_t *cand = json_array_get(json_object_get(root, "candidates"), 0);
    int rc = answer_failure(g, r, root, cand, f);
    if (rc < 0) {
        json_decref(root);
        return rc;
    }
    json_t *resp = aihttp_response_new(PROVIDER, g->model);
    if (answer_parts(json_object_get(json_object_get(cand, "content"), "parts"), resp) < 0) {
        json_decref(resp);
        json_decref(root);
        aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, NULL, WHO ": out of memory");
        return TK_ENOMEM;
    }
    answer_finish(resp, root, json_string_value(json_object_get(cand, "finishReason")));
    json_decref(root);
    return aihttp_response_dump(resp, out, WHO, f);
}

/* --- chat ------------------------------------------------------------------------ */

static const aihttp_wire wire = {.who = WHO,
                                 .provider = PROVIDER,
                                 .key_header = "x-goog-api-key: ",
                                 .key_env = "GEMINI_API_KEY",
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
    int rc =
        aihttp_provider_new(host, inst, "models/", "/v1beta/models/%s:generateContent", &p, &base);
    if (rc < 0)
        return rc;
    if (!p->api_key[0])
        host->log(inst, TK_LOG_WARN,
                  "config.api_key is empty (set GEMINI_API_KEY): every chat will fail");
    host->log(inst, TK_LOG_INFO, "Gemini model %s at %s", p->model, base);
    free(base);
    *state = p;
    return TK_OK;
}

static const tk_config_field config[] = {
    {"api_key", TK_CFG_STRING, 0, "\"\"", NULL,
     "Gemini API key (GEMINI_API_KEY); empty: every chat fails with auth", NULL, TK_CFG_NO_RANGE},
    {"model", TK_CFG_STRING, 0, "\"gemini-2.0-flash\"", NULL, "model name", NULL, TK_CFG_NO_RANGE},
    {"base_url", TK_CFG_STRING, 0, "\"https://generativelanguage.googleapis.com\"", NULL,
     "API root, without /v1beta", NULL, TK_CFG_NO_RANGE},
    AIHTTP_CONFIG_TUNING("maxOutputTokens when the request sets none"),
    {0},
};

static const tk_ai_provider vtable = {.struct_size = sizeof(tk_ai_provider), .chat = chat};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "ai_gemini",
    .version = "0.1.0",
    .description = "AI provider: Google Gemini (generateContent, v1beta)",
    .capabilities = TK_PLUGIN_CAP_AI,
    .config = config,
    .init = init,
    .destroy = destroy,
    .ai = &vtable,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }
