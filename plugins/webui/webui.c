/*
 * webui: serves the web app, the files of ONE flat directory (plugins/webui/www/ in the source
 * tree, installed into $(pkgdatadir)/webui), at /app/.
 *
 *   "plugins": [..., {"name": "webui", "load": "webui",
 *                     "config": {"root": "${TASKORA_WEBUI_ROOT:-}", "path": "/app"}}]
 *
 * At init every regular file of `root` is read into memory (at most MAX_FILES files and
 * MAX_TOTAL bytes in all) with its type, from its extension, and a strong ETag, from a SHA-256
 * of its contents. Only those names are ever served: a request names a file by one path
 * segment, looked up among them, so nothing outside the loaded set (no other file, no `..`)
 * can be reached, and a file changed on disk is served again only after a restart. Skipped,
 * with a log line: subdirectories, other non-regular files, hidden files (".x"), names with
 * characters outside [A-Za-z0-9._-], and extensions of no known type. A root that cannot be
 * read, or that holds no index.html, stops start-up naming the path and the key.
 *
 * Routes (public: no token; every one a GET, which also answers HEAD):
 *   GET /app          301 to /app/
 *   GET /app/         index.html
 *   GET /app/{file}   one loaded file; anything else 404 {"detail": "Not Found"}
 * Answers carry the ETag, Cache-Control: no-cache (the browser revalidates every time: a new
 * version is seen at once, an unchanged one costs a 304 without a body), and the
 * Content-Security-Policy below, which allows nothing but the app's own origin. The server
 * adds X-Content-Type-Options: nosniff, X-Frame-Options: DENY and Referrer-Policy: no-referrer
 * to every answer (core/http_response.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <taskora/plugin.h>

#ifndef TK_WEBUI_DATADIR
#error "TK_WEBUI_DATADIR (the installed web app's folder) must be defined by the build"
#endif

#define MAX_TOTAL (8u * 1024 * 1024) /* bytes of all files together */
#define MAX_FILES 256
#define MAX_NAME 128
#define MAX_PATH_LEN 200 /* the config `path` */
#define ETAG_LEN 35      /* '"', 32 hex digits, '"', NUL */

#define CSP                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

typedef struct asset {
    char *name;       /* "app.js" */
    const char *type; /* the Content-Type */
    char *body;
    size_t len;
    char etag[ETAG_LEN]; /* "\"<hex>\"" */
} asset;

typedef struct webui {
    const tk_host *host;
    tk_instance *inst;
    char root[4096];
    char *path;     /* "/app" */
    char *location; /* "/app/": where /app redirects */
    asset *files;   /* sorted by name */
    size_t n;
    size_t total;
    const asset *index;
} webui;

/* ---- types ------------------------------------------------------------------------------- */

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"json", "application/json; charset=utf-8"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/plain; charset=utf-8"},
};

/* The Content-Type of a file name by its extension, or NULL when none is known. */
static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return NULL;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcasecmp(dot + 1, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* A name that may be served: not hidden, [A-Za-z0-9._-] only, not too long. */
static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_NAME || name[0] == '.')
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* ---- loading ----------------------------------------------------------------------------- */

static int asset_cmp(const void *a, const void *b)
{
    return strcmp(((const asset *)a)->name, ((const asset *)b)->name);
}

/* A strong validator: the first 128 bits of the contents' SHA-256, quoted. */
static int make_etag(const char *body, size_t len, char out[ETAG_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL) || mdlen < 16)
        return TK_ERR;
    out[0] = '"';
    for (int i = 0; i < 16; i++)
        snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
    out[33] = '"';
    out[34] = '\0';
    return TK_OK;
}

/*
 * Reads dir/name into *a when it is a regular file: TK_OK, TK_ENOTFOUND when it is not one
 * (skipped), TK_EINVAL when the total would pass MAX_TOTAL, another code on a read error (why
 * in errno_out).
 */
