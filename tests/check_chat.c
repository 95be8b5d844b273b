/*
 * The assistant end to end: taskorad with the http_api plugin and both provider plugins,
 * talking over real HTTP to fake Gemini and Cohere servers (tests/fake_ai.c), a real
 * PostgreSQL and the embedded Kafka-protocol cluster.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake_ai.h"
#include "testhelp.h"

#define GEMINI_KEY "gk-test-4f1d9c7a2b"
#define COHERE_KEY "ck-test-8e3a61f0c5"

static char dbname[64], dburl[1024];
static char *dir;

/* Per test (each runs in its own process). */
static fake_ai *gemini, *cohere;
static th_daemon d;
static char token[1024];
static int uid;

/* ---- HTTP -------------------------------------------------------------------------------- */

typedef struct reply {
    long status;
    json_t *json;
    char *retry_after;
    char body[4096];
} reply;

static reply call(const char *method, const char *path, const char *body, const char *tok)
{
    char auth[1100];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok ? tok : "");
    const char *h[] = {"Content-Type: application/json", tok ? auth : NULL, NULL};
    th_response r;
    char url[512];
    snprintf(url, sizeof(url), "%s%s", d.url, path);
    ck_assert_int_eq(th_http(method, url, body, body ? strlen(body) : 0, h, &r), 0);
    reply out = {.status = r.status};
    out.json = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    out.retry_after = th_header(&r, "retry-after");
    snprintf(out.body, sizeof(out.body), "%s", r.body ? r.body : "");
    th_response_free(&r);
    return out;
}

static reply chat(const char *body)
{
    return call("POST", th_fmt("/api/%d/chat", uid), body, token);
}

static void reply_free(reply *r)
{
    json_decref(r->json);
    free(r->retry_after);
}

/* ---- a taskorad with both providers ---------------------------------------------------------- */

typedef struct setup {
    const char *provider;   /* ai_provider */
    const char *fallback;   /* JSON array text, e.g. "[\"cohere\"]" */
    const char *gemini_key; /* "" for none */
    int timeout_ms;         /* provider attempt timeout */
    const char *resiliency; /* JSON object text */
    const char *limits;     /* the API's "limits" object, JSON text */
} setup;

static void start(setup s)
{
    gemini = fake_ai_start(FAKE_GEMINI, GEMINI_KEY);
    cohere = fake_ai_start(FAKE_COHERE, COHERE_KEY);
    ck_assert(gemini && cohere);
    setenv("TASKORA_AI_PROVIDER", s.provider, 1);
    char *cfg = th_write(
        dir, th_fmt("chat-%d.json", (int)getpid()),
        th_fmt("{\"app_id\": \"chat-test\", \"log\": {\"format\": \"text\"},"
               " \"plugin_dir\": \"%s/plugins/http_api/.libs:%s/plugins/ai_gemini/.libs:"
               "%s/plugins/ai_cohere/.libs\","
               " \"postgres\": {\"url\": \"%s\", \"pool_size\": 4},"
               " \"kafka\": {\"brokers\": \"embedded\", \"partitions\": 2,"
               "  \"topics\": [\"task-events\", \"user-events\", \"chat-events\"]},"
               " \"outbox\": {\"poll_ms\": 200, \"retention_s\": 3600},"
               " \"http\": {\"listen\": \"127.0.0.1:0\"},"
               " \"resiliency\": %s,"
               " \"plugins\": ["
               "  {\"name\": \"api\", \"load\": \"http_api\", \"config\": {\"jwt_secret\":"
               "   \"chat-secret-0123456789abcdef0123456789\", \"bcrypt_cost\": 4,"
               "   \"ai_provider\": \"${TASKORA_AI_PROVIDER}\", \"ai_fallback\": %s,"
               "   \"limits\": %s}},"
               "  {\"name\": \"gemini\", \"load\": \"ai_gemini\", \"config\": {\"api_key\": \"%s\","
               "   \"base_url\": \"%s\", \"model\": \"gemini-test\", \"timeout_ms\": %d}},"
               "  {\"name\": \"cohere\", \"load\": \"ai_cohere\", \"config\": {\"api_key\": \"%s\","
               "   \"base_url\": \"%s\", \"model\": \"cohere-test\", \"timeout_ms\": %d}}]}",
               th_builddir(), th_builddir(), th_builddir(), dburl,
               s.resiliency ? s.resiliency
                            : "{\"retry\": {\"attempts\": 3, \"delay_ms\": 50},"
                              " \"circuit_breaker\": {\"failures\": 5, \"open_ms\": 60000}}",
               s.fallback ? s.fallback : "[]", s.limits ? s.limits : "{}",
               s.gemini_key ? s.gemini_key : GEMINI_KEY, fake_ai_base_url(gemini),
               s.timeout_ms ? s.timeout_ms : 5000, COHERE_KEY, fake_ai_base_url(cohere),
               s.timeout_ms ? s.timeout_ms : 5000));
    th_daemon_start_named(&d, dir, cfg, th_fmt("chat-%d", (int)getpid()));
    free(cfg);

    /* a user of our own */
    static int seq;
    char email[128];
    snprintf(email, sizeof(email), "chat-%d-%d@example.com", (int)getpid(), ++seq);
    reply r = call("POST", "/api/auth/register",
                   th_fmt("{\"email\":\"%s\",\"name\":\"C\",\"password\":\"pw\"}", email), NULL);
    ck_assert_int_eq(r.status, 201);
    uid = (int)json_integer_value(json_object_get(r.json, "id"));
    reply_free(&r);
    r = call("POST", "/api/auth/login", th_fmt("{\"email\":\"%s\",\"password\":\"pw\"}", email),
             NULL);
    ck_assert_int_eq(r.status, 200);
    snprintf(token, sizeof(token), "%s",
             json_string_value(json_object_get(r.json, "access_token")));
    reply_free(&r);
}

