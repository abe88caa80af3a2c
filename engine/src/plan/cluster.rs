//! Steps planned across `ferry worker` processes. With `[run] cluster = [...]`, a pipeline's session
//! plans with DataFusion's distributed engine (datafusion-contrib's `datafusion-distributed`, on the
//! DataFusion and Arrow versions Ferry uses): it cuts a step's physical plan into stages at its
//! shuffles (GROUP BY, joins), runs each stage's tasks on the workers, streaming between them over
//! Arrow Flight. Keyed writes into PostgreSQL, MySQL or OData are written by the workers' tasks
//! (`run::cluster_write`, its `WriteExec` carried to them by `WriteCodec`); for other targets the
//! last stage streams back to the running `ferry run`, whose sink partitions write it as always.
//!
//! Built with `--features distributed`; without it, a pipeline that names a cluster is refused when
//! it is loaded, and `ferry worker` says how to get a build that has it.

use datafusion::execution::config::SessionConfig;
use datafusion::prelude::SessionContext;
use url::Url;

/// The session a pipeline plans in: this process alone, or with the workers of `cluster`.
pub fn session(config: SessionConfig, cluster: &[Url]) -> SessionContext {
    if cluster.is_empty() {
        return SessionContext::new_with_config(config);
    }
    distributed::session(config, cluster)
}

/// Serves as a worker on `listen` until Ctrl-C or SIGTERM.
pub async fn serve_worker(listen: std::net::SocketAddr) -> Result<(), String> {
    distributed::serve_worker(listen).await
}

#[cfg(feature = "distributed")]
mod distributed {
    use std::net::SocketAddr;

    use datafusion::common::DataFusionError;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::execution::config::SessionConfig;
    use datafusion::prelude::SessionContext;
    use std::sync::Arc;

    use datafusion::execution::TaskContext;
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion_distributed::{
        DistributedExt, SessionStateBuilderExt, Worker, WorkerQueryContext, WorkerResolver,
    };
    use datafusion_proto::physical_plan::{
        PhysicalExtensionCodec, PhysicalProtoConverterExtension,
    };

    use crate::run::cluster_write::{WriteExec, WriteJob};
    use url::Url;

    /// Carries a run's [`WriteExec`] to the workers: its job as JSON (the pipeline file as written:
    /// no secret, each worker fills its `${VAR}`s from its own environment).
    #[derive(Debug)]
    struct WriteCodec;

    impl PhysicalExtensionCodec for WriteCodec {
        fn try_decode(
            &self,
            buf: &[u8],
            inputs: &[Arc<dyn ExecutionPlan>],
            _ctx: &TaskContext,
            _proto_converter: &dyn PhysicalProtoConverterExtension,
        ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
            let job: WriteJob = serde_json::from_slice(buf)
                .map_err(|e| DataFusionError::Internal(format!("a run's write job: {e}")))?;
            let [input] = inputs else {
                return Err(DataFusionError::Internal("WriteExec has one input".into()));
            };
            Ok(Arc::new(WriteExec::new(input.clone(), job)?))
        }

        fn try_encode(
            &self,
            node: Arc<dyn ExecutionPlan>,
            buf: &mut Vec<u8>,
            _proto_converter: &dyn PhysicalProtoConverterExtension,
        ) -> Result<(), DataFusionError> {
            let Some(write) = node.downcast_ref::<WriteExec>() else {
                return Err(DataFusionError::NotImplemented(format!(
                    "{} cannot be sent to a worker",
                    node.name()
                )));
            };
            serde_json::to_writer(buf, write.job())
                .map_err(|e| DataFusionError::Internal(format!("a run's write job: {e}")))
        }
    }

    /// The cluster as the pipeline names it; asked again before each execution.
    struct Workers(Vec<Url>);

    impl WorkerResolver for Workers {
        fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
            Ok(self.0.clone())
        }
    }

    pub(super) fn session(config: SessionConfig, cluster: &[Url]) -> SessionContext {
        let builder = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        // The planner of the workers' writes first: the distributed planner wraps it.
        let builder = crate::run::cluster_write::with_write_planner(builder)
            .with_distributed_worker_resolver(Workers(cluster.to_vec()))
            .with_distributed_user_codec(WriteCodec)
            .with_distributed_planner();
        // The bytes of files one task scans (16 MiB by default): smaller spreads a scan over more
        // tasks, hence more workers.
        let builder = match std::env::var("FERRY_CLUSTER_SCAN_BYTES")
            .ok()
            .and_then(|b| b.parse::<usize>().ok())
        {
            Some(bytes) => builder
                .with_distributed_file_scan_config_bytes_per_partition(bytes.max(1))
                .expect("a byte count is a valid setting"),
            None => builder,
        };
        SessionContext::new_with_state(builder.build())
    }

    pub(super) async fn serve_worker(listen: SocketAddr) -> Result<(), String> {
        eprintln!("ferry worker: listening on http://{listen} (Ctrl-C stops it)");
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_object_store_registry(std::sync::Arc::new(
                ferry_connectors::files::stores::StoresOnDemand::default(),
            ))
            .build_arc()
            .map_err(|e| e.to_string())?;
        let sessions = |ctx: WorkerQueryContext| async move {
            Ok(ctx.builder.with_distributed_user_codec(WriteCodec).build())
        };
        tonic::transport::Server::builder()
            .add_service(
                Worker::from_session_builder(sessions)
                    .with_runtime_env(runtime)
                    .into_worker_server(),
            )
            .serve_with_shutdown(listen, crate::run::stop_requested())
            .await
            .map_err(|e| format!("cannot serve on {listen}: {e}"))
    }
}

#[cfg(not(feature = "distributed"))]
mod distributed {
    use datafusion::execution::config::SessionConfig;
    use datafusion::prelude::SessionContext;
    use url::Url;

    /// Unreachable: a pipeline with a cluster does not load in this build.
    pub(super) fn session(config: SessionConfig, _cluster: &[Url]) -> SessionContext {
        SessionContext::new_with_config(config)
    }

    pub(super) async fn serve_worker(_listen: std::net::SocketAddr) -> Result<(), String> {
        Err("this ferry was built without the distributed engine: build it with `cargo build --release -p ferry --features distributed`".into())
    }
}
