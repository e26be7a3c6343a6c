// dynconv-ort-runner: runs an ONNX model with ONNX Runtime's C API, optionally with a custom-op library.
//
// onnxruntime-node cannot register a custom-op library, so dynconv runs fused models (com.dynconv ops, native
// kernels) through this small program. It dlopen()s an ONNX Runtime shared library (onnxruntime-node's own
// libonnxruntime.so.1), takes the API with OrtGetApiBase()->GetApi(14) (the oldest with everything it calls;
// it is built against newer headers), registers custom-op libraries with RegisterCustomOpsLibrary_V2, loads
// the model, reads the inputs from a tensor file, runs, and writes the outputs to a tensor file.
// Built by src/run/ort/runner.ts on first use (cached under .cache/ort-runner/<hash of this source>/).
//
// Usage:
//   dynconv-ort-runner --ort-lib LIB --model MODEL [--custom-ops LIB]... [--inputs FILE] [--outputs FILE]
//                      [--threads N] [--repeat N] [--warmup N] [--concurrent K]
//                      [--opt-level disable|basic|extended|all] [--profile PREFIX]
//   --ort-lib      the ONNX Runtime shared library to load (>= 1.14)
//   --custom-ops   a custom-op library to register (repeatable)
//   --inputs       the input tensors (format below); every model input must be there
//   --outputs      where to write every model output, in the session's output order
//   --threads      intra-op threads (0 or absent: ONNX Runtime's default, one per core)
//   --repeat       timed runs (default 1); --warmup untimed runs first (default 1 when repeat > 1, else 0)
//   --concurrent   after the timed runs, K threads run the same session at once (repeat runs each) and their
//                  outputs are compared with the single-threaded ones (concurrent_max_abs_diff)
//   --opt-level    graph optimisation level (default all)
//   --profile      ONNX Runtime's profiler on (per-node times of every run, the warm-up included), written to
//                  PREFIX_<date>.json; its file is named in the JSON line ("profile")
// On success prints one JSON object on stdout:
//   {"ok":true,"ort_version":"1.30.0","outputs":[names],"runs":R,"median_ms":..,"min_ms":..,"mean_ms":..,"cpu_ms":..,
//    "peak_rss_bytes":..,"concurrent":K,"concurrent_max_abs_diff":..[,"profile":FILE]}
// (peak_rss_bytes: the program's peak resident set, VmHWM (see PeakRssBytes), after all runs; cpu_ms: the process's CPU
// time per timed run.)
// On failure prints "dynconv-ort-runner: <message>" on stderr and exits 1 (2 for a usage error).
//
// Tensor file format ("DCT1"), all integers little-endian, no padding:
//   char[4]  magic "DCT1"
//   uint32   count
//   count times:
//     uint32   name length L, then L bytes of UTF-8 name
//     int32    element type, ONNX TensorProto.DataType (1 float, 2 uint8, 3 int8, 5 int16, 6 int32, 7 int64,
//              9 bool, 10 float16, 11 double, 12 uint32, 13 uint64, 16 bfloat16)
//     uint32   rank R, then R int64 dims
//     uint64   byte count B (= product of dims * element size), then B bytes of row-major data
#include <dlfcn.h>
#include <onnxruntime_c_api.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// ONNX Runtime 1.14's API version (RegisterCustomOpsLibrary_V2): the runner works with any ONNX Runtime >= 1.14,
// so it can also show an older ONNX Runtime refusing a custom-op library that needs a newer one.
constexpr uint32_t kOrtApiVersion = 14;
static_assert(ORT_API_VERSION >= kOrtApiVersion, "build against the ONNX Runtime 1.14 headers or newer");

const OrtApi* ort = nullptr;

struct Failure : std::runtime_error {
  int code;
  Failure(const std::string& m, int c = 1) : std::runtime_error(m), code(c) {}
};

