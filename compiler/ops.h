/* ops.h — the one table of graph operations.
 *
 * Every operation of the expression graph is described here once. The
 * columns are:
 *   OP     the enum suffix (OP_ADD, ...)
 *   NAME   the spelling in dumps and in --derivatives output
 *   ARITY  number of graph inputs
 *   KIND   how the operation maps over elements (see OpKind in bpgen.h)
 *
 * The derivative of each operation lives in diff.c, in one case per
 * operation with its formula in a comment; its C spelling lives in emit.c.
 * Adding an operation means: a row here, a shape rule in graph.c, a case in
 * diff.c, a case in emit.c and a case in print.c.
 *
 * The graph keeps a small canonical algebra: a - b is ADD(a, MUL(-1, b)),
 * a / b is MUL(a, POW(b, -1)), -a is MUL(-1, a), sqrt(a) is POW(a, 0.5),
 * mean, dot, mse, cross_entropy and friends are spelled with SUM, MUL, LOG
 * and LOG_SOFTMAX. Printers and the emitter turn these back into readable
 * forms.
 */
#ifndef BPGEN_OPS_H
#define BPGEN_OPS_H

#define BP_OPS(X)                                                          \
    /* leaves */                                                           \
    X(CONST,       "const",       0, OPK_LEAF)   /* value, any shape */     \
    X(INPUT,       "input",       0, OPK_LEAF)   /* per-sample data */      \
    X(PARAM,       "param",       0, OPK_LEAF)   /* slice of theta */       \
    /* elementwise, scalar operands broadcast */                           \
    X(ADD,         "+",           2, OPK_ELEMENTWISE)                      \
    X(MUL,         "*",           2, OPK_ELEMENTWISE)                      \
    X(POW,         "^",           2, OPK_ELEMENTWISE) /* exponent scalar */ \
    X(MAX,         "max",         2, OPK_ELEMENTWISE)                      \
    X(MIN,         "min",         2, OPK_ELEMENTWISE)                      \
    X(EXP,         "exp",         1, OPK_ELEMENTWISE)                      \
    X(LOG,         "log",         1, OPK_ELEMENTWISE)                      \
    X(ABS,         "abs",         1, OPK_ELEMENTWISE)                      \
    X(SIN,         "sin",         1, OPK_ELEMENTWISE)                      \
    X(COS,         "cos",         1, OPK_ELEMENTWISE)                      \
    X(TANH,        "tanh",        1, OPK_ELEMENTWISE)                      \
    X(SIGMOID,     "sigmoid",     1, OPK_ELEMENTWISE)                      \
    X(RELU,        "relu",        1, OPK_ELEMENTWISE)                      \
    X(SOFTPLUS,    "softplus",    1, OPK_ELEMENTWISE)                      \
    X(STEP,        "step",        1, OPK_ELEMENTWISE)                      \
    X(SIGN,        "sign",        1, OPK_ELEMENTWISE)                      \
    /* a scalar repeated to node->shape (adjoint of sum, of a broadcast) */ \
    X(BROADCAST,   "broadcast",   1, OPK_ELEMENTWISE)                      \
    /* linear algebra, per sample */                                       \
    X(MATMUL,      "·",           2, OPK_LINALG)                           \
    X(TRANSPOSE,   "transpose",   1, OPK_LINALG)                           \
    X(OUTER,       "outer",       2, OPK_LINALG)                           \
    /* reductions of one sample to a scalar */                             \
    X(SUM,         "sum",         1, OPK_REDUCE)                           \
    X(LOGSUMEXP,   "logsumexp",   1, OPK_REDUCE)                           \
    /* vector to vector, per sample */                                     \
    X(SOFTMAX,     "softmax",     1, OPK_VECTOR)                           \
    X(LOG_SOFTMAX, "log_softmax", 1, OPK_VECTOR)                           \
    /* mean over the batch: a per-sample value to a shared one */          \
    X(BATCH_MEAN,  "batch_mean",  1, OPK_BATCH)

#endif
