/* The AI provider plugins (ai_gemini, ai_cohere, ai_openai), each loaded alone with the fake host
 * table and talking with its real HTTP code to a fake server that speaks the provider's wire format
 * (fake_ai.h). Loop tests run once per provider: _i indexes P[]. */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_ai.h"
#include "fake_host.h"
#include "testhelp.h"

/* A key the fake accepts; no failure message may ever contain it. */
#define KEY "k-SECRET-7f3a9c"

static const struct provider {
    const char *so;
    fake_ai_kind kind;
    const char *name; /* the response's "provider" */
    const char *env;  /* where the key comes from, named when it is missing */
} P[] = {
    {"plugins/ai_gemini/.libs/ai_gemini.so", FAKE_GEMINI, "gemini", "GEMINI_API_KEY"},
    {"plugins/ai_cohere/.libs/ai_cohere.so", FAKE_COHERE, "cohere", "COHERE_API_KEY"},
    {"plugins/ai_openai/.libs/ai_openai.so", FAKE_OPENAI, "openai", "OPENAI_API_KEY"},
};
enum { GEMINI = 0, COHERE = 1, OPENAI = 2, NPROVIDERS = 3 };

/* The plugin and fake of the running test. */
static struct {
    int p;
    void *dl;
    const tk_plugin *desc;
    fake_ai *fake;
    tk_instance inst;
    void *state;
    int inited;
} C;

static void load(int p)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", th_builddir(), P[p].so);
    C.p = p;
    C.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(C.dl != NULL, "%s", dlerror());
    void *sym = dlsym(C.dl, TK_PLUGIN_ENTRY_SYMBOL);
    ck_assert_msg(sym != NULL, "%s has no %s", path, TK_PLUGIN_ENTRY_SYMBOL);
    tk_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof(entry));
    C.desc = entry();
    ck_assert_ptr_nonnull(C.desc);
}

/* Fills in the schema's defaults for keys the test did not set, as the host does. */
static void apply_defaults(json_t *cfg)
{
    for (const tk_config_field *fl = C.desc->config; fl && fl->name; fl++) {
        if (json_object_get(cfg, fl->name) || !fl->default_json)
            continue;
        json_t *v = json_loads(fl->default_json, JSON_DECODE_ANY, NULL);
        const char *s = json_string_value(v);
        if (s && strncmp(s, "${", 2) == 0 && s[strlen(s) - 1] == '}') {
            /* "${NAME}" or "${NAME:-default}" */
            char name[128], dflt[256] = "";
            const char *body = s + 2;
            const char *sep = strstr(body, ":-");
            size_t nlen = sep ? (size_t)(sep - body) : strlen(body) - 1;
            snprintf(name, sizeof(name), "%.*s", (int)nlen, body);
            if (sep)
                snprintf(dflt, sizeof(dflt), "%.*s", (int)(strlen(sep + 2) - 1), sep + 2);
            const char *env = getenv(name);
            json_decref(v);
            v = json_string(env ? env : dflt);
        }
        if (v)
            json_object_set_new(cfg, fl->name, v);
    }
}

/*
 * Loads provider p, starts its fake (accepting fake_key only; FAKE_OPENAI with NULL: no key
 * checked) and creates an instance whose config is
 * {"api_key":KEY,"base_url":<fake>,"model":"m","timeout_ms":500} updated with extra (a JSON
 * object, may be NULL), schema defaults filled in. Returns init's code.
 */
static int start_fake_key(int p, const char *fake_key, const char *extra)
{
    load(p);
    C.fake = fake_ai_start(P[p].kind, fake_key);
    ck_assert_ptr_nonnull(C.fake);
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:i}", "api_key", KEY, "base_url",
                            fake_ai_base_url(C.fake), "model", "m", "timeout_ms", 500);
    if (extra) {
        json_error_t e;
        json_t *x = json_loads(extra, 0, &e);
        ck_assert_msg(json_is_object(x), "bad extra config: %s", e.text);
        json_object_update(cfg, x);
        json_decref(x);
    }
    apply_defaults(cfg);
    char *text = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    fake_instance_init(&C.inst, P[p].name, text);
    free(text);
    int rc = C.desc->init(&fake_host, &C.inst, &C.state);
    C.inited = rc == TK_OK;
    return rc;
}

static int start_cfg(int p, const char *extra) { return start_fake_key(p, KEY, extra); }

static void start(int p, const char *extra)
{
    int rc = start_cfg(p, extra);
    ck_assert_msg(rc == TK_OK, "%s init failed: %d", P[p].name, rc);
    ck_assert_ptr_nonnull(C.desc->ai);
    ck_assert_ptr_nonnull(C.desc->ai->chat);
}

static void setup(void) { memset(&C, 0, sizeof(C)); }

static void teardown(void)
{
    if (C.inited)
        C.desc->destroy(C.state);
    fake_ai_stop(C.fake);
    if (C.desc)
        fake_instance_clear(&C.inst);
    if (C.dl)
        dlclose(C.dl);
    memset(&C, 0, sizeof(C));
}

typedef struct chat_result {
    int rc;
    json_t *resp; /* the parsed response on TK_OK */
    tk_failure f;
    double secs;
} chat_result;

static void result_free(chat_result *r)
{
    json_decref(r->resp);
    r->resp = NULL;
}

/* One call of ai->chat; checks what holds for every answer. */
static chat_result chat(const char *request)
{
    chat_result r;
    memset(&r, 0, sizeof(r));
    r.f.retry_after_ms = -7; /* a value no plugin writes, to see it was filled */
    char *out = NULL;
    double t0 = th_now_s();
    r.rc = C.desc->ai->chat(C.state, request, &out, &r.f);
    r.secs = th_now_s() - t0;
    ck_assert_msg(memchr(r.f.message, '\0', sizeof(r.f.message)) != NULL,
                  "tk_failure.message is not NUL-terminated");
    ck_assert_msg(strstr(r.f.message, KEY) == NULL, "the API key leaks in the failure: %s",
                  r.f.message);
    if (r.rc == TK_OK) {
        ck_assert_msg(out != NULL, "TK_OK without a response");
        json_error_t e;
        r.resp = json_loads(out, 0, &e);
        ck_assert_msg(json_is_object(r.resp), "response is not a JSON object: %s (%s)", out,
                      e.text);
        ck_assert_msg(strstr(out, KEY) == NULL, "the API key leaks in the response");
        free(out);
    } else {
        ck_assert_msg(r.rc < 0, "chat returned %d", r.rc);
    }
    return r;
}

#define assert_ok(r)                                                                               \
    ck_assert_msg((r).rc == TK_OK, "chat failed: rc %d kind %d http %d: %s (fake: %s)", (r).rc,    \
                  (int)(r).f.kind, (r).f.http_status, (r).f.message,                               \
                  fake_ai_last_violation(C.fake) ? fake_ai_last_violation(C.fake) : "no refusal")

#define assert_failed(r, k)                                                                        \
    do {                                                                                           \
        ck_assert_msg((r).rc < 0, "chat succeeded, want failure kind %d", (int)(k));               \
        ck_assert_msg((r).f.kind == (k), "want failure kind %d, got %d (http %d): %s", (int)(k),   \
                      (int)(r).f.kind, (r).f.http_status, (r).f.message);                          \
        ck_assert_msg((r).f.message[0] != '\0', "failure without a message");                      \
    } while (0)

/* The fake saw exactly n requests and refused none. */
static void assert_sent(int n)
{
    ck_assert_msg(fake_ai_count(C.fake) == n, "the fake received %d requests, want %d",
                  fake_ai_count(C.fake), n);
    const char *v = fake_ai_last_violation(C.fake);
    ck_assert_msg(v == NULL, "the fake refused a request: %s", v);
}

static const char *sget(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* A proto JSON field: camelCase or snake_case. */
static json_t *pget(json_t *o, const char *camel)
{
    json_t *v = json_object_get(o, camel);
    if (v)
        return v;
    char snake[128];
    size_t j = 0;
    for (const char *c = camel; *c && j + 2 < sizeof(snake); c++) {
        if (*c >= 'A' && *c <= 'Z') {
            snake[j++] = '_';
            snake[j++] = (char)(*c - 'A' + 'a');
        } else {
            snake[j++] = *c;
        }
    }
    snake[j] = '\0';
    return json_object_get(o, snake);
}

/* Cohere content: a string or [{type:"text",text}]: the text joined. Static buffer. */
static const char *cohere_text(json_t *content)
{
    static char buf[4096];
    if (json_is_string(content))
        return json_string_value(content);
    buf[0] = '\0';
    size_t i;
    json_t *c;
    json_array_foreach(content, i, c)
    {
        const char *t = sget(c, "text");
        if (t)
            strncat(buf, t, sizeof(buf) - strlen(buf) - 1);
    }
    return buf;
}

static json_t *jparse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    ck_assert_msg(j != NULL, "bad JSON in test: %s: %s", e.text, text);
    return j;
}

static int jeq(json_t *a, const char *text)
{
    json_t *b = jparse(text);
    int eq = json_equal(a, b);
    json_decref(b);
    return eq;
}

static char *jdump(json_t *j) { return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY); }

/* ---- descriptor ---------------------------------------------------------------------------- */

static const tk_config_field *field(const char *name)
{
    for (const tk_config_field *fl = C.desc->config; fl && fl->name; fl++)
        if (strcmp(fl->name, name) == 0)
            return fl;
    return NULL;
}

START_TEST(test_descriptor)
{
    load(_i);
    const tk_plugin *d = C.desc;
    ck_assert_uint_eq(d->abi_major, TK_PLUGIN_ABI_MAJOR);
    ck_assert_uint_eq(d->abi_minor, TK_PLUGIN_ABI_MINOR);
    ck_assert_uint_eq(d->struct_size, sizeof(tk_plugin));
    ck_assert_ptr_nonnull(d->name);
    ck_assert_msg(d->capabilities & TK_PLUGIN_CAP_AI, "TK_PLUGIN_CAP_AI not declared");
    ck_assert_ptr_nonnull(d->ai);
    ck_assert_uint_ge(d->ai->struct_size, sizeof(tk_ai_provider));
    ck_assert_ptr_nonnull(d->ai->chat);
    ck_assert_ptr_nonnull(d->init);
    ck_assert_ptr_nonnull(d->destroy);
    static const struct {
        const char *name;
        tk_config_type type;
    } keys[] = {{"api_key", TK_CFG_STRING},     {"model", TK_CFG_STRING},
                {"base_url", TK_CFG_STRING},    {"timeout_ms", TK_CFG_INT},
                {"temperature", TK_CFG_DOUBLE}, {"max_tokens", TK_CFG_INT}};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        const tk_config_field *fl = field(keys[k].name);
        ck_assert_msg(fl != NULL, "config key %s not declared", keys[k].name);
        ck_assert_msg(fl->type == keys[k].type, "config key %s has type %d, want %d", keys[k].name,
                      (int)fl->type, (int)keys[k].type);
    }
}
END_TEST

/* ---- plain text ---------------------------------------------------------------------------- */

