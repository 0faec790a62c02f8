//! Reading upstream bodies within a bound.

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use understudy_core::{BoxError, FailureKind, Outcome};

use crate::error::ProviderError;

/// Reads at most `limit` bytes of a body; the rest is not read.
pub(super) async fn read_bounded<B>(mut body: B, limit: usize) -> Result<Bytes, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buffer = BytesMut::new();
    while buffer.len() < limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            let room = limit.saturating_sub(buffer.len());
            buffer.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(buffer.freeze())
}

/// Reads a whole 2xx body of at most `limit` bytes; a longer one, or one
/// that breaks, is a [`FailureKind::StreamBroken`] error.
pub(super) async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, BoxError> {
    let stream_broken = Outcome::Failure(FailureKind::StreamBroken);
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => match error.downcast::<hyper::Error>() {
            Ok(error) => Err(ProviderError::Body(*error).classified(stream_broken).into()),
            Err(_) => Err(ProviderError::invalid_response(format!(
                "the answer is larger than {limit} bytes"
            ))
            .classified(stream_broken)
            .into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    #[tokio::test]
    async fn a_bounded_read_stops_at_the_bound() {
        let read = read_bounded(Full::new(Bytes::from_static(b"0123456789")), 4).await;
        assert_eq!(read.ok(), Some(Bytes::from_static(b"0123")));
        let read = read_bounded(Full::new(Bytes::from_static(b"01")), 4).await;
        assert_eq!(read.ok(), Some(Bytes::from_static(b"01")));
    }
}
