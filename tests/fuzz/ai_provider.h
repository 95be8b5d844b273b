/*
 * The body of the AI provider harnesses (fuzz_gemini.c, fuzz_cohere.c, fuzz_openai.c),
 * included after the provider's own .c file so its static `wire` is in scope. The first
 * byte picks what the rest is:
 *   '0' a 2xx answer body: wire.parse_answer must give a well-formed normalised response,
 *       or a failure;
 *   '1' an error answer: the second byte picks the HTTP status, the rest is the body for
 *       wire.fail_http;
 *   '2' a normalised "tools" array, through the provider's tool conversion (FUZZ_TOOLS);
 *   '3' a normalised request, through aihttp_parse_request and wire.request.
 * Failure messages must be printable, NUL-terminated text, and those about an answer must
 * never contain the API key (a server may quote it back).
 */
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_KEY "fuzz-key-0123456789"

static aihttp_provider fuzz_provider = {
    .api_key = FUZZ_KEY, .model = "fuzz-model", .timeout_ms = 1000, .max_tokens = 1024};

static void check_failure(int rc, const tk_failure *f, int answer)
{
    if (rc >= 0)
        return;
    size_t n = strnlen(f->message, sizeof(f->message));
    if (f->kind == TK_FAIL_NONE || n == sizeof(f->message) ||
        (answer && strstr(f->message, FUZZ_KEY)))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)f->message[i] < 0x20 || f->message[i] == 0x7f)
            abort();
}

/* The normalised response of plugin.h. */
static void check_response(const char *text)
{
    json_t *r = json_loads(text, 0, NULL);
    json_t *calls = json_object_get(r, "tool_calls"), *usage = json_object_get(r, "usage");
    if (!json_is_object(r) || !json_is_string(json_object_get(r, "text")) ||
        !json_is_array(calls) || !json_is_string(json_object_get(r, "finish_reason")) ||
        !json_is_integer(json_object_get(usage, "input_tokens")) ||
        !json_is_integer(json_object_get(usage, "output_tokens")))
        abort();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        json_t *args = json_object_get(c, "arguments");
        if (json_string_length(json_object_get(c, "id")) == 0 ||
            !json_is_string(json_object_get(c, "name")) ||
            !(json_is_object(args) ||
              (json_is_null(args) && json_is_string(json_object_get(c, "arguments_error")))))
            abort();
    }
    json_decref(r);
}

static const long statuses[] = {400, 401, 402, 403, 404, 408, 422, 429, 498,
                                499, 500, 502, 503, 504, 301, 100, 600, -1};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char mode = (char)data[0];
    long status = 200;
    size_t skip = 1;
    if (mode == '1') {
        if (size < 2)
            return 0;
        status = statuses[data[1] % (sizeof(statuses) / sizeof(statuses[0]))];
        skip = 2;
    }
    size_t n = size - skip;
    char *body = malloc(n + 1);
    if (!body)
        return 0;
    memcpy(body, data + skip, n);
    body[n] = '\0';
    tk_failure f;
    aihttp_failure_reset(&f);
    if (mode == '0' || mode == '1') {
        aihttp_response r = {.status = status, .body = body, .body_len = n, .retry_after_ms = -1};
        char *out = NULL;
        int rc = mode == '0' ? wire.parse_answer(&fuzz_provider, &r, &out, &f)
                             : wire.fail_http(&fuzz_provider, &r, &f);
        check_failure(rc, &f, 1);
        if (mode == '1' && rc >= 0)
            abort(); /* an error answer is a failure */
        if (rc >= 0 && mode == '0')
            check_response(out);
        free(out);
    } else if (mode == '2') {
        json_t *tools = json_loads(body, 0, NULL);
        if (json_is_array(tools)) {
            json_t *w = FUZZ_TOOLS(tools);
            char *text = json_dumps(w, JSON_COMPACT);
            if (!text)
                abort();
            free(text);
            json_decref(w);
        }
        json_decref(tools);
    } else if (mode == '3') {
        json_t *req;
        double temperature = 0.7;
        int64_t max_tokens = 1024;
        int rc = aihttp_parse_request(body, wire.who, &req, &temperature, &max_tokens, &f);
        check_failure(rc, &f, 0);
        if (rc == TK_OK) {
            const char *why = NULL;
            json_t *w = wire.request(&fuzz_provider, req, temperature, max_tokens, &why);
            if (!w && !why)
                abort(); /* a refusal says why */
            char *text = w ? json_dumps(w, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
            if (w && !text)
                abort();
            free(text);
            json_decref(w);
            json_decref(req);
        }
    }
    free(body);
    return 0;
}
