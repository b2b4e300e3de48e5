/* test_torch.c — weights that travel between PyTorch and bpgen through
 * safetensors files, each side writing and reading the format with its own
 * few lines (the Python side uses json, struct and numpy, not the
 * safetensors package):
 *
 *  1. PyTorch trains a 4-8-3 tanh classifier (float32, 60 Adam steps) and
 *     writes its parameters (F32), and, in float64 at those weights, the
 *     loss and every gradient on the same 32 samples;
 *  2. bpgen's generated code for the same .net (double precision) loads the
 *     file and must give the same loss and gradients;
 *  3. bpgen's generated code (float) trains from its own initialisation
 *     and saves its parameters (F32) and its predictions;
 *  4. PyTorch loads that file into its model and must predict the same.
 *
 * Needs /usr/bin/python3 with torch and numpy, which `make test` installs
 * on first use (scripts/install-deps.sh). */
#define _XOPEN_SOURCE 700   /* realpath */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static const char *model_net =
    "# the 4-8-3 classifier PyTorch also defines in torch_side.py\n"
    "model mlp\n"
    "input x[4]\n"
    "input y[3]\n"
    "param W1[8, 4]\n"
    "param b1[8] = uniform(-0.1, 0.1)\n"
    "param W2[3, 8]\n"
    "param b2[3]\n"
    "h = tanh(W1 · x + b1)\n"
    "z = W2 · h + b2\n"
    "p = softmax(z)\n"
    "output p\n"
    "loss L = softmax_cross_entropy(z, y)\n";

static const char *torch_py =
    "import json, struct, sys\n"
    "import numpy as np\n"
    "import torch\n"
    "\n"
    "N = 32\n"
    "NAMES = ['W1', 'b1', 'W2', 'b2']\n"
    "\n"
    "class MLP(torch.nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.W1 = torch.nn.Parameter(torch.randn(8, 4) * 0.5)\n"
    "        self.b1 = torch.nn.Parameter(torch.zeros(8))\n"
    "        self.W2 = torch.nn.Parameter(torch.randn(3, 8) * 0.5)\n"
    "        self.b2 = torch.nn.Parameter(torch.zeros(3))\n"
    "    def forward(self, x):\n"
    "        return torch.tanh(x @ self.W1.T + self.b1) @ self.W2.T + self.b2\n"
    "\n"
    "def save_safetensors(path, tensors):\n"
    "    header, blobs, at = {}, [], 0\n"
    "    for name, t in tensors.items():\n"
    "        a = t.detach().numpy().astype('<f4')\n"
    "        header[name] = {'dtype': 'F32', 'shape': list(a.shape),\n"
    "                        'data_offsets': [at, at + a.nbytes]}\n"
    "        blobs.append(a.tobytes())\n"
    "        at += a.nbytes\n"
    "    text = json.dumps(header).encode()\n"
    "    text += b' ' * (-len(text) % 8)\n"
    "    with open(path, 'wb') as f:\n"
    "        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))\n"
    "\n"
    "def load_safetensors(path):\n"
    "    raw = open(path, 'rb').read()\n"
    "    (n,) = struct.unpack('<Q', raw[:8])\n"
    "    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]\n"
    "    kinds = {'F32': '<f4', 'F64': '<f8'}\n"
    "    return {name: torch.from_numpy(np.frombuffer(\n"
    "                data[e['data_offsets'][0]:e['data_offsets'][1]],\n"
    "                dtype=kinds[e['dtype']]).reshape(e['shape']).copy())\n"
    "            for name, e in header.items() if name != '__metadata__'}\n"
    "\n"
    "def data():\n"
    "    g = torch.Generator().manual_seed(3)\n"
    "    x = torch.randn(N, 4, generator=g, dtype=torch.float64)\n"
    "    label = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()\n"
    "    return x, torch.nn.functional.one_hot(label, 3).double(), label\n"
    "\n"
    "mode = sys.argv[1]\n"
    "x, y, label = data()\n"
    "if mode == 'train':\n"
    "    # writes data.bin (x then y, float64), torch.safetensors, and\n"
    "    # torch_ref.bin: loss and gradients in float64 at the saved weights\n"
    "    open('data.bin', 'wb').write(x.numpy().astype('<f8').tobytes() +\n"
    "                                 y.numpy().astype('<f8').tobytes())\n"
    "    torch.manual_seed(0)\n"
    "    model = MLP()\n"
    "    opt = torch.optim.Adam(model.parameters(), lr=0.05)\n"
    "    for step in range(60):\n"
    "        opt.zero_grad()\n"
    "        loss = torch.nn.functional.cross_entropy(model(x.float()), label)\n"
    "        loss.backward()\n"
    "        opt.step()\n"
    "    state = dict(model.state_dict())\n"
    "    save_safetensors('torch.safetensors', state)\n"
    "    exact = MLP().double()\n"
    "    exact.load_state_dict({k: v.double() for k, v in state.items()})\n"
    "    loss = torch.nn.functional.cross_entropy(exact(x), label)\n"
    "    loss.backward()\n"
    "    ref = [loss.detach().reshape(1)] + [getattr(exact, k).grad.reshape(-1) for k in NAMES]\n"
    "    open('torch_ref.bin', 'wb').write(torch.cat(ref).numpy().astype('<f8').tobytes())\n"
    "    print('torch trained: loss %.6f' % loss.item())\n"
    "elif mode == 'predict':\n"
    "    # loads bpgen.safetensors and compares with bpgen's predictions\n"
    "    model = MLP()\n"
    "    loaded = load_safetensors('bpgen.safetensors')\n"
    "    assert sorted(loaded) == sorted(NAMES), sorted(loaded)\n"
    "    model.load_state_dict(loaded)\n"
    "    with torch.no_grad():\n"
    "        p = torch.softmax(model(x.float()), dim=1).double()\n"
    "    theirs = torch.from_numpy(np.fromfile('bpgen_pred.bin', dtype='<f8')).reshape(N, 3)\n"
    "    diff = (p - theirs).abs().max().item()\n"
    "    same = bool((p.argmax(1) == theirs.argmax(1)).all())\n"
    "    print('torch predicts with bpgen weights: max difference %.3g, same classes %s'\n"
    "          % (diff, same))\n"
    "    sys.exit(0 if diff < 1e-5 and same else 1)\n";

