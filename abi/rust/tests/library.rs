//! Tests of the slay crate against the real libslay on the CPU backend.
//!
//! Shapes are (B, H, T, D). The library is found as `Library::open` finds it
//! (SLAY_LIBRARY, else libslay.so.0.1). When SLAY_LIBRARY is unset and the
//! system loader cannot find the library, every test prints why and returns
//! early, so `cargo test` passes on a machine without libslay; when
//! SLAY_LIBRARY is set (as the meson test does) a load failure fails them.
use std::sync::Arc;

use slay::{
    Attr, Backend, BackwardArgs, Descriptor, Dtype, ForwardArgs, Handle, Library, Pass, Plan, Status, Tensor, TensorMut,
    Variant, Workspace,
};

/// The library; None (with a note on stderr) when it cannot be loaded and
/// SLAY_LIBRARY does not name it (a named library must load).
fn library() -> Option<Arc<Library>> {
    let named = std::env::var_os(slay::LIBRARY_ENV_VAR).map_or(false, |v| !v.is_empty());
    match Library::open() {
        Ok(lib) => Some(lib),
        Err(e) if named => panic!("{} is set but the library does not load: {}", slay::LIBRARY_ENV_VAR, e),
        Err(e) => {
            eprintln!("skipping: {}", e);
            None
        }
    }
}

/// Deterministic values in [-1, 1) (a 64-bit LCG).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A CPU plan of `variant` with H heads of dimension D, causal.
fn plan<'h>(handle: &'h Handle, variant: Variant, h: i64, d: i64) -> Plan<'h> {
    let mut desc = Descriptor::new(handle.library(), variant).unwrap();
    desc.set_i64(Attr::NUM_HEADS, h).unwrap().set_i64(Attr::HEAD_DIM, d).unwrap();
    Plan::new(handle, &desc).unwrap()
}

/// Sampled parameters of `plan` from `seed` (empty for param_count 0).
fn sample(plan: &Plan, seed: u64) -> Vec<f32> {
    let mut params = vec![0f32; plan.param_count().unwrap() as usize];
    if !params.is_empty() {
        let n = params.len() as i64;
        let mut ws = Workspace::new(plan.workspace_size(Pass::SAMPLE, 0, 0).unwrap());
        plan.sample_features(seed, 0, &mut TensorMut::new(&mut params, &[n]).unwrap(), &mut ws).unwrap();
    }
    params
}

/// The small problem of the workspace and gradient tests: shape (1, 1, 6, 4)
/// and its q, k, v.
fn small_inputs() -> ([i64; 4], Vec<f32>, Vec<f32>, Vec<f32>) {
    let shape = [1i64, 1, 6, 4];
    let n = shape.iter().product::<i64>() as usize;
    (shape, values(n, 4), values(n, 5), values(n, 6))
}

/// out = plan(q, k, v) on the CPU for shape (B, H, T, D), Dv = D.
fn forward(plan: &Plan, params: &[f32], shape: [i64; 4], q: &[f32], k: &[f32], v: &[f32]) -> slay::Result<Vec<f32>> {
    let mut out = vec![0f32; v.len()];
    let mut ws = Workspace::new(plan.workspace_size(Pass::FORWARD, shape[0], shape[2])?);
    let mut args = ForwardArgs::new(
        Tensor::new(q, &shape)?,
        Tensor::new(k, &shape)?,
        Tensor::new(v, &shape)?,
        TensorMut::new(&mut out, &shape)?,
    );
    if !params.is_empty() {
        args = args.with_params(Tensor::new(params, &[params.len() as i64])?);
    }
    plan.forward(&mut args, &mut ws)?;
    Ok(out)
}

#[test]
fn version_and_names() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    assert!(lib.abi_version() >= slay::ffi::MIN_ABI_VERSION);
    assert_eq!(lib.version_string().split('.').count(), 3);
    assert_eq!(lib.status_name(Status::BAD_SHAPE), "SLAY_STATUS_BAD_SHAPE");
    assert_eq!(lib.attr_name(Attr::NUM_HEADS).as_deref(), Some("num_heads"));
    assert_eq!(lib.attr_name(Attr(9999)), None);
    // Every variant's name parses back to it.
    for value in 0..Variant::COUNT {
        let name = lib.variant_name(Variant(value)).expect("every variant below COUNT has a name");
        assert_eq!(lib.variant_from_name(&name).unwrap(), Variant(value), "{}", name);
    }
    assert_eq!(lib.variant_from_name("yat-spherical").unwrap(), Variant::YAT_SPHERICAL);
    let err = lib.variant_from_name("no-such-variant").unwrap_err();
    assert_eq!(err.status(), Status::INVALID_VALUE);
    assert_eq!(err.name(), "SLAY_STATUS_INVALID_VALUE");
    assert!(err.message().starts_with("slay_attn_variant_from_name: "), "{}", err);
}

