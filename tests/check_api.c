/* The REST contract of API.md as a client sees it: one taskorad with the http_api plugin, over
 * real HTTP, against a real PostgreSQL and a Kafka-protocol cluster owned by the test; and a
 * second one stopped with SIGTERM under load (the drain). */
#include <arpa/inet.h>
#include <check.h>
#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "testhelp.h"
#include "th_kafka.h"

#define SECRET "test-secret-0123456789abcdef0123456789"
#define APP_ID "api-test"
#define BODY_LIMIT 65536
#define MAX_DESCRIPTION 10000 /* http_api's default max_description */

/* ---- suite state (set up once, in the runner process) -------------------------------------- */

static char *dir;
static char dbname[64], dburl[1024];
static th_mock *mock;
static const char *bootstrap; /* mock's */
static th_daemon daemon_;
static char base_url[128];
static int suite_state; /* 0 not tried, 1 up, -1 failed */
static int tcases_left;
static int daemon_exit; /* how the suite's taskorad ended: 0 = clean exit on SIGINT */

/*
 * Everything a test allocates stays reachable from here until its process exits, so the tests
 * read simply and LeakSanitizer (the sanitizer build) has nothing to report.
 */
static void **kept;
static size_t nkept, capkept;

static void *keep(void *p)
{
    if (!p)
        return NULL;
    if (nkept == capkept) {
        capkept = capkept ? capkept * 2 : 256;
        kept = realloc(kept, capkept * sizeof(*kept));
        ck_assert_ptr_nonnull(kept);
    }
    kept[nkept++] = p;
    return p;
}

__attribute__((format(printf, 1, 2))) static char *S(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    return keep(s);
}

static const char *dump(json_t *j)
{
    if (!j)
        return "(absent)";
    return keep(json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT));
}

/* n copies of a UTF-8 sequence */
static const char *rep(const char *unit, int n)
{
    char *out = keep(calloc((size_t)n * strlen(unit) + 1, 1));
    for (int i = 0; i < n; i++)
        strcat(out, unit);
    return out;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

typedef struct R {
    long status;
    json_t *json; /* the parsed body, or NULL */
    const char *body;
    const char *what; /* "METHOD /path" for messages */
    th_response raw;
} R;

/* A request to the taskorad at url (another than the suite's: base_url). */
static R request_at(const char *url, const char *method, const char *path, const char *token,
                    const char *body, const char *const *extra);

static R request(const char *method, const char *path, const char *token, const char *body,
                 const char *const *extra)
{
    return request_at(base_url, method, path, token, body, extra);
}

static R request_at(const char *url, const char *method, const char *path, const char *token,
                    const char *body, const char *const *extra)
{
    const char *h[12];
    size_t n = 0;
    if (body)
        h[n++] = "Content-Type: application/json";
    if (token)
        h[n++] = S("Authorization: Bearer %s", token);
    for (size_t i = 0; extra && extra[i] && n < 11; i++)
        h[n++] = extra[i];
    h[n] = NULL;
    R r;
    memset(&r, 0, sizeof(r));
    r.what = S("%s %s", method, path);
    int rc = th_http(method, S("%s%s", url, path), body, body ? strlen(body) : 0, h, &r.raw);
    keep(r.raw.body);
    keep(r.raw.headers);
    ck_assert_msg(rc == 0, "%s: no HTTP response", r.what);
    r.status = r.raw.status;
    r.body = r.raw.body ? r.raw.body : "";
    r.json = keep(json_loads(r.body, JSON_DECODE_ANY, NULL));
    return r;
}

#define GET(path, tok) request("GET", (path), (tok), NULL, NULL)
#define POST(path, tok, body) request("POST", (path), (tok), (body), NULL)
#define PUT(path, tok, body) request("PUT", (path), (tok), (body), NULL)
#define PATCH(path, tok, body) request("PATCH", (path), (tok), (body), NULL)
#define DEL(path, tok) request("DELETE", (path), (tok), NULL, NULL)

static const char *header(const R *r, const char *name) { return keep(th_header(&r->raw, name)); }

/* ---- assertions (each names the test's line) ------------------------------------------------- */

static json_t *jget(json_t *j, const char *path)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *t = strtok_r(buf, ".", &save); t && j; t = strtok_r(NULL, ".", &save)) {
        if (json_is_array(j)) {
            char *end;
            long i = strtol(t, &end, 10);
            j = *end ? NULL : json_array_get(j, (size_t)i);
        } else {
            j = json_object_get(j, t);
        }
    }
    return j;
}

#define EXPECT(r, st) expect_status(__LINE__, &(r), (st))
static json_t *expect_status(int line, const R *r, long st)
{
    ck_assert_msg(r->status == st, "line %d: %s: expected %ld, got %ld: %s", line, r->what, st,
                  r->status, r->body);
    return r->json;
}

#define JSTR(j, path, want) jstr_eq(__LINE__, (j), (path), (want))
static void jstr_eq(int line, json_t *j, const char *path, const char *want)
{
    json_t *v = jget(j, path);
    ck_assert_msg(json_is_string(v) && strcmp(json_string_value(v), want) == 0,
                  "line %d: %s: expected \"%s\", got %s in %s", line, path, want, dump(v), dump(j));
}

#define JINT(j, path, want) jint_eq(__LINE__, (j), (path), (want))
static void jint_eq(int line, json_t *j, const char *path, long long want)
{
    json_t *v = jget(j, path);
    ck_assert_msg(json_is_integer(v) && json_integer_value(v) == want,
                  "line %d: %s: expected %lld, got %s in %s", line, path, want, dump(v), dump(j));
}

#define JBOOL(j, path, want) jbool_eq(__LINE__, (j), (path), (want))
static void jbool_eq(int line, json_t *j, const char *path, int want)
{
    json_t *v = jget(j, path);
    ck_assert_msg(json_is_boolean(v) && json_is_true(v) == !!want,
                  "line %d: %s: expected %s, got %s in %s", line, path, want ? "true" : "false",
                  dump(v), dump(j));
}

#define JNULL(j, path) jnull(__LINE__, (j), (path))
static void jnull(int line, json_t *j, const char *path)
{
    json_t *v = jget(j, path);
    ck_assert_msg(json_is_null(v), "line %d: %s: expected null, got %s in %s", line, path, dump(v),
                  dump(j));
}

#define JABSENT(j, key)                                                                            \
    ck_assert_msg(json_object_get((j), (key)) == NULL, "line %d: %s in %s", __LINE__, (key),       \
                  dump(j))

/* An integer field (asserted). */
#define JI(j, path) jint_at(__LINE__, (j), (path))
static int jint_at(int line, json_t *j, const char *path)
{
    json_t *v = jget(j, path);
    ck_assert_msg(json_is_integer(v), "line %d: %s: expected an integer, got %s in %s", line, path,
                  dump(v), dump(j));
    return (int)json_integer_value(v);
}

/* A string field (asserted). */
#define JS(j, path) jstr_at(__LINE__, (j), (path))
static const char *jstr_at(int line, json_t *j, const char *path)
{
    json_t *v = jget(j, path);
    ck_assert_msg(json_is_string(v), "line %d: %s: expected a string, got %s in %s", line, path,
                  dump(v), dump(j));
    return json_string_value(v);
}

/* YYYY-MM-DDTHH:MM:SS.ffffff+00:00 */
static int is_ts(const char *s)
{
    static const char f[] = "dddd-dd-ddTdd:dd:dd.dddddd+00:00";
    if (!s || strlen(s) != sizeof(f) - 1)
        return 0;
    for (size_t i = 0; f[i]; i++)
        if (f[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != f[i])
            return 0;
    return 1;
}

#define JTS(j, path) jts(__LINE__, (j), (path))
static void jts(int line, json_t *j, const char *path)
{
    json_t *v = jget(j, path);
    ck_assert_msg(json_is_string(v) && is_ts(json_string_value(v)),
                  "line %d: %s: expected YYYY-MM-DDTHH:MM:SS.ffffff+00:00, got %s", line, path,
                  dump(v));
}

static time_t ts_epoch(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    ck_assert_ptr_nonnull(strptime(s, "%Y-%m-%dT%H:%M:%S", &tm));
    return timegm(&tm);
}

/* {"detail": text} with status. */
#define DETAIL(r, st, text) detail_eq(__LINE__, &(r), (st), (text))
static void detail_eq(int line, const R *r, long st, const char *text)
{
    expect_status(line, r, st);
    ck_assert_msg(json_is_string(jget(r->json, "detail")) &&
                      strcmp(json_string_value(jget(r->json, "detail")), text) == 0,
                  "line %d: %s: expected {\"detail\":\"%s\"}, got %s", line, r->what, text,
                  r->body);
}

/* {"detail": {"code": code, "message": "..."}} with status. */
#define DETAIL_CODE(r, st, code) detail_code(__LINE__, &(r), (st), (code))
static void detail_code(int line, const R *r, long st, const char *code)
{
    expect_status(line, r, st);
    ck_assert_msg(json_is_string(jget(r->json, "detail.code")) &&
                      strcmp(json_string_value(jget(r->json, "detail.code")), code) == 0 &&
                      json_is_string(jget(r->json, "detail.message")),
                  "line %d: %s: expected {\"detail\":{\"code\":\"%s\",\"message\":...}}, got %s",
                  line, r->what, code, r->body);
}

/*
 * 422 whose detail list has an entry {loc:[l0, l1], msg:"...", type}; l1 NULL means loc[1] is
 * an integer (json_invalid's position).
 */
#define INVALID(r, type, l0, l1) invalid_at(__LINE__, &(r), (type), (l0), (l1))
static void invalid_at(int line, const R *r, const char *type, const char *l0, const char *l1)
{
    expect_status(line, r, 422);
    json_t *d = json_object_get(r->json, "detail");
    ck_assert_msg(json_is_array(d) && json_array_size(d) > 0,
                  "line %d: %s: 422 without a detail list: %s", line, r->what, r->body);
    size_t i;
    json_t *e;
    json_array_foreach(d, i, e)
    {
        json_t *loc = json_object_get(e, "loc");
        const char *t = json_string_value(json_object_get(e, "type"));
        if (!t || strcmp(t, type) != 0 || !json_is_array(loc) || json_array_size(loc) != 2)
            continue;
        json_t *a = json_array_get(loc, 0), *b = json_array_get(loc, 1);
        if (!json_is_string(a) || strcmp(json_string_value(a), l0) != 0)
            continue;
        if (l1 ? (json_is_string(b) && strcmp(json_string_value(b), l1) == 0)
               : json_is_integer(b)) {
            ck_assert_msg(json_is_string(json_object_get(e, "msg")),
                          "line %d: %s: entry without msg: %s", line, r->what, r->body);
            return;
        }
    }
    ck_abort_msg("line %d: %s: expected a 422 entry {loc:[\"%s\",%s%s%s], type:\"%s\"}, got %s",
                 line, r->what, l0, l1 ? "\"" : "", l1 ? l1 : "<int>", l1 ? "\"" : "", type,
                 r->body);
}

/* ---- database -------------------------------------------------------------------------------- */

static long dbcount(const char *sql)
{
    char *v = th_pg_query1(dburl, sql);
    long n = atol(v);
    free(v);
    return n;
}

static const char *dbval(const char *sql) { return keep(th_pg_query1(dburl, sql)); }

/* The newest outbox event of a type for a user, parsed (asserted to exist). */
static json_t *outbox_event(const char *topic, const char *type, const char *user)
{
    const char *v = dbval(S("SELECT value FROM taskora_outbox WHERE topic = '%s' AND key = '%s'"
                            " AND value::jsonb->>'type' = '%s' ORDER BY id DESC LIMIT 1",
                            topic, user, type));
    json_t *j = keep(json_loads(v, 0, NULL));
    ck_assert_msg(j != NULL, "outbox value is not JSON: %s", v);
    return j;
}

/* ---- users, tokens -----------------------------------------------------------------------------
 */

typedef struct user {
    int id;
    const char *ids; /* the id as the API's user_id strings spell it */
    const char *email;
    const char *name;
    const char *password;
    const char *token;
} user;

static int seq;

static const char *unique_email(const char *tag)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return S("%s-%d-%d-%ld@example.com", tag, (int)getpid(), ++seq, (long)(t.tv_nsec % 100000));
}

static const char *login(const char *email, const char *password)
{
    R r =
        POST("/api/auth/login", NULL, S("{\"email\":\"%s\",\"password\":\"%s\"}", email, password));
    return JS(EXPECT(r, 200), "access_token");
}

/* A registered, logged-in user with a unique email. */
static user new_user(const char *tag)
{
    user u;
    memset(&u, 0, sizeof(u));
    u.email = unique_email(tag);
    u.name = S("%s user", tag);
    u.password = S("Pw-%s-%d-secret!", tag, seq);
    R r = POST(
        "/api/auth/register", NULL,
        S("{\"email\":\"%s\",\"name\":\"%s\",\"password\":\"%s\"}", u.email, u.name, u.password));
    u.id = JI(EXPECT(r, 201), "id");
    u.ids = S("%d", u.id);
    u.token = login(u.email, u.password);
    return u;
}

static const char *b64url(const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = keep(calloc(n / 3 * 4 + 8, 1));
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tbl[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = tbl[v & 63];
    }
    return out;
}

static const char *b64url_decode(const char *s, size_t n)
{
    char *out = keep(calloc(n + 4, 1));
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *c = strchr(tbl, s[i]);
        ck_assert_msg(c && s[i], "not base64url: %.*s", (int)n, s);
        v = (v << 6) | (unsigned)(c - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((v >> bits) & 0xff);
        }
    }
    return out;
}

/* header.payload.signature; md NULL leaves the signature empty (alg none). */
static const char *jwt_make(const char *hdr, const char *payload, const char *key, const EVP_MD *md)
{
    const char *signing = S("%s.%s", b64url((const unsigned char *)hdr, strlen(hdr)),
                            b64url((const unsigned char *)payload, strlen(payload)));
    if (!md)
        return S("%s.", signing);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ck_assert_ptr_nonnull(HMAC(md, key, (int)strlen(key), (const unsigned char *)signing,
                               strlen(signing), mac, &len));
    return S("%s.%s", signing, b64url(mac, len));
}

static const char *hs256(const char *payload)
{
    return jwt_make("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SECRET, EVP_sha256());
}

/* The decoded header (part 0) or payload (part 1) of a JWT. */
static json_t *jwt_part(const char *token, int part)
{
    const char *p = token;
    for (int i = 0; i < part; i++) {
        p = strchr(p, '.');
        ck_assert_msg(p != NULL, "not a JWT: %s", token);
        p++;
    }
    size_t n = strcspn(p, ".");
    json_t *j = keep(json_loads(b64url_decode(p, n), 0, NULL));
    ck_assert_msg(j != NULL, "JWT part %d is not JSON: %s", part, token);
    return j;
}

/* ---- tasks, tags -------------------------------------------------------------------------------
 */

static int mk_tag(const user *u, const char *name)
{
    R r = POST("/api/tags", u->token, S("{\"name\":\"%s\"}", name));
    return JI(EXPECT(r, 201), "id");
}

static json_t *mk_task(const user *u, const char *body)
{
    R r = POST("/api/tasks", u->token, body);
    return EXPECT(r, 201);
}

static int mk_task_id(const user *u, const char *body) { return JI(mk_task(u, body), "id"); }

static json_t *get_task(const user *u, int id)
{
    R r = GET(S("/api/tasks/%d", id), u->token);
    return EXPECT(r, 200);
}

static json_t *complete(const user *u, int id, int done)
{
    R r = PATCH(S("/api/tasks/%d/complete", id), u->token,
                done ? "{\"completed\":true}" : "{\"completed\":false}");
    return EXPECT(r, 200);
}

/* "3,5,7": the ids of an array of objects, in order. */
static const char *ids_of(json_t *arr)
{
    ck_assert_msg(json_is_array(arr), "expected an array, got %s", dump(arr));
    char *out = S("%s", "");
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) out = S("%s%s%d", out, i ? "," : "", JI(e, "id"));
    return out;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a < *(const int *)b ? -1 : *(const int *)a > *(const int *)b;
}

/* The ids of an array of objects, ascending. */
static const char *ids_sorted(json_t *arr)
{
    ck_assert_msg(json_is_array(arr), "expected an array, got %s", dump(arr));
    size_t n = json_array_size(arr);
    int *v = keep(calloc(n + 1, sizeof(int)));
    for (size_t i = 0; i < n; i++)
        v[i] = JI(json_array_get(arr, i), "id");
    qsort(v, n, sizeof(int), cmp_int);
    char *out = S("%s", "");
    for (size_t i = 0; i < n; i++)
        out = S("%s%s%d", out, i ? "," : "", v[i]);
    return out;
}

/* GET /api/tasks?query: the ids in response order; *total from X-Total-Count (-1 absent). */
static const char *list_ids(const user *u, const char *query, long *total)
{
    R r = GET(S("/api/tasks%s%s", *query ? "?" : "", query), u->token);
    json_t *j = EXPECT(r, 200);
    if (total) {
        const char *h = header(&r, "x-total-count");
        *total = h ? atol(h) : -1;
    }
    return ids_of(j);
}

#define LIST_IS(u, query, want) list_is(__LINE__, (u), (query), (want))
static void list_is(int line, const user *u, const char *query, const char *want)
{
    const char *got = list_ids(u, query, NULL);
    ck_assert_msg(strcmp(got, want) == 0, "line %d: GET /api/tasks?%s: expected ids [%s], got [%s]",
                  line, query, want, got);
}

static const char *task_keys[] = {"id",
                                  "title",
                                  "description",
                                  "completed",
                                  "priority",
                                  "due_date",
                                  "reminder_at",
                                  "reminder_sent",
                                  "is_recurring",
                                  "recurrence_rule",
                                  "recurrence_interval",
                                  "parent_task_id",
                                  "user_id",
                                  "created_at",
                                  "updated_at",
                                  "tags",
                                  NULL};

#define IS_TASK(j) is_task(__LINE__, (j))
static void is_task(int line, json_t *j)
{
    for (int i = 0; task_keys[i]; i++)
        ck_assert_msg(json_object_get(j, task_keys[i]) != NULL, "line %d: Task without \"%s\": %s",
                      line, task_keys[i], dump(j));
    jts(line, j, "created_at");
    jts(line, j, "updated_at");
    ck_assert_msg(json_is_array(json_object_get(j, "tags")), "line %d: tags: %s", line, dump(j));
}

/* ---- suite set-up ---------------------------------------------------------------------------- */

static const char *config_text(const char *secret)
{
    return S("{\"app_id\":\"" APP_ID "\",\"log\":{\"format\":\"text\"},"
             "\"postgres\":{\"url\":\"${TK_TEST_DB}\",\"pool_size\":4},"
             "\"kafka\":{\"brokers\":\"%s\"},"
             "\"outbox\":{\"retention_s\":3600,\"poll_ms\":200},"
             "\"http\":{\"listen\":\"127.0.0.1:0\",\"body_limit\":%d},"
             "\"plugin_dir\":\"%s/plugins/http_api/.libs\","
             "\"plugins\":[{\"name\":\"api\",\"load\":\"http_api\","
             "\"config\":{\"jwt_secret\":\"%s\",\"bcrypt_cost\":4,\"browser_home\":\"/app/\","
             /* every test registers and logs in from 127.0.0.1, some at once: no address
              * limits and room for every concurrent hash here (check_auth_limits tests them) */
             "\"limits\":{\"login_per_address\":{\"per_minute\":0},"
             "\"register_per_address\":{\"per_minute\":0},\"password_hash_queue\":64}}}]}",
             bootstrap, BODY_LIMIT, th_builddir(), secret);
}

