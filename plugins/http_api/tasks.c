/*
 * /api/tasks: tasks with filters, sorting and pages done in SQL, recurrence on
 * completion, reminders. Each change writes its event to the outbox in the
 * same transaction.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"

/* One task row (alias t) as the API's JSON, tags included. */
#define TASK_JSON(t)                                                                               \
    "json_build_object('id', " t ".id, 'title', " t ".title, 'description', " t                    \
    ".description, 'completed', " t ".completed, 'priority', " t                                   \
    ".priority, 'due_date', " API_TS(t ".due_date") ", 'reminder_at', " API_TS(                    \
        t                                                                                          \
        ".reminder_at") ", 'reminder_sent', " t ".reminder_sent, 'is_recurring', " t               \
                        ".is_recurring, 'recurrence_rule', " t                                     \
                        ".recurrence_rule, 'recurrence_interval', " t                              \
                        ".recurrence_interval, 'parent_task_id', " t                               \
                        ".parent_task_id, 'user_id', " t ".user_id, 'created_at', " API_TS(        \
                            t                                                                      \
                            "."                                                                    \
                            "c"                                                                    \
                            "r"                                                                    \
                            "e"                                                                    \
                            "a"                                                                    \
                            "t"                                                                    \
                            "e"                                                                    \
                            "d"                                                                    \
                            "_"                                                                    \
                            "a"                                                                    \
                            "t") ", 'updated_at', " API_TS(t ".updated_at") ", 'tags', (SELECT "   \
                                                                            "coalesce(json_"       \
                                                                            "agg(" API_TAG_JSON(   \
                                                                                "g") " ORDER BY "  \
                                                                                     "lower(g."    \
                                                                                     "name), "     \
                                                                                     "g.id), "     \
                                                                                     "'[]') "      \
                                                                                     "FROM "       \
                                                                                     "task_tags "  \
                                                                                     "tt JOIN "    \
                                                                                     "tags g"      \
                                                                                     " ON g.id "   \
                                                                                     "= "          \
                                                                                     "tt.tag_id "  \
                                                                                     "WHERE "      \
                                                                                     "tt.task_"    \
                                                                                     "id = " t     \
                                                                                     ".id))"

#define NOW_UTC "(now() AT TIME ZONE 'utc')"

static const char *const priorities[] = {"low", "medium", "high", "urgent", NULL};
static const char *const rules[] = {"daily", "weekly", "monthly", "custom", NULL};

static int one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(v, *set) == 0)
            return 1;
    return 0;
}

/* pydantic's wording: "Input should be 'a', 'b' or 'c'". */
static void enum_error(api_errors *e, const char *where, const char *field, const char *const *set)
{
    char msg[160] = "Input should be ";
    for (size_t i = 0; set[i]; i++) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, "%s'%s'",
                 i == 0       ? ""
                 : set[i + 1] ? ", "
                              : " or ",
                 set[i]);
    }
    api_errors_add(e, where, field, msg, "enum");
}

/* ---- a small SQL builder for statements with optional parts ----------------- */

typedef struct sqlb {
    char sql[4096];
    size_t len;
    const char *p[24];
    char own[24][32]; /* storage for parameters formatted here */
    int n;
} sqlb;

static void sb_add(sqlb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sqlb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->sql + b->len, sizeof(b->sql) - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len = b->len + (size_t)n < sizeof(b->sql) ? b->len + (size_t)n : sizeof(b->sql) - 1;
}

/* Adds a parameter and returns its number ($n). */
static int sb_param(sqlb *b, const char *value)
{
    b->p[b->n] = value;
    return ++b->n;
}

/* ---- reading a task body ------------------------------------------------------ */

typedef struct task_in {
    char id_text[24];
    int has_title, has_description, has_completed, has_priority, has_due, has_reminder,
        has_recurring, has_rule, has_interval, has_tags;
    const char *title, *description, *priority, *rule;
    int completed, is_recurring;
    char due[32], reminder[32], interval[16];
    int due_null, reminder_null, interval_null;
    char *tag_ids; /* "{1,2}" (malloc'd) */
} task_in;

static int read_time(api_errors *e, json_t *body, const char *field, char out[32], int *present,
                     int *is_null)
{
    json_t *v = json_object_get(body, field);
    *present = v != NULL;
    *is_null = v && json_is_null(v);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        api_errors_add(e, "body", field, "Input should be a valid datetime", "datetime_type");
        return -1;
    }
    if (api_parse_time(json_string_value(v), out) < 0) {
        api_errors_add(e, "body", field, "Input should be a valid datetime", "datetime_parsing");
        return -1;
    }
    return 0;
}

/*
 * An array of at most max (0: any number of) integers as a PostgreSQL array literal; NULL
 * (422 recorded) when not.
 */
