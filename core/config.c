/* Configuration files: JSON parsing with positions, ${VAR} substitution, schema validation. */
#include "config.h"

#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tk_config_json_no_memory(const json_error_t *je)
{
    if (je && (json_error_code(je) == json_error_out_of_memory || je->line < 0))
        return 1;
    /* when the parser blames the text instead, see whether anything can be allocated */
    json_t *probe = json_object();
    json_decref(probe);
    return probe == NULL;
}

json_t *tk_config_parse_file(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!root && tk_config_json_no_memory(&je)) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: syntax error: %s", path, je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s:1:1: the top level must be a JSON object, not %s", path,
                 tk_config_json_kind(root));
        json_decref(root);
        return NULL;
    }
    return root;
}

const char *tk_config_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Expands the reference ${...} that starts at p and ends at end ('}'). */
static int subst_ref(tk_buf *b, const char *p, const char *end, char *var, size_t varlen)
{
    const char *name = p + 2, *dflt = NULL;
    size_t nlen = (size_t)(end - name);
    const char *sep = strstr(name, ":-");
    if (sep && sep < end) {
        nlen = (size_t)(sep - name);
        dflt = sep + 2;
    }
    char vname[256];
    if (nlen == 0 || nlen >= sizeof(vname)) {
        snprintf(var, varlen, "%.*s", (int)(end - p + 1), p);
        return TK_EINVAL;
    }
    memcpy(vname, name, nlen);
    vname[nlen] = '\0';
    const char *val = getenv(vname);
    /* like the shell's ${VAR:-default}: an empty variable takes the default */
    if (val && (*val || !dflt))
        return tk_buf_put(b, val, strlen(val));
    if (dflt)
        return tk_buf_put(b, dflt, (size_t)(end - dflt));
    snprintf(var, varlen, "%s", vname);
    return TK_ENOTFOUND;
}

int tk_config_subst_string(const char *in, char **out, char *var, size_t varlen)
{
    tk_buf b = {0};
    int rc = tk_buf_put(&b, "", 0);
    const char *p = in;
    while (rc == 0 && *p) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            rc = tk_buf_put(&b, "${", 2);
            p += 3;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (!end) {
                snprintf(var, varlen, "%s", p);
                rc = TK_EINVAL;
                break;
            }
            rc = subst_ref(&b, p, end, var, varlen);
            p = end + 1;
        } else {
            rc = tk_buf_put(&b, p, 1);
            p++;
        }
    }
    if (rc) {
        tk_buf_free(&b);
        return rc;
    }
    *out = b.p;
    return 0;
}

static int subst_walk(json_t *v, char *path, size_t pathcap, char *err, size_t errlen)
{
    size_t base = strlen(path);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strchr(s, '$'))
            return 0;
        char *out = NULL, var[256];
        int rc = tk_config_subst_string(s, &out, var, sizeof(var));
        if (rc == TK_ENOTFOUND) {
            snprintf(err, errlen,
                     "%s: environment variable %s is not set (set it, or write ${%s:-default})",
                     path, var, var);
            return TK_EINVAL;
        }
        if (rc == TK_EINVAL) {
            snprintf(err, errlen,
                     "%s: bad variable reference \"%s\" (expected ${NAME} or ${NAME:-default})",
                     path, var);
            return TK_EINVAL;
        }
        if (rc < 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            return rc;
        }
        rc = json_string_set(v, out);
        if (rc != 0) {
            int nomem = tk_config_json_no_memory(NULL);
            snprintf(err, errlen, "%s: %s", path,
                     nomem ? "out of memory" : "the substituted value is not valid UTF-8");
            rc = nomem ? TK_ENOMEM : TK_EINVAL;
        }
        free(out);
        return rc;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach(v, k, child)
        {
            snprintf(path + base, pathcap - base, "%s%s", base ? "." : "", k);
            int rc = subst_walk(child, path, pathcap, err, errlen);
            path[base] = '\0';
            if (rc)
                return rc;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            snprintf(path + base, pathcap - base, "[%zu]", i);
            int rc = subst_walk(child, path, pathcap, err, errlen);
            path[base] = '\0';
            if (rc)
                return rc;
        }
    }
    return 0;
}

int tk_config_subst_env(json_t *root, char *err, size_t errlen)
{
    char path[1024] = "";
    return subst_walk(root, path, sizeof(path), err, errlen);
}

static const char *type_name(tk_config_type t)
{
    switch (t) {
    case TK_CFG_STRING: return "a string";
    case TK_CFG_INT: return "an integer";
    case TK_CFG_BOOL: return "a boolean";
    case TK_CFG_DOUBLE: return "a number";
    case TK_CFG_STRING_LIST: return "a list of strings";
    case TK_CFG_OBJECT: return "an object";
    default: return "any JSON value";
    }
}

