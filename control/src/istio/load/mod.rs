//! Reading Istio YAML: every `*.yaml` / `*.yml` file of a directory, multi-document files (`---`), Kubernetes `List`s,
//! into typed collections whose entries remember their file and line. Problems become [`Diagnostic`]s naming the
//! file, the line of the field and the field, and saying what to do.
//!
//! A directory is read without descending into subdirectories, as `kubectl apply -f DIR` does without `-R`: a
//! subdirectory is often an overlay or an archive that is not meant to apply together with its parent.
//!
//! Each file is parsed on its own (into its resources and diagnostics in document order); a [`ReadCache`] keeps
//! those parses, so that reading a directory again parses only the files whose text changed. Names are
//! checked for duplicates across files when the parses are put together, in file order.

mod config_map;
mod located;

use std::{collections::HashMap, marker::PhantomData, path::Path, sync::Arc};

pub use config_map::MeshConfigDoc;
pub use located::{Loaded, Located, Site, Spec};

use super::{
    AuthorizationPolicy, DestinationRule, Kind, PeerAuthentication, Resource, ServiceEntry,
    Telemetry, VirtualService, WasmPlugin, WorkloadEntry,
    diagnostic::{Diagnostic, FieldPath, Seg},
    documents::{Doc, split_documents},
    locate, messages,
};

/// A directory that cannot be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the directory {dir}: {source}; check the path and its permissions")]
pub struct DirError {
    /// The directory.
    pub dir: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Reads every `*.yaml` / `*.yml` file in `dir` (sorted by name, not recursive); `Err` with every diagnostic when
/// any is an error.
pub fn load_dir(dir: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    match read_dir(dir) {
        Ok((loaded, diags)) if !diags.iter().any(Diagnostic::is_error) => Ok(loaded),
        Ok((_, diags)) => Err(diags),
        Err(e) => Err(vec![Diagnostic::error(&e.dir, None, None, e.to_string())]),
    }
}

/// Reads `text` as the contents of a file named `file`; `Err` with every diagnostic when any is an error.
pub fn load_str(text: &str, file: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let mut loader = Loader::default();
    loader.text(text, file);
    loader.finish()
}

/// Reads what it can of `dir`: the resources that are valid, and a diagnostic for each problem (the CLI reports
/// them all at once). `Err` only when the directory itself cannot be listed.
pub fn read_dir(dir: &Path) -> Result<(Loaded, Vec<Diagnostic>), DirError> {
    read_dir_cached(dir, &mut ReadCache::default())
}

/// [`load_dir`], parsing only the files whose text is not in `cache` (which then holds the files read now).
pub fn load_dir_cached(dir: &Path, cache: &mut ReadCache) -> Result<Loaded, Vec<Diagnostic>> {
    match read_dir_cached(dir, cache) {
        Ok((loaded, diags)) if !diags.iter().any(Diagnostic::is_error) => Ok(loaded),
        Ok((_, diags)) => Err(diags),
        Err(e) => Err(vec![Diagnostic::error(&e.dir, None, None, e.to_string())]),
    }
}

/// The files of a directory read before, each with its text and what parsing it gave.
#[derive(Default)]
pub struct ReadCache {
    files: HashMap<String, (String, Arc<FileParse>)>,
}

/// [`read_dir`], parsing only the files whose text is not in `cache` (which then holds the files read now).
pub fn read_dir_cached(
    dir: &Path,
    cache: &mut ReadCache,
) -> Result<(Loaded, Vec<Diagnostic>), DirError> {
    let dir_name = dir.display().to_string();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| DirError {
            dir: dir_name.clone(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    let mut loader = Loader::default();
    if paths.is_empty() {
        loader.diags.push(Diagnostic::warning(
            &dir_name,
            None,
            None,
            "no *.yaml or *.yml files here (subdirectories are not read); put the Istio resources in this directory",
        ));
    }
    let mut read = HashMap::new();
    for path in paths {
        let file = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let parse = match cache.files.remove(&file) {
                    Some((before, parse)) if before == text => parse,
                    _ => Arc::new(FileParse::new(&text, &file)),
                };
                loader.add_file(&file, &parse);
                read.insert(file, (text, parse));
            }
            Err(e) => loader.diags.push(Diagnostic::error(
                &file,
                None,
                None,
                format!(
                    "cannot read the file: {e}; check its permissions and that it is UTF-8 text"
                ),
            )),
        }
    }
    cache.files = read;
    Ok((loader.loaded, loader.diags))
}

/// Where a resource was first defined. The line of its name is worked out only for a duplicate's message: it costs
/// a parse of the document, and most names are never defined twice.
struct FirstDefinition {
    file: String,
    /// The line the resource starts on.
    line: usize,
    doc: Arc<Doc>,
    prefix: FieldPath,
}

impl FirstDefinition {
    /// The line of `path` (relative to the resource), as [`Located::line_of`] gives it.
    fn line_of(&self, path: &FieldPath) -> usize {
        locate::line_of(&self.doc.text, &path.under(&self.prefix))
            .map_or(self.line, |l| l + self.doc.offset)
    }
}

/// One file, parsed: its resources and diagnostics in document order, before names are checked across files.
struct FileParse {
    steps: Vec<Step>,
    resources_seen: usize,
}

/// A resource read, or a problem found.
enum Step {
    Resource(Arc<dyn AddTo>),
    MeshConfig(Arc<MeshConfigDoc>),
    Diag(Diagnostic),
}

/// A resource of any kind, to be added to a [`Loader`].
trait AddTo: Send + Sync {
    fn add_to(&self, loader: &mut Loader);
}

impl<S: Spec + Clone + Send + Sync + 'static> AddTo for Located<S> {
    fn add_to(&self, loader: &mut Loader) {
        loader.add(self.clone());
    }
}