static void stop(void)
{
    if (d.pid > 0) {
        kill(d.pid, SIGINT); /* stops without the drain delay */
        int code = th_daemon_wait(&d, 20000);
        char *text = th_read(d.log_path);
        /* the keys never reach the log */
        ck_assert_msg(!strstr(text, GEMINI_KEY) && !strstr(text, COHERE_KEY),
                      "an API key is in the log");
        ck_assert_msg(code == 0, "taskorad exited %d: %s", code, text);
        free(text);
        th_daemon_cleanup(&d);
        memset(&d, 0, sizeof(d));
    }
    fake_ai_stop(gemini);
    fake_ai_stop(cohere);
    gemini = cohere = NULL;
}

/* Waits until the outbox holds a published event of that type and subject. */
static int event_published(const char *type, const char *subject, int timeout_s)
{
    double end = th_now_s() + timeout_s;
    const char *sql =
        th_fmt("SELECT count(*) FROM taskora_outbox WHERE sent_at IS NOT NULL"
               " AND value::jsonb->>'type' = '%s' AND value::jsonb->>'subject' = '%s'",
               type, subject);
    while (th_now_s() < end) {
        if (th_pg_count(dburl, sql) > 0)
            return 1;
        usleep(50000);
    }
    return 0;
}

/* ---- the round trip
 * ------------------------------------------------------------------------------ */

static void add_task_round_trip(const char *provider, fake_ai *fake)
{
    fake_ai_tool_calls(fake, "[{\"name\":\"add_task\",\"args\":{\"title\":\"buy milk\"}}]");
    fake_ai_text(fake, "Done: I added \"buy milk\".");
    reply r = chat("{\"message\":\"add a task called buy milk\"}");
    ck_assert_msg(r.status == 200, "%s: %ld %s (violation: %s)", provider, r.status, r.body,
                  fake_ai_last_violation(fake));
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "response")),
                     "Done: I added \"buy milk\".");
    json_t *calls = json_object_get(r.json, "tool_calls");
    ck_assert_int_eq(json_array_size(calls), 1);
    json_t *c0 = json_array_get(calls, 0);
    ck_assert_str_eq(json_string_value(json_object_get(c0, "tool")), "add_task");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c0, "params"), "title")),
                     "buy milk");
    json_int_t task_id = json_integer_value(json_object_get(json_object_get(c0, "result"), "id"));
    ck_assert_int_gt(task_id, 0);
    int cid = (int)json_integer_value(json_object_get(r.json, "conversation_id"));
    ck_assert_int_gt(cid, 0);

    /* the task is the user's, made by the REST route's code: its event reached task-events */
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM tasks WHERE id = %lld AND user_id = '%d'"
                                  " AND title = 'buy milk'",
                                  (long long)task_id, uid)),
        1);
    ck_assert(event_published("task.created", th_fmt("%lld", (long long)task_id), 10));
    ck_assert(event_published("chat.message_sent", th_fmt("%d", cid), 10));
    ck_assert(event_published("chat.response_received", th_fmt("%d", cid), 10));

    /* stored: the question, and the answer with its tool call */
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM messages WHERE conversation_id = %d", cid)),
        2);
    char *tc =
        th_pg_query1(dburl, th_fmt("SELECT tool_calls FROM messages WHERE conversation_id = %d"
                                   " AND role = 'assistant'",
                                   cid));
    json_t *stored = json_loads(tc, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(stored, 0), "tool")),
                     "add_task");
    json_decref(stored);
    free(tc);

    /* the provider saw two well-formed requests: the question, then the tool's result */
    ck_assert_int_eq(fake_ai_count(fake), 2);
    ck_assert_msg(fake_ai_violation_count(fake) == 0, "%s", fake_ai_last_violation(fake));
    ck_assert_ptr_nonnull(strstr(fake_ai_request_body(fake, 0), "add a task called buy milk"));
    ck_assert_ptr_nonnull(strstr(fake_ai_request_body(fake, 0), "complete_task"));
    ck_assert_ptr_nonnull(strstr(fake_ai_request_body(fake, 1), "buy milk"));
    reply_free(&r);
}

