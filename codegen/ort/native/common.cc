// dynconv: shared helpers of the com.dynconv ONNX Runtime kernels (see common.h).
#include "common.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

// GCC >= 11 headers call std::__throw_bad_array_new_length from std::vector, which only libstdc++ 3.4.29 (GCC 11)
// exports; ONNX Runtime's own libonnxruntime needs no more than GLIBCXX_3.4.22. Defining it here (made local by
// the version script) keeps the library loadable wherever ONNX Runtime loads. It throws what libstdc++'s does.
#if defined(_GLIBCXX_RELEASE) && _GLIBCXX_RELEASE >= 11
namespace std {
void __throw_bad_array_new_length() { throw bad_array_new_length(); }
}  // namespace std
#endif

namespace dynconv {

const OrtApi* g_ort = nullptr;

static OrtStatus* VError(OrtErrorCode code, const char* fmt, va_list ap) {
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  return g_ort->CreateStatus(code, buf);
}

OrtStatus* Error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  OrtStatus* s = VError(ORT_INVALID_ARGUMENT, fmt, ap);
  va_end(ap);
  return s;
}

OrtStatus* ErrorCode(OrtErrorCode code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  OrtStatus* s = VError(code, fmt, ap);
  va_end(ap);
  return s;
}

OrtStatus* Prefixed(const char* op, OrtStatus* status) {
  std::string msg = std::string(kDomain) + "." + op + ": " + g_ort->GetErrorMessage(status);
  OrtErrorCode code = g_ort->GetErrorCode(status);
  g_ort->ReleaseStatus(status);
  return g_ort->CreateStatus(code, msg.c_str());
}

std::string DimsString(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

OrtStatus* InputTensor(OrtKernelContext* ctx, size_t index, const char* name, Tensor* out) {
  const OrtValue* value = nullptr;
  DC_TRY(g_ort->KernelContext_GetInput(ctx, index, &value));
  if (value == nullptr) return Error("input %s is missing", name);
  OrtTensorTypeAndShapeInfo* info = nullptr;
  DC_TRY(g_ort->GetTensorTypeAndShape(value, &info));
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  size_t rank = 0;
  OrtStatus* s = g_ort->GetTensorElementType(info, &type);
  if (s == nullptr) s = g_ort->GetDimensionsCount(info, &rank);
  if (s == nullptr) {
    out->dims.assign(rank, 0);
    s = g_ort->GetDimensions(info, out->dims.data(), rank);
  }
  g_ort->ReleaseTensorTypeAndShapeInfo(info);
  DC_TRY(s);
  if (type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) return Error("input %s must be float32", name);
  void* data = nullptr;
  DC_TRY(g_ort->GetTensorMutableData(const_cast<OrtValue*>(value), &data));
  out->data = static_cast<float*>(data);
  return nullptr;
}

OrtStatus* InputTensors(OrtKernelContext* ctx, const ops::OpSpec& op, Tensor* out) {
  for (size_t i = 0; i < op.n_inputs; ++i) DC_TRY(InputTensor(ctx, i, op.inputs[i].name, &out[i]));
  return nullptr;
}

OrtStatus* CheckRanks(const ops::OpSpec& op, int rank, const Tensor* const* inputs) {
  if (rank < ops::kMinSpatialRank || rank > ops::kMaxSpatialRank)
    return Error("spatial rank %d is not supported (%d to %d)", rank, ops::kMinSpatialRank, ops::kMaxSpatialRank);
  for (size_t i = 0; i < op.n_inputs; ++i) {
    const ops::InputSpec& in = op.inputs[i];
    const int* allowed = in.ranks[rank - 1];
    const int got = inputs[i]->Rank();
    if (got == allowed[0] || (allowed[1] != 0 && got == allowed[1])) continue;
    std::string want = std::to_string(allowed[0]);
    if (allowed[1] != 0) want += " or " + std::to_string(allowed[1]);
    return Error("%s has rank %d, expected %s (%s %s)", in.name, got, want.c_str(), in.name, in.layout);
  }
  return nullptr;
}

OrtStatus* OutputTensor(OrtKernelContext* ctx, size_t index, const std::vector<int64_t>& dims, Tensor* out) {
  OrtValue* value = nullptr;
  DC_TRY(g_ort->KernelContext_GetOutput(ctx, index, dims.data(), dims.size(), &value));
  void* data = nullptr;
  DC_TRY(g_ort->GetTensorMutableData(value, &data));
  out->data = static_cast<float*>(data);
  out->dims = dims;
  return nullptr;
}

namespace {

// The small-block cache of FloatBuffer: freed blocks of up to kMaxBytes, by power-of-two size class, at most
// kMaxCachedBytes in all (shared by the library's sessions and threads; freed when the library is unloaded).
class BlockCache {
 public:
  static constexpr size_t kMinBytes = 256, kMaxBytes = size_t{256} << 10, kMaxCachedBytes = size_t{4} << 20;
  static size_t SizeClass(size_t bytes) {
    size_t c = kMinBytes;
    while (c < bytes) c <<= 1;
    return c;
  }
  ~BlockCache() {
    for (size_t i = 0; i < count_; ++i) std::free(blocks_[i].p);
  }
  void* Take(size_t cls) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = count_; i-- > 0;) {
      if (blocks_[i].bytes != cls) continue;
      void* p = blocks_[i].p;
      blocks_[i] = blocks_[--count_];
      cached_ -= cls;
      return p;
    }
    return nullptr;
  }
  void Put(void* p, size_t cls) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (count_ < kSlots && cached_ + cls <= kMaxCachedBytes) {
        blocks_[count_++] = {p, cls};
        cached_ += cls;
        return;
      }
    }
    std::free(p);
  }

 private:
  static constexpr size_t kSlots = 64;
  struct Block {
    void* p;
    size_t bytes;
  };
  std::mutex mu_;
  Block blocks_[kSlots] = {};
  size_t count_ = 0, cached_ = 0;
};

