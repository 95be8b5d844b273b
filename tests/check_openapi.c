/* The API description: fragments checked and merged (tk_openapi), and what a client reads at
 * /openapi.json and /docs from a taskorad whose test plugin describes some of its routes and
 * refuses descriptions it must; with every API-pod plugin, the document is valid OpenAPI 3.1
 * and leaves no route undescribed. The schema it is checked with (tests/openapi/) refuses
 * broken documents, each for its fault. */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_openapi.h"
#include "routes.h"
#include "testhelp.h"

/* What a test allocates stays reachable until its process exits (LeakSanitizer). */
static void **kept;
static size_t nkept, capkept;

static void *keep(void *p)
{
    if (p && nkept == capkept) {
        capkept = capkept ? capkept * 2 : 64;
        kept = realloc(kept, capkept * sizeof(*kept));
        ck_assert_ptr_nonnull(kept);
    }
    if (p)
        kept[nkept++] = p;
    return p;
}

static const char *dump(json_t *j)
{
    return j ? keep(json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT)) : "(absent)";
}

static int noop(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    (void)ud, (void)req, (void)resp;
    return 0;
}

/* ======================= tk_openapi: fragments and the document ============================ */

static tk_routes *routes;
static tk_openapi *oa;
static char err[1024];

static void unit_up(void)
{
    routes = tk_routes_new();
    oa = tk_openapi_new();
    ck_assert_ptr_nonnull(routes);
    ck_assert_ptr_nonnull(oa);
    ck_assert_int_eq(tk_routes_add(routes, "GET", "/a/{id}", noop, NULL, "p1"), 0);
    ck_assert_int_eq(tk_routes_add(routes, "POST", "/a", noop, NULL, "p1"), 0);
    ck_assert_int_eq(tk_routes_add(routes, "GET", "/b", noop, NULL, "p2"), 0);
    ck_assert_int_eq(tk_routes_add(routes, "GET", "/c/{x}/d/{y}", noop, NULL, "p2"), 0);
    err[0] = '\0';
}

static void unit_down(void)
{
    tk_openapi_free(oa);
    tk_routes_free(routes);
}

static int add(const char *owner, const char *fragment)
{
    err[0] = '\0';
    return tk_openapi_add(oa, routes, owner, fragment, err, sizeof(err));
}

#define REFUSED(owner, text, code, needle)                                                         \
    do {                                                                                           \
        int rc_ = add((owner), (text));                                                            \
        ck_assert_msg(rc_ == (code), "%s: expected %d, got %d (%s)", (text), (code), rc_, err);    \
        ck_assert_msg(strstr(err, (needle)), "%s: the reason \"%s\" does not say \"%s\"", (text),  \
                      err, (needle));                                                              \
    } while (0)

START_TEST(test_text_that_is_not_json_is_einval_with_line_and_column)
{
    REFUSED("p1", "{\"paths\": {}", TK_EINVAL, "line 1, column");
    REFUSED("p1", "{\n  \"paths\": {\"/a\": {\"post\": {}},}\n}", TK_EINVAL, "line 2");
    REFUSED("p1", "", TK_EINVAL, "not JSON");
    ck_assert_int_eq(tk_openapi_add(oa, routes, "p1", NULL, err, sizeof(err)), TK_EINVAL);
}
END_TEST

START_TEST(test_fragment_is_an_object_of_paths_and_components)
{
    REFUSED("p1", "[]", TK_EINVAL, "must be an object");
    REFUSED("p1", "{}", TK_EINVAL, "needs \"paths\"");
    REFUSED("p1", "{\"paths\": []}", TK_EINVAL, "needs \"paths\"");
    REFUSED("p1", "{\"paths\": {}, \"info\": {}}", TK_EINVAL, "unknown key \"info\"");
    REFUSED("p1", "{\"paths\": {}, \"components\": []}", TK_EINVAL, "\"components\" must be");
    REFUSED("p1", "{\"paths\": {}, \"components\": {\"models\": {}}}", TK_EINVAL,
            "components.models: not a kind");
    REFUSED("p1", "{\"paths\": {}, \"components\": {\"schemas\": {\"a b\": {}}}}", TK_EINVAL,
            "components.schemas.a b");
    REFUSED("p1", "{\"paths\": {}, \"components\": {\"schemas\": {\"A\": 3}}}", TK_EINVAL,
            "must be an object");
    REFUSED("p1", "{\"paths\": {\"/a\": {\"post\": []}}}", TK_EINVAL, "must be an object");
    REFUSED("p1", "{\"paths\": {\"/a\": {\"post\": {}, \"post\": {}}}}", TK_EINVAL, "not JSON");
    ck_assert_int_eq(add("p1", "{\"paths\": {}}"), TK_OK);
}
END_TEST

