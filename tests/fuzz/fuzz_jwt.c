/*
 * Fuzzes the JWT code of the http_api plugin (jwt.c is compiled into this file for its
 * static functions). The first byte picks what the rest is:
 *   '0' a token as a client sends it, through api_jwt_verify;
 *   '1' text for b64url_decode (and back through b64url_encode);
 *   '2' "HEADER\nCLAIMS": two JSON texts made into a token signed with the right key, so
 *       the claim checks behind the signature are reached.
 */
#include "../../plugins/http_api/jwt.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret!";

static void check_user(jwt_result r, const jwt_claims *c)
{
    if (r != JWT_OK)
        return;
    const char *user = c->user;
    size_t n = strnlen(user, sizeof(c->user));
    if (n == 0 || n > 10 || user[0] == '0' || strspn(user, "0123456789") != n ||
        atoll(user) > USER_ID_MAX)
        abort(); /* the user id is always a positive decimal integer that fits users.id */
    if (strncmp(c->key, "j:", 2) != 0 && strncmp(c->key, "m:", 2) != 0)
        abort(); /* every valid token can be revoked */
    if (c->exp > EXP_MAX)
        abort();
}

static char *signed_token(const api *a, const char *header, size_t hlen, const char *claims,
                          size_t clen)
{
    char *h = b64url_encode((const unsigned char *)header, hlen);
    char *c = b64url_encode((const unsigned char *)claims, clen);
    char *tok = h && c ? malloc(strlen(h) + strlen(c) + 48) : NULL;
    if (tok) {
        sprintf(tok, "%s.%s", h, c);
        unsigned char mac[32];
        hs256(a, tok, strlen(tok), mac);
        char *s = b64url_encode(mac, sizeof(mac));
        if (s)
            sprintf(tok + strlen(tok), ".%s", s);
        free(s);
    }
    free(h);
    free(c);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    api a = {.jwt_secret = secret, .jwt_secret_len = sizeof(secret) - 1, .token_ttl_s = 3600};
    char mode = (char)data[0];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    jwt_claims user;
    if (mode == '1') {
        char *copy = malloc(n ? n : 1); /* exactly n bytes: a read past them is caught */
        size_t outlen = 0;
        memcpy(copy, in, n);
        unsigned char *out = b64url_decode(copy, n, &outlen);
        if (out) {
            if (outlen != n * 3 / 4 || out[outlen] != '\0')
                abort();
            char *again = b64url_encode(out, outlen);
            if (!again || strlen(again) != n)
                abort();
            free(again);
        }
        free(out);
        free(copy);
    } else if (mode == '2') {
        const char *nl = memchr(in, '\n', n);
        size_t hlen = nl ? (size_t)(nl - in) : n;
        const char *claims = nl ? nl + 1 : "";
        size_t clen = nl ? n - hlen - 1 : 0;
        char *tok = signed_token(&a, in, hlen, claims, clen);
        if (tok)
            check_user(api_jwt_verify(&a, tok, &user), &user);
        free(tok);
    } else {
        char *tok = malloc(n + 1);
        memcpy(tok, in, n);
        tok[n] = '\0';
        check_user(api_jwt_verify(&a, tok, &user), &user);
        free(tok);
    }
    /* an issued token always verifies, for the user it names */
    if (mode == '2' && n > 0 && data[1] >= '1' && data[1] <= '9') {
        char id[20];
        snprintf(id, sizeof(id), "%d", data[1] - '0');
        char *tok = api_jwt_issue(&a, id);
        if (!tok || api_jwt_verify(&a, tok, &user) != JWT_OK || strcmp(user.user, id) != 0)
            abort();
        free(tok);
    }
    return 0;
}