BlockCache& SmallBlocks() {
  static BlockCache cache;
  return cache;
}

}  // namespace

void FloatBuffer::Reset() {
  if (data_ != nullptr) {
    if (cached_bytes_ > 0) SmallBlocks().Put(data_, cached_bytes_);
    else if (malloced_) std::free(data_);
    else allocator_->Free(allocator_, data_);
  }
  if (allocator_ != nullptr) g_ort->ReleaseAllocator(allocator_);
  allocator_ = nullptr;
  data_ = nullptr;
  size_ = 0;
  malloced_ = false;
  cached_bytes_ = 0;
}

OrtStatus* FloatBuffer::Alloc(OrtKernelContext* ctx, int64_t count) {
  Reset();
  const size_t bytes = ((static_cast<size_t>(count > 0 ? count : 1) * sizeof(float) + 63) / 64) * 64;
  if (bytes <= BlockCache::kMaxBytes) {
    const size_t cls = BlockCache::SizeClass(bytes);
    void* p = SmallBlocks().Take(cls);
    if (p == nullptr) p = std::aligned_alloc(64, cls);
    if (p == nullptr) return ErrorCode(ORT_FAIL, "out of memory (%zu bytes)", cls);
    data_ = static_cast<float*>(p);
    size_ = count;
    cached_bytes_ = cls;
    return nullptr;
  }
  static OrtMemoryInfo* cpu = [] {
    OrtMemoryInfo* m = nullptr;
    OrtStatus* s = g_ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &m);
    if (s != nullptr) g_ort->ReleaseStatus(s);
    return m;
  }();
  if (cpu != nullptr) {
    OrtStatus* s = g_ort->KernelContext_GetAllocator(ctx, cpu, &allocator_);
    if (s == nullptr && allocator_ != nullptr) {
      void* p = allocator_->Alloc(allocator_, bytes);
      if (p == nullptr) return ErrorCode(ORT_FAIL, "out of memory (%zu bytes)", bytes);
      data_ = static_cast<float*>(p);
      size_ = count;
      return nullptr;
    }
    if (s != nullptr) g_ort->ReleaseStatus(s);
    allocator_ = nullptr;
  }
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) return ErrorCode(ORT_FAIL, "out of memory (%zu bytes)", bytes);
  data_ = static_cast<float*>(p);
  size_ = count;
  malloced_ = true;
  return nullptr;
}

bool AttrInts(const OrtKernelInfo* info, const char* name, std::vector<int64_t>* out) {
  size_t size = 0;
  OrtStatus* s = g_ort->KernelInfoGetAttributeArray_int64(info, name, nullptr, &size);
  if (s != nullptr) {
    g_ort->ReleaseStatus(s);
    out->clear();
    return false;
  }
  out->assign(size, 0);
  if (size == 0) return true;
  s = g_ort->KernelInfoGetAttributeArray_int64(info, name, out->data(), &size);
  if (s != nullptr) {
    g_ort->ReleaseStatus(s);
    out->clear();
    return false;
  }
  out->resize(size);
  return true;
}

bool AttrInt(const OrtKernelInfo* info, const char* name, int64_t* out) {
  OrtStatus* s = g_ort->KernelInfoGetAttribute_int64(info, name, out);
  if (s == nullptr) return true;
  g_ort->ReleaseStatus(s);
  return false;
}