START_TEST(test_plain_text)
{
    start(_i, NULL);
    fake_ai_text(C.fake, "Hello there");
    chat_result r = chat("{\"system\": \"Be brief.\","
                         " \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    assert_ok(r);
    assert_sent(1);
    ck_assert_str_eq(sget(r.resp, "text"), "Hello there");
    ck_assert_msg(json_array_size(json_object_get(r.resp, "tool_calls")) == 0,
                  "a text answer has no tool calls");
    ck_assert_str_eq(sget(r.resp, "finish_reason"), "stop");
    ck_assert_str_eq(sget(r.resp, "provider"), P[_i].name);
    ck_assert_str_eq(sget(r.resp, "model"), "m");
    json_t *usage = json_object_get(r.resp, "usage");
    ck_assert_msg(json_is_integer(json_object_get(usage, "input_tokens")), "usage.input_tokens");
    json_int_t in = json_integer_value(json_object_get(usage, "input_tokens"));
    if (_i == GEMINI)
        ck_assert_int_eq(in, FAKE_AI_IN_TOKENS);
    else
        ck_assert_msg(in == FAKE_AI_IN_TOKENS || in == FAKE_AI_COHERE_RAW_IN,
                      "usage.input_tokens %lld", (long long)in);
    ck_assert_int_eq(json_integer_value(json_object_get(usage, "output_tokens")),
                     FAKE_AI_OUT_TOKENS);

    /* what went over the wire */
    json_t *b = fake_ai_request(C.fake, 0);
    json_t *h = fake_ai_request_headers(C.fake, 0);
    if (_i == GEMINI) {
        ck_assert_str_eq(fake_ai_request_path(C.fake, 0), "/v1beta/models/m:generateContent");
        ck_assert_str_eq(sget(h, "x-goog-api-key"), KEY);
        json_t *si = pget(b, "systemInstruction");
        ck_assert_str_eq(sget(json_array_get(json_object_get(si, "parts"), 0), "text"),
                         "Be brief.");
        json_t *contents = json_object_get(b, "contents");
        ck_assert_int_eq(json_array_size(contents), 1);
        ck_assert_str_eq(sget(json_array_get(contents, 0), "role"), "user");
        json_t *parts = json_object_get(json_array_get(contents, 0), "parts");
        ck_assert_int_eq(json_array_size(parts), 1);
        ck_assert_str_eq(sget(json_array_get(parts, 0), "text"), "hi");
    } else if (_i == COHERE) {
        ck_assert_str_eq(fake_ai_request_path(C.fake, 0), "/v2/chat");
        ck_assert_str_eq(sget(h, "authorization"), "Bearer " KEY);
        ck_assert_str_eq(sget(b, "model"), "m");
        json_t *msgs = json_object_get(b, "messages");
        ck_assert_int_eq(json_array_size(msgs), 2);
        ck_assert_str_eq(sget(json_array_get(msgs, 0), "role"), "system");
        ck_assert_str_eq(cohere_text(json_object_get(json_array_get(msgs, 0), "content")),
                         "Be brief.");
        ck_assert_str_eq(sget(json_array_get(msgs, 1), "role"), "user");
        ck_assert_str_eq(cohere_text(json_object_get(json_array_get(msgs, 1), "content")), "hi");
        ck_assert_msg(!json_is_true(json_object_get(b, "stream")), "must not stream");
    } else {
        ck_assert_str_eq(fake_ai_request_path(C.fake, 0), "/v1/chat/completions");
        ck_assert_str_eq(sget(h, "authorization"), "Bearer " KEY);
        ck_assert_str_eq(sget(b, "model"), "m");
        json_t *msgs = json_object_get(b, "messages");
        ck_assert_int_eq(json_array_size(msgs), 2);
        ck_assert_str_eq(sget(json_array_get(msgs, 0), "role"), "system");
        ck_assert_str_eq(sget(json_array_get(msgs, 0), "content"), "Be brief.");
        ck_assert_str_eq(sget(json_array_get(msgs, 1), "role"), "user");
        ck_assert_str_eq(sget(json_array_get(msgs, 1), "content"), "hi");
        ck_assert_msg(json_is_false(json_object_get(b, "stream")), "must send stream false");
        ck_assert_msg(!json_object_get(b, "tools") && !json_object_get(b, "tool_choice"),
                      "no tools: neither tools nor tool_choice");
    }
    ck_assert_msg(
        strstr(sget(h, "content-type") ? sget(h, "content-type") : "", "application/json") != NULL,
        "Content-Type is %s", sget(h, "content-type"));
    result_free(&r);
}
END_TEST

START_TEST(test_max_tokens_finish)
{
    start(_i, NULL);
    fake_ai_text_finish(C.fake, "Once upon a", _i == OPENAI ? "length" : "MAX_TOKENS");
    chat_result r = chat("{\"messages\": [{\"role\": \"user\", \"content\": \"a long story\"}]}");
    assert_ok(r);
    assert_sent(1);
    ck_assert_str_eq(sget(r.resp, "text"), "Once upon a");
    ck_assert_str_eq(sget(r.resp, "finish_reason"), "max_tokens");
    result_free(&r);
}
END_TEST

/* ---- tool calls ------------------------------------------------------------------------ */

/* A tool whose schema has what Gemini refuses ($schema, additionalProperties, const), nested. */
#define TOOLS                                                                                      \
    "[{\"name\": \"add_task\", \"description\": \"Adds a task\", \"parameters\": {"                \
    "   \"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"type\": \"object\","      \
    "   \"properties\": {\"title\": {\"type\": \"string\", \"description\": \"the title\"},"       \
    "     \"due\": {\"type\": \"string\", \"format\": \"date-time\"},"                             \
    "     \"kind\": {\"const\": \"task\"},"                                                        \
    "     \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"object\","                       \
    "        \"properties\": {\"name\": {\"type\": \"string\"}},"                                  \
    "        \"additionalProperties\": false}}},"                                                  \
    "   \"required\": [\"title\"], \"additionalProperties\": false}},"                             \
    " {\"name\": \"list_tasks\", \"description\": \"Lists tasks\","                                \
    "  \"parameters\": {\"type\": \"object\", \"properties\": {}}}]"

#define ASK_TOOLS                                                                                  \
    "{\"system\": \"You manage tasks.\", \"tools\": " TOOLS ","                                    \
    " \"messages\": [{\"role\": \"user\", \"content\": \"add milk\"}]}"

static int has_key_deep(json_t *j, const char *key)
{
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (strcmp(k, key) == 0 || has_key_deep(v, key))
                return 1;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (has_key_deep(v, key))
                return 1;
        }
    }
    return 0;
}

START_TEST(test_one_tool_call)
{
    start(_i, NULL);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"add_task\", \"args\": {\"title\": \"Buy milk\"}}]");
    chat_result r = chat(ASK_TOOLS);
    assert_ok(r);
    assert_sent(1);
    ck_assert_str_eq(sget(r.resp, "finish_reason"), "tool_calls");
    ck_assert_msg(json_is_string(json_object_get(r.resp, "text")), "text must be a string");
    json_t *calls = json_object_get(r.resp, "tool_calls");
    ck_assert_int_eq(json_array_size(calls), 1);
    json_t *c = json_array_get(calls, 0);
    ck_assert_msg(sget(c, "id") && sget(c, "id")[0], "a tool call needs an id");
    ck_assert_str_eq(sget(c, "name"), "add_task");
    ck_assert_msg(jeq(json_object_get(c, "arguments"), "{\"title\": \"Buy milk\"}"),
                  "arguments are not the object the model sent");
    ck_assert_ptr_null(json_object_get(c, "arguments_error"));

    /* the declarations sent */
    json_t *b = fake_ai_request(C.fake, 0);
    if (_i == GEMINI) {
        json_t *decls =
            pget(json_array_get(json_object_get(b, "tools"), 0), "functionDeclarations");
        ck_assert_int_eq(json_array_size(decls), 2);
        json_t *d = json_array_get(decls, 0);
        ck_assert_str_eq(sget(d, "name"), "add_task");
        ck_assert_str_eq(sget(d, "description"), "Adds a task");
        json_t *params = json_object_get(d, "parameters");
        ck_assert_msg(!has_key_deep(params, "$schema") &&
                          !has_key_deep(params, "additionalProperties") &&
                          !has_key_deep(params, "const"),
                      "schema keywords Gemini refuses were sent");
        json_t *props = json_object_get(params, "properties");
        ck_assert_str_eq(sget(json_object_get(props, "title"), "type"), "string");
        ck_assert_str_eq(sget(json_object_get(props, "due"), "format"), "date-time");
        /* a const keeps its meaning as a one-value enum */
        ck_assert_msg(jeq(json_object_get(json_object_get(props, "kind"), "enum"), "[\"task\"]"),
                      "const became %s", jdump(json_object_get(props, "kind")));
        ck_assert_msg(jeq(json_object_get(params, "required"), "[\"title\"]"), "required kept");
        json_t *item = json_object_get(json_object_get(props, "tags"), "items");
        ck_assert_str_eq(sget(json_object_get(json_object_get(item, "properties"), "name"), "type"),
                         "string");
        ck_assert_str_eq(
            sget(json_array_get(json_object_get(pget(b, "systemInstruction"), "parts"), 0), "text"),
            "You manage tasks.");
    } else {
        json_t *tools = json_object_get(b, "tools");
        ck_assert_int_eq(json_array_size(tools), 2);
        json_t *t = json_array_get(tools, 0);
        ck_assert_str_eq(sget(t, "type"), "function");
        json_t *fn = json_object_get(t, "function");
        ck_assert_str_eq(sget(fn, "name"), "add_task");
        ck_assert_str_eq(sget(fn, "description"), "Adds a task");
        json_t *params = json_object_get(fn, "parameters");
        ck_assert_str_eq(
            sget(json_object_get(json_object_get(params, "properties"), "title"), "type"),
            "string");
        ck_assert_msg(jeq(json_object_get(params, "required"), "[\"title\"]"), "required kept");
        if (_i == OPENAI)
            ck_assert_str_eq(sget(b, "tool_choice"), "auto");
    }
    result_free(&r);
}
END_TEST

START_TEST(test_several_tool_calls)
{
    start(_i, NULL);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"add_task\", \"args\": {\"title\": \"a\"}},"
                               " {\"name\": \"add_task\", \"args\": {\"title\": \"b\","
                               "   \"tags\": [{\"name\": \"x\"}]}},"
                               " {\"name\": \"list_tasks\", \"args\": {}}]");
    chat_result r = chat(ASK_TOOLS);
    assert_ok(r);
    assert_sent(1);
    ck_assert_str_eq(sget(r.resp, "finish_reason"), "tool_calls");
    json_t *calls = json_object_get(r.resp, "tool_calls");
    ck_assert_int_eq(json_array_size(calls), 3);
    static const char *const want[] = {"{\"title\": \"a\"}",
                                       "{\"title\": \"b\", \"tags\": [{\"name\": \"x\"}]}", "{}"};
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_array_get(calls, i);
        ck_assert_str_eq(sget(c, "name"), i < 2 ? "add_task" : "list_tasks");
        ck_assert_msg(jeq(json_object_get(c, "arguments"), want[i]), "call %zu arguments", i);
        ck_assert_msg(sget(c, "id") && sget(c, "id")[0], "call %zu has no id", i);
        for (size_t k = 0; k < i; k++)
            ck_assert_msg(strcmp(sget(c, "id"), sget(json_array_get(calls, k), "id")) != 0,
                          "calls %zu and %zu share the id %s", k, i, sget(c, "id"));
    }
    result_free(&r);
}
END_TEST

