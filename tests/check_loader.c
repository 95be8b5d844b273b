/* Plugin loading: each refusal is one clear line and exit 2; a good plugin is listed. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "taskora/plugin.h"
#include "testhelp.h"

static char *dir;

static void setup(void) { dir = th_tmpdir(); }
static void teardown(void)
{
    th_rmtree(dir);
    free(dir);
}

/* Writes a config with the given "plugins" array and runs `taskorad CMD -c` on it. */
static int run_with_plugins(const char *cmd, const char *plugins, char **out, char **err)
{
    char text[8192];
    snprintf(text, sizeof(text),
             "{\"app_id\": \"loader-test\", \"log\": {\"format\": \"text\"},"
             " \"http\": {\"enabled\": false}, \"kafka\": {\"brokers\": \"127.0.0.1:1\"},"
             " \"plugin_dir\": \"%s:extra-dir\", \"plugins\": %s}",
             th_plugin_dir(), plugins);
    char *path = th_write(dir, "taskora.json", text);
    const char *args[] = {cmd, "-c", path, NULL};
    int rc = th_taskorad(args, out, err, 20000);
    free(path);
    return rc;
}

/* Asserts `taskorad plugins` refuses the plugins with exit 2 and one line holding each needle. */
static void expect_refusal(const char *plugins, const char *n1, const char *n2)
{
    char *out = NULL, *err = NULL;
    int rc = run_with_plugins("plugins", plugins, &out, &err);
    ck_assert_msg(rc == 2, "exit %d, stderr: %s", rc, err);
    ck_assert_msg(strstr(err, n1) != NULL, "missing \"%s\" in: %s", n1, err);
    ck_assert_msg(!n2 || strstr(err, n2) != NULL, "missing \"%s\" in: %s", n2, err);
    const char *nl = strchr(err, '\n');
    ck_assert_msg(nl && nl[1] == '\0', "expected exactly one line: %s", err);
    free(out);
    free(err);
}

START_TEST(test_missing_file_lists_where_it_looked)
{
    char tmp[8192];
    snprintf(tmp, sizeof(tmp), "%s/nope.so", th_plugin_dir());
    expect_refusal("[{\"name\": \"x\", \"load\": \"nope\"}]",
                   "plugins[0].load: plugin \"nope\" not found; looked in: ", tmp);
    expect_refusal("[{\"name\": \"x\", \"load\": \"nope\"}]", "extra-dir/nope.so", NULL);
}
END_TEST

START_TEST(test_file_that_is_not_a_shared_object_is_refused)
{
    free(th_write(dir, "garbage.so", "this is not ELF\n"));
    expect_refusal("[{\"name\": \"x\", \"load\": \"./garbage.so\"}]",
                   "garbage.so: not a shared object", NULL);
}
END_TEST

START_TEST(test_shared_object_without_entry_symbol_is_refused)
{
    expect_refusal("[{\"name\": \"x\", \"load\": \"no_entry\"}]",
                   "no_entry.so: no entry symbol taskora_plugin_entry()", NULL);
}
END_TEST

START_TEST(test_other_abi_major_is_refused_naming_both_versions)
{
    char want[128];
    snprintf(want, sizeof(want), "built for plugin ABI %d.0, but this taskorad provides ABI %d.%d",
             TK_PLUGIN_ABI_MAJOR + 1, TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);
    expect_refusal("[{\"name\": \"x\", \"load\": \"abi_major\"}]", "abi_major.so: ", want);
}
END_TEST

START_TEST(test_newer_abi_minor_is_refused)
{
    char want[128];
    snprintf(want, sizeof(want), "built for plugin ABI %d.%d, newer than this taskorad's ABI %d.%d",
             TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR + 1, TK_PLUGIN_ABI_MAJOR,
             TK_PLUGIN_ABI_MINOR);
    expect_refusal("[{\"name\": \"x\", \"load\": \"abi_minor\"}]", "abi_minor.so: ", want);
}
END_TEST

START_TEST(test_too_small_descriptor_is_refused)
{
    expect_refusal("[{\"name\": \"x\", \"load\": \"small_descriptor\"}]",
                   "small_descriptor.so: descriptor is 16 bytes, smaller than", NULL);
}
END_TEST

START_TEST(test_duplicate_instance_name_is_refused)
{
    expect_refusal("[{\"name\": \"t\", \"load\": \"test_plugin\"},"
                   " {\"name\": \"t\", \"load\": \"test_plugin\"}]",
                   "plugins[1].name: duplicate instance name \"t\" (also plugins[0])", NULL);
}
END_TEST