/* Runs in the runner process before each TCase; the first call starts everything. */
static void suite_up(void)
{
    if (suite_state == 1)
        return;
    ck_assert_msg(suite_state == 0, "the suite's taskorad did not start (see the first failure)");
    suite_state = -1;
    dir = th_tmpdir();
    ck_assert_ptr_nonnull(dir);
    snprintf(dbname, sizeof(dbname), "tk_api_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    setenv("TK_TEST_DB", dburl, 1);

    static const th_topic topics[] = {
        {"task-events", 3}, {"user-events", 3}, {"chat-events", 3}, {0}};
    mock = th_mock_start(topics);
    bootstrap = th_mock_bootstrap(mock);

    char *cfg = th_write(dir, "api.json", config_text(SECRET));
    th_migrate(cfg);

    th_daemon_start_named(&daemon_, dir, cfg, "api");
    snprintf(base_url, sizeof(base_url), "%s", daemon_.url);
    free(cfg);
    suite_state = 1;
}

/* Runs after each TCase; the last one stops everything. */
static void suite_down(void)
{
    if (--tcases_left > 0)
        return;
    if (daemon_.pid > 0) {
        kill(daemon_.pid, SIGINT); /* stops without the drain delay (the drain test has its own) */
        daemon_exit = th_daemon_wait(&daemon_, 30000);
        char *text = th_read(daemon_.log_path);
        if (daemon_exit != 0 || strstr(text, "Sanitizer") || strstr(text, "runtime error"))
            fprintf(stderr,
                    "check_api: taskorad exited %d on SIGINT (-1: still running); log:\n%s\n",
                    daemon_exit, text);
        if (strstr(text, "Sanitizer") || strstr(text, "runtime error"))
            daemon_exit = daemon_exit ? daemon_exit : 1;
        free(text);
    }
    th_daemon_cleanup(&daemon_);
    th_mock_stop(mock);
    mock = NULL;
    bootstrap = NULL;
    if (*dbname)
        th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
    dir = NULL;
}

/* ======================================= operations ========================================= */

START_TEST(test_root_health_ready_and_metrics_answer)
{
    R r = GET("/", NULL);
    JSTR(EXPECT(r, 200), "message", "Welcome to Taskora API");
    const char *ct = header(&r, "content-type");
    ck_assert_msg(ct && strncmp(ct, "application/json", 16) == 0, "content-type %s", ct);

    ck_assert_str_eq(header(&r, "vary"), "Accept");
    /* a browser navigating to / is sent to the web app; an API client asking for JSON or
     * anything keeps the greeting */
    static const char *const browser[] = {
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", NULL};
    r = request("GET", "/", NULL, NULL, browser);
    EXPECT(r, 302);
    ck_assert_str_eq(header(&r, "location"), "/app/");
    static const char *const client[] = {"Accept: application/json", NULL};
    r = request("GET", "/", NULL, NULL, client);
    JSTR(EXPECT(r, 200), "message", "Welcome to Taskora API");

    r = GET("/health", NULL);
    JSTR(EXPECT(r, 200), "status", "healthy");
    JSTR(r.json, "service", APP_ID);

    r = GET("/ready", NULL);
    JSTR(EXPECT(r, 200), "status", "ready");
    JSTR(r.json, "database", "connected");

    r = GET("/metrics", NULL);
    EXPECT(r, 200);
    ct = header(&r, "content-type");
    ck_assert_msg(ct && strncmp(ct, "text/plain", 10) == 0, "content-type %s", ct);
    ck_assert_msg(strstr(r.body, "# TYPE ") && strstr(r.body, "taskora_"), "%s", r.body);
}
END_TEST

START_TEST(test_request_id_is_echoed_or_generated)
{
    user u = new_user("rid");
    const char *mine[] = {"X-Request-ID: check-api-req-42", NULL};
    R r = request("GET", "/api/tasks", u.token, NULL, mine);
    EXPECT(r, 200);
    ck_assert_str_eq(header(&r, "x-request-id"), "check-api-req-42");
    r = request("GET", "/api/tasks", NULL, NULL, mine); /* on an error too */
    EXPECT(r, 401);
    ck_assert_str_eq(header(&r, "x-request-id"), "check-api-req-42");
    r = GET("/api/tags", u.token);
    const char *gen = header(&r, "x-request-id");
    ck_assert_msg(gen && strlen(gen) >= 8, "generated X-Request-ID: %s", gen);
}
END_TEST

START_TEST(test_unknown_route_is_404_json_and_oversized_body_is_413)
{
    R r = GET("/api/no-such-thing", NULL);
    EXPECT(r, 404);
    ck_assert_msg(json_is_string(jget(r.json, "detail")), "%s", r.body);

    user u = new_user("big");
    size_t n = BODY_LIMIT + 4096;
    char *big = keep(malloc(n + 64));
    int off = snprintf(big, n + 64, "{\"title\":\"big\",\"description\":\"");
    memset(big + off, 'a', n);
    snprintf(big + off + n, 64, "\"}");
    r = POST("/api/tasks", u.token, big);
    EXPECT(r, 413);
    ck_assert_msg(json_is_string(jget(r.json, "detail")), "%s", r.body);
    long total = -1;
    ck_assert_str_eq(list_ids(&u, "", &total), ""); /* nothing was created */
    ck_assert_int_eq(total, 0);
    /* a body just under the limit is fine (the description at its own limit, then a field
     * that is ignored) */
    char *fits = keep(malloc(BODY_LIMIT));
    off = snprintf(fits, BODY_LIMIT, "{\"title\":\"fits\",\"description\":\"%s\",\"pad\":\"",
                   rep("b", MAX_DESCRIPTION));
    memset(fits + off, 'c', BODY_LIMIT - 100 - (size_t)off);
    snprintf(fits + BODY_LIMIT - 100, 64, "\"}");
    json_t *t = mk_task(&u, fits);
    ck_assert_uint_eq(strlen(JS(t, "description")), MAX_DESCRIPTION);
}
END_TEST

/* Starts taskorad on config text that must be refused: its exit code (-1: still running after
 * 30 s) and its log. */
static int start_refused(const char *text, char **log_text)
{
    char *cfg = keep(th_write(dir, "refused.json", text));
    char *log = keep(th_write(dir, "refused.log", ""));
    th_daemon d;
    ck_assert_int_eq(th_daemon_spawn(&d, cfg, log), 0);
    int rc = th_daemon_wait(&d, 30000);
    *log_text = keep(th_read(log));
    th_daemon_cleanup(&d);
    return rc;
}

START_TEST(test_empty_jwt_secret_refuses_to_start)
{
    unsetenv("BETTER_AUTH_SECRET");
    char *text;
    int rc = start_refused(config_text(""), &text);
    ck_assert_msg(rc > 0, "taskorad with an empty jwt_secret: exit %d (-1 = still running): %s", rc,
                  text);
    ck_assert_msg(strstr(text, "jwt_secret") || strstr(text, "BETTER_AUTH_SECRET"),
                  "the log does not say why: %s", text);
}
END_TEST

/* browser_home elsewhere than this server would make / an open redirect: refused at start */
START_TEST(test_browser_home_off_this_server_refuses_to_start)
{
    const char *bad[] = {"//evil.example/", "https://evil.example/", "app/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *text0 = config_text(SECRET), *key = "\"browser_home\":\"/app/\"";
        const char *at = strstr(text0, key);
        ck_assert_ptr_nonnull(at);
        char *text;
        int rc = start_refused(
            S("%.*s\"browser_home\":\"%s\"%s", (int)(at - text0), text0, bad[i], at + strlen(key)),
            &text);
        ck_assert_msg(rc > 0, "browser_home %s: exit %d: %s", bad[i], rc, text);
        ck_assert_msg(strstr(text, "browser_home"), "the log does not say why: %s", text);
    }
}
END_TEST

/* ========================================== auth ============================================ */

START_TEST(test_register_returns_201_user_without_password)
{
    const char *email = unique_email("reg");
    R r =
        POST("/api/auth/register", NULL,
             S("{\"email\":\"%s\",\"name\":\"Ada Lovelace\",\"password\":\"s3cret-pass\"}", email));
    json_t *j = EXPECT(r, 201);
    ck_assert_int_gt(JI(j, "id"), 0);
    JSTR(j, "email", email);
    JSTR(j, "name", "Ada Lovelace");
    JTS(j, "created_at");
    JABSENT(j, "password");
    JABSENT(j, "hashed_password");
    const char *stored = dbval(S("SELECT hashed_password FROM users WHERE id = %d", JI(j, "id")));
    ck_assert_msg(strstr(stored, "s3cret-pass") == NULL, "password stored in clear");
}
END_TEST

START_TEST(test_register_rejects_duplicate_bad_email_empty_password_missing_fields)
{
    user u = new_user("dup");
    R r = POST("/api/auth/register", NULL,
               S("{\"email\":\"%s\",\"name\":\"Other\",\"password\":\"another1\"}", u.email));
    DETAIL(r, 409, "Email already registered");
    /* the first registration still logs in with its own password */
    login(u.email, u.password);

    r = POST("/api/auth/register", NULL,
             "{\"email\":\"not-an-email\",\"name\":\"X\",\"password\":\"abcdef12\"}");
    INVALID(r, "value_error", "body", "email");
    r = POST("/api/auth/register", NULL,
             S("{\"email\":\"%s\",\"name\":\"X\",\"password\":\"\"}", unique_email("empty")));
    INVALID(r, "string_too_short", "body", "password");
    r = POST("/api/auth/register", NULL, "{}");
    INVALID(r, "missing", "body", "email");
    INVALID(r, "missing", "body", "name");
    INVALID(r, "missing", "body", "password");
    r = POST("/api/auth/register", NULL, "{\"email\": \"a@b.c\", \"name\": ");
    INVALID(r, "json_invalid", "body", NULL);
    ck_assert_int_eq(dbcount("SELECT count(*) FROM users WHERE email = 'not-an-email'"), 0);
}
END_TEST

START_TEST(test_login_returns_bearer_token_with_sub_and_7_day_expiry)
{
    user u = new_user("login");
    R r = POST("/api/auth/login", NULL,
               S("{\"email\":\"%s\",\"password\":\"%s\"}", u.email, u.password));
    json_t *j = EXPECT(r, 200);
    JSTR(j, "token_type", "bearer");
    const char *tok = JS(j, "access_token");
    JSTR(jwt_part(tok, 0), "alg", "HS256");
    json_t *claims = jwt_part(tok, 1);
    JSTR(claims, "sub", u.ids);
    long exp = (long)json_integer_value(json_object_get(claims, "exp"));
    long left = exp - (long)time(NULL);
    ck_assert_msg(left > 604800 - 300 && left <= 604800 + 5, "exp in %ld s: %s", left,
                  dump(claims));
    /* the token is what the server expects from us */
    r = GET("/api/auth/me", tok);
    JINT(EXPECT(r, 200), "id", u.id);
}
END_TEST

START_TEST(test_login_failures_are_401_with_www_authenticate)
{
    user u = new_user("badlogin");
    R r = POST("/api/auth/login", NULL,
               S("{\"email\":\"%s\",\"password\":\"wrong-password\"}", u.email));
    DETAIL(r, 401, "Incorrect email or password");
    const char *www = header(&r, "www-authenticate");
    ck_assert_msg(www && strncmp(www, "Bearer", 6) == 0, "WWW-Authenticate: %s", www);
    r = POST("/api/auth/login", NULL,
             S("{\"email\":\"%s\",\"password\":\"whatever1\"}", unique_email("nobody")));
    DETAIL(r, 401, "Incorrect email or password");
    www = header(&r, "www-authenticate");
    ck_assert_msg(www && strncmp(www, "Bearer", 6) == 0, "WWW-Authenticate: %s", www);
    r = POST("/api/auth/login", NULL, S("{\"email\":\"%s\"}", u.email));
    INVALID(r, "missing", "body", "password");
}
END_TEST

START_TEST(test_long_passwords_are_not_truncated)
{
    const char *email = unique_email("longpw");
    const char *pw = S("%s-tail-one", rep("p", 80));
    R r = POST("/api/auth/register", NULL,
               S("{\"email\":\"%s\",\"name\":\"L\",\"password\":\"%s\"}", email, pw));
    EXPECT(r, 201);
    login(email, pw);
    r = POST("/api/auth/login", NULL,
             S("{\"email\":\"%s\",\"password\":\"%s-tail-two\"}", email, rep("p", 80)));
    DETAIL(r, 401, "Incorrect email or password");
    r = POST("/api/auth/login", NULL,
             S("{\"email\":\"%s\",\"password\":\"%s\"}", email, rep("p", 72)));
    DETAIL(r, 401, "Incorrect email or password");
}
END_TEST

START_TEST(test_me_and_logout)
{
    user u = new_user("me");
    R r = GET("/api/auth/me", u.token);
    json_t *j = EXPECT(r, 200);
    JINT(j, "id", u.id);
    JSTR(j, "email", u.email);
    JSTR(j, "name", u.name);
    JTS(j, "created_at");
    JABSENT(j, "hashed_password");
    r = POST("/api/auth/logout", u.token, NULL);
    JSTR(EXPECT(r, 200), "message", "Logged out successfully");
    r = POST("/api/auth/logout", NULL, NULL);
    DETAIL(r, 401, "Not authenticated");
}
END_TEST

START_TEST(test_missing_authorization_is_401_not_authenticated_everywhere)
{
    static const char *routes[][2] = {
        {"GET", "/api/auth/me"},
        {"POST", "/api/auth/logout"},
        {"DELETE", "/api/auth/delete-account"},
        {"GET", "/api/tags"},
        {"POST", "/api/tags"},
        {"GET", "/api/tags/1"},
        {"GET", "/api/tasks"},
        {"POST", "/api/tasks"},
        {"GET", "/api/tasks/1"},
        {"PUT", "/api/tasks/1"},
        {"DELETE", "/api/tasks/1"},
        {"PATCH", "/api/tasks/1/complete"},
        {"PATCH", "/api/tasks/1/reminder"},
        {"GET", "/api/tasks/reminders"},
        {"POST", "/api/tasks/1/reminder/sent"},
        {"GET", "/api/1/conversations"},
        {"GET", "/api/1/conversations/1/messages"},
        {"DELETE", "/api/1/conversations/1"},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int has_body = strcmp(routes[i][0], "GET") != 0 && strcmp(routes[i][0], "DELETE") != 0;
        R r = request(routes[i][0], routes[i][1], NULL, has_body ? "{}" : NULL, NULL);
        DETAIL(r, 401, "Not authenticated");
        const char *www = header(&r, "www-authenticate");
        ck_assert_msg(www && strncmp(www, "Bearer", 6) == 0, "%s: WWW-Authenticate: %s", r.what,
                      www);
    }
}
END_TEST

START_TEST(test_bad_tokens_are_401_with_their_detail)
{
    user u = new_user("jwt");
    long now = (long)time(NULL);
    const char *claims = S("{\"sub\":\"%s\",\"exp\":%ld}", u.ids, now + 3600);
    /* control: a token made here the same way as the bad ones is accepted */
    R r = GET("/api/auth/me", hs256(claims));
    JINT(EXPECT(r, 200), "id", u.id);

    /* a valid signature over other claims, with this user's claims swapped in */
    const char *other_tok = hs256(S("{\"sub\":\"%d\",\"exp\":%ld}", u.id + 100000, now + 3600));
    const char *mine = hs256(claims);
    const char *tampered =
        S("%.*s%s", (int)(strrchr(mine, '.') - mine), mine, strrchr(other_tok, '.'));
    const char *bad[] = {
        "garbage",
        "a.b.c",
        jwt_make("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, NULL, NULL),
        jwt_make("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims, SECRET, EVP_sha512()),
        jwt_make("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, "another-secret-0123456789abcdef",
                 EVP_sha256()),
        tampered,
        hs256(S("{\"exp\":%ld}", now + 3600)), /* neither sub nor user_id */
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        r = GET("/api/auth/me", bad[i]);
        ck_assert_msg(r.status == 401, "token %d (%s): expected 401, got %ld: %s", i, bad[i],
                      r.status, r.body);
        DETAIL(r, 401, "Could not validate credentials");
    }
    r = GET("/api/tasks", hs256(S("{\"sub\":\"%s\",\"exp\":%ld}", u.ids, now - 120)));
    DETAIL(r, 401, "Token has expired");
}
END_TEST

START_TEST(test_token_with_user_id_claim_instead_of_sub_is_accepted)
{
    user u = new_user("uidclaim");
    mk_task_id(&u, "{\"title\":\"mine\"}");
    const char *tok = hs256(S("{\"user_id\":\"%s\",\"exp\":%ld}", u.ids, (long)time(NULL) + 600));
    R r = GET("/api/auth/me", tok);
    JINT(EXPECT(r, 200), "id", u.id);
    r = GET("/api/tasks", tok);
    ck_assert_uint_eq(json_array_size(EXPECT(r, 200)), 1);
}
END_TEST

START_TEST(test_existing_bcrypt_sha256_user_can_log_in)
{
    const char *pw = "legacy-Passw0rd!";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    ck_assert_int_eq(EVP_Digest(pw, strlen(pw), md, &mdlen, EVP_sha256(), NULL), 1);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    const char *setting = crypt_gensalt("$2b$", 4, NULL, 0);
    ck_assert_ptr_nonnull(setting);
    const char *hashed = crypt(hex, setting);
    ck_assert_msg(hashed && strncmp(hashed, "$2b$04$", 7) == 0, "crypt: %s", hashed);
    const char *email = unique_email("legacy");
    const char *id = dbval(S("INSERT INTO users (email, name, hashed_password) VALUES"
                             " ('%s', 'Legacy User', '%s') RETURNING id",
                             email, hashed));
    const char *tok = login(email, pw);
    R r = GET("/api/auth/me", tok);
    json_t *j = EXPECT(r, 200);
    JINT(j, "id", atoi(id));
    JSTR(j, "email", email);
    JSTR(j, "name", "Legacy User");
    r = POST("/api/auth/login", NULL, S("{\"email\":\"%s\",\"password\":\"%s\"}", email, hex));
    DETAIL(r, 401, "Incorrect email or password"); /* the hex digest is not the password */
}
END_TEST

START_TEST(test_delete_account_removes_tasks_tags_conversations_and_user)
{
    user a = new_user("gone"), other = new_user("stays");
    int tag = mk_tag(&a, "home");
    mk_task_id(&a, S("{\"title\":\"t1\",\"tag_ids\":[%d]}", tag));
    int rec = mk_task_id(&a, "{\"title\":\"daily\",\"is_recurring\":true,"
                             "\"recurrence_rule\":\"daily\",\"due_date\":\"2026-01-01\"}");
    complete(&a, rec, 1); /* a child that references its parent */
    const char *cid =
        dbval(S("INSERT INTO conversations (user_id) VALUES ('%s') RETURNING id", a.ids));
    th_pg_exec(dburl, S("INSERT INTO messages (conversation_id, user_id, role, content) VALUES"
                        " (%s, '%s', 'user', 'hi'), (%s, '%s', 'assistant', 'hello')",
                        cid, a.ids, cid, a.ids));
    int otag = mk_tag(&other, "home");
    mk_task_id(&other, S("{\"title\":\"other\",\"tag_ids\":[%d]}", otag));
    th_pg_exec(dburl, S("INSERT INTO conversations (user_id) VALUES ('%s')", other.ids));

    R r = DEL("/api/auth/delete-account", a.token);
    JSTR(EXPECT(r, 200), "message", "Account deleted successfully");
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE user_id = '%s'", a.ids)), 0);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tags WHERE user_id = '%s'", a.ids)), 0);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM task_tags WHERE tag_id = %d", tag)), 0);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM conversations WHERE user_id = '%s'", a.ids)),
                     0);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM messages WHERE conversation_id = %s", cid)),
                     0);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM users WHERE id = %d", a.id)), 0);
    /* nobody else's data */
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE user_id = '%s'", other.ids)), 1);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tags WHERE user_id = '%s'", other.ids)), 1);
    ck_assert_int_eq(
        dbcount(S("SELECT count(*) FROM conversations WHERE user_id = '%s'", other.ids)), 1);
    r = GET("/api/tasks", other.token);
    ck_assert_uint_eq(json_array_size(EXPECT(r, 200)), 1);

    r = POST("/api/auth/login", NULL,
             S("{\"email\":\"%s\",\"password\":\"%s\"}", a.email, a.password));
    DETAIL(r, 401, "Incorrect email or password");
    r = DEL("/api/auth/delete-account", a.token);
    DETAIL(r, 404, "User not found");
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM taskora_outbox WHERE key = '%s' AND"
                               " value::jsonb->>'type' = 'user.deleted'",
                               a.ids)),
                     1);
}
END_TEST

START_TEST(test_user_events_carry_no_password_or_token)
{
    user u = new_user("events");
    json_t *ev = outbox_event("user-events", "user.registered", u.ids);
    JSTR(ev, "data.payload.email", u.email);
    JSTR(ev, "data.payload.name", u.name);
    ck_assert_int_ge(dbcount(S("SELECT count(*) FROM taskora_outbox WHERE key = '%s' AND"
                               " value::jsonb->>'type' = 'user.login'",
                               u.ids)),
                     1);
    R r = POST("/api/auth/logout", u.token, NULL);
    EXPECT(r, 200);
    outbox_event("user-events", "user.logout", u.ids);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM taskora_outbox WHERE value LIKE '%%%s%%'"
                               " OR value LIKE '%%%s%%'",
                               u.password, u.token)),
                     0);
    char *log = keep(th_read(daemon_.log_path));
    ck_assert_msg(strstr(log, u.password) == NULL, "the log holds a password");
    ck_assert_msg(strstr(log, u.token) == NULL, "the log holds a token");
}
END_TEST

/* Every authenticated route a token can reach, for "this token is refused everywhere". */
static const char *const token_routes[][2] = {
    {"GET", "/api/auth/me"},          {"GET", "/api/tasks"},        {"POST", "/api/tasks"},
    {"GET", "/api/tasks/reminders"},  {"GET", "/api/tags"},         {"POST", "/api/tags"},
    {"GET", "/api/%s/conversations"}, {"POST", "/api/auth/logout"},
};

#define REFUSED_EVERYWHERE(u, tok) refused_everywhere(__LINE__, (u), (tok))
static void refused_everywhere(int line, const user *u, const char *tok)
{
    for (size_t i = 0; i < sizeof(token_routes) / sizeof(token_routes[0]); i++) {
        const char *path = strstr(token_routes[i][1], "%s") ? S("/api/%s/conversations", u->ids)
                                                            : token_routes[i][1];
        int post = strcmp(token_routes[i][0], "POST") == 0;
        R r = request(token_routes[i][0], path, tok,
                      post ? "{\"name\":\"x\",\"title\":\"x\"}" : NULL, NULL);
        detail_eq(line, &r, 401, "Could not validate credentials");
        ck_assert_msg(header(&r, "www-authenticate") != NULL, "line %d: %s: no WWW-Authenticate",
                      line, r.what);
    }
}

START_TEST(test_logout_revokes_the_token_and_only_that_one)
{
    user u = new_user("logout");
    mk_task_id(&u, "{\"title\":\"before logout\"}");
    const char *other = login(u.email, u.password); /* another device, maybe the same second */
    ck_assert_str_ne(other, u.token);
    json_t *claims = jwt_part(u.token, 1);
    const char *jti = JS(claims, "jti");
    ck_assert_msg(strlen(jti) >= 22, "jti of fewer than 128 bits: %s", jti);
    ck_assert_str_ne(jti, JS(jwt_part(other, 1), "jti"));
    ck_assert_msg(json_is_integer(json_object_get(claims, "iat")), "no iat: %s", dump(claims));

    R r = POST("/api/auth/logout", u.token, NULL);
    JSTR(EXPECT(r, 200), "message", "Logged out successfully");
    REFUSED_EVERYWHERE(&u, u.token);
    r = DEL("/api/auth/delete-account", u.token);
    DETAIL(r, 401, "Could not validate credentials");
    /* the other session goes on */
    r = GET("/api/tasks", other);
    ck_assert_uint_eq(json_array_size(EXPECT(r, 200)), 1);
    r = GET("/api/auth/me", other);
    JINT(EXPECT(r, 200), "id", u.id);
    /* and logging in again gives a token that works */
    r = GET("/api/tasks", login(u.email, u.password));
    EXPECT(r, 200);
}
END_TEST

START_TEST(test_logout_revokes_a_token_without_jti_in_every_spelling)
{
    user u = new_user("oldtok");
    /* as tokens were before they had a jti (and as the existing service issues them) */
    const char *tok = hs256(S("{\"sub\":\"%s\",\"exp\":%ld}", u.ids, (long)time(NULL) + 600));
    /* the signature's last character carries 2 spare bits: flipping one spells the same MAC */
    char *alt = S("%s", tok);
    const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t last = strlen(alt) - 1;
    alt[last] = tbl[(strchr(tbl, alt[last]) - tbl) ^ 1];
    R r = GET("/api/tasks", tok);
    EXPECT(r, 200);
    r = GET("/api/tasks", alt);
    EXPECT(r, 200);
    r = POST("/api/auth/logout", tok, NULL);
    JSTR(EXPECT(r, 200), "message", "Logged out successfully");
    REFUSED_EVERYWHERE(&u, tok);
    REFUSED_EVERYWHERE(&u, alt);
    r = GET("/api/tasks", u.token); /* the user's own login token is another one */
    EXPECT(r, 200);
}
END_TEST

START_TEST(test_revocations_are_purged_once_long_expired)
{
    user u = new_user("purge");
    th_pg_exec(dburl, "INSERT INTO revoked_tokens (jti, expires_at) VALUES"
                      " ('j:long-gone', now() - interval '2 hours'),"
                      " ('j:just-expired', now() - interval '1 minute')");
    R r = POST("/api/auth/logout", u.token, NULL);
    EXPECT(r, 200);
    ck_assert_int_eq(dbcount("SELECT count(*) FROM revoked_tokens WHERE jti = 'j:long-gone'"), 0);
    /* kept a while past exp, for replicas whose clock lags PostgreSQL's */
    ck_assert_int_eq(dbcount("SELECT count(*) FROM revoked_tokens WHERE jti = 'j:just-expired'"),
                     1);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM revoked_tokens WHERE jti = 'j:%s'",
                               JS(jwt_part(u.token, 1), "jti"))),
                     1);
}
END_TEST

