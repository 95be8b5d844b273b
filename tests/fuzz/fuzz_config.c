/*
 * Fuzzes the config loader: a whole config file through tk_settings_load (JSON with
 * positions, ${VAR} substitution, the host's schema, plugin entries, resiliency), and the
 * input alone through tk_config_subst_string.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "settings.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* what the seeds' ${...} name: set, empty, a number, a list */
    setenv("TK_FUZZ_SET", "value", 1);
    setenv("TK_FUZZ_EMPTY", "", 1);
    setenv("TK_FUZZ_NUM", "8080", 1);
    setenv("TK_FUZZ_BOOL", "false", 1);
    setenv("TK_FUZZ_LIST", " a, b ,,c ", 1);
    unsetenv("TK_FUZZ_UNSET");
    fd = memfd_create("config", 0);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    char err[1024];
    tk_settings *s = tk_settings_load(path, err, sizeof(err));
    tk_settings_free(s);

    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char *out = NULL, var[256];
    if (tk_config_subst_string(in, &out, var, sizeof(var)) == 0)
        free(out);
    free(in);
    return 0;
}
