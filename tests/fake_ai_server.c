/*
 * fake_ai_server: one of the fake AI provider servers of tests/fake_ai.c as a process of its
 * own, for tests that are not Check suites (the browser tests, tests/browser/): the provider
 * plugin under test talks to it over real HTTP in the provider's real wire format, and it
 * answers scripted replies.
 *
 *   fake_ai_server [--provider gemini|cohere|openai] [--key KEY] [REPLY...]
 *
 *   REPLY, queued in order (each is used by one accepted request; when none is left the
 *   server answers the text "ok"):
 *     --add-task TITLE     a call of the add_task tool with {"title": TITLE}
 *     --tool-calls JSON    calls, as fake_ai_tool_calls takes them: [{"name", "args"}, ...]
 *     --text TEXT          a text answer
 *     --error STATUS       the provider's real error answer for that status
 *
 * It prints its base URL ("http://127.0.0.1:PORT", the provider plugin's base_url) as the
 * first line of standard output, then reads commands from standard input, one a line, and
 * answers each with one line ("ok ..." or "error <why>"):
 *     add_task TITLE | tool_calls JSON | text TEXT | error STATUS [RETRY_AFTER_S]
 *         queue a reply as above                                 -> "ok queued N" (N pending)
 *     count          requests received so far                    -> "ok N"
 *     pending        scripted replies not used yet               -> "ok N"
 *     violations     requests refused as malformed               -> "ok N" or "ok N WHY"
 *     request I      the I-th request's body (0 first), one line -> "ok {...}"
 * At the end of its input it keeps serving. It stops on SIGTERM or SIGINT, and when the
 * process that started it ends (so a killed test leaves nothing behind).
 * The key defaults to "fake-ai-key". With FAKE_AI_TRACE set every exchange goes to stderr.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "fake_ai.h"

static void usage(void)
{
    fprintf(stderr, "usage: fake_ai_server [--provider gemini|cohere|openai] [--key KEY]"
                    " [--add-task TITLE] [--tool-calls JSON] [--text TEXT] [--error STATUS]...\n");
    exit(2);
}

/* [{"name": "add_task", "args": {"title": title}}] as JSON text (malloc'd), NULL on failure. */
static char *add_task_calls(const char *title)
{
    json_t *calls = json_pack("[{s:s,s:{s:s}}]", "name", "add_task", "args", "title", title);
    char *text = calls ? json_dumps(calls, JSON_COMPACT) : NULL;
    json_decref(calls);
    return text;
}

/* Queues one reply; NULL when done, else why not. */
static const char *queue(fake_ai *f, const char *what, const char *arg)
{
    if (strcmp(what, "add_task") == 0) {
        char *calls = add_task_calls(arg);
        if (!calls)
            return "the title is not UTF-8";
        fake_ai_tool_calls(f, calls);
        free(calls);
    } else if (strcmp(what, "tool_calls") == 0) {
        json_t *calls = json_loads(arg, 0, NULL);
        int ok = json_is_array(calls);
        json_decref(calls);
        if (!ok)
            return "tool_calls takes a JSON array";
        fake_ai_tool_calls(f, arg);
    } else if (strcmp(what, "text") == 0) {
        fake_ai_text(f, arg);
    } else if (strcmp(what, "error") == 0) {
        char *end = NULL;
        long status = strtol(arg, &end, 10);
        double retry = end && *end ? strtod(end, NULL) : -1;
        if (status < 400 || status > 599)
            return "error takes an HTTP status 400..599";
        fake_ai_error(f, (int)status, retry);
    } else {
        return "unknown command";
    }
    return NULL;
}

/* Answers one command line (without its newline). */
static void command(fake_ai *f, char *line)
{
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    else
        arg = line + strlen(line);
    if (strcmp(line, "count") == 0) {
        printf("ok %d\n", fake_ai_count(f));
    } else if (strcmp(line, "pending") == 0) {
        printf("ok %d\n", fake_ai_pending(f));
    } else if (strcmp(line, "violations") == 0) {
        const char *why = fake_ai_last_violation(f);
        printf("ok %d%s%s\n", fake_ai_violation_count(f), why ? " " : "", why ? why : "");
    } else if (strcmp(line, "request") == 0) {
        const char *body = fake_ai_request_body(f, atoi(arg));
        json_t *j = body ? json_loads(body, 0, NULL) : NULL;
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (text)
            printf("ok %s\n", text);
        else
            printf("error no such request, or not JSON\n");
        free(text);
        json_decref(j);
    } else {
        const char *why = queue(f, line, arg);
        if (why)
            printf("error %s\n", why);
        else
            printf("ok queued %d\n", fake_ai_pending(f));
    }
    fflush(stdout);
}

/* Reads what stdin has; 0 at its end. */
static int read_commands(fake_ai *f, char *buf, size_t cap, size_t *len)
{
    ssize_t n = read(0, buf + *len, cap - 1 - *len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return 0;
    *len += (size_t)n;
    buf[*len] = '\0';
    char *nl;
    while ((nl = strchr(buf, '\n'))) {
        *nl = '\0';
        if (nl > buf && nl[-1] == '\r')
            nl[-1] = '\0';
        command(f, buf);
        *len -= (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, *len + 1);
    }
    if (*len == cap - 1) { /* a line longer than the buffer */
        printf("error line too long\n");
        fflush(stdout);
        *len = 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    fake_ai_kind kind = FAKE_GEMINI;
    const char *key = "fake-ai-key";
    int i = 1;
    for (; i + 1 < argc && (strcmp(argv[i], "--provider") == 0 || strcmp(argv[i], "--key") == 0);
         i += 2) {
        if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
        else if (strcmp(argv[i + 1], "gemini") == 0)
            kind = FAKE_GEMINI;
        else if (strcmp(argv[i + 1], "cohere") == 0)
            kind = FAKE_COHERE;
        else if (strcmp(argv[i + 1], "openai") == 0)
            kind = FAKE_OPENAI;
        else
            usage();
    }
    /* the signals are taken through a signalfd, by this thread only */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    int sfd = signalfd(-1, &stop, SFD_CLOEXEC);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (sfd < 0)
        return 1;
    fake_ai *f = fake_ai_start(kind, key);
    if (!f) {
        fprintf(stderr, "fake_ai_server: cannot start the server\n");
        return 1;
    }
    for (; i < argc; i += 2) {
        const char *what = strcmp(argv[i], "--add-task") == 0     ? "add_task"
                           : strcmp(argv[i], "--tool-calls") == 0 ? "tool_calls"
                           : strcmp(argv[i], "--text") == 0       ? "text"
                           : strcmp(argv[i], "--error") == 0      ? "error"
                                                                  : NULL;
        const char *why = what && i + 1 < argc ? queue(f, what, argv[i + 1]) : "bad arguments";
        if (why) {
            fprintf(stderr, "fake_ai_server: %s: %s\n", argv[i], why);
            fake_ai_stop(f);
            usage();
        }
    }
    printf("%s\n", fake_ai_base_url(f));
    fflush(stdout);

    static char buf[1 << 16];
    size_t len = 0;
    struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (p[1].revents && !read_commands(f, buf, sizeof(buf), &len))
            p[1].fd = -1; /* the end of the commands: serve on */
    }
    fake_ai_stop(f);
    close(sfd);
    return 0;
}
