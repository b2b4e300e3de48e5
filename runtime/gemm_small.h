/* gemm_small.h — the unpacked matrix-multiply paths, as a template that
 * gemm.c instantiates once per element type and instruction set. Included
 * with GEMM_T (float or double), GEMM_(x) (a name with the type's and the
 * instruction set's suffix) and GEMM_ATTR (a target attribute, or empty)
 * defined, and GEMM_SMALL, GEMM_DOTS_BYTES, GEMM_MC/KC/NC, GEMM_VB,
 * GEMM_X4/X8 from gemm.c.
 *
 * These serve what packing does not pay for: vectors (m == 1, n == 1),
 * rank-1 updates (k == 1) and small products, and they are the fallback
 * when no packing buffer can be had. See gemm.c for the shapes each path
 * takes; GEMM_(small) is the entry. */


/* C = beta * C, without reading C when beta == 0. */
GEMM_ATTR static void GEMM_(scale)(int m, int n, GEMM_T beta, GEMM_T *c, int ldc)
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
GEMM_ATTR static void GEMM_(axpy)(int n, GEMM_T s, const GEMM_T *restrict b,
                        GEMM_T *restrict c)
{
    int j = 0;
#define GEMM_S(q) c[q] += s * b[q];
    for (; j + 8 <= n; j += 8) {
        GEMM_X8(GEMM_S, j)
    }
#undef GEMM_S
    for (; j < n; j++)
        c[j] += s * b[j];
}

/* c[0..n) = s * b[0..n) + beta * c[0..n); c is not read when beta == 0. */
GEMM_ATTR static void GEMM_(axpby)(int n, GEMM_T s, const GEMM_T *restrict b,
                         GEMM_T beta, GEMM_T *restrict c)
{
    int j = 0;
    if (beta == 1) {
        GEMM_(axpy)(n, s, b, c);
    } else if (beta == 0) {
#define GEMM_S(q) c[q] = s * b[q];
        for (; j + 8 <= n; j += 8) {
            GEMM_X8(GEMM_S, j)
        }
#undef GEMM_S
        for (; j < n; j++)
            c[j] = s * b[j];
    } else {
#define GEMM_S(q) c[q] = s * b[q] + beta * c[q];
        for (; j + 8 <= n; j += 8) {
            GEMM_X8(GEMM_S, j)
        }
#undef GEMM_S
        for (; j < n; j++)
            c[j] = s * b[j] + beta * c[j];
    }
}

