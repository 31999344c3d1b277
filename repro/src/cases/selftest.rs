//! Test-only cases that die the ways a GPU bug can kill a process: a panic outside any step, an
//! abort, a segmentation fault and a hang. They exist so the runner's process isolation can be
//! tested on a machine without a GPU, and are listed only when `CANDLE_REPRO_SELFTEST` is set.

use harness::case::{Case, SnippetRun, Variant};
use harness::Probe;

pub const ENV: &str = "CANDLE_REPRO_SELFTEST";

fn case(name: &'static str, title: &'static str, variants: fn() -> Vec<Variant>) -> Case {
    Case {
        name,
        title,
        claim: "test-only: exercises the suite runner",
        source: "repro/src/cases/selftest.rs",
        upstream: &[],
        snippet: "",
        variants,
        known: &[],
        snippet_run: SnippetRun::CompileOnly("test-only case without a snippet"),
    }
}

fn one(f: fn(&mut Probe)) -> Vec<Variant> {
    vec![Variant::new("only", "dies on purpose", move |p| {
        f(p);
        Ok(())
    })]
}

pub fn cases() -> Vec<Case> {
    vec![
        case("selftest_panic", "panics outside a step", || {
            one(|_| panic!("selftest: deliberate panic outside any step"))
        }),
        case("selftest_abort", "aborts", || {
            one(|_| {
                eprintln!("selftest: about to abort");
                std::process::abort()
            })
        }),
        case("selftest_segfault", "raises SIGSEGV", || {
            one(|_| {
                eprintln!("selftest: about to raise SIGSEGV");
                #[cfg(unix)]
                // SAFETY: resetting a signal to its default action and raising it has no
                // memory-safety preconditions; the process dies. The reset is needed because
                // Rust's own SIGSEGV handler (for stack overflows) ignores a raised signal.
                unsafe {
                    libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                    libc::raise(libc::SIGSEGV);
                }
                std::process::abort()
            })
        }),
        case("selftest_hang", "never finishes", || {
            one(|_| loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            })
        }),
        case("selftest_ok", "finishes normally", || {
            vec![Variant::new("only", "one valid upload", |p| {
                let h = harness::HostTensor::from_fn(candle_core::DType::U32, &[3], |i| i as f64);
                p.upload("x", &h)?;
                Ok(())
            })]
        }),
    ]
}
