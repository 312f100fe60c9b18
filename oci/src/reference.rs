//! [`Reference`]: `[oci://]REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`, with Docker's defaults (no registry → `docker.io`,
//! a one-part Docker Hub repository → `library/NAME`, neither tag nor digest → tag `latest`).

use std::{fmt, str::FromStr};

use crate::{OciError, digest};

/// The registry Docker Hub references name, and the host its API is served from.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// "host[:port]" (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path ("filters/hello", "library/x").
    pub repository: String,
    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// The manifest digest "sha256:HEX", if pinned.
    pub digest: Option<String>,
}

impl Reference {
    /// The same repository pinned to `digest`, keeping the tag.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The same repository under another tag, without a digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// "oci://registry/repository": the key of a module's cache entries and status.
    pub fn repository_url(&self) -> String {
        format!("oci://{}/{}", self.registry, self.repository)
    }

    /// The host (and port) the registry API is served from.
    pub(crate) fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What the manifest endpoint is asked for: the digest when pinned, else the tag.
    pub(crate) fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = OciError;

    fn from_str(input: &str) -> Result<Reference, OciError> {
        parse(input).map_err(|reason| OciError::BadReference {
            reference: input.to_string(),
            reason,
        })
    }
}

fn parse(input: &str) -> Result<Reference, String> {
    let s = input.strip_prefix("oci://").unwrap_or(input);
    if s.is_empty() {
        return Err("empty reference; expected REGISTRY/REPOSITORY[:TAG][@sha256:HEX]".into());
    }
    let (name, digest) = match s.split_once('@') {
        Some((name, d)) => (name, Some(digest::check(d)?)),
        None => (s, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (
            &name[..last_slash + i],
            Some(check_tag(&name[last_slash + i + 1..])?),
        ),
        None => (name, None),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (check_registry(first)?, rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        registry
    };
    check_repository(&repository)?;
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let tag = match (&tag, &digest) {
        (None, None) => Some("latest".to_string()),
        _ => tag,
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

fn check_tag(tag: &str) -> Result<String, String> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !tag.starts_with(['.', '-']);
    if valid {
        Ok(tag.to_string())
    } else {
        Err(format!(
            "`{tag}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.` or `-`)"
        ))
    }
}

fn check_registry(registry: &str) -> Result<String, String> {
    let (host, port) = match registry.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                (ip, port.strip_prefix(':'))
            }
            _ => {
                return Err(format!(
                    "`{registry}`: a bracketed registry host must be an IPv6 address"
                ));
            }
        },
        None => match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        },
    };
    let host_ok = registry.starts_with('[')
        || (!host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    if !host_ok {
        return Err(format!(
            "`{registry}`: `{host}` is not a valid registry host name"
        ));
    }
    if let Some(port) = port
        && (!matches!(port.parse::<u16>(), Ok(p) if p > 0) || port.starts_with('+'))
    {
        return Err(format!(
            "`{registry}`: `{port}` is not a port number (1-65535)"
        ));
    }
    Ok(registry.to_ascii_lowercase())
}

fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("the repository name is missing".into());
    }
    if repository.len() > 255 {
        return Err("repository names are at most 255 characters".into());
    }
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("`{repository}`: repository names are lower case"));
    }
    for component in repository.split('/') {
        if !component_ok(component) {
            return Err(format!(
                "`{component}` is not a valid repository path component (lower-case letters and digits, separated by \
                 `.`, `_`, `__` or dashes)"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_good_references() {
        let d = format!("sha256:{HEX}");
        let cases: Vec<(String, &str, &str, Option<&str>, Option<&str>)> = vec![
            (
                "127.0.0.1:5000/filters/hello:v1".into(),
                "127.0.0.1:5000",
                "filters/hello",
                Some("v1"),
                None,
            ),
            (
                "oci://127.0.0.1:5000/filters/hello:v1".into(),
                "127.0.0.1:5000",
                "filters/hello",
                Some("v1"),
                None,
            ),
            (
                format!("reg.example/x@{d}"),
                "reg.example",
                "x",
                None,
                Some(&d),
            ),
            (
                format!("reg.example/x:v1@{d}"),
                "reg.example",
                "x",
                Some("v1"),
                Some(&d),
            ),
            ("ghcr.io/a/b".into(), "ghcr.io", "a/b", Some("latest"), None),
            ("x".into(), "docker.io", "library/x", Some("latest"), None),
            ("x:1.2".into(), "docker.io", "library/x", Some("1.2"), None),
            ("user/x".into(), "docker.io", "user/x", Some("latest"), None),
            (
                "docker.io/x".into(),
                "docker.io",
                "library/x",
                Some("latest"),
                None,
            ),
            (
                "index.docker.io/user/x:2".into(),
                "docker.io",
                "user/x",
                Some("2"),
                None,
            ),
            ("localhost/x".into(), "localhost", "x", Some("latest"), None),
            (
                "localhost:5000/a/b/c:t_1".into(),
                "localhost:5000",
                "a/b/c",
                Some("t_1"),
                None,
            ),
            ("[::1]:5000/x:1".into(), "[::1]:5000", "x", Some("1"), None),
            (
                "Reg.Example:443/a.b__c-d/e---f:V1".into(),
                "reg.example:443",
                "a.b__c-d/e---f",
                Some("V1"),
                None,
            ),
        ];
        for (input, registry, repository, tag, digest) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry, registry, "{input}");
            assert_eq!(r.repository, repository, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.as_deref(), digest, "{input}");
        }
    }

    #[test]
    fn refuses_bad_references_with_the_reason() {
        let cases = [
            ("", "empty reference"),
            ("oci://", "empty reference"),
            (
                "reg.example/Foo/x",
                "`Foo/x`: repository names are lower case",
            ),
            ("reg.example/", "the repository name is missing"),
            ("reg.example/x:", "is not a valid tag"),
            ("reg.example/x:-a", "is not a valid tag"),
            ("reg.example/x:a/b", "not a valid repository path component"),
            ("reg.example/a//b", "not a valid repository path component"),
            ("reg.example/a_-b", "not a valid repository path component"),
            ("reg.example/-a", "not a valid repository path component"),
            ("reg.example:0/x", "is not a port number"),
            ("reg.example:99999/x", "is not a port number"),
            ("reg.example:http/x", "is not a port number"),
            ("reg_x.example/x", "not a valid registry host name"),
            ("[zz]:5000/x", "must be an IPv6 address"),
            ("reg.example/x@sha256:abc", "sha256:HEX with 64"),
            ("reg.example/x@md5:abc", "only sha256"),
        ];
        for (input, want) in cases {
            let err = input.parse::<Reference>().expect_err(input).to_string();
            assert!(err.contains(want), "{input}: {err}");
            assert_eq!(
                input.parse::<Reference>().map_err(|e| e.reason()).err(),
                Some("bad_reference")
            );
        }
    }

    #[test]
    fn displays_and_derives() {
        let r: Reference = "oci://127.0.0.1:5000/filters/hello:v1"
            .parse()
            .expect("parses");
        assert_eq!(r.to_string(), "127.0.0.1:5000/filters/hello:v1");
        assert_eq!(r.repository_url(), "oci://127.0.0.1:5000/filters/hello");
        let d = format!("sha256:{HEX}");
        let pinned = r.with_digest(&d);
        assert_eq!(
            pinned.to_string(),
            format!("127.0.0.1:5000/filters/hello:v1@{d}")
        );
        assert_eq!(pinned.manifest_ref(), d);
        let other = pinned.with_tag("v2");
        assert_eq!(other.to_string(), "127.0.0.1:5000/filters/hello:v2");
        assert_eq!(other.manifest_ref(), "v2");
        let hub: Reference = "x".parse().expect("parses");
        assert_eq!(hub.to_string(), "docker.io/library/x:latest");
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(
            hub.to_string().parse::<Reference>().expect("round trip"),
            hub
        );
    }
}
