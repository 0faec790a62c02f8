use tower_layer::Layer;

use super::Replay;

/// Collects request bodies into [`ReplayBody`](super::ReplayBody), up to a
/// limit in bytes; see [`Replay`].
#[derive(Clone, Copy, Debug)]
pub struct ReplayLayer {
    limit: usize,
}

impl ReplayLayer {
    /// The default limit: 10 MiB, enough for long prompts with images.
    pub const DEFAULT_LIMIT: usize = 10 * 1024 * 1024;

    /// A layer that refuses bodies over `limit` bytes.
    pub const fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl Default for ReplayLayer {
    fn default() -> Self {
        Self::new(Self::DEFAULT_LIMIT)
    }
}

impl<S> Layer<S> for ReplayLayer {
    type Service = Replay<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Replay::new(inner, self.limit)
    }
}
