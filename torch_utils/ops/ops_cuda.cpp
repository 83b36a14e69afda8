// PyTorch bindings of the CUDA kernels of bias_act, upfirdn2d and filtered_lrelu (see ops_cuda.h):
// argument checks, output allocation, and the launch on the current stream. A CPU tensor runs the
// kernels' own code on the CPU, so that the kernels can be tested on machines without a GPU.
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <optional>
#include "ops_cuda.h"

namespace {

DType element_type(const at::Tensor& x, const char* op) {
    switch (x.scalar_type()) {
        case at::kFloat: return DType::kFloat32;
        case at::kHalf: return DType::kFloat16;
        case at::kBFloat16: return DType::kBFloat16;
        default: TORCH_CHECK(false, op, ": tensors must be float32, float16 or bfloat16");
    }
    return DType::kFloat32;
}

// Runs `launch(stream, on_device)` on x's device (or on the CPU) and raises on a launch error.
template <typename Launch>
void launch_on(const at::Tensor& x, const char* op, Launch&& launch) {
    bool on_device = x.is_cuda();
    std::optional<c10::cuda::CUDAGuard> guard;
    cudaStream_t stream = nullptr;
    if (on_device) {
        guard.emplace(x.device());
        stream = at::cuda::getCurrentCUDAStream();
    }
    cudaError_t error = launch(stream, on_device);
    TORCH_CHECK(error == cudaSuccess, op, ": kernel launch failed: ", cudaGetErrorString(error));
}

void check_like(const at::Tensor& t, const at::Tensor& x, const char* what) {
    TORCH_CHECK(t.sizes() == x.sizes() && t.dtype() == x.dtype() && t.device() == x.device() && t.is_contiguous(),
                what, " must be a contiguous tensor of the shape, dtype and device of x");
}

void check_float_on(const at::Tensor& t, const at::Tensor& x, int64_t dim, const char* what) {
    TORCH_CHECK(t.dim() == dim && t.dtype() == at::kFloat && t.device() == x.device() && t.is_contiguous(),
                what, " must be a contiguous float32 tensor with ", dim, " dimensions on the device of x");
}

bool fits_int(int64_t v) { return v >= 0 && v < (int64_t(1) << 30); }

//----------------------------------------------------------------------------

at::Tensor bias_act(const at::Tensor& x, const at::Tensor& b, const at::Tensor& dy, const at::Tensor& g,
                    int64_t dim, int64_t act, int64_t mode, double alpha, double gain, double clamp) {
    DType dtype = element_type(x, "bias_act");
    TORCH_CHECK(x.is_contiguous(), "bias_act: x must be contiguous");
    TORCH_CHECK(act >= kActLinear && act <= kActSwish, "bias_act: unknown activation code");
    TORCH_CHECK(mode >= kBiasActForward && mode <= kBiasActGrad2, "bias_act: unknown mode");
    BiasActParams p;
    p.act = (int)act;
    p.mode = (int)mode;
    p.alpha = (float)alpha;
    p.gain = (float)gain;
    p.clamp = (float)clamp;
    p.numel = x.numel();
    p.bias_size = b.numel();
    p.bias_stride = 1;
    if (p.bias_size > 0) {
        check_float_on(b, x, 1, "bias_act: b");
        TORCH_CHECK(dim >= 0 && dim < x.dim() && b.numel() == x.size(dim), "bias_act: b must have x.shape[dim] elements");
        for (int64_t d = dim + 1; d < x.dim(); d++)
            p.bias_stride *= x.size(d);
    }
    if (mode != kBiasActForward)
        check_like(dy, x, "bias_act: dy");
    if (mode == kBiasActGrad2)
        check_like(g, x, "bias_act: g");
    at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
    if (p.numel == 0)
        return out;
    launch_on(x, "bias_act", [&](cudaStream_t stream, bool on_device) {
        return bias_act_run(p, dtype, out.data_ptr(), x.data_ptr(), p.bias_size > 0 ? b.data_ptr<float>() : nullptr,
                            mode != kBiasActForward ? dy.data_ptr() : nullptr, mode == kBiasActGrad2 ? g.data_ptr() : nullptr,
                            stream, on_device);
    });
    return out;
}

//----------------------------------------------------------------------------

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x,
                     int64_t down_y, int64_t pad_x0, int64_t pad_y0, int64_t out_w, int64_t out_h) {
    DType dtype = element_type(x, "upfirdn2d");
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W]");
    check_float_on(f, x, 2, "upfirdn2d: f");
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up and down must be >= 1");
    TORCH_CHECK(out_w >= 1 && out_h >= 1, "upfirdn2d: empty output");
    TORCH_CHECK(fits_int(x.size(1)) && fits_int(x.size(2) * up_y + std::abs(pad_y0) + f.size(0) + out_h * down_y) &&
                fits_int(x.size(3) * up_x + std::abs(pad_x0) + f.size(1) + out_w * down_x), "upfirdn2d: image too large");
    UpFirDnParams p;
    p.up_x = (int)up_x; p.up_y = (int)up_y;
    p.down_x = (int)down_x; p.down_y = (int)down_y;
    p.pad_x0 = (int)pad_x0; p.pad_y0 = (int)pad_y0;
    p.in_w = (int)x.size(3); p.in_h = (int)x.size(2);
    p.out_w = (int)out_w; p.out_h = (int)out_h;
    p.f_w = (int)f.size(1); p.f_h = (int)f.size(0);
    p.channels = (int)x.size(1);
    p.stride_n = x.stride(0); p.stride_c = x.stride(1); p.stride_h = x.stride(2); p.stride_w = x.stride(3);
    at::Tensor out = at::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    p.numel = out.numel();
    if (p.numel == 0)
        return out;
    launch_on(x, "upfirdn2d", [&](cudaStream_t stream, bool on_device) {
        return upfirdn2d_run(p, dtype, out.data_ptr(), x.data_ptr(), f.data_ptr<float>(), stream, on_device);
    });
    return out;
}

