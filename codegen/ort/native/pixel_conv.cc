// dynconv: com.dynconv.PixelConv — a kernel per output position (involution, CARAFE, per-pixel dynamic filters,
// fairseq dynamic 1-D conv) — and com.dynconv.PixelConvHead, the same with the kernel computed by its 1x1 head
// inside the op (docs/ops.md).
// Inputs X [N, C, *D], K [N, G, prod(kernel_shape), *O]; output Y [N, C, *O];
//   Y[n,c,o] = sum_j K[n, c/(C/G), j, o] * X[n, c, (o / upsample) * s + k_j * dil - pb]   (zero outside X).
// PixelConvHead: inputs X, F [N, Cf, *O], HW [G*KK, Cf], HB [G*KK]; K[n,g,j,o] = HB[g*KK+j] + sum_f HW[g*KK+j,f] F[n,f,o].
// PixelConv with kernel_norm = 1 (CARAFE): K holds logits; each (n, g, o)'s KK taps are softmaxed first.
// PixelConv with kernel_layout = 1, 2 (CARAFE's logits as its encoder conv makes them, before the PixelShuffle):
// K [N, G*KK*P, *B] (P = up^r phases, B = O / up), tap j of output o at base o / up, phase ph = row-major(o % up),
// channel (g*KK + j)*P + ph (1) or ph*G*KK + g*KK + j (2).
//
// A hand-written direct kernel. Spatial ranks 1 to 3 are run as 3-D (missing leading axes of size 1).
// Work is split over (n, kernel group, output plane z, output row y) on ONNX Runtime's thread pool; one task
// computes that row for every channel of the group, so the K row (all taps, one row: small) stays in L1 while
// it is reused by the C/G channels. PixelConvHead first evaluates the task's taps from the head into a buffer
// of its own (rows shorter than 16 are grouped into one task of several rows, so the head runs on full vectors);
// with kernel_norm = 1 the task softmaxes its row's logits into that buffer (the normalised kernel is never written).
// Fast path (output rows of >= 4; up-sampling without an x stride): X is first copied with its x padding made
// explicit (rows of Dx + pads, zeros at the ends; skipped when there is no x padding) and, with an x stride,
// each row split into its stride phases, with up-sampling each column repeated `upsample` times (CARAFE), so
// every tap reads consecutive elements; the output row is computed 8
// columns at a time for blocks of up to 8 channels, the accumulators staying in registers across all taps (one
// K load feeds the block's channels). The last 8-column chunk of a row overlaps the previous one instead of
// running a remainder loop.
// Up-sampling by 2 without an x stride (CARAFE; base rows of >= 8): X is padded but not repeated, and the taps
// of the row are held per x phase ([px][j][base x]: a phase layout K is read as it is); each 8 base columns
// compute both x phases from one X load (16 outputs, interleaved at the store), blocks of up to 6 channels.
// Other cases: simple loops over output x with the valid range of each tap precomputed.
// The row kernels (pixel_conv_rows.h) are compiled for the x86-64 baseline, AVX2+FMA and AVX-512 and picked at
// run time, so the library runs on any x86-64 and uses what the machine has.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common.h"
#include "epilogue.h"

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
  // Fast path: X with explicit x padding, each padded row split into its sx phases (phase q holds padded
  // columns q, q + sx, ...; Lp each): row length Dxp = sx * Lp; output x reads x + xoff[tx] for tap tx.
  bool fast = false;
  bool up2 = false;  // the up-sampling-by-2 fast path (xoff then in base columns, X not repeated)
  const float* xp = nullptr;
  int64_t Dxp = 0;
  std::vector<int64_t> xoff;
};

// 8 floats: the row kernels' and the head's vectors (16-float vectors split badly on AVX2).
typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));

// A task: output rows [oy0, oy1) of plane oz of kernel group g of sample n, for every channel of the group.
// task = ((n * G + g) * Oz + oz) * row_blocks + rb, rows [rb * rows, min(Oy, (rb + 1) * rows)).
struct PixelTask {
  int64_t n, g, oz, oy0, oy1;
};
inline PixelTask DecodeTask(const PixelGeometry& p, int64_t task, int64_t rows, int64_t row_blocks) {
  const int64_t rb = task % row_blocks;
  int64_t t = task / row_blocks;
  const int64_t oz = t % p.O[0];
  t /= p.O[0];
  return {t / p.G, t % p.G, oz, rb * rows, std::min(p.O[1], (rb + 1) * rows)};
}