START_TEST(test_a_deleted_users_token_is_401_everywhere)
{
    user u = new_user("deleted");
    mk_task_id(&u, "{\"title\":\"gone soon\"}");
    const char *other = login(u.email, u.password);
    R r = DEL("/api/auth/delete-account", u.token);
    EXPECT(r, 200);
    REFUSED_EVERYWHERE(&u, u.token);
    REFUSED_EVERYWHERE(&u, other);
    /* the contract's answer to deleting an account twice stays */
    r = DEL("/api/auth/delete-account", other);
    DETAIL(r, 404, "User not found");
}
END_TEST

START_TEST(test_emails_are_unique_case_insensitively)
{
    const char *lower = unique_email("case");
    char *mixed = S("%s", lower);
    mixed[0] = (char)toupper((unsigned char)mixed[0]);
    strcpy(strchr(mixed, '@'), "@Example.COM");
    R r = POST("/api/auth/register", NULL,
               S("{\"email\":\"%s\",\"name\":\"Mixed\",\"password\":\"first-pw\"}", mixed));
    int id = JI(EXPECT(r, 201), "id");
    JSTR(r.json, "email", mixed); /* kept as typed */
    const char *upper = S("%s", lower);
    for (char *p = (char *)upper; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    const char *spellings[] = {lower, upper};
    for (int i = 0; i < 2; i++) {
        r = POST(
            "/api/auth/register", NULL,
            S("{\"email\":\"%s\",\"name\":\"Other\",\"password\":\"other-pw\"}", spellings[i]));
        DETAIL(r, 409, "Email already registered");
        /* the login is case-insensitive too */
        json_t *claims = jwt_part(login(spellings[i], "first-pw"), 1);
        JSTR(claims, "sub", S("%d", id));
    }
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM users WHERE lower(email) = '%s'", lower)), 1);
}
END_TEST

START_TEST(test_out_of_range_or_non_canonical_claims_are_401)
{
    user u = new_user("claims");
    long later = (long)time(NULL) + 3600;
    /* controls: the same user in the accepted forms */
    const char *good[] = {
        S("{\"sub\":\"%s\",\"exp\":%ld}", u.ids, later),
        S("{\"sub\":%s,\"exp\":%ld}", u.ids, later),
        S("{\"sub\":\"%s\",\"exp\":%ld.5}", u.ids, later),
        NULL,
    };
    for (int i = 0; good[i]; i++) {
        R r = GET("/api/tasks", hs256(good[i]));
        ck_assert_msg(r.status == 200, "%s: expected 200, got %ld: %s", good[i], r.status, r.body);
    }
    const char *subs[] = {
        "\"2147483648\"",
        "2147483648",
        "\"99999999999999999\"",
        "9223372036854775807",
        S("\"0%s\"", u.ids),
        S("\"+%s\"", u.ids),
        S("\" %s\"", u.ids),
        S("\"%s \"", u.ids),
        S("\"%s.0\"", u.ids),
        S("%s.0", u.ids),
        S("\"-%s\"", u.ids),
        "\"0\"",
        "0",
        "-1",
        "true",
        "null",
        "[1]",
        "\"\"",
        NULL,
    };
    for (int i = 0; subs[i]; i++) {
        const char *claims[] = {S("{\"sub\":%s,\"exp\":%ld}", subs[i], later),
                                S("{\"user_id\":%s,\"exp\":%ld}", subs[i], later)};
        for (int k = 0; k < 2; k++) {
            R r = GET("/api/tasks", hs256(claims[k]));
            ck_assert_msg(r.status == 401, "%s: expected 401, got %ld: %s", claims[k], r.status,
                          r.body);
            DETAIL(r, 401, "Could not validate credentials");
        }
    }
    const char *exps[] = {
        S("\"%ld\"", later),
        "1e300",
        "-1",
        "0",
        "253402300800",
        "9223372036854775807",
        "null",
        "true",
        "[1]",
        "{}",
        NULL,
    };
    for (int i = 0; exps[i]; i++) {
        const char *claims = S("{\"sub\":\"%s\",\"exp\":%s}", u.ids, exps[i]);
        R r = GET("/api/tasks", hs256(claims));
        ck_assert_msg(r.status == 401, "%s: expected 401, got %ld: %s", claims, r.status, r.body);
        DETAIL(r, 401, "Could not validate credentials");
    }
    const char *jtis[] = {"1", "\"\"", "null", S("\"%s\"", rep("j", 129)), NULL};
    for (int i = 0; jtis[i]; i++) {
        const char *claims = S("{\"sub\":\"%s\",\"exp\":%ld,\"jti\":%s}", u.ids, later, jtis[i]);
        R r = GET("/api/tasks", hs256(claims));
        DETAIL(r, 401, "Could not validate credentials");
    }
}
END_TEST

START_TEST(test_answers_that_carry_a_token_are_not_stored)
{
    const char *email = unique_email("nostore");
    R r = POST("/api/auth/register", NULL,
               S("{\"email\":\"%s\",\"name\":\"N\",\"password\":\"no-store-pw\"}", email));
    EXPECT(r, 201);
    const R *rs[2] = {&r, NULL};
    R l =
        POST("/api/auth/login", NULL, S("{\"email\":\"%s\",\"password\":\"no-store-pw\"}", email));
    JS(EXPECT(l, 200), "access_token");
    rs[1] = &l;
    for (int i = 0; i < 2; i++) {
        const char *cc = header(rs[i], "cache-control"), *pragma = header(rs[i], "pragma");
        ck_assert_msg(cc && strstr(cc, "no-store"), "%s: Cache-Control: %s", rs[i]->what, cc);
        ck_assert_msg(pragma && strcmp(pragma, "no-cache") == 0, "%s: Pragma: %s", rs[i]->what,
                      pragma);
    }
}
END_TEST

/* ===================================== secret rotation ====================================== */

/* The secret a rotation moves to; SECRET, the suite's, is the one being rotated out. */
#define NEW_SECRET "rotated-secret-fedcba9876543210fedcba98"
#define PREVIOUS_METRIC "taskora_auth_tokens_previous_secret_total{plugin=\"api\"}"

/* The suite's config with another jwt_secret, jwt_secret_previous (NULL: none) and debug logs. */
static const char *rotation_config(const char *current, const char *previous)
{
    const char *text = config_text(current), *key = S("\"jwt_secret\":\"%s\",", current);
    const char *at = strstr(text, key), *log = strstr(text, "\"format\":\"text\"");
    ck_assert_ptr_nonnull(at);
    ck_assert_ptr_nonnull(log);
    at += strlen(key);
    log += strlen("\"format\":\"text\"");
    return S("%.*s,\"level\":\"debug\"%.*s%s%s%s%s", (int)(log - text), text, (int)(at - log), log,
             previous ? "\"jwt_secret_previous\":\"" : "", previous ? previous : "",
             previous ? "\"," : "", at);
}

/* Whether token's signature is HS256 of its first two parts under key. */
static int signed_with(const char *token, const char *key)
{
    const char *sig = strrchr(token, '.');
    ck_assert_ptr_nonnull(sig);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)token,
                               (size_t)(sig - token), mac, &len));
    return strcmp(sig + 1, b64url(mac, len)) == 0;
}

static const char *claims_of(const user *u, long exp_in)
{
    return S("{\"sub\":\"%s\",\"exp\":%ld}", u->ids, (long)time(NULL) + exp_in);
}

