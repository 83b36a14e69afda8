// Fused CPU kernel for filtered_lrelu: upsampling FIR -> leaky ReLU -> downsampling FIR, one image
// plane at a time, so the upsampled intermediate never leaves the cache.
//
// The kernel runs a generic "pipeline" that the Python side configures:
//   stage 1: 2-D upfirdn (separable: along W, then along H; or a full 2-D filter)
//   middle : forward mode -- leaky ReLU * gain, clamp, and record the derivative code per sample;
//            masked mode  -- multiply by the recorded derivative (the op linearised at the forward)
//   stage 2: 2-D upfirdn (separable: along H, then along W; or a full 2-D filter)
// The backward pass is the same pipeline with the adjoint stages, so one kernel serves forward,
// backward and double backward.
//
// Each 1-D stage is described by (in_len, up, down, pad0, out_len) and a correlation kernel g:
//   out[k] = sum_j g[j] * U[down*k + j - pad0],  U[m] = in[m / up] if m % up == 0 else 0.
// Polyphase evaluation: inserted zeros are never multiplied, discarded outputs never computed.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

struct Axis {
    int64_t in_len, up, down, pad0, out_len;
};

// Derivative code stored per sample of the intermediate image: bit 0 = input was positive,
// bit 1 = output was clamped (derivative zero).
enum : uint8_t { kPositiveBit = 1, kClampedBit = 2 };

int64_t floor_div(int64_t a, int64_t b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }
int64_t pos_mod(int64_t a, int64_t b) { int64_t r = a % b; return (r < 0) ? r + b : r; }

// out[0:n] (init ? = : +=) sum_{i<K} coef[i] * src[i][0:n], with K known at compile time so that the
// tap loop unrolls into registers and the loop over n vectorises.
template <typename T, int K>
void axpy_group(T* __restrict out, int64_t n, const T* const* src, const T* coef, bool init)
{
    const T* s[K];
    T c[K];
    for (int i = 0; i < K; i++) {
        s[i] = src[i];
        c[i] = coef[i];
    }
    if (init) {
        #pragma omp simd
        for (int64_t w = 0; w < n; w++) {
            T acc = c[0] * s[0][w];
            for (int i = 1; i < K; i++)
                acc += c[i] * s[i][w];
            out[w] = acc;
        }
    } else {
        #pragma omp simd
        for (int64_t w = 0; w < n; w++) {
            T acc = out[w];
            for (int i = 0; i < K; i++)
                acc += c[i] * s[i][w];
            out[w] = acc;
        }
    }
}

// out[0:n] (+)= sum_i coef[i] * src[i][0:n]. Taps go up to eight per pass over `out`, which stays
// in L1, so the work is bounded by the loads of the sources rather than by read-modify-writes.
template <typename T>
void multi_axpy(T* out, int64_t n, const T* const* src, const T* coef, int64_t count, bool accumulate)
{
    if (count == 0) {
        if (!accumulate)
            std::fill(out, out + n, T(0));
        return;
    }
    bool init = !accumulate;
    for (int64_t i = 0; i < count; init = false) {
        const int64_t left = count - i;
        if (left >= 8)      { axpy_group<T, 8>(out, n, src + i, coef + i, init); i += 8; }
        else if (left >= 6) { axpy_group<T, 6>(out, n, src + i, coef + i, init); i += 6; }
        else if (left >= 4) { axpy_group<T, 4>(out, n, src + i, coef + i, init); i += 4; }
        else if (left >= 3) { axpy_group<T, 3>(out, n, src + i, coef + i, init); i += 3; }
        else if (left >= 2) { axpy_group<T, 2>(out, n, src + i, coef + i, init); i += 2; }
        else                { axpy_group<T, 1>(out, n, src + i, coef + i, init); i += 1; }
    }
}

// The taps of one 1-D polyphase structure: output k = up*m + r reads input down*m + offset[t] with
// kernel index index[t], for t in [start[r], start[r + 1]). Offsets are relative to `lo`, the
// smallest offset of any phase, so they are never negative.
struct PhaseTaps {
    std::vector<int64_t> offset, index, start;
    int64_t lo = 0, hi = 0;
};