START_TEST(test_plugin_config_is_checked_against_its_schema)
{
    expect_refusal(
        "[{\"name\": \"t\", \"load\": \"test_plugin\", \"config\": {\"greting\": \"x\"}}]",
        "plugins[0].config.greting: unknown key (known keys: record, greeting", NULL);
    expect_refusal(
        "[{\"name\": \"t\", \"load\": \"test_plugin\", \"config\": {\"level\": \"mid\"}}]",
        "plugins[0].config.level: \"mid\" is not one of low|high", NULL);
    expect_refusal("[{\"name\": \"t\", \"load\": \"test_plugin\","
                   " \"config\": {\"limits\": {\"max\": \"many\"}}}]",
                   "plugins[0].config.limits.max: expected an integer", NULL);
    expect_refusal("[{\"name\": \"t\", \"load\": \"abi_major\", \"config\": {\"a\": 1}}]",
                   "abi_major.so", NULL);
}
END_TEST

START_TEST(test_init_failure_destroys_instances_already_initialised)
{
    char *record = th_write(dir, "record.txt", "");
    char plugins[4096];
    snprintf(plugins, sizeof(plugins),
             "[{\"name\": \"first\", \"load\": \"test_plugin\", \"config\": {\"record\": \"%s\", "
             "\"route_prefix\": \"\"}},"
             " {\"name\": \"second\", \"load\": \"test_plugin\","
             "  \"config\": {\"record\": \"%s\", \"fail_init\": true}},"
             " {\"name\": \"third\", \"load\": \"test_plugin\", \"config\": {\"record\": \"%s\"}}]",
             record, record, record);
    char *out = NULL, *err = NULL;
    int rc = run_with_plugins("run", plugins, &out, &err);
    ck_assert_msg(rc == 2, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, "plugin instance \"second\"") &&
                      strstr(err, "init failed: unavailable"),
                  "%s", err);
    char *rec = th_read(record);
    ck_assert_str_eq(rec, "init first\ninit second\ndestroy first\n");
    free(rec);
    free(record);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_plugins_command_lists_instances)
{
    char *out = NULL, *err = NULL;
    int rc = run_with_plugins("plugins",
                              "[{\"name\": \"alpha\", \"load\": \"test_plugin\"},"
                              " {\"name\": \"beta\", \"load\": \"test_plugin\","
                              "  \"config\": {\"greeting\": \"yo\"}}]",
                              &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    char abi[16];
    snprintf(abi, sizeof(abi), " %d.%d ", TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);
    ck_assert_msg(strstr(out, "INSTANCE") && strstr(out, "CAPABILITIES"), "%s", out);
    ck_assert_msg(strstr(out, "alpha ") && strstr(out, "beta "), "%s", out);
    ck_assert_msg(strstr(out, "test_plugin ") && strstr(out, "1.2.3") && strstr(out, abi), "%s",
                  out);
    ck_assert_msg(strstr(out, "http,migrations,config"), "%s", out);
    ck_assert_msg(strstr(out, "/tests/plugins/.libs/test_plugin.so"), "%s", out);
    free(out);
    free(err);
    rc = run_with_plugins("check-config", "[{\"name\": \"alpha\", \"load\": \"test_plugin\"}]",
                          &out, &err);
    ck_assert_msg(rc == 0 && strstr(out, "OK (1 plugin instance)"), "exit %d: %s %s", rc, out, err);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_port_in_use_is_a_runtime_failure)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"http\": {\"listen\": \"127.0.0.1:%d\"}, \"kafka\": {\"brokers\": \"127.0.0.1:1\"},"
             " \"log\": {\"format\": \"text\"}}",
             ntohs(a.sin_port));
    char *path = th_write(dir, "busy.json", text);
    const char *args[] = {"run", "-c", path, NULL};
    char *err = NULL;
    int rc = th_taskorad(args, NULL, &err, 20000);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, "cannot listen on 127.0.0.1:"), "%s", err);
    free(err);
    free(path);
    close(fd);
}
END_TEST

START_TEST(test_usage_errors_exit_2)
{
    const char *a1[] = {"frobnicate", NULL};
    const char *a2[] = {"--bogus", NULL};
    const char *a3[] = {"check-config", "-c", "/nonexistent/taskora.json", NULL};
    const char *a4[] = {"--version", NULL};
    char *err = NULL, *out = NULL;
    ck_assert_int_eq(th_taskorad(a1, NULL, &err, 5000), 2);
    ck_assert_msg(strstr(err, "unknown command \"frobnicate\""), "%s", err);
    free(err);
    ck_assert_int_eq(th_taskorad(a2, NULL, NULL, 5000), 2);
    ck_assert_int_eq(th_taskorad(a3, NULL, &err, 5000), 2);
    ck_assert_msg(strstr(err, "/nonexistent/taskora.json: cannot open"), "%s", err);
    free(err);
    ck_assert_int_eq(th_taskorad(a4, &out, NULL, 5000), 0);
    ck_assert_msg(strstr(out, "taskorad ") && strstr(out, "plugin ABI"), "%s", out);
    free(out);
}
END_TEST