static const char *signed_token(const char *claims, const char *key)
{
    return jwt_make("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, key, EVP_sha256());
}

START_TEST(test_tokens_of_the_previous_secret_verify_while_it_is_configured)
{
    user u = new_user("rotate"); /* its token: signed by the suite's taskorad, with SECRET */
    ck_assert(signed_with(u.token, SECRET));
    /* an empty previous secret (the suite's taskorad has none) accepts nothing */
    R r = GET("/api/auth/me", signed_token(claims_of(&u, 600), ""));
    DETAIL(r, 401, "Could not validate credentials");

    th_daemon rot; /* the rotation under way: NEW_SECRET signs, SECRET still verifies */
    th_daemon_start_named(
        &rot, dir, keep(th_write(dir, "rot.json", rotation_config(NEW_SECRET, SECRET))), "rot");
    ck_assert_double_eq(th_metric(rot.url, PREVIOUS_METRIC), 0);
    r = request_at(rot.url, "GET", "/api/auth/me", u.token, NULL, NULL);
    JINT(EXPECT(r, 200), "id", u.id);
    ck_assert_double_eq(th_metric(rot.url, PREVIOUS_METRIC), 1);
    ck_assert_msg(
        th_wait_file_contains(rot.log_path, "token verified by jwt_secret_previous", 5000),
        "no debug line for a token of the previous secret: %s",
        (const char *)keep(th_read(rot.log_path)));
    /* a token of the new secret verifies (and is not counted); one of neither does not, nor an
     * expired one of the previous secret */
    r = request_at(rot.url, "GET", "/api/auth/me", signed_token(claims_of(&u, 600), NEW_SECRET),
                   NULL, NULL);
    JINT(EXPECT(r, 200), "id", u.id);
    r = request_at(rot.url, "GET", "/api/tasks",
                   signed_token(claims_of(&u, 600), "a-third-secret-0123456789abcdef01234"), NULL,
                   NULL);
    DETAIL(r, 401, "Could not validate credentials");
    r = request_at(rot.url, "GET", "/api/tasks", signed_token(claims_of(&u, -120), SECRET), NULL,
                   NULL);
    DETAIL(r, 401, "Token has expired");
    ck_assert_double_eq(th_metric(rot.url, PREVIOUS_METRIC), 1);

    /* a login there is signed with the new secret only: the old secret alone refuses it */
    r = request_at(rot.url, "POST", "/api/auth/login", NULL,
                   S("{\"email\":\"%s\",\"password\":\"%s\"}", u.email, u.password), NULL);
    const char *fresh = JS(EXPECT(r, 200), "access_token");
    ck_assert(signed_with(fresh, NEW_SECRET));
    ck_assert(!signed_with(fresh, SECRET));
    r = request_at(rot.url, "GET", "/api/auth/me", fresh, NULL, NULL);
    JINT(EXPECT(r, 200), "id", u.id);
    r = GET("/api/auth/me", fresh);
    DETAIL(r, 401, "Could not validate credentials");
    ck_assert_double_eq(th_metric(rot.url, PREVIOUS_METRIC), 1);

    /* the rotation done: without the previous secret its tokens are refused, the new ones not */
    th_daemon done;
    th_daemon_start_named(
        &done, dir, keep(th_write(dir, "done.json", rotation_config(NEW_SECRET, NULL))), "done");
    r = request_at(done.url, "GET", "/api/auth/me", u.token, NULL, NULL);
    DETAIL(r, 401, "Could not validate credentials");
    r = request_at(done.url, "GET", "/api/auth/me", fresh, NULL, NULL);
    JINT(EXPECT(r, 200), "id", u.id);

    /* a logout of a token of the previous secret revokes it as any other */
    r = request_at(rot.url, "POST", "/api/auth/logout", u.token, NULL, NULL);
    EXPECT(r, 200);
    r = request_at(rot.url, "GET", "/api/auth/me", u.token, NULL, NULL);
    DETAIL(r, 401, "Could not validate credentials");
    th_daemon_stop(&done);
    th_daemon_stop(&rot);
}
END_TEST

START_TEST(test_a_previous_secret_equal_to_the_current_one_refuses_to_start)
{
    char *text;
    int rc = start_refused(rotation_config(SECRET, SECRET), &text);
    ck_assert_msg(rc > 0, "jwt_secret_previous = jwt_secret: exit %d (-1 = still running): %s", rc,
                  text);
    ck_assert_msg(strstr(text, "jwt_secret_previous") && strstr(text, "equals"),
                  "the log does not say why: %s", text);
    /* the same rules as jwt_secret: a short one starts, with a warning naming it */
    th_daemon d;
    th_daemon_start_named(
        &d, dir, keep(th_write(dir, "short.json", rotation_config(NEW_SECRET, "short-old"))),
        "short");
    text = keep(th_read(d.log_path));
    ck_assert_msg(strstr(text, "jwt_secret_previous is shorter than 32 bytes"), "%s", text);
    th_daemon_stop(&d);
}
END_TEST

/* =========================================== tags =========================================== */

START_TEST(test_tags_listed_by_name_with_default_colour)
{
    user u = new_user("tags");
    R r = POST("/api/tags", u.token, "{\"name\":\"zeta\"}");
    json_t *z = EXPECT(r, 201);
    JSTR(z, "name", "zeta");
    JSTR(z, "color", "#6366F1");
    JSTR(z, "user_id", u.ids);
    JTS(z, "created_at");
    r = POST("/api/tags", u.token, "{\"name\":\"Alpha\",\"color\":\"#10B981\"}");
    json_t *a = EXPECT(r, 201);
    JSTR(a, "color", "#10B981");
    int mid = mk_tag(&u, "mid");
    r = GET("/api/tags", u.token);
    json_t *list = EXPECT(r, 200);
    ck_assert_str_eq(ids_of(list), S("%d,%d,%d", JI(a, "id"), mid, JI(z, "id")));
    JSTR(list, "0.name", "Alpha");
    JSTR(list, "0.color", "#10B981");
    JSTR(list, "0.user_id", u.ids);
}
END_TEST

START_TEST(test_tag_duplicate_name_is_400_case_insensitively_per_user)
{
    user u = new_user("tagdup"), v = new_user("tagdup2");
    int work = mk_tag(&u, "Work");
    R r = POST("/api/tags", u.token, "{\"name\":\"work\"}");
    DETAIL(r, 400, "Tag name already exists for this user");
    r = POST("/api/tags", u.token, "{\"name\":\"WORK\",\"color\":\"#000000\"}");
    DETAIL(r, 400, "Tag name already exists for this user");
    mk_tag(&v, "work"); /* another user may */
    int home = mk_tag(&u, "home");
    r = PUT(S("/api/tags/%d", home), u.token, "{\"name\":\"wOrK\"}");
    DETAIL(r, 400, "Tag name already exists for this user");
    r = PUT(S("/api/tags/%d", work), u.token, "{\"name\":\"WORK\"}"); /* itself, recased */
    JSTR(EXPECT(r, 200), "name", "WORK");
    r = GET("/api/tags", u.token);
    ck_assert_uint_eq(json_array_size(EXPECT(r, 200)), 2);
}
END_TEST

START_TEST(test_tag_validation_errors_are_422)
{
    user u = new_user("tagval");
    char longname[52];
    memset(longname, 'n', 51);
    longname[51] = '\0';
    R r = POST("/api/tags", u.token, S("{\"name\":\"%s\"}", longname));
    INVALID(r, "string_too_long", "body", "name");
    longname[50] = '\0';
    r = POST("/api/tags", u.token, S("{\"name\":\"%s\"}", longname)); /* 50 is fine */
    EXPECT(r, 201);
    r = POST("/api/tags", u.token, "{\"name\":\"\"}");
    INVALID(r, "string_too_short", "body", "name");
    r = POST("/api/tags", u.token, "{\"color\":\"#123456\"}");
    INVALID(r, "missing", "body", "name");
    r = POST("/api/tags", u.token, "{\"name\":\"red\",\"color\":\"red\"}");
    INVALID(r, "string_pattern_mismatch", "body", "color");
    r = POST("/api/tags", u.token, "{\"name\":\"red\",\"color\":\"#12345G\"}");
    INVALID(r, "string_pattern_mismatch", "body", "color");
    r = POST("/api/tags", u.token, "{\"name\":5}");
    INVALID(r, "string_type", "body", "name");
    r = POST("/api/tags", u.token, "{\"name\":\"x\"");
    INVALID(r, "json_invalid", "body", NULL);
    r = GET("/api/tags/abc", u.token);
    INVALID(r, "int_parsing", "path", "tag_id");
    int t = mk_tag(&u, "ok");
    r = PUT(S("/api/tags/%d", t), u.token, "{\"color\":\"blue\"}");
    INVALID(r, "string_pattern_mismatch", "body", "color");
    r = PUT(S("/api/tags/%d", t), u.token, "{\"name\":\"\"}");
    INVALID(r, "string_too_short", "body", "name");
    r = GET("/api/tags", u.token);
    ck_assert_uint_eq(json_array_size(EXPECT(r, 200)), 2);
    r = GET(S("/api/tags/%d", t), u.token);
    JSTR(EXPECT(r, 200), "color", "#6366F1");
}
END_TEST

START_TEST(test_tag_get_put_delete_and_404)
{
    user u = new_user("tagcrud");
    int t = mk_tag(&u, "errands");
    R r = GET(S("/api/tags/%d", t), u.token);
    json_t *j = EXPECT(r, 200);
    JINT(j, "id", t);
    JSTR(j, "name", "errands");
    const char *created = JS(j, "created_at");
    r = PUT(S("/api/tags/%d", t), u.token, "{\"color\":\"#FF0000\"}");
    j = EXPECT(r, 200);
    JSTR(j, "name", "errands");
    JSTR(j, "color", "#FF0000");
    JSTR(j, "created_at", created);
    r = PUT(S("/api/tags/%d", t), u.token, "{\"name\":\"shopping\"}");
    j = EXPECT(r, 200);
    JSTR(j, "name", "shopping");
    JSTR(j, "color", "#FF0000");
    r = GET(S("/api/tags/%d", t), u.token);
    JSTR(EXPECT(r, 200), "name", "shopping");
    r = DEL(S("/api/tags/%d", t), u.token);
    JSTR(EXPECT(r, 200), "message", "Tag deleted successfully");
    r = GET(S("/api/tags/%d", t), u.token);
    DETAIL(r, 404, "Tag not found");
    r = PUT(S("/api/tags/%d", t), u.token, "{\"name\":\"again\"}");
    DETAIL(r, 404, "Tag not found");
    r = DEL(S("/api/tags/%d", t), u.token);
    DETAIL(r, 404, "Tag not found");
}
END_TEST

START_TEST(test_deleting_a_tag_detaches_it_from_tasks)
{
    user u = new_user("tagdetach");
    int a = mk_tag(&u, "a"), b = mk_tag(&u, "b");
    int t = mk_task_id(&u, S("{\"title\":\"tagged\",\"tag_ids\":[%d,%d]}", a, b));
    R r = DEL(S("/api/tags/%d", a), u.token);
    EXPECT(r, 200);
    json_t *task = get_task(&u, t);
    ck_assert_str_eq(ids_of(json_object_get(task, "tags")), S("%d", b));
    LIST_IS(&u, S("tags=%d", a), "");
}
END_TEST

/* =========================================== tasks ========================================== */

START_TEST(test_create_task_with_all_fields_ignores_foreign_tags)
{
    user u = new_user("create"), v = new_user("create2");
    int home = mk_tag(&u, "home"), work = mk_tag(&u, "work"), foreign = mk_tag(&v, "theirs");
    json_t *t = mk_task(
        &u, S("{\"title\":\"Pay rent\",\"description\":\"before the 5th\",\"completed\":false,"
              "\"priority\":\"urgent\",\"due_date\":\"2026-03-01T10:00:00+02:00\","
              "\"reminder_at\":\"2026-03-01T07:30:00Z\",\"is_recurring\":true,"
              "\"recurrence_rule\":\"custom\",\"recurrence_interval\":3,"
              "\"tag_ids\":[%d,%d,%d,999999999]}",
              home, work, foreign));
    IS_TASK(t);
    ck_assert_int_gt(JI(t, "id"), 0);
    JSTR(t, "title", "Pay rent");
    JSTR(t, "description", "before the 5th");
    JBOOL(t, "completed", 0);
    JSTR(t, "priority", "urgent");
    JSTR(t, "due_date", "2026-03-01T08:00:00.000000+00:00");
    JSTR(t, "reminder_at", "2026-03-01T07:30:00.000000+00:00");
    JBOOL(t, "reminder_sent", 0);
    JBOOL(t, "is_recurring", 1);
    JSTR(t, "recurrence_rule", "custom");
    JINT(t, "recurrence_interval", 3);
    JNULL(t, "parent_task_id");
    JSTR(t, "user_id", u.ids);
    ck_assert_str_eq(ids_sorted(json_object_get(t, "tags")),
                     S("%d,%d", home < work ? home : work, home < work ? work : home));
    json_t *tags = json_object_get(t, "tags");
    size_t i;
    json_t *tag;
    json_array_foreach(tags, i, tag)
    {
        JSTR(tag, "color", "#6366F1");
        JSTR(tag, "user_id", u.ids);
        JTS(tag, "created_at");
        JSTR(tag, "name", JI(tag, "id") == home ? "home" : "work");
    }
    /* what GET says is what POST said */
    json_t *again = get_task(&u, JI(t, "id"));
    ck_assert_str_eq(dump(again), dump(t));
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM task_tags WHERE tag_id = %d", foreign)), 0);
}
END_TEST

START_TEST(test_create_task_defaults)
{
    user u = new_user("defaults");
    json_t *t = mk_task(&u, "{\"title\":\"just a title\"}");
    IS_TASK(t);
    JNULL(t, "description");
    JBOOL(t, "completed", 0);
    JSTR(t, "priority", "medium");
    JNULL(t, "due_date");
    JNULL(t, "reminder_at");
    JBOOL(t, "reminder_sent", 0);
    JBOOL(t, "is_recurring", 0);
    JNULL(t, "recurrence_rule");
    JNULL(t, "recurrence_interval");
    JNULL(t, "parent_task_id");
    ck_assert_uint_eq(json_array_size(json_object_get(t, "tags")), 0);
    time_t created = ts_epoch(JS(t, "created_at"));
    ck_assert_msg(labs((long)(created - time(NULL))) < 120, "created_at %s is not now (UTC)",
                  JS(t, "created_at"));
}
END_TEST

START_TEST(test_timestamps_accept_z_offset_naive_and_date_only)
{
    user u = new_user("times");
    static const char *in_out[][2] = {
        {"2026-03-01T10:00:00Z", "2026-03-01T10:00:00.000000+00:00"},
        {"2026-03-01T10:00:00+02:00", "2026-03-01T08:00:00.000000+00:00"},
        {"2026-03-01T10:00:00-05:30", "2026-03-01T15:30:00.000000+00:00"},
        {"2026-03-01T10:00:00", "2026-03-01T10:00:00.000000+00:00"},
        {"2026-03-01", "2026-03-01T00:00:00.000000+00:00"},
        {"2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00.500000+00:00"},
        {"2026-03-01T10:00:00.123456+00:00", "2026-03-01T10:00:00.123456+00:00"},
        {"2026-03-01T01:00:00+02:00", "2026-02-28T23:00:00.000000+00:00"},
        {"2026-01-01T01:00:00+02:00", "2025-12-31T23:00:00.000000+00:00"},
        {"2026-03-01T10:00Z", "2026-03-01T10:00:00.000000+00:00"},
        {"2028-02-29", "2028-02-29T00:00:00.000000+00:00"},
    };
    for (size_t i = 0; i < sizeof(in_out) / sizeof(in_out[0]); i++) {
        json_t *t = mk_task(&u, S("{\"title\":\"t%zu\",\"due_date\":\"%s\",\"reminder_at\":\"%s\"}",
                                  i, in_out[i][0], in_out[i][0]));
        ck_assert_msg(strcmp(JS(t, "due_date"), in_out[i][1]) == 0, "due_date %s -> %s, want %s",
                      in_out[i][0], JS(t, "due_date"), in_out[i][1]);
        JSTR(t, "reminder_at", in_out[i][1]);
    }
}
END_TEST

START_TEST(test_create_task_validation_errors_are_422)
{
    user u = new_user("taskval");
    char title[300];
    memset(title, 'x', 256);
    title[256] = '\0';
    R r = POST("/api/tasks", u.token, S("{\"title\":\"%s\"}", title));
    INVALID(r, "string_too_long", "body", "title");
    title[255] = '\0';
    json_t *ok = mk_task(&u, S("{\"title\":\"%s\"}", title)); /* 255 is fine */
    ck_assert_uint_eq(strlen(JS(ok, "title")), 255);

    static const char *cases[][4] = {
        {"{}", "missing", "body", "title"},
        {"{\"description\":\"no title\"}", "missing", "body", "title"},
        {"{\"title\":\"\"}", "string_too_short", "body", "title"},
        {"{\"title\":\"x\",\"priority\":\"critical\"}", "enum", "body", "priority"},
        {"{\"title\":\"x\",\"due_date\":\"next tuesday\"}", "datetime_parsing", "body", "due_date"},
        {"{\"title\":\"x\",\"reminder_at\":\"2026-13-45T00:00:00Z\"}", "datetime_parsing", "body",
         "reminder_at"},
        {"{\"title\":\"x\",\"due_date\":\"2027-02-29\"}", "datetime_parsing", "body", "due_date"},
        {"{\"title\":\"x\",\"due_date\":\"2026-04-31T10:00:00Z\"}", "datetime_parsing", "body",
         "due_date"},
        {"{\"title\":\"x\",\"due_date\":\"2026-03-01T25:00:00Z\"}", "datetime_parsing", "body",
         "due_date"},
        {"{\"title\":\"x\",\"recurrence_rule\":\"yearly\"}", "enum", "body", "recurrence_rule"},
        {"{\"title\":123}", "string_type", "body", "title"},
        {"{\"title\":null}", "string_type", "body", "title"},
        {"{\"title\":\"x\",\"description\":5}", "string_type", "body", "description"},
        {"{\"title\":\"x\",\"completed\":[]}", "bool_type", "body", "completed"},
        {"{\"title\":\"x\",\"is_recurring\":{}}", "bool_type", "body", "is_recurring"},
        {"{\"title\":\"x\",\"recurrence_interval\":[3]}", "int_type", "body",
         "recurrence_interval"},
        {"{\"title\":\"x\",\"tag_ids\":\"1,2\"}", "list_type", "body", "tag_ids"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r = POST("/api/tasks", u.token, cases[i][0]);
        ck_assert_msg(r.status == 422, "POST /api/tasks %s: expected 422, got %ld: %s", cases[i][0],
                      r.status, r.body);
        INVALID(r, cases[i][1], cases[i][2], cases[i][3]);
    }
    /* every error at once, not just the first */
    r = POST("/api/tasks", u.token, "{\"title\":\"\",\"priority\":\"critical\"}");
    INVALID(r, "string_too_short", "body", "title");
    INVALID(r, "enum", "body", "priority");
    long total = 0;
    list_ids(&u, "", &total);
    ck_assert_int_eq(total, 1); /* nothing but the 255-char task was created */
}
END_TEST

START_TEST(test_malformed_json_is_422_json_invalid)
{
    user u = new_user("badjson");
    int t = mk_task_id(&u, "{\"title\":\"ok\"}");
    R r = POST("/api/tasks", u.token, "{\"title\": \"x\",");
    INVALID(r, "json_invalid", "body", NULL);
    r = PUT(S("/api/tasks/%d", t), u.token, "{title: 'x'}");
    INVALID(r, "json_invalid", "body", NULL);
    r = PATCH(S("/api/tasks/%d/complete", t), u.token, "{\"completed\": tru}");
    INVALID(r, "json_invalid", "body", NULL);
    r = POST("/api/auth/login", NULL, "not json at all");
    INVALID(r, "json_invalid", "body", NULL);
    JSTR(get_task(&u, t), "title", "ok");
}
END_TEST

START_TEST(test_get_missing_task_is_404_and_non_integer_id_is_422)
{
    user u = new_user("get404");
    R r = GET("/api/tasks/999999999", u.token);
    DETAIL(r, 404, "Task not found");
    r = GET("/api/tasks/abc", u.token);
    INVALID(r, "int_parsing", "path", "task_id");
    r = PUT("/api/tasks/1x", u.token, "{\"title\":\"x\"}");
    INVALID(r, "int_parsing", "path", "task_id");
    r = DEL("/api/tasks/abc", u.token);
    INVALID(r, "int_parsing", "path", "task_id");
    r = PATCH("/api/tasks/abc/complete", u.token, "{\"completed\":true}");
    INVALID(r, "int_parsing", "path", "task_id");
    r = PATCH("/api/tasks/abc/reminder", u.token, "{\"reminder_at\":null}");
    INVALID(r, "int_parsing", "path", "task_id");
    r = POST("/api/tasks/abc/reminder/sent", u.token, NULL);
    INVALID(r, "int_parsing", "path", "task_id");
    r = DEL("/api/tags/x1", u.token);
    INVALID(r, "int_parsing", "path", "tag_id");
    r = PUT("/api/tags/x1", u.token, "{\"name\":\"n\"}");
    INVALID(r, "int_parsing", "path", "tag_id");
}
END_TEST

START_TEST(test_put_is_partial_null_clears_tag_ids_replace_updated_at_refreshed)
{
    user u = new_user("put");
    int home = mk_tag(&u, "home"), work = mk_tag(&u, "work");
    json_t *t = mk_task(&u, S("{\"title\":\"orig\",\"description\":\"desc\",\"priority\":\"high\","
                              "\"due_date\":\"2026-03-01T10:00:00Z\","
                              "\"reminder_at\":\"2026-03-01T09:00:00Z\",\"tag_ids\":[%d]}",
                              home));
    int id = JI(t, "id");
    const char *path = S("/api/tasks/%d", id);
    const char *created = JS(t, "created_at"), *updated = JS(t, "updated_at");

    R r = PUT(path, u.token, "{\"title\":\"renamed\"}");
    json_t *j = EXPECT(r, 200);
    IS_TASK(j);
    JSTR(j, "title", "renamed");
    JSTR(j, "description", "desc");
    JSTR(j, "priority", "high");
    JSTR(j, "due_date", "2026-03-01T10:00:00.000000+00:00");
    JSTR(j, "reminder_at", "2026-03-01T09:00:00.000000+00:00");
    JBOOL(j, "completed", 0);
    ck_assert_str_eq(ids_of(json_object_get(j, "tags")), S("%d", home));
    JSTR(j, "created_at", created);
    ck_assert_msg(strcmp(JS(j, "updated_at"), updated) > 0, "updated_at %s not after %s",
                  JS(j, "updated_at"), updated);
    ck_assert_str_eq(dump(get_task(&u, id)), dump(j));

    r = PUT(path, u.token, "{\"description\":null,\"due_date\":null}");
    j = EXPECT(r, 200);
    JNULL(j, "description");
    JNULL(j, "due_date");
    JSTR(j, "title", "renamed");
    JSTR(j, "priority", "high");
    JSTR(j, "reminder_at", "2026-03-01T09:00:00.000000+00:00");

    r = PUT(path, u.token, S("{\"tag_ids\":[%d,%d]}", work, home));
    j = EXPECT(r, 200);
    ck_assert_str_eq(ids_sorted(json_object_get(j, "tags")),
                     S("%d,%d", home < work ? home : work, home < work ? work : home));
    r = PUT(path, u.token, S("{\"tag_ids\":[%d]}", work));
    ck_assert_str_eq(ids_of(json_object_get(EXPECT(r, 200), "tags")), S("%d", work));
    r = PUT(path, u.token, "{\"tag_ids\":[]}");
    ck_assert_str_eq(ids_of(json_object_get(EXPECT(r, 200), "tags")), "");

    r = PUT(path, u.token,
            "{\"priority\":\"urgent\",\"completed\":true,\"is_recurring\":true,"
            "\"recurrence_rule\":\"weekly\",\"recurrence_interval\":2,"
            "\"due_date\":\"2026-04-01\"}");
    j = EXPECT(r, 200);
    JSTR(j, "priority", "urgent");
    JBOOL(j, "completed", 1);
    JBOOL(j, "is_recurring", 1);
    JSTR(j, "recurrence_rule", "weekly");
    JINT(j, "recurrence_interval", 2);
    JSTR(j, "due_date", "2026-04-01T00:00:00.000000+00:00");
    r = PUT(path, u.token, "{\"recurrence_rule\":null,\"recurrence_interval\":null}");
    j = EXPECT(r, 200);
    JNULL(j, "recurrence_rule");
    JNULL(j, "recurrence_interval");
    JSTR(j, "title", "renamed");
    r = PUT(path, u.token, "{}");
    j = EXPECT(r, 200);
    JSTR(j, "title", "renamed");
    JSTR(j, "priority", "urgent");
}
END_TEST

START_TEST(test_put_validation_errors_leave_the_task_unchanged)
{
    user u = new_user("putval");
    int id = mk_task_id(&u, "{\"title\":\"keep me\",\"priority\":\"low\"}");
    const char *path = S("/api/tasks/%d", id);
    R r = PUT(path, u.token, "{\"priority\":\"nope\"}");
    INVALID(r, "enum", "body", "priority");
    r = PUT(path, u.token, "{\"title\":\"\"}");
    INVALID(r, "string_too_short", "body", "title");
    r = PUT(path, u.token, "{\"due_date\":\"someday\"}");
    INVALID(r, "datetime_parsing", "body", "due_date");
    r = PUT(path, u.token, "{\"recurrence_rule\":\"hourly\"}");
    INVALID(r, "enum", "body", "recurrence_rule");
    r = PUT(path, u.token, "{\"completed\":[],\"title\":\"changed\"}");
    INVALID(r, "bool_type", "body", "completed");
    r = PUT(path, u.token, "{\"tag_ids\":5}");
    INVALID(r, "list_type", "body", "tag_ids");
    json_t *t = get_task(&u, id);
    JSTR(t, "title", "keep me");
    JSTR(t, "priority", "low");
    r = PUT("/api/tasks/999999999", u.token, "{\"title\":\"x\"}");
    DETAIL(r, 404, "Task not found");
}
END_TEST

START_TEST(test_delete_task)
{
    user u = new_user("deltask");
    int tag = mk_tag(&u, "t");
    int id = mk_task_id(&u, S("{\"title\":\"bye\",\"tag_ids\":[%d]}", tag));
    int keepid = mk_task_id(&u, "{\"title\":\"stay\"}");
    R r = DEL(S("/api/tasks/%d", id), u.token);
    JSTR(EXPECT(r, 200), "message", "Task deleted successfully");
    r = GET(S("/api/tasks/%d", id), u.token);
    DETAIL(r, 404, "Task not found");
    r = DEL(S("/api/tasks/%d", id), u.token);
    DETAIL(r, 404, "Task not found");
    LIST_IS(&u, "", S("%d", keepid));
    r = GET(S("/api/tags/%d", tag), u.token); /* the tag itself stays */
    EXPECT(r, 200);
}
END_TEST

START_TEST(test_deleting_recurring_parent_keeps_children_detached)
{
    user u = new_user("delparent");
    int id = mk_task_id(&u, "{\"title\":\"standup\",\"is_recurring\":true,"
                            "\"recurrence_rule\":\"daily\",\"due_date\":\"2026-06-01T09:00:00Z\"}");
    json_t *j = complete(&u, id, 1);
    int child = JI(j, "next_task.id");
    JINT(j, "next_task.parent_task_id", id);
    R r = DEL(S("/api/tasks/%d", id), u.token);
    JSTR(EXPECT(r, 200), "message", "Task deleted successfully");
    json_t *c = get_task(&u, child);
    JNULL(c, "parent_task_id");
    JSTR(c, "title", "standup");
    r = GET(S("/api/tasks/%d", id), u.token);
    DETAIL(r, 404, "Task not found");
}
END_TEST

/* ========================================== queries ========================================= */

typedef struct seeded {
    user u;
    int home, work;
    int t[6]; /* t[1]..t[5], created in that order */
} seeded;

static seeded seed(void)
{
    seeded s;
    memset(&s, 0, sizeof(s));
    s.u = new_user("query");
    s.home = mk_tag(&s.u, "home");
    s.work = mk_tag(&s.u, "work");
    s.t[1] = mk_task_id(&s.u, S("{\"title\":\"Buy milk\",\"priority\":\"low\","
                                "\"due_date\":\"2021-01-10T09:00:00Z\",\"tag_ids\":[%d]}",
                                s.home));
    s.t[2] = mk_task_id(&s.u, S("{\"title\":\"Write report\",\"description\":\"Quarterly MILK"
                                " numbers\",\"priority\":\"high\",\"completed\":true,"
                                "\"due_date\":\"2021-02-10T09:00:00Z\",\"tag_ids\":[%d]}",
                                s.work));
    s.t[3] = mk_task_id(&s.u, S("{\"title\":\"call mom\",\"priority\":\"urgent\","
                                "\"tag_ids\":[%d,%d]}",
                                s.home, s.work));
    s.t[4] = mk_task_id(&s.u, "{\"title\":\"Plan trip\",\"description\":\"beach\","
                              "\"priority\":\"medium\",\"due_date\":\"2099-01-01T00:00:00Z\"}");
    s.t[5] = mk_task_id(&s.u, "{\"title\":\"overdue done\",\"priority\":\"medium\","
                              "\"due_date\":\"2020-01-01T00:00:00Z\",\"completed\":true}");
    return s;
}

/* "t[a],t[b],..." from a list of indexes, 0-terminated */
static const char *T(const seeded *s, const char *order)
{
    char *out = S("%s", "");
    for (const char *p = order; *p; p++)
        out = S("%s%s%d", out, p == order ? "" : ",", s->t[*p - '0']);
    return out;
}

#define ASC "sort_by=created_at&order=asc&"

START_TEST(test_filter_by_search_status_priority_and_tags)
{
    seeded s = seed();
    user *u = &s.u;
    LIST_IS(u, ASC "search=milk", T(&s, "12"));
    LIST_IS(u, ASC "search=MILK", T(&s, "12"));
    LIST_IS(u, ASC "search=beach", T(&s, "4"));
    LIST_IS(u, ASC "search=Mom", T(&s, "3"));
    LIST_IS(u, ASC "search=nothing-like-this", "");
    LIST_IS(u, ASC "status=pending", T(&s, "134"));
    LIST_IS(u, ASC "status=completed", T(&s, "25"));
    LIST_IS(u, ASC "status=all", T(&s, "12345"));
    LIST_IS(u, ASC "priority=high,urgent", T(&s, "23"));
    LIST_IS(u, ASC "priority=low", T(&s, "1"));
    LIST_IS(u, ASC "priority=medium", T(&s, "45"));
    LIST_IS(u, S(ASC "tags=%d", s.home), T(&s, "13"));
    LIST_IS(u, S(ASC "tags=%d,%d", s.home, s.work), T(&s, "123")); /* t3 once */
    LIST_IS(u, ASC "status=pending&priority=low,urgent", T(&s, "13"));
    LIST_IS(u, ASC "search=milk&status=pending", T(&s, "1"));
    LIST_IS(u, S(ASC "tags=%d&status=completed", s.work), T(&s, "2"));
}
END_TEST

START_TEST(test_filter_by_due_range_and_overdue)
{
    seeded s = seed();
    user *u = &s.u;
    LIST_IS(u, ASC "due_before=2021-02-01T00:00:00Z", T(&s, "15"));
    LIST_IS(u, ASC "due_after=2021-02-01T00:00:00Z", T(&s, "24"));
    LIST_IS(u, ASC "due_after=2021-01-01T00:00:00Z&due_before=2021-03-01T00:00:00Z", T(&s, "12"));
    LIST_IS(u, ASC "due_before=2021-02-01", T(&s, "15"));
    /* offsets in the query are converted too: 12:00+02:00 is 10:00Z, after t1's 09:00Z */
    LIST_IS(u, ASC "due_before=2021-01-10T12:00:00%2B02:00", T(&s, "15"));
    LIST_IS(u, ASC "due_before=2021-01-10T10:00:00%2B02:00", T(&s, "5"));
    LIST_IS(u, ASC "overdue=true", T(&s, "1"));
    LIST_IS(u, ASC "overdue=true&priority=high", "");
}
END_TEST

static const char *priorities_of(const user *u, const char *query)
{
    R r = GET(S("/api/tasks?%s", query), u->token);
    json_t *j = EXPECT(r, 200);
    char *out = S("%s", "");
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e) out = S("%s%s%s", out, i ? "," : "", JS(e, "priority"));
    return out;
}

START_TEST(test_sort_by_priority_due_date_title_and_created_at)
{
    seeded s = seed();
    user *u = &s.u;
    LIST_IS(u, "", T(&s, "54321")); /* created_at desc by default */
    LIST_IS(u, "sort_by=created_at", T(&s, "54321"));
    LIST_IS(u, "sort_by=created_at&order=asc", T(&s, "12345"));
    ck_assert_str_eq(priorities_of(u, "sort_by=priority&order=desc"),
                     "urgent,high,medium,medium,low");
    ck_assert_str_eq(priorities_of(u, "sort_by=priority&order=asc"),
                     "low,medium,medium,high,urgent");
    ck_assert_str_eq(priorities_of(u, "sort_by=priority"), "urgent,high,medium,medium,low");
    LIST_IS(u, "sort_by=due_date&order=asc", T(&s, "51243"));
    LIST_IS(u, "sort_by=due_date&order=desc", T(&s, "42153"));
    LIST_IS(u, "sort_by=title&order=asc", T(&s, "13542"));
    LIST_IS(u, "sort_by=title&order=desc", T(&s, "24531"));
    LIST_IS(u, "sort_by=title", T(&s, "24531"));
}
END_TEST

START_TEST(test_limit_offset_and_total_count)
{
    seeded s = seed();
    user *u = &s.u;
    long total = -2;
    ck_assert_str_eq(list_ids(u, "", &total), T(&s, "54321"));
    ck_assert_int_eq(total, 5);
    ck_assert_str_eq(list_ids(u, "limit=2", &total), T(&s, "54"));
    ck_assert_int_eq(total, 5);
    ck_assert_str_eq(list_ids(u, "limit=2&offset=2", &total), T(&s, "32"));
    ck_assert_int_eq(total, 5);
    ck_assert_str_eq(list_ids(u, "limit=2&offset=4", &total), T(&s, "1"));
    ck_assert_int_eq(total, 5);
    ck_assert_str_eq(list_ids(u, "offset=10", &total), "");
    ck_assert_int_eq(total, 5);
    ck_assert_str_eq(list_ids(u, "status=pending&limit=1", &total), T(&s, "4"));
    ck_assert_int_eq(total, 3);
    ck_assert_str_eq(list_ids(u, "limit=1000&sort_by=title&order=asc", &total), T(&s, "13542"));
    ck_assert_int_eq(total, 5);
    ck_assert_str_eq(list_ids(u, S("tags=%d,%d&limit=1", s.home, s.work), &total), T(&s, "3"));
    ck_assert_int_eq(total, 3); /* t3 has both tags and counts once */
    user empty = new_user("nolist");
    ck_assert_str_eq(list_ids(&empty, "", &total), "");
    ck_assert_int_eq(total, 0);
}
END_TEST

START_TEST(test_query_validation_errors_are_422)
{
    user u = new_user("queryval");
    static const char *cases[][4] = {
        {"limit=1001", "less_than_equal", "query", "limit"},
        {"offset=-1", "greater_than_equal", "query", "offset"},
        {"limit=abc", "int_parsing", "query", "limit"},
        {"offset=1.5", "int_parsing", "query", "offset"},
        {"sort_by=colour", "enum", "query", "sort_by"},
        {"order=sideways", "enum", "query", "order"},
        {"status=done", "enum", "query", "status"},
        {"due_before=yesterday", "datetime_parsing", "query", "due_before"},
        {"due_after=2026-02-30T00:00:00Z", "datetime_parsing", "query", "due_after"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        R r = GET(S("/api/tasks?%s", cases[i][0]), u.token);
        INVALID(r, cases[i][1], cases[i][2], cases[i][3]);
    }
    R r = GET("/api/tasks/reminders?before=tomorrow", u.token);
    INVALID(r, "datetime_parsing", "query", "before");
}
END_TEST

/* Every filter at once, at its longest: the statement is built whole and answers. */
START_TEST(test_the_longest_filter_combination_answers)
{
    seeded s = seed();
    user *u = &s.u;
    char *tags = S("%d,%d", s.home, s.work);
    for (int i = 1; i <= 98; i++) /* ids of no task of the user's: they match nothing */
        tags = S("%s,%d", tags, 2000000000 + i);
    const char *filters = S("search=milk&status=pending&priority=low,medium,high,urgent&tags=%s"
                            "&due_after=2021-01-01T00:00:00Z&due_before=2021-03-01T00:00:00.999999Z"
                            "&overdue=t&sort_by=priority&order=asc&limit=1000",
                            tags);
    long total = -2;
    ck_assert_str_eq(list_ids(u, S("%s&offset=0", filters), &total), T(&s, "1"));
    ck_assert_int_eq(total, 1);
    /* past the end the count runs on its own, with every filter too */
    ck_assert_str_eq(list_ids(u, S("%s&offset=2147483647", filters), &total), "");
    ck_assert_int_eq(total, 1);
    /* and a change of every field at once */
    R r = PUT(S("/api/tasks/%d", s.t[1]), u->token,
              S("{\"title\":\"Buy oat milk\",\"description\":\"two\",\"completed\":true,"
                "\"priority\":\"urgent\",\"due_date\":\"2021-01-11T09:00:00Z\","
                "\"reminder_at\":\"2021-01-11T08:00:00Z\",\"is_recurring\":true,"
                "\"recurrence_rule\":\"custom\",\"recurrence_interval\":3,\"tag_ids\":[%d]}",
                s.work));
    json_t *j = EXPECT(r, 200);
    JSTR(j, "title", "Buy oat milk");
    JSTR(j, "priority", "urgent");
    JINT(j, "recurrence_interval", 3);
    JINT(j, "tags.0.id", s.work);
}
END_TEST

/* ========================================= completion ======================================= */

START_TEST(test_complete_and_reopen_plain_task)
{
    user u = new_user("complete");
    int id = mk_task_id(&u, "{\"title\":\"once\",\"due_date\":\"2026-05-01\"}");
    json_t *j = complete(&u, id, 1);
    IS_TASK(j);
    JINT(j, "id", id);
    JBOOL(j, "completed", 1);
    JABSENT(j, "completed_task");
    JBOOL(get_task(&u, id), "completed", 1);
    j = complete(&u, id, 0);
    JINT(j, "id", id);
    JBOOL(j, "completed", 0);
    long total = 0;
    list_ids(&u, "", &total);
    ck_assert_int_eq(total, 1);
}
END_TEST

START_TEST(test_complete_requires_the_completed_field)
{
    user u = new_user("completeval");
    int id = mk_task_id(&u, "{\"title\":\"x\"}");
    R r = PATCH(S("/api/tasks/%d/complete", id), u.token, "{}");
    INVALID(r, "missing", "body", "completed");
    r = PATCH(S("/api/tasks/%d/complete", id), u.token, "{\"completed\":[true]}");
    INVALID(r, "bool_type", "body", "completed");
    JBOOL(get_task(&u, id), "completed", 0);
    r = PATCH("/api/tasks/999999999/complete", u.token, "{\"completed\":true}");
    DETAIL(r, 404, "Task not found");
}
END_TEST

/* Completes a new recurring task made from body; checks and returns the next instance. */
#define NEXT_DUE(u, body, want) next_due_at(__LINE__, (u), (body), (want))
static json_t *next_due_at(int line, const user *u, const char *body, const char *want)
{
    json_t *t = mk_task(u, body);
    int id = JI(t, "id");
    json_t *j = complete(u, id, 1);
    JINT(j, "completed_task.id", id);
    JBOOL(j, "completed_task.completed", 1);
    json_t *next = json_object_get(j, "next_task");
    ck_assert_msg(json_is_object(next), "line %d: no next_task: %s", line, dump(j));
    is_task(line, next);
    ck_assert_msg(JI(next, "id") != id, "line %d", line);
    if (want)
        jstr_eq(line, next, "due_date", want);
    jint_eq(line, next, "parent_task_id", id);
    jnull(line, next, "reminder_at");
    jbool_eq(line, next, "reminder_sent", 0);
    jbool_eq(line, next, "completed", 0);
    jbool_eq(line, next, "is_recurring", 1);
    static const char *copied[] = {
        "title",   "description", "priority", "recurrence_rule", "recurrence_interval",
        "user_id", NULL};
    for (int i = 0; copied[i]; i++)
        ck_assert_msg(json_equal(json_object_get(t, copied[i]), json_object_get(next, copied[i])),
                      "line %d: %s not copied: %s vs %s", line, copied[i],
                      dump(json_object_get(t, copied[i])), dump(json_object_get(next, copied[i])));
    ck_assert_msg(strcmp(ids_sorted(json_object_get(t, "tags")),
                         ids_sorted(json_object_get(next, "tags"))) == 0,
                  "line %d: tags not copied: %s vs %s", line, dump(json_object_get(t, "tags")),
                  dump(json_object_get(next, "tags")));
    ck_assert_str_eq(dump(get_task(u, JI(next, "id"))), dump(next));
    return next;
}

START_TEST(test_completing_recurring_task_creates_the_next_instance)
{
    user u = new_user("recur");
    int tag = mk_tag(&u, "garden");
    const char *common =
        S("\"description\":\"balcony\",\"priority\":\"high\",\"is_recurring\":true,"
          "\"due_date\":\"2026-05-10T12:00:00Z\",\"reminder_at\":"
          "\"2026-05-10T11:00:00Z\",\"tag_ids\":[%d]",
          tag);
    NEXT_DUE(&u, S("{\"title\":\"water\",%s,\"recurrence_rule\":\"daily\"}", common),
             "2026-05-11T12:00:00.000000+00:00");
    NEXT_DUE(&u, S("{\"title\":\"mow\",%s,\"recurrence_rule\":\"weekly\"}", common),
             "2026-05-17T12:00:00.000000+00:00");
    NEXT_DUE(&u,
             S("{\"title\":\"feed\",%s,\"recurrence_rule\":\"custom\",\"recurrence_interval\":3}",
               common),
             "2026-05-13T12:00:00.000000+00:00");
    NEXT_DUE(&u, S("{\"title\":\"prune\",%s,\"recurrence_rule\":\"custom\"}", common),
             "2026-05-11T12:00:00.000000+00:00");
    NEXT_DUE(&u, S("{\"title\":\"bills\",%s,\"recurrence_rule\":\"monthly\"}", common),
             "2026-06-10T12:00:00.000000+00:00");
}
END_TEST

START_TEST(test_monthly_recurrence_clamps_to_month_end)
{
    user u = new_user("monthly");
    static const char *cases[][2] = {
        {"2027-01-31T09:00:00Z", "2027-02-28T09:00:00.000000+00:00"},
        {"2028-01-31T09:00:00Z", "2028-02-29T09:00:00.000000+00:00"},
        {"2026-03-31T09:00:00Z", "2026-04-30T09:00:00.000000+00:00"},
        {"2026-12-15T09:00:00Z", "2027-01-15T09:00:00.000000+00:00"},
        {"2026-12-31T23:30:00Z", "2027-01-31T23:30:00.000000+00:00"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        NEXT_DUE(&u,
                 S("{\"title\":\"rent %zu\",\"is_recurring\":true,\"recurrence_rule\":\"monthly\","
                   "\"due_date\":\"%s\"}",
                   i, cases[i][0]),
                 cases[i][1]);
}
END_TEST

START_TEST(test_recompleting_creates_no_second_instance_and_reopen_returns_task)
{
    user u = new_user("recomplete");
    int id = mk_task_id(&u, "{\"title\":\"gym\",\"is_recurring\":true,\"recurrence_rule\":"
                            "\"daily\",\"due_date\":\"2026-07-01T06:00:00Z\"}");
    json_t *j = complete(&u, id, 1);
    JINT(j, "next_task.parent_task_id", id);
    R r = PATCH(S("/api/tasks/%d/complete", id), u.token, "{\"completed\":true}");
    EXPECT(r, 200);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE parent_task_id = %d", id)), 1);
    long total = 0;
    list_ids(&u, "", &total);
    ck_assert_int_eq(total, 2);
    j = complete(&u, id, 0);
    IS_TASK(j);
    JINT(j, "id", id);
    JBOOL(j, "completed", 0);
    JABSENT(j, "completed_task");
    JABSENT(j, "next_task");
    list_ids(&u, "", &total);
    ck_assert_int_eq(total, 2);
}
END_TEST

START_TEST(test_recurring_task_without_due_date_is_next_due_a_day_from_now)
{
    user u = new_user("recurnow");
    json_t *next = NEXT_DUE(&u,
                            "{\"title\":\"stretch\",\"is_recurring\":true,"
                            "\"recurrence_rule\":\"daily\"}",
                            NULL);
    JTS(next, "due_date");
    long delta = (long)(ts_epoch(JS(next, "due_date")) - (time(NULL) + 86400));
    ck_assert_msg(labs(delta) < 300, "next due %s is %ld s from now + 1 day", JS(next, "due_date"),
                  delta);
}
END_TEST

/* ========================================= reminders ======================================== */

static const char *reminders(const user *u, const char *query)
{
    R r = GET(S("/api/tasks/reminders%s%s", *query ? "?" : "", query), u->token);
    return ids_sorted(EXPECT(r, 200));
}

START_TEST(test_reminders_list_set_clear_and_sent)
{
    user u = new_user("remind");
    int a = mk_task_id(&u, "{\"title\":\"call bank\",\"due_date\":\"2020-01-02T00:00:00Z\","
                           "\"reminder_at\":\"2020-01-01T08:00:00Z\"}");
    int b = mk_task_id(&u, "{\"title\":\"future\",\"reminder_at\":\"2099-01-01T00:00:00Z\"}");
    mk_task_id(&u, "{\"title\":\"done\",\"reminder_at\":\"2020-01-01T00:00:00Z\","
                   "\"completed\":true}");
    int d = mk_task_id(&u, "{\"title\":\"no reminder\"}");

    R r = GET("/api/tasks/reminders", u.token);
    json_t *list = EXPECT(r, 200);
    ck_assert_str_eq(ids_of(list), S("%d", a));
    json_t *item = json_array_get(list, 0);
    ck_assert_int_eq(json_object_size(item), 4);
    JSTR(item, "title", "call bank");
    JSTR(item, "due_date", "2020-01-02T00:00:00.000000+00:00");
    JSTR(item, "reminder_at", "2020-01-01T08:00:00.000000+00:00");
    ck_assert_str_eq(reminders(&u, "before=2100-01-01T00:00:00Z"),
                     S("%d,%d", a < b ? a : b, a < b ? b : a));
    ck_assert_str_eq(reminders(&u, "before=2019-12-31T00:00:00Z"), "");
    ck_assert_str_eq(reminders(&u, "before=2020-01-01T08:00:00Z"), S("%d", a)); /* <= */

    r = PATCH(S("/api/tasks/%d/reminder", d), u.token,
              "{\"reminder_at\":\"2020-06-01T00:00:00Z\"}");
    json_t *j = EXPECT(r, 200);
    IS_TASK(j);
    JSTR(j, "reminder_at", "2020-06-01T00:00:00.000000+00:00");
    JBOOL(j, "reminder_sent", 0);
    ck_assert_str_eq(reminders(&u, ""), S("%d,%d", a, d));

    r = POST(S("/api/tasks/%d/reminder/sent", a), u.token, NULL);
    j = EXPECT(r, 200);
    IS_TASK(j);
    JINT(j, "id", a);
    JBOOL(j, "reminder_sent", 1);
    JBOOL(get_task(&u, a), "reminder_sent", 1);
    ck_assert_str_eq(reminders(&u, ""), S("%d", d));

    r = PATCH(S("/api/tasks/%d/reminder", a), u.token,
              "{\"reminder_at\":\"2020-02-01T00:00:00Z\"}");
    j = EXPECT(r, 200);
    JBOOL(j, "reminder_sent", 0);
    ck_assert_str_eq(reminders(&u, ""), S("%d,%d", a, d));

    r = PATCH(S("/api/tasks/%d/reminder", d), u.token, "{\"reminder_at\":null}");
    j = EXPECT(r, 200);
    JNULL(j, "reminder_at");
    ck_assert_str_eq(reminders(&u, ""), S("%d", a));

    complete(&u, a, 1);
    ck_assert_str_eq(reminders(&u, ""), "");
}
END_TEST

START_TEST(test_reminder_errors)
{
    user u = new_user("remindval");
    int id = mk_task_id(&u, "{\"title\":\"x\",\"reminder_at\":\"2020-01-01T00:00:00Z\"}");
    R r = PATCH(S("/api/tasks/%d/reminder", id), u.token, "{\"reminder_at\":\"soon\"}");
    INVALID(r, "datetime_parsing", "body", "reminder_at");
    r = PATCH(S("/api/tasks/%d/reminder", id), u.token, "{\"reminder_at\":");
    INVALID(r, "json_invalid", "body", NULL);
    JSTR(get_task(&u, id), "reminder_at", "2020-01-01T00:00:00.000000+00:00");
    r = PATCH("/api/tasks/999999999/reminder", u.token, "{\"reminder_at\":null}");
    DETAIL(r, 404, "Task not found");
    r = POST("/api/tasks/999999999/reminder/sent", u.token, NULL);
    DETAIL(r, 404, "Task not found");
}
END_TEST

/* ======================================= conversations ====================================== */

static const char *mk_conversation(const user *u, const char *created, const char *updated)
{
    return dbval(S("INSERT INTO conversations (user_id, created_at, updated_at) VALUES"
                   " ('%s', '%s', '%s') RETURNING id",
                   u->ids, created, updated));
}

static const char *mk_message(const user *u, const char *cid, const char *role, const char *content,
                              const char *tool_calls, const char *at)
{
    return dbval(S("INSERT INTO messages (conversation_id, user_id, role, content, tool_calls,"
                   " created_at) VALUES (%s, '%s', '%s', '%s', %s, '%s') RETURNING id",
                   cid, u->ids, role, content, tool_calls ? S("'%s'", tool_calls) : "NULL", at));
}

START_TEST(test_conversations_listed_newest_first_with_preview)
{
    user u = new_user("convs");
    char longmsg[151];
    for (int i = 0; i < 150; i++)
        longmsg[i] = (char)('a' + i % 26);
    longmsg[150] = '\0';
    const char *c1 = mk_conversation(&u, "2026-01-01 10:00:00", "2026-01-01 10:05:00");
    mk_message(&u, c1, "user", "hello", NULL, "2026-01-01 10:00:01");
    mk_message(&u, c1, "assistant", "Hi there", NULL, "2026-01-01 10:00:02");
    mk_message(&u, c1, "user", longmsg, NULL, "2026-01-01 10:05:00");
    const char *c2 = mk_conversation(&u, "2026-01-02 08:00:00", "2026-01-02 08:00:00");
    mk_message(&u, c2, "user", "second", NULL, "2026-01-02 08:00:00");
    const char *c3 = mk_conversation(&u, "2025-12-31 00:00:00", "2025-12-31 00:00:00");

    R r = GET(S("/api/%s/conversations", u.ids), u.token);
    json_t *j = EXPECT(r, 200);
    JINT(j, "total", 3);
    JINT(j, "limit", 20);
    JINT(j, "offset", 0);
    json_t *list = json_object_get(j, "conversations");
    ck_assert_str_eq(ids_of(list), S("%s,%s,%s", c2, c1, c3));
    json_t *e1 = json_array_get(list, 1);
    JINT(e1, "message_count", 3);
    JSTR(e1, "last_message", S("%.100s...", longmsg));
    JSTR(e1, "created_at", "2026-01-01T10:00:00.000000+00:00");
    JSTR(e1, "updated_at", "2026-01-01T10:05:00.000000+00:00");
    JINT(list, "0.message_count", 1);
    JSTR(list, "0.last_message", "second");
    JINT(list, "2.message_count", 0);
    JNULL(list, "2.last_message");

    r = GET(S("/api/%s/conversations?limit=1&offset=1", u.ids), u.token);
    j = EXPECT(r, 200);
    ck_assert_str_eq(ids_of(json_object_get(j, "conversations")), c1);
    JINT(j, "total", 3);
    JINT(j, "limit", 1);
    JINT(j, "offset", 1);
}
END_TEST

START_TEST(test_messages_oldest_first_newest_limit_and_has_more)
{
    user u = new_user("msgs");
    const char *c = mk_conversation(&u, "2026-02-01 10:00:00", "2026-02-01 10:00:03");
    const char *m1 = mk_message(&u, c, "user", "add milk", NULL, "2026-02-01 10:00:01");
    const char *m2 = mk_message(&u, c, "assistant", "Added",
                                "[{\"tool\":\"add_task\",\"params\":{\"title\":"
                                "\"milk\"},\"result\":{\"task_id\":1}}]",
                                "2026-02-01 10:00:02");
    const char *m3 = mk_message(&u, c, "user", "thanks", NULL, "2026-02-01 10:00:03");

    R r = GET(S("/api/%s/conversations/%s/messages", u.ids, c), u.token);
    json_t *j = EXPECT(r, 200);
    JINT(j, "conversation_id", atoi(c));
    JBOOL(j, "has_more", 0);
    json_t *msgs = json_object_get(j, "messages");
    ck_assert_str_eq(ids_of(msgs), S("%s,%s,%s", m1, m2, m3));
    JSTR(msgs, "0.role", "user");
    JSTR(msgs, "0.content", "add milk");
    JNULL(msgs, "0.tool_calls");
    JSTR(msgs, "0.created_at", "2026-02-01T10:00:01.000000+00:00");
    JSTR(msgs, "1.role", "assistant");
    JSTR(msgs, "1.tool_calls.0.tool", "add_task"); /* the stored JSON, as JSON */
    JSTR(msgs, "1.tool_calls.0.params.title", "milk");

    r = GET(S("/api/%s/conversations/%s/messages?limit=2", u.ids, c), u.token);
    j = EXPECT(r, 200);
    ck_assert_str_eq(ids_of(json_object_get(j, "messages")), S("%s,%s", m2, m3));
    JBOOL(j, "has_more", 1);
    r = GET(S("/api/%s/conversations/%s/messages?limit=3", u.ids, c), u.token);
    JBOOL(EXPECT(r, 200), "has_more", 0);
}
END_TEST

START_TEST(test_delete_conversation_removes_its_messages)
{
    user u = new_user("delconv");
    const char *c = mk_conversation(&u, "2026-02-01 10:00:00", "2026-02-01 10:00:00");
    const char *other = mk_conversation(&u, "2026-02-02 10:00:00", "2026-02-02 10:00:00");
    for (int i = 0; i < 3; i++)
        mk_message(&u, c, i % 2 ? "assistant" : "user", "m", NULL, "2026-02-01 10:00:00");
    mk_message(&u, other, "user", "keep", NULL, "2026-02-02 10:00:00");
    R r = DEL(S("/api/%s/conversations/%s", u.ids, c), u.token);
    json_t *j = EXPECT(r, 200);
    JBOOL(j, "success", 1);
    JINT(j, "conversation_id", atoi(c));
    JINT(j, "messages_deleted", 3);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM messages WHERE conversation_id = %s", c)), 0);
    r = GET(S("/api/%s/conversations/%s/messages", u.ids, c), u.token);
    DETAIL_CODE(r, 404, "CONVERSATION_NOT_FOUND");
    r = DEL(S("/api/%s/conversations/%s", u.ids, c), u.token);
    DETAIL_CODE(r, 404, "CONVERSATION_NOT_FOUND");
    r = GET(S("/api/%s/conversations", u.ids), u.token);
    j = EXPECT(r, 200);
    JINT(j, "total", 1);
    ck_assert_str_eq(ids_of(json_object_get(j, "conversations")), other);
}
END_TEST

START_TEST(test_conversation_routes_forbid_another_path_user)
{
    user a = new_user("pathuser"), b = new_user("pathuser2");
    const char *c = mk_conversation(&b, "2026-02-01 10:00:00", "2026-02-01 10:00:00");
    mk_message(&b, c, "user", "private", NULL, "2026-02-01 10:00:00");
    R r = GET(S("/api/%s/conversations", b.ids), a.token);
    DETAIL_CODE(r, 403, "FORBIDDEN");
    JSTR(r.json, "detail.message", "You don't have access to this resource");
    r = GET(S("/api/%s/conversations/%s/messages", b.ids, c), a.token);
    DETAIL_CODE(r, 403, "FORBIDDEN");
    r = DEL(S("/api/%s/conversations/%s", b.ids, c), a.token);
    DETAIL_CODE(r, 403, "FORBIDDEN");
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM messages WHERE conversation_id = %s", c)), 1);
}
END_TEST

START_TEST(test_conversation_limits_are_validated)
{
    user u = new_user("convval");
    const char *c = mk_conversation(&u, "2026-02-01 10:00:00", "2026-02-01 10:00:00");
    R r = GET(S("/api/%s/conversations?limit=0", u.ids), u.token);
    INVALID(r, "greater_than_equal", "query", "limit");
    r = GET(S("/api/%s/conversations?limit=101", u.ids), u.token);
    INVALID(r, "less_than_equal", "query", "limit");
    r = GET(S("/api/%s/conversations?limit=100", u.ids), u.token);
    EXPECT(r, 200);
    r = GET(S("/api/%s/conversations?offset=-1", u.ids), u.token);
    INVALID(r, "greater_than_equal", "query", "offset");
    r = GET(S("/api/%s/conversations?limit=ten", u.ids), u.token);
    INVALID(r, "int_parsing", "query", "limit");
    r = GET(S("/api/%s/conversations/%s/messages?limit=201", u.ids, c), u.token);
    INVALID(r, "less_than_equal", "query", "limit");
    r = GET(S("/api/%s/conversations/%s/messages?limit=0", u.ids, c), u.token);
    INVALID(r, "greater_than_equal", "query", "limit");
    r = GET(S("/api/%s/conversations/%s/messages?limit=200", u.ids, c), u.token);
    EXPECT(r, 200);
    r = GET(S("/api/%s/conversations/abc/messages", u.ids), u.token);
    EXPECT(r, 422);
    r = GET(S("/api/%s/conversations/999999999/messages", u.ids), u.token);
    DETAIL_CODE(r, 404, "CONVERSATION_NOT_FOUND");
}
END_TEST

/* ========================================= isolation ======================================== */

START_TEST(test_another_users_task_is_404_everywhere_and_unchanged)
{
    user a = new_user("owner"), b = new_user("intruder");
    int tag = mk_tag(&a, "private");
    int t = mk_task_id(&a, S("{\"title\":\"secret\",\"reminder_at\":\"2020-01-01T00:00:00Z\","
                             "\"is_recurring\":true,\"recurrence_rule\":\"daily\","
                             "\"due_date\":\"2026-01-01\",\"tag_ids\":[%d]}",
                             tag));
    json_t *before = get_task(&a, t);
    R r = GET(S("/api/tasks/%d", t), b.token);
    DETAIL(r, 404, "Task not found");
    r = PUT(S("/api/tasks/%d", t), b.token, "{\"title\":\"hacked\"}");
    DETAIL(r, 404, "Task not found");
    r = PATCH(S("/api/tasks/%d/complete", t), b.token, "{\"completed\":true}");
    DETAIL(r, 404, "Task not found");
    r = PATCH(S("/api/tasks/%d/reminder", t), b.token, "{\"reminder_at\":null}");
    DETAIL(r, 404, "Task not found");
    r = POST(S("/api/tasks/%d/reminder/sent", t), b.token, NULL);
    DETAIL(r, 404, "Task not found");
    r = DEL(S("/api/tasks/%d", t), b.token);
    DETAIL(r, 404, "Task not found");
    ck_assert_str_eq(dump(get_task(&a, t)), dump(before));
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE parent_task_id = %d", t)), 0);
}
END_TEST

START_TEST(test_another_users_tag_is_404_and_cannot_be_attached)
{
    user a = new_user("tagowner"), b = new_user("tagintruder");
    int tag = mk_tag(&a, "private");
    mk_task_id(&a, S("{\"title\":\"a's\",\"tag_ids\":[%d]}", tag));
    R r = GET(S("/api/tags/%d", tag), b.token);
    DETAIL(r, 404, "Tag not found");
    r = PUT(S("/api/tags/%d", tag), b.token, "{\"name\":\"mine now\",\"color\":\"#000000\"}");
    DETAIL(r, 404, "Tag not found");
    r = DEL(S("/api/tags/%d", tag), b.token);
    DETAIL(r, 404, "Tag not found");
    r = GET(S("/api/tags/%d", tag), a.token);
    json_t *j = EXPECT(r, 200);
    JSTR(j, "name", "private");
    JSTR(j, "color", "#6366F1");
    json_t *bt = mk_task(&b, S("{\"title\":\"b's\",\"tag_ids\":[%d]}", tag));
    ck_assert_uint_eq(json_array_size(json_object_get(bt, "tags")), 0);
    r = PUT(S("/api/tasks/%d", JI(bt, "id")), b.token, S("{\"tag_ids\":[%d]}", tag));
    ck_assert_uint_eq(json_array_size(json_object_get(EXPECT(r, 200), "tags")), 0);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM task_tags WHERE tag_id = %d", tag)), 1);
    mk_tag(&b, "private"); /* names are per user */
}
END_TEST

START_TEST(test_another_users_conversation_is_404)
{
    user a = new_user("convowner"), b = new_user("convintruder");
    const char *c = mk_conversation(&a, "2026-02-01 10:00:00", "2026-02-01 10:00:00");
    mk_message(&a, c, "user", "mine", NULL, "2026-02-01 10:00:00");
    R r = GET(S("/api/%s/conversations/%s/messages", b.ids, c), b.token);
    DETAIL_CODE(r, 404, "CONVERSATION_NOT_FOUND");
    r = DEL(S("/api/%s/conversations/%s", b.ids, c), b.token);
    DETAIL_CODE(r, 404, "CONVERSATION_NOT_FOUND");
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM messages WHERE conversation_id = %s", c)), 1);
    r = GET(S("/api/%s/conversations", b.ids), b.token);
    json_t *j = EXPECT(r, 200);
    JINT(j, "total", 0);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "conversations")), 0);
}
END_TEST

START_TEST(test_lists_hold_only_the_callers_objects)
{
    user a = new_user("lista"), b = new_user("listb");
    int tag = mk_tag(&a, "shared-name");
    mk_task_id(&a, S("{\"title\":\"a task\",\"reminder_at\":\"2020-01-01T00:00:00Z\","
                     "\"due_date\":\"2020-01-01\",\"tag_ids\":[%d]}",
                     tag));
    long total = -1;
    ck_assert_str_eq(list_ids(&b, "", &total), "");
    ck_assert_int_eq(total, 0);
    ck_assert_str_eq(list_ids(&b, S("tags=%d", tag), NULL), "");
    ck_assert_str_eq(list_ids(&b, "overdue=true", NULL), "");
    ck_assert_str_eq(list_ids(&b, "search=task", NULL), "");
    ck_assert_str_eq(reminders(&b, "before=2100-01-01T00:00:00Z"), "");
    R r = GET("/api/tags", b.token);
    ck_assert_uint_eq(json_array_size(EXPECT(r, 200)), 0);
    ck_assert_uint_eq(strlen(list_ids(&a, "", &total)) > 0, 1);
    ck_assert_int_eq(total, 1);
}
END_TEST

/* =========================================== edges ========================================== */

START_TEST(test_search_treats_wildcards_and_quotes_literally)
{
    user u = new_user("search");
    int pct = mk_task_id(&u, "{\"title\":\"100% done\"}");
    int und = mk_task_id(&u, "{\"title\":\"under_score\"}");
    int quo = mk_task_id(&u, "{\"title\":\"call O'Brien\",\"description\":\"back\\\\slash\"}");
    mk_task_id(&u, "{\"title\":\"plain\"}");
    LIST_IS(&u, ASC "search=%25", S("%d", pct));
    LIST_IS(&u, ASC "search=_", S("%d", und));
    LIST_IS(&u, ASC "search=%27", S("%d", quo));
    LIST_IS(&u, ASC "search=%5C", S("%d", quo));
    LIST_IS(&u, ASC "search=%27%3B%20DROP%20TABLE%20tasks%3B--", "");
    long total = 0;
    list_ids(&u, "", &total);
    ck_assert_int_eq(total, 4);
}
END_TEST

START_TEST(test_lengths_count_characters_not_bytes)
{
    user u = new_user("utf8");
    json_t *t = mk_task(&u, S("{\"title\":\"%s\"}", rep("é", 255)));
    JSTR(t, "title", rep("é", 255));
    R r = POST("/api/tasks", u.token, S("{\"title\":\"%s\"}", rep("é", 256)));
    INVALID(r, "string_too_long", "body", "title");
    t = mk_task(&u, "{\"title\":\"Caf\\u00e9 \u2615 \u6771\u4eac\",\"description\":\"\u00fcber\"}");
    JSTR(t, "title", "Café ☕ 東京");
    JSTR(get_task(&u, JI(t, "id")), "description", "über");
    LIST_IS(&u, ASC "search=%E2%98%95", S("%d", JI(t, "id")));
    r = POST("/api/tags", u.token, S("{\"name\":\"%s\"}", rep("ü", 50)));
    JSTR(EXPECT(r, 201), "name", rep("ü", 50));
    r = POST("/api/tags", u.token, S("{\"name\":\"%s\"}", rep("ü", 51)));
    INVALID(r, "string_too_long", "body", "name");
}
END_TEST

START_TEST(test_duplicate_tag_ids_attach_once)
{
    user u = new_user("dupids");
    int home = mk_tag(&u, "home"), work = mk_tag(&u, "work");
    json_t *t = mk_task(&u, S("{\"title\":\"x\",\"tag_ids\":[%d,%d]}", home, home));
    ck_assert_str_eq(ids_of(json_object_get(t, "tags")), S("%d", home));
    R r = PUT(S("/api/tasks/%d", JI(t, "id")), u.token,
              S("{\"tag_ids\":[%d,%d,%d]}", work, home, work));
    ck_assert_str_eq(ids_sorted(json_object_get(EXPECT(r, 200), "tags")), S("%d,%d", home, work));
}
END_TEST

/* A request with an id no row can have: a clean 404 (or 422), never a server error. */
#define NOT_FOUND_OR_422(r) not_found_or_422(__LINE__, &(r))
static void not_found_or_422(int line, const R *r)
{
    ck_assert_msg((r->status == 404 || r->status == 422) && json_object_get(r->json, "detail"),
                  "line %d: %s: expected 404 or 422, got %ld: %s", line, r->what, r->status,
                  r->body);
    ck_assert_msg(!strstr(r->body, "ERROR") && !strstr(r->body, "out of range"),
                  "line %d: %s leaks a database error: %s", line, r->what, r->body);
}

START_TEST(test_out_of_range_ids_are_not_server_errors)
{
    user u = new_user("bigids");
    R r = GET("/api/tasks/9999999999", u.token);
    NOT_FOUND_OR_422(r);
    r = GET("/api/tasks/99999999999999999999999", u.token);
    NOT_FOUND_OR_422(r);
    r = GET("/api/tasks/-1", u.token);
    DETAIL(r, 404, "Task not found");
    r = PUT("/api/tasks/9999999999", u.token, "{\"title\":\"x\"}");
    NOT_FOUND_OR_422(r);
    r = PATCH("/api/tasks/9999999999/complete", u.token, "{\"completed\":true}");
    NOT_FOUND_OR_422(r);
    r = DEL("/api/tags/9999999999", u.token);
    NOT_FOUND_OR_422(r);
    r = GET(S("/api/%s/conversations/9999999999/messages", u.ids), u.token);
    NOT_FOUND_OR_422(r);
    r = POST("/api/tasks", u.token, "{\"title\":\"x\",\"tag_ids\":[9999999999]}");
    ck_assert_msg((r.status == 201 && json_array_size(jget(r.json, "tags")) == 0) ||
                      r.status == 422,
                  "POST /api/tasks with tag_ids [9999999999]: %ld %s", r.status, r.body);
    r = GET("/api/tasks?tags=9999999999", u.token);
    ck_assert_msg((r.status == 200 && json_array_size(r.json) == 0) || r.status == 422,
                  "GET /api/tasks?tags=9999999999: %ld %s", r.status, r.body);
}
END_TEST

START_TEST(test_extra_fields_are_ignored_and_cannot_set_owner_or_id)
{
    user u = new_user("extra"), v = new_user("extra2");
    json_t *t = mk_task(&u, S("{\"title\":\"x\",\"bogus\":1,\"id\":987654,\"user_id\":\"%s\","
                              "\"parent_task_id\":null,\"reminder_sent\":true}",
                              v.ids));
    ck_assert_int_ne(JI(t, "id"), 987654);
    JSTR(t, "user_id", u.ids);
    R r = PUT(S("/api/tasks/%d", JI(t, "id")), u.token,
              S("{\"user_id\":\"%s\",\"id\":1,\"title\":\"y\"}", v.ids));
    json_t *j = EXPECT(r, 200);
    JSTR(j, "user_id", u.ids);
    JINT(j, "id", JI(t, "id"));
    ck_assert_str_eq(list_ids(&v, "", NULL), "");
    r = POST("/api/tags", u.token, S("{\"name\":\"t\",\"user_id\":\"%s\"}", v.ids));
    JSTR(EXPECT(r, 201), "user_id", u.ids);
    r = POST("/api/tasks", u.token, "[{\"title\":\"in an array\"}]");
    EXPECT(r, 422);
    r = POST("/api/tasks", u.token, "\"just a string\"");
    EXPECT(r, 422);
}
END_TEST

START_TEST(test_default_limits_of_conversations_and_messages)
{
    user u = new_user("convlimits");
    th_pg_exec(dburl, S("INSERT INTO conversations (user_id, created_at, updated_at)"
                        " SELECT '%s', t, t FROM generate_series(timestamp '2026-01-01',"
                        " timestamp '2026-01-01' + interval '20 minutes', interval '1 minute') t",
                        u.ids));
    R r = GET(S("/api/%s/conversations", u.ids), u.token);
    json_t *j = EXPECT(r, 200);
    JINT(j, "total", 21);
    JINT(j, "limit", 20);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "conversations")), 20);
    JSTR(j, "conversations.0.updated_at", "2026-01-01T00:20:00.000000+00:00");

    const char *c = mk_conversation(&u, "2026-03-01 00:00:00", "2026-03-01 01:00:00");
    th_pg_exec(dburl, S("INSERT INTO messages (conversation_id, user_id, role, content, created_at)"
                        " SELECT %s, '%s', 'user', 'm' || i, timestamp '2026-03-01' + i *"
                        " interval '1 second' FROM generate_series(1, 51) i",
                        c, u.ids));
    r = GET(S("/api/%s/conversations/%s/messages", u.ids, c), u.token);
    j = EXPECT(r, 200);
    json_t *msgs = json_object_get(j, "messages");
    ck_assert_uint_eq(json_array_size(msgs), 50);
    JSTR(msgs, "0.content", "m2");
    JSTR(msgs, "49.content", "m51");
    JBOOL(j, "has_more", 1);

    /* the preview cuts characters, not bytes, and only what is longer than 100 */
    const char *c2 = mk_conversation(&u, "2026-04-01 00:00:00", "2026-04-01 00:00:00");
    mk_message(&u, c2, "user", rep("é", 150), NULL, "2026-04-01 00:00:00");
    const char *c3 = mk_conversation(&u, "2026-04-02 00:00:00", "2026-04-02 00:00:00");
    mk_message(&u, c3, "user", rep("x", 100), NULL, "2026-04-02 00:00:00");
    r = GET(S("/api/%s/conversations?limit=2", u.ids), u.token);
    j = EXPECT(r, 200);
    ck_assert_str_eq(ids_of(json_object_get(j, "conversations")), S("%s,%s", c3, c2));
    JSTR(j, "conversations.0.last_message", rep("x", 100));
    JSTR(j, "conversations.1.last_message", S("%s...", rep("é", 100)));
}
END_TEST

