//! Producer keys: which tenant a request belongs to and what it may do.
//!
//! Keys live in one JSON file, `<data_dir>/keys.json`, written by `tributary keys create`
//! (atomically: temporary file, fsync, rename) and re-read by a running server when it changes,
//! so new keys work without a restart. A key itself is stored only as its SHA-256; what must be
//! usable as a secret on the server side — the HMAC signing secret and the AWS secret access
//! key, which SigV4 verification needs in the clear — is stored as is, in a file created with
//! mode 0600.
//!
//! ```text
//! {"version":1,"keys":[{"id":"k_3f2a…","hash":"<sha256 hex>","tenant":"acme","role":"write",
//!   "rate_limit":null,"signing_secret":null,"require_signature":false,
//!   "aws_access_key_id":null,"aws_secret_access_key":null,"created_at":1763884800000000}]}
//! ```

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send events.
    Write,
    /// Query its tenant's data.
    Read,
    /// Everything, across tenants.
    Admin,
}

impl Role {
    /// Whether this role may send events.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Write | Role::Admin)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Role, String> {
        match text {
            "write" => Ok(Role::Write),
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(format!("role {other:?} is not one of write, read, admin")),
        }
    }
}

/// One stored key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public identifier (safe to log).
    pub id: String,
    /// SHA-256 of the secret key, hex.
    pub hash: String,
    /// The tenant every event sent with this key belongs to.
    pub tenant: String,
    /// What the key may do.
    pub role: Role,
    /// Events per second allowed, if limited.
    #[serde(default)]
    pub rate_limit: Option<f64>,
    /// Secret for `X-Tributary-Signature` request signing, if issued.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// Refuse requests with this key that are not signed.
    #[serde(default)]
    pub require_signature: bool,
    /// AWS-style access key id, for the Kinesis API.
    #[serde(default)]
    pub aws_access_key_id: Option<String>,
    /// AWS-style secret access key, for SigV4 verification.
    #[serde(default)]
    pub aws_secret_access_key: Option<String>,
    /// When it was created, µs since the epoch.
    #[serde(default)]
    pub created_at: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    keys: Vec<KeyRecord>,
}

/// Errors reading or writing the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a key file.
    #[error("key file {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tenant name that cannot be used.
    #[error("invalid tenant {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '_', '-'")]
    InvalidTenant(String),
}

/// Options for a new key.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    /// Events per second allowed.
    pub rate_limit: Option<f64>,
    /// Issue an AWS access key pair (for the Kinesis API).
    pub aws: bool,
    /// Issue a signing secret and refuse unsigned requests.
    pub require_signature: bool,
}

/// A key just created: the only time its secret is visible.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// The secret key (for `Authorization: Bearer`, Segment's write key, `?key=`).
    pub key: String,
    /// The stored record.
    pub record: KeyRecord,
}

/// The keys a server accepts, reloaded when the file changes.
pub struct KeyStore {
    path: PathBuf,
    index: RwLock<Arc<KeyIndex>>,
    loaded_mtime: Mutex<Option<SystemTime>>,
}

#[derive(Default)]
struct KeyIndex {
    by_hash: HashMap<String, Arc<KeyRecord>>,
    by_access_key_id: HashMap<String, Arc<KeyRecord>>,
}

