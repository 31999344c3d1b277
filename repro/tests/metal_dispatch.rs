//! The Metal prediction, derived from candle 0.11.1's sources (`repro::metal`): (a) the facts
//! known from reading them come out of the parsing; (b) every op × dtype the sweep runs gets an
//! outcome, unknown only where `ALLOWED_UNKNOWN` lists it, consistent with the library.
//! Needs cargo's registry copy of candle and `cpp` (from gcc).

use candle_core::DType;
use repro::metal::dispatch::{Dispatch, Found};
use repro::metal::kernels::kernel_names;
use repro::metal::rust_src::Key;
use repro::metal::tables::*;
use repro::metal::{self, MetalOutcome};
use repro::sweep::cell::{Cell, Layout};
use repro::sweep::ops::{find, OPS};
use std::collections::BTreeSet;

/// The unknown outcomes allowed over the whole sweep, listed as `op dtype[/aux]: why` (none
/// today: every op × dtype × layout the sweep plans is derived).
const ALLOWED_UNKNOWN: &[&str] = &[];

fn dispatch() -> &'static Dispatch {
    &metal::shared().expect("candle's sources parse").dispatch
}

fn kernel(name: &str, file: &str) -> Found {
    Found::Kernel {
        name: name.into(),
        file: file.into(),
    }
}

fn dt(d: DType) -> Key {
    Key::dtype(d)
}

/// The first planned cell of `op` with these dtypes, variant and layouts (all contiguous when
/// `layouts` is empty).
fn cell(op: &str, dtype: &str, aux: Option<&str>, variant: usize, layouts: &[Layout]) -> Cell {
    let o = find(op).expect("op");
    repro::sweep::plan(o, 0, 0)
        .into_iter()
        .find(|c| {
            c.dtype == dtype
                && c.aux.as_deref() == aux
                && c.variant == variant
                && c.values.is_plain()
                && c.hazard.is_none()
                && if layouts.is_empty() {
                    c.layouts.iter().all(|l| *l == Layout::Contiguous)
                } else {
                    c.layouts == layouts
                }
        })
        .expect("cell")
}

fn predict(
    op: &str,
    dtype: &str,
    aux: Option<&str>,
    variant: usize,
    layouts: &[Layout],
) -> MetalOutcome {
    metal::predict(
        find(op).expect("op"),
        &cell(op, dtype, aux, variant, layouts),
    )
}

fn names(list: &[&str]) -> MetalOutcome {
    MetalOutcome::Kernel(list.iter().map(|s| s.to_string()).collect())
}

#[test]
fn argsort_instantiates_only_six_dtypes_so_f64_fails_at_load() {
    let d = dispatch();
    let asc: BTreeSet<&str> = d.library.files["sort.metal"]
        .iter()
        .filter_map(|n| n.strip_prefix("asort_asc_"))
        .collect();
    assert_eq!(
        asc,
        BTreeSet::from(["bf16", "f16", "f32", "i64", "u32", "u8"])
    );
    let want = Found::NotInstantiated {
        name: "asort_asc_f64".into(),
        file: "sort.metal".into(),
    };
    assert_eq!(d.kernel(&ASORT_ASC, &[dt(DType::F64)]), want);
    assert_eq!(
        d.kernel(&ASORT_DESC, &[dt(DType::F32)]),
        kernel("asort_desc_f32", "sort.metal")
    );
    let f64_sort = predict("arg_sort_last_dim", "f64", None, 0, &[]);
    assert_eq!(
        f64_sort,
        MetalOutcome::NotInstantiated("asort_asc_f64".into())
    );
}

#[test]
fn unary_f32_is_a_kernel_and_f64_is_refused() {
    let d = dispatch();
    let exp = |t, d: DType| dispatch().kernel(t, &[Key::Str("uexp".into()), dt(d)]);
    assert_eq!(exp(&UNARY_C, DType::F32), kernel("exp_f32", "unary.metal"));
    assert_eq!(
        exp(&UNARY_S, DType::BF16),
        kernel("exp_bf16_strided", "unary.metal")
    );
    let refused = "Metal contiguous unary uexp F64 not implemented";
    assert_eq!(exp(&UNARY_C, DType::F64), Found::Refuses(refused.into()));
    assert_eq!(d.unary_kernel("gelu_erf").as_deref(), Ok("ugelu_erf"));
    assert_eq!(predict("exp", "f32", None, 0, &[]), names(&["exp_f32"]));
    let strided = predict("exp", "f32", None, 0, &[Layout::Transposed]);
    assert_eq!(strided, names(&["exp_f32_strided"]));
    assert_eq!(
        predict("exp", "f64", None, 0, &[]),
        MetalOutcome::Refuses(refused.into())
    );
    // candle-nn's sigmoid goes through its own match, to the same unary library.
    assert_eq!(
        predict("sigmoid", "f16", None, 0, &[]),
        names(&["sigmoid_f16"])
    );
}

#[test]
fn scatter_add_refuses_f32_ids_with_unexpected_dtype() {
    let got = dispatch().kernel(&SCATTER_ADD, &[dt(DType::F32), dt(DType::F32)]);
    let want = "UnexpectedDType { msg: \"scatter-add ids should be u8/u32/i64\", expected: U32, got: F32 }";
    assert_eq!(got, Found::Refuses(want.into()));
    let ok = dispatch().kernel(&SCATTER_ADD, &[dt(DType::U32), dt(DType::F32)]);
    assert_eq!(ok, kernel("sa_u32_f32", "indexing.metal"));
    let cell = predict("scatter_add", "f32", Some("u8"), 0, &[]);
    assert_eq!(cell, names(&["sa_u8_f32"]));
}