bool AttrFloat(const OrtKernelInfo* info, const char* name, float* out) {
  OrtStatus* s = g_ort->KernelInfoGetAttribute_float(info, name, out);
  if (s == nullptr) return true;
  g_ort->ReleaseStatus(s);
  return false;
}

const char* SimdName(Simd simd) {
  switch (simd) {
    case Simd::kAvx512: return "avx512";
    case Simd::kAvx2: return "avx2";
    default: return "baseline";
  }
}

// What the CPU and the OS support, from cpuid and xgetbv (no libgcc helpers: they would add a GCC_4.8.0 symbol
// version, newer than ONNX Runtime's own).
static Simd DetectSimd() {
#if defined(__x86_64__) && defined(__GNUC__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Simd::kBaseline;
  const bool osxsave = (c & bit_OSXSAVE) != 0, avx = (c & bit_AVX) != 0, fma = (c & bit_FMA) != 0;
  if (!osxsave || !avx) return Simd::kBaseline;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_state = (xcr0_lo & 0x6) == 0x6;     // SSE and AVX state
  const bool zmm_state = (xcr0_lo & 0xe6) == 0xe6;   // and opmask, ZMM0-15 upper halves, ZMM16-31
  if (__get_cpuid_max(0, nullptr) < 7) return Simd::kBaseline;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = (b & bit_AVX2) != 0, avx512f = (b & bit_AVX512F) != 0;
  if (!ymm_state || !avx2 || !fma) return Simd::kBaseline;
  return avx512f && zmm_state ? Simd::kAvx512 : Simd::kAvx2;
#else
  return Simd::kBaseline;
#endif
}

Simd HostSimd() {
  static const Simd simd = [] {
    Simd s = DetectSimd();
    if (const char* cap = std::getenv("DYNCONV_ORT_SIMD")) {
      Simd limit = s;
      if (std::strcmp(cap, "baseline") == 0) limit = Simd::kBaseline;
      else if (std::strcmp(cap, "avx2") == 0) limit = Simd::kAvx2;
      if (static_cast<int>(limit) < static_cast<int>(s)) s = limit;
    }
    return s;
  }();
  return simd;
}

int64_t ConvGeometry::OutSize(int axis, int64_t in, int64_t k) const {
  const int64_t s = strides[axis], d = dilations[axis], pb = pads_begin[axis], pe = pads_end[axis];
  if (transpose) return s * (in - 1) + output_padding[axis] + d * (k - 1) + 1 - pb - pe;
  const int64_t span = in + pb + pe - d * (k - 1) - 1;
  if (span < 0) return 0;
  return span / s + 1;
}

int AttrValues::Index(const char* name) const {
  for (size_t i = 0; op_ != nullptr && i < op_->n_attrs; ++i)
    if (std::strcmp(op_->attrs[i].name, name) == 0) return static_cast<int>(i);
  return -1;
}

OrtStatus* AttrValues::Read(const OrtKernelInfo* info, const ops::OpSpec& op) {
  op_ = &op;
  if (op.n_attrs > static_cast<size_t>(kMaxAttrs)) return ErrorCode(ORT_FAIL, "too many attributes in the op table");
  for (size_t i = 0; i < op.n_attrs; ++i) {
    const ops::AttrSpec& a = op.attrs[i];
    auto allowed = [&](double v) { return v >= a.min && v <= a.max; };
    if (a.kind == ops::AttrKind::kInts) {
      given_[i] = AttrInts(info, a.name, &ints_[i]);
      for (int64_t v : ints_[i])
        if (!allowed(static_cast<double>(v))) return Error("attribute %s %s", a.name, a.must);
    } else if (a.kind == ops::AttrKind::kInt) {
      int64_t v = 0;
      given_[i] = AttrInt(info, a.name, &v);
      scalar_[i] = given_[i] ? static_cast<double>(v) : a.default_value;
      if (given_[i] && !allowed(scalar_[i])) return Error("attribute %s %s", a.name, a.must);
    } else {
      float v = 0.f;
      given_[i] = AttrFloat(info, a.name, &v);
      scalar_[i] = given_[i] ? static_cast<double>(v) : a.default_value;
      if (given_[i] && (!std::isfinite(scalar_[i]) || !allowed(scalar_[i]))) return Error("attribute %s %s", a.name, a.must);
    }
    if (a.required && !given_[i]) return Error("attribute %s is required", a.name);
  }
  return nullptr;
}

