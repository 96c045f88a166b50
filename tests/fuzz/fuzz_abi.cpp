// fuzz_abi.cpp -- a libFuzzer harness over libslay's public ABI (CPU
// backend, host-only build). Each input is decoded into one call:
// slay_attn_fwd, slay_attn_bwd or slay_attn_features_sample on a small plan
// (variant, H, D, Dv, causal and dtype from the input), with tensors of rank
// and shape (B, H, T, D) / (B, H, T, Dv) / states (B, H, F, Dv+1) perturbed
// field by field: dtype as any int32, shapes, strides, struct_size, data
// pointers placed anywhere in one shared pool (so tensors can overlap), NULL,
// misaligned, workspace size and offset; plans with grouped-query heads
// (k, v with H_kv = 1 heads) and packed calls (seq_offsets of int32/int64
// pool bytes). Invariants checked after every call:
//   1. the status is one slay.h documents (none in the 900s);
//   2. a failing call set a non-empty message;
//   3. a failing call left every caller byte unchanged (pool and workspace);
//   4. the call returned (libFuzzer's -timeout catches hangs).
// Also the row statistics (row_stats, merge: ABI 4 forward, ABI 5 backward)
// and the older argument-block sizes.
// A violation aborts (libFuzzer saves the input). At exit the harness prints
// "fuzz figures: calls N, violations 0, statuses seen: ..." for CI.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "slay/slay.h"

namespace {

// Reads the input front to back; past its end every read is 0.
class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    int64_t small(int64_t lo, int64_t hi) { return lo + byte() % (hi - lo + 1); }
    int64_t i64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v = v << 8 | byte();
        return static_cast<int64_t>(v);
    }
    int32_t i32() { return static_cast<int32_t>(i64() >> 32); }

private:
    const uint8_t* data_;
    size_t size_, pos_ = 0;
};

constexpr size_t kPool = 1 << 16;       // every tensor lives in this pool
constexpr size_t kWorkspace = 1 << 18;  // workspace buffer

struct State {
    slay_handle_t handle = nullptr;
    std::vector<unsigned char> pool, workspace;
    uint64_t calls = 0, violations = 0;
    std::map<int, uint64_t> statuses;
};

State& state() {
    static State s;
    return s;
}

void print_figures() {
    const State& s = state();
    std::printf("fuzz figures: calls %llu, violations %llu, statuses seen:", (unsigned long long)s.calls,
                (unsigned long long)s.violations);
    for (const auto& kv : s.statuses)
        std::printf(" %s=%llu", slay_status_name(static_cast<slay_status_t>(kv.first)),
                    (unsigned long long)kv.second);
    std::printf("\n");
}

bool documented(slay_status_t s) {
    switch (s) {
        case SLAY_STATUS_SUCCESS: case SLAY_STATUS_INVALID_ARGUMENT: case SLAY_STATUS_INVALID_VALUE:
        case SLAY_STATUS_BAD_SHAPE: case SLAY_STATUS_BAD_STRIDE: case SLAY_STATUS_BAD_DTYPE:
        case SLAY_STATUS_WORKSPACE_TOO_SMALL: case SLAY_STATUS_STRUCT_SIZE: case SLAY_STATUS_BACKEND_MISMATCH:
        case SLAY_STATUS_NOT_SUPPORTED: return true;
        default: return false;  // attribute/device/internal statuses cannot come from these calls
    }
}

void violation(const char* what, slay_status_t s) {
    ++state().violations;
    std::fprintf(stderr, "VIOLATION: %s (status %s, message \"%s\")\n", what, slay_status_name(s),
                 slay_last_error_message());
    print_figures();
    std::abort();
}

