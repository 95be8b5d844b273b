/* `taskorad dlq`: list the dead letters of a topic and replay them to where they came from. */
#include "dlq.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "dlq_read.h"
#include "event.h"
#include "log.h"
#include "settings.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fputs("Usage: taskorad dlq list --topic TOPIC [--since TIME] [--limit N] [--json]\n"
          "       taskorad dlq replay --topic TOPIC [--event-id ID | --since TIME] [--limit N]\n"
          "                           [--dry-run]\n"
          "Dead letters: the events a consumer gave up on, in TOPIC (e.g. task-events.dlq).\n"
          "\n"
          "  list      one line per dead letter: when it was dead-lettered, event id, type,\n"
          "            user, consumer, attempts, where it came from and why it failed\n"
          "  replay    send each selected dead letter back to its original topic (same key,\n"
          "            value and headers; the x-taskora-* dead-letter headers renamed to\n"
          "            x-taskora-replayed-*, plus x-taskora-replayed-from and -at). Consumers\n"
          "            skip an event they already applied, so a replay may run twice\n"
          "\n"
          "Options:\n"
          "  --topic TOPIC     the dead-letter topic (required)\n"
          "  --since TIME      only what was dead-lettered at or after TIME: ISO 8601\n"
          "                    (2024-05-01, 2024-05-01T12:00:00Z, ...+02:00) or an age (90s,\n"
          "                    30m, 1h, 2d)\n"
          "  --event-id ID     replay: only the dead letter of that event\n"
          "  --limit N         at most N dead letters\n"
          "  --json            list: one JSON object per line\n"
          "  --dry-run         replay: print what would be sent, send nothing\n"
          "  --brokers LIST    bootstrap servers (default: the config's kafka.brokers)\n"
          "  --timeout S       give up when the broker does not answer for S seconds (30)\n"
          "  -c, --config FILE the config whose kafka section to use (as for run)\n"
          "\n"
          "Exit status: 0 ok, 1 a broker, topic or send failure, 2 usage or config error.\n",
          out);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("taskorad: dlq: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("; try 'taskorad dlq --help'\n", stderr);
    return EXIT_USAGE;
}

static long long wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000LL + tv.tv_usec / 1000;
}

static int number(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

typedef struct cli {
    tk_dlq_cmd cmd;
    const char *sub, *config, *since;
} cli;

/* Parses argv (argv[0] "dlq"); EXIT_OK, EXIT_USAGE, or -1 when --help was printed. */
static int parse(int argc, char **argv, cli *o)
{
    static const struct option opts[] = {{"topic", required_argument, NULL, 't'},
                                         {"since", required_argument, NULL, 's'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"event-id", required_argument, NULL, 'e'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"dry-run", no_argument, NULL, 'd'},
                                         {"brokers", required_argument, NULL, 'b'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    o->cmd.since_ms = -1;
    o->cmd.timeout_ms = 30000;
    optind = 1;
    if (argc > 1 && argv[1][0] != '-')
        o->sub = argv[optind++];
    long v;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': o->cmd.topic = optarg; break;
        case 's': o->since = optarg; break;
        case 'e': o->cmd.event_id = optarg; break;
        case 'j': o->cmd.json = 1; break;
        case 'd': o->cmd.dry_run = 1; break;
        case 'b': o->cmd.brokers = optarg; break;
        case 'c': o->config = optarg; break;
        case 'h': usage(stdout); return -1;
        case 'n':
            if (number(optarg, 1, 1000000000L, &v))
                return usage_error("--limit: expected a positive number, got \"%s\"", optarg);
            o->cmd.limit = v;
            break;
        case 'T':
            if (number(optarg, 1, 86400, &v))
                return usage_error("--timeout: expected seconds (1..86400), got \"%s\"", optarg);
            o->cmd.timeout_ms = (int)v * 1000;
            break;
        default: return usage_error("%s", "unknown option");
        }
    }
    if (!o->sub && optind < argc)
        o->sub = argv[optind++];
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!o->sub)
        return usage_error("%s", "expected a command, list or replay");
    int list = strcmp(o->sub, "list") == 0;
    if (!list && strcmp(o->sub, "replay") != 0)
        return usage_error("unknown command \"%s\"", o->sub);
    if (!o->cmd.topic || !*o->cmd.topic)
        return usage_error("%s", "--topic TOPIC is required");
    if (o->since && tk_dlq_parse_time(o->since, wall_ms(), &o->cmd.since_ms))
        return usage_error("--since: expected ISO 8601 or an age like 30m, 1h, 2d, got \"%s\"",
                           o->since);
    if (list && (o->cmd.event_id || o->cmd.dry_run))
        return usage_error("%s", "--event-id and --dry-run are for replay");
    if (!list && o->cmd.json)
        return usage_error("%s", "--json is for list");
    if (o->cmd.event_id && o->since)
        return usage_error("%s", "--event-id and --since do not go together");
    return EXIT_OK;
}