static char *read_ids(api_errors *e, json_t *v, const char *field, size_t max)
{
    if (json_is_null(v))
        return strdup("{}");
    if (!json_is_array(v)) {
        api_errors_add(e, "body", field, "Input should be a valid list", "list_type");
        return NULL;
    }
    size_t n = json_array_size(v), i;
    if (max && n > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "List should have at most %zu items after validation, not %zu",
                 max, n);
        api_errors_add(e, "body", field, msg, "too_long");
        return NULL;
    }
    char *out = malloc(n * 12 + 3), *p = out;
    if (!out)
        return NULL;
    *p++ = '{';
    json_t *it;
    json_array_foreach(v, i, it)
    {
        if (!json_is_integer(it) || json_integer_value(it) < -2147483647 ||
            json_integer_value(it) > 2147483647) {
            api_errors_add(e, "body", field, "Input should be a valid integer", "int_type");
            free(out);
            return NULL;
        }
        p += sprintf(p, "%s%lld", i ? "," : "", (long long)json_integer_value(it));
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

/* Reads a task body; `create` makes title required. */
static void read_task(api *a, api_errors *e, json_t *body, task_in *t, int create)
{
    int is_null = 0;
    t->title = api_field_string(e, body, "title", create, 1, 255, &t->has_title, &is_null);
    if (!create && is_null)
        api_errors_add(e, "body", "title", "Input should be a valid string", "string_type");
    t->has_title = t->title != NULL;
    t->description = api_field_string(e, body, "description", 0, 0, a->max_description,
                                      &t->has_description, &is_null);
    if (t->has_description && !is_null && !t->description)
        t->has_description = 0; /* wrong type, recorded */
    t->completed = api_field_bool(e, body, "completed", 0, &t->has_completed);
    t->priority = api_field_string(e, body, "priority", 0, 0, 0, &t->has_priority, &is_null);
    if (is_null)
        api_errors_add(e, "body", "priority", "Input should be a valid string", "string_type");
    if (t->priority && !one_of(t->priority, priorities)) {
        enum_error(e, "body", "priority", priorities);
        t->priority = NULL;
    }
    t->has_priority = t->priority != NULL;
    read_time(e, body, "due_date", t->due, &t->has_due, &t->due_null);
    read_time(e, body, "reminder_at", t->reminder, &t->has_reminder, &t->reminder_null);
    t->is_recurring = api_field_bool(e, body, "is_recurring", 0, &t->has_recurring);
    t->rule = api_field_string(e, body, "recurrence_rule", 0, 0, 0, &t->has_rule, &is_null);
    if (t->rule && !one_of(t->rule, rules)) {
        enum_error(e, "body", "recurrence_rule", rules);
        t->rule = NULL, t->has_rule = 0;
    }
    json_t *v = json_object_get(body, "recurrence_interval");
    if (v) {
        t->has_interval = 1;
        t->interval_null = json_is_null(v);
        if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 36500)
            snprintf(t->interval, sizeof(t->interval), "%lld", (long long)json_integer_value(v));
        else if (json_is_integer(v))
            api_errors_add(e, "body", "recurrence_interval",
                           json_integer_value(v) < 1
                               ? "Input should be greater than or equal to 1"
                               : "Input should be less than or equal to 36500",
                           json_integer_value(v) < 1 ? "greater_than_equal" : "less_than_equal");
        else if (!t->interval_null)
            api_errors_add(e, "body", "recurrence_interval", "Input should be a valid integer",
                           "int_type");
    }
    v = json_object_get(body, "tag_ids");
    if (v) {
        t->tag_ids = read_ids(e, v, "tag_ids", API_MAX_TASK_TAGS);
        t->has_tags = t->tag_ids != NULL;
    }
}

/* ---- shared steps ----------------------------------------------------------------- */

/* The task as JSON (parsed), or NULL when it is not the user's; *err on failure. */
static json_t *load_task(api_call *c, PGconn *conn, const char *id, int *err)
{
    const char *p[] = {id, c->user};
    PGresult *res = api_exec(c->a, conn,
                             "SELECT " TASK_JSON("t") "::text FROM tasks t"
                                                      " WHERE t.id = $1::int AND t.user_id = $2",
                             2, p);
    json_t *out = NULL;
    *err = !api_ok(res);
    if (!*err && PQntuples(res))
        out = json_loads(PQgetvalue(res, 0, 0), 0, NULL), *err = out == NULL;
    PQclear(res);
    return out;
}

/* Runs a statement whose result is not needed; TK_OK or TK_ERR. */
static int run(api_call *c, PGconn *conn, const char *sql, int n, const char *const *p)
{
    PGresult *res = api_exec(c->a, conn, sql, n, p);
    int rc = api_ok(res) ? TK_OK : TK_ERR;
    PQclear(res);
    return rc;
}

/* Attaches the user's tags among ids (others are ignored) to a task. */
static int attach_tags(api_call *c, PGconn *conn, const char *task_id, const char *ids)
{
    const char *p[] = {task_id, ids, c->user};
    return run(c, conn,
               "INSERT INTO task_tags (task_id, tag_id) SELECT $1::int, g.id FROM tags g"
               " WHERE g.id = ANY($2::int[]) AND g.user_id = $3 ON CONFLICT DO NOTHING",
               3, p);
}

static int task_event(api_call *c, PGconn *conn, const char *type, json_t *task, json_t *payload)
{
    char subject[24];
    snprintf(subject, sizeof(subject), "%lld",
             (long long)json_integer_value(json_object_get(task, "id")));
    return api_event(c->a, conn, c->a->task_topic, type, c->user, subject, payload);
}

static json_t *tag_names(json_t *task)
{
    json_t *names = json_array(), *tag;
    size_t i;
    json_array_foreach(json_object_get(task, "tags"), i, tag)
        json_array_append(names, json_object_get(tag, "name"));
    return names;
}

/* ---- list ---------------------------------------------------------------------------- */

typedef struct list_in {
    const char *search, *status, *sort, *order;
    char prio[32]; /* "{low,high}" or "" */
    char *tags;    /* "{1,2}" or NULL */
    char before[32], after[32];
    int has_before, has_after, overdue;
    char limit[16], offset[16];
} list_in;

