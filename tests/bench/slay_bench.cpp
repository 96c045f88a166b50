// slay_bench.cpp -- libslay's benchmark suite (issue 5; SPEC §E), on the
// public C ABI. q, k, v are (B,H,T,D), Dv = D. Modes:
//   scaling      latency (fwd or fwd+bwd; median/std/min/mean over repeats),
//                tracked memory and tokens/s for variants over T (doubling up
//                to 131072 by default) until OOM, which is marked; a variant
//                stops growing T after an OOM or a call slower than
//                --max-call-s, the other variants go on.
//   quality      rel L2, cosine, MSE (SPEC §E.3) of linearized variants
//                against yat_spherical on identical q, k, v, over T, D and
//                (R, M, P) triples.
//   budget       the R x M x P sweep (SPEC §E.4): error, latency, memory, and
//                the Pareto fronts (error vs latency, error vs memory).
//   max-context  per variant, the longest T whose run fits --budget-mb,
//                found by doubling then bisection with real runs.
// Output: Markdown tables on stdout (the paper's scaling format: T rows x method columns;
// kernel/tier/.../avg_ms/std_ms/min_ms; seq_len x d_model grids),
// JSON with every raw number (--json), progress on stderr. Memory is what the
// bench allocates for the call (tensors, parameters, workspace: libslay never
// allocates in a call), with cudaMemGetInfo's drop as a cross-check on CUDA.
// Run slay-bench --help for the options.
#include "bench_output.hpp"
#include "bench_runtime.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace bench;

namespace {

const char* kUsage = R"(usage: slay-bench --mode scaling|quality|budget|max-context [options]
  --backend cpu|cuda     (default cuda)          --device N       CUDA ordinal (0)
  --variants a,b,...     libslay variant names   (default depends on the mode)
  --B N --H N            batch, heads            --D a,b,...      head dims
  --T list               "128,256" or "128:131072" (doubling)
  --dtype fp32|bf16|fp16 --pass fwd|fwdbwd       --bidirectional  (default causal)
  --R --M --P a,b,...    feature budget (scaling/max-context use the first of each;
                         budget sweeps all)      --rmp RxMxP,...  quality triples
  --chunk N --epsilon X  --allow-tf32
  --warmup N --repeats N --seed N
  --seeds N              quality: seeds seed..seed+N-1 (inputs and parameters); the table gives
                         the mean (and min..max) over them (default 1)
  --inputs a,b,...       quality: q, k distributions, gaussian (N(0, I) rows) or clustered:C
                         (norm sqrt(D), cosine C to one shared direction per head); default gaussian
  --max-call-s X         scaling/max-context: stop growing T for a variant after a slower call (default 60)
  --time-limit-s X       stop starting runs after X seconds; the rest are marked SKIPPED (default: none)
  --budget-mb X          max-context memory budget (default 8192)
  --T-max N --granularity N   max-context search cap and step (defaults 131072, 256)
  --no-cpu-fallback      quality/budget: report NOT_SUPPORTED instead of computing that
                         variant on the CPU backend when the CUDA backend lacks it
  --json FILE --markdown FILE
Defaults per mode (SPEC §E): scaling B=1 H=8 D=32 T=128:131072 (the paper's scaling setup);
quality B=1 H=4 D=16 T=128,256,512, rmp 2x8x8,2x16x16,2x32x32 (§E.3a);
budget B=4 H=4 D=16 T=256, R 1,2,4,8 x M 8,16,32,64 x P 8,16,32,64 (§E.4);
max-context B=1 H=8 D=32, fwd, 8192 MB (§E.5).
)";

const std::vector<std::string> kLinearized = {"slay_anchor", "slay_laplace", "slay_hadamard", "slay_tensorsketch",
                                              "slay_random_maclaurin", "slay_nystrom", "performer", "linear",
                                              "cosformer", "rff", "slay_poly2"};
const std::vector<std::string> kScalingDefault = {"standard", "yat_spherical", "slay_anchor", "slay_laplace",
                                                  "performer", "linear", "cosformer"};

struct Options {
    std::string mode, backend = "cuda", json, markdown;
    int device = 0;
    std::vector<std::string> variants;
    int64_t B = -1, H = -1;
    std::vector<int64_t> T, D, R, M, P;
    std::vector<std::array<int64_t, 3>> rmp;
    slay_dtype_t dtype = SLAY_DTYPE_FLOAT32;
    bool backward = false, causal = true, allow_tf32 = false, cpu_fallback = true;
    int64_t chunk = 0, T_max = 131072, granularity = 256;
    double epsilon = 1e-6, max_call_s = 60, budget_mb = 8192, time_limit_s = 0;
    int warmup = 3, repeats = 10;
    uint64_t seed = 42;
    int64_t seeds = 1;
    std::vector<std::string> inputs;  // quality: "gaussian" or "clustered:C"
    double cluster_cos = 0;           // quality: the entry being run (cluster_cos_of)
    std::string command;
};

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, sep);)
        if (!item.empty()) out.push_back(item);
    return out;
}

int64_t to_int(const std::string& s) {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used != s.size()) throw std::invalid_argument("not an integer: " + s);
    return v;
}

std::vector<int64_t> int_list(const std::string& s) {
    auto colon = s.find(':');
    std::vector<int64_t> out;
    if (colon != std::string::npos) {  // a doubling range lo:hi
        for (int64_t t = to_int(s.substr(0, colon)), hi = to_int(s.substr(colon + 1)); t <= hi; t *= 2)
            out.push_back(t);
        return out;
    }
    for (const auto& item : split(s, ',')) out.push_back(to_int(item));
    return out;
}