/* The brokers and client properties from the config; the settings stay loaded (*s). */
static int kafka_from_config(cli *o, const char *default_config, tk_settings **s)
{
    *s = NULL;
    if (o->cmd.brokers && !o->config)
        return EXIT_OK; /* --brokers alone: no config needed */
    char err[4096];
    const char *path = o->config ? o->config : default_config;
    if (!(*s = tk_settings_load(path, err, sizeof(err)))) {
        fprintf(stderr, "taskorad: %s\n", err);
        return EXIT_USAGE;
    }
    o->cmd.consumer_props[0] = o->cmd.producer_props[0] = (*s)->kafka_props;
    o->cmd.consumer_props[1] = (*s)->kafka_consumer_props;
    o->cmd.producer_props[1] = (*s)->kafka_producer_props;
    o->cmd.nprops = 2;
    if (o->cmd.brokers)
        return EXIT_OK;
    if (strcmp((*s)->kafka_brokers, "embedded") == 0) {
        fprintf(stderr,
                "taskorad: dlq: %s: kafka.brokers is \"embedded\": that broker lives inside a "
                "running taskorad and cannot be inspected from outside it. Pass --brokers "
                "HOST:PORT of a broker this command can reach (Kafka, Redpanda, or `taskorad "
                "broker`)\n",
                (*s)->path);
        return EXIT_USAGE;
    }
    o->cmd.brokers = (*s)->kafka_brokers;
    return EXIT_OK;
}

void tk_dead_letter_describe(const rd_kafka_message_t *m, tk_dead_letter *d)
{
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    if (ts >= 0)
        tk_dlq_format_time(ts, d->time, sizeof(d->time));
    else
        snprintf(d->time, sizeof(d->time), "-");
    tk_event ev;
    tk_event_doc doc;
    char why[512];
    tk_event_init(&ev, rd_kafka_topic_name(m->rkt), "", m->payload, m->len);
    if (tk_event_decode(m->payload, m->len, &ev, &doc, why, sizeof(why)) == 0) {
        snprintf(d->id, sizeof(d->id), "%s", ev.id);
        snprintf(d->type, sizeof(d->type), "%s", ev.type);
        snprintf(d->user, sizeof(d->user), "%s", ev.user_id ? ev.user_id : "-");
        tk_event_doc_free(&doc);
    } else {
        /* not an event (the reason the consumer gave is in x-taskora-error): its headers */
        tk_dlq_header(m, "ce_id", d->id, sizeof(d->id));
        tk_dlq_header(m, "ce_type", d->type, sizeof(d->type));
        snprintf(d->user, sizeof(d->user), "-");
    }
    struct {
        const char *name;
        char *out;
        size_t len;
    } h[] = {{"x-taskora-consumer", d->consumer, sizeof(d->consumer)},
             {"x-taskora-attempts", d->attempts, sizeof(d->attempts)},
             {"x-taskora-error", d->error, sizeof(d->error)},
             {"x-taskora-original-topic", d->topic, sizeof(d->topic)},
             {"x-taskora-original-partition", d->partition, sizeof(d->partition)},
             {"x-taskora-original-offset", d->offset, sizeof(d->offset)},
             {NULL, d->id, sizeof(d->id)},
             {NULL, d->type, sizeof(d->type)}};
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        if (h[i].name)
            tk_dlq_header(m, h[i].name, h[i].out, h[i].len);
        if (!h[i].out[0])
            snprintf(h[i].out, h[i].len, "-");
    }
}

