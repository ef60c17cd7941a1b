//! A fuzz target that runs on stable Rust: mutates valid manifests, migrations and data
//! API operations (bit flips, byte insertions and deletions, splices of JSON tokens) and
//! feeds them to the decoders and checkers a module's output reaches. Any panic is a
//! failure, reported with the input. It is not coverage-guided (that needs nightly and
//! `cargo fuzz`); it runs for `EERP_FUZZ_SECONDS` (default 20) with a seed from
//! `EERP_FUZZ_SEED` (default: the clock, printed so a failure can be replayed).

use std::time::{Duration, Instant};

use eerp_abi::data::DataOp;
use eerp_abi::migration::parse_migrations;
use eerp_platform::data_api::query;
use eerp_platform::migrations::SchemaModel;
use eerp_platform::migrations::plan::plan;
use eerp_platform::runtime::loaded::check_manifest_json;

/// xorshift64*: small, seedable, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"-1",
    b"1e309",
    b"\"\\u0000\"",
    b"\"contacts\"",
    b"\"name\"",
    b"\"op\"",
    b"\"list\"",
    b"\"; DROP TABLE x; --",
    b"\xff\xfe",
    b"\"varchar(99999999999)\"",
    b"\"numeric(1000,2000)\"",
    b"99999999999999999999",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                bytes.splice(at..at, token.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let end = (at + rng.below(8)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            _ => {
                let byte = rng.next() as u8;
                bytes.insert(at, byte);
            }
        }
    }
    bytes
}

fn seeds() -> Vec<Vec<u8>> {
    let crm = eerp_crm::module();
    let manifest = serde_json::to_vec(&crm.manifest()).unwrap();
    let migrations = serde_json::to_vec(&eerp_crm::schema::migrations()).unwrap();
    let ops = [
        r#"{"op":"insert","table":"contacts","values":{"name":"Ada","credit_limit":"1.50"}}"#,
        r#"{"op":"list","table":"contacts","filter":[{"column":"name","op":"contains","value":"a"}],"order":{"column":"name","desc":true},"limit":10}"#,
        r#"{"op":"aggregate","table":"contacts","group_by":["status"],"aggregates":[{"func":"count"},{"func":"sum","column":"credit_limit"}]}"#,
        r#"{"op":"update","table":"contacts","id":"6f1c1a64-1d2e-4c1e-9c55-7f7d3b1e2a10","values":{"notes":null}}"#,
    ];
    let mut seeds = vec![manifest, migrations];
    seeds.extend(ops.iter().map(|op| op.as_bytes().to_vec()));
    seeds
}

/// Everything a mutated input is fed to; none of it may panic.
fn feed(bytes: &[u8], model: &SchemaModel) {
    let _ = check_manifest_json(bytes);
    if let Ok(migrations) = parse_migrations(bytes) {
        let _ = plan("t_fuzz__crm", &migrations);
    }
    if let Ok(op) = serde_json::from_slice::<DataOp>(bytes) {
        let _ = query::build("t_fuzz__crm", model, &op);
    }
}

#[test]
fn mutated_module_output_never_panics_the_host() {
    let seconds: u64 = std::env::var("EERP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("EERP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        .max(1);
    println!("fuzzing for {seconds} s with EERP_FUZZ_SEED={seed}");
    let model = SchemaModel::from_migrations(&eerp_crm::schema::migrations()).unwrap();
    let seeds = seeds();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let seed_input = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed_input);
        let outcome = std::panic::catch_unwind(|| feed(&input, &model));
        assert!(
            outcome.is_ok(),
            "panicked on input {:?} (seed {seed})",
            String::from_utf8_lossy(&input)
        );
        runs += 1;
    }
    println!("{runs} inputs, no panic");
    assert!(runs > 0);
}
