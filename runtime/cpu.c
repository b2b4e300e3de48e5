/* cpu.c — which instruction set the kernels (gemm.c, fastmath.c) use.
 * Detected once with the compiler's CPU-feature builtins, which also check
 * that the operating system saves the wide registers; tests may force a
 * narrower set to exercise every path on one machine. */
#include "bp.h"
#include "internal.h"

#ifdef BP_X86_KERNELS

static int detected = -1;   /* accessed with __atomic builtins */
static int forced = -1;

static int detect(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return BP_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return BP_ISA_AVX2;
    return BP_ISA_PORTABLE;
}

static int best(void)
{
    int d = __atomic_load_n(&detected, __ATOMIC_RELAXED);
    if (d < 0) {
        d = detect();
        __atomic_store_n(&detected, d, __ATOMIC_RELAXED);
    }
    return d;
}

int bp_isa(void)
{
    int f = __atomic_load_n(&forced, __ATOMIC_RELAXED);
    return f >= 0 ? f : best();
}

int bp_isa_force(int isa)
{
    if (isa >= BP_ISA_COUNT || isa > best())
        return -1;
    __atomic_store_n(&forced, isa < 0 ? -1 : isa, __ATOMIC_RELAXED);
    return 0;
}

#else

int bp_isa(void)
{
    return BP_ISA_PORTABLE;
}

int bp_isa_force(int isa)
{
    return isa <= BP_ISA_PORTABLE ? 0 : -1;
}

#endif

const char *bp_kernels(void)
{
    static const char *const names[BP_ISA_COUNT] = {"portable", "avx2", "avx512"};
    return names[bp_isa()];
}