/* The next request after a tool-call answer: the assistant turn as returned, then a result per
 * call. Returns the request text (malloc'd). */
static char *tool_round_request(json_t *resp, const char *const *results)
{
    json_t *calls = json_deep_copy(json_object_get(resp, "tool_calls"));
    json_t *msgs = json_array();
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", "add milk"));
    json_array_append_new(
        msgs, json_pack("{s:s, s:n, s:o}", "role", "assistant", "content", "tool_calls", calls));
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        json_array_append_new(msgs, json_pack("{s:s, s:s, s:s, s:o}", "role", "tool",
                                              "tool_call_id", sget(c, "id"), "name",
                                              sget(c, "name"), "content", jparse(results[i])));
    }
    json_t *req = json_pack("{s:s, s:o, s:o}", "system", "You manage tasks.", "tools",
                            jparse(TOOLS), "messages", msgs);
    char *text = jdump(req);
    json_decref(req);
    return text;
}

/* A Gemini functionResponse.response carries the tool's result: as is or wrapped in "result". */
static int gemini_response_is(json_t *response, const char *want)
{
    return jeq(response, want) || jeq(json_object_get(response, "result"), want);
}

/* Cohere tool message content carries the result: a JSON string, a text item or a document. */
static int cohere_tool_content_is(json_t *content, const char *want)
{
    json_t *w = jparse(want);
    int ok = 0;
    if (json_is_string(content)) {
        json_t *got = json_loads(json_string_value(content), JSON_DECODE_ANY, NULL);
        ok = json_equal(got, w);
        json_decref(got);
    } else {
        size_t i;
        json_t *c;
        json_array_foreach(content, i, c)
        {
            json_t *got = NULL;
            if (sget(c, "text"))
                got = json_loads(sget(c, "text"), JSON_DECODE_ANY, NULL);
            else if (json_object_get(c, "document"))
                got = json_incref(json_object_get(json_object_get(c, "document"), "data"));
            if (got && json_is_string(got)) {
                json_t *inner = json_loads(json_string_value(got), JSON_DECODE_ANY, NULL);
                json_decref(got);
                got = inner;
            }
            ok = ok || json_equal(got, w);
            json_decref(got);
        }
    }
    json_decref(w);
    return ok;
}

START_TEST(test_tool_round)
{
    start(_i, NULL);
    /* Gemini: the first call gets a generated signature; the second one its own. */
    fake_ai_tool_calls(C.fake, "[{\"name\": \"add_task\", \"args\": {\"title\": \"milk\"}},"
                               " {\"name\": \"list_tasks\", \"args\": {},"
                               "  \"thought_signature\": \"second/sig+==\"}]");
    fake_ai_text(C.fake, "Added milk; you have 1 task.");
    chat_result r1 = chat(ASK_TOOLS);
    assert_ok(r1);
    ck_assert_int_eq(json_array_size(json_object_get(r1.resp, "tool_calls")), 2);
    static const char *const results[] = {"{\"id\": 7, \"title\": \"milk\"}",
                                          "{\"tasks\": [{\"id\": 7}]}"};
    char *req = tool_round_request(r1.resp, results);
    chat_result r2 = chat(req);
    free(req);
    assert_ok(r2);
    assert_sent(2); /* the fake validated the turns, results and signatures */
    ck_assert_str_eq(sget(r2.resp, "text"), "Added milk; you have 1 task.");
    ck_assert_str_eq(sget(r2.resp, "finish_reason"), "stop");

    json_t *b = fake_ai_request(C.fake, 1);
    json_t *calls = json_object_get(r1.resp, "tool_calls");
    if (_i == GEMINI) {
        json_t *contents = json_object_get(b, "contents");
        ck_assert_int_eq(json_array_size(contents), 3);
        json_t *model = json_array_get(contents, 1), *user = json_array_get(contents, 2);
        ck_assert_str_eq(sget(model, "role"), "model");
        ck_assert_str_eq(sget(user, "role"), "user");
        json_t *mparts = json_object_get(model, "parts");
        ck_assert_int_eq(json_array_size(mparts), 2);
        ck_assert_str_eq(sget(pget(json_array_get(mparts, 0), "functionCall"), "name"), "add_task");
        ck_assert_str_eq(sget(json_array_get(mparts, 1), "thoughtSignature")
                             ? sget(json_array_get(mparts, 1), "thoughtSignature")
                             : sget(json_array_get(mparts, 1), "thought_signature"),
                         "second/sig+==");
        json_t *uparts = json_object_get(user, "parts");
        ck_assert_int_eq(json_array_size(uparts), 2);
        for (size_t i = 0; i < 2; i++) {
            json_t *fr = pget(json_array_get(uparts, i), "functionResponse");
            ck_assert_str_eq(sget(fr, "name"), sget(json_array_get(calls, i), "name"));
            ck_assert_msg(gemini_response_is(json_object_get(fr, "response"), results[i]),
                          "functionResponse %zu does not carry the tool result", i);
        }
    } else {
        json_t *msgs = json_object_get(b, "messages");
        /* system, user, assistant, tool, tool */
        ck_assert_int_eq(json_array_size(msgs), 5);
        json_t *a = json_array_get(msgs, 2);
        ck_assert_str_eq(sget(a, "role"), "assistant");
        json_t *tcs = json_object_get(a, "tool_calls");
        ck_assert_int_eq(json_array_size(tcs), 2);
        for (size_t i = 0; i < 2; i++) {
            json_t *tc = json_array_get(tcs, i), *c = json_array_get(calls, i);
            ck_assert_str_eq(sget(tc, "id"), sget(c, "id"));
            json_t *fn = json_object_get(tc, "function");
            ck_assert_str_eq(sget(fn, "name"), sget(c, "name"));
            json_t *args = json_loads(sget(fn, "arguments"), 0, NULL);
            ck_assert_msg(json_equal(args, json_object_get(c, "arguments")),
                          "arguments string %s is not the call's arguments", sget(fn, "arguments"));
            json_decref(args);
            json_t *t = json_array_get(msgs, 3 + i);
            ck_assert_str_eq(sget(t, "role"), "tool");
            ck_assert_str_eq(sget(t, "tool_call_id"), sget(c, "id"));
            ck_assert_msg(cohere_tool_content_is(json_object_get(t, "content"), results[i]),
                          "tool message %zu does not carry the tool result", i);
        }
    }
    result_free(&r1);
    result_free(&r2);
}
END_TEST

/* ---- generation settings ------------------------------------------------------------------- */

static double sent_temperature(json_t *b)
{
    if (C.p == GEMINI)
        return json_number_value(json_object_get(pget(b, "generationConfig"), "temperature"));
    return json_number_value(json_object_get(b, "temperature"));
}

static json_t *sent_max_tokens(json_t *b)
{
    if (C.p == GEMINI)
        return pget(pget(b, "generationConfig"), "maxOutputTokens");
    return json_object_get(b, "max_tokens");
}

START_TEST(test_settings_from_config_and_request)
{
    start(_i, "{\"temperature\": 0.3, \"max_tokens\": 256}");
    chat_result r = chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    assert_ok(r);
    result_free(&r);
    r = chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
             " \"temperature\": 0.9, \"max_tokens\": 64}");
    assert_ok(r);
    result_free(&r);
    assert_sent(2);
    json_t *b0 = fake_ai_request(C.fake, 0), *b1 = fake_ai_request(C.fake, 1);
    ck_assert_msg(fabs(sent_temperature(b0) - 0.3) < 1e-9, "config temperature: sent %g",
                  sent_temperature(b0));
    ck_assert_msg(json_integer_value(sent_max_tokens(b0)) == 256, "config max_tokens not sent");
    ck_assert_msg(fabs(sent_temperature(b1) - 0.9) < 1e-9, "request temperature: sent %g",
                  sent_temperature(b1));
    ck_assert_msg(json_integer_value(sent_max_tokens(b1)) == 64, "request max_tokens not sent");
}
END_TEST

/* ---- failures ------------------------------------------------------------------------------ */

#define HI "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"

START_TEST(test_rate_limited_with_delay)
{
    start(_i, NULL);
    /* Gemini: retryDelay "1.5s"; Cohere: Retry-After: 2 (whole seconds) */
    fake_ai_error(C.fake, 429, _i == GEMINI ? 1.5 : 2);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_RATE_LIMITED);
    assert_sent(1);
    ck_assert_int_eq(r.f.http_status, 429);
    int64_t want = _i == GEMINI ? 1500 : 2000;
    ck_assert_msg(llabs((long long)(r.f.retry_after_ms - want)) <= 50,
                  "retry_after_ms %lld, want %lld", (long long)r.f.retry_after_ms, (long long)want);
    ck_assert_int_eq(r.f.fail_fast, 0);
}
END_TEST

START_TEST(test_rate_limited_without_delay)
{
    start(_i, NULL);
    fake_ai_error(C.fake, 429, -1);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_RATE_LIMITED);
    assert_sent(1);
    ck_assert_int_eq(r.f.http_status, 429);
    ck_assert_msg(r.f.retry_after_ms == -1, "retry_after_ms %lld without a delay, want -1",
                  (long long)r.f.retry_after_ms);
    ck_assert_int_eq(r.f.fail_fast, 0);
}
END_TEST

START_TEST(test_unavailable)
{
    static const int statuses[] = {500, 503, 504};
    start(_i, NULL);
    for (int k = 0; k < 3; k++) {
        fake_ai_error(C.fake, statuses[k], -1);
        chat_result r = chat(HI);
        assert_failed(r, TK_FAIL_UNAVAILABLE);
        ck_assert_int_eq(r.f.http_status, statuses[k]);
        ck_assert_msg(r.f.retry_after_ms == -1, "%d: retry_after_ms %lld, want -1", statuses[k],
                      (long long)r.f.retry_after_ms);
        ck_assert_int_eq(r.f.fail_fast, 0);
        assert_sent(k + 1); /* one attempt per call: the host retries */
    }
}
END_TEST

START_TEST(test_bad_request)
{
    static const int statuses[] = {400, 404};
    start(_i, NULL);
    for (int k = 0; k < 2; k++) {
        fake_ai_error(C.fake, statuses[k], -1);
        chat_result r = chat(HI);
        assert_failed(r, TK_FAIL_BAD_REQUEST);
        ck_assert_int_eq(r.f.http_status, statuses[k]);
        assert_sent(k + 1);
    }
}
END_TEST

START_TEST(test_timeout)
{
    start(_i, "{\"timeout_ms\": 500}");
    fake_ai_hang(C.fake, 5000);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_TIMEOUT);
    ck_assert_msg(r.secs < 0.5 + 2.0, "chat took %.2f s with timeout_ms 500", r.secs);
    ck_assert_msg(r.secs >= 0.4, "chat gave up after %.2f s, before timeout_ms 500", r.secs);
    /* the fake records the request from its own thread, which nothing made reply first */
    ck_assert_int_eq(fake_ai_wait_count(C.fake, 1, 5000), 1);
}
END_TEST

START_TEST(test_connection_refused)
{
    char url[64];
    snprintf(url, sizeof(url), "{\"base_url\": \"http://127.0.0.1:%d\"}", th_free_port());
    start(_i, url);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_UNAVAILABLE);
    ck_assert_int_eq(r.f.http_status, 0);
    ck_assert_msg(r.secs < 2.5, "a refused connection took %.2f s", r.secs);
}
END_TEST