impl FileParse {
    /// Parses `text`, the contents of the file `file`.
    fn new(text: &str, file: &str) -> Self {
        let mut parse = FileParse {
            steps: Vec::new(),
            resources_seen: 0,
        };
        parse.text(text, file);
        parse
    }

    fn diag(&mut self, diagnostic: Diagnostic) {
        self.steps.push(Step::Diag(diagnostic));
    }

    fn text(&mut self, text: &str, file: &str) {
        for doc in split_documents(text) {
            let doc = Arc::new(doc);
            let value: serde_yaml::Value = match serde_yaml::from_str(&doc.text) {
                Ok(v) => v,
                Err(e) => {
                    // libyaml may notice the problem only at the end of the document: stay inside it.
                    let last = doc.text.lines().count().max(1);
                    let line = e.location().map(|l| l.line().min(last) + doc.offset);
                    let msg = e.to_string();
                    let msg = msg.split(" at line ").next().unwrap_or(&msg);
                    let advice =
                        format!("invalid YAML: {msg}; check the indentation and quoting here");
                    self.diag(Diagnostic::error(file, line, None, advice));
                    continue;
                }
            };
            match value.get("kind").and_then(|k| k.as_str()) {
                _ if value.is_null() => {}
                Some("List") => self.list(&doc, file, &value),
                _ => self.resource(&doc, file, FieldPath::root(), &value),
            }
        }
    }

    /// A Kubernetes `List`: each of its `items` is a resource.
    fn list(&mut self, doc: &Arc<Doc>, file: &str, value: &serde_yaml::Value) {
        let Some(items) = value.get("items").and_then(|i| i.as_sequence()) else {
            let line = locate::line_of(&doc.text, &FieldPath::root()).map(|l| l + doc.offset);
            let msg =
                "a `List` needs `items`, a list of resources; add them or remove the document";
            self.diag(Diagnostic::error(file, line, None, msg));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            self.resource(doc, file, FieldPath::root().key("items").index(i), item);
        }
    }

