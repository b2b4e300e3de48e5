/* threads.c — the runtime's thread pool: a few POSIX threads that the
 * big matrix products (gemm.c) and bp_parallel_for share.
 *
 * Why a pool of our own and not OpenMP: OpenMP needs -fopenmp when the
 * application is linked, and the contract's build line
 * (`cc -O2 -Iruntime OUT.c APP.c build/libbp.a -lm`) has no such flag;
 * glibc 2.34 and later have pthreads in libc itself, so this pool links
 * with that line unchanged. It is also small enough to reason about:
 *
 *   - bp_set_num_threads(n) is a process-wide setting (default 1). The
 *     workers (n - 1 of them: the calling thread does a share too) are
 *     started on the first job that wants them, and joined by
 *     bp_threads_shutdown() or at exit.
 *   - A job is `parts` independent pieces, which the threads take in
 *     turn from a shared counter, the caller too. The pieces never share
 *     a sum, so the result depends neither on T (the threads used) nor
 *     on which thread ran which piece: gemm.c splits the rows or columns
 *     of C, never the k dimension. When the caller has run out of pieces
 *     it closes the job and waits only for the workers that took it: a
 *     worker whose CPU the host has given to someone else no longer holds
 *     the step up (with a piece fixed per thread, 784-128-10 at 2 threads
 *     beside a CPU hog took 1.18x one thread's time; now 1.0x).
 *   - One job at a time: when the pool is busy (another application
 *     thread, or a job started from inside a job) the caller runs every
 *     piece itself. Results are the same either way, so concurrent
 *     callers are safe and never wait for each other.
 * Between jobs a worker first spins for up to SPIN_NS, watching for the
 * next job and yielding the CPU every few turns, and only then sleeps on
 * a condition variable; the caller likewise spins before it sleeps
 * waiting for the workers. A training
 * step is a few dozen products with short single-threaded passes between
 * them, and waking a sleeping thread costs tens of microseconds on a
 * virtual machine (the idle vCPU has halted; measured on the 2-core KVM
 * guest this project is built on), which ate the second thread's gain:
 * 784-512-512-10 at batch 128 ran 1.14x faster on two threads with
 * sleeping workers. The spin needs atomic loads; where the compiler has
 * no GCC-style __atomic builtins it is left out and the pool only sleeps.
 * A child process made by fork() starts with an empty pool
 * (pthread_atfork), which fills again on demand. */
#include "bp.h"
#include "internal.h"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#if defined(_POSIX_THREADS) && _POSIX_THREADS > 0
#define BP_HAVE_PTHREADS 1
#include <pthread.h>
#include <stdlib.h>
#endif

#ifdef BP_HAVE_PTHREADS

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
static int num_threads = 1;          /* the setting */
static int num_workers;              /* started */
static pthread_t workers[BP_MAX_THREADS];
static int pool_busy;                /* a job is running */
static int pool_stopping;
static int exit_hook;                /* atexit, atfork registered */
static long generation;              /* bumped for every job (atomic) */
static bp_part_fn *job_fn;
static void *job_ctx;
static int job_parts, job_threads;
static int job_open;                 /* workers may still take the job */
static long job_claimed;             /* workers that took it (atomic) */
static long job_next;                /* the next piece to run (atomic) */
/* The generation each worker was started at: a worker started for a job
 * must not take that job's bump of `generation` for one already seen. */
static long start_generation[BP_MAX_THREADS];

/* How long a thread spins before it sleeps: longer than the
 * single-threaded passes between a step's products, short enough that an
 * idle pool soon stops using the core. */
#define SPIN_NS 300000L

#if defined(__GNUC__) && defined(__ATOMIC_ACQUIRE)
#define BP_SPIN 1
#include <sched.h>
#include <time.h>

static long load_long(const long *x)
{
    return __atomic_load_n(x, __ATOMIC_ACQUIRE);
}

static void store_long(long *x, long v)
{
    __atomic_store_n(x, v, __ATOMIC_RELEASE);
}

static long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Spins, without the lock, while (*x == value) == equal, for at most
 * SPIN_NS. */
static void spin(const long *x, long value, int equal)
{
    long start = 0;
    for (unsigned i = 1; (load_long(x) == value) == equal; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        /* the thread waited for may be queued on this very CPU: let it
         * run (spinning without this, a step at times took 10x longer) */
        if (i % 32 == 0)
            sched_yield();
        if (i % 256 == 0) {
            long t = monotonic_ns();
            if (start == 0)
                start = t;
            else if (t - start > SPIN_NS)
                return;
        }
    }
}
#else
static long load_long(const long *x)
{
    return *x;
}

static void store_long(long *x, long v)
{
    *x = v;
}
#endif

/* The next piece of the current job, or job_parts and above when none
 * is left. */