static int in_choices(const char *choices, const char *s)
{
    size_t n = strlen(s);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* Converts *slot to the field's type where a string spells it; 0, -1 if impossible, or
 * TK_ENOMEM. */
static int coerce(json_t **slot, tk_config_type t)
{
    json_t *v = *slot;
    json_t *nv = NULL;
    int spelled = 0; /* the text spells a value of the type: NULL means out of memory */
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (t == TK_CFG_INT && *s) {
            errno = 0;
            long long x = strtoll(s, &end, 10);
            if ((spelled = *end == '\0' && errno == 0))
                nv = json_integer(x);
        } else if (t == TK_CFG_DOUBLE && *s) {
            double x = strtod(s, &end);
            if ((spelled = *end == '\0'))
                nv = json_real(x);
        } else if (t == TK_CFG_BOOL) {
            if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
                nv = json_true();
            else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
                nv = json_false();
        } else if (t == TK_CFG_STRING_LIST) {
            /* "a,b,c" (typically from one environment variable) becomes a list */
            spelled = 1;
            nv = json_array();
            const char *p = s;
            while (nv && *p) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                while (len && (*p == ' ')) {
                    p++;
                    len--;
                }
                while (len && p[len - 1] == ' ')
                    len--;
                if (len && json_array_append_new(nv, json_stringn(p, len))) {
                    json_decref(nv);
                    return TK_ENOMEM;
                }
                if (!comma)
                    break;
                p = comma + 1;
            }
        }
    } else if (json_is_integer(v) && t == TK_CFG_DOUBLE) {
        spelled = 1;
        nv = json_real((double)json_integer_value(v));
    }
    if (!nv)
        return spelled ? TK_ENOMEM : -1;
    json_decref(*slot);
    *slot = nv;
    return 0;
}

static int type_ok(const json_t *v, tk_config_type t)
{
    switch (t) {
    case TK_CFG_STRING: return json_is_string(v);
    case TK_CFG_INT: return json_is_integer(v);
    case TK_CFG_BOOL: return json_is_boolean(v);
    case TK_CFG_DOUBLE: return json_is_real(v);
    case TK_CFG_OBJECT: return json_is_object(v);
    case TK_CFG_STRING_LIST: {
        if (!json_is_array(v))
            return 0;
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it) if (!json_is_string(it)) return 0;
        return 1;
    }
    default: return 1;
    }
}

static void known_keys(const tk_config_field *schema, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const tk_config_field *f = schema; f && f->name && n < len; f++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", f->name);
    if (n == 0)
        snprintf(buf, len, "none");
}

static int out_of_memory(const char *path, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: out of memory", *path ? path : "(top level)");
    return TK_ENOMEM;
}

/* The first key of obj the schema does not know: an error listing the known ones. */
static int check_keys(json_t *obj, const tk_config_field *schema, const char *path, char *err,
                      size_t errlen)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        const tk_config_field *f = schema;
        while (f && f->name && strcmp(f->name, key) != 0)
            f++;
        if (!f || !f->name) {
            char keys[512];
            known_keys(schema, keys, sizeof(keys));
            snprintf(err, errlen, "%s%s%s: unknown key (known keys: %s)", path, *path ? "." : "",
                     key, keys);
            return TK_EINVAL;
        }
    }
    return 0;
}

/* A key absent from obj (or null): an error when required, else its default put in. 1 when it
 * stays absent (no default), 0 when it is there now, or a negative code. */
static int fill_default(json_t *obj, const tk_config_field *f, const char *sub, char *err,
                        size_t errlen)
{
    if (f->required) {
        snprintf(err, errlen, "%s: required key is missing (%s)", sub, type_name(f->type));
        return TK_EINVAL;
    }
    json_t *d = NULL;
    if (f->default_json) {
        json_error_t je;
        d = json_loads(f->default_json, JSON_DECODE_ANY, &je);
        if (!d && tk_config_json_no_memory(&je))
            return out_of_memory(sub, err, errlen);
        if (!d) {
            snprintf(err, errlen, "%s: the schema's default is not valid JSON: %s", sub, je.text);
            return TK_EINVAL;
        }
    } else if (f->type == TK_CFG_OBJECT) {
        d = json_object();
    } else {
        json_object_del(obj, f->name);
        return 1;
    }
    return json_object_set_new(obj, f->name, d) ? out_of_memory(sub, err, errlen) : 0;
}

