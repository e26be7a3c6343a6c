// dynconv: the epilogue every com.dynconv op can apply in its output write (docs/ops.md "Epilogue"):
// Y = act(Y * OS[m] + OB[m] + Z) per output channel m, each step as the node's attributes ask. The kernels call
// Apply on what they have just written (a sample's planes, a task's rows), while it is still in cache.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#endif

#include "common.h"

namespace dynconv {

// The values of the `activation` attribute (ops/epilogue.ts ACTIVATIONS).
enum class Act : int64_t { kNone = 0, kRelu = 1, kSigmoid = 2, kSilu = 3, kClip = 4, kHardSwish = 5 };

namespace epilogue_detail {

// The logistic function 1 / (1 + exp(-x)) as ONNX Runtime's own Sigmoid and QuickGelu compute it (MLAS's
// MlasComputeLogistic: a rational approximation, odd degree 9 over even degree 10, on x clamped to [-18, 18];
// absolute error about 2e-7), so a fused activation matches the unfused graph's. The exp-based form it replaces
// (1 / (1 + exp(-x)) with a polynomial exp) made a SiLU epilogue 2x slower than ONNX Runtime's separate
// BatchNormalization + QuickGelu nodes (measured on the fixture CondConv/DY-CNN network).
inline float Sigmoid(float x) {
  x = x < -18.f ? -18.f : (x > 18.f ? 18.f : x);
  const float x2 = x * x;
  float p = 4.37031012579801e-11f;
  p = p * x2 + 1.15627324459942e-07f;
  p = p * x2 + 6.08574864600143e-05f;
  p = p * x2 + 8.51377133304701e-03f;
  p = p * x2 + 2.48287947061529e-01f;
  float q = 6.10247389755681e-13f;
  q = q * x2 + 5.76102136993427e-09f;
  q = q * x2 + 6.29106785017040e-06f;
  q = q * x2 + 1.70198817374094e-03f;
  q = q * x2 + 1.16817656904453e-01f;
  q = q * x2 + 9.93151921023180e-01f;
  const float v = p * x / q + 0.5f;
  return v < 0.f ? 0.f : (v > 1.f ? 1.f : v);  // the approximation overshoots [0, 1] by an ulp at the ends
}

template <Act A>
inline float Activate(float v, float lo, float hi) {
  if constexpr (A == Act::kRelu) return v > 0.f ? v : 0.f;
  if constexpr (A == Act::kSigmoid) return Sigmoid(v);
  if constexpr (A == Act::kSilu) return v * Sigmoid(v);
  if constexpr (A == Act::kClip) return v < lo ? lo : (v > hi ? hi : v);
  if constexpr (A == Act::kHardSwish) {
    const float g = v * (1.f / 6.f) + 0.5f;
    return v * (g < 0.f ? 0.f : (g > 1.f ? 1.f : g));
  }
  return v;
}

// y[i] = act(y[i] * s + t + z[i]) for i < n (z may be null). On x86-64 GCC also compiles an AVX2 copy, picked at
// load time (ifunc), like the PixelConv row kernels' run-time choice: the library still runs on the baseline.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DC_EPILOGUE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DC_EPILOGUE_CLONES
#endif
template <Act A>
__attribute__((noinline)) DC_EPILOGUE_CLONES void ApplyRun(float* __restrict y, const float* __restrict z, int64_t n, float s, float t,
                                        float lo, float hi) {
  if (z != nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = Activate<A>(y[i] * s + t + z[i], lo, hi);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = Activate<A>(y[i] * s + t, lo, hi);
  }
}

// Sigmoid and SiLU on x86-64 with AVX2 and FMA, 8 lanes at a time: written with intrinsics because GCC's
// vectorisation of the scalar form turns the clamps into compare-and-blend chains (measured on 16K values: 20 us
// here, 33 us the AVX2 clone of ApplyRun, 72 us the exp-based form before). Chosen at run time (HostSimd).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DC_EPILOGUE_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
inline __m256 Sigmoid8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-18.f)), _mm256_set1_ps(18.f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(4.37031012579801e-11f), x2, _mm256_set1_ps(1.15627324459942e-07f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(6.08574864600143e-05f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(8.51377133304701e-03f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.48287947061529e-01f));
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(6.10247389755681e-13f), x2, _mm256_set1_ps(5.76102136993427e-09f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(6.29106785017040e-06f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(1.70198817374094e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(1.16817656904453e-01f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(9.93151921023180e-01f));
  const __m256 v = _mm256_add_ps(_mm256_div_ps(_mm256_mul_ps(p, x), q), _mm256_set1_ps(0.5f));
  return _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1.f));
}

// ApplyRun<kSigmoid> (kSilu false) or ApplyRun<kSilu>.
template <bool kSilu>
__attribute__((noinline)) void LogisticRunAvx2(float* __restrict y, const float* __restrict z, int64_t n, float s, float t) {
  const __m256 vs = _mm256_set1_ps(s), vt = _mm256_set1_ps(t);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(y + i), vs, vt);
    if (z != nullptr) v = _mm256_add_ps(v, _mm256_loadu_ps(z + i));
    const __m256 g = Sigmoid8(v);
    _mm256_storeu_ps(y + i, kSilu ? _mm256_mul_ps(v, g) : g);
  }
  for (; i < n; ++i) {
    const float v = y[i] * s + t + (z != nullptr ? z[i] : 0.f);
    y[i] = kSilu ? v * Sigmoid(v) : Sigmoid(v);
  }
}
#pragma GCC pop_options
#endif

