//! Just enough DER for P-256 keys: reading the PKCS#8, SEC1 and SPKI structures keys arrive in, and writing the
//! PKCS#8 and SPKI documents this crate emits (the shapes Go's `x509.MarshalPKCS8PrivateKey` and
//! `x509.MarshalPKIXPublicKey` write, so `cosign.pub` files compare byte for byte).

/// `id-ecPublicKey` (1.2.840.10045.2.1).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1`, NIST P-256 (1.2.840.10045.3.1.7).
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Algorithms and curves users bring by mistake, named in errors.
const KNOWN: &[(&[u8], &str)] = &[
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
        "an RSA key",
    ),
    (&[0x2b, 0x65, 0x70], "an Ed25519 key"),
    (&[0x2b, 0x81, 0x04, 0x00, 0x22], "a P-384 key"),
    (&[0x2b, 0x81, 0x04, 0x00, 0x23], "a P-521 key"),
];
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

/// A P-256 private key as found in a document: the scalar and, when the document carries it, the public point.
pub(super) struct EcKey<'a> {
    pub private: &'a [u8],
    pub public: Option<&'a [u8]>,
}

/// Splits one element off `input`: (tag, contents, rest).
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let truncated = || "truncated DER".to_string();
    let (&tag, input) = input.split_first().ok_or_else(truncated)?;
    let (&first, input) = input.split_first().ok_or_else(truncated)?;
    let (len, input) = match first {
        0..=0x7f => (usize::from(first), input),
        0x81 | 0x82 => {
            let n = usize::from(first & 0x7f);
            let bytes = input.get(..n).ok_or_else(truncated)?;
            (
                bytes.iter().fold(0, |acc, b| acc << 8 | usize::from(*b)),
                &input[n..],
            )
        }
        _ => return Err("unsupported DER length".into()),
    };
    let contents = input.get(..len).ok_or_else(truncated)?;
    Ok((tag, contents, &input[len..]))
}

/// The contents of the element at the start of `input`, which must have tag `tag`, and what follows it.
fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    match element(input)? {
        (t, contents, rest) if t == tag => Ok((contents, rest)),
        (t, ..) => Err(format!(
            "expected {what} (DER tag {tag:#04x}), found tag {t:#04x}"
        )),
    }
}

/// Checks an `AlgorithmIdentifier` body names an EC key on P-256.
fn check_algorithm(alg: &[u8]) -> Result<(), String> {
    let (oid, rest) = expect(alg, OID, "an algorithm OID")?;
    let curve = match element(rest) {
        Ok((OID, curve, _)) => Some(curve),
        _ => None,
    };
    if oid != EC_PUBLIC_KEY {
        return Err(format!("{}, not ECDSA P-256", name_of(oid)));
    }
    match curve {
        Some(PRIME256V1) => Ok(()),
        Some(other) => Err(format!("{}, not ECDSA P-256", name_of(other))),
        None => {
            Err("the EC key names no curve (explicit curve parameters are not supported)".into())
        }
    }
}

fn name_of(oid: &[u8]) -> &'static str {
    KNOWN
        .iter()
        .find(|(o, _)| *o == oid)
        .map_or("a key of another algorithm", |(_, name)| name)
}

/// The contents of a BIT STRING holding a whole number of bytes: an uncompressed P-256 point.
fn point(bits: &[u8]) -> Result<&[u8], String> {
    match bits {
        [0, 0x04, rest @ ..] if rest.len() == 64 => Ok(&bits[1..]),
        [0, 0x02 | 0x03, ..] => Err("the public key is compressed; export it uncompressed".into()),
        _ => Err("the public key is not an uncompressed P-256 point".into()),
    }
}

/// A PKCS#8 `PrivateKeyInfo`/`OneAsymmetricKey` (v1 or v2) holding a P-256 `ECPrivateKey`.
pub(super) fn read_pkcs8(doc: &[u8]) -> Result<EcKey<'_>, String> {
    let (body, _) = expect(doc, SEQUENCE, "a PKCS#8 SEQUENCE")?;
    let (_version, rest) = expect(body, INTEGER, "the PKCS#8 version")?;
    let (alg, rest) = expect(rest, SEQUENCE, "the key algorithm")?;
    check_algorithm(alg)?;
    let (inner, mut rest) = expect(rest, OCTET_STRING, "the private key")?;
    let mut key = read_sec1(inner)?;
    while let Ok((tag, contents, next)) = element(rest) {
        if tag == 0x81 && key.public.is_none() {
            key.public = Some(point(contents)?);
        }
        rest = next;
    }
    Ok(key)
}

/// A SEC1 `ECPrivateKey` ("EC PRIVATE KEY"), checking the curve when it is named.
pub(super) fn read_sec1(doc: &[u8]) -> Result<EcKey<'_>, String> {
    let (body, _) = expect(doc, SEQUENCE, "an ECPrivateKey SEQUENCE")?;
    let (_version, rest) = expect(body, INTEGER, "the ECPrivateKey version")?;
    let (private, mut rest) = expect(rest, OCTET_STRING, "the private scalar")?;
    if private.is_empty() || private.len() > 32 {
        return Err(format!(
            "a {}-byte private scalar is not a P-256 key",
            private.len()
        ));
    }
    let mut public = None;
    while let Ok((tag, contents, next)) = element(rest) {
        match tag {
            0xa0 => match expect(contents, OID, "the curve OID")?.0 {
                PRIME256V1 => {}
                other => return Err(format!("{}, not ECDSA P-256", name_of(other))),
            },
            0xa1 => public = Some(point(expect(contents, BIT_STRING, "the public key")?.0)?),
            _ => {}
        }
        rest = next;
    }
    Ok(EcKey { private, public })
}

