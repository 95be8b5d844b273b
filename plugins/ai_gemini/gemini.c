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

#define WHO "ai_gemini"
#define PROVIDER "gemini"

/* The settings every provider has (aihttp.h); nothing of its own. */
typedef aihttp_provider gemini;

/* --- request ------------------------------------------------------------------ */

/*
 * Tool parameters arrive as JSON Schema; Gemini takes a subset of OpenAPI 3.0's Schema and
 * answers 400 to any other field. These are the fields of its Schema message; a value of one of
 * the first ones is itself a schema (or an object or list of them).
 */
static const char *const schema_fields[] = {
    "properties", "items",    "anyOf", /* schemas inside */
    "type",       "format",   "title",    "description",      "nullable",      "enum",
    "maxItems",   "minItems", "required", "minProperties",    "maxProperties", "minLength",
    "maxLength",  "pattern",  "example",  "propertyOrdering", "default",       "minimum",
    "maximum",    NULL};

/* How deep references and nesting are followed; a recursive schema is cut there. */
#define SCHEMA_MAX_DEPTH 16
/*
 * How many schema fields one tool's parameters may take to rewrite: references inline copies,
 * so a small schema whose properties each refer back to the root grows exponentially with the
 * depth. What is left when the budget runs out is cut like a recursion.
 */
#define SCHEMA_BUDGET 10000

static int schema_field(const char *k)
{
    for (int i = 0; schema_fields[i]; i++)
        if (strcmp(k, schema_fields[i]) == 0)
            return 1;
    return 0;
}

/* The target of a local reference ("#", "#/$defs/tag", JSON Pointer escapes), or NULL. */
static json_t *schema_ref(json_t *root, const char *ref)
{
    if (ref[0] != '#' || (ref[1] && ref[1] != '/'))
        return NULL; /* another document: nothing to read it from */
    json_t *at = root;
    const char *p = ref + 1;
    while (at && *p == '/') {
        p++;
        char tok[256];
        size_t n = 0;
        for (; *p && *p != '/' && n + 1 < sizeof(tok); p++)
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1'))
                tok[n++] = *++p == '0' ? '~' : '/';
            else
                tok[n++] = *p;
        tok[n] = '\0';
        at = json_object_get(at, tok);
    }
    return *p ? NULL : at;
}

static json_t *clean_schema(json_t *s, json_t *root, int depth, long *budget);

/* allOf: every part's fields in one schema; properties and required are joined. */
static void merge_schema(json_t *out, json_t *part)
{
    const char *k;
    json_t *v;
    json_object_foreach(part, k, v)
    {
        json_t *have = json_object_get(out, k);
        if (!have) {
            json_object_set(out, k, v);
        } else if (strcmp(k, "properties") == 0 && json_is_object(have)) {
            json_object_update_missing(have, v);
        } else if (strcmp(k, "required") == 0 && json_is_array(have)) {
            json_t *joined = json_copy(have); /* `have` may be the caller's own array */
            size_t i, j;
            json_t *r, *h;
            json_array_foreach(v, i, r)
            {
                int dup = 0;
                json_array_foreach(joined, j, h) dup |= json_equal(h, r);
                if (!dup)
                    json_array_append(joined, r);
            }
            json_object_set_new(out, k, joined);
        }
    }
}

/* JSON Schema's "type": ["string", "null"] is Gemini's type "string" with nullable. */
static void clean_type(json_t *out, json_t *type)
{
    if (json_is_string(type)) {
        json_object_set(out, "type", type);
        return;
    }
    json_t *kinds = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(type, i, t)
    {
        if (!json_is_string(t))
            continue;
        if (strcmp(json_string_value(t), "null") == 0)
            json_object_set_new(out, "nullable", json_true());
        else
            json_array_append(kinds, t);
    }
    if (json_array_size(kinds) == 1) {
        json_object_set(out, "type", json_array_get(kinds, 0));
    } else if (json_array_size(kinds) > 1 && !json_object_get(out, "anyOf")) {
        json_t *any = json_array();
        json_array_foreach(kinds, i, t) json_array_append_new(any, json_pack("{s:O}", "type", t));
        json_object_set_new(out, "anyOf", any);
    }
    json_decref(kinds);
}

/*
 * A copy of a JSON Schema in the form Gemini accepts, at any depth: local $refs inlined (the
 * keys beside a $ref win), allOf merged, oneOf sent as anyOf, a type list made one type with
 * nullable, a string "const" a one-value "enum", and every other field Gemini does not know
 * dropped. The keys of "properties" are parameter names, not keywords: a parameter may well be
 * called "const". An empty "properties" is dropped (Gemini: "should be non-empty for OBJECT
 * type"), and "required" keeps only the properties there are.
 */
