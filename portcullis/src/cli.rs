//! The command line, parsed by hand: one command and two options do not need an argument parser.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::suite::PortBase;

/// What `--help` prints, and what a usage error is followed by.
pub const USAGE: &str = "\
Usage: portcullis up [--data-dir DIR] [--port-base N]
       portcullis --help | --version

Runs the whole Portcullis suite on this machine with a development service CA,
and prints the addresses and grpcurl commands to try it.

Options:
  --data-dir DIR   certificates, secrets and databases; made on first start, reused after
                   (default ./portcullis-data)
  --port-base N    services listen on ports N+1 to N+11 (default 7400): gRPC and admin on
                   127.0.0.1, pki-svc's SCEP and CRLs (plain HTTP) on every interface at N+11
  -h, --help       print this help
  --version        print the version
";

/// Where `up` keeps its files when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "./portcullis-data";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the suite.
    Up(UpOptions),
    /// Print the usage.
    Help,
    /// Print the version.
    Version,
}

/// The options of `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpOptions {
    /// Where certificates, secrets and databases live.
    pub data_dir: PathBuf,
    /// The port the suite's ports are counted from.
    pub port_base: PortBase,
}

/// A command line that cannot be understood. The message says which argument is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().map(utf8);
    match args.next().transpose()?.as_deref() {
        None => Err(UsageError("no command given".into())),
        Some("-h" | "--help" | "help") => Ok(Command::Help),
        Some("--version" | "-V") => Ok(Command::Version),
        Some("up") => parse_up(args),
        Some(other) => Err(UsageError(format!("unknown command `{other}`"))),
    }
}

fn parse_up(mut args: impl Iterator<Item = Result<String, UsageError>>) -> Result<Command, UsageError> {
    let mut data_dir: Option<PathBuf> = None;
    let mut port_base: Option<PortBase> = None;
    while let Some(arg) = args.next().transpose()? {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg, None),
        };
        let mut value = || match inline.clone() {
            Some(value) => Ok(value),
            None => args
                .next()
                .transpose()?
                .ok_or_else(|| UsageError(format!("{flag} needs a value"))),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--data-dir" => {
                let dir = value()?;
                if dir.is_empty() {
                    return Err(UsageError("--data-dir must not be empty".into()));
                }
                set_once(&mut data_dir, "--data-dir", PathBuf::from(dir))?;
            }
            "--port-base" => {
                let raw = value()?;
                let base = raw.parse::<u16>().ok().and_then(PortBase::new).ok_or_else(|| {
                    UsageError(format!(
                        "--port-base must be a number from 0 to {}, got `{raw}`",
                        PortBase::MAX.get()
                    ))
                })?;
                set_once(&mut port_base, "--port-base", base)?;
            }
            other => return Err(UsageError(format!("unknown argument `{other}` for `up`"))),
        }
    }
    Ok(Command::Up(UpOptions {
        data_dir: data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        port_base: port_base.unwrap_or(PortBase::DEFAULT),
    }))
}

fn utf8(arg: OsString) -> Result<String, UsageError> {
    arg.into_string()
        .map_err(|arg| UsageError(format!("argument {} is not valid UTF-8", arg.to_string_lossy())))
}

fn set_once<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), UsageError> {
    if slot.replace(value).is_some() {
        return Err(UsageError(format!("{flag} given twice")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn up(data_dir: &str, port_base: u16) -> Command {
        Command::Up(UpOptions {
            data_dir: PathBuf::from(data_dir),
            port_base: PortBase::new(port_base).unwrap(),
        })
    }

    #[test]
    fn up_alone_uses_the_defaults() {
        assert_eq!(parse_str(&["up"]), Ok(up("./portcullis-data", 7400)));
    }

    #[test]
    fn up_takes_a_data_dir_and_a_port_base_in_either_order_and_form() {
        assert_eq!(
            parse_str(&["up", "--data-dir", "/tmp/pc", "--port-base", "9000"]),
            Ok(up("/tmp/pc", 9000))
        );
        assert_eq!(
            parse_str(&["up", "--port-base=9000", "--data-dir=/tmp/pc"]),
            Ok(up("/tmp/pc", 9000))
        );
    }

    #[test]
    fn help_and_version_are_commands() {
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["-h"]), Ok(Command::Help));
        assert_eq!(parse_str(&["up", "--help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["--version"]), Ok(Command::Version));
    }

    #[test]
    fn unknown_commands_and_arguments_are_usage_errors() {
        assert!(parse_str(&[]).is_err());
        assert!(parse_str(&["down"]).unwrap_err().to_string().contains("`down`"));
        assert!(
            parse_str(&["up", "--verbose"])
                .unwrap_err()
                .to_string()
                .contains("`--verbose`")
        );
        assert!(parse_str(&["up", "extra"]).is_err());
    }

    #[test]
    fn a_flag_without_its_value_is_a_usage_error() {
        assert_eq!(
            parse_str(&["up", "--data-dir"]).unwrap_err().to_string(),
            "--data-dir needs a value"
        );
        assert!(parse_str(&["up", "--data-dir="]).is_err());
    }

    #[test]
    fn a_port_base_leaving_no_room_for_the_suite_is_refused() {
        assert!(parse_str(&["up", "--port-base", "65524"]).is_ok());
        let err = parse_str(&["up", "--port-base", "65525"]).unwrap_err();
        assert!(err.to_string().contains("0 to 65524"), "{err}");
        assert!(parse_str(&["up", "--port-base", "-1"]).is_err());
        assert!(parse_str(&["up", "--port-base", "seven"]).is_err());
    }

    #[test]
    fn a_flag_given_twice_is_a_usage_error() {
        assert!(parse_str(&["up", "--port-base", "1", "--port-base", "2"]).is_err());
    }
}
