/* dcz_levels.c: the entropy stages' level streams of the registered methods (docs/format.md,
 * "Entropy streams"): `fixed` (inspector/core/stages/fixed.py) and `cabac` (cabac.py,
 * cabac_kernels.py), read one level at a time so a method checks and decodes a layer in one
 * pass with no scratch. Each accepts exactly the streams the Python decoders accept.
 * `huffman` (code 2) is not read here: its decoder accepts a stream only if its table is the
 * one the encoder would build from the decoded histogram, which needs that histogram
 * (2^20 counts) and inspector's exact code-length construction; such a layer is refused as
 * "unsupported entropy coder 2" (decoder/README.md). */
#include "dcz_internal.h"

#define CABAC_PER_BYTE 1122 /* levels a byte of cabac stream can hold at most */
#define CABAC_MAX_LEVEL ((uint32_t)1 << 30)
#define CABAC_TOP ((uint64_t)1 << 24)
enum { SIG = 0, SIGN = 9, GT = 12, EG = 57, EGS = 89 };

static int bad(dcz__levels *s, const char *why)
{
    s->why = why;
    return 0;
}

/* ------------------------------------------------------------------------------- fixed */

static int fixed_open(dcz__levels *s, const uint8_t *p, uint64_t n)
{
    uint64_t bits, need;
    if (n < 1) return bad(s, "fixed stream: missing the width byte");
    s->width = p[0];
    if (s->width > 32) return bad(s, "fixed stream: width above 32");
    s->p = p + 1;
    s->n = n - 1;
    bits = s->count * s->width;
    need = (bits + 7) / 8;
    if (s->n != need) return bad(s, "fixed stream: not count x width bits");
    if (bits % 8 && (s->p[need - 1] & ((1u << (8 - bits % 8)) - 1)))
        return bad(s, "fixed stream: non-zero padding bits");
    return 1;
}

static uint32_t fixed_next(dcz__levels *s)
{
    uint64_t x = 0;
    unsigned w = s->width;
    while (w) { /* the bytes were checked to hold count x width bits */
        unsigned off = (unsigned)(s->bit & 7), take = 8 - off;
        uint32_t byte = s->p[s->bit >> 3];
        if (take > w) take = w;
        x = x << take | ((byte >> (8 - off - take)) & ((1u << take) - 1));
        s->bit += take;
        w -= take;
    }
    return (uint32_t)x;
}

/* ------------------------------------------------------------------------------- cabac */

static uint64_t cabac_byte(dcz__levels *s)
{
    uint64_t b = s->pos < s->n ? s->p[s->pos] : 0; /* zeros past the end */
    s->pos++;
    return b;
}

static void renorm(dcz__levels *s)
{
    while (s->rng < CABAC_TOP) {
        s->rng <<= 8;
        s->code = s->code << 8 | cabac_byte(s);
        s->low = (s->low << 8) & 0xFFFFFFFFu;
    }
}

static unsigned bit_length(uint32_t v)
{
    unsigned n = 0;
    while (v) { n++; v >>= 1; }
    return n;
}

static uint32_t get_bin(dcz__levels *s, unsigned c) /* an adaptive bin of context c */
{
    uint64_t p = ((uint64_t)s->fast[c] + s->slow[c]) >> 1, bound = (s->rng >> 15) * p;
    unsigned w = bit_length((unsigned)s->seen[c] + 1), rf = w < 6 ? w : 6, rs = w < 9 ? w : 9;
    uint32_t bit;
    if (s->code < bound) {
        s->rng = bound;
        bit = 0;
        s->fast[c] = (uint16_t)(s->fast[c] + ((32768u - s->fast[c]) >> rf));
        s->slow[c] = (uint16_t)(s->slow[c] + ((32768u - s->slow[c]) >> rs));
    } else {
        s->code -= bound;
        s->rng -= bound;
        s->low += bound;
        bit = 1;
        s->fast[c] = (uint16_t)(s->fast[c] - (s->fast[c] >> rf));
        s->slow[c] = (uint16_t)(s->slow[c] - (s->slow[c] >> rs));
    }
    if (s->seen[c] < 255) s->seen[c]++;
    renorm(s);
    return bit;
}

static uint32_t get_bypass(dcz__levels *s)
{
    uint32_t bit = 0;
    s->rng >>= 1;
    if (s->code >= s->rng) {
        s->code -= s->rng;
        s->low += s->rng;
        bit = 1;
    }
    renorm(s);
    return bit;
}