START_TEST(test_add_task_round_trip_through_gemini)
{
    start((setup){.provider = "gemini"});
    add_task_round_trip("gemini", gemini);
    ck_assert_int_eq(fake_ai_count(cohere), 0);
    stop();
}
END_TEST

START_TEST(test_add_task_round_trip_through_cohere)
{
    start((setup){.provider = "cohere"});
    add_task_round_trip("cohere", cohere);
    ck_assert_int_eq(fake_ai_count(gemini), 0);
    stop();
}
END_TEST

START_TEST(test_conversation_continues_after_switching_provider_by_config)
{
    start((setup){.provider = "gemini"});
    fake_ai_text(gemini, "Hello from the first provider");
    reply r = chat("{\"message\":\"remember the word avocado\"}");
    ck_assert_int_eq(r.status, 200);
    int cid = (int)json_integer_value(json_object_get(r.json, "conversation_id"));
    reply_free(&r);
    int user = uid;
    char tok[1024];
    snprintf(tok, sizeof(tok), "%s", token);
    stop();

    /* the same database and user, another process whose config says cohere */
    start((setup){.provider = "cohere"});
    uid = user;
    snprintf(token, sizeof(token), "%s", tok);
    fake_ai_text(cohere, "You said avocado");
    r = chat(th_fmt("{\"conversation_id\":%d,\"message\":\"which word?\"}", cid));
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "response")), "You said avocado");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "conversation_id")), cid);
    /* the history went to the new provider: both earlier messages, then the new one */
    const char *body = fake_ai_request_body(cohere, 0);
    ck_assert_ptr_nonnull(body);
    const char *a = strstr(body, "remember the word avocado");
    const char *b = strstr(body, "Hello from the first provider");
    const char *c = strstr(body, "which word?");
    ck_assert_msg(a && b && c && a < b && b < c, "history not in order: %s", body);
    ck_assert_int_eq(fake_ai_count(gemini), 0);
    reply_free(&r);
    stop();
}
END_TEST

START_TEST(test_retries_honour_the_servers_retry_delay)
{
    start((setup){.provider = "gemini"});
    fake_ai_error(gemini, 429, 1.0); /* RetryInfo retryDelay "1s" */
    fake_ai_text(gemini, "after the wait");
    reply r = chat("{\"message\":\"hello\"}");
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_int_eq(fake_ai_count(gemini), 2);
    double gap = fake_ai_request_time(gemini, 1) - fake_ai_request_time(gemini, 0);
    ck_assert_msg(gap >= 0.95, "retried after %.3f s; the server asked for 1 s", gap);
    reply_free(&r);
    stop();
}
END_TEST

