// Kernel of bias_act; see ops_cuda.h.
#include "common_cuda.h"

namespace {

// Value and first two derivatives of the activation at s.
__host__ __device__ inline void activation(int act, float s, float alpha, float& v, float& d1, float& d2) {
    const float selu_scale = 1.0507009873554804934193349852946f;
    const float selu_alpha = 1.6732632423543772848170429916717f;
    switch (act) {
        case kActRelu:
            v = s > 0.f ? s : 0.f; d1 = s > 0.f ? 1.f : 0.f; d2 = 0.f; break;
        case kActLrelu:
            v = s > 0.f ? s : s * alpha; d1 = s > 0.f ? 1.f : alpha; d2 = 0.f; break;
        case kActTanh: {
            float t = tanhf(s);
            v = t; d1 = 1.f - t * t; d2 = -2.f * t * d1; break;
        }
        case kActSigmoid: {
            float sig = 1.f / (1.f + expf(-s));
            v = sig; d1 = sig * (1.f - sig); d2 = d1 * (1.f - 2.f * sig); break;
        }
        case kActElu:
            if (s > 0.f) { v = s; d1 = 1.f; d2 = 0.f; }
            else { float e = expf(s); v = expm1f(s); d1 = e; d2 = e; }
            break;
        case kActSelu:
            if (s > 0.f) { v = selu_scale * s; d1 = selu_scale; d2 = 0.f; }
            else { float e = expf(s); v = selu_scale * selu_alpha * expm1f(s); d1 = selu_scale * selu_alpha * e; d2 = d1; }
            break;
        case kActSoftplus:
            // Same threshold as torch.nn.functional.softplus (beta=1, threshold=20).
            if (s > 20.f) { v = s; d1 = 1.f; d2 = 0.f; }
            else { float sig = 1.f / (1.f + expf(-s)); v = log1pf(expf(s)); d1 = sig; d2 = sig * (1.f - sig); }
            break;
        case kActSwish: {
            float sig = 1.f / (1.f + expf(-s));
            v = s * sig; d1 = sig * (1.f + s * (1.f - sig)); d2 = sig * (1.f - sig) * (2.f + s * (1.f - 2.f * sig));
            break;
        }
        default:  // kActLinear
            v = s; d1 = 1.f; d2 = 0.f; break;
    }
}

template <typename T>
__host__ __device__ inline void bias_act_element(const BiasActParams& p, int64_t i, T* out, const T* x,
                                                 const float* b, const T* dy, const T* g) {
    float s = to_float(x[i]);
    if (p.bias_size > 0) {
        // 32-bit division is several times cheaper than 64-bit on the GPU; p.numel decides uniformly.
        if (p.numel <= 0xffffffffll)
            s += b[((uint32_t)i / (uint32_t)p.bias_stride) % (uint32_t)p.bias_size];
        else
            s += b[(i / p.bias_stride) % p.bias_size];
    }
    float v, d1, d2;
    activation(p.act, s, p.alpha, v, d1, d2);
    v *= p.gain;
    // torch.clamp passes the gradient where the value lies within [-clamp, clamp], bounds included.
    float inside = 1.f;
    if (p.clamp >= 0.f) {
        if (v > p.clamp) { v = p.clamp; inside = 0.f; }
        else if (v < -p.clamp) { v = -p.clamp; inside = 0.f; }
    }
    float r;
    if (p.mode == kBiasActForward)
        r = v;
    else if (p.mode == kBiasActGrad)
        r = to_float(dy[i]) * (p.gain * d1 * inside);
    else
        r = to_float(g[i]) * to_float(dy[i]) * (p.gain * d2 * inside);
    out[i] = from_float<T>(r);
}

template <typename T>
__global__ void bias_act_kernel(BiasActParams p, T* out, const T* x, const float* b, const T* dy, const T* g) {
    int64_t step = (int64_t)blockDim.x * gridDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.numel; i += step)
        bias_act_element(p, i, out, x, b, dy, g);
}

} // namespace

cudaError_t bias_act_run(const BiasActParams& p, DType dtype, void* out, const void* x, const float* b,
                         const void* dy, const void* g, cudaStream_t stream, bool on_device) {
    return dispatch_dtype(dtype, [&](auto zero) -> cudaError_t {
        using T = decltype(zero);
        T* out_t = static_cast<T*>(out);
        const T* x_t = static_cast<const T*>(x);
        const T* dy_t = static_cast<const T*>(dy);
        const T* g_t = static_cast<const T*>(g);
        if (!on_device) {
            for (int64_t i = 0; i < p.numel; i++)
                bias_act_element(p, i, out_t, x_t, b, dy_t, g_t);
            return cudaSuccess;
        }
        const int threads = 256;
        int64_t blocks = (p.numel + threads - 1) / threads;
        blocks = blocks < 65536 ? blocks : 65536;
        bias_act_kernel<T><<<(unsigned)blocks, threads, 0, stream>>>(p, out_t, x_t, b, dy_t, g_t);
        return cudaGetLastError();
    });
}
