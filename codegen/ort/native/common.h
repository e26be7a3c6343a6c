// dynconv: ONNX Runtime custom-op kernels for the com.dynconv operator set (docs/ops.md).
// Shared helpers: the OrtApi pointer, errors, tensors, attributes, the thread pool and the OrtCustomOp glue.
//
// Built against the ONNX Runtime 1.21 headers; asks for API version 17, so it loads into any ONNX Runtime >= 1.17.
// Only the C API is used, so no C++ wrapper exceptions cross the library boundary.
// Nothing here depends on a model: op and domain names are fixed constants.
#pragma once

#include <onnxruntime_c_api.h>

#include "dynconv_ops.h"  // generated from the op layer (codegen/ort/ops-header.ts)

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#define DYNCONV_EXPORT __attribute__((visibility("default")))

namespace dynconv {

constexpr const char* kDomain = "com.dynconv";
// The API version the library asks for and declares in its OrtCustomOp structs: 17 (ONNX Runtime 1.17), the
// lowest that has everything the kernels use (KernelContext_ParallelFor; OrtCustomOp's GetStartVersion/
// GetEndVersion and the V2 entry points). ONNX Runtime reads only the fields of that version, and newer headers
// only add at the end, so the library loads into any ONNX Runtime >= 1.17 whatever headers it is built with.
constexpr int kOrtApiVersion = 17;
static_assert(ORT_API_VERSION >= kOrtApiVersion, "build against the ONNX Runtime 1.17 headers or newer");

// Set by RegisterCustomOps before any kernel is created.
extern const OrtApi* g_ort;

// Returns an OrtStatus with ORT_INVALID_ARGUMENT (or `code`) and a printf-formatted message.
OrtStatus* Error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
OrtStatus* ErrorCode(OrtErrorCode code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Prefixes "com.dynconv.<op>: " to the message of `status` (which it releases).
OrtStatus* Prefixed(const char* op, OrtStatus* status);

#define DC_TRY(expr)                               \
  do {                                             \
    OrtStatus* dc_status_ = (expr);                \
    if (dc_status_ != nullptr) return dc_status_;  \
  } while (0)

// A non-owning view of a float32 tensor.
struct Tensor {
  float* data = nullptr;
  std::vector<int64_t> dims;
  int64_t Size() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  int Rank() const { return static_cast<int>(dims.size()); }
};

std::string DimsString(const std::vector<int64_t>& dims);

// Reads input `index` (named `name` in messages); it must be a float32 tensor.
OrtStatus* InputTensor(OrtKernelContext* ctx, size_t index, const char* name, Tensor* out);
// The most inputs a com.dynconv op has.
constexpr size_t kMaxInputs = 4;
// Reads every input of `op` into out[0 .. op.n_inputs), named in messages as the op layer names them.
OrtStatus* InputTensors(OrtKernelContext* ctx, const ops::OpSpec& op, Tensor* out);
// Checks the ranks of `inputs` (the op's inputs in order) for spatial rank `rank` against the op layer's table,
// with its message ("K has rank 4, expected 5 (K [N, G, prod(kernel_shape), *O]; G divides C)").
OrtStatus* CheckRanks(const ops::OpSpec& op, int rank, const Tensor* const* inputs);
// Allocates output `index` with `dims`.
OrtStatus* OutputTensor(OrtKernelContext* ctx, size_t index, const std::vector<int64_t>& dims, Tensor* out);

// Attributes. An attribute that is absent (or not readable as the asked type) reads as absent.
bool AttrInts(const OrtKernelInfo* info, const char* name, std::vector<int64_t>* out);
bool AttrInt(const OrtKernelInfo* info, const char* name, int64_t* out);
bool AttrFloat(const OrtKernelInfo* info, const char* name, float* out);

constexpr int kMaxRank = ops::kMaxSpatialRank;
// The epilogue's optional inputs after every op's own (OS, OB, Z: docs/ops.md).
constexpr size_t kEpilogueInputs = 3;

// The attributes of one node, read at kernel creation through the op layer's table (dynconv_ops.h): a required
// one must be there, each given one must hold values its check allows. Lists are checked against the spatial
// rank by CheckLengths once it is known. Absent attributes read as their defaults.
class AttrValues {
 public:
  OrtStatus* Read(const OrtKernelInfo* info, const ops::OpSpec& op);
  // Every given list has the length the op layer gives for spatial rank `rank`.
  OrtStatus* CheckLengths(int rank) const;
  int64_t Int(const char* name) const;
  double Float(const char* name) const;
  // The list as given (empty when absent).
  const std::vector<int64_t>& Given(const char* name) const;
  // The list as given, or the default for spatial rank `rank`.
  std::vector<int64_t> IntsOr(const char* name, int rank) const;

 private:
  static constexpr int kMaxAttrs = 16;
  int Index(const char* name) const;
  const ops::OpSpec* op_ = nullptr;
  bool given_[kMaxAttrs] = {};
  std::vector<int64_t> ints_[kMaxAttrs];
  double scalar_[kMaxAttrs] = {};
};

// The vector instruction sets the hand-written kernels are compiled for (x86-64; elsewhere only kBaseline).
enum class Simd { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };
// The best one this CPU and OS support (AVX2 needs FMA too; AVX-512 needs the OS to save its registers),
// capped by $DYNCONV_ORT_SIMD (baseline, avx2 or avx512: to test the other paths). Detected once.
Simd HostSimd();
const char* SimdName(Simd simd);

// Conv attributes of docs/ops.md, resolved for one spatial rank (defaults filled in).
struct ConvGeometry {
  int rank = 0;
  int64_t strides[kMaxRank] = {1, 1, 1};
  int64_t pads_begin[kMaxRank] = {0, 0, 0};
  int64_t pads_end[kMaxRank] = {0, 0, 0};
  int64_t dilations[kMaxRank] = {1, 1, 1};
  int64_t output_padding[kMaxRank] = {0, 0, 0};
  int64_t group = 1;
  bool transpose = false;
  // Output size of `axis` for an input of size `in` and a kernel of size `k` (may be <= 0: invalid).
  int64_t OutSize(int axis, int64_t in, int64_t k) const;
};

// The conv attributes as written on the node (absent lists stay empty); read at kernel creation.
struct ConvAttrs {
  AttrValues values;  // every attribute of the op, as read
  std::vector<int64_t> strides, pads, dilations, output_padding;
  int64_t group = 1;
  bool transpose = false;
  OrtStatus* Read(const OrtKernelInfo* info, const ops::OpSpec& op);
  // Checks the lists against `rank` and fills in the defaults.
  OrtStatus* Resolve(int rank, ConvGeometry* g) const;
};

// A float buffer from the kernel context's allocator (ONNX Runtime's CPU arena, which keeps its memory between
// calls: no page faults on every call as with malloc of large blocks). Freed when it goes out of scope.
// Small buffers (up to 256 KiB) come from a cache of blocks the library's buffers freed (common.cc): a small
// layer's call takes six buffers, and ONNX Runtime's allocator (a wrapper made per request, its arena's lock)
// cost a third of such a call's instructions.
class FloatBuffer {
 public:
  FloatBuffer() = default;
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;
  ~FloatBuffer() { Reset(); }
  // (Re)allocates `count` floats (contents undefined), 64-byte aligned.
  OrtStatus* Alloc(OrtKernelContext* ctx, int64_t count);
  float* get() const { return data_; }
  int64_t size() const { return size_; }

 private:
  void Reset();
  OrtAllocator* allocator_ = nullptr;
  float* data_ = nullptr;
  int64_t size_ = 0;
  bool malloced_ = false;
  size_t cached_bytes_ = 0;  // > 0: a block of this size class from the small-block cache
};

// Runs fn(i) for i in [0, total) on ONNX Runtime's intra-op thread pool of this kernel context.
// fn must not throw.
template <typename F>
OrtStatus* ParallelFor(OrtKernelContext* ctx, size_t total, const F& fn) {
  if (total == 0) return nullptr;
  if (total == 1) {
    fn(size_t{0});
    return nullptr;
  }
  return g_ort->KernelContext_ParallelFor(
      ctx, [](void* p, size_t i) { (*static_cast<const F*>(p))(i); }, total, 0,
      const_cast<void*>(static_cast<const void*>(&fn)));
}

// The least work worth a task of its own on the pool, in estimated CPU cycles. A loop of less than two such
// tasks runs on the calling thread, as ONNX Runtime's own cost model keeps loops of under ~110k cycles there
// (TryParallelFor: Eigen's TensorCostModel, 100k cycles to start a parallel section and 100k per added thread):
// waking a pool thread, handing it the task and waiting for it costs microseconds, more than such work takes,
// and on a loaded machine the woken thread may not run at once (measured: the fixture CondConv/DY-CNN network
// at batch 1 ran slower at 2 threads than at 1 while its small epilogues went to the pool).
constexpr double kMinTaskWork = 50000;

template <typename F>
OrtStatus* ParallelFor(OrtKernelContext* ctx, size_t total, double work, const F& fn) {
  if (total == 0) return nullptr;
  const double fit = work / kMinTaskWork;
  const size_t tasks = fit < 2.0 ? 1 : (fit >= static_cast<double>(total) ? total : static_cast<size_t>(fit));
  if (tasks <= 1) {
    for (size_t i = 0; i < total; ++i) fn(i);
    return nullptr;
  }
  if (tasks == total) return ParallelFor(ctx, total, fn);
  auto task = [&](size_t t) {
    const size_t b = t * total / tasks, e = (t + 1) * total / tasks;
    for (size_t i = b; i < e; ++i) fn(i);
  };
  return ParallelFor(ctx, tasks, task);
}

// Splits [0, n) into chunks of at least `min_chunk` and runs fn(begin, end) on each, in parallel.
template <typename F>
OrtStatus* ParallelRange(OrtKernelContext* ctx, int64_t n, int64_t min_chunk, const F& fn) {
  if (n <= 0) return nullptr;
  if (min_chunk < 1) min_chunk = 1;
  int64_t chunks = (n + min_chunk - 1) / min_chunk;
  if (chunks > 256) chunks = 256;
  const int64_t per = (n + chunks - 1) / chunks;
  chunks = (n + per - 1) / per;
  if (chunks <= 1) {
    fn(int64_t{0}, n);
    return nullptr;
  }
  auto body = [&](size_t c) {
    const int64_t b = static_cast<int64_t>(c) * per;
    const int64_t e = b + per < n ? b + per : n;
    fn(b, e);
  };
  return ParallelFor(ctx, static_cast<size_t>(chunks), body);
}

// ParallelRange for a range of `work` cycles in all (kMinTaskWork): chunks also of at least kMinTaskWork, so
// that a small range runs on the calling thread.
template <typename F>
OrtStatus* ParallelRange(OrtKernelContext* ctx, int64_t n, int64_t min_chunk, double work, const F& fn) {
  if (n <= 0) return nullptr;
  const double per_item = work / static_cast<double>(n);
  if (per_item > 0) {
    const double need = kMinTaskWork / per_item;
    if (need > static_cast<double>(n)) min_chunk = n;
    else if (need > static_cast<double>(min_chunk)) min_chunk = static_cast<int64_t>(need + 0.999);
  }
  return ParallelRange(ctx, n, min_chunk, fn);
}

// OrtCustomOp glue. Kernel must have:
//   static constexpr const ops::OpSpec& kOp (its op in dynconv_ops.h: the name and the inputs);
//   OrtStatus* Init(const OrtKernelInfo*);  OrtStatus* Compute(OrtKernelContext*) const;
template <typename Kernel>
struct CustomOp : OrtCustomOp {
  static constexpr const char* kName = Kernel::kOp.name;
  static constexpr size_t kInputs = Kernel::kOp.n_inputs;
  static_assert(kInputs <= kMaxInputs, "raise kMaxInputs");
  CustomOp() {
    std::memset(static_cast<OrtCustomOp*>(this), 0, sizeof(OrtCustomOp));
    version = kOrtApiVersion;
    GetName = [](const OrtCustomOp*) -> const char* { return kName; };
    GetExecutionProviderType = [](const OrtCustomOp*) -> const char* { return nullptr; };  // CPU
    GetInputType = [](const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
    // The op's own inputs, then the epilogue's three optional ones (OS, OB, Z; a node has those its attributes ask for).
    GetInputTypeCount = [](const OrtCustomOp*) -> size_t { return kInputs + kEpilogueInputs; };
    GetOutputType = [](const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
    GetOutputTypeCount = [](const OrtCustomOp*) -> size_t { return 1; };
    GetInputCharacteristic = [](const OrtCustomOp*, size_t i) {
      return i < kInputs ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
    };
    GetOutputCharacteristic = [](const OrtCustomOp*, size_t) { return INPUT_OUTPUT_REQUIRED; };
    GetInputMemoryType = [](const OrtCustomOp*, size_t) { return OrtMemTypeDefault; };
    GetVariadicInputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicInputHomogeneity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputMinArity = [](const OrtCustomOp*) { return 1; };
    GetVariadicOutputHomogeneity = [](const OrtCustomOp*) { return 1; };
    GetStartVersion = [](const OrtCustomOp*) { return 1; };
    GetEndVersion = [](const OrtCustomOp*) { return 2147483647; };
    // The V2 entry points report errors as OrtStatus; CreateKernel/KernelCompute stay null so ORT uses them.
    CreateKernelV2 = [](const OrtCustomOp*, const OrtApi*, const OrtKernelInfo* info, void** out) -> OrtStatusPtr {
      *out = nullptr;
      try {
        std::unique_ptr<Kernel> k(new Kernel());
        OrtStatus* s = k->Init(info);
        if (s != nullptr) return Prefixed(kName, s);
        *out = k.release();
        return nullptr;
      } catch (const std::bad_alloc&) {
        return ErrorCode(ORT_FAIL, "com.dynconv.%s: out of memory", kName);
      } catch (const std::exception& e) {
        return ErrorCode(ORT_FAIL, "com.dynconv.%s: %s", kName, e.what());
      }
    };
    KernelComputeV2 = [](void* k, OrtKernelContext* ctx) -> OrtStatusPtr {
      try {
        OrtStatus* s = static_cast<const Kernel*>(k)->Compute(ctx);
        return s == nullptr ? nullptr : Prefixed(kName, s);
      } catch (const std::bad_alloc&) {
        return ErrorCode(ORT_FAIL, "com.dynconv.%s: out of memory", kName);
      } catch (const std::exception& e) {
        return ErrorCode(ORT_FAIL, "com.dynconv.%s: %s", kName, e.what());
      }
    };
    KernelDestroy = [](void* k) { delete static_cast<Kernel*>(k); };
  }
};

// The one OrtCustomOp of a kernel type (what the library's XxxOp() functions return).
template <typename Kernel>
const OrtCustomOp* CustomOpOf() {
  static CustomOp<Kernel> op;
  return &op;
}

// Registers the ops in domain `domain_name` (com.dynconv, or one of the domains of further function bodies,
// com.dynconv.f<k>) on `options` (the body of RegisterCustomOps).
OrtStatus* RegisterOps(OrtSessionOptions* options, const OrtApiBase* api_base, const OrtCustomOp* const* ops,
                       size_t count, const char* domain_name = kDomain);

}  // namespace dynconv
