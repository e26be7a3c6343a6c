// dynconv: per-sample convolution through ONNX Runtime's own convolution kernels (see sample_conv.h).
#include "sample_conv.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#endif

namespace dynconv {

namespace {

constexpr const char* kNchwcDomain = "com.microsoft.nchwc";

// Owns the OrtOpAttr objects made for CreateOp.
struct AttrList {
  std::vector<OrtOpAttr*> attrs;
  ~AttrList() {
    for (OrtOpAttr* a : attrs) g_ort->ReleaseOpAttr(a);
  }
  OrtStatus* Ints(const char* name, const std::vector<int64_t>& v) {
    if (v.empty()) return nullptr;  // absent: ONNX Runtime fills the default for the input's rank
    OrtOpAttr* a = nullptr;
    DC_TRY(g_ort->CreateOpAttr(name, v.data(), static_cast<int>(v.size()), ORT_OP_ATTR_INTS, &a));
    attrs.push_back(a);
    return nullptr;
  }
  OrtStatus* Int(const char* name, int64_t v) {
    OrtOpAttr* a = nullptr;
    DC_TRY(g_ort->CreateOpAttr(name, &v, 1, ORT_OP_ATTR_INT, &a));
    attrs.push_back(a);
    return nullptr;
  }
};

OrtStatus* MakeOp(const OrtKernelInfo* info, const char* name, const char* domain, int version,
                  const AttrList& list, int n_in, OrtOp** op) {
  const char* type_names[] = {"T"};
  const ONNXTensorElementDataType type_values[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};
  return g_ort->CreateOp(info, name, domain, version, type_names, type_values, 1, list.attrs.data(),
                         static_cast<int>(list.attrs.size()), n_in, 1, op);
}

bool Rank2Compatible(const ConvAttrs& a) {
  return (a.strides.empty() || a.strides.size() == 2) && (a.pads.empty() || a.pads.size() == 4) &&
         (a.dilations.empty() || a.dilations.size() == 2);
}


}  // namespace

SampleConv::~SampleConv() {
  if (g_ort == nullptr) return;
  if (conv_ != nullptr) g_ort->ReleaseOp(conv_);
  if (nchwc_conv_ != nullptr) g_ort->ReleaseOp(nchwc_conv_);
  if (reorder_in_ != nullptr) g_ort->ReleaseOp(reorder_in_);
  for (auto& e : reorder_out_) g_ort->ReleaseOp(e.second);
  for (auto& e : grouped_) g_ort->ReleaseOp(e.second);
  if (info_ != nullptr) g_ort->ReleaseKernelInfo(const_cast<OrtKernelInfo*>(info_));
  if (mem_ != nullptr) g_ort->ReleaseMemoryInfo(mem_);
}

OrtStatus* SampleConv::Init(const OrtKernelInfo* info, const ops::OpSpec& op) {
  op_ = &op;
  DC_TRY(attrs_.Read(info, op));
  DC_TRY(epilogue_.Read(attrs_.values));
  const char* trace = std::getenv("DYNCONV_ORT_TRACE");
  trace_ = trace != nullptr && trace[0] != '\0' && trace[0] != '0';
  if (const char* cf = std::getenv("DYNCONV_ORT_CHUNK_FLOATS")) {
    const long long v = std::atoll(cf);
    if (v > 0) chunk_floats_ = v;
  }
  if (const char* bf = std::getenv("DYNCONV_ORT_MIX_BLOCK_FLOATS")) {
    const long long v = std::atoll(bf);
    if (v > 0) block_floats_ = v;
  }
  if (const char* cf = std::getenv("DYNCONV_ORT_BLOCKED_CHUNK_FLOATS")) {
    const long long v = std::atoll(cf);
    if (v > 0) blocked_chunk_floats_ = v;
  }
  DC_TRY(g_ort->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &mem_));
  {  // a copy of the node's info, for the ops made at run time (grouped convs, ReorderOutput)
    OrtKernelInfo* copy = nullptr;
    DC_TRY(g_ort->CopyKernelInfo(info, &copy));
    info_ = copy;
  }
  AttrList list;
  DC_TRY(list.Ints("strides", attrs_.strides));
  DC_TRY(list.Ints("pads", attrs_.pads));
  DC_TRY(list.Ints("dilations", attrs_.dilations));
  DC_TRY(list.Int("group", attrs_.group));
  if (attrs_.transpose) {
    DC_TRY(list.Ints("output_padding", attrs_.output_padding));
    // Opset 11 has the current definition of both ops (later versions only add types).
    return MakeOp(info, "ConvTranspose", "", 11, list, 3, &conv_);
  }
  DC_TRY(MakeOp(info, "Conv", "", 11, list, 3, &conv_));
  // The NCHWc kernels exist only where MLAS has them (x86-64 with AVX and up, some ARM builds); without them
  // every call takes the plain path.
  if (Rank2Compatible(attrs_)) {
    OrtStatus* s = MakeOp(info, "Conv", kNchwcDomain, 1, list, 3, &nchwc_conv_);
    // A standalone node gets no schema defaults: every attribute the kernel reads is given.
    AttrList in_attrs;
    if (s == nullptr) s = in_attrs.Int("channels_last", 0);
    if (s == nullptr) s = MakeOp(info, "ReorderInput", kNchwcDomain, 1, in_attrs, 1, &reorder_in_);
    if (s != nullptr) {
      if (trace_) std::fprintf(stderr, "dynconv: no NCHWc kernels: %s\n", g_ort->GetErrorMessage(s));
      g_ort->ReleaseStatus(s);
      if (nchwc_conv_ != nullptr) g_ort->ReleaseOp(nchwc_conv_);
      if (reorder_in_ != nullptr) g_ort->ReleaseOp(reorder_in_);
      nchwc_conv_ = reorder_in_ = nullptr;
    }
  }
  return nullptr;
}