START_TEST(test_bad_key)
{
    start(_i, "{\"api_key\": \"wrong-KEY-4242\"}");
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_AUTH);
    ck_assert_int_eq(fake_ai_count(C.fake), 1);
    ck_assert_int_eq(r.f.http_status, _i == GEMINI ? 400 : 401);
    ck_assert_msg(strstr(r.f.message, "wrong-KEY-4242") == NULL, "the key leaks: %s", r.f.message);
}
END_TEST

START_TEST(test_forbidden)
{
    start(_i, NULL);
    fake_ai_error(C.fake, _i == GEMINI ? 403 : 401, -1);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_AUTH);
    assert_sent(1);
}
END_TEST

START_TEST(test_empty_key)
{
    int rc = start_cfg(_i, "{\"api_key\": \"\"}");
    ck_assert_msg(rc == TK_OK,
                  "init with an empty api_key failed (%d): the failure belongs to "
                  "chat, as TK_FAIL_AUTH",
                  rc);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_AUTH);
    ck_assert_msg(strstr(r.f.message, P[_i].env) != NULL, "the message does not name %s: %s",
                  P[_i].env, r.f.message);
    ck_assert_int_eq(fake_ai_count(C.fake), 0);
}
END_TEST

START_TEST(test_malformed_request)
{
    start(_i, NULL);
    chat_result r = chat("{\"messages\": 42");
    ck_assert_msg(r.rc < 0, "chat accepted a request that is not JSON");
    ck_assert_msg(r.f.kind == TK_FAIL_BAD_REQUEST, "kind %d for a bad request: %s", (int)r.f.kind,
                  r.f.message);
    ck_assert_int_eq(fake_ai_count(C.fake), 0);
}
END_TEST

START_TEST(test_garbage_answer)
{
    start(_i, NULL);
    fake_ai_raw(C.fake, 200, NULL, "<html>oops</html>");
    chat_result r = chat(HI);
    ck_assert_msg(r.rc < 0, "chat accepted a body that is not JSON");
    ck_assert_msg(r.f.kind != TK_FAIL_NONE, "failure without a kind");
    assert_sent(1);
}
END_TEST

/* The plugin may be called from several threads at once. */
static void *chat_thread(void *arg)
{
    (void)arg;
    char *out = NULL;
    tk_failure f;
    memset(&f, 0, sizeof(f));
    int rc = C.desc->ai->chat(C.state, HI, &out, &f);
    json_t *resp = rc == TK_OK ? json_loads(out, 0, NULL) : NULL;
    long ok = resp && sget(resp, "text") && strcmp(sget(resp, "text"), "ok") == 0;
    json_decref(resp);
    free(out);
    return (void *)ok;
}

START_TEST(test_concurrent_calls)
{
    start(_i, NULL);
    pthread_t t[6];
    for (int k = 0; k < 6; k++)
        ck_assert_int_eq(pthread_create(&t[k], NULL, chat_thread, NULL), 0);
    int ok = 0;
    for (int k = 0; k < 6; k++) {
        void *v;
        pthread_join(t[k], &v);
        ok += v != NULL;
    }
    ck_assert_int_eq(ok, 6);
    assert_sent(6);
}
END_TEST

START_TEST(test_key_never_in_message)
{
    start(_i, NULL);
    /* a server (or a proxy) that quotes the key back */
    if (_i == GEMINI) {
        fake_ai_raw(C.fake, 400, NULL,
                    "{\"error\": {\"code\": 400, \"message\": \"API key " KEY
                    " is not valid for this project\", \"status\": \"INVALID_ARGUMENT\"}}");
        fake_ai_raw(C.fake, 502, NULL, "<html>bad gateway for key=" KEY "</html>");
    } else if (_i == OPENAI) {
        fake_ai_raw(C.fake, 400, NULL,
                    "{\"error\": {\"message\": \"invalid request: token " KEY
                    " ...\", \"type\": \"invalid_request_error\", \"param\": null,"
                    " \"code\": null}}");
        fake_ai_raw(C.fake, 502, NULL, "<html>bad gateway for key=" KEY "</html>");
    } else {
        fake_ai_raw(C.fake, 400, NULL,
                    "{\"id\": \"x\", \"message\": \"invalid request: token " KEY " ...\"}");
        fake_ai_raw(C.fake, 502, NULL, "<html>bad gateway for key=" KEY "</html>");
    }
    chat_result r = chat(HI); /* chat() asserts the key is not in the message */
    ck_assert_msg(r.rc < 0, "an error answer was a success");
    r = chat(HI);
    assert_failed(r, TK_FAIL_UNAVAILABLE);
    assert_sent(2);
}
END_TEST

START_TEST(test_conversation_turns)
{
    start(_i, NULL);
    fake_ai_text(C.fake, "It is Tuesday.");
    chat_result r = chat("{\"system\": \"Be brief.\", \"messages\": ["
                         " {\"role\": \"user\", \"content\": \"hi\"},"
                         " {\"role\": \"assistant\", \"content\": \"Hello!\"},"
                         " {\"role\": \"user\", \"content\": \"what day is it?\"}]}");
    assert_ok(r);
    assert_sent(1);
    ck_assert_str_eq(sget(r.resp, "text"), "It is Tuesday.");
    json_t *b = fake_ai_request(C.fake, 0);
    static const char *const texts[] = {"hi", "Hello!", "what day is it?"};
    if (_i == GEMINI) {
        static const char *const roles[] = {"user", "model", "user"};
        json_t *contents = json_object_get(b, "contents");
        ck_assert_int_eq(json_array_size(contents), 3);
        for (size_t k = 0; k < 3; k++) {
            json_t *c = json_array_get(contents, k);
            ck_assert_str_eq(sget(c, "role"), roles[k]);
            ck_assert_str_eq(sget(json_array_get(json_object_get(c, "parts"), 0), "text"),
                             texts[k]);
        }
    } else {
        static const char *const roles[] = {"system", "user", "assistant", "user"};
        json_t *msgs = json_object_get(b, "messages");
        ck_assert_int_eq(json_array_size(msgs), 4);
        for (size_t k = 0; k < 4; k++) {
            json_t *m = json_array_get(msgs, k);
            ck_assert_str_eq(sget(m, "role"), roles[k]);
            ck_assert_str_eq(cohere_text(json_object_get(m, "content")),
                             k ? texts[k - 1] : "Be brief.");
        }
    }
    result_free(&r);
}
END_TEST

START_TEST(test_base_url_trailing_slash)
{
    load(_i); /* to know the fake's URL first */
    dlclose(C.dl);
    C.dl = NULL;
    fake_ai *probe = fake_ai_start(P[_i].kind, KEY);
    char extra[128];
    snprintf(extra, sizeof(extra), "{\"base_url\": \"%s/\"}", fake_ai_base_url(probe));
    start(_i, extra);
    /* the instance talks to probe, not to C.fake */
    chat_result r = chat(HI);
    ck_assert_msg(r.rc == TK_OK, "base_url with a trailing slash: %s (fake: %s)", r.f.message,
                  fake_ai_last_violation(probe) ? fake_ai_last_violation(probe) : "-");
    ck_assert_int_eq(fake_ai_count(probe), 1);
    ck_assert_str_eq(fake_ai_request_path(probe, 0), _i == GEMINI
                                                         ? "/v1beta/models/m:generateContent"
                                                     : _i == COHERE ? "/v2/chat"
                                                                    : "/v1/chat/completions");
    result_free(&r);
    C.desc->destroy(C.state);
    C.inited = 0;
    fake_ai_stop(probe);
}
END_TEST

/* ---- Gemini specifics ---------------------------------------------------------------------- */

START_TEST(test_gemini_daily_quota_fails_fast)
{
    start(GEMINI, NULL);
    fake_ai_daily_quota(C.fake);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_RATE_LIMITED);
    assert_sent(1);
    ck_assert_int_eq(r.f.http_status, 429);
    ck_assert_int_eq(r.f.fail_fast, 1);
}
END_TEST

START_TEST(test_gemini_blocked_prompt)
{
    start(GEMINI, NULL);
    fake_ai_blocked(C.fake);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_BLOCKED);
    assert_sent(1);
}
END_TEST

START_TEST(test_gemini_safety_finish)
{
    start(GEMINI, NULL);
    fake_ai_raw(C.fake, 200, NULL,
                "{\"candidates\": [{\"finishReason\": \"SAFETY\", \"index\": 0,"
                " \"safetyRatings\": [{\"category\": \"HARM_CATEGORY_HARASSMENT\","
                " \"probability\": \"HIGH\", \"blocked\": true}]}],"
                " \"usageMetadata\": {\"promptTokenCount\": 3, \"totalTokenCount\": 3}}");
    chat_result r = chat(HI);
    ck_assert_msg(r.rc < 0 ? r.f.kind == TK_FAIL_BLOCKED
                           : strcmp(sget(r.resp, "finish_reason"), "stop") != 0,
                  "a candidate stopped for SAFETY without content: rc %d kind %d %s", r.rc,
                  (int)r.f.kind, r.rc < 0 ? r.f.message : sget(r.resp, "finish_reason"));
    result_free(&r);
}
END_TEST

START_TEST(test_gemini_thoughts_not_in_text)
{
    start(GEMINI, NULL);
    fake_ai_thought(C.fake, "The answer is 4.");
    chat_result r = chat(HI);
    assert_ok(r);
    assert_sent(1);
    ck_assert_str_eq(sget(r.resp, "text"), "The answer is 4.");
    result_free(&r);
}
END_TEST

START_TEST(test_gemini_call_ids_kept)
{
    start(GEMINI, NULL);
    fake_ai_tool_calls(C.fake, "[{\"id\": \"call-a\", \"name\": \"add_task\","
                               "  \"args\": {\"title\": \"milk\"}},"
                               " {\"id\": \"call-b\", \"name\": \"add_task\","
                               "  \"args\": {\"title\": \"eggs\"}}]");
    fake_ai_text(C.fake, "Added both.");
    chat_result r1 = chat(ASK_TOOLS);
    assert_ok(r1);
    json_t *calls = json_object_get(r1.resp, "tool_calls");
    ck_assert_int_eq(json_array_size(calls), 2);
    ck_assert_str_eq(sget(json_array_get(calls, 0), "id"), "call-a");
    ck_assert_str_eq(sget(json_array_get(calls, 1), "id"), "call-b");
    static const char *const results[] = {"{\"id\": 1}", "{\"error\": \"duplicate\"}"};
    char *req = tool_round_request(r1.resp, results);
    chat_result r2 = chat(req);
    free(req);
    assert_ok(r2); /* functionResponse ids must match the calls' */
    assert_sent(2);
    result_free(&r1);
    result_free(&r2);
}
END_TEST

