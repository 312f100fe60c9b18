//! Where the CA's keys live: a signing CA from files (`--ca-cert/--ca-key/--ca-chain`), or a root generated on first
//! start and kept in the CA directory under Istio's file names, reloaded (never regenerated) on the next start; and
//! the token key beside it. Private keys are written with mode 0600, each file atomically (a temporary file renamed).

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

use meshwork_pki::{Authority, CertificateDer, cert_to_pem, certs_from_pem, inspect};

use super::{CaError, CaOptions, token::TokenKey, token::hex, token::unhex};

/// The signing CA's certificate.
pub const CA_CERT: &str = "ca-cert.pem";
/// The signing CA's private key (mode 0600).
pub const CA_KEY: &str = "ca-key.pem";
/// The signing CA's certificate and those above it up to the root.
pub const CERT_CHAIN: &str = "cert-chain.pem";
/// The root.
pub const ROOT_CERT: &str = "root-cert.pem";
/// The key bootstrap tokens are signed with: 32 bytes in hex (mode 0600).
pub const TOKEN_KEY: &str = "token-key";

/// The signing CA per `options`, and a phrase saying where it came from (for the start-up log).
pub fn load_authority(options: &CaOptions) -> Result<(Authority, String), CaError> {
    if let Some(files) = &options.files {
        let chain = match &files.chain {
            Some(path) => Some((path.clone(), read(path)?)),
            None => None,
        };
        let ca = from_pem(
            &files.cert,
            &read(&files.cert)?,
            &files.key,
            &read(&files.key)?,
            chain,
        )?;
        return Ok((ca, format!("from {}", files.cert.display())));
    }
    let Some(dir) = &options.dir else {
        let ca = generate(options)?;
        return Ok((ca, "generated in memory (not persisted)".to_owned()));
    };
    let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    match (cert.exists(), key.exists()) {
        (true, true) => {
            let chain = dir.join(CERT_CHAIN);
            let chain = if chain.exists() {
                Some((chain.clone(), read(&chain)?))
            } else {
                None
            };
            let ca = from_pem(&cert, &read(&cert)?, &key, &read(&key)?, chain)?;
            let root = dir.join(ROOT_CERT);
            if root.exists()
                && certs_from_pem(read(&root)?.as_bytes()).ok()
                    != certs_from_pem(ca.root_pem().as_bytes()).ok()
            {
                tracing::warn!(file = %root.display(), "{ROOT_CERT} is not the root the chain leads to; serving the chain's root");
            }
            Ok((ca, format!("loaded from {}", dir.display())))
        }
        (false, false) => {
            let ca = generate(options)?;
            save(dir, &ca)?;
            Ok((ca, format!("generated and saved in {}", dir.display())))
        }
        (true, false) => Err(CaError::Incomplete {
            dir: dir.clone(),
            present: CA_CERT,
            missing: CA_KEY,
        }),
        (false, true) => Err(CaError::Incomplete {
            dir: dir.clone(),
            present: CA_KEY,
            missing: CA_CERT,
        }),
    }
}

