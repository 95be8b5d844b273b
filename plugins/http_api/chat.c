/*
 * POST /api/{user_id}/chat (and /{user_id}/chat): the assistant. Rate-limited
 * per address and per user, and counted against the user's daily quota before
 * the provider is asked. In an existing conversation the user's message is stored (and its
 * event written) before the provider is asked, so a provider failure loses
 * nothing; a first message is stored with its answer, so a failed call
 * leaves no empty conversation. Then at most chat_max_rounds model <-> tool rounds
 * through the host's ai_chat (retries, circuit breaker); tools run through
 * the REST routes' own code. The answer is stored with its tool calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "limits.h"

typedef struct chat_in {
    char cid[24]; /* "" : a new conversation */
    const char *message;
    /* filled along the way */
    json_t *history; /* normalised messages, oldest first */
    char *answer;
    json_t *calls; /* [{tool, params, result}] */
    const char *provider;
    char model[128];
    long long latency_ms;
    int is_new;              /* a first message: stored with its answer */
    int over_quota;          /* the daily quota is used up */
    long long quota_retry_s; /* then: seconds until it renews */
} chat_in;

/*
 * The conversation made for a first message (the user's row locked, so a concurrent
 * delete-account waits and then deletes it), or the existing one, gets the user's message and
 * chat.message_sent.
 */
