/* gemm_packed.h — the packed, blocked path of gemm.c (see there), as a
 * template included once per element type with GEMM_T and GEMM_(x)
 * defined. The micro-kernel comes in through packed_args. */

typedef struct {
    int ta, tb, m, n, k;
    GEMM_T alpha;
    const GEMM_T *a;
    int lda;
    const GEMM_T *b;
    int ldb;
    GEMM_T beta;
    GEMM_T *c;
    int ldc;
    int mr, nr;
    void (*kern)(int kc, const GEMM_T *a, int ars, int aps, const GEMM_T *b,
                 GEMM_T *c, int ldc, GEMM_T alpha, GEMM_T beta);
    void (*small)(int, int, int, int, int, GEMM_T, const GEMM_T *, int,
                  const GEMM_T *, int, GEMM_T, GEMM_T *, int);
    /* an 8 x 8 block transposed (dst[c ldd + r] = src[r lds + c]), or
     * NULL: element by element */
    void (*transpose8)(const GEMM_T *src, int lds, GEMM_T *dst, int ldd);
} GEMM_(packed_args);

/* rows x kc of src (rows apart by lds) into dst[p * ldd + r]: by 8 x 8
 * blocks where g has them and rows is a multiple of 8, the rest one by
 * one. */
static void GEMM_(transpose_rows)(const GEMM_(packed_args) *g, const GEMM_T *src,
                                  int lds, int rows, int kc, GEMM_T *restrict dst,
                                  int ldd)
{
    int p0 = 0;
    if (g->transpose8 && rows % 8 == 0) {
        for (; p0 + 8 <= kc; p0 += 8)
            for (int r = 0; r < rows; r += 8)
                g->transpose8(src + (size_t)r * lds + p0, lds,
                              dst + (size_t)p0 * ldd + r, ldd);
    }
    for (int r = 0; r < rows; r++)
        for (int p = p0; p < kc; p++)
            dst[(size_t)p * ldd + r] = src[(size_t)r * lds + p];
}

/* The last panel of op(A) when it has fewer than mr rows: op(A)[i0 + i]
 * [p0 + p] for i < rows, p < kc, row-major by p (mr values per p), the
 * rows past `rows` zero. Every other panel is read in place (see
 * packed_range). */
static void GEMM_(pack_a_short)(const GEMM_(packed_args) *g, int i0, int rows,
                                int p0, int kc, GEMM_T *restrict dst)
{
    int mr = g->mr;
    memset(dst, 0, (size_t)kc * mr * sizeof *dst);
    if (!g->ta) {
        GEMM_(transpose_rows)(g, g->a + (size_t)i0 * g->lda + p0, g->lda, rows, kc,
                              dst, mr);
    } else {
        for (int p = 0; p < kc; p++)
            memcpy(dst + (size_t)p * mr, g->a + (size_t)(p0 + p) * g->lda + i0,
                   (size_t)rows * sizeof *dst);
    }
}

/* op(B)[p0 + p][j0 + j] for p < kc, j < nc into panels of nr columns:
 * panel r holds columns r*nr.., row-major by p, columns past nc zero. */
static void GEMM_(pack_b)(const GEMM_(packed_args) *g, int p0, int kc,
                          int j0, int nc, GEMM_T *restrict dst)
{
    int nr = g->nr;
    for (int jr = 0; jr < nc; jr += nr) {
        int cols = nc - jr < nr ? nc - jr : nr;
        GEMM_T *d = dst + (size_t)jr * kc;
        if (cols < nr)
            memset(d, 0, (size_t)kc * nr * sizeof *d);
        if (!g->tb) {
            for (int p = 0; p < kc; p++)
                memcpy(d + (size_t)p * nr, g->b + (size_t)(p0 + p) * g->ldb + j0 + jr,
                       (size_t)cols * sizeof *d);
        } else {
            GEMM_(transpose_rows)(g, g->b + (size_t)(j0 + jr) * g->ldb + p0, g->ldb,
                                  cols, kc, d, nr);
        }
    }
}

/* k in equal blocks of at most PACK_KC (784 = 4 x 196, not 3 x 256 + 16):
 * a short last block would load and store C for little work. The blocks
 * depend on k alone, never on the threads. */
static int GEMM_(k_block)(int k)
{
    int kblocks = (k + PACK_KC - 1) / PACK_KC;
    return (k + kblocks - 1) / kblocks;
}

/* Rows [i0, i1) and columns [j0, j1) of C, with scratch `buf` (64-byte
 * aligned, PACK_SCRATCH bytes).
 * op(A) is not packed: the kernel broadcasts A an element at a time, and
 * a broadcast costs the same from any address, so it reads each panel of
 * MR rows where it lies, with A's strides (along k: 1 where A is not
 * transposed, lda where it is). Packing had transposed all of X in every
 * dense layer's X·Wᵀ (784-128-10's X·W1ᵀ: 148 -> 136 µs on one thread),
 * and at two threads the threads packed A together and then read each
 * other's halves (X·W1ᵀ 99 -> 72 µs; dH2ᵀ·H1 at 784-512-512-10 349 ->
 * 303 µs). Only a last panel of fewer than MR rows is packed, with zeros,
 * so the kernel never reads past A. The products, and so the bits, are
 * the ones packed panels gave. */
