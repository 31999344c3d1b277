//! Tests of the coverage page: the parser, the call scan, the item matching and the committed
//! page being current.

use super::calls::{covers, names};
use super::*;
use std::collections::BTreeSet;

#[test]
fn a_struct_constructor_names_the_struct_and_nothing_else() {
    let item = |key: &str| Item {
        key: key.into(),
        file: "linear.rs".into(),
    };
    let nn = |p: &str| Ref::Nn(p.into());
    assert!(names(&nn("Linear::new"), &item("linear::Linear"), false));
    assert!(names(&nn("Linear"), &item("linear::Linear"), false));
    assert!(!names(
        &nn("Module::forward"),
        &item("linear::Linear"),
        false
    ));
    assert!(!names(
        &nn("ops::rms_norm"),
        &item("layer_norm::RmsNorm"),
        false
    ));
    assert!(names(&nn("ops::rms_norm"), &item("ops::rms_norm"), false));
}

fn methods(src: &str) -> Vec<String> {
    tensor_methods(src).0
}

#[test]
fn coverage_parser_finds_pub_fns_of_impl_tensor_only() {
    let src = r#"
        impl Tensor {
            /// docs with `pub fn fake(` in them
            pub fn narrow(&self, d: usize) -> Result<Self> {
                fn inner() {}
                let s = "pub fn in_a_string() {";
                let c = '{';
                Ok(self.clone())
            }
            fn private(&self) {}
            pub(crate) fn crate_only(&self) {}
            pub const fn konst(&self) -> usize { 0 }
            #[cfg(test)]
            pub fn test_helper(&self) {}
            #[cfg(feature = "cuda")]
            pub fn cuda_only<'a>(&'a self) -> &'a Self { self }
        }
        impl Foo { pub fn not_tensor(&self) {} }
        impl std::ops::Add<Tensor> for Tensor { fn add(self, r: Tensor) -> Tensor { r } }
        impl<T: Into<f64>> crate::Tensor { pub fn generic_impl(&self) {} }
    "#;
    assert_eq!(
        methods(src),
        ["narrow", "konst", "cuda_only", "generic_impl"]
    );
    assert_eq!(tensor_methods(src).1, 1, "one cfg(test) fn left out");
}

#[test]
fn coverage_parser_expands_macro_written_methods() {
    let src = r#"
        macro_rules! unary_op {
            ($fn_name:ident, $op_name:ident) => {
                pub fn $fn_name(&self) -> Result<Self> { self.unary::<$op_name>() }
            };
        }
        macro_rules! extract_dims {
            ($fn_name:ident, $cnt:tt, $dims:expr, $out_type:ty) => {
                impl Shape { pub fn $fn_name(&self) -> Result<$out_type> { todo!() } }
                impl crate::Tensor {
                    pub fn $fn_name(&self) -> Result<$out_type> { self.shape().$fn_name() }
                }
            };
        }
        impl Tensor {
            unary_op!(exp, Exp);
            unary_op!(log, Log);
            undefined_here!(mystery);
        }
        extract_dims!(dims2, 2, |d: &[usize]| (d[0], d[1]), (usize, usize));
        #[cfg(test)]
        mod tests {
            impl Tensor { pub fn in_test_mod(&self) {} }
        }
    "#;
    let (names, _, unexpanded) = tensor_methods(src);
    assert_eq!(names, ["exp", "log", "dims2"]);
    assert_eq!(unexpanded, ["undefined_here!"]);
}

#[test]
fn coverage_parser_reads_enums_structs_and_module_impls() {
    let src = r#"
        pub enum Activation {
            #[default]
            #[serde(alias = "gelu")]
            Gelu,
            Elu(f64),
            Named { x: f32 },
        }
        pub struct Linear { weight: Tensor }
        struct Hidden;
        pub struct NoModule(f32);
        impl super::Module for Linear { fn forward(&self) {} }
        impl crate::Module for Hidden { fn forward(&self) {} }
        pub fn free(x: &Tensor) -> Result<Tensor> { x.exp() }
        #[cfg(test)]
        pub fn only_in_tests() {}
    "#;
    let items = parse_items(&tokenize(src));
    assert_eq!(items.enums[0].variants, ["Gelu", "Elu", "Named"]);
    assert_eq!(
        items.structs,
        [
            ("Linear".to_string(), true),
            ("Hidden".to_string(), false),
            ("NoModule".to_string(), true)
        ]
    );
    let modules: Vec<_> = items
        .impls
        .iter()
        .map(|i| (i.trait_name.clone(), i.self_ty.clone()))
        .collect();
    assert_eq!(
        modules,
        [
            (Some("Module".into()), "Linear".into()),
            (Some("Module".into()), "Hidden".into())
        ]
    );
    let fns: Vec<_> = items.fns.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(fns, ["free"]);
    assert_eq!(items.test_only, ["only_in_tests"]);
}

