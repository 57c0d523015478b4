//! `portcullis`: runs the whole Portcullis suite on this machine (`portcullis up`).

mod banner;
mod cli;
mod data_dir;
mod default_policy;
mod default_scep;
mod identities;
mod suite;
mod up;

use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Up(options)) => up::main(options),
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("portcullis {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("portcullis: {e}\n\n{}", cli::USAGE);
            ExitCode::from(2)
        }
    }
}
