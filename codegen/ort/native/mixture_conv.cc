// dynconv: com.dynconv.MixtureConv — attention over E expert kernels (CondConv, DY-CNN) (docs/ops.md).
// Inputs X [N, C, *D], R [N, E], W [E, *weight layout], B [E, M]; output Y [N, M, *O].
// Per sample: Wn = sum_e R[n,e] W[e], Bn = sum_e R[n,e] B[e] (parallel over weight chunks), then ONNX Runtime's
// own Conv / ConvTranspose on the sample (sample_conv.h).
// When W is a constant of the model and the call takes the NCHWc path, the experts are put in the block layout
// once (on the first such call) and mixed in it: mixing is then one contiguous pass over the packed experts,
// and no per-call reorder of the mixed weights is left (the reorder, a strided gather, cost as much as the
// mixing itself on EfficientNet's 1x1 layers).
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <utility>

#include "sample_conv.h"

namespace dynconv {
namespace {

// o[j] = sum_k r[k] w[k * wsize + j] for j in [b, e), in runs that keep o[run] in L1 across the experts.
// Restrict pointers and local bounds let the compiler vectorise it (written inline in the lambda below, or
// inlined from here, it stayed scalar); AVX2 where the CPU has it (as the epilogue).
__attribute__((noinline)) DC_EPILOGUE_CLONES void MixExperts(const float* __restrict r, int64_t E,
                                                             const float* __restrict w, int64_t wsize,
                                                             float* __restrict o, int64_t b, int64_t e) {
  constexpr int64_t kRun = 1024;
  for (int64_t j0 = b; j0 < e; j0 += kRun) {
    const int64_t j1 = std::min(e, j0 + kRun);
    const float r0 = r[0];
    for (int64_t j = j0; j < j1; ++j) o[j] = r0 * w[j];
    for (int64_t k = 1; k < E; ++k) {
      const float rk = r[k];
      const float* __restrict wk = w + k * wsize;
      for (int64_t j = j0; j < j1; ++j) o[j] += rk * wk[j];
    }
  }
}

// The same for a fixed number of experts: each output written once, its E terms summed in a register (the loop
// above loads and stores o once per expert, which counts where the experts come from cache: the blocked path's
// samples after the first).
template <int E>
__attribute__((noinline)) DC_EPILOGUE_CLONES void MixExpertsE(const float* __restrict r, const float* __restrict w,
                                                              int64_t wsize, float* __restrict o, int64_t b,
                                                              int64_t e) {
  float rk[E];
  const float* __restrict wk[E];
  for (int k = 0; k < E; ++k) {
    rk[k] = r[k];
    wk[k] = w + k * wsize;
  }
  for (int64_t j = b; j < e; ++j) {
    float acc = rk[0] * wk[0][j];
    for (int k = 1; k < E; ++k) acc += rk[k] * wk[k][j];
    o[j] = acc;
  }
}

void Mix(const float* r, int64_t E, const float* w, int64_t wsize, float* o, int64_t b, int64_t e) {
  switch (E) {
    case 2: return MixExpertsE<2>(r, w, wsize, o, b, e);
    case 3: return MixExpertsE<3>(r, w, wsize, o, b, e);
    case 4: return MixExpertsE<4>(r, w, wsize, o, b, e);
    case 5: return MixExpertsE<5>(r, w, wsize, o, b, e);
    case 6: return MixExpertsE<6>(r, w, wsize, o, b, e);
    case 8: return MixExpertsE<8>(r, w, wsize, o, b, e);
    default: return MixExperts(r, E, w, wsize, o, b, e);
  }
}

// Mixes `nb` samples' weights: out[i][j] = sum_k r[i][k] w[k][j] for j < wsize, over the pool when large. Split
// over the weight index, every sample of a piece mixed in turn: the experts' piece is read from memory once for
// the chunk and from cache for the other samples (sample by sample, the experts of a large layer were read
// again from memory for every sample).
// `len` floats of each expert from w (experts `wstride` apart) into out + i * len for each sample i < nb.
OrtStatus* MixWeights(OrtKernelContext* ctx, const float* r, int64_t E, const float* w, int64_t wstride, int64_t len,
                      int64_t nb, float* out) {
  constexpr int64_t kPiece = 2048;  // floats of each expert per piece (E * 8 KiB read: stays in L2)
  auto mix = [&](int64_t j0, int64_t j1) {
    for (int64_t b = j0; b < j1; b += kPiece) {
      const int64_t e = std::min(j1, b + kPiece);
      for (int64_t i = 0; i < nb; ++i) Mix(r + i * E, E, w, wstride, out + i * len, b, e);
    }
  };
  // cycles: about 0.5 a multiply-add (8 lanes, 2 FMAs a cycle, bound by reading the experts); small: on the
  // calling thread
  return ParallelRange(ctx, len, std::max<int64_t>(kPiece, 16384 / nb), 0.5 * static_cast<double>(nb * len * E), mix);
}

// Whether a call with packed experts mixes them by ranges of output blocks, each just before its convolution
// (SampleConv::RunBlocked), rather than the whole weights of a chunk first: where the experts are large.
// $DYNCONV_ORT_MIX_BLOCKED=0 / 1 turns it off / on for every layer that can take it.
bool MixesByBlocks(const SampleConv::Shapes& s, int64_t E) {
  if (!SampleConv::CanRunBlocked(s)) return false;
  static const int forced = [] {
    const char* v = std::getenv("DYNCONV_ORT_MIX_BLOCKED");
    return v == nullptr || v[0] == '\0' ? -1 : (v[0] == '0' ? 0 : 1);
  }();
  if (forced >= 0) return forced == 1;
  constexpr int64_t kMinExpertFloats = int64_t{1} << 16;  // 256 KiB of experts
  return E * s.packed_size >= kMinExpertFloats;
}

// The experts of a constant W in the NCHWc block layout of one call's shapes (SampleConv::PackFilter).
struct PackedExperts {
  int64_t block = 0, packed_size = 0;
  bool filter_bo = false;
  std::vector<int64_t> w_dims;
  std::vector<float> w;  // [E][packed_size]
  bool Fits(const SampleConv::Shapes& s) const {
    return s.block == block && s.packed_size == packed_size && s.filter_bo == filter_bo && s.w_dims == w_dims;
  }
};

struct MixtureConvDef {
  static constexpr const ops::OpSpec& kOp = ops::kMixtureConv;

