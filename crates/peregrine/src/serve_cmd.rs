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

#[derive(Args, Debug)]
pub struct OpenapiArgs {
    /// Write the document to this file instead of standard output.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// `peregrine openapi`: the service's OpenAPI document (JSON), the one
/// `/api/v1/openapi.json` serves, for generating clients.
pub fn openapi(args: OpenapiArgs) -> Result<ExitCode> {
    let mut json = peregrine_server::openapi().to_pretty_json()?;
    json.push('\n');
    match &args.out {
        Some(p) => std::fs::write(p, json)
            .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", p.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout().lock().write_all(json.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
