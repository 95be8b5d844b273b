/* `taskorad dlq list` and `replay` against events a consumer really dead-lettered: a
 * librdkafka mock cluster owned by the test, taskorad with the event_sink consumer, and a real
 * PostgreSQL that shows what the consumer applied, and how often. */
#include <check.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "event.h"
#include "testhelp.h"

static char *dir;
static char dbname[64], dburl[1024];
static rd_kafka_t *mock_owner;
static rd_kafka_mock_cluster_t *mc;
static char bootstrap[256];

#define PARTITIONS 2
#define DLQ "task-events.dlq"

/* A config for taskorad with the event_sink consumer; fail: test.fail events are refused. */
static char *write_config(const char *name, int fail)
{
    char text[4096], file[64];
    snprintf(text, sizeof(text),
             "{\"app_id\": \"dlq-test\", \"log\": {\"format\": \"text\"},"
             " \"postgres\": {\"url\": \"${TK_TEST_DB}\", \"pool_size\": 4},"
             " \"kafka\": {\"brokers\": \"%s\", \"consumer\": {\"session.timeout.ms\": \"6000\","
             "   \"heartbeat.interval.ms\": \"500\", \"fetch.wait.max.ms\": \"10\"}},"
             " \"outbox\": {\"relay\": false}, \"http\": {\"listen\": \"127.0.0.1:0\"},"
             " \"plugin_dir\": \"%s\", \"shutdown_timeout_ms\": 20000,"
             " \"plugins\": [{\"name\": \"sink\", \"load\": \"event_sink\","
             "   \"config\": {\"fail_events\": %s},"
             "   \"consume\": {\"topics\": [\"task-events\"], \"group\": \"sink-group\","
             "     \"workers\": 2, \"retry\": {\"attempts\": 2, \"delay_ms\": 50}}}]}",
             bootstrap, th_plugin_dir(), fail ? "true" : "false");
    snprintf(file, sizeof(file), "%s.json", name);
    return th_write(dir, file, text);
}

static void setup(void)
{
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_dlq_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    setenv("TK_TEST_DB", dburl, 1);
    char *cfg = write_config("migrate", 1);
    th_migrate(cfg);
    free(cfg);
    char errstr[256];
    mock_owner = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(mock_owner);
    mc = rd_kafka_mock_cluster_new(mock_owner, 1);
    ck_assert_ptr_nonnull(mc);
    rd_kafka_mock_topic_create(mc, "task-events", PARTITIONS, 1);
    rd_kafka_mock_topic_create(mc, DLQ, PARTITIONS, 1); /* dead letters on both partitions */
    snprintf(bootstrap, sizeof(bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(mc));
    tk_mock_nodelay(bootstrap);
}

static void teardown(void)
{
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mock_owner);
    th_pg_drop_db(dbname);
    th_rmtree(dir);
    free(dir);
}

static rd_kafka_t *client(rd_kafka_type_t type)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    if (type == RD_KAFKA_CONSUMER)
        rd_kafka_conf_set(conf, "group.id", "check-dlq-reader", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    return rk;
}

/* Produces n events of a type to task-events, user u<i>; their ids in ids[i]. */
static void produce_events(int n, const char *type, char (*ids)[37])
{
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER);
    for (int i = 0; i < n; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%d", i);
        json_t *payload = json_pack("{s:i}", "seq", i);
        char *value = tk_event_encode("test", type, user, NULL, payload, ids[i]);
        json_decref(payload);
        ck_assert_int_eq(rd_kafka_producev(
                             p, RD_KAFKA_V_TOPIC("task-events"), RD_KAFKA_V_KEY(user, strlen(user)),
                             RD_KAFKA_V_VALUE(value, strlen(value)),
                             RD_KAFKA_V_HEADER("ce_id", ids[i], -1),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                         0);
        free(value);
    }
    ck_assert_int_eq(rd_kafka_flush(p, 30000), 0);
    rd_kafka_destroy(p);
}