#[test]
fn missing_library_is_a_clear_error() {
    let err = Library::open_path("/nonexistent/libslay.so.0.1").unwrap_err();
    assert_eq!(err.status(), Status::LIBRARY_NOT_LOADED);
    assert!(err.to_string().contains("/nonexistent/libslay.so.0.1"), "{}", err);
    assert!(err.to_string().contains("SLAY_LIBRARY"), "{}", err);
}

#[test]
fn descriptor_and_plan_attributes() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    let handle = Handle::cpu(&lib).unwrap();
    assert_eq!(handle.backend().unwrap(), Backend::CPU);
    let mut desc = Descriptor::new(&lib, Variant::STANDARD).unwrap();
    desc.set_i64(Attr::HEAD_DIM, 16).unwrap();
    assert_eq!(desc.get_i64(Attr::HEAD_DIM).unwrap(), 16);
    // The wrong type, a value out of range and an attribute the variant
    // does not use each fail with their own status and leave the value.
    assert_eq!(desc.set_f64(Attr::HEAD_DIM, 2.0).unwrap_err().status(), Status::ATTRIBUTE_TYPE);
    let err = desc.set_i64(Attr::HEAD_DIM, 0).unwrap_err();
    assert_eq!(err.status(), Status::INVALID_VALUE);
    assert!(!err.message().is_empty());
    assert_eq!(desc.get_i64(Attr::HEAD_DIM).unwrap(), 16);
    assert_eq!(desc.set_i64(Attr::NUM_FEATURES, 8).unwrap_err().status(), Status::ATTRIBUTE_NOT_APPLICABLE);
    assert_eq!(desc.set_i64(Attr(777), 1).unwrap_err().status(), Status::UNKNOWN_ATTRIBUTE);

    let plan = Plan::new(&handle, &desc).unwrap();
    drop(desc); // a plan keeps its own copy
    assert_eq!(plan.variant().unwrap(), Variant::STANDARD);
    assert_eq!(plan.get_i64(Attr::VALUE_DIM).unwrap(), 16); // 0 resolves to D
    assert!((plan.get_f64(Attr::SOFTMAX_SCALE).unwrap() - 0.25).abs() < 1e-12); // 1/sqrt(16)
    assert_eq!(plan.feature_dim().unwrap(), 0);
    assert_eq!(plan.param_count().unwrap(), 0);
}

#[test]
fn sampling_is_deterministic_and_segments_tile_the_parameters() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    let handle = Handle::cpu(&lib).unwrap();
    let plan = plan(&handle, Variant::SLAY_ANCHOR, 2, 8);
    let count = plan.param_count().unwrap();
    assert!(count > 0 && plan.feature_dim().unwrap() > 0);
    let segments = plan.param_segments().unwrap();
    let mut next = 0;
    for s in &segments {
        assert!(!s.name.is_empty());
        assert_eq!(s.offset, next, "segment {} starts where the previous one ends", s.name);
        next += s.shape.iter().product::<i64>();
    }
    assert_eq!(next, count);
    let a = sample(&plan, 7);
    assert!(a.iter().all(|x| x.is_finite()) && a.iter().any(|&x| x != 0.0));
    assert_eq!(a, sample(&plan, 7));
    assert_ne!(a, sample(&plan, 8));
}

#[test]
fn slay_anchor_approximates_yat_spherical() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    let handle = Handle::cpu(&lib).unwrap();
    let shape = [1i64, 2, 32, 16];
    let n = shape.iter().product::<i64>() as usize;
    let (q, k, v) = (values(n, 1), values(n, 2), values(n, 3));
    let slay = plan(&handle, Variant::SLAY_ANCHOR, 2, 16);
    let exact = plan(&handle, Variant::YAT_SPHERICAL, 2, 16);
    let approx = forward(&slay, &sample(&slay, 42), shape, &q, &k, &v).unwrap();
    let reference = forward(&exact, &[], shape, &q, &k, &v).unwrap();
    let err: f64 = approx.iter().zip(&reference).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    let norm: f64 = reference.iter().map(|b| (*b as f64).powi(2)).sum();
    assert!(norm > 0.0 && approx.iter().all(|x| x.is_finite()));
    assert!((err / norm).sqrt() < 2.0, "relative L2 error {}", (err / norm).sqrt());
}