/// SHA-256 of a secret key, hex.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl KeyStore {
    /// Opens the key file at `path` (a missing file means no keys yet).
    pub fn open(path: impl Into<PathBuf>) -> Result<KeyStore, KeyError> {
        let store = KeyStore {
            path: path.into(),
            index: RwLock::new(Arc::default()),
            loaded_mtime: Mutex::new(None),
        };
        store.reload()?;
        Ok(store)
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key whose secret is `key`, if any.
    pub fn authenticate(&self, key: &str) -> Option<Arc<KeyRecord>> {
        self.index.read().by_hash.get(&hash_key(key)).cloned()
    }

    /// The key with this AWS access key id, if any.
    pub fn by_access_key_id(&self, id: &str) -> Option<Arc<KeyRecord>> {
        self.index.read().by_access_key_id.get(id).cloned()
    }

    /// Number of keys loaded.
    pub fn len(&self) -> usize {
        self.index.read().by_hash.len()
    }

    /// True when no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file if its modification time changed. Returns whether it reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, KeyError> {
        let mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if mtime == *self.loaded_mtime.lock() {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    fn reload(&self) -> Result<(), KeyError> {
        let mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let file = read_key_file(&self.path)?;
        let mut index = KeyIndex::default();
        for record in file.keys {
            let record = Arc::new(record);
            if let Some(id) = &record.aws_access_key_id {
                index
                    .by_access_key_id
                    .insert(id.clone(), Arc::clone(&record));
            }
            index.by_hash.insert(record.hash.clone(), record);
        }
        tracing::info!(keys = index.by_hash.len(), file = %self.path.display(), "keys loaded");
        *self.index.write() = Arc::new(index);
        *self.loaded_mtime.lock() = mtime;
        Ok(())
    }
}

/// Creates a key for `tenant` with `role`, adds it to the key file at `path` and returns it.
pub fn create_key(
    path: &Path,
    tenant: &str,
    role: Role,
    options: &NewKey,
) -> Result<CreatedKey, KeyError> {
    if tenant.is_empty()
        || tenant.len() > 64
        || !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(KeyError::InvalidTenant(tenant.to_string()));
    }
    let key = format!("trb_{}", random_hex(16));
    let record = KeyRecord {
        id: format!("k_{}", random_hex(8)),
        hash: hash_key(&key),
        tenant: tenant.to_string(),
        role,
        rate_limit: options.rate_limit,
        signing_secret: options.require_signature.then(|| random_hex(32)),
        require_signature: options.require_signature,
        aws_access_key_id: options
            .aws
            .then(|| format!("AKIA{}", random_hex(8).to_ascii_uppercase())),
        aws_secret_access_key: options.aws.then(|| random_hex(20)),
        created_at: tributary_model::now_micros(),
    };
    let mut file = read_key_file(path)?;
    file.version = 1;
    file.keys.push(record.clone());
    write_key_file(path, &file)?;
    Ok(CreatedKey { key, record })
}

/// All keys in the file (hashes, never secrets of producer keys).
pub fn list_keys(path: &Path) -> Result<Vec<KeyRecord>, KeyError> {
    Ok(read_key_file(path)?.keys)
}

fn read_key_file(path: &Path) -> Result<KeyFile, KeyError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KeyError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(source) => Err(KeyError::Io {
            context: format!("reading {}", path.display()),
            source,
        }),
    }
}

fn write_key_file(path: &Path, file: &KeyFile) -> Result<(), KeyError> {
    let io = |context: String| move |source| KeyError::Io { context, source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    let json = serde_json::to_vec_pretty(file).map_err(|e| KeyError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("writing {}", tmp.display())))?;
    out.write_all(&json)
        .and_then(|()| out.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("replacing {}", path.display())))?;
    Ok(())
}

/// `bytes` random bytes as hex, from the OS's generator (through UUID v4).
fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_authenticate_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let store = KeyStore::open(&path).unwrap();
        assert!(store.is_empty());
        let created = create_key(&path, "acme", Role::Write, &NewKey::default()).unwrap();
        assert!(created.key.starts_with("trb_"));
        assert!(
            store.authenticate(&created.key).is_none(),
            "not reloaded yet"
        );
        assert!(store.reload_if_changed().unwrap());
        let record = store.authenticate(&created.key).unwrap();
        assert_eq!(record.tenant, "acme");
        assert!(store.authenticate("trb_wrong").is_none());
        let stored = fs::read_to_string(&path).unwrap();
        assert!(
            !stored.contains(&created.key),
            "the secret key must not be stored"
        );
    }

    #[test]
    fn aws_keys_are_found_by_access_key_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let options = NewKey {
            aws: true,
            ..NewKey::default()
        };
        let created = create_key(&path, "acme", Role::Write, &options).unwrap();
        let id = created.record.aws_access_key_id.clone().unwrap();
        assert!(id.starts_with("AKIA") && id.len() == 20);
        let store = KeyStore::open(&path).unwrap();
        assert_eq!(store.by_access_key_id(&id).unwrap().tenant, "acme");
    }

    #[test]
    fn bad_tenants_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        for tenant in ["", "a b", "x/y"] {
            assert!(create_key(&path, tenant, Role::Write, &NewKey::default()).is_err());
        }
    }
}
