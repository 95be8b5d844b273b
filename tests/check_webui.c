/*
 * The webui plugin end to end: taskorad serving a folder the test writes (and the source tree's
 * plugins/webui/www), read back over real sockets: the answers' status, headers and bytes as a
 * browser gets them, revalidation with ETags, and requests that try to reach other files.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testhelp.h"

#define CSP                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static const char INDEX[] = "<!doctype html><title>Webui test</title><script type=\"module\" "
                            "src=\"app.js\"></script>\n";
static const char APP_JS[] = "export const answer = 42;\n";
static const char STYLE[] = "body { margin: 0; }\n";
static const char SECRET[] = "the-secret-that-must-not-leak";

static char *dir, *root;
static th_daemon d;

/* ---- helpers ------------------------------------------------------------------------------ */

/* A config serving `root_json` (a JSON string, or null for the default) with extra webui keys. */
static char *config_for(const char *root_json, const char *extra)
{
    const char *b = th_builddir();
    return th_write(dir, "webui.json",
                    th_fmt("{\"app_id\": \"webui-test\", \"log\": {\"format\": \"text\"},"
                           " \"plugin_dir\": \"%s/plugins/webui/.libs\","
                           " \"http\": {\"listen\": \"127.0.0.1:0\"},"
                           " \"plugins\": [{\"name\": \"webui\", \"load\": \"webui\","
                           "  \"config\": {\"root\": %s%s}}]}",
                           b, root_json, extra ? extra : ""));
}

static void start(const char *root_json, const char *extra)
{
    char *cfg = config_for(root_json, extra);
    th_daemon_start_named(&d, dir, cfg, "webui");
    free(cfg);
}

static void stop(void)
{
    if (d.pid <= 0)
        return;
    kill(d.pid, SIGINT);
    int rc = th_daemon_wait(&d, 20000);
    char *log = rc ? th_read(d.log_path) : NULL;
    ck_assert_msg(rc == 0, "taskorad exited %d: %s", rc, log ? log : "");
    free(log);
    th_daemon_cleanup(&d);
}

/* Starting with this config must fail; returns the log (malloc'd). */
static char *start_fails(const char *root_json, const char *extra)
{
    char *cfg = config_for(root_json, extra);
    char *log_path = th_write(dir, "failed.log", "");
    th_daemon f;
    ck_assert_int_eq(th_daemon_spawn(&f, cfg, log_path), 0);
    int rc = th_daemon_wait(&f, 20000);
    char *log = th_read(log_path);
    ck_assert_msg(rc != 0 && rc != -1, "taskorad did not refuse to start (%d): %s", rc, log);
    th_daemon_cleanup(&f);
    free(cfg);
    free(log_path);
    return log;
}

/* One raw HTTP/1.1 exchange with the request target sent exactly as given (no client tidies
 * "..", "%2e" or a double slash away); returns the whole answer, headers and body (malloc'd). */
