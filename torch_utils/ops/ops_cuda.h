// Declarations shared by the CUDA kernels (*.cu, compiled by nvcc without PyTorch headers, which
// keeps their build short) and the PyTorch bindings (ops_cuda.cpp).
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

// Element types of the tensors the kernels read and write; arithmetic is always float32.
enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// Every launcher either runs its kernel on `stream` (on_device) or runs the very same per-element
// or per-block code on the CPU (for tests on machines without a GPU). It returns the launch
// error, cudaSuccess on the CPU.

//----------------------------------------------------------------------------
// bias_act: s = x + b (b broadcast along one dimension), then per mode
//   0 (forward): out = clamp(act(s) * gain)
//   1 (grad):    out = dy * d/ds[clamp(act(s) * gain)]           (linear in dy)
//   2 (grad2):   out = g * dy * d2/ds2[clamp(act(s) * gain)]     (the x path of grad-of-grad)

enum BiasActMode { kBiasActForward = 0, kBiasActGrad = 1, kBiasActGrad2 = 2 };

enum BiasActFunc {
    kActLinear = 0, kActRelu = 1, kActLrelu = 2, kActTanh = 3, kActSigmoid = 4,
    kActElu = 5, kActSelu = 6, kActSoftplus = 7, kActSwish = 8,
};

struct BiasActParams {
    int act;
    int mode;
    float alpha;
    float gain;
    float clamp;            // < 0: no clamping
    int64_t numel;
    int64_t bias_stride;    // elements between consecutive indices along the bias dimension
    int64_t bias_size;      // 0 when there is no bias
};

// x, dy, g, out: contiguous, of type `dtype`; b: float32 or null; dy and g may be null when unread.
cudaError_t bias_act_run(const BiasActParams& p, DType dtype, void* out, const void* x, const float* b,
                         const void* dy, const void* g, cudaStream_t stream, bool on_device);

//----------------------------------------------------------------------------
// upfirdn2d on [N, C, H, W]; per axis, with f in correlation order (flipped unless flip_filter) and
// the gain folded in:
//   out[o] = sum_k f[k] * xu[o * down + k - pad0],   xu[m] = x[m / up] if m % up == 0 else 0,
// reading zeros outside the image. x has any strides; out is contiguous [N, C, out_h, out_w].

struct UpFirDnParams {
    int up_x, up_y, down_x, down_y, pad_x0, pad_y0;
    int in_w, in_h, out_w, out_h, f_w, f_h, channels;
    int64_t stride_n, stride_c, stride_h, stride_w;  // of x, in elements
    int64_t numel;                                   // of the output
};

cudaError_t upfirdn2d_run(const UpFirDnParams& p, DType dtype, void* out, const void* x, const float* f,
                          cudaStream_t stream, bool on_device);

//----------------------------------------------------------------------------
// filtered_lrelu: one pass evaluates, per image plane and per axis,
//   z[j]   = sum_k f1[k] * xu[j + k - pad1_0],  xu[m] = x[m / up] if m % up == 0 else 0   (0 <= j < mid)
//   a[j]   = act(z[j]) for 0 <= j < mid, 0 elsewhere
//   out[o] = sum_k f2[k] * a[o * down + k - pad2_0]
// with f1, f2 float32 in correlation order (gains folded in), either [taps_y, taps_x] or, when
// separable, [2, taps] holding the x taps and then the y taps; and
//   mode 0 (forward): x gets the bias b[c] (inside the image only), act(z) = clamp(lrelu(z, slope) * gain),
//                     and, if signs_out is not null, the kind of every mid sample goes to
//                     signs_out: 0 = positive, 1 = negative, 2 = clamped, 2 bits each, sample jx of a
//                     row in bits 2 * (jx % 16) of word jx / 16; [N, C, mid_h, signs_words_w] 32-bit
//                     words, zero-initialised.
//   mode 1 (linear):  act(z) = z * the derivative recorded in signs_in, i.e. the forward linearised
//                     around the stored signs. With up/down and filters of the forward this is the
//                     transpose of the backward; in the adjoint configuration it is the backward.

