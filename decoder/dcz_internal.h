/* dcz_internal.h: what the decoder's files share (not part of the API: see dcz.h). */
#ifndef DCZ_INTERNAL_H
#define DCZ_INTERNAL_H

#include <string.h>

#include "dcz.h"

/* ------------------------------------------------------------------------------ records */

struct dcz_layer {
    const char *name;
    uint32_t name_len;
    uint8_t dtype, method, ndim;
    const uint8_t *dims; /* ndim varints in the header */
    uint64_t numel;
    const uint8_t *payload;
    uint64_t payload_len;
    uint32_t crc;
    /* deep */
    uint8_t filler, half, coded, wmode, pmode, positions, index_bits, strict;
    uint32_t k;
    uint64_t entries, survivors, weight_nbytes, holes;
    /* a registered method's record (method >= 16): its parameters */
    const uint8_t *params;
    uint64_t params_len;
    size_t scratch; /* uint16 entries of Huffman symbol tables */
};

#define MAX_ELEMENTS ((uint64_t)1 << 40)
#define MAX_CODEBOOK 256
#define MAX_CODE_LENGTH 24
#define MAX_TABLE_ALPHABET (1u << 20)
#define SAME_SHAPE 0x80
enum { GAPS = 0, BITMAP = 1, DENSE = 2, HOLES = 3 };
enum { FIXED = 0, HUFFMAN = 1, CONSTANT = 2 };

/* "layer 'NAME': WHAT[ N]" (or "WHAT[ N]" without a layer) into e; returns `code` */
int dcz__fail(dcz_error *e, int code, const dcz_layer *L, const char *what, int has_n, uint64_t n);
#define FAIL(L, what) return dcz__fail(err, DCZ_BAD, (L), (what), 0, 0)
#define FAILN(L, what, n) return dcz__fail(err, DCZ_BAD, (L), (what), 1, (n))

/* A method's payload function: check layer L's payload against its record and, when `out`
 * is not NULL, decode it there as float32 (dcz_numel values). Adding a method to the format
 * is one such function and a row in METHODS (dcz.c); a code >= 16 has its record's
 * parameters read into L->params by the header parser. */
typedef int (*dcz__payload_fn)(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);
dcz__payload_fn dcz__method_of(int version, uint8_t code); /* NULL: unsupported */
int dcz__method_raw(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);
int dcz__method_deep(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);

/* uint16 entries of Huffman symbol lists a deep layer needs (its tables checked) */
int dcz__deep_scratch(const dcz_layer *L, size_t *used, dcz_error *err);

typedef struct {
    uint64_t names; /* bytes of all names, NULs included */
    size_t tables;  /* uint16 entries of the largest layer's Huffman symbol lists */
} dcz__sizes;
/* Read every record (into `store` when given, names copied to `names`); with `tables`, also
 * check each deep payload's CRC and size its Huffman tables. */
int dcz__parse_all(dcz_file *f, uint64_t start, uint64_t budget, dcz_layer *store, char *names,
                   int tables, dcz__sizes *sz, dcz_error *err);

/* ------------------------------------------------- registered methods (codes >= 16) */

int dcz__method_uniform(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);
int dcz__method_half(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);
int dcz__method_signs(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);
int dcz__method_pq(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);
int dcz__method_hashed(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);

/* read_uvarint (inspector/core/bitpack.py): minimal LEB128, at most `max`, at byte *off */
int dcz__uvarint_min(const uint8_t *p, uint64_t n, uint64_t *off, uint32_t max, uint32_t *v);

/* An entropy stage's stream of `count` signed levels (docs/format.md, "Entropy streams"),
 * read one level at a time with no scratch: dcz__levels_open checks what can be checked up
 * front, dcz__levels_next gives the next level, dcz__levels_close the checks that need the
 * whole stream (fixed: the width is the smallest; cabac: the tail). Each returns 0 with
 * `why` set for a damaged stream. The cabac context states (121 x 5 bytes) live here. */
enum { DCZ_FIXED_STAGE = 1, DCZ_HUFFMAN_STAGE = 2, DCZ_CABAC_STAGE = 3 };
#define CABAC_CONTEXTS 121
typedef struct {
    uint8_t stage;
    const uint8_t *p; /* the code bytes (after the stage's first byte) */
    uint64_t n, count, done;
    const char *why;
    /* fixed */
    unsigned width;
    uint64_t bit;
    uint32_t top; /* the largest zig-zag code so far */
    /* cabac */
    unsigned ngt, egk;
    uint64_t code, rng, low, pos;
    uint32_t a1, a2, s1;
    uint16_t fast[CABAC_CONTEXTS], slow[CABAC_CONTEXTS];
    uint8_t seen[CABAC_CONTEXTS]; /* updates, counted to 255 */
} dcz__levels;
int dcz__levels_open(dcz__levels *s, uint8_t stage, const uint8_t *p, uint64_t n,
                     uint64_t count);
int dcz__levels_next(dcz__levels *s, int32_t *v);
int dcz__levels_close(dcz__levels *s);

uint32_t dcz__half_to_f32(uint16_t h);
float dcz__cast_value(uint8_t dtype, float v);

static inline uint64_t get_u64le(const uint8_t *b)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static inline uint32_t get_u32le(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint16_t get_u16le(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }

static inline int finite32(uint32_t bits) { return (bits & 0x7F800000u) != 0x7F800000u; }
static inline int finite64(uint64_t bits)
{
    return (bits & 0x7FF0000000000000ull) != 0x7FF0000000000000ull;
}

static inline float f32_of(uint32_t b)
{
    float x;
    memcpy(&x, &b, 4);
    return x;
}

static inline uint32_t bits_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}

static inline unsigned fixed_width(uint64_t alphabet) /* max(0, (alphabet - 1).bit_length()) */
{
    unsigned n = 0;
    if (alphabet == 0) return 1; /* Python's (-1).bit_length() */
    alphabet--;
    while (alphabet) { n++; alphabet >>= 1; }
    return n;
}

#endif