START_TEST(test_five_failures_open_the_circuit_and_the_next_call_fails_fast)
{
    start((setup){.provider = "gemini"});
    fake_ai_text(gemini, "hello");
    reply r = chat("{\"message\":\"zero\"}");
    ck_assert_int_eq(r.status, 200);
    int cid = (int)json_integer_value(json_object_get(r.json, "conversation_id"));
    reply_free(&r);
    for (int i = 0; i < 8; i++)
        fake_ai_error(gemini, 503, -1);
    r = chat(th_fmt("{\"conversation_id\":%d,\"message\":\"one\"}", cid)); /* 3 attempts */
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "detail"), "code")),
                     "AI_UNAVAILABLE");
    ck_assert_ptr_nonnull(r.retry_after);
    reply_free(&r);
    r = chat(th_fmt("{\"conversation_id\":%d,\"message\":\"two\"}", cid)); /* 2 attempts reach
                                                                                 5 failures: open */
    ck_assert_int_eq(r.status, 503);
    reply_free(&r);
    ck_assert_int_eq(fake_ai_count(gemini), 6);

    double t0 = th_now_s();
    r = chat(th_fmt("{\"conversation_id\":%d,\"message\":\"three\"}", cid));
    double took = th_now_s() - t0;
    ck_assert_int_eq(r.status, 503);
    ck_assert_int_eq(fake_ai_count(gemini), 6); /* the server was not touched */
    ck_assert_msg(took < 0.5, "an open circuit still took %.3f s", took);
    ck_assert_msg(r.retry_after && atoi(r.retry_after) >= 59 && atoi(r.retry_after) <= 60,
                  "Retry-After %s", r.retry_after ? r.retry_after : "(none)");
    reply_free(&r);
    /* in an existing conversation the user's messages were kept though the provider failed */
    ck_assert_int_eq(th_pg_count(dburl, th_fmt("SELECT count(*) FROM messages WHERE user_id = '%d'"
                                               " AND role = 'user'",
                                               uid)),
                     4);
    reply m = call("GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(strstr(m.body, "taskora_circuit_state{target=\"ai.gemini\"} 2"));
    reply_free(&m);
    stop();
}
END_TEST

START_TEST(test_fallback_provider_answers_while_the_circuit_is_open)
{
    start((setup){.provider = "gemini",
                  .fallback = "[\"cohere\"]",
                  .resiliency = "{\"retry\": {\"attempts\": 1},"
                                " \"circuit_breaker\": {\"failures\": 1, \"open_ms\": 60000}}"});
    fake_ai_error(gemini, 500, -1);
    reply r = chat("{\"message\":\"first\"}"); /* fails and opens gemini's circuit */
    ck_assert_int_eq(r.status, 503);
    reply_free(&r);
    fake_ai_text(cohere, "cohere here");
    r = chat("{\"message\":\"second\"}");
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "response")), "cohere here");
    ck_assert_int_eq(fake_ai_count(gemini), 1);
    ck_assert_int_eq(fake_ai_count(cohere), 1);
    reply_free(&r);
    stop();
}
END_TEST

START_TEST(test_a_timeout_is_a_timeout_not_a_hang)
{
    start((setup){
        .provider = "gemini", .timeout_ms = 700, .resiliency = "{\"retry\": {\"attempts\": 1}}"});
    fake_ai_hang(gemini, 5000);
    double t0 = th_now_s();
    reply r = chat("{\"message\":\"are you there?\"}");
    double took = th_now_s() - t0;
    ck_assert_int_eq(r.status, 503);
    ck_assert_msg(took >= 0.6 && took < 3.0, "answered after %.3f s (timeout 0.7 s)", took);
    reply_free(&r);
    stop();
}
END_TEST

START_TEST(test_invalid_tool_arguments_go_back_to_the_model_and_the_loop_ends)
{
    start((setup){.provider = "cohere"});
    for (int i = 0; i < 8; i++)
        fake_ai_tool_calls(cohere,
                           "[{\"name\":\"add_task\",\"args\":{},\"raw_arguments\":\"{not json\"}]");
    reply r = chat("{\"message\":\"add something\"}");
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_int_eq(fake_ai_count(cohere), 5); /* the round limit */
    ck_assert_msg(fake_ai_violation_count(cohere) == 0, "%s", fake_ai_last_violation(cohere));
    /* the second request carries the error as the tool's result */
    const char *second = fake_ai_request_body(cohere, 1);
    ck_assert_msg(strstr(second, "invalid arguments"), "%s", second);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "tool_calls")), 5);
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM tasks WHERE user_id = '%d'", uid)), 0);
    reply_free(&r);
    stop();
}
END_TEST

/* A task made through the REST API; its id. */
static int rest_task(const char *title)
{
    reply r = call("POST", "/api/tasks", th_fmt("{\"title\":\"%s\"}", title), token);
    ck_assert_int_eq(r.status, 201);
    int id = (int)json_integer_value(json_object_get(r.json, "id"));
    reply_free(&r);
    return id;
}

/* The result of the i-th tool call of a chat answer. */
static json_t *tool_result(const reply *r, size_t i)
{
    return json_object_get(json_array_get(json_object_get(r->json, "tool_calls"), i), "result");
}

