// dynconv: the row kernels of com.dynconv.PixelConv and PixelConvHead (see pixel_conv.cc). No include guard and
// no includes on purpose: pixel_conv.cc includes this file once per instruction set, each time inside its own
// namespace and under its own `#pragma GCC target`, so the same source is compiled for the baseline, AVX2+FMA and
// AVX-512 and the kernel picks one at run time (plain per-target copies: GCC 10's target_clones cannot take arch=
// names). Uses PixelGeometry, PixelTask, KernelSource and V8 from pixel_conv.cc.

template <typename V>
static inline __attribute__((always_inline)) V LoadV(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
static inline __attribute__((always_inline)) void StoreV(float* p, V v) { __builtin_memcpy(p, &v, sizeof v); }

// Calls row(iz, iy, t) for every tap row (tz, ty) whose input row (iz, iy) lies inside the input, with
// t = tz * k[1] + ty; (bz, by) is the input position of the output row's first tap.
template <typename F>
static inline __attribute__((always_inline)) void ForEachTapRow(const PixelGeometry& p, int64_t bz, int64_t by,
                                                                const F& row) {
  for (int64_t tz = 0; tz < p.k[0]; ++tz) {
    const int64_t iz = bz + tz * p.d[0];
    if (iz < 0 || iz >= p.D[0]) continue;
    for (int64_t ty = 0; ty < p.k[1]; ++ty) {
      const int64_t iy = by + ty * p.d[1];
      if (iy < 0 || iy >= p.D[1]) continue;
      row(iz, iy, tz * p.k[1] + ty);
    }
  }
}

// W (the width of V) output columns [x0, x0 + W) of CB channels (c0 .. c0 + CB - 1) of one output row, all taps.
// A block width known at compile time, for ForChannelBlocks' callback (`decltype(cb)::value`).
template <int CB>
struct ChannelBlock {
  static constexpr int value = CB;
};

template <int CB, typename F>
static inline __attribute__((always_inline)) void RestChannels(int64_t c, int64_t rest, const F& block) {
  if constexpr (CB > 0) {
    if (rest == CB) block(c, ChannelBlock<CB>{});
    else RestChannels<CB - 1>(c, rest, block);
  }
}

// Calls block(c, ChannelBlock<CB>{}) over the channels [c, ce): blocks of W channels, then one block of the rest,
// so that each call has its channel count as a template argument (its accumulators stay in registers).
template <int W, typename F>
static inline __attribute__((always_inline)) void ForChannelBlocks(int64_t c, int64_t ce, const F& block) {
  for (; c + W <= ce; c += W) block(c, ChannelBlock<W>{});
  RestChannels<W - 1>(c, ce - c, block);
}

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
  ForEachTapRow(p, bz, by, [&](int64_t iz, int64_t iy, int64_t t) __attribute__((always_inline)) {
    const float* xrow = xc0 + (iz * Dy + iy) * Dxp + x0;
    const float* kr = kbase + (t * kx) * kstride + x0;
    for (int64_t tx = 0; tx < kx; ++tx, kr += kstride) {
      const V kv = LoadV<V>(kr);
      const float* xr = xrow + xoff[tx];
      for (int c = 0; c < CB; ++c) acc[c] += kv * LoadV<V>(xr + c * plane_xp);
    }
  });
  for (int c = 0; c < CB; ++c) StoreV<V>(y0 + c * plane_o + x0, acc[c]);
}