#[test]
fn one_calls_workspace_size() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    let handle = Handle::cpu(&lib).unwrap();
    let (shape, q, k, v) = small_inputs();
    let plan = plan(&handle, Variant::YAT_SPHERICAL, 1, 4);
    let mut out = vec![0f32; q.len()];
    let args = ForwardArgs::new(
        Tensor::new(&q, &shape).unwrap(),
        Tensor::new(&k, &shape).unwrap(),
        Tensor::new(&v, &shape).unwrap(),
        TensorMut::new(&mut out, &shape).unwrap(),
    );
    // SAFETY: host tensors, CPU plan, null stream.
    let call = unsafe { plan.forward_workspace_size_raw(&args, std::ptr::null_mut()) }.unwrap();
    // The CPU backend's calls need what the plan-level query says.
    assert_eq!(call, plan.workspace_size(Pass::FORWARD, 1, 6).unwrap());
}

#[test]
fn backward_matches_finite_differences() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    let handle = Handle::cpu(&lib).unwrap();
    let (shape, q, k, v) = small_inputs();
    let n = q.len();
    let dout = values(n, 7);
    let plan = plan(&handle, Variant::YAT_SPHERICAL, 1, 4);
    let out = forward(&plan, &[], shape, &q, &k, &v).unwrap();
    let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    let mut ws = Workspace::new(plan.workspace_size(Pass::BACKWARD, 1, 6).unwrap());
    let mut args = BackwardArgs::new(
        Tensor::new(&q, &shape).unwrap(),
        Tensor::new(&k, &shape).unwrap(),
        Tensor::new(&v, &shape).unwrap(),
        Tensor::new(&out, &shape).unwrap(),
        Tensor::new(&dout, &shape).unwrap(),
        TensorMut::new(&mut dq, &shape).unwrap(),
        TensorMut::new(&mut dk, &shape).unwrap(),
        TensorMut::new(&mut dv, &shape).unwrap(),
    );
    plan.backward(&mut args, &mut ws).unwrap();
    // L = sum(out * dout); central differences of L in q[i], k[i], v[i].
    let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
        let o = forward(&plan, &[], shape, q, k, v).unwrap();
        o.iter().zip(&dout).map(|(a, b)| *a as f64 * *b as f64).sum()
    };
    let step = 1e-2f32;
    for &i in &[0usize, 5, 13, 23] {
        for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
            let mut inputs = [q.clone(), k.clone(), v.clone()];
            inputs[which][i] += step;
            let up = loss(&inputs[0], &inputs[1], &inputs[2]);
            inputs[which][i] -= 2.0 * step;
            let down = loss(&inputs[0], &inputs[1], &inputs[2]);
            let numeric = (up - down) / (2.0 * step as f64);
            let analytic = grad[i] as f64;
            assert!(
                (numeric - analytic).abs() <= 2e-2 * (1.0 + analytic.abs()),
                "input {} element {}: finite difference {} vs backward {}",
                which,
                i,
                numeric,
                analytic
            );
        }
    }
}

