/* Bare-metal tinymla: the no_std staticlib (thumbv7em-none-eabihf) driven from C on QEMU's
 * mps2-an386 (Cortex-M4F). tinymla needs no heap: every buffer is a static array (newlib's
 * printf may use its own small sbrk heap). The model (demo-s)
 * is linked into flash by model.S and read in place. Prints `ids: ...` and `text: ...` over
 * semihosting, like capi/examples/generate.c on the host; tests/capi.rs compares the two.
 *
 * Build and run: see build.sh. */
#include <stdio.h>
#include <string.h>

#include "tinymla.h"

extern const uint8_t tinymla_model_start[];
extern const uint8_t tinymla_model_end[];

static const uint32_t PROMPT[] = {0, 318, 422, 271, 280, 291, 696, 303};
#define N_PROMPT (sizeof PROMPT / sizeof PROMPT[0])
#define N_GENERATE 16
#define CAPACITY (N_PROMPT + N_GENERATE)

/* Static memory for every object; the sizes are checked against the query functions. */
#define ALIGNED _Alignas(TINYMLA_ALIGN)
static ALIGNED uint8_t model_mem[16 * 1024];
static ALIGNED uint8_t cache_mem[64 * 1024];
static ALIGNED uint8_t scratch_mem[64 * 1024];
static ALIGNED uint8_t sampler_mem[8 * 1024];
static ALIGNED uint8_t decoder_mem[64];
static uint8_t piece[1024];
static char text[N_GENERATE * 64];

static int check(tinymla_status s, const char *what) {
    if (s != TINYMLA_STATUS_OK) {
        printf("error: %s: %s (status %d)\n", what, tinymla_strerror(s), (int)s);
        return 1;
    }
    return 0;
}

#define CHECK(call, what)         \
    do {                          \
        if (check((call), what)) { \
            return 1;             \
        }                         \
    } while (0)

int main(void) {
    tinymla_model *model;
    tinymla_cache *cache;
    tinymla_scratch *scratch;
    tinymla_sampler *sampler;
    tinymla_decoder *decoder;
    size_t gguf_len = (size_t)(tinymla_model_end - tinymla_model_start);
    CHECK(tinymla_model_init(model_mem, sizeof model_mem, tinymla_model_start, gguf_len, &model),
          "loading");
    size_t cache_len, scratch_len, sampler_len, piece_len;
    CHECK(tinymla_cache_bytes_needed(model, CAPACITY, TINYMLA_CACHE_STORAGE_F32, &cache_len),
          "cache size");
    CHECK(tinymla_scratch_bytes_needed(model, CAPACITY, &scratch_len), "scratch size");
    CHECK(tinymla_sampler_bytes_needed(model, &sampler_len), "sampler size");
    CHECK(tinymla_decode_bytes_needed(model, &piece_len), "text size");
    printf("sizes: model %u cache %u scratch %u sampler %u piece %u\n",
           (unsigned)tinymla_model_size(), (unsigned)cache_len, (unsigned)scratch_len,
           (unsigned)sampler_len, (unsigned)piece_len);
    /* Too-small static buffers are reported by the init calls as BUFFER_TOO_SMALL. */
    CHECK(tinymla_cache_init(model, CAPACITY, TINYMLA_CACHE_STORAGE_F32, cache_mem,
                             sizeof cache_mem, &cache),
          "cache");
    CHECK(tinymla_scratch_init(model, CAPACITY, scratch_mem, sizeof scratch_mem, &scratch),
          "scratch");
    CHECK(tinymla_sampler_init(model, 0.0f, 0, 1.0f, 1, sampler_mem, sizeof sampler_mem,
                               &sampler),
          "sampler");
    CHECK(tinymla_decoder_init(decoder_mem, sizeof decoder_mem, &decoder), "decoder");

    for (size_t i = 0; i < N_PROMPT; i++) {
        CHECK(tinymla_forward(model, cache, scratch, PROMPT[i], NULL, NULL), "prefill");
    }
    uint32_t ids[N_GENERATE];
    size_t text_len = 0, n;
    for (size_t i = 0; i < N_GENERATE; i++) {
        CHECK(tinymla_sample(sampler, scratch, &ids[i]), "sample");
        CHECK(tinymla_decode(model, decoder, ids[i], piece, sizeof piece, &n), "decode");
        if (text_len + n < sizeof text) {
            memcpy(text + text_len, piece, n);
            text_len += n;
        }
        if (i + 1 < N_GENERATE) {
            CHECK(tinymla_forward(model, cache, scratch, ids[i], NULL, NULL), "forward");
        }
    }
    printf("ids:");
    for (size_t i = 0; i < N_GENERATE; i++) {
        printf(" %u", (unsigned)ids[i]);
    }
    printf("\ntext: %.*s\n", (int)text_len, text);
    return 0;
}