#[test]
fn coverage_refs_name_methods_tensor_calls_and_nn_paths() {
    let r = refs(&tokenize(
        "x.index_select(&i, 0)?; Tensor::cat(&[&a], 0)?; candle_nn::ops::softmax(&x, 1)?; \
         let a = candle_nn::Activation::Gelu; y.to_dtype::<f32>(); z.len; \"w.in_string()\"",
    ));
    let want: BTreeSet<Ref> = [
        Ref::Method("index_select".into()),
        Ref::Method("cat".into()),
        Ref::Method("to_dtype".into()),
        Ref::Nn("ops::softmax".into()),
        Ref::Nn("Activation::Gelu".into()),
    ]
    .into_iter()
    .collect();
    assert_eq!(r, want);
}

#[test]
fn coverage_every_sweep_op_calls_a_candle_item() {
    for c in sweep_coverings() {
        assert!(!c.refs.is_empty(), "op {} names no candle call", c.name);
    }
}

/// Each hand-listed non-Tensor call still occurs in its case file, so the list cannot
/// outlive the call it explains.
#[test]
fn coverage_not_tensor_calls_still_occur() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cases");
    for (case, m, _) in NOT_TENSOR_CALLS {
        let src = std::fs::read_to_string(dir.join(format!("{case}.rs"))).unwrap();
        assert!(
            refs(&tokenize(&src)).contains(&Ref::Method(m.to_string())),
            "{case}.rs no longer calls `.{m}(`: remove it from NOT_TENSOR_CALLS"
        );
    }
}

/// The committed reports/COVERAGE.md is what `repro coverage` generates now: regenerated
/// into a temporary folder and compared.
#[test]
fn coverage_committed_page_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = locate(&root).expect("cargo metadata");
    let tmp = std::env::temp_dir().join(format!("coverage-page-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let generated = tmp.join(PAGE);
    harness::report::write_atomic(&generated, &generate(&src).expect("generate")).unwrap();
    let generated = std::fs::read_to_string(&generated).unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
    let committed = std::fs::read_to_string(root.join("reports").join(PAGE))
        .unwrap_or_else(|e| panic!("reports/{PAGE}: {e}: run `cargo run -p repro -- coverage`"));
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "length".to_string(), |n| format!("line {}", n + 1));
        panic!(
            "reports/{PAGE} is stale (first difference: {line}): run `cargo run -p repro -- coverage` and review the diff"
        );
    }
}

/// Each exclusion names an item the page lists, none of them covered, and the list stays
/// short. (No test requires every item covered: the list of items grows faster than the ops.)
#[test]
fn coverage_exclusions_name_uncovered_items_and_stay_few() {
    assert!(
        EXCLUDED.len() <= MAX_EXCLUDED,
        "{} exclusions: at most {MAX_EXCLUDED}",
        EXCLUDED.len()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = locate(&root).expect("cargo metadata");
    let items = all_items(&src).expect("items");
    let mut coverings = sweep_coverings();
    coverings.extend(case_coverings(&src.workspace_root.join(CASES_DIR)).expect("cases"));
    for (pattern, reason) in EXCLUDED {
        assert!(
            !reason.trim().is_empty() && !reason.contains('\n'),
            "{pattern}: a one-line reason"
        );
        let hit: Vec<_> = items
            .listed()
            .filter(|(i, _)| super::excluded::matches(pattern, &i.key))
            .collect();
        assert!(!hit.is_empty(), "exclusion `{pattern}` names no item");
        for (item, section) in hit {
            let by: Vec<&str> = coverings
                .iter()
                .filter(|c| covers(&c.refs, item, section))
                .map(|c| c.name.as_str())
                .collect();
            assert!(
                by.is_empty(),
                "`{}` is excluded (`{pattern}`) but covered by {by:?}: drop the exclusion",
                item.key
            );
        }
    }
}

#[test]
fn coverage_struct_methods_and_quantized_forward_are_matched() {
    let r = refs(&tokenize(
        "let q = candle_core::quantized::QMatMul::from_qtensor(\
         candle_core::quantized::QTensor::quantize(&w, candle_core::quantized::GgmlDType::Q4_0)?)?; \
         candle_core::Module::forward(&q, &x)?; \
         let mut c = candle_nn::kv_cache::KvCache::new(2, 8); c.append(&k, &v)?;",
    ));
    let item = |key: &str, file: &str| Item {
        key: key.into(),
        file: file.into(),
    };
    let q = |key: &str| covers(&r, &item(key, "quantized/mod.rs"), Section::Quantized);
    assert!(q("QMatMul::forward[Q4_0]"));
    assert!(!q("QMatMul::forward[Q8_0]"), "another dtype");
    assert!(q("QTensor::quantize") && q("QMatMul::from_qtensor"));
    assert!(!q("QTensor::dequantize"), "not called");
    let nn = |key: &str| covers(&r, &item(key, "kv_cache.rs"), Section::Nn);
    assert!(nn("kv_cache::KvCache::append"));
    assert!(!nn("kv_cache::RotatingKvCache::append"), "another struct");
    assert!(!nn("kv_cache::KvCache::reset"), "not called");
}
