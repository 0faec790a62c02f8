//! Metric handles labelled by provider and model, registered once per pair
//! and kept in a bounded table ([`PerTarget`]): the token counters and the
//! time-to-first-content histogram. Registering a labelled metric hashes
//! and copies its labels; a request should not pay that every time.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use metrics::{Counter, Histogram, counter, histogram};

use crate::names::{TIME_TO_FIRST_CONTENT_SECONDS, TOKENS_TOTAL};

/// The most provider and model pairs kept per metric; past it, handles are
/// registered on each use (still bounded by configuration: provider names
/// are configured and a provider's models are configured or `*`).
const MAX_PAIRS: usize = 1024;

/// Handles `H` by provider, then model.
pub(crate) struct PerTarget<H> {
    pairs: RwLock<HashMap<String, HashMap<String, H>>>,
}

impl<H> Default for PerTarget<H> {
    fn default() -> Self {
        Self {
            pairs: RwLock::default(),
        }
    }
}

impl<H: Clone> PerTarget<H> {
    /// The handles of `provider` and `model`, registered by `register` the
    /// first time.
    pub(crate) fn get(&self, provider: &str, model: &str, register: impl FnOnce() -> H) -> H {
        if let Some(handles) = self
            .pairs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .and_then(|models| models.get(model))
        {
            return handles.clone();
        }
        let handles = register();
        let mut pairs = self.pairs.write().unwrap_or_else(PoisonError::into_inner);
        if pairs.values().map(HashMap::len).sum::<usize>() < MAX_PAIRS {
            pairs
                .entry(provider.to_owned())
                .or_default()
                .insert(model.to_owned(), handles.clone());
        }
        handles
    }
}

/// `understudy_tokens_total`, input and output, per provider and model.
#[derive(Default)]
pub(crate) struct TokenCounters(PerTarget<[Counter; 2]>);

impl TokenCounters {
    /// Adds an answer's tokens.
    pub(crate) fn record(&self, provider: &str, model: &str, input: u64, output: u64) {
        let [input_counter, output_counter] = self.0.get(provider, model, || {
            [
                register(provider, model, "input"),
                register(provider, model, "output"),
            ]
        });
        input_counter.increment(input);
        output_counter.increment(output);
    }
}

fn register(provider: &str, model: &str, direction: &'static str) -> Counter {
    counter!(
        TOKENS_TOTAL,
        "provider" => provider.to_owned(),
        "model" => model.to_owned(),
        "direction" => direction,
    )
}

/// `understudy_time_to_first_content_seconds` per provider and model.
#[derive(Default)]
pub(crate) struct FirstContent(PerTarget<Histogram>);

impl FirstContent {
    /// Records one attempt's time to first content.
    pub(crate) fn record(&self, provider: &str, model: &str, seconds: f64) {
        self.0
            .get(provider, model, || {
                histogram!(
                    TIME_TO_FIRST_CONTENT_SECONDS,
                    "provider" => provider.to_owned(),
                    "model" => model.to_owned(),
                )
            })
            .record(seconds);
    }
}
