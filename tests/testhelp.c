/* Helpers for the Check suites: temp files, child processes, waiting on conditions, HTTP. */
#include "testhelp.h"

#include <arpa/inet.h>
#include <check.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <ctype.h>
#include <strings.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *th_builddir(void)
{
    const char *b = getenv("TK_BUILDDIR");
    return b && *b ? b : ".";
}

const char *th_plugin_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tests/plugins/.libs", th_builddir());
    return dir;
}

char *th_tmpdir(void)
{
    char tmpl[] = "/tmp/taskora-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void th_rmtree(const char *dir)
{
    if (dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *th_write(const char *dir, const char *name, const char *content)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
    return path;
}

char *th_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* The child's signal mask: taskorad must not inherit a test runner's blocked signals. */
static void child_reset(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test (its process gone) leaves nothing behind */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
}

int th_run(char *const argv[], char **out, char **err, int timeout_ms)
{
    int po[2], pe[2];
    if (pipe(po) || pipe(pe))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        child_reset();
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        close(po[1]);
        close(pe[1]);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    buf bo = {0}, be = {0};
    buf_add(&bo, "", 0);
    buf_add(&be, "", 0);
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    long deadline = now_ms() + timeout_ms;
    int timed_out = 0;
    while (open_fds > 0) {
        long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        if (poll(fds, 2, (int)left) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP))) {
                char tmp[4096];
                ssize_t n = read(fds[i].fd, tmp, sizeof(tmp));
                if (n <= 0) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    open_fds--;
                } else {
                    buf_add(i == 0 ? &bo : &be, tmp, (size_t)n);
                }
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (out)
        *out = bo.p;
    else
        free(bo.p);
    if (err)
        *err = be.p;
    else
        free(be.p);
    if (timed_out)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int th_taskorad(const char *const *args, char **out, char **err, int timeout_ms)
{
    char bin[4096];
    char *argv[32];
    size_t n = 0;
    snprintf(bin, sizeof(bin), "%s/taskorad", th_builddir());
    argv[n++] = bin;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return th_run(argv, out, err, timeout_ms);
}

void th_migrate(const char *config)
{
    const char *args[] = {"migrate", "-c", config, NULL};
    char *out = NULL, *err = NULL;
    int rc = th_taskorad(args, &out, &err, 60000);
    ck_assert_msg(rc == 0, "taskorad migrate -c %s exited %d: %s%s", config, rc, out ? out : "",
                  err ? err : "");
    free(out);
    free(err);
}

/*
 * Check runs each test in a child forked from this process. When this process has other
 * threads (a Kafka-protocol cluster, libcurl's resolver), one of them may hold the
 * sanitizer allocator's lock at the moment of the fork, and LeakSanitizer's check at the
 * child's exit then waits for it forever (seen as a test "timeout" after its last assertion).
 * Under the sanitizers such children leave with _exit, keeping their status and skipping
 * that check; children of a single-threaded suite, and every taskorad the tests start, keep it.
 */
static int threads_at_fork;

static void count_threads(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    threads_at_fork = n;
}

static void leave_now(int status, void *arg)
{
    (void)arg;
    _exit(status);
}

static void after_fork_in_child(void)
{
    if (threads_at_fork > 1)
        on_exit(leave_now, NULL);
}

int th_run_suite(Suite *s)
{
    const char *san = getenv("TK_SANITIZERS");
    static int registered;
    if (san && strcmp(san, "yes") == 0 && !registered++)
        pthread_atfork(count_threads, NULL, after_fork_in_child);
    /* a failure message quoting a response or a log must not be cut to Check's 4 KiB, which
     * turns the failure into an "early exit" that hides the assertion */
    check_set_max_msg_size(1 << 20);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

int th_daemon_spawn(th_daemon *d, const char *config, const char *log_path)
{
    memset(d, 0, sizeof(*d));
    d->log_path = strdup(log_path);
    /* empty it before the child starts, so a waiter never reads a previous run's lines */
    int empty = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (empty >= 0)
        close(empty);
    char bin[4096];
    snprintf(bin, sizeof(bin), "%s/taskorad", th_builddir());
    d->pid = fork();
    if (d->pid < 0)
        return -1;
    if (d->pid == 0) {
        child_reset();
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        close(fd);
        execl(bin, bin, "run", "-c", config, (char *)NULL);
        _exit(127);
    }
    return 0;
}

int th_daemon_start(th_daemon *d, const char *config, const char *log_path, int timeout_ms)
{
    if (th_daemon_spawn(d, config, log_path))
        return -1;
    if (!th_wait_file_contains(log_path, "taskorad ready", timeout_ms))
        return -1;
    char *log = th_read(log_path);
    /* the listening line in either log format: "url":"http://..." or url=http://... */
    const char *p = strstr(log, "\"url\":\"");
    const char *text = strstr(log, " url=http");
    int rc = -1;
    if (p || text) {
        p = p ? p + 7 : text + 5;
        const char *end = p + strcspn(p, "\" \n");
        if (end && (size_t)(end - p) < sizeof(d->url)) {
            memcpy(d->url, p, (size_t)(end - p));
            d->url[end - p] = '\0';
            rc = 0;
        }
    }
    free(log);
    return rc;
}

void th_daemon_start_named(th_daemon *d, const char *dir, const char *config, const char *name)
{
    char log[4096];
    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    if (th_daemon_start(d, config, log, 30000) != 0)
        ck_abort_msg("%s did not start: %s", name, th_read(log));
}

int th_daemon_wait(th_daemon *d, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int status = 0;
        pid_t r = waitpid(d->pid, &status, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(10);
    }
    return -1;
}

void th_daemon_stop(th_daemon *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGINT); /* stops without the drain delay */
    int code = th_daemon_wait(d, 30000);
    char *text = d->log_path ? th_read(d->log_path) : NULL;
    const char *log = text ? text : "";
    int bad = code != 0 || strstr(log, "Sanitizer") || strstr(log, "runtime error");
    if (bad) {
        char msg[65536];
        snprintf(msg, sizeof(msg), "taskorad exited %d on SIGINT: %s", code, log);
        free(text);
        th_daemon_cleanup(d);
        ck_abort_msg("%s", msg);
    }
    free(text);
    th_daemon_cleanup(d);
}

void th_daemon_cleanup(th_daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
    free(d->log_path);
    d->log_path = NULL;
}

int th_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    do {
        char *s = th_read(path);
        int found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return 1;
        sleep_ms(10);
    } while (now_ms() < deadline);
    return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    buf_add(ud, p, size * n);
    return size * n;
}

int th_http(const char *method, const char *url, const char *body, size_t body_len,
            const char *const *headers, th_response *r)
{
    memset(r, 0, sizeof(*r));
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    buf b = {0}, h = {0};
    buf_add(&b, "", 0);
    buf_add(&h, "", 0);
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    int in_name = 1; /* lower-case header names only */
    for (char *p = h.p; *p; p++) {
        if (*p == '\n')
            in_name = 1;
        else if (*p == ':')
            in_name = 0;
        else if (in_name)
            *p = (char)tolower((unsigned char)*p);
    }
    r->body = b.p;
    r->headers = h.p;
    return rc == CURLE_OK ? 0 : -1;
}

char *th_header(const th_response *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > n && strncmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(eol - v));
        }
        p = eol + 2;
    }
    return NULL;
}

