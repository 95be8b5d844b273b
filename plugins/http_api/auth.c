/*
 * Authentication: a request's token checked (jwt.c) and its standing in PostgreSQL, password
 * hashes (bcrypt from libcrypt over the SHA-256 hex digest of the password, the existing
 * service's scheme), and the /api/auth routes.
 */
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "jwt.h"
#include "limits.h"

static int unauthorized(api *a, tk_http_response *resp, const char *detail)
{
    a->host->http_set_header(resp, "WWW-Authenticate", "Bearer");
    return api_error(a, resp, 401, detail);
}

#define STANDING_STMT "taskora_token_standing"
#define STANDING_SQL                                                                               \
    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1::int),"                                      \
    " EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2)"

/*
 * Runs the standing query as a statement prepared on this connection (it runs on every
 * request: parsed and planned once per connection, not each time). A connection that does not
 * have it yet (new, or reset behind us) prepares it and runs it again.
 */
static PGresult *standing_query(api *a, PGconn *conn, const char *const p[2])
{
    PGresult *res = PQexecPrepared(conn, STANDING_STMT, 2, p, NULL, NULL, 0);
    if (api_ok(res) || strcmp(api_sqlstate(res), "26000") != 0) /* 26000: no such statement */
        return res;
    PQclear(res);
    res = PQprepare(conn, STANDING_STMT, STANDING_SQL, 2, NULL);
    int ok = api_ok(res) || strcmp(api_sqlstate(res), "42P05") == 0; /* prepared meanwhile */
    if (!ok) {
        a->host->log(a->inst, TK_LOG_ERROR, "preparing the token check failed (%s): %s",
                     api_sqlstate(res), res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        return res;
    }
    PQclear(res);
    return PQexecPrepared(conn, STANDING_STMT, 2, p, NULL, NULL, 0);
}

/*
 * The token's standing in the database: whether its user exists and whether it was revoked,
 * two primary-key probes in one round trip. Read-only, so a connection found dead (the server
 * restarted while it sat in the pool) is simply replaced once. TK_OK, or TK_EUNAVAILABLE /
 * TK_ETIMEDOUT / TK_ERR.
 */
static int token_standing(api *a, const jwt_claims *t, int *user_exists, int *revoked)
{
    const char *p[] = {t->user, t->key};
    int rc = TK_ERR;
    for (int attempt = 0; attempt < 2; attempt++) {
        tk_pg *pg = NULL;
        if ((rc = a->host->pg_acquire(a->inst, -1, &pg)) < 0)
            return rc;
        PGconn *conn = a->host->pg_conn(pg);
        PGresult *res = standing_query(a, conn, p);
        int ok = api_ok(res) && PQntuples(res) == 1;
        if (ok) {
            *user_exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
            *revoked = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        }
        int broken = !ok && PQstatus(conn) != CONNECTION_OK;
        if (!ok && !broken)
            a->host->log(a->inst, TK_LOG_ERROR, "the token check failed (%s): %s",
                         api_sqlstate(res), res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        PQclear(res);
        a->host->pg_release(pg);
        if (ok)
            return TK_OK;
        if (!broken)
            return TK_ERR;
        rc = TK_EUNAVAILABLE;
    }
    return rc;
}

/*
 * Authenticates the request and reads its claims. A revoked token is refused, and so, unless
 * allow_missing_user, is the token of a user who no longer exists. TK_OK; or, when the request
 * goes no further, TK_EPERM after the 401, or the database's code after its 503 (500).
 */
static int authenticate_claims(api *a, const tk_http_request *req, tk_http_response *resp,
                               jwt_claims *t, int allow_query, int allow_missing_user)
{
    const char *h = a->host->http_header(req, "Authorization");
    const char *token = NULL;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        token = h + 7;
        while (*token == ' ')
            token++;
    } else if (allow_query) {
        token = a->host->http_query(req, "token");
    }
    if (!token || !*token) {
        unauthorized(a, resp, "Not authenticated");
        return TK_EPERM;
    }
    memset(t, 0, sizeof(*t));
    switch (api_jwt_verify(a, token, t)) {
    case JWT_OK: break;
    case JWT_EXPIRED: unauthorized(a, resp, "Token has expired"); return TK_EPERM;
    default: unauthorized(a, resp, "Could not validate credentials"); return TK_EPERM;
    }
    if (t->previous) { /* a rotation under way (deploy/README.md): who still uses old tokens */
        if (a->m_previous_secret)
            a->host->metric_add(a->m_previous_secret, NULL, 1);
        if (a->host->log_enabled(a->inst, TK_LOG_DEBUG))
            a->host->log(a->inst, TK_LOG_DEBUG,
                         "user %s: token verified by jwt_secret_previous (expires at %lld)",
                         t->user, t->exp);
    }
    /* checked in PostgreSQL on every request, so a logout or a deleted account holds on
     * every replica at once */
    int user_exists = 0, revoked = 0;
    int rc = token_standing(a, t, &user_exists, &revoked);
    if (rc < 0) {
        kit_db_error(a->host, resp, rc);
        return rc;
    }
    if (revoked || (!user_exists && !allow_missing_user)) {
        unauthorized(a, resp, "Could not validate credentials");
        return TK_EPERM;
    }
    return TK_OK;
}

int api_authenticate(api *a, const tk_http_request *req, tk_http_response *resp, char user[24],
                     int allow_query)
{
    jwt_claims t;
    int rc = authenticate_claims(a, req, resp, &t, allow_query, 0);
    if (rc == TK_OK)
        memcpy(user, t.user, sizeof(t.user));
    return rc;
}

/* ---- passwords ------------------------------------------------------------- */

/* The existing service hashes the SHA-256 hex digest of the password (so any length works). */
static void prehash(const char *password, char hex[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)password, strlen(password), d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
}

/* A new bcrypt hash of the password; malloc'd or NULL. */
char *api_password_hash(int cost, const char *password)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE], hex[65];
    if (!crypt_gensalt_rn("$2b$", (unsigned long)cost, NULL, 0, setting, sizeof(setting)))
        return NULL;
    prehash(password, hex);
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    char *out = NULL;
    if (cd) {
        const char *h = crypt_rn(hex, setting, cd, sizeof(*cd));
        if (h && h[0] == '$')
            out = strdup(h);
    }
    OPENSSL_cleanse(hex, sizeof(hex));
    free(cd);
    return out;
}

