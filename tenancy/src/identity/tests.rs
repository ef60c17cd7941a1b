//! Verification against real keys (the test keys in `tests/keys`), JWKS rotation and the
//! token cache.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/keys")).join(name)
}

fn private(name: &str, alg: Algorithm) -> EncodingKey {
    let pem = std::fs::read(key_path(name)).unwrap();
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_ed_pem(&pem).unwrap(),
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://idp.test", "aud": "eerp", "sub": "ada", "tid": "acme",
        "roles": ["admin"], "exp": jsonwebtoken::get_current_timestamp() + 600,
        "iat": jsonwebtoken::get_current_timestamp(),
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn issuer(algorithms: Vec<Algorithm>, keys: KeySource) -> IssuerConfig {
    IssuerConfig {
        issuer: "https://idp.test".into(),
        audience: "eerp".into(),
        operator_audience: Some("eerp-admin".into()),
        algorithms,
        keys,
        tenant_claim: "tid".into(),
        tenants: None,
    }
}

async fn authenticator(
    config: IssuerConfig,
    fetcher: Option<Arc<dyn JwksFetcher>>,
) -> Authenticator {
    let settings = AuthSettings {
        jwks_cooldown: Duration::from_millis(300),
        ..AuthSettings::default()
    };
    Authenticator::new(vec![config], fetcher, settings)
        .await
        .unwrap()
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_with_pem_keys() {
    for (name, alg) in [
        ("rsa", Algorithm::RS256),
        ("ec", Algorithm::ES256),
        ("ed", Algorithm::EdDSA),
    ] {
        let pem = KeySource::PemFiles(vec![key_path(&format!("{name}.pub.pem"))]);
        let auth = authenticator(issuer(vec![alg], pem), None).await;
        let key = private(&format!("{name}.pem"), alg);
        // Identity providers put a kid in every token; a PEM key has none and takes any.
        for kid in [None, Some("key-2026")] {
            let token = sign(alg, kid, &key, &claims());
            let identity = auth.verify(&token).await.unwrap();
            assert_eq!(identity.tenant.as_str(), "acme", "{alg:?} {kid:?}");
            assert_eq!(identity.roles, vec!["admin".to_string()]);
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let pem = KeySource::PemFiles(vec![key_path("rsa.pub.pem")]);
    let auth = authenticator(issuer(vec![Algorithm::RS256], pem), None).await;
    let public = std::fs::read(key_path("rsa.pub.pem")).unwrap();
    let token = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&public),
        &claims(),
    );
    assert_eq!(
        auth.verify(&token).await,
        Err(AuthError::AlgorithmNotAllowed)
    );
}

#[tokio::test]
async fn hs256_with_asymmetric_algorithms_or_a_short_secret_is_a_config_error() {
    let mixed = issuer(
        vec![Algorithm::HS256, Algorithm::RS256],
        KeySource::Hs256Secret(vec![7; 32]),
    );
    assert!(
        Authenticator::new(vec![mixed], None, AuthSettings::default())
            .await
            .is_err()
    );
    let short = issuer(vec![Algorithm::HS256], KeySource::Hs256Secret(vec![7; 8]));
    assert!(
        Authenticator::new(vec![short], None, AuthSettings::default())
            .await
            .is_err()
    );
    let mut same_audience = IssuerConfig::hs256("https://idp.test", "eerp", vec![7; 32]);
    same_audience.operator_audience = Some("eerp".into());
    let result = Authenticator::new(vec![same_audience], None, AuthSettings::default()).await;
    assert!(result.is_err(), "tenant tokens could reach the admin API");
}

#[tokio::test]
async fn tenant_tokens_never_pass_as_operator_tokens_and_back() {
    let config = IssuerConfig::hs256("https://idp.test", "eerp", vec![9; 32]);
    let signer = DevSigner::new(&config).unwrap();
    let auth = authenticator(config, None).await;
    let acme = crate::id::TenantSlug::parse("acme").unwrap();
    let tenant = signer.tenant_token(&acme, "ada", &["admin"], 60).unwrap();
    let operator = signer.operator_token("ops", 60).unwrap();
    assert_eq!(
        auth.verify_operator(&tenant).await,
        Err(AuthError::WrongIssuerOrAudience)
    );
    assert!(auth.verify(&operator).await.is_err());
    assert_eq!(
        auth.verify_operator(&operator).await.unwrap().subject,
        "ops"
    );
}

fn jwks(keys: &[(&str, &str, Algorithm)]) -> Vec<u8> {
    let keys = keys
        .iter()
        .map(|(kid, name, alg)| {
            let mut jwk = Jwk::from_encoding_key(&private(name, *alg), *alg).unwrap();
            jwk.common.key_id = Some(kid.to_string());
            jwk
        })
        .collect();
    serde_json::to_vec(&JwkSet { keys }).unwrap()
}

/// Serves a JWKS document that the test can replace, counting fetches.
struct FakeIdp {
    body: Mutex<Vec<u8>>,
    fetches: AtomicUsize,
    /// Fetches never answer (a provider that hangs).
    hanging: std::sync::atomic::AtomicBool,
}

impl JwksFetcher for FakeIdp {
    fn fetch<'a>(
        &'a self,
        _url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.hanging.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(self.body.lock().unwrap().clone())
        })
    }
}