START_TEST(test_each_tool_runs_its_own_route_and_an_unknown_one_is_an_error)
{
    start((setup){.provider = "gemini"});
    int keep = rest_task("keep me"), gone = rest_task("drop me");
    /* names sharing their first letter with real tools must not reach them */
    fake_ai_tool_calls(
        gemini,
        th_fmt("[{\"name\":\"update_task\",\"args\":{\"task_id\":%d,\"title\":\"renamed\"}},"
               " {\"name\":\"complete_all\",\"args\":{}},"
               " {\"name\":\"drop_tasks\",\"args\":{\"task_id\":%d}},"
               " {\"name\":\"complete_task\",\"args\":{\"task_id\":%d}},"
               " {\"name\":\"delete_task\",\"args\":{\"task_id\":\"%d\"}},"
               " {\"name\":\"list_tasks\",\"args\":{\"status\":\"completed\"}}]",
               keep, gone, keep, gone));
    fake_ai_text(gemini, "Done.");
    reply r = chat("{\"message\":\"tidy up\"}");
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "tool_calls")), 6);
    ck_assert_str_eq(json_string_value(json_object_get(tool_result(&r, 0), "title")), "renamed");
    ck_assert_str_eq(json_string_value(json_object_get(tool_result(&r, 1), "error")),
                     "unknown tool complete_all");
    ck_assert_str_eq(json_string_value(json_object_get(tool_result(&r, 2), "error")),
                     "unknown tool drop_tasks");
    json_t *done = json_object_get(tool_result(&r, 3), "task");
    ck_assert_msg(json_is_true(json_object_get(done, "completed")), "%s", r.body);
    ck_assert_str_eq(json_string_value(json_object_get(tool_result(&r, 4), "message")),
                     "Task deleted successfully");
    ck_assert_int_eq(json_integer_value(json_object_get(tool_result(&r, 5), "count")), 1);
    reply_free(&r);
    /* what the user sees through the REST API */
    r = call("GET", th_fmt("/api/tasks/%d", keep), NULL, token);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "title")), "renamed");
    ck_assert(json_is_true(json_object_get(r.json, "completed")));
    reply_free(&r);
    r = call("GET", th_fmt("/api/tasks/%d", gone), NULL, token);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
    ck_assert_msg(fake_ai_violation_count(gemini) == 0, "%s", fake_ai_last_violation(gemini));
    stop();
}
END_TEST

/* The user's conversations and messages now. */
static long conversations(void)
{
    return th_pg_count(dburl,
                       th_fmt("SELECT count(*) FROM conversations WHERE user_id = '%d'", uid));
}

static long messages(void)
{
    return th_pg_count(dburl, th_fmt("SELECT count(*) FROM messages WHERE user_id = '%d'", uid));
}

/* A 503 AI_UNAVAILABLE that says nothing of keys or providers. */
static void says_only_unavailable(const reply *r)
{
    ck_assert_int_eq(r->status, 503);
    json_t *detail = json_object_get(r->json, "detail");
    ck_assert_str_eq(json_string_value(json_object_get(detail, "code")), "AI_UNAVAILABLE");
    ck_assert_ptr_nonnull(r->retry_after);
    const char *words[] = {"key",    "KEY",    "Key",      "GEMINI",  "gemini", "Gemini",
                           "cohere", "COHERE", "provider", "api_key", "http",   NULL};
    for (int i = 0; words[i]; i++)
        ck_assert_msg(!strstr(r->body, words[i]), "the 503 says \"%s\": %s", words[i], r->body);
}

START_TEST(test_without_an_api_key_chat_is_503_and_only_the_log_names_the_key)
{
    start((setup){.provider = "gemini", .gemini_key = ""});
    reply r = chat("{\"message\":\"hello\"}");
    says_only_unavailable(&r);
    ck_assert_int_eq(fake_ai_count(gemini), 0);
    reply_free(&r);
    /* nothing stored: no empty conversation */
    ck_assert_int_eq(conversations(), 0);
    ck_assert_int_eq(messages(), 0);
    /* the reason is in the log, for the operator */
    ck_assert(th_wait_file_contains(d.log_path, "GEMINI_API_KEY", 5000));
    /* the rest of the system runs */
    r = call("GET", "/api/tasks", NULL, token);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    stop();
}
END_TEST

