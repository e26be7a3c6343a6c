// dynconv: the row kernels of com.dynconv.PixelConv (see pixel_conv.cc). No include guard and no includes on
// purpose: pixel_conv.cc includes this file once per instruction set, each time inside its own namespace and
// under its own `#pragma GCC target`, so the same source is compiled for the baseline, AVX2+FMA and AVX-512 and
// the kernel picks one at run time (plain per-target copies: GCC 10's target_clones cannot take arch= names).
// Uses PixelGeometry, PixelTask, DecodeTask and V16 from pixel_conv.cc.

static inline __attribute__((always_inline)) V16 Load16(const float* p) {
  V16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
static inline __attribute__((always_inline)) void Store16(float* p, V16 v) { __builtin_memcpy(p, &v, sizeof v); }

// 16 output columns [x0, x0 + 16) of CB channels (c0 .. c0 + CB - 1) of one output row, all taps.
template <int CB>
static inline __attribute__((always_inline)) void PixelChunk(const PixelGeometry& p, const float* __restrict xc0,
                                                             const float* __restrict kbase, float* __restrict y0,
                                                             int64_t bz, int64_t by, int64_t x0) {
  const int64_t Dz = p.D[0], Dy = p.D[1], Dxp = p.Dxp;
  const int64_t plane_xp = Dz * Dy * Dxp, plane_o = p.O[0] * p.O[1] * p.O[2];
  const int64_t kx = p.k[2], dx = p.d[2];
  V16 acc[CB];
  for (int c = 0; c < CB; ++c) acc[c] = V16{};
  for (int64_t tz = 0; tz < p.k[0]; ++tz) {
    const int64_t iz = bz + tz * p.d[0];
    if (iz < 0 || iz >= Dz) continue;
    for (int64_t ty = 0; ty < p.k[1]; ++ty) {
      const int64_t iy = by + ty * p.d[1];
      if (iy < 0 || iy >= Dy) continue;
      const float* xr = xc0 + (iz * Dy + iy) * Dxp + x0;
      const float* kr = kbase + ((tz * p.k[1] + ty) * kx) * plane_o + x0;
      for (int64_t tx = 0; tx < kx; ++tx, kr += plane_o, xr += dx) {
        const V16 kv = Load16(kr);
        for (int c = 0; c < CB; ++c) acc[c] += kv * Load16(xr + c * plane_xp);
      }
    }
  }
  for (int c = 0; c < CB; ++c) Store16(y0 + c * plane_o + x0, acc[c]);
}

template <int CB>
static inline __attribute__((always_inline)) void PixelBlock(const PixelGeometry& p, const float* xc0,
                                                             const float* kbase, float* y0, int64_t bz, int64_t by) {
  const int64_t Ox = p.O[2];
  for (int64_t x0 = 0;; x0 += 16) {
    const int64_t xs = x0 + 16 <= Ox ? x0 : Ox - 16;  // the last chunk overlaps the previous one
    PixelChunk<CB>(p, xc0, kbase, y0, bz, by, xs);
    if (x0 + 16 >= Ox) break;
  }
}

// The fast path of one task (see PixelRow).
void PixelRowFast(const PixelGeometry& p, const float* __restrict K, float* __restrict Y, int64_t task) {
  const int64_t Oz = p.O[0], Oy = p.O[1], Ox = p.O[2];
  const PixelTask tk = DecodeTask(p, task);
  const int64_t n = tk.n, g = tk.g, oz = tk.oz, oy = tk.oy;
  const int64_t plane_o = Oz * Oy * Ox, plane_xp = p.D[0] * p.D[1] * p.Dxp;
  const int64_t row_o = (oz * Oy + oy) * Ox;
  const int64_t bz = oz * p.s[0] - p.pb[0], by = oy * p.s[1] - p.pb[1];
  const float* kbase = K + (n * p.G + g) * p.KK * plane_o + row_o;
  int64_t c = g * p.Cg;
  const int64_t ce = (g + 1) * p.Cg;
  for (; c + 8 <= ce; c += 8)
    PixelBlock<8>(p, p.xp + (n * p.C + c) * plane_xp, kbase, Y + (n * p.C + c) * plane_o + row_o, bz, by);
  const float* xc = p.xp + (n * p.C + c) * plane_xp;
  float* yc = Y + (n * p.C + c) * plane_o + row_o;
  switch (ce - c) {
    case 7: PixelBlock<7>(p, xc, kbase, yc, bz, by); break;
    case 6: PixelBlock<6>(p, xc, kbase, yc, bz, by); break;
    case 5: PixelBlock<5>(p, xc, kbase, yc, bz, by); break;
    case 4: PixelBlock<4>(p, xc, kbase, yc, bz, by); break;
    case 3: PixelBlock<3>(p, xc, kbase, yc, bz, by); break;
    case 2: PixelBlock<2>(p, xc, kbase, yc, bz, by); break;
    case 1: PixelBlock<1>(p, xc, kbase, yc, bz, by); break;
    default: break;
  }
}

// Copies rows of X into rows of length Dxp with pb zeros before and the rest after.
void PadRows(const float* __restrict X, float* __restrict XP, int64_t Dx, int64_t Dxp, int64_t pb, int64_t r0,
             int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* src = X + r * Dx;
    float* dst = XP + r * Dxp;
    for (int64_t i = 0; i < pb; ++i) dst[i] = 0.f;
    for (int64_t i = 0; i < Dx; ++i) dst[pb + i] = src[i];
    for (int64_t i = pb + Dx; i < Dxp; ++i) dst[i] = 0.f;
  }
}

// Computes Y[n, g*Cg:(g+1)*Cg, oz, oy, :] for task = ((n * G + g) * Oz + oz) * Oy + oy.
void PixelRow(const PixelGeometry& p, const float* __restrict X, const float* __restrict K, float* __restrict Y,
              int64_t task) {
  const int64_t Oz = p.O[0], Oy = p.O[1], Ox = p.O[2];
  const int64_t Dz = p.D[0], Dy = p.D[1], Dx = p.D[2];
  const PixelTask tk = DecodeTask(p, task);
  const int64_t n = tk.n, g = tk.g, oz = tk.oz, oy = tk.oy;
  const int64_t plane_o = Oz * Oy * Ox, plane_x = Dz * Dy * Dx;
  const int64_t row_o = (oz * Oy + oy) * Ox;
  const int64_t bz = (oz / p.up) * p.s[0] - p.pb[0], by = (oy / p.up) * p.s[1] - p.pb[1];
  const int64_t kx = p.k[2];
  const float* kbase = K + (n * p.G + g) * p.KK * plane_o + row_o;
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
        const float* kj = kbase + ((tz * p.k[1] + ty) * kx) * plane_o;
        for (int64_t tx = 0; tx < kx; ++tx, kj += plane_o) {
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
