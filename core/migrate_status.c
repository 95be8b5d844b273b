/* `taskorad migrate --status` and `--dry-run`: what migrate would do, changing nothing. */
#include "migrate.h"

#include "migrate_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    PGconn *c;
    FILE *out;
    int dry_run;
    int have_table; /* taskora_migrations exists; without it every step is pending */
    tk_migrate_summary *sum;
    const char **seen; /* the components visited, to name the database's others */
    size_t nseen, capseen;
} status_ctx;

static int remember(status_ctx *s, const char *component)
{
    if (s->nseen == s->capseen) {
        size_t cap = s->capseen ? 2 * s->capseen : 16;
        const char **p = realloc(s->seen, cap * sizeof(*p));
        if (!p)
            return TK_ENOMEM;
        s->seen = p;
        s->capseen = cap;
    }
    s->seen[s->nseen++] = component;
    return 0;
}

/* Prints the SQL of a step, each of its lines indented. */
static void print_sql(FILE *out, const char *sql)
{
    while (*sql) {
        const char *nl = strchr(sql, '\n');
        size_t n = nl ? (size_t)(nl - sql) : strlen(sql);
        fprintf(out, "    %.*s\n", (int)n, sql);
        sql += n + (nl ? 1 : 0);
    }
}

/* 1 when the applied step's checksum is this build's text's, 0 when not, < 0 on failure. */
static int same_checksum(PGconn *c, const char *sql, const char *checksum, char *err, size_t errlen)
{
    const char *p[2] = {sql, checksum};
    PGresult *r = PQexecParams(c, "SELECT md5($1) = $2", 2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "checking a checksum: %s", tk_migrate_error(c, r));
        PQclear(r);
        return TK_ERR;
    }
    int same = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return same;
}

/* The applied steps of a component (step, checksum, applied_at in UTC), or NULL on failure. */
static PGresult *applied_steps(status_ctx *s, const char *component, char *err, size_t errlen)
{
    const char *params[1] = {component};
    PGresult *r = PQexecParams(s->c,
                               "SELECT step, checksum,"
                               " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
                               " FROM taskora_migrations WHERE component = $1 ORDER BY step",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: reading applied steps: %s", component,
                 tk_migrate_error(s->c, r));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Prints a step migrate would refuse: in the listing under its component, else on its own. */
static void flag(status_ctx *s, const char *component, int step, const char *what, const char *when,
                 const char *why)
{
    if (s->dry_run)
        fprintf(s->out, "%s step %d: %s, applied %s UTC; %s\n", component, step, what, when, why);
    else
        fprintf(s->out, "  step %d  %s  applied %s UTC; %s\n", step, what, when, why);
}

/* Lists one component's steps (a tk_migrate_visit_fn); the number pending, or < 0. */
static int status_component(void *arg, const char *component, const char *const *steps, char *err,
                            size_t errlen)
{
    status_ctx *s = arg;
    if (remember(s, component))
        return TK_ENOMEM;
    PGresult *r = s->have_table ? applied_steps(s, component, err, errlen) : NULL;
    if (s->have_table && !r)
        return TK_ERR;
    int nsteps = 0, nrows = r ? PQntuples(r) : 0, pending = 0, rc = 0;
    while (steps && steps[nsteps])
        nsteps++;
    if (!s->dry_run && (nsteps || nrows))
        fprintf(s->out, "%s\n", component);
    for (int step = 1; step <= nsteps && rc >= 0; step++) {
        int row = -1;
        for (int i = 0; i < nrows && row < 0; i++)
            if (atoi(PQgetvalue(r, i, 0)) == step)
                row = i;
        if (row < 0) {
            pending++;
            if (s->dry_run) {
                fprintf(s->out, "would apply %s step %d:\n", component, step);
                print_sql(s->out, steps[step - 1]);
            } else {
                fprintf(s->out, "  step %d  pending\n", step);
            }
            continue;
        }
        const char *when = PQgetvalue(r, row, 2);
        rc = same_checksum(s->c, steps[step - 1], PQgetvalue(r, row, 1), err, errlen);
        if (rc == 0) {
            s->sum->changed++;
            flag(s, component, step, "CHANGED", when,
                 "this build's text differs: add a new step instead of editing a shipped one");
        } else if (rc > 0 && !s->dry_run) {
            fprintf(s->out, "  step %d  applied  %s UTC\n", step, when);
        }
    }
    for (int i = 0; i < nrows && rc >= 0; i++) {
        int step = atoi(PQgetvalue(r, i, 0));
        if (step > nsteps) {
            s->sum->unknown++;
            flag(s, component, step, "UNKNOWN", PQgetvalue(r, i, 2),
                 "this build does not have it (a newer version migrated the database)");
        }
    }
    PQclear(r);
    s->sum->pending += rc < 0 ? 0 : pending;
    return rc < 0 ? rc : pending;
}

/* Names the components the database has steps of that this config does not load. */
static int other_components(status_ctx *s, char *err, size_t errlen)
{
    PGresult *r = PQexec(s->c, "SELECT component, count(*) FROM taskora_migrations"
                               " GROUP BY component ORDER BY component");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "reading the applied components: %s", tk_migrate_error(s->c, r));
        PQclear(r);
        return TK_ERR;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        int known = 0;
        for (size_t k = 0; k < s->nseen && !known; k++)
            known = strcmp(s->seen[k], name) == 0;
        if (!known)
            fprintf(s->out, "%s: not in this config (%s step%s applied)\n", name,
                    PQgetvalue(r, i, 1), strcmp(PQgetvalue(r, i, 1), "1") ? "s" : "");
    }
    PQclear(r);
    return 0;
}

