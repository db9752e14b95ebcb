//! Where a SavedModel's session runs: the session's `ConfigProto` (threads,
//! which GPU TensorFlow may use and that it grows into its memory rather
//! than taking it all, whether a CPU model may see a GPU at all) and the
//! check, after loading, that a session meant for the GPU got one.
//! TensorFlow with CUDA quietly runs on the CPU when it finds no driver;
//! a model placed on the GPU must not, unless `--gpu-fallback cpu` says so.

use std::ffi::{CStr, c_int};

use super::api::{Api, Session, StatusBox};

/// A serialized `tensorflow.ConfigProto` for a session on the CPU (no GPU
/// device at all, `device_count {"GPU": 0}`) or, `on_gpu`, on CUDA device
/// `device` (`gpu_options { visible_device_list, allow_growth }`, and soft
/// placement, so an op without a GPU kernel runs on the CPU). Every
/// session names the same visible device: TensorFlow refuses a second
/// session in a process that names another.
pub fn config(threads: usize, on_gpu: bool, device: i32) -> Vec<u8> {
    use prost::encoding::{bool, int32, string};
    let mut out = Vec::new();
    if !on_gpu {
        // map<string, int32> device_count = 1: one entry, GPU → 0.
        let mut entry = Vec::new();
        string::encode(1, &"GPU".to_string(), &mut entry);
        int32::encode(2, &0, &mut entry);
        nested(1, &entry, &mut out);
    }
    if threads > 0 {
        let t = threads as i32;
        int32::encode(2, &t, &mut out); // intra_op_parallelism_threads
        int32::encode(5, &t, &mut out); // inter_op_parallelism_threads
    }
    // GPUOptions gpu_options = 6: allow_growth = 4, visible_device_list = 5.
    let mut gpu_options = Vec::new();
    bool::encode(4, &true, &mut gpu_options);
    string::encode(5, &device.to_string(), &mut gpu_options);
    nested(6, &gpu_options, &mut out);
    if on_gpu {
        bool::encode(7, &true, &mut out); // allow_soft_placement
    }
    out
}

/// A message field `tag` whose body is `bytes`.
fn nested(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// How many of `session`'s devices are GPUs.
///
/// # Safety
/// `session` must be live.
pub unsafe fn gpus(api: &Api, session: *mut Session) -> Result<usize, String> {
    let status = StatusBox::new(api);
    // SAFETY: the caller keeps the session live; the list is freed here.
    unsafe {
        let list = (api.session_list_devices)(session, status.ptr);
        status.check()?;
        let mut n = 0;
        for i in 0..(api.device_list_count)(list) {
            let ty = (api.device_list_type)(list, i as c_int, status.ptr);
            if status.check().is_ok() && !ty.is_null() && CStr::from_ptr(ty).to_bytes() == b"GPU" {
                n += 1;
            }
        }
        (api.delete_device_list)(list);
        Ok(n)
    }
}

/// Why a session meant for CUDA device `id` has no GPU.
pub fn no_gpu(id: i32) -> String {
    format!(
        "the model asks for the GPU (CUDA device {id}), and TensorFlow sees none: the sandscore/tensorflow-gpu image's CUDA build needs an NVIDIA GPU and the host driver's libcuda.so.1 (the NVIDIA container toolkit mounts it), and the tensorflow-cpu build has no CUDA; or run it on the CPU with --gpu-fallback cpu"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_protos_say_what_they_mean() {
        // CPU: device_count {"GPU": 0}, then gpu_options.
        let cpu = config(0, false, 0);
        assert_eq!(&cpu[..2], &[0x0a, 7]);
        assert_eq!(&cpu[2..9], &[0x0a, 3, b'G', b'P', b'U', 0x10, 0]);
        assert_eq!(&cpu[9..], &[0x32, 5, 0x20, 1, 0x2a, 1, b'0']);
        // GPU 1 with 2 threads: threads, gpu_options, soft placement.
        let gpu = config(2, true, 1);
        assert_eq!(
            gpu,
            vec![0x10, 2, 0x28, 2, 0x32, 5, 0x20, 1, 0x2a, 1, b'1', 0x38, 1]
        );
    }
}
