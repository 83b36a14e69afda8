// CPU kernels of upfirdn2d (see upfirdn2d.py for the definition of the op).
//
// Polyphase evaluation: for every output sample, a precomputed list of (input index, tap) pairs
// names exactly the taps that meet a real input sample, so inserted zeros are never multiplied,
// padding is never materialised, and discarded outputs are never computed. The taps passed in
// are those of a correlation (the caller flips the filter for a true convolution) and already
// include the gain. Images are processed one (n, c) plane per task, in parallel.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

// For each output index o along one axis, the pairs (i, k) with input index i and tap index k
// such that upsampled-padded position o * down + k equals i * up + pad0.
struct AxisPlan {
    std::vector<int64_t> begin;   // entries of output o: [begin[o], begin[o + 1])
    std::vector<int64_t> index;   // input index i
    std::vector<int64_t> tap;     // tap index k
};

AxisPlan make_plan(int64_t n_in, int64_t n_out, int64_t num_taps, int64_t up, int64_t down, int64_t pad0) {
    AxisPlan plan;
    plan.begin.reserve(n_out + 1);
    plan.begin.push_back(0);
    for (int64_t o = 0; o < n_out; o++) {
        const int64_t base = o * down - pad0;   // position of tap 0 in the upsampled image
        // First tap that lands on a multiple of `up`.
        int64_t k = ((-base) % up + up) % up;
        for (; k < num_taps; k += up) {
            const int64_t i = (base + k) / up;
            if (i >= 0 && i < n_in) {
                plan.index.push_back(i);
                plan.tap.push_back(k);
            }
        }
        plan.begin.push_back((int64_t)plan.index.size());
    }
    return plan;
}

// dst[o][:] = sum over the plan entries e of output o of w[e] * src[index[e]][:], for rows of
// length n: a weighted sum of whole rows, contiguous and vectorisable.
template <typename T>
void combine_rows(const T* src, T* dst, int64_t n, int64_t num_out, const AxisPlan& plan, const std::vector<T>& w) {
    for (int64_t o = 0; o < num_out; o++) {
        T* d = dst + o * n;
        const int64_t e0 = plan.begin[o], e1 = plan.begin[o + 1];
        if (e0 == e1) {
            for (int64_t c = 0; c < n; c++) d[c] = 0;
            continue;
        }
        {
            const T* s = src + plan.index[e0] * n;
            const T we = w[e0];
            #pragma omp simd
            for (int64_t c = 0; c < n; c++) d[c] = s[c] * we;
        }
        for (int64_t e = e0 + 1; e < e1; e++) {
            const T* s = src + plan.index[e] * n;
            const T we = w[e];
            #pragma omp simd
            for (int64_t c = 0; c < n; c++) d[c] += s[c] * we;
        }
    }
}

template <typename T>
void transpose(const T* src, T* dst, int64_t rows, int64_t cols) {
    constexpr int64_t B = 16;   // blocks, to keep both sides in cache
    for (int64_t r0 = 0; r0 < rows; r0 += B)
        for (int64_t c0 = 0; c0 < cols; c0 += B)
            for (int64_t r = r0; r < std::min(r0 + B, rows); r++)
                for (int64_t c = c0; c < std::min(c0 + B, cols); c++)
                    dst[c * rows + r] = src[r * cols + c];
}

// The horizontal pass runs as a vertical one on the transposed plane, so that both passes are
// weighted sums of contiguous rows; the buffers hold in_w * in_h, out_w * in_h and in_h * out_w.
template <typename T>
void separable_plane(const T* x, T* y, T* buf_a, T* buf_b, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                     const AxisPlan& px, const std::vector<T>& wx, const AxisPlan& py, const std::vector<T>& wy) {
    transpose<T>(x, buf_a, in_h, in_w);                       // [in_w][in_h]
    combine_rows<T>(buf_a, buf_b, in_h, out_w, px, wx);       // [out_w][in_h]
    transpose<T>(buf_b, buf_a, out_w, in_h);                  // [in_h][out_w]
    combine_rows<T>(buf_a, y, out_w, out_h, py, wy);          // [out_h][out_w]
}