/* Generic over the model's precision, through mlp_model. */
static const char *driver_c =
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include \"mlp.h\"\n"
    "\n"
    "enum { N = 32 };\n"
    "\n"
    "static int read_f64(const char *path, double *v, size_t n)\n"
    "{\n"
    "    FILE *f = fopen(path, \"rb\");\n"
    "    size_t got = f ? fread(v, sizeof *v, n, f) : 0;\n"
    "    if (f) fclose(f);\n"
    "    return got == n ? 0 : -1;\n"
    "}\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    const bp_model *m = &mlp_model;\n"
    "    const int rs = m->real_size;\n"
    "    char err[512];\n"
    "    static double data[N * 7], ref[1 + mlp_NUM_PARAMS], pd[N * 3];\n"
    "    if (argc != 4 || read_f64(\"data.bin\", data, N * 7)) return 2;\n"
    "    void *x = malloc(N * 4 * 8), *y = malloc(N * 3 * 8), *p = malloc(N * 3 * 8);\n"
    "    void *theta = malloc(mlp_NUM_PARAMS * 8), *grad = malloc(mlp_NUM_PARAMS * 8);\n"
    "    void *ws = malloc(m->workspace_size(N));\n"
    "    for (int i = 0; i < N * 4; i++)\n"
    "        if (rs == 4) ((float *)x)[i] = (float)data[i]; else ((double *)x)[i] = data[i];\n"
    "    for (int i = 0; i < N * 3; i++)\n"
    "        if (rs == 4) ((float *)y)[i] = (float)data[N * 4 + i]; else ((double *)y)[i] = data[N * 4 + i];\n"
    "    const void *in[2] = {x, y};\n"
    "    if (!strcmp(argv[1], \"check\")) {\n"
    "        if (bp_safetensors_load(argv[2], m, theta, err, sizeof err)) {\n"
    "            fprintf(stderr, \"%s\\n\", err);\n"
    "            return 1;\n"
    "        }\n"
    "        if (read_f64(argv[3], ref, 1 + mlp_NUM_PARAMS)) return 2;\n"
    "        double loss = m->forward(theta, in, N, ws);\n"
    "        m->backward(theta, in, N, ws, grad, NULL);\n"
    "        double worst = fabs(loss - ref[0]) / fabs(ref[0]);\n"
    "        for (int i = 0; i < mlp_NUM_PARAMS; i++) {\n"
    "            double g = rs == 4 ? ((float *)grad)[i] : ((double *)grad)[i];\n"
    "            double e = fabs(g - ref[1 + i]) / fmax(1e-3, fabs(ref[1 + i]));\n"
    "            if (!(e <= worst)) worst = e;\n"
    "        }\n"
    "        printf(\"bpgen at torch's weights: loss %.12f (torch %.12f), worst relative \"\n"
    "               \"difference of loss and gradients %.3g\\n\", loss, ref[0], worst);\n"
    "        free(x); free(y); free(p); free(theta); free(grad); free(ws);\n"
    "        return worst < 1e-10 ? 0 : 1;\n"
    "    }\n"
    "    /* train: Adam from bpgen's own initialisation, then save and predict */\n"
    "    m->init(theta, 11);\n"
    "    bp_optim_config c = bp_optim_defaults(BP_ADAM);\n"
    "    c.lr = 0.05;\n"
    "    bp_optimizer o;\n"
    "    void *state = malloc(bp_optim_state_size(&c, m->num_params, rs));\n"
    "    bp_optim_init(&o, &c, m, m->num_params, rs, state);\n"
    "    double loss = 0;\n"
    "    for (int step = 0; step < 80; step++) {\n"
    "        loss = m->forward(theta, in, N, ws);\n"
    "        m->backward(theta, in, N, ws, grad, NULL);\n"
    "        if (bp_optim_step(&o, theta, grad, err, sizeof err)) return 1;\n"
    "    }\n"
    "    if (bp_safetensors_save(argv[2], m, theta, err, sizeof err)) {\n"
    "        fprintf(stderr, \"%s\\n\", err);\n"
    "        return 1;\n"
    "    }\n"
    "    void *outs[1] = {p};\n"
    "    m->predict(theta, in, N, ws, outs);\n"
    "    for (int i = 0; i < N * 3; i++)\n"
    "        pd[i] = rs == 4 ? ((float *)p)[i] : ((double *)p)[i];\n"
    "    FILE *f = fopen(argv[3], \"wb\");\n"
    "    if (!f || fwrite(pd, sizeof *pd, N * 3, f) != N * 3 || fclose(f)) return 2;\n"
    "    printf(\"bpgen trained: loss %.6f\\n\", loss);\n"
    "    free(state); free(x); free(y); free(p); free(theta); free(grad); free(ws);\n"
    "    return 0;\n"
    "}\n";