/* ---- instances: their consumer group and how events reach their handlers ---------------- */

START_TEST(test_group_is_the_configured_one_or_named_after_the_instance)
{
    tk_instance inst = {.name = "worker"};
    char buf[64];
    ck_assert_str_eq(tk_instance_group(&inst, buf, sizeof(buf)), "taskora-worker");
    inst.consume = json_pack("{s:[s]}", "topics", "task-events");
    ck_assert_str_eq(tk_instance_group(&inst, buf, sizeof(buf)), "taskora-worker");
    json_object_set_new(inst.consume, "group", json_string("analytics-v2"));
    ck_assert_str_eq(tk_instance_group(&inst, buf, sizeof(buf)), "analytics-v2");
    ck_assert_str_eq(tk_instance_group(&inst, buf, 6), "analy"); /* cut to the buffer */
    json_decref(inst.consume);
}
END_TEST

static int consume_calls, batch_calls;
static size_t batch_sizes;

static tk_consume_result consume_ok(void *state, const tk_event *ev)
{
    (void)state, (void)ev;
    consume_calls++;
    return TK_CONSUME_OK;
}

static void batch_fail(void *state, const tk_event *const *events, size_t n,
                       tk_consume_result *results)
{
    (void)state, (void)events;
    batch_calls++;
    batch_sizes += n;
    for (size_t i = 0; i < n; i++)
        results[i] = TK_CONSUME_FAIL;
}

/* Hands n events to a plugin with the given handlers; the results must all be `want`. */
static void consume_with(const tk_plugin *d, size_t n, tk_consume_result want)
{
    tk_plugin_type type = {.desc = d};
    tk_instance inst = {.name = "sink", .type = &type};
    tk_event evs[3] = {{.struct_size = sizeof(tk_event)}};
    const tk_event *p[3] = {&evs[0], &evs[1], &evs[2]};
    tk_consume_result r[3] = {TK_CONSUME_OK, TK_CONSUME_OK, TK_CONSUME_OK};
    consume_calls = batch_calls = 0;
    batch_sizes = 0;
    tk_instance_consume(&inst, p, n, r);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(r[i], want);
}

START_TEST(test_events_reach_consume_one_at_a_time_and_consume_batch_together)
{
    tk_plugin both = {TK_PLUGIN_HEADER, .name = "both", .consume = consume_ok,
                      .consume_batch = batch_fail};
    consume_with(&both, 1, TK_CONSUME_OK);
    ck_assert_int_eq(consume_calls, 1);
    ck_assert_int_eq(batch_calls, 0);
    consume_with(&both, 3, TK_CONSUME_FAIL);
    ck_assert_int_eq(consume_calls, 0);
    ck_assert_int_eq(batch_calls, 1);
    ck_assert_uint_eq(batch_sizes, 3);

    tk_plugin batch_only = {TK_PLUGIN_HEADER, .name = "batch", .consume_batch = batch_fail};
    consume_with(&batch_only, 1, TK_CONSUME_FAIL);
    ck_assert_int_eq(batch_calls, 1);
    ck_assert_uint_eq(batch_sizes, 1);

    tk_plugin consume_only = {TK_PLUGIN_HEADER, .name = "one", .consume = consume_ok};
    consume_with(&consume_only, 3, TK_CONSUME_OK);
    ck_assert_int_eq(consume_calls, 3);
}
END_TEST

START_TEST(test_consume_batch_of_a_plugin_older_than_1_4_is_never_called)
{
    /* the field lies beyond what a 1.3 descriptor has: whatever is there is not a handler */
    tk_plugin old = {TK_PLUGIN_HEADER, .name = "old", .consume = consume_ok,
                     .consume_batch = batch_fail};
    old.abi_minor = 3;
    consume_with(&old, 3, TK_CONSUME_OK);
    ck_assert_int_eq(consume_calls, 3);
    ck_assert_int_eq(batch_calls, 0);
    tk_plugin none = {TK_PLUGIN_HEADER, .name = "none", .consume_batch = batch_fail};
    none.abi_minor = 3;
    consume_with(&none, 2, TK_CONSUME_RETRY);
    ck_assert_int_eq(batch_calls, 0);
}
END_TEST

