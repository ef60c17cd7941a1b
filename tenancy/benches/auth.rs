//! The cost of authenticating a request: a token seen for the first time (signature
//! check, claims) against one seen before (a SHA-256 and a cache lookup), per algorithm.
//!
//! `cargo bench -p eerp-tenancy --bench auth`

use std::path::PathBuf;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use eerp_tenancy::{AuthSettings, Authenticator, IssuerConfig, KeySource};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn key(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/keys")).join(name)
}

fn signing_key(name: &str, alg: Algorithm) -> EncodingKey {
    if alg == Algorithm::HS256 {
        return EncodingKey::from_secret(&[7; 32]);
    }
    let pem = std::fs::read(key(&format!("{name}.pem"))).expect("test key");
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).expect("rsa"),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).expect("ec"),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).expect("ed"),
        _ => unreachable!("HS256 is handled above"),
    }
}

fn issuer(name: &str, alg: Algorithm) -> IssuerConfig {
    let keys = match alg {
        Algorithm::HS256 => KeySource::Hs256Secret(vec![7; 32]),
        _ => KeySource::PemFiles(vec![key(&format!("{name}.pub.pem"))]),
    };
    IssuerConfig {
        issuer: "https://idp.bench".into(),
        audience: "eerp".into(),
        operator_audience: None,
        algorithms: vec![alg],
        keys,
        tenant_claim: "tid".into(),
        tenants: None,
    }
}

fn bench_auth(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("authenticate");
    group.measurement_time(Duration::from_secs(4));
    for (name, alg) in [
        ("hs", Algorithm::HS256),
        ("rsa", Algorithm::RS256),
        ("ec", Algorithm::ES256),
        ("ed", Algorithm::EdDSA),
    ] {
        let auth = runtime
            .block_on(Authenticator::new(
                vec![issuer(name, alg)],
                None,
                AuthSettings::default(),
            ))
            .expect("authenticator");
        let signing = signing_key(name, alg);
        let mut n = 0u64;
        let mut token = || {
            n += 1;
            let claims = json!({
                "iss": "https://idp.bench", "aud": "eerp", "sub": format!("user-{n}"),
                "tid": "acme", "roles": ["admin"],
                "exp": jsonwebtoken::get_current_timestamp() + 3600,
            });
            jsonwebtoken::encode(&Header::new(alg), &claims, &signing).expect("signs")
        };
        group.bench_function(format!("{alg:?}/fresh token"), |b| {
            b.iter_batched(
                &mut token,
                |t| runtime.block_on(auth.verify(&t)).expect("valid"),
                BatchSize::SmallInput,
            )
        });
        let repeated = token();
        group.bench_function(format!("{alg:?}/repeated token"), |b| {
            b.iter(|| runtime.block_on(auth.verify(&repeated)).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
