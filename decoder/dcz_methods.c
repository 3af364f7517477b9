/* dcz_methods.c: the registered methods (codes >= 16, docs/format.md "Registered methods"):
 * uniform and its int8/int4 presets, fp16/bf16, ternary/binary, pq and hashed. Each is one
 * payload function (check, and decode when out != NULL) that checks its record parameters
 * as the method's Python `check` and `decode` do (inspector/core/stages/), then walks its
 * level stream (dcz_levels.c) once, writing each value in place: no scratch. */
#include "dcz_internal.h"

#define LEVEL_MAX ((1 << 20) - 1)
#define F32_HUGE 0x1.ffffffp127 /* the least double that rounds to a float32 infinity */

/* (rows, rowlen) of a layer: shape[0] rows of the rest for two or more axes, else one row
 * (inspector/core/stages/uniform_params.py layout). dcz_open refuses zero dimensions here. */
static void layout(const dcz_layer *L, uint64_t *rows, uint64_t *rowlen)
{
    const uint8_t *p = L->dims;
    uint64_t v = 0;
    unsigned shift = 0;
    if (L->ndim < 2) {
        *rows = 1;
        *rowlen = L->numel;
        return;
    }
    do {
        v |= (uint64_t)(*p & 0x7F) << shift;
        shift += 7;
    } while (*p++ & 0x80);
    *rows = v;
    *rowlen = L->numel / v;
}

static int known_stage(uint8_t code) { return code >= 1 && code <= 3; }

/* a float32 or float16 table value at index i of p, as float32 bits */
static uint32_t table_bits(const uint8_t *p, uint64_t i, int half)
{
    return half ? dcz__half_to_f32(get_u16le(p + 2 * i)) : get_u32le(p + 4 * i);
}

/* fitted.read_floats: count values, finite (and with `nonneg`, sign bit clear) */
static int floats_ok(const uint8_t *p, uint64_t count, int half, int nonneg)
{
    uint64_t i;
    for (i = 0; i < count; i++) {
        uint32_t b = table_bits(p, i, half);
        if (!finite32(b) || (nonneg && (b >> 31))) return 0;
    }
    return 1;
}

static void put(const dcz_layer *L, float *out, uint64_t i, float v)
{
    out[i] = dcz__cast_value(L->dtype, v);
}

/* ---------------------------------------------------------------- uniform, int8, int4 */

typedef struct {
    unsigned gran, stage, width, k;
    float base;
    uint64_t group;
    int8_t offsets[31];
} uniform_params;

static int uniform_parse(const dcz_layer *L, uniform_params *u, uint64_t rowlen)
{
    const uint8_t *p = L->params;
    uint64_t n = L->params_len, pos = 6;
    uint32_t base_bits;
    if (n < 6) return 0;
    u->gran = p[0] & 3;
    if (u->gran > 2 || (p[0] & ~7)) return 0;
    u->stage = p[1];
    base_bits = get_u32le(p + 2);
    /* finite and at least float32's smallest normal (so positive) */
    if (!finite32(base_bits) || (base_bits >> 31) || base_bits < 0x00800000u) return 0;
    u->base = f32_of(base_bits);
    u->width = 0;
    u->group = 0;
    u->k = 0;
    if (u->gran != 0) {
        if (pos >= n || p[pos] > 12) return 0;
        u->width = p[pos++];
    }
    if (u->gran == 2) {
        uint32_t g;
        if (!dcz__uvarint_min(p, n, &pos, 1u << 24, &g)) return 0;
        if (g < 1 || g > (rowlen > 1 ? rowlen : 1)) return 0;
        u->group = g;
    }
    if (p[0] & 4) {
        unsigned i;
        u->k = pos < n ? p[pos] : 0;
        if (u->k < 1 || u->k > 31 || pos + 1 + u->k > n) return 0;
        for (i = 0; i < u->k; i++) {
            u->offsets[i] = p[pos + 1 + i] < 128 ? (int8_t)p[pos + 1 + i]
                                                 : (int8_t)((int)p[pos + 1 + i] - 256);
            if (u->offsets[i] < -64) return 0;
        }
        pos += 1 + u->k;
    }
    return pos == n;
}

/* float32(base * (16 + m) * 2^(o - 4)) for exponent e = 16 o + m: the product is exact in
 * double (29 significant bits, exponent -130..379), so the cast is the one rounding, as
 * numpy's ldexp in float64 then astype(float32). 0: the step overflows float32. */
static int step_of(float base, uint32_t e, float *step)
{
    uint64_t pow_bits = (uint64_t)(1023 + (int)(e >> 4) - 4) << 52;
    double scale, d;
    memcpy(&scale, &pow_bits, 8);
    d = (double)base * (double)(16 + (e & 15)) * scale;
    if (d >= F32_HUGE) return 0;
    *step = (float)d;
    return 1;
}