//----------------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> filtered_lrelu(
    const at::Tensor& x, const at::Tensor& b, const at::Tensor& f1, const at::Tensor& f2, const at::Tensor& signs,
    int64_t up, int64_t pad1_x0, int64_t pad1_y0, int64_t mid_w, int64_t mid_h,
    int64_t down, int64_t pad2_x0, int64_t pad2_y0, int64_t out_w, int64_t out_h,
    int64_t mode, double gain, double slope, double clamp, bool write_signs, bool sep1, bool sep2) {
    DType dtype = element_type(x, "filtered_lrelu");
    TORCH_CHECK(x.dim() == 4, "filtered_lrelu: x must be [N, C, H, W]");
    check_float_on(f1, x, 2, "filtered_lrelu: f1");
    check_float_on(f2, x, 2, "filtered_lrelu: f2");
    TORCH_CHECK((!sep1 || f1.size(0) == 2) && (!sep2 || f2.size(0) == 2),
                "filtered_lrelu: a separable filter must be [2, taps] (x taps, y taps)");
    TORCH_CHECK(up >= 1 && down >= 1, "filtered_lrelu: up and down must be >= 1");
    TORCH_CHECK(mode == kFlreluForward || mode == kFlreluLinear, "filtered_lrelu: unknown mode");
    TORCH_CHECK(mid_w >= 1 && mid_h >= 1 && out_w >= 1 && out_h >= 1, "filtered_lrelu: empty output");
    TORCH_CHECK(fits_int(x.size(0) * x.size(1)) && fits_int(mid_w * mid_h) &&
                fits_int(x.size(2) * up + std::abs(pad1_y0) + f1.size(0) + f1.size(1) + mid_h) &&
                fits_int(x.size(3) * up + std::abs(pad1_x0) + f1.size(0) + f1.size(1) + mid_w) &&
                fits_int(out_h * down + std::abs(pad2_y0) + f2.size(0) + f2.size(1)) &&
                fits_int(out_w * down + std::abs(pad2_x0) + f2.size(0) + f2.size(1)), "filtered_lrelu: tensor too large");
    if (mode == kFlreluForward && b.numel() > 0) {
        check_float_on(b, x, 1, "filtered_lrelu: b");
        TORCH_CHECK(b.numel() == x.size(1), "filtered_lrelu: b must have one entry per channel");
    }
    if (mode == kFlreluLinear)
        TORCH_CHECK(signs.dtype() == at::kInt && signs.is_contiguous() && signs.device() == x.device() &&
                    signs.dim() == 4 && signs.size(0) == x.size(0) && signs.size(1) == x.size(1) &&
                    signs.size(2) == mid_h && signs.size(3) == (mid_w + 15) / 16,
                    "filtered_lrelu: signs must be a contiguous int32 [N, C, mid_h, ceil(mid_w / 16)] tensor on the device of x");

    FlreluParams p;
    p.mode = (int)mode;
    p.gain = (float)gain; p.slope = (float)slope; p.clamp = (float)clamp;
    p.up = (int)up; p.down = (int)down;
    p.in_w = (int)x.size(3); p.in_h = (int)x.size(2);
    p.pad1_x0 = (int)pad1_x0; p.pad1_y0 = (int)pad1_y0;
    p.sep1 = sep1 ? 1 : 0; p.sep2 = sep2 ? 1 : 0;
    p.f1_w = (int)f1.size(1); p.f1_h = sep1 ? (int)f1.size(1) : (int)f1.size(0);
    p.mid_w = (int)mid_w; p.mid_h = (int)mid_h;
    p.signs_words_w = (int)((mid_w + 15) / 16);
    p.pad2_x0 = (int)pad2_x0; p.pad2_y0 = (int)pad2_y0;
    p.f2_w = (int)f2.size(1); p.f2_h = sep2 ? (int)f2.size(1) : (int)f2.size(0);
    p.out_w = (int)out_w; p.out_h = (int)out_h;
    p.channels = (int)x.size(1);
    p.planes = (int)(x.size(0) * x.size(1));
    p.stride_n = x.stride(0); p.stride_c = x.stride(1); p.stride_h = x.stride(2); p.stride_w = x.stride(3);
    TORCH_CHECK(flrelu_choose_tiles(p), "filtered_lrelu: the filters are too large for the kernel's shared memory");

    at::Tensor out = at::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    at::Tensor signs_out = at::empty({0}, x.options().dtype(at::kInt));
    if (mode == kFlreluForward && write_signs)
        signs_out = at::zeros({x.size(0), x.size(1), mid_h, p.signs_words_w}, x.options().dtype(at::kInt));
    if (p.planes == 0)
        return {out, signs_out};
    launch_on(x, "filtered_lrelu", [&](cudaStream_t stream, bool on_device) {
        uint32_t* signs_out_ptr = signs_out.numel() > 0 ? reinterpret_cast<uint32_t*>(signs_out.data_ptr<int32_t>()) : nullptr;
        const uint32_t* signs_in_ptr = mode == kFlreluLinear ? reinterpret_cast<const uint32_t*>(signs.data_ptr<int32_t>()) : nullptr;
        return filtered_lrelu_run(p, dtype, out.data_ptr(), signs_out_ptr, x.data_ptr(),
                                  (mode == kFlreluForward && b.numel() > 0) ? b.data_ptr<float>() : nullptr,
                                  f1.data_ptr<float>(), f2.data_ptr<float>(), signs_in_ptr, stream, on_device);
    });
    return {out, signs_out};
}

} // namespace

