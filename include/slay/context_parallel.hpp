/*
 * context_parallel.hpp -- context parallelism: one sequence split into
 * contiguous pieces over the ranks of a group (one GPU each), header-only
 * C++17 over slay.h / slay.hpp. The linearized family exchanges states
 * (forward, backward below); the exact family passes key/value pieces around
 * a ring (ring_forward, at the end).
 *
 * Rank r of N holds tokens [t_r, t_{r+1}) of the sequence: its piece's q, k
 * (B, H, T_r, D), v, out, dout (B, H, T_r, Dv) and dq, dk, dv. A linearized
 * state (B, H, F, Dv+1) is additive over tokens (SPEC C.3), so the whole
 * sequence's result is each piece computed from the state of the tokens
 * before it:
 *
 *   forward
 *     1. ranks 0..N-2: fwd of the piece from its start state (rank 0: the
 *        sequence's initial state; the others: zero) -> final state A_r;
 *     2. for t = 1..N-1: reduce_sum of A_r over the ranks r < t to rank t:
 *        P_t = S_0 + sum over r < t of (the keys of piece r);
 *     3. ranks 1..N-1: fwd of the piece from P_t (rank N-1 writes the
 *        sequence's final state). Rank 0's step-1 output is already final.
 *   backward (P_r kept by the caller from the forward)
 *     1. ranks 1..N-1: bwd of the piece from P_r with dfinal_state (rank N-1:
 *        the sequence's; the others: zero) -> dinitial_state A_r;
 *     2. for t = 0..N-2: reduce_sum of A_r over the ranks r > t to rank t:
 *        C_t = dL/dfinal_state + the later queries' carry (SPEC C.4);
 *     3. ranks 0..N-2: bwd with dfinal_state = C_t (rank 0 writes the
 *        sequence's dinitial_state). Rank N-1's step-1 gradients are final.
 *
 * Each rank computes at most two passes of its piece whatever N is, and the
 * exchange moves N-1 states per direction. Results equal one call over the
 * whole sequence up to the order of fp32 sums (tests: 1e-5 relative L2).
 *
 * The exchange is the Communicator below: a stream-ordered sum to one root
 * (NCCL's ncclReduce; context_parallel_nccl.hpp has that implementation). No
 * call here synchronizes the host with the device: every step is enqueued on
 * the caller's stream in order. Every rank must make the same calls in the
 * same order (collective semantics); a failing rank must bring the group
 * down (as in any NCCL program), since the others wait in the exchange.
 *
 * Scope: causal plans of the linearized family, dense batches (no
 * seq_offsets; a packed call's sequences are independent anyway), the same
 * plan attributes on every rank (cosformer: set COSFORMER_LENGTH, and pass
 * each piece's global position_offset). Exact plans (ring_forward instead)
 * and bidirectional plans (every rank would need all the others' states)
 * throw NOT_SUPPORTED.
 *
 * Memory: two states of scratch per rank in the handle's memory space,
 * `exchange` (used within one call) and `prefix` (P_r: written by forward,
 * read by backward; keep it between them), state_floats() floats each. The
 * functions throw slay::Error on failure, as slay.hpp does.
 */
#ifndef SLAY_CONTEXT_PARALLEL_HPP
#define SLAY_CONTEXT_PARALLEL_HPP

#include <cstddef>
#include <cstdint>
#include <string>

#include "slay.hpp"

