/* Retries and circuit breakers of remote calls (core/resilience.c), with scripted attempts. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "metrics.h"
#include "resilience.h"
#include "testhelp.h"

/* An attempt function that plays a script: one failure kind per call, then success. */
typedef struct script {
    tk_failure_kind kinds[16];
    int64_t retry_after_ms[16];
    int fail_fast[16];
    int n;     /* scripted failures; calls past them succeed */
    int calls; /* calls made */
    double at[16];
} script;

static int play(void *ud, tk_failure *f)
{
    script *s = ud;
    int i = s->calls++;
    if (i < 16)
        s->at[i] = th_now_s();
    if (i >= s->n)
        return TK_OK;
    f->kind = s->kinds[i];
    f->retry_after_ms = s->retry_after_ms[i] ? s->retry_after_ms[i] : -1;
    f->fail_fast = s->fail_fast[i];
    snprintf(f->message, sizeof(f->message), "scripted failure %d", i);
    return TK_ERR;
}

static void fail_with(script *s, tk_failure_kind k, int times)
{
    for (int i = 0; i < times; i++)
        s->kinds[s->n++] = k;
}

/* A policy from JSON text (validated like the settings do). */
static tk_resilience *policy(const char *json, tk_metrics *m)
{
    json_error_t je;
    json_t *section = json_loads(json, 0, &je);
    ck_assert_msg(section != NULL, "%s", je.text);
    char err[512];
    ck_assert_int_eq(
        tk_config_validate(&section, tk_resilience_fields, "resiliency", err, sizeof(err)), 0);
    tk_resilience *r = tk_resilience_new(section, m, err, sizeof(err));
    ck_assert_msg(r != NULL, "%s", err);
    json_decref(section);
    return r;
}

START_TEST(test_retryable_failures_are_retried_with_backoff)
{
    tk_resilience *r =
        policy("{\"retry\": {\"attempts\": 3, \"delay_ms\": 50, \"backoff\": 2}}", NULL);
    script s = {0};
    fail_with(&s, TK_FAIL_UNAVAILABLE, 1);
    fail_with(&s, TK_FAIL_TIMEOUT, 1);
    tk_failure f;
    ck_assert_int_eq(tk_resilient_call(r, "t", play, &s, &f), TK_OK);
    ck_assert_int_eq(s.calls, 3);
    ck_assert_msg(s.at[1] - s.at[0] >= 0.050, "first wait %.3f s", s.at[1] - s.at[0]);
    ck_assert_msg(s.at[2] - s.at[1] >= 0.100, "second wait %.3f s (backoff 2)", s.at[2] - s.at[1]);
    tk_resilience_free(r);
}
END_TEST

START_TEST(test_answers_that_say_the_target_is_up_are_not_retried)
{
    tk_resilience *r = policy("{\"retry\": {\"attempts\": 3, \"delay_ms\": 1}}", NULL);
    tk_failure_kind kinds[] = {TK_FAIL_BAD_REQUEST, TK_FAIL_AUTH, TK_FAIL_BLOCKED};
    for (size_t i = 0; i < 3; i++) {
        script s = {0};
        fail_with(&s, kinds[i], 3);
        tk_failure f;
        ck_assert_int_lt(tk_resilient_call(r, "t", play, &s, &f), 0);
        ck_assert_int_eq(s.calls, 1);
        ck_assert_int_eq(f.kind, kinds[i]);
        ck_assert_str_eq(f.message, "scripted failure 0");
    }
    ck_assert_str_eq(tk_resilience_state(r, "t"), "closed");
    tk_resilience_free(r);
}
END_TEST

START_TEST(test_server_retry_delay_is_honoured_and_capped)
{
    tk_resilience *r =
        policy("{\"retry\": {\"attempts\": 3, \"delay_ms\": 10, \"max_delay_ms\": 1000}}", NULL);
    script s = {0};
    fail_with(&s, TK_FAIL_RATE_LIMITED, 1);
    s.retry_after_ms[0] = 300;
    tk_failure f;
    ck_assert_int_eq(tk_resilient_call(r, "t", play, &s, &f), TK_OK);
    ck_assert_int_eq(s.calls, 2);
    ck_assert_msg(s.at[1] - s.at[0] >= 0.300, "waited %.3f s, the server asked for 0.3",
                  s.at[1] - s.at[0]);

    /* a server asking for longer than max_delay_ms: no waiting, the failure comes back */
    script l = {0};
    fail_with(&l, TK_FAIL_RATE_LIMITED, 1);
    l.retry_after_ms[0] = 5000;
    double t0 = th_now_s();
    ck_assert_int_lt(tk_resilient_call(r, "t2", play, &l, &f), 0);
    ck_assert_int_eq(l.calls, 1);
    ck_assert_int_eq(f.kind, TK_FAIL_RATE_LIMITED);
    ck_assert_int_eq(f.retry_after_ms, 5000);
    ck_assert_msg(th_now_s() - t0 < 0.5, "returned after %.3f s", th_now_s() - t0);

    /* a daily quota: retrying cannot help */
    script q = {0};
    fail_with(&q, TK_FAIL_RATE_LIMITED, 1);
    q.fail_fast[0] = 1;
    ck_assert_int_lt(tk_resilient_call(r, "t3", play, &q, &f), 0);
    ck_assert_int_eq(q.calls, 1);
    tk_resilience_free(r);
}
END_TEST

