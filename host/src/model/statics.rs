//! Secrets of the static-config file: PEM files read and checked while a snapshot is built, installed only once the
//! whole snapshot is valid (a bad file never replaces a working certificate).

use crate::{
    config::{Invalid, tls::Secret},
    tls::{
        Secrets, TlsError,
        secrets::{CertEntry, TrustEntry, prepare_certificate, prepare_trust},
    },
};

/// A secret read from files, ready to install.
pub struct Prepared {
    name: String,
    cert: Option<CertEntry>,
    trust: Option<TrustEntry>,
}

/// Reads and checks every secret in `list`.
pub fn prepare(list: &[Secret]) -> Result<Vec<Prepared>, Invalid> {
    let mut out: Vec<Prepared> = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let field = format!("secrets[{i}]");
        if out.iter().any(|p| p.name == s.name) {
            return Err(Invalid::new(
                format!("{field}.name"),
                format!("duplicate secret name `{}`", s.name),
            ));
        }
        let read = |sub: &str, path: &str| {
            std::fs::read(path).map_err(|source| {
                Invalid::new(
                    format!("{field}.{sub}"),
                    TlsError::Read {
                        path: path.into(),
                        source,
                    }
                    .to_string(),
                )
            })
        };
        let cert = match (&s.certificate_chain, &s.private_key) {
            (Some(c), Some(k)) => Some(
                prepare_certificate(
                    &s.name,
                    &read("certificate_chain", c)?,
                    &read("private_key", k)?,
                )
                .map_err(|e| Invalid::new(&field, e.to_string()))?,
            ),
            (None, None) => None,
            _ => {
                return Err(Invalid::new(
                    &field,
                    "give `certificate_chain` and `private_key` together",
                ));
            }
        };
        let trust = match &s.trusted_ca {
            Some(path) => Some(
                prepare_trust(&s.name, &read("trusted_ca", path)?)
                    .map_err(|e| Invalid::new(format!("{field}.trusted_ca"), e.to_string()))?,
            ),
            None => None,
        };
        if cert.is_none() && trust.is_none() {
            return Err(Invalid::new(
                &field,
                "a secret needs `certificate_chain` and `private_key`, or `trusted_ca`, or all three",
            ));
        }
        out.push(Prepared {
            name: s.name.clone(),
            cert,
            trust,
        });
    }
    Ok(out)
}

/// Installs prepared secrets.
pub fn install(secrets: &Secrets, prepared: Vec<Prepared>) {
    for p in prepared {
        if let Some(c) = p.cert {
            secrets.install_certificate(&p.name, c);
        }
        if let Some(t) = p.trust {
            secrets.install_trust(&p.name, t);
        }
    }
}
