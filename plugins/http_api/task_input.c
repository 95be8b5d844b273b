/* Reading the task routes' input: a task body and the list's query arguments (422 entries). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks.h"

const char *const task_priorities[] = {"low", "medium", "high", "urgent", NULL};
const char *const task_rules[] = {"daily", "weekly", "monthly", "custom", NULL};

int task_one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(v, *set) == 0)
            return 1;
    return 0;
}

/* pydantic's wording: "Input should be 'a', 'b' or 'c'". */
void task_enum_error(api_errors *e, const char *where, const char *field, const char *const *set)
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
    kit_errors_add(e, where, field, msg, "enum");
}

/* ---- reading a task body ------------------------------------------------------ */

int task_read_time(api_errors *e, json_t *body, const char *field, char out[32], int *present,
                   int *is_null)
{
    json_t *v = json_object_get(body, field);
    *present = v != NULL;
    *is_null = v && json_is_null(v);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        kit_errors_add(e, "body", field, "Input should be a valid datetime", "datetime_type");
        return -1;
    }
    if (api_parse_time(json_string_value(v), out) < 0) {
        kit_errors_add(e, "body", field, "Input should be a valid datetime", "datetime_parsing");
        return -1;
    }
    return 0;
}

/*
 * An array of at most max (0: any number of) integers as a PostgreSQL array literal; NULL
 * (422 recorded) when not.
 */
char *task_read_ids(api_errors *e, json_t *v, const char *field, size_t max)
{
    if (json_is_null(v))
        return strdup("{}");
    if (!json_is_array(v)) {
        kit_errors_add(e, "body", field, "Input should be a valid list", "list_type");
        return NULL;
    }
    size_t n = json_array_size(v), i;
    if (max && n > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "List should have at most %zu items after validation, not %zu",
                 max, n);
        kit_errors_add(e, "body", field, msg, "too_long");
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
            kit_errors_add(e, "body", field, "Input should be a valid integer", "int_type");
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
void task_read_body(api *a, api_errors *e, json_t *body, task_in *t, int create)
{
    int is_null = 0;
    t->title = api_field_string(e, body, "title", create, 1, 255, &t->has_title, &is_null);
    if (!create && is_null)
        kit_errors_add(e, "body", "title", "Input should be a valid string", "string_type");
    t->has_title = t->title != NULL;
    t->description = api_field_string(e, body, "description", 0, 0, a->max_description,
                                      &t->has_description, &is_null);
    if (t->has_description && !is_null && !t->description)
        t->has_description = 0; /* wrong type, recorded */
    t->completed = api_field_bool(e, body, "completed", 0, &t->has_completed);
    t->priority = api_field_string(e, body, "priority", 0, 0, 0, &t->has_priority, &is_null);
    if (is_null)
        kit_errors_add(e, "body", "priority", "Input should be a valid string", "string_type");
    if (t->priority && !task_one_of(t->priority, task_priorities)) {
        task_enum_error(e, "body", "priority", task_priorities);
        t->priority = NULL;
    }
    t->has_priority = t->priority != NULL;
    task_read_time(e, body, "due_date", t->due, &t->has_due, &t->due_null);
    task_read_time(e, body, "reminder_at", t->reminder, &t->has_reminder, &t->reminder_null);
    t->is_recurring = api_field_bool(e, body, "is_recurring", 0, &t->has_recurring);
    t->rule = api_field_string(e, body, "recurrence_rule", 0, 0, 0, &t->has_rule, &is_null);
    if (t->rule && !task_one_of(t->rule, task_rules)) {
        task_enum_error(e, "body", "recurrence_rule", task_rules);
        t->rule = NULL, t->has_rule = 0;
    }
    json_t *v = json_object_get(body, "recurrence_interval");
    if (v) {
        t->has_interval = 1;
        t->interval_null = json_is_null(v);
        if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 36500)
            snprintf(t->interval, sizeof(t->interval), "%lld", (long long)json_integer_value(v));
        else if (json_is_integer(v))
            kit_errors_add(e, "body", "recurrence_interval",
                           json_integer_value(v) < 1
                               ? "Input should be greater than or equal to 1"
                               : "Input should be less than or equal to 36500",
                           json_integer_value(v) < 1 ? "greater_than_equal" : "less_than_equal");
        else if (!t->interval_null)
            kit_errors_add(e, "body", "recurrence_interval", "Input should be a valid integer",
                           "int_type");
    }
    v = json_object_get(body, "tag_ids");
    if (v) {
        t->tag_ids = task_read_ids(e, v, "tag_ids", API_MAX_TASK_TAGS);
        t->has_tags = t->tag_ids != NULL;
    }
}

