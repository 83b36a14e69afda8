// CPU kernels of bias_act (see bias_act.py): one pass for the forward, one for the first-order
// backward, which also produces the per-row sums that make up the bias gradient.
//
// The tensor is viewed as [outer, channels, inner] (channels = the bias dimension), contiguous.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

// Activation ids, as cuda_idx in bias_act.activation_funcs.
enum Act { LINEAR = 1, RELU = 2, LRELU = 3, TANH = 4, SIGMOID = 5, ELU = 6, SELU = 7, SOFTPLUS = 8, SWISH = 9 };

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

template <typename T>
inline T activate(int act, T z, T alpha) {
    switch (act) {
        case LINEAR:   return z;
        case RELU:     return z > 0 ? z : T(0);
        case LRELU:    return z > 0 ? z : z * alpha;
        case TANH:     return std::tanh(z);
        case SIGMOID:  return T(1) / (T(1) + std::exp(-z));
        case ELU:      return z > 0 ? z : std::expm1(z);
        case SELU:     return z > 0 ? T(kSeluScale) * z : T(kSeluScale * kSeluAlpha) * std::expm1(z);
        case SOFTPLUS: return z > T(20) ? z : std::log1p(std::exp(z));
        case SWISH:    return z / (T(1) + std::exp(-z));
    }
    return z;
}

// Derivative of the activation at z, given a = activate(z).
template <typename T>
inline T derivative(int act, T z, T a, T alpha) {
    switch (act) {
        case LINEAR:   return T(1);
        case RELU:     return z > 0 ? T(1) : T(0);
        case LRELU:    return z > 0 ? T(1) : alpha;
        case TANH:     return T(1) - a * a;
        case SIGMOID:  return a * (T(1) - a);
        case ELU:      return z > 0 ? T(1) : a + T(1);
        case SELU:     return z > 0 ? T(kSeluScale) : a + T(kSeluScale * kSeluAlpha);
        case SOFTPLUS: return z > T(20) ? T(1) : T(1) / (T(1) + std::exp(-z));
        case SWISH: {
            const T s = T(1) / (T(1) + std::exp(-z));
            return s * (T(1) + z * (T(1) - s));
        }
    }
    return T(1);
}

template <typename T>
void forward_row(const T* x, T* y, int64_t n, T bias, int act, T alpha, T gain, T clamp) {
    for (int64_t i = 0; i < n; i++) {
        T v = activate<T>(act, x[i] + bias, alpha) * gain;
        if (clamp >= 0) v = v < -clamp ? -clamp : (v > clamp ? clamp : v);
        y[i] = v;
    }
}

// dx = dy * act'(z) * gain, zero where the clamp was active; returns the row sum of dx.
template <typename T>
double backward_row(const T* dy, const T* x, T* dx, int64_t n, T bias, int act, T alpha, T gain, T clamp) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const T z = x[i] + bias;
        const T a = activate<T>(act, z, alpha);
        T g = dy[i] * derivative<T>(act, z, a, alpha) * gain;
        if (clamp >= 0) {
            const T v = a * gain;
            if (v < -clamp || v > clamp) g = 0;
        }
        dx[i] = g;
        sum += (double)g;
    }
    return sum;
}

template <typename T>
void forward_row_lrelu(const T* x, T* y, int64_t n, T bias, T pos, T neg, T clamp) {
    if (clamp >= 0) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            const T z = x[i] + bias;
            T v = z > 0 ? z * pos : z * neg;
            v = v < -clamp ? -clamp : v;
            y[i] = v > clamp ? clamp : v;
        }
    } else {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            const T z = x[i] + bias;
            y[i] = z > 0 ? z * pos : z * neg;
        }
    }
}

// Backward of the piecewise linear activations (linear, relu, lrelu): slope pos for z > 0, neg otherwise.
template <typename T>
double backward_row_lrelu(const T* dy, const T* x, T* dx, int64_t n, T bias, T pos, T neg, T clamp) {
    double sum = 0;
    if (clamp >= 0) {
        #pragma omp simd reduction(+:sum)
        for (int64_t i = 0; i < n; i++) {
            const T z = x[i] + bias;
            const T slope = z > 0 ? pos : neg;
            const T v = z * slope;
            const T g = (v < -clamp || v > clamp) ? T(0) : dy[i] * slope;
            dx[i] = g;
            sum += (double)g;
        }
    } else {
        #pragma omp simd reduction(+:sum)
        for (int64_t i = 0; i < n; i++) {
            const T g = dy[i] * (x[i] + bias > 0 ? pos : neg);
            dx[i] = g;
            sum += (double)g;
        }
    }
    return sum;
}

void check(const torch::Tensor& t, const char* name) {
    TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble, name, " must be float32 or float64");
}

