/*
 * What a script sees: the event table and the `taskora` table (db, emit, json, log, metrics;
 * http is in lua_http.c). Every function reaches its state through upvalue 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <libpq-fe.h>

#include "luap.h"

#define MAX_PARAMS 64

static lp_state *state_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

void lp_check_abort(lua_State *L, lp_state *st)
{
    if (!st->aborted && !st->duplicate)
        return;
    lua_pushstring(L, st->abort_msg);
    lua_error(L);
}

/* ---- the event's transaction ------------------------------------------- */

static int exec_simple(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "%s", PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -1;
}

/* The event's connection, in a transaction that has recorded the event as processed. */
static PGconn *event_tx(lua_State *L, lp_state *st)
{
    if (st->pg)
        return st->li->host->pg_conn(st->pg);
    if (st->mode != LP_RUN || !st->ev)
        luaL_error(L, "taskora.db and taskora.emit are only available inside handle(event)");
    const tk_host *h = st->li->host;
    int64_t left_ms = (st->deadline_ns - lp_now_ns()) / 1000000;
    if (left_ms < 1)
        left_ms = 1;
    int rc = h->pg_acquire(st->li->inst, (int)(left_ms < 5000 ? left_ms : 5000), &st->pg);
    if (rc != TK_OK) {
        st->pg = NULL;
        luaL_error(L, "the database is unavailable: %s", tk_strerror(rc));
    }
    PGconn *c = h->pg_conn(st->pg);
    char sql[96], err[512] = "";
    snprintf(sql, sizeof(sql), "SET LOCAL statement_timeout = %lld", (long long)left_ms);
    if (exec_simple(c, "BEGIN", err, sizeof(err)) || exec_simple(c, sql, err, sizeof(err)))
        luaL_error(L, "the database: %s", err);
    if (st->ev->id && st->ev->group) {
        const char *ids[] = {st->ev->id};
        int fresh = 0;
        rc = h->pg_mark_processed(st->li->inst, c, st->ev->group, ids, 1, &fresh);
        if (rc != TK_OK)
            luaL_error(L, "recording the event as processed: %s", PQerrorMessage(c));
        if (!fresh) {
            st->duplicate = 1;
            snprintf(st->abort_msg, sizeof(st->abort_msg), "event %s was applied before",
                     st->ev->id);
            lua_pushstring(L, st->abort_msg);
            lua_error(L);
        }
    }
    return c;
}

int lp_tx_end(lp_state *st, int commit, char *err, size_t errlen)
{
    if (!st->pg)
        return 0;
    PGconn *c = st->li->host->pg_conn(st->pg);
    int rc = 0;
    if (commit && PQtransactionStatus(c) != PQTRANS_INTRANS) {
        snprintf(err, errlen, "a statement of the event's transaction failed; rolled back");
        rc = -1;
    } else if (commit) {
        PGresult *r = PQexec(c, "COMMIT");
        /* a COMMIT of a failed transaction answers ROLLBACK */
        if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
            snprintf(err, errlen, "commit failed: %s", PQerrorMessage(c));
            rc = -1;
        }
        PQclear(r);
    }
    st->li->host->pg_release(st->pg); /* rolls back what is still open */
    st->pg = NULL;
    return rc;
}

/* ---- taskora.db -------------------------------------------------------- */

/* Runs sql with the parameters from stack index 2 on. */
static PGresult *run_sql(lua_State *L, lp_state *st, const char *what)
{
    const char *sql = luaL_checkstring(L, 1);
    int n = lua_gettop(L) - 1;
    if (n > MAX_PARAMS)
        luaL_error(L, "%s: at most %d parameters", what, MAX_PARAMS);
    /* first: it raises (a duplicate event, no database), and nothing malloc'd may be held then */
    PGconn *c = event_tx(L, st);
    const char *vals[MAX_PARAMS];
    char *owned[MAX_PARAMS] = {0};
    char err[256];
    for (int i = 0; i < n; i++) {
        int idx = i + 2;
        vals[i] = NULL;
        switch (lua_type(L, idx)) {
        case LUA_TNIL: break;
        case LUA_TBOOLEAN: vals[i] = lua_toboolean(L, idx) ? "true" : "false"; break;
        case LUA_TNUMBER:
        case LUA_TSTRING: vals[i] = lua_tostring(L, idx); break;
        case LUA_TLIGHTUSERDATA:
            if (!lua_touserdata(L, idx))
                break; /* taskora.null */
            /* fall through */
        default:
            if (!(owned[i] = lp_json_encode(L, idx, err, sizeof(err)))) {
                for (int k = 0; k < i; k++)
                    free(owned[k]);
                luaL_error(L, "%s: parameter %d: %s", what, i + 1, err);
            }
            vals[i] = owned[i];
        }
    }
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    for (int i = 0; i < n; i++)
        free(owned[i]);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        PQclear(r);
        size_t len = strlen(msg);
        while (len && msg[len - 1] == '\n')
            msg[--len] = '\0';
        luaL_error(L, "%s: %s", what, msg);
    }
    return r;
}

