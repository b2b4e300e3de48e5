/* optim_kernels.h — the loops of optim.c, as a template included once per
 * instruction set and precision of theta, with defined:
 *   OK_(x)     the name with its suffixes
 *   OK_ATTR    a target attribute, or empty
 *   OK_REAL    float or double (theta and grad)
 *   OK_W       doubles per vector (1: scalar C)
 *   VD         the vector type of OK_W doubles
 *   V_LOADR(p), V_STORER(p, v)   OK_W reals <-> a vector of doubles
 *   V_LOADD(p), V_STORED(p, v)   OK_W doubles of the state
 *   V_SET1(x), V_ADD, V_SUB, V_MUL, V_DIV, V_SQRT, V_SUM(v)
 *   OK_TAIL(x) the scalar instantiation's name, for the last < OK_W
 *              entries (not defined in the scalar instantiation itself)
 * Each kind has its own loop, free of branches. Every element gets the
 * same double operations in the same order as the scalar rule (no fused
 * multiply-add), so vector and scalar paths give the same bits, except
 * the gradient norm, whose sum runs in OK_W partial sums. */

/* Sum of squares of grad[lo, hi), in double. */
OK_ATTR static double OK_(sumsq)(const OK_REAL *restrict g, size_t lo,
                                 size_t hi)
{
    size_t i = lo;
    double t = 0;
#if OK_W > 1
    VD acc = V_SET1(0.0);
    for (; i + OK_W <= hi; i += OK_W) {
        VD x = V_LOADR(g + i);
        acc = V_ADD(acc, V_MUL(x, x));
    }
    t = V_SUM(acc);
#endif
    for (; i < hi; i++)
        t += (double)g[i] * (double)g[i];
    return t;
}

/* grad[lo, hi) *= scale. */
OK_ATTR static void OK_(scale)(OK_REAL *restrict g, size_t lo, size_t hi,
                               double scale)
{
    size_t i = lo;
#if OK_W > 1
    VD s = V_SET1(scale);
    for (; i + OK_W <= hi; i += OK_W)
        V_STORER(g + i, V_MUL(V_LOADR(g + i), s));
#endif
    for (; i < hi; i++)
        g[i] = (OK_REAL)((double)g[i] * scale);
}

/* The loop over [lo, hi) for one kind: BODY reads t (theta) and g
 * (grad), may use the state through S1/S2 loads and stores, and leaves
 * the new theta in t. */
#define OK_LOOP(BODY)                                                      \
    for (; i + OK_W <= hi; i += OK_W) {                                    \
        VD t = V_LOADR(th + i), g = V_LOADR(gr + i);                       \
        BODY                                                               \
        V_STORER(th + i, t);                                               \
    }

OK_ATTR static void OK_(update)(const optim_coef *u, size_t lo, size_t hi,
                                OK_REAL *restrict th,
                                const OK_REAL *restrict gr,
                                double *restrict s1, double *restrict s2)
{
    size_t i = lo;
    const VD lr = V_SET1(u->lr), wd = V_SET1(u->wd), mu = V_SET1(u->mu),
             rho = V_SET1(u->rho), rho1 = V_SET1(1 - u->rho),
             b1 = V_SET1(u->b1), b11 = V_SET1(1 - u->b1),
             b2 = V_SET1(u->b2), b21 = V_SET1(1 - u->b2),
             eps = V_SET1(u->eps), bc1 = V_SET1(u->bc1),
             bc2 = V_SET1(u->bc2), decay = V_SET1(1 - u->lr * u->wd);
    (void)s1;
    (void)s2;
    switch (u->kind) {
    case BP_SGD:
        OK_LOOP(g = V_ADD(g, V_MUL(wd, t));
                t = V_SUB(t, V_MUL(lr, g));)
        break;
    case BP_MOMENTUM:
        OK_LOOP(g = V_ADD(g, V_MUL(wd, t));
                VD v = V_ADD(V_MUL(mu, V_LOADD(s1 + i)), g);
                V_STORED(s1 + i, v);
                t = V_SUB(t, V_MUL(lr, v));)
        break;
    case BP_NESTEROV:
        OK_LOOP(g = V_ADD(g, V_MUL(wd, t));
                VD v = V_ADD(V_MUL(mu, V_LOADD(s1 + i)), g);
                V_STORED(s1 + i, v);
                t = V_SUB(t, V_MUL(lr, V_ADD(g, V_MUL(mu, v))));)
        break;
    case BP_RMSPROP:
        OK_LOOP(g = V_ADD(g, V_MUL(wd, t));
                VD s = V_ADD(V_MUL(rho, V_LOADD(s1 + i)),
                             V_MUL(V_MUL(rho1, g), g));
                V_STORED(s1 + i, s);
                t = V_SUB(t, V_DIV(V_MUL(lr, g), V_ADD(V_SQRT(s), eps)));)
        break;
    case BP_ADAM:
        OK_LOOP(g = V_ADD(g, V_MUL(wd, t));
                VD m = V_ADD(V_MUL(b1, V_LOADD(s1 + i)), V_MUL(b11, g));
                VD v = V_ADD(V_MUL(b2, V_LOADD(s2 + i)),
                             V_MUL(V_MUL(b21, g), g));
                V_STORED(s1 + i, m);
                V_STORED(s2 + i, v);
                t = V_SUB(t, V_DIV(V_MUL(lr, V_DIV(m, bc1)),
                                   V_ADD(V_SQRT(V_DIV(v, bc2)), eps)));)
        break;
    case BP_ADAMW:
        OK_LOOP(t = V_MUL(t, decay);
                VD m = V_ADD(V_MUL(b1, V_LOADD(s1 + i)), V_MUL(b11, g));
                VD v = V_ADD(V_MUL(b2, V_LOADD(s2 + i)),
                             V_MUL(V_MUL(b21, g), g));
                V_STORED(s1 + i, m);
                V_STORED(s2 + i, v);
                t = V_SUB(t, V_DIV(V_MUL(lr, V_DIV(m, bc1)),
                                   V_ADD(V_SQRT(V_DIV(v, bc2)), eps)));)
        break;
    }
#ifdef OK_TAIL
    if (i < hi)
        OK_TAIL(update)(u, i, hi, th, gr, s1, s2);
#endif
}

#undef OK_LOOP
