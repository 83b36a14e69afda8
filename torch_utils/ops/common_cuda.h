// Device-and-host helpers for the kernels (*.cu only).
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include "ops_cuda.h"

__host__ __device__ inline float to_float(float v) { return v; }
__host__ __device__ inline float to_float(__half v) { return __half2float(v); }
__host__ __device__ inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __host__ __device__ inline T from_float(float v);
template <> __host__ __device__ inline float from_float<float>(float v) { return v; }
template <> __host__ __device__ inline __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __host__ __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Calls fn.template operator()<T>() with T the element type named by dtype.
template <typename Fn>
inline cudaError_t dispatch_dtype(DType dtype, Fn&& fn) {
    switch (dtype) {
        case DType::kFloat16: return fn(__half());
        case DType::kBFloat16: return fn(__nv_bfloat16());
        default: return fn(float());
    }
}
