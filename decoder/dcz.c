/* dcz.c: reading inspector's .dcz container (docs/format.md), versions 1 and 2.
 *
 * The checks mirror the Python reader one for one (inspector/format/header.py, header_v2.py,
 * verify.py, inspector/core/decode.py): the same file is accepted or refused by both. Where
 * the Python reader is lenient (version-2 forms do not check that streams fill the payload
 * exactly), this one is too, so the two never disagree.
 *
 * Layout: byte and bit readers; header parsing (one function per record kind); payload
 * methods (one function each, in METHODS); the deep decoder, which walks its two symbol
 * streams in lockstep and so checks and decodes a layer in one pass without scratch beyond
 * the Huffman tables.
 */
#include "dcz.h"

#include <string.h>

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
    /* a generic record (method >= 16, to come): its parameters */
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

static const uint8_t ITEMSIZE[14] = {0, 4, 2, 2, 8, 1, 1, 2, 4, 8, 1, 2, 4, 8};

/* ------------------------------------------------------------------------------- errors */

static void put(dcz_error *e, size_t *at, const char *s, size_t n)
{
    size_t room = sizeof e->message - 1 - *at;
    if (n > room) n = room;
    memcpy(e->message + *at, s, n);
    *at += n;
    e->message[*at] = 0;
}

static void put_u64(dcz_error *e, size_t *at, uint64_t v)
{
    char buf[24];
    int n = 0;
    do { buf[sizeof buf - 1 - n++] = (char)('0' + v % 10); v /= 10; } while (v);
    put(e, at, buf + sizeof buf - n, (size_t)n);
}

/* "layer 'NAME': WHAT[ N]" (or just "WHAT[ N]" without a layer); returns DCZ_BAD (or `code`) */
static int fail_at(dcz_error *e, int code, const dcz_layer *L, const char *what, int has_n,
                   uint64_t n)
{
    size_t at = 0;
    if (!e) return code;
    e->message[0] = 0;
    if (L && L->name) {
        size_t len = L->name_len > 120 ? 120 : L->name_len;
        size_t i;
        put(e, &at, "layer '", 7);
        for (i = 0; i < len; i++) { /* one line: control characters (C0, C1, U+2028/9) as ? */
            const uint8_t *u = (const uint8_t *)L->name + i;
            if (u[0] < 0x20 || u[0] == 0x7F) put(e, &at, "?", 1);
            else if (u[0] == 0xC2 && i + 1 < len && u[1] >= 0x80 && u[1] <= 0x9F) {
                put(e, &at, "?", 1);
                i += 1;
            } else if (u[0] == 0xE2 && i + 2 < len && u[1] == 0x80 && (u[2] == 0xA8 || u[2] == 0xA9)) {
                put(e, &at, "?", 1);
                i += 2;
            } else put(e, &at, (const char *)u, 1);
        }
        put(e, &at, L->name_len > 120 ? "...': " : "': ", L->name_len > 120 ? 6 : 3);
    }
    put(e, &at, what, strlen(what));
    if (has_n) { put(e, &at, " ", 1); put_u64(e, &at, n); }
    return code;
}

#define FAIL(L, what) return fail_at(err, DCZ_BAD, (L), (what), 0, 0)
#define FAILN(L, what, n) return fail_at(err, DCZ_BAD, (L), (what), 1, (n))

/* --------------------------------------------------------------------------------- CRC */

uint32_t dcz_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    static const uint32_t T[16] = {
        0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
        0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C,
        0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C};
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ T[crc & 15];
        crc = (crc >> 4) ^ T[crc & 15];
    }
    return ~crc;
}

/* ----------------------------------------------------------------------- header reading */

typedef struct { const uint8_t *p; size_t n, pos; } rd;

static int rd_take(rd *r, uint64_t n, const uint8_t **out)
{
    if (n > r->n - r->pos) return 0;
    *out = r->p + r->pos;
    r->pos += (size_t)n;
    return 1;
}

static int rd_u8(rd *r, uint8_t *v)
{
    if (r->pos >= r->n) return 0;
    *v = r->p[r->pos++];
    return 1;
}

