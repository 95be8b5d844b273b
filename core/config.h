/* Configuration files: JSON parsing with positions, ${VAR} substitution, schema validation. */
#ifndef TK_CORE_CONFIG_H
#define TK_CORE_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "taskora/plugin.h"

/* Parses a JSON file. On error returns NULL and writes "FILE:LINE:COL: reason" to err. */
json_t *tk_config_parse_file(const char *path, char *err, size_t errlen);

/*
 * Replaces ${VAR} and ${VAR:-default} in every string of `root` from the
 * environment ($${ stays a literal ${). An unset ${VAR} without default is
 * an error naming the JSON path and the variable. Returns 0 or TK_EINVAL.
 */
int tk_config_subst_env(json_t *root, char *err, size_t errlen);

/* Substitutes one string. *out is malloc'd. On a missing variable, its name goes to var. */
int tk_config_subst_string(const char *in, char **out, char *var, size_t varlen);

/*
 * A schema of a plugin built for ABI 1.5 or older (whose tk_config_field has no range
 * members) copied to this layout, children too. NULL when out of memory.
 */
tk_config_field *tk_config_schema_upgrade(const void *old_schema);
void tk_config_schema_free(tk_config_field *schema);

/*
 * Validates the object at *slot (created when NULL) against `schema`:
 * unknown keys, missing required keys, wrong types, values outside choices
 * or ranges are errors "PATH: reason" (TK_EINVAL), memory running out is
 * "PATH: out of memory" (TK_ENOMEM). Fills defaults and converts strings to
 * the declared type. `path` names the object for messages ("" at the top).
 */
int tk_config_validate(json_t **slot, const tk_config_field *schema, const char *path, char *err,
                       size_t errlen);

/* The value at a dotted path ("http.listen") below obj, or NULL. Borrowed. */
json_t *tk_config_get(json_t *obj, const char *dotted);

/* Describes a JSON value's type for messages ("a string", "an integer", ...). */
const char *tk_config_json_kind(const json_t *v);

/*
 * Did a failed jansson call fail for want of memory? `je`: the error it
 * filled, or NULL when it fills none. (The parser says so only sometimes:
 * memory running out inside a token reads as a syntax error.)
 */
int tk_config_json_no_memory(const json_error_t *je);

#endif