/* Tool schemas as JSON Schema generators write them: references, unions, type lists, allOf. */
START_TEST(test_gemini_json_schema_forms)
{
    start(GEMINI, NULL);
    fake_ai_text(C.fake, "ok");
    const char *ask =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"plan\"}], \"tools\": [{"
        " \"name\": \"plan\", \"parameters\": {"
        "  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"type\": \"object\","
        "  \"$defs\": {\"tag\": {\"type\": \"object\", \"title\": \"Tag\","
        "     \"properties\": {\"name\": {\"type\": \"string\", \"maxLength\": 50},"
        "       \"colour\": {\"type\": \"string\", \"pattern\": \"^#[0-9a-f]{6}$\"}},"
        "     \"required\": [\"name\"], \"additionalProperties\": false},"
        "   \"node\": {\"type\": \"object\", \"properties\": {\"title\": {\"type\": \"string\"},"
        "     \"children\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/node\"}}}},"
        "   \"a/b\": {\"type\": \"integer\", \"exclusiveMinimum\": 0}},"
        "  \"properties\": {"
        "   \"tags\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/tag\"},"
        "     \"uniqueItems\": true},"
        "   \"main\": {\"$ref\": \"#/$defs/tag\", \"description\": \"the main tag\"},"
        "   \"due\": {\"oneOf\": [{\"type\": \"string\", \"format\": \"date-time\"},"
        "     {\"type\": \"null\"}]},"
        "   \"note\": {\"type\": [\"string\", \"null\"], \"description\": \"optional\"},"
        "   \"size\": {\"type\": [\"integer\", \"string\"]},"
        "   \"owner\": {\"allOf\": [{\"$ref\": \"#/$defs/tag\"},"
        "     {\"properties\": {\"since\": {\"type\": \"string\"}}, \"required\": [\"since\"]}]},"
        "   \"tree\": {\"$ref\": \"#/$defs/node\"},"
        "   \"slash\": {\"$ref\": \"#/$defs/a~1b\"},"
        "   \"far\": {\"$ref\": \"https://example.com/schema.json\", \"type\": \"string\"}},"
        "  \"required\": [\"tags\", \"gone\"]}}]}";
    chat_result r = chat(ask);
    assert_ok(r); /* the fake refuses every field outside Gemini's Schema */
    assert_sent(1);
    json_t *b = fake_ai_request(C.fake, 0);
    json_t *params = json_object_get(
        json_array_get(pget(json_array_get(json_object_get(b, "tools"), 0), "functionDeclarations"),
                       0),
        "parameters");
    static const char *const gone[] = {"$ref",        "$defs",
                                       "oneOf",       "allOf",
                                       "$schema",     "additionalProperties",
                                       "uniqueItems", "exclusiveMinimum",
                                       NULL};
    for (int i = 0; gone[i]; i++)
        ck_assert_msg(!has_key_deep(params, gone[i]), "%s was sent: %s", gone[i], jdump(params));
    json_t *props = json_object_get(params, "properties");
    /* a reference is the definition, its limits kept; the keys beside it win */
    json_t *tag = json_object_get(json_object_get(props, "tags"), "items");
    ck_assert_str_eq(sget(tag, "type"), "object");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(json_object_get(tag, "properties"), "name"), "maxLength")),
                     50);
    ck_assert_msg(jeq(json_object_get(tag, "required"), "[\"name\"]"), "%s", jdump(tag));
    ck_assert_str_eq(sget(json_object_get(props, "main"), "description"), "the main tag");
    ck_assert_str_eq(sget(json_object_get(props, "slash"), "type"), "integer");
    /* unions */
    json_t *due = json_object_get(json_object_get(props, "due"), "anyOf");
    ck_assert_int_eq(json_array_size(due), 2);
    ck_assert_str_eq(sget(json_array_get(due, 0), "format"), "date-time");
    json_t *note = json_object_get(props, "note");
    ck_assert_str_eq(sget(note, "type"), "string");
    ck_assert(json_is_true(json_object_get(note, "nullable")));
    ck_assert_msg(jeq(json_object_get(json_object_get(props, "size"), "anyOf"),
                      "[{\"type\": \"integer\"}, {\"type\": \"string\"}]"),
                  "%s", jdump(json_object_get(props, "size")));
    /* allOf: one schema with both parts' properties and required */
    json_t *owner = json_object_get(props, "owner");
    ck_assert_ptr_nonnull(json_object_get(json_object_get(owner, "properties"), "name"));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(owner, "properties"), "since"));
    ck_assert_msg(jeq(json_object_get(owner, "required"), "[\"name\", \"since\"]"), "%s",
                  jdump(owner));
    /* a recursive definition is followed a bounded number of levels */
    json_t *node = json_object_get(props, "tree");
    int levels = 0;
    while (json_object_get(node, "properties")) {
        levels++;
        node = json_object_get(json_object_get(json_object_get(node, "properties"), "children"),
                               "items");
    }
    ck_assert_int_gt(levels, 2);
    ck_assert_int_lt(levels, 20);
    /* another document's schema cannot be read: the keys beside it remain */
    ck_assert_str_eq(sget(json_object_get(props, "far"), "type"), "string");
    /* required names only properties that exist */
    ck_assert_msg(jeq(json_object_get(params, "required"), "[\"tags\"]"), "%s",
                  jdump(json_object_get(params, "required")));
    result_free(&r);
}
END_TEST

/* Properties that each refer back to the root grow exponentially with the depth: the rewrite
 * stops at a budget, quickly, and still sends a schema Gemini takes. */
START_TEST(test_gemini_schema_bomb)
{
    start(GEMINI, NULL);
    fake_ai_text(C.fake, "ok");
    const char *ask =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{"
        " \"name\": \"bomb\", \"parameters\": {\"type\": \"object\", \"properties\": {"
        "  \"a\": {\"$ref\": \"#\"}, \"b\": {\"$ref\": \"#\"}, \"c\": {\"$ref\": \"#\"},"
        "  \"d\": {\"$ref\": \"#\"}, \"e\": {\"$ref\": \"#\"}, \"f\": {\"$ref\": \"#\"},"
        "  \"g\": {\"$ref\": \"#\"}, \"h\": {\"$ref\": \"#\"}}}}]}";
    chat_result r = chat(ask);
    assert_ok(r);
    assert_sent(1);
    ck_assert_msg(r.secs < 5, "the rewrite took %.1f s", r.secs);
    ck_assert_msg(strlen(fake_ai_request_body(C.fake, 0)) < 1000000, "a request of %zu bytes",
                  strlen(fake_ai_request_body(C.fake, 0)));
    result_free(&r);
}
END_TEST

START_TEST(test_gemini_error_in_array)
{
    start(GEMINI, NULL);
    fake_ai_raw(C.fake, 503, NULL,
                "[{\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\","
                " \"status\": \"UNAVAILABLE\"}}]");
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_UNAVAILABLE);
    ck_assert_int_eq(r.f.http_status, 503);
    ck_assert_msg(strstr(r.f.message, "overloaded") != NULL,
                  "the provider's message is not kept: %s", r.f.message);
}
END_TEST

/* A retryDelay no int64_t holds in ms is no delay, not undefined behaviour. */
START_TEST(test_gemini_retry_delay_out_of_range)
{
    static const char *const delays[] = {"1e300s", "infs", "nans", "-1s", "1000000001s"};
    start(GEMINI, NULL);
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"error\": {\"code\": 429, \"message\": \"Resource has been exhausted\","
                 " \"status\": \"RESOURCE_EXHAUSTED\", \"details\": [{\"@type\":"
                 " \"type.googleapis.com/google.rpc.RetryInfo\", \"retryDelay\": \"%s\"}]}}",
                 delays[i]);
        fake_ai_raw(C.fake, 429, NULL, body);
        chat_result r = chat(HI);
        assert_failed(r, TK_FAIL_RATE_LIMITED);
        ck_assert_msg(r.f.retry_after_ms == -1, "retryDelay %s gave %lld ms, want -1", delays[i],
                      (long long)r.f.retry_after_ms);
    }
}
END_TEST

/* Output tokens are candidates + thoughts; a sum past INT64_MAX stays there, not wrapped. */
START_TEST(test_gemini_usage_saturates)
{
    start(GEMINI, NULL);
    fake_ai_raw(C.fake, 200, NULL,
                "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hi\"}],"
                " \"role\": \"model\"}, \"finishReason\": \"STOP\"}], \"usageMetadata\":"
                " {\"promptTokenCount\": 3, \"candidatesTokenCount\": 9223372036854775807,"
                " \"thoughtsTokenCount\": 2}}");
    chat_result r = chat(HI);
    assert_ok(r);
    ck_assert_msg(jeq(json_object_get(r.resp, "usage"),
                      "{\"input_tokens\": 3, \"output_tokens\": 9223372036854775807}"),
                  "usage %s", jdump(json_object_get(r.resp, "usage")));
    result_free(&r);
}
END_TEST

/* ---- Cohere specifics ---------------------------------------------------------------------- */

START_TEST(test_cohere_invalid_arguments)
{
    start(COHERE, NULL);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"add_task\", \"raw_arguments\": \"{not json\"},"
                               " {\"name\": \"add_task\", \"raw_arguments\": \"[1, 2]\"},"
                               " {\"name\": \"list_tasks\", \"args\": {}}]");
    chat_result r = chat(ASK_TOOLS);
    assert_ok(r);
    assert_sent(1);
    ck_assert_str_eq(sget(r.resp, "finish_reason"), "tool_calls");
    json_t *calls = json_object_get(r.resp, "tool_calls");
    ck_assert_int_eq(json_array_size(calls), 3);
    for (size_t i = 0; i < 2; i++) {
        json_t *c = json_array_get(calls, i);
        ck_assert_msg(json_is_null(json_object_get(c, "arguments")),
                      "call %zu: invalid arguments must read \"arguments\": null", i);
        ck_assert_msg(sget(c, "arguments_error") && sget(c, "arguments_error")[0],
                      "call %zu: no arguments_error", i);
        ck_assert_msg(sget(c, "id") && sget(c, "id")[0], "call %zu has no id", i);
    }
    ck_assert_msg(jeq(json_object_get(json_array_get(calls, 2), "arguments"), "{}"),
                  "the valid call's arguments");
    ck_assert_ptr_null(json_object_get(json_array_get(calls, 2), "arguments_error"));
    result_free(&r);
}
END_TEST

START_TEST(test_cohere_finish_error)
{
    start(COHERE, NULL);
    fake_ai_finish_error(C.fake);
    chat_result r = chat(HI);
    ck_assert_msg(r.rc < 0, "finish_reason ERROR with HTTP 200 must be a failure");
    ck_assert_msg(r.f.kind != TK_FAIL_NONE, "failure without a kind");
    ck_assert_int_eq(r.f.http_status, 200);
    assert_sent(1);
}
END_TEST

START_TEST(test_cohere_finish_timeout)
{
    start(COHERE, NULL);
    fake_ai_text_finish(C.fake, "", "TIMEOUT");
    chat_result r = chat(HI);
    ck_assert_msg(r.rc < 0, "finish_reason TIMEOUT with HTTP 200 must be a failure");
    ck_assert_msg(r.f.kind != TK_FAIL_NONE && r.f.kind != TK_FAIL_BAD_REQUEST &&
                      r.f.kind != TK_FAIL_AUTH,
                  "a provider-side timeout must be retryable, got kind %d", (int)r.f.kind);
    assert_sent(1);
}
END_TEST

START_TEST(test_cohere_tool_plan_not_text)
{
    start(COHERE, NULL);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"list_tasks\", \"args\": {}}]");
    chat_result r = chat(ASK_TOOLS);
    assert_ok(r);
    ck_assert_msg(json_is_string(json_object_get(r.resp, "text")), "text must be a string");
    ck_assert_str_eq(sget(json_array_get(json_object_get(r.resp, "tool_calls"), 0), "name"),
                     "list_tasks");
    result_free(&r);
}
END_TEST

