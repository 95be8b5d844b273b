/* The embedded Kafka-protocol cluster (librdkafka's mock cluster) for development and tests. */
#include "broker.h"

#include <dirent.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "log.h"
#include "producer.h"

struct tk_broker {
    rd_kafka_t *rk; /* the handle that owns the cluster's threads */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
};

/* The port of a TCP socket's local address, or -1. */
static int local_port(int fd)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    if (a.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&a)->sin_port);
    if (a.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return -1;
}

int tk_mock_nodelay(const char *bootstraps)
{
    int ports[16], nports = 0;
    for (const char *p = bootstraps; p && *p && nports < 16;) {
        const char *colon = strchr(p, ':'), *comma = strchr(p, ',');
        if (!colon || (comma && comma < colon))
            break;
        ports[nports++] = atoi(colon + 1);
        p = comma ? comma + 1 : NULL;
    }
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int done = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name), listening = 0, one = 1;
        socklen_t len = sizeof(listening);
        struct stat st;
        if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
            continue;
        int port = local_port(fd);
        for (int i = 0; i < nports; i++)
            if (port == ports[i] &&
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
                done++;
    }
    closedir(d);
    return done;
}

tk_broker *tk_broker_start(int nbrokers, int partitions, const char *const *topics, size_t ntopics,
                           char *err, size_t errlen)
{
    tk_broker *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, tk_kafka_log);
    /* the owning handle never connects anywhere; keep it quiet */
    rd_kafka_conf_set(conf, "log.connection.close", "false", NULL, 0);
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!b->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "embedded broker: %s", errstr);
        free(b);
        return NULL;
    }
    b->mc = rd_kafka_mock_cluster_new(b->rk, nbrokers);
    if (!b->mc) {
        snprintf(err, errlen, "embedded broker: cannot start %d brokers on loopback", nbrokers);
        tk_broker_stop(b);
        return NULL;
    }
    for (size_t i = 0; i < ntopics; i++) {
        rd_kafka_resp_err_t e =
            rd_kafka_mock_topic_create(b->mc, topics[i], partitions, nbrokers < 3 ? nbrokers : 3);
        if (e) {
            snprintf(err, errlen, "embedded broker: cannot create topic %s: %s", topics[i],
                     rd_kafka_err2str(e));
            tk_broker_stop(b);
            return NULL;
        }
    }
    b->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(b->mc));
    if (!b->bootstraps) {
        snprintf(err, errlen, "out of memory");
        tk_broker_stop(b);
        return NULL;
    }
    if (tk_mock_nodelay(b->bootstraps) != nbrokers)
        tk_logf(NULL, TK_LOG_WARN,
                "embedded broker: could not turn Nagle off on its listeners; responses may be "
                "held back up to 40 ms");
    return b;
}

const char *tk_broker_bootstraps(const tk_broker *b) { return b->bootstraps; }

void tk_broker_stop(tk_broker *b)
{
    if (!b)
        return;
    if (b->mc)
        rd_kafka_mock_cluster_destroy(b->mc);
    if (b->rk)
        rd_kafka_destroy(b->rk);
    free(b->bootstraps);
    free(b);
}
