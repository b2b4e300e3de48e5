/* pool_stress.c — the thread pool under ThreadSanitizer (test_tsan.c
 * builds it and the runtime with -fsanitize=thread): threaded products
 * from two application threads at once and from one, at 2 to 4 threads,
 * each compared with one thread's bits. Prints "mismatches N". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"

enum { M = 96, N = 200, K = 300, ROUNDS = 40 };
static float a[M * K], b[K * N], ref[M * N];

static void *caller(void *arg)
{
    float *c = malloc(sizeof(float) * M * N);
    int bad = 0;
    for (int it = 0; c && it < ROUNDS; it++) {
        bp_gemm_f(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        bad += memcmp(c, ref, sizeof ref) != 0;
    }
    *(int *)arg = c ? bad : 1;
    free(c);
    return NULL;
}

int main(void)
{
    for (int i = 0; i < M * K; i++)
        a[i] = (float)(i % 17) * 0.25f - 2;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)(i % 13) * 0.5f - 3;
    bp_set_num_threads(1);
    bp_gemm_f(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, ref, N);
    int bad = 0;
    for (int t = 2; t <= 4; t++) {
        bp_set_num_threads(t);
        int mine = 0, other = 0;
        pthread_t th;
        if (pthread_create(&th, NULL, caller, &other) != 0)
            return 2;
        caller(&mine);
        pthread_join(th, NULL);
        caller(&mine);          /* the pool to itself */
        bad += mine + other;
    }
    bp_threads_shutdown();
    printf("mismatches %d\n", bad);
    return bad != 0;
}