#[test]
fn findings_the_tables_imply() {
    // index_select: the Rust table names is_i64_u8, indexing.metal never instantiates it.
    let is = predict("index_select", "u8", Some("i64"), 0, &[]);
    assert_eq!(is, MetalOutcome::NotInstantiated("is_i64_u8".into()));
    // sort_last_dim gathers with its u32 argsort, and the gather table has no (U32, U8).
    let sorted = predict("sort_last_dim", "u8", None, 0, &[]);
    assert_eq!(
        sorted,
        MetalOutcome::Refuses("Metal gather U32 U8 not implemented".into())
    );
    // f64 binary names are formatted, not matched: they fail at load.
    let eq = predict("cmp", "f64", None, 0, &[]);
    assert_eq!(eq, MetalOutcome::NotInstantiated("eq_f64".into()));
    let mm = predict("matmul", "f64", None, 0, &[]);
    assert_eq!(
        mm,
        MetalOutcome::Refuses("Message(\"mlx matmul doesn't support F64\")".into())
    );
    let mm = predict(
        "matmul",
        "f32",
        None,
        0,
        &[Layout::Contiguous, Layout::Transposed],
    );
    assert_eq!(mm, names(&["gemm_nt_f32_f32_*"]));
    let rows = predict(
        "matmul",
        "f32",
        None,
        0,
        &[Layout::Broadcast, Layout::Contiguous],
    );
    assert!(matches!(&rows, MetalOutcome::Refuses(e) if e.starts_with("MatMulNonContiguous")));
    // softmax_last_dim refuses a strided input after its dtype match.
    let sm = predict("softmax_last_dim", "f32", None, 0, &[Layout::Transposed]);
    let want = "Non contiguous softmax-last-dim is not implemented";
    assert_eq!(sm, MetalOutcome::Refuses(want.into()));
    // where_cond takes u8 conditions, and u32 ones only for f32.
    let w = predict("where_cond", "f16", Some("u32"), 0, &[]);
    assert_eq!(
        w,
        MetalOutcome::Refuses("Metal where_cond U32 F16 not implemented".into())
    );
    assert_eq!(
        predict("where_cond", "f32", Some("u32"), 0, &[]),
        names(&["where_u32_f32"])
    );
}

#[test]
fn gemv_family_for_a_single_row() {
    let op = find("matmul").unwrap();
    let mut c = cell("matmul", "f32", None, 0, &[]);
    c.knobs[1] = 1; // m = 1
    assert_eq!(metal::predict(op, &c), names(&["gemv_t_float32_bm*"]));
}

#[test]
fn preprocessor_names_are_collected_as_instantiated() {
    let src = r#"
        template <typename T> [[kernel]] void generic(device T *x) {}
        template [[host_name("a" "_" "f32")]] [[kernel]] decltype(generic<float>) generic<float>;
        kernel void plain_kernel(device float *x) {}
        [[kernel]] void another(device float *x) {}
    "#;
    let got: Vec<String> = kernel_names(src).into_iter().collect();
    assert_eq!(got, ["a_f32", "another", "plain_kernel"]);
    let d = dispatch();
    assert!(d.library.has("unary.metal", "exp_f32"));
    assert!(!d.library.has("unary.metal", "exp_f64"));
    // A name is only found in the library its call loads from.
    assert!(matches!(
        d.check("exp_f32", "sort.metal"),
        Found::NotInstantiated { .. }
    ));
    assert!(d.library.count() > 1000, "{} kernels", d.library.count());
}

#[test]
fn every_op_and_dtype_gets_an_outcome() {
    let m = metal::shared().unwrap();
    let rows = metal::summary(m, 0);
    let routed: BTreeSet<&str> = metal::routes::ROUTES.iter().map(|(n, ..)| *n).collect();
    let mut unknown = Vec::new();
    for op in OPS {
        let unmodelled = metal::unmodelled::is_unmodelled(op.name);
        assert!(
            routed.contains(op.name) != unmodelled,
            "{}: needs a route or an entry in metal::unmodelled, not both",
            op.name
        );
        for d in op.dtypes {
            let auxes: Vec<Option<String>> = if op.aux.0.is_empty() {
                vec![None]
            } else {
                op.aux
                    .0
                    .iter()
                    .map(|a| Some(a.as_str().to_string()))
                    .collect()
            };
            for aux in auxes {
                let row = rows
                    .iter()
                    .find(|r| r.op == op.name && r.dtype == d.as_str() && r.aux == aux);
                assert!(row.is_some(), "{} {} {aux:?}: no row", op.name, d.as_str());
            }
        }
    }
    for r in &rows {
        for o in r.outcomes() {
            check_against_library(m, o);
            if let MetalOutcome::Unknown(why) = o {
                if !metal::unmodelled::is_unmodelled(r.op) {
                    unknown.push(format!("{}: {why}", r.label()));
                }
            }
        }
    }
    let unlisted: Vec<&String> = unknown
        .iter()
        .filter(|u| !ALLOWED_UNKNOWN.contains(&u.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "unknown outcomes not listed: {unlisted:#?}"
    );
    if let Ok(path) = std::env::var("METAL_SUMMARY") {
        std::fs::write(path, metal::render(&rows)).unwrap();
    }
}

/// A kernel outcome names only instantiated kernels; a not-instantiated one names a kernel no
/// library has.
fn check_against_library(m: &metal::Metal, o: &MetalOutcome) {
    let lib = &m.dispatch.library;
    let anywhere = |n: &str| lib.files.keys().any(|f| lib.has(f, n));
    match o {
        MetalOutcome::Kernel(ns) => ns.iter().for_each(|n| assert!(anywhere(n), "{n}")),
        MetalOutcome::NotInstantiated(n) => assert!(!anywhere(n), "{n} exists"),
        _ => {}
    }
}
