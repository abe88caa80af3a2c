//! Object stores for s3://, az:// (abfs://) and gs:// locations, configured the way each cloud's own
//! tools are: from the environment (AWS_*, AZURE_STORAGE_*, GOOGLE_*), never from the pipeline file.
//! The same stores serve file sources, Delta sources and targets, and the bookkeeping tables: Delta
//! commits on them are conditional puts (create-if-absent), so concurrent writers need no lock table.

use std::sync::{Arc, Once};

use datafusion::prelude::SessionContext;
use deltalake::DeltaResult;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use url::Url;

use crate::error::{ConnectorError, Result};

/// Registers the store behind `location` with the session, when it is an object-store URL.
pub fn register_for(ctx: &SessionContext, location: &str) -> Result<()> {
    if !super::is_url(location) {
        return Ok(());
    }
    let url = Url::parse(location)
        .map_err(|e| ConnectorError::fatal(format!("\"{location}\" is not a valid URL: {e}")))?;
    let store = store_for(&url)?;
    let root = Url::parse(&format!("{}://{}", url.scheme(), url.authority()))
        .map_err(|e| ConnectorError::fatal(e.to_string()))?;
    ctx.register_object_store(&root, store);
    Ok(())
}

/// The store behind an object-store `location` and the path of `location` inside it.
pub fn store_at(location: &str) -> Result<(Arc<dyn ObjectStore>, object_store::path::Path)> {
    let url = Url::parse(location)
        .map_err(|e| ConnectorError::fatal(format!("\"{location}\" is not a valid URL: {e}")))?;
    let path = object_store::path::Path::from_url_path(url.path())
        .map_err(|e| ConnectorError::fatal(format!("\"{location}\" is not a valid path: {e}")))?;
    Ok((store_for(&url)?, path))
}

/// The URL of the Delta table at `location` (a folder or an object-store URL), with the object
/// stores Ferry configures registered for Delta (once per process).
pub fn delta_url(location: &str) -> DeltaResult<Url> {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        for scheme in SCHEMES {
            let scheme = Url::parse(&format!("{scheme}://")).expect("a scheme");
            object_store_factories().insert(scheme.clone(), Arc::new(FerryStores));
            logstore_factories().insert(scheme, Arc::new(FerryStores));
        }
    });
    deltalake::ensure_table_uri(location)
}

/// The object stores of a process that has no pipeline to say which it needs (a `ferry worker`):
/// local files as DataFusion serves them, and any s3://, az://, gs:// store made from the
/// environment the first time a plan reads from it.
#[derive(Debug, Default)]
pub struct StoresOnDemand(datafusion::execution::object_store::DefaultObjectStoreRegistry);

impl datafusion::execution::object_store::ObjectStoreRegistry for StoresOnDemand {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.0.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.0.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.0.get_store(url).or_else(|missing| {
            if !SCHEMES.contains(&url.scheme()) {
                return Err(missing);
            }
            let store = store_for(url)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            self.0.register_store(url, store.clone());
            Ok(store)
        })
    }
}

const SCHEMES: [&str; 8] = ["s3", "s3a", "az", "azure", "abfs", "abfss", "gs", "gcs"];

/// Delta's hooks to Ferry's stores: the store from the environment, the default log store (its
/// commits are puts that succeed only if the version's file does not exist yet).
struct FerryStores;

impl ObjectStoreFactory for FerryStores {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, object_store::path::Path)> {
        let store =
            store_for(url).map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
        Ok((store, object_store::path::Path::from_url_path(url.path())?))
    }
}

impl LogStoreFactory for FerryStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn store_for(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let bucket = url.host_str().unwrap_or_default();
    let built: object_store::Result<Arc<dyn ObjectStore>> = match url.scheme() {
        // S3 has conditional writes (If-None-Match, If-Match) since 2024: Delta's commits and the
        // run's lease rely on them. A store without them refuses the first commit, never corrupts.
        "s3" | "s3a" => AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .build()
            .map(|s| Arc::new(s) as _),
        "az" | "azure" | "abfs" | "abfss" => MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map(|s| Arc::new(s) as _),
        "gs" | "gcs" => GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map(|s| Arc::new(s) as _),
        other => {
            return Err(ConnectorError::fatal(format!(
                "Ferry cannot read or write \"{other}://\" locations"
            ))
            .with_hint("use a local path, s3://, az:// or gs://"));
        }
    };
    built.map_err(|e| {
        ConnectorError::fatal(format!("cannot reach {url}: {e}")).with_hint(
            "set the cloud's usual environment variables (AWS_*, AZURE_STORAGE_*, GOOGLE_*)",
        )
    })
}
