/* Monotonic time for deadlines and durations, and condition variables that wait on it. */
#ifndef TK_CORE_CLOCK_H
#define TK_CORE_CLOCK_H

#include <pthread.h>
#include <time.h>

/* Now plus ms on CLOCK_MONOTONIC: a deadline for tk_cond_init_monotonic conditions. */
struct timespec tk_deadline_ms(int ms);
/* Seconds from `start` (CLOCK_MONOTONIC) to now. */
double tk_seconds_since(const struct timespec *start);
/* Time left until `deadline`; negative seconds once it has passed. */
struct timespec tk_time_left(const struct timespec *deadline);
/* Milliseconds on CLOCK_MONOTONIC, for deadlines kept as numbers. */
long long tk_now_ms(void);
/* Sleeps ms milliseconds (the whole of them: a signal does not cut it short). */
void tk_sleep_ms(int ms);
/* Initialises a condition whose timed waits take CLOCK_MONOTONIC deadlines. */
void tk_cond_init_monotonic(pthread_cond_t *cond);

#endif
