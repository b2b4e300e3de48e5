/* driver.c — the main() that --main adds: parameters, n and n samples
 * on stdin; loss, gradients and outputs on stdout (CONTRACT section 5).
 */
#include "emit.h"

/* ---------------------------------------------------------------- --main */

void emit_main(Emit *e, FILE *out)
{
    Model *m = e->m;
    const char *M = e->M, *r = e->real;
    int nin = m->ninputs ? m->ninputs : 1, nout = m->noutputs ? m->noutputs : 1;
    const char *pf = e->dbl ? "%.17g" : "%.9g";
    fputs("\n/* ---- --main: parameters, n and n samples on stdin; loss, gradients and\n"
          " * outputs on stdout (CONTRACT section 5). Exit status 2 on bad input. ---- */\n\n", out);
    fprintf(out,
        "/* Reads the next whitespace-separated number into *v: 1 when one was read,\n"
        " * 0 at the end of the input, -1 when the next word is not a number. */\n"
        "static int %s_main_read(double *v, char *word, size_t cap)\n{\n"
        "    int c;\n"
        "    size_t len = 0;\n"
        "    do\n"
        "        c = getchar();\n"
        "    while (c == ' ' || c == '\\t' || c == '\\n' || c == '\\r' || c == '\\v' || c == '\\f');\n"
        "    if (c == EOF)\n"
        "        return 0;\n"
        "    while (c != EOF && c != ' ' && c != '\\t' && c != '\\n' && c != '\\r' && c != '\\v' &&\n"
        "           c != '\\f') {\n"
        "        if (len + 1 < cap)\n"
        "            word[len] = (char)c;\n"
        "        len++;\n"
        "        c = getchar();\n"
        "    }\n"
        "    if (len + 1 > cap) {\n"
        "        word[cap - 1] = '\\0';\n"
        "        return -1;\n"
        "    }\n"
        "    word[len] = '\\0';\n"
        "    char *end = NULL;\n"
        "    errno = 0;\n"
        "    *v = strtod(word, &end);\n"
        "    if (errno == ERANGE && (*v == HUGE_VAL || *v == -HUGE_VAL))\n"
        "        return -1; /* too large for a double */\n"
        "    return end == word + len ? 1 : -1;\n"
        "}\n\n", M);
    fprintf(out,
        "/* Reads count values into dst; `what` names them in messages. */\n"
        "static int %s_main_values(%s *dst, size_t count, const char *what)\n{\n"
        "    char word[512];\n"
        "    for (size_t i = 0; i < count; i++) {\n"
        "        double v = 0;\n"
        "        int got = %s_main_read(&v, word, sizeof word);\n"
        "        if (got == 0) {\n"
        "            fprintf(stderr, \"%s: error: input ends early: %%zu of %%zu values of %%s read\\n\",\n"
        "                    i, count, what);\n"
        "            return -1;\n"
        "        }\n"
        "        if (got < 0) {\n"
        "            fprintf(stderr, \"%s: error: '%%s' is not a number (in %%s)\\n\", word, what);\n"
        "            return -1;\n"
        "        }\n"
        "        dst[i] = (%s)v;\n"
        "    }\n"
        "    return 0;\n"
        "}\n\n", M, r, M, M, M, r);
    fprintf(out,
        "static void %s_main_print(const char *tag, const char *name, const %s *v, size_t count)\n{\n"
        "    printf(\"%%s %%s\", tag, name);\n"
        "    for (size_t i = 0; i < count; i++)\n"
        "        printf(\" %s\", (double)v[i]);\n"
        "    putchar('\\n');\n"
        "}\n\n", M, r, pf);

    fputs("int main(void)\n{\n", out);
    fputs("    int status = 2;\n", out);
    fprintf(out, "    const bp_model *const model = &%s_model;\n", M);
    fprintf(out, "    %s *theta = malloc(sizeof(%s) * (%s_NUM_PARAMS + 1));\n", r, r, M);
    fprintf(out, "    %s *grad = malloc(sizeof(%s) * (%s_NUM_PARAMS + 1));\n", r, r, M);
    fprintf(out, "    %s *data[%d] = {NULL};\n", r, nin);
    fprintf(out, "    const %s *in[%d] = {NULL};\n", r, nin);
    fprintf(out, "    %s *gi[%d] = {NULL};\n", r, nin);
    fprintf(out, "    %s *out[%d] = {NULL};\n", r, nout);
    fputs("    void *ws = NULL;\n", out);
    fputs("    char word[512];\n    double v = 0;\n    int n = 0;\n", out);
    fputs("    if (!theta || !grad)\n        goto out_of_memory;\n", out);
    fputs("    for (int p = 0; p < model->num_param_tensors; p++)\n"
          "        if (", out);
    fprintf(out, "%s_main_values(theta + model->params[p].offset, model->params[p].size,\n"
                 "                           model->params[p].name) != 0)\n"
                 "            goto done;\n", M);
    fprintf(out,
        "    int got = %s_main_read(&v, word, sizeof word);\n"
        "    if (got <= 0 || !(v >= 1 && v <= 1e9) || v != (double)(int)v) {\n"
        "        fprintf(stderr, \"%s: error: expected the batch size n (an integer >= 1) after the %%lu parameter values, found %%s\\n\",\n"
        "                (unsigned long)%s_NUM_PARAMS, got == 0 ? \"the end of the input\" : word);\n"
        "        goto done;\n"
        "    }\n"
        "    n = (int)v;\n", M, M, M);
    fputs("    for (int k = 0; k < model->num_inputs; k++) {\n"
          "        size_t count = model->inputs[k].size * (size_t)n;\n", out);
    fprintf(out, "        data[k] = malloc(sizeof(%s) * count);\n", r);
    fputs("        in[k] = data[k];\n"
          "        if (!data[k])\n            goto out_of_memory;\n"
          "        if (model->inputs[k].wrt) {\n", out);
    fprintf(out, "            gi[k] = malloc(sizeof(%s) * count);\n", r);
    fputs("            if (!gi[k])\n                goto out_of_memory;\n        }\n    }\n", out);
    fputs("    for (int k = 0; k < model->num_outputs; k++) {\n", out);
    fprintf(out, "        out[k] = malloc(sizeof(%s) * model->outputs[k].size * (size_t)n);\n", r);
    fputs("        if (!out[k])\n            goto out_of_memory;\n    }\n", out);
    fputs("    for (int s = 0; s < n; s++)\n"
          "        for (int k = 0; k < model->num_inputs; k++) {\n"
          "            size_t size = model->inputs[k].size;\n"
          "            char what[256];\n"
          "            snprintf(what, sizeof what, \"input %s of sample %d\", model->inputs[k].name, s + 1);\n", out);
    fprintf(out, "            if (%s_main_values(data[k] + (size_t)s * size, size, what) != 0)\n"
                 "                goto done;\n        }\n", M);
    fprintf(out,
        "    got = %s_main_read(&v, word, sizeof word);\n"
        "    if (got != 0) {\n"
        "        fprintf(stderr, \"%s: error: unexpected '%%s' after the last sample\\n\", word);\n"
        "        goto done;\n"
        "    }\n", M, M);
    fprintf(out, "    ws = malloc(%s_workspace_size(n) + 1);\n", M);
    fputs("    if (!ws)\n        goto out_of_memory;\n", out);
    fprintf(out, "    %s loss = %s_forward(theta, in, n, ws);\n", r, M);
    fprintf(out, "    %s_backward(theta, in, n, ws, grad, gi);\n", M);
    if (e->found)
        main_report_nonfinite(e, out);
    fprintf(out, "    printf(\"loss %s\\n\", (double)loss);\n", pf);
    fputs("    for (int p = 0; p < model->num_param_tensors; p++)\n", out);
    fprintf(out, "        %s_main_print(\"grad\", model->params[p].name, grad + model->params[p].offset,\n"
                 "                      model->params[p].size);\n", M);
    fputs("    for (int k = 0; k < model->num_inputs; k++)\n"
          "        if (model->inputs[k].wrt)\n", out);
    fprintf(out, "            %s_main_print(\"grad\", model->inputs[k].name, gi[k],\n"
                 "                          model->inputs[k].size * (size_t)n);\n", M);
    fprintf(out, "    %s_predict(theta, in, n, ws, out);\n", M);
    if (e->found)
        main_report_nonfinite(e, out);
    fputs("    for (int k = 0; k < model->num_outputs; k++)\n", out);
    fprintf(out, "        %s_main_print(\"output\", model->outputs[k].name, out[k],\n"
                 "                      model->outputs[k].size * (size_t)n);\n", M);
    fputs("    status = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 2;\n", out);
    fputs("    goto done;\nout_of_memory:\n", out);
    fprintf(out, "    fprintf(stderr, \"%s: error: out of memory\\n\");\n", M);
    fputs("done:\n", out);
    fprintf(out, "    for (int k = 0; k < %d; k++) {\n"
                 "        free(data[k]);\n        free(gi[k]);\n    }\n"
                 "    for (int k = 0; k < %d; k++)\n        free(out[k]);\n", nin, nout);
    fputs("    free(ws);\n    free(grad);\n    free(theta);\n    return status;\n}\n", out);
}
