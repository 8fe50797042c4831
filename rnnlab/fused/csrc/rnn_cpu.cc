// Whole-sequence LSTM and GRU kernels for XLA:CPU, called through jax.ffi (rnnlab/fused/native.py).
//
// Shape legend: K seeds (vmapped problems), T time, B batch, D input features, H hidden units, Hp = H rounded up
// to 16. Arrays are time-major: x [K.., T, B, D]; every leading axis before the last three of x is a seed axis.
//
// Why: the XLA while loop costs ~25 us per iteration plus 13-18 kernels per step for these cells on this CPU;
// here the whole loop is one call, each step is one small matrix product per 16 hidden units whose epilogue
// applies the gate equations while the tile is in L1, and the recurrent weights are packed once per call.
// The forward pass saves what the backward pass needs (LSTM: gates i, f, g, o and the carries; GRU: r, z, n,
// h W_hn + b_hn and the carries); the backward pass returns the stacked gate pre-activation gradients, from
// which rnnlab/fused/native.py forms dW_ih, dW_hh, the bias gradients and dx as large XLA matmuls.
// Equations (gate order and conventions): rnnlab/cells/gated.py. Masking and probes as rnnlab/scan: on a step
// whose mask is false the carry is frozen and the output is 0; probes are added to the carry after the step.
//
// Work split: hidden units in groups of 16; a team member owns a range of groups in every step (its rows of
// the weight panels stay in its cache), one barrier per step. With K >= team size, members take whole seeds.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "gemm.h"
#include "simd.h"
#include "team.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace rnnlab {
namespace {

struct Dims {
  int64_t K, T, B, D, H;
  int64_t G() const { return (H + kNR - 1) / kNR; }
  int64_t Hp() const { return G() * kNR; }
};

// One seed's slice of an array with K equal slices; nullptr for an absent (empty) optional array.
template <class T>
struct View {
  T* p = nullptr;
  int64_t n = 0;
  T* At(int64_t k) const { return p ? p + k * n : nullptr; }
};

template <ffi::DataType DT>
View<const ffi::NativeType<DT>> In(const ffi::Buffer<DT>& b, int64_t K) {
  const int64_t n = static_cast<int64_t>(b.element_count());
  return {n ? b.typed_data() : nullptr, n / K};
}
template <ffi::DataType DT>
View<ffi::NativeType<DT>> Out(ffi::Result<ffi::Buffer<DT>>& b, int64_t K) {
  const int64_t n = static_cast<int64_t>(b->element_count());
  return {n ? b->typed_data() : nullptr, n / K};
}

// Copies a [B, H] array into a [B, Hp] buffer (its padding stays 0) and back.
template <class T>
void Pad(const T* src, const Dims& d, T* dst) {
  for (int64_t b = 0; b < d.B; ++b) std::memcpy(dst + b * d.Hp(), src + b * d.H, d.H * sizeof(T));
}
template <class T>
void Unpad(const T* src, const Dims& d, int64_t g0, int64_t g1, T* dst) {
  const int64_t u0 = g0 * kNR, u1 = std::min(g1 * kNR, d.H);
  if (u1 <= u0) return;
  for (int64_t b = 0; b < d.B; ++b) std::memcpy(dst + b * d.H + u0, src + b * d.Hp() + u0, (u1 - u0) * sizeof(T));
}

// The groups [g0, g1) of member m of n.
inline void Groups(const Dims& d, int m, int n, int64_t& g0, int64_t& g1) {
  g0 = d.G() * m / n;
  g1 = d.G() * (m + 1) / n;
}

// ------------------------------------------------------------------------------------------------- LSTM

template <class T>
struct LstmForward {
  using V = typename VecOf<T>::Type;
  Dims d;
  T slope;
  const T *x, *wih, *bias, *whh, *c0, *h0, *pc, *ph;
  const bool* mask;
  T *ys, *hseq, *cseq, *gates, *cT, *hT;
  Buffer<T> wp, bp, hbuf, cbuf;

  int64_t Panel() const { return (d.H + d.D) * kNR; }  // one gate's panel of a group: h rows, then x rows

  void Prep() {
    const int64_t G = d.G(), H = d.H, N = 4 * H;
    wp = Buffer<T>(G * 4 * Panel());
    bp = Buffer<T>(G * 4 * kNR);
    for (int64_t g = 0; g < G; ++g)
      for (int q = 0; q < 4; ++q) {
        T* dst = wp.get() + (g * 4 + q) * Panel();
        PackPanel(whh + q * H, H, N, 1, g * kNR, H, dst);
        PackPanel(wih + q * H, d.D, N, 1, g * kNR, H, dst + H * kNR);
        PackPanel(bias + q * H, 1, 0, 1, g * kNR, H, bp.get() + (g * 4 + q) * kNR);
      }
    hbuf = Buffer<T>(2 * d.B * d.Hp());
    cbuf = Buffer<T>(d.B * d.Hp());
    Pad(h0, d, hbuf.get());
    Pad(c0, d, cbuf.get());
  }