/* ---- the same request many times at once ---- */

typedef struct shot {
    const char *method, *url, *body;
    const char *hdr[3];
    pthread_barrier_t *go;
    long status;
} shot;

START_TEST(test_priority_filter_with_repeated_names_is_a_set)
{
    user u = new_user("prioset");
    int hi = mk_task_id(&u, "{\"title\":\"h\",\"priority\":\"high\"}");
    mk_task_id(&u, "{\"title\":\"l\",\"priority\":\"low\"}");
    const char *q = S("priority=%surgent,high", rep("urgent,", 40));
    list_is(__LINE__, &u, q, S("%d", hi));
    R r = GET("/health", NULL);
    EXPECT(r, 200);
}
END_TEST

START_TEST(test_reopen_and_complete_again_creates_no_second_instance)
{
    user u = new_user("reopen");
    int id = mk_task_id(&u, "{\"title\":\"water plants\",\"is_recurring\":true,"
                            "\"recurrence_rule\":\"weekly\",\"due_date\":\"2026-07-01\"}");
    complete(&u, id, 1);
    complete(&u, id, 0);
    R r = PATCH(S("/api/tasks/%d/complete", id), u.token, "{\"completed\":true}");
    EXPECT(r, 200);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE parent_task_id = %d", id)), 1);
}
END_TEST

