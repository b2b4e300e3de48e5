/* gemm.c — general matrix multiply for generated code, float and double:
 *   C[m x n] = alpha * op(A) * op(B) + beta * C      (row-major, see bp.h)
 *
 * The body is written once as a template: this file includes itself twice
 * with GEMM_T set to float and to double. Strategy:
 *   - C is first scaled by beta (beta == 0 stores zeros without reading C,
 *     so garbage or NaN in C never leaks through);
 *   - small products run straight loops ordered so the innermost loop
 *     streams rows of B and C contiguously (i-k-j; k-i-j when A is
 *     transposed; dot products of two contiguous rows for A·Bᵀ);
 *   - larger ones walk cache-sized blocks of C and k; when B is transposed
 *     each KC x NC block of op(B) is first copied into a small buffer on
 *     the stack, so every case reduces to the same contiguous kernel.
 * Nothing is allocated on the heap and no state is kept, so it is safe to
 * call from several threads. The caller owns A, B and C; C must not
 * overlap A or B. */
#ifndef GEMM_T

#include "bp.h"

/* Below this many multiply-adds the blocking bookkeeping costs more than
 * it saves. */
#define GEMM_SMALL 32768
/* Block sizes: a KC x NC block of B (32 KiB in double) stays in L1/L2
 * while a block of MC rows of A and C streams past it. */
#define GEMM_MC 64
#define GEMM_KC 64
#define GEMM_NC 64

#define GEMM_T float
#define GEMM_NAME bp_gemm_f
#define GEMM_(x) x##_f
#include "gemm.c"
#undef GEMM_T
#undef GEMM_NAME
#undef GEMM_

#define GEMM_T double
#define GEMM_NAME bp_gemm_d
#define GEMM_(x) x##_d
#include "gemm.c"
#undef GEMM_T
#undef GEMM_NAME
#undef GEMM_

#else /* template body: GEMM_T, GEMM_NAME and GEMM_() are defined */

/* C = beta * C, without reading C when beta == 0. */
static void GEMM_(scale)(int m, int n, GEMM_T beta, GEMM_T *c, int ldc)
{
    if (beta == 1)
        return;
    for (int i = 0; i < m; i++) {
        GEMM_T *restrict ci = c + (size_t)i * ldc;
        if (beta == 0)
            for (int j = 0; j < n; j++)
                ci[j] = 0;
        else
            for (int j = 0; j < n; j++)
                ci[j] *= beta;
    }
}

/* c[0..n) += s * b[0..n): the kernel every path ends in. */
static void GEMM_(axpy)(int n, GEMM_T s, const GEMM_T *restrict b,
                        GEMM_T *restrict c)
{
    for (int j = 0; j < n; j++)
        c[j] += s * b[j];
}

/* C += alpha * op(A) * B for one block: rows [i0, i1) of C, columns
 * [0, nb) of the block, k range [p0, p1). `b` points at the block's first
 * row (row p0) with row stride ldb; `c` at column 0 of the block. */
static void GEMM_(block)(int trans_a, int i0, int i1, int p0, int p1,
                         int nb, GEMM_T alpha, const GEMM_T *a, int lda,
                         const GEMM_T *b, int ldb, GEMM_T *c, int ldc)
{
    if (!trans_a) {
        for (int i = i0; i < i1; i++) {
            const GEMM_T *ai = a + (size_t)i * lda;
            GEMM_T *ci = c + (size_t)i * ldc;
            for (int p = p0; p < p1; p++)
                GEMM_(axpy)(nb, alpha * ai[p], b + (size_t)(p - p0) * ldb, ci);
        }
    } else {
        /* op(A)[i][p] = A[p][i]: walk p outside so A's rows stream. */
        for (int p = p0; p < p1; p++) {
            const GEMM_T *ap = a + (size_t)p * lda;
            const GEMM_T *bp = b + (size_t)(p - p0) * ldb;
            for (int i = i0; i < i1; i++)
                GEMM_(axpy)(nb, alpha * ap[i], bp, c + (size_t)i * ldc);
        }
    }
}

void GEMM_NAME(int trans_a, int trans_b, int m, int n, int k, GEMM_T alpha,
               const GEMM_T *a, int lda, const GEMM_T *b, int ldb,
               GEMM_T beta, GEMM_T *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    GEMM_(scale)(m, n, beta, c, ldc);
    if (k <= 0 || alpha == 0)
        return;
    int small = (double)m * n * k <= GEMM_SMALL;

    if (!trans_b) {
        if (small) {
            GEMM_(block)(trans_a, 0, m, 0, k, n, alpha, a, lda, b, ldb, c, ldc);
            return;
        }
        for (int j0 = 0; j0 < n; j0 += GEMM_NC) {
            int nb = n - j0 < GEMM_NC ? n - j0 : GEMM_NC;
            for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
                int p1 = k - p0 < GEMM_KC ? k : p0 + GEMM_KC;
                for (int i0 = 0; i0 < m; i0 += GEMM_MC) {
                    int i1 = m - i0 < GEMM_MC ? m : i0 + GEMM_MC;
                    GEMM_(block)(trans_a, i0, i1, p0, p1, nb, alpha, a, lda,
                                 b + (size_t)p0 * ldb + j0, ldb, c + j0, ldc);
                }
            }
        }
        return;
    }

    if (!trans_a && small) {
        /* A·Bᵀ: each entry is a dot product of two contiguous rows. */
        for (int i = 0; i < m; i++) {
            const GEMM_T *restrict ai = a + (size_t)i * lda;
            GEMM_T *ci = c + (size_t)i * ldc;
            for (int j = 0; j < n; j++) {
                const GEMM_T *restrict bj = b + (size_t)j * ldb;
                GEMM_T s = 0;
                for (int p = 0; p < k; p++)
                    s += ai[p] * bj[p];
                ci[j] += alpha * s;
            }
        }
        return;
    }

    /* Bᵀ in blocks: copy op(B)[p0..p1)[j0..j0+nb) = B[j][p] into a
     * row-major buffer, then run the common kernel on it. */
    GEMM_T buf[GEMM_KC * GEMM_NC];
    for (int j0 = 0; j0 < n; j0 += GEMM_NC) {
        int nb = n - j0 < GEMM_NC ? n - j0 : GEMM_NC;
        for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
            int p1 = k - p0 < GEMM_KC ? k : p0 + GEMM_KC;
            for (int j = 0; j < nb; j++) {
                const GEMM_T *bj = b + (size_t)(j0 + j) * ldb;
                for (int p = p0; p < p1; p++)
                    buf[(size_t)(p - p0) * GEMM_NC + j] = bj[p];
            }
            for (int i0 = 0; i0 < m; i0 += GEMM_MC) {
                int i1 = m - i0 < GEMM_MC ? m : i0 + GEMM_MC;
                GEMM_(block)(trans_a, i0, i1, p0, p1, nb, alpha, a, lda,
                             buf, GEMM_NC, c + j0, ldc);
            }
        }
    }
}

#endif
