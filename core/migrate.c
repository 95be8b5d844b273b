/* Schema migrations: the core's and each configured plugin's, each applied once per database. */
#include "migrate.h"

#include "host.h"
#include "migrate_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The core's own steps. Append only: a shipped step never changes. */
static const char *const core_migrations[] = {
    /* 1: what idempotent consumers have done: tk_pg_once records (group, event id) here */
    "CREATE TABLE IF NOT EXISTS taskora_processed_events ("
    " consumer_group text NOT NULL,"
    " event_id text NOT NULL,"
    " processed_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (consumer_group, event_id))",
    /* 2: the transactional outbox: events written with the change they describe */
    "CREATE TABLE IF NOT EXISTS taskora_outbox ("
    " id bigserial PRIMARY KEY,"
    " topic text NOT NULL,"
    " key text,"
    " value text NOT NULL,"
    " headers jsonb NOT NULL DEFAULT '{}'::jsonb,"
    " created_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    " sent_at timestamptz);"
    "CREATE INDEX IF NOT EXISTS taskora_outbox_unsent ON taskora_outbox (id)"
    " WHERE sent_at IS NULL",
    /* 3: why Kafka refused an event for good (kept for inspection, not pruned) */
    "ALTER TABLE taskora_outbox ADD COLUMN IF NOT EXISTS last_error text",
    NULL,
};

/* The pg_advisory_lock key that serialises concurrent `taskorad migrate` runs. */
#define MIGRATE_LOCK_KEY "8386109046813057"

/* How often a long step says it is still running, unless TASKORA_MIGRATE_PROGRESS_MS says. */
#define PROGRESS_MS_DEFAULT 5000

const char *tk_migrate_error(PGconn *c, const PGresult *r)
{
    const char *e = r ? PQresultErrorMessage(r) : "";
    return *e ? e : PQerrorMessage(c);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int tk_migrate_exec(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s", tk_migrate_error(c, r));
    PQclear(r);
    return ok ? 0 : TK_ERR;
}

void tk_migrate_trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

PGconn *tk_migrate_connect(const char *url, char *err, size_t errlen)
{
    /* the URL's own connect_timeout wins over this default */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"10", "taskorad migrate", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(c));
        tk_migrate_trim(why);
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", why);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    return c;
}

static long progress_interval_ms(void)
{
    const char *e = getenv("TASKORA_MIGRATE_PROGRESS_MS");
    char *end = NULL;
    long v = e && *e ? strtol(e, &end, 10) : 0;
    return v > 0 && end && *end == '\0' ? v : PROGRESS_MS_DEFAULT;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Runs a step's SQL (one statement or several) and, while it runs, prints "still applying"
 * every progress interval. 0, or TK_ERR with the server's error (the first one) in err.
 */
static int exec_step(PGconn *c, const char *component, int step, const char *sql, FILE *out,
                     char *err, size_t errlen)
{
    if (!PQsendQuery(c, sql)) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        return TK_ERR;
    }
    long long interval = progress_interval_ms(), start = now_ms(), next = start + interval;
    int rc = 0;
    for (;;) {
        while (!PQisBusy(c)) {
            PGresult *r = PQgetResult(c);
            if (!r)
                return rc;
            ExecStatusType st = PQresultStatus(r);
            if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                snprintf(err, errlen, "%s", tk_migrate_error(c, r));
                rc = TK_ERR;
            }
            PQclear(r);
        }
        long long now = now_ms();
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        int n = poll(&p, 1, next > now ? (int)(next - now) : 0);
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "waiting for the server: %s", strerror(errno));
            return TK_ERR;
        }
        /* the step has run past the deadline even when its result came in meanwhile */
        now = now_ms();
        if (now >= next) {
            fprintf(out, "still applying %s step %d (%llds)\n", component, step,
                    (now - start) / 1000);
            fflush(out);
            while (next <= now)
                next += interval;
        }
        if (n > 0 && !PQconsumeInput(c)) {
            snprintf(err, errlen, "%s", PQerrorMessage(c));
            return TK_ERR;
        }
    }
}

/* Refuses a database that a newer build migrated, or a shipped step edited since it ran. */
static int check_applied(PGconn *c, const char *component, const char *const *steps, int nsteps,
                         const PGresult *r, char *err, size_t errlen)
{
    for (int i = 0; i < PQntuples(r); i++) {
        int step = atoi(PQgetvalue(r, i, 0));
        if (step > nsteps) {
            snprintf(err, errlen,
                     "%s: the database has step %d applied but this build knows %d steps; it was "
                     "migrated by a newer version",
                     component, step, nsteps);
            return TK_EINVAL;
        }
        /* a shipped step must never change: its effect is already in the database */
        const char *cp[2] = {steps[step - 1], PQgetvalue(r, i, 1)};
        PGresult *same = PQexecParams(c, "SELECT md5($1) = $2", 2, NULL, cp, NULL, NULL, 0);
        if (PQresultStatus(same) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "%s step %d: checking its checksum: %s", component, step,
                     tk_migrate_error(c, same));
            PQclear(same);
            return TK_ERR;
        }
        int changed = strcmp(PQgetvalue(same, 0, 0), "f") == 0;
        PQclear(same);
        if (changed) {
            snprintf(err, errlen,
                     "migration %s step %d was changed after it was applied; add a new step "
                     "instead of editing a shipped one",
                     component, step);
            return TK_EINVAL;
        }
    }
    return 0;
}

