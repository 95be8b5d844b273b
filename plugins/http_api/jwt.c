/*
 * HS256 JSON Web Tokens (OpenSSL HMAC): issuing them, and verifying a client's (signature,
 * expiry, user id claim, revocation key).
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwt.h"

/* ---- base64url ------------------------------------------------------------ */

static char *b64url_encode(const unsigned char *in, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

/* Decodes unpadded base64url; returns a malloc'd NUL-terminated buffer and its length. */
static unsigned char *b64url_decode(const char *in, size_t len, size_t *outlen)
{
    if (len % 4 == 1)
        return NULL;
    size_t padded = (len + 3) / 4 * 4;
    char *tmp = malloc(padded + 1);
    unsigned char *out = malloc(padded / 4 * 3 + 1);
    if (!tmp || !out) {
        free(tmp);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!isalnum((unsigned char)c))
            goto bad;
        tmp[i] = c;
    }
    memset(tmp + len, '=', padded - len);
    tmp[padded] = '\0';
    int n = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded);
    if (n < 0)
        goto bad;
    n -= (int)(padded - len); /* EVP_DecodeBlock counts padding as zero bytes */
    out[n] = '\0';
    *outlen = (size_t)n;
    free(tmp);
    return out;
bad:
    free(tmp);
    free(out);
    return NULL;
}

/* ---- JWT ------------------------------------------------------------------- */

static void hs256_key(const char *key, size_t keylen, const char *data, size_t len,
                      unsigned char mac[32])
{
    unsigned int maclen = 32;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, len, mac, &maclen);
}

/* With the current secret: what signs every token issued here. */
static void hs256(const api *a, const char *data, size_t len, unsigned char mac[32])
{
    hs256_key(a->jwt_secret, a->jwt_secret_len, data, len, mac);
}

/*
 * Whether sig is the MAC of data under the current secret, or else under the previous one (a
 * secret being rotated out: only when one is set, never the empty key). Both compared in
 * constant time. 1 current, 2 previous, 0 neither; mac is the matching MAC.
 */
static int signed_by(const api *a, const char *data, size_t len, const unsigned char sig[32],
                     unsigned char mac[32])
{
    hs256(a, data, len, mac);
    if (CRYPTO_memcmp(mac, sig, 32) == 0)
        return 1;
    if (!a->jwt_secret_previous || a->jwt_secret_previous_len == 0)
        return 0;
    hs256_key(a->jwt_secret_previous, a->jwt_secret_previous_len, data, len, mac);
    return CRYPTO_memcmp(mac, sig, 32) == 0 ? 2 : 0;
}

/* 128 random bits as unpadded base64url (22 characters): a token's id, for revoking it. */
static int new_jti(char out[32])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return -1;
    char *e = b64url_encode(r, sizeof(r));
    if (!e)
        return -1;
    snprintf(out, 32, "%s", e);
    free(e);
    return 0;
}

char *api_jwt_issue(api *a, const char *user_id)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char payload[192], jti[32];
    if (new_jti(jti) < 0)
        return NULL;
    long long now = (long long)time(NULL);
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":%lld,\"iat\":%lld,\"jti\":\"%s\"}",
             user_id, now + (long long)a->token_ttl_s, now, jti);
    char *h = b64url_encode((const unsigned char *)header, sizeof(header) - 1);
    char *p = b64url_encode((const unsigned char *)payload, strlen(payload));
    char *signing = NULL, *sig = NULL, *token = NULL;
    if (h && p && (signing = malloc(strlen(h) + strlen(p) + 2))) {
        sprintf(signing, "%s.%s", h, p);
        unsigned char mac[32];
        hs256(a, signing, strlen(signing), mac);
        if ((sig = b64url_encode(mac, sizeof(mac))) &&
            (token = malloc(strlen(signing) + strlen(sig) + 2)))
            sprintf(token, "%s.%s", signing, sig);
    }
    free(h);
    free(p);
    free(signing);
    free(sig);
    return token;
}

/*
 * A user id claim: a positive integer that fits users.id, as a JSON integer or its canonical
 * decimal string (no sign, no leading zeros, no spaces). TK_OK, or TK_EINVAL.
 */
static int user_claim(json_t *v, char user[24])
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 1 || n > USER_ID_MAX)
            return TK_EINVAL;
        snprintf(user, 24, "%lld", (long long)n);
        return TK_OK;
    }
    if (!json_is_string(v))
        return TK_EINVAL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > 10 || s[0] == '0')
        return TK_EINVAL;
    long long id = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TK_EINVAL;
        id = id * 10 + (s[i] - '0');
    }
    if (id > USER_ID_MAX)
        return TK_EINVAL;
    memcpy(user, s, n + 1);
    return TK_OK;
}

/* exp: a number of seconds in [1, EXP_MAX] (a fraction is allowed, as other issuers write).
 * TK_OK, or TK_EINVAL. */
static int exp_claim(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 1 || n > EXP_MAX)
            return TK_EINVAL;
        *out = (long long)n;
        return TK_OK;
    }
    if (!json_is_real(v))
        return TK_EINVAL;
    double d = json_real_value(v);
    if (!(d >= 1.0 && d <= (double)EXP_MAX)) /* also refuses NaN */
        return TK_EINVAL;
    *out = (long long)d;
    return TK_OK;
}

jwt_result api_jwt_verify(const api *a, const char *token, jwt_claims *out)
{
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.'))
        return JWT_INVALID;
    jwt_result r = JWT_INVALID;
    size_t hlen, plen, slen;
    unsigned char *h = b64url_decode(token, (size_t)(d1 - token), &hlen);
    unsigned char *p = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &plen);
    unsigned char *s = b64url_decode(d2 + 1, strlen(d2 + 1), &slen);
    json_t *header = h ? json_loadb((const char *)h, hlen, 0, NULL) : NULL;
    json_t *claims = p ? json_loadb((const char *)p, plen, 0, NULL) : NULL;
    if (!header || !claims || !s || slen != 32 || !json_is_object(claims))
        goto out;
    /* only HS256: "none" and every other algorithm are refused */
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (!alg || strcmp(alg, "HS256") != 0)
        goto out;
    unsigned char mac[32];
    int by = signed_by(a, token, (size_t)(d2 - token), s, mac);
    if (by == 0)
        goto out;
    out->previous = by == 2;
    if (exp_claim(json_object_get(claims, "exp"), &out->exp) < 0)
        goto out;
    if (out->exp <= (long long)time(NULL)) {
        r = JWT_EXPIRED;
        goto out;
    }
    json_t *sub = json_object_get(claims, "sub");
    if (!sub)
        sub = json_object_get(claims, "user_id");
    if (user_claim(sub, out->user) < 0)
        goto out;
    /*
     * The revocation key. Tokens issued here carry a random jti. A token without one (issued
     * before jti existed, or by the existing service) is known by its MAC: the decoded bytes,
     * since a signature's last base64url character has spare bits that spell the same MAC.
     */
    json_t *jti = json_object_get(claims, "jti");
    if (jti) {
        if (!json_is_string(jti) || json_string_length(jti) == 0 || json_string_length(jti) > 128 ||
            strlen(json_string_value(jti)) != json_string_length(jti))
            goto out;
        snprintf(out->key, sizeof(out->key), "j:%s", json_string_value(jti));
    } else {
        memcpy(out->key, "m:", 2);
        for (int i = 0; i < 32; i++)
            snprintf(out->key + 2 + 2 * i, 3, "%02x", mac[i]);
    }
    r = JWT_OK;
out:
    json_decref(header);
    json_decref(claims);
    free(h);
    free(p);
    free(s);
    return r;
}
