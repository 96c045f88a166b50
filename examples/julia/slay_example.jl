# slay_example.jl -- the main libslay example, in Julia (abi/julia/Slay.jl).
#
# Builds a slay_anchor plan (the paper's SLAY: anchor polynomial features
# (x) positive random features, R = 2 quadrature nodes, M = 16, P = 32),
# samples its feature parameters, runs the causal forward on random
# q, k, v (B, H, T, D) and prints the relative L2 error of its output against
# exact yat_spherical attention (the kernel SLAY linearizes) together with
# the time each took. The inputs come from the C example's LCG + Box-Muller
# stream in the same memory order (a (B, H, T, D) tensor is a Julia array of
# size (D, T, H, B)), so both print the same error for the same sizes.
#
# It computes on the CPU reference backend (--cpu is accepted for symmetry
# with the C example; device memory would need CUDA.jl, not used here).
#
# It checks its own result: both outputs finite and non-zero, and the
# relative error finite and below 2.0 (the C example's bound); it exits 1
# otherwise, 2 on bad arguments.
#
# Usage: SLAY_LIBRARY=/path/to/libslay.so.0.1 julia slay_example.jl [--cpu] [T] [H] [D]
#        (defaults 256 4 64, B = 1)

using Printf

include(joinpath(@__DIR__, "..", "..", "abi", "julia", "Slay.jl"))
using .Slay

# Standard normals from a 64-bit LCG and Box-Muller (UInt64 arithmetic wraps):
# self-contained, so the inputs are the same on every machine.
mutable struct Normals
    state::UInt64
end
Normals() = Normals(0x9e3779b97f4a7c15)

# Uniform in (0, 1): never 0, so the logarithm is finite.
function uniform01(r::Normals)
    r.state = r.state * 0x5851f42d4c957f2d + 0x14057b7ef767814f
    return (Float64(r.state >> 11) + 0.5) * (1.0 / 9007199254740992.0)
end

# n normals as Float32, drawn in the C example's order (radius first).
fill_normal(r::Normals, n::Integer) =
    Float32[sqrt(-2.0 * log(uniform01(r))) * cos(6.283185307179586 * uniform01(r)) for _ in 1:n]

# Parses [--cpu] [T] [H] [D]; nothing on bad arguments.
function parse_sizes(args)
    sizes = [256, 4, 64]
    given = 0
    for arg in args
        arg == "--cpu" && continue
        given == 3 && return nothing
        n = tryparse(Int, arg)
        (n === nothing || n < 1) && return nothing
        sizes[given += 1] = n
    end
    return sizes
end

# out = plan(q, k, v; params) and the forward's time in ms.
function timed_forward(plan, q, k, v; params=nothing)
    out = zeros(Float32, size(v))
    workspace = Vector{UInt8}(undef, Slay.workspace_size(plan, Slay.SLAY_PASS_FORWARD, size(q, 4), size(q, 2)))
    t0 = time_ns()
    Slay.forward!(plan, out, q, k, v; params=params, workspace=workspace)
    return out, (time_ns() - t0) / 1e6
end

function main(args)
    sizes = parse_sizes(args)
    if sizes === nothing
        println(stderr, "usage: julia slay_example.jl [--cpu] [T>=1] [H>=1] [D>=1]")
        return 2
    end
    T, H, D = sizes
    B = 1
    println("libslay $(Slay.version()) (ABI $(Slay.abi_version())) from $(Slay.libslay)")
    println("backend: CPU (the Julia example uses host memory)")

    ok = Slay.Handle(Slay.SLAY_BACKEND_CPU) do handle
        shared = (num_heads=H, head_dim=D, causal=1, epsilon=1e-6)
        slay = Slay.Plan(handle, Slay.SLAY_ATTN_SLAY_ANCHOR; shared..., num_quad_nodes=2, num_features=16, poly_dim=32)
        exact = Slay.Plan(handle, Slay.SLAY_ATTN_YAT_SPHERICAL; shared...)

        # Feature parameters: one fp32 vector, sampled from (seed, offset) the
        # same way on every backend.
        params = Slay.sample_features!(slay, zeros(Float32, Slay.param_count(slay)); seed=42, offset=0)
        features = Slay.feature_dim(slay)

        rng = Normals()
        n = B * H * T * D
        q = reshape(fill_normal(rng, n), D, T, H, B)
        k = reshape(fill_normal(rng, n), D, T, H, B)
        v = reshape(fill_normal(rng, n), D, T, H, B)
        out_slay, ms_slay = timed_forward(slay, q, k, v; params=params)
        out_exact, ms_exact = timed_forward(exact, q, k, v)
        close(slay)
        close(exact)

        sumsq(x) = sum(e -> Float64(e)^2, x)
        norm_exact, norm_slay = sumsq(out_exact), sumsq(out_slay)
        rel_l2 = sqrt(sum((Float64(a) - Float64(e))^2 for (a, e) in zip(out_slay, out_exact)) / norm_exact)
        println("shape B=$B H=$H T=$T D=$D, causal, fp32, CPU backend")
        @printf("slay_anchor (R=2, M=16, P=32, F=%d): %.2f ms\n", features, ms_slay)
        @printf("yat_spherical (exact, eps=1e-6):      %.2f ms\n", ms_exact)
        @printf("relative L2 error of slay_anchor vs yat_spherical: %.4f\n", rel_l2)

        # The example's own checks: an all-zero, NaN or far-off output fails.
        good = true
        if !(all(isfinite, out_slay) && all(isfinite, out_exact))
            println("CHECK FAILED: an output holds NaN or Inf")
            good = false
        end
        if !(norm_slay > 0 && norm_exact > 0)
            println("CHECK FAILED: an output is all zero")
            good = false
        end
        if !(isfinite(rel_l2) && rel_l2 < 2.0)
            @printf("CHECK FAILED: relative L2 error %.4g is not below 2.0\n", rel_l2)
            good = false
        end
        good
    end
    println(ok ? "ok" : "FAILED")
    return ok ? 0 : 1
end

exit(try
    main(ARGS)
catch e
    e isa Slay.SlayError || rethrow()
    println(stderr, "error: ", sprint(showerror, e))
    1
end)
