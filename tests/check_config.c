/* Configuration: syntax errors with positions, ${VAR} substitution, schema validation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "settings.h"
#include "testhelp.h"

static char *dir;

static void setup(void) { dir = th_tmpdir(); }
static void teardown(void)
{
    th_rmtree(dir);
    free(dir);
}

/* Loads settings from text; returns NULL and fills err on failure. */
static tk_settings *load(const char *text, char *err, size_t errlen)
{
    char *path = th_write(dir, "c.json", text);
    tk_settings *s = tk_settings_load(path, err, errlen);
    free(path);
    return s;
}

START_TEST(test_syntax_error_names_file_line_and_column)
{
    char err[1024];
    tk_settings *s =
        load("{\n  \"app_id\": \"x\",\n  \"log\": {\"level\" \"info\"}\n}\n", err, sizeof(err));
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "c.json:3:") != NULL, "no file:line in: %s", err);
    ck_assert_msg(strstr(err, "syntax error") != NULL, "%s", err);
}
END_TEST

START_TEST(test_defaults_are_filled_in)
{
    char err[1024];
    tk_settings *s = load("{}", err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_str_eq(s->app_id, "taskora-backend");
    ck_assert_str_eq(s->http_listen, "0.0.0.0:8000");
    ck_assert_str_eq(s->kafka_brokers, "embedded");
    ck_assert_int_eq(s->http_body_limit, 1048576);
    ck_assert_int_eq(s->shutdown_timeout_ms, 10000);
    ck_assert_int_eq(s->drain_delay_ms, 5000);
    ck_assert_uint_eq(s->nplugins, 0);
    ck_assert_ptr_null(s->pg_url);
    tk_settings_free(s);
}
END_TEST

START_TEST(test_env_substitution_with_and_without_default)
{
    char err[1024];
    setenv("TK_TEST_LISTEN", "127.0.0.1:9999", 1);
    unsetenv("TK_TEST_UNSET");
    setenv("TK_TEST_EMPTY", "", 1);
    tk_settings *s = load("{\"http\": {\"listen\": \"${TK_TEST_LISTEN}\"},"
                          " \"app_id\": \"${TK_TEST_UNSET:-fallback}-${TK_TEST_EMPTY:-e}\","
                          " \"plugin_dir\": \"$${NOT_A_VAR}\"}",
                          err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_str_eq(s->http_listen, "127.0.0.1:9999");
    ck_assert_str_eq(s->app_id, "fallback-e");
    ck_assert_str_eq(s->plugin_dir, "${NOT_A_VAR}");
    tk_settings_free(s);
}
END_TEST

START_TEST(test_unset_variable_is_an_error_naming_it_and_the_path)
{
    char err[1024];
    unsetenv("TK_TEST_UNSET");
    tk_settings *s = load("{\"postgres\": {\"url\": \"${TK_TEST_UNSET}\"}}", err, sizeof(err));
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "postgres.url") && strstr(err, "TK_TEST_UNSET") &&
                      strstr(err, "c.json"),
                  "%s", err);
}
END_TEST

START_TEST(test_unknown_key_is_an_error_with_its_path)
{
    char err[1024];
    tk_settings *s = load("{\"http\": {\"lisen\": \"0.0.0.0:1\"}}", err, sizeof(err));
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "http.lisen: unknown key") && strstr(err, "listen"), "%s", err);
    s = load("{\"plugins\": [{\"name\": \"a\", \"load\": \"x\", \"confg\": {}}]}", err,
             sizeof(err));
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "plugins[0].confg: unknown key"), "%s", err);
}
END_TEST