// A call's workspace query (ABI 6), asked with the call's own arguments
// just before it: it writes nothing, fails exactly where the call's
// validation does (same status), and never asks more than the plan-level
// size of the call's (B, T), q's dims 0 and 2 once the call validated (not
// for packed calls, whose B and T are the offsets' N and longest sequence).
template <typename Query>
void check_workspace_query(Query query, slay_attn_plan_t plan, slay_pass_t pass, const slay_tensor_t* q, bool packed,
                           const std::vector<unsigned char>& pool_before, slay_status_t* query_status) {
    size_t call_need = 0, plan_need = 0;
    *query_status = query(&call_need);
    if (!documented(*query_status)) violation("workspace query status not documented", *query_status);
    if (state().pool != pool_before) violation("the workspace query changed a caller tensor", *query_status);
    if (*query_status == SLAY_STATUS_SUCCESS && !packed && q &&
        slay_attn_plan_get_workspace_size(plan, pass, q->shape[0], q->shape[2], &plan_need) == SLAY_STATUS_SUCCESS &&
        call_need > plan_need)
        violation("a call's workspace above the plan-level size", *query_status);
}
// The call after its query: a query that failed validation means the call
// fails with the same status.
void check_call_after_query(slay_status_t query_status, slay_status_t call_status) {
    if (query_status != SLAY_STATUS_SUCCESS && call_status != query_status)
        violation("the workspace query and the call disagree on the arguments", call_status);
}

// Element size of a dtype; 8 (the largest) for values that are no dtype, so
// a view's span is never underestimated.
int64_t dtype_bytes(int32_t dtype) {
    switch (dtype) {
        case SLAY_DTYPE_BFLOAT16:
        case SLAY_DTYPE_FLOAT16: return 2;
        case SLAY_DTYPE_FLOAT32:
        case SLAY_DTYPE_INT32: return 4;
        default: return 8;
    }
}

// Largest element offset of a view with non-negative strides, extents
// below 2^20 and strides below 2^20 where the extent exceeds 1 (false if
// empty). Extent-1 dimensions add nothing, whatever their stride.
bool reach(const slay_tensor_t& t, int64_t* last) {
    *last = 0;
    for (int i = 0; i < t.rank; ++i) {
        if (t.shape[i] == 0) return false;  // no element
        if (t.shape[i] > 1) *last += t.strides[i] * (t.shape[i] - 1);
    }
    return true;
}

// A tensor of the expected shape, then perturbed by the input. Its data is
// placed in the pool only where every element it can reach lies inside the
// pool; a tensor that cannot be placed gets NULL (or a dangling non-NULL
// pointer when it holds no element), which the library must then reject or
// never dereference.
void make_tensor(Input& in, slay_tensor_t* t, int32_t dtype, std::initializer_list<int64_t> shape) {
    std::memset(t, 0, sizeof *t);
    t->rank = static_cast<int32_t>(shape.size());
    int i = 0;
    for (int64_t e : shape) t->shape[i++] = e;
    int64_t stride = 1;
    for (int d = t->rank - 1; d >= 0; --d) {
        t->strides[d] = stride;
        // A huge B makes the outer stride overflow: wrap it (the library
        // must reject whatever comes out), without UB in the harness.
        stride = static_cast<int64_t>(static_cast<uint64_t>(stride) *
                                      static_cast<uint64_t>(t->shape[d] > 0 ? t->shape[d] : 1));
    }
    int32_t dt = dtype;
    const uint8_t mutate = in.byte();
    if (mutate & 1) dt = (mutate & 2) ? in.i32() : static_cast<int32_t>(in.small(-1, 3));
    std::memcpy(&t->dtype, &dt, sizeof dt);  // any int32, as C may store
    if (mutate & 4) t->rank = static_cast<int32_t>(in.small(-1, 5));
    if (mutate & 8) t->shape[in.small(0, 3)] = (mutate & 16) ? in.i64() : in.small(-1, 9);
    if (mutate & 32) t->strides[in.small(0, 3)] = (mutate & 64) ? in.i64() : in.small(-1, 40);
    const uint8_t where = in.byte();
    int64_t last = 0;
    // A view the library must reject (bad rank, a negative extent or stride)
    // or one without elements may get a dangling pointer: the library must
    // not dereference it. A valid view with elements gets pool memory when
    // all it can reach fits in the pool, else NULL (never a dangling pointer:
    // the library would rightly write through it). Strides of extent-1
    // dimensions address nothing, so they do not count towards the span.
    const bool valid_rank = t->rank >= 1 && t->rank <= SLAY_MAX_RANK;
    bool nonneg = valid_rank, empty = false, fits = true;
    for (int d = 0; valid_rank && d < t->rank; ++d) {
        nonneg = nonneg && t->shape[d] >= 0 && t->strides[d] >= 0;
        empty = empty || t->shape[d] == 0;
        if (t->shape[d] > 1) fits = fits && t->shape[d] < (1 << 20) && t->strides[d] < (1 << 20);
    }
    const bool has_elements = nonneg && !empty && fits && reach(*t, &last);
    const int64_t span = has_elements ? (last + 1) * dtype_bytes(dt) : 0;
    if (where == 0xff) {
        t->data = nullptr;
    } else if (!nonneg || empty) {
        t->data = (where & 1) ? nullptr : reinterpret_cast<void*>(uintptr_t{0x1000});
    } else if (has_elements && span <= static_cast<int64_t>(kPool)) {
        const int64_t room = static_cast<int64_t>(kPool) - span;
        int64_t off = (static_cast<int64_t>(in.byte()) << 8 | in.byte()) % (room + 1);
        if (!(where & 2)) off -= off % 4;  // mostly aligned
        t->data = state().pool.data() + off;
    } else {
        t->data = nullptr;
    }
}