void th_response_free(th_response *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

const char *th_pg_admin_url(void)
{
    const char *u = getenv("TASKORA_TEST_DATABASE_URL");
    return u && *u ? u : NULL;
}

static int env_true(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0 &&
           strcasecmp(v, "no") != 0;
}

int th_no_database(const char *suite)
{
    if (env_true("TASKORA_REQUIRE_DB") || env_true("CI")) {
        fprintf(stderr,
                "%s: FAIL: TASKORA_TEST_DATABASE_URL is not set, and this run requires the "
                "database suites (TASKORA_REQUIRE_DB or CI is set); scripts/test starts a "
                "throwaway PostgreSQL and sets it\n",
                suite);
        return 99;
    }
    fprintf(stderr,
            "%s: SKIP: TASKORA_TEST_DATABASE_URL is not set; the test command (scripts/test) "
            "starts a throwaway PostgreSQL and sets it\n",
            suite);
    return 77;
}

void th_pg_url_for(const char *base_url, const char *dbname, char *url, size_t urllen)
{
    PQconninfoOption *opts = PQconninfoParse(base_url, NULL);
    size_t n = 0;
    url[0] = '\0';
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
        if (v && *v && n < urllen)
            n += (size_t)snprintf(url + n, urllen - n, "%s='%s' ", o->keyword, v);
    }
    if (!strstr(url, "dbname=") && n < urllen)
        snprintf(url + n, urllen - n, "dbname='%s'", dbname);
    PQconninfoFree(opts);
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

void th_pg_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

char *th_pg_query1(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0, "%s: %s", sql,
                  PQresultErrorMessage(r));
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

void th_pg_create_db(const char *name, char *url, size_t urllen)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    th_pg_exec(th_pg_admin_url(), sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    th_pg_exec(th_pg_admin_url(), sql);
    th_pg_url_for(th_pg_admin_url(), name, url, urllen);
}

void th_pg_drop_db(const char *name)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    th_pg_exec(th_pg_admin_url(), sql);
}

