/* gemm.c — general matrix multiply for generated code, float and double:
 *   C[m x n] = alpha * op(A) * op(B) + beta * C      (row-major, see bp.h)
 *
 * Two families of code, chosen by shape:
 *
 * 1. Packed, blocked, register-blocked (every product with m, n >= 2,
 *    k >= 2 and at least GEMM_PACK_MIN multiply-adds). The loops are the
 *    ones BLIS describes:
 *        for each block of NC columns of C
 *          for each block of KC of the k dimension
 *            pack op(B)[KC x NC] into panels NR columns wide  (L3/L2)
 *            for each block of MC rows of C            (A's, L2)
 *              for each NR-wide panel of B                     (L1)
 *                for each MR-tall panel of A
 *                  micro-kernel: an MR x NR tile of C, kept in registers
 *                  over the whole KC block, then C = alpha * acc + beta C
 *    Packing B takes care of its transpose and leading dimension. The
 *    kernel broadcasts A an element at a time, which costs the same from
 *    any address, so A is read in place with its own strides, never
 *    transposed into panels (as the samples of X·Wᵀ were); only a last
 *    panel of fewer than MR rows is packed, with zeros. So one kernel
 *    serves all four cases. Edge
 *    tiles are padded with zeros in the packed panels; the kernel then
 *    writes a tile-sized copy of C's edge (copied in and out), so every
 *    element of C is computed by exactly the same operations wherever it
 *    lies. The first KC block applies the caller's beta (beta == 0 stores
 *    without reading C, so garbage or NaN there never leaks), later ones
 *    add (beta = 1).
 *    Micro-kernels, chosen at run time (cpu.c) so the default -O2 build
 *    uses the machine: AVX-512 (float 8 x 32, double 8 x 16: 16 zmm
 *    accumulators), AVX2+FMA (float 6 x 16, double 6 x 8: 12 ymm), and
 *    portable C (4 x 8) for other machines and compilers.
 *
 * 2. The unpacked paths of gemm_small.h for vectors (m == 1 or n == 1,
 *    e.g. batch 1), rank-1 updates (k == 1) and small products, where
 *    packing costs more than it saves. They too are compiled once per
 *    instruction set (plain C with a target attribute: the compiler
 *    vectorizes their unrolled loops at the wider width).
 *
 * Determinism: each element of C is a fixed sequence of operations — the
 * k dimension is summed in the same order, in the same KC blocks, whatever
 * the number of threads — so the bits depend only on the shape, the
 * inputs and the instruction set, never on threads or on timing.
 *
 * Threads: a product of GEMM_PAR_MIN multiply-adds or more is cut into as
 * many pieces as bp_set_num_threads() allows, by whole MR x NR tiles of C,
 * along n (each thread packs its own columns of B) or along m (its own
 * rows of A, and all of B) — never along k. Each thread packs into its own scratch
 * (bp_thread_scratch: about 1 MiB per thread, allocated on first use);
 * when that memory cannot be had, the piece runs the unpacked paths.
 * Several application threads may call bp_gemm_* at once. */
#include "bp.h"
#include "internal.h"

#include <string.h>

#ifdef BP_X86_KERNELS
#include <immintrin.h>
#endif

/* At most this many multiply-adds run the simple loops of the unpacked
 * paths (gemm_small.h); see there. */
#ifndef GEMM_SMALL
#define GEMM_SMALL 262144
#endif
#define GEMM_DOTS_BYTES 262144
#define GEMM_MC 64
#define GEMM_KC 64
#define GEMM_NC 64
#define GEMM_VB 512
#define GEMM_X4(S, j) S(j) S(j + 1) S(j + 2) S(j + 3)
#define GEMM_X8(S, j) GEMM_X4(S, j) GEMM_X4(S, j + 4)

/* Packed path: products from this many multiply-adds on (and m, n, k at
 * least 2) are packed; threads are used from GEMM_PAR_MIN on. */
#define GEMM_PACK_MIN 32768
#define GEMM_PAR_MIN 1048576
/* Block sizes of the packed path, in elements: KC deep; MC rows of A
 * (about 128 KiB, in L2, read in place) and NC columns of B (about 1 MiB,
 * packed) per block, rounded down to multiples of the kernel's MR and
 * NR. The scratch holds B's block and A's short last panel. */
#define PACK_KC 256
#define PACK_BYTES_A 131072
#define PACK_BYTES_B 1048576
#define PACK_MR_MAX 8           /* the tallest kernel's MR */
#define PACK_SCRATCH (PACK_BYTES_B + PACK_KC * PACK_MR_MAX * sizeof(double) + 4096)
/* The largest micro-tile of any kernel, in elements. */
#define PACK_TILE 256

