/* Fake AI provider servers (Gemini v1beta generateContent, Cohere v2 chat, OpenAI-compatible
 * v1 chat/completions); see fake_ai.h. */
#include "fake_ai.h"

#include "testhelp.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

typedef enum {
    R_TEXT,
    R_CALLS,
    R_ERROR,
    R_QUOTA,
    R_HANG,
    R_BLOCKED,
    R_FINISH_ERROR,
    R_THOUGHT,
    R_RAW
} reply_kind;

typedef struct reply {
    reply_kind kind;
    char *text;   /* R_TEXT, R_THOUGHT; R_RAW: body */
    char *finish; /* R_TEXT: finish reason or NULL */
    char *header; /* R_RAW: "Name: value" or NULL */
    json_t *calls;
    int status;
    double retry_s;
    int ms;
    struct reply *next;
} reply;

typedef struct record {
    char *path;
    char *body;
    json_t *json;
    json_t *headers;
    double time;
    int status;
} record;

/* A functionCall the fake sent (Gemini), to check the signature comes back. */
typedef struct sent_call {
    char *name;
    json_t *args;
    char *id;
    char *sig;
} sent_call;

struct fake_ai {
    fake_ai_kind kind;
    char *key;
    int keyless; /* FAKE_OPENAI started with a NULL key: no key is checked */
    char url[64];
    struct MHD_Daemon *daemon;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stopping;
    reply *head, *tail;
    int npending;
    record **recs;
    int nrecs, caprecs;
    char **viol;
    int nviol, capviol;
    sent_call *calls;
    int ncalls, capcalls;
    unsigned long seq;
};

typedef struct conn_state {
    double time;
    char *body;
    size_t len;
} conn_state;

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

static void *grow(void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return p;
    int n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(p, (size_t)n * elem);
    if (!q)
        abort();
    *cap = n;
    return q;
}

/* ---- scripting ------------------------------------------------------------ */

void fake_ai_text(fake_ai *f, const char *text) { fake_ai_text_finish(f, text, NULL); }

static reply *new_reply(reply_kind kind)
{
    reply *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->kind = kind;
    r->retry_s = -1;
    return r;
}

static void enqueue(fake_ai *f, reply *r)
{
    pthread_mutex_lock(&f->mu);
    if (f->tail)
        f->tail->next = r;
    else
        f->head = r;
    f->tail = r;
    f->npending++;
    pthread_mutex_unlock(&f->mu);
}

void fake_ai_text_finish(fake_ai *f, const char *text, const char *finish_reason)
{
    reply *r = new_reply(R_TEXT);
    r->text = xstrdup(text ? text : "");
    r->finish = xstrdup(finish_reason);
    enqueue(f, r);
}

void fake_ai_tool_calls(fake_ai *f, const char *calls_json)
{
    fake_ai_tool_calls_finish(f, calls_json, NULL);
}

void fake_ai_tool_calls_finish(fake_ai *f, const char *calls_json, const char *finish_reason)
{
    json_error_t e;
    json_t *calls = json_loads(calls_json, 0, &e);
    if (!json_is_array(calls)) {
        fprintf(stderr, "fake_ai_tool_calls: not a JSON array: %s\n", e.text);
        abort();
    }
    reply *r = new_reply(R_CALLS);
    r->calls = calls;
    r->finish = xstrdup(finish_reason);
    enqueue(f, r);
}

void fake_ai_error(fake_ai *f, int status, double retry_after_s)
{
    reply *r = new_reply(R_ERROR);
    r->status = status;
    r->retry_s = retry_after_s;
    enqueue(f, r);
}

void fake_ai_daily_quota(fake_ai *f) { enqueue(f, new_reply(R_QUOTA)); }

void fake_ai_hang(fake_ai *f, int ms)
{
    reply *r = new_reply(R_HANG);
    r->ms = ms;
    enqueue(f, r);
}

void fake_ai_blocked(fake_ai *f) { enqueue(f, new_reply(R_BLOCKED)); }
void fake_ai_finish_error(fake_ai *f) { enqueue(f, new_reply(R_FINISH_ERROR)); }

void fake_ai_thought(fake_ai *f, const char *text)
{
    reply *r = new_reply(R_THOUGHT);
    r->text = xstrdup(text ? text : "");
    enqueue(f, r);
}

void fake_ai_raw(fake_ai *f, int status, const char *header, const char *body)
{
    reply *r = new_reply(R_RAW);
    r->status = status;
    r->header = xstrdup(header);
    r->text = xstrdup(body ? body : "");
    enqueue(f, r);
}

int fake_ai_pending(const fake_ai *f)
{
    fake_ai *m = (fake_ai *)f;
    pthread_mutex_lock(&m->mu);
    int n = m->npending;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static void reply_free(reply *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->finish);
    free(r->header);
    json_decref(r->calls);
    free(r);
}

/* ---- what it received ----------------------------------------------------- */

static record *rec_at(const fake_ai *f, int i)
{
    fake_ai *m = (fake_ai *)f;
    pthread_mutex_lock(&m->mu);
    record *r = i >= 0 && i < m->nrecs ? m->recs[i] : NULL;
    pthread_mutex_unlock(&m->mu);
    return r;
}

int fake_ai_count(const fake_ai *f)
{
    fake_ai *m = (fake_ai *)f;
    pthread_mutex_lock(&m->mu);
    int n = m->nrecs;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int fake_ai_wait_count(const fake_ai *f, int n, int timeout_ms)
{
    fake_ai *m = (fake_ai *)f;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    int rc = 0;
    while (m->nrecs < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&m->cond, &m->mu, &dl);
    int ok = m->nrecs >= n;
    pthread_mutex_unlock(&m->mu);
    return ok;
}

json_t *fake_ai_request(const fake_ai *f, int i)
{
    record *r = rec_at(f, i);
    return r ? r->json : NULL;
}
const char *fake_ai_request_body(const fake_ai *f, int i)
{
    record *r = rec_at(f, i);
    return r ? r->body : NULL;
}
const char *fake_ai_request_path(const fake_ai *f, int i)
{
    record *r = rec_at(f, i);
    return r ? r->path : NULL;
}
json_t *fake_ai_request_headers(const fake_ai *f, int i)
{
    record *r = rec_at(f, i);
    return r ? r->headers : NULL;
}
int fake_ai_request_status(const fake_ai *f, int i)
{
    fake_ai *m = (fake_ai *)f;
    pthread_mutex_lock(&m->mu);
    int s = i >= 0 && i < m->nrecs ? m->recs[i]->status : 0;
    pthread_mutex_unlock(&m->mu);
    return s;
}
double fake_ai_request_time(const fake_ai *f, int i)
{
    record *r = rec_at(f, i);
    return r ? r->time : -1;
}
const char *fake_ai_last_violation(const fake_ai *f)
{
    fake_ai *m = (fake_ai *)f;
    pthread_mutex_lock(&m->mu);
    const char *v = m->nviol ? m->viol[m->nviol - 1] : NULL;
    pthread_mutex_unlock(&m->mu);
    return v;
}
int fake_ai_violation_count(const fake_ai *f)
{
    fake_ai *m = (fake_ai *)f;
    pthread_mutex_lock(&m->mu);
    int n = m->nviol;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static void add_violation(fake_ai *f, const char *why)
{
    pthread_mutex_lock(&f->mu);
    f->viol = grow(f->viol, &f->capviol, f->nviol + 1, sizeof(char *));
    f->viol[f->nviol++] = xstrdup(why);
    pthread_mutex_unlock(&f->mu);
    fprintf(stderr, "fake_ai: refused request: %s\n", why);
}

/* ---- validation helpers ----------------------------------------------------- */

typedef struct verr {
    char msg[512];
} verr;

static int fail(verr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(verr *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static void camel_to_snake(const char *in, char *out, size_t n)
{
    size_t j = 0;
    for (; *in && j + 2 < n; in++) {
        if (isupper((unsigned char)*in)) {
            out[j++] = '_';
            out[j++] = (char)tolower((unsigned char)*in);
        } else {
            out[j++] = *in;
        }
    }
    out[j] = '\0';
}

/* A field by its proto name, accepting the camelCase and the snake_case spelling (proto JSON). */
static json_t *pget(json_t *o, const char *camel)
{
    json_t *v = json_object_get(o, camel);
    if (v)
        return v;
    char snake[128];
    camel_to_snake(camel, snake, sizeof(snake));
    return json_object_get(o, snake);
}

/* Every key of o is in allowed (NULL-terminated); proto: snake_case spellings accepted too. */
/* The first key of o not in allowed (with proto, also as snake_case), or NULL. */
static const char *unknown_key(json_t *o, const char *const *allowed, int proto)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) {
            char snake[128];
            camel_to_snake(allowed[i], snake, sizeof(snake));
            ok = strcmp(k, allowed[i]) == 0 || (proto && strcmp(k, snake) == 0);
        }
        if (!ok)
            return k;
    }
    return NULL;
}

static int known_keys(json_t *o, const char *const *allowed, int proto, const char *where, verr *e)
{
    const char *k = unknown_key(o, allowed, proto);
    if (k)
        return fail(e, "Invalid JSON payload received. Unknown name \"%s\" at '%s'", k, where);
    return 0;
}

/* ---- Gemini ------------------------------------------------------------------ */

static int g_schema(json_t *s, const char *where, int depth, verr *e)
{
    static const char *const allowed[] = {"type",
                                          "format",
                                          "title",
                                          "description",
                                          "nullable",
                                          "enum",
                                          "maxItems",
                                          "minItems",
                                          "properties",
                                          "required",
                                          "minProperties",
                                          "maxProperties",
                                          "minLength",
                                          "maxLength",
                                          "pattern",
                                          "example",
                                          "anyOf",
                                          "propertyOrdering",
                                          "default",
                                          "items",
                                          "minimum",
                                          "maximum",
                                          NULL};
    if (depth > 32)
        return fail(e, "%s: schema nested too deeply", where);
    if (!json_is_object(s))
        return fail(e, "%s: a schema must be an object", where);
    static const char *const banned[] = {"$schema", "additionalProperties", "const", NULL};
    for (int i = 0; banned[i]; i++)
        if (json_object_get(s, banned[i]))
            return fail(e, "Invalid JSON payload received. Unknown name \"%s\" at '%s'", banned[i],
                        where);
    if (known_keys(s, allowed, 1, where, e))
        return -1;
    json_t *t = json_object_get(s, "type");
    if (t && !json_is_string(t))
        return fail(e, "%s.type: must be a string (one type), not %s", where,
                    json_is_array(t) ? "an array" : "another JSON type");
    static const char *const types[] = {"STRING", "NUMBER", "INTEGER", "BOOLEAN",
                                        "ARRAY",  "OBJECT", "NULL",    NULL};
    int known_type = !t;
    for (int i = 0; types[i] && !known_type; i++)
        known_type = strcasecmp(json_string_value(t), types[i]) == 0;
    if (!known_type)
        return fail(e,
                    "Invalid value at '%s.type' (type.googleapis.com/"
                    "google.ai.generativelanguage.v1beta.Type), \"%s\"",
                    where, json_string_value(t));
    /* the checks the real service makes beyond the proto */
    json_t *p0 = json_object_get(s, "properties");
    if (t && strcasecmp(json_string_value(t), "OBJECT") == 0 && p0 && json_is_object(p0) &&
        json_object_size(p0) == 0)
        return fail(e,
                    "* GenerateContentRequest.%s.properties: should be non-empty for OBJECT "
                    "type",
                    where);
    if (t && strcasecmp(json_string_value(t), "ARRAY") == 0 && !json_object_get(s, "items"))
        return fail(e, "* GenerateContentRequest.%s.items: missing field.", where);
    json_t *r0 = json_object_get(s, "required");
    size_t ri;
    json_t *rv;
    json_array_foreach(r0, ri, rv)
    {
        if (!json_is_string(rv) || !json_object_get(p0, json_string_value(rv)))
            return fail(e, "* GenerateContentRequest.%s.required[%zu]: property is not defined",
                        where, ri);
    }
    char sub[512];
    json_t *props = json_object_get(s, "properties");
    if (props) {
        if (!json_is_object(props))
            return fail(e, "%s.properties: must be an object", where);
        const char *k;
        json_t *v;
        json_object_foreach(props, k, v)
        {
            snprintf(sub, sizeof(sub), "%s.properties[%s]", where, k);
            if (g_schema(v, sub, depth + 1, e))
                return -1;
        }
    }
    json_t *items = json_object_get(s, "items");
    if (items) {
        snprintf(sub, sizeof(sub), "%s.items", where);
        if (g_schema(items, sub, depth + 1, e))
            return -1;
    }
    json_t *any = pget(s, "anyOf");
    if (any) {
        if (!json_is_array(any))
            return fail(e, "%s.anyOf: must be an array", where);
        size_t i;
        json_t *v;
        json_array_foreach(any, i, v)
        {
            snprintf(sub, sizeof(sub), "%s.anyOf[%zu]", where, i);
            if (g_schema(v, sub, depth + 1, e))
                return -1;
        }
    }
    json_t *req = json_object_get(s, "required");
    if (req && !json_is_array(req))
        return fail(e, "%s.required: must be an array", where);
    return 0;
}

static int valid_fn_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 64 || !(isalpha((unsigned char)n[0]) || n[0] == '_'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)n[i]) || n[i] == '_' || n[i] == '.' || n[i] == ':' ||
              n[i] == '-'))
            return 0;
    return 1;
}

