//! The `cutover` binary: parse the command line, run it, map the outcome to an
//! exit code (see `cutover::exit` and the README's table).

use std::process::ExitCode;

use clap::Parser;
use cutover::cli::{self, Cli};
use cutover::exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cutover: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("cutover: {e}");
            e.exit_code()
        }
    }
}
