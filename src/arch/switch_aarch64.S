/*
 * AArch64 (AAPCS64) context switch: saves x19-x29, d8-d15, sp and the resume
 * address (x30 at the call); resumes the target with br, not ret.  A fresh
 * context starts in weft__ctx_entry, which calls x19 with x20 as argument.
 * Built only on aarch64 machines; offsets from ctx.h, checked in task.c.
 */
#include "ctx.h"

    .text
    .globl weft__ctx_switch
    .hidden weft__ctx_switch
    .type weft__ctx_switch, %function
    .p2align 4
weft__ctx_switch:
    mov x9, sp
    str x9, [x0, #WEFT_CTX_SP]
    str x30, [x0, #WEFT_CTX_PC]
    stp x19, x20, [x0, #WEFT_CTX_X19]
    stp x21, x22, [x0, #WEFT_CTX_X19 + 16]
    stp x23, x24, [x0, #WEFT_CTX_X19 + 32]
    stp x25, x26, [x0, #WEFT_CTX_X19 + 48]
    stp x27, x28, [x0, #WEFT_CTX_X19 + 64]
    str x29, [x0, #WEFT_CTX_X19 + 80]
    stp d8, d9, [x0, #WEFT_CTX_D8]
    stp d10, d11, [x0, #WEFT_CTX_D8 + 16]
    stp d12, d13, [x0, #WEFT_CTX_D8 + 32]
    stp d14, d15, [x0, #WEFT_CTX_D8 + 48]
    mov x0, x1
    /* fall through */
    .globl weft__ctx_jump
    .hidden weft__ctx_jump
    .type weft__ctx_jump, %function
weft__ctx_jump:
    ldp x19, x20, [x0, #WEFT_CTX_X19]
    ldp x21, x22, [x0, #WEFT_CTX_X19 + 16]
    ldp x23, x24, [x0, #WEFT_CTX_X19 + 32]
    ldp x25, x26, [x0, #WEFT_CTX_X19 + 48]
    ldp x27, x28, [x0, #WEFT_CTX_X19 + 64]
    ldr x29, [x0, #WEFT_CTX_X19 + 80]
    ldp d8, d9, [x0, #WEFT_CTX_D8]
    ldp d10, d11, [x0, #WEFT_CTX_D8 + 16]
    ldp d12, d13, [x0, #WEFT_CTX_D8 + 32]
    ldp d14, d15, [x0, #WEFT_CTX_D8 + 48]
    ldr x9, [x0, #WEFT_CTX_SP]
    mov sp, x9
    ldr x9, [x0, #WEFT_CTX_PC]
    br x9
    .size weft__ctx_switch, .-weft__ctx_switch

    .globl weft__ctx_entry
    .hidden weft__ctx_entry
    .type weft__ctx_entry, %function
    .p2align 4
weft__ctx_entry:
    mov x29, #0
    mov x30, #0
    mov x0, x20                    /* the argument (weft__ctx_make) */
    blr x19                        /* the function; it never returns */
    brk #0
    .size weft__ctx_entry, .-weft__ctx_entry

    .section .note.GNU-stack,"",%progbits
