//! Where a deployment goes. Each kind of place is one [`Target`]: it
//! validates a deployment, deploys it, and for an endpoint deployed there
//! reads its logs, says its state and removes it. What a deployed endpoint
//! is placed on is a [`Placement`] in its record; [`of`] gives the target
//! that handles it.

use std::path::PathBuf;

use crate::check::CheckReport;
use crate::store::{Placement, Record};
use crate::{Deployment, SdkError, container, kubernetes, local};

/// A deployment made, with anything the user should hear about it.
pub struct Deployed {
    /// Its record (saved).
    pub record: Record,
    /// Why cluster manifests were written but not applied, if they were not.
    pub note: Option<String>,
}

/// One kind of place a deployment can run.
pub trait Target {
    /// Checks the deployment where it will run: the module links and
    /// initialises, every model loads, the sample scores.
    fn validate(&self, d: &Deployment) -> Result<CheckReport, SdkError>;
    /// Validates, deploys and records it; on failure nothing is left
    /// running.
    fn deploy(&self, d: &Deployment, progress: &mut dyn FnMut(&str)) -> Result<Deployed, SdkError>;
    /// The server's output so far.
    fn logs(&self, r: &Record) -> Result<String, SdkError>;
    /// `running` or `stopped`; `applied` or `written` for manifests.
    fn state(&self, r: &Record) -> &'static str;
    /// Stops and removes what was deployed (not the record).
    fn remove(&self, r: &Record) -> Result<(), SdkError>;
}

/// A server process on this machine, started from `runtime`.
pub struct Local {
    /// The sandscore binary.
    pub runtime: PathBuf,
}

/// A container of the deployment's prebuilt image, on docker or podman.
pub struct Container;

/// Kubernetes manifests, plain or KServe, written to `dir` and applied
/// when `apply` and a cluster answers.
pub struct Cluster {
    /// Validates the models locally.
    pub runtime: PathBuf,
    /// `kubernetes` or `kserve`.
    pub flavour: &'static str,
    /// Where the manifests go.
    pub dir: PathBuf,
    /// Whether to `kubectl apply` them.
    pub apply: bool,
}

/// The target that handles an endpoint placed at `p`.
pub fn of(p: &Placement) -> Box<dyn Target> {
    match p {
        Placement::Local { .. } => Box::new(Local {
            runtime: PathBuf::from("sandscore"),
        }),
        Placement::Container { .. } => Box::new(Container),
        Placement::Kubernetes { manifests, .. } | Placement::Kserve { manifests, .. } => {
            Box::new(Cluster {
                runtime: PathBuf::from("sandscore"),
                flavour: p.target(),
                dir: manifests.clone(),
                apply: false,
            })
        }
    }
}

impl Target for Local {
    fn validate(&self, d: &Deployment) -> Result<CheckReport, SdkError> {
        local::validate(d, &self.runtime)
    }

    fn deploy(&self, d: &Deployment, progress: &mut dyn FnMut(&str)) -> Result<Deployed, SdkError> {
        let record = local::deploy(d, &self.runtime, progress)?;
        Ok(Deployed { record, note: None })
    }

    fn logs(&self, r: &Record) -> Result<String, SdkError> {
        match &r.placement {
            Placement::Local { log, .. } => std::fs::read_to_string(log)
                .map_err(|e| SdkError::Store(format!("{}: {e}", log.display()))),
            other => Err(misplaced("local", other)),
        }
    }

    fn state(&self, r: &Record) -> &'static str {
        match r.placement {
            Placement::Local { pid, .. } if local::alive(pid) => "running",
            _ => "stopped",
        }
    }

    fn remove(&self, r: &Record) -> Result<(), SdkError> {
        if let Placement::Local { pid, .. } = r.placement {
            local::stop(pid);
        }
        Ok(())
    }
}

impl Target for Container {
    fn validate(&self, d: &Deployment) -> Result<CheckReport, SdkError> {
        container::validate(d, &container::engine()?)
    }

    fn deploy(&self, d: &Deployment, progress: &mut dyn FnMut(&str)) -> Result<Deployed, SdkError> {
        let record = container::deploy(d, progress)?;
        Ok(Deployed { record, note: None })
    }

    fn logs(&self, r: &Record) -> Result<String, SdkError> {
        match &r.placement {
            Placement::Container { engine, container } => container::logs(engine, container),
            other => Err(misplaced("container", other)),
        }
    }

    fn state(&self, r: &Record) -> &'static str {
        match &r.placement {
            Placement::Container { engine, container } if container::running(engine, container) => {
                "running"
            }
            _ => "stopped",
        }
    }

    fn remove(&self, r: &Record) -> Result<(), SdkError> {
        match &r.placement {
            Placement::Container { engine, container } => container::remove(engine, container),
            _ => Ok(()),
        }
    }
}

impl Target for Cluster {
    fn validate(&self, d: &Deployment) -> Result<CheckReport, SdkError> {
        local::validate(d, &self.runtime)
    }

    fn deploy(&self, d: &Deployment, progress: &mut dyn FnMut(&str)) -> Result<Deployed, SdkError> {
        let (record, note) = kubernetes::deploy(
            d,
            &self.runtime,
            self.flavour,
            &self.dir,
            self.apply,
            progress,
        )?;
        Ok(Deployed { record, note })
    }

    fn logs(&self, r: &Record) -> Result<String, SdkError> {
        Err(SdkError::Engine(format!(
            "logs of a cluster deployment come from the cluster: kubectl logs -l app.kubernetes.io/instance={}",
            r.name
        )))
    }

    fn state(&self, r: &Record) -> &'static str {
        match r.placement {
            Placement::Kubernetes { applied: true, .. }
            | Placement::Kserve { applied: true, .. } => "applied",
            _ => "written",
        }
    }

    fn remove(&self, r: &Record) -> Result<(), SdkError> {
        kubernetes::remove(r)
    }
}

fn misplaced(target: &str, p: &Placement) -> SdkError {
    SdkError::Store(format!(
        "a {} record handed to the {target} target",
        p.target()
    ))
}