// Per-thread scratch memory, grown on demand and reused across planes.
template <typename T>
struct Scratch {
    std::vector<T> padded, phases, tmp_a, tmp_mid, tmp_b, prepared, out_phases;
    std::vector<const T*> src;
    PhaseTaps taps_x, taps_y;
    std::vector<int64_t> tap_offset, tap_start;
    std::vector<T> tap_coef;
    std::vector<T> coef;
    T* get(std::vector<T>& v, int64_t n) { if ((int64_t)v.size() < n) v.resize(n); return v.data(); }
};

// dst[i - lo] = in[i] + bias for lo <= i <= hi, zero outside [0, len).
template <typename T>
void padded_copy(const T* in, int64_t len, T bias, int64_t lo, int64_t hi, T* dst)
{
    const int64_t a = std::max(lo, int64_t(0)), b = std::min(hi + 1, len);
    if (a >= b) {
        std::fill(dst, dst + (hi - lo + 1), T(0));
        return;
    }
    std::fill(dst, dst + (a - lo), T(0));
    T* __restrict d = dst + (a - lo);
    const T* __restrict s = in + a;
    #pragma omp simd
    for (int64_t i = 0; i < b - a; i++)
        d[i] = s[i] + bias;
    std::fill(dst + (b - lo), dst + (hi - lo + 1), T(0));
}

// out[u*m + r] (+)= ph[r*stride + m]: merges the polyphase outputs. A compile-time factor lets the
// compiler turn the strided stores into vector shuffles.
template <typename T, int U>
void interleave_fixed(const T* ph, int64_t stride, int64_t out_len, T* __restrict out, bool accumulate)
{
    const int64_t full = out_len / U;
    if (accumulate) {
        for (int64_t m = 0; m < full; m++)
            for (int r = 0; r < U; r++)
                out[U * m + r] += ph[r * stride + m];
    } else {
        for (int64_t m = 0; m < full; m++)
            for (int r = 0; r < U; r++)
                out[U * m + r] = ph[r * stride + m];
    }
    for (int64_t i = full * U; i < out_len; i++) {
        T v = ph[(i % U) * stride + i / U];
        out[i] = accumulate ? out[i] + v : v;
    }
}

template <typename T>
void interleave(const T* ph, int64_t u, int64_t stride, int64_t out_len, T* out, bool accumulate)
{
    if (u == 2) { interleave_fixed<T, 2>(ph, stride, out_len, out, accumulate); return; }
    if (u == 4) { interleave_fixed<T, 4>(ph, stride, out_len, out, accumulate); return; }
    for (int64_t i = 0; i < out_len; i++) {
        T v = ph[(i % u) * stride + i / u];
        out[i] = accumulate ? out[i] + v : v;
    }
}

// xq[q*stride + m] = xp[d*m + q]: splits a row into its d polyphase components.
template <typename T, int D>
void deinterleave_fixed(const T* __restrict xp, int64_t stride, T* __restrict xq)
{
    for (int64_t m = 0; m < stride; m++)
        for (int q = 0; q < D; q++)
            xq[q * stride + m] = xp[D * m + q];
}

template <typename T>
void deinterleave(const T* xp, int64_t d, int64_t stride, T* xq)
{
    if (d == 2) { deinterleave_fixed<T, 2>(xp, stride, xq); return; }
    if (d == 4) { deinterleave_fixed<T, 4>(xp, stride, xq); return; }
    for (int64_t m = 0; m < stride; m++)
        for (int64_t q = 0; q < d; q++)
            xq[q * stride + m] = xp[d * m + q];
}

