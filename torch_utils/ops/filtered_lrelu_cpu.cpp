// Fused CPU kernel for filtered_lrelu: upsampling FIR -> leaky ReLU -> downsampling FIR.
//
// The kernel runs a generic "pipeline" that the Python side configures:
//   stage 1: 2-D upsampling FIR (separable: along W, then along H; or a full 2-D filter)
//   middle : forward mode -- leaky ReLU * gain, clamp, and (if a backward may follow) record the
//            derivative code per sample; masked mode -- multiply by the recorded derivative (the op
//            linearised at the forward)
//   stage 2: 2-D downsampling FIR (separable: along H, then along W; or a full 2-D filter)
// The backward pass is the same pipeline with the adjoint stages, so one kernel serves forward,
// backward and double backward. The work itself is in filtered_lrelu_cpu_nhwc.h: vectors of
// neighbouring channels streamed through row buffers, compiled here for AVX-512, AVX2 and the
// baseline instruction set and chosen at run time.
//
// Each 1-D stage is described by (in_len, up, down, pad0, out_len) and a correlation kernel g:
//   out[k] = sum_j g[j] * U[down*k + j - pad0],  U[m] = in[m / up] if m % up == 0 else 0.
// Polyphase evaluation: inserted zeros are never multiplied, discarded outputs never computed.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace {

struct Axis {
    int64_t in_len, up, down, pad0, out_len;
};

int64_t pos_mod(int64_t a, int64_t b) { int64_t r = a % b; return (r < 0) ? r + b : r; }

Axis make_axis(const std::vector<int64_t>& p, int offset)
{
    return Axis{p[offset], p[offset + 1], p[offset + 2], p[offset + 3], p[offset + 4]};
}

void check_axis(const Axis& a)
{
    TORCH_CHECK(a.in_len > 0 && a.out_len > 0 && a.up >= 1 && a.down >= 1, "filtered_lrelu_cpu: bad stage sizes");
}

//----------------------------------------------------------------------------
// Channel-vectorised pipeline (filtered_lrelu_cpu_nhwc.h), compiled once per instruction set.

template <typename T>
struct NhwcStage {
    Axis ax, ay;
    const T* gx; int64_t fx;
    const T* gy; int64_t fy;
    const T* g2;            // null for separable
};

template <typename T>
struct NhwcArgs {
    int64_t batch, channels;
    const T* x; int64_t x_stride[4];   // NCHW strides, in elements
    T* y; int64_t y_stride[4];
    const T* bias;                     // [channels] or null
    uint8_t* code;                     // [batch * groups][mid_h][mid_w][lanes], or null (no backward)
    NhwcStage<T> st1, st2;
    double gain, slope, clamp;
    int mode;                          // 1: forward recording codes, 2: masked by the codes, else forward
};

#if defined(__x86_64__) && defined(__GNUC__)
#define FILTERED_LRELU_X86 1
namespace isa_avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2")
constexpr int kVectorBytes = 64;
#include "filtered_lrelu_cpu_nhwc.h"
#pragma GCC pop_options
}  // namespace isa_avx512

namespace isa_avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2")
constexpr int kVectorBytes = 32;
#include "filtered_lrelu_cpu_nhwc.h"
#pragma GCC pop_options
}  // namespace isa_avx2
#endif

namespace isa_base {
constexpr int kVectorBytes = 16;
#include "filtered_lrelu_cpu_nhwc.h"
}  // namespace isa_base

// Widest vector (in bytes) that this CPU and OS support among those compiled in.
int64_t best_vector_bytes()
{
#ifdef FILTERED_LRELU_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 64;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 32;
#endif
    return 16;
}

// A stage from its 10 axis parameters (W axis, then H axis) and its filters: separable gx/gy, or a
// non-empty 2-D g2 [fy, fx].
template <typename T>
NhwcStage<T> make_nhwc_stage(const std::vector<int64_t>& params, const torch::Tensor& gx, const torch::Tensor& gy, const torch::Tensor& g2)
{
    NhwcStage<T> st;
    st.ax = make_axis(params, 0);
    st.ay = make_axis(params, 5);
    if (g2.numel() > 0) {
        TORCH_CHECK(g2.dim() == 2, "filtered_lrelu_cpu: a 2-D filter must be 2-D");
        st.g2 = g2.data_ptr<T>();
        st.fy = g2.size(0);
        st.fx = g2.size(1);
        st.gx = st.gy = nullptr;
    } else {
        TORCH_CHECK(gx.numel() > 0 && gy.numel() > 0, "filtered_lrelu_cpu: missing filter");
        st.g2 = nullptr;
        st.gx = gx.data_ptr<T>(); st.fx = gx.numel();
        st.gy = gy.data_ptr<T>(); st.fy = gy.numel();
    }
    return st;
}

// Large fresh outputs are mapped page by page as the kernel first writes them; asking for huge
// pages (where the OS hands them out on request) makes that a few hundred page faults instead of
// tens of thousands, and the channel-group strides of NHWC cheaper on the TLB.
void prefer_huge_pages(const torch::Tensor& t)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t kHuge = uintptr_t(2) << 20;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t end = begin + uintptr_t(t.numel()) * t.element_size();
    const uintptr_t a = (begin + kHuge - 1) & ~(kHuge - 1), b = end & ~(kHuge - 1);
    if (b > a && b - a >= 2 * kHuge)
        madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);   // Advice only: failure changes nothing.
#else
    (void)t;
#endif
}

}  // namespace

