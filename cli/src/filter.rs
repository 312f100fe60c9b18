//! `meshwork filter`: create a filter crate from the template, build one to WebAssembly, and run one request through a
//! compiled filter.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};
use meshwork_host::wasm::harness::{Decision, Harness, LocalReply, TestRequest};
use sha2::Digest;

/// Work with filters.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a filter crate, ready to build: Cargo.toml (a cdylib on meshwork-sdk), src/lib.rs (a working filter with
    /// a typed config and a header decision, unit-tested), README.md and .gitignore; with --host-path also
    /// tests/harness.rs, which builds the module and runs requests through it in meshwork's engine.
    ///
    /// meshwork-sdk is not on crates.io yet: give --sdk-path (the sdk/ folder of a meshwork checkout) for a path
    /// dependency; without it the crate depends on `meshwork-sdk = "0.1"`. With a path, the crate's Cargo.lock starts
    /// as a copy of the checkout's, so it builds with the versions meshwork is tested with (offline too).
    New {
        /// The crate's name (Cargo's rules: letters, digits, `-` and `_`, starting with a letter).
        name: String,
        /// The directory to create (default: ./NAME); an existing one is never overwritten.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Depend on meshwork-sdk by path: the sdk/ folder of a meshwork checkout.
        #[arg(long, value_name = "PATH")]
        sdk_path: Option<PathBuf>,
        /// Add tests/harness.rs with meshwork-host as a path dev-dependency: the host/ folder of a meshwork checkout.
        #[arg(long, value_name = "PATH")]
        host_path: Option<PathBuf>,
    },
    /// Build the filter crate in DIR (default: the current directory) to WebAssembly, adding the target with rustup if
    /// it is missing; prints the module's path, size and sha256.
    Build {
        /// The crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The wasm target.
        #[arg(long, default_value = "wasm32-wasip1", value_parser = ["wasm32-wasip1", "wasm32-unknown-unknown"])]
        target: String,
    },
    /// Run one request through a compiled filter (in meshwork's engine, no proxy) and print what it decided.
    Test {
        /// The module.
        file: PathBuf,
        /// Its pluginConfig, as JSON (a plain string is handed over as is).
        #[arg(long, default_value = "{}")]
        config: String,
        /// The request line, e.g. "GET /api?x=1".
        #[arg(long, default_value = "GET /")]
        request: String,
        /// A request header, "name: value" (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Also run the response phase with this upstream status.
        #[arg(long)]
        response: Option<u16>,
    },
    /// Push a compiled filter to an OCI registry as REGISTRY/REPOSITORY:TAG; prints the manifest digest (what a
    /// WasmPlugin's `sha256` or `@sha256:` pins) and the module's sha256. Istio's format by default, so the artifact
    /// works in Istio and Envoy Gateway too.
    Push {
        /// The module.
        file: PathBuf,
        /// Where to push it: REGISTRY/REPOSITORY:TAG (an oci:// prefix is fine).
        reference: String,
        /// The artifact format: `istio` (an OCI image whose one tar.gz layer holds plugin.wasm) or `cncf` (the
        /// CNCF Wasm OCI artifact: an application/wasm layer, read by wkg, containerd and wasmCloud).
        #[arg(long, default_value = "istio", value_parser = ["istio", "cncf"])]
        format: String,
        #[command(flatten)]
        registry: crate::filter_oci::RegistryArgs,
    },
    /// Pull a filter from an OCI registry (Istio's format, the CNCF Wasm artifact, the solo.io and wasm-to-oci
    /// formats), checking every digest; prints the manifest digest and the module's sha256.
    Pull {
        /// What to pull: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST.
        reference: String,
        /// Where to write the module.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        registry: crate::filter_oci::RegistryArgs,
    },
    /// Sign a pushed filter with a private key: a cosign-compatible signature of its manifest digest, stored in the
    /// same repository under the tag sha256-DIGEST.sig (`cosign verify --key` accepts it).
    Sign {
        /// The filter: REGISTRY/REPOSITORY:TAG or @sha256:DIGEST.
        reference: String,
        /// The private key (PEM PKCS#8, from `meshwork filter keygen`, or an unencrypted EC key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        registry: crate::filter_oci::RegistryArgs,
    },
    /// Check that a pushed filter carries a valid signature by one of the given public keys (cosign.pub format).
    Verify {
        /// The filter: REGISTRY/REPOSITORY:TAG or @sha256:DIGEST.
        reference: String,
        /// A public key (PEM); repeat to accept any of several.
        #[arg(long, value_name = "FILE", required = true)]
        key: Vec<PathBuf>,
        #[command(flatten)]
        registry: crate::filter_oci::RegistryArgs,
    },
    /// Make a signing key pair: PREFIX.key (private, owner-only) and PREFIX.pub (public, as cosign.pub).
    Keygen {
        /// Path and name of the two files, without extension.
        #[arg(long, default_value = "meshwork")]
        prefix: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `meshwork filter ...`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Cmd::New {
            name,
            dir,
            sdk_path,
            host_path,
        } => crate::filter_new::run(crate::filter_new::NewFilter {
            name,
            dir,
            sdk_path,
            host_path,
        }),
        Cmd::Build { dir, target } => build(&dir, &target),
        Cmd::Test {
            file,
            config,
            request,
            headers,
            response,
        } => test(&file, &config, &request, &headers, response),
        Cmd::Push {
            file,
            reference,
            format,
            registry,
        } => print(block_on(crate::filter_oci::push(
            &file,
            &reference,
            format == "cncf",
            &registry,
        ))?),
        Cmd::Pull {
            reference,
            output,
            registry,
        } => print(block_on(crate::filter_oci::pull(
            &reference, &output, &registry,
        ))?),
        Cmd::Sign {
            reference,
            key,
            registry,
        } => print(block_on(crate::filter_oci::sign(
            &reference, &key, &registry,
        ))?),
        Cmd::Verify {
            reference,
            key,
            registry,
        } => print(block_on(crate::filter_oci::verify(
            &reference, &key, &registry,
        ))?),
        Cmd::Keygen { prefix, force } => print(crate::filter_oci::keygen(&prefix, force)?),
    }
}