// ApplyRun for the logistic activations: the AVX2 loop where the CPU has it.
template <Act A>
inline void LogisticRun(float* y, const float* z, int64_t n, float s, float t) {
#ifdef DC_EPILOGUE_AVX2
  static const bool avx2 = HostSimd() != Simd::kBaseline;
  if (avx2) return LogisticRunAvx2<A == Act::kSilu>(y, z, n, s, t);
#endif
  ApplyRun<A>(y, z, n, s, t, 0.f, 0.f);
}

}  // namespace epilogue_detail

class Epilogue {
 public:
  // The epilogue attributes of the node (read by AttrValues against the op layer's table).
  OrtStatus* Read(const AttrValues& v) {
    affine_ = v.Int("affine") == 1;
    residual_ = v.Int("residual") == 1;
    act_ = static_cast<Act>(v.Int("activation"));
    lo_ = static_cast<float>(v.Float("activation_min"));
    hi_ = static_cast<float>(v.Float("activation_max"));
    return nullptr;
  }
  bool Any() const { return affine_ || residual_ || act_ != Act::kNone; }

  // The epilogue of one call: this one with the call's inputs (after the op's own `own` inputs, in `in`),
  // checked against Y's shape.
  OrtStatus* Bind(const Tensor* in, size_t own, const std::vector<int64_t>& y_dims, Epilogue* call) const {
    *call = *this;
    return call->BindInputs(in, own, y_dims);
  }
  // The same, reading the inputs from the kernel context.
  OrtStatus* Bind(OrtKernelContext* ctx, size_t own, const std::vector<int64_t>& y_dims, Epilogue* call) const {
    Tensor in[kEpilogueInputs + 1];
    const char* names[3];
    size_t k = 0;
    if (affine_) { names[k++] = "OS"; names[k++] = "OB"; }
    if (residual_) names[k++] = "Z";
    size_t count = 0;
    DC_TRY(g_ort->KernelContext_GetInputCount(ctx, &count));
    if (count > own + k)
      return Error("the node has %zu inputs; with its epilogue attributes (affine, residual) it takes %zu", count, own + k);
    for (size_t i = 0; i < k; ++i) DC_TRY(InputTensor(ctx, own + i, names[i], &in[i]));
    *call = *this;
    return call->BindInputs(in, 0, y_dims);
  }
  // The number of inputs a node with this epilogue has beyond the op's own.
  size_t Inputs() const { return (affine_ ? 2 : 0) + (residual_ ? 1 : 0); }

 private:
  OrtStatus* BindInputs(const Tensor* in, size_t own, const std::vector<int64_t>& y_dims) {
    size_t i = own;
    const int64_t M = y_dims.size() > 1 ? y_dims[1] : 0;
    os_ = ob_ = z_ = nullptr;
    if (affine_) {
      const Tensor &S = in[i], &T = in[i + 1];
      i += 2;
      if (S.Rank() != 1 || S.dims[0] != M) return Error("OS must be [M] = [%lld], got shape %s", static_cast<long long>(M), DimsString(S.dims).c_str());
      if (T.Rank() != 1 || T.dims[0] != M) return Error("OB must be [M] = [%lld], got shape %s", static_cast<long long>(M), DimsString(T.dims).c_str());
      os_ = S.data;
      ob_ = T.data;
    }
    if (residual_) {
      const Tensor& Z = in[i];
      if (Z.dims != y_dims) return Error("Z must have Y's shape %s, got shape %s", DimsString(y_dims).c_str(), DimsString(Z.dims).c_str());
      z_ = Z.data;
    }
    return nullptr;
  }

 public:
  // Applies the epilogue to the `n` values of channel m at element offset `at` of Y (and of Z).
  void Apply(float* y, int64_t at, int64_t n, int64_t m) const {
    using namespace epilogue_detail;
    const float s = os_ != nullptr ? os_[m] : 1.f, t = ob_ != nullptr ? ob_[m] : 0.f;
    const float* z = z_ != nullptr ? z_ + at : nullptr;
    float* yy = y + at;
    switch (act_) {
      case Act::kNone: return ApplyRun<Act::kNone>(yy, z, n, s, t, lo_, hi_);
      case Act::kRelu: return ApplyRun<Act::kRelu>(yy, z, n, s, t, lo_, hi_);
      case Act::kSigmoid: return LogisticRun<Act::kSigmoid>(yy, z, n, s, t);
      case Act::kSilu: return LogisticRun<Act::kSilu>(yy, z, n, s, t);
      case Act::kClip: return ApplyRun<Act::kClip>(yy, z, n, s, t, lo_, hi_);
      case Act::kHardSwish: return ApplyRun<Act::kHardSwish>(yy, z, n, s, t, lo_, hi_);
    }
  }

  // Applies it to samples [n0, n1) of Y [N, M, S] (S: the spatial size), over the thread pool when large.
  OrtStatus* ApplySamples(OrtKernelContext* ctx, float* y, int64_t n0, int64_t n1, int64_t M, int64_t S) const {
    const int64_t rows = (n1 - n0) * M;
    auto run = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) Apply(y, (n0 * M + r) * S, S, r % M);
    };
    // cycles: about 2 a value for the logistic's rational function (8 lanes: 10 FMAs and a division), 0.5 else
    const bool logistic = act_ == Act::kSigmoid || act_ == Act::kSilu;
    const double work = static_cast<double>(rows * S) * (logistic ? 2.0 : 0.5);
    return ParallelRange(ctx, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(S, 1)), work, run);
  }

 private:
  bool affine_ = false, residual_ = false;
  Act act_ = Act::kNone;
  float lo_ = 0.f, hi_ = 0.f;
  const float* os_ = nullptr;
  const float* ob_ = nullptr;
  const float* z_ = nullptr;
};

}  // namespace dynconv
