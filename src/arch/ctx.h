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
/* rsp, resume address, rbx, rbp, r12, r13, r14, r15 */
#define WEFT_CTX_SP 0
#define WEFT_CTX_PC 8
#define WEFT_CTX_RBX 16
#define WEFT_CTX_RBP 24
#define WEFT_CTX_R12 32
#define WEFT_CTX_R13 40
#define WEFT_CTX_R14 48
#define WEFT_CTX_R15 56
#define WEFT_CTX_SIZE 64
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
/* Field order is the offsets above; the bytes are only touched by assembly. */
typedef struct weft__ctx {
    void *sp;
    void *pc;
    uint64_t regs[(WEFT_CTX_SIZE - 16) / 8];
} weft__ctx;

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