START_TEST(test_describing_a_route_the_instance_does_not_serve_is_einval)
{
    REFUSED("p1", "{\"paths\": {\"/x\": {\"get\": {}}}}", TK_EINVAL,
            "describes GET /x, which it does not serve");
    /* p2's route, the wrong method, the parameter named otherwise, a trailing slash */
    REFUSED("p1", "{\"paths\": {\"/b\": {\"get\": {}}}}", TK_EINVAL,
            "describes GET /b, which it does not serve");
    REFUSED("p1", "{\"paths\": {\"/a\": {\"delete\": {}}}}", TK_EINVAL,
            "describes DELETE /a, which it does not serve");
    REFUSED("p1", "{\"paths\": {\"/a/{key}\": {\"get\": {}}}}", TK_EINVAL,
            "describes GET /a/{key}, which it does not serve");
    REFUSED("p1", "{\"paths\": {\"/a/\": {\"post\": {}}}}", TK_EINVAL,
            "describes POST /a/, which it does not serve");
    REFUSED("p1", "{\"paths\": {\"/a\": {\"POST\": {}}}}", TK_EINVAL, "paths./a.POST");
    REFUSED("p1", "{\"paths\": {\"/a\": {\"parameters\": []}}}", TK_EINVAL, "only operations");
    ck_assert_int_eq(add("p1", "{\"paths\": {\"/a\": {\"post\": {}}}}"), TK_OK);
    REFUSED("p1", "{\"paths\": {\"/a\": {\"post\": {}}}}", TK_EEXIST, "POST /a: already described");
}
END_TEST

START_TEST(test_component_defined_differently_is_eexist_and_identical_is_fine)
{
    const char *a =
        "{\"paths\": {}, \"components\": {\"schemas\": {\"T\": {\"type\": \"string\"}}}}";
    ck_assert_int_eq(add("p1", a), TK_OK);
    ck_assert_int_eq(add("p2", a), TK_OK);
    REFUSED("p2",
            "{\"paths\": {}, \"components\": {\"schemas\": {\"T\": {\"type\": \"integer\"}}}}",
            TK_EEXIST, "components.schemas.T is already defined differently by p1");
    /* another kind of component with the same name is another component */
    ck_assert_int_eq(add("p2", "{\"paths\": {}, \"components\": {\"responses\": {\"T\":"
                               " {\"description\": \"t\"}}}}"),
                     TK_OK);
}
END_TEST

START_TEST(test_refs_must_resolve_and_path_parameters_be_the_patterns)
{
    REFUSED("p1",
            "{\"paths\": {\"/a\": {\"post\": {\"responses\": {\"200\": {\"$ref\":"
            " \"#/components/responses/Nope\"}}}}}}",
            TK_EINVAL, "POST /a: $ref \"#/components/responses/Nope\" does not resolve");
    REFUSED("p1",
            "{\"paths\": {}, \"components\": {\"schemas\": {\"A\": {\"$ref\":"
            " \"other.json#/A\"}}}}",
            TK_EINVAL, "components: $ref \"other.json#/A\"");
    REFUSED("p1",
            "{\"paths\": {\"/a/{id}\": {\"get\": {\"parameters\": [{\"name\": \"key\", \"in\":"
            " \"path\", \"required\": true, \"schema\": {}}]}}}}",
            TK_EINVAL, "path parameter \"key\" is not in the pattern");
    REFUSED("p1", "{\"paths\": {\"/a/{id}\": {\"get\": {\"parameters\": [{\"in\": \"query\"}]}}}}",
            TK_EINVAL, "needs \"name\" and \"in\"");
    /* a reference into the fragment's own components, and into an earlier fragment's */
    ck_assert_int_eq(add("p1", "{\"paths\": {\"/a/{id}\": {\"get\": {\"parameters\": [{\"$ref\":"
                               " \"#/components/parameters/Id\"}]}}}, \"components\":"
                               " {\"parameters\": {\"Id\": {\"name\": \"id\", \"in\": \"path\","
                               " \"required\": true, \"schema\": {\"$ref\":"
                               " \"#/components/schemas/Num\"}}}, \"schemas\": {\"Num\":"
                               " {\"type\": \"integer\"}}}}"),
                     TK_OK);
    ck_assert_int_eq(add("p2", "{\"paths\": {\"/b\": {\"get\": {\"responses\": {\"200\": "
                               "{\"description\": \"n\", \"content\": {\"application/json\": "
                               "{\"schema\": {\"$ref\": \"#/components/schemas/Num\"}}}}}}}}}"),
                     TK_OK);
}
END_TEST

START_TEST(test_refused_fragment_merges_nothing)
{
    /* its component is fine, its operation is not: neither is kept */
    REFUSED("p1",
            "{\"paths\": {\"/x\": {\"get\": {}}}, \"components\": {\"schemas\": {\"T\":"
            " {\"type\": \"string\"}}}}",
            TK_EINVAL, "does not serve");
    ck_assert_int_eq(add("p2", "{\"paths\": {}, \"components\": {\"schemas\": {\"T\":"
                               " {\"type\": \"integer\"}}}}"),
                     TK_OK);
    REFUSED("p1",
            "{\"paths\": {\"/a\": {\"post\": {\"operationId\": \"x\"}}, \"/a/{id}\":"
            " {\"get\": {\"operationId\": \"x\"}}}}",
            TK_EINVAL, "operationId \"x\" is already used");
    ck_assert_int_eq(add("p1", "{\"paths\": {\"/a\": {\"post\": {\"operationId\": \"x\"}}}}"),
                     TK_OK);
    REFUSED("p1", "{\"paths\": {\"/a/{id}\": {\"get\": {\"operationId\": \"x\"}}}}", TK_EINVAL,
            "operationId \"x\" is already used");
}
END_TEST

