/* Test helper: uint64_t corio_test_regs(uint64_t seed, void (*fn)(void *), void *arg)
 *
 * Loads seed+1 .. seed+10 into x19-x28, seed+11 into x29, and seed+12 ..
 * seed+19 (as integers) into d8-d15, calls fn(arg) (which switches to other
 * coroutines that load their own values), then returns a bitmask of the
 * registers that did not come back intact: bits 0-9 x19-x28, bit 10 x29,
 * bits 11-18 d8-d15. */
    .text
    .globl  corio_test_regs
    .type   corio_test_regs, %function
corio_test_regs:
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
    str     x0, [sp, #160]
    mov     x9, x1
    mov     x10, x0
    mov     x0, x2
    add     x19, x10, #1
    add     x20, x10, #2
    add     x21, x10, #3
    add     x22, x10, #4
    add     x23, x10, #5
    add     x24, x10, #6
    add     x25, x10, #7
    add     x26, x10, #8
    add     x27, x10, #9
    add     x28, x10, #10
    add     x29, x10, #11
    add     x11, x10, #12
    fmov    d8, x11
    add     x11, x10, #13
    fmov    d9, x11
    add     x11, x10, #14
    fmov    d10, x11
    add     x11, x10, #15
    fmov    d11, x11
    add     x11, x10, #16
    fmov    d12, x11
    add     x11, x10, #17
    fmov    d13, x11
    add     x11, x10, #18
    fmov    d14, x11
    add     x11, x10, #19
    fmov    d15, x11
    blr     x9
    ldr     x10, [sp, #160]
    mov     x0, #0
    .macro  chk reg, n, bit
    add     x11, x10, #\n
    cmp     \reg, x11
    b.eq    1f
    orr     x0, x0, #(1 << \bit)
1:
    .endm
    .macro  chkd reg, n, bit
    fmov    x12, \reg
    add     x11, x10, #\n
    cmp     x12, x11
    b.eq    1f
    orr     x0, x0, #(1 << \bit)
1:
    .endm
    chk     x19, 1, 0
    chk     x20, 2, 1
    chk     x21, 3, 2
    chk     x22, 4, 3
    chk     x23, 5, 4
    chk     x24, 6, 5
    chk     x25, 7, 6
    chk     x26, 8, 7
    chk     x27, 9, 8
    chk     x28, 10, 9
    chk     x29, 11, 10
    chkd    d8, 12, 11
    chkd    d9, 13, 12
    chkd    d10, 14, 13
    chkd    d11, 15, 14
    chkd    d12, 16, 15
    chkd    d13, 17, 16
    chkd    d14, 18, 17
    chkd    d15, 19, 18
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
    add     sp, sp, #176
    ret
    .size   corio_test_regs, .-corio_test_regs
    .section .note.GNU-stack,"",%progbits
