//! `sandscore images`: the prebuilt images this build knows, whether the
//! container engine holds them, and pushing them to the registry a
//! cluster pulls from.

use sandscore_sdk::{container, registry};

#[derive(clap::Subcommand)]
pub enum ImagesCommand {
    /// List the images, their tags and whether they are built here.
    List,
    /// Tag the built images as REGISTRY/sandscore/NAME:TAG and push them
    /// (then set `[kubernetes] registry = "REGISTRY"` or deploy with
    /// `--registry REGISTRY`).
    Push(PushArgs),
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// The registry: host[:port][/path], e.g. `localhost:5000` or
    /// `registry.example.com/team`.
    registry: String,
    /// Only these images (short names such as `onnxruntime-cpu`) [default:
    /// every one built here].
    images: Vec<String>,
}

pub fn run(command: ImagesCommand) -> anyhow::Result<()> {
    let engine = container::engine()?;
    match command {
        ImagesCommand::List => {
            for image in registry::select(&[])? {
                let state = if registry::built(&engine, &image) {
                    "built"
                } else {
                    "not built (make images)"
                };
                println!("{:<44} {:<4} {state}", image.reference(), image.device);
            }
        }
        ImagesCommand::Push(args) => {
            let wanted = registry::select(&args.images)?;
            let pushed = registry::push(&engine, &args.registry, &wanted, &mut |step| {
                eprintln!("{step}…")
            })?;
            let mut any = false;
            for p in &pushed {
                if p.pushed {
                    any = true;
                    println!("{}", p.reference);
                } else if !args.images.is_empty() {
                    anyhow::bail!(
                        "{} is not built here: build it with `make images` first",
                        p.reference
                    );
                }
            }
            if !any {
                anyhow::bail!("no image is built here: build them with `make images` first");
            }
            eprintln!(
                "pushed; deploy with --registry {} (or set [kubernetes] registry)",
                registry::normalize(&args.registry)?
            );
        }
    }
    Ok(())
}
