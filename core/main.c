/* taskorad: the Taskora host's command line. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "daemon.h"
#include "dlq.h"
#include "instance.h"
#include "loader.h"
#include "log.h"
#include "migrate.h"
#include "settings.h"

#ifndef TK_SYSCONFDIR
#define TK_SYSCONFDIR "/usr/local/etc"
#endif

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_PENDING = 3 };

/* What `migrate` does: apply, or only say what is pending (--status) or would run (--dry-run). */
enum { MIGRATE_APPLY, MIGRATE_STATUS, MIGRATE_DRY_RUN };

/* Long options without a short form. */
enum { OPT_STATUS = 256, OPT_DRY_RUN };

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: taskorad [COMMAND] [-c FILE]\n"
        "Taskora's plugin host: loads the plugins a config names and wires them to\n"
        "PostgreSQL, Kafka and the HTTP server.\n"
        "\n"
        "Commands:\n"
        "  run             (default) run the configured plugins until SIGTERM (which\n"
        "                  drains HTTP for drain_delay_ms first) or SIGINT; SIGHUP\n"
        "                  reloads the plugins that can (e.g. Lua scripts)\n"
        "  check-config    validate the config file and every plugin's config\n"
        "  plugins         load, check and list the configured plugin instances\n"
        "  migrate         apply pending database migrations (core, then plugins)\n"
        "  broker          run the embedded Kafka-protocol cluster standalone\n"
        "  dlq list|replay list a dead-letter topic's events, or send them back to their\n"
        "                  topics (taskorad dlq --help)\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE    config file (default: $TASKORA_CONFIG, else\n"
        "                       %s/taskora/taskora.json)\n"
        "  -h, --help           this help\n"
        "  -V, --version        version and plugin ABI\n"
        "Broker options:\n"
        "  --brokers N          brokers in the cluster (default 1)\n"
        "  --partitions N       partitions per topic (default 6)\n"
        "  --topics a,b,c       topics to create (default task-events,user-events,chat-events)\n"
        "Migrate options (both change nothing):\n"
        "  --status             list every step per component, applied (when) or pending,\n"
        "                       and flag steps changed since applied or unknown to this build\n"
        "  --dry-run            print each pending step and its SQL\n"
        "\n"
        "Exit status: 0 ok, 1 runtime failure (migrate: also the database cannot be\n"
        "reached, or --status/--dry-run found steps migrate would refuse), 2 usage or\n"
        "configuration error, 3 migrate --status: steps are pending.\n",
        TK_SYSCONFDIR);
}

static const char *default_config(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("TASKORA_CONFIG");
    if (env && *env)
        return env;
    snprintf(path, sizeof(path), "%s/taskora/taskora.json", TK_SYSCONFDIR);
    return path;
}

/* Loads the settings, printing the error; NULL means exit 2. */
static tk_settings *load_settings(const char *path)
{
    char err[4096];
    tk_settings *s = tk_settings_load(path, err, sizeof(err));
    if (!s)
        fprintf(stderr, "taskorad: %s\n", err);
    return s;
}

static int cmd_check_or_list(const char *path, int list)
{
    tk_settings *s = load_settings(path);
    if (!s)
        return EXIT_USAGE;
    tk_log_setup(TK_LOG_WARN, TK_LOG_FORMAT_TEXT, stderr);
    tk_runtime rt = {.app_id = s->app_id};
    tk_loader l;
    char err[4096];
    int rc = tk_loader_open(&l, s, &rt, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "taskorad: %s\n", err);
    } else if (list) {
        printf("%-20s %-16s %-10s %-5s %-28s %s\n", "INSTANCE", "TYPE", "VERSION", "ABI",
               "CAPABILITIES", "FILE");
        for (size_t i = 0; i < l.n; i++) {
            const tk_plugin *d = l.inst[i]->type->desc;
            char caps[128], abi[24];
            tk_plugin_capabilities(d, caps, sizeof(caps));
            snprintf(abi, sizeof(abi), "%u.%u", d->abi_major, d->abi_minor);
            printf("%-20s %-16s %-10s %-5s %-28s %s\n", l.inst[i]->name, d->name,
                   d->version ? d->version : "-", abi, caps, l.inst[i]->type->path);
        }
    } else {
        printf("%s: OK (%zu plugin instance%s)\n", s->path, l.n, l.n == 1 ? "" : "s");
    }
    tk_loader_close(&l);
    tk_settings_free(s);
    return rc ? EXIT_USAGE : EXIT_OK;
}