OrtStatus* SampleConv::Invoke(OrtKernelContext* ctx, const OrtOp* op, const float* const* in,
                              const std::vector<int64_t>* in_dims, int n_in, float* out,
                              const std::vector<int64_t>& out_dims) const {
  OrtValue* values[4] = {nullptr, nullptr, nullptr, nullptr};
  auto count = [](const std::vector<int64_t>& d) {
    int64_t n = 1;
    for (int64_t x : d) n *= x;
    return n;
  };
  auto make = [&](int i, const float* data, const std::vector<int64_t>& dims) -> OrtStatus* {
    return g_ort->CreateTensorWithDataAsOrtValue(mem_, const_cast<float*>(data), count(dims) * sizeof(float),
                                                 dims.data(), dims.size(), ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                                 &values[i]);
  };
  OrtStatus* st = nullptr;
  for (int i = 0; i < n_in && st == nullptr; ++i) st = make(i, in[i], in_dims[i]);
  if (st == nullptr) st = make(n_in, out, out_dims);
  if (st == nullptr) {
    const OrtValue* inputs[3] = {values[0], values[1], values[2]};
    st = g_ort->InvokeOp(ctx, op, inputs, n_in, &values[n_in], 1);
  }
  for (OrtValue* v : values)
    if (v != nullptr) g_ort->ReleaseValue(v);
  return st;
}

int64_t SampleConv::BlockSize(OrtKernelContext* ctx) const {
  int64_t b = block_.load(std::memory_order_relaxed);
  if (b != 0) return b;
  // Probe MLAS's NCHWc block size with ReorderInput on X[1, 64, 1, 2] = 0, 1, 2, ...: in the blocked layout
  // [C/B][H][W][B] the element X[c=0, w=1] (value 1) lands at offset B.
  b = -1;
  if (reorder_in_ != nullptr) {
    float x[128], y[128];
    for (int i = 0; i < 128; ++i) {
      x[i] = static_cast<float>(i);
      y[i] = -1.f;
    }
    const std::vector<int64_t> dims = {1, 64, 1, 2};
    const float* in[1] = {x};
    OrtStatus* s = Invoke(ctx, reorder_in_, in, &dims, 1, y, dims);
    if (s != nullptr) {
      if (trace_) std::fprintf(stderr, "dynconv: NCHWc block size probe failed: %s\n", g_ort->GetErrorMessage(s));
      g_ort->ReleaseStatus(s);
    } else {
      for (int64_t cand : {4, 8, 16, 32, 64})
        if (y[cand] == 1.f && y[1] == 2.f) b = cand;
    }
  }
  block_.store(b, std::memory_order_relaxed);
  return b;
}

