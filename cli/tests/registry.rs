//! `sandscore images push` against a real registry: Debian's
//! `docker-registry` (the CNCF distribution registry) on a local port,
//! pushed to by the engine, read back through the registry's own API and
//! pulled again. Needs built images, Docker and docker-registry:
//! `make test-images` (images/install-engine.sh installs it).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::agent;
use common::fixture::{Fixture, text};
use serde_json::Value;

/// A registry on a free local port, stopped on drop.
struct Registry {
    child: Child,
    address: String,
}

impl Registry {
    fn start(fx: &Fixture) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = fx.dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n  secret: sandscore-test\n",
                fx.dir.join("blobs").display()
            ),
        )
        .expect("write config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let registry = Registry { child, address };
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent()
            .get(format!("http://{}/v2/", registry.address))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "the registry did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("docker")
}

#[test]
#[ignore = "needs built images, Docker and docker-registry: make test-images"]
fn built_images_push_to_a_real_registry_and_pull_back() {
    let fx = Fixture::new("registry");
    let registry = Registry::start(&fx);
    let listed = fx.run(&["images", "list"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let line = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|l| l.starts_with("sandscore/minimal-cpu:"))
        .map(str::to_string)
        .expect("minimal-cpu listed");
    assert!(line.ends_with("built"), "{line}");
    let tag = line
        .split_whitespace()
        .next()
        .and_then(|r| r.split_once(':'))
        .map(|(_, t)| t.to_string())
        .expect("a tag");

    let out = fx.run(&[
        "images",
        "push",
        &format!("{}/", registry.address),
        "minimal-cpu",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let pushed = format!("{}/sandscore/minimal-cpu:{tag}", registry.address);
    assert!(text(&out).contains(&pushed), "{}", text(&out));

    // The registry's own API lists the tag.
    let mut r = agent()
        .get(format!(
            "http://{}/v2/sandscore/minimal-cpu/tags/list",
            registry.address
        ))
        .call()
        .expect("tags");
    let tags: Value =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON");
    assert!(
        tags["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == tag.as_str())),
        "{tags}"
    );
    // Pulled back by reference, as a kubelet would pull it.
    assert!(docker(&["rmi", &pushed]).status.success());
    let pulled = docker(&["pull", &pushed]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    let _ = docker(&["rmi", &pushed]);

    // Words a person can act on: no registry scheme, no unknown image.
    let out = fx.run(&["images", "push", "https://example.com", "minimal-cpu"]);
    assert!(
        !out.status.success() && text(&out).contains("host[:port][/path]"),
        "{}",
        text(&out)
    );
    let out = fx.run(&["images", "push", &registry.address, "nonesuch"]);
    assert!(
        !out.status.success() && text(&out).contains("minimal-cpu"),
        "{}",
        text(&out)
    );
}