static char *dir;

/* Runs `cmd` in dir; prints its output when it fails. */
static int run_there(const char *cmd)
{
    char *full = test_format("cd '%s' && %s", dir, cmd);
    char *out = NULL, *err = NULL;
    int rc = test_run(full, &out, &err);
    if (rc != 0)
        fprintf(stderr, "\n%s: exit %d\n%s%s\n", cmd, rc, out ? out : "", err ? err : "");
    free(out);
    free(err);
    free(full);
    return rc;
}

static void test_pytorch_round_trip(void)
{
    char *rel = test_tmp_path("torch");
    char *cmd = test_format("rm -rf '%s' && mkdir -p '%s'", rel, rel);
    CU_ASSERT_EQUAL_FATAL(test_run(cmd, NULL, NULL), 0);
    free(cmd);
    dir = realpath(rel, NULL);
    char *root = getcwd(NULL, 0);
    char *bpgen = realpath(TEST_BPGEN, NULL);
    char *libbp = realpath(TEST_LIBBP, NULL);
    CU_ASSERT_FATAL(dir && root && bpgen && libbp);
    char *net = test_format("%s/mlp.net", dir);
    char *py = test_format("%s/torch_side.py", dir);
    char *drv = test_format("%s/driver.c", dir);
    CU_ASSERT_EQUAL(test_write_file(net, model_net), 0);
    CU_ASSERT_EQUAL(test_write_file(py, torch_py), 0);
    CU_ASSERT_EQUAL(test_write_file(drv, driver_c), 0);

    /* the generated code, in double for the exact comparison and in float
     * as most users would train */
    for (int rs = 4; rs <= 8; rs += 4) {
        const char *prec = rs == 4 ? "float" : "double";
        cmd = test_format("mkdir -p %s && '%s' mlp.net -o %s/mlp.c --precision=%s && "
                          "%s %s -I'%s/runtime' -I%s %s/mlp.c driver.c '%s' -lm -o driver_%s",
                          prec, bpgen, prec, prec, TEST_CC, TEST_CFLAGS, root, prec, prec,
                          libbp, prec);
        CU_ASSERT_EQUAL_FATAL(run_there(cmd), 0);
        free(cmd);
    }

    /* 1, 2: PyTorch's weights and gradients in bpgen's code */
    CU_ASSERT_EQUAL_FATAL(run_there("/usr/bin/python3 torch_side.py train"), 0);
    CU_ASSERT_EQUAL(run_there("./driver_double check torch.safetensors torch_ref.bin"), 0);
    CU_ASSERT_EQUAL(run_there("./driver_float train bpgen.safetensors bpgen_pred.bin"), 0);
    /* 3, 4: bpgen's weights in PyTorch */
    CU_ASSERT_EQUAL(run_there("/usr/bin/python3 torch_side.py predict"), 0);

    free(libbp);
    free(bpgen);
    free(root);
    free(drv);
    free(py);
    free(net);
    free(dir);
    free(rel);
}

void register_torch(void)
{
    CU_pSuite s = CU_add_suite("torch safetensors", NULL, NULL);
    CU_add_test(s, "weights travel to and from PyTorch", test_pytorch_round_trip);
}
