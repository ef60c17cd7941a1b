//! Key rotation against a real JWKS endpoint over HTTP: an unknown `kid` makes the app
//! fetch the JWKS once for a burst of requests, keys that disappear stop verifying even
//! for cached tokens, and forged `kid`s within the cooldown fetch nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use eerp_e2e::{TestOptions, key_path, spawn_app_with};
use eerp_tenancy::{IssuerConfig, KeySource};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

const ISSUER: &str = "https://jwks.test";

struct Idp {
    jwks: Mutex<Vec<u8>>,
    hits: AtomicUsize,
}

fn rsa(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(key_path(name)).unwrap()).unwrap()
}

fn publish(idp: &Idp, kid: &str, key: &str) {
    let mut jwk = Jwk::from_encoding_key(&rsa(key), Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.into());
    *idp.jwks.lock().unwrap() = serde_json::to_vec(&JwkSet { keys: vec![jwk] }).unwrap();
}

fn token(kid: &str, key: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let claims = json!({
        "iss": ISSUER, "aud": "eerp-test", "sub": "ada", "tid": "acme", "roles": ["admin"],
        "exp": jsonwebtoken::get_current_timestamp() + 600,
        "iat": jsonwebtoken::get_current_timestamp(),
    });
    jsonwebtoken::encode(&header, &claims, &rsa(key)).unwrap()
}

async fn serve_jwks(idp: Arc<Idp>) -> String {
    let shared = web::Data::from(idp);
    let server = HttpServer::new(move || {
        App::new().app_data(shared.clone()).route(
            "/jwks.json",
            web::get().to(|idp: web::Data<Idp>| async move {
                idp.hits.fetch_add(1, Ordering::SeqCst);
                let body = idp.jwks.lock().unwrap().clone();
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    format!("http://127.0.0.1:{port}/jwks.json")
}

#[tokio::test]
async fn rotation_refetches_once_evicts_old_keys_and_cools_down_for_forged_kids() {
    let idp = Arc::new(Idp {
        jwks: Mutex::new(Vec::new()),
        hits: AtomicUsize::new(0),
    });
    publish(&idp, "k1", "rsa.pem");
    let url = serve_jwks(idp.clone()).await;
    let app = spawn_app_with(TestOptions {
        extra_issuers: vec![IssuerConfig {
            issuer: ISSUER.into(),
            audience: "eerp-test".into(),
            operator_audience: None,
            algorithms: vec![Algorithm::RS256],
            keys: KeySource::JwksUrl(url),
            tenant_claim: "tid".into(),
            tenants: None,
        }],
        ..TestOptions::default()
    })
    .await;
    app.create_tenant("acme").await;
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1, "fetched once at start");
    let contacts = "/api/v1/crm/contacts";
    let old = token("k1", "rsa.pem");
    assert_eq!(
        app.send(Method::GET, contacts, Some(&old), None)
            .await
            .status(),
        200
    );

    // The identity provider rotates to k2: a burst of k2 tokens causes one fetch.
    publish(&idp, "k2", "rsa2.pem");
    let new = token("k2", "rsa2.pem");
    // (Eight at most: a tenant's calls in flight are capped at half the 16 test slots.)
    let burst = (0..8).map(|_| app.send(Method::GET, contacts, Some(&new), None));
    for response in futures_util::future::join_all(burst).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2, "single flight");

    // k1 is gone: its token, verified and cached before, is refused now.
    assert_eq!(
        app.send(Method::GET, contacts, Some(&old), None)
            .await
            .status(),
        401
    );

    // Made-up kids within the cooldown (2 s in tests) fetch nothing.
    for i in 0..10 {
        let forged = token(&format!("forged-{i}"), "rsa.pem");
        let response = app.send(Method::GET, contacts, Some(&forged), None).await;
        assert_eq!(response.status(), 401);
    }
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2, "cooldown");
}
