// dynconv: com.dynconv.PixelConv — a kernel per output position (involution, CARAFE, per-pixel dynamic filters,
// fairseq dynamic 1-D conv) (docs/ops.md).
// Inputs X [N, C, *D], K [N, G, prod(kernel_shape), *O]; output Y [N, C, *O];
//   Y[n,c,o] = sum_j K[n, c/(C/G), j, o] * X[n, c, (o / upsample) * s + k_j * dil - pb]   (zero outside X).
//
// A hand-written direct kernel. Spatial ranks 1 to 3 are run as 3-D (missing leading axes of size 1).
// Work is split over (n, kernel group, output plane z, output row y) on ONNX Runtime's thread pool; one task
// computes that row for every channel of the group, so the K row (all taps, one row: small) stays in L1 while
// it is reused by the C/G channels.
// Fast path (x stride 1, no upsampling, output rows of >= 16): X is first copied with its x padding made
// explicit (rows of Dx + pads, zeros at the ends; skipped when there is no x padding), so every tap reads a
// full row; the output row is computed 16 columns at a time for blocks of up to 8 channels, the accumulators
// staying in registers across all taps (one K load feeds the block's channels). The last 16-column chunk of
// a row overlaps the previous one instead of running a remainder loop.
// Other cases: simple loops over output x with the valid range of each tap precomputed.
// The row kernels (pixel_conv_rows.h) are compiled for the x86-64 baseline, AVX2+FMA and AVX-512 and picked at
// run time, so the library runs on any x86-64 and uses what the machine has.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common.h"

namespace dynconv {
namespace {

struct PixelGeometry {
  int64_t N = 0, C = 0, G = 0, Cg = 0, KK = 0, up = 1;
  // Axes z, y, x (a rank-r problem uses the last r).
  int64_t D[3] = {1, 1, 1}, O[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1},
          pb[3] = {0, 0, 0};
  // Per kernel column tx: offset into the input row and the valid output x range [x0, x1).
  std::vector<int64_t> off, x0, x1;
  // Input x of output x, without the tap offset: (x / up) * s. Only used when not (up == 1 && s == 1).
  std::vector<int64_t> xin;
  bool unit_x = true;
  // Fast path: X with explicit x padding (row length Dxp, the output x = 0 reads column tx * dx).
  bool fast = false;
  const float* xp = nullptr;
  int64_t Dxp = 0;
};

typedef float V16 __attribute__((vector_size(64)));

// The output row of a task: task = ((n * G + g) * Oz + oz) * Oy + oy.
struct PixelTask {
  int64_t n, g, oz, oy;
};
inline PixelTask DecodeTask(const PixelGeometry& p, int64_t task) {
  const int64_t oy = task % p.O[1];
  int64_t t = task / p.O[1];
  const int64_t oz = t % p.O[0];
  t /= p.O[0];
  return {t / p.G, t % p.G, oz, oy};
}

// The row kernels, once per instruction set (pixel_conv_rows.h). x86-64 with GCC: the baseline (SSE2), AVX2+FMA
// and AVX-512, chosen at run time from what the CPU and the OS support (HostSimd); elsewhere the baseline only
// (on aarch64 the baseline has NEON, which the 16-wide vectors and the loops compile to).
namespace baseline {
#include "pixel_conv_rows.h"
}  // namespace baseline

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(DYNCONV_NO_DISPATCH)
#define DYNCONV_PIXEL_DISPATCH 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "pixel_conv_rows.h"
}  // namespace avx2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {
#include "pixel_conv_rows.h"
}  // namespace avx512
#pragma GCC pop_options
#endif

// The row kernels of one instruction set.
struct PixelKernels {
  void (*row_fast)(const PixelGeometry&, const float*, float*, int64_t);
  void (*pad_rows)(const float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t);
  void (*row)(const PixelGeometry&, const float*, const float*, float*, int64_t);
  Simd simd;
};

const PixelKernels& Kernels() {
  static const PixelKernels k = [] {
#ifdef DYNCONV_PIXEL_DISPATCH
    switch (HostSimd()) {
      case Simd::kAvx512: return PixelKernels{avx512::PixelRowFast, avx512::PadRows, avx512::PixelRow, Simd::kAvx512};
      case Simd::kAvx2: return PixelKernels{avx2::PixelRowFast, avx2::PadRows, avx2::PixelRow, Simd::kAvx2};
      default: break;
    }
#endif
    return PixelKernels{baseline::PixelRowFast, baseline::PadRows, baseline::PixelRow, Simd::kBaseline};
  }();
  static const bool traced = [&] {
    const char* trace = std::getenv("DYNCONV_ORT_TRACE");
    if (trace != nullptr && trace[0] != '\0' && trace[0] != '0')
      std::fprintf(stderr, "dynconv: PixelConv row kernels: %s\n", SimdName(k.simd));
    return true;
  }();
  (void)traced;
  return k;
}

struct PixelConvKernel {
  static constexpr const char* kName = "PixelConv";
  static constexpr size_t kInputs = 2;
  std::vector<int64_t> kernel_shape, strides, pads, dilations;
  int64_t upsample = 1;

  OrtStatus* Init(const OrtKernelInfo* info) {
    AttrValues values;
    DC_TRY(values.Read(info, ops::kPixelConv));  // kernel_shape required; values checked (dynconv_ops.h)
    kernel_shape = values.Given("kernel_shape");
    const int r = static_cast<int>(kernel_shape.size());
    DC_TRY(values.CheckLengths(r));
    strides = values.IntsOr("strides", r);
    dilations = values.IntsOr("dilations", r);
    pads = values.IntsOr("pads", r);
    upsample = values.Int("upsample");
    // Not attributes of PixelConv (kernel groups come from K): refused rather than ignored.
    int64_t group = 1;
    if (AttrInt(info, "group", &group) && group != 1) return Error("PixelConv has no group attribute");
    return nullptr;
  }

