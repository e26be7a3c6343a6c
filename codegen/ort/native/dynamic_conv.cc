// dynconv: com.dynconv.DynamicConv — a convolution whose weights are given per sample (docs/ops.md).
// Inputs X [N, C, *D], W [N, *weight layout], B [N, M] or [M]; output Y [N, M, *O].
// Each sample runs through ONNX Runtime's own Conv / ConvTranspose (sample_conv.h).
#include "sample_conv.h"

namespace dynconv {
namespace {

struct DynamicConvDef {
  static constexpr const ops::OpSpec& kOp = ops::kDynamicConv;

  OrtStatus* Read(const AttrValues&) { return nullptr; }

  static OrtStatus* SampleWeight(const Tensor* in, std::vector<int64_t>* w_dims) {
    const Tensor &X = in[0], &W = in[1];
    if (W.Rank() != X.Rank() + 1 || W.dims[0] != X.dims[0])
      return Error("W must be [N, *weight layout] with N = %lld and rank %d, got shape %s",
                   static_cast<long long>(X.dims[0]), X.Rank() + 1, DimsString(W.dims).c_str());
    w_dims->assign(W.dims.begin() + 1, W.dims.end());
    return nullptr;
  }

  OrtStatus* Convolve(OrtKernelContext* ctx, const SampleConv& conv, const SampleConv::Call& call) const {
    const Tensor &W = call.in[1], &B = call.in[2];
    const SampleConv::Shapes& s = call.s;
    int64_t b_stride = 0;
    if (B.Rank() == 2 && B.dims[0] == s.N && B.dims[1] == s.M) {
      b_stride = s.M;
    } else if (!(B.Rank() == 1 && B.dims[0] == s.M)) {
      return Error("B must be [N, M] = [%lld, %lld] or [M], got shape %s", static_cast<long long>(s.N),
                   static_cast<long long>(s.M), DimsString(B.dims).c_str());
    }
    return conv.Run(ctx, call, false, [&](SampleConv::Chunk* c) -> OrtStatus* {
      c->Use(W.data + c->n0 * s.w_size, s.w_size, B.data + c->n0 * b_stride, b_stride);
      return nullptr;
    });
  }
};

}  // namespace

const OrtCustomOp* DynamicConvOp() { return CustomOpOf<SampleKernel<DynamicConvDef>>(); }

}  // namespace dynconv
