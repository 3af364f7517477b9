/* dczdump IN.dcz: every layer's values as little-endian float32 on stdout, in header order.
 * A file the reader refuses gives one line on stderr and exit status 1; nothing is written
 * to stdout then, since the whole file is checked before the first value is decoded.
 *
 * Environment: DCZDUMP_MEMORY=BYTES, the memory to budget for instead of the machine's.
 *
 * Build: cc -std=c99 -O2 decoder/[all .c] -o dczdump -lm  (or: make dczdump)
 */
#if defined(__unix__) || defined(__APPLE__)
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcz.h"

/* The Python reader's budget: half the machine's physical memory (unbounded if unknown).
 * DCZDUMP_MEMORY=BYTES stands in for the machine's memory (the tests' small machine). */
static uint64_t memory_budget(void)
{
    const char *given = getenv("DCZDUMP_MEMORY");
    if (given && *given) {
        char *end;
        unsigned long long v = strtoull(given, &end, 10);
        if (!*end) return (uint64_t)v / 2;
    }
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) return (uint64_t)pages * (uint64_t)page / 2;
#endif
    return UINT64_MAX / 2;
}

static void *owned[4]; /* freed on every exit, so a leak checker has nothing to report */

static void release(void)
{
    size_t i;
    for (i = 0; i < sizeof owned / sizeof owned[0]; i++) { free(owned[i]); owned[i] = NULL; }
}

static int refuse(const char *path, const char *message)
{
    fprintf(stderr, "%s: %s\n", path, message);
    release();
    return 1;
}

static int little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

int main(int argc, char **argv)
{
    const char *path;
    FILE *in;
    uint8_t *data = NULL;
    size_t size = 0, cap = 0, got;
    void *work;
    float *values = NULL;
    size_t values_cap = 0;
    dcz_file *f;
    dcz_error err;
    uint32_t i;
    int rc;
    if (argc != 2) {
        fprintf(stderr, "usage: dczdump IN.dcz > values.f32\n");
        return 2;
    }
    path = argv[1];
    in = fopen(path, "rb");
    if (!in) return refuse(path, "cannot open the file");
    for (;;) { /* read it whole (works for pipes too) */
        if (size == cap) {
            uint8_t *bigger;
            cap = cap ? 2 * cap : 1 << 16;
            bigger = (uint8_t *)realloc(data, cap);
            if (!bigger) { fclose(in); return refuse(path, "out of memory reading the file"); }
            data = owned[0] = bigger;
        }
        got = fread(data + size, 1, cap - size, in);
        size += got;
        if (got == 0) break;
    }
    if (ferror(in)) {
        fclose(in);
        return refuse(path, "cannot read the file (is it a directory?)");
    }
    fclose(in);
    f = owned[1] = malloc(sizeof *f);
    if (!f) return refuse(path, "out of memory");
    rc = dcz_open(f, data, size, memory_budget(), NULL, 0, &err);
    if (rc != DCZ_NEED_WORK) return refuse(path, rc ? err.message : "internal error");
    work = owned[2] = malloc(f->work_needed ? f->work_needed : 1);
    if (!work) return refuse(path, "out of memory for the decoder's work space");
    if (dcz_open(f, data, size, memory_budget(), work, f->work_needed, &err))
        return refuse(path, err.message);
    for (i = 0; i < dcz_count(f); i++) {
        uint64_t n = dcz_numel(f, i);
        size_t j;
        if (n > (uint64_t)(SIZE_MAX / sizeof(float))) return refuse(path, "a layer is too large");
        if (n > values_cap) {
            free(values);
            values_cap = (size_t)n;
            values = owned[3] = malloc(values_cap * sizeof(float));
            if (!values) return refuse(path, "out of memory for a layer's values");
        }
        if (dcz_decode(f, i, values ? values : (float *)work, (size_t)n, &err))
            return refuse(path, err.message);
        if (!little_endian())
            for (j = 0; j < (size_t)n; j++) {
                uint8_t *b = (uint8_t *)&values[j], t;
                t = b[0]; b[0] = b[3]; b[3] = t;
                t = b[1]; b[1] = b[2]; b[2] = t;
            }
        if (n && fwrite(values, sizeof(float), (size_t)n, stdout) != (size_t)n)
            return refuse(path, "cannot write the values");
    }
    if (fflush(stdout)) return refuse(path, "cannot write the values");
    release();
    return 0;
}