static int g_text_parts(json_t *parts, const char *where, verr *e)
{
    static const char *const allowed[] = {"text", NULL};
    if (!json_is_array(parts) || json_array_size(parts) == 0)
        return fail(e, "%s.parts: must be a non-empty array", where);
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        char w[256];
        snprintf(w, sizeof(w), "%s.parts[%zu]", where, i);
        if (!json_is_object(p))
            return fail(e, "%s: must be an object", w);
        if (known_keys(p, allowed, 1, w, e))
            return -1;
        if (!json_is_string(json_object_get(p, "text")))
            return fail(e, "%s.text: must be a string", w);
    }
    return 0;
}

/* The parts of content i; counts its functionCall and functionResponse parts. */
static int g_parts(json_t *parts, const char *where, int *ncalls, int *nresp, verr *e)
{
    static const char *const allowed[] = {"text",
                                          "functionCall",
                                          "functionResponse",
                                          "inlineData",
                                          "fileData",
                                          "executableCode",
                                          "codeExecutionResult",
                                          "thought",
                                          "thoughtSignature",
                                          "videoMetadata",
                                          NULL};
    static const char *const data[] = {
        "text",     "functionCall",   "functionResponse",    "inlineData",
        "fileData", "executableCode", "codeExecutionResult", NULL};
    *ncalls = *nresp = 0;
    if (!json_is_array(parts) || json_array_size(parts) == 0)
        return fail(e, "%s.parts: must be a non-empty array", where);
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        char w[256];
        snprintf(w, sizeof(w), "%s.parts[%zu]", where, i);
        if (!json_is_object(p))
            return fail(e, "%s: must be an object", w);
        if (known_keys(p, allowed, 1, w, e))
            return -1;
        int n = 0;
        for (int k = 0; data[k]; k++)
            n += pget(p, data[k]) != NULL;
        if (n != 1)
            return fail(e,
                        "%s: a part must hold exactly one of text, functionCall, "
                        "functionResponse (it has %d)",
                        w, n);
        json_t *sig = pget(p, "thoughtSignature");
        json_t *text = pget(p, "text");
        json_t *fc = pget(p, "functionCall");
        json_t *fr = pget(p, "functionResponse");
        if (sig && !(json_is_string(sig) && (fc || text)))
            return fail(e, "%s.thoughtSignature: a string, only beside functionCall or text", w);
        json_t *th = pget(p, "thought");
        if (th && !(json_is_boolean(th) && text))
            return fail(e, "%s.thought: a boolean, only beside text", w);
        if (text && !json_is_string(text))
            return fail(e, "%s.text: must be a string", w);
        if (fc) {
            static const char *const fa[] = {"id", "name", "args", NULL};
            char fw[300];
            snprintf(fw, sizeof(fw), "%s.function_call", w);
            if (!json_is_object(fc) || known_keys(fc, fa, 1, fw, e))
                return e->msg[0] ? -1 : fail(e, "%s: must be an object", fw);
            json_t *name = json_object_get(fc, "name");
            if (!json_is_string(name) || !valid_fn_name(json_string_value(name)))
                return fail(e, "%s.name: must be a valid function name", fw);
            json_t *args = json_object_get(fc, "args");
            if (args && !json_is_object(args))
                return fail(e, "%s.args: must be an object (Struct)", fw);
            json_t *id = json_object_get(fc, "id");
            if (id && !json_is_string(id))
                return fail(e, "%s.id: must be a string", fw);
            (*ncalls)++;
        }
        if (fr) {
            static const char *const fa[] = {"id",         "name",  "response", "willContinue",
                                             "scheduling", "parts", NULL};
            char fw[300];
            snprintf(fw, sizeof(fw), "%s.function_response", w);
            if (!json_is_object(fr) || known_keys(fr, fa, 1, fw, e))
                return e->msg[0] ? -1 : fail(e, "%s: must be an object", fw);
            json_t *name = json_object_get(fr, "name");
            if (!json_is_string(name) || !valid_fn_name(json_string_value(name)))
                return fail(e, "%s.name: must be a valid function name", fw);
            if (!json_is_object(json_object_get(fr, "response")))
                return fail(e,
                            "%s.response: must be an object (Struct), wrap values as "
                            "{\"result\": ...}",
                            fw);
            json_t *id = json_object_get(fr, "id");
            if (id && !json_is_string(id))
                return fail(e, "%s.id: must be a string", fw);
            (*nresp)++;
        }
    }
    return 0;
}

static const char *str_or(json_t *v, const char *dflt)
{
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* Every functionCall part of a model turn: a signature the fake issued comes back unchanged,
 * and no signature it did not issue is sent. Called with f->mu held. */
static int g_signatures(fake_ai *f, json_t *parts, const char *where, verr *e)
{
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        json_t *fc = pget(p, "functionCall");
        const char *sig = str_or(pget(p, "thoughtSignature"), NULL);
        if (!fc) {
            if (sig) {
                int known = 0;
                for (int k = 0; k < f->ncalls && !known; k++)
                    known = f->calls[k].sig && strcmp(f->calls[k].sig, sig) == 0;
                if (!known)
                    return fail(e,
                                "%s.parts[%zu].thoughtSignature: not a signature the model "
                                "sent",
                                where, i);
            }
            continue;
        }
        const char *name = str_or(json_object_get(fc, "name"), "");
        json_t *args = json_object_get(fc, "args");
        json_t *empty = json_object();
        int candidates = 0, match = 0, wanted_sig = 0;
        for (int k = 0; k < f->ncalls; k++) {
            sent_call *c = &f->calls[k];
            if (strcmp(c->name, name) != 0 || !json_equal(c->args, args ? args : empty))
                continue;
            candidates++;
            if (c->sig)
                wanted_sig = 1;
            if ((c->sig == NULL && sig == NULL) || (c->sig && sig && strcmp(c->sig, sig) == 0))
                match = 1;
        }
        json_decref(empty);
        if (candidates && !match)
            return fail(e,
                        "%s.parts[%zu]: functionCall %s %s (a thoughtSignature the model sent "
                        "beside a functionCall must be echoed back unchanged in that part)",
                        where, i, name,
                        sig ? (wanted_sig ? "carries a changed or misplaced thoughtSignature"
                                          : "carries a thoughtSignature the model did not send "
                                            "with it")
                            : "lacks its thoughtSignature");
        if (!candidates && sig)
            return fail(e, "%s.parts[%zu].thoughtSignature: not a signature the model sent", where,
                        i);
    }
    return 0;
}

