//! The gRPC face: `inference.GRPCInferenceService` (KServe's V2 protocol and
//! Triton's extensions, `spec/proto`), served by tonic beside HTTP over the
//! same [`Service`]: the same admission, deadlines, statistics and module. A
//! module's `infer` answers gRPC as it answers V2 REST.
//!
//! Outputs always come as `raw_output_contents` (tritonclient.grpc reads
//! nothing else); inputs may be raw or typed contents. Errors carry the
//! gRPC codes that match the HTTP statuses of the same failure.

mod tensors;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::service::{ErrorKind, InferRequest, ModelInfo, Ready, Service, ServiceError};

use crate::proto;
use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::*;

/// The gRPC service over the scoring service.
pub struct Grpc {
    ready: Ready,
}

/// The tonic service for `ready`, with messages bounded by `max_body`
/// (requests) and `max_response` (answers).
pub fn server(
    ready: Ready,
    max_body: usize,
    max_response: usize,
) -> GrpcInferenceServiceServer<Grpc> {
    GrpcInferenceServiceServer::new(Grpc { ready })
        .max_decoding_message_size(max_body)
        .max_encoding_message_size(max_response.saturating_add(1 << 20))
}

/// The gRPC status of a failed request.
fn status(e: ServiceError) -> Status {
    let code = match e.kind {
        ErrorKind::BadRequest | ErrorKind::UnsupportedMediaType => tonic::Code::InvalidArgument,
        ErrorKind::NotFound => tonic::Code::NotFound,
        ErrorKind::NotImplemented => tonic::Code::Unimplemented,
        ErrorKind::Timeout => tonic::Code::DeadlineExceeded,
        ErrorKind::Overloaded => tonic::Code::Unavailable,
        ErrorKind::Internal => tonic::Code::Internal,
    };
    Status::new(
        code,
        crate::escape::capped(&e.message, 8 << 10).into_owned(),
    )
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

impl Grpc {
    fn service(&self) -> Result<&Arc<Service>, Status> {
        self.ready
            .get()
            .ok_or_else(|| Status::unavailable("not ready: models and module are still loading"))
    }

    fn model(&self, name: &str, v: &str) -> Result<ModelInfo, Status> {
        self.service()?.model(name, version(v)).map_err(status)
    }
}

fn metadata(specs: &[crate::service::TensorSpec]) -> Vec<model_metadata_response::TensorMetadata> {
    specs
        .iter()
        .map(|t| model_metadata_response::TensorMetadata {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape: t.shape.clone(),
        })
        .collect()
}

fn duration((count, ns): (u64, u64)) -> Option<StatisticDuration> {
    Some(StatisticDuration { count, ns })
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.ready.get().is_some(),
        }))
    }

    async fn model_ready(
        &self,
        r: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = r.into_inner();
        let ready = self
            .service()
            .is_ok_and(|s| s.check_model(&r.name, version(&r.version)).is_ok());
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "sandscore".into(),
            version: crate::VERSION.into(),
            extensions: crate::service::EXTENSIONS.map(String::from).to_vec(),
        }))
    }

    async fn model_metadata(
        &self,
        r: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = r.into_inner();
        let m = self.model(&r.name, &r.version)?;
        Ok(Response::new(ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: metadata(&m.inputs),
            outputs: metadata(&m.outputs),
        }))
    }

    async fn model_infer(
        &self,
        r: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let service = self.service()?;
        let mut r = r.into_inner();
        // An unknown model is NOT_FOUND before any tensor is decoded.
        service
            .check_model(&r.model_name, version(&r.model_version))
            .map_err(status)?;
        let inputs = tensors::inputs(&mut r)?;
        let request_id = if crate::escape::is_safe_id(&r.id) {
            r.id.clone()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let answer = service
            .infer(
                InferRequest {
                    model: r.model_name.clone(),
                    version: version(&r.model_version).map(str::to_string),
                    inputs,
                },
                request_id,
            )
            .await
            .map_err(status)?;
        let requested: Vec<&str> = r.outputs.iter().map(|o| o.name.as_str()).collect();
        let (outputs, raw) =
            tensors::outputs(answer.outputs, &requested, service.max_response_bytes())?;
        Ok(Response::new(ModelInferResponse {
            model_name: r.model_name,
            model_version: answer.model_version.unwrap_or_default(),
            id: r.id,
            parameters: Default::default(),
            outputs,
            raw_output_contents: raw,
        }))
    }

    type ModelStreamInferStream = tonic::codegen::BoxStream<ModelStreamInferResponse>;

    async fn model_stream_infer(
        &self,
        _: Request<tonic::Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        Err(Status::unimplemented(
            "streaming inference (decoupled models) is not supported; use ModelInfer",
        ))
    }

    async fn model_config(
        &self,
        r: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let r = r.into_inner();
        let config = self
            .service()?
            .model_config(&r.name, version(&r.version))
            .map_err(status)?;
        Ok(Response::new(ModelConfigResponse {
            config: Some(config),
        }))
    }

    async fn model_statistics(
        &self,
        r: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let service = self.service()?;
        let r = r.into_inner();
        let names = if r.name.is_empty() {
            service.model_names()
        } else {
            vec![r.name.clone()]
        };
        let model_stats = names
            .iter()
            .map(|n| {
                let s = service.stats(n, version(&r.version)).map_err(status)?;
                Ok(ModelStatistics {
                    name: s.name,
                    version: s.version,
                    last_inference: s.last_inference_ms,
                    inference_count: s.success.0,
                    execution_count: s.executions,
                    inference_stats: Some(InferStatistics {
                        success: duration(s.success),
                        fail: duration(s.fail),
                        queue: duration(s.queue),
                        compute_input: duration((s.success.0, 0)),
                        compute_infer: duration(s.compute),
                        compute_output: duration((s.success.0, 0)),
                        cache_hit: duration((0, 0)),
                        cache_miss: duration((0, 0)),
                    }),
                    batch_stats: s
                        .batches
                        .iter()
                        .map(|&(size, count, ns)| InferBatchStatistics {
                            batch_size: size,
                            compute_input: duration((count, 0)),
                            compute_infer: duration((count, ns)),
                            compute_output: duration((count, 0)),
                        })
                        .collect(),
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(ModelStatisticsResponse { model_stats }))
    }

    async fn repository_index(
        &self,
        _: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let models = self
            .service()?
            .index()
            .into_iter()
            .map(|m| repository_index_response::ModelIndex {
                name: m.name,
                version: m.version,
                state: m.state.into(),
                reason: m.reason,
            })
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        r: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        let name = r.into_inner().model_name;
        self.service()?.load_model(&name).await.map_err(status)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        r: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        let name = r.into_inner().model_name;
        self.service()?.unload_model(&name).map_err(status)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }

    async fn system_shared_memory_status(
        &self,
        _: Request<SystemSharedMemoryStatusRequest>,
    ) -> Result<Response<SystemSharedMemoryStatusResponse>, Status> {
        Err(no_shared_memory())
    }

    async fn system_shared_memory_register(
        &self,
        _: Request<SystemSharedMemoryRegisterRequest>,
    ) -> Result<Response<SystemSharedMemoryRegisterResponse>, Status> {
        Err(no_shared_memory())
    }

    async fn system_shared_memory_unregister(
        &self,
        _: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> Result<Response<SystemSharedMemoryUnregisterResponse>, Status> {
        Err(no_shared_memory())
    }

    async fn cuda_shared_memory_status(
        &self,
        _: Request<CudaSharedMemoryStatusRequest>,
    ) -> Result<Response<CudaSharedMemoryStatusResponse>, Status> {
        Err(no_shared_memory())
    }

    async fn cuda_shared_memory_register(
        &self,
        _: Request<CudaSharedMemoryRegisterRequest>,
    ) -> Result<Response<CudaSharedMemoryRegisterResponse>, Status> {
        Err(no_shared_memory())
    }

    async fn cuda_shared_memory_unregister(
        &self,
        _: Request<CudaSharedMemoryUnregisterRequest>,
    ) -> Result<Response<CudaSharedMemoryUnregisterResponse>, Status> {
        Err(no_shared_memory())
    }

    async fn trace_setting(
        &self,
        _: Request<TraceSettingRequest>,
    ) -> Result<Response<TraceSettingResponse>, Status> {
        Err(Status::unimplemented("tracing settings are not supported"))
    }

    async fn log_settings(
        &self,
        _: Request<LogSettingsRequest>,
    ) -> Result<Response<LogSettingsResponse>, Status> {
        Err(Status::unimplemented(
            "log settings are set at start (RUST_LOG)",
        ))
    }
}

fn no_shared_memory() -> Status {
    Status::unimplemented(
        "shared memory is not offered: a sandboxed server shares no memory with its clients",
    )
}
