// context_parallel_nccl.cpp -- one causal sequence over N GPUs with NCCL
// (include/slay/context_parallel_nccl.hpp): one process per GPU, each holding
// a contiguous piece of q, k, v (B, H, T/N, D) of a slay_anchor attention
// (R=2, M=16, P=32), runs the context-parallel forward and forward+backward
// and prints tokens/s; --check (fp32) also runs the whole sequence on its own
// GPU and compares its piece (out, dq, dk, dv: relative L2 <= 1e-5).
//
//   ./slay_context_parallel --rank R --ranks N --id-file /tmp/slay.id [--T 1048576]
//       [--B 1] [--H 8] [--D 64] [--iters 10] [--check] [--json out.json]
//   e.g. for r in 0 1 2 3; do NCCL_NVLS_ENABLE=0 ./slay_context_parallel --rank $r
//            --ranks 4 --id-file /tmp/slay.id & done; wait   (one line)
//
// Rank 0 writes the NCCL unique id to --id-file (then renames it into place),
// the others wait for it. Inputs are a hash of (b, h, global token, column),
// so every rank builds its own piece of the same sequence. --json: rank 0
// also writes its timings as one JSON object (the benchmark's record). Exit
// status 0 when everything ran (and, with --check, matched).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "slay/context_parallel_nccl.hpp"

namespace {

#define CUDA_OK(call)                                                                             \
    do {                                                                                          \
        const cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess) throw std::runtime_error(std::string(#call) + ": " + cudaGetErrorString(e_)); \
    } while (0)

struct Options {
    int rank = -1, ranks = 0, iters = 10;
    std::string id_file, json;
    int64_t B = 1, H = 8, D = 64, T = 1 << 20;
    bool check = false;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--rank") o.rank = std::stoi(next());
        else if (a == "--ranks") o.ranks = std::stoi(next());
        else if (a == "--id-file") o.id_file = next();
        else if (a == "--T") o.T = std::stoll(next());
        else if (a == "--B") o.B = std::stoll(next());
        else if (a == "--H") o.H = std::stoll(next());
        else if (a == "--D") o.D = std::stoll(next());
        else if (a == "--iters") o.iters = std::stoi(next());
        else if (a == "--check") o.check = true;
        else if (a == "--json") o.json = next();
        else throw std::runtime_error("unknown argument " + a);
    }
    if (o.ranks < 1 || o.rank < 0 || o.rank >= o.ranks || o.id_file.empty())
        throw std::runtime_error("usage: --rank R --ranks N --id-file PATH [--T T --B B --H H --D D --iters K --check --json PATH]");
    if (o.T % o.ranks != 0) throw std::runtime_error("--T must be a multiple of --ranks");
    return o;
}

// A value in [-1, 1) from (b, h, t, c, which): the same on every rank.
float hashed(uint64_t b, uint64_t h, uint64_t t, uint64_t c, uint64_t which) {
    uint64_t x = (((b * 1000003 + h) * 1000033 + t) * 1009 + c) * 7 + which;
    x ^= x >> 33, x *= 0xff51afd7ed558ccdULL, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53ULL, x ^= x >> 33;
    return static_cast<float>(x >> 40) / static_cast<float>(1 << 23) - 1.f;
}

// Device (B, H, rows, C) tensor of tokens [t0, t0 + rows), fp32 or bf16.
struct DeviceRows {
    void* data = nullptr;
    slay_tensor_t view{};
    DeviceRows(const Options& o, int64_t t0, int64_t rows, int64_t C, int which, slay_dtype_t dtype) {
        const size_t n = static_cast<size_t>(o.B * o.H * rows * C), elem = dtype == SLAY_DTYPE_FLOAT32 ? 4 : 2;
        CUDA_OK(cudaMalloc(&data, n * elem + 16));
        if (which >= 0) {
            std::vector<float> host(n);
            size_t i = 0;
            for (int64_t b = 0; b < o.B; ++b)
                for (int64_t h = 0; h < o.H; ++h)
                    for (int64_t t = 0; t < rows; ++t)
                        for (int64_t c = 0; c < C; ++c) host[i++] = hashed(b, h, t0 + t, c, which);
            if (dtype == SLAY_DTYPE_FLOAT32) {
                CUDA_OK(cudaMemcpy(data, host.data(), n * 4, cudaMemcpyHostToDevice));
            } else {
                std::vector<__nv_bfloat16> bf(n);
                for (size_t j = 0; j < n; ++j) bf[j] = __float2bfloat16(host[j]);
                CUDA_OK(cudaMemcpy(data, bf.data(), n * 2, cudaMemcpyHostToDevice));
            }
        }
        view = slay::make_tensor(data, dtype, {o.B, o.H, rows, C});
    }
    ~DeviceRows() { cudaFree(data); }
    std::vector<float> host_floats() const {  // fp32 tensors only
        std::vector<float> h(static_cast<size_t>(slay::numel(view)));
        CUDA_OK(cudaMemcpy(h.data(), data, h.size() * 4, cudaMemcpyDeviceToHost));
        return h;
    }
};

ncclUniqueId shared_id(const Options& o) {
    ncclUniqueId id;
    if (o.rank == 0) {
        if (ncclGetUniqueId(&id) != ncclSuccess) throw std::runtime_error("ncclGetUniqueId failed");
        const std::string tmp = o.id_file + ".tmp";
        std::ofstream(tmp, std::ios::binary).write(reinterpret_cast<const char*>(&id), sizeof id);
        if (std::rename(tmp.c_str(), o.id_file.c_str()) != 0) throw std::runtime_error("cannot write " + o.id_file);
        return id;
    }
    for (int tries = 0; tries < 600; ++tries) {  // up to a minute
        std::ifstream in(o.id_file, std::ios::binary);
        if (in.read(reinterpret_cast<char*>(&id), sizeof id)) return id;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("no NCCL id in " + o.id_file + " after a minute");
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        den += double(want[i]) * want[i];
    }
    return std::sqrt(num / (den > 0 ? den : 1));
}

int run(const Options& o) {
    int devices = 0;
    CUDA_OK(cudaGetDeviceCount(&devices));
    CUDA_OK(cudaSetDevice(o.rank % devices));
    const ncclUniqueId id = shared_id(o);
    ncclComm_t comm;
    if (ncclCommInitRank(&comm, o.ranks, id, o.rank) != ncclSuccess) throw std::runtime_error("ncclCommInitRank failed");
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreate(&stream));