static int rd_u32(rd *r, uint32_t *v)
{
    const uint8_t *b;
    if (!rd_take(r, 4, &b)) return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

/* The header's varint (wire.Reader.varint): up to 10 bytes, not necessarily minimal, at most
 * `limit`. Returns 1, 0 when truncated or overlong, -1 above the limit. */
static int rd_varint(rd *r, uint64_t limit, uint64_t *v)
{
    uint64_t value = 0;
    int shift, big = 0;
    for (shift = 0; shift < 70; shift += 7) {
        uint8_t b;
        uint64_t group;
        if (!rd_u8(r, &b)) return 0;
        group = b & 0x7F;
        if (shift == 63 ? group > 1 : 0) big = 1; /* past 2**64: above any limit */
        else if (group) value |= group << shift;
        if (!(b & 0x80)) {
            if (big || value > limit) return -1;
            *v = value;
            return 1;
        }
    }
    return 0;
}

static uint64_t get_u64le(const uint8_t *b)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static uint32_t get_u32le(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int finite32(uint32_t bits) { return (bits & 0x7F800000u) != 0x7F800000u; }
static int finite64(uint64_t bits)
{
    return (bits & 0x7FF0000000000000ull) != 0x7FF0000000000000ull;
}
static int negative64(uint64_t bits) { return (bits >> 63) && (bits << 1); } /* -0.0 is not */

/* Python's strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF) */
static int valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return 0;
        if (n - i - 1 < need) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t j = 2; j <= need; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

/* --------------------------------------------------------------------- payload methods */

/* A method's payload function: check layer L's payload against its record and, when `out`
 * is not NULL, decode it there as float32 (dcz_numel values). Adding a method to the format
 * is one such function and a row in METHODS (a code >= 16 has its record's parameters read by
 * parse_generic into L->params). */
typedef int (*payload_fn)(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);

static int method_raw(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);
static int method_deep(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err);

static const struct {
    uint8_t code, since; /* method code, first format version that has it */
    payload_fn run;
} METHODS[] = {
    {DCZ_RAW, 1, method_raw},
    {DCZ_DEEP, 1, method_deep},
    {DCZ_RAW_FP16, 2, method_raw},
    {DCZ_RAW_BF16, 2, method_raw},
};

static payload_fn method_of(int version, uint8_t code)
{
    size_t i;
    for (i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (METHODS[i].code == code && version >= METHODS[i].since) return METHODS[i].run;
    return 0;
}

/* --------------------------------------------------------------------- record parsing */

typedef struct {
    dcz_file *f;
    rd r;
    dcz_layer *L;         /* the record being read */
    int have_prev;
    uint64_t prev_numel;
    const uint8_t *prev_dims;
    uint8_t prev_ndim;
    size_t prev_name_len;
} parser;

static int check_settings(dcz_error *err, const dcz_layer *L, int policy, uint64_t value_bits,
                          int index_bits)
{
    /* LayerSettings: value finite and >= 0 (a sparsity at most 1), index bits 1..16 */
    double value;
    if (!finite64(value_bits) || negative64(value_bits) || index_bits < 1 || index_bits > 16)
        FAIL(L, "has invalid settings");
    memcpy(&value, &value_bits, sizeof value);
    if (policy == 1 && value > 1.0) FAIL(L, "has invalid settings");
    return DCZ_OK;
}

static uint64_t widen_f32(uint32_t b) /* the float64 bits of a float32 (finite ones matter) */
{
    float x;
    double d;
    uint64_t out;
    memcpy(&x, &b, 4);
    if (!finite32(b)) return 0x7FF0000000000001ull; /* any non-finite: refused alike */
    d = (double)x;
    memcpy(&out, &d, 8);
    return out;
}

static unsigned bit_length(uint64_t v)
{
    unsigned n = 0;
    while (v) { n++; v >>= 1; }
    return n;
}

static unsigned fixed_width(uint64_t alphabet) /* Python: max(0, (alphabet - 1).bit_length()) */
{
    return alphabet == 0 ? 1 : bit_length(alphabet - 1);
}

/* a > b * m, without overflow */
static int gt_mul(uint64_t a, uint64_t b, uint64_t m) { return b <= a / m && a > b * m ? 1 : 0; }
/* a > b << s */
static int gt_shl(uint64_t a, uint64_t b, unsigned s)
{
    return (b >> (64 - s)) == 0 && a > (b << s);
}

/* version 1: header.py _decode_deep and _check_spans */
static int parse_deep_v1(parser *P, dcz_error *err)
{
    dcz_layer *L = P->L;
    uint8_t policy, init, bits, ibits, flags;
    const uint8_t *vt;
    uint64_t ties, seed, k, entries, survivors, wbytes, walpha, fixed_w, fixed_g, rest;
    int r;
    (void)ties;
    if (!rd_u8(&P->r, &policy) || !rd_u8(&P->r, &init) || !rd_u8(&P->r, &bits) ||
        !rd_u8(&P->r, &ibits) || !rd_u8(&P->r, &flags) || !rd_take(&P->r, 16, &vt))
        FAIL(0, "header is truncated");
    if ((r = rd_varint(&P->r, (uint64_t)1 << 63, &ties)) <= 0 ||
        (r = rd_varint(&P->r, 0xFFFFFFFFu, &seed)) <= 0 ||
        (r = rd_varint(&P->r, (uint64_t)1 << 63, &k)) <= 0 ||
        (r = rd_varint(&P->r, (uint64_t)1 << 63, &entries)) <= 0 ||
        (r = rd_varint(&P->r, (uint64_t)1 << 63, &survivors)) <= 0 ||
        (r = rd_varint(&P->r, (uint64_t)1 << 63, &wbytes)) <= 0)
        FAIL(0, r < 0 ? "a header field exceeds its limit" : "header is truncated");
    if (flags >= 32) FAILN(L, "has unknown flag bits", flags);
    if (policy > 2 || init > 3) FAIL(L, "has unknown settings codes");
    if (bits < 1 || bits > 8) FAIL(L, "has invalid settings");
    r = check_settings(err, L, policy, get_u64le(vt), ibits);
    if (r) return r;
    if (k > MAX_CODEBOOK || survivors > entries || wbytes > L->payload_len)
        FAIL(L, "has inconsistent stream sizes");
    if (gt_mul(entries, L->payload_len, 8) || gt_shl(L->numel, entries + 1, ibits))
        FAIL(L, "claims more weights than its data can hold");
    /* _check_spans: entries <= 8 x payload and the payload fits the file, so no overflow */
    walpha = k + ((flags & 16) != 0);
    fixed_w = (entries * fixed_width(walpha) + 7) / 8;
    fixed_g = (entries * ibits + 7) / 8;
    if (L->payload_len < 4 * k + wbytes || (!(flags & 4) && wbytes != fixed_w))
        FAIL(L, "its weight stream does not fit its payload");
    rest = L->payload_len - 4 * k - wbytes;
    if ((flags & 4) && wbytes < (entries + 7) / 8)
        FAIL(L, "its weight stream is too short for its entries");
    if (!(flags & 4) && !(flags & 8) && rest != fixed_g)
        FAIL(L, "its gap stream does not fill its payload");
    if (rest < ((flags & 8) ? (entries + 7) / 8 : fixed_g))
        FAIL(L, "its gap stream is too short for its entries");
    L->k = (uint32_t)k;
    L->entries = entries;
    L->survivors = survivors;
    L->weight_nbytes = wbytes;
    L->index_bits = ibits;
    L->filler = (flags & 16) != 0;
    L->wmode = (flags & 4) ? HUFFMAN : FIXED;
    L->pmode = (flags & 8) ? HUFFMAN : FIXED;
    L->positions = GAPS;
    L->strict = 1;
    return DCZ_OK;
}

/* version 2: header_v2.py _decode_deep and _check_counts */
static int parse_deep_v2(parser *P, dcz_error *err)
{
    dcz_layer *L = P->L;
    uint8_t flags, modes, codes, widths;
    const uint8_t *b;
    uint64_t value, ties, seed, k, entries, survivors, wbytes, holes = 0;
    unsigned positions, wmode, pmode, ibits;
    int r, bad;
    (void)ties;
    if (!rd_u8(&P->r, &flags) || !rd_u8(&P->r, &modes) || !rd_u8(&P->r, &codes) ||
        !rd_u8(&P->r, &widths))
        FAIL(0, "header is truncated");
    if (!rd_take(&P->r, (flags & 16) ? 4 : 8, &b)) FAIL(0, "header is truncated");
    value = (flags & 16) ? widen_f32(get_u32le(b)) : get_u64le(b);
    if (!rd_take(&P->r, (flags & 32) ? 4 : 8, &b)) FAIL(0, "header is truncated");
    if ((r = rd_varint(&P->r, (uint64_t)1 << 63, &ties)) <= 0 ||
        (r = rd_varint(&P->r, 0xFFFFFFFFu, &seed)) <= 0 ||
        (r = rd_varint(&P->r, (uint64_t)1 << 63, &k)) <= 0 ||
        (r = rd_varint(&P->r, (uint64_t)1 << 63, &entries)) <= 0 ||
        (r = rd_varint(&P->r, (uint64_t)1 << 63, &survivors)) <= 0 ||
        (r = rd_varint(&P->r, (uint64_t)1 << 63, &wbytes)) <= 0)
        FAIL(0, r < 0 ? "a header field exceeds its limit" : "header is truncated");
    wmode = modes & 3;
    pmode = modes >> 2 & 3;
    positions = modes >> 4;
    if (positions == HOLES && (r = rd_varint(&P->r, L->numel, &holes)) <= 0)
        FAIL(0, r < 0 ? "a header field exceeds its limit" : "header is truncated");
    if (flags >= 128 || ((flags & 64) && !(flags & 8)) || wmode == 3 || pmode == 3)
        FAILN(L, "has unknown flag bits", (uint64_t)flags << 8 | modes);
    if (positions > 3 || codes >> 4 || (codes & 3) == 3) FAIL(L, "has unknown settings codes");
    ibits = (widths >> 3) + 1;
    r = check_settings(err, L, codes & 3, value, (int)ibits);
    if (r) return r;
    bad = k > MAX_CODEBOOK || wbytes > L->payload_len || entries > L->numel;
    if (positions == GAPS)
        bad = bad || survivors > entries || gt_shl(L->numel, entries + 1, ibits);
    else {
        bad = bad || survivors != entries || (flags & 4);
        bad = bad || (positions == DENSE && entries != L->numel);
        bad = bad || (positions == HOLES && holes < L->numel - entries);
    }
    if (bad) FAIL(L, "has inconsistent stream sizes");
    L->k = (uint32_t)k;
    L->entries = entries;
    L->survivors = survivors;
    L->weight_nbytes = wbytes;
    L->holes = holes;
    L->index_bits = (uint8_t)ibits;
    L->filler = (flags & 4) != 0;
    L->half = (flags & 8) != 0;
    L->coded = (flags & 64) != 0;
    L->wmode = (uint8_t)wmode;
    L->pmode = (uint8_t)pmode;
    L->positions = (uint8_t)positions;
    /* verify.py walks version-1 forms strictly (streams fill the payload exactly) and
     * checks the others by decoding them */
    L->strict = positions == GAPS && !L->half && !L->coded && wmode != CONSTANT &&
                pmode != CONSTANT;
    return DCZ_OK;
}

static int parse_shape(parser *P, dcz_error *err, uint8_t ndim)
{
    dcz_layer *L = P->L;
    uint64_t prod = 1, d;
    int zero = 0, over = 0, r;
    unsigned i;
    if (ndim > DCZ_MAX_NDIM) FAILN(L, "claims dimensions:", ndim);
    L->ndim = ndim;
    L->dims = P->r.p + P->r.pos;
    for (i = 0; i < ndim; i++) {
        if ((r = rd_varint(&P->r, MAX_ELEMENTS, &d)) <= 0)
            FAIL(0, r < 0 ? "a header field exceeds its limit" : "header is truncated");
        if (d == 0) zero = 1;
        else if (!over) {
            if (prod > MAX_ELEMENTS / d) over = 1;
            else prod *= d;
        }
    }
    if (zero) prod = 0;
    else if (over || prod > MAX_ELEMENTS) FAIL(L, "claims an absurd shape");
    L->numel = prod;
    return DCZ_OK;
}

/* A generic record (method codes 16 and up, format versions to come): varint(len(params)) +
 * params, which the method's payload function reads from L->params. Only methods listed in
 * METHODS get here; any other code was refused as "unsupported method N". */
static int parse_generic(parser *P, dcz_error *err)
{
    dcz_layer *L = P->L;
    int r;
    if ((r = rd_varint(&P->r, P->r.n, &L->params_len)) <= 0 || !rd_take(&P->r, L->params_len, &L->params))
        FAIL(L, r < 0 ? "method parameters exceed the header" : "header is truncated");
    return DCZ_OK;
}

static int parse_record(parser *P, dcz_error *err, char *names)
{
    dcz_file *f = P->f;
    dcz_layer *L = P->L;
    uint64_t shared = 0, len, payload;
    const uint8_t *s;
    uint8_t code, ndim, method;
    int r;
    if (f->version == 1) {
        if ((r = rd_varint(&P->r, DCZ_MAX_NAME, &len)) <= 0 || !rd_take(&P->r, len, &s))
            FAIL(0, r < 0 ? "a layer name is too long" : "header is truncated");
    } else {
        if ((r = rd_varint(&P->r, P->prev_name_len, &shared)) <= 0 ||
            (r = rd_varint(&P->r, DCZ_MAX_NAME - shared, &len)) <= 0 || !rd_take(&P->r, len, &s))
            FAIL(0, r < 0 ? "a layer name field exceeds its limit" : "header is truncated");
    }
    memcpy(f->name + shared, s, (size_t)len);
    len += shared;
    f->name[len] = 0;
    P->prev_name_len = (size_t)len;
    if (!valid_utf8((const uint8_t *)f->name, (size_t)len)) FAIL(0, "a layer name is not valid UTF-8");
    if (names) {
        memcpy(names, f->name, (size_t)len + 1);
        L->name = names;
    } else L->name = f->name;
    L->name_len = (uint32_t)len;
    if (!rd_u8(&P->r, &code)) FAIL(0, "header is truncated");
    if (f->version == 1) {
        if (!rd_u8(&P->r, &ndim)) FAIL(0, "header is truncated");
        if (code < 1 || code > 13) FAILN(L, "has an unknown dtype code", code);
        if ((r = parse_shape(P, err, ndim))) return r;
    } else if (code & SAME_SHAPE) {
        if (!P->have_prev) FAIL(L, "repeats the shape of no earlier layer");
        L->ndim = P->prev_ndim;
        L->dims = P->prev_dims;
        L->numel = P->prev_numel;
    } else {
        if (!rd_u8(&P->r, &ndim)) FAIL(0, "header is truncated");
        if ((r = parse_shape(P, err, ndim))) return r;
    }
    code &= (uint8_t)~SAME_SHAPE;
    if (code < 1 || code > 13) FAILN(L, "has an unknown dtype code", code);
    L->dtype = code;
    if (!rd_u8(&P->r, &method)) FAIL(0, "header is truncated");
    if (!method_of(f->version, method)) FAILN(L, "unsupported method", method);
    L->method = method;
    if ((r = rd_varint(&P->r, (uint64_t)1 << 63, &payload)) <= 0 || !rd_u32(&P->r, &L->crc))
        FAIL(0, r < 0 ? "a header field exceeds its limit" : "header is truncated");
    L->payload_len = payload;
    /* a payload larger than the file cannot add up to its size: refused here already, so
     * the size arithmetic below never overflows */
    if (payload > f->size) FAIL(L, "payload runs past the end of the file");
    if (method == DCZ_RAW_FP16 || method == DCZ_RAW_BF16) {
        if (code != DCZ_FLOAT32 && code != DCZ_FLOAT64)
            FAIL(L, "a layer of this dtype cannot be stored at lower precision");
        if (payload != L->numel * 2) FAIL(L, "stored size does not match its shape");
        return DCZ_OK;
    }
    if (method == DCZ_RAW) {
        if (payload != L->numel * ITEMSIZE[code]) FAIL(L, "stored size does not match its shape");
        return DCZ_OK;
    }
    if (method >= 16) return parse_generic(P, err);
    /* deep */
    if (f->version == 1) {
        if (L->numel == 0) FAIL(L, "is deep-compressed but has a zero dimension");
        return parse_deep_v1(P, err);
    }
    return parse_deep_v2(P, err);
}

/* ------------------------------------------------------------------------- bit streams */

typedef struct { const uint8_t *p; uint64_t pos, end; } bits; /* positions in bits */

static int bit1(bits *b, uint32_t *v)
{
    if (b->pos >= b->end) return 0;
    *v = (uint32_t)(b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1u;
    b->pos++;
    return 1;
}

static int bitn(bits *b, unsigned w, uint32_t *v) /* w <= 25 */
{
    uint32_t x = 0;
    if (b->end - b->pos < w) return 0;
    while (w) {
        unsigned off = (unsigned)(b->pos & 7), take = 8 - off;
        uint32_t byte = b->p[b->pos >> 3];
        if (take > w) take = w;
        x = x << take | ((byte >> (8 - off - take)) & ((1u << take) - 1));
        b->pos += take;
        w -= take;
    }
    *v = x;
    return 1;
}

/* read_uvarint: minimal LEB128, at most `max`; the offset moves past it. */
static int uvarint_min(const uint8_t *p, uint64_t n, uint64_t *off, uint32_t max, uint32_t *v)
{
    unsigned nbytes = 1, k;
    uint32_t value = 0, m = max;
    while (m >>= 7) nbytes++;
    for (k = 0; k < nbytes; k++) {
        uint8_t byte;
        if (*off >= n) return 0;
        byte = p[(*off)++];
        value |= (uint32_t)(byte & 0x7F) << (7 * k);
        if (!(byte & 0x80)) {
            if ((byte == 0 && k) || value > max) return 0;
            *v = value;
            return 1;
        }
    }
    return 0;
}

/* A canonical Huffman code (DEFLATE's assignment) from its stored table. */
typedef struct {
    uint32_t count[MAX_CODE_LENGTH + 1];
    const uint16_t *sym; /* used symbols sorted by (length, symbol) */
    unsigned maxlen;
} huff;

/* Read a code table (huffman_table.py) at byte `*off` of p[0..n): its alphabet must be at
 * most `alphabet`. Counts lengths into h, and with `sym` also lists the symbols (needs
 * `*used` entries, the count of the first pass). */
static int read_table(const uint8_t *p, uint64_t n, uint64_t *off, uint32_t alphabet, huff *h,
                      uint16_t *sym, size_t *used)
{
    uint32_t A, s = 0, f, nb, v;
    uint32_t next[MAX_CODE_LENGTH + 2];
    bits b;
    unsigned len;
    uint64_t kraft = 0;
    if (!uvarint_min(p, n, off, MAX_TABLE_ALPHABET, &A) || A > alphabet) return 0;
    memset(h, 0, sizeof *h);
    b.p = p;
    b.pos = *off * 8;
    b.end = n * 8;
    for (int pass = sym ? 0 : 1; pass < 2; pass++) { /* with sym: count, then place */
        uint64_t start = b.pos;
        s = 0;
        while (s < A) {
            if (!bitn(&b, 5, &f)) return 0;
            if (f <= MAX_CODE_LENGTH) {
                if (f) {
                    if (pass == 1 && sym) sym[next[f]++] = (uint16_t)s;
                    else h->count[f]++;
                }
                s++;
                continue;
            }
            if (f != 31 || !bitn(&b, 5, &nb) || nb > 19 || !bitn(&b, nb, &v)) return 0;
            v = ((1u << nb) | v) + 1;
            if (v > A - s) return 0;
            s += v;
        }
        if (pass == 0) {
            b.pos = start;
            next[1] = 0;
            for (len = 1; len <= MAX_CODE_LENGTH; len++) next[len + 1] = next[len] + h->count[len];
        }
    }
    if (b.pos & 7) { /* padding to the byte must be zero */
        unsigned pad = 8 - (unsigned)(b.pos & 7);
        if (!bitn(&b, pad, &v) || v) return 0;
    }
    *off = b.pos / 8;
    *used = 0;
    h->maxlen = 0;
    for (len = 1; len <= MAX_CODE_LENGTH; len++) {
        kraft += (uint64_t)h->count[len] << (MAX_CODE_LENGTH - len);
        *used += h->count[len];
        if (h->count[len]) h->maxlen = len;
    }
    if (kraft > (1u << MAX_CODE_LENGTH)) return 0; /* over-subscribed */
    h->sym = sym;
    return 1;
}

static int huff_next(const huff *h, bits *b, uint32_t *v)
{
    int32_t code = 0, first = 0, index = 0;
    unsigned len;
    for (len = 1; len <= h->maxlen; len++) {
        uint32_t bit;
        int32_t count = (int32_t)h->count[len];
        if (!bit1(b, &bit)) return 0;
        code |= (int32_t)bit;
        if (code - first < count) {
            *v = h->sym[index + code - first];
            return 1;
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return 0; /* no code (or an empty code) */
}

typedef struct {
    int mode;
    unsigned width;
    uint32_t konst;
    huff h;
    bits b;
    uint64_t taken, count; /* symbols read, and at most */
} stream;

static int next_symbol(stream *s, uint32_t *v)
{
    if (s->taken >= s->count) return 0;
    s->taken++;
    if (s->mode == CONSTANT) { *v = s->konst; return 1; }
    if (s->mode == HUFFMAN) return huff_next(&s->h, &s->b, v);
    if (s->width == 0) { *v = 0; return 1; }
    return bitn(&s->b, s->width, v);
}

static uint64_t stream_nbytes(const stream *s, uint64_t start)
{
    return (s->b.pos - start + 7) / 8;
}

/* ------------------------------------------------------------------- value conversions */

static float f32_of(uint32_t b)
{
    float x;
    memcpy(&x, &b, 4);
    return x;
}
static uint32_t bits_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}

/* numpy's float16 -> float32 (exact; a NaN keeps its payload, unquieted) */
static uint32_t half_to_f32(uint16_t h)
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
        uint32_t m = (x & 0x7FFFFF) | (e ? 0x800000 : 0), shift = 126 - e + (e ? 0 : 1);
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
        return f32_of((uint32_t)(d >> 32 & 0x80000000u) | 0x7FC00000u | (uint32_t)(d >> 29 & 0x7FFFFF));
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
        v = (u >> (nbits - 1)) ? (int64_t)u - ((int64_t)1 << (nbits - 1)) - ((int64_t)1 << (nbits - 1))
                               : (int64_t)u;
    } else v = (u >> 63) ? -(int64_t)(~u) - 1 : (int64_t)u;
    return (float)v;
}

/* A deep layer's float32 value as the Python reader casts it to the record's dtype, then
 * to float32 (dtypes.cast; integer dtypes as numpy does on x86-64: never written by
 * inspector, which deep-compresses float layers only). */
static float cast_value(uint8_t dtype, float v)
{
    switch (dtype) {
    case DCZ_FLOAT16: return f32_of(half_to_f32(f32_to_half(bits_of(v))));
    case DCZ_BFLOAT16: return bf16_round(v);
    case DCZ_INT8: return signed_of(cvt32(v), 8);
    case DCZ_UINT8: return (float)(cvt32(v) & 0xFF);
    case DCZ_INT16: return signed_of(cvt32(v), 16);
    case DCZ_UINT16: return (float)(cvt32(v) & 0xFFFF);
    case DCZ_INT32: return signed_of(cvt32(v), 32);
    case DCZ_UINT32: return (float)(v < 2147483648.0f ? cvt32(v) : cvt32(v - 2147483648.0f) ^ 0x80000000u);
    case DCZ_INT64: return signed_of(cvt64(v), 64);
    case DCZ_UINT64:
        return (float)(v < 9223372036854775808.0f ? cvt64(v)
                                                  : cvt64(v - 9223372036854775808.0f) ^ 0x8000000000000000ull);
    default: return v; /* float32, float64 (exact), bool (kept as float32) */
    }
}

/* ---------------------------------------------------------------------------- raw */

static int method_raw(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
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
            v = f32_of(L->method == DCZ_RAW_FP16 ? half_to_f32(h) : (uint32_t)h << 16);
            if (L->dtype == DCZ_FLOAT64) v = quieted(v); /* held as float64 in Python */
            out[i] = v;
            continue;
        }
        switch (L->dtype) {
        case DCZ_FLOAT32: v = f32_of(get_u32le(p + 4 * i)); break;
        case DCZ_FLOAT16: v = f32_of(half_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8))); break;
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

/* --------------------------------------------------------------------------- deep */

/* The tables of a deep payload: codebook, then the weight and position table slots. */
typedef struct {
    float cb[MAX_CODEBOOK];
    stream w, g;
    uint64_t wstart, gstart; /* bit positions where the streams start */
    size_t used;             /* uint16 entries the symbol lists take */
} deep_tables;

static int read_slot(const dcz_layer *L, uint64_t *off, int mode, uint32_t alphabet,
                     stream *s, uint16_t *sym, size_t *used)
{
    const uint8_t *p = L->payload;
    uint64_t n = L->payload_len;
    s->mode = mode;
    if (mode == HUFFMAN) {
        size_t u = 0;
        if (!read_table(p, n, off, alphabet, &s->h, sym ? sym + *used : 0, &u)) return 0;
        *used += u;
    } else if (mode == CONSTANT) {
        if (alphabet < 1 || !uvarint_min(p, n, off, alphabet - 1, &s->konst)) return 0;
    }
    return 1;
}

/* Read the codebook and table slots (sym NULL: only count the Huffman symbols). */
static int deep_tables_read(const dcz_layer *L, deep_tables *t, uint16_t *sym, dcz_error *err)
{
    const uint8_t *p = L->payload;
    uint64_t n = L->payload_len, off = 0, gap_off;
    uint32_t k = L->k, i, walpha = L->k + L->filler;
    int coded_pos = L->positions == GAPS || L->positions == HOLES;
    if (L->coded) {
        uint32_t key = 0, step;
        for (i = 0; i < k; i++) {
            if (!uvarint_min(p, n, &off, 0xFFFF - (i ? key : 0), &step)) FAIL(L, "cannot be decoded: bad codebook varint");
            key = i ? key + step : step;
            t->cb[i] = f32_of(half_to_f32((uint16_t)((key & 0x8000) ? key ^ 0x8000 : key ^ 0xFFFF)));
        }
    } else if (L->half) {
        if (2 * (uint64_t)k > n) FAIL(L, "cannot be decoded: codebook runs past the end of the layer");
        for (i = 0; i < k; i++) t->cb[i] = f32_of(half_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)));
        off = 2 * (uint64_t)k;
    } else {
        if (4 * (uint64_t)k > n) FAIL(L, "its codebook runs past the end of the layer");
        for (i = 0; i < k; i++) {
            t->cb[i] = f32_of(get_u32le(p + 4 * i));
            if (L->strict && !finite32(bits_of(t->cb[i])))
                FAIL(L, "is inconsistent: its codebook holds a value that is not finite");
        }
        off = 4 * (uint64_t)k;
    }
    t->used = 0;
    if (!read_slot(L, &off, L->wmode, walpha, &t->w, sym, &t->used))
        FAIL(L, "is inconsistent: its weight code table is damaged");
    memset(&t->g, 0, sizeof t->g);
    if (coded_pos && !read_slot(L, &off, L->pmode, 1u << L->index_bits, &t->g, sym, &t->used))
        FAIL(L, "is inconsistent: its position code table is damaged");
    if (!coded_pos) t->g.mode = FIXED;
    gap_off = off + L->weight_nbytes;
    if (gap_off > n) FAIL(L, "is inconsistent: its weight codes run past the end of the layer");
    t->w.width = fixed_width(walpha);
    t->w.b.p = p;
    t->w.b.pos = off * 8;
    t->w.b.end = gap_off * 8;
    t->w.count = L->entries;
    t->w.taken = 0;
    t->g.width = L->index_bits;
    t->g.b.p = p;
    t->g.b.pos = gap_off * 8;
    t->g.b.end = n * 8;
    t->g.count = L->positions == GAPS ? L->entries : L->holes;
    t->g.taken = 0;
    t->wstart = t->w.b.pos;
    t->gstart = t->g.b.pos;
    return DCZ_OK;
}

