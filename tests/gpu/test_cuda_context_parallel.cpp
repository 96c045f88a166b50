// test_cuda_context_parallel.cpp -- include/slay/context_parallel.hpp on one
// CUDA device: 3 ranks as threads (each its own handle, plan and stream on
// device 0; a Communicator that stages the reduction through host memory)
// running pieces of one causal sequence equal one CUDA call over the whole
// sequence, for the kernel paths of the linearized family:
//   q, k (B, H, T, D), v (B, H, T, Dv), T = 3000 in pieces of 1000, 1100,
//   900 tokens, initial/final states (B, H, F, Dv+1) and their gradients:
//   out, final_state, dq, dk, dv, dinitial_state within 1e-5 relative L2
//   (fp32: the fp32 scans) or 2e-2 (bf16: the Kronecker tensor-core kernels
//   of slay_anchor, the dense engine of slay_laplace) of the single call.
// The exact family: ring attention over 3 ranks of 256 tokens, and one call,
// with the kernels' row statistics (slay.h, ABI 4), against the fp64 CPU
// backend: out and row_stats within 1e-5 (fp32) or 2e-2 (bf16), standard,
// yat and yat_spherical, causal and bidirectional (table lines
// | case | what | rel L2 | PASS/FAIL |). The backward given the CUDA
// forward's row statistics (slay_attn_bwd_args_t.row_stats, ABI 5; copied
// to a strided (B, H, T) view, T = 300) against the fp64 CPU backend's
// backward: dq, dk, dv within the same tolerances, the statistics unchanged.
// Exits 77 (skipped) without a CUDA device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../integration/thread_group.hpp"
#include "slay/context_parallel.hpp"

