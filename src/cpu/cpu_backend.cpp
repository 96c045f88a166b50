// cpu_backend.cpp -- the CPU reference backend: for every (sequence b, query
// head h) it gathers the head's slices of q, k (T, D), v (T, Dv) and the
// state (F, Dv+1) from the caller's strided tensors into fp64 rows, runs the
// fp64 Reference, and scatters out (T, Dv) / gradients / states back in the
// caller's dtype. Packed calls walk their sequences (tokens [start, start+T)
// of batch row 0); grouped-query plans read k, v of head h / group and sum
// dk, dv over each group's query heads in fp64, in head order.
// Feature parameters are drawn with cuRAND's host generator (Philox4x32-10),
// the same generator the CUDA backend runs on the device.
//
// Workspace: the fp64 per-head slices (carved by ScratchLayout, so the size
// answered by workspace_size and the layout used by the call are one code).
#include <curand.h>

#include <memory>
#include <vector>

#include "core/backend.hpp"
#include "core/scratch_carver.hpp"
#include "core/curand_check.hpp"
#include "core/dtype.hpp"
#include "core/sampling.hpp"
#include "cpu/exact.hpp"
#include "cpu/reference.hpp"

namespace slay {
namespace {

// Per-head fp64 slices of one call. Fields a pass does not use stay null.
struct HeadScratch {
    double *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr;
    // Exact variants: row statistics (T) (forward: written; backward: the
    // caller's, read), and the result a forward merges into (T, Dv), (T).
    double *row_stats = nullptr, *out_prev = nullptr, *row_stats_prev = nullptr;
    double *dout = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
    double *state_in = nullptr, *state_out = nullptr, *dstate_out = nullptr, *dstate_in = nullptr;
    double *dk_group = nullptr, *dv_group = nullptr;  // grouped-query plans: sums over the group
};

HeadScratch carve_head_scratch(const Plan& p, slay_pass_t pass, int64_t T, ScratchCarver& w) {
    const int64_t D = p.cfg.head_dim, Dv = p.cfg.value_dim, S = p.features * (Dv + 1);
    HeadScratch s;
    s.q = w.take<double>(T, D);
    s.k = w.take<double>(T, D);
    s.v = w.take<double>(T, Dv);
    s.state_in = w.take<double>(S);
    if (pass == SLAY_PASS_FORWARD) {
        s.out = w.take<double>(T, Dv);
        s.state_out = w.take<double>(S);
        if (p.features == 0) {
            s.row_stats = w.take<double>(T);
            s.out_prev = w.take<double>(T, Dv);
            s.row_stats_prev = w.take<double>(T);
        }
    } else {
        s.dout = w.take<double>(T, Dv);
        s.dq = w.take<double>(T, D);
        s.dk = w.take<double>(T, D);
        s.dv = w.take<double>(T, Dv);
        s.dstate_out = w.take<double>(S);
        s.dstate_in = w.take<double>(S);
        if (p.features == 0) s.row_stats = w.take<double>(T);
        if (p.cfg.num_kv_heads != p.cfg.num_heads) {
            s.dk_group = w.take<double>(T, D);
            s.dv_group = w.take<double>(T, Dv);
        }
    }
    return s;
}

// Sampling scratch: the largest segment's raw fp32 draws, plus fp64 anchors
// and W for the Nystrom matrix.
struct SampleScratch {
    float* raw = nullptr;
    double *anchors = nullptr, *nystrom_w = nullptr;
};

SampleScratch carve_sample_scratch(const Plan& p, ScratchCarver& w) {
    int64_t largest = 0;
    for (const ParamSegment& s : p.segments) largest = s.count() > largest ? s.count() : largest;
    SampleScratch s;
    s.raw = w.take<float>(largest + 1);  // normals are drawn in pairs (Box-Muller)
    if (variant_info(p.cfg.variant).map == MapKind::Nystrom) {  // W is derived from the anchors in fp64
        s.anchors = w.take<double>(p.cfg.poly_dim, p.cfg.head_dim);
        s.nystrom_w = w.take<double>(p.cfg.poly_dim, p.cfg.poly_dim);
    }
    return s;
}

// Rows [row0, row0 + rows) x cols of head (b, h) of a rank-4 tensor <->
// fp64 row-major.
void gather(const TensorView& t, int64_t b, int64_t h, int64_t row0, int64_t rows, int64_t cols, double* dst) {
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
            dst[i * cols + j] = load_element(t.data, t.dtype, t.offset(b, h, row0 + i, j));
}

void scatter(const double* src, int64_t b, int64_t h, int64_t row0, int64_t rows, int64_t cols,
             const TensorView& t) {
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j)
            store_element(t.data, t.dtype, t.offset(b, h, row0 + i, j), src[i * cols + j]);
}

// Where one (sequence, query head) lives in the call's tensors.
struct HeadPlace {
    int64_t seq, h, kv_head;  // states use (seq, h); k, v, dk, dv use kv_head
    int64_t batch, first, T;  // tensor batch row, first token, length
    bool group_start, group_end;  // first / last query head of its kv head's group
};

// Widens the parameter vector. Values are used as given, never checked, the
// same rule as on CUDA (slay.h at slay_attn_features_sample).
void load_params(const Plan& p, bool present, const TensorView& params, std::vector<double>* wide) {
    if (!present) return;
    const float* f = static_cast<const float*>(params.data);
    wide->assign(f, f + p.param_count);
}

class CpuBackend final : public Backend {
public:
    slay_backend_t kind() const override { return SLAY_BACKEND_CPU; }

