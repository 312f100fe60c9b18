//! cosign key pairs: ECDSA P-256 private keys (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY` PEM) and public keys
//! (SPKI `PUBLIC KEY` PEM, the `cosign.pub` format).

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};

use super::SignError;
use super::der;

/// Labels of the encrypted key formats cosign and OpenSSL write, refused with advice.
const ENCRYPTED: &[&str] = &[
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
];

/// A private key that signs: ECDSA P-256 with SHA-256, ASN.1 DER signatures (what cosign writes).
pub struct SigningKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

/// A public key that verifies signatures made by a [`SigningKey`] or by `cosign sign --key`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The uncompressed point (65 bytes, `04 || X || Y`).
    point: Vec<u8>,
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<SigningKey, SignError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(|_| SignError::Random)?;
        Self::from_pkcs8(pkcs8.as_ref().to_vec())
    }

    /// Reads the first private key in `pem`: PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`, P-256, unencrypted.
    pub fn from_pem(pem: &str) -> Result<SigningKey, SignError> {
        let bad = |reason: String| SignError::Key {
            what: "private key",
            reason,
        };
        let blocks = pem::parse_many(pem).map_err(|e| bad(format!("not PEM ({e})")))?;
        if let Some(block) = blocks.iter().find(|b| ENCRYPTED.contains(&b.tag())) {
            return Err(SignError::EncryptedKey {
                label: block.tag().to_string(),
            });
        }
        let block = blocks
            .iter()
            .find(|b| b.tag().ends_with("PRIVATE KEY"))
            .ok_or_else(|| bad("no `PRIVATE KEY` or `EC PRIVATE KEY` PEM block found".into()))?;
        let key = match block.tag() {
            "PRIVATE KEY" => der::read_pkcs8(block.contents()),
            "EC PRIVATE KEY" => der::read_sec1(block.contents()),
            other => Err(format!("a `{other}` block is not an ECDSA P-256 key")),
        }
        .map_err(bad)?;
        let public = key.public.ok_or_else(|| {
            bad("the key has no public part; rewrite it with `openssl ec -in KEY -out KEY.pem`, which adds it".into())
        })?;
        Self::from_pkcs8(der::write_pkcs8(key.private, public))
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<SigningKey, SignError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| SignError::Key {
            what: "private key",
            reason: format!("rejected by ring: {e}"),
        })?;
        Ok(SigningKey { pair, pkcs8 })
    }

    /// The key as a PKCS#8 `PRIVATE KEY` PEM block (LF line endings), readable by `cosign import-key-pair`.
    pub fn to_pem(&self) -> String {
        encode("PRIVATE KEY", &self.pkcs8)
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            point: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// An ASN.1 DER ECDSA signature over SHA-256(`message`).
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| SignError::Random)?;
        Ok(sig.as_ref().to_vec())
    }
}

/// Shows only the public key's fingerprint.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.verifying_key().fingerprint())
    }
}

impl VerifyingKey {
    /// Reads the first `PUBLIC KEY` block in `pem` (an ECDSA P-256 SubjectPublicKeyInfo, as in `cosign.pub`).
    pub fn from_pem(pem: &str) -> Result<VerifyingKey, SignError> {
        let bad = |reason: String| SignError::Key {
            what: "public key",
            reason,
        };
        let blocks = pem::parse_many(pem).map_err(|e| bad(format!("not PEM ({e})")))?;
        let block = blocks
            .iter()
            .find(|b| b.tag() == "PUBLIC KEY")
            .ok_or_else(|| bad("no `PUBLIC KEY` PEM block found (cosign.pub has one)".into()))?;
        let point = der::read_spki(block.contents()).map_err(bad)?;
        Ok(VerifyingKey {
            point: point.to_vec(),
        })
    }

    /// The key as a `PUBLIC KEY` PEM block, byte for byte what cosign writes to `cosign.pub`.
    pub fn to_pem(&self) -> String {
        encode("PUBLIC KEY", &der::write_spki(&self.point))
    }

    /// "sha256:HEX" of the DER SubjectPublicKeyInfo: names the key in logs and results.
    pub fn fingerprint(&self) -> String {
        crate::digest::sha256_digest(&der::write_spki(&self.point))
    }

    /// Whether `signature` (ASN.1 DER) is this key's signature over SHA-256(`message`).
    pub(super) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({})", self.fingerprint())
    }
}