static void print_json(const rd_kafka_message_t *m, const tk_dead_letter *d)
{
    json_t *o =
        json_pack("{s:s, s:s, s:i, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "time", d->time,
                  "dlq_topic", rd_kafka_topic_name(m->rkt), "dlq_partition", (int)m->partition,
                  "dlq_offset", (json_int_t)m->offset, "event_id", d->id, "type", d->type,
                  "user_id", d->user, "consumer", d->consumer, "attempts", d->attempts, "error",
                  d->error, "original_topic", d->topic, "original_partition", d->partition);
    char *text = NULL;
    if (o && !json_object_set_new(o, "original_offset", json_string(d->offset))) {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) /* what the dead letter does not carry: null */
        {
            if (json_is_string(v) && strcmp(json_string_value(v), "-") == 0)
                json_object_set_new(o, k, json_null());
        }
        text = json_dumps(o, JSON_COMPACT);
    }
    json_decref(o);
    if (text)
        printf("%s\n", text);
    free(text);
}

static const char *const table_fmt = "%-24s  %-36s  %-20s  %-8s  %-14s  %-8s  %-26s  %s\n";

static void print_row(const tk_dead_letter *d)
{
    char origin[320];
    snprintf(origin, sizeof(origin), "%s[%s]@%s", d->topic, d->partition, d->offset);
    printf(table_fmt, d->time, d->id, d->type, d->user, d->consumer, d->attempts, origin, d->error);
}

static int cmd_list(const tk_dlq_cmd *c)
{
    char err[1024];
    tk_dlq_reader *r = tk_dlq_open(c->brokers, c->consumer_props, c->nprops, c->topic, c->since_ms,
                                   c->timeout_ms, err, sizeof(err));
    if (!r) {
        fprintf(stderr, "taskorad: dlq list: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (!c->json)
        printf(table_fmt, "DEAD-LETTERED AT", "EVENT ID", "TYPE", "USER", "CONSUMER", "ATTEMPTS",
               "FROM", "ERROR");
    long n = 0;
    int rc = 0;
    rd_kafka_message_t *m;
    while ((c->limit == 0 || n < c->limit) && (rc = tk_dlq_next(r, &m, err, sizeof(err))) > 0) {
        tk_dead_letter d;
        tk_dead_letter_describe(m, &d);
        if (c->json)
            print_json(m, &d);
        else
            print_row(&d);
        rd_kafka_message_destroy(m);
        n++;
    }
    tk_dlq_close(r);
    if ((c->limit == 0 || n < c->limit) && rc < 0) {
        fflush(stdout);
        fprintf(stderr, "taskorad: dlq list: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (!c->json)
        printf("(%ld dead letter%s)\n", n, n == 1 ? "" : "s");
    return EXIT_OK;
}

int tk_dlq_main(int argc, char **argv, const char *default_config)
{
    cli o;
    memset(&o, 0, sizeof(o));
    int code = parse(argc, argv, &o);
    if (code)
        return code < 0 ? EXIT_OK : code;
    tk_log_setup(TK_LOG_WARN, TK_LOG_FORMAT_TEXT, stderr);
    tk_settings *s = NULL;
    code = kafka_from_config(&o, default_config, &s);
    if (code == EXIT_OK)
        code = strcmp(o.sub, "list") == 0 ? cmd_list(&o.cmd) : tk_dlq_replay(&o.cmd);
    tk_settings_free(s);
    return code;
}
