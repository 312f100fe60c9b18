//! Waiting for the process to be told to stop: SIGTERM or SIGINT (Ctrl-C).

/// Resolves when SIGTERM or SIGINT arrives (logging which); fails only if the handlers cannot be installed.
pub async fn terminated() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => { r?; tracing::info!("SIGINT received") }
    }
    Ok(())
}
