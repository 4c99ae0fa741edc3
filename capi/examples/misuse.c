/* misuse.c: every way a C caller can misuse tinymla's C API, each answered with its status.
 *
 *   clang -fsanitize=address,undefined -Icapi/include capi/examples/misuse.c \
 *      target/release/libtinymla_capi.a -lpthread -ldl -lm -o misuse
 *   ./misuse models/demo-s.q8_0.gguf
 *
 * NULL pointers, short and misaligned memory, a truncated and a garbage file, foreign handles
 * (zeroed memory, junk, a handle of another type), a moved (copied) handle, released handles,
 * mixed handles of two models, out-of-range tokens and a full cache. tests/capi.rs builds it
 * with AddressSanitizer and UndefinedBehaviorSanitizer and runs it: every check must hold and
 * the sanitizers must stay silent. Prints `misuse: N checks passed`; exit code 1 on any
 * failed check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinymla.h"

static int n_checks, n_failed;

static void expect(tinymla_status got, tinymla_status want, const char *what, int line) {
    n_checks++;
    if (got != want) {
        n_failed++;
        fprintf(stderr, "misuse.c:%d: %s: got %d (%s), want %d (%s)\n", line, what, (int)got,
                tinymla_strerror(got), (int)want, tinymla_strerror(want));
    }
}
#define EXPECT(call, want) expect((call), (want), #call, __LINE__)

/* Aligned (malloc aligns to at least TINYMLA_ALIGN) and zeroed. */
static void *alloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "misuse: out of memory\n");
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
        fprintf(stderr, "misuse: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    size_t gguf_len;
    unsigned char *gguf = read_file(argv[1], &gguf_len);
    size_t msize = tinymla_model_size();
    tinymla_model *model = NULL, *other = NULL;
    void *model_mem = alloc(msize), *other_mem = alloc(msize);

    /* Loading: NULL pointers, short and misaligned memory, truncated and garbage files. */
    EXPECT(tinymla_model_init(NULL, msize, gguf, gguf_len, &model), TINYMLA_STATUS_NULL_POINTER);
    EXPECT(tinymla_model_init(model_mem, msize, NULL, gguf_len, &model),
           TINYMLA_STATUS_NULL_POINTER);
    EXPECT(tinymla_model_init(model_mem, msize, gguf, gguf_len, NULL),
           TINYMLA_STATUS_NULL_POINTER);
    EXPECT(tinymla_model_init(model_mem, msize - 1, gguf, gguf_len, &model),
           TINYMLA_STATUS_BUFFER_TOO_SMALL);
    EXPECT(tinymla_model_init((uint8_t *)model_mem + 1, msize - 8, gguf, gguf_len, &model),
           TINYMLA_STATUS_MISALIGNED);
    EXPECT(tinymla_model_init(model_mem, msize, gguf, gguf_len / 2, &model),
           TINYMLA_STATUS_BAD_GGUF);
    unsigned char garbage[256];
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (unsigned char)(i * 37 + 11);
    EXPECT(tinymla_model_init(model_mem, msize, garbage, sizeof garbage, &model),
           TINYMLA_STATUS_BAD_GGUF);
    if (model != NULL) {
        n_failed++;
        fprintf(stderr, "misuse: a failed init left a handle\n");
    }
    EXPECT(tinymla_model_init_with(model_mem, msize, gguf, gguf_len, 7, &model),
           TINYMLA_STATUS_INVALID_ARGUMENT);
    EXPECT(tinymla_model_init(model_mem, msize, gguf, gguf_len, &model), TINYMLA_STATUS_OK);
    EXPECT(tinymla_model_init(other_mem, msize, gguf, gguf_len, &other), TINYMLA_STATUS_OK);

    size_t n_vocab = 0, len = 0;
    EXPECT(tinymla_model_vocab_size(model, &n_vocab), TINYMLA_STATUS_OK);
    EXPECT(tinymla_model_vocab_size(model, NULL), TINYMLA_STATUS_NULL_POINTER);
    EXPECT(tinymla_model_vocab_size(NULL, &len), TINYMLA_STATUS_NULL_POINTER);

    /* Foreign handles: zeroed memory, junk, a handle of another type. */
    void *zeros = alloc(msize), *junk = alloc(msize);
    memset(junk, 0xA5, msize);
    EXPECT(tinymla_model_vocab_size(zeros, &len), TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_model_vocab_size(junk, &len), TINYMLA_STATUS_BAD_HANDLE);

    const size_t cap = 4;
    size_t cache_len, scratch_len, sampler_len;
    EXPECT(tinymla_cache_bytes_needed(model, cap, TINYMLA_CACHE_STORAGE_F32, &cache_len),
           TINYMLA_STATUS_OK);
    EXPECT(tinymla_cache_bytes_needed(model, cap, (tinymla_cache_storage)99, &cache_len),
           TINYMLA_STATUS_INVALID_ARGUMENT);
    EXPECT(tinymla_scratch_bytes_needed(model, cap, &scratch_len), TINYMLA_STATUS_OK);
    EXPECT(tinymla_sampler_bytes_needed(model, &sampler_len), TINYMLA_STATUS_OK);
    tinymla_cache *cache = NULL, *other_cache = NULL;
    tinymla_scratch *scratch = NULL;
    tinymla_sampler *sampler = NULL;
    tinymla_decoder *decoder = NULL;
    void *cache_mem = alloc(cache_len), *other_cache_mem = alloc(cache_len);
    void *scratch_mem = alloc(scratch_len), *sampler_mem = alloc(sampler_len);
    void *decoder_mem = alloc(tinymla_decoder_size());
    EXPECT(tinymla_cache_init(model, cap, TINYMLA_CACHE_STORAGE_F32, cache_mem, cache_len - 1,
                              &cache),
           TINYMLA_STATUS_BUFFER_TOO_SMALL);
    EXPECT(tinymla_cache_init(model, 0, TINYMLA_CACHE_STORAGE_F32, cache_mem, cache_len, &cache),
           TINYMLA_STATUS_INVALID_ARGUMENT);
    EXPECT(tinymla_cache_init(model, cap, TINYMLA_CACHE_STORAGE_F32, cache_mem, cache_len,
                              &cache),
           TINYMLA_STATUS_OK);
    EXPECT(tinymla_cache_init(other, cap, TINYMLA_CACHE_STORAGE_F32, other_cache_mem, cache_len,
                              &other_cache),
           TINYMLA_STATUS_OK);
    EXPECT(tinymla_scratch_init(model, cap, scratch_mem, scratch_len, &scratch),
           TINYMLA_STATUS_OK);
    EXPECT(tinymla_sampler_init(model, 0.8f, 40, 0.95f, 1, sampler_mem, sampler_len, &sampler),
           TINYMLA_STATUS_OK);
    EXPECT(tinymla_decoder_init(decoder_mem, tinymla_decoder_size(), &decoder), TINYMLA_STATUS_OK);

    /* A handle of another type where a model belongs; cache and scratch swapped; a cache of
     * another model. */
    EXPECT(tinymla_model_vocab_size((const tinymla_model *)cache, &len),
           TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_forward(model, (tinymla_cache *)scratch, (tinymla_scratch *)cache, 1, NULL,
                           NULL),
           TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_forward(model, other_cache, scratch, 1, NULL, NULL), TINYMLA_STATUS_BAD_HANDLE);

    /* A moved (copied) handle still points at its old self. */
    void *moved = alloc(msize);
    memcpy(moved, model, msize);
    EXPECT(tinymla_model_vocab_size(moved, &len), TINYMLA_STATUS_BAD_HANDLE);

    /* Tokens: out of range, then a full cache. */
    const float *logits = NULL;
    size_t n_logits = 0;
    EXPECT(tinymla_forward(model, cache, scratch, (uint32_t)n_vocab, &logits, &n_logits),
           TINYMLA_STATUS_TOKEN_OUT_OF_RANGE);
    for (size_t i = 0; i < cap; i++) {
        EXPECT(tinymla_forward(model, cache, scratch, (uint32_t)(i + 1), &logits, &n_logits),
               TINYMLA_STATUS_OK);
    }
    EXPECT(tinymla_forward(model, cache, scratch, 1, &logits, &n_logits),
           TINYMLA_STATUS_CACHE_FULL);
    EXPECT(tinymla_cache_len(cache, &len), TINYMLA_STATUS_OK);
    if (len != cap || n_logits != n_vocab) {
        n_failed++;
        fprintf(stderr, "misuse: cache holds %zu of %zu, %zu logits\n", len, cap, n_logits);
    }
    uint32_t id = 0;
    EXPECT(tinymla_sample(sampler, scratch, &id), TINYMLA_STATUS_OK);
    size_t text_cap = 0, text_len = 0;
    EXPECT(tinymla_decode_bytes_needed(model, &text_cap), TINYMLA_STATUS_OK);
    uint8_t *text = alloc(text_cap);
    EXPECT(tinymla_decode(model, decoder, (uint32_t)n_vocab, text, text_cap, &text_len),
           TINYMLA_STATUS_TOKEN_OUT_OF_RANGE);
    EXPECT(tinymla_decode(model, decoder, id, text, text_cap - 1, &text_len),
           TINYMLA_STATUS_BUFFER_TOO_SMALL);
    EXPECT(tinymla_decode(model, decoder, id, text, text_cap, &text_len), TINYMLA_STATUS_OK);

    /* Released handles: refused, and released once only; then the memory is freed. */
    EXPECT(tinymla_release(cache), TINYMLA_STATUS_OK);
    EXPECT(tinymla_release(cache), TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_cache_len(cache, &len), TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_forward(model, cache, scratch, 1, NULL, NULL), TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_release(model), TINYMLA_STATUS_OK);
    EXPECT(tinymla_model_vocab_size(model, &len), TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_decode(model, decoder, id, text, text_cap, &text_len),
           TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_release(NULL), TINYMLA_STATUS_NULL_POINTER);
    EXPECT(tinymla_release(junk), TINYMLA_STATUS_BAD_HANDLE);
    EXPECT(tinymla_release(scratch), TINYMLA_STATUS_OK);
    EXPECT(tinymla_release(sampler), TINYMLA_STATUS_OK);
    EXPECT(tinymla_release(decoder), TINYMLA_STATUS_OK);
    EXPECT(tinymla_release(other_cache), TINYMLA_STATUS_OK);
    EXPECT(tinymla_release(other), TINYMLA_STATUS_OK);
    void *blocks[] = {model_mem, other_mem, zeros, junk, cache_mem, other_cache_mem, scratch_mem,
                      sampler_mem, decoder_mem, moved, text, gguf};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) free(blocks[i]);

    if (n_failed) {
        fprintf(stderr, "misuse: %d of %d checks failed\n", n_failed, n_checks);
        return 1;
    }
    printf("misuse: %d checks passed\n", n_checks);
    return 0;
}
