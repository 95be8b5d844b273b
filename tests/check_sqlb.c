/* http_api's SQL builder at its limits: a statement that does not fit is refused, never cut. */
#include <check.h>
#include <string.h>

#include "sqlb.h"
#include "taskora/plugin.h"
#include "testhelp.h"

START_TEST(test_twenty_four_parameters_fit_and_a_25th_is_refused)
{
    static sqlb b;
    memset(&b, 0, sizeof(b));
    static const char *const values[SQLB_MAX_PARAMS] = {"v"};
    for (int i = 0; i < SQLB_MAX_PARAMS; i++)
        ck_assert_int_eq(sqlb_param(&b, values[i]), i + 1);
    ck_assert_int_eq(sqlb_check(&b), TK_OK);
    ck_assert_int_eq(b.n, SQLB_MAX_PARAMS);
    /* $25 does not exist: no number is handed out and the statement is refused */
    ck_assert_int_eq(sqlb_param(&b, "one too many"), 0);
    ck_assert_int_eq(b.n, SQLB_MAX_PARAMS);
    ck_assert_int_eq(sqlb_check(&b), TK_ERR);
}
END_TEST

START_TEST(test_text_up_to_the_limit_fits_and_one_byte_more_is_refused)
{
    static sqlb b;
    memset(&b, 0, sizeof(b));
    char part[SQLB_MAX_SQL];
    memset(part, 'x', SQLB_MAX_SQL - 2);
    part[SQLB_MAX_SQL - 2] = '\0';
    sqlb_add(&b, "%s", part);
    sqlb_add(&b, "y"); /* SQLB_MAX_SQL - 1 bytes and the NUL: exactly full */
    ck_assert_int_eq(sqlb_check(&b), TK_OK);
    ck_assert_uint_eq(b.len, SQLB_MAX_SQL - 1);
    ck_assert_uint_eq(strlen(b.sql), SQLB_MAX_SQL - 1);
    sqlb_add(&b, "z");
    ck_assert_int_eq(sqlb_check(&b), TK_ERR);
    ck_assert_uint_eq(b.len, SQLB_MAX_SQL - 1);
    ck_assert_ptr_null(strchr(b.sql, 'z'));
}
END_TEST

START_TEST(test_a_part_that_does_not_fit_leaves_no_half_of_it_and_stops_the_rest)
{
    static sqlb b;
    memset(&b, 0, sizeof(b));
    char filler[SQLB_MAX_SQL - 100];
    memset(filler, ' ', sizeof(filler) - 1);
    filler[sizeof(filler) - 1] = '\0';
    sqlb_add(&b, "SELECT 1 FROM t WHERE a = $%d%s", sqlb_param(&b, "1"), filler);
    ck_assert_int_eq(sqlb_check(&b), TK_OK);
    size_t before = b.len;
    /* a condition longer than the room left: without it the statement would select more */
    char cond[200];
    memset(cond, 'c', sizeof(cond) - 1);
    cond[sizeof(cond) - 1] = '\0';
    sqlb_add(&b, " AND b = '%s'", cond);
    ck_assert_int_eq(sqlb_check(&b), TK_ERR);
    ck_assert_uint_eq(b.len, before);
    ck_assert_uint_eq(strlen(b.sql), before);
    /* a later, shorter part is not added after the gap either: the statement stays refused */
    sqlb_add(&b, " LIMIT 1");
    ck_assert_uint_eq(b.len, before);
    ck_assert_int_eq(sqlb_check(&b), TK_ERR);
}
END_TEST

START_TEST(test_an_empty_builder_is_whole)
{
    sqlb b = {0};
    ck_assert_int_eq(sqlb_check(&b), TK_OK);
    sqlb_add(&b, "SELECT $%d", sqlb_param(&b, "x"));
    ck_assert_str_eq(b.sql, "SELECT $1");
    ck_assert_int_eq(b.n, 1);
    ck_assert_str_eq(b.p[0], "x");
    ck_assert_int_eq(sqlb_check(&b), TK_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sqlb");
    TCase *tc = tcase_create("sqlb");
    tcase_add_test(tc, test_twenty_four_parameters_fit_and_a_25th_is_refused);
    tcase_add_test(tc, test_text_up_to_the_limit_fits_and_one_byte_more_is_refused);
    tcase_add_test(tc, test_a_part_that_does_not_fit_leaves_no_half_of_it_and_stops_the_rest);
    tcase_add_test(tc, test_an_empty_builder_is_whole);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
