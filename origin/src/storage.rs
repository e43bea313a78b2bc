//! Storage backends: where the origin reads content from.
//!
//! [`ContentStore`] is the narrow interface the HTTP layer needs (metadata, a byte range that
//! is guaranteed to belong to the version the metadata described, and a liveness probe).
//! Both backends sit on `object_store`: its local filesystem store for a directory, and its
//! S3 client for any S3-compatible server. The local backend adds one guard `object_store`
//! does not have: a symbolic link that resolves outside the root is never followed.

use crate::request_path::ContentPath;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use strata_contracts::config::origin::{Backend, StorageConfig};

/// A stream of body bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// What a backend knows about one object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub last_modified: SystemTime,
    /// The backend's own version tag, passed back on reads to pin the version.
    pub version_tag: String,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object at this path.
    #[error("not found")]
    NotFound,
    /// The path resolves outside the content root (a symbolic link).
    #[error("path resolves outside the content root")]
    OutsideRoot,
    /// The object changed between reading its metadata and reading its bytes.
    #[error("object changed while being read")]
    Changed,
    /// The backend could not be reached or failed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend could not be set up from config.
    #[error("storage config: {0}")]
    Config(String),
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound,
            object_store::Error::Precondition { .. } => StoreError::Changed,
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// What the origin needs from a storage backend.
#[async_trait::async_trait]
pub trait ContentStore: Send + Sync + 'static {
    /// Metadata of the object at `path`.
    async fn head(&self, path: &ContentPath) -> Result<ObjectInfo, StoreError>;
    /// The bytes in `range` of the version of the object that `info` described.
    async fn read(
        &self,
        path: &ContentPath,
        info: &ObjectInfo,
        range: Range<u64>,
    ) -> Result<ByteStream, StoreError>;
    /// Checks that the backend answers.
    async fn probe(&self) -> Result<(), StoreError>;
    /// A one-line description for logs.
    fn describe(&self) -> String;
}

/// A [`ContentStore`] over any `object_store` backend.
struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    /// Key prefix of the content tree inside the store.
    prefix: Option<StorePath>,
    /// For the local backend: the canonical root, to refuse links that leave it.
    local_root: Option<PathBuf>,
    description: String,
}

/// Opens the backend described by `config`.
pub fn open(config: &StorageConfig) -> Result<Arc<dyn ContentStore>, StoreError> {
    let backend = match config.backend {
        Backend::Local => {
            let root = std::fs::canonicalize(&config.root)
                .map_err(|e| StoreError::Config(format!("storage.root `{}`: {e}", config.root.display())))?;
            let store =
                LocalFileSystem::new_with_prefix(&root).map_err(|e| StoreError::Config(e.to_string()))?;
            ObjectStoreBackend {
                store: Arc::new(store),
                prefix: None,
                description: format!("local directory {}", root.display()),
                local_root: Some(root),
            }
        }
        Backend::S3 => {
            let s3 = &config.s3;
            // Environment first (AWS_*), then anything the config spells out.
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&s3.bucket)
                .with_region(&s3.region)
                .with_allow_http(s3.allow_http);
            if !s3.endpoint.is_empty() {
                builder = builder.with_endpoint(&s3.endpoint);
            }
            if !s3.access_key_id.is_empty() {
                builder = builder
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(&s3.secret_access_key);
            }
            let store = builder.build().map_err(|e| StoreError::Config(e.to_string()))?;
            let prefix = s3.prefix.trim_matches('/');
            let endpoint = if s3.endpoint.is_empty() {
                "AWS"
            } else {
                &s3.endpoint
            };
            ObjectStoreBackend {
                store: Arc::new(store),
                prefix: (!prefix.is_empty()).then(|| StorePath::from(prefix)),
                local_root: None,
                description: format!("s3 bucket {} at {endpoint}", s3.bucket),
            }
        }
    };
    Ok(Arc::new(backend))
}