static void read_list_query(api *a, const tk_http_request *req, api_errors *e, list_in *q)
{
    static const char *const statuses[] = {"all", "pending", "completed", NULL};
    static const char *const sorts[] = {"created_at", "due_date", "priority", "title", NULL};
    static const char *const orders[] = {"asc", "desc", NULL};
    const char *v;
    q->search = api_query(a, req, e, "search");
    if (q->search && !*q->search)
        q->search = NULL;
    q->status = (v = api_query(a, req, e, "status")) ? v : "all";
    if (!one_of(q->status, statuses))
        enum_error(e, "query", "status", statuses);
    q->sort = (v = api_query(a, req, e, "sort_by")) ? v : "created_at";
    if (!one_of(q->sort, sorts))
        enum_error(e, "query", "sort_by", sorts);
    q->order = (v = api_query(a, req, e, "order")) ? v : "desc";
    if (!one_of(q->order, orders))
        enum_error(e, "query", "order", orders);
    if ((v = api_query(a, req, e, "priority")) && *v) {
        /* a CSV of known names: kept as a set, so the array literal is short and safe */
        unsigned set = 0;
        char *copy = strdup(v), *save = NULL, *tok;
        for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
             tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            char *end = tok + strlen(tok);
            while (end > tok && end[-1] == ' ')
                *--end = '\0';
            unsigned bit = 0;
            for (unsigned i = 0; priorities[i] && !bit; i++)
                if (strcmp(tok, priorities[i]) == 0)
                    bit = 1u << i;
            if (!bit) {
                enum_error(e, "query", "priority", priorities);
                break;
            }
            set |= bit;
        }
        free(copy);
        /* at most "{low,medium,high,urgent}": 25 bytes */
        size_t len = 0;
        q->prio[len++] = '{';
        for (unsigned i = 0; priorities[i]; i++) {
            if (!(set & (1u << i)))
                continue;
            if (len > 1)
                q->prio[len++] = ',';
            memcpy(q->prio + len, priorities[i], strlen(priorities[i]));
            len += strlen(priorities[i]);
        }
        q->prio[len++] = '}';
        q->prio[len] = '\0';
    }
    if ((v = api_query(a, req, e, "tags")) && *v) {
        json_t *ids = json_array();
        char *copy = strdup(v), *save = NULL, *tok;
        for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
             tok = strtok_r(NULL, ",", &save)) {
            char *end;
            long long id = strtoll(tok, &end, 10);
            while (*end == ' ')
                end++;
            if (end == tok || *end || id < -2147483647 || id > 2147483647) {
                api_errors_add(e, "query", "tags",
                               "Input should be a comma-separated list of integers", "int_parsing");
                break;
            }
            json_array_append_new(ids, json_integer(id));
        }
        api_errors scratch;
        api_errors_init(&scratch);
        q->tags = read_ids(&scratch, ids, "tags", 0);
        api_errors_free(&scratch);
        json_decref(ids);
        free(copy);
    }
    if ((v = api_query(a, req, e, "due_before"))) {
        q->has_before = 1;
        if (api_parse_time(v, q->before) < 0)
            api_errors_add(e, "query", "due_before", "Input should be a valid datetime",
                           "datetime_parsing");
    }
    if ((v = api_query(a, req, e, "due_after"))) {
        q->has_after = 1;
        if (api_parse_time(v, q->after) < 0)
            api_errors_add(e, "query", "due_after", "Input should be a valid datetime",
                           "datetime_parsing");
    }
    q->overdue = api_query_bool(a, req, e, "overdue");
    api_query_int(e, api_query(a, req, e, "limit"), "limit", 1, 1000, 500, q->limit);
    api_query_int(e, api_query(a, req, e, "offset"), "offset", 0, 2147483647, 0, q->offset);
}

/* The WHERE clause of a list query. */
static void list_where(sqlb *b, const list_in *q, const char *user)
{
    sb_add(b, " WHERE t.user_id = $%d", sb_param(b, user));
    if (q->search) {
        int n = sb_param(b, q->search);
        sb_add(b,
               " AND (strpos(lower(t.title), lower($%d)) > 0"
               " OR strpos(lower(coalesce(t.description, '')), lower($%d)) > 0)",
               n, n);
    }
    if (strcmp(q->status, "pending") == 0)
        sb_add(b, " AND NOT t.completed");
    else if (strcmp(q->status, "completed") == 0)
        sb_add(b, " AND t.completed");
    if (q->prio[0])
        sb_add(b, " AND t.priority = ANY($%d::text[])", sb_param(b, q->prio));
    if (q->tags)
        sb_add(b,
               " AND EXISTS (SELECT 1 FROM task_tags tt WHERE tt.task_id = t.id"
               " AND tt.tag_id = ANY($%d::int[]))",
               sb_param(b, q->tags));
    if (q->has_before)
        sb_add(b, " AND t.due_date <= $%d::timestamp", sb_param(b, q->before));
    if (q->has_after)
        sb_add(b, " AND t.due_date >= $%d::timestamp", sb_param(b, q->after));
    if (q->overdue)
        sb_add(b, " AND t.due_date < " NOW_UTC " AND NOT t.completed");
}

/* A page of tasks as JSON text, growing a row at a time. */
typedef struct page {
    char *buf;
    size_t len, cap;
    int rows;
    long long total;
} page;

static int page_row(const PGresult *res, void *ud)
{
    page *p = ud;
    size_t n = (size_t)PQgetlength(res, 0, 1);
    if (p->len + n + 3 > p->cap) { /* ',' or '[', the row, then room for "]" and the NUL */
        size_t cap = p->cap ? p->cap : 16384;
        while (p->len + n + 3 > cap)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b)
            return TK_ENOMEM;
        p->buf = b;
        p->cap = cap;
    }
    p->buf[p->len++] = p->rows++ ? ',' : '[';
    memcpy(p->buf + p->len, PQgetvalue(res, 0, 1), n);
    p->len += n;
    if (p->rows == 1)
        p->total = atoll(PQgetvalue(res, 0, 0));
    return TK_OK;
}