/* The operation at paths[path][method] of a document. */
static json_t *op_at(json_t *doc, const char *path, const char *method)
{
    return json_object_get(json_object_get(json_object_get(doc, "paths"), path), method);
}

START_TEST(test_document_fills_defaults_and_marks_undescribed_routes)
{
    ck_assert_int_eq(add("p1", "{\"paths\": {\"/a/{id}\": {\"get\": {\"summary\": \"One A\"}},"
                               " \"/a\": {\"post\": {\"operationId\": \"get_b\", \"tags\":"
                               " [\"things\"], \"security\": []}}}}"),
                     TK_OK);
    ck_assert_int_eq(tk_openapi_tag(oa, "p1", "the first"), TK_OK);
    json_t *doc = keep(tk_openapi_build(oa, routes, "9.9"));
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "info"), "version")),
                     "9.9");
    json_t *a = op_at(doc, "/a/{id}", "get");
    ck_assert_str_eq(json_string_value(json_object_get(a, "summary")), "One A");
    ck_assert_str_eq(json_string_value(json_object_get(a, "operationId")), "get_a_id");
    ck_assert_str_eq(dump(json_object_get(a, "tags")), "[\"p1\"]");
    ck_assert_str_eq(dump(json_object_get(a, "parameters")),
                     "[{\"name\":\"id\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":"
                     "\"string\"}}]");
    ck_assert_ptr_null(json_object_get(a, "x-taskora-undescribed"));
    json_t *post = op_at(doc, "/a", "post");
    ck_assert_str_eq(dump(json_object_get(post, "tags")), "[\"things\"]");
    ck_assert_str_eq(dump(json_object_get(post, "security")), "[]");
    /* the undescribed route's generated id steps aside for the one a fragment chose */
    json_t *b = op_at(doc, "/b", "get");
    ck_assert_msg(json_is_true(json_object_get(b, "x-taskora-undescribed")), "%s", dump(b));
    ck_assert_str_eq(json_string_value(json_object_get(b, "summary")), "Undescribed route");
    ck_assert_str_eq(json_string_value(json_object_get(b, "operationId")), "get_b_2");
    ck_assert_str_eq(dump(json_object_get(b, "tags")), "[\"p2\"]");
    json_t *c = op_at(doc, "/c/{x}/d/{y}", "get");
    ck_assert_str_eq(json_string_value(json_object_get(c, "operationId")), "get_c_x_d_y");
    ck_assert_int_eq(json_array_size(json_object_get(c, "parameters")), 2);
    ck_assert_str_eq(dump(json_object_get(doc, "tags")),
                     "[{\"name\":\"p1\",\"description\":\"the first\"},{\"name\":\"things\"},"
                     "{\"name\":\"p2\"}]");
    ck_assert_str_eq(dump(json_object_get(doc, "security")), "[{\"bearerAuth\":[]}]");
}
END_TEST

/* =============== taskorad with two instances of the test plugin, over HTTP ================== */

static char *dir, *record_path;
static th_daemon daemon_;
static char base_url[128];
static int daemon_state; /* 0 not tried, 1 up, -1 failed */

static void daemon_up(void)
{
    if (daemon_state == 1)
        return;
    ck_assert_msg(daemon_state == 0, "the suite's taskorad did not start (see the first failure)");
    daemon_state = -1;
    dir = th_tmpdir();
    record_path = th_write(dir, "record.txt", "");
    char *cfg = th_write(
        dir, "taskora.json",
        th_fmt(
            "{\"app_id\": \"openapi-test\", \"log\": {\"format\": \"text\"},"
            " \"kafka\": {\"brokers\": \"127.0.0.1:9\"},"
            " \"http\": {\"listen\": \"127.0.0.1:0\"}, \"plugin_dir\": \"%s\", \"plugins\": ["
            " {\"name\": \"t1\", \"load\": \"openapi_plugin\", \"config\": {\"record\": \"%s\"}},"
            " {\"name\": \"t2\", \"load\": \"openapi_plugin\","
            "  \"config\": {\"record\": \"%s\", \"prefix\": \"/oa2\"}}]}",
            th_plugin_dir(), record_path, record_path));
    th_daemon_start_named(&daemon_, dir, cfg, "taskorad");
    snprintf(base_url, sizeof(base_url), "%s", daemon_.url);
    free(cfg);
    daemon_state = 1;
}

static int daemon_bad; /* a taskorad of the suite did not exit cleanly: the run fails */

/* Stops a suite's taskorad with SIGINT; a dirty exit or a sanitizer report fails the run. */
static void stop_daemon(th_daemon *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGINT);
    int code = th_daemon_wait(d, 30000);
    char *text = th_read(d->log_path);
    if (code != 0 || strstr(text, "Sanitizer") || strstr(text, "runtime error")) {
        fprintf(stderr, "check_openapi: taskorad exited %d; log:\n%s\n", code, text);
        daemon_bad = 1;
    }
    free(text);
}

static void daemon_down(void)
{
    stop_daemon(&daemon_);
    th_daemon_cleanup(&daemon_);
    if (dir)
        th_rmtree(dir);
    free(dir);
    free(record_path);
    dir = record_path = NULL;
}

