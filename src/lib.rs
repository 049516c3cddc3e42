#![forbid(unsafe_code)]
pub mod json;
pub mod model;
pub mod pb {
    tonic::include_proto!("ipex.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ipex_descriptor");
}
