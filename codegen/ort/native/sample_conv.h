// dynconv: one convolution per sample, run by ONNX Runtime's own convolution kernels (MLAS) through the
// custom-op API's op invocation (OrtApi::CreateOp + InvokeOp). DynamicConv, MixtureConv and ModulatedConv build
// the per-sample weights and hand each sample to it.
//
// Two paths:
//  - NCHWc (2-D, not transposed, channel counts that suit the block size B of this machine's MLAS: 8 or 16):
//    the same kernels ONNX Runtime itself uses for a Conv with constant weights after its NCHWc graph rewrite:
//    com.microsoft.nchwc ReorderInput -> com.microsoft.nchwc Conv (weights reordered here, per sample, into
//    the OIHWBiBo / OIHWBo block layouts) -> com.microsoft.nchwc ReorderOutput.
//  - otherwise ONNX's Conv / ConvTranspose (opset 11).
// Either way a chunk of samples is one convolution: the samples as the groups of one grouped conv (X [1, n * C,
// *D], weights [n * M, C/g, *K], group n * g), as the unfused grouped-conv export runs them: one op invocation
// per chunk, not one per sample (on small layers the invocations are much of a call's cost), and one parallel
// section for ONNX Runtime's conv to split over its threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <type_traits>
#include <utility>

#include "common.h"
#include "epilogue.h"

namespace dynconv {

class SampleConv {
 public:
  SampleConv() = default;
  SampleConv(const SampleConv&) = delete;
  SampleConv& operator=(const SampleConv&) = delete;
  ~SampleConv();

  // Reads the attributes of the node (op `op` of dynconv_ops.h) and creates ONNX Runtime's kernels with them.
  OrtStatus* Init(const OrtKernelInfo* info, const ops::OpSpec& op);

  const ConvAttrs& attrs() const { return attrs_; }

  // The shapes of one call, checked against each other (weights in ONNX layout, without the batch axis), and
  // the path the call takes.
  struct Shapes {
    ConvGeometry geo;
    int64_t N = 0, C = 0, M = 0;
    std::vector<int64_t> x_dims;  // [N, C, *D]
    std::vector<int64_t> w_dims;  // one sample's weight: [M, C/g, *K] or, transposed, [C, M/g, *K]
    std::vector<int64_t> y_dims;  // [N, M, *O]
    int64_t x_sample = 0, w_size = 0, y_sample = 0;
    // NCHWc path
    bool nchwc = false;
    int64_t block = 0, Mp = 0;  // block size; M rounded up to it
    bool reorder_input = true;  // false: the NCHW input is read directly (group 1, C < block)
    bool filter_bo = false;     // OIHWBo filter layout (depthwise, or NCHW input) instead of OIHWBiBo
    int64_t packed_size = 0;    // floats of one sample's weight in that block layout: Mp * C/g * prod(K)
  };
  // One call of the op: its inputs in the op layer's order (X first) and their checked shapes.
  struct Call {
    Tensor in[kMaxInputs];
    Shapes s;
  };
  // Reads the op's inputs and checks them: the rank of X and of every input (the op layer's table), then the
  // conv shapes, with one sample's weight shape as `sample_weight(&w_dims)` gives it (an OrtStatus*:
  // it may refuse the inputs). The op's own checks of its other inputs follow, then Run.
  template <typename F>
  OrtStatus* Begin(OrtKernelContext* ctx, Call* call, const F& sample_weight) const;

  // What the op's weights callback gives Run: weights in the inputs (kGiven), weights it builds in the chunk's
  // buffers in ONNX layout (kBuilt), or, on the NCHWc path only, in the block layout with biases padded to Mp
  // (kBuiltPacked: no reorder of the weights per call; see PackFilter).
  enum class Weights { kGiven, kBuilt, kBuiltPacked };
  // A chunk of samples [n0, n1) and what it convolves with: W_n at w + (n - n0) * w_stride, B_n (M values) at
  // b + (n - n0) * b_stride (a stride of 0 shares one).
  struct Chunk {
    int64_t n0 = 0, n1 = 0;
    float* w_buf = nullptr;  // built weights: room for the chunk's weights, [n1 - n0][w_size or packed_size],
    float* m_buf = nullptr;  // and for M (packed: Mp) floats a sample
    const float* w = nullptr;
    int64_t w_stride = 0;
    const float* b = nullptr;
    int64_t b_stride = 0;
    void Use(const float* weights, int64_t weight_stride, const float* bias, int64_t bias_stride) {
      w = weights;
      w_stride = weight_stride;
      b = bias;
      b_stride = bias_stride;
    }
  };
  // Allocates Y and convolves every sample, chunk by chunk: `weights(&chunk)` (an OrtStatus*) sets the chunk's
  // w and b (chunk.Use), pointing into the inputs or (builds_weights) into the chunk's buffers it fills.
  template <typename F>
  OrtStatus* Run(OrtKernelContext* ctx, const Call& call, Weights kind, const F& weights) const;
  template <typename F>
  OrtStatus* Run(OrtKernelContext* ctx, const Call& call, bool builds_weights, const F& weights) const {
    return Run(ctx, call, builds_weights ? Weights::kBuilt : Weights::kGiven, weights);
  }