// One 1-D upfirdn along a contiguous row: either up >= 1 with down == 1, or up == 1 with down >= 1.
// `bias` is added to the real input samples (not to the zero padding).
template <typename T>
void row_pass(const T* in, T bias, const Axis& a, const T* g, int64_t taps, T* out, bool accumulate, Scratch<T>& s)
{
    const int64_t L = a.in_len, O = a.out_len;
    const T** src = s.src.data();
    T* coef = s.coef.data();
    if (a.down == 1) {
        const int64_t u = a.up;
        // Phase r produces out[r + u*m] = sum_t g[j0 + u*t] * in[base + m + t].
        int64_t lo = 0, hi = 0;
        bool any = false;
        for (int64_t r = 0; r < std::min(u, O); r++) {
            int64_t j0 = pos_mod(a.pad0 - r, u);
            if (j0 >= taps) continue;
            int64_t base = (r - a.pad0 + j0) / u;           // exact division
            int64_t count_m = (O - r + u - 1) / u;
            int64_t count_t = (taps - j0 + u - 1) / u;
            int64_t first = base, last = base + count_m - 1 + count_t - 1;
            lo = any ? std::min(lo, first) : first;
            hi = any ? std::max(hi, last) : last;
            any = true;
        }
        if (!any) {
            if (!accumulate) std::fill(out, out + O, T(0));
            return;
        }
        T* xp = s.get(s.padded, hi - lo + 1);
        padded_copy(in, L, bias, lo, hi, xp);
        const int64_t stride = (O + u - 1) / u;
        T* ph = (u == 1) ? nullptr : s.get(s.phases, stride * u);
        for (int64_t r = 0; r < std::min(u, O); r++) {
            int64_t j0 = pos_mod(a.pad0 - r, u);
            int64_t count_m = (O - r + u - 1) / u;
            int64_t count_t = (j0 < taps) ? (taps - j0 + u - 1) / u : 0;
            int64_t base = (r - a.pad0 + j0) / u;
            for (int64_t t = 0; t < count_t; t++) {
                src[t] = xp + (base + t - lo);
                coef[t] = g[j0 + u * t];
            }
            if (u == 1)
                multi_axpy(out, count_m, src, coef, count_t, accumulate);
            else
                multi_axpy(ph + r * stride, count_m, src, coef, count_t, false);
        }
        if (u != 1)
            interleave(ph, u, stride, O, out, accumulate);
    } else {
        TORCH_CHECK(a.up == 1, "filtered_lrelu_cpu: a 1-D stage must not both upsample and downsample");
        const int64_t d = a.down;
        // out[k] = sum_j g[j] * xp[d*k + j], xp = input padded to start at index -pad0.
        const int64_t lo = -a.pad0;
        const int64_t stride = (d * (O - 1) + taps + d - 1) / d;
        T* xp = s.get(s.padded, stride * d);
        padded_copy(in, L, bias, lo, lo + stride * d - 1, xp);
        T* xq = s.get(s.phases, stride * d);
        deinterleave(xp, d, stride, xq);
        for (int64_t j = 0; j < taps; j++) {
            src[j] = xq + (j % d) * stride + j / d;
            coef[j] = g[j];
        }
        multi_axpy(out, O, src, coef, taps, accumulate);
    }
}

// 1-D upfirdn along the rows of a [in_len, width] block (general up and down).
template <typename T>
void column_pass(const T* in, int64_t width, const Axis& a, const T* g, int64_t taps, T* out, Scratch<T>& s)
{
    const T** src = s.src.data();
    T* coef = s.coef.data();
    for (int64_t k = 0; k < a.out_len; k++) {
        int64_t count = 0;
        for (int64_t j = 0; j < taps; j++) {
            int64_t m = a.down * k + j - a.pad0;
            if (pos_mod(m, a.up) != 0) continue;
            int64_t row = floor_div(m, a.up);
            if (row < 0 || row >= a.in_len) continue;
            src[count] = in + row * width;
            coef[count] = g[j];
            count++;
        }
        multi_axpy(out + k * width, width, src, coef, count, false);
    }
}

// Width in bytes of the vectors the 2-D stage accumulates in (one AVX-512 register; compilers split
// it into narrower registers where the CPU has none that wide).
constexpr int kVectorBytes = 64;