enum FlreluMode { kFlreluForward = 0, kFlreluLinear = 1 };

struct FlreluParams {
    int mode;
    float gain, slope, clamp;        // clamp < 0: no clamping
    int up, down;
    int in_w, in_h;
    int pad1_x0, pad1_y0;
    int f1_w, f1_h;                  // taps; a separable filter holds f1_w x taps, then f1_h y taps
    int sep1, sep2;                  // whether f1 / f2 are separable
    int mid_w, mid_h;                // extent of the valid mid image
    int signs_words_w;               // 32-bit words per row of signs: ceil(mid_w / 16)
    int pad2_x0, pad2_y0;
    int f2_w, f2_h;
    int out_w, out_h;
    int channels, planes;
    int64_t stride_n, stride_c, stride_h, stride_w;  // of x, in elements
    // Tiling, set by flrelu_choose_tiles().
    int tile_w, tile_h;              // output samples per block
    int tiles_x, tiles_y;
    int mid_tile_w, mid_tile_h;      // (tile - 1) * down + f2 taps
    int in_tile_w, in_tile_h;        // ceil((mid_tile + f1 taps - 1) / up)
};

// Floats of shared memory per block: filters, input tile, mid tile, and the half-filtered tile of
// the separable passes (horizontal pass done, vertical pending).
inline int64_t flrelu_filter_floats(int w, int h, int separable) {
    return separable ? (int64_t)w + h : (int64_t)w * h;
}

inline int64_t flrelu_temp_floats(const FlreluParams& p) {
    int64_t up_pass = p.sep1 ? (int64_t)p.in_tile_h * p.mid_tile_w : 0;
    int64_t down_pass = p.sep2 ? (int64_t)p.mid_tile_h * p.tile_w : 0;
    return up_pass > down_pass ? up_pass : down_pass;
}

inline int64_t flrelu_shared_floats(const FlreluParams& p) {
    return flrelu_filter_floats(p.f1_w, p.f1_h, p.sep1) + flrelu_filter_floats(p.f2_w, p.f2_h, p.sep2) +
           (int64_t)p.in_tile_w * p.in_tile_h + (int64_t)p.mid_tile_w * p.mid_tile_h + flrelu_temp_floats(p);
}

const int64_t kFlreluMaxSharedBytes = 48 * 1024;  // available to every block without opting in

// Output tiles as large as 16x16 while a block's shared memory fits; false if not even 1x1 fits.
inline bool flrelu_choose_tiles(FlreluParams& p) {
    p.tile_w = p.out_w < 16 ? p.out_w : 16;
    p.tile_h = p.out_h < 16 ? p.out_h : 16;
    for (;;) {
        p.mid_tile_w = (p.tile_w - 1) * p.down + p.f2_w;
        p.mid_tile_h = (p.tile_h - 1) * p.down + p.f2_h;
        p.in_tile_w = (p.mid_tile_w + p.f1_w - 1 + p.up - 1) / p.up;
        p.in_tile_h = (p.mid_tile_h + p.f1_h - 1 + p.up - 1) / p.up;
        if (flrelu_shared_floats(p) * (int64_t)sizeof(float) <= kFlreluMaxSharedBytes)
            break;
        if (p.tile_w == 1 && p.tile_h == 1)
            return false;
        if (p.tile_w >= p.tile_h) p.tile_w = (p.tile_w + 1) / 2;
        else p.tile_h = (p.tile_h + 1) / 2;
    }
    p.tiles_x = (p.out_w + p.tile_w - 1) / p.tile_w;
    p.tiles_y = (p.out_h + p.tile_h - 1) / p.tile_h;
    return true;
}

cudaError_t filtered_lrelu_run(const FlreluParams& p, DType dtype, void* out, uint32_t* signs_out, const void* x,
                               const float* b, const float* f1, const float* f2, const uint32_t* signs_in,
                               cudaStream_t stream, bool on_device);
