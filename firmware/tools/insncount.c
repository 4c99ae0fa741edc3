/* Minimal QEMU TCG plugin (no qemu-plugin.h needed): counts executed guest instructions.
   Prints the total at exit; also records the count each time the insn at `mark=0xADDR` runs.
   With `profile=FILE` it also writes "vaddr count" per executed instruction address, counted
   from the first mark on (the forward steps and sampling, not loading or the self-test);
   tools/profile.py folds that into functions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb; struct qemu_plugin_insn;
typedef struct { const char *target_name; struct { int min; int cur; } version; } qemu_info_t; /* prefix only */
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *));
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *, void (*)(unsigned, void *), int flags, void *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, void *), void *);
void qemu_plugin_outs(const char *);
__attribute__((visibility("default"))) int qemu_plugin_version = 4;

static uint64_t insns, mark = ~0ull, marks[4096]; static int nmarks;
/* Open-addressed table of instruction addresses (vaddr + 1, so 0 marks a free slot). */
#define SLOTS (1u << 20)
static struct slot { uint64_t key, count; } *table;
static const char *profile_path;
static struct slot *slot_of(uint64_t vaddr) {
    uint64_t h = (vaddr * 0x9E3779B97F4A7C15ull) >> 44;
    for (;; h = (h + 1) & (SLOTS - 1)) {
        if (table[h].key == vaddr + 1) return &table[h];
        if (table[h].key == 0) { table[h].key = vaddr + 1; return &table[h]; }
    }
}
static void on_insn(unsigned vcpu, void *u) { insns++; if (u && nmarks) ((struct slot *)u)->count++; }
static void on_mark(unsigned vcpu, void *u) { if (nmarks < 4096) marks[nmarks++] = insns; }
static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    for (size_t i = 0, n = qemu_plugin_tb_n_insns(tb); i < n; i++) {
        struct qemu_plugin_insn *in = qemu_plugin_tb_get_insn(tb, i);
        void *slot = table ? slot_of(qemu_plugin_insn_vaddr(in)) : NULL;
        qemu_plugin_register_vcpu_insn_exec_cb(in, on_insn, 0, slot);
        if (qemu_plugin_insn_vaddr(in) == mark) qemu_plugin_register_vcpu_insn_exec_cb(in, on_mark, 0, NULL);
    }
}
static void on_exit_cb(qemu_plugin_id_t id, void *u) {
    char b[128];
    snprintf(b, sizeof b, "insncount: total %llu\n", (unsigned long long)insns); qemu_plugin_outs(b);
    for (int i = 1; i < nmarks; i++) { snprintf(b, sizeof b, "insncount: mark %d->%d: %llu\n", i-1, i, (unsigned long long)(marks[i]-marks[i-1])); qemu_plugin_outs(b); }
    FILE *f = profile_path ? fopen(profile_path, "w") : NULL;
    if (f) {
        for (uint32_t i = 0; i < SLOTS; i++)
            if (table[i].count) fprintf(f, "%llx %llu\n", (unsigned long long)table[i].key - 1, (unsigned long long)table[i].count);
        fclose(f);
    }
}
__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "mark=", 5)) mark = strtoull(argv[i] + 5, NULL, 0);
        if (!strncmp(argv[i], "profile=", 8)) profile_path = argv[i] + 8;
    }
    if (profile_path && !(table = calloc(SLOTS, sizeof *table))) return -1;
    char b[128]; snprintf(b, sizeof b, "insncount: target %s, plugin API min %d cur %d\n", info->target_name, info->version.min, info->version.cur); qemu_plugin_outs(b);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