/* GET base+path with extra header lines; the response is kept. */
static th_response get(const char *base, const char *path, const char *const *headers)
{
    th_response r;
    ck_assert_msg(th_http("GET", th_fmt("%s%s", base, path), NULL, 0, headers, &r) == 0,
                  "GET %s: no answer", path);
    keep(r.body);
    keep(r.headers);
    return r;
}

static const char *header(const th_response *r, const char *name)
{
    return keep(th_header(r, name));
}

static json_t *get_document(const char *base)
{
    th_response r = get(base, "/openapi.json", NULL);
    ck_assert_msg(r.status == 200, "/openapi.json: %ld %s", r.status, r.body);
    json_error_t e;
    json_t *doc = keep(json_loads(r.body, 0, &e));
    ck_assert_msg(doc != NULL, "/openapi.json is not JSON: %s", e.text);
    return doc;
}

static const char *srcdir(void) { return getenv("TK_SRCDIR") ? getenv("TK_SRCDIR") : ".."; }

/* The schema of OpenAPI 3.1 documents the served ones are checked with: $TK_OPENAPI_SCHEMA
 * (another schema, the OAI's for one), else the project's own (tests/openapi/README.md). */
static const char *schema_path(void)
{
    const char *env = getenv("TK_OPENAPI_SCHEMA");
    if (env && *env) {
        ck_assert_msg(access(env, R_OK) == 0, "$TK_OPENAPI_SCHEMA (%s) is not readable", env);
        return env;
    }
    const char *own = keep(strdup(th_fmt("%s/tests/openapi/oas-3.1.schema.json", srcdir())));
    ck_assert_msg(access(own, R_OK) == 0,
                  "no schema of OpenAPI 3.1 documents: %s is not readable and $TK_OPENAPI_SCHEMA "
                  "is not set (see tests/openapi/README.md)",
                  own);
    return own;
}

/* tests/openapi_validate.py SCHEMA FILE: its exit code; what it printed is kept in *said. */
static int validate(const char *schema, const char *file, const char **said)
{
    char *script = keep(strdup(th_fmt("%s/tests/openapi_validate.py", srcdir())));
    char *argv[] = {"/usr/bin/python3", script, (char *)schema, (char *)file, NULL};
    char *out = NULL, *errs = NULL;
    int rc = th_run(argv, &out, &errs, 60000);
    size_t lo = out ? strlen(out) : 0, le = errs ? strlen(errs) : 0;
    char *all = keep(malloc(lo + le + 1));
    ck_assert_ptr_nonnull(all);
    memcpy(all, out ? out : "", lo);
    memcpy(all + lo, errs ? errs : "", le + 1);
    *said = all;
    free(out);
    free(errs);
    return rc;
}

/* Validates the document with tests/openapi_validate.py: the schema, and every $ref. */
static void assert_valid_openapi(json_t *doc)
{
    char *tmp = keep(th_tmpdir());
    char *text = keep(json_dumps(doc, JSON_INDENT(1)));
    char *file = keep(th_write(tmp, "openapi.json", text));
    const char *said;
    int rc = validate(schema_path(), file, &said);
    ck_assert_msg(rc == 0, "/openapi.json is not valid OpenAPI 3.1 (exit %d):\n%s", rc, said);
    th_rmtree(tmp);
}

/* "GET /x, POST /y" of the operations marked undescribed, in document order. */
static const char *undescribed(json_t *doc)
{
    char *list = keep(calloc(1, 1));
    const char *path, *m;
    json_t *item, *op;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        json_object_foreach(item, m, op)
        {
            if (!json_is_true(json_object_get(op, "x-taskora-undescribed")))
                continue;
            char up[17];
            size_t i = 0;
            for (; m[i] && i < 16; i++)
                up[i] = (char)(m[i] - ('a' <= m[i] && m[i] <= 'z' ? 32 : 0));
            up[i] = '\0';
            char *next = keep(strdup(th_fmt("%s%s%s %s (%s)", list, *list ? ", " : "", up, path,
                                            dump(json_object_get(op, "tags")))));
            list = next;
        }
    }
    return list;
}

/* The project's schema (or, for what a schema cannot say, openapi_validate.py) refuses each
 * broken document of tests/openapi/bad for its one fault, saying where and what, and passes
 * tests/openapi/good.json, which uses most of OpenAPI 3.1. */