  void Epilogue(int64_t t, int64_t g, int64_t r0, int rows, const T* tile, const T* hp, T* hn) const {
    constexpr int W = V::kWidth;
    const int64_t B = d.B, H = d.H, Hp = d.Hp();
    const V s = V::Set(slope), zero = V::Set(T(0));
    const T* bq = bp.get() + g * 4 * kNR;
    for (int r = 0; r < rows; ++r) {
      const int64_t b = r0 + r;
      const bool valid = !mask || mask[t * B + b];
      const T* z = tile + r * 4 * kNR;
      for (int u = 0; u < kNR; u += W) {
        const int64_t unit = g * kNR + u;
        const int nv = static_cast<int>(std::min<int64_t>(W, H - unit));
        if (nv <= 0) break;
        const V i = Sigmoid(s * (V::Load(z + u) + V::Load(bq + u)));
        const V f = Sigmoid(s * (V::Load(z + kNR + u) + V::Load(bq + kNR + u)));
        const V gg = Tanh(V::Load(z + 2 * kNR + u) + V::Load(bq + 2 * kNR + u));
        const V o = Sigmoid(s * (V::Load(z + 3 * kNR + u) + V::Load(bq + 3 * kNR + u)));
        T* cb = cbuf.get() + b * Hp + unit;
        const V c_prev = V::Load(cb);
        const V c_new = f * c_prev + i * gg;
        const V h_new = o * Tanh(c_new);
        V c = valid ? c_new : c_prev, h = valid ? h_new : V::Load(hp + b * Hp + unit);
        const int64_t at = (t * B + b) * H + unit;
        if (pc) {
          c = c + V::LoadN(pc + at, nv);
          h = h + V::LoadN(ph + at, nv);
        }
        c.Store(cb);
        h.Store(hn + b * Hp + unit);
        (valid ? h_new : zero).StoreN(ys + at, nv);
        if (gates) {
          T* gt = gates + (t * B + b) * 4 * H + unit;
          i.StoreN(gt, nv);
          f.StoreN(gt + H, nv);
          gg.StoreN(gt + 2 * H, nv);
          o.StoreN(gt + 3 * H, nv);
          c.StoreN(cseq + at, nv);
          if (hseq) h.StoreN(hseq + at, nv);
        }
      }
    }
  }

  void Loop(int m, int n, Barrier& bar) {
    int64_t g0, g1;
    Groups(d, m, n, g0, g1);
    const int64_t B = d.B, Hp = d.Hp(), P = Panel();
    alignas(64) T tile[kMR * 4 * kNR];
    int sense = 0;
    for (int64_t t = 0; t < d.T; ++t) {
      const T* hp = hbuf.get() + (t & 1) * B * Hp;
      T* hn = hbuf.get() + ((t + 1) & 1) * B * Hp;
      const T* xt = x + t * B * d.D;
      for (int64_t g = g0; g < g1; ++g)
        for (int64_t r0 = 0; r0 < B; r0 += kMR) {
          const int rows = static_cast<int>(std::min<int64_t>(kMR, B - r0));
          for (int q = 0; q < 4; ++q) {
            const T* w = wp.get() + (g * 4 + q) * P;
            const Seg<T> segs[2] = {{hp, Hp, w, static_cast<int>(d.H)}, {xt, d.D, w + d.H * kNR, static_cast<int>(d.D)}};
            Tile(segs, 2, r0, rows, tile + q * kNR, 4 * kNR, false);
          }
          Epilogue(t, g, r0, rows, tile, hp, hn);
        }
      bar.Wait(sense);
    }
    Unpad(hbuf.get() + (d.T & 1) * B * Hp, d, g0, g1, hT);
    Unpad(cbuf.get(), d, g0, g1, cT);
  }
};

template <class T>
struct LstmBackward {
  using V = typename VecOf<T>::Type;
  Dims d;
  T slope;
  const T *gates, *cseq, *c0, *dys, *dcT, *dhT, *whh;
  const bool* mask;
  T *dz, *dc0, *dh0, *dpc, *dph;
  Buffer<T> wt, dcb, dhb;

  void Prep() {
    const int64_t G = d.G(), N = 4 * d.H;
    wt = Buffer<T>(G * N * kNR);  // W_hh^T [4H, H] in 16-unit panels
    for (int64_t g = 0; g < G; ++g) PackPanel(whh, N, 1, N, g * kNR, d.H, wt.get() + g * N * kNR);
    dcb = Buffer<T>(d.B * d.Hp());
    dhb = Buffer<T>(d.B * d.Hp());
    Pad(dcT, d, dcb.get());
    Pad(dhT, d, dhb.get());
  }