static int insert_question(api_call *c, PGconn *conn)
{
    chat_in *in = c->arg;
    PGresult *res;
    if (!in->cid[0]) {
        int rc = api_lock_user(c, conn);
        if (rc < 0)
            return rc;
        const char *p[] = {c->user};
        res = api_exec(c->a, conn, "INSERT INTO conversations (user_id) VALUES ($1) RETURNING id",
                       1, p);
        if (!api_ok(res)) {
            PQclear(res);
            return TK_ERR;
        }
        snprintf(in->cid, sizeof(in->cid), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    const char *p[] = {in->cid, c->user, in->message};
    res = api_exec(c->a, conn,
                   "WITH m AS (INSERT INTO messages (conversation_id, user_id, role, content)"
                   " VALUES ($1::int, $2, 'user', $3) RETURNING conversation_id)"
                   " UPDATE conversations SET updated_at = (now() AT TIME ZONE 'utc')"
                   " WHERE id = (SELECT conversation_id FROM m)",
                   3, p);
    int ok = api_ok(res);
    PQclear(res);
    if (!ok)
        return TK_ERR;
    char preview[404]; /* the first 100 characters, not bytes */
    snprintf(preview, sizeof(preview), "%.*s", (int)kit_utf8_prefix(in->message, 100), in->message);
    size_t len = kit_utf8_len(in->message);
    int rc = api_event(c->a, conn, c->a->chat_topic, "chat.message_sent", c->user, in->cid,
                       json_pack("{s:I,s:I,s:s}", "conversation_id", (json_int_t)atoll(in->cid),
                                 "message_length", (json_int_t)len, "message_preview", preview));
    return rc < 0 ? rc : TK_OK;
}

/*
 * Transaction 1: the conversation checked, the message counted against the user's daily
 * quota and, in an existing conversation, stored. A first message is stored only with its
 * answer (store_answer): a call that is refused or fails leaves no conversation behind.
 */
static int store_question(void *conn, void *ud)
{
    api_call *c = ud;
    chat_in *in = c->arg;
    if (in->cid[0]) {
        const char *p[] = {in->cid, c->user};
        PGresult *res = api_exec(
            c->a, conn,
            "SELECT id FROM conversations WHERE id = $1::int AND user_id = $2 FOR UPDATE", 2, p);
        int found = api_ok(res) ? PQntuples(res) == 1 : -1;
        PQclear(res);
        if (found < 0)
            return TK_ERR;
        if (!found)
            return api_fail_code(c, 404, "CONVERSATION_NOT_FOUND", "Conversation not found");
    }
    int q = api_chat_quota_take(c->a, conn, c->user, &in->quota_retry_s);
    if (q == TK_EPERM)
        in->over_quota = 1;
    if (q < 0)
        return TK_ERR;
    in->is_new = !in->cid[0];
    return in->is_new ? TK_OK : insert_question(c, conn);
}

/* The conversation's last chat_history messages, oldest first, as normalised messages. */
static int load_history(void *conn, void *ud)
{
    api_call *c = ud;
    chat_in *in = c->arg;
    if (in->is_new) { /* nothing stored yet: the message alone */
        in->history = json_pack("[{s:s,s:s}]", "role", "user", "content", in->message);
        return in->history ? TK_OK : TK_ENOMEM;
    }
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", c->a->chat_history);
    const char *p[] = {in->cid, limit};
    PGresult *res = api_exec(c->a, conn,
                             "SELECT role, content FROM (SELECT role, content, created_at, id"
                             " FROM messages WHERE conversation_id = $1::int"
                             " ORDER BY created_at DESC, id DESC LIMIT $2::int) m"
                             " ORDER BY created_at, id",
                             2, p);
    if (!api_ok(res)) {
        PQclear(res);
        return TK_ERR;
    }
    in->history = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(
            in->history,
            json_pack("{s:s,s:s}", "role",
                      strcmp(PQgetvalue(res, i, 0), "assistant") == 0 ? "assistant" : "user",
                      "content", PQgetvalue(res, i, 1)));
    PQclear(res);
    return TK_OK;
}

/* Transaction 2: the answer with its tool calls, chat.response_received. */
static int store_answer(void *conn, void *ud)
{
    api_call *c = ud;
    chat_in *in = c->arg;
    if (in->is_new) {
        int rc = insert_question(c, conn);
        if (rc < 0)
            return rc;
    }
    char *calls = json_array_size(in->calls) ? json_dumps(in->calls, JSON_COMPACT) : NULL;
    const char *p[] = {in->cid, c->user, in->answer, calls};
    PGresult *res =
        api_exec(c->a, conn,
                 "WITH m AS (INSERT INTO messages (conversation_id, user_id, role, content,"
                 " tool_calls) VALUES ($1::int, $2, 'assistant', $3, $4) RETURNING conversation_id)"
                 " UPDATE conversations SET updated_at = (now() AT TIME ZONE 'utc')"
                 " WHERE id = (SELECT conversation_id FROM m)",
                 4, p);
    free(calls);
    int ok = api_ok(res);
    PQclear(res);
    if (!ok)
        return TK_ERR;
    json_t *names = json_array(), *call;
    size_t i;
    json_array_foreach(in->calls, i, call) json_array_append(names, json_object_get(call, "tool"));
    size_t len = kit_utf8_len(in->answer);
    int rc = api_event(c->a, conn, c->a->chat_topic, "chat.response_received", c->user, in->cid,
                       json_pack("{s:I,s:I,s:s,s:s,s:o,s:I}", "conversation_id",
                                 (json_int_t)atoll(in->cid), "response_length", (json_int_t)len,
                                 "provider", in->provider, "model", in->model, "tool_calls", names,
                                 "latency_ms", (json_int_t)in->latency_ms));
    if (rc < 0)
        return rc;
    return api_answer(c, 200,
                      json_pack("{s:I,s:s,s:O}", "conversation_id", (json_int_t)atoll(in->cid),
                                "response", in->answer, "tool_calls", in->calls));
}

/*
 * Asks the configured provider, or while its circuit is open the fallbacks in
 * order. TK_OK with *resp (parsed), or the failure.
 */
static int ask(api *a, chat_in *in, json_t *request, json_t **resp, tk_failure *f)
{
    char *text = json_dumps(request, JSON_COMPACT);
    if (!text)
        return TK_ENOMEM;
    size_t nfallback = a->host->config_list_size(a->inst, "ai_fallback");
    int rc = TK_ENOTFOUND;
    for (size_t i = 0; i <= nfallback; i++) {
        const char *provider =
            i == 0 ? a->ai_provider : a->host->config_list_get(a->inst, "ai_fallback", i - 1);
        if (!provider || !*provider)
            continue;
        char *out = NULL;
        rc = a->host->ai_chat(a->inst, provider, text, &out, f);
        if (rc == TK_OK) {
            in->provider = provider;
            *resp = json_loads(out, 0, NULL);
            a->host->free(out);
            rc = *resp ? TK_OK : TK_ERR;
            if (!*resp) {
                f->kind = TK_FAIL_UNAVAILABLE;
                snprintf(f->message, sizeof(f->message), "provider %s answered invalid JSON",
                         provider);
            }
            break;
        }
        /* only an open circuit (or a missing instance) moves on to the next provider */
        if (rc != TK_EUNAVAILABLE && rc != TK_ENOTFOUND)
            break;
        if (i < nfallback)
            a->host->log(a->inst, TK_LOG_INFO, "AI provider %s unavailable (%s); trying %s",
                         provider, f->message, a->host->config_list_get(a->inst, "ai_fallback", i));
    }
    free(text);
    if (rc == TK_ENOTFOUND && f->message[0] == '\0')
        snprintf(f->message, sizeof(f->message), "no AI provider is configured (ai_provider)");
    return rc;
}

/* The model <-> tools loop. TK_OK with in->answer set, or the provider's failure. */
static int converse(api *a, const char *user, chat_in *in, tk_failure *f)
{
    json_t *request = json_pack("{s:s,s:O,s:o}", "system", a->chat_system_prompt, "messages",
                                in->history, "tools", json_loads(api_task_tools_json, 0, NULL));
    json_t *messages = json_object_get(request, "messages");
    int64_t t0 = kit_monotonic_ms();
    int rc = TK_OK;
    const char *last_text = "";
    json_t *resp = NULL;
    for (int round = 0; round < a->chat_max_rounds; round++) {
        json_decref(resp);
        resp = NULL;
        rc = ask(a, in, request, &resp, f);
        if (rc < 0)
            break;
        const char *model = json_string_value(json_object_get(resp, "model"));
        snprintf(in->model, sizeof(in->model), "%s", model ? model : "");
        const char *text = json_string_value(json_object_get(resp, "text"));
        last_text = text ? text : "";
        json_t *calls = json_object_get(resp, "tool_calls");
        if (!json_array_size(calls)) {
            in->answer = strdup(last_text);
            break;
        }
        /* the model's turn as it was, then one result per call */
        json_array_append_new(messages, json_pack("{s:s,s:s,s:O}", "role", "assistant", "content",
                                                  last_text, "tool_calls", calls));
        json_t *call;
        size_t i;
        json_array_foreach(calls, i, call)
        {
            const char *name = json_string_value(json_object_get(call, "name"));
            json_t *args = json_object_get(call, "arguments");
            json_t *result;
            if (!json_is_object(args)) {
                const char *why = json_string_value(json_object_get(call, "arguments_error"));
                char msg[300];
                snprintf(msg, sizeof(msg), "invalid arguments: %s",
                         why ? why : "not a JSON object");
                result = json_pack("{s:s}", "error", msg);
            } else {
                result = api_task_tool(a, user, name ? name : "", args);
            }
            json_array_append_new(
                in->calls, json_pack("{s:s,s:o,s:O}", "tool", name ? name : "", "params",
                                     json_is_object(args) ? json_incref(args) : json_object(),
                                     "result", result));
            json_array_append_new(messages, json_pack("{s:s,s:O,s:s,s:o}", "role", "tool",
                                                      "tool_call_id", json_object_get(call, "id"),
                                                      "name", name ? name : "", "content", result));
        }
    }
    if (rc >= 0 && !in->answer) /* rounds used up while the model still wanted tools */
        in->answer = strdup(*last_text ? last_text
                                       : "I could not finish that in the steps I am allowed; "
                                         "please try a simpler request.");
    in->latency_ms = (long long)(kit_monotonic_ms() - t0);
    json_decref(resp);
    json_decref(request);
    if (rc >= 0 && !in->answer)
        rc = TK_ENOMEM;
    return rc;
}

static int route_chat(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    chat_in in;
    memset(&in, 0, sizeof(in));
    api_call c;
    api_call_init(&c, a, &in);
    if (api_limit_take(a, API_LIMIT_CHAT_ADDRESS, req, NULL, resp) < 0)
        return TK_OK; /* answered (429) */
    int rc = api_authenticate(a, req, resp, c.user, 0);
    if (rc < 0)
        return rc; /* answered */
    const char *path_user = a->host->http_param(req, "user_id");
    if (!path_user || strcmp(path_user, c.user) != 0)
        return api_error_code(a, resp, 403, "FORBIDDEN", "You don't have access to this resource");
    if (api_limit_take(a, API_LIMIT_CHAT_USER, req, c.user, resp) < 0)
        return TK_OK; /* answered (429) */
    int sent;
    json_t *body = api_body_object(a, req, resp, &sent);
    if (!body)
        return sent ? TK_OK : TK_ERR;
    api_errors e;
    kit_errors_init(&e);
    json_t *cid = json_object_get(body, "conversation_id");
    if (cid && !json_is_null(cid)) {
        if (json_is_integer(cid) && json_integer_value(cid) >= INT32_MIN &&
            json_integer_value(cid) <= INT32_MAX) /* an int column, as path ids are */
            snprintf(in.cid, sizeof(in.cid), "%lld", (long long)json_integer_value(cid));
        else
            kit_errors_add(&e, "body", "conversation_id", "Input should be a valid integer",
                           "int_type");
    }
    in.message = api_field_string(&e, body, "message", 1, 0, 2000, NULL, NULL);
    if (kit_errors_any(&e)) {
        json_decref(body);
        return kit_errors_send(a->host, resp, &e);
    }
    kit_errors_free(&e);
    const char *m = in.message;
    while (*m == ' ' || *m == '\t' || *m == '\n' || *m == '\r')
        m++;
    if (!*m) {
        json_decref(body);
        return api_error_code(a, resp, 400, "MESSAGE_REQUIRED", "Please enter a message");
    }
    rc = api_call_run(&c, 1, store_question);
    if (in.over_quota) {
        json_decref(body);
        return api_chat_quota_refuse(a, resp, in.quota_retry_s);
    }
    if (rc >= 0 && !c.status)
        rc = api_call_run(&c, 0, load_history);
    if (rc < 0 || c.status) { /* 404, 401, or the database */
        json_decref(body);
        json_decref(in.history);
        return api_call_send(&c, rc, resp);
    }
    in.calls = json_array();
    tk_failure f;
    memset(&f, 0, sizeof(f));
    rc = converse(a, c.user, &in, &f);
    if (rc < 0) {
        /* in an existing conversation the question stays stored; a first message leaves
         * nothing behind. The client may ask again. Why it failed (a missing key, the
         * provider's answer) is for the log only. */
        a->host->log(a->inst,
                     f.kind == TK_FAIL_AUTH || rc == TK_ENOTFOUND ? TK_LOG_ERROR : TK_LOG_WARN,
                     "chat of user %s: the AI assistant failed: %s", c.user,
                     f.message[0] ? f.message : tk_strerror(rc));
        long long secs = f.retry_after_ms > 0 ? (f.retry_after_ms + 999) / 1000 : 30;
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", secs);
        a->host->http_set_header(resp, "Retry-After", ra);
        rc = api_error_code(a, resp, 503, "AI_UNAVAILABLE",
                            "The AI assistant is temporarily unavailable; please try again later");
    } else {
        rc = api_call_send(&c, api_call_run(&c, 1, store_answer), resp);
    }
    free(in.answer);
    json_decref(in.calls);
    json_decref(in.history);
    json_decref(body);
    return rc;
}

int api_chat_routes(api *a)
{
    int rc = a->host->http_route(a->inst, "POST", "/api/{user_id}/chat", route_chat, a);
    /* also at the root, where the existing front end's chat client calls it */
    return rc < 0 ? rc : a->host->http_route(a->inst, "POST", "/{user_id}/chat", route_chat, a);
}
