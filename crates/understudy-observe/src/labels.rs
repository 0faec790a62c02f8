//! Bounded label values.

use understudy_core::{Operation, OutcomeKind};

/// The route label when a request carries no [`RouteName`](understudy_core::RouteName).
pub(crate) const UNKNOWN_ROUTE: &str = "unknown";

/// The route label once more distinct routes than
/// [`MAX_ROUTES`] were seen.
pub(crate) const OTHER_ROUTE: &str = "other";

/// The most distinct route labels one [`ObserveLayer`](crate::ObserveLayer)
/// records; later ones are counted as [`OTHER_ROUTE`].
pub(crate) const MAX_ROUTES: usize = 256;

/// The key label of a request without an identified caller.
pub(crate) const NO_KEY: &str = "";

/// The key label once more distinct caller key names than [`MAX_KEYS`]
/// were seen on one route.
pub(crate) const OTHER_KEY: &str = "other";

/// The most distinct caller key names one route's metrics record; later
/// ones are counted as [`OTHER_KEY`]. Key names come from configuration,
/// so this only bounds a misuse.
pub(crate) const MAX_KEYS: usize = 256;

/// The position of `kind` in [`OutcomeKind::ALL`], for per-outcome handle
/// arrays; `None` for a kind this crate does not know yet.
pub(crate) fn outcome_index(kind: OutcomeKind) -> Option<usize> {
    OutcomeKind::ALL.iter().position(|k| *k == kind)
}

/// The position of `operation` in [`Operation::ALL`], for per-operation
/// handle arrays; `None` for an operation this crate does not know yet.
pub(crate) fn operation_index(operation: Operation) -> Option<usize> {
    Operation::ALL.iter().position(|o| *o == operation)
}

/// `"true"` or `"false"`.
pub(crate) const fn bool_label(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_kind_has_an_index() {
        for (i, kind) in OutcomeKind::ALL.iter().enumerate() {
            assert_eq!(outcome_index(*kind), Some(i));
        }
    }

    #[test]
    fn every_operation_has_an_index() {
        for (i, operation) in Operation::ALL.iter().enumerate() {
            assert_eq!(operation_index(*operation), Some(i));
        }
    }
}
