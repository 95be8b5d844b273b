/* The plugin loader: finds, checks and loads plugin types, and runs instances' lifecycles. */
#include "loader.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "host.h"
#include "log.h"

#ifndef TK_PLUGINDIR
#define TK_PLUGINDIR "/usr/local/lib/taskora/plugins"
#endif

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

void tk_loader_search_path(const tk_settings *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", s->plugin_dir ? s->plugin_dir : "", s->plugin_dir ? ":" : "",
             TK_PLUGINDIR);
}

/* Joins dir and name, resolving a relative dir against the config file's folder. 0 if it fits. */
static int join(const tk_settings *s, const char *dir, size_t dirlen, const char *name, char *out,
                size_t outlen)
{
    int n;
    if (dirlen && dir[0] != '/')
        n = snprintf(out, outlen, "%s/%.*s/%s", s->dir, (int)dirlen, dir, name);
    else
        n = snprintf(out, outlen, "%.*s/%s", (int)dirlen, dir, name);
    return n >= 0 && (size_t)n < outlen ? 0 : -1;
}

/* Finds the file for `load`; on failure lists the places tried in `tried`. */
static int resolve(const tk_settings *s, const char *load, char *out, size_t outlen, char *tried,
                   size_t triedlen)
{
    char file[PATH_MAX];
    size_t tlen = 0;
    tried[0] = '\0';
    if (strchr(load, '/')) {
        const char *variants[2] = {load, NULL};
        char withso[PATH_MAX];
        if (!ends_with(load, ".so")) {
            snprintf(withso, sizeof(withso), "%s.so", load);
            variants[1] = withso;
        }
        for (int i = 0; i < 2 && variants[i]; i++) {
            int n = variants[i][0] == '/'
                        ? snprintf(file, sizeof(file), "%s", variants[i])
                        : snprintf(file, sizeof(file), "%s/%s", s->dir, variants[i]);
            if (n > 0 && (size_t)n < sizeof(file) && access(file, F_OK) == 0) {
                snprintf(out, outlen, "%s", file);
                return 0;
            }
            tlen += (size_t)snprintf(tried + tlen, tlen < triedlen ? triedlen - tlen : 0, "%s%s",
                                     tlen ? ", " : "", file);
        }
        return TK_ENOTFOUND;
    }
    char search[PATH_MAX * 2], name[PATH_MAX];
    tk_loader_search_path(s, search, sizeof(search));
    snprintf(name, sizeof(name), "%s%s", load, ends_with(load, ".so") ? "" : ".so");
    const char *p = search;
    while (p) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        if (dlen && join(s, p, dlen, name, file, sizeof(file)) == 0) {
            if (access(file, F_OK) == 0) {
                snprintf(out, outlen, "%s", file);
                return 0;
            }
            tlen += (size_t)snprintf(tried + tlen, tlen < triedlen ? triedlen - tlen : 0, "%s%s",
                                     tlen ? ", " : "", file);
        }
        p = colon ? colon + 1 : NULL;
    }
    return TK_ENOTFOUND;
}