    const slay_dtype_t dtype = o.check ? SLAY_DTYPE_FLOAT32 : SLAY_DTYPE_BFLOAT16;
    slay::Handle handle(SLAY_BACKEND_CUDA, o.rank % devices);
    slay::Descriptor desc(SLAY_ATTN_SLAY_ANCHOR);
    desc.set_i64(SLAY_ATTR_NUM_HEADS, o.H).set_i64(SLAY_ATTR_HEAD_DIM, o.D).set_i64(SLAY_ATTR_IO_DTYPE, dtype);
    desc.set_i64(SLAY_ATTR_NUM_QUAD_NODES, 2).set_i64(SLAY_ATTR_NUM_FEATURES, 16).set_i64(SLAY_ATTR_POLY_DIM, 32);
    slay::Plan plan(handle, desc);
    const int64_t n = o.T / o.ranks, t0 = o.rank * n, count = plan.param_count();
    float* params = nullptr;
    CUDA_OK(cudaMalloc(&params, static_cast<size_t>(count) * 4));
    const slay_tensor_t tp = slay::vector_tensor(params, count);
    size_t ws_bytes = std::max(plan.workspace_size(SLAY_PASS_SAMPLE),
                               std::max(plan.workspace_size(SLAY_PASS_FORWARD, o.B, o.check ? o.T : n),
                                        plan.workspace_size(SLAY_PASS_BACKWARD, o.B, o.check ? o.T : n)));
    void* ws = nullptr;
    CUDA_OK(cudaMalloc(&ws, ws_bytes + 256));
    plan.features_sample(42, 0, tp, ws, ws_bytes, stream);  // the same parameters on every rank

    DeviceRows q(o, t0, n, o.D, 0, dtype), k(o, t0, n, o.D, 1, dtype), v(o, t0, n, o.D, 2, dtype);
    DeviceRows g(o, t0, n, o.D, 3, dtype), out(o, t0, n, o.D, -1, dtype);
    DeviceRows dq(o, t0, n, o.D, -1, dtype), dk(o, t0, n, o.D, -1, dtype), dv(o, t0, n, o.D, -1, dtype);
    const size_t state = slay::cp::state_floats(plan.get(), o.B);
    float *exchange = nullptr, *prefix = nullptr;
    CUDA_OK(cudaMalloc(&exchange, state * 4));
    CUDA_OK(cudaMalloc(&prefix, state * 4));
    slay::cp::NcclCommunicator group(comm, state);

    slay_attn_fwd_args_t f = slay::fwd_args();
    f.q = &q.view, f.k = &k.view, f.v = &v.view, f.params = &tp, f.out = &out.view;
    slay_attn_bwd_args_t b = slay::bwd_args();
    b.q = &q.view, b.k = &k.view, b.v = &v.view, b.params = &tp, b.out = &out.view, b.dout = &g.view;
    b.dq = &dq.view, b.dk = &dk.view, b.dv = &dv.view;
    auto forward = [&] { slay::cp::forward(group, plan.get(), f, exchange, prefix, ws, ws_bytes, stream); };
    auto backward = [&] { slay::cp::backward(group, plan.get(), b, exchange, prefix, ws, ws_bytes, stream); };

