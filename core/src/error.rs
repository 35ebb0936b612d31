//! Configuration errors that say which field was wrong, what it expected and what it found.
//!
//! The core names a field by its name in the config (the serde name: `steps`, `eta`,
//! `clip_percentile`, `variance`); each adapter turns it into its own spelling (the command
//! line into `--steps`, the page into the control's label) with [`ConfigError::message_with`],
//! so that no message of the core names a command-line flag.

/// A configuration value out of range, of the wrong kind, or not allowed in its context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: expected {expected}, found {found}")]
pub struct ConfigError {
    /// The field, as the config spells it (`steps`, `eta`, `variance`).
    pub field: String,
    /// What a valid value is (`at least 1`, `a number in [0, 1]`).
    pub expected: String,
    /// What was given.
    pub found: String,
}

impl ConfigError {
    /// `field: expected {expected}, found {found}`.
    pub fn new(field: impl Into<String>, expected: impl Into<String>, found: impl std::fmt::Display) -> Self {
        Self { field: field.into(), expected: expected.into(), found: found.to_string() }
    }

    /// The message with the field spelled by `name` (an adapter's name for it).
    pub fn message_with(&self, name: impl FnOnce(&str) -> String) -> String {
        format!("{}: expected {}, found {}", name(&self.field), self.expected, self.found)
    }
}

/// Checks that `value` is finite and above 0.
pub(crate) fn positive(field: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(ConfigError::new(field, "a finite number > 0", value)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_spell_the_field() {
        let e = ConfigError::new("clip_percentile", "a number in (0, 1]", 2.0);
        assert_eq!(e.to_string(), "clip_percentile: expected a number in (0, 1], found 2");
        assert_eq!(e.message_with(|f| format!("--{}", f.replace('_', "-"))), "--clip-percentile: expected a number in (0, 1], found 2");
        assert!(positive("rtol", 0.0).is_err() && positive("rtol", f64::NAN).is_err() && positive("rtol", 1e-5).is_ok());
    }
}
