//! The mesh identities of the mTLS benchmarks: a root CA for trust domain `cluster.local`
//! (meshwork-pki, the code the control plane signs with) and two workload certificates,
//! `productpage` (the client sidecar) and `reviews` (the server sidecar), written as PEM
//! files into a target's temp dir, and the `secrets:` entry a sidecar loads them with.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use meshwork_pki::{Authority, SpiffeId};

/// The mesh's trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// The namespace of both workloads.
const NAMESPACE: &str = "default";

/// The client sidecar's service account.
pub const CLIENT_SA: &str = "productpage";

/// The server sidecar's service account.
pub const SERVER_SA: &str = "reviews";

/// How long the root is valid: any benchmark run fits in it.
const ROOT_VALIDITY: Duration = Duration::from_secs(30 * 86_400);

/// How long the workload certificates are valid.
const SVID_TTL: Duration = Duration::from_secs(7 * 86_400);

/// The name of the secret under `secrets:` that holds a sidecar's certificate and the root.
pub const SECRET: &str = "mesh";

/// The SPIFFE ID of service account `sa` in the benchmark's namespace.
pub fn spiffe_id(sa: &str) -> SpiffeId {
    SpiffeId::new(TRUST_DOMAIN, NAMESPACE, sa)
}

/// A workload certificate (chain, leaf first) and its key on disk.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `spiffe://cluster.local/ns/default/sa/SA`.
    pub id: SpiffeId,
    /// The PEM chain.
    pub chain: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

/// The PEM files of a run: the root and both workloads' certificates.
#[derive(Debug, Clone)]
pub struct MeshFiles {
    /// The root CA certificate (the trust bundle).
    pub root: PathBuf,
    /// The client sidecar's identity ([`CLIENT_SA`]).
    pub client: Identity,
    /// The server sidecar's identity ([`SERVER_SA`]).
    pub server: Identity,
}

impl MeshFiles {
    /// Files that are never written, under `/t/` (`/t/root-cert.pem`, `/t/productpage-cert.pem`,
    /// `/t/reviews-key.pem`...), for tests of the configs that name them.
    #[cfg(test)]
    pub fn fixture() -> Self {
        let identity = |sa: &str| Identity {
            id: spiffe_id(sa),
            chain: PathBuf::from(format!("/t/{sa}-cert.pem")),
            key: PathBuf::from(format!("/t/{sa}-key.pem")),
        };
        Self {
            root: PathBuf::from("/t/root-cert.pem"),
            client: identity(CLIENT_SA),
            server: identity(SERVER_SA),
        }
    }

    /// A new root and the two workload certificates, written into `dir`.
    pub fn write(dir: &Path) -> anyhow::Result<Self> {
        let ca = Authority::generate_root(TRUST_DOMAIN, ROOT_VALIDITY)
            .context("generating the mesh root CA")?;
        let root = dir.join("root-cert.pem");
        fs::write(&root, ca.cert_pem()).with_context(|| format!("writing {}", root.display()))?;
        let issue = |sa: &str| -> anyhow::Result<Identity> {
            let id = spiffe_id(sa);
            let (chain, key) = ca
                .issue(&id, SVID_TTL)
                .with_context(|| format!("issuing a certificate for {id}"))?;
            let identity = Identity {
                id,
                chain: dir.join(format!("{sa}-cert.pem")),
                key: dir.join(format!("{sa}-key.pem")),
            };
            fs::write(&identity.chain, chain.concat())
                .with_context(|| format!("writing {}", identity.chain.display()))?;
            fs::write(&identity.key, key)
                .with_context(|| format!("writing {}", identity.key.display()))?;
            Ok(identity)
        };
        Ok(Self {
            client: issue(CLIENT_SA)?,
            server: issue(SERVER_SA)?,
            root,
        })
    }

    /// The `secrets:` entry ([`SECRET`]) with `who`'s certificate and the root.
    pub fn secret_entry(&self, who: &Identity) -> String {
        secret_entry(&who.chain, &who.key, &self.root)
    }
}

/// A `secrets:` entry named [`SECRET`] reading the given PEM files.
fn secret_entry(chain: &Path, key: &Path, root: &Path) -> String {
    format!(
        "  - {{ name: {SECRET}, certificate_chain: \"{}\", private_key: \"{}\", trusted_ca: \"{}\" }}\n",
        chain.display(),
        key.display(),
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::process::TempDir;

    #[test]
    fn identities() {
        let cases = [
            (
                CLIENT_SA,
                "spiffe://cluster.local/ns/default/sa/productpage",
                "cluster.local/ns/default/sa/productpage",
            ),
            (
                SERVER_SA,
                "spiffe://cluster.local/ns/default/sa/reviews",
                "cluster.local/ns/default/sa/reviews",
            ),
        ];
        for (sa, uri, principal) in cases {
            assert_eq!(spiffe_id(sa).to_string(), uri);
            assert_eq!(spiffe_id(sa).principal(), principal);
        }
    }

    #[test]
    fn secret_entry_text() {
        let got = secret_entry(
            Path::new("/t/reviews-cert.pem"),
            Path::new("/t/reviews-key.pem"),
            Path::new("/t/root-cert.pem"),
        );
        assert_eq!(
            got,
            "  - { name: mesh, certificate_chain: \"/t/reviews-cert.pem\", private_key: \
             \"/t/reviews-key.pem\", trusted_ca: \"/t/root-cert.pem\" }\n"
        );
    }

    #[test]
    fn writes_certificates_with_the_spiffe_ids() -> anyhow::Result<()> {
        let dir = TempDir::new("mesh-pki-test")?;
        let files = MeshFiles::write(dir.path())?;
        let roots = meshwork_pki::certs_from_pem(&fs::read(&files.root)?)?;
        assert_eq!(roots.len(), 1);
        assert!(meshwork_pki::inspect(&roots[0])?.is_ca);
        for (who, want) in [
            (&files.client, spiffe_id(CLIENT_SA)),
            (&files.server, spiffe_id(SERVER_SA)),
        ] {
            let chain = meshwork_pki::certs_from_pem(&fs::read(&who.chain)?)?;
            let leaf = meshwork_pki::inspect(&chain[0])?;
            assert_eq!(leaf.uri_sans, [want.to_string()]);
            assert!(!leaf.is_ca);
            meshwork_pki::key_from_pem(&fs::read(&who.key)?)?;
            assert_eq!(who.id, want);
        }
        Ok(())
    }
}