static long claim_piece(void)
{
#ifdef BP_SPIN
    return __atomic_fetch_add(&job_next, 1, __ATOMIC_RELAXED);
#else
    pthread_mutex_lock(&pool_lock);
    long p = job_next++;
    pthread_mutex_unlock(&pool_lock);
    return p;
#endif
}

static void run_pieces(bp_part_fn *fn, void *ctx, int parts)
{
    for (long p; (p = claim_piece()) < parts;)
        fn(ctx, (int)p);
}

static void *worker_main(void *arg)
{
    int self = (int)(size_t)arg;     /* 1..num_workers */
    pthread_mutex_lock(&pool_lock);
    long seen = start_generation[self - 1];
    for (;;) {
#ifdef BP_SPIN
        if (!pool_stopping && generation == seen) {
            pthread_mutex_unlock(&pool_lock);
            spin(&generation, seen, 1);
            pthread_mutex_lock(&pool_lock);
        }
#endif
        while (!pool_stopping && generation == seen)
            pthread_cond_wait(&pool_wake, &pool_lock);
        if (pool_stopping)
            break;
        seen = generation;
        if (!job_open || self >= job_threads)
            continue;                /* closed already, or fewer threads */
        store_long(&job_claimed, job_claimed + 1);
        bp_part_fn *fn = job_fn;
        void *ctx = job_ctx;
        int parts = job_parts;
        pthread_mutex_unlock(&pool_lock);
        run_pieces(fn, ctx, parts);
        pthread_mutex_lock(&pool_lock);
        store_long(&job_claimed, job_claimed - 1);
        if (job_claimed == 0)     /* the caller waits for it */
            pthread_cond_broadcast(&pool_done);
    }
    pthread_mutex_unlock(&pool_lock);
    return NULL;
}

static void at_exit_shutdown(void)
{
    bp_threads_shutdown();
}

/* fork(): the child has only the forking thread, so its pool is empty.
 * The lock is held across the fork so the child's copy is consistent. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&pool_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&pool_lock);
}

static void fork_child(void)
{
    num_workers = 0;
    pool_busy = 0;
    pool_stopping = 0;
    job_open = 0;                    /* a job the parent's workers held */
    job_claimed = 0;
    pthread_mutex_unlock(&pool_lock);
}

void bp_set_num_threads(int n)
{
    if (n < 1)
        n = 1;
    if (n > BP_MAX_THREADS)
        n = BP_MAX_THREADS;
    pthread_mutex_lock(&pool_lock);
    num_threads = n;
    pthread_mutex_unlock(&pool_lock);
}

int bp_get_num_threads(void)
{
    pthread_mutex_lock(&pool_lock);
    int n = num_threads;
    pthread_mutex_unlock(&pool_lock);
    return n;
}

void bp_threads_shutdown(void)
{
    pthread_mutex_lock(&pool_lock);
    while (pool_busy)
        pthread_cond_wait(&pool_done, &pool_lock);
    pool_stopping = 1;
    pool_busy = 1;                   /* no job may start meanwhile */
    store_long(&generation, generation + 1);    /* ends the workers' spins */
    int count = num_workers;
    pthread_cond_broadcast(&pool_wake);
    pthread_mutex_unlock(&pool_lock);
    for (int i = 0; i < count; i++)
        pthread_join(workers[i], NULL);
    pthread_mutex_lock(&pool_lock);
    num_workers = 0;
    pool_stopping = 0;
    pool_busy = 0;
    pthread_cond_broadcast(&pool_done);
    pthread_mutex_unlock(&pool_lock);
}

void bp_parallel_run(int parts, bp_part_fn *fn, void *ctx)
{
    if (parts <= 0)
        return;
    int threads = 1;
    if (parts > 1) {
        pthread_mutex_lock(&pool_lock);
        if (!pool_busy && num_threads > 1) {
            int want = num_threads < parts ? num_threads : parts;
            while (num_workers < want - 1) {
                start_generation[num_workers] = generation;
                if (pthread_create(&workers[num_workers], NULL, worker_main,
                                   (void *)(size_t)(num_workers + 1)) != 0)
                    break;           /* fewer threads: same results */
                num_workers++;
            }
            if (!exit_hook && num_workers > 0) {
                exit_hook = 1;
                atexit(at_exit_shutdown);
                pthread_atfork(fork_prepare, fork_parent, fork_child);
            }
            threads = want < num_workers + 1 ? want : num_workers + 1;
        }
        if (threads > 1) {
            pool_busy = 1;
            job_fn = fn;
            job_ctx = ctx;
            job_parts = parts;
            job_threads = threads;
            store_long(&job_next, 0);
            job_open = 1;
            store_long(&generation, generation + 1);
            pthread_cond_broadcast(&pool_wake);
        }
        pthread_mutex_unlock(&pool_lock);
    }
    if (threads == 1) {
        for (int p = 0; p < parts; p++)
            fn(ctx, p);
        return;
    }
    run_pieces(fn, ctx, parts);
    /* Every piece is taken: no worker may take the job from now on, and
     * the ones that did are finishing theirs. */
    pthread_mutex_lock(&pool_lock);
    job_open = 0;
    pthread_mutex_unlock(&pool_lock);
#ifdef BP_SPIN
    spin(&job_claimed, 0, 0);
#endif
    pthread_mutex_lock(&pool_lock);
    while (job_claimed > 0)
        pthread_cond_wait(&pool_done, &pool_lock);
    pool_busy = 0;
    pthread_cond_broadcast(&pool_done);
    pthread_mutex_unlock(&pool_lock);
}

