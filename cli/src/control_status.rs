//! `meshwork control status`: what a running control plane serves, from its admin port's `/status` — the mesh
//! version, rejected configuration, xDS streams, and every plugin module: what it resolved to and why not.

use std::{fmt::Write as _, net::SocketAddr};

use serde_json::Value;

/// Arguments of `meshwork control status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// The control plane's admin address (its --admin-address).
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    /// Print the JSON document as it is.
    #[arg(long)]
    json: bool,
}

/// Prints the status.
pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = rt.block_on(crate::admin_http::get(
        args.admin,
        "/status",
        "the control plane's admin port (is `meshwork control` running, with this --admin-address?)",
    ))?;
    let text = if args.json {
        body
    } else {
        let doc: Value = serde_json::from_str(&body)?;
        render(&doc)
    };
    #[expect(clippy::print_stdout, reason = "the CLI's own output")]
    {
        print!("{text}");
    }
    Ok(())
}

/// The status as text: a summary line, rejections, then one block per plugin module. Pure, for the table test.
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "mesh version {}, {} resources, {} xDS streams, {} NACKs",
        n(&doc["version"]),
        n(&doc["resources"]),
        n(&doc["xds"]["connected_streams"]),
        n(&doc["xds"]["nacks"])
    );
    let rejected = doc["rejected"].as_array().cloned().unwrap_or_default();
    if !rejected.is_empty() {
        let _ = writeln!(out, "rejected configuration:");
        for r in rejected {
            let _ = writeln!(out, "  {}", r.as_str().unwrap_or_default());
        }
    }
    let modules = doc["modules"].as_array().cloned().unwrap_or_default();
    if modules.is_empty() {
        let _ = writeln!(out, "no oci:// plugin modules");
    }
    for m in modules {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let _ = writeln!(out, "plugin {}  {}", s(&m["plugin"]), s(&m["url"]));
        match m["serving"].as_object() {
            Some(serving) => {
                let url = s(&serving["url"]);
                let older = if url == s(&m["url"]) {
                    String::new()
                } else {
                    format!(" (from {url})")
                };
                let signed = if serving["signed"].as_bool() == Some(true) {
                    ", signature verified"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  serving  sha256:{} manifest {} format {}{signed}{older}",
                    s(&serving["sha256"]),
                    s(&serving["manifest_digest"]),
                    s(&serving["format"])
                );
            }
            None => {
                let _ = writeln!(out, "  serving  nothing (its failStrategy applies)");
            }
        }
        if let Some(error) = m["error"].as_object() {
            let _ = writeln!(
                out,
                "  failing  {} after {} attempts: {}",
                s(&error["reason"]),
                n(&m["failures"]),
                s(&error["message"])
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn render_table() {
        let doc = json!({
            "version": 3, "resources": 12, "rejected": ["a.yaml:4: spec.url: bad"],
            "xds": {"connected_streams": 2, "nacks": 0},
            "modules": [
                {"plugin": "default.limits", "url": "oci://r/limits:2", "failures": 2,
                 "serving": {"url": "oci://r/limits:1", "sha256": "ab", "manifest_digest": "sha256:cd", "format": "istio-oci", "signed": true},
                 "error": {"reason": "not_found", "message": "no such tag"}},
                {"plugin": "default.auth", "url": "oci://r/auth:1", "failures": 1, "serving": null,
                 "error": {"reason": "unauthorized", "message": "refused"}},
            ]
        });
        let text = render(&doc);
        let want = "mesh version 3, 12 resources, 2 xDS streams, 0 NACKs
rejected configuration:
  a.yaml:4: spec.url: bad
plugin default.limits  oci://r/limits:2
  serving  sha256:ab manifest sha256:cd format istio-oci, signature verified (from oci://r/limits:1)
  failing  not_found after 2 attempts: no such tag
plugin default.auth  oci://r/auth:1
  serving  nothing (its failStrategy applies)
  failing  unauthorized after 1 attempts: refused
";
        assert_eq!(text, want);
        assert!(render(&json!({})).contains("no oci:// plugin modules"));
    }
}