OrtStatus* AttrValues::CheckLengths(int rank) const {
  if (rank < ops::kMinSpatialRank || rank > ops::kMaxSpatialRank)
    return Error("spatial rank %d is not supported (%d to %d)", rank, ops::kMinSpatialRank, ops::kMaxSpatialRank);
  for (size_t i = 0; op_ != nullptr && i < op_->n_attrs; ++i) {
    const ops::AttrSpec& a = op_->attrs[i];
    const size_t want = static_cast<size_t>(a.per_rank * rank);
    if (a.kind == ops::AttrKind::kInts && given_[i] && ints_[i].size() != want)
      return Error("attribute %s has %zu values, expected %zu for spatial rank %d", a.name, ints_[i].size(), want, rank);
  }
  return nullptr;
}

int64_t AttrValues::Int(const char* name) const {
  const int i = Index(name);
  return i < 0 ? 0 : static_cast<int64_t>(scalar_[i]);
}

double AttrValues::Float(const char* name) const {
  const int i = Index(name);
  return i < 0 ? 0.0 : scalar_[i];
}

const std::vector<int64_t>& AttrValues::Given(const char* name) const {
  static const std::vector<int64_t> kEmpty;
  const int i = Index(name);
  return i < 0 ? kEmpty : ints_[i];
}

std::vector<int64_t> AttrValues::IntsOr(const char* name, int rank) const {
  const int i = Index(name);
  if (i < 0) return {};
  if (given_[i]) return ints_[i];
  const ops::AttrSpec& a = op_->attrs[i];
  return std::vector<int64_t>(static_cast<size_t>(a.per_rank * rank), static_cast<int64_t>(a.default_value));
}

OrtStatus* ConvAttrs::Read(const OrtKernelInfo* info, const ops::OpSpec& op) {
  DC_TRY(values.Read(info, op));
  strides = values.Given("strides");
  pads = values.Given("pads");
  dilations = values.Given("dilations");
  output_padding = values.Given("output_padding");
  group = values.Int("group");
  transpose = values.Int("transpose") == 1;
  // Across attributes (the op layer's conv rules): output padding belongs to the transposed form.
  if (!transpose)
    for (int64_t x : output_padding)
      if (x != 0) return Error("output_padding needs transpose = 1");
  return nullptr;
}

OrtStatus* ConvAttrs::Resolve(int rank, ConvGeometry* g) const {
  DC_TRY(values.CheckLengths(rank));
  *g = ConvGeometry();
  g->rank = rank;
  g->group = group;
  g->transpose = transpose;
  for (int i = 0; i < rank; ++i) {
    if (!strides.empty()) g->strides[i] = strides[i];
    if (!dilations.empty()) g->dilations[i] = dilations[i];
    if (!pads.empty()) {
      g->pads_begin[i] = pads[i];
      g->pads_end[i] = pads[i + rank];
    }
    if (!output_padding.empty()) g->output_padding[i] = output_padding[i];
  }
  return nullptr;
}

// Domains created by RegisterOps are never released: sessions made from the options refer to them, and
// releasing them at unload could run after ONNX Runtime itself is gone. They are a few bytes each.
namespace {
struct DomainList {
  std::mutex mu;
  std::vector<OrtCustomOpDomain*> domains;
};
DomainList& Domains() {
  static DomainList* list = new DomainList();
  return *list;
}
}  // namespace

OrtStatus* RegisterOps(OrtSessionOptions* options, const OrtApiBase* api_base, const OrtCustomOp* const* ops,
                       size_t count, const char* domain_name) {
  const OrtApi* api = api_base->GetApi(kOrtApiVersion);
  if (api == nullptr) {
    // An ONNX Runtime older than the headers: report it through the oldest API, which every version has.
    const OrtApi* old = api_base->GetApi(1);
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "the com.dynconv custom-op library needs ONNX Runtime 1.%d or newer (API version %d); this is %s",
                  kOrtApiVersion, kOrtApiVersion, api_base->GetVersionString());
    return old != nullptr ? old->CreateStatus(ORT_FAIL, msg) : nullptr;
  }
  g_ort = api;
  OrtCustomOpDomain* domain = nullptr;
  DC_TRY(api->CreateCustomOpDomain(domain_name, &domain));
  for (size_t i = 0; i < count; ++i) {
    OrtStatus* s = api->CustomOpDomain_Add(domain, const_cast<OrtCustomOp*>(ops[i]));
    if (s != nullptr) {
      api->ReleaseCustomOpDomain(domain);
      return s;
    }
  }
  OrtStatus* s = api->AddCustomOpDomain(options, domain);
  if (s != nullptr) {
    api->ReleaseCustomOpDomain(domain);
    return s;
  }
  DomainList& list = Domains();
  std::lock_guard<std::mutex> lock(list.mu);
  list.domains.push_back(domain);
  return nullptr;
}

}  // namespace dynconv
