//! `sandscore invoke NAME --grpc --model M`: the V2 JSON request file sent
//! as a gRPC ModelInfer (raw contents) to the endpoint's recorded gRPC
//! address, and the answer printed as V2 JSON, as the HTTP path prints it.

use anyhow::{Context, bail};
use sandscore_runtime::codec::v2::{decode_request, encode_response};
use sandscore_runtime::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use sandscore_runtime::proto::{ModelInferRequest, model_infer_request};
use sandscore_runtime::tensor::{NamedTensor, Tensor, TensorType};

/// The answer to `body` (V2 JSON) from `model` at `addr` (`host:port`).
pub fn infer(addr: &str, model: &str, body: &[u8]) -> anyhow::Result<String> {
    let request = decode_request(body).context("the request is not V2 inference JSON")?;
    let message = ModelInferRequest {
        model_name: model.into(),
        id: request.id.clone().unwrap_or_default(),
        inputs: request
            .inputs
            .iter()
            .map(|i| model_infer_request::InferInputTensor {
                name: i.name.clone(),
                datatype: i.tensor.ty.v2_name().into(),
                shape: i.tensor.shape.iter().map(|&d| i64::from(d)).collect(),
                ..Default::default()
            })
            .collect(),
        outputs: request
            .outputs
            .iter()
            .flatten()
            .map(|o| model_infer_request::InferRequestedOutputTensor {
                name: o.name.clone(),
                ..Default::default()
            })
            .collect(),
        raw_input_contents: request.inputs.into_iter().map(|i| i.tensor.data).collect(),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answer = runtime.block_on(async {
        let mut client = GrpcInferenceServiceClient::connect(format!("http://{addr}"))
            .await
            .with_context(|| format!("cannot connect to gRPC at {addr}"))?;
        client
            .model_infer(message)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| anyhow::anyhow!("gRPC {:?}: {}", s.code(), s.message()))
    })?;
    if answer.outputs.len() != answer.raw_output_contents.len() {
        bail!("the answer has outputs without raw contents");
    }
    let outputs = answer
        .outputs
        .iter()
        .zip(answer.raw_output_contents)
        .map(|(o, data)| {
            let ty = TensorType::from_v2_name(&o.datatype)
                .with_context(|| format!("output '{}' has datatype {}", o.name, o.datatype))?;
            let shape = o
                .shape
                .iter()
                .map(|&d| u32::try_from(d))
                .collect::<Result<Vec<u32>, _>>()?;
            Ok(NamedTensor {
                name: o.name.clone(),
                tensor: Tensor::new(shape, ty, data)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let version = (!answer.model_version.is_empty()).then_some(answer.model_version.as_str());
    let id = (!answer.id.is_empty()).then_some(answer.id.as_str());
    let json = encode_response(
        &answer.model_name,
        version,
        id,
        &outputs,
        None,
        false,
        usize::MAX,
    )?;
    Ok(String::from_utf8_lossy(&json.body).into_owned())
}
