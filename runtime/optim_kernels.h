/* optim_kernels.h — the loops of optim.c, as a template included once per
 * instruction set and precision, with defined:
 *   OK_(x)     the name with its suffixes
 *   OK_ATTR    a target attribute, or empty
 *   OK_REAL    float or double: theta, grad, the state and the update's
 *              arithmetic
 *   OK_W       reals per vector (1: scalar C), VR its vector type
 *   R_LOAD(p), R_STORE(p, v), R_SET1(x), R_ADD, R_SUB, R_MUL, R_DIV,
 *   R_SQRT     on vectors of OK_W reals
 *   OK_DW      reals per vector of doubles (the norm), VD its type
 *   D_LOADR(p), D_STORER(p, v)   OK_DW reals <-> a vector of doubles
 *   D_SET1(x), D_ADD, D_MUL, D_SUM(v)
 *   R_SQACC(a, g)  a (VD) plus the squares of the OK_W reals g, in double
 *   OK_TAIL(x) the scalar instantiation's name, for the last < OK_W
 *              entries (not defined in the scalar instantiation itself)
 * Each kind has its own loop, free of branches. Every element gets the
 * same operations of OK_REAL in the same order as the scalar rule (no
 * fused multiply-add), so vector and scalar paths give the same bits,
 * except the gradient norm, whose sum runs in OK_DW partial sums. */

/* Sum of squares of g[0, n), in double. */
OK_ATTR static double OK_(sumsq)(const OK_REAL *restrict g, size_t n)
{
    size_t i = 0;
    double t = 0;
#if OK_DW > 1
    VD acc = D_SET1(0.0);
    for (; i + OK_DW <= n; i += OK_DW) {
        VD x = D_LOADR(g + i);
        acc = D_ADD(acc, D_MUL(x, x));
    }
    t = D_SUM(acc);
#endif
    for (; i < n; i++)
        t += (double)g[i] * (double)g[i];
    return t;
}

/* g[0, n) *= scale, in double, rounded once. */
OK_ATTR static void OK_(scale)(OK_REAL *restrict g, size_t n, double scale)
{
    size_t i = 0;
#if OK_DW > 1
    VD s = D_SET1(scale);
    for (; i + OK_DW <= n; i += OK_DW)
        D_STORER(g + i, D_MUL(D_LOADR(g + i), s));
#endif
    for (; i < n; i++)
        g[i] = (OK_REAL)((double)g[i] * scale);
}

/* The loop over [0, n) for one kind: BODY reads t (theta) and g (grad),
 * may use the state through S1/S2 loads and stores, and leaves the new
 * theta in t. The squares of g as read go into sq on the way (the
 * division and square root leave the other units idle), so a step
 * without clipping needs no pass of its own for the norm. */
#define OK_LOOP(BODY)                                                      \
    for (; i + OK_W <= n; i += OK_W) {                                     \
        VR t = R_LOAD(th + i), g = R_LOAD(gr + i);                         \
        sq = R_SQACC(sq, g);                                               \
        BODY                                                               \
        R_STORE(th + i, t);                                                \
    }

/* Returns the sum of the squares of gr[0, n) as read (before weight
 * decay). The coefficients are u's doubles (and 1 - rho, 1 - beta, 1 - lr wd
 * taken in double) rounded once to OK_REAL, so the float rule is the
 * double rule with every operation in float. Adam's last line is
 * PyTorch's: theta -= step_size * (m / (sqrt(v) / sqrt(bc2) + eps)),
 * with the division by sqrt(bc2) a multiplication by its inverse. */
OK_ATTR static double OK_(update)(const optim_coef *u, size_t n,
                                OK_REAL *restrict th,
                                const OK_REAL *restrict gr,
                                OK_REAL *restrict s1, OK_REAL *restrict s2)
{
    size_t i = 0;
    VD sq = D_SET1(0.0);
    const VR lr = R_SET1((OK_REAL)u->lr), wd = R_SET1((OK_REAL)u->wd),
             mu = R_SET1((OK_REAL)u->mu), rho = R_SET1((OK_REAL)u->rho),
             rho1 = R_SET1((OK_REAL)(1 - u->rho)),
             b1 = R_SET1((OK_REAL)u->b1), b11 = R_SET1((OK_REAL)(1 - u->b1)),
             b2 = R_SET1((OK_REAL)u->b2), b21 = R_SET1((OK_REAL)(1 - u->b2)),
             eps = R_SET1((OK_REAL)u->eps),
             step = R_SET1((OK_REAL)u->step_size),
             rbc2 = R_SET1((OK_REAL)u->rsqrt_bc2),
             decay = R_SET1((OK_REAL)(1 - u->lr * u->wd));
    (void)s1;
    (void)s2;
    switch (u->kind) {
    case BP_SGD:
        OK_LOOP(g = R_ADD(g, R_MUL(wd, t));
                t = R_SUB(t, R_MUL(lr, g));)
        break;
    case BP_MOMENTUM:
        OK_LOOP(g = R_ADD(g, R_MUL(wd, t));
                VR v = R_ADD(R_MUL(mu, R_LOAD(s1 + i)), g);
                R_STORE(s1 + i, v);
                t = R_SUB(t, R_MUL(lr, v));)
        break;
    case BP_NESTEROV:
        OK_LOOP(g = R_ADD(g, R_MUL(wd, t));
                VR v = R_ADD(R_MUL(mu, R_LOAD(s1 + i)), g);
                R_STORE(s1 + i, v);
                t = R_SUB(t, R_MUL(lr, R_ADD(g, R_MUL(mu, v))));)
        break;
    case BP_RMSPROP:
        OK_LOOP(g = R_ADD(g, R_MUL(wd, t));
                VR s = R_ADD(R_MUL(rho, R_LOAD(s1 + i)),
                             R_MUL(R_MUL(rho1, g), g));
                R_STORE(s1 + i, s);
                t = R_SUB(t, R_DIV(R_MUL(lr, g), R_ADD(R_SQRT(s), eps)));)
        break;
    case BP_ADAM:
        OK_LOOP(g = R_ADD(g, R_MUL(wd, t));
                VR m = R_ADD(R_MUL(b1, R_LOAD(s1 + i)), R_MUL(b11, g));
                VR v = R_ADD(R_MUL(b2, R_LOAD(s2 + i)),
                             R_MUL(R_MUL(b21, g), g));
                R_STORE(s1 + i, m);
                R_STORE(s2 + i, v);
                t = R_SUB(t, R_MUL(step, R_DIV(m, R_ADD(R_MUL(R_SQRT(v),
                                                                rbc2),
                                                         eps))));)
        break;
    case BP_ADAMW:
        OK_LOOP(t = R_MUL(t, decay);
                VR m = R_ADD(R_MUL(b1, R_LOAD(s1 + i)), R_MUL(b11, g));
                VR v = R_ADD(R_MUL(b2, R_LOAD(s2 + i)),
                             R_MUL(R_MUL(b21, g), g));
                R_STORE(s1 + i, m);
                R_STORE(s2 + i, v);
                t = R_SUB(t, R_MUL(step, R_DIV(m, R_ADD(R_MUL(R_SQRT(v),
                                                                rbc2),
                                                         eps))));)
        break;
    }
    double sum = D_SUM(sq);
#ifdef OK_TAIL
    if (i < n)
        sum += OK_TAIL(update)(u, n - i, th + i, gr + i, s1 ? s1 + i : s1,
                               s2 ? s2 + i : s2);
#endif
    return sum;
}

#undef OK_LOOP