OrtStatus* SampleConv::ReorderOutputOp(int64_t channels, const OrtOp** op) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& e : reorder_out_)
    if (e.first == channels) {
      *op = e.second;
      return nullptr;
    }
  AttrList list;
  DC_TRY(list.Int("channels", channels));
  DC_TRY(list.Int("channels_last", 0));
  OrtOp* made = nullptr;
  DC_TRY(MakeOp(info_, "ReorderOutput", kNchwcDomain, 1, list, 1, &made));
  reorder_out_.emplace_back(channels, made);
  *op = made;
  return nullptr;
}

OrtStatus* SampleConv::GroupedConvOp(int64_t groups, bool nchwc, const OrtOp** op) const {
  if (groups == attrs_.group) {
    *op = nchwc ? nchwc_conv_ : conv_;
    return nullptr;
  }
  // keyed by the group count, negative for the NCHWc op
  const int64_t key = nchwc ? -groups : groups;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& e : grouped_)
    if (e.first == key) {
      *op = e.second;
      return nullptr;
    }
  AttrList list;
  DC_TRY(list.Ints("strides", attrs_.strides));
  DC_TRY(list.Ints("pads", attrs_.pads));
  DC_TRY(list.Ints("dilations", attrs_.dilations));
  DC_TRY(list.Int("group", groups));
  if (attrs_.transpose) DC_TRY(list.Ints("output_padding", attrs_.output_padding));
  OrtOp* made = nullptr;
  if (nchwc) DC_TRY(MakeOp(info_, "Conv", kNchwcDomain, 1, list, 3, &made));
  else DC_TRY(MakeOp(info_, attrs_.transpose ? "ConvTranspose" : "Conv", "", 11, list, 3, &made));
  grouped_.emplace_back(key, made);
  *op = made;
  return nullptr;
}

