//! `/swagger.json`: the static document of every route
//! (spec/openapi.yaml), with a concrete `/v2/models/NAME/infer` path per
//! loaded model whose request and response schemas name the model's own
//! tensors, datatypes and ranks (OpenAPI matches concrete paths before
//! templated ones, so a client generator gets the model's shapes).

use serde_json::{Value, json};

use crate::service::{Service, TensorSpec};

/// Component names allow only these; a model named otherwise keeps the
/// generic path alone.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// One tensor of the list: its name, datatype and rank fixed, a dynamic
/// dimension any size.
fn tensor(t: &TensorSpec, with_data: bool) -> Value {
    let dims: Vec<Value> = t
        .shape
        .iter()
        .map(|d| {
            if *d >= 0 {
                json!({ "type": "integer", "enum": [d] })
            } else {
                json!({ "type": "integer", "minimum": 0 })
            }
        })
        .collect();
    let mut required = vec!["name", "datatype", "shape"];
    if with_data {
        required.push("data");
    }
    json!({
        "type": "object",
        "required": required,
        "properties": {
            "name": { "type": "string", "enum": [t.name] },
            "datatype": { "type": "string", "enum": [t.datatype] },
            "shape": {
                "type": "array",
                "items": { "type": "integer" },
                "minItems": t.shape.len(),
                "maxItems": t.shape.len(),
                "description": format!("{:?} (-1: any size)", t.shape),
                "x-dims": dims,
            },
            "data": { "type": "array", "items": {} },
            "parameters": { "type": "object" },
        },
    })
}

fn tensors(list: &[TensorSpec], with_data: bool) -> Value {
    json!({
        "type": "array",
        "items": { "oneOf": list.iter().map(|t| tensor(t, with_data)).collect::<Vec<_>>() },
        "minItems": if with_data { list.len() } else { 0 },
        "maxItems": list.len(),
    })
}

/// `base` with the loaded models' own paths and schemas added.
pub fn document(base: &Value, service: Option<&Service>) -> Value {
    let mut doc = base.clone();
    let Some(service) = service else {
        return doc;
    };
    for name in service.model_names() {
        let Ok(info) = service.model(&name, None) else {
            continue;
        };
        if !plain(&name) || info.inputs.is_empty() {
            continue;
        }
        let request = format!("{name}.InferRequest");
        let response = format!("{name}.InferResponse");
        doc["components"]["schemas"][&request] = json!({
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": { "type": "string" },
                "inputs": tensors(&info.inputs, true),
                "outputs": { "type": "array", "items": { "type": "object" } },
                "parameters": { "type": "object" },
            },
        });
        doc["components"]["schemas"][&response] = json!({
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": { "type": "string" },
                "model_version": { "type": "string" },
                "id": { "type": "string" },
                "outputs": tensors(&info.outputs, true),
                "parameters": { "type": "object" },
            },
        });
        doc["paths"][format!("/v2/models/{name}/infer")] = json!({
            "post": {
                "summary": format!("Inference on {name} ({} on {})", info.platform, info.device),
                "operationId": format!("infer_{}", name.replace(['.', '-'], "_")),
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": { "schema": { "$ref": format!("#/components/schemas/{request}") } },
                    },
                },
                "responses": {
                    "200": {
                        "description": "Output tensors.",
                        "content": {
                            "application/json": { "schema": { "$ref": format!("#/components/schemas/{response}") } },
                        },
                    },
                    "400": { "$ref": "#/components/responses/V2Error" },
                },
            },
        });
    }
    doc
}