START_TEST(test_schema_refuses_each_broken_document_for_its_fault)
{
    const char *schema = keep(strdup(th_fmt("%s/tests/openapi/oas-3.1.schema.json", srcdir())));
    const char *said;
    const char *good = keep(strdup(th_fmt("%s/tests/openapi/good.json", srcdir())));
    ck_assert_msg(validate(schema, good, &said) == 0, "good.json is refused:\n%s", said);
    const char *bad[][3] = {
        {"info-without-version", "schema: info", "'version' is a required property"},
        {"parameter-in-body", "schema: paths//tasks/post/parameters/0/in",
         "'body' is not one of ['query', 'header', 'path', 'cookie']"},
        {"path-parameter-not-required", "schema: paths//tasks/{id}/get/parameters/0",
         "'required' is a required property"},
        {"response-without-description", "schema: paths//tasks/get/responses/200",
         "'description' is a required property"},
        {"operation-unknown-field", "schema: paths//tasks/get",
         "'sumary' does not match any of the regexes: '^x-'"},
        {"path-without-slash", "schema: paths",
         "'tasks' does not match any of the regexes: '^/', '^x-'"},
        {"reference-with-sibling", "schema: paths//tasks/get/responses/200",
         "Additional properties are not allowed ('type' was unexpected)"},
        {"http-scheme-without-scheme", "schema: components/securitySchemes/bearerAuth",
         "'scheme' is a required property"},
        {"parameter-schema-and-content", "schema: paths//tasks/get/parameters/0",
         "is valid under each of {'required': ['content']}, {'required': ['schema']}"},
        {"responses-empty", "schema: paths//tasks/get/responses",
         "{'x-todo': True} should not be valid under {'propertyNames'"},
        {"schema-nested-unknown-type",
         "schema: components/schemas/Task/properties/labels/items/type",
         "'strng' is not valid under any of the given schemas"},
        {"operation-id-twice", "spec: paths//tasks/post",
         "operationId \"tasks\" is paths//tasks/get's"},
        {"parameter-twice", "spec: paths//tasks/get/parameters/1",
         "parameter \"limit\" in query is listed twice"},
        {"path-parameter-undeclared", "spec: paths//tasks/{id}/get",
         "path parameter {id} is not declared"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *name = bad[i][0], *where = th_fmt("%s: ", bad[i][1]);
        int rc = validate(schema, th_fmt("%s/tests/openapi/bad/%s.json", srcdir(), name), &said);
        ck_assert_msg(rc == 1, "%s: exit %d, not 1:\n%s", name, rc, said);
        ck_assert_msg(strncmp(said, where, strlen(where)) == 0 && strstr(said, bad[i][2]),
                      "%s: refused, but not at %s for \"%s\":\n%s", name, bad[i][1], bad[i][2],
                      said);
        const char *nl = strchr(said, '\n');
        ck_assert_msg(nl && nl[1] == '\0', "%s: more than its one fault:\n%s", name, said);
    }
    /* and no file of the folder goes untried */
    DIR *d = opendir(th_fmt("%s/tests/openapi/bad", srcdir()));
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        size_t listed = 0, n = sizeof(bad) / sizeof(bad[0]);
        while (listed < n && strcmp(th_fmt("%s.json", bad[listed][0]), e->d_name) != 0)
            listed++;
        ck_assert_msg(e->d_name[0] == '.' || listed < n, "bad/%s is not in the list", e->d_name);
    }
    closedir(d);
}
END_TEST

START_TEST(test_refused_descriptions_answer_their_codes_and_say_why_in_the_log)
{
    char *rec = keep(th_read(record_path));
    const char *want[] = {"t1 bad_json -3",
                          "t1 unregistered -3",
                          "t1 other_owner -3",
                          "t1 good 0",
                          "t1 clash -5",
                          "t2 bad_json -3",
                          "t2 good 0",
                          "t2 clash -5",
                          "t1 late -8",
                          "t2 late -8",
                          NULL};
    for (int i = 0; want[i]; i++)
        ck_assert_msg(strstr(rec, want[i]), "record lacks \"%s\":\n%s", want[i], rec);
    char *log = keep(th_read(daemon_.log_path));
    const char *said[] = {"[t1] http_openapi: the description is not JSON",
                          "(line 1, column",
                          "[t1] http_openapi: describes GET /oa/nowhere, which it does not serve",
                          "[t1] http_openapi: describes GET /health, which it does not serve",
                          "[t2] http_openapi: components.schemas.OaItem is already defined "
                          "differently by t1",
                          "[t1] http_openapi: routes are described only in init()",
                          NULL};
    for (int i = 0; said[i]; i++)
        ck_assert_msg(strstr(log, said[i]), "the log does not say \"%s\":\n%s", said[i], log);
    /* each undescribed route is named once, at start */
    const char *warn = "route has no description";
    int n = 0;
    for (const char *p = strstr(log, warn); p; p = strstr(p + 1, warn))
        n++;
    ck_assert_msg(n == 2, "%d warnings about undescribed routes:\n%s", n, log);
    ck_assert_msg(strstr(log, "method=GET route=/oa/undescribed instance=t1"), "%s", log);
    ck_assert_msg(strstr(log, "method=GET route=/oa2/undescribed instance=t2"), "%s", log);
}
END_TEST

START_TEST(test_openapi_json_is_valid_openapi_3_1_with_every_ref_resolving)
{
    assert_valid_openapi(get_document(base_url));
}
END_TEST