static int method_deep(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
{
    deep_tables t;
    uint64_t size = L->numel, e, kept = 0;
    uint32_t w, g, k = L->k, mask = (1u << L->index_bits) - 1;
    int r = deep_tables_read(L, &t, f->scratch, err);
    const char *bad = "is inconsistent: its streams disagree with its record";
    if (r) return r;
    if (out) memset(out, 0, (size_t)size * sizeof *out);
#define WEIGHT_AT(pos)                                                                   \
    do {                                                                                 \
        if (!next_symbol(&t.w, &w)) FAIL(L, "is inconsistent: its weight stream is damaged"); \
        if (w >= k) FAIL(L, "is inconsistent: a weight symbol lies outside the codebook");    \
        if (!L->strict && !finite32(bits_of(t.cb[w])))                                   \
            FAIL(L, "is inconsistent: its codebook holds a value that is not finite");   \
        if (out) out[pos] = cast_value(L->dtype, t.cb[w]);                               \
    } while (0)
    if (L->positions == GAPS) {
        int64_t pos = -1;
        uint64_t fillers = 0;
        for (e = 0; e < L->entries; e++) {
            if (!next_symbol(&t.w, &w)) FAIL(L, "is inconsistent: its weight stream is damaged");
            if (!next_symbol(&t.g, &g)) FAIL(L, "is inconsistent: its gap stream is damaged");
            pos += (int64_t)g + 1;
            if ((uint64_t)pos >= size) FAILN(L, "is inconsistent: its entries pass the layer's end at entry", e);
            if (L->filler && w == k) {
                if (g != mask) FAIL(L, "is inconsistent: a filler entry carries a gap other than the largest");
                fillers++;
                continue;
            }
            if (w >= k) FAIL(L, "is inconsistent: a weight symbol lies outside the codebook");
            if (!L->strict && !finite32(bits_of(t.cb[w])))
                FAIL(L, "is inconsistent: its codebook holds a value that is not finite");
            if (out) out[pos] = cast_value(L->dtype, t.cb[w]);
        }
        if ((size - (uint64_t)(pos + 1)) >> L->index_bits) FAIL(L, "is inconsistent: its entries do not span the layer's shape");
        if (L->strict) {
            if (stream_nbytes(&t.w, t.wstart) != L->weight_nbytes)
                FAIL(L, "is inconsistent: its weight stream length disagrees with the record");
            if (t.gstart / 8 + stream_nbytes(&t.g, t.gstart) != L->payload_len)
                FAIL(L, "is inconsistent: its gap stream does not end where the layer's payload ends");
            if (L->filler && !fillers)
                FAIL(L, "is inconsistent: its record announces filler entries the stream does not hold");
            if (L->entries - fillers != L->survivors) FAIL(L, bad);
        }
        return DCZ_OK;
    }
    if (L->positions == DENSE) {
        for (e = 0; e < size; e++) WEIGHT_AT(e);
        return DCZ_OK;
    }
    if (L->positions == BITMAP) {
        uint64_t at = t.gstart / 8;
        if (at + (size + 7) / 8 > L->payload_len)
            FAIL(L, "cannot be decoded: position bitmap runs past the end of the layer");
        for (e = 0; e < size; e++) {
            if (!(L->payload[at + e / 8] >> (7 - e % 8) & 1)) continue;
            if (++kept > L->entries) FAIL(L, "cannot be decoded: position bitmap disagrees with the count of kept weights");
            WEIGHT_AT(e);
        }
        if (kept != L->entries) FAIL(L, "cannot be decoded: position bitmap disagrees with the count of kept weights");
        return DCZ_OK;
    }
    { /* HOLES: the stream lists the pruned positions; every other one is kept */
        int64_t hpos = -1;
        uint64_t p = 0, nholes = 0, j;
        for (j = 0; j < L->holes; j++) {
            if (!next_symbol(&t.g, &g)) FAIL(L, "cannot be decoded: its position stream is damaged");
            if (g == mask) {
                hpos += mask;
                if (j + 1 == L->holes) FAIL(L, "cannot be decoded: position holes end with a skip");
                continue;
            }
            hpos += (int64_t)g + 1;
            if ((uint64_t)hpos >= size) FAIL(L, "cannot be decoded: position holes disagree with the layer's size");
            for (; p < (uint64_t)hpos; p++) {
                if (++kept > L->entries) FAIL(L, "cannot be decoded: position holes disagree with the layer's size");
                WEIGHT_AT(p);
            }
            p = (uint64_t)hpos + 1;
            nholes++;
        }
        if (nholes != size - L->entries) FAIL(L, "cannot be decoded: position holes disagree with the layer's size");
        for (; p < size; p++) WEIGHT_AT(p);
        return DCZ_OK;
    }
#undef WEIGHT_AT
}

/* -------------------------------------------------------------------------- the file */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static int names_less(const dcz_layer *a, const dcz_layer *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    return c < 0 || (c == 0 && a->name_len < b->name_len);
}

static void sift(const dcz_layer *L, uint32_t *ix, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        uint32_t tmp;
        if (child >= n) return;
        if (child + 1 < n && names_less(&L[ix[child]], &L[ix[child + 1]])) child++;
        if (!names_less(&L[ix[root]], &L[ix[child]])) return;
        tmp = ix[root]; ix[root] = ix[child]; ix[child] = tmp;
        root = child;
    }
}