/* Runs migrate in the given mode on an opened loader; the exit status. */
static int migrate_mode(const char *url, const tk_loader *l, int mode)
{
    char err[4096];
    if (mode == MIGRATE_APPLY) {
        if (tk_migrate(url, l, stdout, err, sizeof(err)) == 0)
            return EXIT_OK;
        fprintf(stderr, "taskorad: migrate: %s\n", err);
        return EXIT_RUNTIME;
    }
    tk_migrate_summary sum;
    if (tk_migrate_status(url, l, mode == MIGRATE_DRY_RUN, stdout, &sum, err, sizeof(err))) {
        fprintf(stderr, "taskorad: migrate: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (sum.changed || sum.unknown) {
        fprintf(stderr,
                "taskorad: migrate: the database has %d step%s changed since applied and %d this "
                "build does not know; migrate would refuse it\n",
                sum.changed, sum.changed == 1 ? "" : "s", sum.unknown);
        return EXIT_RUNTIME;
    }
    return mode == MIGRATE_STATUS && sum.pending ? EXIT_PENDING : EXIT_OK;
}

static int cmd_migrate(const char *path, int mode)
{
    tk_settings *s = load_settings(path);
    if (!s)
        return EXIT_USAGE;
    tk_log_setup(TK_LOG_WARN, TK_LOG_FORMAT_TEXT, stderr);
    int code = EXIT_OK;
    char err[4096];
    tk_runtime rt = {.app_id = s->app_id};
    tk_loader l;
    if (!s->pg_url) {
        fprintf(stderr,
                "taskorad: %s: postgres.url: required for migrate (e.g. \"${DATABASE_URL}\")\n",
                s->path);
        code = EXIT_USAGE;
    } else if (tk_loader_open(&l, s, &rt, err, sizeof(err))) {
        fprintf(stderr, "taskorad: %s\n", err);
        code = EXIT_USAGE;
        tk_loader_close(&l);
    } else {
        code = migrate_mode(s->pg_url, &l, mode);
        tk_loader_close(&l);
    }
    tk_settings_free(s);
    return code;
}

static int cmd_broker(int nbrokers, int partitions, const char *topics_csv)
{
    tk_log_setup(TK_LOG_WARN, TK_LOG_FORMAT_TEXT, stderr);
    char *csv = strdup(topics_csv);
    if (!csv) {
        fprintf(stderr, "taskorad: out of memory\n");
        return EXIT_RUNTIME;
    }
    const char *topics[64];
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(csv, ",", &save); t && n < 64; t = strtok_r(NULL, ",", &save))
        if (*t)
            topics[n++] = t;
    char err[512];
    tk_broker *b = tk_broker_start(nbrokers, partitions, topics, n, err, sizeof(err));
    free(csv);
    if (!b) {
        fprintf(stderr, "taskorad: %s\n", err);
        return EXIT_RUNTIME;
    }
    printf("%s\n", tk_broker_bootstraps(b));
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    tk_broker_stop(b);
    return EXIT_OK;
}

static int positive(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v < 1 || v > 1000)
        return 0;
    *out = (int)v;
    return 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "dlq") == 0) /* options of its own */
        return tk_dlq_main(argc - 1, argv + 1, default_config());
    const char *config = NULL;
    int nbrokers = 1, partitions = 6;
    const char *topics = "task-events,user-events,chat-events";
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"brokers", required_argument, NULL, 'b'},
                                         {"partitions", required_argument, NULL, 'p'},
                                         {"topics", required_argument, NULL, 't'},
                                         {"status", no_argument, NULL, OPT_STATUS},
                                         {"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                         {0}};
    int mode = MIGRATE_APPLY;
    const char *cmd = NULL;
    if (argc > 1 && argv[1][0] != '-') {
        cmd = argv[1];
        optind = 2;
    }
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'h': usage(stdout); return EXIT_OK;
        case 'V':
            printf("taskorad %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, TK_PLUGIN_ABI_MAJOR,
                   TK_PLUGIN_ABI_MINOR);
            return EXIT_OK;
        case 'b':
            if (!positive(optarg, &nbrokers)) {
                fprintf(stderr, "taskorad: --brokers: expected 1..1000, got \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'p':
            if (!positive(optarg, &partitions)) {
                fprintf(stderr, "taskorad: --partitions: expected 1..1000, got \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 't': topics = optarg; break;
        case OPT_STATUS:
        case OPT_DRY_RUN:
            if (mode != MIGRATE_APPLY) {
                fprintf(stderr, "taskorad: --status and --dry-run exclude each other\n");
                return EXIT_USAGE;
            }
            mode = c == OPT_STATUS ? MIGRATE_STATUS : MIGRATE_DRY_RUN;
            break;
        default: fprintf(stderr, "Try 'taskorad --help'.\n"); return EXIT_USAGE;
        }
    }
    if (!cmd && optind < argc)
        cmd = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "taskorad: unexpected argument \"%s\"; try 'taskorad --help'\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    if (!cmd)
        cmd = "run";
    if (mode != MIGRATE_APPLY && strcmp(cmd, "migrate") != 0) {
        fprintf(stderr, "taskorad: --%s belongs to the migrate command\n",
                mode == MIGRATE_STATUS ? "status" : "dry-run");
        return EXIT_USAGE;
    }
    if (!config)
        config = default_config();
    sigset_t blocked;
    if (strcmp(cmd, "run") == 0) {
        tk_signals_block(&blocked); /* before any thread starts, so every thread inherits it */
        tk_settings *s = load_settings(config);
        if (!s)
            return EXIT_USAGE;
        tk_log_setup(s->log_level, s->log_format, stderr);
        int code = tk_daemon_run(s);
        tk_settings_free(s);
        return code;
    }
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_or_list(config, 0);
    if (strcmp(cmd, "plugins") == 0)
        return cmd_check_or_list(config, 1);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(config, mode);
    if (strcmp(cmd, "broker") == 0) {
        tk_signals_block(&blocked);
        return cmd_broker(nbrokers, partitions, topics);
    }
    fprintf(stderr, "taskorad: unknown command \"%s\"; try 'taskorad --help'\n", cmd);
    return EXIT_USAGE;
}