OrtStatus* SampleConv::CheckShapes(OrtKernelContext* ctx, const std::vector<int64_t>& x_dims,
                                   const std::vector<int64_t>& w_dims, Shapes* out) const {
  const int rank = static_cast<int>(x_dims.size()) - 2;
  if (rank < 1 || rank > kMaxRank) return Error("X must have rank 3 to 5, got shape %s", DimsString(x_dims).c_str());
  if (w_dims.size() != x_dims.size())
    return Error("the weight of one sample must have rank %zu, got shape %s", x_dims.size(),
                 DimsString(w_dims).c_str());
  Shapes& s = *out;
  DC_TRY(attrs_.Resolve(rank, &s.geo));
  const int64_t g = s.geo.group;
  s.N = x_dims[0];
  s.C = x_dims[1];
  if (s.C % g != 0)
    return Error("group %lld does not divide the %lld input channels", static_cast<long long>(g),
                 static_cast<long long>(s.C));
  if (s.geo.transpose) {
    if (w_dims[0] != s.C)
      return Error("transposed weight %s must have %lld input channels on axis 0", DimsString(w_dims).c_str(),
                   static_cast<long long>(s.C));
    s.M = w_dims[1] * g;
  } else {
    if (w_dims[1] * g != s.C)
      return Error("weight %s does not match %lld input channels in %lld groups", DimsString(w_dims).c_str(),
                   static_cast<long long>(s.C), static_cast<long long>(g));
    s.M = w_dims[0];
    if (s.M % g != 0)
      return Error("group %lld does not divide the %lld output channels", static_cast<long long>(g),
                   static_cast<long long>(s.M));
  }
  s.x_dims = x_dims;
  s.w_dims = w_dims;
  s.y_dims = {s.N, s.M};
  s.x_sample = s.C;
  s.y_sample = s.M;
  s.w_size = 1;
  for (int64_t d : w_dims) s.w_size *= d;
  for (int i = 0; i < rank; ++i) {
    const int64_t k = w_dims[2 + i];
    if (k < 1) return Error("kernel size must be >= 1");
    const int64_t o = s.geo.OutSize(i, x_dims[2 + i], k);
    if (o < 1)
      return Error("output size %lld on spatial axis %d is empty (input %lld, kernel %lld)",
                   static_cast<long long>(o), i, static_cast<long long>(x_dims[2 + i]), static_cast<long long>(k));
    s.y_dims.push_back(o);
    s.x_sample *= x_dims[2 + i];
    s.y_sample *= o;
  }

  // The NCHWc path: the conditions of ONNX Runtime's own NCHWc rewrite of a Conv.
  s.nchwc = false;
  if (rank == 2 && !s.geo.transpose && nchwc_conv_ != nullptr && s.N > 0) {
    const int64_t B = BlockSize(ctx);
    const int64_t cg = s.C / g, mg = s.M / g;
    bool ok = B > 1;
    s.reorder_input = true;
    s.filter_bo = false;
    if (ok && g > 1) {
      if (s.M % B != 0) ok = false;
      else if (cg == 1 && s.M == g) s.filter_bo = true;  // depthwise
      else if (cg % B != 0 || mg % B != 0) ok = false;
    } else if (ok) {
      if (s.C < B) {
        s.filter_bo = true;
        s.reorder_input = false;
      } else if (s.C % B != 0) {
        ok = false;
      }
    }
    if (ok) {
      s.nchwc = true;
      s.block = B;
      s.Mp = (s.M + B - 1) / B * B;
      s.packed_size = s.Mp * cg * (s.w_size / (s.M * cg));
    }
  }
  if (trace_)
    std::fprintf(stderr,
                 "dynconv: conv N=%lld C=%lld M=%lld group=%lld rank=%d transpose=%d -> %s (block %lld, %s filter%s)\n",
                 static_cast<long long>(s.N), static_cast<long long>(s.C), static_cast<long long>(s.M),
                 static_cast<long long>(g), rank, s.geo.transpose ? 1 : 0, s.nchwc ? "NCHWc" : "plain",
                 static_cast<long long>(s.block), s.filter_bo ? "OIHWBo" : "OIHWBiBo",
                 s.reorder_input ? "" : ", NCHW input");
  return nullptr;
}

namespace {

// W [M, Cg, KS] -> OIHWBiBo: [Mp/B][Cg/B][KS][B (input)][B (output)], zero-padded output channels.
void ReorderFilterBiBo(const float* w, float* d, int64_t M, int64_t cg, int64_t ks, int64_t B, int64_t ob) {
  const int64_t in_stride = cg * ks;  // between output channels
  float* dp = d + ob * B * cg * ks;
  for (int64_t ib = 0; ib < cg / B; ++ib)
    for (int64_t k = 0; k < ks; ++k)
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t i = ib * B + bi;
        for (int64_t bo = 0; bo < B; ++bo) {
          const int64_t o = ob * B + bo;
          *dp++ = o < M ? w[o * in_stride + i * ks + k] : 0.f;
        }
      }
}

// W [M, Cg, KS] -> OIHWBo: [Mp/B][Cg][KS][B (output)], zero-padded output channels.
void ReorderFilterBo(const float* w, float* d, int64_t M, int64_t cg, int64_t ks, int64_t B, int64_t ob) {
  const int64_t in_stride = cg * ks;
  float* dp = d + ob * B * cg * ks;
  for (int64_t i = 0; i < cg; ++i)
    for (int64_t k = 0; k < ks; ++k)
      for (int64_t bo = 0; bo < B; ++bo) {
        const int64_t o = ob * B + bo;
        *dp++ = o < M ? w[o * in_stride + i * ks + k] : 0.f;
      }
}

}  // namespace