START_TEST(test_whole_call_stays_within_timeout)
{
    tk_resilience *r = policy(
        "{\"retry\": {\"attempts\": 10, \"delay_ms\": 200, \"backoff\": 1}, \"timeout_ms\": 500,"
        " \"circuit_breaker\": {\"failures\": 100}}",
        NULL);
    script s = {0};
    fail_with(&s, TK_FAIL_UNAVAILABLE, 10);
    tk_failure f;
    double t0 = th_now_s();
    ck_assert_int_lt(tk_resilient_call(r, "t", play, &s, &f), 0);
    double took = th_now_s() - t0;
    ck_assert_int_eq(s.calls, 3); /* 0, 200, 400 ms; a wait to 600 would pass 500 */
    ck_assert_msg(took < 0.5, "took %.3f s", took);
    tk_resilience_free(r);
}
END_TEST

START_TEST(test_circuit_opens_after_consecutive_failures_and_fails_fast)
{
    tk_metrics *m = tk_metrics_new();
    tk_resilience *r = policy("{\"retry\": {\"attempts\": 3, \"delay_ms\": 1},"
                              " \"circuit_breaker\": {\"failures\": 5, \"open_ms\": 60000}}",
                              m);
    script s = {0};
    fail_with(&s, TK_FAIL_UNAVAILABLE, 16);
    tk_failure f;
    ck_assert_int_lt(tk_resilient_call(r, "ai.x", play, &s, &f), 0); /* 3 attempts */
    ck_assert_str_eq(tk_resilience_state(r, "ai.x"), "closed");
    /* 2 more attempts reach 5 in a row: open, and the third is not made */
    ck_assert_int_eq(tk_resilient_call(r, "ai.x", play, &s, &f), TK_EUNAVAILABLE);
    ck_assert_int_eq(s.calls, 5);
    ck_assert_str_eq(tk_resilience_state(r, "ai.x"), "open");
    /* the next call does not reach the target at all, and says when to come back */
    double t0 = th_now_s();
    ck_assert_int_eq(tk_resilient_call(r, "ai.x", play, &s, &f), TK_EUNAVAILABLE);
    ck_assert_int_eq(s.calls, 5);
    ck_assert_int_eq(f.kind, TK_FAIL_UNAVAILABLE);
    ck_assert_msg(f.retry_after_ms > 59000 && f.retry_after_ms <= 60001, "retry after %lld",
                  (long long)f.retry_after_ms);
    ck_assert_ptr_nonnull(strstr(f.message, "circuit open"));
    ck_assert_msg(th_now_s() - t0 < 0.05, "a rejected call took %.3f s", th_now_s() - t0);
    /* other targets are not affected */
    script ok = {0};
    ck_assert_int_eq(tk_resilient_call(r, "ai.y", play, &ok, &f), TK_OK);

    size_t len;
    char *text = tk_metrics_render(m, &len);
    ck_assert_ptr_nonnull(strstr(text, "taskora_circuit_state{target=\"ai.x\"} 2"));
    ck_assert_ptr_nonnull(
        strstr(text, "taskora_circuit_transitions_total{target=\"ai.x\",state=\"open\"} 1"));
    ck_assert_ptr_nonnull(strstr(text, "taskora_circuit_rejected_total{target=\"ai.x\"} 2"));
    ck_assert_ptr_nonnull(strstr(text, "taskora_retries_total{target=\"ai.x\"} 3"));
    free(text);
    tk_resilience_free(r);
    tk_metrics_free(m);
}
END_TEST