static int is_elf(const char *path)
{
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

/* Loads and checks a plugin file, or finds it among those already loaded. */
static int load_type(tk_loader *l, const char *file, tk_plugin_type **out, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(file, real))
        snprintf(real, sizeof(real), "%s", file);
    for (tk_plugin_type *t = l->types; t; t = t->next) {
        if (strcmp(t->path, real) == 0) {
            *out = t;
            return 0;
        }
    }
    if (!is_elf(real)) {
        snprintf(err, errlen, "%s: not a shared object (no ELF header)", real);
        return TK_EINVAL;
    }
    void *dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        snprintf(err, errlen, "%s: cannot be loaded as a shared object: %s", real, e ? e : "?");
        return TK_EINVAL;
    }
    dlerror();
    void *sym = dlsym(dl, TK_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(err, errlen, "%s: no entry symbol %s() (is it a Taskora plugin?)", real,
                 TK_PLUGIN_ENTRY_SYMBOL);
        dlclose(dl);
        return TK_EINVAL;
    }
    tk_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof(entry)); /* object pointer to function pointer, as POSIX allows */
    const tk_plugin *d = entry();
    const char *why = NULL;
    char buf[256];
    if (!d)
        why = "its entry function returned no descriptor";
    else if (d->abi_major != TK_PLUGIN_ABI_MAJOR) {
        snprintf(buf, sizeof(buf),
                 "built for plugin ABI %u.%u, but this taskorad provides ABI %d.%d; rebuild the "
                 "plugin against this taskorad's taskora/plugin.h",
                 d->abi_major, d->abi_minor, TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);
        why = buf;
    } else if (d->abi_minor > TK_PLUGIN_ABI_MINOR) {
        snprintf(buf, sizeof(buf),
                 "built for plugin ABI %u.%u, newer than this taskorad's ABI %d.%d; upgrade "
                 "taskorad or rebuild the plugin",
                 d->abi_major, d->abi_minor, TK_PLUGIN_ABI_MAJOR, TK_PLUGIN_ABI_MINOR);
        why = buf;
    } else if (d->struct_size < TK_PLUGIN_MIN_STRUCT_SIZE) {
        snprintf(buf, sizeof(buf),
                 "descriptor is %u bytes, smaller than the %zu bytes of an ABI %d.0 descriptor",
                 d->struct_size, (size_t)TK_PLUGIN_MIN_STRUCT_SIZE, TK_PLUGIN_ABI_MAJOR);
        why = buf;
    } else if (!d->name || !*d->name)
        why = "descriptor has no name";
    else if (!d->init)
        why = "descriptor has no init function";
    else if ((d->capabilities & TK_PLUGIN_CAP_AI) && !tk_plugin_ai(d))
        why = "declares the AI capability but has no ai->chat (or was built before ABI 1.3)";
    if (why) {
        snprintf(err, errlen, "%s: %s", real, why);
        dlclose(dl);
        return TK_EINVAL;
    }
    tk_plugin_type *t = calloc(1, sizeof(*t));
    if (!t || !(t->path = strdup(real))) {
        free(t);
        dlclose(dl);
        snprintf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    t->dl = dl;
    t->desc = d;
    t->schema = d->config;
    if (d->config && d->abi_minor < 6 &&
        !(t->schema = t->schema_copy = tk_config_schema_upgrade(d->config))) {
        free(t->path);
        free(t);
        dlclose(dl);
        snprintf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    t->next = l->types;
    l->types = t;
    *out = t;
    return 0;
}

int tk_loader_open(tk_loader *l, const tk_settings *s, tk_runtime *rt, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->rt = rt;
    l->inst = calloc(s->nplugins ? s->nplugins : 1, sizeof(*l->inst));
    if (!l->inst) {
        snprintf(err, errlen, "out of memory");
        return TK_ENOMEM;
    }
    for (size_t i = 0; i < s->nplugins; i++) {
        const tk_plugin_conf *pc = &s->plugins[i];
        char file[PATH_MAX], tried[4096], why[8192];
        if (resolve(s, pc->load, file, sizeof(file), tried, sizeof(tried))) {
            snprintf(err, errlen, "%s: %s.load: plugin \"%s\" not found; looked in: %s", s->path,
                     pc->jpath, pc->load, tried);
            return TK_ENOTFOUND;
        }
        tk_plugin_type *t = NULL;
        int rc = load_type(l, file, &t, why, sizeof(why));
        if (rc) {
            snprintf(err, errlen, "plugin instance \"%s\": %s", pc->name, why);
            return rc;
        }
        tk_instance *inst = calloc(1, sizeof(*inst));
        if (!inst || !(inst->name = strdup(pc->name))) {
            free(inst);
            snprintf(err, errlen, "out of memory");
            return TK_ENOMEM;
        }
        inst->type = t;
        inst->rt = rt;
        inst->config_file = s->path ? s->path : "";
        inst->consume = pc->consume;
        if (pc->consume && !t->desc->consume && !tk_plugin_consume_batch(t->desc)) {
            snprintf(err, errlen, "%s: %s.consume: plugin %s has no consume handler", s->path,
                     pc->jpath, t->desc->name);
            l->inst[l->n++] = inst;
            return TK_EINVAL;
        }
        l->inst[l->n++] = inst;
        char jpath[64];
        snprintf(jpath, sizeof(jpath), "%s.config", pc->jpath);
        inst->config = pc->config ? json_deep_copy(pc->config) : NULL;
        if (pc->config && !inst->config) {
            snprintf(err, errlen, "out of memory");
            return TK_ENOMEM;
        }
        if (!t->schema && inst->config && json_object_size(inst->config) > 0) {
            snprintf(err, errlen, "%s: %s: plugin %s takes no configuration", s->path, jpath,
                     t->desc->name);
            return TK_EINVAL;
        }
        static const tk_config_field none[] = {{0}};
        if (tk_config_validate(&inst->config, t->schema ? t->schema : none, jpath, why,
                               sizeof(why))) {
            snprintf(err, errlen, "%s: %s", s->path, why);
            return TK_EINVAL;
        }
        tk_check_fn check = tk_plugin_check(t->desc);
        why[0] = '\0';
        if (check && (rc = check(tk_host_table(), inst, why, sizeof(why))) < 0) {
            snprintf(err, errlen, "%s: %s: plugin instance \"%s\": %s", s->path, pc->jpath,
                     pc->name, why[0] ? why : tk_strerror(rc));
            return rc;
        }
    }
    return 0;
}

void tk_loader_reload(tk_loader *l)
{
    for (size_t i = 0; i < l->n; i++) {
        tk_instance *inst = l->inst[i];
        tk_reload_fn reload = tk_plugin_reload(inst->type->desc);
        if (inst->started && reload) {
            tk_logf(inst->name, TK_LOG_INFO, "reloading (SIGHUP)");
            reload(inst->state);
        }
    }
}

int tk_loader_init(tk_loader *l, char *err, size_t errlen)
{
    const tk_host *host = tk_host_table();
    l->rt->in_init = 1;
    for (size_t i = 0; i < l->n; i++) {
        tk_instance *inst = l->inst[i];
        const tk_plugin *d = inst->type->desc;
        tk_logf(inst->name, TK_LOG_DEBUG, "init (%s %s)", d->name, d->version ? d->version : "");
        int rc = d->init(host, inst, &inst->state);
        if (rc < 0) {
            snprintf(err, errlen, "plugin instance \"%s\" (%s): init failed: %s", inst->name,
                     inst->type->path, tk_strerror(rc));
            l->rt->in_init = 0;
            tk_loader_destroy(l);
            return rc;
        }
        inst->initialized = 1;
    }
    l->rt->in_init = 0;
    return 0;
}

int tk_loader_start(tk_loader *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        tk_instance *inst = l->inst[i];
        const tk_plugin *d = inst->type->desc;
        int rc = d->start ? d->start(inst->state) : 0;
        if (rc < 0) {
            snprintf(err, errlen, "plugin instance \"%s\" (%s): start failed: %s", inst->name,
                     inst->type->path, tk_strerror(rc));
            tk_loader_stop(l);
            return rc;
        }
        inst->started = 1;
        tk_logf(inst->name, TK_LOG_INFO, "started (%s %s)", d->name, d->version ? d->version : "");
    }
    return 0;
}

