/* HS256 JSON Web Tokens (jwt.c): what a verified token says, for auth.c. */
#ifndef HTTP_API_JWT_H
#define HTTP_API_JWT_H

#include "api.h"

typedef enum { JWT_OK, JWT_INVALID, JWT_EXPIRED } jwt_result;

/* What a verified token says. */
typedef struct jwt_claims {
    char user[24]; /* the user id, canonical decimal */
    char key[160]; /* what revokes it: "j:" + jti, or "m:" + the MAC in hex (no jti) */
    long long exp; /* seconds since the epoch */
    int previous;  /* 1: the signature is the previous secret's (jwt_secret_previous) */
} jwt_claims;

/* users.id is an int4: a token naming anything else names nobody. */
#define USER_ID_MAX 2147483647LL
/* exp past 9999-12-31T23:59:59Z is no date this service (or PostgreSQL's to_timestamp) knows. */
#define EXP_MAX 253402300799LL

/*
 * Verifies a token's signature (HS256 only) with the current secret, or else the previous one
 * when it is set, and reads its claims into *out.
 */
jwt_result api_jwt_verify(const api *a, const char *token, jwt_claims *out);

#endif