START_TEST(test_renaming_a_missing_or_foreign_tag_is_404)
{
    user a = new_user("tagren"), b = new_user("tagren2");
    mk_tag(&a, "Home");
    int foreign = mk_tag(&b, "Office");
    R r = PUT("/api/tags/999999", a.token, "{\"name\":\"Home\"}");
    DETAIL(r, 404, "Tag not found");
    r = PUT(S("/api/tags/%d", foreign), a.token, "{\"name\":\"Home\"}");
    DETAIL(r, 404, "Tag not found");
}
END_TEST

START_TEST(test_token_of_a_deleted_account_creates_nothing)
{
    user u = new_user("ghost");
    R r = DEL("/api/auth/delete-account", u.token);
    EXPECT(r, 200);
    r = POST("/api/tasks", u.token, "{\"title\":\"after\"}");
    DETAIL(r, 401, "Could not validate credentials");
    ck_assert_ptr_nonnull(header(&r, "www-authenticate"));
    r = POST("/api/tags", u.token, "{\"name\":\"after\"}");
    DETAIL(r, 401, "Could not validate credentials");
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE user_id = '%s'", u.ids)), 0);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tags WHERE user_id = '%s'", u.ids)), 0);
}
END_TEST

static void *fire(void *arg)
{
    shot *s = arg;
    th_response r;
    pthread_barrier_wait(s->go);
    int rc = th_http(s->method, s->url, s->body, s->body ? strlen(s->body) : 0, s->hdr, &r);
    s->status = rc == 0 ? r.status : -1;
    th_response_free(&r);
    return NULL;
}

#define VOLLEY 8
/* Sends VOLLEY copies of one request at the same moment; returns how many got each status. */
static void volley(const char *method, const char *path, const char *token, const char *body,
                   long st[VOLLEY])
{
    shot s[VOLLEY];
    pthread_t t[VOLLEY];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, VOLLEY);
    for (int i = 0; i < VOLLEY; i++) {
        memset(&s[i], 0, sizeof(s[i]));
        s[i].method = method;
        s[i].url = S("%s%s", base_url, path);
        s[i].body = body;
        s[i].hdr[0] = "Content-Type: application/json";
        s[i].hdr[1] = token ? S("Authorization: Bearer %s", token) : NULL;
        s[i].go = &go;
    }
    for (int i = 0; i < VOLLEY; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, fire, &s[i]), 0);
    for (int i = 0; i < VOLLEY; i++) {
        pthread_join(t[i], NULL);
        st[i] = s[i].status;
    }
    pthread_barrier_destroy(&go);
}

static int count_status(const long st[VOLLEY], long want)
{
    int n = 0;
    for (int i = 0; i < VOLLEY; i++)
        n += st[i] == want;
    return n;
}

static const char *statuses(const long st[VOLLEY])
{
    char *out = S("%s", "");
    for (int i = 0; i < VOLLEY; i++)
        out = S("%s %ld", out, st[i]);
    return out;
}

START_TEST(test_concurrent_completions_create_one_next_instance)
{
    user u = new_user("race");
    int id = mk_task_id(&u, "{\"title\":\"race\",\"is_recurring\":true,\"recurrence_rule\":"
                            "\"daily\",\"due_date\":\"2026-09-01T08:00:00Z\"}");
    long st[VOLLEY];
    volley("PATCH", S("/api/tasks/%d/complete", id), u.token, "{\"completed\":true}", st);
    ck_assert_msg(count_status(st, 200) == VOLLEY, "statuses:%s", statuses(st));
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE parent_task_id = %d", id)), 1);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM taskora_outbox WHERE key = '%s'"
                               " AND value::jsonb->>'type' = 'task.recurred'",
                               u.ids)),
                     1);
}
END_TEST

START_TEST(test_concurrent_registrations_create_one_user)
{
    const char *email = unique_email("racereg");
    long st[VOLLEY];
    volley("POST", "/api/auth/register", NULL,
           S("{\"email\":\"%s\",\"name\":\"R\",\"password\":\"racepass1\"}", email), st);
    ck_assert_msg(count_status(st, 201) == 1 && count_status(st, 409) == VOLLEY - 1,
                  "register statuses:%s", statuses(st));
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM users WHERE email = '%s'", email)), 1);
}
END_TEST

START_TEST(test_concurrent_tag_creates_with_one_name_create_one_tag)
{
    user u = new_user("racetag");
    static const char *names[] = {"Same", "Other", "Third"};
    for (int round = 0; round < 3; round++) {
        long st[VOLLEY];
        volley("POST", "/api/tags", u.token, S("{\"name\":\"%s\"}", names[round]), st);
        ck_assert_msg(count_status(st, 201) == 1 && count_status(st, 400) == VOLLEY - 1,
                      "POST /api/tags {\"name\":\"%s\"} x%d at once: statuses:%s", names[round],
                      VOLLEY, statuses(st));
    }
    R r = GET("/api/tags", u.token);
    ck_assert_uint_eq(json_array_size(EXPECT(r, 200)), 3);
}
END_TEST

/* =========================================== events ========================================= */

static const char *find_kcat(void)
{
    const char *path = getenv("PATH");
    char *copy = S("%s", path ? path : "/usr/bin:/bin"), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        const char *p = S("%s/kcat", d);
        if (access(p, X_OK) == 0)
            return p;
    }
    return NULL;
}

/* Reads task-events with kcat until a message whose CloudEvent subject is `subject` shows up. */
static json_t *kafka_message_for(const char *type, const char *subject, int timeout_s)
{
    const char *kcat = find_kcat();
    ck_assert_msg(kcat != NULL, "kcat is not installed (scripts/deps.sh installs it)");
    time_t end = time(NULL) + timeout_s;
    const char *last = "";
    do {
        char *argv[] = {(char *)kcat, "-C",          "-b", (char *)bootstrap,
                        "-t",         "task-events", "-o", "beginning",
                        "-e",         "-J",          "-q", NULL};
        char *out = NULL, *err = NULL;
        int rc = th_run(argv, &out, &err, 20000);
        keep(out);
        keep(err);
        last = S("rc %d: %s %s", rc, out ? out : "", err ? err : "");
        char *save = NULL;
        for (char *line = out ? strtok_r(out, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save)) {
            json_t *m = keep(json_loads(line, 0, NULL));
            const char *payload = json_string_value(json_object_get(m, "payload"));
            json_t *ce = payload ? keep(json_loads(payload, 0, NULL)) : NULL;
            const char *s = json_string_value(json_object_get(ce, "subject"));
            const char *t = json_string_value(json_object_get(ce, "type"));
            if (s && t && strcmp(s, subject) == 0 && strcmp(t, type) == 0)
                return m;
        }
        usleep(200000);
    } while (time(NULL) < end);
    ck_abort_msg("no %s event for subject %s on task-events within %d s (last kcat %s)", type,
                 subject, timeout_s, last);
    return NULL;
}

/* A Kafka header of a kcat -J message: ["name","value",...] or {"name":"value"}. */
static const char *kafka_header(json_t *m, const char *name)
{
    json_t *h = json_object_get(m, "headers");
    if (json_is_object(h))
        return json_string_value(json_object_get(h, name));
    for (size_t i = 0; json_is_array(h) && i + 1 < json_array_size(h); i += 2)
        if (json_is_string(json_array_get(h, i)) &&
            strcmp(json_string_value(json_array_get(h, i)), name) == 0)
            return json_string_value(json_array_get(h, i + 1));
    return NULL;
}

START_TEST(test_task_created_reaches_kafka_as_a_cloudevent)
{
    user u = new_user("kafka");
    int home = mk_tag(&u, "home");
    int id = mk_task_id(&u, S("{\"title\":\"Buy milk\",\"priority\":\"high\","
                              "\"due_date\":\"2026-03-01T10:00:00Z\",\"tag_ids\":[%d]}",
                              home));
    const char *sid = S("%d", id);
    /* the event was written with the change */
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM taskora_outbox WHERE topic = 'task-events'"
                               " AND key = '%s' AND value::jsonb->>'type' = 'task.created'"
                               " AND value::jsonb->>'subject' = '%s'",
                               u.ids, sid)),
                     1);
    json_t *m = kafka_message_for("task.created", sid, 60);
    ck_assert_msg(json_is_string(json_object_get(m, "key")), "%s", dump(m));
    JSTR(m, "key", u.ids);
    json_t *ce = keep(json_loads(JS(m, "payload"), 0, NULL));
    JSTR(ce, "specversion", "1.0");
    JSTR(ce, "type", "task.created");
    JSTR(ce, "source", APP_ID);
    JSTR(ce, "subject", sid);
    JSTR(ce, "datacontenttype", "application/json");
    JTS(ce, "time");
    const char *eid = JS(ce, "id");
    ck_assert_uint_eq(strlen(eid), 36);
    JSTR(ce, "data.event_id", eid);
    JSTR(ce, "data.event_type", "task.created");
    JSTR(ce, "data.user_id", u.ids);
    JTS(ce, "data.timestamp");
    json_t *p = jget(ce, "data.payload");
    JINT(p, "task_id", id);
    JSTR(p, "title", "Buy milk");
    JSTR(p, "priority", "high");
    JSTR(p, "due_date", "2026-03-01T10:00:00.000000+00:00");
    JBOOL(p, "is_recurring", 0);
    JNULL(p, "recurrence_rule");
    ck_assert_str_eq(dump(json_object_get(p, "tags")), "[\"home\"]");
    const char *ce_type = kafka_header(m, "ce_type"), *ce_id = kafka_header(m, "ce_id");
    ck_assert_msg(ce_type && strcmp(ce_type, "task.created") == 0, "headers: %s",
                  dump(json_object_get(m, "headers")));
    ck_assert_msg(ce_id && strcmp(ce_id, eid) == 0, "headers: %s",
                  dump(json_object_get(m, "headers")));
}
END_TEST

