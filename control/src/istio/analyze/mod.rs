//! An `istioctl analyze` for meshwork: checks the loaded resources without applying them. Errors are values Istio
//! (or meshwork's policy filters) would refuse: weights that do not add up to 100, percentages outside 0–100, invalid
//! regexes, durations, statuses, ports, hashes and module URLs. Warnings are references that lead nowhere (a route to
//! a host no ServiceEntry defines, a subset no DestinationRule defines, selectors that select nothing, policies Istio
//! ignores) and Istio features meshwork does not apply yet. Pure: the same resources give the same findings, sorted by file and line.

mod http;
mod refs;
mod telemetry;
mod unsupported;
mod values;

use super::{Diagnostic, FieldPath, Located, load::Loaded, load::Site};

/// Findings about one resource.
pub struct Out<'a> {
    site: Site<'a>,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Out<'a> {
    /// Findings go to `diags`, pointed at fields of the resource at `site`.
    pub fn new(site: Site<'a>, diags: &'a mut Vec<Diagnostic>) -> Self {
        Out { site, diags }
    }

    /// An error about `path` (relative to the resource).
    pub fn error(&mut self, path: FieldPath, message: impl Into<String>) {
        self.diags.push(self.site.error(path, message));
    }

    /// A warning about `path` (relative to the resource).
    pub fn warning(&mut self, path: FieldPath, message: impl Into<String>) {
        self.diags.push(self.site.warning(path, message));
    }
}

/// Findings go to `diags`, pointed at fields of `loc`.
fn out<'a, S>(loc: &'a Located<S>, diags: &'a mut Vec<Diagnostic>) -> Out<'a> {
    Out::new(loc.site(), diags)
}

/// Every finding about `loaded`, sorted by file and line.
pub fn analyze(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let d = &mut diags;
    for r in &loaded.service_entries {
        values::service_entry(&mut out(r, d), r);
    }
    for r in &loaded.workload_entries {
        values::endpoint_ports(&mut out(r, d), FieldPath::root().key("spec"), &r.spec);
    }
    for r in &loaded.virtual_services {
        http::virtual_service(&mut out(r, d), r);
        unsupported::virtual_service(&mut out(r, d), r);
    }
    for r in &loaded.destination_rules {
        values::destination_rule(&mut out(r, d), r);
        unsupported::destination_rule(&mut out(r, d), r);
    }
    for r in &loaded.peer_authentications {
        values::peer_authentication(&mut out(r, d), r);
    }
    for r in &loaded.authorization_policies {
        values::authorization_policy(&mut out(r, d), r);
    }
    for r in &loaded.wasm_plugins {
        values::wasm_plugin(&mut out(r, d), r);
    }
    refs::check(loaded, d);
    telemetry::check(loaded, &refs::known_host(loaded), d);
    diags.sort_by(|a, b| (&a.file, a.line, a.severity).cmp(&(&b.file, b.line, b.severity)));
    diags
}

#[cfg(test)]
mod tests;
