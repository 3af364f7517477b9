/* dcz.h: a portable reader of inspector's .dcz files (format versions 1 and 2).
 *
 * C99, no dependencies beyond <stdint.h>/<stddef.h>/<string.h>, and no allocation: the file is
 * one buffer in memory (RAM or memory-mapped flash), the caller gives the work space it asks
 * for, and every layer decodes into a float32 buffer of dcz_numel() values.
 *
 *     dcz_file f;  dcz_error e;
 *     if (dcz_open(&f, data, size, budget, NULL, 0, &e) != DCZ_NEED_WORK) fail(e.message);
 *     void *work = malloc(f.work_needed);            // or a static buffer
 *     if (dcz_open(&f, data, size, budget, work, f.work_needed, &e)) fail(e.message);
 *     for (uint32_t i = 0; i < dcz_count(&f); i++) {
 *         float *w = buffer_of(dcz_numel(&f, i));
 *         if (dcz_decode(&f, i, w, dcz_numel(&f, i), &e)) fail(e.message);
 *     }
 *
 * dcz_open refuses, before anything is decoded, exactly the files inspector's Python reader
 * refuses (inspector/format/container.py open_container + read_layer): every header field is
 * checked against the others, every CRC-32, every stream against its record. (One
 * exception: a registered method's layer whose levels use the huffman entropy stage is
 * refused as unsupported; decoder/README.md.) After a
 * successful open, dcz_decode of any layer cannot fail except on a too-small output buffer.
 *
 * Layers decode to float32 as numpy's astype(float32) of what the Python reader returns:
 * float16/bfloat16/float64 layers (raw, or deep with their rounding), integer layers (their
 * values converted to float32, so int64 beyond 2**24 rounds) and bool layers (0 or 1).
 * dcz_raw() gives a raw integer layer's exact little-endian bytes instead.
 *
 * The work space holds the layer records, their names and the Huffman decode tables of the
 * layer with the largest ones (dcz_scratch_size): decoding is not re-entrant per dcz_file.
 */
#ifndef DCZ_H
#define DCZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DCZ_MAX_NDIM 32
#define DCZ_MAX_NAME 4096

enum { DCZ_OK = 0, DCZ_BAD = 1, DCZ_NEED_WORK = 2, DCZ_SMALL = 3, DCZ_UNSUPPORTED = 4 };

/* dtype codes as stored */
enum {
    DCZ_FLOAT32 = 1, DCZ_FLOAT16 = 2, DCZ_BFLOAT16 = 3, DCZ_FLOAT64 = 4, DCZ_INT8 = 5,
    DCZ_UINT8 = 6, DCZ_INT16 = 7, DCZ_INT32 = 8, DCZ_INT64 = 9, DCZ_BOOL = 10, DCZ_UINT16 = 11,
    DCZ_UINT32 = 12, DCZ_UINT64 = 13
};
/* method codes: 0 raw, 1 deep compression, 2 raw held as float16, 3 raw held as bfloat16;
 * 16 and up the registered methods this decoder reads (decoder/README.md) */
enum { DCZ_RAW = 0, DCZ_DEEP = 1, DCZ_RAW_FP16 = 2, DCZ_RAW_BF16 = 3 };
enum {
    DCZ_M_UNIFORM = 16, DCZ_M_INT8 = 17, DCZ_M_INT4 = 18, DCZ_M_FP16 = 20, DCZ_M_BF16 = 21,
    DCZ_M_TERNARY = 24, DCZ_M_BINARY = 25, DCZ_M_PQ = 26, DCZ_M_HASHED = 27
};

typedef struct {
    char message[320]; /* one line, no newline: what is wrong, naming the layer */
    int64_t layer;     /* index of the layer at fault, or -1 */
} dcz_error;

typedef struct dcz_layer dcz_layer; /* a parsed record; lives in the caller's work space */

typedef struct {
    const uint8_t *data;
    size_t size;
    int version;
    uint32_t count;
    size_t work_needed;  /* set by dcz_open (also when it returns DCZ_NEED_WORK) */
    size_t scratch_size; /* bytes of Huffman tables the largest layer needs (in the work) */
    dcz_layer *layers;
    uint16_t *scratch;
    char name[DCZ_MAX_NAME + 1]; /* the previous record's name while parsing a header */
} dcz_file;

/* Check the whole file (header, CRCs, every payload) and index it into `work`. With work too
 * small (or NULL) it checks the header, sets f->work_needed and returns DCZ_NEED_WORK.
 * `budget`: the most bytes all layers may decode to (plus the largest deep layer's float32
 * scratch, as the Python reader counts); UINT64_MAX for no limit. */
int dcz_open(dcz_file *f, const void *data, size_t size, uint64_t budget, void *work,
             size_t work_size, dcz_error *err);

uint32_t dcz_count(const dcz_file *f);
const char *dcz_name(const dcz_file *f, uint32_t i); /* NUL-terminated UTF-8 */
size_t dcz_name_len(const dcz_file *f, uint32_t i);
int dcz_dtype(const dcz_file *f, uint32_t i);
int dcz_method(const dcz_file *f, uint32_t i);
unsigned dcz_shape(const dcz_file *f, uint32_t i, uint64_t dims[DCZ_MAX_NDIM]); /* -> ndim */
uint64_t dcz_numel(const dcz_file *f, uint32_t i);
size_t dcz_layer_scratch(const dcz_file *f, uint32_t i); /* Huffman table bytes of layer i */
size_t dcz_payload_size(const dcz_file *f, uint32_t i);

/* Decode layer i into out[0..n) (n >= dcz_numel), as float32. */
int dcz_decode(const dcz_file *f, uint32_t i, float *out, size_t n, dcz_error *err);

/* The stored bytes of a method-0 (raw) layer, little-endian in its dtype. */
int dcz_raw(const dcz_file *f, uint32_t i, const uint8_t **bytes, size_t *nbytes);

uint32_t dcz_crc32(uint32_t crc, const uint8_t *p, size_t n); /* zlib's CRC-32 */

#ifdef __cplusplus
}
#endif
#endif