  // Output blocks interleaved with their weights (RunBlocked): on the NCHWc path with a reordered input and group 1,
  // an op that builds the block-layout weights itself can fill them one range of output-channel blocks at a time,
  // for every sample of the chunk, right before that range's convolution. The range's weights then stay in cache
  // between being built and being read, and are never written out whole (EfficientNet-B0's CondConv 1x1 layers:
  // mixing the experts into the whole weights, then reading those back, was most of the gap to constant weights).
  static bool CanRunBlocked(const Shapes& s) { return s.nchwc && s.reorder_input && s.geo.group == 1; }
  // Floats of one output block (s.block output channels) of one sample's block-layout weights.
  static int64_t BlockFloats(const Shapes& s) { return s.block * (s.packed_size / s.Mp); }
  // `fill(n0, n1, ob0, ob1, w, b)` (an OrtStatus*) writes the block-layout weights of output blocks [ob0, ob1) of
  // samples [n0, n1) to w, [n1 - n0][(ob1 - ob0) * BlockFloats(s)], and their biases to b, [n1 - n0][(ob1 - ob0) *
  // s.block] (zero past M). Allocates Y and convolves every sample. Only where CanRunBlocked(call.s).
  template <typename F>
  OrtStatus* RunBlocked(OrtKernelContext* ctx, const Call& call, const F& fill) const;
  // How many output blocks a range of RunBlocked holds for a chunk of `samples` (the range's weights for all of
  // them: about half an L2 cache; $DYNCONV_ORT_MIX_BLOCK_FLOATS overrides the budget).
  int64_t BlockRange(const Shapes& s, int64_t samples) const;

  // One weight [M, C/g, *K] (ONNX layout, `s.w_dims`) in the NCHWc block layout of `s` (s.nchwc), s.packed_size
  // floats at `d`: what a kBuiltPacked callback hands Run (a linear combination of packed weights is the packed
  // linear combination, so an op may pack its constant weights once and mix them packed).
  static void PackFilter(const Shapes& s, const float* w, float* d);

 private:
  // `w_dims` is one sample's weight shape. Fills `out`, or returns an error naming the mismatch.
  OrtStatus* CheckShapes(OrtKernelContext* ctx, const std::vector<int64_t>& x_dims,
                         const std::vector<int64_t>& w_dims, Shapes* out) const;

  // Per-call scratch memory (one per Compute call; allocated on first use, reused for every chunk).
  struct Scratch {
    FloatBuffer xr, wr, br, yr;
    FloatBuffer yb;       // RunBlocked: a range's output in block layout for the chunk's samples
    int64_t samples = 0;  // how many samples the buffers hold
  };

  // How many samples to handle per chunk, so that the chunk's scratch (reordered input and output, weights and
  // `extra_per_sample` floats of the caller's) stays within a budget. At least 1.
  // `packed`: the op builds the block-layout weights itself (kBuiltPacked), from experts it streams through once
  // per chunk; they are left out of the budget, so that a batch of large layers is one chunk (the experts read
  // from memory once, not once a sample).
  int64_t ChunkSamples(const Shapes& s, int64_t extra_per_sample, bool packed = false) const;

  // Y[n] = Conv(X[n], W_n) + B_n for the samples n in [n0, n1). x and y point at the whole batch; W_n is at
  // w + (n - n0) * w_stride, B_n (M values) at b + (n - n0) * b_stride (a stride of 0 shares one).
  // ONNX Runtime's thread pool runs inside each step; the NCHWc path reorders the chunk's input, weights and
  // output in one parallel step each. Stateless apart from `scratch`: safe for concurrent Compute calls.
  // `epi` (the call's epilogue, bound to its inputs) is applied to each sample's output once written.
  // `packed`: W_n and B_n are already in the NCHWc block layout (PackFilter; Mp biases).
  OrtStatus* RunChunk(OrtKernelContext* ctx, const Shapes& s, int64_t n0, int64_t n1, const float* x,
                      const float* w, int64_t w_stride, const float* b, int64_t b_stride, bool packed, float* y,
                      Scratch* scratch, const Epilogue& epi) const;

