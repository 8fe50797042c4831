// The one matrix product of a time step: C[rows, 16] (=|+=) sum over segments of A_s[rows, K_s] B_s[K_s, 16].
//
// Why hand-written: the recurrent weights are constant over the T steps, so they are packed ONCE per call into
// 16-column panels (K x 16, contiguous, aligned) and every step streams them from cache; A (h_{t-1}, x_t or the
// gate gradients) is read in place. A step's product is small (B x (D+H) x 4H), where a library GEMM's call
// and packing overhead is a large share. Segments let one tile sum products over operands that are not
// contiguous (h_{t-1} and x_t in the forward pass; the GRU's r,z and n gradients in the backward pass).
//
// Micro-kernel (float32, AVX2+FMA): a 6 x 16 register tile (12 accumulators), the classic shape for 16
// vector registers (BLIS' Haswell sgemm). Other types and CPUs: a plain loop the compiler vectorises.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "simd.h"

namespace rnnlab {

constexpr int kNR = 16;  // columns of a panel = hidden units per group
constexpr int kMR = 6;   // rows of a register tile

template <class T>
struct Seg {
  const T* a;  // A[0, 0]; row r starts at a + r * lda
  int64_t lda;
  const T* b;  // packed panel, K x kNR
  int k;
};

// An aligned, zero-filled scratch array.
template <class T>
struct Buffer {
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> ptr;
  Buffer() = default;
  explicit Buffer(size_t n) {
    if (n == 0) return;
    size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    ptr.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
    std::memset(ptr.get(), 0, bytes);
  }
  T* get() const { return ptr.get(); }
};

template <class T, int MR>
struct Micro {
  static void Run(const Seg<T>* segs, int nseg, int64_t row, T* c, int64_t ldc, bool add) {
    T acc[MR][kNR];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < kNR; ++j) acc[r][j] = add ? c[r * ldc + j] : T(0);
    for (int s = 0; s < nseg; ++s) {
      const T* a = segs[s].a + row * segs[s].lda;
      const int64_t lda = segs[s].lda;
      const T* b = segs[s].b;
      for (int k = 0; k < segs[s].k; ++k)
        for (int r = 0; r < MR; ++r) {
          const T ar = a[r * lda + k];
          for (int j = 0; j < kNR; ++j) acc[r][j] += ar * b[k * kNR + j];
        }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < kNR; ++j) c[r * ldc + j] = acc[r][j];
  }
};

#ifdef RNNLAB_AVX2
template <int MR>
struct Micro<float, MR> {
  static void Run(const Seg<float>* segs, int nseg, int64_t row, float* c, int64_t ldc, bool add) {
    __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      acc0[r] = add ? _mm256_loadu_ps(c + r * ldc) : _mm256_setzero_ps();
      acc1[r] = add ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_setzero_ps();
    }
    for (int s = 0; s < nseg; ++s) {
      const float* a = segs[s].a + row * segs[s].lda;
      const int64_t lda = segs[s].lda;
      const float* b = segs[s].b;
      const int K = segs[s].k;
#pragma GCC unroll 4
      for (int k = 0; k < K; ++k) {
        const __m256 b0 = _mm256_load_ps(b + k * kNR), b1 = _mm256_load_ps(b + k * kNR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
          const __m256 ar = _mm256_broadcast_ss(a + r * lda + k);
          acc0[r] = _mm256_fmadd_ps(ar, b0, acc0[r]);
          acc1[r] = _mm256_fmadd_ps(ar, b1, acc1[r]);
        }
      }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_ps(c + r * ldc, acc0[r]);
      _mm256_storeu_ps(c + r * ldc + 8, acc1[r]);
    }
  }
};
#endif

// C[row .. row+rows, 0:16] for rows <= kMR (ldc: C's row stride).
template <class T>
inline void Tile(const Seg<T>* segs, int nseg, int64_t row, int rows, T* c, int64_t ldc, bool add) {
  switch (rows) {
    case 6: Micro<T, 6>::Run(segs, nseg, row, c, ldc, add); break;
    case 5: Micro<T, 5>::Run(segs, nseg, row, c, ldc, add); break;
    case 4: Micro<T, 4>::Run(segs, nseg, row, c, ldc, add); break;
    case 3: Micro<T, 3>::Run(segs, nseg, row, c, ldc, add); break;
    case 2: Micro<T, 2>::Run(segs, nseg, row, c, ldc, add); break;
    case 1: Micro<T, 1>::Run(segs, nseg, row, c, ldc, add); break;
    default: break;
  }
}

// Packs columns col0 .. col0+15 of a K x ncols matrix whose element (k, col) is src[k * row_stride + col *
// col_stride] into the K x 16 panel dst (columns >= ncols are zero). col_stride != 1 packs a transpose.
template <class T>
inline void PackPanel(const T* src, int K, int64_t row_stride, int64_t col_stride, int col0, int ncols,
                      T* dst) {
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < kNR; ++j)
      dst[k * kNR + j] = col0 + j < ncols ? src[k * row_stride + (col0 + j) * col_stride] : T(0);
}

}  // namespace rnnlab