/* Per-thread scratch: one block per thread, behind a key whose destructor
 * frees it when the thread exits. The block's first 64 bytes hold its
 * size and links, so what callers get stays 64-byte aligned. Every live
 * block is also on one list: the main thread's block is never freed by
 * the key (its destructor does not run at exit), and the list keeps it
 * reachable, so leak checkers do not call a block in use a leak. */
typedef struct scratch_head {
    size_t size;
    struct scratch_head *prev, *next;
} scratch_head;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static scratch_head *scratch_list;
static int scratch_ready;

static void scratch_release(void *block)
{
    scratch_head *h = block;
    if (!h)
        return;
    pthread_mutex_lock(&scratch_lock);
    if (h->prev)
        h->prev->next = h->next;
    else
        scratch_list = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&scratch_lock);
    free(h);
}

static void scratch_init(void)
{
    scratch_ready = pthread_key_create(&scratch_key, scratch_release) == 0;
}

void *bp_thread_scratch(size_t bytes)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_ready)
        return NULL;
    scratch_head *block = pthread_getspecific(scratch_key);
    if (block && block->size >= bytes)
        return (char *)block + 64;
    void *fresh = NULL;
    if (posix_memalign(&fresh, 64, bytes + 64) != 0)
        return NULL;
    if (pthread_setspecific(scratch_key, fresh) != 0) {
        free(fresh);
        return NULL;
    }
    scratch_release(block);
    scratch_head *h = fresh;
    h->size = bytes;
    h->prev = NULL;
    pthread_mutex_lock(&scratch_lock);
    h->next = scratch_list;
    if (scratch_list)
        scratch_list->prev = h;
    scratch_list = h;
    pthread_mutex_unlock(&scratch_lock);
    return (char *)fresh + 64;
}

#else /* no POSIX threads: everything runs on the calling thread */

#include <stdlib.h>

void *bp_thread_scratch(size_t bytes)
{
    static char *block;
    static size_t size;
    if (block && size >= bytes)
        return block + 64 - ((size_t)block & 63);
    free(block);
    size = 0;
    block = malloc(bytes + 128);
    if (!block)
        return NULL;
    size = bytes;
    /* align by hand: malloc's alignment may be smaller */
    return block + 64 - ((size_t)block & 63);
}

static int num_threads = 1;

void bp_set_num_threads(int n)
{
    num_threads = n < 1 ? 1 : n > BP_MAX_THREADS ? BP_MAX_THREADS : n;
}

int bp_get_num_threads(void)
{
    return num_threads;
}

void bp_threads_shutdown(void)
{
}

void bp_parallel_run(int parts, bp_part_fn *fn, void *ctx)
{
    for (int p = 0; p < parts; p++)
        fn(ctx, p);
}

#endif

/* ---------------------------------------------------------------- for */

typedef struct {
    size_t count, chunk;
    void (*fn)(void *ctx, size_t lo, size_t hi);
    void *ctx;
} for_job;

static void for_part(void *vjob, int part)
{
    const for_job *j = vjob;
    size_t lo = (size_t)part * j->chunk;
    size_t hi = j->count - lo < j->chunk ? j->count : lo + j->chunk;
    j->fn(j->ctx, lo, hi);
}

void bp_parallel_for(size_t count, size_t grain,
                     void (*fn)(void *ctx, size_t lo, size_t hi), void *ctx)
{
    if (count == 0)
        return;
    if (grain < 1)
        grain = 1;
    int threads = bp_get_num_threads();
    size_t parts = count / grain;
    if (parts > (size_t)threads)
        parts = (size_t)threads;
    if (parts <= 1) {
        fn(ctx, 0, count);
        return;
    }
    for_job j;
    j.count = count;
    j.chunk = (count + parts - 1) / parts;
    j.fn = fn;
    j.ctx = ctx;
    bp_parallel_run((int)((count + j.chunk - 1) / j.chunk), for_part, &j);
}
