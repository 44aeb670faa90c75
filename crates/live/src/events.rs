//! Events to MQTT (`--mqtt mqtt://host:port`), in Frigate's style: topics
//! `peregrine/<stream>/state` (retained: connecting, live, reconnecting,
//! stopped, failed), `peregrine/<stream>/detections` (one summary per
//! analysed frame: counts per class) and `peregrine/<stream>/tracks`
//! (`start` when a track id first appears, `end` with its statistics).
//!
//! Publishing never blocks a stream: messages go to the client's bounded
//! queue and are dropped (counted) when it is full or the broker is away;
//! the client reconnects on its own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttc::{Client, MqttOptions, QoS};
use serde_json::Value;

use crate::stats::lock;
use crate::LiveError;

/// Messages queued towards the broker at most.
const QUEUE: usize = 1024;

/// A connection to an MQTT broker shared by every stream of a set.
pub struct Events {
    client: Client,
    stop: Arc<AtomicBool>,
    driver: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
    published: AtomicU64,
}

impl Events {
    /// `url`: `mqtt://host[:port]` (port 1883 by default).
    pub fn connect(url: &str) -> Result<Arc<Events>, LiveError> {
        let bad = |why: &str| LiveError::Config(format!("--mqtt {url}: {why}"));
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| bad("expected mqtt://host[:port]"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
            None => (rest, 1883),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let mut opts =
            MqttOptions::new(format!("peregrine-live-{}", std::process::id()), host, port);
        opts.set_keep_alive(Duration::from_secs(10));
        let (client, mut connection) = Client::new(opts, QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let driver = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || {
                for ev in connection.iter() {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    if ev.is_err() {
                        // Broker away: the next poll reconnects.
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            })
            .map_err(|e| bad(&format!("cannot start a thread: {e}")))?;
        Ok(Arc::new(Events {
            client,
            stop,
            driver: Mutex::new(Some(driver)),
            dropped: AtomicU64::new(0),
            published: AtomicU64::new(0),
        }))
    }

    /// Queues `payload` on `peregrine/<stream>/<kind>`.
    pub fn publish(&self, stream: &str, kind: &str, payload: &Value, retain: bool) {
        let topic = format!("peregrine/{stream}/{kind}");
        match self
            .client
            .try_publish(topic, QoS::AtMostOnce, retain, payload.to_string())
        {
            Ok(()) => self.published.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Messages handed to the client / dropped because its queue was full.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }

    /// Sends what is queued (waiting up to `grace`), then disconnects.
    pub fn close(&self, grace: Duration) {
        std::thread::sleep(grace);
        let _ = self.client.try_disconnect();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = lock(&self.driver).take() {
            let _ = d.join();
        }
    }
}