// Where the tasks read the kernel taps: the K tensor [N, G, KK, *O] (PixelConv), or the kernel head
// (PixelConvHead: K[n, g, j, o] = HB[g*KK + j] + sum_f HW[g*KK + j, f] * F[n, f, o]), which each task evaluates
// for its output row into a small buffer of its own (KK x Ox, in L1/L2): the kernel tensor is never written.
struct KernelSource {
  const float* K = nullptr;
  const float* F = nullptr;
  const float* HW = nullptr;
  const float* HB = nullptr;
  int64_t Cf = 0;
  bool softmax = false;  // K holds logits: softmax over each position's taps (kernel_norm = 1)
  // kernel_layout: 0 K [N, G, KK, *O]; 1, 2 the up-sampling phases in the channel axis (see the top): tap j of
  // group g of sample n at phase ph and base position b at K + (n*G + g)*gstride... as PhaseOffset computes.
  int layout = 0;
  int64_t P = 1, Bplane = 1, B[3] = {1, 1, 1};
};

// The offset in a phase-layout K of tap 0 of (n, g) at phase ph and base position 0, and the step between taps.
inline int64_t PhaseOffset(const PixelGeometry& p, const KernelSource& ks, int64_t n, int64_t g, int64_t ph) {
  return ks.layout == 1 ? (((n * p.G + g) * p.KK) * ks.P + ph) * ks.Bplane
                        : ((n * ks.P + ph) * p.G * p.KK + g * p.KK) * ks.Bplane;
}
inline int64_t PhaseTapStride(const PixelGeometry& p, const KernelSource& ks) {
  (void)p;
  return ks.layout == 1 ? ks.P * ks.Bplane : ks.Bplane;
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
  void (*row_fast)(const PixelGeometry&, const float*, int64_t, float*, const PixelTask&, int64_t);
  void (*row_up2)(const PixelGeometry&, const float*, int64_t, float*, const PixelTask&, int64_t);
  void (*pad_rows)(const float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
  void (*row)(const PixelGeometry&, const float*, const float*, int64_t, float*, const PixelTask&, int64_t);
  void (*head_taps)(const PixelGeometry&, const KernelSource&, int64_t, int64_t, int64_t, int64_t, float*);
  void (*softmax_taps)(const float*, int64_t, int64_t, int64_t, float*);
  Simd simd;
};

const PixelKernels& Kernels() {
  static const PixelKernels k = [] {
#ifdef DYNCONV_PIXEL_DISPATCH
    switch (HostSimd()) {
      case Simd::kAvx512: return PixelKernels{avx512::PixelRowFast, avx512::PixelRowUp2, avx512::PadRows, avx512::PixelRow, avx512::HeadTapsOf, avx512::SoftmaxTaps, Simd::kAvx512};
      case Simd::kAvx2: return PixelKernels{avx2::PixelRowFast, avx2::PixelRowUp2, avx2::PadRows, avx2::PixelRow, avx2::HeadTapsOf, avx2::SoftmaxTaps, Simd::kAvx2};
      default: break;
    }
#endif
    return PixelKernels{baseline::PixelRowFast, baseline::PixelRowUp2, baseline::PadRows, baseline::PixelRow, baseline::HeadTapsOf, baseline::SoftmaxTaps, Simd::kBaseline};
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

// The attributes of both per-pixel ops (docs/ops.md), read at kernel creation.
struct PixelAttrs {
  std::vector<int64_t> kernel_shape, strides, pads, dilations;
  int64_t upsample = 1;
  int64_t kernel_norm = 0;  // PixelConv only (0 where the op has no such attribute)
  int64_t kernel_layout = 0;  // PixelConv only, likewise
  Epilogue epilogue;
  size_t own_inputs = 0;  // the op's own inputs; the epilogue's follow

  OrtStatus* Read(const OrtKernelInfo* info, const ops::OpSpec& op) {
    AttrValues values;
    DC_TRY(values.Read(info, op));  // kernel_shape required; values checked (dynconv_ops.h)
    DC_TRY(epilogue.Read(values));
    own_inputs = op.n_inputs;
    kernel_shape = values.Given("kernel_shape");
    const int r = static_cast<int>(kernel_shape.size());
    DC_TRY(values.CheckLengths(r));
    strides = values.IntsOr("strides", r);
    dilations = values.IntsOr("dilations", r);
    pads = values.IntsOr("pads", r);
    upsample = values.Int("upsample");
    kernel_norm = values.Int("kernel_norm");
    kernel_layout = values.Int("kernel_layout");
    // Not an attribute of the per-pixel ops (kernel groups come from K or HW): refused rather than ignored.
    int64_t group = 1;
    if (AttrInt(info, "group", &group) && group != 1) return Error("%s has no group attribute", op.name);
    return nullptr;
  }

  // The geometry of X (N, C, D, O, kernel), before the kernel groups are known.
  OrtStatus* Geometry(const Tensor& X, PixelGeometry* p) const {
    const int r = static_cast<int>(kernel_shape.size());
    if (X.Rank() != r + 2)
      return Error("X must have rank %d for a %d-D kernel_shape, got shape %s", r + 2, r, DimsString(X.dims).c_str());
    p->N = X.dims[0];
    p->C = X.dims[1];
    p->up = upsample;
    p->KK = 1;
    for (int i = 0; i < r; ++i) {
      const int a = 3 - r + i;
      p->D[a] = X.dims[2 + i];
      p->k[a] = kernel_shape[i];
      p->s[a] = strides[i];
      p->d[a] = dilations[i];
      p->pb[a] = pads[i];
      const int64_t span = p->D[a] + pads[i] + pads[i + r] - p->d[a] * (p->k[a] - 1) - 1;
      if (span < 0)
        return Error("output size on spatial axis %d is empty (input %lld, kernel %lld)", i,
                     static_cast<long long>(p->D[a]), static_cast<long long>(p->k[a]));
      p->O[a] = (span / p->s[a] + 1) * upsample;
      p->KK *= p->k[a];
    }
    return nullptr;
  }

  // Checks that `name` is [N, lead, *O] (lead < 0: any), for the K of PixelConv and the F of PixelConvHead.
  OrtStatus* CheckPerPixel(const Tensor& t, const char* name, const char* form, const PixelGeometry& p,
                           int64_t second, int64_t third) const {
    const int r = static_cast<int>(kernel_shape.size());
    const int extra = third >= 0 ? 1 : 0;
    bool ok = t.Rank() == r + 2 + extra && t.dims[0] == p.N && (second < 0 || t.dims[1] == second) &&
              (third < 0 || t.dims[2] == third);
    for (int i = 0; ok && i < r; ++i) ok = t.dims[2 + extra + i] == p.O[3 - r + i];
    if (!ok) {
      std::string o;
      for (int i = 0; i < r; ++i) o += (i ? ", " : "") + std::to_string(p.O[3 - r + i]);
      return Error("%s must be %s with N = %lld and O = [%s], got shape %s", name, form, static_cast<long long>(p.N),
                   o.c_str(), DimsString(t.dims).c_str());
    }
    return nullptr;
  }

  // Runs the op once the geometry (with G) and the kernel source are set.
  OrtStatus* Run(OrtKernelContext* ctx, const Tensor& X, PixelGeometry& p, const KernelSource& ks) const {
    const int r = static_cast<int>(kernel_shape.size());
    if (p.G < 1 || p.C % p.G != 0)
      return Error("%lld kernel groups do not divide the %lld channels", static_cast<long long>(p.G),
                   static_cast<long long>(p.C));
    p.Cg = p.C / p.G;
    std::vector<int64_t> y_dims = {p.N, p.C};
    for (int i = 0; i < r; ++i) y_dims.push_back(p.O[3 - r + i]);
    Epilogue epi;
    DC_TRY(epilogue.Bind(ctx, own_inputs, y_dims, &epi));
    Tensor Y;
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

    // With the kernel head, a task computes its rows' taps first; rows shorter than 16 are taken several at a
    // time (up to 512 positions) so that the head runs on vectors of 16 consecutive positions.
    const int64_t Oy = p.O[1];
    const int64_t rows = ks.K != nullptr || Ox >= 16 ? 1 : std::max<int64_t>(1, std::min<int64_t>(Oy, 512 / std::max<int64_t>(Ox, 1)));
    const int64_t row_blocks = (Oy + rows - 1) / rows;
    const int64_t tasks = p.N * p.G * p.O[0] * row_blocks;
    const PixelKernels& kn = Kernels();
    const float* x = X.data;
    float* y = Y.data;
    if (tasks == 0 || Ox == 0) return nullptr;
    p.fast = (p.up == 1 || sx == 1) && Ox >= 4;
    p.up2 = ks.K != nullptr && p.up == 2 && sx == 1 && Ox / 2 >= 8;
    FloatBuffer padded;
    if (p.fast) {
      const int64_t pl = p.pb[2], pr = pads[r - 1 + r];
      const int64_t Lp = (Dx + pl + pr + sx - 1) / sx;
      const int64_t repeat = p.up2 ? 1 : p.up;  // the up2 path reads base columns
      p.Dxp = sx * Lp * repeat;  // sx = 1 when up > 1
      p.xoff.resize(kx);
      for (int64_t tx = 0; tx < kx; ++tx) p.xoff[tx] = p.up > 1 ? tx * p.d[2] * repeat : ((tx * p.d[2]) % sx) * Lp + (tx * p.d[2]) / sx;
      if (pl == 0 && pr == 0 && sx == 1 && repeat == 1) {
        p.xp = x;
      } else {
        const int64_t rows = p.N * p.C * p.D[0] * p.D[1];
        DC_TRY(padded.Alloc(ctx, rows * p.Dxp));
        float* xp = padded.get();
        const int64_t dxp = p.Dxp, up = repeat;
        DC_TRY(ParallelRange(ctx, rows, 256, [&](int64_t r0, int64_t r1) { kn.pad_rows(x, xp, Dx, dxp, pl, sx, up, r0, r1); }));
        p.xp = xp;
      }
      // Output x = 0 reads padded column tx * dx: the tap offsets become non-negative.
      p.pb[2] = 0;
    }
    const int64_t plane_o = p.O[0] * Oy * Ox;
    return ParallelFor(ctx, static_cast<size_t>(tasks), [&](size_t t) {
      const PixelTask tk = DecodeTask(p, static_cast<int64_t>(t), rows, row_blocks);
      const int64_t pos0 = (tk.oz * Oy + tk.oy0) * Ox;
      const float* kb;
      int64_t kst;
      // One buffer per pool thread, grown to the largest it has needed (a task runs on one thread); `raw`
      // holds the logits gathered from a phase layout before their softmax.
      thread_local std::vector<float> taps, raw;
      const auto grow = [](std::vector<float>& v, int64_t n) { if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n)); };
      if (p.up2) {
        // The row's taps per x phase: taps[px][j][bx], Bx base columns each.
        const int64_t Bx = Ox / 2;
        grow(taps, 2 * p.KK * Bx);
        for (int64_t px = 0; px < 2; ++px) {
          const float* src;
          int64_t sst;
          if (ks.layout == 0) {
            // De-interleaved from K's positions: column 2 * bx + px.
            grow(raw, p.KK * Bx);
            const float* k = ks.K + (tk.n * p.G + tk.g) * p.KK * plane_o + pos0 + px;
            for (int64_t j = 0; j < p.KK; ++j)
              for (int64_t b = 0; b < Bx; ++b) raw[j * Bx + b] = k[j * plane_o + 2 * b];
            src = raw.data();
            sst = Bx;
          } else {
            const int64_t ph = ((tk.oz % 2) * 2 + tk.oy0 % 2) * 2 + px;
            const int64_t brow = ((tk.oz / 2) * ks.B[1] + tk.oy0 / 2) * Bx;
            src = ks.K + PhaseOffset(p, ks, tk.n, tk.g, ph) + brow;
            sst = PhaseTapStride(p, ks);
          }
          float* dst = taps.data() + px * p.KK * Bx;
          if (ks.softmax) kn.softmax_taps(src, sst, p.KK, Bx, dst);
          else for (int64_t j = 0; j < p.KK; ++j) std::copy(src + j * sst, src + j * sst + Bx, dst + j * Bx);
        }
        kn.row_up2(p, taps.data(), Bx, y, tk, tk.oy0);
      } else {
      if (ks.K != nullptr && !ks.softmax && ks.layout == 0) {
        kb = ks.K + (tk.n * p.G + tk.g) * p.KK * plane_o + pos0;
        kst = plane_o;
      } else {
        kst = (tk.oy1 - tk.oy0) * Ox;
        grow(taps, p.KK * kst);
        if (ks.K != nullptr) {
          const float* k = ks.K + (tk.n * p.G + tk.g) * p.KK * plane_o + pos0;
          int64_t kstr = plane_o;
          if (ks.layout != 0) {
            // The rows' logits gathered from the phases into positions order.
            grow(raw, p.KK * kst);
            const int64_t ts = PhaseTapStride(p, ks), up = p.up;
            const int64_t pz = tk.oz % up, bz = tk.oz / up;
            for (int64_t oy = tk.oy0; oy < tk.oy1; ++oy) {
              const int64_t py = oy % up, by = oy / up;
              for (int64_t x = 0; x < Ox; ++x) {
                // missing leading axes have o = 0: their phase is 0
                const int64_t ph = (pz * up + py) * up + x % up;
                const float* k0 = ks.K + PhaseOffset(p, ks, tk.n, tk.g, ph) + (bz * ks.B[1] + by) * ks.B[2] + x / up;
                for (int64_t j = 0; j < p.KK; ++j) raw[j * kst + (oy - tk.oy0) * Ox + x] = k0[j * ts];
              }
            }
            k = raw.data();
            kstr = kst;
          }
          if (ks.softmax) kn.softmax_taps(k, kstr, p.KK, kst, taps.data());
          else for (int64_t j = 0; j < p.KK; ++j) std::copy(k + j * kstr, k + j * kstr + kst, taps.data() + j * kst);
        } else {
          kn.head_taps(p, ks, tk.n, tk.g, pos0, kst, taps.data());
        }
        kb = taps.data();
      }
      for (int64_t oy = tk.oy0; oy < tk.oy1; ++oy) {
        const float* kr = kb + (oy - tk.oy0) * Ox;
        if (p.fast) kn.row_fast(p, kr, kst, y, tk, oy);
        else kn.row(p, x, kr, kst, y, tk, oy);
      }
      }
      // The epilogue on the task's rows of its group's channels, just written.
      if (epi.Any()) {
        for (int64_t c = tk.g * p.Cg; c < (tk.g + 1) * p.Cg; ++c)
          epi.Apply(y, (tk.n * p.C + c) * plane_o + pos0, (tk.oy1 - tk.oy0) * Ox, c);
      }
    });
  }
};

// The kernel of a per-pixel op: Op has kOp and Source(attrs, inputs, geometry, kernel source), which checks the
// op's inputs other than X, sets the kernel groups and says where the taps come from.
template <typename Op>
struct PixelKernel {
  static constexpr const ops::OpSpec& kOp = Op::kOp;
  PixelAttrs attrs;

  OrtStatus* Init(const OrtKernelInfo* info) { return attrs.Read(info, kOp); }

  OrtStatus* Compute(OrtKernelContext* ctx) const {
    Tensor in[kMaxInputs];
    DC_TRY(InputTensors(ctx, kOp, in));
    PixelGeometry p;
    DC_TRY(attrs.Geometry(in[0], &p));
    KernelSource ks;
    DC_TRY(Op::Source(attrs, in, &p, &ks));
    return attrs.Run(ctx, in[0], p, ks);
  }
};

// PixelConv: the taps are given, K [N, G, prod(kernel_shape), *O], or with the up-sampling phases in its channels.
struct PixelConvDef {
  static constexpr const ops::OpSpec& kOp = ops::kPixelConv;
  static OrtStatus* Source(const PixelAttrs& attrs, const Tensor* in, PixelGeometry* pg, KernelSource* ks) {
    const Tensor& Kt = in[1];
    const PixelGeometry& p = *pg;
    const int r = static_cast<int>(attrs.kernel_shape.size());
    ks->softmax = attrs.kernel_norm == 1;
    if (attrs.kernel_layout != 0) {
      // [N, G * KK * P, *B]: the up-sampling phases in the channel axis.
      int64_t P = 1;
      for (int i = 0; i < r; ++i) P *= p.up;
      bool ok = Kt.Rank() == r + 2 && Kt.dims[0] == p.N && Kt.dims[1] >= 1 && Kt.dims[1] % (p.KK * P) == 0;
      for (int i = 0; ok && i < r; ++i) ok = Kt.dims[2 + i] * p.up == p.O[3 - r + i];
      if (!ok) {
        std::string want = "[" + std::to_string(p.N) + ", G * " + std::to_string(p.KK * P);
        for (int i = 0; i < r; ++i) want += ", " + std::to_string(p.O[3 - r + i] / p.up);
        return Error("K must be %s] (batch of X, G kernel groups times %lld taps times %lld up-sampling phases, the output size / %lld), got shape %s",
                     want.c_str(), static_cast<long long>(p.KK), static_cast<long long>(P), static_cast<long long>(p.up), DimsString(Kt.dims).c_str());
      }
      pg->G = Kt.dims[1] / (p.KK * P);
      ks->K = Kt.data;
      ks->layout = static_cast<int>(attrs.kernel_layout);
      ks->P = P;
      for (int i = 0; i < r; ++i) ks->B[3 - r + i] = Kt.dims[2 + i];
      ks->Bplane = ks->B[0] * ks->B[1] * ks->B[2];
      return nullptr;
    }
    bool k_ok = Kt.Rank() == r + 3 && Kt.dims[0] == p.N && Kt.dims[2] == p.KK;
    for (int i = 0; k_ok && i < r; ++i) k_ok = Kt.dims[3 + i] == p.O[3 - r + i];
    if (!k_ok) {
      std::string want = "[" + std::to_string(p.N) + ", G, " + std::to_string(p.KK);
      for (int i = 0; i < r; ++i) want += ", " + std::to_string(p.O[3 - r + i]);
      return Error("K must be %s] (batch of X, G kernel groups, prod(kernel_shape) taps, the output size), got shape %s",
                   want.c_str(), DimsString(Kt.dims).c_str());
    }
    pg->G = Kt.dims[1];
    ks->K = Kt.data;
    return nullptr;
  }
};

// PixelConvHead: the taps come from a 1x1 head over F, HW [G * prod(kernel_shape), Cf] and HB.
struct PixelConvHeadDef {
  static constexpr const ops::OpSpec& kOp = ops::kPixelConvHead;
  static OrtStatus* Source(const PixelAttrs& attrs, const Tensor* in, PixelGeometry* p, KernelSource* ks) {
    const Tensor &F = in[1], &HW = in[2], &HB = in[3];
    if (HW.Rank() != 2 || HW.dims[0] < 1 || HW.dims[0] % p->KK != 0)
      return Error("HW must be [G * %lld, Cf], got shape %s", static_cast<long long>(p->KK), DimsString(HW.dims).c_str());
    if (HB.Rank() != 1 || HB.dims[0] != HW.dims[0])
      return Error("HB must be [%lld], got shape %s", static_cast<long long>(HW.dims[0]), DimsString(HB.dims).c_str());
    DC_TRY(attrs.CheckPerPixel(F, "F", "[N, Cf, *O]", *p, HW.dims[1], -1));
    p->G = HW.dims[0] / p->KK;
    ks->F = F.data;
    ks->HW = HW.data;
    ks->HB = HB.data;
    ks->Cf = HW.dims[1];
    return nullptr;
  }
};

}  // namespace

const OrtCustomOp* PixelConvOp() { return CustomOpOf<PixelKernel<PixelConvDef>>(); }

const OrtCustomOp* PixelConvHeadOp() { return CustomOpOf<PixelKernel<PixelConvHeadDef>>(); }

}  // namespace dynconv

