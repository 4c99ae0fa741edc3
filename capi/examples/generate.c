/* generate.c: greedy text generation through tinymla's C API.
 *
 *   cc -O2 -Icapi/include capi/examples/generate.c target/release/libtinymla_capi.a \
 *      -lpthread -ldl -lm -o generate
 *   ./generate models/demo-m.q8_0.gguf 32
 *
 * Loads the GGUF file into memory, sizes every buffer with the query functions, feeds a fixed
 * prompt (token ids of "The meaning of life is" for the demo models' tokenizer), then generates
 * N tokens greedily and prints `ids: ...` and `text: ...`. Exit code 0, or 1 with the error's
 * text on stderr. tests/capi.rs runs it and compares the ids with the Rust engine's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinymla.h"

static const uint32_t PROMPT[] = {0, 318, 422, 271, 280, 291, 696, 303};
#define N_PROMPT (sizeof PROMPT / sizeof PROMPT[0])

/* Prints what failed and exits; the status text comes from tinymla_strerror. */
static void check(tinymla_status s, const char *what) {
    if (s != TINYMLA_STATUS_OK) {
        fprintf(stderr, "generate: %s: %s (status %d)\n", what, tinymla_strerror(s), (int)s);
        exit(1);
    }
}

/* malloc aligns to at least 8 bytes (TINYMLA_ALIGN) on every hosted C library we target. */
static void *alloc(size_t n) {
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "generate: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = alloc((size_t)n);
    if (n < 0 || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "generate: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [N_GENERATE]\n", argv[0]);
        return 2;
    }
    size_t n_generate = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 32;
    size_t capacity = N_PROMPT + n_generate;

    /* The model borrows these bytes: they stay alive and unmodified until the end. */
    size_t gguf_len;
    unsigned char *gguf = read_file(argv[1], &gguf_len);

    tinymla_model *model;
    void *model_mem = alloc(tinymla_model_size());
    check(tinymla_model_init(model_mem, tinymla_model_size(), gguf, gguf_len, &model), "loading");

    size_t cache_len, scratch_len, sampler_len, text_cap;
    check(tinymla_cache_bytes_needed(model, capacity, TINYMLA_CACHE_STORAGE_F32, &cache_len),
          "cache size");
    check(tinymla_scratch_bytes_needed(model, capacity, &scratch_len), "scratch size");
    check(tinymla_sampler_bytes_needed(model, &sampler_len), "sampler size");
    check(tinymla_decode_bytes_needed(model, &text_cap), "text size");

    tinymla_cache *cache;
    tinymla_scratch *scratch;
    tinymla_sampler *sampler;
    tinymla_decoder *decoder;
    void *cache_mem = alloc(cache_len), *scratch_mem = alloc(scratch_len);
    void *sampler_mem = alloc(sampler_len), *decoder_mem = alloc(tinymla_decoder_size());
    char *text = alloc(text_cap);
    check(tinymla_cache_init(model, capacity, TINYMLA_CACHE_STORAGE_F32, cache_mem, cache_len,
                             &cache),
          "cache");
    check(tinymla_scratch_init(model, capacity, scratch_mem, scratch_len, &scratch), "scratch");
    /* temperature 0: greedy */
    check(tinymla_sampler_init(model, 0.0f, 0, 1.0f, 1, sampler_mem, sampler_len, &sampler),
          "sampler");
    check(tinymla_decoder_init(decoder_mem, tinymla_decoder_size(), &decoder), "decoder");

    const float *logits;
    size_t n_logits;
    for (size_t i = 0; i < N_PROMPT; i++) {
        check(tinymla_forward(model, cache, scratch, PROMPT[i], &logits, &n_logits), "prefill");
    }

    uint32_t *ids = alloc(n_generate * sizeof *ids);
    size_t text_len;
    char *all_text = alloc(n_generate * text_cap + TINYMLA_DECODER_FINISH_BYTES);
    size_t all_len = 0;
    for (size_t i = 0; i < n_generate; i++) {
        check(tinymla_sample(sampler, scratch, &ids[i]), "sample");
        check(tinymla_decode(model, decoder, ids[i], (uint8_t *)text, text_cap, &text_len),
              "decode");
        memcpy(all_text + all_len, text, text_len);
        all_len += text_len;
        if (i + 1 < n_generate) {
            check(tinymla_forward(model, cache, scratch, ids[i], &logits, &n_logits), "forward");
        }
    }
    check(tinymla_decoder_finish(decoder, (uint8_t *)text, TINYMLA_DECODER_FINISH_BYTES,
                                 &text_len),
          "finish");
    memcpy(all_text + all_len, text, text_len);
    all_len += text_len;

    printf("ids:");
    for (size_t i = 0; i < n_generate; i++) {
        printf(" %u", (unsigned)ids[i]);
    }
    printf("\ntext: %.*s\n", (int)all_len, all_text);

    /* Handles first (each refused from now on), then the memory they lived in. */
    check(tinymla_release(decoder), "release");
    check(tinymla_release(sampler), "release");
    check(tinymla_release(scratch), "release");
    check(tinymla_release(cache), "release");
    check(tinymla_release(model), "release");
    free(all_text);
    free(ids);
    free(text);
    free(decoder_mem);
    free(sampler_mem);
    free(scratch_mem);
    free(cache_mem);
    free(model_mem);
    free(gguf);
    return 0;
}
