//! Shutdown: Ctrl-C or SIGTERM, or a handle tests trigger.

use tokio::sync::watch;

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what Kubernetes sends).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A shutdown that can be triggered once and awaited by many.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Not yet triggered.
    pub fn new() -> Self {
        Self {
            sender: std::sync::Arc::new(watch::channel(false).0),
        }
    }

    /// Asks everything waiting on [`Shutdown::triggered`] to stop.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub fn triggered(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }

    /// Triggers this shutdown when the process receives Ctrl-C or SIGTERM.
    pub fn on_signal(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("shutdown signal received");
            this.trigger();
        });
    }
}