void Check(OrtStatus* s, const char* what) {
  if (s == nullptr) return;
  std::string msg = std::string(what) + ": " + ort->GetErrorMessage(s);
  ort->ReleaseStatus(s);
  throw Failure(msg);
}

size_t ElementSize(int32_t type) {
  switch (type) {
    case 1: case 6: case 12: return 4;                   // float, int32, uint32
    case 2: case 3: case 9: return 1;                    // uint8, int8, bool
    case 4: case 5: case 10: case 16: return 2;          // uint16, int16, float16, bfloat16
    case 7: case 11: case 13: return 8;                  // int64, double, uint64
    default: throw Failure("unsupported tensor element type " + std::to_string(type));
  }
}

struct HostTensor {
  std::string name;
  int32_t type = 1;
  std::vector<int64_t> dims;
  std::vector<uint64_t> storage;  // 8-byte aligned bytes
  size_t nbytes = 0;
  void* data() { return storage.data(); }
  const void* data() const { return storage.data(); }
  void Resize(size_t n) {
    nbytes = n;
    storage.assign((n + 7) / 8 + 1, 0);
  }
};

template <typename T>
void ReadPod(std::istream& in, T* v, const std::string& file) {
  in.read(reinterpret_cast<char*>(v), sizeof(T));
  if (!in) throw Failure("truncated tensor file " + file);
}

std::vector<HostTensor> ReadTensors(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Failure("cannot open " + file);
  char magic[4];
  in.read(magic, 4);
  if (!in || std::memcmp(magic, "DCT1", 4) != 0) throw Failure(file + " is not a DCT1 tensor file");
  uint32_t count = 0;
  ReadPod(in, &count, file);
  std::vector<HostTensor> out(count);
  for (auto& t : out) {
    uint32_t len = 0;
    ReadPod(in, &len, file);
    t.name.resize(len);
    in.read(&t.name[0], len);
    ReadPod(in, &t.type, file);
    uint32_t rank = 0;
    ReadPod(in, &rank, file);
    t.dims.resize(rank);
    size_t elems = 1;
    for (auto& d : t.dims) {
      ReadPod(in, &d, file);
      if (d < 0) throw Failure("negative dimension in " + file);
      elems *= static_cast<size_t>(d);
    }
    uint64_t nbytes = 0;
    ReadPod(in, &nbytes, file);
    if (nbytes != elems * ElementSize(t.type))
      throw Failure("tensor " + t.name + " in " + file + " has " + std::to_string(nbytes) + " bytes, expected " +
                    std::to_string(elems * ElementSize(t.type)));
    t.Resize(nbytes);
    in.read(static_cast<char*>(t.data()), static_cast<std::streamsize>(nbytes));
    if (!in) throw Failure("truncated tensor file " + file);
  }
  return out;
}

template <typename T>
void WritePod(std::ostream& out, const T& v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof(T));
}