impl ObjectStoreBackend {
    fn key(&self, path: &ContentPath) -> Result<StorePath, StoreError> {
        let relative = StorePath::parse(path.as_str()).map_err(|_| StoreError::NotFound)?;
        Ok(match &self.prefix {
            Some(prefix) => prefix.parts().chain(relative.parts()).collect(),
            None => relative,
        })
    }

    /// Refuses paths whose real location (after following links) is outside the root.
    async fn check_inside_root(&self, path: &ContentPath) -> Result<(), StoreError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        match tokio::fs::canonicalize(root.join(path.as_str())).await {
            Ok(real) if real.starts_with(root) => Ok(()),
            Ok(_) => Err(StoreError::OutsideRoot),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(StoreError::NotFound),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }
}

#[async_trait::async_trait]
impl ContentStore for ObjectStoreBackend {
    async fn head(&self, path: &ContentPath) -> Result<ObjectInfo, StoreError> {
        self.check_inside_root(path).await?;
        let key = self.key(path)?;
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let meta = self.store.get_opts(&key, options).await?.meta;
        Ok(ObjectInfo {
            size: meta.size,
            last_modified: meta.last_modified.into(),
            version_tag: meta.e_tag.unwrap_or_default(),
        })
    }

    async fn read(
        &self,
        path: &ContentPath,
        info: &ObjectInfo,
        range: Range<u64>,
    ) -> Result<ByteStream, StoreError> {
        let key = self.key(path)?;
        if range.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let options = GetOptions {
            if_match: (!info.version_tag.is_empty()).then(|| info.version_tag.clone()),
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(&key, options).await?;
        Ok(result
            .into_stream()
            .map(|r| r.map_err(std::io::Error::other))
            .boxed())
    }

    async fn probe(&self) -> Result<(), StoreError> {
        if let Some(root) = &self.local_root {
            return match tokio::fs::read_dir(root).await {
                Ok(_) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(format!("{}: {e}", root.display()))),
            };
        }
        // A lookup of a key that cannot exist: "not found" proves the bucket answers.
        let key = StorePath::from("strata-health-probe/does-not-exist");
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.store.get_opts(&key, options).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use futures::TryStreamExt;

    fn local(root: &std::path::Path) -> Arc<dyn ContentStore> {
        let config = StorageConfig {
            root: root.to_path_buf(),
            ..StorageConfig::default()
        };
        open(&config).unwrap()
    }

    fn p(s: &str) -> ContentPath {
        ContentPath::from_request_path(s).unwrap()
    }

    #[tokio::test]
    async fn reads_a_range_of_the_described_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.m4s"), b"0123456789").unwrap();
        let store = local(dir.path());
        let info = store.head(&p("/a.m4s")).await.unwrap();
        assert_eq!(info.size, 10);
        let body: Vec<Bytes> = store
            .read(&p("/a.m4s"), &info, 2..5)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(body.concat(), b"234");
    }

    #[tokio::test]
    async fn a_replaced_object_is_not_read_under_the_old_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.m4s");
        std::fs::write(&file, b"old old old").unwrap();
        let store = local(dir.path());
        let info = store.head(&p("/a.m4s")).await.unwrap();
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, b"new content, longer").unwrap();
        let err = store.read(&p("/a.m4s"), &info, 0..5).await.err().unwrap();
        assert!(matches!(err, StoreError::Changed), "{err}");
    }

    #[tokio::test]
    async fn links_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak.json")).unwrap();
        std::fs::write(dir.path().join("real.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real.json"), dir.path().join("alias.json")).unwrap();
        let store = local(dir.path());
        assert!(matches!(
            store.head(&p("/leak.json")).await,
            Err(StoreError::OutsideRoot)
        ));
        assert_eq!(store.head(&p("/alias.json")).await.unwrap().size, 2);
        assert!(matches!(
            store.head(&p("/missing.json")).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.head(&p("/real.json/x")).await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn probe_reports_a_vanished_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("content");
        std::fs::create_dir(&root).unwrap();
        let store = local(&root);
        store.probe().await.unwrap();
        std::fs::remove_dir(&root).unwrap();
        assert!(store.probe().await.is_err());
    }
}