/// Runs a registry operation on a small runtime of its own.
fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn print(text: String) -> anyhow::Result<()> {
    #[expect(clippy::print_stdout, reason = "the CLI's own output")]
    {
        print!("{text}");
    }
    Ok(())
}

fn build(dir: &Path, target: &str) -> anyhow::Result<()> {
    ensure_target(target)?;
    let status = Command::new("cargo")
        .current_dir(dir)
        .args(["build", "--release", "--target", target])
        .status()
        .context("cannot run cargo; is the Rust toolchain installed?")?;
    if !status.success() {
        bail!(
            "cargo build failed in {} ({status}); the errors are above",
            dir.display()
        );
    }
    let wasm = artifact(dir, target)?;
    let bytes = std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let sha = sha2::Sha256::digest(&bytes);
    #[expect(clippy::print_stdout, reason = "the CLI's own output")]
    {
        println!("{}", wasm.display());
        println!("size   {} bytes", bytes.len());
        println!("sha256 {}", meshwork_host::wasm::engine::hex(&sha));
    }
    Ok(())
}

/// Adds the rustup target when it is missing.
fn ensure_target(target: &str) -> anyhow::Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(out) = &listed
        && String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == target)
    {
        return Ok(());
    }
    let added = Command::new("rustup")
        .args(["target", "add", target])
        .status();
    match added {
        Ok(s) if s.success() => Ok(()),
        _ => bail!(
            "the {target} target is missing and `rustup target add {target}` failed; install it and try again"
        ),
    }
}