void tk_loader_stop(tk_loader *l)
{
    for (size_t i = l->n; i-- > 0;) {
        tk_instance *inst = l->inst[i];
        if (!inst->started)
            continue;
        tk_logf(inst->name, TK_LOG_INFO, "stopping");
        if (inst->type->desc->stop)
            inst->type->desc->stop(inst->state);
        inst->started = 0;
    }
}

void tk_loader_destroy(tk_loader *l)
{
    for (size_t i = l->n; i-- > 0;) {
        tk_instance *inst = l->inst[i];
        if (!inst->initialized)
            continue;
        tk_logf(inst->name, TK_LOG_DEBUG, "destroy");
        if (inst->type->desc->destroy)
            inst->type->desc->destroy(inst->state);
        inst->initialized = 0;
        inst->state = NULL;
    }
}

void tk_loader_close(tk_loader *l)
{
    for (size_t i = 0; i < l->n; i++) {
        tk_instance_free_metrics(l->inst[i]);
        json_decref(l->inst[i]->config);
        free(l->inst[i]->name);
        free(l->inst[i]);
    }
    free(l->inst);
    while (l->types) {
        tk_plugin_type *t = l->types;
        l->types = t->next;
        dlclose(t->dl);
        tk_config_schema_free(t->schema_copy);
        free(t->path);
        free(t);
    }
    memset(l, 0, sizeof(*l));
}

tk_instance *tk_loader_find(tk_loader *l, const char *name)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (strcmp(l->inst[i]->name, name) == 0)
            return l->inst[i];
    return NULL;
}
