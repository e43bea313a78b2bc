//! Role config files: TOML, one per role, each with a `version` field.
//!
//! Loading is two steps so that every error names where it came from: serde turns the TOML
//! into the typed struct (and names the field path on a type error or an unknown key), then
//! [`Validate`] checks what types cannot (addresses that collide, directories that must
//! exist, header values that must parse).

mod cache_control;
pub mod control_plane;
pub mod edge;
pub mod midtier;
pub mod origin;
pub mod steering;

pub use cache_control::validate_cache_control;

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::Path;

/// The config format version this build reads and writes.
pub const CONFIG_VERSION: u32 = 1;

/// A semantic problem with one field of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, as written in the TOML file (`storage.root`).
    pub field: String,
    /// What is wrong with it, in words an operator can act on.
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.reason)
    }
}

/// Checks that a parsed config makes sense as a whole.
pub trait Validate {
    /// Returns the first problem found, naming its field.
    fn validate(&self) -> Result<(), FieldError>;
}

/// Why a config could not be used. The `source` names a file or "built-in defaults".
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{source_name}: cannot read: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{source_name}: not valid TOML: {message}")]
    Syntax { source_name: String, message: String },
    /// A field has the wrong type, an unknown name, or a bad value.
    #[error("{source_name}: {error}")]
    Field { source_name: String, error: FieldError },
}

/// Parses `text` (named `source_name` in errors) into `T`, without validating it.
pub fn parse<T: DeserializeOwned>(source_name: &str, text: &str) -> Result<T, ConfigError> {
    let table = parse_table(source_name, text)?;
    from_table(source_name, table)
}

/// Parses `text` laid over the role's documented default `base`: a field the file leaves out
/// takes the value `base` shows, so roles that share a config type keep their own defaults.
pub fn parse_over<T: DeserializeOwned>(base: &str, source_name: &str, text: &str) -> Result<T, ConfigError> {
    let mut table = parse_table("built-in defaults", base)?;
    merge(&mut table, parse_table(source_name, text)?);
    from_table(source_name, table)
}

/// Lays `over` onto `base`: tables merge key by key, anything else (arrays too) replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn parse_table(source_name: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        source_name: source_name.to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

fn from_table<T: DeserializeOwned>(source_name: &str, table: toml::Table) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(top level)".to_string()
        } else {
            path
        };
        ConfigError::Field {
            source_name: source_name.to_string(),
            // toml appends "in `field`" on later lines; the path is already named.
            error: FieldError::new(field, first_line(&e.into_inner().to_string())),
        }
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim_end().to_string()
}

/// Reads the config file at `path` laid over the documented default `base` (see
/// [`parse_over`]), without validating it.
pub fn read_over<T: DeserializeOwned>(base: &str, path: &Path) -> Result<T, ConfigError> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        source_name: source_name.clone(),
        error,
    })?;
    parse_over(base, &source_name, &text)
}

/// Validates `config`, naming `source_name` in the error.
pub fn check<T: Validate>(source_name: &str, config: &T) -> Result<(), ConfigError> {
    config.validate().map_err(|error| ConfigError::Field {
        source_name: source_name.to_string(),
        error,
    })
}

/// Checks the `version` field common to every config file.
pub(crate) fn check_version(version: u32) -> Result<(), FieldError> {
    if version == CONFIG_VERSION {
        Ok(())
    } else {
        Err(FieldError::new(
            "version",
            format!("this build reads config version {CONFIG_VERSION}, the file says {version}"),
        ))
    }
}
