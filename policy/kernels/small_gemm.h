#pragma once
// Products with few input rows, y = x · Wᵀ, for inference on the CPU in fp32: a decode step
// sends each routed expert a handful of rows, and BLAS, built for large products, streams
// the weights several times slower than memory allows at that size. The kernel
// (small_gemm_kernel.inc) reads each weight once, for all rows, at memory speed; it is
// compiled for AVX-512, AVX2 and SSE2 and picked by the CPU's features at run time.
//
// Only where no gradient is wanted (rollout, evaluation, scoring under no-grad or inference
// mode): training forwards keep ATen's ops and their autograd. Sums are taken in another
// order than BLAS's, so results match it to float rounding, not bit for bit.
//
// Legend: M input rows, K inner width, N output width; W [N, K] (the Linear layout).

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace rlft::policy {

/// The most input rows linear() and the MoE experts send to the kernel; above it, BLAS.
/// Measured with `rlft bench rollout` (2 cores, docs/rollout.md): decode at 32 sequences
/// ran at 462-502 tokens/s with the limit at 16 (the dense products of 32 rows in BLAS),
/// 553-659 at 32 and 586-709 at 64. BLAS packs the whole weight on every call, which at a
/// few dozen rows costs as much as the product.
constexpr int64_t kSmallGemmMaxRows = 64;

/// One product of a group: y[i, j] = Σ_k x[i, k] · w[j, k] for i < rows, j < n (or, with
/// w_is_kn, Σ_k x[i, k] · w[k, j]).
struct SmallGemmJob {
  const float* x = nullptr;  ///< [rows, k] with row stride ldx
  int64_t ldx = 0;
  int64_t rows = 0;          ///< M (≤ kSmallGemmMaxRows for speed; any count is correct)
  const float* w = nullptr;  ///< [n, k] contiguous (a Linear weight), or [k, n] when w_is_kn
  int64_t k = 0;
  int64_t n = 0;
  float* y = nullptr;  ///< [rows, n] with row stride ldy
  int64_t ldy = 0;
  bool w_is_kn = false;  ///< w is [k, n] with row stride ldw: y = x · w (attention's values)
  int64_t ldw = 0;
};

/// Instruction sets: "avx512", "avx2", "base".
/// The one this CPU runs (the best it supports).
const char* small_gemm_isa();
/// Every set this CPU can run, best first (tests compare each with BLAS).
std::vector<std::string> small_gemm_isas();

/// Runs the jobs on ATen's intra-op threads, split into blocks of weight rows. `isa` = ""
/// uses small_gemm_isa(); naming one this CPU lacks is an error.
void run_small_gemm(const std::vector<SmallGemmJob>& jobs, const std::string& isa = "");

/// Whether the kernel can read t at all: fp32 on the CPU, no gradient wanted (grad mode off
/// or t not requiring one), no CPU autocast.
bool small_gemm_takes_operand(const at::Tensor& t);
/// small_gemm_takes_operand(w) for a weight w [N, K], contiguous.
bool small_gemm_takes_weight(const at::Tensor& w);
/// Whether it can take these operands, whatever the row count: small_gemm_takes_weight(w),
/// and x [..., K] (and b [N]) fp32 on the CPU, not requiring a gradient, x's rows at one
/// stride.
bool small_gemm_takes(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {});

/// at::linear(x, w, b), x [..., K] → [..., N], through the kernel where small_gemm_takes
/// the operands and x has at most kSmallGemmMaxRows rows.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {});

/// linear(x, ws[i], bs[i]) for every i (bs empty or one per weight, each may be undefined):
/// several projections of the same input (q, k, v; gate, up) in one threaded pass of the
/// kernel where it takes them all, one synchronisation instead of one per product.
std::vector<at::Tensor> linear_many(const at::Tensor& x, const std::vector<at::Tensor>& ws,
                                    const std::vector<at::Tensor>& bs = {});

}  // namespace rlft::policy
