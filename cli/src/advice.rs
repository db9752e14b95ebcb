//! What to do about a startup failure, where the command knows more than
//! the library: which image reads a model this build cannot.

use sandscore_runtime::models::RegistryError;
use sandscore_runtime::service::StartError;

/// `e`, with advice added where there is some.
pub fn explained(e: StartError) -> anyhow::Error {
    match &e {
        StartError::Models(RegistryError::NoBackend { backend, .. }) => {
            let advice = images_for(backend);
            anyhow::anyhow!("{e}; {advice}")
        }
        _ => anyhow::Error::new(e),
    }
}

/// The images that read models of `backend`.
fn images_for(backend: &str) -> String {
    let images: Vec<String> = sandscore_sdk::images::all()
        .into_iter()
        .filter(|i| i.backends.iter().any(|b| b == backend))
        .map(|i| i.reference())
        .collect();
    match images.as_slice() {
        [] => {
            "no sandscore image reads it yet; convert it to ONNX (see the README's images)".into()
        }
        list => format!("run it in {}", list.join(" or ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_without_a_backend_is_pointed_at_the_image_that_reads_it() {
        let e = StartError::Models(RegistryError::NoBackend {
            name: "net".into(),
            path: "net.pt".into(),
            framework: "PyTorch",
            backend: "pytorch",
        });
        let text = explained(e).to_string();
        assert!(text.contains("run it in sandscore/pytorch-cpu"), "{text}");
        let e = StartError::Models(RegistryError::NoBackend {
            name: "m".into(),
            path: "m.x".into(),
            framework: "Other",
            backend: "nothing-reads-it",
        });
        assert!(explained(e).to_string().contains("convert it to ONNX"));
    }
}
