//! Tests of the labels, the refusal checks, the recorded outputs and the version ranges.

use super::evidence::OUTPUT_HEAD;
use super::results::code_span;
use super::versions::version_span;
use super::*;
use crate::sweep::exec;

fn cuda_sweep() -> SweepRun {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/sweep/cuda/sweep.json");
    SweepRun::read(&p).unwrap()
}

fn divergence(run: &SweepRun, id: &str) -> SweepDivergence {
    run.divergences
        .iter()
        .find(|d| d.id == id && d.repro.is_some())
        .unwrap_or_else(|| panic!("{id} is recorded with a repro"))
        .clone()
}

fn labels(d: &SweepDivergence) -> BTreeMap<String, Label> {
    labelled(d)
        .unwrap()
        .into_iter()
        .map(|(b, _, l)| (b, l))
        .collect()
}

/// The contradictions the review found, planted: a CPU error next to "agrees", CUDA's
/// f32-precision answer in f64 next to "agrees", an expected NaN next to "differs". Each
/// label comes from judging the value beside it again.
#[test]
fn each_label_is_computed_from_its_own_value() {
    let run = cuda_sweep();
    let rms = divergence(&run, "rms-norm-fwd-wrong-result");
    let l = labels(&rms);
    assert_eq!(l["cpu"], Label::Errors, "the CPU refuses f64 rms_norm");
    assert_eq!(
        l["cuda"],
        Label::Differs,
        "1.99999737739563 is not 1.9999975000047505 in f64"
    );

    let nan = divergence(&run, "max-keepdim-fwd-non-finite-nan-middle");
    let l = labels(&nan);
    assert_eq!(l["cpu"], Label::Agrees, "NaN where NaN is expected");
    assert_eq!(l["cuda"], Label::Differs);

    // The same cell with the answer replaced: the label follows the value.
    let mut planted = rms.clone();
    let s = planted.repro.as_mut().unwrap();
    let per = s.evidence.observed.get_mut("forward").unwrap();
    per.insert(
        "cuda".into(),
        exec::Obs::Values {
            dtype: "f64".into(),
            shape: vec![1, 1],
            values: vec![1.9999975000047505],
        },
    );
    per.insert(
        "cpu".into(),
        exec::Obs::Panic {
            message: "boom".into(),
        },
    );
    let l = labels(&planted);
    assert_eq!(l["cuda"], Label::Agrees);
    assert_eq!(l["cpu"], Label::Panics);
}

#[test]
fn a_row_whose_label_contradicts_its_value_is_caught() {
    let bad = [
        "| cpu: **agrees** | `error: unsupported dtype for rmsnorm F64` |",
        "| cuda (NVIDIA H200): **differs** | `panic: called `Option::unwrap()` on a `None` value` |",
        "| cpu: **errors** | `f32 [1] [2]` |",
        "| cpu: **panics** | `f32 [1] [2]` |",
    ];
    for line in bad {
        assert!(contradiction(line).is_some(), "{line}");
    }
    for line in [
        "| cpu: **errors** | `error: unsupported dtype for rmsnorm F64` |",
        "| cuda: **differs** | `f64 [1, 1] [1.99999737739563]` |",
        "| cpu: **agrees** | `f32 [1, 1] [NaN]` |",
    ] {
        assert_eq!(contradiction(line), None, "{line}");
    }
}

#[test]
fn a_summary_naming_a_missing_part_is_caught() {
    let text = "x\n<details><summary>Details: every symptom observed, the program's output on a GPU machine, the searches</summary>\n\nSymptoms\n\nSearched candle's issues and pull requests for: \"a\".\n</details>\n";
    assert!(summary_promises_missing_part(text).is_some());
    let text = text.replace("Symptoms", &format!("{OUTPUT_HEAD} (m; exit code 0):"));
    assert_eq!(summary_promises_missing_part(&text), None);
    let text = text.replace(", the searches", ", the patch");
    assert!(summary_promises_missing_part(&text).is_some());
}

/// Review J (round 3): a panic message quoting code, in single backticks, rendered as
/// broken code spans.
#[test]
fn a_value_holding_a_backtick_gets_double_backticks() {
    let broken = "| cpu: **panics** | `panic: called `Option::unwrap()` on a `None` value` |";
    assert!(broken_code_span(broken).is_some());
    let value = "panic: called `Option::unwrap()` on a `None` value";
    let fixed = format!("| cpu: **panics** | {} |", code_span(value));
    assert_eq!(broken_code_span(&fixed), None, "{fixed}");
    assert_eq!(contradiction(&fixed), None, "{fixed}");
    assert_eq!(
        broken_code_span("| cpu: **agrees** | `f32 [1] [2]` |"),
        None
    );
}

#[test]
fn recorded_outputs_name_their_program_and_exit_code() {
    let o = Outputs::parse("# gpu: X\n=== a 00ff\ncpu: 1\n=== exit 0\n=== b 0001\n=== exit 101\n")
        .unwrap();
    assert_eq!(o.machine, ["gpu: X"]);
    assert_eq!(o.programs["a"], ("00ff".into(), "cpu: 1\n".into(), 0));
    assert_eq!(o.programs["b"].2, 101);
    assert!(Outputs::parse("=== a 00ff\nx\n").is_err(), "no exit line");
    assert!(Outputs::parse("=== a\n=== exit 0\n").is_err(), "no hash");
}

#[test]
fn versions_are_written_as_ranges() {
    let all: Vec<String> = ["0.9.2", "0.10.0", "0.10.1", "0.11.0", "0.11.1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        version_span(&all, &["0.10.0", "0.10.1", "0.11.0"]),
        "0.10.0–0.11.0"
    );
    assert_eq!(version_span(&all, &["0.9.2", "0.11.1"]), "0.9.2, 0.11.1");
    assert_eq!(version_span(&all, &["0.10.1", "0.11.0"]), "0.10.1, 0.11.0");
}