void SampleConv::PackFilter(const Shapes& s, const float* w, float* d) {
  const int64_t cg = s.w_dims[1], ks = s.w_dims[2] * s.w_dims[3];
  for (int64_t ob = 0; ob < s.Mp / s.block; ++ob) {
    if (s.filter_bo) ReorderFilterBo(w, d, s.M, cg, ks, s.block, ob);
    else ReorderFilterBiBo(w, d, s.M, cg, ks, s.block, ob);
  }
}

int64_t SampleConv::ChunkSamples(const Shapes& s, int64_t extra_per_sample, bool packed) const {
  const int64_t kBudget = chunk_floats_;
  int64_t per = extra_per_sample;
  if (s.nchwc) {
    const int64_t cg = s.w_dims[1], ks = s.w_dims[2] * s.w_dims[3];
    per += (s.reorder_input ? s.x_sample : 0) + (packed ? 0 : s.Mp * cg * ks) + s.Mp + s.Mp * (s.y_sample / s.M);
  }
  if (per <= 0) return s.N > 0 ? s.N : 1;
  const int64_t n = kBudget / per;
  return n < 1 ? 1 : (n > s.N ? (s.N > 0 ? s.N : 1) : n);
}

OrtStatus* SampleConv::RunChunk(OrtKernelContext* ctx, const Shapes& s, int64_t n0, int64_t n1, const float* x,
                                const float* w, int64_t w_stride, const float* b, int64_t b_stride, bool packed,
                                float* y, Scratch* scratch, const Epilogue& epi) const {
  const int64_t nb = n1 - n0;
  if (nb <= 0) return nullptr;
  std::vector<int64_t> x1 = s.x_dims, y1 = s.y_dims;
  x1[0] = 1;
  y1[0] = 1;
  if (!s.nchwc) {
    // The chunk's samples as the groups of one grouped conv: X [1, nb * C, *D], W [nb * M, C/g, *K] (transposed
    // [nb * C, M/g, *K]), B [nb * M] -> Y [1, nb * M, *O], which is Y [nb, M, *O]. The weights of the chunk are
    // one after the other (w_stride is one weight); a shared bias is repeated per sample.
    const float* bias = b;
    if (b_stride != s.M) {
      if (scratch->br.size() < nb * s.M) DC_TRY(scratch->br.Alloc(ctx, nb * s.M));
      for (int64_t i = 0; i < nb; ++i) std::memcpy(scratch->br.get() + i * s.M, b + i * b_stride, s.M * sizeof(float));
      bias = scratch->br.get();
    }
    const OrtOp* op = nullptr;
    DC_TRY(GroupedConvOp(nb * s.geo.group, false, &op));
    std::vector<int64_t> xg = x1, wg = s.w_dims, yg = y1;
    xg[1] *= nb;
    wg[0] *= nb;
    yg[1] *= nb;
    const std::vector<int64_t> dims[3] = {xg, wg, {nb * s.M}};
    const float* in[3] = {x + n0 * s.x_sample, w, bias};
    if (w_stride != s.w_size) return Error("internal: the weights of a chunk must be one after the other");
    if (trace_) std::fprintf(stderr, "dynconv: samples %lld..%lld: one conv, group %lld\n", static_cast<long long>(n0),
                             static_cast<long long>(n1), static_cast<long long>(nb * s.geo.group));
    DC_TRY(Invoke(ctx, op, in, dims, 3, y + n0 * s.y_sample, yg));
    return epi.Any() ? epi.ApplySamples(ctx, y, n0, n1, s.M, s.y_sample / s.M) : nullptr;
  }

  const int64_t B = s.block, Mp = s.Mp, M = s.M, cg = s.w_dims[1], ks = s.w_dims[2] * s.w_dims[3];
  const int64_t wr_size = Mp * cg * ks, yr_sample = Mp * (s.y_sample / M);
  if (scratch->samples < nb) {
    if (s.reorder_input) DC_TRY(scratch->xr.Alloc(ctx, nb * s.x_sample));
    if (!packed) {
      DC_TRY(scratch->wr.Alloc(ctx, nb * wr_size));
      DC_TRY(scratch->br.Alloc(ctx, nb * Mp));
    }
    DC_TRY(scratch->yr.Alloc(ctx, nb * yr_sample));
    scratch->samples = nb;
  }
  std::vector<int64_t> yrc = s.y_dims;
  yrc[0] = nb;
  yrc[1] = Mp;
  // 1. the chunk's input in NCHWc layout
  const float* xin = nullptr;
  DC_TRY(ReorderChunkInput(ctx, s, n0, n1, x, scratch, &xin));
  // 2. the chunk's weights in the block layout, biases padded to Mp (unless the op built them so)
  const float* wp = w;
  const float* bp = b;
  int64_t wp_stride = w_stride, bp_stride = b_stride;
  if (!packed) {
    float* wr = scratch->wr.get();
    float* br = scratch->br.get();
    const int64_t blocks = Mp / B;
    const bool bo = s.filter_bo;
    auto reorder = [&](size_t t) {
      const int64_t i = static_cast<int64_t>(t) / blocks, ob = static_cast<int64_t>(t) % blocks;
      const float* wi = w + i * w_stride;
      float* di = wr + i * wr_size;
      if (bo) ReorderFilterBo(wi, di, M, cg, ks, B, ob);
      else ReorderFilterBiBo(wi, di, M, cg, ks, B, ob);
      if (ob == 0) {
        const float* bi = b + i * b_stride;
        for (int64_t m = 0; m < Mp; ++m) br[i * Mp + m] = m < M ? bi[m] : 0.f;
      }
    };
    const size_t tasks = static_cast<size_t>(nb * blocks);
    DC_TRY(ParallelFor(ctx, tasks, 2.0 * static_cast<double>(nb * wr_size), reorder));  // ~2 cycles a float gathered
    wp = wr;
    bp = br;
    wp_stride = wr_size;
    bp_stride = Mp;
  }
  // 3. ONNX Runtime's NCHWc convolution: with a reordered input, the chunk's samples as the groups of one grouped
  // conv (in the block layout [nb, C/B, H, W, B] is [1, nb * C/B, H, W, B], and the samples' block-layout weights
  // and padded biases one after the other are those of [nb * Mp, C/g, *K]: no output block spans two samples);
  // with the NCHW input (group 1 only), one sample at a time.
  std::vector<int64_t> yr1 = yrc;
  yr1[0] = 1;
  if (s.reorder_input && nb > 1 && wp_stride == wr_size && bp_stride == Mp) {
    const OrtOp* op = nullptr;
    DC_TRY(GroupedConvOp(nb * s.geo.group, true, &op));
    std::vector<int64_t> xg = x1;
    xg[1] *= nb;
    yr1[1] *= nb;
    const std::vector<int64_t> dims[3] = {xg, {nb * Mp, cg, s.w_dims[2], s.w_dims[3]}, {nb * Mp}};
    const float* in[3] = {xin, wp, bp};
    if (trace_) std::fprintf(stderr, "dynconv: samples %lld..%lld: one NCHWc conv, group %lld\n", static_cast<long long>(n0),
                             static_cast<long long>(n1), static_cast<long long>(nb * s.geo.group));
    DC_TRY(Invoke(ctx, op, in, dims, 3, scratch->yr.get(), yr1));
  } else {
    if (trace_) std::fprintf(stderr, "dynconv: samples %lld..%lld: NCHWc conv per sample\n", static_cast<long long>(n0),
                             static_cast<long long>(n1));
    const std::vector<int64_t> dims[3] = {x1, {Mp, cg, s.w_dims[2], s.w_dims[3]}, {Mp}};
    for (int64_t i = 0; i < nb; ++i) {
      const float* in[3] = {xin + i * s.x_sample, wp + i * wp_stride, bp + i * bp_stride};
      DC_TRY(Invoke(ctx, nchwc_conv_, in, dims, 3, scratch->yr.get() + i * yr_sample, yr1));
    }
  }
  // 4. back to NCHW, straight into Y
  return ReorderChunkOutput(ctx, s, n0, n1, y, scratch, epi);
}

