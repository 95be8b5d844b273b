/* The metrics registry renders exactly the Prometheus text format. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "testhelp.h"

START_TEST(test_counter_gauge_histogram_render_as_prometheus_text)
{
    tk_metrics *m = tk_metrics_new();
    char err[256];
    const char *const labels[] = {"method", "status", NULL};
    tk_metric_family *c =
        tk_metrics_family(m, TK_METRIC_COUNTER, "app_requests_total",
                          "Requests.\nSecond line \\ done", labels, NULL, 0, err, sizeof(err));
    ck_assert_ptr_nonnull(c);
    const char *v1[] = {"GET", "200"};
    const char *v2[] = {"POST", "a\"b\\c\nd"};
    tk_metric_add(c, v1, 1);
    tk_metric_add(c, v1, 2);
    tk_metric_add(c, v2, 1);
    tk_metric_add(c, v2, -5); /* counters never go down */
    tk_metric_family *g = tk_metrics_family(m, TK_METRIC_GAUGE, "app_queue_depth", "Depth", NULL,
                                            NULL, 0, err, sizeof(err));
    tk_metric_set(g, NULL, 7);
    tk_metric_add(g, NULL, -2.5);
    const double buckets[] = {0.1, 1};
    tk_metric_family *h = tk_metrics_family(m, TK_METRIC_HISTOGRAM, "app_latency_seconds",
                                            "Latency", NULL, buckets, 2, err, sizeof(err));
    tk_metric_observe(h, NULL, 0.05);
    tk_metric_observe(h, NULL, 0.1);
    tk_metric_observe(h, NULL, 0.5);
    tk_metric_observe(h, NULL, 3);
    size_t len = 0;
    char *text = tk_metrics_render(m, &len);
    const char *want = "# HELP app_requests_total Requests.\\nSecond line \\\\ done\n"
                       "# TYPE app_requests_total counter\n"
                       "app_requests_total{method=\"GET\",status=\"200\"} 3\n"
                       "app_requests_total{method=\"POST\",status=\"a\\\"b\\\\c\\nd\"} 1\n"
                       "# HELP app_queue_depth Depth\n"
                       "# TYPE app_queue_depth gauge\n"
                       "app_queue_depth 4.5\n"
                       "# HELP app_latency_seconds Latency\n"
                       "# TYPE app_latency_seconds histogram\n"
                       "app_latency_seconds_bucket{le=\"0.1\"} 2\n"
                       "app_latency_seconds_bucket{le=\"1\"} 3\n"
                       "app_latency_seconds_bucket{le=\"+Inf\"} 4\n"
                       "app_latency_seconds_sum 3.6499999999999999\n"
                       "app_latency_seconds_count 4\n";
    ck_assert_str_eq(text, want);
    ck_assert_uint_eq(len, strlen(want));
    free(text);
    tk_metrics_free(m);
}
END_TEST

START_TEST(test_same_name_shares_a_family_and_clashes_are_refused)
{
    tk_metrics *m = tk_metrics_new();
    char err[256];
    const char *const l1[] = {"a", NULL};
    const char *const l2[] = {"b", NULL};
    tk_metric_family *f1 =
        tk_metrics_family(m, TK_METRIC_COUNTER, "x_total", "x", l1, NULL, 0, err, sizeof(err));
    tk_metric_family *f2 =
        tk_metrics_family(m, TK_METRIC_COUNTER, "x_total", "x", l1, NULL, 0, err, sizeof(err));
    ck_assert_ptr_eq(f1, f2);
    ck_assert_ptr_null(
        tk_metrics_family(m, TK_METRIC_GAUGE, "x_total", "x", l1, NULL, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "already registered"), "%s", err);
    ck_assert_ptr_null(
        tk_metrics_family(m, TK_METRIC_COUNTER, "x_total", "x", l2, NULL, 0, err, sizeof(err)));
    ck_assert_ptr_null(
        tk_metrics_family(m, TK_METRIC_COUNTER, "9bad", "x", NULL, NULL, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "not a valid Prometheus name"), "%s", err);
    const char *const bad[] = {"le", NULL};
    ck_assert_ptr_null(
        tk_metrics_family(m, TK_METRIC_HISTOGRAM, "h", "h", bad, NULL, 0, err, sizeof(err)));
    const double desc[] = {1, 0.5};
    ck_assert_ptr_null(
        tk_metrics_family(m, TK_METRIC_HISTOGRAM, "h2", "h", NULL, desc, 2, err, sizeof(err)));
    tk_metrics_free(m);
}
END_TEST

START_TEST(test_histogram_without_buckets_uses_latency_defaults)
{
    tk_metrics *m = tk_metrics_new();
    char err[256];
    tk_metric_family *h = tk_metrics_family(m, TK_METRIC_HISTOGRAM, "d_seconds", "d", NULL, NULL, 0,
                                            err, sizeof(err));
    tk_metric_observe(h, NULL, 0.003);
    char *text = tk_metrics_render(m, NULL);
    ck_assert_msg(strstr(text, "d_seconds_bucket{le=\"0.0025\"} 0\n"), "%s", text);
    ck_assert_msg(strstr(text, "d_seconds_bucket{le=\"0.005\"} 1\n"), "%s", text);
    ck_assert_msg(strstr(text, "d_seconds_bucket{le=\"10\"} 1\n"), "%s", text);
    free(text);
    tk_metrics_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_counter_gauge_histogram_render_as_prometheus_text);
    tcase_add_test(tc, test_same_name_shares_a_family_and_clashes_are_refused);
    tcase_add_test(tc, test_histogram_without_buckets_uses_latency_defaults);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
