/* lenet_infer: batch-1 inference of LeNet-300-100 straight from its .dcz.
 *
 *   lenet_infer MODEL.dcz IMAGES.f32 LABELS.i32
 *
 * MODEL.dcz    `inspector compress sample_models/lenet300_100.pt -o MODEL.dcz
 *               --config sample_models/lenet300_100_paper.json` (layers ip1/ip2/ip3 .weight
 *               [out, in] and .bias [out], as the PyTorch model names them)
 * IMAGES.f32   N x 784 little-endian float32 pixels, already scaled as `inspector eval` feeds
 *               them (C reads no HDF5: tests/decoder/test_lenet_example.py writes this file
 *               from sample_models/mnist_test.h5 with the project's own reader)
 * LABELS.i32   N little-endian int32 labels
 *
 * Each layer is decoded once to float32 (dcz_decode), then every image runs
 * x -> relu(W1 x + b1) -> relu(W2 . + b2) -> W3 . + b3 -> argmax, one image at a time.
 * Prints "top1 0.xxxx (correct/N)" on stdout.
 *
 * Build: make lenet_infer, or cc -std=c99 -O2 -Idecoder decoder/dcz.c decoder/dcz_header.c
 *        decoder/dcz_deep.c decoder/dcz_values.c decoder/examples/lenet_infer.c -o lenet_infer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcz.h"

#define IN 784

typedef struct {
    const char *name;
    float *w, *b;
    size_t rows, cols;
} dense;

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return NULL;
    }
    data = (uint8_t *)malloc(n ? (size_t)n : 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) { free(data); data = NULL; }
    fclose(f);
    *size = (size_t)n;
    return data;
}

static int find(const dcz_file *f, const char *name)
{
    uint32_t i;
    for (i = 0; i < dcz_count(f); i++)
        if (!strcmp(dcz_name(f, i), name)) return (int)i;
    return -1;
}

/* Decode layer `name` (rows x cols, cols 0 for a vector) into a new buffer. */
static float *decode(const dcz_file *f, const char *name, size_t rows, size_t cols)
{
    int i = find(f, name);
    uint64_t dims[DCZ_MAX_NDIM];
    unsigned nd;
    float *out;
    dcz_error e;
    if (i < 0) { fprintf(stderr, "lenet_infer: no layer %s in the file\n", name); return NULL; }
    nd = dcz_shape(f, (uint32_t)i, dims);
    if (nd != (cols ? 2u : 1u) || dims[0] != rows || (cols && dims[1] != cols)) {
        fprintf(stderr, "lenet_infer: layer %s has an unexpected shape\n", name);
        return NULL;
    }
    out = (float *)malloc((size_t)dcz_numel(f, (uint32_t)i) * sizeof *out);
    if (!out || dcz_decode(f, (uint32_t)i, out, (size_t)dcz_numel(f, (uint32_t)i), &e)) {
        fprintf(stderr, "lenet_infer: %s\n", out ? e.message : "out of memory");
        free(out);
        return NULL;
    }
    return out;
}

/* y = W x + b, then ReLU unless it is the last layer. float32 products summed in float32 in
 * index order, as a plain dense matvec does (torch's order differs only past the 6th digit,
 * far below what moves an argmax here). */
static void forward(const dense *L, const float *x, float *y, int relu)
{
    size_t r, c;
    for (r = 0; r < L->rows; r++) {
        const float *w = L->w + r * L->cols;
        float acc = 0.0f;
        for (c = 0; c < L->cols; c++) acc += w[c] * x[c];
        acc += L->b[r];
        y[r] = relu && acc < 0.0f ? 0.0f : acc;
    }
}

int main(int argc, char **argv)
{
    dense net[3] = {{"ip1", 0, 0, 300, IN}, {"ip2", 0, 0, 100, 300}, {"ip3", 0, 0, 10, 100}};
    size_t size, isize, lsize, n, k, correct = 0;
    uint8_t *data, *images, *labels;
    void *work;
    dcz_file *f;
    dcz_error e;
    int j;
    if (argc != 4) {
        fprintf(stderr, "usage: lenet_infer MODEL.dcz IMAGES.f32 LABELS.i32\n");
        return 2;
    }
    data = read_file(argv[1], &size);
    images = read_file(argv[2], &isize);
    labels = read_file(argv[3], &lsize);
    if (!data || !images || !labels) {
        fprintf(stderr, "lenet_infer: cannot read the inputs\n");
        return 1;
    }
    n = lsize / 4;
    if (isize != n * IN * 4 || !n) {
        fprintf(stderr, "lenet_infer: images and labels disagree\n");
        return 1;
    }
    f = (dcz_file *)malloc(sizeof *f);
    if (!f || dcz_open(f, data, size, UINT64_MAX, NULL, 0, &e) != DCZ_NEED_WORK) {
        fprintf(stderr, "lenet_infer: %s: %s\n", argv[1], f ? e.message : "out of memory");
        return 1;
    }
    work = malloc(f->work_needed);
    if (!work || dcz_open(f, data, size, UINT64_MAX, work, f->work_needed, &e)) {
        fprintf(stderr, "lenet_infer: %s: %s\n", argv[1], work ? e.message : "out of memory");
        return 1;
    }
    for (j = 0; j < 3; j++) {
        char name[16];
        sprintf(name, "%s.weight", net[j].name);
        net[j].w = decode(f, name, net[j].rows, net[j].cols);
        sprintf(name, "%s.bias", net[j].name);
        net[j].b = decode(f, name, net[j].rows, 0);
        if (!net[j].w || !net[j].b) return 1;
    }
    for (k = 0; k < n; k++) {
        float x[IN], h1[300], h2[100], out[10];
        int32_t label;
        int best = 0, c;
        memcpy(x, images + k * IN * 4, sizeof x); /* little-endian host assumed */
        memcpy(&label, labels + 4 * k, 4);
        forward(&net[0], x, h1, 1);
        forward(&net[1], h1, h2, 1);
        forward(&net[2], h2, out, 0);
        for (c = 1; c < 10; c++)
            if (out[c] > out[best]) best = c; /* the first maximum, as argmax takes */
        correct += best == label;
    }
    printf("top1 %.4f (%lu/%lu)\n", (double)correct / (double)n, (unsigned long)correct,
           (unsigned long)n);
    for (j = 0; j < 3; j++) { free(net[j].w); free(net[j].b); }
    free(work);
    free(f);
    free(data);
    free(images);
    free(labels);
    return 0;
}
