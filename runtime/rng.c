/* rng.c — the runtime's random numbers: xoshiro256** seeded through
 * splitmix64, uniform and normal draws, and the fill helpers that generated
 * M_init uses to apply each parameter's INIT.
 *
 * Everything is integer arithmetic on 64-bit words plus IEEE-754 doubles,
 * so a seed gives the same stream on every machine (normal draws also go
 * through log/sqrt/cos, which mainstream libms round identically for these
 * arguments). No hidden state: the generator is the caller's bp_rng. */
#include "bp.h"

#include <math.h>

typedef unsigned long long u64;

static u64 rotl(u64 x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64 spreads one seed over four well-mixed state words. xoshiro
 * must not start from all zeros; that cannot happen, since splitmix64's
 * output is a bijection of a counter, so four consecutive outputs are
 * distinct and at most one is zero. */
static u64 splitmix64(u64 *x)
{
    u64 z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Seeds `r` (caller-owned) from a 64-bit seed. */
void bp_rng_seed(bp_rng *r, unsigned long long seed)
{
    u64 x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x) & 0xFFFFFFFFFFFFFFFFULL;
}

/* xoshiro256** (Blackman & Vigna). The mask keeps the arithmetic 64-bit
 * even where unsigned long long is wider. */
unsigned long long bp_rng_next(bp_rng *r)
{
    const u64 M = 0xFFFFFFFFFFFFFFFFULL;
    u64 *s = r->s;
    u64 result = (rotl((s[1] * 5) & M, 7) * 9) & M;
    u64 t = (s[1] << 17) & M;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45) & M;
    return result;
}

/* A double in [0, 1) from the top 53 bits: every value is a multiple of
 * 2^-53, exactly representable. */
static double unit53(bp_rng *r)
{
    return (double)(bp_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double bp_rng_uniform(bp_rng *r, double lo, double hi)
{
    double v = lo + (hi - lo) * unit53(r);
    /* lo + (hi-lo)*u can round up to hi; keep the interval half-open. */
    if (v >= hi && hi > lo)
        v = nextafter(hi, lo);
    return v;
}

/* Box–Muller, one output per call (the second is discarded), so each draw
 * depends only on the generator state and calls never interact through a
 * cache. u1 is in (0, 1] so log(u1) is finite. */
double bp_rng_normal(bp_rng *r, double mean, double std)
{
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = ((double)(bp_rng_next(r) >> 11) + 1.0)
                * (1.0 / 9007199254740992.0);
    double u2 = unit53(r);
    return mean + std * (sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
}

/* Stores v as element i of a float (real_size 4) or double array. */
static void store(void *dst, int real_size, size_t i, double v)
{
    if (real_size == 4)
        ((float *)dst)[i] = (float)v;
    else
        ((double *)dst)[i] = v;
}

void bp_fill_value(void *dst, int real_size, size_t count, double value)
{
    for (size_t i = 0; i < count; i++)
        store(dst, real_size, i, value);
}

void bp_fill_uniform(bp_rng *r, void *dst, int real_size, size_t count,
                     double lo, double hi)
{
    for (size_t i = 0; i < count; i++) {
        double v = bp_rng_uniform(r, lo, hi);
        if (real_size == 4) {
            float f = (float)v;
            /* Rounding to float can land on hi or just below lo (v is
             * within half a float ulp of f): step one float back inside.
             * When no float lies in [lo, hi) at all, keep the rounded v. */
            if (hi > lo) {
                if ((double)f >= hi)
                    f = nextafterf(f, -INFINITY);
                else if ((double)f < lo)
                    f = nextafterf(f, INFINITY);
                if ((double)f < lo || (double)f >= hi)
                    f = (float)v;
            }
            ((float *)dst)[i] = f;
        } else {
            ((double *)dst)[i] = v;
        }
    }
}

void bp_fill_normal(bp_rng *r, void *dst, int real_size, size_t count,
                    double mean, double std)
{
    for (size_t i = 0; i < count; i++)
        store(dst, real_size, i, bp_rng_normal(r, mean, std));
}