/* 1 when password matches hash; compares in constant time. */
static int password_check(const char *password, const char *hash)
{
    char hex[65];
    prehash(password, hex);
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    int ok = 0;
    if (cd) {
        const char *h = crypt_rn(hex, hash, cd, sizeof(*cd));
        size_t n = strlen(hash);
        ok = h && h[0] == '$' && strlen(h) == n && CRYPTO_memcmp(h, hash, n) == 0;
    }
    OPENSSL_cleanse(hex, sizeof(hex));
    free(cd);
    return ok;
}

/* ---- routes ---------------------------------------------------------------- */

#define USER_JSON                                                                                  \
    "json_build_object('id', id, 'email', email, 'name', name, 'created_at', " API_TS(             \
        "created_at") ")::text"

/* Answers that may hold a token (or an account) are never stored by a cache or a browser. */
static void no_store(api *a, tk_http_response *resp)
{
    a->host->http_set_header(resp, "Cache-Control", "no-store");
    a->host->http_set_header(resp, "Pragma", "no-cache");
}

/* A plausible address: local@domain.tld, no spaces, sane lengths. */
static int email_valid(const char *e)
{
    const char *at = strchr(e, '@');
    size_t n = strlen(e);
    if (!at || at == e || strchr(at + 1, '@') || n > 254 || (size_t)(at - e) > 64)
        return 0;
    const char *dot = strrchr(at + 1, '.');
    if (!dot || dot == at + 1 || !dot[1] || dot[-1] == '.')
        return 0;
    for (const char *p = e; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == ';')
            return 0;
    return 1;
}

typedef struct reg {
    const char *email, *name;
    char *hash;
} reg;

static int register_tx(void *conn, void *ud)
{
    api_call *c = ud;
    reg *r = c->arg;
    const char *p[] = {r->email, r->name, r->hash};
    PGresult *res = api_exec(c->a, conn,
                             "INSERT INTO users (email, name, hashed_password) VALUES ($1, $2, $3)"
                             " RETURNING id::text, " USER_JSON,
                             3, p);
    int rc;
    if (!api_ok(res)) {
        rc = strcmp(api_sqlstate(res), "23505") == 0 ? api_fail(c, 409, "Email already registered")
                                                     : TK_ERR;
    } else {
        rc = api_answer(c, 201, json_loads(PQgetvalue(res, 0, 1), 0, NULL));
        if (rc == TK_OK)
            rc = api_event(c->a, conn, c->a->user_topic, "user.registered", PQgetvalue(res, 0, 0),
                           NULL, json_pack("{s:s,s:s}", "email", r->email, "name", r->name));
    }
    PQclear(res);
    return rc;
}