// RunOptions::cluster_cos of an --inputs entry: 0 for "gaussian", C for
// "clustered:C" with 0 < C < 1.
double cluster_cos_of(const std::string& inputs) {
    if (inputs == "gaussian") return 0;
    const std::string prefix = "clustered:";
    if (inputs.rfind(prefix, 0) == 0) {
        const double c = std::stod(inputs.substr(prefix.size()));
        if (c > 0 && c < 1) return c;
    }
    throw std::invalid_argument("--inputs entries are gaussian or clustered:C with 0 < C < 1, got '" + inputs + "'");
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 0; i < argc; ++i) o.command += (i ? " " : "") + std::string(argv[i]);
    std::map<std::string, std::string> kv;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::cout << kUsage;
            std::exit(0);
        } else if (a == "--bidirectional") {
            o.causal = false;
        } else if (a == "--allow-tf32") {
            o.allow_tf32 = true;
        } else if (a == "--no-cpu-fallback") {
            o.cpu_fallback = false;
        } else if (a.rfind("--", 0) == 0 && i + 1 < argc) {
            kv[a.substr(2)] = argv[++i];
        } else {
            throw std::invalid_argument("unexpected argument '" + a + "'");
        }
    }
    auto take = [&](const char* key) -> const std::string* {
        auto it = kv.find(key);
        if (it == kv.end()) return nullptr;
        static std::string value;
        value = it->second;
        kv.erase(it);
        return &value;
    };
    if (auto v = take("mode")) o.mode = *v;
    if (auto v = take("backend")) o.backend = *v;
    if (auto v = take("device")) o.device = static_cast<int>(to_int(*v));
    if (auto v = take("variants")) o.variants = split(*v, ',');
    if (auto v = take("B")) o.B = to_int(*v);
    if (auto v = take("H")) o.H = to_int(*v);
    if (auto v = take("T")) o.T = int_list(*v);
    if (auto v = take("D")) o.D = int_list(*v);
    if (auto v = take("R")) o.R = int_list(*v);
    if (auto v = take("M")) o.M = int_list(*v);
    if (auto v = take("P")) o.P = int_list(*v);
    if (auto v = take("rmp"))
        for (const auto& t : split(*v, ',')) {
            auto p = split(t, 'x');
            if (p.size() != 3) throw std::invalid_argument("--rmp wants RxMxP triples, got '" + t + "'");
            o.rmp.push_back({to_int(p[0]), to_int(p[1]), to_int(p[2])});
        }
    if (auto v = take("dtype"))
        if (!parse_dtype(*v, &o.dtype)) throw std::invalid_argument("unknown dtype " + *v);
    if (auto v = take("pass")) {
        if (*v != "fwd" && *v != "fwdbwd") throw std::invalid_argument("--pass is fwd or fwdbwd");
        o.backward = *v == "fwdbwd";
    }
    if (auto v = take("chunk")) o.chunk = to_int(*v);
    if (auto v = take("epsilon")) o.epsilon = std::stod(*v);
    if (auto v = take("warmup")) o.warmup = static_cast<int>(to_int(*v));
    if (auto v = take("repeats")) o.repeats = static_cast<int>(to_int(*v));
    if (auto v = take("seed")) o.seed = static_cast<uint64_t>(to_int(*v));
    if (auto v = take("seeds")) o.seeds = to_int(*v);
    if (auto v = take("inputs")) o.inputs = split(*v, ',');
    if (o.seeds < 1) throw std::invalid_argument("--seeds wants N >= 1");
    for (const auto& in : o.inputs) cluster_cos_of(in);  // throws for a malformed one
    if (auto v = take("max-call-s")) o.max_call_s = std::stod(*v);
    if (auto v = take("budget-mb")) o.budget_mb = std::stod(*v);
    if (auto v = take("time-limit-s")) o.time_limit_s = std::stod(*v);
    if (auto v = take("T-max")) o.T_max = to_int(*v);
    if (auto v = take("granularity")) o.granularity = to_int(*v);
    if (auto v = take("json")) o.json = *v;
    if (auto v = take("markdown")) o.markdown = *v;
    if (!kv.empty()) throw std::invalid_argument("unknown option --" + kv.begin()->first);
    if (o.backend != "cpu" && o.backend != "cuda") throw std::invalid_argument("--backend is cpu or cuda");

    // Mode defaults (SPEC §E).
    auto dflt = [](auto& field, auto value) {
        if (field.empty()) field = value;
    };
    auto dflt_int = [](int64_t& field, int64_t value) {
        if (field < 0) field = value;
    };
    if (o.mode == "scaling" || o.mode == "max-context") {
        dflt(o.variants, kScalingDefault);
        dflt_int(o.B, 1), dflt_int(o.H, 8), dflt(o.D, std::vector<int64_t>{32});
        dflt(o.T, o.mode == "scaling" ? int_list("128:131072") : std::vector<int64_t>{256});
    } else if (o.mode == "quality") {
        dflt(o.variants, kLinearized);
        dflt_int(o.B, 1), dflt_int(o.H, 4), dflt(o.D, std::vector<int64_t>{16});
        dflt(o.T, std::vector<int64_t>{128, 256, 512});
        dflt(o.rmp, std::vector<std::array<int64_t, 3>>{{2, 8, 8}, {2, 16, 16}, {2, 32, 32}});
        dflt(o.inputs, std::vector<std::string>{"gaussian"});
    } else if (o.mode == "budget") {
        dflt(o.variants, std::vector<std::string>{"slay_anchor"});
        dflt_int(o.B, 4), dflt_int(o.H, 4), dflt(o.D, std::vector<int64_t>{16});
        dflt(o.T, std::vector<int64_t>{256});
        dflt(o.R, std::vector<int64_t>{1, 2, 4, 8}), dflt(o.M, std::vector<int64_t>{8, 16, 32, 64});
        dflt(o.P, std::vector<int64_t>{8, 16, 32, 64});
    } else {
        throw std::invalid_argument("--mode is scaling, quality, budget or max-context");
    }
    dflt(o.R, std::vector<int64_t>{2}), dflt(o.M, std::vector<int64_t>{16}), dflt(o.P, std::vector<int64_t>{32});
    for (auto& v : o.variants) {
        std::string c = canonical_variant(v);
        if (c.empty()) throw std::invalid_argument("unknown variant " + v);
        v = c;
    }
    return o;
}