/// A fake identity provider publishing `k1` (the `rsa` key), and an issuer using its JWKS.
fn idp_publishing_k1() -> (Arc<FakeIdp>, IssuerConfig) {
    let idp = Arc::new(FakeIdp {
        body: Mutex::new(jwks(&[("k1", "rsa.pem", Algorithm::RS256)])),
        fetches: AtomicUsize::new(0),
        hanging: std::sync::atomic::AtomicBool::new(false),
    });
    let config = issuer(
        vec![Algorithm::RS256],
        KeySource::JwksUrl("https://idp.test/jwks".into()),
    );
    (idp, config)
}

#[tokio::test]
async fn unknown_kids_refetch_once_then_cool_down_and_rotation_evicts_cached_tokens() {
    let (idp, config) = idp_publishing_k1();
    let auth = Arc::new(authenticator(config, Some(idp.clone())).await);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "fetched at start");
    let old = sign(
        Algorithm::RS256,
        Some("k1"),
        &private("rsa.pem", Algorithm::RS256),
        &claims(),
    );
    assert!(auth.verify(&old).await.is_ok());

    // The IdP rotates to k2; twenty requests with a k2 token cause one fetch.
    *idp.body.lock().unwrap() = jwks(&[("k2", "rsa2.pem", Algorithm::RS256)]);
    let new = sign(
        Algorithm::RS256,
        Some("k2"),
        &private("rsa2.pem", Algorithm::RS256),
        &claims(),
    );
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let auth = auth.clone();
            let new = new.clone();
            tokio::spawn(async move { auth.verify(&new).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_ok());
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);

    // k1 was rotated out: its cached token no longer verifies.
    assert_eq!(auth.verify(&old).await, Err(AuthError::UnknownKey));

    // Forged kids within the cooldown cause no fetch at all.
    for i in 0..10 {
        let forged = sign(
            Algorithm::RS256,
            Some(&format!("forged-{i}")),
            &private("rsa.pem", Algorithm::RS256),
            &claims(),
        );
        assert_eq!(auth.verify(&forged).await, Err(AuthError::UnknownKey));
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2, "cooldown holds");
}

#[tokio::test]
async fn a_stale_jwks_is_refetched_so_withdrawn_keys_stop_verifying() {
    let (idp, config) = idp_publishing_k1();
    let settings = AuthSettings {
        jwks_cooldown: Duration::from_millis(10),
        jwks_max_age: Duration::from_millis(100),
        ..AuthSettings::default()
    };
    let auth = Authenticator::new(vec![config], Some(idp.clone()), settings)
        .await
        .unwrap();
    let key = private("rsa.pem", Algorithm::RS256);
    let token = sign(Algorithm::RS256, Some("k1"), &key, &claims());
    assert!(auth.verify(&token).await.is_ok());
    // The provider withdraws k1 without publishing anything new.
    *idp.body.lock().unwrap() = jwks(&[]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The first use of stale keys starts a refetch in the background; once it lands the
    // cached token is refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while auth.verify(&token).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "k1 still verifies");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(auth.verify(&token).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn a_hanging_identity_provider_never_stalls_requests_with_cached_tokens() {
    let (idp, config) = idp_publishing_k1();
    let settings = AuthSettings {
        jwks_cooldown: Duration::from_millis(10),
        jwks_max_age: Duration::from_millis(50),
        ..AuthSettings::default()
    };
    let auth = Authenticator::new(vec![config], Some(idp.clone()), settings)
        .await
        .unwrap();
    let token = sign(
        Algorithm::RS256,
        Some("k1"),
        &private("rsa.pem", Algorithm::RS256),
        &claims(),
    );
    assert!(auth.verify(&token).await.is_ok());
    idp.hanging.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Keys are stale and the refetch never answers: cached tokens are still served.
    // (The timeout only keeps a regression from hanging the test run.)
    for _ in 0..20 {
        let verified = tokio::time::timeout(Duration::from_secs(10), auth.verify(&token)).await;
        assert!(
            matches!(verified, Ok(Ok(_))),
            "a cached token waited on the provider"
        );
    }
    // Let the background refetch start: it is the one hanging.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        2,
        "one refetch, still hanging"
    );
}

#[tokio::test]
async fn missing_claims_wrong_audience_and_expiry_are_named() {
    let config = IssuerConfig::hs256("https://idp.test", "eerp", vec![9; 32]);
    let key = EncodingKey::from_secret(&[9; 32]);
    let auth = authenticator(config, None).await;
    let cases = [
        ("exp", None, AuthError::BadClaims("missing `exp`".into())),
        ("iat", None, AuthError::BadClaims("missing `iat`".into())),
        (
            "aud",
            Some(json!("other")),
            AuthError::WrongIssuerOrAudience,
        ),
        ("exp", Some(json!(1000)), AuthError::Expired),
        ("nbf", Some(json!(4_000_000_000u64)), AuthError::NotYetValid),
    ];
    for (claim, value, expected) in cases {
        let mut claims = claims();
        match value {
            Some(v) => claims[claim] = v,
            None => {
                claims.as_object_mut().unwrap().remove(claim);
            }
        }
        let token = sign(Algorithm::HS256, None, &key, &claims);
        assert_eq!(auth.verify(&token).await, Err(expected), "{claim}");
    }
}
