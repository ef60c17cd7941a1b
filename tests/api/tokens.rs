//! The token attack matrix against a real issuer configuration: RS256, ES256 and EdDSA
//! keys from a JWKS file, plus the HS256 test issuer. Every attack gets 401 and writes
//! nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eerp_e2e::{IDP, TestApp, idp_claims, key_path, sign_with, spawn_app, status_and_json};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

const CONTACTS: &str = "/api/v1/crm/contacts";

fn with(claims: &Value, key: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[key] = value;
    claims
}

fn without(claims: &Value, key: &str) -> Value {
    let mut claims = claims.clone();
    claims.as_object_mut().unwrap().remove(key);
    claims
}

async fn attempt_write(app: &TestApp, token: &str) -> (u16, Value) {
    let body = json!({"name": "Mallory"});
    let response = app
        .send(Method::POST, CONTACTS, Some(token), Some(&body))
        .await;
    let (status, _, problem) = status_and_json(response).await;
    (status, problem)
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_from_the_jwks_are_accepted() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    for kid in ["rsa", "ec", "ed"] {
        let token = sign_with(kid, Some(kid), &idp_claims("acme"));
        let response = app.send(Method::GET, CONTACTS, Some(&token), None).await;
        assert_eq!(response.status(), 200, "{kid}");
    }
}

#[tokio::test]
async fn every_token_attack_is_refused_with_401_and_touches_nothing() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.create_tenant("gone").await;
    let (status, _) = app.admin(Method::DELETE, "/tenants/gone", None).await;
    assert_eq!(status, 200);
    let now = jsonwebtoken::get_current_timestamp();
    let valid = idp_claims("acme");

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(valid.to_string());
    let alg_none = format!("{none_header}.{payload}.");

    let public_pem = std::fs::read(key_path("rsa.pub.pem")).unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa".into());
    let hs256_with_public_key =
        jsonwebtoken::encode(&hs_header, &valid, &EncodingKey::from_secret(&public_pem)).unwrap();

    let genuine = sign_with("rsa", Some("rsa"), &valid);
    let parts: Vec<&str> = genuine.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(with(&valid, "tid", json!("globex")).to_string());
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);

    let attacks: Vec<(&str, String)> = vec![
        (
            "expired",
            sign_with("rsa", Some("rsa"), &with(&valid, "exp", json!(now - 3600))),
        ),
        (
            "not yet valid",
            sign_with("ec", Some("ec"), &with(&valid, "nbf", json!(now + 3600))),
        ),
        (
            "wrong issuer",
            sign_with(
                "rsa",
                Some("rsa"),
                &with(&valid, "iss", json!("https://evil.test")),
            ),
        ),
        (
            "wrong audience",
            sign_with(
                "ed",
                Some("ed"),
                &with(&valid, "aud", json!("someone-else")),
            ),
        ),
        ("alg none", alg_none),
        ("HS256 with the RSA public key", hs256_with_public_key),
        ("unknown kid", sign_with("rsa", Some("no-such-key"), &valid)),
        ("tampered payload", tampered),
        (
            "missing tenant claim",
            sign_with("rsa", Some("rsa"), &without(&valid, "tid")),
        ),
        (
            "deleted tenant",
            sign_with("rsa", Some("rsa"), &with(&valid, "tid", json!("gone"))),
        ),
        (
            "missing exp",
            sign_with("rsa", Some("rsa"), &without(&valid, "exp")),
        ),
        (
            "missing sub",
            sign_with("rsa", Some("rsa"), &without(&valid, "sub")),
        ),
        ("operator token at the tenant API", app.operator.clone()),
    ];
    for (name, token) in &attacks {
        let (status, problem) = attempt_write(&app, token).await;
        assert_eq!(status, 401, "{name}: {problem}");
        assert_eq!(
            problem["type"], "https://eerp.dev/problems/unauthenticated",
            "{name}"
        );
        assert!(
            !problem.to_string().contains(token.as_str()),
            "{name}: the problem must not echo the token"
        );
    }
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_gone__crm.contacts")
            .await,
        0
    );

    // Sanity: the same key and claims, untampered, are accepted.
    let (status, problem) = attempt_write(&app, &genuine).await;
    assert_eq!(status, 201, "{problem}");
    let _ = IDP;
}

