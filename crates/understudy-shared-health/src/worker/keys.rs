//! The names of the keys and the channel under a prefix, and the applier
//! of the records read from them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use understudy_health::HealthRegistry;

use super::Shared;
use crate::names;
use crate::record::{Clock, Reading, Record};

/// The names of the keys and the channel.
#[derive(Debug)]
pub(super) struct Keys {
    pub(super) prefix: String,
    pub(super) channel: String,
    pub(super) pattern: String,
}

pub(super) enum KeyKind<'a> {
    Decision(&'a str),
    Trial,
    Other,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        let mut pattern = String::with_capacity(prefix.len().saturating_add(2));
        for c in prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str(":*");
        Self {
            prefix: prefix.to_owned(),
            channel: format!("{prefix}:events"),
            pattern,
        }
    }

    pub(super) fn decision(&self, provider: &str) -> String {
        format!("{}:{provider}", self.prefix)
    }

    pub(super) fn trial(&self, provider: &str) -> String {
        format!("{}:trial:{provider}", self.prefix)
    }

    pub(super) fn classify<'a>(&self, key: &'a str) -> KeyKind<'a> {
        match key
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
        {
            Some(rest) if rest.starts_with("trial:") => KeyKind::Trial,
            Some(provider) if !provider.is_empty() => KeyKind::Decision(provider),
            _ => KeyKind::Other,
        }
    }
}

/// Applies records read from the store to the registry.
#[derive(Clone)]
pub(super) struct Applier {
    pub(super) registry: HealthRegistry,
    pub(super) replica: Arc<str>,
    pub(super) shared: Arc<Shared>,
}

impl Applier {
    pub(super) fn apply(&self, bytes: &[u8], key_provider: Option<&str>) {
        match Record::read(bytes, key_provider, &self.replica, Clock::now()) {
            Reading::Apply { provider, decision } => {
                self.registry.apply_remote(&provider, decision);
                self.shared.applied.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::APPLIED_TOTAL).increment(1);
            }
            Reading::Garbage => self.garbage(),
            Reading::Own | Reading::Over => {}
        }
    }

    pub(super) fn garbage(&self) {
        self.shared.garbage.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::GARBAGE_TOTAL).increment(1);
        tracing::debug!("shared health: skipped a record that is not one");
    }
}
