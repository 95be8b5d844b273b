/* Helpers for the Check suites: temp files, child processes, waiting on conditions, HTTP. */
#ifndef TK_TESTHELP_H
#define TK_TESTHELP_H

#include <stddef.h>
#include <sys/types.h>

/* $TK_BUILDDIR (set by make check), or "." */
const char *th_builddir(void);
/* Where the in-tree test plugins are built: BUILDDIR/tests/plugins/.libs */
const char *th_plugin_dir(void);
/* A fresh temporary directory (removed by th_rmtree). Caller frees. */
char *th_tmpdir(void);
void th_rmtree(const char *dir);
/* Writes content to dir/name; returns the malloc'd full path. */
char *th_write(const char *dir, const char *name, const char *content);
/* The whole file as a malloc'd string ("" when missing). */
char *th_read(const char *path);

/*
 * Runs argv (argv[0] a path) to completion with a timeout, capturing stdout
 * and stderr (malloc'd; may be NULL to discard). Returns the exit code, or
 * -1 on timeout (the child is killed) or failure to start.
 */
int th_run(char *const argv[], char **out, char **err, int timeout_ms);

/* Runs the built taskorad with args (NULL-terminated, without argv[0]); see th_run. */
int th_taskorad(const char *const *args, char **out, char **err, int timeout_ms);

/* Runs `taskorad migrate -c config`; a failure aborts the test, quoting its output. */
void th_migrate(const char *config);
/* Runs a Check suite (CK_NORMAL) and frees it; returns the process exit code. */
struct Suite;
int th_run_suite(struct Suite *s);

/* A running `taskorad run`, its log in a file. */
typedef struct th_daemon {
    pid_t pid;
    char url[128];
    char *log_path;
} th_daemon;

/* Starts taskorad run -c config, logging to log_path; waits until it serves HTTP (url set). 0 ok.
 */
int th_daemon_start(th_daemon *d, const char *config, const char *log_path, int timeout_ms);
/*
 * th_daemon_start with its log in dir/NAME.log and 30 s to become ready; a start that fails
 * aborts the test, quoting the log.
 */
void th_daemon_start_named(th_daemon *d, const char *dir, const char *config, const char *name);
/* Starts it without waiting for HTTP (for configs that must fail). */
int th_daemon_spawn(th_daemon *d, const char *config, const char *log_path);
/* Waits for exit; returns the exit code, 128+signal if killed by one, or -1 on timeout. */
int th_daemon_wait(th_daemon *d, int timeout_ms);
/* Kills what is left of it and frees. */
void th_daemon_cleanup(th_daemon *d);
/* SIGINT (no drain delay), then fails the test, quoting the log, unless taskorad exits 0 within
 * 30 s with no sanitizer report in its log; then th_daemon_cleanup. Nothing when not running. */
void th_daemon_stop(th_daemon *d);

/* Polls until the file contains needle; 1 found, 0 timed out. */
int th_wait_file_contains(const char *path, const char *needle, int timeout_ms);

/* One HTTP exchange over a real socket (libcurl). */
typedef struct th_response {
    long status;
    char *body;
    char *headers; /* raw header block, lower-cased names */
    double seconds;
} th_response;

/* `headers` is a NULL-terminated list of "Name: value" lines or NULL. 0 ok, -1 transport error. */
int th_http(const char *method, const char *url, const char *body, size_t body_len,
            const char *const *headers, th_response *r);
/* The value of a response header (lower-case name), malloc'd, or NULL. */
char *th_header(const th_response *r, const char *name);
void th_response_free(th_response *r);
/*
 * The value of one series of base_url's /metrics, named in full with its labels as the
 * exposition prints them (`taskora_x_total{plugin="p",reason="r"}`), or -1 when absent.
 */
double th_metric(const char *base_url, const char *series);
/* Polls until that value is exactly want or timeout_s pass; returns the last value seen. */
double th_wait_metric(const char *base_url, const char *series, double want, int timeout_s);

/* Seconds on CLOCK_MONOTONIC, for deadlines and durations. */
double th_now_s(void);
/*
 * printf into one of 8 static buffers of 8 KiB used in turn: for building
 * paths, bodies and SQL inline. Valid until 8 more calls; not thread-safe.
 */
char *th_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Kafka: th_kafka.h */

/* ---- PostgreSQL (the server scripts/test starts; TASKORA_TEST_DATABASE_URL) ---- */

/* The admin URL from TASKORA_TEST_DATABASE_URL, or NULL when the tests run without a server. */
const char *th_pg_admin_url(void);
/* Creates database `name` on that server and writes a conninfo for it into url. */
void th_pg_create_db(const char *name, char *url, size_t urllen);
void th_pg_drop_db(const char *name);
/* The same server's conninfo with another dbname. */
/*
 * For a suite that needs PostgreSQL and has no TASKORA_TEST_DATABASE_URL: says so
 * and returns the exit status, 77 (skipped), or 99 (a hard error) when
 * TASKORA_REQUIRE_DB=1 or CI is set, so a CI run cannot pass without testing.
 */
int th_no_database(const char *suite);
void th_pg_url_for(const char *base_url, const char *dbname, char *url, size_t urllen);
/* Runs a statement that must succeed (ck_assert). */
void th_pg_exec(const char *url, const char *sql);
/* The first value of a query's first row, malloc'd (ck_assert on failure). */
char *th_pg_query1(const char *url, const char *sql);
/* That value as a number (a count, a sum). */
long th_pg_count(const char *url, const char *sql);
/* Polls until the query's value reaches want or timeout_s pass; returns the last value seen. */
long th_pg_wait_count(const char *url, const char *sql, long want, int timeout_s);

/* A private cluster, for tests that stop and start the server (scripts/pg.sh). 0 ok. */
int th_pg_cluster_start(const char *dir, int port);
int th_pg_cluster_stop(const char *dir);
/* A TCP port nothing listens on now. */
int th_free_port(void);

/*
 * Out of memory on purpose: jansson's allocations fail from the n-th (0: the
 * first) on, until th_json_alloc_restore. th_json_alloc_failed says whether
 * an allocation was refused since.
 */
void th_json_alloc_fail_after(long n);
int th_json_alloc_failed(void);
void th_json_alloc_restore(void);

#endif
