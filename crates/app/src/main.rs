//! The `bulwark` binary. All the work is in the library (`bulwark_app::cli`), so that the tests can
//! reach every part of it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bulwark_app::cli::run(bulwark_app::cli::Cli::parse())
}