static int check_unique(dcz_file *f, uint32_t *ix, dcz_error *err)
{
    size_t n = f->count, i;
    for (i = 0; i < n; i++) ix[i] = (uint32_t)i;
    for (i = n / 2; i-- > 0;) sift(f->layers, ix, i, n); /* heapsort: no recursion, no malloc */
    for (i = n; i-- > 1;) {
        uint32_t tmp = ix[0]; ix[0] = ix[i]; ix[i] = tmp;
        sift(f->layers, ix, 0, i);
    }
    for (i = 1; i < n; i++) {
        const dcz_layer *a = &f->layers[ix[i - 1]], *b = &f->layers[ix[i]];
        if (a->name_len == b->name_len && !memcmp(a->name, b->name, a->name_len))
            return fail_at(err, DCZ_BAD, b, "two layers have this name", 0, 0);
    }
    return DCZ_OK;
}

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

typedef struct {
    uint64_t names;   /* bytes of all names, NULs included */
    size_t tables;    /* uint16 entries of the largest layer's Huffman symbol lists */
} sizes;

/* Read every record of the header (into `store` when given, names copied to `names`); with
 * `tables`, also check each deep payload's CRC and size its Huffman tables. */
static int parse_all(dcz_file *f, uint64_t start, uint64_t budget, dcz_layer *store,
                     char *names, int tables, sizes *sz, dcz_error *err)
{
    parser P;
    dcz_layer one;
    uint64_t count, pos = start, total = 0, scratch = 0;
    uint32_t i, hlen = get_u32le(f->data + 6);
    int r;
    memset(&P, 0, sizeof P);
    P.f = f;
    P.r.p = f->data + 10;
    P.r.n = hlen;
    if ((r = rd_varint(&P.r, hlen, &count)) <= 0)
        FAIL(0, r < 0 ? "a header field exceeds its limit" : "header is truncated");
    f->count = (uint32_t)count;
    sz->names = 0;
    for (i = 0; i < count; i++) {
        dcz_layer *L = store ? &store[i] : &one;
        uint64_t item;
        memset(L, 0, sizeof *L);
        P.L = L;
        r = parse_record(&P, err, names);
        if (r) {
            if (err) err->layer = i;
            return r;
        }
        if (names) names += L->name_len + 1;
        sz->names += L->name_len + 1;
        L->payload = f->data + (pos < f->size ? pos : f->size);
        pos = sat_add(pos, L->payload_len);
        /* verify.decoded_nbytes, and the largest deep layer's float32 scratch */
        item = L->dtype == DCZ_BFLOAT16 ? 4 : ITEMSIZE[L->dtype];
        if (L->method == DCZ_DEEP) {
            total = sat_add(total, L->numel * (item > 4 ? item : 4));
            if (L->numel * 4 > scratch) scratch = L->numel * 4;
        } else total = sat_add(total, L->numel * item);
        if (tables && L->method == DCZ_DEEP) { /* payloads are known to be in the file */
            deep_tables t;
            if (dcz_crc32(0, L->payload, (size_t)L->payload_len) != L->crc) {
                if (err) err->layer = i;
                FAIL(L, "is damaged (checksum mismatch)");
            }
            if ((r = deep_tables_read(L, &t, 0, err))) {
                if (err) err->layer = i;
                return r;
            }
            L->scratch = t.used;
            if (t.used > sz->tables) sz->tables = t.used;
        }
        P.have_prev = 1;
        P.prev_dims = L->dims;
        P.prev_ndim = L->ndim;
        P.prev_numel = L->numel;
    }
    if (P.r.pos != P.r.n) FAILN(0, "header has unexpected trailing bytes:", P.r.n - P.r.pos);
    if (pos != f->size) {
        if (pos > f->size) FAIL(0, "file is truncated");
        FAILN(0, "file has unexpected trailing bytes:", f->size - pos);
    }
    if (!count) FAIL(0, "holds no layers");
    if (sat_add(total, scratch) > budget)
        FAIL(0, "its layers decode to more than the memory budget (half this machine's memory)");
    return DCZ_OK;
}

