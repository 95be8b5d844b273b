/* The example plugin, loaded alone with a fake host table: no taskorad symbols needed. */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "testhelp.h"

static void *dl;
static const tk_plugin *desc;

static void setup(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/examples/hello_consumer/.libs/hello_consumer.so",
             th_builddir());
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(dl != NULL, "%s", dlerror());
    void *sym = dlsym(dl, TK_PLUGIN_ENTRY_SYMBOL);
    ck_assert_ptr_nonnull(sym);
    tk_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof(entry));
    desc = entry();
}

static void teardown(void) { dlclose(dl); }

static tk_event event_of_type(const char *type, tk_event_header *h)
{
    h->name = "ce_type";
    h->value = type;
    h->value_len = strlen(type);
    tk_event ev = {.struct_size = sizeof(tk_event),
                   .topic = "task-events",
                   .value = "{}",
                   .value_len = 2,
                   .headers = h,
                   .header_count = 1};
    return ev;
}

START_TEST(test_descriptor_declares_abi_and_capabilities)
{
    ck_assert_uint_eq(desc->abi_major, TK_PLUGIN_ABI_MAJOR);
    ck_assert_uint_eq(desc->struct_size, sizeof(tk_plugin));
    ck_assert_str_eq(desc->name, "hello_consumer");
    ck_assert_ptr_nonnull(desc->consume);
    ck_assert_ptr_nonnull(desc->migrations);
    ck_assert_ptr_nonnull(desc->migrations[0]);
}
END_TEST

START_TEST(test_counts_consumed_events_and_serves_them)
{
    tk_instance inst;
    fake_instance_init(&inst, "hello", "{\"greeting\": \"hi\", \"route\": \"/hello\"}");
    void *state = NULL;
    ck_assert_int_eq(desc->init(&fake_host, &inst, &state), TK_OK);
    ck_assert_int_eq(inst.nroutes, 1);
    ck_assert_str_eq(inst.routes[0].pattern, "/hello");
    tk_event_header h;
    tk_event ev = event_of_type("task.created", &h);
    ck_assert_int_eq(desc->consume(state, &ev), TK_CONSUME_OK);
    ck_assert_int_eq(desc->consume(state, &ev), TK_CONSUME_OK);
    tk_event ev2 = event_of_type("task.deleted", &h);
    ck_assert_int_eq(desc->consume(state, &ev2), TK_CONSUME_OK);
    tk_event bare = {.struct_size = sizeof(tk_event), .topic = "task-events"};
    ck_assert_int_eq(desc->consume(state, &bare), TK_CONSUME_OK);
    tk_http_request req = {.method = "GET", .path = "/hello"};
    tk_http_response resp = {0};
    ck_assert_int_eq(fake_call(&inst, "GET", "/hello", &req, &resp), TK_OK);
    ck_assert_str_eq(resp.body, "{\"greeting\":\"hi\",\"instance\":\"hello\",\"events\":"
                                "{\"task.created\":2,\"task.deleted\":1,\"unknown\":1}}");
    ck_assert(fake_metric(&inst, "taskora_hello_events_total{task.created}") == 2.0);
    fake_response_clear(&resp);
    desc->destroy(state);
    fake_instance_clear(&inst);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hello_consumer");
    TCase *tc = tcase_create("fake host");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_descriptor_declares_abi_and_capabilities);
    tcase_add_test(tc, test_counts_consumed_events_and_serves_them);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
