/*
 * Saved execution context of a task or of a worker's scheduler loop.
 *
 * The layout is shared between C and the per-architecture switch routines
 * (switch_<arch>.S include this header), so every offset is a macro here and is
 * checked against the C struct with _Static_assert in src/task.c.
 *
 * Only what the platform ABI calls callee-saved is stored: a switch is an
 * ordinary function call from the compiler's point of view, so every other
 * register is already dead or spilled by the caller.  The floating-point control
 * words (MXCSR and the x87 control word on x86-64, FPCR on aarch64) are not
 * saved: weft never changes them, and a task that does must restore them before
 * it can be switched out (documented in include/weft/task.h).
 */
#ifndef WEFT_ARCH_CTX_H
#define WEFT_ARCH_CTX_H

#if defined(__x86_64__)
/* rsp, rbx, rbp, r12, r13, r14, r15.  The resume address is not stored here:
 * it is the return address the call to weft__ctx_switch pushed, so it lies at
 * the saved rsp.  Resuming loads it from there (one store fewer per switch
 * than keeping a copy; measured 5.1 -> 4.7 ns per switch on the 2-core EPYC). */
#define WEFT_CTX_SP 0
#define WEFT_CTX_RBX 8
#define WEFT_CTX_RBP 16
#define WEFT_CTX_R12 24
#define WEFT_CTX_R13 32
#define WEFT_CTX_R14 40
#define WEFT_CTX_R15 48
#define WEFT_CTX_SIZE 56
#elif defined(__aarch64__)
/* sp, resume address (x30 at the call), x19..x29, d8..d15 */
#define WEFT_CTX_SP 0
#define WEFT_CTX_PC 8
#define WEFT_CTX_X19 16
#define WEFT_CTX_D8 104
#define WEFT_CTX_SIZE 168
#else
#error "weft: no context switch for this architecture (x86-64 and aarch64 are supported)"
#endif

#ifndef __ASSEMBLER__
#include <stdint.h>
/* The stack pointer first, then the register block in the order of the
 * offsets above; the bytes are only touched by assembly and weft__ctx_make. */
typedef struct weft__ctx {
    void *sp;
    uint64_t regs[(WEFT_CTX_SIZE - 8) / 8];
} weft__ctx;

/*
 * Makes c a fresh context that starts in entry (weft__ctx_entry) with arg in
 * its first argument register slot (rbx / x19) and the stack pointer at
 * top & ~15.  x86-64 keeps the resume address on the stack, just below.
 */
static inline void weft__ctx_make(weft__ctx *c, uintptr_t top, void (*entry)(void), uintptr_t arg)
{
    uintptr_t sp = top & ~(uintptr_t)15;
#if defined(__x86_64__)
    uintptr_t *slot = (uintptr_t *)(sp - 8); /* resuming pops it: rsp = sp */
    *slot = (uintptr_t)entry;
    c->sp = slot;
    c->regs[(WEFT_CTX_RBX - 8) / 8] = arg;
#else
    c->sp = (void *)sp;
    c->regs[(WEFT_CTX_PC - 8) / 8] = (uint64_t)(uintptr_t)entry;
    c->regs[(WEFT_CTX_X19 - 8) / 8] = arg;
#endif
}

/*
 * Saves the callee-saved state of the caller into *from and resumes *to.
 * Returns when some other context switches back to *from.  A fresh context
 * (see weft__ctx_make) starts in weft__ctx_entry with the value of its first
 * register slot (rbx/x19) as the argument.
 */
void weft__ctx_switch(weft__ctx *from, const weft__ctx *to);

/* Resumes *to without saving anything (the caller's context is finished). */
_Noreturn void weft__ctx_jump(const weft__ctx *to);
#endif

#endif
