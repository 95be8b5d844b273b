/* The plugins' toolkit (kit.h). */
#include "kit.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- ISO 8601 times ------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The date of a day since 1970-01-01 (civil_from_days). */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

/* The first and last microsecond of the years 1 to 9999. */
#define FIRST_US ((int64_t)-62135596800 * 1000000)
#define LAST_US ((int64_t)253402300799 * 1000000 + 999999)

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* ".fraction" (1 to 9 digits) at *p, as microseconds; -1 when malformed. */
static int fraction(const char **p, int *us)
{
    int n = 0, v = 0;
    while (isdigit((unsigned char)**p)) {
        if (n < 6)
            v = v * 10 + (**p - '0');
        n++, (*p)++;
    }
    if (n == 0 || n > 9)
        return -1;
    for (; n < 6; n++)
        v *= 10;
    *us = v;
    return 0;
}

/* A zone at *p ('Z', +HH, +HHMM, +HH:MM, or none) as seconds east of UTC; -1 when malformed. */
static int zone(const char **p, int *offset)
{
    *offset = 0;
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        return 0;
    }
    if (**p != '+' && **p != '-')
        return 0;
    int sign = *(*p)++ == '-' ? -1 : 1, oh, om = 0;
    if (digits(p, 2, &oh))
        return -1;
    if (**p == ':')
        (*p)++;
    if (**p && digits(p, 2, &om))
        return -1;
    if (oh > 23 || om > 59)
        return -1;
    *offset = sign * (oh * 3600 + om * 60);
    return 0;
}

int kit_time_parse(const char *s, unsigned flags, int64_t *out)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, us = 0, off = 0;
    if (!p || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return TK_EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            return TK_EINVAL;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec))
                return TK_EINVAL;
            if ((*p == '.' || *p == ',') && (p++, fraction(&p, &us) < 0))
                return TK_EINVAL;
        } else if (flags & KIT_TIME_DATETIME) {
            return TK_EINVAL;
        }
        if (zone(&p, &off) < 0)
            return TK_EINVAL;
    } else if (flags & KIT_TIME_DATETIME) {
        return TK_EINVAL;
    }
    if (*p || y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 59)
        return TK_EINVAL;
    int64_t secs =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - off;
    int64_t t = secs * 1000000 + us;
    if (t < FIRST_US || t > LAST_US) /* the offset moved it out of the years 1 to 9999 */
        return TK_EINVAL;
    *out = t;
    return TK_OK;
}

void kit_time_format(int64_t us, kit_time_style style, char *out, size_t len)
{
    us = us < FIRST_US ? FIRST_US : us > LAST_US ? LAST_US : us;
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    unsigned frac = (unsigned)(us - secs * 1000000);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    unsigned rem = (unsigned)(secs - days * 86400);
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned hh = rem / 3600, mm = rem / 60 % 60, ss = rem % 60;
    switch (style) {
    case KIT_TIME_ISO:
        snprintf(out, len, "%04d-%02u-%02uT%02u:%02u:%02u.%06u+00:00", y, m, d, hh, mm, ss, frac);
        break;
    case KIT_TIME_SQL:
        snprintf(out, len, "%04d-%02u-%02u %02u:%02u:%02u.%06u", y, m, d, hh, mm, ss, frac);
        break;
    case KIT_TIME_DAY: snprintf(out, len, "%04d-%02u-%02u", y, m, d); break;
    }
}

int64_t kit_time_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

int64_t kit_monotonic_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the API's 422 answer -------------------------------------------------------------- */

void kit_errors_init(kit_errors *e) { e->list = json_array(); }

void kit_errors_add(kit_errors *e, const char *where, const char *field, const char *msg,
                    const char *type)
{
    if (!e->list)
        return;
    json_t *loc = field ? json_pack("[s,s]", where, field) : json_pack("[s]", where);
    json_array_append_new(e->list,
                          json_pack("{s:o,s:s,s:s}", "loc", loc, "msg", msg, "type", type));
}

int kit_errors_any(const kit_errors *e) { return e->list && json_array_size(e->list) > 0; }

int kit_errors_send(const tk_host *h, tk_http_response *resp, kit_errors *e)
{
    json_t *list = e->list;
    e->list = NULL;
    if (!list)
        return TK_ENOMEM;
    return kit_send_json(h, resp, 422, json_pack("{s:o}", "detail", list));
}

void kit_errors_free(kit_errors *e)
{
    json_decref(e->list);
    e->list = NULL;
}

/* ---- answers ---------------------------------------------------------------------------- */

int kit_send_text(const tk_host *h, tk_http_response *resp, int status, const char *json,
                  size_t len)
{
    h->http_status(resp, status);
    return h->http_set_body(resp, KIT_JSON_TYPE, json, len);
}

int kit_send_json(const tk_host *h, tk_http_response *resp, int status, json_t *body)
{
    if (!body)
        return TK_ENOMEM;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return TK_ENOMEM;
    int rc = kit_send_text(h, resp, status, text, strlen(text));
    free(text);
    return rc;
}

int kit_invalid(const tk_host *h, tk_http_response *resp, const char *where, const char *field,
                const char *msg, const char *type)
{
    kit_errors e;
    kit_errors_init(&e);
    kit_errors_add(&e, where, field, msg, type);
    return kit_errors_send(h, resp, &e);
}

