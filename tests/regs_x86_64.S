/* Test helper: uint64_t corio_test_regs(uint64_t seed, void (*fn)(void *), void *arg)
 *
 * Loads seed+1 .. seed+6 into rbx, rbp, r12, r13, r14, r15, calls fn(arg)
 * (which switches to other coroutines that load their own values), then
 * returns a bitmask of the registers that did not come back intact
 * (bit 0 rbx, 1 rbp, 2 r12, 3 r13, 4 r14, 5 r15). */
    .text
    .globl  corio_test_regs
    .type   corio_test_regs, @function
corio_test_regs:
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $24, %rsp
    movq    %rdi, (%rsp)
    movq    %rsi, %rax
    movq    %rdx, %rdi
    movq    (%rsp), %rcx
    leaq    1(%rcx), %rbx
    leaq    2(%rcx), %rbp
    leaq    3(%rcx), %r12
    leaq    4(%rcx), %r13
    leaq    5(%rcx), %r14
    leaq    6(%rcx), %r15
    callq   *%rax
    xorl    %eax, %eax
    movq    (%rsp), %rcx
    leaq    1(%rcx), %rdx
    cmpq    %rdx, %rbx
    je      1f
    orl     $1, %eax
1:  leaq    2(%rcx), %rdx
    cmpq    %rdx, %rbp
    je      1f
    orl     $2, %eax
1:  leaq    3(%rcx), %rdx
    cmpq    %rdx, %r12
    je      1f
    orl     $4, %eax
1:  leaq    4(%rcx), %rdx
    cmpq    %rdx, %r13
    je      1f
    orl     $8, %eax
1:  leaq    5(%rcx), %rdx
    cmpq    %rdx, %r14
    je      1f
    orl     $16, %eax
1:  leaq    6(%rcx), %rdx
    cmpq    %rdx, %r15
    je      1f
    orl     $32, %eax
1:  addq    $24, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .size   corio_test_regs, .-corio_test_regs
    .section .note.GNU-stack,"",@progbits
