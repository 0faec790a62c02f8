//! [`CoalesceBody`]: an event stream's frames that are ready together leave
//! in one write.
//!
//! An upstream's stream reaches the caller frame by frame: the provider
//! client's connection hands its response body over one chunk at a time,
//! each time the body is polled. Alone, hyper's server writes every frame as
//! soon as the next one is not yet there, so eleven events that arrived in
//! one read from the upstream left in eleven writes (and woke the caller
//! eleven times). This wrapper keeps polling while frames keep coming: when
//! the body has nothing more, it yields to the runtime (so the connection
//! task can hand over what it already read; that takes it two rounds) and
//! releases what it gathered after [`MAX_IDLE_ROUNDS`] rounds brought nothing
//! new.
//!
//! - The first frame leaves at once: the time to first byte does not change.
//! - A batch is bounded by [`MAX_BATCH_BYTES`] and [`MAX_BATCH_FRAMES`], so
//!   a stream that never pauses still goes out in steady writes.
//! - Trailers, an error and the end keep their place after the data before
//!   them.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// A batch is released once it holds this many bytes.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// A batch is released once it holds this many frames.
pub const MAX_BATCH_FRAMES: usize = 64;
/// Rounds of the runtime a batch waits for a next frame before it leaves.
pub const MAX_IDLE_ROUNDS: u8 = 3;

pin_project! {
    /// Merges the data frames of `B` that are ready together.
    pub struct CoalesceBody<B: Body> {
        #[pin]
        inner: B,
        // Data gathered and not yet released.
        batch: BytesMut,
        frames: usize,
        // A frame or an error that ends the batch, released after it.
        held: Option<Result<Frame<Bytes>, B::Error>>,
        // The inner body has ended.
        ended: bool,
        // Whether a frame has been released yet.
        started: bool,
        // Rounds yielded since the last frame came.
        idle_rounds: u8,
    }
}

impl<B: Body<Data = Bytes>> CoalesceBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            batch: BytesMut::new(),
            frames: 0,
            held: None,
            ended: false,
            started: false,
            idle_rounds: 0,
        }
    }
}

