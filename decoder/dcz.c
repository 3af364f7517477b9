/* dcz.c: reading inspector's .dcz container (docs/format.md), versions 1 and 2: the file,
 * its error messages and its methods. dcz_header.c reads the records, dcz_deep.c the deep
 * payloads, dcz_values.c the raw ones and the value conversions.
 *
 * The checks mirror the Python reader one for one (inspector/format/header.py, header_v2.py,
 * verify.py, inspector/core/decode.py): the same file is accepted or refused by both. Where
 * the Python reader is lenient (version-2 forms do not check that streams fill the payload
 * exactly), this one is too, so the two never disagree.
 */
#include "dcz_internal.h"

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

int dcz__fail(dcz_error *e, int code, const dcz_layer *L, const char *what, int has_n, uint64_t n)
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
            } else if (u[0] == 0xE2 && i + 2 < len && u[1] == 0x80 &&
                       (u[2] == 0xA8 || u[2] == 0xA9)) {
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

/* --------------------------------------------------------------------- payload methods */

static const struct {
    uint8_t code, since; /* method code, first format version that has it */
    dcz__payload_fn run;
} METHODS[] = {
    {DCZ_RAW, 1, dcz__method_raw},
    {DCZ_DEEP, 1, dcz__method_deep},
    {DCZ_RAW_FP16, 2, dcz__method_raw},
    {DCZ_RAW_BF16, 2, dcz__method_raw},
    {DCZ_M_UNIFORM, 2, dcz__method_uniform},
    {DCZ_M_INT8, 2, dcz__method_uniform}, /* a preset of uniform: the same record */
    {DCZ_M_INT4, 2, dcz__method_uniform},
    {DCZ_M_FP16, 2, dcz__method_half},
    {DCZ_M_BF16, 2, dcz__method_half},
    {DCZ_M_TERNARY, 2, dcz__method_signs},
    {DCZ_M_BINARY, 2, dcz__method_signs},
    {DCZ_M_PQ, 2, dcz__method_pq},
    {DCZ_M_HASHED, 2, dcz__method_hashed},
};

dcz__payload_fn dcz__method_of(int version, uint8_t code)
{
    size_t i;
    for (i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (METHODS[i].code == code && version >= METHODS[i].since) return METHODS[i].run;
    return 0;
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
            return dcz__fail(err, DCZ_BAD, b, "two layers have this name", 0, 0);
    }
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
    dcz__sizes sz = {0, 0};
    int r;
    if (err) { err->message[0] = 0; err->layer = -1; }
    memset(f, 0, sizeof *f);
    f->data = d;
    f->size = size;
    if (size < 10 || memcmp(d, "\x89" "DCZ", 4))
        FAIL(0, "not an inspector compressed file (bad magic bytes)");
    if (d[4] != 1 && d[4] != 2)
        FAILN(0, "format version not supported (this decoder reads 1, 2):", d[4]);
    if (d[5]) FAILN(0, "unknown file flags (damaged, or a newer writer):", d[5]);
    hlen = get_u32le(d + 6);
    if ((uint64_t)10 + hlen + 4 > size) FAIL(0, "header is truncated");
    if (dcz_crc32(0, d + 10, hlen) != get_u32le(d + 10 + hlen))
        FAIL(0, "header is damaged (checksum mismatch)");
    /* sizes below stay far from 64-bit overflow (entries x bits, payload sums) */
    if ((uint64_t)size >> 48) FAIL(0, "file is too large for this decoder");
    f->version = d[4];
    start = (uint64_t)10 + hlen + 4;
    if ((r = dcz__parse_all(f, start, budget, 0, 0, 0, &sz, err))) return r;
    if ((r = dcz__parse_all(f, start, budget, 0, 0, 1, &sz, err))) return r;
    if ((uint64_t)f->count * (sizeof(dcz_layer) + 8) > SIZE_MAX / 4 || sz.names > SIZE_MAX / 4)
        FAIL(0, "the file has more layers than this decoder can index"); /* 32-bit size_t */
    rec_bytes = align8((size_t)f->count * sizeof(dcz_layer));
    idx_bytes = align8((size_t)f->count * sizeof(uint32_t));
    need = rec_bytes + idx_bytes + align8((size_t)sz.names) + sz.tables * sizeof(uint16_t);
    f->work_needed = need;
    f->scratch_size = sz.tables * sizeof(uint16_t);
    if (!work || work_size < need) return DCZ_NEED_WORK;
    f->layers = (dcz_layer *)(void *)wk;
    f->scratch = (uint16_t *)(void *)(wk + rec_bytes + idx_bytes + align8((size_t)sz.names));
    r = dcz__parse_all(f, start, budget, f->layers, (char *)(wk + rec_bytes + idx_bytes), 1, &sz,
                       err);
    if (r)
        return r;
    if ((r = check_unique(f, (uint32_t *)(void *)(wk + rec_bytes), err))) return r;
    for (i = 0; i < f->count; i++) {
        dcz_layer *L = &f->layers[i];
        /* (a deep payload's CRC was checked when its tables were sized) */
        if (L->method != DCZ_DEEP && dcz_crc32(0, L->payload, (size_t)L->payload_len) != L->crc) {
            if (err) err->layer = i;
            FAIL(L, "is damaged (checksum mismatch)");
        }
        if ((r = dcz__method_of(f->version, L->method)(f, L, 0, err))) {
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
size_t dcz_layer_scratch(const dcz_file *f, uint32_t i)
{
    return f->layers[i].scratch * sizeof(uint16_t);
}
size_t dcz_payload_size(const dcz_file *f, uint32_t i) { return (size_t)f->layers[i].payload_len; }

unsigned dcz_shape(const dcz_file *f, uint32_t i, uint64_t dims[DCZ_MAX_NDIM])
{
    const dcz_layer *L = &f->layers[i];
    const uint8_t *p = L->dims; /* varints that dcz_open has checked */
    unsigned j;
    for (j = 0; j < L->ndim; j++) {
        uint64_t v = 0;
        unsigned shift = 0;
        do {
            if (shift < 64) v |= (uint64_t)(*p & 0x7F) << shift;
            shift += 7;
        } while (*p++ & 0x80);
        dims[j] = v;
    }
    return L->ndim;
}

int dcz_decode(const dcz_file *f, uint32_t i, float *out, size_t n, dcz_error *err)
{
    const dcz_layer *L;
    int r;
    if (err) { err->message[0] = 0; err->layer = -1; }
    if (i >= f->count) FAILN(0, "no such layer:", i);
    L = &f->layers[i];
    if (!out || n < L->numel)
        return dcz__fail(err, DCZ_SMALL, L, "output buffer too small for its values:", 1, L->numel);
    r = dcz__method_of(f->version, L->method)(f, L, out, err);
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

