//! `SigV4` signing of Bedrock Runtime requests, by `aws-sigv4`.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

use crate::error::ProviderError;
use crate::key::AwsCredentials;

/// The service name Bedrock Runtime requests are signed for.
pub const SIGNING_SERVICE: &str = "bedrock";

/// The headers a signature sets; any already there is removed first.
const SIGNING_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Signs requests for one region with one set of credentials.
#[derive(Clone)]
pub(super) struct Signer {
    region: String,
    credentials: Credentials,
}

impl Signer {
    pub(super) fn new(region: &str, credentials: &AwsCredentials) -> Self {
        Self {
            region: region.to_owned(),
            credentials: Credentials::new(
                credentials.access_key_id(),
                credentials.secret_access_key().expose(),
                credentials
                    .session_token()
                    .map(|token| token.expose().to_owned()),
                None,
                "understudy",
            ),
        }
    }

    pub(super) fn access_key_id(&self) -> &str {
        self.credentials.access_key_id()
    }

    /// Signs a request at `time`: adds `authorization`, `x-amz-date` and,
    /// with temporary credentials, `x-amz-security-token` (signed too).
    ///
    /// The signed headers are `host` (from the URI, as the client sends
    /// it), `content-type` and every `x-amz-*` header; the others a proxy
    /// may rewrite (`user-agent`, trace headers) are left out. The
    /// canonical URI is the path as sent, percent-encoded once more, as
    /// `SigV4` wants for every service but S3.
    pub(super) fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), ProviderError> {
        if uri.host().is_none() {
            return Err(ProviderError::signing("the request URI has no host"));
        }
        for name in SIGNING_HEADERS {
            headers.remove(name);
        }
        let signed: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(name, _)| {
                *name == header::CONTENT_TYPE || name.as_str().starts_with("x-amz-")
            })
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let uri = uri.to_string();
        let request = SignableRequest::new(
            method.as_str(),
            uri.as_str(),
            signed.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|_| ProviderError::signing("the request cannot be signed with SigV4"))?;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SIGNING_SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| ProviderError::signing("incomplete SigV4 signing parameters"))?
            .into();
        let (instructions, _signature) = sign(request, &params)
            .map_err(|_| ProviderError::signing("the request cannot be signed with SigV4"))?
            .into_parts();
        let (signing_headers, _query) = instructions.into_parts();
        for signing_header in signing_headers {
            let name = HeaderName::from_bytes(signing_header.name().as_bytes())
                .map_err(|_| ProviderError::signing("SigV4 produced an invalid header name"))?;
            let mut value = HeaderValue::from_str(signing_header.value())
                .map_err(|_| ProviderError::signing("SigV4 produced an invalid header value"))?;
            if signing_header.sensitive() || name == header::AUTHORIZATION {
                value.set_sensitive(true);
            }
            headers.insert(name, value);
        }
        Ok(())
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("access_key_id", &self.credentials.access_key_id())
            .finish_non_exhaustive()
    }
}
