//! `amqps://` through a TLS-terminating proxy in front of the local RabbitMQ, with a CA
//! made by the test: a route answers over TLS, a certificate from another CA is refused
//! naming the problem, and a plaintext port is never used in plaintext.

use std::sync::Arc;
use std::time::Duration;

use e2e::tls::{TestCa, tls_proxy, tls_proxy_with};
use serde_json::json;
use worker_kit::rpc::{RpcClient, RpcWorker};
use worker_kit::{Broker, ErrorReply, Payload, Runner};

async fn echo(Payload(v): Payload<serde_json::Value>) -> Result<serde_json::Value, ErrorReply> {
    Ok(v)
}

/// The tests' broker URL with `amqps://` and the port of `addr`.
fn amqps_url(addr: std::net::SocketAddr) -> String {
    let url = e2e::amqp_url().replacen("amqp://", "amqps://", 1);
    let url = url.replacen("127.0.0.1:5672", &format!("localhost:{}", addr.port()), 1);
    assert!(
        url.contains(&addr.port().to_string()),
        "the URL points at the proxy: {url}"
    );
    url
}

/// The error with every cause, as the service's exit message prints it.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn config_for(url: &str, ca: &TestCa) -> worker_kit::Config {
    let mut c = e2e::config();
    c.amqp_url = url.parse().unwrap();
    c.amqp_tls_ca_file = Some(ca.ca_file());
    c
}

#[tokio::test]
async fn a_route_answers_over_amqps_with_the_configured_ca() {
    e2e::init_logs();
    let ca = TestCa::new("amqp-ca");
    let server = ca.issue("broker", &["localhost", "127.0.0.1"]);
    let (addr, proxy) = tls_proxy("127.0.0.1:5672".parse().unwrap(), &server).await;
    let url = amqps_url(addr);
    let config = config_for(&url, &ca);
    let tls = config.amqp_tls();
    let route = e2e::unique("tls.echo");
    let server_broker = Broker::connect_with_tls(&url, &tls, "tls-server", Duration::from_secs(10))
        .await
        .expect("connects through the TLS proxy");
    let running = e2e::start(
        Runner::new("tls-server", Arc::new(config.clone()), server_broker)
            .register_worker(RpcWorker::new().route(&route, echo)),
    )
    .await;
    let client_broker = Broker::connect_with_tls(&url, &tls, "tls-client", Duration::from_secs(10))
        .await
        .unwrap();
    // The consume-only connection of work queues and event subscriptions: the same TLS.
    let consuming = client_broker
        .consuming()
        .await
        .expect("the consuming connection connects with the same TLS files");
    assert!(consuming.connection_now().is_some());
    let client = RpcClient::new(&client_broker, &config).await.unwrap();
    let v = client
        .call_json(&route, json!({"over": "tls"}))
        .await
        .unwrap();
    assert_eq!(v, json!({"over": "tls"}));
    running.stop().await.unwrap();
    client_broker.close().await;
    proxy.abort();
}

#[tokio::test]
async fn a_certificate_not_signed_by_the_configured_ca_is_refused() {
    let trusted = TestCa::new("trusted-ca");
    let rogue = TestCa::new("rogue-ca");
    let impostor = rogue.issue("impostor", &["localhost", "127.0.0.1"]);
    let (addr, proxy) = tls_proxy("127.0.0.1:5672".parse().unwrap(), &impostor).await;
    let url = amqps_url(addr);
    let tls = config_for(&url, &trusted).amqp_tls();
    let err = Broker::connect_with_tls(&url, &tls, "tls-impostor", Duration::from_secs(1))
        .await
        .expect_err("a certificate from another CA must be refused");
    let text = chain(&err);
    assert!(
        text.contains("UnknownIssuer"),
        "names the certificate problem: {text}"
    );
    assert!(
        text.contains("AMQP_TLS_CA_FILE"),
        "says where to look: {text}"
    );
    assert!(!text.contains("guest:guest"), "no password: {text}");

    // Signed by the right CA but for another host: refused as well.
    let elsewhere = trusted.issue("elsewhere", &["broker.elsewhere.test"]);
    let (addr, other) = tls_proxy("127.0.0.1:5672".parse().unwrap(), &elsewhere).await;
    let url = amqps_url(addr);
    let err = Broker::connect_with_tls(&url, &tls, "tls-elsewhere", Duration::from_secs(1))
        .await
        .expect_err("a certificate for another host must be refused");
    let text = chain(&err);
    assert!(text.contains("not valid for name"), "{text}");
    proxy.abort();
    other.abort();
}

#[tokio::test]
async fn amqps_to_a_plaintext_port_fails_instead_of_connecting_in_plaintext() {
    let ca = TestCa::new("plain-ca");
    let url = e2e::amqp_url().replacen("amqp://", "amqps://", 1);
    assert!(
        url.starts_with("amqps://") && url.contains(":5672"),
        "{url}"
    );
    let tls = config_for(&url, &ca).amqp_tls();
    let started = std::time::Instant::now();
    let err = Broker::connect_with_tls(&url, &tls, "tls-to-plain", Duration::from_secs(1))
        .await
        .expect_err("the plaintext port must not be used");
    let text = chain(&err);
    assert!(text.contains("did not answer in TLS"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fails within its budget"
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_broker_asks() {
    let ca = TestCa::new("mtls-ca");
    let server = ca.issue("broker", &["localhost"]);
    let client = ca.issue_client("svc");
    let (addr, proxy) = tls_proxy_with("127.0.0.1:5672".parse().unwrap(), &server, Some(&ca)).await;
    let url = amqps_url(addr);
    let mut config = config_for(&url, &ca);

    let err = Broker::connect_with_tls(
        &url,
        &config.amqp_tls(),
        "mtls-none",
        Duration::from_secs(1),
    )
    .await
    .expect_err("a broker that requires a client certificate refuses a client without one");
    let text = chain(&err);
    assert!(
        text.contains("CertificateRequired") && text.contains("set AMQP_TLS_CERT_FILE"),
        "{text}"
    );

    config.amqp_tls_cert_file = Some(client.cert_file.clone());
    config.amqp_tls_key_file = Some(client.key_file.clone());
    let broker = Broker::connect_with_tls(
        &url,
        &config.amqp_tls(),
        "mtls-svc",
        Duration::from_secs(10),
    )
    .await
    .expect("connects with the client certificate");
    assert!(broker.connection_now().is_some());
    broker.close().await;
    proxy.abort();
}