START_TEST(test_document_marks_exactly_the_undescribed_routes)
{
    json_t *doc = get_document(base_url);
    ck_assert_str_eq(undescribed(doc), "GET /oa/undescribed ([\"t1\"]), "
                                       "GET /oa2/undescribed ([\"t2\"])");
    json_t *op = op_at(doc, "/oa/items/{id}", "get");
    ck_assert_str_eq(json_string_value(json_object_get(op, "summary")), "Get an item");
    ck_assert_str_eq(json_string_value(json_object_get(op, "operationId")), "t1_get_item");
    ck_assert_str_eq(dump(json_object_get(op, "tags")), "[\"t1\"]");
    op = op_at(doc, "/oa2/items", "post");
    ck_assert_str_eq(json_string_value(json_object_get(op, "summary")), "Add an item");
    ck_assert_str_eq(json_string_value(json_object_get(op, "operationId")), "post_oa2_items");
    ck_assert_str_eq(dump(json_object_get(op, "tags")), "[\"t2\"]");
    op = op_at(doc, "/oa/items/{id}/tags", "get");
    ck_assert_str_eq(dump(json_object_get(op, "parameters")),
                     "[{\"name\":\"id\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":"
                     "\"string\"}}]");
    /* the schema both instances defined identically is there once, as they wrote it */
    json_t *item =
        json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), "OaItem");
    ck_assert_str_eq(json_string_value(json_object_get(item, "title")), "Item");
    /* each instance is a tag, described by its plugin */
    ck_assert_msg(strstr(dump(json_object_get(doc, "tags")),
                         "{\"name\":\"t1\",\"description\":\"openapi_plugin 1.0.0: describes some "
                         "of its routes, for the API description's tests\"}"),
                  "%s", dump(json_object_get(doc, "tags")));
}
END_TEST

START_TEST(test_core_routes_are_described_and_public)
{
    json_t *doc = get_document(base_url);
    const char *paths[] = {"/health", "/ready",        "/metrics",       "/openapi.json",
                           "/docs",   "/docs/docs.js", "/docs/docs.css", NULL};
    for (int i = 0; paths[i]; i++) {
        json_t *op = op_at(doc, paths[i], "get");
        ck_assert_msg(op && !json_object_get(op, "x-taskora-undescribed"), "%s: %s", paths[i],
                      dump(op));
        json_t *sec = json_object_get(op, "security");
        ck_assert_msg(json_is_array(sec) && json_array_size(sec) == 0, "%s: %s", paths[i],
                      dump(op));
        ck_assert_str_eq(dump(json_object_get(op, "tags")), "[\"core\"]");
    }
    json_t *ready = json_object_get(op_at(doc, "/ready", "get"), "responses");
    ck_assert_msg(json_object_get(ready, "200") && json_object_get(ready, "503"), "%s",
                  dump(ready));
    json_t *comp = json_object_get(doc, "components");
    ck_assert_str_eq(dump(json_object_get(json_object_get(comp, "securitySchemes"), "bearerAuth")),
                     "{\"type\":\"http\",\"scheme\":\"bearer\",\"bearerFormat\":\"JWT\","
                     "\"description\":\"The access_token of POST /api/auth/login\"}");
    ck_assert_ptr_nonnull(json_object_get(json_object_get(comp, "schemas"), "Error"));
    ck_assert_str_eq(dump(json_object_get(doc, "security")), "[{\"bearerAuth\":[]}]");
}
END_TEST

START_TEST(test_openapi_json_revalidates_with_its_etag)
{
    th_response r = get(base_url, "/openapi.json", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strncmp(header(&r, "content-type"), "application/json", 16) == 0, "%s",
                  r.headers);
    ck_assert_str_eq(header(&r, "cache-control"), "no-cache");
    const char *etag = header(&r, "etag");
    ck_assert_msg(etag && etag[0] == '"' && strlen(etag) == 18, "ETag %s", etag);
    const char *same[] = {th_fmt("If-None-Match: %s", etag), NULL};
    th_response again = get(base_url, "/openapi.json", same);
    ck_assert_int_eq(again.status, 304);
    ck_assert_str_eq(again.body ? again.body : "", "");
    ck_assert_str_eq(header(&again, "etag"), etag);
    const char *listed[] = {th_fmt("If-None-Match: \"0000000000000000\", W/%s", etag), NULL};
    ck_assert_int_eq(get(base_url, "/openapi.json", listed).status, 304);
    const char *other[] = {"If-None-Match: \"0000000000000000\"", NULL};
    th_response changed = get(base_url, "/openapi.json", other);
    ck_assert_int_eq(changed.status, 200);
    ck_assert_str_eq(changed.body, r.body);
}
END_TEST

/* Every src= and href= value of the page: only its own files and anchors. */
static void assert_only_local_references(const char *html)
{
    const char *attrs[] = {"src=\"", "href=\"", NULL};
    for (int i = 0; attrs[i]; i++) {
        for (const char *p = strstr(html, attrs[i]); p; p = strstr(p + 1, attrs[i])) {
            const char *v = p + strlen(attrs[i]);
            ck_assert_msg((v[0] == '/' && v[1] != '/') || v[0] == '#', "a reference out: %.60s", p);
        }
    }
}