/* Function responses of a user turn against the calls of the model turn before it. */
static int g_pairing(json_t *model_parts, json_t *user_parts, const char *where, verr *e)
{
    /* names (and ids, when the calls have them) as multisets */
    size_t nc = json_array_size(model_parts);
    char *used = calloc(nc ? nc : 1, 1);
    size_t i;
    json_t *p;
    int rc = 0;
    json_array_foreach(user_parts, i, p)
    {
        json_t *fr = pget(p, "functionResponse");
        if (!fr)
            continue;
        const char *name = str_or(json_object_get(fr, "name"), "");
        const char *id = str_or(json_object_get(fr, "id"), NULL);
        int found = 0;
        for (size_t k = 0; k < nc && !found; k++) {
            json_t *fc = pget(json_array_get(model_parts, k), "functionCall");
            if (!fc || used[k])
                continue;
            const char *cid = str_or(json_object_get(fc, "id"), NULL);
            if (strcmp(str_or(json_object_get(fc, "name"), ""), name) != 0)
                continue;
            if (cid && (!id || strcmp(cid, id) != 0))
                continue;
            used[k] = 1;
            found = 1;
        }
        if (!found) {
            rc = fail(e,
                      "%s.parts[%zu]: functionResponse %s%s%s answers no functionCall of the "
                      "preceding model turn",
                      where, i, name, id ? " id " : "", id ? id : "");
            break;
        }
    }
    free(used);
    return rc;
}

static int gemini_validate(fake_ai *f, json_t *b, verr *e)
{
    static const char *const top[] = {
        "contents",       "systemInstruction", "tools",  "toolConfig", "generationConfig",
        "safetySettings", "cachedContent",     "labels", NULL};
    if (!json_is_object(b))
        return fail(e, "Invalid JSON payload received. The body must be a JSON object");
    if (known_keys(b, top, 1, "", e))
        return -1;
    json_t *contents = pget(b, "contents");
    if (!json_is_array(contents) || json_array_size(contents) == 0)
        return fail(e, "* GenerateContentRequest.contents: contents is not specified");
    json_t *prev = NULL;
    int prev_calls = 0;
    size_t i;
    json_t *c;
    json_array_foreach(contents, i, c)
    {
        char w[64];
        snprintf(w, sizeof(w), "contents[%zu]", i);
        static const char *const ck[] = {"role", "parts", NULL};
        if (!json_is_object(c))
            return fail(e, "%s: must be an object", w);
        if (known_keys(c, ck, 1, w, e))
            return -1;
        const char *role = str_or(json_object_get(c, "role"), NULL);
        if (!role || (strcmp(role, "user") != 0 && strcmp(role, "model") != 0))
            return fail(e, "%s.role: Please use a valid role: user, model (got %s)", w,
                        role ? role : "none");
        int ncalls, nresp;
        if (g_parts(json_object_get(c, "parts"), w, &ncalls, &nresp, e))
            return -1;
        if (ncalls && strcmp(role, "model") != 0)
            return fail(e, "%s: functionCall parts belong in a model turn", w);
        if (nresp && strcmp(role, "user") != 0)
            return fail(e, "%s: functionResponse parts belong in a user turn", w);
        if (ncalls && (!prev || strcmp(str_or(json_object_get(prev, "role"), ""), "user") != 0))
            return fail(e,
                        "%s: Please ensure that function call turn comes immediately after a "
                        "user turn or after a function response turn.",
                        w);
        if (prev_calls && nresp == 0)
            return fail(e,
                        "%s: the model turn before made %d function call(s): this turn must "
                        "answer them with functionResponse parts",
                        w, prev_calls);
        if (nresp) {
            if (!prev_calls)
                return fail(e,
                            "%s: functionResponse parts without function calls in the "
                            "preceding model turn",
                            w);
            if (nresp != prev_calls)
                return fail(e,
                            "%s: Please ensure that the number of function response parts "
                            "(%d) is equal to the number of function call parts of the "
                            "function call turn (%d).",
                            w, nresp, prev_calls);
            if (g_pairing(json_object_get(prev, "parts"), json_object_get(c, "parts"), w, e))
                return -1;
        }
        if (strcmp(role, "model") == 0) {
            pthread_mutex_lock(&f->mu);
            int rc = g_signatures(f, json_object_get(c, "parts"), w, e);
            pthread_mutex_unlock(&f->mu);
            if (rc)
                return -1;
        }
        prev = c;
        prev_calls = ncalls;
    }
    json_t *si = pget(b, "systemInstruction");
    if (si) {
        static const char *const sk[] = {"role", "parts", NULL};
        if (!json_is_object(si) || known_keys(si, sk, 1, "system_instruction", e))
            return e->msg[0] ? -1 : fail(e, "system_instruction: must be a Content object");
        if (g_text_parts(json_object_get(si, "parts"), "system_instruction", e))
            return -1;
    }
    json_t *tools = pget(b, "tools");
    if (tools) {
        if (!json_is_array(tools))
            return fail(e, "tools: must be an array");
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            static const char *const tk[] = {
                "functionDeclarations", "googleSearch", "googleSearchRetrieval",
                "codeExecution",        "urlContext",   NULL};
            char w[64];
            snprintf(w, sizeof(w), "tools[%zu]", i);
            if (!json_is_object(t) || known_keys(t, tk, 1, w, e))
                return e->msg[0] ? -1 : fail(e, "%s: must be an object", w);
            json_t *decls = pget(t, "functionDeclarations");
            if (decls && !json_is_array(decls))
                return fail(e, "%s.function_declarations: must be an array", w);
            size_t k;
            json_t *d;
            json_array_foreach(decls, k, d)
            {
                static const char *const dk[] = {"name",     "description", "parameters",
                                                 "behavior", "response",    NULL};
                char dw[128];
                snprintf(dw, sizeof(dw), "%s.function_declarations[%zu]", w, k);
                if (!json_is_object(d) || known_keys(d, dk, 1, dw, e))
                    return e->msg[0] ? -1 : fail(e, "%s: must be an object", dw);
                json_t *name = json_object_get(d, "name");
                if (!json_is_string(name) || !valid_fn_name(json_string_value(name)))
                    return fail(e, "%s.name: Invalid function name", dw);
                json_t *desc = json_object_get(d, "description");
                if (desc && !json_is_string(desc))
                    return fail(e, "%s.description: must be a string", dw);
                json_t *params = json_object_get(d, "parameters");
                char pw[160];
                snprintf(pw, sizeof(pw), "%s.parameters", dw);
                if (params && g_schema(params, pw, 0, e))
                    return -1;
            }
        }
    }
    json_t *tc = pget(b, "toolConfig");
    if (tc) {
        static const char *const tk[] = {"functionCallingConfig", NULL};
        static const char *const fk[] = {"mode", "allowedFunctionNames", NULL};
        if (!json_is_object(tc) || known_keys(tc, tk, 1, "tool_config", e))
            return e->msg[0] ? -1 : fail(e, "tool_config: must be an object");
        json_t *fcc = pget(tc, "functionCallingConfig");
        if (fcc) {
            if (!json_is_object(fcc) ||
                known_keys(fcc, fk, 1, "tool_config.function_calling_config", e))
                return e->msg[0] ? -1 : fail(e, "function_calling_config: must be an object");
            const char *mode = str_or(json_object_get(fcc, "mode"), "AUTO");
            if (strcmp(mode, "AUTO") != 0 && strcmp(mode, "ANY") != 0 && strcmp(mode, "NONE") != 0)
                return fail(e, "tool_config.function_calling_config.mode: Invalid value \"%s\"",
                            mode);
        }
    }
    json_t *gc = pget(b, "generationConfig");
    if (gc) {
        static const char *const gk[] = {"temperature",
                                         "topP",
                                         "topK",
                                         "candidateCount",
                                         "maxOutputTokens",
                                         "stopSequences",
                                         "presencePenalty",
                                         "frequencyPenalty",
                                         "seed",
                                         "responseMimeType",
                                         "responseSchema",
                                         "responseJsonSchema",
                                         "responseModalities",
                                         "thinkingConfig",
                                         "responseLogprobs",
                                         "logprobs",
                                         "mediaResolution",
                                         "speechConfig",
                                         NULL};
        if (!json_is_object(gc) || known_keys(gc, gk, 1, "generation_config", e))
            return e->msg[0] ? -1 : fail(e, "generation_config: must be an object");
        json_t *t = json_object_get(gc, "temperature");
        if (t && (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 2))
            return fail(e, "generation_config.temperature: must be a number in [0, 2]");
        json_t *m = pget(gc, "maxOutputTokens");
        if (m && (!json_is_integer(m) || json_integer_value(m) <= 0))
            return fail(e, "generation_config.max_output_tokens: must be a positive integer");
    }
    return 0;
}

