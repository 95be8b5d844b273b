/*
 * Inline helpers of the plugin ABI: included by <taskora/plugin.h>, which is
 * the header to include. They run in the plugin and the host alike, so both
 * read return codes, secrets, boolean words and failure kinds the same way.
 */
#ifndef TASKORA_PLUGIN_HELPERS_H
#define TASKORA_PLUGIN_HELPERS_H

#ifndef TASKORA_PLUGIN_H
#error "include <taskora/plugin.h>, not <taskora/plugin_helpers.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A short English description of a return code. Static storage; any thread. */
static inline const char *tk_strerror(int rc)
{
    switch (rc) {
    case TK_OK: return "ok";
    case TK_ERR: return "failed";
    case TK_ENOMEM: return "out of memory";
    case TK_EINVAL: return "invalid argument";
    case TK_ENOTFOUND: return "not found";
    case TK_EEXIST: return "already exists";
    case TK_ETIMEDOUT: return "timed out";
    case TK_EUNAVAILABLE: return "unavailable";
    case TK_ESTATE: return "called at the wrong time";
    case TK_EPERM: return "not allowed";
    default: return "unknown error";
    }
}

/*
 * Compares a secret a client sent (`got`, may be NULL) with the configured one
 * (`expected`) in time that depends only on the length of `got`: not on where
 * they differ, nor on the expected secret or its length (every byte of `got` is
 * compared, against `expected` repeated; a length difference shows as a
 * difference at expected's end). 1 when equal. 0 otherwise, and always when
 * `expected` is NULL or empty: no secret configured matches nothing. For tokens
 * such as Dapr's dapr-api-token header; any thread.
 */
static inline int tk_secret_equal(const char *expected, const char *got)
{
    if (!expected || !*expected)
        return 0;
    if (!got)
        got = "";
    unsigned diff = 0;
    size_t j = 0;
    for (size_t i = 0; got[i]; i++) {
        unsigned char e = (unsigned char)expected[j];
        diff |= (unsigned char)got[i] ^ e; /* at expected's end: got[i] ^ 0, never 0 */
        size_t at_end = (size_t)(e == 0);
        j = (j + 1) & (at_end - 1); /* wraps to 0 at expected's end, without a branch */
    }
    diff |= (unsigned char)expected[j]; /* got ended before expected did */
    return diff == 0;
}

/*
 * A boolean query value, read the same way by every route: true/false, 1/0,
 * yes/no, on/off, t/f, y/n in any case (the words FastAPI accepts). 1, 0,
 * or -1 when v is none of them.
 */
static inline int tk_bool_word(const char *v)
{
    static const char *const words[] = {"true", "false", "1", "0", "yes", "no",
                                        "on",   "off",   "t", "f", "y",   "n"};
    for (unsigned i = 0; v && i < sizeof(words) / sizeof(words[0]); i++) {
        const char *w = words[i], *p = v;
        while (*w && (*p == *w || (*p >= 'A' && *p <= 'Z' && *p - 'A' + 'a' == *w)))
            p++, w++;
        if (!*w && !*p)
            return i % 2 == 0;
    }
    return -1;
}

/*
 * The kind's name in logs and metric labels: "none" (no failure), "auth",
 * "rate_limited", "unavailable", "bad_request", "blocked", "timeout", or
 * "unknown". Static storage; any thread.
 */
static inline const char *tk_failure_kind_name(tk_failure_kind k)
{
    static const char *const names[] = {"none",        "auth",    "rate_limited", "unavailable",
                                        "bad_request", "blocked", "timeout"};
    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "unknown";
}

#ifdef __cplusplus
}
#endif

#endif /* TASKORA_PLUGIN_HELPERS_H */