// dst[w0 : w0 + NV*lanes] = sum_t coef[t] * base[offset[t] + w0 : ...], the block held in registers
// for the whole tap loop: each tap costs one load and one multiply-add per vector, with no
// read-modify-write of the output. Even and odd taps go to separate accumulators so that short
// blocks still have enough independent multiply-add chains to hide their latency.
template <typename T, int NV>
void gather_block(T* dst, int64_t w0, const T* base, const int64_t* offset, const T* coef, int64_t count)
{
    typedef T Vec __attribute__((vector_size(kVectorBytes)));
    constexpr int lanes = kVectorBytes / sizeof(T);
    Vec even[NV], odd[NV];
    for (int v = 0; v < NV; v++)
        even[v] = odd[v] = Vec{};
    base += w0;
    int64_t t = 0;
    for (; t + 1 < count; t += 2) {
        const T* p0 = base + offset[t];
        const T* p1 = base + offset[t + 1];
        const T c0 = coef[t], c1 = coef[t + 1];
        for (int v = 0; v < NV; v++) {
            Vec a, b;
            __builtin_memcpy(&a, p0 + v * lanes, sizeof(Vec));
            __builtin_memcpy(&b, p1 + v * lanes, sizeof(Vec));
            even[v] += c0 * a;
            odd[v] += c1 * b;
        }
    }
    if (t < count) {
        const T* p0 = base + offset[t];
        const T c0 = coef[t];
        for (int v = 0; v < NV; v++) {
            Vec a;
            __builtin_memcpy(&a, p0 + v * lanes, sizeof(Vec));
            even[v] += c0 * a;
        }
    }
    for (int v = 0; v < NV; v++) {
        const Vec sum = even[v] + odd[v];
        __builtin_memcpy(dst + w0 + v * lanes, &sum, sizeof(Vec));
    }
}

// dst[0:n] = sum_t coef[t] * base[offset[t] : offset[t] + n], n a multiple of the vector lanes.
template <typename T>
void gather_rows(T* dst, int64_t n, const T* base, const int64_t* offset, const T* coef, int64_t count)
{
    constexpr int lanes = kVectorBytes / sizeof(T);
    int64_t w0 = 0;
    for (; w0 + 4 * lanes <= n; w0 += 4 * lanes)
        gather_block<T, 4>(dst, w0, base, offset, coef, count);
    const int64_t rest = (n - w0) / lanes;
    if (rest == 3) gather_block<T, 3>(dst, w0, base, offset, coef, count);
    if (rest == 2) gather_block<T, 2>(dst, w0, base, offset, coef, count);
    if (rest == 1) gather_block<T, 1>(dst, w0, base, offset, coef, count);
}

// Tabulates the polyphase taps of axis `a` for a kernel of `taps` samples (one axis up or down only).
void make_phase_taps(const Axis& a, int64_t taps, PhaseTaps& p)
{
    TORCH_CHECK(a.up == 1 || a.down == 1, "filtered_lrelu_cpu: an axis of a 2-D stage must not both upsample and downsample");
    p.offset.clear();
    p.index.clear();
    p.start.assign(1, 0);
    bool any = false;
    for (int64_t r = 0; r < a.up; r++) {
        for (int64_t i = 0; i < taps; i++) {
            const int64_t num = r + i - a.pad0;
            if (pos_mod(num, a.up) != 0) continue;
            const int64_t off = floor_div(num, a.up);
            p.lo = any ? std::min(p.lo, off) : off;
            p.hi = any ? std::max(p.hi, off) : off;
            any = true;
            p.offset.push_back(off);
            p.index.push_back(i);
        }
        p.start.push_back(int64_t(p.offset.size()));
    }
    for (int64_t& off : p.offset)
        off -= p.lo;
}