START_TEST(test_failed_calls_leave_no_conversation_behind)
{
    start((setup){.provider = "gemini",
                  .resiliency = "{\"retry\": {\"attempts\": 1},"
                                " \"circuit_breaker\": {\"failures\": 3, \"open_ms\": 60000}}"});
    /* the provider down (503, 500), then its circuit open: none of it is stored */
    fake_ai_error(gemini, 503, -1);
    fake_ai_error(gemini, 500, -1);
    fake_ai_error(gemini, 503, -1);
    for (int i = 0; i < 6; i++) {
        reply r = chat("{\"message\":\"add a task\"}");
        says_only_unavailable(&r);
        reply_free(&r);
    }
    ck_assert_int_eq(fake_ai_count(gemini), 3);
    ck_assert_int_eq(conversations(), 0);
    ck_assert_int_eq(messages(), 0);
    ck_assert_int_eq(
        th_pg_count(dburl, th_fmt("SELECT count(*) FROM taskora_outbox WHERE key = '%d'"
                                  " AND value::jsonb->>'type' LIKE 'chat.%%'",
                                  uid)),
        0);
    stop();

    /* a provider that answers: one conversation with the question and the answer */
    int user = uid;
    char tok[1024];
    snprintf(tok, sizeof(tok), "%s", token);
    start((setup){.provider = "gemini"});
    uid = user;
    snprintf(token, sizeof(token), "%s", tok);
    fake_ai_text(gemini, "done");
    reply r = chat("{\"message\":\"add a task\"}");
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    int cid = (int)json_integer_value(json_object_get(r.json, "conversation_id"));
    reply_free(&r);
    ck_assert_int_eq(conversations(), 1);
    ck_assert_int_eq(messages(), 2);
    ck_assert(event_published("chat.message_sent", th_fmt("%d", cid), 10));
    ck_assert(event_published("chat.response_received", th_fmt("%d", cid), 10));
    /* the question comes first in the conversation */
    r = call("GET", th_fmt("/api/%d/conversations/%d/messages", uid, cid), NULL, token);
    ck_assert_int_eq(r.status, 200);
    json_t *m = json_object_get(r.json, "messages");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(m, 0), "role")), "user");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(m, 1), "role")), "assistant");
    reply_free(&r);
    stop();
}
END_TEST

START_TEST(test_chat_is_rate_limited_per_user_and_per_address)
{
    start((setup){.provider = "gemini",
                  .limits = "{\"chat_per_user\": {\"per_minute\": 6, \"burst\": 2},"
                            " \"chat_per_address\": {\"per_minute\": 6, \"burst\": 3}}"});
    for (int i = 0; i < 2; i++) {
        reply r = chat("{\"message\":\"hi\"}");
        ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
        reply_free(&r);
    }
    reply r = chat("{\"message\":\"hi\"}");
    ck_assert_msg(r.status == 429, "%ld %s", r.status, r.body);
    ck_assert_msg(r.retry_after && atoi(r.retry_after) >= 1 && atoi(r.retry_after) <= 10,
                  "Retry-After %s", r.retry_after ? r.retry_after : "(none)");
    ck_assert(json_is_string(json_object_get(r.json, "detail")));
    reply_free(&r);
    /* refused before the provider or the database */
    ck_assert_int_eq(fake_ai_count(gemini), 2);
    ck_assert_int_eq(conversations(), 2);

    /* another user from the same address: that address has used its 3 */
    static int seq;
    char email[128];
    snprintf(email, sizeof(email), "chat-b-%d-%d@example.com", (int)getpid(), ++seq);
    r = call("POST", "/api/auth/register",
             th_fmt("{\"email\":\"%s\",\"name\":\"B\",\"password\":\"pw\"}", email), NULL);
    ck_assert_int_eq(r.status, 201);
    int uid_b = (int)json_integer_value(json_object_get(r.json, "id"));
    reply_free(&r);
    r = call("POST", "/api/auth/login", th_fmt("{\"email\":\"%s\",\"password\":\"pw\"}", email),
             NULL);
    char tok_b[1024];
    snprintf(tok_b, sizeof(tok_b), "%s",
             json_string_value(json_object_get(r.json, "access_token")));
    reply_free(&r);
    r = call("POST", th_fmt("/api/%d/chat", uid_b), "{\"message\":\"hi\"}", tok_b);
    ck_assert_msg(r.status == 429, "%ld %s", r.status, r.body);
    ck_assert_ptr_nonnull(r.retry_after);
    reply_free(&r);
    ck_assert_int_eq(fake_ai_count(gemini), 2);
    ck_assert_int_eq(th_pg_count(dburl, th_fmt("SELECT count(*) FROM conversations"
                                               " WHERE user_id = '%d'",
                                               uid_b)),
                     0);
    ck_assert(th_metric(d.url, "taskora_http_api_rate_limited_total{plugin=\"api\","
                               "limit=\"chat_user\"}") == 1);
    ck_assert(th_metric(d.url, "taskora_http_api_rate_limited_total{plugin=\"api\","
                               "limit=\"chat_address\"}") == 1);
    stop();
}
END_TEST