fn encode(label: &str, der: &[u8]) -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), lf)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `openssl ecparam -name prime256v1 -genkey` (SEC1, with the curve named and an EC PARAMETERS block first), the
    /// same key as PKCS#8 (`openssl pkcs8 -topk8 -nocrypt`) and its public key (`openssl ec -pubout`), OpenSSL 3.0.
    const OPENSSL_SEC1: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIDQB8d1ZX07630nNtzQEwxCqPLOq5BaG6a9NrleNRrwZoAoGCCqGSM49
AwEHoUQDQgAEEsGwAUKk/sTbwpfCZDA4Bz9CCXCkU6gTYce6vopMX61mgk9LTcdV
wN6S02Q8D4o3FXQbI2/D1EUec5Hpegb2JA==
-----END EC PRIVATE KEY-----
";
    const OPENSSL_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNAHx3VlfTvrfSc23
NATDEKo8s6rkFobpr02uV41GvBmhRANCAAQSwbABQqT+xNvCl8JkMDgHP0IJcKRT
qBNhx7q+ikxfrWaCT0tNx1XA3pLTZDwPijcVdBsjb8PURR5zkel6BvYk
-----END PRIVATE KEY-----
";
    pub(in crate::sign) const OPENSSL_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEsGwAUKk/sTbwpfCZDA4Bz9CCXCk
U6gTYce6vopMX61mgk9LTcdVwN6S02Q8D4o3FXQbI2/D1EUec5Hpegb2JA==
-----END PUBLIC KEY-----
";
    /// `openssl ec -no_public`: the scalar alone.
    const OPENSSL_NO_PUBLIC: &str = "-----BEGIN EC PRIVATE KEY-----
MDECAQEEIDQB8d1ZX07630nNtzQEwxCqPLOq5BaG6a9NrleNRrwZoAoGCCqGSM49
AwEH
-----END EC PRIVATE KEY-----
";

    #[test]
    fn reads_openssl_keys_and_writes_cosign_forms() {
        let sec1 = SigningKey::from_pem(OPENSSL_SEC1).expect("sec1");
        let pkcs8 = SigningKey::from_pem(OPENSSL_PKCS8).expect("pkcs8");
        assert_eq!(
            pkcs8.to_pem(),
            OPENSSL_PKCS8,
            "the PKCS#8 form is OpenSSL's and Go's"
        );
        assert_eq!(sec1.to_pem(), OPENSSL_PKCS8);
        assert_eq!(sec1.verifying_key().to_pem(), OPENSSL_PUB);
        assert_eq!(
            VerifyingKey::from_pem(OPENSSL_PUB).expect("pub"),
            sec1.verifying_key()
        );
        let generated = SigningKey::generate().expect("generate");
        let again = SigningKey::from_pem(&generated.to_pem()).expect("round trip");
        assert_eq!(again.verifying_key(), generated.verifying_key());
        assert_ne!(generated.verifying_key(), sec1.verifying_key());
        assert!(format!("{generated:?}").starts_with("SigningKey(sha256:"));
    }

    #[test]
    fn bad_pems_say_what_to_do() {
        let enc = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let private_cases: &[(&str, &str)] = &[
            (
                enc,
                "`ENCRYPTED SIGSTORE PRIVATE KEY`), which meshwork does not decrypt: use an unencrypted",
            ),
            ("", "no `PRIVATE KEY` or `EC PRIVATE KEY` PEM block found"),
            (
                OPENSSL_PUB,
                "no `PRIVATE KEY` or `EC PRIVATE KEY` PEM block found",
            ),
            (rsa, "a `RSA PRIVATE KEY` block is not an ECDSA P-256 key"),
            (
                "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
                "not PEM",
            ),
            (
                OPENSSL_NO_PUBLIC,
                "the key has no public part; rewrite it with `openssl ec -in",
            ),
        ];
        for (pem, want) in private_cases {
            let err = SigningKey::from_pem(pem).expect_err(want).to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        let public_cases: &[(&str, &str)] = &[
            (OPENSSL_PKCS8, "no `PUBLIC KEY` PEM block found"),
            (
                &encode("PUBLIC KEY", &[0x30, 0x03, 0x30, 0x01, 0x06]),
                "cannot read the public key: truncated DER",
            ),
        ];
        for (pem, want) in public_cases {
            let err = VerifyingKey::from_pem(pem).expect_err(want).to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