START_TEST(test_every_task_change_writes_its_outbox_event)
{
    user u = new_user("outbox");
    int id = mk_task_id(&u, "{\"title\":\"draft\",\"priority\":\"medium\"}");
    R r = PUT(S("/api/tasks/%d", id), u.token, "{\"title\":\"final\",\"priority\":\"low\"}");
    EXPECT(r, 200);
    json_t *ev = outbox_event("task-events", "task.updated", u.ids);
    JSTR(ev, "subject", S("%d", id));
    JINT(ev, "data.payload.task_id", id);
    const char *changes = dump(jget(ev, "data.payload.changes"));
    ck_assert_msg(strstr(changes, "\"title\"") && strstr(changes, "\"priority\""), "changes %s",
                  changes);
    JSTR(ev, "data.payload.title", "final");

    complete(&u, id, 1);
    ev = outbox_event("task-events", "task.completed", u.ids);
    JINT(ev, "data.payload.task_id", id);
    JBOOL(ev, "data.payload.completed", 1);
    JSTR(ev, "data.payload.status_change", "completed");
    complete(&u, id, 0);
    ev = outbox_event("task-events", "task.completed", u.ids);
    JBOOL(ev, "data.payload.completed", 0);
    JSTR(ev, "data.payload.status_change", "reopened");

    int rec =
        mk_task_id(&u, "{\"title\":\"weekly\",\"is_recurring\":true,"
                       "\"recurrence_rule\":\"weekly\",\"due_date\":\"2026-08-03T10:00:00Z\"}");
    json_t *j = complete(&u, rec, 1);
    int next = JI(j, "next_task.id");
    ev = outbox_event("task-events", "task.recurred", u.ids);
    JINT(ev, "data.payload.original_task_id", rec);
    JINT(ev, "data.payload.new_task_id", next);
    JSTR(ev, "data.payload.next_due_date", "2026-08-10T10:00:00.000000+00:00");

    r = DEL(S("/api/tasks/%d", id), u.token);
    EXPECT(r, 200);
    ev = outbox_event("task-events", "task.deleted", u.ids);
    JINT(ev, "data.payload.task_id", id);
    JSTR(ev, "subject", S("%d", id));

    /* requests that change nothing write nothing */
    long before = dbcount(S("SELECT count(*) FROM taskora_outbox WHERE key = '%s'", u.ids));
    r = PUT(S("/api/tasks/%d", id), u.token, "{\"title\":\"gone\"}");
    EXPECT(r, 404);
    r = POST("/api/tasks", u.token, "{\"title\":\"\"}");
    EXPECT(r, 422);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM taskora_outbox WHERE key = '%s'", u.ids)),
                     before);
}
END_TEST

/* ============================================ limits ========================================= */

START_TEST(test_description_above_the_limit_is_422)
{
    user u = new_user("desclimit");
    /* characters, not bytes: 10000 of a two-byte character fit */
    json_t *t = mk_task(
        &u, S("{\"title\":\"long\",\"description\":\"%s\"}", rep("\xc3\xa9", MAX_DESCRIPTION)));
    ck_assert_int_eq(strlen(JS(t, "description")), 2 * MAX_DESCRIPTION);
    R r = POST("/api/tasks", u.token,
               S("{\"title\":\"long\",\"description\":\"%s\"}", rep("x", MAX_DESCRIPTION + 1)));
    INVALID(r, "string_too_long", "body", "description");
    ck_assert_msg(strstr(r.body, "at most 10000 characters"), "%s", r.body);
    r = PUT(S("/api/tasks/%d", JI(t, "id")), u.token,
            S("{\"description\":\"%s\"}", rep("y", MAX_DESCRIPTION + 1)));
    INVALID(r, "string_too_long", "body", "description");
    ck_assert_str_eq(JS(get_task(&u, JI(t, "id")), "description"), JS(t, "description"));
    /* the tags of a task are bounded too: with the description, they bound a page's size */
    char *ids = S("%d", mk_tag(&u, "one"));
    for (int i = 0; i < 100; i++)
        ids = S("%s,%d", ids, 1000000 + i);
    r = POST("/api/tasks", u.token, S("{\"title\":\"tags\",\"tag_ids\":[%s]}", ids));
    INVALID(r, "too_long", "body", "tag_ids");
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE user_id = '%s'", u.ids)), 1);
}
END_TEST

static long vm_rss_kb(pid_t pid)
{
    char *text = th_read(th_fmt("/proc/%d/status", (int)pid));
    const char *p = strstr(text, "VmRSS:");
    long kb = p ? atol(p + 6) : -1;
    free(text);
    return kb;
}

typedef struct sampler {
    pid_t pid;
    volatile int stop;
    long max_kb;
} sampler;

static void *sample_rss(void *arg)
{
    sampler *s = arg;
    while (!s->stop) {
        long kb = vm_rss_kb(s->pid);
        if (kb > s->max_kb)
            s->max_kb = kb;
        usleep(2000);
    }
    return NULL;
}

typedef struct lister {
    const char *url, *hdr[2];
    pthread_barrier_t *go;
    long status;
    size_t rows, bytes;
} lister;

static void *list_all(void *arg)
{
    lister *l = arg;
    th_response r;
    pthread_barrier_wait(l->go);
    l->status = th_http("GET", l->url, NULL, 0, l->hdr, &r) == 0 ? r.status : -1;
    json_t *j = l->status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    l->rows = json_array_size(j);
    l->bytes = r.body ? strlen(r.body) : 0;
    json_decref(j);
    th_response_free(&r);
    return NULL;
}

START_TEST(test_full_pages_of_the_longest_tasks_keep_memory_bounded)
{
    enum { TASKS = 100, LISTS = 5 };
    user u = new_user("memory");
    /* the longest description there may be, in characters that JSON escapes (6 bytes each) */
    const char *desc = rep("\\u0001", MAX_DESCRIPTION);
    for (int i = 0; i < TASKS; i++)
        mk_task(&u, S("{\"title\":\"%s%d\",\"description\":\"%s\"}", rep("\\u0002", 250), i, desc));
    long before = vm_rss_kb(daemon_.pid);
    ck_assert_int_gt(before, 0);
    sampler s = {.pid = daemon_.pid, .max_kb = before};
    pthread_t st, t[LISTS];
    lister l[LISTS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, LISTS);
    ck_assert_int_eq(pthread_create(&st, NULL, sample_rss, &s), 0);
    for (int i = 0; i < LISTS; i++) {
        memset(&l[i], 0, sizeof(l[i]));
        l[i].url = S("%s/api/tasks?limit=1000", base_url);
        l[i].hdr[0] = S("Authorization: Bearer %s", u.token);
        l[i].go = &go;
        ck_assert_int_eq(pthread_create(&t[i], NULL, list_all, &l[i]), 0);
    }
    for (int i = 0; i < LISTS; i++)
        pthread_join(t[i], NULL);
    s.stop = 1;
    pthread_join(st, NULL);
    pthread_barrier_destroy(&go);
    long after = vm_rss_kb(daemon_.pid);
    for (int i = 0; i < LISTS; i++) {
        ck_assert_int_eq(l[i].status, 200);
        ck_assert_int_eq(l[i].rows, TASKS);
    }
    fprintf(stderr,
            "check_api: %d parallel lists of %d tasks (%zu bytes each): taskorad RSS %ld kB "
            "before, peak %+ld kB, after %+ld kB\n",
            LISTS, TASKS, l[0].bytes, before, s.max_kb - before, after - before);
    const char *san = getenv("TK_SANITIZERS");
    if (san && strcmp(san, "yes") == 0)
        return; /* AddressSanitizer's redzones and quarantine measure itself, not the API */
    ck_assert_msg(s.max_kb - before < 64 * 1024,
                  "RSS grew by %ld kB (from %ld kB) while %d full lists were answered",
                  s.max_kb - before, before, LISTS);
}
END_TEST

/* =========================================== bad input ======================================== */

/* A 4xx with a detail, never a server error. */
#define CLIENT_ERROR(r, st) client_error(__LINE__, &(r), (st))
static void client_error(int line, const R *r, long st)
{
    ck_assert_msg(r->status == st && json_object_get(r->json, "detail"),
                  "line %d: %s: expected %ld with a detail, got %ld: %s", line, r->what, st,
                  r->status, r->body);
}

START_TEST(test_ids_no_row_can_have_are_404_or_422_everywhere)
{
    user u = new_user("ids");
    /* past PostgreSQL's integer: 422 as any path id that is not an int; in range: 404 */
    static const char *const big[] = {"1099511627776", "99999999999999999999", "-1099511627776"};
    static const char *const none[] = {"0", "-1", "2147483647", "-2147483648"};
    for (int k = 0; k < 2; k++) {
        const char *const *set = k ? none : big;
        size_t n = k ? 4 : 3;
        long st = k ? 404 : 422;
        for (size_t i = 0; i < n; i++) {
            const char *id = set[i];
            R r = GET(S("/api/tasks/%s", id), u.token);
            CLIENT_ERROR(r, st);
            r = PUT(S("/api/tasks/%s", id), u.token, "{\"title\":\"x\"}");
            CLIENT_ERROR(r, st);
            r = DEL(S("/api/tasks/%s", id), u.token);
            CLIENT_ERROR(r, st);
            r = PATCH(S("/api/tasks/%s/complete", id), u.token, "{\"completed\":true}");
            CLIENT_ERROR(r, st);
            r = PATCH(S("/api/tasks/%s/reminder", id), u.token, "{\"reminder_at\":null}");
            CLIENT_ERROR(r, st);
            r = POST(S("/api/tasks/%s/reminder/sent", id), u.token, NULL);
            CLIENT_ERROR(r, st);
            r = GET(S("/api/tags/%s", id), u.token);
            CLIENT_ERROR(r, st);
            r = PUT(S("/api/tags/%s", id), u.token, "{\"name\":\"x\"}");
            CLIENT_ERROR(r, st);
            r = DEL(S("/api/tags/%s", id), u.token);
            CLIENT_ERROR(r, st);
            r = GET(S("/api/%s/conversations/%s/messages", u.ids, id), u.token);
            CLIENT_ERROR(r, st);
            r = DEL(S("/api/%s/conversations/%s", u.ids, id), u.token);
            CLIENT_ERROR(r, st);
        }
    }
    /* the chat's conversation_id: the same rule in a body */
    R r = POST(S("/api/%s/chat", u.ids), u.token,
               "{\"conversation_id\":1099511627776,\"message\":\"hi\"}");
    INVALID(r, "int_type", "body", "conversation_id");
    r = POST(S("/api/%s/chat", u.ids), u.token,
             "{\"conversation_id\":99999999999999999999,\"message\":\"hi\"}");
    INVALID(r, "json_invalid", "body", NULL);
    r = POST(S("/api/%s/chat", u.ids), u.token, "{\"conversation_id\":-1,\"message\":\"hi\"}");
    DETAIL_CODE(r, 404, "CONVERSATION_NOT_FOUND");
    r = POST(S("/api/%s/chat", u.ids), u.token, "{\"conversation_id\":0,\"message\":\"hi\"}");
    DETAIL_CODE(r, 404, "CONVERSATION_NOT_FOUND");
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM messages WHERE user_id = '%s'", u.ids)), 0);
}
END_TEST

START_TEST(test_query_values_that_are_not_text_are_422)
{
    user u = new_user("qbytes");
    mk_task(&u, "{\"title\":\"a\"}");
    static const char *const task_args[] = {"search",   "status", "sort_by",    "order",
                                            "priority", "tags",   "due_before", "due_after",
                                            "overdue",  "limit",  "offset"};
    for (size_t i = 0; i < sizeof(task_args) / sizeof(task_args[0]); i++) {
        R r = GET(S("/api/tasks?%s=%%ff%%fe", task_args[i]), u.token);
        INVALID(r, "string_unicode", "query", task_args[i]);
        r = GET(S("/api/tasks?%s=a%%00b", task_args[i]), u.token);
        INVALID(r, "string_type", "query", task_args[i]);
    }
    /* an overlong form, a surrogate, a code point past U+10FFFF, a cut sequence */
    static const char *const bad[] = {"%c0%af", "%ed%a0%80", "%f4%90%80%80", "x%e2%82"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        R r = GET(S("/api/tasks?search=%s", bad[i]), u.token);
        INVALID(r, "string_unicode", "query", "search");
    }
    R r = GET("/api/tasks?search=%e2%82%ac%f0%9f%98%80", u.token); /* the euro sign, an emoji */
    EXPECT(r, 200);
    r = GET("/api/tasks/reminders?before=%ff", u.token);
    INVALID(r, "string_unicode", "query", "before");
    r = GET("/api/tasks/reminders?before=2026-01-01%00", u.token);
    INVALID(r, "string_type", "query", "before");
    r = GET(S("/api/%s/conversations?limit=%%ff", u.ids), u.token);
    INVALID(r, "string_unicode", "query", "limit");
    r = GET(S("/api/%s/conversations?offset=0%%00", u.ids), u.token);
    INVALID(r, "string_type", "query", "offset");
}
END_TEST

START_TEST(test_bodies_that_are_not_utf8_text_are_json_invalid)
{
    user u = new_user("bbytes");
    static const char *const bad[] = {
        "{\"title\":\"a\xff\"}",         "{\"title\":\"a\xc0\xaf\"}",
        "{\"title\":\"a\\u0000b\"}",     "{\"title\":\"a\\ud800b\"}",
        "{\"title\":\"a\xed\xa0\x80\"}", "{\"title\":\"x\",\"description\":\"\xf4\x90\x80\x80\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        R r = POST("/api/tasks", u.token, bad[i]);
        INVALID(r, "json_invalid", "body", NULL);
    }
    R r = POST("/api/tags", u.token, "{\"name\":\"\\udfff\"}");
    INVALID(r, "json_invalid", "body", NULL);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE user_id = '%s'", u.ids)), 0);
}
END_TEST

START_TEST(test_dates_outside_years_1_to_9999_are_422_everywhere)
{
    user u = new_user("years");
    int id = mk_task_id(&u, "{\"title\":\"d\"}");
    static const char *const bad[] = {"0000-12-31",
                                      "10000-01-01",
                                      "0000-01-01T00:00:00Z",
                                      "9999-12-31T23:00:00-05:00",
                                      "0001-01-01T00:30:00+01:00",
                                      "-0001-01-01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *d = bad[i];
        R r = POST("/api/tasks", u.token, S("{\"title\":\"x\",\"due_date\":\"%s\"}", d));
        INVALID(r, "datetime_parsing", "body", "due_date");
        r = POST("/api/tasks", u.token, S("{\"title\":\"x\",\"reminder_at\":\"%s\"}", d));
        INVALID(r, "datetime_parsing", "body", "reminder_at");
        r = PUT(S("/api/tasks/%d", id), u.token, S("{\"due_date\":\"%s\"}", d));
        INVALID(r, "datetime_parsing", "body", "due_date");
        r = PATCH(S("/api/tasks/%d/reminder", id), u.token, S("{\"reminder_at\":\"%s\"}", d));
        INVALID(r, "datetime_parsing", "body", "reminder_at");
        const char *plus = strchr(d, '+'); /* a space in a query: spelled %2B */
        const char *q = plus ? S("%.*s%%2B%s", (int)(plus - d), d, plus + 1) : d;
        r = GET(S("/api/tasks?due_before=%s", q), u.token);
        INVALID(r, "datetime_parsing", "query", "due_before");
        r = GET(S("/api/tasks?due_after=%s", q), u.token);
        INVALID(r, "datetime_parsing", "query", "due_after");
        r = GET(S("/api/tasks/reminders?before=%s", q), u.token);
        INVALID(r, "datetime_parsing", "query", "before");
    }
    /* the edges themselves are dates */
    json_t *t = mk_task(&u, "{\"title\":\"last\",\"due_date\":\"9999-12-31T23:59:59.999999Z\","
                            "\"reminder_at\":\"0001-01-01T00:00:00Z\"}");
    JSTR(t, "due_date", "9999-12-31T23:59:59.999999+00:00");
    JSTR(t, "reminder_at", "0001-01-01T00:00:00.000000+00:00");
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE user_id = '%s'", u.ids)), 2);
}
END_TEST

START_TEST(test_recurrence_past_year_9999_ends_and_the_completion_stands)
{
    user u = new_user("y10k");
    struct {
        const char *rule, *interval, *due, *next; /* next NULL: the recurrence ends */
    } cases[] = {
        {"custom", "36500", "9999-12-01T00:00:00Z", NULL},
        {"daily", "null", "9999-12-31T12:00:00Z", NULL},
        {"weekly", "null", "9999-12-25T00:00:00Z", NULL},
        {"monthly", "null", "9999-12-01T00:00:00Z", NULL},
        {"daily", "null", "9999-12-30T23:59:59Z", "9999-12-31T23:59:59.000000+00:00"},
        {"monthly", "null", "9999-11-30T08:00:00Z", "9999-12-30T08:00:00.000000+00:00"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int id = mk_task_id(&u, S("{\"title\":\"r%zu\",\"is_recurring\":true,"
                                  "\"recurrence_rule\":\"%s\",\"recurrence_interval\":%s,"
                                  "\"due_date\":\"%s\"}",
                                  i, cases[i].rule, cases[i].interval, cases[i].due));
        json_t *j = complete(&u, id, 1);
        JINT(j, "completed_task.id", id);
        JBOOL(j, "completed_task.completed", 1);
        if (cases[i].next)
            JSTR(j, "next_task.due_date", cases[i].next);
        else
            JNULL(j, "next_task");
        JBOOL(get_task(&u, id), "completed", 1);
    }
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM tasks WHERE user_id = '%s'"
                               " AND due_date >= '10000-01-01'",
                               u.ids)),
                     0);
    ck_assert_int_eq(dbcount(S("SELECT count(*) FROM taskora_outbox WHERE key = '%s'"
                               " AND value::jsonb->>'type' = 'task.recurred'",
                               u.ids)),
                     2);
    /* the list renders every task, and they are all dates of the contract */
    R r = GET("/api/tasks?limit=1000", u.token);
    json_t *list = EXPECT(r, 200);
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t) JTS(t, "due_date");
}
END_TEST

START_TEST(test_boolean_query_words_are_the_same_everywhere)
{
    user u = new_user("bools");
    int late = mk_task_id(&u, "{\"title\":\"late\",\"due_date\":\"2001-01-01T00:00:00Z\"}");
    int soon = mk_task_id(&u, "{\"title\":\"soon\",\"due_date\":\"9000-01-01T00:00:00Z\"}");
    static const char *const yes[] = {"true", "True", "TRUE", "1", "yes", "YES",
                                      "on",   "On",   "t",    "T", "y",   "Y"};
    static const char *const no[] = {"false", "False", "0", "no", "NO", "off",
                                     "OFF",   "f",     "F", "n",  "N"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        LIST_IS(&u, S("overdue=%s", yes[i]), S("%d", late));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        LIST_IS(&u, S("overdue=%s", no[i]), S("%d,%d", soon, late));
    static const char *const neither[] = {"", "2", "truth", "nope", "tru", "yess", "%ff"};
    for (size_t i = 0; i < sizeof(neither) / sizeof(neither[0]); i++) {
        R r = GET(S("/api/tasks?overdue=%s", neither[i]), u.token);
        EXPECT(r, 422);
        ck_assert_msg(strstr(r.body, "\"overdue\""), "%s", r.body);
    }
}
END_TEST

/* ============================================ database ======================================= */

typedef struct writer {
    int n;
    const char *token;
    volatile int *stop;
    long statuses[600];
    int ids[600];
    int bad_503;       /* 503s without Retry-After or a detail */
    const char *other; /* the first status other than 2xx/503, with its body */
} writer;

static void *write_tasks(void *arg)
{
    writer *w = arg;
    char hdr_auth[1024];
    snprintf(hdr_auth, sizeof(hdr_auth), "Authorization: Bearer %s", w->token);
    const char *hdr[] = {"Content-Type: application/json", hdr_auth, NULL};
    for (int i = 0; i < 600 && !*w->stop; i++) {
        char url[256], body[128];
        th_response r;
        int create = i % 3 != 2;
        if (create) {
            snprintf(url, sizeof(url), "%s/api/tasks", base_url);
            snprintf(body, sizeof(body), "{\"title\":\"w%d-%d\"}", w->n, i);
        } else {
            snprintf(url, sizeof(url), "%s/api/tasks?limit=5&search=w%d-", base_url, w->n);
        }
        int rc = th_http(create ? "POST" : "GET", url, create ? body : NULL,
                         create ? strlen(body) : 0, hdr, &r);
        w->statuses[i] = rc == 0 ? r.status : -1;
        w->ids[i] = -1;
        if (rc == 0 && r.status == 201) {
            json_t *j = json_loads(r.body, 0, NULL);
            w->ids[i] = (int)json_integer_value(json_object_get(j, "id"));
            json_decref(j);
        } else if (rc == 0 && r.status == 503) {
            char *ra = th_header(&r, "retry-after");
            json_t *j = json_loads(r.body, 0, NULL);
            if (!ra || !json_is_string(json_object_get(j, "detail")))
                w->bad_503++;
            free(ra);
            json_decref(j);
        } else if (!(rc == 0 && r.status == 200) && !w->other) {
            char *o = NULL;
            if (asprintf(&o, "%s %s: %ld %s", create ? "POST" : "GET", url, rc ? -1L : r.status,
                         rc == 0 && r.body ? r.body : "") < 0)
                o = NULL;
            w->other = o;
        }
        if (rc == 0)
            th_response_free(&r);
    }
    return NULL;
}

START_TEST(test_connections_terminated_mid_request_are_503_and_lose_nothing)
{
    enum { WRITERS = 8 };
    user u = new_user("pgkill");
    static writer w[WRITERS];
    pthread_t t[WRITERS];
    volatile int stop = 0;
    for (int i = 0; i < WRITERS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].n = i;
        w[i].token = u.token;
        w[i].stop = &stop;
        ck_assert_int_eq(pthread_create(&t[i], NULL, write_tasks, &w[i]), 0);
    }
    /* every connection of the API's database, again and again, for four seconds */
    long killed = 0;
    double end = th_now_s() + 4;
    const char *kill_sql = S("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS done"
                             " FROM pg_stat_activity WHERE datname = '%s'"
                             " AND pid <> pg_backend_pid()) k WHERE done",
                             dbname);
    while (th_now_s() < end) {
        killed += th_pg_count(th_pg_admin_url(), kill_sql);
        usleep(15000);
    }
    stop = 1;
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    long ok = 0, unavailable = 0, lost = 0;
    for (int i = 0; i < WRITERS; i++) {
        ck_assert_msg(!w[i].other, "writer %d: %s", i, w[i].other);
        ck_assert_msg(w[i].bad_503 == 0, "writer %d: 503 without Retry-After or detail", i);
        for (int k = 0; k < 600 && w[i].statuses[k]; k++) {
            ok += w[i].statuses[k] / 100 == 2;
            unavailable += w[i].statuses[k] == 503;
            if (w[i].ids[k] > 0)
                lost += dbcount(S("SELECT count(*) FROM tasks WHERE id = %d AND title = "
                                  "'w%d-%d'",
                                  w[i].ids[k], i, k)) != 1;
        }
        free((char *)w[i].other);
    }
    fprintf(stderr, "check_api: %ld backends terminated under %d clients: %ld 2xx, %ld 503\n",
            killed, WRITERS, ok, unavailable);
    ck_assert_int_gt(killed, 0);
    ck_assert_int_gt(ok, 0);
    ck_assert_msg(lost == 0, "%ld created tasks are not in the table", lost);
    /* and it recovers */
    R r = POST("/api/tasks", u.token, "{\"title\":\"after\"}");
    for (int i = 0; i < 50 && r.status == 503; i++) {
        usleep(100000);
        r = POST("/api/tasks", u.token, "{\"title\":\"after\"}");
    }
    EXPECT(r, 201);
}
END_TEST

