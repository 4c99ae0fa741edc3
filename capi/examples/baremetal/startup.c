/* Minimal Cortex-M4F start-up for QEMU mps2-an386: vector table, FPU on, .bss zeroed (QEMU's
 * ELF loader already placed .data in RAM), semihosting stdio, main, exit. */
#include <stdint.h>
#include <stdlib.h>

extern int main(void);
extern void initialise_monitor_handles(void);
extern uint32_t __bss_start__[], __bss_end__[], __stack_top[];

void Reset_Handler(void) {
    /* CPACR: full access to CP10 and CP11 (the FPU), before any floating-point instruction. */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm volatile("dsb\n isb");
    for (uint32_t *p = __bss_start__; p < __bss_end__; p++) {
        *p = 0;
    }
    initialise_monitor_handles();
    exit(main());
}

/* Any fault ends the run with a distinct status instead of hanging QEMU. */
void Fault_Handler(void) {
    exit(99);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler,
    Fault_Handler,
};