static int db_exec(lua_State *L)
{
    PGresult *r = run_sql(L, state_of(L), "taskora.db.exec");
    const char *n = PQcmdTuples(r);
    lua_pushnumber(L, *n ? atof(n) : 0);
    PQclear(r);
    return 1;
}

/* One value of a result, typed by its column's type (OIDs of the built-in types). */
static void push_cell(lua_State *L, PGresult *r, int row, int col)
{
    const char *v = PQgetvalue(r, row, col);
    switch (PQftype(r, col)) {
    case 16: lua_pushboolean(L, v[0] == 't'); break; /* bool */
    case 20:
    case 21:
    case 23:
    case 26: /* int8, int2, int4, oid */
    case 700:
    case 701:
    case 1700: /* float4, float8, numeric */ lua_pushnumber(L, atof(v)); break;
    default: lua_pushlstring(L, v, (size_t)PQgetlength(r, row, col));
    }
}

static int db_query(lua_State *L)
{
    PGresult *r = run_sql(L, state_of(L), "taskora.db.query");
    int rows = PQntuples(r), cols = PQnfields(r);
    lua_createtable(L, rows, 0);
    for (int i = 0; i < rows; i++) {
        lua_createtable(L, 0, cols);
        for (int j = 0; j < cols; j++) {
            if (PQgetisnull(r, i, j))
                continue;
            push_cell(L, r, i, j);
            lua_setfield(L, -2, PQfname(r, j));
        }
        lua_rawseti(L, -2, i + 1);
    }
    PQclear(r);
    return 1;
}

/* ---- taskora.emit ------------------------------------------------------- */

static int emit(lua_State *L)
{
    lp_state *st = state_of(L);
    const char *topic = luaL_checkstring(L, 1);
    const char *type = luaL_checkstring(L, 2);
    const char *user = luaL_checkstring(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    PGconn *c = event_tx(L, st); /* before the payload is malloc'd: it may raise */
    char err[256], id[40] = "";
    char *payload = lp_json_encode(L, 4, err, sizeof(err));
    if (!payload)
        return luaL_error(L, "taskora.emit: payload: %s", err);
    if (payload[0] != '{') {
        free(payload);
        return luaL_error(L, "taskora.emit: the payload must be a table with named fields");
    }
    int rc =
        st->li->host->outbox_append(st->li->inst, c, topic, type, user, NULL, payload, NULL, id);
    free(payload);
    if (rc != TK_OK)
        return luaL_error(L, "taskora.emit: %s", tk_strerror(rc));
    lua_pushstring(L, id);
    return 1;
}

/* ---- taskora.log -------------------------------------------------------- */

static int log_at(lua_State *L, tk_log_level level)
{
    lp_state *st = state_of(L);
    const char *msg = luaL_checkstring(L, 1);
    const char *kv[16] = {0};
    int n = 0;
    if (lua_type(L, 2) == LUA_TTABLE) {
        /* the fields as strings, kept in a table on the stack while they are logged */
        lua_settop(L, 2);
        lua_newtable(L);
        lua_getglobal(L, "tostring");
        lua_pushnil(L);
        while (n < 14 && lua_next(L, 2)) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                lua_pushvalue(L, -2);
                lua_rawseti(L, 3, ++n);
                lua_pushvalue(L, 4);
                lua_pushvalue(L, -2);
                lua_call(L, 1, 1);
                lua_rawseti(L, 3, ++n);
            }
            lua_pop(L, 1);
        }
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, 3, i + 1);
            kv[i] = lua_tostring(L, -1);
        }
    }
    st->li->host->log_kv(st->li->inst, level, msg, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], kv[6],
                         kv[7], kv[8], kv[9], kv[10], kv[11], kv[12], kv[13], NULL);
    return 0;
}