namespace slay {
namespace cp {

/* A rank's view of its group. reduce_sum: recv (significant on root only) =
 * the sum over the group's ranks of their send buffers (count fp32 values;
 * a null send contributes zeros). sendrecv: sends `bytes` bytes of `send`
 * to rank `to` and receives as many from rank `from` into `recv` (ring
 * attention's step; send and recv do not overlap). Both are enqueued on
 * `stream` (a cudaStream_t for device memory; null for host memory) and are
 * collective: every rank calls them with the same sizes, in the same order. */
class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual void reduce_sum(const float* send, float* recv, std::size_t count, int root, void* stream) = 0;
    virtual void sendrecv(const void* send, void* recv, std::size_t bytes, int to, int from, void* stream) = 0;
};

namespace detail {

inline std::int64_t plan_i64(slay_attn_plan_t plan, slay_attr_t attr) {
    std::int64_t value = 0;
    check(slay_attn_plan_get_i64(plan, attr, &value), "context parallel: slay_attn_plan_get_i64");
    return value;
}

/* The state's shape (B, H, F, Dv + 1) of a plan for batch B; throws
 * NOT_SUPPORTED for the plans this layer does not run. */
struct StateShape {
    std::int64_t B, H, F, W;
    std::size_t floats() const { return static_cast<std::size_t>(B * H * F * W); }
};

inline StateShape state_shape(slay_attn_plan_t plan, std::int64_t batch) {
    std::int64_t features = 0;
    check(slay_attn_plan_get_feature_dim(plan, &features), "context parallel: slay_attn_plan_get_feature_dim");
    if (features == 0)
        throw Error(SLAY_STATUS_NOT_SUPPORTED,
                    "context parallel: only the linearized family is supported (exact variants: ring_forward)");
    if (plan_i64(plan, SLAY_ATTR_CAUSAL) == 0)
        throw Error(SLAY_STATUS_NOT_SUPPORTED,
                    "context parallel: only causal plans are supported (a bidirectional piece needs every other "
                    "piece's state)");
    std::int64_t dv = plan_i64(plan, SLAY_ATTR_VALUE_DIM);
    if (dv == 0) dv = plan_i64(plan, SLAY_ATTR_HEAD_DIM);
    return {batch, plan_i64(plan, SLAY_ATTR_NUM_HEADS), features, dv + 1};
}

inline slay_tensor_t state_view(float* data, const StateShape& s) {
    return make_tensor(data, SLAY_DTYPE_FLOAT32, {s.B, s.H, s.F, s.W});
}

/* This rank's place in its group (ranks 0..size-1), checked. */
inline void check_rank(const Communicator& comm, const char* who) {
    if (comm.size() < 1 || comm.rank() < 0 || comm.rank() >= comm.size())
        throw Error(SLAY_STATUS_INVALID_VALUE, std::string(who) + ": rank " + std::to_string(comm.rank()) +
                                                   " of a group of " + std::to_string(comm.size()));
}

/* What forward and backward check and set up first: the rank in its group,
 * the plan and call this layer runs, the two scratch states as tensors. */
struct RankPiece {
    int rank, last;  // last = N - 1
    StateShape shape;
    slay_tensor_t exchange, prefix;
    RankPiece(const Communicator& comm, slay_attn_plan_t plan, const slay_tensor_t* seq_offsets,
              const slay_tensor_t* q, float* exchange_data, float* prefix_data)
        : rank(comm.rank()), last(comm.size() - 1) {
        check_rank(comm, "context parallel");
        if (seq_offsets != nullptr)
            throw Error(SLAY_STATUS_NOT_SUPPORTED, "context parallel: packed calls (seq_offsets) are not supported");
        if (q == nullptr || q->rank != 4)
            throw Error(SLAY_STATUS_INVALID_VALUE, "context parallel: q must be a rank-4 (B, H, T, D) tensor");
        shape = state_shape(plan, q->shape[0]);
        exchange = state_view(exchange_data, shape);
        prefix = state_view(prefix_data, shape);
    }
};

}  // namespace detail

/* Floats of one state (B, H, F, Dv+1) of `plan` for batch B: the size of
 * each of the two scratch buffers (exchange, prefix). */
inline std::size_t state_floats(slay_attn_plan_t plan, std::int64_t batch) {
    return detail::state_shape(plan, batch).floats();
}

/* The forward of this rank's piece (see the header). piece: the call's
 * arguments for the piece (out written; initial_state read on rank 0 only,
 * final_state written on rank N-1 only, both ignored elsewhere);
 * exchange, prefix: state_floats(plan, B) floats each; workspace as for
 * slay_attn_fwd over the piece. */
inline void forward(Communicator& comm, slay_attn_plan_t plan, const slay_attn_fwd_args_t& piece, float* exchange,
                    float* prefix, void* workspace, std::size_t workspace_size, void* stream) {
    const detail::RankPiece rp(comm, plan, piece.seq_offsets, piece.q, exchange, prefix);
    const int rank = rp.rank, last = rp.last;
    slay_attn_fwd_args_t args = piece;
    args.struct_size = sizeof args;
    if (last == 0) {  // one rank: the whole sequence
        check(slay_attn_fwd(plan, &args, workspace, workspace_size, stream), "context parallel: forward");
        return;
    }
    if (rank < last) {  // 1. the piece from its start state -> A_r
        args.initial_state = rank == 0 ? piece.initial_state : nullptr;
        args.final_state = &rp.exchange;
        check(slay_attn_fwd(plan, &args, workspace, workspace_size, stream), "context parallel: forward pass 1");
    }
    // 2. P_t = sum of A_r over r < t, to rank t.
    for (int t = 1; t <= last; ++t)
        comm.reduce_sum(rank < t ? exchange : nullptr, rank == t ? prefix : nullptr, rp.shape.floats(), t, stream);
    if (rank > 0) {  // 3. the piece from P_r
        args.initial_state = &rp.prefix;
        args.final_state = rank == last ? piece.final_state : nullptr;
        check(slay_attn_fwd(plan, &args, workspace, workspace_size, stream), "context parallel: forward pass 2");
    }
}

/* The backward of this rank's piece. piece: the call's arguments for the
 * piece (dq, dk, dv written; initial_state read on rank 0 only,
 * dfinal_state read on rank N-1 only, dinitial_state written on rank 0
 * only); prefix: as the forward left it; exchange: state_floats(plan, B)
 * floats; workspace as for slay_attn_bwd over the piece. */
inline void backward(Communicator& comm, slay_attn_plan_t plan, const slay_attn_bwd_args_t& piece, float* exchange,
                     float* prefix, void* workspace, std::size_t workspace_size, void* stream) {
    const detail::RankPiece rp(comm, plan, piece.seq_offsets, piece.q, exchange, prefix);
    const int rank = rp.rank, last = rp.last;
    slay_attn_bwd_args_t args = piece;
    args.struct_size = sizeof args;
    if (last == 0) {
        check(slay_attn_bwd(plan, &args, workspace, workspace_size, stream), "context parallel: backward");
        return;
    }
    args.initial_state = rank == 0 ? piece.initial_state : &rp.prefix;
    if (rank > 0) {  // 1. the piece with the sequence's dfinal_state (rank N-1) or none -> A_r
        args.dfinal_state = rank == last ? piece.dfinal_state : nullptr;
        args.dinitial_state = &rp.exchange;
        check(slay_attn_bwd(plan, &args, workspace, workspace_size, stream), "context parallel: backward pass 1");
    }
    // 2. C_t = sum of A_r over r > t, to rank t, into its exchange buffer:
    //    rank t sent its own A_t (for the roots before t) already.
    for (int t = 0; t < last; ++t)
        comm.reduce_sum(rank > t ? exchange : nullptr, rank == t ? exchange : nullptr, rp.shape.floats(), t, stream);
    if (rank < last) {  // 3. the piece with dfinal_state = C_r
        args.dfinal_state = &rp.exchange;
        args.dinitial_state = rank == 0 ? piece.dinitial_state : nullptr;
        check(slay_attn_bwd(plan, &args, workspace, workspace_size, stream), "context parallel: backward pass 2");
    }
}

/* ------------------------------------------------------------ ring attention
 * The exact family (standard, yat, yat_spherical), forward. Rank r of N
 * holds tokens [r T, (r+1) T) of the sequence (every piece the same length
 * T): q, k (B, H, T, D), v (B, H, T, Dv), contiguous. Its output is its
 * queries' attention over the keys of pieces 0..r (causal plan: its own
 * piece causally, the earlier ones whole) or of every piece (bidirectional
 * plan). Step 0 computes the own piece with row statistics; in each of the
 * N-1 ring steps every rank sends the key/value piece it holds to rank r+1,
 * receives one from rank r-1 (so at step s it holds piece r-s mod N) and,
 * when its queries see that piece, merges it into out (slay.h, row
 * statistics: merge = 1). The pieces travel whole, so each rank receives
 * N-1 of them (a causal ring would need only r; the uniform schedule keeps
 * the calls collective and simple).
 *
 *   plan       the exact plan (causal or bidirectional)
 *   full_plan  the same attributes with causal = 0, for the earlier pieces
 *              of a causal ring (a bidirectional plan may pass itself)
 *   piece      q, k, v, out (written), row_stats (B, H, T) fp32 (written: the
 *              statistics of the final out); seq_offsets, merge unused (0)
 *   ring       ring_bytes(plan, B, T) bytes of scratch in the handle's
 *              memory space: two key/value pieces in flight
 *   workspace  as for slay_attn_fwd of the piece (both plans)
 * out accumulates in the io dtype: fp32 io keeps the result within fp32
 * rounding of one call; bf16/fp16 io rounds at every merge. The row
 * statistics need a backend that computes them (the CPU backend in this
 * release). Throws slay::Error. */
namespace detail {

inline std::size_t dtype_bytes(std::int64_t dtype) { return dtype == SLAY_DTYPE_FLOAT32 ? 4 : 2; }

/* Bytes of one key/value piece (k then v) of a plan for batch B, T tokens. */
struct KvPiece {
    std::size_t k_bytes, v_bytes;
    std::size_t bytes() const { return k_bytes + v_bytes; }
};

inline KvPiece kv_piece(slay_attn_plan_t plan, std::int64_t batch, std::int64_t tokens) {
    std::int64_t features = 0;
    check(slay_attn_plan_get_feature_dim(plan, &features), "ring attention: slay_attn_plan_get_feature_dim");
    if (features != 0)
        throw Error(SLAY_STATUS_NOT_SUPPORTED,
                    "ring attention: only the exact family (the linearized family exchanges states: cp::forward)");
    const std::int64_t heads = plan_i64(plan, SLAY_ATTR_NUM_KV_HEADS) > 0 ? plan_i64(plan, SLAY_ATTR_NUM_KV_HEADS)
                                                                          : plan_i64(plan, SLAY_ATTR_NUM_HEADS);
    const std::int64_t d = plan_i64(plan, SLAY_ATTR_HEAD_DIM);
    const std::int64_t dv = plan_i64(plan, SLAY_ATTR_VALUE_DIM) > 0 ? plan_i64(plan, SLAY_ATTR_VALUE_DIM) : d;
    const std::size_t elem = dtype_bytes(plan_i64(plan, SLAY_ATTR_IO_DTYPE));
    const std::size_t rows = static_cast<std::size_t>(batch * heads * tokens);
    return {rows * static_cast<std::size_t>(d) * elem, rows * static_cast<std::size_t>(dv) * elem};
}

/* Whether a (B, H, T, X) tensor is contiguous (the ring sends its bytes). */
inline bool contiguous(const slay_tensor_t& t) {
    return t.rank == 4 && t.strides[3] == 1 && t.strides[2] == t.shape[3] && t.strides[1] == t.shape[2] * t.shape[3] &&
           t.strides[0] == t.shape[1] * t.shape[2] * t.shape[3];
}

}  // namespace detail

/* Scratch bytes of ring_forward for batch B and T tokens per piece. */
inline std::size_t ring_bytes(slay_attn_plan_t plan, std::int64_t batch, std::int64_t tokens) {
    return 2 * detail::kv_piece(plan, batch, tokens).bytes();
}

inline void ring_forward(Communicator& comm, slay_attn_plan_t plan, slay_attn_plan_t full_plan,
                         const slay_attn_fwd_args_t& piece, void* ring, void* workspace, std::size_t workspace_size,
                         void* stream) {
    detail::check_rank(comm, "ring attention");
    const int rank = comm.rank(), n = comm.size();
    if (piece.q == nullptr || piece.k == nullptr || piece.v == nullptr || piece.q->rank != 4)
        throw Error(SLAY_STATUS_INVALID_VALUE, "ring attention: q, k, v must be rank-4 (B, H, T, X) tensors");
    if (piece.row_stats == nullptr)
        throw Error(SLAY_STATUS_INVALID_ARGUMENT, "ring attention: row_stats (B, H, T) fp32 is required");
    if (piece.seq_offsets != nullptr || piece.merge != 0)
        throw Error(SLAY_STATUS_NOT_SUPPORTED, "ring attention: packed calls and merge are not supported");
    if (!detail::contiguous(*piece.k) || !detail::contiguous(*piece.v))
        throw Error(SLAY_STATUS_BAD_STRIDE, "ring attention: k and v must be contiguous (their bytes travel)");
    const bool causal = detail::plan_i64(plan, SLAY_ATTR_CAUSAL) != 0;
    if (causal && detail::plan_i64(full_plan, SLAY_ATTR_CAUSAL) != 0)
        throw Error(SLAY_STATUS_INVALID_VALUE, "ring attention: full_plan must be bidirectional (causal = 0)");
    const detail::KvPiece kv = detail::kv_piece(plan, piece.q->shape[0], piece.q->shape[2]);

    // Step 0, the own piece: the library validates q, k, v (the plan's
    // shapes and io dtype, so k and v hold kv.k_bytes and kv.v_bytes) before
    // any byte travels.
    slay_attn_fwd_args_t args = piece;
    args.struct_size = sizeof args;
    args.merge = 0;
    check(slay_attn_fwd(plan, &args, workspace, workspace_size, stream), "ring attention: own piece");
    slay_tensor_t k = *piece.k, v = *piece.v;  // the piece held: first the own, then ring slots
    unsigned char* slots = static_cast<unsigned char*>(ring);
    for (int step = 1; step < n; ++step) {
        unsigned char* slot = slots + static_cast<std::size_t>(step % 2) * kv.bytes();
        // Rank r - 1's k, v (send and recv slots differ: the one sent is the
        // caller's k, v or the other slot).
        comm.sendrecv(k.data, slot, kv.k_bytes, (rank + 1) % n, (rank + n - 1) % n, stream);
        comm.sendrecv(v.data, slot + kv.k_bytes, kv.v_bytes, (rank + 1) % n, (rank + n - 1) % n, stream);
        k.data = slot;
        v.data = slot + kv.k_bytes;
        const int source = (rank + n - step) % n;  // whose piece this is
        if (causal && source > rank) continue;       // a later piece: not seen by these queries
        args.k = &k;
        args.v = &v;
        args.merge = 1;
        check(slay_attn_fwd(full_plan, &args, workspace, workspace_size, stream), "ring attention: merged piece");
    }
}

}  // namespace cp
}  // namespace slay

#endif /* SLAY_CONTEXT_PARALLEL_HPP */
