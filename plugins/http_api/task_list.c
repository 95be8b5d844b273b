/* GET /api/tasks: filters, sorting and pages done in SQL; the page's JSON built row by row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks.h"

/* The WHERE clause of a list query. */
static void list_where(sqlb *b, const list_in *q, const char *user)
{
    sqlb_add(b, " WHERE t.user_id = $%d", sqlb_param(b, user));
    if (q->search) {
        int n = sqlb_param(b, q->search);
        sqlb_add(b,
                 " AND (strpos(lower(t.title), lower($%d)) > 0"
                 " OR strpos(lower(coalesce(t.description, '')), lower($%d)) > 0)",
                 n, n);
    }
    if (strcmp(q->status, "pending") == 0)
        sqlb_add(b, " AND NOT t.completed");
    else if (strcmp(q->status, "completed") == 0)
        sqlb_add(b, " AND t.completed");
    if (q->prio[0])
        sqlb_add(b, " AND t.priority = ANY($%d::text[])", sqlb_param(b, q->prio));
    if (q->tags)
        sqlb_add(b,
                 " AND EXISTS (SELECT 1 FROM task_tags tt WHERE tt.task_id = t.id"
                 " AND tt.tag_id = ANY($%d::int[]))",
                 sqlb_param(b, q->tags));
    if (q->has_before)
        sqlb_add(b, " AND t.due_date <= $%d::timestamp", sqlb_param(b, q->before));
    if (q->has_after)
        sqlb_add(b, " AND t.due_date >= $%d::timestamp", sqlb_param(b, q->after));
    if (q->overdue)
        sqlb_add(b, " AND t.due_date < " NOW_UTC " AND NOT t.completed");
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

int task_list_fn(void *conn, void *ud)
{
    api_call *c = ud;
    const list_in *q = c->arg;
    sqlb b = {0};
    sqlb_add(&b, "SELECT count(*) OVER (), " TASK_JSON("t") "::text FROM tasks t");
    list_where(&b, q, c->user);
    const char *dir = strcmp(q->order, "asc") == 0 ? "ASC" : "DESC";
    if (strcmp(q->sort, "due_date") == 0)
        sqlb_add(&b, " ORDER BY t.due_date %s NULLS LAST, t.id %s", dir, dir);
    else if (strcmp(q->sort, "priority") == 0)
        sqlb_add(
            &b,
            " ORDER BY CASE t.priority WHEN 'urgent' THEN 4 WHEN 'high' THEN 3"
            " WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END %s, t.created_at DESC, t.id DESC",
            dir);
    else if (strcmp(q->sort, "title") == 0)
        sqlb_add(&b, " ORDER BY lower(t.title) %s, t.id %s", dir, dir);
    else
        sqlb_add(&b, " ORDER BY t.created_at %s, t.id %s", dir, dir);
    int nl = sqlb_param(&b, q->limit), no = sqlb_param(&b, q->offset);
    sqlb_add(&b, " LIMIT $%d::int OFFSET $%d::int", nl, no);

    if (task_sqlb_check(c, &b, "task list") < 0)
        return TK_ERR;

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
        sqlb cb = {0};
        sqlb_add(&cb, "SELECT count(*) FROM tasks t");
        list_where(&cb, q, c->user);
        if (task_sqlb_check(c, &cb, "task count") < 0)
            return TK_ERR;
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
