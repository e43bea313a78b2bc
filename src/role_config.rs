//! Loading a role's config: the file (or the built-in default), then command-line flags on
//! top, then validation. Every error names its source, the field and what is wrong.

use crate::cli::ConfigArgs;
use std::path::Path;
use std::process::ExitCode;
use strata_contracts::config::{self, ConfigError, Validate};

/// Exit code for a config that cannot be used.
pub const EXIT_CONFIG: u8 = 2;

/// What a role's command line asks for, once its config is settled.
pub enum Settled<T> {
    /// Run the role with this config.
    Run(T),
    /// Nothing to run: exit with this code (default printed, config checked, or an error
    /// already reported).
    Exit(ExitCode),
}

/// The steps every role's command line takes before running: `--print-default-config`,
/// loading the file or the default, applying the flags (`apply_flags` says whether it
/// changed anything), validating (errors on stderr, exit 2) and `--check-config`.
pub fn settle<T: serde::de::DeserializeOwned + Validate>(
    args: &ConfigArgs,
    default_toml: &str,
    apply_flags: impl FnOnce(&mut T) -> bool,
) -> Settled<T> {
    if args.print_default_config {
        print!("{default_toml}");
        return Settled::Exit(ExitCode::SUCCESS);
    }
    let mut loaded = match load::<T>(args.config.as_deref(), default_toml) {
        Ok(l) => l,
        Err(e) => return Settled::Exit(config_error(e)),
    };
    let flags = apply_flags(&mut loaded.config);
    if let Err(e) = loaded.validate(flags) {
        return Settled::Exit(config_error(e));
    }
    if args.check_config {
        println!("{}: ok", loaded.source);
        return Settled::Exit(ExitCode::SUCCESS);
    }
    Settled::Run(loaded.config)
}

fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

/// A loaded config and a description of where it came from, for error messages.
struct Loaded<T> {
    /// The config.
    pub config: T,
    /// "FILE" or "built-in defaults".
    pub source: String,
}

/// Reads `file` laid over `default_toml` (fields it leaves out take the documented default),
/// or parses `default_toml` alone when there is none.
fn load<T: serde::de::DeserializeOwned>(
    file: Option<&Path>,
    default_toml: &str,
) -> Result<Loaded<T>, ConfigError> {
    match file {
        Some(path) => Ok(Loaded {
            config: config::read_over(default_toml, path)?,
            source: path.display().to_string(),
        }),
        None => {
            let source = "built-in defaults".to_string();
            Ok(Loaded {
                config: config::parse(&source, default_toml)?,
                source,
            })
        }
    }
}

impl<T: Validate> Loaded<T> {
    /// Validates after flags were applied (`flags_applied` adds that to the source name).
    fn validate(&self, flags_applied: bool) -> Result<(), ConfigError> {
        let source = if flags_applied {
            format!("{} with command-line flags", self.source)
        } else {
            self.source.clone()
        };
        config::check(&source, &self.config)
    }
}
