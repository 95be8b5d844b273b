/* `taskorad migrate` against a real PostgreSQL server: once, concurrently, plugin-owned, atomic. */
#include <check.h>
#include <crypt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "schema.h" /* the HTTP API plugin's steps, to stop a database at an older one */
#include "testhelp.h"

static char *dir;
static char dbname[64];
static char dburl[1024];

static void setup(void)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_migrate_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
}

static void teardown(void)
{
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
}

static char *query1(const char *sql) { return th_pg_query1(dburl, sql); }

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

/* Runs `taskorad migrate OPTION` (--status, --dry-run) with the given plugin types loaded. */
static int migrate_with(const char *option, const char *plugins, char **out, char **err)
{
    char *path = write_config(plugins);
    const char *args[] = {"migrate", option, "-c", path, NULL};
    int rc = th_taskorad(args, out, err, 60000);
    free(path);
    return rc;
}

static void release(char *out, char *err)
{
    free(out);
    free(err);
}

/* Runs `taskorad migrate`, which must succeed. */
static void migrate_ok(const char *plugins)
{
    char *out, *err;
    int rc = migrate(plugins, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    release(out, err);
}

/* A plugin instance running a Lua script's migrations (written to the test's directory). */
static const char *lua_instance(const char *name, const char *migrations)
{
    char *path = th_write(dir, th_fmt("%s.lua", name),
                          th_fmt("%sfunction handle(event) return 'ok' end\n", migrations));
    const char *json = th_fmt("{\"name\": \"%s\", \"load\": \"%s/plugins/lua/.libs/lua\","
                              " \"config\": {\"script\": \"%s\"}}",
                              name, th_builddir(), path);
    free(path);
    return json;
}

/* A component's applied steps as --status lists them, each with when it was applied. */
static char *applied_lines(const char *component)
{
    return query1(th_fmt("SELECT string_agg(format('  step %%s  applied  %%s UTC', step,"
                         " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')),"
                         " E'\\n' ORDER BY step) FROM taskora_migrations WHERE component = '%s'",
                         component));
}

/* Everything migrate could change: the recorded steps and every table's columns. */
static char *snapshot(void)
{
    return query1(
        "SELECT coalesce((SELECT string_agg(component || ':' || step || ':' || checksum || ':' ||"
        " applied_at, ',' ORDER BY component, step) FROM taskora_migrations), '') || '|' ||"
        " (SELECT coalesce(string_agg(table_name || '.' || column_name, ',' ORDER BY table_name,"
        " column_name), '') FROM information_schema.columns WHERE table_schema = 'public')");
}

#define TWO_INSTANCES                                                                              \
    "[{\"name\": \"a\", \"load\": \"test_plugin\"}, {\"name\": \"b\", \"load\": \"test_plugin\"}]"

START_TEST(test_applies_plugin_steps_once_and_then_has_nothing_to_do)
{
    char *out, *err;
    int rc = migrate(TWO_INSTANCES, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "applied core step 1\napplied core step 2\napplied core step 3\n"
                          "applied test_plugin step 1\napplied test_plugin step 2\n");
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
    v = query1("SELECT count(*) FROM information_schema.tables"
               " WHERE table_name IN ('taskora_outbox', 'taskora_processed_events')");
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
    ck_assert_str_eq(v, "5"); /* 3 core steps + 2 of test_plugin */
    free(v);
}
END_TEST

START_TEST(test_failed_step_is_rolled_back_and_named)
{
    char *out, *err;
    int rc = migrate("[{\"name\": \"x\", \"load\": \"bad_migration\"}]", &out, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_str_eq(out, "applied core step 1\napplied core step 2\napplied core step 3\n"
                          "applied bad_migration step 1\n");
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
    /* the run stopped at the failed step: the one after it did not run either */
    v = query1("SELECT to_regclass('bad_migration_after') IS NULL");
    ck_assert_str_eq(v, "t");
    free(v);
    rc = migrate_with("--status", "[{\"name\": \"x\", \"load\": \"bad_migration\"}]", &out, &err);
    ck_assert_msg(rc == 3, "exit %d: %s", rc, err);
    char *at = applied_lines("bad_migration");
    ck_assert_msg(strstr(out, th_fmt("\nbad_migration\n%s\n  step 2  pending\n  step 3  pending\n"
                                     "migrations: 2 steps pending\n",
                                     at)),
                  "%s", out);
    free(at);
    release(out, err);
}
END_TEST

START_TEST(test_status_lists_each_step_and_changes_nothing)
{
    char *out, *err;
    int rc = migrate_with("--status", TWO_INSTANCES, &out, &err);
    ck_assert_msg(rc == 3, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "core\n  step 1  pending\n  step 2  pending\n  step 3  pending\n"
                          "test_plugin\n  step 1  pending\n  step 2  pending\n"
                          "migrations: 5 steps pending\n");
    release(out, err);
    /* not even the migrations table was created */
    char *v =
        query1("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'");
    ck_assert_str_eq(v, "0");
    free(v);

    migrate_ok("[]");
    char *before = snapshot();
    rc = migrate_with("--status", TWO_INSTANCES, &out, &err);
    ck_assert_msg(rc == 3, "exit %d: %s", rc, err);
    char *core = applied_lines("core");
    ck_assert_str_eq(out, th_fmt("core\n%s\ntest_plugin\n  step 1  pending\n  step 2  pending\n"
                                 "migrations: 2 steps pending\n",
                                 core));
    release(out, err);
    char *after = snapshot();
    ck_assert_str_eq(after, before);
    free(before);
    free(after);

    migrate_ok(TWO_INSTANCES);
    rc = migrate_with("--status", TWO_INSTANCES, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    char *plugin = applied_lines("test_plugin");
    ck_assert_str_eq(out,
                     th_fmt("core\n%s\ntest_plugin\n%s\nmigrations: up to date\n", core, plugin));
    free(core);
    free(plugin);
    release(out, err);
}
END_TEST

START_TEST(test_status_flags_changed_unknown_and_unconfigured_steps)
{
    char *out, *err;
    const char *two = "function migrations() return {'CREATE TABLE st_a (id int)',"
                      " 'CREATE TABLE st_b (id int)'} end\n";
    migrate_ok(th_fmt("[%s]", lua_instance("script", two)));
    /* the script's step 1 edited and its step 2 gone: what a newer or edited build looks like */
    const char *edited = "function migrations() return {'CREATE TABLE st_a (id bigint)'} end\n";
    char *before = snapshot();
    int rc = migrate_with("--status", th_fmt("[%s]", lua_instance("script", edited)), &out, &err);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(out, "script\n  step 1  CHANGED  applied ") &&
                      strstr(out, "  step 2  UNKNOWN  applied ") &&
                      strstr(out, "migrations: 0 steps pending; 1 changed and 1 unknown"),
                  "%s", out);
    ck_assert_msg(strstr(err, "migrate would refuse it"), "%s", err);
    release(out, err);
    rc = migrate_with("--dry-run", th_fmt("[%s]", lua_instance("script", edited)), &out, &err);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(out, "script step 1: CHANGED, applied ") &&
                      strstr(out, "script step 2: UNKNOWN, applied "),
                  "%s", out);
    release(out, err);
    char *after = snapshot();
    ck_assert_str_eq(after, before);
    free(before);
    free(after);
    /* a config without the script: its steps are named, and nothing is pending */
    rc = migrate_with("--status", "[]", &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(out, "script: not in this config (2 steps applied)\n"
                              "migrations: up to date\n"),
                  "%s", out);
    release(out, err);
}
END_TEST

START_TEST(test_dry_run_prints_pending_sql_and_changes_nothing)
{
    const char *script =
        "function migrations() return {'CREATE TABLE dry_t (\\n  id int\\n)'} end\n";
    char *plugins = strdup(
        th_fmt("[{\"name\": \"a\", \"load\": \"test_plugin\"}, %s]", lua_instance("s", script)));
    char *out, *err;
    int rc = migrate_with("--dry-run", plugins, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(out, "would apply core step 1:\n    CREATE TABLE IF NOT EXISTS "
                              "taskora_processed_events (") &&
                      strstr(out, "migrations: 6 steps would be applied\n"),
                  "%s", out);
    release(out, err);
    char *v =
        query1("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'");
    ck_assert_str_eq(v, "0");
    free(v);

    migrate_ok("[]");
    char *before = snapshot();
    rc = migrate_with("--dry-run", plugins, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "would apply test_plugin step 1:\n"
                          "    CREATE TABLE test_plugin_items (id bigserial PRIMARY KEY, name text "
                          "NOT NULL)\n"
                          "would apply test_plugin step 2:\n"
                          "    ALTER TABLE test_plugin_items ADD COLUMN created_at timestamptz NOT "
                          "NULL DEFAULT now()\n"
                          "would apply s step 1:\n    CREATE TABLE dry_t (\n      id int\n    )\n"
                          "migrations: 3 steps would be applied\n");
    release(out, err);
    char *after = snapshot();
    ck_assert_str_eq(after, before);
    free(before);
    free(after);

    migrate_ok(plugins);
    rc = migrate_with("--dry-run", plugins, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "migrations: nothing to do\n");
    release(out, err);
    free(plugins);
}
END_TEST

START_TEST(test_a_long_step_reports_progress)
{
    setenv("TASKORA_MIGRATE_PROGRESS_MS", "1000", 1);
    const char *script = "function migrations() return {'CREATE TABLE slow_t (id int)',"
                         " 'SELECT pg_sleep(2.2)'} end\n";
    char *out, *err;
    int rc = migrate(th_fmt("[%s]", lua_instance("slow", script)), &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    /* at least one line while step 2 runs (it runs for 2.2 s), each counting the seconds */
    regex_t re;
    ck_assert_int_eq(
        regcomp(&re,
                "applied slow step 1\n(still applying slow step 2 \\([1-9][0-9]*s\\)\n)+"
                "applied slow step 2\n$",
                REG_EXTENDED),
        0);
    ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "%s", out);
    regfree(&re);
    release(out, err);
}
END_TEST

/* The existing service's tables as SQLModel created them, with rows in each. */
static const char *const legacy_schema =
    "CREATE TABLE users (id SERIAL NOT NULL, email VARCHAR NOT NULL, name VARCHAR NOT NULL,"
    " hashed_password VARCHAR NOT NULL, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,"
    " PRIMARY KEY (id));"
    "CREATE UNIQUE INDEX ix_users_email ON users (email);"
    "CREATE TABLE tasks (id SERIAL NOT NULL, title VARCHAR(255) NOT NULL,"
    " description VARCHAR(1000), completed BOOLEAN NOT NULL, user_id VARCHAR NOT NULL,"
    " priority VARCHAR(10) NOT NULL, due_date TIMESTAMP WITHOUT TIME ZONE,"
    " reminder_at TIMESTAMP WITHOUT TIME ZONE, reminder_sent BOOLEAN NOT NULL,"
    " is_recurring BOOLEAN NOT NULL, recurrence_rule VARCHAR(20), recurrence_interval INTEGER,"
    " parent_task_id INTEGER, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,"
    " updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, PRIMARY KEY (id),"
    " FOREIGN KEY(parent_task_id) REFERENCES tasks (id));"
    "CREATE INDEX ix_tasks_user_id ON tasks (user_id);"
    "CREATE TABLE tags (id SERIAL NOT NULL, name VARCHAR(50) NOT NULL, color VARCHAR(7) NOT NULL,"
    " user_id VARCHAR(255) NOT NULL, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,"
    " PRIMARY KEY (id));"
    "CREATE TABLE task_tags (task_id INTEGER NOT NULL, tag_id INTEGER NOT NULL,"
    " PRIMARY KEY (task_id, tag_id),"
    " FOREIGN KEY(task_id) REFERENCES tasks (id) ON DELETE CASCADE,"
    " FOREIGN KEY(tag_id) REFERENCES tags (id) ON DELETE CASCADE);"
    "CREATE TABLE conversations (id SERIAL NOT NULL, user_id VARCHAR NOT NULL,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,"
    " updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, PRIMARY KEY (id));"
    "CREATE TABLE messages (id SERIAL NOT NULL, conversation_id INTEGER NOT NULL,"
    " user_id VARCHAR NOT NULL, role VARCHAR NOT NULL, content TEXT NOT NULL, tool_calls TEXT,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, PRIMARY KEY (id),"
    " FOREIGN KEY(conversation_id) REFERENCES conversations (id) ON DELETE CASCADE);"
    "INSERT INTO users (email, name, hashed_password, created_at) VALUES"
    " ('ada@example.com', 'Ada', '$2b$12$abcdefghijklmnopqrstuv', '2025-01-02 03:04:05');"
    "INSERT INTO tasks (title, description, completed, user_id, priority, due_date, reminder_at,"
    " reminder_sent, is_recurring, recurrence_rule, recurrence_interval, parent_task_id,"
    " created_at, updated_at) VALUES"
    " ('Buy milk', NULL, false, '1', 'high', '2025-02-01 10:00:00', NULL, false, false, NULL,"
    "  NULL, NULL, '2025-01-03 00:00:00', '2025-01-03 00:00:00'),"
    " ('Water plants', 'weekly', true, '1', 'low', NULL, NULL, false, true, 'weekly', NULL, 1,"
    "  '2025-01-04 00:00:00', '2025-01-05 00:00:00');"
    "INSERT INTO tags (name, color, user_id, created_at) VALUES"
    " ('home', '#FF0000', '1', '2025-01-03 00:00:00'), ('Home', '#00FF00', '1', '2025-01-03');"
    "INSERT INTO task_tags VALUES (1, 1), (2, 2);"
    "INSERT INTO conversations (user_id, created_at, updated_at) VALUES"
    " ('1', '2025-01-06', '2025-01-06');"
    "INSERT INTO messages (conversation_id, user_id, role, content, tool_calls, created_at)"
    " VALUES (1, '1', 'user', 'add a task', NULL, '2025-01-06'),"
    " (1, '1', 'assistant', 'Done', '[{\"tool\":\"add_task\"}]', '2025-01-06');";

/* Every column of the existing tables, with type, length, nullability and default. */
static const char *const columns_sql =
    "SELECT string_agg(table_name || '.' || column_name || ':' || data_type || ':' ||"
    " coalesce(character_maximum_length::text, '') || ':' || is_nullable || ':' ||"
    " coalesce(column_default, ''), ',' ORDER BY table_name, ordinal_position)"
    " FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN"
    " ('users', 'tasks', 'tags', 'task_tags', 'conversations', 'messages')";

/* Every row of the existing tables, as text. */
static const char *const rows_sql =
    "SELECT (SELECT string_agg(u::text, ',' ORDER BY id) FROM users u) || '|' ||"
    " (SELECT string_agg(t::text, ',' ORDER BY id) FROM tasks t) || '|' ||"
    " (SELECT string_agg(g::text, ',' ORDER BY id) FROM tags g) || '|' ||"
    " (SELECT string_agg(x::text, ',' ORDER BY task_id) FROM task_tags x) || '|' ||"
    " (SELECT string_agg(c::text, ',' ORDER BY id) FROM conversations c) || '|' ||"
    " (SELECT string_agg(m::text, ',' ORDER BY id) FROM messages m)";

/* The "plugins" array loading the HTTP API plugin from the build tree. */
static const char *api_plugin(void)
{
    static char json[4096];
    snprintf(json, sizeof(json),
             "[{\"name\": \"api\", \"load\": \"%s/plugins/http_api/.libs/http_api\"}]",
             th_builddir());
    return json;
}

START_TEST(test_existing_taskora_database_keeps_its_tables_and_rows)
{
    th_pg_exec(dburl, legacy_schema);
    char *cols_before = query1(columns_sql);
    char *rows_before = query1(rows_sql);
    char *out, *err;
    int rc = migrate(api_plugin(), &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(out, "applied http_api step 1\napplied http_api step 2\n"), "%s", out);
    free(out);
    free(err);
    char *cols_after = query1(columns_sql);
    char *rows_after = query1(rows_sql);
    ck_assert_str_eq(cols_after, cols_before);
    ck_assert_str_eq(rows_after, rows_before);
    /* what was added: the framework's tables and the API's indexes */
    char *v =
        query1("SELECT count(*) FROM pg_indexes WHERE indexname IN"
               " ('ix_tasks_user_created', 'ix_tags_user_id', 'ix_messages_conversation_created')");
    ck_assert_str_eq(v, "3");
    free(v);
    v = query1(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'taskora_outbox'");
    ck_assert_str_eq(v, "1");
    free(v);
    free(cols_before);
    free(rows_before);
    free(cols_after);
    free(rows_after);
}
END_TEST

START_TEST(test_fresh_database_gets_the_existing_service_schema)
{
    char *out, *err;
    int rc = migrate(api_plugin(), &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    free(out);
    free(err);
    char *v = query1("SELECT string_agg(table_name, ',' ORDER BY table_name)"
                     " FROM information_schema.tables WHERE table_schema = 'public'");
    ck_assert_str_eq(
        v, "conversations,messages,revoked_tokens,tags,task_tags,"
           "taskora_chat_usage,taskora_migrations,taskora_outbox,taskora_processed_events,tasks,"
           "users");
    free(v);
    v = query1(
        "SELECT data_type || ':' || coalesce(character_maximum_length::text, '')"
        " FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'priority'");
    ck_assert_str_eq(v, "character varying:10");
    free(v);
}
END_TEST

/*
 * Brings the database to where an older build left it: the core's steps, then the HTTP API
 * plugin's steps 1..last, recorded as `taskorad migrate` records them.
 */
static void migrate_api_to(int last)
{
    char *out, *err;
    int rc = migrate("[]", &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    free(out);
    free(err);
    for (int i = 0; i < last; i++) {
        ck_assert_ptr_nonnull(http_api_migrations[i]);
        ck_assert_ptr_null(strstr(http_api_migrations[i], "$tk$"));
        th_pg_exec(dburl, http_api_migrations[i]);
        char *sql = NULL;
        ck_assert_int_ge(asprintf(&sql,
                                  "INSERT INTO taskora_migrations (component, step, checksum)"
                                  " VALUES ('http_api', %d, md5($tk$%s$tk$))",
                                  i + 1, http_api_migrations[i]),
                         0);
        th_pg_exec(dburl, sql);
        free(sql);
    }
}

/* The existing service's hash of a password: bcrypt of its SHA-256 hex digest (cost 4 here). */
static char *legacy_hash(const char *pw)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    ck_assert_int_eq(EVP_Digest(pw, strlen(pw), md, &mdlen, EVP_sha256(), NULL), 1);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    const char *h = crypt(hex, crypt_gensalt("$2b$", 4, NULL, 0));
    ck_assert_msg(h && h[0] == '$', "crypt failed");
    return strdup(h);
}

static long api_post(const th_daemon *d, const char *path, const char *body, json_t **json)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    th_response r;
    ck_assert_int_eq(th_http("POST", th_fmt("%s%s", d->url, path), body, strlen(body), h, &r), 0);
    *json = json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
    long st = r.status;
    th_response_free(&r);
    return st;
}

/* Logs in; returns the id /api/auth/me names for the token, or -status when refused. */
static long login_id(const th_daemon *d, const char *email, const char *pw)
{
    json_t *j = NULL;
    long st = api_post(d, "/api/auth/login",
                       th_fmt("{\"email\":\"%s\",\"password\":\"%s\"}", email, pw), &j);
    if (st != 200) {
        json_decref(j);
        return -st;
    }
    char *auth = NULL;
    ck_assert_int_ge(asprintf(&auth, "Authorization: Bearer %s",
                              json_string_value(json_object_get(j, "access_token"))),
                     0);
    json_decref(j);
    const char *h[] = {auth, NULL};
    th_response r;
    ck_assert_int_eq(th_http("GET", th_fmt("%s/api/auth/me", d->url), NULL, 0, h, &r), 0);
    free(auth);
    ck_assert_msg(r.status == 200, "me: %ld %s", r.status, r.body);
    j = json_loads(r.body, 0, NULL);
    long id = (long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    th_response_free(&r);
    return id;
}

static long register_user(const th_daemon *d, const char *email)
{
    json_t *j = NULL;
    long st = api_post(d, "/api/auth/register",
                       th_fmt("{\"email\":\"%s\",\"name\":\"N\",\"password\":\"pw\"}", email), &j);
    if (st == 409)
        ck_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                         "Email already registered");
    json_decref(j);
    return st;
}

START_TEST(test_case_duplicate_emails_of_an_older_database_migrate_and_still_log_in)
{
    /* emails became unique case-insensitively in step 5; before it, only exact spellings were */
    migrate_api_to(4);
    static const char *const emails[] = {"Dup@Example.com", "dup@example.com", "DUP@EXAMPLE.COM",
                                         "solo@example.com"};
    static const char *const pws[] = {"first-pw", "second-pw", "third-pw", "solo-pw"};
    long ids[4];
    for (int i = 0; i < 4; i++) {
        char *h = legacy_hash(pws[i]);
        char *id = query1(th_fmt("INSERT INTO users (email, name, hashed_password, created_at)"
                                 " VALUES ('%s', 'U%d', '%s', now()) RETURNING id",
                                 emails[i], i, h));
        ids[i] = atol(id);
        free(id);
        free(h);
    }
    char *out, *err;
    int rc = migrate(api_plugin(), &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(out, "applied http_api step 5\n") && !strstr(out, "http_api step 4\n"),
                  "%s", out);
    free(out);
    free(err);
    char *v = query1("SELECT count(*) FROM users");
    ck_assert_str_eq(v, "4");
    free(v);

    setenv("TK_TEST_DB", dburl, 1);
    char *cfg = th_write(
        dir, "api.json",
        th_fmt(
            "{\"log\": {\"format\": \"text\"}, \"postgres\": {\"url\": \"${TK_TEST_DB}\"},"
            " \"outbox\": {\"relay\": false}, \"http\": {\"listen\": \"127.0.0.1:0\"},"
            " \"plugins\": [{\"name\": \"api\", \"load\": \"%s/plugins/http_api/.libs/http_api\","
            " \"config\": {\"jwt_secret\": \"migrate-secret-0123456789abcdef0123\","
            " \"bcrypt_cost\": 4}}]}",
            th_builddir()));
    th_daemon d;
    th_daemon_start_named(&d, dir, cfg, "api");
    free(cfg);
    /* each old account logs in with its exact email and its own password */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(login_id(&d, emails[i], pws[i]), ids[i]);
    /* another spelling finds the oldest of the group */
    ck_assert_int_eq(login_id(&d, "dUp@example.COM", "first-pw"), ids[0]);
    ck_assert_int_eq(login_id(&d, "SOLO@example.com", "solo-pw"), ids[3]);
    /* no new spelling of an existing email gets in, and new emails are unique in any case */
    ck_assert_int_eq(register_user(&d, "duP@example.com"), 409);
    ck_assert_int_eq(register_user(&d, "Solo@Example.com"), 409);
    ck_assert_int_eq(register_user(&d, "new-one@example.com"), 201);
    ck_assert_int_eq(register_user(&d, "New-One@example.com"), 409);
    kill(d.pid, SIGINT); /* stops without the drain delay */
    ck_assert_int_eq(th_daemon_wait(&d, 30000), 0);
    th_daemon_cleanup(&d);
}
END_TEST

START_TEST(test_unreachable_database_is_a_clear_error)
{
    char *out, *err;
    snprintf(dburl, sizeof(dburl), "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
    int rc = migrate("[]", &out, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "cannot connect to PostgreSQL"), "%s", err);
    release(out, err);
    for (int i = 0; i < 2; i++) {
        rc = migrate_with(i ? "--dry-run" : "--status", "[]", &out, &err);
        ck_assert_int_eq(rc, 1);
        ck_assert_msg(strstr(err, "cannot connect to PostgreSQL") && !*out, "%s", err);
        release(out, err);
    }
}
END_TEST

START_TEST(test_status_config_and_usage_errors_exit_2)
{
    char *out, *err;
    int rc =
        migrate_with("--status", "[{\"name\": \"x\", \"load\": \"no_such_plugin\"}]", &out, &err);
    ck_assert_msg(rc == 2 && strstr(err, "no_such_plugin"), "exit %d: %s", rc, err);
    release(out, err);
    char *path = write_config("[]");
    const char *both[] = {"migrate", "--status", "--dry-run", "-c", path, NULL};
    ck_assert_int_eq(th_taskorad(both, &out, &err, 60000), 2);
    ck_assert_msg(strstr(err, "--status and --dry-run exclude each other"), "%s", err);
    release(out, err);
    const char *run[] = {"run", "--status", "-c", path, NULL};
    ck_assert_int_eq(th_taskorad(run, &out, &err, 60000), 2);
    ck_assert_msg(strstr(err, "--status belongs to the migrate command"), "%s", err);
    release(out, err);
    free(path);
    char *v =
        query1("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'");
    ck_assert_str_eq(v, "0");
    free(v);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_migrate");
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("migrate");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_applies_plugin_steps_once_and_then_has_nothing_to_do);
    tcase_add_test(tc, test_concurrent_runs_apply_each_step_once);
    tcase_add_test(tc, test_failed_step_is_rolled_back_and_named);
    tcase_add_test(tc, test_status_lists_each_step_and_changes_nothing);
    tcase_add_test(tc, test_status_flags_changed_unknown_and_unconfigured_steps);
    tcase_add_test(tc, test_dry_run_prints_pending_sql_and_changes_nothing);
    tcase_add_test(tc, test_a_long_step_reports_progress);
    tcase_add_test(tc, test_existing_taskora_database_keeps_its_tables_and_rows);
    tcase_add_test(tc, test_fresh_database_gets_the_existing_service_schema);
    tcase_add_test(tc, test_case_duplicate_emails_of_an_older_database_migrate_and_still_log_in);
    tcase_add_test(tc, test_unreachable_database_is_a_clear_error);
    tcase_add_test(tc, test_status_config_and_usage_errors_exit_2);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