    /// One resource at `prefix` in `doc`: its kind and apiVersion checked, then its typed spec.
    fn resource(
        &mut self,
        doc: &Arc<Doc>,
        file: &str,
        prefix: FieldPath,
        value: &serde_yaml::Value,
    ) {
        self.resources_seen += 1;
        let line_of = |path: &FieldPath| {
            locate::line_of(&doc.text, &path.under(&prefix))
                .map_or(doc.offset + 1, |l| l + doc.offset)
        };
        let err = |path: FieldPath, msg: String| {
            Diagnostic::error(file, Some(line_of(&path)), Some(path.under(&prefix)), msg)
        };
        let Some(map) = value.as_mapping() else {
            let msg = "expected a resource: a mapping with apiVersion, kind, metadata and spec";
            self.diag(err(FieldPath::root(), msg.into()));
            return;
        };
        let kind_name = match map.get("kind").map(|k| k.as_str()) {
            Some(Some(k)) => k,
            Some(None) => {
                let msg = format!("`kind` must be a string: one of {}", Kind::supported());
                self.diag(err(FieldPath::root().key("kind"), msg));
                return;
            }
            None => {
                let msg = format!(
                    "missing field `kind`: add the resource's kind, one of {}",
                    Kind::supported()
                );
                self.diag(err(FieldPath::root(), msg));
                return;
            }
        };
        if kind_name == "ConfigMap" && map.get("apiVersion").and_then(|a| a.as_str()) == Some("v1")
        {
            self.config_map(doc, file, &prefix, value);
            return;
        }
        let Some(kind) = Kind::from_name(kind_name) else {
            let names = Kind::ALL.map(Kind::name);
            let hint = messages::closest(kind_name, &names)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            let msg = format!(
                "unknown kind `{kind_name}`: {hint}meshwork reads {} (and `List`s of them); remove this resource or \
                 move it out of the directory",
                Kind::supported()
            );
            self.diag(err(FieldPath::root().key("kind"), msg));
            return;
        };
        let api = map
            .get("apiVersion")
            .and_then(|a| a.as_str())
            .unwrap_or_default();
        if !kind.api_versions().contains(&api) {
            let path = if map.contains_key("apiVersion") {
                FieldPath::root().key("apiVersion")
            } else {
                FieldPath::root()
            };
            let shown = if api.is_empty() {
                "a missing or empty apiVersion".to_owned()
            } else {
                format!("`{api}`")
            };
            let (first, others) = kind.api_versions().split_first().unwrap_or((&"", &[]));
            let also = match others {
                [] => String::new(),
                _ => format!(" ({} also work)", others.join(", ")),
            };
            let msg = format!(
                "{shown} is not an API version of {kind}: write `apiVersion: {first}`{also}"
            );
            self.diag(err(path, msg));
            return;
        }
        match kind {
            Kind::ServiceEntry => self.typed::<ServiceEntry>(doc, file, prefix),
            Kind::WorkloadEntry => self.typed::<WorkloadEntry>(doc, file, prefix),
            Kind::VirtualService => self.typed::<VirtualService>(doc, file, prefix),
            Kind::DestinationRule => self.typed::<DestinationRule>(doc, file, prefix),
            Kind::PeerAuthentication => self.typed::<PeerAuthentication>(doc, file, prefix),
            Kind::AuthorizationPolicy => self.typed::<AuthorizationPolicy>(doc, file, prefix),
            Kind::WasmPlugin => self.typed::<WasmPlugin>(doc, file, prefix),
            Kind::Telemetry => self.typed::<Telemetry>(doc, file, prefix),
        }
    }

