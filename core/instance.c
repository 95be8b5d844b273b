/* Plugin instances: a loaded plugin type (its descriptor) with a name, a config and a state. */
#include "instance.h"

#include <stdio.h>

const tk_ai_provider *tk_plugin_ai(const tk_plugin *d)
{
    /* only descriptors built for 1.3 or later have the field */
    if (d->abi_minor < 3 || d->struct_size < offsetof(tk_plugin, ai) + sizeof(d->ai) || !d->ai ||
        d->ai->struct_size < offsetof(tk_ai_provider, chat) + sizeof(d->ai->chat) || !d->ai->chat)
        return NULL;
    return d->ai;
}

tk_consume_batch_fn tk_plugin_consume_batch(const tk_plugin *d)
{
    if (d->abi_minor < 4 ||
        d->struct_size < offsetof(tk_plugin, consume_batch) + sizeof(d->consume_batch))
        return NULL;
    return d->consume_batch;
}

/* A 1.9 field is there when the plugin was built for 1.9 or later. */
#define HAS_19(d, field)                                                                           \
    ((d)->abi_minor >= 9 && (d)->struct_size >= offsetof(tk_plugin, field) + sizeof((d)->field))

tk_check_fn tk_plugin_check(const tk_plugin *d) { return HAS_19(d, check) ? d->check : NULL; }

tk_instance_migrations_fn tk_plugin_instance_migrations(const tk_plugin *d)
{
    return HAS_19(d, instance_migrations) ? d->instance_migrations : NULL;
}

tk_reload_fn tk_plugin_reload(const tk_plugin *d) { return HAS_19(d, reload) ? d->reload : NULL; }

void tk_plugin_capabilities(const tk_plugin *d, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    const char *names[5];
    int k = 0;
    if (d->capabilities & TK_PLUGIN_CAP_HTTP)
        names[k++] = "http";
    if (tk_plugin_ai(d))
        names[k++] = "ai";
    if (d->consume || tk_plugin_consume_batch(d))
        names[k++] = "consume";
    if ((d->migrations && d->migrations[0]) || tk_plugin_instance_migrations(d))
        names[k++] = "migrations";
    if (d->config && d->config[0].name)
        names[k++] = "config";
    for (int i = 0; i < k && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", names[i]);
    if (k == 0)
        snprintf(buf, len, "-");
}

const char *tk_instance_group(const tk_instance *inst, char *buf, size_t len)
{
    const char *group = json_string_value(json_object_get(inst->consume, "group"));
    if (group)
        snprintf(buf, len, "%s", group);
    else
        snprintf(buf, len, "taskora-%s", inst->name);
    return buf;
}

static _Thread_local char reason[512];
static _Thread_local int has_reason;

void tk_consume_reason_set(const char *r)
{
    if (!r)
        return;
    /* one line: a newline would split the log line and the header's meaning */
    size_t i = 0;
    for (; r[i] && i < sizeof(reason) - 1; i++)
        reason[i] = (r[i] == '\n' || r[i] == '\r') ? ' ' : r[i];
    reason[i] = '\0';
    has_reason = 1;
}

int tk_consume_reason(char *buf, size_t len)
{
    if (!has_reason)
        return 0;
    snprintf(buf, len, "%s", reason);
    return 1;
}

void tk_instance_consume(const tk_instance *inst, const tk_event *const *events, size_t n,
                         tk_consume_result *results)
{
    has_reason = 0;
    const tk_plugin *d = inst->type->desc;
    tk_consume_batch_fn batch = tk_plugin_consume_batch(d);
    for (size_t i = 0; i < n; i++)
        results[i] = TK_CONSUME_RETRY;
    if (batch && (n > 1 || !d->consume)) {
        batch(inst->state, events, n, results);
        return;
    }
    for (size_t i = 0; d->consume && i < n; i++)
        results[i] = d->consume(inst->state, events[i]);
}
