/* dcz_deep.c: a deep-compressed payload (docs/format.md, "Deep payload"): codebook, code
 * tables, and the weight and position streams, walked in lockstep so one pass checks the
 * layer as inspector/format/verify.py and inspector/core/decode.py do and, given an output,
 * writes each value in place (no scratch but the Huffman symbol lists). */
#include "dcz_internal.h"

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
int dcz__uvarint_min(const uint8_t *p, uint64_t n, uint64_t *off, uint32_t max, uint32_t *v)
{
    unsigned nbytes = 1, k;
    uint32_t m = max;
    uint64_t value = 0; /* 64 bits: a fifth byte's high bits must not wrap (max 2^32 - 1) */
    while (m >>= 7) nbytes++;
    for (k = 0; k < nbytes; k++) {
        uint8_t byte;
        if (*off >= n) return 0;
        byte = p[(*off)++];
        value |= (uint64_t)(byte & 0x7F) << (7 * k);
        if (!(byte & 0x80)) {
            if ((byte == 0 && k) || value > max) return 0;
            *v = (uint32_t)value;
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
    if (!dcz__uvarint_min(p, n, off, MAX_TABLE_ALPHABET, &A) || A > alphabet) return 0;
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
        if (alphabet < 1 || !dcz__uvarint_min(p, n, off, alphabet - 1, &s->konst)) return 0;
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
        uint16_t bits16;
        for (i = 0; i < k; i++) {
            if (!dcz__uvarint_min(p, n, &off, 0xFFFF - (i ? key : 0), &step))
                FAIL(L, "cannot be decoded: bad codebook varint");
            key = i ? key + step : step;
            bits16 = (uint16_t)((key & 0x8000) ? key ^ 0x8000 : key ^ 0xFFFF); /* its pattern */
            t->cb[i] = f32_of(dcz__half_to_f32(bits16));
            if (L->strict && !finite32(bits_of(t->cb[i])))
                FAIL(L, "is inconsistent: its codebook holds a value that is not finite");
        }
    } else if (L->half) {
        if (2 * (uint64_t)k > n)
            FAIL(L, "cannot be decoded: codebook runs past the end of the layer");
        for (i = 0; i < k; i++) {
            t->cb[i] = f32_of(dcz__half_to_f32(get_u16le(p + 2 * i)));
            if (L->strict && !finite32(bits_of(t->cb[i])))
                FAIL(L, "is inconsistent: its codebook holds a value that is not finite");
        }
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

int dcz__method_deep(const dcz_file *f, const dcz_layer *L, float *out, dcz_error *err)
{
    deep_tables t;
    uint64_t size = L->numel, e, kept = 0;
    uint32_t w, g, k = L->k, mask = (1u << L->index_bits) - 1;
    int r = deep_tables_read(L, &t, f->scratch, err);
    if (r) return r;
    if (out) memset(out, 0, (size_t)size * sizeof *out);
#define WEIGHT_AT(pos)                                                                   \
    do {                                                                                 \
        if (!next_symbol(&t.w, &w)) FAIL(L, "is inconsistent: its weight stream is damaged"); \
        if (w >= k) FAIL(L, "is inconsistent: a weight symbol lies outside the codebook");    \
        if (!L->strict && !finite32(bits_of(t.cb[w])))                                   \
            FAIL(L, "is inconsistent: its codebook holds a value that is not finite");   \
        if (out) out[pos] = dcz__cast_value(L->dtype, t.cb[w]);                               \
    } while (0)
    if (L->positions == GAPS) {
        int64_t pos = -1;
        uint64_t fillers = 0;
        for (e = 0; e < L->entries; e++) {
            if (!next_symbol(&t.w, &w)) FAIL(L, "is inconsistent: its weight stream is damaged");
            if (!next_symbol(&t.g, &g)) FAIL(L, "is inconsistent: its gap stream is damaged");
            pos += (int64_t)g + 1;
            if ((uint64_t)pos >= size)
                FAILN(L, "is inconsistent: its entries pass the layer's end at entry", e);
            if (L->filler && w == k) {
                if (g != mask)
                    FAIL(L, "is inconsistent: a filler entry carries a gap other than the largest");
                fillers++;
                continue;
            }
            if (w >= k) FAIL(L, "is inconsistent: a weight symbol lies outside the codebook");
            if (!L->strict && !finite32(bits_of(t.cb[w])))
                FAIL(L, "is inconsistent: its codebook holds a value that is not finite");
            if (out) out[pos] = dcz__cast_value(L->dtype, t.cb[w]);
        }
        if ((size - (uint64_t)(pos + 1)) >> L->index_bits)
            FAIL(L, "is inconsistent: its entries do not span the layer's shape");
        if (L->strict) {
            if (stream_nbytes(&t.w, t.wstart) != L->weight_nbytes)
                FAIL(L, "is inconsistent: its weight stream length disagrees with the record");
            if (t.gstart / 8 + stream_nbytes(&t.g, t.gstart) != L->payload_len)
                FAIL(L, "is inconsistent: its gap stream does not end where the layer's "
                        "payload ends");
            if (L->filler && !fillers)
                FAIL(L, "is inconsistent: its record announces filler entries the stream "
                        "does not hold");
            if (L->entries - fillers != L->survivors)
                FAIL(L, "is inconsistent: its record's count of kept weights disagrees with "
                        "its streams");
        }
        return DCZ_OK;
    }
#define WEIGHTS_EXACT()                                                                  \
    do {                                                                                 \
        if (L->strict && stream_nbytes(&t.w, t.wstart) != L->weight_nbytes)               \
            FAIL(L, "is inconsistent: its weight stream length disagrees with the record"); \
    } while (0)
    if (L->positions == DENSE) {
        for (e = 0; e < size; e++) WEIGHT_AT(e);
        WEIGHTS_EXACT();
        if (L->strict && t.gstart / 8 != L->payload_len)
            FAIL(L, "is inconsistent: its payload does not end with its weight codes");
        return DCZ_OK;
    }
    if (L->positions == BITMAP) {
        uint64_t at = t.gstart / 8;
        if (at + (size + 7) / 8 > L->payload_len)
            FAIL(L, "cannot be decoded: position bitmap runs past the end of the layer");
        for (e = 0; e < size; e++) {
            if (!(L->payload[at + e / 8] >> (7 - e % 8) & 1)) continue;
            if (++kept > L->entries)
                FAIL(L, "cannot be decoded: position bitmap disagrees with the count of kept "
                        "weights");
            WEIGHT_AT(e);
        }
        if (kept != L->entries)
            FAIL(L, "cannot be decoded: position bitmap disagrees with the count of kept weights");
        WEIGHTS_EXACT();
        if (L->strict && at + (size + 7) / 8 != L->payload_len)
            FAIL(L, "is inconsistent: its position bitmap does not end where the payload ends");
        return DCZ_OK;
    }
    { /* HOLES: the stream lists the pruned positions; every other one is kept */
        int64_t hpos = -1;
        uint64_t p = 0, nholes = 0, j;
        for (j = 0; j < L->holes; j++) {
            if (!next_symbol(&t.g, &g))
                FAIL(L, "cannot be decoded: its position stream is damaged");
            if (g == mask) {
                hpos += mask;
                if (j + 1 == L->holes) FAIL(L, "cannot be decoded: position holes end with a skip");
                continue;
            }
            hpos += (int64_t)g + 1;
            if ((uint64_t)hpos >= size)
                FAIL(L, "cannot be decoded: position holes disagree with the layer's size");
            for (; p < (uint64_t)hpos; p++) {
                if (++kept > L->entries)
                    FAIL(L, "cannot be decoded: position holes disagree with the layer's size");
                WEIGHT_AT(p);
            }
            p = (uint64_t)hpos + 1;
            nholes++;
        }
        if (nholes != size - L->entries)
            FAIL(L, "cannot be decoded: position holes disagree with the layer's size");
        for (; p < size; p++) WEIGHT_AT(p);
        WEIGHTS_EXACT();
        if (L->strict && t.gstart / 8 + stream_nbytes(&t.g, t.gstart) != L->payload_len)
            FAIL(L, "is inconsistent: its position stream does not end where the payload ends");
        return DCZ_OK;
    }
#undef WEIGHTS_EXACT
#undef WEIGHT_AT
}


int dcz__deep_scratch(const dcz_layer *L, size_t *used, dcz_error *err)
{
    deep_tables t;
    int r = deep_tables_read(L, &t, 0, err);
    *used = t.used;
    return r;
}
