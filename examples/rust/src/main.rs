//! slay_example (Rust) -- the main libslay example, through the slay crate.
//!
//! Builds a slay_anchor plan (the paper's SLAY: anchor polynomial features
//! (x) positive random features, R = 2 quadrature nodes, M = 16, P = 32),
//! samples its feature parameters, runs the causal forward on random
//! q, k, v (B, H, T, D) and prints the relative L2 error of its output against
//! exact yat_spherical attention (the kernel SLAY linearizes) together with
//! the time each took. Inputs come from the same LCG + Box-Muller stream as
//! the C example's, so both print the same error for the same sizes.
//!
//! It computes on the CPU reference backend only: this crate has no CUDA
//! runtime binding to allocate device memory (the slay crate's `*_raw` calls
//! take device pointers from elsewhere). `--cpu` is accepted for symmetry
//! with the C and C++ examples.
//!
//! It checks its own result: both outputs finite and non-zero, and the
//! relative error finite and below 2.0 (the C example's bound); it exits 1
//! otherwise, 2 on bad arguments.
//!
//! Usage: slay_example [--cpu] [T] [H] [D]      (defaults 256 4 64, B = 1)
//! Run:   SLAY_LIBRARY=/path/to/libslay.so.0.1 cargo run --release -- 64 2 16
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use slay::{Attr, Descriptor, ForwardArgs, Handle, Library, Pass, Plan, Tensor, TensorMut, Variant, Workspace};

/// Standard normals from a 64-bit LCG and Box-Muller: self-contained, so the
/// inputs are the same on every machine (and the same as the C example's).
struct Normals {
    state: u64,
}

impl Normals {
    fn new() -> Normals {
        Normals { state: 0x9e37_79b9_7f4a_7c15 }
    }
    /// Uniform in (0, 1): never 0, so the logarithm below is finite.
    fn uniform01(&mut self) -> f64 {
        self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.state >> 11) as f64 + 0.5) * (1.0 / 9007199254740992.0)
    }
    fn fill(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                // The order gcc evaluates the C example's expression in
                // (both examples print the same error for the same sizes).
                let radius = (-2.0 * self.uniform01().ln()).sqrt();
                (radius * (6.283185307179586 * self.uniform01()).cos()) as f32
            })
            .collect()
    }
}

/// A causal plan of `variant` with the shared shape attributes and
/// eps = 1e-6; `extra` sets the variant's own attributes.
fn make_plan<'h>(
    handle: &'h Handle,
    variant: Variant,
    heads: i64,
    head_dim: i64,
    extra: &[(Attr, i64)],
) -> slay::Result<Plan<'h>> {
    let mut desc = Descriptor::new(handle.library(), variant)?;
    desc.set_i64(Attr::NUM_HEADS, heads)?
        .set_i64(Attr::HEAD_DIM, head_dim)?
        .set_i64(Attr::CAUSAL, 1)?
        .set_f64(Attr::EPSILON, 1e-6)?;
    for &(attr, value) in extra {
        desc.set_i64(attr, value)?;
    }
    Plan::new(handle, &desc) // the descriptor is released here; the plan keeps a copy
}

/// out = plan(q, k, v[, params]) for shape (B, H, T, D) with Dv = D; returns
/// the output and the forward's time in ms.
fn timed_forward(
    plan: &Plan,
    shape: [i64; 4],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    params: Option<&[f32]>,
) -> slay::Result<(Vec<f32>, f64)> {
    let mut out = vec![0f32; v.len()];
    let mut workspace = Workspace::new(plan.workspace_size(Pass::FORWARD, shape[0], shape[2])?);
    let mut args = ForwardArgs::new(
        Tensor::new(q, &shape)?,
        Tensor::new(k, &shape)?,
        Tensor::new(v, &shape)?,
        TensorMut::new(&mut out, &shape)?,
    );
    if let Some(p) = params {
        args = args.with_params(Tensor::new(p, &[p.len() as i64])?);
    }
    let start = Instant::now();
    plan.forward(&mut args, &mut workspace)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    Ok((out, ms))
}

