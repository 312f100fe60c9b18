//! HAProxy: one thread, foreground (`-db`), HTTP mode with keep-alive on both sides
//! and `http-reuse always` towards the upstream.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::{Running, serving, write_config};
use crate::process::{self, Proc};

/// `HAProxy 2.6.12-1+deb12u4` from the output of `haproxy -v`.
pub fn version(bin: &Path) -> String {
    let out = process::output_of(Command::new(bin).arg("-v")).unwrap_or_default();
    parse_version(&out)
}

fn parse_version(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            let rest = l
                .strip_prefix("HAProxy version ")
                .or_else(|| l.strip_prefix("HA-Proxy version "))?;
            rest.split_whitespace().next()
        })
        .map_or_else(
            || "HAProxy (unknown version)".to_owned(),
            |v| format!("HAProxy {v}"),
        )
}

/// The HAProxy config: frontend on `listen`, backend `upstream`.
pub fn config(listen: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        "# Written by meshwork-bench.
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend bench
    bind {listen}
    default_backend upstream

backend upstream
    server up1 {upstream}
"
    )
}

/// Writes the config and starts `haproxy -db -f CONF`, waiting for its port.
pub fn start(bin: &Path, upstream: SocketAddr, cpus: Option<&[usize]>) -> anyhow::Result<Running> {
    let (dir, addr, conf) =
        write_config("haproxy", "haproxy.cfg", |addr, _| config(addr, upstream))?;
    let mut cmd = Command::new(bin);
    cmd.arg("-db").arg("-f").arg(&conf);
    let proc = Proc::spawn("haproxy", cmd, &dir.path().join("output.log"), cpus)?;
    serving(addr, proc, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version() {
        let cases = [
            (
                "HAProxy version 2.6.12-1+deb12u4 2025/01/01 - https://haproxy.org/\nStatus: long-term",
                "HAProxy 2.6.12-1+deb12u4",
            ),
            ("HA-Proxy version 1.8.19 2019/02/11\n", "HAProxy 1.8.19"),
            ("", "HAProxy (unknown version)"),
        ];
        for (out, want) in cases {
            assert_eq!(parse_version(out), want);
        }
    }

    #[test]
    fn config_has_essentials() {
        let conf = config(
            SocketAddr::from(([127, 0, 0, 1], 18080)),
            SocketAddr::from(([127, 0, 0, 1], 18081)),
        );
        for want in [
            "nbthread 1",
            "mode http",
            "http-reuse always",
            "option http-keep-alive",
            "bind 127.0.0.1:18080",
            "server up1 127.0.0.1:18081",
            "timeout client",
        ] {
            assert!(conf.contains(want), "missing {want:?} in\n{conf}");
        }
        assert!(!conf.contains("daemon"));
    }
}