START_TEST(test_cohere_trial_limit)
{
    start(COHERE, NULL);
    fake_ai_daily_quota(C.fake); /* 429 "... limited to 1000 API calls / month" */
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_RATE_LIMITED);
    ck_assert_int_eq(r.f.http_status, 429);
    assert_sent(1);
}
END_TEST

START_TEST(test_cohere_round_after_invalid_arguments)
{
    start(COHERE, NULL);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"add_task\", \"raw_arguments\": \"{not json\"}]");
    fake_ai_text(C.fake, "Sorry, let me retry.");
    chat_result r1 = chat(ASK_TOOLS);
    assert_ok(r1);
    /* the caller answers the broken call with an error result, as the document says */
    static const char *const results[] = {"{\"error\": \"arguments are not valid JSON\"}"};
    char *req = tool_round_request(r1.resp, results);
    chat_result r2 = chat(req);
    free(req);
    assert_ok(r2);
    assert_sent(2);
    json_t *tc = json_array_get(
        json_object_get(json_array_get(json_object_get(fake_ai_request(C.fake, 1), "messages"), 2),
                        "tool_calls"),
        0);
    ck_assert_msg(json_is_string(json_object_get(json_object_get(tc, "function"), "arguments")),
                  "arguments must travel as a string");
    result_free(&r1);
    result_free(&r2);
}
END_TEST

/* ---- OpenAI-compatible specifics -------------------------------------------------------- */

START_TEST(test_openai_no_key)
{
    /* a local server: no key configured, none wanted */
    int rc = start_fake_key(OPENAI, NULL, "{\"api_key\": \"\"}");
    ck_assert_msg(rc == TK_OK, "init with an empty api_key failed: %d", rc);
    fake_ai_text(C.fake, "local hello");
    chat_result r = chat(HI);
    assert_ok(r);
    assert_sent(1);
    ck_assert_str_eq(sget(r.resp, "text"), "local hello");
    json_t *h = fake_ai_request_headers(C.fake, 0);
    ck_assert_msg(json_object_get(h, "authorization") == NULL,
                  "an empty key must send no Authorization header, sent \"%s\"",
                  sget(h, "authorization"));
    result_free(&r);
}
END_TEST

START_TEST(test_openai_no_key_but_server_wants_one)
{
    int rc = start_cfg(OPENAI, "{\"api_key\": \"\"}");
    ck_assert_msg(rc == TK_OK, "init with an empty api_key failed: %d", rc);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_AUTH);
    ck_assert_int_eq(r.f.http_status, 401);
    ck_assert_msg(strstr(r.f.message, "api_key") != NULL, "the message does not name api_key: %s",
                  r.f.message);
    ck_assert_int_eq(fake_ai_count(C.fake), 1); /* the server decides, not the plugin */
}
END_TEST

START_TEST(test_openai_default_config)
{
    load(OPENAI);
    const tk_config_field *fl = field("base_url");
    ck_assert_str_eq(fl->default_json, "\"http://127.0.0.1:8080\"");
    ck_assert_str_eq(field("model")->default_json, "\"llama3.1\"");
    ck_assert_str_eq(field("api_key")->default_json, "\"\"");
    ck_assert_str_eq(field("timeout_ms")->default_json, "30000");
    ck_assert_str_eq(field("temperature")->default_json, "0.7");
    ck_assert_str_eq(field("max_tokens")->default_json, "1024");
}
END_TEST

START_TEST(test_openai_arguments_object)
{
    start(OPENAI, NULL);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"add_task\", \"args\": {\"title\": \"milk\"},"
                               "  \"object_arguments\": true}]");
    chat_result r = chat(ASK_TOOLS);
    assert_ok(r);
    json_t *c = json_array_get(json_object_get(r.resp, "tool_calls"), 0);
    ck_assert_str_eq(sget(c, "name"), "add_task");
    ck_assert_msg(jeq(json_object_get(c, "arguments"), "{\"title\": \"milk\"}"),
                  "arguments sent as an object: %s", jdump(json_object_get(c, "arguments")));
    ck_assert_ptr_null(json_object_get(c, "arguments_error"));
    /* the next turn sends them back as a string, as the real API wants */
    fake_ai_text(C.fake, "Added.");
    static const char *const results[] = {"{\"id\": 1}"};
    char *req = tool_round_request(r.resp, results);
    chat_result r2 = chat(req);
    free(req);
    assert_ok(r2);
    assert_sent(2);
    json_t *tc = json_array_get(
        json_object_get(json_array_get(json_object_get(fake_ai_request(C.fake, 1), "messages"), 2),
                        "tool_calls"),
        0);
    json_t *args = json_loads(sget(json_object_get(tc, "function"), "arguments"), 0, NULL);
    ck_assert_msg(jeq(args, "{\"title\": \"milk\"}"), "arguments string");
    json_decref(args);
    result_free(&r);
    result_free(&r2);
}
END_TEST

START_TEST(test_openai_missing_ids_generated)
{
    start(OPENAI, NULL);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"add_task\", \"args\": {\"title\": \"a\"},"
                               "  \"no_id\": true},"
                               " {\"name\": \"add_task\", \"args\": {\"title\": \"b\"},"
                               "  \"no_id\": true},"
                               " {\"id\": \"dup\", \"name\": \"list_tasks\", \"args\": {}},"
                               " {\"id\": \"dup\", \"name\": \"list_tasks\", \"args\": {}}]");
    fake_ai_text(C.fake, "Done.");
    chat_result r = chat(ASK_TOOLS);
    assert_ok(r);
    json_t *calls = json_object_get(r.resp, "tool_calls");
    ck_assert_int_eq(json_array_size(calls), 4);
    for (size_t i = 0; i < 4; i++) {
        const char *id = sget(json_array_get(calls, i), "id");
        ck_assert_msg(id && id[0], "call %zu has no id", i);
        for (size_t k = 0; k < i; k++)
            ck_assert_msg(strcmp(id, sget(json_array_get(calls, k), "id")) != 0,
                          "calls %zu and %zu share the id %s", k, i, id);
    }
    ck_assert_str_eq(sget(json_array_get(calls, 2), "id"), "dup"); /* a given id is kept */
    /* the generated ids go back with the results, and the fake accepts the pairing */
    static const char *const results[] = {"{\"id\": 1}", "{\"id\": 2}", "{\"tasks\": []}",
                                          "{\"tasks\": []}"};
    char *req = tool_round_request(r.resp, results);
    chat_result r2 = chat(req);
    free(req);
    assert_ok(r2);
    assert_sent(2);
    result_free(&r);
    result_free(&r2);
}
END_TEST

START_TEST(test_openai_calls_under_finish_stop)
{
    start(OPENAI, NULL);
    /* llama.cpp and Ollama say "stop" beside tool calls */
    fake_ai_tool_calls_finish(C.fake, "[{\"name\": \"list_tasks\", \"args\": {}}]", "stop");
    chat_result r = chat(ASK_TOOLS);
    assert_ok(r);
    ck_assert_str_eq(sget(r.resp, "finish_reason"), "tool_calls");
    ck_assert_int_eq(json_array_size(json_object_get(r.resp, "tool_calls")), 1);
    ck_assert_str_eq(sget(r.resp, "text"), ""); /* content null */
    result_free(&r);
}
END_TEST

START_TEST(test_openai_invalid_arguments)
{
    start(OPENAI, NULL);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"add_task\", \"raw_arguments\": \"{not json\"},"
                               " {\"name\": \"add_task\", \"raw_arguments\": \"[1, 2]\"},"
                               " {\"name\": \"list_tasks\", \"raw_arguments\": \"\"}]");
    fake_ai_text(C.fake, "Sorry, let me retry.");
    chat_result r = chat(ASK_TOOLS);
    assert_ok(r);
    json_t *calls = json_object_get(r.resp, "tool_calls");
    ck_assert_int_eq(json_array_size(calls), 3);
    for (size_t i = 0; i < 2; i++) {
        json_t *c = json_array_get(calls, i);
        ck_assert_msg(json_is_null(json_object_get(c, "arguments")),
                      "call %zu: invalid arguments must read \"arguments\": null", i);
        ck_assert_msg(sget(c, "arguments_error") && sget(c, "arguments_error")[0],
                      "call %zu: no arguments_error", i);
    }
    ck_assert_msg(jeq(json_object_get(json_array_get(calls, 2), "arguments"), "{}"),
                  "empty arguments are no arguments");
    /* the caller answers the broken calls with errors; the round trip is valid */
    static const char *const results[] = {"{\"error\": \"arguments are not valid JSON\"}",
                                          "{\"error\": \"arguments are not an object\"}",
                                          "{\"tasks\": []}"};
    char *req = tool_round_request(r.resp, results);
    chat_result r2 = chat(req);
    free(req);
    assert_ok(r2);
    assert_sent(2);
    result_free(&r);
    result_free(&r2);
}
END_TEST

START_TEST(test_openai_string_error_body)
{
    start(OPENAI, NULL);
    /* Ollama: {"error": "text"} */
    fake_ai_raw(C.fake, 404, NULL,
                "{\"error\": \"model \\\"m\\\" not found, try pulling it first\"}");
    /* vLLM: {"object": "error", "message", "type", "code"} */
    fake_ai_raw(C.fake, 400, NULL,
                "{\"object\": \"error\", \"message\": \"This model's maximum context length is "
                "8192 tokens\", \"type\": \"BadRequestError\", \"param\": null, \"code\": 400}");
    /* llama.cpp: numeric code */
    fake_ai_error(C.fake, 503, -1);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_BAD_REQUEST);
    ck_assert_int_eq(r.f.http_status, 404);
    ck_assert_msg(strstr(r.f.message, "try pulling it first") != NULL,
                  "the server's message is not kept: %s", r.f.message);
    r = chat(HI);
    assert_failed(r, TK_FAIL_BAD_REQUEST);
    ck_assert_msg(strstr(r.f.message, "maximum context length") != NULL, "%s", r.f.message);
    r = chat(HI);
    assert_failed(r, TK_FAIL_UNAVAILABLE);
    ck_assert_int_eq(r.f.http_status, 503);
    ck_assert_msg(strstr(r.f.message, "Loading model") != NULL, "%s", r.f.message);
    assert_sent(3);
}
END_TEST

START_TEST(test_openai_status_mapping)
{
    start(OPENAI, NULL);
    fake_ai_error(C.fake, 422, -1);
    fake_ai_error(C.fake, 403, -1);
    fake_ai_error(C.fake, 401, -1);
    fake_ai_raw(C.fake, 408, NULL, "{\"error\": {\"message\": \"request timeout\"}}");
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_BAD_REQUEST);
    ck_assert_int_eq(r.f.http_status, 422);
    r = chat(HI);
    assert_failed(r, TK_FAIL_AUTH);
    ck_assert_int_eq(r.f.http_status, 403);
    r = chat(HI);
    assert_failed(r, TK_FAIL_AUTH);
    /* OpenAI quotes the key back masked: not kept */
    ck_assert_msg(strstr(r.f.message, "sk-fa") == NULL, "a masked key is kept: %s", r.f.message);
    r = chat(HI);
    assert_failed(r, TK_FAIL_UNAVAILABLE);
    ck_assert_int_eq(r.f.http_status, 408);
    assert_sent(4);
}
END_TEST

