// The few-rows GEMM kernel for AVX-512 (built with -mavx512f -mfma; run only where the CPU has it). See
// small_gemm_kernel.inc.
#define RLFT_SMALL_GEMM_VECTOR_BYTES 64
#define RLFT_SMALL_GEMM_W_ROWS 4
#define RLFT_SMALL_GEMM_ENTRY small_gemm_avx512
#define RLFT_SMALL_GEMM_NN_ENTRY small_gemm_nn_avx512
#include "policy/kernels/small_gemm_kernel.inc"
