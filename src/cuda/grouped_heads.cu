// grouped_heads.cu -- group sums of expanded gradients and the stores of the
// fp32 gradient accumulators (grouped_heads.hpp). One thread per output
// element; every sum runs over the group in head order (deterministic).
#include "cuda/grouped_heads.hpp"

#include "cuda/cuda_check.hpp"

namespace slay {
namespace cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// dst[b, j, t, x] = sum_g src[b, j*G + g, t, x] over (B, Hdst, T, X), both dense views.
__global__ void sum_head_groups_kernel(DeviceTensor src, DeviceTensor dst, int64_t Hdst, int group, int64_t T,
                                       int64_t X, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t x = i % X, t = (i / X) % T, j = (i / (X * T)) % Hdst, b = i / (X * T * Hdst);
    float sum = 0.f;
    for (int g = 0; g < group; ++g) sum += src.load(b, j * group + g, t, x);
    dst.store(b, j, t, x, sum);
}

// dst[b, j, t, d] (over sequences) = sum_g acc[((b*H + j*G + g)*T + t)*D + d]
// for t < the sequence's length; (B, Hdst, T, D) threads, T the longest.
__global__ void store_accumulator_kernel(const float* acc, DeviceTensor dst, int64_t H, int64_t Hdst, int group,
                                         int64_t T, int64_t D, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t d = i % D, t = (i / D) % T, j = (i / (D * T)) % Hdst, b = i / (D * T * Hdst);
    if (t >= dst.seq.length(b, T)) return;
    float sum = 0.f;
    for (int g = 0; g < group; ++g) sum += acc[(((b * H) + j * group + g) * T + t) * D + d];
    dst.store(b, j, t, d, sum);
}

// A dense (B, H, T, cols) view of a contiguous buffer.
DeviceTensor dense_view(void* data, int dtype, int64_t H, int64_t T, int64_t cols) {
    DeviceTensor t;
    t.data = data;
    t.dtype = dtype;
    t.stride[3] = 1;
    t.stride[2] = cols;
    t.stride[1] = T * cols;
    t.stride[0] = H * T * cols;
    return t;
}

}  // namespace

void carve_expanded_grads(const Plan& p, int64_t batch, int64_t seq_len, ScratchCarver& w, ExpandedGrad* dk,
                          ExpandedGrad* dv) {
    if (dk) *dk = ExpandedGrad{};
    *dv = ExpandedGrad{};
    if (kv_group(p) == 1) return;
    const int64_t rows = batch * p.cfg.num_heads * seq_len;
    const bool fp32 = p.cfg.io_dtype == SLAY_DTYPE_FLOAT32;
    if (dk) dk->cols = p.cfg.head_dim;
    dv->cols = p.cfg.value_dim;
    for (ExpandedGrad* g : {dk, dv}) {
        if (!g) continue;
        g->data = fp32 ? static_cast<void*>(w.take<float>(rows, g->cols))
                       : static_cast<void*>(w.take<uint16_t>(rows, g->cols));
    }
}

DeviceTensor expanded_view(const ExpandedGrad& g, const Plan& p, const CallInputs& c) {
    DeviceTensor t = dense_view(g.data, p.cfg.io_dtype, p.cfg.num_heads, c.q.shape[2], g.cols);
    t.seq = call_sequences(c);
    return t;
}

Status sum_head_groups(const ExpandedGrad& g, const Plan& p, const CallInputs& c, const TensorView& dst,
                       cudaStream_t stream) {
    const int64_t B = c.q.shape[0], T = c.q.shape[2], Hkv = p.cfg.num_kv_heads;
    const int64_t n = B * Hkv * T * g.cols;
    if (n == 0) return Status();
    const DeviceTensor src = dense_view(g.data, p.cfg.io_dtype, p.cfg.num_heads, T, g.cols);
    sum_head_groups_kernel<<<blocks_for(n), kThreads, 0, stream>>>(src, device_tensor(dst), Hkv, kv_group(p), T,
                                                                   g.cols, n);
    return cuda_check(cudaGetLastError(), "sum_head_groups_kernel launch");
}

Status store_accumulator(const float* acc, const Plan& p, const CallInputs& c, const TensorView& dst,
                         int64_t dst_heads, cudaStream_t stream) {
    const int64_t H = p.cfg.num_heads, T = c.seq_len, D = p.cfg.head_dim;
    const int64_t n = c.batch * dst_heads * T * D;
    if (n == 0) return Status();
    store_accumulator_kernel<<<blocks_for(n), kThreads, 0, stream>>>(
        acc, token_tensor(dst, c), H, dst_heads, static_cast<int>(H / dst_heads), T, D, n);
    return cuda_check(cudaGetLastError(), "store_accumulator_kernel launch");
}

}  // namespace cuda
}  // namespace slay