#[tokio::test]
async fn a_suspended_tenants_valid_token_gets_403() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let (status, _) = app.admin(Method::POST, "/tenants/acme/suspend", None).await;
    assert_eq!(status, 200);
    let token = sign_with("ed", Some("ed"), &idp_claims("acme"));
    let (status, problem) = attempt_write(&app, &token).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(
        problem["type"],
        "https://eerp.dev/problems/tenant-suspended"
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM t_acme__crm.contacts")
            .await,
        0
    );
}

#[tokio::test]
async fn an_issuer_bound_to_some_tenants_cannot_speak_for_others() {
    let mut acme_idp = eerp_tenancy::IssuerConfig::hs256(
        "https://login.acme.test",
        "eerp-test",
        b"acme-idp-secret-acme-idp-secret-!".to_vec(),
    );
    acme_idp.operator_audience = None;
    acme_idp.tenants = Some(vec!["acme".into(), "acme_*".into()]);
    let app = eerp_e2e::spawn_app_with(eerp_e2e::TestOptions {
        extra_issuers: vec![acme_idp.clone()],
        ..eerp_e2e::TestOptions::default()
    })
    .await;
    let signer = eerp_tenancy::DevSigner::new(&acme_idp).unwrap();
    for slug in ["acme", "acme_eu", "globex"] {
        app.create_tenant(slug).await;
    }
    let token = |slug: &str| {
        let slug = eerp_tenancy::id::TenantSlug::parse(slug).unwrap();
        signer
            .tenant_token(&slug, "sso-user", &["admin"], 600)
            .unwrap()
    };
    for own in ["acme", "acme_eu"] {
        let served = app
            .send(Method::GET, CONTACTS, Some(&token(own)), None)
            .await;
        assert_eq!(served.status(), 200, "{own}");
    }
    let (status, _, problem) = status_and_json(
        app.send(Method::GET, CONTACTS, Some(&token("globex")), None)
            .await,
    )
    .await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("may not speak for"),
        "{problem}"
    );
    // And acme, now bound to its own provider, takes no tokens from the general issuer.
    let general = app.token(
        &eerp_tenancy::id::TenantSlug::parse("acme").unwrap(),
        &["admin"],
    );
    let refused = app.send(Method::GET, CONTACTS, Some(&general), None).await;
    assert_eq!(refused.status(), 401);
    let other = app.token(
        &eerp_tenancy::id::TenantSlug::parse("globex").unwrap(),
        &["admin"],
    );
    let served = app.send(Method::GET, CONTACTS, Some(&other), None).await;
    assert_eq!(
        served.status(),
        200,
        "unbound tenants still take its tokens"
    );
    // Nor may it mint operator tokens, whatever audience it puts in them.
    let mut as_operator = acme_idp.clone();
    as_operator.operator_audience = Some("eerp-test-admin".into());
    let operator = eerp_tenancy::DevSigner::new(&as_operator)
        .unwrap()
        .operator_token("sso-admin", 600)
        .unwrap();
    let refused = app
        .send(Method::GET, "/admin/v1/tenants", Some(&operator), None)
        .await;
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn a_tenant_created_again_under_its_old_slug_refuses_the_old_tenants_tokens() {
    let app = spawn_app().await;
    let old = app.admin_of("phoenix").await;
    let served = app.send(Method::GET, CONTACTS, Some(&old), None).await;
    assert_eq!(served.status(), 200);
    let (status, _) = app.admin(Method::DELETE, "/tenants/phoenix", None).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .admin(Method::POST, "/purge", Some(&json!({"grace_seconds": 0})))
        .await;
    assert_eq!(status, 200);
    // Tokens carry whole seconds and the clocks may differ by 5: wait past both.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let new = app.admin_of("phoenix").await;
    let (status, _, problem) =
        status_and_json(app.send(Method::GET, CONTACTS, Some(&old), None).await).await;
    assert_eq!(status, 401, "the earlier tenant's token: {problem}");
    let served = app.send(Method::GET, CONTACTS, Some(&new), None).await;
    assert_eq!(served.status(), 200);
}
