// dynconv: com.dynconv.PixelConv — a kernel per output position (involution, CARAFE, per-pixel dynamic filters,
// fairseq dynamic 1-D conv) — and com.dynconv.PixelConvHead, the same with the kernel computed by its 1x1 head
// inside the op (docs/ops.md).
// Inputs X [N, C, *D], K [N, G, prod(kernel_shape), *O]; output Y [N, C, *O];
//   Y[n,c,o] = sum_j K[n, c/(C/G), j, o] * X[n, c, (o / upsample) * s + k_j * dil - pb]   (zero outside X).
// PixelConvHead: inputs X, F [N, Cf, *O], HW [G*KK, Cf], HB [G*KK]; K[n,g,j,o] = HB[g*KK+j] + sum_f HW[g*KK+j,f] F[n,f,o].
//
// A hand-written direct kernel. Spatial ranks 1 to 3 are run as 3-D (missing leading axes of size 1).
// Work is split over (n, kernel group, output plane z, output row y) on ONNX Runtime's thread pool; one task
// computes that row for every channel of the group, so the K row (all taps, one row: small) stays in L1 while
// it is reused by the C/G channels. PixelConvHead first evaluates the task's taps from the head into a buffer
// of its own (rows shorter than 16 are grouped into one task of several rows, so the head runs on full vectors).
// Fast path (no upsampling, output rows of >= 8): X is first copied with its x padding made
// explicit (rows of Dx + pads, zeros at the ends; skipped when there is no x padding) and, with an x stride,
// each row split into its stride phases, so every tap reads consecutive elements; the output row is computed 16 columns at a time for blocks of up to 8 channels, the accumulators
// staying in registers across all taps (one K load feeds the block's channels). The last 16-column chunk of
// a row overlaps the previous one instead of running a remainder loop.
// Other cases: simple loops over output x with the valid range of each tap precomputed.
// The hot functions are compiled for x86-64-v4 (AVX-512), -v3 (AVX2+FMA) and the baseline, picked at load
// time (target_clones), so the library runs on any x86-64 and uses what the machine has.
#include <algorithm>

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
  // Fast path: X with explicit x padding, each padded row split into its sx phases (phase q holds padded
  // columns q, q + sx, ...; Lp each): row length Dxp = sx * Lp; output x reads x + xoff[tx] for tap tx.
  bool fast = false;
  const float* xp = nullptr;
  int64_t Dxp = 0;
  std::vector<int64_t> xoff;
};

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(DYNCONV_NO_CLONES)
#define DYNCONV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DYNCONV_CLONES
#endif