template <typename T>
void full_plane(const T* x, T* y, int64_t in_w, int64_t out_h, int64_t out_w,
                const AxisPlan& px, const AxisPlan& py, const T* kernel, int64_t kw) {
    for (int64_t oy = 0; oy < out_h; oy++) {
        T* dst = y + oy * out_w;
        for (int64_t ox = 0; ox < out_w; ox++) {
            T acc = 0;
            for (int64_t ey = py.begin[oy]; ey < py.begin[oy + 1]; ey++) {
                const T* row = x + py.index[ey] * in_w;
                const T* krow = kernel + py.tap[ey] * kw;
                for (int64_t ex = px.begin[ox]; ex < px.begin[ox + 1]; ex++)
                    acc += row[px.index[ex]] * krow[px.tap[ex]];
            }
            dst[ox] = acc;
        }
    }
}

void check_input(const torch::Tensor& x) {
    TORCH_CHECK(x.device().is_cpu(), "x must be a CPU tensor");
    TORCH_CHECK(x.dim() == 4, "x must have shape [N, C, H, W]");
    TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
    TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble, "x must be float32 or float64");
}

// y = upfirdn2d(x) for a separable correlation kernel outer(taps_y, taps_x).
torch::Tensor upfirdn2d_separable(torch::Tensor x, torch::Tensor taps_x, torch::Tensor taps_y,
                                  int64_t upx, int64_t upy, int64_t downx, int64_t downy,
                                  int64_t padx0, int64_t pady0, int64_t out_w, int64_t out_h) {
    check_input(x);
    TORCH_CHECK(taps_x.dim() == 1 && taps_y.dim() == 1, "taps must be 1-D");
    const int64_t planes = x.size(0) * x.size(1), in_h = x.size(2), in_w = x.size(3);
    const AxisPlan px = make_plan(in_w, out_w, taps_x.size(0), upx, downx, padx0);
    const AxisPlan py = make_plan(in_h, out_h, taps_y.size(0), upy, downy, pady0);
    auto y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    auto tx = taps_x.to(torch::kDouble).contiguous();
    auto ty = taps_y.to(torch::kDouble).contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_separable", [&] {
        // Tap weights in entry order, so the inner loops read them sequentially.
        std::vector<scalar_t> wx(px.tap.size()), wy(py.tap.size());
        for (size_t e = 0; e < wx.size(); e++) wx[e] = (scalar_t)tx.data_ptr<double>()[px.tap[e]];
        for (size_t e = 0; e < wy.size(); e++) wy[e] = (scalar_t)ty.data_ptr<double>()[py.tap[e]];
        const scalar_t* xp = x.data_ptr<scalar_t>();
        scalar_t* yp = y.data_ptr<scalar_t>();
        at::parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
            std::vector<scalar_t> buf_a(in_h * std::max(in_w, out_w)), buf_b(out_w * in_h);
            for (int64_t p = p0; p < p1; p++)
                separable_plane<scalar_t>(xp + p * in_h * in_w, yp + p * out_h * out_w, buf_a.data(), buf_b.data(),
                                          in_h, in_w, out_h, out_w, px, wx, py, wy);
        });
    });
    return y;
}

// y = upfirdn2d(x) for a general 2-D correlation kernel [kh, kw].
torch::Tensor upfirdn2d_full(torch::Tensor x, torch::Tensor kernel,
                             int64_t upx, int64_t upy, int64_t downx, int64_t downy,
                             int64_t padx0, int64_t pady0, int64_t out_w, int64_t out_h) {
    check_input(x);
    TORCH_CHECK(kernel.dim() == 2, "kernel must be 2-D");
    const int64_t planes = x.size(0) * x.size(1), in_h = x.size(2), in_w = x.size(3);
    const int64_t kh = kernel.size(0), kw = kernel.size(1);
    const AxisPlan px = make_plan(in_w, out_w, kw, upx, downx, padx0);
    const AxisPlan py = make_plan(in_h, out_h, kh, upy, downy, pady0);
    auto y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    auto k = kernel.to(x.scalar_type()).contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_full", [&] {
        const scalar_t* xp = x.data_ptr<scalar_t>();
        const scalar_t* kp = k.data_ptr<scalar_t>();
        scalar_t* yp = y.data_ptr<scalar_t>();
        at::parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; p++)
                full_plane<scalar_t>(xp + p * in_h * in_w, yp + p * out_h * out_w, in_w, out_h, out_w, px, py, kp, kw);
        });
    });
    return y;
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d_separable", &upfirdn2d_separable, "upfirdn2d with a separable kernel (CPU)");
    m.def("upfirdn2d_full", &upfirdn2d_full, "upfirdn2d with a 2-D kernel (CPU)");
}