START_TEST(test_openai_insufficient_quota_fails_fast)
{
    start(OPENAI, NULL);
    fake_ai_daily_quota(C.fake);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_RATE_LIMITED);
    ck_assert_int_eq(r.f.http_status, 429);
    ck_assert_int_eq(r.f.fail_fast, 1);
    assert_sent(1);
}
END_TEST

START_TEST(test_openai_reasoning_not_in_text)
{
    start(OPENAI, NULL);
    fake_ai_thought(C.fake, "The answer is 4.");
    chat_result r = chat(HI);
    assert_ok(r);
    ck_assert_str_eq(sget(r.resp, "text"), "The answer is 4.");
    result_free(&r);
}
END_TEST

START_TEST(test_openai_content_filter_and_error_200)
{
    start(OPENAI, NULL);
    fake_ai_blocked(C.fake);
    fake_ai_finish_error(C.fake);
    chat_result r = chat(HI);
    assert_failed(r, TK_FAIL_BLOCKED);
    r = chat(HI);
    assert_failed(r, TK_FAIL_UNAVAILABLE);
    ck_assert_int_eq(r.f.http_status, 200);
    ck_assert_msg(strstr(r.f.message, "crashed") != NULL, "%s", r.f.message);
    assert_sent(2);
}
END_TEST

START_TEST(test_openai_content_parts_and_usage)
{
    start(OPENAI, NULL);
    fake_ai_raw(C.fake, 200, NULL,
                "{\"id\": \"x\", \"object\": \"chat.completion\", \"choices\": [{\"index\": 0,"
                " \"message\": {\"role\": \"assistant\", \"content\": [{\"type\": \"text\","
                " \"text\": \"Hel\"}, {\"type\": \"text\", \"text\": \"lo\"}]},"
                " \"finish_reason\": null}], \"usage\": {\"prompt_tokens\": 3,"
                " \"completion_tokens\": 2, \"total_tokens\": 5}}");
    chat_result r = chat(HI);
    assert_ok(r);
    ck_assert_str_eq(sget(r.resp, "text"), "Hello");
    ck_assert_str_eq(sget(r.resp, "finish_reason"), "stop");
    ck_assert_msg(
        jeq(json_object_get(r.resp, "usage"), "{\"input_tokens\": 3, \"output_tokens\": 2}"),
        "usage %s", jdump(json_object_get(r.resp, "usage")));
    result_free(&r);
}
END_TEST

/* Token counts no int64_t holds are 0; integers past 2^53 are kept exactly. */
START_TEST(test_usage_out_of_range)
{
    start(_i == 0 ? COHERE : OPENAI, NULL);
    fake_ai_raw(C.fake, 200, NULL,
                _i == 0
                    ? "{\"id\": \"x\", \"finish_reason\": \"COMPLETE\", \"message\": {\"role\":"
                      " \"assistant\", \"content\": [{\"type\": \"text\", \"text\": \"hi\"}]},"
                      " \"usage\": {\"billed_units\": {\"input_tokens\": 1e300, \"output_tokens\":"
                      " 9223372036854775807}}}"
                    : "{\"id\": \"x\", \"object\": \"chat.completion\", \"choices\": [{\"index\":"
                      " 0, \"message\": {\"role\": \"assistant\", \"content\": \"hi\"},"
                      " \"finish_reason\": \"stop\"}], \"usage\": {\"prompt_tokens\": -1e300,"
                      " \"completion_tokens\": 9223372036854775807}}");
    chat_result r = chat(HI);
    assert_ok(r);
    ck_assert_msg(jeq(json_object_get(r.resp, "usage"),
                      "{\"input_tokens\": 0, \"output_tokens\": 9223372036854775807}"),
                  "usage %s", jdump(json_object_get(r.resp, "usage")));
    result_free(&r);
}
END_TEST

/* ---- the fake itself: it refuses what the real service refuses ----------------------------- */

static long post(const char *path, const char *const *headers, const char *body, char **out)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", fake_ai_base_url(C.fake), path);
    th_response r;
    ck_assert_int_eq(th_http("POST", url, body, strlen(body), headers, &r), 0);
    long s = r.status;
    if (out)
        *out = strdup(r.body ? r.body : "");
    th_response_free(&r);
    return s;
}

#define GPATH "/v1beta/models/m:generateContent"
static const char *const GH[] = {"x-goog-api-key: " KEY, "Content-Type: application/json", NULL};
static const char *const CH[] = {"Authorization: Bearer " KEY, "Content-Type: application/json",
                                 NULL};