  // Step t's gate gradients dz_t from the carry gradients (dc, dh) of rows r0.. and group g; leaves in the
  // buffers dc_{t-1} and the part of dh_{t-1} that is not dz_t W_hh^T.
  void Elementwise(int64_t t, int64_t g, int64_t r0, int rows) const {
    constexpr int W = V::kWidth;
    const int64_t B = d.B, H = d.H, Hp = d.Hp();
    const V s = V::Set(slope), one = V::Set(T(1)), zero = V::Set(T(0));
    for (int r = 0; r < rows; ++r) {
      const int64_t b = r0 + r;
      const bool valid = !mask || mask[t * B + b];
      for (int u = 0; u < kNR; u += W) {
        const int64_t unit = g * kNR + u;
        const int nv = static_cast<int>(std::min<int64_t>(W, H - unit));
        if (nv <= 0) break;
        T* dcp = dcb.get() + b * Hp + unit;
        T* dhp = dhb.get() + b * Hp + unit;
        const V dc = V::Load(dcp), dh = V::Load(dhp);
        const int64_t at = (t * B + b) * H + unit;
        T* dzt = dz + (t * B + b) * 4 * H + unit;
        if (dpc) {
          dc.StoreN(dpc + at, nv);
          dh.StoreN(dph + at, nv);
        }
        if (!valid) {  // frozen carry: its gradient passes through, the step's gates get none
          for (int q = 0; q < 4; ++q) zero.StoreN(dzt + q * H, nv);
          continue;
        }
        const T* gt = gates + (t * B + b) * 4 * H + unit;
        const V i = V::LoadN(gt, nv), f = V::LoadN(gt + H, nv), gg = V::LoadN(gt + 2 * H, nv),
                o = V::LoadN(gt + 3 * H, nv);
        const V c_prev = t > 0 ? V::LoadN(cseq + at - B * H, nv) : V::LoadN(c0 + b * H + unit, nv);
        const V tc = Tanh(f * c_prev + i * gg);
        const V dhn = dh + V::LoadN(dys + at, nv);
        const V dcc = dc + dhn * o * (one - tc * tc);
        (dcc * gg * (s * i * (one - i))).StoreN(dzt, nv);
        (dcc * c_prev * (s * f * (one - f))).StoreN(dzt + H, nv);
        (dcc * i * (one - gg * gg)).StoreN(dzt + 2 * H, nv);
        (dhn * tc * (s * o * (one - o))).StoreN(dzt + 3 * H, nv);
        (dcc * f).Store(dcp);
        zero.Store(dhp);
      }
    }
  }

  void Loop(int m, int n, Barrier& bar) {
    int64_t g0, g1;
    Groups(d, m, n, g0, g1);
    const int64_t B = d.B, Hp = d.Hp(), N = 4 * d.H;
    int sense = 0;
    for (int64_t g = g0; g < g1; ++g) Elementwise(d.T - 1, g, 0, static_cast<int>(B));
    for (int64_t t = d.T - 1; t >= 0; --t) {
      bar.Wait(sense);  // dz_t complete
      const T* dzt = dz + t * B * N;
      for (int64_t g = g0; g < g1; ++g)
        for (int64_t r0 = 0; r0 < B; r0 += kMR) {
          const int rows = static_cast<int>(std::min<int64_t>(kMR, B - r0));
          const Seg<T> seg{dzt, N, wt.get() + g * N * kNR, static_cast<int>(N)};
          Tile(&seg, 1, r0, rows, dhb.get() + r0 * Hp + g * kNR, Hp, true);  // dh_{t-1} += dz_t W_hh^T
          if (t > 0) Elementwise(t - 1, g, r0, rows);
        }
    }
    Unpad(dhb.get(), d, g0, g1, dh0);
    Unpad(dcb.get(), d, g0, g1, dc0);
  }
};

// -------------------------------------------------------------------------------------------------- GRU

template <class T>
struct GruForward {
  using V = typename VecOf<T>::Type;
  Dims d;
  T slope;
  const T *x, *wih, *bias, *whh, *bhn, *h0, *ph;
  const bool* mask;
  T *ys, *hseq, *gates, *hT;
  Buffer<T> wp, bp, hbuf;

  // A group's panels: r (h rows, x rows), z (h rows, x rows), n_x (x rows), n_h (h rows).
  int64_t GroupSize() const { return 3 * (d.H + d.D) * kNR; }

