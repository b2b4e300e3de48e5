/* models.c — the models the weights-file fuzz targets load into (see
 * models.h). */
#include "models.h"

#include <string.h>

/* One parameter of rank 0 to 4 (dims d, unused entries 1). */
static bp_tensor_info tensor(const char *name, int rank, const int d[4],
                             size_t offset)
{
    bp_tensor_info t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.rank = rank;
    t.size = 1;
    for (int k = 0; k < 4; k++) {
        t.dims[k] = k < rank ? d[k] : 1;
        t.size *= (size_t)t.dims[k];
    }
    t.offset = offset;
    return t;
}

bp_model fuzz_model(int which, int real_size, bp_tensor_info p[4])
{
    static const int d_16_4[4] = {16, 4}, d_16[4] = {16}, d_3_16[4] = {3, 16},
                     d_3[4] = {3}, d_2_2[4] = {2, 2}, d_k[4] = {2, 1, 3, 3},
                     d_2[4] = {2}, d_t[4] = {2, 2, 2}, none[4] = {0};
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.real_size = real_size;
    if (which == 1) {
        m.name = "tiny";
        p[0] = tensor("s", 0, none, 0);
        p[1] = tensor("v", 1, d_3, 1);
        p[2] = tensor("M", 2, d_2_2, 4);
        m.num_param_tensors = 3;
        m.num_params = 8;
    } else if (which == 2) {
        m.name = "none";
    } else if (which == 3) {
        m.name = "conv";
        p[0] = tensor("K", 4, d_k, 0);
        p[1] = tensor("c", 1, d_2, 18);
        p[2] = tensor("T", 3, d_t, 20);
        m.num_param_tensors = 3;
        m.num_params = 28;
    } else {
        m.name = "iris";
        p[0] = tensor("W1", 2, d_16_4, 0);
        p[1] = tensor("b1", 1, d_16, 64);
        p[2] = tensor("W2", 2, d_3_16, 80);
        p[3] = tensor("b2", 1, d_3, 128);
        m.num_param_tensors = 4;
        m.num_params = 131;
    }
    m.params = p;
    return m;
}
