//! Foreign functions: the host's extension point, reached with `proxy_call_foreign_function(name, args)`.
//!
//! A process-wide registry of named host functions. Later mechanisms (upstream selection, retries, delays) register
//! here; an unknown name answers `NotFound`, which the SDK reports to the filter as an error it can handle.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use super::stream::StreamRef;

/// What a foreign function can see of its caller.
pub struct Ctx {
    /// The calling plugin.
    pub plugin: Arc<str>,
    /// The request the call was made for, if made from a stream context.
    pub stream: Option<StreamRef>,
    /// The proxy worker running the call (`None` for the canary and the test harness): its config snapshot, its
    /// timers.
    pub worker: Option<std::rc::Weak<crate::server::worker::WorkerCtx>>,
    /// The test harness's clock, delays and clusters, when the call comes from a harness VM.
    pub test: Option<super::state::TestHooks>,
}

/// Why a foreign function refused; becomes the hostcall's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Refusal {
    /// The arguments are not acceptable (`BadArgument`).
    BadArgument = 2,
    /// The arguments could not be decoded (`SerializationFailure`).
    SerializationFailure = 3,
    /// The host could not do it (`InternalFailure`).
    InternalFailure = 10,
}

/// A host function: argument bytes in, result bytes out.
pub type ForeignFn = Arc<dyn Fn(&Ctx, &[u8]) -> Result<Vec<u8>, Refusal> + Send + Sync>;

static REGISTRY: RwLock<Option<HashMap<String, ForeignFn>>> = RwLock::new(None);

/// Registers `f` under `name`, replacing any earlier one.
pub fn register(name: &str, f: ForeignFn) {
    let mut r = REGISTRY.write().unwrap_or_else(|p| p.into_inner());
    r.get_or_insert_with(HashMap::new)
        .insert(name.to_string(), f);
}

/// A function found by name: one of meshwork's own, or one registered in-process.
pub enum Found {
    /// meshwork's own (`meshwork.*`).
    Builtin(super::mechanisms::Builtin),
    /// Registered with [`register`].
    Registered(ForeignFn),
}

impl Found {
    /// Calls it.
    pub fn call(&self, ctx: &Ctx, args: &[u8]) -> Result<Vec<u8>, Refusal> {
        match self {
            Found::Builtin(f) => f(ctx, args),
            Found::Registered(f) => f(ctx, args),
        }
    }
}

/// The function called `name`: meshwork's own first, then registered ones.
pub fn lookup(name: &str) -> Option<Found> {
    if let Some(f) = super::mechanisms::builtin(name) {
        return Some(Found::Builtin(f));
    }
    let r = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
    r.as_ref()?.get(name).cloned().map(Found::Registered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_table() {
        register("test.echo", Arc::new(|_, a| Ok(a.to_vec())));
        register("test.refuse", Arc::new(|_, _| Err(Refusal::BadArgument)));
        let ctx = Ctx {
            plugin: "p".into(),
            stream: None,
            worker: None,
            test: None,
        };
        let cases: &[(&str, Option<Result<Vec<u8>, Refusal>>)] = &[
            ("test.echo", Some(Ok(b"hi".to_vec()))),
            ("test.refuse", Some(Err(Refusal::BadArgument))),
            ("test.missing", None),
        ];
        for (name, want) in cases {
            let got = lookup(name).map(|f| f.call(&ctx, b"hi"));
            assert_eq!(&got, want, "{name}");
        }
    }
}
