//! `peregrine serve`: the HTTP service (see the `peregrine-server` crate).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub flags: peregrine_server::ServeFlags,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    peregrine_server::init_tracing();
    let config = peregrine_server::Config::from_raw(args.flags.to_raw()?)?;
    peregrine_server::run_blocking(config)?;
    Ok(ExitCode::SUCCESS)
}