/* ---------------------------------------------------------------- unpacked */

#define GEMM_ATTR
#define GEMM_T float
#define GEMM_(x) x##_f
#include "gemm_small.h"
#undef GEMM_T
#undef GEMM_
#define GEMM_T double
#define GEMM_(x) x##_d
#include "gemm_small.h"
#undef GEMM_T
#undef GEMM_
#undef GEMM_ATTR

#ifdef BP_X86_KERNELS
#define GEMM_ATTR BP_TARGET_AVX2
#define GEMM_T float
#define GEMM_(x) x##_f_avx2
#include "gemm_small.h"
#undef GEMM_T
#undef GEMM_
#define GEMM_T double
#define GEMM_(x) x##_d_avx2
#include "gemm_small.h"
#undef GEMM_T
#undef GEMM_
#undef GEMM_ATTR

#define GEMM_ATTR BP_TARGET_AVX512
#define GEMM_T float
#define GEMM_(x) x##_f_avx512
#include "gemm_small.h"
#undef GEMM_T
#undef GEMM_
#define GEMM_T double
#define GEMM_(x) x##_d_avx512
#include "gemm_small.h"
#undef GEMM_T
#undef GEMM_
#undef GEMM_ATTR
#endif

/* ---------------------------------------------------------------- kernels */
/* Every micro-kernel computes, for an MR x NR tile,
 *   C = alpha * sum_p a(0..MR, p) (x) b[p][0..NR) + beta * C
 * from a packed panel b (kc x NR) and A's element (i, p) at
 * a[i * ars + p * aps]: a packed panel (ars 1, aps MR), or A's own rows
 * where they lie along k (ars lda, aps 1: no transposing pack, see
 * gemm_packed.h), with beta == 0 storing without reading C. */

typedef void kern_f(int kc, const float *a, int ars, int aps, const float *b,
                    float *c, int ldc, float alpha, float beta);
typedef void kern_d(int kc, const double *a, int ars, int aps, const double *b,
                    double *c, int ldc, double alpha, double beta);
typedef void transpose8_f(const float *src, int lds, float *dst, int ldd);
typedef void transpose8_d(const double *src, int lds, double *dst, int ldd);

/* Portable: 4 x 8, plain C the compiler may vectorize. */
#define PORT_MR 4
#define PORT_NR 8
#define PORT_KERNEL(T, name)                                               \
    static void name(int kc, const T *restrict a, int ars, int aps,        \
                     const T *restrict b, T *restrict c, int ldc, T alpha, \
                     T beta)                                               \
    {                                                                      \
        T acc[PORT_MR][PORT_NR];                                           \
        memset(acc, 0, sizeof acc);                                        \
        for (int p = 0; p < kc; p++) {                                     \
            for (int i = 0; i < PORT_MR; i++)                              \
                for (int j = 0; j < PORT_NR; j++)                          \
                    acc[i][j] += a[(size_t)i * ars] * b[j];                \
            a += aps;                                                      \
            b += PORT_NR;                                                  \
        }                                                                  \
        for (int i = 0; i < PORT_MR; i++) {                                \
            T *ci = c + (size_t)i * ldc;                                   \
            for (int j = 0; j < PORT_NR; j++)                              \
                ci[j] = beta == 0 ? alpha * acc[i][j]                      \
                        : beta == 1 ? ci[j] + alpha * acc[i][j]            \
                        : alpha * acc[i][j] + beta * ci[j];                \
        }                                                                  \
    }
PORT_KERNEL(float, kern_f_portable)
PORT_KERNEL(double, kern_d_portable)

#ifdef BP_X86_KERNELS

/* Short names for the intrinsics, so one macro body serves all four
 * kernels: KOP(op) is the current vector kind's (KV) operation. */