// One output row of CB channels, 8 columns at a time (the last chunk overlaps the previous one instead of a
// remainder loop; Ox >= 4, rows under 8 in chunks of 4). 8-float chunks: the CB accumulators and the tap vector stay in the 16 registers of
// AVX2 (16-float chunks of 8 channels spilled: GCC splits them through the stack; 2x slower).
template <int CB>
static inline __attribute__((always_inline)) void PixelBlock(const PixelGeometry& p, const float* xc0,
                                                             const float* kbase, int64_t kstride, float* y0,
                                                             int64_t bz, int64_t by) {
  const int64_t Ox = p.O[2];
  if (Ox < 8) {
    // Rows of 4 to 7 (RedNet's 7x7 stage): 4 columns at a time, the second chunk overlapping the first.
    for (int64_t x0 = 0;; x0 += 4) {
      const int64_t xs = x0 + 4 <= Ox ? x0 : Ox - 4;
      PixelChunk<V4, CB>(p, xc0, kbase, y0, kstride, bz, by, xs);
      if (x0 + 4 >= Ox) break;
    }
    return;
  }
  for (int64_t x0 = 0;; x0 += 8) {
    const int64_t xs = x0 + 8 <= Ox ? x0 : Ox - 8;
    PixelChunk<V8, CB>(p, xc0, kbase, y0, kstride, bz, by, xs);
    if (x0 + 8 >= Ox) break;
  }
}

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
void HeadTapsOf(const PixelGeometry& p, const KernelSource& ks, int64_t n, int64_t g, int64_t pos0,
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

typedef int32_t I8 __attribute__((vector_size(32)));

// exp(x) for x <= 0 (the logits minus their maximum), 8 at a time: Cephes' expf (x = n ln2 + r, |r| <= ln2 / 2,
// a degree-7 polynomial for e^r, times 2^n); within 2 ulp of expf. Below -87.3 (e^x under FLT_MIN) it clamps.
static inline __attribute__((always_inline)) V8 ExpNonPositive(V8 x) {
  x = x < -87.3f ? V8{} - 87.3f : x;
  const V8 magic = V8{} + 12582912.f;  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  const V8 fn = (x * 1.44269504088896341f + magic) - magic;
  const V8 r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
  V8 q = V8{} + 1.9875691500e-4f;
  q = q * r + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  q = q * (r * r) + r + 1.f;
  const I8 bits = (__builtin_convertvector(fn, I8) + 127) << 23;
  V8 scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return q * scale;
}

// kernel_norm = 1: the softmax over the KK taps (kstride apart in k) of each of `span` consecutive positions,
// into out[j * span + i]: maximum subtracted, exp, divided by the sum (as ONNX Runtime's Softmax does).
void SoftmaxTaps(const float* __restrict k, int64_t kstride, int64_t KK, int64_t span, float* __restrict out) {
  if (span >= 8) {
    for (int64_t x0 = 0;; x0 += 8) {
      const int64_t xs = x0 + 8 <= span ? x0 : span - 8;  // the last chunk overlaps the previous one
      V8 m = LoadV<V8>(k + xs);
      for (int64_t j = 1; j < KK; ++j) {
        const V8 v = LoadV<V8>(k + j * kstride + xs);
        m = v > m ? v : m;
      }
      V8 sum{};
      for (int64_t j = 0; j < KK; ++j) {
        const V8 e = ExpNonPositive(LoadV<V8>(k + j * kstride + xs) - m);
        sum += e;
        StoreV<V8>(out + j * span + xs, e);
      }
      const V8 inv = 1.f / sum;
      for (int64_t j = 0; j < KK; ++j) StoreV<V8>(out + j * span + xs, LoadV<V8>(out + j * span + xs) * inv);
      if (x0 + 8 >= span) break;
    }
    return;
  }
  for (int64_t x = 0; x < span; ++x) {
    float m = k[x];
    for (int64_t j = 1; j < KK; ++j) m = std::max(m, k[j * kstride + x]);
    float sum = 0.f;
    for (int64_t j = 0; j < KK; ++j) sum += (out[j * span + x] = std::exp(k[j * kstride + x] - m));
    for (int64_t j = 0; j < KK; ++j) out[j * span + x] /= sum;
  }
}

// The fast path of one output row oy of a task (see PixelRow); kbase: tap 0 at output x = 0 of this row,
// kst: the distance between taps.
void PixelRowFast(const PixelGeometry& p, const float* kbase, int64_t kst, float* __restrict Y,
                                 const PixelTask& tk, int64_t oy) {
  const int64_t Oz = p.O[0], Oy = p.O[1], Ox = p.O[2];
  const int64_t n = tk.n, g = tk.g, oz = tk.oz;
  const int64_t plane_o = Oz * Oy * Ox, plane_xp = p.D[0] * p.D[1] * p.Dxp;
  const int64_t row_o = (oz * Oy + oy) * Ox;
  const int64_t bz = (oz / p.up) * p.s[0] - p.pb[0], by = (oy / p.up) * p.s[1] - p.pb[1];
  ForChannelBlocks<8>(g * p.Cg, (g + 1) * p.Cg, [&](int64_t c, auto cb) __attribute__((always_inline)) {
    PixelBlock<decltype(cb)::value>(p, p.xp + (n * p.C + c) * plane_xp, kbase, kst,
                                    Y + (n * p.C + c) * plane_o + row_o, bz, by);
  });
}

// Copies rows of X into rows of length Dxp = sx * Lp: padded column j (pb zeros before X's row, zeros after)
// goes to phase j % sx, position j / sx. With up-sampling (sx = 1 then) each padded column is written up times
// in a row (Dxp = up * padded length): output x then reads column x + up * tap offset.
void PadRows(const float* __restrict X, float* __restrict XP, int64_t Dx, int64_t Dxp, int64_t pb,
                            int64_t sx, int64_t up, int64_t r0, int64_t r1) {
  const int64_t Lp = Dxp / sx;
  for (int64_t r = r0; r < r1; ++r) {
    const float* src = X + r * Dx;
    float* dst = XP + r * Dxp;
    if (up > 1) {
      for (int64_t i = 0; i < Dxp / up; ++i) {
        const int64_t j = i - pb;
        const float v = j >= 0 && j < Dx ? src[j] : 0.f;
        for (int64_t u = 0; u < up; ++u) dst[i * up + u] = v;
      }
      continue;
    }
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
void PixelRow(const PixelGeometry& p, const float* __restrict X, const float* kbase, int64_t kst,
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
    ForEachTapRow(p, bz, by, [&](int64_t iz, int64_t iy, int64_t t) __attribute__((always_inline)) {
      const float* __restrict xr = xc + (iz * Dy + iy) * Dx;
      const float* kj = kbase + (t * kx) * kst;
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
    });
  }
}


typedef int32_t I8Mask __attribute__((vector_size(32)));
typedef int32_t I4Mask __attribute__((vector_size(16)));

// Stores the two x phases of W base columns interleaved: y[2b + px] = a_px[b].
static inline __attribute__((always_inline)) void StorePhases(float* y, V8 a0, V8 a1) {
  StoreV<V8>(y, __builtin_shuffle(a0, a1, I8Mask{0, 8, 1, 9, 2, 10, 3, 11}));
  StoreV<V8>(y + 8, __builtin_shuffle(a0, a1, I8Mask{4, 12, 5, 13, 6, 14, 7, 15}));
}
static inline __attribute__((always_inline)) void StorePhases(float* y, V4 a0, V4 a1) {
  StoreV<V4>(y, __builtin_shuffle(a0, a1, I4Mask{0, 4, 1, 5}));
  StoreV<V4>(y + 4, __builtin_shuffle(a0, a1, I4Mask{2, 6, 3, 7}));
}

// The up-sampling-by-2 path: W (the width of V) base columns [b0, b0 + W) of CB channels of one output row, both
// x phases (output columns 2 * b + px), all taps; taps[px * KK * Bx + j * Bx + b]. One X load feeds both phases'
// accumulators (kept in a register: GCC would fold it into both multiply-adds, loading it twice).
template <typename V, int CB>
static inline __attribute__((always_inline)) void PixelChunkUp2(const PixelGeometry& p, const float* __restrict xc0,
                                                                const float* __restrict taps, int64_t Bx,
                                                                float* __restrict y0, int64_t bz, int64_t by,
                                                                int64_t b0) {
  const int64_t Dy = p.D[1], Dxp = p.Dxp;
  const int64_t plane_xp = p.D[0] * Dy * Dxp, plane_o = p.O[0] * p.O[1] * p.O[2];
  const int64_t kx = p.k[2], dx = p.d[2], phase = p.KK * Bx;
  V a0[CB], a1[CB];
  for (int c = 0; c < CB; ++c) a0[c] = a1[c] = V{};
  ForEachTapRow(p, bz, by, [&](int64_t iz, int64_t iy, int64_t t) __attribute__((always_inline)) {
    const float* xr = xc0 + (iz * Dy + iy) * Dxp + b0;
    const float* kr = taps + (t * kx) * Bx + b0;
    for (int64_t tx = 0; tx < kx; ++tx, kr += Bx, xr += dx) {
      const V k0 = LoadV<V>(kr), k1 = LoadV<V>(kr + phase);
      for (int c = 0; c < CB; ++c) {
        V xv = LoadV<V>(xr + c * plane_xp);
#if defined(__x86_64__) && defined(__AVX__)
        __asm__("" : "+x"(xv));  // AVX registers hold V8 (the baseline splits it: no pin there)
#endif
        a0[c] += k0 * xv;
        a1[c] += k1 * xv;
      }
    }
  });
  for (int c = 0; c < CB; ++c) StorePhases(y0 + c * plane_o + 2 * b0, a0[c], a1[c]);
}

template <int CB>
static inline __attribute__((always_inline)) void PixelBlockUp2(const PixelGeometry& p, const float* xc0,
                                                                const float* taps, int64_t Bx, float* y0,
                                                                int64_t bz, int64_t by) {
  int64_t b0 = 0;
  for (; b0 + 8 <= Bx; b0 += 8) PixelChunkUp2<V8, CB>(p, xc0, taps, Bx, y0, bz, by, b0);
  // The rest (Bx >= 8): 4 columns when that covers it, else 8 overlapping the previous chunk.
  if (b0 < Bx) {
    if (Bx - b0 <= 4) PixelChunkUp2<V4, CB>(p, xc0, taps, Bx, y0, bz, by, Bx - 4);
    else PixelChunkUp2<V8, CB>(p, xc0, taps, Bx, y0, bz, by, Bx - 8);
  }
}

// One output row oy of a task on the up-sampling-by-2 path (X padded, not repeated: p.xp, p.Dxp, xoff unused:
// tap tx reads base column b + tx * dx). 6 channels at a time: 12 accumulators, 2 tap vectors and the X vector
// in the 16 registers of AVX2.
void PixelRowUp2(const PixelGeometry& p, const float* taps, int64_t Bx, float* __restrict Y, const PixelTask& tk,
                 int64_t oy) {
  const int64_t Oz = p.O[0], Oy = p.O[1], Ox = p.O[2];
  const int64_t n = tk.n, g = tk.g, oz = tk.oz;
  const int64_t plane_o = Oz * Oy * Ox, plane_xp = p.D[0] * p.D[1] * p.Dxp;
  const int64_t row_o = (oz * Oy + oy) * Ox;
  const int64_t bz = (oz / 2) * p.s[0] - p.pb[0], by = (oy / 2) * p.s[1] - p.pb[1];
  ForChannelBlocks<6>(g * p.Cg, (g + 1) * p.Cg, [&](int64_t c, auto cb) __attribute__((always_inline)) {
    PixelBlockUp2<decltype(cb)::value>(p, p.xp + (n * p.C + c) * plane_xp, taps, Bx,
                                       Y + (n * p.C + c) * plane_o + row_o, bz, by);
  });
}