    /// Deserializes the resource at `prefix` as `Resource<S>`, and records it unless its name is taken.
    fn typed<S: Spec + Clone + Send + Sync + 'static>(
        &mut self,
        doc: &Arc<Doc>,
        file: &str,
        prefix: FieldPath,
    ) {
        let mut track = serde_path_to_error::Track::new();
        let de = serde_path_to_error::Deserializer::new(
            serde_yaml::Deserializer::from_str(&doc.text),
            &mut track,
        );
        let parsed = locate::at_path(de, &prefix, PhantomData::<Resource<S>>);
        let located = |resource: Resource<S>| Located {
            file: file.to_owned(),
            line: locate::line_of(&doc.text, &prefix).map_or(doc.offset + 1, |l| l + doc.offset),
            resource,
            doc: doc.clone(),
            prefix: prefix.clone(),
        };
        match parsed {
            Ok(Some(resource)) => self.steps.push(Step::Resource(Arc::new(located(resource)))),
            Ok(None) => {}
            Err(e) => {
                let field = FieldPath::from(&track.path());
                let line = e
                    .location()
                    .map(|l| l.line() + doc.offset)
                    .or_else(|| locate::line_of(&doc.text, &field).map(|l| l + doc.offset));
                let mut msg = messages::advise(&e.to_string());
                if msg.starts_with("missing field `name`")
                    && field.0.last() == Some(&Seg::Key("metadata".into()))
                {
                    msg =
                        "missing field `name`: every resource needs `metadata.name`; add it".into();
                }
                self.diag(Diagnostic::error(file, line, Some(field), msg));
            }
        }
    }
}

/// Accumulates resources and diagnostics over files.
#[derive(Default)]
struct Loader {
    loaded: Loaded,
    diags: Vec<Diagnostic>,
    /// (kind, namespace, name) → where it was first defined.
    seen: HashMap<(Kind, String, String), FirstDefinition>,
}

impl Loader {
    fn finish(self) -> Result<Loaded, Vec<Diagnostic>> {
        if self.diags.iter().any(Diagnostic::is_error) {
            Err(self.diags)
        } else {
            Ok(self.loaded)
        }
    }

    /// Parses `text` as the contents of the file `file` and adds what it holds.
    fn text(&mut self, text: &str, file: &str) {
        self.add_file(file, &FileParse::new(text, file));
    }

    /// Adds the resources and diagnostics of the file `file`, in document order.
    fn add_file(&mut self, file: &str, parse: &FileParse) {
        self.loaded.files.push(file.to_owned());
        self.loaded.resources_seen += parse.resources_seen;
        for step in &parse.steps {
            match step {
                Step::Resource(resource) => resource.add_to(self),
                Step::MeshConfig(config) => self.add_mesh_config(config),
                Step::Diag(diagnostic) => self.diags.push(diagnostic.clone()),
            }
        }
    }

    /// Adds the mesh config unless another ConfigMap `istio` gave one already.
    fn add_mesh_config(&mut self, config: &Arc<MeshConfigDoc>) {
        if let Some(first) = &self.loaded.mesh_config {
            let msg = format!(
                "a second mesh config (ConfigMap `istio-system/istio`): the first is at {}:{}; keep one",
                first.file, first.line
            );
            self.diags.push(Diagnostic::error(
                &config.file,
                Some(config.line),
                None,
                msg,
            ));
            return;
        }
        self.loaded.mesh_config = Some(config.clone());
    }

    /// Adds `res` unless its name is taken.
    fn add<S: Spec>(&mut self, res: Located<S>) {
        let meta = &res.metadata;
        let key = (S::KIND, meta.namespace.clone(), meta.name.clone());
        let name_path = FieldPath::root().key("metadata").key("name");
        if let Some(first) = self.seen.get(&key) {
            let (other_file, other_line) = (&first.file, first.line_of(&name_path));
            let msg = format!(
                "duplicate {} `{}/{}`: also defined at {other_file}:{other_line}; names are unique per kind \
                 and namespace, so rename or delete one of them",
                S::KIND,
                meta.namespace,
                meta.name
            );
            self.diags.push(res.error(name_path, msg));
            return;
        }
        let first = FirstDefinition {
            file: res.file.clone(),
            line: res.line,
            doc: res.doc.clone(),
            prefix: res.prefix.clone(),
        };
        self.seen.insert(key, first);
        S::collection(&mut self.loaded).push(res);
    }
}

#[cfg(test)]
mod tests;