    Status check_stream(void* stream) const override {
        if (stream)
            return error(SLAY_STATUS_BACKEND_MISMATCH, "stream must be NULL on the CPU backend");
        return Status();
    }

    Status workspace_size(const Plan& p, slay_pass_t pass, int64_t, int64_t seq_len,
                          size_t* bytes) const override {
        ScratchCarver count(nullptr);
        if (pass == SLAY_PASS_SAMPLE)
            carve_sample_scratch(p, count);
        else
            carve_head_scratch(p, pass, seq_len, count);
        if (count.overflowed())
            return error(SLAY_STATUS_INVALID_VALUE, "the workspace for seq_len=", seq_len,
                         " does not fit in size_t");
        *bytes = count.used();
        return Status();
    }

    Status forward(const Plan& p, const FwdCall& c, void* workspace, void*) override {
        const int64_t Dv = p.cfg.value_dim, F = p.features;
        return for_each_head(p, c, SLAY_PASS_FORWARD, workspace,
                             [&](const cpu::Reference& ref, const HeadScratch& s, const HeadPlace& at) {
                                 const cpu::HeadSlice slice{at.T, at.h, c.position_offset, s.q, s.k, s.v};
                                 ref.forward(slice, c.has_initial_state ? s.state_in : nullptr, s.out,
                                             c.has_final_state ? s.state_out : nullptr,
                                             c.has_row_stats ? s.row_stats : nullptr);
                                 if (c.merge) {
                                     gather(c.out, at.batch, at.h, at.first, at.T, Dv, s.out_prev);
                                     gather(c.row_stats, at.batch, at.h, at.first, at.T, 1, s.row_stats_prev);
                                     cpu::merge_exact_rows(p.cfg, at.T, s.out_prev, s.row_stats_prev, s.out,
                                                           s.row_stats);
                                 }
                                 scatter(s.out, at.batch, at.h, at.first, at.T, Dv, c.out);
                                 if (c.has_row_stats)  // (B, H, T): the 4th index is 0
                                     scatter(s.row_stats, at.batch, at.h, at.first, at.T, 1, c.row_stats);
                                 if (c.has_final_state)
                                     scatter(s.state_out, at.seq, at.h, 0, F, Dv + 1, c.final_state);
                             });
    }

    Status backward(const Plan& p, const BwdCall& c, void* workspace, void*) override {
        const int64_t D = p.cfg.head_dim, Dv = p.cfg.value_dim, F = p.features;
        return for_each_head(p, c, SLAY_PASS_BACKWARD, workspace,
                             [&](const cpu::Reference& ref, const HeadScratch& s, const HeadPlace& at) {
                                 gather(c.dout, at.batch, at.h, at.first, at.T, Dv, s.dout);
                                 if (c.has_dfinal_state)
                                     gather(c.dfinal_state, at.seq, at.h, 0, F, Dv + 1, s.dstate_out);
                                 if (c.has_row_stats)  // (B, H, T): the 4th index is 0
                                     gather(c.row_stats, at.batch, at.h, at.first, at.T, 1, s.row_stats);
                                 const cpu::HeadSlice slice{at.T, at.h, c.position_offset, s.q, s.k, s.v};
                                 ref.backward(slice, c.has_initial_state ? s.state_in : nullptr, s.dout,
                                              c.has_dfinal_state ? s.dstate_out : nullptr, s.dq, s.dk, s.dv,
                                              c.has_dinitial_state ? s.dstate_in : nullptr,
                                              c.has_row_stats ? s.row_stats : nullptr);
                                 scatter(s.dq, at.batch, at.h, at.first, at.T, D, c.dq);
                                 if (c.has_dinitial_state)
                                     scatter(s.dstate_in, at.seq, at.h, 0, F, Dv + 1, c.dinitial_state);
                                 if (!s.dk_group) {
                                     scatter(s.dk, at.batch, at.kv_head, at.first, at.T, D, c.dk);
                                     scatter(s.dv, at.batch, at.kv_head, at.first, at.T, Dv, c.dv);
                                     return;
                                 }
                                 add_to_group(s.dk, at.T * D, at.group_start, s.dk_group);
                                 add_to_group(s.dv, at.T * Dv, at.group_start, s.dv_group);
                                 if (at.group_end) {
                                     scatter(s.dk_group, at.batch, at.kv_head, at.first, at.T, D, c.dk);
                                     scatter(s.dv_group, at.batch, at.kv_head, at.first, at.T, Dv, c.dv);
                                 }
                             });
    }