/* Messages ever written to a topic (the sum of its partitions' high watermarks). */
static long topic_messages(const char *topic)
{
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER);
    long total = 0;
    for (int i = 0; i < PARTITIONS; i++) {
        int64_t lo = 0, hi = 0;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000), 0);
        total += (long)hi;
    }
    rd_kafka_destroy(rk);
    return total;
}

static long wait_topic_messages(const char *topic, long want, int timeout_s)
{
    double end = th_now_s() + timeout_s;
    long n;
    while ((n = topic_messages(topic)) < want && th_now_s() < end)
        usleep(50000);
    return n;
}

/*
 * Reads every message of task-events and counts those carrying header `name` (with a value
 * containing `part`, when not NULL).
 */
static int count_with_header(const char *name, const char *part)
{
    long total = topic_messages("task-events");
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int i = 0; i < PARTITIONS; i++)
        rd_kafka_topic_partition_list_add(l, "task-events", i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int seen = 0, with = 0;
    double end = th_now_s() + 30;
    while (seen < total && th_now_s() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m && !m->err) {
            seen++;
            rd_kafka_headers_t *h = NULL;
            const void *v;
            size_t sz;
            if (!rd_kafka_message_headers(m, &h) && !rd_kafka_header_get_last(h, name, &v, &sz) &&
                (!part || (v && memmem(v, sz, part, strlen(part)))))
                with++;
        }
        if (m)
            rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    ck_assert_int_eq(seen, total);
    return with;
}

/* Runs `taskorad dlq ARGS...`; out and err are malloc'd. */
static int dlq(char **out, char **err, const char *const *args)
{
    const char *argv[24] = {"dlq"};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return th_taskorad(argv, out, err, 90000);
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The JSON line of `dlq list --json` output for event id, parsed (ck_assert when absent). */
static json_t *json_row(const char *out, const char *id)
{
    char *copy = strdup(out), *save = NULL;
    json_t *found = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line && !found;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        ck_assert_msg(json_is_object(o), "not a JSON object: %s", line);
        if (strcmp(json_string_value(json_object_get(o, "event_id")), id) == 0)
            found = o;
        else
            json_decref(o);
    }
    free(copy);
    ck_assert_msg(found != NULL, "no row for %s in:\n%s", id, out);
    return found;
}

static void assert_field(json_t *o, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(o, key));
    ck_assert_msg(v && strstr(v, want), "%s: \"%s\", expected \"%s\"", key, v ? v : "(none)", want);
}

/* The wall clock in Unix ms, as the broker stamps messages. */
static long long wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000LL + tv.tv_usec / 1000;
}