OrtStatus* SampleConv::ReorderChunkInput(OrtKernelContext* ctx, const Shapes& s, int64_t n0, int64_t n1,
                                         const float* x, Scratch* scratch, const float** xin) const {
  // (C is a multiple of B here, so no channel padding)
  *xin = x + n0 * s.x_sample;
  if (!s.reorder_input) return nullptr;
  std::vector<int64_t> xc = s.x_dims;
  xc[0] = n1 - n0;
  const float* in[1] = {*xin};
  DC_TRY(Invoke(ctx, reorder_in_, in, &xc, 1, scratch->xr.get(), xc));
  *xin = scratch->xr.get();
  return nullptr;
}

OrtStatus* SampleConv::ReorderChunkOutput(OrtKernelContext* ctx, const Shapes& s, int64_t n0, int64_t n1, float* y,
                                          Scratch* scratch, const Epilogue& epi) const {
  const OrtOp* reorder_out = nullptr;
  DC_TRY(ReorderOutputOp(s.M, &reorder_out));
  std::vector<int64_t> yrc = s.y_dims, yc = s.y_dims;
  yrc[0] = yc[0] = n1 - n0;
  yrc[1] = s.Mp;
  const float* yin[1] = {scratch->yr.get()};
  DC_TRY(Invoke(ctx, reorder_out, yin, &yrc, 1, y + n0 * s.y_sample, yc));
  return epi.Any() ? epi.ApplySamples(ctx, y, n0, n1, s.M, s.y_sample / s.M) : nullptr;
}

