/*
 * Fuzzes the code the AI providers share (plugins/ai_common/, and the toolkit's Retry-After
 * parser). The first byte picks what the rest is:
 *   '0' a Retry-After header value (kit_parse_retry_after);
 *   '1' "SECRET\nTEXT": a failure message with a key in it (aihttp_fail must redact it);
 *   '2' a JSON array of a provider's tool calls (aihttp_function_call_parse: ids present
 *       and unique, arguments an object or null with a reason) and of normalised calls
 *       (aihttp_function_calls);
 *   '3' a JSON array of normalised messages (aihttp_content_text, aihttp_arguments_object,
 *       aihttp_find_call).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/ai_common/aihttp.h"
#include "../../plugins/kit/kit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void retry_after(const char *v)
{
    int64_t ms = kit_parse_retry_after(v, 1700000000, 1000000000);
    if (ms < -1)
        abort();
}

static void redact(const char *in)
{
    const char *nl = strchr(in, '\n');
    if (!nl)
        return;
    char secret[128];
    size_t slen = (size_t)(nl - in);
    if (slen >= sizeof(secret))
        return;
    memcpy(secret, in, slen);
    secret[slen] = '\0';
    tk_failure f;
    aihttp_failure_reset(&f);
    if (aihttp_fail(&f, TK_FAIL_AUTH, 401, secret, "HTTP 401: %s", nl + 1) >= 0)
        abort();
    size_t n = strnlen(f.message, sizeof(f.message));
    if (n == sizeof(f.message))
        abort();
    /* a key as keys are (4 or more of letters, digits, '-', '_') never shows */
    if (slen >= 4 &&
        strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789-_") == slen &&
        strstr(f.message, secret))
        abort();
    char snippet[256];
    aihttp_snippet(nl + 1, snippet, sizeof(snippet));
}

static void calls(json_t *arr)
{
    json_t *taken = json_object(), *seen = json_object(), *w;
    size_t i;
    json_array_foreach(arr, i, w)
    {
        json_t *c = aihttp_function_call_parse(w, taken);
        const char *id = json_string_value(json_object_get(c, "id"));
        json_t *args = json_object_get(c, "arguments");
        if (!id || !*id || json_object_get(seen, id) ||
            !json_is_string(json_object_get(c, "name")) ||
            !(json_is_object(args) ||
              (json_is_null(args) && json_is_string(json_object_get(c, "arguments_error")))))
            abort();
        json_object_set_new(seen, id, json_true());
        json_decref(c);
    }
    const char *why = NULL;
    json_t *wire = aihttp_function_calls(arr, &why);
    if (!wire && !why)
        abort();
    json_array_foreach(wire, i, w)
    {
        json_t *a = json_loads(
            json_string_value(json_object_get(json_object_get(w, "function"), "arguments")), 0,
            NULL);
        if (!json_is_object(a))
            abort(); /* arguments go out as a JSON object in a string */
        json_decref(a);
    }
    json_decref(wire);
    json_decref(seen);
    json_decref(taken);
}

static void messages(json_t *arr)
{
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        json_t *t = aihttp_content_text(json_object_get(m, "content"));
        if (!json_is_string(t))
            abort();
        json_decref(t);
        json_t *calls_of = json_object_get(m, "tool_calls"), *c;
        size_t j;
        json_array_foreach(calls_of, j, c)
        {
            json_t *a = aihttp_arguments_object(json_object_get(c, "arguments"));
            if (!json_is_object(a))
                abort();
            json_decref(a);
        }
        json_t *tj = aihttp_json_text(json_object_get(m, "content"));
        if (!json_is_string(tj))
            abort();
        json_decref(tj);
        aihttp_find_call(arr, i, json_string_value(json_object_get(m, "tool_call_id")));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *in = malloc(size);
    if (!in)
        return 0;
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';
    switch (data[0]) {
    case '0': retry_after(in); break;
    case '1': redact(in); break;
    case '2':
    case '3': {
        json_t *arr = json_loads(in, 0, NULL);
        if (json_is_array(arr))
            data[0] == '2' ? calls(arr) : messages(arr);
        json_decref(arr);
        break;
    }
    default: break;
    }
    free(in);
    return 0;
}
