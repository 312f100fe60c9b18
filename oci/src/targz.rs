//! Format B's layer: a tar.gz holding `plugin.wasm`. Extraction finds the first entry whose base name is
//! `plugin.wasm` (so `./plugin.wasm` works, as in Istio) and stops at a size cap; packing is deterministic (mtime 0,
//! mode 0644, uid/gid 0, gzip without a time stamp) so the same module always gives the same digest.

use std::io::{Read, Write};

use flate2::{Compression, GzBuilder, read::GzDecoder};

use crate::media::PLUGIN_FILE;

/// Why extraction failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExtractError {
    /// `plugin.wasm` (or the whole archive) is over the cap; the size read or announced.
    TooLarge(u64),
    /// Not a tar.gz, or no `plugin.wasm` in it.
    Bad(String),
}

/// The bytes of `plugin.wasm` in a tar.gz, at most `limit` bytes. The decompressed stream is capped too (at twice the
/// limit plus 1 MiB), so a small archive cannot make the reader inflate without end.
pub(crate) fn extract_plugin(tgz: &[u8], limit: u64) -> Result<Vec<u8>, ExtractError> {
    let stream_cap = limit.saturating_mul(2).saturating_add(1 << 20);
    let mut archive = tar::Archive::new(GzDecoder::new(tgz).take(stream_cap));
    let bad =
        |e: std::io::Error| ExtractError::Bad(format!("the layer is not a readable tar.gz: {e}"));
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let is_plugin = entry
            .path()
            .map_err(bad)?
            .file_name()
            .is_some_and(|name| name == PLUGIN_FILE);
        if !is_plugin || !entry.header().entry_type().is_file() {
            continue;
        }
        let size = entry.size();
        if size > limit {
            return Err(ExtractError::TooLarge(size));
        }
        let mut wasm = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry.take(limit + 1).read_to_end(&mut wasm).map_err(bad)?;
        if wasm.len() as u64 > limit {
            return Err(ExtractError::TooLarge(wasm.len() as u64));
        }
        return Ok(wasm);
    }
    Err(ExtractError::Bad(format!("the layer has no {PLUGIN_FILE}")))
}

/// A deterministic tar.gz holding `wasm` as `plugin.wasm`, and the digest of the uncompressed tar (the image config's
/// `diff_id`).
pub(crate) fn pack_plugin(wasm: &[u8]) -> (Vec<u8>, String) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    let mut builder = tar::Builder::new(Vec::new());
    // Writing to a Vec cannot fail, and the path is a fixed valid name.
    let tar = builder
        .append_data(&mut header, PLUGIN_FILE, wasm)
        .and_then(|()| builder.into_inner())
        .unwrap_or_default();
    let diff_id = crate::digest::sha256_digest(&tar);
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::default());
    let tgz = gz
        .write_all(&tar)
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    (tgz, diff_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data, kind) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder
                .append_data(&mut header, path, *data)
                .expect("append");
        }
        let tar = builder.into_inner().expect("tar");
        let mut gz = GzBuilder::new().write(Vec::new(), Compression::fast());
        gz.write_all(&tar).expect("gzip");
        gz.finish().expect("gzip")
    }

    #[test]
    fn extracts_plugin_wasm() {
        use tar::EntryType::{Directory, Regular};
        let wasm: &[u8] = b"\0asm\x01\0\0\0";
        let big = vec![7u8; 2000];
        let cases: Vec<(Vec<u8>, u64, Result<&[u8], ExtractError>)> = vec![
            (tgz(&[("plugin.wasm", wasm, Regular)]), 100, Ok(wasm)),
            (tgz(&[("./plugin.wasm", wasm, Regular)]), 100, Ok(wasm)),
            (
                tgz(&[
                    ("runtime-config.json", b"{}", Regular),
                    ("a/b/plugin.wasm", wasm, Regular),
                ]),
                100,
                Ok(wasm),
            ),
            (
                tgz(&[
                    ("plugin.wasm", b"", Directory),
                    ("plugin.wasm", wasm, Regular),
                ]),
                100,
                Ok(wasm),
            ),
            (
                tgz(&[("other.wasm", wasm, Regular)]),
                100,
                Err(ExtractError::Bad("the layer has no plugin.wasm".into())),
            ),
            (
                tgz(&[("plugin.wasm.bak", wasm, Regular)]),
                100,
                Err(ExtractError::Bad("the layer has no plugin.wasm".into())),
            ),
            (
                tgz(&[("plugin.wasm", &big, Regular)]),
                1000,
                Err(ExtractError::TooLarge(2000)),
            ),
            (tgz(&[("plugin.wasm", &big, Regular)]), 2000, Ok(&big)),
        ];
        for (i, (archive, limit, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                extract_plugin(&archive, limit),
                want.map(<[u8]>::to_vec),
                "case {i}"
            );
        }
        let not_gzip = extract_plugin(b"plain bytes", 100);
        assert!(
            matches!(&not_gzip, Err(ExtractError::Bad(m)) if m.contains("not a readable tar.gz")),
            "{not_gzip:?}"
        );
    }

    #[test]
    fn packs_deterministically() {
        let wasm = b"\0asm\x01\0\0\0 some module";
        let (first, diff_id) = pack_plugin(wasm);
        let (second, again) = pack_plugin(wasm);
        assert_eq!(first, second);
        assert_eq!(diff_id, again);
        assert_eq!(extract_plugin(&first, 1024), Ok(wasm.to_vec()));
        let mut archive = tar::Archive::new(GzDecoder::new(first.as_slice()));
        let entry = archive
            .entries()
            .expect("tar")
            .next()
            .expect("one entry")
            .expect("entry");
        let header = entry.header();
        assert_eq!(
            (
                header.mode().ok(),
                header.uid().ok(),
                header.gid().ok(),
                header.mtime().ok()
            ),
            (Some(0o644), Some(0), Some(0), Some(0))
        );
        assert_eq!(&first[4..8], &[0, 0, 0, 0], "no gzip time stamp");
    }
}
