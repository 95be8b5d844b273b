/*
 * The plugins' toolkit (plugins/kit): times, request arguments, answers, Retry-After. The
 * plugins read these the same way because they share this code; this suite pins how.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "kit.h"
#include "testhelp.h"

/* ---- times ---------------------------------------------------------------------------------- */

/* s parsed (flags 0) and written in the API's form. */
static const char *iso(const char *s)
{
    static char out[KIT_TIME_LEN];
    int64_t us;
    if (kit_time_parse(s, 0, &us) != TK_OK)
        return "invalid";
    kit_time_format(us, KIT_TIME_ISO, out, sizeof(out));
    return out;
}

START_TEST(test_times_in_every_accepted_form)
{
    static const char *const cases[][2] = {
        {"2026-02-04T12:00:00Z", "2026-02-04T12:00:00.000000+00:00"},
        {"2026-02-04t12:00:00z", "2026-02-04T12:00:00.000000+00:00"},
        {"2026-02-04 12:00:00", "2026-02-04T12:00:00.000000+00:00"}, /* naive: UTC */
        {"2026-02-04", "2026-02-04T00:00:00.000000+00:00"},
        {"2026-02-04T12:30", "2026-02-04T12:30:00.000000+00:00"},
        {"2026-02-04T12:00:00.5Z", "2026-02-04T12:00:00.500000+00:00"},
        {"2026-02-04T12:00:00,123456789Z", "2026-02-04T12:00:00.123456+00:00"},
        {"2026-02-04T12:00:00+02:00", "2026-02-04T10:00:00.000000+00:00"},
        {"2026-02-04T12:00:00+0230", "2026-02-04T09:30:00.000000+00:00"},
        {"2026-02-04T01:00:00-02", "2026-02-04T03:00:00.000000+00:00"},
        {"2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000000+00:00"},
        {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000+00:00"},
        {"9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999+00:00"},
        {"1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500000+00:00"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(strcmp(iso(cases[i][0]), cases[i][1]) == 0, "%s: %s", cases[i][0],
                      iso(cases[i][0]));
}
END_TEST

START_TEST(test_times_that_are_not_are_refused)
{
    static const char *const bad[] = {
        "",
        "yesterday",
        "2026-02-30T00:00:00Z",            /* no such day */
        "2025-02-29",                      /* not a leap year */
        "2026-13-01",                      /* month */
        "2026-02-04T24:00:00Z",            /* hour */
        "2026-02-04T12:60:00Z",            /* minute */
        "2026-02-04T12:00:60Z",            /* no leap second */
        "2026-02-04T12:00:00.Z",           /* an empty fraction */
        "2026-02-04T12:00:00.1234567890Z", /* ten digits */
        "2026-02-04T12:00:00+24:00",       /* offset */
        "2026-02-04T12:00:00+02:60",
        "2026-02-04Z", /* a zone without a time */
        "2026-02-04T12",
        "2026-02-04T12:00:00Z ",     /* trailing text */
        "0000-12-31T00:00:00Z",      /* year 0 */
        "0001-01-01T00:00:00+01:00", /* before year 1 in UTC */
        "9999-12-31T23:30:00-01:00", /* after 9999 in UTC */
        "12026-01-01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t us = 42;
        ck_assert_msg(kit_time_parse(bad[i], 0, &us) == TK_EINVAL, "%s accepted", bad[i]);
        ck_assert_msg(us == 42, "%s: wrote a value", bad[i]);
    }
    int64_t us;
    ck_assert_int_eq(kit_time_parse(NULL, 0, &us), TK_EINVAL);
}
END_TEST

START_TEST(test_datetime_flag_wants_a_time_of_day_with_seconds)
{
    int64_t us;
    ck_assert_int_eq(kit_time_parse("2026-02-04", KIT_TIME_DATETIME, &us), TK_EINVAL);
    ck_assert_int_eq(kit_time_parse("2026-02-04T12:30Z", KIT_TIME_DATETIME, &us), TK_EINVAL);
    ck_assert_int_eq(kit_time_parse("2026-02-04T12:30:00Z", KIT_TIME_DATETIME, &us), TK_OK);
    ck_assert_int_eq(us, INT64_C(1770208200000000));
}
END_TEST

START_TEST(test_time_styles)
{
    int64_t us;
    ck_assert_int_eq(kit_time_parse("2026-02-04T23:59:59.000001+00:00", 0, &us), TK_OK);
    char out[KIT_TIME_LEN];
    kit_time_format(us, KIT_TIME_SQL, out, sizeof(out));
    ck_assert_str_eq(out, "2026-02-04 23:59:59.000001");
    kit_time_format(us, KIT_TIME_DAY, out, sizeof(out));
    ck_assert_str_eq(out, "2026-02-04");
    kit_time_format(0, KIT_TIME_ISO, out, sizeof(out));
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000000+00:00");
    /* out of the years 1 to 9999: the nearest end */
    kit_time_format(INT64_MAX, KIT_TIME_DAY, out, sizeof(out));
    ck_assert_str_eq(out, "9999-12-31");
    kit_time_format(INT64_MIN, KIT_TIME_DAY, out, sizeof(out));
    ck_assert_str_eq(out, "0001-01-01");
    int64_t now = kit_time_now_us();
    ck_assert(now > INT64_C(1700000000000000));
}
END_TEST

/* ---- request arguments ------------------------------------------------------------------- */

/* The type of the only 422 entry collected, or "" (and the entries are freed). */
static const char *only_error(kit_errors *e, const char *where, const char *name)
{
    static char type[64];
    type[0] = '\0';
    if (json_array_size(e->list) == 1) {
        json_t *x = json_array_get(e->list, 0);
        json_t *loc = json_object_get(x, "loc");
        ck_assert_str_eq(json_string_value(json_array_get(loc, 0)), where);
        ck_assert_str_eq(json_string_value(json_array_get(loc, 1)), name);
        ck_assert(json_is_string(json_object_get(x, "msg")));
        snprintf(type, sizeof(type), "%s", json_string_value(json_object_get(x, "type")));
    } else {
        ck_assert_int_eq(json_array_size(e->list), 0);
    }
    kit_errors_free(e);
    kit_errors_init(e);
    return type;
}

START_TEST(test_integer_arguments)
{
    static const struct {
        const char *v;
        int rc;
        int64_t n;
        const char *type;
    } cases[] = {
        {"5", TK_OK, 5, ""},
        {"+5", TK_OK, 5, ""},
        {"1", TK_OK, 1, ""},
        {"365", TK_OK, 365, ""},
        {"0", TK_EINVAL, 0, "greater_than_equal"},
        {"366", TK_EINVAL, 0, "less_than_equal"},
        {"99999999999999999999", TK_EINVAL, 0, "less_than_equal"}, /* beyond 64 bits */
        {"-99999999999999999999", TK_EINVAL, 0, "greater_than_equal"},
        {"", TK_EINVAL, 0, "int_parsing"},
        {"abc", TK_EINVAL, 0, "int_parsing"},
        {"1.5", TK_EINVAL, 0, "int_parsing"},
        {"5 ", TK_EINVAL, 0, "int_parsing"},
    };
    kit_errors e;
    kit_errors_init(&e);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t n = -7;
        ck_assert_int_eq(kit_int_arg(&e, "query", "days", cases[i].v, 1, 365, &n), cases[i].rc);
        if (cases[i].rc == TK_OK)
            ck_assert_int_eq(n, cases[i].n);
        else
            ck_assert_int_eq(n, -7);
        ck_assert_msg(strcmp(only_error(&e, "query", "days"), cases[i].type) == 0, "%s",
                      cases[i].v);
    }
    int64_t n = -7;
    ck_assert_int_eq(kit_int_arg(&e, "query", "days", NULL, 1, 365, &n), TK_ENOTFOUND);
    ck_assert_int_eq(n, -7);
    /* a path parameter: anything but an integer in range names no object */
    ck_assert_int_eq(kit_path_int(&e, "2147483647", "task_id", INT32_MIN, INT32_MAX), INT32_MAX);
    ck_assert_str_eq(only_error(&e, "path", "task_id"), "");
    kit_path_int(&e, "2147483648", "task_id", INT32_MIN, INT32_MAX);
    ck_assert_str_eq(only_error(&e, "path", "task_id"), "int_parsing");
    kit_path_int(&e, "7x", "task_id", INT32_MIN, INT32_MAX);
    ck_assert_str_eq(only_error(&e, "path", "task_id"), "int_parsing");
    kit_errors_free(&e);
}
END_TEST

START_TEST(test_query_arguments_through_the_host)
{
    tk_http_request req = {.method = "GET", .path = "/x"};
    req.query = json_pack("{s:s,s:s,s:s,s:s}", "a", "t", "b", "Off", "c", "maybe", "n", "42");
    json_object_set_new(req.query, "d", json_stringn_nocheck("\xff", 1)); /* not UTF-8 */
    kit_errors e;
    kit_errors_init(&e);
    ck_assert_int_eq(kit_query_bool(&fake_host, &req, &e, "a", 0), 1);
    ck_assert_int_eq(kit_query_bool(&fake_host, &req, &e, "b", 1), 0);
    ck_assert_int_eq(kit_query_bool(&fake_host, &req, &e, "absent", 1), 1);
    ck_assert_str_eq(only_error(&e, "query", "a"), "");
    ck_assert_int_eq(kit_query_bool(&fake_host, &req, &e, "c", 0), 0);
    ck_assert_str_eq(only_error(&e, "query", "c"), "bool_parsing");
    /* not UTF-8: said so, and read as absent */
    ck_assert_int_eq(kit_query_bool(&fake_host, &req, &e, "d", 1), 1);
    ck_assert_str_eq(only_error(&e, "query", "d"), "string_unicode");
    ck_assert_ptr_null(kit_query(&fake_host, &req, &e, "d"));
    ck_assert_str_eq(only_error(&e, "query", "d"), "string_unicode");
    ck_assert_int_eq(kit_query_int(&fake_host, &req, &e, "n", 1, 100, 5), 42);
    ck_assert_int_eq(kit_query_int(&fake_host, &req, &e, "absent", 1, 100, 5), 5);
    ck_assert_int_eq(kit_query_int(&fake_host, &req, &e, "n", 1, 10, 5), 5);
    ck_assert_str_eq(only_error(&e, "query", "n"), "less_than_equal");
    json_object_set_new(req.query, "when", json_string("2026-02-04T14:00:00+02:00"));
    json_object_set_new(req.query, "bad", json_string("2026-02-30"));
    int64_t us = 0;
    ck_assert_int_eq(kit_query_time(&fake_host, &req, &e, "when", 0, &us), TK_OK);
    ck_assert_int_eq(us, INT64_C(1770206400000000));
    ck_assert_int_eq(kit_query_time(&fake_host, &req, &e, "absent", 0, &us), TK_ENOTFOUND);
    ck_assert_str_eq(only_error(&e, "query", "when"), "");
    ck_assert_int_eq(kit_query_time(&fake_host, &req, &e, "bad", 0, &us), TK_EINVAL);
    ck_assert_str_eq(only_error(&e, "query", "bad"), "datetime_parsing");
    kit_errors_free(&e);
    json_decref(req.query);
}
END_TEST

START_TEST(test_utf8_lengths_count_characters)
{
    ck_assert_uint_eq(kit_utf8_len(""), 0);
    ck_assert_uint_eq(kit_utf8_len("abc"), 3);
    ck_assert_uint_eq(kit_utf8_len("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 8);
    ck_assert_uint_eq(kit_utf8_prefix("caf\xc3\xa9 \xe2\x82\xac", 4), 5); /* "café" */
    ck_assert_uint_eq(kit_utf8_prefix("caf\xc3\xa9 \xe2\x82\xac", 6), 9);
    ck_assert_uint_eq(kit_utf8_prefix("abc", 100), 3);
    ck_assert_uint_eq(kit_utf8_prefix("abc", 0), 0);
    ck_assert(kit_utf8_valid("caf\xc3\xa9"));
    ck_assert(!kit_utf8_valid("\xc0\xaf"));         /* overlong */
    ck_assert(!kit_utf8_valid("\xed\xa0\x80"));     /* a surrogate */
    ck_assert(!kit_utf8_valid("\xf4\x90\x80\x80")); /* past U+10FFFF */
    ck_assert(!kit_utf8_valid("\xe2\x82"));         /* cut short */
    int64_t t0 = kit_monotonic_ms();
    ck_assert(kit_monotonic_ms() >= t0);
}
END_TEST

/* ---- answers ------------------------------------------------------------------------------- */

START_TEST(test_answers)
{
    tk_http_response resp = {0};
    kit_errors e;
    kit_errors_init(&e);
    kit_errors_add(&e, "query", "days", "Input should be a valid integer", "int_parsing");
    kit_errors_add(&e, "body", NULL, "Input should be a valid dictionary", "dict_type");
    ck_assert(kit_errors_any(&e));
    ck_assert_int_eq(kit_errors_send(&fake_host, &resp, &e), TK_OK);
    ck_assert_int_eq(resp.status, 422);
    ck_assert_str_eq(resp.content_type, KIT_JSON_TYPE);
    ck_assert_str_eq(resp.body,
                     "{\"detail\":[{\"loc\":[\"query\",\"days\"],\"msg\":\"Input should be a "
                     "valid integer\",\"type\":\"int_parsing\"},{\"loc\":[\"body\"],\"msg\":"
                     "\"Input should be a valid dictionary\",\"type\":\"dict_type\"}]}");
    fake_response_clear(&resp);
    kit_invalid(&fake_host, &resp, "path", "id", "m", "t");
    ck_assert_str_eq(resp.body, "{\"detail\":[{\"loc\":[\"path\",\"id\"],\"msg\":\"m\",\"type\":"
                                "\"t\"}]}");
    fake_response_clear(&resp);
    kit_db_error(&fake_host, &resp, TK_ETIMEDOUT);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_str_eq(json_string_value(json_object_get(resp.headers, "Retry-After")), "1");
    ck_assert_str_eq(resp.body, "{\"detail\":\"Database unavailable\"}");
    fake_response_clear(&resp);
    kit_db_error(&fake_host, &resp, TK_ERR);
    ck_assert_int_eq(resp.status, 500);
    ck_assert_ptr_null(json_object_get(resp.headers, "Retry-After"));
    fake_response_clear(&resp);
    /* a host without an authenticator (this fake has none) */
    tk_http_request req = {.method = "GET", .path = "/x"};
    char user[24] = "";
    ck_assert_int_eq(kit_authenticate(&fake_host, &req, &resp, user, sizeof(user), 0),
                     TK_EUNAVAILABLE);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_str_eq(resp.body, "{\"detail\":\"No authenticator is loaded\"}");
    fake_response_clear(&resp);
}
END_TEST

/* ---- Retry-After --------------------------------------------------------------------------- */

START_TEST(test_retry_after)
{
    const int64_t now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
    ck_assert_int_eq(kit_parse_retry_after("120", now, 86400), 120000);
    ck_assert_int_eq(kit_parse_retry_after(" 1.5 ", now, 86400), 1500);
    ck_assert_int_eq(kit_parse_retry_after("0", now, 86400), 0);
    ck_assert_int_eq(kit_parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now, 86400), 30000);
    ck_assert_int_eq(kit_parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now, 86400), 0);
    /* further away than the caller waits, either way it is written */
    ck_assert_int_eq(kit_parse_retry_after("86401", now, 86400), -1);
    ck_assert_int_eq(kit_parse_retry_after("Thu, 22 Oct 2015 07:28:01 GMT", now, 86400), -1);
    static const char *const bad[] = {"", "  ", "-1", "soon", "12abc", "Wed, 21 Oct 2015"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(kit_parse_retry_after(bad[i], now, 86400) == -1, "%s", bad[i]);
    ck_assert_int_eq(kit_parse_retry_after(NULL, now, 86400), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kit");
    TCase *tc = tcase_create("kit");
    tcase_add_test(tc, test_times_in_every_accepted_form);
    tcase_add_test(tc, test_times_that_are_not_are_refused);
    tcase_add_test(tc, test_datetime_flag_wants_a_time_of_day_with_seconds);
    tcase_add_test(tc, test_time_styles);
    tcase_add_test(tc, test_integer_arguments);
    tcase_add_test(tc, test_query_arguments_through_the_host);
    tcase_add_test(tc, test_utf8_lengths_count_characters);
    tcase_add_test(tc, test_answers);
    tcase_add_test(tc, test_retry_after);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
