// The few-rows GEMM kernel for AVX2 with FMA (built with -mavx2 -mfma; run only where the CPU has them). See
// small_gemm_kernel.inc.
#define RLFT_SMALL_GEMM_VECTOR_BYTES 32
#define RLFT_SMALL_GEMM_W_ROWS 4
#define RLFT_SMALL_GEMM_ENTRY small_gemm_avx2
#define RLFT_SMALL_GEMM_NN_ENTRY small_gemm_nn_avx2
#include "policy/kernels/small_gemm_kernel.inc"
