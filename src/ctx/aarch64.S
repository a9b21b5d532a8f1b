/* Context switch for AArch64 (AAPCS64).
 *
 * void corio__ctx_switch(corio_ctx *from, corio_ctx *to)
 *   x0 = from, x1 = to; a corio_ctx holds only the saved stack pointer.
 *
 * Frame left on a suspended stack (176 bytes, 16-byte aligned), from sp:
 *
 *   sp + 0    x19, x20
 *   sp + 16   x21, x22
 *   sp + 32   x23, x24
 *   sp + 48   x25, x26
 *   sp + 64   x27, x28
 *   sp + 80   x29 (frame pointer), x30 (link register: where to resume)
 *   sp + 96   d8, d9
 *   sp + 112  d10, d11
 *   sp + 128  d12, d13
 *   sp + 144  d14, d15
 *   sp + 160  FPCR
 *   sp + 168  padding
 *
 * x19-x29, sp and the low 64 bits of v8-v15 are callee-saved; FPCR holds
 * the rounding mode and trap enables, which the ABI also treats as
 * preserved across calls.
 *
 * A new context (ctx.c) is this frame with x19 = entry, x20 = arg and
 * x30 = corio__ctx_start. */

    .text
    .globl  corio__ctx_switch
    .type   corio__ctx_switch, %function
    .p2align 4
corio__ctx_switch:
    .cfi_startproc
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]

    ldr     x9, [x1]
    mov     sp, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    add     sp, sp, #176
    ret
    .cfi_endproc
    .size   corio__ctx_switch, .-corio__ctx_switch

/* First code run on a new stack: entry(arg).  The undefined return address
 * ends debugger backtraces here. */
    .globl  corio__ctx_start
    .type   corio__ctx_start, %function
    .p2align 4
corio__ctx_start:
    .cfi_startproc
    .cfi_undefined x30
    mov     x29, #0
    mov     x0, x20
    blr     x19
    brk     #0
    .cfi_endproc
    .size   corio__ctx_start, .-corio__ctx_start

    .section .note.GNU-stack,"",%progbits