static int read_asset(webui *w, int dirfd, const char *name, asset *a, int *errno_out)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        *errno_out = errno;
        if (fd >= 0)
            close(fd);
        return TK_ERR;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return TK_ENOTFOUND;
    }
    if ((unsigned long long)st.st_size > MAX_TOTAL - w->total) {
        close(fd);
        return TK_EINVAL;
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *body = malloc(len ? len : 1);
    if (!body) {
        close(fd);
        return TK_ENOMEM;
    }
    while (got < len) {
        ssize_t r = read(fd, body + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) { /* an error, or the file shrank while being read */
            *errno_out = r < 0 ? errno : EIO;
            free(body);
            close(fd);
            return TK_ERR;
        }
        got += (size_t)r;
    }
    close(fd);
    if (make_etag(body, len, a->etag) < 0 || !(a->name = strdup(name))) {
        free(body);
        return TK_ENOMEM;
    }
    a->body = body;
    a->len = len;
    w->total += len;
    return TK_OK;
}

/* Logs why a directory entry is not served. */
static void skip(webui *w, const char *name, const char *why)
{
    w->host->log_kv(w->inst, TK_LOG_WARN, "file not served", "root", w->root, "file", name,
                    "reason", why, NULL);
}

/* Takes one directory entry: loaded into w->files, skipped, or a start-up error (< 0). */
static int take_entry(webui *w, int dirfd, const char *name)
{
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return TK_OK;
    struct stat st;
    if (fstatat(dirfd, name, &st, 0) < 0) {
        w->host->log(w->inst, TK_LOG_ERROR, "config.root: cannot read %s/%s: %s", w->root, name,
                     strerror(errno));
        return TK_EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        skip(w, name, "not a regular file (the app's folder is flat)");
        return TK_OK;
    }
    const char *type = name_ok(name) ? type_of(name) : NULL;
    if (!name_ok(name) || !type) {
        skip(w, name,
             !name_ok(name) ? "hidden, or a name of other characters than A-Z a-z 0-9 . _ -"
                            : "no known type for its extension");
        return TK_OK;
    }
    if (w->n == MAX_FILES) {
        w->host->log(w->inst, TK_LOG_ERROR, "config.root: %s holds more than %d files", w->root,
                     MAX_FILES);
        return TK_EINVAL;
    }
    asset *a = &w->files[w->n];
    memset(a, 0, sizeof(*a));
    int err = 0, rc = read_asset(w, dirfd, name, a, &err);
    if (rc == TK_ENOTFOUND) /* replaced since the look above */
        skip(w, name, "not a regular file (the app's folder is flat)");
    else if (rc == TK_EINVAL)
        w->host->log(w->inst, TK_LOG_ERROR,
                     "config.root: the files of %s are larger than %u bytes in all (at %s)",
                     w->root, MAX_TOTAL, name);
    else if (rc == TK_ERR)
        w->host->log(w->inst, TK_LOG_ERROR, "config.root: cannot read %s/%s: %s", w->root, name,
                     strerror(err));
    if (rc == TK_ENOTFOUND)
        return TK_OK;
    if (rc < 0)
        return rc;
    a->type = type;
    w->n++;
    return TK_OK;
}