/// The crate's cdylib in the target directory cargo reports.
fn artifact(dir: &Path, target: &str) -> anyhow::Result<PathBuf> {
    let out = Command::new("cargo")
        .current_dir(dir)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("cannot run cargo metadata")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata gave no JSON")?;
    let target_dir = meta["target_directory"]
        .as_str()
        .context("cargo metadata: no target_directory")?;
    let lib = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .find(|t| t["crate_types"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")))
        .and_then(|t| t["name"].as_str())
        .context("the crate has no cdylib target; add `[lib] crate-type = [\"cdylib\"]` to its Cargo.toml")?;
    Ok(Path::new(target_dir)
        .join(target)
        .join("release")
        .join(format!("{}.wasm", lib.replace('-', "_"))))
}

fn test(
    file: &Path,
    config: &str,
    request: &str,
    headers: &[String],
    response: Option<u16>,
) -> anyhow::Result<()> {
    let config: serde_json::Value = serde_json::from_str(config)
        .unwrap_or_else(|_| serde_json::Value::String(config.to_string()));
    let (method, path) = request
        .split_once(' ')
        .context("--request is \"METHOD PATH\", e.g. \"GET /\"")?;
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim(), v.trim()))
                .with_context(|| format!("header `{h}` is not \"name: value\""))
        })
        .collect::<anyhow::Result<_>>()?;
    let harness = Harness::load(file, config).context("the filter did not start")?;
    let mut req = harness.request(method, path.trim(), &headers)?;
    let mut out = Vec::new();
    let decision = req.request_headers(true)?;
    out.push(format!("request headers: {}", describe(&decision)));
    report_callouts(&harness, &mut out);
    if decision == Decision::Continue {
        out.push("  request sent upstream:".into());
        request_view(&req, &headers, &mut out);
        if let Some(status) = response {
            let decision = req.response_headers(status, &[], true)?;
            out.push(format!(
                "response headers ({status}): {}",
                describe(&decision)
            ));
            if decision == Decision::Continue {
                out.push(format!(
                    "  :status {}",
                    req.response_header(":status").unwrap_or_default()
                ));
            }
        }
    }
    #[expect(clippy::print_stdout, reason = "the CLI's own output")]
    {
        println!("{}", out.join("\n"));
    }
    Ok(())
}

fn describe(d: &Decision) -> String {
    match d {
        Decision::Continue => "CONTINUE".into(),
        Decision::Pause => "PAUSE (the filter waits for a callout answer or a timer)".into(),
        Decision::LocalReply(r) => local(r),
        Decision::Retry(backoff) => {
            format!("RETRY after {backoff:?} (the response is dropped and the request sent again)")
        }
    }
}

fn local(r: &LocalReply) -> String {
    let mut s = format!("LOCAL REPLY {}", r.status);
    for (k, v) in &r.headers {
        s.push_str(&format!("\n  {k}: {v}"));
    }
    if !r.body.is_empty() {
        s.push_str(&format!("\n  body: {}", String::from_utf8_lossy(&r.body)));
    }
    s
}

fn report_callouts(h: &Harness, out: &mut Vec<String>) {
    for c in h.callouts() {
        let path = c
            .headers
            .iter()
            .find(|(k, _)| k == ":path")
            .map_or("", |(_, v)| v.as_str());
        out.push(format!(
            "  callout to cluster `{}`: {path} (not answered here)",
            c.cluster
        ));
    }
}

/// The request as the filter left it: pseudo-headers, then the headers given and any the filter added.
fn request_view(req: &TestRequest<'_>, given: &[(&str, &str)], out: &mut Vec<String>) {
    for name in [":method", ":path", ":authority"] {
        if let Some(v) = req.request_header(name) {
            out.push(format!("    {name} {v}"));
        }
    }
    for (k, v) in req.request_headers_all() {
        let note = if given
            .iter()
            .any(|(g, gv)| g.eq_ignore_ascii_case(&k) && *gv == v)
        {
            ""
        } else {
            "   (filter)"
        };
        out.push(format!("    {k}: {v}{note}"));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn decisions_in_words() {
        let deny = LocalReply {
            status: 403,
            headers: vec![("x-why".into(), "rbac".into())],
            body: "denied".into(),
            grpc_status: None,
        };
        let cases = [
            (Decision::Continue, "CONTINUE"),
            (
                Decision::Pause,
                "PAUSE (the filter waits for a callout answer or a timer)",
            ),
            (
                Decision::LocalReply(deny),
                "LOCAL REPLY 403\n  x-why: rbac\n  body: denied",
            ),
            (
                Decision::Retry(Duration::from_millis(25)),
                "RETRY after 25ms (the response is dropped and the request sent again)",
            ),
        ];
        for (decision, want) in cases {
            assert_eq!(describe(&decision), want, "{decision:?}");
        }
    }
}
