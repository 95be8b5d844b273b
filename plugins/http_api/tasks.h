/*
 * The task routes' shared parts (tasks.c and task_*.c): the task's JSON, the input they read,
 * the steps they share, and their database work (tk_pg_fn, ud the api_call).
 */
#ifndef HTTP_API_TASKS_H
#define HTTP_API_TASKS_H

#include "api.h"
#include "sqlb.h"

// clang-format off
/* One task row (alias t) as the API's JSON, tags included. */
#define TASK_JSON(t)                                                                               \
    "json_build_object("                                                                           \
    "'id', " t ".id, "                                                                             \
    "'title', " t ".title, "                                                                       \
    "'description', " t ".description, "                                                           \
    "'completed', " t ".completed, "                                                               \
    "'priority', " t ".priority, "                                                                 \
    "'due_date', " API_TS(t ".due_date") ", "                                                      \
    "'reminder_at', " API_TS(t ".reminder_at") ", "                                                \
    "'reminder_sent', " t ".reminder_sent, "                                                       \
    "'is_recurring', " t ".is_recurring, "                                                         \
    "'recurrence_rule', " t ".recurrence_rule, "                                                   \
    "'recurrence_interval', " t ".recurrence_interval, "                                           \
    "'parent_task_id', " t ".parent_task_id, "                                                     \
    "'user_id', " t ".user_id, "                                                                   \
    "'created_at', " API_TS(t ".created_at") ", "                                                  \
    "'updated_at', " API_TS(t ".updated_at") ", "                                                  \
    "'tags', (SELECT coalesce(json_agg(" API_TAG_JSON("g") " ORDER BY lower(g.name), g.id), '[]')" \
    " FROM task_tags tt JOIN tags g ON g.id = tt.tag_id WHERE tt.task_id = " t ".id))"
// clang-format on

#define NOW_UTC "(now() AT TIME ZONE 'utc')"

/* ---- input (task_input.c) ---- */

extern const char *const task_priorities[]; /* NULL-terminated */
extern const char *const task_rules[];

int task_one_of(const char *v, const char *const *set);
/* pydantic's wording: "Input should be 'a', 'b' or 'c'". */
void task_enum_error(api_errors *e, const char *where, const char *field, const char *const *set);

/* A task body as read (create, update, completion, reminder) and the task's id. */
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

/* A date-time field of a body into out (PostgreSQL's form); -1 with a 422 entry when invalid. */
int task_read_time(api_errors *e, json_t *body, const char *field, char out[32], int *present,
                   int *is_null);
/*
 * An array of at most max (0: any number of) integers as a PostgreSQL array literal; NULL
 * (422 recorded) when not.
 */
char *task_read_ids(api_errors *e, json_t *v, const char *field, size_t max);
/* Reads a task body; `create` makes title required. */
void task_read_body(api *a, api_errors *e, json_t *body, task_in *t, int create);

/* GET /api/tasks's query. */
typedef struct list_in {
    const char *search, *status, *sort, *order;
    char prio[32]; /* "{low,high}" or "" */
    char *tags;    /* "{1,2}" or NULL */
    char before[32], after[32];
    int has_before, has_after, overdue;
    char limit[16], offset[16];
} list_in;

void task_read_list_query(api *a, const tk_http_request *req, api_errors *e, list_in *q);

/* ---- shared steps (task_write.c) ---- */

/* The task as JSON (parsed), or NULL when it is not the user's; *err on failure. */
json_t *task_load(api_call *c, PGconn *conn, const char *id, int *err);
/* TK_OK when b was built whole (sqlb_check); else logs what overflowed and TK_ERR (500). */
int task_sqlb_check(api_call *c, const sqlb *b, const char *what);
/* Runs a statement whose result is not needed; TK_OK or TK_ERR. */
int task_exec(api_call *c, PGconn *conn, const char *sql, int n, const char *const *p);
/* Attaches the user's tags among ids (others are ignored) to a task. */
int task_attach_tags(api_call *c, PGconn *conn, const char *task_id, const char *ids);
/* Appends a task-events event about task (its id is the subject) with payload (stolen). */
int task_event(api_call *c, PGconn *conn, const char *type, json_t *task, json_t *payload);
/* The names of the task's tags, a new array. */
json_t *task_tag_names(json_t *task);
/*
 * Locks the user's task (FOR UPDATE): TK_OK with *completed (may be NULL); TK_ENOTFOUND with the
 * 404 answer set when it is not the user's; TK_ERR when the statement failed.
 */
int task_lock(api_call *c, PGconn *conn, const char *id, int *completed);
/* task.completed's payload. */
json_t *task_completion_payload(json_t *task, int completed);

/* ---- database work: tk_pg_fn, ud the api_call whose arg is a task_in (list: list_in) ---- */

int task_list_fn(void *conn, void *ud);          /* task_list.c */
int task_create_fn(void *conn, void *ud);        /* task_write.c */
int task_get_fn(void *conn, void *ud);           /* task_write.c */
int task_update_fn(void *conn, void *ud);        /* task_write.c */
int task_delete_fn(void *conn, void *ud);        /* task_write.c */
int task_complete_fn(void *conn, void *ud);      /* task_recur.c */
int task_reminder_fn(void *conn, void *ud);      /* task_reminders.c */
int task_reminder_sent_fn(void *conn, void *ud); /* task_reminders.c */
int task_reminders_fn(void *conn, void *ud);     /* task_reminders.c: arg is "before" or NULL */

#endif