START_TEST(test_docs_page_is_self_contained_under_a_strict_csp)
{
    th_response r = get(base_url, "/docs", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strncmp(header(&r, "content-type"), "text/html", 9) == 0, "%s", r.headers);
    const char *csp = header(&r, "content-security-policy");
    ck_assert_msg(csp && strstr(csp, "default-src 'self'") && strstr(csp, "script-src 'self'") &&
                      strstr(csp, "style-src 'self'") && !strstr(csp, "unsafe") &&
                      !strstr(csp, "http"),
                  "CSP: %s", csp);
    ck_assert_str_eq(header(&r, "x-content-type-options"), "nosniff");
    ck_assert_msg(strstr(r.body, "<script src=\"/docs/docs.js\"") &&
                      strstr(r.body, "<link rel=\"stylesheet\" href=\"/docs/docs.css\">"),
                  "%s", r.body);
    /* no inline script, style attribute or event handler: the CSP would block them */
    int scripts = 0;
    for (const char *p = strstr(r.body, "<script"); p; p = strstr(p + 1, "<script"))
        scripts++;
    ck_assert_int_eq(scripts, 1);
    ck_assert_msg(!strstr(r.body, " style=") && !strstr(r.body, "<style") &&
                      !strstr(r.body, " onclick=") && !strstr(r.body, " onload="),
                  "%s", r.body);
    assert_only_local_references(r.body);
    const char *files[][2] = {{"/docs/docs.js", "text/javascript"}, {"/docs/docs.css", "text/css"}};
    for (int i = 0; i < 2; i++) {
        th_response f = get(base_url, files[i][0], NULL);
        ck_assert_msg(f.status == 200 && strlen(f.body) > 1000, "%s: %ld", files[i][0], f.status);
        ck_assert_msg(strncmp(header(&f, "content-type"), files[i][1], strlen(files[i][1])) == 0,
                      "%s: %s", files[i][0], f.headers);
        ck_assert_str_eq(header(&f, "x-content-type-options"), "nosniff");
        const char *etag[] = {th_fmt("If-None-Match: %s", header(&f, "etag")), NULL};
        ck_assert_int_eq(get(base_url, files[i][0], etag).status, 304);
    }
    th_response css = get(base_url, "/docs/docs.css", NULL);
    ck_assert_msg(!strstr(css.body, "url(") && !strstr(css.body, "@import"), "css loads more");
    /* the script builds the page from text, never from markup, and asks only its origin */
    th_response js = get(base_url, "/docs/docs.js", NULL);
    ck_assert_msg(!strstr(js.body, "innerHTML") && !strstr(js.body, "insertAdjacentHTML") &&
                      !strstr(js.body, "document.write") && !strstr(js.body, "eval("),
                  "the script writes markup");
    ck_assert_msg(strstr(js.body, "fetch('/openapi.json'"),
                  "the script does not load the document");
    const char *page_etag[] = {th_fmt("If-None-Match: %s", header(&r, "etag")), NULL};
    th_response again = get(base_url, "/docs", page_etag);
    ck_assert_int_eq(again.status, 304);
    ck_assert_msg(header(&again, "content-security-policy"), "a 304 without the CSP");
}
END_TEST

START_TEST(test_admin_listener_keeps_metrics_out_of_the_document)
{
    char *tmp = keep(th_tmpdir());
    char *cfg =
        keep(th_write(tmp, "admin.json",
                      th_fmt("{\"app_id\": \"openapi-admin\", \"log\": {\"format\": \"text\"},"
                             " \"kafka\": {\"brokers\": \"127.0.0.1:9\"}, \"http\": {\"listen\": "
                             "\"127.0.0.1:0\", \"admin_listen\": \"127.0.0.1:%d\"}}",
                             th_free_port())));
    th_daemon d = {0};
    th_daemon_start_named(&d, tmp, cfg, "admin");
    json_t *doc = get_document(d.url);
    ck_assert_msg(!op_at(doc, "/metrics", "get"), "%s", dump(json_object_get(doc, "paths")));
    ck_assert_ptr_nonnull(op_at(doc, "/health", "get"));
    ck_assert_str_eq(undescribed(doc), "");
    assert_valid_openapi(doc);
    kill(d.pid, SIGINT);
    ck_assert_int_eq(th_daemon_wait(&d, 30000), 0);
    th_daemon_cleanup(&d);
    th_rmtree(tmp);
}
END_TEST

/* ================ every API-pod plugin, with PostgreSQL and the embedded broker ============== */

static char dbname[64], dburl[1024];
static th_daemon all_;