#[test]
fn bf16_io_agrees_with_fp32() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    let handle = Handle::cpu(&lib).unwrap();
    let shape = [1i64, 1, 8, 8];
    let n = 64usize;
    // bf16 bits are the high half of fp32 bits (values chosen exactly
    // representable by rounding them to bf16 first).
    let to_bf16 = |x: &[f32]| -> Vec<u16> { x.iter().map(|v| (v.to_bits() >> 16) as u16).collect() };
    let from_bf16 = |x: &[u16]| -> Vec<f32> { x.iter().map(|b| f32::from_bits((*b as u32) << 16)).collect() };
    let (q, k, v) = (from_bf16(&to_bf16(&values(n, 8))), from_bf16(&to_bf16(&values(n, 9))), from_bf16(&to_bf16(&values(n, 10))));
    let fp32 = plan(&handle, Variant::YAT_SPHERICAL, 1, 8);
    let reference = forward(&fp32, &[], shape, &q, &k, &v).unwrap();

    let mut desc = Descriptor::new(&lib, Variant::YAT_SPHERICAL).unwrap();
    desc.set_i64(Attr::NUM_HEADS, 1).unwrap().set_i64(Attr::HEAD_DIM, 8).unwrap();
    desc.set_i64(Attr::IO_DTYPE, Dtype::BFLOAT16.0 as i64).unwrap();
    let bf16 = Plan::new(&handle, &desc).unwrap();
    let (qb, kb, vb) = (to_bf16(&q), to_bf16(&k), to_bf16(&v));
    let mut out = vec![0u16; n];
    let mut ws = Workspace::new(bf16.workspace_size(Pass::FORWARD, 1, 8).unwrap());
    let mut args = ForwardArgs::new(
        Tensor::new_u16(&qb, Dtype::BFLOAT16, &shape).unwrap(),
        Tensor::new_u16(&kb, Dtype::BFLOAT16, &shape).unwrap(),
        Tensor::new_u16(&vb, Dtype::BFLOAT16, &shape).unwrap(),
        TensorMut::new_u16(&mut out, Dtype::BFLOAT16, &shape).unwrap(),
    );
    bf16.forward(&mut args, &mut ws).unwrap();
    for (a, b) in from_bf16(&out).iter().zip(&reference) {
        assert!((a - b).abs() <= 1e-2 * (1.0 + b.abs()), "bf16 {} vs fp32 {}", a, b);
    }
    // An fp32 tensor for a bf16 plan is the library's BAD_DTYPE.
    let mut out32 = vec![0f32; n];
    let mut args = ForwardArgs::new(
        Tensor::new(&q, &shape).unwrap(),
        Tensor::new(&k, &shape).unwrap(),
        Tensor::new(&v, &shape).unwrap(),
        TensorMut::new(&mut out32, &shape).unwrap(),
    );
    assert_eq!(bf16.forward(&mut args, &mut ws).unwrap_err().status(), Status::BAD_DTYPE);
}

#[test]
fn bad_input_fails_with_the_library_message() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    let handle = Handle::cpu(&lib).unwrap();
    let plan = plan(&handle, Variant::YAT_SPHERICAL, 2, 8);
    let good = [1i64, 2, 4, 8];
    let bad = [1i64, 2, 5, 8]; // T of k differs from q's
    let x = values(2 * 5 * 8, 11);
    let mut out = vec![0f32; 64];
    let mut ws = Workspace::new(plan.workspace_size(Pass::FORWARD, 1, 5).unwrap());
    let mut args = ForwardArgs::new(
        Tensor::new(&x[..64], &good).unwrap(),
        Tensor::new(&x, &bad).unwrap(),
        Tensor::new(&x[..64], &good).unwrap(),
        TensorMut::new(&mut out, &good).unwrap(),
    );
    let err = plan.forward(&mut args, &mut ws).unwrap_err();
    assert_eq!(err.status(), Status::BAD_SHAPE);
    assert_eq!(err.name(), "SLAY_STATUS_BAD_SHAPE");
    assert!(err.message().len() > "slay_attn_fwd: ".len(), "{}", err);
    assert!(out.iter().all(|&o| o == 0.0), "nothing is written on failure");

    // A too-small workspace is the library's WORKSPACE_TOO_SMALL (when the
    // pass needs any).
    let needed = plan.workspace_size(Pass::FORWARD, 1, 4).unwrap();
    if needed > 16 {
        let mut small = Workspace::new(needed - 16);
        let mut args = ForwardArgs::new(
            Tensor::new(&x[..64], &good).unwrap(),
            Tensor::new(&x[..64], &good).unwrap(),
            Tensor::new(&x[..64], &good).unwrap(),
            TensorMut::new(&mut out, &good).unwrap(),
        );
        assert_eq!(plan.forward(&mut args, &mut small).unwrap_err().status(), Status::WORKSPACE_TOO_SMALL);
    }

    // Views that would read past their slice are refused before any call.
    assert_eq!(Tensor::new(&x[..10], &good).unwrap_err().status(), Status::BAD_SHAPE);
    assert_eq!(Tensor::new(&x, &[1, 1, 1, 1, 1]).unwrap_err().status(), Status::INVALID_ARGUMENT);
    assert_eq!(Tensor::strided(&x, &[2, 3], &[-1, 1]).unwrap_err().status(), Status::BAD_STRIDE);
    let e = Tensor::new_u16(&[0u16; 4], Dtype::FLOAT32, &[4]).unwrap_err();
    assert_eq!((e.status(), e.name()), (Status::BAD_DTYPE, "SLAY_STATUS_BAD_DTYPE"));
    assert_eq!(lib.status_name(e.status()), e.name());
}

