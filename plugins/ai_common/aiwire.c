/*
 * Shared by the AI provider plugins: the parts of the normalised request and response
 * (plugin.h) that are not provider specific, and the function-calling wire Cohere v2 and
 * OpenAI chat share (aihttp.h).
 */
#include "aihttp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