namespace {

// One output block of NCHWc, src [P][B], to NCHW: its first `nch` channels, dst [nch][P] (planes P apart).
void UnpackBlockScalar(const float* __restrict src, int64_t B, int64_t P, int64_t p0, int64_t nch,
                       float* __restrict dst) {
  for (int64_t c = 0; c < nch; ++c)
    for (int64_t p = p0; p < P; ++p) dst[c * P + p] = src[p * B + c];
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// B = 8 with AVX2: 8 pixels x 8 channels at a time, transposed in registers.
__attribute__((target("avx2"))) void UnpackBlock8Avx2(const float* __restrict src, int64_t P, float* __restrict dst) {
  int64_t p = 0;
  for (; p + 8 <= P; p += 8) {
    const float* s = src + p * 8;
    const __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + 8), r2 = _mm256_loadu_ps(s + 16),
                 r3 = _mm256_loadu_ps(s + 24), r4 = _mm256_loadu_ps(s + 32), r5 = _mm256_loadu_ps(s + 40),
                 r6 = _mm256_loadu_ps(s + 48), r7 = _mm256_loadu_ps(s + 56);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * P + p, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * P + p, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * P + p, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * P + p, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * P + p, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * P + p, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * P + p, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * P + p, _mm256_permute2f128_ps(u3, u7, 0x31));
  }
  UnpackBlockScalar(src, 8, P, p, 8, dst);
}
#endif

void UnpackBlock(const float* src, int64_t B, int64_t P, int64_t nch, float* dst) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  static const bool avx2 = HostSimd() != Simd::kBaseline;
  if (avx2 && B == 8 && nch == 8) return UnpackBlock8Avx2(src, P, dst);
#endif
  UnpackBlockScalar(src, B, P, 0, nch, dst);
}

}  // namespace

int64_t SampleConv::BlockRange(const Shapes& s, int64_t samples) const {
  // at least 4 blocks, in fours: MLAS's NCHWc kernels compute up to 4 output blocks in one pass over the input
  // (a range of 1 block made EfficientNet-B0's 1152->192 layer at batch 8 1.75x slower)
  const int64_t per = std::max<int64_t>(1, samples) * BlockFloats(s);
  const int64_t fit = std::max<int64_t>(4, block_floats_ / per / 4 * 4);
  return std::min<int64_t>(s.Mp / s.block, fit);
}

