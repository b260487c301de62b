//! Where the waiting room's admission keys come from, and how a container keeps them current.
//!
//! Deployed, the key is never in the function's configuration (anyone allowed
//! `lambda:GetFunctionConfiguration` could read it there): the function is given the Secrets
//! Manager secret's ARN (`ADMISSION_KEY_SECRET_ARN`) and reads the secret's `AWSCURRENT` version
//! (it signs, and checks) at cold start: one `GetSecretValue`, on one TLS connection. A container
//! reads `AWSCURRENT` and `AWSPREVIOUS` (it checks, while a rotation settles) every
//! [`REFRESH_EVERY`], and at once (at most every [`REFETCH_AT_MOST_EVERY`]) when a token verifies
//! with no key it holds: a rotation reaches every container without a redeploy, a token signed by
//! a container that saw the rotation first is honoured by one that had not, and a token signed
//! before the rotation is honoured by a container started after it (which reads `AWSPREVIOUS` on
//! the first such token). Locally the key may be given as `ADMISSION_KEY` (hex) instead.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;

use crate::room::AdmissionKeys;

/// A container reads the secret again this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// A token no key verifies makes the container read the secret again, at most this often.
pub const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// The secret that holds the admission key (hex text), read with `GetSecretValue`.
#[derive(Debug, Clone)]
pub struct SecretSource {
    client: Client,
    secret_id: String,
}

impl SecretSource {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self { client, secret_id: secret_id.into() }
    }

    /// The key as the secret has it now (`AWSCURRENT`), alone: what a cold start needs.
    pub async fn fetch_current(&self) -> Result<AdmissionKeys, String> {
        self.keys(self.stage("AWSCURRENT").await?, None)
    }

    /// The keys as the secret has them now: `AWSCURRENT` signs; `AWSPREVIOUS`, when the secret
    /// has one, is still accepted.
    pub async fn fetch(&self) -> Result<AdmissionKeys, String> {
        // Boxed: two SDK calls' state, rare, on the purchase path's future otherwise.
        let (current, previous) = tokio::join!(Box::pin(self.stage("AWSCURRENT")), Box::pin(self.stage("AWSPREVIOUS")));
        self.keys(current?, previous?.as_deref())
    }

    /// The keys of the versions read (`AWSCURRENT` is required).
    fn keys(&self, current: Option<String>, previous: Option<&str>) -> Result<AdmissionKeys, String> {
        let current = current.ok_or_else(|| format!("secret {} has no AWSCURRENT version", self.secret_id))?;
        AdmissionKeys::from_hex(&current, previous).map_err(|e| format!("secret {}: {e}", self.secret_id))
    }

    async fn stage(&self, stage: &str) -> Result<Option<String>, String> {
        let sent = self.client.get_secret_value().secret_id(&self.secret_id).version_stage(stage).send().await;
        match sent {
            Ok(out) => Ok(out.secret_string),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(format!(
                "cannot read {stage} of secret {}: {}",
                self.secret_id,
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            )),
        }
    }
}

/// A container's admission keys: fixed ones (local), or those of a secret, read again as
/// described in the module documentation.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: RwLock<Option<Arc<AdmissionKeys>>>,
    source: Option<SecretSource>,
    /// When the secret was last read (or a read was last tried).
    read_at: Mutex<Option<Instant>>,
    /// When a token no key verified last made the container read it.
    refetched_at: Mutex<Option<Instant>>,
    /// One read at a time in a container.
    reading: tokio::sync::Mutex<()>,
}

impl KeyRing {
    /// Fixed keys (or none): never read again.
    pub fn fixed(keys: Option<AdmissionKeys>) -> Self {
        Self { keys: RwLock::new(keys.map(Arc::new)), ..Self::default() }
    }

    /// The current key of `source`, read now: a function whose secret cannot be read does not
    /// start. The previous version is read when a token needs it (or at the next refresh).
    pub async fn from_secret(source: SecretSource) -> Result<Self, String> {
        let keys = source.fetch_current().await?;
        Ok(Self {
            keys: RwLock::new(Some(Arc::new(keys))),
            source: Some(source),
            read_at: Mutex::new(Some(Instant::now())),
            refetched_at: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    /// The keys now, if there are any.
    pub fn current(&self) -> Option<Arc<AdmissionKeys>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the secret again if the last read is older than `max_age` (nothing for fixed keys).
    /// A failed read keeps the keys the container has (logged and counted; the next try comes
    /// `max_age` later). Returns whether the keys changed.
    pub async fn refresh_if_older_than(&self, max_age: Duration) -> bool {
        self.read_again(&self.read_at, max_age).await
    }

    /// Reads the secret again because a token verified with neither key (it may be signed with a
    /// version this container has not read yet): at most once per [`REFETCH_AT_MOST_EVERY`],
    /// however many such tokens arrive. Returns whether the keys changed.
    pub async fn refresh_for_unknown_token(&self) -> bool {
        self.read_again(&self.refetched_at, REFETCH_AT_MOST_EVERY).await
    }

    async fn read_again(&self, gate: &Mutex<Option<Instant>>, every: Duration) -> bool {
        let Some(source) = &self.source else { return false };
        let due = || gate.lock().unwrap_or_else(|p| p.into_inner()).is_none_or(|at| at.elapsed() >= every);
        if !due() {
            return false;
        }
        let _reading = self.reading.lock().await;
        if !due() {
            return false;
        }
        *gate.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        *self.read_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        match Box::pin(source.fetch()).await {
            Ok(keys) => {
                let mut held = self.keys.write().unwrap_or_else(|p| p.into_inner());
                let changed = held.as_deref() != Some(&keys);
                *held = Some(Arc::new(keys));
                if changed {
                    tracing::info!("admission keys read again: a new version");
                }
                changed
            }
            Err(e) => {
                tracing::error!(error = %e, "admission keys could not be read again; keeping the ones held");
                crate::telemetry::record_error("admission_key");
                false
            }
        }
    }
}