  // RunBlocked's chunk: `fill` is the op's callback behind a plain function pointer.
  using FillBlocks = OrtStatus* (*)(const void* fill, int64_t n0, int64_t n1, int64_t ob0, int64_t ob1, float* w,
                                    float* b);
  OrtStatus* RunChunkBlocked(OrtKernelContext* ctx, const Shapes& s, int64_t n0, int64_t n1, const float* x,
                             FillBlocks fill_fn, const void* fill, float* y, Scratch* scratch,
                             const Epilogue& epi) const;
  // The NCHWc path's steps around the conv: the chunk's input in block layout (returns where it is), and the
  // block-layout output (scratch->yr) back to NCHW in Y with the epilogue.
  OrtStatus* ReorderChunkInput(OrtKernelContext* ctx, const Shapes& s, int64_t n0, int64_t n1, const float* x,
                               Scratch* scratch, const float** xin) const;
  OrtStatus* ReorderChunkOutput(OrtKernelContext* ctx, const Shapes& s, int64_t n0, int64_t n1, float* y,
                                Scratch* scratch, const Epilogue& epi) const;

  OrtStatus* Invoke(OrtKernelContext* ctx, const OrtOp* op, const float* const* in,
                    const std::vector<int64_t>* in_dims, int n_in, float* out,
                    const std::vector<int64_t>& out_dims) const;
  int64_t BlockSize(OrtKernelContext* ctx) const;
  OrtStatus* ReorderOutputOp(int64_t channels, const OrtOp** op) const;
  // The conv (nchwc: com.microsoft.nchwc Conv; else Conv / ConvTranspose) with group `groups` (a chunk of
  // groups / g samples), made on first use.
  OrtStatus* GroupedConvOp(int64_t groups, bool nchwc, const OrtOp** op) const;

  const ops::OpSpec* op_ = nullptr;
  ConvAttrs attrs_;
  Epilogue epilogue_;
  const OrtKernelInfo* info_ = nullptr;  // a copy (CopyKernelInfo), for ops made at run time
  OrtOp* conv_ = nullptr;                // Conv or ConvTranspose
  OrtOp* nchwc_conv_ = nullptr;          // com.microsoft.nchwc Conv (null: no NCHWc path)
  OrtOp* reorder_in_ = nullptr;          // com.microsoft.nchwc ReorderInput
  mutable std::mutex mu_;                // guards reorder_out_ and grouped_
  mutable std::vector<std::pair<int64_t, OrtOp*>> reorder_out_;  // ReorderOutput per channel count
  mutable std::vector<std::pair<int64_t, OrtOp*>> grouped_;      // convs per group count (GroupedConvOp)
  mutable std::atomic<int64_t> block_{0};  // MLAS NCHWc block size: 0 not probed yet, -1 unusable
  OrtMemoryInfo* mem_ = nullptr;
  // Scratch budget of one chunk of samples, in floats ($DYNCONV_ORT_CHUNK_FLOATS overrides): about an L2
  // cache, so that a sample's reordered input and output are still cached when the next step reads them
  // (measured: whole-batch chunks are up to 1.8x slower on memory-bound depthwise layers).
  int64_t chunk_floats_ = int64_t{1} << 18;
  // RunBlocked's budget for a range's weights (all the chunk's samples), in floats: 512 KiB ($DYNCONV_ORT_MIX_BLOCK_FLOATS).
  int64_t block_floats_ = int64_t{1} << 17;
  // RunBlocked's budget of a chunk's input in block layout, in floats: 4 MiB ($DYNCONV_ORT_BLOCKED_CHUNK_FLOATS).
  // Larger than chunk_floats_: the experts are read once per chunk, and each range reads the whole input.
  int64_t blocked_chunk_floats_ = int64_t{1} << 20;
  bool trace_ = false;  // $DYNCONV_ORT_TRACE: print the path of every call on stderr
};

// Whether Op has OrtStatus* Constants(const OrtKernelInfo*).
template <typename Op, typename = void>
struct HasConstants : std::false_type {};
template <typename Op>
struct HasConstants<Op, std::void_t<decltype(std::declval<Op&>().Constants(std::declval<const OrtKernelInfo*>()))>>
    : std::true_type {};

// The kernel (for CustomOp) of an op that convolves each sample with weights of its own. Op has
//   static constexpr const ops::OpSpec& kOp;
//   OrtStatus* Read(const AttrValues&): its own attributes, beyond the conv's;
//   optionally OrtStatus* Constants(const OrtKernelInfo*): a look at the inputs that are constants of the model;
//   static OrtStatus* SampleWeight(const Tensor* in, std::vector<int64_t>* w_dims): one sample's weight shape;
//   OrtStatus* Convolve(OrtKernelContext*, const SampleConv&, const SampleConv::Call&) const: the checks of its
//   other inputs, then conv.Run with the weights of each chunk.
template <typename Op>
struct SampleKernel {
  static constexpr const ops::OpSpec& kOp = Op::kOp;
  SampleConv conv;
  Op op;