static char *raw(const char *method, const char *target, const char *extra_header)
{
    int port = 0;
    ck_assert_int_eq(sscanf(d.url, "http://127.0.0.1:%d", &port), 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char *req =
        th_fmt("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%sConnection: close\r\n\r\n", method, target,
               extra_header ? extra_header : "", extra_header ? "\r\n" : "");
    ck_assert_int_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    for (ssize_t n; (n = recv(fd, out + len, cap - len - 1, 0)) > 0;) {
        len += (size_t)n;
        if (len + 1 == cap)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    close(fd);
    return out;
}

static int raw_status(const char *answer)
{
    int status = 0;
    sscanf(answer, "HTTP/1.1 %d", &status);
    return status;
}

/* The body of a raw answer (after the blank line). */
static const char *raw_body(const char *answer)
{
    const char *p = strstr(answer, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* How many times a header (any case) is in a raw answer's header block. */
static int raw_header_count(const char *answer, const char *name)
{
    int n = 0;
    size_t len = strlen(name);
    const char *end = strstr(answer, "\r\n\r\n");
    for (const char *p = strstr(answer, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, len) == 0 && p[2 + len] == ':')
            n++;
    return n;
}

static void get(const char *path, const char *const *headers, th_response *r)
{
    ck_assert_int_eq(th_http("GET", th_fmt("%s%s", d.url, path), NULL, 0, headers, r), 0);
}

static void assert_header(const th_response *r, const char *name, const char *want)
{
    char *v = th_header(r, name);
    ck_assert_msg(v && strcmp(v, want) == 0, "%s: \"%s\", expected \"%s\"", name, v ? v : "(none)",
                  want);
    free(v);
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static void setup(void)
{
    dir = th_tmpdir();
    root = strdup(th_fmt("%s/www", dir));
    ck_assert_int_eq(mkdir(root, 0755), 0);
    free(th_write(root, "index.html", INDEX));
    free(th_write(root, "app.js", APP_JS));
    free(th_write(root, "style.css", STYLE));
    free(th_write(root, ".hidden.js", SECRET));    /* hidden: not served */
    free(th_write(root, "notes.backup", SECRET));  /* no known type: not served */
    free(th_write(dir, "secret.txt", SECRET));     /* beside the root */
    free(th_write(dir, "webui.json.bak", SECRET)); /* beside the root too */
    ck_assert_int_eq(mkdir(th_fmt("%s/sub", root), 0755), 0);
    free(th_write(th_fmt("%s/sub", root), "inner.js", SECRET)); /* the folder is flat */
    memset(&d, 0, sizeof(d));
}

static void teardown(void)
{
    stop();
    th_rmtree(dir);
    free(dir);
    free(root);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* /app/ is index.html with the app's caching and security headers, each sent once. */
START_TEST(test_index_with_headers)
{
    start(th_fmt("\"%s\"", root), NULL);
    th_response r;
    get("/app/", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, INDEX);
    assert_header(&r, "content-type", "text/html; charset=utf-8");
    assert_header(&r, "cache-control", "no-cache");
    assert_header(&r, "content-security-policy", CSP);
    assert_header(&r, "x-content-type-options", "nosniff");
    assert_header(&r, "referrer-policy", "no-referrer");
    assert_header(&r, "x-frame-options", "DENY");
    char *etag = th_header(&r, "etag");
    ck_assert_msg(etag && strlen(etag) == 34 && etag[0] == '"' && etag[33] == '"' &&
                      strspn(etag + 1, "0123456789abcdef") == 32,
                  "ETag %s is not a strong validator", etag ? etag : "(none)");
    free(etag);
    th_response_free(&r);

    char *a = raw("GET", "/app/", NULL);
    ck_assert_int_eq(raw_status(a), 200);
    const char *once[] = {"ETag",
                          "Cache-Control",
                          "Content-Security-Policy",
                          "X-Content-Type-Options",
                          "Referrer-Policy",
                          "X-Frame-Options",
                          "Content-Type"};
    for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++)
        ck_assert_msg(raw_header_count(a, once[i]) == 1, "%s sent %d times: %s", once[i],
                      raw_header_count(a, once[i]), a);
    free(a);

    /* index.html by name is the same file */
    get("/app/index.html", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, INDEX);
    th_response_free(&r);
}
END_TEST

/* /app (no final slash) redirects, so that the page's relative URLs resolve under /app/. */
START_TEST(test_app_without_slash_redirects)
{
    start(th_fmt("\"%s\"", root), NULL);
    char *a = raw("GET", "/app", NULL);
    ck_assert_msg(raw_status(a) == 301, "%s", a);
    ck_assert_msg(strstr(a, "\r\nLocation: /app/\r\n"), "%s", a);
    free(a);
    a = raw("GET", "/app?from=bookmark", NULL);
    ck_assert_msg(raw_status(a) == 301 && strstr(a, "\r\nLocation: /app/\r\n"), "%s", a);
    free(a);
    /* the redirect names the configured path only, never what the client sent */
    a = raw("GET", "//app", NULL);
    ck_assert_msg(raw_status(a) == 301 && strstr(a, "\r\nLocation: /app/\r\n"), "%s", a);
    free(a);
}
END_TEST

/* Files by name, with their types; HEAD gives the headers and no body. */
START_TEST(test_files_with_their_types_and_head)
{
    start(th_fmt("\"%s\"", root), NULL);
    th_response r;
    get("/app/app.js", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, APP_JS);
    assert_header(&r, "content-type", "text/javascript; charset=utf-8");
    assert_header(&r, "content-security-policy", CSP);
    th_response_free(&r);
    get("/app/style.css", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, STYLE);
    assert_header(&r, "content-type", "text/css; charset=utf-8");
    th_response_free(&r);

    char *a = raw("HEAD", "/app/app.js", NULL);
    ck_assert_msg(raw_status(a) == 200, "%s", a);
    ck_assert_msg(strcasestr(a, th_fmt("\r\nContent-Length: %zu\r\n", strlen(APP_JS))), "%s", a);
    ck_assert_msg(raw_header_count(a, "ETag") == 1, "%s", a);
    ck_assert_str_eq(raw_body(a), "");
    free(a);

    /* other methods are not allowed on the app's routes */
    ck_assert_int_eq(th_http("POST", th_fmt("%s/app/app.js", d.url), "x", 1, NULL, &r), 0);
    ck_assert_int_eq(r.status, 405);
    th_response_free(&r);
}
END_TEST

/* The ETag comes back in If-None-Match: 304 without a body; another ETag gets the file. */
START_TEST(test_etag_revalidation)
{
    start(th_fmt("\"%s\"", root), NULL);
    th_response r;
    get("/app/app.js", NULL, &r);
    char *etag = th_header(&r, "etag");
    ck_assert_ptr_nonnull(etag);
    th_response_free(&r);
    get("/app/style.css", NULL, &r);
    char *other = th_header(&r, "etag");
    ck_assert_msg(other && strcmp(other, etag) != 0, "two files share the ETag %s", etag);
    th_response_free(&r);

    char weak[64], listed[80], prefix[32];
    snprintf(weak, sizeof(weak), "W/%s", etag);
    snprintf(listed, sizeof(listed), "\"x\", %s", etag);
    snprintf(prefix, sizeof(prefix), "%.20s", etag);
    const char *matching[] = {etag, weak, listed, "*"};
    for (size_t i = 0; i < sizeof(matching) / sizeof(matching[0]); i++) {
        char *a = raw("GET", "/app/app.js", th_fmt("If-None-Match: %s", matching[i]));
        ck_assert_msg(raw_status(a) == 304, "If-None-Match: %s: %s", matching[i], a);
        ck_assert_msg(strcmp(raw_body(a), "") == 0, "a 304 with a body: %s", a);
        ck_assert_msg(raw_header_count(a, "Content-Type") == 0, "%s", a);
        ck_assert_msg(strstr(a, th_fmt("\r\nETag: %s\r\n", etag)), "%s", a);
        ck_assert_msg(strstr(a, "\r\nCache-Control: no-cache\r\n"), "%s", a);
        free(a);
    }
    const char *stale[] = {other, "\"0000\"", "garbage", prefix};
    for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
        char *a = raw("GET", "/app/app.js", th_fmt("If-None-Match: %s", stale[i]));
        ck_assert_msg(raw_status(a) == 200, "If-None-Match: %s: %s", stale[i], a);
        ck_assert_str_eq(raw_body(a), APP_JS);
        free(a);
    }
    /* the index revalidates the same way */
    get("/app/", NULL, &r);
    char *index_etag = th_header(&r, "etag");
    th_response_free(&r);
    const char *h[] = {th_fmt("If-None-Match: %s", index_etag), NULL};
    get("/app/", h, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_str_eq(r.body, "");
    th_response_free(&r);
    free(index_etag);
    free(etag);
    free(other);
}
END_TEST

/* Only the files loaded at start-up exist: anything else is the API's 404. */
START_TEST(test_unknown_and_skipped_files_are_404)
{
    start(th_fmt("\"%s\"", root), NULL);
    const char *paths[] = {"/app/nope.js", "/app/.hidden.js",   "/app/notes.backup", "/app/sub",
                           "/app/sub/",    "/app/sub/inner.js", "/app/app.js/",      "/app/APP.JS"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        th_response r;
        get(paths[i], NULL, &r);
        ck_assert_msg(r.status == 404, "%s: %ld %s", paths[i], r.status, r.body);
        ck_assert_msg(strcmp(r.body, "{\"detail\":\"Not Found\"}") == 0, "%s: %s", paths[i],
                      r.body);
        assert_header(&r, "content-type", "application/json; charset=utf-8");
        th_response_free(&r);
    }
    /* each skipped entry is logged with why */
    char *log = th_read(d.log_path);
    ck_assert_msg(strstr(log, "file=sub reason=not a regular file") &&
                      strstr(log, "file=.hidden.js reason=hidden") &&
                      strstr(log, "file=notes.backup reason=no known type"),
                  "%s", log);
    free(log);
    /* a file added after start-up is not served either */
    free(th_write(root, "late.js", SECRET));
    th_response r;
    get("/app/late.js", NULL, &r);
    ck_assert_int_eq(r.status, 404);
    th_response_free(&r);
}
END_TEST

/* Request targets that try to climb out of the folder reach nothing. */
START_TEST(test_traversal_attempts_are_404)
{
    start(th_fmt("\"%s\"", root), NULL);
    const char *targets[] = {
        "/app/..%2Fsecret.txt",
        "/app/..%2fwebui.json.bak",
        "/app/%2e%2e/secret.txt",
        "/app/%2e%2e%2fsecret.txt",
        "/app/../secret.txt",
        "/app/..%5csecret.txt",
        "/app/..\\secret.txt",
        "/app/%2e%2e",
        "/app/..",
        "/app/.",
        "/app/%2fetc%2fpasswd",
        "/app/..%2F..%2Fetc%2Fpasswd",
        "/app/sub%2finner.js",
        "/app/.%2fapp.js",
        "/app//etc/passwd",
        "/app/%252e%252e%252fsecret.txt",
    };
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        char *a = raw("GET", targets[i], NULL);
        ck_assert_msg(raw_status(a) == 404, "%s: %s", targets[i], a);
        ck_assert_msg(!strstr(a, SECRET) && !strstr(a, "root:"), "%s leaked: %s", targets[i], a);
        free(a);
    }
}
END_TEST

/* Another `path`; the default one then serves nothing. */
START_TEST(test_configured_path)
{
    start(th_fmt("\"%s\"", root), ", \"path\": \"/ui/v1\"");
    char *a = raw("GET", "/ui/v1", NULL);
    ck_assert_msg(raw_status(a) == 301 && strstr(a, "\r\nLocation: /ui/v1/\r\n"), "%s", a);
    free(a);
    th_response r;
    get("/ui/v1/", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, INDEX);
    th_response_free(&r);
    get("/ui/v1/app.js", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    th_response_free(&r);
    get("/app/", NULL, &r);
    ck_assert_int_eq(r.status, 404);
    th_response_free(&r);
}
END_TEST

/* A root that cannot be served stops start-up with a message naming the key and the path. */
START_TEST(test_bad_roots_fail_start_up)
{
    char *missing = strdup(th_fmt("%s/no-such-folder", dir));
    char *log = start_fails(th_fmt("\"%s\"", missing), NULL);
    ck_assert_msg(strstr(log, "config.root") && strstr(log, missing) &&
                      strstr(log, "No such file or directory"),
                  "%s", log);
    free(log);

    /* a file, not a folder */
    log = start_fails(th_fmt("\"%s/secret.txt\"", dir), NULL);
    ck_assert_msg(strstr(log, "config.root") && strstr(log, "secret.txt"), "%s", log);
    free(log);

    /* a folder without index.html */
    char *empty = strdup(th_fmt("%s/empty", dir));
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    free(th_write(empty, "app.js", APP_JS));
    log = start_fails(th_fmt("\"%s\"", empty), NULL);
    ck_assert_msg(strstr(log, "config.root") && strstr(log, "no index.html"), "%s", log);
    free(log);

    /* more than the plugin keeps in memory */
    FILE *f = fopen(th_fmt("%s/big.js", empty), "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ftruncate(fileno(f), 9 * 1024 * 1024), 0);
    fclose(f);
    free(th_write(empty, "index.html", INDEX));
    log = start_fails(th_fmt("\"%s\"", empty), NULL);
    ck_assert_msg(strstr(log, "config.root") && strstr(log, "larger than"), "%s", log);
    free(log);

    /* a path that is no path */
    const char *bad_paths[] = {"app", "/", "/app/", "/a//b", "/a/../b", "/a b", "/{file}"};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        log = start_fails(th_fmt("\"%s\"", root), th_fmt(", \"path\": \"%s\"", bad_paths[i]));
        ck_assert_msg(strstr(log, "config.path"), "%s: %s", bad_paths[i], log);
        free(log);
    }
    free(missing);
    free(empty);
}
END_TEST

/* Every file of the source tree's app is served, with a known type, byte for byte. */
START_TEST(test_source_tree_app_is_served)
{
    const char *src = getenv("TK_SRCDIR") ? getenv("TK_SRCDIR") : "..";
    char *www = strdup(th_fmt("%s/plugins/webui/www", src));
    start(th_fmt("\"%s\"", www), NULL);
    DIR *dp = opendir(www);
    ck_assert_ptr_nonnull(dp);
    int files = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        struct stat st;
        char *path = strdup(th_fmt("%s/%s", www, e->d_name));
        ck_assert_int_eq(stat(path, &st), 0);
        if (e->d_name[0] == '.' || !S_ISREG(st.st_mode)) {
            ck_assert_msg(e->d_name[0] == '.', "%s: the app's folder must stay flat", path);
            free(path);
            continue;
        }
        th_response r;
        get(th_fmt("/app/%s", e->d_name), NULL, &r);
        ck_assert_msg(r.status == 200, "%s: %ld (an extension the plugin has no type for?)",
                      e->d_name, r.status);
        char *want = th_read(path);
        ck_assert_msg(strcmp(r.body, want) == 0, "%s differs", e->d_name);
        free(want);
        th_response_free(&r);
        free(path);
        files++;
    }
    closedir(dp);
    ck_assert_int_ge(files, 13);
    free(www);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("webui");
    TCase *tc = tcase_create("webui");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_index_with_headers);
    tcase_add_test(tc, test_app_without_slash_redirects);
    tcase_add_test(tc, test_files_with_their_types_and_head);
    tcase_add_test(tc, test_etag_revalidation);
    tcase_add_test(tc, test_unknown_and_skipped_files_are_404);
    tcase_add_test(tc, test_traversal_attempts_are_404);
    tcase_add_test(tc, test_configured_path);
    tcase_add_test(tc, test_bad_roots_fail_start_up);
    tcase_add_test(tc, test_source_tree_app_is_served);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
