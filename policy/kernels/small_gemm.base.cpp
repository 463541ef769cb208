// The few-rows GEMM kernel for any CPU (16-byte vectors: SSE2 on x86-64). See small_gemm_kernel.inc.
#define RLFT_SMALL_GEMM_VECTOR_BYTES 16
#define RLFT_SMALL_GEMM_W_ROWS 2
#define RLFT_SMALL_GEMM_ENTRY small_gemm_base
#define RLFT_SMALL_GEMM_NN_ENTRY small_gemm_nn_base
#include "policy/kernels/small_gemm_kernel.inc"