START_TEST(test_daily_quota_holds_across_restarts_and_stores_nothing)
{
    setup s = {.provider = "gemini", .limits = "{\"chat_daily_quota\": 2}"};
    start(s);
    reply r = chat("{\"message\":\"one\"}");
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    int cid = (int)json_integer_value(json_object_get(r.json, "conversation_id"));
    reply_free(&r);
    r = chat(th_fmt("{\"conversation_id\":%d,\"message\":\"two\"}", cid));
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    reply_free(&r);
    /* the third of the day, new conversation or not: 429 until the next UTC midnight */
    const char *third[] = {"{\"message\":\"three\"}",
                           th_fmt("{\"conversation_id\":%d,\"message\":\"three\"}", cid)};
    for (int i = 0; i < 2; i++) {
        r = chat(third[i]);
        ck_assert_msg(r.status == 429, "%ld %s", r.status, r.body);
        time_t now = time(NULL);
        long left = 86400 - (long)(now % 86400);
        ck_assert_msg(r.retry_after && labs(atol(r.retry_after) - left) <= 5,
                      "Retry-After %s, %ld s to midnight", r.retry_after ? r.retry_after : "(none)",
                      left);
        ck_assert(json_is_string(json_object_get(r.json, "detail")));
        reply_free(&r);
    }
    ck_assert_int_eq(fake_ai_count(gemini), 2);
    ck_assert_int_eq(conversations(), 1);
    ck_assert_int_eq(messages(), 4);
    int user = uid;
    char tok[1024];
    snprintf(tok, sizeof(tok), "%s", token);
    stop();

    /* counted in the database: another process (or replica) knows */
    start(s);
    uid = user;
    snprintf(token, sizeof(token), "%s", tok);
    r = chat("{\"message\":\"four\"}");
    ck_assert_msg(r.status == 429, "%ld %s", r.status, r.body);
    reply_free(&r);
    ck_assert_int_eq(fake_ai_count(gemini), 0);
    ck_assert_int_eq(conversations(), 1);
    ck_assert_int_eq(messages(), 4);
    stop();
}
END_TEST

START_TEST(test_chat_request_errors)
{
    start((setup){.provider = "gemini"});
    reply r = chat("{\"message\":\"  \\n \"}");
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "detail"), "code")),
                     "MESSAGE_REQUIRED");
    reply_free(&r);
    char big[2100];
    memset(big, 'x', 2001);
    big[2001] = '\0';
    r = chat(th_fmt("{\"message\":\"%s\"}", big));
    ck_assert_int_eq(r.status, 422);
    reply_free(&r);
    r = call("POST", th_fmt("/api/%d/chat", uid + 1000), "{\"message\":\"hi\"}", token);
    ck_assert_int_eq(r.status, 403);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "detail"), "code")),
                     "FORBIDDEN");
    reply_free(&r);
    r = chat("{\"conversation_id\":999999,\"message\":\"hi\"}");
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "detail"), "code")),
                     "CONVERSATION_NOT_FOUND");
    reply_free(&r);
    r = call("POST", th_fmt("/api/%d/chat", uid), "{\"message\":\"hi\"}", NULL);
    ck_assert_int_eq(r.status, 401);
    reply_free(&r);
    ck_assert_int_eq(fake_ai_count(gemini), 0);
    stop();
}
END_TEST

/* Asserts that method on the root path and on the same path under /api answers alike (with tok,
 * or with no token when tok is NULL): the status and the body; returns the status. */
static long same_as_under_api(const char *method, const char *path, const char *body,
                              const char *tok)
{
    reply root = call(method, path, body, tok);
    reply api = call(method, th_fmt("/api%s", path), body, tok);
    ck_assert_msg(root.status == api.status && strcmp(root.body, api.body) == 0,
                  "%s %s: %ld %s, but under /api: %ld %s", method, path, root.status, root.body,
                  api.status, api.body);
    long status = root.status;
    reply_free(&root);
    reply_free(&api);
    return status;
}