/// The uncompressed point of a P-256 `SubjectPublicKeyInfo` ("PUBLIC KEY").
pub(super) fn read_spki(doc: &[u8]) -> Result<&[u8], String> {
    let (body, _) = expect(doc, SEQUENCE, "a SubjectPublicKeyInfo SEQUENCE")?;
    let (alg, rest) = expect(body, SEQUENCE, "the key algorithm")?;
    check_algorithm(alg)?;
    point(expect(rest, BIT_STRING, "the public key")?.0)
}

/// One DER element.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match contents.len() {
        n @ 0..=0x7f => out.push(n as u8),
        n @ 0x80..=0xff => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(contents);
    out
}

fn algorithm() -> Vec<u8> {
    tlv(
        SEQUENCE,
        &[tlv(OID, EC_PUBLIC_KEY), tlv(OID, PRIME256V1)].concat(),
    )
}

/// A PKCS#8 v1 document for a P-256 key: the scalar left-padded to 32 bytes and the public point in the
/// `ECPrivateKey` (the form ring requires and Go writes).
pub(super) fn write_pkcs8(private: &[u8], public: &[u8]) -> Vec<u8> {
    let mut scalar = vec![0; 32 - private.len().min(32)];
    scalar.extend_from_slice(private);
    let bits = [&[0u8][..], public].concat();
    let ec = tlv(
        SEQUENCE,
        &[
            tlv(INTEGER, &[1]),
            tlv(OCTET_STRING, &scalar),
            tlv(0xa1, &tlv(BIT_STRING, &bits)),
        ]
        .concat(),
    );
    tlv(
        SEQUENCE,
        &[tlv(INTEGER, &[0]), algorithm(), tlv(OCTET_STRING, &ec)].concat(),
    )
}

/// A P-256 `SubjectPublicKeyInfo` for an uncompressed point.
pub(super) fn write_spki(public: &[u8]) -> Vec<u8> {
    tlv(
        SEQUENCE,
        &[algorithm(), tlv(BIT_STRING, &[&[0u8][..], public].concat())].concat(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const POINT: [u8; 65] = {
        let mut p = [7u8; 65];
        p[0] = 4;
        p
    };

    #[test]
    fn writes_what_it_reads() {
        let spki = write_spki(&POINT);
        assert_eq!(spki.len(), 91, "Go's P-256 SPKI is 91 bytes");
        assert_eq!(read_spki(&spki).expect("spki"), POINT);
        let pkcs8 = write_pkcs8(&[9; 31], &POINT);
        assert_eq!(pkcs8.len(), 138, "ring's P-256 PKCS#8 is 138 bytes");
        let key = read_pkcs8(&pkcs8).expect("pkcs8");
        assert_eq!(key.private, [&[0u8][..], &[9; 31]].concat());
        assert_eq!(key.public, Some(&POINT[..]));
    }

    #[test]
    fn refuses_other_keys_and_broken_der_by_name() {
        let ed25519_spki = tlv(
            SEQUENCE,
            &[
                tlv(SEQUENCE, &tlv(OID, &[0x2b, 0x65, 0x70])),
                tlv(BIT_STRING, &[0; 33]),
            ]
            .concat(),
        );
        let p384 = tlv(
            SEQUENCE,
            &[
                tlv(OID, EC_PUBLIC_KEY),
                tlv(OID, &[0x2b, 0x81, 0x04, 0x00, 0x22]),
            ]
            .concat(),
        );
        let p384_spki = tlv(SEQUENCE, &[p384, tlv(BIT_STRING, &[0; 98])].concat());
        let compressed = tlv(
            SEQUENCE,
            &[algorithm(), tlv(BIT_STRING, &[0, 2, 1, 2, 3])].concat(),
        );
        let sec1_no_public = tlv(
            SEQUENCE,
            &[tlv(INTEGER, &[1]), tlv(OCTET_STRING, &[5; 32])].concat(),
        );
        let cases: &[(&[u8], &str)] = &[
            (&ed25519_spki, "an Ed25519 key, not ECDSA P-256"),
            (&p384_spki, "a P-384 key, not ECDSA P-256"),
            (&compressed, "compressed"),
            (&write_spki(&POINT)[..40], "truncated DER"),
            (&[0x31, 0], "expected a SubjectPublicKeyInfo SEQUENCE"),
            (&[], "truncated DER"),
        ];
        for (doc, want) in cases {
            let err = read_spki(doc).expect_err(want);
            assert!(err.contains(want), "{err}");
        }
        assert!(read_sec1(&sec1_no_public).expect("sec1").public.is_none());
        let err = read_pkcs8(&sec1_no_public).err().unwrap_or_default();
        assert!(err.contains("expected the key algorithm"), "{err}");
    }
}