int kit_db_error(const tk_host *h, tk_http_response *resp, int rc)
{
    if (rc == TK_EUNAVAILABLE || rc == TK_ETIMEDOUT) {
        h->http_set_header(resp, "Retry-After", "1");
        return h->http_error(resp, 503, "Database unavailable");
    }
    return h->http_error(resp, 500, "Internal server error");
}

/* ---- request arguments ------------------------------------------------------------------ */

int kit_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n, cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, cp = c & 0x07;
        else
            return 0; /* a continuation byte first, an overlong lead, or past U+10FFFF */
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        /* overlong three and four byte forms, surrogates, beyond U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

size_t kit_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80; /* every byte but a continuation byte */
    return n;
}

size_t kit_utf8_prefix(const char *s, size_t n)
{
    size_t i = 0, chars = 0;
    for (; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++chars > n)
            break; /* the first byte of character n + 1 */
    return i;
}

const char *kit_query(const tk_host *h, const tk_http_request *req, kit_errors *e, const char *name)
{
    const char *v = h->http_query(req, name);
    if (v && !kit_utf8_valid(v)) {
        kit_errors_add(e, "query", name,
                       "Input should be a valid string, unable to parse raw data as a unicode "
                       "string",
                       "string_unicode");
        return NULL;
    }
    return v;
}

int kit_query_bool(const tk_host *h, const tk_http_request *req, kit_errors *e, const char *name,
                   int dflt)
{
    const char *v = kit_query(h, req, e, name);
    int b = v ? tk_bool_word(v) : dflt;
    if (b < 0) {
        kit_errors_add(e, "query", name,
                       "Input should be a valid boolean, unable to interpret input",
                       "bool_parsing");
        b = dflt;
    }
    return b;
}

#define INT_PARSING_MSG "Input should be a valid integer, unable to parse string as an integer"

int kit_int_arg(kit_errors *e, const char *where, const char *name, const char *v, int64_t min,
                int64_t max, int64_t *out)
{
    if (!v)
        return TK_ENOTFOUND;
    char *end;
    long long n = strtoll(v, &end, 10); /* beyond 64 bits: LLONG_MIN/MAX, outside any range */
    if (!*v || *end) {
        kit_errors_add(e, where, name, INT_PARSING_MSG, "int_parsing");
        return TK_EINVAL;
    }
    if (n < min || n > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Input should be %s than or equal to %lld",
                 n < min ? "greater" : "less", (long long)(n < min ? min : max));
        kit_errors_add(e, where, name, msg, n < min ? "greater_than_equal" : "less_than_equal");
        return TK_EINVAL;
    }
    *out = n;
    return TK_OK;
}

int64_t kit_query_int(const tk_host *h, const tk_http_request *req, kit_errors *e, const char *name,
                      int64_t min, int64_t max, int64_t dflt)
{
    int64_t n = dflt;
    kit_int_arg(e, "query", name, kit_query(h, req, e, name), min, max, &n);
    return n;
}

int kit_query_time(const tk_host *h, const tk_http_request *req, kit_errors *e, const char *name,
                   unsigned flags, int64_t *us)
{
    const char *v = kit_query(h, req, e, name);
    if (!v)
        return TK_ENOTFOUND;
    if (kit_time_parse(v, flags, us) < 0) {
        kit_errors_add(e, "query", name, "Input should be a valid datetime", "datetime_parsing");
        return TK_EINVAL;
    }
    return TK_OK;
}

int64_t kit_path_int(kit_errors *e, const char *value, const char *name, int64_t min, int64_t max)
{
    char *end = NULL;
    errno = 0;
    long long v = value && *value ? strtoll(value, &end, 10) : 0;
    if (!value || !*value || *end || errno || v < min || v > max) {
        kit_errors_add(e, "path", name, INT_PARSING_MSG, "int_parsing");
        return -1;
    }
    return v;
}

/* ---- authentication -------------------------------------------------------------------- */

int kit_authenticate(const tk_host *h, const tk_http_request *req, tk_http_response *resp,
                     char *user, size_t len, int allow_query_token)
{
    if (h->struct_size < offsetof(tk_host, http_authenticate2) + sizeof(h->http_authenticate2) ||
        !h->http_authenticate2) {
        h->http_error(resp, 503, "No authenticator is loaded");
        return TK_EUNAVAILABLE;
    }
    return h->http_authenticate2(req, resp, user, len, allow_query_token);
}

/* ---- Retry-After ------------------------------------------------------------------------ */

int64_t kit_parse_retry_after(const char *value, int64_t now_s, int64_t max_s)
{
    if (!value)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    if (!*value)
        return -1;
    if (isdigit((unsigned char)*value)) { /* delay-seconds (a fraction is tolerated) */
        char *end;
        double s = strtod(value, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (*end || s < 0 || s > (double)max_s)
            return -1;
        return (int64_t)(s * 1000.0 + 0.5);
    }
    /* HTTP-date, IMF-fixdate form: "Wed, 21 Oct 2015 07:28:00 GMT" */
    struct tm tm = {0};
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    int64_t wait = (int64_t)t > now_s ? (int64_t)t - now_s : 0;
    return wait > max_s ? -1 : wait * 1000;
}
