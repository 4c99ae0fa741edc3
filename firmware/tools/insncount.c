/* Minimal QEMU TCG plugin (no qemu-plugin.h needed): counts executed guest instructions.
   Prints the total at exit; also records the count each time the insn at `mark=0xADDR` runs. */
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
static void on_insn(unsigned vcpu, void *u) { insns++; }
static void on_mark(unsigned vcpu, void *u) { if (nmarks < 4096) marks[nmarks++] = insns; }
static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    for (size_t i = 0, n = qemu_plugin_tb_n_insns(tb); i < n; i++) {
        struct qemu_plugin_insn *in = qemu_plugin_tb_get_insn(tb, i);
        qemu_plugin_register_vcpu_insn_exec_cb(in, on_insn, 0, NULL);
        if (qemu_plugin_insn_vaddr(in) == mark) qemu_plugin_register_vcpu_insn_exec_cb(in, on_mark, 0, NULL);
    }
}
static void on_exit_cb(qemu_plugin_id_t id, void *u) {
    char b[128];
    snprintf(b, sizeof b, "insncount: total %llu\n", (unsigned long long)insns); qemu_plugin_outs(b);
    for (int i = 1; i < nmarks; i++) { snprintf(b, sizeof b, "insncount: mark %d->%d: %llu\n", i-1, i, (unsigned long long)(marks[i]-marks[i-1])); qemu_plugin_outs(b); }
}
__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++) if (!strncmp(argv[i], "mark=", 5)) mark = strtoull(argv[i] + 5, NULL, 0);
    char b[128]; snprintf(b, sizeof b, "insncount: target %s, plugin API min %d cur %d\n", info->target_name, info->version.min, info->version.cur); qemu_plugin_outs(b);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