/* ---- plugins built for an older minor (ABI 1.6 additions) ------------------------------------ */

START_TEST(test_schema_of_a_1_5_plugin_is_read_with_its_own_layout)
{
    expect_refusal("[{\"name\": \"o\", \"load\": \"abi_1_5\", \"config\": {\"mode\": \"c\"}}]",
                   "plugins[0].config.mode: \"c\" is not one of a|b", NULL);
    expect_refusal("[{\"name\": \"o\", \"load\": \"abi_1_5\","
                   " \"config\": {\"nested\": {\"depth\": \"deep\"}}}]",
                   "plugins[0].config.nested.depth: expected an integer", NULL);
    expect_refusal("[{\"name\": \"o\", \"load\": \"abi_1_5\", \"config\": {\"colour\": 1}}]",
                   "plugins[0].config.colour: unknown key (known keys: greeting, mode, "
                   "authenticator, nested)",
                   NULL);
    char *out = NULL, *err = NULL;
    int rc = run_with_plugins("plugins",
                              "[{\"name\": \"o\", \"load\": \"abi_1_5\","
                              " \"config\": {\"nested\": {\"depth\": 9}}}]",
                              &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(out, "abi_1_5") && strstr(out, "1.5"), "%s", out);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_config_ranges_are_enforced_naming_the_path)
{
    expect_refusal("[{\"name\": \"t\", \"load\": \"test_plugin\", \"config\": {\"percent\": 101}}]",
                   "plugins[0].config.percent: 101 is outside 0..100", NULL);
    expect_refusal(
        "[{\"name\": \"t\", \"load\": \"test_plugin\", \"config\": {\"percent\": \"-1\"}}]",
        "plugins[0].config.percent: -1 is outside 0..100", NULL);
    expect_refusal("[{\"name\": \"t\", \"load\": \"test_plugin\", \"config\": {\"ratio\": 1.5}}]",
                   "plugins[0].config.ratio: 1.5 is outside 0..1", NULL);
    char *out = NULL, *err = NULL;
    int rc = run_with_plugins("plugins",
                              "[{\"name\": \"t\", \"load\": \"test_plugin\", \"config\": "
                              "{\"percent\": 100, \"ratio\": 0}}]",
                              &out, &err);
    ck_assert_msg(rc == 0, "the bounds themselves are allowed: exit %d: %s", rc, err);
    free(out);
    free(err);
}
END_TEST

static th_daemon dd;

/* Writes dir/FILE: a config with the given plugins and HTTP on a free port. */
static char *run_config(const char *file, const char *plugins)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"app_id\": \"loader-test\", \"log\": {\"format\": \"text\"},"
             " \"http\": {\"listen\": \"127.0.0.1:0\"}, \"kafka\": {\"brokers\": \"127.0.0.1:1\"},"
             " \"plugin_dir\": \"%s\", \"plugins\": %s}",
             th_plugin_dir(), plugins);
    return th_write(dir, file, text);
}

/* Starts taskorad with the given plugins. */
static void start_daemon(const char *plugins)
{
    char *cfg = run_config("run.json", plugins);
    th_daemon_start_named(&dd, dir, cfg, "taskorad");
    free(cfg);
}

/* GET path (as user, or anonymous): asserts the status and that the body holds `want`. */
static void expect_get(const char *path, const char *user, long status, const char *want)
{
    char url[512], hdr[128];
    snprintf(url, sizeof(url), "%s%s", dd.url, path);
    snprintf(hdr, sizeof(hdr), "X-Test-User: %s", user ? user : "");
    const char *h[] = {hdr, NULL};
    th_response r;
    ck_assert_int_eq(th_http("GET", url, NULL, 0, user ? h : NULL, &r), 0);
    ck_assert_msg(r.status == status, "GET %s: %ld, want %ld: %s", path, r.status, status, r.body);
    ck_assert_msg(strstr(r.body, want), "GET %s: no %s in %s", path, want, r.body);
    if (status == 401) {
        char *www = th_header(&r, "www-authenticate");
        ck_assert_msg(www && strcmp(www, "Bearer") == 0, "GET %s: 401 without WWW-Authenticate",
                      path);
        free(www);
    }
    th_response_free(&r);
}