/* The value of a present key: its type (strings converted), choices, range, children. */
static int check_value(json_t *obj, const tk_config_field *f, const char *sub, char *err,
                       size_t errlen)
{
    json_t *v = json_object_get(obj, f->name);
    if (!type_ok(v, f->type)) {
        json_t *c = json_incref(v);
        int rc = coerce(&c, f->type);
        if (rc != 0)
            json_decref(c);
        if (rc == TK_ENOMEM)
            return out_of_memory(sub, err, errlen);
        if (rc != 0 && json_is_string(v))
            snprintf(err, errlen, "%s: expected %s, got the string \"%.80s\"", sub,
                     type_name(f->type), json_string_value(v));
        else if (rc != 0)
            snprintf(err, errlen, "%s: expected %s, got %s", sub, type_name(f->type),
                     tk_config_json_kind(v));
        if (rc != 0)
            return TK_EINVAL;
        if (json_object_set_new(obj, f->name, c))
            return out_of_memory(sub, err, errlen);
        v = c;
    }
    if (f->type == TK_CFG_STRING && f->choices && !in_choices(f->choices, json_string_value(v))) {
        snprintf(err, errlen, "%s: \"%.80s\" is not one of %s", sub, json_string_value(v),
                 f->choices);
        return TK_EINVAL;
    }
    if (f->has_range && (f->type == TK_CFG_INT || f->type == TK_CFG_DOUBLE) &&
        !(json_number_value(v) >= f->min && json_number_value(v) <= f->max)) {
        if (f->type == TK_CFG_INT)
            snprintf(err, errlen, "%s: %lld is outside %.0f..%.0f", sub,
                     (long long)json_integer_value(v), f->min, f->max);
        else
            snprintf(err, errlen, "%s: %g is outside %g..%g", sub, json_number_value(v), f->min,
                     f->max);
        return TK_EINVAL;
    }
    if (f->type == TK_CFG_OBJECT && f->children) {
        json_t *child = json_incref(v);
        int rc = tk_config_validate(&child, f->children, sub, err, errlen);
        if (rc == 0 && json_object_set(obj, f->name, child))
            rc = out_of_memory(sub, err, errlen);
        json_decref(child);
        return rc;
    }
    return 0;
}

int tk_config_validate(json_t **slot, const tk_config_field *schema, const char *path, char *err,
                       size_t errlen)
{
    if (!*slot || json_is_null(*slot)) {
        json_decref(*slot);
        *slot = json_object();
        if (!*slot)
            return out_of_memory(path, err, errlen);
    }
    json_t *obj = *slot;
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "%s: expected an object, got %s", *path ? path : "(top level)",
                 tk_config_json_kind(obj));
        return TK_EINVAL;
    }
    int rc = check_keys(obj, schema, path, err, errlen);
    for (const tk_config_field *f = schema; rc == 0 && f && f->name; f++) {
        char sub[1024];
        snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", f->name);
        json_t *v = json_object_get(obj, f->name);
        if (!v || json_is_null(v)) {
            rc = fill_default(obj, f, sub, err, errlen);
            if (rc == 1) {
                rc = 0;
                continue;
            }
        }
        if (rc == 0)
            rc = check_value(obj, f, sub, err, errlen);
    }
    return rc;
}

/* tk_config_field as plugins built for ABI 1.0 to 1.5 lay it out. */
typedef struct config_field_1_0 {
    const char *name;
    tk_config_type type;
    int required;
    const char *default_json;
    const char *choices;
    const char *description;
    const struct config_field_1_0 *children;
} config_field_1_0;

tk_config_field *tk_config_schema_upgrade(const void *old_schema)
{
    const config_field_1_0 *old = old_schema;
    size_t n = 0;
    while (old[n].name)
        n++;
    tk_config_field *f = calloc(n + 1, sizeof(*f));
    if (!f)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        f[i] = (tk_config_field){.name = old[i].name,
                                 .type = old[i].type,
                                 .required = old[i].required,
                                 .default_json = old[i].default_json,
                                 .choices = old[i].choices,
                                 .description = old[i].description};
        if (old[i].children && !(f[i].children = tk_config_schema_upgrade(old[i].children))) {
            tk_config_schema_free(f);
            return NULL;
        }
    }
    return f;
}

void tk_config_schema_free(tk_config_field *schema)
{
    for (tk_config_field *f = schema; f && f->name; f++)
        tk_config_schema_free((tk_config_field *)f->children);
    free(schema);
}

json_t *tk_config_get(json_t *obj, const char *dotted)
{
    char key[256];
    const char *p = dotted;
    while (obj && p && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        obj = json_is_object(obj) ? json_object_get(obj, key) : NULL;
        p = dot ? dot + 1 : NULL;
    }
    return obj;
}