/* ---- the list's query ------------------------------------------------------------ */

/* ?priority=: a CSV of known names, kept as a set (so the array literal is short and safe). */
static void read_priorities(api_errors *e, const char *v, char prio[32])
{
    unsigned set = 0;
    char *copy = strdup(v), *save = NULL, *tok;
    for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        unsigned bit = 0;
        for (unsigned i = 0; task_priorities[i] && !bit; i++)
            if (strcmp(tok, task_priorities[i]) == 0)
                bit = 1u << i;
        if (!bit) {
            task_enum_error(e, "query", "priority", task_priorities);
            break;
        }
        set |= bit;
    }
    free(copy);
    /* at most "{low,medium,high,urgent}": 25 bytes */
    size_t len = 0;
    prio[len++] = '{';
    for (unsigned i = 0; task_priorities[i]; i++) {
        if (!(set & (1u << i)))
            continue;
        if (len > 1)
            prio[len++] = ',';
        memcpy(prio + len, task_priorities[i], strlen(task_priorities[i]));
        len += strlen(task_priorities[i]);
    }
    prio[len++] = '}';
    prio[len] = '\0';
}

/* ?tags=: a CSV of ids as a PostgreSQL array literal (malloc'd), or NULL with a 422 entry. */
static char *read_tag_list(api_errors *e, const char *v)
{
    json_t *ids = json_array();
    char *copy = strdup(v), *save = NULL, *tok;
    for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long long id = strtoll(tok, &end, 10);
        while (*end == ' ')
            end++;
        if (end == tok || *end || id < -2147483647 || id > 2147483647) {
            kit_errors_add(e, "query", "tags", "Input should be a comma-separated list of integers",
                           "int_parsing");
            break;
        }
        json_array_append_new(ids, json_integer(id));
    }
    api_errors scratch;
    kit_errors_init(&scratch);
    char *out = task_read_ids(&scratch, ids, "tags", 0);
    kit_errors_free(&scratch);
    json_decref(ids);
    free(copy);
    return out;
}

void task_read_list_query(api *a, const tk_http_request *req, api_errors *e, list_in *q)
{
    static const char *const statuses[] = {"all", "pending", "completed", NULL};
    static const char *const sorts[] = {"created_at", "due_date", "priority", "title", NULL};
    static const char *const orders[] = {"asc", "desc", NULL};
    const char *v;
    q->search = kit_query(a->host, req, e, "search");
    if (q->search && !*q->search)
        q->search = NULL;
    q->status = (v = kit_query(a->host, req, e, "status")) ? v : "all";
    if (!task_one_of(q->status, statuses))
        task_enum_error(e, "query", "status", statuses);
    q->sort = (v = kit_query(a->host, req, e, "sort_by")) ? v : "created_at";
    if (!task_one_of(q->sort, sorts))
        task_enum_error(e, "query", "sort_by", sorts);
    q->order = (v = kit_query(a->host, req, e, "order")) ? v : "desc";
    if (!task_one_of(q->order, orders))
        task_enum_error(e, "query", "order", orders);
    if ((v = kit_query(a->host, req, e, "priority")) && *v)
        read_priorities(e, v, q->prio);
    if ((v = kit_query(a->host, req, e, "tags")) && *v)
        q->tags = read_tag_list(e, v);
    q->has_before = api_query_time(a, req, e, "due_before", q->before) != TK_ENOTFOUND;
    q->has_after = api_query_time(a, req, e, "due_after", q->after) != TK_ENOTFOUND;
    q->overdue = kit_query_bool(a->host, req, e, "overdue", 0);
    api_query_int(a, req, e, "limit", 1, 1000, 500, q->limit);
    api_query_int(a, req, e, "offset", 0, 2147483647, 0, q->offset);
}