/// Parses `[--cpu] [T] [H] [D]`; None on bad arguments.
fn parse_sizes(args: &[String]) -> Option<[i64; 3]> {
    let mut sizes = [256i64, 4, 64];
    let mut given = 0;
    for arg in args {
        if arg == "--cpu" {
            continue;
        }
        if given == 3 {
            return None;
        }
        sizes[given] = arg.parse().ok().filter(|&n: &i64| n >= 1)?;
        given += 1;
    }
    Some(sizes)
}

fn run(t: i64, h: i64, d: i64) -> slay::Result<bool> {
    let b = 1i64;
    let library: Arc<Library> = Library::open()?;
    println!("libslay {} (ABI {}) from {}", library.version_string(), library.abi_version(), library.path());
    println!("backend: CPU (the Rust example has no CUDA runtime binding)");
    let handle = Handle::cpu(&library)?;

    let paper = [(Attr::NUM_QUAD_NODES, 2), (Attr::NUM_FEATURES, 16), (Attr::POLY_DIM, 32)];
    let slay_plan = make_plan(&handle, Variant::SLAY_ANCHOR, h, d, &paper)?;
    let exact_plan = make_plan(&handle, Variant::YAT_SPHERICAL, h, d, &[])?;

    // Feature parameters: one fp32 vector, sampled from (seed, offset) the
    // same way on every backend.
    let mut params = vec![0f32; slay_plan.param_count()? as usize];
    let features = slay_plan.feature_dim()?;
    let mut sample_ws = Workspace::new(slay_plan.workspace_size(Pass::SAMPLE, 0, 0)?);
    let n_params = params.len() as i64;
    slay_plan.sample_features(42, 0, &mut TensorMut::new(&mut params, &[n_params])?, &mut sample_ws)?;

    let shape = [b, h, t, d];
    let n = (b * h * t * d) as usize;
    let mut normals = Normals::new();
    let (q, k, v) = (normals.fill(n), normals.fill(n), normals.fill(n));
    let (out_slay, ms_slay) = timed_forward(&slay_plan, shape, &q, &k, &v, Some(&params))?;
    let (out_exact, ms_exact) = timed_forward(&exact_plan, shape, &q, &k, &v, None)?;

    let sum_sq = |x: &mut dyn Iterator<Item = f64>| x.map(|e| e * e).sum::<f64>();
    let diff = sum_sq(&mut out_slay.iter().zip(&out_exact).map(|(a, e)| *a as f64 - *e as f64));
    let norm_exact = sum_sq(&mut out_exact.iter().map(|&e| e as f64));
    let norm_slay = sum_sq(&mut out_slay.iter().map(|&a| a as f64));
    let rel_l2 = (diff / norm_exact).sqrt();
    println!("shape B={} H={} T={} D={}, causal, fp32, CPU backend", b, h, t, d);
    println!("slay_anchor (R=2, M=16, P=32, F={}): {:.2} ms", features, ms_slay);
    println!("yat_spherical (exact, eps=1e-6):      {:.2} ms", ms_exact);
    println!("relative L2 error of slay_anchor vs yat_spherical: {:.4}", rel_l2);

    // The example's own checks: an all-zero, NaN or far-off output fails.
    let mut ok = true;
    if !out_slay.iter().chain(&out_exact).all(|x| x.is_finite()) {
        println!("CHECK FAILED: an output holds NaN or Inf");
        ok = false;
    }
    if !(norm_slay > 0.0 && norm_exact > 0.0) {
        println!("CHECK FAILED: an output is all zero");
        ok = false;
    }
    if !(rel_l2.is_finite() && rel_l2 < 2.0) {
        println!("CHECK FAILED: relative L2 error {:.4} is not below 2.0", rel_l2);
        ok = false;
    }
    println!("{}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [t, h, d] = match parse_sizes(&args[1..]) {
        Some(sizes) => sizes,
        None => {
            eprintln!("usage: {} [--cpu] [T>=1] [H>=1] [D>=1]", args[0]);
            return ExitCode::from(2);
        }
    };
    match run(t, h, d) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", e);
            ExitCode::from(1)
        }
    }
}