/* Loads every file of w->root; a negative code (logged) when start-up must stop. */
static int load_root(webui *w)
{
    int dirfd = open(w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dirfd >= 0 ? fdopendir(dirfd) : NULL;
    if (!d) {
        w->host->log(w->inst, TK_LOG_ERROR,
                     "config.root: cannot read the web app's folder %s: %s (set \"root\" in the "
                     "webui plugin's config, e.g. through TASKORA_WEBUI_ROOT)",
                     w->root, strerror(errno));
        if (dirfd >= 0)
            close(dirfd);
        return TK_EINVAL;
    }
    if (!(w->files = calloc(MAX_FILES, sizeof(asset)))) {
        closedir(d);
        return TK_ENOMEM;
    }
    int rc = TK_OK;
    errno = 0;
    for (struct dirent *e; rc == TK_OK && (e = readdir(d)); errno = 0)
        rc = take_entry(w, dirfd, e->d_name);
    if (rc == TK_OK && errno) {
        w->host->log(w->inst, TK_LOG_ERROR, "config.root: cannot list %s: %s", w->root,
                     strerror(errno));
        rc = TK_EINVAL;
    }
    closedir(d);
    if (rc < 0)
        return rc;
    qsort(w->files, w->n, sizeof(asset), asset_cmp);
    asset key = {.name = "index.html"};
    w->index = bsearch(&key, w->files, w->n, sizeof(asset), asset_cmp);
    if (!w->index) {
        w->host->log(w->inst, TK_LOG_ERROR,
                     "config.root: %s holds no index.html: is it the web app's folder?", w->root);
        return TK_EINVAL;
    }
    return TK_OK;
}

/* ---- answers ----------------------------------------------------------------------------- */

/* Does an If-None-Match value name this ETag (weak comparison, as RFC 9110 13.1.2 says)? */
static int etag_matches(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p) {
        p += strspn(p, " \t,");
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p != '"')
            return 0; /* malformed: no match, the file is sent */
        const char *end = strchr(p + 1, '"');
        if (!end)
            return 0;
        if ((size_t)(end + 1 - p) == elen && memcmp(p, etag, elen) == 0)
            return 1;
        p = end + 1;
    }
    return 0;
}

static int send_asset(webui *w, const tk_http_request *req, tk_http_response *resp, const asset *a)
{
    const tk_host *h = w->host;
    if (h->http_set_header(resp, "ETag", a->etag) < 0 ||
        h->http_set_header(resp, "Cache-Control", "no-cache") < 0 ||
        h->http_set_header(resp, "Content-Security-Policy", CSP) < 0)
        return TK_ENOMEM;
    const char *inm = h->http_header(req, "If-None-Match");
    if (inm && etag_matches(inm, a->etag)) {
        h->http_status(resp, 304);
        return TK_OK;
    }
    return h->http_set_body(resp, a->type, a->body, a->len);
}

static int not_found(webui *w, tk_http_response *resp)
{
    return w->host->http_error(resp, 404, "Not Found");
}

/* GET /app (301 to /app/) and GET /app/ (index.html): one route, the router ignores a last '/'. */
static int route_index(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    webui *w = ud;
    const char *p = w->host->http_path(req);
    size_t n = p ? strlen(p) : 0;
    if (n && p[n - 1] == '/')
        return send_asset(w, req, resp, w->index);
    w->host->http_status(resp, 301);
    return w->host->http_set_header(resp, "Location", w->location) < 0 ? TK_ENOMEM : TK_OK;
}

/* GET /app/{file}: only a name loaded at init. */
static int route_file(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    webui *w = ud;
    const char *name = w->host->http_param(req, "file");
    const char *p = w->host->http_path(req);
    size_t n = p ? strlen(p) : 0;
    if (!name || !n || p[n - 1] == '/') /* /app/app.js/ names no file */
        return not_found(w, resp);
    asset key = {.name = (char *)name};
    const asset *a = bsearch(&key, w->files, w->n, sizeof(asset), asset_cmp);
    return a ? send_asset(w, req, resp, a) : not_found(w, resp);
}

/* ---- the routes' description (/openapi.json) --------------------------------------------- */

