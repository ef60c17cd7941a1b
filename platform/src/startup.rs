//! Build the application from settings, then run it. Tests start exactly this.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::dev::Server;
use actix_web::{App as ActixApp, HttpServer, web};
use anyhow::Context;
use eerp_tenancy::Authenticator;
use eerp_tenancy::limits::Ceilings;

use crate::config::Settings;
use crate::db::{WorkerLanes, create_pool};
use crate::http;
use crate::metrics::Metrics;
use crate::migrations::catalog::migrate_catalog;
use crate::notify::{Change, Heard, spawn_listener};
use crate::registry::store::ModuleStore;
use crate::registry::{BUILTIN_MODULES, Registry};
use crate::runtime::build_engine;
use crate::state::AppState;
use crate::tenants::TenantDirectory;
use crate::tenants::gate::Shares;

/// A built application, listening but not yet serving.
pub struct App {
    port: u16,
    ops_port: u16,
    server: Server,
    ops_server: Server,
    state: web::Data<AppState>,
}

impl App {
    /// Connects to the database, migrates the catalog, loads the modules and binds the
    /// listener.
    ///
    /// # Errors
    /// When any of those steps fails; the message says which.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if !(settings.tenant_share > 0.0 && settings.tenant_share <= 1.0) {
            anyhow::bail!(
                "the tenant share must be above 0 and at most 1, not {}",
                settings.tenant_share
            );
        }
        let pool = create_pool(
            &settings.database_url,
            background_pool_size(settings.db_pool_size),
            settings.db_pool_wait,
            0,
        )?;
        // One lane (a pool of one connection) per request connection: see `WorkerLanes`.
        let request_pools = (0..settings.db_pool_size.max(1))
            .map(|_| {
                create_pool(
                    &settings.database_url,
                    1,
                    settings.db_pool_wait,
                    settings.db_statement_cache,
                )
            })
            .collect::<anyhow::Result<Arc<[_]>>>()?;
        migrate_catalog(&pool)
            .await
            .context("migrating the catalog schema `eerp`")?;
        let engine = build_engine(&settings.engine)
            .map_err(|e| anyhow::anyhow!("configuring the wasm engine: {e:#}"))?;
        let registry = Arc::new(Registry::default());
        let store = ModuleStore {
            pool: &pool,
            engine: &engine,
            registry: &registry,
            artifact_key: settings.artifact_key.as_ref(),
        };
        store
            .seed(BUILTIN_MODULES, &settings.extra_modules)
            .await
            .context("storing the built-in modules in the catalog")?;
        store.sync().await.map_err(|e| {
            anyhow::anyhow!("loading the stored modules: {}", crate::error_chain(&e))
        })?;
        let metrics = Arc::new(Metrics::new(settings.metrics_top_tenants));
        metrics.register_modules(&registry.names());
        let auth = Authenticator::new(
            settings.issuers.clone(),
            Some(Arc::new(crate::http::auth::HttpJwks::new()?)),
            settings.auth.clone(),
        )
        .await
        .context("loading token verification keys")?;
        let shares = Shares::of(
            settings.tenant_share,
            settings.workers.max(1),
            settings.db_pool_size,
            settings.engine.pool_slots,
        );
        let directory = Arc::new(TenantDirectory::new(
            pool.clone(),
            settings.limits.clone(),
            shares,
            settings.tenant_cache_capacity,
            settings.tenant_cache_ttl,
        ));
        let modules_changed = Arc::new(tokio::sync::Notify::new());
        let heard = spawn_listener(settings.database_url.clone()).await;
        tokio::spawn(apply_changes(
            heard,
            directory.clone(),
            modules_changed.clone(),
        ));
        let state = web::Data::new(AppState {
            pool,
            request_pools,
            engine,
            registry,
            auth,
            directory,
            ceilings: Ceilings {
                max_memory_bytes: settings.engine.max_memory_bytes as u64,
            },
            purge_grace: settings.purge_grace,
            metrics,
            pool_slots: settings.engine.pool_slots,
            pool_wait: settings.db_pool_wait,
            max_module_bytes: settings.max_module_bytes,
            artifact_key: settings.artifact_key.clone(),
        });
        tokio::spawn(sync_modules_forever(state.clone(), modules_changed));
        tokio::spawn(http::dispatch::expire_idempotency_keys(state.pool.clone()));
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        tokio::spawn(http::metrics::refresh_catalog_forever(
            state.clone(),
            settings.metrics_refresh,
        ));
        let shared = state.clone();
        let factories = Arc::new(AtomicUsize::new(0));
        let workers = settings.workers.max(1);
        let server = HttpServer::new(move || {
            // Called once per worker, on the worker's thread (again for a worker actix
            // restarts, which then shares another's lanes: slower, never wrong).
            let lanes = WorkerLanes::of(
                factories.fetch_add(1, Ordering::Relaxed),
                workers,
                shared.request_pools.len(),
            );
            ActixApp::new()
                .app_data(shared.clone())
                .app_data(lanes)
                .wrap(actix_web::middleware::from_fn(http::metrics::track))
                .configure(http::routes)
        })
        .workers(workers)
        .shutdown_timeout(settings.drain_timeout.as_secs())
        .listen(listener)?
        .run();
        let ops_listener = TcpListener::bind((settings.host.as_str(), settings.ops_port))
            .with_context(|| {
                format!(
                    "binding the operations port {}:{}",
                    settings.host, settings.ops_port
                )
            })?;
        let ops_port = ops_listener.local_addr()?.port();
        let shared = state.clone();
        let ops_server = HttpServer::new(move || {
            ActixApp::new()
                .app_data(shared.clone())
                .configure(http::ops_routes)
        })
        .workers(1)
        .shutdown_timeout(settings.drain_timeout.as_secs())
        .listen(ops_listener)?
        .run();
        Ok(Self {
            port,
            ops_port,
            server,
            ops_server,
            state,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The operations port actually bound.
    pub fn ops_port(&self) -> u16 {
        self.ops_port
    }

    /// The shared state (pool, registry, authenticator, tenant directory).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server stops (Ctrl-C or SIGTERM, which drain in-flight requests).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (api, ops) = tokio::join!(self.server, self.ops_server);
        api.and(ops)
    }
}