// ------------------------------------------------------------------ progress

class Progress {
public:
    Progress(std::string mode, size_t total) : mode_(std::move(mode)), total_(total) {}
    void step(const std::string& what) {
        ++done_;
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        std::string of = total_ ? "/" + std::to_string(total_) : "";
        std::fprintf(stderr, "[%s %zu%s %6.1fs] %s\n", mode_.c_str(), done_, of.c_str(), s, what.c_str());
        std::fflush(stderr);
    }
    void set_total(size_t total) { total_ = total; }

private:
    std::string mode_;
    size_t total_, done_ = 0;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

std::string outcome(const Measurement& m) {
    if (m.status != "ok") return m.status + (m.message.empty() ? "" : " (" + m.message + ")");
    return fixed(stats_of(m.total_ms).median, 3) + " ms, " + fixed(m.peak_bytes / 1048576.0, 1) + " MB";
}

// ------------------------------------------------------------------ records

double mb(double bytes) { return bytes / 1048576.0; }

Record measurement_row(const Config& c, const Shape& s, bool backward, const Measurement& m, const std::string& backend) {
    Record r;
    auto opt = [&](slay_attr_t attr, int64_t v) { return variant_uses(c.variant, attr) ? Value(v) : Value(); };
    r.set("variant", c.variant).set("backend", backend).set("dtype", dtype_name(c.dtype))
        .set("pass", backward ? "fwdbwd" : "fwd").set("causal", c.causal)
        .set("B", s.B).set("H", s.H).set("T", s.T).set("D", s.D)
        .set("R", opt(SLAY_ATTR_NUM_QUAD_NODES, c.R)).set("M", opt(SLAY_ATTR_NUM_FEATURES, c.M))
        .set("P", opt(SLAY_ATTR_POLY_DIM, c.P)).set("chunk", c.chunk > 0 ? Value(c.chunk) : Value())
        .set("feature_dim", m.feature_dim).set("param_count", m.param_count).set("status", m.status);
    if (!m.message.empty()) r.set("message", m.message);
    if (m.status == "ok") {
        Stats f = stats_of(m.fwd_ms), t = stats_of(m.total_ms);
        r.set("ms", t.median).set("std_ms", t.std).set("min_ms", t.min).set("mean_ms", t.mean)
            .set("fwd_ms", f.median).set("fwd_std_ms", f.std).set("fwd_min_ms", f.min);
        if (backward) {
            Stats b = stats_of(m.bwd_ms);
            r.set("bwd_ms", b.median).set("bwd_std_ms", b.std).set("bwd_min_ms", b.min);
        }
        r.set("tokens_per_s", s.B * s.T / (t.median * 1e-3)).set("times_ms", m.total_ms);
        if (backward) r.set("fwd_times_ms", m.fwd_ms).set("bwd_times_ms", m.bwd_ms);
        r.set("peak_mb", mb(m.peak_bytes)).set("forward_mb", mb(m.forward_bytes))
            .set("tensor_bytes", m.tensor_bytes).set("param_bytes", m.param_bytes)
            .set("workspace_bytes", m.workspace_bytes).set("peak_bytes", m.peak_bytes)
            .set("meminfo_delta_bytes", m.meminfo_delta >= 0 ? Value(m.meminfo_delta) : Value())
            .set("params_sampled_on", m.params_sampled_on);
    }
    return r;
}

std::string iso_now() {
    std::time_t t = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", std::localtime(&t));
    return buf;
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
}

std::string join(const std::vector<int64_t>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

Record meta_record(const Options& o, const DeviceInfo& d) {
    uint32_t v = slay_get_version();
    Record r;
    r.set("tool", "slay-bench").set("mode", o.mode).set("date", iso_now()).set("command", o.command)
        .set("libslay_version", std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
                                    std::to_string(v % 100))
        .set("libslay_abi", static_cast<int64_t>(slay_get_abi_version()))
        .set("backend", d.backend).set("device", d.name).set("driver", d.driver).set("cuda_runtime", d.cuda_runtime)
        .set("compute_capability", d.compute_capability).set("device_memory_mb", mb(d.total_memory)).set("host", d.host)
        .set("dtype", dtype_name(o.dtype)).set("pass", o.backward ? "fwdbwd" : "fwd").set("causal", o.causal)
        .set("B", o.B).set("H", o.H).set("T", join(o.T)).set("D", join(o.D))
        .set("R", join(o.R)).set("M", join(o.M)).set("P", join(o.P)).set("chunk", o.chunk).set("epsilon", o.epsilon)
        .set("allow_tf32", o.allow_tf32).set("warmup", o.warmup).set("repeats", o.repeats)
        .set("seed", static_cast<int64_t>(o.seed)).set("seeds", o.seeds).set("inputs", joined(o.inputs))
        .set("timing", d.backend == "cuda" ? "CUDA events on a non-blocking stream, per repeat"
                                           : "std::chrono::steady_clock, per repeat")
        .set("memory", "bytes the bench allocates for the call: q, k, v, out (+dout, dq, dk, dv), parameters, "
                       "workspace; libslay allocates nothing in a call");
    return r;
}

std::string device_line(const Record& meta) {
    std::string s = "Device: " + meta.str("device") + " (" + meta.str("backend");
    if (!meta.str("driver").empty()) s += "; driver " + meta.str("driver");
    if (!meta.str("cuda_runtime").empty()) s += "; CUDA runtime " + meta.str("cuda_runtime");
    return s + "), libslay " + meta.str("libslay_version") + ", " + meta.str("dtype") + ", " + meta.str("pass") +
           (meta.find("causal")->boolean ? ", causal" : ", bidirectional") + ", " + meta.str("date") + "\n\n";
}

// A cell: the value, or what happened instead ("OOM", "n/s" = not supported, "—").
std::string cell(const Record* r, const std::string& key, int digits) {
    if (!r) return "—";
    std::string st = r->str("status");
    if (st == "OOM" || st == "SKIPPED_AFTER_OOM") return "OOM";
    if (st == "NOT_SUPPORTED") return "n/s";
    if (st != "ok" || !r->find(key)) return "—";
    return fixed(r->num(key), digits);
}

// ------------------------------------------------------------------ modes

struct Context {
    Options o;
    Runner& runner;
    std::unique_ptr<Runner> cpu;  // quality/budget fallback for variants the CUDA backend lacks
    std::vector<Record> rows;
    std::string markdown;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

    // True once --time-limit-s has passed: no new run starts.
    bool over_time() const {
        return o.time_limit_s > 0 &&
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > o.time_limit_s;
    }
    static Measurement skipped_for_time() {
        Measurement m;
        m.status = "SKIPPED";
        m.message = "--time-limit-s reached";
        return m;
    }

    Config config(const std::string& variant, int64_t R, int64_t M, int64_t P) const {
        Config c;
        c.variant = variant, c.dtype = o.dtype, c.causal = o.causal, c.R = R, c.M = M, c.P = P;
        c.chunk = o.chunk, c.epsilon = o.epsilon, c.allow_tf32 = o.allow_tf32;
        return c;
    }
    RunOptions run_options() const {
        RunOptions r;
        r.backward = o.backward, r.warmup = o.warmup, r.repeats = o.repeats, r.seed = o.seed;
        r.cluster_cos = o.cluster_cos;
        return r;
    }
    const char* backend_name() const { return runner.backend() == SLAY_BACKEND_CUDA ? "cuda" : "cpu"; }

    // Runs on the bench's backend, or on the CPU when the CUDA backend lacks
    // the variant and fallback is on; `backend` says where it ran.
    Measurement run_or_fallback(const Config& c, const Shape& s, const RunOptions& r, std::string* backend) {
        *backend = backend_name();
        if (over_time()) return skipped_for_time();
        Measurement m = runner.run(c, s, r);
        if (m.status == "NOT_SUPPORTED" && o.cpu_fallback && runner.backend() == SLAY_BACKEND_CUDA) {
            if (!cpu) cpu = std::make_unique<Runner>(SLAY_BACKEND_CPU, 0);
            m = cpu->run(c, s, r);
            *backend = "cpu";
        }
        return m;
    }
};

void scaling(Context& ctx) {
    const Options& o = ctx.o;
    Progress progress("scaling", o.variants.size() * o.T.size() * o.D.size());
    std::map<std::pair<std::string, int64_t>, std::string> stopped;  // (variant, D) -> why
    // T outermost: a time limit then cuts the longest sequences of every variant alike.
    for (int64_t T : o.T)
        for (const auto& variant : o.variants)
            for (int64_t D : o.D) {
                Config c = ctx.config(variant, o.R[0], o.M[0], o.P[0]);
                Shape s{o.B, o.H, T, D};
                std::string label = variant + " T=" + std::to_string(T) + " D=" + std::to_string(D);
                auto& why = stopped[{variant, D}];
                Measurement m;
                if (!why.empty()) {
                    m.status = why == "OOM" ? "SKIPPED_AFTER_OOM" : "SKIPPED";
                    m.message = "a smaller T " + (why == "OOM" ? std::string("ran out of memory") : why);
                } else if (ctx.over_time()) {
                    m = Context::skipped_for_time();
                } else {
                    m = ctx.runner.run(c, s, ctx.run_options());
                    if (m.status == "OOM") why = "OOM";
                    else if (m.status == "ok" && stats_of(m.total_ms).median > o.max_call_s * 1e3)
                        why = "took longer than --max-call-s";
                }
                progress.step(label + ": " + outcome(m));
                ctx.rows.push_back(measurement_row(c, s, o.backward, m, ctx.backend_name()));
            }

    auto find = [&](const std::string& v, int64_t T, int64_t D) -> const Record* {
        for (const auto& r : ctx.rows)
            if (r.str("variant") == v && r.num("T") == T && r.num("D") == D) return &r;
        return nullptr;
    };
    // Document 000: T rows x method columns.
    struct Metric { const char* title; const char* key; int digits; };
    for (int64_t D : o.D) {
        for (Metric mt : {Metric{"Latency (ms, median)", "ms", 2}, Metric{"Memory (MB)", "peak_mb", 2},
                          Metric{"Throughput (tokens/s)", "tokens_per_s", 0}}) {
            std::vector<std::string> header{"T"};
            for (const auto& v : o.variants) header.push_back(v);
            std::vector<std::vector<std::string>> rows;
            for (int64_t T : o.T) {
                std::vector<std::string> row{std::to_string(T)};
                for (const auto& v : o.variants) row.push_back(cell(find(v, T, D), mt.key, mt.digits));
                rows.push_back(row);
            }
            ctx.markdown += "### " + std::string(mt.title) + ", B=" + std::to_string(o.B) + " H=" +
                            std::to_string(o.H) + " D=" + std::to_string(D) + "\n\n" + markdown_table(header, rows) + "\n";
        }
    }
    // Document 003: one row per (kernel, tier); failures read 0 as there.
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : ctx.rows) {
        bool ok = r.str("status") == "ok";
        std::string T = std::to_string(static_cast<int64_t>(r.num("T")));
        std::string tier = r.str("dtype") + "-" + r.str("pass") + "-seq" + T + "-hd" +
                           std::to_string(static_cast<int64_t>(r.num("D"))) + "-" +
                           std::to_string(o.H) + "h-" + std::to_string(o.B) + "b";
        rows.push_back({r.str("variant"), tier, T, T, std::to_string(static_cast<int64_t>(r.num("D"))),
                        std::to_string(o.H), std::to_string(o.B), ok ? fixed(r.num("mean_ms"), 4) : "0",
                        ok ? fixed(r.num("std_ms"), 4) : "0", ok ? fixed(r.num("min_ms"), 4) : "0"});
    }
    ctx.markdown += "### Sweep (avg/std/min over " + std::to_string(o.repeats) + " repeats; 0 = failed or OOM)\n\n" +
                    markdown_table({"Kernel", "Tier", "Q_N", "K_N", "head_dim", "heads", "batch", "avg_ms", "std_ms",
                                    "min_ms"}, rows) + "\n";
    // Document 004: per variant, seq_len x d_model grids (d_model = H * D).
    for (const auto& v : o.variants) {
        std::vector<std::string> header{"seq_len \\ d_model"};
        for (int64_t D : o.D) header.push_back(std::to_string(o.H * D));
        std::vector<Metric> grids{{"Forward pass timing (ms)", "fwd_ms", 2}};
        if (o.backward) grids.push_back({"Backward pass timing (ms)", "bwd_ms", 2});
        grids.push_back({o.backward ? "Memory before backward (MB)" : "Memory (MB)", "forward_mb", 2});
        for (Metric mt : grids) {
            std::vector<std::vector<std::string>> g;
            for (int64_t T : o.T) {
                std::vector<std::string> row{std::to_string(T)};
                for (int64_t D : o.D) row.push_back(cell(find(v, T, D), mt.key, mt.digits));
                g.push_back(row);
            }
            ctx.markdown += "#### " + v + ": " + mt.title + "\n\n" + markdown_table(header, g) + "\n";
        }
    }
}

struct ErrorMetrics {
    double rel_l2, cos, mse;
};

ErrorMetrics compare(const std::vector<float>& y, const std::vector<float>& ref) {
    double diff2 = 0, ref2 = 0, y2 = 0, dot = 0;
    for (size_t i = 0; i < y.size(); ++i) {
        double d = static_cast<double>(y[i]) - ref[i];
        diff2 += d * d, ref2 += static_cast<double>(ref[i]) * ref[i], y2 += static_cast<double>(y[i]) * y[i];
        dot += static_cast<double>(y[i]) * ref[i];
    }
    return {std::sqrt(diff2 / ref2), dot / std::sqrt(y2 * ref2), diff2 / static_cast<double>(y.size())};
}

// The feature budget a variant gets for a (R, M, P) triple: Laplace/Hadamard
// get M*P features per node and performer/rff R*M*P (capped at 4096), so their
// feature dimension matches the Kronecker variants' R*P*M (SPEC §E.3a);
// slay_poly2 gets R*M*P as its budget (its F is at most that).
Config budget_config(const Context& ctx, const std::string& v, int64_t R, int64_t M, int64_t P) {
    if (v == "slay_laplace" || v == "slay_hadamard") return ctx.config(v, R, std::min<int64_t>(M * P, 4096), P);
    if (v == "performer" || v == "rff" || v == "slay_poly2")
        return ctx.config(v, R, std::min<int64_t>(R * M * P, 4096), P);
    return ctx.config(v, R, M, P);
}

// yat_spherical's output on the same inputs (on the CPU if the backend lacks
// it). Its row is recorded (role reference) and its status reported as the
// progress step `label` whether or not it ran, so a failed reference still
// shows; false then, as there is nothing to compare the variants against.
bool reference_output(Context& ctx, const Shape& s, Progress& progress, const std::string& label,
                      std::vector<float>* out) {
    RunOptions r = ctx.run_options();
    r.keep_output = true, r.warmup = 0, r.repeats = 1;
    std::string backend;
    Config c = ctx.config("yat_spherical", 0, 0, 0);
    Measurement m = ctx.run_or_fallback(c, s, r, &backend);
    Record row = measurement_row(c, s, ctx.o.backward, m, backend);
    row.set("role", "reference");
    ctx.rows.push_back(row);
    progress.step(label + ": " + row.str("status"));
    if (m.status != "ok") return false;
    *out = std::move(m.output);
    return true;
}

void quality_row(Context& ctx, const Config& c, const Shape& s, const std::vector<float>& ref, const std::string& extra) {
    RunOptions r = ctx.run_options();
    r.keep_output = true;
    std::string backend;
    Measurement m = ctx.run_or_fallback(c, s, r, &backend);
    Record row = measurement_row(c, s, ctx.o.backward, m, backend);
    if (m.status == "ok") {
        ErrorMetrics e = compare(m.output, ref);
        row.set("rel_l2", e.rel_l2).set("cos", e.cos).set("mse", e.mse);
    }
    if (!extra.empty()) row.set("triple", extra);
    ctx.rows.push_back(row);
}

// Every (inputs, seed, T, D): yat_spherical's output, then each variant at
// each budget; rows carry "inputs" and "seed". The table gives per (inputs,
// T, D, budget, variant) the mean rel L2 (and its min..max) over the seeds.
void quality(Context& ctx) {
    const Options o = ctx.o;  // a copy: the loop below sets ctx.o's seed and inputs
    Progress progress("quality", o.inputs.size() * o.seeds * o.T.size() * o.D.size() *
                                     (1 + o.rmp.size() * o.variants.size()));
    for (const auto& inputs : o.inputs)
        for (int64_t k = 0; k < o.seeds; ++k)
            for (int64_t T : o.T)
                for (int64_t D : o.D) {
                    ctx.o.cluster_cos = cluster_cos_of(inputs);
                    ctx.o.seed = o.seed + static_cast<uint64_t>(k);
                    const std::string where = " " + inputs + " seed=" + std::to_string(ctx.o.seed) +
                                              " T=" + std::to_string(T) + " D=" + std::to_string(D);
                    const size_t first_row = ctx.rows.size();
                    Shape s{o.B, o.H, T, D};
                    std::vector<float> ref;
                    if (reference_output(ctx, s, progress, "yat_spherical" + where, &ref))
                        for (const auto& rmp : o.rmp)
                            for (const auto& v : o.variants) {
                                std::string triple = std::to_string(rmp[0]) + "x" + std::to_string(rmp[1]) + "x" +
                                                     std::to_string(rmp[2]);
                                bool uses_budget =
                                    variant_uses(v, SLAY_ATTR_NUM_FEATURES) || variant_uses(v, SLAY_ATTR_POLY_DIM);
                                if (!uses_budget && &rmp != &o.rmp.front()) {  // linear/cosformer: once per (T, D)
                                    progress.step(v + " (no feature budget, measured once)");
                                    continue;
                                }
                                quality_row(ctx, budget_config(ctx, v, rmp[0], rmp[1], rmp[2]), s, ref,
                                            uses_budget ? triple : "");
                                const Record& r = ctx.rows.back();
                                progress.step(v + where + " " + triple + ": " +
                                              (r.str("status") == "ok" ? "rel L2 " + sig3(r.num("rel_l2"))
                                                                       : r.str("status")));
                            }
                    for (size_t i = first_row; i < ctx.rows.size(); ++i)
                        ctx.rows[i].set("inputs", inputs).set("seed", static_cast<int64_t>(ctx.o.seed));
                }
    ctx.o = o;
    // Per (inputs, T, D, budget, variant), in first-seen order: the seeds' rows.
    std::vector<std::string> order;
    std::map<std::string, std::vector<const Record*>> groups;
    for (const auto& r : ctx.rows) {
        if (r.str("role") == "reference") continue;
        const std::string key = r.str("inputs") + "|" + std::to_string(static_cast<int64_t>(r.num("T"))) + "|" +
                                std::to_string(static_cast<int64_t>(r.num("D"))) + "|" + r.str("triple") + "|" +
                                r.str("variant");
        if (!groups.count(key)) order.push_back(key);
        groups[key].push_back(&r);
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& key : order) {
        const auto& g = groups[key];
        const Record& first = *g.front();
        double sum = 0, cos = 0, mse = 0, ms = 0, lo = INFINITY, hi = -INFINITY;
        std::string failed;
        for (const Record* r : g) {
            if (r->str("status") != "ok") {
                failed = r->str("status");
                continue;
            }
            sum += r->num("rel_l2"), cos += r->num("cos"), mse += r->num("mse"), ms += r->num("ms");
            lo = std::min(lo, r->num("rel_l2")), hi = std::max(hi, r->num("rel_l2"));
        }
        const double n = static_cast<double>(g.size());
        const bool ok = failed.empty();
        rows.push_back({first.str("inputs"), std::to_string(static_cast<int64_t>(first.num("T"))),
                        std::to_string(static_cast<int64_t>(first.num("D"))),
                        first.str("triple").empty() ? "—" : first.str("triple"), first.str("variant"),
                        std::to_string(static_cast<int64_t>(first.num("feature_dim"))),
                        ok ? sig3(sum / n) : failed, ok ? sig3(lo) + ".." + sig3(hi) : failed,
                        ok ? fixed(cos / n, 4) : failed, ok ? sig3(mse / n) : failed, ok ? fixed(ms / n, 3) : failed,
                        std::to_string(g.size()), first.str("backend")});
    }
    ctx.markdown += "### Approximation quality against yat_spherical (B=" + std::to_string(o.B) + ", H=" +
                    std::to_string(o.H) + "; R x M x P; Laplace/Hadamard get M*P features per node, "
                    "performer/rff R*M*P, slay_poly2 a budget of R*M*P; means over the seeds)\n\n" +
                    markdown_table({"inputs", "T", "D", "R x M x P", "method", "F", "rel L2", "rel L2 min..max", "cos",
                                    "MSE", "ms", "seeds", "ran on"},
                                   rows) +
                    "\n";
}

// Marks rows on the Pareto front of (rel_l2, key): no other row is at least as
// good in both and better in one.
void mark_pareto(std::vector<Record*>& rows, const std::string& key, const std::string& flag) {
    for (Record* a : rows) {
        bool dominated = false;
        for (Record* b : rows)
            if (b != a && b->num("rel_l2") <= a->num("rel_l2") && b->num(key) <= a->num(key) &&
                (b->num("rel_l2") < a->num("rel_l2") || b->num(key) < a->num(key)))
                dominated = true;
        a->set(flag, !dominated);
    }
}

void budget(Context& ctx) {
    const Options& o = ctx.o;
    Progress progress("budget", 0);
    struct Point { std::string v; int64_t R, M, P; };
    std::vector<Point> points;
    for (const auto& v : o.variants) {
        std::set<std::array<int64_t, 3>> seen;  // a variant that ignores P (or R) is run once per distinct config
        for (int64_t R : o.R)
            for (int64_t M : o.M)
                for (int64_t P : o.P) {
                    std::array<int64_t, 3> key{variant_uses(v, SLAY_ATTR_NUM_QUAD_NODES) ? R : 0, M,
                                               variant_uses(v, SLAY_ATTR_POLY_DIM) ? P : 0};
                    if (seen.insert(key).second) points.push_back({v, R, M, P});
                }
    }
    progress.set_total(points.size() * o.T.size() * o.D.size() + o.T.size() * o.D.size());
    for (int64_t T : o.T)
        for (int64_t D : o.D) {
            Shape s{o.B, o.H, T, D};
            std::vector<float> ref;
            if (!reference_output(ctx, s, progress, "yat_spherical T=" + std::to_string(T), &ref)) continue;
            for (const auto& p : points) {
                quality_row(ctx, ctx.config(p.v, p.R, p.M, p.P), s, ref, "");
                const Record& r = ctx.rows.back();
                progress.step(p.v + " R=" + std::to_string(p.R) + " M=" + std::to_string(p.M) + " P=" +
                              std::to_string(p.P) + ": " +
                              (r.str("status") == "ok" ? "rel L2 " + sig3(r.num("rel_l2")) + ", " + fixed(r.num("ms"), 3) +
                                                             " ms" : r.str("status")));
            }
            std::vector<Record*> ok;
            for (auto& r : ctx.rows)
                if (r.str("role") != "reference" && r.str("status") == "ok" && r.num("T") == T && r.num("D") == D)
                    ok.push_back(&r);
            mark_pareto(ok, "ms", "pareto_latency");
            mark_pareto(ok, "peak_mb", "pareto_memory");
        }
    std::vector<std::vector<std::string>> rows, front;
    auto v_or_dash = [](const Record& r, const char* k) {
        return r.find(k) && r.find(k)->kind == Value::Integer ? std::to_string(r.find(k)->integer) : std::string("—");
    };
    for (const auto& r : ctx.rows) {
        if (r.str("role") == "reference") continue;
        bool ok = r.str("status") == "ok";
        std::string st = ok ? "" : r.str("status");
        bool pl = r.find("pareto_latency") && r.find("pareto_latency")->boolean;
        bool pm = r.find("pareto_memory") && r.find("pareto_memory")->boolean;
        std::vector<std::string> row{r.str("variant"), v_or_dash(r, "R"), v_or_dash(r, "M"), v_or_dash(r, "P"),
                                     std::to_string(static_cast<int64_t>(r.num("feature_dim"))),
                                     ok ? sig3(r.num("rel_l2")) : st, ok ? fixed(r.num("cos"), 4) : st,
                                     ok ? fixed(r.num("ms"), 3) : st, ok ? fixed(r.num("peak_mb"), 2) : st,
                                     std::string(pl ? "latency" : "") + (pl && pm ? ", " : "") + (pm ? "memory" : "")};
        rows.push_back(row);
        if (pl) front.push_back(row);
    }
    std::sort(front.begin(), front.end(), [](const auto& a, const auto& b) { return std::stod(a[7]) < std::stod(b[7]); });
    std::vector<std::string> header{"method", "R", "M", "P", "F", "rel L2", "cos", "ms", "MB", "Pareto"};
    ctx.markdown += "### Feature budget (T=" + join(o.T) + ", B=" + std::to_string(o.B) + ", H=" + std::to_string(o.H) +
                    ", D=" + join(o.D) + ")\n\n" + markdown_table(header, rows) +
                    "\n### Pareto front, error vs latency\n\n" + markdown_table(header, front) + "\n";
}

void max_context(Context& ctx) {
    const Options& o = ctx.o;
    Progress progress("max-context", 0);
    RunOptions r = ctx.run_options();
    r.memory_limit = static_cast<uint64_t>(o.budget_mb * 1048576.0);
    r.warmup = 0, r.repeats = 1;
    const int64_t g = std::max<int64_t>(o.granularity, 1);
    std::vector<std::vector<std::string>> table;
    // Under --time-limit-s each (variant, D) search gets an equal share of the time.
    const double share_s = o.time_limit_s / static_cast<double>(o.variants.size() * o.D.size());
    for (const auto& v : o.variants)
        for (int64_t D : o.D) {
            const auto search_start = std::chrono::steady_clock::now();
            Config c = ctx.config(v, o.R[0], o.M[0], o.P[0]);
            int64_t good = 0, bad = 0, probes = 0;
            std::string failure;
            bool slow = false;  // a probe took longer than --max-call-s: stop growing T
            Record best;
            auto probe = [&](int64_t T) {
                double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - search_start).count();
                if (ctx.over_time() || (o.time_limit_s > 0 && spent > share_s)) {
                    failure = "TIME_LIMIT";
                    return false;
                }
                Shape s{o.B, o.H, T, D};
                Measurement m = ctx.runner.run(c, s, r);
                ++probes;
                Record row = measurement_row(c, s, o.backward, m, ctx.backend_name());
                row.set("role", "probe").set("budget_mb", o.budget_mb);
                progress.step(v + " D=" + std::to_string(D) + " probe T=" + std::to_string(T) + ": " + outcome(m));
                ctx.rows.push_back(row);
                if (m.status == "ok") {
                    best = row;
                    slow = stats_of(m.total_ms).median > o.max_call_s * 1e3;
                    return true;
                }
                if (m.status != "OOM") failure = m.status;
                return false;
            };
            // Doubling from the first T, then bisection on multiples of the granularity.
            for (int64_t T = o.T.front(); failure.empty(); T = std::min(T * 2, o.T_max)) {
                if (probe(T)) {
                    good = T;
                    if (T >= o.T_max || slow) break;
                } else {
                    bad = T;
                    break;
                }
            }
            while (failure.empty() && !slow && bad && bad - good > g) {
                int64_t mid = (good + bad) / 2 / g * g;
                if (mid <= good) break;
                (probe(mid) ? good : bad) = mid;
            }
            Record res;
            res.set("variant", v).set("role", "result").set("D", D).set("B", o.B).set("H", o.H)
                .set("budget_mb", o.budget_mb).set("probes", probes)
                .set("status", failure.empty() ? "ok" : failure).set("max_T", good)
                .set("capped", failure.empty() && bad == 0 && good >= o.T_max).set("stopped_slow", slow);
            if (good) res.set("peak_mb", best.num("peak_mb")).set("ms", best.num("ms"));
            ctx.rows.push_back(res);
            std::string max_t = std::to_string(good) + (slow ? "+ (slow)" : bad == 0 && good ? "+" : "");
            table.push_back({v, std::to_string(D), failure.empty() || good ? max_t + (failure.empty() ? "" : " (" + failure + ")") : failure,
                             good ? fixed(best.num("peak_mb"), 2) : "—", good ? fixed(best.num("ms"), 2) : "—",
                             std::to_string(probes)});
        }
    ctx.markdown += "### Maximum context within " + sig3(o.budget_mb) + " MB (B=" + std::to_string(o.B) + ", H=" +
                    std::to_string(o.H) + ", " + (o.backward ? "fwd+bwd" : "forward") + "; '+' = reached the cap T=" +
                    std::to_string(o.T_max) + " or a call slower than " + sig3(o.max_call_s) + " s)\n\n" +
                    markdown_table({"method", "D", "max T", "MB at max T", "ms at max T", "probes"}, table) + "\n";
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "slay-bench: %s\n%s", e.what(), kUsage);
        return 2;
    }
    std::unique_ptr<Runner> runner;
    try {
        runner = std::make_unique<Runner>(o.backend == "cuda" ? SLAY_BACKEND_CUDA : SLAY_BACKEND_CPU, o.device);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "slay-bench: cannot open the %s backend: %s\n", o.backend.c_str(), e.what());
        return 1;
    }
    Context ctx{o, *runner, nullptr, {}, ""};
    Record meta = meta_record(o, runner->info());
    if (o.mode == "scaling") scaling(ctx);
    else if (o.mode == "quality") quality(ctx);
    else if (o.mode == "budget") budget(ctx);
    else max_context(ctx);

    std::string report = "## slay-bench " + o.mode + "\n\n" + device_line(meta) + ctx.markdown;
    std::cout << report;
    if (!o.markdown.empty()) std::ofstream(o.markdown) << report;
    if (!o.json.empty()) {
        std::ofstream f(o.json);
        write_json(f, meta, ctx.rows);
        if (!f) {
            std::fprintf(stderr, "slay-bench: cannot write %s\n", o.json.c_str());
            return 1;
        }
    }
    size_t errors = 0;
    for (const auto& r : ctx.rows) errors += r.str("status") == "ERROR";
    if (errors) std::fprintf(stderr, "slay-bench: %zu run(s) failed with ERROR (see the JSON/messages)\n", errors);
    return errors ? 1 : 0;
}