/* Calls until the breaker lets one through (it half-opens after open_ms); 0 if not in time. */
static int call_until_admitted(tk_resilience *r, const char *target, script *s, tk_failure *f,
                               int *rc)
{
    int before = s->calls;
    double end = th_now_s() + 5;
    while (th_now_s() < end) {
        *rc = tk_resilient_call(r, target, play, s, f);
        if (s->calls > before)
            return 1;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

START_TEST(test_half_open_trial_closes_or_reopens_the_circuit)
{
    tk_resilience *r = policy("{\"retry\": {\"attempts\": 1},"
                              " \"circuit_breaker\": {\"failures\": 2, \"open_ms\": 200}}",
                              NULL);
    script s = {0};
    fail_with(&s, TK_FAIL_TIMEOUT, 3); /* two to open, then the trial fails too */
    tk_failure f;
    int rc;
    tk_resilient_call(r, "t", play, &s, &f);
    tk_resilient_call(r, "t", play, &s, &f);
    ck_assert_str_eq(tk_resilience_state(r, "t"), "open");
    double opened = th_now_s();
    ck_assert(call_until_admitted(r, "t", &s, &f, &rc));
    ck_assert_msg(th_now_s() - opened >= 0.19, "trial after %.3f s", th_now_s() - opened);
    ck_assert_int_lt(rc, 0);
    ck_assert_str_eq(tk_resilience_state(r, "t"), "open"); /* a failed trial re-opens */
    ck_assert(call_until_admitted(r, "t", &s, &f, &rc));   /* the next trial succeeds */
    ck_assert_int_eq(rc, TK_OK);
    ck_assert_str_eq(tk_resilience_state(r, "t"), "closed");
    ck_assert_int_eq(s.calls, 4);
    tk_resilience_free(r);
}
END_TEST

START_TEST(test_per_target_overrides_and_bad_config)
{
    tk_resilience *r =
        policy("{\"retry\": {\"attempts\": 4}, \"targets\": {\"ai.cohere\":"
               " {\"retry\": {\"attempts\": 1}, \"circuit_breaker\": {\"open_ms\": 5}}}}",
               NULL);
    tk_resilience_policy a = tk_resilience_policy_for(r, "ai.cohere");
    tk_resilience_policy b = tk_resilience_policy_for(r, "ai.gemini");
    ck_assert_int_eq(a.attempts, 1);
    ck_assert_int_eq(a.open_ms, 5);
    ck_assert_int_eq(a.failures, 5); /* not overridden: the default */
    ck_assert_int_eq(b.attempts, 4);
    ck_assert_int_eq(b.open_ms, 30000);
    tk_resilience_free(r);

    const char *bad[][2] = {
        {"{\"targets\": {\"x\": {\"retry\": {\"tries\": 2}}}}", "resiliency.targets.x.retry"},
        {"{\"targets\": {\"x\": {\"retry\": {\"attempts\": 0}}}}", "retry.attempts"},
        {"{\"retry\": {\"backoff\": 0.5}}", "retry.backoff"},
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *section = json_loads(bad[i][0], 0, NULL);
        char err[512] = "";
        int v = tk_config_validate(&section, tk_resilience_fields, "resiliency", err, sizeof(err));
        tk_resilience *x = v == 0 ? tk_resilience_new(section, NULL, err, sizeof(err)) : NULL;
        ck_assert_msg(x == NULL, "accepted %s", bad[i][0]);
        ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: error \"%s\" does not name %s",
                      bad[i][0], err, bad[i][1]);
        json_decref(section);
    }
}
END_TEST

static void *stop_soon(void *arg)
{
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    tk_resilience_stop(arg);
    return NULL;
}

START_TEST(test_stopping_ends_a_retry_wait_at_once)
{
    tk_resilience *r = policy("{\"retry\": {\"attempts\": 3, \"delay_ms\": 20000}}", NULL);
    script s = {0};
    fail_with(&s, TK_FAIL_UNAVAILABLE, 3);
    pthread_t t;
    pthread_create(&t, NULL, stop_soon, r);
    tk_failure f;
    double t0 = th_now_s();
    ck_assert_int_lt(tk_resilient_call(r, "t", play, &s, &f), 0);
    double took = th_now_s() - t0;
    pthread_join(t, NULL);
    ck_assert_int_eq(s.calls, 1); /* no retry after the stop */
    ck_assert_int_eq(f.kind, TK_FAIL_UNAVAILABLE);
    ck_assert_msg(took < 5, "a stopping process still waited %.3f s", took);
    tk_resilience_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resilience");
    TCase *tc = tcase_create("resilience");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_retryable_failures_are_retried_with_backoff);
    tcase_add_test(tc, test_answers_that_say_the_target_is_up_are_not_retried);
    tcase_add_test(tc, test_server_retry_delay_is_honoured_and_capped);
    tcase_add_test(tc, test_whole_call_stays_within_timeout);
    tcase_add_test(tc, test_circuit_opens_after_consecutive_failures_and_fails_fast);
    tcase_add_test(tc, test_half_open_trial_closes_or_reopens_the_circuit);
    tcase_add_test(tc, test_per_target_overrides_and_bad_config);
    tcase_add_test(tc, test_stopping_ends_a_retry_wait_at_once);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
