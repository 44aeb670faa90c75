//! Prints tracking metrics as JSON: `eval_mot GT PRED [mot15|mot17|mot20]
//! [motchallenge|motmetrics] [--repeat N]`. Used by `bench/eval/parity.py`
//! and `bench/eval/speed.py`; with `--repeat`, also prints the median
//! in-process time to stderr.

use std::path::Path;
use std::time::Instant;

use peregrine_eval::{evaluate_mot, Benchmark, MotOptions, Protocol};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err(
            "usage: eval_mot GT PRED [mot15|mot17|mot20] [motchallenge|motmetrics] [--repeat N]"
                .into(),
        );
    }
    let mut opts = MotOptions::default();
    let mut repeat = 1usize;
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "mot15" => opts.benchmark = Some(Benchmark::Mot15),
            "mot17" => opts.benchmark = Some(Benchmark::Mot17),
            "mot20" => opts.benchmark = Some(Benchmark::Mot20),
            "motchallenge" => opts.protocol = Protocol::MotChallenge,
            "motmetrics" => opts.protocol = Protocol::MotMetrics,
            "--repeat" => {
                i += 1;
                repeat = args.get(i).ok_or("--repeat needs a number")?.parse()?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
        i += 1;
    }
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        report = Some(evaluate_mot(
            Path::new(&args[0]),
            Path::new(&args[1]),
            opts,
        )?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    if repeat > 1 {
        eprintln!("median_s {:.6}", times[times.len() / 2]);
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
