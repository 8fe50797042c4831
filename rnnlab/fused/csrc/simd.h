// Vectors of the element type with the few operations the LSTM/GRU kernels need.
//
// Lane<T>: one element; the float64 kernels use it with libm's exp/tanh, so their results equal XLA's to
// float64 rounding (the finite-difference and equality tests run in float64). F8: eight floats on AVX2+FMA,
// with exp and tanh as range reduction + polynomial (Cephes-style, ~2 ulp), which is what makes float32 fast.
// Without AVX2 the float32 kernels fall back to Lane<float>.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define RNNLAB_AVX2 1
#endif

namespace rnnlab {

template <class T>
struct Lane {
  static constexpr int kWidth = 1;
  T v;
  static Lane Load(const T* p) { return {*p}; }
  static Lane LoadN(const T* p, int n) { return {n > 0 ? *p : T(0)}; }
  static Lane Set(T x) { return {x}; }
  void Store(T* p) const { *p = v; }
  void StoreN(T* p, int n) const {
    if (n > 0) *p = v;
  }
};

template <class T>
inline Lane<T> operator+(Lane<T> a, Lane<T> b) { return {a.v + b.v}; }
template <class T>
inline Lane<T> operator-(Lane<T> a, Lane<T> b) { return {a.v - b.v}; }
template <class T>
inline Lane<T> operator*(Lane<T> a, Lane<T> b) { return {a.v * b.v}; }
template <class T>
inline Lane<T> operator/(Lane<T> a, Lane<T> b) { return {a.v / b.v}; }
template <class T>
inline Lane<T> Tanh(Lane<T> a) { return {std::tanh(a.v)}; }
template <class T>
inline Lane<T> Sigmoid(Lane<T> a) { return {T(1) / (T(1) + std::exp(-a.v))}; }

#ifdef RNNLAB_AVX2
struct F8 {
  static constexpr int kWidth = 8;
  __m256 v;
  static __m256i Mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F8 Load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static F8 LoadN(const float* p, int n) {
    return n >= 8 ? Load(p) : F8{_mm256_maskload_ps(p, Mask(n < 0 ? 0 : n))};
  }
  static F8 Set(float x) { return {_mm256_set1_ps(x)}; }
  void Store(float* p) const { _mm256_storeu_ps(p, v); }
  void StoreN(float* p, int n) const {
    if (n >= 8)
      Store(p);
    else if (n > 0)
      _mm256_maskstore_ps(p, Mask(n), v);
  }
};

inline F8 operator+(F8 a, F8 b) { return {_mm256_add_ps(a.v, b.v)}; }
inline F8 operator-(F8 a, F8 b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline F8 operator*(F8 a, F8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline F8 operator/(F8 a, F8 b) { return {_mm256_div_ps(a.v, b.v)}; }

// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-5 polynomial, 2^n through the exponent bits.
// Inputs are clamped to [-87.3, 88.3] so 2^n stays a normal number (e^-87.3 ~ 1e-38 stands in for 0).
inline __m256 Exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 in two parts: exact n * hi
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// tanh: an odd polynomial below |x| = 0.625 (where 1 - 2/(e^2x + 1) would cancel), that formula above.
inline F8 Tanh(F8 a) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 ax = _mm256_andnot_ps(sign, a.v);
  __m256 e = Exp8(_mm256_add_ps(ax, ax));
  __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                             _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  __m256 x2 = _mm256_mul_ps(ax, ax);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-3.33332819422e-1f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, x2), ax, ax);
  __m256 r = _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
  return {_mm256_or_ps(r, _mm256_and_ps(a.v, sign))};
}

inline F8 Sigmoid(F8 a) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return {_mm256_div_ps(one, _mm256_add_ps(one, Exp8(_mm256_sub_ps(_mm256_setzero_ps(), a.v))))};
}
#endif

// The vector type the kernels of element type T use.
template <class T>
struct VecOf {
  using Type = Lane<T>;
};
#ifdef RNNLAB_AVX2
template <>
struct VecOf<float> {
  using Type = F8;
};
#endif

}  // namespace rnnlab