static const char *srcdir(void)
{
    const char *s = getenv("TK_SRCDIR");
    return s && *s ? s : "..";
}

int th_pg_cluster_start(const char *dir, int port)
{
    char cmd[8192];
    chmod(dir, 0755); /* as root the server runs as postgres, which must reach it */
    snprintf(cmd, sizeof(cmd),
             "bash -c '. \"%s/scripts/pg.sh\" && PG_PORT=%d pg_start \"%s/pg\"' >/dev/null",
             srcdir(), port, dir);
    return system(cmd) == 0 ? 0 : -1;
}

int th_pg_cluster_stop(const char *dir)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "bash -c '. \"%s/scripts/pg.sh\" && PG_DIR=\"%s/pg\" && PG_BIN=$(pg_bin) && "
             "pg_stop' >/dev/null",
             srcdir(), dir);
    return system(cmd) == 0 ? 0 : -1;
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

double th_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

char *th_fmt(const char *fmt, ...)
{
    static char bufs[8][8192];
    static int i;
    char *b = bufs[i++ % 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof(bufs[0]), fmt, ap);
    va_end(ap);
    return b;
}

long th_pg_count(const char *url, const char *sql)
{
    char *v = th_pg_query1(url, sql);
    long n = atol(v);
    free(v);
    return n;
}

double th_metric(const char *base_url, const char *series)
{
    th_response r;
    ck_assert_int_eq(th_http("GET", th_fmt("%s/metrics", base_url), NULL, 0, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (!strncmp(p, series, n) && p[n] == ' ') { /* one line: series value */
            v = atof(p + n + 1);
            break;
        }
    }
    th_response_free(&r);
    return v;
}

double th_wait_metric(const char *base_url, const char *series, double want, int timeout_s)
{
    double end = th_now_s() + timeout_s, v;
    while ((v = th_metric(base_url, series)) != want && th_now_s() < end) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return v;
}

long th_pg_wait_count(const char *url, const char *sql, long want, int timeout_s)
{
    double end = th_now_s() + timeout_s;
    long n;
    while ((n = th_pg_count(url, sql)) < want && th_now_s() < end) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return n;
}

static long json_allocs_left = -1; /* < 0: no failures */
static int json_alloc_refused;

static void *failing_malloc(size_t size)
{
    if (json_allocs_left == 0) {
        json_alloc_refused = 1;
        return NULL;
    }
    if (json_allocs_left > 0)
        json_allocs_left--;
    return malloc(size);
}

void th_json_alloc_fail_after(long n)
{
    json_allocs_left = n;
    json_alloc_refused = 0;
    json_set_alloc_funcs(failing_malloc, free);
}

int th_json_alloc_failed(void) { return json_alloc_refused; }

void th_json_alloc_restore(void)
{
    json_allocs_left = -1;
    json_set_alloc_funcs(malloc, free);
}
