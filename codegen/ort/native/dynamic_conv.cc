// dynconv: com.dynconv.DynamicConv — a convolution whose weights are given per sample (docs/ops.md).
// Inputs X [N, C, *D], W [N, *weight layout], B [N, M] or [M]; output Y [N, M, *O].
// Each sample runs through ONNX Runtime's own Conv / ConvTranspose (sample_conv.h).
#include <algorithm>

#include "sample_conv.h"

namespace dynconv {
namespace {

struct DynamicConvKernel {
  static constexpr const char* kName = "DynamicConv";
  static constexpr size_t kInputs = 3;
  SampleConv conv;

  OrtStatus* Init(const OrtKernelInfo* info) { return conv.Init(info, ops::kDynamicConv); }

  OrtStatus* Compute(OrtKernelContext* ctx) const {
    Tensor X, W, B, Y;
    DC_TRY(InputTensor(ctx, 0, "X", &X));
    DC_TRY(InputTensor(ctx, 1, "W", &W));
    DC_TRY(InputTensor(ctx, 2, "B", &B));
    if (X.Rank() < 3 || X.Rank() > 2 + kMaxRank)
      return Error("X must have rank 3 to 5, got shape %s", DimsString(X.dims).c_str());
    const Tensor* inputs[] = {&X, &W, &B};
    DC_TRY(CheckRanks(ops::kDynamicConv, X.Rank() - 2, inputs));
    if (W.Rank() != X.Rank() + 1 || W.dims[0] != X.dims[0])
      return Error("W must be [N, *weight layout] with N = %lld and rank %d, got shape %s",
                   static_cast<long long>(X.dims[0]), X.Rank() + 1, DimsString(W.dims).c_str());
    SampleConv::Shapes s;
    DC_TRY(conv.CheckShapes(ctx, X.dims, std::vector<int64_t>(W.dims.begin() + 1, W.dims.end()), &s));
    int64_t b_stride = 0;
    if (B.Rank() == 2 && B.dims[0] == s.N && B.dims[1] == s.M) {
      b_stride = s.M;
    } else if (!(B.Rank() == 1 && B.dims[0] == s.M)) {
      return Error("B must be [N, M] = [%lld, %lld] or [M], got shape %s", static_cast<long long>(s.N),
                   static_cast<long long>(s.M), DimsString(B.dims).c_str());
    }
    Epilogue epi;
    DC_TRY(conv.epilogue().Bind(ctx, kInputs, s.y_dims, &epi));
    DC_TRY(OutputTensor(ctx, 0, s.y_dims, &Y));
    SampleConv::Scratch scratch;
    const int64_t chunk = conv.ChunkSamples(s, 0);
    for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
      const int64_t n1 = std::min(s.N, n0 + chunk);
      DC_TRY(conv.RunChunk(ctx, s, n0, n1, X.data, W.data + n0 * s.w_size, s.w_size, B.data + n0 * b_stride,
                           b_stride, Y.data, &scratch, epi));
    }
    return nullptr;
  }
};

}  // namespace

const OrtCustomOp* DynamicConvOp() {
  static CustomOp<DynamicConvKernel> op;
  return &op;
}

}  // namespace dynconv