/* For the default path; init puts the configured one in place of "/app". */
static const char openapi_fragment[] =
    "{\"paths\": {"
    " \"/app\": {\"get\": {"
    "  \"tags\": [\"webui\"], \"security\": [],"
    "  \"summary\": \"The web app\","
    "  \"description\": \"Without a final slash: a redirect to the same path with one, which"
    " answers the app's index.html. Always revalidated (Cache-Control: no-cache): send the"
    " ETag back in If-None-Match for a 304.\","
    "  \"parameters\": [{\"name\": \"If-None-Match\", \"in\": \"header\", \"required\": false,"
    "   \"schema\": {\"type\": \"string\"}}],"
    "  \"responses\": {"
    "   \"200\": {\"description\": \"index.html (with a final slash)\","
    "    \"headers\": {\"ETag\": {\"schema\": {\"type\": \"string\"}}},"
    "    \"content\": {\"text/html\": {\"schema\": {\"type\": \"string\"}}}},"
    "   \"301\": {\"description\": \"Without a final slash: to the path with one\","
    "    \"headers\": {\"Location\": {\"schema\": {\"type\": \"string\"}}}},"
    "   \"304\": {\"description\": \"Not modified: If-None-Match names the current ETag\"}}}},"
    " \"/app/{file}\": {\"get\": {"
    "  \"tags\": [\"webui\"], \"security\": [],"
    "  \"summary\": \"One file of the web app\","
    "  \"description\": \"A file of the app's folder as it was at start-up (HTML, JavaScript,"
    " CSS, images), with its type, a strong ETag, Cache-Control: no-cache and the app's"
    " Content-Security-Policy.\","
    "  \"parameters\": ["
    "   {\"name\": \"file\", \"in\": \"path\", \"required\": true,"
    "    \"schema\": {\"type\": \"string\"}, \"example\": \"app.js\"},"
    "   {\"name\": \"If-None-Match\", \"in\": \"header\", \"required\": false,"
    "    \"schema\": {\"type\": \"string\"}}],"
    "  \"responses\": {"
    "   \"200\": {\"description\": \"The file\","
    "    \"headers\": {\"ETag\": {\"schema\": {\"type\": \"string\"}}},"
    "    \"content\": {\"*/*\": {\"schema\": {\"type\": \"string\"}}}},"
    "   \"304\": {\"description\": \"Not modified: If-None-Match names the current ETag\"},"
    "   \"404\": {\"description\": \"No such file\","
    "    \"content\": {\"application/json\": {\"schema\": {\"type\": \"object\","
    "     \"properties\": {\"detail\": {\"type\": \"string\"}}}}}}}}}}}";

/* Describes the two routes under the configured path. */
static int describe(webui *w)
{
    json_t *frag = json_loads(openapi_fragment, 0, NULL);
    json_t *paths = json_object_get(frag, "paths");
    json_t *out = json_object();
    char file_path[MAX_PATH_LEN + 16];
    snprintf(file_path, sizeof(file_path), "%s/{file}", w->path);
    char *text = NULL;
    if (paths && out && json_object_set(out, w->path, json_object_get(paths, "/app")) == 0 &&
        json_object_set(out, file_path, json_object_get(paths, "/app/{file}")) == 0 &&
        json_object_set(frag, "paths", out) == 0)
        text = json_dumps(frag, JSON_COMPACT);
    json_decref(out);
    json_decref(frag);
    if (!text)
        return TK_ENOMEM;
    int rc = w->host->http_openapi(w->inst, text);
    free(text);
    if (rc < 0)
        w->host->log(w->inst, TK_LOG_ERROR, "the routes' description was refused: %s",
                     tk_strerror(rc));
    return rc;
}

/* ---- life cycle -------------------------------------------------------------------------- */

/* The config `path`: "/a/b", URL-safe segments, no final slash, not "/" alone. */
static int path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n < 2 || n > MAX_PATH_LEN || p[0] != '/' || p[n - 1] == '/' || strstr(p, "//") ||
        strstr(p, "/./") || strstr(p, "/../") || strcmp(p + n - 2, "/.") == 0 ||
        (n >= 3 && strcmp(p + n - 3, "/..") == 0))
        return 0;
    return strspn(p, "/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") == n;
}

static void destroy(void *state)
{
    webui *w = state;
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->files[i].name);
        free(w->files[i].body);
    }
    free(w->files);
    free(w->path);
    free(w->location);
    free(w);
}