/* Unix ms as ISO 8601 UTC with milliseconds. */
static void iso_ms(long long t, char *out, size_t outlen)
{
    time_t s = (time_t)(t / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", day, (int)(t % 1000));
}

/* Sends n events of a type and waits until the DLQ holds `dlq_total` messages. */
static void dead_letter(th_daemon *d, int n, const char *type, char (*ids)[37], long dlq_total)
{
    produce_events(n, type, ids);
    long got = wait_topic_messages(DLQ, dlq_total, 60);
    ck_assert_msg(got == dlq_total, "%ld dead letters, expected %ld: %s", got, dlq_total,
                  th_read(d->log_path));
}

START_TEST(test_list_shows_each_dead_letter_with_its_reason_and_filters)
{
    char *cfg = write_config("fail", 1);
    th_daemon d;
    th_daemon_start_named(&d, dir, cfg, "fail");
    char early[2][37], late_fail[1][37], late_retry[1][37];
    dead_letter(&d, 2, "test.fail", early, 2);
    /* what comes after this instant was dead-lettered after it */
    char since[64];
    long long t = wall_ms() + 1;
    usleep(2000);
    iso_ms(t, since, sizeof(since));
    dead_letter(&d, 1, "test.fail", late_fail, 3);
    dead_letter(&d, 1, "test.retry", late_retry, 4);
    th_daemon_stop(&d);

    char *out, *err;
    const char *all[] = {"list", "--topic", DLQ, "-c", cfg, NULL};
    ck_assert_msg(dlq(&out, &err, all) == 0, "%s", err);
    ck_assert_msg(strstr(out, "EVENT ID") && strstr(out, "(4 dead letters)"), "%s", out);
    const char *every[] = {early[0], early[1], late_fail[0], late_retry[0]};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(count_lines_with(out, every[i]) == 1, "%s not once in:\n%s", every[i], out);
    ck_assert_int_eq(count_lines_with(out, "handler failed"), 3);
    ck_assert_int_eq(count_lines_with(out, "attempts exhausted"), 1);
    free(out);
    free(err);

    const char *json[] = {"list", "--topic", DLQ, "-c", cfg, "--json", NULL};
    ck_assert_msg(dlq(&out, &err, json) == 0, "%s", err);
    ck_assert_int_eq(count_lines_with(out, "\n"), 4);
    json_t *fail = json_row(out, early[1]), *retry = json_row(out, late_retry[0]);
    assert_field(fail, "type", "test.fail");
    assert_field(fail, "user_id", "u1");
    assert_field(fail, "consumer", "sink");
    assert_field(fail, "attempts", "1");
    assert_field(fail, "error", "handler failed");
    assert_field(fail, "original_topic", "task-events");
    ck_assert(json_string_value(json_object_get(fail, "original_offset")));
    assert_field(retry, "attempts", "2");
    assert_field(retry, "error", "attempts exhausted");
    json_decref(fail);
    json_decref(retry);
    free(out);
    free(err);

    /* --since an instant: only the later two; an age: all; the future: none */
    const char *later[] = {"list", "--topic", DLQ, "-c", cfg, "--since", since, NULL};
    ck_assert_msg(dlq(&out, &err, later) == 0, "%s", err);
    ck_assert_msg(strstr(out, "(2 dead letters)") && strstr(out, late_fail[0]) &&
                      strstr(out, late_retry[0]) && !strstr(out, early[0]) &&
                      !strstr(out, early[1]),
                  "since %s:\n%s", since, out);
    free(out);
    free(err);
    const char *hour[] = {"list", "--topic", DLQ, "-c", cfg, "--since", "1h", NULL};
    ck_assert_msg(dlq(&out, &err, hour) == 0, "%s", err);
    ck_assert_msg(strstr(out, "(4 dead letters)"), "%s", out);
    free(out);
    free(err);
    const char *future[] = {"list", "--topic", DLQ, "-c", cfg, "--since", "2999-01-01", NULL};
    ck_assert_msg(dlq(&out, &err, future) == 0, "%s", err);
    ck_assert_msg(strstr(out, "(0 dead letters)"), "%s", out);
    free(out);
    free(err);
    const char *limit[] = {"list", "--topic", DLQ, "-c", cfg, "--limit", "3", NULL};
    ck_assert_msg(dlq(&out, &err, limit) == 0, "%s", err);
    ck_assert_msg(strstr(out, "(3 dead letters)"), "%s", out);
    free(out);
    free(err);
    /* --brokers needs no config */
    const char *brokers[] = {"list", "--topic", DLQ, "--brokers", bootstrap, NULL};
    ck_assert_msg(dlq(&out, &err, brokers) == 0, "%s", err);
    ck_assert_msg(strstr(out, "(4 dead letters)"), "%s", out);
    free(out);
    free(err);
    free(cfg);
}
END_TEST

START_TEST(test_list_says_what_it_cannot_read)
{
    char *out, *err;
    /* an embedded broker lives inside a running taskorad */
    char *embedded =
        th_write(dir, "embedded.json", "{\"kafka\": {\"brokers\": \"embedded\"}, \"plugins\": []}");
    const char *emb[] = {"list", "--topic", DLQ, "-c", embedded, NULL};
    ck_assert_int_eq(dlq(&out, &err, emb), 2);
    ck_assert_msg(strstr(err, "\"embedded\"") && strstr(err, "inside a running taskorad") &&
                      strstr(err, "--brokers"),
                  "%s", err);
    free(out);
    free(err);
    free(embedded);
    /* a broker that does not know the topic (the embedded one creates any topic asked for) */
    rd_kafka_mock_topic_set_error(mc, "no-such.dlq", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    const char *none[] = {"list", "--topic", "no-such.dlq", "--brokers", bootstrap, NULL};
    ck_assert_int_eq(dlq(&out, &err, none), 1);
    ck_assert_msg(strstr(err, "no-such.dlq: no such topic"), "%s", err);
    free(out);
    free(err);
    const char *bad[] = {"list", "--topic", DLQ, "--brokers", bootstrap, "--since", "soon", NULL};
    ck_assert_int_eq(dlq(&out, &err, bad), 2);
    ck_assert_msg(strstr(err, "--since"), "%s", err);
    free(out);
    free(err);
    const char *notopic[] = {"replay", "--brokers", bootstrap, NULL};
    ck_assert_int_eq(dlq(&out, &err, notopic), 2);
    ck_assert_msg(strstr(err, "--topic"), "%s", err);
    free(out);
    free(err);
}
END_TEST

/* Three test.fail events dead-lettered by a sink that refuses them; then a sink that takes
 * them runs (d), with the same group, so it does not see them again by itself. */
static void three_dead_then_healed(th_daemon *d, char (*ids)[37], char **heal_cfg)
{
    char *cfg = write_config("fail", 1);
    th_daemon f;
    th_daemon_start_named(&f, dir, cfg, "fail");
    dead_letter(&f, 3, "test.fail", ids, 3);
    th_daemon_stop(&f);
    free(cfg);
    *heal_cfg = write_config("heal", 0);
    th_daemon_start_named(d, dir, *heal_cfg, "heal");
    ck_assert(th_wait_file_contains(d->log_path, "assigned", 30000));
}

START_TEST(test_replay_applies_each_dead_event_once_even_when_run_twice)
{
    char ids[3][37], *cfg;
    th_daemon d;
    three_dead_then_healed(&d, ids, &cfg);
    char *out, *err;
    const char *dry[] = {"replay", "--topic", DLQ, "-c", cfg, "--dry-run", NULL};
    ck_assert_msg(dlq(&out, &err, dry) == 0, "%s", err);
    ck_assert_int_eq(count_lines_with(out, "would replay "), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(strstr(out, ids[i]), "%s", out);
    ck_assert_msg(strstr(out, "to task-events") && strstr(out, "nothing was sent"), "%s", out);
    free(out);
    free(err);
    ck_assert_int_eq(topic_messages("task-events"), 3); /* nothing sent */

    const char *replay[] = {"replay", "--topic", DLQ, "-c", cfg, NULL};
    ck_assert_msg(dlq(&out, &err, replay) == 0, "%s", err);
    ck_assert_msg(strstr(out, "replayed 3 of 3"), "%s", out);
    free(out);
    free(err);
    ck_assert_int_eq(th_pg_wait_count(dburl, "SELECT count(*) FROM sink_effects", 3, 30), 3);
    ck_assert_int_eq(topic_messages("task-events"), 6);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(th_pg_count(dburl, th_fmt("SELECT count(*) FROM sink_effects WHERE"
                                                   " event_id = '%s' AND type = 'test.fail'",
                                                   ids[i])),
                         1);

    /* again: the events come once more and change nothing */
    ck_assert_msg(dlq(&out, &err, replay) == 0, "%s", err);
    ck_assert_msg(strstr(out, "replayed 3 of 3"), "%s", out);
    free(out);
    free(err);
    ck_assert_int_eq(topic_messages("task-events"), 9);
    ck_assert_double_eq(
        th_wait_metric(d.url, "taskora_consumer_succeeded_total{plugin=\"sink\"}", 6, 30), 6);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM sink_calls"), 9);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT count(*) FROM sink_effects"), 3);
    ck_assert_int_eq(th_pg_count(dburl, "SELECT sum(n) FROM sink_counters"), 3);
    ck_assert_int_eq(topic_messages(DLQ), 3); /* none failed again */
    th_daemon_stop(&d);

    /* the replayed messages say where they come from; the dead-letter headers are renamed */
    ck_assert_int_eq(count_with_header("x-taskora-replayed-from", DLQ "["), 6);
    ck_assert_int_eq(count_with_header("x-taskora-replayed-error", "handler failed"), 6);
    ck_assert_int_eq(count_with_header("x-taskora-replayed-original-topic", "task-events"), 6);
    ck_assert_int_eq(count_with_header("x-taskora-replayed-at", "Z"), 6);
    ck_assert_int_eq(count_with_header("x-taskora-error", NULL), 0);
    ck_assert_int_eq(count_with_header("ce_id", NULL), 9); /* the event's own headers kept */
    free(cfg);
}
END_TEST

START_TEST(test_replay_of_one_event_id_sends_just_that_one)
{
    char ids[3][37], *cfg;
    th_daemon d;
    three_dead_then_healed(&d, ids, &cfg);
    char *out, *err;
    const char *one[] = {"replay", "--topic", DLQ, "-c", cfg, "--event-id", ids[1], NULL};
    ck_assert_msg(dlq(&out, &err, one) == 0, "%s", err);
    ck_assert_msg(strstr(out, "replayed 1 of 1"), "%s", out);
    free(out);
    free(err);
    ck_assert_int_eq(topic_messages("task-events"), 4);
    ck_assert_double_eq(
        th_wait_metric(d.url, "taskora_consumer_succeeded_total{plugin=\"sink\"}", 1, 30), 1);
    char *applied = th_pg_query1(dburl, "SELECT string_agg(event_id, ',') FROM sink_effects");
    ck_assert_str_eq(applied, ids[1]);
    free(applied);
    const char *unknown[] = {"replay", "--topic", DLQ, "-c", cfg, "--event-id", "nope", NULL};
    ck_assert_int_eq(dlq(&out, &err, unknown), 1);
    ck_assert_msg(strstr(err, "no dead letter of event nope"), "%s", err);
    free(out);
    free(err);
    ck_assert_int_eq(topic_messages("task-events"), 4);
    th_daemon_stop(&d);
    free(cfg);
}
END_TEST

START_TEST(test_replay_that_cannot_send_says_so_and_fails)
{
    char ids[1][37];
    char *cfg = write_config("fail", 1);
    th_daemon f;
    th_daemon_start_named(&f, dir, cfg, "fail");
    dead_letter(&f, 1, "test.fail", ids, 1);
    th_daemon_stop(&f);
    /* the broker refuses the next produce requests for good */
    rd_kafka_mock_push_request_errors(
        mc, 0 /* Produce */, 8, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    char *out, *err;
    const char *replay[] = {"replay", "--topic", DLQ, "-c", cfg, "--timeout", "10", NULL};
    ck_assert_int_eq(dlq(&out, &err, replay), 1);
    ck_assert_msg(strstr(out, "replayed 0 of 1"), "%s", out);
    ck_assert_msg(strstr(err, "1 of 1 could not be sent") && strstr(err, "task-events"), "%s", err);
    free(out);
    free(err);
    ck_assert_int_eq(topic_messages("task-events"), 1);
    free(cfg);
}
END_TEST

int main(void)
{
    if (!th_pg_admin_url())
        return th_no_database("check_dlq");
    Suite *s = suite_create("dlq");
    TCase *tc = tcase_create("dlq");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_list_shows_each_dead_letter_with_its_reason_and_filters);
    tcase_add_test(tc, test_list_says_what_it_cannot_read);
    tcase_add_test(tc, test_replay_applies_each_dead_event_once_even_when_run_twice);
    tcase_add_test(tc, test_replay_of_one_event_id_sends_just_that_one);
    tcase_add_test(tc, test_replay_that_cannot_send_says_so_and_fails);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