/* Applies one step and its record in one transaction; on failure nothing of it stays. */
static int apply_step(PGconn *c, const char *component, int step, const char *sql, FILE *out,
                      char *err, size_t errlen)
{
    char why[1024] = "", stepstr[16];
    snprintf(stepstr, sizeof(stepstr), "%d", step);
    int rc = tk_migrate_exec(c, "BEGIN", why, sizeof(why));
    if (rc == 0)
        rc = exec_step(c, component, step, sql, out, why, sizeof(why));
    if (rc == 0) {
        const char *params[3] = {component, stepstr, sql};
        PGresult *ins = PQexecParams(c,
                                     "INSERT INTO taskora_migrations (component, step, checksum) "
                                     "VALUES ($1, $2::int, md5($3))",
                                     3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(ins) != PGRES_COMMAND_OK) {
            snprintf(why, sizeof(why), "%s", tk_migrate_error(c, ins));
            rc = TK_ERR;
        }
        PQclear(ins);
    }
    if (rc == 0)
        rc = tk_migrate_exec(c, "COMMIT", why, sizeof(why));
    if (rc) {
        char ignore[64];
        tk_migrate_exec(c, "ROLLBACK", ignore, sizeof(ignore));
        tk_migrate_trim(why);
        snprintf(err, errlen, "migration %s step %d failed and was rolled back: %s", component,
                 step, why);
        return rc;
    }
    fprintf(out, "applied %s step %d\n", component, step);
    fflush(out);
    return 0;
}

typedef struct {
    PGconn *c;
    FILE *out;
} apply_ctx;

/* Applies one component's pending steps (a tk_migrate_visit_fn). The number applied, or < 0. */
static int apply_component(void *arg, const char *component, const char *const *steps, char *err,
                           size_t errlen)
{
    apply_ctx *a = arg;
    const char *params[1] = {component};
    PGresult *r = PQexecParams(a->c,
                               "SELECT step, checksum FROM taskora_migrations WHERE component = $1 "
                               "ORDER BY step",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: reading applied steps: %s", component,
                 tk_migrate_error(a->c, r));
        PQclear(r);
        return TK_ERR;
    }
    int nsteps = 0;
    while (steps && steps[nsteps])
        nsteps++;
    int rc = check_applied(a->c, component, steps, nsteps, r, err, errlen), applied = 0;
    for (int step = 1; rc == 0 && step <= nsteps; step++) {
        int done = 0;
        for (int i = 0; i < PQntuples(r) && !done; i++)
            done = atoi(PQgetvalue(r, i, 0)) == step;
        if (done)
            continue;
        rc = apply_step(a->c, component, step, steps[step - 1], a->out, err, errlen);
        applied += rc == 0;
    }
    PQclear(r);
    return rc < 0 ? rc : applied;
}

/* Visits an instance's own steps (instance_migrations); total plus the visit's count, or < 0. */
static int visit_instance(tk_instance *inst, tk_migrate_visit_fn visit, void *arg, int total,
                          char *err, size_t errlen)
{
    tk_instance_migrations_fn fn = tk_plugin_instance_migrations(inst->type->desc);
    if (!fn)
        return total;
    char **steps = NULL, why[1024] = "";
    int rc = fn(tk_host_table(), inst, &steps, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "%s: reading its migrations: %s", inst->name,
                 why[0] ? why : tk_strerror(rc));
        return rc;
    }
    int n = steps ? visit(arg, inst->name, (const char *const *)steps, err, errlen) : 0;
    for (size_t k = 0; steps && steps[k]; k++)
        free(steps[k]);
    free(steps);
    return n < 0 ? n : total + n;
}

int tk_migrate_each(const tk_loader *l, tk_migrate_visit_fn visit, void *arg, char *err,
                    size_t errlen)
{
    int total = visit(arg, "core", core_migrations, err, errlen);
    /* each plugin type once, in the order the config first names it */
    for (size_t i = 0; total >= 0 && i < l->n; i++) {
        const tk_plugin_type *t = l->inst[i]->type;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = l->inst[j]->type == t;
        if (seen || !t->desc->migrations)
            continue;
        int n = visit(arg, t->desc->name, t->desc->migrations, err, errlen);
        total = n < 0 ? n : total + n;
    }
    /* then each instance's own (ABI 1.9), recorded under the instance's name */
    for (size_t i = 0; total >= 0 && i < l->n; i++)
        total = visit_instance(l->inst[i], visit, arg, total, err, errlen);
    return total;
}

int tk_migrate(const char *url, const tk_loader *l, FILE *out, char *err, size_t errlen)
{
    PGconn *c = tk_migrate_connect(url, err, errlen);
    if (!c)
        return TK_EUNAVAILABLE;
    char why[1024];
    int rc = tk_migrate_exec(c, "SET client_min_messages = warning", why, sizeof(why));
    /* a step that waits for a lock held by a long transaction fails, rather than stalling
     * every writer queued behind it */
    if (rc == 0)
        rc = tk_migrate_exec(c, "SET lock_timeout = '10s'", why, sizeof(why));
    if (rc == 0)
        rc = tk_migrate_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", why, sizeof(why));
    if (rc == 0)
        rc = tk_migrate_exec(c,
                             "CREATE TABLE IF NOT EXISTS taskora_migrations ("
                             " component text NOT NULL,"
                             " step integer NOT NULL,"
                             " checksum text NOT NULL,"
                             " applied_at timestamptz NOT NULL DEFAULT now(),"
                             " PRIMARY KEY (component, step))",
                             why, sizeof(why));
    if (rc) {
        tk_migrate_trim(why);
        snprintf(err, errlen, "preparing migrations: %s", why);
        PQfinish(c);
        return rc;
    }
    apply_ctx a = {c, out};
    int total = tk_migrate_each(l, apply_component, &a, err, errlen);
    if (total == 0)
        fprintf(out, "migrations: nothing to do\n");
    tk_migrate_exec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", why, sizeof(why));
    PQfinish(c);
    return total < 0 ? total : 0;
}
