//! Where the client agrees to send requests that a registry chose: token realms and redirect targets. A realm is
//! attacker-controlled (any registry can name one), so it must be http(s), never a link-local or cloud-metadata
//! address, and plain http only for registries that are themselves plain http. Names are checked again at dial time
//! (`dial::SafeResolver`).

use std::net::IpAddr;

use http::Uri;

/// Host names of cloud metadata services.
const BLOCKED_NAMES: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

/// Whether an address must never be dialled: link-local (169.254.0.0/16, fe80::/10, where cloud metadata services
/// live), Alibaba's metadata address 100.100.100.200 and AWS's IPv6 one fd00:ec2::254 (IPv4-mapped forms too).
pub(crate) fn blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.octets() == [100, 100, 100, 200],
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => blocked_ip(IpAddr::V4(v4)),
            None => {
                (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
        },
    }
}

/// Checks a URL a registry pointed at; `allow_http` when the registry itself is plain http.
pub(crate) fn check_url(url: &str, allow_http: bool) -> Result<Uri, String> {
    let lower = url.to_ascii_lowercase();
    if !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Err("only http(s) URLs are allowed".into());
    }
    let uri: Uri = url.parse().map_err(|_| "not a URL".to_string())?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_http => {}
        Some("http") => return Err("plain http for an https registry".into()),
        _ => return Err("only http(s) URLs are allowed".into()),
    }
    let host = uri.host().ok_or("no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>()
        && blocked_ip(ip)
    {
        return Err(format!("{ip} is a link-local or cloud-metadata address"));
    }
    if BLOCKED_NAMES
        .iter()
        .any(|n| bare.trim_end_matches('.').eq_ignore_ascii_case(n))
    {
        return Err(format!("{host} is a cloud-metadata host"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_validation() {
        let cases = [
            ("https://auth.docker.io/token", false, Ok(())),
            ("https://127.0.0.1:8443/token", false, Ok(())),
            ("http://127.0.0.1:9000/token", true, Ok(())),
            ("http://10.0.0.5/token", true, Ok(())),
            (
                "http://auth.example/token",
                false,
                Err("plain http for an https registry"),
            ),
            ("ftp://auth.example/token", true, Err("only http(s)")),
            ("file:///etc/passwd", true, Err("only http(s)")),
            ("/token", true, Err("only http(s)")),
            ("not a url", true, Err("only http(s)")),
            ("http://a b/", true, Err("not a URL")),
            (
                "http://169.254.169.254/latest/meta-data",
                true,
                Err("link-local or cloud-metadata"),
            ),
            (
                "https://169.254.0.1/",
                false,
                Err("link-local or cloud-metadata"),
            ),
            (
                "http://100.100.100.200/",
                true,
                Err("link-local or cloud-metadata"),
            ),
            (
                "http://[fe80::1]/",
                true,
                Err("link-local or cloud-metadata"),
            ),
            (
                "http://[febf::1]:80/",
                true,
                Err("link-local or cloud-metadata"),
            ),
            (
                "http://[fd00:ec2::254]/",
                true,
                Err("link-local or cloud-metadata"),
            ),
            (
                "http://[::ffff:169.254.169.254]/",
                true,
                Err("link-local or cloud-metadata"),
            ),
            (
                "http://metadata.google.internal/",
                true,
                Err("cloud-metadata host"),
            ),
            ("http://[fec0::1]/", true, Ok(())),
            ("http://100.100.100.201/", true, Ok(())),
        ];
        for (url, allow_http, want) in cases {
            match (check_url(url, allow_http), want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{url}: {e}"),
                (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
            }
        }
    }
}