int dcz_open(dcz_file *f, const void *data, size_t size, uint64_t budget, void *work,
             size_t work_size, dcz_error *err)
{
    const uint8_t *d = (const uint8_t *)data;
    uint8_t *wk = (uint8_t *)work;
    uint32_t hlen, i;
    uint64_t start;
    size_t rec_bytes, idx_bytes, need;
    sizes sz = {0, 0};
    int r;
    if (err) { err->message[0] = 0; err->layer = -1; }
    memset(f, 0, sizeof *f);
    f->data = d;
    f->size = size;
    if (size < 10 || memcmp(d, "\x89" "DCZ", 4)) FAIL(0, "not an inspector compressed file (bad magic bytes)");
    if (d[4] != 1 && d[4] != 2) FAILN(0, "format version not supported (this decoder reads 1, 2):", d[4]);
    if (d[5]) FAILN(0, "unknown file flags (damaged, or a newer writer):", d[5]);
    hlen = get_u32le(d + 6);
    if ((uint64_t)10 + hlen + 4 > size) FAIL(0, "header is truncated");
    if (dcz_crc32(0, d + 10, hlen) != get_u32le(d + 10 + hlen)) FAIL(0, "header is damaged (checksum mismatch)");
    /* sizes below stay far from 64-bit overflow (entries x bits, payload sums) */
    if ((uint64_t)size >> 48) FAIL(0, "file is too large for this decoder");
    f->version = d[4];
    start = (uint64_t)10 + hlen + 4;
    if ((r = parse_all(f, start, budget, 0, 0, 0, &sz, err))) return r;
    if ((r = parse_all(f, start, budget, 0, 0, 1, &sz, err))) return r;
    rec_bytes = align8((size_t)f->count * sizeof(dcz_layer));
    idx_bytes = align8((size_t)f->count * sizeof(uint32_t));
    need = rec_bytes + idx_bytes + align8((size_t)sz.names) + sz.tables * sizeof(uint16_t);
    f->work_needed = need;
    f->scratch_size = sz.tables * sizeof(uint16_t);
    if (!work || work_size < need) return DCZ_NEED_WORK;
    f->layers = (dcz_layer *)(void *)wk;
    f->scratch = (uint16_t *)(void *)(wk + rec_bytes + idx_bytes + align8((size_t)sz.names));
    if ((r = parse_all(f, start, budget, f->layers, (char *)(wk + rec_bytes + idx_bytes), 1, &sz, err)))
        return r;
    if ((r = check_unique(f, (uint32_t *)(void *)(wk + rec_bytes), err))) return r;
    for (i = 0; i < f->count; i++) {
        dcz_layer *L = &f->layers[i];
        if (dcz_crc32(0, L->payload, (size_t)L->payload_len) != L->crc) {
            if (err) err->layer = i;
            FAIL(L, "is damaged (checksum mismatch)");
        }
        if ((r = method_of(f->version, L->method)(f, L, 0, err))) {
            if (err) err->layer = i;
            return r;
        }
    }
    return DCZ_OK;
}

