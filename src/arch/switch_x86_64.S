/*
 * x86-64 System V: the first instructions of every fresh context.  The
 * switch itself is inline assembly in ctx.h (why: see there).  The switch
 * that resumes a fresh context leaves rdi pointing at it and the stack
 * pointer 16-byte aligned; entering a C function needs rsp = 8 (mod 16) as
 * after a call, hence the call rather than a jmp.  The zeroed rbp ends
 * frame-pointer unwinding here.  Offsets come from ctx.h and are checked
 * against the C struct at compile time in task.c.
 */
#include "ctx.h"

    .text
    .globl weft__ctx_entry
    .hidden weft__ctx_entry
    .type weft__ctx_entry, @function
    .p2align 4
weft__ctx_entry:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    movq WEFT_CTX_FN(%rdi), %rax
    movq WEFT_CTX_ARG(%rdi), %rdi
    call *%rax
    ud2                            /* the function never returns */
    .cfi_endproc
    .size weft__ctx_entry, .-weft__ctx_entry

    .section .note.GNU-stack,"",@progbits