  void Prep() {
    const int64_t G = d.G(), H = d.H, D = d.D, N = 3 * H;
    wp = Buffer<T>(G * GroupSize());
    bp = Buffer<T>(G * 4 * kNR);
    for (int64_t g = 0; g < G; ++g) {
      T* w = wp.get() + g * GroupSize();
      const int64_t c = g * kNR;
      for (int q = 0; q < 2; ++q) {
        PackPanel(whh + q * H, H, N, 1, c, H, w + q * (H + D) * kNR);
        PackPanel(wih + q * H, D, N, 1, c, H, w + (q * (H + D) + H) * kNR);
      }
      PackPanel(wih + 2 * H, D, N, 1, c, H, w + 2 * (H + D) * kNR);
      PackPanel(whh + 2 * H, H, N, 1, c, H, w + (2 * (H + D) + D) * kNR);
      T* bg = bp.get() + g * 4 * kNR;
      for (int q = 0; q < 3; ++q) PackPanel(bias + q * H, 1, 0, 1, c, H, bg + q * kNR);
      PackPanel(bhn, 1, 0, 1, c, H, bg + 3 * kNR);
    }
    hbuf = Buffer<T>(2 * d.B * d.Hp());
    Pad(h0, d, hbuf.get());
  }

  void Epilogue(int64_t t, int64_t g, int64_t r0, int rows, const T* tile, const T* hp, T* hn) const {
    constexpr int W = V::kWidth;
    const int64_t B = d.B, H = d.H, Hp = d.Hp();
    const V s = V::Set(slope), one = V::Set(T(1)), zero = V::Set(T(0));
    const T* bg = bp.get() + g * 4 * kNR;
    for (int r = 0; r < rows; ++r) {
      const int64_t b = r0 + r;
      const bool valid = !mask || mask[t * B + b];
      const T* z = tile + r * 4 * kNR;
      for (int u = 0; u < kNR; u += W) {
        const int64_t unit = g * kNR + u;
        const int nv = static_cast<int>(std::min<int64_t>(W, H - unit));
        if (nv <= 0) break;
        const V rg = Sigmoid(s * (V::Load(z + u) + V::Load(bg + u)));
        const V zg = Sigmoid(s * (V::Load(z + kNR + u) + V::Load(bg + kNR + u)));
        const V hng = V::Load(z + 3 * kNR + u) + V::Load(bg + 3 * kNR + u);
        const V ng = Tanh(V::Load(z + 2 * kNR + u) + V::Load(bg + 2 * kNR + u) + rg * hng);
        const V h_prev = V::Load(hp + b * Hp + unit);
        const V h_new = (one - zg) * ng + zg * h_prev;
        V h = valid ? h_new : h_prev;
        const int64_t at = (t * B + b) * H + unit;
        if (ph) h = h + V::LoadN(ph + at, nv);
        h.Store(hn + b * Hp + unit);
        (valid ? h_new : zero).StoreN(ys + at, nv);
        if (gates) {
          T* gt = gates + (t * B + b) * 4 * H + unit;
          rg.StoreN(gt, nv);
          zg.StoreN(gt + H, nv);
          ng.StoreN(gt + 2 * H, nv);
          hng.StoreN(gt + 3 * H, nv);
          if (hseq) h.StoreN(hseq + at, nv);
        }
      }
    }
  }

  void Loop(int m, int n, Barrier& bar) {
    int64_t g0, g1;
    Groups(d, m, n, g0, g1);
    const int64_t B = d.B, H = d.H, D = d.D, Hp = d.Hp();
    const int h = static_cast<int>(H), dd = static_cast<int>(D);
    alignas(64) T tile[kMR * 4 * kNR];
    int sense = 0;
    for (int64_t t = 0; t < d.T; ++t) {
      const T* hp = hbuf.get() + (t & 1) * B * Hp;
      T* hn = hbuf.get() + ((t + 1) & 1) * B * Hp;
      const T* xt = x + t * B * D;
      for (int64_t g = g0; g < g1; ++g) {
        const T* w = wp.get() + g * GroupSize();
        const Seg<T> r_seg[2] = {{hp, Hp, w, h}, {xt, D, w + H * kNR, dd}};
        const Seg<T> z_seg[2] = {{hp, Hp, w + (H + D) * kNR, h}, {xt, D, w + (2 * H + D) * kNR, dd}};
        const Seg<T> nx_seg{xt, D, w + 2 * (H + D) * kNR, dd};
        const Seg<T> nh_seg{hp, Hp, w + (2 * (H + D) + D) * kNR, h};
        for (int64_t r0 = 0; r0 < B; r0 += kMR) {
          const int rows = static_cast<int>(std::min<int64_t>(kMR, B - r0));
          Tile(r_seg, 2, r0, rows, tile, 4 * kNR, false);
          Tile(z_seg, 2, r0, rows, tile + kNR, 4 * kNR, false);
          Tile(&nx_seg, 1, r0, rows, tile + 2 * kNR, 4 * kNR, false);
          Tile(&nh_seg, 1, r0, rows, tile + 3 * kNR, 4 * kNR, false);
          Epilogue(t, g, r0, rows, tile, hp, hn);
        }
      }
      bar.Wait(sense);
    }
    Unpad(hbuf.get() + (d.T & 1) * B * Hp, d, g0, g1, hT);
  }
};

template <class T>
struct GruBackward {
  using V = typename VecOf<T>::Type;
  Dims d;
  T slope;
  const T *gates, *hseq, *h0, *dys, *dhT, *whh;
  const bool* mask;
  T *drz, *dan, *dhn, *dh0, *dph;
  Buffer<T> wt, dhb;

