// dynconv: com.dynconv.MixtureConv — attention over E expert kernels (CondConv, DY-CNN) (docs/ops.md).
// Inputs X [N, C, *D], R [N, E], W [E, *weight layout], B [E, M]; output Y [N, M, *O].
// Per sample: Wn = sum_e R[n,e] W[e], Bn = sum_e R[n,e] B[e] (parallel over weight chunks), then ONNX Runtime's
// own Conv / ConvTranspose on the sample (sample_conv.h).
#include <algorithm>

#include "sample_conv.h"

namespace dynconv {
namespace {

// o[j] = sum_k r[k] w[k * wsize + j] for j in [b, e). Restrict pointers and local bounds let the compiler
// vectorise it (written inline in the lambda below, or inlined from here, it stayed scalar).
__attribute__((noinline)) void MixExperts(const float* __restrict r, int64_t E, const float* __restrict w,
                                          int64_t wsize, float* __restrict o, int64_t b, int64_t e) {
  const float r0 = r[0];
  for (int64_t j = b; j < e; ++j) o[j] = r0 * w[j];
  for (int64_t k = 1; k < E; ++k) {
    const float rk = r[k];
    const float* __restrict wk = w + k * wsize;
    for (int64_t j = b; j < e; ++j) o[j] += rk * wk[j];
  }
}

struct MixtureConvKernel {
  static constexpr const char* kName = "MixtureConv";
  static constexpr size_t kInputs = 4;
  SampleConv conv;

  OrtStatus* Init(const OrtKernelInfo* info) { return conv.Init(info, ops::kMixtureConv); }

  OrtStatus* Compute(OrtKernelContext* ctx) const {
    Tensor X, R, W, B, Y;
    DC_TRY(InputTensor(ctx, 0, "X", &X));
    DC_TRY(InputTensor(ctx, 1, "R", &R));
    DC_TRY(InputTensor(ctx, 2, "W", &W));
    DC_TRY(InputTensor(ctx, 3, "B", &B));
    if (X.Rank() < 3 || X.Rank() > 2 + kMaxRank)
      return Error("X must have rank 3 to 5, got shape %s", DimsString(X.dims).c_str());
    const Tensor* inputs[] = {&X, &R, &W, &B};
    DC_TRY(CheckRanks(ops::kMixtureConv, X.Rank() - 2, inputs));
    if (W.Rank() != X.Rank() + 1)
      return Error("W must be [E, *weight layout] of rank %d, got shape %s", X.Rank() + 1,
                   DimsString(W.dims).c_str());
    const int64_t E = W.dims[0];
    if (E < 1) return Error("W must hold at least one expert, got shape %s", DimsString(W.dims).c_str());
    SampleConv::Shapes s;
    DC_TRY(conv.CheckShapes(ctx, X.dims, std::vector<int64_t>(W.dims.begin() + 1, W.dims.end()), &s));
    if (R.Rank() != 2 || R.dims[0] != s.N || R.dims[1] != E)
      return Error("R must be [N, E] = [%lld, %lld], got shape %s", static_cast<long long>(s.N),
                   static_cast<long long>(E), DimsString(R.dims).c_str());
    if (B.Rank() != 2 || B.dims[0] != E || B.dims[1] != s.M)
      return Error("B must be [E, M] = [%lld, %lld], got shape %s", static_cast<long long>(E),
                   static_cast<long long>(s.M), DimsString(B.dims).c_str());
    Epilogue epi;
    DC_TRY(conv.epilogue().Bind(ctx, kInputs, s.y_dims, &epi));
    DC_TRY(OutputTensor(ctx, 0, s.y_dims, &Y));
    if (s.N == 0) return nullptr;
    SampleConv::Scratch scratch;
    const int64_t wsize = s.w_size, M = s.M;
    const int64_t chunk = conv.ChunkSamples(s, wsize + M);
    FloatBuffer wn, bn;
    DC_TRY(wn.Alloc(ctx, std::min(chunk, s.N) * wsize));
    DC_TRY(bn.Alloc(ctx, std::min(chunk, s.N) * M));
    const float* w = W.data;
    for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
      const int64_t n1 = std::min(s.N, n0 + chunk), nb = n1 - n0;
      float* out = wn.get();
      // Wn = sum_e R[n,e] W[e] for the chunk's samples, flattened over (sample, weight index).
      auto mix = [&](int64_t f0, int64_t f1) {
        for (int64_t f = f0; f < f1;) {
          const int64_t i = f / wsize, b = f % wsize, e = std::min(wsize, b + (f1 - f));
          MixExperts(R.data + (n0 + i) * E, E, w, wsize, out + i * wsize, b, e);
          f += e - b;
        }
      };
      if (nb * wsize * E < (int64_t{1} << 17)) mix(0, nb * wsize);  // small: not worth waking the pool
      else DC_TRY(ParallelRange(ctx, nb * wsize, 16384, mix));
      for (int64_t i = 0; i < nb; ++i) {
        const float* r = R.data + (n0 + i) * E;
        for (int64_t m = 0; m < M; ++m) {
          float acc = 0.f;
          for (int64_t k = 0; k < E; ++k) acc += r[k] * B.data[k * M + m];
          bn.get()[i * M + m] = acc;
        }
      }
      DC_TRY(conv.RunChunk(ctx, s, n0, n1, X.data, wn.get(), wsize, bn.get(), M, Y.data, &scratch, epi));
    }
    return nullptr;
  }
};

}  // namespace

const OrtCustomOp* MixtureConvOp() {
  static CustomOp<MixtureConvKernel> op;
  return &op;
}

}  // namespace dynconv
