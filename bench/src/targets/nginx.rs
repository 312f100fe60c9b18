//! nginx as the reference reverse proxy: one process (`master_process off`), one
//! worker, upstream keep-alive pool, everything under a temp dir.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::{Running, serving, write_config};
use crate::process::Proc;

/// `nginx/1.22.1` from the output of `nginx -V`.
pub fn version(build: &str) -> String {
    build
        .lines()
        .find_map(|l| l.strip_prefix("nginx version: "))
        .map_or_else(|| "nginx (unknown version)".to_owned(), str::to_owned)
}

/// `(major, minor, patch)` of `nginx -V` output.
fn version_tuple(build: &str) -> Option<(u32, u32, u32)> {
    let v = version(build);
    let mut nums = v.strip_prefix("nginx/")?.split('.');
    let mut next = || {
        nums.next()?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((next()?, next()?, next()?))
}

/// Whether `nginx -e FILE` (error log before the config is read) exists: 1.19.5+.
fn supports_error_log_flag(build: &str) -> bool {
    version_tuple(build).is_some_and(|v| v >= (1, 19, 5))
}

/// Whether the http module `name` (e.g. `uwsgi`) is compiled in.
fn has_http_module(build: &str, name: &str) -> bool {
    !build.contains(&format!("--without-http_{name}_module"))
}

/// The nginx config: listen on `listen`, proxy to `upstream` with keep-alive.
pub fn config(listen: SocketAddr, upstream: SocketAddr, dir: &Path, build: &str) -> String {
    config_with(listen, upstream, dir, build, &Tls::default())
}

/// TLS on either side of one nginx (the mTLS pair's two processes): directives written into its `server` block.
#[derive(Debug, Default)]
pub struct Tls {
    /// The listener takes TLS (`listen ADDR ssl`) with these `ssl_*` directives.
    pub downstream: Option<String>,
    /// The upstream is reached over TLS (`proxy_pass https://`) with these `proxy_ssl_*` directives.
    pub upstream: Option<String>,
}

/// [`config`] with TLS on the listener, towards the upstream, or both.
pub fn config_with(
    listen: SocketAddr,
    upstream: SocketAddr,
    dir: &Path,
    build: &str,
    tls: &Tls,
) -> String {
    let listen_ssl = if tls.downstream.is_some() { " ssl" } else { "" };
    let scheme = if tls.upstream.is_some() {
        "https"
    } else {
        "http"
    };
    let mut directives = String::new();
    for d in [&tls.downstream, &tls.upstream].into_iter().flatten() {
        for line in d.lines() {
            let _ = writeln!(directives, "        {line}");
        }
    }
    let d = dir.display();
    let mut temp_paths = format!(
        "    client_body_temp_path \"{d}/client_body\";\n    proxy_temp_path \"{d}/proxy\";\n"
    );
    for module in ["fastcgi", "uwsgi", "scgi"] {
        if has_http_module(build, module) {
            let _ = writeln!(temp_paths, "    {module}_temp_path \"{d}/{module}\";");
        }
    }
    format!(
        r#"# Written by meshwork-bench.
worker_processes 1;
daemon off;
master_process off;
pid "{d}/nginx.pid";
error_log "{d}/error.log" warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
{temp_paths}    keepalive_requests 1000000;
    keepalive_timeout 120s;

    upstream bench_upstream {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}

    server {{
        listen {listen}{listen_ssl};
{directives}        location / {{
            proxy_pass {scheme}://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

/// Writes the config and starts `nginx -c CONF -p DIR`, waiting for its port.
pub fn start(
    bin: &Path,
    build: &str,
    upstream: SocketAddr,
    cpus: Option<&[usize]>,
) -> anyhow::Result<Running> {
    let (dir, addr, conf) = write_config("nginx", "nginx.conf", |addr, dir| {
        config(addr, upstream, dir, build)
    })?;
    let proc = spawn(bin, build, "nginx", &conf, dir.path(), cpus)?;
    serving(addr, proc, dir)
}

/// Starts `nginx -c CONF -p PREFIX` as `name`, its output in `PREFIX/stdout.log`.
pub fn spawn(
    bin: &Path,
    build: &str,
    name: &str,
    conf: &Path,
    prefix: &Path,
    cpus: Option<&[usize]>,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.arg("-c").arg(conf).arg("-p").arg(prefix);
    if supports_error_log_flag(build) {
        cmd.arg("-e").arg(prefix.join("error.log"));
    }
    Proc::spawn(name, cmd, &prefix.join("stdout.log"), cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_V: &str = "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.11\nconfigure arguments: --with-cc-opt='-g' --without-http_uwsgi_module --without-http_scgi_module\n";

    #[test]
    fn parses_version() {
        type Case = (&'static str, &'static str, Option<(u32, u32, u32)>, bool);
        let cases: &[Case] = &[
            (DEBIAN_V, "nginx/1.22.1", Some((1, 22, 1)), true),
            (
                "nginx version: nginx/1.18.0 (Ubuntu)\n",
                "nginx/1.18.0 (Ubuntu)",
                Some((1, 18, 0)),
                false,
            ),
            (
                "nginx version: nginx/1.19.5\n",
                "nginx/1.19.5",
                Some((1, 19, 5)),
                true,
            ),
            ("", "nginx (unknown version)", None, false),
        ];
        for &(build, name, tuple, e_flag) in cases {
            assert_eq!(version(build), name);
            assert_eq!(version_tuple(build), tuple, "{build:?}");
            assert_eq!(supports_error_log_flag(build), e_flag, "{build:?}");
        }
    }

    #[test]
    fn config_matches_build() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 18080));
        let upstream = SocketAddr::from(([127, 0, 0, 1], 18081));
        let conf = config(listen, upstream, Path::new("/tmp/x"), DEBIAN_V);
        for want in [
            "master_process off;",
            "daemon off;",
            "worker_processes 1;",
            "listen 127.0.0.1:18080;",
            "server 127.0.0.1:18081;",
            "keepalive 64;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "access_log off;",
            "pid \"/tmp/x/nginx.pid\";",
            "client_body_temp_path \"/tmp/x/client_body\";",
            "fastcgi_temp_path \"/tmp/x/fastcgi\";",
        ] {
            assert!(conf.contains(want), "missing {want:?} in\n{conf}");
        }
        // Modules compiled out must not be configured, or nginx refuses to start.
        assert!(!conf.contains("uwsgi_temp_path"));
        assert!(!conf.contains("scgi_temp_path"));
        let full = config(listen, upstream, Path::new("/tmp/x"), "");
        assert!(full.contains("uwsgi_temp_path") && full.contains("scgi_temp_path"));
    }
}