static json_t *clean_schema(json_t *s, json_t *root, int depth, long *budget)
{
    if (!json_is_object(s) || depth > SCHEMA_MAX_DEPTH || *budget <= 0)
        return json_object(); /* true, or a recursion cut: any value */
    *budget -= 1 + (long)json_object_size(s);
    json_t *ref = json_object_get(s, "$ref"), *target;
    if (json_is_string(ref) && (target = schema_ref(root, json_string_value(ref)))) {
        json_t *m = json_is_object(target) ? json_copy(target) : json_object();
        const char *k;
        json_t *v;
        json_object_foreach(s, k, v)
        {
            if (strcmp(k, "$ref") != 0)
                json_object_set(m, k, v);
        }
        json_t *out = clean_schema(m, root, depth + 1, budget);
        json_decref(m);
        return out;
    }
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v)
    {
        if (strcmp(k, "properties") == 0 && json_is_object(v)) {
            if (json_object_size(v) == 0)
                continue;
            json_t *props = json_object();
            const char *name;
            json_t *sub;
            json_object_foreach(v, name, sub)
                json_object_set_new(props, name, clean_schema(sub, root, depth + 1, budget));
            json_object_set_new(out, k, props);
        } else if (strcmp(k, "items") == 0) {
            json_object_set_new(out, k, clean_schema(v, root, depth + 1, budget));
        } else if ((strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0) && json_is_array(v)) {
            json_t *any = json_array();
            size_t i;
            json_t *sub;
            json_array_foreach(v, i, sub)
                json_array_append_new(any, clean_schema(sub, root, depth + 1, budget));
            json_object_set_new(out, "anyOf", any);
        } else if (strcmp(k, "type") == 0) {
            clean_type(out, v);
        } else if (strcmp(k, "const") == 0) {
            /* the constraint survives as the one-value enum Gemini understands */
            if (json_is_string(v) && !json_object_get(s, "enum"))
                json_object_set_new(out, "enum", json_pack("[O]", v));
        } else if (schema_field(k)) {
            json_object_set(out, k, v);
        }
    }
    json_t *all = json_object_get(s, "allOf");
    size_t i;
    json_array_foreach(all, i, v)
    {
        json_t *part = clean_schema(v, root, depth + 1, budget);
        merge_schema(out, part);
        json_decref(part);
    }
    json_t *req = json_object_get(out, "required");
    if (req) {
        json_t *props = json_object_get(out, "properties"), *kept = json_array(), *r;
        json_array_foreach(req, i, r)
        {
            if (json_is_string(r) && json_object_get(props, json_string_value(r)))
                json_array_append(kept, r);
        }
        if (json_array_size(kept))
            json_object_set_new(out, "required", kept);
        else {
            json_object_del(out, "required");
            json_decref(kept);
        }
    }
    return out;
}

/* tools[{functionDeclarations[...]}], one declaration per normalised tool. */
static json_t *tools_wire(json_t *tools)
{
    json_t *decls = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        json_t *d = json_object();
        json_object_set(d, "name", json_object_get(t, "name"));
        json_t *desc = json_object_get(t, "description");
        if (json_is_string(desc))
            json_object_set(d, "description", desc);
        long budget = SCHEMA_BUDGET;
        json_t *params = clean_schema(json_object_get(t, "parameters"),
                                      json_object_get(t, "parameters"), 0, &budget);
        /* a function without parameters has no "parameters" at all */
        if (json_is_object(params) && json_object_get(params, "properties"))
            json_object_set_new(d, "parameters", params);
        else
            json_decref(params);
        json_array_append_new(decls, d);
    }
    json_t *tool = json_object();
    json_object_set_new(tool, "functionDeclarations", decls);
    json_t *out = json_array();
    json_array_append_new(out, tool);
    return out;
}

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
        json_object_set_new(body, "tools", tools_wire(tools));
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
    int rc;
    json_t *cand = json_array_get(json_object_get(root, "candidates"), 0);
    if (!json_is_object(cand)) {
        /* a blocked prompt: 200, no candidates, promptFeedback.blockReason */
        json_t *fb = json_object_get(root, "promptFeedback");
        const char *block = json_string_value(json_object_get(fb, "blockReason"));
        const char *bmsg = json_string_value(json_object_get(fb, "blockReasonMessage"));
        if (block)
            rc = aihttp_fail(f, TK_FAIL_BLOCKED, r->status, g->api_key,
                             WHO ": prompt blocked (%s)%s%s", block, bmsg ? ": " : "",
                             bmsg ? bmsg : "");
        else
            rc = aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, g->api_key,
                             WHO ": answer has no candidates");
        json_decref(root);
        return rc;
    }
    const char *reason = json_string_value(json_object_get(cand, "finishReason"));
    const char *fmsg = json_string_value(json_object_get(cand, "finishMessage"));
    if (reason && blocked_reason(reason)) {
        rc = aihttp_fail(f, TK_FAIL_BLOCKED, r->status, g->api_key, WHO ": answer blocked (%s)%s%s",
                         reason, fmsg ? ": " : "", fmsg ? fmsg : "");
        json_decref(root);
        return rc;
    }
    if (reason && strcmp(reason, "MALFORMED_FUNCTION_CALL") == 0) {
        /* the model wrote a call that does not parse: a retry of the same request won't help */
        rc = aihttp_fail(f, TK_FAIL_BAD_REQUEST, r->status, g->api_key,
                         WHO ": MALFORMED_FUNCTION_CALL%s%s", fmsg ? ": " : "", fmsg ? fmsg : "");
        json_decref(root);
        return rc;
    }

    json_t *resp = aihttp_response_new(PROVIDER, g->model);
    json_t *calls = json_object_get(resp, "tool_calls");
    size_t textlen = 0, i;
    json_t *part;
    json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
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
    if (!text) {
        json_decref(resp);
        json_decref(root);
        aihttp_fail(f, TK_FAIL_UNAVAILABLE, r->status, NULL, WHO ": out of memory");
        return TK_ENOMEM;
    }
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

    /* finishReason is STOP even for tool calls: the parts tell */
    const char *finish = "stop";
    if (reason && strcmp(reason, "MAX_TOKENS") == 0)
        finish = "max_tokens";
    else if (json_array_size(calls) > 0)
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
    {"timeout_ms", TK_CFG_INT, 0, "30000", NULL,
     "total time of one attempt (connect: at most 10 s)", NULL, TK_CFG_NO_RANGE},
    {"temperature", TK_CFG_DOUBLE, 0, "0.7", NULL, "when the request sets none", NULL,
     TK_CFG_NO_RANGE},
    {"max_tokens", TK_CFG_INT, 0, "1024", NULL, "maxOutputTokens when the request sets none", NULL,
     TK_CFG_NO_RANGE},
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
