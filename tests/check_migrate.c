/* `taskorad migrate` against a real PostgreSQL server: once, concurrently, plugin-owned, atomic. */
#include <check.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testhelp.h"

static char *dir;
static char dbname[64];
static char dburl[1024];

/* The server from the test command (TASKORA_TEST_DATABASE_URL points at its "postgres" db). */
static const char *admin_url(void) { return getenv("TASKORA_TEST_DATABASE_URL"); }

static void exec_admin(const char *sql)
{
    PGconn *c = PQconnectdb(admin_url());
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* One value from the test database, as a malloc'd string. */
static char *query1(const char *sql)
{
    PGconn *c = PQconnectdb(dburl);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

static void setup(void)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_migrate_%d", (int)getpid());
    char sql[256];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    exec_admin(sql);
    /* same server, other database: swap the dbname in a conninfo */
    PQconninfoOption *opts = PQconninfoParse(admin_url(), NULL);
    size_t n = 0;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
        if (v && *v)
            n += (size_t)snprintf(dburl + n, sizeof(dburl) - n, "%s='%s' ", o->keyword, v);
    }
    if (!strstr(dburl, "dbname="))
        snprintf(dburl + n, sizeof(dburl) - n, "dbname='%s'", dbname);
    PQconninfoFree(opts);
}

static void teardown(void)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    exec_admin(sql);
    th_rmtree(dir);
    free(dir);
}

/* Writes a config loading the given plugin types; returns its path (malloc'd). */
static char *write_config(const char *plugins)
{
    char text[8192];
    setenv("TK_TEST_DB", dburl, 1);
    snprintf(text, sizeof(text),
             "{\"postgres\": {\"url\": \"${TK_TEST_DB}\"}, \"http\": {\"enabled\": false},"
             " \"plugin_dir\": \"%s\", \"plugins\": %s}",
             th_plugin_dir(), plugins);
    return th_write(dir, "taskora.json", text);
}

static int run_migrate(const char *path, char **out, char **err)
{
    const char *args[] = {"migrate", "-c", path, NULL};
    return th_taskorad(args, out, err, 60000);
}

/* Runs `taskorad migrate` with the given plugin types loaded. */
static int migrate(const char *plugins, char **out, char **err)
{
    char *path = write_config(plugins);
    int rc = run_migrate(path, out, err);
    free(path);
    return rc;
}

#define TWO_INSTANCES                                                                              \
    "[{\"name\": \"a\", \"load\": \"test_plugin\"}, {\"name\": \"b\", \"load\": \"test_plugin\"}]"

START_TEST(test_applies_plugin_steps_once_and_then_has_nothing_to_do)
{
    char *out, *err;
    int rc = migrate(TWO_INSTANCES, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "applied test_plugin step 1\napplied test_plugin step 2\n");
    free(out);
    free(err);
    char *v = query1("SELECT count(*) FROM information_schema.columns"
                     " WHERE table_name = 'test_plugin_items'");
    ck_assert_str_eq(v, "3");
    free(v);
    rc = migrate(TWO_INSTANCES, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "migrations: nothing to do\n");
    free(out);
    free(err);
    v = query1("SELECT count(*) FROM taskora_migrations WHERE component = 'test_plugin'");
    ck_assert_str_eq(v, "2");
    free(v);
}
END_TEST

START_TEST(test_concurrent_runs_apply_each_step_once)
{
    char *path = write_config(TWO_INSTANCES);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            char *out, *err;
            int rc = run_migrate(path, &out, &err);
            if (rc != 0)
                fprintf(stderr, "run %d: exit %d: %s\n", i, rc, err);
            _exit(rc);
        }
    }
    free(path);
    for (int i = 0; i < 4; i++) {
        int st = 0;
        waitpid(kids[i], &st, 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run %d failed", i);
    }
    char *v = query1("SELECT count(*) FROM taskora_migrations");
    ck_assert_str_eq(v, "2");
    free(v);
}
END_TEST

START_TEST(test_failed_step_is_rolled_back_and_named)
{
    char *out, *err;
    int rc = migrate("[{\"name\": \"x\", \"load\": \"bad_migration\"}]", &out, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_str_eq(out, "applied bad_migration step 1\n");
    ck_assert_msg(strstr(err, "migration bad_migration step 2 failed and was rolled back") &&
                      strstr(err, "division by zero"),
                  "%s", err);
    free(out);
    free(err);
    char *v = query1("SELECT count(*) FROM information_schema.tables"
                     " WHERE table_name IN ('bad_migration_ok', 'bad_migration_half')");
    ck_assert_str_eq(v, "1");
    free(v);
    v = query1("SELECT max(step) FROM taskora_migrations WHERE component = 'bad_migration'");
    ck_assert_str_eq(v, "1");
    free(v);
}
END_TEST

START_TEST(test_unreachable_database_is_a_clear_error)
{
    char *out, *err;
    snprintf(dburl, sizeof(dburl), "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
    int rc = migrate("[]", &out, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "cannot connect to PostgreSQL"), "%s", err);
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    if (!admin_url() || !*admin_url()) {
        fprintf(stderr, "check_migrate: TASKORA_TEST_DATABASE_URL is not set; the test command "
                        "(scripts/test) starts a throwaway PostgreSQL and sets it\n");
        return 77;
    }
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("migrate");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_applies_plugin_steps_once_and_then_has_nothing_to_do);
    tcase_add_test(tc, test_concurrent_runs_apply_each_step_once);
    tcase_add_test(tc, test_failed_step_is_rolled_back_and_named);
    tcase_add_test(tc, test_unreachable_database_is_a_clear_error);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