static int log_debug(lua_State *L) { return log_at(L, TK_LOG_DEBUG); }
static int log_info(lua_State *L) { return log_at(L, TK_LOG_INFO); }
static int log_warn(lua_State *L) { return log_at(L, TK_LOG_WARN); }
static int log_error(lua_State *L) { return log_at(L, TK_LOG_ERROR); }

/* ---- taskora.metrics ---------------------------------------------------- */

/* A label the counter was not declared with is an error, not a value silently dropped. */
static void check_labels(lua_State *L, const lp_counter *c)
{
    if (lua_type(L, 2) != LUA_TTABLE)
        return;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int known = 0;
        for (size_t j = 0; k && j < c->nlabels && !known; j++)
            known = strcmp(c->labels[j], k) == 0;
        if (!known)
            luaL_error(L,
                       "counter %s has no label %s: declare its labels when making it, "
                       "taskora.metrics.counter(name, help, {\"label\", ...})",
                       c->name, k ? k : "(not a string)");
    }
}

/* counter:inc({label = value}, amount) */
static int counter_inc(lua_State *L)
{
    lp_state *st = state_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "_index");
    int i = (int)lua_tonumber(L, -1);
    lua_pop(L, 1);
    double amount = luaL_optnumber(L, 3, 1);
    if (amount < 0)
        return luaL_error(L, "counter:inc: a counter only goes up");
    if (i < 0 || (size_t)i >= st->li->ncounters)
        return 0; /* a state made to check the script counts nothing */
    lp_counter *c = &st->li->counters[i];
    check_labels(L, c);
    const char *vals[LP_MAX_LABELS] = {0};
    for (size_t k = 0; k < c->nlabels; k++) {
        vals[k] = "";
        if (lua_type(L, 2) == LUA_TTABLE) {
            lua_getfield(L, 2, c->labels[k]);
            if (!lua_isnil(L, -1))
                vals[k] = lua_tostring(L, -1) ? lua_tostring(L, -1) : "";
        }
    }
    st->li->host->metric_add(c->m, c->nlabels ? vals : NULL, amount);
    return 0;
}

/* Finds (or, in init, registers) the counter; its index, or -1 for a checking state. */
static int find_counter(lua_State *L, lp_state *st, const char *name, const char *help)
{
    lp_instance *li = st->li;
    for (size_t i = 0; i < li->ncounters; i++)
        if (strcmp(li->counters[i].name, name) == 0)
            return (int)i;
    if (st->mode == LP_CHECK)
        return -1;
    if (st->mode != LP_INIT)
        return luaL_error(L,
                          "counter %s was not there when the instance started; counters "
                          "are added by a restart, not a reload",
                          name);
    if (li->ncounters == LP_MAX_COUNTERS || strlen(name) >= sizeof(li->counters[0].name))
        return luaL_error(L, "at most %d counters, names of at most 127 characters",
                          LP_MAX_COUNTERS);
    lp_counter *c = &li->counters[li->ncounters];
    const char *labels[LP_MAX_LABELS + 1] = {0};
    c->nlabels = 0;
    if (lua_type(L, 3) == LUA_TTABLE) {
        for (int k = 1; c->nlabels < LP_MAX_LABELS; k++) {
            lua_rawgeti(L, 3, k);
            const char *l = lua_tostring(L, -1);
            lua_pop(L, 1);
            if (!l)
                break;
            snprintf(c->labels[c->nlabels], sizeof(c->labels[0]), "%s", l);
            labels[c->nlabels] = c->labels[c->nlabels];
            c->nlabels++;
        }
    }
    c->m = li->host->metric_counter(li->inst, name, help, labels);
    if (!c->m)
        return luaL_error(L, "taskora.metrics.counter: %s was refused (see the log)", name);
    snprintf(c->name, sizeof(c->name), "%s", name);
    return (int)li->ncounters++;
}

static int metrics_counter(lua_State *L)
{
    lp_state *st = state_of(L);
    const char *name = luaL_checkstring(L, 1);
    const char *help = luaL_optstring(L, 2, name);
    int i = find_counter(L, st, name, help);
    lua_newtable(L);
    lua_pushnumber(L, i);
    lua_setfield(L, -2, "_index");
    lua_pushlightuserdata(L, st);
    lua_pushcclosure(L, counter_inc, 1);
    lua_setfield(L, -2, "inc");
    return 1;
}