static int route_register(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    no_store(a, resp);
    if (api_limit_take(a, API_LIMIT_REGISTER_ADDRESS, req, NULL, resp) < 0)
        return TK_OK; /* answered (429) */
    int sent;
    json_t *body = api_body_object(a, req, resp, &sent);
    if (!body)
        return sent ? TK_OK : TK_ERR;
    api_errors e;
    kit_errors_init(&e);
    reg r = {0};
    r.email = api_field_string(&e, body, "email", 1, 0, 0, NULL, NULL);
    if (r.email && !email_valid(r.email)) {
        kit_errors_add(&e, "body", "email",
                       "value is not a valid email address: An email address must have an @-sign "
                       "and a domain",
                       "value_error");
        r.email = NULL;
    }
    r.name = api_field_string(&e, body, "name", 1, 1, 255, NULL, NULL);
    const char *password = api_field_string(&e, body, "password", 1, 1, 1024, NULL, NULL);
    if (kit_errors_any(&e)) {
        json_decref(body);
        return kit_errors_send(a->host, resp, &e);
    }
    kit_errors_free(&e);
    if (api_hash_begin(a, resp) < 0) {
        json_decref(body);
        return TK_OK;
    }
    r.hash = api_password_hash(a->bcrypt_cost, password);
    api_hash_end(a);
    int rc;
    if (!r.hash) {
        rc = TK_ERR;
    } else {
        api_call c;
        api_call_init(&c, a, &r);
        rc = api_run(&c, 1, register_tx, resp);
    }
    free(r.hash);
    json_decref(body);
    return rc;
}

typedef struct login {
    const char *email;
    char id[24];
    char *hash;
} login;

static int login_lookup(void *conn, void *ud)
{
    api_call *c = ud;
    login *l = c->arg;
    const char *p[] = {l->email};
    /* emails match case-insensitively; where an older database holds case-duplicates, the
     * account spelt exactly as typed wins, else the oldest */
    PGresult *res = api_exec(c->a, conn,
                             "SELECT id::text, hashed_password FROM users"
                             " WHERE lower(email) = lower($1) ORDER BY email = $1 DESC, id LIMIT 1",
                             1, p);
    int rc = api_ok(res) ? TK_OK : TK_ERR;
    if (rc == TK_OK && PQntuples(res) == 1) {
        snprintf(l->id, sizeof(l->id), "%s", PQgetvalue(res, 0, 0));
        l->hash = strdup(PQgetvalue(res, 0, 1));
        rc = l->hash ? TK_OK : TK_ENOMEM;
    }
    PQclear(res);
    return rc;
}

/* Writes a user-events event for c->user with an empty payload; answers c->arg's JSON. */
static int user_event_tx(void *conn, void *ud)
{
    api_call *c = ud;
    const char *type = c->arg;
    return api_event(c->a, conn, c->a->user_topic, type, c->user, NULL, json_object());
}

static int route_login(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    no_store(a, resp);
    if (api_limit_take(a, API_LIMIT_LOGIN_ADDRESS, req, NULL, resp) < 0)
        return TK_OK; /* answered (429) */
    int sent;
    json_t *body = api_body_object(a, req, resp, &sent);
    if (!body)
        return sent ? TK_OK : TK_ERR;
    api_errors e;
    kit_errors_init(&e);
    login l = {0};
    l.email = api_field_string(&e, body, "email", 1, 0, 0, NULL, NULL);
    const char *password = api_field_string(&e, body, "password", 1, 0, 0, NULL, NULL);
    if (kit_errors_any(&e)) {
        json_decref(body);
        return kit_errors_send(a->host, resp, &e);
    }
    kit_errors_free(&e);
    /* the email's failure delay and rate, before any database work or hash */
    if (api_login_admit(a, l.email, resp) < 0) {
        json_decref(body);
        return TK_OK;
    }
    /* a slot of the hash pool before the lookup: a login the pool refuses costs nothing */
    if (api_hash_begin(a, resp) < 0) {
        json_decref(body);
        return TK_OK;
    }
    api_call c;
    api_call_init(&c, a, &l);
    int rc = api_call_run(&c, 0, login_lookup); /* no transaction: one read */
    if (rc < 0) {
        api_hash_end(a);
        json_decref(body);
        return kit_db_error(a->host, resp, rc);
    }
    /* an unknown email costs a hash check too, so timing does not tell which emails exist */
    int ok = password_check(password, l.hash ? l.hash : a->dummy_hash) && l.hash;
    api_hash_end(a);
    api_login_outcome(a, l.email, ok);
    json_decref(body);
    free(l.hash);
    if (!ok) {
        a->host->http_set_header(resp, "WWW-Authenticate", "Bearer");
        return api_error(a, resp, 401, "Incorrect email or password");
    }
    char *token = api_jwt_issue(a, l.id);
    if (!token)
        return TK_ENOMEM;
    snprintf(c.user, sizeof(c.user), "%s", l.id);
    c.arg = (void *)"user.login";
    api_answer(&c, 200, json_pack("{s:s,s:s}", "access_token", token, "token_type", "bearer"));
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    return api_run(&c, 1, user_event_tx, resp);
}

/* How long a revoked token's row outlives the token: the clocks of the replicas (which check
 * exp) and of PostgreSQL (which purges) may disagree by less than this. */
#define REVOKED_KEEP "1 hour"

