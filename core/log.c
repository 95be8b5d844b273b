/* Logging: one JSON object per line, or a readable line for development. */
#include "log.h"

#include "buf.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static tk_log_level g_level = TK_LOG_INFO;
static tk_log_format g_format = TK_LOG_FORMAT_JSON;
static FILE *g_out;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* What the current thread is working on: added to its log lines (see tk_log_context). */
static _Thread_local const char *ctx_request_id;
static _Thread_local const char *ctx_traceparent;

void tk_log_context(const char *request_id, const char *traceparent)
{
    ctx_request_id = request_id;
    ctx_traceparent = traceparent;
}

const char *tk_log_context_traceparent(void) { return ctx_traceparent; }

void tk_log_setup(tk_log_level level, tk_log_format format, FILE *out)
{
    g_level = level;
    g_format = format;
    g_out = out;
}

int tk_log_level_parse(const char *s, tk_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcasecmp(s, level_names[i]) == 0) {
            *out = (tk_log_level)i;
            return 0;
        }
    }
    return TK_EINVAL;
}

int tk_log_format_parse(const char *s, tk_log_format *out)
{
    if (s && strcmp(s, "json") == 0) {
        *out = TK_LOG_FORMAT_JSON;
        return 0;
    }
    if (s && strcmp(s, "text") == 0) {
        *out = TK_LOG_FORMAT_TEXT;
        return 0;
    }
    return TK_EINVAL;
}

int tk_log_enabled(tk_log_level level) { return level >= g_level; }

int tk_log_key_is_secret(const char *key)
{
    static const char *const words[] = {"password", "passwd",        "secret", "token", "api_key",
                                        "apikey",   "authorization", "cookie", NULL};
    char low[64];
    size_t n = 0;
    for (; key[n] && n < sizeof(low) - 1; n++)
        low[n] = (char)tolower((unsigned char)key[n]);
    low[n] = '\0';
    for (int i = 0; words[i]; i++)
        if (strstr(low, words[i]))
            return 1;
    return 0;
}

void tk_time_iso8601(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%06ld+00:00", ts.tv_nsec / 1000);
}

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xE0) == 0xC0   ? 2
               : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (n == 0 || (n == 2 && s[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Appends s as the body of a JSON string; invalid UTF-8 bytes become U+FFFD. */
static void put_json_string(tk_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            tk_buf_put(b, esc, 2);
            p++;
        } else if (c < 0x20) {
            char esc[8];
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (!named)
                snprintf(esc, sizeof(esc), "\\u%04x", c);
            tk_buf_puts(b, named ? named : esc);
            p++;
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                tk_buf_puts(b, "\xEF\xBF\xBD");
                p++;
            } else {
                tk_buf_put(b, (const char *)p, n);
                p += n;
            }
        }
    }
}

void tk_log_write(const char *plugin, tk_log_level level, const char *msg, const char *const *kv,
                  size_t nkv)
{
    if (!tk_log_enabled(level))
        return;
    if ((unsigned)level > TK_LOG_ERROR)
        level = TK_LOG_ERROR;
    char ts[48];
    tk_time_iso8601(ts, sizeof(ts));
    tk_buf b = {0};
    if (g_format == TK_LOG_FORMAT_JSON) {
        tk_buf_puts(&b, "{\"ts\":\"");
        tk_buf_puts(&b, ts);
        tk_buf_puts(&b, "\",\"level\":\"");
        tk_buf_puts(&b, level_names[level]);
        tk_buf_puts(&b, "\",\"msg\":\"");
        put_json_string(&b, msg ? msg : "");
        tk_buf_puts(&b, "\"");
        if (plugin) {
            tk_buf_puts(&b, ",\"plugin\":\"");
            put_json_string(&b, plugin);
            tk_buf_puts(&b, "\"");
        }
        const char *ctx[] = {"request_id", ctx_request_id, "traceparent", ctx_traceparent};
        for (size_t i = 0; i < 2; i++) {
            int given = 0;
            for (size_t j = 0; j < nkv && !given; j++)
                given = kv[2 * j] && strcmp(kv[2 * j], ctx[2 * i]) == 0;
            if (ctx[2 * i + 1] && !given) {
                tk_buf_puts(&b, ",\"");
                tk_buf_puts(&b, ctx[2 * i]);
                tk_buf_puts(&b, "\":\"");
                put_json_string(&b, ctx[2 * i + 1]);
                tk_buf_puts(&b, "\"");
            }
        }
        for (size_t i = 0; i < nkv; i++) {
            const char *k = kv[2 * i], *v = kv[2 * i + 1];
            if (!k || strcmp(k, "ts") == 0 || strcmp(k, "level") == 0 || strcmp(k, "msg") == 0 ||
                strcmp(k, "plugin") == 0)
                continue;
            tk_buf_puts(&b, ",\"");
            put_json_string(&b, k);
            tk_buf_puts(&b, "\":\"");
            put_json_string(&b, tk_log_key_is_secret(k) ? "[redacted]" : v ? v : "");
            tk_buf_puts(&b, "\"");
        }
        tk_buf_puts(&b, "}\n");
    } else {
        char head[96];
        static const char *const up[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
        snprintf(head, sizeof(head), "%.23s %s ", ts, up[level]);
        tk_buf_puts(&b, head);
        if (plugin) {
            tk_buf_puts(&b, "[");
            tk_buf_puts(&b, plugin);
            tk_buf_puts(&b, "] ");
        }
        tk_buf_puts(&b, msg ? msg : "");
        for (size_t i = 0; i < nkv; i++) {
            const char *k = kv[2 * i], *v = kv[2 * i + 1];
            if (!k)
                continue;
            tk_buf_puts(&b, " ");
            tk_buf_puts(&b, k);
            tk_buf_puts(&b, "=");
            tk_buf_puts(&b, tk_log_key_is_secret(k) ? "[redacted]" : v ? v : "");
        }
        tk_buf_puts(&b, "\n");
    }
    /* out of memory, a line that says so rather than a cut one */
    static const char nomem_json[] =
        "{\"level\":\"error\",\"msg\":\"out of memory: a log line was dropped\"}\n";
    static const char nomem_text[] = "ERROR out of memory: a log line was dropped\n";
    const char *line = b.p;
    size_t len = b.len;
    if (b.oom || !b.p) {
        line = g_format == TK_LOG_FORMAT_JSON ? nomem_json : nomem_text;
        len = strlen(line);
    }
    FILE *out = g_out ? g_out : stderr;
    pthread_mutex_lock(&g_lock);
    fwrite(line, 1, len, out);
    fflush(out);
    pthread_mutex_unlock(&g_lock);
    tk_buf_free(&b);
}

void tk_logv(const char *plugin, tk_log_level level, const char *fmt, va_list ap)
{
    if (!tk_log_enabled(level))
        return;
    char stackbuf[512];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(stackbuf, sizeof(stackbuf), fmt, ap);
    if (n >= (int)sizeof(stackbuf)) {
        char *heap = malloc((size_t)n + 1);
        if (heap) {
            vsnprintf(heap, (size_t)n + 1, fmt, ap2);
            tk_log_write(plugin, level, heap, NULL, 0);
            free(heap);
            va_end(ap2);
            return;
        }
    }
    va_end(ap2);
    tk_log_write(plugin, level, n < 0 ? fmt : stackbuf, NULL, 0);
}

void tk_logf(const char *plugin, tk_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tk_logv(plugin, level, fmt, ap);
    va_end(ap);
}