// x: contiguous, viewed as [outer, channels, inner]; b: [channels] or empty.
torch::Tensor bias_act_forward(torch::Tensor x, torch::Tensor b, int64_t outer, int64_t channels, int64_t inner,
                               int64_t act, double alpha, double gain, double clamp) {
    check(x, "x");
    TORCH_CHECK(x.numel() == outer * channels * inner, "shape mismatch");
    const bool has_bias = b.numel() > 0;
    if (has_bias) {
        check(b, "b");
        TORCH_CHECK(b.numel() == channels && b.scalar_type() == x.scalar_type(), "bias mismatch");
    }
    auto y = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_act_forward", [&] {
        const scalar_t* xp = x.data_ptr<scalar_t>();
        const scalar_t* bp = has_bias ? b.data_ptr<scalar_t>() : nullptr;
        scalar_t* yp = y.data_ptr<scalar_t>();
        const scalar_t a = (scalar_t)alpha, g = (scalar_t)gain, c = (scalar_t)clamp;
        if (inner == 1) {
            // Channels innermost (e.g. channels_last images, or [N, C] features): one row per outer index.
            at::parallel_for(0, outer, std::max<int64_t>(1, 32768 / channels), [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t ch = 0; ch < channels; ch++)
                        forward_row<scalar_t>(xp + r * channels + ch, yp + r * channels + ch, 1, has_bias ? bp[ch] : scalar_t(0), (int)act, a, g, c);
            });
            return;
        }
        const int64_t rows = outer * channels;
        const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(inner, 1));
        at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                const scalar_t bias = has_bias ? bp[r % channels] : scalar_t(0);
                if (act == LRELU || act == LINEAR || act == RELU) {
                    const scalar_t neg = act == LRELU ? a * g : (act == RELU ? scalar_t(0) : g);
                    forward_row_lrelu<scalar_t>(xp + r * inner, yp + r * inner, inner, bias, g, neg, c);
                } else {
                    forward_row<scalar_t>(xp + r * inner, yp + r * inner, inner, bias, (int)act, a, g, c);
                }
            }
        });
    });
    return y;
}

// Returns (dx, db); db is empty when want_db is false.
std::vector<torch::Tensor> bias_act_backward(torch::Tensor dy, torch::Tensor x, torch::Tensor b,
                                             int64_t outer, int64_t channels, int64_t inner,
                                             int64_t act, double alpha, double gain, double clamp, bool want_db) {
    check(dy, "dy");
    check(x, "x");
    TORCH_CHECK(dy.sizes() == x.sizes() && dy.scalar_type() == x.scalar_type(), "dy must match x");
    const bool has_bias = b.numel() > 0;
    if (has_bias) check(b, "b");
    auto dx = torch::empty_like(x);
    // Row sums, reduced serially afterwards so that the bias gradient is deterministic.
    std::vector<double> row_sums(want_db ? outer * channels : 0, 0.0);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_act_backward", [&] {
        const scalar_t* dyp = dy.data_ptr<scalar_t>();
        const scalar_t* xp = x.data_ptr<scalar_t>();
        const scalar_t* bp = has_bias ? b.data_ptr<scalar_t>() : nullptr;
        scalar_t* dxp = dx.data_ptr<scalar_t>();
        const scalar_t a = (scalar_t)alpha, g = (scalar_t)gain, c = (scalar_t)clamp;
        // With channels innermost, treat each element as a row of length 1.
        const int64_t rows = outer * channels;
        const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(inner, 1));
        at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                const scalar_t bias = has_bias ? bp[r % channels] : scalar_t(0);
                double s;
                if (act == LRELU || act == LINEAR || act == RELU) {
                    const scalar_t neg = act == LRELU ? a * g : (act == RELU ? scalar_t(0) : g);
                    s = backward_row_lrelu<scalar_t>(dyp + r * inner, xp + r * inner, dxp + r * inner, inner, bias, g, neg, c);
                } else {
                    s = backward_row<scalar_t>(dyp + r * inner, xp + r * inner, dxp + r * inner, inner, bias, (int)act, a, g, c);
                }
                if (want_db) row_sums[r] = s;
            }
        });
    });
    torch::Tensor db;
    if (want_db) {
        std::vector<double> db_acc(channels, 0.0);
        for (int64_t r = 0; r < outer * channels; r++) db_acc[r % channels] += row_sums[r];
        db = torch::from_blob(db_acc.data(), {channels}, torch::kDouble).clone().to(x.scalar_type());   // clone: db_acc dies here
    } else {
        db = torch::empty({0}, x.options());
    }
    return {dx, db};
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act_forward", &bias_act_forward, "bias_act forward (CPU)");
    m.def("bias_act_backward", &bias_act_backward, "bias_act first-order backward (CPU)");
}