/* ---- Cohere ------------------------------------------------------------------- */

static int c_content(json_t *content, int tool, const char *where, verr *e)
{
    if (json_is_string(content))
        return 0;
    if (!json_is_array(content))
        return fail(e,
                    "invalid request: %s.content must be a string or an array of content "
                    "objects",
                    where);
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p)
    {
        const char *type = str_or(json_object_get(p, "type"), "");
        if (strcmp(type, "text") == 0) {
            if (!json_is_string(json_object_get(p, "text")))
                return fail(e, "invalid request: %s.content[%zu].text must be a string", where, i);
        } else if (tool && strcmp(type, "document") == 0) {
            if (!json_is_object(json_object_get(p, "document")))
                return fail(e, "invalid request: %s.content[%zu].document must be an object", where,
                            i);
        } else {
            return fail(e, "invalid request: %s.content[%zu].type \"%s\" is not valid", where, i,
                        type);
        }
    }
    return 0;
}

static int cohere_validate(json_t *b, verr *e)
{
    static const char *const top[] = {"model",
                                      "messages",
                                      "tools",
                                      "documents",
                                      "citation_options",
                                      "response_format",
                                      "safety_mode",
                                      "max_tokens",
                                      "stop_sequences",
                                      "temperature",
                                      "seed",
                                      "frequency_penalty",
                                      "presence_penalty",
                                      "k",
                                      "p",
                                      "return_prompt",
                                      "logprobs",
                                      "tool_choice",
                                      "strict_tools",
                                      "stream",
                                      "thinking",
                                      "priority",
                                      NULL};
    if (!json_is_object(b))
        return fail(e, "invalid request: the body must be a JSON object");
    const char *key = unknown_key(b, top, 0);
    if (key)
        return fail(e, "invalid request: unknown field \"%s\"", key);
    json_t *model = json_object_get(b, "model");
    if (!json_is_string(model) || !json_string_length(model))
        return fail(e, "invalid request: model must be a non-empty string");
    json_t *stream = json_object_get(b, "stream");
    if (stream && !json_is_false(stream))
        return fail(e, "invalid request: stream must be false for a non-streaming call");
    json_t *msgs = json_object_get(b, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return fail(e, "invalid request: messages must be a non-empty array");
    json_t *pending = NULL; /* ids of the last assistant turn's calls not answered yet */
    json_t *calls_of_turn = NULL;
    size_t i;
    json_t *m;
    int rc = 0;
    json_array_foreach(msgs, i, m)
    {
        char w[64];
        snprintf(w, sizeof(w), "messages[%zu]", i);
        if (!json_is_object(m)) {
            rc = fail(e, "invalid request: %s must be an object", w);
            break;
        }
        const char *role = str_or(json_object_get(m, "role"), "");
        static const char *const sys_keys[] = {"role", "content", NULL};
        static const char *const asst_keys[] = {"role",       "content",   "tool_plan",
                                                "tool_calls", "citations", NULL};
        static const char *const tool_keys[] = {"role", "tool_call_id", "content", NULL};
        if (strcmp(role, "tool") != 0 && pending && json_object_size(pending)) {
            const char *id;
            json_t *x;
            json_object_foreach(pending, id, x) break;
            rc = fail(e,
                      "invalid request: %s: tool call %s of the preceding assistant turn has "
                      "no tool result",
                      w, id);
            break;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "user") == 0) {
            if (known_keys(m, sys_keys, 0, w, e) || !json_object_get(m, "content") ||
                c_content(json_object_get(m, "content"), 0, w, e)) {
                rc = e->msg[0] ? -1 : fail(e, "invalid request: %s.content is required", w);
                break;
            }
            json_decref(pending);
            pending = NULL;
        } else if (strcmp(role, "assistant") == 0) {
            if (known_keys(m, asst_keys, 0, w, e)) {
                rc = -1;
                break;
            }
            json_t *content = json_object_get(m, "content");
            json_t *calls = json_object_get(m, "tool_calls");
            json_t *plan = json_object_get(m, "tool_plan");
            if (plan && !json_is_string(plan)) {
                rc = fail(e, "invalid request: %s.tool_plan must be a string", w);
                break;
            }
            if (!content && !json_array_size(calls)) {
                rc = fail(e,
                          "invalid request: %s: an assistant message needs content or "
                          "tool_calls",
                          w);
                break;
            }
            if (content && c_content(content, 0, w, e)) {
                rc = -1;
                break;
            }
            json_decref(pending);
            pending = json_object();
            json_decref(calls_of_turn);
            calls_of_turn = json_object();
            if (calls && !json_is_array(calls)) {
                rc = fail(e, "invalid request: %s.tool_calls must be an array", w);
                break;
            }
            size_t k;
            json_t *c;
            json_array_foreach(calls, k, c)
            {
                static const char *const ck[] = {"id", "type", "function", NULL};
                static const char *const fk[] = {"name", "arguments", NULL};
                char cw[128];
                snprintf(cw, sizeof(cw), "%s.tool_calls[%zu]", w, k);
                if (!json_is_object(c) || known_keys(c, ck, 0, cw, e)) {
                    rc = e->msg[0] ? -1 : fail(e, "invalid request: %s must be an object", cw);
                    break;
                }
                json_t *id = json_object_get(c, "id");
                json_t *fn = json_object_get(c, "function");
                if (!json_is_string(id) || !json_string_length(id)) {
                    rc = fail(e, "invalid request: %s.id must be a non-empty string", cw);
                    break;
                }
                if (strcmp(str_or(json_object_get(c, "type"), ""), "function") != 0) {
                    rc = fail(e, "invalid request: %s.type must be \"function\"", cw);
                    break;
                }
                if (!json_is_object(fn) || known_keys(fn, fk, 0, cw, e)) {
                    rc = e->msg[0] ? -1 : fail(e, "invalid request: %s.function required", cw);
                    break;
                }
                if (!json_is_string(json_object_get(fn, "name"))) {
                    rc = fail(e, "invalid request: %s.function.name must be a string", cw);
                    break;
                }
                if (!json_is_string(json_object_get(fn, "arguments"))) {
                    rc = fail(e,
                              "invalid request: %s.function.arguments must be a string "
                              "(JSON text), not a JSON object",
                              cw);
                    break;
                }
                json_object_set_new(pending, json_string_value(id), json_true());
                json_object_set_new(calls_of_turn, json_string_value(id), json_true());
            }
            if (rc)
                break;
        } else if (strcmp(role, "tool") == 0) {
            if (known_keys(m, tool_keys, 0, w, e)) {
                rc = -1;
                break;
            }
            const char *id = str_or(json_object_get(m, "tool_call_id"), NULL);
            if (!id) {
                rc = fail(e, "invalid request: %s.tool_call_id must be a string", w);
                break;
            }
            if (!calls_of_turn || !json_object_get(calls_of_turn, id)) {
                rc = fail(e,
                          "invalid request: %s: tool_call_id %s is not a tool call of the "
                          "preceding assistant message",
                          w, id);
                break;
            }
            if (!json_object_get(pending, id)) {
                rc = fail(e, "invalid request: %s: tool call %s already has a result", w, id);
                break;
            }
            json_object_del(pending, id);
            json_t *content = json_object_get(m, "content");
            if (!content) {
                rc = fail(e, "invalid request: %s.content is required", w);
                break;
            }
            if (c_content(content, 1, w, e)) {
                rc = -1;
                break;
            }
        } else {
            rc = fail(e,
                      "invalid request: %s.role \"%s\" must be one of system, user, "
                      "assistant, tool",
                      w, role);
            break;
        }
    }
    if (!rc && pending && json_object_size(pending))
        rc = fail(e, "invalid request: the last assistant message's tool calls have no tool "
                     "results");
    json_decref(pending);
    json_decref(calls_of_turn);
    if (rc)
        return rc;
    json_t *tools = json_object_get(b, "tools");
    if (tools) {
        if (!json_is_array(tools))
            return fail(e, "invalid request: tools must be an array");
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            static const char *const tk[] = {"type", "function", NULL};
            static const char *const fk[] = {"name", "description", "parameters", NULL};
            char w[64];
            snprintf(w, sizeof(w), "tools[%zu]", i);
            if (!json_is_object(t) || known_keys(t, tk, 0, w, e))
                return e->msg[0] ? -1 : fail(e, "invalid request: %s must be an object", w);
            if (strcmp(str_or(json_object_get(t, "type"), ""), "function") != 0)
                return fail(e, "invalid request: %s.type must be \"function\"", w);
            json_t *fn = json_object_get(t, "function");
            if (!json_is_object(fn) || known_keys(fn, fk, 0, w, e))
                return e->msg[0] ? -1 : fail(e, "invalid request: %s.function required", w);
            if (!json_is_string(json_object_get(fn, "name")))
                return fail(e, "invalid request: %s.function.name must be a string", w);
            json_t *params = json_object_get(fn, "parameters");
            if (params && !json_is_object(params))
                return fail(e, "invalid request: %s.function.parameters must be an object", w);
        }
    }
    json_t *t = json_object_get(b, "temperature");
    if (t && (!json_is_number(t) || json_number_value(t) < 0))
        return fail(e, "invalid request: temperature must be a non-negative number");
    json_t *mt = json_object_get(b, "max_tokens");
    if (mt && (!json_is_integer(mt) || json_integer_value(mt) <= 0))
        return fail(e, "invalid request: max_tokens must be a positive integer");
    return 0;
}

/* ---- OpenAI-compatible ------------------------------------------------------------ */

