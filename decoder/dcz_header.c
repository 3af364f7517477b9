/* dcz_header.c: the header's records, every field checked against the others and the file
 * as inspector/format/header.py (version 1) and header_v2.py (version 2) check them. */
#include "dcz_internal.h"

static const uint8_t ITEMSIZE[14] = {0, 4, 2, 2, 8, 1, 1, 2, 4, 8, 1, 2, 4, 8};

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
    /* verify.py walks every form of either version strictly: the codebook is finite and the
     * streams fill the payload exactly */
    L->strict = 1;
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

/* A registered method's record (method codes 16 and up): varint(len(params)) +
 * params, which the method's payload function reads from L->params. Only methods listed in
 * METHODS get here; any other code was refused as "unsupported method N". */
static int parse_generic(parser *P, dcz_error *err)
{
    dcz_layer *L = P->L;
    int r;
    if ((r = rd_varint(&P->r, P->r.n, &L->params_len)) <= 0 ||
        !rd_take(&P->r, L->params_len, &L->params))
        FAIL(L, r < 0 ? "method parameters exceed the header" : "header is truncated");
    if (L->dtype != DCZ_FLOAT32 && L->dtype != DCZ_FLOAT64 && L->dtype != DCZ_FLOAT16 &&
        L->dtype != DCZ_BFLOAT16)
        FAIL(L, "a layer of this dtype cannot be coded by a registered method");
    if (L->numel == 0) FAIL(L, "is coded by a registered method but has a zero dimension");
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
    if (!valid_utf8((const uint8_t *)f->name, (size_t)len))
        FAIL(0, "a layer name is not valid UTF-8");
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
    if (!dcz__method_of(f->version, method)) FAILN(L, "unsupported method", method);
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

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

int dcz__parse_all(dcz_file *f, uint64_t start, uint64_t budget, dcz_layer *store,
                     char *names, int tables, dcz__sizes *sz, dcz_error *err)
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
        if (L->method == DCZ_DEEP || L->method >= 16) { /* lossy: deep or registered */
            total = sat_add(total, L->numel * (item > 4 ? item : 4));
            if (L->numel * 4 > scratch) scratch = L->numel * 4;
        } else total = sat_add(total, L->numel * item);
        if (tables && L->method == DCZ_DEEP) { /* payloads are known to be in the file */
            size_t used;
            if (dcz_crc32(0, L->payload, (size_t)L->payload_len) != L->crc) {
                if (err) err->layer = i;
                FAIL(L, "is damaged (checksum mismatch)");
            }
            if ((r = dcz__deep_scratch(L, &used, err))) {
                if (err) err->layer = i;
                return r;
            }
            L->scratch = used;
            if (used > sz->tables) sz->tables = used;
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