START_TEST(test_a_1_4_authenticator_answers_both_generations_of_callers)
{
    start_daemon(
        "[{\"name\": \"old\", \"load\": \"abi_1_5\", \"config\": {\"authenticator\": true}},"
        " {\"name\": \"new\", \"load\": \"test_plugin\"}]");
    expect_get("/old/config", NULL, 200, "{\"greeting\":\"hello\",\"mode\":\"a\",\"depth\":3}");
    expect_get("/old/whoami", "ada", 200, "{\"user\":\"ada\",\"via\":\"1.4\"}");
    expect_get("/old/whoami", NULL, 401, "Not authenticated");
    expect_get("/test/whoami2", "ada", 200, "{\"user\":\"ada\",\"via\":\"1.6\",\"percent\":50}");
    expect_get("/test/whoami2", NULL, 401, "Not authenticated");
    th_daemon_cleanup(&dd);
}
END_TEST

START_TEST(test_a_1_6_authenticator_answers_both_generations_of_callers)
{
    start_daemon(
        "[{\"name\": \"old\", \"load\": \"abi_1_5\"},"
        " {\"name\": \"new\", \"load\": \"test_plugin\", \"config\": {\"authenticator2\": true}}]");
    expect_get("/old/whoami", "grace", 200, "{\"user\":\"grace\",\"via\":\"1.4\"}");
    expect_get("/old/whoami", NULL, 401, "Not authenticated");
    expect_get("/test/whoami2", "grace", 200, "{\"user\":\"grace\",\"via\":\"1.6\"");
    expect_get("/test/whoami2", NULL, 401, "Not authenticated");
    th_daemon_cleanup(&dd);
}
END_TEST

START_TEST(test_without_an_authenticator_both_callers_answer_503)
{
    start_daemon("[{\"name\": \"old\", \"load\": \"abi_1_5\"},"
                 " {\"name\": \"new\", \"load\": \"test_plugin\"}]");
    expect_get("/old/whoami", "x", 503, "No authenticator is loaded");
    expect_get("/test/whoami2", "x", 503, "No authenticator is loaded");
    th_daemon_cleanup(&dd);
}
END_TEST

START_TEST(test_two_authenticators_of_either_generation_are_refused)
{
    char *path = run_config(
        "two.json",
        "[{\"name\": \"old\", \"load\": \"abi_1_5\", \"config\": {\"authenticator\": true}},"
        " {\"name\": \"new\", \"load\": \"test_plugin\", \"config\": {\"authenticator2\": true}}]");
    const char *args[] = {"run", "-c", path, NULL};
    char *err = NULL;
    int rc = th_taskorad(args, NULL, &err, 20000);
    ck_assert_msg(rc != 0, "started with two authenticators: %s", err);
    ck_assert_msg(strstr(err, "another plugin already authenticates"), "%s", err);
    ck_assert_msg(strstr(err, "init failed: already exists"), "%s", err);
    free(err);
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_missing_file_lists_where_it_looked);
    tcase_add_test(tc, test_file_that_is_not_a_shared_object_is_refused);
    tcase_add_test(tc, test_shared_object_without_entry_symbol_is_refused);
    tcase_add_test(tc, test_other_abi_major_is_refused_naming_both_versions);
    tcase_add_test(tc, test_newer_abi_minor_is_refused);
    tcase_add_test(tc, test_too_small_descriptor_is_refused);
    tcase_add_test(tc, test_duplicate_instance_name_is_refused);
    tcase_add_test(tc, test_plugin_config_is_checked_against_its_schema);
    tcase_add_test(tc, test_init_failure_destroys_instances_already_initialised);
    tcase_add_test(tc, test_plugins_command_lists_instances);
    tcase_add_test(tc, test_port_in_use_is_a_runtime_failure);
    tcase_add_test(tc, test_usage_errors_exit_2);
    tcase_add_test(tc, test_schema_of_a_1_5_plugin_is_read_with_its_own_layout);
    tcase_add_test(tc, test_config_ranges_are_enforced_naming_the_path);
    tcase_add_test(tc, test_a_1_4_authenticator_answers_both_generations_of_callers);
    tcase_add_test(tc, test_a_1_6_authenticator_answers_both_generations_of_callers);
    tcase_add_test(tc, test_without_an_authenticator_both_callers_answer_503);
    tcase_add_test(tc, test_two_authenticators_of_either_generation_are_refused);
    suite_add_tcase(s, tc);
    TCase *ti = tcase_create("instance");
    tcase_add_test(ti, test_group_is_the_configured_one_or_named_after_the_instance);
    tcase_add_test(ti, test_events_reach_consume_one_at_a_time_and_consume_batch_together);
    tcase_add_test(ti, test_consume_batch_of_a_plugin_older_than_1_4_is_never_called);
    suite_add_tcase(s, ti);
    return th_run_suite(s);
}
