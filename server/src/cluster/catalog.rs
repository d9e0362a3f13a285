//! The cluster catalog in Postgres: nodes with their leases, and which node runs which
//! sandbox. Every control plane replica shares it; each decision is one SQL statement (or
//! one transaction) so replicas need no leader. Time is Postgres's `now()` alone, never a
//! replica's clock.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use sandlot_protocol::{ClusterNode, NodeRegistration};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Schema versions, applied in order under an advisory lock (replicas may start together).
const MIGRATIONS: &[&str] = &[
    // 1: nodes and sandboxes.
    "CREATE TABLE nodes (
        id text PRIMARY KEY,
        addr text NOT NULL,
        epoch bigint NOT NULL,
        state text NOT NULL,
        capacity integer NOT NULL,
        allocated integer NOT NULL DEFAULT 0,
        templates text[] NOT NULL DEFAULT '{}',
        version text NOT NULL DEFAULT '',
        lease_until timestamptz NOT NULL,
        registered_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE sandboxes (
        id text PRIMARY KEY,
        node_id text NOT NULL REFERENCES nodes(id),
        node_epoch bigint NOT NULL,
        template text NOT NULL,
        state text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX sandboxes_by_node ON sandboxes (node_id, node_epoch);",
    // 2: each incarnation's session secret (its SHA-256), required on heartbeats.
    "ALTER TABLE nodes ADD COLUMN session_sha256 text NOT NULL DEFAULT '';",
];

/// Lost sandboxes answer `SANDBOX_LOST` this long, then are forgotten.
const LOST_RETENTION: &str = "24 hours";
/// A sandbox the node does not report is gone only when older than this: its create may be
/// in flight while the heartbeat is. (A reservation whose create never reached the node — a
/// replica died mid-create — goes the same way.)
const REPORT_GRACE: &str = "30 seconds";

/// Noise added to a node's load (allocated / capacity) when placing: nodes within ~5 % of
/// each other are picked at random, so concurrent creates spread instead of all racing
/// for the one least loaded node; a node clearly less loaded still wins.
const PLACEMENT_NOISE: f64 = 0.05;

pub type CatalogResult<T> = Result<T, String>;

/// A catalog error with its causes (a TLS refusal says why: the certificate, the name...).
fn db<E: std::error::Error>(e: E) -> String {
    let mut message = format!("catalog: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    message
}

/// The TLS connector: rustls with ring, trusting `ca_file`'s certificates or the web roots.
fn tls(ca_file: Option<&std::path::Path>) -> CatalogResult<MakeRustlsConnect> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--database-ca-file {}: {e}", path.display()))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| format!("--database-ca-file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--database-ca-file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "--database-ca-file {}: no certificate in it",
                    path.display()
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[derive(Clone)]
pub struct Catalog {
    pool: Pool,
}

/// Where a sandbox lives, as the router needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    pub addr: String,
    pub epoch: i64,
    pub lost: bool,
}

/// What a heartbeat did.
pub enum Heartbeat {
    /// The lease is renewed; kill these sandboxes (the catalog does not give them to you).
    Renewed {
        orphans: Vec<String>,
        draining: bool,
    },
    /// This epoch is over: kill everything and register again.
    Fenced,
}

impl Catalog {
    /// Connects (with a pool) and brings the schema up to date. TLS as the URL's `sslmode`
    /// says, verified against `ca_file` (PEM) or the public web roots.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        ca_file: Option<&std::path::Path>,
    ) -> CatalogResult<Self> {
        let pg: tokio_postgres::Config = url.parse().map_err(db)?;
        let manager = Manager::from_config(
            pg,
            tls(ca_file)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(db)?;
        let catalog = Self { pool };
        catalog.migrate().await?;
        Ok(catalog)
    }

    async fn client(&self) -> CatalogResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(db)
    }

    async fn migrate(&self) -> CatalogResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // One replica migrates at a time; the others wait here and find nothing to do.
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7070700);
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await
        .map_err(db)?;
        let done: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.batch_execute(sql).await.map_err(db)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// A node (re)joins: a new epoch and session; whatever it ran under an earlier one is
    /// lost. `None`: a node of that name is alive (its lease runs): it must be lost first, so
    /// the join token alone cannot take a live node's place.
    pub async fn register(
        &self,
        reg: &NodeRegistration,
        lease: Duration,
        session_sha256: &str,
    ) -> CatalogResult<Option<i64>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let Some(row) = tx
            .query_opt(
                "INSERT INTO nodes (id, addr, epoch, state, capacity, templates, version,
                                    lease_until, session_sha256)
                 VALUES ($1, $2, 1, 'joining', $3, $4, $5, now() + make_interval(secs => $6), $7)
                 ON CONFLICT (id) DO UPDATE SET
                     addr = EXCLUDED.addr, epoch = nodes.epoch + 1, state = 'joining',
                     capacity = EXCLUDED.capacity, allocated = 0,
                     templates = EXCLUDED.templates, version = EXCLUDED.version,
                     lease_until = EXCLUDED.lease_until, registered_at = now(),
                     updated_at = now(), session_sha256 = EXCLUDED.session_sha256
                 WHERE nodes.state = 'lost' OR nodes.lease_until < now()
                 RETURNING epoch",
                &[
                    &reg.name,
                    &reg.addr,
                    &(reg.capacity.min(i32::MAX as u32) as i32),
                    &reg.templates,
                    &reg.version,
                    &lease.as_secs_f64(),
                    &session_sha256,
                ],
            )
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let epoch: i64 = row.get(0);
        tx.execute(
            "UPDATE sandboxes SET state = 'lost', updated_at = now()
             WHERE node_id = $1 AND node_epoch < $2 AND state <> 'lost'",
            &[&reg.name, &epoch],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(epoch))
    }

    /// Renews a node's lease if `epoch` is still its epoch, and reconciles what it runs
    /// with what the catalog gives it.
    pub async fn heartbeat(
        &self,
        node: &str,
        epoch: i64,
        session_sha256: &str,
        running: &[String],
        lease: Duration,
    ) -> CatalogResult<Heartbeat> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let Some(row) = tx
            .query_opt(
                "UPDATE nodes SET lease_until = now() + make_interval(secs => $3),
                     state = CASE WHEN state = 'joining' THEN 'ready' ELSE state END,
                     updated_at = now()
                 WHERE id = $1 AND epoch = $2 AND state <> 'lost' AND session_sha256 = $4
                 RETURNING state",
                &[&node, &epoch, &lease.as_secs_f64(), &session_sha256],
            )
            .await
            .map_err(db)?
        else {
            return Ok(Heartbeat::Fenced);
        };
        let state: String = row.get(0);
        let orphans: Vec<String> = tx
            .query(
                "SELECT r.id FROM unnest($3::text[]) AS r(id)
                 WHERE NOT EXISTS (SELECT 1 FROM sandboxes s
                                   WHERE s.id = r.id AND s.node_id = $1
                                     AND s.node_epoch = $2 AND s.state <> 'lost')",
                &[&node, &epoch, &running],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Sandboxes the node no longer runs (timed out there, or killed) leave the catalog.
        tx.execute(
            &format!(
                "WITH gone AS (
                     DELETE FROM sandboxes
                     WHERE node_id = $1 AND node_epoch = $2 AND state IN ('running', 'paused')
                       AND created_at < now() - interval '{REPORT_GRACE}'
                       AND NOT (id = ANY($3::text[]))
                     RETURNING id)
                 UPDATE nodes SET allocated = greatest(allocated - (SELECT count(*) FROM gone), 0)
                 WHERE id = $1"
            ),
            &[&node, &epoch, &running],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Heartbeat::Renewed {
            orphans,
            draining: state == "draining",
        })
    }

    /// Reserves room for sandbox `id` on the least loaded live node that has its template,
    /// skipping `exclude`. `None`: no node has room.
    pub async fn place(
        &self,
        id: &str,
        template: &str,
        exclude: &[String],
    ) -> CatalogResult<Option<Placement>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "WITH candidates AS (
                     SELECT id FROM nodes
                     WHERE state = 'ready' AND lease_until > now() AND allocated < capacity
                       AND $2 = ANY(templates) AND NOT (id = ANY($3::text[]))
                     ORDER BY allocated::float8 / capacity + random() * $4
                     LIMIT 1),
                 pick AS (SELECT id FROM candidates),
                 reserved AS (
                     UPDATE nodes n SET allocated = n.allocated + 1, updated_at = now()
                     FROM pick WHERE n.id = pick.id AND n.allocated < n.capacity
                       AND n.state = 'ready'
                     RETURNING n.id, n.addr, n.epoch),
                 inserted AS (
                     INSERT INTO sandboxes (id, node_id, node_epoch, template, state)
                     SELECT $1, id, epoch, $2, 'running' FROM reserved
                     RETURNING node_id)
                 SELECT r.id, r.addr, r.epoch FROM reserved r JOIN inserted i ON i.node_id = r.id",
                &[&id, &template, &exclude, &PLACEMENT_NOISE],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| Placement {
            node: r.get(0),
            addr: r.get(1),
            epoch: r.get(2),
            lost: false,
        }))
    }

    /// Whether any live node (not in `exclude`) has room for a sandbox of `template`.
    pub async fn has_room(&self, template: &str, exclude: &[String]) -> bool {
        let Ok(client) = self.client().await else {
            return false;
        };
        client
            .query_opt(
                "SELECT 1 FROM nodes
                 WHERE state = 'ready' AND lease_until > now() AND allocated < capacity
                   AND $1 = ANY(templates) AND NOT (id = ANY($2::text[]))
                 LIMIT 1",
                &[&template, &exclude],
            )
            .await
            .is_ok_and(|row| row.is_some())
    }

    /// Pause and resume change the recorded state (listing filters by it).
    pub async fn set_state(&self, id: &str, state: &str) -> CatalogResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE sandboxes SET state = $2, updated_at = now()
                 WHERE id = $1 AND state <> 'lost'",
                &[&id, &state],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Forgets a sandbox (deleted, or its create failed) and frees its room on its node.
    pub async fn release(&self, id: &str) -> CatalogResult<()> {
        self.client()
            .await?
            .execute(
                "WITH gone AS (DELETE FROM sandboxes WHERE id = $1
                               RETURNING node_id, node_epoch, state)
                 UPDATE nodes n SET allocated = greatest(n.allocated - 1, 0), updated_at = now()
                 FROM gone WHERE n.id = gone.node_id AND n.epoch = gone.node_epoch
                   AND gone.state <> 'lost'",
                &[&id],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Where sandbox `id` runs (`None`: the catalog does not know it).
    pub async fn locate(&self, id: &str) -> CatalogResult<Option<Placement>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT s.node_id, n.addr, s.node_epoch, s.state = 'lost'
                 FROM sandboxes s JOIN nodes n ON n.id = s.node_id
                 WHERE s.id = $1",
                &[&id],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| Placement {
            node: r.get(0),
            addr: r.get(1),
            epoch: r.get(2),
            lost: r.get(3),
        }))
    }

    /// Every sandbox the catalog knows, oldest first: id, node, state.
    pub async fn sandboxes(&self) -> CatalogResult<Vec<(String, Placement, String)>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT s.id, s.node_id, n.addr, s.node_epoch, s.state
                 FROM sandboxes s JOIN nodes n ON n.id = s.node_id
                 ORDER BY s.created_at, s.id",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                let state: String = r.get(4);
                (
                    r.get(0),
                    Placement {
                        node: r.get(1),
                        addr: r.get(2),
                        epoch: r.get(3),
                        lost: state == "lost",
                    },
                    state,
                )
            })
            .collect())
    }

    /// Expired leases: the node and its sandboxes are lost. Idempotent, so every replica
    /// runs it without coordination. Returns the nodes it marked.
    pub async fn reap(&self) -> CatalogResult<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "WITH dead AS (
                     UPDATE nodes SET state = 'lost', allocated = 0, updated_at = now()
                     WHERE state <> 'lost' AND lease_until < now()
                     RETURNING id),
                 lost AS (
                     UPDATE sandboxes SET state = 'lost', updated_at = now()
                     WHERE node_id IN (SELECT id FROM dead) AND state <> 'lost')
                 SELECT id FROM dead",
                &[],
            )
            .await
            .map_err(db)?;
        client
            .execute(
                &format!(
                    "DELETE FROM sandboxes
                     WHERE state = 'lost' AND updated_at < now() - interval '{LOST_RETENTION}'"
                ),
                &[],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Stops placing sandboxes on a node (before an upgrade); its sandboxes run on.
    pub async fn drain(&self, node: &str) -> CatalogResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE nodes SET state = 'draining', updated_at = now()
                 WHERE id = $1 AND state <> 'lost'",
                &[&node],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Sandboxes per state (`creating`, `running`, `paused`, `lost`).
    pub async fn sandbox_counts(&self) -> CatalogResult<Vec<(String, i64)>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT state, count(*) FROM sandboxes GROUP BY state ORDER BY state",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn nodes(&self) -> CatalogResult<Vec<ClusterNode>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, addr, state, epoch, capacity, allocated,
                        to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM nodes ORDER BY id",
                &[],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| ClusterNode {
                name: r.get(0),
                addr: r.get(1),
                state: r.get(2),
                epoch: r.get(3),
                capacity: r.get::<_, i32>(4).max(0) as u32,
                allocated: r.get::<_, i32>(5).max(0) as u32,
                lease_until: r.get(6),
            })
            .collect())
    }
}
