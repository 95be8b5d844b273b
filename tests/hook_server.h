/*
 * A webhook receiver for the suites (libmicrohttpd on 127.0.0.1): records each request and
 * answers it with a status the test sets.
 */
#ifndef TK_HOOK_SERVER_H
#define TK_HOOK_SERVER_H

#include <microhttpd.h>
#include <pthread.h>

/* One request as it came, and what the receiver answered. */
typedef struct hook_req {
    char *body;
    char signature[128];   /* X-Taskora-Signature */
    char event_id[64];     /* X-Taskora-Event-Id */
    char content_type[64]; /* Content-Type */
    unsigned status;
} hook_req;

typedef struct hook_server {
    struct MHD_Daemon *d;
    pthread_mutex_t lock; /* over all below */
    hook_req reqs[256];   /* the first 256 requests */
    int n;
    unsigned status; /* what it answers: 200 (with {"ok":true}) unless set */
    int fail_first;  /* answer 503 to this many requests before that */
    char url[64];    /* http://127.0.0.1:PORT/hooks/taskora */
} hook_server;

/* Starts it on a free port, answering 200; a failure aborts the test. */
void hook_start(hook_server *h);
/* Stops it and frees what it recorded (the struct is zeroed). */
void hook_stop(hook_server *h);
/* Sets the status it answers from now on. */
void hook_set_status(hook_server *h, unsigned status);
/* Answers 503 to the next n requests, then as before. */
void hook_fail_first(hook_server *h, int n);
/* Requests received so far. */
int hook_count(hook_server *h);
/* Polls until it received n requests or timeout_s pass; returns how many it got. */
int hook_wait(hook_server *h, int n, int timeout_s);

#endif
