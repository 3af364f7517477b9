/* dcz_values.c: raw payloads, and every conversion to float32 exactly as numpy's astype
 * does it on what the Python reader returns (inspector/format/dtypes.py). */
#include "dcz_internal.h"

/* ------------------------------------------------------------------- value conversions */

/* numpy's float16 -> float32 (exact; a NaN keeps its payload, unquieted) */
uint32_t dcz__half_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h & 0x7C00, mant = h & 0x03FF;
    if (exp == 0x7C00) return sign | 0x7F800000u | mant << 13;
    if (exp) return sign | ((exp >> 10) + 112) << 23 | mant << 13;
    if (!mant) return sign;
    exp = 113;
    while (!(mant & 0x400)) { mant <<= 1; exp--; }
    return sign | exp << 23 | (mant & 0x3FF) << 13;
}

/* float32 -> float16, round to nearest even (a finite value only: deep layers' values) */
static uint16_t f32_to_half(uint32_t f)
{
    uint16_t sign = (uint16_t)(f >> 16 & 0x8000);
    uint32_t x = f & 0x7FFFFFFF, e = x >> 23, q, rem, halfway;
    if (e >= 143) return sign | 0x7C00; /* 2**16 and up: past float16's range */
    if (e >= 113) {                     /* normal float16 */
        uint32_t m = x & 0x7FFFFF;
        q = (e - 112) << 10 | m >> 13;
        rem = m & 0x1FFF;
        if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; /* a carry rounds up to inf */
        return (uint16_t)(sign | q);
    }
    {                                   /* subnormal float16: round(x / 2**-24) */
        uint32_t m = (x & 0x7FFFFF) | (e ? 0x800000 : 0), shift = 126 - (e ? e : 1);
        if (shift >= 32) return sign;
        q = m >> shift;
        rem = m & ((1u << shift) - 1);
        halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
}

/* dtypes.bfloat16_bits: nearest even, a NaN stays a quiet NaN */
static float bf16_round(float v)
{
    uint32_t b = bits_of(v), r;
    if (!finite32(b) && (b & 0x7FFFFF)) r = (b >> 16) | 0x40;
    else r = (uint32_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16) & 0xFFFF;
    return f32_of(r << 16);
}

/* float64 bits -> float32, nearest even; a NaN is quieted as x86 (and numpy there) does */
static float f64_to_f32(uint64_t d)
{
    double x;
    if (!finite64(d) && (d & 0xFFFFFFFFFFFFFull))
        return f32_of((uint32_t)(d >> 32 & 0x80000000u) | 0x7FC00000u |
                      (uint32_t)(d >> 29 & 0x7FFFFF));
    memcpy(&x, &d, 8);
    return (float)x;
}

static float quieted(float v) /* a float32 widened to float64 and narrowed back (x86) */
{
    uint32_t b = bits_of(v);
    return (!finite32(b) && (b & 0x7FFFFF)) ? f32_of(b | 0x400000u) : v;
}

/* x86's float -> int32 and -> int64 truncations (out of range or NaN: the lowest value),
 * as numpy's astype does them there; done without C's undefined out-of-range casts */
static uint32_t cvt32(float v)
{
    if (v >= -2147483648.0f && v < 2147483648.0f) return (uint32_t)(int32_t)v;
    return 0x80000000u;
}
static uint64_t cvt64(float v)
{
    if (v >= -9223372036854775808.0f && v < 9223372036854775808.0f) return (uint64_t)(int64_t)v;
    return 0x8000000000000000ull;
}

static float signed_of(uint64_t u, unsigned nbits) /* the two's complement value of u */
{
    int64_t v; /* exact, so the conversion to float rounds once */
    if (nbits < 64) {
        u &= ((uint64_t)1 << nbits) - 1;
        int64_t half = (int64_t)1 << (nbits - 1);
        v = (u >> (nbits - 1)) ? (int64_t)u - half - half : (int64_t)u;
    } else v = (u >> 63) ? -(int64_t)(~u) - 1 : (int64_t)u;
    return (float)v;
}

/* A deep layer's float32 value as the Python reader casts it to the record's dtype, then
 * to float32 (dtypes.cast; integer dtypes as numpy does on x86-64: never written by
 * inspector, which deep-compresses float layers only). */
float dcz__cast_value(uint8_t dtype, float v)
{
    switch (dtype) {
    case DCZ_FLOAT16: return f32_of(dcz__half_to_f32(f32_to_half(bits_of(v))));
    case DCZ_BFLOAT16: return bf16_round(v);
    case DCZ_INT8: return signed_of(cvt32(v), 8);
    case DCZ_UINT8: return (float)(cvt32(v) & 0xFF);
    case DCZ_INT16: return signed_of(cvt32(v), 16);
    case DCZ_UINT16: return (float)(cvt32(v) & 0xFFFF);
    case DCZ_INT32: return signed_of(cvt32(v), 32);
    case DCZ_UINT32: /* numpy's unsigned casts offset values past the signed range */
        return (float)(v < 2147483648.0f ? cvt32(v) : cvt32(v - 2147483648.0f) ^ 0x80000000u);
    case DCZ_INT64: return signed_of(cvt64(v), 64);
    case DCZ_UINT64:
        return (float)(v < 9223372036854775808.0f
                           ? cvt64(v)
                           : cvt64(v - 9223372036854775808.0f) ^ 0x8000000000000000ull);
    default: return v; /* float32, float64 (exact), bool (kept as float32) */
    }
}

/* ---------------------------------------------------------------------------- raw */

int dcz__method_raw(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
{
    const uint8_t *p = L->payload;
    uint64_t i, n = L->numel;
    (void)f;
    (void)err;
    if (!out) return DCZ_OK; /* the record fixed its size; the CRC is checked at open */
    for (i = 0; i < n; i++) {
        float v;
        if (L->method == DCZ_RAW_FP16 || L->method == DCZ_RAW_BF16) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            v = f32_of(L->method == DCZ_RAW_FP16 ? dcz__half_to_f32(h) : (uint32_t)h << 16);
            if (L->dtype == DCZ_FLOAT64) v = quieted(v); /* held as float64 in Python */
            out[i] = v;
            continue;
        }
        switch (L->dtype) {
        case DCZ_FLOAT32: v = f32_of(get_u32le(p + 4 * i)); break;
        case DCZ_FLOAT16: v = f32_of(dcz__half_to_f32(get_u16le(p + 2 * i))); break;
        case DCZ_BFLOAT16: v = f32_of((uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16); break;
        case DCZ_FLOAT64: v = f64_to_f32(get_u64le(p + 8 * i)); break;
        case DCZ_INT8: v = (float)(int8_t)p[i]; break;
        case DCZ_UINT8: v = (float)p[i]; break;
        case DCZ_INT16: v = signed_of((uint64_t)(p[2 * i] | p[2 * i + 1] << 8), 16); break;
        case DCZ_UINT16: v = (float)(p[2 * i] | p[2 * i + 1] << 8); break;
        case DCZ_INT32: v = signed_of(get_u32le(p + 4 * i), 32); break;
        case DCZ_UINT32: v = (float)get_u32le(p + 4 * i); break;
        case DCZ_INT64: v = signed_of(get_u64le(p + 8 * i), 64); break;
        case DCZ_UINT64: v = (float)get_u64le(p + 8 * i); break;
        default: v = p[i] ? 1.0f : 0.0f; break; /* bool */
        }
        out[i] = v;
    }
    return DCZ_OK;
}