static int cabac_open(dcz__levels *s, const uint8_t *p, uint64_t n)
{
    unsigned i;
    if (n == 0) return bad(s, "cabac stream is damaged: no parameter byte");
    if (s->count / CABAC_PER_BYTE > n ||
        (s->count / CABAC_PER_BYTE == n && s->count % CABAC_PER_BYTE))
        return bad(s, "cabac stream is damaged: too short for its count");
    s->ngt = p[0] >> 4;
    s->egk = p[0] & 15;
    s->p = p + 1;
    s->n = n - 1;
    for (i = 0; i < CABAC_CONTEXTS; i++) {
        s->fast[i] = s->slow[i] = 16384;
        s->seen[i] = 0;
    }
    s->pos = 4;
    s->code = 0;
    for (i = 0; i < 4; i++) s->code = s->code << 8 | (i < s->n ? s->p[i] : 0);
    s->rng = 0xFFFFFFFFu;
    s->low = 0;
    s->a1 = s->a2 = s->s1 = 0;
    if (s->code >= s->rng) return bad(s, "cabac stream is damaged: a level is out of range");
    return 1;
}

static int cabac_next(dcz__levels *s, int32_t *v)
{
    uint32_t a = 0, neg = 0;
    unsigned a1 = s->a1, a2 = s->a2;
    if (get_bin(s, SIG + 3 * (a1 < 2 ? a1 : 2) + (a2 < 2 ? a2 : 2))) {
        unsigned k;
        neg = get_bin(s, SIGN + s->s1);
        a = 1;
        for (k = 1; k <= s->ngt; k++) {
            if (!get_bin(s, GT + 3 * (k - 1) + (a1 > k) + (a2 > k))) break;
            a = k + 1;
        }
        if (a > s->ngt) {
            unsigned kk = s->egk, i = 0;
            uint64_t r = 0;
            int b;
            while (get_bin(s, EG + (i < 31 ? i : 31))) {
                r += (uint64_t)1 << kk;
                kk++;
                i++;
                if (kk > 30) return bad(s, "cabac stream is damaged: a level is out of range");
            }
            for (b = (int)kk - 1; b >= 0; b--) {
                uint32_t bit = kk <= 15 && b >= (int)kk - 2
                                   ? get_bin(s, EGS + 3 * kk - 1 - (unsigned)b)
                                   : get_bypass(s);
                r += (uint64_t)bit << b;
            }
            if (s->ngt + 1 + r > CABAC_MAX_LEVEL)
                return bad(s, "cabac stream is damaged: a level is out of range");
            a = (uint32_t)(s->ngt + 1 + r);
        }
    }
    if (s->pos > s->n + 4) return bad(s, "cabac stream is damaged: the code runs past its end");
    *v = neg ? -(int32_t)a : (int32_t)a;
    s->a2 = s->a1;
    s->a1 = a;
    s->s1 = a == 0 ? 0 : neg ? 2 : 1;
    return 1;
}

static int cabac_close(dcz__levels *s)
{
    uint64_t low = s->low & 0xFFFFFFFFu, v = low;
    unsigned n;
    for (n = 0; n < 5; n++) { /* the shortest tail the encoder writes */
        uint64_t unit = (uint64_t)1 << (32 - 8 * n);
        v = (low + unit - 1) & ~(unit - 1);
        if (v < low + s->rng) break;
    }
    if (n == 5) n = 4, v = low;
    if (((s->low + s->code) & 0xFFFFFFFFu) != (v & 0xFFFFFFFFu) || s->n != s->pos - 4 + n)
        return bad(s, "cabac stream is damaged: its tail is not the one the encoder writes");
    return 1;
}

/* ---------------------------------------------------------------------------- the API */

int dcz__levels_open(dcz__levels *s, uint8_t stage, const uint8_t *p, uint64_t n,
                     uint64_t count)
{
    s->stage = stage;
    s->count = count;
    s->done = 0;
    s->bit = 0;
    s->top = 0;
    s->why = 0;
    if (stage == DCZ_HUFFMAN_STAGE) return bad(s, "unsupported entropy coder 2 (huffman)");
    if (stage != DCZ_FIXED_STAGE && stage != DCZ_CABAC_STAGE)
        return bad(s, "unknown entropy coder code");
    if (count == 0) { /* nothing coded: no bytes (fixed: the width byte 0 alone) */
        s->p = p;
        s->n = n;
        if (stage == DCZ_CABAC_STAGE)
            return n ? bad(s, "cabac stream is damaged: bytes for an empty stream") : 1;
    }
    return stage == DCZ_FIXED_STAGE ? fixed_open(s, p, n) : cabac_open(s, p, n);
}

int dcz__levels_next(dcz__levels *s, int32_t *v)
{
    s->done++;
    if (s->stage == DCZ_FIXED_STAGE) {
        uint32_t c = fixed_next(s);
        if (c > s->top) s->top = c;
        *v = (int32_t)((int64_t)(c >> 1) ^ -(int64_t)(c & 1)); /* zig-zag: 0, -1, 1, -2 */
        return 1;
    }
    return cabac_next(s, v);
}

int dcz__levels_close(dcz__levels *s)
{
    if (s->stage == DCZ_FIXED_STAGE)
        return bit_length(s->top) == s->width
                   ? 1
                   : bad(s, "fixed stream: the width is not the smallest for its codes");
    if (s->count == 0) return 1;
    return cabac_close(s);
}