  void Prep() {
    const int64_t G = d.G(), N = 3 * d.H;
    wt = Buffer<T>(G * N * kNR);  // W_hh^T [3H, H]: rows 0..2H-1 meet d(r, z), rows 2H.. meet d(h W_hn + b_hn)
    for (int64_t g = 0; g < G; ++g) PackPanel(whh, N, 1, N, g * kNR, d.H, wt.get() + g * N * kNR);
    dhb = Buffer<T>(d.B * d.Hp());
    Pad(dhT, d, dhb.get());
  }

  void Elementwise(int64_t t, int64_t g, int64_t r0, int rows) const {
    constexpr int W = V::kWidth;
    const int64_t B = d.B, H = d.H, Hp = d.Hp();
    const V s = V::Set(slope), one = V::Set(T(1)), zero = V::Set(T(0));
    for (int r = 0; r < rows; ++r) {
      const int64_t b = r0 + r;
      const bool valid = !mask || mask[t * B + b];
      for (int u = 0; u < kNR; u += W) {
        const int64_t unit = g * kNR + u;
        const int nv = static_cast<int>(std::min<int64_t>(W, H - unit));
        if (nv <= 0) break;
        T* dhp = dhb.get() + b * Hp + unit;
        const V dh = V::Load(dhp);
        const int64_t at = (t * B + b) * H + unit;
        T* drzt = drz + (t * B + b) * 2 * H + unit;
        if (dph) dh.StoreN(dph + at, nv);
        if (!valid) {
          zero.StoreN(drzt, nv);
          zero.StoreN(drzt + H, nv);
          zero.StoreN(dan + at, nv);
          zero.StoreN(dhn + at, nv);
          continue;
        }
        const T* gt = gates + (t * B + b) * 4 * H + unit;
        const V rg = V::LoadN(gt, nv), zg = V::LoadN(gt + H, nv), ng = V::LoadN(gt + 2 * H, nv),
                hng = V::LoadN(gt + 3 * H, nv);
        const V h_prev = t > 0 ? V::LoadN(hseq + at - B * H, nv) : V::LoadN(h0 + b * H + unit, nv);
        const V dh_new = dh + V::LoadN(dys + at, nv);
        const V da = dh_new * (one - zg) * (one - ng * ng);  // d(pre-tanh of n)
        (da * hng * (s * rg * (one - rg))).StoreN(drzt, nv);
        (dh_new * (h_prev - ng) * (s * zg * (one - zg))).StoreN(drzt + H, nv);
        da.StoreN(dan + at, nv);
        (da * rg).StoreN(dhn + at, nv);
        (dh_new * zg).Store(dhp);
      }
    }
  }

