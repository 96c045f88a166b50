// test_threads.cpp -- a multi-threaded stress test of the CPU backend
// through the public ABI, run under ThreadSanitizer by
// tests/sanitize/run_sanitizers.sh: several plans on one shared handle, each
// plan driven by its own thread (features_sample, fwd, bwd in a loop,
// shapes q, k, v (B, H, T, D) = (1, 2, 16, 8)), while probe threads call a
// shared plan meanwhile and must get PLAN_IN_USE or a regular status, never
// a race. Each thread's results must equal a single-threaded run's.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace slay_test;

namespace {

constexpr int64_t B = 1, H = 2, T = 16, D = 8;

// Repeats a call while another thread holds the plan (the probes below).
template <typename Call>
slay_status_t retrying(Call&& call) {
    slay_status_t s;
    do s = call();
    while (s == SLAY_STATUS_PLAN_IN_USE);
    return s;
}

// One plan's buffers and its fwd/bwd calls; results are returned as bytes.
struct Worker {
    Plan plan;
    Buffer q, k, v, out, dout, dq, dk, dv, params, workspace;
    int64_t param_count = 0;

    Worker(slay_handle_t handle, slay_attn_variant_t variant)
        : plan(make_plan(handle, make_desc(variant, {{SLAY_ATTR_NUM_HEADS, H}, {SLAY_ATTR_HEAD_DIM, D}}))) {
        const size_t n = static_cast<size_t>(B * H * T * D) * sizeof(float);
        for (Buffer* b : {&q, &k, &v, &out, &dout, &dq, &dk, &dv}) *b = Buffer(n);
        TestRng rng(7);
        for (Buffer* b : {&q, &k, &v, &dout}) rng.fill(b->as<float>(), n / sizeof(float), -1.f, 1.f);
        REQUIRE(slay_attn_plan_get_param_count(plan, &param_count) == SLAY_STATUS_SUCCESS);
        params = Buffer(static_cast<size_t>(param_count) * sizeof(float) + 1);
        size_t need = 0, most = 0;
        for (slay_pass_t pass : {SLAY_PASS_FORWARD, SLAY_PASS_BACKWARD, SLAY_PASS_SAMPLE}) {
            REQUIRE(slay_attn_plan_get_workspace_size(plan, pass, B, T, &need) == SLAY_STATUS_SUCCESS);
            most = need > most ? need : most;
        }
        workspace = Buffer(most + 1);
    }

    // features_sample, fwd, bwd; SUCCESS expected from each.
    std::vector<unsigned char> run_once() {
        slay_tensor_t tq = contiguous_tensor(q.data(), SLAY_DTYPE_FLOAT32, {B, H, T, D});
        slay_tensor_t tk = contiguous_tensor(k.data(), SLAY_DTYPE_FLOAT32, {B, H, T, D});
        slay_tensor_t tv = contiguous_tensor(v.data(), SLAY_DTYPE_FLOAT32, {B, H, T, D});
        slay_tensor_t to = contiguous_tensor(out.data(), SLAY_DTYPE_FLOAT32, {B, H, T, D});
        slay_tensor_t tdo = contiguous_tensor(dout.data(), SLAY_DTYPE_FLOAT32, {B, H, T, D});
        slay_tensor_t tdq = contiguous_tensor(dq.data(), SLAY_DTYPE_FLOAT32, {B, H, T, D});
        slay_tensor_t tdk = contiguous_tensor(dk.data(), SLAY_DTYPE_FLOAT32, {B, H, T, D});
        slay_tensor_t tdv = contiguous_tensor(dv.data(), SLAY_DTYPE_FLOAT32, {B, H, T, D});
        slay_tensor_t tp = contiguous_tensor(params.data(), SLAY_DTYPE_FLOAT32, {param_count});
        const slay_tensor_t* p = param_count ? &tp : nullptr;
        CHECK(retrying([&] { return slay_attn_features_sample(plan, 11, 0, p, workspace.data(), workspace.size(),
                                                              nullptr); }) == SLAY_STATUS_SUCCESS);
        slay_attn_fwd_args_t f{};
        f.struct_size = sizeof f;
        f.q = &tq, f.k = &tk, f.v = &tv, f.params = p, f.out = &to;
        CHECK(retrying([&] { return slay_attn_fwd(plan, &f, workspace.data(), workspace.size(), nullptr); }) ==
              SLAY_STATUS_SUCCESS);
        slay_attn_bwd_args_t g{};
        g.struct_size = sizeof g;
        g.q = &tq, g.k = &tk, g.v = &tv, g.params = p, g.out = &to, g.dout = &tdo, g.dq = &tdq, g.dk = &tdk,
        g.dv = &tdv;
        CHECK(retrying([&] { return slay_attn_bwd(plan, &g, workspace.data(), workspace.size(), nullptr); }) ==
              SLAY_STATUS_SUCCESS);
        std::vector<unsigned char> result;
        for (Buffer* b : {&out, &dq, &dk, &dv, &params}) {
            const std::vector<unsigned char> bytes = b->bytes();
            result.insert(result.end(), bytes.begin(), bytes.end());
        }
        return result;
    }
};

}  // namespace

TEST_SUITE("threads") {

TEST_CASE("several plans on one handle run concurrently; a shared plan answers PLAN_IN_USE, never races") {
    Handle handle = make_cpu_handle();
    const slay_attn_variant_t variants[] = {SLAY_ATTN_SLAY_ANCHOR, SLAY_ATTN_LINEAR, SLAY_ATTN_STANDARD,
                                            SLAY_ATTN_SLAY_TENSORSKETCH};
    std::vector<std::unique_ptr<Worker>> workers;
    std::vector<std::vector<unsigned char>> expected;
    for (slay_attn_variant_t v : variants) {
        workers.push_back(std::make_unique<Worker>(handle, v));
        expected.push_back(workers.back()->run_once());  // single-threaded reference
    }
    Worker shared(handle, SLAY_ATTN_SLAY_NYSTROM);
    const std::vector<unsigned char> shared_expected = shared.run_once();

    constexpr int kRounds = 8;
    std::atomic<int> mismatches{0}, bad_status{0}, in_use{0};
    std::vector<std::thread> threads;
    for (size_t i = 0; i < workers.size(); ++i)
        threads.emplace_back([&, i] {
            for (int r = 0; r < kRounds; ++r)
                if (workers[i]->run_once() != expected[i]) ++mismatches;
        });
    // Probes on the shared plan: one thread runs it, two others call it with
    // NULL args meanwhile (INVALID_ARGUMENT when free, PLAN_IN_USE when busy).
    threads.emplace_back([&] {
        for (int r = 0; r < kRounds; ++r)
            if (shared.run_once() != shared_expected) ++mismatches;
    });
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&] {
            for (int r = 0; r < 2000; ++r) {
                const slay_status_t s = slay_attn_fwd(shared.plan, nullptr, nullptr, 0, nullptr);
                if (s == SLAY_STATUS_PLAN_IN_USE)
                    ++in_use;
                else if (s != SLAY_STATUS_INVALID_ARGUMENT)
                    ++bad_status;
            }
        });
    for (std::thread& t : threads) t.join();
    CHECK(mismatches == 0);
    CHECK(bad_status == 0);
    MESSAGE("PLAN_IN_USE answered ", in_use.load(), " probes");
}

}  // TEST_SUITE threads
