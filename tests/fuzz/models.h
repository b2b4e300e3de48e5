/* models.h — model descriptors for the fuzz targets of weights readers
 * (weights, safetensors) and their seed writer. Only the parameter tables
 * matter: the readers never call the model's functions.
 *   0 "iris"  W1[16,4] b1[16] W2[3,16] b2[3]   131 values
 *   1 "tiny"  s (scalar) v[3] M[2,2]            8 values
 *   2 "none"  no parameters
 *   3 "conv"  K[2,1,3,3] c[2] T[2,2,2]          28 values (ranks 3, 4)
 * theta buffers of FUZZ_MAX_PARAMS values fit every one. */
#ifndef BP_FUZZ_MODELS_H
#define BP_FUZZ_MODELS_H

#include "bp.h"

enum { FUZZ_MAX_PARAMS = 131 };

/* Model `which` (0-3) with values of real_size bytes; p holds its
 * parameter table (4 entries) and must outlive the model. */
bp_model fuzz_model(int which, int real_size, bp_tensor_info p[4]);

#endif