/* Registers the routes and describes them; TK_OK also when this process serves no HTTP. */
static int add_routes(webui *w)
{
    char file_path[MAX_PATH_LEN + 16];
    snprintf(file_path, sizeof(file_path), "%s/{file}", w->path);
    int rc = w->host->http_route(w->inst, "GET", w->path, route_index, w);
    if (rc == TK_EUNAVAILABLE) {
        w->host->log(w->inst, TK_LOG_INFO, "HTTP is disabled: the web app is not served");
        return TK_OK;
    }
    if (rc == TK_OK)
        rc = w->host->http_route(w->inst, "GET", file_path, route_file, w);
    if (rc < 0) {
        w->host->log(w->inst, TK_LOG_ERROR, "cannot serve %s: %s", w->path, tk_strerror(rc));
        return rc;
    }
    return describe(w);
}

static int init(const tk_host *host, tk_instance *inst, void **state)
{
    if (host->struct_size < offsetof(tk_host, http_openapi) + sizeof(host->http_openapi) ||
        !host->http_openapi) {
        host->log(inst, TK_LOG_ERROR, "this taskorad lacks http_openapi (ABI < 1.8)");
        return TK_EINVAL;
    }
    const char *root = host->config_string(inst, "root");
    const char *path = host->config_string(inst, "path");
    if (!path || !path_ok(path)) {
        host->log(inst, TK_LOG_ERROR,
                  "config.path: \"%s\" is not a path such as \"/app\" (a leading slash, no final "
                  "one, letters, digits and . _ ~ - only, at most %d characters)",
                  path ? path : "", MAX_PATH_LEN);
        return TK_EINVAL;
    }
    webui *w = calloc(1, sizeof(*w));
    if (!w)
        return TK_ENOMEM;
    w->host = host;
    w->inst = inst;
    int n = snprintf(w->root, sizeof(w->root), "%s", root && *root ? root : TK_WEBUI_DATADIR);
    w->path = strdup(path);
    w->location = malloc(strlen(path) + 2);
    int rc = !w->path || !w->location ? TK_ENOMEM : TK_OK;
    if (rc == TK_OK && (n < 0 || (size_t)n >= sizeof(w->root))) {
        host->log(inst, TK_LOG_ERROR, "config.root: the path is longer than %zu bytes",
                  sizeof(w->root) - 1);
        rc = TK_EINVAL;
    }
    if (rc == TK_OK) {
        sprintf(w->location, "%s/", path);
        rc = load_root(w);
    }
    if (rc == TK_OK)
        rc = add_routes(w);
    if (rc < 0) {
        destroy(w);
        return rc;
    }
    char files[48];
    snprintf(files, sizeof(files), "%zu (%zu bytes)", w->n, w->total);
    host->log_kv(inst, TK_LOG_INFO, "serving the web app", "path", w->location, "root", w->root,
                 "files", files, NULL);
    *state = w;
    return TK_OK;
}

static const tk_config_field config[] = {
    {"root", TK_CFG_STRING, 0, "\"\"", NULL,
     "folder of the web app's files (flat; \"\": the installed one, " TK_WEBUI_DATADIR ")", NULL,
     TK_CFG_NO_RANGE},
    {"path", TK_CFG_STRING, 0, "\"/app\"", NULL,
     "where the app is served: PATH redirects to PATH/, which answers index.html", NULL,
     TK_CFG_NO_RANGE},
    {0},
};

static const tk_plugin descriptor = {
    TK_PLUGIN_HEADER,
    .name = "webui",
    .version = "1.0.0",
    .description = "serves the web app (HTML, JavaScript, CSS) at /app/",
    .capabilities = TK_PLUGIN_CAP_HTTP,
    .config = config,
    .init = init,
    .destroy = destroy,
};

TK_PLUGIN_EXPORT const tk_plugin *taskora_plugin_entry(void);
const tk_plugin *taskora_plugin_entry(void) { return &descriptor; }