#define f8_storeu _mm256_storeu_ps
#define f8_loadu _mm256_loadu_ps
#define f8_load _mm256_load_ps
#define f8_mul _mm256_mul_ps
#define f8_fmadd _mm256_fmadd_ps
#define f8_set1 _mm256_set1_ps
#define f8_zero _mm256_setzero_ps
#define d4_storeu _mm256_storeu_pd
#define d4_loadu _mm256_loadu_pd
#define d4_load _mm256_load_pd
#define d4_mul _mm256_mul_pd
#define d4_fmadd _mm256_fmadd_pd
#define d4_set1 _mm256_set1_pd
#define d4_zero _mm256_setzero_pd
#define f16_storeu _mm512_storeu_ps
#define f16_loadu _mm512_loadu_ps
#define f16_load _mm512_load_ps
#define f16_mul _mm512_mul_ps
#define f16_fmadd _mm512_fmadd_ps
#define f16_set1 _mm512_set1_ps
#define f16_zero _mm512_setzero_ps
#define d8_storeu _mm512_storeu_pd
#define d8_loadu _mm512_loadu_pd
#define d8_load _mm512_load_pd
#define d8_mul _mm512_mul_pd
#define d8_fmadd _mm512_fmadd_pd
#define d8_set1 _mm512_set1_pd
#define d8_zero _mm512_setzero_pd
#define KCAT_(a, b) a##b
#define KCAT(a, b) KCAT_(a, b)
#define KOP(op) KCAT(KV, op)

/* Stores one register of a tile row. */
#define KSTORE(ptr, acc)                                                   \
    do {                                                                   \
        if (beta == 0)                                                     \
            KOP(_storeu)(ptr, KOP(_mul)(va, acc));                         \
        else if (beta == 1)                                                \
            KOP(_storeu)(ptr, KOP(_fmadd)(va, acc, KOP(_loadu)(ptr)));     \
        else                                                               \
            KOP(_storeu)(ptr, KOP(_fmadd)(va, acc,                         \
                                          KOP(_mul)(vb, KOP(_loadu)(ptr)))); \
    } while (0)

/* A kernel MR rows tall and two registers (KW elements each) wide, for
 * the vector kind KV of type KT; ROWS(X) lists X(0) .. X(MR-1). */
#define KERNEL2(name, attr, T, MR, ROWS)                                   \
    attr static void name(int kc, const T *restrict a, int ars, int aps,   \
                          const T *restrict b, T *restrict c, int ldc,     \
                          T alpha, T beta)                                 \
    {                                                                      \
        ROWS(KDECL)                                                        \
        for (int p = 0; p < kc; p++) {                                     \
            KT b0 = KOP(_load)(b), b1 = KOP(_load)(b + KW), ai;            \
            ROWS(KFMA)                                                     \
            a += aps;                                                      \
            b += 2 * KW;                                                   \
        }                                                                  \
        KT va = KOP(_set1)(alpha), vb = KOP(_set1)(beta);                  \
        ROWS(KOUT)                                                         \
    }
#define KDECL(i) KT c##i##0 = KOP(_zero)(), c##i##1 = KOP(_zero)();
#define KFMA(i)                                                            \
    ai = KOP(_set1)(a[(size_t)(i) * ars]);                                                 \
    c##i##0 = KOP(_fmadd)(ai, b0, c##i##0);                                \
    c##i##1 = KOP(_fmadd)(ai, b1, c##i##1);
#define KOUT(i)                                                            \
    KSTORE(c + (size_t)(i) * ldc, c##i##0);                                \
    KSTORE(c + (size_t)(i) * ldc + KW, c##i##1);

#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define ROWS8(X) ROWS6(X) X(6) X(7)

#define KT __m256
#define KV f8
#define KW 8
KERNEL2(kern_f_avx2, BP_TARGET_AVX2, float, 6, ROWS6)
#undef KT
#undef KV
#undef KW
#define KT __m256d
#define KV d4
#define KW 4
KERNEL2(kern_d_avx2, BP_TARGET_AVX2, double, 6, ROWS6)
#undef KT
#undef KV
#undef KW
#define KT __m512
#define KV f16
#define KW 16
KERNEL2(kern_f_avx512, BP_TARGET_AVX512, float, 8, ROWS8)
#undef KT
#undef KV
#undef KW
#define KT __m512d
#define KV d8
#define KW 8
KERNEL2(kern_d_avx512, BP_TARGET_AVX512, double, 8, ROWS8)
#undef KT
#undef KV
#undef KW

/* dst[c * ldd + r] = src[r * lds + c] for r, c < 8: the transposing
 * pack (op(B) from Bᵀ's rows) moves 8 x 8 blocks at a time instead of
 * one element, with an element's load and store each.
 * Unpacking pairs of rows, then pairs of pairs, leaves each 128-bit lane
 * holding four rows of one column; joining lanes finishes the columns. */
BP_TARGET_AVX2 static void transpose8_f_avx2(const float *src, int lds,
                                             float *dst, int ldd)
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + (size_t)i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        _mm256_storeu_ps(dst + (size_t)c * ldd,
                         _mm256_permute2f128_ps(u[c], u[c + 4], 0x20));
        _mm256_storeu_ps(dst + (size_t)(c + 4) * ldd,
                         _mm256_permute2f128_ps(u[c], u[c + 4], 0x31));
    }
}

