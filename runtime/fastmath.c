/* fastmath.c — the array forms of bp.h's fast math: y[i] = f(x[i]).
 *
 * The loop bodies are bp.h's inline functions; what this file adds is a
 * shape every compiler vectorizes at -O2 and a build of it for each
 * instruction set (chosen at run time, cpu.c). gcc's -O2 vectorizes only
 * loops that need no scalar epilogue and no run-time alias check, so the
 * work goes in blocks of BLOCK elements through a local buffer: a fixed
 * trip count, and no pointer the compiler must prove apart (which also
 * makes y == x safe). The last partial block is padded with zeros.
 * gcc also needs -fno-trapping-math to turn the functions' selects
 * (clamps, special cases) into vector blends below AVX-512: the pragma
 * says so for this file only, before bp.h, so that the inline functions
 * it defines carry the same options as the loops they are inlined into.
 * (These functions promise no floating-point exception flags.) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "bp.h"
#include "internal.h"

#define BLOCK 32

/* A last block of at most BLOCK / 2 goes through a half-size buffer:
 * a 16-value call (a tiny layer at batch 1) computes 16 lanes, not 32. */
#define VLOOP(name, T, fn, attr)                                           \
    attr static void name(size_t n, const T *x, T *y)                      \
    {                                                                      \
        T buf[BLOCK];                                                      \
        for (size_t i = 0; i < n; i += BLOCK) {                            \
            size_t len = n - i < BLOCK ? n - i : BLOCK;                    \
            if (len <= BLOCK / 2) {                                        \
                T half[BLOCK / 2];                                         \
                memset(half, 0, sizeof half);                              \
                memcpy(half, x + i, len * sizeof(T));                      \
                for (int j = 0; j < BLOCK / 2; j++)                        \
                    half[j] = fn(half[j]);                                 \
                memcpy(y + i, half, len * sizeof(T));                      \
                break;                                                     \
            }                                                              \
            /* a whole block's copies by a constant size: inline moves, \
             * where a variable size was a `rep movs` that took longer  \
             * than the block's arithmetic */                             \
            if (len == BLOCK) {                                            \
                memcpy(buf, x + i, sizeof buf);                            \
            } else {                                                       \
                memset(buf, 0, sizeof buf);                                \
                memcpy(buf, x + i, len * sizeof(T));                       \
            }                                                              \
            for (int j = 0; j < BLOCK; j++)                                \
                buf[j] = fn(buf[j]);                                       \
            if (len == BLOCK)                                              \
                memcpy(y + i, buf, sizeof buf);                            \
            else                                                           \
                memcpy(y + i, buf, len * sizeof(T));                       \
        }                                                                  \
    }

#ifdef BP_X86_KERNELS
#define VARIANTS(name, T, fn)                                              \
    VLOOP(name##_port, T, fn, )                                            \
    VLOOP(name##_avx2, T, fn, BP_TARGET_AVX2)                              \
    VLOOP(name##_avx512, T, fn, BP_TARGET_AVX512)                          \
    static void name##_isa(size_t n, const T *x, T *y)                     \
    {                                                                      \
        switch (bp_isa()) {                                                \
        case BP_ISA_AVX512:                                                \
            name##_avx512(n, x, y);                                        \
            break;                                                         \
        case BP_ISA_AVX2:                                                  \
            name##_avx2(n, x, y);                                          \
            break;                                                         \
        default:                                                           \
            name##_port(n, x, y);                                          \
        }                                                                  \
    }                                                                      \
    THREADED(name, T)
#else
#define VARIANTS(name, T, fn)                                              \
    VLOOP(name##_port, T, fn, )                                            \
    static void name##_isa(size_t n, const T *x, T *y)                     \
    {                                                                      \
        name##_port(n, x, y);                                              \
    }                                                                      \
    THREADED(name, T)
#endif

/* From PAR_MIN values on (about 8 µs of tanh on one core of the AVX-512
 * machine this was built on: 0.5 ns a value), the array is cut into
 * contiguous ranges for the runtime's threads (bp_parallel_for); below
 * it a hand-off to the pool costs too much of the gain. Each value is
 * computed alone, by the same instructions wherever its range starts, so
 * the bits are the same for any number of threads. */
#define PAR_MIN 16384

#define THREADED(name, T)                                                  \
    typedef struct {                                                       \
        const T *x;                                                        \
        T *y;                                                              \
    } name##_job;                                                          \
    static void name##_range(void *ctx, size_t lo, size_t hi)              \
    {                                                                      \
        const name##_job *job = ctx;                                       \
        name##_isa(hi - lo, job->x + lo, job->y + lo);                     \
    }                                                                      \
    void name(size_t n, const T *x, T *y)                                  \
    {                                                                      \
        if (n >= PAR_MIN && bp_get_num_threads() > 1) {                    \
            name##_job job = {x, y};                                       \
            bp_parallel_for(n, PAR_MIN / 2, name##_range, &job);           \
            return;                                                        \
        }                                                                  \
        name##_isa(n, x, y);                                               \
    }

VARIANTS(bp_vexpf, float, bp_expf)
VARIANTS(bp_vexp, double, bp_exp)
VARIANTS(bp_vlogf, float, bp_logf)
VARIANTS(bp_vlog, double, bp_log)
VARIANTS(bp_vtanhf, float, bp_tanhf)
VARIANTS(bp_vtanh, double, bp_tanh)
VARIANTS(bp_vsigmoidf, float, bp_sigmoidf)
VARIANTS(bp_vsigmoid, double, bp_sigmoid)