/// Tokens [a, b) of every head of a contiguous (1, heads, total, d) buffer,
/// as a contiguous (1, heads, b - a, d) buffer.
fn cut(x: &[f32], heads: i64, total: i64, d: i64, a: i64, b: i64) -> Vec<f32> {
    let mut part = Vec::new();
    for h in 0..heads {
        part.extend_from_slice(&x[((h * total + a) * d) as usize..((h * total + b) * d) as usize]);
    }
    part
}

/// out of a forward of q (1, H, T, D), k and v (1, H_kv, T, D); packed when offsets are given.
fn grouped_forward(plan: &Plan, q: &[f32], k: &[f32], v: &[f32], hkv: i64, offsets: Option<&[i32]>) -> slay::Result<Vec<f32>> {
    let (h, d) = (plan.get_i64(Attr::NUM_HEADS)?, plan.get_i64(Attr::HEAD_DIM)?);
    let t = q.len() as i64 / (h * d);
    let (batch, length) = match offsets {
        Some(o) => slay::packed_batch_and_length(&o.iter().map(|&x| x as i64).collect::<Vec<i64>>()),
        None => (1, t),
    };
    let mut out = vec![0f32; q.len()];
    let mut ws = Workspace::new(plan.workspace_size(Pass::FORWARD, batch, length)?);
    let mut args = ForwardArgs::new(
        Tensor::new(q, &[1, h, t, d])?,
        Tensor::new(k, &[1, hkv, t, d])?,
        Tensor::new(v, &[1, hkv, t, d])?,
        TensorMut::new(&mut out, &[1, h, t, d])?,
    );
    if let Some(o) = offsets {
        args = args.with_seq_offsets(Tensor::offsets_i32(o)?);
    }
    plan.forward(&mut args, &mut ws)?;
    drop(args);
    Ok(out)
}

#[test]
fn packed_grouped_call_equals_one_call_per_sequence() {
    let lib = match library() {
        Some(l) => l,
        None => return,
    };
    let handle = Handle::cpu(&lib).unwrap();
    let (h, hkv, d) = (2i64, 1i64, 4i64);
    let mut desc = Descriptor::new(&lib, Variant::STANDARD).unwrap();
    desc.set_i64(Attr::NUM_HEADS, h).unwrap().set_i64(Attr::NUM_KV_HEADS, hkv).unwrap().set_i64(Attr::HEAD_DIM, d).unwrap();
    let plan = Plan::new(&handle, &desc).unwrap();
    let offsets = [0i32, 3, 3, 8]; // three sequences, the second empty
    let total = 8i64;
    let q = values((h * total * d) as usize, 21);
    let k = values((hkv * total * d) as usize, 22);
    let v = values((hkv * total * d) as usize, 23);
    let packed = grouped_forward(&plan, &q, &k, &v, hkv, Some(&offsets)).unwrap();
    for w in offsets.windows(2) {
        let (a, b) = (w[0] as i64, w[1] as i64);
        let one = grouped_forward(&plan, &cut(&q, h, total, d, a, b), &cut(&k, hkv, total, d, a, b),
                                  &cut(&v, hkv, total, d, a, b), hkv, None)
            .unwrap();
        assert_eq!(cut(&packed, h, total, d, a, b), one, "sequence [{}, {})", a, b);
    }
    assert_eq!(slay::packed_batch_and_length(&[0, 3, 3, 8]), (3, 5));

    // Decreasing offsets are the library's INVALID_VALUE, with its message.
    let bad = [0i32, 5, 3, 8];
    let err = grouped_forward(&plan, &q, &k, &v, hkv, Some(&bad)).unwrap_err();
    assert_eq!(err.status(), Status::INVALID_VALUE);
    assert!(err.message().contains("seq_offsets"), "{}", err);
}
