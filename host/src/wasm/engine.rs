//! The process's one wasmtime [`Engine`], its linker, and compiled modules cached by content hash.
//!
//! Compilation happens when a config is applied (on the thread applying it, never on a request worker). A module is
//! compiled once per SHA-256: in memory while any snapshot uses it, and on disk as a precompiled artifact keyed by the
//! hash and the engine's compatibility fingerprint, so a restart loads it in well under a millisecond instead of
//! compiling again. Instances come from the pooling allocator through an [`InstancePre`], so creating one is a few
//! microseconds.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};

use super::{abi, error::LoadError, state::VmState};

/// How often the epoch advances; CPU deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The largest linear memory any plugin may ask for.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;
/// Bytes of precompiled artifacts kept on disk; the oldest go first.
const DISK_BYTES: u64 = 256 << 20;
/// Modules kept alive after their last snapshot let go of them.
const RECENT: usize = 16;
/// Instances the pool holds (all plugins × workers × versions still draining).
const POOL_INSTANCES: u32 = 1000;

/// A compiled, linked module ready to instantiate.
pub struct Code {
    /// SHA-256 of the module bytes.
    pub sha256: [u8; 32],
    /// Size of the module in bytes.
    pub size: usize,
    /// Pre-linked instance template.
    pub pre: InstancePre<VmState>,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code")
            .field("sha256", &hex(&self.sha256))
            .field("size", &self.size)
            .finish()
    }
}

/// The engine, the linker with every hostcall, and the module caches.
pub struct Runtime {
    engine: Engine,
    linker: Linker<VmState>,
    loaded: Mutex<HashMap<[u8; 32], Weak<Code>>>,
    /// The last few modules loaded, kept alive so that validating a config and then applying it (two snapshots
    /// built one after the other) compile each module once even without the disk cache.
    recent: Mutex<std::collections::VecDeque<Arc<Code>>>,
    disk: Option<PathBuf>,
    fingerprint: String,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

impl Runtime {
    /// The process's runtime, created on first use.
    pub fn get() -> Result<&'static Runtime, LoadError> {
        RUNTIME
            .get_or_init(|| Runtime::new().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| LoadError::Engine(e.clone()))
    }

    fn new() -> wasmtime::Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // `perf` can name the plugins' compiled functions when asked (docs/filters.md, "Profiling a filter").
        if std::env::var_os("MESHWORK_WASM_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(POOL_INSTANCES)
            .total_memories(POOL_INSTANCES)
            .total_tables(POOL_INSTANCES)
            .max_memory_size(MAX_MEMORY_BYTES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = match Engine::new(&config) {
            Ok(engine) => engine,
            Err(e) => {
                // Some sandboxes refuse the pool's address-space reservation; instantiation is slower without it.
                tracing::warn!(error = %e, "wasm: pooling allocator unavailable; using on-demand allocation");
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                Engine::new(&config)?
            }
        };
        let linker = abi::linker(&engine)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("meshwork-wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let fingerprint = format!("{:016x}", h.finish());
        Ok(Runtime {
            engine,
            linker,
            loaded: Mutex::default(),
            recent: Mutex::default(),
            disk: cache_dir(),
            fingerprint,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or finds) `bytes`, checking `sha256` when given and the module's proxy-wasm ABI.
    pub fn load(&self, bytes: &[u8], want_sha256: Option<&str>) -> Result<Arc<Code>, LoadError> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(want) = want_sha256
            && !want.eq_ignore_ascii_case(&hex(&sha256))
        {
            return Err(LoadError::Sha256 {
                want: want.to_string(),
                got: hex(&sha256),
            });
        }
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(code) = loaded.get(&sha256).and_then(Weak::upgrade) {
            return Ok(code);
        }
        let module = self.compile(bytes, &sha256)?;
        abi::check_module(&module)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let code = Arc::new(Code {
            sha256,
            size: bytes.len(),
            pre,
        });
        loaded.retain(|_, w| w.strong_count() > 0);
        loaded.insert(sha256, Arc::downgrade(&code));
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_back(code.clone());
        if recent.len() > RECENT {
            recent.pop_front();
        }
        Ok(code)
    }

    fn compile(&self, bytes: &[u8], sha256: &[u8; 32]) -> Result<Module, LoadError> {
        let path = self
            .disk
            .as_ref()
            .map(|d| d.join(format!("{}-{}.cwasm", hex(sha256), self.fingerprint)));
        if let Some(path) = &path
            && let Ok(artifact) = std::fs::read(path)
        {
            // SAFETY: the artifact was written by `Module::serialize` of an engine with the same compatibility
            // fingerprint (it is in the file name) into meshwork's own cache directory, and written atomically
            // (temp file + rename), so it is a complete artifact we produced; wasmtime also checks its header and
            // version before using it.
            #[allow(
                unsafe_code,
                reason = "loading our own precompiled artifact; see SAFETY"
            )]
            match unsafe { Module::deserialize(&self.engine, &artifact) } {
                Ok(module) => return Ok(module),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "wasm: ignoring unusable cached artifact")
                }
            }
        }
        let started = std::time::Instant::now();
        let module =
            Module::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        tracing::info!(sha256 = %hex(sha256), ms = started.elapsed().as_millis() as u64, "wasm: module compiled");
        if let Some(path) = &path {
            store_artifact(path, &module);
        }
        Ok(module)
    }
}

fn store_artifact(path: &std::path::Path, module: &Module) {
    let write = || -> std::io::Result<()> {
        let bytes = module.serialize().map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            // Artifacts are native code: only the proxy's own user may write where they are loaded from.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::debug!(path = %path.display(), error = %e, "wasm: cannot cache the compiled module on disk");
    }
    if let Some(dir) = path.parent() {
        evict(dir, DISK_BYTES);
    }
}

/// Keeps the newest artifacts in `dir` (by modification time) up to `budget` bytes and deletes the rest.
fn evict(dir: &std::path::Path, budget: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut artifacts: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    artifacts.sort_by_key(|a| std::cmp::Reverse(a.0));
    let mut kept = 0u64;
    for (_, len, path) in artifacts {
        kept += len;
        if kept > budget {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `MESHWORK_CACHE_DIR` (`off` disables), else `$XDG_CACHE_HOME/meshwork`, else `~/.cache/meshwork`; then `/wasm`.
fn cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("MESHWORK_CACHE_DIR") {
        Some(v) if v == "off" => return None,
        Some(v) => PathBuf::from(v),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(x) => PathBuf::from(x).join("meshwork"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/meshwork"),
        },
    };
    Some(base.join("wasm"))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_newest_artifacts() {
        let dir = std::env::temp_dir().join(format!("meshwork-evict-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let base = std::time::SystemTime::now() - Duration::from_secs(100);
        for i in 0..5u64 {
            let p = dir.join(format!("{i}.cwasm"));
            std::fs::write(&p, b"x").expect("write");
            let f = std::fs::File::options().write(true).open(&p).expect("open");
            f.set_modified(base + Duration::from_secs(i))
                .expect("mtime");
        }
        std::fs::write(dir.join("other.txt"), b"x").expect("write");
        evict(&dir, 2);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["3.cwasm", "4.cwasm", "other.txt"]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn hex_table() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
