//! The ConfigMap `istio` of the root namespace: its `mesh` key is Istio's mesh config, YAML inside a string. It is
//! parsed as a document of its own whose lines are lines of the file (a `mesh: |` block starts on the line after the
//! key), so findings about its fields name the file and line like any other. Other ConfigMaps are not meshwork's
//! and are skipped.

use std::{collections::BTreeMap, sync::Arc};

use serde::Deserialize;

use super::{FileParse, Step};
use crate::istio::{
    Meta,
    diagnostic::{Diagnostic, FieldPath},
    documents::Doc,
    locate,
    mesh_config::{self, MeshConfig},
    messages,
};

/// The mesh config as read, with where it was read.
#[derive(Clone, Debug)]
pub struct MeshConfigDoc {
    /// The file it was read from.
    pub file: String,
    /// The line of the ConfigMap's `mesh` key.
    pub line: usize,
    /// The ConfigMap's namespace and name.
    pub metadata: Meta,
    /// The fields meshwork reads.
    pub config: MeshConfig,
    /// Fields meshwork does not read (top level and `defaultConfig`), as paths in the mesh config.
    pub ignored: Vec<FieldPath>,
    pub(super) doc: Arc<Doc>,
    pub(super) prefix: FieldPath,
}

impl MeshConfigDoc {
    /// Where the mesh config is; paths are relative to the mesh config (`extensionProviders[0].name`).
    pub fn site(&self) -> super::Site<'_> {
        super::Site {
            file: &self.file,
            line: self.line,
            doc: &self.doc,
            prefix: &self.prefix,
        }
    }
}

/// What a ConfigMap is read as: metadata and string data (other fields, such as `binaryData`, are not meshwork's).
#[derive(Deserialize)]
struct ConfigMap {
    metadata: Meta,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

impl FileParse {
    /// A ConfigMap document at `prefix` of `doc`: the mesh config when it is `istio-system/istio`, else nothing.
    pub(super) fn config_map(
        &mut self,
        doc: &Arc<Doc>,
        file: &str,
        prefix: &FieldPath,
        value: &serde_yaml::Value,
    ) {
        let line_of = |path: &FieldPath| {
            locate::line_of(&doc.text, &path.under(prefix))
                .map_or(doc.offset + 1, |l| l + doc.offset)
        };
        let cm: ConfigMap = match serde_yaml::from_value(value.clone()) {
            Ok(cm) => cm,
            Err(e) => {
                let msg = format!(
                    "a ConfigMap needs `metadata.name` and string values in `data`: {}",
                    messages::advise(&e.to_string())
                );
                let root = FieldPath::root();
                self.diag(Diagnostic::error(
                    file,
                    Some(line_of(&root)),
                    Some(root.under(prefix)),
                    msg,
                ));
                return;
            }
        };
        let ns = &cm.metadata.namespace;
        if cm.metadata.name != mesh_config::CONFIG_MAP || ns != crate::translate::ROOT_NAMESPACE {
            return;
        }
        let key = FieldPath::root().key("data").key(mesh_config::MESH_KEY);
        let Some(text) = cm.data.get(mesh_config::MESH_KEY) else {
            let msg = "the ConfigMap `istio` holds Istio's mesh config in `data.mesh`, and has none: add it, or \
                       remove the ConfigMap";
            let at = FieldPath::root().key("data");
            self.diag(Diagnostic::warning(
                file,
                Some(line_of(&at)),
                Some(at.under(prefix)),
                msg,
            ));
            return;
        };
        let key_line = line_of(&key);
        // A block scalar (`mesh: |`) starts on the next line; a quoted string on the key's own.
        let block = doc
            .text
            .lines()
            .nth(key_line.saturating_sub(doc.offset + 1))
            .is_some_and(|l| l.trim_end().ends_with(['|', '>', '-', '+']));
        let inner = Arc::new(Doc {
            text: text.clone(),
            offset: if block { key_line } else { key_line - 1 },
        });
        match parse(&inner, file) {
            Ok((config, ignored)) => self.steps.push(Step::MeshConfig(Arc::new(MeshConfigDoc {
                file: file.to_owned(),
                line: key_line,
                metadata: cm.metadata,
                config,
                ignored,
                doc: inner,
                prefix: FieldPath::root(),
            }))),
            Err(d) => self.diag(d),
        }
    }
}

/// The mesh config in `doc`, and the fields meshwork does not read; or the error that keeps it out.
fn parse(doc: &Doc, file: &str) -> Result<(MeshConfig, Vec<FieldPath>), Diagnostic> {
    if doc.text.trim().is_empty() {
        return Ok((MeshConfig::default(), Vec::new()));
    }
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(
        serde_yaml::Deserializer::from_str(&doc.text),
        &mut track,
    );
    let config = MeshConfig::deserialize(de).map_err(|e| {
        let field = FieldPath::from(&track.path());
        let line = e
            .location()
            .map(|l| l.line() + doc.offset)
            .or_else(|| locate::line_of(&doc.text, &field).map(|l| l + doc.offset));
        let msg = format!("mesh config: {}", messages::advise(&e.to_string()));
        Diagnostic::error(file, line, Some(field), msg)
    })?;
    let value: serde_yaml::Value = serde_yaml::from_str(&doc.text).unwrap_or_default();
    let root = FieldPath::root();
    let mut ignored: Vec<FieldPath> = mesh_config::unknown_fields(&value, mesh_config::MESH_FIELDS)
        .iter()
        .map(|k| root.key(k))
        .collect();
    if let Some(proxy) = value.get("defaultConfig") {
        let at = root.key("defaultConfig");
        ignored.extend(
            mesh_config::unknown_fields(proxy, mesh_config::PROXY_FIELDS)
                .iter()
                .map(|k| at.key(k)),
        );
    }
    Ok((config, ignored))
}
