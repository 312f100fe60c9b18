//! What loading produces: [`Loaded`], the resources by kind, each a [`Located`] resource that remembers its file,
//! line and document so that later findings can point at any of its fields.

use std::{ops::Deref, sync::Arc};

use serde::de::DeserializeOwned;

use super::super::{
    AuthorizationPolicy, DestinationRule, Kind, PeerAuthentication, Resource, ServiceEntry,
    Telemetry, VirtualService, WasmPlugin, WorkloadEntry,
    diagnostic::{Diagnostic, FieldPath},
    documents::Doc,
    locate,
};

/// A resource and where it was read.
#[derive(Clone, Debug)]
pub struct Located<S> {
    /// The file it was read from.
    pub file: String,
    /// The 1-based line its document (or `List` item) starts on.
    pub line: usize,
    /// The resource.
    pub resource: Resource<S>,
    pub(super) doc: Arc<Doc>,
    pub(super) prefix: FieldPath,
}

impl<S> Deref for Located<S> {
    type Target = Resource<S>;

    fn deref(&self) -> &Resource<S> {
        &self.resource
    }
}

impl<S> Located<S> {
    /// Where the resource is, for pointing findings at its fields.
    pub fn site(&self) -> Site<'_> {
        Site {
            file: &self.file,
            line: self.line,
            doc: &self.doc,
            prefix: &self.prefix,
        }
    }

    /// The path of `path` (relative to the resource) from the top of its YAML document: the same path, or under
    /// `items[N]` for an item of a `List`.
    pub fn field(&self, path: &FieldPath) -> FieldPath {
        self.site().field(path)
    }

    /// The line of `path` (relative to the resource), or of the deepest part of it that is written.
    pub fn line_of(&self, path: &FieldPath) -> usize {
        self.site().line_of(path)
    }

    /// An error about the field `path` of this resource.
    pub fn error(&self, path: FieldPath, message: impl Into<String>) -> Diagnostic {
        self.site().error(path, message)
    }

    /// A warning about the field `path` of this resource.
    pub fn warning(&self, path: FieldPath, message: impl Into<String>) -> Diagnostic {
        self.site().warning(path, message)
    }
}

/// Where a resource is: its file, line and document, whatever its kind.
#[derive(Clone, Copy, Debug)]
pub struct Site<'a> {
    /// The file.
    pub file: &'a str,
    /// The line the resource starts on.
    pub line: usize,
    pub(super) doc: &'a Doc,
    pub(super) prefix: &'a FieldPath,
}

impl Site<'_> {
    /// See [`Located::field`].
    pub fn field(&self, path: &FieldPath) -> FieldPath {
        path.under(self.prefix)
    }

    /// See [`Located::line_of`].
    pub fn line_of(&self, path: &FieldPath) -> usize {
        locate::line_of(&self.doc.text, &self.field(path))
            .map_or(self.line, |l| l + self.doc.offset)
    }

    /// See [`Located::error`].
    pub fn error(&self, path: FieldPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(
            self.file,
            Some(self.line_of(&path)),
            Some(self.field(&path)),
            message,
        )
    }

    /// See [`Located::warning`].
    pub fn warning(&self, path: FieldPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic::warning(
            self.file,
            Some(self.line_of(&path)),
            Some(self.field(&path)),
            message,
        )
    }
}

/// Everything read, by kind.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// ServiceEntries.
    pub service_entries: Vec<Located<ServiceEntry>>,
    /// WorkloadEntries.
    pub workload_entries: Vec<Located<WorkloadEntry>>,
    /// VirtualServices.
    pub virtual_services: Vec<Located<VirtualService>>,
    /// DestinationRules.
    pub destination_rules: Vec<Located<DestinationRule>>,
    /// PeerAuthentications.
    pub peer_authentications: Vec<Located<PeerAuthentication>>,
    /// AuthorizationPolicies.
    pub authorization_policies: Vec<Located<AuthorizationPolicy>>,
    /// WasmPlugins.
    pub wasm_plugins: Vec<Located<WasmPlugin>>,
    /// Telemetry resources.
    pub telemetries: Vec<Located<Telemetry>>,
    /// The mesh config (ConfigMap `istio-system/istio`), if given.
    pub mesh_config: Option<Arc<super::MeshConfigDoc>>,
    /// The files read, in order.
    pub files: Vec<String>,
    /// Resources met, including those that could not be read.
    pub resources_seen: usize,
}

impl Loaded {
    /// How many resources were read successfully.
    pub fn len(&self) -> usize {
        self.service_entries.len()
            + self.workload_entries.len()
            + self.virtual_services.len()
            + self.destination_rules.len()
            + self.peer_authentications.len()
            + self.authorization_policies.len()
            + self.wasm_plugins.len()
            + self.telemetries.len()
            + usize::from(self.mesh_config.is_some())
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A spec type of one kind, with its collection in [`Loaded`].
pub trait Spec: DeserializeOwned + Sized {
    /// Its kind.
    const KIND: Kind;
    /// Its collection.
    fn collection(loaded: &mut Loaded) -> &mut Vec<Located<Self>>;
}

macro_rules! specs {
    ($($ty:ident => $field:ident),* $(,)?) => {$(
        impl Spec for $ty {
            const KIND: Kind = Kind::$ty;
            fn collection(loaded: &mut Loaded) -> &mut Vec<Located<Self>> {
                &mut loaded.$field
            }
        }
    )*};
}

specs! {
    ServiceEntry => service_entries,
    WorkloadEntry => workload_entries,
    VirtualService => virtual_services,
    DestinationRule => destination_rules,
    PeerAuthentication => peer_authentications,
    AuthorizationPolicy => authorization_policies,
    WasmPlugin => wasm_plugins,
    Telemetry => telemetries,
}