    Status read_offsets(const TensorView& o, void*, std::vector<int64_t>* out) const override {
        out->resize(static_cast<size_t>(o.shape[0]));
        for (int64_t i = 0; i < o.shape[0]; ++i) {
            const int64_t at = i * o.strides[0];
            (*out)[i] = o.dtype == SLAY_DTYPE_INT32 ? static_cast<const int32_t*>(o.data)[at]
                                                    : static_cast<const int64_t*>(o.data)[at];
        }
        return Status();
    }

    Status sample(const Plan& p, uint64_t seed, uint64_t offset, const TensorView& params, void* workspace,
                  void*) override {
        if (p.param_count == 0) return Status();
        ScratchCarver carver(workspace);
        const SampleScratch s = carve_sample_scratch(p, carver);
        curandGenerator_t gen = nullptr;
        SLAY_CURAND(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10));
        // The generator is released on every path out of this function.
        std::unique_ptr<curandGenerator_st, curandStatus_t (*)(curandGenerator_t)> guard(gen, curandDestroyGenerator);
        SLAY_CURAND(curandSetPseudoRandomGeneratorSeed(gen, seed));
        float* out = static_cast<float*>(params.data);
        for (size_t i = 0; i < p.segments.size(); ++i) {
            const ParamSegment& seg = p.segments[i];
            const SegmentKind kind = segment_kind(seg);
            const size_t n = static_cast<size_t>(seg.count());
            if (raw_draw(kind) == RawDraw::Derived) {
                SLAY_TRY(derive_nystrom(p, out, s, out + seg.offset));
                continue;
            }
            SLAY_CURAND(curandSetGeneratorOffset(gen, offset + i * kSegmentStride));
            if (raw_draw(kind) == RawDraw::Normal)
                SLAY_CURAND(curandGenerateNormal(gen, s.raw, (n + 1) / 2 * 2, 0.0f, 1.0f));
            else
                SLAY_CURAND(curandGenerateUniform(gen, s.raw, n));
            finish_segment(p.cfg, seg, s.raw);
            std::copy(s.raw, s.raw + n, out + seg.offset);
        }
        return Status();
    }

private:
    // group += x (group = x for the group's first head).
    static void add_to_group(const double* x, int64_t n, bool first, double* group) {
        for (int64_t i = 0; i < n; ++i) group[i] = first ? x[i] : group[i] + x[i];
    }

    // Widens the parameters, builds the Reference, then for every (sequence,
    // query head), heads in order, gathers q, k, v and the initial state into
    // the scratch and runs pass_body(ref, scratch, place). A head's input
    // state is read completely before its body writes anything, so
    // final_state may alias initial_state.
    template <typename PassBody>
    static Status for_each_head(const Plan& p, const CallInputs& c, slay_pass_t pass, void* workspace,
                                PassBody&& pass_body) {
        std::vector<double> params;
        load_params(p, c.has_params, c.params, &params);
        const cpu::Reference ref(p.cfg, params.empty() ? nullptr : params.data());
        ScratchCarver carver(workspace);
        const HeadScratch s = carve_head_scratch(p, pass, c.seq_len, carver);
        const int64_t D = p.cfg.head_dim, Dv = p.cfg.value_dim, F = p.features;
        const int64_t group = p.cfg.num_heads / p.cfg.num_kv_heads;
        for (int64_t n = 0; n < c.batch; ++n)
            for (int64_t h = 0; h < p.cfg.num_heads; ++h) {
                const HeadPlace at{n,        h,           h / group,        c.tensor_batch(n), c.first_token(n),
                                   c.length(n), h % group == 0, h % group == group - 1};
                gather(c.q, at.batch, h, at.first, at.T, D, s.q);
                gather(c.k, at.batch, at.kv_head, at.first, at.T, D, s.k);
                gather(c.v, at.batch, at.kv_head, at.first, at.T, Dv, s.v);
                if (c.has_initial_state) gather(c.initial_state, n, h, 0, F, Dv + 1, s.state_in);
                pass_body(ref, s, at);
            }
        return Status();
    }

    // W of SPEC A.14 from the anchors already written to the parameters.
    static Status derive_nystrom(const Plan& p, const float* params, const SampleScratch& s, float* w_out) {
        const ParamSegment* anchors = nullptr;
        for (const ParamSegment& seg : p.segments)
            if (segment_kind(seg) == SegmentKind::UnitRows) anchors = &seg;
        if (!anchors) return error(SLAY_STATUS_INTERNAL_ERROR, "nystrom_w has no anchors segment before it");
        const int64_t P = p.cfg.poly_dim, D = p.cfg.head_dim;
        for (int64_t i = 0; i < P * D; ++i) s.anchors[i] = params[anchors->offset + i];
        cpu::nystrom_matrix(s.anchors, P, D, p.cfg.nystrom_reg, s.nystrom_w);
        for (int64_t i = 0; i < P * P; ++i) w_out[i] = static_cast<float>(s.nystrom_w[i]);
        return Status();
    }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace slay