static int list_fn(void *conn, void *ud)
{
    api_call *c = ud;
    const list_in *q = c->arg;
    sqlb b = {.len = 0, .n = 0};
    sb_add(&b, "SELECT count(*) OVER (), " TASK_JSON("t") "::text FROM tasks t");
    list_where(&b, q, c->user);
    const char *dir = strcmp(q->order, "asc") == 0 ? "ASC" : "DESC";
    if (strcmp(q->sort, "due_date") == 0)
        sb_add(&b, " ORDER BY t.due_date %s NULLS LAST, t.id %s", dir, dir);
    else if (strcmp(q->sort, "priority") == 0)
        sb_add(
            &b,
            " ORDER BY CASE t.priority WHEN 'urgent' THEN 4 WHEN 'high' THEN 3"
            " WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END %s, t.created_at DESC, t.id DESC",
            dir);
    else if (strcmp(q->sort, "title") == 0)
        sb_add(&b, " ORDER BY lower(t.title) %s, t.id %s", dir, dir);
    else
        sb_add(&b, " ORDER BY t.created_at %s, t.id %s", dir, dir);
    int nl = sb_param(&b, q->limit), no = sb_param(&b, q->offset);
    sb_add(&b, " LIMIT $%d::int OFFSET $%d::int", nl, no);

    /* the page's JSON is built row by row into one buffer: never the whole result beside it */
    page pg = {0};
    int rc = api_exec_rows(c->a, conn, b.sql, b.n, b.p, page_row, &pg);
    if (rc == TK_OK && !pg.rows && !(pg.buf = malloc(3)))
        rc = TK_ENOMEM;
    if (rc < 0) {
        free(pg.buf);
        return rc;
    }
    if (!pg.rows)
        pg.buf[pg.len++] = '[';
    pg.buf[pg.len++] = ']';
    pg.buf[pg.len] = '\0';
    c->text = pg.buf;
    c->status = 200;
    c->total = pg.total;
    if (!pg.rows && atol(q->offset) > 0) {
        /* a page past the end: count on its own */
        sqlb cb = {.len = 0, .n = 0};
        sb_add(&cb, "SELECT count(*) FROM tasks t");
        list_where(&cb, q, c->user);
        PGresult *res = api_exec(c->a, conn, cb.sql, cb.n, cb.p);
        if (!api_ok(res)) {
            PQclear(res);
            return TK_ERR;
        }
        c->total = atoll(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return TK_OK;
}

/* ---- create, get, update, delete ---------------------------------------------------- */

static int create_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int rc = api_lock_user(c, conn);
    if (rc < 0)
        return rc;
    const char *p[] = {
        t->title,
        t->has_description ? t->description : NULL,
        t->completed ? "true" : "false",
        t->priority ? t->priority : "medium",
        t->has_due && !t->due_null ? t->due : NULL,
        t->has_reminder && !t->reminder_null ? t->reminder : NULL,
        t->is_recurring ? "true" : "false",
        t->rule,
        t->has_interval && !t->interval_null ? t->interval : NULL,
        c->user,
    };
    PGresult *res = api_exec(c->a, conn,
                             "INSERT INTO tasks (title, description, completed, priority, due_date,"
                             " reminder_at, is_recurring, recurrence_rule, recurrence_interval,"
                             " user_id) VALUES ($1, $2, $3::boolean, $4, $5::timestamp,"
                             " $6::timestamp, $7::boolean, $8, $9::int, $10) RETURNING id::text",
                             10, p);
    if (!api_ok(res)) {
        PQclear(res);
        return TK_ERR;
    }
    char id[24];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (t->tag_ids && attach_tags(c, conn, id, t->tag_ids) < 0)
        return TK_ERR;
    int err;
    json_t *task = load_task(c, conn, id, &err);
    if (!task)
        return TK_ERR;
    json_t *payload = json_pack(
        "{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:o}", "task_id", json_object_get(task, "id"), "title",
        json_object_get(task, "title"), "priority", json_object_get(task, "priority"), "due_date",
        json_object_get(task, "due_date"), "reminder_at", json_object_get(task, "reminder_at"),
        "is_recurring", json_object_get(task, "is_recurring"), "recurrence_rule",
        json_object_get(task, "recurrence_rule"), "tags", tag_names(task));
    rc = task_event(c, conn, "task.created", task, payload);
    if (rc < 0) {
        json_decref(task);
        return rc;
    }
    return api_answer(c, 201, task);
}

static int get_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int err;
    json_t *task = load_task(c, conn, t->id_text, &err);
    if (err)
        return TK_ERR;
    return task ? api_answer(c, 200, task) : api_fail(c, 404, "Task not found");
}

/* Locks the user's task; 1 found (with *completed), 0 not, < 0 error. */
static int lock_task(api_call *c, PGconn *conn, const char *id, int *completed)
{
    const char *p[] = {id, c->user};
    PGresult *res = api_exec(c->a, conn,
                             "SELECT completed FROM tasks WHERE id = $1::int AND user_id = $2"
                             " FOR UPDATE",
                             2, p);
    int rc = api_ok(res) ? PQntuples(res) == 1 : TK_ERR;
    if (rc == 1 && completed)
        *completed = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return rc;
}

static json_t *completion_payload(json_t *task, int completed)
{
    return json_pack("{s:O,s:b,s:s,s:O}", "task_id", json_object_get(task, "id"), "completed",
                     completed, "status_change", completed ? "completed" : "reopened",
                     "completed_at", completed ? json_object_get(task, "updated_at") : json_null());
}

