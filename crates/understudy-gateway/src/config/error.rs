//! [`ConfigError`], and TOML errors reported by line and column without
//! echoing what the file holds.

use understudy_core::config::InvalidSetting;

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The key, as a path (`providers[1].base_url`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A setting a library crate refused, under the path of its section
/// (`retry`, `providers[1]`).
pub(super) fn setting(section: &str, error: &InvalidSetting) -> ConfigError {
    invalid(format!("{section}.{}", error.key()), error.problem())
}

/// A TOML error as `line L, column C: message`, without the source line
/// the parser's own `Display` quotes: a pasted key must not be echoed.
pub(super) fn parse_error(text: &str, error: &toml::de::Error) -> String {
    let message = redact_quoted(error.message().trim_end_matches('\n'));
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count().saturating_add(1);
            let column = before
                .rsplit('\n')
                .next()
                .map_or(0, |l| l.chars().count())
                .saturating_add(1);
            format!("TOML error at line {line}, column {column}: {message}")
        }
        None => format!("TOML error: {message}"),
    }
}

/// Replaces every double-quoted string in a parser message (a value the
/// file holds, which may be a pasted secret) with `"…"`; key and variant
/// names, quoted in backticks, stay.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let mut inside = true;
    for part in parts {
        if inside {
            out.push_str("\"…");
        } else {
            out.push('"');
            out.push_str(part);
        }
        inside = !inside;
    }
    out
}
