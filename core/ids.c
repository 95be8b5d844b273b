/* Identifiers: random UUIDs (version 4) from the kernel's CSPRNG. */
#include "ids.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

void tk_uuid4(char out[37])
{
    unsigned char b[16];
    ssize_t got = getrandom(b, sizeof(b), 0);
    if (got != (ssize_t)sizeof(b)) {
        /* getrandom cannot fail for 16 bytes after boot; keep ids unique anyway */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ (ts.tv_sec >> (i % 8)) ^ (i * 37));
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}
