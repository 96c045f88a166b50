// cpu_backend.cpp -- the CPU reference backend: for every (b, h) it gathers
// the head's slices of q, k (T, D), v (T, Dv) and the state (F, Dv+1) from
// the caller's strided tensors into fp64 rows, runs the fp64 Reference, and
// scatters out (T, Dv) / gradients / states back in the caller's dtype.
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
#include "cpu/reference.hpp"

namespace slay {
namespace {

// Per-head fp64 slices of one call. Fields a pass does not use stay null.
struct HeadScratch {
    double *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr;
    double *dout = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
    double *state_in = nullptr, *state_out = nullptr, *dstate_out = nullptr, *dstate_in = nullptr;
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
    } else {
        s.dout = w.take<double>(T, Dv);
        s.dq = w.take<double>(T, D);
        s.dk = w.take<double>(T, D);
        s.dv = w.take<double>(T, Dv);
        s.dstate_out = w.take<double>(S);
        s.dstate_in = w.take<double>(S);
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
    if (p.cfg.variant == SLAY_ATTN_SLAY_NYSTROM) {
        s.anchors = w.take<double>(p.cfg.poly_dim, p.cfg.head_dim);
        s.nystrom_w = w.take<double>(p.cfg.poly_dim, p.cfg.poly_dim);
    }
    return s;
}

// (rows, cols) slice of head (b, h) of a rank-4 tensor <-> fp64 row-major.
void gather(const TensorView& t, int64_t b, int64_t h, int64_t rows, int64_t cols, double* dst) {
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = load_element(t.data, t.dtype, t.offset(b, h, i, j));
}

void scatter(const double* src, int64_t b, int64_t h, int64_t rows, int64_t cols, const TensorView& t) {
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) store_element(t.data, t.dtype, t.offset(b, h, i, j), src[i * cols + j]);
}

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
        const int64_t T = c.seq_len, Dv = p.cfg.value_dim, F = p.features;
        return for_each_head(p, c, SLAY_PASS_FORWARD, workspace,
                             [&](const cpu::Reference& ref, const HeadScratch& s, int64_t b, int64_t h) {
                                 const cpu::HeadSlice slice{T, h, c.position_offset, s.q, s.k, s.v};
                                 ref.forward(slice, c.has_initial_state ? s.state_in : nullptr, s.out,
                                             c.has_final_state ? s.state_out : nullptr);
                                 scatter(s.out, b, h, T, Dv, c.out);
                                 if (c.has_final_state) scatter(s.state_out, b, h, F, Dv + 1, c.final_state);
                             });
    }

    Status backward(const Plan& p, const BwdCall& c, void* workspace, void*) override {
        const int64_t T = c.seq_len, D = p.cfg.head_dim, Dv = p.cfg.value_dim, F = p.features;
        return for_each_head(p, c, SLAY_PASS_BACKWARD, workspace,
                             [&](const cpu::Reference& ref, const HeadScratch& s, int64_t b, int64_t h) {
                                 gather(c.dout, b, h, T, Dv, s.dout);
                                 if (c.has_dfinal_state) gather(c.dfinal_state, b, h, F, Dv + 1, s.dstate_out);
                                 const cpu::HeadSlice slice{T, h, c.position_offset, s.q, s.k, s.v};
                                 ref.backward(slice, c.has_initial_state ? s.state_in : nullptr, s.dout,
                                              c.has_dfinal_state ? s.dstate_out : nullptr, s.dq, s.dk, s.dv,
                                              c.has_dinitial_state ? s.dstate_in : nullptr);
                                 scatter(s.dq, b, h, T, D, c.dq);
                                 scatter(s.dk, b, h, T, D, c.dk);
                                 scatter(s.dv, b, h, T, Dv, c.dv);
                                 if (c.has_dinitial_state) scatter(s.dstate_in, b, h, F, Dv + 1, c.dinitial_state);
                             });
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
    // Widens the parameters, builds the
    // Reference, then for every (b, h) gathers q, k, v and the initial state
    // into the scratch and runs pass_body(ref, scratch, b, h). A head's input
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
        const int64_t T = c.seq_len, D = p.cfg.head_dim, Dv = p.cfg.value_dim, F = p.features;
        for (int64_t b = 0; b < c.batch; ++b)
            for (int64_t h = 0; h < p.cfg.num_heads; ++h) {
                gather(c.q, b, h, T, D, s.q);
                gather(c.k, b, h, T, D, s.k);
                gather(c.v, b, h, T, Dv, s.v);
                if (c.has_initial_state) gather(c.initial_state, b, h, F, Dv + 1, s.state_in);
                pass_body(ref, s, b, h);
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