// A 2-D upfirdn with a full (non-separable) kernel g [fy, fx] on one plane; along W it either
// upsamples or downsamples. The input is prepared once per plane -- bias added, zero-padded on all
// sides and each row split into its dx polyphase components -- so that every tap of every output
// row is a unit-stride run at a fixed offset from the row's base. Each output phase row is then one
// register-blocked sum over all of its (row, column) taps, whose offsets and coefficients are
// tabulated once per phase pair instead of once per row.
template <typename T>
void run_stage_2d(const T* in, T bias, const Axis& ax, const Axis& ay, const T* g, int64_t fx, int64_t fy, T* out, Scratch<T>& s)
{
    constexpr int64_t lanes = kVectorBytes / sizeof(T);
    const int64_t ux = ax.up, dx = ax.down, uy = ay.up, dy = ay.down;
    PhaseTaps& tx = s.taps_x;
    PhaseTaps& ty = s.taps_y;
    make_phase_taps(ax, fx, tx);
    make_phase_taps(ay, fy, ty);
    if (tx.offset.empty() || ty.offset.empty()) {
        std::fill(out, out + ay.out_len * ax.out_len, T(0));
        return;
    }

    // prepared[(r * dx + q) * cols + c] = in[ty.lo + r][tx.lo + dx*c + q] + bias, zero outside the input.
    const int64_t phase_len = (ax.out_len + ux - 1) / ux;
    const int64_t phase_pad = (phase_len + lanes - 1) / lanes * lanes;
    const int64_t cols = phase_pad + (tx.hi - tx.lo) / dx + 1;
    const int64_t row_stride = dx * cols;
    const int64_t rows_out = (ay.out_len + uy - 1) / uy;
    const int64_t rows = dy * (rows_out - 1) + (ty.hi - ty.lo) + 1;
    T* prepared = s.get(s.prepared, rows * row_stride);
    for (int64_t r = 0; r < rows; r++) {
        const int64_t in_r = ty.lo + r;
        T* dst = prepared + r * row_stride;
        if (in_r < 0 || in_r >= ay.in_len) {
            std::fill(dst, dst + row_stride, T(0));
        } else if (dx == 1) {
            padded_copy(in + in_r * ax.in_len, ax.in_len, bias, tx.lo, tx.lo + cols - 1, dst);
        } else {
            T* tmp = s.get(s.padded, row_stride);
            padded_copy(in + in_r * ax.in_len, ax.in_len, bias, tx.lo, tx.lo + row_stride - 1, tmp);
            deinterleave(tmp, dx, cols, dst);
        }
    }

    // Offsets and coefficients of every (row phase, column phase) pair.
    std::vector<int64_t>& offset = s.tap_offset;
    std::vector<T>& coef = s.tap_coef;
    std::vector<int64_t>& start = s.tap_start;
    offset.clear();
    coef.clear();
    start.assign(1, 0);
    for (int64_t rk = 0; rk < uy; rk++)
        for (int64_t rl = 0; rl < ux; rl++) {
            for (int64_t ty_t = ty.start[rk]; ty_t < ty.start[rk + 1]; ty_t++)
                for (int64_t tx_t = tx.start[rl]; tx_t < tx.start[rl + 1]; tx_t++) {
                    const int64_t e = tx.offset[tx_t];
                    offset.push_back(ty.offset[ty_t] * row_stride + (e % dx) * cols + e / dx);
                    coef.push_back(g[ty.index[ty_t] * fx + tx.index[tx_t]]);
                }
            start.push_back(int64_t(offset.size()));
        }

    T* phases = s.get(s.out_phases, ux * phase_pad);
    for (int64_t k = 0; k < ay.out_len; k++) {
        const int64_t rk = k % uy;
        const T* base = prepared + dy * (k / uy) * row_stride;
        for (int64_t rl = 0; rl < ux; rl++) {
            const int64_t pair = rk * ux + rl;
            gather_rows(phases + rl * phase_pad, phase_pad, base, offset.data() + start[pair], coef.data() + start[pair],
                        start[pair + 1] - start[pair]);
        }
        T* o = out + k * ax.out_len;
        if (ux == 1)
            std::copy(phases, phases + ax.out_len, o);
        else
            interleave(phases, ux, phase_pad, ax.out_len, o, false);
    }
}

// A 2-D upfirdn stage on one plane: separable (gx along W, gy along H) or a full 2-D kernel g2 [fy, fx].
template <typename T>
struct Stage {
    Axis ax, ay;
    const T* gx; int64_t fx;
    const T* gy; int64_t fy;
    const T* g2;            // null for separable
};

// Separable stages filter along W first when `w_first` (cheaper before upsampling H, and after
// downsampling H), else along H first.
template <typename T>
void run_stage(const T* in, T bias, const Stage<T>& st, bool w_first, T* out, Scratch<T>& s)
{
    const Axis& ax = st.ax;
    const Axis& ay = st.ay;
    if (st.g2 != nullptr) {
        run_stage_2d(in, bias, ax, ay, st.g2, st.fx, st.fy, out, s);
        return;
    }
    if (w_first) {
        T* tmp = s.get(s.tmp_a, ay.in_len * ax.out_len);
        for (int64_t r = 0; r < ay.in_len; r++)
            row_pass(in + r * ax.in_len, bias, ax, st.gx, st.fx, tmp + r * ax.out_len, false, s);
        column_pass(tmp, ax.out_len, ay, st.gy, st.fy, out, s);
    } else {
        // The bias (only ever used by the first stage) has no place here; the caller passes 0.
        T* tmp = s.get(s.tmp_b, ay.out_len * ax.in_len);
        column_pass(in, ax.in_len, ay, st.gy, st.fy, tmp, s);
        for (int64_t r = 0; r < ay.out_len; r++)
            row_pass(tmp + r * ax.in_len, T(0), ax, st.gx, st.fx, out + r * ax.out_len, false, s);
    }
}