/* Opens a read-only session into *out and learns whether taskora_migrations exists. */
static int open_readonly(const char *url, PGconn **out, int *have_table, char *err, size_t errlen)
{
    PGconn *c = tk_migrate_connect(url, err, errlen);
    if (!c)
        return TK_EUNAVAILABLE;
    char why[1024];
    /* the server, not only this code, keeps the session from writing */
    int rc = tk_migrate_exec(c, "SET default_transaction_read_only = on", why, sizeof(why));
    if (rc == 0) {
        PGresult *r = PQexec(c, "SELECT to_regclass('taskora_migrations') IS NOT NULL");
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            *have_table = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        else
            rc = TK_ERR;
        snprintf(why, sizeof(why), "%s", tk_migrate_error(c, r));
        PQclear(r);
    }
    if (rc) {
        tk_migrate_trim(why);
        snprintf(err, errlen, "reading migrations: %s", why);
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void summary(FILE *out, int dry_run, const tk_migrate_summary *sum)
{
    int n = sum->pending, refused = sum->changed || sum->unknown;
    const char *s = n == 1 ? "" : "s";
    if (refused)
        fprintf(out,
                "migrations: %d step%s pending; %d changed and %d unknown: migrate would refuse "
                "this database\n",
                n, s, sum->changed, sum->unknown);
    else if (dry_run && n == 0)
        fprintf(out, "migrations: nothing to do\n");
    else if (dry_run)
        fprintf(out, "migrations: %d step%s would be applied\n", n, s);
    else if (n == 0)
        fprintf(out, "migrations: up to date\n");
    else
        fprintf(out, "migrations: %d step%s pending\n", n, s);
}

int tk_migrate_status(const char *url, const tk_loader *l, int dry_run, FILE *out,
                      tk_migrate_summary *sum, char *err, size_t errlen)
{
    *sum = (tk_migrate_summary){0};
    int have_table = 0;
    PGconn *c = NULL;
    int rc = open_readonly(url, &c, &have_table, err, errlen);
    if (rc)
        return rc;
    status_ctx s = {.c = c, .out = out, .dry_run = dry_run, .have_table = have_table, .sum = sum};
    rc = tk_migrate_each(l, status_component, &s, err, errlen);
    if (rc >= 0 && have_table && !dry_run)
        rc = other_components(&s, err, errlen);
    if (rc >= 0)
        summary(out, dry_run, sum);
    free(s.seen);
    PQfinish(c);
    return rc < 0 ? rc : 0;
}