  OrtStatus* Init(const OrtKernelInfo* info) {
    DC_TRY(conv.Init(info, kOp));
    if constexpr (HasConstants<Op>::value) DC_TRY(op.Constants(info));
    return op.Read(conv.attrs().values);
  }

  OrtStatus* Compute(OrtKernelContext* ctx) const {
    SampleConv::Call call;
    DC_TRY(conv.Begin(ctx, &call, [&](std::vector<int64_t>* w_dims) { return Op::SampleWeight(call.in, w_dims); }));
    return op.Convolve(ctx, conv, call);
  }
};

template <typename F>
OrtStatus* SampleConv::Begin(OrtKernelContext* ctx, Call* call, const F& sample_weight) const {
  Tensor* in = call->in;
  DC_TRY(InputTensors(ctx, *op_, in));
  const Tensor& X = in[0];
  if (X.Rank() < 3 || X.Rank() > 2 + kMaxRank)
    return Error("X must have rank 3 to 5, got shape %s", DimsString(X.dims).c_str());
  const Tensor* inputs[kMaxInputs] = {&in[0], &in[1], &in[2], &in[3]};
  DC_TRY(CheckRanks(*op_, X.Rank() - 2, inputs));
  std::vector<int64_t> w_dims;
  DC_TRY(sample_weight(&w_dims));
  return CheckShapes(ctx, X.dims, w_dims, &call->s);
}

template <typename F>
OrtStatus* SampleConv::Run(OrtKernelContext* ctx, const Call& call, Weights kind, const F& weights) const {
  const Shapes& s = call.s;
  const bool packed = kind == Weights::kBuiltPacked;
  if (packed && !s.nchwc) return Error("internal: packed weights off the NCHWc path");
  const bool builds_weights = kind != Weights::kGiven;
  const int64_t w_floats = packed ? s.packed_size : s.w_size, m_floats = packed ? s.Mp : s.M;
  Epilogue epi;  // the node's epilogue, bound to this call's inputs (after the op's own)
  DC_TRY(epilogue_.Bind(ctx, op_->n_inputs, s.y_dims, &epi));
  Tensor Y;
  DC_TRY(OutputTensor(ctx, 0, s.y_dims, &Y));
  if (s.N == 0) return nullptr;
  // (packed: the chunk's buffers are what the NCHWc step reads, so they are not counted twice)
  const int64_t chunk = ChunkSamples(s, builds_weights && !packed ? s.w_size + s.M : 0, packed);
  FloatBuffer w_buf, m_buf;
  if (builds_weights) {
    DC_TRY(w_buf.Alloc(ctx, std::min(chunk, s.N) * w_floats));
    DC_TRY(m_buf.Alloc(ctx, std::min(chunk, s.N) * m_floats));
  }
  Scratch scratch;
  for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
    Chunk c;
    c.n0 = n0;
    c.n1 = std::min(s.N, n0 + chunk);
    c.w_buf = w_buf.get();
    c.m_buf = m_buf.get();
    DC_TRY(weights(&c));
    DC_TRY(RunChunk(ctx, s, c.n0, c.n1, call.in[0].data, c.w, c.w_stride, c.b, c.b_stride, packed, Y.data,
                    &scratch, epi));
  }
  return nullptr;
}

template <typename F>
OrtStatus* SampleConv::RunBlocked(OrtKernelContext* ctx, const Call& call, const F& fill) const {
  const Shapes& s = call.s;
  if (!CanRunBlocked(s)) return Error("internal: output blocks interleaved off the NCHWc path");
  Epilogue epi;
  DC_TRY(epilogue_.Bind(ctx, op_->n_inputs, s.y_dims, &epi));
  Tensor Y;
  DC_TRY(OutputTensor(ctx, 0, s.y_dims, &Y));
  if (s.N == 0) return nullptr;
  const int64_t per = s.x_sample;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(s.N, blocked_chunk_floats_ / per));
  FillBlocks fn = [](const void* f, int64_t n0, int64_t n1, int64_t ob0, int64_t ob1, float* w, float* b) {
    return (*static_cast<const F*>(f))(n0, n1, ob0, ob1, w, b);
  };
  Scratch scratch;
  for (int64_t n0 = 0; n0 < s.N; n0 += chunk)
    DC_TRY(RunChunkBlocked(ctx, s, n0, std::min(s.N, n0 + chunk), call.in[0].data, fn, &fill, Y.data, &scratch, epi));
  return nullptr;
}

}  // namespace dynconv