Axis make_axis(const std::vector<int64_t>& p, int offset)
{
    return Axis{p[offset], p[offset + 1], p[offset + 2], p[offset + 3], p[offset + 4]};
}

template <typename T>
Stage<T> make_stage(const std::vector<int64_t>& params, const torch::Tensor& gx, const torch::Tensor& gy, const torch::Tensor& g2)
{
    Stage<T> st;
    st.ax = make_axis(params, 0);
    st.ay = make_axis(params, 5);
    if (g2.numel() > 0) {
        st.g2 = g2.data_ptr<T>();
        st.fy = g2.size(0);
        st.fx = g2.size(1);
        st.gx = st.gy = nullptr;
    } else {
        st.g2 = nullptr;
        st.gx = gx.data_ptr<T>(); st.fx = gx.numel();
        st.gy = gy.data_ptr<T>(); st.fy = gy.numel();
    }
    return st;
}

void check_axis(const Axis& a)
{
    TORCH_CHECK(a.in_len > 0 && a.out_len > 0 && a.up >= 1 && a.down >= 1, "filtered_lrelu_cpu: bad stage sizes");
}

// v <- clamp(lrelu(v) * gain), recording the derivative code. Written with plain selects so that
// it vectorises (the signs are unpredictable, branches would stall); restrict keeps the byte
// stores from aliasing the floats.
template <typename T>
void activate(T* __restrict v, uint8_t* __restrict code, int64_t n, T gain, T slope, T lim)
{
    const T gain_neg = gain * slope;
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const T x = v[i];
        const T a = x * (x > T(0) ? gain : gain_neg);
        const T upper = (a > lim) ? lim : a;
        v[i] = (upper < -lim) ? -lim : upper;
        code[i] = uint8_t((x > T(0)) * kPositiveBit + ((a > lim) | (a < -lim)) * kClampedBit);
    }
}

// v <- v * (derivative of the activation recorded in `code`).
template <typename T>
void apply_derivative(T* __restrict v, const uint8_t* __restrict code, int64_t n, T gain, T slope)
{
    const T gain_neg = gain * slope;
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const int c = code[i];
        const T d = (c & kPositiveBit) ? gain : gain_neg;
        v[i] = (c & kClampedBit) ? T(0) : v[i] * d;
    }
}

template <typename T>
void run_pipeline(const torch::Tensor& x, const torch::Tensor& bias, int64_t channels,
                  const Stage<T>& st1, bool forward_mode, double slope, double gain, double clamp,
                  const torch::Tensor& mask, const Stage<T>& st2, torch::Tensor& y)
{
    const int64_t planes = x.size(0);
    const int64_t in_size = st1.ay.in_len * st1.ax.in_len;
    const int64_t mid_h = st1.ay.out_len, mid_w = st1.ax.out_len;
    const int64_t mid_size = mid_h * mid_w;
    const int64_t out_size = st2.ay.out_len * st2.ax.out_len;
    const T* x_ptr = x.data_ptr<T>();
    const T* b_ptr = (bias.numel() > 0) ? bias.data_ptr<T>() : nullptr;
    uint8_t* mask_ptr = mask.data_ptr<uint8_t>();
    T* y_ptr = y.data_ptr<T>();
    const int64_t max_taps = std::max({st1.fx, st1.fy, st2.fx, st2.fy, int64_t(1)});
    const T slope_t = T(slope), gain_t = T(gain);
    const T lim = (clamp >= 0) ? T(clamp) : std::numeric_limits<T>::infinity();

    // Small images go in batches of planes: waking threads for a few microseconds of work costs more
    // than it saves (and far more when the machine is oversubscribed).
    const int64_t grain = std::max(int64_t(1), int64_t(1 << 16) / std::max(mid_size, int64_t(1)));
    at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
        Scratch<T> s;
        s.src.resize(max_taps);
        s.coef.resize(max_taps);
        for (int64_t p = begin; p < end; p++) {
            const T bias_value = b_ptr ? b_ptr[p % channels] : T(0);
            T* mid = s.get(s.tmp_mid, mid_size);
            run_stage(x_ptr + p * in_size, bias_value, st1, true, mid, s);
            uint8_t* code = mask_ptr + p * mid_size;
            if (forward_mode)
                activate(mid, code, mid_size, gain_t, slope_t, lim);
            else
                apply_derivative(mid, code, mid_size, gain_t, slope_t);
            run_stage(mid, T(0), st2, false, y_ptr + p * out_size, s);
        }
    });
}

}  // namespace

