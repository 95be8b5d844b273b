/*
 * The toolkit's libcurl part (kit_curl.c), for plugins that make HTTP calls (the AI providers,
 * the notifications' webhook): one safe set-up of a request, so every outgoing call has a
 * bounded time, no signals, no redirects and only http and https.
 */
#ifndef TASKORA_KIT_CURL_H
#define TASKORA_KIT_CURL_H

#include <stddef.h>

#include <curl/curl.h>

/*
 * curl_global_init / curl_global_cleanup, refcounted by libcurl itself: call
 * kit_curl_global_init once in every init() and kit_curl_global_cleanup once in the matching
 * destroy() (or on init's failure path). TK_OK or TK_ERR.
 */
int kit_curl_global_init(void);
void kit_curl_global_cleanup(void);

/* The connect timeout never exceeds this, whatever the total timeout. */
#define KIT_CURL_MAX_CONNECT_MS 10000L

/*
 * A new handle for one POST of body (len bytes, not copied: it must outlive the transfer) to
 * url with headers (may be NULL; not copied either) and user_agent: the whole call within
 * timeout_ms (connecting within min(timeout_ms, 10 s)), no signals (many threads: no SIGALRM
 * for DNS timeouts), redirects not followed (a credential header never goes to another host),
 * only http and https, libcurl's error text into errbuf (CURL_ERROR_SIZE bytes, emptied).
 * The caller adds its callbacks, performs and cleans up. NULL when out of memory.
 */
CURL *kit_curl_post(const char *url, const char *body, size_t len, struct curl_slist *headers,
                    const char *user_agent, long timeout_ms, char *errbuf);

/*
 * A header list of the n lines (NULL entries skipped). NULL when out of memory (what was
 * built is freed); free it with curl_slist_free_all after the transfer.
 */
struct curl_slist *kit_curl_headers(const char *const *lines, size_t n);

/*
 * A CURLOPT_HEADERFUNCTION keeping the Retry-After value of the last response (a new status
 * line forgets the one of a 100 Continue or a redirect) in its CURLOPT_HEADERDATA, a char
 * buffer of KIT_RETRY_AFTER_LEN bytes (start it empty). Read it with kit_parse_retry_after.
 */
#define KIT_RETRY_AFTER_LEN 64
size_t kit_curl_retry_after(char *ptr, size_t size, size_t n, void *ud);

/* A CURLOPT_WRITEFUNCTION that drops the answer's body. */
size_t kit_curl_discard(char *ptr, size_t size, size_t n, void *ud);

#endif
