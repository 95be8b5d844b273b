/* The toolkit's libcurl part (kit_curl.h). */
#include "kit_curl.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <taskora/plugin.h>

/*
 * curl_global_init is refcounted, but before libcurl 7.84 it is not thread-safe; init() and
 * destroy() run on the main thread, the lock is only a guard for hosts that do otherwise. A
 * pthread_once would not pair with one cleanup per destroy() when several instances are
 * configured.
 */
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;

int kit_curl_global_init(void)
{
    pthread_mutex_lock(&global_lock);
    CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_unlock(&global_lock);
    return c == CURLE_OK ? TK_OK : TK_ERR;
}

void kit_curl_global_cleanup(void)
{
    pthread_mutex_lock(&global_lock);
    curl_global_cleanup();
    pthread_mutex_unlock(&global_lock);
}

CURL *kit_curl_post(const char *url, const char *body, size_t len, struct curl_slist *headers,
                    const char *user_agent, long timeout_ms, char *errbuf)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < KIT_CURL_MAX_CONNECT_MS ? timeout_ms : KIT_CURL_MAX_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    return c;
}

struct curl_slist *kit_curl_headers(const char *const *lines, size_t n)
{
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!lines[i])
            continue;
        struct curl_slist *h = curl_slist_append(list, lines[i]);
        if (!h) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = h;
    }
    return list;
}

size_t kit_curl_retry_after(char *ptr, size_t size, size_t n, void *ud)
{
    char *retry_after = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        retry_after[0] = '\0'; /* a new response (after a 100 Continue, say) */
    } else if (len > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
        const char *v = ptr + sizeof(name) - 1, *end = ptr + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && isspace((unsigned char)end[-1]))
            end--;
        size_t m = (size_t)(end - v) < KIT_RETRY_AFTER_LEN - 1 ? (size_t)(end - v)
                                                               : KIT_RETRY_AFTER_LEN - 1;
        memcpy(retry_after, v, m);
        retry_after[m] = '\0';
    }
    return len;
}

size_t kit_curl_discard(char *ptr, size_t size, size_t n, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * n;
}