namespace {

constexpr int64_t kB = 1, kH = 2, kD = 32, kDv = 32, kT = 3000;

void cuda_ok(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// A device buffer of n elements of an io dtype (fp32 or bf16), from and to
// host floats.
struct DeviceBuffer {
    void* data = nullptr;
    int64_t n = 0;
    slay_dtype_t dtype = SLAY_DTYPE_FLOAT32;
    DeviceBuffer(int64_t count, slay_dtype_t t) : n(count), dtype(t) {
        cuda_ok(cudaMalloc(&data, static_cast<size_t>(n) * bytes() + 16), "cudaMalloc");
        cuda_ok(cudaMemset(data, 0xff, static_cast<size_t>(n) * bytes() + 16), "cudaMemset");  // NaN poison
        settle();
    }
    // The legacy stream's memset and pageable copies may still be in flight
    // when they return, and the ranks' non-blocking streams do not wait for
    // them: wait here, before any rank's kernel can touch the buffer.
    static void settle() { cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }
    DeviceBuffer(const std::vector<float>& host, slay_dtype_t t) : DeviceBuffer(static_cast<int64_t>(host.size()), t) {
        upload(host);
    }
    ~DeviceBuffer() { cudaFree(data); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    size_t bytes() const { return dtype == SLAY_DTYPE_FLOAT32 ? 4 : 2; }
    void upload(const std::vector<float>& host) {
        if (dtype == SLAY_DTYPE_FLOAT32) {
            cuda_ok(cudaMemcpy(data, host.data(), host.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
            settle();
            return;
        }
        std::vector<__nv_bfloat16> b(host.size());
        for (size_t i = 0; i < host.size(); ++i) b[i] = __float2bfloat16(host[i]);
        cuda_ok(cudaMemcpy(data, b.data(), b.size() * 2, cudaMemcpyHostToDevice), "cudaMemcpy");
        settle();
    }
    std::vector<float> download() const {
        std::vector<float> host(static_cast<size_t>(n));
        if (dtype == SLAY_DTYPE_FLOAT32) {
            cuda_ok(cudaMemcpy(host.data(), data, host.size() * 4, cudaMemcpyDeviceToHost), "cudaMemcpy");
            return host;
        }
        std::vector<__nv_bfloat16> b(host.size());
        cuda_ok(cudaMemcpy(b.data(), data, b.size() * 2, cudaMemcpyDeviceToHost), "cudaMemcpy");
        for (size_t i = 0; i < host.size(); ++i) host[i] = __bfloat162float(b[i]);
        return host;
    }
    slay_tensor_t rows(int64_t T, int64_t C) const { return slay::make_tensor(data, dtype, {kB, kH, T, C}); }
    slay_tensor_t state(int64_t F) const { return slay::make_tensor(data, dtype, {kB, kH, F, kDv + 1}); }
};

// The host Communicator of thread_group.hpp over device buffers: the rank
// waits for its stream, its send buffer goes to the host, the root's sum
// comes back (a test of the decomposition, not a transport).
class DeviceThreadComm : public slay::cp::Communicator {
public:
    DeviceThreadComm(slay_test::ThreadGroup& group, int rank) : host_(group, rank) {}
    int rank() const override { return host_.rank(); }
    int size() const override { return host_.size(); }
    // Host-staged on one device. Every copy is on the caller's stream and
    // waited for: a plain cudaMemcpy from pageable memory may return before
    // its DMA lands, and the caller's non-blocking stream would not wait for
    // it (a kernel could read the slot first).
    void reduce_sum(const float* send, float* recv, size_t count, int root, void* stream) override {
        send_.assign(count, 0.f);
        recv_.assign(count, 0.f);
        if (send) copy(send_.data(), send, count * 4, cudaMemcpyDeviceToHost, stream);
        host_.reduce_sum(send ? send_.data() : nullptr, recv_.data(), count, root, nullptr);
        if (rank() == root) copy(recv, recv_.data(), count * 4, cudaMemcpyHostToDevice, stream);
    }
    // Ring attention's step.
    void sendrecv(const void* send, void* recv, size_t bytes, int to, int from, void* stream) override {
        bytes_out_.resize(bytes);
        bytes_in_.resize(bytes);
        copy(bytes_out_.data(), send, bytes, cudaMemcpyDeviceToHost, stream);
        host_.sendrecv(bytes_out_.data(), bytes_in_.data(), bytes, to, from, nullptr);
        copy(recv, bytes_in_.data(), bytes, cudaMemcpyHostToDevice, stream);
    }

private:
    static void copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, void* stream) {
        const cudaStream_t s = static_cast<cudaStream_t>(stream);
        cuda_ok(cudaMemcpyAsync(dst, src, bytes, kind, s), "cudaMemcpyAsync");
        cuda_ok(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    }
    slay_test::ThreadComm host_;
    std::vector<float> send_, recv_;
    std::vector<unsigned char> bytes_out_, bytes_in_;
};

// A CUDA plan with parameters sampled on the device from a fixed seed (the
// same on every rank).
struct CudaPlan {
    slay::Handle handle{SLAY_BACKEND_CUDA, 0};
    slay::Plan plan;
    std::unique_ptr<DeviceBuffer> params;
    slay_tensor_t params_t{};
    CudaPlan(slay_attn_variant_t v, slay_dtype_t dtype, int64_t R, int64_t M, int64_t P) {
        slay::Descriptor desc(v);
        desc.set_i64(SLAY_ATTR_NUM_HEADS, kH).set_i64(SLAY_ATTR_HEAD_DIM, kD).set_i64(SLAY_ATTR_IO_DTYPE, dtype);
        desc.set_i64(SLAY_ATTR_NUM_FEATURES, M);
        if (v != SLAY_ATTN_PERFORMER) desc.set_i64(SLAY_ATTR_NUM_QUAD_NODES, R);
        if (v == SLAY_ATTN_SLAY_ANCHOR) desc.set_i64(SLAY_ATTR_POLY_DIM, P);
        plan = slay::Plan(handle, desc);
        const int64_t count = plan.param_count();
        params.reset(new DeviceBuffer(count, SLAY_DTYPE_FLOAT32));
        params_t = slay::vector_tensor(static_cast<float*>(params->data), count);
        DeviceBuffer ws(static_cast<int64_t>(plan.workspace_size(SLAY_PASS_SAMPLE)) / 4 + 64, SLAY_DTYPE_FLOAT32);
        plan.features_sample(11, 0, params_t, ws.data, static_cast<size_t>(ws.n) * 4, nullptr);  // per-thread stream
        cuda_ok(cudaDeviceSynchronize(), "features_sample");
    }
};

using slay_test::rel_l2;

struct Host {
    std::vector<float> q, k, v, dout, s0, dsT;
};

// Rows [t0, t0 + n) of a (kB, kH, kT, C) host tensor.
std::vector<float> slice(const std::vector<float>& x, int64_t C, int64_t t0, int64_t n) {
    std::vector<float> out;
    for (int64_t bh = 0; bh < kB * kH; ++bh)
        out.insert(out.end(), x.begin() + (bh * kT + t0) * C, x.begin() + (bh * kT + t0 + n) * C);
    return out;
}

struct Outputs {
    std::vector<float> out, final_state, dq, dk, dv, dinitial;
};

// Forward and backward of rows [t0, t0 + n) on `stream`, through the layer
// when comm is given, else as one plain call (n = kT).
Outputs run_piece(CudaPlan& p, const Host& h, slay_dtype_t dt, int64_t F, int64_t t0, int64_t n,
                  slay::cp::Communicator* comm, cudaStream_t stream, std::vector<float>* sT_host,
                  std::vector<float>* ds0_host) {
    DeviceBuffer q(slice(h.q, kD, t0, n), dt), k(slice(h.k, kD, t0, n), dt), v(slice(h.v, kDv, t0, n), dt);
    DeviceBuffer g(slice(h.dout, kDv, t0, n), dt), out(kB * kH * n * kDv, dt);
    DeviceBuffer dq(kB * kH * n * kD, dt), dk(kB * kH * n * kD, dt), dv(kB * kH * n * kDv, dt);
    DeviceBuffer s0(h.s0, SLAY_DTYPE_FLOAT32), dsT(h.dsT, SLAY_DTYPE_FLOAT32);
    DeviceBuffer sT(static_cast<int64_t>(h.s0.size()), SLAY_DTYPE_FLOAT32);
    DeviceBuffer ds0(static_cast<int64_t>(h.s0.size()), SLAY_DTYPE_FLOAT32);
    DeviceBuffer exchange(static_cast<int64_t>(h.s0.size()), SLAY_DTYPE_FLOAT32);
    DeviceBuffer prefix(static_cast<int64_t>(h.s0.size()), SLAY_DTYPE_FLOAT32);
    const slay_tensor_t tq = q.rows(n, kD), tk = k.rows(n, kD), tv = v.rows(n, kDv), tg = g.rows(n, kDv);
    const slay_tensor_t to = out.rows(n, kDv), tdq = dq.rows(n, kD), tdk = dk.rows(n, kD), tdv = dv.rows(n, kDv);
    const slay_tensor_t ts0 = s0.state(F), tsT = sT.state(F), tdsT = dsT.state(F), tds0 = ds0.state(F);
    const size_t ws_bytes = std::max(p.plan.workspace_size(SLAY_PASS_FORWARD, kB, n),
                                     p.plan.workspace_size(SLAY_PASS_BACKWARD, kB, n));
    DeviceBuffer ws(static_cast<int64_t>(ws_bytes) / 4 + 64, SLAY_DTYPE_FLOAT32);
    slay_attn_fwd_args_t f = slay::fwd_args();
    f.q = &tq, f.k = &tk, f.v = &tv, f.params = &p.params_t, f.out = &to, f.initial_state = &ts0;
    f.final_state = &tsT;
    slay_attn_bwd_args_t b = slay::bwd_args();
    b.q = &tq, b.k = &tk, b.v = &tv, b.params = &p.params_t, b.out = &to, b.dout = &tg;
    b.dq = &tdq, b.dk = &tdk, b.dv = &tdv, b.initial_state = &ts0, b.dfinal_state = &tdsT, b.dinitial_state = &tds0;
    const size_t ws_size = static_cast<size_t>(ws.n) * 4;
    if (comm) {
        slay::cp::forward(*comm, p.plan.get(), f, static_cast<float*>(exchange.data), static_cast<float*>(prefix.data),
                          ws.data, ws_size, stream);
        slay::cp::backward(*comm, p.plan.get(), b, static_cast<float*>(exchange.data),
                           static_cast<float*>(prefix.data), ws.data, ws_size, stream);
    } else {
        p.plan.fwd(f, ws.data, ws_size, stream);
        p.plan.bwd(b, ws.data, ws_size, stream);
    }
    cuda_ok(cudaStreamSynchronize(stream), "the piece's calls");
    Outputs o{out.download(), {}, dq.download(), dk.download(), dv.download(), {}};
    if (!comm || comm->rank() == comm->size() - 1) *sT_host = sT.download();
    if (!comm || comm->rank() == 0) *ds0_host = ds0.download();
    return o;
}

// A non-blocking stream of this thread, destroyed with it.
struct Stream {
    cudaStream_t s = nullptr;
    Stream() { cuda_ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate"); }
    ~Stream() { cudaStreamDestroy(s); }
};

void check_case(slay_attn_variant_t v, slay_dtype_t dt, int64_t R, int64_t M, int64_t P, double tol) {
    CudaPlan single(v, dt, R, M, P);
    Stream main_stream;
    const int64_t F = single.plan.feature_dim();
    std::mt19937_64 rng(77 + static_cast<uint64_t>(v) * 3 + static_cast<uint64_t>(dt));
    std::normal_distribution<float> nd(0.f, 1.f);
    Host h;
    auto fill = [&](std::vector<float>& x, size_t n, float sd) {
        x.resize(n);
        for (float& e : x) e = sd * nd(rng);
    };
    fill(h.q, size_t(kB * kH * kT * kD), 0.7f), fill(h.k, size_t(kB * kH * kT * kD), 0.7f);
    fill(h.v, size_t(kB * kH * kT * kDv), 1.f), fill(h.dout, size_t(kB * kH * kT * kDv), 1.f);
    h.dsT.resize(size_t(kB * kH * F * (kDv + 1)));
    fill(h.dsT, h.dsT.size(), 0.01f);
    h.s0.assign(h.dsT.size(), 0.f);
    {  // an initial state the features could have produced: a forward's final state
        Host prior = h;
        std::vector<float> sT, ds0;
        run_piece(single, prior, dt, F, 0, kT, nullptr, main_stream.s, &sT, &ds0);
        h.s0 = sT;
    }
    std::vector<float> want_sT, want_ds0;
    const Outputs want = run_piece(single, h, dt, F, 0, kT, nullptr, main_stream.s, &want_sT, &want_ds0);

    const int64_t starts[4] = {0, 1000, 2100, kT};
    const int N = 3;
    slay_test::ThreadGroup group(N);
    std::vector<Outputs> pieces(N);
    std::vector<float> got_sT, got_ds0;
    slay_test::run_ranks(group, [&](int r) {
        cuda_ok(cudaSetDevice(0), "cudaSetDevice");
        CudaPlan p(v, dt, R, M, P);
        Stream stream;
        DeviceThreadComm comm(group, r);
        pieces[size_t(r)] =
            run_piece(p, h, dt, F, starts[r], starts[r + 1] - starts[r], &comm, stream.s, &got_sT, &got_ds0);
    });
    // Reassemble the pieces' rows in sequence order.
    auto join_rows = [&](std::vector<float> Outputs::*field, int64_t C) {
        std::vector<float> all(static_cast<size_t>(kB * kH * kT * C));
        for (int r = 0; r < N; ++r) {
            const int64_t n = starts[r + 1] - starts[r];
            const std::vector<float>& part = pieces[size_t(r)].*field;
            for (int64_t bh = 0; bh < kB * kH; ++bh)
                std::copy(part.begin() + bh * n * C, part.begin() + (bh + 1) * n * C,
                          all.begin() + (bh * kT + starts[r]) * C);
        }
        return all;
    };
    const std::string label = std::string(slay_attn_variant_name(v)) + (dt == SLAY_DTYPE_FLOAT32 ? " fp32" : " bf16");
    const double errs[6] = {rel_l2(join_rows(&Outputs::out, kDv), want.out), rel_l2(got_sT, want_sT),
                            rel_l2(join_rows(&Outputs::dq, kD), want.dq),    rel_l2(join_rows(&Outputs::dk, kD), want.dk),
                            rel_l2(join_rows(&Outputs::dv, kDv), want.dv),   rel_l2(got_ds0, want_ds0)};
    const char* names[6] = {"out", "final_state", "dq", "dk", "dv", "dinitial_state"};
    for (int i = 0; i < 6; ++i) {
        std::printf("| %s | 3 ranks vs one call | %s rel L2 %.2e (tol %.0e) %s\n", label.c_str(), names[i], errs[i],
                    tol, errs[i] <= tol ? "PASS" : "FAIL");
        const std::string what = label + " " + names[i];
        CHECK_MESSAGE(errs[i] <= tol, what);
    }
}

// ---------------------------------------------------------------- exact family
// Ring attention (context_parallel.hpp) with the CUDA kernels' row
// statistics: 3 ranks of kPiece tokens each.
constexpr int64_t kPiece = 256, kRingT = 3 * kPiece;

slay::Plan exact_plan(const slay::Handle& handle, slay_attn_variant_t v, slay_dtype_t dt, bool causal) {
    slay::Descriptor desc(v);
    desc.set_i64(SLAY_ATTR_NUM_HEADS, kH).set_i64(SLAY_ATTR_HEAD_DIM, kD).set_i64(SLAY_ATTR_IO_DTYPE, dt);
    desc.set_i64(SLAY_ATTR_CAUSAL, causal ? 1 : 0);
    return slay::Plan(handle, desc);
}

struct RowsAndStats {
    std::vector<float> out, stats;
};

// Rows [t0, t0 + n) of a (kB, kH, T, C) host tensor.
std::vector<float> rows_of(const std::vector<float>& x, int64_t T, int64_t C, int64_t t0, int64_t n) {
    std::vector<float> r;
    for (int64_t bh = 0; bh < kB * kH; ++bh)
        r.insert(r.end(), x.begin() + (bh * T + t0) * C, x.begin() + (bh * T + t0 + n) * C);
    return r;
}

// One forward with row statistics over n tokens (CPU handle: host memory).
RowsAndStats exact_call(const slay::Handle& handle, slay_attn_variant_t v, slay_dtype_t dt, bool causal,
                        const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& vv,
                        int64_t n) {
    slay::Plan plan = exact_plan(handle, v, dt, causal);
    const size_t ws_bytes = plan.workspace_size(SLAY_PASS_FORWARD, kB, n);
    RowsAndStats r;
    if (handle.backend() == SLAY_BACKEND_CPU) {
        std::vector<float> hq = q, hk = k, hv = vv, out(static_cast<size_t>(kB * kH * n * kDv)), stats(size_t(kB * kH * n));
        const slay_tensor_t tq = slay::make_tensor(hq.data(), dt, {kB, kH, n, kD}),
                            tk = slay::make_tensor(hk.data(), dt, {kB, kH, n, kD}),
                            tv = slay::make_tensor(hv.data(), dt, {kB, kH, n, kDv}),
                            to = slay::make_tensor(out.data(), dt, {kB, kH, n, kDv}),
                            ts = slay::make_tensor(stats.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n});
        slay_attn_fwd_args_t f = slay::fwd_args();
        f.q = &tq, f.k = &tk, f.v = &tv, f.out = &to, f.row_stats = &ts;
        std::vector<unsigned char> ws(ws_bytes + 64);
        plan.fwd(f, ws.data(), ws.size());
        return {out, stats};
    }
    DeviceBuffer dq(q, dt), dk(k, dt), dv(vv, dt), out(kB * kH * n * kDv, dt), stats(kB * kH * n, SLAY_DTYPE_FLOAT32);
    DeviceBuffer ws(static_cast<int64_t>(ws_bytes) / 4 + 64, SLAY_DTYPE_FLOAT32);
    const slay_tensor_t tq = dq.rows(n, kD), tk = dk.rows(n, kD), tv = dv.rows(n, kDv), to = out.rows(n, kDv);
    const slay_tensor_t ts = slay::make_tensor(stats.data, SLAY_DTYPE_FLOAT32, {kB, kH, n});
    slay_attn_fwd_args_t f = slay::fwd_args();
    f.q = &tq, f.k = &tk, f.v = &tv, f.out = &to, f.row_stats = &ts;
    plan.fwd(f, ws.data, static_cast<size_t>(ws.n) * 4, nullptr);
    cuda_ok(cudaDeviceSynchronize(), "exact forward");
    return {out.download(), stats.download()};
}

// Normal (B, H, T, C) rows of standard deviation sd, rounded to bf16 where
// the device holds bf16 (the CPU oracle then sees the device's values).
std::vector<float> random_rows(std::mt19937_64& rng, int64_t T, int64_t C, float sd, slay_dtype_t dt) {
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x(static_cast<size_t>(kB * kH * T * C));
    for (float& e : x) {
        e = sd * nd(rng);
        if (dt == SLAY_DTYPE_BFLOAT16) e = __bfloat162float(__float2bfloat16(e));
    }
    return x;
}

void check_ring(slay_attn_variant_t v, slay_dtype_t dt, bool causal, double tol) {
    std::mt19937_64 rng(900 + static_cast<uint64_t>(v) * 4 + static_cast<uint64_t>(dt) * 2 + (causal ? 1 : 0));
    auto random = [&](int64_t C, float sd) { return random_rows(rng, kRingT, C, sd, dt); };
    const std::vector<float> q = random(kD, 0.5f), k = random(kD, 0.5f), vv = random(kDv, 1.f);
    // The fp64 CPU backend (fp32 io) on the same values is the oracle.
    const RowsAndStats want = exact_call(slay::Handle(SLAY_BACKEND_CPU), v, SLAY_DTYPE_FLOAT32, causal, q, k, vv,
                                         kRingT);
    const RowsAndStats single = exact_call(slay::Handle(SLAY_BACKEND_CUDA, 0), v, dt, causal, q, k, vv, kRingT);
    slay_test::ThreadGroup group(3);
    std::vector<RowsAndStats> pieces(3);
    slay_test::run_ranks(group, [&](int r) {
        cuda_ok(cudaSetDevice(0), "cudaSetDevice");
        slay::Handle handle(SLAY_BACKEND_CUDA, 0);
        slay::Plan plan = exact_plan(handle, v, dt, causal), full = exact_plan(handle, v, dt, false);
        Stream stream;
        DeviceThreadComm comm(group, r);
        const int64_t t0 = r * kPiece;
        DeviceBuffer dq(rows_of(q, kRingT, kD, t0, kPiece), dt), dk(rows_of(k, kRingT, kD, t0, kPiece), dt);
        DeviceBuffer dv(rows_of(vv, kRingT, kDv, t0, kPiece), dt), out(kB * kH * kPiece * kDv, dt);
        DeviceBuffer stats(kB * kH * kPiece, SLAY_DTYPE_FLOAT32);
        DeviceBuffer ring(static_cast<int64_t>(slay::cp::ring_bytes(plan.get(), kB, kPiece)) / 4 + 4,
                          SLAY_DTYPE_FLOAT32);
        const size_t ws_bytes = std::max(plan.workspace_size(SLAY_PASS_FORWARD, kB, kPiece),
                                         full.workspace_size(SLAY_PASS_FORWARD, kB, kPiece));
        DeviceBuffer ws(static_cast<int64_t>(ws_bytes) / 4 + 64, SLAY_DTYPE_FLOAT32);
        const slay_tensor_t tq = dq.rows(kPiece, kD), tk = dk.rows(kPiece, kD), tv = dv.rows(kPiece, kDv);
        const slay_tensor_t to = out.rows(kPiece, kDv);
        const slay_tensor_t ts = slay::make_tensor(stats.data, SLAY_DTYPE_FLOAT32, {kB, kH, kPiece});
        slay_attn_fwd_args_t f = slay::fwd_args();
        f.q = &tq, f.k = &tk, f.v = &tv, f.out = &to, f.row_stats = &ts;
        slay::cp::ring_forward(comm, plan.get(), full.get(), f, ring.data, ws.data, static_cast<size_t>(ws.n) * 4,
                               stream.s);
        cuda_ok(cudaStreamSynchronize(stream.s), "ring");
        pieces[size_t(r)] = {out.download(), stats.download()};
    });
    RowsAndStats got{std::vector<float>(want.out.size()), std::vector<float>(want.stats.size())};
    for (int r = 0; r < 3; ++r)
        for (int64_t bh = 0; bh < kB * kH; ++bh) {
            std::copy_n(pieces[size_t(r)].out.begin() + bh * kPiece * kDv, kPiece * kDv,
                        got.out.begin() + (bh * kRingT + r * kPiece) * kDv);
            std::copy_n(pieces[size_t(r)].stats.begin() + bh * kPiece, kPiece,
                        got.stats.begin() + bh * kRingT + r * kPiece);
        }
    const std::string label = std::string(slay_attn_variant_name(v)) + (dt == SLAY_DTYPE_FLOAT32 ? " fp32" : " bf16") +
                              (causal ? " causal" : " bidirectional");
    const double errs[4] = {rel_l2(single.out, want.out), rel_l2(single.stats, want.stats), rel_l2(got.out, want.out),
                            rel_l2(got.stats, want.stats)};
    const char* names[4] = {"one call: out", "one call: row_stats", "ring: out", "ring: row_stats"};
    for (int i = 0; i < 4; ++i) {
        std::printf("| %s | %s | %.3e | %s |\n", label.c_str(), names[i], errs[i], errs[i] <= tol ? "PASS" : "FAIL");
        CHECK_MESSAGE(errs[i] <= tol, label, " ", names[i], " rel L2 ", errs[i]);
    }
}

// ------------------------------------------------ the backward given row statistics
constexpr int64_t kBwdT = 300;  // not a multiple of the kernels' 64-row tiles

struct Grads {
    std::vector<float> dq, dk, dv;
};

// The oracle: forward and backward (no statistics) on the fp64 CPU backend,
// fp32 io over the values the device holds.
Grads cpu_backward(slay_attn_variant_t v, bool causal, std::vector<float> q, std::vector<float> k,
                   std::vector<float> vv, std::vector<float> dout) {
    const int64_t n = kBwdT;
    slay::Handle handle(SLAY_BACKEND_CPU);
    slay::Plan plan = exact_plan(handle, v, SLAY_DTYPE_FLOAT32, causal);
    std::vector<float> out(static_cast<size_t>(kB * kH * n * kDv));
    Grads g{std::vector<float>(q.size()), std::vector<float>(k.size()), std::vector<float>(vv.size())};
    const slay_tensor_t tq = slay::make_tensor(q.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n, kD}),
                        tk = slay::make_tensor(k.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n, kD}),
                        tv = slay::make_tensor(vv.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n, kDv}),
                        to = slay::make_tensor(out.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n, kDv}),
                        tg = slay::make_tensor(dout.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n, kDv}),
                        tdq = slay::make_tensor(g.dq.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n, kD}),
                        tdk = slay::make_tensor(g.dk.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n, kD}),
                        tdv = slay::make_tensor(g.dv.data(), SLAY_DTYPE_FLOAT32, {kB, kH, n, kDv});
    std::vector<unsigned char> ws(std::max(plan.workspace_size(SLAY_PASS_FORWARD, kB, n),
                                           plan.workspace_size(SLAY_PASS_BACKWARD, kB, n)) + 64);
    plan.fwd(tq, tk, tv, nullptr, to, ws.data(), ws.size());
    plan.bwd(tq, tk, tv, nullptr, to, tg, tdq, tdk, tdv, ws.data(), ws.size());
    return g;
}

