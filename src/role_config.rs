//! Loading a role's config: the file (or the built-in default), then command-line flags on
//! top, then validation. Every error names its source, the field and what is wrong.

use std::path::Path;
use strata_contracts::config::{self, ConfigError, Validate};

/// A loaded config and a description of where it came from, for error messages.
pub struct Loaded<T> {
    /// The config.
    pub config: T,
    /// "FILE" or "built-in defaults".
    pub source: String,
}

/// Reads `file`, or parses `default_toml` when there is none.
pub fn load<T: serde::de::DeserializeOwned>(
    file: Option<&Path>,
    default_toml: &str,
) -> Result<Loaded<T>, ConfigError> {
    match file {
        Some(path) => Ok(Loaded { config: config::read(path)?, source: path.display().to_string() }),
        None => {
            let source = "built-in defaults".to_string();
            Ok(Loaded { config: config::parse(&source, default_toml)?, source })
        }
    }
}

impl<T: Validate> Loaded<T> {
    /// Validates after flags were applied (`flags_applied` adds that to the source name).
    pub fn validate(&self, flags_applied: bool) -> Result<(), ConfigError> {
        let source = if flags_applied {
            format!("{} with command-line flags", self.source)
        } else {
            self.source.clone()
        };
        config::check(&source, &self.config)
    }
}