OrtStatus* SampleConv::RunChunkBlocked(OrtKernelContext* ctx, const Shapes& s, int64_t n0, int64_t n1,
                                       const float* x, FillBlocks fill_fn, const void* fill, float* y,
                                       Scratch* scratch, const Epilogue& epi) const {
  const int64_t nb = n1 - n0;
  if (nb <= 0) return nullptr;
  const int64_t B = s.block, Mp = s.Mp, cg = s.w_dims[1], blocks = Mp / B;
  const int64_t planes = s.y_sample / s.M;  // output pixels of a sample
  const int64_t range = BlockRange(s, nb), bf = BlockFloats(s);
  // (a last, smaller chunk may take longer ranges: each buffer is checked)
  auto need = [&](FloatBuffer* f, int64_t n) { return f->size() < n ? f->Alloc(ctx, n) : nullptr; };
  DC_TRY(need(&scratch->xr, nb * s.x_sample));
  DC_TRY(need(&scratch->wr, nb * range * bf));
  DC_TRY(need(&scratch->br, nb * range * B));
  DC_TRY(need(&scratch->yb, nb * range * B * planes));
  const float* xin = nullptr;
  DC_TRY(ReorderChunkInput(ctx, s, n0, n1, x, scratch, &xin));
  // Each range of output blocks: its weights for every sample of the chunk, then one NCHWc conv over the chunk
  // (its samples as the groups: the range's output is [nb][range][H][W][B]), then that output, still in cache,
  // back to NCHW in Y with the epilogue (no whole block-layout output, no separate ReorderOutput pass).
  const OrtOp* op = nullptr;
  DC_TRY(GroupedConvOp(nb, true, &op));
  std::vector<int64_t> xg = s.x_dims;
  xg[0] = 1;
  xg[1] *= nb;
  if (trace_)
    std::fprintf(stderr, "dynconv: samples %lld..%lld: NCHWc conv by output blocks, %lld of %lld blocks a range\n",
                 static_cast<long long>(n0), static_cast<long long>(n1), static_cast<long long>(range),
                 static_cast<long long>(blocks));
  for (int64_t ob0 = 0; ob0 < blocks; ob0 += range) {
    const int64_t ob1 = std::min(blocks, ob0 + range), mr = (ob1 - ob0) * B;
    DC_TRY(fill_fn(fill, n0, n1, ob0, ob1, scratch->wr.get(), scratch->br.get()));
    std::vector<int64_t> yg = s.y_dims;
    yg[0] = 1;
    yg[1] = nb * mr;
    const std::vector<int64_t> dims[3] = {xg, {nb * mr, cg, s.w_dims[2], s.w_dims[3]}, {nb * mr}};
    const float* in[3] = {xin, scratch->wr.get(), scratch->br.get()};
    const float* out = scratch->yb.get();
    DC_TRY(Invoke(ctx, op, in, dims, 3, scratch->yb.get(), yg));
    const int64_t nblk = ob1 - ob0, M = s.M;
    auto unpack = [&](size_t task) {
      const int64_t i = static_cast<int64_t>(task) / nblk, cb = ob0 + static_cast<int64_t>(task) % nblk;
      const int64_t m0 = cb * B, nch = std::min(B, M - m0);
      if (nch <= 0) return;
      float* dst = y + (n0 + i) * s.y_sample + m0 * planes;
      UnpackBlock(out + (i * nblk + (cb - ob0)) * B * planes, B, planes, nch, dst);
      if (epi.Any())
        for (int64_t c = 0; c < nch; ++c) epi.Apply(y, (n0 + i) * s.y_sample + (m0 + c) * planes, planes, m0 + c);
    };
    // cycles: about 1 a value moved, 2 more with a logistic epilogue
    DC_TRY(ParallelFor(ctx, static_cast<size_t>(nb * nblk), 3.0 * static_cast<double>(nb * mr * planes), unpack));
  }
  return nullptr;
}

}  // namespace dynconv
