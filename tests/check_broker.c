/* `taskorad broker` and the embedded cluster: real Kafka protocol on loopback. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
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
    kill(d.pid, SIGINT); /* stops without the drain delay */
    ck_assert_int_eq(th_daemon_wait(&d, 15000), 0);
    th_daemon_cleanup(&d);
    free(logtext);
    free(cfg);
    free(log);
    th_rmtree(dir);
    free(dir);
}
END_TEST

/* The server side of a connection to port (not `except`, not a listener): its TCP_NODELAY, or -1.
 */
static int accepted_nodelay(int port, int except)
{
    DIR *d = opendir("/proc/self/fd");
    int found = -1;
    struct dirent *e;
    while (d && (e = readdir(d)) && found < 0) {
        int fd = atoi(e->d_name), listening = 1, nodelay = 0;
        socklen_t len = sizeof(int);
        struct stat st;
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        if (e->d_name[0] == '.' || fd == except || fd == dirfd(d) || fstat(fd, &st) != 0 ||
            !S_ISSOCK(st.st_mode) || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) ||
            listening || getsockname(fd, (struct sockaddr *)&a, &alen) || a.sin_family != AF_INET ||
            ntohs(a.sin_port) != port)
            continue;
        len = sizeof(int);
        if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0)
            found = nodelay != 0;
    }
    if (d)
        closedir(d);
    return found;
}

START_TEST(test_embedded_broker_connections_have_nagle_off)
{
    /* with Nagle on, a response written behind an unacknowledged one waits ~40 ms */
    const char *topics[] = {"t"};
    char err[256];
    tk_broker *b = tk_broker_start(1, 1, topics, 1, err, sizeof(err));
    ck_assert_msg(b != NULL, "%s", err);
    const char *boot = tk_broker_bootstraps(b);
    int port = atoi(strrchr(boot, ':') + 1);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int nodelay = -1;
    for (int i = 0; i < 200 && (nodelay = accepted_nodelay(port, c)) < 0; i++)
        usleep(10000); /* until the broker's thread has accepted it */
    ck_assert_msg(nodelay == 1, "accepted connection: TCP_NODELAY %d (-1: never accepted)",
                  nodelay);
    close(c);
    tk_broker_stop(b);
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
    tcase_add_test(tc, test_embedded_broker_connections_have_nagle_off);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