  void Loop(int m, int n, Barrier& bar) {
    int64_t g0, g1;
    Groups(d, m, n, g0, g1);
    const int64_t B = d.B, H = d.H, Hp = d.Hp(), N = 3 * H;
    int sense = 0;
    for (int64_t g = g0; g < g1; ++g) Elementwise(d.T - 1, g, 0, static_cast<int>(B));
    for (int64_t t = d.T - 1; t >= 0; --t) {
      bar.Wait(sense);
      for (int64_t g = g0; g < g1; ++g) {
        const T* w = wt.get() + g * N * kNR;
        const Seg<T> segs[2] = {{drz + t * B * 2 * H, 2 * H, w, static_cast<int>(2 * H)},
                                {dhn + t * B * H, H, w + 2 * H * kNR, static_cast<int>(H)}};
        for (int64_t r0 = 0; r0 < B; r0 += kMR) {
          const int rows = static_cast<int>(std::min<int64_t>(kMR, B - r0));
          Tile(segs, 2, r0, rows, dhb.get() + r0 * Hp + g * kNR, Hp, true);
          if (t > 0) Elementwise(t - 1, g, r0, rows);
        }
      }
    }
    Unpad(dhb.get(), d, g0, g1, dh0);
  }
};

// --------------------------------------------------------------------------------------------- running

// Below this many multiply-adds per step, a second thread costs more in barriers than it saves.
constexpr int64_t kMinParallelWork = 1 << 17;

int TeamSize(ffi::ThreadPool& pool, int64_t max_threads, const Dims& d, int64_t macs_per_step) {
  int64_t n = std::max<int64_t>(1, pool.num_threads());
  if (max_threads > 0) n = std::min(n, max_threads);
  if (d.K > 1) return static_cast<int>(std::min(n, d.K));
  if (macs_per_step < kMinParallelWork) return 1;
  return static_cast<int>(std::min(n, d.G()));
}

// Runs make(k).Loop for every seed k: whole seeds per member when there are enough, else a team per seed.
template <class Make>
void RunSeeds(ffi::ThreadPool& pool, int team, const Dims& d, Make&& make) {
  if (d.K > 1 && d.K >= team) {
    RunTeam(pool, team, [] {}, [&](int m, int n, Barrier&) {
      for (int64_t k = m; k < d.K; k += n) {
        auto job = make(k);
        job.Prep();
        Barrier solo;
        job.Loop(0, 1, solo);
      }
    });
    return;
  }
  for (int64_t k = 0; k < d.K; ++k) {
    auto job = make(k);
    RunTeam(pool, team, [&] { job.Prep(); }, [&](int m, int n, Barrier& bar) { job.Loop(m, n, bar); });
  }
}

// x: [K.., T, B, D] and a recurrent kernel [K.., H, G*H] give the sizes.
template <ffi::DataType DT>
Dims SizesOf(const ffi::Buffer<DT>& x, const ffi::Buffer<DT>& whh) {
  auto xd = x.dimensions();
  auto wd = whh.dimensions();
  const size_t r = xd.size();
  Dims d{1, xd[r - 3], xd[r - 2], xd[r - 1], wd[wd.size() - 2]};
  for (size_t i = 0; i + 3 < r; ++i) d.K *= xd[i];
  return d;
}

template <ffi::DataType DT>
ffi::Error LstmForwardImpl(ffi::ThreadPool pool, ffi::Buffer<DT> x, ffi::Buffer<DT> wih, ffi::Buffer<DT> bias,
                           ffi::Buffer<DT> whh, ffi::Buffer<DT> c0, ffi::Buffer<DT> h0, ffi::Buffer<ffi::PRED> mask,
                           ffi::Buffer<DT> pc, ffi::Buffer<DT> ph, ffi::Result<ffi::Buffer<DT>> ys,
                           ffi::Result<ffi::Buffer<DT>> hseq, ffi::Result<ffi::Buffer<DT>> cseq,
                           ffi::Result<ffi::Buffer<DT>> gates, ffi::Result<ffi::Buffer<DT>> cT,
                           ffi::Result<ffi::Buffer<DT>> hT, double slope, int64_t max_threads) {
  using T = ffi::NativeType<DT>;
  const Dims d = SizesOf(x, whh);
  const int64_t K = d.K;
  auto vx = In(x, K), vwih = In(wih, K), vb = In(bias, K), vwhh = In(whh, K), vc0 = In(c0, K), vh0 = In(h0, K),
       vpc = In(pc, K), vph = In(ph, K);
  auto vm = In(mask, K);
  auto vys = Out(ys, K), vhs = Out(hseq, K), vcs = Out(cseq, K), vg = Out(gates, K), vcT = Out(cT, K),
       vhT = Out(hT, K);
  const int team = TeamSize(pool, max_threads, d, d.B * (d.D + d.H) * 4 * d.H);
  RunSeeds(pool, team, d, [&](int64_t k) {
    LstmForward<T> job{d, static_cast<T>(slope), vx.At(k), vwih.At(k), vb.At(k), vwhh.At(k), vc0.At(k),
                       vh0.At(k), vpc.At(k), vph.At(k), vm.At(k), vys.At(k), vhs.At(k), vcs.At(k), vg.At(k),
                       vcT.At(k), vhT.At(k)};
    return job;
  });
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error LstmBackwardImpl(ffi::ThreadPool pool, ffi::Buffer<DT> gates, ffi::Buffer<DT> cseq, ffi::Buffer<DT> c0,
                            ffi::Buffer<ffi::PRED> mask, ffi::Buffer<DT> dys, ffi::Buffer<DT> dcT,
                            ffi::Buffer<DT> dhT, ffi::Buffer<DT> whh, ffi::Result<ffi::Buffer<DT>> dz,
                            ffi::Result<ffi::Buffer<DT>> dc0, ffi::Result<ffi::Buffer<DT>> dh0,
                            ffi::Result<ffi::Buffer<DT>> dpc, ffi::Result<ffi::Buffer<DT>> dph, double slope,
                            int64_t max_threads) {
  using T = ffi::NativeType<DT>;
  const Dims d = SizesOf(dys, whh);  // dys: [K.., T, B, H] stands in for x (D is unused here)
  const int64_t K = d.K;
  auto vg = In(gates, K), vcs = In(cseq, K), vc0 = In(c0, K), vdy = In(dys, K), vdc = In(dcT, K),
       vdh = In(dhT, K), vw = In(whh, K);
  auto vm = In(mask, K);
  auto vdz = Out(dz, K), vdc0 = Out(dc0, K), vdh0 = Out(dh0, K), vdpc = Out(dpc, K), vdph = Out(dph, K);
  const int team = TeamSize(pool, max_threads, d, d.B * 4 * d.H * d.H);
  RunSeeds(pool, team, d, [&](int64_t k) {
    LstmBackward<T> job{d,         static_cast<T>(slope), vg.At(k),   vcs.At(k),  vc0.At(k),
                        vdy.At(k), vdc.At(k),             vdh.At(k),  vw.At(k),   vm.At(k),
                        vdz.At(k), vdc0.At(k),            vdh0.At(k), vdpc.At(k), vdph.At(k)};
    return job;
  });
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error GruForwardImpl(ffi::ThreadPool pool, ffi::Buffer<DT> x, ffi::Buffer<DT> wih, ffi::Buffer<DT> bias,
                          ffi::Buffer<DT> whh, ffi::Buffer<DT> bhn, ffi::Buffer<DT> h0, ffi::Buffer<ffi::PRED> mask,
                          ffi::Buffer<DT> ph, ffi::Result<ffi::Buffer<DT>> ys, ffi::Result<ffi::Buffer<DT>> hseq,
                          ffi::Result<ffi::Buffer<DT>> gates, ffi::Result<ffi::Buffer<DT>> hT, double slope,
                          int64_t max_threads) {
  using T = ffi::NativeType<DT>;
  const Dims d = SizesOf(x, whh);
  const int64_t K = d.K;
  auto vx = In(x, K), vwih = In(wih, K), vb = In(bias, K), vwhh = In(whh, K), vbhn = In(bhn, K), vh0 = In(h0, K),
       vph = In(ph, K);
  auto vm = In(mask, K);
  auto vys = Out(ys, K), vhs = Out(hseq, K), vg = Out(gates, K), vhT = Out(hT, K);
  const int team = TeamSize(pool, max_threads, d, d.B * (d.D + d.H) * 3 * d.H);
  RunSeeds(pool, team, d, [&](int64_t k) {
    GruForward<T> job{d,         static_cast<T>(slope), vx.At(k), vwih.At(k), vb.At(k),  vwhh.At(k),
                      vbhn.At(k), vh0.At(k),            vph.At(k), vm.At(k),  vys.At(k), vhs.At(k),
                      vg.At(k),  vhT.At(k)};
    return job;
  });
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error GruBackwardImpl(ffi::ThreadPool pool, ffi::Buffer<DT> gates, ffi::Buffer<DT> hseq, ffi::Buffer<DT> h0,
                           ffi::Buffer<ffi::PRED> mask, ffi::Buffer<DT> dys, ffi::Buffer<DT> dhT,
                           ffi::Buffer<DT> whh, ffi::Result<ffi::Buffer<DT>> drz, ffi::Result<ffi::Buffer<DT>> dan,
                           ffi::Result<ffi::Buffer<DT>> dhn, ffi::Result<ffi::Buffer<DT>> dh0,
                           ffi::Result<ffi::Buffer<DT>> dph, double slope, int64_t max_threads) {
  using T = ffi::NativeType<DT>;
  const Dims d = SizesOf(dys, whh);
  const int64_t K = d.K;
  auto vg = In(gates, K), vhs = In(hseq, K), vh0 = In(h0, K), vdy = In(dys, K), vdh = In(dhT, K), vw = In(whh, K);
  auto vm = In(mask, K);
  auto vdrz = Out(drz, K), vdan = Out(dan, K), vdhn = Out(dhn, K), vdh0 = Out(dh0, K), vdph = Out(dph, K);
  const int team = TeamSize(pool, max_threads, d, d.B * 3 * d.H * d.H);
  RunSeeds(pool, team, d, [&](int64_t k) {
    GruBackward<T> job{d,          static_cast<T>(slope), vg.At(k),   vhs.At(k),  vh0.At(k),  vdy.At(k),
                       vdh.At(k),  vw.At(k),              vm.At(k),   vdrz.At(k), vdan.At(k), vdhn.At(k),
                       vdh0.At(k), vdph.At(k)};
    return job;
  });
  return ffi::Error::Success();
}

template <ffi::DataType DT>
using Buf = ffi::Buffer<DT>;

template <ffi::DataType DT>
auto LstmForwardBinding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .template Arg<Buf<DT>>()  // x
      .template Arg<Buf<DT>>()  // input kernel
      .template Arg<Buf<DT>>()  // input bias
      .template Arg<Buf<DT>>()  // recurrent kernel
      .template Arg<Buf<DT>>()  // c0
      .template Arg<Buf<DT>>()  // h0
      .template Arg<Buf<ffi::PRED>>()  // mask (empty: none)
      .template Arg<Buf<DT>>()  // probe on c (empty: none)
      .template Arg<Buf<DT>>()  // probe on h
      .template Ret<Buf<DT>>()  // ys
      .template Ret<Buf<DT>>()  // h carries (empty: equal to ys)
      .template Ret<Buf<DT>>()  // c carries (empty: not saved)
      .template Ret<Buf<DT>>()  // gates (empty: not saved)
      .template Ret<Buf<DT>>()  // c_T
      .template Ret<Buf<DT>>()  // h_T
      .template Attr<double>("slope")
      .template Attr<int64_t>("max_threads");
}

template <ffi::DataType DT>
auto LstmBackwardBinding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .template Arg<Buf<DT>>()  // gates
      .template Arg<Buf<DT>>()  // c carries
      .template Arg<Buf<DT>>()  // c0
      .template Arg<Buf<ffi::PRED>>()
      .template Arg<Buf<DT>>()  // dys
      .template Arg<Buf<DT>>()  // dc_T
      .template Arg<Buf<DT>>()  // dh_T
      .template Arg<Buf<DT>>()  // recurrent kernel
      .template Ret<Buf<DT>>()  // dz
      .template Ret<Buf<DT>>()  // dc0
      .template Ret<Buf<DT>>()  // dh0
      .template Ret<Buf<DT>>()  // d probe c (empty: none)
      .template Ret<Buf<DT>>()  // d probe h
      .template Attr<double>("slope")
      .template Attr<int64_t>("max_threads");
}

template <ffi::DataType DT>
auto GruForwardBinding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .template Arg<Buf<DT>>()  // x
      .template Arg<Buf<DT>>()  // input kernel
      .template Arg<Buf<DT>>()  // input bias
      .template Arg<Buf<DT>>()  // recurrent kernel
      .template Arg<Buf<DT>>()  // b_hn
      .template Arg<Buf<DT>>()  // h0
      .template Arg<Buf<ffi::PRED>>()
      .template Arg<Buf<DT>>()  // probe
      .template Ret<Buf<DT>>()  // ys
      .template Ret<Buf<DT>>()  // h carries
      .template Ret<Buf<DT>>()  // gates r, z, n, h W_hn + b_hn
      .template Ret<Buf<DT>>()  // h_T
      .template Attr<double>("slope")
      .template Attr<int64_t>("max_threads");
}

template <ffi::DataType DT>
auto GruBackwardBinding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .template Arg<Buf<DT>>()  // gates
      .template Arg<Buf<DT>>()  // h carries
      .template Arg<Buf<DT>>()  // h0
      .template Arg<Buf<ffi::PRED>>()
      .template Arg<Buf<DT>>()  // dys
      .template Arg<Buf<DT>>()  // dh_T
      .template Arg<Buf<DT>>()  // recurrent kernel
      .template Ret<Buf<DT>>()  // d(r, z) pre-activations
      .template Ret<Buf<DT>>()  // d(n pre-activation)
      .template Ret<Buf<DT>>()  // d(h W_hn + b_hn)
      .template Ret<Buf<DT>>()  // dh0
      .template Ret<Buf<DT>>()  // d probe
      .template Attr<double>("slope")
      .template Attr<int64_t>("max_threads");
}

}  // namespace
}  // namespace rnnlab

#define RNNLAB_HANDLERS(SUFFIX, DT)                                                                        \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlab_lstm_forward_##SUFFIX, rnnlab::LstmForwardImpl<DT>,                \
                                rnnlab::LstmForwardBinding<DT>());                                        \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlab_lstm_backward_##SUFFIX, rnnlab::LstmBackwardImpl<DT>,              \
                                rnnlab::LstmBackwardBinding<DT>());                                       \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlab_gru_forward_##SUFFIX, rnnlab::GruForwardImpl<DT>,                  \
                                rnnlab::GruForwardBinding<DT>());                                         \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlab_gru_backward_##SUFFIX, rnnlab::GruBackwardImpl<DT>,                \
                                rnnlab::GruBackwardBinding<DT>());

// The handlers are the library's only exported symbols (it is built with -fvisibility=hidden).
#pragma GCC visibility push(default)
RNNLAB_HANDLERS(f32, ffi::F32)
RNNLAB_HANDLERS(f64, ffi::F64)
#pragma GCC visibility pop