/// Connections for work outside the data API (tenant lookups on a cache miss, catalog,
/// fleet migrations, operators, probes), on top of the `db_pool_size` that serve
/// requests. A fleet run takes at most half of them, the default four of eight.
fn background_pool_size(db_pool_size: usize) -> usize {
    (db_pool_size / 2).max(8)
}

/// Acts on what the catalog listener hears: drops tenant entries, wakes the module sync.
async fn apply_changes(
    mut heard: tokio::sync::mpsc::UnboundedReceiver<Heard>,
    directory: Arc<TenantDirectory>,
    modules_changed: Arc<tokio::sync::Notify>,
) {
    while let Some(heard) = heard.recv().await {
        match heard {
            Heard::Change(Change::Tenant(slug)) => directory.invalidate(&slug).await,
            Heard::Change(Change::All) => directory.invalidate_all(),
            Heard::Change(Change::Modules) => modules_changed.notify_one(),
            Heard::Resync => {
                directory.invalidate_all();
                modules_changed.notify_one();
            }
        }
    }
}

/// Reloads the module store into the registry whenever a change is announced, so every
/// replica serves a new version within moments of its upload.
async fn sync_modules_forever(state: web::Data<AppState>, changed: Arc<tokio::sync::Notify>) {
    loop {
        changed.notified().await;
        match state.module_store().sync().await {
            Ok(()) => state.metrics.register_modules(&state.registry.names()),
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "cannot reload the module store")
            }
        }
    }
}