int64_t nhwc_vector_bytes()
{
    return best_vector_bytes();
}

// x: [N, C, H, W], any strides; bias: [C] or empty. Stage parameters and filters as for
// filtered_lrelu_pipeline (stage 1 must only upsample, stage 2 only downsample). mode 0: forward,
// 1: forward returning the activation codes, 2: masked by `mask` (the codes of a mode-1 call with
// the same geometry and vector_bytes). The output is channels-last if `channels_last`, else
// contiguous. Returns [y, codes] (codes empty unless mode 1).
std::vector<torch::Tensor> filtered_lrelu_nhwc(
    torch::Tensor x, torch::Tensor bias,
    std::vector<int64_t> stage1_params, torch::Tensor s1_gx, torch::Tensor s1_gy, torch::Tensor s1_g2,
    int64_t mode, double slope, double gain, double clamp, torch::Tensor mask,
    std::vector<int64_t> stage2_params, torch::Tensor s2_gx, torch::Tensor s2_gy, torch::Tensor s2_g2,
    bool channels_last, int64_t vector_bytes)
{
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 4, "filtered_lrelu_cpu: x must be a 4-D CPU tensor");
    TORCH_CHECK(stage1_params.size() == 10 && stage2_params.size() == 10, "filtered_lrelu_cpu: stage params must have 10 entries");
    for (const auto& t : {bias, s1_gx, s1_gy, s1_g2, s2_gx, s2_gy, s2_g2})
        TORCH_CHECK(t.numel() == 0 || (t.scalar_type() == x.scalar_type() && t.is_contiguous()), "filtered_lrelu_cpu: bias/filters must match x's dtype and be contiguous");
    const int64_t n = x.size(0), c = x.size(1);
    TORCH_CHECK(bias.numel() == 0 || bias.numel() == c, "filtered_lrelu_cpu: bias size mismatch");
    TORCH_CHECK(x.size(2) == stage1_params[5] && x.size(3) == stage1_params[0], "filtered_lrelu_cpu: x does not match stage 1 input size");
    TORCH_CHECK(stage2_params[0] == stage1_params[4] && stage2_params[5] == stage1_params[9], "filtered_lrelu_cpu: stage 2 input must be stage 1 output");
    TORCH_CHECK(stage1_params[2] == 1 && stage1_params[7] == 1 && stage2_params[1] == 1 && stage2_params[6] == 1,
                "filtered_lrelu_cpu: stage 1 must only upsample and stage 2 only downsample");
    if (vector_bytes == 0)
        vector_bytes = best_vector_bytes();
    TORCH_CHECK(vector_bytes == 16 || (vector_bytes <= best_vector_bytes() && (vector_bytes == 32 || vector_bytes == 64)),
                "filtered_lrelu_cpu: unsupported vector width");

    const int64_t lanes = vector_bytes / int64_t(x.element_size());
    const int64_t groups = (c + lanes - 1) / lanes;
    const int64_t mid_w = stage1_params[4], mid_h = stage1_params[9];
    const int64_t code_bytes = n * groups * mid_h * mid_w * lanes;
    torch::Tensor codes = torch::empty({0}, x.options().dtype(torch::kUInt8));
    if (mode == 1)
        codes = torch::empty({code_bytes}, x.options().dtype(torch::kUInt8));
    if (mode == 2) {
        TORCH_CHECK(mask.scalar_type() == torch::kUInt8 && mask.is_contiguous() && mask.numel() == code_bytes, "filtered_lrelu_cpu: mask does not match");
        codes = mask;
    }
    torch::Tensor y = torch::empty({n, c, stage2_params[9], stage2_params[4]},
                                   x.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
    prefer_huge_pages(y);
    if (mode == 1)
        prefer_huge_pages(codes);

    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "filtered_lrelu_nhwc", [&] {
        NhwcArgs<scalar_t> a;
        a.batch = n;
        a.channels = c;
        a.x = x.data_ptr<scalar_t>();
        a.y = y.data_ptr<scalar_t>();
        for (int i = 0; i < 4; i++) {
            a.x_stride[i] = x.stride(i);
            a.y_stride[i] = y.stride(i);
        }
        a.bias = bias.numel() > 0 ? bias.data_ptr<scalar_t>() : nullptr;
        a.code = (mode == 1 || mode == 2) ? codes.data_ptr<uint8_t>() : nullptr;
        a.st1 = make_nhwc_stage<scalar_t>(stage1_params, s1_gx, s1_gy, s1_g2);
        a.st2 = make_nhwc_stage<scalar_t>(stage2_params, s2_gx, s2_gy, s2_g2);
        for (const Axis* ax : {&a.st1.ax, &a.st1.ay, &a.st2.ax, &a.st2.ay})
            check_axis(*ax);
        a.gain = gain;
        a.slope = slope;
        a.clamp = clamp;
        a.mode = int(mode);
#ifdef FILTERED_LRELU_X86
        if (vector_bytes == 64) { isa_avx512::run_nhwc<scalar_t>(a); return; }
        if (vector_bytes == 32) { isa_avx2::run_nhwc<scalar_t>(a); return; }
#endif
        isa_base::run_nhwc<scalar_t>(a);
    });
    return {y, codes};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("filtered_lrelu_nhwc", &filtered_lrelu_nhwc, "Fused upfirdn -> leaky ReLU -> upfirdn on CPU, vectorised over channels");
    m.def("nhwc_vector_bytes", &nhwc_vector_bytes, "Widest vector width (bytes) the kernel can use on this CPU");
}