/* x[0..k) · y[0..k) with 8 partial sums. */
GEMM_ATTR static GEMM_T GEMM_(dot)(int k, const GEMM_T *restrict x,
                         const GEMM_T *restrict y)
{
    GEMM_T t = 0;
    int p = 0;
    if (k >= 16) {
        GEMM_T s[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
#define GEMM_S(q) s[(q) - p] += x[q] * y[q];
        for (; p + 16 <= k; p += 16) {
            GEMM_X8(GEMM_S, p)
            GEMM_X8(GEMM_S, p + 8)
        }
#undef GEMM_S
        for (int q = 0; q < 8; q++)
            s[q] += s[q + 8];
        t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    }
    for (; p < k; p++)
        t += x[p] * y[p];
    return t;
}

/* *c = v + beta * *c, not reading *c when beta == 0. */
#define GEMM_STORE(c, v, beta) \
    (*(c) = (beta) == 0 ? (v) : (beta) == 1 ? *(c) + (v) : (v) + (beta) * *(c))

/* k == 1: C[i][j] = alpha * op(A)[i][0] * op(B)[0][j] + beta * C[i][j].
 * op(A)[i][0] is a[i * sa]; op(B)[0][j] is b[j * sb] (gathered first when
 * sb != 1). */
GEMM_ATTR static void GEMM_(rank1)(int m, int n, GEMM_T alpha, const GEMM_T *a,
                         int sa, const GEMM_T *b, int sb, GEMM_T beta,
                         GEMM_T *c, int ldc)
{
    GEMM_T buf[GEMM_VB];
    int step = sb == 1 ? n : GEMM_VB;
    for (int j0 = 0; j0 < n; j0 += step) {
        int nb = n - j0 < step ? n - j0 : step;
        const GEMM_T *bj = b + (size_t)j0 * sb;
        if (sb != 1) {
            for (int j = 0; j < nb; j++)
                buf[j] = bj[(size_t)j * sb];
            bj = buf;
        }
        for (int i = 0; i < m; i++)
            GEMM_(axpby)(nb, alpha * a[(size_t)i * sa], bj, beta,
                         c + (size_t)i * ldc + j0);
    }
}

/* B not transposed: row i of C = alpha * sum_p op(A)[i][p] * row p of B
 * + beta * row i of C, the p == 0 term stored with beta. */
GEMM_ATTR static void GEMM_(rows)(int trans_a, int m, int n, int k, GEMM_T alpha,
                        const GEMM_T *a, int lda, const GEMM_T *b, int ldb,
                        GEMM_T beta, GEMM_T *c, int ldc)
{
    if (!trans_a) {
        for (int i = 0; i < m; i++) {
            const GEMM_T *ai = a + (size_t)i * lda;
            GEMM_T *ci = c + (size_t)i * ldc;
            GEMM_(axpby)(n, alpha * ai[0], b, beta, ci);
            for (int p = 1; p < k; p++)
                GEMM_(axpy)(n, alpha * ai[p], b + (size_t)p * ldb, ci);
        }
    } else {
        /* op(A)[i][p] = A[p][i]: walk p outside so A's rows stream. */
        for (int i = 0; i < m; i++)
            GEMM_(axpby)(n, alpha * a[i], b, beta, c + (size_t)i * ldc);
        for (int p = 1; p < k; p++) {
            const GEMM_T *ap = a + (size_t)p * lda;
            const GEMM_T *bp = b + (size_t)p * ldb;
            for (int i = 0; i < m; i++)
                GEMM_(axpy)(n, alpha * ap[i], bp, c + (size_t)i * ldc);
        }
    }
}

/* C[i][j] = alpha * (row i of op(A)) · (column j of op(B)) + beta C[i][j],
 * where op(A)[i][p] = a[i * lda + p * sa] and op(B)[p][j] =
 * b[j * ldb + p * sb]. A strided vector is gathered into a buffer, piece
 * by piece: sa != 1 only when m == 1, sb != 1 only when n == 1. */
GEMM_ATTR static void GEMM_(dots)(int m, int n, int k, GEMM_T alpha, const GEMM_T *a,
                        int lda, int sa, const GEMM_T *b, int ldb, int sb,
                        GEMM_T beta, GEMM_T *c, int ldc)
{
    GEMM_T bufa[GEMM_VB], bufb[GEMM_VB];
    int step = sa == 1 && sb == 1 ? k : GEMM_VB;
    for (int p0 = 0; p0 < k; p0 += step) {
        int kb = k - p0 < step ? k - p0 : step;
        GEMM_T be = p0 == 0 ? beta : 1;
        const GEMM_T *x = a + (size_t)p0 * sa, *y = b + (size_t)p0 * sb;
        if (sa != 1) {
            for (int p = 0; p < kb; p++)
                bufa[p] = x[(size_t)p * sa];
            x = bufa;
        }
        if (sb != 1) {
            for (int p = 0; p < kb; p++)
                bufb[p] = y[(size_t)p * sb];
            y = bufb;
        }
        /* Blocks of jb rows of B (about 256 KiB) stay in cache while
         * every row of A passes over them. */
        size_t fit = (size_t)GEMM_DOTS_BYTES / sizeof(GEMM_T) / (size_t)kb;
        int jb = fit < 8 ? 8 : fit > (size_t)n ? n : (int)fit;
        for (int j0 = 0; j0 < n; j0 += jb) {
            int j1 = n - j0 < jb ? n : j0 + jb;
            for (int i = 0; i < m; i++) {
                const GEMM_T *ai = x + (size_t)i * lda;
                GEMM_T *ci = c + (size_t)i * ldc;
                for (int j = j0; j < j1; j++) {
                    GEMM_T v = alpha * GEMM_(dot)(kb, ai, y + (size_t)j * ldb);
                    GEMM_STORE(ci + j, v, be);
                }
            }
        }
    }
}

/* A transposed: column j of C = alpha * sum_p op(B)[p][j] * row p of A
 * + beta * column j of C, where op(B)[p][j] = b[j * sj + p * sp]. The
 * sum runs in a buffer of up to GEMM_VB rows of C at a time. */
GEMM_ATTR static void GEMM_(cols)(int m, int n, int k, GEMM_T alpha, const GEMM_T *a,
                        int lda, const GEMM_T *b, int sj, int sp,
                        GEMM_T beta, GEMM_T *c, int ldc)
{
    GEMM_T acc[GEMM_VB];
    for (int i0 = 0; i0 < m; i0 += GEMM_VB) {
        int mb = m - i0 < GEMM_VB ? m - i0 : GEMM_VB;
        for (int j = 0; j < n; j++) {
            const GEMM_T *bj = b + (size_t)j * sj;
            GEMM_(axpby)(mb, bj[0], a + i0, 0, acc);
            for (int p = 1; p < k; p++)
                GEMM_(axpy)(mb, bj[(size_t)p * sp], a + (size_t)p * lda + i0,
                            acc);
            GEMM_T *cj = c + (size_t)i0 * ldc + j;
            for (int i = 0; i < mb; i++)
                GEMM_STORE(cj + (size_t)i * ldc, alpha * acc[i], beta);
        }
    }
}

/* C += alpha * op(A) * B for one block: rows [i0, i1) of C, columns
 * [0, nb) of the block, k range [p0, p1). `b` points at the block's first
 * row (row p0) with row stride ldb; `c` at column 0 of the block. */
GEMM_ATTR static void GEMM_(block)(int trans_a, int i0, int i1, int p0, int p1,
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

GEMM_ATTR static void GEMM_(small)(int trans_a, int trans_b, int m, int n, int k, GEMM_T alpha,
               const GEMM_T *a, int lda, const GEMM_T *b, int ldb,
               GEMM_T beta, GEMM_T *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0) {
        GEMM_(scale)(m, n, beta, c, ldc);
        return;
    }
    if (k == 1) {
        GEMM_(rank1)(m, n, alpha, a, trans_a ? 1 : lda, b, trans_b ? ldb : 1,
                     beta, c, ldc);
        return;
    }
    /* op(B) copied (short k, B transposed) or blocks of it (large, both
     * transposed). */
    GEMM_T buf[GEMM_KC * GEMM_NC];
    if (m == 1 || n == 1 || (!trans_a && trans_b)
        || (double)m * n * k <= GEMM_SMALL) {
        if (trans_b && k < 8 && m >= 4 && n >= 8
            && n <= GEMM_KC * GEMM_NC / k) {
            /* Dot products this short do not vectorize: copy op(B) and
             * take rows of it instead. */
            for (int j = 0; j < n; j++)
                for (int p = 0; p < k; p++)
                    buf[(size_t)p * n + j] = b[(size_t)j * ldb + p];
            GEMM_(rows)(trans_a, m, n, k, alpha, a, lda, buf, n, beta, c, ldc);
        } else if (!trans_a && (trans_b || n == 1))
            /* B not transposed and n == 1: op(B)[p][0] = b[p * ldb]. */
            GEMM_(dots)(m, n, k, alpha, a, lda, 1, b, ldb,
                        trans_b ? 1 : ldb, beta, c, ldc);
        else if (trans_a && trans_b && m == 1)
            /* op(A)[0][p] = a[p * lda]. */
            GEMM_(dots)(1, n, k, alpha, a, lda, lda, b, ldb, 1, beta, c, ldc);
        else if (trans_a && (trans_b || n < 8))
            GEMM_(cols)(m, n, k, alpha, a, lda, b, trans_b ? ldb : 1,
                        trans_b ? 1 : ldb, beta, c, ldc);
        else
            GEMM_(rows)(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }

    GEMM_(scale)(m, n, beta, c, ldc);
    if (!trans_b) {
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

    /* Aᵀ·Bᵀ in blocks: copy op(B)[p0..p1)[j0..j0+nb) = B[j][p] into a
     * row-major buffer, then run the common kernel on it. */
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

#undef GEMM_STORE
