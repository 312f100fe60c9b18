//! skopeo as an independent client: copies of what `push` wrote, to an OCI layout and back under another tag, keep
//! the manifest digest and the module.

use std::process::Command;

use meshwork_oci::{Auth, NoProgress, PushFormat, testing::Registry};

use crate::support::{client, module};

fn skopeo(args: &[&str]) {
    let output = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running skopeo: {e}; install it (apt-get install skopeo)"));
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn skopeo_copies_keep_digest_and_module() {
    let registry = Registry::start();
    let client = client();
    let wasm = module("interop", 2000);
    let layout = registry.dir().join("layout");
    for (format, tag) in [(PushFormat::Istio, "istio"), (PushFormat::Cncf, "cncf")] {
        let source = registry.reference(&format!("x:{tag}-1"));
        let pushed = client
            .push(&source, &wasm, format, &Auth::Anonymous, &NoProgress)
            .await
            .expect("push");
        let oci = format!("oci:{}:{tag}", layout.display());
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{source}"),
            &oci,
        ]);
        let copy = registry.reference(&format!("x:{tag}-2"));
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &oci,
            &format!("docker://{copy}"),
        ]);
        let resolved = client
            .resolve(&copy, &Auth::Anonymous)
            .await
            .expect("resolve the copy");
        assert_eq!(
            resolved, pushed.manifest_digest,
            "{tag}: skopeo kept the manifest digest"
        );
        let pulled = client
            .pull(&copy, &Auth::Anonymous, &NoProgress)
            .await
            .expect("pull the copy");
        assert_eq!(pulled.wasm, wasm);
    }
}
