/* ops.h — the names of the graph operations, in the order of ops.c's table.
 *
 * Everything else about an operation (its .net name, operand count,
 * attributes, flags, shape rule, constant folding, derivative and C
 * spelling) is one row of op_info in ops.c; the .net functions built from
 * them are the rows of func_info there. docs/internals.md lists the places
 * a new operation touches.
 *
 * The graph keeps a small canonical algebra: a - b is ADD(a, MUL(-1, b)),
 * a / b is MUL(a, POW(b, -1)), -a is MUL(-1, a), sqrt(a) is POW(a, 0.5),
 * mean, dot, mse, cross_entropy, layernorm and friends are spelled with
 * SUM, MUL, POW, LOG and LOG_SOFTMAX, flatten is RESHAPE. Printers and the
 * emitter turn these back into readable forms.
 */
#ifndef BPGEN_OPS_H
#define BPGEN_OPS_H

#define BP_OPS(X)                                                          \
    /* leaves */                                                           \
    X(CONST) X(INPUT) X(PARAM)                                             \
    /* elementwise */                                                      \
    X(ADD) X(MUL) X(POW) X(MAX) X(MIN) X(EXP) X(LOG) X(ABS) X(SIN) X(COS)  \
    X(TANH) X(SIGMOID) X(RELU) X(SOFTPLUS) X(STEP) X(SIGN) X(BROADCAST)    \
    X(RESHAPE)                                                             \
    /* linear algebra */                                                   \
    X(MATMUL) X(TRANSPOSE) X(OUTER)                                        \
    /* reductions, per sample */                                           \
    X(SUM) X(LOGSUMEXP)                                                    \
    X(SOFTMAX) X(LOG_SOFTMAX)                                              \
    /* runtime kernels */                                                  \
    X(CONV2D) X(CONV2D_GRAD_INPUT) X(CONV2D_GRAD_KERNEL) X(CONV2D_GRAD_BIAS) \
    X(MAXPOOL2D) X(MAXPOOL2D_GRAD) X(AVGPOOL2D) X(AVGPOOL2D_GRAD)          \
    /* mean over the batch: a per-sample value to a shared one */          \
    X(BATCH_MEAN)

#endif