/* Content of a system/user/tool message: a string or an array of {type:"text",text}. */
static int o_content(json_t *content, const char *where, verr *e)
{
    if (json_is_string(content))
        return 0;
    if (!json_is_array(content))
        return fail(e, "Invalid type for '%s.content': expected a string or an array of objects",
                    where);
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p)
    {
        if (strcmp(str_or(json_object_get(p, "type"), ""), "text") != 0 ||
            !json_is_string(json_object_get(p, "text")))
            return fail(e,
                        "Invalid value: '%s.content[%zu]': expected {\"type\": \"text\", "
                        "\"text\": string}",
                        where, i);
    }
    return 0;
}

/* One tool call of an assistant message; records its id in pending and calls_of_turn. */
static int o_call(json_t *c, const char *cw, json_t *pending, json_t *calls_of_turn, verr *e)
{
    static const char *const ck[] = {"id", "type", "function", NULL};
    static const char *const fk[] = {"name", "arguments", NULL};
    if (!json_is_object(c))
        return fail(e, "Invalid type for '%s': expected an object", cw);
    if (known_keys(c, ck, 0, cw, e))
        return -1;
    json_t *id = json_object_get(c, "id");
    if (!json_is_string(id) || !json_string_length(id))
        return fail(e, "Missing required parameter: '%s.id'.", cw);
    if (strcmp(str_or(json_object_get(c, "type"), ""), "function") != 0)
        return fail(e, "Invalid value for '%s.type': expected 'function'.", cw);
    json_t *fn = json_object_get(c, "function");
    if (!json_is_object(fn))
        return fail(e, "Missing required parameter: '%s.function'.", cw);
    if (known_keys(fn, fk, 0, cw, e))
        return -1;
    if (!json_is_string(json_object_get(fn, "name")))
        return fail(e, "Missing required parameter: '%s.function.name'.", cw);
    if (!json_is_string(json_object_get(fn, "arguments")))
        return fail(e,
                    "Invalid type for '%s.function.arguments': expected a string (JSON text), "
                    "but got %s instead.",
                    cw, json_is_object(json_object_get(fn, "arguments")) ? "an object" : "none");
    if (json_object_get(calls_of_turn, json_string_value(id)))
        return fail(e, "Invalid value: '%s.id': duplicate tool call id %s.", cw,
                    json_string_value(id));
    json_object_set_new(pending, json_string_value(id), json_true());
    json_object_set_new(calls_of_turn, json_string_value(id), json_true());
    return 0;
}

static int o_messages(json_t *msgs, verr *e)
{
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return fail(e, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                       "but got an empty array instead.");
    json_t *pending = json_object();       /* calls of the last assistant turn not answered */
    json_t *calls_of_turn = json_object(); /* every call of the last assistant turn */
    size_t i;
    json_t *m;
    int rc = 0;
    json_array_foreach(msgs, i, m)
    {
        char w[64];
        snprintf(w, sizeof(w), "messages[%zu]", i);
        if (!json_is_object(m)) {
            rc = fail(e, "Invalid type for '%s': expected an object", w);
            break;
        }
        const char *role = str_or(json_object_get(m, "role"), "");
        static const char *const sys_keys[] = {"role", "content", "name", NULL};
        static const char *const asst_keys[] = {"role",       "content", "name",
                                                "tool_calls", "refusal", NULL};
        static const char *const tool_keys[] = {"role", "tool_call_id", "content", NULL};
        if (strcmp(role, "tool") != 0 && json_object_size(pending)) {
            const char *id;
            json_t *x;
            json_object_foreach(pending, id, x) break;
            rc = fail(e,
                      "An assistant message with 'tool_calls' must be followed by tool messages "
                      "responding to each 'tool_call_id'. The following tool_call_ids did not "
                      "have response messages: %s",
                      id);
            break;
        }
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0 ||
            strcmp(role, "user") == 0) {
            if (known_keys(m, sys_keys, 0, w, e) ||
                (!json_object_get(m, "content") &&
                 fail(e, "Missing required parameter: '%s.content'.", w)) ||
                o_content(json_object_get(m, "content"), w, e)) {
                rc = -1;
                break;
            }
            json_object_clear(calls_of_turn);
        } else if (strcmp(role, "assistant") == 0) {
            if (known_keys(m, asst_keys, 0, w, e)) {
                rc = -1;
                break;
            }
            json_t *content = json_object_get(m, "content");
            json_t *calls = json_object_get(m, "tool_calls");
            if (calls && (!json_is_array(calls) || json_array_size(calls) == 0)) {
                rc = fail(e, "Invalid '%s.tool_calls': expected a non-empty array.", w);
                break;
            }
            if ((!content || json_is_null(content)) && !calls) {
                rc = fail(e, "Missing required parameter: '%s.content'.", w);
                break;
            }
            if (content && !json_is_null(content) && o_content(content, w, e)) {
                rc = -1;
                break;
            }
            json_object_clear(pending);
            json_object_clear(calls_of_turn);
            size_t k;
            json_t *c;
            json_array_foreach(calls, k, c)
            {
                char cw[128];
                snprintf(cw, sizeof(cw), "%s.tool_calls[%zu]", w, k);
                if ((rc = o_call(c, cw, pending, calls_of_turn, e)))
                    break;
            }
            if (rc)
                break;
        } else if (strcmp(role, "tool") == 0) {
            if (known_keys(m, tool_keys, 0, w, e)) {
                rc = -1;
                break;
            }
            const char *id = str_or(json_object_get(m, "tool_call_id"), NULL);
            if (!id) {
                rc = fail(e, "Missing required parameter: '%s.tool_call_id'.", w);
                break;
            }
            if (!json_object_get(calls_of_turn, id)) {
                rc = fail(e,
                          "Invalid parameter: messages with role 'tool' must be a response to a "
                          "preceeding message with 'tool_calls' (%s: tool_call_id %s).",
                          w, id);
                break;
            }
            if (!json_object_get(pending, id)) {
                rc =
                    fail(e, "Invalid parameter: '%s': tool call %s already has a response.", w, id);
                break;
            }
            json_object_del(pending, id);
            if (!json_object_get(m, "content")) {
                rc = fail(e, "Missing required parameter: '%s.content'.", w);
                break;
            }
            if (o_content(json_object_get(m, "content"), w, e)) {
                rc = -1;
                break;
            }
        } else {
            rc = fail(e,
                      "Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', "
                      "'tool', 'function', and 'developer'. (%s.role)",
                      role, w);
            break;
        }
    }
    if (!rc && json_object_size(pending))
        rc = fail(e, "An assistant message with 'tool_calls' must be followed by tool messages "
                     "responding to each 'tool_call_id'.");
    json_decref(pending);
    json_decref(calls_of_turn);
    return rc;
}

static int openai_validate(json_t *b, verr *e)
{
    static const char *const top[] = {"model",
                                      "messages",
                                      "tools",
                                      "tool_choice",
                                      "parallel_tool_calls",
                                      "temperature",
                                      "top_p",
                                      "n",
                                      "stream",
                                      "stream_options",
                                      "stop",
                                      "max_tokens",
                                      "max_completion_tokens",
                                      "presence_penalty",
                                      "frequency_penalty",
                                      "logit_bias",
                                      "logprobs",
                                      "top_logprobs",
                                      "response_format",
                                      "seed",
                                      "user",
                                      NULL};
    if (!json_is_object(b))
        return fail(e, "Invalid type for request body: expected an object");
    const char *key = unknown_key(b, top, 0);
    if (key)
        return fail(e, "Unrecognized request argument supplied: %s", key);
    json_t *model = json_object_get(b, "model");
    if (!json_is_string(model) || !json_string_length(model))
        return fail(e, "you must provide a model parameter");
    json_t *stream = json_object_get(b, "stream");
    if (stream && !json_is_false(stream))
        return fail(e, "stream must be false: this server answers one JSON body");
    if (o_messages(json_object_get(b, "messages"), e))
        return -1;
    json_t *tools = json_object_get(b, "tools");
    size_t i;
    json_t *t;
    if (tools && !json_is_array(tools))
        return fail(e, "Invalid type for 'tools': expected an array");
    json_array_foreach(tools, i, t)
    {
        static const char *const tk[] = {"type", "function", NULL};
        static const char *const fk[] = {"name", "description", "parameters", "strict", NULL};
        char w[64];
        snprintf(w, sizeof(w), "tools[%zu]", i);
        if (!json_is_object(t))
            return fail(e, "Invalid type for '%s': expected an object", w);
        if (known_keys(t, tk, 0, w, e))
            return -1;
        if (strcmp(str_or(json_object_get(t, "type"), ""), "function") != 0)
            return fail(e, "Invalid value for '%s.type': expected 'function'.", w);
        json_t *fn = json_object_get(t, "function");
        if (!json_is_object(fn))
            return fail(e, "Missing required parameter: '%s.function'.", w);
        if (known_keys(fn, fk, 0, w, e))
            return -1;
        json_t *name = json_object_get(fn, "name");
        if (!json_is_string(name) || !valid_fn_name(json_string_value(name)))
            return fail(e,
                        "Invalid '%s.function.name': string does not match pattern "
                        "'^[a-zA-Z0-9_-]{1,64}$'.",
                        w);
        json_t *params = json_object_get(fn, "parameters");
        if (params && !json_is_object(params))
            return fail(e, "Invalid type for '%s.function.parameters': expected an object", w);
    }
    json_t *choice = json_object_get(b, "tool_choice");
    if (choice) {
        if (!json_array_size(tools))
            return fail(e, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                           "'tools' are specified.");
        const char *c = json_string_value(choice);
        int ok =
            c && (strcmp(c, "none") == 0 || strcmp(c, "auto") == 0 || strcmp(c, "required") == 0);
        if (!c)
            ok = json_is_object(choice) &&
                 strcmp(str_or(json_object_get(choice, "type"), ""), "function") == 0 &&
                 json_is_string(json_object_get(json_object_get(choice, "function"), "name"));
        if (!ok)
            return fail(e, "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' "
                           "or a named function.");
    }
    json_t *temp = json_object_get(b, "temperature");
    if (temp &&
        (!json_is_number(temp) || json_number_value(temp) < 0 || json_number_value(temp) > 2))
        return fail(e, "Invalid 'temperature': expected a number between 0 and 2.");
    json_t *mt = json_object_get(b, "max_tokens");
    if (mt && (!json_is_integer(mt) || json_integer_value(mt) <= 0))
        return fail(e, "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1.");
    return 0;
}