/* The same for doubles, as four 4 x 4 blocks: unpacking pairs of rows
 * leaves each lane two rows of a column; joining lanes finishes them. */
BP_TARGET_AVX2 static void transpose8_d_avx2(const double *src, int lds,
                                             double *dst, int ldd)
{
    for (int rb = 0; rb < 8; rb += 4)
        for (int cb = 0; cb < 8; cb += 4) {
            const double *s0 = src + (size_t)rb * lds + cb;
            double *d0 = dst + (size_t)cb * ldd + rb;
            __m256d r0 = _mm256_loadu_pd(s0), r1 = _mm256_loadu_pd(s0 + lds),
                    r2 = _mm256_loadu_pd(s0 + 2 * (size_t)lds),
                    r3 = _mm256_loadu_pd(s0 + 3 * (size_t)lds);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1),
                    t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            _mm256_storeu_pd(d0, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(d0 + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(d0 + 2 * (size_t)ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(d0 + 3 * (size_t)ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
}

#endif

/* ---------------------------------------------------------------- packed */

#define GEMM_T float
#define GEMM_(x) x##_f
#include "gemm_packed.h"
#undef GEMM_T
#undef GEMM_
#define GEMM_T double
#define GEMM_(x) x##_d
#include "gemm_packed.h"
#undef GEMM_T
#undef GEMM_

/* Per instruction set: the micro-kernel, its tile, and the unpacked
 * paths. */
static const struct {
    int mr, nr;
    kern_f *kern;
    void (*small)(int, int, int, int, int, float, const float *, int,
                  const float *, int, float, float *, int);
    transpose8_f *transpose8;
} isa_f[BP_ISA_COUNT] = {
    {PORT_MR, PORT_NR, kern_f_portable, small_f, NULL},
#ifdef BP_X86_KERNELS
    {6, 16, kern_f_avx2, small_f_avx2, transpose8_f_avx2},
    {8, 32, kern_f_avx512, small_f_avx512, transpose8_f_avx2},
#endif
};

static const struct {
    int mr, nr;
    kern_d *kern;
    void (*small)(int, int, int, int, int, double, const double *, int,
                  const double *, int, double, double *, int);
    transpose8_d *transpose8;
} isa_d[BP_ISA_COUNT] = {
    {PORT_MR, PORT_NR, kern_d_portable, small_d, NULL},
#ifdef BP_X86_KERNELS
    {6, 8, kern_d_avx2, small_d_avx2, transpose8_d_avx2},
    {8, 16, kern_d_avx512, small_d_avx512, transpose8_d_avx2},
#endif
};

/* Whether a product goes the packed way: big enough, and not a narrow
 * A·Bᵀ (n below half the kernel's width, e.g. the 10 logits of a
 * classifier), where dot products over rows of A and B use the vector
 * lanes better than a mostly padded tile. */
static int use_packed(int ta, int tb, int m, int n, int k, int alpha_zero,
                      int nr)
{
    if (alpha_zero || m < 2 || n < 2 || k < 2
        || (double)m * n * k < GEMM_PACK_MIN)
        return 0;
    return !(!ta && tb && 2 * n <= nr);
}

void bp_gemm_f(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    int isa = bp_isa();
    if (use_packed(trans_a, trans_b, m, n, k, alpha == 0, isa_f[isa].nr)) {
        packed_args_f g = {trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                           beta, c, ldc, isa_f[isa].mr, isa_f[isa].nr,
                           isa_f[isa].kern, isa_f[isa].small,
                           isa_f[isa].transpose8};
        packed_f(&g);
        return;
    }
    isa_f[isa].small(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
                     c, ldc);
}

void bp_gemm_d(int trans_a, int trans_b, int m, int n, int k, double alpha,
               const double *a, int lda, const double *b, int ldb,
               double beta, double *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    int isa = bp_isa();
    if (use_packed(trans_a, trans_b, m, n, k, alpha == 0, isa_d[isa].nr)) {
        packed_args_d g = {trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                           beta, c, ldc, isa_d[isa].mr, isa_d[isa].nr,
                           isa_d[isa].kern, isa_d[isa].small,
                           isa_d[isa].transpose8};
        packed_d(&g);
        return;
    }
    isa_d[isa].small(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
                     c, ldc);
}