    cudaEvent_t start, stop;
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
    auto time_ms = [&](auto&& body) {
        body();  // warm-up
        CUDA_OK(cudaEventRecord(start, stream));
        for (int i = 0; i < o.iters; ++i) body();
        CUDA_OK(cudaEventRecord(stop, stream));
        CUDA_OK(cudaEventSynchronize(stop));
        float ms = 0.f;
        CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
        return static_cast<double>(ms) / o.iters;
    };
    const double fwd_ms = time_ms(forward);
    const double fb_ms = time_ms([&] { forward(), backward(); });
    const double tokens = static_cast<double>(o.B * o.T);
    std::printf("rank %d/%d: T=%lld (piece %lld) B=%lld H=%lld D=%lld %s: forward %.3f ms (%.3g tokens/s), "
                "forward+backward %.3f ms (%.3g tokens/s)\n",
                o.rank, o.ranks, static_cast<long long>(o.T), static_cast<long long>(n), static_cast<long long>(o.B),
                static_cast<long long>(o.H), static_cast<long long>(o.D), o.check ? "fp32" : "bf16", fwd_ms,
                tokens / (fwd_ms * 1e-3), fb_ms, tokens / (fb_ms * 1e-3));

    if (!o.json.empty() && o.rank == 0) {
        cudaDeviceProp prop{};
        CUDA_OK(cudaGetDeviceProperties(&prop, o.rank % devices));
        std::ofstream js(o.json);
        js << "{\"bench\": \"context_parallel\", \"device\": \"" << prop.name << "\", \"ranks\": " << o.ranks
           << ", \"variant\": \"slay_anchor\", \"R\": 2, \"M\": 16, \"P\": 32, \"dtype\": \""
           << (o.check ? "fp32" : "bf16") << "\", \"causal\": true, \"B\": " << o.B << ", \"H\": " << o.H
           << ", \"D\": " << o.D << ", \"T\": " << o.T << ", \"piece\": " << n << ", \"iters\": " << o.iters
           << ", \"forward_ms\": " << fwd_ms << ", \"fwdbwd_ms\": " << fb_ms
           << ", \"forward_tokens_per_s\": " << tokens / (fwd_ms * 1e-3)
           << ", \"fwdbwd_tokens_per_s\": " << tokens / (fb_ms * 1e-3) << "}\n";
        if (!js) throw std::runtime_error("cannot write " + o.json);
    }

    int status = 0;
    if (o.check) {  // the whole sequence on this GPU, this rank's rows compared
        DeviceRows Q(o, 0, o.T, o.D, 0, dtype), K(o, 0, o.T, o.D, 1, dtype), V(o, 0, o.T, o.D, 2, dtype);
        DeviceRows G(o, 0, o.T, o.D, 3, dtype), O(o, 0, o.T, o.D, -1, dtype);
        DeviceRows DQ(o, 0, o.T, o.D, -1, dtype), DK(o, 0, o.T, o.D, -1, dtype), DV(o, 0, o.T, o.D, -1, dtype);
        slay_attn_fwd_args_t F = f;
        F.q = &Q.view, F.k = &K.view, F.v = &V.view, F.out = &O.view;
        plan.fwd(F, ws, ws_bytes, stream);
        slay_attn_bwd_args_t Bw = b;
        Bw.q = &Q.view, Bw.k = &K.view, Bw.v = &V.view, Bw.out = &O.view, Bw.dout = &G.view;
        Bw.dq = &DQ.view, Bw.dk = &DK.view, Bw.dv = &DV.view;
        plan.bwd(Bw, ws, ws_bytes, stream);
        CUDA_OK(cudaStreamSynchronize(stream));
        const DeviceRows* pieces[4] = {&out, &dq, &dk, &dv};
        const DeviceRows* wholes[4] = {&O, &DQ, &DK, &DV};
        const char* names[4] = {"out", "dq", "dk", "dv"};
        for (int i = 0; i < 4; ++i) {
            const std::vector<float> whole = wholes[i]->host_floats(), piece = pieces[i]->host_floats();
            std::vector<float> want;
            for (int64_t bh = 0; bh < o.B * o.H; ++bh)
                want.insert(want.end(), whole.begin() + (bh * o.T + t0) * o.D, whole.begin() + (bh * o.T + t0 + n) * o.D);
            const double err = rel_l2(piece, want);
            std::printf("rank %d: %s rel L2 vs one GPU %.2e %s\n", o.rank, names[i], err, err <= 1e-5 ? "ok" : "FAIL");
            if (!(err <= 1e-5)) status = 1;
        }
    }
    cudaFree(exchange), cudaFree(prefix), cudaFree(ws), cudaFree(params);
    ncclCommDestroy(comm);
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "slay_context_parallel: %s\n", e.what());
        return 2;
    }
}
