/*
 * Saved execution context of a task or of a worker's scheduler loop, and the
 * switch between two of them.
 *
 * The layout is shared between C and the per-architecture assembly (switch_
 * <arch>.S include this header), so every offset is a macro here and is
 * checked against the C struct with _Static_assert in src/task.c.
 *
 * x86-64: the switch is inline assembly at its call site, resuming by an
 * indirect jmp to a label just after it.  No call and no ret: the hardware's
 * return-stack predictor never sees a switch.  An out-of-line routine entered
 * by call and left by jmp (our first version, and Boost.Context's) leaves the
 * call's entry on that predictor's stack: every later return in the resumed
 * task then pops the entry of the level below and mispredicts, all the way
 * up its call chain (two mispredicts per weft_yield; measured 30-35 ns per
 * yield against 13-22 ns once balanced, 2-core EPYC).  Leaving by ret keeps
 * it balanced but mispredicts whenever the two sides switched from different
 * call sites (the raw benchmark doubled to 10 ns).  The inline switch has
 * neither cost.  It declares every register but rsp and rbp clobbered, so
 * the compiler saves exactly what is live across it (the callee-saved ones in
 * its prologue) and the switch itself stores and loads only rsp, rbp and the
 * resume address.
 *
 * aarch64 keeps an assembly routine that saves the callee-saved registers
 * (x19-x29, d8-d15, sp, x30) and resumes with br (not built on our machines).
 *
 * The floating-point control words (MXCSR and the x87 control word on
 * x86-64, FPCR on aarch64) are not saved: weft never changes them, and a task
 * that does must restore them before it can be switched out (documented in
 * include/weft/task.h).
 */
#ifndef WEFT_ARCH_CTX_H
#define WEFT_ARCH_CTX_H

#if defined(__x86_64__)
/* rsp, rbp, the resume address, and for a fresh context the function and
 * argument weft__ctx_entry starts it with. */
#define WEFT_CTX_SP 0
#define WEFT_CTX_RBP 8
#define WEFT_CTX_PC 16
#define WEFT_CTX_FN 24
#define WEFT_CTX_ARG 32
#define WEFT_CTX_SIZE 40
#elif defined(__aarch64__)
/* sp, resume address (x30 at the call), x19..x29, d8..d15.  A fresh context
 * holds its function in x19 and its argument in x20. */
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
/* The stack pointer first, then the words in the order of the offsets
 * above; only the switch, weft__ctx_entry and weft__ctx_make touch them. */
typedef struct weft__ctx {
    void *sp;
    uint64_t regs[(WEFT_CTX_SIZE - 8) / 8];
} weft__ctx;

/* First instructions of every fresh context (switch_<arch>.S): calls the
 * context's function with its argument; that function must never return. */
void weft__ctx_entry(void);

/*
 * Makes c a fresh context: resuming it first calls fn(arg) on a stack whose
 * pointer starts at top & ~15 and grows down.  fn must never return (it
 * leaves by switching away for good).
 */
static inline void weft__ctx_make(weft__ctx *c, uintptr_t top, void (*fn)(void *), void *arg)
{
    c->sp = (void *)(top & ~(uintptr_t)15);
#if defined(__x86_64__)
    c->regs[(WEFT_CTX_RBP - 8) / 8] = 0;
    c->regs[(WEFT_CTX_PC - 8) / 8] = (uint64_t)(uintptr_t)weft__ctx_entry;
    c->regs[(WEFT_CTX_FN - 8) / 8] = (uint64_t)(uintptr_t)fn;
    c->regs[(WEFT_CTX_ARG - 8) / 8] = (uint64_t)(uintptr_t)arg;
#else
    c->regs[(WEFT_CTX_PC - 8) / 8] = (uint64_t)(uintptr_t)weft__ctx_entry;
    c->regs[(WEFT_CTX_X19 - 8) / 8] = (uint64_t)(uintptr_t)fn;
    c->regs[(WEFT_CTX_X19 - 8) / 8 + 1] = (uint64_t)(uintptr_t)arg;
#endif
}

#if defined(__x86_64__)
#define WEFT__CTX_STR2(x) #x
#define WEFT__CTX_STR(x) WEFT__CTX_STR2(x)
/* Every register the System V ABI lets a call clobber, plus the callee-saved
 * ones but rbp (rsp and rbp are switched by hand). */
#ifdef __AVX512F__
#define WEFT__CTX_CLOBBER_AVX512                                                          \
    , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24",      \
        "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k1", "k2", "k3",    \
        "k4", "k5", "k6", "k7"
#else
#define WEFT__CTX_CLOBBER_AVX512
#endif
#define WEFT__CTX_CLOBBERS                                                                \
    "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",       \
        "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",      \
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st",         \
        "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "mm0", "mm1", "mm2",  \
        "mm3", "mm4", "mm5", "mm6", "mm7" WEFT__CTX_CLOBBER_AVX512

/*
 * Saves the caller's context into *from and resumes *to.  Returns when some
 * other context switches back to *from.  A fresh context (weft__ctx_make)
 * starts in weft__ctx_entry with rdi = to.  Always inline: the resume label
 * must lie in the caller's frame.
 */
static inline __attribute__((always_inline)) void weft__ctx_switch(weft__ctx *from,
                                                                    const weft__ctx *to)
{
    __asm__ volatile("leaq 1f(%%rip), %%rax\n\t"
                     "movq %%rsp, " WEFT__CTX_STR(WEFT_CTX_SP) "(%0)\n\t"
                     "movq %%rbp, " WEFT__CTX_STR(WEFT_CTX_RBP) "(%0)\n\t"
                     "movq %%rax, " WEFT__CTX_STR(WEFT_CTX_PC) "(%0)\n\t"
                     "movq " WEFT__CTX_STR(WEFT_CTX_SP) "(%1), %%rsp\n\t"
                     "movq " WEFT__CTX_STR(WEFT_CTX_RBP) "(%1), %%rbp\n\t"
                     "jmpq *" WEFT__CTX_STR(WEFT_CTX_PC) "(%1)\n"
                     "1:"
                     : "+S"(from), "+D"(to)
                     :
                     : WEFT__CTX_CLOBBERS);
}

/* Resumes *to without saving anything (the caller's context is finished). */
static inline __attribute__((always_inline, noreturn)) void weft__ctx_jump(const weft__ctx *to)
{
    __asm__ volatile("movq " WEFT__CTX_STR(WEFT_CTX_SP) "(%0), %%rsp\n\t"
                     "movq " WEFT__CTX_STR(WEFT_CTX_RBP) "(%0), %%rbp\n\t"
                     "jmpq *" WEFT__CTX_STR(WEFT_CTX_PC) "(%0)"
                     :
                     : "D"(to)
                     : "memory");
    __builtin_unreachable();
}
#else
/* Saves the callee-saved state of the caller into *from and resumes *to;
 * returns when some other context switches back to *from. */
void weft__ctx_switch(weft__ctx *from, const weft__ctx *to);
/* Resumes *to without saving anything (the caller's context is finished). */
_Noreturn void weft__ctx_jump(const weft__ctx *to);
#endif
#endif

#endif