// The CUDA forward with row statistics, then the CUDA backward given them in
// a copy with a gap after each head's rows (their strides reach the kernel);
// outputs NaN-poisoned.
// *unchanged: whether the backward left the statistics as they were.
Grads cuda_backward_given_stats(slay_attn_variant_t v, slay_dtype_t dt, bool causal, const std::vector<float>& q,
                                const std::vector<float>& k, const std::vector<float>& vv,
                                const std::vector<float>& dout, bool* unchanged) {
    const int64_t n = kBwdT;
    slay::Handle handle(SLAY_BACKEND_CUDA, 0);
    slay::Plan plan = exact_plan(handle, v, dt, causal);
    DeviceBuffer dq_in(q, dt), dk_in(k, dt), dv_in(vv, dt), g(dout, dt), out(kB * kH * n * kDv, dt);
    constexpr int64_t kGap = 5;
    DeviceBuffer stats(kB * kH * n, SLAY_DTYPE_FLOAT32), strided(kB * kH * (n + kGap), SLAY_DTYPE_FLOAT32);
    DeviceBuffer gq(kB * kH * n * kD, dt), gk(kB * kH * n * kD, dt), gv(kB * kH * n * kDv, dt);
    const size_t ws_bytes = std::max(plan.workspace_size(SLAY_PASS_FORWARD, kB, n),
                                     plan.workspace_size(SLAY_PASS_BACKWARD, kB, n));
    DeviceBuffer ws(static_cast<int64_t>(ws_bytes) / 4 + 64, SLAY_DTYPE_FLOAT32);
    const slay_tensor_t tq = dq_in.rows(n, kD), tk = dk_in.rows(n, kD), tv = dv_in.rows(n, kDv),
                        to = out.rows(n, kDv), tg = g.rows(n, kDv);
    const slay_tensor_t ts = slay::make_tensor(stats.data, SLAY_DTYPE_FLOAT32, {kB, kH, n});
    slay_attn_fwd_args_t f = slay::fwd_args();
    f.q = &tq, f.k = &tk, f.v = &tv, f.out = &to, f.row_stats = &ts;
    plan.fwd(f, ws.data, static_cast<size_t>(ws.n) * 4, nullptr);
    cuda_ok(cudaDeviceSynchronize(), "exact forward");
    const std::vector<float> contiguous = stats.download();
    std::vector<float> gapped(static_cast<size_t>(kB * kH * (n + kGap)), 0.f);
    for (int64_t bh = 0; bh < kB * kH; ++bh)
        std::copy_n(contiguous.begin() + bh * n, n, gapped.begin() + bh * (n + kGap));
    strided.upload(gapped);
    const slay_tensor_t ts_strided =
        slay::make_tensor(strided.data, SLAY_DTYPE_FLOAT32, {kB, kH, n}, {kH * (n + kGap), n + kGap, 1});
    const slay_tensor_t tdq = gq.rows(n, kD), tdk = gk.rows(n, kD), tdv = gv.rows(n, kDv);
    slay_attn_bwd_args_t a = slay::bwd_args();
    a.q = &tq, a.k = &tk, a.v = &tv, a.out = &to, a.dout = &tg, a.dq = &tdq, a.dk = &tdk, a.dv = &tdv;
    a.row_stats = &ts_strided;
    plan.bwd(a, ws.data, static_cast<size_t>(ws.n) * 4, nullptr);
    cuda_ok(cudaDeviceSynchronize(), "exact backward given row statistics");
    *unchanged = strided.download() == gapped;
    return {gq.download(), gk.download(), gv.download()};
}

