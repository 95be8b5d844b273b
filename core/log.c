/* Logging: one JSON object per line, or a readable line for development. */
#include "log.h"

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

/* A growing line buffer; on allocation failure the line is cut, never lost entirely. */
typedef struct {
    char *p;
    size_t len, cap;
} linebuf;

static void lb_putn(linebuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void lb_puts(linebuf *b, const char *s) { lb_putn(b, s, strlen(s)); }

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
static void lb_json_str(linebuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            lb_putn(b, esc, 2);
            p++;
        } else if (c < 0x20) {
            char esc[8];
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (!named)
                snprintf(esc, sizeof(esc), "\\u%04x", c);
            lb_puts(b, named ? named : esc);
            p++;
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                lb_puts(b, "\xEF\xBF\xBD");
                p++;
            } else {
                lb_putn(b, (const char *)p, n);
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
    linebuf b = {0};
    if (g_format == TK_LOG_FORMAT_JSON) {
        lb_puts(&b, "{\"ts\":\"");
        lb_puts(&b, ts);
        lb_puts(&b, "\",\"level\":\"");
        lb_puts(&b, level_names[level]);
        lb_puts(&b, "\",\"msg\":\"");
        lb_json_str(&b, msg ? msg : "");
        lb_puts(&b, "\"");
        if (plugin) {
            lb_puts(&b, ",\"plugin\":\"");
            lb_json_str(&b, plugin);
            lb_puts(&b, "\"");
        }
        for (size_t i = 0; i < nkv; i++) {
            const char *k = kv[2 * i], *v = kv[2 * i + 1];
            if (!k || strcmp(k, "ts") == 0 || strcmp(k, "level") == 0 || strcmp(k, "msg") == 0 ||
                strcmp(k, "plugin") == 0)
                continue;
            lb_puts(&b, ",\"");
            lb_json_str(&b, k);
            lb_puts(&b, "\":\"");
            lb_json_str(&b, tk_log_key_is_secret(k) ? "[redacted]" : v ? v : "");
            lb_puts(&b, "\"");
        }
        lb_puts(&b, "}\n");
    } else {
        char head[96];
        static const char *const up[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
        snprintf(head, sizeof(head), "%.23s %s ", ts, up[level]);
        lb_puts(&b, head);
        if (plugin) {
            lb_puts(&b, "[");
            lb_puts(&b, plugin);
            lb_puts(&b, "] ");
        }
        lb_puts(&b, msg ? msg : "");
        for (size_t i = 0; i < nkv; i++) {
            const char *k = kv[2 * i], *v = kv[2 * i + 1];
            if (!k)
                continue;
            lb_puts(&b, " ");
            lb_puts(&b, k);
            lb_puts(&b, "=");
            lb_puts(&b, tk_log_key_is_secret(k) ? "[redacted]" : v ? v : "");
        }
        lb_puts(&b, "\n");
    }
    if (b.p) {
        FILE *out = g_out ? g_out : stderr;
        pthread_mutex_lock(&g_lock);
        fwrite(b.p, 1, b.len, out);
        fflush(out);
        pthread_mutex_unlock(&g_lock);
        free(b.p);
    }
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
