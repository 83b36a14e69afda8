// Kernel of upfirdn2d; see ops_cuda.h.
#include "common_cuda.h"

namespace {

// Smallest k >= 0 with (m0 + k) % up == 0.
__host__ __device__ inline int first_tap(int m0, int up) {
    int r = (-m0) % up;
    return r < 0 ? r + up : r;
}

// One output sample: visits only the taps that land on a real (not inserted) input sample.
template <typename T>
__host__ __device__ inline void upfirdn2d_element(const UpFirDnParams& p, int64_t i, T* out, const T* x, const float* f) {
    int ox, oy, c;
    int64_t n;
    if (p.numel <= 0xffffffffll) {  // 32-bit division is several times cheaper on the GPU
        uint32_t t = (uint32_t)i;
        ox = (int)(t % (uint32_t)p.out_w); t /= (uint32_t)p.out_w;
        oy = (int)(t % (uint32_t)p.out_h); t /= (uint32_t)p.out_h;
        c = (int)(t % (uint32_t)p.channels); n = t / (uint32_t)p.channels;
    } else {
        int64_t t = i;
        ox = (int)(t % p.out_w); t /= p.out_w;
        oy = (int)(t % p.out_h); t /= p.out_h;
        c = (int)(t % p.channels); n = t / p.channels;
    }
    const T* plane = x + n * p.stride_n + c * p.stride_c;

    int my0 = oy * p.down_y - p.pad_y0;  // upsampled-image row read by tap ky = 0
    int mx0 = ox * p.down_x - p.pad_x0;
    int kx_first = first_tap(mx0, p.up_x);
    float acc = 0.f;
    for (int ky = first_tap(my0, p.up_y); ky < p.f_h; ky += p.up_y) {
        int iy = (my0 + ky) / p.up_y;  // exact: my0 + ky is a multiple of up_y
        if (iy < 0) continue;
        if (iy >= p.in_h) break;
        for (int kx = kx_first; kx < p.f_w; kx += p.up_x) {
            int ix = (mx0 + kx) / p.up_x;
            if (ix < 0) continue;
            if (ix >= p.in_w) break;
            acc += f[ky * p.f_w + kx] * to_float(plane[iy * p.stride_h + ix * p.stride_w]);
        }
    }
    out[i] = from_float<T>(acc);
}

template <typename T>
__global__ void upfirdn2d_kernel(UpFirDnParams p, T* out, const T* x, const float* f) {
    int64_t step = (int64_t)blockDim.x * gridDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.numel; i += step)
        upfirdn2d_element(p, i, out, x, f);
}

} // namespace

cudaError_t upfirdn2d_run(const UpFirDnParams& p, DType dtype, void* out, const void* x, const float* f,
                          cudaStream_t stream, bool on_device) {
    return dispatch_dtype(dtype, [&](auto zero) -> cudaError_t {
        using T = decltype(zero);
        T* out_t = static_cast<T*>(out);
        const T* x_t = static_cast<const T*>(x);
        if (!on_device) {
            for (int64_t i = 0; i < p.numel; i++)
                upfirdn2d_element(p, i, out_t, x_t, f);
            return cudaSuccess;
        }
        const int threads = 256;
        int64_t blocks = (p.numel + threads - 1) / threads;
        blocks = blocks < 65536 ? blocks : 65536;
        upfirdn2d_kernel<T><<<(unsigned)blocks, threads, 0, stream>>>(p, out_t, x_t, f);
        return cudaGetLastError();
    });
}
