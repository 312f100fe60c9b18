//! Where access log lines go: one writer thread per destination (stdout, stderr or a file), fed by a bounded queue.
//!
//! Workers format a line and `try_send` it; a full queue drops the line and the worker counts it
//! (`access_log_dropped`), so a slow disk or a stuck pipe never blocks a request. The writer thread wakes every
//! [`FLUSH_EVERY`] (or early, when the queue is half full), writes whatever is queued through a `BufWriter` and
//! flushes: a request never pays for waking the writer or for a `write(2)` of its own. A file is opened for append; it is reopened when
//! `SIGUSR1` arrives ([`reopen_all`]) or when the path stops naming the open file (logrotate moved it away), checked
//! once a second. FIFOs are opened non-blocking, so a FIFO without a reader does not hang the writer: it retries each
//! second and counts the lines it could not write.
//!
//! Destinations are shared across config snapshots ([`Sinks`]): a reload that keeps a path keeps its writer, and the
//! writer ends (after writing what is queued) when no snapshot uses its path any more. A writer thread starts on the
//! first line, so validating a config starts nothing.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufWriter, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc::{self, SyncSender, TryRecvError, TrySendError},
    },
    time::{Duration, Instant},
};

/// Lines queued per destination before new ones are dropped.
pub const QUEUE_LINES: usize = 4096;
/// How often the writer thread writes what is queued.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Queued lines at which a worker wakes the writer early.
const WAKE_AT: usize = QUEUE_LINES / 2;
/// How often the writer checks whether the file was moved, and retries a file it could not open.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Bumped by `SIGUSR1`: every writer reopens its file.
static REOPEN: AtomicU64 = AtomicU64::new(0);

/// Asks every writer to reopen its file (what `SIGUSR1` does).
pub fn reopen_all() {
    REOPEN.fetch_add(1, Ordering::Relaxed);
}

/// Reopens the access log files on each `SIGUSR1` until `stop` turns true.
pub async fn reopen_on_sigusr1(mut stop: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut usr1 = match signal(SignalKind::user_defined1()) {
        Ok(s) => s,
        Err(e) => {
            return tracing::warn!(error = %e, "cannot listen for SIGUSR1; access logs reopen only when moved");
        }
    };
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: reopening access log files");
                reopen_all();
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The destinations in use, by path; shared by every snapshot of a proxy.
#[derive(Debug, Default)]
pub struct Sinks {
    open: Mutex<HashMap<Arc<str>, Weak<Sink>>>,
}

impl Sinks {
    /// The destination for `path`: the one already in use, or a new one.
    pub fn get(&self, path: &str) -> Arc<Sink> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, s| s.strong_count() > 0);
        if let Some(s) = open.get(path).and_then(Weak::upgrade) {
            return s;
        }
        let sink = Arc::new(Sink {
            path: path.into(),
            queue: OnceLock::new(),
            queued: Arc::new(AtomicUsize::new(0)),
            lost: Arc::new(AtomicU64::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
        });
        open.insert(path.into(), Arc::downgrade(&sink));
        sink
    }
}

/// One destination and its writer thread.
#[derive(Debug)]
pub struct Sink {
    path: Arc<str>,
    /// The queue and the writer thread (absent if it could not start).
    queue: OnceLock<(SyncSender<String>, Option<std::thread::Thread>)>,
    /// Lines in the queue.
    queued: Arc<AtomicUsize>,
    /// Lines the writer thread could not write (no file, a write error), not yet counted by a worker.
    lost: Arc<AtomicU64>,
    /// Set when the sink goes away, so a writer waiting on a full pipe gives up.
    closed: Arc<AtomicBool>,
}