// x: [planes, H, W] contiguous; bias: [channels] or empty (plane p uses bias[p % channels]);
// stageN_params: (W axis: in_len, up, down, pad0, out_len, then the same for the H axis);
// filters: separable gx/gy, or a non-empty 2-D g2. In forward mode `mask` is written, else read.
torch::Tensor filtered_lrelu_pipeline(
    torch::Tensor x, torch::Tensor bias, int64_t channels,
    std::vector<int64_t> stage1_params, torch::Tensor s1_gx, torch::Tensor s1_gy, torch::Tensor s1_g2,
    bool forward_mode, double slope, double gain, double clamp, torch::Tensor mask,
    std::vector<int64_t> stage2_params, torch::Tensor s2_gx, torch::Tensor s2_gy, torch::Tensor s2_g2)
{
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 3 && x.is_contiguous(), "filtered_lrelu_cpu: x must be a contiguous CPU [P, H, W] tensor");
    TORCH_CHECK(stage1_params.size() == 10 && stage2_params.size() == 10, "filtered_lrelu_cpu: stage params must have 10 entries");
    TORCH_CHECK(mask.scalar_type() == torch::kUInt8 && mask.is_contiguous(), "filtered_lrelu_cpu: mask must be contiguous uint8");
    for (const auto& t : {bias, s1_gx, s1_gy, s1_g2, s2_gx, s2_gy, s2_g2})
        TORCH_CHECK(t.numel() == 0 || (t.scalar_type() == x.scalar_type() && t.is_contiguous()), "filtered_lrelu_cpu: bias/filters must match x's dtype and be contiguous");
    TORCH_CHECK(bias.numel() == 0 || bias.numel() == channels, "filtered_lrelu_cpu: bias size mismatch");
    TORCH_CHECK(channels > 0 && x.size(0) % channels == 0, "filtered_lrelu_cpu: planes must be a multiple of channels");
    TORCH_CHECK(x.size(1) == stage1_params[5] && x.size(2) == stage1_params[0], "filtered_lrelu_cpu: x does not match stage 1 input size");
    TORCH_CHECK(stage2_params[0] == stage1_params[4] && stage2_params[5] == stage1_params[9], "filtered_lrelu_cpu: stage 2 input must be stage 1 output");
    TORCH_CHECK(mask.numel() == x.size(0) * stage1_params[4] * stage1_params[9], "filtered_lrelu_cpu: mask size mismatch");

    torch::Tensor y = torch::empty({x.size(0), stage2_params[9], stage2_params[4]}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "filtered_lrelu_pipeline", [&] {
        Stage<scalar_t> st1 = make_stage<scalar_t>(stage1_params, s1_gx, s1_gy, s1_g2);
        Stage<scalar_t> st2 = make_stage<scalar_t>(stage2_params, s2_gx, s2_gy, s2_g2);
        for (const Axis* a : {&st1.ax, &st1.ay, &st2.ax, &st2.ay})
            check_axis(*a);
        TORCH_CHECK(st1.ax.down == 1 || st1.ax.up == 1, "filtered_lrelu_cpu: stage 1 W axis must not both up- and downsample");
        TORCH_CHECK(st2.ax.down == 1 || st2.ax.up == 1, "filtered_lrelu_cpu: stage 2 W axis must not both up- and downsample");
        run_pipeline<scalar_t>(x, bias, channels, st1, forward_mode, slope, gain, clamp, mask, st2, y);
    });
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("filtered_lrelu_pipeline", &filtered_lrelu_pipeline, "Fused upfirdn -> leaky ReLU -> upfirdn on CPU");
}
