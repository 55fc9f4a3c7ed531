/*
 * x86-64 System V context switch.  Saves rbx, rbp, r12-r15 and the stack
 * pointer; the resume address is the return address our caller's call pushed,
 * left where it is at the saved rsp.  Resuming restores the registers, sets
 * rsp just above that slot (as a ret would) and jumps through it: an indirect
 * jmp, not ret, so the return-stack predictor is not trained on a return that
 * never happens.  Offsets come from ctx.h and are checked against the C
 * struct at compile time in task.c.
 */
#include "ctx.h"

    .text
    .globl weft__ctx_switch
    .hidden weft__ctx_switch
    .type weft__ctx_switch, @function
    .p2align 4
weft__ctx_switch:
    .cfi_startproc
    movq %rsp, WEFT_CTX_SP(%rdi)   /* (%rsp) holds our resume address */
    movq %rbx, WEFT_CTX_RBX(%rdi)
    movq %rbp, WEFT_CTX_RBP(%rdi)
    movq %r12, WEFT_CTX_R12(%rdi)
    movq %r13, WEFT_CTX_R13(%rdi)
    movq %r14, WEFT_CTX_R14(%rdi)
    movq %r15, WEFT_CTX_R15(%rdi)
    movq WEFT_CTX_SP(%rsi), %rcx
    movq WEFT_CTX_RBX(%rsi), %rbx
    movq WEFT_CTX_RBP(%rsi), %rbp
    movq WEFT_CTX_R12(%rsi), %r12
    movq WEFT_CTX_R13(%rsi), %r13
    movq WEFT_CTX_R14(%rsi), %r14
    movq WEFT_CTX_R15(%rsi), %r15
    leaq 8(%rcx), %rsp
    jmpq *(%rcx)
    .cfi_endproc
    .size weft__ctx_switch, .-weft__ctx_switch

    .globl weft__ctx_jump
    .hidden weft__ctx_jump
    .type weft__ctx_jump, @function
    .p2align 4
weft__ctx_jump:
    .cfi_startproc
    movq WEFT_CTX_SP(%rdi), %rcx
    movq WEFT_CTX_RBX(%rdi), %rbx
    movq WEFT_CTX_RBP(%rdi), %rbp
    movq WEFT_CTX_R12(%rdi), %r12
    movq WEFT_CTX_R13(%rdi), %r13
    movq WEFT_CTX_R14(%rdi), %r14
    movq WEFT_CTX_R15(%rdi), %r15
    leaq 8(%rcx), %rsp
    jmpq *(%rcx)
    .cfi_endproc
    .size weft__ctx_jump, .-weft__ctx_jump

/*
 * First instructions of every task.  weft__ctx_make leaves the stack pointer
 * 16-byte aligned and the argument in rbx; entering a C function needs
 * rsp = 8 (mod 16) as after a call, hence the call rather than a jmp.  The
 * zeroed rbp ends frame-pointer unwinding here.
 */
    .globl weft__ctx_entry
    .hidden weft__ctx_entry
    .type weft__ctx_entry, @function
    .p2align 4
weft__ctx_entry:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    movq %rbx, %rdi
    call weft__task_main
    ud2                            /* weft__task_main never returns */
    .cfi_endproc
    .size weft__ctx_entry, .-weft__ctx_entry

    .section .note.GNU-stack,"",@progbits