/// The token key kept in `dir` (created on first use), or a random one kept in memory without a directory.
pub fn load_token_key(dir: Option<&Path>) -> Result<TokenKey, CaError> {
    let Some(dir) = dir else {
        return random_key().map(|bytes| TokenKey::from_bytes(&bytes));
    };
    let path = dir.join(TOKEN_KEY);
    if !path.exists() {
        create_dir(dir)?;
        let bytes = random_key()?;
        match write_new(&path, &format!("{}\n", hex(&bytes)), 0o600) {
            Ok(()) => return Ok(TokenKey::from_bytes(&bytes)),
            // Another process (`meshwork control token` beside a starting control plane) wrote it first: use theirs.
            Err(CaError::Write { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    warn_if_readable_by_others(&path);
    let text = read(&path)?;
    match unhex(text.trim()) {
        Some(bytes) if bytes.len() == 32 => Ok(TokenKey::from_bytes(&bytes)),
        _ => Err(CaError::Invalid {
            what: path.display().to_string(),
            reason: "expected 64 hex digits (a 32-byte key); remove the file to make a new key (tokens minted \
                     with the old one stop working)"
                .into(),
        }),
    }
}

fn random_key() -> Result<[u8; 32], CaError> {
    TokenKey::random_bytes()
        .map_err(|_| CaError::Setup("the system random generator failed".into()))
}

fn generate(options: &CaOptions) -> Result<Authority, CaError> {
    Authority::generate_root(&options.trust_domain, super::options::ROOT_VALIDITY)
        .map_err(|e| CaError::Setup(e.to_string()))
}

/// Writes a generated root under Istio's names: the key first, the certificates after.
fn save(dir: &Path, ca: &Authority) -> Result<(), CaError> {
    create_dir(dir)?;
    write_new(&dir.join(CA_KEY), &ca.key_pem(), 0o600)?;
    write_new(&dir.join(CERT_CHAIN), &ca.chain_pem().concat(), 0o644)?;
    write_new(&dir.join(ROOT_CERT), ca.root_pem(), 0o644)?;
    write_new(&dir.join(CA_CERT), ca.cert_pem(), 0o644)
}

/// A CA from its certificate, key and optional chain file, checked: a CA certificate, within its validity, and
/// leading to a self-signed root.
fn from_pem(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
    chain: Option<(PathBuf, String)>,
) -> Result<Authority, CaError> {
    let invalid = |path: &Path, reason: String| CaError::Invalid {
        what: path.display().to_string(),
        reason,
    };
    let cert =
        certs_from_pem(cert_pem.as_bytes()).map_err(|e| invalid(cert_path, e.to_string()))?;
    let info = inspect(&cert[0]).map_err(|e| invalid(cert_path, e.to_string()))?;
    if info.not_after <= SystemTime::now() {
        return Err(invalid(
            cert_path,
            format!(
                "the CA certificate `{}` has expired; give a valid one",
                info.subject
            ),
        ));
    }
    let parents = match &chain {
        Some((path, pem)) => parents(
            &cert[0],
            certs_from_pem(pem.as_bytes()).map_err(|e| invalid(path, e.to_string()))?,
        ),
        None => Vec::new(),
    };
    let top = match parents.last() {
        Some(der) => inspect(der).map_err(|e| invalid(cert_path, e.to_string()))?,
        None => info.clone(),
    };
    if top.subject != top.issuer {
        let (what, reason) = match (&chain, parents.is_empty()) {
            (Some((path, _)), false) => (
                path.as_path(),
                format!(
                    "the chain ends with `{}`, which is not a root; add the certificates up to the root",
                    top.subject
                ),
            ),
            _ => (
                cert_path,
                format!(
                    "`{}` is an intermediate CA (issued by `{}`); give the certificates above it up to the root \
                     with --ca-chain",
                    info.subject, info.issuer
                ),
            ),
        };
        return Err(invalid(what, reason));
    }
    warn_if_readable_by_others(key_path);
    let parents_pem: String = parents.iter().map(|der| cert_to_pem(der)).collect();
    Authority::from_pem(cert_pem, key_pem, &parents_pem)
        .map_err(|e| invalid(cert_path, e.to_string()))
}

/// The chain's certificates above `ca`: Istio's `cert-chain.pem` starts with the CA's own certificate.
fn parents(
    ca: &CertificateDer<'_>,
    chain: Vec<CertificateDer<'static>>,
) -> Vec<CertificateDer<'static>> {
    chain.into_iter().skip_while(|c| c == ca).collect()
}

fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), CaError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CaError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `contents` to `path` with `mode`, failing if `path` exists: a temporary file is written and synced, then
/// hard-linked into place (which fails on an existing file, unlike a rename) and removed.
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), CaError> {
    let error = |source| CaError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    written.map_err(error)
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "a private key is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::CaFiles;
    use meshwork_pki::SpiffeId;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshwork-ca-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_generated_root_is_saved_once_and_reloaded() {
        let dir = temp_dir("gen");
        let options = CaOptions {
            dir: Some(dir.clone()),
            ..CaOptions::default()
        };
        let (first, origin) = load_authority(&options).unwrap();
        assert!(origin.starts_with("generated and saved"), "{origin}");
        for (file, want) in [
            (CA_KEY, 0o600),
            (CA_CERT, 0o644),
            (CERT_CHAIN, 0o644),
            (ROOT_CERT, 0o644),
        ] {
            assert_eq!(mode(&dir.join(file)), want, "{file}");
        }
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(
            fs::read_to_string(dir.join(ROOT_CERT)).unwrap(),
            first.cert_pem()
        );
        let (second, origin) = load_authority(&options).unwrap();
        assert!(origin.starts_with("loaded from"), "{origin}");
        assert_eq!(second.cert_pem(), first.cert_pem());
        assert_eq!(second.key_pem(), first.key_pem());
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.starts_with('.').then_some(name)
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        fs::remove_file(dir.join(CA_KEY)).unwrap();
        let err = load_authority(&options).unwrap_err().to_string();
        assert!(err.contains("has ca-cert.pem but not ca-key.pem"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_token_key_is_created_once_with_mode_0600() {
        let dir = temp_dir("token");
        let id = SpiffeId::new("td", "a", "b");
        let at = SystemTime::now() + HOUR;
        let first = load_token_key(Some(&dir)).unwrap();
        assert_eq!(mode(&dir.join(TOKEN_KEY)), 0o600);
        let again = load_token_key(Some(&dir)).unwrap();
        assert_eq!(first.mint(&id, at), again.mint(&id, at));
        let memory = load_token_key(None).unwrap();
        assert_ne!(first.mint(&id, at), memory.mint(&id, at));
        fs::write(dir.join(TOKEN_KEY), "abc\n").unwrap();
        let err = load_token_key(Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("expected 64 hex digits"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes `(name, contents)` into `dir` and returns the paths.
    fn files(dir: &Path, items: &[(&str, String)]) -> Vec<PathBuf> {
        fs::create_dir_all(dir).unwrap();
        items
            .iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                fs::write(&path, text).unwrap();
                path
            })
            .collect()
    }

    #[test]
    fn ca_files_table() {
        let dir = temp_dir("files");
        let root = Authority::generate_root("td", HOUR).unwrap();
        let mid = root.generate_intermediate("td", HOUR).unwrap();
        let (leaf, _) = root.issue(&SpiffeId::new("td", "a", "b"), HOUR).unwrap();
        let paths = files(
            &dir,
            &[
                ("mid.pem", mid.cert_pem().to_owned()),
                ("mid-key.pem", mid.key_pem()),
                ("root.pem", root.cert_pem().to_owned()),
                ("istio-chain.pem", mid.chain_pem().concat()),
                ("mid-only.pem", mid.cert_pem().to_owned()),
                ("leaf.pem", leaf[0].clone()),
                ("root-key.pem", root.key_pem()),
            ],
        );
        let [
            mid_cert,
            mid_key,
            root_cert,
            istio_chain,
            mid_only,
            leaf_cert,
            root_key,
        ] = &paths[..]
        else {
            unreachable!()
        };
        let case = |cert: &PathBuf, key: &PathBuf, chain: Option<&PathBuf>| {
            let options = CaOptions {
                files: Some(CaFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    chain: chain.cloned(),
                }),
                ..CaOptions::default()
            };
            load_authority(&options).map(|(ca, _)| ca.chain_pem().len())
        };
        let cases: Vec<(Result<usize, CaError>, Result<usize, &str>)> = vec![
            (case(mid_cert, mid_key, Some(root_cert)), Ok(2)),
            (case(mid_cert, mid_key, Some(istio_chain)), Ok(2)),
            (case(root_cert, root_key, None), Ok(1)),
            (case(mid_cert, mid_key, None), Err("is an intermediate CA")),
            (
                case(mid_cert, mid_key, Some(mid_only)),
                Err("is an intermediate CA"),
            ),
            (
                case(leaf_cert, root_key, Some(root_cert)),
                Err("not a CA certificate"),
            ),
            (
                case(&dir.join("missing.pem"), mid_key, None),
                Err("cannot read"),
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            match (got, want) {
                (Ok(n), Ok(w)) => assert_eq!(n, w, "case {i}"),
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "case {i}: {e}"),
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
