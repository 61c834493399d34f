//! The Prometheus metrics (DESIGN.md §6), kept in one registry that lives
//! as long as the server, so counters keep counting across SIGHUP reloads.
//!
//! The request path never touches the registry's maps: a [`GroupMetrics`]
//! holds handles (shared atomics) resolved once per group when a front is
//! built; the gauges (queue depth, busy and idle threads) are read from the
//! running groups when `/metrics` is scraped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::DurationHistogram;
use super::GroupView;

/// The `group` label of requests no group answered (404, front errors,
/// static files).
pub const NO_GROUP: &str = "-";

/// Latency buckets, in seconds: 1 ms … about 65 s.
const DURATION_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
    120.0,
];

/// Queue-wait buckets, in seconds: 0.1 ms … 60 s.
const QUEUE_BUCKETS: [f64; 14] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 60.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    group: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScaleLabels {
    group: String,
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestartLabels {
    group: String,
    reason: String,
}

/// The server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    duration: Family<GroupLabel, DurationHistogram, fn() -> DurationHistogram>,
    queue_wait: Family<GroupLabel, DurationHistogram, fn() -> DurationHistogram>,
    bytes_in: Family<GroupLabel, Counter>,
    bytes_out: Family<GroupLabel, Counter>,
    restarts: Family<RestartLabels, Counter>,
    queue_depth: Family<GroupLabel, Gauge>,
    busy: Family<GroupLabel, Gauge>,
    idle: Family<GroupLabel, Gauge>,
    processes: Family<GroupLabel, Gauge>,
    target: Family<GroupLabel, Gauge>,
    scale_events: Family<ScaleLabels, Counter>,
    /// Serialises scrapes: the gauges are set, then encoded.
    scrape: Mutex<()>,
    /// The restart counts again, by group and reason, for `/status` (the
    /// family cannot be listed). Restarts are rare: a lock is fine.
    restart_counts: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

/// The status classes requests are counted by.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The class label of an HTTP status code.
pub fn status_class(code: u16) -> &'static str {
    match code {
        100..=199 => CLASSES[0],
        200..=299 => CLASSES[1],
        300..=399 => CLASSES[2],
        400..=499 => CLASSES[3],
        _ => CLASSES[4],
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "oxwsgi_requests",
            "Requests answered, by group and status class",
            requests.clone(),
        );
        let duration = Family::<GroupLabel, DurationHistogram, _>::new_with_constructor(
            (|| DurationHistogram::new(&DURATION_BUCKETS)) as fn() -> DurationHistogram,
        );
        let queue_wait = Family::<GroupLabel, DurationHistogram, _>::new_with_constructor(
            (|| DurationHistogram::new(&QUEUE_BUCKETS)) as fn() -> DurationHistogram,
        );
        registry.register(
            "oxwsgi_request_duration_seconds",
            "Time from the request head to the response head, by group",
            duration.clone(),
        );
        registry.register(
            "oxwsgi_queue_wait_seconds",
            "Time requests waited in the group's queue for a free thread",
            queue_wait.clone(),
        );
        let bytes_in = Family::<GroupLabel, Counter>::default();
        registry.register(
            "oxwsgi_request_body_bytes",
            "Request body bytes received, by group",
            bytes_in.clone(),
        );
        let bytes_out = Family::<GroupLabel, Counter>::default();
        registry.register(
            "oxwsgi_response_body_bytes",
            "Response body bytes sent, by group",
            bytes_out.clone(),
        );
        let restarts = Family::<RestartLabels, Counter>::default();
        registry.register(
            "oxwsgi_process_restarts",
            "Daemon processes replaced, by group and reason",
            restarts.clone(),
        );
        let queue_depth = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "oxwsgi_queue_depth",
            "Requests waiting for a free thread, by group",
            queue_depth.clone(),
        );
        let busy = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "oxwsgi_busy_threads",
            "Daemon threads serving a request, by group",
            busy.clone(),
        );
        let idle = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "oxwsgi_idle_threads",
            "Daemon threads ready for a request, by group",
            idle.clone(),
        );
        let processes = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "oxwsgi_ready_processes",
            "Daemon processes up and serving, by group",
            processes.clone(),
        );
        let target = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "oxwsgi_target_processes",
            "Daemon processes the group aims at (an elastic group's scaler target), by group",
            target.clone(),
        );
        let scale_events = Family::<ScaleLabels, Counter>::default();
        registry.register(
            "oxwsgi_scale_events",
            "Times an elastic group grew (up) or shrank (down), by group and direction",
            scale_events.clone(),
        );
        Self {
            registry,
            target,
            scale_events,
            requests,
            duration,
            queue_wait,
            bytes_in,
            bytes_out,
            restarts,
            queue_depth,
            busy,
            idle,
            processes,
            scrape: Mutex::new(()),
            restart_counts: Mutex::new(BTreeMap::new()),
        }
    }

    /// The handles the request path of `group` records into.
    pub fn group(&self, group: &str) -> GroupMetrics {
        let label = GroupLabel {
            group: group.to_owned(),
        };
        let requests = CLASSES.map(|status| {
            self.requests.get_or_create_owned(&StatusLabels {
                group: group.to_owned(),
                status,
            })
        });
        GroupMetrics {
            requests: Arc::new(requests),
            duration: self.duration.get_or_create_owned(&label),
            queue_wait: self.queue_wait.get_or_create_owned(&label),
            bytes_in: self.bytes_in.get_or_create_owned(&label),
            bytes_out: self.bytes_out.get_or_create_owned(&label),
        }
    }

    /// Counts `count` restarts of `group`'s processes for `reason`.
    pub fn restarted(&self, group: &str, reason: &str, count: u64) {
        if let Ok(mut counts) = self.restart_counts.lock() {
            *counts
                .entry(group.to_owned())
                .or_default()
                .entry(reason.to_owned())
                .or_default() += count;
        }
        self.restarts
            .get_or_create(&RestartLabels {
                group: group.to_owned(),
                reason: reason.to_owned(),
            })
            .inc_by(count);
    }

    /// Counts one scale event of `group` (`direction`: `up` or `down`).
    /// A scale-down is not a restart.
    pub fn scaled(&self, group: &str, direction: &'static str) {
        self.scale_events
            .get_or_create(&ScaleLabels {
                group: group.to_owned(),
                direction,
            })
            .inc();
    }

    /// Restarts of `group` so far, by reason.
    pub fn restarts_of(&self, group: &str) -> BTreeMap<String, u64> {
        self.restart_counts
            .lock()
            .ok()
            .and_then(|counts| counts.get(group).cloned())
            .unwrap_or_default()
    }

    /// How many requests of `group` waited for a thread, and for how long
    /// in all.
    pub fn queue_wait_of(&self, group: &str) -> (u64, Duration) {
        let label = GroupLabel {
            group: group.to_owned(),
        };
        self.queue_wait
            .get(&label)
            .map_or((0, Duration::ZERO), |h| (h.count(), h.sum()))
    }

    /// The Prometheus text exposition, with the gauges read from `groups`.
    pub fn render(&self, groups: &[GroupView]) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        for family in [
            &self.queue_depth,
            &self.busy,
            &self.idle,
            &self.processes,
            &self.target,
        ] {
            family.clear();
        }
        for group in groups {
            let label = GroupLabel {
                group: group.name.clone(),
            };
            let load = group.pool.load();
            let busy: usize = load.iter().map(|p| p.busy).sum();
            let idle: usize = load.iter().map(|p| p.idle).sum();
            self.queue_depth
                .get_or_create(&label)
                .set(group.pool.queued() as i64);
            self.busy.get_or_create(&label).set(busy as i64);
            self.idle.get_or_create(&label).set(idle as i64);
            self.processes
                .get_or_create(&label)
                .set(group.ready_processes() as i64);
            self.target
                .get_or_create(&label)
                .set(group.target_processes() as i64);
        }
        let mut text = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// One group's request-path metrics: cheap clones of shared atomics.
