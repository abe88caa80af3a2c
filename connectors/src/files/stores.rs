//! Object stores for s3://, az:// (abfs://) and gs:// locations, configured the way each cloud's own
//! tools are: from the environment (AWS_*, AZURE_STORAGE_*, GOOGLE_*), never from the pipeline file.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
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

fn store_for(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let bucket = url.host_str().unwrap_or_default();
    let built: object_store::Result<Arc<dyn ObjectStore>> = match url.scheme() {
        "s3" | "s3a" => AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
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
