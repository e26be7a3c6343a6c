// dynconv: com.dynconv.ModulatedConv — StyleGAN2 weight modulation / demodulation (docs/ops.md).
// Inputs X [N, C, *D], S [N, C], W [weight layout] (shared), B [M]; attributes demodulate (default 1),
// epsilon (default 1e-8). Per sample: Wn = W * S[n] on the input-channel axis; with demodulate, each output
// channel of Wn is divided by sqrt(sum of its squares + epsilon). Then ONNX Runtime's own Conv / ConvTranspose.
#include <algorithm>
#include <cmath>

#include "sample_conv.h"

namespace dynconv {
namespace {

struct ModulatedConvDef {
  static constexpr const ops::OpSpec& kOp = ops::kModulatedConv;
  bool demodulate = true;
  float epsilon = 1e-8f;

  OrtStatus* Read(const AttrValues& values) {
    demodulate = values.Int("demodulate") == 1;
    epsilon = static_cast<float>(values.Float("epsilon"));
    return nullptr;
  }

  static OrtStatus* SampleWeight(const Tensor* in, std::vector<int64_t>* w_dims) {
    *w_dims = in[2].dims;  // shared by every sample
    return nullptr;
  }

  OrtStatus* Convolve(OrtKernelContext* ctx, const SampleConv& conv, const SampleConv::Call& call) const {
    const Tensor &S = call.in[1], &W = call.in[2], &B = call.in[3];
    const SampleConv::Shapes& s = call.s;
    if (S.Rank() != 2 || S.dims[0] != s.N || S.dims[1] != s.C)
      return Error("S must be [N, C] = [%lld, %lld], got shape %s", static_cast<long long>(s.N),
                   static_cast<long long>(s.C), DimsString(S.dims).c_str());
    if (B.Rank() != 1 || B.dims[0] != s.M)
      return Error("B must be [M] = [%lld], got shape %s", static_cast<long long>(s.M), DimsString(B.dims).c_str());

    const int64_t g = s.geo.group, C = s.C, M = s.M, wsize = s.w_size;
    int64_t ksize = 1;  // prod(K)
    for (size_t i = 2; i < s.w_dims.size(); ++i) ksize *= s.w_dims[i];
    const int64_t cg = C / g, mg = M / g;
    const float* w = W.data;
    const float eps = epsilon;
    const bool demod = demodulate;
    const bool small = wsize < (int64_t{1} << 15);  // per sample: not worth waking the pool row by row
    return conv.Run(ctx, call, true, [&](SampleConv::Chunk* chunk) -> OrtStatus* {
      const int64_t n0 = chunk->n0, nb = chunk->n1 - chunk->n0;
      float* out = chunk->w_buf;
      auto run = [&](int64_t rows, const auto& body) -> OrtStatus* {
        if (small && nb * wsize < (int64_t{1} << 16)) {
          body(0, rows);
          return nullptr;
        }
        return ParallelRange(ctx, rows, small ? std::max<int64_t>(1, rows / 64) : 4, body);
      };
      if (!s.geo.transpose) {
        // [M, C/g, *K]: output channel m is one contiguous row; its input channel c' is (m / (M/g)) * C/g + c'.
        const int64_t row = cg * ksize;
        DC_TRY(run(nb * M, [&](int64_t r0, int64_t r1) {
          for (int64_t rr = r0; rr < r1; ++rr) {
            const int64_t i = rr / M, m = rr % M;
            const float* st = S.data + (n0 + i) * C + (m / mg) * cg;
            const float* wr = w + m * row;
            float* orow = out + i * wsize + m * row;
            double ss = 0.0;
            for (int64_t c = 0; c < cg; ++c) {
              const float sc = st[c];
              float part = 0.f;
              for (int64_t k = 0; k < ksize; ++k) {
                const float v = wr[c * ksize + k] * sc;
                orow[c * ksize + k] = v;
                part += v * v;
              }
              ss += part;
            }
            if (demod) {
              const float f = static_cast<float>(1.0 / std::sqrt(ss + static_cast<double>(eps)));
              for (int64_t j = 0; j < row; ++j) orow[j] *= f;
            }
          }
        }));
      } else {
        // [C, M/g, *K]: input channel c is a contiguous block; its output channels are (c / (C/g)) * M/g + m'.
        const int64_t block = mg * ksize;
        DC_TRY(run(nb * C, [&](int64_t r0, int64_t r1) {
          for (int64_t rr = r0; rr < r1; ++rr) {
            const int64_t i = rr / C, c = rr % C;
            const float sc = S.data[(n0 + i) * C + c];
            const float* src = w + c * block;
            float* dst = out + i * wsize + c * block;
            for (int64_t j = 0; j < block; ++j) dst[j] = src[j] * sc;
          }
        }));
        if (demod) {
          float* f = chunk->m_buf;
          DC_TRY(run(nb * M, [&](int64_t r0, int64_t r1) {
            for (int64_t rr = r0; rr < r1; ++rr) {
              const int64_t i = rr / M, m = rr % M, gi = m / mg, mi = m % mg;
              double ss = 0.0;
              for (int64_t c = gi * cg; c < (gi + 1) * cg; ++c) {
                const float* q = out + i * wsize + c * block + mi * ksize;
                float part = 0.f;
                for (int64_t k = 0; k < ksize; ++k) part += q[k] * q[k];
                ss += part;
              }
              f[rr] = static_cast<float>(1.0 / std::sqrt(ss + static_cast<double>(eps)));
            }
          }));
          DC_TRY(run(nb * C, [&](int64_t r0, int64_t r1) {
            for (int64_t rr = r0; rr < r1; ++rr) {
              const int64_t i = rr / C, c = rr % C, gi = c / cg;
              for (int64_t mi = 0; mi < mg; ++mi) {
                const float fm = f[i * M + gi * mg + mi];
                float* q = out + i * wsize + c * block + mi * ksize;
                for (int64_t k = 0; k < ksize; ++k) q[k] *= fm;
              }
            }
          }));
        }
      }
      chunk->Use(out, wsize, B.data, 0);
      return nullptr;
    });
  }
};

}  // namespace

const OrtCustomOp* ModulatedConvOp() { return CustomOpOf<SampleKernel<ModulatedConvDef>>(); }

}  // namespace dynconv
