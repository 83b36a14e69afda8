// Kernel of filtered_lrelu; see ops_cuda.h.
//
// Each block owns a tile of output samples of one image plane and keeps everything it needs in
// shared memory: the two filters, the input tile (bias added), and the mid tile (after the
// upsampling filter and the nonlinearity). The mid tile overlaps those of neighbouring blocks by
// the size of the downsampling filter; overlapping samples are computed identically by each block
// (same operations in the same order), so their duplicate sign writes agree. The signs take 2 bits
// per mid sample, 16 to a 32-bit word.
//
// Separable filters run as a horizontal and a vertical pass, through a temp tile.
//
// The kernel is written as phases separated by barriers, each a loop "for every work item, strided
// by the thread count", with no per-thread state carried across a barrier. The CPU emulation runs
// the same phases with one thread per block.
#include <vector>
#include "common_cuda.h"

namespace {


__host__ __device__ inline int floor_div(int a, int b) {  // b > 0
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

__host__ __device__ inline int ceil_div(int a, int b) {  // b > 0
    return -floor_div(-a, b);
}

__host__ __device__ inline int first_tap(int m0, int up) {  // smallest k >= 0 with (m0 + k) % up == 0
    int r = (-m0) % up;
    return r < 0 ? r + up : r;
}

// Where a block's tiles start, in output, mid and input coordinates.
struct TileOrigin {
    int out_x0, out_y0, mid_x0, mid_y0, in_x0, in_y0;
};

__host__ __device__ inline TileOrigin tile_origin(const FlreluParams& p, int tile_index) {
    TileOrigin t;
    t.out_x0 = (tile_index % p.tiles_x) * p.tile_w;
    t.out_y0 = (tile_index / p.tiles_x) * p.tile_h;
    t.mid_x0 = t.out_x0 * p.down - p.pad2_x0;
    t.mid_y0 = t.out_y0 * p.down - p.pad2_y0;
    t.in_x0 = ceil_div(t.mid_x0 - p.pad1_x0, p.up);  // first input sample any mid sample of the tile reads
    t.in_y0 = ceil_div(t.mid_y0 - p.pad1_y0, p.up);
    return t;
}

struct SharedLayout {
    float* f1;    // 2-D: [f1_h][f1_w]; separable: f1_w x taps, then f1_h y taps
    float* f2;
    float* in;    // [in_tile_h][in_tile_w]
    float* mid;   // [mid_tile_h][mid_tile_w]
    float* temp;  // separable passes: [in_tile_h][mid_tile_w] upsampling, [mid_tile_h][tile_w] downsampling
};

__host__ __device__ inline SharedLayout shared_layout(const FlreluParams& p, float* base) {
    SharedLayout s;
    s.f1 = base;
    s.f2 = s.f1 + (p.sep1 ? p.f1_w + p.f1_h : p.f1_w * p.f1_h);
    s.in = s.f2 + (p.sep2 ? p.f2_w + p.f2_h : p.f2_w * p.f2_h);
    s.mid = s.in + p.in_tile_w * p.in_tile_h;
    s.temp = s.mid + p.mid_tile_w * p.mid_tile_h;
    return s;
}


// Phase 0 (once per block): filters to shared memory.
__host__ __device__ inline void load_filters(const FlreluParams& p, const SharedLayout& s, const float* f1,
                                             const float* f2, int tid, int nthreads) {
    int n1 = p.sep1 ? p.f1_w + p.f1_h : p.f1_w * p.f1_h;
    int n2 = p.sep2 ? p.f2_w + p.f2_h : p.f2_w * p.f2_h;
    for (int i = tid; i < n1; i += nthreads) s.f1[i] = f1[i];
    for (int i = tid; i < n2; i += nthreads) s.f2[i] = f2[i];
}

// Phase 1: input tile of one plane (plus bias in the forward), zeros outside the image.
template <typename T>
__host__ __device__ inline void load_input(const FlreluParams& p, const SharedLayout& s, const TileOrigin& t,
                                           int plane, const T* x, const float* b, int tid, int nthreads) {
    int n = plane / p.channels;
    int c = plane % p.channels;
    const T* xp = x + (int64_t)n * p.stride_n + (int64_t)c * p.stride_c;
    float bias = (p.mode == kFlreluForward && b != nullptr) ? b[c] : 0.f;
    for (int i = tid; i < p.in_tile_w * p.in_tile_h; i += nthreads) {
        int iy = t.in_y0 + i / p.in_tile_w;
        int ix = t.in_x0 + i % p.in_tile_w;
        float v = 0.f;
        if (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w)
            v = to_float(xp[iy * p.stride_h + ix * p.stride_w]) + bias;
        s.in[i] = v;
    }
}

// Sets bits of a zero-initialised sign word. Neighbouring threads share words and neighbouring
// blocks recompute (identically) the samples where their tiles overlap, so the bits are ORed in:
// atomically on the GPU, and setting the same bits twice is harmless.
__host__ __device__ inline void or_bits(uint32_t* word, uint32_t bits) {
#ifdef __CUDA_ARCH__
    atomicOr(word, bits);
#else
    *word |= bits;
#endif
}

// The leaky ReLU, gain and clamp of one mid sample (recording its kind), or in the linear mode the
// recorded derivative times z.
__host__ __device__ inline float nonlinearity(const FlreluParams& p, float z, int plane, int jy, int jx,
                                              uint32_t* signs_out, const uint32_t* signs_in) {
    int64_t word = ((int64_t)plane * p.mid_h + jy) * p.signs_words_w + jx / 16;
    int shift = 2 * (jx % 16);
    if (p.mode == kFlreluForward) {
        uint8_t kind = z > 0.f ? 0 : 1;  // the derivative of leaky_relu at 0 is the slope
        float a = (z > 0.f ? z : z * p.slope) * p.gain;
        if (p.clamp >= 0.f) {
            // torch.clamp passes the gradient on the bounds themselves.
            if (a > p.clamp) { a = p.clamp; kind = 2; }
            else if (a < -p.clamp) { a = -p.clamp; kind = 2; }
        }
        if (signs_out != nullptr && kind != 0)
            or_bits(signs_out + word, (uint32_t)kind << shift);
        return a;
    }
    uint32_t kind = (signs_in[word] >> shift) & 3u;
    return kind == 0 ? z * p.gain : kind == 1 ? z * (p.gain * p.slope) : 0.f;
}

// Phase 2, 2-D filter: upsampling filter and nonlinearity into the mid tile; records the signs.
__host__ __device__ inline void compute_mid(const FlreluParams& p, const SharedLayout& s, const TileOrigin& t,
                                            int plane, uint32_t* signs_out, const uint32_t* signs_in,
                                            int tid, int nthreads) {
    for (int i = tid; i < p.mid_tile_w * p.mid_tile_h; i += nthreads) {
        int jy = t.mid_y0 + i / p.mid_tile_w;
        int jx = t.mid_x0 + i % p.mid_tile_w;
        float a = 0.f;
        if (jy >= 0 && jy < p.mid_h && jx >= 0 && jx < p.mid_w) {
            int my0 = jy - p.pad1_y0;  // upsampled-image coordinate read by tap 0
            int mx0 = jx - p.pad1_x0;
            int kx_first = first_tap(mx0, p.up);
            float z = 0.f;
            for (int ky = first_tap(my0, p.up); ky < p.f1_h; ky += p.up) {
                int in_row = ((my0 + ky) / p.up - t.in_y0) * p.in_tile_w;  // exact division
                const float* f_row = s.f1 + ky * p.f1_w;
                for (int kx = kx_first; kx < p.f1_w; kx += p.up)
                    z += f_row[kx] * s.in[in_row + (mx0 + kx) / p.up - t.in_x0];
            }
            a = nonlinearity(p, z, plane, jy, jx, signs_out, signs_in);
        }
        s.mid[i] = a;
    }
}

// Phase 2, separable filter, first half: upsample the rows of the input tile into the temp tile.
__host__ __device__ inline void upsample_rows(const FlreluParams& p, const SharedLayout& s, const TileOrigin& t,
                                              int tid, int nthreads) {
    for (int i = tid; i < p.in_tile_h * p.mid_tile_w; i += nthreads) {
        int r = i / p.mid_tile_w;
        int mx0 = t.mid_x0 + i % p.mid_tile_w - p.pad1_x0;
        const float* in_row = s.in + r * p.in_tile_w;
        float acc = 0.f;
        for (int kx = first_tap(mx0, p.up); kx < p.f1_w; kx += p.up)
            acc += s.f1[kx] * in_row[(mx0 + kx) / p.up - t.in_x0];
        s.temp[i] = acc;
    }
}

// Phase 2, separable filter, second half: upsample the columns of the temp tile, then the nonlinearity.
__host__ __device__ inline void upsample_columns(const FlreluParams& p, const SharedLayout& s, const TileOrigin& t,
                                                 int plane, uint32_t* signs_out, const uint32_t* signs_in,
                                                 int tid, int nthreads) {
    const float* f_y = s.f1 + p.f1_w;
    for (int i = tid; i < p.mid_tile_w * p.mid_tile_h; i += nthreads) {
        int q = i % p.mid_tile_w;
        int jy = t.mid_y0 + i / p.mid_tile_w;
        int jx = t.mid_x0 + q;
        float a = 0.f;
        if (jy >= 0 && jy < p.mid_h && jx >= 0 && jx < p.mid_w) {
            int my0 = jy - p.pad1_y0;
            float z = 0.f;
            for (int ky = first_tap(my0, p.up); ky < p.f1_h; ky += p.up)
                z += f_y[ky] * s.temp[((my0 + ky) / p.up - t.in_y0) * p.mid_tile_w + q];
            a = nonlinearity(p, z, plane, jy, jx, signs_out, signs_in);
        }
        s.mid[i] = a;
    }
}

// Phase 3: downsampling filter from the mid tile to the output.
template <typename T>
__host__ __device__ inline void compute_output(const FlreluParams& p, const SharedLayout& s, const TileOrigin& t,
                                               int plane, T* out, int tid, int nthreads) {
    for (int i = tid; i < p.tile_w * p.tile_h; i += nthreads) {
        int ry = i / p.tile_w;
        int rx = i % p.tile_w;
        int oy = t.out_y0 + ry;
        int ox = t.out_x0 + rx;
        if (oy >= p.out_h || ox >= p.out_w)
            continue;
        float acc = 0.f;
        for (int ky = 0; ky < p.f2_h; ky++) {
            const float* mid_row = s.mid + (ry * p.down + ky) * p.mid_tile_w + rx * p.down;
            const float* f_row = s.f2 + ky * p.f2_w;
            for (int kx = 0; kx < p.f2_w; kx++)
                acc += f_row[kx] * mid_row[kx];
        }
        out[((int64_t)plane * p.out_h + oy) * p.out_w + ox] = from_float<T>(acc);
    }
}

// Phase 3, separable filter, first half: downsample the rows of the mid tile into the temp tile.
__host__ __device__ inline void downsample_rows(const FlreluParams& p, const SharedLayout& s, int tid, int nthreads) {
    for (int i = tid; i < p.mid_tile_h * p.tile_w; i += nthreads) {
        int r = i / p.tile_w;
        int rx = i % p.tile_w;
        const float* mid_row = s.mid + r * p.mid_tile_w + rx * p.down;
        float acc = 0.f;
        for (int kx = 0; kx < p.f2_w; kx++)
            acc += s.f2[kx] * mid_row[kx];
        s.temp[i] = acc;
    }
}

// Phase 3, separable filter, second half: downsample the columns of the temp tile to the output.
template <typename T>
__host__ __device__ inline void downsample_columns(const FlreluParams& p, const SharedLayout& s, const TileOrigin& t,
                                                   int plane, T* out, int tid, int nthreads) {
    const float* f_y = s.f2 + p.f2_w;
    for (int i = tid; i < p.tile_w * p.tile_h; i += nthreads) {
        int ry = i / p.tile_w;
        int rx = i % p.tile_w;
        int oy = t.out_y0 + ry;
        int ox = t.out_x0 + rx;
        if (oy >= p.out_h || ox >= p.out_w)
            continue;
        float acc = 0.f;
        for (int ky = 0; ky < p.f2_h; ky++)
            acc += f_y[ky] * s.temp[(ry * p.down + ky) * p.tile_w + rx];
        out[((int64_t)plane * p.out_h + oy) * p.out_w + ox] = from_float<T>(acc);
    }
}

// One plane of one tile; `barrier` separates the phases (__syncthreads on the GPU, nothing on the CPU,
// where the phases run one after the other).
template <typename T, typename Barrier>
__host__ __device__ inline void process_plane(const FlreluParams& p, const SharedLayout& s, const TileOrigin& t, int plane,
                                              T* out, uint32_t* signs_out, const T* x, const float* b,
                                              const uint32_t* signs_in, int tid, int nthreads, Barrier barrier) {
    barrier();  // the previous plane is done with the tiles
    load_input(p, s, t, plane, x, b, tid, nthreads);
    barrier();
    if (p.sep1) {
        upsample_rows(p, s, t, tid, nthreads);
        barrier();
        upsample_columns(p, s, t, plane, signs_out, signs_in, tid, nthreads);
    } else {
        compute_mid(p, s, t, plane, signs_out, signs_in, tid, nthreads);
    }
    barrier();
    if (p.sep2) {
        downsample_rows(p, s, tid, nthreads);
        barrier();
        downsample_columns(p, s, t, plane, out, tid, nthreads);
    } else {
        compute_output(p, s, t, plane, out, tid, nthreads);
    }
}

struct DeviceBarrier {
    __device__ void operator()() const { __syncthreads(); }
};

struct HostBarrier {
    __host__ __device__ void operator()() const {}
};

template <typename T>
__global__ void filtered_lrelu_kernel(FlreluParams p, T* out, uint32_t* signs_out, const T* x, const float* b,
                                      const float* f1, const float* f2, const uint32_t* signs_in) {
    extern __shared__ float shared[];
    SharedLayout s = shared_layout(p, shared);
    TileOrigin t = tile_origin(p, blockIdx.x);
    load_filters(p, s, f1, f2, threadIdx.x, blockDim.x);
    for (int plane = blockIdx.y; plane < p.planes; plane += gridDim.y)
        process_plane(p, s, t, plane, out, signs_out, x, b, signs_in, threadIdx.x, blockDim.x, DeviceBarrier());
}

template <typename T>
void emulate_on_cpu(const FlreluParams& p, int num_tiles, T* out, uint32_t* signs_out, const T* x, const float* b,
                    const float* f1, const float* f2, const uint32_t* signs_in) {
    std::vector<float> shared(flrelu_shared_floats(p));
    SharedLayout s = shared_layout(p, shared.data());
    load_filters(p, s, f1, f2, 0, 1);
    for (int tile = 0; tile < num_tiles; tile++) {
        TileOrigin t = tile_origin(p, tile);
        for (int plane = 0; plane < p.planes; plane++)
            process_plane(p, s, t, plane, out, signs_out, x, b, signs_in, 0, 1, HostBarrier());
    }
}

} // namespace

cudaError_t filtered_lrelu_run(const FlreluParams& p, DType dtype, void* out, uint32_t* signs_out, const void* x,
                               const float* b, const float* f1, const float* f2, const uint32_t* signs_in,
                               cudaStream_t stream, bool on_device) {
    return dispatch_dtype(dtype, [&](auto zero) -> cudaError_t {
        using T = decltype(zero);
        T* out_t = static_cast<T*>(out);
        const T* x_t = static_cast<const T*>(x);
        int num_tiles = p.tiles_x * p.tiles_y;
        if (!on_device) {
            emulate_on_cpu<T>(p, num_tiles, out_t, signs_out, x_t, b, f1, f2, signs_in);
            return cudaSuccess;
        }
        dim3 grid((unsigned)num_tiles, (unsigned)(p.planes < 65535 ? p.planes : 65535));
        size_t shared_bytes = flrelu_shared_floats(p) * sizeof(float);
        filtered_lrelu_kernel<T><<<grid, 256, shared_bytes, stream>>>(p, out_t, signs_out, x_t, b, f1, f2, signs_in);
        return cudaGetLastError();
    });
}
