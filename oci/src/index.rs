//! Which entry of an image index holds the module: the WASM platform, else the only entry, else the first entry that
//! is not a buildx attestation.

use crate::{manifest::Descriptor, media};

/// The chosen entry and why it was chosen (for the debug log).
pub(crate) fn select(entries: &[Descriptor]) -> Result<(&Descriptor, &'static str), String> {
    let wasm = entries.iter().find(|e| {
        e.platform
            .as_ref()
            .is_some_and(|p| matches!(p.os.as_str(), "wasip1" | "wasi") || p.architecture == "wasm")
    });
    if let Some(entry) = wasm {
        return Ok((entry, "its platform is WASM"));
    }
    if let [only] = entries {
        return Ok((only, "it is the only entry"));
    }
    let attestation = |e: &&Descriptor| {
        e.annotations
            .get(media::REFERENCE_TYPE_ANNOTATION)
            .map(String::as_str)
            == Some("attestation-manifest")
    };
    match entries.iter().find(|e| !attestation(e)) {
        Some(entry) => Ok((entry, "it is the first entry that is not an attestation")),
        None if entries.is_empty() => Err("the image index has no entries".into()),
        None => Err("the image index holds only attestations".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Platform;

    fn entry(digest: &str, platform: Option<(&str, &str)>, attestation: bool) -> Descriptor {
        let mut annotations = std::collections::BTreeMap::new();
        if attestation {
            annotations.insert(
                media::REFERENCE_TYPE_ANNOTATION.to_string(),
                "attestation-manifest".to_string(),
            );
        }
        Descriptor {
            media_type: media::OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            annotations,
            platform: platform.map(|(os, architecture)| Platform {
                os: os.into(),
                architecture: architecture.into(),
            }),
        }
    }

    #[test]
    fn selects_an_entry() {
        let amd = entry("amd", Some(("linux", "amd64")), false);
        let arm = entry("arm", Some(("linux", "arm64")), false);
        let att = entry("att", Some(("unknown", "unknown")), true);
        let wasip1 = entry("wasip1", Some(("wasip1", "wasm")), false);
        let wasi = entry("wasi", Some(("wasi", "")), false);
        let arch = entry("arch", Some(("", "wasm")), false);
        let bare = entry("bare", None, false);
        let cases: Vec<(Vec<Descriptor>, Result<&str, &str>)> = vec![
            (vec![amd.clone(), wasip1.clone()], Ok("wasip1")),
            (vec![att.clone(), wasi.clone()], Ok("wasi")),
            (vec![amd.clone(), arch.clone()], Ok("arch")),
            (vec![bare.clone()], Ok("bare")),
            (vec![att.clone()], Ok("att")),
            (vec![att.clone(), amd.clone(), arm.clone()], Ok("amd")),
            (vec![arm.clone(), amd.clone()], Ok("arm")),
            (vec![att.clone(), att.clone()], Err("only attestations")),
            (vec![], Err("no entries")),
        ];
        for (entries, want) in cases {
            match (select(&entries), want) {
                (Ok((e, _)), Ok(w)) => assert_eq!(e.digest, w),
                (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
    }
}
