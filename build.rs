//! Compiles `proto/ipex/v1/*.proto` with protox (pure Rust, no system `protoc`) and writes the
//! descriptor set the gateway serves through reflection and the CLI uses for proto3 JSON.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/ipex/v1/common.proto",
        "proto/ipex/v1/payloads.proto",
        "proto/ipex/v1/envelope.proto",
        "proto/ipex/v1/exchange.proto",
        "proto/ipex/v1/participants.proto",
        "proto/ipex/v1/audit.proto",
        "proto/ipex/v1/federation.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("ipex_descriptor.bin"), fds.encode_to_vec())?;
    // Our codec: a request that does not decode is INVALID_ARGUMENT naming the field.
    tonic_prost_build::configure()
        .codec_path("crate::pb::codec::Codec")
        .emit_rerun_if_changed(false)
        // Written by hand, so that one message is encoded once for all its subscribers.
        .extern_path(".ipex.v1.Delivery", "crate::pb::delivery::Delivery")
        .compile_fds(fds)?;
    Ok(())
}