/* ---- answers ------------------------------------------------------------------------ */

typedef struct answer {
    int status;
    char *body;
    char hname[64];
    char hvalue[256];
} answer;

static void set_json(answer *a, int status, json_t *j)
{
    a->status = status;
    a->body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
}

static const char *g_status_name(int status)
{
    switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 409: return "ABORTED";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 500: return "INTERNAL";
    case 501: return "NOT_IMPLEMENTED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return "UNKNOWN";
    }
}

static const char *g_message(int status)
{
    switch (status) {
    case 400: return "Request contains an invalid argument.";
    case 401: return "Request had invalid authentication credentials.";
    case 403: return "The caller does not have permission";
    case 404:
        return "models/m is not found for API version v1beta, or is not supported for "
               "generateContent. Call ListModels to see the list of available models and their "
               "supported methods.";
    case 429:
        return "You exceeded your current quota, please check your plan and billing details. "
               "For more information on this error, head to: "
               "https://ai.google.dev/gemini-api/docs/rate-limits.";
    case 500:
        return "An internal error has occurred. Please retry or report in "
               "https://developers.generativeai.google/guide/troubleshooting";
    case 503: return "The model is overloaded. Please try again later.";
    case 504: return "The request timed out. Please try again.";
    default: return "Unknown error.";
    }
}

static void g_error(answer *a, int status, const char *message, json_t *details)
{
    json_t *err = json_pack("{s:i, s:s, s:s}", "code", status, "message",
                            message ? message : g_message(status), "status", g_status_name(status));
    if (details)
        json_object_set_new(err, "details", details);
    set_json(a, status, json_pack("{s:o}", "error", err));
}

static json_t *g_quota_details(const char *quota_id, const char *metric, double retry_s)
{
    json_t *d =
        json_pack("[{s:s, s:[{s:s, s:s, s:{s:s, s:s}, s:s}]}, {s:s, s:[{s:s, s:s}]}]", "@type",
                  "type.googleapis.com/google.rpc.QuotaFailure", "violations", "quotaMetric",
                  metric, "quotaId", quota_id, "quotaDimensions", "location", "global", "model",
                  "m", "quotaValue", "15", "@type", "type.googleapis.com/google.rpc.Help", "links",
                  "description", "Learn more about Gemini API quotas", "url",
                  "https://ai.google.dev/gemini-api/docs/rate-limits");
    if (retry_s >= 0) {
        char delay[32];
        snprintf(delay, sizeof(delay), "%gs", retry_s);
        json_array_append_new(d, json_pack("{s:s, s:s}", "@type",
                                           "type.googleapis.com/google.rpc.RetryInfo", "retryDelay",
                                           delay));
    }
    return d;
}

static void c_error(fake_ai *f, answer *a, int status, const char *message)
{
    char id[64];
    pthread_mutex_lock(&f->mu);
    snprintf(id, sizeof(id), "0f6e4b1c-fake-4a1e-9c3d-%012lu", ++f->seq);
    pthread_mutex_unlock(&f->mu);
    set_json(a, status, json_pack("{s:s, s:s}", "id", id, "message", message));
}

static const char *c_message(int status)
{
    switch (status) {
    case 400: return "invalid request: the request is not valid";
    case 401: return "invalid api token";
    case 402:
        return "Please add or update your payment method at https://dashboard.cohere.com/billing "
               "to continue";
    case 404:
        return "model 'm' not found, make sure the correct model ID was used and that you have "
               "access to the model.";
    case 429:
        return "You are using a Trial key, which is limited to 10 API calls / minute. You can "
               "continue to use the Trial key for free or upgrade to a Production key with "
               "higher rate limits at 'https://dashboard.cohere.com/api-keys'.";
    case 499: return "request cancelled";
    case 500: return "internal server error, this has been reported to our developers";
    case 503: return "service unavailable";
    default: return "unexpected error";
    }
}

static json_t *g_usage(int thoughts)
{
    json_t *u = json_pack("{s:i, s:i, s:i}", "promptTokenCount", FAKE_AI_IN_TOKENS,
                          "candidatesTokenCount", FAKE_AI_OUT_TOKENS, "totalTokenCount",
                          FAKE_AI_IN_TOKENS + FAKE_AI_OUT_TOKENS + thoughts);
    if (thoughts)
        json_object_set_new(u, "thoughtsTokenCount", json_integer(thoughts));
    return u;
}

static void g_success(fake_ai *f, answer *a, json_t *parts, const char *finish, const char *model,
                      int thoughts)
{
    char rid[32];
    pthread_mutex_lock(&f->mu);
    snprintf(rid, sizeof(rid), "fakeResp%lu", ++f->seq);
    pthread_mutex_unlock(&f->mu);
    json_t *cand = json_pack("{s:{s:o, s:s}, s:s, s:i}", "content", "parts", parts, "role", "model",
                             "finishReason", finish, "index", 0);
    set_json(a, 200,
             json_pack("{s:[o], s:o, s:s, s:s}", "candidates", cand, "usageMetadata",
                       g_usage(thoughts), "modelVersion", model, "responseId", rid));
}

static json_t *c_usage(void)
{
    return json_pack("{s:{s:i, s:i}, s:{s:i, s:i}}", "billed_units", "input_tokens",
                     FAKE_AI_IN_TOKENS, "output_tokens", FAKE_AI_OUT_TOKENS, "tokens",
                     "input_tokens", FAKE_AI_COHERE_RAW_IN, "output_tokens", FAKE_AI_OUT_TOKENS);
}

static void c_success(fake_ai *f, answer *a, const char *finish, json_t *message)
{
    char id[64];
    pthread_mutex_lock(&f->mu);
    snprintf(id, sizeof(id), "c14c80c3-fake-4d2b-b5a4-%012lu", ++f->seq);
    pthread_mutex_unlock(&f->mu);
    set_json(a, 200,
             json_pack("{s:s, s:s, s:o, s:o}", "id", id, "finish_reason", finish, "message",
                       message, "usage", c_usage()));
}

static void o_error_full(answer *a, int status, const char *message, const char *type,
                         const char *code)
{
    set_json(a, status,
             json_pack("{s:{s:s, s:s, s:n, s:o}}", "error", "message", message, "type", type,
                       "param", "code", code ? json_string(code) : json_null()));
}

static void o_error(answer *a, int status)
{
    switch (status) {
    case 400:
        o_error_full(a, 400, "The request is not valid.", "invalid_request_error", NULL);
        break;
    case 401:
        o_error_full(a, 401,
                     "Incorrect API key provided: sk-fa***************1234. You can find your "
                     "API key at https://platform.openai.com/account/api-keys.",
                     "invalid_request_error", "invalid_api_key");
        break;
    case 403:
        o_error_full(a, 403, "Project does not have access to model `m`.", "invalid_request_error",
                     "model_not_found");
        break;
    case 404:
        o_error_full(a, 404, "The model `m` does not exist or you do not have access to it.",
                     "invalid_request_error", "model_not_found");
        break;
    case 422:
        o_error_full(a, 422, "Unprocessable entity: messages: field required",
                     "invalid_request_error", NULL);
        break;
    case 429:
        o_error_full(a, 429,
                     "Rate limit reached for m on requests per min (RPM): Limit 3, Used 3, "
                     "Requested 1. Please try again in 20s.",
                     "requests", "rate_limit_exceeded");
        break;
    case 503: /* llama.cpp while its model loads */
        set_json(a, 503,
                 json_pack("{s:{s:i, s:s, s:s}}", "error", "code", 503, "message", "Loading model",
                           "type", "unavailable_error"));
        break;
    default:
        o_error_full(a, status,
                     "The server had an error while processing your request. Sorry about that!",
                     "server_error", NULL);
        break;
    }
}

/* A chat.completion with one choice. message is taken. */
static void o_success(fake_ai *f, answer *a, const char *finish, json_t *message, const char *model)
{
    char id[64];
    pthread_mutex_lock(&f->mu);
    snprintf(id, sizeof(id), "chatcmpl-fake%lu", ++f->seq);
    pthread_mutex_unlock(&f->mu);
    set_json(a, 200,
             json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:n, s:s}], s:{s:i, s:i, s:i}, s:s}",
                       "id", id, "object", "chat.completion", "created", 1735689600, "model", model,
                       "choices", "index", 0, "message", message, "logprobs", "finish_reason",
                       finish, "usage", "prompt_tokens", FAKE_AI_IN_TOKENS, "completion_tokens",
                       FAKE_AI_OUT_TOKENS, "total_tokens", FAKE_AI_IN_TOKENS + FAKE_AI_OUT_TOKENS,
                       "system_fingerprint", "fp_fake"));
}