static int update_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int was_completed = 0;
    int found = lock_task(c, conn, t->id_text, &was_completed);
    if (found < 0)
        return found;
    if (!found)
        return api_fail(c, 404, "Task not found");

    sqlb b = {.len = 0, .n = 0};
    json_t *changes = json_array();
    sb_add(&b, "UPDATE tasks SET updated_at = " NOW_UTC);
#define SET(cond, name, cast, value)                                                               \
    if (cond) {                                                                                    \
        sb_add(&b, ", " name " = $%d" cast, sb_param(&b, value));                                  \
        json_array_append_new(changes, json_string(name));                                         \
    }
    SET(t->has_title, "title", "", t->title)
    SET(t->has_description, "description", "", t->description)
    SET(t->has_completed, "completed", "::boolean", t->completed ? "true" : "false")
    SET(t->has_priority, "priority", "", t->priority)
    SET(t->has_due, "due_date", "::timestamp", t->due_null ? NULL : t->due)
    SET(t->has_reminder, "reminder_at", "::timestamp", t->reminder_null ? NULL : t->reminder)
    SET(t->has_recurring, "is_recurring", "::boolean", t->is_recurring ? "true" : "false")
    SET(t->has_rule, "recurrence_rule", "", t->rule)
    SET(t->has_interval, "recurrence_interval", "::int", t->interval_null ? NULL : t->interval)
#undef SET
    if (t->has_reminder)
        sb_add(&b, ", reminder_sent = false");
    int idn = sb_param(&b, t->id_text);
    sb_add(&b, " WHERE id = $%d::int", idn);
    if (run(c, conn, b.sql, b.n, b.p) < 0) {
        json_decref(changes);
        return TK_ERR;
    }
    if (t->has_tags) {
        const char *p[] = {t->id_text};
        if (run(c, conn, "DELETE FROM task_tags WHERE task_id = $1::int", 1, p) < 0 ||
            attach_tags(c, conn, t->id_text, t->tag_ids) < 0) {
            json_decref(changes);
            return TK_ERR;
        }
        json_array_append_new(changes, json_string("tags"));
    }
    int err;
    json_t *task = load_task(c, conn, t->id_text, &err);
    if (!task) {
        json_decref(changes);
        return TK_ERR;
    }
    /* the payload carries the new value of every field the request set */
    json_t *payload = json_pack("{s:O}", "task_id", json_object_get(task, "id")), *name;
    size_t i;
    json_array_foreach(changes, i, name)
    {
        const char *key = json_string_value(name);
        json_object_set_new(payload, key,
                            strcmp(key, "tags") == 0 ? tag_names(task)
                                                     : json_incref(json_object_get(task, key)));
    }
    json_object_set_new(payload, "changes", changes);
    int rc = task_event(c, conn, "task.updated", task, payload);
    if (rc >= 0 && t->has_completed && t->completed != was_completed)
        rc = task_event(c, conn, "task.completed", task, completion_payload(task, t->completed));
    if (rc < 0) {
        json_decref(task);
        return rc;
    }
    return api_answer(c, 200, task);
}

static int delete_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int found = lock_task(c, conn, t->id_text, NULL);
    if (found < 0)
        return found;
    if (!found)
        return api_fail(c, 404, "Task not found");
    const char *p[] = {t->id_text};
    /* the instances a recurring task created outlive it */
    if (run(c, conn, "UPDATE tasks SET parent_task_id = NULL WHERE parent_task_id = $1::int", 1,
            p) < 0 ||
        run(c, conn, "DELETE FROM tasks WHERE id = $1::int", 1, p) < 0)
        return TK_ERR;
    char subject[24];
    snprintf(subject, sizeof(subject), "%s", t->id_text);
    int rc = api_event(c->a, conn, c->a->task_topic, "task.deleted", c->user, subject,
                       json_pack("{s:I}", "task_id", (json_int_t)atoll(t->id_text)));
    if (rc < 0)
        return rc;
    return api_answer(c, 200, json_pack("{s:s}", "message", "Task deleted successfully"));
}

/* ---- completion and recurrence ------------------------------------------------------------ */

