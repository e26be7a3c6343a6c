// dynconv: shared helpers of the com.dynconv ONNX Runtime kernels (see common.h).
#include "common.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

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

OrtStatus* OutputTensor(OrtKernelContext* ctx, size_t index, const std::vector<int64_t>& dims, Tensor* out) {
  OrtValue* value = nullptr;
  DC_TRY(g_ort->KernelContext_GetOutput(ctx, index, dims.data(), dims.size(), &value));
  void* data = nullptr;
  DC_TRY(g_ort->GetTensorMutableData(value, &data));
  out->data = static_cast<float*>(data);
  out->dims = dims;
  return nullptr;
}

void FloatBuffer::Reset() {
  if (data_ != nullptr) {
    if (malloced_) std::free(data_);
    else allocator_->Free(allocator_, data_);
  }
  if (allocator_ != nullptr) g_ort->ReleaseAllocator(allocator_);
  allocator_ = nullptr;
  data_ = nullptr;
  size_ = 0;
  malloced_ = false;
}

OrtStatus* FloatBuffer::Alloc(OrtKernelContext* ctx, int64_t count) {
  Reset();
  const size_t bytes = ((static_cast<size_t>(count > 0 ? count : 1) * sizeof(float) + 63) / 64) * 64;
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

int64_t ConvGeometry::OutSize(int axis, int64_t in, int64_t k) const {
  const int64_t s = strides[axis], d = dilations[axis], pb = pads_begin[axis], pe = pads_end[axis];
  if (transpose) return s * (in - 1) + output_padding[axis] + d * (k - 1) + 1 - pb - pe;
  const int64_t span = in + pb + pe - d * (k - 1) - 1;
  if (span < 0) return 0;
  return span / s + 1;
}

OrtStatus* ConvAttrs::Read(const OrtKernelInfo* info, bool allow_transpose) {
  AttrInts(info, "strides", &strides);
  AttrInts(info, "pads", &pads);
  AttrInts(info, "dilations", &dilations);
  AttrInts(info, "output_padding", &output_padding);
  int64_t v = 1;
  if (AttrInt(info, "group", &v)) group = v;
  if (group < 1) return Error("group must be >= 1, got %lld", static_cast<long long>(group));
  v = 0;
  if (AttrInt(info, "transpose", &v)) {
    if (v != 0 && v != 1) return Error("transpose must be 0 or 1");
    transpose = v == 1;
  }
  if (transpose && !allow_transpose) return Error("transpose = 1 is not supported by this op");
  for (int64_t x : strides)
    if (x < 1) return Error("strides must be >= 1");
  for (int64_t x : dilations)
    if (x < 1) return Error("dilations must be >= 1");
  for (int64_t x : pads)
    if (x < 0) return Error("pads must be >= 0");
  for (int64_t x : output_padding)
    if (x < 0) return Error("output_padding must be >= 0");
  if (!transpose)
    for (int64_t x : output_padding)
      if (x != 0) return Error("output_padding needs transpose = 1");
  return nullptr;
}

OrtStatus* ConvAttrs::Resolve(int rank, ConvGeometry* g) const {
  if (rank < 1 || rank > kMaxRank) return Error("spatial rank %d is not supported (1 to 3)", rank);
  auto check = [&](const std::vector<int64_t>& v, size_t n, const char* name) -> OrtStatus* {
    if (!v.empty() && v.size() != n)
      return Error("attribute %s has %zu values, expected %zu for spatial rank %d", name, v.size(), n, rank);
    return nullptr;
  };
  DC_TRY(check(strides, rank, "strides"));
  DC_TRY(check(pads, 2 * rank, "pads"));
  DC_TRY(check(dilations, rank, "dilations"));
  DC_TRY(check(output_padding, rank, "output_padding"));
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
                  "the com.dynconv custom-op library needs ONNX Runtime API version %d (1.%d) or newer; this is %s",
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