  const float* w_const = nullptr;  // W's data when W is a constant of the model
  mutable std::mutex mu;
  // Made on the first NCHWc call with w_const and never replaced, so the raw pointers handed out stay valid for the
  // kernel's life. (Not a shared_ptr: its atomic count pulls in glibc 2.32's __libc_single_threaded, which the
  // portable library must not need.)
  mutable std::unique_ptr<const PackedExperts> packed;

  OrtStatus* Read(const AttrValues&) { return nullptr; }

  OrtStatus* Constants(const OrtKernelInfo* info) {
    int is_constant = 0;
    const OrtValue* v = nullptr;
    OrtStatus* st = g_ort->KernelInfoGetConstantInput_tensor(info, 2, &is_constant, &v);
    if (st != nullptr) {  // not knowable here: every call mixes from W as given
      g_ort->ReleaseStatus(st);
      return nullptr;
    }
    if (is_constant == 0 || v == nullptr) return nullptr;
    void* data = nullptr;
    DC_TRY(g_ort->GetTensorMutableData(const_cast<OrtValue*>(v), &data));
    w_const = static_cast<const float*>(data);
    return nullptr;
  }

  static OrtStatus* SampleWeight(const Tensor* in, std::vector<int64_t>* w_dims) {
    const Tensor &X = in[0], &W = in[2];
    if (W.Rank() != X.Rank() + 1)
      return Error("W must be [E, *weight layout] of rank %d, got shape %s", X.Rank() + 1,
                   DimsString(W.dims).c_str());
    if (W.dims[0] < 1) return Error("W must hold at least one expert, got shape %s", DimsString(W.dims).c_str());
    w_dims->assign(W.dims.begin() + 1, W.dims.end());
    return nullptr;
  }