//----------------------------------------------------------------------------

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act,
          "Fused bias, activation, gain and clamp (mode 0), its derivative (1) or second derivative (2)",
          py::arg("x"), py::arg("b"), py::arg("dy"), py::arg("g"), py::arg("dim"), py::arg("act"), py::arg("mode"),
          py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
    m.def("upfirdn2d", &upfirdn2d, "Upsample, pad, FIR filter and downsample NCHW images",
          py::arg("x"), py::arg("f"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"), py::arg("down_y"),
          py::arg("pad_x0"), py::arg("pad_y0"), py::arg("out_w"), py::arg("out_h"));
    m.def("filtered_lrelu", &filtered_lrelu,
          "Fused upsample, bias, leaky ReLU, gain, clamp and downsample (mode 0), or its linearisation "
          "around stored signs (mode 1); returns (out, signs). sep1/sep2: f1/f2 are separable, [2, taps]",
          py::arg("x"), py::arg("b"), py::arg("f1"), py::arg("f2"), py::arg("signs"), py::arg("up"),
          py::arg("pad1_x0"), py::arg("pad1_y0"), py::arg("mid_w"), py::arg("mid_h"), py::arg("down"),
          py::arg("pad2_x0"), py::arg("pad2_y0"), py::arg("out_w"), py::arg("out_h"), py::arg("mode"),
          py::arg("gain"), py::arg("slope"), py::arg("clamp"), py::arg("write_signs"), py::arg("sep1"), py::arg("sep2"));
}