impl Sink {
    /// The destination path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Queues `line` without waiting; `false` if the queue is full (or the writer is gone) and the line is dropped.
    pub fn send(&self, line: String) -> bool {
        let (queue, writer) = self.queue.get_or_init(|| self.start());
        match queue.try_send(line) {
            Ok(()) => {
                if self.queued.fetch_add(1, Ordering::Relaxed) + 1 == WAKE_AT
                    && let Some(w) = writer
                {
                    w.unpark();
                }
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Lines the writer thread lost since the last call.
    pub fn take_lost(&self) -> u64 {
        if self.lost.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.lost.swap(0, Ordering::Relaxed)
    }

    fn start(&self) -> (SyncSender<String>, Option<std::thread::Thread>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        let writer = Writer {
            path: self.path.clone(),
            queued: self.queued.clone(),
            lost: self.lost.clone(),
            closed: self.closed.clone(),
            out: None,
            opened: None,
            checked: Instant::now(),
            generation: REOPEN.load(Ordering::Relaxed),
        };
        let spawned = std::thread::Builder::new()
            .name("meshwork-access-log".into())
            .spawn(move || writer.run(rx));
        match spawned {
            Ok(handle) => (tx, Some(handle.thread().clone())),
            Err(e) => {
                // The receiver is gone with the closure: every line counts as dropped.
                tracing::error!(path = %self.path, error = %e, "cannot start the access log writer");
                (tx, None)
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Some((_, Some(writer))) = self.queue.get() {
            writer.unpark();
        }
    }
}

/// The writer thread's state.
struct Writer {
    path: Arc<str>,
    queued: Arc<AtomicUsize>,
    lost: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
    out: Option<BufWriter<Target>>,
    /// (device, inode) of the open file.
    opened: Option<(u64, u64)>,
    checked: Instant,
    generation: u64,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<String>) {
        self.open();
        loop {
            std::thread::park_timeout(FLUSH_EVERY);
            self.maybe_reopen();
            let (mut batch, mut failed, mut ended) = (0, false, false);
            loop {
                match rx.try_recv() {
                    Ok(line) => {
                        batch += 1;
                        failed |= self.write(&line);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        ended = true;
                        break;
                    }
                }
            }
            self.queued.fetch_sub(batch, Ordering::Relaxed);
            if batch > 0 && (failed || self.flush().is_err()) {
                self.lose(batch as u64);
            }
            if ended {
                break;
            }
        }
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
    }

    /// Buffers one line; `true` if it could not be.
    fn write(&mut self, line: &str) -> bool {
        match self.out.as_mut() {
            Some(out) => out.write_all(line.as_bytes()).is_err(),
            None => true,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    /// Counts lines that did not make it, and drops the output after an error so it is reopened.
    fn lose(&mut self, n: u64) {
        self.lost.fetch_add(n, Ordering::Relaxed);
        if self.out.take().is_some() {
            tracing::warn!(path = %self.path, "access log write failed; reopening");
            self.opened = None;
        }
    }

    /// Reopens after `SIGUSR1`, and (once a second) when the path names another file or none, or nothing is open.
    fn maybe_reopen(&mut self) {
        let generation = REOPEN.load(Ordering::Relaxed);
        if generation != self.generation {
            self.generation = generation;
            self.open();
            return;
        }
        if self.checked.elapsed() < CHECK_EVERY {
            return;
        }
        self.checked = Instant::now();
        let Some(opened) = self.opened else {
            if self.out.is_none() {
                self.open();
            }
            return;
        };
        let now = std::fs::metadata(&*self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now != Some(opened) {
            tracing::info!(path = %self.path, "access log file moved or removed; reopening");
            self.open();
        }
    }

    fn open(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
        self.out = None;
        self.opened = None;
        let target = match &*self.path {
            "/dev/stdout" => Target::Stdout,
            "/dev/stderr" => Target::Stderr,
            path => {
                // Non-blocking: a FIFO without a reader fails now (ENXIO) instead of hanging the writer.
                let opened = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path);
                match opened {
                    Ok(file) => {
                        self.opened = file.metadata().ok().map(|m| (m.dev(), m.ino()));
                        Target::File(Patient {
                            file,
                            closed: self.closed.clone(),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(path, error = %e, "cannot open the access log; retrying every second");
                        return;
                    }
                }
            }
        };
        self.out = Some(BufWriter::with_capacity(64 * 1024, target));
    }
}

/// A writer thread's destination.
enum Target {
    Stdout,
    Stderr,
    File(Patient),
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Target::Stdout => io::stdout().write(buf),
            Target::Stderr => io::stderr().write(buf),
            Target::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Target::Stdout => io::stdout().flush(),
            Target::Stderr => io::stderr().flush(),
            Target::File(f) => f.file.flush(),
        }
    }
}

/// A file opened non-blocking, written as if blocking: a full pipe is waited out (the writer thread is the only one
/// waiting) until the sink goes away.
struct Patient {
    file: File,
    closed: Arc<AtomicBool>,
}

impl Patient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.file.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.closed.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => return r,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshwork-access-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("access.log")
    }

    #[test]
    fn appends_and_follows_a_moved_file() {
        let path = temp("moved");
        let sinks = Sinks::default();
        let sink = sinks.get(path.to_str().expect("utf-8"));
        assert!(Arc::ptr_eq(
            &sink,
            &sinks.get(path.to_str().expect("utf-8"))
        ));
        assert!(sink.send("one\n".into()));
        wait_for("the first line", || {
            std::fs::read_to_string(&path).unwrap_or_default() == "one\n"
        });
        let moved = path.with_extension("1");
        std::fs::rename(&path, &moved).expect("rename");
        // Lines sent before the writer notices the move still go to the moved file; send until the new file appears.
        wait_for("the reopened file", || {
            assert!(sink.send("two\n".into()));
            std::thread::sleep(Duration::from_millis(50));
            std::fs::read_to_string(&path).is_ok_and(|s| s.contains("two\n"))
        });
        assert!(
            std::fs::read_to_string(&moved)
                .expect("moved")
                .starts_with("one\n")
        );
        assert_eq!(sink.take_lost(), 0);
    }

    #[test]
    fn a_fifo_without_reader_loses_lines_without_blocking() {
        let path = temp("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let sink = Sinks::default().get(path.to_str().expect("utf-8"));
        let started = Instant::now();
        for _ in 0..10 {
            assert!(sink.send("line\n".into()));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let mut lost = 0;
        wait_for("lines counted as lost", || {
            lost += sink.take_lost();
            lost == 10
        });
    }

    #[test]
    fn a_full_queue_drops() {
        let path = temp("full");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        // A reader that never reads: the pipe fills, the writer waits, the queue fills, sends fail.
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect("reader");
        let sink = Sinks::default().get(path.to_str().expect("utf-8"));
        let line = "x".repeat(1000) + "\n";
        let sent = (0..QUEUE_LINES + 200)
            .filter(|_| sink.send(line.clone()))
            .count();
        assert!(sent < QUEUE_LINES + 200, "{sent}");
    }
}