void check_backward_given_stats(slay_attn_variant_t v, slay_dtype_t dt, bool causal, double tol) {
    std::mt19937_64 rng(1300 + static_cast<uint64_t>(v) * 4 + static_cast<uint64_t>(dt) * 2 + (causal ? 1 : 0));
    auto random = [&](int64_t C, float sd) { return random_rows(rng, kBwdT, C, sd, dt); };
    const std::vector<float> q = random(kD, 0.5f), k = random(kD, 0.5f), vv = random(kDv, 1.f),
                             dout = random(kDv, 1.f);
    const Grads want = cpu_backward(v, causal, q, k, vv, dout);
    bool unchanged = false;
    const Grads got = cuda_backward_given_stats(v, dt, causal, q, k, vv, dout, &unchanged);
    const std::string label = std::string(slay_attn_variant_name(v)) + (dt == SLAY_DTYPE_FLOAT32 ? " fp32" : " bf16") +
                              (causal ? " causal" : " bidirectional");
    const double errs[3] = {rel_l2(got.dq, want.dq), rel_l2(got.dk, want.dk), rel_l2(got.dv, want.dv)};
    const char* names[3] = {"bwd given row_stats: dq", "bwd given row_stats: dk", "bwd given row_stats: dv"};
    for (int i = 0; i < 3; ++i) {
        std::printf("| %s | %s | %.3e | %s |\n", label.c_str(), names[i], errs[i], errs[i] <= tol ? "PASS" : "FAIL");
        CHECK_MESSAGE(errs[i] <= tol, label, " ", names[i], " rel L2 ", errs[i]);
    }
    CHECK_MESSAGE(unchanged, label, ": the backward changed row_stats");
}

}  // namespace