static uint32_t read_bits(const uint8_t *p, uint64_t at, unsigned w) /* MSB first, w <= 32 */
{
    uint64_t x = 0;
    while (w) {
        unsigned off = (unsigned)(at & 7), take = 8 - off;
        if (take > w) take = w;
        x = x << take | (((uint32_t)p[at >> 3] >> (8 - off - take)) & ((1u << take) - 1));
        at += take;
        w -= take;
    }
    return (uint32_t)x;
}

int dcz__method_uniform(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
{
    uniform_params u;
    uint64_t rows, rowlen, g, gpr, units, split = 0, r, j, i = 0;
    dcz__levels s;
    (void)f;
    layout(L, &rows, &rowlen);
    if (!uniform_parse(L, &u, rowlen)) FAIL(L, "uniform params are damaged");
    if (!known_stage((uint8_t)u.stage)) FAILN(L, "uniform params: unknown entropy coder code",
                                              u.stage);
    if (u.gran == 0) rows = 1, rowlen = L->numel, g = rowlen, gpr = 1;
    else if (u.gran == 1) g = rowlen, gpr = 1;
    else g = u.group, gpr = (rowlen + g - 1) / g;
    units = rows * gpr;
    if (units > 1) {
        uint64_t bits = units * u.width;
        split = (bits + 7) / 8;
        if (L->payload_len < split) FAIL(L, "uniform payload: shorter than its step exponents");
        if (bits % 8 && (L->payload[split - 1] & ((1u << (8 - bits % 8)) - 1)))
            FAIL(L, "uniform payload: non-zero padding bits after the step exponents");
        for (j = 0; j < units; j++) {
            float st;
            if (!step_of(u.base, read_bits(L->payload, j * u.width, u.width), &st))
                FAIL(L, "uniform payload: a step exponent overflows float32");
        }
    }
    if (!dcz__levels_open(&s, (uint8_t)u.stage, L->payload + split, L->payload_len - split,
                          L->numel))
        FAIL(L, s.why);
    for (r = 0; r < rows; r++) {
        uint64_t unit = r * gpr;
        float step = 0;
        for (j = 0; j < rowlen; j++, i++) {
            int32_t q;
            int64_t m, t;
            double v;
            if (j % g == 0) { /* a new unit: its step (checked above not to overflow) */
                uint32_t e = units > 1 ? read_bits(L->payload, (unit + j / g) * u.width,
                                                   u.width) : 0;
                step_of(u.base, e, &step);
            }
            if (!dcz__levels_next(&s, &q)) FAIL(L, s.why);
            m = q < 0 ? -(int64_t)q : q;
            if (m > LEVEL_MAX) FAIL(L, "uniform payload: a level beyond +-1048575");
            t = 128 * m + (m >= 1 && m <= (int64_t)u.k ? u.offsets[m - 1] : 0);
            if (q < 0) t = -t;
            /* exact in double (|t| < 2^28, 24-bit step): the float32 cast is the rounding */
            v = (double)t * (double)step / 128.0;
            if (v >= F32_HUGE || v <= -F32_HUGE)
                FAIL(L, "uniform payload: a decoded value overflows float32");
            if (out) put(L, out, i, (float)v);
        }
    }
    if (!dcz__levels_close(&s)) FAIL(L, s.why);
    return DCZ_OK;
}

/* ------------------------------------------------------------------------- fp16, bf16 */

int dcz__method_half(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
{
    uint64_t i;
    (void)f;
    if (L->params_len) FAIL(L, "its record has parameter bytes, fp16/bf16 none");
    if (L->payload_len != 2 * L->numel) FAIL(L, "its payload is not 2 bytes a value");
    if (!out) return DCZ_OK;
    for (i = 0; i < L->numel; i++) {
        uint16_t h = get_u16le(L->payload + 2 * i);
        uint32_t b = L->method == DCZ_M_FP16 ? dcz__half_to_f32(h) : (uint32_t)h << 16;
        put(L, out, i, f32_of(b));
    }
    return DCZ_OK;
}

/* ---------------------------------------------------------------------- ternary, binary */

int dcz__method_signs(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
{
    const uint8_t *p = L->params;
    uint64_t rows = 1, per, split, i;
    int half, ternary = L->method == DCZ_M_TERNARY;
    dcz__levels s;
    (void)f;
    if (L->params_len != 2) FAIL(L, "ternary/binary params: not 2 bytes");
    if (!known_stage(p[0])) FAILN(L, "ternary/binary params: unknown entropy coder code", p[0]);
    if (p[1] & ~3) FAIL(L, "ternary/binary params: bad flags byte");
    half = (p[1] & 2) != 0;
    if (p[1] & 1) layout(L, &rows, &per);
    else per = L->numel;
    split = rows * (half ? 2 : 4);
    if (L->payload_len < split) FAIL(L, "ternary/binary payload: shorter than its scales");
    if (!floats_ok(L->payload, rows, half, 1))
        FAIL(L, "ternary/binary scales: a value is not finite or is negative");
    if (!dcz__levels_open(&s, p[0], L->payload + split, L->payload_len - split, L->numel))
        FAIL(L, s.why);
    for (i = 0; i < L->numel; i++) {
        int32_t q;
        float scale;
        if (!dcz__levels_next(&s, &q)) FAIL(L, s.why);
        if (q < -1 || q > (ternary ? 1 : 0)) FAIL(L, "ternary/binary payload: a bad symbol");
        if (!out) continue;
        scale = f32_of(table_bits(L->payload, i / per, half));
        /* one float32 product M[q] * scale (M: -1, 0, +1; binary -1, +1), so -1 x 0 = -0 */
        put(L, out, i, (ternary ? (float)q : (q ? -1.0f : 1.0f)) * scale);
    }
    if (!dcz__levels_close(&s)) FAIL(L, s.why);
    return DCZ_OK;
}

/* ---------------------------------------------------------------------------------- pq */

int dcz__method_pq(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
{
    const uint8_t *p = L->params;
    uint64_t rows, rowlen, spr, pos = 3, split, r, sv, i;
    uint32_t k, d;
    int half;
    dcz__levels s;
    (void)f;
    if (L->params_len < 4) FAIL(L, "pq params: too short");
    if (!known_stage(p[0])) FAILN(L, "pq params: unknown entropy coder code", p[0]);
    d = p[1];
    if (d < 1 || d > 16) FAILN(L, "pq params: sub-vector size outside 1..16:", d);
    if (p[2] & ~1) FAIL(L, "pq params: bad flags byte");
    half = p[2] & 1;
    if (!dcz__uvarint_min(p, L->params_len, &pos, 1u << 16, &k) || pos != L->params_len)
        FAIL(L, "pq params: bad codebook size");
    layout(L, &rows, &rowlen);
    spr = (rowlen + d - 1) / d;
    if (k == 0 || k > rows * spr) FAILN(L, "pq params: codebook size does not fit:", k);
    split = (uint64_t)k * d * (half ? 2 : 4);
    if (L->payload_len < split) FAIL(L, "pq payload: shorter than its codebook");
    if (!floats_ok(L->payload, (uint64_t)k * d, half, 0))
        FAIL(L, "pq codebook: a value is not finite");
    if (!dcz__levels_open(&s, p[0], L->payload + split, L->payload_len - split, rows * spr))
        FAIL(L, s.why);
    for (r = 0; r < rows; r++)
        for (sv = 0; sv < spr; sv++) {
            int32_t q;
            uint32_t c;
            uint64_t base = r * rowlen + sv * d, lim = rowlen - sv * d < d ? rowlen - sv * d : d;
            if (!dcz__levels_next(&s, &q)) FAIL(L, s.why);
            c = q >= 0 ? 2u * (uint32_t)q : 2u * (uint32_t)(-(int64_t)q) - 1u; /* zig-zag */
            if (c >= k) FAIL(L, "pq payload: a code past the codebook");
            if (out)
                for (i = 0; i < lim; i++)
                    put(L, out, base + i, f32_of(table_bits(L->payload, (uint64_t)c * d + i, half)));
        }
    if (!dcz__levels_close(&s)) FAIL(L, s.why);
    return DCZ_OK;
}

/* ------------------------------------------------------------------------------ hashed */

static uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    return h ^ (h >> 16);
}

int dcz__method_hashed(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
{
    const uint8_t *p = L->params;
    uint64_t pos = 5, i;
    uint32_t b, seed, s0;
    int half, sign;
    (void)f;
    if (L->params_len < 6) FAIL(L, "hashed params: too short");
    if (p[0] & ~3) FAIL(L, "hashed params: bad flags byte");
    half = p[0] & 1;
    sign = (p[0] & 2) != 0;
    seed = get_u32le(p + 1);
    if (!dcz__uvarint_min(p, L->params_len, &pos, 0xFFFFFFFFu, &b) || pos != L->params_len)
        FAIL(L, "hashed params: bad bucket count");
    if (L->numel >> 32) FAIL(L, "hashed: 2^32 weights or more");
    if (b == 0 || b > L->numel) FAILN(L, "hashed params: bucket count does not fit:", b);
    if (L->payload_len != (uint64_t)b * (half ? 2 : 4))
        FAIL(L, "hashed payload: not its buckets' size");
    if (!floats_ok(L->payload, b, half, 0)) FAIL(L, "hashed buckets: a value is not finite");
    if (!out) return DCZ_OK;
    s0 = seed * 0x9E3779B9u;
    for (i = 0; i < L->numel; i++) {
        uint32_t x = (uint32_t)i + s0;
        float v = f32_of(table_bits(L->payload, ((uint64_t)fmix32(x) * b) >> 32, half));
        if (sign && fmix32(x ^ 0x5BD1E995u) >> 31) v = -v;
        put(L, out, i, v);
    }
    return DCZ_OK;
}