void WriteTensors(const std::string& file, const std::vector<HostTensor>& ts) {
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Failure("cannot write " + tmp);
    out.write("DCT1", 4);
    WritePod(out, static_cast<uint32_t>(ts.size()));
    for (const auto& t : ts) {
      WritePod(out, static_cast<uint32_t>(t.name.size()));
      out.write(t.name.data(), static_cast<std::streamsize>(t.name.size()));
      WritePod(out, t.type);
      WritePod(out, static_cast<uint32_t>(t.dims.size()));
      for (int64_t d : t.dims) WritePod(out, d);
      WritePod(out, static_cast<uint64_t>(t.nbytes));
      out.write(static_cast<const char*>(t.data()), static_cast<std::streamsize>(t.nbytes));
    }
    if (!out) throw Failure("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) throw Failure("cannot rename " + tmp + " to " + file);
}

std::string JsonString(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

struct Options {
  std::string ort_lib, model, inputs, outputs, opt_level = "all", profile;
  std::vector<std::string> custom_ops;
  int threads = 0, repeat = 1, warmup = -1, concurrent = 0;
};

int ParseInt(const std::string& flag, const char* v) {
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || x < 0 || x > 1000000) throw Failure("bad value for " + flag + ": " + v, 2);
  return static_cast<int>(x);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw Failure("missing value for " + a, 2);
      return argv[++i];
    };
    if (a == "--ort-lib") o.ort_lib = value();
    else if (a == "--model") o.model = value();
    else if (a == "--custom-ops") o.custom_ops.push_back(value());
    else if (a == "--inputs") o.inputs = value();
    else if (a == "--outputs") o.outputs = value();
    else if (a == "--threads") o.threads = ParseInt(a, value());
    else if (a == "--repeat") o.repeat = ParseInt(a, value());
    else if (a == "--warmup") o.warmup = ParseInt(a, value());
    else if (a == "--concurrent") o.concurrent = ParseInt(a, value());
    else if (a == "--opt-level") o.opt_level = value();
    else if (a == "--profile") o.profile = value();
    else throw Failure("unknown argument " + a, 2);
  }
  if (o.ort_lib.empty() || o.model.empty()) throw Failure("--ort-lib and --model are required", 2);
  if (o.repeat < 1) o.repeat = 1;
  if (o.warmup < 0) o.warmup = o.repeat > 1 ? 1 : 0;
  return o;
}

struct Session {
  OrtSession* session = nullptr;
  std::vector<std::string> output_names;
  std::vector<const char*> in_names, out_names;
  std::vector<OrtValue*> in_values;
};

// One run; returns the outputs as OrtValues (caller releases).
std::vector<OrtValue*> RunOnce(const Session& s) {
  std::vector<OrtValue*> outs(s.out_names.size(), nullptr);
  Check(ort->Run(s.session, nullptr, s.in_names.data(), s.in_values.data(), s.in_values.size(),
                 s.out_names.data(), s.out_names.size(), outs.data()),
        "run failed");
  return outs;
}

HostTensor ToHost(const std::string& name, const OrtValue* v) {
  int is_tensor = 0;
  Check(ort->IsTensor(v, &is_tensor), "output");
  if (!is_tensor) throw Failure("output " + name + " is not a tensor");
  OrtTensorTypeAndShapeInfo* info = nullptr;
  Check(ort->GetTensorTypeAndShape(v, &info), "output shape");
  ONNXTensorElementDataType type;
  size_t rank = 0, count = 0;
  Check(ort->GetTensorElementType(info, &type), "output type");
  Check(ort->GetDimensionsCount(info, &rank), "output rank");
  HostTensor t;
  t.name = name;
  t.type = static_cast<int32_t>(type);
  t.dims.resize(rank);
  Check(ort->GetDimensions(info, t.dims.data(), rank), "output dims");
  Check(ort->GetTensorShapeElementCount(info, &count), "output size");
  ort->ReleaseTensorTypeAndShapeInfo(info);
  t.Resize(count * ElementSize(t.type));
  if (t.nbytes > 0) {
    void* data = nullptr;
    Check(ort->GetTensorMutableData(const_cast<OrtValue*>(v), &data), "output data");
    std::memcpy(t.data(), data, t.nbytes);
  }
  return t;
}

double MaxAbsDiff(const HostTensor& a, const HostTensor& b) {
  if (a.dims != b.dims || a.type != b.type) return INFINITY;
  if (a.type != 1) return std::memcmp(a.data(), b.data(), a.nbytes) == 0 ? 0.0 : INFINITY;
  const float* x = static_cast<const float*>(a.data());
  const float* y = static_cast<const float*>(b.data());
  double m = 0;
  for (size_t i = 0; i < a.nbytes / 4; ++i) {
    const double d = std::fabs(static_cast<double>(x[i]) - y[i]);
    if (!(d <= m)) m = d;  // NaN propagates as +inf-like
  }
  return m;
}