uint32_t dcz_count(const dcz_file *f) { return f->count; }
const char *dcz_name(const dcz_file *f, uint32_t i) { return f->layers[i].name; }
size_t dcz_name_len(const dcz_file *f, uint32_t i) { return f->layers[i].name_len; }
int dcz_dtype(const dcz_file *f, uint32_t i) { return f->layers[i].dtype; }
int dcz_method(const dcz_file *f, uint32_t i) { return f->layers[i].method; }
uint64_t dcz_numel(const dcz_file *f, uint32_t i) { return f->layers[i].numel; }
size_t dcz_layer_scratch(const dcz_file *f, uint32_t i) { return f->layers[i].scratch * sizeof(uint16_t); }
size_t dcz_payload_size(const dcz_file *f, uint32_t i) { return (size_t)f->layers[i].payload_len; }

unsigned dcz_shape(const dcz_file *f, uint32_t i, uint64_t dims[DCZ_MAX_NDIM])
{
    const dcz_layer *L = &f->layers[i];
    rd r;
    unsigned j;
    r.p = L->dims;
    r.n = (size_t)(f->data + f->size - L->dims);
    r.pos = 0;
    for (j = 0; j < L->ndim; j++)
        if (rd_varint(&r, MAX_ELEMENTS, &dims[j]) <= 0) dims[j] = 0; /* checked at open */
    return L->ndim;
}

int dcz_decode(const dcz_file *f, uint32_t i, float *out, size_t n, dcz_error *err)
{
    const dcz_layer *L;
    int r;
    if (err) { err->message[0] = 0; err->layer = -1; }
    if (i >= f->count) FAILN(0, "no such layer:", i);
    L = &f->layers[i];
    if (!out || n < L->numel) return fail_at(err, DCZ_SMALL, L, "output buffer too small for its values:", 1, L->numel);
    r = method_of(f->version, L->method)(f, L, out, err);
    if (r && err) err->layer = i;
    return r;
}

int dcz_raw(const dcz_file *f, uint32_t i, const uint8_t **bytes, size_t *nbytes)
{
    const dcz_layer *L = &f->layers[i];
    if (L->method != DCZ_RAW) return DCZ_UNSUPPORTED;
    *bytes = L->payload;
    *nbytes = (size_t)L->payload_len;
    return DCZ_OK;
}