  // The packed experts for this call, or null when the call mixes from W as given.
  const PackedExperts* Packed(OrtKernelContext* ctx, const SampleConv::Shapes& s, const Tensor& W) const {
    if (!s.nchwc || w_const == nullptr || W.data != w_const) return nullptr;
    std::lock_guard<std::mutex> lock(mu);
    if (packed != nullptr) return packed->Fits(s) ? packed.get() : nullptr;
    auto p = std::make_unique<PackedExperts>();
    p->block = s.block;
    p->packed_size = s.packed_size;
    p->filter_bo = s.filter_bo;
    p->w_dims = s.w_dims;
    const int64_t E = W.dims[0];
    p->w.resize(static_cast<size_t>(E * s.packed_size));
    OrtStatus* st = ParallelFor(ctx, static_cast<size_t>(E), 2.0 * static_cast<double>(E * s.packed_size), [&](size_t e) {
      SampleConv::PackFilter(s, W.data + static_cast<int64_t>(e) * s.w_size, p->w.data() + static_cast<int64_t>(e) * s.packed_size);
    });
    if (st != nullptr) {
      g_ort->ReleaseStatus(st);
      return nullptr;
    }
    packed = std::move(p);
    return packed.get();
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
    const int64_t M = s.M;
    const PackedExperts* pk = Packed(ctx, s, W);
    // packed: the experts in the block layout, biases padded with zeros to Mp
    const float* w = pk != nullptr ? pk->w.data() : W.data;
    const int64_t wsize = pk != nullptr ? s.packed_size : s.w_size, Mb = pk != nullptr ? s.Mp : M;
    if (pk != nullptr && MixesByBlocks(s, E)) {
      const int64_t bf = SampleConv::BlockFloats(s), Bk = s.block;
      return conv.RunBlocked(ctx, call, [&](int64_t n0, int64_t n1, int64_t ob0, int64_t ob1, float* wo, float* bo) -> OrtStatus* {
        const int64_t nb = n1 - n0, mr = (ob1 - ob0) * Bk;
        DC_TRY(MixWeights(ctx, R.data + n0 * E, E, w + ob0 * bf, wsize, (ob1 - ob0) * bf, nb, wo));
        for (int64_t i = 0; i < nb; ++i) {
          const float* r = R.data + (n0 + i) * E;
          for (int64_t j = 0; j < mr; ++j) {
            const int64_t m = ob0 * Bk + j;
            float acc = 0.f;
            if (m < M)
              for (int64_t k = 0; k < E; ++k) acc += r[k] * B.data[k * M + m];
            bo[i * mr + j] = acc;
          }
        }
        return nullptr;
      });
    }
    const auto kind = pk != nullptr ? SampleConv::Weights::kBuiltPacked : SampleConv::Weights::kBuilt;
    return conv.Run(ctx, call, kind, [&](SampleConv::Chunk* c) -> OrtStatus* {
      const int64_t n0 = c->n0, nb = c->n1 - c->n0;
      DC_TRY(MixWeights(ctx, R.data + n0 * E, E, w, wsize, wsize, nb, c->w_buf));
      for (int64_t i = 0; i < nb; ++i) {
        const float* r = R.data + (n0 + i) * E;
        for (int64_t m = 0; m < Mb; ++m) {
          float acc = 0.f;
          if (m < M)
            for (int64_t k = 0; k < E; ++k) acc += r[k] * B.data[k * M + m];
          c->m_buf[i * Mb + m] = acc;
        }
      }
      c->Use(c->w_buf, wsize, c->m_buf, Mb);
      return nullptr;
    });
  }
};

}  // namespace

const OrtCustomOp* MixtureConvOp() { return CustomOpOf<SampleKernel<MixtureConvDef>>(); }

}  // namespace dynconv