  OrtStatus* Compute(OrtKernelContext* ctx) const {
    Tensor X, Kt, Y;
    DC_TRY(InputTensor(ctx, 0, "X", &X));
    DC_TRY(InputTensor(ctx, 1, "K", &Kt));
    const int r = static_cast<int>(kernel_shape.size());
    if (X.Rank() != r + 2)
      return Error("X must have rank %d for a %d-D kernel_shape, got shape %s", r + 2, r, DimsString(X.dims).c_str());
    const Tensor* inputs[] = {&X, &Kt};
    DC_TRY(CheckRanks(ops::kPixelConv, r, inputs));
    PixelGeometry p;
    p.N = X.dims[0];
    p.C = X.dims[1];
    p.up = upsample;
    p.KK = 1;
    for (int i = 0; i < r; ++i) {
      const int a = 3 - r + i;
      p.D[a] = X.dims[2 + i];
      p.k[a] = kernel_shape[i];
      p.s[a] = strides[i];
      p.d[a] = dilations[i];
      p.pb[a] = pads[i];
      const int64_t span = p.D[a] + pads[i] + pads[i + r] - p.d[a] * (p.k[a] - 1) - 1;
      if (span < 0)
        return Error("output size on spatial axis %d is empty (input %lld, kernel %lld)", i,
                     static_cast<long long>(p.D[a]), static_cast<long long>(p.k[a]));
      p.O[a] = (span / p.s[a] + 1) * upsample;
      p.KK *= p.k[a];
    }
    // K is [N, G, prod(kernel_shape), *O]: N from X, G free (checked below), O the output size.
    std::vector<int64_t> y_dims = {p.N, p.C};
    for (int i = 0; i < r; ++i) y_dims.push_back(p.O[3 - r + i]);
    bool k_ok = Kt.Rank() == r + 3 && Kt.dims[0] == p.N && Kt.dims[2] == p.KK;
    for (int i = 0; k_ok && i < r; ++i) k_ok = Kt.dims[3 + i] == y_dims[2 + i];
    if (!k_ok) {
      std::string want = "[" + std::to_string(p.N) + ", G, " + std::to_string(p.KK);
      for (int i = 0; i < r; ++i) want += ", " + std::to_string(y_dims[2 + i]);
      return Error("K must be %s] (batch of X, G kernel groups, prod(kernel_shape) taps, the output size), got shape %s",
                   want.c_str(), DimsString(Kt.dims).c_str());
    }
    p.G = Kt.dims[1];
    if (p.G < 1 || p.C % p.G != 0)
      return Error("K has %lld kernel groups, which must divide the %lld channels", static_cast<long long>(p.G),
                   static_cast<long long>(p.C));
    p.Cg = p.C / p.G;
    DC_TRY(OutputTensor(ctx, 0, y_dims, &Y));

    // x tables (the same for every row).
    const int64_t Ox = p.O[2], Dx = p.D[2], sx = p.s[2];
    p.unit_x = p.up == 1 && sx == 1;
    if (!p.unit_x) {
      p.xin.resize(static_cast<size_t>(Ox));
      for (int64_t x = 0; x < Ox; ++x) p.xin[x] = (x / p.up) * sx;
    }
    const int64_t kx = p.k[2];
    p.off.resize(kx);
    p.x0.resize(kx);
    p.x1.resize(kx);
    for (int64_t tx = 0; tx < kx; ++tx) {
      const int64_t off = tx * p.d[2] - p.pb[2];
      p.off[tx] = off;
      // Valid base positions b = x / up: 0 <= b * sx + off < Dx.
      const int64_t b_lo = off >= 0 ? 0 : (-off + sx - 1) / sx;
      const int64_t b_hi = Dx - off <= 0 ? 0 : (Dx - off + sx - 1) / sx;
      p.x0[tx] = std::min(b_lo * p.up, Ox);
      p.x1[tx] = std::max(p.x0[tx], std::min(b_hi * p.up, Ox));
    }

    const int64_t tasks = p.N * p.G * p.O[0] * p.O[1];
    const float* x = X.data;
    const float* k = Kt.data;
    float* y = Y.data;
    if (tasks == 0 || Ox == 0) return nullptr;
    p.fast = p.unit_x && Ox >= 16;
    const PixelKernels& kernels = Kernels();
    FloatBuffer padded;
    if (p.fast) {
      const int64_t pl = p.pb[2], pr = pads[r - 1 + r];
      p.Dxp = Dx + pl + pr;
      if (pl == 0 && pr == 0) {
        p.xp = x;
      } else {
        const int64_t rows = p.N * p.C * p.D[0] * p.D[1];
        DC_TRY(padded.Alloc(ctx, rows * p.Dxp));
        float* xp = padded.get();
        const int64_t dxp = p.Dxp;
        DC_TRY(ParallelRange(ctx, rows, 256, [&](int64_t r0, int64_t r1) { kernels.pad_rows(x, xp, Dx, dxp, pl, r0, r1); }));
        p.xp = xp;
      }
      // Output x = 0 reads padded column tx * dx: the tap offsets become non-negative.
      p.pb[2] = 0;
      return ParallelFor(ctx, static_cast<size_t>(tasks),
                         [&](size_t t) { kernels.row_fast(p, k, y, static_cast<int64_t>(t)); });
    }
    return ParallelFor(ctx, static_cast<size_t>(tasks),
                       [&](size_t t) { kernels.row(p, x, k, y, static_cast<int64_t>(t)); });
  }
};

}  // namespace

const OrtCustomOp* PixelConvOp() {
  static CustomOp<PixelConvKernel> op;
  return &op;
}

}  // namespace dynconv