typedef float V16 __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) V16 Load16(const float* p) {
  V16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
static inline __attribute__((always_inline)) void Store16(float* p, V16 v) { __builtin_memcpy(p, &v, sizeof v); }
// 8 floats: rows of 8 to 15 outputs (and the head taps, see HeadTaps).
typedef float V8 __attribute__((vector_size(32)));
template <typename V>
static inline __attribute__((always_inline)) V LoadV(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
static inline __attribute__((always_inline)) void StoreV(float* p, V v) { __builtin_memcpy(p, &v, sizeof v); }

// W (the width of V) output columns [x0, x0 + W) of CB channels (c0 .. c0 + CB - 1) of one output row, all taps.
template <typename V, int CB>
static inline __attribute__((always_inline)) void PixelChunk(const PixelGeometry& p, const float* __restrict xc0,
                                                             const float* __restrict kbase, float* __restrict y0,
                                                             int64_t kstride, int64_t bz, int64_t by, int64_t x0) {
  const int64_t Dz = p.D[0], Dy = p.D[1], Dxp = p.Dxp;
  const int64_t plane_xp = Dz * Dy * Dxp, plane_o = p.O[0] * p.O[1] * p.O[2];
  const int64_t kx = p.k[2];
  const int64_t* xoff = p.xoff.data();
  V acc[CB];
  for (int c = 0; c < CB; ++c) acc[c] = V{};
  for (int64_t tz = 0; tz < p.k[0]; ++tz) {
    const int64_t iz = bz + tz * p.d[0];
    if (iz < 0 || iz >= Dz) continue;
    for (int64_t ty = 0; ty < p.k[1]; ++ty) {
      const int64_t iy = by + ty * p.d[1];
      if (iy < 0 || iy >= Dy) continue;
      const float* xrow = xc0 + (iz * Dy + iy) * Dxp + x0;
      const float* kr = kbase + ((tz * p.k[1] + ty) * kx) * kstride + x0;
      for (int64_t tx = 0; tx < kx; ++tx, kr += kstride) {
        const V kv = LoadV<V>(kr);
        const float* xr = xrow + xoff[tx];
        for (int c = 0; c < CB; ++c) acc[c] += kv * LoadV<V>(xr + c * plane_xp);
      }
    }
  }
  for (int c = 0; c < CB; ++c) StoreV<V>(y0 + c * plane_o + x0, acc[c]);
}

template <int CB>
static inline __attribute__((always_inline)) void PixelBlock(const PixelGeometry& p, const float* xc0,
                                                             const float* kbase, int64_t kstride, float* y0,
                                                             int64_t bz, int64_t by) {
  const int64_t Ox = p.O[2];
  if (Ox < 16) {  // 8 to 15 outputs: two chunks of 8, the second overlapping the first
    PixelChunk<V8, CB>(p, xc0, kbase, y0, kstride, bz, by, 0);
    if (Ox > 8) PixelChunk<V8, CB>(p, xc0, kbase, y0, kstride, bz, by, Ox - 8);
    return;
  }
  for (int64_t x0 = 0;; x0 += 16) {
    const int64_t xs = x0 + 16 <= Ox ? x0 : Ox - 16;  // the last chunk overlaps the previous one
    PixelChunk<V16, CB>(p, xc0, kbase, y0, kstride, bz, by, xs);
    if (x0 + 16 >= Ox) break;
  }
}

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
};

// JB taps x 16 columns per step: one F load feeds JB multiply-adds, the accumulators stay in registers. In
// 8-float halves: GCC splits 16-float vectors badly on AVX2 (through general registers and the stack).
template <int JB>
static inline __attribute__((always_inline)) void HeadTaps(const float* __restrict f0, int64_t fplane,
                                                           const float* __restrict w, const float* __restrict b,
                                                           int64_t Cf, int64_t span, float* __restrict out) {
  for (int64_t x0 = 0;; x0 += 16) {
    const int64_t xs = x0 + 16 <= span ? x0 : span - 16;  // the last chunk overlaps the previous one
    V8 lo[JB], hi[JB];
    for (int j = 0; j < JB; ++j) lo[j] = hi[j] = V8{} + b[j];
    const float* fp = f0 + xs;
    for (int64_t f = 0; f < Cf; ++f, fp += fplane) {
      const V8 fl = LoadV<V8>(fp), fh = LoadV<V8>(fp + 8);
      for (int j = 0; j < JB; ++j) {
        const float wj = w[j * Cf + f];
        lo[j] += wj * fl;
        hi[j] += wj * fh;
      }
    }
    for (int j = 0; j < JB; ++j) {
      StoreV<V8>(out + j * span + xs, lo[j]);
      StoreV<V8>(out + j * span + xs + 8, hi[j]);
    }
    if (x0 + 16 >= span) break;
  }
}

// The taps of kernel group g of sample n at the `span` consecutive output positions from pos0 (whole rows):
// out[j * span + i], j < KK.
DYNCONV_CLONES void HeadTapsOf(const PixelGeometry& p, const KernelSource& ks, int64_t n, int64_t g, int64_t pos0,
                               int64_t span, float* __restrict out) {
  const int64_t KK = p.KK, Cf = ks.Cf;
  const int64_t plane_o = p.O[0] * p.O[1] * p.O[2];
  const float* f0 = ks.F + n * Cf * plane_o + pos0;
  const float* w = ks.HW + g * KK * Cf;
  const float* b = ks.HB + g * KK;
  if (span >= 16) {
    // 6 taps at a time: 12 accumulators + the F row in the 16 registers of AVX2.
    int64_t j = 0;
    for (; j + 6 <= KK; j += 6) HeadTaps<6>(f0, plane_o, w + j * Cf, b + j, Cf, span, out + j * span);
    for (; j + 3 <= KK; j += 3) HeadTaps<3>(f0, plane_o, w + j * Cf, b + j, Cf, span, out + j * span);
    for (; j < KK; ++j) HeadTaps<1>(f0, plane_o, w + j * Cf, b + j, Cf, span, out + j * span);
    return;
  }
  for (int64_t j = 0; j < KK; ++j) {
    float* o = out + j * span;
    for (int64_t x = 0; x < span; ++x) o[x] = b[j];
    for (int64_t f = 0; f < Cf; ++f) {
      const float wf = w[j * Cf + f];
      const float* fr = f0 + f * plane_o;
      for (int64_t x = 0; x < span; ++x) o[x] += wf * fr[x];
    }
  }
}

// The fast path of one output row oy of a task (see PixelRow); kbase: tap 0 at output x = 0 of this row,
// kst: the distance between taps.
DYNCONV_CLONES void PixelRowFast(const PixelGeometry& p, const float* kbase, int64_t kst, float* __restrict Y,
                                 const PixelTask& tk, int64_t oy) {
  const int64_t Oz = p.O[0], Oy = p.O[1], Ox = p.O[2];
  const int64_t n = tk.n, g = tk.g, oz = tk.oz;
  const int64_t plane_o = Oz * Oy * Ox, plane_xp = p.D[0] * p.D[1] * p.Dxp;
  const int64_t row_o = (oz * Oy + oy) * Ox;
  const int64_t bz = oz * p.s[0] - p.pb[0], by = oy * p.s[1] - p.pb[1];
  int64_t c = g * p.Cg;
  const int64_t ce = (g + 1) * p.Cg;
  for (; c + 8 <= ce; c += 8)
    PixelBlock<8>(p, p.xp + (n * p.C + c) * plane_xp, kbase, kst, Y + (n * p.C + c) * plane_o + row_o, bz, by);
  const float* xc = p.xp + (n * p.C + c) * plane_xp;
  float* yc = Y + (n * p.C + c) * plane_o + row_o;
  switch (ce - c) {
    case 7: PixelBlock<7>(p, xc, kbase, kst, yc, bz, by); break;
    case 6: PixelBlock<6>(p, xc, kbase, kst, yc, bz, by); break;
    case 5: PixelBlock<5>(p, xc, kbase, kst, yc, bz, by); break;
    case 4: PixelBlock<4>(p, xc, kbase, kst, yc, bz, by); break;
    case 3: PixelBlock<3>(p, xc, kbase, kst, yc, bz, by); break;
    case 2: PixelBlock<2>(p, xc, kbase, kst, yc, bz, by); break;
    case 1: PixelBlock<1>(p, xc, kbase, kst, yc, bz, by); break;
    default: break;
  }
}

// Copies rows of X into rows of length Dxp = sx * Lp: padded column j (pb zeros before X's row, zeros after)
// goes to phase j % sx, position j / sx.
DYNCONV_CLONES void PadRows(const float* __restrict X, float* __restrict XP, int64_t Dx, int64_t Dxp, int64_t pb,
                            int64_t sx, int64_t r0, int64_t r1) {
  const int64_t Lp = Dxp / sx;
  for (int64_t r = r0; r < r1; ++r) {
    const float* src = X + r * Dx;
    float* dst = XP + r * Dxp;
    if (sx == 1) {
      for (int64_t i = 0; i < pb; ++i) dst[i] = 0.f;
      for (int64_t i = 0; i < Dx; ++i) dst[pb + i] = src[i];
      for (int64_t i = pb + Dx; i < Dxp; ++i) dst[i] = 0.f;
      continue;
    }
    for (int64_t q = 0; q < sx; ++q) {
      float* ph = dst + q * Lp;
      for (int64_t i = 0; i < Lp; ++i) {
        const int64_t j = i * sx + q - pb;
        ph[i] = j >= 0 && j < Dx ? src[j] : 0.f;
      }
    }
  }
}

// Computes Y[n, g*Cg:(g+1)*Cg, oz, oy, :] (kbase, kst as for PixelRowFast).
DYNCONV_CLONES void PixelRow(const PixelGeometry& p, const float* __restrict X, const float* kbase, int64_t kst,
                             float* __restrict Y, const PixelTask& tk, int64_t oy) {
  const int64_t Oz = p.O[0], Oy = p.O[1], Ox = p.O[2];
  const int64_t Dz = p.D[0], Dy = p.D[1], Dx = p.D[2];
  const int64_t n = tk.n, g = tk.g, oz = tk.oz;
  const int64_t plane_o = Oz * Oy * Ox, plane_x = Dz * Dy * Dx;
  const int64_t row_o = (oz * Oy + oy) * Ox;
  const int64_t bz = (oz / p.up) * p.s[0] - p.pb[0], by = (oy / p.up) * p.s[1] - p.pb[1];
  const int64_t kx = p.k[2];
  for (int64_t c = g * p.Cg; c < (g + 1) * p.Cg; ++c) {
    float* __restrict yr = Y + (n * p.C + c) * plane_o + row_o;
    for (int64_t x = 0; x < Ox; ++x) yr[x] = 0.f;
    const float* xc = X + (n * p.C + c) * plane_x;
    for (int64_t tz = 0; tz < p.k[0]; ++tz) {
      const int64_t iz = bz + tz * p.d[0];
      if (iz < 0 || iz >= Dz) continue;
      for (int64_t ty = 0; ty < p.k[1]; ++ty) {
        const int64_t iy = by + ty * p.d[1];
        if (iy < 0 || iy >= Dy) continue;
        const float* __restrict xr = xc + (iz * Dy + iy) * Dx;
        const float* kj = kbase + ((tz * p.k[1] + ty) * kx) * kst;
        for (int64_t tx = 0; tx < kx; ++tx, kj += kst) {
          const float* __restrict kr = kj;
          const int64_t off = p.off[tx], xa = p.x0[tx], xb = p.x1[tx];
          if (p.unit_x) {
            const float* __restrict xs = xr + off;
            for (int64_t x = xa; x < xb; ++x) yr[x] += kr[x] * xs[x];
          } else {
            const int64_t* __restrict xi = p.xin.data();
            const float* __restrict xs = xr + off;
            for (int64_t x = xa; x < xb; ++x) yr[x] += kr[x] * xs[xi[x]];
          }
        }
      }
    }
  }
}

// The attributes of both per-pixel ops (docs/ops.md), read at kernel creation.
struct PixelAttrs {
  std::vector<int64_t> kernel_shape, strides, pads, dilations;
  int64_t upsample = 1;

  OrtStatus* Read(const OrtKernelInfo* info) {
    if (!AttrInts(info, "kernel_shape", &kernel_shape) || kernel_shape.empty())
      return Error("attribute kernel_shape is required");
    const size_t r = kernel_shape.size();
    if (r > static_cast<size_t>(kMaxRank)) return Error("spatial rank %zu is not supported (1 to 3)", r);
    for (int64_t k : kernel_shape)
      if (k < 1) return Error("kernel_shape must be >= 1");
    if (!AttrInts(info, "strides", &strides)) strides.assign(r, 1);
    if (!AttrInts(info, "dilations", &dilations)) dilations.assign(r, 1);
    if (!AttrInts(info, "pads", &pads)) pads.assign(2 * r, 0);
    if (strides.size() != r || dilations.size() != r || pads.size() != 2 * r)
      return Error("strides, dilations and pads must have %zu, %zu and %zu values", r, r, 2 * r);
    for (size_t i = 0; i < r; ++i)
      if (strides[i] < 1 || dilations[i] < 1) return Error("strides and dilations must be >= 1");
    for (int64_t p : pads)
      if (p < 0) return Error("pads must be >= 0");
    int64_t up = 1;
    if (AttrInt(info, "upsample", &up)) upsample = up;
    if (upsample < 1) return Error("upsample must be >= 1");
    int64_t group = 1, transpose = 0;
    if (AttrInt(info, "group", &group) && group != 1) return Error("the op has no group attribute");
    if (AttrInt(info, "transpose", &transpose) && transpose != 0) return Error("the op has no transpose form");
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
    const float* x = X.data;
    float* y = Y.data;
    if (tasks == 0 || Ox == 0) return nullptr;
    p.fast = p.up == 1 && Ox >= 8;
    FloatBuffer padded;
    if (p.fast) {
      const int64_t pl = p.pb[2], pr = pads[r - 1 + r];
      const int64_t Lp = (Dx + pl + pr + sx - 1) / sx;
      p.Dxp = sx * Lp;
      p.xoff.resize(kx);
      for (int64_t tx = 0; tx < kx; ++tx) p.xoff[tx] = ((tx * p.d[2]) % sx) * Lp + (tx * p.d[2]) / sx;
      if (pl == 0 && pr == 0 && sx == 1) {
        p.xp = x;
      } else {
        const int64_t rows = p.N * p.C * p.D[0] * p.D[1];
        DC_TRY(padded.Alloc(ctx, rows * p.Dxp));
        float* xp = padded.get();
        const int64_t dxp = p.Dxp;
        DC_TRY(ParallelRange(ctx, rows, 256, [&](int64_t r0, int64_t r1) { PadRows(x, xp, Dx, dxp, pl, sx, r0, r1); }));
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
      if (ks.K != nullptr) {
        kb = ks.K + (tk.n * p.G + tk.g) * p.KK * plane_o + pos0;
        kst = plane_o;
      } else {
        // One buffer per pool thread, grown to the largest it has needed (a task runs on one thread).
        thread_local std::vector<float> taps;
        kst = (tk.oy1 - tk.oy0) * Ox;
        if (taps.size() < static_cast<size_t>(p.KK * kst)) taps.resize(static_cast<size_t>(p.KK * kst));
        HeadTapsOf(p, ks, tk.n, tk.g, pos0, kst, taps.data());
        kb = taps.data();
      }
      for (int64_t oy = tk.oy0; oy < tk.oy1; ++oy) {
        const float* kr = kb + (oy - tk.oy0) * Ox;
        if (p.fast) PixelRowFast(p, kr, kst, y, tk, oy);
        else PixelRow(p, x, kr, kst, y, tk, oy);
      }
    });
  }
};

struct PixelConvKernel {
  static constexpr const char* kName = "PixelConv";
  static constexpr size_t kInputs = 2;
  PixelAttrs attrs;

  OrtStatus* Init(const OrtKernelInfo* info) { return attrs.Read(info); }

  OrtStatus* Compute(OrtKernelContext* ctx) const {
    Tensor X, Kt;
    DC_TRY(InputTensor(ctx, 0, "X", &X));
    DC_TRY(InputTensor(ctx, 1, "K", &Kt));
    PixelGeometry p;
    DC_TRY(attrs.Geometry(X, &p));
    DC_TRY(attrs.CheckPerPixel(Kt, "K", "[N, G, prod(kernel_shape), *O]", p, -1, p.KK));
    p.G = Kt.dims[1];
    KernelSource ks;
    ks.K = Kt.data;
    return attrs.Run(ctx, X, p, ks);
  }
};

struct PixelConvHeadKernel {
  static constexpr const char* kName = "PixelConvHead";
  static constexpr size_t kInputs = 4;
  PixelAttrs attrs;

  OrtStatus* Init(const OrtKernelInfo* info) { return attrs.Read(info); }

  OrtStatus* Compute(OrtKernelContext* ctx) const {
    Tensor X, F, HW, HB;
    DC_TRY(InputTensor(ctx, 0, "X", &X));
    DC_TRY(InputTensor(ctx, 1, "F", &F));
    DC_TRY(InputTensor(ctx, 2, "HW", &HW));
    DC_TRY(InputTensor(ctx, 3, "HB", &HB));
    PixelGeometry p;
    DC_TRY(attrs.Geometry(X, &p));
    if (HW.Rank() != 2 || HW.dims[0] < 1 || HW.dims[0] % p.KK != 0)
      return Error("HW must be [G * %lld, Cf], got shape %s", static_cast<long long>(p.KK), DimsString(HW.dims).c_str());
    if (HB.Rank() != 1 || HB.dims[0] != HW.dims[0])
      return Error("HB must be [%lld], got shape %s", static_cast<long long>(HW.dims[0]), DimsString(HB.dims).c_str());
    DC_TRY(attrs.CheckPerPixel(F, "F", "[N, Cf, *O]", p, HW.dims[1], -1));
    p.G = HW.dims[0] / p.KK;
    KernelSource ks;
    ks.F = F.data;
    ks.HW = HW.data;
    ks.HB = HB.data;
    ks.Cf = HW.dims[1];
    return attrs.Run(ctx, X, p, ks);
  }
};

}  // namespace

const OrtCustomOp* PixelConvOp() {
  static CustomOp<PixelConvKernel> op;
  return &op;
}

const OrtCustomOp* PixelConvHeadOp() {
  static CustomOp<PixelConvHeadKernel> op;
  return &op;
}

}  // namespace dynconv
