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
    if (d->migrations && d->migrations[0])
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

void tk_instance_consume(const tk_instance *inst, const tk_event *const *events, size_t n,
                         tk_consume_result *results)
{
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
