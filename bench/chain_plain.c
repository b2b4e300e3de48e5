/* chain_plain.c — the scalar chain written as one plain C loop, the
 * yardstick for bpgen's generated chain (workloads.c). run.sh compiles
 * this file with -O3 -march=native -fno-math-errno. */
#include <math.h>

#include "workloads.h"

double chain_plain(const double *L, double *dL, long n)
{
    const double inv_n = 1.0 / (double)n;
    double sum = 0.0;
    for (long i = 0; i < n; i++) {
        double p = sqrt(L[i] * L[i] + 2.0);
        sum += p;
        dL[i] = L[i] / p * inv_n;
    }
    return sum * inv_n;
}