START_TEST(test_wrong_type_and_bad_choice_are_errors)
{
    char err[1024];
    ck_assert_ptr_null(load("{\"http\": {\"body_limit\": \"lots\"}}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "http.body_limit: expected an integer, got the string \"lots\""),
                  "%s", err);
    ck_assert_ptr_null(load("{\"log\": {\"level\": \"loud\"}}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "log.level: \"loud\" is not one of debug|info|warn|error"), "%s",
                  err);
    ck_assert_ptr_null(load("{\"http\": []}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "http: expected an object, got an array"), "%s", err);
    ck_assert_ptr_null(load("[1]", err, sizeof(err)));
    ck_assert_msg(strstr(err, "top level must be a JSON object"), "%s", err);
    ck_assert_ptr_null(load("{\"http\": {\"timeout_s\": 0}}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "http.timeout_s: 0 is outside 1..86400"), "%s", err);
    ck_assert_ptr_null(load("{\"http\": {\"timeout_s\": 4294967297}}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "http.timeout_s: 4294967297 is outside 1..86400"), "%s", err);
}
END_TEST

START_TEST(test_out_of_range_numbers_name_file_path_and_range)
{
    const char *cases[][2] = {
        {"{\"postgres\": {\"pool_size\": 0}}", ": postgres.pool_size: 0 is outside 1..1000"},
        {"{\"http\": {\"body_limit\": 2147483649}}",
         ": http.body_limit: 2147483649 is outside 0..2147483648"},
        {"{\"shutdown_timeout_ms\": \"${TK_TEST_UNSET_TIMEOUT:--5}\"}",
         ": shutdown_timeout_ms: -5 is outside 1..3600000"},
        {"{\"drain_delay_ms\": -1}", ": drain_delay_ms: -1 is outside 0..3600000"},
        {"{\"drain_delay_ms\": 3600001}", ": drain_delay_ms: 3600001 is outside 0..3600000"},
        {"{\"resiliency\": {\"retry\": {\"backoff\": 0.5}}}",
         ": resiliency.retry.backoff: 0.5 is outside 1..100"},
        {"{\"resiliency\": {\"targets\": {\"ai.x\": {\"timeout_ms\": 0}}}}",
         ": resiliency.targets.ai.x.timeout_ms: 0 is outside 1..2147483647"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[1024];
        ck_assert_msg(load(cases[i][0], err, sizeof(err)) == NULL, "accepted %s", cases[i][0]);
        ck_assert_msg(strstr(err, "c.json") && strstr(err, cases[i][1]), "%s: %s", cases[i][0],
                      err);
    }
    /* the bounds themselves are accepted */
    char err[1024];
    tk_settings *s = load("{\"postgres\": {\"pool_size\": 1000}, \"http\": {\"body_limit\": 0}}",
                          err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(s->pg_pool_size, 1000);
    tk_settings_free(s);
}
END_TEST

START_TEST(test_strings_from_environment_become_numbers_and_lists)
{
    char err[1024];
    setenv("TK_TEST_LIMIT", "2048", 1);
    setenv("TK_TEST_ORIGINS", "http://a.test, http://b.test", 1);
    tk_settings *s = load("{\"http\": {\"body_limit\": \"${TK_TEST_LIMIT}\","
                          " \"enabled\": \"false\", \"cors_origins\": \"${TK_TEST_ORIGINS}\"}}",
                          err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(s->http_body_limit, 2048);
    ck_assert_int_eq(s->http_enabled, 0);
    ck_assert_uint_eq(json_array_size(s->http_cors_origins), 2);
    ck_assert_str_eq(json_string_value(json_array_get(s->http_cors_origins, 1)), "http://b.test");
    tk_settings_free(s);
}
END_TEST

START_TEST(test_plugin_entries_need_name_and_load_and_unique_names)
{
    char err[1024];
    ck_assert_ptr_null(load("{\"plugins\": [{\"name\": \"a\"}]}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "plugins[0].load: required key is missing"), "%s", err);
    ck_assert_ptr_null(load("{\"plugins\": [{\"name\": \"a\", \"load\": \"x\"},"
                            " {\"name\": \"a\", \"load\": \"y\"}]}",
                            err, sizeof(err)));
    ck_assert_msg(strstr(err, "plugins[1].name: duplicate instance name \"a\" (also plugins[0])"),
                  "%s", err);
}
END_TEST

START_TEST(test_duplicate_json_keys_are_refused)
{
    char err[1024];
    ck_assert_ptr_null(load("{\"app_id\": \"a\",\n \"app_id\": \"b\"}", err, sizeof(err)));
    ck_assert_msg(strstr(err, "c.json:2:") && strstr(err, "duplicate"), "%s", err);
}
END_TEST

START_TEST(test_check_config_command_reports_line_and_exits_2)
{
    char *path = th_write(dir, "broken.json", "{\n\n  \"app_id\": ,\n}\n");
    const char *args[] = {"check-config", "-c", path, NULL};
    char *out = NULL, *errs = NULL;
    int rc = th_taskorad(args, &out, &errs, 10000);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(errs, "broken.json:3:") != NULL, "stderr: %s", errs);
    free(out);
    free(errs);
    free(path);
}
END_TEST

START_TEST(test_out_of_memory_is_a_clear_error_at_any_point)
{
    setenv("TK_TEST_ORIGINS", "http://a.test, http://b.test", 1);
    char *path =
        th_write(dir, "c.json",
                 "{\"http\": {\"cors_origins\": \"${TK_TEST_ORIGINS}\","
                 " \"body_limit\": \"2048\"},"
                 " \"resiliency\": {\"retry\": {\"backoff\": 3},"
                 "  \"targets\": {\"ai.x\": {\"retry\": {\"attempts\": 2}}}},"
                 " \"plugins\": [{\"name\": \"w\", \"load\": \"x\", \"config\": {\"a\": 1},"
                 "  \"consume\": {\"topics\": \"a,b\", \"retry\": {\"attempts\": \"4\"}}}]}");
    int failures = 0;
    for (long n = 0;; n++) {
        char err[1024] = "";
        th_json_alloc_fail_after(n);
        tk_settings *s = tk_settings_load(path, err, sizeof(err));
        int injected = th_json_alloc_failed();
        th_json_alloc_restore();
        if (s) {
            ck_assert_int_eq(s->http_body_limit, 2048);
            ck_assert_uint_eq(json_array_size(s->http_cors_origins), 2);
            tk_settings_free(s);
            if (!injected)
                break; /* every allocation it makes has been failed once */
            continue;
        }
        /* a failure is reported as what it is, never as a wrong value in the file */
        ck_assert_msg(injected, "failed with no allocation failing: %s", err);
        ck_assert_msg(strstr(err, "c.json") && strstr(err, ": out of memory"), "allocation %ld: %s",
                      n, err);
        failures++;
    }
    ck_assert_int_gt(failures, 10);
    free(path);
}
END_TEST

/* Points TASKORA_PLUGIN_DIR (a config's plugin_dir) at every plugin of the build tree. */
static void use_built_plugins(void)
{
    static const char *const dirs[] = {
        "plugins/http_api",        "plugins/ai_gemini",     "plugins/ai_cohere",
        "plugins/realtime",        "plugins/notifications", "plugins/analytics",
        "examples/hello_consumer", "plugins/ai_openai",     "plugins/webui"};
    char plugdir[8192] = "";
    size_t n = 0;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        n += (size_t)snprintf(plugdir + n, sizeof(plugdir) - n, "%s%s/%s/.libs", i ? ":" : "",
                              th_builddir(), dirs[i]);
    setenv("TASKORA_PLUGIN_DIR", plugdir, 1);
}

START_TEST(test_shipped_configs_pass_check_config)
{
    const char *src = getenv("TK_SRCDIR") ? getenv("TK_SRCDIR") : "..";
    const char *files[] = {"config/taskora.json",
                           "config/api.json",
                           "config/worker-notifications.json",
                           "config/worker-analytics.json",
                           "examples/hello_consumer/hello.json",
                           "examples/hello_consumer/hello-db.json"};
    use_built_plugins();
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", src, files[i]);
        const char *args[] = {"check-config", "-c", path, NULL};
        char *out = NULL, *errs = NULL;
        int rc = th_taskorad(args, &out, &errs, 10000);
        ck_assert_msg(rc == 0, "%s: rc %d: %s", files[i], rc, errs);
        ck_assert_msg(strstr(out, ": OK") != NULL, "%s", out);
        free(out);
        free(errs);
    }
    unsetenv("TASKORA_PLUGIN_DIR");
}
END_TEST

/* A plugin's config value outside its field's range is refused before the plugin starts,
 * naming the JSON path (the host enforces TK_CFG_RANGE). */
START_TEST(test_plugin_values_out_of_range_are_refused_naming_the_path)
{
    use_built_plugins();
    static const char *const cases[][3] = {
        {"http_api", "{\"jwt_secret\": \"x\", \"bcrypt_cost\": 3}",
         "plugins[0].config.bcrypt_cost: 3 is outside 4..16"},
        {"http_api", "{\"jwt_secret\": \"x\", \"chat_max_rounds\": 21}",
         "plugins[0].config.chat_max_rounds: 21 is outside 1..20"},
        {"http_api", "{\"jwt_secret\": \"x\", \"limits\": {\"buckets\": 4}}",
         "plugins[0].config.limits.buckets: 4 is outside 8..16777216"},
        {"http_api",
         "{\"jwt_secret\": \"x\", \"limits\": {\"chat_per_user\": {\"per_minute\": -1}}}",
         "plugins[0].config.limits.chat_per_user.per_minute: -1 is outside 0..1000000"},
        {"http_api", "{\"jwt_secret\": \"x\", \"limits\": {\"password_hash_queue\": -2}}",
         "plugins[0].config.limits.password_hash_queue: -2 is outside -1..100000"},
        {"realtime", "{\"max_event_bytes\": 100000}",
         "plugins[0].config.max_event_bytes: 100000 is outside 1024..61440"},
        {"realtime", "{\"max_streams_per_user\": 0}",
         "plugins[0].config.max_streams_per_user: 0 is outside 1.."},
        {"ai_gemini", "{\"timeout_ms\": 0}",
         "plugins[0].config.timeout_ms: 0 is outside 1..3600000"},
        {"ai_openai", "{\"max_tokens\": 0}", "plugins[0].config.max_tokens: 0 is outside 1.."},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = th_write(dir, "range.json",
                              th_fmt("{\"plugin_dir\": \"${TASKORA_PLUGIN_DIR}\","
                                     " \"plugins\": [{\"name\": \"p\", \"load\": \"%s\","
                                     " \"config\": %s}]}",
                                     cases[i][0], cases[i][1]));
        const char *args[] = {"check-config", "-c", path, NULL};
        char *out = NULL, *errs = NULL;
        int rc = th_taskorad(args, &out, &errs, 10000);
        ck_assert_msg(rc == 2, "%s %s: rc %d: %s", cases[i][0], cases[i][1], rc, errs);
        ck_assert_msg(strstr(errs, cases[i][2]), "%s %s: %s", cases[i][0], cases[i][1], errs);
        free(out);
        free(errs);
        free(path);
    }
    unsetenv("TASKORA_PLUGIN_DIR");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_syntax_error_names_file_line_and_column);
    tcase_add_test(tc, test_defaults_are_filled_in);
    tcase_add_test(tc, test_env_substitution_with_and_without_default);
    tcase_add_test(tc, test_unset_variable_is_an_error_naming_it_and_the_path);
    tcase_add_test(tc, test_unknown_key_is_an_error_with_its_path);
    tcase_add_test(tc, test_wrong_type_and_bad_choice_are_errors);
    tcase_add_test(tc, test_out_of_range_numbers_name_file_path_and_range);
    tcase_add_test(tc, test_strings_from_environment_become_numbers_and_lists);
    tcase_add_test(tc, test_plugin_entries_need_name_and_load_and_unique_names);
    tcase_add_test(tc, test_duplicate_json_keys_are_refused);
    tcase_add_test(tc, test_check_config_command_reports_line_and_exits_2);
    tcase_add_test(tc, test_shipped_configs_pass_check_config);
    tcase_add_test(tc, test_plugin_values_out_of_range_are_refused_naming_the_path);
    tcase_add_test(tc, test_out_of_memory_is_a_clear_error_at_any_point);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