static int logout_tx(void *conn, void *ud)
{
    api_call *c = ud;
    const jwt_claims *t = c->arg;
    char exp[24];
    snprintf(exp, sizeof(exp), "%lld", t->exp);
    const char *p[] = {t->key, exp};
    PGresult *res = api_exec(c->a, conn,
                             "INSERT INTO revoked_tokens (jti, expires_at)"
                             " VALUES ($1, to_timestamp($2::bigint)) ON CONFLICT (jti) DO NOTHING",
                             2, p);
    int ok = api_ok(res);
    PQclear(res);
    if (!ok)
        return TK_ERR;
    /* rows of tokens long expired go, a bounded batch at a time */
    res = api_exec(c->a, conn,
                   "DELETE FROM revoked_tokens WHERE jti IN (SELECT jti FROM revoked_tokens"
                   " WHERE expires_at < now() - interval '" REVOKED_KEEP "' LIMIT 100)",
                   0, NULL);
    ok = api_ok(res);
    PQclear(res);
    if (!ok)
        return TK_ERR;
    int rc = api_event(c->a, conn, c->a->user_topic, "user.logout", c->user, NULL, json_object());
    if (rc < 0)
        return rc;
    return api_answer(c, 200, json_pack("{s:s}", "message", "Logged out successfully"));
}

/* Revokes the token that calls it, on every replica (each request checks revoked_tokens). */
static int route_logout(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    jwt_claims t;
    int rc = authenticate_claims(a, req, resp, &t, 0, 0);
    if (rc < 0)
        return rc; /* answered */
    api_call c;
    api_call_init(&c, a, &t);
    memcpy(c.user, t.user, sizeof(t.user));
    return api_run(&c, 1, logout_tx, resp);
}

static int me_fn(void *conn, void *ud)
{
    api_call *c = ud;
    const char *p[] = {c->user};
    PGresult *res =
        api_exec(c->a, conn, "SELECT " USER_JSON " FROM users WHERE id = $1::int", 1, p);
    int rc = TK_ERR;
    if (api_ok(res))
        rc = PQntuples(res) ? api_answer(c, 200, json_loads(PQgetvalue(res, 0, 0), 0, NULL))
                            : api_fail(c, 404, "User not found");
    PQclear(res);
    return rc;
}

static int route_me(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    api_call c;
    api_call_init(&c, a, NULL);
    int rc = api_authenticate(a, req, resp, c.user, 0);
    if (rc < 0)
        return rc; /* answered */
    return api_run(&c, 0, me_fn, resp);
}

static int delete_account_tx(void *conn, void *ud)
{
    api_call *c = ud;
    const char *p[] = {c->user};
    /* everything the user owns goes with the account (task_tags and messages cascade) */
    static const char *const steps[] = {
        "DELETE FROM tasks WHERE user_id = $1",
        "DELETE FROM tags WHERE user_id = $1",
        "DELETE FROM conversations WHERE user_id = $1",
    };
    PGresult *res = api_exec(c->a, conn, "DELETE FROM users WHERE id = $1::int", 1, p);
    if (!api_ok(res)) {
        PQclear(res);
        return TK_ERR;
    }
    int gone = atoi(PQcmdTuples(res));
    PQclear(res);
    if (!gone)
        return api_fail(c, 404, "User not found");
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        res = api_exec(c->a, conn, steps[i], 1, p);
        int ok = api_ok(res);
        PQclear(res);
        if (!ok)
            return TK_ERR;
    }
    int rc = api_event(c->a, conn, c->a->user_topic, "user.deleted", c->user, NULL, json_object());
    if (rc < 0)
        return rc;
    return api_answer(c, 200, json_pack("{s:s}", "message", "Account deleted successfully"));
}

static int route_delete_account(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    api *a = ud;
    jwt_claims t;
    /* an account already gone is the contract's 404, answered by delete_account_tx */
    int rc = authenticate_claims(a, req, resp, &t, 0, 1);
    if (rc < 0)
        return rc; /* answered */
    api_call c;
    api_call_init(&c, a, NULL);
    memcpy(c.user, t.user, sizeof(t.user));
    return api_run(&c, 1, delete_account_tx, resp);
}

int api_auth_routes(api *a)
{
    int rc;
    if ((rc = a->host->http_route(a->inst, "POST", "/api/auth/register", route_register, a)) < 0 ||
        (rc = a->host->http_route(a->inst, "POST", "/api/auth/login", route_login, a)) < 0 ||
        (rc = a->host->http_route(a->inst, "POST", "/api/auth/logout", route_logout, a)) < 0 ||
        (rc = a->host->http_route(a->inst, "DELETE", "/api/auth/delete-account",
                                  route_delete_account, a)) < 0 ||
        (rc = a->host->http_route(a->inst, "GET", "/api/auth/me", route_me, a)) < 0)
        return rc;
    return TK_OK;
}