static void GEMM_(packed_range)(const GEMM_(packed_args) *g, int i0, int i1,
                                int j0, int j1, GEMM_T *buf)
{
    const int mr = g->mr, nr = g->nr;
    const int mcb = (int)(PACK_BYTES_A / sizeof(GEMM_T) / PACK_KC) / mr * mr;
    const int ncb = (int)(PACK_BYTES_B / sizeof(GEMM_T) / PACK_KC) / nr * nr;
    GEMM_T *bpack = buf;
    GEMM_T *ashort = buf + PACK_BYTES_B / sizeof(GEMM_T);
    const int kcb = GEMM_(k_block)(g->k);
    /* A's element (i, p) at a[i * ars + p * aps] */
    const int ars = g->ta ? 1 : g->lda, aps = g->ta ? g->lda : 1;
    for (int jc = j0; jc < j1; jc += ncb) {
        int nc = j1 - jc < ncb ? j1 - jc : ncb;
        for (int pc = 0; pc < g->k; pc += kcb) {
            int kc = g->k - pc < kcb ? g->k - pc : kcb;
            GEMM_T be = pc == 0 ? g->beta : 1;
            GEMM_(pack_b)(g, pc, kc, jc, nc, bpack);
            for (int ic = i0; ic < i1; ic += mcb) {
                int mc = i1 - ic < mcb ? i1 - ic : mcb;
                int mfull = mc / mr * mr;   /* rows of whole panels */
                if (mfull < mc)
                    GEMM_(pack_a_short)(g, ic + mfull, mc - mfull, pc, kc, ashort);
                for (int jr = 0; jr < nc; jr += nr) {
                    int cols = nc - jr < nr ? nc - jr : nr;
                    const GEMM_T *bp = bpack + (size_t)jr * kc;
                    for (int ir = 0; ir < mc; ir += mr) {
                        int rows = mc - ir < mr ? mc - ir : mr;
                        const GEMM_T *ap = ashort;
                        int rs = 1, ps = mr;
                        if (ir < mfull) {
                            ap = g->a + (size_t)(ic + ir) * ars + (size_t)pc * aps;
                            rs = ars;
                            ps = aps;
                        }
                        GEMM_T *cp = g->c + (size_t)(ic + ir) * g->ldc + jc + jr;
                        if (rows == mr && cols == nr) {
                            g->kern(kc, ap, rs, ps, bp, cp, g->ldc, g->alpha, be);
                            continue;
                        }
                        /* An edge tile: the kernel works on a full-size
                         * copy, so its elements get the same operations
                         * as everyone else's. */
                        GEMM_T tile[PACK_TILE];
                        memset(tile, 0, sizeof tile);
                        if (be != 0)
                            for (int i = 0; i < rows; i++)
                                memcpy(tile + (size_t)i * nr,
                                       cp + (size_t)i * g->ldc,
                                       (size_t)cols * sizeof *cp);
                        g->kern(kc, ap, rs, ps, bp, tile, nr, g->alpha, be);
                        for (int i = 0; i < rows; i++)
                            memcpy(cp + (size_t)i * g->ldc,
                                   tile + (size_t)i * nr,
                                   (size_t)cols * sizeof *cp);
                    }
                }
            }
        }
    }
}

/* One piece of a (possibly threaded) product: a range of rows or of
 * columns, in whole tiles. */
typedef struct {
    const GEMM_(packed_args) *g;
    int split_n;      /* 1: pieces are column ranges, 0: row ranges */
    int tiles, parts;
} GEMM_(packed_job);

static void GEMM_(packed_part)(void *vjob, int part)
{
    const GEMM_(packed_job) *job = vjob;
    const GEMM_(packed_args) *g = job->g;
    int unit = job->split_n ? g->nr : g->mr;
    int extent = job->split_n ? g->n : g->m;
    int t0 = (int)((long long)job->tiles * part / job->parts);
    int t1 = (int)((long long)job->tiles * (part + 1) / job->parts);
    int lo = t0 * unit, hi = t1 * unit < extent ? t1 * unit : extent;
    if (lo >= hi)
        return;
    int i0 = 0, i1 = g->m, j0 = 0, j1 = g->n;
    if (job->split_n) {
        j0 = lo;
        j1 = hi;
    } else {
        i0 = lo;
        i1 = hi;
    }
    GEMM_T *buf = bp_thread_scratch(PACK_SCRATCH);
    if (buf) {
        GEMM_(packed_range)(g, i0, i1, j0, j1, buf);
        return;
    }
    /* No scratch memory: the unpacked paths, on this piece. */
    const GEMM_T *a = g->a + (g->ta ? (size_t)i0 : (size_t)i0 * g->lda);
    const GEMM_T *b = g->b + (g->tb ? (size_t)j0 * g->ldb : (size_t)j0);
    g->small(g->ta, g->tb, i1 - i0, j1 - j0, g->k, g->alpha, a, g->lda, b,
             g->ldb, g->beta, g->c + (size_t)i0 * g->ldc + j0, g->ldc);
}

static void GEMM_(packed)(const GEMM_(packed_args) *g)
{
    GEMM_(packed_job) job;
    job.g = g;
    int tiles_m = (g->m + g->mr - 1) / g->mr;
    int tiles_n = (g->n + g->nr - 1) / g->nr;
    int threads = (double)g->m * g->n * g->k >= GEMM_PAR_MIN
                      ? bp_get_num_threads() : 1;
    /* Split the dimension whose other operand is the smaller, as every
     * thread goes through all of that one (reads all of A, or packs all of
     * B), if it has a tile per thread. */
    job.split_n = (g->m <= g->n && tiles_n >= threads) || tiles_m < threads;
    job.tiles = job.split_n ? tiles_n : tiles_m;
    job.parts = threads < job.tiles ? threads : job.tiles;
    if (job.parts <= 1) {
        job.parts = 1;
        GEMM_(packed_part)(&job, 0);
        return;
    }
    bp_parallel_run(job.parts, GEMM_(packed_part), &job);
}