impl<B: Body> fmt::Debug for CoalesceBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceBody")
            .field("batched", &self.batch.len())
            .field("frames", &self.frames)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<B: Body<Data = Bytes>> Body for CoalesceBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if this.frames == &0 {
                if let Some(held) = this.held.take() {
                    return Poll::Ready(Some(held));
                }
                if *this.ended {
                    return Poll::Ready(None);
                }
            }
            let full = *this.frames >= MAX_BATCH_FRAMES || this.batch.len() >= MAX_BATCH_BYTES;
            if this.held.is_some() || *this.ended || full {
                return Poll::Ready(Some(Ok(release(this.batch, this.frames, this.idle_rounds))));
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !*this.started => {
                        *this.started = true;
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => {
                        if !data.is_empty() {
                            this.batch.extend_from_slice(&data);
                            *this.frames = this.frames.saturating_add(1);
                            *this.idle_rounds = 0;
                        }
                    }
                    Err(frame) => *this.held = Some(Ok(frame)),
                },
                Poll::Ready(Some(Err(error))) => *this.held = Some(Err(error)),
                Poll::Ready(None) => *this.ended = true,
                Poll::Pending if this.frames == &0 => return Poll::Pending,
                Poll::Pending if *this.idle_rounds < MAX_IDLE_ROUNDS => {
                    // Let the tasks already woken (the upstream connection
                    // among them) run, then look again.
                    *this.idle_rounds = this.idle_rounds.saturating_add(1);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => {
                    return Poll::Ready(Some(Ok(release(
                        this.batch,
                        this.frames,
                        this.idle_rounds,
                    ))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames == 0 && self.held.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let batched = u64::try_from(self.batch.len()).unwrap_or(u64::MAX);
        hint.set_lower(hint.lower().saturating_add(batched));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(batched));
        }
        hint
    }
}

/// The gathered data as one frame; the batch starts over.
fn release(batch: &mut BytesMut, frames: &mut usize, idle_rounds: &mut u8) -> Frame<Bytes> {
    *frames = 0;
    *idle_rounds = 0;
    Frame::data(batch.split().freeze())
}

#[cfg(test)]
mod tests {
    use super::{CoalesceBody, MAX_BATCH_FRAMES, MAX_IDLE_ROUNDS};
    use bytes::Bytes;
    use http::HeaderMap;
    use http_body::{Body, Frame};
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// What a scripted body does on each poll.
    enum Step {
        Data(&'static str),
        Trailers,
        Error,
        /// `Pending`, waking itself (a frame is on its way).
        Wait,
        /// `Pending` without a wake-up from itself (nothing on its way yet).
        Idle,
    }

    struct Script(VecDeque<Step>);

    impl Body for Script {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            match self.0.pop_front() {
                None => Poll::Ready(None),
                Some(Step::Data(text)) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(text))))),
                Some(Step::Trailers) => Poll::Ready(Some(Ok(Frame::trailers(HeaderMap::new())))),
                Some(Step::Error) => Poll::Ready(Some(Err("broken"))),
                Some(Step::Wait) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Some(Step::Idle) => Poll::Pending,
            }
        }
    }

    /// What the caller's side sees: each poll's result, `Pending` as `-`.
    fn drive(steps: Vec<Step>, polls: usize) -> Vec<String> {
        let mut body = CoalesceBody::new(Script(steps.into()));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut seen = Vec::new();
        for _ in 0..polls {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Pending => seen.push("-".to_owned()),
                Poll::Ready(None) => {
                    seen.push("end".to_owned());
                    break;
                }
                Poll::Ready(Some(Err(error))) => seen.push(format!("error {error}")),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => seen.push(String::from_utf8_lossy(&data).into_owned()),
                    Err(_) => seen.push("trailers".to_owned()),
                },
            }
        }
        seen
    }

    /// The frames seen, without the `Pending`s.
    fn frames(seen: &[String]) -> Vec<&str> {
        seen.iter()
            .map(String::as_str)
            .filter(|frame| *frame != "-")
            .collect()
    }

    fn idle(rounds: u8) -> impl Iterator<Item = Step> {
        (0..rounds).map(|_| Step::Idle)
    }

    #[test]
    fn the_first_frame_leaves_at_once_and_the_rest_together() {
        use Step::{Data, Wait};
        let mut steps = vec![Data("a"), Wait, Data("b"), Wait, Wait, Data("c")];
        steps.extend(idle(MAX_IDLE_ROUNDS - 1));
        steps.push(Data("d"));
        steps.extend(idle(MAX_IDLE_ROUNDS + 1));
        steps.push(Data("e"));
        let seen = drive(steps, 40);
        // "a" alone, at the first poll; "b" to "d" come fewer than
        // MAX_IDLE_ROUNDS rounds apart and leave together; "e" comes later.
        assert_eq!(seen[0], "a");
        assert_eq!(frames(&seen), ["a", "bcd", "e", "end"]);
    }

    #[test]
    fn a_pause_releases_what_was_gathered() {
        use Step::{Data, Idle};
        let mut steps = vec![Data("a"), Data("b")];
        steps.extend(idle(MAX_IDLE_ROUNDS + 1));
        steps.extend([Idle, Idle, Data("c")]);
        let seen = drive(steps, 40);
        assert_eq!(frames(&seen), ["a", "b", "c", "end"]);
        // "b" waited MAX_IDLE_ROUNDS yields, no more.
        let b = seen.iter().position(|frame| frame == "b").unwrap();
        assert_eq!(b, 1 + usize::from(MAX_IDLE_ROUNDS));
    }

    #[test]
    fn trailers_errors_and_the_end_keep_their_place() {
        use Step::{Data, Error, Trailers};
        assert_eq!(
            drive(vec![Data("a"), Data("b"), Data("c"), Trailers], 6),
            ["a", "bc", "trailers", "end"]
        );
        assert_eq!(
            drive(vec![Data("a"), Data("b"), Error, Data("c")], 6),
            ["a", "b", "error broken", "c", "end"]
        );
        assert_eq!(drive(vec![Data("a"), Data("b")], 4), ["a", "b", "end"]);
    }

    #[test]
    fn a_stream_that_never_pauses_leaves_in_bounded_batches() {
        let mut steps = vec![Step::Data("first")];
        steps.extend((0..=MAX_BATCH_FRAMES * 2).map(|_| Step::Data("x")));
        let seen = drive(steps, 10);
        let full = "x".repeat(MAX_BATCH_FRAMES);
        assert_eq!(seen, ["first", full.as_str(), full.as_str(), "x", "end"]);
    }

    #[test]
    fn the_bytes_are_those_of_the_stream() {
        use Step::{Data, Wait};
        let mut steps = Vec::new();
        let mut whole = String::new();
        for index in 0..200 {
            let text: &'static str = Box::leak(format!("data: {index}\n\n").into_boxed_str());
            whole.push_str(text);
            steps.push(Data(text));
            if index % 7 == 0 {
                steps.push(Wait);
            }
        }
        let seen = drive(steps, 1000);
        assert_eq!(seen.last().map(String::as_str), Some("end"));
        let joined: String = seen
            .iter()
            .filter(|frame| *frame != "-" && *frame != "end")
            .map(String::as_str)
            .collect();
        assert_eq!(joined, whole);
    }
}
