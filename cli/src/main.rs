//! flowlayer: the command line client for running stacks (stacks.md section 3).
//!
//! Wiring only, on the main thread: parse the command line, run the
//! subcommand, print its error on stderr and exit with its code. Everything
//! else is in `cmd/`; every subcommand is one short-lived session (or, for
//! `logs -f`, one per server run) over `flowlayer-client`.

mod args;
mod cmd;
mod error;
mod grep;
mod out;
mod select;
mod stack;
mod when;

use error::{exit, CliError};
use std::process::ExitCode;

fn main() -> ExitCode {
    let action = match args::parse(std::env::args_os().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Error: {e}");
            match e.verb() {
                Some(v) => eprintln!("Usage: {}", v.usage()),
                None => eprintln!("Run \"flowlayer --help\" for the commands and flags."),
            }
            return ExitCode::from(exit::USAGE);
        }
    };
    let args = match action {
        args::Action::Help => {
            print!("{}", args::help_text());
            return ExitCode::SUCCESS;
        }
        args::Action::Version => {
            println!("{}", args::version_text());
            return ExitCode::SUCCESS;
        }
        args::Action::Run(a) => a,
    };
    let mut out = out::Out::new(out::color_wanted(args.no_color));
    let args = *args;
    let result = cmd::run(&args, &mut out).and_then(|()| out.flush());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            // What was printed stays printed, then the error follows it.
            let _ = out.flush();
            for line in e.to_string().lines() {
                eprintln!("Error: {line}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
