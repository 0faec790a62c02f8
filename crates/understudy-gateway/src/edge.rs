//! The layers every request passes at the HTTP edge, before any endpoint:
//!
//! - credentials (`authorization`, `x-api-key`, `api-key`, and
//!   `proxy-authorization`) are marked sensitive, so no layer that prints
//!   headers prints them;
//! - every request has an `x-request-id`: the caller's when it sends one
//!   well-formed value
//!   ([`request_id::is_well_formed`](understudy_core::request_id::is_well_formed)),
//!   a new UUID otherwise. The id is in the request span, sent upstream with each
//!   attempt, and returned on the response;
//! - CORS, when `server.cors_origins` lists origins (off by default).

use std::time::Duration;

use axum::Router;
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, Request};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use understudy_core::request_id::{REQUEST_ID, request_id};

/// Wraps `app` in the edge layers; `cors_origins` as validated by the
/// configuration (`*` for any origin).
///
/// The layers are composed first and given to the router as one: each
/// `Router::layer` boxes every route again, which costs every request an
/// allocation for the route's clone and one for its future per layer.
pub fn wrap(app: Router, cors_origins: &[String]) -> Router {
    app.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::PROXY_AUTHORIZATION,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("api-key"),
            ]))
            .option_layer(cors(cors_origins))
            // A plain function: no boxed future, no clone of the app per
            // request.
            .map_request(drop_malformed_request_id::<axum::body::Body>)
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
    )
}

fn drop_malformed_request_id<B>(mut request: Request<B>) -> Request<B> {
    let headers = request.headers_mut();
    if headers.contains_key(&REQUEST_ID) && request_id(headers).is_none() {
        headers.remove(&REQUEST_ID);
    }
    request
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                REQUEST_ID,
            ])
            .expose_headers([
                REQUEST_ID,
                HeaderName::from_static("x-understudy-provider"),
                HeaderName::from_static("x-understudy-model"),
                HeaderName::from_static("x-understudy-attempts"),
                HeaderName::from_static("x-understudy-attempt-chain"),
                HeaderName::from_static("server-timing"),
            ])
            .max_age(Duration::from_hours(1)),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::routing::get;
    use http::{HeaderMap, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn credentials_are_marked_sensitive_inside() {
        async fn check(headers: HeaderMap) -> StatusCode {
            let all_sensitive = ["authorization", "x-api-key", "api-key"]
                .iter()
                .all(|name| headers.get(*name).is_some_and(HeaderValue::is_sensitive));
            if all_sensitive {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
        let app = wrap(Router::new().route("/", get(check)), &[]);
        let request = Request::get("/")
            .header("authorization", "Bearer caller-secret")
            .header("x-api-key", "caller-secret")
            .header("api-key", "caller-secret")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("x-request-id"));
    }
}
