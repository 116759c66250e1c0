//! The thread of one `[[metadata.kubernetes]]`: runs the watcher of
//! `trawl_cloud::kubernetes` and applies what it reports to the index
//! (see the module header of `cloud`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use trawl_cloud::kubernetes::{KubernetesSourceConfig, Report, watch_until};

use super::CloudHorizon;
use crate::metadata_log::apply_events;
use crate::worker::Context;

/// Errors printed before only every 100th is.
const PRINTED_MAX: u64 = 10;

/// A running `[[metadata.kubernetes]]`: its thread.
#[derive(Debug)]
pub struct KubernetesMetadataSource {
    handle: JoinHandle<()>,
}

impl KubernetesMetadataSource {
    /// Starts watching: registers the cluster with `horizon` (so the
    /// horizon waits for its first complete list) and returns at once.
    pub fn start(
        cx: Arc<Context>,
        config: KubernetesSourceConfig,
        horizon: Arc<CloudHorizon>,
        stop: Arc<AtomicBool>,
    ) -> Result<KubernetesMetadataSource, String> {
        config.validate()?;
        let name = config.name();
        horizon.register(&name);
        let handle = std::thread::Builder::new()
            .name("trawl-kubernetes".into())
            .spawn(move || {
                let result = watch_until(&config, &stop, |report| {
                    take(&cx, &horizon, &name, report);
                });
                if let Err(error) = result {
                    eprintln!("trawl: {error}: the cluster's pods are not watched");
                }
            })
            .map_err(|e| format!("metadata.kubernetes: starting its thread: {e}"))?;
        Ok(KubernetesMetadataSource { handle })
    }

    /// The thread (it ends once `stop` is set).
    pub fn into_thread(self) -> JoinHandle<()> {
        self.handle
    }
}

/// Applies or counts one report of the watcher.
fn take(cx: &Context, horizon: &CloudHorizon, name: &str, report: Report) {
    let stats = &cx.stats.cloud;
    match report {
        Report::Events(events) => {
            let applied = apply_events(cx, &mut cx.index_write(), &events, None);
            stats.add(name, "events", applied as u64);
        }
        Report::Seen(at) => {
            if let Some(t) = horizon.seen(name, at) {
                cx.index_write().advance_horizon(t);
            }
            stats.set(name, "seen_at_seconds", u64::try_from(at).unwrap_or(0));
        }
        Report::Relisted => stats.add(name, "relists", 1),
        Report::WatchEvents(n) => stats.add(name, "watch_events", n),
        Report::Error(message) => {
            stats.add(name, "poll_errors", 1);
            let n = stats.get(name, "poll_errors");
            if n <= PRINTED_MAX || n.is_multiple_of(100) {
                eprintln!("trawl: {name}: {message} (retried)");
            }
        }
    }
}