const slay_attn_variant_t kVariants[] = {SLAY_ATTN_STANDARD,     SLAY_ATTN_YAT_SPHERICAL, SLAY_ATTN_SLAY_ANCHOR,
                                         SLAY_ATTN_SLAY_LAPLACE, SLAY_ATTN_SLAY_TENSORSKETCH,
                                         SLAY_ATTN_SLAY_NYSTROM, SLAY_ATTN_LINEAR,        SLAY_ATTN_COSFORMER,
                                         SLAY_ATTN_RFF};

// A packed call's offsets (int32 or int64, 1..5 entries of pool bytes, so
// mostly invalid values), or NULL (a dense call) when the input says so.
const slay_tensor_t* packed_offsets(Input& in, slay_tensor_t* t) {
    const uint8_t kind = in.byte();
    if (!(kind & 1)) return nullptr;
    make_tensor(in, t, (kind & 2) ? SLAY_DTYPE_INT32 : SLAY_DTYPE_INT64, {in.small(1, 5)});
    return t;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    State& s = state();
    s.pool.resize(kPool);
    s.workspace.resize(kWorkspace);
    if (slay_handle_create(&s.handle, SLAY_BACKEND_CPU, 0) != SLAY_STATUS_SUCCESS) std::abort();
    std::atexit(print_figures);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    State& st = state();
    Input in(data, size);
    // The plan: small sizes keep each call fast.
    const uint8_t variant_byte = in.byte();
    const slay_attn_variant_t variant = kVariants[variant_byte % (sizeof kVariants / sizeof kVariants[0])];
    const int64_t H = in.small(1, 2), D = in.small(1, 4), Dv = in.small(0, 3);
    const int64_t Hkv = (variant_byte & 0x80) ? 1 : H;  // grouped-query (multi-query) plans too
    const int32_t io = static_cast<int32_t>(in.small(0, 2));
    slay_attn_desc_t desc = nullptr;
    if (slay_attn_desc_create(&desc, variant) != SLAY_STATUS_SUCCESS) std::abort();
    slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_HEADS, H);
    slay_attn_desc_set_i64(desc, SLAY_ATTR_HEAD_DIM, D);
    slay_attn_desc_set_i64(desc, SLAY_ATTR_VALUE_DIM, Dv);
    slay_attn_desc_set_i64(desc, SLAY_ATTR_IO_DTYPE, io);
    slay_attn_desc_set_i64(desc, SLAY_ATTR_CAUSAL, in.byte() & 1);
    slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_FEATURES, in.small(1, 4));   // NOT_APPLICABLE for some: fine
    slay_attn_desc_set_i64(desc, SLAY_ATTR_POLY_DIM, in.small(1, 4));
    slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_QUAD_NODES, in.small(1, 2));
    slay_attn_desc_set_i64(desc, SLAY_ATTR_COSFORMER_LENGTH, in.small(0, 12));
    slay_attn_desc_set_i64(desc, SLAY_ATTR_NUM_KV_HEADS, Hkv);
    slay_attn_plan_t plan = nullptr;
    if (slay_attn_plan_create(&plan, st.handle, desc) != SLAY_STATUS_SUCCESS) std::abort();
    slay_attn_desc_destroy(desc);
    int64_t F = 0, P = 0, dv = 0;
    slay_attn_plan_get_feature_dim(plan, &F);
    slay_attn_plan_get_param_count(plan, &P);
    slay_attn_plan_get_i64(plan, SLAY_ATTR_VALUE_DIM, &dv);

    // The call's tensors, from a (B, T) that is small unless the input says
    // otherwise (huge B with T = 0 is the degenerate case of issue 14).
    const uint8_t shape_kind = in.byte();
    int64_t B = in.small(0, 2), T = in.small(0, 5);
    if (shape_kind == 0xfe) B = in.i64(), T = 0;
    slay_tensor_t q, k, v, out, dout, dq, dk, dv_t, params, s0, s1, s2, s3, stats;
    make_tensor(in, &q, io, {B, H, T, D});
    make_tensor(in, &k, io, {B, Hkv, T, D});
    make_tensor(in, &v, io, {B, Hkv, T, dv});
    make_tensor(in, &out, io, {B, H, T, dv});
    make_tensor(in, &dout, io, {B, H, T, dv});
    make_tensor(in, &dq, io, {B, H, T, D});
    make_tensor(in, &dk, io, {B, Hkv, T, D});
    make_tensor(in, &dv_t, io, {B, Hkv, T, dv});
    make_tensor(in, &params, SLAY_DTYPE_FLOAT32, {P});
    make_tensor(in, &s0, SLAY_DTYPE_FLOAT32, {B, H, F, dv + 1});
    make_tensor(in, &s1, SLAY_DTYPE_FLOAT32, {B, H, F, dv + 1});
    make_tensor(in, &s2, SLAY_DTYPE_FLOAT32, {B, H, F, dv + 1});
    make_tensor(in, &s3, SLAY_DTYPE_FLOAT32, {B, H, F, dv + 1});
    make_tensor(in, &stats, SLAY_DTYPE_FLOAT32, {B, H, T});  // row statistics (ABI 4 forward, ABI 5 backward)
    const uint8_t optional = in.byte();
    const slay_tensor_t* pp = (optional & 1) ? nullptr : &params;
    const slay_tensor_t* init = (optional & 2) ? &s0 : nullptr;
    const slay_tensor_t* fin = (optional & 4) ? ((optional & 8) ? &s0 : &s1) : nullptr;
    const slay_tensor_t* dfin = (optional & 16) ? &s2 : nullptr;
    const slay_tensor_t* dinit = (optional & 32) ? &s3 : nullptr;
    const int64_t position = (optional & 64) ? in.small(-1, 12) : 0;

    // Poison the pool with input bytes so values vary; snapshot everything.
    for (size_t i = 0; i < kPool; i += 61) st.pool[i] = in.byte();
    const slay_pass_t pass = static_cast<slay_pass_t>(in.byte() % 3);
    size_t need = 0;
    slay_attn_plan_get_workspace_size(plan, pass, B < 0 ? 0 : B, T, &need);
    const uint8_t ws_kind = in.byte();
    size_t ws_size = need + static_cast<size_t>(in.small(-2, 2));
    if (ws_size > kWorkspace) ws_size = kWorkspace;  // larger claims would let the library run past the buffer
    void* ws = (ws_kind & 1) ? nullptr : st.workspace.data() + ((ws_kind & 2) ? 8 : 0);
    if ((ws_kind & 2) && ws_size + 8 > kWorkspace) ws_size = kWorkspace - 8;
    if (ws_kind & 4) ws = st.pool.data() + (ws_kind >> 3) * 16;  // workspace inside the pool: overlaps
    if ((ws_kind & 4) && ws_size > kPool - (ws_kind >> 3) * 16) ws_size = kPool - (ws_kind >> 3) * 16;
    void* stream = (ws_kind & 0x80) && (ws_kind & 0x40) ? &st : nullptr;

    const std::vector<unsigned char> pool_before = st.pool, ws_before = st.workspace;
    slay_tensor_t offsets;
    slay_status_t s;
    if (pass == SLAY_PASS_FORWARD) {
        struct {
            slay_attn_fwd_args_t a;
            unsigned char tail[64];
        } block{};
        block.a.struct_size = sizeof block.a;
        block.a.q = (optional & 128) ? nullptr : &q, block.a.k = &k, block.a.v = &v, block.a.params = pp;
        block.a.out = &out, block.a.initial_state = init, block.a.final_state = fin, block.a.position_offset = position;
        const uint8_t sz = in.byte();
        if (sz == 1) block.a.struct_size = sizeof block.a + in.small(0, 64), block.tail[in.small(0, 63)] = in.byte();
        if (sz == 2) block.a.struct_size = static_cast<size_t>(in.i64());  // garbage: must not be followed
        if (sz == 3) block.a.struct_size = offsetof(slay_attn_fwd_args_t, seq_offsets);  // the ABI 2 layout
        if (sz == 4) block.a.struct_size = offsetof(slay_attn_fwd_args_t, row_stats);    // the ABI 3 layout
        block.a.seq_offsets = packed_offsets(in, &offsets);
        const uint8_t stats_kind = in.byte();  // row_stats and merge (exact variants; others refuse them)
        if (stats_kind & 1) block.a.row_stats = &stats;
        if (stats_kind & 2) block.a.merge = static_cast<int32_t>(in.small(-1, 2));
        slay_status_t qs;
        check_workspace_query([&](size_t* b) { return slay_attn_fwd_workspace_size(plan, &block.a, stream, b); },
                              plan, pass, block.a.q, block.a.seq_offsets != nullptr, pool_before, &qs);
        s = slay_attn_fwd(plan, &block.a, ws, ws_size, stream);
        check_call_after_query(qs, s);
    } else if (pass == SLAY_PASS_BACKWARD) {
        struct {
            slay_attn_bwd_args_t a;
            unsigned char tail[64];
        } block{};
        block.a.struct_size = sizeof block.a;
        block.a.q = &q, block.a.k = &k, block.a.v = &v, block.a.params = pp, block.a.out = &out;
        block.a.dout = &dout, block.a.dq = &dq, block.a.dk = &dk, block.a.dv = &dv_t, block.a.initial_state = init;
        block.a.dfinal_state = dfin, block.a.dinitial_state = dinit, block.a.position_offset = position;
        const uint8_t sz = in.byte();
        if (sz == 1) block.a.struct_size = sizeof block.a + in.small(0, 64), block.tail[in.small(0, 63)] = in.byte();
        if (sz == 2) block.a.struct_size = static_cast<size_t>(in.i64());
        if (sz == 3) block.a.struct_size = offsetof(slay_attn_bwd_args_t, seq_offsets);  // the ABI 2 layout
        if (sz == 4) block.a.struct_size = offsetof(slay_attn_bwd_args_t, row_stats);    // the ABI 4 layout
        block.a.seq_offsets = packed_offsets(in, &offsets);
        if (in.byte() & 1) block.a.row_stats = &stats;  // read-only: the forward's statistics (ABI 5)
        slay_status_t qs;
        check_workspace_query([&](size_t* b) { return slay_attn_bwd_workspace_size(plan, &block.a, stream, b); },
                              plan, pass, block.a.q, block.a.seq_offsets != nullptr, pool_before, &qs);
        s = slay_attn_bwd(plan, &block.a, ws, ws_size, stream);
        check_call_after_query(qs, s);
    } else {
        s = slay_attn_features_sample(plan, static_cast<uint64_t>(in.i64()), in.byte(), pp, ws, ws_size, stream);
    }
    ++st.calls;
    ++st.statuses[static_cast<int>(s)];
    if (!documented(s)) violation("status not documented for this call", s);
    if (s != SLAY_STATUS_SUCCESS) {
        if (slay_last_error_message()[0] == '\0') violation("failure without a message", s);
        if (st.pool != pool_before) violation("a failing call changed a caller tensor", s);
        if (st.workspace != ws_before) violation("a failing call changed the workspace", s);
    }
    slay_attn_plan_destroy(plan);
    return 0;
}