static void text_answer(fake_ai *f, answer *a, const char *text, const char *finish,
                        const char *model)
{
    if (f->kind == FAKE_GEMINI)
        g_success(f, a, json_pack("[{s:s}]", "text", text), finish ? finish : "STOP", model, 0);
    else if (f->kind == FAKE_OPENAI)
        o_success(f, a, finish ? finish : "stop",
                  json_pack("{s:s, s:s, s:n}", "role", "assistant", "content", text, "refusal"),
                  model);
    else
        c_success(f, a, finish ? finish : "COMPLETE",
                  json_pack("{s:s, s:[{s:s, s:s}]}", "role", "assistant", "content", "type", "text",
                            "text", text));
}

/* OpenAI: content null, tool_calls with arguments as JSON strings (or as the item asks). */
static void o_calls_answer(fake_ai *f, answer *a, json_t *calls, const char *finish,
                           const char *model)
{
    json_t *tcs = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
    {
        const char *name = str_or(json_object_get(c, "name"), "tool");
        json_t *args = json_object_get(c, "args");
        if (!args)
            args = json_object_get(c, "arguments");
        json_t *fn = json_pack("{s:s}", "name", name);
        const char *raw = str_or(json_object_get(c, "raw_arguments"), NULL);
        if (raw) {
            json_object_set_new(fn, "arguments", json_string(raw));
        } else if (json_is_true(json_object_get(c, "object_arguments"))) {
            json_object_set_new(fn, "arguments", args ? json_deep_copy(args) : json_object());
        } else {
            char *argstr = args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
            json_object_set_new(fn, "arguments", json_string(argstr ? argstr : "{}"));
            free(argstr);
        }
        json_t *tc = json_pack("{s:s, s:o}", "type", "function", "function", fn);
        if (!json_is_true(json_object_get(c, "no_id"))) {
            char gen[64];
            const char *id = str_or(json_object_get(c, "id"), NULL);
            if (!id) {
                pthread_mutex_lock(&f->mu);
                snprintf(gen, sizeof(gen), "call_fake%lu", ++f->seq);
                pthread_mutex_unlock(&f->mu);
                id = gen;
            }
            json_object_set_new(tc, "id", json_string(id));
        }
        json_array_append_new(tcs, tc);
    }
    o_success(f, a, finish ? finish : "tool_calls",
              json_pack("{s:s, s:n, s:o, s:n}", "role", "assistant", "content", "tool_calls", tcs,
                        "refusal"),
              model);
}

static void calls_answer(fake_ai *f, answer *a, json_t *calls, const char *finish,
                         const char *model)
{
    size_t i;
    json_t *c;
    if (f->kind == FAKE_OPENAI) {
        o_calls_answer(f, a, calls, finish, model);
        return;
    }
    if (f->kind == FAKE_GEMINI) {
        json_t *parts = json_array();
        json_array_foreach(calls, i, c)
        {
            json_t *args = json_object_get(c, "args");
            if (!args)
                args = json_object_get(c, "arguments");
            args = args ? json_deep_copy(args) : json_object();
            const char *name = str_or(json_object_get(c, "name"), "tool");
            json_t *fc = json_pack("{s:s, s:O}", "name", name, "args", args);
            const char *id = str_or(json_object_get(c, "id"), NULL);
            if (id)
                json_object_set_new(fc, "id", json_string(id));
            json_t *part = json_pack("{s:o}", "functionCall", fc);
            char gen[64];
            const char *sig = NULL;
            json_t *given = json_object_get(c, "thought_signature");
            pthread_mutex_lock(&f->mu);
            if (json_is_string(given)) {
                sig = json_string_length(given) ? json_string_value(given) : NULL;
            } else if (i == 0) {
                snprintf(gen, sizeof(gen), "CsUBAdHtim9fake%lu+/sig==", ++f->seq);
                sig = gen;
            }
            if (sig)
                json_object_set_new(part, "thoughtSignature", json_string(sig));
            f->calls = grow(f->calls, &f->capcalls, f->ncalls + 1, sizeof(sent_call));
            sent_call *s = &f->calls[f->ncalls++];
            s->name = xstrdup(name);
            s->args = json_incref(args);
            s->id = xstrdup(id);
            s->sig = xstrdup(sig);
            pthread_mutex_unlock(&f->mu);
            json_decref(args);
            json_array_append_new(parts, part);
        }
        g_success(f, a, parts, finish ? finish : "STOP", model, 0);
        return;
    }
    json_t *tcs = json_array();
    json_t *names = json_array();
    json_array_foreach(calls, i, c)
    {
        const char *name = str_or(json_object_get(c, "name"), "tool");
        char gen[96];
        const char *id = str_or(json_object_get(c, "id"), NULL);
        if (!id) {
            pthread_mutex_lock(&f->mu);
            snprintf(gen, sizeof(gen), "%s_fake%lu", name, ++f->seq);
            pthread_mutex_unlock(&f->mu);
            id = gen;
        }
        char *argstr;
        const char *raw = str_or(json_object_get(c, "raw_arguments"), NULL);
        if (raw) {
            argstr = strdup(raw);
        } else {
            json_t *args = json_object_get(c, "args");
            if (!args)
                args = json_object_get(c, "arguments");
            argstr = args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
        }
        json_array_append_new(tcs,
                              json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function",
                                        "function", "name", name, "arguments", argstr));
        json_array_append_new(names, json_string(name));
        free(argstr);
    }
    char plan[256] = "I will call";
    json_array_foreach(names, i, c)
    {
        size_t n = strlen(plan);
        snprintf(plan + n, sizeof(plan) - n, "%s %s", i ? "," : "", json_string_value(c));
    }
    json_decref(names);
    size_t n = strlen(plan);
    snprintf(plan + n, sizeof(plan) - n, ".");
    c_success(
        f, a, finish ? finish : "TOOL_CALL",
        json_pack("{s:s, s:s, s:o}", "role", "assistant", "tool_plan", plan, "tool_calls", tcs));
}

/* Waits up to ms, or until the server stops. */
static void hang(fake_ai *f, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    while (!f->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&f->cond, &f->mu, &dl);
    pthread_mutex_unlock(&f->mu);
}