/* ========================================= drain ========================================== */

/*
 * SIGTERM on an API process under load, as in a rolling deploy: a second taskorad on the same
 * database and cluster (http_api and realtime) with a drain delay, writers creating tasks over
 * fresh and keep-alive connections, and an open event stream.
 */
#define DRAIN_MS 2000
#define DRAIN_WRITERS 8
#define DRAIN_MARGIN_S 0.3 /* scheduling slack around the end of the delay */

enum attempt_kind { AT_CREATED, AT_OTHER_STATUS, AT_REFUSED, AT_CUT };

typedef struct attempt {
    double start; /* when the client began (connecting, or sending on a kept connection) */
    int kind;
    int id; /* the created task's */
    int status;
} attempt;

typedef struct drain_writer {
    int index, port, keepalive;
    const char *token;
    atomic_int *stop;
    _Atomic double last_start;
    atomic_long created;
    attempt *at;
    size_t n, cap;
    char why[256]; /* the first cut connection's story */
} drain_writer;

static void record(drain_writer *w, double start, int kind, int id, int status)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 1024;
        w->at = realloc(w->at, w->cap * sizeof(*w->at));
        ck_assert_ptr_nonnull(w->at);
    }
    w->at[w->n++] = (attempt){start, kind, id, status};
}

/* A connection to 127.0.0.1:port, or -1 when it is refused (or not answered within 5 s). */
static int drain_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int err = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            socklen_t len = sizeof(err);
            err = ETIMEDOUT;
            if (poll(&p, 1, 5000) == 1)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
    }
    if (err) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, 0);
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/*
 * One POST /api/tasks on fd and its answer: 1 with *status (and *id of a 201; *closes when the
 * answer ends the connection), or 0 when no complete answer came (why says what happened).
 */
static int drain_exchange(drain_writer *w, int fd, long k, int *status, int *id, int *closes)
{
    char body[96], req[1536], buf[16384];
    int blen = snprintf(body, sizeof(body), "{\"title\":\"drain-%d-%ld\"}", w->index, k);
    int rlen = snprintf(req, sizeof(req),
                        "POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n%s\r\n%s",
                        w->token, blen, w->keepalive ? "" : "Connection: close\r\n", body);
    const char *why = NULL;
    if (send(fd, req, (size_t)rlen, MSG_NOSIGNAL) != rlen)
        why = "send failed";
    size_t got = 0;
    char *end = NULL;
    long clen = -1;
    while (!why) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0) {
            why = r == 0 ? "end of stream before a complete answer" : strerror(errno);
            break;
        }
        got += (size_t)r;
        buf[got] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            clen = cl && cl < end ? atol(cl + 17) : -1;
            if (clen < 0)
                why = "an answer without Content-Length";
        }
        if (end && clen >= 0 && got >= (size_t)(end + 4 - buf) + (size_t)clen)
            break;
        if (got == sizeof(buf) - 1)
            why = "an answer too large";
    }
    if (why) {
        if (!w->why[0])
            snprintf(w->why, sizeof(w->why), "%s (after %zu bytes: %.*s)", why, got,
                     (int)(got < 80 ? got : 80), buf);
        return 0;
    }
    *status = atoi(buf + 9);
    *end = '\0';
    *closes = strcasestr(buf, "\r\nConnection: close") != NULL;
    json_t *j = json_loads(end + 4, 0, NULL);
    *id = (int)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return 1;
}

static void *drain_write(void *arg)
{
    drain_writer *w = arg;
    int fd = -1;
    for (long k = 0; !atomic_load(w->stop); k++) {
        double start = th_now_s();
        atomic_store(&w->last_start, start);
        if (fd < 0 && (fd = drain_connect(w->port)) < 0) {
            record(w, start, AT_REFUSED, 0, 0);
            usleep(2000);
            continue;
        }
        int status = 0, id = 0, closes = 1;
        if (!drain_exchange(w, fd, k, &status, &id, &closes)) {
            record(w, start, AT_CUT, 0, 0);
            closes = 1;
        } else {
            int ok = status == 201 && id > 0;
            record(w, start, ok ? AT_CREATED : AT_OTHER_STATUS, id, status);
            atomic_fetch_add(&w->created, ok);
        }
        if (closes || !w->keepalive) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* An event stream read on its own thread until the server ends it. */
typedef struct drain_stream {
    int fd;
    char buf[65536];
    size_t len;
    int ended; /* 1: the server closed it, 0: still open after 30 s */
    pthread_mutex_t lock;
} drain_stream;

static void *drain_read_stream(void *arg)
{
    drain_stream *s = arg;
    double end = th_now_s() + 30;
    while (th_now_s() < end) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        pthread_mutex_lock(&s->lock);
        ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
        if (n > 0)
            s->len += (size_t)n;
        s->buf[s->len] = '\0';
        pthread_mutex_unlock(&s->lock);
        if (n <= 0) {
            s->ended = 1;
            break;
        }
    }
    return NULL;
}

static int stream_has(drain_stream *s, const char *needle)
{
    pthread_mutex_lock(&s->lock);
    int found = strstr(s->buf, needle) != NULL;
    pthread_mutex_unlock(&s->lock);
    return found;
}

static const char *drain_config(void)
{
    return S("{\"app_id\":\"" APP_ID "-drain\",\"log\":{\"format\":\"text\"},"
             "\"postgres\":{\"url\":\"${TK_TEST_DB}\",\"pool_size\":4},"
             "\"kafka\":{\"brokers\":\"%s\"},\"outbox\":{\"poll_ms\":200},"
             "\"http\":{\"listen\":\"127.0.0.1:0\"},"
             "\"drain_delay_ms\":%d,\"shutdown_timeout_ms\":10000,"
             "\"plugin_dir\":\"%s/plugins/http_api/.libs:%s/plugins/realtime/.libs\","
             "\"plugins\":[{\"name\":\"api\",\"load\":\"http_api\","
             "\"config\":{\"jwt_secret\":\"%s\",\"bcrypt_cost\":4}},"
             "{\"name\":\"realtime\",\"load\":\"realtime\","
             "\"consume\":{\"topics\":[\"task-events\"],\"broadcast\":true}}]}",
             bootstrap, DRAIN_MS, th_builddir(), th_builddir(), SECRET);
}

/* Waits until every writer began an attempt after t (its attempts are then refused). */
static void wait_writers_past(drain_writer *w, double t)
{
    double end = th_now_s() + 10;
    for (int i = 0; i < DRAIN_WRITERS; i++)
        while (atomic_load(&w[i].last_start) <= t && th_now_s() < end)
            usleep(10000);
}

START_TEST(test_sigterm_drains_without_refusing_or_cutting_a_request)
{
    user u = new_user("drain");
    user listener = new_user("drain-listener");
    char *cfg = keep(th_write(dir, "drain.json", drain_config()));
    th_daemon d;
    th_daemon_start_named(&d, dir, cfg, "drain");
    int port = atoi(strrchr(d.url, ':') + 1);

    static drain_stream st;
    memset(&st, 0, sizeof(st));
    pthread_mutex_init(&st.lock, NULL);
    ck_assert_int_ge(st.fd = drain_connect(port), 0);
    const char *get = S("GET /api/events/stream?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Accept: text/event-stream\r\n\r\n",
                        listener.token);
    ck_assert_int_eq(send(st.fd, get, strlen(get), MSG_NOSIGNAL), (ssize_t)strlen(get));
    pthread_t reader;
    ck_assert_int_eq(pthread_create(&reader, NULL, drain_read_stream, &st), 0);

    static drain_writer w[DRAIN_WRITERS];
    static atomic_int stop;
    atomic_store(&stop, 0);
    pthread_t t[DRAIN_WRITERS];
    for (int i = 0; i < DRAIN_WRITERS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i] = (drain_writer){
            .index = i, .port = port, .keepalive = i % 4 == 3, .token = u.token, .stop = &stop};
        ck_assert_int_eq(pthread_create(&t[i], NULL, drain_write, &w[i]), 0);
    }
    double end = th_now_s() + 10;
    while (!stream_has(&st, "event: connected") && th_now_s() < end)
        usleep(10000);
    ck_assert_msg(stream_has(&st, "event: connected"), "the stream did not open: %s", st.buf);
    long before = 0; /* the writers under way */
    while (before < 100 && th_now_s() < end) {
        usleep(10000);
        before = 0;
        for (int i = 0; i < DRAIN_WRITERS; i++)
            before += atomic_load(&w[i].created);
    }
    ck_assert_int_ge(before, 100);

    double t_sig = th_now_s();
    kill(d.pid, SIGTERM);
    /* /ready turns 503 at once, and answers now close their connections */
    long ready = 0;
    char *conn = NULL, *body = NULL;
    while (th_now_s() < t_sig + 1) {
        th_response r;
        if (th_http("GET", S("%s/ready", d.url), NULL, 0, NULL, &r) == 0) {
            ready = r.status;
            free(conn);
            conn = th_header(&r, "connection");
            body = keep(r.body ? strdup(r.body) : NULL);
            th_response_free(&r);
            if (ready == 503)
                break;
        }
        usleep(20000);
    }
    double t_ready = th_now_s() - t_sig;
    ck_assert_msg(ready == 503, "/ready still %ld %.0f ms after SIGTERM", ready, t_ready * 1000);
    ck_assert_str_eq(body, "{\"status\":\"not_ready\",\"reason\":\"draining\"}");
    ck_assert_msg(conn && strcmp(conn, "close") == 0, "Connection: %s", conn);
    free(conn);

    int rc = th_daemon_wait(&d, 30000);
    double t_exit = th_now_s();
    wait_writers_past(w, t_exit);
    atomic_store(&stop, 1);
    for (int i = 0; i < DRAIN_WRITERS; i++)
        pthread_join(t[i], NULL);
    pthread_join(reader, NULL);
    const char *log = keep(th_read(d.log_path));
    const char *san =
        strstr(log, "Sanitizer") ? strstr(log, "Sanitizer") : strstr(log, "runtime error");
    if (rc != 0 || san) {
        size_t n = strlen(log);
        ck_abort_msg("taskorad exited %d on SIGTERM; its log %s: %s", rc, san ? "reports" : "ends",
                     san        ? san
                     : n > 4000 ? log + n - 4000
                                : log);
    }
    th_daemon_cleanup(&d);

    /* what the clients saw */
    double cutoff = t_sig + DRAIN_MS / 1000.0 - DRAIN_MARGIN_S;
    long created = 0, during = 0, other = 0, refused_early = 0, refused_late = 0, cut = 0;
    size_t nattempts = 0;
    for (int i = 0; i < DRAIN_WRITERS; i++)
        nattempts += w[i].n;
    char *ids = keep(calloc(nattempts * 12 + 1, 1)), *idp = ids;
    const char *why = "";
    for (int i = 0; i < DRAIN_WRITERS; i++) {
        for (size_t k = 0; k < w[i].n; k++) {
            const attempt *a = &w[i].at[k];
            switch (a->kind) {
            case AT_CREATED:
                created++;
                during += a->start > t_sig && a->start < cutoff;
                idp += sprintf(idp, "%s%d", idp > ids ? "," : "", a->id);
                break;
            case AT_OTHER_STATUS: other++; break;
            case AT_REFUSED:
                refused_early += a->start < cutoff;
                refused_late += a->start >= cutoff;
                break;
            default: cut++; break;
            }
        }
        if (w[i].why[0] && !*why)
            why = S("writer %d: %s", i, w[i].why);
    }
    long in_db = dbcount(S("SELECT count(*) FROM tasks WHERE id = ANY('{%s}'::int[])", ids));
    long of_user = dbcount(S("SELECT count(*) FROM tasks WHERE user_id = '%s'", u.ids));
    fprintf(stderr,
            "check_api: drain: %ld requests answered (%ld created, %ld of them during the %d ms "
            "delay), %ld cut; %ld connection attempts refused before the delay's end, %ld after "
            "it; /ready 503 after %.0f ms; exit %.2f s after SIGTERM\n",
            created + other, created, during, DRAIN_MS, cut, refused_early, refused_late,
            t_ready * 1000, t_exit - t_sig);
    for (int i = 0; i < DRAIN_WRITERS; i++)
        free(w[i].at);
    ck_assert_msg(cut == 0, "%ld connections got no complete answer; %s", cut, why);
    ck_assert_msg(refused_early == 0, "%ld connection attempts refused during the drain delay",
                  refused_early);
    ck_assert_msg(other == 0, "%ld answers were not 201", other);
    ck_assert_msg(during > 0, "nothing was created during the drain delay");
    /* the clients do see refusals: once the process is gone */
    ck_assert_int_gt(refused_late, 0);
    ck_assert_int_eq(in_db, created);
    ck_assert_int_eq(of_user, created); /* no task was created without its answer arriving */

    /* the stream's last event tells the client to reconnect (elsewhere), then it ends */
    ck_assert_msg(st.ended, "the event stream was not ended");
    const char *frame = "event: reconnect\ndata: {\"reason\":\"shutting down\"}\nretry: 1000\n\n";
    ck_assert_msg(strstr(st.buf, frame), "no reconnect event: %s", st.buf);
    ck_assert_msg(!strstr(st.buf, "\nid:"), "%s", st.buf);
    close(st.fd);
    pthread_mutex_destroy(&st.lock);
}
END_TEST

/* ============================================================================================ */

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    suite_add_tcase(s, tc);
    tcases_left++;
    return tc;
}

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_api");
    Suite *s = suite_create("api");
    TCase *tc = tcase(s, "operations");
    tcase_add_test(tc, test_root_health_ready_and_metrics_answer);
    tcase_add_test(tc, test_request_id_is_echoed_or_generated);
    tcase_add_test(tc, test_unknown_route_is_404_json_and_oversized_body_is_413);
    tcase_add_test(tc, test_empty_jwt_secret_refuses_to_start);
    tcase_add_test(tc, test_browser_home_off_this_server_refuses_to_start);

    tc = tcase(s, "auth");
    tcase_add_test(tc, test_register_returns_201_user_without_password);
    tcase_add_test(tc, test_register_rejects_duplicate_bad_email_empty_password_missing_fields);
    tcase_add_test(tc, test_login_returns_bearer_token_with_sub_and_7_day_expiry);
    tcase_add_test(tc, test_login_failures_are_401_with_www_authenticate);
    tcase_add_test(tc, test_long_passwords_are_not_truncated);
    tcase_add_test(tc, test_me_and_logout);
    tcase_add_test(tc, test_missing_authorization_is_401_not_authenticated_everywhere);
    tcase_add_test(tc, test_bad_tokens_are_401_with_their_detail);
    tcase_add_test(tc, test_token_with_user_id_claim_instead_of_sub_is_accepted);
    tcase_add_test(tc, test_existing_bcrypt_sha256_user_can_log_in);
    tcase_add_test(tc, test_delete_account_removes_tasks_tags_conversations_and_user);
    tcase_add_test(tc, test_user_events_carry_no_password_or_token);
    tcase_add_test(tc, test_logout_revokes_the_token_and_only_that_one);
    tcase_add_test(tc, test_logout_revokes_a_token_without_jti_in_every_spelling);
    tcase_add_test(tc, test_revocations_are_purged_once_long_expired);
    tcase_add_test(tc, test_a_deleted_users_token_is_401_everywhere);
    tcase_add_test(tc, test_emails_are_unique_case_insensitively);
    tcase_add_test(tc, test_out_of_range_or_non_canonical_claims_are_401);
    tcase_add_test(tc, test_answers_that_carry_a_token_are_not_stored);

    tc = tcase(s, "secret_rotation");
    tcase_add_test(tc, test_tokens_of_the_previous_secret_verify_while_it_is_configured);
    tcase_add_test(tc, test_a_previous_secret_equal_to_the_current_one_refuses_to_start);

    tc = tcase(s, "tags");
    tcase_add_test(tc, test_tags_listed_by_name_with_default_colour);
    tcase_add_test(tc, test_tag_duplicate_name_is_400_case_insensitively_per_user);
    tcase_add_test(tc, test_tag_validation_errors_are_422);
    tcase_add_test(tc, test_tag_get_put_delete_and_404);
    tcase_add_test(tc, test_deleting_a_tag_detaches_it_from_tasks);

    tc = tcase(s, "tasks");
    tcase_add_test(tc, test_create_task_with_all_fields_ignores_foreign_tags);
    tcase_add_test(tc, test_create_task_defaults);
    tcase_add_test(tc, test_timestamps_accept_z_offset_naive_and_date_only);
    tcase_add_test(tc, test_create_task_validation_errors_are_422);
    tcase_add_test(tc, test_malformed_json_is_422_json_invalid);
    tcase_add_test(tc, test_get_missing_task_is_404_and_non_integer_id_is_422);
    tcase_add_test(tc, test_put_is_partial_null_clears_tag_ids_replace_updated_at_refreshed);
    tcase_add_test(tc, test_put_validation_errors_leave_the_task_unchanged);
    tcase_add_test(tc, test_delete_task);
    tcase_add_test(tc, test_deleting_recurring_parent_keeps_children_detached);

    tc = tcase(s, "queries");
    tcase_add_test(tc, test_filter_by_search_status_priority_and_tags);
    tcase_add_test(tc, test_filter_by_due_range_and_overdue);
    tcase_add_test(tc, test_sort_by_priority_due_date_title_and_created_at);
    tcase_add_test(tc, test_limit_offset_and_total_count);
    tcase_add_test(tc, test_query_validation_errors_are_422);
    tcase_add_test(tc, test_the_longest_filter_combination_answers);

    tc = tcase(s, "completion");
    tcase_add_test(tc, test_complete_and_reopen_plain_task);
    tcase_add_test(tc, test_complete_requires_the_completed_field);
    tcase_add_test(tc, test_completing_recurring_task_creates_the_next_instance);
    tcase_add_test(tc, test_monthly_recurrence_clamps_to_month_end);
    tcase_add_test(tc, test_recompleting_creates_no_second_instance_and_reopen_returns_task);
    tcase_add_test(tc, test_recurring_task_without_due_date_is_next_due_a_day_from_now);

    tc = tcase(s, "reminders");
    tcase_add_test(tc, test_reminders_list_set_clear_and_sent);
    tcase_add_test(tc, test_reminder_errors);

    tc = tcase(s, "conversations");
    tcase_add_test(tc, test_conversations_listed_newest_first_with_preview);
    tcase_add_test(tc, test_messages_oldest_first_newest_limit_and_has_more);
    tcase_add_test(tc, test_delete_conversation_removes_its_messages);
    tcase_add_test(tc, test_conversation_routes_forbid_another_path_user);
    tcase_add_test(tc, test_conversation_limits_are_validated);

    tc = tcase(s, "isolation");
    tcase_add_test(tc, test_another_users_task_is_404_everywhere_and_unchanged);
    tcase_add_test(tc, test_another_users_tag_is_404_and_cannot_be_attached);
    tcase_add_test(tc, test_another_users_conversation_is_404);
    tcase_add_test(tc, test_lists_hold_only_the_callers_objects);

    tc = tcase(s, "edges");
    tcase_add_test(tc, test_search_treats_wildcards_and_quotes_literally);
    tcase_add_test(tc, test_lengths_count_characters_not_bytes);
    tcase_add_test(tc, test_duplicate_tag_ids_attach_once);
    tcase_add_test(tc, test_out_of_range_ids_are_not_server_errors);
    tcase_add_test(tc, test_extra_fields_are_ignored_and_cannot_set_owner_or_id);
    tcase_add_test(tc, test_default_limits_of_conversations_and_messages);
    tcase_add_test(tc, test_concurrent_completions_create_one_next_instance);
    tcase_add_test(tc, test_concurrent_registrations_create_one_user);
    tcase_add_test(tc, test_concurrent_tag_creates_with_one_name_create_one_tag);
    tcase_add_test(tc, test_priority_filter_with_repeated_names_is_a_set);
    tcase_add_test(tc, test_reopen_and_complete_again_creates_no_second_instance);
    tcase_add_test(tc, test_renaming_a_missing_or_foreign_tag_is_404);
    tcase_add_test(tc, test_token_of_a_deleted_account_creates_nothing);

    tc = tcase(s, "events");
    tcase_add_test(tc, test_task_created_reaches_kafka_as_a_cloudevent);
    tcase_add_test(tc, test_every_task_change_writes_its_outbox_event);

    tc = tcase(s, "limits");
    tcase_add_test(tc, test_description_above_the_limit_is_422);
    tcase_add_test(tc, test_full_pages_of_the_longest_tasks_keep_memory_bounded);

    tc = tcase(s, "bad_input");
    tcase_add_test(tc, test_ids_no_row_can_have_are_404_or_422_everywhere);
    tcase_add_test(tc, test_query_values_that_are_not_text_are_422);
    tcase_add_test(tc, test_bodies_that_are_not_utf8_text_are_json_invalid);
    tcase_add_test(tc, test_dates_outside_years_1_to_9999_are_422_everywhere);
    tcase_add_test(tc, test_recurrence_past_year_9999_ends_and_the_completion_stands);
    tcase_add_test(tc, test_boolean_query_words_are_the_same_everywhere);

    tc = tcase(s, "database");
    tcase_add_test(tc, test_connections_terminated_mid_request_are_503_and_lose_nothing);

    tc = tcase(s, "drain");
    tcase_add_test(tc, test_sigterm_drains_without_refusing_or_cutting_a_request);
    int rc = th_run_suite(s);
    if (daemon_exit != 0) {
        fprintf(stderr, "check_api: FAIL: taskorad did not shut down cleanly (see above)\n");
        rc = 1;
    }
    return rc;
}
