//! `peregrine worker`: analysis workers on a PostgreSQL job queue shared
//! with `peregrine serve --workers 0` (see the `peregrine-server` crate).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The service's settings (the same flags, file and variables as
    /// `serve`; `--db` must be `postgres://...`; listening and HTTP
    /// settings are not used).
    #[command(flatten)]
    pub flags: peregrine_server::ServeFlags,
    /// Jobs analysed at once by this process (default 1).
    #[arg(long)]
    pub jobs: Option<usize>,
}

pub fn run(args: WorkerArgs) -> Result<ExitCode> {
    peregrine_server::init_tracing();
    let mut raw = args.flags.to_raw()?;
    if args.jobs.is_some() {
        raw.workers = args.jobs;
    }
    let config = peregrine_server::Config::from_raw(raw)?;
    peregrine_server::worker::run_worker(config)?;
    Ok(ExitCode::SUCCESS)
}
