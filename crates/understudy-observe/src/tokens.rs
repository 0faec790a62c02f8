//! [`TokenCounters`]: the `understudy_tokens_total` handles, registered
//! once per provider and model.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use metrics::{Counter, counter};

use crate::names::TOKENS_TOTAL;

/// The most (provider, model) pairs whose handles are kept; further pairs
/// are registered on each use.
const MAX_PAIRS: usize = 1024;

/// The input and output counters of each (provider, model) pair seen.
#[derive(Default)]
pub(crate) struct TokenCounters {
    pairs: RwLock<HashMap<String, HashMap<String, [Counter; 2]>>>,
}

impl TokenCounters {
    /// Adds an answer's tokens.
    pub(crate) fn record(&self, provider: &str, model: &str, input: u64, output: u64) {
        let add = |[input_counter, output_counter]: &[Counter; 2]| {
            input_counter.increment(input);
            output_counter.increment(output);
        };
        if let Some(counters) = self
            .pairs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .and_then(|models| models.get(model))
        {
            add(counters);
            return;
        }
        let counters = [
            register(provider, model, "input"),
            register(provider, model, "output"),
        ];
        add(&counters);
        let mut pairs = self.pairs.write().unwrap_or_else(PoisonError::into_inner);
        if pairs.values().map(HashMap::len).sum::<usize>() < MAX_PAIRS {
            pairs
                .entry(provider.to_owned())
                .or_default()
                .insert(model.to_owned(), counters);
        }
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
