//! `fuzz-seeds DIR [TARGET...]`: writes each target's seeds into
//! `DIR/<target>/` (used by `fuzz/run.sh`; existing corpus files stay).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: fuzz-seeds DIR [TARGET...]");
        return ExitCode::from(2);
    };
    let mut names: Vec<String> = args.collect();
    if names.is_empty() {
        names = peregrine_fuzzing::TARGETS
            .iter()
            .map(|t| t.name.to_string())
            .collect();
    }
    for name in &names {
        if !peregrine_fuzzing::TARGETS.iter().any(|t| t.name == name) {
            eprintln!("fuzz-seeds: no target {name:?}");
            return ExitCode::from(2);
        }
        let out = dir.join(name);
        let seeds = peregrine_fuzzing::seeds::seeds(name);
        if let Err(e) = std::fs::create_dir_all(&out).and_then(|_| {
            seeds
                .iter()
                .try_for_each(|(n, bytes)| std::fs::write(out.join(format!("seed-{n}")), bytes))
        }) {
            eprintln!("fuzz-seeds: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        eprintln!("fuzz-seeds: {name}: {} seeds", seeds.len());
    }
    ExitCode::SUCCESS
}