#[derive(Debug, Clone)]
pub struct GroupMetrics {
    requests: Arc<[Counter; 5]>,
    duration: DurationHistogram,
    queue_wait: DurationHistogram,
    bytes_in: Counter,
    pub bytes_out: Counter,
}

impl Default for GroupMetrics {
    /// Handles registered nowhere (a front without an admin listener).
    fn default() -> Self {
        Self {
            requests: Arc::new(Default::default()),
            duration: DurationHistogram::new(&DURATION_BUCKETS),
            queue_wait: DurationHistogram::new(&QUEUE_BUCKETS),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
        }
    }
}

impl GroupMetrics {
    /// Records one answered request.
    pub fn answered(&self, status: u16, elapsed: Duration) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.requests[class].inc();
        self.duration.observe(elapsed);
    }

    /// Records how long a request waited for a thread.
    pub fn queued(&self, waited: Duration) {
        self.queue_wait.observe(waited);
    }

    /// Records request body bytes received.
    pub fn received(&self, bytes: u64) {
        if bytes > 0 {
            self.bytes_in.inc_by(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(999), "5xx");
    }

    #[test]
    fn recorded_values_are_rendered() {
        let metrics = Metrics::new();
        let app = metrics.group("app_one");
        app.answered(200, Duration::from_millis(3));
        app.answered(200, Duration::from_millis(30));
        app.answered(502, Duration::from_millis(1));
        app.queued(Duration::from_micros(50));
        app.received(10);
        app.bytes_out.inc_by(42);
        // A front rebuilt by a reload gets the same counters.
        metrics.group("app_one").answered(404, Duration::ZERO);
        metrics.restarted("app_one", "crash", 1);
        metrics.restarted("app_one", "reload", 2);
        metrics.scaled("app_one", "up");
        metrics.scaled("app_one", "up");
        metrics.scaled("app_one", "down");
        let (_state, position) =
            tokio::sync::watch::channel(crate::supervisor::process::PositionState::Ready {
                pid: 1,
            });
        let view = GroupView {
            name: "app_one".into(),
            processes: 1,
            threads: 2,
            pool: crate::dispatch::GroupPool::new(),
            positions: vec![position],
            restarts: Arc::default(),
            import_failed: vec![Arc::default()],
            scaling: None,
        };
        let text = metrics.render(&[view]);
        for line in [
            "oxwsgi_requests_total{group=\"app_one\",status=\"2xx\"} 2",
            "oxwsgi_requests_total{group=\"app_one\",status=\"5xx\"} 1",
            "oxwsgi_requests_total{group=\"app_one\",status=\"4xx\"} 1",
            "oxwsgi_request_duration_seconds_count{group=\"app_one\"} 4",
            "oxwsgi_request_duration_seconds_bucket{le=\"0.005\",group=\"app_one\"} 3",
            "oxwsgi_queue_wait_seconds_count{group=\"app_one\"} 1",
            "oxwsgi_request_body_bytes_total{group=\"app_one\"} 10",
            "oxwsgi_response_body_bytes_total{group=\"app_one\"} 42",
            "oxwsgi_process_restarts_total{group=\"app_one\",reason=\"crash\"} 1",
            "oxwsgi_process_restarts_total{group=\"app_one\",reason=\"reload\"} 2",
            "oxwsgi_queue_depth{group=\"app_one\"} 0",
            "oxwsgi_busy_threads{group=\"app_one\"} 0",
            "oxwsgi_idle_threads{group=\"app_one\"} 0",
            "oxwsgi_ready_processes{group=\"app_one\"} 1",
            "oxwsgi_target_processes{group=\"app_one\"} 1",
            "oxwsgi_scale_events_total{group=\"app_one\",direction=\"up\"} 2",
            "oxwsgi_scale_events_total{group=\"app_one\",direction=\"down\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert_eq!(
            metrics
                .restarts_of("app_one")
                .into_iter()
                .collect::<Vec<_>>(),
            vec![("crash".to_owned(), 1), ("reload".to_owned(), 2)]
        );
        assert!(metrics.restarts_of("other").is_empty());
    }
}
