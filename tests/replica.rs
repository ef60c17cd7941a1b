//! A test replica: the real EERP app (CRM and the hostile module, the test issuers) in a
//! process of its own, serving `EERP_TEST_DATABASE_URL` on a free port. It prints
//! `port <n> ops <m>` once it listens. Tests kill it to simulate a crash.

use eerp_e2e::{TestOptions, test_settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("EERP_TEST_DATABASE_URL")?;
    let settings = test_settings(
        url,
        TestOptions {
            hostile: true,
            ..TestOptions::default()
        },
    );
    let app = eerp_platform::App::build(settings).await?;
    println!("port {} ops {}", app.port(), app.ops_port());
    app.run_until_stopped().await?;
    Ok(())
}