// The peak resident set of this program image. getrusage's ru_maxrss is no good for that on Linux: it keeps the
// high-water mark of the image the process ran before execve, and a process spawned by Node starts as a copy of
// Node (about 90 MB in the bench), so small models all read as Node's size. /proc/self/status's VmHWM is this
// image's own; getrusage is the fallback where there is no /proc.
long long PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;  // "VmHWM:   123456 kB"
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<long long>(ru.ru_maxrss) * 1024;
}

int Main(int argc, char** argv) {
  const Options opt = ParseArgs(argc, argv);
  void* lib = dlopen(opt.ort_lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) throw Failure(std::string("cannot load ONNX Runtime: ") + dlerror());
  using GetApiBaseFn = const OrtApiBase* (*)();
  auto get_base = reinterpret_cast<GetApiBaseFn>(dlsym(lib, "OrtGetApiBase"));
  if (get_base == nullptr) throw Failure(opt.ort_lib + " has no OrtGetApiBase");
  const OrtApiBase* base = get_base();
  ort = base->GetApi(kOrtApiVersion);
  if (ort == nullptr)
    throw Failure(std::string("ONNX Runtime ") + base->GetVersionString() + " does not provide API version " +
                  std::to_string(kOrtApiVersion) + " (needs 1." + std::to_string(kOrtApiVersion) + " or newer)");

  OrtEnv* env = nullptr;
  Check(ort->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "dynconv-ort-runner", &env), "create env");
  OrtSessionOptions* so = nullptr;
  Check(ort->CreateSessionOptions(&so), "session options");
  if (opt.threads > 0) Check(ort->SetIntraOpNumThreads(so, opt.threads), "intra-op threads");
  Check(ort->SetInterOpNumThreads(so, 1), "inter-op threads");
  GraphOptimizationLevel level = ORT_ENABLE_ALL;
  if (opt.opt_level == "disable") level = ORT_DISABLE_ALL;
  else if (opt.opt_level == "basic") level = ORT_ENABLE_BASIC;
  else if (opt.opt_level == "extended") level = ORT_ENABLE_EXTENDED;
  else if (opt.opt_level != "all") throw Failure("bad --opt-level " + opt.opt_level, 2);
  Check(ort->SetSessionGraphOptimizationLevel(so, level), "optimization level");
  for (const auto& l : opt.custom_ops)
    Check(ort->RegisterCustomOpsLibrary_V2(so, l.c_str()), ("register custom ops " + l).c_str());

  Session s;
  if (!opt.profile.empty()) Check(ort->EnableProfiling(so, opt.profile.c_str()), "profiling");
  Check(ort->CreateSession(env, opt.model.c_str(), so, &s.session), "load model");

  OrtAllocator* alloc = nullptr;
  Check(ort->GetAllocatorWithDefaultOptions(&alloc), "allocator");
  size_t n_out = 0;
  Check(ort->SessionGetOutputCount(s.session, &n_out), "outputs");
  for (size_t i = 0; i < n_out; ++i) {
    char* name = nullptr;
    Check(ort->SessionGetOutputName(s.session, i, alloc, &name), "output name");
    s.output_names.push_back(name);
    Check(ort->AllocatorFree(alloc, name), "free");
  }
  for (const auto& n : s.output_names) s.out_names.push_back(n.c_str());

  std::vector<HostTensor> inputs;
  if (!opt.inputs.empty()) inputs = ReadTensors(opt.inputs);
  OrtMemoryInfo* mem = nullptr;
  Check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mem), "memory info");
  for (auto& t : inputs) {
    OrtValue* v = nullptr;
    Check(ort->CreateTensorWithDataAsOrtValue(mem, t.data(), t.nbytes, t.dims.data(), t.dims.size(),
                                              static_cast<ONNXTensorElementDataType>(t.type), &v),
          ("input " + t.name).c_str());
    s.in_names.push_back(t.name.c_str());
    s.in_values.push_back(v);
  }

  for (int i = 0; i < opt.warmup; ++i)
    for (OrtValue* v : RunOnce(s)) ort->ReleaseValue(v);
  std::vector<double> ms;
  std::vector<OrtValue*> last;
  // The process's CPU time over the timed runs (all threads): at 1 intra-op thread the work itself, much less
  // disturbed than wall time by other processes on a shared machine (ONNX Runtime's pool threads spin while
  // waiting, so at more threads it also counts their waiting).
  auto cpu_now = []() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
  };
  const double cpu0 = cpu_now();
  for (int i = 0; i < opt.repeat; ++i) {
    for (OrtValue* v : last) ort->ReleaseValue(v);
    const auto t0 = std::chrono::steady_clock::now();
    last = RunOnce(s);
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  const double cpu_ms = (cpu_now() - cpu0) / static_cast<double>(opt.repeat > 0 ? opt.repeat : 1);
  std::vector<HostTensor> outs;
  for (size_t i = 0; i < last.size(); ++i) outs.push_back(ToHost(s.output_names[i], last[i]));
  for (OrtValue* v : last) ort->ReleaseValue(v);

  double conc_diff = 0;
  if (opt.concurrent > 0) {
    std::vector<std::thread> threads;
    std::vector<std::string> errors(opt.concurrent);
    std::vector<double> diffs(opt.concurrent, 0.0);
    std::atomic<int> ready{0};
    for (int k = 0; k < opt.concurrent; ++k) {
      threads.emplace_back([&, k]() {
        try {
          ready.fetch_add(1);
          while (ready.load() < opt.concurrent) std::this_thread::yield();
          for (int r = 0; r < opt.repeat; ++r) {
            std::vector<OrtValue*> o = RunOnce(s);
            for (size_t i = 0; i < o.size(); ++i) {
              diffs[k] = std::max(diffs[k], MaxAbsDiff(outs[i], ToHost(s.output_names[i], o[i])));
              ort->ReleaseValue(o[i]);
            }
          }
        } catch (const std::exception& e) {
          errors[k] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : errors)
      if (!e.empty()) throw Failure("concurrent run: " + e);
    for (double d : diffs) conc_diff = std::max(conc_diff, d);
  }

  if (!opt.outputs.empty()) WriteTensors(opt.outputs, outs);

  const long long peak_rss = PeakRssBytes();
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const size_t m = sorted.size();
  const double median = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
  double mean = 0;
  for (double x : ms) mean += x;
  mean /= static_cast<double>(m);

  std::ostringstream js;
  js << "{\"ok\":true,\"ort_version\":" << JsonString(base->GetVersionString()) << ",\"outputs\":[";
  for (size_t i = 0; i < s.output_names.size(); ++i) js << (i ? "," : "") << JsonString(s.output_names[i]);
  js << "],\"runs\":" << m << ",\"median_ms\":" << JsonNumber(median) << ",\"min_ms\":" << JsonNumber(sorted[0])
     << ",\"mean_ms\":" << JsonNumber(mean) << ",\"cpu_ms\":" << JsonNumber(cpu_ms) << ",\"peak_rss_bytes\":" << peak_rss
     << ",\"concurrent\":" << opt.concurrent << ",\"concurrent_max_abs_diff\":" << JsonNumber(conc_diff);
  if (!opt.profile.empty()) {
    char* file = nullptr;
    Check(ort->SessionEndProfiling(s.session, alloc, &file), "end profiling");
    js << ",\"profile\":" << JsonString(file);
    Check(ort->AllocatorFree(alloc, file), "free");
  }
  js << "}";
  std::printf("%s\n", js.str().c_str());
  std::fflush(stdout);

  for (OrtValue* v : s.in_values) ort->ReleaseValue(v);
  ort->ReleaseMemoryInfo(mem);
  ort->ReleaseSession(s.session);
  ort->ReleaseSessionOptions(so);
  ort->ReleaseEnv(env);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const Failure& f) {
    std::fprintf(stderr, "dynconv-ort-runner: %s\n", f.what());
    return f.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dynconv-ort-runner: %s\n", e.what());
    return 1;
  }
}
