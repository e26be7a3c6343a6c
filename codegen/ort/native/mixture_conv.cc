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

struct MixtureConvDef {
  static constexpr const ops::OpSpec& kOp = ops::kMixtureConv;

  OrtStatus* Read(const AttrValues&) { return nullptr; }

  static OrtStatus* SampleWeight(const Tensor* in, std::vector<int64_t>* w_dims) {
    const Tensor &X = in[0], &W = in[2];
    if (W.Rank() != X.Rank() + 1)
      return Error("W must be [E, *weight layout] of rank %d, got shape %s", X.Rank() + 1,
                   DimsString(W.dims).c_str());
    if (W.dims[0] < 1) return Error("W must hold at least one expert, got shape %s", DimsString(W.dims).c_str());
    w_dims->assign(W.dims.begin() + 1, W.dims.end());
    return nullptr;
  }

  OrtStatus* Convolve(OrtKernelContext* ctx, const SampleConv& conv, const SampleConv::Call& call) const {
    const Tensor &R = call.in[1], &W = call.in[2], &B = call.in[3];
    const SampleConv::Shapes& s = call.s;
    const int64_t E = W.dims[0];
    if (R.Rank() != 2 || R.dims[0] != s.N || R.dims[1] != E)
      return Error("R must be [N, E] = [%lld, %lld], got shape %s", static_cast<long long>(s.N),
                   static_cast<long long>(E), DimsString(R.dims).c_str());
    if (B.Rank() != 2 || B.dims[0] != E || B.dims[1] != s.M)
      return Error("B must be [E, M] = [%lld, %lld], got shape %s", static_cast<long long>(E),
                   static_cast<long long>(s.M), DimsString(B.dims).c_str());
    const int64_t wsize = s.w_size, M = s.M;
    const float* w = W.data;
    return conv.Run(ctx, call, true, [&](SampleConv::Chunk* c) -> OrtStatus* {
      const int64_t n0 = c->n0, nb = c->n1 - c->n0;
      float* out = c->w_buf;
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
          c->m_buf[i * M + m] = acc;
        }
      }
      c->Use(out, wsize, c->m_buf, M);
      return nullptr;
    });
  }
};

}  // namespace

const OrtCustomOp* MixtureConvOp() { return CustomOpOf<SampleKernel<MixtureConvDef>>(); }

}  // namespace dynconv