TEST_CASE("ring attention on one device: the CUDA row statistics, 3 ranks equal one call and the CPU backend") {
    for (slay_attn_variant_t v : {SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL})
        for (bool causal : {true, false}) {
            check_ring(v, SLAY_DTYPE_FLOAT32, causal, 1e-5);   // the fp32 SIMT kernels
            check_ring(v, SLAY_DTYPE_BFLOAT16, causal, 2e-2);  // tensor cores (standard, yat)
        }
}

TEST_CASE("the CUDA backward given the forward's row statistics (ABI 5) equals the CPU backend's") {
    for (slay_attn_variant_t v : {SLAY_ATTN_STANDARD, SLAY_ATTN_YAT, SLAY_ATTN_YAT_SPHERICAL})
        for (bool causal : {true, false}) {
            check_backward_given_stats(v, SLAY_DTYPE_FLOAT32, causal, 1e-5);   // the fp32 SIMT kernels
            check_backward_given_stats(v, SLAY_DTYPE_BFLOAT16, causal, 2e-2);  // tensor-core sweeps (standard, yat)
        }
}

TEST_CASE("context parallel on one device: 3 ranks equal one call (fp32 scans, tensor-core kernels)") {
    check_case(SLAY_ATTN_SLAY_ANCHOR, SLAY_DTYPE_FLOAT32, 2, 8, 16, 1e-5);   // the fp32 scan
    check_case(SLAY_ATTN_PERFORMER, SLAY_DTYPE_FLOAT32, 1, 64, 1, 1e-5);
    check_case(SLAY_ATTN_SLAY_ANCHOR, SLAY_DTYPE_BFLOAT16, 2, 8, 16, 2e-2);  // the Kronecker kernels
    check_case(SLAY_ATTN_SLAY_LAPLACE, SLAY_DTYPE_BFLOAT16, 2, 32, 1, 2e-2); // the dense engine
}

int main(int argc, char** argv) {
    slay_handle_t handle = nullptr;
    const slay_status_t s = slay_handle_create(&handle, SLAY_BACKEND_CUDA, 0);
    if (s == SLAY_STATUS_NO_DEVICE) {
        std::printf("no CUDA device (%s): skipped\n", slay_last_error_message());
        return 77;
    }
    if (handle) slay_handle_destroy(handle);
    doctest::Context context(argc, argv);
    return context.run();
}
