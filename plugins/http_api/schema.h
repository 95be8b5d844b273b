/* The domain tables the HTTP API plugin owns, as migrations. */
#ifndef TK_HTTP_API_SCHEMA_H
#define TK_HTTP_API_SCHEMA_H

/* NULL-terminated steps for the descriptor's `migrations`. */
extern const char *const http_api_migrations[];

#endif
