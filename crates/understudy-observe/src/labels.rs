//! Bounded label values.

use understudy_core::OutcomeKind;

/// The route label when a request carries no [`RouteName`](understudy_core::RouteName).
pub(crate) const UNKNOWN_ROUTE: &str = "unknown";

/// The route label once more distinct routes than
/// [`MAX_ROUTES`] were seen.
pub(crate) const OTHER_ROUTE: &str = "other";

/// The most distinct route labels one [`ObserveLayer`](crate::ObserveLayer)
/// records; later ones are counted as [`OTHER_ROUTE`].
pub(crate) const MAX_ROUTES: usize = 256;

/// Maps the free-text reason of a health transition to a bounded label.
///
/// `understudy-health` words ejections `consecutive_failures`,
/// `failure_ratio` and `probe_failed`; anything else (another health
/// implementation's wording) is matched loosely, then `other`.
pub(crate) fn ejection_reason(reason: &str) -> &'static str {
    const KNOWN: [&str; 4] = [
        "consecutive_failures",
        "failure_ratio",
        "probe_failed",
        "slow",
    ];
    if let Some(known) = KNOWN.iter().find(|known| reason == **known) {
        return known;
    }
    let lower = reason.to_ascii_lowercase();
    if lower.contains("probe") || lower.contains("trial") {
        "probe_failed"
    } else if lower.contains("consecutive") || lower.contains("in a row") {
        "consecutive_failures"
    } else if lower.contains("ratio") || lower.contains("rate") || lower.contains('%') {
        "failure_ratio"
    } else if lower.contains("slow") || lower.contains("latency") {
        "slow"
    } else {
        "other"
    }
}

/// The position of `kind` in [`OutcomeKind::ALL`], for per-outcome handle
/// arrays; `None` for a kind this crate does not know yet.
pub(crate) fn outcome_index(kind: OutcomeKind) -> Option<usize> {
    OutcomeKind::ALL.iter().position(|k| *k == kind)
}

/// `"true"` or `"false"`.
pub(crate) const fn bool_label(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_reasons_are_bounded() {
        assert_eq!(
            ejection_reason("consecutive_failures"),
            "consecutive_failures"
        );
        assert_eq!(ejection_reason("failure_ratio"), "failure_ratio");
        assert_eq!(ejection_reason("probe_failed"), "probe_failed");
        assert_eq!(
            ejection_reason("5 consecutive failures"),
            "consecutive_failures"
        );
        assert_eq!(
            ejection_reason("failure rate 60% over 10s"),
            "failure_ratio"
        );
        assert_eq!(ejection_reason("trial request failed"), "probe_failed");
        assert_eq!(ejection_reason("too slow"), "slow");
        assert_eq!(ejection_reason("user 1234 said so"), "other");
    }

    #[test]
    fn every_outcome_kind_has_an_index() {
        for (i, kind) in OutcomeKind::ALL.iter().enumerate() {
            assert_eq!(outcome_index(*kind), Some(i));
        }
    }
}