/* ---- the event ---------------------------------------------------------- */

/* event.payload and event.data, decoded when first read, and only during their event. */
static int event_index(lua_State *L)
{
    lp_state *st = state_of(L);
    const char *k = lua_tostring(L, 2);
    lua_getfield(L, 1, "_seq");
    unsigned seq = (unsigned)lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!k || !st->ev || seq != st->seq)
        return 0;
    const char *text = strcmp(k, "payload") == 0 ? st->ev->payload
                       : strcmp(k, "data") == 0  ? st->ev->data
                                                 : NULL;
    if (!text)
        return 0;
    char err[256];
    if (lp_json_push(L, text, strlen(text), err, sizeof(err)))
        return luaL_error(L, "event.%s: %s", k, err);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, k);
    return 1;
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

void lp_push_event(lp_state *st)
{
    lua_State *L = st->L;
    const tk_event *ev = st->ev;
    lua_createtable(L, 0, 16);
    set_str(L, "id", ev->id);
    set_str(L, "type", ev->type);
    set_str(L, "source", ev->source);
    set_str(L, "subject", ev->subject);
    set_str(L, "user_id", ev->user_id);
    set_str(L, "time", ev->time);
    set_str(L, "traceparent", ev->traceparent);
    set_str(L, "topic", ev->topic);
    set_str(L, "group", ev->group);
    lua_pushnumber(L, ev->attempt);
    lua_setfield(L, -2, "attempt");
    lua_pushnumber(L, ev->partition);
    lua_setfield(L, -2, "partition");
    lua_pushnumber(L, (lua_Number)ev->offset);
    lua_setfield(L, -2, "offset");
    lua_pushnumber(L, st->seq);
    lua_setfield(L, -2, "_seq");
    lua_getfield(L, LUA_REGISTRYINDEX, "taskora.event_mt");
    lua_setmetatable(L, -2);
}

/* ---- the taskora table --------------------------------------------------- */

static void set_fns(lua_State *L, lp_state *st, const luaL_Reg *fns)
{
    for (; fns->name; fns++) {
        lua_pushlightuserdata(L, st);
        lua_pushcclosure(L, fns->func, 1);
        lua_setfield(L, -2, fns->name);
    }
}

void lp_push_api(lp_state *st)
{
    lua_State *L = st->L;
    lp_instance *li = st->li;
    lua_newtable(L); /* the events' shared metatable */
    lua_pushlightuserdata(L, st);
    lua_pushcclosure(L, event_index, 1);
    lua_setfield(L, -2, "__index");
    lua_setfield(L, LUA_REGISTRYINDEX, "taskora.event_mt");

    lua_newtable(L);
    lua_pushstring(L, li->host->instance_name(li->inst));
    lua_setfield(L, -2, "instance");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    char err[256];
    const char *settings = li->settings_json ? li->settings_json : "{}";
    if (lp_json_push(L, settings, strlen(settings), err, sizeof(err)))
        lua_newtable(L);
    lua_setfield(L, -2, "settings");
    static const luaL_Reg top[] = {{"emit", emit}, {NULL, NULL}};
    set_fns(L, st, top);
    static const luaL_Reg db[] = {{"exec", db_exec}, {"query", db_query}, {NULL, NULL}};
    static const luaL_Reg log[] = {{"debug", log_debug},
                                   {"info", log_info},
                                   {"warn", log_warn},
                                   {"error", log_error},
                                   {NULL, NULL}};
    static const luaL_Reg metrics[] = {{"counter", metrics_counter}, {NULL, NULL}};
    static const luaL_Reg http[] = {{"request", lp_http_request}, {NULL, NULL}};
    static const luaL_Reg json[] = {
        {"encode", lp_json_encode_fn}, {"decode", lp_json_decode_fn}, {NULL, NULL}};
    const struct {
        const char *name;
        const luaL_Reg *fns;
    } subs[] = {{"db", db}, {"log", log}, {"metrics", metrics}, {"http", http}, {"json", json}};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        lua_newtable(L);
        set_fns(L, st, subs[i].fns);
        lua_setfield(L, -2, subs[i].name);
    }
}
