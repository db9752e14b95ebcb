//! Compiles the gRPC service (`spec/proto`, Triton's `inference` package,
//! KServe's V2 protocol plus Triton's extensions) with protox, a protobuf
//! compiler in Rust, so no `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../spec/proto/grpc_service.proto",
        "../spec/proto/model_config.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let files = protox::compile(["grpc_service.proto"], ["../spec/proto"])?;
    // The descriptors themselves, for parsing Triton's config.pbtxt.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("inference.bin"),
        prost::Message::encode_to_vec(&files),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .compile_fds(files)?;
    Ok(())
}