static int complete_fn(void *conn, void *ud)
{
    api_call *c = ud;
    task_in *t = c->arg;
    int was_completed = 0;
    int found = lock_task(c, conn, t->id_text, &was_completed);
    if (found < 0)
        return found;
    if (!found)
        return api_fail(c, 404, "Task not found");
    const char *p[] = {t->id_text, t->completed ? "true" : "false"};
    if (t->completed != was_completed &&
        run(c, conn,
            "UPDATE tasks SET completed = $2::boolean, updated_at = " NOW_UTC " WHERE id = $1::int",
            2, p) < 0)
        return TK_ERR;
    int err;
    json_t *task = load_task(c, conn, t->id_text, &err);
    if (!task)
        return TK_ERR;
    int rc = TK_OK;
    if (t->completed != was_completed)
        rc = task_event(c, conn, "task.completed", task, completion_payload(task, t->completed));
    int recurs = json_is_true(json_object_get(task, "is_recurring")) &&
                 json_is_string(json_object_get(task, "recurrence_rule"));
    if (rc < 0 || !recurs || !t->completed) {
        if (rc < 0) {
            json_decref(task);
            return rc;
        }
        return api_answer(c, 200, task);
    }
    json_t *next = json_null();
    /* one next instance per task, even across reopen and complete again */
    const char *cp[] = {t->id_text};
    PGresult *kids =
        api_exec(c->a, conn, "SELECT 1 FROM tasks WHERE parent_task_id = $1::int LIMIT 1", 1, cp);
    int has_next = api_ok(kids) ? PQntuples(kids) > 0 : -1;
    PQclear(kids);
    if (has_next < 0) {
        json_decref(task);
        return TK_ERR;
    }
    PGresult *res = NULL;
    if (!was_completed && !has_next) {
        /* the next instance; PostgreSQL's month arithmetic clamps to the month's end. A next
         * due date past 9999-12-31, which the API can neither accept nor write, ends the
         * recurrence: the completion stands, with no next task. */
        res =
            api_exec(c->a, conn,
                     "INSERT INTO tasks (title, description, priority, due_date, is_recurring,"
                     " recurrence_rule, recurrence_interval, parent_task_id, user_id)"
                     " SELECT title, description, priority, n.due, true, recurrence_rule,"
                     " recurrence_interval, id, user_id FROM tasks,"
                     " LATERAL (SELECT coalesce(due_date, " NOW_UTC ") +"
                     " CASE recurrence_rule WHEN 'daily' THEN interval '1 day'"
                     " WHEN 'weekly' THEN interval '7 days' WHEN 'monthly' THEN interval '1 month'"
                     " ELSE make_interval(days => coalesce(recurrence_interval, 1)) END AS due) n"
                     " WHERE id = $1::int AND n.due < '10000-01-01' RETURNING id::text",
                     1, p);
        if (!api_ok(res)) {
            PQclear(res);
            json_decref(task);
            return TK_ERR;
        }
    }
    if (res && PQntuples(res) == 1) {
        char nid[24];
        snprintf(nid, sizeof(nid), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        const char *tp[] = {nid, t->id_text};
        if (run(c, conn,
                "INSERT INTO task_tags (task_id, tag_id) SELECT $1::int, tag_id FROM task_tags"
                " WHERE task_id = $2::int",
                2, tp) < 0 ||
            !(next = load_task(c, conn, nid, &err))) {
            json_decref(task);
            return TK_ERR;
        }
        rc = task_event(c, conn, "task.recurred", task,
                        json_pack("{s:O,s:O,s:O}", "original_task_id", json_object_get(task, "id"),
                                  "new_task_id", json_object_get(next, "id"), "next_due_date",
                                  json_object_get(next, "due_date")));
        if (rc < 0) {
            json_decref(task);
            json_decref(next);
            return rc;
        }
    } else {
        PQclear(res);
    }
    return api_answer(c, 200, json_pack("{s:o,s:o}", "completed_task", task, "next_task", next));
}

/* ---- reminders ------------------------------------------------------------------------------ */

/*
 * PATCH .../reminder (sent = 0: set or clear reminder_at, sent flag reset) and POST
 * .../reminder/sent (sent = 1): the change, then task.updated naming it.
 */
static int reminder_change(api_call *c, PGconn *conn, int sent)
{
    task_in *t = c->arg;
    int found = lock_task(c, conn, t->id_text, NULL);
    if (found < 0)
        return found;
    if (!found)
        return api_fail(c, 404, "Task not found");
    const char *p[] = {t->id_text, t->reminder_null ? NULL : t->reminder};
    if (run(c, conn,
            sent ? "UPDATE tasks SET reminder_sent = true, updated_at = " NOW_UTC
                   " WHERE id = $1::int"
                 : "UPDATE tasks SET reminder_at = $2::timestamp, reminder_sent = false,"
                   " updated_at = " NOW_UTC " WHERE id = $1::int",
            sent ? 1 : 2, p) < 0)
        return TK_ERR;
    int err;
    json_t *task = load_task(c, conn, t->id_text, &err);
    if (!task)
        return TK_ERR;
    json_t *payload =
        sent ? json_pack("{s:O,s:b,s:[s]}", "task_id", json_object_get(task, "id"), "reminder_sent",
                         1, "changes", "reminder_sent")
             : json_pack("{s:O,s:O,s:O,s:[s]}", "task_id", json_object_get(task, "id"), "title",
                         json_object_get(task, "title"), "reminder_at",
                         json_object_get(task, "reminder_at"), "changes", "reminder_at");
    int rc = task_event(c, conn, "task.updated", task, payload);
    if (rc < 0) {
        json_decref(task);
        return rc;
    }
    return api_answer(c, 200, task);
}

static int reminder_fn(void *conn, void *ud) { return reminder_change(ud, conn, 0); }
static int reminder_sent_fn(void *conn, void *ud) { return reminder_change(ud, conn, 1); }

static int reminders_fn(void *conn, void *ud)
{
    api_call *c = ud;
    const char *before = c->arg;
    const char *p[] = {c->user, before};
    static const char sql[] =
        "SELECT coalesce(json_agg(json_build_object('id', t.id, 'title', t.title,"
        " 'due_date', " API_TS("t.due_date") ", 'reminder_at', " API_TS(
            "t.reminder_at") ")"
                             " ORDER BY t.reminder_at, t.id), '[]')::text FROM tasks t"
                             " WHERE t.user_id = $1 AND t.reminder_at IS NOT NULL"
                             " AND t.reminder_at <= coalesce($2::timestamp, " NOW_UTC ")"
                             " AND NOT t.reminder_sent AND NOT t.completed";
    PGresult *res = api_exec(c->a, conn, sql, 2, p);
    int rc = TK_ERR;
    if (api_ok(res)) {
        c->status = 200;
        c->text = strdup(PQgetvalue(res, 0, 0));
        rc = c->text ? TK_OK : TK_ENOMEM;
    }
    PQclear(res);
    return rc;
}

/* ---- the assistant's tools: the routes' own code, called without HTTP ------------------- */

/* The first 422 entry's message, for a tool error the model can act on. */
static json_t *tool_validation_error(api_errors *e)
{
    json_t *first = json_array_get(e->list, 0);
    json_t *loc = json_object_get(first, "loc");
    const char *field = json_string_value(json_array_get(loc, json_array_size(loc) - 1));
    char msg[300];
    snprintf(msg, sizeof(msg), "%s%s%s", field ? field : "", field ? ": " : "",
             json_string_value(json_object_get(first, "msg")));
    return json_pack("{s:s}", "error", msg);
}

/* Runs a task route's transaction; the answer (or {"error"}) becomes the tool's result. */
static json_t *tool_run(api_call *c, tk_pg_fn fn, int tx, const char *task_id)
{
    int rc = api_call_run(c, tx, fn);
    json_t *out;
    if (c->status == 404) {
        char msg[80];
        snprintf(msg, sizeof(msg), "Task with ID %s not found", task_id ? task_id : "?");
        out = json_pack("{s:s}", "error", msg);
    } else if (rc >= 0 && c->status >= 200 && c->status < 300 && c->body) {
        out = json_incref(c->body);
    } else if (rc >= 0 && c->status == 200 && c->text) {
        out = json_loads(c->text, 0, NULL);
    } else if (c->status && c->body) {
        json_t *d = json_object_get(c->body, "detail");
        out = json_pack("{s:s}", "error", json_is_string(d) ? json_string_value(d) : "failed");
    } else {
        out = json_pack("{s:s}", "error",
                        rc == TK_EUNAVAILABLE || rc == TK_ETIMEDOUT ? "the database is unavailable"
                                                                    : "internal error");
    }
    json_decref(c->body);
    free(c->text);
    c->body = NULL;
    c->text = NULL;
    return out;
}

/* A task as the assistant sees it: what it needs to talk about it. */
static json_t *task_brief(json_t *task)
{
    return json_pack(
        "{s:O,s:O,s:O,s:O,s:O}", "id", json_object_get(task, "id"), "title",
        json_object_get(task, "title"), "completed", json_object_get(task, "completed"), "priority",
        json_object_get(task, "priority"), "due_date", json_object_get(task, "due_date"));
}

/* The task_id argument as text, or NULL (an error result set). */
static const char *tool_task_id(json_t *args, char out[24], json_t **result)
{
    json_t *v = json_object_get(args, "task_id");
    if (json_is_string(v)) { /* models sometimes quote numbers */
        char *end;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (*json_string_value(v) && !*end)
            v = NULL, snprintf(out, 24, "%lld", n);
    } else if (json_is_integer(v)) {
        snprintf(out, 24, "%lld", (long long)json_integer_value(v));
        v = NULL;
    } else {
        *result = json_pack("{s:s}", "error", "task_id (an integer) is required");
        return NULL;
    }
    if (v) {
        *result = json_pack("{s:s}", "error", "task_id must be an integer");
        return NULL;
    }
    api_errors e;
    api_errors_init(&e);
    api_path_id(&e, out, "task_id"); /* past PostgreSQL's integer range: no task has it */
    int bad = api_errors_any(&e);
    api_errors_free(&e);
    if (bad) {
        char msg[80];
        snprintf(msg, sizeof(msg), "Task with ID %s not found", out);
        *result = json_pack("{s:s}", "error", msg);
        return NULL;
    }
    return out;
}

json_t *api_task_tool(api *a, const char *user, const char *tool, json_t *args)
{
    api_call c;
    task_in t;
    memset(&t, 0, sizeof(t));
    api_call_init(&c, a, &t);
    snprintf(c.user, sizeof(c.user), "%s", user);
    json_t *result = NULL;
    api_errors e;
    api_errors_init(&e);
    if (!json_is_object(args)) {
        result = json_pack("{s:s}", "error", "arguments must be a JSON object");
    } else if (strcmp(tool, "add_task") == 0) {
        read_task(a, &e, args, &t, 1);
        if (api_errors_any(&e))
            result = tool_validation_error(&e);
        else {
            json_t *task = tool_run(&c, create_fn, 1, NULL);
            result = json_object_get(task, "error") ? json_incref(task) : task_brief(task);
            json_decref(task);
        }
    } else if (strcmp(tool, "list_tasks") == 0) {
        list_in q;
        memset(&q, 0, sizeof(q));
        static const char *const statuses[] = {"all", "pending", "completed", NULL};
        const char *status = json_string_value(json_object_get(args, "status"));
        q.status = status ? status : "all";
        q.sort = "created_at";
        q.order = "desc";
        snprintf(q.limit, sizeof(q.limit), "100");
        snprintf(q.offset, sizeof(q.offset), "0");
        if (!one_of(q.status, statuses)) {
            result = json_pack("{s:s}", "error", "status must be all, pending or completed");
        } else {
            c.arg = &q;
            json_t *list = tool_run(&c, list_fn, 0, NULL);
            if (json_is_array(list)) {
                json_t *brief = json_array(), *task;
                size_t i;
                json_array_foreach(list, i, task) json_array_append_new(brief, task_brief(task));
                result = json_pack("{s:o,s:I}", "tasks", brief, "count",
                                   (json_int_t)json_array_size(brief));
                json_decref(list);
            } else {
                result = list;
            }
        }
    } else if (strcmp(tool, "complete_task") == 0 || strcmp(tool, "delete_task") == 0 ||
               strcmp(tool, "update_task") == 0) {
        if (tool_task_id(args, t.id_text, &result)) {
            if (tool[0] == 'c') {
                t.completed = 1;
                json_t *r = tool_run(&c, complete_fn, 1, t.id_text);
                json_t *done = json_object_get(r, "completed_task");
                result = json_object_get(r, "error") ? json_incref(r)
                         : done ? json_pack("{s:o,s:O}", "task", task_brief(done), "next_task",
                                            json_object_get(r, "next_task"))
                                : json_pack("{s:o}", "task", task_brief(r));
                json_decref(r);
            } else if (tool[0] == 'd') {
                result = tool_run(&c, delete_fn, 1, t.id_text);
            } else {
                /* only what the tool declares: title and description */
                json_t *fields = json_object();
                if (json_object_get(args, "title"))
                    json_object_set(fields, "title", json_object_get(args, "title"));
                if (json_object_get(args, "description"))
                    json_object_set(fields, "description", json_object_get(args, "description"));
                read_task(a, &e, fields, &t, 0);
                json_decref(fields);
                if (api_errors_any(&e)) {
                    result = tool_validation_error(&e);
                } else {
                    json_t *r = tool_run(&c, update_fn, 1, t.id_text);
                    result = json_object_get(r, "error") ? json_incref(r) : task_brief(r);
                    json_decref(r);
                }
            }
        }
    } else {
        char msg[120];
        snprintf(msg, sizeof(msg), "unknown tool %.80s", tool);
        result = json_pack("{s:s}", "error", msg);
    }
    api_errors_free(&e);
    free(t.tag_ids);
    return result ? result : json_pack("{s:s}", "error", "internal error");
}

/* ---- routes -----------------------------------------------------------------------------------
 */

enum body_kind { NO_BODY, CREATE, UPDATE, COMPLETE, REMINDER };

static int task_route(api *a, const tk_http_request *req, tk_http_response *resp, int with_id,
                      enum body_kind kind, tk_pg_fn fn, int tx)
{
    api_call c;
    task_in t;
    memset(&t, 0, sizeof(t));
    api_call_init(&c, a, &t);
    if (!api_authenticate(a, req, resp, c.user, 0))
        return TK_OK;
    api_errors e;
    api_errors_init(&e);
    if (with_id) {
        int64_t id = api_path_id(&e, a->host->http_param(req, "task_id"), "task_id");
        snprintf(t.id_text, sizeof(t.id_text), "%lld", (long long)id);
    }
    json_t *body = NULL;
    if (kind != NO_BODY && !api_errors_any(&e)) {
        int sent;
        body = api_body_object(a, req, resp, &sent);
        if (!body) {
            api_errors_free(&e);
            return sent ? TK_OK : TK_ERR;
        }
        if (kind == CREATE || kind == UPDATE) {
            read_task(a, &e, body, &t, kind == CREATE);
        } else if (kind == COMPLETE) {
            t.completed = api_field_bool(&e, body, "completed", 1, NULL);
        } else {
            if (!json_object_get(body, "reminder_at"))
                api_errors_add(&e, "body", "reminder_at", "Field required", "missing");
            else
                read_time(&e, body, "reminder_at", t.reminder, &t.has_reminder, &t.reminder_null);
        }
    }
    int rc;
    if (api_errors_any(&e)) {
        rc = api_errors_send(a, resp, &e);
    } else {
        api_errors_free(&e);
        rc = api_run(&c, tx, fn, resp);
    }
    free(t.tag_ids);
    json_decref(body);
    return rc;
}

static int route_list(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    api_call c;
    list_in q;
    memset(&q, 0, sizeof(q));
    api_call_init(&c, a, &q);
    if (!api_authenticate(a, req, resp, c.user, 0))
        return TK_OK;
    api_errors e;
    api_errors_init(&e);
    read_list_query(a, req, &e, &q);
    int rc = api_errors_any(&e) ? api_errors_send(a, resp, &e)
                                : (api_errors_free(&e), api_run(&c, 0, list_fn, resp));
    free(q.tags);
    return rc;
}

static int route_reminders(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    api_call c;
    char before[32];
    api_call_init(&c, a, NULL);
    if (!api_authenticate(a, req, resp, c.user, 0))
        return TK_OK;
    api_errors e;
    api_errors_init(&e);
    const char *v = api_query(a, req, &e, "before");
    if (v && api_parse_time(v, before) < 0)
        api_errors_add(&e, "query", "before", "Input should be a valid datetime",
                       "datetime_parsing");
    if (api_errors_any(&e))
        return api_errors_send(a, resp, &e);
    api_errors_free(&e);
    c.arg = v ? before : NULL;
    return api_run(&c, 0, reminders_fn, resp);
}

static int route_create(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 0, CREATE, create_fn, 1);
}
static int route_get(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, NO_BODY, get_fn, 0);
}
static int route_update(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, UPDATE, update_fn, 1);
}
static int route_delete(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, NO_BODY, delete_fn, 1);
}
static int route_complete(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, COMPLETE, complete_fn, 1);
}
static int route_reminder(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, REMINDER, reminder_fn, 1);
}
static int route_reminder_sent(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    return task_route(ud, req, resp, 1, NO_BODY, reminder_sent_fn, 1);
}

int api_task_routes(api *a)
{
    static const struct {
        const char *method, *pattern;
        tk_http_handler fn;
    } routes[] = {
        {"GET", "/api/tasks", route_list},
        {"POST", "/api/tasks", route_create},
        {"GET", "/api/tasks/reminders", route_reminders},
        {"GET", "/api/tasks/{task_id}", route_get},
        {"PUT", "/api/tasks/{task_id}", route_update},
        {"DELETE", "/api/tasks/{task_id}", route_delete},
        {"PATCH", "/api/tasks/{task_id}/complete", route_complete},
        {"PATCH", "/api/tasks/{task_id}/reminder", route_reminder},
        {"POST", "/api/tasks/{task_id}/reminder/sent", route_reminder_sent},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = a->host->http_route(a->inst, routes[i].method, routes[i].pattern, routes[i].fn, a);
        if (rc < 0)
            return rc;
    }
    return TK_OK;
}
