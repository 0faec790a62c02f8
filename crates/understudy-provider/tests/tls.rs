//! The client over TLS: a rustls server on loopback with a certificate from
//! a test CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use http::{StatusCode, Version};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tower::ServiceExt;
use understudy_core::{Classify, FailureKind, LlmClassifier, Outcome};
use understudy_provider::{ApiKey, ClientBuildError, ClientConfig, HttpClient, ProviderService};

use support::{caller_request, json, serve_tls, text, within};

/// A test CA and a server certificate it signed for 127.0.0.1 and
/// localhost.
struct TestPki {
    ca: CertificateDer<'static>,
    server_config: rustls::ServerConfig,
}

fn test_pki() -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Understudy test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TestPki {
        ca: ca.der().clone(),
        server_config,
    }
}

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#;

#[tokio::test]
async fn a_client_given_the_ca_speaks_http2_over_tls() {
    let pki = test_pki();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config));
    let mut server = serve_tls(acceptor, |_| async { json(200, COMPLETION) }).await;

    let client = HttpClient::new(ClientConfig::default().add_root_certificate(pki.ca)).unwrap();
    let service = ProviderService::openai(
        client,
        &format!("https://127.0.0.1:{}/v1", server.addr.port()),
        Some(ApiKey::new("sk-tls")),
        "gpt-4o-mini",
    )
    .unwrap();
    let response = within(
        service
            .clone()
            .oneshot(caller_request(r#"{"model":"chat"}"#)),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response.into_body()).await, COMPLETION);
    let sent = server.request().await;
    assert_eq!(sent.version, Version::HTTP_2);
    assert_eq!(sent.headers["authorization"], "Bearer sk-tls");
    assert_eq!(sent.body, r#"{"model":"gpt-4o-mini"}"#);

    // The pooled connection is reused.
    let response = within(service.oneshot(caller_request("{}"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_default_client_does_not_trust_a_private_ca() {
    let pki = test_pki();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config));
    let server = serve_tls(acceptor, |_| async { json(200, COMPLETION) }).await;

    let client = HttpClient::new(ClientConfig::default()).unwrap();
    let service = ProviderService::openai(
        client,
        &format!("https://127.0.0.1:{}/v1", server.addr.port()),
        None,
        "gpt-4o-mini",
    )
    .unwrap();
    let error = within(service.oneshot(caller_request("{}")))
        .await
        .unwrap_err();
    // A failed handshake is a failure to connect.
    assert_eq!(
        LlmClassifier::new().classify_error(&*error),
        Outcome::Failure(FailureKind::Connect)
    );
}

#[test]
fn a_client_must_trust_some_root() {
    assert!(matches!(
        HttpClient::new(ClientConfig::default().webpki_roots(false)),
        Err(ClientBuildError::NoRoots)
    ));
    assert!(matches!(
        HttpClient::new(
            ClientConfig::default().add_root_certificate(CertificateDer::from(vec![1, 2, 3]))
        ),
        Err(ClientBuildError::InvalidRootCertificate(_))
    ));
}