static void scripted(fake_ai *f, answer *a, const char *model)
{
    pthread_mutex_lock(&f->mu);
    reply *r = f->head;
    if (r) {
        f->head = r->next;
        if (!f->head)
            f->tail = NULL;
        f->npending--;
    }
    pthread_mutex_unlock(&f->mu);
    if (!r) {
        text_answer(f, a, "ok", NULL, model);
        return;
    }
    switch (r->kind) {
    case R_TEXT: text_answer(f, a, r->text, r->finish, model); break;
    case R_CALLS: calls_answer(f, a, r->calls, r->finish, model); break;
    case R_ERROR:
        if (f->kind == FAKE_GEMINI) {
            json_t *details = NULL;
            if (r->status == 429)
                details = g_quota_details(
                    "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    r->retry_s);
            g_error(a, r->status, NULL, details);
        } else {
            if (f->kind == FAKE_OPENAI)
                o_error(a, r->status);
            else
                c_error(f, a, r->status, c_message(r->status));
            if (r->status == 429 && r->retry_s >= 0) {
                snprintf(a->hname, sizeof(a->hname), "Retry-After");
                snprintf(a->hvalue, sizeof(a->hvalue), "%.0f", ceil(r->retry_s));
            }
        }
        break;
    case R_QUOTA:
        if (f->kind == FAKE_GEMINI)
            g_error(a, 429, NULL,
                    g_quota_details(
                        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                        "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        30));
        else if (f->kind == FAKE_OPENAI)
            o_error_full(a, 429,
                         "You exceeded your current quota, please check your plan and billing "
                         "details. For more information on this error, read the docs: "
                         "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                         "insufficient_quota", "insufficient_quota");
        else
            c_error(f, a, 429,
                    "You are using a Trial key, which is limited to 1000 API calls / month. You "
                    "can continue to use the Trial key for free or upgrade to a Production key "
                    "with higher rate limits at 'https://dashboard.cohere.com/api-keys'.");
        break;
    case R_HANG:
        hang(f, r->ms);
        text_answer(f, a, "ok", NULL, model);
        break;
    case R_BLOCKED:
        if (f->kind == FAKE_GEMINI)
            set_json(a, 200,
                     json_pack("{s:{s:s, s:[{s:s, s:s}]}, s:{s:i, s:i}, s:s}", "promptFeedback",
                               "blockReason", "SAFETY", "safetyRatings", "category",
                               "HARM_CATEGORY_DANGEROUS_CONTENT", "probability", "HIGH",
                               "usageMetadata", "promptTokenCount", FAKE_AI_IN_TOKENS,
                               "totalTokenCount", FAKE_AI_IN_TOKENS, "modelVersion", model));
        else if (f->kind == FAKE_OPENAI)
            o_success(f, a, "content_filter",
                      json_pack("{s:s, s:n, s:n}", "role", "assistant", "content", "refusal"),
                      model);
        else
            text_answer(f, a, "", "ERROR", model);
        break;
    case R_FINISH_ERROR:
        if (f->kind == FAKE_GEMINI)
            set_json(a, 200,
                     json_pack("{s:[{s:s, s:i}], s:o, s:s}", "candidates", "finishReason", "OTHER",
                               "index", 0, "usageMetadata", g_usage(0), "modelVersion", model));
        else if (f->kind == FAKE_OPENAI)
            o_error_full(a, 200, "upstream model server crashed while generating", "server_error",
                         NULL);
        else
            c_success(f, a, "ERROR", json_pack("{s:s, s:[]}", "role", "assistant", "content"));
        break;
    case R_THOUGHT:
        if (f->kind == FAKE_GEMINI)
            g_success(f, a,
                      json_pack("[{s:s, s:b}, {s:s}]", "text",
                                "**Thinking** The user wants a short answer; I will reply.",
                                "thought", 1, "text", r->text),
                      "STOP", model, 7);
        else if (f->kind == FAKE_OPENAI)
            o_success(f, a, "stop",
                      json_pack("{s:s, s:s, s:s}", "role", "assistant", "reasoning_content",
                                "**Thinking** The user wants a short answer; I will reply.",
                                "content", r->text),
                      model);
        else
            text_answer(f, a, r->text, NULL, model);
        break;
    case R_RAW:
        a->status = r->status;
        a->body = strdup(r->text);
        if (r->header) {
            const char *colon = strchr(r->header, ':');
            if (colon) {
                snprintf(a->hname, sizeof(a->hname), "%.*s", (int)(colon - r->header), r->header);
                const char *v = colon + 1;
                while (*v == ' ')
                    v++;
                snprintf(a->hvalue, sizeof(a->hvalue), "%s", v);
            }
        }
        break;
    }
    reply_free(r);
}

/* ---- the HTTP side ------------------------------------------------------------------ */

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    char lower[256];
    size_t i = 0;
    for (; key[i] && i + 1 < sizeof(lower); i++)
        lower[i] = (char)tolower((unsigned char)key[i]);
    lower[i] = '\0';
    json_object_set_new((json_t *)cls, lower, json_string(value ? value : ""));
    return MHD_YES;
}

static void handle(fake_ai *f, struct MHD_Connection *conn, const char *url, const char *method,
                   record *rec, answer *a)
{
    verr e = {{0}};
    char model[256] = "";
    if (f->kind == FAKE_GEMINI) {
        const char *pre = "/v1beta/models/", *suf = ":generateContent";
        size_t lp = strlen(pre), ls = strlen(suf), lu = strlen(url);
        int ok = strcmp(method, "POST") == 0 && lu > lp + ls && strncmp(url, pre, lp) == 0 &&
                 strcmp(url + lu - ls, suf) == 0;
        if (ok)
            snprintf(model, sizeof(model), "%.*s", (int)(lu - lp - ls), url + lp);
        if (!ok || strchr(model, '/') || strchr(model, ':')) {
            snprintf(e.msg, sizeof(e.msg), "not found: %s %s", method, url);
            add_violation(f, e.msg);
            g_error(a, 404, "Requested entity was not found.", NULL);
            return;
        }
        const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-goog-api-key");
        if (!key) {
            add_violation(f, "no x-goog-api-key header");
            g_error(a, 403,
                    "Method doesn't allow unregistered callers (callers without established "
                    "identity). Please use API Key or other form of API consumer identity to "
                    "call this API.",
                    NULL);
            return;
        }
        if (strcmp(key, f->key) != 0) {
            add_violation(f, "wrong API key");
            g_error(a, 400, "API key not valid. Please pass a valid API key.",
                    json_pack("[{s:s, s:s, s:s, s:{s:s}}]", "@type",
                              "type.googleapis.com/google.rpc.ErrorInfo", "reason",
                              "API_KEY_INVALID", "domain", "googleapis.com", "metadata", "service",
                              "generativelanguage.googleapis.com"));
            return;
        }
        if (!rec->json || gemini_validate(f, rec->json, &e)) {
            if (!rec->json)
                snprintf(e.msg, sizeof(e.msg), "Invalid JSON payload received. Not JSON.");
            add_violation(f, e.msg);
            g_error(a, 400, e.msg, NULL);
            return;
        }
    } else if (f->kind == FAKE_OPENAI) {
        if (strcmp(method, "POST") != 0 || strcmp(url, "/v1/chat/completions") != 0) {
            snprintf(e.msg, sizeof(e.msg), "not found: %s %s", method, url);
            add_violation(f, e.msg);
            o_error_full(a, 404, "Not Found", "invalid_request_error", NULL);
            return;
        }
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        if (!f->keyless && (!auth || !auth[0])) {
            add_violation(f, "no Authorization header");
            o_error_full(a, 401,
                         "You didn't provide an API key. You need to provide your API key in an "
                         "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                         "YOUR_KEY).",
                         "invalid_request_error", NULL);
            return;
        }
        if (!f->keyless && (strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, f->key) != 0)) {
            /* the real service quotes the key given, masked */
            const char *given = strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : auth;
            size_t n = strlen(given);
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "Incorrect API key provided: %.*s****%s. You can find your API key at "
                     "https://platform.openai.com/account/api-keys.",
                     n > 8 ? 3 : 0, given, n > 8 ? given + n - 4 : "");
            add_violation(f, "wrong API key or not a Bearer token");
            o_error_full(a, 401, msg, "invalid_request_error", "invalid_api_key");
            return;
        }
        if (!rec->json || openai_validate(rec->json, &e)) {
            if (!rec->json)
                snprintf(e.msg, sizeof(e.msg),
                         "We could not parse the JSON body of your request. (HINT: This likely "
                         "means you aren't using your HTTP library correctly.)");
            add_violation(f, e.msg);
            o_error_full(a, 400, e.msg, "invalid_request_error", NULL);
            return;
        }
        snprintf(model, sizeof(model), "%s", str_or(json_object_get(rec->json, "model"), ""));
    } else {
        if (strcmp(method, "POST") != 0 || strcmp(url, "/v2/chat") != 0) {
            snprintf(e.msg, sizeof(e.msg), "not found: %s %s", method, url);
            add_violation(f, e.msg);
            c_error(f, a, 404, "Not Found");
            return;
        }
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        if (!auth || !auth[0]) {
            add_violation(f, "no Authorization header");
            c_error(f, a, 401, "no api key supplied");
            return;
        }
        if (strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, f->key) != 0) {
            add_violation(f, "wrong API key or not a Bearer token");
            c_error(f, a, 401, "invalid api token");
            return;
        }
        if (!rec->json || cohere_validate(rec->json, &e)) {
            if (!rec->json)
                snprintf(e.msg, sizeof(e.msg), "invalid request: body is not valid JSON");
            add_violation(f, e.msg);
            c_error(f, a, 400, e.msg);
            return;
        }
        snprintf(model, sizeof(model), "%s", str_or(json_object_get(rec->json, "model"), ""));
    }
    scripted(f, a, model);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    fake_ai *f = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof(*cs));
        if (!cs)
            return MHD_NO;
        cs->time = th_now_s();
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size) {
        char *nb = realloc(cs->body, cs->len + *upload_size + 1);
        if (!nb)
            return MHD_NO;
        cs->body = nb;
        memcpy(cs->body + cs->len, upload_data, *upload_size);
        cs->len += *upload_size;
        cs->body[cs->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    record *rec = calloc(1, sizeof(*rec));
    if (!rec)
        return MHD_NO;
    rec->path = strdup(url);
    rec->body = strdup(cs->body ? cs->body : "");
    rec->json = json_loads(rec->body, 0, NULL);
    rec->headers = json_object();
    rec->time = cs->time;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, rec->headers);
    pthread_mutex_lock(&f->mu);
    f->recs = grow(f->recs, &f->caprecs, f->nrecs + 1, sizeof(record *));
    f->recs[f->nrecs++] = rec;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);

    answer a = {0};
    handle(f, conn, url, method, rec, &a);
    pthread_mutex_lock(&f->mu);
    rec->status = a.status;
    pthread_mutex_unlock(&f->mu);
    const char *body = a.body ? a.body : "";
    if (getenv("FAKE_AI_TRACE"))
        fprintf(stderr, "fake_ai <- %s %s %s\nfake_ai -> %d %s%s%s%s%s\n", method, url, rec->body,
                a.status, a.hname, a.hname[0] ? ": " : "", a.hvalue, a.hname[0] ? " " : "", body);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ok = MHD_NO;
    if (resp) {
        MHD_add_response_header(resp, "Content-Type", "application/json; charset=UTF-8");
        if (a.hname[0])
            MHD_add_response_header(resp, a.hname, a.hvalue);
        ok = MHD_queue_response(conn, (unsigned)a.status, resp);
        MHD_destroy_response(resp);
    }
    free(a.body);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    conn_state *cs = *con_cls;
    if (cs) {
        free(cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

fake_ai *fake_ai_start(fake_ai_kind kind, const char *api_key)
{
    fake_ai *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->kind = kind;
    f->key = strdup(api_key ? api_key : "");
    f->keyless = kind == FAKE_OPENAI && !api_key;
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    f->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                     MHD_USE_POLL | MHD_USE_ITC,
                                 0, NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                                 f, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
    if (!f->daemon) {
        fake_ai_stop(f);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port) {
        fake_ai_stop(f);
        return NULL;
    }
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", (unsigned)info->port);
    return f;
}

const char *fake_ai_base_url(const fake_ai *f) { return f->url; }

void fake_ai_stop(fake_ai *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    if (f->daemon)
        MHD_stop_daemon(f->daemon);
    while (f->head) {
        reply *r = f->head;
        f->head = r->next;
        reply_free(r);
    }
    for (int i = 0; i < f->nrecs; i++) {
        record *r = f->recs[i];
        free(r->path);
        free(r->body);
        json_decref(r->json);
        json_decref(r->headers);
        free(r);
    }
    free(f->recs);
    for (int i = 0; i < f->nviol; i++)
        free(f->viol[i]);
    free(f->viol);
    for (int i = 0; i < f->ncalls; i++) {
        free(f->calls[i].name);
        json_decref(f->calls[i].args);
        free(f->calls[i].id);
        free(f->calls[i].sig);
    }
    free(f->calls);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f->key);
    free(f);
}