static void all_up(void)
{
    if (all_.pid > 0)
        return;
    dir = th_tmpdir();
    snprintf(dbname, sizeof(dbname), "tk_openapi_%d", (int)getpid());
    th_pg_create_db(dbname, dburl, sizeof(dburl));
    char *cfg = th_write(
        dir, "api.json",
        th_fmt(
            "{\"app_id\": \"openapi-all\", \"log\": {\"format\": \"text\"},"
            " \"postgres\": {\"url\": \"%s\", \"pool_size\": 2},"
            " \"kafka\": {\"brokers\": \"embedded\", \"partitions\": 1},"
            " \"http\": {\"listen\": \"127.0.0.1:0\"},"
            " \"dapr\": {\"enabled\": true, \"app_token\": \"dapr-test-token\"},"
            " \"plugin_dir\": \"%s/plugins/http_api/.libs:%s/plugins/ai_gemini/.libs:"
            "%s/plugins/ai_cohere/.libs:%s/plugins/ai_openai/.libs:%s/plugins/realtime/.libs:"
            "%s/plugins/notifications/.libs:%s/plugins/analytics/.libs:%s/plugins/webui/.libs\","
            " \"plugins\": ["
            "  {\"name\": \"api\", \"load\": \"http_api\", \"config\": {\"jwt_secret\":"
            "   \"openapi-test-secret-0123456789abcdef\", \"bcrypt_cost\": 4}},"
            "  {\"name\": \"gemini\", \"load\": \"ai_gemini\"},"
            "  {\"name\": \"cohere\", \"load\": \"ai_cohere\"},"
            "  {\"name\": \"local\", \"load\": \"ai_openai\"},"
            "  {\"name\": \"realtime\", \"load\": \"realtime\", \"config\": {\"dapr_token\":"
            "   \"dapr-test-token\"}, \"consume\": {\"topics\":"
            "   [\"task-events\"], \"broadcast\": true}},"
            "  {\"name\": \"notifications\", \"load\": \"notifications\", \"config\":"
            "   {\"scheduler\": false, \"routes\": true}},"
            "  {\"name\": \"analytics\", \"load\": \"analytics\", \"config\": {\"routes\": true}},"
            "  {\"name\": \"webui\", \"load\": \"webui\", \"config\": {\"root\":"
            "   \"%s/plugins/webui/www\"}}"
            "]}",
            dburl, th_builddir(), th_builddir(), th_builddir(), th_builddir(), th_builddir(),
            th_builddir(), th_builddir(), th_builddir(), srcdir()));
    th_migrate(cfg);
    th_daemon_start_named(&all_, dir, cfg, "all");
    free(cfg);
}

static void all_down(void)
{
    stop_daemon(&all_);
    th_daemon_cleanup(&all_);
    if (*dbname)
        th_pg_drop_db(dbname);
    if (dir)
        th_rmtree(dir);
    free(dir);
    dir = NULL;
}

START_TEST(test_every_plugins_routes_form_a_valid_openapi_3_1_document)
{
    json_t *doc = get_document(all_.url);
    assert_valid_openapi(doc);
    /* the plugins' routes are all there, described or not */
    ck_assert_ptr_nonnull(op_at(doc, "/api/tasks/{task_id}", "get"));
    ck_assert_ptr_nonnull(op_at(doc, "/api/events/stream", "get"));
    ck_assert_ptr_nonnull(op_at(doc, "/api/notifications", "get"));
    ck_assert_ptr_nonnull(op_at(doc, "/api/analytics/summary", "get"));
    ck_assert_ptr_nonnull(op_at(doc, "/api/events/task-event", "post"));
    ck_assert_ptr_nonnull(op_at(doc, "/dapr/events/{instance}", "post"));
    ck_assert_ptr_nonnull(op_at(doc, "/app/{file}", "get"));
}
END_TEST

START_TEST(test_no_route_of_any_plugin_is_undescribed)
{
    const char *left = undescribed(get_document(all_.url));
    ck_assert_msg(!*left,
                  "routes registered without a description (describe each with "
                  "host->http_openapi in its plugin's init): %s",
                  left);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("openapi");
    TCase *tc = tcase_create("fragments");
    tcase_add_checked_fixture(tc, unit_up, unit_down);
    tcase_add_test(tc, test_text_that_is_not_json_is_einval_with_line_and_column);
    tcase_add_test(tc, test_fragment_is_an_object_of_paths_and_components);
    tcase_add_test(tc, test_describing_a_route_the_instance_does_not_serve_is_einval);
    tcase_add_test(tc, test_component_defined_differently_is_eexist_and_identical_is_fine);
    tcase_add_test(tc, test_refs_must_resolve_and_path_parameters_be_the_patterns);
    tcase_add_test(tc, test_refused_fragment_merges_nothing);
    tcase_add_test(tc, test_document_fills_defaults_and_marks_undescribed_routes);
    suite_add_tcase(s, tc);

    tc = tcase_create("schema");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_schema_refuses_each_broken_document_for_its_fault);
    suite_add_tcase(s, tc);

    tc = tcase_create("served");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, daemon_up, daemon_down);
    tcase_add_test(tc, test_refused_descriptions_answer_their_codes_and_say_why_in_the_log);
    tcase_add_test(tc, test_openapi_json_is_valid_openapi_3_1_with_every_ref_resolving);
    tcase_add_test(tc, test_document_marks_exactly_the_undescribed_routes);
    tcase_add_test(tc, test_core_routes_are_described_and_public);
    tcase_add_test(tc, test_openapi_json_revalidates_with_its_etag);
    tcase_add_test(tc, test_docs_page_is_self_contained_under_a_strict_csp);
    tcase_add_test(tc, test_admin_listener_keeps_metrics_out_of_the_document);
    suite_add_tcase(s, tc);

    int skipped = 0;
    if (th_pg_admin_url()) {
        tc = tcase_create("all plugins");
        tcase_set_timeout(tc, 180);
        tcase_add_unchecked_fixture(tc, all_up, all_down);
        tcase_add_test(tc, test_every_plugins_routes_form_a_valid_openapi_3_1_document);
        tcase_add_test(tc, test_no_route_of_any_plugin_is_undescribed);
        suite_add_tcase(s, tc);
    } else {
        skipped = th_no_database("check_openapi (every plugin's routes)");
    }
    int rc = th_run_suite(s);
    return rc ? rc : daemon_bad ? 1 : skipped == 99 ? 99 : 0;
}
