/* `taskorad broker` and the embedded cluster: real Kafka protocol on loopback. */
#include <check.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testhelp.h"

/* Partition count of each topic the cluster reports, via a real metadata request. */
static int partitions_of(const char *bootstrap, const char *topic)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
    ck_assert_msg(err == RD_KAFKA_RESP_ERR_NO_ERROR, "metadata: %s", rd_kafka_err2str(err));
    int n = -1;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0)
            n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return n;
}

START_TEST(test_standalone_broker_prints_bootstrap_and_serves_topics)
{
    int out[2];
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        char bin[4096];
        snprintf(bin, sizeof(bin), "%s/taskorad", th_builddir());
        execl(bin, bin, "broker", "--brokers", "2", "--partitions", "3", "--topics", "alpha,beta",
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[512] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f)); /* blocks until the first line */
    line[strcspn(line, "\n")] = '\0';
    ck_assert_msg(strncmp(line, "127.0.0.1:", 10) == 0 && strchr(line, ','), "first line: %s",
                  line);
    ck_assert_int_eq(partitions_of(line, "alpha"), 3);
    ck_assert_int_eq(partitions_of(line, "beta"), 3);
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    fclose(f);
}
END_TEST

START_TEST(test_embedded_cluster_starts_with_configured_topics)
{
    char *dir = th_tmpdir();
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"kafka\": {\"brokers\": \"embedded\", \"partitions\": 4,"
             " \"topics\": [\"task-events\", \"extra\"]},"
             " \"http\": {\"listen\": \"127.0.0.1:0\"}}");
    char *cfg = th_write(dir, "c.json", text);
    char *log = th_write(dir, "log", "");
    th_daemon d;
    ck_assert_int_eq(th_daemon_start(&d, cfg, log, 20000), 0);
    char *logtext = th_read(log);
    const char *p = strstr(logtext, "\"bootstrap\":\"");
    ck_assert_msg(p != NULL, "%s", logtext);
    char bootstrap[256];
    sscanf(p + 13, "%255[^\"]", bootstrap);
    ck_assert_int_eq(partitions_of(bootstrap, "task-events"), 4);
    ck_assert_int_eq(partitions_of(bootstrap, "extra"), 4);
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(th_daemon_wait(&d, 15000), 0);
    th_daemon_cleanup(&d);
    free(logtext);
    free(cfg);
    free(log);
    th_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_broker_options_exit_2)
{
    const char *args[] = {"broker", "--partitions", "0", NULL};
    char *err = NULL;
    ck_assert_int_eq(th_taskorad(args, NULL, &err, 5000), 2);
    ck_assert_msg(strstr(err, "--partitions: expected 1..1000"), "%s", err);
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("broker");
    TCase *tc = tcase_create("broker");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_standalone_broker_prints_bootstrap_and_serves_topics);
    tcase_add_test(tc, test_embedded_cluster_starts_with_configured_topics);
    tcase_add_test(tc, test_bad_broker_options_exit_2);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
