/* Schema migrations: the core's and each configured plugin's, each applied once per database. */
#include "migrate.h"

#include "host.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

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

/* The error of a failed result; libpq gives no result at all when the connection broke. */
static const char *result_error(PGconn *c, const PGresult *r)
{
    const char *e = r ? PQresultErrorMessage(r) : "";
    return *e ? e : PQerrorMessage(c);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s", result_error(c, r));
    PQclear(r);
    return ok ? 0 : TK_ERR;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* Applies one component's pending steps. Returns the number applied, or < 0. */
static int apply_component(PGconn *c, const char *component, const char *const *steps, FILE *out,
                           char *err, size_t errlen)
{
    const char *params[3] = {component, NULL, NULL};
    PGresult *r = PQexecParams(c,
                               "SELECT step, checksum FROM taskora_migrations WHERE component = $1 "
                               "ORDER BY step",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: reading applied steps: %s", component, result_error(c, r));
        PQclear(r);
        return TK_ERR;
    }
    int nsteps = 0;
    while (steps && steps[nsteps])
        nsteps++;
    int applied_rows = PQntuples(r);
    for (int i = 0; i < applied_rows; i++) {
        int step = atoi(PQgetvalue(r, i, 0));
        if (step > nsteps) {
            snprintf(err, errlen,
                     "%s: the database has step %d applied but this build knows %d steps; it was "
                     "migrated by a newer version",
                     component, step, nsteps);
            PQclear(r);
            return TK_EINVAL;
        }
    }
    int applied = 0;
    for (int step = 1; step <= nsteps; step++) {
        int done = -1;
        for (int i = 0; i < applied_rows && done < 0; i++)
            if (atoi(PQgetvalue(r, i, 0)) == step)
                done = i;
        char stepstr[16];
        snprintf(stepstr, sizeof(stepstr), "%d", step);
        if (done >= 0) {
            /* a shipped step must never change: its effect is already in the database */
            const char *cp[2] = {steps[step - 1], PQgetvalue(r, done, 1)};
            PGresult *same = PQexecParams(c, "SELECT md5($1) = $2", 2, NULL, cp, NULL, NULL, 0);
            if (PQresultStatus(same) != PGRES_TUPLES_OK) {
                snprintf(err, errlen, "%s step %d: checking its checksum: %s", component, step,
                         result_error(c, same));
                PQclear(same);
                PQclear(r);
                return TK_ERR;
            }
            int changed = strcmp(PQgetvalue(same, 0, 0), "f") == 0;
            PQclear(same);
            if (changed) {
                snprintf(err, errlen,
                         "migration %s step %d was changed after it was applied; add a new step "
                         "instead of editing a shipped one",
                         component, step);
                PQclear(r);
                return TK_EINVAL;
            }
            continue;
        }
        char why[1024] = "";
        int rc = exec_ok(c, "BEGIN", why, sizeof(why));
        if (rc == 0)
            rc = exec_ok(c, steps[step - 1], why, sizeof(why));
        if (rc == 0) {
            params[1] = stepstr;
            params[2] = steps[step - 1];
            PGresult *ins =
                PQexecParams(c,
                             "INSERT INTO taskora_migrations (component, step, checksum) "
                             "VALUES ($1, $2::int, md5($3))",
                             3, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(ins) != PGRES_COMMAND_OK) {
                snprintf(why, sizeof(why), "%s", result_error(c, ins));
                rc = TK_ERR;
            }
            PQclear(ins);
        }
        if (rc == 0)
            rc = exec_ok(c, "COMMIT", why, sizeof(why));
        if (rc) {
            char ignore[64];
            exec_ok(c, "ROLLBACK", ignore, sizeof(ignore));
            trim(why);
            snprintf(err, errlen, "migration %s step %d failed and was rolled back: %s", component,
                     step, why);
            PQclear(r);
            return rc;
        }
        fprintf(out, "applied %s step %d\n", component, step);
        applied++;
    }
    PQclear(r);
    return applied;
}

/* Applies an instance's own steps (instance_migrations); total plus the number applied, or < 0. */
static int apply_instance(PGconn *c, tk_instance *inst, int total, FILE *out, char *err,
                          size_t errlen)
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
    int n =
        steps ? apply_component(c, inst->name, (const char *const *)steps, out, err, errlen) : 0;
    for (size_t k = 0; steps && steps[k]; k++)
        free(steps[k]);
    free(steps);
    return n < 0 ? n : total + n;
}

int tk_migrate(const char *url, const tk_loader *l, FILE *out, char *err, size_t errlen)
{
    /* the URL's own connect_timeout wins over this default */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"10", "taskorad migrate", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(c));
        trim(why);
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", why);
        PQfinish(c);
        return TK_EUNAVAILABLE;
    }
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    char why[1024];
    int rc = exec_ok(c, "SET client_min_messages = warning", why, sizeof(why));
    /* a step that waits for a lock held by a long transaction fails, rather than stalling
     * every writer queued behind it */
    if (rc == 0)
        rc = exec_ok(c, "SET lock_timeout = '10s'", why, sizeof(why));
    if (rc == 0)
        rc = exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", why, sizeof(why));
    if (rc == 0)
        rc = exec_ok(c,
                     "CREATE TABLE IF NOT EXISTS taskora_migrations ("
                     " component text NOT NULL,"
                     " step integer NOT NULL,"
                     " checksum text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now(),"
                     " PRIMARY KEY (component, step))",
                     why, sizeof(why));
    if (rc) {
        trim(why);
        snprintf(err, errlen, "preparing migrations: %s", why);
        PQfinish(c);
        return rc;
    }
    int total = apply_component(c, "core", core_migrations, out, err, errlen);
    /* each plugin type once, in the order the config first names it */
    for (size_t i = 0; total >= 0 && i < l->n; i++) {
        const tk_plugin_type *t = l->inst[i]->type;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = l->inst[j]->type == t;
        if (seen || !t->desc->migrations)
            continue;
        int n = apply_component(c, t->desc->name, t->desc->migrations, out, err, errlen);
        total = n < 0 ? n : total + n;
    }
    /* then each instance's own (ABI 1.9), recorded under the instance's name */
    for (size_t i = 0; total >= 0 && i < l->n; i++)
        total = apply_instance(c, l->inst[i], total, out, err, errlen);
    if (total == 0)
        fprintf(out, "migrations: nothing to do\n");
    exec_ok(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", why, sizeof(why));
    PQfinish(c);
    return total < 0 ? total : 0;
}