START_TEST(test_fake_gemini_validates)
{
    C.fake = fake_ai_start(FAKE_GEMINI, KEY);
    ck_assert_ptr_nonnull(C.fake);
    const char *hi = "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"hi\"}]}]}";
    char *out;
    ck_assert_int_eq(post(GPATH, GH, hi, &out), 200);
    json_t *j = jparse(out);
    ck_assert_str_eq(
        sget(json_array_get(json_object_get(
                                json_object_get(json_array_get(json_object_get(j, "candidates"), 0),
                                                "content"),
                                "parts"),
                            0),
             "text"),
        "ok");
    json_decref(j);
    free(out);
    static const char *const wrong[] = {"x-goog-api-key: nope", NULL};
    ck_assert_int_eq(post(GPATH, wrong, hi, &out), 400);
    ck_assert_msg(strstr(out, "API_KEY_INVALID") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(post(GPATH, NULL, hi, NULL), 403);
    ck_assert_int_eq(post("/v1/models/m:generateContent", GH, hi, NULL), 404);
    static const char *const bad[] = {
        "not json",
        "{\"contents\": []}",
        "{\"contents\": [{\"role\": \"system\", \"parts\": [{\"text\": \"x\"}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\", \"functionCall\":"
        " {\"name\": \"f\"}}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]}], \"max_tokens\": 3}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]}],"
        " \"tools\": [{\"functionDeclarations\": [{\"name\": \"f\", \"parameters\":"
        " {\"type\": \"object\", \"additionalProperties\": false}}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]},"
        " {\"role\": \"model\", \"parts\": [{\"functionCall\": {\"name\": \"f\", \"args\": {}}}]},"
        " {\"role\": \"user\", \"parts\": [{\"functionResponse\": {\"name\": \"f\","
        " \"response\": \"done\"}}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]},"
        " {\"role\": \"model\", \"parts\": [{\"functionCall\": {\"name\": \"f\", \"args\": {}}},"
        " {\"functionCall\": {\"name\": \"f\", \"args\": {}}}]},"
        " {\"role\": \"user\", \"parts\": [{\"functionResponse\": {\"name\": \"f\","
        " \"response\": {}}}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]}],"
        " \"systemInstruction\": {\"parts\": [{\"functionCall\": {\"name\": \"f\"}}]}}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]}],"
        " \"tools\": [{\"functionDeclarations\": [{\"name\": \"f\", \"parameters\":"
        " {\"type\": \"object\", \"properties\": {}}}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]}],"
        " \"tools\": [{\"functionDeclarations\": [{\"name\": \"f\", \"parameters\":"
        " {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"array\"}}}}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]}],"
        " \"tools\": [{\"functionDeclarations\": [{\"name\": \"f\", \"parameters\":"
        " {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}},"
        " \"required\": [\"b\"]}}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]}],"
        " \"tools\": [{\"functionDeclarations\": [{\"name\": \"f\", \"parameters\":"
        " {\"type\": \"object\", \"properties\": {\"a\": {\"type\": [\"string\", \"null\"]}}}}]}]}",
        "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]}],"
        " \"tools\": [{\"functionDeclarations\": [{\"name\": \"f\", \"parameters\":"
        " {\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#/$defs/a\"}}}}]}]}",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int before = fake_ai_violation_count(C.fake);
        ck_assert_msg(post(GPATH, GH, bad[k], &out) == 400, "accepted: %s", bad[k]);
        ck_assert_msg(strstr(out, "INVALID_ARGUMENT") != NULL, "not Gemini's shape: %s", out);
        ck_assert_int_eq(fake_ai_violation_count(C.fake), before + 1);
        free(out);
    }
    /* a signature must come back unchanged */
    fake_ai_tool_calls(C.fake, "[{\"name\": \"f\", \"args\": {\"a\": 1}}]");
    ck_assert_int_eq(post(GPATH, GH, hi, &out), 200);
    j = jparse(out);
    free(out);
    json_t *part = json_array_get(
        json_object_get(
            json_object_get(json_array_get(json_object_get(j, "candidates"), 0), "content"),
            "parts"),
        0);
    ck_assert_str_eq(sget(pget(part, "functionCall"), "name"), "f");
    const char *sig = sget(part, "thoughtSignature");
    ck_assert_ptr_nonnull(sig);
    char good[1024], changed[1024], missing[1024];
    const char *fmt = "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"x\"}]},"
                      " {\"role\": \"model\", \"parts\": [{\"functionCall\": {\"name\": \"f\","
                      " \"args\": {\"a\": 1}}%s%s%s}]},"
                      " {\"role\": \"user\", \"parts\": [{\"functionResponse\": {\"name\": \"f\","
                      " \"response\": {\"result\": 1}}}]}]}";
    snprintf(good, sizeof(good), fmt, ", \"thoughtSignature\": \"", sig, "\"");
    snprintf(changed, sizeof(changed), fmt, ", \"thoughtSignature\": \"", "AAAA", "\"");
    snprintf(missing, sizeof(missing), fmt, "", "", "");
    json_decref(j);
    ck_assert_int_eq(post(GPATH, GH, changed, NULL), 400);
    ck_assert_int_eq(post(GPATH, GH, missing, NULL), 400);
    ck_assert_int_eq(post(GPATH, GH, good, NULL), 200);
    /* errors in the real shape */
    fake_ai_error(C.fake, 429, 3.7);
    ck_assert_int_eq(post(GPATH, GH, hi, &out), 429);
    ck_assert_msg(strstr(out, "\"retryDelay\":\"3.7s\"") && strstr(out, "RESOURCE_EXHAUSTED"), "%s",
                  out);
    free(out);
}
END_TEST

START_TEST(test_fake_cohere_validates)
{
    C.fake = fake_ai_start(FAKE_COHERE, KEY);
    ck_assert_ptr_nonnull(C.fake);
    const char *hi =
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    char *out;
    ck_assert_int_eq(post("/v2/chat", CH, hi, &out), 200);
    json_t *j = jparse(out);
    ck_assert_str_eq(sget(j, "finish_reason"), "COMPLETE");
    ck_assert_str_eq(cohere_text(json_object_get(json_object_get(j, "message"), "content")), "ok");
    json_decref(j);
    free(out);
    static const char *const wrong[] = {"Authorization: Bearer nope", NULL};
    ck_assert_int_eq(post("/v2/chat", wrong, hi, &out), 401);
    ck_assert_msg(strstr(out, "invalid api token") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(post("/v1/chat", CH, hi, NULL), 404);
    static const char *const bad[] = {
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"model\", \"content\": \"hi\"}]}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
        "  \"function\": {\"name\": \"f\", \"arguments\": {}}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"1\"}]}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
        "  \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c2\", \"content\": \"1\"}]}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
        " \"tools\": [{\"type\": \"fn\", \"function\": {\"name\": \"f\"}}]}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\","
        "  \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": {\"a\": 1}}]}",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        ck_assert_msg(post("/v2/chat", CH, bad[k], &out) == 400, "accepted: %s", bad[k]);
        j = jparse(out);
        ck_assert_msg(sget(j, "id") && sget(j, "message"), "not Cohere's shape: %s", out);
        json_decref(j);
        free(out);
    }
    fake_ai_error(C.fake, 429, 1.2);
    th_response r;
    char url[256];
    snprintf(url, sizeof(url), "%s/v2/chat", fake_ai_base_url(C.fake));
    ck_assert_int_eq(th_http("POST", url, hi, strlen(hi), CH, &r), 0);
    ck_assert_int_eq(r.status, 429);
    char *ra = th_header(&r, "retry-after");
    ck_assert_str_eq(ra ? ra : "(none)", "2");
    free(ra);
    th_response_free(&r);
}
END_TEST

static const char *const OH[] = {"Authorization: Bearer " KEY, "Content-Type: application/json",
                                 NULL};
#define OPATH "/v1/chat/completions"

START_TEST(test_fake_openai_validates)
{
    C.fake = fake_ai_start(FAKE_OPENAI, KEY);
    ck_assert_ptr_nonnull(C.fake);
    const char *hi =
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    char *out;
    ck_assert_int_eq(post(OPATH, OH, hi, &out), 200);
    json_t *j = jparse(out);
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    ck_assert_str_eq(sget(choice, "finish_reason"), "stop");
    ck_assert_str_eq(sget(json_object_get(choice, "message"), "content"), "ok");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")),
        FAKE_AI_IN_TOKENS);
    json_decref(j);
    free(out);
    static const char *const wrong[] = {"Authorization: Bearer nope-nope-nope", NULL};
    ck_assert_int_eq(post(OPATH, wrong, hi, &out), 401);
    ck_assert_msg(strstr(out, "invalid_api_key") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(post(OPATH, NULL, hi, NULL), 401);
    ck_assert_int_eq(post("/v1/completions", OH, hi, NULL), 404);
    static const char *const bad[] = {
        "not json",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
        "{\"model\": \"m\", \"messages\": []}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"model\", \"content\": \"hi\"}]}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
        " \"stream\": true}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
        " \"max_output_tokens\": 5}",
        /* arguments as an object */
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
        "  \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {}}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"1\"}]}",
        /* a result for a call that was not made */
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
        "  \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c2\", \"content\": \"1\"}]}",
        /* a call left without a result */
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
        "  \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]},"
        " {\"role\": \"user\", \"content\": \"and?\"}]}",
        /* tool content an object, not a string */
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
        "  \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": {\"a\": 1}}]}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
        " \"tools\": [{\"type\": \"fn\", \"function\": {\"name\": \"f\"}}]}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
        " \"tool_choice\": \"auto\"}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
        " \"temperature\": 3}",
        "{\"model\": \"m\", \"messages\": [{\"role\": \"assistant\"}]}",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int before = fake_ai_violation_count(C.fake);
        ck_assert_msg(post(OPATH, OH, bad[k], &out) == 400, "accepted: %s", bad[k]);
        j = jparse(out);
        ck_assert_msg(sget(json_object_get(j, "error"), "message"), "not OpenAI's shape: %s", out);
        json_decref(j);
        ck_assert_int_eq(fake_ai_violation_count(C.fake), before + 1);
        free(out);
    }
    const char *round =
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
        "  \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"{\\\"a\\\": 1}\"}],"
        " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\","
        " \"parameters\": {\"type\": \"object\", \"properties\": {}}}}], \"tool_choice\": "
        "\"auto\"}";
    ck_assert_int_eq(post(OPATH, OH, round, NULL), 200);
    fake_ai_tool_calls(C.fake, "[{\"name\": \"f\", \"args\": {\"a\": 1}}]");
    ck_assert_int_eq(post(OPATH, OH, hi, &out), 200);
    j = jparse(out);
    choice = json_array_get(json_object_get(j, "choices"), 0);
    ck_assert_str_eq(sget(choice, "finish_reason"), "tool_calls");
    json_t *tc =
        json_array_get(json_object_get(json_object_get(choice, "message"), "tool_calls"), 0);
    ck_assert_msg(sget(tc, "id") != NULL, "a call has an id");
    ck_assert_str_eq(sget(json_object_get(tc, "function"), "arguments"), "{\"a\":1}");
    json_decref(j);
    free(out);
    /* errors in the real shape, Retry-After in whole seconds */
    fake_ai_error(C.fake, 429, 1.2);
    th_response r;
    char url[256];
    snprintf(url, sizeof(url), "%s" OPATH, fake_ai_base_url(C.fake));
    ck_assert_int_eq(th_http("POST", url, hi, strlen(hi), OH, &r), 0);
    ck_assert_int_eq(r.status, 429);
    char *ra = th_header(&r, "retry-after");
    ck_assert_str_eq(ra ? ra : "(none)", "2");
    free(ra);
    ck_assert_msg(strstr(r.body, "rate_limit_exceeded") != NULL, "%s", r.body);
    th_response_free(&r);
}
END_TEST

START_TEST(test_fake_openai_keyless)
{
    C.fake = fake_ai_start(FAKE_OPENAI, NULL);
    ck_assert_ptr_nonnull(C.fake);
    const char *hi =
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    static const char *const plain[] = {"Content-Type: application/json", NULL};
    ck_assert_int_eq(post(OPATH, plain, hi, NULL), 200);
    ck_assert_int_eq(post(OPATH, OH, hi, NULL), 200); /* any key is fine too */
    ck_assert_int_eq(fake_ai_violation_count(C.fake), 0);
}
END_TEST

static void *hanging_post(void *arg)
{
    const char *body =
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}";
    th_response r;
    th_http("POST", arg, body, strlen(body), CH, &r); /* cut short by the fake's stop */
    th_response_free(&r);
    return NULL;
}

START_TEST(test_fake_records_and_stops_hanging)
{
    C.fake = fake_ai_start(FAKE_COHERE, KEY);
    ck_assert_ptr_nonnull(C.fake);
    fake_ai_hang(C.fake, 60000);
    ck_assert_int_eq(fake_ai_pending(C.fake), 1);
    char url[256];
    snprintf(url, sizeof(url), "%s/v2/chat", fake_ai_base_url(C.fake));
    double t0 = th_now_s();
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, hanging_post, url), 0);
    ck_assert_int_eq(fake_ai_wait_count(C.fake, 1, 5000), 1);
    ck_assert_int_eq(fake_ai_count(C.fake), 1);
    ck_assert_str_eq(fake_ai_request_path(C.fake, 0), "/v2/chat");
    ck_assert_str_eq(sget(fake_ai_request(C.fake, 0), "model"), "m");
    double at = fake_ai_request_time(C.fake, 0);
    ck_assert_msg(at >= t0 && at <= th_now_s(), "arrival time %f not in [%f, now]", at, t0);
    ck_assert_int_eq(fake_ai_request_status(C.fake, 0), 0); /* still hanging */
    ck_assert_int_eq(fake_ai_wait_count(C.fake, 2, 100), 0);
    double s0 = th_now_s();
    fake_ai_stop(C.fake);
    C.fake = NULL;
    ck_assert_msg(th_now_s() - s0 < 3.0, "stop took %.2f s with a hanging reply", th_now_s() - s0);
    pthread_join(t, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("providers");
    TCase *both = tcase_create("every provider");
    tcase_set_timeout(both, 30);
    tcase_add_checked_fixture(both, setup, teardown);
    tcase_add_loop_test(both, test_descriptor, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_plain_text, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_max_tokens_finish, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_one_tool_call, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_several_tool_calls, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_tool_round, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_settings_from_config_and_request, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_rate_limited_with_delay, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_rate_limited_without_delay, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_unavailable, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_bad_request, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_timeout, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_connection_refused, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_bad_key, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_forbidden, 0, NPROVIDERS);
    /* OpenAI-compatible: an empty key is no error (test_openai_no_key) */
    tcase_add_loop_test(both, test_empty_key, 0, OPENAI);
    tcase_add_loop_test(both, test_malformed_request, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_garbage_answer, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_concurrent_calls, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_key_never_in_message, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_conversation_turns, 0, NPROVIDERS);
    tcase_add_loop_test(both, test_base_url_trailing_slash, 0, NPROVIDERS);
    suite_add_tcase(s, both);

    TCase *g = tcase_create("gemini");
    tcase_set_timeout(g, 30);
    tcase_add_checked_fixture(g, setup, teardown);
    tcase_add_test(g, test_gemini_daily_quota_fails_fast);
    tcase_add_test(g, test_gemini_blocked_prompt);
    tcase_add_test(g, test_gemini_safety_finish);
    tcase_add_test(g, test_gemini_thoughts_not_in_text);
    tcase_add_test(g, test_gemini_call_ids_kept);
    tcase_add_test(g, test_gemini_error_in_array);
    tcase_add_test(g, test_gemini_schema_bomb);
    tcase_add_test(g, test_gemini_retry_delay_out_of_range);
    tcase_add_test(g, test_gemini_usage_saturates);
    tcase_add_test(g, test_gemini_json_schema_forms);
    suite_add_tcase(s, g);

    TCase *c = tcase_create("cohere");
    tcase_set_timeout(c, 30);
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, test_cohere_invalid_arguments);
    tcase_add_test(c, test_cohere_finish_error);
    tcase_add_test(c, test_cohere_finish_timeout);
    tcase_add_test(c, test_cohere_tool_plan_not_text);
    tcase_add_test(c, test_cohere_round_after_invalid_arguments);
    tcase_add_test(c, test_cohere_trial_limit);
    suite_add_tcase(s, c);

    TCase *o = tcase_create("openai");
    tcase_set_timeout(o, 30);
    tcase_add_checked_fixture(o, setup, teardown);
    tcase_add_test(o, test_openai_no_key);
    tcase_add_test(o, test_openai_no_key_but_server_wants_one);
    tcase_add_test(o, test_openai_default_config);
    tcase_add_test(o, test_openai_arguments_object);
    tcase_add_test(o, test_openai_missing_ids_generated);
    tcase_add_test(o, test_openai_calls_under_finish_stop);
    tcase_add_test(o, test_openai_invalid_arguments);
    tcase_add_test(o, test_openai_string_error_body);
    tcase_add_test(o, test_openai_status_mapping);
    tcase_add_test(o, test_openai_insufficient_quota_fails_fast);
    tcase_add_test(o, test_openai_reasoning_not_in_text);
    tcase_add_test(o, test_openai_content_filter_and_error_200);
    tcase_add_test(o, test_openai_content_parts_and_usage);
    tcase_add_loop_test(o, test_usage_out_of_range, 0, 2); /* Cohere, OpenAI */
    suite_add_tcase(s, o);

    TCase *f = tcase_create("fake servers");
    tcase_set_timeout(f, 30);
    tcase_add_checked_fixture(f, setup, teardown);
    tcase_add_test(f, test_fake_gemini_validates);
    tcase_add_test(f, test_fake_cohere_validates);
    tcase_add_test(f, test_fake_openai_validates);
    tcase_add_test(f, test_fake_openai_keyless);
    tcase_add_test(f, test_fake_records_and_stops_hanging);
    suite_add_tcase(s, f);
    return th_run_suite(s);
}