START_TEST(test_chat_and_conversations_are_served_at_the_root_with_the_same_rules)
{
    /* the existing front end's chat client calls these routes without /api */
    start((setup){.provider = "gemini"});
    fake_ai_text(gemini, "Hello at the root");
    reply r =
        call("POST", th_fmt("/%d/chat", uid), "{\"message\":\"hi from the old client\"}", token);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "response")), "Hello at the root");
    int cid = (int)json_integer_value(json_object_get(r.json, "conversation_id"));
    ck_assert_int_gt(cid, 0);
    reply_free(&r);

    r = call("GET", th_fmt("/%d/conversations", uid), NULL, token);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 1);
    json_t *first = json_array_get(json_object_get(r.json, "conversations"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(first, "id")), cid);
    reply_free(&r);
    r = call("GET", th_fmt("/%d/conversations/%d/messages", uid, cid), NULL, token);
    ck_assert_int_eq(r.status, 200);
    json_t *list = json_object_get(r.json, "messages");
    ck_assert_int_eq(json_array_size(list), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "content")),
                     "hi from the old client");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "content")),
                     "Hello at the root");
    reply_free(&r);

    /* another user's id, or no token: what /api answers */
    const char *paths[] = {"/%d/conversations", "/%d/conversations/%d/messages",
                           "/%d/conversations/%d"};
    const char *methods[] = {"GET", "GET", "DELETE"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(
            same_as_under_api(methods[i], th_fmt(paths[i], uid + 1000, cid), NULL, token), 403);
        ck_assert_int_eq(same_as_under_api(methods[i], th_fmt(paths[i], uid, cid), NULL, NULL),
                         401);
    }
    ck_assert_int_eq(
        same_as_under_api("POST", th_fmt("/%d/chat", uid + 1000), "{\"message\":\"hi\"}", token),
        403);
    ck_assert_int_eq(
        same_as_under_api("POST", th_fmt("/%d/chat", uid), "{\"message\":\"hi\"}", NULL), 401);
    ck_assert_int_eq(same_as_under_api("GET",
                                       th_fmt("/%d/conversations/%d/messages", uid, cid + 1000),
                                       NULL, token),
                     404);

    /* deleted at the root: gone under /api as well */
    r = call("DELETE", th_fmt("/%d/conversations/%d", uid, cid), NULL, token);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_true(json_object_get(r.json, "success")));
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "messages_deleted")), 2);
    reply_free(&r);
    r = call("GET", th_fmt("/api/%d/conversations/%d/messages", uid, cid), NULL, token);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
    ck_assert_int_eq(conversations(), 0);
    ck_assert_int_eq(fake_ai_count(gemini), 1);
    stop();
}
END_TEST

static void suite_setup(void)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_chat_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    char *cfg = th_write(dir, "migrate.json",
                         th_fmt("{\"postgres\": {\"url\": \"%s\"}, \"plugin_dir\": "
                                "\"%s/plugins/http_api/.libs\", \"plugins\": [{\"name\": \"api\","
                                " \"load\": \"http_api\", \"config\": {\"jwt_secret\": \"x\"}}]}",
                                dburl, th_builddir()));
    th_migrate(cfg);
    free(cfg);
}

static void suite_teardown(void)
{
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
}

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_chat");
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("chat");
    tcase_set_timeout(tc, 90);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, test_add_task_round_trip_through_gemini);
    tcase_add_test(tc, test_add_task_round_trip_through_cohere);
    tcase_add_test(tc, test_conversation_continues_after_switching_provider_by_config);
    tcase_add_test(tc, test_retries_honour_the_servers_retry_delay);
    tcase_add_test(tc, test_five_failures_open_the_circuit_and_the_next_call_fails_fast);
    tcase_add_test(tc, test_fallback_provider_answers_while_the_circuit_is_open);
    tcase_add_test(tc, test_a_timeout_is_a_timeout_not_a_hang);
    tcase_add_test(tc, test_invalid_tool_arguments_go_back_to_the_model_and_the_loop_ends);
    tcase_add_test(tc, test_each_tool_runs_its_own_route_and_an_unknown_one_is_an_error);
    tcase_add_test(tc, test_without_an_api_key_chat_is_503_and_only_the_log_names_the_key);
    tcase_add_test(tc, test_failed_calls_leave_no_conversation_behind);
    tcase_add_test(tc, test_chat_is_rate_limited_per_user_and_per_address);
    tcase_add_test(tc, test_daily_quota_holds_across_restarts_and_stores_nothing);
    tcase_add_test(tc, test_chat_request_errors);
    tcase_add_test(tc, test_chat_and_conversations_are_served_at_the_root_with_the_same_rules);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
